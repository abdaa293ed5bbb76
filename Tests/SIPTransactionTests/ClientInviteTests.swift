import SIP
import SIPTransaction
import Testing

@Suite("INVITE client transaction (RFC 3261 §17.1.1, RFC 6026)")
struct ClientInviteTests {
    @Test("Timer A doubles without a cap (0.5, 1, 2, 4, 8, 16 s); Timer B's 408 at 64·T1")
    func timerASchedule() throws {
        let req = try request()
        var m = ClientInviteTransaction(request: req, reliable: false, timers: rfc)
        let s = m.start(now: t0)
        #expect(s.sends.map(\.bytes) == [req.bytes])
        #expect(s.scheduled(.a) == t0 + 500 * ms)
        #expect(s.scheduled(.b) == t0 + 32 * sec)
        #expect(m.state == .calling)

        let firings = run(&m, until: t0 + 100 * sec)
        let retransmits = firings.filter { !$0.effects.sends.isEmpty }.map(\.at)
        #expect(retransmits == [500, 1500, 3500, 7500, 15500, 31500].map { t0 + $0 * ms })
        #expect(firings.flatMap { $0.effects.sends }.allSatisfy { $0.retransmission && $0.bytes == req.bytes })
        let last = try #require(firings.last)
        #expect(last.at == t0 + 32 * sec)
        #expect(last.effects.deliveries.map { $0.response.statusCode } == [408])
        #expect(last.effects.deliveries.first?.origin == .timeout)
        #expect(last.effects.terminated)
        #expect(m.state == .terminated)
    }

    @Test("Timer A keeps doubling past T2 with a long Timer B")
    func timerANoCap() throws {
        var m = ClientInviteTransaction(request: try request(), reliable: false,
                                        timers: TransactionTimers(t1: .milliseconds(500), t2: .seconds(1),
                                                                  finalResponse: nil, inviteFinalResponse: nil))
        _ = m.start(now: t0)
        let f = run(&m, until: t0 + 8 * sec)
        #expect(f.map(\.at) == [500, 1500, 3500, 7500].map { t0 + $0 * ms })
        #expect(m.deadline(of: .a) == t0 + 15500 * ms)
    }

    @Test("reliable transport: no Timer A; B fires the 408")
    func reliableTimeout() throws {
        var m = ClientInviteTransaction(request: try request(), reliable: true, timers: rfc)
        let s = m.start(now: t0)
        #expect(s.scheduled(.a) == nil)
        let f = run(&m, until: t0 + 100 * sec)
        #expect(f.map(\.at) == [t0 + 32 * sec])
        #expect(f.first?.effects.deliveries.first?.response.statusCode == 408)
    }

    @Test("fr_timer (30 s) beats Timer B in Calling")
    func frInCalling() throws {
        var m = ClientInviteTransaction(request: try request(), reliable: true, timers: TransactionTimers())
        let s = m.start(now: t0)
        #expect(s.scheduled(.finalResponse) == t0 + 30 * sec)
        let f = run(&m, until: t0 + 100 * sec)
        #expect(f.map(\.at) == [t0 + 30 * sec])
        #expect(f.first?.effects.deliveries.first?.origin == .timeout)
        #expect(f.first?.effects.cancels.isEmpty == true)   // nothing to cancel in Calling
    }

    @Test("1xx: Proceeding, A and B stop, fr_inv_timer runs and restarts on each 1xx")
    func provisional() throws {
        let req = try request()
        var m = ClientInviteTransaction(request: req, reliable: false, timers: TransactionTimers())
        _ = m.start(now: t0)
        let p = m.receive(response: try response(to: req, 180, "Ringing"), now: t0 + 2 * sec)
        #expect(m.state == .proceeding)
        #expect(Set(p.cancelledTimers) == [.a, .b, .finalResponse])
        #expect(p.scheduled(.finalResponse) == t0 + 122 * sec)
        #expect(p.deliveries.map { $0.response.statusCode } == [180])
        #expect(m.armedTimers == [.finalResponse])
        let q = m.receive(response: try response(to: req, 183, "Progress"), now: t0 + 10 * sec)
        #expect(q.scheduled(.finalResponse) == t0 + 130 * sec)
        #expect(q.deliveries.count == 1)

        var noRestart = ClientInviteTransaction(
            request: req, reliable: false, timers: TransactionTimers(restartInviteTimerOnProvisional: false))
        _ = noRestart.start(now: t0)
        _ = noRestart.receive(response: try response(to: req, 180), now: t0 + 2 * sec)
        let r = noRestart.receive(response: try response(to: req, 180), now: t0 + 10 * sec)
        #expect(r.schedules.isEmpty)
        #expect(noRestart.deadline(of: .finalResponse) == t0 + 122 * sec)
    }

