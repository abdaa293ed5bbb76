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
            if not KSR.is_INVITE() then KSR.tm.t_on_failure("on_failure") end
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
        let calleeHandle = PIDHandle(callee.processIdentifier)
        defer { if callee.isRunning { calleeHandle?.signal(SIGKILL) } }
        usleep(300_000)

        // The caller: sipp's built-in UAC (INVITE, 180/200, ACK, BYE) through ksr.
        let (rc, out) = try SIPEndToEndTests.sipp(["127.0.0.1:\(port)", "-sn", "uac", "-m", "5", "-r", "5",
                                                  "-p", String(freePort())])
        #expect(rc == 0, "\(out)")
        #expect(host.stderr.contains("REPLY 200"))
        callee.waitUntilExit()

        // An INVITE to a next hop that never answers (no failure route for "deadinvite"): sipp
        // gets the 408 after fr_inv_timer and ACKs it.
        let scenario = KSR.packageRoot.appendingPathComponent("Tests/EndToEndTests/sipp/invite-408.xml").path
        let (rc408, out408) = try SIPEndToEndTests.sipp(["127.0.0.1:\(port)", "-sf", scenario, "-m", "2", "-r", "2",
                                                        "-p", String(freePort())])
        #expect(rc408 == 0, "\(out408)")

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

