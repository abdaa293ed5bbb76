/// Byte classes of Kamailio's config lexer.
enum CfgChar {
    static let nl = UInt8(ascii: "\n")
    static let cr = UInt8(ascii: "\r")
    static let space = UInt8(ascii: " ")
    static let tab = UInt8(ascii: "\t")
    static let backspace: UInt8 = 0x08
    static let formFeed: UInt8 = 0x0C
    static let hash = UInt8(ascii: "#")
    static let bang = UInt8(ascii: "!")
    static let slash = UInt8(ascii: "/")
    static let star = UInt8(ascii: "*")
    static let backslash = UInt8(ascii: "\\")
    static let dquote = UInt8(ascii: "\"")
    static let squote = UInt8(ascii: "'")
    static let lparen = UInt8(ascii: "(")
    static let rparen = UInt8(ascii: ")")
    static let comma = UInt8(ascii: ",")
    static let semicolon = UInt8(ascii: ";")
    static let equal = UInt8(ascii: "=")
    static let lbrace = UInt8(ascii: "{")
    static let rbrace = UInt8(ascii: "}")
    static let minus = UInt8(ascii: "-")

    /// Kamailio's `EAT_ABLE` plus form feed: whitespace that is not a line break.
    static func isBlank(_ c: UInt8) -> Bool {
        c == space || c == tab || c == cr || c == backspace || c == formFeed
    }
    static func isLetter(_ c: UInt8) -> Bool {
        (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
    }
    static func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }
    static func isIDStart(_ c: UInt8) -> Bool { isLetter(c) || c == UInt8(ascii: "_") }
    static func isIDChar(_ c: UInt8) -> Bool { isIDStart(c) || isDigit(c) }
    static func isPunct(_ c: UInt8) -> Bool {
        c == lparen || c == rparen || c == comma || c == semicolon || c == equal || c == lbrace || c == rbrace
    }
    /// Part of an unquoted word such as `udp:[::1]:5060`, `-1` or `route[NAME]`.
    static func isBareChar(_ c: UInt8) -> Bool {
        !(isBlank(c) || c == nl || c == dquote || c == squote || c == hash || isPunct(c))
    }
    static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// Splits one config file into tokens, running the `#!` preprocessor and substituting defined
/// names as it goes (as Kamailio's flex scanner does: a defined ID is replaced by its value,
/// which is scanned again).
final class CfgLexer {
    enum Tok: Equatable {
        case bare(String)
        case string(String)
        case punct(UInt8)
        /// A line break outside strings; a block comment that spans lines counts as one.
        case newline
        case eof
    }

    struct Token {
        var tok: Tok
        /// The line (of this file) where the token starts.
        var line: Int
        /// Whitespace or a comment came between the previous token and this one.
        var spaceBefore: Bool
    }

    private struct Frame {
        var bytes: [UInt8]
        var pos: Int
        var remaining: Int { bytes.count - pos }
    }

    /// One open `#!ifdef`/`#!ifndef`.
    private struct Condition {
        var taking: Bool
        var enclosingActive: Bool
        var sawElse: Bool
        var line: Int
        var directive: String
    }

    /// How deeply define values may expand into further defines.
    static let maxExpansionDepth = 64

    let file: String
    private let source: [UInt8]
    /// `frames[0]` is the file; above it, define values being scanned.
    private var frames: [Frame]
    private(set) var line = 1
    private var atLineStart = true
    private var conditions: [Condition] = []
    private let session: CfgSession
    private var lineStarts: [Int]?

    init(bytes: [UInt8], file: String, session: CfgSession) {
        self.file = file
        self.source = bytes
        self.session = session
        let bom: [UInt8] = [0xEF, 0xBB, 0xBF]
        frames = [Frame(bytes: bytes, pos: bytes.starts(with: bom) ? 3 : 0)]
    }

    func location(_ line: Int) -> SourceLocation { SourceLocation(file: file, line: line) }

    /// The text of lines `first...last` of the file, trimmed and joined with spaces.
    func lineText(_ first: Int, through last: Int? = nil) -> String {
        if lineStarts == nil {
            var starts = [0]
            for (i, b) in source.enumerated() where b == CfgChar.nl { starts.append(i + 1) }
            lineStarts = starts
        }
        let starts = lineStarts!
        var parts: [String] = []
        for n in first...max(first, last ?? first) where n >= 1 && n <= starts.count {
            var end = n < starts.count ? starts[n] - 1 : source.count
            let start = starts[n - 1]
            if end < start { end = start }
            let text = String(decoding: source[start..<end], as: UTF8.self).trimmingSpaces()
            if !text.isEmpty { parts.append(String(text)) }
        }
        return parts.joined(separator: " ")
    }

