/// The headers the codec recognises by name (case-insensitively, compact forms included).
/// Everything else is `.other`; those are still located and can be looked up by name.
public enum SIPHeaderKind: UInt8, Sendable, Hashable, CaseIterable {
    case other
    case via, from, to, callID, cseq, contact, contentLength, contentType, contentEncoding
    case maxForwards, route, recordRoute, subject, supported, event, allowEvents, referTo
    case referredBy, sessionExpires, identity, userAgent, server, allow, require, proxyRequire
    case unsupported, expires, minExpires, authorization, proxyAuthorization, wwwAuthenticate
    case proxyAuthenticate, accept, acceptEncoding, acceptLanguage, path, serviceRoute
    case date, timestamp, warning, retryAfter, organization, priority, replyTo, inReplyTo
    case alertInfo, callInfo, errorInfo, mimeVersion, contentDisposition, contentLanguage
    case rseq, rack, privacy, pAssertedIdentity, pPreferredIdentity, reason

    /// The canonical spelling (`"Call-ID"`); empty for `.other`.
    public var canonicalName: String {
        switch self {
        case .other: ""
        case .via: "Via"
        case .from: "From"
        case .to: "To"
        case .callID: "Call-ID"
        case .cseq: "CSeq"
        case .contact: "Contact"
        case .contentLength: "Content-Length"
        case .contentType: "Content-Type"
        case .contentEncoding: "Content-Encoding"
        case .maxForwards: "Max-Forwards"
        case .route: "Route"
        case .recordRoute: "Record-Route"
        case .subject: "Subject"
        case .supported: "Supported"
        case .event: "Event"
        case .allowEvents: "Allow-Events"
        case .referTo: "Refer-To"
        case .referredBy: "Referred-By"
        case .sessionExpires: "Session-Expires"
        case .identity: "Identity"
        case .userAgent: "User-Agent"
        case .server: "Server"
        case .allow: "Allow"
        case .require: "Require"
        case .proxyRequire: "Proxy-Require"
        case .unsupported: "Unsupported"
        case .expires: "Expires"
        case .minExpires: "Min-Expires"
        case .authorization: "Authorization"
        case .proxyAuthorization: "Proxy-Authorization"
        case .wwwAuthenticate: "WWW-Authenticate"
        case .proxyAuthenticate: "Proxy-Authenticate"
        case .accept: "Accept"
        case .acceptEncoding: "Accept-Encoding"
        case .acceptLanguage: "Accept-Language"
        case .path: "Path"
        case .serviceRoute: "Service-Route"
        case .date: "Date"
        case .timestamp: "Timestamp"
        case .warning: "Warning"
        case .retryAfter: "Retry-After"
        case .organization: "Organization"
        case .priority: "Priority"
        case .replyTo: "Reply-To"
        case .inReplyTo: "In-Reply-To"
        case .alertInfo: "Alert-Info"
        case .callInfo: "Call-Info"
        case .errorInfo: "Error-Info"
        case .mimeVersion: "MIME-Version"
        case .contentDisposition: "Content-Disposition"
        case .contentLanguage: "Content-Language"
        case .rseq: "RSeq"
        case .rack: "RAck"
        case .privacy: "Privacy"
        case .pAssertedIdentity: "P-Asserted-Identity"
        case .pPreferredIdentity: "P-Preferred-Identity"
        case .reason: "Reason"
        }
    }

    /// Headers whose value is a comma-separated list (RFC 3261 §7.3.1), so that
    /// `headers(named:)` returns one element per list item.
    public var isList: Bool {
        switch self {
        case .via, .contact, .route, .recordRoute, .allow, .supported, .require, .proxyRequire,
             .unsupported, .accept, .acceptEncoding, .acceptLanguage, .allowEvents,
             .contentEncoding, .contentLanguage, .path, .serviceRoute, .alertInfo, .callInfo,
             .errorInfo, .warning, .inReplyTo, .pAssertedIdentity, .pPreferredIdentity, .reason:
            true
        default:
            false
        }
    }

    /// Recognises a header name (full or compact form, any case); `.other` when unknown.
    public init(name: String) {
        self = withUTF8NoThrow(name) { p in
            let s = skipWSP(p, 0, p.count)
            return SIPHeaderKind.classify(p, s, trimWSPBack(p, s, p.count))
        }
    }

