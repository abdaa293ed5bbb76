import DMQ
import KSRBase
import KSRCore
import Logging
import SIP
import SIPTransaction
import SIPTransport
import Synchronization
import CLua

#if canImport(Glibc)
import Glibc
#endif

/// The running DMQ service (nil when DMQ is not configured), kept across reloads.
public final class DMQCore: Sendable {
    private let state = Mutex<DMQService?>(nil)
    public init() {}
    public var service: DMQService? { state.withLock { $0 } }
    func set(_ s: DMQService?) { state.withLock { $0 = s } }
}

/// What the final reply of a KDMQ request this node sent is for.
struct DMQReplyContext: Sendable {
    let node: DMQNodeAddress
    /// The request was on the notification channel: a 200's body is the peer's node list.
    let notification: Bool
    /// A KSRHost fast ping (at most one in flight per peer).
    let fast: Bool
}

/// A KDMQ request handed to a DMQ worker by `handle_message`.
struct DMQJob: Sendable {
    let message: MessageState
    let channel: String
    let key: String
}

/// DMQ at run time: the node list, sending KDMQ requests as client transactions, the replies
/// to them, the ping timer and the worker queue.
public final class DMQService: Sendable {
    let settings: DMQSettings
    public let local: DMQNodeAddress
    public let membership: DMQMembership
    let transport: SIPTransport
    let tm: TMCore
    /// The socket KDMQ requests leave from (server_socket).
    let listener: SIPListener
    let replies = DMQReplyCache()
    /// Channels this node sent on without a handler: answered 202 (Kamailio's auto-registration).
    private let registered = Mutex<Set<String>>([])
    private let fastInFlight = Mutex<Set<DMQNodeAddress>>([])
    private let workers = Mutex<[Worker]>([])
    private let nextWorker = Atomic<Int>(0)
    private let sequence = Atomic<UInt64>(0)
    private let callIDSuffix: String
    let logger = Logger(label: "dmq")
    let sentMessages = Atomic<Int>(0)

    init(settings: DMQSettings, local: DMQNodeAddress, notificationAddresses: [DMQNodeAddress],
         transport: SIPTransport, tm: TMCore, listener: SIPListener) {
        self.settings = settings
        self.local = local
        self.transport = transport
        self.tm = tm
        self.listener = listener
        var config = DMQMembershipConfig(local: local)
        config.notificationAddresses = notificationAddresses
        config.removeInactive = settings.removeInactive
        config.failCountEnabled = settings.failCountEnabled
        config.failCountThresholdNotActive = settings.failCountThresholdNotActive
        config.failCountThresholdDisabled = settings.failCountThresholdDisabled
        self.membership = DMQMembership(config: config, resolver: { NameResolver.shared.firstIP(host: $0) })
        self.callIDSuffix = "-\(getpid())@\(listener.address.ip)"
    }

    func setWorkers(_ w: [Worker]) { workers.withLock { $0 = w } }

    /// Queues a job on a DMQ worker (round robin); false without workers (num_workers=0).
    func post(_ job: DMQJob) -> Bool {
        let ws = workers.withLock { $0 }
        guard !ws.isEmpty else { return false }
        let i = (nextWorker.wrappingAdd(1, ordering: .relaxed).oldValue & Int.max) % ws.count
        ws[i].post { body in (body as? ScriptWorker)?.handleDMQ(job) }
        return true
    }

    // MARK: channels

    func register(_ channel: String) {
        guard channel != settings.notificationChannel, settings.channelRoutes[channel] == nil else { return }
        registered.withLock { _ = $0.insert(channel) }
    }

    func isRegistered(_ channel: String) -> Bool { registered.withLock { $0.contains(channel) } }

    // MARK: sending

    /// Sends the membership messages the engine asked for.
    func sendNotifications(_ out: [DMQOutgoing], fast: Bool = false) {
        for o in out {
            _ = send(channel: settings.notificationChannel, to: o.target, body: Array(o.body.utf8), contentType: "text/plain",
                     maxForwards: o.maxForwards, notify: true, fast: fast)
        }
    }

