-- ksr entry point of workload "idle" (the timers of samples/rtimer.lua). bench/run copies the
-- coreparam/modparam lines below into the kamailio.cfg it generates, and loads the dofile'd
-- script with app_lua.
coreparam("debug", 2)
modparam("rtimer", "timer", "name=slow;interval=2;mode=0;")
modparam("rtimer", "exec", "timer=slow;route=bench_idle_slow")
modparam("rtimer", "timer", "name=ta;interval=1;mode=2;")
modparam("rtimer", "exec", "timer=ta;route=bench_idle_ta")
modparam("rtimer", "timer", "name=fast;interval=500000u;mode=1;")
modparam("rtimer", "exec", "timer=fast;route=bench_idle_fast")

dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "idle.lua")
