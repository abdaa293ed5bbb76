import SIP

// The scaffolding the four RFC 3261 §17 machines share, written once. Each machine is a
// concrete struct conforming to these protocols; the extension methods are called on the
// concrete types (statically dispatched, no existentials), so the table's hot paths stay as
// they were.

/// What every machine has: a state and its armed timers, and the way into Terminated.
protocol TransactionMachine {
    var state: TransactionState { get set }
    var slots: TimerSlots { get set }
    /// The earliest armed timer's deadline.
    var nextDeadline: UInt64? { get }
    /// Handles every timer due at `now`.
    mutating func fire(now: UInt64) -> [TransactionEffect]
    /// Clears what does not outlive the transaction (a server's suspension); called when it
    /// enters Terminated.
    mutating func willTerminate()
}

extension TransactionMachine {
    mutating func willTerminate() {}

    /// Disarms every timer and enters Terminated.
    mutating func terminate(_ out: inout [TransactionEffect]) {
        slots.cancelAll(into: &out)
        willTerminate()
        state = .terminated
        out.append(.terminated)
    }

    /// Terminated now, delivering nothing; no effects when it is terminated already.
    mutating func terminateNow() -> [TransactionEffect] {
        guard state != .terminated else { return [] }
        var out: [TransactionEffect] = []
        terminate(&out)
        return out
    }
}

/// What the two client machines share: the request they send and re-send.
protocol ClientTransactionMachine: TransactionMachine {
    var request: SIPMessage { get }
    var reliable: Bool { get }
    var timers: TransactionTimers { get }
    var started: Bool { get set }
    /// The current interval of the request's retransmission timer (A or E).
    var retransmitInterval: UInt64 { get set }
}

extension ClientTransactionMachine {
    /// Sends the request (once, from `initial`) and arms `retransmit` at T1 (unreliable
    /// transports only), `timeout` at 64·T1 and Kamailio's final-response timer.
    mutating func start(from initial: TransactionState, retransmit: TransactionTimer, timeout: TransactionTimer,
                        now: UInt64) -> [TransactionEffect] {
        guard !started, state == initial else { return [] }
        started = true
        var out: [TransactionEffect] = [.send(request.bytes, retransmission: false)]
        if !reliable {
            retransmitInterval = timers.t1ns
            out.append(slots.set(retransmit, at: addNanos(now, retransmitInterval)))
        }
        out.append(slots.set(timeout, at: addNanos(now, timers.t64ns)))
        if let fr = TransactionTimers.nanos(timers.finalResponse) {
            out.append(slots.set(.finalResponse, at: addNanos(now, fr)))
        }
        return out
    }
}

/// What the two server machines share: the responses kept for request retransmissions, and
/// Kamailio's suspension (`t_suspend`) and lifetime timers.
protocol ServerTransactionMachine: TransactionMachine {
    var finalResponse: [UInt8]? { get set }
    var finalStatus: Int? { get set }
    var isSuspended: Bool { get set }
}

extension ServerTransactionMachine {
    mutating func willTerminate() { isSuspended = false }

    /// Arms the lifetime timer, when one is configured.
    mutating func armLifetime(_ lifetime: Duration?, now: UInt64) -> [TransactionEffect] {
        guard let life = TransactionTimers.nanos(lifetime) else { return [] }
        return [slots.set(.lifetime, at: addNanos(now, life))]
    }

    /// A request retransmission absorbed, re-sending `response` (the last one sent) if any.
    func absorbRetransmission(resending response: [UInt8]?) -> [TransactionEffect] {
        guard let response else { return [.absorbed] }
        return [.absorbed, .send(response, retransmission: true)]
    }

    /// A final response was sent: it is kept for retransmissions, and the suspension, its
    /// timer and the lifetime timer end.
    mutating func recordFinal(status: Int, bytes: [UInt8], into out: inout [TransactionEffect]) {
        finalResponse = bytes
        finalStatus = status
        isSuspended = false
        slots.cancel(.finalResponse, .lifetime, into: &out)
    }

    /// Suspended: arms `timeout` (fr_timer or fr_inv_timer), when one is configured.
    mutating func suspend(timeout: Duration?, now: UInt64) -> [TransactionEffect] {
        isSuspended = true
        guard let fr = TransactionTimers.nanos(timeout) else { return [] }
        return [slots.set(.finalResponse, at: addNanos(now, fr))]
    }

    /// The script continues: disarms the suspension timer.
    mutating func endSuspension() throws(TransactionError) -> [TransactionEffect] {
        guard isSuspended else { throw .notSuspended }
        isSuspended = false
        var out: [TransactionEffect] = []
        slots.cancel(.finalResponse, into: &out)
        return out
    }

    /// The final-response timer (the suspension timed out: the TU is told, the transaction
    /// stays) or the lifetime timer (the TU is told, the transaction ends).
    mutating func fireKamailioTimer(_ timer: TransactionTimer, into out: inout [TransactionEffect]) {
        isSuspended = false
        if timer == .lifetime {
            out.append(.timeout(.lifetime))
            terminate(&out)
        } else {
            out.append(.timeout(.finalResponse))
        }
    }
}
