import ArgumentParser
import Control
import Dispatch
import Foundation
import KEMI
import KSRBase
import KSRCore
import Logging

#if canImport(Glibc)
import Glibc
#endif

@main
struct KSRCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ksr",
        abstract: "Runs Lua scripts written against Kamailio's KEMI API (KSR.*).",
        discussion: """
            Configuration lives in the script, in Kamailio's own words:
              modparam("rtimer", "timer", "name=ta;interval=1;mode=1;")
              modparam("rtimer", "exec", "timer=ta;route=ksr_rtimer")
            or in a kamailio.cfg given with -f (cfgengine "lua", app_lua load).
            """,
        version: KSRVersion.string,
        subcommands: [Run.self, Check.self, RPC.self, Stubs.self, Version.self],
        defaultSubcommand: nil
    )
}

enum KSRVersion {
    static var string: String { ScriptHost.version }
}

/// Options shared by `run` and `check`.
struct ScriptOptions: ParsableArguments {
    @Argument(help: "The Lua script to run.", completion: .file(extensions: ["lua"]))
    var script: String?

    @Option(name: [.customShort("f"), .long], help: "Read settings from a Kamailio config file (cfgengine \"lua\", app_lua load).",
            completion: .file(extensions: ["cfg"]))
    var cfg: String?

    @Option(name: [.customShort("A"), .customLong("define")], help: "Add a #!define for the config file: NAME or NAME=VALUE.")
    var defines: [String] = []

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical (default: from core 'debug', else info).")
    var logLevel: LogLevelArgument?

    @Option(name: .long, help: "Log format: text or json.")
    var logFormat: LogFormatArgument = .text

    func validate() throws {
        if script == nil && cfg == nil {
            throw ValidationError("give a script (ksr run app.lua) or a config file (ksr run -f kamailio.cfg)")
        }
    }

    var hostOptions: HostOptions {
        var d: [String: String] = [:]
        for def in defines {
            if let eq = def.firstIndex(of: "=") {
                d[String(def[..<eq])] = String(def[def.index(after: eq)...])
            } else {
                d[def] = ""
            }
        }
        return HostOptions(script: script, cfgFile: cfg, defines: d)
    }

    /// Logging at the command line's level (the script's `debug` is not known yet), then the
    /// configuration phase; configuration errors are printed and end the command.
    func configureHost() throws -> ScriptHost {
        bootstrapLogging(debug: nil)
        do {
            return try ScriptHost.configure(hostOptions)
        } catch {
            throw fail(error)
        }
    }

    /// Sets up logging: the command line wins over the script's core `debug`.
    func bootstrapLogging(debug: Int?) {
        let level = logLevel?.level ?? debug.map { KamailioLogLevel.loggerLevel(debug: $0) } ?? .info
        KSRLogging.bootstrap(format: logFormat.format, level: level)
    }
}

struct LogLevelArgument: ExpressibleByArgument {
    let level: Logger.Level
    init?(argument: String) {
        switch argument.lowercased() {
        case "dbg": level = .debug
        case "warn": level = .warning
        case "err": level = .error
        case "crit": level = .critical
        default:
            guard let l = Logger.Level(rawValue: argument.lowercased()) else { return nil }
            level = l
        }
    }
    static var allValueStrings: [String] { Logger.Level.allCases.map(\.rawValue) }
}

struct LogFormatArgument: ExpressibleByArgument {
    let format: LogFormat
    init?(argument: String) {
        guard let f = LogFormat(rawValue: argument) else { return nil }
        format = f
    }
    static var allValueStrings: [String] { LogFormat.allCases.map(\.rawValue) }
    static let text = LogFormatArgument(argument: "text")!
    var defaultValueDescription: String { format.rawValue }
}

extension LogFormatArgument: CustomStringConvertible {
    var description: String { format.rawValue }
}

/// Runs a reload from a synchronous context (the signal loop) and waits for it.
func blockingReload(_ host: ScriptHost) -> ScriptHost.ReloadResult {
    let box = ResultBox()
    let done = DispatchSemaphore(value: 0)
    Task {
        box.set(await host.reload())
        done.signal()
    }
    done.wait()
    return box.get()
}

final class ResultBox: @unchecked Sendable {
    private var value: ScriptHost.ReloadResult?
    private let lock = NSLock()
    func set(_ v: ScriptHost.ReloadResult) { lock.lock(); value = v; lock.unlock() }
    func get() -> ScriptHost.ReloadResult { lock.lock(); defer { lock.unlock() }; return value! }
}

/// Prints configuration errors the way a compiler does and exits non-zero.
func fail(_ failure: ConfigFailure) -> ExitCode {
    for e in failure.errors { StandardError.write("ksr: error: \(e)\n") }
    return ExitCode(1)
}

