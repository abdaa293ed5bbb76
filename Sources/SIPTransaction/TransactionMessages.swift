import KSRBase
import SIP

/// The requests and responses the transaction layer makes up itself.
public enum TransactionMessages {
    /// The ACK an INVITE client transaction sends for a non-2xx final response
    /// (RFC 3261 §17.1.1.3): the request's Request-URI, its top Via only, its Route headers,
    /// From, Call-ID and CSeq number with method ACK; the response's To (with its tag).
    public static func ack(for invite: SIPMessage, response: SIPMessage) -> [UInt8] {
        var h: [SIPHeader] = []
        if let via = invite.headers(.via).first { h.append(SIPHeader("Via", via)) }
        h.append(SIPHeader("Max-Forwards", "70"))
        appendRoutes(of: invite, to: &h)
        if let from = invite.header(.from) { h.append(SIPHeader("From", from)) }
        if let to = response.header(.to) ?? invite.header(.to) { h.append(SIPHeader("To", to)) }
        if let callID = invite.callID { h.append(SIPHeader("Call-ID", callID)) }
        h.append(SIPHeader("CSeq", String(invite.cseq?.number ?? 0) + " ACK"))
        h.append(SIPHeader("Content-Length", "0"))
        return SIPRequestBuilder.request(method: .ack, requestURI: invite.requestURI ?? "", headers: h)
    }

    /// The CANCEL for a pending request (RFC 3261 §9.1): the same Request-URI, Call-ID, To,
    /// From, CSeq number (method CANCEL), top Via and Route headers.
    public static func cancel(for request: SIPMessage) -> [UInt8] {
        var h: [SIPHeader] = []
        if let via = request.headers(.via).first { h.append(SIPHeader("Via", via)) }
        h.append(SIPHeader("Max-Forwards", "70"))
        appendRoutes(of: request, to: &h)
        if let from = request.header(.from) { h.append(SIPHeader("From", from)) }
        if let to = request.header(.to) { h.append(SIPHeader("To", to)) }
        if let callID = request.callID { h.append(SIPHeader("Call-ID", callID)) }
        h.append(SIPHeader("CSeq", String(request.cseq?.number ?? 0) + " CANCEL"))
        h.append(SIPHeader("Content-Length", "0"))
        return SIPRequestBuilder.request(method: .cancel, requestURI: request.requestURI ?? "", headers: h)
    }

    /// A response made up locally for `request` (the client transaction's own request): every
    /// Via value, From, To (with `toTag` added when it has none), Call-ID and CSeq copied.
    /// Used for the 408 of a timeout and the 503 of a transport error.
    public static func localResponse(to request: SIPMessage, status: Int, reason: String,
                                     toTag: String) -> SIPMessage {
        var h: [SIPHeader] = []
        for v in request.headers(.via) { h.append(SIPHeader("Via", v)) }
        if let from = request.header(.from) { h.append(SIPHeader("From", from)) }
        if let to = request.header(.to) {
            let tagged = request.to?.tag == nil && !toTag.isEmpty ? to + ";tag=" + toTag : to
            h.append(SIPHeader("To", tagged))
        }
        if let callID = request.callID { h.append(SIPHeader("Call-ID", callID)) }
        if let cseq = request.header(.cseq) { h.append(SIPHeader("CSeq", cseq)) }
        h.append(SIPHeader("Content-Length", "0"))
        let bytes = SIPResponseBuilder.response(status: status, reason: reason, headers: h)
        if let m = try? SIPMessage(bytes) { return m }
        // Only reachable with header values that do not survive a round trip.
        let bare = SIPResponseBuilder.response(status: status, reason: reason, headers: [])
        return (try? SIPMessage(bare)) ?? fallbackMessage
    }

    /// 408 Request Timeout for `request`.
    public static func timeoutResponse(to request: SIPMessage, toTag: String) -> SIPMessage {
        localResponse(to: request, status: 408, reason: "Request Timeout", toTag: toTag)
    }

    /// 503 Service Unavailable for `request` (transport error).
    public static func transportErrorResponse(to request: SIPMessage, toTag: String) -> SIPMessage {
        localResponse(to: request, status: 503, reason: "Service Unavailable", toTag: toTag)
    }

    private static let fallbackMessage: SIPMessage = {
        // A literal that always parses.
        // swiftlint:disable:next force_try
        try! SIPMessage("SIP/2.0 500 Server Internal Error\r\nContent-Length: 0\r\n\r\n")
    }()

    private static func appendRoutes(of m: SIPMessage, to h: inout [SIPHeader]) {
        for f in m.fields where f.kind == .route { h.append(SIPHeader("Route", m.value(of: f))) }
    }

    /// A random tag / token of `count` characters from [0-9a-z] (unguessable: the system's
    /// cryptographic generator).
    public static func randomToken(count: Int = 16) -> String {
        // One 64-bit draw gives 8 characters; the draws come from a per-thread buffer of
        // kernel randomness (one getrandom call per 64 of them).
        var g = FastRandom()
        let alphabet: StaticString = "0123456789abcdefghijklmnopqrstuvwxyz"
        return String(unsafeUninitializedCapacity: count) { out in
            var bits: UInt64 = 0
            for i in 0..<count {
                if i % 8 == 0 { bits = g.next() }
                out[i] = alphabet.utf8Start[Int((bits & 0xff) % 36)]
                bits >>= 8
            }
            return count
        }
    }
}