@Suite("t_relay with a hand-made next hop: header changes, replies back, CANCEL")
struct RelayToPeerTests {
    @Test func headersRepliesAndCancel() throws {
        let port = freePort()
        let next = try UDPPeer()
        let dir = TempDir()
        let script = """
            coreparam("listen", "udp:127.0.0.1:\(port)")
            coreparam("children", 2)
            coreparam("rpc_listen", "off")
            coreparam("rpc_socket", "off")
            function ksr_request_route()
              if KSR.is_MESSAGE() then
                KSR.hdr.append("X-Added: yes\\r\\n")
                KSR.hdr.remove("User-Agent")
                KSR.hdr.rminsert("X-Old", "X-New: first\\r\\n")
                KSR.hdr.append_after("X-After-From: 1\\r\\n", "From")
                KSR.hdr.insert_before("X-Before-CSeq: 2\\r\\n", "cseq")
                KSR.tm.t_on_reply("on_reply")
                KSR.tm.t_on_branch("on_branch")
                KSR.info("UA still visible: " .. tostring(KSR.hdr.get("User-Agent")) .. "\\n")
              end
              KSR.pv.sets("$du", "sip:127.0.0.1:\(next.port)")
              KSR.tm.t_relay()
            end
            function on_branch()
              KSR.hdr.append("X-Branch: " .. KSR.pv.get("$ci") .. "\\r\\n")
              KSR.x.exit()
            end
            function ksr_onsend_route()
              if KSR.pv.get("$rs") then
                KSR.info("ONSEND reply " .. KSR.pv.get("$rs") .. "\\n")
              else
                KSR.info("ONSEND " .. KSR.pv.get("$rm") .. " mf=" .. KSR.hdr.get("Max-Forwards") .. "\\n")
              end
            end
            function on_reply() KSR.info("ONREPLY " .. KSR.pv.get("$rs") .. " " .. KSR.pv.get("$ci") .. "\\n") end
            """
        let host = try KSR.Running(["run", dir.write("r.lua", script)])
        #expect(host.waitForStderr(timeout: 20) { $0.contains("started:") })
        let caller = try UDPPeer()

        caller.send("MESSAGE sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:\(caller.port);branch=z9hG4bK-m-1\r\n"
                    + "From: <sip:a@127.0.0.1>;tag=a1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: m-1\r\nCSeq: 1 MESSAGE\r\n"
                    + "Max-Forwards: 10\r\nUser-Agent: caller\r\nX-Old: gone\r\nContent-Length: 0\r\n\r\n", to: port)
        let forwarded = try #require(next.receive())
        #expect(forwarded.hasPrefix("MESSAGE sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:\(port);branch=z9hG4bK"))
        #expect(forwarded.contains("Via: SIP/2.0/UDP 127.0.0.1:\(caller.port);branch=z9hG4bK-m-1"))
        #expect(forwarded.contains("Max-Forwards: 9\r\n"))
        #expect(forwarded.contains("X-Added: yes\r\n"))
        #expect(forwarded.contains("X-Branch: m-1\r\n"))
        #expect(!forwarded.contains("X-Old"))
        #expect(forwarded.contains("From: <sip:a@127.0.0.1>;tag=a1\r\nX-After-From: 1\r\n"))
        #expect(forwarded.contains("X-Before-CSeq: 2\r\nCSeq: 1 MESSAGE\r\n"))
        // Inserted before the request's first header (our new Via then goes on top).
        #expect(forwarded.contains("X-New: first\r\nVia: SIP/2.0/UDP 127.0.0.1:\(caller.port);branch=z9hG4bK-m-1"))
        #expect(!forwarded.contains("User-Agent"))
        #expect(host.waitForStderr { $0.contains("UA still visible: caller") })
        // The next hop answers; the reply reaches the caller with our Via removed.
        let vias = forwarded.split(separator: "\r\n").filter { $0.hasPrefix("Via:") }
        next.send("SIP/2.0 200 OK\r\n" + vias.joined(separator: "\r\n") + "\r\nFrom: <sip:a@127.0.0.1>;tag=a1\r\n"
                  + "To: <sip:bob@127.0.0.1>;tag=b1\r\nCall-ID: m-1\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n", to: port)
        let back = try #require(caller.receive())
        #expect(back.hasPrefix("SIP/2.0 200 OK\r\n"))
        #expect(!back.contains("127.0.0.1:\(port);branch"))
        #expect(host.waitForStderr { $0.contains("ONREPLY 200 m-1") })
        #expect(host.stderr.contains("ONSEND MESSAGE mf=9"))
        #expect(host.stderr.contains("ONSEND reply 200"))
        #expect(!host.stderr.contains("error from Lua"))

        // INVITE, 180 from the next hop, then CANCEL from the caller.
        caller.send("INVITE sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:\(caller.port);branch=z9hG4bK-i-1\r\n"
                    + "From: <sip:a@127.0.0.1>;tag=a2\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: i-1\r\nCSeq: 1 INVITE\r\n"
                    + "Contact: <sip:a@127.0.0.1:\(caller.port)>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n", to: port)
        let invite = try #require(next.receive())
        let ivias = invite.split(separator: "\r\n").filter { $0.hasPrefix("Via:") }.joined(separator: "\r\n")
        let inviteTail = "\r\nFrom: <sip:a@127.0.0.1>;tag=a2\r\nTo: <sip:bob@127.0.0.1>;tag=b2\r\nCall-ID: i-1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        next.send("SIP/2.0 180 Ringing\r\n" + ivias + inviteTail, to: port)
        #expect(caller.receive()?.hasPrefix("SIP/2.0 180 Ringing\r\n") == true)
        caller.send("CANCEL sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:\(caller.port);branch=z9hG4bK-i-1\r\n"
                    + "From: <sip:a@127.0.0.1>;tag=a2\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: i-1\r\nCSeq: 1 CANCEL\r\n"
                    + "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n", to: port)
        #expect(caller.receive()?.hasPrefix("SIP/2.0 200 Canceling\r\n") == true)
        let cancel = try #require(next.receive())
        #expect(cancel.hasPrefix("CANCEL sip:bob@127.0.0.1 SIP/2.0\r\n"))
        #expect(cancel.contains("CSeq: 1 CANCEL"))
        // The next hop ends the INVITE with 487; the caller gets it.
        next.send("SIP/2.0 487 Request Terminated\r\n" + ivias + inviteTail, to: port)
        var got487 = false
        for _ in 0..<3 {
            guard let r = caller.receive() else { break }
            if r.hasPrefix("SIP/2.0 487 Request Terminated\r\n") { got487 = true; break }
        }
        #expect(got487)
        #expect(host.stop() == 0)
    }
}