extension KSRCommand {
    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a script until SIGINT or SIGTERM.",
            discussion: """
                The script is loaded once to read its configuration, then once in every worker.
                Exit status: 0 stopped cleanly; 1 configuration error; 3 stopped, but a queue could not be
                saved in the mqueue database and its items are in a fallback file next to it
                (<db>.unsaved-<queue>-<time>.jsonl); 4 stopped and queue items were lost (not even
                the fallback file could be written).
                """)

        @OptionGroup var options: ScriptOptions

        func run() throws {
            // Block the stop signals in every thread; the main thread waits for them below.
            var set = sigset_t()
            sigemptyset(&set)
            sigaddset(&set, SIGINT)
            sigaddset(&set, SIGTERM)
            sigaddset(&set, SIGHUP)
            pthread_sigmask(SIG_BLOCK, &set, nil)

            let host = try options.configureHost()
            options.bootstrapLogging(debug: host.runtime.setup.core["debug"]?.intValue)
            let logger = Logger(label: "core")
            for w in host.warnings { logger.warning("\(w)", metadata: ["ksr.module": "config"]) }
            do {
                try host.start()
            } catch {
                throw fail(error)
            }
            var sig: Int32 = 0
            while true {
                sigwait(&set, &sig)
                guard sig == SIGHUP else { break }
                logger.notice("SIGHUP received: reloading \(host.script)", metadata: ["ksr.module": "core"])
                let result = blockingReload(host)
                if !result.ok { logger.error("\(result.message)", metadata: ["ksr.module": "app_lua"]) }
            }
            logger.notice("signal \(sig == SIGINT ? "SIGINT" : "SIGTERM") received: stopping", metadata: ["ksr.module": "core"])
            let report = host.stop()
            guard report.exitStatus == 0 else {
                // Queue items not saved in the database: a fallback file (3) or lost (4).
                let what = report.itemsLost > 0
                    ? "queue items lost: \(report.itemsLost)" : "queues only in fallback files: \(report.queuesInFallbackFiles)"
                logger.error("stopped; exit status \(report.exitStatus): \(what)", metadata: ["ksr.module": "core"])
                throw ExitCode(report.exitStatus)
            }
            logger.notice("stopped", metadata: ["ksr.module": "core"])
        }
    }

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a script's (or config file's) configuration and exit.",
            discussion: "Exits 0 when the configuration is valid; otherwise prints each error with file and line and exits 1.")

        @OptionGroup var options: ScriptOptions

        func run() throws {
            let host = try options.configureHost()
            for w in host.warnings { StandardError.write("ksr: warning: \(w)\n") }
            print("\(host.script): OK (\(host.timerCount) timers, \(host.runtime.queueList.count) queues)")
        }
    }

    struct RPC: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Call a JSON-RPC method of a running ksr (Kamailio's method names).",
            discussion: """
                Parameters are sent as integers when they look like one, else as strings; prefix
                s: to force a string (s:123) and i: to force an integer, as kamcmd does.
                Examples:
                  ksr rpc system.listMethods
                  ksr rpc mqueue.get_size myq
                  ksr rpc --url http:127.0.0.1:5064 rtimer.pause ta
                By default ksr rpc uses the unix socket a ksr started with default settings
                opens (\(ControlDefaults.socketPath)), then \(ControlDefaults.listen).
                """)

        @Option(name: .long, help: "The unix socket of the running ksr (coreparam rpc_socket).")
        var socket: String?

        @Option(name: .long, help: "The HTTP address of the running ksr (coreparam rpc_listen), e.g. http:127.0.0.1:5064.")
        var url: String?

        @Option(name: .long, help: "Seconds to wait for the answer.")
        var timeout: Double = 30

        @Argument(help: "The method, e.g. mqueue.get_size.")
        var method: String

        @Argument(help: "The method's parameters.")
        var params: [String] = []

        func validate() throws {
            if socket != nil && url != nil { throw ValidationError("give --socket or --url, not both") }
            if let url, RPCEndpoint(parsing: url) == nil { throw ValidationError("cannot read --url \(url): use http:HOST:PORT") }
        }

        func run() throws {
            let values: [JSONValue] = params.map { p in
                if p.hasPrefix("s:") { return .string(String(p.dropFirst(2))) }
                if p.hasPrefix("i:"), let i = Int(p.dropFirst(2)) { return .int(i) }
                if let i = Int(p) { return .int(i) }
                return .string(p)
            }
            var endpoints: [RPCEndpoint] = []
            if let socket { endpoints = [.unix(path: ControlDefaults.socketPath(socket))] }
            else if let url, let e = RPCEndpoint(parsing: url) { endpoints = [e] }
            else {
                endpoints = [.unix(path: ControlDefaults.socketPath)]
                if let t = ControlDefaults.tcpAddress(ControlDefaults.listen) { endpoints.append(.http(host: t.host, port: t.port)) }
            }
            var lastError: (any Error)?
            for (i, endpoint) in endpoints.enumerated() {
                do {
                    let result = try RPCClient.call(endpoint, method: method, params: values, timeout: timeout)
                    print(result.jsonString(pretty: true))
                    return
                } catch let e as RPCError {
                    StandardError.write("ksr rpc: error \(e.code): \(e.message)\n")
                    throw ExitCode(1)
                } catch {
                    lastError = error
                    // Only fall through to the next default endpoint when nothing answered.
                    if i == endpoints.count - 1 { break }
                }
            }
            StandardError.write("ksr rpc: \(lastError.map { "\($0)" } ?? "no endpoint")\n")
            throw ExitCode(2)
        }
    }

    struct Stubs: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print lua-language-server annotations (---@meta) for every KSR function.")

        func run() throws {
            print(KEMI.Stubs.generate(), terminator: "")
        }
    }

    struct Version: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the version.")

        func run() throws {
            print("ksr \(KSRVersion.string) (KEMI 2.0, \(ScriptHost.luaVersion))")
        }
    }
}
