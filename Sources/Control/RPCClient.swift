import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// Where a control server listens.
public enum RPCEndpoint: Sendable, Equatable, CustomStringConvertible {
    case http(host: String, port: Int)
    case unix(path: String)

    /// Accepts "http:127.0.0.1:5064", "http://127.0.0.1:5064[/RPC]", "tcp:127.0.0.1:5064",
    /// "127.0.0.1:5064", "[::1]:5064", "unix:/path/sock" and "/path/sock" (or "./sock").
    public init?(parsing text: String) {
        var s = Substring(text.filter { !$0.isWhitespace })
        if s.hasPrefix("unix:") {
            s = s.dropFirst(5)
            if s.hasPrefix("//") { s = s.dropFirst(2) }
            guard !s.isEmpty else { return nil }
            self = .unix(path: String(s))
            return
        }
        if s.hasPrefix("/") || s.hasPrefix("./") || s.hasPrefix("../") {
            self = .unix(path: String(s))
            return
        }
        for prefix in ["http://", "tcp://", "http:", "tcp:"] where s.hasPrefix(prefix) {
            s = s.dropFirst(prefix.count)
            break
        }
        if let slash = s.firstIndex(of: "/") { s = s[..<slash] }
        let host: Substring
        let portText: Substring
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]") else { return nil }
            host = s[s.index(after: s.startIndex)..<close]
            let rest = s[s.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portText = rest.dropFirst()
        } else {
            guard let colon = s.lastIndex(of: ":") else { return nil }
            host = s[..<colon]
            portText = s[s.index(after: colon)...]
            guard !host.contains(":") else { return nil }
        }
        guard !host.isEmpty, let port = Int(portText), (1...65535).contains(port) else { return nil }
        self = .http(host: String(host), port: port)
    }

    /// "http:127.0.0.1:5064" or "unix:/path/sock".
    public var description: String {
        switch self {
        case .http(let host, let port): host.contains(":") ? "http:[\(host)]:\(port)" : "http:\(host):\(port)"
        case .unix(let path): "unix:\(path)"
        }
    }
}

/// Calls one method of a control server (for `ksr rpc`): one connection per call.
public enum RPCClient {
    /// The method's result. Throws `RPCError` when the server answers with a JSON-RPC error,
    /// `ControlError` otherwise ("cannot connect to unix:/path: no such file or directory").
    /// Blocks the calling thread, which must not be an event loop.
    public static func call(
        _ endpoint: RPCEndpoint, method: String, params: [JSONValue] = [], timeout: Double = 10
    ) throws -> JSONValue {
        let reply: Reply
        do {
            reply = try send(endpoint, method: method, params: params, timeout: timeout).wait()
        } catch {
            throw failure(error, endpoint)
        }
        return try interpret(reply, endpoint)
    }

    /// The same, suspending instead of blocking.
    public static func call(
        _ endpoint: RPCEndpoint, method: String, params: [JSONValue] = [], timeout: Double = 10
    ) async throws -> JSONValue {
        let reply: Reply
        do {
            reply = try await send(endpoint, method: method, params: params, timeout: timeout).get()
        } catch {
            throw failure(error, endpoint)
        }
        return try interpret(reply, endpoint)
    }

    struct Reply: Sendable {
        var status: HTTPResponseStatus
        var body: [UInt8]
    }

    /// A failure to connect, told apart from failures after.
    struct ConnectFailure: Error {
        var error: any Error
    }

    struct Timeout: Error {}

    final class ConnectedFlag: Sendable {
        let value = Atomic<Bool>(false)
    }

    static func failure(_ error: any Error, _ endpoint: RPCEndpoint) -> ControlError {
        switch error {
        case let e as ConnectFailure: ControlError("cannot connect to \(endpoint): \(describe(e.error))")
        case is Timeout: ControlError("no answer from \(endpoint): timed out")
        default: ControlError("RPC to \(endpoint) failed: \(describe(error))")
        }
    }

