import KSRTestFixtures
import SIP
import Testing

@Suite("KDMQ fixtures captured from Kamailio 5.6")
struct FixtureTests {
    @Test func allFixturesArePresent() {
        #expect(Fixtures.names.count == 32)
    }

    @Test("every fixture parses", arguments: Fixtures.names)
    func parses(name: String) throws {
        let bytes = Fixtures.bytes(name)
        #expect(!bytes.isEmpty)
        let m = try SIPMessage(bytes)
        let isRequest = name.contains("request") || name.contains("retransmission")
        #expect(m.isRequest == isRequest)
        if isRequest {
            let method = try #require(m.method)
            #expect(method == .kdmq || method == .message)
            #expect(m.canFormReply)
            let uri = try #require(m.parsedRequestURI)
            #expect(uri.scheme == .sip)
            #expect(uri.host.hasPrefix("127.0.0."))
        } else {
            let code = try #require(m.statusCode)
            #expect([200, 202, 404].contains(code))
            #expect(m.to?.tag != nil)
            #expect(m.header(.server) == "kamailio (5.6.3 (x86_64/linux))")
        }
        // Call-ID, CSeq, From tag
        let callID = try #require(m.callID)
        #expect(callID.contains("@127.0.0."))
        let cseq = try #require(m.cseq)
        if cseq.method == .kdmq {
            #expect(cseq.number == 10)
        } else {
            #expect(cseq == SIPCSeq(number: 1, method: .message))
        }
        if isRequest { #expect(cseq.method == m.method) }
        let from = try #require(m.from)
        #expect(from.tag?.isEmpty == false)
        #expect(from.uri.scheme == .sip)
        // Content-Length equals the body byte count; the body is what follows the empty line
        let end = try #require(headerEnd(bytes))
        let cl = try #require(m.contentLength)
        #expect(cl == bytes.count - end)
        #expect(m.body.count == cl)
        #expect(Array(m.body) == Array(bytes[end...]))
        // top Via
        let via = try #require(m.via)
        #expect(via.transport == "UDP")
        #expect(via.branch?.hasPrefix("z9hG4bK") == true)
        #expect(via.host.hasPrefix("127.0.0."))
        #expect(via.port != nil)
        // KDMQ bodies
        if m.contentType == "text/plain", cseq.method == .kdmq, name.contains("notification") || name.contains("ping")
            || name.contains("join") || name.contains("rejoin") {
            for line in m.bodyText.split(separator: "\r\n") {
                #expect(line.hasPrefix("sip:127.0.0."))
                #expect(line.hasSuffix(";status=active"))
            }
        }
    }

    @Test func joinRequestDetails() throws {
        let m = try SIPMessage(Fixtures.bytes(number: "01"))
        #expect(m.method == .kdmq)
        #expect(m.requestURI == "sip:notification_peer@127.0.0.1:5091")
        #expect(m.version == "SIP/2.0")
        #expect(m.maxForwards == 2)
        #expect(m.contentType == "text/plain")
        #expect(m.bodyText == "sip:127.0.0.2:5092;status=active\r\n")
        #expect(m.header(named: "User-Agent") == "kamailio (5.6.3 (x86_64/linux))")
        let to = try #require(m.to)
        #expect(to.tag == nil)
        #expect(to.uri.description == m.requestURI)
        #expect(to.usesAngleBrackets)
        let from = try #require(m.from)
        #expect(from.uri.user == "notification_peer")
        #expect(from.uri.host == "127.0.0.2")
        #expect(from.uri.port == 5092)
        #expect(from.tag == "3cd5bcb08328e4a8f72a506e249be0fe-ed725ad4")
        #expect(m.callID == "3dd5b2db459dcd56-18707@127.0.0.2")
        // Kamailio's header order for DMQ requests
        #expect(m.fields.map(\.kind) == [.via, .to, .from, .cseq, .callID, .contentLength, .userAgent,
                                         .maxForwards, .contentType])
    }

    @Test func htableBodies() throws {
        let sync = try SIPMessage(Fixtures.bytes(number: "07"))
        #expect(sync.contentType == "application/json")
        #expect(sync.bodyText == #"{"action":1}"#)
        let set = try SIPMessage(Fixtures.bytes(number: "22"))
        #expect(set.bodyText == #"{"action":2,"htname":"repl","cname":"color","type":2,"strval":"blue","mode":1}"#)
        let empty = try SIPMessage(Fixtures.bytes(number: "08"))
        #expect(empty.contentLength == 0)
        #expect(empty.body.isEmpty)
        #expect(empty.contentType == nil)
    }

    @Test func replicatedMessageHasTwoVias() throws {
        let m = try SIPMessage(Fixtures.bytes(number: "20"))
        #expect(m.method == .message)
        #expect(m.maxForwards == 70)
        let vias = m.vias
        #expect(vias.count == 2)
        #expect(vias[0].host == "127.0.0.1" && vias[0].port == 5091)
        #expect(vias[1].received == "127.0.0.9")
        #expect(vias[1].rport == 48557)
        #expect(vias[1].hasRPort)
        #expect(m.headers(.via).count == 2)
        let original = try SIPMessage(Fixtures.bytes(number: "19"))
        #expect(original.via?.hasRPort == true)
        #expect(original.via?.rport == nil)
        #expect(original.via?.parameter(named: "rport")?.value == nil)
    }

    @Test func responseStartLines() throws {
        let r404 = try SIPMessage(Fixtures.bytes(number: "16"))
        #expect(r404.statusCode == 404)
        #expect(r404.reasonPhrase == "User Not Found")
        #expect(r404.method == nil)
        #expect(r404.requestURI == nil)
        #expect(r404.cseq?.method == .kdmq)
        let r202 = try SIPMessage(Fixtures.bytes(number: "18"))
        #expect(r202.statusCode == 202)
        #expect(r202.reasonPhrase == "Accepted DMQ")
        let r21 = try SIPMessage(Fixtures.bytes(number: "21"))
        #expect(r21.reasonPhrase == "OK replica received")
        #expect(!r21.canFormReply)
    }

    /// Our reply to each captured request has the captured reply's structure: same Via values,
    /// From, To (apart from the tag), Call-ID and CSeq, in the same order.
    @Test("200 reply structure matches Kamailio's", arguments: Fixtures.requestReplyPairs.map { $0.request })
    func replyStructure(requestNumber: String) throws {
        let pair = try #require(Fixtures.requestReplyPairs.first { $0.request == requestNumber })
        let request = try SIPMessage(Fixtures.bytes(number: pair.request))
        let captured = try SIPMessage(Fixtures.bytes(number: pair.reply))
        let via = try #require(request.via)
        let ours = try SIPMessage(SIPResponseBuilder.reply(
            to: request, status: 200, reason: "OK", source: (via.host, via.port ?? 5060),
            toTag: "ourtag.1", server: "kamailio (5.6.3 (x86_64/linux))"))
        #expect(ours.statusCode == 200)
        #expect(ours.headers(.via) == captured.headers(.via))
        #expect(ours.vias == captured.vias)
        #expect(ours.header(.from) == captured.header(.from))
        #expect(ours.from == captured.from)
        #expect(ours.callID == captured.callID)
        #expect(ours.cseq == captured.cseq)
        let ourTo = try #require(ours.to)
        let theirTo = try #require(captured.to)
        #expect(ourTo.tag == "ourtag.1")
        #expect(theirTo.tag != nil)
        #expect(ourTo.uri == theirTo.uri)
        #expect(ourTo.parameters.filter { $0.name != "tag" } == theirTo.parameters.filter { $0.name != "tag" })
        #expect(request.to?.tag == nil)
        let copied: Set<SIPHeaderKind> = [.via, .from, .to, .callID, .cseq]
        #expect(ours.fields.map(\.kind).filter(copied.contains)
                == captured.fields.map(\.kind).filter(copied.contains))
        #expect(ours.header(.server) == captured.header(.server))
        #expect(ours.contentLength == 0)
    }

    /// Given the captured reply's tag, status, Content-Type and body, the builder reproduces
    /// Kamailio's reply byte for byte.
    @Test("reply is byte-identical to Kamailio's", arguments: Fixtures.requestReplyPairs.map { $0.request })
    func replyBytes(requestNumber: String) throws {
        let pair = try #require(Fixtures.requestReplyPairs.first { $0.request == requestNumber })
        let requestBytes = Fixtures.bytes(number: pair.request)
        let capturedBytes = Fixtures.bytes(number: pair.reply)
        let request = try SIPMessage(requestBytes)
        let captured = try SIPMessage(capturedBytes)
        let via = try #require(request.via)
        let extra = captured.contentType.map { ["Content-Type: " + $0] } ?? []
        let built = SIPResponseBuilder.reply(
            to: request, status: try #require(captured.statusCode),
            reason: try #require(captured.reasonPhrase),
            source: (via.host, try #require(via.port)), toTag: try #require(captured.to?.tag),
            extraHeaders: extra, body: Array(captured.body), server: captured.header(.server))
        #expect(string(built) == string(capturedBytes))
        #expect(built == capturedBytes)
    }
}
