import Foundation
import Testing

@Suite("ksr command line")
struct CLITests {
    @Test func stubsMatchTheCheckedInFile() throws {
        let r = try KSR.run(["stubs"])
        #expect(r.status == 0)
        let checkedIn = try String(contentsOf: KSR.packageRoot.appendingPathComponent("lua/ksr.lua"), encoding: .utf8)
        #expect(r.stdout == checkedIn, "lua/ksr.lua is stale: regenerate it with `swift run ksr stubs > lua/ksr.lua`")
        #expect(r.stdout.hasPrefix("---@meta"))
        #expect(r.stdout.contains("function KSR.mqueue.mq_add(queue, key, value) end"))
        #expect(r.stdout.contains("function KSR.pv.get(name) end"))
        #expect(r.stdout.contains("function KSR.x.exit() end"))
        #expect(r.stdout.contains("function modparam(module, param, value) end"))
    }

    @Test func versionAndHelp() throws {
        let v = try KSR.run(["version"])
        #expect(v.status == 0)
        #expect(v.stdout.hasPrefix("ksr "))
        #expect(v.stdout.contains("Lua 5.4"))
        let help = try KSR.run(["--help"])
        #expect(help.status == 0)
        for sub in ["run", "check", "stubs", "version"] { #expect(help.stdout.contains(sub)) }
        let runHelp = try KSR.run(["run", "--help"])
        #expect(runHelp.stdout.contains("--log-format"))
        #expect(runHelp.stdout.contains("-f"))
        let bad = try KSR.run(["run", "x.lua", "--log-format", "xml"])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("log-format"))
    }

    @Test func samplesPassCheck() throws {
        for sample in ["samples/rtimer.lua", "samples/mqueue.lua", "samples/stateless.lua", "samples/async-sleep.lua",
                       "samples/async.lua", "samples/dmq.lua"] {
            let r = try KSR.run(["check", KSR.packageRoot.appendingPathComponent(sample).path])
            #expect(r.status == 0, "\(sample): \(r.stderr)")
        }
        let cfg = try KSR.run(["check", "-f", KSR.packageRoot.appendingPathComponent("samples/kamailio.cfg").path])
        #expect(cfg.status == 0, "\(cfg.stderr)")
        #expect(cfg.stdout.contains("kamailio.lua: OK (1 timers, 1 queues)"))
    }

    @Test func kamailioCfgRuns() throws {
        let p = try KSR.Running(["run", "-f", KSR.packageRoot.appendingPathComponent("samples/kamailio.cfg").path])
        #expect(p.waitForStderr(timeout: 15) { $0.contains("heartbeat 1, events queued: 1") })
        #expect(p.stop() == 0)
    }

    @Test func rtimerSampleShowsBothWorkersAndTheSharedCounter() throws {
        let p = try KSR.Running(["run", KSR.packageRoot.appendingPathComponent("samples/rtimer.lua").path])
        #expect(p.waitForStderr(timeout: 20) { s in
            s.contains("ta worker 0 run 2") && s.contains("ta worker 1 run 2") && s.contains("slow timer: rtimer")
                && s.contains("fast timer ran 4 times")
        })
        #expect(p.stop() == 0)
    }
}
