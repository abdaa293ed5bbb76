import NIOCore
import Testing

@testable import SIPTransport

@Suite("stream framing")
struct StreamFramerTests {
    /// Feeds `chunks` one after another; returns what came out, and the failure if any.
    func frame(_ chunks: [String], max: Int = 65_535) -> (out: [SIPStreamFramer.Output], failure: SIPStreamFramer.Failure?) {
        var framer = SIPStreamFramer(maxMessageSize: max)
        var buffer = ByteBuffer()
        var out: [SIPStreamFramer.Output] = []
        for chunk in chunks {
            buffer.writeString(chunk)
            do {
                while let o = try framer.next(&buffer) { out.append(o) }
            } catch {
                return (out, error)
            }
        }
        return (out, nil)
    }

    func message(_ s: String) -> SIPStreamFramer.Output { .message(Array(s.utf8)) }

    @Test func twoMessagesInOneChunk() {
        let a = sipRequest(callID: "a"), b = sipRequest(callID: "b", body: "v=0\r\n")
        #expect(frame([a + b]).out == [message(a), message(b)])
    }

    @Test func everySplitPoint() {
        let m = sipRequest(body: "hello body")
        for cut in 1..<m.utf8.count {
            let bytes = Array(m.utf8)
            let r = frame([String(decoding: bytes[..<cut], as: UTF8.self), String(decoding: bytes[cut...], as: UTF8.self)])
            #expect(r.out == [message(m)], "cut at \(cut)")
        }
    }

    @Test func byteByByte() {
        let m = sipRequest(body: "0123456789")
        #expect(frame(m.map { String($0) } + ["\r\n"]).out == [message(m)])
    }

    @Test func keepAlivesAndPings() {
        let m = sipRequest()
        // A lone CRLF is skipped; CRLF CRLF is a ping; any split of it too.
        #expect(frame(["\r\n" + m]).out == [message(m)])
        #expect(frame(["\r\n\r\n" + m]).out == [.ping, message(m)])
        #expect(frame(["\r", "\n", "\r", "\n", m]).out == [.ping, message(m)])
        #expect(frame([m + "\r\n\r\n\r\n\r\n" + m]).out == [message(m), .ping, .ping, message(m)])
    }

    @Test func compactAndOddlySpacedContentLength() {
        let m = "MESSAGE sip:a@b SIP/2.0\r\nl:3\r\nCall-ID: x\r\n\r\nabc"
        #expect(frame([m]).out == [message(m)])
        let n = "MESSAGE sip:a@b SIP/2.0\r\ncontent-LENGTH \t:  2 \r\n\r\nhi"
        #expect(frame([n]).out == [message(n)])
        let bareLF = "MESSAGE sip:a@b SIP/2.0\nContent-Length: 2\n\nhi"
        #expect(frame([bareLF]).out == [message(bareLF)])
    }

    @Test func headerValuesDoNotFoolIt() {
        // "l" inside another header's value, a folded line, a Content-Length-Foo header.
        let m = "MESSAGE sip:a@b SIP/2.0\r\nSubject: l: 99\r\n Content-Length: 42\r\nContent-Length-X: 7\r\nContent-Length: 1\r\n\r\nx"
        #expect(frame([m]).out == [message(m)])
    }

    @Test func failures() {
        #expect(frame(["OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\n"]).failure == .missingContentLength)
        #expect(frame(["OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 1x\r\n\r\n"]).failure == .badContentLength("1x"))
        #expect(frame(["OPTIONS sip:a@b SIP/2.0\r\nContent-Length: \r\n\r\n"]).failure == .badContentLength(""))
        #expect(frame(["OPTIONS sip:a@b SIP/2.0\r\nl: 1\r\nl: 2\r\n\r\n"]).failure != nil)
        // Headers alone over the limit, without their end in sight.
        #expect(frame([String(repeating: "X", count: 200)], max: 100).failure == .tooLarge(limit: 100))
        // Announced body over the limit: refused before it comes.
        #expect(frame(["OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 500\r\n\r\n"], max: 100).failure == .tooLarge(limit: 100))
        // Exactly at the limit is fine.
        let m = "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 10\r\n\r\n0123456789"
        #expect(frame([m], max: m.utf8.count).out == [message(m)])
        #expect(frame([m], max: m.utf8.count - 1).failure == .tooLarge(limit: m.utf8.count - 1))
    }
}
