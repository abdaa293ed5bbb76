import SIP
import Testing

// @testable for `TransactionMachine`, the four machines' common protocol (internal).
@testable import SIPTransaction

let ms: UInt64 = 1_000_000
let sec: UInt64 = 1_000_000_000
/// Virtual start time of every test.
let t0: UInt64 = 1_000 * sec

/// Fires `m` at each of its deadlines up to `until`; returns (time, effects) per firing.
func run<M: TransactionMachine>(_ m: inout M, until: UInt64) -> [(at: UInt64, effects: [TransactionEffect])] {
    var out: [(UInt64, [TransactionEffect])] = []
    while let d = m.nextDeadline, d <= until { out.append((d, m.fire(now: d))) }
    return out
}

/// `text` with LF turned into CRLF, parsed as a datagram.
func message(_ text: String) throws -> SIPMessage {
    var out: [UInt8] = []
    for b in text.utf8 {
        if b == 10 { out.append(13) }
        out.append(b)
    }
    return try SIPMessage(out)
}

/// A request as a UA (or upstream proxy) would send it.
func request(_ method: String = "INVITE", branch: String = "z9hG4bKabc123",
             viaHost: String = "192.0.2.10", viaPort: Int? = 5060,
             cseq: Int = 1, callID: String = "call-1@192.0.2.10",
             routes: [String] = [], extraVia: String? = nil,
             maxForwards: String? = "70", uri: String = "sip:bob@example.com",
             body: String = "") throws -> SIPMessage {
    let port = viaPort.map { ":\($0)" } ?? ""
    var t = "\(method) \(uri) SIP/2.0\n"
    t += "Via: SIP/2.0/UDP \(viaHost)\(port);branch=\(branch);rport\n"
    if let extraVia { t += "Via: \(extraVia)\n" }
    if let maxForwards { t += "Max-Forwards: \(maxForwards)\n" }
    for r in routes { t += "Route: \(r)\n" }
    t += "From: \"Alice\" <sip:alice@example.com>;tag=fromtag1\n"
    t += "To: <sip:bob@example.com>\n"
    t += "Call-ID: \(callID)\n"
    t += "CSeq: \(cseq) \(method)\n"
    t += "Contact: <sip:alice@192.0.2.10:5060>\n"
    t += "Content-Length: \(body.utf8.count)\n\n"
    t += body
    return try message(t)
}

/// A response to `req` made by hand (all Vias, From, To with tag, Call-ID, CSeq).
func response(to req: SIPMessage, _ status: Int, _ reason: String = "Reason", toTag: String? = "totag9") throws -> SIPMessage {
    var t = "SIP/2.0 \(status) \(reason)\n"
    for v in req.headers(.via) { t += "Via: \(v)\n" }
    t += "From: \(req.header(.from)!)\n"
    t += "To: \(req.header(.to)!)\(toTag.map { ";tag=\($0)" } ?? "")\n"
    t += "Call-ID: \(req.callID!)\n"
    t += "CSeq: \(req.header(.cseq)!)\n"
    t += "Content-Length: 0\n\n"
    return try message(t)
}

func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

// MARK: - Effect inspection

extension Array where Element == TransactionEffect {
    var sends: [(bytes: [UInt8], retransmission: Bool)] {
        compactMap { if case .send(let b, let r) = $0 { (b, r) } else { nil } }
    }
    var deliveries: [(response: SIPMessage, origin: ResponseOrigin)] {
        compactMap { if case .deliver(let m, let o) = $0 { (m, o) } else { nil } }
    }
    var schedules: [(timer: TransactionTimer, at: UInt64)] {
        compactMap { if case .schedule(let t, let at) = $0 { (t, at) } else { nil } }
    }
    var cancelledTimers: [TransactionTimer] {
        compactMap { if case .cancelTimer(let t) = $0 { t } else { nil } }
    }
    var timeouts: [ServerTimeout] {
        compactMap { if case .timeout(let t) = $0 { t } else { nil } }
    }
    var cancels: [SIPMessage] {
        compactMap { if case .startCancel(let m) = $0 { m } else { nil } }
    }
    var terminated: Bool { contains { if case .terminated = $0 { true } else { false } } }
    var absorbed: Int { filter { if case .absorbed = $0 { true } else { false } }.count }
    func scheduled(_ t: TransactionTimer) -> UInt64? { schedules.last { $0.timer == t }?.at }
}

/// Timers without Kamailio's extras (pure RFC 3261).
let rfc = TransactionTimers.rfc3261

// MARK: - Table helpers

struct Ctx: Sendable, Hashable {
    var failureRoute: String?
    var tag: String = ""
}

typealias Table = TransactionTable<String, Ctx>

extension Array where Element == Table.Action {
    var sends: [(id: TransactionID, bytes: [UInt8], peer: String, retransmission: Bool)] {
        compactMap { if case .send(let id, let b, let p, let r) = $0 { (id, b, p, r) } else { nil } }
    }
    var responses: [(id: TransactionID, parent: TransactionID?, response: SIPMessage, origin: ResponseOrigin, ctx: Ctx)] {
        compactMap {
            if case .response(let id, let parent, let m, let o, let c) = $0 { (id, parent, m, o, c) } else { nil }
        }
    }
    var failures: [(id: TransactionID, best: SIPMessage, origin: ResponseOrigin, branch: TransactionID, ctx: Ctx)] {
        compactMap {
            if case .allBranchesFailed(let id, let best, let o, let b, let c) = $0 { (id, best, o, b, c) } else { nil }
        }
    }
    var serverTimeouts: [(id: TransactionID, why: ServerTimeout, ctx: Ctx)] {
        compactMap { if case .serverTimeout(let id, let w, let c) = $0 { (id, w, c) } else { nil } }
    }
    var terminations: [(id: TransactionID, kind: TransactionKind, ctx: Ctx)] {
        compactMap { if case .terminated(let id, let k, let c) = $0 { (id, k, c) } else { nil } }
    }
}

/// Drives `table` until `until`, firing at every deadline; returns the actions with the time
/// they happened.
func drive(_ table: Table, until: UInt64) -> [(at: UInt64, action: Table.Action)] {
    var out: [(UInt64, Table.Action)] = []
    while let d = table.nextDeadline(), d <= until {
        for a in table.fire(now: d) { out.append((d, a)) }
    }
    return out
}
