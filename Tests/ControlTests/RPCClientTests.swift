import Control
import Foundation
import Testing

@Suite("RPC client")
struct RPCClientTests {
    @Test func parsesEndpoints() {
        let cases: [(String, RPCEndpoint?)] = [
            ("http:127.0.0.1:5064", .http(host: "127.0.0.1", port: 5064)),
            ("http://127.0.0.1:5064", .http(host: "127.0.0.1", port: 5064)),
            ("http://127.0.0.1:5064/RPC", .http(host: "127.0.0.1", port: 5064)),
            ("127.0.0.1:5064", .http(host: "127.0.0.1", port: 5064)),
            ("localhost:1", .http(host: "localhost", port: 1)),
            ("tcp:10.0.0.1:2049", .http(host: "10.0.0.1", port: 2049)),
            ("[::1]:5064", .http(host: "::1", port: 5064)),
            ("http://[::1]:5064", .http(host: "::1", port: 5064)),
            ("unix:/path/sock", .unix(path: "/path/sock")),
            ("unix:///path/sock", .unix(path: "/path/sock")),
            ("unix:rel.sock", .unix(path: "rel.sock")),
            ("/path/sock", .unix(path: "/path/sock")),
            ("./ksr.sock", .unix(path: "./ksr.sock")),
            ("127.0.0.1", nil), ("127.0.0.1:0", nil), ("127.0.0.1:70000", nil), ("127.0.0.1:x", nil), (":5064", nil),
            ("unix:", nil), ("", nil), ("::1:5064", nil), ("[::1]5064", nil),
        ]
        for (text, expected) in cases {
            #expect(RPCEndpoint(parsing: text) == expected, "\(text)")
        }
        #expect(RPCEndpoint.http(host: "127.0.0.1", port: 5064).description == "http:127.0.0.1:5064")
        #expect(RPCEndpoint.http(host: "::1", port: 5064).description == "http:[::1]:5064")
        #expect(RPCEndpoint.unix(path: "/s").description == "unix:/s")
    }

    @Test(arguments: [false, true])
    func roundTripBlocking(unix: Bool) async throws {
        try await withServer { bound, _ in
            let endpoint: RPCEndpoint = unix ? .unix(path: bound.unixPath!) : .http(host: "127.0.0.1", port: bound.httpPort!)
            let (sum, greeting, ordered) = try await blocking {
                (
                    try RPCClient.call(endpoint, method: "test.add", params: [40, "2"]),
                    try RPCClient.call(endpoint, method: "test.greet", params: ["ksr"]),
                    try RPCClient.call(endpoint, method: "test.ordered")
                )
            }
            #expect(sum == 42)
            #expect(greeting == "hello ksr!")
            #expect(ordered.keys == ["zeta", "alpha", "mid"])
        }
    }

    @Test(arguments: [false, true])
    func roundTripAsync(unix: Bool) async throws {
        try await withServer { bound, _ in
            let endpoint: RPCEndpoint = unix ? .unix(path: bound.unixPath!) : .http(host: "127.0.0.1", port: bound.httpPort!)
            let value: JSONValue = ["list": [1, 2.5, "x", nil, true], "nested": ["k": "v"]]
            #expect(try await RPCClient.call(endpoint, method: "test.echo", params: [value]) == value)
            let methods = try await RPCClient.call(endpoint, method: "system.listMethods")
            #expect(methods.arrayValue?.contains("test.add") == true)
        }
    }

    @Test func jsonRPCErrorsAreThrownAsRPCError() async throws {
        try await withServer { bound, _ in
            let endpoint = RPCEndpoint.unix(path: bound.unixPath!)
            let errors: [RPCError?] = try await blocking {
                func attempt(_ method: String, _ params: [JSONValue]) -> RPCError? {
                    do {
                        _ = try RPCClient.call(endpoint, method: method, params: params)
                        return nil
                    } catch {
                        return error as? RPCError
                    }
                }
                return [
                    attempt("test.fail", [404]), attempt("no.such", []), attempt("test.add", [1]),
                    attempt("test.boom", []),
                ]
            }
            #expect(errors[0] == RPCError(code: 404, message: "Empty queue", data: ["queue": "q1"]))
            #expect(errors[1] == RPCError(code: -32601, message: "method not found: no.such"))
            #expect(errors[2] == RPCError(code: -32602, message: "missing parameter 'b' (int)"))
            #expect(errors[3]?.code == -32603)
        }
    }

    @Test func clearErrorWhenNothingListens() async throws {
        let dir = ScratchDir()
        let path = dir.file("none.sock")
        let port = try unusedPort()
        let (unixError, tcpError, staleError) = try await blocking { () throws -> (ControlError?, ControlError?, ControlError?) in
            func attempt(_ e: RPCEndpoint) -> ControlError? {
                do {
                    _ = try RPCClient.call(e, method: "core.version", timeout: 3)
                    return nil
                } catch {
                    return error as? ControlError
                }
            }
            let u = attempt(.unix(path: path))
            let t = attempt(.http(host: "127.0.0.1", port: port))
            try RawConnection.makeStaleSocket(path)
            return (u, t, attempt(.unix(path: path)))
        }
        #expect(unixError?.message == "cannot connect to unix:\(path): no such file or directory")
        #expect(tcpError?.message == "cannot connect to http:127.0.0.1:\(port): connection refused")
        #expect(staleError?.message == "cannot connect to unix:\(path): connection refused")
        await #expect(throws: ControlError.self) {
            try await RPCClient.call(.unix(path: path + ".x"), method: "x")
        }
    }

    @Test func timesOut() async throws {
        try await withServer { bound, _ in
            let start = ContinuousClock.now
            let error = await #expect(throws: ControlError.self) {
                try await blocking {
                    try RPCClient.call(.http(host: "127.0.0.1", port: bound.httpPort!), method: "test.slow", params: [2000],
                                       timeout: 0.3)
                }
            }
            #expect(error?.message.contains("timed out") == true)
            #expect(ContinuousClock.now - start < .milliseconds(1500))
        }
    }

    @Test func httpErrorStatusIsReported() async throws {
        try await withServer(.init(maxBodySize: 100)) { bound, _ in
            let error = await #expect(throws: ControlError.self) {
                try await RPCClient.call(.unix(path: bound.unixPath!), method: "test.echo",
                                         params: [.string(String(repeating: "x", count: 200))])
            }
            #expect(error?.message.contains("HTTP 413") == true)
        }
    }

    /// Prints the average round trip of a trivial call through the blocking client (connection
    /// set-up included, as for `ksr rpc`). No assertion on the time.
    @Test func measureRoundTrip() async throws {
        try await withServer { bound, _ in
            let calls = 200
            for endpoint in [RPCEndpoint.http(host: "127.0.0.1", port: bound.httpPort!), .unix(path: bound.unixPath!)] {
                let micros = try await blocking { () throws -> Double in
                    for _ in 0..<10 { _ = try RPCClient.call(endpoint, method: "test.echo", params: [1]) }
                    let start = ContinuousClock.now
                    for _ in 0..<calls { _ = try RPCClient.call(endpoint, method: "test.echo", params: [1]) }
                    let elapsed = ContinuousClock.now - start
                    return Double(elapsed.components.seconds) * 1e6 + Double(elapsed.components.attoseconds) / 1e12
                }
                print("RPC round trip over \(endpoint): \(String(format: "%.1f", micros / Double(calls))) µs average of \(calls) calls")
            }
        }
    }
}
