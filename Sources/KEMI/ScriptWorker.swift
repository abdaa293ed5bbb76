import CLua
import KSRBase
import KSRCore
import Logging
import LuaBridge
import Prometheus
import RTimer
import SIP
import SIPTransport
import SIPTransaction
import HeapModule
import Synchronization

/// The live state of one timer on one worker, shared with the control plane
/// (`rtimer.list`, `rtimer.pause`, metrics).
public final class TimerState: Sendable {
    public let timer: String
    public let workerIndex: Int
    public struct Stats: Sendable {
        public var ticks: UInt64 = 0
        public var overruns: UInt64 = 0
        public var lastLatenessNanos: UInt64 = 0
        public var maxLatenessNanos: UInt64 = 0
    }
    let stats = Mutex(Stats())
    let paused = Atomic<Bool>(false)
    let ticks: Counter
    let overruns: Counter
    let lateness: DurationHistogram

    init(timer: String, workerIndex: Int, metrics: HostMetrics) {
        self.timer = timer
        self.workerIndex = workerIndex
        let labels = [("timer", timer), ("worker", String(workerIndex))]
        ticks = metrics.registry.counter("ksr_rtimer_ticks_total", labels: labels,
                                             help: "Timer ticks run, per timer and worker")
        overruns = metrics.registry.counter("ksr_rtimer_overruns_total", labels: labels,
                                                help: "Timer deadlines skipped because a callback ran late")
        lateness = metrics.registry.histogram(
            "ksr_rtimer_lateness_seconds", labels: labels, buckets: HostMetrics.latencyBuckets,
            help: "How late each tick started after its deadline")
    }

    public var snapshot: Stats { stats.withLock { $0 } }
    public var isPaused: Bool { paused.load(ordering: .relaxed) }
    /// Pauses (the execs do not run; ticks are still counted) or resumes the timer here.
    public func setPaused(_ value: Bool) { paused.store(value, ordering: .relaxed) }
}

/// A worker that runs the script: its own Lua state, loaded once, and the timers it serves.
/// A reload builds a new state next to the old one and swaps only when every worker could.
final class ScriptWorker: WorkerBody {
    private(set) var lua: LuaState
    private(set) var ctx: WorkerContext
    private var timerSet = TimerSet<Int>()
    private var timers: [TimerDefinition]
    private let states: [TimerState]
    private let logger: Logger
    private let script: String
    private var callbackMetrics: [String: CallbackMetrics] = [:]
    private var pending: (lua: LuaState, ctx: WorkerContext, timers: [TimerDefinition])?
    /// Callbacks suspended by `KSR.async.sleep`, by wake-up time.
    private var sleepers = Heap<Sleeper>()
    private var sleeperSeq: UInt64 = 0
    /// Suspended requests due to continue here (`KSR.async.route`, `ms_route`).
    private var delayed = Heap<Delayed>()
    /// SIP receivers: the UDP listeners, read on this thread.
    private var udpReader: SIPUDPReader?

    struct Delayed: Comparable {
        let wake: UInt64
        let seq: UInt64
        let continuation: Continuation
        static func < (a: Delayed, b: Delayed) -> Bool { (a.wake, a.seq) < (b.wake, b.seq) }
        static func == (a: Delayed, b: Delayed) -> Bool { a.seq == b.seq }
    }
    let name: String

    /// A coroutine waiting in `KSR.async.sleep`, with the event state it resumes with.
    struct Sleeper: Comparable {
        let wake: UInt64
        let seq: UInt64
        let co: LuaState.LuaThread
        let function: String
        let asyncData: String?
        let eventTime: (seconds: Int, micros: Int)
        let message: MessageState
        /// The callback handles a request (request route, resumed async callback): its sleeps
        /// suspend the request's transaction.
        let requestSleeps: Bool
        /// This sleep suspended `message.transaction`: the wake-up resumes it first.
        let suspended: Bool
        static func < (a: Sleeper, b: Sleeper) -> Bool { (a.wake, a.seq) < (b.wake, b.seq) }
        static func == (a: Sleeper, b: Sleeper) -> Bool { a.seq == b.seq }
    }

