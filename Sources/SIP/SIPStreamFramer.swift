/// Cuts a TCP/TLS byte stream into SIP messages (RFC 3261 §18.3).
///
/// Append bytes as they arrive, then call `next()` until it returns nil. Each message ends
/// `Content-Length` bytes after the empty line; Content-Length is required. CR/LF between
/// messages are keep-alives (RFC 5626: a client's `CRLFCRLF` ping, to be answered with one
/// CRLF pong) and are skipped; `keepAlivePings` counts the pings seen.
///
/// After an error the stream cannot be resynchronised: `next()` keeps throwing the same error
/// and the connection should be closed.
public struct SIPStreamFramer: Sendable {
    public let maxMessageSize: Int
    /// Number of `CRLFCRLF` keep-alive pings skipped so far.
    public private(set) var keepAlivePings = 0

    private var buffer: [UInt8] = []
    private var start = 0            // first byte not yet handed out
    private var scanned = 0          // the search for the empty line resumes here
    private var headerEnd: Int?      // one past the empty line of the current message
    private var bodyLength = 0
    private var newlineRun = 0       // LFs in the current run of keep-alive bytes
    private var failure: SIPParseError?

    public init(maxMessageSize: Int = 65_535) {
        self.maxMessageSize = maxMessageSize
    }

    /// Bytes received but not yet handed out as a message.
    public var bufferedByteCount: Int { buffer.count - start }

    public mutating func append(_ bytes: [UInt8]) {
        compactIfUseful()
        buffer.append(contentsOf: bytes)
    }

    public mutating func append(contentsOf bytes: some Sequence<UInt8>) {
        compactIfUseful()
        buffer.append(contentsOf: bytes)
    }

    /// The next complete message, or nil when more bytes are needed.
    public mutating func next() throws(SIPParseError) -> [UInt8]? {
        if let failure { throw failure }
        do {
            return try nextMessage()
        } catch {
            failure = error
            throw error
        }
    }

    private mutating func nextMessage() throws(SIPParseError) -> [UInt8]? {
        if headerEnd == nil {
            while start < buffer.count, buffer[start] == ASCII.cr || buffer[start] == ASCII.lf {
                if buffer[start] == ASCII.lf {
                    newlineRun += 1
                    if newlineRun == 2 {
                        keepAlivePings += 1
                        newlineRun = 0
                    }
                }
                start += 1
            }
            guard start < buffer.count else { return nil }
            newlineRun = 0
            scanned = max(scanned, start)
            guard let end = findEndOfHeaders() else {
                if buffer.count - start > maxMessageSize {
                    throw SIPParseError(.messageTooLarge,
                                        "no end of headers within \(maxMessageSize) bytes")
                }
                return nil
            }
            let length = try buffer.withUnsafeBufferPointer { (p: Bytes) throws(SIPParseError) -> Int in
                try Self.contentLength(p, start, end)
            }
            guard end - start + length <= maxMessageSize else {
                throw SIPParseError(.messageTooLarge,
                                    "message of \(end - start + length) bytes exceeds the limit of \(maxMessageSize)")
            }
            headerEnd = end
            bodyLength = length
        }
        guard let he = headerEnd, buffer.count - he >= bodyLength else { return nil }
        let message = Array(buffer[start..<(he + bodyLength)])
        start = he + bodyLength
        scanned = start
        headerEnd = nil
        compactIfUseful()
        return message
    }

    /// One past `LF LF` or `LF CR LF`, searching from `scanned`.
    private mutating func findEndOfHeaders() -> Int? {
        var i = scanned
        let n = buffer.count
        while i < n {
            if buffer[i] == ASCII.lf {
                if i + 1 >= n { break }
                if buffer[i + 1] == ASCII.lf { return i + 2 }
                if buffer[i + 1] == ASCII.cr {
                    if i + 2 >= n { break }
                    if buffer[i + 2] == ASCII.lf { return i + 3 }
                }
            }
            i += 1
        }
        scanned = i
        return nil
    }

    /// The (single, or all equal) Content-Length of the header section `p[start..<end]`.
    private static func contentLength(_ p: Bytes, _ start: Int, _ end: Int) throws(SIPParseError) -> Int {
        var value: Int? = nil
        var i = start
        var first = true
        while i < end {
            var lf = i
            while lf < end, p[lf] != ASCII.lf { lf += 1 }
            var le = lf
            if le > i, p[le - 1] == ASCII.cr { le -= 1 }
            defer { i = lf + 1 }
            if first {
                first = false
                continue
            }
            guard le > i, !isWSP(p[i]) else { continue }
            var j = i
            while j < le, isTokenChar(p[j]) { j += 1 }
            guard SIPHeaderKind.classify(p, i, j) == .contentLength else { continue }
            j = skipWSP(p, j, le)
            guard j < le, p[j] == ASCII.colon else { continue }
            let vs = skipWSP(p, j + 1, le)
            let ve = trimWSPBack(p, vs, le)
            guard let v = parseDecimal(p, vs, ve, maxDigits: 10) else {
                throw SIPParseError(.invalidContentLength,
                                    "Content-Length '\(decode(p, vs..<ve))' is not a number", offset: vs)
            }
            if let value, value != v {
                throw SIPParseError(.conflictingContentLength,
                                    "Content-Length given as both \(value) and \(v)", offset: vs)
            }
            value = v
        }
        guard let value else {
            throw SIPParseError(.missingContentLength, "Content-Length is required on stream transports")
        }
        return value
    }

    private mutating func compactIfUseful() {
        guard start > 0 else { return }
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
        } else if start >= 4096, start * 2 >= buffer.count {
            buffer.removeSubrange(0..<start)
        } else {
            return
        }
        scanned = max(scanned - start, 0)
        if let he = headerEnd { headerEnd = he - start }
        start = 0
    }
}
