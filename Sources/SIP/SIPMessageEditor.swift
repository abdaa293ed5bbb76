/// Changes to a received message for sending it on (relaying): add, remove or replace header
/// lines, change the Request-URI or the body, then `serialize()`.
///
/// Untouched lines are copied byte for byte. The result always carries a correct
/// Content-Length: the first Content-Length line keeps its place with the new value (further
/// ones are dropped); without one, it is added after the last header.
public struct SIPMessageEditor: Sendable {
    private enum Line: Sendable {
        case original(Int)
        case replaced(Int, String)   // original name as written, new value
        case added(SIPHeader)
    }

    public let message: SIPMessage
    private var lines: [Line]
    private var newRequestURI: String?
    private var newBody: [UInt8]?

    public init(_ message: SIPMessage) {
        self.message = message
        lines = message.fields.indices.map { .original($0) }
    }

    /// Replaces the Request-URI (requests only; ignored for responses).
    public mutating func setRequestURI(_ uri: String) { newRequestURI = uri }

    public mutating func setBody(_ body: [UInt8]) { newBody = body }

    /// Inserts a line before all others (e.g. the new top Via of a proxy).
    public mutating func prependHeader(_ name: String, _ value: String) {
        lines.insert(.added(SIPHeader(name, value)), at: 0)
    }

    /// Adds a line after all others.
    public mutating func appendHeader(_ name: String, _ value: String) {
        lines.append(.added(SIPHeader(name, value)))
    }

    /// Inserts a line right after the first line called `name`, or after all others when
    /// there is none (Kamailio's `append_hf` with a header name).
    public mutating func insertHeader(_ name: String, _ value: String, after anchor: String) {
        guard let i = lines.firstIndex(where: { lineMatches($0, anchor) }) else { return appendHeader(name, value) }
        lines.insert(.added(SIPHeader(name, value)), at: i + 1)
    }

    /// Inserts a line right before the first line called `name`, or before all others when
    /// there is none (Kamailio's `insert_hf` with a header name).
    public mutating func insertHeader(_ name: String, _ value: String, before anchor: String) {
        guard let i = lines.firstIndex(where: { lineMatches($0, anchor) }) else { return prependHeader(name, value) }
        lines.insert(.added(SIPHeader(name, value)), at: i)
    }

    /// Removes every line called `name` (full or compact form, any case). Returns how many.
    @discardableResult
    public mutating func removeHeaders(named name: String) -> Int {
        let before = lines.count
        let m = message
        lines.removeAll { SIPMessageEditor.matches($0, name, m) }
        return before - lines.count
    }

    /// Replaces the first line called `name` (keeping its position) and removes the others;
    /// appends it when there is none.
    public mutating func setHeader(_ name: String, _ value: String) {
        guard let first = lines.firstIndex(where: { lineMatches($0, name) }) else {
            appendHeader(name, value)
            return
        }
        switch lines[first] {
        case .original(let k), .replaced(let k, _): lines[first] = .replaced(k, value)
        case .added: lines[first] = .added(SIPHeader(name, value))
        }
        var i = lines.count - 1
        while i > first {
            if lineMatches(lines[i], name) { lines.remove(at: i) }
            i -= 1
        }
    }

    /// Removes the topmost Via value (a response going back upstream): the first value of the
    /// first Via line, or that whole line when it holds one value. False when there is no Via.
    @discardableResult
    public mutating func removeTopVia() -> Bool {
        guard let idx = lines.firstIndex(where: { lineMatches($0, kind: .via) }) else { return false }
        let value: String
        switch lines[idx] {
        case .original(let k): value = message.value(of: message.fields[k])
        case .replaced(_, let v): value = v
        case .added(let h): value = h.value
        }
        let rest = withUTF8NoThrow(value) { p -> String? in
            let items = splitList(p, 0..<p.count)
            guard items.count > 1 else { return nil }
            return decode(p, items[1].lowerBound..<items[items.count - 1].upperBound)
        }
        if let rest {
            switch lines[idx] {
            case .original(let k), .replaced(let k, _): lines[idx] = .replaced(k, rest)
            case .added(let h): lines[idx] = .added(SIPHeader(h.name, rest))
            }
        } else {
            lines.remove(at: idx)
        }
        return true
    }

    public enum MaxForwardsOutcome: Sendable, Hashable {
        /// The value was decremented to this.
        case decremented(Int)
        /// There was none; `Max-Forwards: <value>` was added.
        case added(Int)
        /// The value is 0: do not forward (reply 483 Too Many Hops). Nothing was changed.
        case exhausted
        /// The value is not a number. Nothing was changed.
        case invalid
    }

