-- ksr entry point of workload "rtimer100ms". bench/run copies the coreparam/modparam lines below
-- into the kamailio.cfg it generates, and loads the dofile'd script with app_lua.
coreparam("debug", 2)
modparam("rtimer", "timer", "name=tick;interval=100000u;mode=1;")
modparam("rtimer", "exec", "timer=tick;route=bench_tick")

dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "rtimer.lua")
