import KSRBase

// The configuration half of the rtimer engine: Kamailio's `default_interval`, `timer` and
// `exec` module parameters, parsed into definitions and a worker plan. Pure values, no Lua,
// no threads; the host turns the plan into workers and runs the callbacks.

/// How often a timer fires, as written in its `interval` parameter.
public enum TimerInterval: Sendable, Hashable, CustomStringConvertible {
    /// `interval=N`: whole seconds.
    case seconds(Int)
    /// `interval=Nu`: microseconds. Such a timer never runs on the shared mode-0 worker.
    case microseconds(Int)

    /// The interval in nanoseconds, saturating at `UInt64.max`; negative counts give 0.
    public var nanoseconds: UInt64 {
        let (count, unit): (Int, UInt64) =
            switch self {
            case .seconds(let n): (n, 1_000_000_000)
            case .microseconds(let n): (n, 1_000)
            }
        let (ns, overflow) = UInt64(clamping: count).multipliedReportingOverflow(by: unit)
        return overflow ? .max : ns
    }

    /// Whether the interval was given in microseconds (`u` suffix).
    public var isMicroseconds: Bool {
        if case .microseconds = self { return true }
        return false
    }

    /// The interval in Kamailio's syntax: `"10"` or `"500000u"`.
    public var description: String {
        switch self {
        case .seconds(let n): "\(n)"
        case .microseconds(let n): "\(n)u"
        }
    }
}

/// One `exec` parameter: run the Lua function `route` every time timer `timer` fires.
public struct ExecDefinition: Sendable, Hashable {
    /// The timer's name as it was defined (the `timer=` value matched it case-insensitively).
    public var timer: String
    /// The callback (KEMI route) name, at most ``maxRouteNameLength`` bytes.
    public var route: String

    public init(timer: String, route: String) {
        self.timer = timer
        self.route = route
    }
}

/// One `timer` parameter, with the `exec`s attached to it in declaration order.
public struct TimerDefinition: Sendable, Hashable {
    /// The name as written; names are unique case-insensitively.
    public var name: String
    /// The resolved interval (never zero when built by ``RTimerConfig``).
    public var interval: TimerInterval
    /// 0: runs on the shared timer worker. N ≥ 1: N dedicated workers, each running every
    /// exec of this timer every interval (duplication, not load sharing).
    public var mode: Int
    /// The callbacks, run in declaration order on each tick.
    public var execs: [ExecDefinition]

    public init(name: String, interval: TimerInterval, mode: Int, execs: [ExecDefinition] = []) {
        self.name = name
        self.interval = interval
        self.mode = mode
        self.execs = execs
    }
}

/// A worker the host must start for the configured timers.
public enum TimerWorker: Sendable, Hashable {
    /// The one shared worker that runs every mode-0 timer (see ``TimerSet``).
    case shared(timers: [TimerDefinition])
    /// One of the `timer.mode` dedicated workers of a mode-N timer, `index` in `0..<mode`.
    case dedicated(timer: TimerDefinition, index: Int)
}

/// The longest callback (route) name Kamailio accepts, in bytes.
public let maxRouteNameLength = 62

/// Checks a callback (route) name: not empty and at most ``maxRouteNameLength`` UTF-8 bytes.
/// The error text matches Kamailio's: `route block name is too long [NAME] (LENGTH)`.
public func validateRouteName(_ name: String) throws(ParamError) {
    let length = name.utf8.count
    guard length > 0 else { throw ParamError("missing route= in exec") }
    guard length <= maxRouteNameLength else {
        throw ParamError("route block name is too long [\(name)] (\(length))")
    }
}

/// The rtimer module parameters, accumulated in the order the configuration gives them.
///
/// - `default_interval` (seconds, default 120) applies to the `timer`s that come **after** it
///   and have no `interval` or `interval=0`.
/// - `timer`: `name=NAME;interval=N[u];mode=M`. Keys are case-insensitive; `name` is required
///   and unique (case-insensitively); `interval` is an unsigned decimal with an optional
///   `u`/`U` suffix for microseconds (0 or absent: `default_interval`, in microseconds if `u`
///   was given); `mode` is an unsigned decimal, default 0, and a microsecond timer with mode 0
///   gets mode 1. Unknown keys are accepted and reported as warnings, as Kamailio ignores them.
/// - `exec`: `timer=NAME;route=CALLBACK`. `timer` must name an earlier `timer`
///   (case-insensitively); `route` is required and at most 62 bytes.
///
/// Deliberate differences from Kamailio, which walks a parameter list last-to-first:
/// - A key given twice keeps its **first** value (Kamailio's parser agrees; its evaluation
///   order made the last one win in some cases).
/// - The microsecond rule is applied after all keys are read, so the key order does not
///   matter: `mode=2;interval=500000u` gives mode 2, as `interval=500000u;mode=2` does
///   (Kamailio gives mode 1 for the former).
/// - An `exec` without `route=` is an error (Kamailio silently uses the whole value as the
///   route name, which can never run).
/// - Several `exec`s of one timer run in **declaration** order (Kamailio runs them in reverse).
/// - `interval` and `mode` must fit in 32 bits, as Kamailio's `str2int` requires.
public struct RTimerConfig: Sendable {
    /// The interval, in seconds, for later timers without one. Starts at 120.
    public private(set) var defaultInterval: Int = 120
    /// The timers in definition order, each with its execs in declaration order.
    public private(set) var timers: [TimerDefinition] = []

