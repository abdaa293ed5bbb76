-- ksr entry point of the SIP workloads (sip-udp, sip-udp-max, sip-tcp). bench/run picks a
-- port free for UDP and TCP and passes it in BENCH_SIP_PORT; for Kamailio it turns the listen
-- lines into listen=udp:127.0.0.1:<port> and listen=tcp:127.0.0.1:<port>, copies the other
-- coreparam lines except rpc_* (ksr's control plane, off here so runs cannot clash on its
-- default ports) and loads the dofile'd script with app_lua.
local port = os.getenv("BENCH_SIP_PORT") or "5060"
coreparam("debug", 2)
coreparam("children", 2)
coreparam("rpc_listen", "off")
coreparam("rpc_socket", "off")
coreparam("listen", "udp:127.0.0.1:" .. port)
coreparam("listen", "tcp:127.0.0.1:" .. port)

dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "sip.lua")
