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

        var negative = SIPStreamFramer()
        negative.append(Array("OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n".utf8))
        do {
            _ = try negative.next()
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .invalidContentLength)
        }

        var huge = SIPStreamFramer(maxMessageSize: 1000)
        huge.append(Array("OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 5000\r\n\r\n".utf8))
        do {
            _ = try huge.next()
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .messageTooLarge)
        }

        var endless = SIPStreamFramer(maxMessageSize: 1000)
        endless.append(Array("OPTIONS sip:a@b SIP/2.0\r\n".utf8))
        #expect(try endless.next() == nil)
        for _ in 0..<100 {
            endless.append(Array("X-Header: some value\r\n".utf8))
            if (try? endless.next()) == nil, endless.bufferedByteCount > 1000 { break }
        }
        #expect(throws: SIPParseError.self) { try endless.next() }
    }
}
