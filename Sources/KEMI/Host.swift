import KSRBase
import KSRCore
import Logging
import LuaBridge
import MQueue
import MQueueSQLite
import RTimer

#if canImport(Glibc)
import Glibc
#endif

/// What `ksr run` and `ksr check` are asked to do.
public struct HostOptions: Sendable {
    /// The Lua script; if nil, the one `-f kamailio.cfg` loads with app_lua `load`.
    public var script: String?
    /// A Kamailio config file to read settings from.
    public var cfgFile: String?
    /// Extra `#!define`s for the config file (`-A NAME[=VALUE]`).
    public var defines: [String: String]

    public init(script: String? = nil, cfgFile: String? = nil, defines: [String: String] = [:]) {
        self.script = script
        self.cfgFile = cfgFile
        self.defines = defines
    }
}

/// Startup failed: every configuration error found, each with its file and line.
public struct ConfigFailure: Error, CustomStringConvertible {
    public var errors: [ConfigError]
    public init(_ errors: [ConfigError]) { self.errors = errors }
    public var description: String { errors.map(\.description).joined(separator: "\n") }
}

/// The host: configuration phase, workers, shutdown.
public final class ScriptHost: @unchecked Sendable {
    /// Every module KSRHost provides, in the order their exports are numbered.
    public static let modules: [any KEMIModule] =
        [CoreModule(), PVModule(), KemixModule(), RTimerModule(), MQueueModule(), AppLuaModule(), ConfigModule()]
        + CompatModule.all

    public let runtime: HostRuntime
    public let script: String
    public let warnings: [String]
    private var workers: [Worker] = []
    private var store: SQLiteQueueStore?
    private let logger = Logger(label: "core")

    private init(runtime: HostRuntime, script: String, warnings: [String]) {
        self.runtime = runtime
        self.script = script
        self.warnings = warnings
    }

    // MARK: - configuration phase

    /// Reads the configuration (kamailio.cfg, then the script's top level in a Lua state of its
    /// own) and checks it: parameters, timers and their Lua functions, queues, database URL.
    public static func configure(_ options: HostOptions) throws(ConfigFailure) -> ScriptHost {
        let setup = HostSetup()
        setup.defines = options.defines
        if let cfg = options.cfgFile { try readConfigFile(cfg, options: options, into: setup) }
        guard let script = resolveScript(options, setup) else {
            throw ConfigFailure([ConfigError(
                options.cfgFile == nil
                    ? "no script given: ksr run SCRIPT.lua, or ksr run -f kamailio.cfg"
                    : "the config file loads no Lua script: add modparam(\"app_lua\", \"load\", \"/path/script.lua\")",
                at: options.cfgFile.map { SourceLocation(file: $0, line: 0) })])
        }
        guard fileReadable(script) else {
            throw ConfigFailure([ConfigError("cannot read the script: \(script)")])
        }

        // Run the script's top level once, in a configuration state.
        let configRuntime = HostRuntime(setup: setup, modules: modules)
        do {
            let lua = try LuaState()
            let ctx = WorkerContext(lua: lua, runtime: configRuntime, phase: .config, kind: "config", name: "config", setup: setup)
            try withExtendedLifetime(ctx) { () throws(LuaError) in
                lua.setContext(Unmanaged.passUnretained(ctx).toOpaque())
                try KSRTable.install(ctx)
                try lua.runFile(script)
                checkCallbacks(setup, lua)
            }
        } catch {
            setup.errors.append(ConfigError("cannot load the script: \(error.message)",
                                            at: SourceLocation(file: script, line: 0),
                                            context: error.traceback.map { "\n" + $0 }))
        }
        checkQueues(setup)
        if !setup.errors.isEmpty { throw ConfigFailure(setup.errors) }
        return ScriptHost(runtime: HostRuntime(setup: setup, modules: modules), script: script, warnings: setup.warnings)
    }

    private static func resolveScript(_ options: HostOptions, _ setup: HostSetup) -> String? {
        if let s = options.script { return s }
        guard let last = setup.scripts.last else { return nil }
        if last.hasPrefix("/") || fileReadable(last) { return last }
        if let cfg = options.cfgFile, let slash = cfg.lastIndex(of: "/") {
            let candidate = String(cfg[...slash]) + last
            if fileReadable(candidate) { return candidate }
        }
        return last
    }

