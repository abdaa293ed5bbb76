/// One located header line: its name and (trimmed) value as byte ranges of `SIPMessage.bytes`.
///
/// A folded value (continuation lines) spans the line breaks; `SIPMessage.value(of:)` unfolds it.
public struct SIPHeaderField: Sendable, Hashable {
    public let kind: SIPHeaderKind
    /// True when the value continues on following lines (RFC 3261 §7.3.1 folding).
    public let isFolded: Bool
    let nameStart: UInt32
    let nameEnd: UInt32
    let valueStart: UInt32
    let valueEnd: UInt32

    init(kind: SIPHeaderKind, isFolded: Bool, name: Range<Int>, value: Range<Int>) {
        self.kind = kind
        self.isFolded = isFolded
        nameStart = UInt32(truncatingIfNeeded: name.lowerBound)
        nameEnd = UInt32(truncatingIfNeeded: name.upperBound)
        valueStart = UInt32(truncatingIfNeeded: value.lowerBound)
        valueEnd = UInt32(truncatingIfNeeded: value.upperBound)
    }

    public var nameRange: Range<Int> { Int(nameStart)..<Int(nameEnd) }
    /// The value as it is in the message (for a folded value: including the line breaks).
    public var valueRange: Range<Int> { Int(valueStart)..<Int(valueEnd) }
}

/// A SIP request or response over the bytes it was received as.
///
/// Parsing is split in two:
/// * **eager** (in `init`): the start line, the location of every header line (name and value
///   ranges, one pass, folding handled, names classified into `SIPHeaderKind` including compact
///   forms), `Content-Length` and the body range;
/// * **lazy** (accessors): header values are decoded and parsed only when asked for (`via`,
///   `from`, `to`, `callID`, `cseq`, ...). Accessors return nil when the header is absent or its
///   value does not parse. Nothing is cached: call an accessor once and keep the result.
///
/// Values are bytes; string accessors decode them as UTF-8, replacing invalid sequences.
public struct SIPMessage: Sendable {
    public enum Framing: Sendable, Hashable {
        /// UDP: without Content-Length the body is the rest of the datagram; bytes after
        /// Content-Length are ignored.
        case datagram
        /// TCP/TLS (after `SIPStreamFramer`): Content-Length is required.
        case stream
    }

    public struct Limits: Sendable, Hashable {
        /// Largest message accepted, in bytes.
        public var maxMessageSize: Int
        /// Most header lines accepted (a folded header counts once).
        public var maxHeaderCount: Int
        /// Longest start line or header (folded: all of its lines), in bytes.
        public var maxHeaderLength: Int

        public init(maxMessageSize: Int = 65_535, maxHeaderCount: Int = 256,
                    maxHeaderLength: Int = 8_192) {
            self.maxMessageSize = min(maxMessageSize, Int(Int32.max))
            self.maxHeaderCount = maxHeaderCount
            self.maxHeaderLength = maxHeaderLength
        }

        public static let `default` = Limits()
    }

    /// The message exactly as received.
    public let bytes: [UInt8]
    /// Every header line, in order.
    public let fields: [SIPHeaderField]
    /// The request method; nil for responses.
    public let method: SIPMethod?
    /// The status code (100...699); nil for requests.
    public let statusCode: Int?
    /// The Content-Length value (all Content-Length headers agree); nil when absent.
    public let contentLength: Int?
    /// The body's byte range in `bytes`.
    public let bodyRange: Range<Int>
    let startLineRange: Range<Int>
    /// Request-URI (requests) or reason phrase (responses).
    let middleRange: Range<Int>
    let versionRange: Range<Int>

    /// Parses `bytes`. Throws `SIPParseError` for anything that is not a well-framed message;
    /// never traps, never loops beyond one pass over the input.
    public init(_ bytes: [UInt8], framing: Framing = .datagram, limits: Limits = .default) throws(SIPParseError) {
        self = try bytes.withUnsafeBufferPointer { (p: Bytes) throws(SIPParseError) -> SIPMessage in
            try SIPMessage.parse(bytes, p, framing, limits)
        }
    }

