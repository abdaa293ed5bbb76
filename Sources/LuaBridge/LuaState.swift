import CLua

/// The signature of the Swift function that serves every exported function of a state:
/// it gets the state and the export's id, pushes its results and returns their number,
/// or returns `LuaState.raise` with an error value on top of the stack.
public typealias LuaDispatcher = @convention(c) (OpaquePointer?, Int32) -> Int32

/// What went wrong when Lua code ran.
public struct LuaError: Error, Sendable, CustomStringConvertible {
    /// The error message (for a runtime error, the value passed to `error`).
    public var message: String
    /// The Lua traceback, when one was taken.
    public var traceback: String?
    public init(message: String, traceback: String? = nil) {
        self.message = message
        self.traceback = traceback
    }
    public var description: String { traceback ?? message }
}

/// A Lua state owned by one thread. It is never shared: create it, use it and close it on the
/// same thread (KSRHost gives each worker its own, as Kamailio gives each process its own).
///
/// Nothing here raises a Lua error through Swift: loading and running use protected calls and
/// `lua_resume`, and values are read with the non-raising `lua_to*x` functions.
public final class LuaState {
    /// Returned by a dispatcher to make the trampoline raise the value on top of the stack.
    public static let raise: Int32 = -1

    public let L: OpaquePointer
    /// An idle coroutine kept for the next call, so most calls allocate no thread.
    private var idleThread: OpaquePointer?
    private var idleThreadRef: Int32 = LUA_NOREF

    public init() throws(LuaError) {
        // Written only if the check fails (never on the platforms ksr supports).
        if !LuaStrings.smallStringsWork { LuaStrings.direct = false }
        guard let L = ksr_lua_newstate() else { throw LuaError(message: "cannot create a Lua state") }
        self.L = L
        if ksr_lua_openlibs(L) != LUA_OK {
            let msg = Self.message(L, -1)
            lua_close(L)
            throw LuaError(message: "cannot open the Lua standard libraries: \(msg)")
        }
    }

    deinit {
        lua_close(L)
    }

    // MARK: - context pointer (LUA_EXTRASPACE)

    /// Stores a pointer in the state's extra space; coroutines created later inherit it.
    public func setContext(_ pointer: UnsafeMutableRawPointer?) {
        ksr_lua_getextraspace(L)!.storeBytes(of: pointer, as: UnsafeMutableRawPointer?.self)
    }

    /// The pointer stored with `setContext`, read from any coroutine of the state.
    @inline(__always)
    public static func context(of L: OpaquePointer) -> UnsafeMutableRawPointer? {
        ksr_lua_getextraspace(L)!.load(as: UnsafeMutableRawPointer?.self)
    }

    // MARK: - building tables

    /// Pushes a new table.
    public func pushNewTable() { ksr_lua_newtable(L) }

    /// Sets `t[name] = <Swift export id>` on the table at the top of the stack.
    public func setFunctionField(_ name: String, dispatcher: LuaDispatcher, id: Int32) {
        ksr_push_trampoline(L, unsafeBitCast(dispatcher, to: UnsafeMutableRawPointer.self), id)
        lua_setfield(L, -2, name)
    }

    /// Pops the value at the top into `t[name]` of the table just below it.
    public func setField(_ name: String) { lua_setfield(L, -2, name) }

    /// Pops the value at the top into the global `name`.
    public func setGlobal(_ name: String) { lua_setglobal(L, name) }

    /// Sets global `name` to a Swift export.
    public func setGlobalFunction(_ name: String, dispatcher: LuaDispatcher, id: Int32) {
        ksr_push_trampoline(L, unsafeBitCast(dispatcher, to: UnsafeMutableRawPointer.self), id)
        lua_setglobal(L, name)
    }

    public func setGlobal(_ name: String, string value: String) {
        lua_pushstring(L, value)
        lua_setglobal(L, name)
    }

    /// Pushes the global table's raw field `name` (no metamethods) and returns its type.
    @discardableResult
    public func pushRawGlobal(_ name: String) -> Int32 { Self.pushRawGlobal(on: L, name) }

    /// Pushes global `name` onto thread `L`, read raw (no metamethods); returns its type.
    static func pushRawGlobal(on L: OpaquePointer, _ name: String) -> Int32 {
        lua_rawgeti(L, KSR_LUA_REGISTRYINDEX, lua_Integer(KSR_LUA_RIDX_GLOBALS))
        lua_pushstring(L, name)
        let t = lua_rawget(L, -2)
        lua_rotate(L, -2, 1)  // move the globals table above the value...
        ksr_lua_pop(L, 1)  // ...and drop it
        return t
    }

