import Control
import Testing

@Suite("JSON-RPC 2.0 registry")
struct RPCRegistryTests {
    let registry = makeTestRegistry()

    /// The answer to a body, as text ("" for none).
    func answer(_ body: String) async -> String {
        guard let bytes = await registry.handle(Array(body.utf8)) else { return "" }
        return String(decoding: bytes, as: UTF8.self)
    }

    func answerJSON(_ body: String) async throws -> JSONValue {
        try JSONValue(parsing: await answer(body))
    }

    func errorCode(_ body: String) async throws -> Int? {
        try await answerJSON(body)["error"]?["code"]?.intValue
    }

    func errorMessage(_ body: String) async throws -> String? {
        try await answerJSON(body)["error"]?["message"]?.stringValue
    }

    @Test func singleRequestIsAnsweredCompactly() async {
        #expect(await answer(#"{"jsonrpc":"2.0","method":"test.add","params":[1,2],"id":1}"#)
            == #"{"jsonrpc":"2.0","result":3,"id":1}"#)
        #expect(await answer(#"{"jsonrpc":"2.0","method":"test.add","params":[1,2],"id":"abc"}"#)
            == #"{"jsonrpc":"2.0","result":3,"id":"abc"}"#)
        #expect(await answer(#"{"id":null,"method":"test.add","params":[1,2],"jsonrpc":"2.0"}"#)
            == #"{"jsonrpc":"2.0","result":3,"id":null}"#)
        #expect(await answer(#"{"jsonrpc":"2.0","method":"test.add","params":[1,2],"id":2.5}"#)
            == #"{"jsonrpc":"2.0","result":3,"id":2.5}"#)
    }

    @Test func resultKeepsTheHandlersKeyOrder() async {
        #expect(await answer(#"{"jsonrpc":"2.0","method":"test.ordered","id":1}"#)
            == #"{"jsonrpc":"2.0","result":{"zeta":1,"alpha":2,"mid":{"y":true,"b":null}},"id":1}"#)
    }

