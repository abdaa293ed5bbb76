import SIP
import Synchronization

/// Kamailio tm's transaction table over the four RFC 3261 machines: creates, finds and removes
/// transactions, drives their timers and links the client transactions of a relayed request
/// (its branches) to the server transaction it came in.
///
/// Pure and I/O-free: every operation returns `Action`s for the host to perform (send bytes,
/// hand a response to the script, run failure handling, ...). Time is the host's monotonic
/// clock in nanoseconds, passed in. The host drives timers: after any call, `nextDeadline()`
/// tells when `fire(now:)` is next due (it may only have moved earlier after a call that
/// created or changed a transaction).
///
/// `Peer` is where a transaction's messages go (the host's address/connection/socket);
/// `Context` is the host's per-transaction data (Lua route names, ...), copied into the
/// actions that concern the transaction. Thread-safe: the transactions are spread over
/// `shardCount` shards, each behind its own mutex, so that receiver workers sharing a table
/// rarely wait for each other. A transaction's shard follows from its Via branch alone, so a
/// request, its ACK and its CANCEL meet in one shard; the branches of a relayed request are
/// put in their server transaction's shard (`generateBranch(for:)`), so that every operation
/// takes exactly one lock.
///
/// Typical use (a stateful proxy, Kamailio's `t_relay`):
/// 1. request in: `lookupRequest` → `.retransmission`/`.ack` absorbed (perform the actions),
///    `.notFound` → run the script; `createServerTransaction` (`t_newtran`);
/// 2. `SIPProxy.forwardRequest` with `generateBranch(for:)` (or `generateBranch(forRequest:)`),
///    then `startClientTransaction(parent:)`;
/// 3. response in: `receiveResponse` → `.response` actions (run the reply route, then
///    `relayResponse` for provisional and 2xx responses);
///    `.allBranchesFailed` → run the failure route, or `relayResponse(best)`;
/// 4. `reply` for local answers (`t_reply`), `suspend`/`resume` for async processing.
public final class TransactionTable<Peer: Sendable, Context: Sendable>: Sendable {
    /// What the host has to do.
    public enum Action: Sendable {
        /// Send `bytes` to `peer` for transaction `id`.
        case send(TransactionID, bytes: [UInt8], to: Peer, retransmission: Bool)
        /// A client transaction passes a response (received or a synthesized 408/503) to the
        /// TU. `parent` is the server transaction it is a branch of.
        case response(TransactionID, parent: TransactionID?, SIPMessage, ResponseOrigin, Context)
        /// Every branch of server transaction `id` has a final response, none is a 2xx and the
        /// server transaction has sent no final response: run the failure route, or relay
        /// `best` (`relayResponse`). `branch` is the client transaction `best` came from.
        case allBranchesFailed(TransactionID, best: SIPMessage, origin: ResponseOrigin,
                               branch: TransactionID, Context)
        /// A server transaction's time ran out (see `ServerTimeout`).
        case serverTimeout(TransactionID, ServerTimeout, Context)
        /// The transaction is gone (not reported for the CANCEL transactions the table makes).
        case terminated(TransactionID, TransactionKind, Context)
    }

    /// What `lookupRequest` found.
    public enum RequestMatch: Sendable {
        /// No transaction: a new request (or an ACK for a 2xx, or a CANCEL): run the script.
        case notFound
        /// A retransmission, absorbed; perform the actions (re-sent response, if any).
        case retransmission(TransactionID, [Action])
        /// An ACK for a non-2xx final response of INVITE server transaction `id`, absorbed.
        case ack(TransactionID, [Action])
    }

    public enum CreateResult: Sendable {
        case created(TransactionID)
        /// The transaction exists (another worker created it): the request was a retransmission
        /// and has been absorbed.
        case retransmission(TransactionID, [Action])
    }

    public enum ResponseMatch: Sendable {
        /// No client transaction: forward statelessly or drop.
        case notFound
        case matched(TransactionID, [Action])
    }

