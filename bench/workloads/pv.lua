-- Workload "pv": cost of KSR.pv.get("$var(x)") and KSR.pv.seti("$var(x)", i).
-- Shared unchanged by both hosts: ksr loads it from pv.ksr.lua, Kamailio with app_lua "load".
-- Runs once, in the first call of the rtimer callback bench_pv. Written for Lua 5.1 and 5.4.
-- Environment: BENCH_PV_N calls per loop (default 2000000), BENCH_ROUNDS (default 3, best kept).

local N = tonumber(os.getenv("BENCH_PV_N") or "") or 2000000
local ROUNDS = tonumber(os.getenv("BENCH_ROUNDS") or "") or 3
local done = false

local function now()
    return tonumber(KSR.pv.get("$TV(Sn)"))
end

local function report(name, value)
    KSR.info(string.format("BENCH %s %.3f\n", name, value))
end

function bench_pv(evname)
    if done then return end
    done = true
    KSR.pv.seti("$var(x)", 1)
    local best_base, best_get, best_seti = math.huge, math.huge, math.huge
    for r = 1, ROUNDS do
        local t0 = now()
        for i = 1, N do end
        local t1 = now()
        for i = 1, N do KSR.pv.get("$var(x)") end
        local t2 = now()
        for i = 1, N do KSR.pv.seti("$var(x)", i) end
        local t3 = now()
        best_base = math.min(best_base, t1 - t0)
        best_get = math.min(best_get, t2 - t1)
        best_seti = math.min(best_seti, t3 - t2)
    end
    if KSR.pv.get("$var(x)") ~= N then
        KSR.err("BENCH error $var(x) is " .. tostring(KSR.pv.get("$var(x)")) .. ", expected " .. N .. "\n")
    end
    report("pv_n", N)
    report("pv_loop_ns", best_base / N * 1e9)
    report("pv_get_ns", (best_get - best_base) / N * 1e9)
    report("pv_seti_ns", (best_seti - best_base) / N * 1e9)
    KSR.info("BENCH done 1\n")
end
