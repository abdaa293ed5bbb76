import Synchronization

/// The replies this node sent to recent KDMQ requests, so that a retransmitted request (same
/// Call-ID, branch and sender) gets the same reply without being handled again, and a copy
/// arriving while the first is still being handled is absorbed. Kamailio answers KDMQ
/// statelessly and handles a retransmission again; this keeps the answer identical and
/// delivers a script message once. Bounded in entries and in time (RFC 3261 Timer J, 32 s).
public final class DMQReplyCache: Sendable {
    public enum Lookup: Sendable, Equatable {
        /// First time: handle it, then call `finish` (or `abandon`).
        case new
        /// The first copy is still being handled: drop this one.
        case inProgress
        /// Answered already: send these bytes again.
        case answered([UInt8])
    }

    private enum Entry {
        case inProgress
        case answered([UInt8])
    }

    private struct State {
        var entries: [String: (entry: Entry, at: UInt64)] = [:]
        var order: [(key: String, at: UInt64)] = []
        var head = 0
    }

    private let state: Mutex<State>
    public let capacity: Int
    public let lifetimeNanos: UInt64

    public init(capacity: Int = 8192, lifetimeNanos: UInt64 = 32_000_000_000) {
        self.capacity = max(1, capacity)
        self.lifetimeNanos = lifetimeNanos
        // Full size from the start: growing rehashes every key while receivers wait.
        var s = State()
        s.entries.reserveCapacity(self.capacity)
        state = Mutex(s)
    }

    /// Looks `key` up at `now` (monotonic nanoseconds); a new key is recorded as in progress.
    public func begin(_ key: String, now: UInt64) -> Lookup {
        state.withLock { s in
            Self.expire(&s, now: now, lifetime: lifetimeNanos, capacity: capacity)
            if let e = s.entries[key] {
                switch e.entry {
                case .inProgress: return .inProgress
                case .answered(let bytes): return .answered(bytes)
                }
            }
            s.entries[key] = (.inProgress, now)
            s.order.append((key, now))
            return .new
        }
    }

    /// Records the reply sent for `key`.
    public func finish(_ key: String, reply: [UInt8], now: UInt64) {
        state.withLock { s in
            guard let e = s.entries[key] else { return }
            s.entries[key] = (.answered(reply), e.at)
        }
    }

    /// Forgets `key` (it was not handled; a retransmission should be tried again).
    public func abandon(_ key: String) {
        state.withLock { s in _ = s.entries.removeValue(forKey: key) }
    }

    public var count: Int { state.withLock { $0.entries.count } }

    private static func expire(_ s: inout State, now: UInt64, lifetime: UInt64, capacity: Int) {
        while s.head < s.order.count, now &- s.order[s.head].at > lifetime || s.order.count - s.head >= capacity {
            let first = s.order[s.head]
            s.head += 1
            // Remove only the entry this order record stands for (a key may have been re-added).
            if let e = s.entries[first.key], e.at == first.at { s.entries.removeValue(forKey: first.key) }
        }
        // Compact the consumed prefix now and then (amortised O(1) per entry).
        if s.head > 1024, s.head * 2 > s.order.count {
            s.order.removeFirst(s.head)
            s.head = 0
        }
    }
}
