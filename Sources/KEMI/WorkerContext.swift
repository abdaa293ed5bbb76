import CLua
import KSRBase
import KSRCore
import Logging
import LuaBridge
import MQueue
import SIP
import SIPTransaction

/// Everything one worker owns: its Lua state, its `$var`s, the item it fetched last from each
/// queue, its faked message. Created on the worker's thread and used only there.
public final class WorkerContext {
    public enum Phase {
        /// The configuration pass: `modparam` and friends record settings.
        case config
        /// A worker loading the script: configuration calls do nothing, KSR calls that need a
        /// message return false.
        case loading
        /// Serving events.
        case running
    }

    public let lua: LuaState
    public let runtime: HostRuntime
    public let exports: [KEMIExport]
    /// The exports as unretained references, indexed by id, for the dispatcher.
    let exportTable: UnsafeMutablePointer<Unmanaged<KEMIExport>>
    public internal(set) var phase: Phase
    /// What this worker is for (`core.psx` describes it from this).
    public let workerKind: WorkerKind
    public let workerName: String
    /// The index of a dedicated rtimer worker (`$rtimer_worker`), 0 elsewhere.
    public let rtimerIndex: Int
    public var logger: Logger
    /// The configuration being collected (configuration phase only).
    let setup: HostSetup?

    // $var(...) values, by slot.
    var vars: [PVValue] = []
    var varSlots: [String: Int] = [:]
    // Resolved PVs: by Lua string pointer (fast path) and by name.
    var pvCache = PointerCache<PVAccess>()
    var pvByName: [String: PVAccess] = [:]
    // Queues by Lua string pointer, and the last fetched item per queue index.
    var queueCache = PointerCache<Int>()
    /// The queues by index, unretained (the runtime keeps them), so that a KSR call reaches its
    /// queue without reference counting.
    let queueRefs: UnsafeMutablePointer<Unmanaged<MessageQueue>>
    /// The last fetched item per queue index (`queueCount` slots): a fixed buffer, written in
    /// place without the copy-on-write checks of an array.
    let fetched: UnsafeMutablePointer<QueueItem?>
    let queueCount: Int
    /// The message the running callback sees: a received SIP message, or the faked one.
    public var message = MessageState.faked()
    /// Continuations a suspending async call queued on this worker (`route`, `ms_route`),
    /// picked up by the worker after the callback returns.
    var scheduled: [(wake: UInt64, continuation: Continuation)] = []
    /// Reused for building replies.
    var replyBuffer: [UInt8] = []
    /// While a DMQ channel_route function runs: the stateless reply it sent (for the reply cache).
    var capturingDMQReply = false
    var dmqCapture: [UInt8] = []
    /// The faked message timer and task callbacks run with; changes to it persist between
    /// callbacks of this worker, as in Kamailio.
    var faked = MessageState.faked()
    /// Set by `KSR.x.drop()` / `KSR.set_drop()` for the current event.
    var dropRequested = false
    /// The data of the running async task (`KSR.async.get_data`, `$async(data)`).
    var asyncData: String?
    /// The async group this worker belongs to (`KSR.async.get_gname`, `$async(gname)`).
    let asyncGroup: String?
    /// Receive time of the current event (`$Ts`).
    var eventTime: (seconds: Int, micros: Int) = (0, 0)

    init(lua: LuaState, runtime: HostRuntime, phase: Phase, kind: WorkerKind, name: String,
         rtimerIndex: Int = 0, asyncGroup: String? = nil, setup: HostSetup? = nil) {
        self.asyncGroup = asyncGroup
        self.lua = lua
        self.runtime = runtime
        self.exports = runtime.exports
        exportTable = .allocate(capacity: max(runtime.exports.count, 1))
        for (i, e) in runtime.exports.enumerated() { (exportTable + i).initialize(to: .passUnretained(e)) }
        self.phase = phase
        self.workerKind = kind
        self.workerName = name
        self.rtimerIndex = rtimerIndex
        self.setup = setup
        let queues = runtime.queueList
        queueCount = queues.count
        queueRefs = .allocate(capacity: max(queues.count, 1))
        for (i, q) in queues.enumerated() { (queueRefs + i).initialize(to: .passUnretained(q)) }
        fetched = .allocate(capacity: max(queues.count, 1))
        fetched.initialize(repeating: nil, count: queues.count)
        var logger = Logger(label: "script")
        logger[metadataKey: "worker"] = .string(name)
        self.logger = logger
    }

    deinit {
        exportTable.deallocate()
        queueRefs.deallocate()
        fetched.deinitialize(count: queueCount)
        fetched.deallocate()
    }

