import LuaBridge

/// The type of a KEMI function parameter, as Kamailio declares it.
public enum KEMIParam: Sendable {
    case str, int

    var luaType: String {
        switch self {
        case .str: "string"
        case .int: "integer"
        }
    }
}

/// The declared return type of a KEMI function.
public enum KEMIReturn: Sendable {
    /// An integer (negative codes included).
    case int
    /// `true` when the C result is non-zero.
    case bool
    /// A string, an integer or nil, chosen by the function.
    case xval
    /// No value: Lua gets `false`, as with Kamailio.
    case none
}

/// What a KEMI function gives back.
public enum KEMIValue: Sendable {
    case none
    case null
    case bool(Bool)
    case int(Int)
    case string(String)
    /// Raise this message as a Lua error (done by the C trampoline after Swift returns).
    case raise(String)
    /// The function pushed its one result itself (a string pushed from where it is stored).
    case pushed
}

/// One function exported to Lua as `KSR.<module>.<name>` (or `KSR.<name>` for the core).
/// The KSR table, the editor stubs and the API list are all built from these declarations.
public final class KEMIExport: Sendable {
    /// `""` for core functions (`KSR.info`), a module name otherwise (`KSR.pv.get`),
    /// or `"_G"` for a global configuration function (`modparam`).
    public let module: String
    public let name: String
    /// Parameter names and types (at most 6, as in Kamailio).
    public let params: [(name: String, type: KEMIParam)]
    public let returns: KEMIReturn
    /// One-line description for the stubs.
    public let doc: String
    /// Whether the function needs a message, as Kamailio's do: called while the script loads,
    /// it logs and returns `false` without doing anything.
    public let needsMessage: Bool
    public let impl: @Sendable (WorkerContext, LuaArgs) -> KEMIValue
    /// A Lua expression implementing the function instead of Swift, for the few functions
    /// that must raise or yield (`KSR.x.exit` raises Kamailio's sentinel from Lua, never from
    /// Swift). `KSR` is in scope.
    public let lua: String?

    public init(
        _ module: String, _ name: String, _ params: [(String, KEMIParam)] = [], returns: KEMIReturn,
        needsMessage: Bool = true, doc: String,
        _ impl: @escaping @Sendable (WorkerContext, LuaArgs) -> KEMIValue
    ) {
        self.module = module
        self.name = name
        self.params = params.map { (name: $0.0, type: $0.1) }
        self.returns = returns
        self.doc = doc
        self.needsMessage = needsMessage
        self.impl = impl
        self.lua = nil
    }

    /// A function written in Lua (see `lua`).
    public init(_ module: String, _ name: String, _ params: [(String, KEMIParam)] = [], returns: KEMIReturn,
                doc: String, lua: String) {
        self.module = module
        self.name = name
        self.params = params.map { (name: $0.0, type: $0.1) }
        self.returns = returns
        self.doc = doc
        self.needsMessage = false
        self.impl = { _, _ in .none }
        self.lua = lua
    }

    /// `KSR.pv.get`, `KSR.info`, `modparam`.
    public var qualifiedName: String {
        switch module {
        case "": return "KSR.\(name)"
        case "_G": return name
        default: return "KSR.\(module).\(name)"
        }
    }

    /// Kamailio's name in messages: `pv.get`, `info`.
    var kamailioName: String { module.isEmpty || module == "_G" ? name : "\(module).\(name)" }
}