    /// A snapshot of one transaction.
    public struct Info: Sendable {
        public let id: TransactionID
        public let kind: TransactionKind
        public let key: TransactionKey
        public let method: SIPMethod
        public let state: TransactionState
        public let reliable: Bool
        public let isSuspended: Bool
        /// Server: it sent a response (provisional or final).
        public let hasResponded: Bool
        /// Client: the server transaction it is a branch of.
        public let parent: TransactionID?
        /// Server: its branches (client transactions), oldest first.
        public let branches: [TransactionID]
        /// A CANCEL client transaction the table started itself.
        public let isInternalCancel: Bool
        public let nextDeadline: UInt64?
    }

    /// Counters for metrics.
    public struct Stats: Sendable, Hashable {
        public var activeServer = 0
        public var activeClient = 0
        public var createdServer = 0
        public var createdClient = 0
        /// Request retransmissions absorbed by server transactions, response retransmissions
        /// absorbed by client transactions, ACKs absorbed.
        public var absorbedRetransmissions = 0
        /// Retransmissions sent (requests by Timers A/E, responses by G or on absorption, ACKs).
        public var sentRetransmissions = 0
        /// 408s synthesized by client transactions.
        public var clientTimeouts = 0
        /// Server timeouts (suspension, no ACK, lifetime).
        public var serverTimeouts = 0
        /// Transport errors reported.
        public var transportErrors = 0
        public init() {}
    }

    struct Branch: Sendable {
        let id: TransactionID
        var final: SIPMessage?
        var origin: ResponseOrigin = .network
    }

    struct Entry: Sendable {
        var machine: Machine
        let key: TransactionKey
        let peer: Peer
        var context: Context
        let parent: TransactionID?
        var branches: [Branch] = []
        let isInternalCancel: Bool
        var scheduledAt: UInt64? = nil
    }

    /// The earliest deadline scheduled since the timer side last cleared it (UInt64.max: none),
    /// readable without the table's lock.
    final class ScheduledHint: Sendable {
        let earliest = Atomic<UInt64>(UInt64.max)
        func lower(to t: UInt64) {
            var current = earliest.load(ordering: .relaxed)
            while t < current {
                let (exchanged, original) = earliest.compareExchange(expected: current, desired: t, ordering: .acquiringAndReleasing)
                if exchanged { return }
                current = original
            }
        }
    }

    /// How many server transactions exist, readable without a lock: a host that answers
    /// statelessly (no server transactions at all) skips the lookup of every request.
    final class ServerCount: Sendable {
        let value = Atomic<Int>(0)
    }

    /// An entry on the heap: the dictionary holds a pointer, not the entry (about 850 bytes),
    /// so that its buckets stay small (reserved buckets cost resident memory once entries land
    /// in them at random) and an entry is changed in place. Touched only under its shard's lock.
    final class Box: @unchecked Sendable {
        var entry: Entry
        init(_ entry: Entry) { self.entry = entry }
    }

    /// The entries of a shard by ID, with a dictionary's surface.
    struct EntryMap: Sendable {
        private var boxes: [TransactionID: Box] = [:]

        subscript(id: TransactionID) -> Entry? {
            get { boxes[id]?.entry }
            set {
                if let newValue {
                    if let box = boxes[id] { box.entry = newValue } else { boxes[id] = Box(newValue) }
                } else {
                    boxes[id] = nil
                }
            }
        }

        func contains(_ id: TransactionID) -> Bool { boxes[id] != nil }
        func box(_ id: TransactionID) -> Box? { boxes[id] }
        var count: Int { boxes.count }
        mutating func reserveCapacity(_ n: Int) { boxes.reserveCapacity(n) }
        mutating func removeValue(forKey id: TransactionID) -> Entry? { boxes.removeValue(forKey: id)?.entry }
    }

    struct Storage: Sendable {
        let hint: ScheduledHint
        let servers: ServerCount
        var entries = EntryMap()
        var server: [TransactionKey: TransactionID] = [:]
        var client: [TransactionKey: TransactionID] = [:]

