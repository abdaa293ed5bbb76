import SIP

/// Timer values of RFC 3261 §17 (Table 4) and Kamailio tm's final-response timers.
///
/// All values are durations of the injected monotonic clock. Optional Kamailio timers are
/// disabled with nil (pure RFC 3261 behaviour).
public struct TransactionTimers: Sendable, Hashable {
    /// RTT estimate (T1, default 500 ms). Timers A, B, E, F, G, H, J, L and M derive from it.
    public var t1: Duration
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses (T2, 4 s).
    public var t2: Duration
    /// Maximum time a message stays in the network (T4, 5 s): Timers I and K.
    public var t4: Duration
    /// Wait time for response retransmissions of an INVITE client transaction (Timer D,
    /// at least 32 s; unreliable transports only).
    public var timerD: Duration
    /// Kamailio `fr_timer` (30 s): final-response timeout of non-INVITE client transactions and
    /// of INVITE client transactions before a provisional response (whichever of it and Timer
    /// F/B comes first fires the 408), and the timeout of a suspended non-INVITE server
    /// transaction.
    public var finalResponse: Duration?
    /// Kamailio `fr_inv_timer` (120 s): final-response timeout of an INVITE client transaction
    /// once a provisional response arrived, and of a suspended INVITE server transaction.
    public var inviteFinalResponse: Duration?
    /// Kamailio `restart_fr_on_each_reply` (on): every provisional response restarts
    /// `fr_inv_timer` of an INVITE client transaction.
    public var restartInviteTimerOnProvisional: Bool
    /// Kamailio `max_inv_lifetime` (180 s): an INVITE server transaction that has sent no final
    /// response by then times out (`ServerTimeout.lifetime`) and is terminated.
    public var maxInviteLifetime: Duration?
    /// Kamailio `max_noninv_lifetime` (32 s): the same for non-INVITE server transactions.
    public var maxNonInviteLifetime: Duration?

    public init(t1: Duration = .milliseconds(500), t2: Duration = .seconds(4),
                t4: Duration = .seconds(5), timerD: Duration = .seconds(32),
                finalResponse: Duration? = .seconds(30),
                inviteFinalResponse: Duration? = .seconds(120),
                restartInviteTimerOnProvisional: Bool = true,
                maxInviteLifetime: Duration? = .seconds(180),
                maxNonInviteLifetime: Duration? = .seconds(32)) {
        self.t1 = t1
        self.t2 = t2
        self.t4 = t4
        self.timerD = timerD
        self.finalResponse = finalResponse
        self.inviteFinalResponse = inviteFinalResponse
        self.restartInviteTimerOnProvisional = restartInviteTimerOnProvisional
        self.maxInviteLifetime = maxInviteLifetime
        self.maxNonInviteLifetime = maxNonInviteLifetime
    }

    /// RFC 3261 values with Kamailio's final-response timers and lifetimes switched off.
    public static let rfc3261 = TransactionTimers(finalResponse: nil, inviteFinalResponse: nil,
                                                  maxInviteLifetime: nil, maxNonInviteLifetime: nil)

    // Nanoseconds (never 0, so that a rescheduled timer always lies in the future).
    var t1ns: UInt64 { Self.nanos(t1) }
    var t2ns: UInt64 { Self.nanos(t2) }
    var t4ns: UInt64 { Self.nanos(t4) }
    var timerDns: UInt64 { Self.nanos(timerD) }
    /// 64·T1: Timers B, F, H, J, L, M.
    var t64ns: UInt64 { t1ns.multipliedReportingOverflow(by: 64).overflow ? UInt64.max / 2 : t1ns * 64 }

    static func nanos(_ d: Duration) -> UInt64 {
        let (s, atto) = d.components
        guard s >= 0, atto >= 0 else { return 1 }
        let (whole, o1) = UInt64(s).multipliedReportingOverflow(by: 1_000_000_000)
        let (sum, o2) = whole.addingReportingOverflow(UInt64(atto / 1_000_000_000))
        if o1 || o2 { return UInt64.max / 2 }
        return max(sum, 1)
    }

