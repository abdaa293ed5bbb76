import SIPTransport
import Synchronization
import Testing

@Suite("SIP over UDP")
struct UDPTests {
    @Test func roundTrip() async throws {
        let transport = makeTransport()
        defer { transport.stop() }
        let inbox = Inbox()
        let listeners = try transport.start(listen: [SIPListenAddress(parsing: "udp:127.0.0.1:0")], sink: inbox.sink)
        let listener = try #require(listeners.first)
        #expect(listener.port != 0)
        #expect(transport.boundAddresses == [listener.address])
        #expect(listener.configured.port == 0)

        let client = try UDPPeer()
        let request = bytes(sipRequest(body: "v=0\r\n"))
        #expect(client.send(request, to: "127.0.0.1", port: listener.port))
        let got = try #require(try await inbox.wait(for: 1).first)
        #expect(got.bytes == request)
        #expect(got.source.ip == "127.0.0.1")
        #expect(got.source.port == client.port)
        #expect(got.local == listener)
        #expect(got.proto == .udp)
        #expect(got.connection == nil)
        #expect(got.receivedAt > 0)

        // The reply leaves from the listener's port.
        let reply = bytes("SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n")
        let done = Mutex<Result<Void, SIPTransportError>?>(nil)
        transport.send(reply, to: got.source, via: got.local) { r in done.withLock { $0 = r } }
        let (data, from) = try await eventually("the reply") { client.receive() }
        #expect(data == reply)
        #expect(from == listener.port)
        let outcome = try await eventually("the completion") { done.withLock { $0 } }
        #expect((try? outcome.get()) != nil)

        // By protocol, the listener is picked.
        transport.send(reply, to: got.source, proto: .udp)
        let (again, from2) = try await eventually("the second reply") { client.receive() }
        #expect(again == reply)
        #expect(from2 == listener.port)

        let stats = transport.stats
        #expect(stats.received == 1)
        #expect(stats.sent == 2)
        #expect(stats.dropped == 0)
    }

    @Test func oversizeAndTinyDatagramsAreDropped() async throws {
        let transport = makeTransport(.init(maxMessageSize: 1000))
        defer { transport.stop() }
        let inbox = Inbox()
        let listener = try #require(
            try transport.start(listen: [SIPListenAddress(parsing: "udp:127.0.0.1:0")], sink: inbox.sink).first)
        let client = try UDPPeer()
        client.send([UInt8](repeating: 65, count: 1001), to: "127.0.0.1", port: listener.port)
        client.send([UInt8](repeating: 65, count: 30_000), to: "127.0.0.1", port: listener.port)
        client.send(bytes("\r\n\r\n"), to: "127.0.0.1", port: listener.port)  // a keep-alive
        let ok = bytes(sipRequest(body: String(repeating: "b", count: 1000 - sipRequest().utf8.count - 2)))
        #expect(ok.count == 1000)
        client.send(ok, to: "127.0.0.1", port: listener.port)
        let got = try await inbox.wait(for: 1)
        #expect(got.map(\.bytes) == [ok])
        #expect(transport.stats.dropped == 2)
    }

    @Test func manyListenersAndPlainReads() async throws {
        // udpMessagesPerRead 1: plain recvmsg; two UDP listeners on two threads.
        let transport = makeTransport(.init(eventLoopThreads: 2, udpMessagesPerRead: 1))
        defer { transport.stop() }
        let inbox = Inbox()
        let listeners = try transport.start(
            listen: [SIPListenAddress(parsing: "udp:127.0.0.1:0"), SIPListenAddress(parsing: "udp:127.0.0.2:0")],
            sink: inbox.sink)
        #expect(listeners.map(\.index) == [0, 1])
        let client = try UDPPeer()
        for (i, l) in listeners.enumerated() {
            client.send(bytes(sipRequest(callID: "l\(i)")), to: l.ip, port: l.port)
        }
        let got = try await inbox.wait(for: 2)
        #expect(Set(got.map(\.local)) == Set(listeners))
        for m in got {
            #expect(m.bytes == bytes(sipRequest(callID: "l\(m.local.index)")))
        }
        // Replies from the second listener come from its address and port.
        let reply = bytes("SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n")
        let second = try #require(got.first { $0.local.index == 1 })
        transport.send(reply, to: second.source, via: second.local)
        let (_, from) = try await eventually("the reply") { client.receive() }
        #expect(from == listeners[1].port)
    }

    @Test func sendFailures() async throws {
        let transport = makeTransport()
        defer { transport.stop() }
        let listener = try #require(
            try transport.start(listen: [SIPListenAddress(parsing: "udp:127.0.0.1:0")], sink: { _ in }).first)
        let result = Mutex<SIPTransportError?>(nil)
        transport.send([1, 2, 3], to: try SIPSocketAddress(ip: "::1", port: 5060), via: listener) { r in
            if case .failure(let e) = r { result.withLock { $0 = e } }
        }
        #expect(result.withLock { $0 }?.message.contains("address family differs") == true)
        transport.send([1, 2, 3], to: try SIPSocketAddress(ip: "::1", port: 5060), proto: .udp) { r in
            if case .failure(let e) = r { result.withLock { $0 = e } }
        }
        #expect(result.withLock { $0 }?.message == "no udp listener for IPv6 to send to [::1]:5060")
        // A send the kernel refuses fails alone; the listener lives on.
        transport.send([1, 2, 3], to: try SIPSocketAddress(ip: "127.0.0.1", port: 0), via: listener) { r in
            if case .failure(let e) = r { result.withLock { $0 = e } }
        }
        #expect(result.withLock { $0 }?.message == "cannot send to udp:127.0.0.1:0 from \(listener): invalid argument")
        let client = try UDPPeer()
        transport.send(bytes(sipRequest()), to: try SIPSocketAddress(ip: "127.0.0.1", port: client.port), via: listener)
        _ = try await eventually("a datagram after the failed send") { client.receive() }
        transport.stop()
        transport.send([1, 2, 3], to: try SIPSocketAddress(ip: "127.0.0.1", port: 5060), via: listener) { r in
            if case .failure(let e) = r { result.withLock { $0 = e } }
        }
        #expect(result.withLock { $0 }?.message == "transport stopped")
        #expect(transport.stats.errors == 4)
    }

    @Test func ipv6Loopback() async throws {
        guard ipv6LoopbackAvailable else {
            print("::1 not configured: IPv6 UDP test skipped")
            return
        }
        let transport = makeTransport()
        defer { transport.stop() }
        let inbox = Inbox()
        let listener = try #require(
            try transport.start(listen: [SIPListenAddress(parsing: "udp:[::1]:0")], sink: inbox.sink).first)
        #expect(listener.ip == "::1")
        #expect(listener.isIPv6)
        let client = try UDPPeer(ip: "::1")
        let request = bytes(sipRequest())
        client.send(request, to: "::1", port: listener.port)
        let got = try #require(try await inbox.wait(for: 1).first)
        #expect(got.bytes == request)
        #expect(got.source.ip == "::1")
        #expect(got.source.port == client.port)
        #expect(got.source.description == "[::1]:\(client.port)")
        transport.send(request, to: got.source, proto: .udp)
        let (data, from) = try await eventually("the reply") { client.receive() }
        #expect(data == request)
        #expect(from == listener.port)
    }
}