    /// Parses the UTF-8 of `text` (tests, tools).
    public init(_ text: String, framing: Framing = .datagram, limits: Limits = .default) throws(SIPParseError) {
        try self.init(Array(text.utf8), framing: framing, limits: limits)
    }

    init(bytes: [UInt8], fields: [SIPHeaderField], method: SIPMethod?, statusCode: Int?,
         contentLength: Int?, bodyRange: Range<Int>, startLineRange: Range<Int>,
         middleRange: Range<Int>, versionRange: Range<Int>) {
        self.bytes = bytes
        self.fields = fields
        self.method = method
        self.statusCode = statusCode
        self.contentLength = contentLength
        self.bodyRange = bodyRange
        self.startLineRange = startLineRange
        self.middleRange = middleRange
        self.versionRange = versionRange
    }

    public var isRequest: Bool { method != nil }
    public var isResponse: Bool { statusCode != nil }
}

// MARK: - Eager parse

extension SIPMessage {
    private struct StartLine {
        var method: SIPMethod?
        var status: Int?
        var line: Range<Int>
        var middle: Range<Int>
        var version: Range<Int>
    }

    /// Index of the first LF in `p[from..<end]`, eight bytes at a time.
    @inline(__always) private static func findLF(_ p: Bytes, _ from: Int, _ end: Int) -> Int? {
        var i = from
        #if _endian(little)
        if let base = p.baseAddress, end <= p.count {
            let raw = UnsafeRawPointer(base)
            while i + 8 <= end {
                let x = raw.loadUnaligned(fromByteOffset: i, as: UInt64.self) ^ 0x0A0A_0A0A_0A0A_0A0A
                let hit = (x &- 0x0101_0101_0101_0101) & ~x & 0x8080_8080_8080_8080
                if hit != 0 { return i + hit.trailingZeroBitCount >> 3 }
                i += 8
            }
        }
        #endif
        while i < end {
            if p[i] == ASCII.lf { return i }
            i += 1
        }
        return nil
    }

