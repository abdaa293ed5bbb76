import SIP

/// RFC 3261 §17.2.2 non-INVITE server transaction (Figure 8) as a pure state machine.
///
/// Trying → (1xx) Proceeding → (final) Completed → (Timer J) Terminated. Request
/// retransmissions are absorbed: nothing is sent in Trying, the last provisional response is
/// re-sent in Proceeding and the final response in Completed (the same bytes).
///
/// Kamailio additions: `suspend` arms the final-response timer (`fr_timer`), after which the
/// TU gets `.timeout(.finalResponse)`; the lifetime timer (`max_noninv_lifetime`) times out
/// and terminates a transaction that never sent a final response.
public struct ServerNonInviteTransaction: ServerTransactionMachine, Sendable {
    public let request: SIPMessage
    public let reliable: Bool
    public let timers: TransactionTimers
    public internal(set) var state: TransactionState = .trying
    public private(set) var lastProvisional: [UInt8]?
    public internal(set) var finalResponse: [UInt8]?
    public internal(set) var finalStatus: Int?
    public internal(set) var isSuspended = false
    var slots = TimerSlots()

    public init(request: SIPMessage, reliable: Bool, timers: TransactionTimers = TransactionTimers()) {
        self.request = request
        self.reliable = reliable
        self.timers = timers
    }

    /// Arms the lifetime timer (when configured). Call once, when the request arrived.
    public mutating func start(now: UInt64) -> [TransactionEffect] {
        guard state == .trying else { return [] }
        return armLifetime(timers.maxNonInviteLifetime, now: now)
    }

    /// A retransmission of the request arrived.
    public mutating func receiveRetransmission(now: UInt64) -> [TransactionEffect] {
        switch state {
        case .trying:
            return [.absorbed]
        case .proceeding:
            return absorbRetransmission(resending: lastProvisional)
        case .completed:
            return absorbRetransmission(resending: finalResponse)
        default:
            return []
        }
    }

    /// The TU sends a response (`bytes`, status `status`).
    public mutating func respond(status: Int, bytes: [UInt8], now: UInt64) throws(TransactionError) -> [TransactionEffect] {
        guard (100...699).contains(status) else { throw .invalidStatus(status) }
        guard state == .trying || state == .proceeding else {
            throw state == .terminated ? .invalidState(state) : .finalResponseAlreadySent
        }
        var out: [TransactionEffect] = [.send(bytes, retransmission: false)]
        if status < 200 {
            state = .proceeding
            lastProvisional = bytes
            return out
        }
        recordFinal(status: status, bytes: bytes, into: &out)
        if reliable {
            terminate(&out)
        } else {
            state = .completed
            out.append(slots.set(.j, at: addNanos(now, timers.t64ns)))
        }
        return out
    }

    /// Marks the transaction suspended (the script continues later) and arms fr_timer.
    public mutating func suspend(now: UInt64) throws(TransactionError) -> [TransactionEffect] {
        guard state == .trying || state == .proceeding else { throw .invalidState(state) }
        return suspend(timeout: timers.finalResponse, now: now)
    }

    /// The script continues: disarms the suspension timer.
    public mutating func resume() throws(TransactionError) -> [TransactionEffect] { try endSuspension() }

    /// Handles every timer due at `now`.
    public mutating func fire(now: UInt64) -> [TransactionEffect] {
        var out: [TransactionEffect] = []
        while state != .terminated, let t = slots.popDue(now) {
            switch t {
            case .j:
                terminate(&out)
            case .finalResponse, .lifetime:
                fireKamailioTimer(t, into: &out)
            default:
                break
            }
        }
        return out
    }

    /// The transport failed to send: Terminated.
    public mutating func transportError() -> [TransactionEffect] { terminateNow() }

    /// The TU gives up on the transaction (e.g. it is removed from a table).
    public mutating func terminate() -> [TransactionEffect] { terminateNow() }

    public var nextDeadline: UInt64? { slots.next }
    public func deadline(of timer: TransactionTimer) -> UInt64? { slots.deadline(of: timer) }
    public var armedTimers: [TransactionTimer] { slots.armed }
}

/// RFC 3261 §17.2.1 INVITE server transaction (Figure 7) with RFC 6026's Accepted state.
///
/// Proceeding → (2xx) Accepted → (Timer L) Terminated;
/// Proceeding → (300-699) Completed → (ACK) Confirmed → (Timer I) Terminated, or
/// Completed → (Timer H) Terminated with `.timeout(.noACK)`.
/// In Completed, Timer G re-sends the final response (unreliable transports), doubling up to T2.
/// INVITE retransmissions are absorbed: the last provisional response is re-sent in Proceeding,
/// the final response in Completed; nothing is sent in Confirmed and Accepted.
///
/// Kamailio additions as for `ServerNonInviteTransaction` (with `fr_inv_timer` and
/// `max_inv_lifetime`). The TU should send 100 Trying itself (RFC 3261 §17.2.1).
public struct ServerInviteTransaction: ServerTransactionMachine, Sendable {
    public let request: SIPMessage
    public let reliable: Bool
    public let timers: TransactionTimers
    public internal(set) var state: TransactionState = .proceeding
    public private(set) var lastProvisional: [UInt8]?
    public internal(set) var finalResponse: [UInt8]?
    public internal(set) var finalStatus: Int?
    public internal(set) var isSuspended = false
    private var gInterval: UInt64 = 0
    var slots = TimerSlots()

