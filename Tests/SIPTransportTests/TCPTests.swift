import SIPTransport
import Synchronization
import Testing

@Suite("SIP over TCP")
struct TCPTests {
    /// A transport listening on tcp:127.0.0.1:0 (and what it delivers).
    func withTCP(
        _ configuration: SIPTransport.Configuration = .init(), listen: String = "tcp:127.0.0.1:0",
        _ body: (SIPTransport, SIPListener, Inbox) async throws -> Void
    ) async throws {
        let transport = makeTransport(configuration)
        defer { transport.stop() }
        let inbox = Inbox()
        let listener = try #require(try transport.start(listen: [SIPListenAddress(parsing: listen)], sink: inbox.sink).first)
        #expect(listener.proto == .tcp)
        #expect(listener.port != 0)
        try await body(transport, listener, inbox)
    }

    @Test func twoMessagesInOneWrite() async throws {
        try await withTCP { _, listener, inbox in
            let client = try TCPPeer(port: listener.port)
            let a = sipRequest(callID: "a"), b = sipRequest(callID: "b")
            try client.write(a + b)
            let got = try await inbox.wait(for: 2)
            #expect(got.map(\.bytes) == [bytes(a), bytes(b)])
            #expect(got.allSatisfy { $0.source.port == client.port && $0.source.ip == "127.0.0.1" })
            #expect(got.allSatisfy { $0.local == listener && $0.connection != nil })
            #expect(got[0].connection == got[1].connection)
            #expect(got[0].connection?.isOutgoing == false)
        }
    }

    @Test func messageSplitAcrossWrites() async throws {
        try await withTCP { _, listener, inbox in
            let client = try TCPPeer(port: listener.port)
            let m = bytes(sipRequest(body: "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n"))
            // In the start line, in the headers, in the body.
            for (round, cut) in [10, 60, m.count - 3].enumerated() {
                try client.write(Array(m[..<cut]))
                try await Task.sleep(for: .milliseconds(20))
                #expect(inbox.count == round)
                try client.write(Array(m[cut...]))
                let got = try await inbox.wait(for: round + 1)
                #expect(got.map(\.bytes) == Array(repeating: m, count: round + 1))
            }
        }
    }

    @Test func splitAtEveryFewBytes() async throws {
        try await withTCP { _, listener, inbox in
            let client = try TCPPeer(port: listener.port)
            let m = bytes(sipRequest(body: "hello"))
            var i = 0
            while i < m.count {
                try client.write(Array(m[i..<min(i + 7, m.count)]))
                i += 7
                try await Task.sleep(for: .milliseconds(1))
            }
            #expect(try await inbox.wait(for: 1).map(\.bytes) == [m])
        }
    }

    @Test func keepAlivesAreSkippedAndPingsAnswered() async throws {
        try await withTCP { _, listener, inbox in
            let client = try TCPPeer(port: listener.port)
            try client.write("\r\n\r\n")
            #expect(try await client.receive(count: 2) == bytes("\r\n"))
            let m = sipRequest()
            try client.write("\r\n" + m + "\r\n\r\n" + m)
            let got = try await inbox.wait(for: 2)
            #expect(got.map(\.bytes) == [bytes(m), bytes(m)])
            #expect(try await client.receive(count: 4) == bytes("\r\n\r\n"))
        }
    }

    @Test func messageWithBody() async throws {
        try await withTCP { _, listener, inbox in
            let client = try TCPPeer(port: listener.port)
            let body = String(repeating: "a=x-line\r\n", count: 300)
            let m = sipRequest(method: "INVITE", body: body, extraHeaders: "Content-Type: application/sdp\r\n")
            try client.write(m)
            let got = try #require(try await inbox.wait(for: 1).first)
            #expect(got.bytes == bytes(m))
            #expect(got.bytes.count > 3000)
        }
    }

