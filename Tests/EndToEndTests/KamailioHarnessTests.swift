import Foundation
import Testing

/// Proves the real-Kamailio harness (KamailioNode) on a pure Kamailio pair. Kamailio 5.6 with
/// kamailio-lua-modules must be installed (scripts/setup --test): without it these tests fail.
@Suite("KamailioHarness: real Kamailio 5.6 DMQ nodes", .serialized)
struct KamailioHarnessTests {
    @Test func seedAndJoinerListEachOtherBroadcastAndUnicastReachTheScript() throws {
        let a = try KamailioNode(name: "A", ip: "127.0.0.11")
        let b = try KamailioNode(name: "B", ip: "127.0.0.12", notificationAddresses: [a.uri])
        try a.start()
        try b.start()

        // Both list each other active within two ping intervals (in practice: the join, ~0.1 s).
        let bothActive: ([DMQListedNode]) -> Bool = { $0.status(of: a) == "active" && $0.status(of: b) == "active" }
        #expect(a.waitUntil(timeout: Double(2 * a.pingInterval), bothActive), "A: \((try? a.listNodes()) ?? [])\n\(a.logTail())")
        #expect(b.waitUntil(timeout: 1, bothActive), "B: \((try? b.listNodes()) ?? [])\n\(b.logTail())")
        let seenByB = try b.listNodes()
        #expect(seenByB.count == 2)
        #expect(seenByB.entry(host: b.ip, port: b.port)?.local == true)
        #expect(seenByB.entry(host: a.ip, port: a.port)?.local == false)
        #expect(seenByB.entry(host: a.ip, port: a.port)?.proto == "*")

        // bcast on B reaches A's script with body and content type intact.
        let body = "first line\r\nsecond = line; 100% ü\ttab"
        let ct = "application/x-ksr-test; charset=utf-8"
        #expect(try b.trigger(action: .bcast, body: body, contentType: ct) == 200)
        #expect(KamailioNode.wait { !a.receivedAppMessages().isEmpty }, "\(a.logTail())")
        let got = try #require(a.receivedAppMessages().first)
        #expect(got.channel == "app")
        #expect(got.from == "sip:app@\(b.ip):\(b.port)")
        #expect(got.requestURI == "sip:app@\(a.ip):\(a.port)")
        #expect(got.contentType == ct)
        #expect(got.sourceIP == b.ip)
        #expect(got.sourcePort == b.port)
        #expect(got.body == body)
        #expect(got.fromNode)
        // The 200 from A's script came back to B.
        #expect(KamailioNode.wait { b.receivedReplies().contains { $0.method == "KDMQ" && $0.status == 200 && $0.sourceIP == a.ip } })

        // unicast on another script channel, from A to B.
        try b.setScriptChannels(["app", "other"])
        #expect(try a.trigger(action: .unicast, channel: "other", body: "{\"k\":1}", contentType: "application/json", target: b.uri) == 200)
        #expect(KamailioNode.wait { b.receivedAppMessages().contains { $0.channel == "other" } }, "\(b.logTail())")
        let uni = try #require(b.receivedAppMessages().first { $0.channel == "other" })
        #expect(uni.body == "{\"k\":1}")
        #expect(uni.contentType == "application/json")
        #expect(uni.from == "sip:other@\(a.ip):\(a.port)")
        // unicast to a URI that is not listed: send_message returns -1, the script answers 500.
        #expect(try a.trigger(action: .unicast, body: "x", target: "sip:127.0.0.99:5999") == 500)

        // t_replicate: the copy reaches B from A's DMQ socket and is recognised as from a node.
        #expect(try a.trigger(action: .replicate, body: "replicated body") == 200)
        #expect(KamailioNode.wait { !b.replicatedMessages().isEmpty }, "\(b.logTail())")
        let copy = try #require(b.replicatedMessages().first)
        #expect(copy.channel == "replicate")
        #expect(copy.sourceIP == a.ip)
        #expect(copy.body == "replicated body")

        // The KDMQ log shows the join: B's notification to A with Max-Forwards 2.
        #expect(a.receivedKDMQ().contains { $0.channel == "notification_peer" && $0.sourceIP == b.ip && $0.maxForwards == 2 })

        // crash() of B leaves no process behind: the main pid is reaped, each child is gone from
        // /proc or a zombie waiting for init.
        let pids = b.crash()
        #expect(pids.count > 5, "main pid and its children: \(pids)")
        #expect(!b.isRunning)
        #expect(!FileManager.default.fileExists(atPath: "/proc/\(pids[0])"), "the main pid is reaped")
        #expect(!pids.contains(where: KamailioNode.isRunning), "still running: \(pids.filter(KamailioNode.isRunning))")
        #expect(throws: KamailioNode.Error.self, "B's ctl socket no longer answers") { try b.listNodes() }
    }

    @Test func gracefulStopLeavesNothingAndTheNodeRestartsOnItsPort() throws {
        let n = try KamailioNode(name: "S", ip: "127.0.0.13")
        try n.start()
        let main = try #require(n.pid)
        let family = [main] + n.descendants(of: main)
        #expect(family.count > 5)
        let started = Date()
        n.stop()
        let took = Date().timeIntervalSince(started)
        #expect(took < 5, "SIGTERM stop took \(took) s")
        #expect(!family.contains(where: KamailioNode.isRunning), "still running: \(family.filter(KamailioNode.isRunning))")
        #expect(!n.isRunning)
        #expect(throws: KamailioNode.Error.self) { try n.listNodes() }

        try n.start()
        let nodes = try n.listNodes()
        #expect(nodes == [DMQListedNode(host: n.ip, port: n.port, proto: "*", resolvedIP: n.ip, status: "active", local: true)])
        #expect(n.pid != main)
    }

    @Test func nodesGetDistinctFreePortsAndOnlyLoopbackAddresses() throws {
        let x = try KamailioNode(name: "X", ip: "127.0.0.14")
        let y = try KamailioNode(name: "Y", ip: "127.0.0.14")
        #expect(x.port != y.port)
        #expect((20_000..<40_000).contains(x.port))
        #expect(x.dir != y.dir)
        #expect(throws: KamailioNode.Error.self) { try KamailioNode(name: "Z", ip: "10.0.0.1") }
        let cfg = try String(contentsOfFile: x.cfgPath, encoding: .utf8)
        #expect(cfg.contains("listen=udp:127.0.0.14:\(x.port)"))
        #expect(!cfg.contains(/@[A-Z_]+@/))
    }

    @Test func parsesKamcmdNodeList() {
        let text = """
            {
            \thost: 127.0.0.3
            \tport: 5093
            \tproto: *
            \tresolved_ip: 127.0.0.3
            \tstatus: disabled
            \tlast_notification: 0
            \tlocal: 0
            }
            {
            \thost: 127.0.0.1
            \tport: 
            \tproto: udp
            \tresolved_ip: 127.0.0.1
            \tstatus: active
            \tlast_notification: 0
            \tlocal: 1
            }

            """
        #expect(KamailioNode.parseNodeList(text) == [
            DMQListedNode(host: "127.0.0.3", port: 5093, proto: "*", resolvedIP: "127.0.0.3", status: "disabled", local: false),
            DMQListedNode(host: "127.0.0.1", port: nil, proto: "udp", resolvedIP: "127.0.0.1", status: "active", local: true),
        ])
    }
}
