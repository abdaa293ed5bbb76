/// A `;name[=value]` parameter of a URI or of a header value.
public struct SIPParameter: Sendable, Hashable, CustomStringConvertible {
    public var name: String
    /// The value as written (a quoted value keeps its quotes); nil for a flag such as `;lr`.
    public var value: String?

    public init(_ name: String, _ value: String? = nil) {
        self.name = name
        self.value = value
    }

    /// The value without surrounding quotes, backslash escapes resolved.
    public var unquotedValue: String? {
        guard let value else { return nil }
        let u = Array(value.utf8)
        guard u.count >= 2, u.first == ASCII.quote, u.last == ASCII.quote else { return value }
        var out: [UInt8] = []
        out.reserveCapacity(u.count)
        var i = 1
        while i < u.count - 1 {
            if u[i] == ASCII.backslash, i + 1 < u.count - 1 { i += 1 }
            out.append(u[i])
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `name` or `name=value`.
    public var description: String {
        if let value { return name + "=" + value }
        return name
    }
}

extension Array where Element == SIPParameter {
    /// The first parameter called `name` (ASCII case-insensitive).
    public func first(named name: String) -> SIPParameter? {
        first { asciiCaseInsensitiveEqual($0.name, name) }
    }
}

func asciiCaseInsensitiveEqual(_ a: String, _ b: String) -> Bool {
    var a = a, b = b
    return a.withUTF8 { pa in
        b.withUTF8 { pb in equalsIgnoringCase(pa, 0..<pa.count, pb, 0..<pb.count) }
    }
}

/// A `sip:`, `sips:` or `tel:` URI (RFC 3261 §19.1, RFC 3966); any other `scheme:` is kept as an
/// opaque absolute URI.
///
/// Holds the text and the positions of its parts; the parts are Strings only when read.
/// `description` is the text exactly as parsed, so it round-trips. Escapes (`%40`) are kept as
/// written; use `SIPURI.percentDecoded(_:)` to resolve them.
public struct SIPURI: Sendable, Hashable, CustomStringConvertible, LosslessStringConvertible {
    public enum Scheme: Sendable, Hashable, CustomStringConvertible {
        case sip, sips, tel
        case other(String)

        public var description: String {
            switch self {
            case .sip: "sip"
            case .sips: "sips"
            case .tel: "tel"
            case .other(let s): s
            }
        }
    }

    /// The URI as written.
    public let text: String
    private let raw: RawURI

    public init(parsing text: String) throws(SIPParseError) {
        guard let r = withUTF8NoThrow(text, { p -> RawURI? in
            let s = skipWSP(p, 0, p.count)
            guard s == 0, trimWSPBack(p, 0, p.count) == p.count, let u = scanURI(p, 0, p.count) else {
                return nil
            }
            return u
        }) else {
            throw SIPParseError(.invalidURI, "invalid URI '\(text)'")
        }
        self.text = text
        self.raw = r
    }

    public init(parsing text: Substring) throws(SIPParseError) {
        try self.init(parsing: String(text))
    }

    public init?(_ description: String) {
        guard let u = try? SIPURI(parsing: description) else { return nil }
        self = u
    }

    /// Builds a `sip:`/`sips:`/`tel:` URI from its parts (values are written as given, so they
    /// must already be escaped). For `tel:`, `user` is the number and `host` is ignored.
    public init(scheme: Scheme = .sip, user: String? = nil, password: String? = nil,
                host: String, port: Int? = nil, parameters: [SIPParameter] = [],
                headers: [SIPParameter] = []) throws(SIPParseError) {
        var s = scheme.description + ":"
        if let user {
            s += user
            if let password { s += ":" + password }
            if scheme != .tel { s += "@" }
        }
        if scheme != .tel {
            s += host
            if let port { s += ":" + String(port) }
        }
        for p in parameters { s += ";" + p.description }
        if !headers.isEmpty {
            s += "?" + headers.map { $0.name + "=" + ($0.value ?? "") }.joined(separator: "&")
        }
        try self.init(parsing: s)
    }

    public var description: String { text }

    private func slice(_ r: Range<Int>) -> String {
        let u = text.utf8
        let a = u.index(u.startIndex, offsetBy: r.lowerBound)
        let b = u.index(u.startIndex, offsetBy: r.upperBound)
        return String(decoding: u[a..<b], as: UTF8.self)
    }

    public var scheme: Scheme {
        switch raw.scheme {
        case .sip: .sip
        case .sips: .sips
        case .tel: .tel
        case .other: .other(slice(raw.schemeRange))
        }
    }

    /// The user part (for `tel:` the number), escapes kept; nil when absent.
    public var user: String? { raw.user.map(slice) }
    public var password: String? { raw.password.map(slice) }
    /// Host name, IPv4 address, or IPv6 reference with its brackets (`[::1]`); empty for `tel:`
    /// and for other schemes.
    public var host: String { slice(raw.host) }
    public var port: Int? { raw.port }

    /// `host` or `host:port`.
    public var hostPort: String {
        guard let port = raw.port else { return host }
        return host + ":" + String(port)
    }

    /// Everything after the scheme's `:` (for opaque URIs: the whole rest).
    public var schemeSpecificPart: String { slice((raw.schemeRange.upperBound + 1)..<text.utf8.count) }

    /// URI parameters in order (`;transport=tcp;lr`).
    public var parameters: [SIPParameter] { collect(raw.params, separator: ASCII.semicolon) }

    /// URI headers in order (`?subject=x&priority=urgent`).
    public var headers: [SIPParameter] {
        guard let h = raw.headers else { return [] }
        return collect(h, separator: ASCII.amp)
    }

    public func parameter(named name: String) -> SIPParameter? { parameters.first(named: name) }

    private func collect(_ r: Range<Int>, separator: UInt8) -> [SIPParameter] {
        guard !r.isEmpty else { return [] }
        return withUTF8NoThrow(text) { p in
            var out: [SIPParameter] = []
            forEachURIParam(p, r, separator: separator) { n, v in
                out.append(SIPParameter(decode(p, n), v.map { decode(p, $0) }))
            }
            return out
        }
    }

    /// Resolves `%XX` escapes (invalid escapes are kept; the result is decoded as UTF-8).
    public static func percentDecoded(_ s: String) -> String {
        let u = Array(s.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(u.count)
        var i = 0
        while i < u.count {
            if u[i] == ASCII.percent, i + 2 < u.count, isHexDigit(u[i + 1]), isHexDigit(u[i + 2]) {
                out.append(hexValue(u[i + 1]) << 4 | hexValue(u[i + 2]))
                i += 3
            } else {
                out.append(u[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Equal when the text is identical (not the RFC 3261 §19.1.4 comparison).
    public static func == (a: SIPURI, b: SIPURI) -> Bool { a.text == b.text }
    public func hash(into h: inout Hasher) { h.combine(text) }
}

/// `[display-name] <URI> *(;param)` or `URI *(;param)`: From, To, Contact, Route, Refer-To, ...
///
/// Without angle brackets, every `;` after the URI starts a header parameter (RFC 3261 §20.10),
/// so in `sip:a@b;tag=x` the tag belongs to the header, not to the URI.
public struct SIPNameAddr: Sendable, Hashable, CustomStringConvertible {
    /// The display name, unquoted (escapes resolved); nil when absent.
    public var displayName: String?
    public var uri: SIPURI
    /// Header parameters (after the URI), in order.
    public var parameters: [SIPParameter]
    /// Whether the parsed text used `<...>`; `description` adds them whenever needed anyway.
    public var usesAngleBrackets: Bool

    public init(displayName: String? = nil, uri: SIPURI, parameters: [SIPParameter] = [],
                usesAngleBrackets: Bool = true) {
        self.displayName = displayName
        self.uri = uri
        self.parameters = parameters
        self.usesAngleBrackets = usesAngleBrackets
    }

    /// Parses one name-addr or addr-spec with its parameters (no trailing list items).
    public init(parsing text: String) throws(SIPParseError) {
        let parsed = withUTF8NoThrow(text) { p -> SIPNameAddr? in
            guard let r = scanNameAddr(p, 0, p.count), r.comma == nil else { return nil }
            return SIPNameAddr.make(p, r)
        }
        guard let parsed else { throw SIPParseError(.invalidNameAddr, "invalid name-addr '\(text)'") }
        self = parsed
    }

    static func make(_ p: Bytes, _ r: RawNameAddr) -> SIPNameAddr? {
        guard let uri = try? SIPURI(parsing: decode(p, r.uri)) else { return nil }
        var display: String? = nil
        if let d = r.display {
            if p[d.lowerBound] == ASCII.quote {
                display = SIPParameter("", decode(p, d)).unquotedValue
            } else {
                display = decode(p, d)
            }
        }
        var params: [SIPParameter] = []
        _ = scanParams(p, r.paramsStart, r.end) { prm in
            params.append(SIPParameter(decode(p, prm.name), prm.value.map { decode(p, $0) }))
        }
        return SIPNameAddr(displayName: display, uri: uri, parameters: params,
                           usesAngleBrackets: r.angle)
    }

    public var tag: String? { parameters.first(named: "tag")?.value }

    public func parameter(named name: String) -> SIPParameter? { parameters.first(named: name) }

    public var description: String {
        var s = ""
        let needsBrackets = usesAngleBrackets || displayName != nil
            || uri.text.utf8.contains { $0 == ASCII.semicolon || $0 == ASCII.comma || $0 == ASCII.question }
        if let displayName {
            s += "\""
            for ch in displayName.unicodeScalars {
                if ch == "\"" || ch == "\\" { s += "\\" }
                s.unicodeScalars.append(ch)
            }
            s += "\" "
        }
        s += needsBrackets ? "<" + uri.text + ">" : uri.text
        for p in parameters { s += ";" + p.description }
        return s
    }
}

/// One Via value (`SIP/2.0/UDP host:port;branch=...`).
public struct SIPVia: Sendable, Hashable, CustomStringConvertible {
    public var protocolName: String
    public var protocolVersion: String
    /// As written (`UDP`, `TCP`, `TLS`, `WS`, ...).
    public var transport: String
    /// Host name, IPv4 address, or IPv6 reference with brackets.
    public var host: String
    public var port: Int?
    public var parameters: [SIPParameter]

    public init(transport: String = "UDP", host: String, port: Int? = nil,
                parameters: [SIPParameter] = [], protocolName: String = "SIP",
                protocolVersion: String = "2.0") {
        self.protocolName = protocolName
        self.protocolVersion = protocolVersion
        self.transport = transport
        self.host = host
        self.port = port
        self.parameters = parameters
    }

    /// Parses the first via-parm of `text`.
    public init(parsing text: String) throws(SIPParseError) {
        let parsed = withUTF8NoThrow(text) { p -> SIPVia? in
            guard let r = scanVia(p, 0, p.count) else { return nil }
            return SIPVia.make(p, r)
        }
        guard let parsed else { throw SIPParseError(.invalidVia, "invalid Via '\(text)'") }
        self = parsed
    }

    static func make(_ p: Bytes, _ r: RawVia) -> SIPVia {
        var params: [SIPParameter] = []
        _ = scanParams(p, r.paramsStart, r.end) { prm in
            params.append(SIPParameter(decode(p, prm.name), prm.value.map { decode(p, $0) }))
        }
        return SIPVia(transport: decode(p, r.transport), host: decode(p, r.host), port: r.port,
                      parameters: params, protocolName: decode(p, r.protocolName),
                      protocolVersion: decode(p, r.protocolVersion))
    }

    public func parameter(named name: String) -> SIPParameter? { parameters.first(named: name) }
    public var branch: String? { parameter(named: "branch")?.value }
    public var received: String? { parameter(named: "received")?.value }
    /// True when an `rport` parameter is present (with or without a value).
    public var hasRPort: Bool { parameter(named: "rport") != nil }
    /// The `rport` value; nil when absent or empty.
    public var rport: Int? { parameter(named: "rport")?.value.flatMap { Int($0) } }

    public var description: String {
        var s = protocolName + "/" + protocolVersion + "/" + transport + " " + host
        if let port { s += ":" + String(port) }
        for p in parameters { s += ";" + p.description }
        return s
    }
}

/// `CSeq: 10 KDMQ`.
public struct SIPCSeq: Sendable, Hashable, CustomStringConvertible {
    public var number: UInt32
    public var method: SIPMethod

    public init(number: UInt32, method: SIPMethod) {
        self.number = number
        self.method = method
    }

    public var description: String { String(number) + " " + method.name }
}
