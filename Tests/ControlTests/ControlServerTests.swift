import Control
import Foundation
import NIOCore
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite("Control server over TCP and unix sockets")
struct ControlServerTests {
    @Test(arguments: [false, true])
    func jsonRPCOverPOST(unix: Bool) async throws {
        try await withServer { bound, _ in
            let replies = try await exchange(
                bound, unix: unix, rpcRequest(#"{"jsonrpc":"2.0","method":"test.add","params":[2,3],"id":1}"#))
            let r = try #require(replies.first)
            #expect(r.status == 200)
            #expect(r.headers["content-type"] == "application/json")
            #expect(r.text == #"{"jsonrpc":"2.0","result":5,"id":1}"#)
            #expect(r.headers["connection"] == nil)  // kept alive
        }
    }

    @Test func otherRPCPathsAndQueries() async throws {
        try await withServer { bound, _ in
            for path in ["/rpc", "/", "/RPC?x=1", "http://localhost/RPC"] {
                let r = try await exchange(bound, rpcRequest(#"{"jsonrpc":"2.0","method":"test.echo","params":[1],"id":1}"#, path: path))
                #expect(r.first?.json?["result"] == 1, "\(path)")
            }
        }
    }

    @Test func notificationsAre204() async throws {
        try await withServer { bound, _ in
            let r = try await exchange(bound, rpcRequest(#"{"jsonrpc":"2.0","method":"test.add","params":[2,3]}"#))
            #expect(r.first?.status == 204)
            #expect(r.first?.body.isEmpty == true)
            #expect(r.first?.headers["content-length"] == nil)
            #expect(r.first?.headers["transfer-encoding"] == nil)
        }
    }

    @Test func protocolErrorsAre200WithAnError() async throws {
        try await withServer { bound, _ in
            let parse = try await exchange(bound, rpcRequest("{not json"))
            #expect(parse.first?.status == 200)
            #expect(parse.first?.json?["error"]?["code"] == -32700)
            let batch = try await exchange(bound, rpcRequest(
                #"[{"jsonrpc":"2.0","method":"test.fail","params":[404],"id":1},{"jsonrpc":"2.0","method":"x","id":2}]"#))
            let items = batch.first?.json?.arrayValue
            #expect(items?.map { $0["error"]?["code"] } == [404, -32601])
            #expect(items?.first?["error"]?["message"] == "Empty queue")
        }
    }

    @Test(arguments: [false, true])
    func keepAliveAndPipelining(unix: Bool) async throws {
        try await withServer { bound, _ in
            let replies: [HTTPReply] = try await blocking {
                let c = unix ? try RawConnection.unix(bound.unixPath!) : try RawConnection.tcp(port: bound.httpPort!)
                var replies: [HTTPReply] = []
                for i in 0..<3 {
                    c.send(rpcRequest(#"{"jsonrpc":"2.0","method":"test.add","params":[\#(i),1],"id":\#(i)}"#))
                    replies.append(try c.readResponse())
                }
                // Three requests in one write, answered in order (the first one slow).
                c.send(rpcRequest(#"{"jsonrpc":"2.0","method":"test.slow","params":[200],"id":"s"}"#)
                    + getRequest("/metrics")
                    + rpcRequest(#"{"jsonrpc":"2.0","method":"test.echo","params":["e"],"id":"e"}"#))
                for _ in 0..<3 { replies.append(try c.readResponse()) }
                return replies
            }
            #expect(replies.prefix(3).map { $0.json?["result"] } == [1, 2, 3])
            #expect(replies[3].json?["id"] == "s")
            #expect(replies[4].text.contains("ksr_test 42"))
            #expect(replies[5].json?["result"] == "e")
        }
    }

    @Test(arguments: [false, true])
    func metrics(unix: Bool) async throws {
        try await withServer { bound, _ in
            let r = try await exchange(bound, unix: unix, getRequest("/metrics"))
            #expect(r.first?.status == 200)
            #expect(r.first?.headers["content-type"]?.hasPrefix("text/plain; version=0.0.4") == true)
            #expect(r.first?.text == "# TYPE ksr_test gauge\nksr_test 42\n")
        }
    }

    @Test func notFoundAndMethodNotAllowed() async throws {
        try await withServer { bound, _ in
            let nf = try await exchange(bound, getRequest("/nope"))
            #expect(nf.first?.status == 404)
            let nf2 = try await exchange(bound, rpcRequest("{}", path: "/RPC/x"))
            #expect(nf2.first?.status == 404)
            let getRPC = try await exchange(bound, getRequest("/RPC"))
            #expect(getRPC.first?.status == 405)
            #expect(getRPC.first?.headers["allow"] == "POST")
            let postMetrics = try await exchange(bound, rpcRequest("{}", path: "/metrics"))
            #expect(postMetrics.first?.status == 405)
            #expect(postMetrics.first?.headers["allow"] == "GET")
            // Still usable after an error status.
            let c = try await blocking { () throws -> [HTTPReply] in
                let c = try RawConnection.tcp(port: bound.httpPort!)
                c.send(getRequest("/nope"))
                let a = try c.readResponse()
                c.send(getRequest("/metrics"))
                return [a, try c.readResponse()]
            }
            #expect(c.map(\.status) == [404, 200])
        }
    }

    @Test func bodyOverTheLimitIs413AndClosed() async throws {
        try await withServer(.init(maxBodySize: 1000)) { bound, _ in
            let ok = try await exchange(
                bound, rpcRequest(#"{"jsonrpc":"2.0","method":"test.echo","params":["\#(String(repeating: "a", count: 900))"],"id":1}"#))
            #expect(ok.first?.status == 200)
            // Announced by Content-Length, body sent anyway.
            let big = #"{"jsonrpc":"2.0","method":"test.echo","params":["\#(String(repeating: "a", count: 300_000))"],"id":1}"#
            let (status, closed) = try await blocking {
                let c = try RawConnection.tcp(port: bound.httpPort!)
                c.send(rpcRequest(big))
                let r = try c.readResponse()
                return (r.status, c.closedByPeer(within: 3))
            }
            #expect(status == 413)
            #expect(closed)
            // Chunked, without a length.
            let (status2, closed2) = try await blocking {
                let c = try RawConnection.unix(bound.unixPath!)
                c.send("POST /RPC HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
                for _ in 0..<3 { c.send("200\r\n" + String(repeating: "b", count: 512) + "\r\n") }
                let r = try c.readResponse()
                return (r.status, c.closedByPeer(within: 3))
            }
            #expect(status2 == 413)
            #expect(closed2)
        }
    }

    @Test func defaultLimitIsOneMiB() async throws {
        try await withServer { bound, _ in
            let status = try await blocking {
                let c = try RawConnection.tcp(port: bound.httpPort!)
                c.send("POST /RPC HTTP/1.1\r\nHost: x\r\nContent-Length: \((1 << 20) + 1)\r\n\r\n")
                return try c.readResponse().status
            }
            #expect(status == 413)
            let body = #"{"jsonrpc":"2.0","method":"test.echo","params":["\#(String(repeating: "z", count: 1_000_000))"],"id":1}"#
            let r = try await exchange(bound, rpcRequest(body))
            #expect(r.first?.json?["result"]?.stringValue?.count == 1_000_000)
        }
    }

    @Test func expectContinue() async throws {
        try await withServer { bound, _ in
            let r: HTTPReply = try await blocking {
                let c = try RawConnection.tcp(port: bound.httpPort!)
                let body = #"{"jsonrpc":"2.0","method":"test.echo","params":[7],"id":1}"#
                c.send("POST /RPC HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: \(body.utf8.count)\r\n\r\n")
                // The interim answer comes before the body is sent.
                let interim = try c.readResponseHead()
                guard interim == 100 else { throw TestFailure("got \(interim)") }
                c.send(body)
                return try c.readResponse()
            }
            #expect(r.json?["result"] == 7)
        }
    }

    @Test func oversizedHeadersCloseTheConnection() async throws {
        try await withServer { bound, _ in
            let closed = try await blocking {
                let c = try RawConnection.tcp(port: bound.httpPort!)
                c.send("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "h", count: 200_000))\r\n\r\n")
                return c.closedByPeer(within: 3)
            }
            #expect(closed)
            let garbage = try await blocking {
                let c = try RawConnection.tcp(port: bound.httpPort!)
                c.send("\u{1}\u{2}\u{3} nonsense\r\n\r\n")
                return c.closedByPeer(within: 3)
            }
            #expect(garbage)
        }
    }

    @Test func idleAndSlowClientsAreClosed() async throws {
        try await withServer(.init(requestTimeout: .milliseconds(300))) { bound, _ in
            let results = try await blocking { () throws -> [Bool] in
                // Silent from the start.
                let idle = try RawConnection.tcp(port: bound.httpPort!)
                // Sends a head, never the body.
                let partial = try RawConnection.unix(bound.unixPath!)
                partial.send("POST /RPC HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{")
                // Trickles bytes faster than the timeout but never completes a request.
                let slow = try RawConnection.tcp(port: bound.httpPort!)
                var slowClosed = false
                for ch in "POST /RPC HTTP/1.1\r\nHost: x\r\n" {
                    if !slow.send(Array(String(ch).utf8)) || slow.closedByPeer(within: 0.1) {
                        slowClosed = true
                        break
                    }
                }
                // Silent after one answer.
                let after = try RawConnection.tcp(port: bound.httpPort!)
                after.send(getRequest("/metrics"))
                _ = try after.readResponse()
                return [idle.closedByPeer(within: 3), partial.closedByPeer(within: 3), slowClosed,
                        after.closedByPeer(within: 3)]
            }
            #expect(results == [true, true, true, true])
        }
    }

    @Test func aRequestBeingHandledIsNotCutByTheTimeout() async throws {
        try await withServer(.init(requestTimeout: .milliseconds(200))) { bound, _ in
            let r = try await exchange(bound, rpcRequest(#"{"jsonrpc":"2.0","method":"test.slow","params":[600],"id":1}"#))
            #expect(r.first?.json?["result"] == "done")
        }
    }

    @Test func slowMethodsDoNotBlockOthers() async throws {
        try await withServer { bound, _ in
            let start = ContinuousClock.now
            async let slow = exchange(bound, rpcRequest(#"{"jsonrpc":"2.0","method":"test.slow","params":[1500],"id":1}"#))
            try await Task.sleep(for: .milliseconds(50))
            let fast = try await exchange(bound, unix: true, rpcRequest(#"{"jsonrpc":"2.0","method":"test.add","params":[1,1],"id":1}"#))
            let fastTime = ContinuousClock.now - start
            #expect(fast.first?.json?["result"] == 2)
            #expect(fastTime < .milliseconds(1400))
            #expect(try await slow.first?.json?["result"] == "done")
        }
    }

    @Test func http10ClosesUnlessKeptAlive() async throws {
        try await withServer { bound, _ in
            let (r, closed) = try await blocking {
                let c = try RawConnection.tcp(port: bound.httpPort!)
                c.send("GET /metrics HTTP/1.0\r\n\r\n")
                let r = try c.readResponse()
                return (r, c.closedByPeer(within: 3))
            }
            #expect(r.status == 200 && closed)
            let (r2, closed2) = try await blocking {
                let c = try RawConnection.tcp(port: bound.httpPort!)
                c.send("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                let r = try c.readResponse()
                return (r, c.closedByPeer(within: 3))
            }
            #expect(r2.status == 200 && r2.headers["connection"] == "close" && closed2)
        }
    }

    @Test func unixSocketIsPrivateAndRemovedOnStop() async throws {
        let dir = ScratchDir()
        let path = dir.file("ksr.sock")
        let server = ControlServer(registry: RPCRegistry(), metrics: { "" }, logger: quietLogger)
        let bound = try await blocking { try server.start(http: nil, unixPath: path) }
        #expect(bound.unixPath == path && bound.httpPort == nil)
        #expect(bound.description == "unix:\(path)")
        var st = stat()
        #expect(lstat(path, &st) == 0)
        #expect(st.st_mode & 0o777 == 0o600)
        #expect(st.st_mode & S_IFMT == S_IFSOCK)
        try await blocking { server.stop() }
        #expect(!FileManager.default.fileExists(atPath: path))
        // Can start again.
        _ = try await blocking { try server.start(http: nil, unixPath: path) }
        #expect(FileManager.default.fileExists(atPath: path))
        try await blocking { server.stop() }
    }

    @Test func staleSocketIsReplaced() async throws {
        let dir = ScratchDir()
        let path = dir.file("ksr.sock")
        try RawConnection.makeStaleSocket(path)
        #expect(FileManager.default.fileExists(atPath: path))
        let server = ControlServer(registry: makeTestRegistry(), metrics: { "" }, logger: quietLogger)
        let bound = try await blocking { try server.start(http: nil, unixPath: path) }
        let r = try await exchange(bound, unix: true, rpcRequest(#"{"jsonrpc":"2.0","method":"test.add","params":[1,1],"id":1}"#))
        #expect(r.first?.json?["result"] == 2)
        try await blocking { server.stop() }
    }

    @Test func liveSocketIsNotStolen() async throws {
        try await withServer { bound, _ in
            let other = ControlServer(registry: RPCRegistry(), metrics: { "" }, logger: quietLogger)
            let error = await #expect(throws: ControlError.self) {
                try await blocking { try other.start(http: nil, unixPath: bound.unixPath!) }
            }
            #expect(error?.message == "cannot listen on unix:\(bound.unixPath!): another server is listening there")
            // The first server still answers there.
            let r = try await exchange(bound, unix: true, getRequest("/metrics"))
            #expect(r.first?.status == 200)
        }
    }

    @Test func notASocketIsRefused() async throws {
        let dir = ScratchDir()
        let path = dir.file("file")
        _ = FileManager.default.createFile(atPath: path, contents: Data("x".utf8))
        let server = ControlServer(registry: RPCRegistry(), metrics: { "" }, logger: quietLogger)
        let error = await #expect(throws: ControlError.self) {
            try await blocking { try server.start(http: nil, unixPath: path) }
        }
        #expect(error?.message.contains("not a socket") == true)
        #expect(FileManager.default.fileExists(atPath: path))
    }

    @Test func busyPortIsAClearError() async throws {
        try await withServer { bound, _ in
            let port = bound.httpPort!
            let other = ControlServer(registry: RPCRegistry(), metrics: { "" }, logger: quietLogger)
            let error = await #expect(throws: ControlError.self) {
                try await blocking { try other.start(http: ("127.0.0.1", port), unixPath: nil) }
            }
            #expect(error?.message == "cannot listen on 127.0.0.1:\(port): address already in use")
            // Nothing half-started: a later start works.
            let b = try await blocking { try other.start(http: ("127.0.0.1", 0), unixPath: nil) }
            #expect(b.httpPort != port)
            try await blocking { other.stop() }
        }
    }

    @Test func failedUnixBindReleasesTheTCPPort() async throws {
        let dir = ScratchDir()
        let port = try unusedPort()
        let server = ControlServer(registry: RPCRegistry(), metrics: { "" }, logger: quietLogger)
        await #expect(throws: ControlError.self) {
            try await blocking { try server.start(http: ("127.0.0.1", port), unixPath: dir.file("no/such/dir/s")) }
        }
        let b = try await blocking { try server.start(http: ("127.0.0.1", port), unixPath: nil) }
        #expect(b.httpPort == port)
        #expect(b.description == "http:127.0.0.1:\(port)")
        try await blocking { server.stop() }
    }

    @Test func startTwiceIsAnError() async throws {
        let server = ControlServer(registry: RPCRegistry(), metrics: { "" }, logger: quietLogger)
        _ = try await blocking { try server.start(http: ("127.0.0.1", 0), unixPath: nil) }
        await #expect(throws: ControlError.self) {
            try await blocking { try server.start(http: ("127.0.0.1", 0), unixPath: nil) }
        }
        try await blocking { server.stop() }
        try await blocking { server.stop() }  // idempotent
    }

    @Test func stopClosesListenersAndLetsRunningRequestsFinish() async throws {
        let server = ControlServer(registry: makeTestRegistry(), metrics: { "" }, logger: quietLogger)
        let bound = try await blocking { try server.start(http: ("127.0.0.1", 0), unixPath: nil) }
        async let slow = exchange(bound, rpcRequest(#"{"jsonrpc":"2.0","method":"test.slow","params":[300],"id":1}"#))
        try await Task.sleep(for: .milliseconds(100))
        try await blocking { server.stop() }
        #expect(try await slow.first?.json?["result"] == "done")
        await #expect(throws: (any Error).self) { try await blocking { _ = try RawConnection.tcp(port: bound.httpPort!) } }
    }

    @Test func curlOverTheUnixSocket() async throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/curl") else { return }
        try await withServer { bound, _ in
            // A body over 1 KiB makes curl use Expect: 100-continue.
            let big = String(repeating: "c", count: 5000)
            let out = try await blocking {
                try runCurl(["-s", "--unix-socket", bound.unixPath!, "-H", "Content-Type: application/json", "--data-binary",
                             #"{"jsonrpc":"2.0","method":"test.echo","params":["\#(big)"],"id":1}"#, "http://x/RPC"])
            }
            #expect(try JSONValue(parsing: out)["result"]?.stringValue == big)
            let metrics = try await blocking { try runCurl(["-s", "--unix-socket", bound.unixPath!, "http://x/metrics"]) }
            #expect(metrics.contains("ksr_test 42"))
            let code = try await blocking {
                try runCurl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(bound.httpPort!)/nope"])
            }
            #expect(code == "404")
        }
    }
}

func runCurl(_ args: [String]) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
    p.arguments = ["--max-time", "10"] + args
    let pipe = Pipe()
    p.standardOutput = pipe
    try p.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return String(decoding: data, as: UTF8.self)
}

extension RawConnection {
    /// The status of the next response head, consuming only the head (for 100 Continue).
    func readResponseHead(timeout: Double = 5) throws -> Int {
        var collected: [UInt8] = []
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while collected.firstRange(of: Array("\r\n\r\n".utf8)) == nil {
            guard poll(&pfd, 1, Int32(timeout * 1000)) > 0 else { throw TestFailure("timed out") }
            var byte: UInt8 = 0
            guard recv(fd, &byte, 1, 0) == 1 else { throw TestFailure("closed") }
            collected.append(byte)
        }
        let line = String(decoding: collected, as: UTF8.self).split(separator: " ")
        return line.count > 1 ? Int(line[1]) ?? 0 : 0
    }
}
