-- The async examples of Kamailio's documentation, as KEMI Lua.
-- Run:  ksr run samples/async.lua
-- Try:  sipp 127.0.0.1:5060 -sf samples/sipp/options.xml -m 10 -r 5    (OPTIONS: answered by a task)

coreparam("listen", "udp:127.0.0.1:5060")
coreparam("children", 2)
coreparam("async_workers", 2)
modparam("async", "ms_timer", 10)

function ksr_request_route()
    if KSR.is_ACK() then return end
    if KSR.is_INVITE() then
        -- "delayed 404": suspend the INVITE and answer it 2 seconds later.
        KSR.async.route("ksr_delayed_404", 2)
        KSR.x.exit()
    end
    if KSR.is_MESSAGE() then
        -- answer after 100 ms, continuing on this worker.
        KSR.async.ms_route("ksr_ms_reply", 100)
        KSR.x.exit()
    end
    -- everything else: continue on the default async group, and log the request there too.
    KSR.async.task_data("ksr_task_data", KSR.pv.get("$rm") .. " " .. KSR.pv.get("$ci"))
    KSR.async.task_route("ksr_task_reply")
    KSR.x.exit()
end

function ksr_delayed_404()
    KSR.tm.t_reply(404, "Not found (later)")
end

function ksr_ms_reply()
    KSR.tm.t_reply(202, "Accepted after 100 ms")
end

function ksr_task_reply()
    KSR.tm.t_reply(200, "OK from " .. KSR.async.get_gname())
end

function ksr_task_data(evname)
    KSR.info("task data (" .. evname .. "): " .. KSR.async.get_data() .. "\n")
end
