import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Transactions and async suspend/resume with real requests")
struct TransactionEndToEndTests {
    static func script(_ port: Int) -> String {
        luaShow + """
        coreparam("listen", "udp:127.0.0.1:\(port)")
        coreparam("children", 2)
        coreparam("async_workers", 2)
        coreparam("async_workers_group", "name=grp;workers=1")
        coreparam("rpc_listen", "off")
        coreparam("rpc_socket", "off")
        modparam("async", "ms_timer", 1)
        modparam("tm", "fr_timer", 1500)
        function ksr_request_route()
          if KSR.is_ACK() then return end
          local u = KSR.pv.get("$rU")
          KSR.pv.sets("$var(user)", u)
          if u == "newtran" then
            KSR.pv.seti("$shv(runs)", KSR.pv.get("$shv(runs)") + 1)
            show("newtran_ret", KSR.tm.t_newtran())
            show("t_reply_ret", KSR.tm.t_reply(200, "Stateful"))
            show("t_reply_again", KSR.tm.t_reply(200, "Again"))
            return
          end
          if u == "noreply" then
            show("t_reply_without_tran", KSR.tm.t_reply(200, "x"))
            KSR.sl.sl_send_reply(404, "Stateless")
            return
          end
          if u == "task" then show("task_ret", KSR.async.task_route("on_task")) KSR.x.exit() end
          if u == "group" then KSR.async.task_group_route("on_group", "grp") KSR.x.exit() end
          if u == "ms" then
            KSR.pv.sets("$var(t0)", KSR.pv.get("$TV(Sn)"))
            KSR.async.ms_route("on_ms", 200)
            KSR.x.exit()
          end
          if u == "route" then KSR.async.route("on_route", 1) KSR.x.exit() end
          if u == "retr" then
            KSR.info("RETR RUN " .. KSR.pv.get("$ci") .. "\\n")
            KSR.tm.t_newtran()
            KSR.async.ms_route("on_retr", 1000)
            KSR.x.exit()
          end
          if u == "nothing" then KSR.async.task_route("on_nothing") KSR.x.exit() end
          if u == "timeout" then KSR.async.ms_route("on_late", 4000) KSR.x.exit() end
          if u == "badgroup" then
            show("badgroup_ret", KSR.async.task_group_route("on_task", "nosuch"))
            KSR.sl.sl_send_reply(503, "No group")
            return
          end
          KSR.sl.sl_send_reply(404, "Unknown " .. u)
        end
        function on_task(...)
          show("task_nargs", select('#', ...))
          show("task_ru", KSR.pv.get("$ru"))
          KSR.tm.t_reply(200, "Task on " .. KSR.async.get_gname())
        end
        function on_group() KSR.sl.send_reply(202, "Group " .. KSR.async.get_gname()) end
        function on_ms() KSR.tm.t_reply(200, "Ms route") end
        function on_route() KSR.tm.t_reply(200, "Route") end
        function on_retr()
          KSR.info("RETR REPLY " .. KSR.pv.get("$ci") .. "\\n")
          KSR.tm.t_reply(200, "Delayed")
        end
        function on_nothing() KSR.info("NOTHING RAN\\n") end
        function on_late() KSR.info("LATE RAN\\n") end
        """
    }