/// Without ksr_reply_route/ksr_onsend_route, replies are matched on the receiving thread;
/// those with a t_on_reply route still run it on a worker.
@Suite("Replies matched where they arrive")
struct InlineReplyTests {
    @Test func relayedRepliesWithAndWithoutReplyRoute() throws {
        let port = freePort()
        let next = try UDPPeer()
        let dir = TempDir()
        let script = """
            coreparam("listen", "udp:127.0.0.1:\(port)")
            coreparam("children", 2)
            coreparam("rpc_listen", "off")
            coreparam("rpc_socket", "off")
            function ksr_request_route()
              if KSR.pv.get("$rU") == "routed" then KSR.tm.t_on_reply("on_reply") end
              KSR.pv.sets("$du", "sip:127.0.0.1:\(next.port)")
              KSR.tm.t_relay()
            end
            function on_reply()
              KSR.info("ONREPLY " .. KSR.pv.get("$rs") .. " " .. KSR.pv.get("$ci") .. "\\n")
              if KSR.pv.get("$rs") == 180 then KSR.x.drop() end
            end
            """
        let host = try KSR.Running(["run", dir.write("r.lua", script)])
        defer { host.stop() }
        #expect(host.waitForStderr(timeout: 20) { $0.contains("started:") })
        let caller = try UDPPeer()
        for (user, callID) in [("plain", "p-1"), ("routed", "r-1")] {
            caller.send("MESSAGE sip:\(user)@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:\(caller.port);branch=z9hG4bK-\(callID)\r\n"
                        + "From: <sip:a@127.0.0.1>;tag=a1\r\nTo: <sip:\(user)@127.0.0.1>\r\nCall-ID: \(callID)\r\nCSeq: 1 MESSAGE\r\n"
                        + "Max-Forwards: 10\r\nContent-Length: 0\r\n\r\n", to: port)
            let forwarded = try #require(next.receive())
            let vias = forwarded.split(separator: "\r\n").filter { $0.hasPrefix("Via:") }.joined(separator: "\r\n")
            let tail = "\r\nFrom: <sip:a@127.0.0.1>;tag=a1\r\nTo: <sip:\(user)@127.0.0.1>;tag=b1\r\nCall-ID: \(callID)\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n"
            next.send("SIP/2.0 180 Ringing\r\n" + vias + tail, to: port)
            // The 200 goes only once the 180 was handled: sent back to back, the two receivers can
            // take them in either order, and a 180 after the 200 finds the transaction completed.
            var got: [String] = []
            if user == "plain" {
                if let r = caller.receive() { got.append(String(r.split(separator: "\r\n").first ?? "")) }
            } else {
                #expect(host.waitForStderr { $0.contains("ONREPLY 180 r-1") }, "\(host.stderr)")
            }
            next.send("SIP/2.0 200 OK\r\n" + vias + tail, to: port)
            while let r = caller.receive(), got.count < 3 {
                got.append(String(r.split(separator: "\r\n").first ?? ""))
                if r.hasPrefix("SIP/2.0 200") { break }
            }
            // The route dropped the 180 of the routed request; the plain one got both.
            #expect(got == (user == "plain" ? ["SIP/2.0 180 Ringing", "SIP/2.0 200 OK"] : ["SIP/2.0 200 OK"]), "\(user): \(got)")
        }
        #expect(host.waitForStderr { $0.contains("ONREPLY 200 r-1") && $0.contains("ONREPLY 180 r-1") }, "\(host.stderr)")
        #expect(!host.stderr.contains("ONREPLY 200 p-1"))
    }
}

