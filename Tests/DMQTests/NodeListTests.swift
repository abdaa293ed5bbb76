import DMQ
import Testing

@Suite("Node addresses")
struct AddressTests {
    @Test func parsesHostPortTransport() throws {
        #expect(try DMQNodeAddress(parsing: "sip:127.0.0.1:5091") == node1)
        #expect(try DMQNodeAddress(parsing: "sip:10.0.0.1") == DMQNodeAddress(host: "10.0.0.1", port: 5060))
        #expect(try DMQNodeAddress(parsing: " sip:10.0.0.1:5070;transport=TCP;status=active;lr \r\n")
            == DMQNodeAddress(host: "10.0.0.1", port: 5070, transport: .tcp))
        #expect(try DMQNodeAddress(parsing: "sip:notification_peer@127.0.0.2:5092") == node2)
        #expect(try DMQNodeAddress(parsing: "sip:[::1]:5060;transport=tls")
            == DMQNodeAddress(host: "[::1]", port: 5060, transport: .tls))
        #expect(try DMQNodeAddress(parsing: "sip:Node-A.example.com:5060;transport=sctp")
            == DMQNodeAddress(host: "Node-A.example.com", port: 5060, transport: .sctp))
    }

    @Test("rejections have a readable reason", arguments: [
        ("sip:1.2.3.4:;status=active", "empty port"),
        ("sip:1.2.3.4:", "empty port"),
        ("sip:1.2.3.4:70000", "invalid port"),
        ("sip:1.2.3.4:50a", "invalid port"),
        ("sip:1.2.3.4:0", "port 0"),
        ("sips:1.2.3.4:5061", "not a sip: URI"),
        ("tel:+1234", "not a sip: URI"),
        ("hello there", "not a URI"),
        ("", "not a URI"),
        ("sip:", "no host"),
        ("sip:1.2.3.4;transport=ws", "unsupported transport 'ws'"),
        ("sip:1.2.3.4;transport", "unsupported transport"),
        ("sip:[::1:5060", "IPv6"),
        ("sip:a b", "not a valid SIP URI"),
    ])
    func rejects(text: String, reason: String) {
        #expect(throws: DMQError.self) { try DMQNodeAddress(parsing: text) }
        do {
            _ = try DMQNodeAddress(parsing: text)
        } catch {
            #expect(error.reason.contains(reason), "\(error.reason)")
        }
    }

    @Test func reasonsCannotInjectLines() {
        do {
            _ = try DMQNodeAddress(parsing: "sip:1.2.3.4:\u{1B}[2J\nFAKE LOG LINE" + String(repeating: "x", count: 500))
            Issue.record("accepted")
        } catch {
            #expect(!error.reason.contains("\n"))
            #expect(!error.reason.contains("\u{1B}"))
            #expect(error.reason.count < 200)
        }
    }

    @Test func renderedForms() {
        let tcp = DMQNodeAddress(host: "10.0.0.1", port: 5070, transport: .tcp)
        #expect(node1.uri == "sip:127.0.0.1:5091")
        #expect(node1.description == node1.uri)
        #expect(tcp.uri == "sip:10.0.0.1:5070;transport=tcp")
        #expect(node1.channelURI("htable") == "sip:htable@127.0.0.1:5091")
        #expect(tcp.channelURI("dialog") == "sip:dialog@10.0.0.1:5070;transport=tcp")
        #expect(DMQNodeAddress(host: "[::1]", port: 5060).uri == "sip:[::1]:5060")
    }

    @Test func identityIsByteExactHost() throws {
        #expect(try DMQNodeAddress(parsing: "sip:HOST.example:5060") != DMQNodeAddress(parsing: "sip:host.example:5060"))
        #expect(try DMQNodeAddress(parsing: "sip:1.2.3.4;transport=udp") == DMQNodeAddress(parsing: "sip:1.2.3.4:5060"))
        #expect(try DMQNodeAddress(parsing: "sip:1.2.3.4;transport=tcp") != DMQNodeAddress(parsing: "sip:1.2.3.4"))
    }

    @Test func statusWordsOfEveryGeneration() {
        #expect(DMQNodeState(word: "active") == .active)
        #expect(DMQNodeState(word: "not_active") == .notActive)
        #expect(DMQNodeState(word: "disabled") == .disabled)
        #expect(DMQNodeState(word: "pending") == .notActive)
        #expect(DMQNodeState(word: "timeout") == .notActive)
        #expect(DMQNodeState(word: "ACTIVE"[...]) == .active)
        #expect(DMQNodeState(word: "activ") == nil)
        #expect(DMQNodeState(word: "") == nil)
        #expect(DMQNodeState.notActive.rawValue == "not_active")
    }
}