    /// Sends one KDMQ request as a client transaction. With `notify`, its final reply goes to the
    /// membership engine (200: active, 408: failure handling), as Kamailio's notification callback.
    @discardableResult
    func send(channel: String, to node: DMQNodeAddress, body: [UInt8], contentType: String, maxForwards: Int,
              notify: Bool, fast: Bool = false) -> Bool {
        guard let table = tm.table else { return false }
        guard let (destination, via) = route(to: node) else { return false }
        // Call-ID: unique by the counter; one random draw serves both.
        let n = sequence.wrappingAdd(1, ordering: .relaxed).oldValue
        var g = FastRandom()
        let r: UInt64 = g.next()
        let callID = String(n, radix: 16) + "-" + String(r >> 32, radix: 16) + callIDSuffix
        let bytes = DMQRequest.build(
            channel: channel, to: node, from: local, viaHost: via.address.ip, viaPort: via.address.port,
            branch: table.generateBranch(), callID: callID, fromTag: String(r & 0xffff_ffff, radix: 16),
            maxForwards: maxForwards, contentType: contentType, body: body, userAgent: SLModule.server)
        guard let request = try? SIPMessage(bytes) else {
            logger.error("dmq: could not build a KDMQ request for \(node) on channel \(channel)")
            return false
        }
        let context = notify ? DMQReplyContext(node: node, notification: channel == settings.notificationChannel, fast: fast) : nil
        return start(request, to: destination, via: via, context: context, timers: fast ? fastTimers : nil)
    }

    /// The timers of a fast ping: its 408 comes after fast_timeout_ms.
    var fastTimers: TransactionTimers {
        var t = tm.timers.withLock { $0 }
        let timeout = settings.fastTimeoutMs > 0 ? settings.fastTimeoutMs : 2 * settings.fastPingMs
        t.t1 = .milliseconds(min(500, max(25, timeout / 8)))
        t.finalResponse = .milliseconds(timeout)
        return t
    }

    /// Starts a client transaction for `request` towards `destination`.
    func start(_ request: SIPMessage, to destination: SIPSocketAddress, via: SIPListener, context: DMQReplyContext?,
               timers: TransactionTimers? = nil) -> Bool {
        guard let table = tm.table else { return false }
        let peer = SIPInbound(bytes: [], source: destination, local: via, connection: nil, receivedAt: 0)
        do throws(TransactionError) {
            let (_, actions) = try table.startClientTransaction(
                request: request, peer: peer, reliable: via.address.proto != .udp,
                context: TMContext(source: (destination.ip, destination.port), inbound: nil, dmq: context),
                timers: timers, now: SystemClock().nowNanos())
            sentMessages.add(1, ordering: .relaxed)
            tm.perform(actions)
            return true
        } catch {
            logger.error("dmq: cannot send to \(destination): \(error)")
            return false
        }
    }

    /// Where a node is reached: its resolved IP and port, and the socket to send from.
    func route(to node: DMQNodeAddress) -> (SIPSocketAddress, SIPListener)? {
        let ip = membership.node(node)?.resolvedIP ?? NameResolver.shared.firstIP(host: node.host)
        guard let ip, let destination = try? SIPSocketAddress(ip: ip, port: node.port) else {
            logger.warning("dmq: cannot resolve node \(node)")
            return nil
        }
        let proto: SIPTransportProtocol = node.transport == .tcp ? .tcp : .udp
        if listener.address.proto == proto && listener.address.isIPv6 == destination.isIPv6 { return (destination, listener) }
        guard let other = transport.listeners.first(where: { $0.address.proto == proto && $0.address.isIPv6 == destination.isIPv6 }) else {
            logger.warning("dmq: no \(proto) listen socket to reach \(node)")
            return nil
        }
        return (destination, other)
    }

    // MARK: replies to what this node sent

    /// The final reply (or tm's local 408) to a KDMQ request sent with `notify`.
    func replyArrived(_ context: DMQReplyContext, _ response: SIPMessage) {
        guard let status = response.statusCode, status >= 200 else { return }
        if context.fast { _ = fastInFlight.withLock { $0.remove(context.node) } }
        if status == 200, let server = response.header(.server), server.hasPrefix("ksr ") {
            membership.markKSRHost(context.node)
        }
        let body: [UInt8] = status == 200 && context.notification ? Array(response.body) : []
        let (report, events) = membership.replyReceived(from: context.node, status: status, body: body)
        log(report, from: context.node)
        log(events, because: status == 408 ? "no reply (408)" : "reply \(status)")
        greetNew(events, except: context.node)
    }

    func log(_ report: DMQMergeReport, from sender: DMQNodeAddress?) {
        guard !report.errors.isEmpty else { return }
        let who = sender.map { "\($0)" } ?? "an unknown sender"
        logger.warning("dmq: node list from \(who): \(report.errors.prefix(5).joined(separator: "; "))\(report.errors.count > 5 ? " (and \(report.errors.count - 5) more)" : "")")
    }

    func log(_ events: [DMQEvent], because why: String) {
        for e in events {
            switch e {
            case .added(let a, let s): logger.info("dmq: node \(a) added as \(s.rawValue)")
            case .changed(let a, let from, let to): logger.notice("dmq: node \(a) \(from.rawValue) -> \(to.rawValue) (\(why))")
            case .removed(let a): logger.notice("dmq: node \(a) removed (\(why))")
            }
        }
    }

