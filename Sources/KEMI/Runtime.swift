import KSRBase
import KSRCore
import MQueue
import RTimer
import Synchronization
import SIPTransport
import SIPTransaction

/// Settings collected during the configuration phase (one thread, before any worker starts).
public final class HostSetup: @unchecked Sendable {
    /// Script files to load (app_lua `load`, or the script given on the command line).
    public var scripts: [String] = []
    /// Core parameters (`coreparam` or kamailio.cfg globals), last value wins; `listen` repeats.
    public var core: [String: ParamValue] = [:]
    public var listen: [String] = []
    public var loadedModules: [String] = []
    public var rtimer = RTimerConfig()
    public let queues = QueueRegistry()
    public var mqueueSize = 0
    public var mqueueAddMode = 0
    public var dbURL: String?
    /// Initial `$shv` values (pv `shvset`), in order.
    public var sharedInit: [(String, PVValue)] = []
    /// Initial `$var` values (pv `varset`), in order.
    public var varInit: [(String, PVValue)] = []
    public var warnings: [String] = []
    /// Configuration errors found so far (all are reported, then startup stops).
    public var errors: [ConfigError] = []
    /// async: timer workers for `route`, ms resolution for `ms_route`, the suspending
    /// functions' success value, and the core async worker groups.
    public var asyncRouteWorkers = 1
    public var asyncMsTimer = 0
    public var asyncReturn = 0
    public var asyncDefaultWorkers: Int?
    public var asyncGroups: [AsyncGroupConfig] = []
    /// dmq module parameters.
    public var dmq = DMQSettings()
    /// The script defines `ksr_reply_route` or `ksr_onsend_route`: every reply must reach Lua.
    public var scriptSeesReplies = true

    /// The async groups to start: `default` (async_workers, or 1 when only named groups are
    /// set, as Kamailio does) and the named ones.
    public var effectiveAsyncGroups: [AsyncGroupConfig] {
        var out: [AsyncGroupConfig] = []
        let named = asyncGroups.filter { $0.name != "default" }
        let defaultSize = asyncGroups.last { $0.name == "default" }?.workers ?? asyncDefaultWorkers ?? (named.isEmpty ? 0 : 1)
        if defaultSize > 0 { out.append(AsyncGroupConfig(name: "default", workers: defaultSize)) }
        return out + named
    }

    /// tm timer settings (`fr_timer`, `fr_inv_timer`), applied in order at start.
    public var tmTimers: [@Sendable (inout TransactionTimers) -> Void] = []

    /// `#!define`s of a kamailio.cfg (`KSR.kx.get_def`).
    public var defines: [String: String] = [:]
    /// Where each setting came from, for later checks: (module, param, location, value).
    public var records: [(module: String, param: String, location: SourceLocation, value: ParamValue)] = []

    public init() {}

    public var debugLevel: Int { core["debug"]?.intValue ?? 2 }
}

/// A `$shv` cell, shared by every worker.
public final class SharedCell: Sendable {
    let value: Mutex<PVValue>
    init(_ v: PVValue) { value = Mutex(v) }
}

/// `$shv(name)` values shared by all workers. Every name is shared, declared or not
/// (Kamailio 5.6 keeps names first used inside a worker private to that process).
public final class SharedVars: Sendable {
    private let cells = Mutex<[String: SharedCell]>([:])
    public init() {}
    /// The cell for `name`, created (integer 0) on first use.
    public func cell(_ name: String) -> SharedCell {
        cells.withLock { c in
            if let cell = c[name] { return cell }
            let cell = SharedCell(.int(0))
            c[name] = cell
            return cell
        }
    }
}

/// What every worker shares: the settings, the engines and the declarations.
public final class HostRuntime: Sendable {
    public let setup: HostSetup
    public let modules: [any KEMIModule]
    public let exports: [KEMIExport]
    public let pvClasses: [String: PVClass]
    public let queues: QueueRegistry
    public let queueIndex: [String: Int]
    /// The queues in definition order (indexed by `queueIndex`), fixed at startup.
    public let queueList: [MessageQueue]
    public let shared: SharedVars
    public let metrics: HostMetrics
    public let asyncGroups: AsyncGroups
    /// The SIP transport, set once the host has started it.
    public let sip: SIPCore
    /// The transaction layer (tm).
    public let tm: TMCore
    /// DMQ, once started (nil service when not configured).
    public let dmq: DMQCore
    public let startTime: (seconds: Int, micros: Int)

