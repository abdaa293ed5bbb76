import KSRBase
import Testing

private func pairs(_ p: ParamList) -> [String] { p.entries.map { "\($0.name)=\($0.value)" } }

@Suite("ParamList")
struct ParamListTests {
    @Test func basicPairsInOrder() throws {
        let p = try ParamList(parsing: "name=ta;interval=10;mode=1")
        #expect(pairs(p) == ["name=ta", "interval=10", "mode=1"])
        #expect(p["name"] == "ta")
        #expect(p["interval"] == "10")
        #expect(p["missing"] == nil)
    }

    @Test func trailingSemicolonAndWhitespace() throws {
        #expect(pairs(try ParamList(parsing: "name=ta;interval=10;mode=1;")) == ["name=ta", "interval=10", "mode=1"])
        #expect(pairs(try ParamList(parsing: "a=1;  \n")) == ["a=1"])
        #expect(pairs(try ParamList(parsing: "a=1 ;")) == ["a=1"])
        #expect(pairs(try ParamList(parsing: "  name = ta ;\tinterval=\t10 ; ")) == ["name=ta", "interval=10"])
    }

    @Test func caseInsensitiveLookupKeepsNameAsWritten() throws {
        let p = try ParamList(parsing: "Name=ta;INTERVAL=5")
        #expect(p["name"] == "ta")
        #expect(p["NAME"] == "ta")
        #expect(p["Interval"] == "5")
        #expect(p.entries.map(\.name) == ["Name", "INTERVAL"])
    }

    @Test func firstOccurrenceWins() throws {
        let p = try ParamList(parsing: "name=a;NAME=b;name=c")
        #expect(p["name"] == "a")
        #expect(p.entries.count == 3)
    }

    @Test func quotedValues() throws {
        let p = try ParamList(parsing: #"name="ta";route="a;b";sp=" x y ";empty="";half="abc"#)
        #expect(p["name"] == "ta")
        #expect(p["route"] == "a;b")
        #expect(p["sp"] == " x y ")
        #expect(p["empty"] == "")
        #expect(p["half"] == "\"abc")
    }

    @Test func valueMayContainEqualsAndBeEmpty() throws {
        let p = try ParamList(parsing: "a=x=y;b=")
        #expect(p["a"] == "x=y")
        #expect(p["b"] == "")
    }

    @Test(arguments: ["", "   ", ";", " ; ", "\t;"])
    func emptyTextIsAnError(_ text: String) {
        #expect(throws: ParamError.self) { try ParamList(parsing: text) }
    }

    @Test(arguments: ["a=1;;b=2", ";a=1", "a=1;;", "a=1; ;b=2"])
    func emptyItemIsAnError(_ text: String) {
        #expect(throws: ParamError.self) { try ParamList(parsing: text) }
    }

    @Test func missingEqualsOrNameIsAnError() {
        #expect(throws: ParamError("missing '=' in 'mode'")) { try ParamList(parsing: "name=ta;mode") }
        #expect(throws: ParamError.self) { try ParamList(parsing: "justaword") }
        #expect(throws: ParamError("missing name before '=' in '=5'")) { try ParamList(parsing: "name=ta;=5") }
        #expect(throws: ParamError.self) { try ParamList(parsing: " = ") }
    }

    @Test func unknownNames() throws {
        let p = try ParamList(parsing: "name=ta;Interval=1;bogus=2;Other=3")
        #expect(p.unknownNames(known: ["name", "interval", "mode"]) == ["bogus", "Other"])
    }

    @Test func trimmingSpaces() {
        #expect(" \t a b \r \n".trimmingSpaces() == "a b")
        #expect("   ".trimmingSpaces() == "")
        #expect("".trimmingSpaces() == "")
        #expect("x".trimmingSpaces() == "x")
    }

    /// "\r\n" is one `Character` in Swift: a CRLF line ending must still count as whitespace.
    @Test func crlfIsWhitespace() throws {
        #expect("a b\r\n".trimmingSpaces() == "a b")
        #expect(parseSignedDecimal("12\r\n") == 12)
        let p = try ParamList(parsing: "name=ta;mode=1;\r\n")
        #expect(p["mode"] == "1")
    }

    @Test func unknownNamesCompareCaseInsensitively() throws {
        let p = try ParamList(parsing: "NAME=a;Foo=b")
        #expect(p.unknownNames(known: ["Name"]) == ["Foo"])
    }

    @Test func unsignedDecimal() {
        #expect(parseUnsignedDecimal("0") == 0)
        #expect(parseUnsignedDecimal("10") == 10)
        #expect(parseUnsignedDecimal("007") == 7)
        #expect(parseUnsignedDecimal("999999999999999999") == 999_999_999_999_999_999)
        for bad in ["", "-1", "+1", " 1", "1 ", "1.5", "0x10", "1e3", "abc", "1000000000000000000", "١٢"] {
            #expect(parseUnsignedDecimal(bad) == nil, "\(bad)")
        }
        #expect(parseUnsignedDecimal("42"[...]) == 42)
    }

    @Test func signedDecimal() {
        #expect(parseSignedDecimal("0") == 0)
        #expect(parseSignedDecimal("-5") == -5)
        #expect(parseSignedDecimal("+5") == 5)
        #expect(parseSignedDecimal("  12 ") == 12)
        #expect(parseSignedDecimal("9223372036854775807") == Int.max)
        #expect(parseSignedDecimal("-922337203685477580") == -922_337_203_685_477_580)
        for bad in ["", " ", "-", "+", "1.0", "0x1", "12a", "- 1", "9223372036854775808", "99999999999999999999"] {
            #expect(parseSignedDecimal(bad) == nil, "\(bad)")
        }
    }

    @Test func paramValues() {
        #expect(ParamValue.string("yes").intValue == 1)
        #expect(ParamValue.string(" 42 ").intValue == 42)
        #expect(ParamValue.string("ten").intValue == nil)
        #expect(ParamValue.int(7).text == "7")
    }
}
