import Control
import DMQ
import KSRBase
import KSRCore
import Logging
import LuaBridge
import SIPTransport
import Synchronization

/// The dmq module's settings as configured (`modparam("dmq", ...)`).
public struct DMQSettings: Sendable, Equatable {
    public var serverAddress: String?
    public var serverSocket: String?
    public var notificationAddresses: [String] = []
    public var notificationChannel = "notification_peer"
    public var multiNotify = false
    public var numWorkers = 2
    public var workerUsleep = 0
    public var pingInterval = 60
    public var removeInactive = true
    public var failCountEnabled = false
    public var failCountThresholdNotActive = 0
    public var failCountThresholdDisabled = 1
    /// KSRHost: pings every this many ms to peers that are KSRHost nodes too (0: off).
    public var fastPingMs = 0
    /// KSRHost: how long a fast ping waits for its 200 before the peer counts as failed.
    public var fastTimeoutMs = 0
    /// KSRHost: channels delivered to Lua functions by handle_message/process_message.
    public var channelRoutes: [String: String] = [:]
    /// Whether any dmq parameter was set (then server_address is required).
    public var configured = false

    public init() {}
}

/// dmq: Kamailio's distributed message queue between nodes over SIP (KDMQ): membership,
/// broadcast and unicast messages, replication of requests, delivery to Lua channels.
struct DMQModule: KEMIModule {
    let name = "dmq"
    let summary = "distributed message queue between nodes over SIP (KDMQ), wire-compatible with Kamailio"

    private static func int(_ v: ParamValue, min: Int, max: Int = Int.max) throws(ParamError) -> Int {
        guard let n = v.intValue, n >= min, n <= max else {
            throw ParamError(max == Int.max ? "expects an integer >= \(min), got \(v)" : "expects an integer \(min)..\(max), got \(v)")
        }
        return n
    }

    private static func uri(_ v: ParamValue) throws(ParamError) -> String {
        let text = String(v.text.trimmingSpaces())
        do throws(DMQError) {
            _ = try DMQNodeAddress(parsing: text)
        } catch {
            throw ParamError("expects a node URI like sip:10.0.0.1:5060: \(error.reason)")
        }
        return text
    }

    private static func set(_ setup: HostSetup, _ change: (inout DMQSettings) -> Void) -> [String] {
        change(&setup.dmq)
        setup.dmq.configured = true
        return []
    }