    // swiftlint:disable:next cyclomatic_complexity function_body_length
    static func classify(_ p: Bytes, _ s: Int, _ e: Int) -> SIPHeaderKind {
        let n = e - s
        guard n > 0 else { return .other }
        let c0 = lowerASCII(p[s])
        if n == 1 {
            switch c0 {
            case UInt8(ascii: "i"): return .callID
            case UInt8(ascii: "m"): return .contact
            case UInt8(ascii: "e"): return .contentEncoding
            case UInt8(ascii: "l"): return .contentLength
            case UInt8(ascii: "c"): return .contentType
            case UInt8(ascii: "f"): return .from
            case UInt8(ascii: "s"): return .subject
            case UInt8(ascii: "k"): return .supported
            case UInt8(ascii: "t"): return .to
            case UInt8(ascii: "v"): return .via
            case UInt8(ascii: "o"): return .event
            case UInt8(ascii: "u"): return .allowEvents
            case UInt8(ascii: "r"): return .referTo
            case UInt8(ascii: "b"): return .referredBy
            case UInt8(ascii: "x"): return .sessionExpires
            case UInt8(ascii: "y"): return .identity
            default: return .other
            }
        }
        @inline(__always) func eq(_ lit: StaticString) -> Bool { equalsLower(p, s, e, lit) }
        switch c0 {
        case UInt8(ascii: "a"):
            if eq("allow") { return .allow }
            if eq("accept") { return .accept }
            if eq("allow-events") { return .allowEvents }
            if eq("authorization") { return .authorization }
            if eq("accept-encoding") { return .acceptEncoding }
            if eq("accept-language") { return .acceptLanguage }
            if eq("alert-info") { return .alertInfo }
        case UInt8(ascii: "c"):
            if eq("cseq") { return .cseq }
            if eq("call-id") { return .callID }
            if eq("contact") { return .contact }
            if eq("content-length") { return .contentLength }
            if eq("content-type") { return .contentType }
            if eq("content-encoding") { return .contentEncoding }
            if eq("content-disposition") { return .contentDisposition }
            if eq("content-language") { return .contentLanguage }
            if eq("call-info") { return .callInfo }
        case UInt8(ascii: "d"):
            if eq("date") { return .date }
        case UInt8(ascii: "e"):
            if eq("event") { return .event }
            if eq("expires") { return .expires }
            if eq("error-info") { return .errorInfo }
        case UInt8(ascii: "f"):
            if eq("from") { return .from }
        case UInt8(ascii: "i"):
            if eq("identity") { return .identity }
            if eq("in-reply-to") { return .inReplyTo }
        case UInt8(ascii: "m"):
            if eq("max-forwards") { return .maxForwards }
            if eq("min-expires") { return .minExpires }
            if eq("mime-version") { return .mimeVersion }
        case UInt8(ascii: "o"):
            if eq("organization") { return .organization }
        case UInt8(ascii: "p"):
            if eq("path") { return .path }
            if eq("priority") { return .priority }
            if eq("privacy") { return .privacy }
            if eq("proxy-require") { return .proxyRequire }
            if eq("proxy-authorization") { return .proxyAuthorization }
            if eq("proxy-authenticate") { return .proxyAuthenticate }
            if eq("p-asserted-identity") { return .pAssertedIdentity }
            if eq("p-preferred-identity") { return .pPreferredIdentity }
        case UInt8(ascii: "r"):
            if eq("route") { return .route }
            if eq("record-route") { return .recordRoute }
            if eq("require") { return .require }
            if eq("refer-to") { return .referTo }
            if eq("referred-by") { return .referredBy }
            if eq("retry-after") { return .retryAfter }
            if eq("reply-to") { return .replyTo }
            if eq("rseq") { return .rseq }
            if eq("rack") { return .rack }
            if eq("reason") { return .reason }
        case UInt8(ascii: "s"):
            if eq("subject") { return .subject }
            if eq("supported") { return .supported }
            if eq("server") { return .server }
            if eq("session-expires") { return .sessionExpires }
            if eq("service-route") { return .serviceRoute }
        case UInt8(ascii: "t"):
            if eq("to") { return .to }
            if eq("timestamp") { return .timestamp }
        case UInt8(ascii: "u"):
            if eq("user-agent") { return .userAgent }
            if eq("unsupported") { return .unsupported }
        case UInt8(ascii: "v"):
            if eq("via") { return .via }
        case UInt8(ascii: "w"):
            if eq("www-authenticate") { return .wwwAuthenticate }
            if eq("warning") { return .warning }
        default:
            break
        }
        return .other
    }
}