/// `udpReading: .external`: the event loop leaves UDP alone; each reader thread reads the
/// sockets itself.
@Suite("UDP read by the caller's threads")
struct ExternalUDPTests {
    /// Reads until `count` messages came or 5 s passed (polling: the readers do not block).
    static func read(_ reader: SIPUDPReader, _ count: Int) async throws -> [SIPInbound] {
        var got: [SIPInbound] = []
        let deadline = ContinuousClock.now + .seconds(5)
        while got.count < count, ContinuousClock.now < deadline {
            var n = 0
            for fd in reader.descriptors { n += reader.read(fd) { got.append($0) } }
            if n == 0 { try await Task.sleep(for: .milliseconds(2)) }
        }
        return got
    }

    @Test func readersGetTheDatagramsAndTheSinkDoesNot() async throws {
        let transport = makeTransport(.init(maxMessageSize: 1000, udpReading: .external))
        defer { transport.stop() }
        let inbox = Inbox()
        let listeners = try transport.start(
            listen: [SIPListenAddress(parsing: "udp:127.0.0.1:0"), SIPListenAddress(parsing: "udp:127.0.0.2:0")],
            sink: inbox.sink)
        let reader = try #require(transport.makeUDPReader(batch: 2))
        #expect(reader.descriptors.count == 2)
        for fd in reader.descriptors { #expect(reader.read(fd) { _ in } == 0) }  // nothing yet

        let client = try UDPPeer()
        client.send([UInt8](repeating: 65, count: 1001), to: "127.0.0.1", port: listeners[0].port)  // too long
        client.send(bytes("\r\n\r\n"), to: "127.0.0.1", port: listeners[0].port)  // a keep-alive
        for i in 0..<5 { client.send(bytes(sipRequest(callID: "a\(i)")), to: "127.0.0.1", port: listeners[0].port) }
        client.send(bytes(sipRequest(callID: "b")), to: "127.0.0.2", port: listeners[1].port)
        let got = try await Self.read(reader, 6)
        #expect(got.count == 6)
        let first = try #require(got.first { $0.local == listeners[0] })
        #expect(first.source.ip == "127.0.0.1")
        #expect(first.source.port == client.port)
        #expect(first.connection == nil)
        #expect(first.bytes == bytes(sipRequest(callID: "a0")))
        #expect(got.filter { $0.local == listeners[1] }.map(\.bytes) == [bytes(sipRequest(callID: "b"))])
        #expect(transport.stats.received == 6)
        #expect(transport.stats.dropped == 1)
        #expect(inbox.count == 0)

        // Replies still leave from the listener's socket.
        transport.send(bytes("SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"), replyingTo: first)
        let (_, from) = try await eventually("the reply") { client.receive() }
        #expect(from == listeners[0].port)
    }

    @Test func twoReadersShareASocketAndOutliveTheTransport() async throws {
        let transport = makeTransport(.init(udpReading: .external))
        let listener = try #require(
            try transport.start(listen: [SIPListenAddress(parsing: "udp:127.0.0.1:0")], sink: Inbox().sink).first)
        let one = try #require(transport.makeUDPReader(batch: 1))
        let two = try #require(transport.makeUDPReader(batch: 1))
        let client = try UDPPeer()
        for i in 0..<4 { client.send(bytes(sipRequest(callID: "s\(i)")), to: "127.0.0.1", port: listener.port) }
        let a = try await Self.read(one, 2)
        let b = try await Self.read(two, 2)
        #expect(Set((a + b).map(\.bytes)).count == 4)
        // A reader's descriptors stay valid after the transport stopped, until it closes them.
        transport.stop()
        #expect(transport.makeUDPReader() == nil)
        #expect(one.read(one.descriptors[0]) { _ in } == 0)
        one.close()
        two.close()
        #expect(one.read(one.descriptors[0]) { _ in } == 0)
    }

    @Test func eventLoopModeHasNoReaders() throws {
        let transport = makeTransport()
        defer { transport.stop() }
        _ = try transport.start(listen: [SIPListenAddress(parsing: "udp:127.0.0.1:0")], sink: Inbox().sink)
        #expect(transport.makeUDPReader() == nil)
    }
}
