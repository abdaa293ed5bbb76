import CKSRSys
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Making a bound UDP socket for a listener (NIO reads it; sends go straight to it).
enum UDPSocket {
    /// A bound, non-blocking UDP socket; throws `IOError` (errno) on failure.
    static func make(_ address: SIPListenAddress, receiveBuffer: Int, sendBuffer: Int?) throws -> CInt {
        let local = try SocketAddress(ipAddress: address.ip, port: address.port)
        let family = address.isIPv6 ? AF_INET6 : AF_INET
        #if os(Linux)
        let fd = socket(family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #else
        let fd = socket(family, SOCK_DGRAM, 0)
        #endif
        guard fd >= 0 else { throw IOError(errnoCode: errno, reason: "socket") }
        do {
            if address.isIPv6 {
                // "::" then takes IPv6 only, so that 0.0.0.0 on the same port can be a listener too.
                try set(fd, CInt(IPPROTO_IPV6), IPV6_V6ONLY, 1, "IPV6_V6ONLY")
            }
            if receiveBuffer > 0 { setReceiveBuffer(fd, receiveBuffer) }
            if let sendBuffer, sendBuffer > 0 { try set(fd, SOL_SOCKET, SO_SNDBUF, CInt(clamping: sendBuffer), "SO_SNDBUF") }
            let flags = fcntl(fd, F_GETFL)
            guard flags >= 0, fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0 else {
                throw IOError(errnoCode: errno, reason: "fcntl")
            }
            let rc = local.withSockAddr { bind(fd, $0, socklen_t($1)) }
            guard rc == 0 else { throw IOError(errnoCode: errno, reason: "bind") }
            return fd
        } catch {
            close(fd)
            throw error
        }
    }

    /// SO_RCVBUF; where the kernel caps it lower (net.core.rmem_max), SO_RCVBUFFORCE, which
    /// needs CAP_NET_ADMIN. Best effort: the receive buffer is a tuning, not a condition.
    private static func setReceiveBuffer(_ fd: CInt, _ wanted: Int) {
        try? set(fd, SOL_SOCKET, SO_RCVBUF, CInt(clamping: wanted), "SO_RCVBUF")
        #if os(Linux)
        var got: CInt = 0
        var length = socklen_t(MemoryLayout<CInt>.size)
        // Linux reports twice what was set (it counts its bookkeeping).
        if getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &length) == 0, Int(got) < wanted * 2 {
            try? set(fd, SOL_SOCKET, SO_RCVBUFFORCE, CInt(clamping: wanted), "SO_RCVBUFFORCE")
        }
        #endif
    }

    private static func set(_ fd: CInt, _ level: CInt, _ name: CInt, _ value: CInt, _ what: String) throws {
        var v = value
        guard setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<CInt>.size)) == 0 else {
            throw IOError(errnoCode: errno, reason: what)
        }
    }

    /// The port a socket is bound to.
    static func localPort(_ fd: CInt) -> Int {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard rc == 0 else { return 0 }
        // sin_port and sin6_port both sit at offset 2, in network order.
        return withUnsafeBytes(of: storage) { Int(UInt16(bigEndian: $0.loadUnaligned(fromByteOffset: 2, as: UInt16.self))) }
    }

    /// SO_RCVBUF as the kernel reports it.
    static func receiveBufferSize(_ fd: CInt) -> Int {
        var got: CInt = 0
        var length = socklen_t(MemoryLayout<CInt>.size)
        return getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &length) == 0 ? Int(got) : 0
    }
}
