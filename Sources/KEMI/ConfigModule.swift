import Control
import KSRBase
import KSRCore
import SIPTransport
import LuaBridge

/// The configuration calls a script makes at its top level, in Kamailio's words:
/// `loadmodule "rtimer.so"`, `modparam("rtimer", "timer", "...")`, `coreparam("debug", 3)`.
/// They record settings in the configuration pass and do nothing in the workers.
struct ConfigModule: KEMIModule {
    let name = "config"
    /// Part of Kamailio's core, not a module.
    let isLoadable = false
    let summary = "configuration calls: loadmodule, modparam, coreparam"

    var exports: [KEMIExport] {
        [
            KEMIExport("_G", "loadmodule", [("name", .str)], returns: .bool, needsMessage: false,
                       doc: "Declares a module, e.g. loadmodule \"rtimer.so\" (optional: every module is available).") { ctx, args in
                guard let setup = ctx.setup else { return .bool(true) }
                let loc = ctx.sourceLocation(args.L)
                let raw = args.string(1) ?? ""
                do throws(ConfigError) {
                    try Config.loadModule(raw, setup: setup, modules: ctx.runtime.modules, at: loc)
                } catch {
                    setup.errors.append(error)
                }
                return .bool(true)
            },
            KEMIExport("_G", "modparam", [("module", .str), ("param", .str), ("value", .str)], returns: .bool, needsMessage: false,
                       doc: "Sets a module parameter with Kamailio's value string, e.g. modparam(\"rtimer\", \"timer\", \"name=ta;interval=1;mode=1;\").") { ctx, args in
                guard let setup = ctx.setup else { return .bool(true) }
                let loc = ctx.sourceLocation(args.L)
                let value: ParamValue = args.isInteger(3) ? .int(args.integer(3)) : .string(args.string(3) ?? "")
                do throws(ConfigError) {
                    try Config.modparam(args.string(1) ?? "", args.string(2) ?? "", value, setup: setup,
                                        modules: ctx.runtime.modules, at: loc)
                } catch {
                    setup.errors.append(error)
                }
                return .bool(true)
            },
            KEMIExport("_G", "coreparam", [("name", .str), ("value", .str)], returns: .bool, needsMessage: false,
                       doc: "Sets a core parameter as a kamailio.cfg global would, e.g. coreparam(\"debug\", 3).") { ctx, args in
                guard let setup = ctx.setup else { return .bool(true) }
                let loc = ctx.sourceLocation(args.L)
                let value: ParamValue = args.isInteger(2) ? .int(args.integer(2)) : .string(args.string(2) ?? "")
                do throws(ConfigError) {
                    try Config.coreparam(args.string(1) ?? "", value, setup: setup, at: loc)
                } catch {
                    setup.errors.append(error)
                }
                return .bool(true)
            },
        ]
    }
}

/// Modules whose names `loadmodule` accepts, with the Kamailio parameters KSRHost knows but
/// does not implement yet (accepted with a warning).
struct CompatModule: KEMIModule {
    let name: String
    let summary: String
    let params: [ModuleParam]

    init(_ name: String, _ summary: String, ints: [String] = [], strings: [String] = []) {
        self.name = name
        self.summary = summary
        self.params = ints.map { .notImplemented($0, .int) } + strings.map { .notImplemented($0, .string) }
    }

    static let all: [CompatModule] = [
        CompatModule("tmx", "transaction extensions", ints: ["precheck_trans"]),
        CompatModule("xlog", "formatted logging", ints: ["buf_size", "force_color", "long_format", "prefix_mode", "log_colors"],
                     strings: ["prefix", "methods_filter"]),
        CompatModule("kex", "core extensions"),
        CompatModule("corex", "core extensions", ints: ["nio_min_msg_len", "nio_msg_avp"], strings: ["alias_subdomains", "nio_intercept"]),
        CompatModule("textops", "text operations on messages"),
        CompatModule("ctl", "control socket", strings: ["binrpc", "fifo", "mode", "user", "group"]),
        CompatModule("jsonrpcs", "JSON-RPC server", ints: ["transport", "pretty_format"], strings: ["fifo_name", "dgram_socket", "fifo_reply_dir"]),
        CompatModule("db_sqlite", "SQLite driver (built in: mqueue db_url sqlite://...)", ints: ["busy_timeout"], strings: ["journal_mode", "exec_pragma"]),
    ]
}

/// The app_lua module: which script to load.
struct AppLuaModule: KEMIModule {
    let name = "app_lua"
    let summary = "the Lua engine: the script to load"

