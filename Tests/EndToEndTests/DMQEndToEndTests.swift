import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// KSRHost nodes in DMQ clusters with real Kamailio 5.6 nodes: membership, messages both ways,
/// t_replicate, failure and rejoin. Every process is started and stopped by pid, on 127.0.0.x.
@Suite("DMQ with Kamailio", .serialized)
struct DMQInteropTests {
    /// Every node lists every node of `nodes` as active.
    static func converged(_ nodes: [any DMQTestNode], timeout: Double) -> Bool {
        KamailioNode.wait(timeout: timeout) {
            nodes.allSatisfy { n in
                guard let list = try? n.listNodes() else { return false }
                return nodes.allSatisfy { m in list.status(host: m.ip, port: m.port) == "active" }
            }
        }
    }

    static func describe(_ nodes: [any DMQTestNode]) -> String {
        nodes.map { n in "\(n.name): " + ((try? n.listNodes())?.map(\.description).joined(separator: " ") ?? "no answer") }
            .joined(separator: "\n")
    }

    @Test("2 Kamailio + 1 KSRHost: converge, messages both ways, 404, t_replicate, crash and rejoin")
    func twoKamailioOneKSRHost() throws {
        let k1 = try KamailioNode(name: "k1", ip: "127.0.0.41")
        let k2 = try KamailioNode(name: "k2", ip: "127.0.0.42", notificationAddresses: [k1.uri])
        let s3 = try KSRDMQNode(name: "s3", ip: "127.0.0.43", notificationAddresses: [k1.uri])
        defer { s3.stop(); k2.stop(); k1.stop() }
        try k1.start()
        try k2.start()
        try s3.start()
        let all: [any DMQTestNode] = [k1, k2, s3]
        // Within two ping intervals (5 s each).
        #expect(Self.converged(all, timeout: 10), "\(Self.describe(all))")

        // Broadcast from KSRHost reaches both Kamailio scripts, body and content type intact.
        let body = "hello from ksr \u{00e9}; a=b\r\nsecond line"
        #expect(try s3.trigger(action: .bcast, channel: "app", body: body, contentType: "application/x-test") == 200)
        for k in [k1, k2] {
            #expect(KamailioNode.wait { k.receivedAppMessages().contains { $0.body == body } }, "\(k.name): \(k.logTail())")
            let m = try #require(k.receivedAppMessages().first { $0.body == body })
            #expect(m.contentType == "application/x-test")
            #expect(m.from == "sip:app@127.0.0.43:\(s3.port)")
            #expect(m.channel == "app")
            #expect(m.fromNode)
        }
        // Unicast from Kamailio to KSRHost, and broadcast from Kamailio.
        #expect(try k2.trigger(action: .unicast, channel: "app", body: "to s3 only", target: s3.uri) == 200)
        #expect(try k1.trigger(action: .bcast, channel: "app", body: "from k1", contentType: "text/x-k1") == 200)
        #expect(KamailioNode.wait { s3.receivedAppMessages().contains { $0.body == "to s3 only" } }, "\(s3.logTail())")
        #expect(KamailioNode.wait { s3.receivedAppMessages().contains { $0.body == "from k1" && $0.contentType == "text/x-k1" } })
        #expect(!k1.receivedAppMessages().contains { $0.body == "to s3 only" })

        // Unknown channel: every Kamailio node answers 404 to the KSRHost node, and back.
        #expect(try s3.trigger(action: .bcast, channel: "nochan", body: "x") == 200)
        #expect(KamailioNode.wait { s3.receivedReplies().filter { $0.status == 404 && $0.method == "KDMQ" }.count >= 2 },
                "\(s3.receivedReplies())")
        #expect(try k1.trigger(action: .bcast, channel: "nochan2", body: "x") == 200)
        #expect(KamailioNode.wait { k1.receivedReplies().contains { $0.status == 404 && $0.sourceIP == s3.ip } })