    private static func parse(_ bytes: [UInt8], _ p: Bytes, _ framing: Framing,
                              _ limits: Limits) throws(SIPParseError) -> SIPMessage {
        let n = p.count
        guard n <= limits.maxMessageSize else {
            throw SIPParseError(.messageTooLarge,
                                "message of \(n) bytes exceeds the limit of \(limits.maxMessageSize)")
        }
        var i = 0
        while i < n, p[i] == ASCII.cr || p[i] == ASCII.lf { i += 1 }  // RFC 3261 §7.5
        guard i < n else { throw SIPParseError(.emptyMessage, "no start line") }

        // Start line
        guard let firstLF = findLF(p, i, min(n, i + limits.maxHeaderLength + 2)) else {
            if n - i > limits.maxHeaderLength {
                throw SIPParseError(.headerTooLong, "start line longer than \(limits.maxHeaderLength) bytes", offset: i)
            }
            throw SIPParseError(.missingEndOfHeaders, "start line is not terminated", offset: n)
        }
        var le = firstLF
        if le > i, p[le - 1] == ASCII.cr { le -= 1 }
        guard le - i <= limits.maxHeaderLength else {
            throw SIPParseError(.headerTooLong, "start line longer than \(limits.maxHeaderLength) bytes", offset: i)
        }
        let sl = try parseStartLine(p, i, le)
        i = firstLF + 1

        // Header lines
        var fields: [SIPHeaderField] = []
        fields.reserveCapacity(16)

        func failure(_ code: SIPParseError.Code, _ reason: String, _ offset: Int) -> SIPParseError {
            var partial: SIPMessage? = nil
            if sl.method != nil {
                let m = SIPMessage(
                    bytes: bytes, fields: fields, method: sl.method, statusCode: nil,
                    contentLength: nil, bodyRange: n..<n, startLineRange: sl.line,
                    middleRange: sl.middle, versionRange: sl.version)
                if m.canFormReply { partial = m }
            }
            return SIPParseError(code, reason, offset: offset, partialMessage: partial)
        }

        let bodyStart: Int
        while true {
            guard i < n else {
                throw failure(.missingEndOfHeaders, "no empty line after the headers", n)
            }
            let c = p[i]
            if c == ASCII.lf {
                bodyStart = i + 1
                break
            }
            if c == ASCII.cr {
                if i + 1 < n, p[i + 1] == ASCII.lf {
                    bodyStart = i + 2
                    break
                }
                if i + 1 == n {
                    throw failure(.missingEndOfHeaders, "no empty line after the headers", n)
                }
                throw failure(.invalidHeaderLine, "stray CR at the start of a header line", i)
            }
            guard let lf = findLF(p, i, min(n, i + limits.maxHeaderLength + 2)) else {
                if n - i > limits.maxHeaderLength {
                    throw failure(.headerTooLong, "header line longer than \(limits.maxHeaderLength) bytes", i)
                }
                throw failure(.missingEndOfHeaders, "last header line is not terminated", n)
            }
            var le = lf
            if le > i, p[le - 1] == ASCII.cr { le -= 1 }
            guard le - i <= limits.maxHeaderLength else {
                throw failure(.headerTooLong, "header line longer than \(limits.maxHeaderLength) bytes", i)
            }
            if isWSP(c) {
                // continuation of the previous header's value
                guard let last = fields.last else {
                    throw failure(.continuationWithoutHeader, "continuation line before any header", i)
                }
                let cs = skipWSP(p, i, le)
                let ce = trimWSPBack(p, cs, le)
                if ce > cs {
                    guard ce - last.nameRange.lowerBound <= limits.maxHeaderLength else {
                        throw failure(.headerTooLong, "folded header longer than \(limits.maxHeaderLength) bytes", i)
                    }
                    let empty = last.valueStart == last.valueEnd
                    fields[fields.count - 1] = SIPHeaderField(
                        kind: last.kind, isFolded: !empty, name: last.nameRange,
                        value: (empty ? cs : last.valueRange.lowerBound)..<ce)
                }
                i = lf + 1
                continue
            }
            var j = i
            while j < le, isTokenChar(p[j]) { j += 1 }
            guard j > i else {
                throw failure(.invalidHeaderLine, "header name expected", i)
            }
            let name = i..<j
            j = skipWSP(p, j, le)
            guard j < le, p[j] == ASCII.colon else {
                throw failure(.invalidHeaderLine, "missing ':' after header name '\(decode(p, name))'", j)
            }
            guard fields.count < limits.maxHeaderCount else {
                throw failure(.tooManyHeaders, "more than \(limits.maxHeaderCount) header lines", i)
            }
            let vs = skipWSP(p, j + 1, le)
            let ve = trimWSPBack(p, vs, le)
            fields.append(SIPHeaderField(kind: SIPHeaderKind.classify(p, name.lowerBound, name.upperBound),
                                         isFolded: false, name: name, value: vs..<ve))
            i = lf + 1
        }

        // Content-Length and body
        var contentLength: Int? = nil
        for f in fields where f.kind == .contentLength {
            let r = f.valueRange
            guard !f.isFolded, let v = parseDecimal(p, r.lowerBound, r.upperBound, maxDigits: 10) else {
                throw failure(.invalidContentLength, "Content-Length '\(decode(p, r))' is not a number", r.lowerBound)
            }
            guard v <= limits.maxMessageSize else {
                throw failure(.invalidContentLength, "Content-Length \(v) exceeds the message size limit", r.lowerBound)
            }
            if let cl = contentLength, cl != v {
                throw failure(.conflictingContentLength, "Content-Length given as both \(cl) and \(v)", r.lowerBound)
            }
            contentLength = v
        }
        let available = n - bodyStart
        let body: Range<Int>
        if let cl = contentLength {
            guard cl <= available else {
                throw failure(.truncatedBody, "truncated body: Content-Length \(cl) but \(available) bytes follow the headers", n)
            }
            body = bodyStart..<(bodyStart + cl)
        } else if framing == .stream {
            throw failure(.missingContentLength, "Content-Length is required on stream transports", bodyStart)
        } else {
            body = bodyStart..<n
        }
        return SIPMessage(bytes: bytes, fields: fields, method: sl.method, statusCode: sl.status,
                          contentLength: contentLength, bodyRange: body, startLineRange: sl.line,
                          middleRange: sl.middle, versionRange: sl.version)
    }

