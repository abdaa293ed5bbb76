-- KEMI (Lua 5.1, Kamailio app_lua) routing script of a real Kamailio DMQ
-- node in the end-to-end tests (see KamailioNode.swift). Adapted from the
-- loopback DMQ harness.
--
-- Node identity and the script channels come from shared variables set in
-- the cfg: $shv(node), $shv(self), $shv(chans) (comma-separated; change at
-- run time with `kamcmd pv.shvSet chans str app,other`).
--
-- What it does:
--   * every KDMQ request: one DMQTEST-KDMQ line, then
--       - channel in $shv(chans) -> one DMQTEST-APP line, 200 OK (sl), no
--         body (test hook: a body starting "reply-with-body:" makes the 200
--         carry the rest of the body as text/plain),
--       - any other channel      -> KSR.dmq.handle_message()
--   * MESSAGE from a DMQ node (KSR.dmq.is_from_node() > 0): a copy made by
--     t_replicate: one DMQTEST-REPLICA line, 200 OK.
--   * MESSAGE from anyone else is a trigger; the R-URI user names the action:
--       bcast      KSR.dmq.bcast_message(X-Dmq-Channel or "app", body, ct)
--       unicast    KSR.dmq.send_message(X-Dmq-Channel or "app",
--                                       X-Dmq-Target, body, ct)
--       replicate  KSR.dmq.t_replicate()
--     answered (statelessly) 200 when the function returned >= 0, else 500;
--     one DMQTEST-TRIGGER line.
--   * every received reply: one DMQTEST-REPLY line (ksr_reply_route).
--
-- Log lines are "DMQTEST-<KIND> key=value key=value ..." with every value
-- percent-encoded (anything but [A-Za-z0-9-._~:/@;+]), so a line is one line
-- whatever the message held.

local function pv(name)
	local v = KSR.pv.get(name)
	if v == nil then return "" end
	return tostring(v)
end

local function enc(s)
	s = tostring(s or "")
	return (string.gsub(s, "[^%w%-%._~:/@;+]", function(c)
		return string.format("%%%02X", string.byte(c))
	end))
end

local function line(kind, fields)
	local parts = { "DMQTEST-" .. kind, "node=" .. enc(pv("$shv(node)")) }
	for i = 1, #fields, 2 do
		parts[#parts + 1] = fields[i] .. "=" .. enc(fields[i + 1])
	end
	KSR.info(table.concat(parts, " ") .. "\n")
end

local function is_script_channel(chan)
	local chans = "," .. pv("$shv(chans)") .. ","
	return chan ~= "" and string.find(chans, "," .. chan .. ",", 1, true) ~= nil
end

local function dmq_route()
	local chan = pv("$rU")
	local common = {
		"chan", chan, "ruri", pv("$ru"), "from", pv("$fu"), "ct", pv("$cT"),
		"src", pv("$si"), "sport", pv("$sp"), "mf", pv("$hdr(Max-Forwards)"),
		"fromnode", tostring(KSR.dmq.is_from_node()), "body", pv("$rb"),
	}
	line("KDMQ", common)
	if is_script_channel(chan) then
		line("APP", common)
		local b = pv("$rb")
		if string.sub(b, 1, 16) == "reply-with-body:" then
			KSR.textops.set_reply_body(string.sub(b, 17) .. "\r\n", "text/plain")
		end
		KSR.sl.sl_send_reply(200, "OK")
		return 1
	end
	-- the dmq module answers (200/202/404/...) from a DMQ worker process
	KSR.dmq.handle_message()
	return 1
end

local function trigger_route()
	local action = pv("$rU")
	local chan = KSR.pv.get("$hdr(X-Dmq-Channel)") or "app"
	local ct = pv("$cT")
	if ct == "" then ct = "text/plain" end
	local body = pv("$rb")
	local rc
	if action == "bcast" then
		rc = KSR.dmq.bcast_message(chan, body, ct)
	elseif action == "unicast" then
		local target = KSR.pv.get("$hdr(X-Dmq-Target)") or ""
		rc = KSR.dmq.send_message(chan, target, body, ct)
	elseif action == "replicate" then
		rc = KSR.dmq.t_replicate()
		line("TRIGGER", { "action", action, "chan", "", "rc", tostring(rc) })
		-- Answered statelessly: a 200 from a node to the copy may complete the
		-- transaction before this line runs, and tm then refuses a t_reply
		-- ("can't generate 200 reply when a final 200 was sent out").
		if rc >= 0 then
			KSR.sl.sl_send_reply(200, "OK replicated")
		else
			KSR.sl.sl_send_reply(500, "t_replicate failed")
		end
		return 1
	else
		KSR.sl.sl_send_reply(404, "Unknown action")
		return 1
	end
	line("TRIGGER", { "action", action, "chan", chan, "rc", tostring(rc) })
	if rc >= 0 then
		KSR.sl.sl_send_reply(200, "OK " .. action)
	else
		KSR.sl.sl_send_reply(500, action .. " failed")
	end
	return 1
end

function ksr_request_route()
	if KSR.is_method("KDMQ") then
		return dmq_route()
	end
	if KSR.is_method("ACK") then
		return 1
	end
	if KSR.is_method("MESSAGE") then
		if KSR.dmq.is_from_node() > 0 then
			line("REPLICA", {
				"method", pv("$rm"), "chan", pv("$rU"), "ruri", pv("$ru"), "from", pv("$fu"),
				"ct", pv("$cT"), "src", pv("$si"), "sport", pv("$sp"),
				"mf", pv("$hdr(Max-Forwards)"), "body", pv("$rb"),
			})
			KSR.sl.sl_send_reply(200, "OK replica received")
			return 1
		end
		return trigger_route()
	end
	KSR.sl.sl_send_reply(405, "Method not handled here")
	return 1
end

function ksr_reply_route()
	line("REPLY", {
		"status", pv("$rs"), "reason", pv("$rr"), "cseq", pv("$cs"), "method", pv("$rm"),
		"src", pv("$si"), "sport", pv("$sp"), "body", pv("$rb"),
	})
	return 1
end
