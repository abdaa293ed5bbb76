import KSRTestFixtures
import SIP
import Testing

/// Timing only (prints, asserts nothing about speed). For real numbers run in release:
/// `swift test -c release --scratch-path .build-sip --filter SIPTests.BenchTests`
@Suite struct BenchTests {
    @Test func pingParseAndReply() throws {
        let request = Fixtures.bytes(number: "05")
        let body = Array(try SIPMessage(Fixtures.bytes(number: "06")).body)
        #if DEBUG
        let iterations = 20_000
        #else
        let iterations = 500_000
        #endif
        let clock = ContinuousClock()
        var sink = 0

        // parse only
        var start = clock.now
        for _ in 0..<iterations {
            let m = try SIPMessage(request)
            sink &+= m.fields.count
        }
        let parseNs = nanoseconds(clock.now - start) / Double(iterations)

        // parse + 200 reply (the stateless KDMQ answer: body and Content-Type)
        start = clock.now
        for _ in 0..<iterations {
            let m = try SIPMessage(request)
            let reply = SIPResponseBuilder.reply(
                to: m, status: 200, reason: "OK", source: ("127.0.0.1", 5091),
                toTag: "8e138cee36bbfc72d2eb13622810892b.972003e3",
                extraHeaders: ["Content-Type: text/plain"], body: body,
                server: "kamailio (5.6.3 (x86_64/linux))")
            sink &+= reply.count
        }
        let replyNs = nanoseconds(clock.now - start) / Double(iterations)

        // parse + reading what a KDMQ handler reads + 200 reply without body into a reused buffer
        var buffer: [UInt8] = []
        start = clock.now
        for _ in 0..<iterations {
            let m = try SIPMessage(request)
            sink &+= m.method == .kdmq ? 1 : 0
            sink &+= m.parsedRequestURI?.user?.count ?? 0
            sink &+= m.maxForwards ?? 0
            buffer.removeAll(keepingCapacity: true)
            SIPResponseBuilder.appendReply(
                into: &buffer, to: m, status: 200, reason: "OK", source: ("127.0.0.1", 5091),
                toTag: "8e138cee36bbfc72d2eb13622810892b.972003e3",
                server: "kamailio (5.6.3 (x86_64/linux))")
            sink &+= buffer.count
        }
        let handlerNs = nanoseconds(clock.now - start) / Double(iterations)

        #if DEBUG
        let mode = "debug"
        #else
        let mode = "release"
        #endif
        print("""
            SIP bench (\(mode), fixture 05, \(request.count) bytes, \(iterations) iterations):
              parse                                   \(format(parseNs)) ns/op
              parse + 200 reply with body             \(format(replyNs)) ns/op
              parse + R-URI/Max-Forwards + 200 reuse  \(format(handlerNs)) ns/op
            """)
        #expect(sink > 0)
    }

    private func nanoseconds(_ d: Duration) -> Double {
        Double(d.components.seconds) * 1e9 + Double(d.components.attoseconds) / 1e9
    }

    private func format(_ v: Double) -> String { String(Int(v.rounded())) }
}
