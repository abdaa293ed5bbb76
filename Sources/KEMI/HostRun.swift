import CKSRSys
import KSRBase
import KSRCore
import Logging
import LuaBridge
import MQueue
import MQueueSQLite
import Prometheus
import Control
import SIP
import SIPTransport
import SIPTransaction
import RTimer
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

extension ScriptHost {
    /// KSRHost's version.
    public static let version = "0.2.0"

    /// `ksr 0.2.0 (KEMI 2.0, Lua 5.4)`.
    public static var versionString: String { "ksr \(version) (KEMI 2.0, \(luaVersion))" }

    /// Loads persisted queues, then starts the workers; each loads the script in its own state.
    public func start() throws(ConfigFailure) {
        let runtime = self.runtime
        let setup = runtime.setup
        if let url = setup.dbURL, runtime.queueList.contains(where: { $0.definition.dbMode != .none }) {
            do {
                // This connection closes after the load: the save at shutdown opens its own
                // (ShutdownSaver), so it never writes to a file removed while the host ran.
                let s = try SQLiteQueueStore(url: url)
                for q in runtime.queueList where q.definition.dbMode.loadsAtStartup {
                    let n = try s.load(into: q)
                    logger.info("loaded \(n) items of queue [\(q.definition.name)] from the database", metadata: ["ksr.module": "mqueue"])
                }
            } catch {
                throw ConfigFailure([ConfigError("mqueue database: \(error)")])
            }
        }
        let start = SystemClock().nowNanos()
        let script = self.script
        var workers: [Worker] = []
        var allStates: [TimerState] = []
        for w in setup.rtimer.workers {
            let name: String, kind: WorkerKind, timers: [TimerDefinition]
            switch w {
            case .shared(let t):
                (name, kind, timers) = ("timer", .sharedTimer, t)
            case .dedicated(let timer, let i):
                (name, kind, timers) = ("rtimer:\(timer.name)/\(i)", .rtimer(timer: timer.name, child: i), [timer])
            }
            let states = timers.map { TimerState(timer: $0.name, workerIndex: kind.index, metrics: runtime.metrics) }
            allStates += states
            let rtimerIndex = kind.index
            // Timer workers spin the last 50 µs before a tick: single ticks are not late.
            workers.append(Worker(name: name, kind: kind, deadlineWait: .timer) { _ in
                try ScriptWorker(runtime: runtime, script: script, kind: kind, name: name, rtimerIndex: rtimerIndex,
                                 timers: timers, states: states, start: start)
            })
        }
        var groups: [(String, [Worker])] = []
        for g in setup.effectiveAsyncGroups {
            var members: [Worker] = []
            for i in 0..<g.workers {
                let name = "async:\(g.name)/\(i)"
                let kind = WorkerKind.asyncTask(group: g.name, child: i)
                members.append(Worker(name: name, kind: kind) { _ in
                    try ScriptWorker(runtime: runtime, script: script, kind: kind, name: name, rtimerIndex: 0,
                                     asyncGroup: g.name, timers: [], states: [], start: start)
                })
            }
            groups.append((g.name, members))
            workers += members
        }
        // SIP receivers: `children` workers serve every listen socket.
        let listen = setup.listen.compactMap { try? SIPListenAddress(parsing: $0) }
        var receivers: [Worker] = []
        if !listen.isEmpty {
            let children = max(1, setup.core["children"]?.intValue ?? 8)
            let udp = listen.filter { $0.proto == .udp }.map { $0.ip.contains(":") ? "[\($0.ip)]:\($0.port)" : "\($0.ip):\($0.port)" }
            let tcp = listen.contains { $0.proto == .tcp }
            for i in 0..<children {
                let name = "sip/\(i)"
                let kind = WorkerKind.sipReceiver(child: i, udp: udp, tcp: tcp)
                receivers.append(Worker(name: name, kind: kind, pollable: true) { _ in
                    try ScriptWorker(runtime: runtime, script: script, kind: kind, name: name, rtimerIndex: 0,
                                     timers: [], states: [], start: start)
                })
            }
            workers += receivers
        }
        // DMQ workers: handle_message's queue, each with its own Lua state.
        var dmqWorkers: [Worker] = []
        if setup.dmq.serverAddress != nil && !listen.isEmpty {
            for i in 0..<setup.dmq.numWorkers {
                let name = "dmq/\(i)"
                let kind = WorkerKind.dmqWorker(child: i)
                dmqWorkers.append(Worker(name: name, kind: kind) { _ in
                    try ScriptWorker(runtime: runtime, script: script, kind: kind, name: name, rtimerIndex: 0,
                                     timers: [], states: [], start: start)
                })
            }
            workers += dmqWorkers
        }
        // glibc gives every thread that allocates an arena of its own (each with resident
        // pages); the threads that carry traffic get one each, the rest share the main one.
        let busy = receivers.count + dmqWorkers.count + groups.reduce(0) { $0 + $1.1.count }
        _ = ksr_malloc_arena_max(Int32(clamping: 1 + busy))
        for w in workers { w.start() }
        for (name, members) in groups { runtime.asyncGroups.register(name, members) }
        var failures: [ConfigError] = []
        for w in workers {
            if let failure = w.waitStarted() { failures.append(ConfigError("worker \(w.name) failed to start: \(failure)")) }
        }
        state.withLock {
            $0.workers = workers
            $0.timerStates = allStates
            $0.startedAt = WallClock.now()
        }
        if failures.isEmpty && !listen.isEmpty {
            // The receivers read the UDP sockets themselves (TCP comes from the event loop).
            let external = receivers.allSatisfy(\.isPollable)
            let transport = SIPTransport(
                configuration: .init(udpReading: external ? .external : .eventLoop), logger: Logger(label: "sip"))
            let dispatcher = SIPDispatcher(receivers, sip: runtime.sip, tm: runtime.tm)
            runtime.sip.inlineReplies.store(!setup.scriptSeesReplies, ordering: .relaxed)
            do {
                try transport.start(listen: listen) { inbound in dispatcher.dispatch(inbound) }
                if external {
                    for w in receivers {
                        w.post { body in (body as? ScriptWorker)?.readUDP(transport.makeUDPReader(), on: w) }
                    }
                }
                runtime.sip.set(transport)
                runtime.tm.timers.withLock { t in for f in setup.tmTimers { f(&t) } }
                runtime.tm.start(transport: transport)
                runtime.tm.failureRunner.withLock { $0 = Callback { job in dispatcher.post { $0.runFailureRoute(job) } } }
                logger.info("SIP: \(receivers.count) receiver workers\(external ? ", reading the UDP sockets themselves" : ", UDP read by the event loop")", metadata: ["ksr.module": "sip"])
            } catch {
                failures.append(ConfigError("SIP: \(error)"))
            }
            if failures.isEmpty && setup.dmq.serverAddress != nil {
                do {
                    let timer = try startDMQ(setup.dmq, transport: transport, workers: dmqWorkers)
                    workers.append(timer)
                    state.withLock { $0.workers = workers }
                } catch {
                    failures += error.errors
                }
            }
        }
        if !failures.isEmpty {
            stop()
            throw ConfigFailure(failures)
        }
        runtime.metrics.workers.set(Double(workers.count))
        do {
            try startControl()
        } catch {
            stop()
            throw error
        }
        logger.info("started: \(workers.count) workers, \(setup.rtimer.timers.count) timers, \(runtime.queueList.count) queues",
                    metadata: ["ksr.module": "core"])
        // Most of the binary's pages that are resident now held startup code (argument parsing,
        // configuration, module setup): a second from now, when the first callbacks have run,
        // let go of them (they stay in the page cache: what runs later comes back with a minor fault).
        _ = ksr_page_out_executable_after(1000)
    }