    init(runtime: HostRuntime, script: String, kind: WorkerKind, name: String, rtimerIndex: Int,
         asyncGroup: String? = nil, timers: [TimerDefinition], states: [TimerState], start: UInt64) throws {
        (lua, ctx) = try Self.load(runtime: runtime, script: script, kind: kind, name: name, rtimerIndex: rtimerIndex,
                                   asyncGroup: asyncGroup)
        // Workers wake on deadlines (timers, sleeps): 1 µs of timer slack instead of Linux's 50 µs.
        _ = ksr_set_timer_slack_ns(1000)
        self.script = script
        self.name = name
        self.timers = timers
        self.states = states
        for (i, t) in timers.enumerated() {
            timerSet.add(i, schedule: PeriodicSchedule(start: start, interval: t.interval.nanoseconds))
        }
        var l = Logger(label: "rtimer")
        l[metadataKey: "worker"] = .string(name)
        logger = l
    }

    /// A new Lua state with the KSR table and the script loaded.
    private static func load(runtime: HostRuntime, script: String, kind: WorkerKind, name: String,
                             rtimerIndex: Int, asyncGroup: String?) throws -> (LuaState, WorkerContext) {
        let lua = try LuaState()
        let ctx = WorkerContext(lua: lua, runtime: runtime, phase: .loading, kind: kind, name: name, rtimerIndex: rtimerIndex,
                                asyncGroup: asyncGroup)
        lua.setContext(Unmanaged.passUnretained(ctx).toOpaque())
        try KSRTable.install(ctx)
        for (n, v) in runtime.setup.varInit {
            if let acc = ctx.pv("$var(\(n))") { _ = acc.assign(ctx, v) }
        }
        try lua.runFile(script)
        ctx.phase = .running
        return (lua, ctx)
    }

    /// The earliest of the next tick, sleeper and delayed request; asked before every wait and
    /// after every event, so it allocates nothing.
    func nextDeadline() -> UInt64? {
        var next = timerSet.nextDeadline
        if let s = sleepers.min?.wake, s < next ?? .max { next = s }
        if let d = delayed.min?.wake, d < next ?? .max { next = d }
        return next
    }

    func fireDue(now: UInt64) {
        while let s = sleepers.min, s.wake <= now {
            _ = sleepers.removeMin()
            wake(s)
        }
        while let d = delayed.min, d.wake <= now {
            _ = delayed.removeMin()
            resumeSuspended(d.continuation)
        }
        while let (id, tick) = timerSet.fireNext(now: now) {
            let timer = timers[id]
            let state = states[id]
            // A late tick runs once; missed deadlines are skipped, not stacked up.
            if tick.skipped > 0 || tick.lateness > timer.interval.nanoseconds / 2 {
                logger.debug("timer [\(timer.name)] late by \(tick.lateness / 1000) µs, \(tick.skipped) ticks skipped",
                             metadata: ["ksr.module": "rtimer"])
            }
            state.stats.withLock { s in
                s.ticks += 1
                s.overruns += tick.skipped
                s.lastLatenessNanos = tick.lateness
                s.maxLatenessNanos = max(s.maxLatenessNanos, tick.lateness)
            }
            state.ticks.increment()
            if tick.skipped > 0 { state.overruns.increment(by: Int64(tick.skipped)) }
            state.lateness.recordNanoseconds(Int64(clamping: tick.lateness))
            if state.isPaused { continue }
            runExecs(of: id)
        }
    }

    /// Runs the execs of timer `id` now (a tick, or `rtimer.fire`).
    func runExecs(of id: Int) {
        for exec in timers[id].execs { run(exec.route, "rtimer") }
    }

    /// The index of the timer called `name` on this worker.
    func timerIndex(_ name: String) -> Int? {
        let key = name.lowercased()
        return timers.firstIndex { $0.name.lowercased() == key }
    }

    /// Runs an async task (`KSR.async.task_data`): the callback gets "async:task-data" and
    /// reads the data with `KSR.async.get_data()`.
    func runTask(_ function: String, data: String) {
        ctx.asyncData = data
        run(function, "async:task-data")
        ctx.asyncData = nil
    }

    /// Runs one event callback (timer, task) with the faked message, as a coroutine; errors
    /// are logged with the traceback.
    func run(_ function: String, _ argument: String) {
        ctx.eventTime = WallClock.now()
        ctx.dropRequested = false
        ctx.message = ctx.faked
        account(function) { lua.callGlobal(function, args: [argument]) }
        if ctx.message.isFaked { ctx.faked = ctx.message }
    }

