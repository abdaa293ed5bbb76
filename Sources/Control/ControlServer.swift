import Foundation
import KSRBase
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A failure of the control plane's transport, with a message meant for people
/// ("cannot listen on 127.0.0.1:5064: address already in use").
public struct ControlError: Error, Sendable, Equatable, CustomStringConvertible, LocalizedError {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
    public var errorDescription: String? { message }
}

/// The control plane's server: the same HTTP/1.1 on TCP and on a unix domain socket.
///
/// - `POST /RPC` (also `/rpc` and `/`): JSON-RPC 2.0 through the registry (204 when there is
///   nothing to answer);
/// - `GET /metrics`: the metrics closure's text, Prometheus exposition format;
/// - other paths 404, other methods 405.
///
/// Connections are kept alive. A request body over `maxBodySize` is answered 413 and the
/// connection closed; a connection that does not complete a request within `requestTimeout`
/// is closed. Handlers run in tasks, never on the event loop.
public final class ControlServer: Sendable {
    public struct Configuration: Sendable {
        /// The largest request body accepted (413 beyond).
        public var maxBodySize: Int
        /// How long a connection may take to deliver a complete request (while idle or sending).
        public var requestTimeout: TimeAmount
        /// How long `stop()` waits for requests being handled before closing their connections.
        public var shutdownGrace: TimeAmount

        public init(
            maxBodySize: Int = 1 << 20,
            requestTimeout: TimeAmount = .seconds(10),
            shutdownGrace: TimeAmount = .seconds(2)
        ) {
            self.maxBodySize = maxBodySize
            self.requestTimeout = requestTimeout
            self.shutdownGrace = shutdownGrace
        }
    }

    /// Where the server listens: the actual TCP port (when asked for port 0) and the socket path.
    public struct Bound: Sendable, Equatable, CustomStringConvertible {
        public var httpHost: String?
        public var httpPort: Int?
        public var unixPath: String?

        public init(httpHost: String? = nil, httpPort: Int? = nil, unixPath: String? = nil) {
            self.httpHost = httpHost
            self.httpPort = httpPort
            self.unixPath = unixPath
        }

        /// "http:127.0.0.1:5064, unix:/run/ksr.sock"
        public var description: String {
            var parts: [String] = []
            if let httpHost, let httpPort {
                parts.append("http:\(httpHost.contains(":") ? "[\(httpHost)]" : httpHost):\(httpPort)")
            }
            if let unixPath { parts.append("unix:\(unixPath)") }
            return parts.isEmpty ? "nothing" : parts.joined(separator: ", ")
        }
    }

    private struct Running: Sendable {
        var group: MultiThreadedEventLoopGroup
        var channels: [any Channel]
        var unixPath: String?
    }

    private enum State: Sendable {
        case idle
        case starting
        case running(Running)
    }

    private let service: ControlService
    private let state = Mutex<State>(.idle)

    public init(
        registry: RPCRegistry,
        metrics: @escaping @Sendable () async -> String,
        logger: Logger,
        configuration: Configuration = Configuration()
    ) {
        service = ControlService(registry: registry, metrics: metrics, logger: logger, configuration: configuration)
    }

    deinit { stop() }

    public var configuration: Configuration { service.configuration }

