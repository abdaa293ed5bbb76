-- A DMQ node: joins a cluster of KSRHost and/or Kamailio nodes, and shows both ways a script
-- receives messages of its own channels.
--
-- Run two nodes on one machine (each node needs its own IP address: DMQ recognises nodes by IP):
--   NODE=127.0.0.1 ksr run samples/dmq.lua
--   NODE=127.0.0.2 SEED=127.0.0.1 ksr run samples/dmq.lua
-- Then:
--   ksr rpc --url http:127.0.0.1:5064 dmq.list_nodes
--   sipsak/sipp/any client: MESSAGE sip:bcast@127.0.0.2:5060 with a body -> every node logs it
local node = os.getenv("NODE") or "127.0.0.1"
local seed = os.getenv("SEED")

coreparam("listen", "udp:" .. node .. ":5060")
coreparam("children", 2)
coreparam("rpc_listen", "http:" .. node .. ":5064")
coreparam("rpc_socket", "off")

modparam("dmq", "server_address", "sip:" .. node .. ":5060")
if seed then modparam("dmq", "notification_address", "sip:" .. seed .. ":5060") end
modparam("dmq", "ping_interval", 10)
-- KSRHost only: between KSRHost nodes, also ping every 300 ms (a dead peer is noticed in < 1 s).
modparam("dmq", "fast_ping_ms", 300)
-- KSRHost only: KDMQ on channel "chat" go to on_chat() on a DMQ worker.
modparam("dmq", "channel_route", "chat=on_chat")

function ksr_request_route()
    if KSR.is_KDMQ() then
        -- The Kamailio way: a channel handled right here in the request route.
        if KSR.pv.get("$rU") == "notes" then
            KSR.info("note from " .. KSR.pv.get("$fu") .. ": " .. KSR.pv.get("$rb") .. "\n")
            KSR.sl.sl_send_reply(200, "OK")
            return 1
        end
        -- Everything else (membership, "chat", unknown channels: 404) goes to DMQ.
        KSR.dmq.handle_message()
        return 1
    end
    if KSR.is_MESSAGE() then
        local body = KSR.pv.get("$rb")
        KSR.dmq.bcast_message("chat", body, KSR.pv.get("$cT") or "text/plain")
        KSR.dmq.bcast_message("notes", "relayed: " .. body, "text/plain")
        KSR.sl.sl_send_reply(200, "Broadcast")
        return 1
    end
    if not KSR.is_ACK() then KSR.sl.sl_send_reply(405, "Not here") end
end

-- Runs on a DMQ worker (its own Lua state) with the KDMQ request as the current message.
-- Without a reply of its own, the sender gets 200 OK.
function on_chat()
    KSR.info(string.format("chat from %s (%s): %s\n",
        KSR.pv.get("$fu"), KSR.pv.get("$cT") or "no type", KSR.pv.get("$rb")))
end
