import SIP

/// RFC 3261 §17.1.2 non-INVITE client transaction (Figure 6) as a pure state machine.
///
/// Trying → (1xx) Proceeding → (final) Completed → (Timer K) Terminated.
/// Timer E re-sends the request on unreliable transports: T1, 2·T1, ... capped at T2 in Trying,
/// T2 in Proceeding. Timer F (64·T1) and Kamailio's `fr_timer`, whichever fires first, end it
/// with a synthesized 408 delivered to the TU. Response retransmissions in Completed are
/// absorbed.
public struct ClientNonInviteTransaction: ClientTransactionMachine, Sendable {
    public let request: SIPMessage
    public let reliable: Bool
    public let timers: TransactionTimers
    /// The To-tag of a response this transaction makes up (408, 503); drawn only then, since
    /// most transactions never need one (a random draw per transaction showed in profiles).
    public var localTag: String { fixedLocalTag ?? TransactionMessages.randomToken() }
    private let fixedLocalTag: String?
    public internal(set) var state: TransactionState = .trying
    /// The status of the final response (received or synthesized), once there is one.
    public private(set) var finalStatus: Int?
    /// The final response this transaction made up itself (408 after Timer F or the
    /// final-response timer, 503 on a transport error). A received one is passed on, not
    /// kept: the transaction outlives it by Timer K (5 s), and keeping every response that
    /// long was a fifth of a busy DMQ node's memory.
    public private(set) var finalResponse: SIPMessage?
    var started = false
    /// Timer E's interval.
    var retransmitInterval: UInt64 = 0
    var slots = TimerSlots()

    public init(request: SIPMessage, reliable: Bool, timers: TransactionTimers = TransactionTimers(),
                localTag: String? = nil) {
        self.request = request
        self.reliable = reliable
        self.timers = timers
        self.fixedLocalTag = localTag
    }

    /// Sends the request and arms E (unreliable), F and the final-response timer.
    public mutating func start(now: UInt64) -> [TransactionEffect] {
        start(from: .trying, retransmit: .e, timeout: .f, now: now)
    }

    /// A response matching this transaction arrived.
    public mutating func receive(response: SIPMessage, now: UInt64) -> [TransactionEffect] {
        guard let status = response.statusCode else { return [] }
        switch state {
        case .trying, .proceeding:
            if status < 200 {
                state = .proceeding
                return [.deliver(response, .network)]
            }
            var out: [TransactionEffect] = []
            slots.cancel(.e, .f, .finalResponse, into: &out)
            finalStatus = status
            out.append(.deliver(response, .network))
            if reliable {
                terminate(&out)
            } else {
                state = .completed
                out.append(slots.set(.k, at: addNanos(now, timers.t4ns)))
            }
            return out
        case .completed:
            return [.absorbed]
        default:
            return []
        }
    }

    /// Handles every timer due at `now`.
    public mutating func fire(now: UInt64) -> [TransactionEffect] {
        var out: [TransactionEffect] = []
        while state != .terminated, let t = slots.popDue(now) {
            switch t {
            case .e:
                out.append(.send(request.bytes, retransmission: true))
                retransmitInterval = state == .trying ? min(retransmitInterval * 2, timers.t2ns) : timers.t2ns
                out.append(slots.set(.e, at: addNanos(now, retransmitInterval)))
            case .f, .finalResponse:
                let r = TransactionMessages.timeoutResponse(to: request, toTag: localTag)
                finalResponse = r
                finalStatus = r.statusCode
                out.append(.deliver(r, .timeout))
                terminate(&out)
            case .k:
                terminate(&out)
            default:
                break
            }
        }
        return out
    }

    /// The transport failed to send: a synthesized 503 goes to the TU (RFC 3261 §8.1.3.1) when
    /// no final response was received, then Terminated.
    public mutating func transportError() -> [TransactionEffect] {
        var out: [TransactionEffect] = []
        switch state {
        case .trying, .proceeding:
            let r = TransactionMessages.transportErrorResponse(to: request, toTag: localTag)
            finalResponse = r
            finalStatus = r.statusCode
            out.append(.deliver(r, .transportError))
            terminate(&out)
        case .completed:
            terminate(&out)
        default:
            break
        }
        return out
    }

