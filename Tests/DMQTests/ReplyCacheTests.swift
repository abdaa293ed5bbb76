import DMQ
import Testing

@Suite("DMQ reply cache")
struct ReplyCacheTests {
    @Test("a retransmission in progress is absorbed, after the reply it gets the same bytes")
    func retransmissions() {
        let cache = DMQReplyCache()
        #expect(cache.begin("a", now: 0) == .new)
        #expect(cache.begin("a", now: 1) == .inProgress)
        cache.finish("a", reply: [1, 2, 3], now: 2)
        #expect(cache.begin("a", now: 3) == .answered([1, 2, 3]))
        #expect(cache.begin("b", now: 3) == .new)
    }

    @Test("entries expire after their lifetime; abandon forgets at once")
    func expiry() {
        let cache = DMQReplyCache(capacity: 100, lifetimeNanos: 1_000)
        #expect(cache.begin("a", now: 0) == .new)
        cache.finish("a", reply: [9], now: 10)
        #expect(cache.begin("a", now: 900) == .answered([9]))
        #expect(cache.begin("b", now: 1_500) == .new)      // expires "a" on the way
        #expect(cache.begin("a", now: 1_501) == .new)
        cache.abandon("b")
        #expect(cache.begin("b", now: 1_502) == .new)
    }

    @Test("the cache never holds more than its capacity")
    func capacity() {
        let cache = DMQReplyCache(capacity: 64, lifetimeNanos: UInt64.max / 2)
        for i in 0..<10_000 {
            #expect(cache.begin("k\(i)", now: UInt64(i)) == .new)
            cache.finish("k\(i)", reply: [UInt8(i & 0xff)], now: UInt64(i))
        }
        #expect(cache.count <= 64)
        #expect(cache.begin("k9999", now: 10_000) == .answered([UInt8(9999 & 0xff)]))
        #expect(cache.begin("k0", now: 10_001) == .new)
    }
}