    /// Kamailio's `mf_process_maxfwd_header(default)`: decrement, or add `default` when absent.
    public mutating func decrementMaxForwards(default defaultValue: Int = 70) -> MaxForwardsOutcome {
        guard let idx = lines.firstIndex(where: { lineMatches($0, kind: .maxForwards) }) else {
            appendHeader("Max-Forwards", String(defaultValue))
            return .added(defaultValue)
        }
        let current: String
        switch lines[idx] {
        case .original(let k): current = message.value(of: message.fields[k])
        case .replaced(_, let value): current = value
        case .added(let h): current = h.value
        }
        guard let v = withUTF8NoThrow(current, { p in parseDecimal(p, 0, p.count, maxDigits: 9) }) else {
            return .invalid
        }
        if v == 0 { return .exhausted }
        switch lines[idx] {
        case .original(let k), .replaced(let k, _): lines[idx] = .replaced(k, String(v - 1))
        case .added(let h): lines[idx] = .added(SIPHeader(h.name, String(v - 1)))
        }
        return .decremented(v - 1)
    }

    private func lineMatches(_ line: Line, _ name: String) -> Bool {
        SIPMessageEditor.matches(line, name, message)
    }

    private static func matches(_ line: Line, _ name: String, _ message: SIPMessage) -> Bool {
        let kind = SIPHeaderKind(name: name)
        if kind != .other { return matches(line, kind: kind, message) }
        switch line {
        case .original(let k), .replaced(let k, _):
            let f = message.fields[k]
            return f.kind == .other && asciiCaseInsensitiveEqual(message.name(of: f), name)
        case .added(let h):
            return asciiCaseInsensitiveEqual(h.name.trimmingWSP(), name.trimmingWSP())
        }
    }

    private func lineMatches(_ line: Line, kind: SIPHeaderKind) -> Bool {
        SIPMessageEditor.matches(line, kind: kind, message)
    }

    private static func matches(_ line: Line, kind: SIPHeaderKind, _ message: SIPMessage) -> Bool {
        switch line {
        case .original(let k), .replaced(let k, _): message.fields[k].kind == kind
        case .added(let h): SIPHeaderKind(name: h.name) == kind
        }
    }

    /// The edited message.
    public func serialize() -> [UInt8] {
        let m = message
        let body: ArraySlice<UInt8> = newBody.map { $0[...] } ?? m.body
        var out: [UInt8] = []
        out.reserveCapacity(m.bytes.count + 128)
        m.bytes.withUnsafeBufferPointer { p in
            if let uri = newRequestURI, m.isRequest {
                out.append(p, m.startLineRange.lowerBound..<m.middleRange.lowerBound)
                out.appendSingleLine(uri)
                out.append(p, m.middleRange.upperBound..<m.startLineRange.upperBound)
            } else {
                out.append(p, m.startLineRange)
            }
            out.append("\r\n")
            var wroteLength = false
            for line in lines {
                switch line {
                case .original(let k):
                    let f = m.fields[k]
                    if f.kind == .contentLength {
                        if wroteLength { continue }
                        wroteLength = true
                        out.append(p, Int(f.nameStart)..<Int(f.valueStart))
                        out.appendDecimal(body.count)
                    } else {
                        out.append(p, Int(f.nameStart)..<Int(f.valueEnd))
                    }
                case .replaced(let k, let value):
                    let f = m.fields[k]
                    if f.kind == .contentLength {
                        if wroteLength { continue }
                        wroteLength = true
                        out.append(p, f.nameRange)
                        out.append(": ")
                        out.appendDecimal(body.count)
                    } else {
                        out.append(p, f.nameRange)
                        out.append(": ")
                        out.appendSingleLine(value)
                    }
                case .added(let h):
                    SIPResponseBuilder.appendHeaderLine(&out, h, bodyCount: body.count, wroteLength: &wroteLength)
                    continue
                }
                out.append("\r\n")
            }
            SIPResponseBuilder.finishHeaders(&out, bodyCount: body.count, wroteLength: wroteLength)
        }
        out.append(contentsOf: body)
        return out
    }
}

extension String {
    func trimmingWSP() -> String {
        withUTF8NoThrow(self) { p in
            let s = skipWSP(p, 0, p.count)
            return decode(p, s..<trimWSPBack(p, s, p.count))
        }
    }
}