    /// The TU gives up on the transaction: Terminated without delivering anything.
    public mutating func terminate() -> [TransactionEffect] { terminateNow() }

    public var nextDeadline: UInt64? { slots.next }
    public func deadline(of timer: TransactionTimer) -> UInt64? { slots.deadline(of: timer) }
    public var armedTimers: [TransactionTimer] { slots.armed }
}

/// RFC 3261 §17.1.1 INVITE client transaction (Figure 5) with RFC 6026's Accepted state.
///
/// Calling → (1xx) Proceeding → (2xx) Accepted → (Timer M) Terminated;
/// Calling/Proceeding → (300-699) Completed → (Timer D) Terminated.
/// Timer A re-sends the INVITE on unreliable transports in Calling, doubling without a cap
/// (T1, 2·T1, 4·T1, ...). Timer B (64·T1) and Kamailio's `fr_timer`, whichever fires first, end
/// Calling with a synthesized 408. After a provisional response `fr_inv_timer` runs instead;
/// when it fires the TU gets the 408, the transaction sends a CANCEL and waits (at most 64·T1)
/// for the final response to ACK it.
///
/// For a 300-699 final response the transaction sends the ACK itself (§17.1.1.3) and re-sends
/// the same bytes for each retransmission of that response. 2xx responses all go to the TU
/// (the ACK for a 2xx is end to end).
///
/// CANCEL (§9.1): `requestCancel` produces `.startCancel(request)` once a provisional response
/// has arrived; before that the CANCEL is held back and produced by the first provisional.
public struct ClientInviteTransaction: ClientTransactionMachine, Sendable {
    public enum CancelState: Sendable, Hashable {
        case none
        /// Requested before any provisional response: sent when one arrives.
        case pending
        case sent
    }

    public let request: SIPMessage
    public let reliable: Bool
    public let timers: TransactionTimers
    /// The To-tag of a response this transaction makes up (408, 503); drawn only then, since
    /// most transactions never need one (a random draw per transaction showed in profiles).
    public var localTag: String { fixedLocalTag ?? TransactionMessages.randomToken() }
    private let fixedLocalTag: String?
    public internal(set) var state: TransactionState = .calling
    public private(set) var cancelState: CancelState = .none
    /// The final response (received or synthesized) that was delivered, once there is one.
    public private(set) var finalResponse: SIPMessage?
    /// The ACK sent for a non-2xx final response.
    public private(set) var ack: [UInt8]?
    /// The final-response timer fired in Proceeding: the TU has had its 408.
    public private(set) var timedOut = false
    var started = false
    /// Timer A's interval.
    var retransmitInterval: UInt64 = 0
    var slots = TimerSlots()

    public init(request: SIPMessage, reliable: Bool, timers: TransactionTimers = TransactionTimers(),
                localTag: String? = nil) {
        self.request = request
        self.reliable = reliable
        self.timers = timers
        self.fixedLocalTag = localTag
    }

    /// Sends the INVITE and arms A (unreliable), B and the final-response timer.
    public mutating func start(now: UInt64) -> [TransactionEffect] {
        start(from: .calling, retransmit: .a, timeout: .b, now: now)
    }

    /// A response matching this transaction arrived.
    public mutating func receive(response: SIPMessage, now: UInt64) -> [TransactionEffect] {
        guard let status = response.statusCode else { return [] }
        var out: [TransactionEffect] = []
        switch (state, status) {
        case (.calling, 100...199):
            state = .proceeding
            slots.cancel(.a, .b, .finalResponse, into: &out)
            if let fr = TransactionTimers.nanos(timers.inviteFinalResponse) {
                out.append(slots.set(.finalResponse, at: addNanos(now, fr)))
            }
            out.append(.deliver(response, .network))
            if cancelState == .pending { sendCancel(now, &out) }
        case (.proceeding, 100...199):
            if timers.restartInviteTimerOnProvisional, !timedOut, cancelState == .none,
               let fr = TransactionTimers.nanos(timers.inviteFinalResponse) {
                out.append(slots.set(.finalResponse, at: addNanos(now, fr)))
            }
            out.append(.deliver(response, .network))
        case (.calling, 200...299), (.proceeding, 200...299):
            state = .accepted
            cancelState = cancelState == .pending ? .none : cancelState
            slots.cancelAll(into: &out)
            finalResponse = response
            out.append(.deliver(response, .network))
            out.append(slots.set(.m, at: addNanos(now, timers.t64ns)))
        case (.accepted, 200...299), (.completed, 200...299):
            out.append(.deliver(response, .network))
        case (.calling, 300...), (.proceeding, 300...):
            cancelState = cancelState == .pending ? .none : cancelState
            slots.cancelAll(into: &out)
            let ackBytes = TransactionMessages.ack(for: request, response: response)
            ack = ackBytes
            out.append(.send(ackBytes, retransmission: false))
            if !timedOut {
                finalResponse = response
                out.append(.deliver(response, .network))
            }
            if reliable {
                terminate(&out)
            } else {
                state = .completed
                out.append(slots.set(.d, at: addNanos(now, timers.timerDns)))
            }
        case (.completed, 300...):
            out.append(.absorbed)
            if let ack { out.append(.send(ack, retransmission: true)) }
        case (.accepted, 300...), (.accepted, 100...199), (.completed, 100...199):
            out.append(.absorbed)
        default:
            break
        }
        return out
    }

