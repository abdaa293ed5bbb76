import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `KSR.async.sleep` / `ms_sleep` in `ksr_request_route` give the request its server
/// transaction (issue 10): t_reply works after the sleep, retransmissions during the sleep are
/// absorbed, fr_timer answers 408 to a request that sleeps too long.
@Suite("KSR.async sleeps in a request route suspend its transaction")
struct SleepTransactionEndToEndTests {
    static func script(_ port: Int, next: Int = 9) -> String {
        luaShow + """
        coreparam("listen", "udp:127.0.0.1:\(port)")
        coreparam("children", 2)
        coreparam("rpc_listen", "off")
        coreparam("rpc_socket", "off")
        coreparam("async_workers", 1)
        modparam("tm", "fr_timer", 1500)
        modparam("tm", "fr_inv_timer", 1500)
        local function inner(n)
          local mine = "in" .. n
          KSR.async.ms_sleep(60)
          return mine
        end
        local function middle()
          local a = inner(1)
          KSR.async.ms_sleep(40)
          local ok = pcall(function() KSR.async.ms_sleep(30) end)
          local b = inner(2)
          return a .. b .. (ok and "+pcall" or "-pcall")
        end
        function ksr_request_route()
          local u = KSR.pv.get("$rU") or ""
          local ci = KSR.pv.get("$ci")
          if KSR.is_ACK() then
            KSR.async.ms_sleep(50)
            KSR.info("ACK SLEPT " .. ci .. "\\n")
            return
          end
          KSR.info("RUN " .. u .. " " .. ci .. "\\n")
          if u == "treply" then
            local kept = "kept"
            KSR.async.ms_sleep(300)
            show("treply_ret", KSR.tm.t_reply(200, "Slept " .. kept))
            show("treply_again", KSR.tm.t_reply(200, "Twice"))
          elseif u == "retr" then
            KSR.async.ms_sleep(600)
            KSR.tm.t_reply(200, "After retr")
          elseif u == "sippretr" then
            KSR.async.ms_sleep(1000)
            KSR.info("RETR REPLY " .. ci .. "\\n")
            KSR.tm.t_reply(200, "Delayed")
          elseif u == "nested" then
            local r = middle()
            KSR.async.ms_sleep(20)
            KSR.tm.t_reply(200, "Nested " .. r)
          elseif u == "late" then
            KSR.async.ms_sleep(3000)
            KSR.info("LATE REST RAN\\n")
            KSR.tm.t_reply(200, "Too late")
          elseif u == "sl" then
            KSR.async.ms_sleep(200)
            show("sl_ret", KSR.sl.sl_send_reply(200, "SL after sleep"))
          elseif u == "invite" then
            KSR.async.ms_sleep(400)
            KSR.tm.t_reply(486, "Busy after sleep")
          elseif u == "nothing" then
            KSR.async.ms_sleep(100)
            KSR.info("NOTHING DONE " .. ci .. "\\n")
          elseif u == "early" then
            KSR.sl.sl_send_reply(202, "Early")
            KSR.async.ms_sleep(100)
            KSR.info("EARLY AFTER " .. ci .. "\\n")
          elseif u == "tasksleep" then
            KSR.async.task_route("on_task_sleep")
            KSR.x.exit()
          elseif u == "newtran" then
            KSR.tm.t_newtran()
            KSR.async.ms_sleep(200)
            KSR.tm.t_reply(603, "Declined after sleep")
          elseif u == "relay" then
            KSR.async.ms_sleep(200)
            KSR.pv.sets("$du", "sip:127.0.0.1:\(next)")
            show("relay_ret", KSR.tm.t_relay())
          elseif u == "taskrelay" then
            KSR.async.task_route("on_task_relay")
            KSR.x.exit()
          elseif u == "ring" then
            KSR.tm.t_newtran()
            KSR.tm.t_reply(180, "Ringing")
            KSR.async.ms_sleep(200)
            KSR.tm.t_reply(486, "Busy after ringing")
          elseif u == "ringtask" then
            KSR.tm.t_newtran()
            KSR.tm.t_reply(180, "Ringing")
            KSR.async.task_route("on_ring_task")
            KSR.x.exit()
          elseif u == "reload" then
            KSR.async.sleep(5)
            KSR.info("RELOAD REST RAN\\n")
          else
            KSR.sl.sl_send_reply(404, "Unknown " .. u)
          end
        end
        function on_ring_task() KSR.tm.t_reply(486, "Busy after ringing") end
        function on_task_relay()
          KSR.pv.sets("$du", "sip:127.0.0.1:\(next)")
          show("task_relay_ret", KSR.tm.t_relay())
        end
        function on_task_sleep()
          local v = "kept"
          KSR.async.ms_sleep(400)
          KSR.info("TASK WOKE " .. KSR.pv.get("$ci") .. "\\n")
          KSR.tm.t_reply(200, "Task slept " .. v)
        end
        """
    }

