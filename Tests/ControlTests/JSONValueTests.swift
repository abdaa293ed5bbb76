import Control
import Testing

@Suite("JSONValue")
struct JSONValueTests {
    func parse(_ s: String) throws -> JSONValue { try JSONValue(parsing: s) }

    @Test func scalars() throws {
        #expect(try parse("null") == .null)
        #expect(try parse(" true ") == .bool(true))
        #expect(try parse("false") == .bool(false))
        #expect(try parse("42") == .int(42))
        #expect(try parse("-0") == .int(0))
        #expect(try parse("-17") == .int(-17))
        #expect(try parse("1.5") == .double(1.5))
        #expect(try parse("1e3") == .double(1000))
        #expect(try parse("2E-2") == .double(0.02))
        #expect(try parse("1.0") == .double(1.0))
        #expect(try parse("9223372036854775807") == .int(Int.max))
        #expect(try parse("-9223372036854775808") == .int(Int.min))
        #expect(try parse("9223372036854775808") == .double(9223372036854775808))
        #expect(try parse(#""a\"b\\c\/d\b\f\n\r\t""#) == .string("a\"b\\c/d\u{8}\u{c}\n\r\t"))
        #expect(try parse(#""\u00e9\u20AC\ud83d\ude00""#) == .string("é€😀"))
        #expect(try parse("\"é€😀\"") == .string("é€😀"))
        #expect(try parse("\t\n\r [ ] ") == .array([]))
        #expect(try parse("{}") == .object([]))
    }

    @Test func intsAndBoolsStayDistinct() throws {
        let v = try parse(#"[1, 1.0, true, 0, false, "1"]"#)
        #expect(v == [.int(1), .double(1), .bool(true), .int(0), .bool(false), .string("1")])
        #expect(v[0] != v[1])
        #expect(v[2] != v[0])
        #expect(v[1]?.intValue == 1)
        #expect(v[0]?.doubleValue == 1.0)
        #expect(v[2]?.intValue == nil)
    }

    @Test func objectsKeepKeyOrder() throws {
        let v = try parse(#"{"z":1,"a":{"y":[1,2],"b":null},"m":"x"}"#)
        #expect(v.keys == ["z", "a", "m"])
        #expect(v["a"]?.keys == ["y", "b"])
        #expect(v.jsonString() == #"{"z":1,"a":{"y":[1,2],"b":null},"m":"x"}"#)
        // Equality ignores order.
        #expect(v == ["m": "x", "z": 1, "a": ["b": nil, "y": [1, 2]]])
        #expect(v != ["m": "x", "z": 2, "a": ["b": nil, "y": [1, 2]]])
        #expect(v != ["m": "x", "z": 1])
        // A repeated key keeps its first place and its last value.
        let r = try parse(#"{"a":1,"b":2,"a":3}"#)
        #expect(r.jsonString() == #"{"a":3,"b":2}"#)
    }

    @Test func subscriptsAndSetters() {
        var v: JSONValue = ["a": 1]
        v["b"] = "two"
        v["a"] = 10
        #expect(v.jsonString() == #"{"a":10,"b":"two"}"#)
        v["a"] = nil
        #expect(v.jsonString() == #"{"b":"two"}"#)
        var n: JSONValue = nil
        n["k"] = true
        #expect(n == ["k": true])
        let a: JSONValue = [1, "x", nil]
        #expect(a[1] == "x")
        #expect(a[3] == nil)
        #expect(a["k"] == nil)
        #expect(a[2]?.isNull == true)
        #expect(JSONValue.string("s").stringValue == "s")
        #expect(JSONValue.array([]).arrayValue?.isEmpty == true)
        #expect(JSONValue.double(2.5).intValue == nil)
    }

    @Test func serializesCompactly() {
        let v: JSONValue = [
            "s": "q\"b\\s\n\t\u{1}é", "i": -3, "d": 0.25, "t": true, "n": nil, "a": [], "o": [:], "big": 1e300,
        ]
        #expect(v.jsonString() == #"{"s":"q\"b\\s\n\t\u0001é","i":-3,"d":0.25,"t":true,"n":null,"a":[],"o":{},"big":1e+300}"#)
        #expect(JSONValue.double(.nan).jsonString() == "null")
        #expect(JSONValue.double(.infinity).jsonString() == "null")
        #expect(v.description == v.jsonString())
    }

    @Test func serializesPretty() {
        let v: JSONValue = ["name": "rpcq", "items": [1, ["k": "v"]], "empty": [], "none": [:]]
        let expected = """
            {
              "name": "rpcq",
              "items": [
                1,
                {
                  "k": "v"
                }
              ],
              "empty": [],
              "none": {}
            }
            """
        #expect(v.jsonString(pretty: true) == expected)
        #expect(JSONValue.int(3).jsonString(pretty: true) == "3")
    }

    @Test func roundTrips() throws {
        let docs: [JSONValue] = [
            ["a": [1, 2.5, "x\u{0}y", ["deep": [true, false, nil]]], "b": -1, "c": "😀\u{7f}"],
            [],
            "",
            .double(-0.000123),
            .int(Int.min),
        ]
        for doc in docs {
            #expect(try JSONValue(parsing: doc.jsonBytes()) == doc)
            #expect(try JSONValue(parsing: doc.jsonBytes(pretty: true)) == doc)
        }
    }

    @Test(arguments: [
        "", " ", "{", "}", "[1,]", "[,1]", "{\"a\":1,}", "{\"a\" 1}", "{a:1}", "{1:1}", "01", "1.", ".5", "+1", "-",
        "1e", "1e+", "0x10", "tru", "nul", "True", "NaN", "Infinity", "'a'", "\"abc", "\"a\\x\"", "\"\\u12\"",
        "\"\\ud800\"", "\"\\udc00x\"", "\"\\ud800\\u0041\"", "\"a\u{1}b\"", "\"a\nb\"", "[1] x", "1 2", "[1}", "{\"a\":1]",
        "1e999", "-1e999", "//c", "[1,,2]",
    ])
    func rejectsInvalid(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: text) }
    }

    @Test func rejectsInvalidUTF8() {
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: [0x22, 0xFF, 0x22]) }
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: [0x22, 0xC3, 0x22]) }
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: [0x22, 0x5C, 0x6E, 0xED, 0xA0, 0x80, 0x22]) }
    }

    @Test func limitsNesting() throws {
        let ok = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        #expect(try JSONValue(parsing: ok).jsonString() == ok)
        let deep = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: deep) }
        let deepObjects = String(repeating: #"{"a":"#, count: 65) + "1" + String(repeating: "}", count: 65)
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: deepObjects) }
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: "[[1]]", maximumDepth: 1) }
        // A hostile depth fails cleanly rather than overflowing the stack.
        let hostile = String(repeating: "[", count: 100_000)
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: hostile) }
    }

    @Test func errorsSayWhere() {
        do {
            _ = try JSONValue(parsing: "[1, x]")
            Issue.record("parsed")
        } catch {
            #expect(error.offset == 4)
            #expect(error.description.contains("offset 4"))
        }
    }
}
