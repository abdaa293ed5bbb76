import Foundation
@testable import KEMI
import KSRBase
import MQueue
import RTimer
import Synchronization
import Testing

/// Writes a script to a temporary file and configures a host from it.
func configure(_ script: String, cfg: String? = nil) throws(ConfigFailure) -> ScriptHost {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kemi-\(UUID().uuidString)")
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let path = dir.appendingPathComponent("app.lua").path
    try? script.write(toFile: path, atomically: true, encoding: .utf8)
    var cfgPath: String?
    if let cfg {
        cfgPath = dir.appendingPathComponent("kamailio.cfg").path
        try? cfg.write(toFile: cfgPath!, atomically: true, encoding: .utf8)
        return try ScriptHost.configure(HostOptions(cfgFile: cfgPath))
    }
    return try ScriptHost.configure(HostOptions(script: path))
}

@Suite("Host configuration phase")
struct HostConfigureTests {
    @Test func recordsTimersQueuesAndCoreParams() throws {
        let host = try configure("""
            loadmodule "rtimer.so"
            loadmodule "/usr/lib/x86_64-linux-gnu/kamailio/modules/mqueue.so"
            coreparam("debug", 3)
            modparam("rtimer", "timer", "name=ta;interval=10;mode=2;")
            modparam("rtimer", "exec", "timer=ta;route=cb")
            modparam("mqueue", "mqueue", "name=q;size=5;addmode=2")
            modparam("pv", "shvset", "x=s:hello")
            function cb() end
            """)
        let setup = host.runtime.setup
        #expect(setup.loadedModules == ["rtimer", "mqueue"])
        #expect(setup.debugLevel == 3)
        #expect(setup.rtimer.timers.map(\.name) == ["ta"])
        #expect(setup.rtimer.timers.first?.execs.map(\.route) == ["cb"])
        #expect(host.runtime.queueList.map(\.definition.name) == ["q"])
        #expect(host.runtime.queueList.first?.definition.size == 5)
        #expect(host.runtime.shared.cell("x").value.withLock { $0 } == .string("hello"))
    }

    @Test func collectsEveryErrorWithItsLine() {
        do {
            _ = try configure("""
                modparam("rtimer", "nosuch", 1)
                modparam("mqueue", "mqueue", "size=3")
                coreparam("children", 0)
                """)
            Issue.record("expected errors")
        } catch {
            #expect(error.errors.count == 3)
            #expect(error.errors.map { $0.location?.line ?? -1 } == [1, 2, 3])
            #expect(error.errors[1].message.contains("mqueue name not defined"))
            #expect(error.errors[2].message.contains("children expects a positive integer"))
        }
    }

    @Test func cfgFileSettingsAndScript() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kemi-cfg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try "function hb() end\n".write(to: dir.appendingPathComponent("hb.lua"), atomically: true, encoding: .utf8)
        let cfg = dir.appendingPathComponent("k.cfg").path
        try """
            debug=1
            listen=udp:127.0.0.1:5060
            loadmodule "app_lua.so"
            modparam("rtimer", "timer", "name=hb;interval=1;mode=1;")
            modparam("rtimer", "exec", "timer=hb;route=hb")
            modparam("app_lua", "load", "hb.lua")
            cfgengine "lua"
            """.write(toFile: cfg, atomically: true, encoding: .utf8)
        let host = try ScriptHost.configure(HostOptions(cfgFile: cfg))
        #expect(host.script.hasSuffix("hb.lua"))
        #expect(host.runtime.setup.listen == ["udp:127.0.0.1:5060"])
        #expect(host.runtime.setup.debugLevel == 1)
    }

    @Test func cfgWithoutLuaEngineIsRefused() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kemi-cfg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try "".write(to: dir.appendingPathComponent("x.lua"), atomically: true, encoding: .utf8)
        let cfg = dir.appendingPathComponent("k.cfg").path
        try "modparam(\"app_lua\", \"load\", \"x.lua\")\ncfgengine \"native\"\n".write(toFile: cfg, atomically: true, encoding: .utf8)
        #expect(throws: ConfigFailure.self) { try ScriptHost.configure(HostOptions(cfgFile: cfg)) }
    }
}

@Suite("Module declarations")
struct DeclarationTests {
    @Test func exportNamesAreUniqueAndStubsCoverThem() {
        let exports = ScriptHost.modules.flatMap(\.exports)
        let names = exports.map(\.qualifiedName)
        #expect(Set(names).count == names.count)
        #expect(exports.allSatisfy { $0.params.count <= 6 })
        let stubs = Stubs.generate()
        for e in exports { #expect(stubs.contains("function \(e.qualifiedName)(")) }
    }

    @Test func eachLoadableModuleIsDeclaredOnceAndCoreTablesAreNotModules() {
        let loadable = ScriptHost.modules.filter(\.isLoadable).map(\.name)
        #expect(Set(loadable).count == loadable.count, "declared twice: \(loadable.filter { n in loadable.filter { $0 == n }.count > 1 })")
        for core in ["core", "hdr", "config"] {
            #expect(!loadable.contains(core))
            #expect(Config.module(core, ScriptHost.modules) == nil)
        }
        #expect(Config.providedModules(ScriptHost.modules) == loadable.sorted().joined(separator: ", "))
    }

    @Test func paramNamesAreUniquePerModule() {
        for m in ScriptHost.modules {
            let names = m.params.map(\.name)
            #expect(Set(names).count == names.count, "\(m.name)")
        }
    }

    @Test func pointerCacheVerifiesBytes() {
        let cache = PointerCache<Int>()
        let a = Array("$var(x)".utf8)
        let b = Array("$var(y)".utf8)
        a.withUnsafeBytes { cache.insert($0, 1) }
        #expect(a.withUnsafeBytes { cache.lookup($0) } == 1)
        // Same address, other bytes: a miss, never a wrong hit.
        var c = a
        c.withUnsafeMutableBytes { buf in
            cache.insert(UnsafeRawBufferPointer(buf), 7)
            buf[6] = UInt8(ascii: "y")
            #expect(cache.lookup(UnsafeRawBufferPointer(buf)) == nil)
        }
        #expect(b.withUnsafeBytes { cache.lookup($0) } == nil)
    }
}
