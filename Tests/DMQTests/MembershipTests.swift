import DMQ
import Synchronization
import Testing

@Suite("Membership: join, ping, notifications")
struct MembershipProtocolTests {
    let n4 = DMQNodeAddress(host: "127.0.0.4", port: 5094)

    @Test func joinAddsNotificationAddressesAndSendsOwnLine() {
        let m = membership(node2) { $0.notificationAddresses = [node1, node2, node1, node3] }
        let out = m.join()
        let own = "sip:127.0.0.2:5092;status=active\r\n"
        #expect(out == [DMQOutgoing(target: node1, body: own, maxForwards: 2),
                        DMQOutgoing(target: node3, body: own, maxForwards: 2)])
        #expect(m.nodes().map(\.address) == [node2, node1, node3])
        #expect(m.nodes().map(\.status) == [.active, .active, .active])
        #expect(m.node(node1)?.isLocal == false && m.node(node2)?.isLocal == true)
        // a second join adds nothing and goes to every non-local node whatever its state
        m.timeout(node3)
        m.add(n4, status: .disabled)
        #expect(m.join().map(\.target) == [node1, node3, n4])
        #expect(m.nodes().count == 4)
    }

    @Test func joinWithoutNotificationAddressSendsNothing() {
        let m = membership(node1)
        #expect(m.join().isEmpty)
        #expect(m.ping().isEmpty)
        #expect(m.nodes().count == 1)
    }

    @Test func joinSkipsUnresolvableNamesUntilTheyResolve() {
        let seed = addr("sip:seed.example:5060")
        let box = Flag()
        let m = membership(node2, { $0.notificationAddresses = [seed] }) { name in
            name == "seed.example" && box.isSet ? "10.9.9.9" : nil
        }
        #expect(m.join().isEmpty)
        #expect(m.nodes().count == 1)
        box.set()
        #expect(m.ping().map(\.target) == [seed])  // alone: the ping re-joins
        #expect(m.node(seed)?.resolvedIP == "10.9.9.9")
        #expect(m.isNode(ip: "10.9.9.9"))
    }

    @Test func pingSendsFullListWithMF1ToEveryNonLocalNode() {
        let m = membership(node1)
        m.add(node2, status: .active)
        m.add(node3, status: .notActive)
        m.add(n4, status: .disabled)
        let out = m.ping()
        let body = "sip:127.0.0.1:5091;status=active\r\nsip:127.0.0.2:5092;status=active\r\n"
        #expect(out == [node2, node3, n4].map { DMQOutgoing(target: $0, body: body, maxForwards: 1) })
        #expect(m.ownListBody() == body)
    }

    @Test func pingWhenAloneRejoins() {
        let m = membership(node2) { $0.notificationAddresses = [node1] }
        _ = m.join()
        m.timeout(node1)  // notification address: not_active
        #expect(m.status(node1) == .notActive)
        #expect(m.ping() == [DMQOutgoing(target: node1, body: m.ownListBody(), maxForwards: 1)])
        m.remove(node1)
        #expect(m.ping() == [DMQOutgoing(target: node1, body: "sip:127.0.0.2:5092;status=active\r\n", maxForwards: 2)])
        #expect(m.status(node1) == .active)
    }

    @Test func rebroadcastOnlyWhenSomethingChangedAndMFAllows() {
        let m = membership(node1)
        m.add(node3, status: .active)
        m.add(n4, status: .notActive)
        // join from node2 (MF 2): new -> re-broadcast MF 1 to active nodes, node2 included
        let r = m.notify([node2.uri + ";status=active"], mf: 2, from: node2)
        #expect(r.report.added == 1)
        #expect(r.rebroadcast.map(\.target) == [node3, node2])
        #expect(r.rebroadcast.allSatisfy { $0.maxForwards == 1 && $0.body == r.reply })
        #expect(lineSet(r.reply) == [node1.uri + ";status=active", node2.uri + ";status=active",
                                     node3.uri + ";status=active"])
        // the same again: nothing new, no re-broadcast
        #expect(m.notify([node2.uri + ";status=active"], mf: 2, from: node2).rebroadcast.isEmpty)
        // something new but MF 1 (a ping) or no Max-Forwards: no re-broadcast
        #expect(m.notify(["sip:10.0.0.1:5060"], mf: 1, from: node2).rebroadcast.isEmpty)
        #expect(m.notify(["sip:10.0.0.2:5060"], mf: nil, from: node2).rebroadcast.isEmpty)
        #expect(m.notify(["sip:10.0.0.3:5060"], mf: 0, from: node2).rebroadcast.isEmpty)
        // a change counts too; MF 5 -> 4
        let c = m.notify([n4.uri + ";status=active"], mf: 5, from: node2)
        #expect(c.report.changed == 1 && c.report.added == 0)
        #expect(c.events == [.changed(n4, from: .notActive, to: .active)])
        #expect(Set(c.rebroadcast.map(\.target)) == Set([node2, node3, n4] + ["10.0.0.1", "10.0.0.2", "10.0.0.3"].map {
            DMQNodeAddress(host: $0, port: 5060)
        }))
        #expect(c.rebroadcast.allSatisfy { $0.maxForwards == 4 })
    }

    @Test func localLineNeverChangesLocal() {
        let m = membership(node1)
        let r = m.notify([node1.uri + ";status=disabled"], mf: 2, from: node2)
        #expect(r.report.newOrChanged == 0 && r.events.isEmpty)
        #expect(m.status(node1) == .active)
        #expect(m.timeout(node1).isEmpty)
        #expect(m.ok(node1).events.isEmpty)
        #expect(m.nodes().count == 1)
    }

    @Test func lineWithoutStatusDoesNotChangeAnEntry() {
        let m = membership(node1)
        m.add(node2, status: .notActive)
        let r = m.notify([node2.uri], from: node3)
        #expect(r.report.newOrChanged == 0)
        #expect(m.status(node2) == .notActive)
    }

    @Test func absentNodesAreNeverRemovedByAMerge() {
        let m = membership(node1)
        m.add(node2, status: .active)
        m.add(node3, status: .active)
        m.notify([node1.uri + ";status=active"], mf: 2, from: node2)
        #expect(m.peers() == [node2, node3])
    }

    @Test func thirdPartyChangesApplyUnlessDisabled() {
        let m = membership(node1)
        m.add(node3, status: .active)
        m.notify([node3.uri + ";status=not_active"], from: node2)
        #expect(m.status(node3) == .notActive)
        m.notify([node3.uri + ";status=pending"], from: node2)  // G1 word, same state: no change
        #expect(m.status(node3) == .notActive)
        m.notify([node3.uri + ";status=disabled"], from: node2)
        #expect(m.status(node3) == .disabled)
        // a stale third-party list does not revive a disabled entry
        let stale = m.notify([node3.uri + ";status=active", node2.uri + ";status=active"], mf: 2, from: node2)
        #expect(m.status(node3) == .disabled)
        #expect(stale.events == [.added(node2, .active)])
        m.notify([node3.uri + ";status=not_active"], from: nil)
        #expect(m.status(node3) == .disabled)
    }

    @Test func sendersOwnLineIsAuthoritative() {
        let m = membership(node1)
        m.add(node3, status: .disabled)
        // revival by the sender's own line
        let r = m.notify([node3.uri + ";status=active"], mf: 2, from: node3)
        #expect(m.status(node3) == .active)
        #expect(r.events == [.changed(node3, from: .disabled, to: .active)])
        #expect(r.rebroadcast.map(\.target) == [node3])
        // shutdown notice: the sender's own disabled line
        let s = m.notify([node3.uri + ";status=disabled"], mf: 1, from: node3)
        #expect(m.status(node3) == .disabled)
        #expect(s.events == [.changed(node3, from: .active, to: .disabled)])
        #expect(!s.reply.contains("127.0.0.3"))
        // ... which the next 408 turns into a removal
        #expect(m.timeout(node3) == [.removed(node3)])
    }

    @Test func shutdownBodyIsLocalDisabled() {
        let m = membership(DMQNodeAddress(host: "10.0.0.1", port: 5060, transport: .tcp))
        #expect(m.shutdownBody() == "sip:10.0.0.1:5060;transport=tcp;status=disabled\r\n")
        #expect(m.status(m.config.local) == .active)
    }

    @Test func replyMergesBodyWithTheReplierAsSender() {
        let m = membership(node2) { $0.notificationAddresses = [node1] }
        _ = m.join()
        m.timeout(node1)
        m.add(node3, status: .disabled)
        // fixture 02-like 200 from node1 listing node3 active: node3 stays disabled (third party)
        let r = m.ok(node1, body: "sip:127.0.0.2:5092;status=active\r\nsip:127.0.0.1:5091;status=active\r\n"
            + "sip:127.0.0.3:5093;status=active\r\nsip:127.0.0.7:5097;status=active\r\n")
        #expect(m.status(node1) == .active)
        #expect(m.status(node3) == .disabled)
        #expect(r.report.added == 1 && r.report.changed == 0)
        #expect(r.events == [.changed(node1, from: .notActive, to: .active),
                             .added(addr("sip:127.0.0.7:5097"), .active)])
    }

    @Test func replyFromUnknownNodeDoesNotAddIt() {
        let m = membership(node1)
        let r = m.ok(node2, body: "")
        #expect(r.events.isEmpty)
        #expect(m.node(node2) == nil)
        #expect(m.timeout(node2).isEmpty)
        // but its body merges
        m.ok(node2, body: node2.uri + ";status=active\r\n")
        #expect(m.status(node2) == .active)
    }

    @Test func otherCodesAreIgnored() {
        let m = membership(node1)
        m.add(node2, status: .notActive)
        for code in [100, 202, 404, 400, 480, 500, 503, 603] {
            let r = m.replyReceived(from: node2, status: code, body: bytes(node3.uri + "\r\n"))
            #expect(r.events.isEmpty && r.report.newOrChanged == 0)
        }
        #expect(m.status(node2) == .notActive)
        #expect(m.node(node3) == nil)
    }
}

