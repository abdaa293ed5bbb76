// Allocation-free scanners over header values. Each returns index ranges into the buffer it was
// given; the public value types (`SIPVia`, `SIPNameAddr`, `SIPURI`) are built from them, and the
// reply builder uses them directly so that the stateless reply path never creates Strings.

/// One `;name[=value]` parameter. `start` is the index of its `;`, `end` is one past its value
/// (or name); a quoted value's range includes the quotes.
struct RawParam {
    var start: Int
    var name: Range<Int>
    var value: Range<Int>?
    var end: Int
}

/// Bytes allowed in an unquoted parameter value (token, host, IPv6 reference, and tolerantly
/// any other visible byte that cannot be a separator).
@inline(__always) func isParamValueChar(_ c: UInt8) -> Bool {
    c > 0x20 && c != 0x7F && c != ASCII.semicolon && c != ASCII.comma && c != ASCII.quote
        && c != ASCII.lt && c != ASCII.gt
}

/// Scans `*( SWS ";" SWS name [ SWS "=" SWS value ] ) SWS` starting at `i`. Stops at `end` or
/// at a `,` (returning its index); returns nil when something else is found.
func scanParams(_ p: Bytes, _ i: Int, _ end: Int, _ visit: (RawParam) -> Void) -> Int? {
    var i = i
    while true {
        i = skipWSP(p, i, end)
        if i == end || p[i] == ASCII.comma { return i }
        guard p[i] == ASCII.semicolon else { return nil }
        let start = i
        i = skipWSP(p, i + 1, end)
        let ns = i
        while i < end, isTokenChar(p[i]) { i += 1 }
        guard i > ns else { return nil }
        let name = ns..<i
        var value: Range<Int>? = nil
        var j = skipWSP(p, i, end)
        if j < end, p[j] == ASCII.eq {
            j = skipWSP(p, j + 1, end)
            let vs = j
            if j < end, p[j] == ASCII.quote {
                guard let q = quotedStringEnd(p, j, end) else { return nil }
                j = q + 1
            } else {
                while j < end, isParamValueChar(p[j]) { j += 1 }
            }
            value = vs..<j
            i = j
        }
        visit(RawParam(start: start, name: name, value: value, end: i))
    }
}

// MARK: - Via

struct RawVia {
    var protocolName: Range<Int>
    var protocolVersion: Range<Int>
    var transport: Range<Int>
    /// The host as written (an IPv6 reference keeps its brackets).
    var host: Range<Int>
    var port: Int?
    /// Index where the parameters begin (first `;`), or `end`.
    var paramsStart: Int
    /// One past the last byte of this via-parm (trailing whitespace excluded).
    var end: Int
    /// Index of the `,` that follows, when another via-parm follows in the same header.
    var comma: Int?
    var branch: RawParam?
    var rport: RawParam?
    var received: RawParam?
}

