import Control
import KSRBase
import KSRCore
import MQueue
import RTimer
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

// The RPC methods of each module, next to the module's other declarations in spirit: each
// extension below belongs to the module it names.

extension CoreModule {
    func rpcMethods(_ host: ScriptHost) -> [RPCMethod] {
        [
            RPCMethod("core.version", doc: "The KSRHost version.") { _ in
                .string(ScriptHost.versionString)
            },
            RPCMethod("core.uptime", doc: "Current time, start time and seconds since start (Kamailio's fields).") { _ in
                let now = WallClock.now().seconds
                let since = host.startedAt.seconds
                return .object([("now", .string(PVModule.ctime(now))), ("up_since", .string(PVModule.ctime(since))),
                                ("uptime", .int(now - since))])
            },
            RPCMethod("core.psx", doc: "The workers: index, pid, description, kind and Lua memory in bytes.") { _ in
                var out: [JSONValue] = []
                for (i, w) in host.workers.enumerated() {
                    let memory = await host.onWorker(w) { $0.luaMemory } ?? 0
                    out.append(.object([
                        ("IDX", .int(i)), ("PID", .int(Int(getpid()))), ("DSC", .string(w.kind == "rtimer"
                            ? "RTIMER EXEC child=\(w.index) timer=\(w.name)" : "slow timer (rtimer mode 0)")),
                        ("KIND", .string(w.kind)), ("NAME", .string(w.name)), ("INDEX", .int(w.index)),
                        ("LUA_MEMORY", .int(memory)),
                    ]))
                }
                return .array(out)
            },
        ]
    }
}

extension MQueueModule {
    func rpcMethods(_ host: ScriptHost) -> [RPCMethod] {
        /// Kamailio's checks and codes for the queue name.
        @Sendable func queue(_ args: RPCArguments, missingCode: Int) throws(RPCError) -> MessageQueue {
            guard args.has(0) else { throw RPCError(code: missingCode, message: "No queue name") }
            let name = try args.string(0)
            guard !name.isEmpty else { throw RPCError(code: missingCode, message: "Invalid queue name") }
            guard let q = host.runtime.queues.queue(named: name) else {
                throw RPCError(code: missingCode == 400 ? 404 : 500, message: "No such queue")
            }
            return q
        }
        let nameParam = RPCParam("name", .string, optional: true, doc: "queue name")
        return [
            RPCMethod("mqueue.get_size", doc: "Number of items in a queue.", params: [nameParam]) { args throws(RPCError) in
                let q = try queue(args, missingCode: 400)
                return .object([("name", .string(q.definition.name)), ("size", .int(q.count))])
            },
            RPCMethod("mqueue.get_sizes", doc: "Name and size of every queue (newest definition first, as Kamailio).") { _ in
                .array(host.runtime.queueList.reversed().map { q in
                    .object([("name", .string(q.definition.name)), ("size", .int(q.count))])
                })
            },
            RPCMethod("mqueue.fetch", doc: "Takes the oldest item of a queue: {key, val}.", params: [nameParam]) { args throws(RPCError) in
                let q = try queue(args, missingCode: 500)
                guard let item = q.fetch() else { throw RPCError(code: 404, message: "Empty queue") }
                return .object([("key", .string(item.key)), ("val", .string(item.value))])
            },
            RPCMethod("mqueue.list", doc: "Every queue with its size, limit, add mode, db mode and counters.") { _ in
                .array(host.runtime.queueList.map { q in
                    let s = q.stats
                    return .object([
                        ("name", .string(q.definition.name)), ("size", .int(q.count)), ("limit", .int(q.definition.size)),
                        ("addmode", .int(q.definition.addMode.rawValue)), ("dbmode", .int(q.definition.dbMode.rawValue)),
                        ("adds", .int(Int(clamping: s.adds))), ("fetches", .int(Int(clamping: s.fetches))),
                        ("drops", .int(Int(clamping: s.drops))),
                    ])
                })
            },
        ]
    }
}

