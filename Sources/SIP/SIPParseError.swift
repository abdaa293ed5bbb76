/// Why bytes are not an acceptable SIP message (or a header value is not acceptable).
///
/// When the message was a request whose start line, Via, From, To, Call-ID and CSeq could still
/// be parsed, `partialMessage` holds what was located before the problem (headers up to that
/// point, empty body), so that a `400 Bad Request` can be built with `SIPResponseBuilder`.
public struct SIPParseError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable, Hashable {
        case messageTooLarge
        case emptyMessage
        case invalidStartLine
        case invalidVersion
        case invalidStatusCode
        case invalidHeaderLine
        case continuationWithoutHeader
        case headerTooLong
        case tooManyHeaders
        case missingEndOfHeaders
        case invalidContentLength
        case conflictingContentLength
        case truncatedBody
        case missingContentLength
        case invalidURI
        case invalidVia
        case invalidNameAddr
        case invalidCSeq
    }

    public let code: Code
    /// A human-readable explanation.
    public let reason: String
    /// Byte offset where the problem was detected, when known.
    public let offset: Int?
    /// The request as far as it was understood, present only when a 400 can be formed.
    public let partialMessage: SIPMessage?

    public init(_ code: Code, _ reason: String, offset: Int? = nil, partialMessage: SIPMessage? = nil) {
        self.code = code
        self.reason = reason
        self.offset = offset
        self.partialMessage = partialMessage
    }

    /// True when a `400 Bad Request` can still be sent (see `partialMessage`).
    public var canReplyBadRequest: Bool { partialMessage != nil }

    public var description: String {
        var s = "SIP parse error (\(code.rawValue)): \(reason)"
        if let offset { s += " at byte \(offset)" }
        return s
    }
}