    /// Starts the control plane: JSON-RPC and /metrics over HTTP on `rpc_listen` and on the
    /// unix socket `rpc_socket`. An address set explicitly must work; a default one that is
    /// taken (another ksr runs) is skipped with a warning.
    func startControl() throws(ConfigFailure) {
        let core = runtime.setup.core
        let registry = rpcRegistry()
        let metrics: @Sendable () async -> String = { [self] in
            let rt = self.runtime
            return rt.metrics.render(queues: rt.queueList, dmq: rt.dmq.service)
        }
        var servers: [ControlServer] = []
        let listen = core["rpc_listen"]?.text
        let socket = core["rpc_socket"]?.text
        let tcp = listen.map { $0 == "off" ? nil : ControlDefaults.tcpAddress($0) } ?? ControlDefaults.tcpAddress(ControlDefaults.listen)
        let path = socket.map { $0 == "off" ? nil : ControlDefaults.socketPath($0) } ?? ControlDefaults.socketPath
        for (explicit, what) in [(listen != nil, "tcp"), (socket != nil, "unix")] {
            let server = ControlServer(registry: registry, metrics: metrics, logger: Logger(label: "rpc"))
            do {
                if what == "tcp" {
                    guard let tcp else { continue }
                    _ = try server.start(http: tcp, unixPath: nil)
                } else {
                    guard let path else { continue }
                    if socket == nil { Self.makePrivateDirectory(for: path) }
                    _ = try server.start(http: nil, unixPath: path)
                }
                servers.append(server)
            } catch {
                if explicit {
                    for s in servers { s.stop() }
                    throw ConfigFailure([ConfigError("control plane: \(error)")])
                }
                logger.warning("control plane: \(error) (default address; set coreparam(\"\(what == "tcp" ? "rpc_listen" : "rpc_socket")\", ...) to choose another)",
                               metadata: ["ksr.module": "rpc"])
            }
        }
        state.withLock { $0.servers = servers }
    }

