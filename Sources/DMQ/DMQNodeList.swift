import SIP

/// A node's state in the node list (Kamailio 6.1 words).
public enum DMQNodeState: String, Sendable, Hashable, CaseIterable {
    case active
    case notActive = "not_active"
    case disabled

    /// Every status word of every Kamailio generation, ASCII case-insensitive: `active`,
    /// `not_active`, `disabled`, and G1's `pending` and `timeout` (both `.notActive`).
    public init?(word: some StringProtocol) {
        switch word.lowercased() {
        case "active": self = .active
        case "not_active", "pending", "timeout": self = .notActive
        case "disabled": self = .disabled
        default: return nil
        }
    }
}

/// A node-list body (`text/plain`, channel `notification_peer`; spec 4).
public enum DMQNodeList {
    /// One accepted line.
    public struct Line: Sendable, Equatable {
        public let address: DMQNodeAddress
        /// nil when the line has no `status` parameter.
        public let status: DMQNodeState?

        public init(address: DMQNodeAddress, status: DMQNodeState?) {
            self.address = address
            self.status = status
        }
    }

    /// Parses a node-list body line by line; never throws and never stops at a bad line.
    ///
    /// Lines end at LF (a CR before it is dropped), so LF and CRLF bodies are both read; a last
    /// line without a line end is read whole (Kamailio drops its last byte). Spaces, tabs and
    /// CR around a line are trimmed. A line that is empty, is not a `sip:` URI (see
    /// `DMQNodeAddress(parsing:)`; an empty port as in `sip:1.2.3.4:;status=active` included),
    /// or has a `status` that is empty or unknown is skipped and described in `errors`
    /// (`line N: ...`). Unknown URI parameters are ignored. At most `maxLines` lines are read;
    /// the rest of the body is reported as one error.
    public static func parse(_ body: some Collection<UInt8>, maxLines: Int = 256)
        -> (lines: [Line], errors: [String]) {
        let b = Array(body)
        var lines: [Line] = []
        var errors: [String] = []
        var start = 0
        var number = 0
        while start < b.count {
            if number >= maxLines {
                errors.append("more than \(maxLines) lines: the rest of the body is ignored")
                break
            }
            number += 1
            var end = start
            while end < b.count, b[end] != 10 { end += 1 }
            let text = String(decoding: b[start..<end], as: UTF8.self)
            start = end + 1
            switch parseLine(trimmedASCII(Substring(text))) {
            case .success(let line): lines.append(line)
            case .failure(let e): errors.append("line \(number): \(e.reason)")
            }
        }
        return (lines, errors)
    }

    /// One line (already trimmed).
    static func parseLine(_ text: Substring) -> Result<Line, DMQError> {
        guard !text.isEmpty else { return .failure(DMQError("empty line")) }
        let address: DMQNodeAddress
        let uri: SIPURI
        switch DMQNodeAddress.parse(text) {
        case .success(let r): (address, uri) = r
        case .failure(let e): return .failure(e)
        }
        let status: DMQNodeState?
        if let p = uri.parameter(named: "status") {
            guard let word = p.value, let s = DMQNodeState(word: word) else {
                return .failure(DMQError("\(quoted(text)): unknown status \(quoted(p.value ?? ""))"))
            }
            status = s
        } else {
            status = nil
        }
        return .success(Line(address: address, status: status))
    }

    /// `sip:HOST:PORT[;transport=x];status=WORD` + CRLF per entry, the last line included.
    public static func render(_ entries: [(DMQNodeAddress, DMQNodeState)]) -> String {
        var s = ""
        for (address, state) in entries {
            s += address.uri + ";status=" + state.rawValue + "\r\n"
        }
        return s
    }
}
