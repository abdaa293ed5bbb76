import NIOCore

/// Cuts a SIP byte stream into messages (RFC 3261 §18.3): the headers end at the first empty
/// line, and `Content-Length` (or compact `l`), required on streams, gives the body's size.
/// Empty lines between messages are keep-alives; a double one (CRLF CRLF, RFC 5626 §3.5.1)
/// is a ping to be answered with a single CRLF.
struct SIPStreamFramer {
    enum Output: Equatable {
        case message([UInt8])
        /// A CRLF CRLF keep-alive ping: answer "\r\n".
        case ping
    }

    enum Failure: Error, Equatable, CustomStringConvertible {
        case missingContentLength
        case badContentLength(String)
        case tooLarge(limit: Int)

        var description: String {
            switch self {
            case .missingContentLength: return "message without Content-Length"
            case .badContentLength(let v): return "invalid Content-Length \"\(v)\""
            case .tooLarge(let limit): return "message larger than \(limit) bytes"
            }
        }
    }

    let maxMessageSize: Int

    /// Bytes of the pending message's headers already searched for their end.
    private var scanned = 0
    /// The pending message's whole size, once its headers are in.
    private var total: Int?
    /// Empty lines seen in a row between messages.
    private var emptyLines = 0

    init(maxMessageSize: Int) {
        self.maxMessageSize = maxMessageSize
    }

    private static let cr = UInt8(ascii: "\r")
    private static let lf = UInt8(ascii: "\n")

    /// The next message or ping at the front of `buffer` (consumed), or nil when more bytes are
    /// needed. Throws when the stream cannot be framed: the connection must be closed.
    mutating func next(_ buffer: inout ByteBuffer) throws(Failure) -> Output? {
        if total == nil {
            if scanned == 0 {
                switch skipKeepAlives(&buffer) {
                case .ping: return .ping
                case .needMore: return nil
                case .message: break
                }
            }
            guard let headerLength = findHeaderEnd(buffer) else {
                if buffer.readableBytes > maxMessageSize { throw .tooLarge(limit: maxMessageSize) }
                return nil
            }
            let bodyLength = try Self.contentLength(buffer, headerLength: headerLength)
            guard bodyLength <= maxMessageSize - headerLength else { throw .tooLarge(limit: maxMessageSize) }
            total = headerLength + bodyLength
            emptyLines = 0
        }
        guard let size = total, buffer.readableBytes >= size else { return nil }
        total = nil
        scanned = 0
        return .message(buffer.readBytes(length: size)!)
    }

    private enum Boundary {
        case ping
        /// Nothing but keep-alives so far (or a CR whose LF has not come).
        case needMore
        /// A message starts here.
        case message
    }

    /// Drops CRLFs (and bare LFs) at a message boundary; a second one in a row is a ping.
    private mutating func skipKeepAlives(_ buffer: inout ByteBuffer) -> Boundary {
        while let byte = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) {
            if byte == Self.lf {
                buffer.moveReaderIndex(forwardBy: 1)
            } else if byte == Self.cr {
                guard let next = buffer.getInteger(at: buffer.readerIndex + 1, as: UInt8.self) else { return .needMore }
                guard next == Self.lf else { return .message }  // a stray CR: the message's problem
                buffer.moveReaderIndex(forwardBy: 2)
            } else {
                return .message
            }
            emptyLines += 1
            if emptyLines == 2 {
                emptyLines = 0
                return .ping
            }
        }
        return .needMore
    }

    /// The length of the headers including the empty line that ends them, if it is in.
    private mutating func findHeaderEnd(_ buffer: ByteBuffer) -> Int? {
        buffer.withUnsafeReadableBytes { bytes -> Int? in
            let n = bytes.count
            var i = scanned
            while i < n {
                if bytes[i] == Self.lf {
                    // An empty line follows: "\n\n" or "\n\r\n".
                    if i + 1 >= n { break }
                    if bytes[i + 1] == Self.lf { return i + 2 }
                    if bytes[i + 1] == Self.cr {
                        if i + 2 >= n { break }
                        if bytes[i + 2] == Self.lf { return i + 3 }
                    }
                }
                i += 1
            }
            scanned = i
            return nil
        }
    }

    /// The value of Content-Length (compact form `l`) among the headers; every copy must agree.
    private static func contentLength(_ buffer: ByteBuffer, headerLength: Int) throws(Failure) -> Int {
        let found: Result<Int?, Failure> = buffer.withUnsafeReadableBytes { all in
            let bytes = UnsafeRawBufferPointer(rebasing: all[..<headerLength])
            var value: Int?
            var lineStart = 0
            var first = true
            while lineStart < bytes.count {
                var lineEnd = lineStart
                while lineEnd < bytes.count, bytes[lineEnd] != lf { lineEnd += 1 }
                defer { lineStart = lineEnd + 1 }
                if first {  // the start line
                    first = false
                    continue
                }
                var end = lineEnd
                if end > lineStart, bytes[end - 1] == cr { end -= 1 }
                guard end > lineStart, bytes[lineStart] != 0x20, bytes[lineStart] != 0x09 else { continue }
                guard let colon = (lineStart..<end).first(where: { bytes[$0] == UInt8(ascii: ":") }) else { continue }
                var nameEnd = colon
                while nameEnd > lineStart, bytes[nameEnd - 1] == 0x20 || bytes[nameEnd - 1] == 0x09 { nameEnd -= 1 }
                guard isContentLength(UnsafeRawBufferPointer(rebasing: bytes[lineStart..<nameEnd])) else { continue }
                var vStart = colon + 1
                var vEnd = end
                while vStart < vEnd, bytes[vStart] == 0x20 || bytes[vStart] == 0x09 { vStart += 1 }
                while vEnd > vStart, bytes[vEnd - 1] == 0x20 || bytes[vEnd - 1] == 0x09 { vEnd -= 1 }
                let raw = UnsafeRawBufferPointer(rebasing: bytes[vStart..<vEnd])
                let text = String(decoding: raw, as: UTF8.self)
                guard !raw.isEmpty, raw.count <= 9, raw.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                    let n = Int(text)
                else { return .failure(.badContentLength(text)) }
                if let value, value != n { return .failure(.badContentLength("\(value)\" and \"\(n)")) }
                value = n
            }
            return .success(value)
        }
        guard let value = try found.get() else { throw .missingContentLength }
        return value
    }

    private static func isContentLength(_ name: UnsafeRawBufferPointer) -> Bool {
        if name.count == 1 { return name[0] | 0x20 == UInt8(ascii: "l") }
        let target = "content-length".utf8
        guard name.count == target.count else { return false }
        return zip(name, target).allSatisfy { $0 | 0x20 == $1 }
    }
}