    /// The default socket lives in a directory only this user can enter.
    static func makePrivateDirectory(for path: String) {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return }
        let dir = String(path[..<slash])
        if mkdir(dir, 0o700) != 0 && errno != EEXIST { return }
    }

    /// What a stop did with the queues that save at shutdown.
    public struct StopReport: Sendable {
        /// Queues whose items could not be saved in the database and went to a fallback file.
        public var queuesInFallbackFiles = 0
        /// Items lost: neither the database nor a fallback file took them.
        public var itemsLost = 0

        /// `ksr run`'s exit status: 0 all saved, 3 some queue is in a fallback file, 4 items lost.
        public var exitStatus: Int32 { itemsLost > 0 ? 4 : queuesInFallbackFiles > 0 ? 3 : 0 }
    }

    /// Stops the control plane and every worker, then saves the queues that have a database
    /// mode that saves: a failed save is retried once, then the items go to a fallback file
    /// next to the database (`ShutdownSaver`); each failure is logged as an error.
    @discardableResult
    public func stop() -> StopReport {
        let (workers, runtime, servers) = state.withLock { s in
            let w = s.workers
            let c = s.servers
            s.workers = []
            s.servers = []
            return (w, s.runtime, c)
        }
        for c in servers { c.stop() }
        // No new input first; then the workers finish what they are running (replies they
        // send now fail quietly); the transaction layer goes last, so no callback finds it gone.
        let transport = runtime.sip.transport
        // DMQ peers learn at once that this node leaves (Kamailio 5.6 sends nothing).
        if let dmq = runtime.dmq.service {
            dmq.announceShutdown()
            runtime.tm.localReplyHandler.withLock { $0 = nil }
        }
        transport?.stop()
        for w in workers { w.stop() }
        for w in workers { w.join() }
        if transport != nil {
            runtime.tm.stop()
            runtime.sip.set(nil)
            runtime.dmq.set(nil)
        }
        return saveQueues(runtime)
    }

    private func saveQueues(_ runtime: HostRuntime) -> StopReport {
        var report = StopReport()
        let toSave = runtime.queueList.filter { $0.definition.dbMode.savesAtShutdown }
        // A dbmode queue without a (valid) db_url is refused by the configuration checks.
        guard !toSave.isEmpty, let url = runtime.setup.dbURL, let path = try? SQLiteQueueStore.path(fromURL: url) else {
            return report
        }
        let saver = ShutdownSaver(databasePath: path)
        let meta: Logger.Metadata = ["ksr.module": "mqueue"]
        for q in toSave {
            let name = q.definition.name
            switch saver.save(q) {
            case .saved(let n, let firstError):
                if let firstError {
                    logger.warning("queue [\(name)]: the first save failed (\(firstError)); the retry worked", metadata: meta)
                }
                logger.info("queue [\(name)] saved in db (\(n) items)", metadata: meta)
            case .fallback(let n, let file, let error):
                report.queuesInFallbackFiles += 1
                let text = "queue [\(name)]: \(n) items NOT saved in the database \(path) (\(error); retried once); "
                    + "they are in \(file) (one JSON line per item, in queue order; README: mqueue persistence)"
                logger.error("\(text)", metadata: meta)
            case .emptyNotSaved(let error):
                logger.warning("queue [\(name)] was empty, nothing to save, but the database \(path) failed: \(error)",
                               metadata: meta)
            case .lost(let n, let error, let fallbackError):
                report.itemsLost += n
                let text = "queue [\(name)]: \(n) items LOST: NOT saved in the database \(path) (\(error); retried once) "
                    + "and the fallback file failed too (\(fallbackError))"
                logger.critical("\(text)", metadata: meta)
            }
        }
        return report
    }

    /// The running workers.
    var workers: [Worker] { state.withLock { $0.workers } }

    /// Runs `job` on a script worker's thread and returns its result.
    func onWorker<T: Sendable>(_ worker: Worker, _ job: @escaping @Sendable (ScriptWorker) -> T) async -> T? {
        await withCheckedContinuation { (cont: CheckedContinuation<T?, Never>) in
            worker.post { body in cont.resume(returning: (body as? ScriptWorker).map(job)) }
        }
    }

    // MARK: - reload

    /// The outcome of a reload.
    public struct ReloadResult: Sendable {
        public var ok: Bool
        /// Why it failed (file, line, reason), or what it did.
        public var message: String
        /// Settings that changed in the script but cannot change while running.
        public var notApplied: [String]
    }

    /// Loads the script again into fresh Lua states, runs the configuration checks, and swaps
    /// every worker only if all of them loaded it; otherwise the running script is untouched.
    /// Queues, their items, `$shv`s, each worker's `$var`s and the timers carry over.
    public func reload() async -> ReloadResult {
        let new: ScriptHost
        do {
            new = try ScriptHost.configure(options)
        } catch {
            return ReloadResult(ok: false, message: "reload failed, the running script is unchanged:\n\(error)", notApplied: [])
        }
        let old = runtime
        let blocking = Self.blockingChanges(from: old.setup, to: new.runtime.setup)
        if !blocking.isEmpty {
            return ReloadResult(
                ok: false,
                message: "reload failed, the running script is unchanged: these changes need a restart:\n"
                    + blocking.map { "  - \($0)" }.joined(separator: "\n"),
                notApplied: blocking)
        }
        let fresh = HostRuntime(setup: new.runtime.setup, modules: Self.modules, continuing: old)
        let newTimers = Dictionary(uniqueKeysWithValues: fresh.setup.rtimer.timers.map { ($0.name.lowercased(), $0) })
        let script = self.script
        var failures: [String] = []
        let workers = self.workers
        for w in workers {
            let failure = await onWorker(w) { sw -> String? in
                let timers = sw.timerNames.compactMap { newTimers[$0.lowercased()] }
                return sw.prepareReload(runtime: fresh, script: script, timers: timers)
            }
            if let f = failure ?? nil { failures.append("worker \(w.name): \(f)") }
        }
        if !failures.isEmpty {
            for w in workers { _ = await onWorker(w) { $0.abortReload() } }
            return ReloadResult(ok: false, message: "reload failed, the running script is unchanged:\n" + failures.joined(separator: "\n"),
                                notApplied: [])
        }
        for w in workers { _ = await onWorker(w) { $0.commitReload() } }
        fresh.sip.inlineReplies.store(!fresh.setup.scriptSeesReplies, ordering: .relaxed)
        state.withLock {
            $0.runtime = fresh
            $0.reloads += 1
        }
        let ignored = Self.ignoredChanges(from: old.setup, to: fresh.setup)
        for i in ignored { logger.warning("reload: \(i)", metadata: ["ksr.module": "app_lua"]) }
        logger.notice("reloaded \(script) in \(workers.count) workers", metadata: ["ksr.module": "app_lua"])
        return ReloadResult(ok: true, message: "reloaded \(script) in \(workers.count) workers", notApplied: ignored)
    }

    /// Timers and queues are fixed while running: a change there refuses the reload.
    static func blockingChanges(from old: HostSetup, to new: HostSetup) -> [String] {
        var out: [String] = []
        let o = Dictionary(uniqueKeysWithValues: old.rtimer.timers.map { ($0.name.lowercased(), $0) })
        let n = Dictionary(uniqueKeysWithValues: new.rtimer.timers.map { ($0.name.lowercased(), $0) })
        for t in new.rtimer.timers where o[t.name.lowercased()] == nil { out.append("timer '\(t.name)' added") }
        for t in old.rtimer.timers where n[t.name.lowercased()] == nil { out.append("timer '\(t.name)' removed") }
        for t in new.rtimer.timers {
            guard let before = o[t.name.lowercased()] else { continue }
            if before.interval != t.interval { out.append("timer '\(t.name)' interval \(before.interval) -> \(t.interval)") }
            if before.mode != t.mode { out.append("timer '\(t.name)' mode \(before.mode) -> \(t.mode)") }
        }
        let oq = old.queues.queues.map(\.definition)
        let nq = new.queues.queues.map(\.definition)
        if oq != nq {
            let names = { (d: [QueueDefinition]) in d.map { "\($0.name)(size=\($0.size),addmode=\($0.addMode.rawValue),dbmode=\($0.dbMode.rawValue))" }.joined(separator: ", ") }
            out.append("queues changed: [\(names(oq))] -> [\(names(nq))]")
        }
        if old.dbURL != new.dbURL { out.append("mqueue db_url changed") }
        return out
    }

    /// Settings read only at startup: a reload reports them instead of silently ignoring them.
    static func ignoredChanges(from old: HostSetup, to new: HostSetup) -> [String] {
        var out: [String] = []
        for key in Set(old.core.keys).union(new.core.keys).sorted() where old.core[key] != new.core[key] {
            out.append("core parameter '\(key)' changed: applies at the next restart")
        }
        let shvOld = old.sharedInit.map { "\($0.0)=\($0.1)" }
        let shvNew = new.sharedInit.map { "\($0.0)=\($0.1)" }
        if shvOld != shvNew { out.append("pv shvset changed: shared values are kept as they are") }
        if old.dmq != new.dmq { out.append("dmq parameters changed: they apply at the next restart") }
        return out
    }
}

