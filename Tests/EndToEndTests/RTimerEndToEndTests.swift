import Foundation
import Testing

@Suite("rtimer through ksr run")
struct RTimerEndToEndTests {
    @Test func modeTwoRunsEveryExecInEachWorkerInDeclarationOrder() throws {
        let script = """
            modparam("rtimer", "timer", "name=ta;interval=100000u;mode=2;")
            modparam("rtimer", "exec", "timer=ta;route=first")
            modparam("rtimer", "exec", "timer=TA;route=second")
            function first(ev) KSR.info("FIRST w=" .. KSR.pv.get("$rtimer_worker") .. "\\n") end
            function second(ev)
              KSR.info("SECOND w=" .. KSR.pv.get("$rtimer_worker") .. "\\n")
              KSR.pv.seti("$var(n)", KSR.pv.get("$var(n)") + 1)
              if KSR.pv.get("$var(n)") == 3 then KSR.info("THIRD-RUN w=" .. KSR.pv.get("$rtimer_worker") .. "\\n") end
            end
            """
        let r = try ScriptRun.run(script, until: "THIRD-RUN") // wait for at least one worker's third run
        #expect(r.status == 0)
        #expect(!r.stderr.lines(containing: "FIRST w=0").isEmpty)
        #expect(!r.stderr.lines(containing: "FIRST w=1").isEmpty)
        #expect(!r.stderr.lines(containing: "SECOND w=1").isEmpty)
        // In each worker, "first" (declared first) runs before "second".
        for w in ["0", "1"] {
            let order = r.stderr.split(separator: "\n").filter { $0.contains("w=\(w)") && ($0.contains("FIRST") || $0.contains("SECOND")) }
            #expect(order.first?.contains("FIRST") == true)
        }
    }

    @Test func sharedWorkerRunsModeZeroTimersAndStopsGracefully() throws {
        let script = """
            modparam("rtimer", "default_interval", 1)
            modparam("rtimer", "timer", "name=a;mode=0;")
            modparam("rtimer", "exec", "timer=a;route=on_a")
            function on_a(ev) KSR.info("A-TICK " .. ev .. " worker=" .. KSR.pv.get("$rtimer_worker") .. "\\n") end
            """
        let dir = TempDir()
        let p = try KSR.Running(["run", dir.write("a.lua", script)])
        #expect(p.waitForStderr(timeout: 15) { $0.lines(containing: "A-TICK rtimer worker=0").count >= 2 })
        #expect(p.stop(SIGINT) == 0)
        #expect(p.stderr.contains("stopped"))
    }

    @Test func ticksDoNotDriftAndCallbacksSeeTheirOwnState() throws {
        // 20 ticks of 50 ms: each tick logs its time; lateness stays small, no tick is lost.
        let script = """
            modparam("rtimer", "timer", "name=d;interval=50000u;mode=1;")
            modparam("rtimer", "exec", "timer=d;route=tick")
            local n = 0
            function tick()
              n = n + 1
              KSR.info("TICK " .. n .. " " .. KSR.pv.get("$TV(Sn)") .. "\\n")
              if n == 20 then KSR.info("DONE\\n") end
            end
            """
        let r = try ScriptRun.run(script)
        let times = r.stderr.lines(containing: "TICK ").compactMap { line -> Double? in
            line.split(separator: " ").last.flatMap { Double($0) }
        }
        #expect(times.count >= 20)
        guard times.count >= 20 else { return }
        // 19 intervals of 50 ms: generous bound against a loaded CI machine, but a
        // "sleep after run" timer that added 5 ms per tick would still be caught.
        let span = times[19] - times[0]
        #expect(abs(span - 0.95) < 0.09, "span \(span)")
    }

    @Test func ticksKeepTheirPhaseWhenTheCallbackTakesTime() throws {
        // 40 ticks of 20 ms whose callback works for 2 ms; each tick logs its start. A timer
        // that slept for the interval after each run would slip 2 ms or more per tick, through
        // every phase of the interval.
        let script = """
            modparam("rtimer", "timer", "name=p;interval=20000u;mode=1;")
            modparam("rtimer", "exec", "timer=p;route=tick")
            local n = 0
            function tick()
              n = n + 1
              KSR.info("TICK " .. n .. " " .. KSR.pv.get("$TV(Sn)") .. "\\n")
              local t = os.clock()
              while os.clock() - t < 0.002 do end
              if n == 40 then KSR.info("DONE\\n") end
            end
            """
        let r = try ScriptRun.run(script)
        let times = r.stderr.lines(containing: "TICK ").compactMap { line -> Double? in
            line.split(separator: " ").last.flatMap { Double($0) }
        }
        #expect(times.count >= 40)
        guard times.count >= 40 else { return }
        // Where in its 20 ms each tick started, against the first tick (wrapped into ±10 ms),
        // and how far from the usual place: a timer that slides spreads evenly over the
        // interval (a median distance near 5 ms); a fixed schedule keeps most ticks together.
        let interval = 0.02
        let phases = times.map { t -> Double in
            let x = (t - times[0]).truncatingRemainder(dividingBy: interval)
            return x >= interval / 2 ? x - interval : x
        }
        let usual = phases.sorted()[phases.count / 2]
        let distances = phases.map { p -> Double in
            let d = abs(p - usual).truncatingRemainder(dividingBy: interval)
            return min(d, interval - d)
        }.sorted()
        // Generous bound for a loaded machine.
        #expect(distances[distances.count / 2] < 0.003, "median distance from the usual phase \(distances[distances.count / 2]) s")
    }
}
