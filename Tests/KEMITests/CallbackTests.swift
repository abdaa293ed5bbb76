@testable import KEMI
import Synchronization
import Testing

@Suite("Callbacks kept in a Mutex")
struct CallbackTests {
    /// A bare closure read out of Mutex.withLock gains a reabstraction thunk per read (a DMQ
    /// node crashed after ~40k replies); Callback must keep the cost of a read constant.
    @Test("a million reads and calls stay cheap")
    func manyReads() {
        let handler = Mutex<Callback<Int>?>(nil)
        let sum = Atomic<Int>(0)
        handler.withLock { $0 = Callback { sum.add($0, ordering: .relaxed) } }
        let clock = ContinuousClock()
        let elapsed = clock.measure {
            for i in 0..<1_000_000 { handler.withLock { $0 }?.run(i & 1) }
        }
        #expect(sum.load(ordering: .relaxed) == 500_000)
        // Constant cost per call is well under a second in debug builds; piling thunks take minutes.
        #expect(elapsed < .seconds(20))
    }
}
