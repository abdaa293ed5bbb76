-- Workload "async-sleep" (ksr only; Kamailio's KEMI has no KSR.async.ms_sleep): every
-- request (sipp sends OPTIONS) sleeps 50 ms without blocking its worker, then is answered
-- statelessly with 200 OK. The lateness is measured by sipp (response time - 50 ms).

function ksr_request_route()
    KSR.async.ms_sleep(50)
    KSR.sl.sl_send_reply(200, "OK")
end