        // t_replicate: each kind reaches the other; the copy is recognised by source IP.
        #expect(try s3.trigger(action: .replicate, body: "replica from s3") == 200)
        for k in [k1, k2] {
            #expect(KamailioNode.wait { k.replicatedMessages().contains { $0.body == "replica from s3" && $0.sourceIP == s3.ip } },
                    "\(k.name): \(k.logTail())")
        }
        #expect(try k1.trigger(action: .replicate, body: "replica from k1") == 200)
        #expect(KamailioNode.wait { s3.replicatedMessages().contains { $0.body == "replica from k1" && $0.sourceIP == k1.ip } },
                "\(s3.logTail())")

        // SIGKILL of the KSRHost node: the Kamailio nodes disable it (next ping + fr_timer), then
        // remove it (one more ping + fr_timer).
        let killed = s3.crash()
        #expect(!killed.isEmpty)
        #expect(k1.waitUntil(timeout: 12) { $0.status(host: s3.ip, port: s3.port) != "active" }, "\(Self.describe([k1]))")
        #expect(k1.waitUntil(timeout: 15) { $0.status(host: s3.ip, port: s3.port) == nil }, "\(Self.describe([k1]))")
        // Restarted, it is active everywhere again.
        try s3.start()
        #expect(Self.converged(all, timeout: 10), "\(Self.describe(all))")

        // SIGKILL of a Kamailio node: the KSRHost node disables, then removes it.
        k2.crash()
        #expect(s3.waitUntil(timeout: 12) { $0.status(host: k2.ip, port: k2.port) == "disabled" }, "\(Self.describe([s3]))")
        #expect(s3.waitUntil(timeout: 15) { $0.status(host: k2.ip, port: k2.port) == nil }, "\(Self.describe([s3]))")
        try k2.start()
        #expect(Self.converged(all, timeout: 10), "\(Self.describe(all))")
    }

    @Test("1 Kamailio + 2 KSRHost: converge, messages, graceful stop announced, fast failure detection between KSRHost nodes")
    func oneKamailioTwoKSRHost() throws {
        let fast = "modparam(\"dmq\", \"fast_ping_ms\", 200)\n"
        let k1 = try KamailioNode(name: "k1", ip: "127.0.0.51")
        let s2 = try KSRDMQNode(name: "s2", ip: "127.0.0.52", notificationAddresses: [k1.uri], extraConfig: fast)
        let s3 = try KSRDMQNode(name: "s3", ip: "127.0.0.53", notificationAddresses: [k1.uri], extraConfig: fast)
        defer { s3.stop(); s2.stop(); k1.stop() }
        try k1.start()
        try s2.start()
        try s3.start()
        let all: [any DMQTestNode] = [k1, s2, s3]
        #expect(Self.converged(all, timeout: 10), "\(Self.describe(all))")

        #expect(try s2.trigger(action: .bcast, channel: "app", body: "s2 says hi", contentType: "text/plain") == 200)
        for n in [k1, s3] as [any DMQTestNode] {
            #expect(KamailioNode.wait { n.receivedAppMessages().contains { $0.body == "s2 says hi" && $0.contentType == "text/plain" } },
                    "\(n.name): \(n.logTail())")
        }
        #expect(try s3.trigger(action: .unicast, channel: "app", body: "s3 to k1", target: k1.uri) == 200)
        #expect(KamailioNode.wait { k1.receivedAppMessages().contains { $0.body == "s3 to k1" } })
        #expect(try s2.trigger(action: .replicate, body: "rep s2") == 200)
        #expect(KamailioNode.wait { s3.replicatedMessages().contains { $0.body == "rep s2" } && k1.replicatedMessages().contains { $0.body == "rep s2" } })

        // Between KSRHost nodes the fast pings find a killed peer in well under 2 s; the
        // Kamailio node needs its ping interval plus fr_timer.
        let started = Date()
        s3.crash()
        #expect(s2.waitUntil(timeout: 5) { $0.status(host: s3.ip, port: s3.port) != "active" }, "\(Self.describe([s2]))")
        let detected = Date().timeIntervalSince(started)
        #expect(detected < 2.5, "s2 noticed the crash after \(detected) s")
        #expect(k1.waitUntil(timeout: 12) { $0.status(host: s3.ip, port: s3.port) != "active" }, "\(Self.describe([k1]))")
        try s3.start()
        #expect(Self.converged(all, timeout: 10), "\(Self.describe(all))")

        // A graceful stop is announced: the Kamailio node disables the node at once.
        s2.stop()
        #expect(k1.waitUntil(timeout: 2) { $0.status(host: s2.ip, port: s2.port) == "disabled" }, "\(Self.describe([k1]))")
        // s3 disables it at once too, but its fast pings (200 ms, fr_timer 3 s) then remove the
        // disabled node within about 3 s: a node list read after that (a slow `ksr rpc` on a
        // loaded machine) no longer shows it. Its log keeps the transition and its cause.
        #expect(KamailioNode.wait(timeout: 5) { s3.log.contains("dmq: node \(s2.uri) active -> disabled (node list from \(s2.uri))") },
                "\(Self.describe([s3]))\n\(s3.logTail())")
        try s2.start()
        #expect(Self.converged(all, timeout: 10), "\(Self.describe(all))")
    }
}