    static func nanos(_ d: Duration?) -> UInt64? { d.map { nanos($0) } }
}

/// The states of the four RFC 3261 §17 machines, plus RFC 6026's Accepted.
///
/// * INVITE client: calling → proceeding → completed | accepted → terminated
/// * non-INVITE client: trying → proceeding → completed → terminated
/// * INVITE server: proceeding → completed → confirmed | accepted → terminated
/// * non-INVITE server: trying → proceeding → completed → terminated
public enum TransactionState: String, Sendable, Hashable, CustomStringConvertible {
    case calling, trying, proceeding, completed, confirmed, accepted, terminated
    public var description: String { rawValue }
}

/// The timers of RFC 3261 §17 (and RFC 6026's L and M) plus the Kamailio-style ones.
public enum TransactionTimer: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// INVITE client: request retransmission (unreliable only), doubling.
    case a = "A"
    /// INVITE client: 64·T1 timeout in Calling.
    case b = "B"
    /// INVITE client: wait for response retransmissions in Completed.
    case d = "D"
    /// non-INVITE client: request retransmission (unreliable only), doubling up to T2.
    case e = "E"
    /// non-INVITE client: 64·T1 timeout.
    case f = "F"
    /// INVITE server: final response retransmission (unreliable only), doubling up to T2.
    case g = "G"
    /// INVITE server: 64·T1 wait for the ACK.
    case h = "H"
    /// INVITE server: T4 absorbing ACK retransmissions in Confirmed.
    case i = "I"
    /// non-INVITE server: 64·T1 absorbing request retransmissions in Completed.
    case j = "J"
    /// non-INVITE client: T4 absorbing response retransmissions in Completed.
    case k = "K"
    /// INVITE server (RFC 6026): 64·T1 in Accepted.
    case l = "L"
    /// INVITE client (RFC 6026): 64·T1 in Accepted.
    case m = "M"
    /// Kamailio fr_timer / fr_inv_timer: client 408 timeout; suspended server timeout.
    case finalResponse = "FR"
    /// INVITE client: 64·T1 after a CANCEL was sent (RFC 3261 §9.1), then it gives up.
    case cancelGuard = "CANCEL"
    /// Server: Kamailio max_inv_lifetime / max_noninv_lifetime.
    case lifetime = "LIFETIME"

    public var description: String { rawValue }
}

/// Where a response delivered to the TU comes from.
public enum ResponseOrigin: String, Sendable, Hashable {
    /// Received from the network.
    case network
    /// Synthesized 408 Request Timeout (Timer B/F or the final-response timer).
    case timeout
    /// Synthesized 503 Service Unavailable after a transport error (RFC 3261 §8.1.3.1).
    case transportError
}

/// Why a server transaction tells its TU that time ran out.
public enum ServerTimeout: String, Sendable, Hashable {
    /// A suspended transaction got no final response within fr_timer / fr_inv_timer: the host
    /// should answer (408) or run its failure handling. The transaction stays as it is.
    case finalResponse
    /// Timer H fired: no ACK for the final response of an INVITE. The transaction terminates.
    case noACK
    /// No final response within the maximum lifetime. The transaction terminates.
    case lifetime
}

/// What a state machine asks its owner to do.
public enum TransactionEffect: Sendable {
    /// Send these bytes to the transaction's peer (`retransmission`: a copy of bytes sent before).
    case send([UInt8], retransmission: Bool)
    /// Client: pass this response to the TU.
    case deliver(SIPMessage, ResponseOrigin)
    /// INVITE client: cancel now: start a non-INVITE client transaction for this CANCEL
    /// request, towards the same peer.
    case startCancel(SIPMessage)
    /// Server: tell the TU that time ran out.
    case timeout(ServerTimeout)
    /// A retransmission was absorbed (request in a server, response in a client transaction).
    case absorbed
    /// Arm (or re-arm) the timer for this monotonic time in nanoseconds.
    case schedule(TransactionTimer, at: UInt64)
    /// Disarm the timer.
    case cancelTimer(TransactionTimer)
    /// The transaction has reached Terminated: forget it.
    case terminated
}

