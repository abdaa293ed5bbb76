import Control
import KSRBase
import KSRCore
import Logging
import LuaBridge
import SIP

#if canImport(Glibc)
import Glibc
#endif

/// The KEMI core: `KSR.info` and the other log functions, `KSR.x.*`, method tests, flags and
/// R-URI helpers (Kamailio's `src/core/kemi.c`).
struct CoreModule: KEMIModule {
    let name = "core"
    /// Part of Kamailio's core, not a module.
    let isLoadable = false
    let summary = "KSR core functions: logging, exit/drop, method tests, flags, R-URI"

    var exports: [KEMIExport] {
        var e: [KEMIExport] = []
        for (fn, level, doc) in [
            ("dbg", Logger.Level.debug, "Logs at DEBUG (shown with debug=3)."),
            ("info", .info, "Logs the text at INFO, verbatim."),
            ("notice", .notice, "Logs at NOTICE."),
            ("warn", .warning, "Logs at WARNING."),
            ("err", .error, "Logs at ERROR."),
            ("crit", .critical, "Logs at CRITICAL."),
        ] {
            e.append(KEMIExport("", fn, [("msg", .str)], returns: .none, doc: doc) { ctx, args in
                guard LogThreshold.allows(level), let msg = args.string(1) else { return .none }
                Self.log(ctx, args.L, level, msg)
                return .none
            })
        }
        e.append(KEMIExport("", "log", [("level", .str), ("msg", .str)], returns: .none,
                            doc: "Logs at a level named dbg, info, notice, warn, err or crit (others: err).") { ctx, args in
            let level = KamailioLogLevel.level(named: args.string(1) ?? "")
            guard LogThreshold.allows(level), var msg = args.string(2) else { return .none }
            if let nul = msg.firstIndex(of: "\0") { msg = String(msg[..<nul]) }
            Self.log(ctx, args.L, level, msg)
            return .none
        })
        e.append(KEMIExport("", "set_drop", returns: .none, doc: "Marks the current message to be dropped, without exiting.") { ctx, _ in
            ctx.dropRequested = true
            return .none
        })
        e.append(KEMIExport("", "get_debug", returns: .int, doc: "The current debug level (-5..3).") { ctx, _ in
            .int(ctx.runtime.setup.debugLevel)
        })
        e.append(KEMIExport("", "route", [("name", .str)], returns: .int,
                            doc: "Runs a native route block: there are none in KSRHost, so always -1.") { _, _ in .int(-1) })
        // Methods.
        e.append(KEMIExport("", "is_method", [("method", .str)], returns: .bool,
                            doc: "Whether the method is one of a |-separated list (case-insensitive).") { ctx, args in
            guard let m = args.string(1), !m.isEmpty else { return .bool(false) }
            let current = ctx.message.method.uppercased()
            var matched = false
            for part in m.split(separator: "|") {
                let p = part.uppercased()
                guard Self.standardMethods.contains(p) else {
                    ctx.logUsageError(args.L, "unknown method in list [\(m)]")
                    return .bool(false)
                }
                if p == current { matched = true }
            }
            return .bool(matched)
        })
        e.append(KEMIExport("", "is_method_in", [("letters", .str)], returns: .bool,
                            doc: "Whether the method is one of the given letters (I A B C M R E P S N O F G U K D T V).") { ctx, args in
            guard let letters = args.string(1) else { return .bool(false) }
            let current = ctx.message.method.uppercased()
            for ch in letters.uppercased() {
                guard let m = Self.methodLetters[ch] else {
                    ctx.logger.warning("unknown method letter [\(ch)]", metadata: ["ksr.module": "kemi"])
                    continue
                }
                if m == current { return .bool(true) }
            }
            return .bool(false)
        })
        for m in ["INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS", "SUBSCRIBE", "PUBLISH", "NOTIFY",
                  "REFER", "INFO", "UPDATE", "PRACK", "MESSAGE", "KDMQ", "GET", "POST", "PUT", "DELETE"] {
            e.append(KEMIExport("", "is_\(m)", returns: .bool, doc: "Whether the method is \(m).") { ctx, _ in
                .bool(ctx.message.method.uppercased() == m)
            })
        }
        // Flags.
        e.append(KEMIExport("", "setflag", [("flag", .int)], returns: .bool, doc: "Sets message flag 0..63.") { ctx, args in
            let f = args.int32(1)
            guard (0..<64).contains(f) else { return .bool(false) }
            ctx.message.flags |= (1 << UInt64(f))
            return .bool(true)
        })
        e.append(KEMIExport("", "resetflag", [("flag", .int)], returns: .bool, doc: "Clears message flag 0..63.") { ctx, args in
            let f = args.int32(1)
            guard (0..<64).contains(f) else { return .bool(false) }
            ctx.message.flags &= ~(1 << UInt64(f))
            return .bool(true)
        })
        e.append(KEMIExport("", "isflagset", [("flag", .int)], returns: .bool, doc: "Whether message flag 0..63 is set.") { ctx, args in
            let f = args.int32(1)
            guard (0..<64).contains(f) else { return .bool(false) }
            return .bool(ctx.message.flags & (1 << UInt64(f)) != 0)
        })
        // R-URI and destination.
        e.append(KEMIExport("", "seturi", [("uri", .str)], returns: .bool, doc: "Sets the request URI.") { ctx, args in
            guard let u = args.string(1), !u.isEmpty else { return .bool(false) }
            ctx.message.requestURI = u
            return .bool(true)
        })
        e.append(KEMIExport("", "setdsturi", [("uri", .str)], returns: .bool, doc: "Sets the destination URI ($du).") { ctx, args in
            guard let u = args.string(1), !u.isEmpty else { return .bool(false) }
            ctx.message.destinationURI = u
            return .bool(true)
        })
        e.append(KEMIExport("", "resetdsturi", returns: .none, doc: "Clears the destination URI.") { ctx, _ in
            ctx.message.destinationURI = nil
            return .none
        })
        e.append(KEMIExport("", "isdsturiset", returns: .bool, doc: "Whether a destination URI is set.") { ctx, _ in
            .bool(ctx.message.destinationURI != nil)
        })
        // KSR.x
        e.append(KEMIExport("x", "exit", returns: .none,
                            doc: "Ends the callback: raises the error \"~~ksr~exit~~\", which KSRHost treats as success (pcall catches it, as in Kamailio).",
                            lua: "function() error(\"~~ksr~exit~~\", 0) end"))
        e.append(KEMIExport("x", "drop", returns: .none,
                            doc: "Marks the message to be dropped, then exits like KSR.x.exit().",
                            lua: "(function(set_drop) return function() set_drop() error(\"~~ksr~exit~~\", 0) end end)(KSR.set_drop)"))
        e.append(KEMIExport("x", "probe", returns: .none, needsMessage: false, doc: "Does nothing.") { _, _ in .none })
        e.append(KEMIExport("x", "modf", [("name", .str)], returns: .int,
                            doc: "Runs a native config function: KSRHost has none, so -1 with an error.") { ctx, args in
            ctx.logUsageError(args.L, "KSR.x.modf(\"\(args.string(1) ?? "")\"): native config functions are not available in KSRHost")
            return .int(-1)
        })
        return e
    }

