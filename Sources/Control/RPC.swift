import Synchronization

/// A JSON-RPC error: the standard codes (-32700...-32600) or Kamailio-style ones (400, 404, 500)
/// that methods throw with Kamailio's messages.
public struct RPCError: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: Int
    public var message: String
    public var data: JSONValue?

    public init(code: Int, message: String, data: JSONValue? = nil) {
        self.code = code
        self.message = message
        self.data = data
    }

    public static let parseErrorCode = -32700
    public static let invalidRequestCode = -32600
    public static let methodNotFoundCode = -32601
    public static let invalidParamsCode = -32602
    public static let internalErrorCode = -32603

    public static func parseError(_ detail: String) -> RPCError {
        RPCError(code: parseErrorCode, message: "parse error: \(detail)")
    }
    public static func invalidRequest(_ detail: String) -> RPCError {
        RPCError(code: invalidRequestCode, message: "invalid request: \(detail)")
    }
    public static func methodNotFound(_ name: String) -> RPCError {
        RPCError(code: methodNotFoundCode, message: "method not found: \(name)")
    }
    public static func invalidParams(_ detail: String) -> RPCError {
        RPCError(code: invalidParamsCode, message: detail)
    }
    public static func internalError(_ detail: String) -> RPCError {
        RPCError(code: internalErrorCode, message: "internal error: \(detail)")
    }

    public var description: String { "error \(code): \(message)" }

    /// `{"code":..,"message":..[,"data":..]}`
    public var json: JSONValue {
        var o: JSONValue = ["code": .int(code), "message": .string(message)]
        if let data { o["data"] = data }
        return o
    }
}

/// One declared parameter of a method.
public struct RPCParam: Sendable {
    public enum Kind: Sendable, Equatable {
        /// A JSON string.
        case string
        /// A JSON integer, an integral number, or a string holding a decimal integer (kamcmd
        /// sends every parameter as a string).
        case int
        /// A JSON number or a numeric string; handlers get a `.double`.
        case double
        /// A JSON boolean, 0/1, or one of the strings true/false/yes/no/on/off/1/0.
        case bool
        /// Any JSON value, passed through as is.
        case any

        /// "string", "int", ... as in "missing parameter 'name' (string)".
        public var name: String {
            switch self {
            case .string: "string"
            case .int: "int"
            case .double: "double"
            case .bool: "bool"
            case .any: "any"
            }
        }

        var article: String {
            switch self {
            case .string: "a string"
            case .int: "an integer"
            case .double: "a number"
            case .bool: "a boolean"
            case .any: "a value"
            }
        }
    }

    public var name: String
    public var type: Kind
    public var optional: Bool
    public var doc: String

    public init(_ name: String, _ type: Kind, optional: Bool = false, doc: String = "") {
        self.name = name
        self.type = type
        self.optional = optional
        self.doc = doc
    }

    public init(name: String, type: Kind, optional: Bool = false, doc: String = "") {
        self.init(name, type, optional: optional, doc: doc)
    }

    /// The value converted to this parameter's type, or nil when it cannot be.
    func coerce(_ value: JSONValue) -> JSONValue? {
        Self.coerce(value, to: type)
    }

    static func coerce(_ value: JSONValue, to type: Kind) -> JSONValue? {
        switch type {
        case .any:
            return value
        case .string:
            if case .string = value { return value }
            return nil
        case .int:
            switch value {
            case .int: return value
            case .double(let d): return Int(exactly: d).map(JSONValue.int)
            case .string(let s): return Int(s).map(JSONValue.int)
            default: return nil
            }
        case .double:
            switch value {
            case .int(let i): return .double(Double(i))
            case .double: return value
            case .string(let s): return Double(s).flatMap { $0.isFinite ? JSONValue.double($0) : nil }
            default: return nil
            }
        case .bool:
            switch value {
            case .bool: return value
            case .int(0): return .bool(false)
            case .int(1): return .bool(true)
            case .string(let s):
                switch s.lowercased() {
                case "true", "yes", "on", "1": return .bool(true)
                case "false", "no", "off", "0": return .bool(false)
                default: return nil
                }
            default: return nil
            }
        }
    }

    var missing: RPCError { .invalidParams("missing parameter '\(name)' (\(type.name))") }
    var wrongType: RPCError { .invalidParams("parameter '\(name)' must be \(type.article)") }
}

/// A method: its name ("mqueue.get_size"), documentation, declared parameters and handler.
public struct RPCMethod: Sendable {
    public typealias Handler = @Sendable (RPCArguments) async throws(RPCError) -> JSONValue

    public var name: String
    public var doc: String
    public var params: [RPCParam]
    public var handler: Handler

