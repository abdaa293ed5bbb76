import SIP
import SIPTransaction
import Testing

let trying100 = Array("SIP/2.0 100 Trying\r\nContent-Length: 0\r\n\r\n".utf8)
let ringing180 = Array("SIP/2.0 180 Ringing\r\nContent-Length: 0\r\n\r\n".utf8)
let ok200 = Array("SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n".utf8)
let busy486 = Array("SIP/2.0 486 Busy Here\r\nContent-Length: 0\r\n\r\n".utf8)

@Suite("Non-INVITE server transaction (RFC 3261 §17.2.2)")
struct ServerNonInviteTests {
    @Test("Trying absorbs silently; Proceeding re-sends the last 1xx; Completed the final; Timer J")
    func lifecycleUnreliable() throws {
        var m = ServerNonInviteTransaction(request: try request("REGISTER"), reliable: false, timers: rfc)
        #expect(m.start(now: t0).isEmpty)          // no lifetime with RFC timers
        #expect(m.state == .trying)
        let r1 = m.receiveRetransmission(now: t0)
        #expect(r1.absorbed == 1 && r1.sends.isEmpty)

        let p = try m.respond(status: 100, bytes: trying100, now: t0 + 10 * ms)
        #expect(p.sends.map(\.bytes) == [trying100])
        #expect(m.state == .proceeding)
        let p2 = try m.respond(status: 180, bytes: ringing180, now: t0 + 20 * ms)
        #expect(p2.sends.count == 1)
        let r2 = m.receiveRetransmission(now: t0 + 500 * ms)
        #expect(r2.sends.map(\.bytes) == [ringing180])
        #expect(r2.sends.first?.retransmission == true)

        let f = try m.respond(status: 200, bytes: ok200, now: t0 + sec)
        #expect(f.sends.map(\.bytes) == [ok200])
        #expect(m.state == .completed)
        #expect(f.scheduled(.j) == t0 + 33 * sec)
        #expect(m.finalStatus == 200)
        let r3 = m.receiveRetransmission(now: t0 + 2 * sec)
        #expect(r3.sends.map(\.bytes) == [ok200])
        #expect(r3.absorbed == 1)

        #expect(throws: TransactionError.finalResponseAlreadySent) {
            _ = try m.respond(status: 500, bytes: busy486, now: t0 + 3 * sec)
        }
        #expect(m.fire(now: t0 + 32 * sec).isEmpty)
        let j = m.fire(now: t0 + 33 * sec)
        #expect(j.terminated)
        #expect(m.state == .terminated)
        #expect(m.receiveRetransmission(now: t0 + 34 * sec).isEmpty)
        #expect(throws: TransactionError.invalidState(.terminated)) {
            _ = try m.respond(status: 200, bytes: ok200, now: t0 + 34 * sec)
        }
    }

    @Test("a final response straight from Trying; reliable transport terminates at once (J = 0)")
    func reliable() throws {
        var m = ServerNonInviteTransaction(request: try request("OPTIONS"), reliable: true, timers: rfc)
        let f = try m.respond(status: 404, bytes: busy486, now: t0)
        #expect(f.sends.count == 1)
        #expect(f.terminated)
        #expect(m.state == .terminated)
        #expect(m.nextDeadline == nil)
    }

    @Test("Completed from Trying, re-sends that final on retransmission")
    func completedFromTrying() throws {
        var m = ServerNonInviteTransaction(request: try request("OPTIONS"), reliable: false, timers: rfc)
        _ = try m.respond(status: 486, bytes: busy486, now: t0)
        #expect(m.lastProvisional == nil)
        #expect(m.receiveRetransmission(now: t0).sends.map(\.bytes) == [busy486])
    }

    @Test("suspended: fr_timer (30 s) gives the TU a timeout, the transaction stays")
    func suspendedTimeout() throws {
        var m = ServerNonInviteTransaction(request: try request("MESSAGE"), reliable: false,
                                           timers: TransactionTimers(maxNonInviteLifetime: nil))
        let s = try m.suspend(now: t0)
        #expect(m.isSuspended)
        #expect(s.scheduled(.finalResponse) == t0 + 30 * sec)
        #expect(m.receiveRetransmission(now: t0 + sec).absorbed == 1)
        #expect(m.fire(now: t0 + 29 * sec).isEmpty)
        let f = m.fire(now: t0 + 30 * sec)
        #expect(f.timeouts == [.finalResponse])
        #expect(!f.terminated)
        #expect(m.state == .trying)
        #expect(!m.isSuspended)
        #expect(throws: TransactionError.notSuspended) { _ = try m.resume() }
        // The host answers 408 now.
        let r = try m.respond(status: 408, bytes: busy486, now: t0 + 30 * sec)
        #expect(r.sends.count == 1)
        #expect(m.state == .completed)
    }

    @Test("resume before the timeout disarms fr_timer; a final response ends the suspension")
    func resume() throws {
        var m = ServerNonInviteTransaction(request: try request("MESSAGE"), reliable: false, timers: TransactionTimers())
        _ = m.start(now: t0)
        _ = try m.suspend(now: t0)
        let r = try m.resume()
        #expect(r.cancelledTimers == [.finalResponse])
        #expect(!m.isSuspended)
        #expect(m.armedTimers == [.lifetime])

        var n = ServerNonInviteTransaction(request: try request("MESSAGE"), reliable: false, timers: TransactionTimers())
        _ = try n.suspend(now: t0)
        let f = try n.respond(status: 200, bytes: ok200, now: t0 + sec)
        #expect(f.cancelledTimers.contains(.finalResponse))
        #expect(!n.isSuspended)
        #expect(n.armedTimers == [.j])
    }

    @Test("lifetime (32 s): never answered → timeout and Terminated")
    func lifetime() throws {
        var m = ServerNonInviteTransaction(request: try request("OPTIONS"), reliable: false, timers: TransactionTimers())
        #expect(m.start(now: t0).scheduled(.lifetime) == t0 + 32 * sec)
        let f = m.fire(now: t0 + 32 * sec)
        #expect(f.timeouts == [.lifetime])
        #expect(f.terminated)
    }

    @Test("status codes outside 100...699 are refused")
    func invalidStatus() throws {
        var m = ServerNonInviteTransaction(request: try request("OPTIONS"), reliable: false)
        #expect(throws: TransactionError.invalidStatus(99)) { _ = try m.respond(status: 99, bytes: [], now: t0) }
        #expect(throws: TransactionError.invalidStatus(700)) { _ = try m.respond(status: 700, bytes: [], now: t0) }
        #expect(m.state == .trying)
    }
}