    public init() {}

    /// `modparam("rtimer", "default_interval", value)`. The value must be > 0.
    public mutating func setDefaultInterval(_ value: Int) throws(ParamError) {
        guard value > 0, value <= Int(UInt32.max) else {
            throw ParamError("invalid default_interval: \(value) (must be > 0)")
        }
        defaultInterval = value
    }

    /// `modparam("rtimer", "timer", value)`. Returns warnings (unknown keys) for the host to log.
    @discardableResult
    public mutating func addTimer(_ value: String) throws(ParamError) -> [String] {
        let params = try ParamList(parsing: value)

        guard let name = params["name"], !name.isEmpty else {
            throw ParamError("invalid timer name")
        }
        if index(ofTimerNamed: name) != nil {
            throw ParamError("duplicate timer with same name: \(name)")
        }

        var count = 0
        var micro = false
        if let text = params["interval"] {
            var digits = Substring(text)
            if let last = digits.last, last == "u" || last == "U" {
                micro = true
                digits.removeLast()
            }
            guard let n = parseUnsignedDecimal(digits), n <= Int(UInt32.max) else {
                throw ParamError("invalid interval: \(text)")
            }
            count = n
        }
        if count == 0 { count = defaultInterval }

        var mode = 0
        if let text = params["mode"] {
            guard let n = parseUnsignedDecimal(text), n <= Int(UInt32.max) else {
                throw ParamError("invalid mode: \(text)")
            }
            mode = n
        }
        if micro && mode == 0 { mode = 1 }

        timers.append(
            TimerDefinition(
                name: name,
                interval: micro ? .microseconds(count) : .seconds(count),
                mode: mode))
        return Self.warnings(params, known: ["name", "interval", "mode"], in: "timer", value: value)
    }

    /// `modparam("rtimer", "exec", value)`. Returns warnings (unknown keys) for the host to log.
    @discardableResult
    public mutating func addExec(_ value: String) throws(ParamError) -> [String] {
        let params = try ParamList(parsing: value)
        guard let timerName = params["timer"], !timerName.isEmpty else {
            throw ParamError("missing timer= in exec")
        }
        guard let index = index(ofTimerNamed: timerName) else {
            throw ParamError("timer not found - name: \(timerName)")
        }
        guard let route = params["route"], !route.isEmpty else {
            throw ParamError("missing route= in exec")
        }
        try validateRouteName(route)
        timers[index].execs.append(ExecDefinition(timer: timers[index].name, route: route))
        return Self.warnings(params, known: ["timer", "route"], in: "exec", value: value)
    }

    /// The timer called `name`, compared case-insensitively.
    public func timer(named name: String) -> TimerDefinition? {
        index(ofTimerNamed: name).map { timers[$0] }
    }

    /// Where the timer called `name` (compared case-insensitively) is in `timers`.
    private func index(ofTimerNamed name: String) -> Int? {
        let key = name.lowercased()
        return timers.firstIndex { $0.name.lowercased() == key }
    }

    /// The workers to start: the shared worker first (only if some timer has mode 0), then
    /// each mode-N timer's N dedicated workers, in timer definition order.
    public var workers: [TimerWorker] {
        var result: [TimerWorker] = []
        let shared = timers.filter { $0.mode == 0 }
        if !shared.isEmpty { result.append(.shared(timers: shared)) }
        for timer in timers where timer.mode > 0 {
            for index in 0..<timer.mode {
                result.append(.dedicated(timer: timer, index: index))
            }
        }
        return result
    }

    private static func warnings(
        _ params: ParamList, known: Set<String>, in kind: String, value: String
    ) -> [String] {
        params.unknownNames(known: known).map {
            "unknown parameter '\($0)' in rtimer \(kind) definition ignored: \(value)"
        }
    }
}