    /// The handler may throw `RPCError` (answered as is) or any other error (answered as
    /// -32603 internal error).
    public init<E: Error>(
        _ name: String,
        doc: String = "",
        params: [RPCParam] = [],
        handler: @escaping @Sendable (RPCArguments) async throws(E) -> JSONValue
    ) {
        self.name = name
        self.doc = doc
        self.params = params
        self.handler = { (args: RPCArguments) async throws(RPCError) -> JSONValue in
            do {
                return try await handler(args)
            } catch {
                if let e = error as? RPCError { throw e }
                throw RPCError.internalError(String(describing: error))
            }
        }
    }

    public init<E: Error>(
        name: String,
        doc: String = "",
        params: [RPCParam] = [],
        handler: @escaping @Sendable (RPCArguments) async throws(E) -> JSONValue
    ) {
        self.init(name, doc: doc, params: params, handler: handler)
    }

    /// "name (string), [limit] (int)"
    public var signature: String {
        params.map { p in
            p.optional ? "[\(p.name)] (\(p.type.name))" : "\(p.name) (\(p.type.name))"
        }.joined(separator: ", ")
    }

    /// The doc followed by the parameters, as `system.methodHelp` answers.
    public var help: String {
        var text = doc
        if !params.isEmpty {
            if !text.isEmpty { text += "\n" }
            text += "Parameters:"
            for p in params {
                text += "\n  \(p.name) (\(p.type.name)\(p.optional ? ", optional" : ""))"
                if !p.doc.isEmpty { text += ": \(p.doc)" }
            }
        }
        return text
    }
}

/// The parameters of one call, mapped onto the method's declared order (named parameters
/// included) and converted to the declared types (an `.int` parameter given as "5" is `.int(5)`).
/// A declared optional parameter that was not given (or given as null) is absent.
public struct RPCArguments: Sendable {
    public let method: String
    public let params: [RPCParam]
    /// One per declared parameter.
    public let values: [JSONValue?]

    public init(method: String = "", params: [RPCParam] = [], values: [JSONValue?]) {
        self.method = method
        self.params = params
        self.values = values
    }

    /// The number of parameters given.
    public var count: Int { values.count(where: { $0 != nil }) }

    public subscript(index: Int) -> JSONValue? {
        values.indices.contains(index) ? values[index] : nil
    }

    public subscript(name: String) -> JSONValue? {
        guard let i = params.firstIndex(where: { $0.name == name }) else { return nil }
        return self[i]
    }

    public func has(_ index: Int) -> Bool { self[index] != nil }
    public func has(_ name: String) -> Bool { self[name] != nil }

    public func string(_ index: Int) throws(RPCError) -> String {
        try typed(index: index, .string).stringValue!
    }
    public func string(_ name: String) throws(RPCError) -> String {
        try typed(index: indexOf(name), .string).stringValue!
    }
    public func int(_ index: Int) throws(RPCError) -> Int {
        try typed(index: index, .int).intValue!
    }
    public func int(_ name: String) throws(RPCError) -> Int {
        try typed(index: indexOf(name), .int).intValue!
    }
    public func double(_ index: Int) throws(RPCError) -> Double {
        try typed(index: index, .double).doubleValue!
    }
    public func double(_ name: String) throws(RPCError) -> Double {
        try typed(index: indexOf(name), .double).doubleValue!
    }
    public func bool(_ index: Int) throws(RPCError) -> Bool {
        try typed(index: index, .bool).boolValue!
    }
    public func bool(_ name: String) throws(RPCError) -> Bool {
        try typed(index: indexOf(name), .bool).boolValue!
    }

    private func indexOf(_ name: String) throws(RPCError) -> Int {
        guard let i = params.firstIndex(where: { $0.name == name }) else {
            throw .invalidParams("missing parameter '\(name)'")
        }
        return i
    }

    private func typed(index: Int, _ kind: RPCParam.Kind) throws(RPCError) -> JSONValue {
        let param = params.indices.contains(index) ? params[index] : RPCParam("#\(index + 1)", kind)
        let described = RPCParam(param.name, kind)
        guard let value = self[index] else { throw described.missing }
        guard let converted = RPCParam.coerce(value, to: kind) else { throw described.wrongType }
        return converted
    }
}

/// The methods of the control plane, and JSON-RPC 2.0 over them.
public final class RPCRegistry: Sendable {
    private let table = Mutex<[String: RPCMethod]>([:])

    /// A registry holding `system.listMethods` and `system.methodHelp`.
    public init() {
        register(RPCMethod("system.listMethods", doc: "Lists the methods, sorted by name.") { [unowned self] _ in
            JSONValue.array(self.methods.map { .string($0.name) })
        })
        register(
            RPCMethod(
                "system.methodHelp", doc: "Describes a method.",
                params: [RPCParam("method", .string, doc: "the method's name")]
            ) { [unowned self] args throws(RPCError) in
                let name = try args.string(0)
                guard let m = self.method(named: name) else { throw .invalidParams("no such method: \(name)") }
                return .string(m.help)
            })
    }