    static let standardMethods: Set<String> = [
        "INVITE", "CANCEL", "ACK", "BYE", "INFO", "REGISTER", "SUBSCRIBE", "NOTIFY", "MESSAGE", "OPTIONS",
        "PRACK", "UPDATE", "REFER", "PUBLISH", "KDMQ", "GET", "POST", "PUT", "DELETE",
    ]
    static let methodLetters: [Character: String] = [
        "I": "INVITE", "A": "ACK", "B": "BYE", "C": "CANCEL", "M": "MESSAGE", "R": "REGISTER", "E": "PRACK",
        "P": "PUBLISH", "S": "SUBSCRIBE", "N": "NOTIFY", "O": "OPTIONS", "F": "REFER", "G": "GET", "U": "UPDATE",
        "K": "KDMQ", "D": "DELETE", "T": "POST", "V": "PUT",
    ]

    static func log(_ ctx: WorkerContext, _ L: OpaquePointer, _ level: Logger.Level, _ msg: String) {
        var meta: Logger.Metadata = ["ksr.module": "script"]
        if let w = ctx.scriptLocation(L) { meta["ksr.where"] = .string(w) }
        ctx.logger.log(level: level, "\(msg)", metadata: meta)
    }
}

/// `KSR.kx.*`: getters that read the current message (module kemix).
struct KemixModule: KEMIModule {
    let name = "kemix"
    let summary = "KSR.kx getters for message and environment values"