@Suite("Membership: 408 state machine (Kamailio 6.1)")
struct FailureStateMachineTests {
    @Test func defaultActiveToDisabledToRemoved() {
        let m = membership(node1)
        m.add(node2, status: .active)
        #expect(m.timeout(node2) == [.changed(node2, from: .active, to: .disabled)])
        #expect(m.activePeers().isEmpty && m.peers() == [node2])
        #expect(m.timeout(node2) == [.removed(node2)])
        #expect(m.node(node2) == nil)
        #expect(m.timeout(node2).isEmpty)
    }

    @Test func notActiveGoesToDisabledByDefault() {
        let m = membership(node1)
        m.add(node2, status: .notActive)
        #expect(m.timeout(node2) == [.changed(node2, from: .notActive, to: .disabled)])
    }

    @Test func notificationAddressIsProtected() {
        let seed = node1
        let m = membership(node2) { $0.notificationAddresses = [seed] }
        _ = m.join()
        #expect(m.timeout(seed) == [.changed(seed, from: .active, to: .notActive)])
        for _ in 0..<5 { #expect(m.timeout(seed).isEmpty) }
        #expect(m.status(seed) == .notActive)
        // the same identity learnt from a list is still the notification address (identity compare)
        m.remove(seed)
        m.notify([addr("sip:127.0.0.1:5091;transport=udp").uri + ";status=active"], from: node3)
        #expect(m.timeout(seed) == [.changed(seed, from: .active, to: .notActive)])
        // a 200 revives it
        #expect(m.ok(seed).events == [.changed(seed, from: .notActive, to: .active)])
    }

    @Test func disabledNotificationAddressIsRemoved() {
        let m = membership(node2) { $0.notificationAddresses = [node1] }
        _ = m.join()
        m.notify([node1.uri + ";status=disabled"], from: node1)
        #expect(m.timeout(node1) == [.removed(node1)])
    }

    @Test func removeInactiveOffKeepsNotActive() {
        let m = membership(node1) { $0.removeInactive = false }
        m.add(node2, status: .active)
        #expect(m.timeout(node2) == [.changed(node2, from: .active, to: .notActive)])
        #expect(m.timeout(node2).isEmpty)
        #expect(m.status(node2) == .notActive)
        m.add(node3, status: .disabled)
        #expect(m.timeout(node3) == [.removed(node3)])
    }

    @Test func failCountsWithDefaultThresholds() {
        let m = membership(node1) { $0.failCountEnabled = true }
        m.add(node2, status: .active)
        #expect(m.timeout(node2) == [.changed(node2, from: .active, to: .notActive)])  // 1 > 0
        #expect(m.node(node2)?.failCount == 1)
        #expect(m.timeout(node2) == [.changed(node2, from: .notActive, to: .disabled)])  // 2 > 1
        #expect(m.node(node2)?.failCount == 2)
        #expect(m.timeout(node2) == [.removed(node2)])
    }

    @Test func failCountsMoveOneStepPer408() {
        let m = membership(node1) {
            $0.failCountEnabled = true
            $0.failCountThresholdNotActive = 2
            $0.failCountThresholdDisabled = 1  // already exceeded when not_active is reached
        }
        m.add(node2, status: .active)
        #expect(m.timeout(node2).isEmpty)
        #expect(m.timeout(node2).isEmpty)
        #expect(m.node(node2)?.failCount == 2 && m.status(node2) == .active)
        #expect(m.timeout(node2) == [.changed(node2, from: .active, to: .notActive)])  // not straight to disabled
        #expect(m.timeout(node2) == [.changed(node2, from: .notActive, to: .disabled)])
    }

    @Test func failCountsHigherDisabledThreshold() {
        let m = membership(node1) {
            $0.failCountEnabled = true
            $0.failCountThresholdDisabled = 3
        }
        m.add(node2, status: .active)
        #expect(m.timeout(node2) == [.changed(node2, from: .active, to: .notActive)])
        #expect(m.timeout(node2).isEmpty)
        #expect(m.timeout(node2).isEmpty)
        #expect(m.node(node2)?.failCount == 3)
        #expect(m.timeout(node2) == [.changed(node2, from: .notActive, to: .disabled)])
    }

    @Test func okResetsFailCount() {
        let m = membership(node1) {
            $0.failCountEnabled = true
            $0.failCountThresholdNotActive = 5
        }
        m.add(node2, status: .active)
        m.timeout(node2)
        m.timeout(node2)
        #expect(m.node(node2)?.failCount == 2)
        #expect(m.ok(node2).events.isEmpty)
        #expect(m.node(node2)?.failCount == 0 && m.status(node2) == .active)
    }

    @Test func failCountsApplyToNotificationAddressesToo() {
        let m = membership(node2) {
            $0.notificationAddresses = [node1]
            $0.failCountEnabled = true
        }
        _ = m.join()
        m.timeout(node1)
        #expect(m.timeout(node1) == [.changed(node1, from: .notActive, to: .disabled)])
    }
}

@Suite("Membership: table")
struct MembershipTableTests {
    @Test func maxNodesCapsTheTable() {
        let m = membership(node1) { $0.maxNodes = 4 }
        let lines = (1...10).map { "sip:10.0.0.\($0):5060;status=active" }
        let r = m.notify(lines, mf: 2, from: nil)
        #expect(r.report.added == 3)
        #expect(r.report.errors.count == 7)
        #expect(r.report.errors.allSatisfy { $0.contains("node table full") })
        #expect(m.nodes().count == 4)
        // changes to existing entries still apply when full
        let c = m.notify(["sip:10.0.0.2:5060;status=disabled"], from: nil)
        #expect(c.report.changed == 1)
        #expect(!m.add(DMQNodeAddress(host: "10.1.1.1", port: 5060), status: .active))
        m.remove(DMQNodeAddress(host: "10.0.0.1", port: 5060))
        #expect(m.add(DMQNodeAddress(host: "10.1.1.1", port: 5060), status: .active))
    }