    /// Listens on TCP (`port` 0 picks a free port) and/or on a unix socket created with mode
    /// 0600. A stale socket file (nothing answers on it) is replaced; a live one is an error.
    /// Must not be called on an event loop.
    public func start(http: (host: String, port: Int)?, unixPath: String?) throws -> Bound {
        try state.withLock { s throws(ControlError) in
            guard case .idle = s else { throw ControlError("control server already started") }
            s = .starting
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var channels: [any Channel] = []
        do {
            var bound = Bound()
            if let http {
                let where_ = http.host.contains(":") ? "[\(http.host)]:\(http.port)" : "\(http.host):\(http.port)"
                let channel: any Channel
                do {
                    channel = try bootstrap(group).bind(host: http.host, port: http.port).wait()
                } catch {
                    throw ControlError("cannot listen on \(where_): \(describe(error))")
                }
                channels.append(channel)
                bound.httpHost = http.host
                bound.httpPort = channel.localAddress?.port ?? http.port
            }
            if let unixPath {
                channels.append(try bindUnix(unixPath, group))
                bound.unixPath = unixPath
            }
            let running = Running(group: group, channels: channels, unixPath: unixPath)
            state.withLock { $0 = .running(running) }
            service.logger.info("RPC listening on \(bound)")
            return bound
        } catch {
            for c in channels { try? c.close().wait() }
            try? group.syncShutdownGracefully()
            state.withLock { $0 = .idle }
            throw error
        }
    }

    /// Closes the listeners and removes the socket file, lets requests being handled finish
    /// (up to `shutdownGrace`), then closes every connection. Must not be called on an event loop.
    public func stop() {
        let running: Running? = state.withLock { s in
            guard case .running(let r) = s else { return nil }
            s = .idle
            return r
        }
        guard let running else { return }
        for channel in running.channels { try? channel.close().wait() }
        if let path = running.unixPath, Self.isSocket(path) { unlink(path) }
        let deadline = NIODeadline.now() + service.configuration.shutdownGrace
        while service.inFlight.load(ordering: .relaxed) > 0, NIODeadline.now() < deadline {
            usleep(5_000)
        }
        try? running.group.syncShutdownGracefully()
        service.logger.debug("RPC server stopped")
    }

    private func bootstrap(_ group: MultiThreadedEventLoopGroup) -> ServerBootstrap {
        let service = self.service
        return ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                        withPipeliningAssistance: true, withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(ControlHTTPHandler(service: service))
                }
            }
    }

    private func bindUnix(_ path: String, _ group: MultiThreadedEventLoopGroup) throws -> any Channel {
        let where_ = "unix:\(path)"
        var st = stat()
        if lstat(path, &st) == 0 {
            guard st.st_mode & S_IFMT == S_IFSOCK else {
                throw ControlError("cannot listen on \(where_): the file exists and is not a socket")
            }
            // Something answers there: another server. Nothing does: a leftover, replaced.
            do {
                let probe = try ClientBootstrap(group: group)
                    .connectTimeout(.seconds(2))
                    .connect(unixDomainSocketPath: path).wait()
                try? probe.close().wait()
                throw ControlError("cannot listen on \(where_): another server is listening there")
            } catch let error as ControlError {
                throw error
            } catch let error as IOError where error.errnoCode == ECONNREFUSED || error.errnoCode == ENOENT {
                if unlink(path) != 0, errno != ENOENT {
                    throw ControlError("cannot listen on \(where_): cannot remove the stale socket: \(errnoText(errno))")
                }
                service.logger.info("removed stale control socket \(path)")
            } catch let error as IOError where error.errnoCode == EAGAIN {
                throw ControlError("cannot listen on \(where_): another server is listening there")
            } catch {
                throw ControlError("cannot listen on \(where_): \(describe(error))")
            }
        }
        let channel: any Channel
        do {
            channel = try bootstrap(group).bind(unixDomainSocketPath: path, cleanupExistingSocketFile: false).wait()
        } catch {
            throw ControlError("cannot listen on \(where_): \(describe(error))")
        }
        if chmod(path, 0o600) != 0 {
            let reason = errnoText(errno)
            try? channel.close().wait()
            unlink(path)
            throw ControlError("cannot listen on \(where_): chmod: \(reason)")
        }
        return channel
    }

    static func isSocket(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0 && st.st_mode & S_IFMT == S_IFSOCK
    }
}

/// What the connections share.
final class ControlService: Sendable {
    let registry: RPCRegistry
    let metrics: @Sendable () async -> String
    let logger: Logger
    let configuration: ControlServer.Configuration
    let inFlight = Atomic<Int>(0)

    init(
        registry: RPCRegistry, metrics: @escaping @Sendable () async -> String, logger: Logger,
        configuration: ControlServer.Configuration
    ) {
        self.registry = registry
        self.metrics = metrics
        self.logger = logger
        self.configuration = configuration
    }
}

