import Control
import Foundation
import Logging
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs blocking work (sockets, the synchronous client) on its own thread, never on the
/// cooperative pool, which the server's handler tasks need.
func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.stackSize = 1 << 20
        thread.start()
    }
}

/// A private directory under /tmp (short: unix socket paths are limited to ~100 bytes).
final class ScratchDir: Sendable {
    let path: String

    init() {
        var template = Array("/tmp/ctl-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed")
        path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    func file(_ name: String) -> String { path + "/" + name }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// One parsed HTTP response.
struct HTTPReply: Sendable {
    var status: Int
    var headers: [String: String]  // lower-cased names
    var body: [UInt8]
    var text: String { String(decoding: body, as: UTF8.self) }
    var json: JSONValue? { try? JSONValue(parsing: body) }
}

/// A blocking client socket speaking raw bytes, to see exactly what the server does.
final class RawConnection {
    let fd: Int32
    private var buffer: [UInt8] = []

    private init(fd: Int32) { self.fd = fd }

    static func tcp(port: Int) throws -> RawConnection {
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw TestFailure("socket: \(errno)") }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return try connected(fd, to: addr, "127.0.0.1:\(port)")
    }

    static func unix(_ path: String) throws -> RawConnection {
        #if canImport(Glibc)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_UNIX, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw TestFailure("socket: \(errno)") }
        return try connected(fd, to: unixAddress(path), path)
    }

    /// Connects socket `fd` to `address` (a sockaddr_in or sockaddr_un); closes it on failure.
    private static func connected<Address>(_ fd: Int32, to address: Address, _ name: String) throws -> RawConnection {
        var address = address
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<Address>.size))
            }
        }
        guard rc == 0 else {
            let e = errno
            close(fd)
            throw TestFailure("connect \(name): \(e)")
        }
        return RawConnection(fd: fd)
    }

    static func unixAddress(_ path: String) -> sockaddr_un {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            let bytes = Array(path.utf8.prefix(raw.count - 1))
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return addr
    }

    /// Leaves a socket file nobody listens on, as a crashed server would.
    static func makeStaleSocket(_ path: String) throws {
        #if canImport(Glibc)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_UNIX, SOCK_STREAM, 0)
        #endif
        var addr = unixAddress(path)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        close(fd)
        guard rc == 0 else { throw TestFailure("bind \(path): \(errno)") }
    }

    deinit { close(fd) }

    /// Sends everything; false when the peer closed (EPIPE/ECONNRESET).
    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { raw -> Int in
                #if os(Linux)
                Glibc.send(fd, raw.baseAddress, raw.count, Int32(MSG_NOSIGNAL))
                #else
                Darwin.send(fd, raw.baseAddress, raw.count, 0)
                #endif
            }
            if n < 0 {
                if errno == EINTR { continue }
                return false
            }
            offset += n
        }
        return true
    }

    func send(_ text: String) { send(Array(text.utf8)) }

    /// Reads what is available within `timeout`; nil at end of stream.
    private func fill(timeout: Double) throws -> Bool {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&pfd, 1, Int32(timeout * 1000))
        guard ready > 0 else { throw TestFailure("timed out reading") }
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { return false }
        buffer.append(contentsOf: chunk[..<n])
        return true
    }

    /// The next response (pipelined responses are read one at a time).
    func readResponse(timeout: Double = 5) throws -> HTTPReply {
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        var headerEnd: Int?
        while true {
            if let r = buffer.firstRange(of: separator) {
                headerEnd = r.upperBound
                break
            }
            guard try fill(timeout: timeout) else { throw TestFailure("closed before a response") }
        }
        let headText = String(decoding: buffer[..<headerEnd!], as: UTF8.self)
        var lines = headText.components(separatedBy: "\r\n").filter { !$0.isEmpty }
        let statusLine = lines.removeFirst()
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, let status = Int(parts[1]) else { throw TestFailure("bad status line \(statusLine)") }
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            headers[name] = headers[name].map { $0 + ", " + value } ?? value
        }
        buffer.removeFirst(headerEnd!)
        if status == 100 { return try readResponse(timeout: timeout) }
        var body: [UInt8] = []
        if let length = headers["content-length"].flatMap({ Int($0) }) {
            while buffer.count < length {
                guard try fill(timeout: timeout) else { throw TestFailure("closed in the body") }
            }
            body = Array(buffer[..<length])
            buffer.removeFirst(length)
        } else if status != 204, status != 304 {
            while try fill(timeout: timeout) {}
            body = buffer
            buffer = []
        }
        return HTTPReply(status: status, headers: headers, body: body)
    }

    /// True when the server closes the connection within `timeout` (bytes before are dropped).
    func closedByPeer(within timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            do {
                if try !fill(timeout: max(0.01, deadline.timeIntervalSinceNow)) { return true }
            } catch {
                return false
            }
        }
        return false
    }
}