/// Scans one via-parm: `SIP / 2.0 / UDP host[:port] *(;param)`; stops at `,` or `end`.
func scanVia(_ p: Bytes, _ start: Int, _ end: Int) -> RawVia? {
    var i = skipWSP(p, start, end)
    @inline(__always) func token() -> Range<Int>? {
        let s = i
        while i < end, isTokenChar(p[i]) { i += 1 }
        return i > s ? s..<i : nil
    }
    @inline(__always) func slash() -> Bool {
        i = skipWSP(p, i, end)
        guard i < end, p[i] == ASCII.slash else { return false }
        i = skipWSP(p, i + 1, end)
        return true
    }
    guard let name = token(), slash(), let version = token(), slash(), let transport = token()
    else { return nil }
    let afterTransport = i
    i = skipWSP(p, i, end)
    guard i > afterTransport, i < end else { return nil }
    // sent-by
    let hs = i
    if p[i] == ASCII.lbracket {
        while i < end, p[i] != ASCII.rbracket { i += 1 }
        guard i < end, parseIPv6(p, hs + 1, i) != nil else { return nil }
        i += 1
    } else {
        while i < end, isHostChar(p[i]) { i += 1 }
        guard i > hs else { return nil }
    }
    let host = hs..<i
    var port: Int? = nil
    var j = skipWSP(p, i, end)
    if j < end, p[j] == ASCII.colon {
        j = skipWSP(p, j + 1, end)
        let ps = j
        while j < end, isDigit(p[j]) { j += 1 }
        guard let v = parseDecimal(p, ps, j, maxDigits: 5), v <= 65535 else { return nil }
        port = v
        i = j
    }
    let paramsStart = skipWSP(p, i, end)
    var branch: RawParam? = nil, rport: RawParam? = nil, received: RawParam? = nil
    guard let stop = scanParams(p, paramsStart, end, { prm in
        if branch == nil, equalsLower(p, prm.name.lowerBound, prm.name.upperBound, "branch") {
            branch = prm
        } else if rport == nil, equalsLower(p, prm.name.lowerBound, prm.name.upperBound, "rport") {
            rport = prm
        } else if received == nil,
                  equalsLower(p, prm.name.lowerBound, prm.name.upperBound, "received") {
            received = prm
        }
    }) else { return nil }
    return RawVia(
        protocolName: name, protocolVersion: version, transport: transport, host: host,
        port: port, paramsStart: paramsStart, end: trimWSPBack(p, paramsStart, stop),
        comma: stop < end ? stop : nil, branch: branch, rport: rport, received: received)
}

// MARK: - URI

enum RawScheme: UInt8, Sendable { case sip, sips, tel, other }

struct RawURI: Sendable {
    var scheme: RawScheme
    var schemeRange: Range<Int>
    var user: Range<Int>?
    var password: Range<Int>?
    /// Empty for `tel:` and other schemes.
    var host: Range<Int>
    var port: Int?
    /// From the first `;` (included) up to `?` or the end; empty when there are none.
    var params: Range<Int>
    /// After `?` (excluded); nil when there is no `?`.
    var headers: Range<Int>?
}

/// Bytes that may appear literally anywhere in a URI (RFC 3261/3986 unreserved, reserved and
/// `%` escapes). No whitespace, no controls, no `<>"`, no non-ASCII.
@inline(__always) func isURIChar(_ c: UInt8) -> Bool {
    c > 0x20 && c < 0x7F && c != ASCII.lt && c != ASCII.gt && c != ASCII.quote
}

