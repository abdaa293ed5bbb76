import CLua
import LuaBridge
import Testing

/// Test exports: id 0 raises through the trampoline, id 1 echoes its arguments' conversions,
/// id 2 reads the context pointer.
private let testDispatcher: LuaDispatcher = { L, id in
    guard let L else { return 0 }
    let args = LuaArgs(L)
    let push = LuaPush(L)
    switch id {
    case 0:
        return push.raise("raised from swift")
    case 1:
        push.string(args.string(1) ?? "<nil>")
        push.int(Int(args.int32(2)))
        push.bool(args.isInteger(2))
        return 3
    case 2:
        let p = LuaState.context(of: L)
        push.int(p.map { Int(bitPattern: $0) } ?? 0)
        return 1
    default:
        return 0
    }
}

@Suite("LuaState")
struct LuaStateTests {
    func makeState() throws -> LuaState {
        let lua = try LuaState()
        lua.setGlobalFunction("boom", dispatcher: testDispatcher, id: 0)
        lua.setGlobalFunction("echo", dispatcher: testDispatcher, id: 1)
        lua.setGlobalFunction("ctx", dispatcher: testDispatcher, id: 2)
        return lua
    }

    @Test func swiftErrorsAreRaisedByTheTrampolineAndCatchableByPcall() throws {
        let lua = try makeState()
        try lua.run("""
            local ok, err = pcall(boom)
            assert(ok == false and err == "raised from swift", tostring(err))
            """)
    }

    @Test func argumentConversionsFollowKamailio() throws {
        let lua = try makeState()
        try lua.run("""
            local s, i, isint = echo("abc", 200)
            assert(s == "abc" and i == 200 and isint == true)
            s, i = echo(5, "200")
            assert(s == "5" and i == 200, s .. " " .. i)
            s, i = echo(6.5, 3.7)
            assert(s == "6.5" and i == 3, s .. " " .. i)
            s, i = echo(nil, true)
            assert(s == "<nil>" and i == 0)
            s, i = echo("x", 2^31)
            assert(i == -2147483648, i)
            s, i = echo("a\\0b", "junk")
            assert(s == "a\\0b" and #s == 3 and i == 0)
            """)
    }

    @Test func contextPointerIsSeenFromCoroutines() throws {
        let lua = try makeState()
        let marker = UnsafeMutableRawPointer(bitPattern: 0x1234_5670)!
        lua.setContext(marker)
        try lua.run("""
            assert(ctx() == 0x12345670)
            local co = coroutine.create(function() return ctx() end)
            local ok, v = coroutine.resume(co)
            assert(ok and v == 0x12345670)
            """)
    }

    @Test func callGlobalRunsAsCoroutineWithArguments() throws {
        let lua = try makeState()
        try lua.run("function cb(a, b) seen = a .. '/' .. tostring(b) .. '/' .. select('#', a, b) end")
        guard case .returned = lua.callGlobal("cb", args: ["rtimer"]) else {
            Issue.record("cb did not return")
            return
        }
        try lua.run("assert(seen == 'rtimer/nil/2', seen)")
        // And the coroutine thread is reused: many calls, no growth of the registry.
        let before = lua.memoryInUse
        for _ in 0..<10_000 { _ = lua.callGlobal("cb", args: ["x"]) }
        #expect(lua.memoryInUse < before + 512 * 1024)
    }

    @Test func missingFunctionIsReportedNotRun() throws {
        let lua = try makeState()
        guard case .missing = lua.callGlobal("nope") else {
            Issue.record("expected .missing")
            return
        }
        try lua.run("x = 1")
        #expect(!lua.hasGlobalFunction("x"))
        try lua.run("function f() end")
        #expect(lua.hasGlobalFunction("f"))
    }

    @Test func errorsCarryATraceback() throws {
        let lua = try makeState()
        try lua.run("""
            local function inner() error("deep failure") end
            function outer() inner() end
            """, name: "@script.lua")
        guard case .failed(let e) = lua.callGlobal("outer") else {
            Issue.record("expected failure")
            return
        }
        #expect(e.message.contains("deep failure"))
        #expect(e.traceback?.contains("stack traceback") == true)
        #expect(e.traceback?.contains("inner") == true)
        // The state still works after a failed call.
        try lua.run("function ok() end")
        guard case .returned = lua.callGlobal("ok") else {
            Issue.record("state broken after an error")
            return
        }
    }

    @Test func exitSentinelCountsAsReturn() throws {
        let lua = try makeState()
        try lua.run("function f() error(\"~~ksr~exit~~\", 0) end")
        guard case .returned = lua.callGlobal("f") else {
            Issue.record("exit sentinel should end the call normally")
            return
        }
    }

    @Test func yieldingCallbackCanBeResumedWithLocalsIntact() throws {
        let lua = try makeState()
        try lua.run("""
            function f()
              local x = 41
              coroutine.yield("sleep")
              result = x + 1
            end
            """)
        guard case .yielded(let co) = lua.callGlobal("f") else {
            Issue.record("expected a yield")
            return
        }
        guard case .returned = lua.resume(co) else {
            Issue.record("expected return after resume")
            return
        }
        try lua.run("assert(result == 42)")
    }

    @Test func syntaxAndRuntimeErrorsInChunks() throws {
        let lua = try makeState()
        #expect(throws: LuaError.self) { try lua.run("local = ", name: "=bad") }
        do {
            try lua.run("error('top')", name: "@top.lua")
            Issue.record("expected an error")
        } catch {
            #expect(error.message.contains("top.lua:1: top"))
            #expect(error.traceback?.contains("stack traceback") == true)
        }
    }

    @Test func runFileReportsMissingFiles() throws {
        let lua = try makeState()
        do {
            try lua.runFile("/nonexistent/file.lua")
            Issue.record("expected an error")
        } catch {
            #expect(error.message.contains("cannot open /nonexistent/file.lua"))
        }
    }
}
