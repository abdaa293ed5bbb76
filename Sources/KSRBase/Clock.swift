#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// A monotonic time source in nanoseconds. Engines take one so tests can drive time by hand.
public protocol MonotonicClock: Sendable {
    /// Nanoseconds since an arbitrary fixed point; never goes backwards.
    func nowNanos() -> UInt64
}

/// The system's monotonic clock (`CLOCK_MONOTONIC`), the one condition variables wait on.
public struct SystemClock: MonotonicClock {
    public init() {}
    @inline(__always)
    public func nowNanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}

/// A clock that moves only when told to: for tests.
public final class ManualClock: MonotonicClock {
    private let now: Atomic<UInt64>
    public init(startingAt start: UInt64 = 1_000_000_000) { now = Atomic(start) }
    public func nowNanos() -> UInt64 { now.load(ordering: .acquiring) }
    public func advance(byNanos delta: UInt64) { now.add(delta, ordering: .releasing) }
    public func set(_ value: UInt64) { now.store(value, ordering: .releasing) }
}

/// Wall-clock time (for `$TS`, `$TV`, ...).
public enum WallClock {
    public static func now() -> (seconds: Int, micros: Int) {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return (Int(ts.tv_sec), Int(ts.tv_nsec) / 1000)
    }
}
