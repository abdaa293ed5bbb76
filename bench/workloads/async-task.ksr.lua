-- ksr entry point of the workload async-task. As sip.ksr.lua (port in BENCH_SIP_PORT, rpc off,
-- children=2), UDP only; bench/run's kamailio.cfg adds the modules tm and async for the
-- modparam("async", ...) line and async_workers=2 (core) for the coreparam line.
local port = os.getenv("BENCH_SIP_PORT") or "5060"
coreparam("debug", 2)
coreparam("children", 2)
coreparam("async_workers", 2)
coreparam("rpc_listen", "off")
coreparam("rpc_socket", "off")
coreparam("listen", "udp:127.0.0.1:" .. port)
modparam("async", "ms_timer", 1)

dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "async_task.lua")
