import KSRBase
import RTimer
import Testing

private let ms: UInt64 = 1_000_000

@Suite struct PeriodicScheduleTests {
    @Test func firstTickIsOneIntervalAfterStart() {
        var schedule = PeriodicSchedule(start: 5 * ms, interval: 10 * ms)
        #expect(schedule.nextDeadline == 15 * ms)
        #expect(schedule.nextIndex == 1)
        #expect(!schedule.isDue(now: 5 * ms))
        #expect(schedule.fire(now: 5 * ms) == nil)
        #expect(schedule.fire(now: 15 * ms - 1) == nil)
        #expect(schedule.ticks == 0)
        #expect(schedule.nextDeadline == 15 * ms)

        #expect(schedule.isDue(now: 15 * ms))
        let tick = schedule.fire(now: 15 * ms)
        #expect(tick == PeriodicSchedule.Tick(index: 1, deadline: 15 * ms, lateness: 0, skipped: 0))
        #expect(schedule.nextDeadline == 25 * ms)
        #expect(schedule.ticks == 1)
        // Not due again until the next deadline.
        #expect(schedule.fire(now: 15 * ms) == nil)
        #expect(schedule.fire(now: 25 * ms - 1) == nil)
    }

    @Test func thousandTicksHaveNoDrift() {
        let clock = ManualClock(startingAt: 1_000_000_000)
        let start = clock.nowNanos()
        let interval = 10 * ms
        var schedule = PeriodicSchedule(start: start, interval: interval)
        var last: PeriodicSchedule.Tick?
        for k in 1...1000 as ClosedRange<UInt64> {
            // The worker wakes a little late each time (up to 3 ms) and the callback takes time;
            // deadlines must still sit on the start + k·interval grid.
            clock.set(schedule.nextDeadline + (k * 7919) % (3 * ms))
            let tick = schedule.fire(now: clock.nowNanos())
            #expect(tick?.index == k)
            #expect(tick?.deadline == start + k * interval)
            #expect(tick?.skipped == 0)
            clock.advance(byNanos: 2 * ms)  // callback runtime, less than the remaining slack
            #expect(schedule.fire(now: clock.nowNanos()) == nil)
            last = tick
        }
        #expect(last?.deadline == start + 1000 * interval)
        #expect(schedule.nextDeadline == start + 1001 * interval)
        #expect(schedule.ticks == 1000)
        #expect(schedule.overruns == 0)
        #expect(schedule.maxLatenessNanos < 3 * ms)
    }

    @Test func lateFiringSkipsAndCountsOverruns() throws {
        var schedule = PeriodicSchedule(start: 0, interval: 10 * ms)
        // Deadlines 10, 20 and 30 have passed at 35: fire once for 10, skip 20 and 30.
        let lateFired = schedule.fire(now: 35 * ms)
        let late = try #require(lateFired)
        #expect(late == PeriodicSchedule.Tick(index: 1, deadline: 10 * ms, lateness: 25 * ms, skipped: 2))
        #expect(schedule.nextDeadline == 40 * ms)
        #expect(schedule.nextIndex == 4)
        #expect(schedule.overruns == 2)
        #expect(schedule.ticks == 1)
        // Missed ticks are not stacked.
        #expect(schedule.fire(now: 35 * ms) == nil)
        #expect(schedule.fire(now: 39 * ms) == nil)

        let onTimeFired = schedule.fire(now: 40 * ms)

        let onTime = try #require(onTimeFired)
        #expect(onTime == PeriodicSchedule.Tick(index: 4, deadline: 40 * ms, lateness: 0, skipped: 0))
        #expect(schedule.nextDeadline == 50 * ms)
        #expect(schedule.overruns == 2)
        #expect(schedule.ticks == 2)
    }

    @Test func nextDeadlineIsStrictlyAfterNow() throws {
        var schedule = PeriodicSchedule(start: 0, interval: 10 * ms)
        // Firing exactly on the following deadline skips it: 20 is not after 20.
        let tickFired = schedule.fire(now: 20 * ms)
        let tick = try #require(tickFired)
        #expect(tick.skipped == 1)
        #expect(tick.lateness == 10 * ms)
        #expect(schedule.nextDeadline == 30 * ms)
        // One nanosecond short of the following deadline skips nothing.
        let nextFired = schedule.fire(now: 40 * ms - 1)
        let next = try #require(nextFired)
        #expect(next.index == 3)
        #expect(next.skipped == 0)
        #expect(schedule.nextDeadline == 40 * ms)
        #expect(schedule.overruns == 1)
    }

    @Test func latenessStats() {
        var schedule = PeriodicSchedule(start: 0, interval: 10 * ms)
        #expect(schedule.lastLatenessNanos == 0)
        #expect(schedule.maxLatenessNanos == 0)
        _ = schedule.fire(now: 13 * ms)
        #expect(schedule.lastLatenessNanos == 3 * ms)
        #expect(schedule.maxLatenessNanos == 3 * ms)
        _ = schedule.fire(now: 21 * ms)
        #expect(schedule.lastLatenessNanos == 1 * ms)
        #expect(schedule.maxLatenessNanos == 3 * ms)
        _ = schedule.fire(now: 37 * ms)
        #expect(schedule.lastLatenessNanos == 7 * ms)
        #expect(schedule.maxLatenessNanos == 7 * ms)
        _ = schedule.fire(now: 40 * ms)
        #expect(schedule.lastLatenessNanos == 0)
        #expect(schedule.maxLatenessNanos == 7 * ms)
        #expect(schedule.ticks == 4)
        #expect(schedule.overruns == 0)
    }

