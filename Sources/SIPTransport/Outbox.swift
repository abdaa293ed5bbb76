import NIOCore
import Synchronization

/// Hands a TCP connection's writes from any thread to its event loop. Writes queued while a
/// drain is pending ride along with it: one wake-up of the loop and one flush (one `writev`)
/// for a burst, instead of one each.
final class Outbox: Sendable {
    struct Item {
        var payload: ByteBuffer
        var completion: SIPSendCompletion?
    }

    private struct Queue {
        var items: [Item] = []
        var spare: [Item] = []
        var scheduled = false
        var closed = false
    }

    let channel: any Channel
    let counters: Counters
    private let queue = Mutex(Queue())

    init(channel: any Channel, counters: Counters) {
        self.channel = channel
        self.counters = counters
    }

    /// Queues a write; false (and nothing done) once closed.
    func send(_ payload: ByteBuffer, completion: SIPSendCompletion?) -> Bool {
        let item = Item(payload: payload, completion: completion)
        let schedule: Bool? = queue.withLock { q in
            if q.closed { return nil }
            q.items.append(item)
            if q.scheduled { return false }
            q.scheduled = true
            return true
        }
        guard let schedule else { return false }
        if schedule { channel.eventLoop.execute { self.drain() } }
        return true
    }

    /// No more sends; what is queued is still written (or fails as the channel closes).
    func close() {
        queue.withLock { $0.closed = true }
    }

    private func drain() {
        var items: [Item] = queue.withLock { q in
            let taken = q.items
            q.items = q.spare  // an empty array with capacity, from the last drain
            q.spare = []
            q.scheduled = false
            return taken
        }
        let pipeline = channel.pipeline.syncOperations
        let counters = self.counters
        for item in items {
            let promise = channel.eventLoop.makePromise(of: Void.self)
            let completion = item.completion
            promise.futureResult.whenComplete { result in
                switch result {
                case .success:
                    counters.sent.add(1, ordering: .relaxed)
                    completion?(.success(()))
                case .failure(let error):
                    counters.errors.add(1, ordering: .relaxed)
                    completion?(.failure(SIPTransportError(describe(error))))
                }
            }
            pipeline.write(NIOAny(item.payload), promise: promise)
        }
        pipeline.flush()
        items.removeAll(keepingCapacity: true)
        queue.withLock { $0.spare = items }
    }
}

/// The counters behind `SIPTransportStats`.
final class Counters: Sendable {
    let received = Atomic<Int>(0)
    let sent = Atomic<Int>(0)
    let dropped = Atomic<Int>(0)
    let errors = Atomic<Int>(0)
    let tcpConnections = Atomic<Int>(0)

    var snapshot: SIPTransportStats {
        SIPTransportStats(
            received: received.load(ordering: .relaxed),
            sent: sent.load(ordering: .relaxed),
            dropped: dropped.load(ordering: .relaxed),
            errors: errors.load(ordering: .relaxed),
            tcpConnections: tcpConnections.load(ordering: .relaxed))
    }
}
