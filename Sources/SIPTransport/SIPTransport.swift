import Dispatch
import KSRBase
import Logging
import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// SIP over UDP and TCP on SwiftNIO.
///
/// `start` opens the listeners (Kamailio's `listen`); every whole message received goes to the
/// sink, on a transport thread. Sending is fire-and-forget from any thread (worker pthreads
/// included): UDP straight from a listener's socket (so the source port is the listener's),
/// TCP over the connection a message came on, or over a connection kept per destination
/// (accepted ones included, as Kamailio does), opened on first use.
///
/// Streams are framed by Content-Length (required on TCP, RFC 3261 §18.3); a message without
/// it, or over `maxMessageSize`, closes its connection. Idle connections are closed after
/// `tcpIdleTimeout`. UDP datagrams are read `udpMessagesPerRead` at a time (`recvmmsg`);
/// datagrams over `maxMessageSize` are dropped. With `udpReading: .external` the event loop
/// does not read UDP sockets: the caller's threads do, each with its own `SIPUDPReader`.
public final class SIPTransport: Sendable {
    /// Who reads the UDP listeners.
    public enum UDPReading: Sendable {
        /// The event loop; every datagram goes to the sink.
        case eventLoop
        /// The caller's threads, through `makeUDPReader()` (the sink gets only TCP messages).
        case external
    }

    public struct Configuration: Sendable {
        /// Threads of the event loop group serving every socket.
        public var eventLoopThreads: Int
        /// The largest message accepted, in bytes (Kamailio's BUF_SIZE).
        public var maxMessageSize: Int
        /// A TCP connection with no traffic either way for this long is closed (Kamailio's
        /// `tcp_connection_lifetime`); nil keeps them.
        public var tcpIdleTimeout: Duration?
        /// How long opening an outgoing TCP connection may take.
        public var tcpConnectTimeout: Duration
        /// SO_RCVBUF asked for on UDP sockets (when the system's limit is lower, SO_RCVBUFFORCE
        /// is tried, which needs CAP_NET_ADMIN).
        public var udpReceiveBufferSize: Int
        /// SO_SNDBUF for UDP sockets; nil leaves the system's default.
        public var udpSendBufferSize: Int?
        /// Datagrams read by one `recvmmsg` call (1: plain `recvmsg`).
        public var udpMessagesPerRead: Int
        /// Pending connections on a TCP listener.
        public var tcpBacklog: Int32
        /// Who reads the UDP listeners.
        public var udpReading: UDPReading

        public init(
            eventLoopThreads: Int = 1,
            maxMessageSize: Int = 65_535,
            tcpIdleTimeout: Duration? = .seconds(120),
            tcpConnectTimeout: Duration = .seconds(10),
            udpReceiveBufferSize: Int = 4 << 20,
            udpSendBufferSize: Int? = nil,
            udpMessagesPerRead: Int = 16,
            tcpBacklog: Int32 = 1024,
            udpReading: UDPReading = .eventLoop
        ) {
            self.eventLoopThreads = eventLoopThreads
            self.maxMessageSize = maxMessageSize
            self.tcpIdleTimeout = tcpIdleTimeout
            self.tcpConnectTimeout = tcpConnectTimeout
            self.udpReceiveBufferSize = udpReceiveBufferSize
            self.udpSendBufferSize = udpSendBufferSize
            self.udpMessagesPerRead = udpMessagesPerRead
            self.tcpBacklog = tcpBacklog
            self.udpReading = udpReading
        }
    }

    public let configuration: Configuration
    private let logger: Logger
    private let counters = Counters()
    private let state = Mutex<TransportCore?>(nil)

    public init(configuration: Configuration = Configuration(), logger: Logger = Logger(label: "ksr.sip.transport")) {
        self.configuration = configuration
        self.logger = logger
    }

    deinit { stop() }