    var params: [ModuleParam] {
        [
            ModuleParam("server_address", .string, doc: "This node's URI, with its port: sip:IP:PORT[;transport=tcp]. Required.") { setup, v throws(ParamError) in
                let text = try Self.uri(v)
                guard Self.hasExplicitPort(text) else {
                    throw ParamError("server_address must include the port (sip:IP:PORT): Kamailio writes a port-less node as 'sip:IP:', which its peers reject")
                }
                return Self.set(setup) { $0.serverAddress = text }
            },
            ModuleParam("server_socket", .string, doc: "Local socket for KDMQ requests, proto:ip:port (default: from server_address); must be a listen socket.") { setup, v throws(ParamError) in
                let text = String(v.text.trimmingSpaces())
                guard (try? SIPListenAddress(parsing: text)) != nil else {
                    throw ParamError("expects proto:ip:port, e.g. udp:10.0.0.1:5060, got \(v)")
                }
                return Self.set(setup) { $0.serverSocket = text }
            },
            ModuleParam("notification_address", .string, doc: "A node to contact at startup and when alone (repeatable).") { setup, v throws(ParamError) in
                let text = try Self.uri(v)
                return Self.set(setup) { $0.notificationAddresses.append(text) }
            },
            ModuleParam("notification_channel", .string, doc: "Channel of the membership protocol (default notification_peer; cluster-wide).") { setup, v throws(ParamError) in
                let text = String(v.text.trimmingSpaces())
                guard !text.isEmpty, text.utf8.allSatisfy({ $0 > 32 && $0 != UInt8(ascii: "@") && $0 != UInt8(ascii: ":") }) else {
                    throw ParamError("expects a channel name (no spaces, '@' or ':'), got \(v)")
                }
                return Self.set(setup) { $0.notificationChannel = text }
            },
            ModuleParam("multi_notify", .int, doc: "1: use every address the first notification_address resolves to (A/AAAA).") { setup, v throws(ParamError) in
                let n = try Self.int(v, min: 0, max: 1)
                return Self.set(setup) { $0.multiNotify = n == 1 }
            },
            ModuleParam("num_workers", .int, doc: "DMQ workers (each its own Lua state) for handle_message (default 2; 0: handle_message fails).") { setup, v throws(ParamError) in
                let n = try Self.int(v, min: 0, max: 64)
                return Self.set(setup) { $0.numWorkers = n }
            },
            ModuleParam("worker_usleep", .int, doc: "Accepted for compatibility (>= 0): KSRHost's DMQ workers always wake at once on a new job.") { setup, v throws(ParamError) in
                let n = try Self.int(v, min: 0)
                return Self.set(setup) { $0.workerUsleep = n }
            },
            ModuleParam("ping_interval", .int, doc: "Seconds between pings to every node (default 60; values below 5 become 5, as in Kamailio).") { setup, v throws(ParamError) in
                let n = try Self.int(v, min: 1)
                return Self.set(setup) { $0.pingInterval = Swift.max(5, n) }
                    + (n < 5 ? ["dmq ping_interval \(n) is raised to 5 (Kamailio's minimum); for faster failure detection between KSRHost nodes set fast_ping_ms"] : [])
            },
            ModuleParam("remove_inactive", .int, doc: "1 (default): a failed node is disabled, then removed; 0: it stays as not_active.") { setup, v throws(ParamError) in
                let n = try Self.int(v, min: 0, max: 1)
                return Self.set(setup) { $0.removeInactive = n == 1 }
            },
            ModuleParam("fail_count_enabled", .int, doc: "1: count timeouts per node and change its state at the thresholds.") { setup, v throws(ParamError) in
                let n = try Self.int(v, min: 0, max: 1)
                return Self.set(setup) { $0.failCountEnabled = n == 1 }
            },
            ModuleParam("fail_count_threshold_not_active", .int, doc: "With fail_count_enabled: active -> not_active when the count exceeds this (default 0).") { setup, v throws(ParamError) in
                let n = try Self.int(v, min: 0)
                return Self.set(setup) { $0.failCountThresholdNotActive = n }
            },
            ModuleParam("fail_count_threshold_disabled", .int, doc: "With fail_count_enabled: not_active -> disabled when the count exceeds this (default 1).") { setup, v throws(ParamError) in
                let n = try Self.int(v, min: 0)
                return Self.set(setup) { $0.failCountThresholdDisabled = n }
            },
            ModuleParam("fast_ping_ms", .int, doc: "KSRHost: also ping KSRHost peers every this many ms (100..10000; 0 off), for sub-second failure detection.") { setup, v throws(ParamError) in
                let n = try Self.int(v, min: 0, max: 10_000)
                guard n == 0 || n >= 100 else { throw ParamError("expects 0 (off) or 100..10000 ms, got \(v)") }
                return Self.set(setup) { $0.fastPingMs = n }
            },
            ModuleParam("fast_timeout_ms", .int, doc: "KSRHost: a fast ping unanswered after this many ms fails the peer (default 2 x fast_ping_ms).") { setup, v throws(ParamError) in
                let n = try Self.int(v, min: 50, max: 60_000)
                return Self.set(setup) { $0.fastTimeoutMs = n }
            },
            ModuleParam("channel_route", .string, doc: "KSRHost: CHANNEL=lua_function; handle_message/process_message run the function for KDMQ on that channel (repeatable).") { setup, v throws(ParamError) in
                let text = String(v.text.trimmingSpaces())
                let parts = text.split(separator: "=", maxSplits: 1).map { String(String($0).trimmingSpaces()) }
                guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                    throw ParamError("expects CHANNEL=lua_function, got \(v)")
                }
                guard parts[0] != setup.dmq.notificationChannel else {
                    throw ParamError("the notification channel '\(parts[0])' belongs to the membership protocol")
                }
                return Self.set(setup) { $0.channelRoutes[parts[0]] = parts[1] }
            },
        ]
    }

    static func hasExplicitPort(_ uri: String) -> Bool {
        // "sip:host:port" — the part after the scheme (and before any parameter) ends in :digits.
        var rest = Substring(uri)
        if let semi = rest.firstIndex(of: ";") { rest = rest[..<semi] }
        if rest.hasPrefix("sip:") { rest = rest.dropFirst(4) }
        if let at = rest.lastIndex(of: "@") { rest = rest[rest.index(after: at)...] }
        guard let colon = rest.lastIndex(of: ":") else { return false }
        if rest.hasPrefix("["), let close = rest.lastIndex(of: "]"), close > colon { return false }
        let port = rest[rest.index(after: colon)...]
        return !port.isEmpty && port.allSatisfy(\.isNumber)
    }

    var exports: [KEMIExport] {
        [
            KEMIExport("dmq", "handle_message", returns: .int,
                       doc: "Hands the current KDMQ request to a DMQ worker, which runs its channel's handler and replies: 0, or -1.") { ctx, args in
                .int(ctx.dmqHandle(args.L, queued: true, rc: 0))
            },
            KEMIExport("dmq", "handle_message_rc", [("rc", .int)], returns: .int,
                       doc: "Like handle_message, returning rc on success (-1 on error).") { ctx, args in
                .int(ctx.dmqHandle(args.L, queued: true, rc: Int(args.int32(1))))
            },
            KEMIExport("dmq", "process_message", returns: .int,
                       doc: "Runs the current KDMQ request's channel handler now, in this worker, and replies: 0, or -1.") { ctx, args in
                .int(ctx.dmqHandle(args.L, queued: false, rc: 0))
            },
            KEMIExport("dmq", "process_message_rc", [("rc", .int)], returns: .int,
                       doc: "Like process_message, returning rc on success (-1 on error).") { ctx, args in
                .int(ctx.dmqHandle(args.L, queued: false, rc: Int(args.int32(1))))
            },
            KEMIExport("dmq", "send_message", [("channel", .str), ("node", .str), ("body", .str), ("content_type", .str)], returns: .int,
                       needsMessage: false,
                       doc: "Sends a KDMQ request on channel to one listed node (any state): 1, or -1.") { ctx, args in
                .int(ctx.dmqSend(args.L, channel: args.string(1) ?? "", node: args.string(2) ?? "",
                                 body: args.string(3) ?? "", contentType: args.string(4) ?? ""))
            },
            KEMIExport("dmq", "bcast_message", [("channel", .str), ("body", .str), ("content_type", .str)], returns: .int,
                       needsMessage: false,
                       doc: "Sends a KDMQ request on channel to every active node: 1, or -1.") { ctx, args in
                .int(ctx.dmqSend(args.L, channel: args.string(1) ?? "", node: nil,
                                 body: args.string(2) ?? "", contentType: args.string(3) ?? ""))
            },
            KEMIExport("dmq", "is_from_node", returns: .int,
                       doc: "1 if the current message comes from the IP address of a listed node, else -1.") { ctx, _ in
                guard let service = ctx.runtime.dmq.service, let inbound = ctx.message.inbound else { return .int(-1) }
                return .int(service.membership.isNode(ip: inbound.source.ip) ? 1 : -1)
            },
            KEMIExport("dmq", "t_replicate", returns: .int,
                       doc: "Sends a copy of the current request statefully to every active node (not when it comes from a node): 0, or -1.") { ctx, args in
                .int(ctx.dmqReplicate(args.L, skipLoopCheck: false))
            },
            KEMIExport("dmq", "t_replicate_mode", [("mode", .int)], returns: .int,
                       doc: "t_replicate; mode 1 skips the check that the request does not come from a node: 0, or -1.") { ctx, args in
                .int(ctx.dmqReplicate(args.L, skipLoopCheck: args.int32(1) == 1))
            },
        ]
    }

    func rpcMethods(_ host: ScriptHost) -> [RPCMethod] {
        [
            RPCMethod("dmq.list_nodes", doc: "Every node this node knows (itself included), with Kamailio's fields.") { _ throws(RPCError) in
                guard let service = host.runtime.dmq.service else { throw RPCError(code: 500, message: "DMQ is not configured") }
                return .array(service.membership.nodes().map { n in
                    .object([
                        ("host", .string(n.address.host)),
                        ("port", .string(String(n.address.port))),
                        ("proto", .string(n.address.transport == .udp ? "*" : n.address.transport.rawValue)),
                        ("resolved_ip", .string(n.resolvedIP)),
                        ("status", .string(n.status.rawValue)),
                        ("last_notification", .int(0)),
                        ("local", .int(n.isLocal ? 1 : 0)),
                        ("fail_count", .int(n.failCount)),
                        ("ksrhost", .int(n.isKSRHost ? 1 : 0)),
                    ])
                })
            },
            RPCMethod("dmq.remove", doc: "Removes a node from the list (never the local one); it returns with the next list that names it.",
                      params: [RPCParam("uri", .string, optional: true, doc: "node URI, e.g. sip:10.0.0.2:5060")]) { args throws(RPCError) in
                guard let service = host.runtime.dmq.service else { throw RPCError(code: 500, message: "DMQ is not configured") }
                guard args.has(0) else { throw RPCError(code: 500, message: "Invalid Parameters") }
                let text = try args.string(0)
                guard let address = try? DMQNodeAddress(parsing: text) else { throw RPCError(code: 500, message: "Failure") }
                service.membership.remove(address)
                return .string("Ok. DMQ node removed.")
            },
        ]
    }
}