    static func request(_ user: String, _ peer: UDPPeer, branch: String = UUID().uuidString) -> String {
        "MESSAGE sip:\(user)@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:\(peer.port);branch=z9hG4bK-\(branch)\r\n"
            + "From: <sip:t@127.0.0.1>;tag=f-\(branch)\r\nTo: <sip:\(user)@127.0.0.1>\r\nCall-ID: \(branch)\r\n"
            + "CSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    }

    static func status(_ reply: String?) -> String {
        reply?.split(separator: "\r\n").first.map(String.init) ?? "no reply"
    }

    @Test func transactionsAndAsyncContinuations() throws {
        let port = freePort()
        let dir = TempDir()
        let host = try KSR.Running(["run", dir.write("tm.lua", Self.script(port))])
        #expect(host.waitForStderr(timeout: 20) { $0.contains("started:") })
        let peer = try UDPPeer()

        // t_newtran + t_reply; the retransmission is absorbed and answered with the same bytes.
        let req = Self.request("newtran", peer, branch: "retrans-1")
        peer.send(req, to: port)
        let first = peer.receive()
        #expect(Self.status(first) == "SIP/2.0 200 Stateful")
        peer.send(req, to: port)
        let again = peer.receive()
        #expect(again == first)

        peer.send(Self.request("noreply", peer), to: port)
        #expect(Self.status(peer.receive()) == "SIP/2.0 404 Stateless")

        for (user, expected) in [("task", "SIP/2.0 200 Task on default"), ("group", "SIP/2.0 202 Group grp"),
                                 ("ms", "SIP/2.0 200 Ms route"), ("route", "SIP/2.0 200 Route"),
                                 ("nothing", "SIP/2.0 500 I'm terribly sorry, server error occurred (1/TM)"),
                                 ("badgroup", "SIP/2.0 503 No group")] {
            let started = Date()
            peer.send(Self.request(user, peer), to: port)
            let reply = peer.receive()
            #expect(Self.status(reply) == expected, "\(user)")
            let elapsed = Date().timeIntervalSince(started)
            if user == "ms" { #expect(elapsed >= 0.19 && elapsed < 2, "ms_route took \(elapsed)") }
            if user == "route" { #expect(elapsed >= 0.9 && elapsed < 3, "route took \(elapsed)") }
        }
        // A suspended INVITE is answered 100 at once, as by Kamailio's tm.
        peer.send(Self.request("task", peer).replacingOccurrences(of: "MESSAGE", with: "INVITE"), to: port)
        #expect(Self.status(peer.receive()) == "SIP/2.0 100 trying -- your call is important to us")
        #expect(Self.status(peer.receive()) == "SIP/2.0 200 Task on default")

        // The same through sipp: task_route, ms_route and route, 10 calls each, all answered 200.
        for user in ["task", "ms", "route"] {
            let (rc, out) = try SIPEndToEndTests.sipp(["127.0.0.1:\(port)", "-sf", SIPEndToEndTests.optionsScenario,
                                                      "-s", user, "-m", "10", "-r", "20", "-p", String(freePort())])
            #expect(rc == 0, "sipp \(user): \(out)")
        }

        // A suspension longer than fr_timer: 408, and the late continuation does not run.
        peer.send(Self.request("timeout", peer), to: port)
        let started = Date()
        #expect(Self.status(peer.receive()) == "SIP/2.0 408 Request Timeout")
        #expect(Date().timeIntervalSince(started) > 1.2)
        #expect(host.waitForStderr(timeout: 8) { $0.contains("transaction is not suspended") })
        #expect(!host.stderr.contains("LATE RAN"))
        host.stop()
        let r = ScriptRun.parse(host.stderr)
        #expect(r["newtran_ret"] == "1|number")
        #expect(r["t_reply_ret"] == "1|number")
        #expect(r["t_reply_again"] == "-1|number")
        #expect(r["t_reply_without_tran"] == "-1|number")
        #expect(r["task_ret"] == "0|number")
        #expect(r["task_nargs"] == "0|number")
        #expect(r["task_ru"]?.hasPrefix("sip:task@127.0.0.1") == true)
        #expect(r["badgroup_ret"] == "-1|number")
        #expect(host.stderr.contains("NOTHING RAN"))
        #expect(host.stderr.lines(containing: "RESULT newtran_ret").count == 1)  // the retransmission did not run the script
        #expect(host.stderr.contains("async group [nosuch] not found"))
    }

    /// sipp sends the same MESSAGE (same branch) twice while the script holds it pending
    /// (t_newtran + ms_route 1 s), expects exactly one 200, then sends it once more and expects
    /// the 200 re-sent. `-nr` keeps sipp from answering the re-sent 200 with its own copy of the
    /// request (an endless ping-pong); every wait in the scenario is bounded.
    @Test func sippRetransmissionsAreAbsorbedAndTheFinalReplyIsResent() throws {
        let port = freePort()
        let dir = TempDir()
        let host = try KSR.Running(["run", dir.write("tm.lua", Self.script(port))])
        #expect(host.waitForStderr(timeout: 20) { $0.contains("started:") })
        let scenario = KSR.packageRoot.appendingPathComponent("Tests/EndToEndTests/sipp/message-retrans.xml").path
        let started = Date()
        let (rc, out) = try SIPEndToEndTests.sipp(["127.0.0.1:\(port)", "-sf", scenario, "-s", "retr", "-m", "1",
                                                  "-nr", "-p", String(freePort())])
        let elapsed = Date().timeIntervalSince(started)
        #expect(rc == 0, "sipp: \(out)")
        // 1 s held by ms_route, 500 ms after each 200 making sure no second one comes.
        #expect(elapsed > 1.9 && elapsed < 10, "sipp took \(elapsed)")
        #expect(host.waitForStderr(timeout: 5) { $0.contains("RETR REPLY") })
        #expect(host.stop() == 0)
        let log = host.stderr
        #expect(log.lines(containing: "RETR RUN").count == 1, "the request route ran more than once:\n\(log)")
        #expect(log.lines(containing: "RETR REPLY").count == 1)
        #expect(!log.contains("error from Lua"))
    }
}