    @Test func missingContentLengthCloses() async throws {
        try await withTCP { transport, listener, inbox in
            let client = try TCPPeer(port: listener.port)
            try client.write("OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nCall-ID: x\r\n\r\n")
            try await client.waitClosed()
            #expect(inbox.count == 0)
            #expect(transport.stats.dropped == 1)
            _ = try await eventually("the connection to be forgotten") { transport.stats.tcpConnections == 0 ? true : nil }
        }
    }

    @Test func oversizeCloses() async throws {
        try await withTCP(.init(maxMessageSize: 2000)) { transport, listener, inbox in
            // A body announced over the limit.
            let a = try TCPPeer(port: listener.port)
            try a.write(sipRequest(body: String(repeating: "x", count: 2000)))
            try await a.waitClosed()
            // Headers that never end.
            let b = try TCPPeer(port: listener.port)
            try b.write("OPTIONS sip:a@127.0.0.1 SIP/2.0\r\n" + String(repeating: "X-Junk: 0123456789\r\n", count: 200))
            try await b.waitClosed()
            #expect(inbox.count == 0)
            #expect(transport.stats.dropped == 2)
            // A message at the limit passes.
            let c = try TCPPeer(port: listener.port)
            let fits = sipRequest(body: String(repeating: "y", count: 2000 - sipRequest().utf8.count - 3))  // "0" becomes "1xxx"
            #expect(fits.utf8.count == 2000)
            try c.write(fits)
            #expect(try await inbox.wait(for: 1).map(\.bytes) == [bytes(fits)])
        }
    }

    @Test func replyOverTheSameConnection() async throws {
        try await withTCP { transport, listener, inbox in
            let client = try TCPPeer(port: listener.port)
            try client.write(sipRequest())
            let got = try #require(try await inbox.wait(for: 1).first)
            let connection = try #require(got.connection)
            #expect(connection.isOpen)
            #expect(connection.remote == got.source)
            let reply = bytes("SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n")
            let done = Mutex<Bool>(false)
            transport.send(reply, on: connection) { r in
                if case .success = r { done.withLock { $0 = true } }
            }
            #expect(try await client.receive(count: reply.count) == reply)
            _ = try await eventually("the completion") { done.withLock { $0 } ? true : nil }

            // Sending to the peer's address reuses the accepted connection (no new one).
            transport.send(reply, to: got.source, proto: .tcp)
            #expect(try await client.receive(count: 2 * reply.count) == reply + reply)
            #expect(transport.stats.tcpConnections == 1)

            // Once it is closed, sending on it fails.
            client.closeNow()
            _ = try await eventually("the close to be seen") { connection.isOpen ? nil : true }
            let failed = Mutex<SIPTransportError?>(nil)
            transport.send(reply, on: connection) { r in
                if case .failure(let e) = r { failed.withLock { $0 = e } }
            }
            let error = try await eventually("the failure") { failed.withLock { $0 } }
            #expect(error.message == "connection closed")
        }
    }

    @Test func outgoingConnectionsAreReused() async throws {
        try await withTCP { transport, listener, inbox in
            let server = try TCPServerPeer()
            let destination = try SIPSocketAddress(ip: "127.0.0.1", port: server.port)
            let a = bytes(sipRequest(callID: "out-1")), b = bytes(sipRequest(callID: "out-2"))
            let c = bytes(sipRequest(callID: "out-3"))
            let outcomes = Mutex<[Bool]>([])
            // Sent before the connection is up: queued, in order.
            for m in [a, b] {
                transport.send(m, to: destination, via: listener) { r in
                    outcomes.withLock { $0.append((try? r.get()) != nil) }
                }
            }
            let peer = try await eventually("the connection") { server.accept() }
            #expect(try await peer.receive(count: a.count + b.count) == a + b)
            transport.send(c, to: destination, proto: .tcp) { r in
                outcomes.withLock { $0.append((try? r.get()) != nil) }
            }
            #expect(try await peer.receive(count: a.count + b.count + c.count) == a + b + c)
            #expect(server.accept() == nil)  // one connection only
            _ = try await eventually("the completions") { outcomes.withLock { $0 } == [true, true, true] ? true : nil }
            // It comes from the listener's address, not its port.
            #expect(peer.remotePort != listener.port)

            // What the other side sends back arrives tagged with the outgoing connection.
            let response = "SIP/2.0 200 OK\r\nCall-ID: out-1\r\nContent-Length: 0\r\n\r\n"
            try peer.write(response)
            let got = try #require(try await inbox.wait(for: 1).first)
            #expect(got.bytes == bytes(response))
            #expect(got.connection?.isOutgoing == true)
            #expect(got.source == destination)
            #expect(got.local == listener)

            // Closed by the other side: the next send opens a new one.
            peer.closeNow()
            _ = try await eventually("the close to be seen") { transport.stats.tcpConnections == 0 ? true : nil }
            transport.send(a, to: destination, via: listener)
            let second = try await eventually("a second connection") { server.accept() }
            #expect(try await second.receive(count: a.count) == a)
        }
    }

