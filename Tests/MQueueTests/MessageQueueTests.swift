import Dispatch
import MQueue
import Synchronization
import Testing

private func makeQueue(size: Int = 0, addMode: AddMode = .append) -> MessageQueue {
    MessageQueue(try! QueueDefinition(name: "q", size: size, addMode: addMode))
}

private func pairs(_ items: [QueueItem]) -> [String] {
    items.map { "\($0.key)=\($0.value)" }
}

private func add(_ queue: MessageQueue, _ spec: String) {
    for pair in spec.split(separator: ",") {
        let parts = pair.split(separator: "=", omittingEmptySubsequences: false)
        queue.add(key: String(parts[0]), value: String(parts[1]))
    }
}

/// Fetches until empty.
private func fetchAll(_ queue: MessageQueue) -> [String] {
    var out: [String] = []
    while let item = queue.fetch() { out.append("\(item.key)=\(item.value)") }
    return out
}

@Suite struct AddModeTests {
    @Test func appendKeepsDuplicates() {
        let q = makeQueue()
        add(q, "a=1,b=2,a=3")
        #expect(q.count == 3)
        #expect(fetchAll(q) == ["a=1", "b=2", "a=3"])
    }

    @Test func keepNewest() {
        let q = makeQueue(addMode: .keepNewest)
        add(q, "a=1,b=2,c=3,b=4,a=5")
        #expect(q.count == 3)
        #expect(fetchAll(q) == ["c=3", "b=4", "a=5"])
        #expect(q.stats.replaced == 2)
    }

    @Test func keepOldest() {
        let q = makeQueue(addMode: .keepOldest)
        add(q, "a=1,b=2,a=3")
        #expect(fetchAll(q) == ["a=1", "b=2"])
        #expect(q.stats.ignored == 1)
        #expect(q.stats.adds == 3)
    }

    @Test func keepOldestAllowsKeyAgainAfterFetch() {
        let q = makeQueue(addMode: .keepOldest)
        add(q, "a=1,b=2")
        #expect(q.fetch() == QueueItem(key: "a", value: "1"))
        add(q, "a=3,b=4")
        #expect(fetchAll(q) == ["b=2", "a=3"])
    }

    @Test func keepNewestOfTailAndHead() {
        let q = makeQueue(addMode: .keepNewest)
        add(q, "a=1,a=2")  // replacing the tail itself
        #expect(pairs(q.drain()) == ["a=2"])
        add(q, "a=1,b=2,c=3,a=4")  // replacing the head
        #expect(fetchAll(q) == ["b=2", "c=3", "a=4"])
        add(q, "x=1")
        #expect(fetchAll(q) == ["x=1"])
    }

    @Test func keysAreExact() {
        let q = makeQueue(addMode: .keepNewest)
        add(q, "a=1,A=2, a=3")
        #expect(fetchAll(q) == ["a=1", "A=2", " a=3"])
    }

    @Test func emptyKeysAndValues() {
        for mode in AddMode.allCases {
            let q = makeQueue(addMode: mode)
            add(q, "=,=x,k=,=")
            let expected: [String] =
                switch mode {
                case .append: ["=", "=x", "k=", "="]
                case .keepOldest: ["=", "k="]
                case .keepNewest: ["k=", "="]
                }
            #expect(fetchAll(q) == expected, "addmode \(mode.rawValue)")
        }
    }
}

@Suite struct SizeLimitTests {
    @Test func sizeDropsOldest() {
        let q = makeQueue(size: 3)
        add(q, "k1=1,k2=2,k3=3,k4=4,k5=5")
        #expect(q.count == 3)
        #expect(q.stats.drops == 2)
        #expect(fetchAll(q) == ["k3=3", "k4=4", "k5=5"])
    }

    @Test func sizeWithKeepOldest() {
        let q = makeQueue(size: 2, addMode: .keepOldest)
        add(q, "a=1,a=2,b=3,c=4")
        #expect(fetchAll(q) == ["b=3", "c=4"])
        let stats = q.stats
        #expect(stats.adds == 4)
        #expect(stats.ignored == 1)
        #expect(stats.drops == 1)
        #expect(stats.fetches == 2)
    }

    @Test func sizeWithKeepNewest() {
        let q = makeQueue(size: 2, addMode: .keepNewest)
        add(q, "a=1,b=2,a=3")  // replacing does not drop
        #expect(q.stats.drops == 0)
        add(q, "c=4")  // drops b
        #expect(q.stats.drops == 1)
        add(q, "b=5")  // b was dropped, so it is new again: drops a
        #expect(fetchAll(q) == ["c=4", "b=5"])
    }