    static func interpret(_ reply: Reply, _ endpoint: RPCEndpoint) throws -> JSONValue {
        guard reply.status == .ok else {
            if reply.status == .noContent { return .null }
            var text = String(decoding: reply.body.prefix(200), as: UTF8.self)
            text = text.trimmingSuffixNewlines()
            throw ControlError(
                "\(endpoint) answered HTTP \(reply.status.code) \(reply.status.reasonPhrase)"
                    + (text.isEmpty ? "" : ": \(text)"))
        }
        let document: JSONValue
        do {
            document = try JSONValue(parsing: reply.body)
        } catch {
            throw ControlError("invalid answer from \(endpoint): \(error)")
        }
        if let error = document["error"] {
            guard let code = error["code"]?.intValue else {
                throw ControlError("invalid answer from \(endpoint): error without a code")
            }
            throw RPCError(code: code, message: error["message"]?.stringValue ?? "", data: error["data"])
        }
        guard let result = document["result"] else {
            throw ControlError("invalid answer from \(endpoint): neither result nor error")
        }
        return result
    }

    static func send(
        _ endpoint: RPCEndpoint, method: String, params: [JSONValue], timeout: Double
    ) -> EventLoopFuture<Reply> {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let promise = loop.makePromise(of: Reply.self)
        let request: JSONValue = ["jsonrpc": "2.0", "method": .string(method), "params": .array(params), "id": 1]
        let body = request.jsonBytes()
        let host: String
        switch endpoint {
        case .http(let h, let port): host = h.contains(":") ? "[\(h)]:\(port)" : "\(h):\(port)"
        case .unix: host = "localhost"
        }
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: host)
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Accept", value: "application/json")
        headers.add(name: "Content-Length", value: String(body.count))
        headers.add(name: "Connection", value: "close")
        let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/RPC", headers: headers)

        let amount = TimeAmount.nanoseconds(Int64(max(0.001, timeout) * 1e9))
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(amount)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(
                        RPCClientHandler(promise: promise, head: head, body: body))
                }
            }
        let connected = ConnectedFlag()
        let timer = loop.scheduleTask(in: amount) {
            let error: any Error =
                connected.value.load(ordering: .relaxed)
                ? Timeout() : ConnectFailure(error: ChannelError.connectTimeout(amount))
            promise.fail(error)
        }
        let connecting: EventLoopFuture<any Channel>
        switch endpoint {
        case .http(let h, let port):
            // An address needs no resolving (nor happy eyeballs).
            if let address = try? SocketAddress(ipAddress: h, port: port) {
                connecting = bootstrap.connect(to: address)
            } else {
                connecting = bootstrap.connect(host: h, port: port)
            }
        case .unix(let path): connecting = bootstrap.connect(unixDomainSocketPath: path)
        }
        connecting.whenComplete { result in
            switch result {
            case .failure(let error): promise.fail(ConnectFailure(error: error))
            case .success(let channel):
                connected.value.store(true, ordering: .relaxed)
                promise.futureResult.whenComplete { _ in channel.close(promise: nil) }
            }
        }
        promise.futureResult.whenComplete { _ in timer.cancel() }
        return promise.futureResult
    }
}

/// Sends the request once connected and collects the response.
final class RPCClientHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private let promise: EventLoopPromise<RPCClient.Reply>
    private let head: HTTPRequestHead
    private let body: [UInt8]
    private var status: HTTPResponseStatus?
    private var received: [UInt8] = []

    init(promise: EventLoopPromise<RPCClient.Reply>, head: HTTPRequestHead, body: [UInt8]) {
        self.promise = promise
        self.head = head
        self.body = body
    }

    func channelActive(context: ChannelHandlerContext) {
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            status = h.status
        case .body(let chunk):
            received.append(contentsOf: chunk.readableBytesView)
        case .end:
            promise.succeed(RPCClient.Reply(status: status ?? .ok, body: received))
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(ControlError("connection closed before the answer"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
        context.close(promise: nil)
    }
}

extension String {
    fileprivate func trimmingSuffixNewlines() -> String {
        var s = self[...]
        while let last = s.last, last.isNewline || last == " " { s = s.dropLast() }
        return String(s)
    }
}
