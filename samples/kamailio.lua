-- The Lua side of samples/kamailio.cfg.

function ksr_heartbeat(evname)
    KSR.pv.seti("$shv(beats)", KSR.pv.get("$shv(beats)") + 1)
    -- #!define-s of the cfg file are visible through KSR.kx.
    if KSR.kx.ifdef("WITH_EVENTS") then
        KSR.mqueue.mq_add("events", "beat", tostring(KSR.pv.get("$shv(beats)")))
    end
    KSR.info("heartbeat " .. KSR.pv.get("$shv(beats)") .. ", events queued: "
        .. KSR.mqueue.mq_size("events") .. "\n")
end