    /// Opens every listener, in order; on any failure closes those already open and throws
    /// ("cannot listen on udp:127.0.0.1:5060: address already in use"). Returns the listeners
    /// as bound. Must not be called on an event loop.
    @discardableResult
    public func start(listen addresses: [SIPListenAddress], sink: @escaping SIPInboundSink) throws(SIPTransportError)
        -> [SIPListener]
    {
        guard configuration.maxMessageSize > 0, configuration.eventLoopThreads > 0 else {
            throw SIPTransportError("invalid SIP transport configuration")
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: configuration.eventLoopThreads)
        let core = TransportCore(
            group: group, configuration: configuration, logger: logger, counters: counters, sink: sink)
        let installed: Bool = state.withLock { s in
            guard s == nil else { return false }
            s = core
            return true
        }
        guard installed else {
            TransportCore.shutDown(group)
            throw SIPTransportError("SIP transport already started")
        }
        do {
            for (index, address) in addresses.enumerated() {
                try core.open(address, index: index)
            }
        } catch {
            core.shutdown()
            state.withLock { $0 = nil }
            throw error
        }
        let listeners = core.listeners
        if !listeners.isEmpty {
            logger.info("SIP listening on \(listeners.map(\.description).joined(separator: ", "))")
        }
        return listeners
    }

    /// The listeners as bound (actual ports), in `listen` order; empty when stopped.
    public var listeners: [SIPListener] {
        state.withLock { $0 }?.listeners ?? []
    }

    /// The listen addresses as bound: the real port where 0 was asked.
    public var boundAddresses: [SIPListenAddress] { listeners.map(\.address) }

    /// Counters since this transport was made.
    public var stats: SIPTransportStats { counters.snapshot }

    /// A reader of every UDP listener for one thread (`udpReading: .external`), reading
    /// `batch` datagrams at most per call; nil when stopped, in `.eventLoop` mode, or when the
    /// descriptors cannot be duplicated.
    public func makeUDPReader(batch: Int = 4) -> SIPUDPReader? {
        guard configuration.udpReading == .external, let core = state.withLock({ $0 }) else { return nil }
        var sockets: [(CInt, SIPListener)] = []
        for (fd, listener) in core.receiveSockets {
            let copy = dup(fd)
            guard copy >= 0 else {
                for (c, _) in sockets { _ = systemClose(c) }
                return nil
            }
            sockets.append((copy, listener))
        }
        return SIPUDPReader(sockets: sockets, batch: batch, maxSize: configuration.maxMessageSize,
                            counters: counters, logger: logger)
    }

    /// Sends over `listener`'s protocol. UDP: `sendto` on the listener's socket (so the source
    /// is its address and port), right here on the calling thread; the completion is called
    /// before this returns. TCP: over the connection kept for `destination` (accepted or opened),
    /// else a new one from the listener's address; queued for a transport thread, where the
    /// completion is called once written (or failed).
    public func send(
        _ bytes: [UInt8], to destination: SIPSocketAddress, via listener: SIPListener,
        completion: SIPSendCompletion? = nil
    ) {
        switch listener.proto {
        case .udp:
            guard let endpoint = listener.endpoint else {
                return fail(completion, "\(listener) is not a listener of a running transport")
            }
            guard destination.isIPv6 == listener.isIPv6 else {
                return fail(completion, "cannot send to \(destination) from \(listener): address family differs")
            }
            endpoint.send(bytes, to: destination, completion: completion)
        case .tcp:
            guard let core = state.withLock({ $0 }) else { return fail(completion, "transport stopped") }
            core.sendStream(bytes, to: destination, listener: listener, completion: completion)
        }
    }

