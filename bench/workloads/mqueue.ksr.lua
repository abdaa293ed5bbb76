-- ksr entry point of workload "mqueue". bench/run copies the coreparam/modparam lines below
-- into the kamailio.cfg it generates, and loads the dofile'd script with app_lua.
coreparam("debug", 2)
modparam("mqueue", "mqueue", "name=q_add0;size=1000")
modparam("mqueue", "mqueue", "name=q_fetch;size=1000")
modparam("mqueue", "mqueue", "name=q_add2;addmode=2")
modparam("rtimer", "timer", "name=bench;interval=1;mode=1;")
modparam("rtimer", "exec", "timer=bench;route=bench_mqueue")

dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "mqueue.lua")
