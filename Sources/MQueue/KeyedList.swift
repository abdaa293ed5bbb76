/// The storage of an addmode-1/2 queue: a FIFO of items with unique keys and O(1) lookup by key.
///
/// Nodes live in one array (a slab) and form a doubly linked list through `Int32` indices;
/// freed slots are chained through `next` for reuse. A key index maps each queued key to its
/// slot: an open-addressing table (linear probing, load ≤ 1/2) whose entries hold 32 bits of
/// the key's hash and the slot. Nodes keep their hash too, so removing an item and growing the
/// table never hash a string again and deletion (backward shift) never compares strings.
/// Hashes come from `Hasher`, which is seeded per process (resists hash flooding).
///
/// Every operation is O(1) amortised and hashes the key at most once. (`Dictionary<String, _>`
/// was 2–4× slower here: its deletion rehashes the keys that follow in the probe run.)
struct KeyedList {
    struct Node {
        var key: String
        var value: String
        var prev: Int32
        var next: Int32
        /// The low 32 bits of the key's hash.
        var hash: UInt32
    }

    private var nodes: [Node] = []
    private var head: Int32 = -1
    private var tail: Int32 = -1
    /// First free slot; the free list is chained through `next`.
    private var freeHead: Int32 = -1
    private(set) var count = 0

    /// The key index: `emptyBucket` or `hash << 32 | slot`. Empty or a power of two ≥ 16 long.
    private var buckets: [UInt64] = []
    private static let emptyBucket = UInt64.max

    /// What ``insert(key:value:replacing:)`` did.
    enum InsertResult {
        /// The key was new: the item was appended.
        case appended
        /// The key was queued and `replacing` was false: nothing changed.
        case ignored
        /// The key was queued and `replacing` was true: the old item was removed and
        /// the new one appended.
        case replaced
    }

    /// Appends `key`/`value` unless `key` is queued. If it is, either leaves the queue alone
    /// (`replacing == false`) or moves that item to the tail with the new value.
    mutating func insert(key: String, value: String, replacing: Bool) -> InsertResult {
        if count * 2 >= buckets.count { growIndex() }
        let hash = UInt32(truncatingIfNeeded: key.hashValue)
        let mask = buckets.count - 1
        var pos = Int(hash) & mask
        while true {
            let entry = buckets[pos]
            if entry == Self.emptyBucket { break }
            if UInt32(truncatingIfNeeded: entry >> 32) == hash {
                let slot = Int32(truncatingIfNeeded: entry)
                if nodes[Int(slot)].key == key {
                    guard replacing else { return .ignored }
                    moveToTail(slot, value: value)
                    return .replaced
                }
            }
            pos = (pos + 1) & mask
        }
        // A new key: take a free slot or a new one, link it at the tail, index it at `pos`.
        let node = Node(key: key, value: value, prev: tail, next: -1, hash: hash)
        let slot: Int32
        if freeHead >= 0 {
            slot = freeHead
            freeHead = nodes[Int(slot)].next
            nodes[Int(slot)] = node
        } else {
            precondition(nodes.count < Int(Int32.max), "mqueue: too many items")
            slot = Int32(truncatingIfNeeded: nodes.count)
            nodes.append(node)
        }
        buckets[pos] = UInt64(hash) << 32 | UInt64(UInt32(bitPattern: slot))
        linkAtTail(slot)
        count += 1
        return .appended
    }

    /// The same key stays in the same slot: update the value and move the node to the tail.
    private mutating func moveToTail(_ slot: Int32, value: String) {
        nodes[Int(slot)].value = value
        guard slot != tail else { return }
        unlink(slot)
        nodes[Int(slot)].prev = tail
        nodes[Int(slot)].next = -1
        linkAtTail(slot)
    }

    /// Removes and returns the oldest item.
    mutating func removeFirst() -> QueueItem? {
        guard head >= 0 else { return nil }
        let slot = head
        var key = ""
        var value = ""
        swap(&key, &nodes[Int(slot)].key)
        swap(&value, &nodes[Int(slot)].value)
        unlink(slot)
        removeFromIndex(slot: slot, hash: nodes[Int(slot)].hash)
        count -= 1
        if count == 0 {
            // Compact: forget the free list and start filling the slab from slot 0 again.
            nodes.removeAll(keepingCapacity: true)
            freeHead = -1
        } else {
            nodes[Int(slot)].next = freeHead
            freeHead = slot
        }
        return QueueItem(key: key, value: value)
    }

    /// Removes all items and returns them oldest first. Releases the storage.
    mutating func removeAll() -> [QueueItem] {
        var items: [QueueItem] = []
        items.reserveCapacity(count)
        var i = head
        while i >= 0 {
            let node = nodes[Int(i)]
            items.append(QueueItem(key: node.key, value: node.value))
            i = node.next
        }
        self = KeyedList()
        return items
    }

    // MARK: - key index

    /// Deletes the index entry of `slot` by backward shift: later entries of the probe run
    /// move into the hole unless their home bucket lies after it.
    private mutating func removeFromIndex(slot: Int32, hash: UInt32) {
        let mask = buckets.count - 1
        let wanted = UInt64(hash) << 32 | UInt64(UInt32(bitPattern: slot))
        var hole = Int(hash) & mask
        while buckets[hole] != wanted { hole = (hole + 1) & mask }
        var j = hole
        while true {
            j = (j + 1) & mask
            let entry = buckets[j]
            if entry == Self.emptyBucket { break }
            let home = Int(truncatingIfNeeded: entry >> 32) & mask
            // The entry may move to `hole` unless its home is cyclically in (hole, j].
            let stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j)
            if !stays {
                buckets[hole] = entry
                hole = j
            }
        }
        buckets[hole] = Self.emptyBucket
    }

    /// Doubles the index (at least 16 buckets), re-placing entries by their stored hashes.
    private mutating func growIndex() {
        let old = buckets
        let capacity = max(16, old.count * 2)
        precondition(capacity <= 1 << 32, "mqueue: key index too large")
        buckets = [UInt64](repeating: Self.emptyBucket, count: capacity)
        let mask = capacity - 1
        for entry in old where entry != Self.emptyBucket {
            var pos = Int(truncatingIfNeeded: entry >> 32) & mask
            while buckets[pos] != Self.emptyBucket { pos = (pos + 1) & mask }
            buckets[pos] = entry
        }
    }

    // MARK: - list

    /// Links the detached node `i` (whose `prev` is already `tail`) after the tail.
    @inline(__always)
    private mutating func linkAtTail(_ i: Int32) {
        if tail >= 0 { nodes[Int(tail)].next = i } else { head = i }
        tail = i
    }

    /// Detaches node `i` from the list (its own links are left as they were).
    @inline(__always)
    private mutating func unlink(_ i: Int32) {
        let prev = nodes[Int(i)].prev
        let next = nodes[Int(i)].next
        if prev >= 0 { nodes[Int(prev)].next = next } else { head = next }
        if next >= 0 { nodes[Int(next)].prev = prev } else { tail = prev }
    }
}
