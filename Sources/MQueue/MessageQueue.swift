import Synchronization

/// One queued item. Keys and values may be empty.
public struct QueueItem: Sendable, Hashable {
    public var key: String
    public var value: String

    public init(key: String, value: String) {
        self.key = key
        self.value = value
    }
}

/// Counters of one queue since it was created (for metrics and RPC).
public struct QueueStats: Sendable, Hashable {
    /// Calls to ``MessageQueue/add(key:value:)``, including ignored ones.
    public var adds: UInt64 = 0
    /// Items removed by ``MessageQueue/fetch()``.
    public var fetches: UInt64 = 0
    /// Oldest items discarded because an add made the queue longer than its size.
    public var drops: UInt64 = 0
    /// Adds ignored by addmode 1 because the key was already queued.
    public var ignored: UInt64 = 0
    /// Adds that replaced a queued item with the same key (addmode 2).
    public var replaced: UInt64 = 0

    public init() {}
}

/// A named FIFO of key/value items shared by all worker threads (`mq_add`, `mq_fetch`, ...).
///
/// Every operation is O(1) amortised and takes the queue's lock once. Addmode 0 queues
/// are a ring buffer; addmode 1 and 2 queues also index their items by key.
public final class MessageQueue: Sendable {
    public let definition: QueueDefinition
    private let state: Mutex<State>

    public init(_ definition: QueueDefinition) {
        self.definition = definition
        self.state = Mutex(State(addMode: definition.addMode, limit: definition.size))
    }

    /// The queue's name.
    public var name: String { definition.name }

    /// Adds an item according to the queue's addmode, then discards the oldest item if the
    /// queue is longer than its size (size > 0). Never fails.
    public func add(key: String, value: String) {
        state.withLock { $0.add(key: key, value: value) }
    }

    /// Removes and returns the oldest item, or `nil` if the queue is empty.
    public func fetch() -> QueueItem? {
        state.withLock { $0.fetch() }
    }

    /// The number of queued items.
    public var count: Int {
        state.withLock { $0.count }
    }

    /// Removes all items and returns them oldest first (e.g. to save them at shutdown).
    /// Not counted as fetches.
    public func drain() -> [QueueItem] {
        state.withLock { $0.drain() }
    }

    /// The queue's counters.
    public var stats: QueueStats {
        state.withLock { $0.stats }
    }
}

extension MessageQueue {
    struct State: ~Copyable {
        let addMode: AddMode
        /// The size limit, 0 = unlimited.
        let limit: Int
        /// Storage of addmode 0.
        var deque = ItemRing()
        /// Storage of addmodes 1 and 2.
        var list = KeyedList()
        var stats = QueueStats()

        init(addMode: AddMode, limit: Int) {
            self.addMode = addMode
            self.limit = limit
        }

        var count: Int { addMode == .append ? deque.count : list.count }

        mutating func add(key: String, value: String) {
            stats.adds &+= 1
            let count: Int
            switch addMode {
            case .append:
                deque.append(QueueItem(key: key, value: value))
                count = deque.count
            case .keepOldest, .keepNewest:
                switch list.insert(key: key, value: value, replacing: addMode == .keepNewest) {
                case .appended: break
                case .ignored:
                    stats.ignored &+= 1
                    return
                case .replaced:
                    stats.replaced &+= 1
                    return  // same length as before
                }
                count = list.count
            }
            if limit > 0 && count > limit {
                if addMode == .append {
                    deque.dropFirst()
                } else {
                    _ = list.removeFirst()
                }
                stats.drops &+= 1
            }
        }

        mutating func fetch() -> QueueItem? {
            let item = addMode == .append ? deque.popFirst() : list.removeFirst()
            if item != nil { stats.fetches &+= 1 }
            return item
        }

        mutating func drain() -> [QueueItem] {
            if addMode == .append { return deque.removeAll() }
            return list.removeAll()
        }
    }
}

/// The FIFO of an addmode-0 queue: items in a ring of slots that doubles when full (a bounded
/// queue stops growing at its size + 1). Appending and taking the oldest move the item once
/// and touch no reference count beyond the item's own strings.
struct ItemRing: ~Copyable {
    private var slots: UnsafeMutablePointer<QueueItem>
    private var capacity: Int
    /// Index of the oldest item.
    private var head = 0
    private(set) var count = 0

    init() {
        capacity = 0
        slots = UnsafeMutablePointer<QueueItem>.allocate(capacity: 0)
    }

    deinit {
        for i in 0..<count { (slots + (head + i) % capacity).deinitialize(count: 1) }
        slots.deallocate()
    }

    @inline(__always)
    private func index(_ offset: Int) -> Int {
        let i = head + offset
        return i >= capacity ? i - capacity : i
    }

    mutating func append(_ item: QueueItem) {
        if count == capacity { grow() }
        (slots + index(count)).initialize(to: item)
        count += 1
    }

    /// Removes and returns the oldest item.
    mutating func popFirst() -> QueueItem? {
        guard count > 0 else { return nil }
        let item = (slots + head).move()
        head = index(1)
        count -= 1
        if count == 0 { head = 0 }
        return item
    }

    /// Discards the oldest item (there is one).
    mutating func dropFirst() {
        (slots + head).deinitialize(count: 1)
        head = index(1)
        count -= 1
        if count == 0 { head = 0 }
    }

    /// Removes all items, oldest first, and releases the slots.
    mutating func removeAll() -> [QueueItem] {
        var items: [QueueItem] = []
        items.reserveCapacity(count)
        while let item = popFirst() { items.append(item) }
        slots.deallocate()
        slots = UnsafeMutablePointer<QueueItem>.allocate(capacity: 0)
        capacity = 0
        head = 0
        return items
    }

    private mutating func grow() {
        let newCapacity = max(8, capacity * 2)
        let bigger = UnsafeMutablePointer<QueueItem>.allocate(capacity: newCapacity)
        // The oldest items first: [head, end of slots), then the wrapped part.
        let first = min(count, capacity - head)
        (bigger).moveInitialize(from: slots + head, count: first)
        (bigger + first).moveInitialize(from: slots, count: count - first)
        slots.deallocate()
        slots = bigger
        capacity = newCapacity
        head = 0
    }
}