        /// Room for `capacity` transactions from the start: growing a dictionary rehashes
        /// every entry under the shard's lock (with one table-wide lock and inline entries, a
        /// 10-30 ms stall of every worker at 8k and 16k transactions). A bucket is an ID and a
        /// box pointer, so the room reserved costs little memory.
        init(hint: ScheduledHint, servers: ServerCount, capacity: Int) {
            self.hint = hint
            self.servers = servers
            entries.reserveCapacity(capacity)
            server.reserveCapacity(capacity)
            client.reserveCapacity(capacity)
        }
        var heap = DeadlineHeap()
        var nextLabel: UInt32 = 0
        var stats = Stats()
    }

    final class Shard: Sendable {
        let storage: Mutex<Storage>
        init(_ storage: Storage) { self.storage = Mutex(storage) }
    }

    /// How many shards (locks) the transactions are spread over: a power of two, at most 16
    /// (one hex digit of our branches names it).
    public static var shardCount: Int { 16 }

    /// The timers new transactions get unless given their own.
    public let timers: TransactionTimers
    private let shards: [Shard]
    private let hint = ScheduledHint()
    private let servers = ServerCount()
    private let branchShard = Atomic<Int>(0)

    /// `capacity`: about how many transactions to make room for up front (spread over the shards,
    /// with room for an uneven spread).
    public init(timers: TransactionTimers = TransactionTimers(), capacity: Int = 0) {
        self.timers = timers
        let perShard = capacity > 0 ? capacity / Self.shardCount * 2 : 0
        var made: [Shard] = []
        let (hint, servers) = (self.hint, self.servers)
        for _ in 0..<Self.shardCount { made.append(Shard(Storage(hint: hint, servers: servers, capacity: perShard))) }
        shards = made
    }

    /// The shard of a key: from the branch alone. Our branches carry it as their first hex digit
    /// after the magic cookie; other branches (a server transaction's) are hashed.
    static func shardIndex(_ key: TransactionKey) -> Int {
        shardIndex(branch: key.branch, ours: !key.isServer)
    }

    static func shardIndex(branch: String, ours: Bool) -> Int {
        let utf8 = branch.utf8
        if ours, utf8.count > 7, let digit = hexValue(utf8[utf8.index(utf8.startIndex, offsetBy: 7)]) {
            return digit & (shardCount - 1)
        }
        var h: UInt32 = 2_166_136_261  // FNV-1a
        for b in utf8 { h = (h ^ UInt32(b)) &* 16_777_619 }
        return Int(h >> 8) & (shardCount - 1)
    }

