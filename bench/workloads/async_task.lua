-- Workload "async-task": every request (sipp sends OPTIONS) is handed to an async worker
-- with KSR.async.task_route (which creates and suspends its transaction); the callback,
-- run by an async worker, answers 200 OK statefully. Shared unchanged by both hosts.

function ksr_request_route()
    KSR.async.task_route("ksr_bench_async_reply")
    KSR.x.exit()
end

function ksr_bench_async_reply()
    KSR.tm.t_reply(200, "OK")
end
