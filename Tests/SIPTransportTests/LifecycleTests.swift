import Foundation
import SIPTransport
import Testing

@Suite("starting and stopping")
struct LifecycleTests {
    @Test func bindErrorsAreClear() throws {
        let first = makeTransport()
        defer { first.stop() }
        let bound = try first.start(
            listen: [SIPListenAddress(parsing: "udp:127.0.0.1:0"), SIPListenAddress(parsing: "tcp:127.0.0.1:0")],
            sink: { _ in })
        let udpPort = bound[0].port, tcpPort = bound[1].port

        let second = makeTransport()
        defer { second.stop() }
        #expect(throws: SIPTransportError("cannot listen on udp:127.0.0.1:\(udpPort): address already in use")) {
            try second.start(listen: [SIPListenAddress(parsing: "udp:127.0.0.1:\(udpPort)")], sink: { _ in })
        }
        #expect(throws: SIPTransportError("cannot listen on tcp:127.0.0.1:\(tcpPort): address already in use")) {
            try second.start(
                listen: [SIPListenAddress(parsing: "tcp:127.0.0.1:0"), SIPListenAddress(parsing: "tcp:127.0.0.1:\(tcpPort)")],
                sink: { _ in })
        }
        // A failed start leaves nothing open, and the transport can start afterwards.
        #expect(second.listeners.isEmpty)
        let again = try second.start(listen: [SIPListenAddress(parsing: "udp:127.0.0.1:0")], sink: { _ in })
        #expect(again.count == 1)
        #expect(throws: SIPTransportError("SIP transport already started")) {
            try second.start(listen: [], sink: { _ in })
        }
    }

    @Test func stopReleasesPorts() async throws {
        let transport = makeTransport()
        defer { transport.stop() }  // also when an await below throws: no transport outlives the test
        let inbox = Inbox()
        let listeners = try transport.start(
            listen: [SIPListenAddress(parsing: "udp:127.0.0.1:0"), SIPListenAddress(parsing: "tcp:127.0.0.1:0")],
            sink: inbox.sink)
        let tcp = listeners[1]
        // An open connection, which stop closes.
        let client = try TCPPeer(port: tcp.port)
        try client.write(sipRequest())
        _ = try await inbox.wait(for: 1)
        let addresses = transport.boundAddresses
        #expect(addresses.allSatisfy { $0.port != 0 })
        transport.stop()
        #expect(transport.listeners.isEmpty)
        try await client.waitClosed()
        transport.stop()  // twice is fine

        // The very same ports bind again, in another transport and in this one.
        let other = makeTransport()
        defer { other.stop() }
        #expect(try other.start(listen: addresses, sink: { _ in }).map(\.address) == addresses)
        other.stop()
        let restarted = try transport.start(listen: addresses, sink: inbox.sink)
        #expect(restarted.map(\.address) == addresses)
        let udp = try UDPPeer()
        udp.send(bytes(sipRequest(callID: "after-restart")), to: "127.0.0.1", port: addresses[0].port)
        #expect(try await inbox.wait(for: 2).last?.bytes == bytes(sipRequest(callID: "after-restart")))
        transport.stop()
    }

    @Test func sendsRacingStopFailCleanly() async throws {
        let transport = makeTransport()
        // The stopping thread is waited for, whatever happens: no thread of this test keeps
        // running (and stopping) into the next one.
        let stopped = DispatchSemaphore(value: 0)
        var stopperStarted = false
        defer {
            if stopperStarted { stopped.wait() }
            transport.stop()
        }
        let listener = try #require(
            try transport.start(listen: [SIPListenAddress(parsing: "udp:127.0.0.1:0")], sink: { _ in }).first)
        let sink = try UDPPeer()
        let destination = try SIPSocketAddress(ip: "127.0.0.1", port: sink.port)
        stopperStarted = true
        let sent = try await blocking {
            var n = 0
            for _ in 0..<20_000 {
                transport.send(bytes(sipRequest()), to: destination, via: listener)
                n += 1
                if n == 5_000 {
                    Thread.detachNewThread {
                        transport.stop()
                        stopped.signal()
                    }
                }
            }
            return n
        }
        #expect(sent == 20_000)
        stopped.wait()
        stopperStarted = false
        transport.stop()
        let stats = transport.stats
        #expect(stats.sent + stats.errors == 20_000)
    }
}
