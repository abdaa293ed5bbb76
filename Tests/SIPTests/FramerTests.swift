import KSRTestFixtures
import SIP
import Testing

@Suite struct FramerTests {
    @Test func splitsAStreamByteByByte() throws {
        let a = Fixtures.bytes(number: "01")
        let b = Fixtures.bytes(number: "08")
        let c = Fixtures.bytes(number: "22")
        let stream = Array("\r\n\r\n".utf8) + a + Array("\r\n\r\n\r\n\r\n".utf8) + b + c + Array("\r\n".utf8)
        var framer = SIPStreamFramer()
        var out: [[UInt8]] = []
        for byte in stream {
            framer.append([byte])
            while let m = try framer.next() { out.append(m) }
        }
        #expect(out == [a, b, c])
        #expect(framer.keepAlivePings == 3)
        #expect(framer.bufferedByteCount == 0)
        for m in out { #expect(throws: Never.self) { try SIPMessage(m, framing: .stream) } }
    }

    @Test func wholeChunksAndPartialBodies() throws {
        let a = Fixtures.bytes(number: "05")
        var framer = SIPStreamFramer()
        framer.append(a + a.prefix(a.count - 10))
        #expect(try framer.next() == a)
        #expect(try framer.next() == nil)
        #expect(try framer.next() == nil)
        #expect(framer.bufferedByteCount == a.count - 10)
        framer.append(contentsOf: a.suffix(10))
        #expect(try framer.next() == a)
        #expect(try framer.next() == nil)
    }

    @Test func manyMessagesKeepMemoryBounded() throws {
        let a = Fixtures.bytes(number: "12")
        var framer = SIPStreamFramer()
        var count = 0
        for _ in 0..<200 {
            framer.append(a + a + a)
            while try framer.next() != nil { count += 1 }
        }
        #expect(count == 600)
        #expect(framer.bufferedByteCount == 0)
    }

    @Test func bareLFHeaderEnd() throws {
        let msg = Array("OPTIONS sip:a@b SIP/2.0\nl: 2\n\nok".utf8)
        var framer = SIPStreamFramer()
        framer.append(msg + msg)
        #expect(try framer.next() == msg)
        #expect(try framer.next() == msg)
    }

    @Test func errors() throws {
        var missing = SIPStreamFramer()
        missing.append(Array("OPTIONS sip:a@b SIP/2.0\r\nCall-ID: 1\r\n\r\n".utf8))
        #expect(throws: SIPParseError.self) { try missing.next() }
        // stays failed
        missing.append(Fixtures.bytes(number: "01"))
        do {
            _ = try missing.next()
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .missingContentLength)
        }

        var conflicting = SIPStreamFramer()
        conflicting.append(Array("OPTIONS sip:a@b SIP/2.0\r\nl: 1\r\nContent-Length: 2\r\n\r\nab".utf8))
        #expect(throws: SIPParseError.self) { try conflicting.next() }

        #expect(frame(["OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n"]).failure == .invalidContentLength)
        #expect(frame(["OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 5000\r\n\r\n"], max: 1000).failure == .messageTooLarge)

        var endless = SIPStreamFramer(maxMessageSize: 1000)
        endless.append(Array("OPTIONS sip:a@b SIP/2.0\r\n".utf8))
        #expect(try endless.next() == nil)
        for _ in 0..<100 {
            endless.append(Array("X-Header: some value\r\n".utf8))
            if (try? endless.next()) == nil, endless.bufferedByteCount > 1000 { break }
        }
        #expect(throws: SIPParseError.self) { try endless.next() }
    }

    // The cases below came with the TCP transport's own framer, which this one replaced.

    /// Feeds `chunks` one after another: the messages that came out, the pings counted, and
    /// the code of the error that stopped it, if any.
    private func frame(_ chunks: [String], max: Int = 65_535) -> (out: [String], pings: Int, failure: SIPParseError.Code?) {
        var framer = SIPStreamFramer(maxMessageSize: max)
        var out: [String] = []
        for chunk in chunks {
            framer.append(Array(chunk.utf8))
            do {
                while let m = try framer.next() { out.append(String(decoding: m, as: UTF8.self)) }
            } catch {
                return (out, framer.keepAlivePings, error.code)
            }
        }
        return (out, framer.keepAlivePings, nil)
    }

    private let options = "OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\nContent-Length: 10\r\n\r\nhello body"

    @Test func everySplitPoint() {
        let bytes = Array(options.utf8)
        for cut in 1..<bytes.count {
            let r = frame([String(decoding: bytes[..<cut], as: UTF8.self), String(decoding: bytes[cut...], as: UTF8.self)])
            #expect(r.out == [options] && r.failure == nil, "cut at \(cut)")
        }
    }

    @Test func keepAlivesAndPings() {
        // A lone CRLF is skipped; CRLF CRLF is a ping; any split of it too.
        #expect(frame(["\r\n" + options]) == ([options], 0, nil))
        #expect(frame(["\r\n\r\n" + options]) == ([options], 1, nil))
        #expect(frame(["\r", "\n", "\r", "\n", options]) == ([options], 1, nil))
        #expect(frame([options + "\r\n\r\n\r\n\r\n" + options]) == ([options, options], 2, nil))
    }

    @Test func compactAndOddlySpacedContentLength() {
        let m = "MESSAGE sip:a@b SIP/2.0\r\nl:3\r\nCall-ID: x\r\n\r\nabc"
        #expect(frame([m]) == ([m], 0, nil))
        let n = "MESSAGE sip:a@b SIP/2.0\r\ncontent-LENGTH \t:  2 \r\n\r\nhi"
        #expect(frame([n]) == ([n], 0, nil))
    }

    @Test func headerValuesDoNotFoolIt() {
        // "l" inside another header's value, a folded line, a Content-Length-Foo header.
        let m = "MESSAGE sip:a@b SIP/2.0\r\nSubject: l: 99\r\n Content-Length: 42\r\nContent-Length-X: 7\r\nContent-Length: 1\r\n\r\nx"
        #expect(frame([m]) == ([m], 0, nil))
    }

    @Test func contentLengthValuesAndLimits() {
        #expect(frame(["OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 1x\r\n\r\n"]).failure == .invalidContentLength)
        #expect(frame(["OPTIONS sip:a@b SIP/2.0\r\nContent-Length: \r\n\r\n"]).failure == .invalidContentLength)
        #expect(frame(["OPTIONS sip:a@b SIP/2.0\r\nl: 1\r\nl: 2\r\n\r\n"]).failure == .conflictingContentLength)
        // Headers alone over the limit, without their end in sight.
        #expect(frame([String(repeating: "X", count: 200)], max: 100).failure == .messageTooLarge)
        // Announced body over the limit: refused before it comes.
        #expect(frame(["OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 500\r\n\r\n"], max: 100).failure == .messageTooLarge)
        // Exactly at the limit is fine.
        let m = "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 10\r\n\r\n0123456789"
        #expect(frame([m], max: m.utf8.count) == ([m], 0, nil))
        #expect(frame([m], max: m.utf8.count - 1).failure == .messageTooLarge)
    }
}