    // MARK: - Input

    private func peek(_ offset: Int = 0) -> UInt8? {
        var k = offset
        for i in stride(from: frames.count - 1, through: 0, by: -1) {
            let f = frames[i]
            if k < f.remaining { return f.bytes[f.pos + k] }
            k -= f.remaining
        }
        return nil
    }

    /// Whether the next byte comes from the file itself rather than from a define value.
    private var readingFile: Bool { frames.dropFirst().allSatisfy { $0.remaining == 0 } }

    @discardableResult
    private func advance() -> UInt8? {
        while frames.count > 1, frames[frames.count - 1].remaining == 0 { frames.removeLast() }
        let i = frames.count - 1
        guard frames[i].remaining > 0 else { return nil }
        let b = frames[i].bytes[frames[i].pos]
        frames[i].pos += 1
        if i == 0 && b == CfgChar.nl {
            line += 1
            atLineStart = true
        } else if !CfgChar.isBlank(b) {
            atLineStart = false
        }
        return b
    }

    private var isActive: Bool {
        guard let c = conditions.last else { return true }
        return c.enclosingActive && c.taking
    }

    // MARK: - Tokens

    func next() throws(ConfigError) -> Token {
        var space = false
        while true {
            guard let c = peek() else {
                if let open = conditions.last {
                    throw ConfigError("missing #!endif for this #!\(open.directive)", at: location(open.line),
                                      context: lineText(open.line))
                }
                return Token(tok: .eof, line: line, spaceBefore: space)
            }
            if !isActive {
                try skipInactiveLine()
                space = true
                continue
            }
            switch c {
            case _ where CfgChar.isBlank(c):
                advance()
                space = true
            case CfgChar.nl:
                let l = line
                let fromFile = readingFile
                advance()
                if fromFile { return Token(tok: .newline, line: l, spaceBefore: space) }
                space = true
            case CfgChar.backslash where peek(1) == CfgChar.nl:
                // An escaped line break joins the lines.
                advance()
                advance()
                space = true
            case CfgChar.hash, CfgChar.bang:
                if peek(1) == CfgChar.bang && atLineStart && readingFile {
                    try directive()
                    space = true
                } else if c == CfgChar.hash {
                    skipLineComment()
                    space = true
                } else {
                    return try bareToken(space: space)
                }
            case CfgChar.slash where peek(1) == CfgChar.slash:
                skipLineComment()
                space = true
            case CfgChar.slash where peek(1) == CfgChar.star:
                let l = line
                try skipBlockComment()
                if line != l { return Token(tok: .newline, line: l, spaceBefore: true) }
                space = true
            case CfgChar.dquote:
                let l = line
                return Token(tok: .string(try readDoubleQuoted()), line: l, spaceBefore: space)
            case CfgChar.squote:
                let l = line
                return Token(tok: .string(try readSingleQuoted()), line: l, spaceBefore: space)
            case _ where CfgChar.isPunct(c):
                let l = line
                advance()
                return Token(tok: .punct(c), line: l, spaceBefore: space)
            default:
                let l = line
                let word = try readBare()
                if !word.isEmpty { return Token(tok: .bare(word), line: l, spaceBefore: space) }
                // A define expanded to nothing or to text starting with something else: rescan.
            }
        }
    }

    private func bareToken(space: Bool) throws(ConfigError) -> Token {
        let l = line
        return Token(tok: .bare(try readBare()), line: l, spaceBefore: space)
    }

    private func skipLineComment() {
        while let c = peek(), c != CfgChar.nl { advance() }
    }

    /// Skips a `/* ... */` comment; they nest, as in Kamailio.
    private func skipBlockComment() throws(ConfigError) {
        let start = line
        advance()
        advance()
        var depth = 1
        while depth > 0 {
            guard let c = peek() else {
                throw ConfigError("unterminated block comment: '/*' without '*/'", at: location(start),
                                  context: lineText(start))
            }
            if c == CfgChar.slash && peek(1) == CfgChar.star {
                advance()
                advance()
                depth += 1
            } else if c == CfgChar.star && peek(1) == CfgChar.slash {
                advance()
                advance()
                depth -= 1
            } else {
                advance()
            }
        }
    }

