-- Workloads "sip-udp", "sip-udp-max" and "sip-tcp": every request (sipp sends OPTIONS) is
-- answered statelessly with 200 OK. Shared unchanged by both hosts.

function ksr_request_route()
    KSR.sl.sl_send_reply(200, "OK")
end
