import Control
import KSRBase
import KSRCore
import RTimer

/// rtimer: named timers that call Lua functions. Parameters `timer`, `exec`,
/// `default_interval`; pseudo-variable `$rtimer_worker`. No KSR functions, as in Kamailio.
struct RTimerModule: KEMIModule {
    let name = "rtimer"
    let summary = "periodic timers that run Lua callbacks (timer, exec, default_interval)"

    var params: [ModuleParam] {
        [
            ModuleParam("timer", .string, doc: "Defines a timer: \"name=NAME;interval=N[u];mode=M\".") { setup, v throws(ParamError) in
                try setup.rtimer.addTimer(v.text)
            },
            ModuleParam("exec", .string, doc: "Runs a Lua function on a timer: \"timer=NAME;route=FUNCTION\".") { setup, v throws(ParamError) in
                try setup.rtimer.addExec(v.text)
            },
            ModuleParam("default_interval", .int, doc: "Interval in seconds for later timers without one (default 120).") { setup, v throws(ParamError) in
                guard let n = v.intValue else { throw ParamError("expects an integer, got \(v)") }
                try setup.rtimer.setDefaultInterval(n)
                return []
            },
        ]
    }

    var pseudoVariables: [PVClass] {
        [
            PVClass("rtimer_worker", doc: "Index of the dedicated rtimer worker (0..mode-1); 0 elsewhere.") { _, _ throws(ParamError) in
                PVAccess(get: { .int($0.rtimerIndex) })
            },
        ]
    }
}

// MARK: - RPC

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
                for s in found { s.setPaused(true) }
                return .object([("name", .string(name)), ("paused", .bool(true))])
            },
            RPCMethod("rtimer.resume", doc: "Runs a paused timer's execs again from its next tick.", params: [nameParam]) { args throws(RPCError) in
                let (name, found) = try states(args)
                for s in found { s.setPaused(false) }
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