    /// Sends with the first listener of `proto` and of the destination's address family (TCP:
    /// over a kept connection if there is one).
    public func send(
        _ bytes: [UInt8], to destination: SIPSocketAddress, proto: SIPTransportProtocol,
        completion: SIPSendCompletion? = nil
    ) {
        guard let core = state.withLock({ $0 }) else { return fail(completion, "transport stopped") }
        switch proto {
        case .udp:
            guard let listener = core.listeners.first(where: { $0.proto == .udp && $0.isIPv6 == destination.isIPv6 })
            else {
                return fail(
                    completion, "no udp listener for \(destination.isIPv6 ? "IPv6" : "IPv4") to send to \(destination)")
            }
            send(bytes, to: destination, via: listener, completion: completion)
        case .tcp:
            guard let listener = core.outgoingListener(for: destination, via: nil) else {
                return fail(completion, "no listener to send to \(destination) from")
            }
            core.sendStream(bytes, to: destination, listener: listener, completion: completion)
        }
    }

    /// Answers a received message where it came from: on its TCP connection, or over UDP from
    /// the listener it arrived on to its source.
    public func send(_ bytes: [UInt8], replyingTo inbound: SIPInbound, completion: SIPSendCompletion? = nil) {
        if let connection = inbound.connection {
            connection.send(bytes, completion: completion)
        } else {
            send(bytes, to: inbound.source, via: inbound.local, completion: completion)
        }
    }

    /// Sends over a TCP connection a message came on (a reply). Fails if it has closed since.
    public func send(_ bytes: [UInt8], on connection: SIPConnection, completion: SIPSendCompletion? = nil) {
        connection.send(bytes, completion: completion)
    }

    /// Closes the listeners and every connection and stops the threads; sends still queued fail.
    /// Waits for all of it; must not be called on an event loop (nor from the sink or a
    /// completion). The transport can be started again.
    public func stop() {
        guard let core = state.withLock({ s -> TransportCore? in
            defer { s = nil }
            return s
        }) else { return }
        core.shutdown()
        logger.debug("SIP transport stopped")
    }

    private func fail(_ completion: SIPSendCompletion?, _ message: String) {
        counters.errors.add(1, ordering: .relaxed)
        completion?(.failure(SIPTransportError(message)))
    }
}

/// A TCP connection, to answer on or to relay over. Compared by identity.
public final class SIPConnection: Sendable, Hashable, CustomStringConvertible {
    /// Unique within the transport.
    public let id: UInt64
    /// The peer: for an accepted connection its address and ephemeral port.
    public let remote: SIPSocketAddress
    /// The listener it was accepted on, or the one it was opened via.
    public let local: SIPListener
    /// Opened by this side (to relay), rather than accepted.
    public let isOutgoing: Bool

    let channel: any Channel
    let outbox: Outbox
    private let gate: Gate
    private let open = Atomic<Bool>(true)

    init(id: UInt64, channel: any Channel, remote: SIPSocketAddress, local: SIPListener, isOutgoing: Bool, core: TransportCore) {
        self.id = id
        self.channel = channel
        self.remote = remote
        self.local = local
        self.isOutgoing = isOutgoing
        self.gate = core.gate
        self.outbox = Outbox(channel: channel, counters: core.counters)
    }

    /// Still open (as far as this side knows).
    public var isOpen: Bool { open.load(ordering: .relaxed) }

    /// "tcp:127.0.0.1:5060<-127.0.0.1:40312#3" (accepted; "->" for outgoing).
    public var description: String {
        "\(local.proto):\(SIPListenAddress.hostPort(local.ip, local.port))\(isOutgoing ? "->" : "<-")\(remote)#\(id)"
    }

    public static func == (a: SIPConnection, b: SIPConnection) -> Bool { a === b }
    public func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }

    func send(_ bytes: [UInt8], completion: SIPSendCompletion?) {
        guard gate.enter() else {
            outbox.counters.errors.add(1, ordering: .relaxed)
            completion?(.failure(SIPTransportError("transport stopped")))
            return
        }
        let queued = outbox.send(channel.allocator.buffer(bytes: bytes), completion: completion)
        gate.leave()
        if !queued {
            outbox.counters.errors.add(1, ordering: .relaxed)
            completion?(.failure(SIPTransportError("connection closed")))
        }
    }

    func markClosed() {
        open.store(false, ordering: .relaxed)
        outbox.close()
    }
}

