import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("t_relay through ksr run, with sipp as caller and callee")
struct RelayEndToEndTests {
    static func script(port: Int, uas: Int, dead: Int) -> String {
        luaShow + """
        coreparam("listen", "udp:127.0.0.1:\(port)")
        coreparam("children", 2)
        coreparam("rpc_listen", "off")
        coreparam("rpc_socket", "off")
        modparam("tm", "fr_timer", 1500)
        modparam("tm", "fr_inv_timer", 1500)
        function ksr_request_route()
          local u = KSR.pv.get("$rU")
          if u == "dead" then
            KSR.pv.sets("$du", "sip:127.0.0.1:\(dead)")
            KSR.tm.t_on_failure("on_failure")
          elseif KSR.is_INVITE() or u == "service" then
            KSR.pv.sets("$du", "sip:127.0.0.1:\(uas)")
          end
          if KSR.tm.t_relay() < 0 then KSR.sl.sl_send_reply(500, "Relay failed") end
        end
        function on_failure()
          show("failure_code", KSR.pv.get("$T_reply_code"))
          KSR.tm.t_reply(503, "Next hop down")
        end
        function ksr_reply_route()
          KSR.info("REPLY " .. KSR.pv.get("$rs") .. "\\n")
        end
        """
    }

    @Test func anInviteDialogIsRelayedBetweenTwoSippsAndDeadHopsFail() throws {
        let port = freePort(), uas = freePort(), dead = freePort()
        let dir = TempDir()
        let host = try KSR.Running(["run", dir.write("relay.lua", Self.script(port: port, uas: uas, dead: dead))])
        #expect(host.waitForStderr(timeout: 20) { $0.contains("started:") })

        // The callee: sipp's built-in UAS, in the background, stopped by pid.
        let callee = Process()
        callee.executableURL = URL(fileURLWithPath: "/usr/bin/sipp")
        callee.arguments = ["-sn", "uas", "-p", String(uas), "-i", "127.0.0.1", "-nostdin", "-timeout", "30s", "-m", "5"]
        callee.standardOutput = FileHandle.nullDevice
        callee.standardError = FileHandle.nullDevice
        try callee.run()
        defer { if callee.isRunning { kill(callee.processIdentifier, SIGKILL) } }
        usleep(300_000)

        // The caller: sipp's built-in UAC (INVITE, 180/200, ACK, BYE) through ksr.
        let (rc, out) = try SIPEndToEndTests.sipp(["127.0.0.1:\(port)", "-sn", "uac", "-m", "5", "-r", "5",
                                                  "-p", String(freePort())])
        #expect(rc == 0, "\(out)")
        #expect(host.stderr.contains("REPLY 200"))
        callee.waitUntilExit()

        // A next hop that never answers: the failure route runs with 408 and answers 503.
        let peer = try UDPPeer()
        peer.send("MESSAGE sip:dead@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:\(peer.port);branch=z9hG4bK-dead-1\r\n"
                  + "From: <sip:t@127.0.0.1>;tag=d1\r\nTo: <sip:dead@127.0.0.1>\r\nCall-ID: dead-1\r\n"
                  + "CSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n", to: port)
        let started = Date()
        let reply = peer.receive()
        #expect(reply?.hasPrefix("SIP/2.0 503 Next hop down\r\n") == true, "\(reply ?? "none")")
        #expect(Date().timeIntervalSince(started) > 1.2)
        #expect(host.waitForStderr { $0.contains("RESULT failure_code=408|number") })
        // Max-Forwards 0: 483.
        peer.send("MESSAGE sip:service@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:\(peer.port);branch=z9hG4bK-mf-1\r\n"
                  + "From: <sip:t@127.0.0.1>;tag=m1\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: mf-1\r\n"
                  + "CSeq: 1 MESSAGE\r\nMax-Forwards: 0\r\nContent-Length: 0\r\n\r\n", to: port)
        #expect(peer.receive()?.hasPrefix("SIP/2.0 483 Too Many Hops\r\n") == true)
        #expect(host.stop() == 0)
    }
}
