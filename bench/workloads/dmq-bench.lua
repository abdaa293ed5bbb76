-- Routing script of every node of the DMQ workloads (dmq-bcast, dmq-route, dmq-fail), shared
-- unchanged by Kamailio 5.6 (app_lua, Lua 5.1, one Lua state per process) and ksr (Lua 5.4,
-- one Lua state per worker). Node A gets the load, B and C receive the broadcasts.
--
--   MESSAGE (from sipp, to A): KSR.dmq.bcast_message("bench", "<tag> <$TV(Sn)>", "text/plain")
--     to every active node, then a stateless 200. <tag> is the R-URI user, which bench/run's
--     scenario sets to "<run>-<call number>": unique per call, so that the receivers can count
--     deliveries per run and spot duplicates.
--   KDMQ on channel "bench" (at B and C): the latency now - <$TV(Sn) of the body> in
--     microseconds is appended as "<tag> <latency>" to a file of this Lua state,
--     $BENCH_DMQ_DIR/dmq.<node>.<pid>-<state>.lat (buffered; flushed every 200 messages), then
--     a stateless 200. A body "flush" (sent by bench/run after a run) flushes the file and is
--     answered "200 FLUSHED <pid>-<state> <count>", so that bench/run knows which states have
--     written everything.
--   KDMQ on any other channel (membership: notification_peer): KSR.dmq.handle_message().
--
-- ksr_bench_channel does the same for the KSRHost-only workload dmq-route, where ksr's
-- modparam("dmq", "channel_route", "bench=ksr_bench_channel") runs it on a DMQ worker
-- (KSR.dmq.handle_message() for every KDMQ; the 200 is sent by ksr unless the function replies).

local dir = os.getenv("BENCH_DMQ_DIR") or "/tmp"
local node = os.getenv("BENCH_DMQ_NODE") or "X"
local via_channel_route = os.getenv("BENCH_DMQ_ROUTE") == "1"
local out, count, id = nil, 0, nil

-- this Lua state: the process id (Kamailio: one state per process) and the address of a
-- table (ksr: several states in one process)
local function state_id()
	if not id then
		id = tostring(KSR.pv.get("$pp") or 0) .. "-"
			.. (string.match(tostring({}), "0x(%x+)") or string.gsub(tostring({}), "%W", ""))
	end
	return id
end

-- records one bench KDMQ; returns the reason phrase of its 200
local function bench_kdmq()
	local now = KSR.pv.get("$TV(Sn)")
	local body = KSR.pv.get("$rb") or ""
	local tag, s1, u1 = string.match(body, "^(%S+) (%d+)%.(%d+)")
	if tag then
		local s2, u2 = string.match(now, "^(%d+)%.(%d+)")
		local lat = (tonumber(s2) - tonumber(s1)) * 1000000 + (tonumber(u2) - tonumber(u1))
		if not out then
			out = io.open(dir .. "/dmq." .. node .. "." .. state_id() .. ".lat", "a")
			out:setvbuf("full", 65536)
		end
		out:write(tag, " ", lat, "\n")
		count = count + 1
		if count % 200 == 0 then out:flush() end
		return "OK"
	end
	if body == "flush" then
		if out then out:flush() end
		return "FLUSHED " .. state_id() .. " " .. count
	end
	return "OK"
end

function ksr_request_route()
	if KSR.is_method("KDMQ") then
		if not via_channel_route and KSR.pv.get("$rU") == "bench" then
			KSR.sl.sl_send_reply(200, bench_kdmq())
		else
			KSR.dmq.handle_message()
		end
		return 1
	end
	if KSR.is_method("MESSAGE") then
		KSR.dmq.bcast_message("bench", KSR.pv.get("$rU") .. " " .. KSR.pv.get("$TV(Sn)"), "text/plain")
		KSR.sl.sl_send_reply(200, "OK")
		return 1
	end
	if not KSR.is_method("ACK") then KSR.sl.sl_send_reply(405, "Method Not Allowed") end
	return 1
end

-- ksr only (dmq-route): run by a DMQ worker for KDMQ on channel "bench"
function ksr_bench_channel()
	local reason = bench_kdmq()
	if reason ~= "OK" then KSR.sl.sl_send_reply(200, reason) end
end
