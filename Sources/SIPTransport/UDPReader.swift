import CKSRSys
import KSRBase
import Logging
import NIOCore
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads the UDP listeners' datagrams on the thread that owns it, for a transport started with
/// `udpReading: .external`: each receiver thread makes one (`SIPTransport.makeUDPReader`),
/// waits on `descriptors` itself (epoll) and calls `read` when one has input. Several readers
/// share each socket, as Kamailio's worker processes do, so a message goes from the kernel
/// straight to the thread that handles it.
///
/// Not thread-safe: one thread uses it. Its descriptors are its own (duplicates), so they
/// stay valid until `close`, whatever the transport does meanwhile.
public final class SIPUDPReader {
    /// The descriptors to wait on, one per UDP listener.
    public let descriptors: [CInt]
    private let listeners: [SIPListener]
    private let counters: Counters
    private let logger: Logger
    private let maxSize: Int
    private let batch: Int
    private let slots: UnsafeMutablePointer<ksr_datagram>
    private let storage: UnsafeMutableRawPointer
    private var oversizeLog = LogThrottle()
    private var closed = false

    init(sockets: [(CInt, SIPListener)], batch: Int, maxSize: Int, counters: Counters, logger: Logger) {
        descriptors = sockets.map(\.0)
        listeners = sockets.map(\.1)
        self.counters = counters
        self.logger = logger
        self.maxSize = maxSize
        self.batch = min(64, max(1, batch))
        let slice = maxSize + 1  // one more: a longer datagram shows as too long
        storage = UnsafeMutableRawPointer.allocate(byteCount: slice * self.batch, alignment: 16)
        slots = .allocate(capacity: self.batch)
        for i in 0..<self.batch {
            var slot = ksr_datagram()
            slot.buffer = storage + i * slice
            slot.capacity = slice
            (slots + i).initialize(to: slot)
        }
    }

    deinit {
        close()
        slots.deallocate()
        storage.deallocate()
    }

    /// Reads what is waiting on `fd` (one of `descriptors`), at most one batch, without
    /// blocking, and hands each message to `deliver`. Returns how many datagrams were read
    /// (0: nothing was waiting). Datagrams over the size limit are dropped and counted.
    @discardableResult
    public func read(_ fd: CInt, _ deliver: (SIPInbound) -> Void) -> Int {
        guard !closed, let k = descriptors.firstIndex(of: fd) else { return 0 }
        let got = ksr_recv_datagrams(fd, slots, CUnsignedInt(batch))
        guard got > 0 else {
            let code = errno
            if got < 0, code != EAGAIN, code != EWOULDBLOCK {
                counters.errors.add(1, ordering: .relaxed)
                logger.debug("UDP error on \(listeners[k]): \(errnoText(code))")
            }
            return 0
        }
        let listener = listeners[k]
        let receivedAt = monotonicNanos()
        for i in 0..<Int(got) {
            let slot = slots[i]
            let source = Self.address(slot.from)
            if slot.truncated != 0 || slot.length > maxSize {
                counters.dropped.add(1, ordering: .relaxed)
                if let held = oversizeLog.admit() {
                    let more = held > 0 ? " (and \(held) more)" : ""
                    let from = source.map(\.description) ?? "?"
                    logger.warning("dropped a UDP datagram over \(maxSize) bytes from \(from) on \(listener)\(more)")
                }
                continue
            }
            guard slot.length >= UDPReceiveHandler.minimumSize, let source else { continue }
            let bytes = [UInt8](UnsafeRawBufferPointer(start: slot.buffer, count: slot.length))
            counters.received.add(1, ordering: .relaxed)
            deliver(SIPInbound(bytes: bytes, source: source, local: listener, connection: nil, receivedAt: receivedAt))
        }
        return Int(got)
    }

    /// Closes the descriptors (the socket itself closes with the last of them).
    public func close() {
        guard !closed else { return }
        closed = true
        for fd in descriptors { _ = systemClose(fd) }
    }

    private static func address(_ storage: sockaddr_storage) -> SIPSocketAddress? {
        var storage = storage
        return withUnsafePointer(to: &storage) { p -> SIPSocketAddress? in
            switch CInt(p.pointee.ss_family) {
            // No host text: NIO would format it (inet_ntop) for every datagram; `ip` formats it
            // from the address when asked.
            case AF_INET:
                return p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { SIPSocketAddress(SocketAddress($0.pointee, host: "")) }
            case AF_INET6:
                return p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { SIPSocketAddress(SocketAddress($0.pointee, host: "")) }
            default:
                return nil
            }
        }
    }
}
