import Foundation
import SIPTransport
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Rough numbers, printed only (nothing asserted on speed). They load both cores of a small
/// machine for a few seconds, which would upset timing tests running alongside, so they run
/// only when asked:
///
///     SIP_TRANSPORT_BENCH=1 swift test -c release -Xswiftc -enable-testing --filter ThroughputTests
@Suite(
    "throughput (printed)", .serialized,
    .enabled(if: ProcessInfo.processInfo.environment["SIP_TRANSPORT_BENCH"] != nil, "set SIP_TRANSPORT_BENCH=1"))
struct ThroughputTests {
    static let count = 200_000

    static func datagram(_ i: Int) -> [UInt8] {
        var m = bytes(sipRequest(callID: "load-\(i)"))
        m += [UInt8](repeating: UInt8(ascii: "x"), count: max(0, 400 - m.count))
        return m
    }

    @Test func udpReceive() async throws {
        let transport = makeTransport()
        defer { transport.stop() }
        let received = Atomic<Int>(0)
        let lastAt = Atomic<UInt64>(0)
        // The receiving thread's CPU time at the first message and every 1024th.
        let cpuFirst = Atomic<UInt64>(0), cpuLast = Atomic<UInt64>(0), cpuLastCount = Atomic<Int>(0)
        let listener = try #require(
            try transport.start(listen: [SIPListenAddress(parsing: "udp:127.0.0.1:0")]) { inbound in
                let n = received.add(1, ordering: .relaxed).newValue
                lastAt.store(inbound.receivedAt, ordering: .relaxed)
                if n == 1 { cpuFirst.store(Self.threadCPU(), ordering: .relaxed) }
                if n & 1023 == 0 {
                    cpuLast.store(Self.threadCPU(), ordering: .relaxed)
                    cpuLastCount.store(n, ordering: .relaxed)
                }
            }.first)
        let payload = Self.datagram(0)
        let port = listener.port
        let count = Self.count
        let (start, blastEnd) = try await blocking { () -> (UInt64, UInt64) in
            let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            defer { close(fd) }
            let to = PeerAddress(ip: "127.0.0.1", port: port)
            let start = Self.now()
            payload.withUnsafeBytes { buf in
                to.withSockaddr { sa, len in
                    for _ in 0..<count { _ = sendto(fd, buf.baseAddress, buf.count, 0, sa, len) }
                }
            }
            return (start, Self.now())
        }
        // Wait until nothing more comes.
        var seen = -1
        while received.load(ordering: .relaxed) != seen {
            seen = received.load(ordering: .relaxed)
            try await Task.sleep(for: .milliseconds(200))
        }
        let got = received.load(ordering: .relaxed)
        let seconds = Double(max(lastAt.load(ordering: .relaxed), blastEnd) - start) / 1e9
        let blast = Double(blastEnd - start) / 1e9
        print(
            "UDP receive: \(count) datagrams of \(payload.count) bytes blasted in \(fmt(blast)) s; "
                + "received \(got) (\(fmt(Double(got) / seconds)) msg/s), lost \(count - got) "
                + "(stats: \(transport.stats))")
        let cpuCount = cpuLastCount.load(ordering: .relaxed)
        if cpuCount > 1 {
            let perMessage = Double(cpuLast.load(ordering: .relaxed) - cpuFirst.load(ordering: .relaxed)) / Double(cpuCount - 1)
            print(
                "UDP receive: the transport thread spent \(fmt(perMessage)) ns CPU a message "
                    + "(reading, copying, the sink): ~\(fmt(1e9 / perMessage)) msg/s a thread at 100%")
        }
        #expect(got > 0)
    }

    @Test func udpSend() async throws {
        let transport = makeTransport()
        defer { transport.stop() }
        let listener = try #require(
            try transport.start(listen: [SIPListenAddress(parsing: "udp:127.0.0.1:0")], sink: { _ in }).first)
        let peer = try UDPPeer()
        let destination = try SIPSocketAddress(ip: "127.0.0.1", port: peer.port)
        let payload = Self.datagram(0)
        let threads = 2
        let perThread = Self.count / threads
        let start = Self.now()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<threads {
                group.addTask {
                    try await blocking {
                        for _ in 0..<perThread { transport.send(payload, to: destination, via: listener) }
                    }
                }
            }
            try await group.waitForAll()
        }
        let queued = Self.now()
        _ = try await eventually(timeout: .seconds(30), "the sends to finish") {
            let s = transport.stats
            return s.sent + s.errors >= threads * perThread ? true : nil
        }
        let done = Self.now()
        let stats = transport.stats
        print(
            "UDP send: \(threads) threads queued \(threads * perThread) datagrams in \(fmt(Double(queued - start) / 1e9)) s, "
                + "all written after \(fmt(Double(done - start) / 1e9)) s "
                + "(\(fmt(Double(stats.sent) / (Double(done - start) / 1e9))) msg/s; sent \(stats.sent), errors \(stats.errors))")
        #expect(stats.sent > 0)
    }

    /// CPU time of the calling thread, ns.
    static func threadCPU() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}

func fmt(_ x: Double) -> String { String(format: "%.3g", x) }
