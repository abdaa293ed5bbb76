import KSRBase
import KSRCore
import Logging
import LuaBridge
import MQueue
import MQueueSQLite
import RTimer
import Synchronization
import Control

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
        [CoreModule(), PVModule(), KemixModule(), SLModule(), TMModule(), HdrModule(), RTimerModule(), MQueueModule(), AsyncModule(),
         DMQModule(), AppLuaModule(), ConfigModule()]
        + CompatModule.all

    /// The running configuration; replaced by a successful reload.
    public var runtime: HostRuntime { state.withLock { $0.runtime } }
    public let script: String
    public let warnings: [String]
    let options: HostOptions
    let logger = Logger(label: "core")
    let state: Mutex<State>

    struct State {
        var runtime: HostRuntime
        var workers: [Worker] = []
        var timerStates: [TimerState] = []
        var startedAt: (seconds: Int, micros: Int) = WallClock.now()
        var reloads = 0
        var servers: [ControlServer] = []
    }

    private init(runtime: HostRuntime, script: String, warnings: [String], options: HostOptions) {
        self.state = Mutex(State(runtime: runtime))
        self.script = script
        self.warnings = warnings
        self.options = options
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
            let ctx = WorkerContext(lua: lua, runtime: configRuntime, phase: .config, kind: .config, name: "config", setup: setup)
            try withExtendedLifetime(ctx) { () throws(LuaError) in
                lua.setContext(Unmanaged.passUnretained(ctx).toOpaque())
                try KSRTable.install(ctx)
                try lua.runFile(script)
                checkCallbacks(setup, lua)
                DMQModule.check(setup) { lua.hasGlobalFunction($0) }
                setup.scriptSeesReplies = lua.hasGlobalFunction("ksr_reply_route") || lua.hasGlobalFunction("ksr_onsend_route")
            }
        } catch {
            setup.errors.append(ConfigError("cannot load the script: \(error.message)",
                                            at: SourceLocation(file: script, line: 0),
                                            context: error.traceback.map { "\n" + $0 }))
        }
        checkQueues(setup)
        if !setup.errors.isEmpty { throw ConfigFailure(setup.errors) }
        return ScriptHost(runtime: HostRuntime(setup: setup, modules: modules), script: script, warnings: setup.warnings,
                          options: options)
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

    /// How many rtimer timers the configuration defines.
    public var timerCount: Int { runtime.setup.rtimer.timers.count }

    /// The Lua version scripts run on.
    public static var luaVersion: String { LuaVersion.string }

}