/// What a UDP listener sends through: its socket (a duplicate descriptor, so that it stays
/// valid until `stop` whatever NIO does with its own), written with `sendto` on the calling
/// thread, as Kamailio's workers do. No event loop hop; a failed send fails only itself.
final class ListenerEndpoint: Sendable {
    private let fd: CInt
    private let gate: Gate
    private let counters: Counters
    private let name: String
    private let closed = Atomic<Bool>(false)

    init(fd: CInt, name: String, core: TransportCore) {
        self.fd = fd
        self.name = name
        self.gate = core.gate
        self.counters = core.counters
    }

    func send(_ bytes: [UInt8], to destination: SIPSocketAddress, completion: SIPSendCompletion?) {
        guard gate.enter() else {
            counters.errors.add(1, ordering: .relaxed)
            completion?(.failure(SIPTransportError("transport stopped")))
            return
        }
        let code = sendto(bytes, destination)
        gate.leave()
        if code == 0 {
            counters.sent.add(1, ordering: .relaxed)
            completion?(.success(()))
        } else {
            counters.errors.add(1, ordering: .relaxed)
            completion?(.failure(SIPTransportError("cannot send to udp:\(destination) from \(name): \(errnoText(code))")))
        }
    }

    /// 0, or the errno. A full send buffer is waited on (briefly).
    private func sendto(_ bytes: [UInt8], _ destination: SIPSocketAddress) -> CInt {
        var waits = 0
        while true {
            let n = bytes.withUnsafeBytes { buffer in
                destination.nio.withSockAddr { address, length in
                    systemSendto(fd, buffer.baseAddress, buffer.count, 0, address, socklen_t(length))
                }
            }
            if n >= 0 { return 0 }
            let code = errno
            switch code {
            case EINTR:
                continue
            case EAGAIN, EWOULDBLOCK, ENOBUFS:
                waits += 1
                if waits > 20 { return code }
                var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                _ = poll(&p, 1, 5)
            default:
                return code
            }
        }
    }

    /// After the gate is closed: nobody sends any more.
    func close() {
        if !closed.exchange(true, ordering: .relaxed) { _ = systemClose(fd) }
    }
}

// At file scope the names are the C functions (in the classes they are methods).
private func systemSendto(
    _ fd: CInt, _ p: UnsafeRawPointer?, _ n: Int, _ flags: CInt, _ to: UnsafePointer<sockaddr>, _ len: socklen_t
) -> Int {
    sendto(fd, p, n, flags, to, len)
}

func systemClose(_ fd: CInt) -> CInt { close(fd) }

/// Lets threads in while open; `close` shuts it and waits for those inside to leave, so that
/// nothing schedules work on the event loops once they are being shut down.
final class Gate: Sendable {
    private static let closedBit = 1 << 62
    private let state = Atomic<Int>(0)

    func enter() -> Bool {
        let (_, now) = state.wrappingAdd(1, ordering: .acquiring)
        if now & Self.closedBit != 0 {
            leave()
            return false
        }
        return true
    }

    func leave() {
        state.wrappingSubtract(1, ordering: .releasing)
    }

    func close() {
        state.bitwiseOr(Self.closedBit, ordering: .sequentiallyConsistent)
        while state.load(ordering: .acquiring) & ~Self.closedBit != 0 {
            usleep(100)
        }
    }
}

/// One run of the transport: its threads, listeners and connections.
final class TransportCore: Sendable {
    let group: MultiThreadedEventLoopGroup
    let configuration: SIPTransport.Configuration
    let logger: Logger
    let counters: Counters
    let sink: SIPInboundSink
    let gate = Gate()

    private struct Opened {
        var listeners: [SIPListener] = []
        var channels: [any Channel] = []
        /// UDP sockets read by the caller's threads (`udpReading: .external`).
        var receiveSockets: [(CInt, SIPListener)] = []
    }

    /// Kept connections by peer address; an outgoing one being opened holds the messages for it.
    private typealias Queued = [(ByteBuffer, SIPSendCompletion?)]

