import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A KSRHost DMQ node for the end-to-end tests: the very cfg and Lua script the Kamailio nodes
/// run (`dmq/kamailio-node.cfg.in`, `dmq/kamailio-node.lua`), started with `ksr run -f`, plus
/// the control plane on its own HTTP port. A script written for Kamailio runs unchanged, so
/// both kinds of node log the same `DMQTEST-*` lines and answer the same triggers.
final class KSRDMQNode: DMQTestNode {
    let name: String
    let ip: String
    let port: Int
    let rpcPort: Int
    let notificationAddresses: [String]
    let dir: URL
    private var running: KSR.Running?
    private var pastLogs = ""

    var uri: String { "sip:\(ip):\(port)" }
    var cfgPath: String { dir.appendingPathComponent("node.cfg").path }
    var pid: pid_t? { running.map { $0.process.processIdentifier } }
    var isRunning: Bool { running?.process.isRunning ?? false }

    /// Renders the cfg (see `KamailioNode.init` for the parameters). `extraConfig` is cfg text
    /// after the dmq modparams, e.g. `modparam("dmq", "fast_ping_ms", 200)`.
    init(name: String, ip: String, port: Int? = nil, notificationAddresses: [String] = [],
         pingInterval: Int = 5, frTimer: Int = 3000, channels: [String] = ["app"],
         extraConfig: String = "", script: String? = nil) throws {
        guard KamailioNode.isLoopback(ip) else { throw KamailioNode.Error.badAddress("\(ip) is not a 127.0.0.0/8 address") }
        self.name = name
        self.ip = ip
        self.port = try port ?? KamailioNode.freeUDPPort(on: ip)
        self.rpcPort = freePort()
        self.notificationAddresses = notificationAddresses
        dir = URL(fileURLWithPath: "/tmp").appendingPathComponent("ksrdmq-\(name)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let extra = "rpc_listen=\"http:\(ip):\(rpcPort)\"\nrpc_socket=\"off\"\n" + extraConfig
        var cfg = try KamailioNode.renderTemplate(
            name: name, ip: ip, port: self.port, notificationAddresses: notificationAddresses, pingInterval: pingInterval,
            frTimer: frTimer, dir: dir.path, mpath: "/usr/lib/kamailio/modules/", channels: channels, extraConfig: extra,
            debugLevel: 2)
        if let script {
            let path = dir.appendingPathComponent("node.lua").path
            try script.write(toFile: path, atomically: true, encoding: .utf8)
            cfg = cfg.replacingOccurrences(of: KamailioNode.resources.appendingPathComponent("kamailio-node.lua").path, with: path)
        }
        try cfg.write(toFile: cfgPath, atomically: true, encoding: .utf8)
    }

    deinit {
        if let r = running, r.process.isRunning { r.stop(SIGKILL) }
        try? FileManager.default.removeItem(at: dir)
    }

    /// Starts `ksr run -f node.cfg` and waits until `dmq.list_nodes` answers.
    func start(timeout: Double = 20) throws {
        guard !isRunning else { return }
        if let r = running { pastLogs += r.stderr }
        let r = try KSR.Running(["run", "-f", cfgPath])
        running = r
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if !r.process.isRunning {
                throw KamailioNode.Error.startFailed("ksr \(name) exited at startup:\n\(r.stderr)")
            }
            if (try? listNodes()) != nil { return }
            usleep(50_000)
        }
        throw KamailioNode.Error.startFailed("ksr \(name) did not answer dmq.list_nodes within \(timeout) s:\n\(r.stderr)")
    }

    /// SIGTERM and wait (KSRHost tells its peers it leaves).
    func stop(timeout: Double = 10) {
        running?.stop(SIGTERM, timeout: timeout)
    }

    /// SIGKILL (one process: nothing else to kill). Returns the pid killed.
    @discardableResult
    func crash() -> [pid_t] {
        guard let r = running, r.process.isRunning else { return [] }
        let pid = r.process.processIdentifier
        r.stop(SIGKILL)
        return [pid]
    }

    /// A JSON-RPC call through `ksr rpc`; stdout, or throws with the output.
    func rpc(_ args: [String], timeout: Double = 5) throws -> String {
        let r = try KSR.run(["rpc", "--url", "http:\(ip):\(rpcPort)"] + args, timeout: timeout)
        guard r.status == 0 else { throw KamailioNode.Error.rpcFailed("ksr rpc \(args) on \(name): \(r.status) \(r.stdout)\(r.stderr)") }
        return r.stdout
    }

    func listNodes() throws -> [DMQListedNode] {
        let text = try rpc(["dmq.list_nodes"])
        guard let array = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]] else {
            throw KamailioNode.Error.rpcFailed("dmq.list_nodes on \(name): not an array: \(text)")
        }
        return array.map { n in
            DMQListedNode(host: n["host"] as? String ?? "", port: (n["port"] as? String).flatMap { Int($0) },
                          proto: n["proto"] as? String ?? "", resolvedIP: n["resolved_ip"] as? String ?? "",
                          status: n["status"] as? String ?? "", local: (n["local"] as? Int) == 1)
        }
    }

    /// Everything this node logged, over all its runs.
    var log: String { pastLogs + (running?.stderr ?? "") }
}