    private static func hexValue(_ c: UInt8) -> Int? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): Int(c - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): Int(c - UInt8(ascii: "a")) + 10
        default: nil
        }
    }

    @inline(__always) private func shard(_ key: TransactionKey) -> Shard { shards[Self.shardIndex(key)] }
    @inline(__always) private func shard(_ id: TransactionID) -> Shard { shards[Int(id.index) & (Self.shardCount - 1)] }

    /// The earliest deadline any operation scheduled since `clearNewDeadlines()` (UInt64.max:
    /// none), without taking the table's lock: lets a timer thread be woken only when an
    /// operation needs it earlier than it planned.
    public var earliestNewDeadline: UInt64 { hint.earliest.load(ordering: .acquiring) }

    /// Forgets the deadlines `earliestNewDeadline` reported (call before `nextDeadline()`).
    public func clearNewDeadlines() { hint.earliest.store(UInt64.max, ordering: .releasing) }

    /// A new Via branch (`z9hG4bK...`, unique and unguessable) for a client transaction with
    /// no parent; successive ones go to successive shards.
    public func generateBranch() -> String {
        BranchGenerator.next(shard: branchShard.wrappingAdd(1, ordering: .relaxed).oldValue & (Self.shardCount - 1))
    }

    /// A branch for a client transaction of server transaction `parent` (a relayed request):
    /// it lands in the parent's shard, as `startClientTransaction(parent:)` requires.
    public func generateBranch(for parent: TransactionID) -> String {
        BranchGenerator.next(shard: Int(parent.index) & (Self.shardCount - 1))
    }

    /// A branch for relaying `request`: in the shard of the server transaction it has or will
    /// have (so it can be made a branch of it); any branch if it cannot have one.
    public func generateBranch(forRequest request: SIPMessage) -> String {
        guard let key = try? TransactionKey.server(for: request) else { return generateBranch() }
        return BranchGenerator.next(shard: Self.shardIndex(key))
    }

    // MARK: Server side

    /// Finds the server transaction of a received request and lets it absorb the request:
    /// a retransmission (the last response re-sent when there is one) or an ACK for a non-2xx
    /// final response. Requests without an RFC 3261 branch are never matched.
    public func lookupRequest(_ request: SIPMessage, now: UInt64) -> RequestMatch {
        // None at all: nothing to parse or lock. (A request whose transaction another worker is
        // creating right now is absorbed by `createServerTransaction`.)
        guard servers.value.load(ordering: .relaxed) > 0,
              let key = try? TransactionKey.server(for: request) else { return .notFound }
        return shard(key).storage.withLock { s -> RequestMatch in
            guard let id = s.server[key], s.entries.contains(id) else { return .notFound }
            var actions: [Action] = []
            // The machine changes in place (a copy of the entry would copy its buffers).
            if request.method == .ack {
                guard let effects = s.peek(id, { $0.machine.receiveACK(now: now) }) ?? nil else { return .notFound }
                s.apply(id, effects, now: now, into: &actions)
                return .ack(id, actions)
            }
            let effects = s.peek(id) { $0.machine.receiveRetransmission(now: now) } ?? []
            s.apply(id, effects, now: now, into: &actions)
            return .retransmission(id, actions)
        }
    }

    /// Creates the server transaction for a request (Kamailio `t_newtran`), or absorbs the
    /// request when the transaction exists. `peer` is where responses go.
    public func createServerTransaction(for request: SIPMessage, peer: Peer, reliable: Bool,
                                        context: Context, timers: TransactionTimers? = nil,
                                        now: UInt64) throws(TransactionError) -> CreateResult {
        guard let method = request.method else { throw .malformed("not a request") }
        guard method != .ack else { throw .ackCreatesNoTransaction }
        let key = try TransactionKey.server(for: request)
        let t = timers ?? self.timers
        return shard(key).storage.withLock { s -> CreateResult in
            if let id = s.server[key], var e = s.entries[id] {
                var actions: [Action] = []
                let effects = e.machine.receiveRetransmission(now: now)
                s.entries[id] = e
                s.apply(id, effects, now: now, into: &actions)
                return .retransmission(id, actions)
            }
            let machine: Machine = method == .invite
                ? .inviteServer(ServerInviteTransaction(request: request, reliable: reliable, timers: t))
                : .nonInviteServer(ServerNonInviteTransaction(request: request, reliable: reliable, timers: t))
            let id = s.allocateID(for: key)
            s.entries[id] = Entry(machine: machine, key: key, peer: peer, context: context,
                                  parent: nil, isInternalCancel: false)
            s.server[key] = id
            s.servers.value.add(1, ordering: .relaxed)
            s.stats.createdServer += 1
            var actions: [Action] = []
            let effects = s.peek(id) { $0.machine.start(now: now) } ?? []
            s.apply(id, effects, now: now, into: &actions)
            return .created(id)
        }
    }

    /// The INVITE server transaction a received CANCEL cancels (same branch and sent-by).
    public func inviteTransaction(cancelledBy cancel: SIPMessage) -> TransactionID? {
        guard cancel.method == .cancel, let key = try? TransactionKey.cancelledInvite(by: cancel) else { return nil }
        return shard(key).storage.withLock { $0.server[key] }
    }

    /// Sends a response on server transaction `id` (Kamailio `t_reply`). A final response of an
    /// INVITE server transaction also cancels its pending branches (RFC 3261 §16.7 step 10), as
    /// does a 6xx received on one of its branches (step 5).
    public func reply(_ id: TransactionID, status: Int, bytes: [UInt8], now: UInt64) throws(TransactionError) -> [Action] {
        try shard(id).storage.withLock { s throws(TransactionError) -> [Action] in
            guard var e = s.entries[id] else { throw .notFound }
            let effects = try e.machine.respond(status: status, bytes: bytes, now: now)
            s.entries[id] = e
            var actions: [Action] = []
            s.apply(id, effects, now: now, into: &actions)
            if status >= 200, e.machine.kind == .inviteServer {
                s.cancelPendingBranches(of: e, now: now, into: &actions)
            }
            return actions
        }
    }

    /// Relays a response received by a branch upstream on server transaction `id`: the top Via
    /// removed (`SIPProxy.forwardResponse`), then `reply`.
    public func relayResponse(_ id: TransactionID, response: SIPMessage, now: UInt64) throws(TransactionError) -> [Action] {
        guard let status = response.statusCode else { throw .malformed("not a response") }
        guard let bytes = SIPProxy.forwardResponse(response) else { throw .malformed("no Via left to relay to") }
        return try reply(id, status: status, bytes: bytes, now: now)
    }

    /// Marks server transaction `id` suspended (Kamailio `t_suspend`): it keeps absorbing
    /// retransmissions and arms fr_timer (fr_inv_timer for INVITE), after which the host gets
    /// `.serverTimeout(id, .finalResponse, _)`.
    public func suspend(_ id: TransactionID, now: UInt64) throws(TransactionError) {
        try shard(id).storage.withLock { s throws(TransactionError) in
            guard var e = s.entries[id] else { throw .notFound }
            let effects = try e.machine.suspend(now: now)
            s.entries[id] = e
            var actions: [Action] = []
            s.apply(id, effects, now: now, into: &actions)
        }
    }

    /// Ends the suspension (Kamailio `t_continue`). Throws `.notSuspended` when it was not
    /// suspended or its suspension timed out already (the script must not continue then).
    public func resume(_ id: TransactionID, now: UInt64) throws(TransactionError) {
        try shard(id).storage.withLock { s throws(TransactionError) in
            guard var e = s.entries[id] else { throw .notFound }
            let effects = try e.machine.resume()
            s.entries[id] = e
            var actions: [Action] = []
            s.apply(id, effects, now: now, into: &actions)
        }
    }

    // MARK: Client side

    /// Starts a client transaction for `request` (whose top Via carries our branch), sending
    /// it to `peer`. With `parent`, it is a branch of that server transaction.
    public func startClientTransaction(request: SIPMessage, peer: Peer, reliable: Bool,
                                       context: Context, parent: TransactionID? = nil,
                                       timers: TransactionTimers? = nil,
                                       now: UInt64) throws(TransactionError) -> (TransactionID, [Action]) {
        guard let method = request.method else { throw .malformed("not a request") }
        guard method != .ack else { throw .ackCreatesNoTransaction }
        let key = try TransactionKey.client(forRequest: request)
        let t = timers ?? self.timers
        if let parent, Int(parent.index) & (Self.shardCount - 1) != Self.shardIndex(key) {
            throw .malformed("the branch of a relayed request must come from generateBranch(for:) or generateBranch(forRequest:)")
        }
        return try shard(key).storage.withLock { s throws(TransactionError) -> (TransactionID, [Action]) in
            guard s.client[key] == nil else { throw .duplicate }
            if let parent {
                guard s.peek(parent, { $0.machine.kind.isServer }) == true else { throw .notFound }
            }
            let machine: Machine = method == .invite
                ? .inviteClient(ClientInviteTransaction(request: request, reliable: reliable, timers: t))
                : .nonInviteClient(ClientNonInviteTransaction(request: request, reliable: reliable, timers: t))
            let id = s.allocateID(for: key)
            s.entries[id] = Entry(machine: machine, key: key, peer: peer, context: context,
                                  parent: parent, isInternalCancel: false)
            s.client[key] = id
            s.stats.createdClient += 1
            if let parent { s.peek(parent) { $0.branches.append(Branch(id: id)) } }
            var actions: [Action] = []
            let effects = s.peek(id) { $0.machine.start(now: now) } ?? []
            s.apply(id, effects, now: now, into: &actions)
            return (id, actions)
        }
    }

    /// Matches a received response to its client transaction (top Via branch + CSeq method).
    public func receiveResponse(_ response: SIPMessage, now: UInt64) -> ResponseMatch {
        guard let key = try? TransactionKey.client(forResponse: response) else { return .notFound }
        return shard(key).storage.withLock { s -> ResponseMatch in
            guard let id = s.client[key], s.entries.contains(id) else { return .notFound }
            let effects = s.peek(id) { $0.machine.receive(response: response, now: now) } ?? []
            var actions: [Action] = []
            s.apply(id, effects, now: now, into: &actions)
            return .matched(id, actions)
        }
    }

    /// Cancels INVITE client transaction `id`: a CANCEL client transaction is started now if a
    /// provisional response has arrived, else as soon as one does.
    public func cancel(_ id: TransactionID, now: UInt64) throws(TransactionError) -> [Action] {
        try shard(id).storage.withLock { s throws(TransactionError) -> [Action] in
            guard var e = s.entries[id] else { throw .notFound }
            let effects = try e.machine.requestCancel(now: now)
            s.entries[id] = e
            var actions: [Action] = []
            s.apply(id, effects, now: now, into: &actions)
            return actions
        }
    }

    /// Cancels every INVITE branch of server transaction `id` that has no final response
    /// (a CANCEL came in, or a final response was sent another way).
    public func cancelBranches(of id: TransactionID, now: UInt64) throws(TransactionError) -> [Action] {
        try shard(id).storage.withLock { s throws(TransactionError) -> [Action] in
            guard let e = s.entries[id] else { throw .notFound }
            var actions: [Action] = []
            s.cancelPendingBranches(of: e, now: now, into: &actions)
            return actions
        }
    }

    // MARK: Both

    /// The transport could not send for transaction `id`: a client transaction delivers a 503
    /// (if it had no final response) and terminates; a server transaction terminates.
    public func transportError(_ id: TransactionID, now: UInt64) -> [Action] {
        shard(id).storage.withLock { s -> [Action] in
            guard var e = s.entries[id] else { return [] }
            s.stats.transportErrors += 1
            let effects = e.machine.transportError()
            s.entries[id] = e
            var actions: [Action] = []
            s.apply(id, effects, now: now, into: &actions)
            return actions
        }
    }

    /// Terminates transaction `id` at once (nothing delivered, only `.terminated`).
    public func terminate(_ id: TransactionID, now: UInt64) -> [Action] {
        shard(id).storage.withLock { s -> [Action] in
            guard var e = s.entries[id] else { return [] }
            let effects = e.machine.terminate()
            s.entries[id] = e
            var actions: [Action] = []
            s.apply(id, effects, now: now, into: &actions)
            return actions
        }
    }

    /// The earliest time `fire(now:)` has work, if any.
    public func nextDeadline() -> UInt64? {
        var earliest: UInt64?
        for shard in shards {
            let next = shard.storage.withLock { s -> UInt64? in
                while let top = s.heap.peek {
                    if s.peek(top.id, { $0.scheduledAt }) == top.at { return top.at }
                    s.heap.pop()
                }
                return nil
            }
            if let next, next < earliest ?? .max { earliest = next }
        }
        return earliest
    }

    /// Runs every timer due at `now`.
    public func fire(now: UInt64) -> [Action] {
        var actions: [Action] = []
        for shard in shards {
            shard.storage.withLock { s in
                while let top = s.heap.peek, top.at <= now {
                    s.heap.pop()
                    guard s.peek(top.id, { $0.scheduledAt }) == top.at else { continue }
                    s.peek(top.id) { $0.scheduledAt = nil }
                    let effects = s.peek(top.id) { $0.machine.fire(now: now) } ?? []
                    s.apply(top.id, effects, now: now, into: &actions)
                }
            }
        }
        return actions
    }

    // MARK: Lookup and data

    /// The transaction (server or client, per `key.isServer`) with this key, without touching it.
    public func find(_ key: TransactionKey) -> TransactionID? {
        shard(key).storage.withLock { key.isServer ? $0.server[key] : $0.client[key] }
    }

    public func info(_ id: TransactionID) -> Info? {
        shard(id).storage.withLock { s -> Info? in
            guard let e = s.entries[id] else { return nil }
            return Info(id: id, kind: e.machine.kind, key: e.key, method: e.machine.request.method ?? .other(""),
                        state: e.machine.state, reliable: e.machine.reliable,
                        isSuspended: e.machine.isSuspended, hasResponded: e.machine.responded, parent: e.parent,
                        branches: e.branches.map(\.id), isInternalCancel: e.isInternalCancel,
                        nextDeadline: e.machine.nextDeadline)
        }
    }

    /// The request the transaction was created for (server: as received; client: as sent).
    public func request(of id: TransactionID) -> SIPMessage? {
        shard(id).storage.withLock { $0.entries[id]?.machine.request }
    }

    public func context(of id: TransactionID) -> Context? {
        shard(id).storage.withLock { $0.entries[id]?.context }
    }

    /// Changes a transaction's context in place; nil when there is no such transaction.
    /// `body` runs under the table's lock: keep it short and do not call the table from it.
    @discardableResult
    public func withContext<R: Sendable>(of id: TransactionID, _ body: (inout Context) -> R) -> R? {
        shard(id).storage.withLock { s -> R? in
            guard let box = s.entries.box(id) else { return nil }
            return body(&box.entry.context)
        }
    }

    public var stats: Stats {
        var total = Stats()
        for shard in shards {
            shard.storage.withLock { s in
                total.activeServer += s.server.count
                total.activeClient += s.client.count
                total.createdServer += s.stats.createdServer
                total.createdClient += s.stats.createdClient
                total.absorbedRetransmissions += s.stats.absorbedRetransmissions
                total.sentRetransmissions += s.stats.sentRetransmissions
                total.clientTimeouts += s.stats.clientTimeouts
                total.serverTimeouts += s.stats.serverTimeouts
                total.transportErrors += s.stats.transportErrors
            }
        }
        return total
    }

    /// How many transactions exist.
    public var count: Int { shards.reduce(0) { n, shard in n + shard.storage.withLock { $0.entries.count } } }
}

