import KSRBase
import Synchronization

/// All queues of the host, in definition order.
///
/// Queues are defined at startup; lookups by name are lock-free (they read an immutable
/// snapshot that each definition replaces), so worker threads can look queues up per call.
public final class QueueRegistry: Sendable {
    private final class Snapshot: Sendable {
        let byName: [String: MessageQueue]
        let ordered: [MessageQueue]

        init(byName: [String: MessageQueue], ordered: [MessageQueue]) {
            self.byName = byName
            self.ordered = ordered
        }
    }

    /// The current snapshot, not retained by the atomic: `snapshots` keeps it alive.
    private let current: Atomic<Unmanaged<Snapshot>>
    /// Every snapshot ever published, so a reader's snapshot never dies under it.
    /// Also serialises definitions.
    private let snapshots: Mutex<[Snapshot]>

    public init() {
        let empty = Snapshot(byName: [:], ordered: [])
        current = Atomic(Unmanaged.passUnretained(empty))
        snapshots = Mutex([empty])
    }

    /// Creates and registers a queue. Throws `mqueue redefined: <name>` if a queue with
    /// exactly that name exists (names are case-sensitive).
    @discardableResult
    public func define(_ definition: QueueDefinition) throws(ParamError) -> MessageQueue {
        try snapshots.withLock { (all: inout [Snapshot]) throws(ParamError) -> MessageQueue in
            let old = all[all.count - 1]
            guard old.byName[definition.name] == nil else {
                throw ParamError("mqueue redefined: \(definition.name)")
            }
            let queue = MessageQueue(definition)
            var byName = old.byName
            byName[definition.name] = queue
            let next = Snapshot(byName: byName, ordered: old.ordered + [queue])
            all.append(next)
            current.store(Unmanaged.passUnretained(next), ordering: .releasing)
            return queue
        }
    }

    private var snapshot: Snapshot {
        current.load(ordering: .acquiring).takeUnretainedValue()
    }

    /// The queue with exactly this name.
    public func queue(named name: String) -> MessageQueue? {
        snapshot.byName[name]
    }

    /// All queues in definition order.
    public var queues: [MessageQueue] {
        snapshot.ordered
    }
}
