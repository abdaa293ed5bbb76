import KSRTestFixtures
import SIP
import Testing

@Suite struct BuilderTests {
    static func request(via: String, to: String = "<sip:bob@example.com>", extra: String = "") -> SIPMessage? {
        parse("""
            OPTIONS sip:bob@example.com SIP/2.0
            Via: \(via)
            From: <sip:alice@example.com>;tag=f1
            To: \(to)
            Call-ID: cid-1
            CSeq: 5 OPTIONS
            \(extra)Content-Length: 0


            """)
    }

    /// The top Via line of a 200 reply built for `via` received from `source`.
    static func topVia(_ via: String, from source: (String, Int)) -> String? {
        guard let m = request(via: via) else { return nil }
        let reply = SIPResponseBuilder.reply(to: m, status: 200, reason: "OK", source: source, toTag: "t")
        return (try? SIPMessage(reply))?.header(.via)
    }

    @Test func viaReceivedAndRPort() {
        // same address: untouched
        #expect(Self.topVia("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa", from: ("10.0.0.1", 5060))
                == "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa")
        // different address: received after branch
        #expect(Self.topVia("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa;foo=bar", from: ("192.0.2.1", 5060))
                == "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa;received=192.0.2.1;foo=bar")
        // hostname: received
        #expect(Self.topVia("SIP/2.0/UDP pc.example.com;branch=z9hG4bKa", from: ("192.0.2.1", 5060))
                == "SIP/2.0/UDP pc.example.com;branch=z9hG4bKa;received=192.0.2.1")
        // no branch: at the end
        #expect(Self.topVia("SIP/2.0/UDP 10.0.0.1;x=1", from: ("192.0.2.1", 5060))
                == "SIP/2.0/UDP 10.0.0.1;x=1;received=192.0.2.1")
        // empty rport: filled in place, received follows it even for the same address (RFC 3581)
        #expect(Self.topVia("SIP/2.0/UDP 10.0.0.1:5060;rport;branch=z9hG4bKa", from: ("10.0.0.1", 5062))
                == "SIP/2.0/UDP 10.0.0.1:5060;rport=5062;received=10.0.0.1;branch=z9hG4bKa")
        // rport with a value is overwritten with the real source port
        #expect(Self.topVia("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa;rport=1", from: ("192.0.2.1", 6000))
                == "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa;rport=6000;received=192.0.2.1")
        // an existing received is replaced, not duplicated
        #expect(Self.topVia("SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKa;received=1.1.1.1", from: ("192.0.2.1", 5060))
                == "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKa;received=192.0.2.1")
        #expect(Self.topVia("SIP/2.0/UDP 10.0.0.1;received=1.1.1.1;rport;branch=z9hG4bKa", from: ("192.0.2.1", 7))
                == "SIP/2.0/UDP 10.0.0.1;rport=7;received=192.0.2.1;branch=z9hG4bKa")
        #expect(Self.topVia("SIP/2.0/UDP 10.0.0.1;rport;branch=z9hG4bKa;received=1.1.1.1", from: ("192.0.2.1", 7))
                == "SIP/2.0/UDP 10.0.0.1;rport=7;received=192.0.2.1;branch=z9hG4bKa")
        // IPv6: compared numerically, received written without brackets
        #expect(Self.topVia("SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bKa", from: ("2001:db8:0:0::1", 5060))
                == "SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bKa")
        #expect(Self.topVia("SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bKa", from: ("[2001:db8::2]", 5060))
                == "SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bKa;received=2001:db8::2")
        // only the first value of a multi-valued Via line is touched
        let multi = Self.request(via: "SIP/2.0/UDP a.example.com;branch=z9hG4bK1, SIP/2.0/UDP b.example.com;rport;branch=z9hG4bK2")
        let reply = try? SIPMessage(SIPResponseBuilder.reply(
            to: #require(multi), status: 200, reason: "OK", source: ("192.0.2.9", 5999), toTag: "t"))
        #expect(reply?.header(.via)
                == "SIP/2.0/UDP a.example.com;branch=z9hG4bK1;received=192.0.2.9, SIP/2.0/UDP b.example.com;rport;branch=z9hG4bK2")
    }

    @Test func toTag() throws {
        let m = try #require(Self.request(via: "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKa"))
        func to(_ status: Int, _ msg: SIPMessage = m, tag: String = "gen") throws -> String? {
            try SIPMessage(SIPResponseBuilder.reply(to: msg, status: status, reason: "R",
                                                    source: ("10.0.0.1", 5060), toTag: tag)).header(.to)
        }
        #expect(try to(100) == "<sip:bob@example.com>")
        #expect(try to(180) == "<sip:bob@example.com>;tag=gen")
        #expect(try to(200) == "<sip:bob@example.com>;tag=gen")
        #expect(try to(101) == "<sip:bob@example.com>;tag=gen")
        #expect(try to(486) == "<sip:bob@example.com>;tag=gen")
        #expect(try to(200, tag: "") == "<sip:bob@example.com>")
        let tagged = try #require(Self.request(via: "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKa", to: "<sip:bob@example.com>;tag=old"))
        #expect(try to(200, tagged) == "<sip:bob@example.com>;tag=old")
        let spec = try #require(Self.request(via: "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKa", to: "sip:bob@example.com"))
        let specTo = try #require(try SIPMessage(SIPResponseBuilder.reply(
            to: spec, status: 200, reason: "OK", source: ("10.0.0.1", 5060), toTag: "gen")).to)
        #expect(specTo.tag == "gen")
        #expect(specTo.uri.parameters.isEmpty)
        let inURI = try #require(Self.request(via: "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKa", to: "<sip:bob@example.com;tag=notatag>"))
        #expect(try to(200, inURI) == "<sip:bob@example.com;tag=notatag>;tag=gen")
    }

    @Test func replyLayout() throws {
        let m = try #require(Self.request(
            via: "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKa",
            extra: "Record-Route: <sip:p1.example.com;lr>\nv: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKb\nUser-Agent: x\n"))
        let ok = string(SIPResponseBuilder.reply(
            to: m, status: 200, reason: "OK", source: ("10.0.0.1", 5060), toTag: "t",
            extraHeaders: ["Contact: <sip:me@10.0.0.2>", "Allow: OPTIONS\r\nSupported: path\r\n", "\r\n"],
            body: Array("hi".utf8), server: "ksr"))
        #expect(ok == """
            SIP/2.0 200 OK\r
            Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKa\r
            From: <sip:alice@example.com>;tag=f1\r
            To: <sip:bob@example.com>;tag=t\r
            Call-ID: cid-1\r
            CSeq: 5 OPTIONS\r
            Record-Route: <sip:p1.example.com;lr>\r
            v: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKb\r
            Contact: <sip:me@10.0.0.2>\r
            Allow: OPTIONS\r
            Supported: path\r
            Server: ksr\r
            Content-Length: 2\r
            \r
            hi
            """)
        // Record-Route only for 180...299
        for (status, hasRR) in [(100, false), (180, true), (299, true), (302, false), (404, false)] {
            let r = try SIPMessage(SIPResponseBuilder.reply(to: m, status: status, reason: "x",
                                                            source: ("10.0.0.1", 5060), toTag: "t"))
            #expect((r.header(.recordRoute) != nil) == hasRR, "\(status)")
            #expect(r.header(.userAgent) == nil)
            #expect(r.header(.server) == nil)
            #expect(r.contentLength == 0)
        }
        // CR/LF in the reason phrase cannot inject headers
        let evil = try SIPMessage(SIPResponseBuilder.reply(to: m, status: 500, reason: "Oops\r\nX-Injected: 1",
                                                           source: ("10.0.0.1", 5060), toTag: "t"))
        #expect(evil.header(named: "X-Injected") == nil)
        #expect(evil.reasonPhrase == "Oops  X-Injected: 1")
        // appendReply appends
        var buffer: [UInt8] = [1, 2]
        SIPResponseBuilder.appendReply(into: &buffer, to: m, status: 200, reason: "OK",
                                       source: ("10.0.0.1", 5060), toTag: "t")
        #expect(Array(buffer.dropFirst(2)) == SIPResponseBuilder.reply(
            to: m, status: 200, reason: "OK", source: ("10.0.0.1", 5060), toTag: "t"))
    }

    @Test func foldedHeadersAreUnfoldedInReplies() throws {
        let m = try #require(parse("""
            OPTIONS sip:a@b SIP/2.0
            Via: SIP/2.0/UDP 10.0.0.1
             ;branch=z9hG4bKf
            From: <sip:c@d>
              ;tag=1
            To: <sip:a@b>
            Call-ID: x
            CSeq: 1
             OPTIONS


            """))
        let reply = string(SIPResponseBuilder.reply(to: m, status: 200, reason: "OK",
                                                    source: ("192.0.2.1", 5060), toTag: "t"))
        #expect(reply.contains("Via: SIP/2.0/UDP 10.0.0.1 ;branch=z9hG4bKf;received=192.0.2.1\r\n"))
        #expect(reply.contains("From: <sip:c@d> ;tag=1\r\n"))
        #expect(reply.contains("CSeq: 1 OPTIONS\r\n"))
    }

    @Test func dmqRequestIsByteIdentical() throws {
        let fixture = Fixtures.bytes(number: "01")
        let built = SIPRequestBuilder.request(
            method: .kdmq, requestURI: "sip:notification_peer@127.0.0.1:5091",
            headers: [
                SIPHeader("Via", "SIP/2.0/UDP 127.0.0.2:5092;branch=z9hG4bK68a.164ec002000000000000000000000000.0"),
                SIPHeader("To", "<sip:notification_peer@127.0.0.1:5091>"),
                SIPHeader("From", "<sip:notification_peer@127.0.0.2:5092>;tag=3cd5bcb08328e4a8f72a506e249be0fe-ed725ad4"),
                SIPHeader("CSeq", "10 KDMQ"),
                SIPHeader("Call-ID", "3dd5b2db459dcd56-18707@127.0.0.2"),
                SIPHeader("Content-Length", "will be replaced"),
                SIPHeader("User-Agent", "kamailio (5.6.3 (x86_64/linux))"),
                SIPHeader("Max-Forwards", "2"),
                SIPHeader("Content-Type", "text/plain"),
            ],
            body: Array("sip:127.0.0.2:5092;status=active\r\n".utf8))
        #expect(string(built) == string(fixture))
    }

    @Test func requestBuilderContentLength() throws {
        let noCL = try SIPMessage(SIPRequestBuilder.request(
            method: .message, requestURI: "sip:a@b", headers: [SIPHeader("Call-ID", "1")],
            body: Array("hello".utf8)), framing: .stream)
        #expect(noCL.contentLength == 5)
        #expect(noCL.fields.last?.kind == .contentLength)
        #expect(noCL.bodyText == "hello")
        let dup = try SIPMessage(SIPRequestBuilder.request(
            method: .other("FOO"), requestURI: "sip:a@b",
            headers: [SIPHeader("l", "1"), SIPHeader("X", "y\r\nInjected: 1"), SIPHeader("Content-Length", "9")]))
        #expect(dup.fields.filter { $0.kind == .contentLength }.count == 1)
        #expect(dup.contentLength == 0)
        #expect(dup.method == .other("FOO"))
        #expect(dup.header(named: "Injected") == nil)
        let response = try SIPMessage(SIPResponseBuilder.response(
            status: 486, reason: "Busy Here", headers: [SIPHeader("Call-ID", "z")], body: [1, 2, 3]))
        #expect(response.statusCode == 486 && response.contentLength == 3 && response.callID == "z")
    }

    @Test func editorForRelaying() throws {
        let m = try SIPMessage(Fixtures.bytes(number: "19"))
        var e = SIPMessageEditor(m)
        let r1 = e.decrementMaxForwards()
        #expect(r1 == .decremented(69))
        e.prependHeader("Via", "SIP/2.0/UDP 127.0.0.1:5091;branch=z9hG4bKnew")
        e.setRequestURI("sip:replicate@127.0.0.2:5092")
        e.appendHeader("X-Relayed", "yes")
        let out = try SIPMessage(e.serialize())
        #expect(out.requestURI == "sip:replicate@127.0.0.2:5092")
        #expect(out.maxForwards == 69)
        #expect(out.vias.map(\.branch) == ["z9hG4bKnew", "z9hG4bK-6771bd67"])
        #expect(out.fields.first?.kind == .via)
        #expect(out.header(named: "X-Relayed") == "yes")
        #expect(out.bodyText == "replicate me")
        #expect(out.contentLength == 12)
        #expect(out.callID == m.callID && out.cseq == m.cseq && out.from == m.from && out.to == m.to)

        // untouched: byte-identical
        #expect(SIPMessageEditor(m).serialize() == m.bytes)

        // a response going back: remove our Via
        let r = try SIPMessage(Fixtures.bytes(number: "21"))
        var back = SIPMessageEditor(r)
        let r2 = back.removeTopVia()
        #expect(r2)
        let upstream = try SIPMessage(back.serialize())
        #expect(upstream.vias.count == 1)
        #expect(upstream.via?.host == "127.0.0.9")

        // removing the first of several values in one line
        let multi = try #require(BuilderTests.request(via: "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2"))
        var pop = SIPMessageEditor(multi)
        let r3 = pop.removeTopVia()
        #expect(r3)
        #expect(try SIPMessage(pop.serialize()).headers(.via) == ["SIP/2.0/UDP b;branch=z9hG4bK2"])
        let r4 = pop.removeTopVia()
        #expect(r4)
        let r5 = pop.removeTopVia()
        #expect(!r5)
        #expect(try SIPMessage(pop.serialize()).via == nil)
    }

    @Test func editorHeadersAndBody() throws {
        let m = try #require(parse("""
            MESSAGE sip:a@b SIP/2.0
            Via: SIP/2.0/UDP h;branch=z9hG4bK1
            Route: <sip:r1;lr>
            X-A: 1
            Route: <sip:r2;lr>
            Max-Forwards: 0
            l: 5
            Content-Length: 5

            hello
            """))
        var e = SIPMessageEditor(m)
        let r6 = e.decrementMaxForwards()
        #expect(r6 == .exhausted)
        let r7 = e.removeHeaders(named: "route")
        #expect(r7 == 2)
        let r8 = e.removeHeaders(named: "nothing")
        #expect(r8 == 0)
        e.setHeader("x-a", "2")
        e.setHeader("X-B", "3")
        e.setBody(Array("longer body".utf8))
        let out = try SIPMessage(e.serialize())
        #expect(out.header(.route) == nil)
        #expect(out.header(named: "X-A") == "2")
        #expect(out.header(named: "X-B") == "3")
        #expect(out.fields.filter { $0.kind == .contentLength }.count == 1)
        #expect(out.contentLength == 11)
        #expect(out.bodyText == "longer body")
        #expect(out.maxForwards == 0)
        let r9 = e.removeHeaders(named: "Max-Forwards")
        #expect(r9 == 1)
        let r10 = e.decrementMaxForwards(default: 10)
        #expect(r10 == .added(10))
        #expect(try SIPMessage(e.serialize()).maxForwards == 10)
        let r11 = e.decrementMaxForwards()
        #expect(r11 == .decremented(9))
        e.setHeader("Max-Forwards", "abc")
        let r12 = e.decrementMaxForwards()
        #expect(r12 == .invalid)

        // no Content-Length at all: one is added
        let bare = try #require(parse("MESSAGE sip:a@b SIP/2.0\nCall-ID: 1\n\nxyz"))
        let withCL = try SIPMessage(SIPMessageEditor(bare).serialize(), framing: .stream)
        #expect(withCL.contentLength == 3)
        #expect(withCL.bodyText == "xyz")
    }
}
