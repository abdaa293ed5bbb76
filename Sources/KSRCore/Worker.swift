#if canImport(Glibc)
import Glibc
#endif
import CKSRSys
import KSRBase
import Synchronization

/// What a worker thread does; created on that thread, used only there.
public protocol WorkerBody: AnyObject {
    /// The next timer deadline (monotonic nanoseconds), if any.
    func nextDeadline() -> UInt64?
    /// Runs whatever is due at `now`.
    func fireDue(now: UInt64)
    /// Called once on the worker thread before it ends.
    func shutdown()
    /// A descriptor given to `Worker.watch` has input (pollable workers only).
    func readable(_ fd: CInt)
}

extension WorkerBody {
    public func readable(_ fd: CInt) {}
}

/// How a worker meets a deadline: its timed wait ends `spinNanos` early and it busy-waits the
/// rest, so that a late wake-up (the timed wait's own latency, a virtual CPU that has to be
/// woken first) does not make a tick late. The spin is bounded by `spinNanos` per deadline
/// and costs nothing while no deadline is near. Pure: `step` decides from a given time.
public struct DeadlineWait: Sendable, Hashable {
    /// What the worker does next.
    public enum Step: Sendable, Hashable {
        /// The deadline has come: run what is due.
        case due
        /// Busy-wait until this time (the deadline, at most `spinNanos` away), then run.
        case spin(until: UInt64)
        /// Wait (woken by a posted job) until this time, `spinNanos` before the deadline.
        case sleep(until: UInt64)
        /// No deadline: wait for a job.
        case idle
    }

    /// The length of the final busy-wait, in nanoseconds (0: the timed wait alone).
    public let spinNanos: UInt64
    /// The scheduler slice the worker thread asks for (`ksr_set_sched_slice_ns`), if any: with
    /// a short one it preempts CPU-bound tasks when it wakes, instead of waiting behind them.
    public let sliceNanos: UInt64?

    public init(spinNanos: UInt64, sliceNanos: UInt64? = nil) {
        self.spinNanos = spinNanos
        self.sliceNanos = sliceNanos
    }

    /// A timed wait alone, to the deadline itself.
    public static let plain = DeadlineWait(spinNanos: 0)
    /// Timer workers: a 50 µs spin, more than the usual wake-up latency of a timed wait with
    /// 1 µs of timer slack (at most 0.5 % of a CPU for a 10 ms timer), and the shortest slice
    /// Linux grants (100 µs), which on a loaded machine makes wake-ups that wait behind other
    /// tasks several times rarer.
    public static let timer = DeadlineWait(spinNanos: 50_000, sliceNanos: 100_000)

    @inline(__always)
    public func step(now: UInt64, deadline: UInt64?) -> Step {
        guard let deadline else { return .idle }
        if now >= deadline { return .due }
        if deadline - now <= spinNanos { return .spin(until: deadline) }
        return .sleep(until: deadline - spinNanos)
    }
}

/// A job posted to a worker: runs on its thread with its body.
public typealias WorkerJob = @Sendable (any WorkerBody) -> Void

/// One thread with its own run loop: it waits for posted jobs or the body's next timer
/// deadline on a condition variable bound to the monotonic clock (ending `deadlineWait`'s
/// spin early, then busy-waiting to the deadline).
///
/// A pollable worker waits in epoll instead, for its jobs (an eventfd, written only while it
/// sleeps), its deadline (nanosecond timeout) and the descriptors it watches: a SIP receiver
/// reads its UDP sockets itself, as a Kamailio worker process does, with no hand-off from
/// another thread.
public final class Worker: @unchecked Sendable {
    public let name: String
    public let kind: WorkerKind
    /// The index among its peers (`kind.index`).
    public var index: Int { kind.index }

    private var mutex = pthread_mutex_t()
    private var cond = pthread_cond_t()
    private var jobs: [WorkerJob] = []
    private var stopping = false
    private var thread: pthread_t?
    private let makeBody: @Sendable (Worker) throws -> any WorkerBody
    /// How the condition-variable loop meets deadlines (the epoll loop waits to the deadline).
    public let deadlineWait: DeadlineWait
    private let started = Mutex<StartState>(.pending)
    private let clock = SystemClock()
    /// Pollable: the epoll instance and the eventfd that wakes it (-1: a condition variable).
    private let epoll: CInt
    private let wakeFD: CInt
    /// Blocked in epoll_wait (under `mutex`): a post must write the eventfd.
    private var sleeping = false
    /// Watched descriptors (under `mutex`), unwatched when the loop ends.
    private var watched: [CInt] = []

