-- KSRHost's script, installed by scripts/install as PREFIX/etc/ksr/ksr.lua (kept on reinstall).
-- kamailio.cfg next to it loads it. Edit, then `systemctl reload ksr`.

-- rtimer "status" (every second): a line at the first tick, then every 600 ticks.
function ksr_status(evname)
    local ticks = KSR.pv.get("$shv(status_ticks)") + 1
    KSR.pv.seti("$shv(status_ticks)", ticks)
    if ticks == 1 or ticks % 600 == 0 then
        KSR.info("ksr status: up " .. ticks .. " s\n")
    end
end

-- SIP requests, once a listen line in kamailio.cfg is uncommented: keepalives (OPTIONS) get
-- a 200, an ACK is absorbed, anything else is logged and refused.
function ksr_request_route()
    if KSR.is_OPTIONS() then
        KSR.sl.sl_send_reply(200, "OK")
        return
    end
    if KSR.is_ACK() then return end
    KSR.info("refused " .. KSR.pv.get("$rm") .. " from " .. KSR.pv.get("$si") .. " for " .. KSR.pv.get("$ru") .. "\n")
    KSR.sl.sl_send_reply(403, "Forbidden")
end
