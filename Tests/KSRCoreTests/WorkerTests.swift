import Dispatch
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
        let worker = Worker(name: "w", kind: .sharedTimer) { _ in RecordingBody(log: log, deadline: deadline) }
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
        let worker = Worker(name: "w", kind: .sharedTimer) { _ in throw Nope() }
        worker.start()
        #expect(worker.waitStarted() == "cannot load script")
        worker.join()
    }
}

/// Reads a pipe when the worker says it is readable; closes it at shutdown.
final class PipeBody: WorkerBody {
    let log: EventLog
    let fd: CInt
    var deadline: UInt64?
    let ownThread = pthread_self()
    init(log: EventLog, fd: CInt, deadline: UInt64?) {
        self.log = log
        self.fd = fd
        self.deadline = deadline
    }
    func nextDeadline() -> UInt64? { deadline }
    func fireDue(now: UInt64) {
        log.note(now >= deadline! ? "fired-on-time" : "fired-early")
        deadline = nil
    }
    func readable(_ fd: CInt) {
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = read(fd, &buffer, 64)
        let own = pthread_equal(pthread_self(), ownThread) != 0
        if n > 0 { log.note("read \(String(decoding: buffer[0..<n], as: UTF8.self))\(own ? "" : " elsewhere")") }
    }
    func shutdown() { log.note("shutdown") }
}

@Suite("Pollable worker")
struct PollableWorkerTests {
    @Test func waitsOnDescriptorsJobsAndDeadlinesAtOnce() throws {
        var fds: [CInt] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        let log = EventLog()
        let deadline = SystemClock().nowNanos() + 200_000_000
        let reader = fds[0]
        let worker = Worker(name: "p", kind: .sharedTimer, pollable: true) { _ in
            PipeBody(log: log, fd: reader, deadline: deadline)
        }
        #expect(worker.isPollable)
        worker.start()
        #expect(worker.waitStarted() == nil)
        #expect(worker.watch(fds[0], exclusive: false))
        _ = write(fds[1], "one", 3)
        #expect(log.wait(for: 1))
        // A job posted while it sleeps in epoll wakes it at once.
        let posted = SystemClock().nowNanos()
        worker.post { _ in log.note("job") }
        #expect(log.wait(for: 2))
        #expect(SystemClock().nowNanos() - posted < 100_000_000)
        _ = write(fds[1], "two", 3)
        #expect(log.wait(for: 4))  // read two, then the timer
        worker.stop()
        worker.join()
        #expect(log.snapshot == ["read one", "job", "read two", "fired-on-time", "shutdown"])
    }

    @Test func notPollableWorkersWatchNothing() {
        let worker = Worker(name: "c", kind: .sharedTimer) { _ in RecordingBody(log: EventLog(), deadline: nil) }
        #expect(!worker.isPollable)
        #expect(!worker.watch(0, exclusive: false))
    }

    @Test func manyPostsFromManyThreadsAllRun() throws {
        let count = Atomic<Int>(0)
        let worker = Worker(name: "m", kind: .sharedTimer, pollable: true) { _ in
            RecordingBody(log: EventLog(), deadline: nil)
        }
        worker.start()
        #expect(worker.waitStarted() == nil)
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            for _ in 0..<5000 { worker.post { _ in count.add(1, ordering: .relaxed) } }
        }
        let end = SystemClock().nowNanos() + 5_000_000_000
        while count.load(ordering: .relaxed) < 20_000, SystemClock().nowNanos() < end { usleep(1000) }
        #expect(count.load(ordering: .relaxed) == 20_000)
        worker.stop()
        worker.join()
    }
}

@Suite("WorkerKind")
struct WorkerKindTests {
    /// The texts a Kamailio 5.6.3 core.psx prints are checked against a real Kamailio end to end
    /// (KamailioParityTests); these are the cases that cfg does not reach.
    @Test func describesReceiversOfSeveralSocketsAndTCPOnly() {
        #expect(WorkerKind.sipReceiver(child: 3, udp: ["127.0.0.1:5060", "[::1]:5070"], tcp: false).kamailioDescription
                == "udp receiver child=3 sock=127.0.0.1:5060 sock=[::1]:5070")
        #expect(WorkerKind.sipReceiver(child: 0, udp: ["127.0.0.1:5060"], tcp: true).kamailioDescription
                == "udp receiver child=0 sock=127.0.0.1:5060 (and tcp)")
        #expect(WorkerKind.sipReceiver(child: 1, udp: [], tcp: true).kamailioDescription == "tcp receiver (generic) child=1")
        #expect(WorkerKind.dmqTimer.kamailioDescription == "slow timer")
        #expect(WorkerKind.rtimer(timer: "ta", child: 2).index == 2)
        #expect(WorkerKind.sharedTimer.index == 0)
        #expect(Set([WorkerKind.sipReceiver(child: 0, udp: [], tcp: true), .dmqWorker(child: 0), .asyncTask(group: "g", child: 0),
                     .sharedTimer, .rtimer(timer: "t", child: 0), .tmTimer, .dmqTimer, .config].map(\.label)).count == 8)
    }
}