/// KSRHost-only DMQ behaviour: delivery to Lua channel functions, retransmissions, hostile input.
@Suite("DMQ on KSRHost", .serialized)
struct DMQKSRHostTests {
    static let script = """
    function ksr_request_route()
        if KSR.is_KDMQ() then
            KSR.dmq.handle_message()
            return 1
        end
        if KSR.is_MESSAGE() then
            local chan = KSR.pv.get("$hdr(X-Dmq-Channel)") or "news"
            local rc = KSR.dmq.bcast_message(chan, KSR.pv.get("$rb"), KSR.pv.get("$cT") or "text/plain")
            KSR.sl.sl_send_reply(200, "OK rc=" .. rc)
        end
    end

    function on_news()
        KSR.info("NEWS ch=" .. KSR.pv.get("$rU") .. " from=" .. KSR.pv.get("$fu") .. " ct=" .. tostring(KSR.pv.get("$cT"))
            .. " body=[" .. KSR.pv.get("$rb") .. "] worker=" .. KSR.pv.get("$pp") .. "\\n")
        if KSR.pv.get("$rb") == "refuse" then KSR.sl.sl_send_reply(488, "Not Acceptable Here") end
    end

    function ksr_reply_route()
        KSR.info("REPLY " .. KSR.pv.get("$rs") .. " " .. KSR.pv.get("$rr") .. " from " .. KSR.pv.get("$si") .. "\\n")
    end
    """

