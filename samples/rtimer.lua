-- rtimer sample: the examples of Kamailio's rtimer documentation as KEMI Lua.
-- Run: ksr run samples/rtimer.lua   (Ctrl-C stops)

-- A timer on the shared timer worker (mode 0), every 2 seconds.
modparam("rtimer", "timer", "name=slow;interval=2;mode=0;")
modparam("rtimer", "exec", "timer=slow;route=ksr_slow")

-- A timer with two dedicated workers (mode 2): each worker runs every exec, every second.
modparam("rtimer", "timer", "name=ta;interval=1;mode=2;")
modparam("rtimer", "exec", "timer=ta;route=ksr_rtimer")

-- A microsecond timer: 500 ms.
modparam("rtimer", "timer", "name=fast;interval=500000u;mode=1;")
modparam("rtimer", "exec", "timer=fast;route=ksr_fast")

function ksr_slow(evname)
    KSR.info("slow timer: " .. evname .. " at " .. KSR.pv.get("$TF") .. "\n")
end

function ksr_rtimer(evname)
    -- $var is per worker: each of the two workers counts its own runs.
    KSR.pv.seti("$var(runs)", KSR.pv.get("$var(runs)") + 1)
    KSR.info("ta worker " .. KSR.pv.get("$rtimer_worker") .. " run " .. KSR.pv.get("$var(runs)") .. "\n")
end

function ksr_fast(evname)
    -- $shv is shared: one counter for every worker.
    KSR.pv.seti("$shv(fast)", KSR.pv.get("$shv(fast)") + 1)
    if KSR.pv.get("$shv(fast)") % 4 == 0 then
        KSR.info("fast timer ran " .. KSR.pv.get("$shv(fast)") .. " times\n")
    end
end