/// Errors of the transaction layer.
public enum TransactionError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The message lacks a parseable top Via, CSeq or (for CANCEL/ACK building) Call-ID, From, To.
    case malformed(String)
    /// The top Via has no branch starting with the magic cookie `z9hG4bK`.
    case missingBranch
    /// ACK never creates a transaction.
    case ackCreatesNoTransaction
    /// A transaction with this key exists already.
    case duplicate
    /// No such transaction (terminated or never existed).
    case notFound
    /// The operation does not fit the kind of transaction (e.g. replying on a client one).
    case wrongKind
    /// A final response was sent already (or, after a 2xx, a non-2xx was offered).
    case finalResponseAlreadySent
    /// The status code is not 100...699.
    case invalidStatus(Int)
    /// The transaction is not suspended (never was, resumed, or its suspension timed out).
    case notSuspended
    /// The transaction is in a state where the operation is not allowed.
    case invalidState(TransactionState)

    public var description: String {
        switch self {
        case .malformed(let why): "malformed message: \(why)"
        case .missingBranch: "top Via has no RFC 3261 branch (z9hG4bK...)"
        case .ackCreatesNoTransaction: "ACK does not create a transaction"
        case .duplicate: "transaction exists already"
        case .notFound: "no such transaction"
        case .wrongKind: "operation not valid for this kind of transaction"
        case .finalResponseAlreadySent: "final response already sent"
        case .invalidStatus(let s): "invalid status code \(s)"
        case .notSuspended: "transaction is not suspended"
        case .invalidState(let s): "not allowed in state \(s)"
        }
    }
}

/// The four kinds of RFC 3261 transactions.
public enum TransactionKind: String, Sendable, Hashable {
    case inviteServer, nonInviteServer, inviteClient, nonInviteClient

    public var isServer: Bool { self == .inviteServer || self == .nonInviteServer }
    public var isInvite: Bool { self == .inviteServer || self == .inviteClient }
}

/// A small set of armed timers with their deadlines (a machine has at most a handful).
struct TimerSlots: Sendable {
    private var items: [(timer: TransactionTimer, at: UInt64)] = []

    init() { items.reserveCapacity(4) }

    /// Arms `timer` at `at` (replacing an earlier deadline).
    mutating func set(_ timer: TransactionTimer, at: UInt64) -> TransactionEffect {
        if let k = items.firstIndex(where: { $0.timer == timer }) {
            items[k].at = at
        } else {
            items.append((timer, at))
        }
        return .schedule(timer, at: at)
    }

    /// Disarms `timer`; nil when it was not armed.
    mutating func cancel(_ timer: TransactionTimer) -> TransactionEffect? {
        guard let k = items.firstIndex(where: { $0.timer == timer }) else { return nil }
        items.remove(at: k)
        return .cancelTimer(timer)
    }

    mutating func cancel(_ timers: TransactionTimer..., into out: inout [TransactionEffect]) {
        for t in timers { if let e = cancel(t) { out.append(e) } }
    }

    mutating func cancelAll(into out: inout [TransactionEffect]) {
        for t in items { out.append(.cancelTimer(t.timer)) }
        items.removeAll()
    }

    func deadline(of timer: TransactionTimer) -> UInt64? {
        items.first { $0.timer == timer }?.at
    }

    var next: UInt64? { items.map(\.at).min() }

    var armed: [TransactionTimer] { items.map(\.timer) }

    /// Removes and returns the earliest timer due at `now` (ties: first armed).
    mutating func popDue(_ now: UInt64) -> TransactionTimer? {
        var best: Int? = nil
        for (k, t) in items.enumerated() where t.at <= now {
            if let b = best, items[b].at <= t.at { continue }
            best = k
        }
        guard let best else { return nil }
        return items.remove(at: best).timer
    }
}

@inline(__always) func addNanos(_ now: UInt64, _ d: UInt64) -> UInt64 {
    let (s, o) = now.addingReportingOverflow(d)
    return o ? UInt64.max : s
}

@inline(__always) func isFinal(_ status: Int) -> Bool { status >= 200 }