// MARK: - startup

extension DMQModule {
    /// Configuration checks that need every parameter: server_address is required once any
    /// dmq parameter is set, and KDMQ must leave from a listen socket (Kamailio refuses to
    /// start otherwise); every channel_route function must exist.
    static func check(_ setup: HostSetup, hasFunction: (String) -> Bool) {
        let s = setup.dmq
        guard s.configured else { return }
        let records = setup.records.filter { $0.module == "dmq" }
        func location(_ param: String) -> SourceLocation? { records.last { $0.param == param }?.location ?? records.first?.location }
        guard let server = s.serverAddress, let local = try? DMQNodeAddress(parsing: server) else {
            setup.errors.append(ConfigError("dmq: server_address is required (this node's URI, e.g. sip:10.0.0.1:5060)",
                                            at: records.first?.location))
            return
        }
        let listen = setup.listen.compactMap { try? SIPListenAddress(parsing: $0) }
        if let socket = s.serverSocket.flatMap({ try? SIPListenAddress(parsing: $0) }) {
            if !listen.contains(where: { $0.proto == socket.proto && $0.ip == socket.ip && $0.port == socket.port }) {
                setup.errors.append(ConfigError("dmq: server_socket \(s.serverSocket!) is not a listen socket (listen: \(setup.listen.joined(separator: ", ")))",
                                                at: location("server_socket")))
            }
        } else if derivedSocket(local, listen) == nil {
            setup.errors.append(ConfigError(
                "dmq: server_address \(server) matches no listen socket (listen: \(setup.listen.isEmpty ? "none" : setup.listen.joined(separator: ", "))); add coreparam(\"listen\", \"\(local.transport == .tcp ? "tcp" : "udp"):\(local.host):\(local.port)\") or set server_socket",
                at: location("server_address")))
        }
        for (channel, function) in s.channelRoutes.sorted(by: { $0.key < $1.key }) where !hasFunction(function) {
            setup.errors.append(ConfigError("dmq: channel_route for channel '\(channel)' names the Lua function '\(function)', which the script does not define",
                                            at: location("channel_route")))
        }
    }

