-- ksr entry of a KSRHost node of the DMQ workloads (dmq-bcast, dmq-route, dmq-fail); the
-- Kamailio nodes get the same settings from dmq-node.cfg.in. bench/run passes, per node:
--   BENCH_DMQ_IP, BENCH_DMQ_PORT   the node's UDP socket (127.0.0.31/32/33, one port for all)
--   BENCH_DMQ_RPC_PORT             ksr's HTTP control port on the same IP (dmq.list_nodes)
--   BENCH_DMQ_NOTIFY               notification_address (A's URI on B and C; empty on A)
--   BENCH_DMQ_FAST_PING_MS         dmq fast_ping_ms (dmq-fail; unset or 0: off)
--   BENCH_DMQ_FAST_TIMEOUT_MS      dmq fast_timeout_ms (unset or 0: ksr's default, 2 x ping)
--   BENCH_DMQ_ROUTE                "1": KDMQ on channel "bench" goes to the Lua function
--                                  ksr_bench_channel through modparam("dmq", "channel_route")
-- and, read by dmq-bench.lua, BENCH_DMQ_DIR and BENCH_DMQ_NODE.
local ip = os.getenv("BENCH_DMQ_IP") or "127.0.0.31"
local port = os.getenv("BENCH_DMQ_PORT") or "5301"
local notify = os.getenv("BENCH_DMQ_NOTIFY") or ""
local fast_ping = tonumber(os.getenv("BENCH_DMQ_FAST_PING_MS") or "0") or 0
local fast_timeout = tonumber(os.getenv("BENCH_DMQ_FAST_TIMEOUT_MS") or "0") or 0

coreparam("debug", 2)
coreparam("children", 2)
coreparam("listen", "udp:" .. ip .. ":" .. port)
coreparam("rpc_listen", "http:" .. ip .. ":" .. (os.getenv("BENCH_DMQ_RPC_PORT") or "6301"))
coreparam("rpc_socket", "off")
modparam("tm", "fr_timer", 3000)
modparam("dmq", "server_address", "sip:" .. ip .. ":" .. port)
if notify ~= "" then modparam("dmq", "notification_address", notify) end
modparam("dmq", "ping_interval", 5)
modparam("dmq", "num_workers", 2)
if fast_ping > 0 then modparam("dmq", "fast_ping_ms", fast_ping) end
if fast_timeout > 0 then modparam("dmq", "fast_timeout_ms", fast_timeout) end
if os.getenv("BENCH_DMQ_ROUTE") == "1" then modparam("dmq", "channel_route", "bench=ksr_bench_channel") end

dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "dmq-bench.lua")
