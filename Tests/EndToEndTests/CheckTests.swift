import Foundation
import Testing

@Suite("ksr check and startup errors")
struct CheckTests {
    static func check(_ script: String) throws -> (KSR.Result, String) {
        let dir = TempDir()
        let path = dir.write("broken.lua", script)
        let r = try KSR.run(["check", path])
        return (r, path)
    }

    @Test func goodScriptPasses() throws {
        let (r, _) = try Self.check("""
            modparam("rtimer", "timer", "name=ta;interval=1;mode=1;")
            modparam("rtimer", "exec", "timer=ta;route=ksr_rtimer")
            modparam("mqueue", "mqueue", "name=q;size=10")
            function ksr_rtimer() end
            """)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("OK (1 timers, 1 queues)"))
    }

    @Test(arguments: [
        ("modparam(\"rtimer\", \"timer\", \"name=ta;interval=1\")\nmodparam(\"rtimer\", \"tmer\", \"x\")",
         2, "module 'rtimer' has no parameter 'tmer'"),
        ("modparam(\"rtimer\", \"timer\", \"name=ta;interval=1\")\nmodparam(\"rtimer\", \"timer\", \"name=TA;interval=2\")",
         2, "duplicate timer with same name: TA"),
        ("\n\nmodparam(\"rtimer\", \"exec\", \"timer=nope;route=f\")\nfunction f() end",
         3, "timer not found - name: nope"),
        ("modparam(\"rtimer\", \"timer\", \"name=ta;interval=1\")\nmodparam(\"rtimer\", \"exec\", \"timer=ta;route=missing_fn\")",
         2, "'missing_fn', which the script does not define"),
        ("modparam(\"rtimer\", \"timer\", \"name=ta;interval=abc\")", 1, "invalid interval"),
        ("loadmodule \"nosuch.so\"", 1, "unknown module 'nosuch'"),
        ("modparam(\"mqueue\", \"mqueue\", \"name=q;colour=blue\")", 1, "unknown param: colour"),
        ("modparam(\"mqueue\", \"mqueue\", \"name=q\")\nmodparam(\"mqueue\", \"mqueue\", \"name=q\")", 2, "mqueue redefined: q"),
        ("modparam(\"mqueue\", \"mqueue_size\", \"ten\")", 1, "expects an integer"),
        ("coreparam(\"no_such_core_param\", 1)", 1, "unknown core parameter 'no_such_core_param'"),
        ("modparam(\"mqueue\", \"mqueue\", \"name=q;dbmode=1\")", 1, "no db_url"),
        ("local x = \nfunction", 2, "broken.lua:2"),
        ("\nerror('top-level failure')", 2, "top-level failure"),
    ] as [(String, Int, String)])
    func brokenScriptsNameFileLineAndReason(script: String, line: Int, reason: String) throws {
        let (r, path) = try Self.check(script)
        #expect(r.status != 0)
        #expect(r.stderr.contains(reason), "stderr: \(r.stderr)")
        let name = (path as NSString).lastPathComponent
        #expect(r.stderr.contains("\(name):\(line)"), "stderr: \(r.stderr)")
    }

    /// The modules KSRHost provides, as a refused `loadmodule` lists them: each once, sorted,
    /// Kamailio module names only (no `hdr`, `core` or `config`: parts of Kamailio's core).
    static let provided = "app_lua, async, corex, ctl, db_sqlite, dmq, jsonrpcs, kemix, kex, mqueue, pv, rtimer, sl, textops, tm, tmx, xlog"

    @Test func aRefusedLoadmoduleListsEachProvidedKamailioModuleOnce() throws {
        for name in ["hdr", "core", "nosuch"] {
            let (r, path) = try Self.check("loadmodule \"\(name).so\"\n")
            #expect(r.status != 0)
            let lines = r.stderr.lines(containing: "unknown module")
            #expect(lines.count == 1, "stderr: \(r.stderr)")
            #expect(lines.first?.hasSuffix("\(path):1: unknown module '\(name)': KSRHost provides \(Self.provided)") == true,
                    "stderr: \(r.stderr)")
            #expect(r.stderr.contains("in: loadmodule \"\(name).so\""), "stderr: \(r.stderr)")
        }
        // The same list from a kamailio.cfg, where a modparam names an unknown module.
        let dir = TempDir()
        let script = dir.write("app.lua", "function ksr_request_route() end\n")
        let cfg = dir.write("kamailio.cfg", "loadmodule \"sl.so\"\nmodparam(\"hdr\", \"x\", 1)\nmodparam(\"app_lua\", \"load\", \"\(script)\")\ncfgengine \"lua\"\n")
        let r = try KSR.run(["check", "-f", cfg])
        #expect(r.status != 0)
        #expect(r.stderr.lines(containing: "unknown module").first?.hasSuffix("kamailio.cfg:2: unknown module 'hdr': KSRHost provides \(Self.provided)") == true,
                "stderr: \(r.stderr)")
        // Every name in the list is a module of the installed Kamailio (db_sqlite comes in
        // Debian's separate kamailio-sqlite-modules package, which the tests do not need).
        let mpath = try KamailioNode.tools().mpath
        for m in Self.provided.components(separatedBy: ", ") where m != "db_sqlite" {
            #expect(FileManager.default.fileExists(atPath: "\(mpath)\(m).so"), "\(m) is not a Kamailio module")
        }
    }

    @Test func runRefusesABrokenScriptWithTheSameMessage() throws {
        let dir = TempDir()
        let path = dir.write("bad.lua", "modparam(\"rtimer\", \"timer\", \"mode=1\")\n")
        let r = try KSR.run(["run", path], timeout: 30)
        #expect(r.status != 0)
        #expect(r.stderr.contains("bad.lua:1"))
        #expect(r.stderr.contains("invalid timer name"))
    }

    @Test func missingScriptAndNoArguments() throws {
        let r1 = try KSR.run(["check", "/nonexistent/app.lua"])
        #expect(r1.status != 0)
        #expect(r1.stderr.contains("cannot read the script: /nonexistent/app.lua"))
        let r2 = try KSR.run(["run"])
        #expect(r2.status != 0)
        #expect(r2.stderr.contains("give a script"))
    }

    @Test func nativeRouteBlocksInACfgAreRefusedWithTheirLine() throws {
        let dir = TempDir()
        dir.write("app.lua", "function f() end\n")
        let cfg = dir.write("kamailio.cfg", """
            #!KAMAILIO
            loadmodule "app_lua.so"
            modparam("app_lua", "load", "app.lua")
            cfgengine "lua"

            request_route {
                sl_send_reply("200", "OK");
            }
            """)
        let r = try KSR.run(["check", "-f", cfg])
        #expect(r.status != 0)
        #expect(r.stderr.contains("kamailio.cfg:6"), "\(r.stderr)")
        #expect(r.stderr.contains("native route blocks are not supported"))
    }

    @Test func unimplementedKamailioParametersWarnButStart() throws {
        let dir = TempDir()
        let path = dir.write("warn.lua", "modparam(\"tm\", \"wt_timer\", 3000)\ncoreparam(\"log_stderror\", \"yes\")\n")
        let r = try KSR.run(["check", path])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("warn.lua:1: parameter 'wt_timer' of module 'tm' is not implemented"))
        #expect(r.stderr.contains("warn.lua:2: core parameter 'log_stderror'"))
    }
}
