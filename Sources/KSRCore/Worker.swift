#if canImport(Glibc)
import Glibc
#endif
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
}

/// A job posted to a worker: runs on its thread with its body.
public typealias WorkerJob = @Sendable (any WorkerBody) -> Void

/// One thread with its own run loop: it waits for posted jobs or the body's next timer
/// deadline on a condition variable bound to the monotonic clock.
public final class Worker: @unchecked Sendable {
    public let name: String
    public let kind: String
    public let index: Int

    private var mutex = pthread_mutex_t()
    private var cond = pthread_cond_t()
    private var jobs: [WorkerJob] = []
    private var stopping = false
    private var thread: pthread_t?
    private let makeBody: @Sendable (Worker) throws -> any WorkerBody
    private let started = Mutex<StartState>(.pending)
    private let clock = SystemClock()

    enum StartState { case pending, ready, failed(String) }

    public init(name: String, kind: String, index: Int,
                makeBody: @escaping @Sendable (Worker) throws -> any WorkerBody) {
        self.name = name
        self.kind = kind
        self.index = index
        self.makeBody = makeBody
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
        pthread_cond_signal(&cond)
        pthread_mutex_unlock(&mutex)
    }

    /// Posts a job unless `limit` jobs are already waiting (load shedding); false if dropped.
    public func post(_ job: @escaping WorkerJob, limit: Int) -> Bool {
        pthread_mutex_lock(&mutex)
        guard jobs.count < limit else {
            pthread_mutex_unlock(&mutex)
            return false
        }
        jobs.append(job)
        pthread_cond_signal(&cond)
        pthread_mutex_unlock(&mutex)
        return true
    }

    /// Asks the loop to end after the current event.
    public func stop() {
        pthread_mutex_lock(&mutex)
        stopping = true
        pthread_cond_signal(&cond)
        pthread_mutex_unlock(&mutex)
    }

    /// Waits for the thread to end.
    public func join() {
        if let t = thread {
            pthread_join(t, nil)
            thread = nil
        }
    }

    private func main() {
        let body: any WorkerBody
        do {
            body = try makeBody(self)
        } catch {
            started.withLock { $0 = .failed("\(error)") }
            return
        }
        started.withLock { $0 = .ready }
        var pending: [WorkerJob] = []
        while true {
            pthread_mutex_lock(&mutex)
            while jobs.isEmpty && !stopping {
                if let deadline = body.nextDeadline() {
                    if clock.nowNanos() >= deadline { break }
                    var ts = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
                    let rc = pthread_cond_timedwait(&cond, &mutex, &ts)
                    if rc == ETIMEDOUT { break }
                } else {
                    pthread_cond_wait(&cond, &mutex)
                }
            }
            let quit = stopping
            swap(&pending, &jobs)
            pthread_mutex_unlock(&mutex)
            if quit { break }
            // Deadlines are checked between jobs too, so a burst of events does not delay a
            // timer or a sleeping callback that is due.
            fireIfDue(body)
            for job in pending {
                job(body)
                fireIfDue(body)
            }
            pending.removeAll(keepingCapacity: true)
        }
        body.shutdown()
    }

    @inline(__always)
    private func fireIfDue(_ body: any WorkerBody) {
        if let deadline = body.nextDeadline() {
            let now = clock.nowNanos()
            if now >= deadline { body.fireDue(now: now) }
        }
    }

}
