import ArgumentParser
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
        subcommands: [Run.self, Check.self, Stubs.self, Version.self],
        defaultSubcommand: nil
    )
}

enum KSRVersion {
    static let string = "0.1.0"
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

/// Prints configuration errors the way a compiler does and exits non-zero.
func fail(_ failure: ConfigFailure) -> ExitCode {
    for e in failure.errors { StandardError.write("ksr: error: \(e)\n") }
    return ExitCode(1)
}

extension KSRCommand {
    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a script until SIGINT or SIGTERM.",
            discussion: "The script is loaded once to read its configuration, then once in every worker.")

        @OptionGroup var options: ScriptOptions

        func run() throws {
            // Block the stop signals in every thread; the main thread waits for them below.
            var set = sigset_t()
            sigemptyset(&set)
            sigaddset(&set, SIGINT)
            sigaddset(&set, SIGTERM)
            pthread_sigmask(SIG_BLOCK, &set, nil)

            options.bootstrapLogging(debug: nil)
            let host: ScriptHost
            do {
                host = try ScriptHost.configure(options.hostOptions)
            } catch {
                throw fail(error)
            }
            options.bootstrapLogging(debug: host.runtime.setup.core["debug"]?.intValue)
            let logger = Logger(label: "core")
            for w in host.warnings { logger.warning("\(w)", metadata: ["ksr.module": "config"]) }
            do {
                try host.start()
            } catch {
                throw fail(error)
            }
            var sig: Int32 = 0
            sigwait(&set, &sig)
            logger.notice("signal \(sig == SIGINT ? "SIGINT" : "SIGTERM") received: stopping", metadata: ["ksr.module": "core"])
            host.stop()
            logger.notice("stopped", metadata: ["ksr.module": "core"])
        }
    }

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a script's (or config file's) configuration and exit.",
            discussion: "Exits 0 when the configuration is valid; otherwise prints each error with file and line and exits 1.")

        @OptionGroup var options: ScriptOptions

        func run() throws {
            options.bootstrapLogging(debug: nil)
            let host: ScriptHost
            do {
                host = try ScriptHost.configure(options.hostOptions)
            } catch {
                throw fail(error)
            }
            for w in host.warnings { StandardError.write("ksr: warning: \(w)\n") }
            print("\(host.script): OK (\(host.timerCount) timers, \(host.runtime.queueList.count) queues)")
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