    @Test("non-2xx final: the transaction ACKs it (§17.1.1.3) and re-sends the same ACK")
    func ackForNon2xx() throws {
        let req = try request(routes: ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"],
                              extraVia: "SIP/2.0/UDP 198.51.100.1:5080;branch=z9hG4bKupstream", body: "v=0\n")
        var m = ClientInviteTransaction(request: req, reliable: false, timers: rfc)
        _ = m.start(now: t0)
        _ = m.receive(response: try response(to: req, 100, "Trying", toTag: nil), now: t0 + 100 * ms)
        let busy = try response(to: req, 486, "Busy Here", toTag: "uas-tag")
        let e = m.receive(response: busy, now: t0 + 3 * sec)
        #expect(m.state == .completed)
        #expect(e.deliveries.map { $0.response.statusCode } == [486])
        #expect(e.scheduled(.d) == t0 + 35 * sec)
        let ackBytes = try #require(e.sends.first?.bytes)
        #expect(e.sends.first?.retransmission == false)
        #expect(m.ack == ackBytes)

        let ack = try SIPMessage(ackBytes)
        #expect(ack.method == .ack)
        #expect(ack.requestURI == "sip:bob@example.com")
        #expect(ack.headers(.via) == ["SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKabc123;rport"])
        #expect(ack.headers(.route) == ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"])
        #expect(ack.header(.from) == req.header(.from))
        #expect(ack.header(.to) == "<sip:bob@example.com>;tag=uas-tag")
        #expect(ack.callID == req.callID)
        #expect(ack.header(.cseq) == "1 ACK")
        #expect(ack.contentLength == 0)
        #expect(ack.header(.contact) == nil)

        // Retransmitted 486: absorbed, same ACK bytes again, not delivered.
        let again = m.receive(response: busy, now: t0 + 4 * sec)
        #expect(again.deliveries.isEmpty)
        #expect(again.absorbed == 1)
        #expect(again.sends.map(\.bytes) == [ackBytes])
        #expect(again.sends.first?.retransmission == true)

        let d = run(&m, until: t0 + 100 * sec)
        #expect(d.map(\.at) == [t0 + 35 * sec])
        #expect(d.first?.effects.terminated == true)
    }

    @Test("non-2xx final over a reliable transport: ACK, deliver, Terminated (D = 0)")
    func non2xxReliable() throws {
        let req = try request()
        var m = ClientInviteTransaction(request: req, reliable: true, timers: rfc)
        _ = m.start(now: t0)
        let e = m.receive(response: try response(to: req, 603, "Decline"), now: t0 + sec)
        #expect(e.sends.count == 1)
        #expect(e.deliveries.count == 1)
        #expect(e.terminated)
        #expect(m.state == .terminated)
    }

    @Test("2xx: Accepted, no ACK, every 2xx delivered, other responses absorbed, Timer M")
    func accepted() throws {
        let req = try request()
        var m = ClientInviteTransaction(request: req, reliable: false, timers: rfc)
        _ = m.start(now: t0)
        let ok = try response(to: req, 200, "OK")
        let e = m.receive(response: ok, now: t0 + sec)
        #expect(m.state == .accepted)
        #expect(e.sends.isEmpty)
        #expect(e.deliveries.map { $0.response.statusCode } == [200])
        #expect(e.scheduled(.m) == t0 + 33 * sec)
        #expect(Set(e.cancelledTimers) == [.a, .b])
        let forked = try response(to: req, 200, "OK", toTag: "other-fork")
        #expect(m.receive(response: ok, now: t0 + 2 * sec).deliveries.count == 1)
        #expect(m.receive(response: forked, now: t0 + 2 * sec).deliveries.first?.response.to?.tag == "other-fork")
        #expect(m.receive(response: try response(to: req, 486), now: t0 + 2 * sec).absorbed == 1)
        #expect(m.receive(response: try response(to: req, 180), now: t0 + 2 * sec).deliveries.isEmpty)
        let f = run(&m, until: t0 + 100 * sec)
        #expect(f.map(\.at) == [t0 + 33 * sec])
        #expect(m.state == .terminated)
    }

    @Test("CANCEL before a provisional is held back and sent on the first 1xx (§9.1)")
    func cancelPending() throws {
        let req = try request(routes: ["<sip:p1.example.com;lr>"])
        var m = ClientInviteTransaction(request: req, reliable: false, timers: rfc)
        _ = m.start(now: t0)
        #expect(m.requestCancel(now: t0 + 100 * ms).isEmpty)
        #expect(m.cancelState == .pending)
        let p = m.receive(response: try response(to: req, 180, "Ringing"), now: t0 + sec)
        #expect(p.deliveries.count == 1)
        let cancel = try #require(p.cancels.first)
        #expect(m.cancelState == .sent)
        #expect(p.scheduled(.cancelGuard) == t0 + 33 * sec)
        #expect(cancel.method == .cancel)
        #expect(cancel.requestURI == req.requestURI)
        #expect(cancel.callID == req.callID)
        #expect(cancel.header(.from) == req.header(.from))
        #expect(cancel.header(.to) == req.header(.to))
        #expect(cancel.header(.cseq) == "1 CANCEL")
        #expect(cancel.headers(.via) == [req.headers(.via)[0]])
        #expect(cancel.via?.branch == req.via?.branch)
        #expect(cancel.headers(.route) == ["<sip:p1.example.com;lr>"])
        #expect(cancel.contentLength == 0)
        // Only one CANCEL.
        #expect(m.requestCancel(now: t0 + 2 * sec).isEmpty)
        // The 487 is ACKed and delivered.
        let r = m.receive(response: try response(to: req, 487, "Request Terminated"), now: t0 + 3 * sec)
        #expect(r.deliveries.map { $0.response.statusCode } == [487])
        #expect(r.sends.count == 1)
        #expect(r.cancelledTimers.contains(.cancelGuard))
    }

