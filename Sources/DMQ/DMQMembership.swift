import Synchronization

/// Settings of the membership protocol (Kamailio 6.1 module parameters).
public struct DMQMembershipConfig: Sendable {
    /// This node (`server_address`).
    public var local: DMQNodeAddress
    /// Nodes contacted at startup and whenever this node is alone (`notification_address`).
    public var notificationAddresses: [DMQNodeAddress] = []
    /// `remove_inactive`: false keeps failed nodes `not_active` instead of disabling them.
    public var removeInactive = true
    /// `fail_count_enabled`: count timeouts per node and move by thresholds.
    public var failCountEnabled = false
    /// `fail_count_threshold_not_active`: active → not_active when the count exceeds it.
    public var failCountThresholdNotActive = 0
    /// `fail_count_threshold_disabled`: not_active → disabled when the count exceeds it.
    public var failCountThresholdDisabled = 1
    /// Most entries in the table, the local one included (KSRHost: a hostile list cannot grow
    /// the table without bound). Values below 1 act as 1.
    public var maxNodes = 256

    public init(local: DMQNodeAddress) { self.local = local }
}

/// One entry of the node table.
public struct DMQNodeInfo: Sendable, Equatable {
    public let address: DMQNodeAddress
    public let status: DMQNodeState
    /// The host's IP when the entry was created (canonical text, IPv6 without brackets).
    public let resolvedIP: String
    public let isLocal: Bool
    /// Timeouts counted since the last 200 (only with `failCountEnabled`).
    public let failCount: Int
    /// The peer identified itself as KSRHost (`DMQMembership.markKSRHost`).
    public let isKSRHost: Bool

    public init(address: DMQNodeAddress, status: DMQNodeState, resolvedIP: String, isLocal: Bool,
                failCount: Int, isKSRHost: Bool) {
        self.address = address
        self.status = status
        self.resolvedIP = resolvedIP
        self.isLocal = isLocal
        self.failCount = failCount
        self.isKSRHost = isKSRHost
    }
}

/// A notification to send: `body` as a KDMQ request on the notification channel to `target`.
public struct DMQOutgoing: Sendable, Equatable {
    public let target: DMQNodeAddress
    /// A node list (`text/plain`).
    public let body: String
    public let maxForwards: Int

    public init(target: DMQNodeAddress, body: String, maxForwards: Int) {
        self.target = target
        self.body = body
        self.maxForwards = maxForwards
    }
}

/// What merging a node-list body did.
public struct DMQMergeReport: Sendable, Equatable {
    /// Entries created.
    public var added = 0
    /// Existing entries whose status changed.
    public var changed = 0
    /// Lines rejected (unparsable, unresolvable, table full), one readable message each.
    public var errors: [String] = []

    public init() {}

    public var newOrChanged: Int { added + changed }
}

/// A membership change, for logs, metrics and events.
public enum DMQEvent: Sendable, Equatable {
    case added(DMQNodeAddress, DMQNodeState)
    case changed(DMQNodeAddress, from: DMQNodeState, to: DMQNodeState)
    case removed(DMQNodeAddress)
}

/// The node table and the membership protocol (spec 5, Kamailio 6.1 semantics) without I/O.
///
/// Thread-safe: the state lives in a `Mutex`, each method takes it once (`ping()` of a lone
/// node: once to look, then `join()`) and never blocks under it. The resolver (host name → IP, may block) is only called outside the lock and only for
/// host names; IP literals resolve to themselves. Names in a received body are resolved before
/// the merge, once per distinct name and call. A received list is read up to 256 lines (or
/// `maxNodes` when larger).
///
/// Merge rules (spec 4.3) and KSRHost's choices:
/// * a line matching no entry by host/port/transport is added with its status, `active` when
///   it has none (6.1); an unresolvable name is rejected (`cannot resolve HOST`) and the other
///   lines still merge; no fallback match by resolved IP (Kamailio ≥ 5.8 has one);
/// * a line for the local address is ignored: the local entry never changes;
/// * a status differing from an entry's replaces it, except on a `disabled` entry (a stale
///   third-party list cannot revive it) — unless the line is the sender's own: a node's word
///   about itself wins (`active` revives it, `disabled` is its shutdown notice);
/// * a line without status never changes an entry; nodes missing from a body stay.
public final class DMQMembership: Sendable {
    public let config: DMQMembershipConfig
    private let resolver: @Sendable (String) -> String?
    private let state: Mutex<State>

