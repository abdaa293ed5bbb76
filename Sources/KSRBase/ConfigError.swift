/// Where a configuration value came from: a script or cfg file and a line.
public struct SourceLocation: Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public init(file: String, line: Int) {
        self.file = file
        self.line = line
    }
    public var description: String { line > 0 ? "\(file):\(line)" : file }
}

/// A problem in a parameter value, found by the engine that owns the parameter.
/// It carries no location: the configuration layer adds file and line.
public struct ParamError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A startup error that names where it happened and the offending text.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public var location: SourceLocation?
    /// What was being configured, e.g. `modparam("rtimer", "timer", "name=ta;...")`.
    public var context: String?
    public var message: String

    public init(_ message: String, at location: SourceLocation? = nil, context: String? = nil) {
        self.message = message
        self.location = location
        self.context = context
    }

    public var description: String {
        var s = ""
        if let location { s += "\(location): " }
        s += message
        if let context { s += "\n    in: \(context)" }
        return s
    }
}