    @Test func hostileListCannotExceedDefaultCap() {
        let m = membership(node1)
        var body = ""
        for i in 0..<600 { body += "sip:10.\(i / 250).\(i % 250).1:5060\r\n" }
        let r = m.receivedNotification(body: bytes(body), maxForwards: 70, sender: nil)
        #expect(m.nodes().count <= 256)
        #expect(r.report.errors.contains { $0.contains("more than 256 lines") })
        #expect(r.rebroadcast.count == m.activePeers().count)
    }

    @Test func isNodeByResolvedIP() {
        let name = addr("sip:peer.example:5070")
        let m = membership(node1) { _ in } resolver: { $0 == "peer.example" ? "0:0:0:0:0:0:0:1" : nil }
        m.add(node2, status: .disabled)
        m.add(name, status: .notActive)
        m.add(DMQNodeAddress(host: "[2001:DB8:0:0:0:0:0:5]", port: 5060), status: .active)
        #expect(m.isNode(ip: "127.0.0.2"))  // any state
        #expect(!m.isNode(ip: "127.0.0.1"))  // the local node is not "a node" here
        #expect(!m.isNode(ip: "127.0.0.3"))
        #expect(m.node(name)?.resolvedIP == "::1")
        #expect(m.isNode(ip: "::1") && m.isNode(ip: "[::1]"))
        #expect(m.isNode(ip: "2001:db8::5"))
        #expect(m.isNode(ip: "::ffff:127.0.0.2"))  // IPv4-mapped source of a dual-stack socket
        #expect(!m.isNode(ip: "not an ip"))
        #expect(m.node(node1)?.resolvedIP == "127.0.0.1")
    }

