import SIP
import Testing

@Suite struct URITests {
    @Test func fullSIPURI() throws {
        let text = "sip:alice:secret@example.com:5061;transport=tcp;lr;maddr=239.255.255.1?subject=project%20x&priority=urgent"
        let u = try SIPURI(parsing: text)
        #expect(u.scheme == .sip)
        #expect(u.user == "alice")
        #expect(u.password == "secret")
        #expect(u.host == "example.com")
        #expect(u.port == 5061)
        #expect(u.hostPort == "example.com:5061")
        #expect(u.parameters == [SIPParameter("transport", "tcp"), SIPParameter("lr"),
                                 SIPParameter("maddr", "239.255.255.1")])
        #expect(u.parameter(named: "LR") == SIPParameter("lr", nil))
        #expect(u.headers == [SIPParameter("subject", "project%20x"), SIPParameter("priority", "urgent")])
        #expect(SIPURI.percentDecoded(u.headers[0].value ?? "") == "project x")
        #expect(u.description == text)
        #expect(SIPURI(text) == u)
    }

    @Test func hosts() throws {
        let v4 = try SIPURI(parsing: "sip:192.0.2.4")
        #expect(v4.host == "192.0.2.4" && v4.user == nil && v4.port == nil)
        let v6 = try SIPURI(parsing: "sips:bob@[2001:db8::10]:5061")
        #expect(v6.scheme == .sips)
        #expect(v6.host == "[2001:db8::10]")
        #expect(v6.port == 5061)
        let loop = try SIPURI(parsing: "sip:[::1]")
        #expect(loop.host == "[::1]" && loop.port == nil)
        #expect(try SIPURI(parsing: "SIP:Host.Example.COM").scheme == .sip)
        #expect(try SIPURI(parsing: "sip:127.0.0.2:5092;status=active").parameter(named: "status")?.value == "active")
    }

    @Test func telAndOtherSchemes() throws {
        let tel = try SIPURI(parsing: "tel:+1-201-555-0123;phone-context=example.com")
        #expect(tel.scheme == .tel)
        #expect(tel.user == "+1-201-555-0123")
        #expect(tel.host == "")
        #expect(tel.parameter(named: "phone-context")?.value == "example.com")
        let urn = try SIPURI(parsing: "urn:service:sos")
        #expect(urn.scheme == .other("urn"))
        #expect(urn.schemeSpecificPart == "service:sos")
        #expect(urn.description == "urn:service:sos")
    }

    @Test func userWithReservedCharacters() throws {
        // RFC 4475 semiuri / esc01: the user part may hold ';' and escapes
        let u = try SIPURI(parsing: "sip:user;par=u%40example.net@example.com")
        #expect(u.user == "user;par=u%40example.net")
        #expect(u.host == "example.com")
        #expect(u.parameters.isEmpty)
        let esc = try SIPURI(parsing: "sip:sips%3Auser%40example.com@example.net")
        #expect(SIPURI.percentDecoded(esc.user ?? "") == "sips:user@example.com")
        #expect(SIPURI.percentDecoded("%zz%4") == "%zz%4")
        let null = try SIPURI(parsing: "sip:null-%00-null@example.com")
        #expect(SIPURI.percentDecoded(null.user ?? "").utf8.contains(0))
    }

    @Test func invalidURIs() {
        for bad in ["", "sip:", "sip:user@", "sip:@host", "sip:[::1", "sip:[zz::1]", "sip:host:",
                    "sip:host:99999", "sip:ho st", " sip:host", "sip:host ", "sip:host;",
                    "sip:host;;lr", "sip:host:50a", "sip:<host>", "nocolon", "1sip:host",
                    "tel:", "tel:;x=1", "urn:", "sip:h\u{e9}llo", "sip:a\"b@host", "sip:host?a\u{0}"] {
            #expect(throws: SIPParseError.self, "\(bad.debugDescription)") { try SIPURI(parsing: bad) }
            #expect(SIPURI(bad) == nil)
        }
    }

    @Test func buildingURIs() throws {
        let u = try SIPURI(user: "bob", host: "example.com", port: 5060,
                           parameters: [SIPParameter("transport", "udp"), SIPParameter("lr")],
                           headers: [SIPParameter("subject", "hi")])
        #expect(u.description == "sip:bob@example.com:5060;transport=udp;lr?subject=hi")
        #expect(try SIPURI(parsing: u.description) == u)
        let tel = try SIPURI(scheme: .tel, user: "+4930123", host: "ignored")
        #expect(tel.description == "tel:+4930123")
        #expect(throws: SIPParseError.self) { try SIPURI(host: "") }
        #expect(try SIPURI(scheme: .sips, host: "[::1]", port: 5061).description == "sips:[::1]:5061")
    }

    @Test func nameAddrVersusAddrSpec() throws {
        let quoted = try SIPNameAddr(parsing: #""Alice" <sip:a@b>;tag=x"#)
        #expect(quoted.displayName == "Alice")
        #expect(quoted.uri.description == "sip:a@b")
        #expect(quoted.tag == "x")
        #expect(quoted.usesAngleBrackets)
        #expect(quoted.description == #""Alice" <sip:a@b>;tag=x"#)

        // addr-spec: the parameters after the URI belong to the header (RFC 3261 §20.10)
        let spec = try SIPNameAddr(parsing: "sip:a@b;tag=x;lr")
        #expect(spec.uri.description == "sip:a@b")
        #expect(spec.uri.parameters.isEmpty)
        #expect(spec.tag == "x")
        #expect(spec.parameters == [SIPParameter("tag", "x"), SIPParameter("lr")])
        #expect(!spec.usesAngleBrackets)
        #expect(spec.description == "sip:a@b;tag=x;lr")

        // name-addr: the parameters inside <> belong to the URI
        let inside = try SIPNameAddr(parsing: "<sip:a@b;tag=x>")
        #expect(inside.tag == nil)
        #expect(inside.uri.parameter(named: "tag")?.value == "x")
        #expect(inside.parameters.isEmpty)
        #expect(inside.description == "<sip:a@b;tag=x>")

        let tokens = try SIPNameAddr(parsing: "  Bob  Smith <sip:bob@example.com> ; tag = 77 ")
        #expect(tokens.displayName == "Bob  Smith")
        #expect(tokens.tag == "77")
        let tight = try SIPNameAddr(parsing: "caller<sip:caller@example.com>;tag=323")
        #expect(tight.displayName == "caller")
        let escaped = try SIPNameAddr(parsing: #""J Rosenberg \\\"" <sip:jdrosen@example.com>"#)
        #expect(escaped.displayName == #"J Rosenberg \""#)
        let again = try SIPNameAddr(parsing: escaped.description)
        #expect(again == escaped)
        let quotedParam = try SIPNameAddr(parsing: #"<sip:a@b>;+sip.instance="<urn:uuid:1>";expires=60"#)
        #expect(quotedParam.parameter(named: "+sip.instance")?.value == #""<urn:uuid:1>""#)
        #expect(quotedParam.parameter(named: "+sip.instance")?.unquotedValue == "<urn:uuid:1>")

        for bad in ["", "<sip:a@b", "\"unterminated <sip:a@b>", "<>", "<sip:a@b> junk", "sip:a@b;",
                    "<sip:a@b>;tag", "<not a uri>", "\"x\" sip:a@b", "<sip:a@b>, <sip:c@d>"] {
            if bad == "<sip:a@b>;tag" {
                #expect(try SIPNameAddr(parsing: bad).parameters == [SIPParameter("tag")])
                continue
            }
            #expect(throws: SIPParseError.self, "\(bad.debugDescription)") { try SIPNameAddr(parsing: bad) }
        }
        // description adds <> when the URI needs them
        let needs = SIPNameAddr(uri: try SIPURI(parsing: "sip:a@b;lr"), parameters: [SIPParameter("tag", "1")],
                                usesAngleBrackets: false)
        #expect(needs.description == "<sip:a@b;lr>;tag=1")
    }
}