/// A short reason for a NIO error.
func describe(_ error: any Error) -> String {
    switch error {
    case let e as ControlError: return e.message
    case let e as IOError: return errnoText(e.errnoCode)
    case let e as NIOConnectionError:
        if let first = e.connectionErrors.first { return describe(first.error) }
        if e.dnsAError != nil || e.dnsAAAAError != nil { return "unknown host \(e.host)" }
        return "cannot connect to \(e.host):\(e.port)"
    case let e as SocketAddressError:
        switch e {
        case .unknown(let host, _): return "unknown host \(host)"
        case .unixDomainSocketPathTooLong: return "socket path too long"
        case .failedToParseIPString(let s): return "invalid address \(s)"
        default: return String(describing: e)
        }
    case let e as ChannelError:
        switch e {
        case .connectTimeout: return "timed out"
        case .ioOnClosedChannel, .alreadyClosed, .eof: return "connection closed"
        default: return String(describing: e)
        }
    default:
        return String(describing: error)
    }
}

/// One response.
struct ControlResponse: Sendable {
    var status: HTTPResponseStatus
    var contentType: String?
    var body: [UInt8] = []
    var headers: [(String, String)] = []
    var close = false

    static func text(_ status: HTTPResponseStatus, _ text: String, headers: [(String, String)] = []) -> ControlResponse {
        ControlResponse(
            status: status, contentType: "text/plain; charset=utf-8", body: Array((text + "\n").utf8), headers: headers)
    }
}

