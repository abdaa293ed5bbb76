import CLua
import KSRCore
import Logging
import LuaBridge

/// The one Swift function behind every exported KSR function: the trampoline in CLua calls it
/// with the export's id; it checks the arguments as Kamailio does, runs the export and pushes
/// the result. It never raises.
let kemiDispatcher: LuaDispatcher = { L, id in
    guard let L, let raw = LuaState.context(of: L) else { return 0 }
    // The worker keeps its context alive while its Lua state runs: no retain needed here.
    return Unmanaged<WorkerContext>.fromOpaque(raw)._withUnsafeGuaranteedRef { ctx in
        ctx.exportTable[Int(id)]._withUnsafeGuaranteedRef { export in dispatch(ctx, L, export) }
    }
}

@inline(__always)
private func dispatch(_ ctx: WorkerContext, _ L: OpaquePointer, _ export: KEMIExport) -> Int32 {
    let args = LuaArgs(L)
    let wanted = Int32(export.params.count)
    let push = LuaPush(L)
    if args.count < wanted {
        ctx.logUsageError(L, wanted == 1 && args.count == 0
            ? "invalid number of parameters for: \(export.kamailioName)"
            : "not enough parameters for: \(export.kamailioName)")
        push.bool(false)
        return 1
    }
    if wanted == 0 && args.count > 0 {
        ctx.logUsageError(L, "invalid parameters for: \(export.kamailioName)")
        push.bool(false)
        return 1
    }
    if export.needsMessage && ctx.phase != .running {
        if ctx.phase == .config {
            ctx.logger.warning(
                "\(export.qualifiedName) called while the script loads: it does nothing there and returns false (as in Kamailio); call it from a callback",
                metadata: ["ksr.module": "kemi", "ksr.where": .string(ctx.scriptLocation(L) ?? "?")])
        }
        push.bool(false)
        return 1
    }
    switch export.impl(ctx, args) {
    case .none: push.bool(false)
    case .null: push.nil()
    case .bool(let b): push.bool(b)
    case .int(let i): push.int(i)
    case .string(let s): push.string(s)
    case .raise(let message): return push.raise(message)
    case .pushed: break
    }
    return 1
}

enum KSRTable {
    /// Builds `KSR`, its module tables, the configuration globals and `KSRVERSION` in a state.
    static func install(_ ctx: WorkerContext) throws(LuaError) {
        let lua = ctx.lua
        var byModule: [String: [(Int, KEMIExport)]] = [:]
        var moduleOrder: [String] = []
        for (i, e) in ctx.exports.enumerated() where e.lua == nil {
            if byModule[e.module] == nil { moduleOrder.append(e.module) }
            byModule[e.module, default: []].append((i, e))
        }
        lua.pushNewTable()  // KSR
        for (i, e) in byModule[""] ?? [] { lua.setFunctionField(e.name, dispatcher: kemiDispatcher, id: Int32(i)) }
        var tables = Set(moduleOrder)
        for e in ctx.exports where e.lua != nil && !e.module.isEmpty && e.module != "_G" { tables.insert(e.module) }
        for m in tables.sorted() where !m.isEmpty && m != "_G" {
            lua.pushNewTable()
            for (i, e) in byModule[m] ?? [] { lua.setFunctionField(e.name, dispatcher: kemiDispatcher, id: Int32(i)) }
            lua.setField(m)
        }
        lua.setGlobal("KSR")
        for (i, e) in byModule["_G"] ?? [] { lua.setGlobalFunction(e.name, dispatcher: kemiDispatcher, id: Int32(i)) }
        lua.setGlobal("KSRVERSION", string: "2.0")
        var prelude = "local KSR = KSR\n"
        for e in ctx.exports { if let body = e.lua { prelude += "\(e.qualifiedName) = \(body)\n" } }
        try lua.run(prelude, name: "=(ksr prelude)")
    }
}