    /// A runtime for `setup`; a reload passes the running one so that queues, `$shv`s,
    /// metrics and the start time carry over.
    public init(setup: HostSetup, modules: [any KEMIModule], continuing previous: HostRuntime? = nil) {
        self.setup = setup
        self.modules = modules
        self.exports = modules.flatMap(\.exports)
        var classes: [String: PVClass] = [:]
        for m in modules { for c in m.pseudoVariables { classes[c.name] = c } }
        self.pvClasses = classes
        self.queues = previous?.queues ?? setup.queues
        var index: [String: Int] = [:]
        for (i, q) in queues.queues.enumerated() { index[q.definition.name] = i }
        self.queueIndex = index
        self.queueList = queues.queues
        self.shared = previous?.shared ?? SharedVars()
        self.metrics = previous?.metrics ?? HostMetrics()
        self.asyncGroups = previous?.asyncGroups ?? AsyncGroups()
        self.sip = previous?.sip ?? SIPCore()
        self.tm = previous?.tm ?? TMCore()
        self.dmq = previous?.dmq ?? DMQCore()
        self.startTime = previous?.startTime ?? WallClock.now()
        if previous == nil {
            for (name, v) in setup.sharedInit { shared.cell(name).value.withLock { $0 = v } }
        }
    }

    /// Parses `$name`, `$name(arg)` or `$(name(arg))` and resolves it for a worker. An argument
    /// that holds a PV (`$mqk($var(q))`) is evaluated at each access.
    func resolvePV(_ spec: String, in ctx: WorkerContext) throws(ParamError) -> PVAccess {
        var s = Substring(spec.trimmingSpaces())
        guard s.hasPrefix("$") else { throw ParamError("a pseudo-variable starts with '$'") }
        s = s.dropFirst()
        if s.hasPrefix("("), s.hasSuffix(")") { s = s.dropFirst().dropLast() }
        let name: Substring
        var arg: Substring?
        if let open = s.firstIndex(of: "(") {
            guard s.hasSuffix(")") else { throw ParamError("missing ')'") }
            name = s[..<open]
            arg = s[s.index(after: open)..<s.index(before: s.endIndex)]
        } else {
            name = s
        }
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
            throw ParamError("bad name")
        }
        guard let cls = pvClasses[String(name)] else { throw ParamError("unknown pseudo-variable $\(name)") }
        switch (cls.argument, arg) {
        case (.none, .some): throw ParamError("$\(name) takes no argument")
        case (.required, .none): throw ParamError("$\(name) needs an argument: $\(name)(...)")
        default: break
        }
        if let a = arg, a.contains("$") {
            // Dynamic argument: evaluate the inner PV, then resolve by its value each time.
            let inner = try resolvePV(String(a), in: ctx)
            return PVAccess(
                get: { c in
                    guard let v = inner.value(c).text, let acc = try? cls.resolve(c, v) else { return .null }
                    return acc.value(c)
                },
                set: { c, value in
                    guard let v = inner.value(c).text, let acc = try? cls.resolve(c, v) else { return false }
                    return acc.assign(c, value)
                })
        }
        return try cls.resolve(ctx, arg.map(String.init))
    }
}

/// The host's SIP transport and receiver workers, shared with every worker.
public final class SIPCore: Sendable {
    private let state = Mutex<SIPTransport?>(nil)
    /// Replies may be matched to their transaction on the receiving thread (the script has no
    /// core reply or onsend route); set at start and at each reload.
    let inlineReplies = Atomic<Bool>(false)
    public init() {}
    public var transport: SIPTransport? { state.withLock { $0 } }
    func set(_ t: SIPTransport?) { state.withLock { $0 = t } }
}