    /// A `"..."` string with escapes; strings separated only by whitespace and line breaks
    /// are joined (`"a" "b"` is `"ab"`).
    private func readDoubleQuoted() throws(ConfigError) -> String {
        let start = line
        var out: [UInt8] = []
        advance()
        while true {
            guard let c = advance() else {
                throw ConfigError("unterminated string: '\"' without closing '\"'", at: location(start),
                                  context: lineText(start))
            }
            if c == CfgChar.dquote {
                var k = 0
                while let d = peek(k), CfgChar.isBlank(d) || d == CfgChar.nl { k += 1 }
                if peek(k) == CfgChar.dquote {
                    for _ in 0...k { advance() }
                    continue
                }
                return String(decoding: out, as: UTF8.self)
            }
            guard c == CfgChar.backslash, let e = peek() else {
                out.append(c)
                continue
            }
            switch e {
            case UInt8(ascii: "n"): advance(); out.append(CfgChar.nl)
            case UInt8(ascii: "r"): advance(); out.append(CfgChar.cr)
            case UInt8(ascii: "t"): advance(); out.append(CfgChar.tab)
            case UInt8(ascii: "a"): advance(); out.append(0x07)
            case CfgChar.dquote, CfgChar.backslash: advance(); out.append(e)
            case CfgChar.nl: advance()  // escaped line break: continues the string
            case UInt8(ascii: "x") where peek(1).flatMap(CfgChar.hexValue) != nil:
                advance()
                var v = CfgChar.hexValue(advance()!)!
                if let d = peek(), let h = CfgChar.hexValue(d) {
                    advance()
                    v = v &* 16 &+ h
                }
                out.append(v)
            case UInt8(ascii: "0")...UInt8(ascii: "7") where isOctal(peek(1)):
                // \NN or \NNN (a single digit is left alone, as Kamailio does for subst backreferences)
                var v = 0
                var n = 0
                while n < 3, let d = peek(), isOctal(d) {
                    v = v * 8 + Int(d - UInt8(ascii: "0"))
                    advance()
                    n += 1
                }
                out.append(UInt8(truncatingIfNeeded: v))
            default:
                out.append(c)  // unknown escape: the backslash stays (regular expressions need it)
            }
        }
    }

    private func isOctal(_ c: UInt8?) -> Bool {
        guard let c else { return false }
        return c >= UInt8(ascii: "0") && c <= UInt8(ascii: "7")
    }

    /// A `'...'` string: no escapes.
    private func readSingleQuoted() throws(ConfigError) -> String {
        let start = line
        var out: [UInt8] = []
        advance()
        while true {
            guard let c = advance() else {
                throw ConfigError("unterminated string: \"'\" without closing \"'\"", at: location(start),
                                  context: lineText(start))
            }
            if c == CfgChar.squote { return String(decoding: out, as: UTF8.self) }
            out.append(c)
        }
    }

    /// An unquoted word. Identifiers in it that are defined are replaced by their values,
    /// which are scanned again (so a value may also end the word or yield a string).
    private func readBare() throws(ConfigError) -> String {
        var out: [UInt8] = []
        while let c = peek() {
            if CfgChar.isIDStart(c) && !(out.last.map(CfgChar.isIDChar) ?? false) {
                var id: [UInt8] = []
                while let d = peek(id.count), CfgChar.isIDChar(d) { id.append(d) }
                for _ in id { advance() }
                let name = String(decoding: id, as: UTF8.self)
                if let value = session.defines[name] {
                    guard frames.count <= Self.maxExpansionDepth else {
                        throw ConfigError("the value of '\(name)' expands too deeply: is a #!define recursive?",
                                          at: location(line), context: lineText(line))
                    }
                    frames.append(Frame(bytes: Array(value.utf8), pos: 0))
                } else {
                    out += id
                }
                continue
            }
            guard CfgChar.isBareChar(c) else { break }
            if c == CfgChar.slash, let d = peek(1), d == CfgChar.slash || d == CfgChar.star { break }
            if c == CfgChar.backslash, peek(1) == CfgChar.nl { break }
            out.append(c)
            advance()
        }
        return String(decoding: out, as: UTF8.self)
    }

    // MARK: - Preprocessor

    /// In a false `#!ifdef` branch: skips one line, or runs the conditional directive on it.
    private func skipInactiveLine() throws(ConfigError) {
        while let c = peek(), CfgChar.isBlank(c) { advance() }
        if let c = peek(), c == CfgChar.hash || c == CfgChar.bang, peek(1) == CfgChar.bang {
            try directive()
            return
        }
        while let c = advance(), c != CfgChar.nl {}
    }