    private static func readConfigFile(_ path: String, options: HostOptions, into setup: HostSetup) throws(ConfigFailure) {
        let directives: [KamailioConfigFile.Directive]
        do {
            let file = try KamailioConfigFile.read(path: path, defines: options.defines)
            directives = file.directives
            setup.defines = file.defines
        } catch {
            throw ConfigFailure([error])
        }
        var engine: (String, SourceLocation)?
        for d in directives {
            do throws(ConfigError) {
                switch d.kind {
                case .global(let name, let value):
                    try Config.coreparam(name, paramValue(value), setup: setup, at: d.location)
                case .loadmodule(let name):
                    try Config.loadModule(name, setup: setup, modules: modules, at: d.location)
                case .loadpath:
                    break
                case .modparam(let module, let param, let value):
                    try Config.modparam(module, param, paramValue(value), setup: setup, modules: modules, at: d.location)
                case .cfgengine(let name):
                    engine = (name, d.location)
                    if name != "lua" {
                        throw ConfigError("cfgengine \"\(name)\" is not supported: KSRHost runs Lua (cfgengine \"lua\")", at: d.location)
                    }
                }
            } catch {
                setup.errors.append(error)
            }
        }
        if engine == nil && options.script == nil {
            setup.errors.append(ConfigError("the config file has no cfgengine \"lua\" line: KSRHost runs KEMI Lua scripts only",
                                            at: SourceLocation(file: path, line: 0)))
        }
    }

    private static func paramValue(_ v: CfgValue) -> ParamValue {
        switch v {
        case .int(let i): return .int(i)
        case .string(let s): return .string(s)
        case .token(let t): return .string(t)
        }
    }

    /// Every exec must name a Lua function the script defines.
    private static func checkCallbacks(_ setup: HostSetup, _ lua: LuaState) {
        for r in setup.records where r.module == "rtimer" && r.param == "exec" {
            guard let params = try? ParamList(parsing: r.value.text), let route = params["route"] else { continue }
            if !lua.hasGlobalFunction(route) {
                setup.errors.append(ConfigError(
                    "rtimer exec names the Lua function '\(route)', which the script does not define",
                    at: r.location, context: "modparam(\"rtimer\", \"exec\", \"\(r.value.text)\")"))
            }
        }
        for t in setup.rtimer.timers where t.execs.isEmpty {
            setup.warnings.append("rtimer timer '\(t.name)' has no exec: it will run nothing")
        }
    }

    private static func checkQueues(_ setup: HostSetup) {
        guard setup.queues.queues.contains(where: { $0.definition.dbMode != .none }) else { return }
        guard let url = setup.dbURL else { return }
        do throws(ParamError) {
            _ = try SQLiteQueueStore.path(fromURL: url)
            try SQLiteQueueStore.checkTableNames(setup.queues.queues.map(\.definition).filter { $0.dbMode != .none })
        } catch {
            let loc = setup.records.first { $0.module == "mqueue" && $0.param == "db_url" }?.location
            setup.errors.append(ConfigError(error.message, at: loc, context: "modparam(\"mqueue\", \"db_url\", \"\(url)\")"))
        }
    }

    static func fileReadable(_ path: String) -> Bool {
        access(path, R_OK) == 0
    }

    // MARK: - running

    /// Loads persisted queues, then starts the workers; each loads the script in its own state.
    public func start() throws(ConfigFailure) {
        let setup = runtime.setup
        if let url = setup.dbURL, runtime.queueList.contains(where: { $0.definition.dbMode != .none }) {
            do {
                let store = try SQLiteQueueStore(url: url)
                self.store = store
                for q in runtime.queueList where q.definition.dbMode.loadsAtStartup {
                    let n = try store.load(into: q)
                    logger.info("loaded \(n) items of queue [\(q.definition.name)] from the database", metadata: ["ksr.module": "mqueue"])
                }
            } catch {
                throw ConfigFailure([ConfigError("mqueue database: \(error)")])
            }
        }
        let start = SystemClock().nowNanos()
        let runtime = self.runtime
        let script = self.script
        for w in setup.rtimer.workers {
            switch w {
            case .shared(let timers):
                workers.append(Worker(name: "timer", kind: "timer", index: 0) { _ in
                    try ScriptWorker(runtime: runtime, script: script, kind: "timer", name: "timer", rtimerIndex: 0,
                                     timers: timers, start: start)
                })
            case .dedicated(let timer, let index):
                let name = "rtimer:\(timer.name)/\(index)"
                workers.append(Worker(name: name, kind: "rtimer", index: index) { _ in
                    try ScriptWorker(runtime: runtime, script: script, kind: "rtimer", name: name, rtimerIndex: index,
                                     timers: [timer], start: start)
                })
            }
        }
        for w in workers { w.start() }
        var failures: [ConfigError] = []
        for w in workers {
            if let failure = w.waitStarted() { failures.append(ConfigError("worker \(w.name) failed to start: \(failure)")) }
        }
        if !failures.isEmpty {
            stop()
            throw ConfigFailure(failures)
        }
        logger.info("started: \(workers.count) workers, \(setup.rtimer.timers.count) timers, \(runtime.queueList.count) queues",
                    metadata: ["ksr.module": "core"])
    }