@Suite("INVITE server transaction (RFC 3261 §17.2.1, RFC 6026)")
struct ServerInviteTests {
    @Test("Proceeding absorbs INVITE retransmissions, re-sending the last provisional if any")
    func proceeding() throws {
        var m = ServerInviteTransaction(request: try request(), reliable: false, timers: rfc)
        #expect(m.state == .proceeding)
        let r0 = m.receiveRetransmission(now: t0)
        #expect(r0.absorbed == 1 && r0.sends.isEmpty)
        _ = try m.respond(status: 100, bytes: trying100, now: t0)
        _ = try m.respond(status: 180, bytes: ringing180, now: t0)
        let r1 = m.receiveRetransmission(now: t0 + sec)
        #expect(r1.sends.map(\.bytes) == [ringing180])
        #expect(r1.sends.first?.retransmission == true)
        let ack = m.receiveACK(now: t0)
        #expect(ack == nil)         // not this transaction's ACK
    }

    @Test("non-2xx over UDP: Timer G 0.5, 1, 2, 4, 4 ... s re-sends the same bytes; Timer H at 64·T1")
    func timerGAndH() throws {
        var m = ServerInviteTransaction(request: try request(), reliable: false, timers: rfc)
        let f = try m.respond(status: 486, bytes: busy486, now: t0)
        #expect(m.state == .completed)
        #expect(f.scheduled(.g) == t0 + 500 * ms)
        #expect(f.scheduled(.h) == t0 + 32 * sec)
        let firings = run(&m, until: t0 + 100 * sec)
        let resends = firings.filter { !$0.effects.sends.isEmpty }
        #expect(resends.map(\.at) == [500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500].map { t0 + $0 * ms })
        #expect(resends.allSatisfy { $0.effects.sends.map(\.bytes) == [busy486] && $0.effects.sends[0].retransmission })
        let last = try #require(firings.last)
        #expect(last.at == t0 + 32 * sec)
        #expect(last.effects.timeouts == [.noACK])
        #expect(last.effects.terminated)
        #expect(m.state == .terminated)
    }

