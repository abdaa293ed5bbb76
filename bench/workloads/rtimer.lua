-- Workload "rtimer": every tick logs the wall clock; bench/analyze.py computes lateness and
-- drift from the log. bench/run stops the host once it has seen enough ticks.
-- Shared unchanged by both hosts (rtimer10ms.ksr.lua, rtimer100ms.ksr.lua; Lua 5.1 and 5.4).

function bench_tick(evname)
    KSR.info("BENCH tick " .. KSR.pv.get("$TV(Sn)") .. "\n")
end
