import Foundation
import SIP
import Testing

@Suite struct ParserTests {
    static let options = """
        OPTIONS sip:carol@chicago.example.com SIP/2.0
        Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKhjhs8ass877
        Max-Forwards: 70
        To: <sip:carol@chicago.example.com>
        From: Alice <sip:alice@atlanta.example.com>;tag=1928301774
        Call-ID: a84b4c76e66710
        CSeq: 63104 OPTIONS
        Contact: <sip:alice@pc33.atlanta.example.com>
        Accept: application/sdp
        Content-Length: 0


        """

    @Test func requestLine() throws {
        let m = try #require(parse(Self.options))
        #expect(m.isRequest && !m.isResponse)
        #expect(m.method == .options)
        #expect(m.requestURI == "sip:carol@chicago.example.com")
        #expect(m.version == "SIP/2.0")
        #expect(m.startLine == "OPTIONS sip:carol@chicago.example.com SIP/2.0")
        #expect(m.statusCode == nil && m.reasonPhrase == nil)
        #expect(m.fields.count == 9)
        #expect(m.contentLength == 0)
        #expect(m.body.isEmpty)
        #expect(m.canFormReply)
        #expect(m.from?.displayName == "Alice")
        #expect(m.from?.tag == "1928301774")
        #expect(m.cseq == SIPCSeq(number: 63104, method: .options))
        #expect(m.cseq?.description == "63104 OPTIONS")
        #expect(m.maxForwards == 70)
    }

    @Test func statusLine() throws {
        let m = try #require(parse("SIP/2.0 180 Ringing\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nContent-Length: 0\n\n"))
        #expect(m.isResponse)
        #expect(m.statusCode == 180)
        #expect(m.reasonPhrase == "Ringing")
        #expect(m.method == nil)
        #expect(!m.canFormReply)
        let empty = try #require(parse("SIP/2.0 100\n\n"))
        #expect(empty.reasonPhrase == "")
        #expect(parse("sip/2.0 200 ok\n\n")?.statusCode == 200)
    }

    @Test func invalidStartLines() {
        let cases: [(String, SIPParseError.Code)] = [
            ("SIP/2.0 20 OK\n\n", .invalidStatusCode),
            ("SIP/2.0 2000 OK\n\n", .invalidStatusCode),
            ("SIP/2.0 099 Low\n\n", .invalidStatusCode),
            ("SIP/2.0 700 High\n\n", .invalidStatusCode),
            ("SIP/2.0 4294967301 Overflow\n\n", .invalidStatusCode),
            ("SIP/2.0\n\n", .invalidStartLine),
            ("SIP/x.0 200 OK\n\n", .invalidVersion),
            ("INVITE sip:a@b SIP/2\n\n", .invalidVersion),
            ("INVITE sip:a@b\n\n", .invalidStartLine),
            ("INVITE\n\n", .invalidStartLine),
            ("INV(ITE sip:a@b SIP/2.0\n\n", .invalidStartLine),
            (" INVITE sip:a@b SIP/2.0\n\n", .invalidStartLine),
            ("INVITE sip:a@b; lr SIP/2.0\n\n", .invalidStartLine),
            ("INVITE sip:a@b FOO/2.0\n\n", .invalidVersion),
            ("\n\n\n", .emptyMessage),
        ]
        for (text, code) in cases {
            let e = parseError(crlf(text))
            #expect(e?.code == code, "\(text.debugDescription)")
            #expect(e?.canReplyBadRequest == false)
        }
        #expect(parseError([])?.code == .emptyMessage)
    }

    @Test func leadingBlankLinesAreSkipped() throws {
        let m = try #require(parse("\n\n" + Self.options))
        #expect(m.method == .options)
    }

