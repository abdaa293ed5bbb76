import KSRBase
import KSRCore
import Logging
import LuaBridge
import SIP
import SIPTransaction
import SIPTransport
import Synchronization
import CLua
import DMQ

/// A closure to keep in a `Mutex`. Reading a bare closure out of `Mutex.withLock { $0 }`
/// wraps it in one more reabstraction thunk at every read, and the thunks pile up until the
/// stack overflows (seen after ~40k DMQ replies); a struct around it is read as it is.
struct Callback<Argument>: Sendable {
    let run: @Sendable (Argument) -> Void
}

/// What a transaction remembers for the host: the request's source, for replies the host
/// makes itself (relaying will add route names here).
public struct TMContext: Sendable {
    var source: (ip: String, port: Int)
    /// The request as received (server transactions): where the host's own replies go.
    var inbound: SIPInbound?
    /// The Lua function `KSR.tm.t_on_failure` named for this transaction.
    var failureRoute: String?
    /// The Lua function `KSR.tm.t_on_reply` named (client transactions: run for each reply).
    var replyRoute: String?
    /// A KDMQ request DMQ sent: its final reply goes to the membership engine.
    var dmq: DMQReplyContext?
}

/// The host's transaction layer: Kamailio tm's table over the RFC 3261 machines, the worker
/// that drives its timers, and the code that performs what the table asks for.
public final class TMCore: Sendable {
    public typealias Table = TransactionTable<SIPInbound, TMContext>
    let timers = Mutex(TransactionTimers())
    private let state = Mutex<(table: Table?, timerWorker: Worker?, transport: SIPTransport?)>((nil, nil, nil))
    private let logger = Logger(label: "tm")
    /// Runs a failure route on a SIP worker (set by the host).
    let failureRunner = Mutex<Callback<FailureJob>?>(nil)
    /// Takes the final replies of requests the host sent itself (DMQ).
    let localReplyHandler = Mutex<Callback<(DMQReplyContext, SIPMessage)>?>(nil)

    public init() {}

    var table: Table? { state.withLock { $0.table } }
    /// The transaction timer worker, while running (listed by `core.psx`).
    var timerWorker: Worker? { state.withLock { $0.timerWorker } }

    /// Creates the table and its timer worker (once the transport is running).
    func start(transport: SIPTransport) {
        let table = Table(timers: timers.withLock { $0 }, capacity: 1 << 16)
        let worker = Worker(name: "tm-timer", kind: .tmTimer) { [self] _ in TMTimerBody(core: self, table: table) }
        state.withLock { $0 = (table, worker, transport) }
        worker.start()
        _ = worker.waitStarted()
    }

    func stop() {
        let w = state.withLock { s -> Worker? in
            let w = s.timerWorker
            s = (nil, nil, nil)
            return w
        }
        w?.stop()
        w?.join()
    }

    /// Performs the table's actions: sends, 408 for a suspended transaction that timed out.
    func perform(_ actions: [Table.Action]) {
        guard !actions.isEmpty else { return }
        let (table, transport, worker) = state.withLock { ($0.table, $0.transport, $0.timerWorker) }
        guard let table, let transport else { return }
        for action in actions {
            switch action {
            case .send(_, let bytes, let peer, _):
                if let c = peer.connection {
                    transport.send(bytes, on: c)
                } else if peer.local.proto == .tcp {
                    transport.send(bytes, to: peer.source, proto: .tcp)
                } else {
                    transport.send(bytes, to: peer.source, via: peer.local)
                }
            case .response(_, nil, let response, _, let context):
                // A request this host sent itself (DMQ): the final reply, or tm's 408.
                if let d = context.dmq, let status = response.statusCode, status >= 200 {
                    localReplyHandler.withLock { $0 }?.run((d, response))
                }
            case .response(_, let parent?, let response, _, _):
                // Provisional (but 100) and 2xx responses of a branch go upstream at once;
                // negative finals wait for .allBranchesFailed.
                guard let status = response.statusCode, status > 100, status < 300 else { break }
                perform((try? table.relayResponse(parent, response: response, now: SystemClock().nowNanos())) ?? [])
            case .allBranchesFailed(let server, let best, _, _, let context):
                if let route = context.failureRoute, let runner = failureRunner.withLock({ $0 }) {
                    runner.run(FailureJob(transaction: server, route: route, best: best))
                } else {
                    perform((try? table.relayResponse(server, response: best, now: SystemClock().nowNanos())) ?? [])
                }
            case .serverTimeout(let id, .finalResponse, _):
                logger.notice("transaction \(id): no final reply within fr_timer, answering 408", metadata: ["ksr.module": "tm"])
                if let request = table.request(of: id), let context = table.context(of: id) {
                    let bytes = SIPResponseBuilder.reply(
                        to: request, status: 408, reason: "Request Timeout", source: context.source,
                        toTag: SLModule.toTag(for: request), server: SLModule.server)
                    perform((try? table.reply(id, status: 408, bytes: bytes, now: SystemClock().nowNanos())) ?? [])
                }
            case .serverTimeout, .terminated, .response:
                break
            }
        }
        // A new or changed transaction may have an earlier deadline: let the timer worker look.
        if worker != nil { poke() }
    }

