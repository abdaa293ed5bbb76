import KSRBase
import Logging
#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// How log lines are written.
public enum LogFormat: String, Sendable, CaseIterable {
    /// Kamailio-like text: ` INFO: <script> [app.lua:12]: message`
    case text
    /// One JSON object per line, for log shippers.
    case json
}

/// Kamailio's `debug` levels mapped onto swift-log's.
public enum KamailioLogLevel {
    /// `debug=N` (-5...3) as a swift-log level: 3 debug, 2 info, 1 notice, 0 warning, -1 error,
    /// -2 and below critical.
    public static func loggerLevel(debug: Int) -> Logger.Level {
        switch debug {
        case 4...: return .trace
        case 3: return .debug
        case 2: return .info
        case 1: return .notice
        case 0: return .warning
        case -1: return .error
        default: return .critical
        }
    }

    /// The level named by a `KSR.log` level word: dbg, info, notice, warn, err, crit
    /// (case-insensitive); anything else is error, as in Kamailio.
    public static func level(named name: String) -> Logger.Level {
        switch name.lowercased() {
        case "dbg": return .debug
        case "info": return .info
        case "notice": return .notice
        case "warn": return .warning
        case "err": return .error
        case "crit": return .critical
        default: return .error
        }
    }

    /// Kamailio's word for a level, as printed in text lines.
    public static func label(_ level: Logger.Level) -> String {
        switch level {
        case .trace: return "TRACE"
        case .debug: return "DEBUG"
        case .info: return "INFO"
        case .notice: return "NOTICE"
        case .warning: return "WARNING"
        case .error: return "ERROR"
        case .critical: return "CRITICAL"
        }
    }
}

/// The process-wide log threshold, changeable at run time (core `debug`).
public enum LogThreshold {
    private static let value = Atomic<UInt8>(UInt8(Logger.Level.info.rawOrder))
    public static var level: Logger.Level {
        get { Logger.Level.fromOrder(value.load(ordering: .relaxed)) }
        set { value.store(newValue.rawOrder, ordering: .relaxed) }
    }
    @inline(__always)
    public static func allows(_ level: Logger.Level) -> Bool {
        level.rawOrder >= value.load(ordering: .relaxed)
    }
}

extension Logger.Level {
    var rawOrder: UInt8 {
        switch self {
        case .trace: 0
        case .debug: 1
        case .info: 2
        case .notice: 3
        case .warning: 4
        case .error: 5
        case .critical: 6
        }
    }
    static func fromOrder(_ o: UInt8) -> Logger.Level {
        [.trace, .debug, .info, .notice, .warning, .error, .critical][Int(min(o, 6))]
    }
}

/// Writes log records to standard error as Kamailio-like text or JSON lines.
/// Metadata keys `ksr.module` and `ksr.where` fill Kamailio's `<module> [file:line]` slots.
public struct KSRLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level {
        get { LogThreshold.level }
        set { LogThreshold.level = newValue }
    }
    public let label: String
    public let format: LogFormat

    public init(label: String, format: LogFormat) {
        self.label = label
        self.format = format
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        StandardError.write(render(level: event.level, message: "\(event.message)", metadata: event.metadata))
    }

    /// One log line, with its newline, in this handler's format.
    public func render(level: Logger.Level, message text: String, metadata extra: Logger.Metadata?,
                       timestamp: String = KSRLogHandler.timestamp()) -> String {
        var merged = metadata
        if let m = extra { merged.merge(m) { _, new in new } }
        let module = merged.removeValue(forKey: "ksr.module").map { "\($0)" } ?? label
        let whereText = merged.removeValue(forKey: "ksr.where").map { "\($0)" }
        let worker = merged.removeValue(forKey: "worker").map { "\($0)" }
        var message = text
        while message.hasSuffix("\n") { message.removeLast() }
        let line: String
        switch format {
        case .text:
            var s = (worker ?? "main") + " \(KamailioLogLevel.label(level)): <\(module)>"
            if let whereText { s += " [\(whereText)]" }
            s += ": " + message
            if !merged.isEmpty {
                s += " " + merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            }
            line = s + "\n"
        case .json:
            var s = "{\"ts\":\(JSON.quote(timestamp)),\"level\":\(JSON.quote(level.rawValue))"
            s += ",\"module\":\(JSON.quote(module))"
            if let worker { s += ",\"worker\":\(JSON.quote(worker))" }
            if let whereText { s += ",\"where\":\(JSON.quote(whereText))" }
            s += ",\"msg\":\(JSON.quote(message))"
            for (k, v) in merged.sorted(by: { $0.key < $1.key }) { s += ",\(JSON.quote(k)):\(JSON.quote("\(v)"))" }
            line = s + "}\n"
        }
        return line
    }

    /// The current UTC time as ISO 8601 with milliseconds.
    public static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = ts.tv_sec
        var tmv = tm()
        gmtime_r(&t, &tmv)
        func p(_ v: Int32, _ w: Int = 2) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, w - s.count)) + s
        }
        return "\(p(tmv.tm_year + 1900, 4))-\(p(tmv.tm_mon + 1))-\(p(tmv.tm_mday))T\(p(tmv.tm_hour)):\(p(tmv.tm_min)):\(p(tmv.tm_sec)).\(p(Int32(ts.tv_nsec / 1_000_000), 3))Z"
    }
}

/// Unbuffered, whole-line writes to stderr so lines from several threads do not interleave.
public enum StandardError {
    public static func write(_ s: String) {
        var s = s
        s.withUTF8 { buf in
            var off = 0
            while off < buf.count {
                let n = Glibc.write(2, buf.baseAddress! + off, buf.count - off)
                if n <= 0 { break }
                off += n
            }
        }
    }
}

/// Sets up swift-log once for the process.
public enum KSRLogging {
    private static let done = Atomic<Bool>(false)
    public static func bootstrap(format: LogFormat, level: Logger.Level) {
        LogThreshold.level = level
        if done.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged {
            LoggingSystem.bootstrap { label in KSRLogHandler(label: label, format: format) }
        }
    }
}
