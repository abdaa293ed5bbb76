import NIOCore

/// A failure of the SIP transport, with a message meant for people
/// ("cannot listen on udp:127.0.0.1:5060: address already in use").
public struct SIPTransportError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The transport protocols the core speaks.
public enum SIPTransportProtocol: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case udp
    case tcp

    public var description: String { rawValue }
}

/// One value of Kamailio's `listen` parameter:
/// `[proto:]ip[:port] [advertise host[:port]]`.
///
/// - `udp:127.0.0.1:5060`, `tcp:127.0.0.1:5060`, `udp:[::1]:5060`
/// - `127.0.0.1:5060` (UDP when no protocol is given), `udp:127.0.0.1` (port 5060)
/// - `::1` (an IPv6 address without brackets cannot carry a port)
/// - `udp:10.0.0.1:5060 advertise 192.0.2.1:5080`
///
/// The address must be an IP literal (`0.0.0.0` and `::` for every interface); host and
/// interface names are refused. Port 0 asks the system for a free port.
public struct SIPListenAddress: Sendable, Hashable, CustomStringConvertible {
    public var proto: SIPTransportProtocol
    /// The IP address in canonical form, without brackets ("127.0.0.1", "::1").
    public var ip: String
    public var port: Int
    /// `advertise` host (an IP or a name, as written) and port, if given.
    public var advertisedHost: String?
    public var advertisedPort: Int?

    public static let defaultPort = 5060

    public init(
        proto: SIPTransportProtocol, ip: String, port: Int = defaultPort,
        advertisedHost: String? = nil, advertisedPort: Int? = nil
    ) {
        self.proto = proto
        self.ip = ip
        self.port = port
        self.advertisedHost = advertisedHost
        self.advertisedPort = advertisedPort
    }

    /// Parses a `listen` value; the error names the value and what is wrong with it.
    public init(parsing text: String) throws(SIPTransportError) {
        self = try Self.parse(text)
    }

    public var isIPv6: Bool { ip.utf8.contains(UInt8(ascii: ":")) }  // bytes: Character iteration is slow

    /// "udp:127.0.0.1:5060", "tcp:[::1]:5060", with " advertise host:port" when set.
    public var description: String {
        var s = "\(proto):\(Self.hostPort(ip, port))"
        if let advertisedHost {
            s += " advertise " + (advertisedPort.map { Self.hostPort(advertisedHost, $0) } ?? advertisedHost)
        }
        return s
    }

    static func hostPort(_ host: String, _ port: Int) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    private static func parse(_ text: String) throws(SIPTransportError) -> SIPListenAddress {
        func fail(_ why: String) -> SIPTransportError {
            SIPTransportError("invalid listen address \"\(text)\": \(why)")
        }
        let words = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard let first = words.first else { throw fail("empty") }

        var advertisedHost: String?
        var advertisedPort: Int?
        var rest = words.dropFirst()
        while let keyword = rest.first {
            rest = rest.dropFirst()
            switch keyword.lowercased() {
            case "advertise":
                guard let value = rest.first else { throw fail("advertise needs an address") }
                rest = rest.dropFirst()
                let (host, port) = try splitHostPort(value, fail)
                guard !host.isEmpty else { throw fail("advertise needs an address") }
                advertisedHost = host
                advertisedPort = port
            default:
                throw fail("unexpected \"\(keyword)\" (only \"advertise host[:port]\" may follow the address)")
            }
        }

        var proto = SIPTransportProtocol.udp
        var address = Substring(first)
        if let colon = first.firstIndex(of: ":") {
            let head = first[..<colon]
            if !head.isEmpty, head.allSatisfy({ $0.isLetter }) {
                switch head.lowercased() {
                case "udp": proto = .udp; address = first[first.index(after: colon)...]
                case "tcp": proto = .tcp; address = first[first.index(after: colon)...]
                case "tls", "sctp", "ws", "wss":
                    throw fail("protocol \(head.lowercased()) is not supported (udp and tcp are)")
                default:
                    // Hex letters only could begin an unbracketed IPv6 address ("abcd::1").
                    // "localhost:5060" is a (refused) host name, "foo:1.2.3.4" a protocol.
                    let after = first[first.index(after: colon)...]
                    if !head.allSatisfy(\.isHexDigit), !after.allSatisfy({ $0.isASCII && $0.isNumber }) {
                        throw fail("unknown protocol \"\(head)\" (udp and tcp are supported)")
                    }
                }
            }
        }
        let (host, port) = try splitHostPort(String(address), fail)
        guard !host.isEmpty else { throw fail("no address") }
        guard let canonical = canonicalIP(host) else {
            throw fail("\"\(host)\" is not an IP address (host and interface names are not supported)")
        }
        return SIPListenAddress(
            proto: proto, ip: canonical, port: port ?? defaultPort,
            advertisedHost: advertisedHost, advertisedPort: advertisedPort)
    }

