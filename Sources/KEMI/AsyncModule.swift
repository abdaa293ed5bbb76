import Control
import KSRBase
import KSRCore
import LuaBridge
import Synchronization
import SIPTransaction
import SIP

/// The core async worker groups (`async_workers`, `async_workers_group`): named pools of
/// workers, each with its own Lua state, that run tasks pushed by `KSR.async.task_*`.
public final class AsyncGroups: Sendable {
    private let groups = Mutex<[String: [Worker]]>([:])
    private let next = Atomic<Int>(0)

    public init() {}

    func register(_ name: String, _ workers: [Worker]) { groups.withLock { $0[name] = workers } }

    /// Hands a job to one worker of `group` (round robin); false if the group has none.
    func post(group: String, _ job: @escaping WorkerJob) -> Bool {
        guard let workers = groups.withLock({ $0[group] }), !workers.isEmpty else { return false }
        let i = next.wrappingAdd(1, ordering: .relaxed).oldValue
        workers[abs(i % workers.count)].post(job)
        return true
    }

    var names: [String] { groups.withLock { Array($0.keys).sorted() } }
}

/// One async worker group as configured.
public struct AsyncGroupConfig: Sendable, Equatable {
    public var name: String
    public var workers: Int
}

/// async: suspend a request and resume it later (with the SIP core), run tasks with data on
/// worker groups, and — beyond Kamailio — `KSR.async.sleep`/`ms_sleep`, which suspend the
/// running Lua coroutine and resume it at the next statement with every local intact.
struct AsyncModule: KEMIModule {
    let name = "async"
    let summary = "asynchronous tasks on worker groups, and coroutine sleeps"

    var params: [ModuleParam] {
        [
            ModuleParam("workers", .int, doc: "Timer workers for KSR.async.route (default 1).") { setup, v throws(ParamError) in
                guard let n = v.intValue, n >= 0 else { throw ParamError("expects a non-negative integer, got \(v)") }
                setup.asyncRouteWorkers = n
                return []
            },
            ModuleParam("ms_timer", .int, doc: "Resolution in ms of KSR.async.ms_route (0: disabled).") { setup, v throws(ParamError) in
                guard let n = v.intValue, n >= 0 else { throw ParamError("expects a non-negative integer, got \(v)") }
                setup.asyncMsTimer = n
                return []
            },
            ModuleParam("return", .int, doc: "Value the suspending functions return on success (default 0).") { setup, v throws(ParamError) in
                guard let n = v.intValue else { throw ParamError("expects an integer, got \(v)") }
                setup.asyncReturn = n
                return []
            },
        ]
    }

