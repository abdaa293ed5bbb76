import SIP

/// The transport of a DMQ node (`;transport=` of its URI; absent means UDP).
public enum DMQTransport: String, Sendable, Hashable, CaseIterable {
    case udp, tcp, tls, sctp

    /// The Via transport token: `UDP`, `TCP`, `TLS`, `SCTP`.
    public var viaToken: String { rawValue.uppercased() }
}

/// A readable reason why a DMQ address or body could not be used.
public struct DMQError: Error, Sendable, Equatable, CustomStringConvertible {
    public let reason: String

    public init(_ reason: String) { self.reason = reason }

    public var description: String { reason }
}

/// A node's identity: host (byte-identical, as written), port and transport (spec 1).
///
/// `sip:10.0.0.1` and `sip:10.0.0.1:5060` parse to the same identity here (a missing port means
/// 5060), unlike Kamailio, which compares port strings; host names are never resolved for the
/// comparison, so a name and its IP stay two nodes.
public struct DMQNodeAddress: Sendable, Hashable, CustomStringConvertible {
    /// As written; an IPv6 reference keeps its brackets (`[::1]`).
    public let host: String
    public let port: Int
    public let transport: DMQTransport

    public init(host: String, port: Int, transport: DMQTransport = .udp) {
        self.host = host
        self.port = port
        self.transport = transport
    }

    /// Parses `sip:[user@]HOST[:PORT][;transport=x][;other params]`.
    ///
    /// The user part (a KDMQ From URI carries the channel there), `;status=` and unknown
    /// parameters are ignored. Rejected with a readable reason: another scheme, an empty or
    /// invalid port, port 0, a transport other than udp/tcp/tls/sctp. Surrounding whitespace
    /// is trimmed.
    public init(parsing uri: String) throws(DMQError) {
        self = try Self.parse(trimmedASCII(Substring(uri))).get().address
    }

    /// The address and the parsed URI of `text` (already trimmed).
    static func parse(_ text: Substring) -> Result<(address: DMQNodeAddress, uri: SIPURI), DMQError> {
        guard let parsed = try? SIPURI(parsing: String(text)) else {
            return .failure(DMQError(failureReason(text)))
        }
        do {
            return .success((try DMQNodeAddress(uri: parsed), parsed))
        } catch {
            return .failure(error)
        }
    }

    /// The address of an already parsed URI (see `init(parsing:)` for the rules).
    public init(uri: SIPURI) throws(DMQError) {
        guard uri.scheme == .sip else {
            throw DMQError("\(quoted(uri.text)) is not a sip: URI")
        }
        let host = uri.host
        guard !host.isEmpty else { throw DMQError("\(quoted(uri.text)) has no host") }
        let port = uri.port ?? 5060
        guard port > 0 else { throw DMQError("\(quoted(uri.text)) has port 0") }
        var transport = DMQTransport.udp
        if let p = uri.parameter(named: "transport") {
            guard let v = p.value, let t = DMQTransport(rawValue: v.lowercased()) else {
                throw DMQError("\(quoted(uri.text)): unsupported transport \(quoted(p.value ?? ""))")
            }
            transport = t
        }
        self.init(host: host, port: port, transport: transport)
    }

    /// `sip:HOST:PORT`, plus `;transport=x` when not UDP.
    public var uri: String { "sip:" + hostPortTransport }

    public var description: String { uri }

    /// `sip:CHANNEL@HOST:PORT[;transport=x]`: R-URI and To of a KDMQ request (spec 3.1).
    /// The channel is written as given.
    public func channelURI(_ channel: String) -> String { "sip:" + channel + "@" + hostPortTransport }

    private var hostPortTransport: String {
        var s = host + ":" + String(port)
        if transport != .udp { s += ";transport=" + transport.rawValue }
        return s
    }

    /// The most precise reason for a text `SIPURI` rejected.
    private static func failureReason(_ text: Substring) -> String {
        let q = quoted(text)
        guard let colon = text.firstIndex(of: ":") else { return "\(q) is not a URI" }
        let scheme = text[..<colon].lowercased()
        guard scheme == "sip" else {
            return scheme == "sips" || scheme == "tel" || scheme.allSatisfy({ $0.isLetter })
                ? "\(q) is not a sip: URI" : "\(q) is not a URI"
        }
        var rest = text[text.index(after: colon)...]
        if let at = rest.firstIndex(of: "@") { rest = rest[rest.index(after: at)...] }
        let hostPort = rest.prefix { $0 != ";" && $0 != "?" }
        guard !hostPort.isEmpty else { return "\(q) has no host" }
        var afterHost = hostPort.startIndex
        if hostPort.first == "[" {
            guard let close = hostPort.firstIndex(of: "]") else { return "\(q): unterminated IPv6 reference" }
            afterHost = hostPort.index(after: close)
        } else {
            afterHost = hostPort.firstIndex(of: ":") ?? hostPort.endIndex
        }
        if afterHost < hostPort.endIndex, hostPort[afterHost] == ":" {
            let port = hostPort[hostPort.index(after: afterHost)...]
            if port.isEmpty { return "\(q) has an empty port" }
            if !port.allSatisfy({ $0.isASCII && $0.isNumber }) || port.count > 5 || Int(port)! > 65535 {
                return "\(q) has an invalid port \(quoted(port))"
            }
        }
        return "\(q) is not a valid SIP URI"
    }
}

// MARK: - Helpers

