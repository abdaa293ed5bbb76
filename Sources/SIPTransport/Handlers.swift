import KSRBase
import Logging
import NIOCore
import NIOPosix
import SIP
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `CLOCK_MONOTONIC` in nanoseconds (the clock of `KSRBase.SystemClock`).
@inline(__always)
func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// At most one line a second for a kind of event that an attacker can repeat at will;
/// the lines held back are counted in the next one.
struct LogThrottle {
    private var last: UInt64 = 0
    private var held = 0

    /// Nil: stay quiet. Otherwise how many were held back since the last line.
    mutating func admit() -> Int? {
        let now = monotonicNanos()
        if last != 0, now &- last < 1_000_000_000 {
            held += 1
            return nil
        }
        last = now
        defer { held = 0 }
        return held
    }
}

/// Reads a UDP listener's datagrams: each one a message for the sink.
final class UDPReceiveHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    /// Kamailio's MIN_UDP_PACKET: shorter datagrams are NAT keep-alives and probes.
    static let minimumSize = 20

    private let core: TransportCore
    private let listener: SIPListener
    private let sink: SIPInboundSink
    private let maxSize: Int
    private var oversizeLog = LogThrottle()

    init(core: TransportCore, listener: SIPListener) {
        self.core = core
        self.listener = listener
        self.sink = core.sink
        self.maxSize = core.configuration.maxMessageSize
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var envelope = unwrapInboundIn(data)
        let size = envelope.data.readableBytes
        if size > maxSize {
            core.counters.dropped.add(1, ordering: .relaxed)
            if let held = oversizeLog.admit() {
                let more = held > 0 ? " (and \(held) more)" : ""
                let from = SIPSocketAddress(envelope.remoteAddress)
                core.logger.warning("dropped a UDP datagram over \(maxSize) bytes from \(from) on \(listener)\(more)")
            }
            return
        }
        guard size >= Self.minimumSize else { return }
        let bytes = envelope.data.readBytes(length: size)!
        core.counters.received.add(1, ordering: .relaxed)
        sink(
            SIPInbound(
                bytes: bytes, source: SIPSocketAddress(envelope.remoteAddress), local: listener, connection: nil,
                receivedAt: monotonicNanos()))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Datagram sockets stay open on errors (an ICMP unreachable, a full buffer).
        core.counters.errors.add(1, ordering: .relaxed)
        core.logger.debug("UDP error on \(listener): \(describe(error))")
    }
}

/// One TCP connection, accepted or opened: frames the stream, delivers the messages, answers
/// keep-alive pings, and closes on an unframeable stream or when idle.
final class TCPConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let core: TransportCore
    private let listener: SIPListener
    /// For an outgoing connection: the destination it is kept for.
    private let destination: SIPSocketAddress?
    private let sink: SIPInboundSink
    private var framer: SIPStreamFramer
    private var connection: SIPConnection?
    private var closing = false

    init(core: TransportCore, listener: SIPListener, destination: SIPSocketAddress?) {
        self.core = core
        self.listener = listener
        self.destination = destination
        self.sink = core.sink
        self.framer = SIPStreamFramer(maxMessageSize: core.configuration.maxMessageSize)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { opened(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        opened(context)
        context.fireChannelActive()
    }

    private func opened(_ context: ChannelHandlerContext) {
        guard connection == nil else { return }
        let remote = destination ?? context.channel.remoteAddress.map(SIPSocketAddress.init)
        guard let remote else {
            context.close(promise: nil)
            return
        }
        let connection = SIPConnection(
            id: core.nextConnectionID(), channel: context.channel, remote: remote, local: listener,
            isOutgoing: destination != nil, core: core)
        self.connection = connection
        core.opened(connection)
    }

    func channelInactive(context: ChannelHandlerContext) {
        closing = true
        if let connection {
            core.closed(connection)
        }
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing, let connection else { return }
        framer.append(contentsOf: unwrapInboundIn(data).readableBytesView)
        let pingsBefore = framer.keepAlivePings
        do {
            while let bytes = try framer.next() {
                core.counters.received.add(1, ordering: .relaxed)
                sink(
                    SIPInbound(
                        bytes: bytes, source: connection.remote, local: listener, connection: connection,
                        receivedAt: monotonicNanos()))
                if closing { return }
            }
        } catch {
            core.counters.dropped.add(1, ordering: .relaxed)
            core.logger.warning("closing TCP connection from \(connection.remote) on \(listener): \(error.reason)")
            closing = true
            context.close(promise: nil)
            return
        }
        // Each CRLF CRLF keep-alive ping (RFC 5626 §3.5.1) gets a CRLF pong.
        for _ in pingsBefore..<framer.keepAlivePings {
            var pong = context.channel.allocator.buffer(capacity: 2)
            pong.writeStaticString("\r\n")
            context.writeAndFlush(wrapOutboundOut(pong), promise: nil)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .all {
            if let connection {
                core.logger.debug("closing idle TCP connection \(connection)")
            }
            closing = true
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        core.counters.errors.add(1, ordering: .relaxed)
        core.logger.debug("TCP connection \(connection.map { "\($0)" } ?? "?") error: \(describe(error))")
        closing = true
        context.close(promise: nil)
    }
}

/// A short reason for a NIO error.
func describe(_ error: any Error) -> String {
    switch error {
    case let e as SIPTransportError: return e.message
    case let e as IOError: return errnoText(e.errnoCode)
    case let e as NIOConnectionError:
        if let first = e.connectionErrors.first { return describe(first.error) }
        return "cannot connect to \(e.host):\(e.port)"
    case let e as SocketAddressError:
        switch e {
        case .unknown(let host, _): return "unknown host \(host)"
        case .failedToParseIPString(let s): return "invalid address \(s)"
        default: return String(describing: e)
        }
    case let e as ChannelError:
        switch e {
        case .connectTimeout: return "connect timed out"
        case .ioOnClosedChannel, .alreadyClosed, .eof, .outputClosed: return "connection closed"
        default: return String(describing: e)
        }
    case let e as EventLoopError:
        return e == .shutdown ? "transport stopped" : String(describing: e)
    default:
        return String(describing: error)
    }
}