    /// `resolver` maps a host name to an IP address (nil: unknown); it is never asked about IP
    /// literals.
    public init(config: DMQMembershipConfig,
                resolver: @escaping @Sendable (String) -> String? = { _ in nil }) {
        self.config = config
        self.resolver = resolver
        let local = config.local
        let ip = IPText.canonical(local.host) ?? resolver(local.host).map(Self.canonicalIP) ?? ""
        let entry = Entry(address: local, status: .active, resolvedIP: ip, isLocal: true)
        state = Mutex(State(order: [local], entries: [local: entry]))
    }

    // MARK: Protocol

    /// Startup join (spec 5.1): adds each notification address as `active` (the local address,
    /// addresses already present and names the resolver cannot resolve are skipped; those are
    /// tried again at the next join), then returns the own line only
    /// (`sip:self;status=active`) for every non-local node, whatever its state, with
    /// Max-Forwards 2.
    public func join() -> [DMQOutgoing] {
        let names = resolveNames(config.notificationAddresses.map(\.host))
        let body = DMQNodeList.render([(config.local, .active)])
        return state.withLock { s in
            for a in config.notificationAddresses where s.entries[a] == nil {
                guard s.entries.count < maxNodes, let ip = Self.ip(of: a.host, names) else { continue }
                s.insert(Entry(address: a, status: .active, resolvedIP: ip, isLocal: false))
            }
            return s.nonLocal.map { DMQOutgoing(target: $0.address, body: body, maxForwards: 2) }
        }
    }

    /// Periodic ping (spec 5.3): when the table holds only the local node, `join()` if
    /// notification addresses are configured, else nothing; otherwise the own list with
    /// Max-Forwards 1 to every non-local node, whatever its state.
    public func ping() -> [DMQOutgoing] {
        let list: [DMQOutgoing]? = state.withLock { s in
            let others = s.nonLocal
            guard !others.isEmpty else { return nil }
            let body = s.ownListBody(config.local)
            return others.map { DMQOutgoing(target: $0.address, body: body, maxForwards: 1) }
        }
        if let list { return list }
        return config.notificationAddresses.isEmpty ? [] : join()
    }

    /// A KDMQ request on the notification channel (spec 5.2), `sender` being the node of its
    /// From URI: `mf` = Max-Forwards - 1 (no header: 0); the body is merged; `reply` is the own
    /// list after the merge (answer it with 200, `text/plain`); when something was added or
    /// changed and `mf > 0`, `rebroadcast` holds the own list with Max-Forwards `mf` for every
    /// active non-local node, the sender included.
    public func receivedNotification(body: some Collection<UInt8>, maxForwards: Int?,
                                     sender: DMQNodeAddress?)
        -> (reply: String, rebroadcast: [DMQOutgoing], report: DMQMergeReport, events: [DMQEvent]) {
        let mf = (maxForwards ?? 1) - 1
        let parsed = DMQNodeList.parse(body, maxLines: maxLines)
        let names = resolveNames(parsed.lines.map(\.address.host))
        return state.withLock { s in
            var report = DMQMergeReport()
            report.errors = parsed.errors
            var events: [DMQEvent] = []
            s.merge(parsed.lines, sender: sender, names: names, local: config.local,
                    maxNodes: maxNodes, report: &report, events: &events)
            let reply = s.ownListBody(config.local)
            var rebroadcast: [DMQOutgoing] = []
            if report.newOrChanged > 0, mf > 0 {
                rebroadcast = s.nonLocal.filter { $0.status == .active }
                    .map { DMQOutgoing(target: $0.address, body: reply, maxForwards: mf) }
            }
            return (reply, rebroadcast, report, events)
        }
    }