    @Test("IP literals compare by value", arguments: [
        ("[2001:db8:0:1:0:0:0:1]", "2001:DB8:0:1::1", "2001:db8:0:1::1"),
        ("[1:0:0:2:0:0:0:3]", "1::2:0:0:0:3", "1:0:0:2::3"),
        ("[fe80::0:0:1]", "[FE80:0:0:0:0:0:0:1]", "fe80::1"),
        ("[::ffff:10.1.2.3]", "10.1.2.3", "10.1.2.3"),
        ("[1:2:3:4:5:6:7:8]", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"),
        ("[1:0:2:3:4:5:6:7]", "1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7"),
        ("[::1.2.3.4]", "::102:304", "::102:304"),
        ("010.001.002.003", "10.1.2.3", "10.1.2.3"),
    ])
    func ipLiterals(host: String, source: String, canonical: String) {
        let m = membership(node1)
        let a = DMQNodeAddress(host: host, port: 5060)
        #expect(m.add(a, status: .active))
        #expect(m.node(a)?.resolvedIP == canonical)
        #expect(m.isNode(ip: source))
        #expect(!m.isNode(ip: "10.9.9.9"))
    }

    @Test func notIPLiteralsGoToTheResolver() {
        let asked = Recorder()
        let m = membership(node1) { _ in } resolver: { name in
            asked.append(name)
            return nil
        }
        for host in ["1.2.3", "1.2.3.4.5", "256.1.1.1", "1..2.3", "[1::2::3]", "[1:2:3:4:5:6:7:8:9]", "[::g]", "a.b"] {
            #expect(!m.add(DMQNodeAddress(host: host, port: 5060), status: .active))
        }
        #expect(asked.values.count == 8)
    }

    @Test func removeNeverDeletesLocal() {
        let m = membership(node1)
        m.add(node2, status: .active)
        #expect(!m.remove(node1))
        #expect(!m.remove(node3))
        #expect(m.remove(node2))
        #expect(!m.remove(node2))
        #expect(m.nodes().map(\.address) == [node1])
        // a removed node comes back with the next list naming it
        m.notify([node2.uri + ";status=active"], from: node3)
        #expect(m.status(node2) == .active)
    }

    @Test func addReportsDuplicatesAndUnresolvable() {
        let m = membership(node1)
        #expect(!m.add(node1, status: .active))
        #expect(m.add(node2, status: .notActive))
        #expect(!m.add(node2, status: .active))
        #expect(m.status(node2) == .notActive)
        #expect(!m.add(addr("sip:unknown.example"), status: .active))
    }

    @Test func countsEveryStateNonLocal() {
        let m = membership(node1)
        #expect(m.counts() == [.active: 0, .notActive: 0, .disabled: 0])
        m.add(node2, status: .active)
        m.add(node3, status: .active)
        m.add(DMQNodeAddress(host: "10.0.0.1", port: 5060), status: .disabled)
        #expect(m.counts() == [.active: 2, .notActive: 0, .disabled: 1])
        m.timeout(node3)
        #expect(m.counts() == [.active: 1, .notActive: 0, .disabled: 2])
        #expect(m.activePeers() == [node2])
        #expect(m.peers() == [node2, node3, DMQNodeAddress(host: "10.0.0.1", port: 5060)])
    }

    @Test func markKSRHost() {
        let m = membership(node1)
        m.add(node2, status: .active)
        m.markKSRHost(node2)
        m.markKSRHost(node3)  // unknown: no-op
        #expect(m.node(node2)?.isKSRHost == true)
        #expect(m.node(node3) == nil)
        m.timeout(node2)
        #expect(m.node(node2)?.isKSRHost == true)
        m.remove(node2)
        m.add(node2, status: .active)
        #expect(m.node(node2)?.isKSRHost == false)
    }

    @Test func nodesInInsertionOrderWithInfo() {
        let m = membership(node1)
        m.notify([node3.uri + ";status=active", node2.uri + ";status=not_active"], from: nil)
        let all = m.nodes()
        #expect(all.map(\.address) == [node1, node3, node2])
        #expect(all[0] == DMQNodeInfo(address: node1, status: .active, resolvedIP: "127.0.0.1", isLocal: true,
                                      failCount: 0, isKSRHost: false))
        #expect(all[2].status == .notActive && all[2].resolvedIP == "127.0.0.2" && !all[2].isLocal)
    }