    /// Reads the UDP listeners from now on (`Worker.watch`); messages come to `readable`.
    func readUDP(_ reader: SIPUDPReader?, on worker: Worker) {
        guard let reader else { return }
        udpReader = reader
        for fd in reader.descriptors where !worker.watch(fd, exclusive: true) {
            logger.error("\(name): cannot wait on UDP socket \(fd): it is left to the other receivers", metadata: ["ksr.module": "sip"])
        }
    }

    func readable(_ fd: CInt) {
        udpReader?.read(fd) { inbound in
            switch SIPDispatcher.takeReply(inbound, sip: ctx.runtime.sip, tm: ctx.runtime.tm) {
            case .handled:
                break
            case .needsLua(let reply, let actions):
                continueReply(reply, inbound, actions)
            case .no:
                handleSIP(inbound)
            }
        }
    }

    /// Handles a SIP message from the transport: `ksr_request_route` for a request,
    /// `ksr_reply_route` (if defined) for a reply. Malformed input gets a 400 when a reply can
    /// be formed, else it is dropped with a log line.
    func handleSIP(_ inbound: SIPInbound) {
        let sip: SIPMessage
        do {
            sip = try SIPMessage(inbound.bytes, framing: inbound.proto == .udp ? .datagram : .stream)
        } catch {
            rejectMalformed(inbound, error)
            return
        }
        ctx.eventTime = WallClock.now()
        ctx.dropRequested = false
        ctx.message = MessageState(sip: sip, inbound: inbound)
        if sip.isRequest {
            // A retransmission of a request with a transaction (or the ACK of its negative
            // final reply) is absorbed by the transaction: the script does not run again.
            if let table = ctx.runtime.tm.table {
                switch table.lookupRequest(sip, now: SystemClock().nowNanos()) {
                case .retransmission(_, let actions), .ack(_, let actions):
                    ctx.runtime.tm.perform(actions)
                    return
                case .notFound:
                    break
                }
            }
            let route = "ksr_request_route"
            account(route, requestSleeps: true) { lua.callGlobal(route) }
        } else {
            // The core reply route sees every reply first; KSR.x.drop() there stops it.
            if lua.hasGlobalFunction("ksr_reply_route") {
                account("ksr_reply_route") { lua.callGlobal("ksr_reply_route") }
                if ctx.dropRequested { return }
            }
            guard let table = ctx.runtime.tm.table else { return }
            switch table.receiveResponse(sip, now: SystemClock().nowNanos()) {
            case .matched(_, let actions):
                continueReply(sip, inbound, actions)
            case .notFound:
                logger.debug("reply \(sip.statusCode ?? 0) matches no transaction: dropped", metadata: ["ksr.module": "tm"])
            }
        }
    }

    /// The rest of a matched reply: its transaction's reply route (t_on_reply) runs before the
    /// reply goes on (KSR.x.drop() there keeps a provisional reply from being relayed), and
    /// ksr_onsend_route sees the replies relayed upstream.
    func continueReply(_ sip: SIPMessage, _ inbound: SIPInbound, _ matched: [TMCore.Table.Action]) {
        ctx.eventTime = WallClock.now()
        let actions = matched.filter { action in
            guard case .response(_, _, let response, .network, let context) = action,
                  let route = context.replyRoute else { return true }
            ctx.dropRequested = false
            ctx.message = MessageState(sip: response, inbound: inbound)
            account(route) { lua.callGlobal(route) }
            return !(ctx.dropRequested && (response.statusCode ?? 0) < 200)
        }
        // ksr_onsend_route also sees the replies relayed upstream (it cannot stop them).
        if lua.hasGlobalFunction("ksr_onsend_route") {
            for case .response(_, _?, let response, _, _) in actions {
                guard let code = response.statusCode, code > 100, code < 300 else { continue }
                ctx.message = MessageState(sip: response, inbound: inbound)
                account("ksr_onsend_route") { lua.callGlobal("ksr_onsend_route") }
            }
        }
        ctx.runtime.tm.perform(actions)
    }