    /// The final reply to a notification or script message this node sent to `node`
    /// (spec 5.4, 5.6 G2).
    ///
    /// * 200: `node` becomes active with fail count 0 (an unknown node is not added by that),
    ///   then a non-empty body is merged as a node list with `node` as sender;
    /// * 408 (the local timeout): on a disabled node, removal; with `failCountEnabled`, the
    ///   count grows and at most one step is taken (active → not_active when the count exceeds
    ///   `failCountThresholdNotActive`, not_active → disabled when it exceeds
    ///   `failCountThresholdDisabled`); else a configured notification address (same identity)
    ///   or `removeInactive == false` gives not_active, anything else disabled;
    /// * other codes: nothing.
    ///
    /// `report` covers the body merge only; `events` also holds the change made by the code.
    /// The local node never changes.
    public func replyReceived(from node: DMQNodeAddress, status: Int, body: some Collection<UInt8>)
        -> (report: DMQMergeReport, events: [DMQEvent]) {
        let parsed: (lines: [DMQNodeList.Line], errors: [String]) =
            status == 200 && !body.isEmpty ? DMQNodeList.parse(body, maxLines: maxLines) : ([], [])
        let names = resolveNames(parsed.lines.map(\.address.host))
        return state.withLock { s in
            var report = DMQMergeReport()
            var events: [DMQEvent] = []
            guard node != config.local else { return (report, events) }
            switch status {
            case 200:
                if var e = s.entries[node] {
                    if e.status != .active { events.append(.changed(node, from: e.status, to: .active)) }
                    e.status = .active
                    e.failCount = 0
                    s.entries[node] = e
                }
                report.errors = parsed.errors
                s.merge(parsed.lines, sender: node, names: names, local: config.local,
                        maxNodes: maxNodes, report: &report, events: &events)
            case 408:
                if let e = s.timeout(node, config) { events.append(e) }
            default:
                break
            }
            return (report, events)
        }
    }

    // MARK: Queries

    /// Active non-local nodes, in table order (broadcast targets).
    public func activePeers() -> [DMQNodeAddress] {
        state.withLock { s in s.nonLocal.filter { $0.status == .active }.map(\.address) }
    }

    /// Every non-local node, in table order.
    public func peers() -> [DMQNodeAddress] { state.withLock { s in s.nonLocal.map(\.address) } }

    public func node(_ address: DMQNodeAddress) -> DMQNodeInfo? {
        state.withLock { s in s.entries[address]?.info }
    }

    /// Kamailio's `is_from_node`: true when `ip` (a source address; IPv6 with or without
    /// brackets) equals the resolved IP of a non-local entry in any state.
    public func isNode(ip: String) -> Bool {
        let want = IPText.canonical(ip) ?? ip
        return state.withLock { s in s.nonLocal.contains { $0.resolvedIP == want } }
    }

    /// Every entry, the local one included, in insertion order.
    public func nodes() -> [DMQNodeInfo] {
        state.withLock { s in s.order.compactMap { s.entries[$0]?.info } }
    }

    /// Local + every active non-local node, rendered (the body of 200s, pings, re-broadcasts).
    public func ownListBody() -> String { state.withLock { s in s.ownListBody(config.local) } }

    /// The body for a graceful shutdown (spec 5.7): `sip:self;status=disabled` + CRLF.
    public func shutdownBody() -> String { DMQNodeList.render([(config.local, .disabled)]) }

    /// Non-local entries per state; every state is present (0 included).
    public func counts() -> [DMQNodeState: Int] {
        state.withLock { s in
            var out = Dictionary(uniqueKeysWithValues: DMQNodeState.allCases.map { ($0, 0) })
            for e in s.nonLocal { out[e.status, default: 0] += 1 }
            return out
        }
    }

    // MARK: Changes by hand

    /// RPC `dmq.remove`: deletes a non-local entry; false when none matched or it is local.
    @discardableResult public func remove(_ address: DMQNodeAddress) -> Bool {
        state.withLock { s in
            guard let e = s.entries[address], !e.isLocal else { return false }
            s.delete(address)
            return true
        }
    }

    /// Remembers that a peer identified itself as KSRHost (no-op for unknown addresses); kept
    /// until the entry is removed.
    public func markKSRHost(_ address: DMQNodeAddress) {
        state.withLock { s in s.entries[address]?.isKSRHost = true }
    }

    /// Adds a node by hand (tests, RPC `dmq.add`); false when present, when the table is full
    /// or when its host name cannot be resolved.
    @discardableResult public func add(_ address: DMQNodeAddress, status: DMQNodeState) -> Bool {
        let names = resolveNames([address.host])
        return state.withLock { s in
            guard s.entries[address] == nil, s.entries.count < maxNodes,
                  let ip = Self.ip(of: address.host, names) else { return false }
            s.insert(Entry(address: address, status: status, resolvedIP: ip, isLocal: false))
            return true
        }
    }