extension RTimerModule {
    func rpcMethods(_ host: ScriptHost) -> [RPCMethod] {
        let nameParam = RPCParam("name", .string, doc: "timer name (case-insensitive)")
        @Sendable func states(_ args: RPCArguments) throws(RPCError) -> (String, [TimerState]) {
            let name = try args.string(0)
            let found = host.timerStates.filter { $0.timer.lowercased() == name.lowercased() }
            guard let first = found.first else { throw RPCError(code: 404, message: "No such timer: \(name)") }
            return (first.timer, found)
        }
        return [
            RPCMethod("rtimer.list", doc: "Every timer: interval, mode, exec targets, and per worker ticks, lateness and overruns.") { _ in
                let all = host.timerStates
                return .array(host.runtime.setup.rtimer.timers.map { t in
                    let mine = all.filter { $0.timer == t.name }
                    return .object([
                        ("name", .string(t.name)), ("interval", .string(t.interval.description)),
                        ("interval_us", .int(Int(t.interval.nanoseconds / 1000))), ("mode", .int(t.mode)),
                        ("exec", .array(t.execs.map { .string($0.route) })),
                        ("paused", .bool(!mine.isEmpty && mine.allSatisfy(\.isPaused))),
                        ("workers", .array(mine.map { s in
                            let st = s.snapshot
                            return .object([
                                ("index", .int(s.workerIndex)), ("ticks", .int(Int(clamping: st.ticks))),
                                ("overruns", .int(Int(clamping: st.overruns))),
                                ("last_lateness_us", .int(Int(st.lastLatenessNanos / 1000))),
                                ("max_lateness_us", .int(Int(st.maxLatenessNanos / 1000))),
                            ])
                        })),
                    ])
                })
            },
            RPCMethod("rtimer.pause", doc: "Stops running a timer's execs (ticks still counted) until rtimer.resume.",
                      params: [nameParam]) { args throws(RPCError) in
                let (name, found) = try states(args)
                for s in found { s.paused.store(true, ordering: .relaxed) }
                return .object([("name", .string(name)), ("paused", .bool(true))])
            },
            RPCMethod("rtimer.resume", doc: "Runs a paused timer's execs again from its next tick.", params: [nameParam]) { args throws(RPCError) in
                let (name, found) = try states(args)
                for s in found { s.paused.store(false, ordering: .relaxed) }
                return .object([("name", .string(name)), ("paused", .bool(false))])
            },
            RPCMethod("rtimer.fire", doc: "Runs a timer's execs now, once in each of its workers (also when paused).",
                      params: [nameParam]) { args throws(RPCError) in
                let (name, _) = try states(args)
                var ran = 0
                for w in host.workers {
                    let did = await host.onWorker(w) { sw -> Bool in
                        guard let i = sw.timerIndex(name) else { return false }
                        sw.runExecs(of: i)
                        return true
                    }
                    if did == true { ran += 1 }
                }
                return .object([("name", .string(name)), ("workers", .int(ran))])
            },
        ]
    }
}

extension AppLuaModule {
    func rpcMethods(_ host: ScriptHost) -> [RPCMethod] {
        [
            RPCMethod("app_lua.reload", doc: "Loads the script again in fresh Lua states and swaps every worker only if all of them loaded it.") { _ throws(RPCError) in
                let r = await host.reload()
                guard r.ok else { throw RPCError(code: 500, message: r.message) }
                return .object([("reloaded", .string(host.script)), ("workers", .int(host.workers.count)),
                                ("not_applied", .array(r.notApplied.map { .string($0) }))])
            },
            RPCMethod("app_lua.list", doc: "The loaded script files.") { _ in
                .array([.object([("index", .int(0)), ("file", .string(host.script))])])
            },
        ]
    }
}

extension ScriptHost {
    /// Every module's RPC methods in one registry (system.listMethods is built in).
    public func rpcRegistry() -> RPCRegistry {
        let registry = RPCRegistry()
        for m in Self.modules { for method in m.rpcMethods(self) { registry.register(method) } }
        return registry
    }

    var timerStates: [TimerState] { state.withLock { $0.timerStates } }
    var startedAt: (seconds: Int, micros: Int) { state.withLock { $0.startedAt } }
}