    static func request(_ user: String, _ peer: UDPPeer, method: String = "MESSAGE", branch: String = UUID().uuidString) -> String {
        "\(method) sip:\(user)@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:\(peer.port);branch=z9hG4bK-\(branch)\r\n"
            + "From: <sip:t@127.0.0.1>;tag=f-\(branch)\r\nTo: <sip:\(user)@127.0.0.1>\r\nCall-ID: \(branch)\r\n"
            + "CSeq: 1 \(method)\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    }

    /// The ACK of a negative final reply to `invite` (same branch, the reply's To-tag).
    static func ack(for invite: String, reply: String) -> String {
        let toLine = reply.split(separator: "\r\n").first { $0.hasPrefix("To:") }.map(String.init) ?? ""
        return invite.split(separator: "\r\n", omittingEmptySubsequences: false).map { line -> String in
            if line.hasPrefix("INVITE ") { return line.replacingOccurrences(of: "INVITE ", with: "ACK ") }
            if line.hasPrefix("To:") { return toLine }
            if line.hasPrefix("CSeq:") { return "CSeq: 1 ACK" }
            return String(line)
        }.joined(separator: "\r\n")
    }

    static func status(_ reply: String?) -> String {
        reply?.split(separator: "\r\n").first.map(String.init) ?? "no reply"
    }

    /// The next datagram within `seconds`, or nil.
    static func receive(_ peer: UDPPeer, within seconds: Double) -> String? {
        var pfd = pollfd(fd: peer.fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, Int32(seconds * 1000)) > 0 else { return nil }
        return peer.receive()
    }

    @Test func requestsThatSleepHaveATransaction() throws {
        let port = freePort()
        let dir = TempDir()
        let host = try KSR.Running(["run", dir.write("sleep-tm.lua", Self.script(port))])
        #expect(host.waitForStderr(timeout: 20) { $0.contains("started:") })
        let peer = try UDPPeer()

        // Sleep, then t_reply: one 200, with the local kept; nothing else arrives.
        var started = Date()
        peer.send(Self.request("treply", peer), to: port)
        let treply = Self.receive(peer, within: 5)
        #expect(Self.status(treply) == "SIP/2.0 200 Slept kept")
        #expect(Date().timeIntervalSince(started) >= 0.28)
        #expect(Self.receive(peer, within: 0.7) == nil, "a second reply came")

        // A retransmission during a 600 ms sleep is absorbed (a non-INVITE gets nothing before
        // the final reply); the one 200 answers both, and a later retransmission gets it again.
        let retr = Self.request("retr", peer, branch: "retr-\(UUID().uuidString)")
        started = Date()
        peer.send(retr, to: port)
        usleep(200_000)
        peer.send(retr, to: port)
        let retrReply = Self.receive(peer, within: 5)
        #expect(Self.status(retrReply) == "SIP/2.0 200 After retr")
        #expect(Date().timeIntervalSince(started) >= 0.55)
        #expect(Self.receive(peer, within: 0.5) == nil, "the retransmission got its own reply")
        peer.send(retr, to: port)
        #expect(Self.receive(peer, within: 3) == retrReply)

        // Sleeps in a row, in nested Lua functions and inside pcall: the route goes on each time.
        peer.send(Self.request("nested", peer), to: port)
        #expect(Self.status(Self.receive(peer, within: 5)) == "SIP/2.0 200 Nested in1in2+pcall")

        // sl_send_reply after a sleep answers through the transaction: one 200, no 500 after
        // it, and a retransmission gets the same reply without running the script.
        let sl = Self.request("sl", peer, branch: "sl-\(UUID().uuidString)")
        peer.send(sl, to: port)
        let slReply = Self.receive(peer, within: 5)
        #expect(Self.status(slReply) == "SIP/2.0 200 SL after sleep")
        #expect(Self.receive(peer, within: 0.5) == nil, "something answered after sl_send_reply")
        peer.send(sl, to: port)
        #expect(Self.receive(peer, within: 3) == slReply)

        // An INVITE gets tm's 100 at once, a retransmission during the sleep gets the 100
        // again, then the final reply; the ACK of the 486 is absorbed.
        let invite = Self.request("invite", peer, method: "INVITE", branch: "inv-\(UUID().uuidString)")
        started = Date()
        peer.send(invite, to: port)
        #expect(Self.status(Self.receive(peer, within: 3)) == "SIP/2.0 100 trying -- your call is important to us")
        usleep(100_000)
        peer.send(invite, to: port)
        #expect(Self.status(Self.receive(peer, within: 3)) == "SIP/2.0 100 trying -- your call is important to us")
        let busy = Self.receive(peer, within: 5)
        #expect(Self.status(busy) == "SIP/2.0 486 Busy after sleep")
        #expect(Date().timeIntervalSince(started) >= 0.38)
        peer.send(Self.ack(for: invite, reply: busy ?? ""), to: port)
        #expect(Self.receive(peer, within: 0.8) == nil, "the 486 was re-sent after its ACK")

        // A sleep in a resumed async callback suspends the transaction again: a retransmission
        // meanwhile is absorbed (neither route runs again), one 200 answers.
        let task = Self.request("tasksleep", peer, branch: "task-\(UUID().uuidString)")
        peer.send(task, to: port)
        usleep(200_000)
        peer.send(task, to: port)
        #expect(Self.status(Self.receive(peer, within: 5)) == "SIP/2.0 200 Task slept kept")
        #expect(Self.receive(peer, within: 0.5) == nil, "the retransmission got its own reply")

        // t_newtran, then a sleep: the INVITE has had no reply yet, so it gets the 100 (as
        // tm's t_suspend sends it), then the final reply.
        let newtran = Self.request("newtran", peer, method: "INVITE", branch: "nt-\(UUID().uuidString)")
        peer.send(newtran, to: port)
        #expect(Self.status(Self.receive(peer, within: 3)) == "SIP/2.0 100 trying -- your call is important to us")
        let declined = Self.receive(peer, within: 5)
        #expect(Self.status(declined) == "SIP/2.0 603 Declined after sleep")
        peer.send(Self.ack(for: newtran, reply: declined ?? ""), to: port)

        // An INVITE answered 180 already gets no 100 when a sleep or task_route suspends it
        // (Kamailio's t_suspend sends it only while nothing was sent: seen on 5.6.3).
        for user in ["ring", "ringtask"] {
            let ring = Self.request(user, peer, method: "INVITE", branch: "\(user)-\(UUID().uuidString)")
            peer.send(ring, to: port)
            #expect(Self.status(Self.receive(peer, within: 3)) == "SIP/2.0 180 Ringing", "\(user)")
            let final = Self.receive(peer, within: 5)
            #expect(Self.status(final) == "SIP/2.0 486 Busy after ringing", "\(user)")
            peer.send(Self.ack(for: ring, reply: final ?? ""), to: port)
        }

        // A route that ends after a sleep without a final reply: 500, as a resumed async route.
        let nothing = Self.request("nothing", peer, branch: "nothing-\(UUID().uuidString)")
        peer.send(nothing, to: port)
        #expect(Self.status(Self.receive(peer, within: 5)) == "SIP/2.0 500 I'm terribly sorry, server error occurred (1/TM)")

        // Answered statelessly before the sleep: the sleep makes no transaction, no 500 follows.
        peer.send(Self.request("early", peer), to: port)
        #expect(Self.status(Self.receive(peer, within: 3)) == "SIP/2.0 202 Early")
        #expect(host.waitForStderr(timeout: 5) { $0.contains("EARLY AFTER") })
        #expect(Self.receive(peer, within: 0.5) == nil, "a reply followed the stateless 202")

        // An ACK (no transaction) sleeps statelessly as before.
        let ackBranch = "ack-\(UUID().uuidString)"
        peer.send(Self.request("x", peer, method: "ACK", branch: ackBranch), to: port)
        #expect(host.waitForStderr(timeout: 5) { $0.contains("ACK SLEPT \(ackBranch)") })

        // Sleeping past fr_timer (1.5 s): 408, and the rest of the route does not run.
        let late = Self.request("late", peer, branch: "late-\(UUID().uuidString)")
        started = Date()
        peer.send(late, to: port)
        let timeout = Self.receive(peer, within: 5)
        #expect(Self.status(timeout) == "SIP/2.0 408 Request Timeout")
        let waited = Date().timeIntervalSince(started)
        #expect(waited > 1.3 && waited < 2.9, "408 after \(waited) s")
        #expect(host.waitForStderr(timeout: 8) { $0.contains("is not suspended any more") })
        #expect(Self.receive(peer, within: 0.3) == nil)

        host.stop()
        let log = host.stderr
        let r = ScriptRun.parse(log)
        #expect(r["treply_ret"] == "1|number")
        #expect(r["treply_again"] == "-1|number")
        #expect(r["sl_ret"] == "1|number")
        #expect(log.lines(containing: "TASK WOKE").count == 1)
        for user in ["retr", "sl", "invite", "nothing", "tasksleep"] {
            #expect(log.lines(containing: "RUN \(user) ").count == 1, "the route ran more than once for \(user):\n\(log)")
        }
        #expect(log.contains("NOTHING DONE"))
        #expect(!log.contains("LATE REST RAN"))
        #expect(!log.contains("no T-state"))
        #expect(!log.contains("error from Lua"))
    }

    /// The sipp scenario of the ms_route test against a route that sleeps 1 s: the same MESSAGE
    /// twice during the sleep, exactly one 200, then once more and the 200 re-sent.
    @Test func sippRetransmissionsDuringASleepAreAbsorbed() throws {
        let port = freePort()
        let dir = TempDir()
        let host = try KSR.Running(["run", dir.write("sleep-tm.lua", Self.script(port))])
        #expect(host.waitForStderr(timeout: 20) { $0.contains("started:") })
        let scenario = KSR.packageRoot.appendingPathComponent("Tests/EndToEndTests/sipp/message-retrans.xml").path
        let started = Date()
        let (rc, out) = try SIPEndToEndTests.sipp(["127.0.0.1:\(port)", "-sf", scenario, "-s", "sippretr", "-m", "1",
                                                  "-nr", "-p", String(freePort())])
        let elapsed = Date().timeIntervalSince(started)
        #expect(rc == 0, "sipp: \(out)")
        #expect(elapsed > 1.9 && elapsed < 10, "sipp took \(elapsed)")
        #expect(host.stop() == 0)
        let log = host.stderr
        #expect(log.lines(containing: "RUN sippretr").count == 1, "the request route ran more than once:\n\(log)")
        #expect(log.lines(containing: "RETR REPLY").count == 1)
        #expect(!log.contains("error from Lua"))
    }

    /// A reply to a request as a next hop makes it: its Via lines, From, To with a tag,
    /// Call-ID and CSeq.
    static func answer(_ request: String, _ status: String) -> String {
        let lines = request.split(separator: "\r\n").map(String.init)
        let keep = lines.filter { l in ["Via:", "From:", "Call-ID:", "CSeq:"].contains { l.hasPrefix($0) } }
        let to = (lines.first { $0.hasPrefix("To:") } ?? "To: <sip:x@127.0.0.1>") + ";tag=next-hop"
        return "SIP/2.0 \(status)\r\n" + (keep + [to, "Content-Length: 0"]).joined(separator: "\r\n") + "\r\n\r\n"
    }

    /// t_relay after a sleep relays the request and its reply comes back; so does t_relay in a
    /// resumed async callback. Neither gets tm's 500 fallback while the branch is open.
    @Test func relayAfterASleepAndFromAnAsyncCallback() throws {
        let port = freePort()
        let next = try UDPPeer()
        let dir = TempDir()
        let host = try KSR.Running(["run", dir.write("sleep-tm.lua", Self.script(port, next: next.port))])
        #expect(host.waitForStderr(timeout: 20) { $0.contains("started:") })
        let peer = try UDPPeer()
        for user in ["relay", "taskrelay"] {
            let started = Date()
            peer.send(Self.request(user, peer), to: port)
            // (Skipping retransmissions of the previous round's relayed request.)
            var forwarded = Self.receive(next, within: 5)
            while let f = forwarded, !f.hasPrefix("MESSAGE sip:\(user)@") { forwarded = Self.receive(next, within: 5) }
            #expect(forwarded?.hasPrefix("MESSAGE sip:\(user)@127.0.0.1 SIP/2.0\r\n") == true, "\(user): \(Self.status(forwarded))")
            if user == "relay" { #expect(Date().timeIntervalSince(started) >= 0.18) }
            // The next hop answers late: nothing reaches the client before that.
            #expect(Self.receive(peer, within: 0.5) == nil, "\(user): the client was answered before the next hop")
            next.send(Self.answer(forwarded ?? "", "200 Next hop OK"), to: port)
            #expect(Self.status(Self.receive(peer, within: 5)) == "SIP/2.0 200 Next hop OK", "\(user)")
            #expect(Self.receive(peer, within: 0.5) == nil, "\(user): a second reply came")
        }
        #expect(host.stop() == 0)
        let r = ScriptRun.parse(host.stderr)
        #expect(r["relay_ret"] == "1|number")
        #expect(r["task_relay_ret"] == "1|number")
    }

    /// A reload drops the callbacks sleeping in the old script: a request suspended by its
    /// sleep is answered 500 at once (not left to fr_timer), and the host goes on serving.
    @Test func reloadWhileARequestSleeps() throws {
        let port = freePort()
        let dir = TempDir()
        let host = try KSR.Running(["run", dir.write("sleep-tm.lua", Self.script(port))])
        #expect(host.waitForStderr(timeout: 20) { $0.contains("started:") })
        let peer = try UDPPeer()
        peer.send(Self.request("reload", peer), to: port)
        #expect(host.waitForStderr(timeout: 5) { $0.contains("RUN reload") })
        let started = Date()
        kill(host.process.processIdentifier, SIGHUP)
        let reply = Self.receive(peer, within: 4)
        #expect(Self.status(reply) == "SIP/2.0 500 I'm terribly sorry, server error occurred (1/TM)")
        #expect(Date().timeIntervalSince(started) < 3.5)
        #expect(host.waitForStderr(timeout: 5) { $0.contains("are dropped") })
        // Once every worker runs the new script, a request that sleeps is served as before.
        #expect(host.waitForStderr(timeout: 10) { $0.contains("reloaded ") })
        peer.send(Self.request("treply", peer), to: port)
        let after = Self.receive(peer, within: 5)
        #expect(Self.status(after) == "SIP/2.0 200 Slept kept", "\(after ?? "")\n\(host.stderr)")
        #expect(host.stop() == 0)
        #expect(!host.stderr.contains("RELOAD REST RAN"))
    }
}