extension ScriptWorker {
    /// Names of the timers this worker serves.
    var timerNames: [String] { timerDefinitions.map(\.name) }
}

/// Hands the messages the transport's event loop reads to the receiver workers: a TCP
/// connection always to the same worker so its messages stay in order, UDP round robin (only
/// when the receivers cannot read the UDP sockets themselves). Also where a UDP reply is
/// matched without the Lua state (`takeReply`), for whichever thread read it.
final class SIPDispatcher: Sendable {
    let workers: [Worker]
    let next = Atomic<Int>(0)
    let sip: SIPCore
    let tm: TMCore

    /// Messages a receiver may have waiting before new ones are dropped.
    static let queueLimit = 2048
    let dropped = Atomic<Int>(0)

    init(_ workers: [Worker], sip: SIPCore, tm: TMCore) {
        self.workers = workers
        self.sip = sip
        self.tm = tm
    }

    /// Runs a job on one receiver worker (round robin).
    func post(_ job: @escaping @Sendable (ScriptWorker) -> Void) {
        workers[nextIndex()].post { body in (body as? ScriptWorker).map(job) }
    }

    private static let statusPrefix = Array("SIP/2.0 ".utf8)

    enum InlineReply {
        /// Not a reply taken here: the worker's `handleSIP` takes it.
        case no
        /// Matched and done, or matching nothing and dropped.
        case handled
        /// Matched; its transaction's reply route must run (`ScriptWorker.continueReply`).
        case needsLua(SIPMessage, [TMCore.Table.Action])
    }

