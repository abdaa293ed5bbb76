import Foundation
import SIP
import SIPTransaction
import Testing

@Suite("Transaction keys (RFC 3261 §17.1.3, §17.2.3)")
struct KeyTests {
    @Test("server key: branch + sent-by + method; ACK maps to INVITE")
    func serverKey() throws {
        let inv = try TransactionKey.server(for: try request())
        #expect(inv == TransactionKey(branch: "z9hG4bKabc123", sentBy: "192.0.2.10:5060", method: "INVITE", isServer: true))
        #expect(try TransactionKey.server(for: try request("ACK")) == inv)
        #expect(try TransactionKey.server(for: try request("BYE")) != inv)
        // sent-by: host case and the default port do not matter; another host or port does.
        #expect(try TransactionKey.server(for: try request(viaHost: "PROXY.Example.com", viaPort: nil))
            == TransactionKey.server(for: try request(viaHost: "proxy.example.com", viaPort: 5060)))
        #expect(try TransactionKey.server(for: try request(viaHost: "192.0.2.11")) != inv)
        #expect(try TransactionKey.server(for: try request(viaPort: 5070)) != inv)
        #expect(try TransactionKey.server(for: try request(branch: "z9hG4bKother")) != inv)
    }

    @Test("CANCEL has its own key; cancelledInvite(by:) is the INVITE's")
    func cancelKey() throws {
        let cancel = try request("CANCEL")
        let ck = try TransactionKey.server(for: cancel)
        #expect(ck.method == "CANCEL")
        #expect(try TransactionKey.cancelledInvite(by: cancel) == TransactionKey.server(for: try request()))
    }

    @Test("no magic cookie, no Via: refused")
    func refused() throws {
        #expect(throws: TransactionError.missingBranch) { try TransactionKey.server(for: try request(branch: "1234")) }
        let noVia = try message("OPTIONS sip:a@b SIP/2.0\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n")
        #expect(throws: TransactionError.self) { try TransactionKey.server(for: noVia) }
    }

    @Test("client key: top Via branch + CSeq method of the response")
    func clientKey() throws {
        let req = try request("INVITE", extraVia: "SIP/2.0/UDP 198.51.100.1;branch=z9hG4bKup")
        let k = try TransactionKey.client(forRequest: req)
        #expect(k == TransactionKey(branch: "z9hG4bKabc123", sentBy: "", method: "INVITE", isServer: false))
        #expect(try TransactionKey.client(forResponse: try response(to: req, 180)) == k)
        let cancel = try request("CANCEL")
        #expect(try TransactionKey.client(forResponse: try response(to: cancel, 200)).method == "CANCEL")
        #expect(try TransactionKey.client(forResponse: try response(to: cancel, 200)) != k)
    }

    @Test("TransactionID packs index and label")
    func ids() {
        let id = TransactionID(index: 7, label: 42)
        #expect(id.rawValue == 7 << 32 | 42)
        #expect(TransactionID(rawValue: id.rawValue) == id)
        #expect(id.description == "7:42")
    }
}

@Suite("Branch generation")
struct BranchTests {
    @Test("z9hG4bK prefix, unique over 50 000, not predictable from the previous one")
    func unique() {
        var seen = Set<String>()
        for _ in 0..<50_000 {
            let b = BranchGenerator.next()
            #expect(b.hasPrefix("z9hG4bK"))
            seen.insert(b)
        }
        #expect(seen.count == 50_000)
        let a = BranchGenerator.next(), b = BranchGenerator.next()
        let ra = a.split(separator: ".").last!, rb = b.split(separator: ".").last!
        #expect(ra.count == 16 && rb.count == 16)
        #expect(ra != rb)
        #expect(a.allSatisfy { $0.isLetter || $0.isNumber || $0 == "." })
    }

    @Test("unique across threads")
    func concurrent() async {
        let all = await withTaskGroup(of: [String].self) { g in
            for _ in 0..<8 { g.addTask { (0..<2_000).map { _ in BranchGenerator.next() } } }
            var out: [String] = []
            for await part in g { out += part }
            return out
        }
        #expect(Set(all).count == 16_000)
    }
}

