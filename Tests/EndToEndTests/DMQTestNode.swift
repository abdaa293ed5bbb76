import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A DMQ node of either kind (Kamailio or KSRHost) running `dmq/kamailio-node.lua`: both log
/// the same `DMQTEST-*` lines and answer the same triggers, so tests treat them alike.
protocol DMQTestNode: AnyObject {
    var name: String { get }
    var ip: String { get }
    var port: Int { get }
    /// Everything the node logged.
    var log: String { get }
    func listNodes() throws -> [DMQListedNode]
}

extension DMQTestNode {
    var uri: String { "sip:\(ip):\(port)" }

    /// Polls `listNodes()` every 100 ms until `predicate` holds (RPC errors count as "not yet").
    @discardableResult
    func waitUntil(timeout: Double = 10, _ predicate: ([DMQListedNode]) -> Bool) -> Bool {
        KamailioNode.wait(timeout: timeout) { (try? listNodes()).map(predicate) ?? false }
    }

    func logTail(_ lines: Int = 40) -> String {
        log.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }

    /// The `DMQTEST-<kind> key=value ...` lines of the log (values percent-decoded).
    func records(_ kind: String) -> [[String: String]] {
        let marker = "DMQTEST-\(kind) "
        return log.split(separator: "\n").compactMap { line -> [String: String]? in
            guard let r = line.range(of: marker) else { return nil }
            var fields: [String: String] = [:]
            for item in line[r.upperBound...].split(separator: " ") {
                guard let eq = item.firstIndex(of: "=") else { continue }
                let value = item[item.index(after: eq)...]
                fields[String(item[..<eq])] = String(value).removingPercentEncoding ?? String(value)
            }
            return fields
        }
    }

    /// KDMQ requests on a script channel (answered 200 by the script), in log order.
    func receivedAppMessages() -> [DMQReceived] { records("APP").map(DMQReceived.init(record:)) }
    /// Every KDMQ request the node received, on any channel.
    func receivedKDMQ() -> [DMQReceived] { records("KDMQ").map(DMQReceived.init(record:)) }
    /// MESSAGE copies other nodes sent with `t_replicate`.
    func replicatedMessages() -> [DMQReceived] { records("REPLICA").map(DMQReceived.init(record:)) }
    /// Replies the node received (to its KDMQ requests and replicated copies).
    func receivedReplies() -> [DMQReply] {
        records("REPLY").map {
            DMQReply(status: Int($0["status"] ?? "") ?? 0, reason: $0["reason"] ?? "", method: $0["method"] ?? "",
                     sourceIP: $0["src"] ?? "", sourcePort: Int($0["sport"] ?? "") ?? 0, body: $0["body"] ?? "")
        }
    }

    /// Sends a trigger MESSAGE (from 127.0.0.9, not a DMQ node) asking the script for `action`;
    /// returns the final reply's status (200 when the KSR.dmq function returned >= 0, else 500).
    @discardableResult
    func trigger(action: KamailioNode.Action, channel: String? = nil, body: String = "", contentType: String? = "text/plain",
                 target: String? = nil, timeout: Double = 5) throws -> Int {
        var headers: [String] = []
        if let channel { headers.append("X-Dmq-Channel: \(channel)") }
        if let target { headers.append("X-Dmq-Target: \(target)") }
        if let contentType { headers.append("Content-Type: \(contentType)") }
        let reply = try KamailioNode.sendRequest(method: "MESSAGE", user: action.rawValue, to: ip, port: port,
                                                 headers: headers, body: body, timeout: timeout)
        return KamailioNode.status(of: reply) ?? 0
    }
}

extension DMQReceived {
    init(record f: [String: String]) {
        self.init(channel: f["chan"] ?? "", requestURI: f["ruri"] ?? "", from: f["from"] ?? "",
                  contentType: f["ct"] ?? "", sourceIP: f["src"] ?? "", sourcePort: Int(f["sport"] ?? "") ?? 0,
                  maxForwards: Int(f["mf"] ?? ""), body: f["body"] ?? "",
                  fromNode: (Int(f["fromnode"] ?? "") ?? 1) > 0)
    }
}

extension KamailioNode: DMQTestNode {
    /// `dmq/kamailio-node.cfg.in` with a node's values.
    static func renderTemplate(name: String, ip: String, port: Int, notificationAddresses: [String], pingInterval: Int,
                               frTimer: Int, dir: String, mpath: String, channels: [String], extraConfig: String,
                               debugLevel: Int) throws -> String {
        let template = try String(contentsOf: resources.appendingPathComponent("kamailio-node.cfg.in"), encoding: .utf8)
        let notify = notificationAddresses.isEmpty
            ? "# no notification_address (a seed)"
            : notificationAddresses.map { "modparam(\"dmq\", \"notification_address\", \"\($0)\")" }.joined(separator: "\n")
        let values: [(String, String)] = [
            ("@NODE_NAME@", name), ("@NODE_IP@", ip), ("@NODE_PORT@", String(port)),
            ("@PING@", String(pingInterval)), ("@FR_TIMER@", String(frTimer)), ("@NODE_DIR@", dir),
            ("@MPATH@", mpath), ("@LUA_SCRIPT@", resources.appendingPathComponent("kamailio-node.lua").path),
            ("@DEBUG@", String(debugLevel)), ("@CHANNELS@", channels.joined(separator: ",")),
            ("@NOTIFY_LINES@", notify), ("@EXTRA@", extraConfig.isEmpty ? "# none" : extraConfig),
        ]
        var cfg = template
        for (token, value) in values { cfg = cfg.replacingOccurrences(of: token, with: value) }
        return cfg
    }
}