    /// Whether a global function with this name exists (read raw, without metamethods).
    public func hasGlobalFunction(_ name: String) -> Bool {
        let t = pushRawGlobal(name)
        ksr_lua_pop(L, 1)
        return t == LUA_TFUNCTION
    }

    /// The names of all global functions (raw), for diagnostics.
    public var top: Int32 { lua_gettop(L) }
    public func setTop(_ n: Int32) { lua_settop(L, n) }

    // MARK: - running code

    /// Loads and runs a file in the main thread of the state, with a traceback on error.
    public func runFile(_ path: String) throws(LuaError) {
        let base = lua_gettop(L)
        defer { lua_settop(L, base) }
        ksr_lua_push_traceback_handler(L)
        if ksr_lua_loadfile(L, path) != LUA_OK {
            throw LuaError(message: Self.message(L, -1))
        }
        if ksr_lua_pcall(L, 0, 0, base + 1) != LUA_OK {
            let full = Self.message(L, -1)
            throw LuaError(message: Self.firstLine(full), traceback: full)
        }
    }

    /// Loads and runs a chunk of Lua source, with a traceback on error.
    public func run(_ source: String, name: String = "=(ksr)") throws(LuaError) {
        let base = lua_gettop(L)
        defer { lua_settop(L, base) }
        ksr_lua_push_traceback_handler(L)
        let status = source.utf8.withContiguousStorageIfAvailable { buf in
            buf.withMemoryRebound(to: CChar.self) { ksr_lua_loadbuffer(L, $0.baseAddress, $0.count, name) }
        } ?? {
            var copy = source
            return copy.withUTF8 { buf in
                buf.withMemoryRebound(to: CChar.self) { ksr_lua_loadbuffer(L, $0.baseAddress, $0.count, name) }
            }
        }()
        if status != LUA_OK { throw LuaError(message: Self.message(L, -1)) }
        if ksr_lua_pcall(L, 0, 0, base + 1) != LUA_OK {
            let full = Self.message(L, -1)
            throw LuaError(message: Self.firstLine(full), traceback: full)
        }
    }

    /// The outcome of running a callback as a coroutine.
    public enum CallOutcome {
        /// The function returned (or ended with Kamailio's exit sentinel).
        case returned
        /// No global function by that name: nothing ran.
        case missing
        /// The function raised an error.
        case failed(LuaError)
        /// The coroutine yielded (a suspension request). The caller owns `thread` until resumed.
        case yielded(LuaThread)
    }

    /// The error text `KSR.x.exit()` raises; a run that ends with it is a success.
    public static let exitSentinel = "~~ksr~exit~~"

    /// Runs global function `name` as a coroutine with optional string arguments, with a
    /// traceback on error. The function is looked up raw at every call, as app_lua does.
    public func callGlobal(_ name: String, args: [String] = []) -> CallOutcome {
        let base = lua_gettop(L)
        let co = takeThread()
        defer { lua_settop(L, base) }
        // Push the function onto the coroutine's stack.
        guard Self.pushRawGlobal(on: co.pointer, name) == LUA_TFUNCTION else {
            lua_settop(co.pointer, 0)
            giveBack(co)
            return .missing
        }
        for a in args { lua_pushstring(co.pointer, a) }
        return resume(co, nargs: Int32(args.count))
    }

    /// The first value `KSR.async.sleep` and `ms_sleep` yield, so that the host can tell its own
    /// suspensions from a script's stray `coroutine.yield`.
    public static let sleepMarker = "~~ksr~sleep~~"

    /// The milliseconds a coroutine that just yielded asked to sleep (`coroutine.yield(marker,
    /// ms)`), or nil if it yielded anything else. Clears the yielded values.
    public func sleepRequest(_ co: LuaThread) -> Int? {
        defer { lua_settop(co.pointer, 0) }
        let n = lua_gettop(co.pointer)
        guard n == 2, lua_type(co.pointer, 1) == LUA_TSTRING, Self.message(co.pointer, 1) == Self.sleepMarker else { return nil }
        var ok: Int32 = 0
        let ms = lua_tointegerx(co.pointer, 2, &ok)
        return ok != 0 ? Int(ms) : nil
    }

