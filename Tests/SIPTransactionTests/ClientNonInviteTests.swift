import SIP
import SIPTransaction
import Testing

@Suite("Non-INVITE client transaction (RFC 3261 §17.1.2)")
struct ClientNonInviteTests {
    @Test("Timer E over UDP: 500 ms, 1 s, 2 s, 4 s, 4 s ... then Timer F's 408 at 64·T1")
    func timerESchedule() throws {
        let req = try request("OPTIONS")
        var m = ClientNonInviteTransaction(request: req, reliable: false, timers: rfc, localTag: "lt")
        let start = m.start(now: t0)
        #expect(start.sends.map(\.bytes) == [req.bytes])
        #expect(start.sends.first?.retransmission == false)
        #expect(start.scheduled(.e) == t0 + 500 * ms)
        #expect(start.scheduled(.f) == t0 + 32 * sec)
        #expect(m.state == .trying)

        let firings = run(&m, until: t0 + 40 * sec)
        let retransmits = firings.filter { !$0.effects.sends.isEmpty }
        let expected: [UInt64] = [500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500].map { t0 + $0 * ms }
        #expect(retransmits.map(\.at) == expected)
        for r in retransmits {
            #expect(r.effects.sends.map(\.bytes) == [req.bytes])
            #expect(r.effects.sends.allSatisfy { $0.retransmission })
        }
        let last = try #require(firings.last)
        #expect(last.at == t0 + 32 * sec)
        let d = try #require(last.effects.deliveries.first)
        #expect(d.origin == .timeout)
        #expect(d.response.statusCode == 408)
        #expect(last.effects.terminated)
        #expect(last.effects.cancelledTimers.contains(.e))
        #expect(m.state == .terminated)
        #expect(m.nextDeadline == nil)
    }

    @Test("Timer E is T2 once in Proceeding")
    func timerEInProceeding() throws {
        let req = try request("OPTIONS")
        var m = ClientNonInviteTransaction(request: req, reliable: false, timers: rfc)
        _ = m.start(now: t0)
        _ = m.fire(now: t0 + 500 * ms)              // E → next at 1.5 s
        let p = m.receive(response: try response(to: req, 100, "Trying", toTag: nil), now: t0 + 600 * ms)
        #expect(m.state == .proceeding)
        #expect(p.deliveries.map { $0.response.statusCode } == [100])
        #expect(m.deadline(of: .e) == t0 + 1500 * ms)
        let f = m.fire(now: t0 + 1500 * ms)
        #expect(f.sends.count == 1)
        #expect(f.scheduled(.e) == t0 + 5500 * ms)  // T2, not 2 s
        let g = m.fire(now: t0 + 5500 * ms)
        #expect(g.scheduled(.e) == t0 + 9500 * ms)
    }

    @Test("final response: Completed, delivered once, retransmissions absorbed, Timer K = T4")
    func finalUnreliable() throws {
        let req = try request("OPTIONS")
        var m = ClientNonInviteTransaction(request: req, reliable: false, timers: rfc)
        _ = m.start(now: t0)
        let ok = try response(to: req, 200, "OK")
        let e = m.receive(response: ok, now: t0 + 100 * ms)
        #expect(m.state == .completed)
        #expect(e.deliveries.count == 1)
        #expect(e.deliveries.first?.origin == .network)
        #expect(Set(e.cancelledTimers) == [.e, .f])
        #expect(e.scheduled(.k) == t0 + 5100 * ms)
        #expect(m.armedTimers == [.k])
        // Completed for T4 on: the status stays, the response it passed on is not kept.
        #expect(m.finalStatus == 200)
        #expect(m.finalResponse == nil)

        let again = m.receive(response: ok, now: t0 + 200 * ms)
        #expect(again.deliveries.isEmpty)
        #expect(again.absorbed == 1)
        #expect(again.sends.isEmpty)

        #expect(m.fire(now: t0 + 5 * sec).isEmpty)   // not yet due
        let k = m.fire(now: t0 + 5100 * ms)
        #expect(k.terminated)
        #expect(m.state == .terminated)
        #expect(m.receive(response: ok, now: t0 + 6 * sec).isEmpty)
    }

    @Test("reliable transport: no Timer E, final → Terminated at once (K = 0)")
    func reliable() throws {
        let req = try request("OPTIONS")
        var m = ClientNonInviteTransaction(request: req, reliable: true, timers: rfc)
        let s = m.start(now: t0)
        #expect(s.scheduled(.e) == nil)
        #expect(s.scheduled(.f) == t0 + 32 * sec)
        let e = m.receive(response: try response(to: req, 404, "Not Found"), now: t0 + sec)
        #expect(e.deliveries.count == 1)
        #expect(e.terminated)
        #expect(m.state == .terminated)
    }

