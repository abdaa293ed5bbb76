-- Workload "async-ms": every request (sipp sends OPTIONS) is suspended with
-- KSR.async.ms_route for 50 ms; the callback answers 200 OK statefully. Kamailio runs the
-- callback in an async worker (core async_workers), ksr on the worker that received the
-- request. The lateness is measured by sipp (response time - 50 ms). Shared by both hosts.

function ksr_request_route()
    KSR.async.ms_route("ksr_bench_async_reply", 50)
    KSR.x.exit()
end

function ksr_bench_async_reply()
    KSR.tm.t_reply(200, "OK")
end
