import KSRTestFixtures
import DMQ
import SIP
import Testing

@Suite("Kamailio 5.6.3 captures")
struct FixtureTests {
    /// The node-list body of each notification fixture, written out by hand.
    static let expectedLists: [String: [DMQNodeAddress]] = [
        "01": [node2],
        "02": [node2, node1],
        "03": [node3, node2, node1],
        "04": [node3, node1, node2],
        "05": [node3, node2, node1],
        "06": [node2, node1, node3],
        "26": [node2, node1],
        "27": [node3],
        "28": [node3, node2, node1],
        "29": [node3, node2, node1],
        "30": [node3, node1, node2],
        "31": [node3, node2],
        "32": [node2, node3, node1],
    ]

    @Test func allFixturesArePresent() {
        #expect(Fixtures.names.count == 32)
    }

    @Test("every fixture parses with SIPMessage", arguments: Fixtures.names)
    func parses(name: String) throws {
        let m = try SIPMessage(Fixtures.bytes(name))
        #expect(m.isRequest == (name.contains("request") || name.contains("retransmission")))
        #expect(m.callID != nil)
        #expect(m.body.count == m.contentLength)
    }

    @Test("node-list bodies parse to the expected lines", arguments: expectedLists.keys.sorted())
    func nodeListBody(number: String) throws {
        let m = try Fixtures.message(number)
        #expect(m.contentType == "text/plain")
        let (lines, errors) = DMQNodeList.parse(m.body)
        #expect(errors.isEmpty)
        let expected = try #require(Self.expectedLists[number])
        #expect(lines == expected.map { DMQNodeList.Line(address: $0, status: .active) })
        // every line says status=active: rendering gives the body back byte for byte
        let rendered = DMQNodeList.render(lines.map { ($0.address, $0.status ?? .disabled) })
        #expect(Array(rendered.utf8) == Array(m.body))
    }

    /// Fixture 01 rebuilt with its own values is byte-identical, and structurally equal.
    @Test func requestBuilderMatchesFixture01() throws {
        let original = try Fixtures.message("01")
        let via = try #require(original.via)
        let from = try #require(original.from)
        let built = DMQRequest.build(
            channel: "notification_peer", to: node1, from: node2,
            viaHost: via.host, viaPort: try #require(via.port), branch: try #require(via.branch),
            callID: try #require(original.callID), fromTag: try #require(from.tag),
            maxForwards: 2, contentType: "text/plain", body: original.body,
            userAgent: try #require(original.header(named: "User-Agent")))
        #expect(built == original.bytes)

        let m = try SIPMessage(built)
        #expect(m.method == .kdmq)
        #expect(m.requestURI == original.requestURI)
        #expect(m.fields.map(m.name(of:)) == original.fields.map(original.name(of:)))
        #expect(m.fields.map(m.value(of:)) == original.fields.map(original.value(of:)))
        #expect(m.maxForwards == 2)
        #expect(m.header(.cseq) == "10 KDMQ")
        let to = try #require(m.to)
        #expect(to.tag == nil)
        #expect(to.uri.description == m.requestURI)
        #expect(m.from?.uri.user == "notification_peer")
        #expect(m.from?.uri.hostPort == "127.0.0.2:5092")
        #expect(m.canFormReply)
    }

    @Test func requestBuilderOtherTransportsAndEmptyBody() throws {
        let dst = DMQNodeAddress(host: "[2001:db8::1]", port: 5070, transport: .tcp)
        let src = DMQNodeAddress(host: "10.0.0.1", port: 5060, transport: .tcp)
        let built = DMQRequest.build(
            channel: "htable", to: dst, from: src, viaHost: "2001:db8::9", viaPort: 5060,
            branch: "z9hG4bKx", callID: "c1@10.0.0.1", fromTag: "t1", maxForwards: 1,
            contentType: "", body: [UInt8](), userAgent: "")
        let m = try SIPMessage(built)
        #expect(m.requestURI == "sip:htable@[2001:db8::1]:5070;transport=tcp")
        #expect(m.header(.via) == "SIP/2.0/TCP [2001:db8::9]:5060;branch=z9hG4bKx")
        #expect(m.header(.from) == "<sip:htable@10.0.0.1:5060;transport=tcp>;tag=t1")
        #expect(m.header(.to) == "<sip:htable@[2001:db8::1]:5070;transport=tcp>")
        #expect(m.contentType == nil)
        #expect(m.header(named: "User-Agent") == nil)
        #expect(m.contentLength == 0)
        #expect(m.fields.map(m.name(of:)) == ["Via", "To", "From", "CSeq", "Call-ID", "Content-Length", "Max-Forwards"])
    }

    /// node1 (seed) receives fixture 01 (node2's join, MF 2): it answers the list of fixture 02
    /// and re-broadcasts with MF 1 to node2, as fixture 03's kind of request.
    @Test func seedAnswersJoinLikeFixture02() throws {
        let seed = membership(node1)
        let join = try Fixtures.message("01")
        let sender = try DMQNodeAddress(uri: try #require(join.from).uri)
        #expect(sender == node2)
        let r = seed.receivedNotification(body: join.body, maxForwards: join.maxForwards, sender: sender)
        #expect(r.report.added == 1)
        #expect(r.events == [.added(node2, .active)])
        #expect(lineSet(r.reply) == lineSet(try Fixtures.message("02").body))
        #expect(r.rebroadcast == [DMQOutgoing(target: node2, body: r.reply, maxForwards: 1)])
        #expect(try Fixtures.message("03").maxForwards == 1)
    }

    /// Fixtures 31/32: the restarted seed knows only itself, merges node2's ping (which lacks
    /// node1) and answers with all three nodes; MF 1 means no re-broadcast.
    @Test func restartedSeedAnswersPingLikeFixture32() throws {
        let seed = membership(node1)
        let ping = try Fixtures.message("31")
        let r = seed.receivedNotification(body: ping.body, maxForwards: ping.maxForwards, sender: node2)
        #expect(r.report.added == 2)
        #expect(r.rebroadcast.isEmpty)
        #expect(lineSet(r.reply) == lineSet(try Fixtures.message("32").body))
    }

    /// The joiner (node2) builds fixture 01's body and Max-Forwards.
    @Test func joinerSendsFixture01Body() throws {
        let joiner = membership(node2) { $0.notificationAddresses = [node1] }
        let out = joiner.join()
        let join = try Fixtures.message("01")
        #expect(out == [DMQOutgoing(target: node1, body: join.bodyText, maxForwards: try #require(join.maxForwards))])
    }
}
