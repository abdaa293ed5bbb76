#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// State shared by a file and the files it includes.
final class CfgSession {
    var defines: [String: String]
    /// Files being read, outermost first.
    var includeStack: [(canonical: String, display: String)] = []
    var directives: [KamailioConfigFile.Directive] = []

    init(defines: [String: String]) { self.defines = defines }

    func parseFile(bytes: [UInt8], file: String) throws(ConfigError) {
        let parser = CfgParser(lexer: CfgLexer(bytes: bytes, file: file, session: self), session: self)
        try parser.run()
    }

    /// `include_file`/`import_file`: `path` is relative to the directory of `file`.
    func include(_ path: String, optional: Bool, from file: String, at location: SourceLocation) throws(ConfigError) {
        let resolved = path.hasPrefix("/") ? path : joinPath(directoryOf(file), path)
        guard let canonical = canonicalPath(resolved) else {
            let code = errno
            if optional && code == ENOENT { return }
            throw ConfigError("cannot open included file '\(resolved)': \(errorText(code))", at: location)
        }
        if includeStack.contains(where: { $0.canonical == canonical }) {
            let chain = (includeStack.map(\.display) + [resolved]).joined(separator: " -> ")
            throw ConfigError("include cycle: \(chain)", at: location)
        }
        guard includeStack.count < KamailioConfigFile.maxIncludeDepth else {
            throw ConfigError("includes nest deeper than \(KamailioConfigFile.maxIncludeDepth) files", at: location)
        }
        let bytes: [UInt8]
        switch readWholeFile(resolved) {
        case .success(let b): bytes = b
        case .failure(let e): throw ConfigError("cannot read included file '\(resolved)': \(e)", at: location)
        }
        includeStack.append((canonical, resolved))
        defer { includeStack.removeLast() }
        try parseFile(bytes: bytes, file: resolved)
    }
}

/// Statements of one file.
final class CfgParser {
    typealias Token = CfgLexer.Token

    private let lexer: CfgLexer
    private let session: CfgSession
    private var pushedBack: [Token] = []

    static let routeKeywords: Set<String> = [
        "route", "request_route", "reply_route", "onreply_route", "failure_route", "branch_route",
        "onsend_route", "event_route",
    ]

    init(lexer: CfgLexer, session: CfgSession) {
        self.lexer = lexer
        self.session = session
    }

    private func next() throws(ConfigError) -> Token {
        if let t = pushedBack.popLast() { return t }
        return try lexer.next()
    }

    private func nextSkippingNewlines() throws(ConfigError) -> Token {
        while true {
            let t = try next()
            if t.tok != .newline { return t }
        }
    }

    func run() throws(ConfigError) {
        while true {
            let t = try next()
            switch t.tok {
            case .eof: return
            case .newline, .punct(CfgChar.semicolon): continue
            case .bare(let word): try statement(word, head: t)
            default: throw cannotParse(head: t, upTo: t)
            }
        }
    }

    private func emit(_ kind: KamailioConfigFile.Kind, _ head: Token) {
        session.directives.append(.init(kind, at: lexer.location(head.line)))
    }

    private func cannotParse(head: Token, upTo last: Token) -> ConfigError {
        ConfigError("cannot parse: \(lexer.lineText(head.line, through: last.line))", at: lexer.location(head.line))
    }

    private func statement(_ word: String, head: Token) throws(ConfigError) {
        if Self.routeKeywords.contains(String(word.prefix { $0 != "[" })) {
            throw ConfigError(KamailioConfigFile.nativeRoutesMessage, at: lexer.location(head.line),
                              context: lexer.lineText(head.line))
        }
        switch word {
        case "loadmodule":
            let path = try expectString(head)
            try expectEnd(head)
            emit(.loadmodule(path), head)
        case "loadpath", "mpath":
            var t = try next()
            if t.tok == .punct(CfgChar.equal) { t = try next() }
            guard case .string(let path) = t.tok else { throw cannotParse(head: head, upTo: t) }
            try expectEnd(head)
            emit(.loadpath(path), head)
        case "cfgengine":
            let engine = try expectString(head)
            try expectEnd(head)
            emit(.cfgengine(engine), head)
        case "modparam":
            try modparam(head)
        case "include_file", "import_file":
            let t = try next()
            let path: String
            switch t.tok {
            case .string(let s), .bare(let s): path = s
            default: throw cannotParse(head: head, upTo: t)
            }
            try expectEnd(head)
            try session.include(path, optional: word == "import_file", from: lexer.file,
                                at: lexer.location(head.line))
        default:
            let t = try next()
            guard t.tok == .punct(CfgChar.equal), Self.isGlobalName(word) else {
                throw cannotParse(head: head, upTo: t)
            }
            try global(word, head: head)
        }
    }

    /// `modparam("module", "param", "string" | int | yes/no)`, line breaks allowed inside.
    private func modparam(_ head: Token) throws(ConfigError) {
        var t = try nextSkippingNewlines()
        guard t.tok == .punct(CfgChar.lparen) else { throw cannotParse(head: head, upTo: t) }
        t = try nextSkippingNewlines()
        guard case .string(let module) = t.tok else { throw cannotParse(head: head, upTo: t) }
        t = try nextSkippingNewlines()
        guard t.tok == .punct(CfgChar.comma) else { throw cannotParse(head: head, upTo: t) }
        t = try nextSkippingNewlines()
        guard case .string(let param) = t.tok else { throw cannotParse(head: head, upTo: t) }
        t = try nextSkippingNewlines()
        guard t.tok == .punct(CfgChar.comma) else { throw cannotParse(head: head, upTo: t) }
        t = try nextSkippingNewlines()
        let value: CfgValue
        switch t.tok {
        case .string(let s):
            value = .string(s)
        case .bare(let w):
            if let i = Self.kamailioInt(w) {
                value = .int(i)
            } else if Self.yesNoWords.contains(w) {
                value = .token(w)
            } else {
                throw cannotParse(head: head, upTo: t)
            }
        default:
            throw cannotParse(head: head, upTo: t)
        }
        t = try nextSkippingNewlines()
        guard t.tok == .punct(CfgChar.rparen) else { throw cannotParse(head: head, upTo: t) }
        try expectEnd(head)
        emit(.modparam(module: module, param: param, value: value), head)
    }