    @Test func droppedKeysLeaveTheIndex() {
        let q = makeQueue(size: 1, addMode: .keepOldest)
        add(q, "a=1,b=2,a=3")
        #expect(fetchAll(q) == ["a=3"])
    }

    @Test func sizeOne() {
        let q = makeQueue(size: 1)
        for i in 0..<100 { q.add(key: "k", value: "\(i)") }
        #expect(q.count == 1)
        #expect(q.stats.drops == 99)
        #expect(q.fetch()?.value == "99")
    }
}

@Suite struct QueueOperationTests {
    @Test func fetchFromEmpty() {
        for mode in AddMode.allCases {
            let q = makeQueue(addMode: mode)
            #expect(q.fetch() == nil)
            #expect(q.stats.fetches == 0)
            q.add(key: "a", value: "1")
            #expect(q.fetch() == QueueItem(key: "a", value: "1"))
            #expect(q.fetch() == nil)
            #expect(q.stats.fetches == 1)
        }
    }

    @Test func drainReturnsOldestFirstAndEmpties() {
        for mode in AddMode.allCases {
            let q = makeQueue(size: 4, addMode: mode)
            add(q, "a=1,b=2,c=3,d=4,e=5")
            #expect(pairs(q.drain()) == ["b=2", "c=3", "d=4", "e=5"])
            #expect(q.count == 0)
            #expect(q.fetch() == nil)
            #expect(q.stats.fetches == 0)  // draining is not fetching
            add(q, "b=9")  // the index was cleared too
            #expect(fetchAll(q) == ["b=9"])
        }
    }

    @Test func manyDistinctKeysThenReAdd() {
        let q = makeQueue(addMode: .keepNewest)
        let n = 20_000
        for i in 0..<n { q.add(key: "key\(i)", value: "v\(i)") }
        #expect(q.count == n)
        // Re-adding every even key moves it to the tail, in re-add order.
        for i in stride(from: 0, to: n, by: 2) { q.add(key: "key\(i)", value: "w\(i)") }
        #expect(q.count == n)
        let items = q.drain()
        let odds = stride(from: 1, to: n, by: 2).map { QueueItem(key: "key\($0)", value: "v\($0)") }
        let evens = stride(from: 0, to: n, by: 2).map { QueueItem(key: "key\($0)", value: "w\($0)") }
        #expect(items == odds + evens)
    }

    /// Random operations against a plain-array model of Kamailio's behaviour.
    /// (size, addmode, distinct keys). Many keys and a small size churn the key index
    /// (growth, deletion with wrap-around); few keys exercise replacing and ignoring.
    @Test(arguments: [
        (0, AddMode.append, 12), (0, .keepOldest, 12), (0, .keepNewest, 12), (7, .append, 12),
        (7, .keepOldest, 12), (7, .keepNewest, 12), (1, .keepNewest, 12),
        (0, .keepNewest, 3000), (0, .keepOldest, 3000), (100, .keepNewest, 3000), (100, .keepOldest, 500),
    ])
    func matchesReferenceModel(size: Int, mode: AddMode, keys: Int) throws {
        var rng = SplitMix(seed: UInt64(size * 10 + mode.rawValue + keys))
        let q = makeQueue(size: size, addMode: mode)
        var model: [QueueItem] = []
        var drops: UInt64 = 0
        var maxCount = 0
        // Few keys: 60% adds, 38% fetches, 2% drains. Many keys: 75% adds, 25% fetches and a
        // drain every 10,000 steps, so the queue grows into the thousands.
        let manyKeys = keys > 100
        for step in 0..<30_000 {
            let r = rng.next() % 100
            let drain = manyKeys ? step % 10_000 == 9_999 : r >= 98
            if !drain && (r < 60 || (manyKeys && r >= 85)) {
                let item = QueueItem(key: "k\(rng.next() % UInt64(keys))", value: "\(step)")
                q.add(key: item.key, value: item.value)
                let existing = model.firstIndex { $0.key == item.key }
                if mode == .keepOldest, existing != nil { continue }
                if mode == .keepNewest, let existing { model.remove(at: existing) }
                model.append(item)
                if size > 0 && model.count > size {
                    model.removeFirst()
                    drops += 1
                }
            } else if !drain {
                let expected = model.isEmpty ? nil : model.removeFirst()
                try #require(q.fetch() == expected, "step \(step)")
            } else {
                try #require(q.drain() == model, "step \(step)")
                model.removeAll()
            }
            try #require(q.count == model.count, "step \(step)")
            maxCount = max(maxCount, model.count)
        }
        if manyKeys && size == 0 { #expect(maxCount > 1000) }
        #expect(q.drain() == model)
        #expect(q.stats.drops == drops)
    }
}

@Suite struct ConcurrencyTests {
    @Test(arguments: AddMode.allCases)
    func concurrentAddsKeepCountExact(mode: AddMode) {
        let q = makeQueue(addMode: mode)
        let threads = 4
        let perThread = 20_000
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            for i in 0..<perThread { q.add(key: "t\(t)-\(i)", value: "\(i)") }
        }
        #expect(q.count == threads * perThread)
        #expect(q.stats.adds == UInt64(threads * perThread))
        // Each thread's items stay in its own order.
        var next = [Int](repeating: 0, count: threads)
        for item in q.drain() {
            let parts = item.key.dropFirst().split(separator: "-")
            let t = Int(parts[0])!
            #expect(Int(parts[1]) == next[t])
            next[t] += 1
        }
        #expect(next == [Int](repeating: perThread, count: threads))
    }