    /// Adds a method; a name registered twice is a programming error.
    public func register(_ method: RPCMethod) {
        table.withLock { t in
            precondition(t[method.name] == nil, "RPC method '\(method.name)' registered twice")
            t[method.name] = method
        }
    }

    /// Removes a method; false when there was none by that name.
    @discardableResult
    public func unregister(_ name: String) -> Bool {
        table.withLock { $0.removeValue(forKey: name) != nil }
    }

    public func method(named name: String) -> RPCMethod? {
        table.withLock { $0[name] }
    }

    /// All methods, sorted by name.
    public var methods: [RPCMethod] {
        table.withLock { Array($0.values) }.sorted { $0.name < $1.name }
    }

    /// Calls a method in process: `params` is an array, an object (named parameters) or nil.
    public func call(_ name: String, params: JSONValue? = nil) async throws(RPCError) -> JSONValue {
        guard let m = method(named: name) else { throw .methodNotFound(name) }
        let args = try Self.arguments(for: m, params)
        return try await m.handler(args)
    }

    /// Answers a JSON-RPC 2.0 request body: a single request or a batch. Nil when nothing is to
    /// be sent back (a notification, or a batch of notifications only).
    public func handle(_ body: [UInt8]) async -> [UInt8]? {
        let document: JSONValue
        do {
            document = try JSONValue(parsing: body)
        } catch {
            return Self.response(id: .null, .failure(.parseError(error.description))).jsonBytes()
        }
        if case .array(let batch) = document {
            guard !batch.isEmpty else {
                return Self.response(id: .null, .failure(.invalidRequest("empty batch"))).jsonBytes()
            }
            var replies: [JSONValue] = []
            for request in batch {
                if let reply = await handleOne(request) { replies.append(reply) }
            }
            return replies.isEmpty ? nil : JSONValue.array(replies).jsonBytes()
        }
        return await handleOne(document)?.jsonBytes()
    }

    private func handleOne(_ request: JSONValue) async -> JSONValue? {
        guard case .object = request else {
            return Self.response(id: .null, .failure(.invalidRequest("not an object")))
        }
        let idValue = request["id"]
        var id = JSONValue.null
        if let idValue {
            switch idValue {
            case .null, .int, .double, .string: id = idValue
            default:
                return Self.response(id: .null, .failure(.invalidRequest("id must be a string, a number or null")))
            }
        }
        guard request["jsonrpc"] == .string("2.0") else {
            return Self.response(id: id, .failure(.invalidRequest("\"jsonrpc\" must be \"2.0\"")))
        }
        guard case .string(let name) = request["method"] else {
            return Self.response(id: id, .failure(.invalidRequest("\"method\" must be a string")))
        }
        let params = request["params"]
        switch params {
        case nil, .array?, .object?: break
        default:
            return Self.response(id: id, .failure(.invalidRequest("\"params\" must be an array or an object")))
        }
        let result: Result<JSONValue, RPCError>
        do throws(RPCError) {
            result = .success(try await call(name, params: params))
        } catch {
            result = .failure(error)
        }
        guard idValue != nil else { return nil }  // a notification
        return Self.response(id: id, result)
    }

    static func response(id: JSONValue, _ result: Result<JSONValue, RPCError>) -> JSONValue {
        switch result {
        case .success(let value): ["jsonrpc": "2.0", "result": value, "id": id]
        case .failure(let error): ["jsonrpc": "2.0", "error": error.json, "id": id]
        }
    }

    /// Maps positional or named parameters onto the declared ones and checks them.
    static func arguments(for method: RPCMethod, _ params: JSONValue?) throws(RPCError) -> RPCArguments {
        let declared = method.params
        var given = [JSONValue?](repeating: nil, count: declared.count)
        switch params {
        case .array(let list)?:
            guard list.count <= declared.count else {
                throw .invalidParams(
                    "too many parameters: \(method.name) takes \(declared.count), got \(list.count)")
            }
            for (i, v) in list.enumerated() { given[i] = v }
        case .object(let pairs)?:
            for (key, v) in pairs {
                guard let i = declared.firstIndex(where: { $0.name == key }) else {
                    throw .invalidParams("unknown parameter '\(key)'")
                }
                given[i] = v
            }
        default:
            break
        }
        var values = [JSONValue?](repeating: nil, count: declared.count)
        for (i, p) in declared.enumerated() {
            // An optional parameter given as null counts as not given (unless it takes any value).
            guard let v = given[i], !(v == .null && p.optional && p.type != .any) else {
                if !p.optional { throw p.missing }
                continue
            }
            guard let converted = p.coerce(v) else { throw p.wrongType }
            values[i] = converted
        }
        return RPCArguments(method: method.name, params: declared, values: values)
    }
}