    @Test func paramsMayBeAbsent() async throws {
        #expect(try await answerJSON(#"{"jsonrpc":"2.0","method":"test.echo","id":1}"#)["result"] == .null)
        #expect(try await answerJSON(#"{"jsonrpc":"2.0","method":"test.echo","params":[],"id":1}"#)["result"] == .null)
        #expect(try await answerJSON(#"{"jsonrpc":"2.0","method":"test.echo","params":{},"id":1}"#)["result"] == .null)
        #expect(try await answerJSON(#"{"jsonrpc":"2.0","method":"test.echo","params":[{"a":[1]}],"id":1}"#)["result"]
            == ["a": [1]])
    }

    @Test func notificationsGetNoAnswer() async {
        #expect(await registry.handle(Array(#"{"jsonrpc":"2.0","method":"test.add","params":[1,2]}"#.utf8)) == nil)
        // Not even an error.
        #expect(await registry.handle(Array(#"{"jsonrpc":"2.0","method":"nope"}"#.utf8)) == nil)
        #expect(await registry.handle(Array(#"{"jsonrpc":"2.0","method":"test.add","params":["x"]}"#.utf8)) == nil)
    }

    @Test func batches() async throws {
        let reply = try await answerJSON(
            #"""
            [{"jsonrpc":"2.0","method":"test.add","params":[1,2],"id":"1"},
             {"jsonrpc":"2.0","method":"test.add","params":[7,7]},
             {"jsonrpc":"2.0","method":"nope","id":"2"},
             {"foo":"boo"},
             {"jsonrpc":"2.0","method":"test.greet","params":{"name":"x"},"id":"3"}]
            """#)
        let items = try #require(reply.arrayValue)
        #expect(items.count == 4)
        #expect(items[0] == ["jsonrpc": "2.0", "result": 3, "id": "1"])
        #expect(items[1]["error"]?["code"] == -32601)
        #expect(items[1]["id"] == "2")
        #expect(items[2]["error"]?["code"] == -32600)
        #expect(items[2]["id"] == .null)
        #expect(items[3]["result"] == "hello x!")
        // Only notifications: nothing at all.
        #expect(await registry.handle(Array(
            #"[{"jsonrpc":"2.0","method":"test.add","params":[1,2]},{"jsonrpc":"2.0","method":"nope"}]"#.utf8)) == nil)
        // An empty batch is one invalid request, not an array.
        let empty = try await answerJSON("[]")
        #expect(empty["error"]?["code"] == -32600)
        #expect(empty["id"] == .null)
        // Elements that are not requests each get an error.
        let junk = try await answerJSON("[1,2,3]")
        #expect(junk.arrayValue?.count == 3)
        #expect(junk.arrayValue?.allSatisfy { $0["error"]?["code"] == -32600 } == true)
    }

    @Test func parseError() async throws {
        let r = try await answerJSON(#"{"jsonrpc":"2.0","method":"foobar,"params":"bar","baz]"#)
        #expect(r["error"]?["code"] == -32700)
        #expect(r["id"] == .null)
        #expect(try await errorCode("") == -32700)
        #expect(try await errorCode(#"[{"jsonrpc":"2.0","method":"sum","params":[1,2,4],"id":"1"},{"jsonrpc":"2.0","method""#)
            == -32700)
    }

    @Test func invalidRequests() async throws {
        #expect(try await errorCode(#"{"method":"test.add","params":[1,2],"id":1}"#) == -32600)
        #expect(try await errorCode(#"{"jsonrpc":"1.0","method":"test.add","params":[1,2],"id":1}"#) == -32600)
        #expect(try await errorCode(#"{"jsonrpc":2.0,"method":"test.add","params":[1,2],"id":1}"#) == -32600)
        #expect(try await errorCode(#"{"jsonrpc":"2.0","method":1,"params":"bar"}"#) == -32600)
        #expect(try await errorCode(#"{"jsonrpc":"2.0","method":"test.add","params":"bar","id":1}"#) == -32600)
        #expect(try await errorCode(#"{"jsonrpc":"2.0","method":"test.add","params":null,"id":1}"#) == -32600)
        #expect(try await errorCode(#"{"jsonrpc":"2.0","method":"test.add","params":[1,2],"id":{}}"#) == -32600)
        #expect(try await errorCode(#"{"jsonrpc":"2.0","method":"test.add","params":[1,2],"id":true}"#) == -32600)
        #expect(try await errorCode(#""just a string""#) == -32600)
        #expect(try await errorCode("42") == -32600)
        // The id is echoed when it could be read.
        #expect(try await answerJSON(#"{"jsonrpc":"1.0","method":"x","id":9}"#)["id"] == 9)
    }

    @Test func unknownMethod() async throws {
        let r = try await answerJSON(#"{"jsonrpc":"2.0","method":"no.such","id":5}"#)
        #expect(r == ["jsonrpc": "2.0", "error": ["code": -32601, "message": "method not found: no.such"], "id": 5])
    }

    @Test func invalidParams() async throws {
        #expect(try await answerJSON(#"{"jsonrpc":"2.0","method":"test.greet","id":1}"#)["error"]
            == ["code": -32602, "message": "missing parameter 'name' (string)"])
        #expect(try await errorMessage(#"{"jsonrpc":"2.0","method":"test.greet","params":[42],"id":1}"#)
            == "parameter 'name' must be a string")
        #expect(try await errorCode(#"{"jsonrpc":"2.0","method":"test.greet","params":[null],"id":1}"#) == -32602)
        #expect(try await errorMessage(#"{"jsonrpc":"2.0","method":"test.add","params":[1],"id":1}"#)
            == "missing parameter 'b' (int)")
        #expect(try await errorMessage(#"{"jsonrpc":"2.0","method":"test.add","params":[1,"x"],"id":1}"#)
            == "parameter 'b' must be an integer")
        #expect(try await errorMessage(#"{"jsonrpc":"2.0","method":"test.add","params":[1,2.5],"id":1}"#)
            == "parameter 'b' must be an integer")
        #expect(try await errorCode(#"{"jsonrpc":"2.0","method":"test.add","params":[1,2,3],"id":1}"#) == -32602)
        #expect(try await errorMessage(#"{"jsonrpc":"2.0","method":"test.add","params":{"a":1,"c":2},"id":1}"#)
            == "unknown parameter 'c'")
        #expect(try await errorCode(#"{"jsonrpc":"2.0","method":"test.flag","params":["maybe"],"id":1}"#) == -32602)
        #expect(try await errorMessage(#"{"jsonrpc":"2.0","method":"system.listMethods","params":[1],"id":1}"#)?
            .contains("too many parameters") == true)
    }

    @Test func namedParamsFollowTheDeclaredOrder() async throws {
        #expect(try await answerJSON(#"{"jsonrpc":"2.0","method":"test.add","params":{"b":2,"a":40},"id":1}"#)["result"] == 42)
        #expect(try await answerJSON(#"{"jsonrpc":"2.0","method":"test.greet","params":{"punct":"?","name":"bob"},"id":1}"#)["result"]
            == "hello bob?")
        // An optional parameter given as null is absent.
        #expect(try await answerJSON(#"{"jsonrpc":"2.0","method":"test.greet","params":["bob",null],"id":1}"#)["result"]
            == "hello bob!")
        #expect(try await errorMessage(#"{"jsonrpc":"2.0","method":"test.add","params":{"b":2},"id":1}"#)
            == "missing parameter 'a' (int)")
    }

    @Test func coercesStringsLikeKamcmdSends() async throws {
        #expect(try await answerJSON(#"{"jsonrpc":"2.0","method":"test.add","params":["40","-2"],"id":1}"#)["result"] == 38)
        #expect(try await answerJSON(#"{"jsonrpc":"2.0","method":"test.add","params":[40.0,2],"id":1}"#)["result"] == 42)
        for (given, expected) in [(#""yes""#, true), (#""0""#, false), ("1", true), ("false", false), (#""On""#, true)] {
            #expect(try await answerJSON(#"{"jsonrpc":"2.0","method":"test.flag","params":[\#(given)],"id":1}"#)["result"]
                == .bool(expected), "\(given)")
        }
        #expect(try await errorCode(#"{"jsonrpc":"2.0","method":"test.add","params":["4x",1],"id":1}"#) == -32602)
    }

    @Test func kamailioErrorCodesPassThrough() async throws {
        let r = try await answerJSON(#"{"jsonrpc":"2.0","method":"test.fail","params":[404],"id":3}"#)
        #expect(r == ["jsonrpc": "2.0", "error": ["code": 404, "message": "Empty queue", "data": ["queue": "q1"]], "id": 3])
        #expect(try await errorCode(#"{"jsonrpc":"2.0","method":"test.fail","params":["500"],"id":3}"#) == 500)
    }

    @Test func otherErrorsAreInternal() async throws {
        let r = try await answerJSON(#"{"jsonrpc":"2.0","method":"test.boom","id":1}"#)
        #expect(r["error"]?["code"] == -32603)
        #expect(r["error"]?["message"]?.stringValue?.contains("boom") == true)
    }

    @Test func introspection() async throws {
        let names = try await answerJSON(#"{"jsonrpc":"2.0","method":"system.listMethods","id":1}"#)["result"]
        let expected = [
            "system.listMethods", "system.methodHelp", "test.add", "test.boom", "test.echo", "test.fail", "test.flag",
            "test.greet", "test.ordered", "test.slow",
        ]
        #expect(names == .array(expected.map { .string($0) }))
        #expect(registry.methods.map(\.name) == expected)
        let help = try await answerJSON(#"{"jsonrpc":"2.0","method":"system.methodHelp","params":["test.add"],"id":1}"#)
        #expect(help["result"]?.stringValue?.hasPrefix("Adds two integers.") == true)
        #expect(help["result"]?.stringValue?.contains("a (int)") == true)
        #expect(try await errorCode(#"{"jsonrpc":"2.0","method":"system.methodHelp","params":["x.y"],"id":1}"#) == -32602)
        #expect(registry.method(named: "test.greet")?.signature == "name (string), [punct] (string)")
    }

    @Test func registerAndUnregister() async throws {
        let r = RPCRegistry()
        r.register(RPCMethod("a.b") { _ in "one" })
        #expect(try await r.call("a.b") == "one")
        #expect(r.unregister("a.b"))
        #expect(!r.unregister("a.b"))
        await #expect(throws: RPCError.methodNotFound("a.b")) { try await r.call("a.b") }
        r.register(RPCMethod(name: "a.b", params: [RPCParam(name: "n", type: .int, optional: true)]) { args in
            .int(args[0]?.intValue ?? -1)
        })
        #expect(try await r.call("a.b", params: []) == -1)
        #expect(try await r.call("a.b", params: ["n": "7"]) == 7)
    }

    @Test func registeringANameTwiceIsAProgrammingError() async {
        await #expect(processExitsWith: .failure) {
            let r = RPCRegistry()
            r.register(RPCMethod("x") { _ in nil })
            r.register(RPCMethod("x") { _ in nil })
        }
    }

    @Test func argumentsAccessors() throws {
        let params = [RPCParam("name", .string), RPCParam("n", .int, optional: true), RPCParam("v", .any, optional: true)]
        let args = RPCArguments(method: "m", params: params, values: ["q", nil, "12"])
        #expect(try args.string("name") == "q")
        #expect(args.count == 2)
        #expect(args.has(0) && !args.has("n") && args.has("v"))
        #expect(throws: RPCError.invalidParams("missing parameter 'n' (int)")) { try args.int("n") }
        #expect(try args.int(2) == 12)  // an `.any` value read as int
        #expect(throws: RPCError.invalidParams("parameter 'name' must be an integer")) { try args.int(0) }
        #expect(args["v"] == "12")
        #expect(args[7] == nil)
    }
}