    @Test func resolverIsOnlyAskedAboutNames() {
        let asked = Recorder()
        let m = membership(node1) { _ in } resolver: { name in
            asked.append(name)
            return "10.0.0.9"
        }
        m.notify(["sip:127.0.0.5:5060", "sip:[::2]:5060", "sip:a.example", "sip:a.example:5070", "sip:b.example"],
                 from: nil)
        #expect(asked.values == ["a.example", "b.example"])
        #expect(m.nodes().count == 6)
    }

    @Test func concurrentUseKeepsTheTableConsistent() async {
        let m = membership(node1) { $0.maxNodes = 64 }
        await withTaskGroup(of: Void.self) { g in
            for t in 0..<8 {
                g.addTask {
                    for i in 0..<200 {
                        let a = DMQNodeAddress(host: "10.0.\(t).\(i % 40)", port: 5060)
                        switch i % 5 {
                        case 0: m.notify([a.uri + ";status=active"], mf: 2, from: a)
                        case 1: m.timeout(a)
                        case 2: m.ok(a, body: a.uri + "\r\n")
                        case 3: _ = m.ping()
                        default: m.remove(a)
                        }
                    }
                }
            }
        }
        let all = m.nodes()
        #expect(all.count <= 64)
        #expect(all.first?.isLocal == true)
        #expect(Set(all.map(\.address)).count == all.count)
    }
}