extension TransactionTable.Storage {
    /// An unused ID in this shard: Kamailio's 16-bit hash index, whose low bits name the shard.
    mutating func allocateID(for key: TransactionKey) -> TransactionID {
        let mask = UInt32(TransactionTable.shardCount - 1)
        let index = UInt32(truncatingIfNeeded: key.hashValue) & 0xFFFF & ~mask | UInt32(TransactionTable.shardIndex(key))
        while true {
            nextLabel &+= 1
            if nextLabel == 0 { nextLabel = 1 }
            let id = TransactionID(index: index, label: nextLabel)
            if !entries.contains(id) { return id }
        }
    }

    /// Turns a machine's effects into actions and bookkeeping, then re-arms its timer.
    mutating func apply(_ id: TransactionID, _ effects: [TransactionEffect], now: UInt64,
                        into actions: inout [TransactionTable.Action]) {
        // Fields are read in place (`peek`): copying the whole entry per effect copied its
        // machine too, under the table's lock.
        for effect in effects {
            guard entries.contains(id) else { return }
            switch effect {
            case .send(let bytes, let retransmission):
                if retransmission { stats.sentRetransmissions += 1 }
                let peer = peek(id) { $0.peer }!
                actions.append(.send(id, bytes: bytes, to: peer, retransmission: retransmission))
            case .deliver(let response, let origin):
                if origin == .timeout { stats.clientTimeouts += 1 }
                let (internalCancel, parent, context) = peek(id) { ($0.isInternalCancel, $0.parent, $0.context) }!
                if internalCancel { continue }
                actions.append(.response(id, parent: parent, response, origin, context))
                if let parent, let status = response.statusCode, status >= 200 {
                    recordBranchFinal(parent: parent, branch: id, response, origin, now: now, into: &actions)
                }
            case .startCancel(let cancel):
                startInternalCancel(for: id, cancel, now: now, into: &actions)
            case .timeout(let why):
                stats.serverTimeouts += 1
                actions.append(.serverTimeout(id, why, peek(id) { $0.context }!))
            case .absorbed:
                stats.absorbedRetransmissions += 1
            case .schedule, .cancelTimer:
                break
            case .terminated:
                guard let e = entries.removeValue(forKey: id) else { return }
                if e.key.isServer {
                    if server[e.key] == id {
                        server[e.key] = nil
                        servers.value.subtract(1, ordering: .relaxed)
                    }
                } else if client[e.key] == id {
                    client[e.key] = nil
                }
                if !e.isInternalCancel { actions.append(.terminated(id, e.machine.kind, e.context)) }
                return
            }
        }
        reschedule(id)
    }