    /// "1.2.3.4:5060", "[::1]:5060", "[::1]", "::1", "1.2.3.4", "name:5060".
    private static func splitHostPort(
        _ s: String, _ fail: (String) -> SIPTransportError
    ) throws(SIPTransportError) -> (String, Int?) {
        var host: Substring
        var portText: Substring?
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]") else { throw fail("missing \"]\"") }
            host = s[s.index(after: s.startIndex)..<close]
            let after = s[s.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw fail("unexpected \"\(after)\" after \"]\"") }
                portText = after.dropFirst()
            }
            guard host.contains(":") else { throw fail("brackets are for IPv6 addresses") }
        } else if s.filter({ $0 == ":" }).count > 1 {
            host = Substring(s)  // IPv6 without brackets: no port
        } else if let colon = s.firstIndex(of: ":") {
            host = s[..<colon]
            portText = s[s.index(after: colon)...]
        } else {
            host = Substring(s)
        }
        guard let portText else { return (String(host), nil) }
        guard !portText.isEmpty, portText.allSatisfy({ $0.isASCII && $0.isNumber }), portText.count <= 5,
            let port = Int(portText), port <= 65535
        else { throw fail("invalid port \"\(portText)\"") }
        return (String(host), port)
    }

    static func canonicalIP(_ host: String) -> String? {
        guard let address = try? SocketAddress(ipAddress: host, port: 0) else { return nil }
        return address.ipAddress
    }
}

/// An IP address and port: where a message came from or is going to.
public struct SIPSocketAddress: Sendable, Hashable, CustomStringConvertible {
    let nio: SocketAddress

    /// An IP literal ("127.0.0.1", "::1", also "[::1]") and a port.
    public init(ip: String, port: Int) throws(SIPTransportError) {
        var text = Substring(ip)
        if text.hasPrefix("["), text.hasSuffix("]") { text = text.dropFirst().dropLast() }
        guard (0...65535).contains(port) else { throw SIPTransportError("invalid port \(port)") }
        do {
            nio = try SocketAddress(ipAddress: String(text), port: port)
        } catch {
            throw SIPTransportError("\"\(ip)\" is not an IP address")
        }
    }

    init(_ nio: SocketAddress) { self.nio = nio }

    /// The address in canonical text form, without brackets.
    public var ip: String { nio.ipAddress ?? "?" }
    public var port: Int { nio.port ?? 0 }
    public var isIPv6: Bool {
        if case .v6 = nio { return true }
        return false
    }

    /// "127.0.0.1:5060", "[::1]:5060".
    public var description: String { SIPListenAddress.hostPort(ip, port) }
}

/// A socket the transport listens on, as bound (`port` is the real one when 0 was asked).
/// Messages received on it name it; sending "via" it uses its socket (UDP) or its address as
/// the source of new connections (TCP).
public struct SIPListener: Sendable, Hashable, CustomStringConvertible {
    /// Position in the list given to `start` (0-based).
    public let index: Int
    /// The bound address: protocol, IP and actual port (with the configured `advertise`).
    public let address: SIPListenAddress
    /// What was asked for (port 0 stays 0 here).
    public let configured: SIPListenAddress

    let endpoint: ListenerEndpoint?

    init(index: Int, address: SIPListenAddress, configured: SIPListenAddress, endpoint: ListenerEndpoint?) {
        self.index = index
        self.address = address
        self.configured = configured
        self.endpoint = endpoint
    }

    public var proto: SIPTransportProtocol { address.proto }
    public var ip: String { address.ip }
    public var port: Int { address.port }
    public var isIPv6: Bool { address.isIPv6 }

    public var description: String { address.description }

    public static func == (a: SIPListener, b: SIPListener) -> Bool {
        a.index == b.index && a.address == b.address
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(index)
        hasher.combine(address)
    }
}

/// One whole SIP message as received.
public struct SIPInbound: Sendable {
    /// The message: a whole datagram, or one Content-Length-framed message of a stream.
    public var bytes: [UInt8]
    /// The peer's address (for TCP, the connection's remote end).
    public var source: SIPSocketAddress
    /// The listener it arrived on. For an outgoing connection: the listener it was opened via
    /// (or the first TCP listener of its address family).
    public var local: SIPListener
    /// The TCP connection it came on, to answer on; nil for UDP.
    public var connection: SIPConnection?
    /// `CLOCK_MONOTONIC` nanoseconds when it was read.
    public var receivedAt: UInt64

    public init(
        bytes: [UInt8], source: SIPSocketAddress, local: SIPListener, connection: SIPConnection?,
        receivedAt: UInt64
    ) {
        self.bytes = bytes
        self.source = source
        self.local = local
        self.connection = connection
        self.receivedAt = receivedAt
    }

    public var proto: SIPTransportProtocol { local.proto }
}

/// Called on a transport thread for every message received. Must be cheap and must not block
/// (enqueue and return): it holds up every socket served by that thread.
public typealias SIPInboundSink = @Sendable (SIPInbound) -> Void

/// Told the outcome of a send: for UDP on the sending thread before `send` returns, for TCP on
/// a transport thread. Must be cheap, must not block, and must not call `stop`.
public typealias SIPSendCompletion = @Sendable (Result<Void, SIPTransportError>) -> Void

/// Counters since `start`, readable from any thread.
public struct SIPTransportStats: Sendable, Equatable, CustomStringConvertible {
    /// Whole messages delivered to the sink.
    public var received: Int
    /// Messages written to a socket.
    public var sent: Int
    /// Received data thrown away: oversize datagrams, unframeable streams.
    public var dropped: Int
    /// Failed sends, failed connects, socket errors.
    public var errors: Int
    /// TCP connections open now (both directions).
    public var tcpConnections: Int

    public init(received: Int = 0, sent: Int = 0, dropped: Int = 0, errors: Int = 0, tcpConnections: Int = 0) {
        self.received = received
        self.sent = sent
        self.dropped = dropped
        self.errors = errors
        self.tcpConnections = tcpConnections
    }

    public var description: String {
        "received=\(received) sent=\(sent) dropped=\(dropped) errors=\(errors) tcp_connections=\(tcpConnections)"
    }
}