@Suite("Proxy helpers")
struct ProxyTests {
    let out = SIPProxy.OutgoingVia(transport: "udp", host: "203.0.113.5", port: 5060)

    @Test("forwarded request: Max-Forwards − 1, new top Via with branch and rport, the rest byte-identical")
    func forward() throws {
        let req = try request(body: "v=0")
        guard case .forward(let f) = SIPProxy.forwardRequest(req, via: out, branch: "z9hG4bKnew1") else {
            Issue.record("not forwarded"); return
        }
        let expected = text(req.bytes)
            .replacingOccurrences(of: "Max-Forwards: 70", with: "Max-Forwards: 69")
            .replacingOccurrences(of: "SIP/2.0\r\nVia:", with: "SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKnew1;rport\r\nVia:")
        #expect(text(f.bytes) == expected)
        #expect(f.maxForwards == 69)
        #expect(f.branch == "z9hG4bKnew1")
        #expect(f.message.vias.count == 2)
        #expect(f.message.via?.branch == "z9hG4bKnew1")
        #expect(f.message.body == req.body)
        #expect(try TransactionKey.client(forRequest: f.message).branch == "z9hG4bKnew1")
    }

    @Test("Max-Forwards 0 → 483 Too Many Hops; 1 → 0 is still forwarded; absent → 70 added; junk → invalid")
    func maxForwards() throws {
        guard case .tooManyHops = SIPProxy.forwardRequest(try request(maxForwards: "0"), via: out, branch: "z9hG4bKx") else {
            Issue.record("0 must not be forwarded"); return
        }
        guard case .forward(let one) = SIPProxy.forwardRequest(try request(maxForwards: "1"), via: out, branch: "z9hG4bKx") else {
            Issue.record("1 must be forwarded"); return
        }
        #expect(one.message.maxForwards == 0)
        guard case .forward(let none) = SIPProxy.forwardRequest(try request(maxForwards: nil), via: out, branch: "z9hG4bKx") else {
            Issue.record("absent must be forwarded"); return
        }
        #expect(none.maxForwards == 70)
        #expect(none.message.maxForwards == 70)
        guard case .invalidMaxForwards = SIPProxy.forwardRequest(try request(maxForwards: "abc"), via: out, branch: "z9hG4bKx") else {
            Issue.record("junk must be refused"); return
        }
    }

    @Test("Request-URI replaced; IPv6 Via host bracketed; no rport on request")
    func uriAndIPv6() throws {
        let v6 = SIPProxy.OutgoingVia(transport: "TCP", host: "2001:db8::1", port: 5062, rport: false)
        guard case .forward(let f) = SIPProxy.forwardRequest(try request(), via: v6, branch: "z9hG4bKv6",
                                                             requestURI: "sip:bob@198.51.100.7:5070") else {
            Issue.record("not forwarded"); return
        }
        #expect(f.message.requestURI == "sip:bob@198.51.100.7:5070")
        #expect(f.message.headers(.via).first == "SIP/2.0/TCP [2001:db8::1]:5062;branch=z9hG4bKv6")
        #expect(f.message.via?.port == 5062)
    }

    @Test("received/rport fixed on the upstream Via when asked")
    func receivedFix() throws {
        let req = try request(viaHost: "10.0.0.1")
        guard case .forward(let f) = SIPProxy.forwardRequest(req, via: out, branch: "z9hG4bKr",
                                                             received: (ip: "192.0.2.99", port: 40000)) else {
            Issue.record("not forwarded"); return
        }
        let vias = f.message.vias
        #expect(vias.count == 2)
        #expect(vias[1].received == "192.0.2.99")
        #expect(vias[1].rport == 40000)
        #expect(vias[1].branch == "z9hG4bKabc123")
        // Same host, no rport: untouched.
        let plain = try message("""
            OPTIONS sip:b@example.com SIP/2.0
            Via: SIP/2.0/UDP 192.0.2.99:5060;branch=z9hG4bKq
            From: <sip:a@example.com>;tag=1
            To: <sip:b@example.com>
            Call-ID: c
            CSeq: 1 OPTIONS
            Content-Length: 0


            """)
        guard case .forward(let g) = SIPProxy.forwardRequest(plain, via: out, branch: "z9hG4bKs",
                                                             received: (ip: "192.0.2.99", port: 5060)) else {
            Issue.record("not forwarded"); return
        }
        #expect(g.message.headers(.via)[1] == "SIP/2.0/UDP 192.0.2.99:5060;branch=z9hG4bKq")
    }

