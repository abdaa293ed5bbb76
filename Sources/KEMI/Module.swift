import Control
import KSRBase
import KSRCore

/// A module parameter, declared with Kamailio's name and type.
public struct ModuleParam: Sendable {
    public enum Kind: Sendable { case int, string }
    public let name: String
    public let kind: Kind
    public let doc: String
    /// Applies one value during the configuration phase; returns warnings to log.
    /// `nil` marks a real Kamailio parameter that KSRHost accepts but does not implement yet:
    /// it starts with a warning naming it, so nothing is silently ignored.
    public let apply: (@Sendable (HostSetup, ParamValue) throws(ParamError) -> [String])?

    public init(_ name: String, _ kind: Kind, doc: String,
                apply: (@Sendable (HostSetup, ParamValue) throws(ParamError) -> [String])?) {
        self.name = name
        self.kind = kind
        self.doc = doc
        self.apply = apply
    }

    /// A Kamailio parameter not implemented by KSRHost (accepted with a warning).
    public static func notImplemented(_ name: String, _ kind: Kind) -> ModuleParam {
        ModuleParam(name, kind, doc: "accepted for compatibility; not implemented", apply: nil)
    }
}

/// A value of a pseudo-variable.
public enum PVValue: Sendable, Equatable {
    case null
    case int(Int)
    case string(String)

    /// Kamailio's string form (integers in decimal; null as nil).
    public var text: String? {
        switch self {
        case .null: return nil
        case .int(let i): return String(i)
        case .string(let s): return s
        }
    }
}

/// A resolved pseudo-variable: how to read and (maybe) write it in one worker.
public final class PVAccess {
    public let get: (WorkerContext) -> PVValue
    /// `nil` for read-only variables (setting them is a silent no-op that succeeds, as in Kamailio).
    public let set: ((WorkerContext, PVValue) -> Bool)?
    /// For `$var(...)`: the worker's slot, read and written directly by `KSR.pv.*` (the hot
    /// path of most scripts) without going through the closures; -1 otherwise.
    let varSlot: Int

    public init(get: @escaping (WorkerContext) -> PVValue, set: ((WorkerContext, PVValue) -> Bool)? = nil) {
        self.get = get
        self.set = set
        self.varSlot = -1
    }

    init(varSlot slot: Int) {
        self.varSlot = slot
        self.get = { $0.vars[slot] }
        self.set = { c, v in
            c.setVar(slot, v)
            return true
        }
    }

    /// The value in worker `ctx`.
    @inline(__always)
    func value(_ ctx: WorkerContext) -> PVValue {
        varSlot >= 0 ? ctx.vars[varSlot] : get(ctx)
    }

    /// Sets the value; `true` on success (read-only variables: `true`, nothing changes).
    @inline(__always)
    func assign(_ ctx: WorkerContext, _ v: PVValue) -> Bool {
        if varSlot >= 0 {
            ctx.setVar(varSlot, v)
            return true
        }
        return set?(ctx, v) ?? true
    }
}

/// A class of pseudo-variables (`$var(...)`, `$TS`, `$mqk(...)`), declared by a module.
public struct PVClass: Sendable {
    public enum Argument: Sendable { case none, required }
    public let name: String
    public let argument: Argument
    public let doc: String
    /// Resolves a name with its argument for one worker. Called once per distinct name per
    /// worker (results are cached), so it may do lookups.
    public let resolve: @Sendable (WorkerContext, String?) throws(ParamError) -> PVAccess

    public init(_ name: String, argument: Argument = .none, doc: String,
                resolve: @escaping @Sendable (WorkerContext, String?) throws(ParamError) -> PVAccess) {
        self.name = name
        self.argument = argument
        self.doc = doc
        self.resolve = resolve
    }
}

/// A module as a Kamailio user knows it: its name, its parameters, its KEMI exports and
/// its pseudo-variables, declared in one place.
public protocol KEMIModule: Sendable {
    /// The name used by `loadmodule` and `modparam` (`"rtimer"`).
    var name: String { get }
    /// Whether this is a Kamailio module that `loadmodule` names; false for the parts of
    /// Kamailio's core that KEMI shows as their own tables (`KSR.*` core, `KSR.hdr`, the
    /// configuration calls).
    var isLoadable: Bool { get }
    var summary: String { get }
    var params: [ModuleParam] { get }
    var exports: [KEMIExport] { get }
    var pseudoVariables: [PVClass] { get }
    /// The module's RPC methods (Kamailio's names where they exist), bound to a running host.
    func rpcMethods(_ host: ScriptHost) -> [RPCMethod]
}

extension KEMIModule {
    public var isLoadable: Bool { true }
    public var params: [ModuleParam] { [] }
    public var exports: [KEMIExport] { [] }
    public var pseudoVariables: [PVClass] { [] }
    public func rpcMethods(_ host: ScriptHost) -> [RPCMethod] { [] }
}