    private func rejectMalformed(_ inbound: SIPInbound, _ error: SIPParseError) {
        let from = "\(inbound.proto):\(inbound.source)"
        guard let partial = error.partialMessage, partial.isRequest, partial.method != .ack,
              let transport = ctx.runtime.sip.transport else {
            logger.notice("dropped a malformed SIP message from \(from): \(error.reason)", metadata: ["ksr.module": "sip"])
            return
        }
        let reply = SIPResponseBuilder.reply(
            to: partial, status: 400, reason: "Bad Request", source: (inbound.source.ip, inbound.source.port),
            toTag: SLModule.toTag(for: partial), extraHeaders: ["Warning: 399 ksr \"\(String(error.reason.map { $0 == "\"" ? "'" : $0 }))\""],
            server: SLModule.server)
        transport.send(reply, replyingTo: inbound)
        logger.notice("answered 400 to a malformed SIP request from \(from): \(error.reason)", metadata: ["ksr.module": "sip"])
    }

    /// Resumes a callback whose sleep is over, with the event state it had. A request whose
    /// transaction the sleep suspended continues only if it is still suspended: when fr_timer
    /// answered it 408 meanwhile (or it is gone), the rest of the callback does not run, as
    /// Kamailio's t_continue skips a timed-out suspension.
    private func wake(_ s: Sleeper) {
        if s.suspended, let id = s.message.transaction, let table = ctx.runtime.tm.table {
            do throws(TransactionError) {
                try table.resume(id, now: SystemClock().nowNanos())
            } catch {
                lua.discard(s.co)
                logger.warning("transaction \(id) of a request sleeping in KSR.async.sleep is not suspended any more (\(error)): it was answered during the sleep (fr_timer: 408), so the rest of [\(s.function)] is not run",
                               metadata: ["ksr.module": "async"])
                return
            }
        }
        ctx.asyncData = s.asyncData
        ctx.eventTime = s.eventTime
        ctx.message = s.message
        account(s.function, requestSleeps: s.requestSleeps) { lua.resume(s.co, returning: 1) }
        if ctx.message.isFaked { ctx.faked = ctx.message }
        ctx.asyncData = nil
    }

    private func metrics(_ function: String) -> CallbackMetrics {
        if let m = callbackMetrics[function] { return m }
        let m = ctx.runtime.metrics.callback(function)
        callbackMetrics[function] = m
        return m
    }

    /// Handles a KDMQ request `KSR.dmq.handle_message` queued on this DMQ worker.
    func handleDMQ(_ job: DMQJob) {
        guard let service = ctx.runtime.dmq.service else { return }
        ctx.eventTime = WallClock.now()
        ctx.dropRequested = false
        ctx.message = job.message
        let function = service.settings.channelRoutes[job.channel]
        account(function ?? "dmq:\(job.channel)") { () -> LuaState.CallOutcome in
            ctx.dmqRun(service, channel: job.channel, key: job.key, nestedOn: nil)
            return .returned
        }
    }

    /// Continues a request suspended by a `KSR.async` function: the callback runs with no
    /// arguments on a copy of the request, through its transaction; a callback that sends no
    /// final reply gets the transaction answered 500. Nothing runs when the suspension timed
    /// out already (the client got 408).
    func resumeSuspended(_ c: Continuation) {
        guard let table = ctx.runtime.tm.table else { return }
        do throws(TransactionError) {
            try table.resume(c.transaction, now: SystemClock().nowNanos())
        } catch {
            logger.warning("transaction is not suspended [\(c.transaction)]: \(error); [\(c.callback)] not run",
                           metadata: ["ksr.module": "async"])
            return
        }
        ctx.eventTime = WallClock.now()
        ctx.dropRequested = false
        ctx.message = c.message
        account(c.callback, requestSleeps: true) { lua.callGlobal(c.callback) }
    }

    /// Runs the failure route of a relayed request whose branches all failed. If it neither
    /// replies nor relays again, the best reply goes upstream, as Kamailio's tm does.
    func runFailureRoute(_ job: FailureJob) {
        guard let table = ctx.runtime.tm.table, let request = table.request(of: job.transaction),
              let context = table.context(of: job.transaction), let inbound = context.inbound else { return }
        let branchesBefore = table.info(job.transaction)?.branches.count ?? 0
        ctx.eventTime = WallClock.now()
        ctx.dropRequested = false
        var message = MessageState(sip: request, inbound: inbound)
        message.transaction = job.transaction
        message.failureCode = job.best.statusCode
        ctx.message = message
        account(job.route) { lua.callGlobal(job.route) }
        let branchesAfter = table.info(job.transaction)?.branches.count ?? 0
        if !ctx.transactionAnswered && branchesAfter == branchesBefore {
            ctx.runtime.tm.perform((try? table.relayResponse(job.transaction, response: job.best, now: SystemClock().nowNanos())) ?? [])
        }
    }

    /// Moves continuations a callback queued on this worker into the deadline heap.
    private func takeScheduled() {
        guard !ctx.scheduled.isEmpty else { return }
        for (wake, c) in ctx.scheduled {
            sleeperSeq &+= 1
            delayed.insert(Delayed(wake: wake, seq: sleeperSeq, continuation: c))
        }
        ctx.scheduled.removeAll()
    }

    /// Runs (or resumes) a callback, counts it and handles how it ended. When it ended (not
    /// suspended in a sleep) and it was a resumed async request, or a request whose route
    /// slept with its transaction suspended, that neither sent a final reply nor relayed the
    /// request, the transaction is answered 500, as Kamailio's tm does after t_continue.
    /// `requestSleeps`: the callback handles a request, so a sleep suspends its transaction.
    private func account(_ function: String, requestSleeps: Bool = false, _ body: () -> LuaState.CallOutcome) {
        defer { takeScheduled() }
        if runCallback(function, requestSleeps: requestSleeps, body) && ctx.message.finishWith500 {
            ctx.message.finishWith500 = false
            finishWith500(ctx.message)
        }
    }

    /// Answers `message`'s transaction `500 I'm terribly sorry, server error occurred (1/TM)`
    /// unless it sent a final reply or has branches (a relay, whose replies answer it).
    private func finishWith500(_ message: MessageState) {
        guard let id = message.transaction, let table = ctx.runtime.tm.table, let inbound = message.inbound,
              let info = table.info(id), info.state == .trying || info.state == .proceeding, info.branches.isEmpty else { return }
        let bytes = SIPResponseBuilder.reply(
            to: message.sip, status: 500, reason: "I'm terribly sorry, server error occurred (1/TM)",
            source: (inbound.source.ip, inbound.source.port), toTag: SLModule.toTag(for: message.sip),
            server: SLModule.server)
        ctx.runtime.tm.perform((try? table.reply(id, status: 500, bytes: bytes, now: SystemClock().nowNanos())) ?? [])
    }

    /// What a sleep did to the request it runs for.
    private enum SleepSuspension {
        /// Nothing: no request, an ACK, no transaction possible, or one that cannot be suspended.
        case stateless
        /// The request's transaction (created if needed) is suspended for the sleep.
        case suspended
        /// The request turned out to be a retransmission of one another worker has a
        /// transaction for: it was absorbed, and the callback must not go on.
        case absorbed
    }

    /// A sleep in a request's callback gives the request its server transaction and suspends
    /// it, as Kamailio's async functions do (t_newtran, t_suspend): retransmissions that
    /// arrive during the sleep are absorbed (an INVITE's get the automatic 100), and fr_timer
    /// answers 408 if the sleep outlasts it. Not for an ACK, a request that was already
    /// answered (statelessly or through tm) or relayed, one whose transaction is suspended by
    /// an async function, or one that cannot have a transaction (no RFC 3261 branch): those
    /// sleep as any callback does.
    private func suspendForSleep(_ co: LuaState.LuaThread, _ function: String) -> SleepSuspension {
        let m = ctx.message
        guard m.sip.isRequest, m.sip.method != .ack, !m.statelessFinalSent, let table = ctx.runtime.tm.table else {
            return .stateless
        }
        switch ctx.createTransaction() {
        case .created:
            break
        case .retransmission(let id):
            logger.debug("[\(function)] sleeps for a retransmission of a request transaction \(id) has: absorbed, the callback is not continued",
                         metadata: ["ksr.module": "async"])
            return .absorbed
        case .impossible(let why):
            logger.debug("[\(function)] sleeps without a transaction: \(why)", metadata: ["ksr.module": "async"])
            return .stateless
        }
        // A relayed request has branches whose timers answer it; a suspended one is the async
        // function's to resume; an answered one needs nothing.
        guard let id = ctx.message.transaction, let info = table.info(id), !info.isSuspended, info.branches.isEmpty,
              info.state == .trying || info.state == .proceeding else { return .stateless }
        do throws(TransactionError) {
            try ctx.suspendTransaction(id, co.pointer)
        } catch {
            logger.debug("[\(function)] sleeps without suspending transaction \(id): \(error)", metadata: ["ksr.module": "async"])
            return .stateless
        }
        ctx.message.finishWith500 = true
        ctx.message.sleptInTransaction = true
        return .suspended
    }

    /// Runs the callback; true when it ended (returned, failed or was missing).
    private func runCallback(_ function: String, requestSleeps: Bool, _ body: () -> LuaState.CallOutcome) -> Bool {
        let m = metrics(function)
        let started = SystemClock().nowNanos()
        let outcome = body()
        m.duration.recordNanoseconds(Int64(clamping: SystemClock().nowNanos() &- started))
        m.calls.increment()
        switch outcome {
        case .returned:
            return true
        case .missing:
            if function == "ksr_request_route" {
                logger.error("no such function [\(function)] in lua scripts", metadata: ["ksr.module": "app_lua"])
            } else {
                logger.debug("no such function [\(function)] in lua scripts", metadata: ["ksr.module": "app_lua"])
            }
            return true
        case .failed(let error):
            m.errors.increment()
            logger.error("error from Lua: \(error.traceback ?? error.message)", metadata: ["ksr.module": "app_lua"])
            return true
        case .yielded(let co):
            if let ms = lua.sleepRequest(co) {
                let suspension = requestSleeps ? suspendForSleep(co, function) : .stateless
                if case .absorbed = suspension {
                    lua.discard(co)
                    return true
                }
                sleeperSeq &+= 1
                sleepers.insert(Sleeper(wake: SystemClock().nowNanos() &+ UInt64(ms) &* 1_000_000, seq: sleeperSeq, co: co,
                                        function: function, asyncData: ctx.asyncData, eventTime: ctx.eventTime,
                                        message: ctx.message, requestSleeps: requestSleeps,
                                        suspended: suspension == .suspended))
                return false
            } else {
                lua.discard(co)
                m.errors.increment()
                logger.error("[\(function)] yielded outside KSR.async.sleep/ms_sleep: nothing can resume it, the callback was abandoned",
                             metadata: ["ksr.module": "app_lua"])
                return true
            }
        }
    }

    // MARK: - reload

    /// Loads the script into a fresh state for `runtime`, keeping this worker's `$var`s and
    /// fetched queue items. Returns why it failed, or nil; nothing changes until `commit`.
    func prepareReload(runtime: HostRuntime, script: String, timers newTimers: [TimerDefinition]) -> String? {
        do {
            let (newLua, newCtx) = try Self.load(runtime: runtime, script: script, kind: ctx.workerKind,
                                                 name: ctx.workerName, rtimerIndex: ctx.rtimerIndex,
                                                 asyncGroup: ctx.asyncGroup)
            newCtx.adoptState(of: ctx)
            pending = (newLua, newCtx, newTimers)
            return nil
        } catch let e as LuaError {
            return e.traceback ?? e.message
        } catch {
            return "\(error)"
        }
    }

    /// Switches to the state built by `prepareReload`.
    func commitReload() {
        guard let p = pending else { return }
        pending = nil
        if !sleepers.isEmpty {
            logger.warning("reload: \(sleepers.count) callbacks sleeping in KSR.async.sleep belong to the old script and are dropped",
                           metadata: ["ksr.module": "app_lua"])
            while let s = sleepers.popMin() {
                lua.discard(s.co)
                // A request suspended by its sleep is answered now rather than by fr_timer.
                if s.suspended, let id = s.message.transaction, let table = ctx.runtime.tm.table,
                   (try? table.resume(id, now: SystemClock().nowNanos())) != nil {
                    finishWith500(s.message)
                }
            }
        }
        lua = p.lua
        ctx = p.ctx
        timers = p.timers
        callbackMetrics.removeAll()
    }

    func abortReload() { pending = nil }

    var luaMemory: Int { lua.memoryInUse }
    var timerDefinitions: [TimerDefinition] { timers }

    func shutdown() {
        udpReader?.close()
        udpReader = nil
    }
}

extension WorkerContext {
    /// Takes over another context's `$var` values and last fetched queue items (reload).
    func adoptState(of old: WorkerContext) {
        for (name, slot) in old.varSlots {
            if let acc = pv("$var(\(name))") { _ = acc.assign(self, old.vars[slot]) }
        }
        for i in 0..<min(old.queueCount, queueCount) { fetched[i] = old.fetched[i] }
        message = old.message
    }
}