/// `s` without leading and trailing spaces, tabs, CR and LF.
func trimmedASCII(_ s: Substring) -> Substring {
    var a = s.unicodeScalars.startIndex, b = s.unicodeScalars.endIndex
    let u = s.unicodeScalars
    func isTrim(_ c: Unicode.Scalar) -> Bool { c == " " || c == "\t" || c == "\r" || c == "\n" }
    while a < b, isTrim(u[a]) { a = u.index(after: a) }
    while b > a, isTrim(u[u.index(before: b)]) { b = u.index(before: b) }
    return Substring(u[a..<b])
}

/// `'text'` for messages: at most 64 characters (then `...`), every scalar outside printable
/// ASCII written as `\u{XX}`, so a hostile body cannot inject line breaks into logs.
func quoted(_ s: some StringProtocol) -> String {
    var out = "'"
    var n = 0
    for c in s.unicodeScalars {
        if n == 64 {
            out += "..."
            break
        }
        n += 1
        if c.value >= 0x20, c.value < 0x7F {
            out.unicodeScalars.append(c)
        } else {
            out += "\\u{" + String(c.value, radix: 16, uppercase: true) + "}"
        }
    }
    return out + "'"
}

/// Canonical text of IP addresses, for `resolvedIP` and `isNode(ip:)`.
enum IPText {
    /// The canonical text of an IPv4 address, an IPv6 address or an IPv6 reference `[...]`;
    /// nil when `s` is not an IP literal (a host name). IPv6 is written as RFC 5952 (lowercase,
    /// longest zero run compressed, no brackets); an IPv4-mapped IPv6 address
    /// (`::ffff:a.b.c.d`) gives its IPv4 address, so a dual-stack socket's sender matches.
    static func canonical(_ s: some StringProtocol) -> String? {
        var u = Array(s.utf8)
        if u.count >= 2, u.first == UInt8(ascii: "["), u.last == UInt8(ascii: "]") {
            u = Array(u[1..<(u.count - 1)])
        }
        if let v4 = ipv4(u[...]) { return v4Text(v4) }
        guard let g = ipv6(u) else { return nil }
        if g[0...4].allSatisfy({ $0 == 0 }), g[5] == 0xFFFF {
            return v4Text([UInt8(g[6] >> 8), UInt8(g[6] & 0xFF), UInt8(g[7] >> 8), UInt8(g[7] & 0xFF)])
        }
        return v6Text(g)
    }

    private static func v4Text(_ b: [UInt8]) -> String { b.map { String($0) }.joined(separator: ".") }

    /// Four dotted decimal octets (1 to 3 digits each, at most 255).
    private static func ipv4(_ u: ArraySlice<UInt8>) -> [UInt8]? {
        let parts = u.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var out: [UInt8] = []
        for p in parts {
            guard (1...3).contains(p.count), p.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
            let v = p.reduce(0) { $0 * 10 + Int($1 - 48) }
            guard v <= 255 else { return nil }
            out.append(UInt8(v))
        }
        return out
    }

    /// Eight 16-bit groups (`::` compression and a trailing dotted IPv4 accepted).
    private static func ipv6(_ u: [UInt8]) -> [UInt16]? {
        guard u.count >= 2, u.contains(UInt8(ascii: ":")) else { return nil }
        var head: [UInt16] = [], tail: [UInt16] = []
        var sawGap = false
        var i = 0
        if u.starts(with: [58, 58]) {
            sawGap = true
            i = 2
            if i == u.count { return [UInt16](repeating: 0, count: 8) }
        } else if u[0] == 58 {
            return nil
        }
        while i < u.count {
            var j = i
            while j < u.count, u[j] != 58 { j += 1 }
            let piece = u[i..<j]
            if j == u.count, piece.contains(UInt8(ascii: ".")) {
                guard let v4 = ipv4(piece) else { return nil }
                let a = UInt16(v4[0]) << 8 | UInt16(v4[1]), b = UInt16(v4[2]) << 8 | UInt16(v4[3])
                if sawGap { tail += [a, b] } else { head += [a, b] }
                i = j
                break
            }
            guard (1...4).contains(piece.count) else { return nil }
            var v: UInt16 = 0
            for c in piece {
                guard let d = hexDigit(c) else { return nil }
                v = v << 4 | d
            }
            if sawGap { tail.append(v) } else { head.append(v) }
            if j == u.count {
                i = j
                break
            }
            // at a ':'
            if j + 1 < u.count, u[j + 1] == 58 {
                guard !sawGap else { return nil }
                sawGap = true
                i = j + 2
                if i == u.count { break }
            } else {
                guard j + 1 < u.count else { return nil }
                i = j + 1
            }
        }
        let n = head.count + tail.count
        if sawGap {
            guard n <= 7 else { return nil }
            return head + [UInt16](repeating: 0, count: 8 - n) + tail
        }
        return n == 8 ? head : nil
    }

    private static func hexDigit(_ c: UInt8) -> UInt16? {
        switch c {
        case 48...57: UInt16(c - 48)
        case 97...102: UInt16(c - 87)
        case 65...70: UInt16(c - 55)
        default: nil
        }
    }

    private static func v6Text(_ g: [UInt16]) -> String {
        var best = (start: -1, count: 0)
        var i = 0
        while i < 8 {
            if g[i] == 0 {
                var j = i
                while j < 8, g[j] == 0 { j += 1 }
                if j - i > best.count { best = (i, j - i) }
                i = j
            } else {
                i += 1
            }
        }
        func hex(_ r: Range<Int>) -> String { r.map { String(g[$0], radix: 16) }.joined(separator: ":") }
        guard best.count >= 2 else { return hex(0..<8) }
        return hex(0..<best.start) + "::" + hex((best.start + best.count)..<8)
    }
}
