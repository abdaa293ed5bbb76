import Control
import KSRBase
import KSRCore
import LuaBridge
import MQueue

extension WorkerContext {
    /// The queue named by argument `i`, found by the Lua string's address when seen before.
    @inline(__always)
    func queueArg(_ args: LuaArgs, _ i: Int32) -> Int? {
        guard let bytes = args.bytes(i) else { return nil }
        if let hit = queueCache.lookup(bytes) { return hit }
        guard let index = queueIndex(LuaStrings.string(bytes)) else { return nil }
        queueCache.insert(bytes, index)
        return index
    }
}

/// mqueue: named shared queues of key/value strings. Functions `KSR.mqueue.*`, variables
/// `$mqk(q)`, `$mqv(q)`, `$mq_size(q)`, persistence through `db_url` (SQLite).
struct MQueueModule: KEMIModule {
    let name = "mqueue"
    let summary = "shared key/value queues with size bound, add modes and SQLite persistence"

    var params: [ModuleParam] {
        [
            ModuleParam("db_url", .string, doc: "Database for queues with a dbmode: sqlite:///path/to/file.db") { setup, v throws(ParamError) in
                setup.dbURL = v.text
                return []
            },
            ModuleParam("mqueue", .string, doc: "Defines a queue: \"name=Q;size=N;addmode=A;dbmode=D\".") { setup, v throws(ParamError) in
                let def = try QueueDefinition(parsing: v.text)
                if def.dbMode != .none && setup.dbURL == nil {
                    throw ParamError("queue \(def.name) has dbmode \(def.dbMode.rawValue) but no db_url is set before it")
                }
                try setup.queues.define(def)
                return []
            },
            ModuleParam("mqueue_name", .string, doc: "Defines a queue by name, with the current mqueue_size and mqueue_addmode.") { setup, v throws(ParamError) in
                let def = try QueueDefinition(name: v.text, size: setup.mqueueSize, addMode: AddMode(rawValue: setup.mqueueAddMode) ?? .append)
                try setup.queues.define(def)
                return []
            },
            ModuleParam("mqueue_size", .int, doc: "Size of later mqueue_name queues (0: unlimited).") { setup, v throws(ParamError) in
                guard let n = v.intValue, n >= 0 else { throw ParamError("expects a non-negative integer, got \(v)") }
                setup.mqueueSize = n
                return []
            },
            ModuleParam("mqueue_addmode", .int, doc: "Add mode of later mqueue_name queues (0, 1 or 2).") { setup, v throws(ParamError) in
                guard let n = v.intValue, (0...2).contains(n) else { throw ParamError("expects 0, 1 or 2, got \(v)") }
                setup.mqueueAddMode = n
                return []
            },
        ]
    }

    var exports: [KEMIExport] {
        func keyOrValue(_ fn: String, key: Bool, _ doc: String) -> KEMIExport {
            KEMIExport("mqueue", fn, [("queue", .str)], returns: .xval, doc: doc) { ctx, args in
                guard let qi = ctx.queueArg(args, 1) else { return .null }
                // Pushed from the slot in place: the item is not copied.
                let slot = ctx.fetched + qi
                guard case .some = slot.pointee else { return .null }
                let push = LuaPush(args.L)
                if key {
                    slot.pointee!.key.withUTF8 { push.bytes(UnsafeRawBufferPointer($0)) }
                } else {
                    slot.pointee!.value.withUTF8 { push.bytes(UnsafeRawBufferPointer($0)) }
                }
                return .pushed
            }
        }
        return [
            KEMIExport("mqueue", "mq_add", [("queue", .str), ("key", .str), ("value", .str)], returns: .int,
                       doc: "Adds an item: 1 when added (or ignored by addmode 1), -1 if the queue does not exist.") { ctx, args in
                guard let qi = ctx.queueArg(args, 1) else {
                    ctx.logUsageError(args.L, "mqueue not found: \(args.string(1) ?? "")")
                    return .int(-1)
                }
                let key = args.string(2) ?? "", value = args.string(3) ?? ""
                ctx.withQueue(qi) { $0.add(key: key, value: value) }
                return .int(1)
            },
            KEMIExport("mqueue", "mq_fetch", [("queue", .str)], returns: .int,
                       doc: "Takes the oldest item into this worker's slot: 1 ok, -2 queue empty, -1 unknown queue.") { ctx, args in
                guard let qi = ctx.queueArg(args, 1) else {
                    ctx.logUsageError(args.L, "mqueue not found: \(args.string(1) ?? "")")
                    return .int(-1)
                }
                ctx.fetched[qi] = ctx.withQueue(qi) { $0.fetch() }
                return .int(ctx.fetched[qi] == nil ? -2 : 1)
            },
            KEMIExport("mqueue", "mq_size", [("queue", .str)], returns: .int,
                       doc: "Number of items in the queue; -1 if it does not exist.") { ctx, args in
                guard let qi = ctx.queueArg(args, 1) else {
                    ctx.logUsageError(args.L, "mqueue \(args.string(1) ?? "") not found")
                    return .int(-1)
                }
                return .int(ctx.withQueue(qi) { $0.count })
            },
            KEMIExport("mqueue", "mq_pv_free", [("queue", .str)], returns: .int,
                       doc: "Forgets this worker's last fetched item of the queue; always 1.") { ctx, args in
                if let qi = ctx.queueArg(args, 1) { ctx.fetched[qi] = nil }
                return .int(1)
            },
            keyOrValue("mqk_get", key: true, "Key of this worker's last fetched item (\"\" allowed); nil if none."),
            keyOrValue("mqv_get", key: false, "Value of this worker's last fetched item; nil if none."),
            keyOrValue("mqk_gete", key: true, "As mqk_get: nil when nothing is fetched (Kamailio ignores the null mode)."),
            keyOrValue("mqk_getw", key: true, "As mqk_get: nil when nothing is fetched (Kamailio ignores the null mode)."),
            keyOrValue("mqv_gete", key: false, "As mqv_get: nil when nothing is fetched (Kamailio ignores the null mode)."),
            keyOrValue("mqv_getw", key: false, "As mqv_get: nil when nothing is fetched (Kamailio ignores the null mode)."),
        ]
    }