    @Test func delay() {
        var schedule = PeriodicSchedule(start: 100, interval: 50)
        #expect(schedule.delay(now: 100) == 50)
        #expect(schedule.delay(now: 149) == 1)
        #expect(schedule.delay(now: 150) == 0)
        #expect(schedule.delay(now: 500) == 0)
        _ = schedule.fire(now: 160)
        #expect(schedule.delay(now: 160) == 40)
    }

    @Test func deadlinesBeyondRangeNeverFire() {
        var schedule = PeriodicSchedule(start: .max - 10, interval: 100)
        #expect(schedule.nextDeadline == .max)
        #expect(schedule.fire(now: .max) == nil)

        var other = PeriodicSchedule(start: .max - 150, interval: 100)
        #expect(other.nextDeadline == UInt64.max - 50)
        #expect(other.fire(now: .max - 50)?.index == 1)
        #expect(other.nextDeadline == .max)
        #expect(other.fire(now: .max) == nil)
        #expect(other.ticks == 1)
    }

    @Test func microsecondTimerFromConfig() throws {
        var config = RTimerConfig()
        try config.addTimer("name=fast;interval=500u")
        let interval = try #require(config.timer(named: "fast")).interval.nanoseconds
        var schedule = PeriodicSchedule(start: 0, interval: interval)
        #expect(schedule.fire(now: 499_999) == nil)
        #expect(schedule.fire(now: 500_000)?.index == 1)
        #expect(schedule.nextDeadline == 1_000_000)
    }
}

@Suite struct TimerSetTests {
    @Test func emptySet() {
        var set = TimerSet<String>()
        #expect(set.isEmpty)
        #expect(set.nextDeadline == nil)
        #expect(set.delay(now: 0) == nil)
        #expect(set.fireNext(now: .max - 1) == nil)
        #expect(set.fireDue(now: .max - 1).isEmpty)
    }

    @Test func twoIntervalsInterleaveInDeadlineOrder() {
        var set = TimerSet<String>()
        set.add("slow", schedule: PeriodicSchedule(start: 0, interval: 25 * ms))
        set.add("fast", schedule: PeriodicSchedule(start: 0, interval: 10 * ms))
        #expect(set.count == 2)
        #expect(set.allIDs == ["slow", "fast"])
        #expect(set.nextDeadline == 10 * ms)

        // A worker that sleeps until the next deadline and fires everything due.
        var now: UInt64 = 0
        var fired: [String] = []
        while let next = set.nextDeadline, next <= 100 * ms {
            now = next
            for (id, tick) in set.fireDue(now: now) {
                #expect(tick.deadline == now)
                #expect(tick.lateness == 0)
                fired.append("\(id)@\(tick.deadline / ms)")
            }
        }
        #expect(
            fired == [
                "fast@10", "fast@20", "slow@25", "fast@30", "fast@40", "slow@50", "fast@50",
                "fast@60", "fast@70", "slow@75", "fast@80", "fast@90", "slow@100", "fast@100",
            ])
        #expect(set["fast"]?.ticks == 10)
        #expect(set["slow"]?.ticks == 4)
        #expect(set["none"] == nil)
    }

    @Test func dueTicksComeInDeadlineOrderNotInsertionOrder() {
        var set = TimerSet<Int>()
        set.add(1, schedule: PeriodicSchedule(start: 0, interval: 30))
        set.add(2, schedule: PeriodicSchedule(start: 0, interval: 20))
        set.add(3, schedule: PeriodicSchedule(start: 0, interval: 10))
        set.add(4, schedule: PeriodicSchedule(start: 10, interval: 20))  // due at 30, ties with 1
        let fired = set.fireDue(now: 35)
        #expect(fired.map(\.id) == [3, 2, 1, 4])
        #expect(fired.map(\.tick.deadline) == [10, 20, 30, 30])
        // Each schedule fired once even though 3 had three deadlines passed.
        #expect(fired.map(\.tick.skipped) == [2, 0, 0, 0])
        #expect(set[3]?.overruns == 2)
        #expect(set[3]?.nextDeadline == 40)
        #expect(set.nextDeadline == 40)
        #expect(set.delay(now: 35) == 5)
        #expect(set.fireDue(now: 35).isEmpty)
    }

    @Test func fireNextRereadsTheClockBetweenCallbacks() throws {
        let clock = ManualClock(startingAt: 0)
        var set = TimerSet<String>()
        set.add("a", schedule: PeriodicSchedule(start: 0, interval: 10 * ms))
        set.add("b", schedule: PeriodicSchedule(start: 0, interval: 12 * ms))
        clock.set(12 * ms)
        let firstFired = set.fireNext(now: clock.nowNanos())
        let first = try #require(firstFired)
        #expect(first.id == "a")
        #expect(first.tick.lateness == 2 * ms)
        clock.advance(byNanos: 9 * ms)  // a's callback overran past a's next deadline (20)
        let secondFired = set.fireNext(now: clock.nowNanos())
        let second = try #require(secondFired)
        #expect(second.id == "b")
        #expect(second.tick.lateness == 9 * ms)
        let thirdFired = set.fireNext(now: clock.nowNanos())
        let third = try #require(thirdFired)
        #expect(third.id == "a")
        #expect(third.tick.deadline == 20 * ms)
        #expect(set.fireNext(now: clock.nowNanos()) == nil)
        #expect(set["b"]?.nextDeadline == 24 * ms)
        #expect(set["a"]?.nextDeadline == 30 * ms)
    }
}