    /// Reads a `#!...` or `!!...` line (escaped line breaks join lines) and runs it.
    private func directive() throws(ConfigError) {
        let start = line
        advance()
        advance()
        var text: [UInt8] = []
        while let c = peek(), c != CfgChar.nl {
            advance()
            if c == CfgChar.backslash && peek() == CfgChar.nl {
                advance()
                continue
            }
            if c != CfgChar.cr { text.append(c) }
        }
        advance()  // the line break, if any
        try runDirective(text[...], line: start)
    }

    private func runDirective(_ text: ArraySlice<UInt8>, line start: Int) throws(ConfigError) {
        var i = text.startIndex
        while i < text.endIndex, CfgChar.isIDChar(text[i]) { i += 1 }
        let word = String(decoding: text[text.startIndex..<i], as: UTF8.self)
        let rest = text[i...]
        let loc = location(start)
        let active = isActive

        switch word {
        case "ifdef", "ifndef":
            let (name, after) = try directiveName(rest, word: word, line: start)
            try requireBlank(after, line: start)
            let defined = session.defines[name] != nil
            conditions.append(Condition(taking: word == "ifdef" ? defined : !defined,
                                        enclosingActive: active, sawElse: false, line: start, directive: word))
        case "else":
            try requireBlank(rest, line: start)
            guard var c = conditions.popLast() else {
                throw ConfigError("#!else without #!ifdef or #!ifndef", at: loc, context: lineText(start))
            }
            guard !c.sawElse else {
                throw ConfigError("second #!else for the #!\(c.directive) at line \(c.line)", at: loc,
                                  context: lineText(start))
            }
            c.sawElse = true
            c.taking.toggle()
            conditions.append(c)
        case "endif":
            try requireBlank(rest, line: start)
            guard conditions.popLast() != nil else {
                throw ConfigError("#!endif without #!ifdef or #!ifndef", at: loc, context: lineText(start))
            }
        case "ifexp":
            throw ConfigError("#!ifexp is not supported", at: loc, context: lineText(start))
        default:
            guard active else { return }
            switch word {
            case "KAMAILIO", "OPENSER", "SER", "ALL", "MAXCOMPAT":
                return
            case "define", "def", "trydef", "trydefine", "redefine", "redef":
                let (name, after) = try directiveName(rest, word: word, line: start)
                let value = String(decoding: after, as: UTF8.self).trimmingSpaces()
                if session.defines[name] != nil {
                    if word == "trydef" || word == "trydefine" { return }
                    if word == "define" || word == "def" {
                        throw ConfigError("'\(name)' is already defined (use #!redefine or #!trydef)", at: loc,
                                          context: lineText(start))
                    }
                }
                session.defines[name] = String(value)
            case "undef":
                let (name, after) = try directiveName(rest, word: word, line: start)
                try requireBlank(after, line: start)
                session.defines[name] = nil
            case "subst", "substdef", "substdefs", "defenv", "defenvs", "trydefenv", "trydefenvs",
                "trydefenvns", "defexp", "defexps":
                throw ConfigError("#!\(word) is not supported", at: loc, context: lineText(start))
            default:
                return  // not a directive: a comment, as in Kamailio
            }
        }
    }

    /// The identifier after a directive word, and the text after it.
    private func directiveName(
        _ rest: ArraySlice<UInt8>, word: String, line start: Int
    ) throws(ConfigError) -> (String, ArraySlice<UInt8>) {
        var i = rest.startIndex
        while i < rest.endIndex, CfgChar.isBlank(rest[i]) { i += 1 }
        guard i > rest.startIndex, i < rest.endIndex, CfgChar.isIDStart(rest[i]) else {
            throw ConfigError("#!\(word): missing or invalid name (letters, digits and '_')", at: location(start),
                              context: lineText(start))
        }
        let nameStart = i
        while i < rest.endIndex, CfgChar.isIDChar(rest[i]) { i += 1 }
        let name = String(decoding: rest[nameStart..<i], as: UTF8.self)
        if i < rest.endIndex, rest[i] == CfgChar.minus {
            throw ConfigError("#!\(word): '-' is not allowed in names", at: location(start), context: lineText(start))
        }
        return (name, rest[i...])
    }

    private func requireBlank(_ rest: ArraySlice<UInt8>, line start: Int) throws(ConfigError) {
        guard rest.allSatisfy(CfgChar.isBlank) else {
            throw ConfigError("cannot parse: \(lineText(start))", at: location(start))
        }
    }
}