    /// The deadline the timer worker is waiting for (UInt64.max: none).
    let sleepingUntil = Atomic<UInt64>(UInt64.max)

    /// Wakes the timer worker, but only when an operation moved the next deadline earlier
    /// than the one it waits for (waking it for every transaction costs a context switch).
    /// Reads the table's new-deadline hint, so the common case takes no lock of the table.
    func poke() {
        let (table, worker) = state.withLock { ($0.table, $0.timerWorker) }
        guard let table, let worker else { return }
        let next = table.earliestNewDeadline
        guard next < sleepingUntil.load(ordering: .acquiring) else { return }
        sleepingUntil.store(next, ordering: .releasing)
        worker.post { _ in }
    }
}

/// The tm timer worker: fires the table's due timers.
final class TMTimerBody: WorkerBody {
    let core: TMCore
    let table: TMCore.Table
    init(core: TMCore, table: TMCore.Table) {
        self.core = core
        self.table = table
        _ = ksr_set_timer_slack_ns(1000)
    }
    func nextDeadline() -> UInt64? {
        // Until the new plan is stored, any new deadline wakes this worker again (a spurious
        // wake-up at worst); deadlines scheduled from here on are in the table's answer or in
        // the hint a poke compares.
        core.sleepingUntil.store(UInt64.max, ordering: .releasing)
        table.clearNewDeadlines()
        let next = table.nextDeadline()
        core.sleepingUntil.store(next ?? UInt64.max, ordering: .releasing)
        return next
    }
    func fireDue(now: UInt64) { core.perform(table.fire(now: now)) }
    func shutdown() {}
}

extension WorkerContext {
    /// What `createTransaction` did.
    enum TransactionCreation {
        /// The request has its server transaction now (or had one): `message.transaction`.
        case created
        /// The request is a retransmission of one with a transaction: absorbed (its actions done).
        case retransmission(TransactionID)
        /// No transaction for this message: why.
        case impossible(String)
    }

    /// Creates the server transaction of the current request unless it has one (t_newtran's
    /// work, shared by `t_newtran`, the async functions and the sleeps); logs nothing.
    func createTransaction() -> TransactionCreation {
        guard let inbound = message.inbound, message.sip.isRequest else {
            return .impossible("no transaction for the faked message or a reply")
        }
        if message.transaction != nil { return .created }
        guard let table = runtime.tm.table else { return .impossible("tm is not running") }
        do throws(TransactionError) {
            switch try table.createServerTransaction(
                for: message.sip, peer: inbound, reliable: inbound.proto != .udp,
                context: TMContext(source: (inbound.source.ip, inbound.source.port), inbound: inbound),
                now: SystemClock().nowNanos()) {
            case .created(let id):
                message.transaction = id
                runtime.tm.poke()
                return .created
            case .retransmission(let id, let actions):
                runtime.tm.perform(actions)
                return .retransmission(id)
            }
        } catch {
            return .impossible("cannot create the transaction: \(error)")
        }
    }

    /// `t_newtran`: creates the server transaction of the current request. 1 created (or it
    /// existed), 0 when the request was a retransmission (absorbed), -1 on error.
    func newTransaction(_ L: OpaquePointer) -> Int {
        switch createTransaction() {
        case .created: return 1
        case .retransmission: return 0
        case .impossible(let why):
            logUsageError(L, "tm: \(why)")
            return -1
        }
    }

    /// Suspends the current request's transaction `id` (t_suspend): fr_timer keeps running,
    /// retransmissions are absorbed, and an INVITE that got no reply yet is answered 100 at
    /// once, as by tm's auto-100. Used by the async functions and by sleeps in a request route.
    func suspendTransaction(_ id: TransactionID, _ L: OpaquePointer) throws(TransactionError) {
        guard let table = runtime.tm.table else { throw TransactionError.notFound }
        try table.suspend(id, now: SystemClock().nowNanos())
        runtime.tm.poke()
        if message.sip.method == .invite && table.info(id)?.hasResponded == false {
            _ = transactionReply(100, "trying -- your call is important to us", L)
        }
    }