    /// Stops every worker, then saves the queues that have a database mode that saves.
    public func stop() {
        for w in workers { w.stop() }
        for w in workers { w.join() }
        workers.removeAll()
        guard let url = runtime.setup.dbURL else { return }
        let toSave = runtime.queueList.filter { $0.definition.dbMode.savesAtShutdown }
        guard !toSave.isEmpty else { return }
        do {
            let store = try self.store ?? SQLiteQueueStore(url: url)
            for q in toSave {
                let n = try store.save(from: q)
                logger.info("queue [\(q.definition.name)] saved in db (\(n) items)", metadata: ["ksr.module": "mqueue"])
            }
        } catch {
            logger.error("saving queues failed: \(error)", metadata: ["ksr.module": "mqueue"])
        }
    }

    /// How many rtimer timers the configuration defines.
    public var timerCount: Int { runtime.setup.rtimer.timers.count }

    /// The Lua version scripts run on.
    public static var luaVersion: String { LuaVersion.string }

    /// Worker names and kinds, for status output.
    public var workerNames: [String] { workers.map(\.name) }
}

/// A worker that runs the script: its own Lua state, loaded once, and the timers it serves.
final class ScriptWorker: WorkerBody {
    let lua: LuaState
    let ctx: WorkerContext
    private var timerSet = TimerSet<Int>()
    private let timers: [TimerDefinition]
    private let logger: Logger

    init(runtime: HostRuntime, script: String, kind: String, name: String, rtimerIndex: Int,
         timers: [TimerDefinition], start: UInt64) throws {
        lua = try LuaState()
        ctx = WorkerContext(lua: lua, runtime: runtime, phase: .loading, kind: kind, name: name, rtimerIndex: rtimerIndex)
        lua.setContext(Unmanaged.passUnretained(ctx).toOpaque())
        try KSRTable.install(ctx)
        for (n, v) in runtime.setup.varInit {
            if let acc = ctx.pv("$var(\(n))") { _ = acc.assign(ctx, v) }
        }
        try lua.runFile(script)
        ctx.phase = .running
        self.timers = timers
        for (i, t) in timers.enumerated() {
            timerSet.add(i, schedule: PeriodicSchedule(start: start, interval: t.interval.nanoseconds))
        }
        var l = Logger(label: "rtimer")
        l[metadataKey: "worker"] = .string(name)
        logger = l
    }

    func nextDeadline() -> UInt64? { timerSet.nextDeadline }

    func fireDue(now: UInt64) {
        for (id, tick) in timerSet.fireDue(now: now) {
            let timer = timers[id]
            // A late tick runs once; missed deadlines are skipped, not stacked up.
            if tick.skipped > 0 || tick.lateness > timer.interval.nanoseconds / 2 {
                logger.debug("timer [\(timer.name)] late by \(tick.lateness / 1000) µs, \(tick.skipped) ticks skipped",
                             metadata: ["ksr.module": "rtimer"])
            }
            for exec in timer.execs { run(exec.route, "rtimer") }
        }
    }

    /// Runs one event callback as a coroutine; errors are logged with the traceback.
    func run(_ function: String, _ argument: String) {
        ctx.eventTime = WallClock.now()
        ctx.dropRequested = false
        switch lua.callGlobal(function, args: [argument]) {
        case .returned:
            break
        case .missing:
            logger.debug("no such function [\(function)] in lua scripts", metadata: ["ksr.module": "app_lua"])
        case .failed(let error):
            logger.error("error from Lua: \(error.traceback ?? error.message)", metadata: ["ksr.module": "app_lua"])
        case .yielded(let co):
            lua.discard(co)
            logger.error("[\(function)] yielded, but nothing can resume it here: the callback was abandoned",
                         metadata: ["ksr.module": "app_lua"])
        }
    }

    func shutdown() {}
}