    @Test("channel_route delivers body, content type, sender and channel to a Lua function, which picks the reply")
    func channelRoute() throws {
        let route = "modparam(\"dmq\", \"channel_route\", \"news=on_news\")\n"
        let a = try KSRDMQNode(name: "a", ip: "127.0.0.61", extraConfig: route, script: Self.script)
        let b = try KSRDMQNode(name: "b", ip: "127.0.0.62", notificationAddresses: [a.uri], extraConfig: route, script: Self.script)
        defer { b.stop(); a.stop() }
        try a.start()
        try b.start()
        #expect(DMQInteropTests.converged([a, b], timeout: 5), "\(DMQInteropTests.describe([a, b]))")
        let reply = try KamailioNode.sendRequest(method: "MESSAGE", user: "x", to: b.ip, port: b.port,
                                                 headers: ["Content-Type: application/json"], body: "{\"n\":1}")
        #expect(KamailioNode.status(of: reply) == 200)
        #expect(KamailioNode.wait { a.log.contains("NEWS ch=news from=sip:news@127.0.0.62:\(b.port) ct=application/json body=[{\"n\":1}]") },
                "\(a.logTail())")
        // The function's own reply goes back to the sender.
        _ = try KamailioNode.sendRequest(method: "MESSAGE", user: "x", to: b.ip, port: b.port, body: "refuse")
        #expect(KamailioNode.wait { b.log.contains("REPLY 488 Not Acceptable Here from 127.0.0.61") }, "\(b.logTail())")
        // A channel nobody registered: 404; one this node sent on: 202.
        _ = try KamailioNode.sendRequest(method: "MESSAGE", user: "x", to: b.ip, port: b.port, headers: ["X-Dmq-Channel: other"], body: "?")
        #expect(KamailioNode.wait { b.log.contains("REPLY 404 User Not Found from 127.0.0.61") }, "\(b.logTail())")
        _ = try KamailioNode.sendRequest(method: "MESSAGE", user: "x", to: a.ip, port: a.port, headers: ["X-Dmq-Channel: other"], body: "?")
        _ = try KamailioNode.sendRequest(method: "MESSAGE", user: "x", to: b.ip, port: b.port, headers: ["X-Dmq-Channel: other"], body: "?")
        #expect(KamailioNode.wait { b.log.contains("REPLY 202 Accepted DMQ from 127.0.0.61") }, "\(b.logTail())")
        // A gauge per node state.
        let (code, metrics) = try ControlledHost.curl(["-s", "-o", "-", "-w", "\n%{http_code}", "http://\(a.ip):\(a.rpcPort)/metrics"])
        #expect(code == 200)
        #expect(metrics.contains("ksr_dmq_nodes{state=\"active\"} 1"), "\(metrics)")
        #expect(metrics.contains("ksr_dmq_nodes{state=\"disabled\"} 0"))
    }

    @Test("a retransmitted KDMQ is delivered once and answered with the same reply")
    func retransmission() throws {
        let route = "modparam(\"dmq\", \"channel_route\", \"news=on_news\")\n"
        let a = try KSRDMQNode(name: "a", ip: "127.0.0.63", extraConfig: route, script: Self.script)
        defer { a.stop() }
        try a.start()
        let client = try KamailioNode.UDPClient(bindIP: "127.0.0.9")
        let request = [
            "KDMQ sip:news@\(a.ip):\(a.port) SIP/2.0",
            "Via: SIP/2.0/UDP 127.0.0.9:\(client.port);branch=z9hG4bK-retr-1",
            "To: <sip:news@\(a.ip):\(a.port)>",
            "From: <sip:news@127.0.0.9:5060>;tag=abc",
            "CSeq: 10 KDMQ", "Call-ID: retr-1@127.0.0.9", "Max-Forwards: 1", "Content-Type: text/plain",
            "Content-Length: 4", "", "once",
        ].joined(separator: "\r\n")
        var replies: [String] = []
        for _ in 0..<3 {
            client.send(request, to: a.ip, port: a.port)
            if let r = client.receive(until: Date().addingTimeInterval(3)) { replies.append(r) }
            usleep(100_000)
        }
        #expect(replies.count == 3)
        #expect(Set(replies).count == 1, "\(replies)")
        #expect(replies.first.flatMap(KamailioNode.status) == 200)
        usleep(200_000)
        #expect(a.log.lines(containing: "NEWS ch=news").count == 1, "\(a.logTail())")
    }

    @Test("malformed node lists and hostile KDMQ leave the node serving")
    func hostileInput() throws {
        let a = try KSRDMQNode(name: "a", ip: "127.0.0.64", script: Self.script)
        defer { a.stop() }
        try a.start()
        func notify(_ body: String, headers: [String] = []) throws -> String {
            try KamailioNode.sendRequest(method: "KDMQ", user: "notification_peer", to: a.ip, port: a.port,
                                         headers: ["Content-Type: text/plain"] + headers, body: body)
        }
        // The spec's edge cases (Kamailio 5.6.3 froze for good on E-I).
        let cases: [(String, Int)] = [
            ("", 200),                                             // A: asks for the list
            ("sip:127.0.0.50:5099\n", 200),                        // B: LF, no status
            ("sip:127.0.0.51:5099;foo=bar;status=active\r\n", 200),// C
            ("sip:127.0.0.51:5099;status=disabled\r\n", 200),      // D
            ("sip:no-such-host.invalid:5098;status=active\r\n", 400), // H
            ("sip:127.0.0.52:5099;status=active", 200),            // F: no final CRLF
            ("sip:127.0.0.53:5099;status=not_active\r\n", 200),    // G
            ("sip:127.0.0.54:5099;status=active\r\n\r\n", 400),    // I: empty line
            ("sip:127.0.0.55:;status=active\r\n", 400),            // J: empty port
            ("sip:127.0.0.56:5099;status=bogus\r\n", 400),
            (String(repeating: "\u{1}\u{ff}garbage\r\n", count: 50), 400),
        ]
        for (body, expected) in cases {
            let reply = try notify(body)
            #expect(KamailioNode.status(of: reply) == expected, "body \(body.debugDescription): \(reply)")
        }
        // Valid lines of a partly bad body are kept; garbage created nothing.
        let list = try a.listNodes()
        #expect(list.status(host: "127.0.0.52", port: 5099) == "active")
        #expect(list.status(host: "127.0.0.53", port: 5099) == "not_active")
        #expect(list.status(host: "127.0.0.54", port: 5099) == "active")
        #expect(list.entry(host: "127.0.0.55", port: 5060) == nil)
        // A list with Max-Forwards 70: the re-broadcast it causes carries Max-Forwards 1 (no
        // chain of forwards), here to the sender itself, which listed itself as a node.
        let peer = try KamailioNode.UDPClient(bindIP: "127.0.0.9")
        let line = "sip:127.0.0.9:\(peer.port);status=active\r\n"
        peer.send(["KDMQ sip:notification_peer@\(a.ip):\(a.port) SIP/2.0",
                   "Via: SIP/2.0/UDP 127.0.0.9:\(peer.port);branch=z9hG4bK-mf70",
                   "To: <sip:notification_peer@\(a.ip):\(a.port)>",
                   "From: <sip:notification_peer@127.0.0.9:\(peer.port)>;tag=mf",
                   "CSeq: 10 KDMQ", "Call-ID: mf70@127.0.0.9", "Max-Forwards: 70", "Content-Type: text/plain",
                   "Content-Length: \(line.utf8.count)", "", line].joined(separator: "\r\n"), to: a.ip, port: a.port)
        var rebroadcast: String?
        let until = Date().addingTimeInterval(3)
        while rebroadcast == nil, let m = peer.receive(until: until) {
            if m.hasPrefix("KDMQ ") { rebroadcast = m }
        }
        #expect(rebroadcast?.contains("\r\nMax-Forwards: 1\r\n") == true, "\(rebroadcast ?? "no re-broadcast")")
        // KDMQ without channel, without From, with a huge Max-Forwards: no crash, still serving.
        _ = try? KamailioNode.sendRequest(method: "KDMQ", user: "", to: a.ip, port: a.port, body: "x", timeout: 1)
        _ = try notify("sip:127.0.0.57:5099;status=active\r\n", headers: ["Max-Forwards: 4294967296"])
        let final = try notify("")
        #expect(KamailioNode.status(of: final) == 200)
        #expect(final.contains("sip:127.0.0.64:\(a.port);status=active\r\n"))
        #expect(a.isRunning)
    }

    @Test("two KSRHost nodes over TCP: join, broadcast, node URIs keep ;transport=tcp")
    func overTCP() throws {
        let dir = TempDir()
        func script(_ ip: String, _ port: Int, _ rpc: Int, notify: String?) -> String {
            """
            coreparam("listen", "tcp:\(ip):\(port)")
            coreparam("children", 2)
            coreparam("rpc_listen", "http:\(ip):\(rpc)")
            coreparam("rpc_socket", "off")
            modparam("dmq", "server_address", "sip:\(ip):\(port);transport=tcp")
            \(notify.map { "modparam(\"dmq\", \"notification_address\", \"\($0)\")" } ?? "")
            modparam("dmq", "channel_route", "news=on_news")
            function ksr_request_route()
                if KSR.is_KDMQ() then KSR.dmq.handle_message() return 1 end
            end
            function on_news() KSR.info("NEWS [" .. KSR.pv.get("$rb") .. "] via " .. KSR.pv.get("$pr") .. "\\n") end
            function ksr_rtimer_bcast() KSR.dmq.bcast_message("news", "over tcp", "text/plain") end
            """
        }
        // TCP ports: below the ephemeral range, free for UDP and TCP.
        let (pa, pb) = (freePort(), freePort())
        let (ra, rb) = (freePort(), freePort())
        let a = try KSR.Running(["run", dir.write("a.lua", script("127.0.0.67", pa, ra, notify: nil))])
        defer { a.stop() }
        #expect(a.waitForStderr { $0.contains("started:") }, "\(a.stderr)")
        let b = try KSR.Running(["run", dir.write("b.lua", script("127.0.0.68", pb, rb, notify: "sip:127.0.0.67:\(pa);transport=tcp")
            + "\nmodparam(\"rtimer\", \"timer\", \"name=t;interval=1;mode=1\")\nmodparam(\"rtimer\", \"exec\", \"timer=t;route=ksr_rtimer_bcast\")\n")])
        defer { b.stop() }
        #expect(a.waitForStderr(timeout: 10) { $0.contains("NEWS [over tcp] via tcp") }, "\(a.stderr)\n\(b.stderr)")
        let list = try KSR.run(["rpc", "--url", "http:127.0.0.67:\(ra)", "dmq.list_nodes"])
        let nodes = try #require(json(list.stdout) as? [[String: Any]])
        #expect(nodes.contains { $0["host"] as? String == "127.0.0.68" && $0["proto"] as? String == "tcp" && $0["status"] as? String == "active" },
                "\(list.stdout)")
    }

    @Test("samples/dmq.lua: two nodes join; a MESSAGE becomes a chat (channel_route) and a note (request route) on the other")
    func sample() throws {
        let sample = KSR.packageRoot.appendingPathComponent("samples/dmq.lua").path
        let a = try KSR.Running(["run", sample], environment: ["NODE": "127.0.0.81"])
        defer { a.stop() }
        #expect(a.waitForStderr { $0.contains("started:") }, "\(a.stderr)")
        let b = try KSR.Running(["run", sample], environment: ["NODE": "127.0.0.82", "SEED": "127.0.0.81"])
        defer { b.stop() }
        #expect(b.waitForStderr { $0.contains("started:") }, "\(b.stderr)")
        #expect(a.waitForStderr(timeout: 5) { $0.contains("node sip:127.0.0.82:5060 added as active") }, "\(a.stderr)")
        let reply = try KamailioNode.sendRequest(method: "MESSAGE", user: "x", to: "127.0.0.82", port: 5060,
                                                 headers: ["Content-Type: text/plain"], body: "hello cluster")
        #expect(KamailioNode.status(of: reply) == 200)
        #expect(a.waitForStderr(timeout: 5) { $0.contains("chat from sip:chat@127.0.0.82:5060 (text/plain): hello cluster") }, "\(a.stderr)")
        #expect(a.waitForStderr(timeout: 5) { $0.contains("note from sip:notes@127.0.0.82:5060: relayed: hello cluster") }, "\(a.stderr)")
    }

    @Test("configuration errors name the file, line and parameter")
    func configErrors() throws {
        let dir = TempDir()
        let noAddress = dir.write("a.lua", """
        coreparam("listen", "udp:127.0.0.65:5060")
        modparam("dmq", "ping_interval", 10)
        function ksr_request_route() end
        """)
        let r1 = try KSR.run(["check", noAddress])
        #expect(r1.status != 0)
        #expect(r1.stderr.contains("a.lua:2") && r1.stderr.contains("server_address is required"), "\(r1.stderr)")
        let noPort = dir.write("b.lua", """
        coreparam("listen", "udp:127.0.0.65:5060")
        modparam("dmq", "server_address", "sip:127.0.0.65")
        function ksr_request_route() end
        """)
        let r2 = try KSR.run(["check", noPort])
        #expect(r2.status != 0)
        #expect(r2.stderr.contains("b.lua:2") && r2.stderr.contains("must include the port"), "\(r2.stderr)")
        let noListen = dir.write("c.lua", """
        coreparam("listen", "udp:127.0.0.65:5060")
        modparam("dmq", "server_address", "sip:127.0.0.66:5060")
        modparam("dmq", "channel_route", "news=missing_function")
        function ksr_request_route() end
        """)
        let r3 = try KSR.run(["check", noListen])
        #expect(r3.status != 0)
        #expect(r3.stderr.contains("matches no listen socket"), "\(r3.stderr)")
        #expect(r3.stderr.contains("c.lua:3") && r3.stderr.contains("missing_function"), "\(r3.stderr)")
        let badInt = dir.write("d.lua", """
        modparam("dmq", "num_workers", -1)
        """)
        let r4 = try KSR.run(["check", badInt])
        #expect(r4.status != 0)
        #expect(r4.stderr.contains("d.lua:1") && r4.stderr.contains("num_workers"), "\(r4.stderr)")
    }
}