    /// `t_reply`: a reply through the current transaction. 1 sent, -1 without a transaction
    /// or when a final reply was sent already.
    func transactionReply(_ code: Int, _ reason: String, _ L: OpaquePointer) -> Int {
        guard let id = message.transaction, let table = runtime.tm.table, let inbound = message.inbound else {
            logUsageError(L, "cannot send a t_reply to a message for which no T-state has been established")
            return -1
        }
        guard (100...699).contains(code) else {
            logUsageError(L, "tm: invalid reply code \(code) (100..699)")
            return -1
        }
        let bytes = SIPResponseBuilder.reply(
            to: message.sip, status: code, reason: reason.isEmpty ? SLModule.defaultReason(code) : reason,
            source: (inbound.source.ip, inbound.source.port), toTag: SLModule.toTag(for: message.sip),
            extraHeaders: message.replyHeaders, server: SLModule.server)
        do throws(TransactionError) {
            runtime.tm.perform(try table.reply(id, status: code, bytes: bytes, now: SystemClock().nowNanos()))
            message.transactionReplyCode = code
            return 1
        } catch {
            logUsageError(L, "tm: t_reply \(code) refused: \(error)")
            return -1
        }
    }

    /// Whether the current transaction has sent a final reply.
    var transactionAnswered: Bool {
        guard let id = message.transaction, let info = runtime.tm.table?.info(id) else { return true }
        return info.state != .trying && info.state != .proceeding
    }
}

/// tm: transactions (`KSR.tm.*`). Relaying (`t_relay`) comes with the next part of the SIP core.
struct TMModule: KEMIModule {
    let name = "tm"
    let summary = "transactions: t_newtran, t_reply; fr_timer for suspended requests"

    var params: [ModuleParam] {
        func ms(_ name: String, _ doc: String, _ set: @escaping @Sendable (inout TransactionTimers, Duration) -> Void) -> ModuleParam {
            ModuleParam(name, .int, doc: doc) { setup, v throws(ParamError) in
                guard let n = v.intValue, n > 0 else { throw ParamError("expects milliseconds > 0, got \(v)") }
                setup.tmTimers.append { set(&$0, .milliseconds(n)) }
                return []
            }
        }
        return [
            ms("fr_timer", "Final reply timeout in ms for non-INVITE (default 30000).") { $0.finalResponse = $1 },
            ms("fr_inv_timer", "Final reply timeout in ms for INVITE (default 120000).") { $0.inviteFinalResponse = $1 },
        ] + ["wt_timer", "max_inv_lifetime", "max_noninv_lifetime", "retr_timer1", "retr_timer2", "noisy_ctimer",
             "auto_inv_100", "restart_fr_on_each_reply", "aggregate_challenges", "reparse_invite", "blst_503",
             "failure_reply_mode", "unix_tx_timeout", "e2e_cancel_reason", "cancel_b_method", "reparse_on_dns_failover",
             "on_sl_reply"].map { ModuleParam.notImplemented($0, .int) }
            + ["ac_extra_hdrs", "contacts_avp", "contact_flows_avp", "fr_timer_avp", "fr_inv_timer_avp",
               "auto_inv_100_reason", "xavp_contact"].map { ModuleParam.notImplemented($0, .string) }
    }

    var exports: [KEMIExport] {
        [
            KEMIExport("tm", "t_relay", returns: .int,
                       doc: "Forwards the request statefully to $du or the R-URI (IP or host name; A/AAAA): 1, or -1.") { ctx, args in
                .int(ctx.relay(args.L))
            },
            KEMIExport("tm", "t_on_failure", [("callback", .str)], returns: .int,
                       doc: "Names the Lua function run when every branch of t_relay fails (no arguments; $T_reply_code is the best reply's code): 1.") { ctx, args in
                guard let name = args.string(1), !name.isEmpty else { return .int(-1) }
                ctx.message.failureRoute = name
                return .int(1)
            },
            KEMIExport("tm", "t_on_reply", [("callback", .str)], returns: .int,
                       doc: "Names the Lua function run for each reply to the relayed request (no arguments; KSR.x.drop() stops a provisional reply): 1.") { ctx, args in
                guard let name = args.string(1), !name.isEmpty else { return .int(-1) }
                ctx.message.replyRoute = name
                return .int(1)
            },
            KEMIExport("tm", "t_on_branch", [("callback", .str)], returns: .int,
                       doc: "Names the Lua function run just before the branch is sent by t_relay (no arguments; may change $ru, $du and headers; KSR.x.drop() cancels the branch; it cannot sleep): 1.") { ctx, args in
                guard let name = args.string(1), !name.isEmpty else { return .int(-1) }
                ctx.message.branchRoute = name
                return .int(1)
            },
            KEMIExport("tm", "t_newtran", returns: .int,
                       doc: "Creates the transaction of the request (absorbs its retransmissions): 1, 0 for a retransmission, -1 error.") { ctx, args in
                .int(ctx.newTransaction(args.L))
            },
            KEMIExport("tm", "t_reply", [("code", .int), ("reason", .str)], returns: .int,
                       doc: "Replies through the transaction: 1 sent, -1 without a transaction or after a final reply.") { ctx, args in
                .int(ctx.transactionReply(Int(args.int32(1)), args.string(2) ?? "", args.L))
            },
        ]
    }
}

/// A failure route to run: every branch of `transaction` failed, `best` is the reply tm would
/// relay.
struct FailureJob: Sendable {
    let transaction: TransactionID
    let route: String
    let best: SIPMessage
}