@Suite("Node-list bodies")
struct NodeListTests {
    @Test func renderWritesCRLFEveryLineAndTransport() {
        let s = DMQNodeList.render([
            (node1, .active),
            (DMQNodeAddress(host: "10.0.0.1", port: 5070, transport: .tls), .notActive),
            (node3, .disabled),
        ])
        #expect(s == "sip:127.0.0.1:5091;status=active\r\nsip:10.0.0.1:5070;transport=tls;status=not_active\r\n"
            + "sip:127.0.0.3:5093;status=disabled\r\n")
        #expect(DMQNodeList.render([]) == "")
    }

    @Test func renderParseRoundTrip() {
        let entries: [(DMQNodeAddress, DMQNodeState)] = [
            (node1, .active), (DMQNodeAddress(host: "[2001:db8::2]", port: 5062, transport: .sctp), .disabled),
            (DMQNodeAddress(host: "n.example", port: 1, transport: .tcp), .notActive),
        ]
        let (lines, errors) = DMQNodeList.parse(bytes(DMQNodeList.render(entries)))
        #expect(errors.isEmpty)
        #expect(lines == entries.map { DMQNodeList.Line(address: $0.0, status: $0.1) })
    }

    @Test func badLinesAreSkippedOthersKept() {
        let body = "sip:10.0.0.1:5060;status=active\r\n"
            + "garbage\r\n"
            + "sip:10.0.0.2:5060;status=weird\r\n"
            + "sip:10.0.0.3:5060;status\r\n"
            + "   \r\n"
            + "sip:10.0.0.4:5060;status=disabled"
        let (lines, errors) = DMQNodeList.parse(bytes(body))
        #expect(lines.map(\.address.host) == ["10.0.0.1", "10.0.0.4"])
        #expect(lines.map(\.status) == [.active, .disabled])
        #expect(errors.count == 4)
        #expect(errors[0].hasPrefix("line 2: "))
        #expect(errors[1].hasPrefix("line 3: ") && errors[1].contains("unknown status 'weird'"))
        #expect(errors[2].hasPrefix("line 4: ") && errors[2].contains("unknown status"))
        #expect(errors[3] == "line 5: empty line")
    }

    @Test func maxLinesLimitsAndReportsOnce() {
        let body = (1...10).map { "sip:10.0.0.\($0):5060;status=active\r\n" }.joined()
        let (lines, errors) = DMQNodeList.parse(bytes(body), maxLines: 4)
        #expect(lines.count == 4)
        #expect(errors.count == 1)
        #expect(errors[0].contains("more than 4 lines"))
        let exact = DMQNodeList.parse(bytes(body), maxLines: 10)
        #expect(exact.lines.count == 10 && exact.errors.isEmpty)
    }

    @Test func nonUTF8AndNULBytesAreErrorsNotCrashes() {
        let body: [UInt8] = Array("sip:10.0.0.1:5060\r\n".utf8) + [0xFF, 0xFE, 0x00, 0x0A] + Array("sip:10.0.0.2\n".utf8)
        let (lines, errors) = DMQNodeList.parse(body)
        #expect(lines.map(\.address) == [addr("sip:10.0.0.1:5060"), addr("sip:10.0.0.2:5060")])
        #expect(errors.count == 1)
    }
}

/// `edge-cases.txt`: bodies sent to a real 5.6.3 node (which wedged on E–I); KSRHost's results.
@Suite("Edge cases A-K")
struct EdgeCaseTests {
    static let tester = DMQNodeAddress(host: "127.0.0.9", port: 5060)
    static let known = DMQNodeAddress(host: "127.0.0.51", port: 5099)
    static let before = "sip:127.0.0.60:5099;status=active"
    static let after = "sip:127.0.0.61:5099;status=active"

    /// node1 alone, then `body` between two good lines, as the tester sends it.
    func run(_ body: String, resolver: @escaping @Sendable (String) -> String? = { _ in nil })
        -> (m: DMQMembership, r: (reply: String, rebroadcast: [DMQOutgoing], report: DMQMergeReport, events: [DMQEvent])) {
        let m = membership(node1, resolver: resolver)
        let r = m.receivedNotification(body: bytes(Self.before + "\r\n" + body + Self.after + "\r\n"),
                                       maxForwards: 1, sender: Self.tester)
        #expect(m.status(addr(Self.before)) == .active)
        #expect(m.status(addr(Self.after)) == .active)
        #expect(lineSet(r.reply).isSuperset(of: [Self.before, Self.after, "sip:127.0.0.1:5091;status=active"]))
        #expect(m.node(node1)?.status == .active && m.node(node1)?.isLocal == true)
        return (m, r)
    }

    @Test func a_emptyBodyAnswersOwnList() {
        let m = membership(node1)
        let r = m.receivedNotification(body: [UInt8](), maxForwards: 1, sender: Self.tester)
        #expect(r.reply == "sip:127.0.0.1:5091;status=active\r\n")
        #expect(r.report.errors.isEmpty && r.report.newOrChanged == 0)
        #expect(r.rebroadcast.isEmpty && r.events.isEmpty)
        #expect(m.nodes().count == 1)
    }

