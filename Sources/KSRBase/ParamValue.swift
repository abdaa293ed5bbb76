/// A configuration value as Kamailio takes it: a string or an integer.
public enum ParamValue: Sendable, Equatable, CustomStringConvertible {
    case string(String)
    case int(Int)

    /// The value's text (integers in decimal).
    public var text: String {
        switch self {
        case .string(let s): return s
        case .int(let i): return String(i)
        }
    }

    /// The value as an integer: integers as is, decimal strings and yes/no/on/off/true/false.
    public var intValue: Int? {
        switch self {
        case .int(let i): return i
        case .string(let s):
            let t = s.trimmingSpaces().lowercased()
            switch t {
            case "yes", "on", "true": return 1
            case "no", "off", "false": return 0
            default: return Int(t)
            }
        }
    }

    public var description: String {
        switch self {
        case .string(let s): return "\"\(s)\""
        case .int(let i): return String(i)
        }
    }
}