func scanURI(_ p: Bytes, _ start: Int, _ end: Int) -> RawURI? {
    guard end > start, isAlpha(p[start]) else { return nil }
    var i = start
    while i < end, isAlnum(p[i]) || p[i] == 43 || p[i] == 45 || p[i] == 46 { i += 1 }
    guard i < end, p[i] == ASCII.colon else { return nil }
    let schemeRange = start..<i
    var k = i + 1
    while k < end {
        guard isURIChar(p[k]) else { return nil }
        k += 1
    }
    let scheme: RawScheme = equalsLower(p, start, i, "sip") ? .sip
        : equalsLower(p, start, i, "sips") ? .sips
        : equalsLower(p, start, i, "tel") ? .tel : .other
    let rs = i + 1
    switch scheme {
    case .other:
        guard rs < end else { return nil }
        return RawURI(scheme: .other, schemeRange: schemeRange, user: nil, password: nil,
                      host: rs..<rs, port: nil, params: end..<end, headers: nil)
    case .tel:
        var j = rs
        while j < end, p[j] != ASCII.semicolon, p[j] != ASCII.question { j += 1 }
        guard j > rs else { return nil }
        let user = rs..<j
        guard let (params, headers) = scanURIParams(p, j, end) else { return nil }
        return RawURI(scheme: .tel, schemeRange: schemeRange, user: user, password: nil,
                      host: j..<j, port: nil, params: params, headers: headers)
    case .sip, .sips:
        var user: Range<Int>? = nil, password: Range<Int>? = nil
        var hs = rs
        var at = rs
        while at < end, p[at] != ASCII.at { at += 1 }
        if at < end {
            var colon = rs
            while colon < at, p[colon] != ASCII.colon { colon += 1 }
            guard colon > rs else { return nil }
            user = rs..<colon
            if colon < at { password = (colon + 1)..<at }
            hs = at + 1
        }
        var j = hs
        guard j < end else { return nil }
        if p[j] == ASCII.lbracket {
            while j < end, p[j] != ASCII.rbracket { j += 1 }
            guard j < end, parseIPv6(p, hs + 1, j) != nil else { return nil }
            j += 1
        } else {
            while j < end, isHostChar(p[j]) { j += 1 }
            guard j > hs else { return nil }
        }
        let host = hs..<j
        var port: Int? = nil
        if j < end, p[j] == ASCII.colon {
            let ps = j + 1
            j = ps
            while j < end, isDigit(p[j]) { j += 1 }
            guard let v = parseDecimal(p, ps, j, maxDigits: 5), v <= 65535 else { return nil }
            port = v
        }
        guard j == end || p[j] == ASCII.semicolon || p[j] == ASCII.question else { return nil }
        guard let (params, headers) = scanURIParams(p, j, end) else { return nil }
        return RawURI(scheme: scheme, schemeRange: schemeRange, user: user, password: password,
                      host: host, port: port, params: params, headers: headers)
    }
}

/// `*( ";" pname [ "=" pvalue ] ) [ "?" headers ]` from `i` to `end`.
private func scanURIParams(_ p: Bytes, _ i: Int, _ end: Int) -> (Range<Int>, Range<Int>?)? {
    var j = i
    while j < end, p[j] == ASCII.semicolon {
        let ns = j + 1
        j = ns
        while j < end, p[j] != ASCII.semicolon, p[j] != ASCII.question, p[j] != ASCII.eq { j += 1 }
        guard j > ns else { return nil }
        if j < end, p[j] == ASCII.eq {
            j += 1
            while j < end, p[j] != ASCII.semicolon, p[j] != ASCII.question { j += 1 }
        }
    }
    let params = i..<j
    if j == end { return (params, nil) }
    guard p[j] == ASCII.question else { return nil }
    return (params, (j + 1)..<end)
}

/// Calls `visit(name, value)` for each `;name[=value]` of a URI parameter range
/// (or `&`-separated `name=value` for headers).
func forEachURIParam(_ p: Bytes, _ r: Range<Int>, separator: UInt8,
                     _ visit: (Range<Int>, Range<Int>?) -> Void) {
    var j = r.lowerBound
    if j < r.upperBound, p[j] == separator { j += 1 }
    while j < r.upperBound {
        let ns = j
        while j < r.upperBound, p[j] != separator, p[j] != ASCII.eq { j += 1 }
        let name = ns..<j
        var value: Range<Int>? = nil
        if j < r.upperBound, p[j] == ASCII.eq {
            let vs = j + 1
            j = vs
            while j < r.upperBound, p[j] != separator { j += 1 }
            value = vs..<j
        }
        if !name.isEmpty || value != nil { visit(name, value) }
        j += 1
    }
}

// MARK: - name-addr / addr-spec

struct RawNameAddr {
    /// The display name as written (quotes included when quoted), trimmed.
    var display: Range<Int>?
    var uri: Range<Int>
    var angle: Bool
    var paramsStart: Int
    /// One past this value (trailing whitespace excluded).
    var end: Int
    var comma: Int?
    var tag: RawParam?
}