    @Test func b_lfWithoutStatusIsActive() {
        let m = membership(node1)
        let r = m.receivedNotification(body: bytes("sip:127.0.0.50:5099\n"), maxForwards: 1, sender: Self.tester)
        #expect(r.report.errors.isEmpty)
        #expect(m.status(addr("sip:127.0.0.50:5099")) == .active)  // 6.1 rule (5.6 said pending)
        #expect(lineSet(r.reply) == ["sip:127.0.0.1:5091;status=active", "sip:127.0.0.50:5099;status=active"])
        _ = run("sip:127.0.0.50:5099\n")
    }

    @Test func c_unknownParameterIgnored() {
        let (m, r) = run("sip:127.0.0.51:5099;foo=bar;status=active\r\n")
        #expect(r.report.errors.isEmpty)
        #expect(m.status(Self.known) == .active)
        #expect(r.report.added == 3)
    }

    @Test func d_disabledForAKnownNode() {
        let m = membership(node1)
        m.add(Self.known, status: .active)
        let r = m.receivedNotification(body: bytes("sip:127.0.0.51:5099;status=disabled\r\n"), maxForwards: 1,
                                       sender: Self.tester)
        #expect(m.status(Self.known) == .disabled)
        #expect(r.events == [.changed(Self.known, from: .active, to: .disabled)])
        #expect(r.reply == "sip:127.0.0.1:5091;status=active\r\n")
        _ = run("sip:127.0.0.51:5099;status=disabled\r\n")
    }

    @Test func e_hostNameResolvedByTheResolver() {
        let (m, r) = run("sip:localhost:5098;status=active\r\n") { $0 == "localhost" ? "127.0.0.1" : nil }
        #expect(r.report.errors.isEmpty)
        let info = m.node(addr("sip:localhost:5098"))
        #expect(info?.resolvedIP == "127.0.0.1" && info?.status == .active)
        #expect(lineSet(r.reply).contains("sip:localhost:5098;status=active"))
    }

    @Test func e_h_unresolvableNameIsRejectedAlone() {
        for host in ["localhost", "no-such-host.invalid"] {
            let (m, r) = run("sip:\(host):5099;status=active\r\n")
            #expect(r.report.errors == ["cannot resolve '\(host)'"])
            #expect(r.report.added == 2)
            #expect(m.node(addr("sip:\(host):5099")) == nil)
        }
    }

    @Test func f_noFinalCRLFLosesNothing() {
        let m = membership(node1)
        let r = m.receivedNotification(body: bytes("sip:127.0.0.52:5099;status=active"), maxForwards: 1, sender: Self.tester)
        #expect(r.report.errors.isEmpty)
        #expect(m.status(addr("sip:127.0.0.52:5099")) == .active)
        let two = m.receivedNotification(body: bytes("sip:127.0.0.53:5099\r\nsip:127.0.0.54:5099;status=not_active"),
                                         maxForwards: 1, sender: Self.tester)
        #expect(two.report.added == 2 && two.report.errors.isEmpty)
        #expect(m.status(addr("sip:127.0.0.54:5099")) == .notActive)
    }

    @Test func g_notActiveIsAcceptedAndNotListed() {
        let (m, r) = run("sip:127.0.0.53:5099;status=not_active\r\n")
        #expect(r.report.errors.isEmpty)
        #expect(m.status(addr("sip:127.0.0.53:5099")) == .notActive)
        #expect(!r.reply.contains("127.0.0.53"))
        #expect(m.counts()[.notActive] == 1)
    }

    @Test func i_emptyLineAtTheEnd() {
        let m = membership(node1)
        let r = m.receivedNotification(body: bytes("sip:127.0.0.54:5099;status=active\r\n\r\n"), maxForwards: 1,
                                       sender: Self.tester)
        #expect(r.report.errors == ["line 2: empty line"])
        #expect(r.report.added == 1)
        #expect(m.status(addr("sip:127.0.0.54:5099")) == .active)
        _ = run("sip:127.0.0.54:5099;status=active\r\n\r\n")
    }

    @Test func j_uriWithoutPortMeans5060() {
        let (m, r) = run("sip:127.0.0.55;status=active\r\n")
        #expect(r.report.errors.isEmpty)
        #expect(m.status(DMQNodeAddress(host: "127.0.0.55", port: 5060)) == .active)
        #expect(lineSet(r.reply).contains("sip:127.0.0.55:5060;status=active"))
    }

    @Test func j_emptyPortAsKamailioEchoesItIsRejected() {
        let (m, r) = run("sip:127.0.0.55:;status=active\r\n")
        #expect(r.report.errors.count == 1)
        #expect(r.report.errors[0].hasPrefix("line 2: ") && r.report.errors[0].contains("empty port"))
        #expect(!m.nodes().contains { $0.address.host == "127.0.0.55" })
    }

    @Test func k_200WithANonListBody() {
        let m = membership(node1)
        m.add(node2, status: .notActive)
        let r = m.ok(node2, body: "hello there")
        #expect(m.status(node2) == .active)
        #expect(r.events == [.changed(node2, from: .notActive, to: .active)])
        #expect(r.report.errors.count == 1 && r.report.newOrChanged == 0)
        #expect(m.nodes().count == 2)
    }
}
