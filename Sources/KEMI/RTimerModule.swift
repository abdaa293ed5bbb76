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