    @Test("response upstream: top Via removed, whether on its own line or comma-joined")
    func responseVia() throws {
        let r = try message("""
            SIP/2.0 180 Ringing
            Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKours
            Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKabc123;received=192.0.2.10
            From: <sip:a@example.com>;tag=1
            To: <sip:b@example.com>;tag=2
            Call-ID: c
            CSeq: 1 INVITE
            Content-Length: 0


            """)
        let up = try #require(SIPProxy.forwardResponse(r))
        let m = try SIPMessage(up)
        #expect(m.headers(.via) == ["SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKabc123;received=192.0.2.10"])
        #expect(text(up) == text(r.bytes).replacingOccurrences(of: "Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKours\r\n", with: ""))

        let joined = try message("""
            SIP/2.0 200 OK
            Via: SIP/2.0/UDP 203.0.113.5;branch=z9hG4bKours, SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKup
            From: <sip:a@example.com>;tag=1
            To: <sip:b@example.com>;tag=2
            Call-ID: c
            CSeq: 1 INVITE
            Content-Length: 0


            """)
        let j = try SIPMessage(try #require(SIPProxy.forwardResponse(joined)))
        #expect(j.headers(.via) == ["SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKup"])

        let single = try response(to: try request(), 200)
        #expect(SIPProxy.forwardResponse(single) == nil)
    }

    @Test("best response: 6xx first, else lowest class; received before synthesized; earliest among equals")
    func best() throws {
        let req = try request()
        func r(_ s: Int) throws -> SIPMessage { try response(to: req, s) }
        #expect(SIPProxy.bestResponse([(try r(486), .network), (try r(603), .network), (try r(302), .network)]) == 1)
        #expect(SIPProxy.bestResponse([(try r(503), .network), (try r(404), .network), (try r(486), .network)]) == 1)
        #expect(SIPProxy.bestResponse([(try r(408), .timeout), (try r(480), .network)]) == 1)
        // Lowest class wins even over a synthesized response; within a class received ones win.
        #expect(SIPProxy.bestResponse([(try r(503), .transportError), (try r(408), .timeout)]) == 1)
        #expect(SIPProxy.bestResponse([(try r(503), .transportError), (try r(500), .network)]) == 1)
        #expect(SIPProxy.bestResponse([(try r(200), .network), (try r(603), .network)]) == 0)
        #expect(SIPProxy.bestResponse([(try r(180), .network)]) == nil)
        #expect(SIPProxy.bestResponse([]) == nil)
    }
}

@Suite("Locally made messages")
struct MessageTests {
    @Test("503 for a transport error; random tokens")
    func misc() throws {
        let req = try request("OPTIONS")
        let r = TransactionMessages.transportErrorResponse(to: req, toTag: "t1")
        #expect(r.statusCode == 503)
        #expect(r.to?.tag == "t1")
        let tagged = try message("""
            OPTIONS sip:b@example.com SIP/2.0
            Via: SIP/2.0/UDP 192.0.2.99:5060;branch=z9hG4bKq
            From: <sip:a@example.com>;tag=1
            To: <sip:b@example.com>;tag=dialog
            Call-ID: c
            CSeq: 1 OPTIONS
            Content-Length: 0


            """)
        #expect(TransactionMessages.timeoutResponse(to: tagged, toTag: "new").to?.tag == "dialog")
        let tok = TransactionMessages.randomToken(count: 24)
        #expect(tok.count == 24)
        #expect(tok != TransactionMessages.randomToken(count: 24))
    }
}