    /// `SIP/x.y` (or, for requests, `HTTP/x.y` as Kamailio's xhttp accepts).
    private static func isVersion(_ p: Bytes, _ s: Int, _ e: Int, allowHTTP: Bool) -> Bool {
        var i: Int
        if e - s > 4, equalsLower(p, s, s + 4, "sip/") {
            i = s + 4
        } else if allowHTTP, e - s > 5, equalsLower(p, s, s + 5, "http/") {
            i = s + 5
        } else {
            return false
        }
        let ms = i
        while i < e, isDigit(p[i]) { i += 1 }
        guard i > ms, i < e, p[i] == ASCII.dot else { return false }
        i += 1
        let ns = i
        while i < e, isDigit(p[i]) { i += 1 }
        return i > ns && i == e
    }

    private static func parseStartLine(_ p: Bytes, _ s: Int, _ e: Int) throws(SIPParseError) -> StartLine {
        if e - s >= 4, equalsLower(p, s, s + 4, "sip/") {
            // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
            var j = s
            while j < e, !isWSP(p[j]) { j += 1 }
            guard isVersion(p, s, j, allowHTTP: false) else {
                throw SIPParseError(.invalidVersion, "invalid SIP version '\(decode(p, s..<j))'", offset: s)
            }
            let version = s..<j
            let cs = skipWSP(p, j, e)
            guard cs > j else {
                throw SIPParseError(.invalidStartLine, "status code missing", offset: j)
            }
            j = cs
            while j < e, isDigit(p[j]) { j += 1 }
            guard j - cs == 3, j == e || isWSP(p[j]),
                  let code = parseDecimal(p, cs, j, maxDigits: 3), code >= 100, code <= 699 else {
                throw SIPParseError(.invalidStatusCode, "invalid status code", offset: cs)
            }
            let rs = skipWSP(p, j, e)
            let re = trimWSPBack(p, rs, e)
            return StartLine(method: nil, status: code, line: s..<e, middle: rs..<re, version: version)
        }
        // Request-Line = Method SP Request-URI SP SIP-Version
        var j = s
        while j < e, isTokenChar(p[j]) { j += 1 }
        guard j > s else {
            throw SIPParseError(.invalidStartLine, "method expected", offset: s)
        }
        guard j < e, isWSP(p[j]) else {
            throw SIPParseError(.invalidStartLine, "invalid character in method", offset: j)
        }
        let methodRange = s..<j
        let us = skipWSP(p, j, e)
        let le = trimWSPBack(p, us, e)
        var vs = le
        while vs > us, !isWSP(p[vs - 1]) { vs -= 1 }
        let ue = trimWSPBack(p, us, vs)
        guard vs > us, ue > us else {
            throw SIPParseError(.invalidStartLine, "Request-URI or SIP version missing", offset: us)
        }
        guard isVersion(p, vs, le, allowHTTP: true) else {
            throw SIPParseError(.invalidVersion, "invalid SIP version '\(decode(p, vs..<le))'", offset: vs)
        }
        var k = us
        while k < ue {
            guard !isWSP(p[k]) else {
                throw SIPParseError(.invalidStartLine, "whitespace inside the Request-URI", offset: k)
            }
            k += 1
        }
        return StartLine(method: SIPMethod(p, methodRange.lowerBound, methodRange.upperBound),
                         status: nil, line: s..<le, middle: us..<ue, version: vs..<le)
    }
}
