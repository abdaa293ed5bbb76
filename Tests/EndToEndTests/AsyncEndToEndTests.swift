import Foundation
import Testing

@Suite("async through ksr run")
struct AsyncEndToEndTests {
    @Test func taskDataRunsOnTheAsyncGroups() throws {
        let script = luaShow + """
            coreparam("async_workers", 2)
            coreparam("async_workers_group", "name=grp;workers=1;")
            modparam("rtimer", "timer", "name=t;interval=100000u;mode=1;")
            modparam("rtimer", "exec", "timer=t;route=ksr_t")
            local done = false
            function ksr_t()
              if done then return end
              done = true
              show("outside_data", KSR.async.get_data())
              show("outside_gname", KSR.async.get_gname())
              show("outside_pv", KSR.pv.get("$async(data)"))
              show("task_data", KSR.async.task_data("on_task", "payload-1"))
              show("task_group_data", KSR.async.task_group_data("on_group_task", "grp", "payload-2"))
              show("unknown_group", KSR.async.task_group_data("on_task", "GRP", "x"))
              show("route_faked", KSR.async.route("on_task", 1))
              show("ms_route_faked", KSR.async.ms_route("on_task", 50))
              show("task_route_faked", KSR.async.task_route("on_task"))
              show("long_name", KSR.async.task_data(string.rep("x", 63), "x"))
            end
            function on_task(ev)
              show("ev", ev)
              show("data", KSR.async.get_data())
              show("gname", KSR.async.get_gname())
              show("pv_data", KSR.pv.get("$async(data)"))
            end
            function on_group_task(ev)
              show("group_gname", KSR.pv.get("$async(gname)"))
              show("group_data", KSR.async.get_data())
              show("group_ru", KSR.pv.get("$ru"))
              KSR.info("DONE\\n")
            end
            """
        let r = try ScriptRun.run(script)
        #expect(r.status == 0, "\(r.stderr)")
        let expected: [String: String] = [
            "outside_data": "|string", "outside_gname": "|string", "outside_pv": "nil|nil",
            "task_data": "1|number", "task_group_data": "1|number", "unknown_group": "-1|number",
            "route_faked": "-1|number", "ms_route_faked": "-1|number", "task_route_faked": "-1|number",
            "long_name": "-1|number",
            "ev": "async:task-data|string", "data": "payload-1|string", "gname": "default|string",
            "pv_data": "payload-1|string", "group_gname": "grp|string", "group_data": "payload-2|string",
            "group_ru": "sip:you@kamailio.org|string",
        ]
        for (k, v) in expected { #expect(r.results[k] == v, "\(k): \(r.results[k] ?? "missing")") }
        #expect(r.stderr.contains("async group [GRP] not found"))
        #expect(r.stderr.contains("invalid usage for faked message"))
        #expect(r.stderr.contains("callback name is too long"))
    }

    @Test func withoutAsyncWorkersATaskFailsClearly() throws {
        let script = luaShow + """
            modparam("rtimer", "timer", "name=t;interval=100000u;mode=1;")
            modparam("rtimer", "exec", "timer=t;route=ksr_t")
            function ksr_t()
              show("task_data", KSR.async.task_data("f", "x"))
              KSR.info("DONE\\n")
            end
            """
        let r = try ScriptRun.run(script)
        #expect(r.results["task_data"] == "-1|number")
        #expect(r.stderr.contains("there are no async workers"))
    }

    @Test func sleepKeepsLocalsAndTheWorkerServesOtherEvents() throws {
        // One worker, two timers: while "slow" sleeps 1.5 s, "fast" keeps ticking on the same
        // worker; then "slow" continues at the next statement with its locals.
        let script = luaShow + """
            coreparam("async_workers", 1)
            modparam("rtimer", "timer", "name=slow;interval=1;mode=0;")
            modparam("rtimer", "exec", "timer=slow;route=on_slow")
            modparam("rtimer", "timer", "name=fast;interval=1;mode=0;")
            modparam("rtimer", "exec", "timer=fast;route=on_fast")
            local fast = 0
            local slept = false
            function on_fast() fast = fast + 1 end
            function on_slow(ev)
              if slept then return end
              slept = true
              local before = tonumber(KSR.pv.get("$TV(Sn)"))
              local mine = { "kept", 42 }
              local fast_before = fast
              local ret = KSR.async.ms_sleep(1500)
              local after = tonumber(KSR.pv.get("$TV(Sn)"))
              show("ret", ret)
              show("ev_after", ev)
              show("locals", mine[1] .. mine[2])
              show("slept_ms_ok", (after - before) >= 1.49 and (after - before) < 3.0)
              show("fast_progressed", fast > fast_before)
              KSR.async.task_data("on_task", "d1")
            end
            function on_task()
              local x = "task-local"
              KSR.async.sleep(1)
              show("task_after_sleep", x .. "/" .. KSR.async.get_data())
              local ok, err = pcall(KSR.async.ms_sleep, -5)
              show("bad_arg", ok)
              KSR.info("DONE\\n")
            end
            local ok, err = pcall(KSR.async.sleep, 1)
            toplevel_err = err
            """
        let r = try ScriptRun.run(script, timeout: 40)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.results["ret"] == "1|number")
        #expect(r.results["ev_after"] == "rtimer|string")
        #expect(r.results["locals"] == "kept42|string")
        #expect(r.results["slept_ms_ok"] == "true|boolean")
        #expect(r.results["fast_progressed"] == "true|boolean")
        #expect(r.results["task_after_sleep"] == "task-local/d1|string")
        #expect(r.results["bad_arg"] == "false|boolean")
    }

    @Test func badAsyncGroupIsAStartupError() throws {
        let dir = TempDir()
        let path = dir.write("g.lua", "coreparam(\"async_workers_group\", \"name=grp;workers=0\")\n")
        let r = try KSR.run(["check", path])
        #expect(r.status != 0)
        #expect(r.stderr.contains("g.lua:1"))
        #expect(r.stderr.contains("invalid workers value"))
    }
}
