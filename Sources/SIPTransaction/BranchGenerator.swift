import Synchronization

private let branchCounter = Atomic<UInt64>(0)

/// Via branch values: `z9hG4bK` + one hex digit (the transaction table's shard) + a
/// process-wide counter (base 36, so values are unique for the process) + `.` + 16 characters
/// from the system's cryptographic generator (so they cannot be guessed, nor collide with
/// another process's).
public enum BranchGenerator {
    public static func next(shard: Int = 0) -> String {
        let n = branchCounter.add(1, ordering: .relaxed).newValue
        return sipMagicCookie + String(shard & 15, radix: 16) + String(n, radix: 36) + "."
            + TransactionMessages.randomToken(count: 16)
    }
}

/// A binary min-heap of (deadline, transaction) pairs; stale entries are skipped by the table.
struct DeadlineHeap: Sendable {
    private(set) var items: [(at: UInt64, id: TransactionID)] = []

    var count: Int { items.count }
    var peek: (at: UInt64, id: TransactionID)? { items.first }

    mutating func push(_ at: UInt64, _ id: TransactionID) {
        items.append((at, id))
        var k = items.count - 1
        while k > 0 {
            let parent = (k - 1) / 2
            guard items[k].at < items[parent].at else { break }
            items.swapAt(k, parent)
            k = parent
        }
    }

    @discardableResult
    mutating func pop() -> (at: UInt64, id: TransactionID)? {
        guard !items.isEmpty else { return nil }
        items.swapAt(0, items.count - 1)
        let top = items.removeLast()
        var k = 0
        let n = items.count
        while true {
            let l = 2 * k + 1, r = l + 1
            var m = k
            if l < n, items[l].at < items[m].at { m = l }
            if r < n, items[r].at < items[m].at { m = r }
            if m == k { break }
            items.swapAt(k, m)
            k = m
        }
        return top
    }
}
