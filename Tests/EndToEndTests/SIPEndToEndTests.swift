import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A UDP socket on 127.0.0.1 for sending hand-made SIP and reading the answer.
final class UDPPeer {
    let fd: Int32
    let port: Int

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        self.fd = fd
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        self.port = Int(UInt16(bigEndian: addr.sin_port))
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    func send(_ text: String, to port: Int) {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        let bytes = Array(text.utf8)
        _ = withUnsafePointer(to: &addr) { a in
            a.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, bytes, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }

    /// The next datagram, or nil after the timeout.
    func receive() -> String? {
        var buf = [UInt8](repeating: 0, count: 65536)
        let n = recv(fd, &buf, buf.count, 0)
        return n > 0 ? String(decoding: buf[0..<n], as: UTF8.self) : nil
    }

    deinit { close(fd) }
}

/// A free port on 127.0.0.1 (for UDP and TCP alike, as far as a test can tell).
/// A port free for both UDP and TCP on 127.0.0.1, below the kernel's ephemeral range (32768+),
/// so that no outgoing connection of another test (an RPC client, sipp) can hold it meanwhile.
func freePort() -> Int {
    for _ in 0..<200 {
        let port = Int.random(in: 10_000..<32_000)
        if canBind(port, SOCK_DGRAM) && canBind(port, SOCK_STREAM) { return port }
    }
    return (try? UDPPeer())?.port ?? 15_000 + Int.random(in: 0..<10_000)
}

private func canBind(_ port: Int, _ type: __socket_type) -> Bool {
    let fd = socket(AF_INET, Int32(type.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = UInt16(port).bigEndian
    return withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    } == 0
}

@Suite("SIP requests through ksr run, with sipp and hand-made messages")
struct SIPEndToEndTests {
    static func script(port: Int) -> String {
        luaShow + """
        coreparam("listen", "udp:127.0.0.1:\(port)")
        coreparam("listen", "tcp:127.0.0.1:\(port)")
        coreparam("children", 2)
        coreparam("rpc_listen", "off")
        coreparam("rpc_socket", "off")
        function ksr_request_route()
          if KSR.is_OPTIONS() then
            KSR.hdr.append_to_reply("X-Ksr: yes\\r\\n")
            KSR.sl.sl_send_reply(200, "Keepalive")
            return
          end
          if KSR.is_MESSAGE() then
            for _, pv in ipairs({"$rm", "$ru", "$rU", "$rd", "$rp", "$fu", "$fU", "$fd", "$ft", "$tu", "$tU", "$td", "$tt",
                                 "$ci", "$cs", "$si", "$Ri", "$pr", "$ua", "$hdr(X-Custom)", "$hdr(v)", "$ml"}) do
              show(pv, KSR.pv.get(pv))
            end
            show("sp_is_int", math.type(KSR.pv.get("$sp")))
            show("mb_has_body", string.find(KSR.pv.get("$mb"), "hello body", 1, true) ~= nil)
            show("hdr_get", KSR.hdr.get("x-custom"))
            show("hdr_idx_last", KSR.hdr.get_idx("X-Multi", -1))
            show("hdr_idx_0", KSR.hdr.get_idx("X-Multi", 0))
            show("hdr_present", KSR.hdr.is_present("X-Custom"))
            show("hdr_absent", KSR.hdr.is_present("X-Nope"))
            show("hdr_gete", KSR.hdr.gete("X-Nope"))
            show("is_method", KSR.is_method("MESSAGE|INVITE"))
            show("kx_body", KSR.kx.get_body())
            show("kx_bodylen", KSR.kx.get_bodylen())
            show("kx_ua", KSR.kx.get_ua())
            show("kx_msgtype", KSR.kx.get_msgtype())
            KSR.sl.sl_send_reply(202, "Accepted")
            show("second_reply", KSR.sl.send_reply(404, "Again"))
            return
          end
          if KSR.is_ACK() then
            show("ack_reply", KSR.sl.sl_send_reply(200, "No"))
            return
          end
          KSR.sl.sl_send_reply(404, "Not here")
        end
        """
    }

    func start(_ port: Int) throws -> (TempDir, KSR.Running) {
        let dir = TempDir()
        let p = try KSR.Running(["run", dir.write("sip.lua", Self.script(port: port))])
        guard p.waitForStderr(timeout: 20, { $0.contains("started:") }) else { throw ControlTestError.notStarted(p.stderr) }
        return (dir, p)
    }

    static func sipp(_ args: [String]) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/sipp")
        // -timeout_error: sipp 3.6 otherwise keeps waiting for a stuck call after the timeout.
        p.arguments = args + ["-nostdin", "-timeout", "20s", "-timeout_error", "-i", "127.0.0.1"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    static let optionsScenario = KSR.packageRoot.appendingPathComponent("Tests/EndToEndTests/sipp/options.xml").path

    @Test func sippGetsStatelessRepliesOverUDPAndTCP() throws {
        let port = freePort()
        let (_, host) = try start(port)
        let (udp, udpOut) = try Self.sipp(["127.0.0.1:\(port)", "-sf", Self.optionsScenario, "-m", "200", "-r", "200",
                                          "-p", String(freePort())])
        #expect(udp == 0, "\(udpOut)")
        let (tcp, tcpOut) = try Self.sipp(["127.0.0.1:\(port)", "-sf", Self.optionsScenario, "-m", "100", "-r", "100",
                                          "-t", "t1", "-p", String(freePort())])
        #expect(tcp == 0, "\(tcpOut)")
        // The receivers read UDP themselves (TCP comes through the event loop).
        #expect(host.stderr.contains("receiver workers, reading the UDP sockets themselves"), "\(host.stderr)")
        #expect(host.stop() == 0)
    }

    @Test func requestFieldsHeadersAndReplies() throws {
        let port = freePort()
        let (_, host) = try start(port)
        let peer = try UDPPeer()
        let body = "hello body"
        peer.send("""
            MESSAGE sip:alice@example.com:5070;transport=udp SIP/2.0\r
            v: SIP/2.0/UDP 127.0.0.1:\(peer.port);branch=z9hG4bK-test-1;rport\r
            f: "Bob" <sip:bob@biloxi.example>;tag=from-tag-9\r
            t: <sip:alice@example.com>\r
            i: call-id-42@test\r
            CSeq: 7 MESSAGE\r
            Max-Forwards: 70\r
            User-Agent: ksr-test\r
            X-Custom: custom value\r
            X-Multi: first\r
            X-Multi: second\r
            c: text/plain\r
            l: \(body.utf8.count)\r
            \r
            \(body)
            """, to: port)
        let reply = try #require(peer.receive())
        #expect(reply.hasPrefix("SIP/2.0 202 Accepted\r\n"))
        // Header lines are copied as the request had them (compact names too), rport filled in.
        #expect(reply.contains("v: SIP/2.0/UDP 127.0.0.1:\(peer.port);branch=z9hG4bK-test-1;rport=\(peer.port);received=127.0.0.1\r\n"))
        #expect(reply.contains(";tag=ksr"))
        #expect(reply.contains("i: call-id-42@test\r\n"))
        #expect(reply.contains("Content-Length: 0\r\n\r\n"))
        let second = try #require(peer.receive())
        #expect(second.hasPrefix("SIP/2.0 404 Again\r\n"))
        // Both stateless replies to one request carry the same To-tag (a hash of the request).
        func toTag(_ r: String) -> Substring? {
            r.split(separator: "\r\n").first { $0.hasPrefix("t:") || $0.hasPrefix("To:") }?.split(separator: ";tag=").last
        }
        #expect(toTag(reply) != nil && toTag(reply) == toTag(second), "\(reply)\n\(second)")
        #expect(host.waitForStderr { $0.contains("RESULT kx_msgtype=") })
        host.stop()
        let r = ScriptRun(stderr: host.stderr, status: 0, results: ScriptRun.parse(host.stderr)).results
        let expected: [String: String] = [
            "$rm": "MESSAGE|string", "$ru": "sip:alice@example.com:5070;transport=udp|string", "$rU": "alice|string",
            "$rd": "example.com|string", "$rp": "5070|string", "$fu": "sip:bob@biloxi.example|string",
            "$fU": "bob|string", "$fd": "biloxi.example|string", "$ft": "from-tag-9|string",
            "$tu": "sip:alice@example.com|string", "$tU": "alice|string", "$td": "example.com|string", "$tt": "nil|nil",
            "$ci": "call-id-42@test|string", "$cs": "7|string", "$si": "127.0.0.1|string", "$Ri": "127.0.0.1|string",
            "$pr": "udp|string", "$ua": "ksr-test|string", "$hdr(X-Custom)": "custom value|string",
            "$hdr(v)": "SIP/2.0/UDP 127.0.0.1:\(peer.port);branch=z9hG4bK-test-1;rport|string",
            "sp_is_int": "integer|string", "mb_has_body": "true|boolean", "hdr_get": "custom value|string",
            "hdr_idx_last": "second|string", "hdr_idx_0": "first|string", "hdr_present": "1|number", "hdr_absent": "-1|number",
            "hdr_gete": "|string", "is_method": "true|boolean", "kx_body": "hello body|string", "kx_bodylen": "10|number",
            "kx_ua": "ksr-test|string", "kx_msgtype": "1|number", "second_reply": "1|number",
        ]
        for (k, v) in expected { #expect(r[k] == v, "\(k): \(r[k] ?? "missing")") }
    }

    @Test func malformedRequestsGet400OrAreDroppedAndTheHostKeepsServing() throws {
        let port = freePort()
        let (_, host) = try start(port)
        let peer = try UDPPeer()
        // A request with the headers a reply needs but a broken Content-Length: 400.
        peer.send("OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:\(peer.port);branch=z9hG4bK-bad\r\n"
                  + "From: <sip:a@b>;tag=1\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: bad-1\r\nCSeq: 1 OPTIONS\r\n"
                  + "Content-Length: 99999\r\n\r\n", to: port)
        let bad = try #require(peer.receive())
        #expect(bad.hasPrefix("SIP/2.0 400 Bad Request\r\n"), "\(bad)")
        // Garbage: dropped with a log line.
        peer.send("\u{0}\u{1}garbage that is not SIP\r\n\r\n", to: port)
        // An ACK gets no reply (sl refuses it).
        peer.send("ACK sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:\(peer.port);branch=z9hG4bK-ack\r\n"
                  + "From: <sip:a@b>;tag=1\r\nTo: <sip:x@127.0.0.1>;tag=2\r\nCall-ID: ack-1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n", to: port)
        // Still serving.
        peer.send("OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:\(peer.port);branch=z9hG4bK-ok\r\n"
                  + "From: <sip:a@b>;tag=1\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: ok-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n", to: port)
        let ok = try #require(peer.receive())
        #expect(ok.hasPrefix("SIP/2.0 200 Keepalive\r\n"), "\(ok)")
        #expect(ok.contains("X-Ksr: yes"))
        #expect(host.waitForStderr { $0.contains("dropped a malformed SIP message") && $0.contains("RESULT ack_reply=-1|number") })
        #expect(host.stop() == 0)
    }
}

@Suite("KSR.async.ms_sleep in ksr_request_route, with sipp")
struct SleepingRequestTests {
    @Test func requestsAreAnsweredAfterTheSleepWithTheirOwnLocals() throws {
        let port = freePort()
        let dir = TempDir()
        let script = """
            coreparam("listen", "udp:127.0.0.1:\(port)")
            coreparam("children", 1)
            coreparam("rpc_listen", "off")
            coreparam("rpc_socket", "off")
            local served = 0
            function ksr_request_route()
              if KSR.is_ACK() then return end
              local callid = KSR.pv.get("$ci")
              local started = tonumber(KSR.pv.get("$TV(Sn)"))
              KSR.async.ms_sleep(200)
              local waited = (tonumber(KSR.pv.get("$TV(Sn)")) - started) * 1000
              served = served + 1
              -- $ci is the request's own after the sleep, and so is the local.
              KSR.info(string.format("SLEPT ok=%s waited=%.0f served=%d\\n", tostring(callid == KSR.pv.get("$ci")), waited, served))
              KSR.sl.sl_send_reply(200, "OK")
            end
            """
        let host = try KSR.Running(["run", dir.write("sleep.lua", script)])
        #expect(host.waitForStderr(timeout: 20) { $0.contains("started:") })
        // 20 calls at 50/s with one worker: they overlap, so the worker must serve others while
        // each sleeps (one after the other would take 4 s and sipp would retransmit).
        let started = Date()
        let (rc, out) = try SIPEndToEndTests.sipp(["127.0.0.1:\(port)", "-sf", SIPEndToEndTests.optionsScenario,
                                                  "-m", "20", "-r", "50", "-p", String(freePort())])
        let elapsed = Date().timeIntervalSince(started)
        #expect(rc == 0, "\(out)")
        #expect(elapsed < 3.0, "took \(elapsed) s")
        #expect(host.waitForStderr { $0.lines(containing: "SLEPT ok=true").count >= 20 })
        #expect(host.stderr.lines(containing: "SLEPT ok=false").isEmpty)
        let waits = host.stderr.lines(containing: "SLEPT").compactMap { line -> Double? in
            line.split(separator: " ").first { $0.hasPrefix("waited=") }.flatMap { Double($0.dropFirst(7)) }
        }
        #expect(waits.allSatisfy { $0 >= 199 && $0 < 1000 }, "\(waits)")
        #expect(host.stop() == 0)
    }
}
