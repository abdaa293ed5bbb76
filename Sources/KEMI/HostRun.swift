import KSRBase
import KSRCore
import Logging
import LuaBridge
import MQueue
import MQueueSQLite
import Prometheus
import RTimer
import Synchronization

extension ScriptHost {
    /// KSRHost's version.
    public static let version = "0.2.0"

    /// `ksr 0.2.0 (KEMI 2.0, Lua 5.4)`.
    public static var versionString: String { "ksr \(version) (KEMI 2.0, \(luaVersion))" }

    /// Loads persisted queues, then starts the workers; each loads the script in its own state.
    public func start() throws(ConfigFailure) {
        let runtime = self.runtime
        let setup = runtime.setup
        var store: SQLiteQueueStore?
        if let url = setup.dbURL, runtime.queueList.contains(where: { $0.definition.dbMode != .none }) {
            do {
                let s = try SQLiteQueueStore(url: url)
                store = s
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
            let name: String, kind: String, index: Int, timers: [TimerDefinition]
            switch w {
            case .shared(let t):
                (name, kind, index, timers) = ("timer", "timer", 0, t)
            case .dedicated(let timer, let i):
                (name, kind, index, timers) = ("rtimer:\(timer.name)/\(i)", "rtimer", i, [timer])
            }
            let states = timers.map { TimerState(timer: $0.name, workerIndex: index, metrics: runtime.metrics) }
            allStates += states
            let rtimerIndex = kind == "rtimer" ? index : 0
            workers.append(Worker(name: name, kind: kind, index: index) { _ in
                try ScriptWorker(runtime: runtime, script: script, kind: kind, name: name, rtimerIndex: rtimerIndex,
                                 timers: timers, states: states, start: start)
            })
        }
        for w in workers { w.start() }
        var failures: [ConfigError] = []
        for w in workers {
            if let failure = w.waitStarted() { failures.append(ConfigError("worker \(w.name) failed to start: \(failure)")) }
        }
        state.withLock {
            $0.workers = workers
            $0.timerStates = allStates
            $0.store = store
            $0.startedAt = WallClock.now()
        }
        if !failures.isEmpty {
            stop()
            throw ConfigFailure(failures)
        }
        runtime.metrics.workers.set(Double(workers.count))
        logger.info("started: \(workers.count) workers, \(setup.rtimer.timers.count) timers, \(runtime.queueList.count) queues",
                    metadata: ["ksr.module": "core"])
    }

    /// Stops every worker, then saves the queues that have a database mode that saves.
    public func stop() {
        let (workers, store, runtime) = state.withLock { s in
            let w = s.workers
            s.workers = []
            return (w, s.store, s.runtime)
        }
        for w in workers { w.stop() }
        for w in workers { w.join() }
        guard let url = runtime.setup.dbURL else { return }
        let toSave = runtime.queueList.filter { $0.definition.dbMode.savesAtShutdown }
        guard !toSave.isEmpty else { return }
        do {
            let store = try store ?? SQLiteQueueStore(url: url)
            for q in toSave {
                let n = try store.save(from: q)
                logger.info("queue [\(q.definition.name)] saved in db (\(n) items)", metadata: ["ksr.module": "mqueue"])
            }
        } catch {
            logger.error("saving queues failed: \(error)", metadata: ["ksr.module": "mqueue"])
        }
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
        return out
    }
}

extension ScriptWorker {
    /// Names of the timers this worker serves.
    var timerNames: [String] { timerDefinitions.map(\.name) }
}
