import CLua

/// Reads the arguments of a call from Lua without raising and, for the common cases,
/// without allocating. Index 1 is the first argument.
public struct LuaArgs {
    public let L: OpaquePointer
    public let count: Int32

    @inlinable @inline(__always)
    public init(_ L: OpaquePointer) {
        self.L = L
        self.count = lua_gettop(L)
    }

    /// The Lua type of argument `i` (`LUA_TNONE` past the end).
    @inlinable @inline(__always)
    public func type(_ i: Int32) -> Int32 { lua_type(L, i) }

    /// The bytes of a string or number argument, as `lua_tolstring` gives them (numbers are
    /// converted in place, as Kamailio's app_lua does); `nil` for nil, booleans, tables...
    /// Valid while the argument stays on the stack. (`lua_tolstring` itself returns NULL for
    /// every other type, so one API call does it.)
    @inlinable @inline(__always)
    public func bytes(_ i: Int32) -> UnsafeRawBufferPointer? {
        var len = 0
        guard let p = lua_tolstring(L, i, &len) else { return nil }
        return UnsafeRawBufferPointer(start: p, count: len)
    }

    /// A string or number argument as a Swift string; `nil` for other types.
    @inlinable @inline(__always)
    public func string(_ i: Int32) -> String? {
        guard let b = bytes(i) else { return nil }
        return LuaStrings.string(b)
    }

    /// Whether argument `i` is a Lua integer (not a float, not a string).
    @inlinable @inline(__always)
    public func isInteger(_ i: Int32) -> Bool { lua_isinteger(L, i) != 0 }

    /// Argument `i` as a 64-bit integer (0 if it is not a number or numeric string).
    @inlinable @inline(__always)
    public func integer(_ i: Int32) -> Int {
        var ok: Int32 = 0
        let v = lua_tointegerx(L, i, &ok)
        return ok != 0 ? Int(v) : 0
    }

    /// An integer argument as Kamailio reads it: integers as is, numeric strings converted,
    /// floats truncated toward zero, anything else 0; stored in 32 bits (wrapping).
    @inlinable @inline(__always)
    public func int32(_ i: Int32) -> Int32 {
        var ok: Int32 = 0
        let v = lua_tointegerx(L, i, &ok)
        if ok != 0 { return Int32(truncatingIfNeeded: v) }
        if lua_type(L, i) == LUA_TNUMBER || lua_type(L, i) == LUA_TSTRING {
            var isnum: Int32 = 0
            let d = lua_tonumberx(L, i, &isnum)
            if isnum != 0, d.isFinite, abs(d) < 9.2e18 { return Int32(truncatingIfNeeded: Int64(d)) }
        }
        return 0
    }
}

/// Pushing results from a dispatcher.
public struct LuaPush {
    public let L: OpaquePointer
    @inlinable @inline(__always) public init(_ L: OpaquePointer) { self.L = L }

    @inlinable @inline(__always) public func `nil`() { lua_pushnil(L) }
    @inlinable @inline(__always) public func bool(_ b: Bool) { lua_pushboolean(L, b ? 1 : 0) }
    @inlinable @inline(__always) public func int(_ v: Int) { lua_pushinteger(L, lua_Integer(v)) }
    @inlinable @inline(__always) public func string(_ s: String) {
        var s = s
        s.withUTF8 { buf in
            buf.withMemoryRebound(to: CChar.self) { _ = lua_pushlstring(L, $0.baseAddress, $0.count) }
        }
    }
    @inlinable @inline(__always) public func bytes(_ b: UnsafeRawBufferPointer) {
        _ = lua_pushlstring(L, b.baseAddress?.assumingMemoryBound(to: CChar.self), b.count)
    }
    /// Pushes a string error value for the trampoline to raise; returns `LuaState.raise`.
    public func raise(_ message: String) -> Int32 {
        string(message)
        return LuaState.raise
    }
}

/// Swift strings from the bytes of Lua strings, without the general UTF-8 validation for the
/// common case: a short ASCII string (keys, values, queue and PV names) is built directly as a
/// Swift small string, whose 16 bytes hold the characters and, in the top byte, the ASCII
/// small-string tag and the length. `LuaStrings.smallStringsWork` checks that this build of the
/// standard library lays small strings out that way (each length 0-15, bit for bit against
/// `String(decoding:as:)`); every `LuaState` runs the check when it is created, before any
/// string can come from it, and if it fails every string takes the general path.
public enum LuaStrings {
    /// Whether the direct construction is used: a constant-initialised global (no lazy
    /// initialisation on the hot path), cleared by `LuaState.init` if the check fails.
    nonisolated(unsafe) public static var direct = true

    /// Whether the direct construction gives bit-identical strings here (checked once).
    public static let smallStringsWork: Bool = {
        guard MemoryLayout<String>.size == 16 else { return false }
        let sample: [UInt8] = Array("0123456789abcdef".utf8)
        for n in 0...15 {
            let ok = sample.withUnsafeBytes { all -> Bool in
                let b = UnsafeRawBufferPointer(rebasing: all[0..<n])
                let general = String(decoding: b, as: UTF8.self)
                let bits = unsafeBitCast(general, to: (UInt64, UInt64).self)
                guard let direct = directSmallBits(b) else { return false }
                return bits == direct && unsafeBitCast(direct, to: String.self) == general
            }
            if !ok { return false }
        }
        return true
    }()

    /// The raw bits of the small ASCII string holding `b`, or nil when `b` is longer than 15
    /// bytes or not ASCII.
    @inlinable @inline(__always)
    static func directSmallBits(_ b: UnsafeRawBufferPointer) -> (UInt64, UInt64)? {
        let n = b.count
        guard n <= 15 else { return nil }
        var words: (UInt64, UInt64) = (0, 0)
        if n > 0 {
            withUnsafeMutableBytes(of: &words) { $0.baseAddress!.copyMemory(from: b.baseAddress!, byteCount: n) }
        }
        guard (words.0 | words.1) & 0x8080_8080_8080_8080 == 0 else { return nil }
        return (UInt64(littleEndian: words.0), UInt64(littleEndian: words.1) | (0xE0 | UInt64(n)) << 56)
    }

    /// `String(decoding: b, as: UTF8.self)`, faster for short ASCII strings.
    @inlinable @inline(__always)
    public static func string(_ b: UnsafeRawBufferPointer) -> String {
        if b.count <= 15, direct, let bits = directSmallBits(b) {
            return unsafeBitCast(bits, to: String.self)
        }
        return String(decoding: b, as: UTF8.self)
    }
}