/// A small cluster whose messages are delivered synchronously in memory.
@Suite("Membership: simulated cluster")
struct ClusterTests {
    final class Cluster {
        var nodes: [DMQNodeAddress: DMQMembership] = [:]
        var down: Set<DMQNodeAddress> = []
        var sent: [(from: DMQNodeAddress, out: DMQOutgoing)] = []

        func start(_ a: DMQNodeAddress, seeds: [DMQNodeAddress]) {
            nodes[a] = membership(a) { $0.notificationAddresses = seeds }
            down.remove(a)
            deliver(from: a, nodes[a]!.join())
        }

        /// Every node pings; answers arrive at once, timeouts (tm's fr_timer) only after all
        /// pings of the tick, as on the wire.
        func tick() {
            var timeouts: [(DMQNodeAddress, DMQNodeAddress)] = []
            for a in nodes.keys.sorted(by: { $0.host < $1.host }) where !down.contains(a) {
                deliver(from: a, nodes[a]!.ping()) { timeouts.append(($0, $1)) }
            }
            for (src, dst) in timeouts { nodes[src]!.timeout(dst) }
        }

        func deliver(from sender: DMQNodeAddress, _ outgoing: [DMQOutgoing],
                     timedOut: ((DMQNodeAddress, DMQNodeAddress) -> Void)? = nil) {
            var queue = outgoing.map { (sender, $0) }
            while !queue.isEmpty {
                let (src, out) = queue.removeFirst()
                sent.append((src, out))
                guard let srcNode = nodes[src], !down.contains(src) else { continue }
                guard let dst = nodes[out.target], !down.contains(out.target) else {
                    if let timedOut { timedOut(src, out.target) } else { srcNode.timeout(out.target) }
                    continue
                }
                let r = dst.receivedNotification(body: bytes(out.body), maxForwards: out.maxForwards, sender: src)
                queue += r.rebroadcast.map { (out.target, $0) }
                srcNode.ok(out.target, body: r.reply)
            }
        }