/// `[display-name] "<" URI ">" *(;param)` or `addr-spec *(;param)` (RFC 3261 §20.10: without
/// angle brackets every `;` after the URI starts a header parameter).
func scanNameAddr(_ p: Bytes, _ start: Int, _ end: Int) -> RawNameAddr? {
    var i = skipWSP(p, start, end)
    guard i < end else { return nil }
    var display: Range<Int>? = nil
    var angle = false
    if p[i] == ASCII.quote {
        guard let q = quotedStringEnd(p, i, end) else { return nil }
        display = i..<(q + 1)
        i = skipWSP(p, q + 1, end)
        guard i < end, p[i] == ASCII.lt else { return nil }
        angle = true
    } else if p[i] == ASCII.lt {
        angle = true
    } else {
        // token *(LWS token) followed by "<" is a display name; anything else is an addr-spec
        var j = i
        while j < end, isTokenChar(p[j]) || isWSP(p[j]) { j += 1 }
        if j < end, p[j] == ASCII.lt {
            let ds = i, de = trimWSPBack(p, i, j)
            if de > ds { display = ds..<de }
            i = j
            angle = true
        }
    }
    let uri: Range<Int>
    if angle {
        let us = i + 1
        var j = us
        while j < end, p[j] != ASCII.gt { j += 1 }
        guard j < end else { return nil }
        uri = us..<j
        i = j + 1
    } else {
        let us = i
        var j = us
        while j < end, p[j] != ASCII.semicolon, p[j] != ASCII.comma, !isWSP(p[j]) { j += 1 }
        uri = us..<j
        i = j
    }
    guard !uri.isEmpty else { return nil }
    let paramsStart = skipWSP(p, i, end)
    var tag: RawParam? = nil
    guard let stop = scanParams(p, paramsStart, end, { prm in
        if tag == nil, equalsLower(p, prm.name.lowerBound, prm.name.upperBound, "tag") { tag = prm }
    }) else { return nil }
    return RawNameAddr(display: display, uri: uri, angle: angle, paramsStart: paramsStart,
                       end: trimWSPBack(p, paramsStart, stop),
                       comma: stop < end ? stop : nil, tag: tag)
}

// MARK: - Lists

/// Splits a header value on commas that are outside quoted strings and `<...>`.
/// Empty items are dropped; items are trimmed.
func splitList(_ p: Bytes, _ r: Range<Int>) -> [Range<Int>] {
    var out: [Range<Int>] = []
    var i = r.lowerBound
    var itemStart = i
    var inQuotes = false
    var inAngle = false
    @inline(__always) func flush(_ e: Int) {
        let s = skipWSP(p, itemStart, e)
        let t = trimWSPBack(p, s, e)
        if t > s { out.append(s..<t) }
    }
    while i < r.upperBound {
        let c = p[i]
        if inQuotes {
            if c == ASCII.backslash { i += 1 } else if c == ASCII.quote { inQuotes = false }
        } else if inAngle {
            if c == ASCII.gt { inAngle = false }
        } else if c == ASCII.quote {
            inQuotes = true
        } else if c == ASCII.lt {
            inAngle = true
        } else if c == ASCII.comma {
            flush(i)
            itemStart = i + 1
        }
        i += 1
    }
    flush(r.upperBound)
    return out
}

// MARK: - CSeq

func scanCSeq(_ p: Bytes, _ r: Range<Int>) -> (number: UInt32, method: Range<Int>)? {
    var i = skipWSP(p, r.lowerBound, r.upperBound)
    let ds = i
    while i < r.upperBound, isDigit(p[i]) { i += 1 }
    guard let n = parseDecimal(p, ds, i, maxDigits: 10), n <= Int(UInt32.max) else { return nil }
    let ms = skipWSP(p, i, r.upperBound)
    guard ms > i else { return nil }
    var j = ms
    while j < r.upperBound, isTokenChar(p[j]) { j += 1 }
    guard j > ms, skipWSP(p, j, r.upperBound) == r.upperBound else { return nil }
    return (UInt32(n), ms..<j)
}