    /// KSRHost: a node learnt from a third party's list gets this node's list at once
    /// (Max-Forwards 1: no re-broadcast). It learns this node without waiting for a ping, and
    /// its 200 tells whether it is a KSRHost node, so fast pings start at once.
    func greetNew(_ events: [DMQEvent], except sender: DMQNodeAddress?, sent: [DMQOutgoing] = []) {
        let new = events.compactMap { e -> DMQNodeAddress? in
            if case .added(let a, .active) = e, a != sender, !sent.contains(where: { $0.target == a }) { return a }
            return nil
        }
        guard !new.isEmpty else { return }
        let body = Array(membership.ownListBody().utf8)
        // At most 8 per list: a hostile list of many made-up nodes must not turn into a flood.
        for a in new.prefix(8) {
            send(channel: settings.notificationChannel, to: a, body: body, contentType: "text/plain", maxForwards: 1, notify: true)
        }
    }

    // MARK: timer

    /// Join at startup (spec 5.1).
    func joinNow() {
        sendNotifications(membership.join())
    }

    /// A ping tick: the own list to every node (or a new join when alone).
    func pingTick() {
        let out = membership.ping()
        if out.isEmpty && membership.peers().isEmpty && membership.config.notificationAddresses.isEmpty {
            logger.debug("dmq: alone in the node list and no notification_address: nothing to ping")
        }
        sendNotifications(out)
    }

    /// A fast tick: the own list to every KSRHost peer without a fast ping in flight.
    func fastTick() {
        let targets = membership.nodes().filter { !$0.isLocal && $0.isKSRHost }.map(\.address)
        guard !targets.isEmpty else { return }
        let body = Array(membership.ownListBody().utf8)
        for t in targets {
            guard fastInFlight.withLock({ $0.insert(t).inserted }) else { continue }
            if !send(channel: settings.notificationChannel, to: t, body: body, contentType: "text/plain",
                     maxForwards: 1, notify: true, fast: true) {
                _ = fastInFlight.withLock { $0.remove(t) }
            }
        }
    }

    /// On shutdown: tells every active peer this node is leaving (`status=disabled`), sent once
    /// without a transaction. Kamailio 5.6 means to and does not (spec 5.7); receivers mark the
    /// node disabled at once instead of after a ping timeout.
    func announceShutdown() {
        let body = Array(membership.shutdownBody().utf8)
        for peer in membership.activePeers() {
            guard let (destination, via) = route(to: peer) else { continue }
            let bytes = DMQRequest.build(
                channel: settings.notificationChannel, to: peer, from: local, viaHost: via.address.ip, viaPort: via.address.port,
                branch: "z9hG4bK" + String(UInt64.random(in: 0...UInt64.max), radix: 16),
                callID: String(UInt64.random(in: 0...UInt64.max), radix: 16) + callIDSuffix,
                fromTag: String(UInt32.random(in: 0...UInt32.max), radix: 16), maxForwards: 1,
                contentType: "text/plain", body: body, userAgent: SLModule.server)
            if via.address.proto == .udp { transport.send(bytes, to: destination, via: via) } else { transport.send(bytes, to: destination, proto: .tcp) }
        }
    }
}

/// The DMQ timer worker: pings every ping_interval (start + k·interval, no drift), and every
/// fast_ping_ms to KSRHost peers when that is set.
final class DMQTimerBody: WorkerBody {
    let service: DMQService
    let interval: UInt64
    let fastInterval: UInt64
    var nextPing: UInt64
    var nextFast: UInt64

    init(service: DMQService, now: UInt64) {
        self.service = service
        interval = UInt64(service.settings.pingInterval) * 1_000_000_000
        fastInterval = UInt64(service.settings.fastPingMs) * 1_000_000
        nextPing = now + interval
        nextFast = fastInterval > 0 ? now + fastInterval : UInt64.max
        _ = ksr_set_timer_slack_ns(50_000)
    }

    func nextDeadline() -> UInt64? { min(nextPing, nextFast) }

    func fireDue(now: UInt64) {
        if now >= nextPing {
            service.pingTick()
            repeat { nextPing += interval } while nextPing <= now
        }
        if fastInterval > 0, now >= nextFast {
            service.fastTick()
            repeat { nextFast += fastInterval } while nextFast <= now
        }
    }

    func shutdown() {}
}

extension NameResolver {
    /// The first IP of `host` (text, no brackets), or nil when it does not resolve.
    func firstIP(host: String) -> String? { try? resolveIP(host: host) }
    /// Every IP of `host` (IPv4 first), empty when it does not resolve.
    func allIPs(host: String) -> [String] { ((try? resolve(host: host, port: 0)) ?? []).map(\.ip) }
}
