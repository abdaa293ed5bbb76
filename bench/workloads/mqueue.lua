-- Workload "mqueue": throughput of KSR.mqueue.* on three queues.
--   q_add0  size=1000, addmode 0: mq_add with 1000 cycling keys (the oldest item drops out)
--   q_fetch size=1000: fill with 1000 items, then drain with mq_fetch + mqk_get + mqv_get; both
--           timed apart, the loop stops when fill + drain reach the budget
--   q_add2  addmode 2, 20000 distinct keys: prefill once (untimed), then mq_add cycling the keys,
--           every add replacing the item with the same key; then the same with the keys in a
--           fixed pseudo-random order (cycling in insertion order means the key sought is always
--           the oldest item, at the head of the queue: a best case for a linear search)
-- Each measurement runs chunks of 1000 operations until BENCH_MQ_SECONDS (default 2) of timed
-- work have passed; the 20000-key prefill is timed and reported but not budgeted. Shared unchanged by both hosts; Lua 5.1 and 5.4.

local BUDGET = tonumber(os.getenv("BENCH_MQ_SECONDS") or "") or 2
local CHUNK = 1000
local NKEYS2 = 20000
local done = false

local function now()
    return tonumber(KSR.pv.get("$TV(Sn)"))
end

local function report(name, value)
    KSR.info(string.format("BENCH %s %.3f\n", name, value))
end

function bench_mqueue(evname)
    if done then return end
    done = true
    local keys = {}
    for i = 1, CHUNK do keys[i] = "key-" .. i end
    local keys2 = {}
    for i = 1, NKEYS2 do keys2[i] = "key-" .. i end

    -- 1. mq_add, addmode 0, bounded queue
    local ops, el = 0, 0
    repeat
        local t0 = now()
        for i = 1, CHUNK do KSR.mqueue.mq_add("q_add0", keys[i], "value") end
        el = el + (now() - t0)
        ops = ops + CHUNK
    until el >= BUDGET
    report("mq_add0_ops", ops / el)
    report("mq_add0_size", KSR.mqueue.mq_size("q_add0"))

    -- 2. mq_fetch + mqk_get + mqv_get; the fill is timed apart (mq_add into an emptied queue)
    ops, el = 0, 0
    local miss, fill_el = 0, 0
    repeat
        local t0 = now()
        for i = 1, CHUNK do KSR.mqueue.mq_add("q_fetch", keys[i], "value") end
        fill_el = fill_el + (now() - t0)
        t0 = now()
        for i = 1, CHUNK do
            if KSR.mqueue.mq_fetch("q_fetch") == 1 then
                local k = KSR.mqueue.mqk_get("q_fetch")
                local v = KSR.mqueue.mqv_get("q_fetch")
            else
                miss = miss + 1
            end
        end
        el = el + (now() - t0)
        ops = ops + CHUNK
    until el + fill_el >= BUDGET
    report("mq_fetch_ops", ops / el)
    report("mq_fill_ops", ops / fill_el)
    report("mq_fetch_miss", miss)

    -- 3. mq_add, addmode 2 (keep newest per key), 20000 distinct keys
    local t0 = now()
    for i = 1, NKEYS2 do KSR.mqueue.mq_add("q_add2", keys2[i], "value") end
    report("mq_add2_prefill_s", now() - t0)
    ops, el = 0, 0
    local j = 0
    repeat
        t0 = now()
        for i = 1, CHUNK do
            j = j + 1
            if j > NKEYS2 then j = 1 end
            KSR.mqueue.mq_add("q_add2", keys2[j], "value")
        end
        el = el + (now() - t0)
        ops = ops + CHUNK
    until el >= BUDGET
    report("mq_add2_ops", ops / el)
    report("mq_add2_size", KSR.mqueue.mq_size("q_add2"))

    -- 4. the same queue, keys in a pseudo-random order (Park-Miller: exact in Lua 5.1 doubles too)
    local order, x = {}, 12345
    for i = 1, NKEYS2 do
        x = (x * 16807) % 2147483647
        order[i] = keys2[(x % NKEYS2) + 1]
    end
    ops, el, j = 0, 0, 0
    repeat
        t0 = now()
        for i = 1, CHUNK do
            j = j + 1
            if j > NKEYS2 then j = 1 end
            KSR.mqueue.mq_add("q_add2", order[j], "value")
        end
        el = el + (now() - t0)
        ops = ops + CHUNK
    until el >= BUDGET
    report("mq_add2r_ops", ops / el)
    report("mq_add2r_size", KSR.mqueue.mq_size("q_add2"))
    KSR.info("BENCH done 1\n")
end