    @Test func unknownMethodsAndCase() throws {
        let m = try #require(parse("FOOBAR sip:a@b SIP/2.0\nCSeq: 1 FOOBAR\n\n"))
        #expect(m.method == .other("FOOBAR"))
        #expect(m.method?.name == "FOOBAR")
        #expect(m.cseq?.method == .other("FOOBAR"))
        // methods are case-sensitive
        #expect(parse("invite sip:a@b SIP/2.0\n\n")?.method == .other("invite"))
        for (name, method) in [("INVITE", SIPMethod.invite), ("ACK", .ack), ("BYE", .bye),
                               ("CANCEL", .cancel), ("REGISTER", .register), ("OPTIONS", .options),
                               ("SUBSCRIBE", .subscribe), ("NOTIFY", .notify), ("PUBLISH", .publish),
                               ("REFER", .refer), ("INFO", .info), ("UPDATE", .update),
                               ("PRACK", .prack), ("MESSAGE", .message), ("KDMQ", .kdmq),
                               ("GET", .get), ("POST", .post), ("PUT", .put), ("DELETE", .delete)] {
            #expect(SIPMethod(name) == method)
            #expect(method.name == name)
            #expect(parse("\(name) sip:a@b SIP/2.0\n\n")?.method == method)
        }
        // Kamailio's xhttp gets HTTP requests through the same parser
        let get = try #require(parse("GET /RPC HTTP/1.1\nHost: x\n\n"))
        #expect(get.method == .get)
        #expect(get.version == "HTTP/1.1")
        #expect(get.parsedRequestURI == nil)
    }