        func view(_ a: DMQNodeAddress) -> [DMQNodeAddress: DMQNodeState] {
            Dictionary(uniqueKeysWithValues: nodes[a]!.nodes().map { ($0.address, $0.status) })
        }
    }

    @Test func convergesThenDetectsCrashAndRejoin() {
        let c = Cluster()
        c.start(node1, seeds: [])
        c.start(node2, seeds: [node1])
        c.start(node3, seeds: [node1])
        let all: [DMQNodeAddress: DMQNodeState] = [node1: .active, node2: .active, node3: .active]
        for a in [node1, node2, node3] { #expect(c.view(a) == all) }
        #expect(c.sent.filter { $0.out.maxForwards == 2 }.count == 2)  // the two joins

        // node3 crashes: disabled at the first failed ping, removed at the second
        c.down.insert(node3)
        c.tick()
        #expect(c.nodes[node1]!.status(node3) == .disabled)
        #expect(c.nodes[node2]!.status(node3) == .disabled)
        c.tick()
        #expect(c.nodes[node1]!.node(node3) == nil)
        #expect(c.nodes[node2]!.node(node3) == nil)

        // node3 restarts and rejoins; everyone is active again
        c.start(node3, seeds: [node1])
        for a in [node1, node2, node3] { #expect(c.view(a) == all) }

        // the seed crashes: it is a notification address for node2 and node3, so it stays not_active
        c.down.insert(node1)
        c.tick()
        c.tick()
        c.tick()
        #expect(c.nodes[node2]!.status(node1) == .notActive)
        #expect(c.nodes[node3]!.status(node1) == .notActive)
        // it restarts alone and without notification address; the next pings bring it back
        c.start(node1, seeds: [])
        c.tick()
        for a in [node1, node2, node3] { #expect(c.view(a) == all) }
    }

    @Test func gracefulShutdownNoticeIsHonoured() {
        let c = Cluster()
        c.start(node1, seeds: [])
        c.start(node2, seeds: [node1])
        c.start(node3, seeds: [node1])
        let body = c.nodes[node3]!.shutdownBody()
        c.deliver(from: node3, c.nodes[node3]!.peers().map { DMQOutgoing(target: $0, body: body, maxForwards: 1) })
        c.down.insert(node3)
        #expect(c.nodes[node1]!.status(node3) == .disabled)
        #expect(c.nodes[node2]!.status(node3) == .disabled)
        c.tick()
        #expect(c.nodes[node1]!.node(node3) == nil)
    }
}

/// A thread-safe flag for resolver closures.
final class Flag: Sendable {
    private let value = Mutex(false)
    var isSet: Bool { value.withLock { $0 } }
    func set() { value.withLock { $0 = true } }
}

/// A thread-safe list of strings for resolver closures.
final class Recorder: Sendable {
    private let list = Mutex<[String]>([])
    var values: [String] { list.withLock { $0 } }
    func append(_ s: String) { list.withLock { $0.append(s) } }
}
