/// Kamailio's structured parameter syntax: `"name=ta;interval=10;mode=1;"`.
///
/// Pairs are separated by `;`, one trailing `;` is allowed, whitespace around names and values
/// is ignored, names compare case-insensitively and values may be double-quoted. A name given
/// twice keeps its **first** value, as Kamailio's parser does.
public struct ParamList: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        /// The name as written.
        public var name: String
        public var value: String
    }

    /// The pairs in the order they were written.
    public private(set) var entries: [Entry]

    public init(parsing text: String) throws(ParamError) {
        var entries: [Entry] = []
        var body = Substring(text)
        while let last = body.last, last.isWhitespace {
            body.removeLast()
        }
        if body.hasSuffix(";") { body.removeLast() }
        if body.allSatisfy(\.isWhitespace) {
            throw ParamError("empty parameter value")
        }
        for part in Self.split(body) {
            let trimmed = part.trimmingSpaces()
            guard !trimmed.isEmpty else { throw ParamError("empty item in '\(text)'") }
            guard let eq = trimmed.firstIndex(of: "=") else {
                throw ParamError("missing '=' in '\(trimmed)'")
            }
            let name = trimmed[..<eq].trimmingSpaces()
            var value = trimmed[trimmed.index(after: eq)...].trimmingSpaces()
            guard !name.isEmpty else { throw ParamError("missing name before '=' in '\(trimmed)'") }
            if value.count >= 2, value.first == "\"", value.last == "\"" {
                value = value.dropFirst().dropLast()
            }
            entries.append(Entry(name: String(name), value: String(value)))
        }
        self.entries = entries
    }

    /// The first value given for `name` (case-insensitive).
    public subscript(name: String) -> String? {
        let key = name.lowercased()
        return entries.first { $0.name.lowercased() == key }?.value
    }

    /// Names that are not in `known` (case-insensitive), in order.
    public func unknownNames(known: Set<String>) -> [String] {
        let lowered = Set(known.map { $0.lowercased() })
        return entries.map(\.name).filter { !lowered.contains($0.lowercased()) }
    }

    /// Splits on `;` outside double quotes.
    private static func split(_ s: Substring) -> [Substring] {
        var parts: [Substring] = []
        var start = s.startIndex
        var inQuotes = false
        var i = s.startIndex
        while i < s.endIndex {
            let c = s[i]
            if c == "\"" { inQuotes.toggle() } else if c == ";" && !inQuotes {
                parts.append(s[start..<i])
                start = s.index(after: i)
            }
            i = s.index(after: i)
        }
        parts.append(s[start..<s.endIndex])
        return parts
    }
}

extension StringProtocol {
    /// The text without leading and trailing spaces, tabs and line breaks.
    public func trimmingSpaces() -> SubSequence {
        // Character.isWhitespace also covers "\r\n", which Swift treats as one Character.
        let isSpace: (Character) -> Bool = { $0.isWhitespace }
        guard let first = firstIndex(where: { !isSpace($0) }) else { return self[endIndex...] }
        let last = lastIndex(where: { !isSpace($0) })!
        return self[first...last]
    }
}

/// Parses Kamailio's unsigned decimal (e.g. rtimer `interval`, `mode`): digits only.
public func parseUnsignedDecimal(_ s: some StringProtocol) -> Int? {
    guard !s.isEmpty, s.count <= 18, s.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
    return Int(s)
}

/// Parses like Kamailio's `str2sint`: an optional sign and digits; anything else gives `nil`.
public func parseSignedDecimal(_ s: some StringProtocol) -> Int? {
    let t = s.trimmingSpaces()
    guard !t.isEmpty, t.count <= 19 else { return nil }
    return Int(t)
}