    private enum Slot {
        case connecting(Queued)
        case open(SIPConnection)
    }

    private struct Connections {
        var byPeer: [SIPSocketAddress: Slot] = [:]
        var all: [UInt64: SIPConnection] = [:]
        var stopped = false
    }

    private let opened = Mutex(Opened())
    private let connections = Mutex(Connections())
    private let connectionIDs = Atomic<UInt64>(0)

    init(
        group: MultiThreadedEventLoopGroup, configuration: SIPTransport.Configuration, logger: Logger,
        counters: Counters, sink: @escaping SIPInboundSink
    ) {
        self.group = group
        self.configuration = configuration
        self.logger = logger
        self.counters = counters
        self.sink = sink
    }

    var listeners: [SIPListener] { opened.withLock { $0.listeners } }
    var receiveSockets: [(CInt, SIPListener)] { opened.withLock { $0.receiveSockets } }

    func nextConnectionID() -> UInt64 {
        connectionIDs.wrappingAdd(1, ordering: .relaxed).newValue
    }

    // MARK: Listeners

    func open(_ address: SIPListenAddress, index: Int) throws(SIPTransportError) {
        do {
            if address.proto == .udp && configuration.udpReading == .external {
                let (listener, fd) = try makeUDP(address, index)  // read by the caller's threads
                opened.withLock {
                    $0.listeners.append(listener)
                    $0.receiveSockets.append((fd, listener))
                }
                return
            }
            let (listener, channel) = try address.proto == .udp ? openUDP(address, index) : openTCP(address, index)
            opened.withLock {
                $0.listeners.append(listener)
                $0.channels.append(channel)
            }
        } catch {
            throw SIPTransportError("cannot listen on \(address): \(describe(error))")
        }
    }

    /// A bound UDP socket and its listener, whose endpoint sends through a duplicate of it.
    private func makeUDP(_ address: SIPListenAddress, _ index: Int) throws -> (SIPListener, CInt) {
        let fd = try UDPSocket.make(address, receiveBuffer: configuration.udpReceiveBufferSize,
            sendBuffer: configuration.udpSendBufferSize)
        let sendFD = dup(fd)
        guard sendFD >= 0 else {
            let code = errno
            _ = systemClose(fd)
            throw IOError(errnoCode: code, reason: "dup")
        }
        var bound = address
        bound.port = UDPSocket.localPort(fd)
        logger.debug("\(bound): receive buffer \(UDPSocket.receiveBufferSize(fd)) bytes")
        let endpoint = ListenerEndpoint(fd: sendFD, name: bound.description, core: self)
        return (SIPListener(index: index, address: bound, configured: address, endpoint: endpoint), fd)
    }