    enum StartState { case pending, ready, failed(String) }

    public init(name: String, kind: WorkerKind, pollable: Bool = false, deadlineWait: DeadlineWait = .plain,
                makeBody: @escaping @Sendable (Worker) throws -> any WorkerBody) {
        self.name = name
        self.kind = kind
        self.makeBody = makeBody
        self.deadlineWait = deadlineWait
        var (ep, wake): (CInt, CInt) = (-1, -1)
        if pollable {
            ep = ksr_epoll_create()
            wake = ep >= 0 ? ksr_eventfd() : -1
            if wake < 0 || ksr_epoll_add(ep, wake, 0) != 0 {
                if ep >= 0 { close(ep) }
                if wake >= 0 { close(wake) }
                (ep, wake) = (-1, -1)  // no epoll here: the condition variable does
            }
        }
        (epoll, wakeFD) = (ep, wake)
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(&cond, &attr)
        pthread_condattr_destroy(&attr)
        pthread_mutex_init(&mutex, nil)
    }

    deinit {
        pthread_cond_destroy(&cond)
        pthread_mutex_destroy(&mutex)
        if epoll >= 0 {
            close(epoll)
            close(wakeFD)
        }
    }

    /// Whether `watch` can work (the worker was made pollable and epoll is there).
    public var isPollable: Bool { epoll >= 0 }

    /// Calls the body's `readable(fd)` on this worker's thread whenever `fd` has input. With
    /// `exclusive`, of the workers watching the same socket one is woken per datagram.
    /// False when not pollable or epoll refuses (errno).
    /// The body's descriptors are unwatched when the loop ends, before its `shutdown()`
    /// (where it may close them).
    public func watch(_ fd: CInt, exclusive: Bool) -> Bool {
        guard epoll >= 0, ksr_epoll_add(epoll, fd, exclusive ? 1 : 0) == 0 else { return false }
        pthread_mutex_lock(&mutex)
        watched.append(fd)
        pthread_mutex_unlock(&mutex)
        return true
    }

    /// Starts the thread; the body is created on it.
    public func start() {
        let box = Unmanaged.passRetained(self)
        var t = pthread_t()
        let rc = pthread_create(&t, nil, { arg in
            let worker = Unmanaged<Worker>.fromOpaque(arg!).takeRetainedValue()
            worker.main()
            return nil
        }, box.toOpaque())
        if rc != 0 {
            box.release()
            started.withLock { $0 = .failed("cannot start thread (error \(rc))") }
        } else {
            thread = t
        }
    }

    /// Waits until the body exists or failed; returns the failure message.
    public func waitStarted() -> String? {
        while true {
            let s = started.withLock { $0 }
            switch s {
            case .ready: return nil
            case .failed(let m): return m
            case .pending: usleep(1000)
            }
        }
    }

    /// Posts a job to run on the worker thread.
    public func post(_ job: @escaping WorkerJob) {
        pthread_mutex_lock(&mutex)
        jobs.append(job)
        wakeLocked()
    }

    /// Under `mutex`: wakes the thread if it waits, and unlocks.
    @inline(__always)
    private func wakeLocked() {
        if epoll < 0 {
            pthread_cond_signal(&cond)
            pthread_mutex_unlock(&mutex)
            return
        }
        let write = sleeping
        sleeping = false
        pthread_mutex_unlock(&mutex)
        if write { ksr_eventfd_signal(wakeFD) }
    }

    /// Posts a job unless `limit` jobs are already waiting (load shedding); false if dropped.
    public func post(_ job: @escaping WorkerJob, limit: Int) -> Bool {
        pthread_mutex_lock(&mutex)
        guard jobs.count < limit else {
            pthread_mutex_unlock(&mutex)
            return false
        }
        jobs.append(job)
        wakeLocked()
        return true
    }

