import Foundation
import Logging
import SIPTransport
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// Runs blocking work on its own thread, never on the cooperative pool.
func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.stackSize = 1 << 20
        thread.start()
    }
}

/// Polls `probe` until it gives a value or `timeout` passes.
func eventually<T>(
    timeout: Duration = .seconds(5), _ what: String = "condition", _ probe: () throws -> T?
) async throws -> T {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while true {
        if let value = try probe() { return value }
        if clock.now >= deadline { throw TestFailure("timed out waiting for \(what)") }
        try await Task.sleep(for: .milliseconds(2))
    }
}

/// Collects what the transport delivers.
final class Inbox: Sendable {
    private let items = Mutex<[SIPInbound]>([])

    var sink: SIPInboundSink {
        { inbound in self.items.withLock { $0.append(inbound) } }
    }

    var all: [SIPInbound] { items.withLock { $0 } }
    var count: Int { items.withLock { $0.count } }

    /// Waits for `n` messages in all.
    func wait(for n: Int, timeout: Duration = .seconds(5)) async throws -> [SIPInbound] {
        try await eventually(timeout: timeout, "\(n) messages (have \(count))") {
            let got = all
            return got.count >= n ? got : nil
        }
    }
}

/// A transport quiet in the test log (warnings only).
func makeTransport(_ configuration: SIPTransport.Configuration = .init()) -> SIPTransport {
    var logger = Logger(label: "test.sip.transport")
    logger.logLevel = .critical
    return SIPTransport(configuration: configuration, logger: logger)
}

/// A SIP request with a correct Content-Length.
func sipRequest(method: String = "OPTIONS", callID: String = "abc@test", body: String = "", extraHeaders: String = "")
    -> String
{
    "\(method) sip:alice@127.0.0.1 SIP/2.0\r\n"
        + "Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-\(callID)\r\n"
        + "From: <sip:bob@127.0.0.1>;tag=1\r\n"
        + "To: <sip:alice@127.0.0.1>\r\n"
        + "Call-ID: \(callID)\r\n"
        + "CSeq: 1 \(method)\r\n"
        + extraHeaders
        + "Content-Length: \(body.utf8.count)\r\n"
        + "\r\n"
        + body
}

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// Is ::1 usable here?
let ipv6LoopbackAvailable: Bool = {
    let fd = socket(AF_INET6, Int32(SOCK_DGRAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = sockaddr_in6()
    address.sin6_family = sa_family_t(AF_INET6)
    address.sin6_addr = in6addr_loopback
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) == 0
        }
    }
}()

// MARK: - Plain POSIX sockets for the other side

/// A socket address for a loopback IP and port.
struct PeerAddress {
    var storage = sockaddr_storage()
    var length: socklen_t

    init(ip: String, port: Int) {
        if ip.contains(":") {
            var a = sockaddr_in6()
            a.sin6_family = sa_family_t(AF_INET6)
            a.sin6_port = in_port_t(UInt16(port).bigEndian)
            _ = inet_pton(AF_INET6, ip, &a.sin6_addr)
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            withUnsafeMutableBytes(of: &storage) { dst in withUnsafeBytes(of: a) { dst.copyMemory(from: $0) } }
        } else {
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_port = in_port_t(UInt16(port).bigEndian)
            _ = inet_pton(AF_INET, ip, &a.sin_addr)
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
            withUnsafeMutableBytes(of: &storage) { dst in withUnsafeBytes(of: a) { dst.copyMemory(from: $0) } }
        }
    }

    var family: Int32 { Int32(storage.ss_family) }

    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        withUnsafePointer(to: storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
        }
    }

    static func port(of storage: sockaddr_storage) -> Int {
        var s = storage
        if Int32(s.ss_family) == AF_INET6 {
            return withUnsafeBytes(of: &s) { Int(UInt16(bigEndian: $0.load(as: sockaddr_in6.self).sin6_port)) }
        }
        return withUnsafeBytes(of: &s) { Int(UInt16(bigEndian: $0.load(as: sockaddr_in.self).sin_port)) }
    }
}

func localPort(_ fd: Int32) -> Int {
    var storage = sockaddr_storage()
    var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
    _ = withUnsafeMutablePointer(to: &storage) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return PeerAddress.port(of: storage)
}

// At file scope, where the names are the C functions (in the classes they are methods).
func rawWrite(_ fd: Int32, _ p: UnsafeRawPointer?, _ n: Int) -> Int { write(fd, p, n) }
func rawAccept(_ fd: Int32) -> Int32 { accept(fd, nil, nil) }