    var exports: [KEMIExport] {
        [
            KEMIExport("async", "route", [("callback", .str), ("seconds", .int)], returns: .int,
                       doc: "Suspends the request's transaction and runs callback() after 1..99 s (in this worker); returns modparam 'return' (0), or -1.") { ctx, args in
                Self.suspend(ctx, args, "route", .delay(seconds: Int(args.int32(2))))
            },
            KEMIExport("async", "ms_route", [("callback", .str), ("ms", .int)], returns: .int,
                       doc: "Suspends the request's transaction and runs callback() after 1..29999 ms (needs modparam ms_timer > 0); returns 0, or -1.") { ctx, args in
                Self.suspend(ctx, args, "ms_route", .delayMillis(Int(args.int32(2))))
            },
            KEMIExport("async", "task_route", [("callback", .str)], returns: .int,
                       doc: "Suspends the request's transaction and runs callback() on the default async group; returns 0, or -1.") { ctx, args in
                Self.suspend(ctx, args, "task_route", .group("default"))
            },
            KEMIExport("async", "task_group_route", [("callback", .str), ("group", .str)], returns: .int,
                       doc: "Suspends the request's transaction and runs callback() on an async group; returns 0, or -1.") { ctx, args in
                let g = args.string(2) ?? ""
                return Self.suspend(ctx, args, "task_group_route", .group(g.isEmpty ? "default" : g))
            },
            KEMIExport("async", "task_data", [("callback", .str), ("data", .str)], returns: .int,
                       doc: "Runs callback(\"async:task-data\") with data on the default async group: 1, or -1 if it has no workers.") { ctx, args in
                Self.pushTask(ctx, args, group: "default", callback: args.string(1), data: args.string(2))
            },
            KEMIExport("async", "task_group_data", [("callback", .str), ("group", .str), ("data", .str)], returns: .int,
                       doc: "Runs callback(\"async:task-data\") with data on a named async group: 1, or -1 if the group does not exist.") { ctx, args in
                let g = args.string(2) ?? ""
                return Self.pushTask(ctx, args, group: g.isEmpty ? "default" : g, callback: args.string(1), data: args.string(3))
            },
            KEMIExport("async", "get_data", returns: .xval, doc: "The data of the running task_data callback; \"\" elsewhere.") { ctx, _ in
                .string(ctx.asyncData ?? "")
            },
            KEMIExport("async", "get_gname", returns: .xval, doc: "The async group of this worker; \"\" elsewhere.") { ctx, _ in
                .string(ctx.asyncGroup ?? "")
            },
            KEMIExport("async", "sleep", [("seconds", .int)], returns: .int,
                       doc: "KSRHost: suspends this callback for whole seconds and continues at the next statement, locals intact; the worker serves other events meanwhile. Returns 1.",
                       lua: Self.sleepLua(scale: 1000, name: "sleep")),
            KEMIExport("async", "ms_sleep", [("ms", .int)], returns: .int,
                       doc: "KSRHost: suspends this callback for milliseconds and continues at the next statement, locals intact. Returns 1.",
                       lua: Self.sleepLua(scale: 1, name: "ms_sleep")),
        ]
    }

    /// Longest sleep: one day.
    static let maxSleepMillis = 86_400_000

    static func sleepLua(scale: Int, name: String) -> String {
        """
        (function(yield, isyieldable, tointeger, marker)
          return function(n)
            local v = tointeger(n)
            if v == nil or v <= 0 or v * \(scale) > \(maxSleepMillis) then
              error("KSR.async.\(name): expects a positive whole number up to \(maxSleepMillis / scale), got " .. tostring(n), 2)
            end
            if not isyieldable() then
              error("KSR.async.\(name): only inside a callback (not while the script loads)", 2)
            end
            return yield(marker, v * \(scale))
          end
        end)(coroutine.yield, coroutine.isyieldable, math.tointeger, "\(LuaState.sleepMarker)")
        """
    }

    enum Resume {
        case delay(seconds: Int)
        case delayMillis(Int)
        case group(String)
    }