@Suite("t_relay to host names, resolved through the system resolver")
struct RelayToNameTests {
    static func message(_ ruri: String, _ caller: UDPPeer, _ id: String) -> String {
        "MESSAGE \(ruri) SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:\(caller.port);branch=z9hG4bK-\(id)\r\n"
            + "From: <sip:a@127.0.0.1>;tag=\(id)\r\nTo: <\(ruri)>\r\nCall-ID: \(id)\r\nCSeq: 1 MESSAGE\r\n"
            + "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    }

    @Test func localhostInDuAndRURIIsResolvedAndAnUnknownNameFails() throws {
        let port = freePort()
        let next = try UDPPeer()
        let dir = TempDir()
        let script = luaShow + """
            coreparam("listen", "udp:127.0.0.1:\(port)")
            coreparam("children", 2)
            coreparam("rpc_listen", "off")
            coreparam("rpc_socket", "off")
            function ksr_request_route()
              local u = KSR.pv.get("$rU")
              if u == "byname" then
                KSR.pv.sets("$du", "sip:localhost:\(next.port)")
              elseif u == "nxdomain" then
                KSR.pv.sets("$du", "sip:no-such-host.invalid")
              end
              local rc = KSR.tm.t_relay()
              show("relay_" .. u .. "_" .. KSR.pv.get("$ci"), rc)
              if rc < 0 then KSR.sl.sl_send_reply(500, "Relay failed") end
            end
            """
        let host = try KSR.Running(["run", dir.write("names.lua", script)])
        #expect(host.waitForStderr(timeout: 20) { $0.contains("started:") })
        let caller = try UDPPeer()

        // $du names localhost: the request reaches the next hop, its 200 comes back.
        for i in 1...3 {
            caller.send(Self.message("sip:byname@127.0.0.1", caller, "byname-\(i)"), to: port)
            let forwarded = try #require(next.receive(), "request \(i) not relayed:\n\(host.stderr)")
            #expect(forwarded.hasPrefix("MESSAGE sip:byname@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:\(port);branch=z9hG4bK"))
            let vias = forwarded.split(separator: "\r\n").filter { $0.hasPrefix("Via:") }.joined(separator: "\r\n")
            next.send("SIP/2.0 200 OK\r\n" + vias + "\r\nFrom: <sip:a@127.0.0.1>;tag=byname-\(i)\r\n"
                      + "To: <sip:byname@127.0.0.1>;tag=n\(i)\r\nCall-ID: byname-\(i)\r\nCSeq: 1 MESSAGE\r\n"
                      + "Content-Length: 0\r\n\r\n", to: port)
            #expect(caller.receive()?.hasPrefix("SIP/2.0 200 OK\r\n") == true)
        }
        // No $du: the R-URI's host is the name.
        let ruri = "sip:ruri@localhost:\(next.port)"
        caller.send(Self.message(ruri, caller, "ruri-1"), to: port)
        let forwarded = try #require(next.receive(), "R-URI request not relayed:\n\(host.stderr)")
        #expect(forwarded.hasPrefix("MESSAGE \(ruri) SIP/2.0\r\n"))

        // A name that does not resolve: t_relay returns -1, the log names the host, no crash.
        caller.send(Self.message("sip:nxdomain@127.0.0.1", caller, "nx-1"), to: port)
        #expect(caller.receive()?.hasPrefix("SIP/2.0 500 Relay failed\r\n") == true)
        caller.send(Self.message("sip:nxdomain@127.0.0.1", caller, "nx-2"), to: port)
        #expect(caller.receive()?.hasPrefix("SIP/2.0 500 Relay failed\r\n") == true)
        #expect(host.waitForStderr { $0.contains("RESULT relay_nxdomain_nx-2=") })
        #expect(host.stop() == 0)
        let r = ScriptRun.parse(host.stderr)
        for i in 1...3 { #expect(r["relay_byname_byname-\(i)"] == "1|number") }
        #expect(r["relay_ruri_ruri-1"] == "1|number")
        #expect(r["relay_nxdomain_nx-1"] == "-1|number")
        #expect(r["relay_nxdomain_nx-2"] == "-1|number")
        let failures = host.stderr.lines(containing: "no-such-host.invalid")
        #expect(failures.count == 2, "\(host.stderr)")
        #expect(failures.allSatisfy { $0.contains("tm: t_relay: cannot resolve \"no-such-host.invalid\"") })
        #expect(!host.stderr.contains("does not resolve names"))
        #expect(!host.stderr.contains("error from Lua"))
    }
}
