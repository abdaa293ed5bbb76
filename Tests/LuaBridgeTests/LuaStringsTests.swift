import CLua
import LuaBridge
import Testing

/// `LuaStrings.string` builds short ASCII strings directly as small strings: every result must
/// be the string `String(decoding:as:)` gives, bit for bit where it is small.
@Suite("LuaStrings")
struct LuaStringsTests {
    private func check(_ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) {
        bytes.withUnsafeBytes { b in
            let fast = LuaStrings.string(b)
            let general = String(decoding: b, as: UTF8.self)
            #expect(fast == general, "\(bytes)", sourceLocation: sourceLocation)
            #expect(Array(fast.utf8) == Array(general.utf8), "\(bytes)", sourceLocation: sourceLocation)
            #expect(fast.count == general.count, sourceLocation: sourceLocation)
            #expect(fast.hashValue == general.hashValue, sourceLocation: sourceLocation)
            // The result behaves as any string: appending, slicing, comparing.
            #expect(fast + "!" == general + "!", sourceLocation: sourceLocation)
            #expect(fast.hasPrefix(general), sourceLocation: sourceLocation)
        }
    }

    @Test func theDirectConstructionIsCheckedAndHoldsOnThisPlatform() {
        // On 64-bit Linux and macOS the standard library lays small strings out as assumed;
        // if this fails, the fast path is off (still correct) and this test says so.
        #expect(LuaStrings.smallStringsWork)
    }

    @Test func everyShortLengthOfASCII() {
        let all = Array("abcdefghijklmnopqrstuvwxyz0123456789".utf8)
        for n in 0...all.count { check(Array(all[0..<n])) }
        check([0])  // NUL inside
        check([65, 0, 66, 0])
        check(Array(repeating: 0x7F, count: 15))
        check(Array("key-123".utf8))
        check(Array("value".utf8))
    }

    @Test func nonASCIIAndInvalidUTF8TakeTheGeneralPath() {
        check(Array("é".utf8))
        check(Array("日本語".utf8))
        check(Array("abcdefghijklmn\u{e9}".utf8))  // 16 bytes, last two non-ASCII
        check(Array("abcdefghijklm\u{e9}".utf8))   // 15 bytes with a non-ASCII tail
        check([0xFF])
        check([0x61, 0xC3])  // truncated sequence: repaired as String(decoding:) does
        check([0xE2, 0x82, 0xAC, 0x80])
    }

    @Test func throughLuaArgumentsAsKSRCallsSeeThem() throws {
        let lua = try LuaState()
        let L = lua.L
        for s in ["", "q", "q_fetch", "exactly15bytes!", "sixteen bytes!!!", "ünïcödé", "a\0b"] {
            lua_settop(L, 0)
            s.utf8CString.withUnsafeBufferPointer { p in _ = lua_pushlstring(L, p.baseAddress, s.utf8.count) }
            lua_pushinteger(L, 42)
            let args = LuaArgs(L)
            #expect(args.string(1) == s)
            #expect(args.string(2) == "42")  // numbers convert in place, as before
        }
        lua_settop(L, 0)
        lua_pushnil(L)
        lua_pushboolean(L, 1)
        let args = LuaArgs(L)
        #expect(args.string(1) == nil)
        #expect(args.string(2) == nil)
        #expect(args.string(3) == nil)
    }
}
