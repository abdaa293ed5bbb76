import SIP

/// The RFC 3261 magic cookie that starts every compliant branch.
public let sipMagicCookie = "z9hG4bK"

/// What identifies a transaction (RFC 3261 §17.1.3 and §17.2.3).
///
/// * Server: top Via branch + sent-by (host lower-cased, port or the transport's default) +
///   method, with ACK mapped to INVITE. A CANCEL has its own key (method CANCEL);
///   `TransactionKey.cancelledInvite(by:)` gives the key of the INVITE it cancels.
/// * Client: top Via branch + CSeq method (`sentBy` is empty): the branch is ours.
///
/// Only RFC 3261 branches (starting with `z9hG4bK`) are matched; RFC 2543 matching is not
/// supported.
public struct TransactionKey: Sendable, Hashable, CustomStringConvertible {
    public let branch: String
    /// `host:port` of the top Via for server keys; empty for client keys.
    public let sentBy: String
    /// Method name; INVITE for an ACK.
    public let method: String
    public let isServer: Bool

    public init(branch: String, sentBy: String, method: String, isServer: Bool) {
        self.branch = branch
        self.sentBy = sentBy
        self.method = method
        self.isServer = isServer
    }

    public var description: String {
        isServer ? "server:\(branch)@\(sentBy)/\(method)" : "client:\(branch)/\(method)"
    }

    /// The key of the server transaction a received request belongs to (ACK → INVITE).
    public static func server(for request: SIPMessage) throws(TransactionError) -> TransactionKey {
        guard let method = request.method else { throw .malformed("not a request") }
        guard let via = request.via else { throw .malformed("no parseable Via") }
        guard let branch = via.branch, branch.hasPrefix(sipMagicCookie) else { throw .missingBranch }
        let m = method == .ack ? SIPMethod.invite.name : method.name
        return TransactionKey(branch: branch, sentBy: sentBy(via), method: m, isServer: true)
    }

    /// The key of the INVITE server transaction a CANCEL cancels (same branch and sent-by).
    public static func cancelledInvite(by cancel: SIPMessage) throws(TransactionError) -> TransactionKey {
        let k = try server(for: cancel)
        return TransactionKey(branch: k.branch, sentBy: k.sentBy, method: SIPMethod.invite.name, isServer: true)
    }

    /// The key of the client transaction for a request we send (its top Via is ours).
    public static func client(forRequest request: SIPMessage) throws(TransactionError) -> TransactionKey {
        guard let method = request.method else { throw .malformed("not a request") }
        guard let via = request.via else { throw .malformed("no parseable Via") }
        guard let branch = via.branch, branch.hasPrefix(sipMagicCookie) else { throw .missingBranch }
        return TransactionKey(branch: branch, sentBy: "", method: method.name, isServer: false)
    }

    /// The key of the client transaction a received response belongs to: top Via branch and
    /// CSeq method.
    public static func client(forResponse response: SIPMessage) throws(TransactionError) -> TransactionKey {
        guard response.isResponse else { throw .malformed("not a response") }
        guard let via = response.via else { throw .malformed("no parseable Via") }
        guard let branch = via.branch, branch.hasPrefix(sipMagicCookie) else { throw .missingBranch }
        guard let cseq = response.cseq else { throw .malformed("no parseable CSeq") }
        return TransactionKey(branch: branch, sentBy: "", method: cseq.method.name, isServer: false)
    }

    /// `host:port` with the host lower-cased and the default port made explicit.
    static func sentBy(_ via: SIPVia) -> String {
        let port = via.port ?? defaultPort(transport: via.transport)
        return via.host.lowercased() + ":" + String(port)
    }

    static func defaultPort(transport: String) -> Int {
        switch transport.uppercased() {
        case "TLS", "WSS": 5061
        default: 5060
        }
    }
}

/// A transaction's identity in a `TransactionTable`, in Kamailio's terms the pair
/// (`$T(id_index)`, `$T(id_label)`) that `t_suspend` returns and `t_continue` takes.
public struct TransactionID: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let index: UInt32
    public let label: UInt32

    public init(index: UInt32, label: UInt32) {
        self.index = index
        self.label = label
    }

    /// Both halves in one number (`index << 32 | label`).
    public var rawValue: UInt64 { UInt64(index) << 32 | UInt64(label) }

    public init(rawValue: UInt64) {
        self.init(index: UInt32(truncatingIfNeeded: rawValue >> 32), label: UInt32(truncatingIfNeeded: rawValue))
    }

    public static func < (a: TransactionID, b: TransactionID) -> Bool { a.rawValue < b.rawValue }

    public var description: String { "\(index):\(label)" }
}
