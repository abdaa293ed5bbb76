import CLua

/// Reads the arguments of a call from Lua without raising and, for the common cases,
/// without allocating. Index 1 is the first argument.
public struct LuaArgs {
    public let L: OpaquePointer
    public let count: Int32

    @inline(__always)
    public init(_ L: OpaquePointer) {
        self.L = L
        self.count = lua_gettop(L)
    }

    /// The Lua type of argument `i` (`LUA_TNONE` past the end).
    @inline(__always)
    public func type(_ i: Int32) -> Int32 { lua_type(L, i) }

    /// The bytes of a string or number argument, as `lua_tolstring` gives them (numbers are
    /// converted in place, as Kamailio's app_lua does); `nil` for nil, booleans, tables...
    /// Valid while the argument stays on the stack.
    @inline(__always)
    public func bytes(_ i: Int32) -> UnsafeRawBufferPointer? {
        let t = lua_type(L, i)
        guard t == LUA_TSTRING || t == LUA_TNUMBER else { return nil }
        var len = 0
        guard let p = lua_tolstring(L, i, &len) else { return nil }
        return UnsafeRawBufferPointer(start: p, count: len)
    }

    /// A string or number argument as a Swift string; `nil` for other types.
    @inline(__always)
    public func string(_ i: Int32) -> String? {
        guard let b = bytes(i) else { return nil }
        return String(decoding: b, as: UTF8.self)
    }

    /// Whether argument `i` is a Lua integer (not a float, not a string).
    @inline(__always)
    public func isInteger(_ i: Int32) -> Bool { lua_isinteger(L, i) != 0 }

    /// Argument `i` as a 64-bit integer (0 if it is not a number or numeric string).
    @inline(__always)
    public func integer(_ i: Int32) -> Int {
        var ok: Int32 = 0
        let v = lua_tointegerx(L, i, &ok)
        return ok != 0 ? Int(v) : 0
    }

    /// An integer argument as Kamailio reads it: integers as is, numeric strings converted,
    /// floats truncated toward zero, anything else 0; stored in 32 bits (wrapping).
    @inline(__always)
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
    @inline(__always) public init(_ L: OpaquePointer) { self.L = L }

    @inline(__always) public func `nil`() { lua_pushnil(L) }
    @inline(__always) public func bool(_ b: Bool) { lua_pushboolean(L, b ? 1 : 0) }
    @inline(__always) public func int(_ v: Int) { lua_pushinteger(L, lua_Integer(v)) }
    @inline(__always) public func string(_ s: String) {
        var s = s
        s.withUTF8 { buf in
            buf.withMemoryRebound(to: CChar.self) { _ = lua_pushlstring(L, $0.baseAddress, $0.count) }
        }
    }
    @inline(__always) public func bytes(_ b: UnsafeRawBufferPointer) {
        _ = lua_pushlstring(L, b.baseAddress?.assumingMemoryBound(to: CChar.self), b.count)
    }
    /// Pushes a string error value for the trampoline to raise; returns `LuaState.raise`.
    public func raise(_ message: String) -> Int32 {
        string(message)
        return LuaState.raise
    }
}
