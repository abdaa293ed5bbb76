-- mqueue sample: a producer timer adds jobs, a consumer timer drains them.
-- The "jobs" queue is saved to SQLite at shutdown and loaded at startup (dbmode=1),
-- so items left when you press Ctrl-C are there again on the next run.
-- Run: ksr run samples/mqueue.lua

modparam("mqueue", "db_url", "sqlite:///tmp/ksr-sample-mqueue.db")
modparam("mqueue", "mqueue", "name=jobs;size=100;dbmode=1")
-- addmode 2: a newer item with the same key replaces the older one.
modparam("mqueue", "mqueue", "name=latest;addmode=2")

modparam("rtimer", "timer", "name=producer;interval=1;mode=1;")
modparam("rtimer", "exec", "timer=producer;route=ksr_produce")
modparam("rtimer", "timer", "name=consumer;interval=3;mode=1;")
modparam("rtimer", "exec", "timer=consumer;route=ksr_consume")

local n = 0

function ksr_produce(evname)
    n = n + 1
    KSR.mqueue.mq_add("jobs", "job-" .. n, "payload " .. n)
    KSR.mqueue.mq_add("latest", "status", "tick " .. n)
    KSR.info("queued job-" .. n .. ", jobs in queue: " .. KSR.mqueue.mq_size("jobs") .. "\n")
end

function ksr_consume(evname)
    while KSR.mqueue.mq_fetch("jobs") == 1 do
        KSR.info("consumed " .. KSR.mqueue.mqk_get("jobs") .. " = " .. KSR.mqueue.mqv_get("jobs") .. "\n")
    end
    if KSR.mqueue.mq_fetch("latest") == 1 then
        KSR.info("latest status: " .. KSR.pv.get("$mqv(latest)") .. "\n")
    end
end