    var exports: [KEMIExport] {
        var e: [KEMIExport] = []
        func str(_ fn: String, _ doc: String, _ get: @escaping @Sendable (WorkerContext) -> String?) {
            e.append(KEMIExport("kx", fn, returns: .xval, doc: doc) { ctx, _ in get(ctx).map { .string($0) } ?? .null })
        }
        func modes(_ base: String, _ doc: String, _ get: @escaping @Sendable (WorkerContext) -> String?) {
            str("get_\(base)", doc, get)
            e.append(KEMIExport("kx", "gete_\(base)", returns: .xval, doc: doc + " (\"\" when missing)") { ctx, _ in .string(get(ctx) ?? "") })
            e.append(KEMIExport("kx", "getw_\(base)", returns: .xval, doc: doc + " (\"<null>\" when missing)") { ctx, _ in .string(get(ctx) ?? "<null>") })
        }
        str("get_ruri", "The request URI.") { $0.message.requestURI }
        str("get_ouri", "The original request URI.") { $0.message.originalURI }
        modes("ruser", "The request URI user.") { URIParts($0.message.requestURI).user }
        modes("rhost", "The request URI host.") { URIParts($0.message.requestURI).host }
        str("get_furi", "The From URI.") { $0.message.fromURI }
        modes("fuser", "The From URI user.") { URIParts($0.message.fromURI).user }
        modes("fhost", "The From URI host.") { URIParts($0.message.fromURI).host }
        str("get_turi", "The To URI.") { $0.message.toURI }
        modes("tuser", "The To URI user.") { URIParts($0.message.toURI).user }
        modes("thost", "The To URI host.") { URIParts($0.message.toURI).host }
        modes("duri", "The destination URI ($du).") { $0.message.destinationURI }
        str("get_nhuri", "The next-hop URI: $du if set, else the R-URI.") { $0.message.destinationURI ?? $0.message.requestURI }
        str("get_srcip", "The source IP address.") { $0.message.sourceIP }
        str("get_method", "The request method.") { $0.message.method }
        str("get_callid", "The Call-ID.") { $0.message.callID }
        modes("ua", "The User-Agent header body.") { $0.message.sip.header(.userAgent) }
        str("get_proto", "The transport protocol (udp, tcp...).") { $0.message.proto }
        modes("body", "The message body.") { c in c.message.sip.bodyRange.isEmpty ? nil : c.message.sip.bodyText }
        e.append(KEMIExport("kx", "get_srcport", returns: .int, doc: "The source port.") { ctx, _ in .int(ctx.message.sourcePort) })
        e.append(KEMIExport("kx", "get_status", returns: .int, doc: "The reply status code; -1 for a request.") { ctx, _ in
            .int(ctx.message.sip.statusCode ?? -1)
        })
        e.append(KEMIExport("kx", "get_msgtype", returns: .int, doc: "1 for a request, 2 for a reply.") { ctx, _ in
            .int(ctx.message.sip.isRequest ? 1 : 2)
        })
        e.append(KEMIExport("kx", "get_timestamp", returns: .int, doc: "The current Unix time.") { _, _ in .int(WallClock.now().seconds) })
        e.append(KEMIExport("kx", "get_bodylen", returns: .int, doc: "The body length in bytes.") { ctx, _ in
            .int(ctx.message.sip.bodyRange.count)
        })
        e.append(KEMIExport("kx", "get_msglen", returns: .int, doc: "The message length in bytes.") { ctx, _ in .int(ctx.message.length) })
        e.append(KEMIExport("kx", "get_env", [("name", .str)], returns: .xval, needsMessage: false,
                            doc: "An environment variable, or nil.") { _, args in
            guard let n = args.string(1), let v = getenv(n) else { return .null }
            return .string(String(cString: v))
        })
        e.append(KEMIExport("kx", "get_envn", [("name", .str)], returns: .int, needsMessage: false,
                            doc: "An environment variable as an integer (0 if unset or not a number).") { _, args in
            guard let n = args.string(1), let v = getenv(n) else { return .int(0) }
            return .int(Int(String(cString: v)) ?? 0)
        })
        e.append(KEMIExport("kx", "get_def", [("name", .str)], returns: .xval, needsMessage: false,
                            doc: "The value of a #!define from the kamailio.cfg, or nil.") { ctx, args in
            guard let n = args.string(1), let v = ctx.runtime.setup.defines[n] else { return .null }
            return .string(v)
        })
        e.append(KEMIExport("kx", "get_defn", [("name", .str)], returns: .int, needsMessage: false,
                            doc: "A #!define as an integer (0 if missing).") { ctx, args in
            guard let n = args.string(1), let v = ctx.runtime.setup.defines[n] else { return .int(0) }
            return .int(Int(v) ?? 0)
        })
        e.append(KEMIExport("kx", "ifdef", [("name", .str)], returns: .bool, needsMessage: false,
                            doc: "Whether a #!define exists.") { ctx, args in
            .bool(args.string(1).map { ctx.runtime.setup.defines[$0] != nil } ?? false)
        })
        e.append(KEMIExport("kx", "ifndef", [("name", .str)], returns: .bool, needsMessage: false,
                            doc: "Whether a #!define does not exist.") { ctx, args in
            .bool(args.string(1).map { ctx.runtime.setup.defines[$0] == nil } ?? true)
        })
        return e
    }
}

