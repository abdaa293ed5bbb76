// Lazy, on-demand access to a parsed message. Nothing here is computed at parse time.

extension SIPMessage {
    /// The start line without its line end.
    public var startLine: String { bytes.withUnsafeBufferPointer { decode($0, startLineRange) } }

    /// The Request-URI as written; nil for responses.
    public var requestURI: String? {
        guard isRequest else { return nil }
        return bytes.withUnsafeBufferPointer { decode($0, middleRange) }
    }

    /// The Request-URI parsed; nil for responses or when it does not parse.
    public var parsedRequestURI: SIPURI? { requestURI.flatMap { try? SIPURI(parsing: $0) } }

    /// The reason phrase (possibly empty); nil for requests.
    public var reasonPhrase: String? {
        guard isResponse else { return nil }
        return bytes.withUnsafeBufferPointer { decode($0, middleRange) }
    }

    /// `SIP/2.0` as written.
    public var version: String { bytes.withUnsafeBufferPointer { decode($0, versionRange) } }

    public var body: ArraySlice<UInt8> { bytes[bodyRange] }

    /// The body decoded as UTF-8 (invalid sequences replaced).
    public var bodyText: String { bytes.withUnsafeBufferPointer { decode($0, bodyRange) } }

    // MARK: Fields

    public func name(of field: SIPHeaderField) -> String {
        bytes.withUnsafeBufferPointer { decode($0, field.nameRange) }
    }

    /// The value, trimmed, folding replaced by single spaces, decoded as UTF-8.
    public func value(of field: SIPHeaderField) -> String {
        withValue(field) { p, r in decode(p, r) }
    }

    /// The value's bytes, trimmed and unfolded.
    public func valueBytes(of field: SIPHeaderField) -> [UInt8] {
        withValue(field) { p, r in Array(UnsafeBufferPointer(rebasing: p[r])) }
    }

    /// Runs `body` over the value's bytes (unfolded when needed).
    func withValue<R>(_ f: SIPHeaderField, _ body: (Bytes, Range<Int>) -> R) -> R {
        if !f.isFolded {
            return bytes.withUnsafeBufferPointer { body($0, f.valueRange) }
        }
        let u = unfoldedValue(f)
        return u.withUnsafeBufferPointer { body($0, 0..<$0.count) }
    }

    private func unfoldedValue(_ f: SIPHeaderField) -> [UInt8] {
        bytes.withUnsafeBufferPointer { p in
            let r = f.valueRange
            var out: [UInt8] = []
            out.reserveCapacity(r.count)
            var i = r.lowerBound
            while i < r.upperBound {
                let c = p[i]
                if c == ASCII.cr || c == ASCII.lf {
                    while let l = out.last, isWSP(l) { out.removeLast() }
                    while i < r.upperBound, p[i] == ASCII.cr || p[i] == ASCII.lf || isWSP(p[i]) {
                        i += 1
                    }
                    out.append(ASCII.space)
                    continue
                }
                out.append(c)
                i += 1
            }
            return out
        }
    }

    /// The first field of a kind.
    public func firstField(_ kind: SIPHeaderKind) -> SIPHeaderField? {
        for f in fields where f.kind == kind { return f }
        return nil
    }

    /// All fields called `name` (full or compact form, any case), in order.
    public func fields(named name: String) -> [SIPHeaderField] {
        let kind = SIPHeaderKind(name: name)
        if kind != .other { return fields.filter { $0.kind == kind } }
        return withUTF8NoThrow(name) { q in
            let qs = skipWSP(q, 0, q.count)
            let qr = qs..<trimWSPBack(q, qs, q.count)
            return bytes.withUnsafeBufferPointer { p in
                fields.filter { $0.kind == .other && equalsIgnoringCase(p, $0.nameRange, q, qr) }
            }
        }
    }

    /// The first value of a header (trimmed, unfolded); nil when absent.
    public func header(_ kind: SIPHeaderKind) -> String? { firstField(kind).map(value(of:)) }

    /// The first value of the header called `name` (full or compact form, any case).
    public func header(named name: String) -> String? { fields(named: name).first.map(value(of:)) }

    /// All values of a header in order; list headers (`SIPHeaderKind.isList`: Via, Contact,
    /// Route, Record-Route, ...) are split on commas outside quotes and `<>`.
    public func headers(_ kind: SIPHeaderKind) -> [String] {
        values(of: fields.filter { $0.kind == kind }, split: kind.isList)
    }

