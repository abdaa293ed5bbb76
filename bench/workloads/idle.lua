-- Workload "idle": the timers of samples/rtimer.lua doing their small jobs; bench/run measures
-- the memory of the host after a few seconds. Shared unchanged by both hosts.

function bench_idle_slow(evname)
    KSR.pv.seti("$var(slow)", KSR.pv.get("$var(slow)") + 1)
end

function bench_idle_ta(evname)
    KSR.pv.seti("$var(runs)", KSR.pv.get("$var(runs)") + 1)
end

function bench_idle_fast(evname)
    KSR.pv.seti("$var(fast)", KSR.pv.get("$var(fast)") + 1)
    if KSR.pv.get("$var(fast)") == 2 then
        KSR.info("BENCH ready 1\n")
    end
end
