// Byte-level helpers shared by the codec. Everything here works on UTF-8 bytes and never
// allocates; callers pass a buffer and an index range.

typealias Bytes = UnsafeBufferPointer<UInt8>

enum ASCII {
    static let tab: UInt8 = 9
    static let lf: UInt8 = 10
    static let cr: UInt8 = 13
    static let space: UInt8 = 32
    static let quote: UInt8 = 34       // "
    static let percent: UInt8 = 37     // %
    static let amp: UInt8 = 38         // &
    static let comma: UInt8 = 44       // ,
    static let dot: UInt8 = 46         // .
    static let slash: UInt8 = 47       // /
    static let zero: UInt8 = 48
    static let colon: UInt8 = 58       // :
    static let semicolon: UInt8 = 59   // ;
    static let lt: UInt8 = 60          // <
    static let eq: UInt8 = 61          // =
    static let gt: UInt8 = 62          // >
    static let question: UInt8 = 63    // ?
    static let at: UInt8 = 64          // @
    static let lbracket: UInt8 = 91    // [
    static let backslash: UInt8 = 92   // \
    static let rbracket: UInt8 = 93    // ]
}

@inline(__always) func isWSP(_ c: UInt8) -> Bool { c == ASCII.space || c == ASCII.tab }
@inline(__always) func isDigit(_ c: UInt8) -> Bool { c &- 48 < 10 }
@inline(__always) func isAlpha(_ c: UInt8) -> Bool { (c | 0x20) &- 97 < 26 }
@inline(__always) func isAlnum(_ c: UInt8) -> Bool { isDigit(c) || isAlpha(c) }
@inline(__always) func lowerASCII(_ c: UInt8) -> UInt8 { (c &- 65 < 26) ? c | 0x20 : c }

@inline(__always) func isHexDigit(_ c: UInt8) -> Bool {
    isDigit(c) || (c | 0x20) &- 97 < 6
}

@inline(__always) func hexValue(_ c: UInt8) -> UInt8 {
    isDigit(c) ? c &- 48 : (c | 0x20) &- 87
}

/// RFC 3261 `token` characters: alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~".
@inline(__always) func isTokenChar(_ c: UInt8) -> Bool {
    switch c {
    case 48...57, 65...90, 97...122: return true
    case 45, 46, 33, 37, 42, 95, 43, 96, 39, 126: return true
    default: return false
    }
}

/// Characters a host name (or IPv4 address) is made of; `_` is tolerated as many stacks do.
@inline(__always) func isHostChar(_ c: UInt8) -> Bool {
    isAlnum(c) || c == 45 || c == 46 || c == 95
}

@inline(__always) func skipWSP(_ p: Bytes, _ i: Int, _ end: Int) -> Int {
    var i = i
    while i < end, isWSP(p[i]) { i += 1 }
    return i
}

@inline(__always) func trimWSPBack(_ p: Bytes, _ start: Int, _ end: Int) -> Int {
    var e = end
    while e > start, isWSP(p[e - 1]) { e -= 1 }
    return e
}

/// `p[start..<end]` equals the lower-case ASCII literal `s`, ignoring ASCII case.
@inline(__always) func equalsLower(_ p: Bytes, _ start: Int, _ end: Int, _ s: StaticString) -> Bool {
    let n = s.utf8CodeUnitCount
    guard end - start == n else { return false }
    let q = s.utf8Start
    var k = 0
    while k < n {
        if lowerASCII(p[start + k]) != q[k] { return false }
        k += 1
    }
    return true
}

/// `p[start..<end]` equals `s` exactly.
@inline(__always) func equalsExact(_ p: Bytes, _ start: Int, _ end: Int, _ s: StaticString) -> Bool {
    let n = s.utf8CodeUnitCount
    guard end - start == n else { return false }
    let q = s.utf8Start
    var k = 0
    while k < n {
        if p[start + k] != q[k] { return false }
        k += 1
    }
    return true
}

/// Two byte ranges are equal ignoring ASCII case.
func equalsIgnoringCase(_ a: Bytes, _ ar: Range<Int>, _ b: Bytes, _ br: Range<Int>) -> Bool {
    guard ar.count == br.count else { return false }
    var i = ar.lowerBound, j = br.lowerBound
    while i < ar.upperBound {
        if lowerASCII(a[i]) != lowerASCII(b[j]) { return false }
        i += 1; j += 1
    }
    return true
}

/// All-digit decimal of at most `maxDigits` digits (leading zeros count), or nil.
@inline(__always) func parseDecimal(_ p: Bytes, _ start: Int, _ end: Int, maxDigits: Int) -> Int? {
    guard end > start, end - start <= maxDigits else { return nil }
    var v = 0
    var i = start
    while i < end {
        let d = p[i] &- 48
        guard d < 10 else { return nil }
        v = v &* 10 &+ Int(d)
        i += 1
    }
    return v
}

/// Index of the closing quote of a quoted-string whose opening quote is at `start`
/// (backslash escapes the next byte), or nil when it is not closed before `end`.
@inline(__always) func quotedStringEnd(_ p: Bytes, _ start: Int, _ end: Int) -> Int? {
    var i = start + 1
    while i < end {
        let c = p[i]
        if c == ASCII.backslash {
            i += 2
            continue
        }
        if c == ASCII.quote { return i }
        i += 1
    }
    return nil
}

@inline(__always) func decode(_ p: Bytes, _ r: Range<Int>) -> String {
    String(decoding: UnsafeBufferPointer(rebasing: p[r]), as: UTF8.self)
}

/// Runs `body` over the UTF-8 bytes of `s` without copying native strings.
@inline(__always) func withUTF8NoThrow<R>(_ s: String, _ body: (Bytes) -> R) -> R {
    var s = s
    return s.withUTF8(body)
}