    /// Calls global function `name` with no arguments on thread `L` (the coroutine of a KSR
    /// call in progress) under `lua_pcall`: a route run from inside another one, such as
    /// tm's branch route. It cannot sleep (a yield there is an error). Returns nil when it ran
    /// (or the exit sentinel ended it), .missing, or the error.
    public static func protectedCall(on L: OpaquePointer, _ name: String) -> CallOutcome {
        let base = lua_gettop(L)
        defer { lua_settop(L, base) }
        ksr_lua_push_traceback_handler(L)
        guard pushRawGlobal(on: L, name) == LUA_TFUNCTION else { return .missing }
        if ksr_lua_pcall(L, 0, 0, base + 1) == LUA_OK { return .returned }
        let full = message(L, -1)
        if full.hasPrefix(exitSentinel) { return .returned }
        return .failed(LuaError(message: full.split(separator: "\n").first.map(String.init) ?? full, traceback: full))
    }

    /// Resumes a coroutine that yielded for a sleep; the sleep call returns `value`.
    public func resume(_ co: LuaThread, returning value: Int) -> CallOutcome {
        lua_pushinteger(co.pointer, lua_Integer(value))
        return resume(co, nargs: 1)
    }

    /// Resumes a coroutine that yielded earlier, with `nargs` values on its stack.
    public func resume(_ co: LuaThread, nargs: Int32 = 0) -> CallOutcome {
        var nres: Int32 = 0
        let status = lua_resume(co.pointer, L, nargs, &nres)
        switch status {
        case LUA_OK:
            lua_settop(co.pointer, 0)
            giveBack(co)
            return .returned
        case LUA_YIELD:
            return .yielded(co)
        default:
            let msg = Self.message(co.pointer, -1)
            if msg == Self.exitSentinel {
                release(co)
                return .returned
            }
            let base = lua_gettop(L)
            ksr_lua_traceback(L, co.pointer, msg, 0)
            let tb = Self.message(L, -1)
            lua_settop(L, base)
            release(co)
            return .failed(LuaError(message: msg, traceback: tb))
        }
    }

    /// A coroutine with a registry reference that keeps it alive.
    public struct LuaThread {
        public let pointer: OpaquePointer
        let ref: Int32
    }

    private func takeThread() -> LuaThread {
        if let t = idleThread {
            idleThread = nil
            return LuaThread(pointer: t, ref: idleThreadRef)
        }
        let t = lua_newthread(L)!
        let ref = luaL_ref(L, KSR_LUA_REGISTRYINDEX)
        return LuaThread(pointer: t, ref: ref)
    }

    private func giveBack(_ co: LuaThread) {
        if idleThread == nil {
            idleThread = co.pointer
            idleThreadRef = co.ref
        } else {
            luaL_unref(L, KSR_LUA_REGISTRYINDEX, co.ref)
        }
    }

    /// Drops a coroutine that yielded and will never be resumed.
    public func discard(_ co: LuaThread) {
        release(co)
    }

    /// Drops a coroutine that died with an error (it cannot be resumed or reused as is).
    private func release(_ co: LuaThread) {
        _ = ksr_lua_resetthread(co.pointer)
        luaL_unref(L, KSR_LUA_REGISTRYINDEX, co.ref)
    }

    /// Total memory in use by the state, in bytes.
    public var memoryInUse: Int {
        Int(ksr_lua_memory(L))
    }

    // MARK: - helpers

    /// The value at `index` as an error message (strings as is, other types described).
    public static func message(_ L: OpaquePointer, _ index: Int32) -> String {
        if lua_type(L, index) == LUA_TSTRING || lua_type(L, index) == LUA_TNUMBER {
            var len = 0
            if let p = lua_tolstring(L, index, &len) {
                return String(decoding: UnsafeRawBufferPointer(start: p, count: len), as: UTF8.self)
            }
        }
        let tn = String(cString: lua_typename(L, lua_type(L, index)))
        return "(error object is a \(tn) value)"
    }

    private static func firstLine(_ s: String) -> String {
        if let nl = s.firstIndex(of: "\n") { return String(s[..<nl]) }
        return s
    }
}

/// The Lua library version the host runs, e.g. "Lua 5.4".
public enum LuaVersion {
    public static var string: String { "Lua \(LUA_VERSION_MAJOR).\(LUA_VERSION_MINOR)" }
}