    /// Reads or changes the entry in place, through its box: no copy of the entry.
    mutating func peek<R>(_ id: TransactionID, _ body: (inout TransactionTable.Entry) -> R) -> R? {
        guard let box = entries.box(id) else { return nil }
        return body(&box.entry)
    }

    mutating func reschedule(_ id: TransactionID) {
        guard let (next, scheduled) = peek(id, { ($0.machine.nextDeadline, $0.scheduledAt) }) else { return }
        guard next != scheduled else { return }
        if let next {
            heap.push(next, id)
            hint.lower(to: next)
        }
        peek(id) { $0.scheduledAt = next }
    }

    mutating func recordBranchFinal(parent: TransactionID, branch: TransactionID, _ response: SIPMessage,
                                    _ origin: ResponseOrigin, now: UInt64,
                                    into actions: inout [TransactionTable.Action]) {
        guard var p = entries[parent],
              let k = p.branches.firstIndex(where: { $0.id == branch }),
              p.branches[k].final == nil else { return }
        p.branches[k].final = response
        p.branches[k].origin = origin
        entries[parent] = p
        guard !p.machine.finalSent, p.machine.state != .terminated else { return }
        if let status = response.statusCode, status >= 600 {
            // RFC 3261 §16.7 step 5: a 6xx cancels the other pending branches.
            cancelPendingBranches(of: p, now: now, into: &actions)
        }
        var finals: [(response: SIPMessage, origin: ResponseOrigin)] = []
        for b in p.branches {
            guard let f = b.final else { return }  // a branch is still pending
            if let s = f.statusCode, (200...299).contains(s) { return }
            finals.append((f, b.origin))
        }
        guard let best = SIPProxy.bestResponse(finals) else { return }
        actions.append(.allBranchesFailed(parent, best: finals[best].response, origin: finals[best].origin,
                                          branch: p.branches[best].id, p.context))
    }