/// A non-blocking socket of `type` bound to an ephemeral port on `ip`, listening when given a
/// backlog; closed again when that fails.
func boundSocket(ip: String, type: Int32, listenBacklog: Int32? = nil) throws -> Int32 {
    let local = PeerAddress(ip: ip, port: 0)
    let fd = socket(local.family, type, 0)
    guard fd >= 0 else { throw TestFailure("socket: \(errno)") }
    guard local.withSockaddr({ bind(fd, $0, $1) }) == 0, listenBacklog.map({ listen(fd, $0) == 0 }) ?? true else {
        let e = errno
        close(fd)
        throw TestFailure("\(listenBacklog == nil ? "bind" : "bind/listen"): \(e)")
    }
    setNonBlocking(fd)
    return fd
}

func setNonBlocking(_ fd: Int32) {
    _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
}

/// A non-blocking UDP socket bound to a loopback port.
final class UDPPeer {
    let fd: Int32
    let ip: String
    let port: Int

    init(ip: String = "127.0.0.1") throws {
        self.ip = ip
        let fd = try boundSocket(ip: ip, type: Int32(SOCK_DGRAM.rawValue))
        self.fd = fd
        port = localPort(fd)
    }

    deinit { close(fd) }

    @discardableResult
    func send(_ data: [UInt8], to ip: String, port: Int) -> Bool {
        let to = PeerAddress(ip: ip, port: port)
        return data.withUnsafeBytes { buf in
            to.withSockaddr { sendto(fd, buf.baseAddress, buf.count, 0, $0, $1) }
        } == data.count
    }

    /// One datagram and its source port, if one is waiting.
    func receive() -> (bytes: [UInt8], port: Int)? {
        var buffer = [UInt8](repeating: 0, count: 70_000)
        var from = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let n = buffer.withUnsafeMutableBytes { buf in
            withUnsafeMutablePointer(to: &from) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    recvfrom(fd, buf.baseAddress, buf.count, 0, $0, &length)
                }
            }
        }
        guard n >= 0 else { return nil }
        return (Array(buffer[..<n]), PeerAddress.port(of: from))
    }
}

/// A non-blocking TCP client connected to a loopback port.
final class TCPPeer {
    let fd: Int32
    let port: Int
    private(set) var received: [UInt8] = []
    private(set) var closedByPeer = false

    init(ip: String = "127.0.0.1", port serverPort: Int) throws {
        let to = PeerAddress(ip: ip, port: serverPort)
        let fd = socket(to.family, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: \(errno)") }
        guard to.withSockaddr({ connect(fd, $0, $1) }) == 0 else {
            let e = errno
            close(fd)
            throw TestFailure("connect: \(e)")
        }
        setNonBlocking(fd)
        self.fd = fd
        port = localPort(fd)
    }

    init(accepted fd: Int32) {
        self.fd = fd
        setNonBlocking(fd)
        port = localPort(fd)
    }

    deinit { closeNow() }

    private var isClosed = false

    /// Closes this end (the peer sees an orderly close).
    func closeNow() {
        guard !isClosed else { return }
        isClosed = true
        close(fd)
    }

    /// The port of the other end.
    var remotePort: Int {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) }
        }
        return PeerAddress.port(of: storage)
    }

    func write(_ data: [UInt8]) throws {
        var offset = 0
        while offset < data.count {
            let n = data[offset...].withUnsafeBytes { rawWrite(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EAGAIN { usleep(1000); continue }
                throw TestFailure("write: \(errno)")
            }
            offset += n
        }
    }

    func write(_ s: String) throws { try write(bytes(s)) }

    /// Reads what is waiting; notes an orderly close or a reset.
    func poll() {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                received += buffer[..<n]
            } else if n == 0 {
                closedByPeer = true
                return
            } else {
                if errno == ECONNRESET { closedByPeer = true }
                return
            }
        }
    }

    /// Waits until `count` bytes have come.
    func receive(count: Int, timeout: Duration = .seconds(5)) async throws -> [UInt8] {
        try await eventually(timeout: timeout, "\(count) bytes over TCP") {
            poll()
            return received.count >= count ? received : nil
        }
    }

    /// Waits for the other side to close.
    func waitClosed(timeout: Duration = .seconds(5)) async throws {
        _ = try await eventually(timeout: timeout, "the connection to close") { () -> Bool? in
            poll()
            return closedByPeer ? true : nil
        }
    }
}

/// A TCP server on a loopback port, for outgoing connections.
final class TCPServerPeer {
    let fd: Int32
    let port: Int

    init(ip: String = "127.0.0.1") throws {
        let fd = try boundSocket(ip: ip, type: Int32(SOCK_STREAM.rawValue), listenBacklog: 16)
        self.fd = fd
        port = localPort(fd)
    }

    deinit { close(fd) }

    /// Accepted connections so far.
    func accept() -> TCPPeer? {
        let client = rawAccept(fd)
        return client >= 0 ? TCPPeer(accepted: client) : nil
    }
}