    /// The TU wants the INVITE cancelled. In Proceeding: `.startCancel(CANCEL)`; in Calling the
    /// CANCEL is held back until a provisional response arrives; otherwise nothing.
    public mutating func requestCancel(now: UInt64) -> [TransactionEffect] {
        var out: [TransactionEffect] = []
        switch state {
        case .calling where cancelState == .none:
            cancelState = .pending
        case .proceeding:
            sendCancel(now, &out)
        default:
            break
        }
        return out
    }

    /// Handles every timer due at `now`.
    public mutating func fire(now: UInt64) -> [TransactionEffect] {
        var out: [TransactionEffect] = []
        while state != .terminated, let t = slots.popDue(now) {
            switch (t, state) {
            case (.a, .calling):
                out.append(.send(request.bytes, retransmission: true))
                retransmitInterval = retransmitInterval &* 2
                out.append(slots.set(.a, at: addNanos(now, retransmitInterval)))
            case (.b, .calling), (.finalResponse, .calling):
                let r = TransactionMessages.timeoutResponse(to: request, toTag: localTag)
                finalResponse = r
                out.append(.deliver(r, .timeout))
                terminate(&out)
            case (.finalResponse, .proceeding):
                let r = TransactionMessages.timeoutResponse(to: request, toTag: localTag)
                finalResponse = r
                timedOut = true
                out.append(.deliver(r, .timeout))
                sendCancel(now, &out)
            case (.cancelGuard, _):
                if !timedOut, state == .proceeding || state == .calling {
                    let r = TransactionMessages.timeoutResponse(to: request, toTag: localTag)
                    finalResponse = r
                    timedOut = true
                    out.append(.deliver(r, .timeout))
                }
                terminate(&out)
            case (.d, _), (.m, _):
                terminate(&out)
            default:
                break
            }
        }
        return out
    }

    /// The transport failed to send: a synthesized 503 goes to the TU when it has had no final
    /// response yet, then Terminated.
    public mutating func transportError() -> [TransactionEffect] {
        var out: [TransactionEffect] = []
        switch state {
        case .calling, .proceeding:
            if !timedOut {
                let r = TransactionMessages.transportErrorResponse(to: request, toTag: localTag)
                finalResponse = r
                out.append(.deliver(r, .transportError))
            }
            terminate(&out)
        case .completed, .accepted:
            terminate(&out)
        default:
            break
        }
        return out
    }

    /// The TU gives up on the transaction: Terminated without delivering anything.
    public mutating func terminate() -> [TransactionEffect] { terminateNow() }

    public var nextDeadline: UInt64? { slots.next }
    public func deadline(of timer: TransactionTimer) -> UInt64? { slots.deadline(of: timer) }
    public var armedTimers: [TransactionTimer] { slots.armed }

    private mutating func sendCancel(_ now: UInt64, _ out: inout [TransactionEffect]) {
        guard cancelState != .sent else { return }
        cancelState = .sent
        if let m = try? SIPMessage(TransactionMessages.cancel(for: request)) {
            out.append(.startCancel(m))
        }
        if slots.deadline(of: .cancelGuard) == nil {
            out.append(slots.set(.cancelGuard, at: addNanos(now, timers.t64ns)))
        }
    }
}