    /// Asks the loop to end after the current event.
    public func stop() {
        pthread_mutex_lock(&mutex)
        stopping = true
        wakeLocked()
    }

    /// Waits for the thread to end.
    public func join() {
        if let t = thread {
            pthread_join(t, nil)
            thread = nil
        }
    }

    private func main() {
        if let slice = deadlineWait.sliceNanos { _ = ksr_set_sched_slice_ns(slice) }  // best effort: older kernels refuse
        let body: any WorkerBody
        do {
            body = try makeBody(self)
        } catch {
            started.withLock { $0 = .failed("\(error)") }
            return
        }
        started.withLock { $0 = .ready }
        if epoll >= 0 {
            pollLoop(body)
        } else {
            waitLoop(body)
        }
        body.shutdown()
    }

    private func waitLoop(_ body: any WorkerBody) {
        var pending: [WorkerJob] = []
        while true {
            pthread_mutex_lock(&mutex)
            waiting: while jobs.isEmpty && !stopping {
                switch deadlineWait.step(now: clock.nowNanos(), deadline: body.nextDeadline()) {
                case .due:
                    break waiting
                case .spin(let until):
                    // Unlocked, so that posting is not held up; a job posted meanwhile waits
                    // for the deadline's work, at most `spinNanos`.
                    pthread_mutex_unlock(&mutex)
                    ksr_spin_until(until)
                    pthread_mutex_lock(&mutex)
                    break waiting
                case .sleep(let until):
                    var ts = timespec(tv_sec: Int(until / 1_000_000_000), tv_nsec: Int(until % 1_000_000_000))
                    _ = pthread_cond_timedwait(&cond, &mutex, &ts)  // timed out, signalled or spurious: look again
                case .idle:
                    pthread_cond_wait(&cond, &mutex)
                }
            }
            let quit = stopping
            swap(&pending, &jobs)
            pthread_mutex_unlock(&mutex)
            if quit { break }
            run(&pending, body)
        }
    }

    /// Runs the jobs taken from the queue. Deadlines are checked between jobs too, so a burst
    /// of events does not delay a timer or a sleeping callback that is due.
    @inline(__always)
    private func run(_ pending: inout [WorkerJob], _ body: any WorkerBody) {
        fireIfDue(body)
        for job in pending {
            job(body)
            fireIfDue(body)
        }
        pending.removeAll(keepingCapacity: true)
    }

    private func pollLoop(_ body: any WorkerBody) {
        var pending: [WorkerJob] = []
        var ready = [CInt](repeating: -1, count: 16)
        while true {
            pthread_mutex_lock(&mutex)
            let quit = stopping
            swap(&pending, &jobs)
            pthread_mutex_unlock(&mutex)
            if quit { break }
            run(&pending, body)
            // Wait for input, a job or the next deadline; or only look, if jobs came meanwhile.
            var timeout: Int64 = -1
            if let deadline = body.nextDeadline() {
                let now = clock.nowNanos()
                timeout = deadline > now ? Int64(clamping: deadline - now) : 0
            }
            pthread_mutex_lock(&mutex)
            if !jobs.isEmpty || stopping { timeout = 0 }
            sleeping = timeout != 0
            pthread_mutex_unlock(&mutex)
            let n = ready.withUnsafeMutableBufferPointer { ksr_epoll_wait(epoll, $0.baseAddress, CInt($0.count), timeout) }
            if timeout != 0 {
                pthread_mutex_lock(&mutex)
                sleeping = false
                pthread_mutex_unlock(&mutex)
            }
            guard n > 0 else { continue }
            for i in 0..<Int(n) {
                if ready[i] == wakeFD {
                    ksr_eventfd_clear(wakeFD)
                } else {
                    body.readable(ready[i])
                    fireIfDue(body)
                }
            }
        }
        pthread_mutex_lock(&mutex)
        let fds = watched
        watched = []
        pthread_mutex_unlock(&mutex)
        for fd in fds { _ = ksr_epoll_remove(epoll, fd) }
    }

    @inline(__always)
    private func fireIfDue(_ body: any WorkerBody) {
        if let deadline = body.nextDeadline() {
            let now = clock.nowNanos()
            if now >= deadline { body.fireDue(now: now) }
        }
    }

}