    @Test func compactHeaderNames() throws {
        let m = try #require(parse("""
            INVITE sip:bob@biloxi.example.com SIP/2.0
            v: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74b43
            f: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl
            t: <sip:bob@biloxi.example.com>
            i: 3848276298220188511@atlanta.example.com
            m: <sip:alice@client.atlanta.example.com;transport=tcp>
            c: application/sdp
            e: gzip
            s: Hello
            k: 100rel, timer
            o: presence
            u: presence, dialog
            r: <sip:carol@example.com>
            b: <sip:alice@atlanta.example.com>
            x: 1800;refresher=uac
            y: abc
            l: 0
            CSeq: 1 INVITE


            """))
        let kinds: [SIPHeaderKind] = [.via, .from, .to, .callID, .contact, .contentType, .contentEncoding,
                                      .subject, .supported, .event, .allowEvents, .referTo, .referredBy,
                                      .sessionExpires, .identity, .contentLength, .cseq]
        #expect(m.fields.map(\.kind) == kinds)
        #expect(m.via?.transport == "TCP")
        #expect(m.via?.port == 5060)
        #expect(m.from?.tag == "9fxced76sl")
        #expect(m.to?.uri.user == "bob")
        #expect(m.callID == "3848276298220188511@atlanta.example.com")
        #expect(m.contentType == "application/sdp")
        #expect(m.contentLength == 0)
        #expect(m.header(named: "Content-Encoding") == "gzip")
        #expect(m.header(named: "SUBJECT") == "Hello")
        #expect(m.headers(named: "Supported") == ["100rel", "timer"])
        #expect(m.headers(named: "k") == ["100rel", "timer"])
        #expect(m.headers(named: "Allow-Events") == ["presence", "dialog"])
        #expect(m.header(named: "Event") == "presence")
        #expect(m.header(named: "refer-to") == "<sip:carol@example.com>")
        #expect(m.header(named: "Referred-By") == "<sip:alice@atlanta.example.com>")
        #expect(m.header(named: "Session-Expires") == "1800;refresher=uac")
        #expect(m.header(named: "Identity") == "abc")
        #expect(m.nameAddrs(.contact).first?.uri.parameter(named: "transport")?.value == "tcp")
        #expect(m.name(of: m.fields[0]) == "v")
        for k in kinds {
            #expect(SIPHeaderKind(name: k.canonicalName) == k)
            #expect(SIPHeaderKind(name: k.canonicalName.uppercased()) == k)
        }
        #expect(SIPHeaderKind(name: "X-Custom") == .other)
        #expect(SIPHeaderKind(name: "q") == .other)
    }

    @Test func multiValuedAndRepeatedHeaders() throws {
        let m = try #require(parse("""
            INVITE sip:bob@example.com SIP/2.0
            Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bK1, SIP/2.0/UDP p2.example.com:5070;branch=z9hG4bK2
            Via: SIP/2.0/TCP [2001:db8::9]:5061;branch=z9hG4bK3;received=2001:db8::10
            Route: <sip:r1.example.com;lr>, <sip:r2.example.com;lr>
            Route: <sip:r3.example.com;lr>
            Record-Route: <sip:rr1.example.com;lr;x="a,b">, <sip:rr2.example.com;lr>
            Contact: "Doe, John" <sip:john@example.com>;q=0.7, <sip:j@h.example.com,x>;expires="Thu, 01 Dec 1994 16:00:00 GMT", sip:plain@example.com
            Allow: INVITE, ACK,OPTIONS ,  BYE
            X-Multi: a, b
            X-Multi: c
            Subject: one, two
            Content-Length: 0


            """))
        #expect(m.headers(.via) == [
            "SIP/2.0/UDP p1.example.com;branch=z9hG4bK1",
            "SIP/2.0/UDP p2.example.com:5070;branch=z9hG4bK2",
            "SIP/2.0/TCP [2001:db8::9]:5061;branch=z9hG4bK3;received=2001:db8::10",
        ])
        let vias = m.vias
        #expect(vias.map(\.host) == ["p1.example.com", "p2.example.com", "[2001:db8::9]"])
        #expect(vias.map(\.branch) == ["z9hG4bK1", "z9hG4bK2", "z9hG4bK3"])
        #expect(vias[1].port == 5070)
        #expect(vias[2].received == "2001:db8::10")
        #expect(m.via?.host == "p1.example.com")
        #expect(m.headers(named: "Route") == ["<sip:r1.example.com;lr>", "<sip:r2.example.com;lr>",
                                              "<sip:r3.example.com;lr>"])
        #expect(m.headers(named: "Record-Route") == [#"<sip:rr1.example.com;lr;x="a,b">"#, "<sip:rr2.example.com;lr>"])
        #expect(m.nameAddrs(.route).map(\.uri.host) == ["r1.example.com", "r2.example.com", "r3.example.com"])
        let contacts = m.headers(named: "m")
        #expect(contacts == [#""Doe, John" <sip:john@example.com>;q=0.7"#,
                             #"<sip:j@h.example.com,x>;expires="Thu, 01 Dec 1994 16:00:00 GMT""#,
                             "sip:plain@example.com"])
        let parsedContacts = m.nameAddrs(.contact)
        #expect(parsedContacts.count == 2)  // the one with a ',' in the URI is not a valid URI
        #expect(parsedContacts.first?.displayName == "Doe, John")
        #expect(parsedContacts.first?.parameter(named: "q")?.value == "0.7")
        #expect(parsedContacts.last?.usesAngleBrackets == false)
        #expect(m.headers(named: "allow") == ["INVITE", "ACK", "OPTIONS", "BYE"])
        // unknown headers: repeated lines in order, not split
        #expect(m.headers(named: "x-multi") == ["a, b", "c"])
        #expect(m.header(named: "X-MULTI") == "a, b")
        #expect(m.fields(named: "x-multi").count == 2)
        // Subject is not a list
        #expect(m.headers(named: "Subject") == ["one, two"])
        #expect(m.header(named: "Absent") == nil)
        #expect(m.headers(named: "Absent").isEmpty)
    }

    @Test func folding() throws {
        let m = try #require(parse("""
            INVITE sip:a@b SIP/2.0
            Subject: I know you're there,
             pick up the phone
            \tand talk to me!
            Via: SIP/2.0/UDP
                host.example.com
             ;branch=z9hG4bKfold
            To:
             <sip:a@b>
            From: <sip:c@d>;tag=1
            Call-ID: x
            CSeq:
              7
              INVITE
            Empty:
            Content-Length: 0


            """))
        #expect(m.header(named: "Subject") == "I know you're there, pick up the phone and talk to me!")
        let subject = try #require(m.firstField(.subject))
        #expect(subject.isFolded)
        #expect(m.via?.host == "host.example.com")
        #expect(m.via?.branch == "z9hG4bKfold")
        // an empty first line is not folding: the value starts on the next line
        let to = try #require(m.firstField(.to))
        #expect(!to.isFolded)
        #expect(m.value(of: to) == "<sip:a@b>")
        #expect(m.cseq == SIPCSeq(number: 7, method: .invite))
        #expect(m.header(named: "Empty") == "")
        #expect(m.canFormReply)
        // continuation before any header
        let e = parseError(crlf("INVITE sip:a@b SIP/2.0\n continued: x\n\n"))
        #expect(e?.code == .continuationWithoutHeader)
    }

    @Test func bareLFLineEndsAreAccepted() throws {
        let text = "MESSAGE sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nFrom: <sip:c@d>;tag=1\nTo: <sip:a@b>\nCall-ID: lf\nCSeq: 1 MESSAGE\nContent-Length: 5\n\nhello"
        let m = try SIPMessage(Array(text.utf8))
        #expect(m.bodyText == "hello")
        #expect(m.canFormReply)
    }

    @Test func bodyAndContentLength() throws {
        let head = "MESSAGE sip:a@b SIP/2.0\r\nCall-ID: b\r\n"
        // longer datagram than Content-Length: truncated to it
        let longer = try SIPMessage(Array((head + "Content-Length: 3\r\n\r\nabcdef").utf8))
        #expect(longer.bodyText == "abc")
        #expect(longer.bodyRange.count == 3)
        // shorter: error
        let short = parseError(Array((head + "Content-Length: 10\r\n\r\nabc").utf8))
        #expect(short?.code == .truncatedBody)
        #expect(short?.reason.contains("truncated body") == true)
        // missing on a datagram: the rest
        let rest = try SIPMessage(Array((head + "\r\nxyz\r\n").utf8))
        #expect(rest.contentLength == nil)
        #expect(rest.bodyText == "xyz\r\n")
        // missing on a stream: error
        #expect(parseError(Array((head + "\r\nxyz").utf8), framing: .stream)?.code == .missingContentLength)
        let stream = try SIPMessage(Array((head + "l: 3\r\n\r\nxyz").utf8), framing: .stream)
        #expect(stream.bodyText == "xyz")
        // duplicated but equal is fine; differing is not
        let same = try SIPMessage(Array((head + "Content-Length: 2\r\nl: 02\r\n\r\nab").utf8))
        #expect(same.contentLength == 2)
        #expect(parseError(Array((head + "Content-Length: 2\r\nContent-Length: 3\r\n\r\nabc").utf8))?.code
                == .conflictingContentLength)
        for bad in ["-1", "+3", "3 4", "0x10", "", "abc", "99999999999", "1e3", "4294967296"] {
            let e = parseError(Array((head + "Content-Length: \(bad)\r\n\r\n").utf8))
            #expect(e?.code == .invalidContentLength, "\(bad)")
        }
        #expect(parseError(Array((head + "Content-Length: 70000\r\n\r\n").utf8))?.code == .invalidContentLength)
    }

    @Test func missingEndOfHeaders() {
        let noBlank = crlf("OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nFrom: <sip:c@d>;tag=1\nTo: <sip:a@b>\nCall-ID: x\nCSeq: 1 OPTIONS\n")
        let e = parseError(noBlank)
        #expect(e?.code == .missingEndOfHeaders)
        // the request is complete enough to answer 400
        #expect(e?.canReplyBadRequest == true)
        #expect(e?.partialMessage?.callID == "x")
        #expect(e?.partialMessage?.body.isEmpty == true)
        let unterminated = Array("OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x".utf8)
        #expect(parseError(unterminated)?.code == .missingEndOfHeaders)
        #expect(parseError(Array("OPTIONS sip:a@b SIP/2.0".utf8))?.code == .missingEndOfHeaders)
        #expect(parseError(Array("OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r".utf8))?.code == .missingEndOfHeaders)
    }

    @Test func badRequestPossibility() throws {
        let essentials = "Via: SIP/2.0/UDP h;branch=z9hG4bK1\nFrom: <sip:c@d>;tag=1\nTo: <sip:a@b>\nCall-ID: x\nCSeq: 1 OPTIONS\n"
        let bad = parseError(crlf("OPTIONS sip:a@b SIP/2.0\n" + essentials + "Content-Length: -5\n\n"))
        #expect(bad?.code == .invalidContentLength)
        let partial = try #require(bad?.partialMessage)
        #expect(partial.canFormReply)
        let reply = try SIPMessage(SIPResponseBuilder.reply(
            to: partial, status: 400, reason: "Bad Request", source: ("192.0.2.1", 5060), toTag: "t"))
        #expect(reply.statusCode == 400)
        #expect(reply.callID == "x")
        // a header line that is not a header, after the essentials: still answerable
        let garbage = parseError(crlf("OPTIONS sip:a@b SIP/2.0\n" + essentials + "this is not a header\n\n"))
        #expect(garbage?.code == .invalidHeaderLine)
        #expect(garbage?.canReplyBadRequest == true)
        // ...but not before them
        let early = parseError(crlf("OPTIONS sip:a@b SIP/2.0\nnot a header\n" + essentials + "\n"))
        #expect(early?.code == .invalidHeaderLine)
        #expect(early?.canReplyBadRequest == false)
        // responses are never answered
        let response = parseError(crlf("SIP/2.0 200 OK\n" + essentials + "Content-Length: x\n\n"))
        #expect(response?.code == .invalidContentLength)
        #expect(response?.canReplyBadRequest == false)
        // unparseable CSeq: no 400
        let noCSeq = parseError(crlf("OPTIONS sip:a@b SIP/2.0\n" + essentials.replacingOccurrences(of: "CSeq: 1 OPTIONS", with: "CSeq: one")
                                     + "Content-Length: -1\n\n"))
        #expect(noCSeq?.canReplyBadRequest == false)
        #expect(bad?.description.contains("invalidContentLength") == true)
    }

    @Test func limits() {
        var big = crlf("MESSAGE sip:a@b SIP/2.0\nCall-ID: big\n\n")
        big += [UInt8](repeating: 65, count: 65_536 - big.count)
        #expect(parseError(big)?.code == .messageTooLarge)
        #expect(parseError(Array(big.dropLast()))?.code == nil)
        let custom = SIPMessage.Limits(maxMessageSize: 100, maxHeaderCount: 3, maxHeaderLength: 40)
        #expect(parseError(Array(big.prefix(101)), limits: custom)?.code == .messageTooLarge)
        #expect(parseError(crlf("A sip:a@b SIP/2.0\nA: 1\nB: 2\nC: 3\n\n"), limits: custom) == nil)
        #expect(parseError(crlf("A sip:a@b SIP/2.0\nA: 1\nB: 2\nC: 3\nD: 4\n\n"), limits: custom)?.code == .tooManyHeaders)
        let longLine = "X: " + String(repeating: "y", count: 40)
        #expect(parseError(crlf("A sip:a@b SIP/2.0\n\(longLine)\n\n"), limits: custom)?.code == .headerTooLong)
        #expect(parseError(crlf("A sip:a@b SIP/2.0\nX: \(String(repeating: "y", count: 20))\n \(String(repeating: "z", count: 20))\n\n"),
                           limits: custom)?.code == .headerTooLong)
        #expect(parseError(crlf("A sip:\(String(repeating: "a", count: 40))@b SIP/2.0\n\n"), limits: custom)?.code == .headerTooLong)
        // default header count limit: 256
        var many = "OPTIONS sip:a@b SIP/2.0\n"
        for i in 0..<256 { many += "X-\(i): \(i)\n" }
        #expect(parseError(crlf(many + "\n")) == nil)
        #expect(parseError(crlf(many + "X-last: 1\n\n"))?.code == .tooManyHeaders)
        // default header length limit: 8192
        #expect(parseError(crlf("OPTIONS sip:a@b SIP/2.0\nX: \(String(repeating: "v", count: 8189))\n\n")) == nil)
        #expect(parseError(crlf("OPTIONS sip:a@b SIP/2.0\nX: \(String(repeating: "v", count: 8190))\n\n"))?.code == .headerTooLong)
    }

    @Test func invalidHeaderLines() {
        for line in [": novalue", "No colon here", "Bad Name: x", "Na\u{0}me: x", "[x]: y", "\u{1}: x"] {
            let e = parseError(crlf("OPTIONS sip:a@b SIP/2.0\n\(line)\n\n"))
            #expect(e?.code == .invalidHeaderLine, "\(line.debugDescription)")
        }
        #expect(parseError(crlf("OPTIONS sip:a@b SIP/2.0\nName   :   spaced   \n\n")) == nil)
        #expect(parse("OPTIONS sip:a@b SIP/2.0\nName   :   spaced   \n\n")?.header(named: "name") == "spaced")
        #expect(parseError(Array("OPTIONS sip:a@b SIP/2.0\r\n\rX: y\r\n\r\n".utf8))?.code == .invalidHeaderLine)
    }

    @Test func nonUTF8AndNULInValues() throws {
        var bytes = Array("MESSAGE sip:a@b SIP/2.0\r\nSubject: ".utf8)
        bytes += [0xFF, 0xFE, 0x00, 0x41, 0xC3]
        bytes += Array("\r\nCall-ID: \u{0}x\r\nContent-Length: 3\r\n\r\n".utf8)
        bytes += [0x00, 0xFF, 0x0A]
        let m = try SIPMessage(bytes)
        let subject = try #require(m.header(named: "Subject"))
        #expect(subject.unicodeScalars.contains("\u{FFFD}"))
        #expect(subject.contains("A"))
        #expect(m.valueBytes(of: try #require(m.firstField(.subject))) == [0xFF, 0xFE, 0x00, 0x41, 0xC3])
        #expect(m.callID == "\u{0}x")
        #expect(Array(m.body) == [0x00, 0xFF, 0x0A])
        #expect(m.bodyText.count == 3)
    }

    @Test func ipv6References() throws {
        let m = try #require(parse("""
            OPTIONS sip:[2001:db8::1]:5061;transport=tls SIP/2.0
            Via: SIP/2.0/TLS [2001:db8::2]:5061;branch=z9hG4bKv6;rport
            Via: SIP/2.0/UDP [::ffff:192.0.2.1];branch=z9hG4bKv4mapped
            From: <sip:alice@[2001:db8::3]>;tag=a
            To: sip:[2001:db8::1]
            Call-ID: v6@[2001:db8::2]
            CSeq: 1 OPTIONS
            Content-Length: 0


            """))
        let ruri = try #require(m.parsedRequestURI)
        #expect(ruri.host == "[2001:db8::1]")
        #expect(ruri.port == 5061)
        #expect(ruri.parameter(named: "transport")?.value == "tls")
        let via = try #require(m.via)
        #expect(via.host == "[2001:db8::2]")
        #expect(via.port == 5061)
        #expect(via.transport == "TLS")
        #expect(via.hasRPort && via.rport == nil)
        #expect(m.vias.last?.host == "[::ffff:192.0.2.1]")
        #expect(m.from?.uri.host == "[2001:db8::3]")
        #expect(m.from?.uri.port == nil)
        #expect(m.to?.uri.host == "[2001:db8::1]")
        #expect(m.canFormReply)
        // malformed references do not parse
        #expect(parse("OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/UDP [2001:db8::zz];branch=z9hG4bK1\n\n")?.via == nil)
        #expect(parse("OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/UDP [2001:db8::1;branch=z9hG4bK1\n\n")?.via == nil)
        #expect(parse("OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/UDP [1:2:3:4:5:6:7:8:9];branch=z9hG4bK1\n\n")?.via == nil)
    }

    @Test func viaDetails() throws {
        let v = try SIPVia(parsing: "SIP / 2.0 / UDP  host.example.com : 5080 ; branch = z9hG4bKx ;received=10.0.0.1; rport=5090;ttl=3;maddr=[::1]")
        #expect(v.protocolName == "SIP" && v.protocolVersion == "2.0" && v.transport == "UDP")
        #expect(v.host == "host.example.com")
        #expect(v.port == 5080)
        #expect(v.branch == "z9hG4bKx")
        #expect(v.received == "10.0.0.1")
        #expect(v.rport == 5090)
        #expect(v.parameter(named: "TTL")?.value == "3")
        #expect(v.parameter(named: "maddr")?.value == "[::1]")
        #expect(v.description == "SIP/2.0/UDP host.example.com:5080;branch=z9hG4bKx;received=10.0.0.1;rport=5090;ttl=3;maddr=[::1]")
        #expect(try SIPVia(parsing: v.description) == v)
        let built = SIPVia(host: "192.0.2.1", port: 5060, parameters: [SIPParameter("branch", "z9hG4bK1"), SIPParameter("rport")])
        #expect(built.description == "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport")
        for bad in ["", "SIP/2.0", "SIP/2.0/UDP", "SIP/2.0/UDP ", "SIP/2.0 UDP host", "SIP/2.0/UDPhost",
                    "SIP/2.0/UDP host:", "SIP/2.0/UDP host:70000", "SIP/2.0/UDP host;", "SIP/2.0/UDP host;=x",
                    "SIP/2.0/UDP host;branch=\"unterminated", "SIP/2.0/UDP ho st"] {
            #expect(throws: SIPParseError.self, "\(bad)") { try SIPVia(parsing: bad) }
        }
    }
}
