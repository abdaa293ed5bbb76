import KSRBase
import KSRCore
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Thread-safe event log shared with a worker.
final class EventLog: Sendable {
    let events = Mutex<[String]>([])
    func note(_ s: String) { events.withLock { $0.append(s) } }
    var snapshot: [String] { events.withLock { $0 } }
    func wait(for n: Int, timeout: Double = 5) -> Bool {
        let end = SystemClock().nowNanos() + UInt64(timeout * 1e9)
        while SystemClock().nowNanos() < end {
            if snapshot.count >= n { return true }
            usleep(1000)
        }
        return false
    }
}

/// A body that notes what ran, and on which thread, and fires one timer at a fixed deadline.
final class RecordingBody: WorkerBody {
    let log: EventLog
    var deadline: UInt64?
    let ownThread = pthread_self()
    init(log: EventLog, deadline: UInt64?) {
        self.log = log
        self.deadline = deadline
    }
    var onOwnThread: Bool { pthread_equal(pthread_self(), ownThread) != 0 }
    func nextDeadline() -> UInt64? { deadline }
    func fireDue(now: UInt64) {
        log.note(onOwnThread && now >= deadline! ? "fired-on-time-on-own-thread" : "fired-wrongly")
        deadline = nil
    }
    func shutdown() { log.note("shutdown") }
}

@Suite("Worker")
struct WorkerTests {
    @Test func runsJobsAndTimersOnItsOwnThreadThenShutsDown() throws {
        let log = EventLog()
        let deadline = SystemClock().nowNanos() + 30_000_000
        let worker = Worker(name: "w", kind: "test", index: 0) { _ in RecordingBody(log: log, deadline: deadline) }
        worker.start()
        #expect(worker.waitStarted() == nil)
        worker.post { body in
            let b = body as! RecordingBody
            b.log.note(b.onOwnThread ? "job-on-own-thread" : "job-elsewhere")
        }
        #expect(log.wait(for: 2))
        worker.stop()
        worker.join()
        let events = log.snapshot
        #expect(events.contains("job-on-own-thread"))
        #expect(events.contains("fired-on-time-on-own-thread"))
        #expect(events.last == "shutdown")
    }

    @Test func aBodyThatFailsToStartIsReported() {
        struct Nope: Error, CustomStringConvertible { var description: String { "cannot load script" } }
        let worker = Worker(name: "w", kind: "test", index: 0) { _ in throw Nope() }
        worker.start()
        #expect(worker.waitStarted() == "cannot load script")
        worker.join()
    }
}
