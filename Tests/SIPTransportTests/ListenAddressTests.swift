import SIPTransport
import Testing

@Suite("listen addresses")
struct ListenAddressTests {
    @Test(arguments: [
        ("udp:127.0.0.1:5060", SIPTransportProtocol.udp, "127.0.0.1", 5060),
        ("tcp:127.0.0.1:5070", .tcp, "127.0.0.1", 5070),
        ("udp:[::1]:5060", .udp, "::1", 5060),
        ("tcp:[::1]", .tcp, "::1", 5060),
        ("127.0.0.1:5080", .udp, "127.0.0.1", 5080),
        ("udp:127.0.0.1", .udp, "127.0.0.1", 5060),
        ("127.0.0.1", .udp, "127.0.0.1", 5060),
        ("UDP:10.0.0.1:0", .udp, "10.0.0.1", 0),
        ("::1", .udp, "::1", 5060),
        ("tcp:::1", .tcp, "::1", 5060),
        ("[fe80::1]:5062", .udp, "fe80::1", 5062),
        ("abcd::1", .udp, "abcd::1", 5060),
        ("udp:0.0.0.0:5060", .udp, "0.0.0.0", 5060),
        ("  tcp:[0:0:0:0:0:0:0:1]:5061  ", .tcp, "::1", 5061),
    ])
    func parses(text: String, proto: SIPTransportProtocol, ip: String, port: Int) throws {
        let a = try SIPListenAddress(parsing: text)
        #expect(a.proto == proto)
        #expect(a.ip == ip)
        #expect(a.port == port)
        #expect(a.advertisedHost == nil)
    }

    @Test func advertise() throws {
        let a = try SIPListenAddress(parsing: "udp:10.0.0.1:5060 advertise 192.0.2.1:5080")
        #expect(a.advertisedHost == "192.0.2.1")
        #expect(a.advertisedPort == 5080)
        #expect(a.description == "udp:10.0.0.1:5060 advertise 192.0.2.1:5080")
        let b = try SIPListenAddress(parsing: "tcp:[::1]:5060 advertise sip.example.com")
        #expect(b.advertisedHost == "sip.example.com")
        #expect(b.advertisedPort == nil)
        #expect(b.description == "tcp:[::1]:5060 advertise sip.example.com")
    }

    @Test func descriptions() throws {
        #expect(try SIPListenAddress(parsing: "127.0.0.1").description == "udp:127.0.0.1:5060")
        #expect(try SIPListenAddress(parsing: "tcp:[::1]:0").description == "tcp:[::1]:0")
        #expect(try SIPSocketAddress(ip: "::1", port: 5).description == "[::1]:5")
        #expect(try SIPSocketAddress(ip: "[::1]", port: 5).ip == "::1")
        #expect(try SIPSocketAddress(ip: "127.0.0.1", port: 5060).description == "127.0.0.1:5060")
    }

    @Test(arguments: [
        ("", "empty"),
        ("udp:", "no address"),
        ("tls:127.0.0.1:5061", "protocol tls is not supported"),
        ("sctp:127.0.0.1", "protocol sctp is not supported"),
        ("foo:127.0.0.1:5060", "unknown protocol \"foo\""),
        ("udp:127.0.0.1:65536", "invalid port \"65536\""),
        ("udp:127.0.0.1:-1", "invalid port \"-1\""),
        ("udp:127.0.0.1:50x", "invalid port \"50x\""),
        ("udp:127.0.0.1:", "invalid port \"\""),
        ("udp:[::1", "missing \"]\""),
        ("udp:[::1]x", "unexpected \"x\" after \"]\""),
        ("udp:[127.0.0.1]:5060", "brackets are for IPv6 addresses"),
        ("udp:localhost:5060", "\"localhost\" is not an IP address"),
        ("localhost:5060", "\"localhost\" is not an IP address"),
        ("udp:eth0", "\"eth0\" is not an IP address"),
        ("udp:300.1.1.1", "\"300.1.1.1\" is not an IP address"),
        ("udp:127.0.0.1 name foo", "unexpected \"name\""),
        ("udp:127.0.0.1 advertise", "advertise needs an address"),
    ])
    func refuses(text: String, reason: String) {
        #expect {
            _ = try SIPListenAddress(parsing: text)
        } throws: { error in
            let message = (error as? SIPTransportError)?.message ?? ""
            return message.hasPrefix("invalid listen address \"\(text)\": ") && message.contains(reason)
        }
    }

    @Test func socketAddressErrors() {
        #expect(throws: SIPTransportError("\"nope\" is not an IP address")) { try SIPSocketAddress(ip: "nope", port: 1) }
        #expect(throws: SIPTransportError("invalid port 70000")) { try SIPSocketAddress(ip: "127.0.0.1", port: 70000) }
    }
}