    var params: [ModuleParam] {
        [
            ModuleParam("load", .string, doc: "Path of the Lua script to run (kamailio.cfg).") { setup, v throws(ParamError) in
                setup.scripts.append(v.text)
                return []
            },
            .notImplemented("reload", .int),
            .notImplemented("log_mode", .int),
        ]
    }
}

/// Applying configuration, shared by the Lua configuration calls and the kamailio.cfg reader.
enum Config {
    /// Core parameters KSRHost implements, with their checks.
    static let coreParams: [String: @Sendable (ParamValue) throws(ParamError) -> Void] = [
        "debug": { v throws(ParamError) in
            guard let n = v.intValue, (-5...4).contains(n) else { throw ParamError("debug expects an integer from -5 to 3, got \(v)") }
        },
        "children": { v throws(ParamError) in
            guard let n = v.intValue, n >= 1 else { throw ParamError("children expects a positive integer, got \(v)") }
        },
        "listen": { v throws(ParamError) in
            do throws(SIPTransportError) {
                _ = try SIPListenAddress(parsing: v.text)
            } catch {
                throw ParamError("listen: \(error.message)")
            }
        },
        "async_workers": { v throws(ParamError) in
            guard let n = v.intValue, n >= 0 else { throw ParamError("async_workers expects a non-negative integer, got \(v)") }
        },
        "async_workers_group": { v throws(ParamError) in _ = try Config.asyncGroup(v.text) },
        "rpc_listen": { v throws(ParamError) in
            let t = v.text
            guard t == "off" || ControlDefaults.tcpAddress(t) != nil else {
                throw ParamError("rpc_listen expects http:ADDRESS:PORT (e.g. http:127.0.0.1:5064) or off, got \(v)")
            }
        },
        "rpc_socket": { v throws(ParamError) in
            guard v.text == "off" || v.text.hasPrefix("/") || v.text.hasPrefix("unix:/") else {
                throw ParamError("rpc_socket expects an absolute path (or unix:/path) or off, got \(v)")
            }
        },
    ]

    /// `name=abc;workers=4;nonblock=0;usleep=0`: a name and workers > 0 are required (Kamailio
    /// logs these errors and starts without the group; KSRHost refuses to start).
    static func asyncGroup(_ text: String) throws(ParamError) -> AsyncGroupConfig {
        let p = try ParamList(parsing: text)
        guard let name = p["name"], !name.isEmpty else { throw ParamError("invalid name value: a group needs name=...") }
        guard let w = p["workers"], let n = Int(w), n > 0 else {
            throw ParamError("invalid workers value: \(p["workers"] ?? "missing") (must be > 0)")
        }
        for key in ["nonblock", "usleep"] {
            if let v = p[key], Int(v) == nil { throw ParamError("invalid \(key) value: \(v)") }
        }
        return AsyncGroupConfig(name: name, workers: n)
    }

    /// Real Kamailio core parameters that KSRHost accepts without acting on them.
    static let acceptedCoreParams: Set<String> = [
        "log_stderror", "fork", "log_facility", "log_name", "log_prefix", "log_color", "memdbg", "memlog",
        "mhomed", "auto_aliases", "alias", "server_header", "user_agent_header", "server_signature", "sip_warning",
        "disable_tcp", "enable_tls", "tcp_connection_lifetime", "tcp_max_connections", "tcp_connect_timeout",
        "tcp_accept_no_cl", "dns", "rev_dns", "dns_try_ipv6", "use_dns_cache", "dns_cache_init", "maxbuffer",
        "mem_join", "pv_buffer_size", "pv_buffer_slots", "shm_mem_size", "pkg_mem_size", "latency_log",
        "latency_limit_action", "latency_limit_db", "sql_buffer_size", "corelog", "port", "tcp_children",
        "udp_mtu", "udp_mtu_try_proto", "reply_to_via", "onsend_route_reply", "kemi.onsend_route_callback",
        "kemi.reply_route_callback", "kemi.event_route_callback", "workdir", "user", "group", "chroot",
        "advertised_address", "advertised_port", "open_files_limit", "shm_force_alloc", "mlock_pages", "async_usleep", "async_nonblock",
        "max_while_loops", "socket_workers", "statistics", "xavp_via_params", "xavp_via_fields",
    ]