    @Test func concurrentSharedKeysKeepNewest() {
        let q = makeQueue(addMode: .keepNewest)
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            for i in 0..<20_000 { q.add(key: "k\(i % 1000)", value: "") }
        }
        #expect(q.count == 1000)
        #expect(q.stats.replaced == 80_000 - 1000)
        #expect(Set(q.drain().map(\.key)).count == 1000)
    }

    @Test func concurrentAddsAndFetches() {
        let q = makeQueue(size: 0, addMode: .keepOldest)
        let fetchedCount = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 4) { t in
            if t < 2 {
                for i in 0..<30_000 { q.add(key: "t\(t)-\(i)", value: "") }
            } else {
                var n = 0
                for _ in 0..<30_000 where q.fetch() != nil { n += 1 }
                fetchedCount.add(n, ordering: .relaxed)
            }
        }
        let fetchedTotal = fetchedCount.load(ordering: .relaxed)
        #expect(fetchedTotal + q.count == 60_000)
        #expect(q.stats.fetches == UInt64(fetchedTotal))
    }
}

/// A small deterministic generator for the model test.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Addmode 0 keeps its items in a ring of slots that wraps and doubles: the order must survive
/// any mix of adds, fetches, drops and growth, checked against a plain array.
@Suite struct AppendRingTests {
    @Test(arguments: [0, 1, 3, 8, 9, 100])
    func interleavedAddsAndFetchesKeepFIFOOrder(size: Int) {
        let q = makeQueue(size: size)
        var model: [String] = []
        var rng = SystemRandomNumberGenerator()
        var next = 0
        for _ in 0..<5_000 {
            // More adds than fetches at first (growth, wrapping), then more fetches (emptying).
            let adds = Int.random(in: 0...3, using: &rng)
            for _ in 0..<adds {
                let key = "k\(next)", value = next % 7 == 0 ? "a longer value, not a small string \(next)" : "v\(next)"
                next += 1
                q.add(key: key, value: value)
                model.append("\(key)=\(value)")
                if size > 0 && model.count > size { model.removeFirst() }
            }
            let fetches = Int.random(in: 0...3, using: &rng)
            for _ in 0..<fetches {
                let got = q.fetch().map { "\($0.key)=\($0.value)" }
                #expect(got == (model.isEmpty ? nil : model.removeFirst()))
            }
            #expect(q.count == model.count)
        }
        #expect(pairs(q.drain()) == model)
        #expect(q.count == 0)
        #expect(q.fetch() == nil)
        // Usable again after the drain released the slots.
        add(q, "x=1,y=2")
        #expect(fetchAll(q) == (size == 1 ? ["y=2"] : ["x=1", "y=2"]))
    }

    @Test func growingWhileWrappedKeepsOrder() {
        let q = makeQueue()
        add(q, "a=1,b=2,c=3,d=4,e=5,f=6")
        #expect(q.fetch()?.key == "a")
        #expect(q.fetch()?.key == "b")
        // The ring (8 slots) wraps, then grows with its oldest item in the middle.
        add(q, "g=7,h=8,i=9,j=10,k=11,l=12")
        #expect(fetchAll(q) == ["c=3", "d=4", "e=5", "f=6", "g=7", "h=8", "i=9", "j=10", "k=11", "l=12"])
    }

    @Test func itemsLeftInAQueueAreReleasedWithIt() {
        // Heap-allocated strings in slots at wrapped positions: freed by the ring's deinit
        // (no leak or double free; run under the address sanitizer this would show).
        var q: MessageQueue? = makeQueue(size: 5)
        for i in 0..<23 { q!.add(key: "key number \(i) with a long text", value: String(repeating: "v", count: 40 + i)) }
        #expect(q!.count == 5)
        #expect(q!.fetch()?.key == "key number 18 with a long text")
        q = nil
    }
}