extension Array where Element == UInt8 {
    /// Appends the bytes of a literal.
    @inline(__always) public mutating func append(_ s: StaticString) {
        append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    @inline(__always) mutating func append(_ p: Bytes, _ r: Range<Int>) {
        append(contentsOf: UnsafeBufferPointer(rebasing: p[r]))
    }

    @inline(__always) mutating func appendUTF8(_ s: String) {
        var s = s
        s.withUTF8 { append(contentsOf: $0) }
    }

    /// Appends `s` with every CR or LF replaced by a space: header values and reason phrases
    /// handed in by callers can never end the line early.
    public mutating func appendSingleLine(_ s: String) {
        var s = s
        s.withUTF8 { p in
            let start = count
            append(contentsOf: p)
            if p.contains(where: { $0 == ASCII.cr || $0 == ASCII.lf }) {
                for k in start..<count where self[k] == ASCII.cr || self[k] == ASCII.lf {
                    self[k] = ASCII.space
                }
            }
        }
    }

    /// Appends `value` in decimal, without making a String.
    public mutating func appendDecimal(_ value: Int) {
        if value < 0 {
            append(UInt8(ascii: "-"))
            appendDecimal(value == Int.min ? Int.max : -value)
            return
        }
        if value < 10 {
            append(ASCII.zero &+ UInt8(value))
            return
        }
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0) // 24 bytes, enough for Int64
        var n = 0
        var v = value
        Swift.withUnsafeMutableBytes(of: &digits) { raw in
            while v > 0 {
                raw[n] = ASCII.zero &+ UInt8(v % 10)
                v /= 10
                n += 1
            }
            var k = n - 1
            while k >= 0 {
                append(raw[k])
                k -= 1
            }
        }
    }
}

// MARK: - IP addresses

/// A numeric IP address, for comparing a Via host with a source address.
enum IPAddressValue: Equatable {
    case v4(UInt32)
    case v6(UInt64, UInt64)

    /// Parses an IPv4 address, an IPv6 address, or an IPv6 reference `[...]`.
    static func parse(_ p: Bytes, _ start: Int, _ end: Int) -> IPAddressValue? {
        guard end > start else { return nil }
        if p[start] == ASCII.lbracket {
            guard end - start >= 2, p[end - 1] == ASCII.rbracket else { return nil }
            return parseIPv6(p, start + 1, end - 1).map { .v6($0.0, $0.1) }
        }
        if let v4 = parseIPv4(p, start, end) { return .v4(v4) }
        return parseIPv6(p, start, end).map { .v6($0.0, $0.1) }
    }

    static func parse(_ s: String) -> IPAddressValue? {
        withUTF8NoThrow(s) { p in parse(p, 0, p.count) }
    }
}

func parseIPv4(_ p: Bytes, _ start: Int, _ end: Int) -> UInt32? {
    var value: UInt32 = 0
    var octets = 0
    var i = start
    while true {
        let s = i
        var v = 0
        while i < end, isDigit(p[i]), i - s < 3 {
            v = v * 10 + Int(p[i] - 48)
            i += 1
        }
        guard i > s, v <= 255 else { return nil }
        value = value << 8 | UInt32(v)
        octets += 1
        if octets == 4 { return i == end ? value : nil }
        guard i < end, p[i] == ASCII.dot else { return nil }
        i += 1
    }
}

func parseIPv6(_ p: Bytes, _ start: Int, _ end: Int) -> (UInt64, UInt64)? {
    guard end - start >= 2, end - start <= 45 else { return nil }
    var groups: (UInt64, UInt64) = (0, 0)
    return withUnsafeMutableBytes(of: &groups) { raw -> (UInt64, UInt64)? in
        let g = raw.bindMemory(to: UInt16.self)  // 8 groups
        var count = 0
        var gap = -1
        var i = start
        if p[i] == ASCII.colon {
            guard p[i + 1] == ASCII.colon else { return nil }
            gap = 0
            i += 2
            if i == end { return (0, 0) }
        }
        while i < end {
            guard count < 8 else { return nil }
            let s = i
            var v: UInt32 = 0
            while i < end, isHexDigit(p[i]), i - s < 4 {
                v = v << 4 | UInt32(hexValue(p[i]))
                i += 1
            }
            if i < end, p[i] == ASCII.dot {
                // embedded IPv4 in the last 32 bits
                guard count <= 6, let v4 = parseIPv4(p, s, end) else { return nil }
                g[count] = UInt16(v4 >> 16)
                g[count + 1] = UInt16(v4 & 0xFFFF)
                count += 2
                i = end
                break
            }
            guard i > s else { return nil }
            g[count] = UInt16(v)
            count += 1
            if i == end { break }
            guard p[i] == ASCII.colon else { return nil }
            i += 1
            if i < end, p[i] == ASCII.colon {
                guard gap < 0 else { return nil }
                gap = count
                i += 1
                if i == end { break }
            } else if i == end {
                return nil  // trailing single colon
            }
        }
        if gap >= 0 {
            guard count < 8 else { return nil }
            let shift = 8 - count
            var k = count - 1
            while k >= gap {
                g[k + shift] = g[k]
                k -= 1
            }
            k = gap
            while k < gap + shift {
                g[k] = 0
                k += 1
            }
        } else {
            guard count == 8 else { return nil }
        }
        var hi: UInt64 = 0, lo: UInt64 = 0
        for k in 0..<4 { hi = hi << 16 | UInt64(g[k]) }
        for k in 4..<8 { lo = lo << 16 | UInt64(g[k]) }
        return (hi, lo)
    }
}