    /// `name = value [;]`: the value runs to `;` or the end of the line.
    private func global(_ name: String, head: Token) throws(ConfigError) {
        var parts: [Token] = []
        var last = head
        loop: while true {
            let t = try next()
            last = t
            switch t.tok {
            case .newline, .punct(CfgChar.semicolon):
                break loop
            case .eof:
                pushedBack.append(t)
                break loop
            case .bare, .string, .punct(CfgChar.lparen), .punct(CfgChar.rparen), .punct(CfgChar.comma):
                parts.append(t)
            default:
                throw cannotParse(head: head, upTo: t)
            }
        }
        // A cfg framework variable (`group.var = value desc "text"`): drop the description.
        if name.contains("."), parts.count >= 3, case .string = parts[parts.count - 1].tok,
            case .bare(let d) = parts[parts.count - 2].tok, ["desc", "descr", "description"].contains(d)
        {
            parts.removeLast(2)
        }
        let value: CfgValue
        switch parts.count {
        case 0:
            throw cannotParse(head: head, upTo: last)
        case 1:
            switch parts[0].tok {
            case .string(let s): value = .string(s)
            case .bare(let w): value = Self.kamailioInt(w).map(CfgValue.int) ?? .token(w)
            default: throw cannotParse(head: head, upTo: last)
            }
        default:
            var text = ""
            for (i, p) in parts.enumerated() {
                if i > 0 && p.spaceBefore { text += " " }
                switch p.tok {
                case .bare(let w): text += w
                case .string(let s): text += cfgQuoted(s)
                case .punct(let c): text.unicodeScalars.append(Unicode.Scalar(c))
                default: break
                }
            }
            value = .token(text)
        }
        emit(.global(name: name, value: value), head)
    }

    private func expectString(_ head: Token) throws(ConfigError) -> String {
        let t = try next()
        guard case .string(let s) = t.tok else { throw cannotParse(head: head, upTo: t) }
        return s
    }

    /// The statement ends: `;`, a line break or the end of the file.
    private func expectEnd(_ head: Token) throws(ConfigError) {
        let t = try next()
        switch t.tok {
        case .newline, .punct(CfgChar.semicolon): return
        case .eof: pushedBack.append(t)
        default: throw cannotParse(head: head, upTo: t)
        }
    }

    static let yesNoWords: Set<String> = ["yes", "true", "on", "enable", "no", "false", "off", "disable"]

    /// `[A-Za-z_][A-Za-z0-9_.]*` (dots for `kemi.onsend_route_callback` and cfg framework variables).
    static func isGlobalName(_ s: String) -> Bool {
        let u = Array(s.utf8)
        guard let first = u.first, CfgChar.isIDStart(first), u.last != UInt8(ascii: ".") else { return false }
        return u.allSatisfy { CfgChar.isIDChar($0) || $0 == UInt8(ascii: ".") }
    }

    /// An integer as Kamailio's lexer reads one, with an optional `-`: decimal (`0` or no leading
    /// zero), `0x` hex, `0` octal, `[01]+b` binary.
    static func kamailioInt(_ s: String) -> Int? {
        var body = Substring(s)
        let negative = body.first == "-"
        if negative { body = body.dropFirst() }
        guard let first = body.first else { return nil }
        let magnitude: Int?
        if body.hasPrefix("0x") || body.hasPrefix("0X") {
            let digits = body.dropFirst(2)
            magnitude = digits.isEmpty ? nil : Int(digits, radix: 16)
        } else if body.count > 1, body.last == "b", body.dropLast().allSatisfy({ $0 == "0" || $0 == "1" }) {
            magnitude = Int(body.dropLast(), radix: 2)
        } else if !body.allSatisfy({ $0.isASCII && $0.isNumber }) {
            magnitude = nil
        } else if first == "0" && body.count > 1 {
            magnitude = Int(body, radix: 8)
        } else {
            magnitude = Int(body, radix: 10)
        }
        guard let magnitude else { return nil }
        return negative ? -magnitude : magnitude
    }
}

// MARK: - Files

struct FileReadError: Error, CustomStringConvertible {
    var code: Int32
    var description: String { errorText(code) }
}

func readWholeFile(_ path: String) -> Result<[UInt8], FileReadError> {
    guard let f = fopen(path, "rb") else { return .failure(FileReadError(code: errno)) }
    defer { fclose(f) }
    var out: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buffer.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, f) }
        out += buffer[0..<n]
        if n < buffer.count {
            if ferror(f) != 0 { return .failure(FileReadError(code: errno == 0 ? EIO : errno)) }
            return .success(out)
        }
    }
}

/// The absolute path with symbolic links resolved, or `nil` (with `errno` set) if there is none.
func canonicalPath(_ path: String) -> String? {
    guard let p = realpath(path, nil) else { return nil }
    defer { free(p) }
    return String(cString: p)
}

/// The directory part of `path`: `""` for a bare name, `"/"` for a file at the root.
func directoryOf(_ path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "" }
    return slash == path.startIndex ? "/" : String(path[..<slash])
}

func joinPath(_ directory: String, _ name: String) -> String {
    if directory.isEmpty { return name }
    return directory.hasSuffix("/") ? directory + name : directory + "/" + name
}