    /// The listen socket matching server_address (protocol, IP, port).
    static func derivedSocket(_ local: DMQNodeAddress, _ listen: [SIPListenAddress]) -> SIPListenAddress? {
        let proto: SIPTransportProtocol = local.transport == .tcp ? .tcp : .udp
        var host = local.host
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let ip = (try? SIPSocketAddress(ip: host, port: local.port)).map { _ in host } ?? NameResolver.shared.firstIP(host: host)
        return listen.first { $0.proto == proto && $0.port == local.port && ($0.ip == ip || $0.ip == "0.0.0.0" || $0.ip == "::") }
    }
}

extension ScriptHost {
    /// Starts DMQ once the transport runs: the node list, the reply hook, the ping timer,
    /// then the join to the notification addresses. Returns the timer worker.
    func startDMQ(_ s: DMQSettings, transport: SIPTransport, workers: [Worker]) throws(ConfigFailure) -> Worker {
        guard let server = s.serverAddress, let local = try? DMQNodeAddress(parsing: server) else {
            throw ConfigFailure([ConfigError("dmq: server_address is required")])
        }
        let wanted = s.serverSocket.flatMap { try? SIPListenAddress(parsing: $0) }
            ?? DMQModule.derivedSocket(local, transport.listeners.map(\.address))
        guard let wanted, let listener = transport.listeners.first(where: {
            $0.address.proto == wanted.proto && $0.address.port == wanted.port && $0.address.ip == wanted.ip
        }) else {
            throw ConfigFailure([ConfigError("dmq: no listen socket for server_address \(server)")])
        }
        var notify: [DMQNodeAddress] = []
        for text in s.notificationAddresses {
            guard let a = try? DMQNodeAddress(parsing: text) else { continue }
            notify.append(a)
        }
        if s.multiNotify, let first = notify.first {
            // Every address the first notification address resolves to (A/AAAA), each once.
            let ips = NameResolver.shared.allIPs(host: first.host)
            if ips.isEmpty {
                logger.warning("dmq: multi_notify: \(first.host) resolves to nothing", metadata: ["ksr.module": "dmq"])
            } else {
                notify = ips.map { DMQNodeAddress(host: $0.contains(":") ? "[\($0)]" : $0, port: first.port, transport: first.transport) }
            }
        }
        let service = DMQService(settings: s, local: local, notificationAddresses: notify, transport: transport,
                                 tm: runtime.tm, listener: listener)
        service.setWorkers(workers)
        runtime.dmq.set(service)
        runtime.tm.localReplyHandler.withLock { $0 = Callback { service.replyArrived($0.0, $0.1) } }
        let now = SystemClock().nowNanos()
        let timer = Worker(name: "dmq-timer", kind: .dmqTimer) { _ in DMQTimerBody(service: service, now: now) }
        timer.start()
        if let failure = timer.waitStarted() {
            throw ConfigFailure([ConfigError("dmq: timer worker failed to start: \(failure)")])
        }
        let fast = s.fastPingMs > 0 ? ", fast ping every \(s.fastPingMs) ms to KSRHost peers" : ""
        let joining = notify.isEmpty ? "" : ", joining via \(notify.map(\.description).joined(separator: ", "))"
        logger.info("dmq: node \(local) on \(listener), \(workers.count) workers, ping every \(s.pingInterval) s\(fast)\(joining)",
                    metadata: ["ksr.module": "dmq"])
        service.joinNow()
        return timer
    }
}
