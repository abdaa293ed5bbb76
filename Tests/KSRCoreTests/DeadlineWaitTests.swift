import KSRBase
import KSRCore
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Deadline wait")
struct DeadlineWaitTests {
    let wait = DeadlineWait(spinNanos: 50_000)

    @Test func sleepsUntilTheSpinBeforeTheDeadline() {
        #expect(wait.step(now: 1_000_000, deadline: 11_000_000) == .sleep(until: 10_950_000))
        // Just outside the spin window: still a timed wait, which ends where the spin begins.
        #expect(wait.step(now: 10_949_999, deadline: 11_000_000) == .sleep(until: 10_950_000))
    }

    @Test func spinsOnlyTheLastStretchAndNeverLongerThanTheSpin() {
        #expect(wait.step(now: 10_950_000, deadline: 11_000_000) == .spin(until: 11_000_000))
        #expect(wait.step(now: 10_999_999, deadline: 11_000_000) == .spin(until: 11_000_000))
        // Whatever the time, a spin ends at the deadline and starts at most spinNanos before it.
        for now in stride(from: UInt64(10_000_000), through: 11_100_000, by: 7_919) {
            if case .spin(let until) = wait.step(now: now, deadline: 11_000_000) {
                #expect(until == 11_000_000)
                #expect(until - now <= wait.spinNanos)
            }
        }
    }

    @Test func aDeadlineThatHasComeIsDueAtOnce() {
        #expect(wait.step(now: 11_000_000, deadline: 11_000_000) == .due)
        #expect(wait.step(now: 12_000_000, deadline: 11_000_000) == .due)
    }

    @Test func noDeadlineWaitsForAJob() {
        #expect(wait.step(now: 5, deadline: nil) == .idle)
    }

    @Test func withoutASpinTheTimedWaitGoesToTheDeadline() {
        #expect(DeadlineWait.plain.step(now: 1_000, deadline: 2_000) == .sleep(until: 2_000))
        #expect(DeadlineWait.plain.step(now: 2_000, deadline: 2_000) == .due)
    }

    @Test func aDeadlineCloserThanTheSpinToTheClocksStartSpins() {
        #expect(wait.step(now: 0, deadline: 20_000) == .spin(until: 20_000))
        #expect(wait.step(now: 0, deadline: .max) == .sleep(until: .max - 50_000))
    }
}

/// How late each firing was, shared with the worker thread.
final class LatenessLog: Sendable {
    private let values = Mutex<[UInt64]>([])
    func note(_ v: UInt64) { values.withLock { $0.append(v) } }
    var snapshot: [UInt64] { values.withLock { $0 } }
}

/// A body with a periodic deadline that notes, at each firing, how far past it the clock was.
final class PeriodicBody: WorkerBody {
    let lateness: LatenessLog
    let interval: UInt64
    let count: Int
    var deadline: UInt64?
    var fired = 0
    init(start: UInt64, interval: UInt64, count: Int, lateness: LatenessLog) {
        self.interval = interval
        self.count = count
        self.lateness = lateness
        deadline = start + interval
    }
    func nextDeadline() -> UInt64? { deadline }
    func fireDue(now: UInt64) {
        guard let d = deadline else { return }
        lateness.note(now >= d ? now - d : .max)  // .max: fired early
        fired += 1
        deadline = fired < count ? d + interval : nil
    }
    func shutdown() {}
}

@Suite("Spinning worker")
struct SpinningWorkerTests {
    @Test func firesNeverEarlyAndEveryDeadlineOnce() throws {
        let lateness = LatenessLog()
        let start = SystemClock().nowNanos()
        let worker = Worker(name: "t", kind: .sharedTimer, deadlineWait: .timer) { _ in
            PeriodicBody(start: start, interval: 5_000_000, count: 40, lateness: lateness)
        }
        #expect(worker.deadlineWait == DeadlineWait.timer)
        worker.start()
        #expect(worker.waitStarted() == nil)
        let end = SystemClock().nowNanos() + 10_000_000_000
        while lateness.snapshot.count < 40, SystemClock().nowNanos() < end { usleep(5000) }
        // A job posted to a worker that spins for its deadlines still runs.
        let ran = Atomic<Bool>(false)
        worker.post { _ in ran.store(true, ordering: .relaxed) }
        while !ran.load(ordering: .relaxed), SystemClock().nowNanos() < end { usleep(1000) }
        worker.stop()
        worker.join()
        let jobRan = ran.load(ordering: .relaxed)
        #expect(jobRan)
        let late = lateness.snapshot
        #expect(late.count == 40)
        #expect(!late.contains(.max), "a deadline fired early")
        // Generous: on a loaded machine single ticks are late, but not most of them by 5 ms.
        let sorted = late.sorted()
        if !sorted.isEmpty { #expect(sorted[sorted.count / 2] < 5_000_000, "median lateness \(sorted[sorted.count / 2]) ns") }
    }
}

/// The scheduler slice of the calling thread in nanoseconds (`se.slice` of
/// /proc/thread-self/sched), nil where the kernel does not show it.
func currentThreadSlice() -> UInt64? {
    guard let f = fopen("/proc/thread-self/sched", "r") else { return nil }
    defer { fclose(f) }
    var line = [CChar](repeating: 0, count: 256)
    while fgets(&line, Int32(line.count), f) != nil {
        let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard text.hasPrefix("se.slice"), let value = text.split(separator: ":").last else { continue }
        return UInt64(value.trimmingPrefix(while: { $0 == " " }).prefix(while: { $0.isNumber }))
    }
    return nil
}

/// Linux 6.12 or later (custom slices for SCHED_OTHER threads).
func kernelHasCustomSlices() -> Bool {
    var u = utsname()
    guard uname(&u) == 0 else { return false }
    let release = withUnsafeBytes(of: &u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    let parts = release.split(separator: ".").prefix(2).compactMap { Int($0.prefix { $0.isNumber }) }
    guard parts.count == 2 else { return false }
    return parts[0] > 6 || (parts[0] == 6 && parts[1] >= 12)
}

@Suite("Timer worker slice")
struct TimerWorkerSliceTests {
    /// The slice a job sees on a worker with `wait`.
    func slice(with wait: DeadlineWait) -> UInt64? {
        let seen = LatenessLog()
        let worker = Worker(name: "s", kind: .sharedTimer, deadlineWait: wait) { _ in
            RecordingBody(log: EventLog(), deadline: nil)
        }
        worker.start()
        _ = worker.waitStarted()
        worker.post { _ in seen.note(currentThreadSlice() ?? 0) }
        let end = SystemClock().nowNanos() + 5_000_000_000
        while seen.snapshot.isEmpty, SystemClock().nowNanos() < end { usleep(1000) }
        worker.stop()
        worker.join()
        return seen.snapshot.first
    }

    @Test func timerWorkersAskForTheShortestSlice() throws {
        let timer = slice(with: .timer)
        let plain = slice(with: .plain)
        #expect(timer != nil && plain != nil)
        // Only where the kernel grants and shows custom slices.
        guard kernelHasCustomSlices(), let plain, plain != 0 else { return }
        #expect(timer == 100_000)
        #expect(plain != 100_000)
    }
}