    /// The socket is made and bound here (so that sends can use it directly), then handed to NIO
    /// for reading: `recvmmsg`, `udpMessagesPerRead` at a time.
    private func openUDP(_ address: SIPListenAddress, _ index: Int) throws -> (SIPListener, any Channel) {
        let (listener, fd) = try makeUDP(address, index)
        let endpoint = listener.endpoint!

        let perRead = max(1, configuration.udpMessagesPerRead)
        let slice = configuration.maxMessageSize + 1  // one more: a longer datagram shows as too long
        var bootstrap = DatagramBootstrap(group: group)
            .channelOption(.maxMessagesPerRead, value: 8)
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: slice * perRead))
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(UDPReceiveHandler(core: self, listener: listener))
                }
            }
        if perRead > 1 {
            bootstrap = bootstrap.channelOption(.datagramVectorReadMessageCount, value: perRead)
        }
        do {
            let channel = try bootstrap.withBoundSocket(fd).wait()
            return (listener, channel)
        } catch {
            endpoint.close()
            throw error
        }
    }

    private func openTCP(_ address: SIPListenAddress, _ index: Int) throws -> (SIPListener, any Channel) {
        let channel = try bindTCP(address, index: index)
        var bound = address
        bound.port = channel.localAddress?.port ?? address.port
        let listener = SIPListener(index: index, address: bound, configured: address, endpoint: nil)
        listenerSlots.withLock { $0[index] = listener }
        do {
            try channel.setOption(.autoRead, value: true).wait()  // accepting from now on
        } catch {
            channel.close(promise: nil)
            throw error
        }
        return (listener, channel)
    }

    /// The TCP listeners by index, for their accepted connections (set once bound).
    private let listenerSlots = Mutex<[Int: SIPListener]>([:])

    private func bindTCP(_ address: SIPListenAddress, index: Int) throws -> any Channel {
        try ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: configuration.tcpBacklog)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.autoRead, value: false)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    guard let listener = self.listenerSlots.withLock({ $0[index] }) else {
                        throw SIPTransportError("listener not ready")
                    }
                    try self.addConnectionHandlers(channel, listener: listener, destination: nil)
                }
            }
            .bind(host: address.ip, port: address.port).wait()
    }

    private func addConnectionHandlers(
        _ channel: any Channel, listener: SIPListener, destination: SIPSocketAddress?
    ) throws {
        let pipeline = channel.pipeline.syncOperations
        if let idle = configuration.tcpIdleTimeout {
            try pipeline.addHandler(IdleStateHandler(allTimeout: TimeAmount(idle)))
        }
        try pipeline.addHandler(TCPConnectionHandler(core: self, listener: listener, destination: destination))
    }

    // MARK: Connections

    /// The listener an outgoing connection to `destination` belongs to: `via` if given, else the
    /// first TCP listener of the destination's family, else any of that family, else any.
    func outgoingListener(for destination: SIPSocketAddress, via: SIPListener?) -> SIPListener? {
        if let via { return via }
        let all = listeners
        return all.first(where: { $0.proto == .tcp && $0.isIPv6 == destination.isIPv6 })
            ?? all.first(where: { $0.isIPv6 == destination.isIPv6 }) ?? all.first
    }

    func sendStream(
        _ bytes: [UInt8], to destination: SIPSocketAddress, listener: SIPListener, completion: SIPSendCompletion?
    ) {
        guard gate.enter() else {
            counters.errors.add(1, ordering: .relaxed)
            completion?(.failure(SIPTransportError("transport stopped")))
            return
        }
        defer { gate.leave() }
        let buffer = ByteBufferAllocator().buffer(bytes: bytes)
        enum Action {
            case write(SIPConnection)
            case queued
            case connect
        }
        let action: Action = connections.withLock { c in
            switch c.byPeer[destination] {
            case .open(let connection)?:
                return .write(connection)
            case .connecting(var queued)?:
                c.byPeer[destination] = nil  // so that the append does not copy
                queued.append((buffer, completion))
                c.byPeer[destination] = .connecting(queued)
                return .queued
            case nil:
                c.byPeer[destination] = .connecting([(buffer, completion)])
                return .connect
            }
        }
        switch action {
        case .write(let connection):
            if !connection.outbox.send(buffer, completion: completion) {
                // Closed just now, its slot not yet cleared: clear it and open a new one.
                connections.withLock { c in
                    if case .open(let kept)? = c.byPeer[destination], kept === connection { c.byPeer[destination] = nil }
                }
                sendStream(bytes, to: destination, listener: listener, completion: completion)
            }
        case .queued:
            break
        case .connect:
            connect(to: destination, listener: listener)
        }
    }

    private func connect(to destination: SIPSocketAddress, listener: SIPListener) {
        var bootstrap = ClientBootstrap(group: group)
            .connectTimeout(TimeAmount(configuration.tcpConnectTimeout))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.maxMessagesPerRead, value: 16)
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try self.addConnectionHandlers(channel, listener: listener, destination: destination)
                }
            }
        // From the listener's address (not its port), as Kamailio does, unless it is a wildcard.
        if listener.isIPv6 == destination.isIPv6, listener.ip != "0.0.0.0", listener.ip != "::",
            let source = try? SocketAddress(ipAddress: listener.ip, port: 0)
        {
            bootstrap = bootstrap.bind(to: source)
        }
        logger.debug("connecting to tcp:\(destination)")
        bootstrap.connect(to: destination.nio).whenFailure { [self] error in
            connectFailed(destination, error)
        }
    }

    private func connectFailed(_ destination: SIPSocketAddress, _ error: any Error) {
        let queued: Queued = connections.withLock { c in
            guard case .connecting(let q)? = c.byPeer[destination] else { return [] }
            c.byPeer[destination] = nil
            return q
        }
        let message = "cannot connect to tcp:\(destination): \(describe(error))"
        logger.warning("\(message)")
        counters.errors.add(queued.count, ordering: .relaxed)
        for (_, completion) in queued {
            completion?(.failure(SIPTransportError(message)))
        }
    }

    /// A connection is up: kept for its peer (an outgoing one takes over the messages queued
    /// for it, in order).
    func opened(_ connection: SIPConnection) {
        counters.tcpConnections.add(1, ordering: .relaxed)
        let refuse: Bool = connections.withLock { c in
            if c.stopped { return true }
            c.all[connection.id] = connection
            switch c.byPeer[connection.remote] {
            case .connecting(let queued)? where connection.isOutgoing:
                for (buffer, completion) in queued {
                    _ = connection.outbox.send(buffer, completion: completion)  // new: open
                }
                c.byPeer[connection.remote] = .open(connection)
            case .connecting?:
                break  // an accepted connection from where one is being opened to: leave it be
            case .open?, nil:
                c.byPeer[connection.remote] = .open(connection)
            }
            return false
        }
        if refuse {
            connection.channel.close(promise: nil)
        } else {
            logger.debug("TCP connection \(connection) open")
        }
    }

    func closed(_ connection: SIPConnection) {
        counters.tcpConnections.subtract(1, ordering: .relaxed)
        connection.markClosed()
        connections.withLock { c in
            c.all[connection.id] = nil
            if case .open(let kept)? = c.byPeer[connection.remote], kept === connection {
                c.byPeer[connection.remote] = nil
            }
        }
        logger.debug("TCP connection \(connection) closed")
    }

    /// `syncShutdownGracefully` waits for a callback on `DispatchQueue.global()`, which does not
    /// overcommit: with every thread of that pool blocked (two stops at once on a two-core
    /// machine, from the cooperative pool) it takes Dispatch a second to add one. A private
    /// serial queue is served at once.
    static func shutDown(_ group: MultiThreadedEventLoopGroup) {
        let done = DispatchSemaphore(value: 0)
        group.shutdownGracefully(queue: DispatchQueue(label: "ksr.sip.transport.shutdown")) { _ in done.signal() }
        done.wait()
    }

    /// Closes everything and stops the threads (waits).
    func shutdown() {
        gate.close()
        let (listenerChannels, endpoints, receiveSockets) = opened.withLock { o in
            (o.channels, o.listeners.compactMap(\.endpoint), o.receiveSockets)
        }
        for endpoint in endpoints { endpoint.close() }
        // Readers keep their duplicates until they close them.
        for (fd, _) in receiveSockets { _ = systemClose(fd) }
        for channel in listenerChannels { try? channel.close().wait() }
        let (open, pending) = connections.withLock { c -> ([SIPConnection], [Queued]) in
            c.stopped = true
            let pending = c.byPeer.values.compactMap { slot -> Queued? in
                if case .connecting(let q) = slot { return q }
                return nil
            }
            defer { c.byPeer = [:] }
            return (Array(c.all.values), pending)
        }
        for connection in open {
            connection.outbox.close()
            connection.channel.close(promise: nil)
        }
        Self.shutDown(group)  // waits for those closes too
        for p in pending {
            for (_, completion) in p { completion?(.failure(SIPTransportError("transport stopped"))) }
        }
        opened.withLock { $0 = Opened() }
        listenerSlots.withLock { $0 = [:] }
    }
}