    @Test("INVITE retransmission in Completed re-sends the final response")
    func completedAbsorbs() throws {
        var m = ServerInviteTransaction(request: try request(), reliable: false, timers: rfc)
        _ = try m.respond(status: 180, bytes: ringing180, now: t0)
        _ = try m.respond(status: 486, bytes: busy486, now: t0)
        let r = m.receiveRetransmission(now: t0 + 100 * ms)
        #expect(r.sends.map(\.bytes) == [busy486])
        #expect(r.absorbed == 1)
        #expect(throws: TransactionError.finalResponseAlreadySent) {
            _ = try m.respond(status: 200, bytes: ok200, now: t0)
        }
    }

    @Test("ACK: Confirmed, G and H stop, Timer I = T4 absorbs ACK retransmissions")
    func confirmed() throws {
        var m = ServerInviteTransaction(request: try request(), reliable: false, timers: rfc)
        _ = try m.respond(status: 404, bytes: busy486, now: t0)
        _ = m.fire(now: t0 + 500 * ms)
        let ack = m.receiveACK(now: t0 + 700 * ms)
        let a = try #require(ack)
        #expect(m.state == .confirmed)
        #expect(Set(a.cancelledTimers) == [.g, .h])
        #expect(a.scheduled(.i) == t0 + 5700 * ms)
        #expect(m.armedTimers == [.i])
        let again = m.receiveACK(now: t0 + sec)
        #expect(again?.absorbed == 1)
        let r = m.receiveRetransmission(now: t0 + sec)
        #expect(r.sends.isEmpty && r.absorbed == 1)
        let i = run(&m, until: t0 + 100 * sec)
        #expect(i.map(\.at) == [t0 + 5700 * ms])
        #expect(i.first?.effects.terminated == true)
        #expect(i.first?.effects.timeouts.isEmpty == true)
    }

    @Test("reliable: no Timer G; the ACK terminates at once (I = 0); H still guards the ACK")
    func reliable() throws {
        var m = ServerInviteTransaction(request: try request(), reliable: true, timers: rfc)
        let f = try m.respond(status: 486, bytes: busy486, now: t0)
        #expect(f.scheduled(.g) == nil)
        #expect(f.scheduled(.h) == t0 + 32 * sec)
        let ack = m.receiveACK(now: t0 + sec)
        let a = try #require(ack)
        #expect(a.terminated)

        var n = ServerInviteTransaction(request: try request(), reliable: true, timers: rfc)
        _ = try n.respond(status: 486, bytes: busy486, now: t0)
        let h = run(&n, until: t0 + 100 * sec)
        #expect(h.map(\.at) == [t0 + 32 * sec])
        #expect(h.first?.effects.timeouts == [.noACK])
    }

    @Test("2xx: Accepted (RFC 6026): more 2xx sent, retransmissions absorbed silently, Timer L")
    func accepted() throws {
        var m = ServerInviteTransaction(request: try request(), reliable: false, timers: rfc)
        let f = try m.respond(status: 200, bytes: ok200, now: t0)
        #expect(m.state == .accepted)
        #expect(f.scheduled(.l) == t0 + 32 * sec)
        #expect(f.scheduled(.g) == nil)
        let second = Array("SIP/2.0 200 OK\r\nX: fork2\r\nContent-Length: 0\r\n\r\n".utf8)
        #expect(try m.respond(status: 200, bytes: second, now: t0 + sec).sends.map(\.bytes) == [second])
        #expect(throws: TransactionError.finalResponseAlreadySent) {
            _ = try m.respond(status: 486, bytes: busy486, now: t0 + sec)
        }
        let r = m.receiveRetransmission(now: t0 + sec)
        #expect(r.sends.isEmpty && r.absorbed == 1)
        let ack = m.receiveACK(now: t0 + sec)
        #expect(ack == nil)   // the ACK for a 2xx belongs to the TU
        let l = run(&m, until: t0 + 100 * sec)
        #expect(l.map(\.at) == [t0 + 32 * sec])
        #expect(l.first?.effects.terminated == true)
    }

    @Test("suspended INVITE: fr_inv_timer (120 s), lifetime (180 s)")
    func suspended() throws {
        var m = ServerInviteTransaction(request: try request(), reliable: false, timers: TransactionTimers())
        #expect(m.start(now: t0).scheduled(.lifetime) == t0 + 180 * sec)
        let s = try m.suspend(now: t0 + sec)
        #expect(s.scheduled(.finalResponse) == t0 + 121 * sec)
        let f = run(&m, until: t0 + 300 * sec)
        #expect(f.map(\.at) == [t0 + 121 * sec, t0 + 180 * sec])
        #expect(f[0].effects.timeouts == [.finalResponse])
        #expect(!f[0].effects.terminated)
        #expect(f[1].effects.timeouts == [.lifetime])
        #expect(f[1].effects.terminated)
    }

    @Test("suspend is refused after the final response; transport error terminates")
    func misc() throws {
        var m = ServerInviteTransaction(request: try request(), reliable: false, timers: rfc)
        _ = try m.respond(status: 486, bytes: busy486, now: t0)
        #expect(throws: TransactionError.invalidState(.completed)) { _ = try m.suspend(now: t0) }
        let e = m.transportError()
        #expect(e.terminated)
        #expect(Set(e.cancelledTimers) == [.g, .h])
        #expect(m.transportError().isEmpty)
    }
}