    /// Runs `body` with queue `index` (from `queueArg` or `queueIndex`), without retaining it.
    @inline(__always)
    func withQueue<R>(_ index: Int, _ body: (MessageQueue) -> R) -> R {
        queueRefs[index]._withUnsafeGuaranteedRef(body)
    }

    /// Where the running Lua code is: `app.lua:12` (the caller of the current KSR function).
    func scriptLocation(_ L: OpaquePointer) -> String? {
        let loc = sourceLocation(L)
        guard loc.line >= 0 else { return nil }
        return "\(loc.file.split(separator: "/").last.map(String.init) ?? loc.file):\(loc.line)"
    }

    /// The script file (full path) and line of the Lua code calling the current KSR function;
    /// line -1 when it is not known.
    func sourceLocation(_ L: OpaquePointer) -> SourceLocation {
        var buf = [CChar](repeating: 0, count: 256)
        let line = ksr_lua_where_buf(L, 1, &buf, 256)
        return SourceLocation(file: buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }, line: Int(line))
    }

    /// Logs an error about the use of a KSR function, with the script location.
    func logUsageError(_ L: OpaquePointer, _ message: String) {
        var meta: Logger.Metadata = ["ksr.module": "kemi"]
        if let w = scriptLocation(L) { meta["ksr.where"] = .string(w) }
        logger.error("\(message)", metadata: meta)
    }

    /// Resolves a PV name (with caching) or returns nil after logging why.
    func pv(_ name: String) -> PVAccess? {
        if let a = pvByName[name] { return a }
        do {
            let a = try runtime.resolvePV(name, in: self)
            pvByName[name] = a
            return a
        } catch {
            logger.error("invalid pv [\(name)]: \(error.message)", metadata: ["ksr.module": "pv"])
            return nil
        }
    }

    /// Index of queue `name`, or nil.
    func queueIndex(_ name: String) -> Int? { runtime.queueIndex[name] }
}

/// A tiny direct-mapped cache keyed by the address of a Lua string (short Lua strings are
/// interned, so a literal keeps its address). Every hit is verified against the bytes, so a
/// reused address never returns a wrong entry. Lookups neither allocate nor hash.
final class PointerCache<Value> {
    private static var size: Int { 256 }
    private let addresses = UnsafeMutablePointer<UInt>.allocate(capacity: 256)
    private let lengths = UnsafeMutablePointer<Int>.allocate(capacity: 256)
    private let keys = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: 256)
    private let values = UnsafeMutablePointer<Value?>.allocate(capacity: 256)

    init() {
        addresses.initialize(repeating: 0, count: Self.size)
        lengths.initialize(repeating: -1, count: Self.size)
        keys.initialize(repeating: nil, count: Self.size)
        values.initialize(repeating: nil, count: Self.size)
    }

    deinit {
        for i in 0..<Self.size { keys[i]?.deallocate() }
        values.deinitialize(count: Self.size)
        addresses.deallocate()
        lengths.deallocate()
        keys.deallocate()
        values.deallocate()
    }

    @inline(__always)
    private static func slot(_ address: UInt) -> Int { Int(truncatingIfNeeded: (address >> 4) ^ (address >> 12)) & 255 }

    @inline(__always)
    func lookup(_ key: UnsafeRawBufferPointer) -> Value? {
        let address = UInt(bitPattern: key.baseAddress)
        let i = Self.slot(address)
        let n = key.count
        guard addresses[i] == address, lengths[i] == n, let stored = keys[i] else { return nil }
        if n <= 32 {
            // Names are short: comparing in place beats the call to memcmp.
            let a = stored.assumingMemoryBound(to: UInt8.self)
            let b = key.baseAddress!.assumingMemoryBound(to: UInt8.self)
            var j = 0
            while j < n {
                guard a[j] == b[j] else { return nil }
                j += 1
            }
        } else {
            guard memcmp(stored, key.baseAddress!, n) == 0 else { return nil }
        }
        return values[i]
    }

    func insert(_ key: UnsafeRawBufferPointer, _ value: Value) {
        let address = UInt(bitPattern: key.baseAddress)
        let i = Self.slot(address)
        keys[i]?.deallocate()
        let copy = UnsafeMutableRawPointer.allocate(byteCount: max(key.count, 1), alignment: 1)
        if key.count > 0 { copy.copyMemory(from: key.baseAddress!, byteCount: key.count) }
        keys[i] = copy
        addresses[i] = address
        lengths[i] = key.count
        values[i] = value
    }
}


/// A suspended request waiting to continue in a Lua callback.
struct Continuation: Sendable {
    let transaction: TransactionID
    let callback: String
    let message: MessageState
}
