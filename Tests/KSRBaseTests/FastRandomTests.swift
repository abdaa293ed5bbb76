import Dispatch
import KSRBase
import Synchronization
import Testing

@Suite("FastRandom")
struct FastRandomTests {
    @Test("distinct values with balanced bits, on several threads at once")
    func distinctAndBalanced() {
        let all = Mutex<[UInt64]>([])
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            var g = FastRandom()
            var mine: [UInt64] = []
            for _ in 0..<5000 { mine.append(g.next()) }  // 78 refills of the per-thread buffer
            all.withLock { $0 += mine }
        }
        let values = all.withLock { $0 }
        #expect(Set(values).count == values.count)
        let ones = values.reduce(0) { $0 + $1.nonzeroBitCount }
        let share = Double(ones) / Double(values.count * 64)
        #expect(abs(share - 0.5) < 0.01, "share of one bits: \(share)")
        var g = FastRandom()
        let dice = (0..<6000).map { _ in Int.random(in: 1...6, using: &g) }
        #expect(Set(dice) == Set(1...6))
    }
}
