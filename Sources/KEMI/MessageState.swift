import KSRBase
import SIP
import SIPTransaction
import SIPTransport

/// The message a callback works on: a SIP message received on a socket, or Kamailio's faked
/// request for timer and task callbacks (`OPTIONS sip:you@kamailio.org`, Call-ID `123`,
/// source "1.0.0.127":5060). Header values are parsed lazily by the codec; what the script
/// changes (`$ru`, `$du`, flags, headers for replies) is kept here.
public struct MessageState: Sendable {
    public let sip: SIPMessage
    /// How it arrived; nil for the faked message.
    public let inbound: SIPInbound?
    /// `$ru` after `KSR.seturi` / `$ru` assignments.
    public var newRequestURI: String?
    public var destinationURI: String?
    public var flags: UInt64 = 0
    /// Header lines `KSR.hdr.append_to_reply` added to the replies this worker sends.
    public var replyHeaders: [String] = []
    /// The server transaction of this request (`t_newtran`, or a resumed async request).
    public var transaction: TransactionID?
    /// A resumed async request (or one whose route slept with its transaction suspended): when
    /// its callback ends without a final reply or a relay, tm answers 500.
    var finishWith500 = false
    /// A `KSR.async.sleep` suspended this request's transaction: from then on
    /// `KSR.sl.sl_send_reply` answers through the transaction.
    var sleptInTransaction = false
    /// `KSR.sl.sl_send_reply` sent a final reply statelessly: a later sleep leaves the request
    /// without a transaction (it is answered already).
    var statelessFinalSent = false
    /// Header changes (`KSR.hdr.append/insert/remove`) applied when the request is relayed,
    /// in order; as in Kamailio they are not visible to `KSR.hdr.get` afterwards.
    public var lumps: [HeaderLump] = []
    /// `KSR.tm.t_on_failure`: the Lua function for a failed relay.
    public var failureRoute: String?
    /// `KSR.tm.t_on_branch`: the Lua function run before the relayed branch is sent.
    public var branchRoute: String?
    /// `KSR.tm.t_on_reply`: the Lua function for replies to the relayed request.
    public var replyRoute: String?
    /// In a failure route: the reply code tm would relay (`$T_reply_code`).
    public var failureCode: Int?
    /// The last code `KSR.tm.t_reply` sent for this request (`$T_reply_code` in the request route).
    public var transactionReplyCode: Int?

    public var isFaked: Bool { inbound == nil }
    /// A SIP reply (the R-URI PVs read nil).
    public var isReply: Bool { sip.statusCode != nil }

    init(sip: SIPMessage, inbound: SIPInbound?) {
        self.sip = sip
        self.inbound = inbound
    }

    /// Kamailio's faked message, byte for byte.
    static let fakedBytes = Array(("OPTIONS sip:you@kamailio.org SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1\r\n"
        + "From: <sip:you@kamailio.org>;tag=123\r\nTo: <sip:you@kamailio.org>\r\nCall-ID: 123\r\n"
        + "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").utf8)
    // The bytes above are a valid request; parsing them cannot fail.
    // swiftlint:disable:next force_try
    static let fakedSIP = try! SIPMessage(fakedBytes)

    static func faked() -> MessageState { MessageState(sip: fakedSIP, inbound: nil) }

    /// The request method, or the CSeq method of a reply (what `KSR.is_method` compares).
    public var method: String { sip.method?.name ?? sip.cseq?.method.name ?? "" }

    public var requestURI: String {
        get { newRequestURI ?? sip.requestURI ?? "" }
        set { newRequestURI = newValue }
    }
    public var originalURI: String { sip.requestURI ?? "" }
    public var fromURI: String? { sip.from?.uri.description }
    public var fromTag: String? { sip.from?.tag }
    public var toURI: String? { sip.to?.uri.description }
    public var toTag: String? { sip.to?.tag }
    public var callID: String? { sip.callID }
    /// `$si`: the faked message reads "1.0.0.127" (Kamailio's byte-order quirk).
    public var sourceIP: String { inbound?.source.ip ?? "1.0.0.127" }
    public var sourcePort: Int { inbound?.source.port ?? 5060 }
    public var localIP: String { inbound?.local.ip ?? "127.0.0.1" }
    public var localPort: Int { inbound?.local.port ?? 5060 }
    public var proto: String { inbound?.proto.rawValue ?? "udp" }
    public var raw: String { String(decoding: sip.bytes, as: UTF8.self) }
    public var length: Int { sip.bytes.count }
}

/// The user, host and port of a URI text (nil parts when it does not parse).
struct URIParts {
    var user: String?
    var host: String?
    var port: Int?

    init(_ text: String?) {
        guard let text, let uri = try? SIPURI(parsing: text) else { return }
        user = uri.user
        host = uri.host
        port = uri.port
    }
}

/// One header change to apply when the message is relayed.
public enum HeaderLump: Sendable {
    /// Raw header lines ("Name: value\r\n") added after the last header.
    case append(String)
    /// Raw header lines added before the first header.
    case insert(String)
    /// Every header with this name (compact forms match) removed.
    case remove(String)
    /// Raw header lines added after the first header called `name` (at the end if none).
    case appendAfter(String, String)
    /// Raw header lines added before the first header called `name` (at the start if none).
    case insertBefore(String, String)

    /// The message with `lumps` applied, or the message itself when there are none.
    static func apply(_ lumps: [HeaderLump], to sip: SIPMessage) -> SIPMessage {
        guard !lumps.isEmpty else { return sip }
        var editor = SIPMessageEditor(sip)
        for lump in lumps {
            switch lump {
            case .append(let text):
                for (name, value) in lines(text) { editor.appendHeader(name, value) }
            case .insert(let text):
                for (name, value) in lines(text).reversed() { editor.prependHeader(name, value) }
            case .remove(let name):
                _ = editor.removeHeaders(named: name)
            case .appendAfter(let text, let anchor):
                for (name, value) in lines(text).reversed() { editor.insertHeader(name, value, after: anchor) }
            case .insertBefore(let text, let anchor):
                for (name, value) in lines(text) { editor.insertHeader(name, value, before: anchor) }
            }
        }
        return (try? SIPMessage(editor.serialize())) ?? sip
    }

    /// "Name: value" pairs of raw header text (CRLF or LF separated).
    static func lines(_ text: String) -> [(String, String)] {
        text.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }).compactMap { line in
            let l = line.hasSuffix("\r") ? line.dropLast() : line
            guard let colon = l.firstIndex(of: ":") else { return nil }
            let name = l[..<colon].trimmingSpaces()
            guard !name.isEmpty else { return nil }
            return (String(name), String(l[l.index(after: colon)...].trimmingSpaces()))
        }
    }
}