    /// The four suspending functions: checks as Kamailio (faked message, limits, callback
    /// name), creates the transaction if needed, suspends it and queues the continuation.
    /// Where Kamailio accepts and then lets the request time out (unknown group, no async
    /// workers, ms_timer 0), KSRHost returns -1 with a message saying what to set.
    static func suspend(_ ctx: WorkerContext, _ args: LuaArgs, _ fn: String, _ resume: Resume) -> KEMIValue {
        let L = args.L
        guard !ctx.message.isFaked, ctx.message.sip.isRequest else {
            ctx.logUsageError(L, "async.\(fn): invalid usage for faked message (no SIP request to suspend here)")
            return .int(-1)
        }
        guard let callback = args.string(1), !callback.isEmpty else {
            ctx.logUsageError(L, "async.\(fn): missing callback name")
            return .int(-1)
        }
        guard callback.utf8.count <= 62 else {
            ctx.logUsageError(L, "async.\(fn): callback name is too long: \(callback)")
            return .int(-1)
        }
        let setup = ctx.runtime.setup
        let delayNanos: UInt64?
        switch resume {
        case .delay(let s):
            guard setup.asyncRouteWorkers > 0 else {
                ctx.logUsageError(L, "async.route: modparam(\"async\", \"workers\") is 0, so route is disabled")
                return .int(-1)
            }
            guard s > 0 else { ctx.logUsageError(L, "async.route: negative or zero sleep time (\(s))"); return .int(-1) }
            guard s < 100 else { ctx.logUsageError(L, "async.route: max sleep time is 100 sec (\(s))"); return .int(-1) }
            delayNanos = UInt64(s) * 1_000_000_000
        case .delayMillis(let ms):
            guard setup.asyncMsTimer > 0 else {
                ctx.logUsageError(L, "async.ms_route: async timer list not initialized - set modparam(\"async\", \"ms_timer\", 1)")
                return .int(-1)
            }
            guard ms > 0 else { ctx.logUsageError(L, "async.ms_route: negative or zero sleep time (\(ms))"); return .int(-1) }
            guard ms < 30_000 else { ctx.logUsageError(L, "async.ms_route: max sleep time is 30000 msec (\(ms))"); return .int(-1) }
            delayNanos = UInt64(ms) * 1_000_000
        case .group(let g):
            guard ctx.runtime.asyncGroups.names.contains(g) else {
                ctx.logUsageError(L, g == "default"
                    ? "async.\(fn): there are no async workers (set coreparam(\"async_workers\", N))"
                    : "async.\(fn): async group [\(g)] not found (set coreparam(\"async_workers_group\", \"name=\(g);workers=N\"))")
                return .int(-1)
            }
            delayNanos = nil
        }
        if ctx.message.transaction == nil {
            guard ctx.newTransaction(L) == 1 else { return .int(-1) }
        }
        guard let id = ctx.message.transaction else { return .int(-1) }
        do throws(TransactionError) {
            try ctx.suspendTransaction(id, L)
        } catch {
            ctx.logUsageError(L, "async.\(fn): cannot suspend the transaction: \(error)")
            return .int(-1)
        }
        var message = ctx.message
        message.finishWith500 = true
        let continuation = Continuation(transaction: id, callback: callback, message: message)
        switch resume {
        case .group(let g):
            _ = ctx.runtime.asyncGroups.post(group: g) { body in (body as? ScriptWorker)?.resumeSuspended(continuation) }
        case .delay, .delayMillis:
            ctx.scheduled.append((SystemClock().nowNanos() &+ (delayNanos ?? 0), continuation))
        }
        return .int(setup.asyncReturn)
    }

    static func pushTask(_ ctx: WorkerContext, _ args: LuaArgs, group: String, callback: String?, data: String?) -> KEMIValue {
        guard let callback, !callback.isEmpty else {
            ctx.logUsageError(args.L, "async: missing callback name")
            return .int(-1)
        }
        guard callback.utf8.count <= 62 else {
            ctx.logUsageError(args.L, "async: callback name is too long: \(callback)")
            return .int(-1)
        }
        let data = data ?? ""
        let pushed = ctx.runtime.asyncGroups.post(group: group) { body in
            (body as? ScriptWorker)?.runTask(callback, data: data)
        }
        guard pushed else {
            // Kamailio logs a warning, returns 1 and drops the task; KSRHost says so and fails.
            ctx.logUsageError(args.L, group == "default"
                ? "async task not run: there are no async workers (set coreparam(\"async_workers\", N))"
                : "async task not run: async group [\(group)] not found (set coreparam(\"async_workers_group\", \"name=\(group);workers=N\"))")
            return .int(-1)
        }
        return .int(1)
    }

    var pseudoVariables: [PVClass] {
        [
            PVClass("async", argument: .required, doc: "$async(data): the running task's data; $async(gname): this worker's async group (nil elsewhere).") { _, arg throws(ParamError) in
                switch arg! {
                case "data": return PVAccess(get: { $0.asyncData.map { .string($0) } ?? .null })
                case "gname": return PVAccess(get: { $0.asyncGroup.map { .string($0) } ?? .null })
                default: throw ParamError("unknown $async(\(arg!)): use data or gname")
                }
            },
        ]
    }
}