    mutating func startInternalCancel(for inviteID: TransactionID, _ cancel: SIPMessage, now: UInt64,
                                      into actions: inout [TransactionTable.Action]) {
        guard let inv = entries[inviteID],
              let key = try? TransactionKey.client(forRequest: cancel),
              client[key] == nil else { return }
        let m = ClientNonInviteTransaction(request: cancel, reliable: inv.machine.reliable,
                                           timers: inv.machine.timers)
        let id = allocateID(for: key)
        entries[id] = TransactionTable.Entry(machine: .nonInviteClient(m), key: key, peer: inv.peer,
                                             context: inv.context, parent: nil, isInternalCancel: true)
        client[key] = id
        stats.createdClient += 1
        let effects = peek(id) { $0.machine.start(now: now) } ?? []
        apply(id, effects, now: now, into: &actions)
    }

    mutating func cancelPendingBranches(of server: TransactionTable.Entry, now: UInt64,
                                        into actions: inout [TransactionTable.Action]) {
        for b in server.branches where b.final == nil {
            guard var e = entries[b.id], e.machine.kind == .inviteClient,
                  let effects = try? e.machine.requestCancel(now: now) else { continue }
            entries[b.id] = e
            apply(b.id, effects, now: now, into: &actions)
        }
    }
}