    @Test("CANCEL in Proceeding goes at once; none after a final response")
    func cancelNow() throws {
        let req = try request()
        var m = ClientInviteTransaction(request: req, reliable: true, timers: rfc)
        _ = m.start(now: t0)
        _ = m.receive(response: try response(to: req, 100, toTag: nil), now: t0)
        #expect(m.requestCancel(now: t0 + sec).cancels.count == 1)

        var done = ClientInviteTransaction(request: req, reliable: false, timers: rfc)
        _ = done.start(now: t0)
        _ = done.receive(response: try response(to: req, 486), now: t0)
        #expect(done.requestCancel(now: t0).isEmpty)
        #expect(done.cancelState == .none)

        var calling = ClientInviteTransaction(request: req, reliable: false, timers: rfc)
        _ = calling.start(now: t0)
        _ = calling.requestCancel(now: t0)
        let ok = calling.receive(response: try response(to: req, 200), now: t0)
        #expect(ok.cancels.isEmpty)
        #expect(calling.cancelState == .none)
    }

    @Test("no final response 64·T1 after the CANCEL: 408 to the TU and Terminated")
    func cancelGuard() throws {
        let req = try request()
        var m = ClientInviteTransaction(request: req, reliable: false, timers: rfc)
        _ = m.start(now: t0)
        _ = m.receive(response: try response(to: req, 180), now: t0 + sec)
        _ = m.requestCancel(now: t0 + 2 * sec)
        let f = run(&m, until: t0 + 100 * sec)
        #expect(f.map(\.at) == [t0 + 34 * sec])
        #expect(f.first?.effects.deliveries.map { $0.response.statusCode } == [408])
        #expect(m.state == .terminated)
    }

    @Test("fr_inv_timer in Proceeding: 408 to the TU, CANCEL sent, the late 487 ACKed but not delivered")
    func frInvTimeout() throws {
        let req = try request()
        var m = ClientInviteTransaction(request: req, reliable: false,
                                        timers: TransactionTimers(inviteFinalResponse: .seconds(60)))
        _ = m.start(now: t0)
        _ = m.receive(response: try response(to: req, 180), now: t0 + sec)
        let f = m.fire(now: t0 + 61 * sec)
        #expect(f.deliveries.map { $0.response.statusCode } == [408])
        #expect(f.deliveries.first?.origin == .timeout)
        #expect(f.cancels.count == 1)
        #expect(m.timedOut)
        #expect(m.state == .proceeding)
        #expect(m.deadline(of: .cancelGuard) == t0 + 93 * sec)
        let late = m.receive(response: try response(to: req, 487), now: t0 + 62 * sec)
        #expect(late.deliveries.isEmpty)
        #expect(late.sends.count == 1)      // the ACK
        #expect(m.state == .completed)
        #expect(m.finalResponse?.statusCode == 408)
        // A late 2xx would still go to the TU.
        var n = ClientInviteTransaction(request: req, reliable: false,
                                        timers: TransactionTimers(inviteFinalResponse: .seconds(60)))
        _ = n.start(now: t0)
        _ = n.receive(response: try response(to: req, 180), now: t0 + sec)
        _ = n.fire(now: t0 + 61 * sec)
        #expect(n.receive(response: try response(to: req, 200), now: t0 + 62 * sec).deliveries.count == 1)
        // Without any final response, the guard ends it without a second 408.
        var g = ClientInviteTransaction(request: req, reliable: false,
                                        timers: TransactionTimers(inviteFinalResponse: .seconds(60)))
        _ = g.start(now: t0)
        _ = g.receive(response: try response(to: req, 180), now: t0 + sec)
        _ = g.fire(now: t0 + 61 * sec)
        let end = run(&g, until: t0 + 200 * sec)
        #expect(end.map(\.at) == [t0 + 93 * sec])
        #expect(end.first?.effects.deliveries.isEmpty == true)
        #expect(end.first?.effects.terminated == true)
    }

    @Test("transport error: 503 to the TU in Calling; nothing more after a timeout")
    func transportError() throws {
        let req = try request()
        var m = ClientInviteTransaction(request: req, reliable: false, timers: rfc)
        _ = m.start(now: t0)
        let e = m.transportError()
        #expect(e.deliveries.map { $0.response.statusCode } == [503])
        #expect(e.terminated)

        var n = ClientInviteTransaction(request: req, reliable: false,
                                        timers: TransactionTimers(inviteFinalResponse: .seconds(1)))
        _ = n.start(now: t0)
        _ = n.receive(response: try response(to: req, 180), now: t0)
        _ = n.fire(now: t0 + sec)
        let f = n.transportError()
        #expect(f.deliveries.isEmpty)
        #expect(f.terminated)
    }
}
