/// A value on the right of a core assignment or in a `modparam`.
public enum CfgValue: Sendable, Hashable, CustomStringConvertible {
    /// A quoted string (`"..."`, adjacent `"a" "b"` concatenated, or `'...'`), escapes resolved.
    case string(String)
    /// An unquoted integer: decimal, `-` negative, `0x` hex, `0` octal or `b` binary, as Kamailio reads them.
    case int(Int)
    /// Anything else unquoted: `yes`, `udp:127.0.0.1:5060`, `LOG_LOCAL0`, or several words
    /// (`udp:10.0.0.1:5060 advertise 1.2.3.4:5060`) joined as written.
    case token(String)

    /// Kamailio's string form of the value: the text of a string (no quotes), the decimal
    /// integer, or the token as written.
    public var text: String {
        switch self {
        case .string(let s), .token(let s): s
        case .int(let i): String(i)
        }
    }

    /// The value as an integer: `.int` as is; a token `yes`/`true`/`on`/`enable` is 1 and
    /// `no`/`false`/`off`/`disable` is 0 (any case); a token or string holding a signed decimal
    /// is that number; otherwise `nil`.
    public var intValue: Int? {
        switch self {
        case .int(let i):
            return i
        case .token(let t):
            switch t.lowercased() {
            case "yes", "true", "on", "enable": return 1
            case "no", "false", "off", "disable": return 0
            default: return parseSignedDecimal(t)
            }
        case .string(let s):
            return parseSignedDecimal(s)
        }
    }

    /// The value in config syntax: strings quoted and escaped.
    public var description: String {
        switch self {
        case .string(let s): cfgQuoted(s)
        case .int(let i): String(i)
        case .token(let t): t
        }
    }
}

/// Reader for the part of Kamailio's configuration language that a KEMI deployment uses:
/// core assignments, `loadmodule`, `loadpath`/`mpath`, `modparam`, `cfgengine`, the `#!`
/// preprocessor (`define`, `trydef`, `redefine`, `undef`, `ifdef`, `ifndef`, `else`, `endif`)
/// and `include_file`/`import_file`. Native route blocks are refused.
public struct KamailioConfigFile: Sendable {
    public enum Kind: Sendable, Hashable, CustomStringConvertible {
        /// A core assignment, `name=value` (names may repeat, e.g. `listen`).
        case global(name: String, value: CfgValue)
        /// `loadmodule "path"`.
        case loadmodule(String)
        /// `loadpath "dir"`, `mpath="dir"`.
        case loadpath(String)
        /// `modparam("module", "param", value)`: value is `.string`, `.int` or a yes/no `.token`.
        case modparam(module: String, param: String, value: CfgValue)
        /// `cfgengine "lua"`.
        case cfgengine(String)

        /// The directive in config syntax, e.g. `modparam("rtimer", "timer", "name=ta;")`.
        public var description: String {
            switch self {
            case .global(let name, let value): "\(name)=\(value)"
            case .loadmodule(let path): "loadmodule \(cfgQuoted(path))"
            case .loadpath(let path): "loadpath \(cfgQuoted(path))"
            case .modparam(let module, let param, let value):
                "modparam(\(cfgQuoted(module)), \(cfgQuoted(param)), \(value))"
            case .cfgengine(let engine): "cfgengine \(cfgQuoted(engine))"
            }
        }
    }

    public struct Directive: Sendable, Hashable, CustomStringConvertible {
        public var kind: Kind
        /// The file the directive is in (an included file for included directives) and the line
        /// where it starts.
        public var location: SourceLocation

        public init(_ kind: Kind, at location: SourceLocation) {
            self.kind = kind
            self.location = location
        }

        public var description: String { "\(location): \(kind)" }
    }

    /// The error text for `request_route { ... }` and the other native route blocks.
    public static let nativeRoutesMessage =
        "native route blocks are not supported: KSRHost runs KEMI scripts only "
        + "(set cfgengine \"lua\" and load the script with modparam(\"app_lua\", \"load\", ...))"

    /// How deep `include_file`/`import_file` may nest (Kamailio's limit).
    public static let maxIncludeDepth = 10

    /// Reads the config file at `path`, and the files it includes.
    ///
    /// - Parameter defines: names defined before the file is read, like `kamailio -A NAME=VALUE`
    ///   (an empty value is `-A NAME`).
    public static func parse(path: String, defines: [String: String] = [:]) throws(ConfigError) -> [Directive] {
        try read(path: path, defines: defines).directives
    }

    /// Like `parse(path:defines:)`, also giving the names defined at the end of the file
    /// (for `KSR.kx.get_def`).
    public static func read(
        path: String, defines: [String: String] = [:]
    ) throws(ConfigError) -> (directives: [Directive], defines: [String: String]) {
        let bytes: [UInt8]
        switch readWholeFile(path) {
        case .success(let b): bytes = b
        case .failure(let e):
            throw ConfigError("cannot read config file: \(e)", at: SourceLocation(file: path, line: 0))
        }
        return try run(bytes: bytes, file: path, defines: defines)
    }

    /// Reads config text; `file` names it in locations and is the base of relative include paths.
    public static func parse(
        text: String, file: String, defines: [String: String] = [:]
    ) throws(ConfigError) -> [Directive] {
        try run(bytes: Array(text.utf8), file: file, defines: defines).directives
    }

    private static func run(
        bytes: [UInt8], file: String, defines: [String: String]
    ) throws(ConfigError) -> (directives: [Directive], defines: [String: String]) {
        for name in defines.keys.sorted() where !isCfgIdentifier(name) {
            throw ConfigError("invalid define name '\(name)': letters, digits and '_' only, not starting with a digit")
        }
        let session = CfgSession(defines: defines)
        session.includeStack = [(canonical: canonicalPath(file) ?? file, display: file)]
        try session.parseFile(bytes: bytes, file: file)
        return (session.directives, session.defines)
    }
}

/// `s` in double quotes with Kamailio's escapes.
func cfgQuoted(_ s: String) -> String {
    var out = "\""
    for ch in s.unicodeScalars {
        switch ch {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default: out.unicodeScalars.append(ch)
        }
    }
    return out + "\""
}

/// `[A-Za-z_][A-Za-z0-9_]*`, Kamailio's `ID`.
func isCfgIdentifier(_ s: String) -> Bool {
    let u = Array(s.utf8)
    guard let first = u.first, CfgChar.isIDStart(first) else { return false }
    return u.allSatisfy(CfgChar.isIDChar)
}