// MARK: - RPC

extension CoreModule {
    func rpcMethods(_ host: ScriptHost) -> [RPCMethod] {
        [
            RPCMethod("core.version", doc: "The KSRHost version.") { _ in
                .string(ScriptHost.versionString)
            },
            RPCMethod("core.uptime", doc: "Current time, start time and seconds since start (Kamailio's fields).") { _ in
                let now = WallClock.now().seconds
                let since = host.startedAt.seconds
                return .object([("now", .string(PVModule.ctime(now))), ("up_since", .string(PVModule.ctime(since))),
                                ("uptime", .int(now - since))])
            },
            RPCMethod("core.psx", doc: "The workers: index, pid, description, kind and Lua memory in bytes.") { _ in
                var out: [JSONValue] = []
                // The script workers, the dmq timer, then tm's timer (Kamailio's "timer").
                let all = host.workers + (host.runtime.tm.timerWorker.map { [$0] } ?? [])
                for (i, w) in all.enumerated() {
                    let memory = await host.onWorker(w) { $0.luaMemory } ?? 0
                    out.append(.object([
                        ("IDX", .int(i)), ("PID", .int(Int(getpid()))), ("DSC", .string(w.kind.kamailioDescription)),
                        ("KIND", .string(w.kind.label)), ("NAME", .string(w.name)), ("INDEX", .int(w.index)),
                        ("LUA_MEMORY", .int(memory)),
                    ]))
                }
                return .array(out)
            },
        ]
    }
}