    var pseudoVariables: [PVClass] {
        @Sendable func queue(_ ctx: WorkerContext, _ name: String) throws(ParamError) -> Int {
            guard let qi = ctx.queueIndex(name) else { throw ParamError("mqueue not found: \(name)") }
            return qi
        }
        return [
            PVClass("mqk", argument: .required, doc: "Key of this worker's last fetched item of queue q; nil if none or empty.") { ctx, arg throws(ParamError) in
                let qi = try queue(ctx, arg!)
                return PVAccess(get: { c in
                    guard let k = c.fetched[qi]?.key, !k.isEmpty else { return .null }
                    return .string(k)
                })
            },
            PVClass("mqv", argument: .required, doc: "Value of this worker's last fetched item of queue q; nil if none or empty.") { ctx, arg throws(ParamError) in
                let qi = try queue(ctx, arg!)
                return PVAccess(get: { c in
                    guard let v = c.fetched[qi]?.value, !v.isEmpty else { return .null }
                    return .string(v)
                })
            },
            PVClass("mq_size", argument: .required, doc: "Number of items in queue q.") { ctx, arg throws(ParamError) in
                let qi = try queue(ctx, arg!)
                return PVAccess(get: { c in .int(c.runtime.queueList[qi].count) })
            },
        ]
    }
}

// MARK: - RPC

extension MQueueModule {
    func rpcMethods(_ host: ScriptHost) -> [RPCMethod] {
        /// Kamailio's checks and codes for the queue name.
        @Sendable func queue(_ args: RPCArguments, missingCode: Int) throws(RPCError) -> MessageQueue {
            guard args.has(0) else { throw RPCError(code: missingCode, message: "No queue name") }
            let name = try args.string(0)
            guard !name.isEmpty else { throw RPCError(code: missingCode, message: "Invalid queue name") }
            guard let q = host.runtime.queues.queue(named: name) else {
                throw RPCError(code: missingCode == 400 ? 404 : 500, message: "No such queue")
            }
            return q
        }
        let nameParam = RPCParam("name", .string, optional: true, doc: "queue name")
        return [
            RPCMethod("mqueue.get_size", doc: "Number of items in a queue.", params: [nameParam]) { args throws(RPCError) in
                let q = try queue(args, missingCode: 400)
                return .object([("name", .string(q.definition.name)), ("size", .int(q.count))])
            },
            RPCMethod("mqueue.get_sizes", doc: "Name and size of every queue (newest definition first, as Kamailio).") { _ in
                .array(host.runtime.queueList.reversed().map { q in
                    .object([("name", .string(q.definition.name)), ("size", .int(q.count))])
                })
            },
            RPCMethod("mqueue.fetch", doc: "Takes the oldest item of a queue: {key, val}.", params: [nameParam]) { args throws(RPCError) in
                let q = try queue(args, missingCode: 500)
                guard let item = q.fetch() else { throw RPCError(code: 404, message: "Empty queue") }
                return .object([("key", .string(item.key)), ("val", .string(item.value))])
            },
            RPCMethod("mqueue.list", doc: "Every queue with its size, limit, add mode, db mode and counters.") { _ in
                .array(host.runtime.queueList.map { q in
                    let s = q.stats
                    return .object([
                        ("name", .string(q.definition.name)), ("size", .int(q.count)), ("limit", .int(q.definition.size)),
                        ("addmode", .int(q.definition.addMode.rawValue)), ("dbmode", .int(q.definition.dbMode.rawValue)),
                        ("adds", .int(Int(clamping: s.adds))), ("fetches", .int(Int(clamping: s.fetches))),
                        ("drops", .int(Int(clamping: s.drops))),
                    ])
                })
            },
        ]
    }
}