    @Test("reliable transport: Timer F alone times out")
    func reliableTimeout() throws {
        var m = ClientNonInviteTransaction(request: try request("MESSAGE"), reliable: true, timers: rfc)
        _ = m.start(now: t0)
        let f = run(&m, until: t0 + 60 * sec)
        #expect(f.map(\.at) == [t0 + 32 * sec])
        #expect(f.first?.effects.deliveries.first?.response.statusCode == 408)
        #expect(f.first?.effects.sends.isEmpty == true)
    }

    @Test("fr_timer (30 s) fires before Timer F (32 s); a longer fr_timer loses to F")
    func finalResponseTimerCapsF() throws {
        let req = try request("OPTIONS")
        var m = ClientNonInviteTransaction(request: req, reliable: true, timers: TransactionTimers())
        let s = m.start(now: t0)
        #expect(s.scheduled(.finalResponse) == t0 + 30 * sec)
        let f = run(&m, until: t0 + 60 * sec)
        #expect(f.map(\.at) == [t0 + 30 * sec])
        #expect(f.first?.effects.deliveries.first?.origin == .timeout)

        var long = ClientNonInviteTransaction(
            request: req, reliable: true, timers: TransactionTimers(finalResponse: .seconds(40)))
        _ = long.start(now: t0)
        let g = run(&long, until: t0 + 60 * sec)
        #expect(g.map(\.at) == [t0 + 32 * sec])
        #expect(g.first?.effects.deliveries.count == 1)

        var short = ClientNonInviteTransaction(
            request: req, reliable: false, timers: TransactionTimers(finalResponse: .seconds(2)))
        _ = short.start(now: t0)
        let h = run(&short, until: t0 + 60 * sec)
        #expect(h.map(\.at) == [t0 + 500 * ms, t0 + 1500 * ms, t0 + 2 * sec])
        #expect(h.last?.effects.deliveries.first?.response.statusCode == 408)
    }

    @Test("the synthesized 408 copies Via, From, Call-ID, CSeq and tags the To")
    func timeoutContent() throws {
        let req = try request("OPTIONS", extraVia: "SIP/2.0/UDP 198.51.100.1;branch=z9hG4bKup")
        var m = ClientNonInviteTransaction(request: req, reliable: true, timers: rfc, localTag: "local7")
        _ = m.start(now: t0)
        let r = try #require(m.fire(now: t0 + 32 * sec).deliveries.first?.response)
        #expect(r.statusCode == 408)
        #expect(r.reasonPhrase == "Request Timeout")
        #expect(r.headers(.via) == req.headers(.via))
        #expect(r.header(.from) == req.header(.from))
        #expect(r.to?.tag == "local7")
        #expect(r.callID == req.callID)
        #expect(r.cseq == req.cseq)
        #expect(m.finalResponse?.statusCode == 408)
        #expect(m.finalStatus == 408)
    }

    @Test("transport error: a 503 to the TU, Terminated; after a final response just Terminated")
    func transportError() throws {
        let req = try request("OPTIONS")
        var m = ClientNonInviteTransaction(request: req, reliable: false, timers: rfc)
        _ = m.start(now: t0)
        let e = m.transportError()
        #expect(e.deliveries.map { $0.response.statusCode } == [503])
        #expect(e.deliveries.first?.origin == .transportError)
        #expect(e.terminated)
        #expect(m.nextDeadline == nil)

        var c = ClientNonInviteTransaction(request: req, reliable: false, timers: rfc)
        _ = c.start(now: t0)
        _ = c.receive(response: try response(to: req, 200), now: t0)
        let f = c.transportError()
        #expect(f.deliveries.isEmpty)
        #expect(f.terminated)
    }

    @Test("provisional responses in Proceeding are all delivered; start is idempotent")
    func provisionals() throws {
        let req = try request("OPTIONS")
        var m = ClientNonInviteTransaction(request: req, reliable: true, timers: rfc)
        _ = m.start(now: t0)
        #expect(m.start(now: t0).isEmpty)
        let a = m.receive(response: try response(to: req, 100, toTag: nil), now: t0)
        let b = m.receive(response: try response(to: req, 180), now: t0)
        #expect(a.deliveries.count == 1 && b.deliveries.count == 1)
        #expect(m.state == .proceeding)
    }
}