    @Test func connectFailureFailsQueuedSends() async throws {
        try await withTCP { transport, listener, _ in
            // A port nothing listens on: bind one and close it.
            let closedPort = try TCPServerPeer().port
            let destination = try SIPSocketAddress(ip: "127.0.0.1", port: closedPort)
            let failures = Mutex<[String]>([])
            for _ in 0..<3 {
                transport.send(bytes(sipRequest()), to: destination, via: listener) { r in
                    if case .failure(let e) = r { failures.withLock { $0.append(e.message) } }
                }
            }
            let got = try await eventually("three failures") { failures.withLock { $0.count == 3 ? $0 : nil } }
            #expect(got.allSatisfy { $0 == "cannot connect to tcp:127.0.0.1:\(closedPort): connection refused" })
            #expect(transport.stats.errors == 3)
        }
    }

    @Test func idleConnectionsAreClosed() async throws {
        try await withTCP(.init(tcpIdleTimeout: .milliseconds(300))) { transport, listener, _ in
            let client = try TCPPeer(port: listener.port)
            try await client.waitClosed(timeout: .seconds(5))
            _ = try await eventually("the count to drop") { transport.stats.tcpConnections == 0 ? true : nil }
        }
    }

    @Test func trafficKeepsConnectionsOpen() async throws {
        try await withTCP(.init(tcpIdleTimeout: .seconds(2))) { transport, listener, inbox in
            let client = try TCPPeer(port: listener.port)
            let clock = ContinuousClock()
            let start = clock.now
            var last = start
            var longestGap = Duration.zero
            var sent = 0
            while clock.now - start < .seconds(3) {
                try client.write(sipRequest())
                sent += 1
                _ = try await inbox.wait(for: sent)
                longestGap = max(longestGap, clock.now - last)
                last = clock.now
                try await Task.sleep(for: .milliseconds(100))
            }
            client.poll()
            // Only meaningful if this test was not itself held up for most of the timeout.
            if longestGap < .milliseconds(1500) {
                #expect(!client.closedByPeer)
                #expect(transport.stats.tcpConnections == 1)
            }
        }
    }

    @Test func ipv6Loopback() async throws {
        guard ipv6LoopbackAvailable else {
            print("::1 not configured: IPv6 TCP test skipped")
            return
        }
        try await withTCP(listen: "tcp:[::1]:0") { transport, listener, inbox in
            #expect(listener.ip == "::1")
            let client = try TCPPeer(ip: "::1", port: listener.port)
            try client.write(sipRequest())
            let got = try #require(try await inbox.wait(for: 1).first)
            #expect(got.source.ip == "::1")
            #expect(got.source.port == client.port)
            transport.send(bytes("SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"), on: try #require(got.connection))
            _ = try await client.receive(count: 10)

            let server = try TCPServerPeer(ip: "::1")
            transport.send(bytes(sipRequest()), to: try SIPSocketAddress(ip: "::1", port: server.port), proto: .tcp)
            let peer = try await eventually("the IPv6 connection") { server.accept() }
            #expect(try await peer.receive(count: sipRequest().utf8.count) == bytes(sipRequest()))
        }
    }
}