    static func coreparam(_ name: String, _ value: ParamValue, setup: HostSetup, at loc: SourceLocation) throws(ConfigError) {
        let context = "coreparam(\"\(name)\", \(value))"
        if let check = coreParams[name] {
            do throws(ParamError) { try check(value) } catch {
                throw ConfigError("bad value for core parameter '\(name)': \(error.message)", at: loc, context: context)
            }
            if name == "listen" { setup.listen.append(value.text) }
            if name == "async_workers" { setup.asyncDefaultWorkers = value.intValue }
            if name == "async_workers_group" {
                do throws(ParamError) {
                    setup.asyncGroups.append(try Self.asyncGroup(value.text))
                } catch {
                    throw ConfigError("bad value for core parameter 'async_workers_group': \(error.message)", at: loc, context: context)
                }
            }
            setup.core[name] = value
        } else if acceptedCoreParams.contains(name) {
            setup.warnings.append("\(loc): core parameter '\(name)' is accepted for compatibility but has no effect in KSRHost")
            setup.core[name] = value
        } else {
            throw ConfigError("unknown core parameter '\(name)'", at: loc, context: context)
        }
        setup.records.append((module: "core", param: name, location: loc, value: value))
    }

    /// `loadmodule "rtimer.so"`, `"/usr/lib/kamailio/modules/rtimer.so"` or `"rtimer"`.
    static func moduleName(_ raw: String) -> String {
        var n = Substring(raw.trimmingSpaces())
        if let slash = n.lastIndex(of: "/") { n = n[n.index(after: slash)...] }
        if n.hasSuffix(".so") { n = n.dropLast(3) }
        return String(n)
    }

    static func loadModule(_ raw: String, setup: HostSetup, modules: [any KEMIModule], at loc: SourceLocation) throws(ConfigError) {
        let name = moduleName(raw)
        guard let m = module(name, modules) else {
            throw ConfigError("unknown module '\(name)': KSRHost provides \(providedModules(modules))",
                              at: loc, context: "loadmodule \"\(raw)\"")
        }
        if !setup.loadedModules.contains(m.name) { setup.loadedModules.append(m.name) }
    }

    static func module(_ name: String, _ modules: [any KEMIModule]) -> (any KEMIModule)? {
        modules.first { $0.isLoadable && $0.name == name }
    }

    /// The Kamailio modules KSRHost provides, from the module declarations: each once, sorted.
    static func providedModules(_ modules: [any KEMIModule]) -> String {
        Set(modules.filter(\.isLoadable).map(\.name)).sorted().joined(separator: ", ")
    }

    static func modparam(_ moduleName: String, _ param: String, _ value: ParamValue, setup: HostSetup,
                         modules: [any KEMIModule], at loc: SourceLocation) throws(ConfigError) {
        let context = "modparam(\"\(moduleName)\", \"\(param)\", \(value))"
        guard let m = module(moduleName, modules) else {
            throw ConfigError("unknown module '\(moduleName)': KSRHost provides \(providedModules(modules))",
                              at: loc, context: context)
        }
        guard let p = m.params.first(where: { $0.name == param }) else {
            let names = m.params.map(\.name).sorted().joined(separator: ", ")
            throw ConfigError("module '\(moduleName)' has no parameter '\(param)'" + (names.isEmpty ? "" : " (it has: \(names))"),
                              at: loc, context: context)
        }
        if p.kind == .int && value.intValue == nil {
            throw ConfigError("parameter '\(param)' of module '\(moduleName)' expects an integer, got \(value)", at: loc, context: context)
        }
        guard let apply = p.apply else {
            setup.warnings.append("\(loc): parameter '\(param)' of module '\(moduleName)' is not implemented in KSRHost yet: ignored")
            return
        }
        do throws(ParamError) {
            for w in try apply(setup, value) { setup.warnings.append("\(loc): \(w)") }
        } catch {
            throw ConfigError(error.message, at: loc, context: context)
        }
        setup.records.append((module: m.name, param: param, location: loc, value: value))
    }
}


// MARK: - RPC

extension AppLuaModule {
    func rpcMethods(_ host: ScriptHost) -> [RPCMethod] {
        [
            RPCMethod("app_lua.reload", doc: "Loads the script again in fresh Lua states and swaps every worker only if all of them loaded it.") { _ throws(RPCError) in
                let r = await host.reload()
                guard r.ok else { throw RPCError(code: 500, message: r.message) }
                return .object([("reloaded", .string(host.script)), ("workers", .int(host.workers.count)),
                                ("not_applied", .array(r.notApplied.map { .string($0) }))])
            },
            RPCMethod("app_lua.list", doc: "The loaded script files.") { _ in
                .array([.object([("index", .int(0)), ("file", .string(host.script))])])
            },
        ]
    }
}