    /// A UDP reply when the script has no core reply route (nor onsend route): matched to its
    /// transaction on the thread that read it, without the Lua state; replies to the host's own
    /// requests (DMQ, t_replicate) and relayed replies without a t_on_reply route end here.
    static func takeReply(_ inbound: SIPInbound, sip core: SIPCore, tm: TMCore) -> InlineReply {
        guard inbound.connection == nil, core.inlineReplies.load(ordering: .relaxed),
              inbound.bytes.starts(with: statusPrefix), let table = tm.table,
              let sip = try? SIPMessage(inbound.bytes, framing: .datagram), !sip.isRequest else { return .no }
        switch table.receiveResponse(sip, now: SystemClock().nowNanos()) {
        case .notFound:
            return .handled
        case .matched(_, let actions):
            let needsLua = actions.contains { action in
                if case .response(_, _, _, .network, let context) = action { return context.replyRoute != nil }
                return false
            }
            if needsLua { return .needsLua(sip, actions) }
            tm.perform(actions)
            return .handled
        }
    }

    private func nextIndex() -> Int {
        (next.wrappingAdd(1, ordering: .relaxed).oldValue & Int.max) % workers.count
    }

    /// A message from the event loop (TCP; UDP too when the receivers cannot read it).
    func dispatch(_ inbound: SIPInbound) {
        switch Self.takeReply(inbound, sip: sip, tm: tm) {
        case .handled:
            return
        case .needsLua(let reply, let actions):
            post { $0.continueReply(reply, inbound, actions) }
            return
        case .no:
            break
        }
        let n = workers.count
        let i = inbound.connection.map { Int($0.id % UInt64(n)) } ?? nextIndex()
        // A receiver that is this far behind would answer after the client gave up: drop the
        // message (the client retransmits), as a full socket buffer does in Kamailio.
        if !workers[i % n].post({ body in (body as? ScriptWorker)?.handleSIP(inbound) }, limit: Self.queueLimit) {
            dropped.add(1, ordering: .relaxed)
        }
    }
}
