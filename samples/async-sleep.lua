-- KSR.async.ms_sleep inside ksr_request_route: each OPTIONS is answered 50 ms later, and the
-- worker serves other requests while this one sleeps. Locals survive the sleep.
-- Run:  ksr run samples/async-sleep.lua
-- Try:  sipp 127.0.0.1:5060 -sf samples/sipp/options.xml -m 200 -r 100

coreparam("listen", "udp:127.0.0.1:5060")
coreparam("children", 2)

function ksr_request_route()
    if KSR.is_ACK() then return end
    local callid = KSR.pv.get("$ci")
    local started = tonumber(KSR.pv.get("$TV(Sn)"))
    KSR.async.ms_sleep(50)
    local waited = (tonumber(KSR.pv.get("$TV(Sn)")) - started) * 1000
    KSR.dbg(string.format("%s answered after %.1f ms\n", callid, waited))
    KSR.sl.sl_send_reply(200, "OK")
end
