/// The drift-free schedule of one periodic timer: a pure state machine over nanosecond
/// timestamps from a `MonotonicClock`.
///
/// Tick `k` (k ≥ 1) is due at exactly `start + k·interval`: the first tick comes one interval
/// after `start`, and lateness never accumulates. A tick fired late (the previous callback
/// overran) still runs once; the schedule then jumps to the first deadline strictly after the
/// firing time, counting the deadlines jumped over as overruns. Missed ticks never stack up.
///
/// A deadline beyond the `UInt64` range is clamped to `UInt64.max` and never fires.
public struct PeriodicSchedule: Sendable, Hashable {
    /// One firing of a schedule.
    public struct Tick: Sendable, Hashable {
        /// `k` of the deadline that fired (1 for the first).
        public var index: UInt64
        /// `start + index·interval`.
        public var deadline: UInt64
        /// How late it fired: `now - deadline`.
        public var lateness: UInt64
        /// Deadlines after this one that were skipped because `now` had already passed them.
        public var skipped: UInt64

        public init(index: UInt64, deadline: UInt64, lateness: UInt64, skipped: UInt64) {
            self.index = index
            self.deadline = deadline
            self.lateness = lateness
            self.skipped = skipped
        }
    }

    /// The time the schedule counts from (no tick is due at `start` itself).
    public let start: UInt64
    /// The period in nanoseconds, > 0.
    public let interval: UInt64
    /// `k` of the next tick.
    public private(set) var nextIndex: UInt64 = 1
    /// When the next tick is due: `start + nextIndex·interval`.
    public private(set) var nextDeadline: UInt64

    /// Ticks fired so far.
    public private(set) var ticks: UInt64 = 0
    /// Deadlines skipped in total because a tick fired too late to catch them.
    public private(set) var overruns: UInt64 = 0
    /// Lateness of the most recent tick, in nanoseconds (0 before the first).
    public private(set) var lastLatenessNanos: UInt64 = 0
    /// The greatest lateness of any tick so far, in nanoseconds.
    public private(set) var maxLatenessNanos: UInt64 = 0

    /// A schedule whose first tick is due at `start + interval`. `interval` must be > 0.
    public init(start: UInt64, interval: UInt64) {
        precondition(interval > 0, "PeriodicSchedule interval must be > 0")
        self.start = start
        self.interval = interval
        self.nextDeadline = Self.deadline(start: start, interval: interval, index: 1)
    }

    /// Whether a tick is due at `now`.
    @inline(__always)
    public func isDue(now: UInt64) -> Bool {
        now >= nextDeadline && nextDeadline != .max
    }

    /// Nanoseconds from `now` until the next tick is due; 0 if it is due already.
    public func delay(now: UInt64) -> UInt64 {
        nextDeadline > now ? nextDeadline - now : 0
    }

    /// Fires the due tick and advances to the first deadline strictly after `now`.
    /// Returns `nil`, changing nothing, if no tick is due yet. Does not allocate.
    public mutating func fire(now: UInt64) -> Tick? {
        guard isDue(now: now) else { return nil }
        let lateness = now - nextDeadline
        let skipped = lateness / interval
        let tick = Tick(index: nextIndex, deadline: nextDeadline, lateness: lateness, skipped: skipped)

        let (next, overflow) = nextIndex.addingReportingOverflow(skipped &+ 1)
        nextIndex = overflow ? .max : next
        nextDeadline = overflow ? .max : Self.deadline(start: start, interval: interval, index: nextIndex)

        ticks &+= 1
        overruns &+= skipped
        lastLatenessNanos = lateness
        if lateness > maxLatenessNanos { maxLatenessNanos = lateness }
        return tick
    }

    /// `start + index·interval`, clamped to `UInt64.max`.
    @inline(__always)
    private static func deadline(start: UInt64, interval: UInt64, index: UInt64) -> UInt64 {
        let (offset, o1) = interval.multipliedReportingOverflow(by: index)
        let (sum, o2) = start.addingReportingOverflow(offset)
        return o1 || o2 ? .max : sum
    }
}

/// Several schedules sharing one worker (the mode-0 timer worker): the earliest deadline to
/// wait for, and the due ticks in deadline order. Ties go to the schedule added first.
///
/// Lookups are linear scans: a shared worker carries a handful of timers.
public struct TimerSet<ID: Hashable & Sendable>: Sendable {
    private var ids: [ID] = []
    /// The schedules, in the order they were added (parallel to ``allIDs``).
    public private(set) var schedules: [PeriodicSchedule] = []

    public init() {}

    /// The IDs in the order they were added.
    public var allIDs: [ID] { ids }
    public var count: Int { ids.count }
    public var isEmpty: Bool { ids.isEmpty }

    /// Adds a schedule. `id` must not be in the set already.
    public mutating func add(_ id: ID, schedule: PeriodicSchedule) {
        precondition(!ids.contains(id), "TimerSet: duplicate id \(id)")
        ids.append(id)
        schedules.append(schedule)
    }

    /// The schedule (with its stats) for `id`.
    public subscript(id: ID) -> PeriodicSchedule? {
        guard let i = ids.firstIndex(of: id) else { return nil }
        return schedules[i]
    }

    /// The earliest next deadline of all schedules; `nil` if the set is empty.
    public var nextDeadline: UInt64? {
        schedules.lazy.map(\.nextDeadline).min()
    }

    /// Nanoseconds from `now` until the earliest deadline (0 if one is due); `nil` if empty.
    public func delay(now: UInt64) -> UInt64? {
        nextDeadline.map { $0 > now ? $0 - now : 0 }
    }

    /// Fires the due schedule with the earliest deadline, if any. A worker that re-reads the
    /// clock between callbacks calls this in a loop until it returns `nil`. Does not allocate.
    public mutating func fireNext(now: UInt64) -> (id: ID, tick: PeriodicSchedule.Tick)? {
        var best = -1
        var bestDeadline = UInt64.max
        for i in schedules.indices where schedules[i].isDue(now: now) {
            if best < 0 || schedules[i].nextDeadline < bestDeadline {
                best = i
                bestDeadline = schedules[i].nextDeadline
            }
        }
        guard best >= 0, let tick = schedules[best].fire(now: now) else { return nil }
        return (ids[best], tick)
    }

    /// Fires every schedule due at `now`, each at most once, in deadline order.
    public mutating func fireDue(now: UInt64) -> [(id: ID, tick: PeriodicSchedule.Tick)] {
        var fired: [(id: ID, tick: PeriodicSchedule.Tick)] = []
        while let next = fireNext(now: now) { fired.append(next) }
        return fired
    }
}