    /// All values of the header called `name`; see `headers(_:)`.
    public func headers(named name: String) -> [String] {
        let kind = SIPHeaderKind(name: name)
        return values(of: fields(named: name), split: kind.isList)
    }

    private func values(of fs: [SIPHeaderField], split: Bool) -> [String] {
        var out: [String] = []
        for f in fs {
            withValue(f) { p, r in
                if split {
                    for item in splitList(p, r) { out.append(decode(p, item)) }
                } else {
                    out.append(decode(p, r))
                }
            }
        }
        return out
    }

    // MARK: Well-known headers

    /// The topmost Via value.
    public var via: SIPVia? {
        guard let f = firstField(.via) else { return nil }
        return withValue(f) { p, r in scanVia(p, r.lowerBound, r.upperBound).map { SIPVia.make(p, $0) } }
    }

    /// Every Via value, top first (comma-separated values split). Stops at the first value
    /// that does not parse.
    public var vias: [SIPVia] {
        var out: [SIPVia] = []
        for f in fields where f.kind == .via {
            let ok = withValue(f) { p, r -> Bool in
                var i = r.lowerBound
                while true {
                    guard let v = scanVia(p, i, r.upperBound) else { return false }
                    out.append(SIPVia.make(p, v))
                    guard let c = v.comma else { return true }
                    i = c + 1
                }
            }
            if !ok { break }
        }
        return out
    }

    public var from: SIPNameAddr? { nameAddr(.from) }
    public var to: SIPNameAddr? { nameAddr(.to) }

    /// Contact values (`*` is skipped), Route and Record-Route values are available via
    /// `nameAddrs(_:)`.
    public func nameAddrs(_ kind: SIPHeaderKind) -> [SIPNameAddr] {
        var out: [SIPNameAddr] = []
        for f in fields where f.kind == kind {
            withValue(f) { p, r in
                for item in splitList(p, r) {
                    if let raw = scanNameAddr(p, item.lowerBound, item.upperBound),
                       raw.comma == nil, let na = SIPNameAddr.make(p, raw) {
                        out.append(na)
                    }
                }
            }
        }
        return out
    }

    private func nameAddr(_ kind: SIPHeaderKind) -> SIPNameAddr? {
        guard let f = firstField(kind) else { return nil }
        return withValue(f) { p, r in
            guard let raw = scanNameAddr(p, r.lowerBound, r.upperBound), raw.comma == nil else {
                return nil
            }
            return SIPNameAddr.make(p, raw)
        }
    }

    public var callID: String? {
        guard let v = header(.callID), !v.isEmpty else { return nil }
        return v
    }

    public var cseq: SIPCSeq? {
        guard let f = firstField(.cseq) else { return nil }
        return withValue(f) { p, r in
            scanCSeq(p, r).map { SIPCSeq(number: $0.number, method: SIPMethod(p, $0.method.lowerBound, $0.method.upperBound)) }
        }
    }

    /// Max-Forwards (0...255 in practice; up to 9 digits accepted); nil when absent or invalid.
    public var maxForwards: Int? {
        guard let f = firstField(.maxForwards) else { return nil }
        return withValue(f) { p, r in parseDecimal(p, r.lowerBound, r.upperBound, maxDigits: 9) }
    }

    public var contentType: String? { header(.contentType) }

    /// True for a request whose top Via, From, To, Call-ID and CSeq all parse: the minimum to
    /// answer it (also with a 400). Does not allocate.
    public var canFormReply: Bool {
        guard isRequest else { return false }
        var seen: (via: Bool, from: Bool, to: Bool, callID: Bool, cseq: Bool) = (false, false, false, false, false)
        for f in fields {
            switch f.kind {
            case .via where !seen.via:
                guard withValue(f, { p, r in scanVia(p, r.lowerBound, r.upperBound) != nil }) else { return false }
                seen.via = true
            case .from where !seen.from, .to where !seen.to:
                let ok = withValue(f) { p, r -> Bool in
                    guard let na = scanNameAddr(p, r.lowerBound, r.upperBound), na.comma == nil else {
                        return false
                    }
                    return scanURI(p, na.uri.lowerBound, na.uri.upperBound) != nil
                }
                guard ok else { return false }
                if f.kind == .from { seen.from = true } else { seen.to = true }
            case .callID where !seen.callID:
                guard f.valueStart < f.valueEnd else { return false }
                seen.callID = true
            case .cseq where !seen.cseq:
                guard withValue(f, { p, r in scanCSeq(p, r) != nil }) else { return false }
                seen.cseq = true
            default:
                break
            }
        }
        return seen.via && seen.from && seen.to && seen.callID && seen.cseq
    }
}
