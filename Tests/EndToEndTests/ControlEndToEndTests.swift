import Foundation
import Testing

/// A `ksr run` with its control plane on a private unix socket and a free TCP port.
final class ControlledHost {
    let dir = TempDir()
    let socket: String
    let script: String
    let process: KSR.Running
    private(set) var port = 0

    init(_ body: String, extraArgs: [String] = []) throws {
        socket = dir.path("ksr.sock")
        script = dir.path("app.lua")
        dir.write("app.lua", Self.header(socket) + body)
        process = try KSR.Running(["run", script] + extraArgs)
        guard process.waitForStderr(timeout: 20, { $0.contains("RPC listening on http:") && $0.contains("RPC listening on unix:") }) else {
            throw ControlTestError.notStarted(process.stderr)
        }
        let line = process.stderr.lines(containing: "RPC listening on http:").first ?? ""
        if let r = line.range(of: #"http:127\.0\.0\.1:(\d+)"#, options: .regularExpression) {
            port = Int(line[r].split(separator: ":").last!) ?? 0
        }
    }

    static func header(_ socket: String) -> String {
        """
        coreparam("rpc_listen", "http:127.0.0.1:0")
        coreparam("rpc_socket", "\(socket)")

        """
    }

    /// Replaces the script's body (for reload tests).
    func rewrite(_ body: String) { dir.write("app.lua", Self.header(socket) + body) }

    /// `ksr rpc --socket ... METHOD PARAMS...`
    func rpc(_ args: String...) throws -> KSR.Result {
        try KSR.run(["rpc", "--socket", socket] + args, timeout: 20)
    }

    /// POSTs a body to /RPC with curl over TCP; returns (HTTP status, body).
    func post(_ body: String, path: String = "/RPC") throws -> (Int, String) {
        try Self.curl(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", "POST", "-H", "Content-Type: application/json",
                       "--data-binary", body, "http://127.0.0.1:\(port)\(path)"])
    }

    func get(_ path: String, unix: Bool = false) throws -> (Int, String) {
        var args = ["-s", "-o", "-", "-w", "\n%{http_code}"]
        if unix { args += ["--unix-socket", socket, "http://localhost\(path)"] } else { args.append("http://127.0.0.1:\(port)\(path)") }
        return try Self.curl(args)
    }

    static func curl(_ args: [String]) throws -> (Int, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        p.arguments = ["--max-time", "10"] + args
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        var text = String(decoding: data, as: UTF8.self)
        let nl = text.lastIndex(of: "\n") ?? text.startIndex
        let code = Int(text[text.index(after: nl)...]) ?? 0
        text = String(text[..<nl])
        return (code, text)
    }

    deinit { process.stop() }
}

enum ControlTestError: Error { case notStarted(String) }

/// "name=size" of a {"name": ..., "size": ...} result.
func nameAndSize(_ s: String) -> String? {
    guard let o = json(s) as? [String: Any], let n = o["name"] as? String, let size = o["size"] as? Int else { return nil }
    return "\(n)=\(size)"
}

func json(_ s: String) -> Any? { try? JSONSerialization.jsonObject(with: Data(s.utf8), options: [.fragmentsAllowed]) }

@Suite("Control plane through ksr run, ksr rpc and curl")
struct ControlEndToEndTests {
    static let body = """
        modparam("mqueue", "mqueue", "name=rpcq;size=5")
        modparam("mqueue", "mqueue", "name=other;addmode=2")
        modparam("rtimer", "timer", "name=ta;interval=100000u;mode=2;")
        modparam("rtimer", "exec", "timer=ta;route=tick")
        local n = 0
        function tick()
          n = n + 1
          if KSR.pv.get("$var(added)") == 0 then
            KSR.pv.seti("$var(added)", 1)
            KSR.mqueue.mq_add("rpcq", "k" .. KSR.pv.get("$rtimer_worker"), "v")
          end
          KSR.info("TICK v1 w=" .. KSR.pv.get("$rtimer_worker") .. " n=" .. n .. "\\n")
        end
        """

