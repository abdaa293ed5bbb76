/// A request method. Methods are case-sensitive (RFC 3261 §7.1): `invite` is `.other("invite")`.
///
/// `GET`, `POST`, `PUT` and `DELETE` are known because Kamailio's first-line parser knows them
/// (its `xhttp` module receives HTTP requests through the SIP parser).
public enum SIPMethod: Sendable, Hashable, CustomStringConvertible {
    case invite, ack, bye, cancel, register, options, subscribe, notify, publish, refer
    case info, update, prack, message, kdmq
    case get, post, put, delete
    case other(String)

    public init(_ name: String) {
        self = withUTF8NoThrow(name) { p in SIPMethod(p, 0, p.count) }
    }

    /// The method spelled exactly as on the wire.
    public var name: String {
        switch self {
        case .invite: "INVITE"
        case .ack: "ACK"
        case .bye: "BYE"
        case .cancel: "CANCEL"
        case .register: "REGISTER"
        case .options: "OPTIONS"
        case .subscribe: "SUBSCRIBE"
        case .notify: "NOTIFY"
        case .publish: "PUBLISH"
        case .refer: "REFER"
        case .info: "INFO"
        case .update: "UPDATE"
        case .prack: "PRACK"
        case .message: "MESSAGE"
        case .kdmq: "KDMQ"
        case .get: "GET"
        case .post: "POST"
        case .put: "PUT"
        case .delete: "DELETE"
        case .other(let s): s
        }
    }

    public var description: String { name }

    /// Recognises a method without allocating for the known ones.
    init(_ p: Bytes, _ s: Int, _ e: Int) {
        let known: SIPMethod?
        switch e - s {
        case 3:
            known = equalsExact(p, s, e, "ACK") ? .ack
                : equalsExact(p, s, e, "BYE") ? .bye
                : equalsExact(p, s, e, "GET") ? .get
                : equalsExact(p, s, e, "PUT") ? .put : nil
        case 4:
            known = equalsExact(p, s, e, "KDMQ") ? .kdmq
                : equalsExact(p, s, e, "INFO") ? .info
                : equalsExact(p, s, e, "POST") ? .post : nil
        case 5:
            known = equalsExact(p, s, e, "REFER") ? .refer
                : equalsExact(p, s, e, "PRACK") ? .prack : nil
        case 6:
            known = equalsExact(p, s, e, "INVITE") ? .invite
                : equalsExact(p, s, e, "CANCEL") ? .cancel
                : equalsExact(p, s, e, "NOTIFY") ? .notify
                : equalsExact(p, s, e, "UPDATE") ? .update
                : equalsExact(p, s, e, "DELETE") ? .delete : nil
        case 7:
            known = equalsExact(p, s, e, "OPTIONS") ? .options
                : equalsExact(p, s, e, "PUBLISH") ? .publish
                : equalsExact(p, s, e, "MESSAGE") ? .message : nil
        case 8:
            known = equalsExact(p, s, e, "REGISTER") ? .register : nil
        case 9:
            known = equalsExact(p, s, e, "SUBSCRIBE") ? .subscribe : nil
        default:
            known = nil
        }
        self = known ?? .other(decode(p, s..<e))
    }

    /// Methods compare by name, so `.other("INVITE") == .invite`.
    public static func == (a: SIPMethod, b: SIPMethod) -> Bool { a.name == b.name }
    public func hash(into h: inout Hasher) { h.combine(name) }
}