    // MARK: Internals

    private var maxNodes: Int { max(config.maxNodes, 1) }

    /// Lines read from a received list: 256, or `maxNodes` when larger.
    private var maxLines: Int { max(config.maxNodes, 256) }

    /// Resolver answers for the host names among `hosts` (IP literals skipped, each name asked
    /// once). Called outside the lock.
    private func resolveNames(_ hosts: [String]) -> [String: String] {
        var out: [String: String] = [:]
        var asked: Set<String> = []
        for h in hosts where IPText.canonical(h) == nil && asked.insert(h).inserted {
            if let ip = resolver(h) { out[h] = Self.canonicalIP(ip) }
        }
        return out
    }

    private static func canonicalIP(_ s: String) -> String { IPText.canonical(s) ?? s }

    /// The IP of `host`: itself when an IP literal, else the resolver's answer.
    fileprivate static func ip(of host: String, _ names: [String: String]) -> String? {
        IPText.canonical(host) ?? names[host]
    }

    fileprivate struct Entry: Sendable {
        var address: DMQNodeAddress
        var status: DMQNodeState
        var resolvedIP: String
        var isLocal: Bool
        var failCount = 0
        var isKSRHost = false

        var info: DMQNodeInfo {
            DMQNodeInfo(address: address, status: status, resolvedIP: resolvedIP, isLocal: isLocal,
                        failCount: failCount, isKSRHost: isKSRHost)
        }
    }

    fileprivate struct State: Sendable {
        /// Insertion order; the local address first.
        var order: [DMQNodeAddress]
        var entries: [DMQNodeAddress: Entry]

        var nonLocal: [Entry] { order.compactMap { a in entries[a].flatMap { $0.isLocal ? nil : $0 } } }

        mutating func insert(_ e: Entry) {
            order.append(e.address)
            entries[e.address] = e
        }

        mutating func delete(_ a: DMQNodeAddress) {
            entries[a] = nil
            order.removeAll { $0 == a }
        }

        func ownListBody(_ local: DMQNodeAddress) -> String {
            DMQNodeList.render([(local, .active)]
                + nonLocal.filter { $0.status == .active }.map { ($0.address, .active) })
        }

        /// Spec 4.3 with KSRHost's rules (see `DMQMembership`).
        mutating func merge(_ lines: [DMQNodeList.Line], sender: DMQNodeAddress?,
                            names: [String: String], local: DMQNodeAddress, maxNodes: Int,
                            report: inout DMQMergeReport, events: inout [DMQEvent]) {
            for line in lines {
                let a = line.address
                if a == local { continue }
                if var e = entries[a] {
                    guard !e.isLocal, let s = line.status, s != e.status else { continue }
                    guard e.status != .disabled || a == sender else { continue }
                    events.append(.changed(a, from: e.status, to: s))
                    e.status = s
                    entries[a] = e
                    report.changed += 1
                    continue
                }
                guard entries.count < maxNodes else {
                    report.errors.append("node table full (\(maxNodes) entries): \(quoted(a.uri)) not added")
                    continue
                }
                guard let ip = DMQMembership.ip(of: a.host, names) else {
                    report.errors.append("cannot resolve \(quoted(a.host))")
                    continue
                }
                let s = line.status ?? .active
                insert(Entry(address: a, status: s, resolvedIP: ip, isLocal: false))
                events.append(.added(a, s))
                report.added += 1
            }
        }

        /// A 408 for `a` (G2 order, see `replyReceived`); the change made, if any.
        mutating func timeout(_ a: DMQNodeAddress, _ config: DMQMembershipConfig) -> DMQEvent? {
            guard var e = entries[a], !e.isLocal else { return nil }
            let old = e.status
            if old == .disabled {
                delete(a)
                return .removed(a)
            }
            if config.failCountEnabled {
                e.failCount += 1
                if old == .active, e.failCount > config.failCountThresholdNotActive {
                    e.status = .notActive
                } else if old == .notActive, e.failCount > config.failCountThresholdDisabled {
                    e.status = .disabled
                }
            } else if config.notificationAddresses.contains(a) || !config.removeInactive {
                e.status = .notActive
            } else {
                e.status = .disabled
            }
            entries[a] = e
            return e.status == old ? nil : .changed(a, from: old, to: e.status)
        }
    }
}