    @Test func kamailioMethodsThroughTheCLI() throws {
        let h = try ControlledHost(Self.body)
        #expect(h.process.waitForStderr { $0.contains("w=0 n=2") && $0.contains("w=1 n=2") })
        let version = try h.rpc("core.version")
        #expect(version.status == 0, "\(version.stderr)")
        #expect(version.stdout.contains("ksr "))
        let size = try h.rpc("mqueue.get_size", "rpcq")
        #expect(nameAndSize(size.stdout) == "rpcq=2")
        let sizes = try h.rpc("mqueue.get_sizes")
        let arr = json(sizes.stdout) as? [[String: AnyHashable]]
        #expect(arr?.map { $0["name"] } == ["other", "rpcq"])  // reverse definition order, as Kamailio
        let fetched = try h.rpc("mqueue.fetch", "rpcq")
        #expect((json(fetched.stdout) as? [String: String])?["val"] == "v")
        _ = try h.rpc("mqueue.fetch", "rpcq")
        let empty = try h.rpc("mqueue.fetch", "rpcq")
        #expect(empty.status != 0)
        #expect(empty.stderr.contains("404") && empty.stderr.contains("Empty queue"))
        let unknown = try h.rpc("mqueue.get_size", "nope")
        #expect(unknown.status != 0)
        #expect(unknown.stderr.contains("No such queue"))
        let list = try h.rpc("system.listMethods")
        for m in ["core.version", "core.uptime", "core.psx", "mqueue.get_size", "mqueue.fetch", "mqueue.get_sizes",
                  "mqueue.list", "rtimer.list", "rtimer.pause", "rtimer.resume", "rtimer.fire", "app_lua.reload"] {
            #expect(list.stdout.contains("\"\(m)\""), "\(m)")
        }
        let psx = try h.rpc("core.psx")
        let workers = json(psx.stdout) as? [[String: Any]]
        #expect(workers?.count == 2)
        #expect((workers?.first?["LUA_MEMORY"] as? Int ?? 0) > 0)
        let uptime = try h.rpc("core.uptime")
        #expect((json(uptime.stdout) as? [String: Any])?["uptime"] != nil)
        let qlist = try h.rpc("mqueue.list")
        let q = (json(qlist.stdout) as? [[String: Any]])?.first { $0["name"] as? String == "rpcq" }
        #expect(q?["limit"] as? Int == 5)
        #expect(q?["addmode"] as? Int == 0)
        #expect(q?["adds"] as? Int == 2)
        let bad = try h.rpc("no.such.method")
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("method not found"))
    }

    @Test func rtimerControl() throws {
        let h = try ControlledHost(Self.body)
        #expect(h.process.waitForStderr { $0.contains("n=3") })
        let list = try h.rpc("rtimer.list")
        let timers = json(list.stdout) as? [[String: Any]]
        let ta = timers?.first
        #expect(ta?["name"] as? String == "ta")
        #expect(ta?["mode"] as? Int == 2)
        #expect(ta?["exec"] as? [String] == ["tick"])
        let w = ta?["workers"] as? [[String: Any]]
        #expect(w?.count == 2)
        #expect((w?.first?["ticks"] as? Int ?? 0) >= 3)
        #expect(w?.first?["max_lateness_us"] != nil)
        #expect(try h.rpc("rtimer.pause", "ta").status == 0)
        usleep(300_000)
        let before = h.process.stderr.lines(containing: "TICK v1").count
        usleep(500_000)
        #expect(h.process.stderr.lines(containing: "TICK v1").count == before)
        let paused = json(try h.rpc("rtimer.list").stdout) as? [[String: Any]]
        #expect(paused?.first?["paused"] as? Bool == true)
        #expect(try h.rpc("rtimer.fire", "ta").status == 0)
        #expect(h.process.waitForStderr(timeout: 5) { $0.lines(containing: "TICK v1").count >= before + 2 })
        #expect(try h.rpc("rtimer.resume", "ta").status == 0)
        #expect(h.process.waitForStderr(timeout: 5) { $0.lines(containing: "TICK v1").count >= before + 6 })
        let missing = try h.rpc("rtimer.pause", "nope")
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("No such timer"))
    }

    @Test func jsonRPCOverHTTPAndMetrics() throws {
        let h = try ControlledHost(Self.body)
        #expect(h.process.waitForStderr { $0.contains("w=0 n=2") && $0.contains("w=1 n=2") })
        let (code, single) = try h.post(#"{"jsonrpc":"2.0","method":"mqueue.get_size","params":["rpcq"],"id":7}"#)
        #expect(code == 200)
        let obj = json(single) as? [String: Any]
        #expect(obj?["id"] as? Int == 7)
        #expect((obj?["result"] as? [String: Any])?["size"] as? Int == 2)
        let (_, batch) = try h.post(#"[{"jsonrpc":"2.0","method":"core.version","id":1},{"jsonrpc":"2.0","method":"nope","id":2},{"jsonrpc":"2.0","method":"core.version"}]"#)
        let replies = json(batch) as? [[String: Any]]
        #expect(replies?.count == 2)
        #expect((replies?.last?["error"] as? [String: Any])?["code"] as? Int == -32601)
        let (notifCode, notifBody) = try h.post(#"{"jsonrpc":"2.0","method":"core.version"}"#)
        #expect(notifCode == 204 && notifBody.isEmpty)
        let (_, parse) = try h.post("{not json")
        #expect(((json(parse) as? [String: Any])?["error"] as? [String: Any])?["code"] as? Int == -32700)
        let (_, params) = try h.post(#"{"jsonrpc":"2.0","method":"rtimer.pause","params":[42],"id":1}"#)
        #expect(((json(params) as? [String: Any])?["error"] as? [String: Any])?["code"] as? Int == -32602)
        let (mcode, metrics) = try h.get("/metrics")
        #expect(mcode == 200)
        for series in ["ksr_rtimer_ticks_total{timer=\"ta\",worker=\"0\"}", "ksr_rtimer_lateness_seconds_bucket",
                       "ksr_mqueue_size{queue=\"rpcq\"} 2", "ksr_mqueue_adds_total{queue=\"rpcq\"} 2",
                       "ksr_lua_callbacks_total{callback=\"tick\"}", "ksr_lua_callback_duration_seconds_bucket",
                       "ksr_workers 2"] {
            #expect(metrics.contains(series), "\(series)")
        }
        let (ucode, umetrics) = try h.get("/metrics", unix: true)
        #expect(ucode == 200 && umetrics.contains("ksr_workers"))
        let (nf, _) = try h.get("/nope")
        #expect(nf == 404)
    }

    @Test func reloadSwapsOnlyAGoodScript() throws {
        let h = try ControlledHost(Self.body)
        #expect(h.process.waitForStderr { $0.contains("TICK v1") })
        // A broken script: the answer names file, line and reason; v1 keeps running.
        h.rewrite(Self.body.replacingOccurrences(of: "local n = 0", with: "local n = 0\nlocal broken = ("))
        let bad = try h.rpc("app_lua.reload")
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("app.lua:"), "\(bad.stderr)")
        let count = h.process.stderr.lines(containing: "TICK v1").count
        #expect(h.process.waitForStderr(timeout: 5) { $0.lines(containing: "TICK v1").count > count + 2 })
        // A new timer cannot be added while running: refused and reported.
        h.rewrite(Self.body + "\nmodparam(\"rtimer\", \"timer\", \"name=tb;interval=1;mode=1;\")\n")
        let refused = try h.rpc("app_lua.reload")
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("timer 'tb' added"))
        // A good script: swapped in every worker; $var values and queue items survive.
        h.rewrite(Self.body.replacingOccurrences(of: "TICK v1", with: "TICK v2"))
        let good = try h.rpc("app_lua.reload")
        #expect(good.status == 0, "\(good.stderr)")
        #expect(h.process.waitForStderr(timeout: 5) { $0.contains("TICK v2 w=0") && $0.contains("TICK v2 w=1") })
        let size = try h.rpc("mqueue.get_size", "rpcq")
        #expect(nameAndSize(size.stdout) == "rpcq=2")
        // SIGHUP reloads too.
        h.rewrite(Self.body.replacingOccurrences(of: "TICK v1", with: "TICK v3"))
        h.process.signal(SIGHUP)
        #expect(h.process.waitForStderr(timeout: 10) { $0.contains("TICK v3") })
    }

    @Test func clientErrorsWhenNothingListens() throws {
        let dir = TempDir()
        let r = try KSR.run(["rpc", "--socket", dir.path("none.sock"), "core.version"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("cannot connect"))
    }
}
