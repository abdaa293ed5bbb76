-- Stateless SIP sample: answer OPTIONS keepalives with 200, everything else with 404.
-- Run:  ksr run samples/stateless.lua
-- Try:  sipp 127.0.0.1:5060 -sf samples/sipp/options.xml -m 100 -r 50

coreparam("listen", "udp:127.0.0.1:5060")
coreparam("listen", "tcp:127.0.0.1:5060")
coreparam("children", 2)

function ksr_request_route()
    if KSR.is_OPTIONS() then
        KSR.hdr.append_to_reply("Allow: OPTIONS, MESSAGE\r\n")
        KSR.sl.sl_send_reply(200, "Keepalive")
        return
    end
    if KSR.is_ACK() then return end
    KSR.info(KSR.pv.get("$rm") .. " from " .. KSR.pv.get("$si") .. ":" .. KSR.pv.get("$sp")
        .. " for " .. KSR.pv.get("$ru") .. "\n")
    KSR.sl.sl_send_reply(404, "Not here")
end