/// `POST path` with a JSON body, as raw HTTP/1.1.
func rpcRequest(_ body: String, path: String = "/RPC", extraHeaders: String = "") -> String {
    "POST \(path) HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\(extraHeaders)"
        + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
}

func getRequest(_ path: String, extraHeaders: String = "") -> String {
    "GET \(path) HTTP/1.1\r\nHost: x\r\n\(extraHeaders)\r\n"
}

/// A free TCP port (bound then released).
func unusedPort() throws -> Int {
    #if canImport(Glibc)
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    #else
    let fd = socket(AF_INET, SOCK_STREAM, 0)
    #endif
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    _ = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
    }
    return Int(UInt16(bigEndian: addr.sin_port))
}

let quietLogger = Logger(label: "control-tests") { _ in SwiftLogNoOpLogHandler() }

struct Boom: Error, CustomStringConvertible {
    var description: String { "boom" }
}

/// Methods for the tests.
func makeTestRegistry() -> RPCRegistry {
    let r = RPCRegistry()
    r.register(RPCMethod("test.echo", doc: "Returns its parameter.", params: [RPCParam("value", .any, optional: true)]) {
        args in args[0] ?? .null
    })
    r.register(
        RPCMethod("test.add", doc: "Adds two integers.", params: [RPCParam("a", .int), RPCParam("b", .int)]) { args throws(RPCError) in
            .int(try args.int("a") + args.int(1))
        })
    r.register(
        RPCMethod(
            "test.greet", params: [RPCParam("name", .string, doc: "who"), RPCParam("punct", .string, optional: true)]
        ) { args throws(RPCError) in
            .string("hello \(try args.string(0))\(args[1]?.stringValue ?? "!")")
        })
    r.register(RPCMethod("test.flag", params: [RPCParam("on", .bool)]) { args throws(RPCError) in .bool(try args.bool(0)) })
    r.register(RPCMethod("test.fail", params: [RPCParam("code", .int)]) { args throws(RPCError) in
        let code = try args.int(0)
        throw RPCError(code: code, message: code == 404 ? "Empty queue" : "Internal error", data: ["queue": "q1"])
    })
    r.register(RPCMethod("test.boom") { _ in throw Boom() })
    r.register(RPCMethod("test.slow", params: [RPCParam("ms", .int)]) { args in
        try await Task.sleep(for: .milliseconds(try args.int(0)))
        return "done"
    })
    r.register(RPCMethod("test.ordered") { _ in ["zeta": 1, "alpha": 2, "mid": ["y": true, "b": nil]] })
    return r
}

/// A server on 127.0.0.1:0 and a unix socket in a fresh directory, stopped after `body`.
func withServer(
    _ configuration: ControlServer.Configuration = .init(),
    registry: RPCRegistry = makeTestRegistry(),
    metrics: @escaping @Sendable () async -> String = { "# TYPE ksr_test gauge\nksr_test 42\n" },
    _ body: (ControlServer.Bound, ScratchDir) async throws -> Void
) async throws {
    let dir = ScratchDir()
    let server = ControlServer(registry: registry, metrics: metrics, logger: quietLogger, configuration: configuration)
    let bound = try await blocking { try server.start(http: ("127.0.0.1", 0), unixPath: dir.file("ctl.sock")) }
    do {
        try await body(bound, dir)
    } catch {
        _ = try? await blocking { server.stop() }
        throw error
    }
    try await blocking { server.stop() }
}

/// Sends raw requests on one new connection and reads `count` responses.
func exchange(
    _ bound: ControlServer.Bound, unix: Bool = false, _ request: String, responses count: Int = 1
) async throws -> [HTTPReply] {
    try await blocking {
        let c = unix ? try RawConnection.unix(bound.unixPath!) : try RawConnection.tcp(port: bound.httpPort!)
        c.send(request)
        return try (0..<count).map { _ in try c.readResponse() }
    }
}