/// The HTTP side of one connection: collects a request, answers it from a task, and enforces
/// the body limit and the request deadline.
final class ControlHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        /// Waiting for (the rest of) a request.
        case idle
        case receiving
        /// A request is being handled; no deadline.
        case processing
        /// Answered 413 or about to close: input is discarded.
        case closing
    }

    private let service: ControlService
    private var state = State.idle
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()
    private var deadline: Scheduled<Void>?

    init(service: ControlService) {
        self.service = service
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { armDeadline(context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        if deadline == nil { armDeadline(context) }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        state = .closing
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        service.logger.debug("RPC connection error: \(error)")
        state = .closing
        context.close(promise: nil)
    }

    private func armDeadline(_ context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = context.eventLoop.assumeIsolated().scheduleTask(in: service.configuration.requestTimeout) {
            self.deadline = nil
            if case .processing = self.state { return }
            self.service.logger.debug("RPC connection closed: no complete request in time")
            self.state = .closing
            context.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            guard case .idle = state else { return }
            state = .receiving
            head = h
            body.clear()
            let limit = service.configuration.maxBodySize
            if let length = h.headers.first(name: "content-length").flatMap({ Int($0) }), length > limit {
                reject(context, h)
                return
            }
            if h.headers["expect"].contains(where: { $0.lowercased() == "100-continue" }) {
                let go = HTTPResponseHead(version: h.version, status: .continue)
                context.writeAndFlush(wrapOutboundOut(.head(go)), promise: nil)
            }
        case .body(var chunk):
            guard case .receiving = state, let h = head else { return }
            guard body.readableBytes + chunk.readableBytes <= service.configuration.maxBodySize else {
                reject(context, h)
                return
            }
            body.writeBuffer(&chunk)
        case .end:
            guard case .receiving = state, let h = head else { return }
            deadline?.cancel()
            deadline = nil
            state = .processing
            let bytes = Array(body.readableBytesView)
            body.clear()
            dispatch(context, h, bytes)
        }
    }

    /// 413, then half-close and discard the rest of the body (closing at once would reset the
    /// connection and could lose the answer) until the client closes or the deadline.
    private func reject(_ context: ChannelHandlerContext, _ h: HTTPRequestHead) {
        service.logger.debug("RPC request body over \(service.configuration.maxBodySize) bytes refused")
        state = .closing
        body.clear()
        let text = "request body larger than \(service.configuration.maxBodySize) bytes"
        write(context, h, .text(.payloadTooLarge, text), keepAlive: false).assumeIsolated().whenComplete { _ in
            context.close(mode: .output, promise: nil)
        }
        armDeadline(context)
    }

    private func dispatch(_ context: ChannelHandlerContext, _ h: HTTPRequestHead, _ bytes: [UInt8]) {
        let service = self.service
        switch Self.path(of: h.uri) {
        case "/RPC", "/rpc", "/":
            guard h.method == .POST else {
                return respond(context, h, .text(.methodNotAllowed, "use POST", headers: [("Allow", "POST")]))
            }
            run(context, h) {
                guard let reply = await service.registry.handle(bytes) else {
                    return ControlResponse(status: .noContent)
                }
                return ControlResponse(status: .ok, contentType: "application/json", body: reply)
            }
        case "/metrics":
            guard h.method == .GET else {
                return respond(context, h, .text(.methodNotAllowed, "use GET", headers: [("Allow", "GET")]))
            }
            run(context, h) {
                let text = await service.metrics()
                return ControlResponse(
                    status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8", body: Array(text.utf8))
            }
        default:
            respond(context, h, .text(.notFound, "not found"))
        }
    }

    /// Runs `work` in a task and answers on the event loop.
    private func run(
        _ context: ChannelHandlerContext, _ h: HTTPRequestHead,
        _ work: @escaping @Sendable () async -> ControlResponse
    ) {
        let service = self.service
        service.inFlight.add(1, ordering: .relaxed)
        let promise = context.eventLoop.makePromise(of: ControlResponse.self)
        promise.completeWithTask(work)
        promise.futureResult.assumeIsolated().whenComplete { result in
            service.inFlight.subtract(1, ordering: .relaxed)
            switch result {
            case .success(let response): self.respond(context, h, response)
            case .failure(let error): self.respond(context, h, .text(.internalServerError, "\(error)"))
            }
        }
    }

    private func respond(_ context: ChannelHandlerContext, _ h: HTTPRequestHead, _ response: ControlResponse) {
        guard context.channel.isActive else {
            state = .closing
            return
        }
        let keepAlive = h.isKeepAlive && !response.close
        // Set before writing: the pipelining handler delivers a queued next request from
        // within the write of this response's end.
        state = keepAlive ? .idle : .closing
        head = nil
        let done = write(context, h, response, keepAlive: keepAlive)
        guard keepAlive else {
            done.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            return
        }
        switch state {
        case .idle, .receiving: armDeadline(context)
        case .processing, .closing: break
        }
    }

    @discardableResult
    private func write(
        _ context: ChannelHandlerContext, _ h: HTTPRequestHead, _ response: ControlResponse, keepAlive: Bool
    ) -> EventLoopFuture<Void> {
        var headers = HTTPHeaders()
        if let type = response.contentType { headers.add(name: "Content-Type", value: type) }
        if response.status != .noContent { headers.add(name: "Content-Length", value: String(response.body.count)) }
        for (name, value) in response.headers { headers.add(name: name, value: value) }
        if !keepAlive {
            headers.add(name: "Connection", value: "close")
        } else if h.version.major == 1, h.version.minor == 0 {
            headers.add(name: "Connection", value: "keep-alive")
        }
        let version = h.version.major == 1 && h.version.minor == 0 ? HTTPVersion.http1_0 : .http1_1
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: response.status, headers: headers))),
                      promise: nil)
        if !response.body.isEmpty {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: response.body)))),
                          promise: nil)
        }
        return context.writeAndFlush(wrapOutboundOut(.end(nil)))
    }

    /// The path of a request target: no query, no scheme and authority.
    static func path(of uri: String) -> Substring {
        var s = Substring(uri)
        if let r = s.range(of: "://") {
            s = s[r.upperBound...]
            s = s.firstIndex(of: "/").map { s[$0...] } ?? "/"
        }
        if let q = s.firstIndex(where: { $0 == "?" || $0 == "#" }) { s = s[..<q] }
        return s
    }
}