    public init(request: SIPMessage, reliable: Bool, timers: TransactionTimers = TransactionTimers()) {
        self.request = request
        self.reliable = reliable
        self.timers = timers
    }

    /// Arms the lifetime timer (when configured). Call once, when the INVITE arrived.
    public mutating func start(now: UInt64) -> [TransactionEffect] {
        guard state == .proceeding else { return [] }
        return armLifetime(timers.maxInviteLifetime, now: now)
    }

    /// A retransmission of the INVITE arrived.
    public mutating func receiveRetransmission(now: UInt64) -> [TransactionEffect] {
        switch state {
        case .proceeding:
            return absorbRetransmission(resending: lastProvisional)
        case .completed:
            return absorbRetransmission(resending: finalResponse)
        case .confirmed, .accepted:
            return [.absorbed]
        default:
            return []
        }
    }

    /// An ACK matching this transaction arrived. In Completed (ACK for the non-2xx final) it
    /// moves to Confirmed; in Confirmed it is absorbed. Returns nil when the ACK is not the
    /// transaction's (Proceeding, Accepted: an ACK for a 2xx is a transaction of its own and
    /// belongs to the TU).
    public mutating func receiveACK(now: UInt64) -> [TransactionEffect]? {
        switch state {
        case .completed:
            var out: [TransactionEffect] = []
            slots.cancel(.g, .h, into: &out)
            if reliable {
                terminate(&out)
            } else {
                state = .confirmed
                out.append(slots.set(.i, at: addNanos(now, timers.t4ns)))
            }
            return out
        case .confirmed:
            return [.absorbed]
        case .terminated:
            return []
        default:
            return nil
        }
    }

    /// The TU sends a response. After a 2xx (Accepted) further 2xx responses are sent (forking
    /// proxies relay every 2xx); anything else after a final response is refused.
    public mutating func respond(status: Int, bytes: [UInt8], now: UInt64) throws(TransactionError) -> [TransactionEffect] {
        guard (100...699).contains(status) else { throw .invalidStatus(status) }
        var out: [TransactionEffect] = []
        switch state {
        case .proceeding:
            out.append(.send(bytes, retransmission: false))
            if status < 200 {
                lastProvisional = bytes
                return out
            }
            recordFinal(status: status, bytes: bytes, into: &out)
            if status < 300 {
                state = .accepted
                out.append(slots.set(.l, at: addNanos(now, timers.t64ns)))
            } else {
                state = .completed
                if !reliable {
                    gInterval = timers.t1ns
                    out.append(slots.set(.g, at: addNanos(now, gInterval)))
                }
                out.append(slots.set(.h, at: addNanos(now, timers.t64ns)))
            }
            return out
        case .accepted where (200...299).contains(status):
            return [.send(bytes, retransmission: false)]
        case .terminated:
            throw .invalidState(state)
        default:
            throw .finalResponseAlreadySent
        }
    }

    /// Marks the transaction suspended and arms fr_inv_timer.
    public mutating func suspend(now: UInt64) throws(TransactionError) -> [TransactionEffect] {
        guard state == .proceeding else { throw .invalidState(state) }
        return suspend(timeout: timers.inviteFinalResponse, now: now)
    }

    /// The script continues: disarms the suspension timer.
    public mutating func resume() throws(TransactionError) -> [TransactionEffect] { try endSuspension() }

    /// Handles every timer due at `now`.
    public mutating func fire(now: UInt64) -> [TransactionEffect] {
        var out: [TransactionEffect] = []
        while state != .terminated, let t = slots.popDue(now) {
            switch t {
            case .g:
                if let f = finalResponse { out.append(.send(f, retransmission: true)) }
                gInterval = min(gInterval * 2, timers.t2ns)
                out.append(slots.set(.g, at: addNanos(now, gInterval)))
            case .h:
                out.append(.timeout(.noACK))
                terminate(&out)
            case .i, .l:
                terminate(&out)
            case .finalResponse, .lifetime:
                fireKamailioTimer(t, into: &out)
            default:
                break
            }
        }
        return out
    }

    /// The transport failed to send: Terminated.
    public mutating func transportError() -> [TransactionEffect] { terminateNow() }

    /// The TU gives up on the transaction.
    public mutating func terminate() -> [TransactionEffect] { terminateNow() }

    public var nextDeadline: UInt64? { slots.next }
    public func deadline(of timer: TransactionTimer) -> UInt64? { slots.deadline(of: timer) }
    public var armedTimers: [TransactionTimer] { slots.armed }
}
