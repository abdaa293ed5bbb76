import Dispatch
import SIP
import SIPTransaction
import Synchronization
import Testing

/// Forwards `req` as a branch of `parent` towards `peer` (what t_relay does).
func relay(_ table: Table, _ req: SIPMessage, parent: TransactionID?, peer: String, reliable: Bool = false,
           ctx: Ctx = Ctx(), now: UInt64) throws -> (id: TransactionID, request: SIPMessage, actions: [Table.Action]) {
    let via = SIPProxy.OutgoingVia(host: "203.0.113.5", port: 5060)
    guard case .forward(let f) = SIPProxy.forwardRequest(req, via: via, branch: parent.map(table.generateBranch(for:)) ?? table.generateBranch()) else {
        throw TransactionError.malformed("not forwarded")
    }
    let (id, actions) = try table.startClientTransaction(request: f.message, peer: peer, reliable: reliable,
                                                         context: ctx, parent: parent, now: now)
    return (id, f.message, actions)
}

/// Creates the server transaction of `req`, received from "alice" at t0.
func serverTransaction(_ table: Table, _ req: SIPMessage, reliable: Bool = false, context: Ctx = Ctx()) throws -> TransactionID {
    try #require(created(try table.createServerTransaction(for: req, peer: "alice", reliable: reliable, context: context, now: t0)))
}

func created(_ r: Table.CreateResult) -> TransactionID? {
    if case .created(let id) = r { id } else { nil }
}

func matched(_ r: Table.ResponseMatch) -> (TransactionID, [Table.Action])? {
    if case .matched(let id, let a) = r { (id, a) } else { nil }
}

@Suite("TransactionTable")
struct TransactionTableTests {
    @Test("server: create, absorb retransmissions (same bytes), ACK for non-2xx, Timer I, stats")
    func serverFlow() throws {
        let table = Table(timers: rfc)
        let inv = try request()
        let id = try #require(created(try table.createServerTransaction(
            for: inv, peer: "alice", reliable: false, context: Ctx(failureRoute: "MANAGE_FAILURE"), now: t0)))
        #expect(table.info(id)?.kind == .inviteServer)
        #expect(table.info(id)?.state == .proceeding)
        #expect(table.request(of: id)?.bytes == inv.bytes)
        #expect(table.context(of: id)?.failureRoute == "MANAGE_FAILURE")

        guard case .retransmission(let rid, let none) = table.lookupRequest(inv, now: t0 + 100 * ms) else {
            Issue.record("retransmission expected"); return
        }
        #expect(rid == id && none.isEmpty)
        // t_newtran on a retransmission (another worker was faster): absorbed too.
        guard case .retransmission(id, _) = try table.createServerTransaction(
            for: inv, peer: "alice", reliable: false, context: Ctx(), now: t0) else {
            Issue.record("retransmission expected"); return
        }

        let ringing = try table.reply(id, status: 180, bytes: ringing180, now: t0 + 200 * ms)
        #expect(ringing.sends.map(\.bytes) == [ringing180])
        #expect(ringing.sends.first?.peer == "alice")
        guard case .retransmission(_, let resent) = table.lookupRequest(inv, now: t0 + 300 * ms) else {
            Issue.record("retransmission expected"); return
        }
        #expect(resent.sends.map(\.bytes) == [ringing180])

        _ = try table.reply(id, status: 486, bytes: busy486, now: t0 + sec)
        #expect(table.nextDeadline() == t0 + 1500 * ms)            // Timer G
        let g = table.fire(now: t0 + 1500 * ms)
        #expect(g.sends.map(\.bytes) == [busy486])
        #expect(g.sends.first?.retransmission == true)

        guard case .ack(id, let ackActions) = table.lookupRequest(try request("ACK"), now: t0 + 2 * sec) else {
            Issue.record("ACK should match"); return
        }
        #expect(ackActions.isEmpty)
        #expect(table.info(id)?.state == .confirmed)
        #expect(table.nextDeadline() == t0 + 7 * sec)              // Timer I = T4
        let end = table.fire(now: t0 + 7 * sec)
        #expect(end.terminations.map(\.id) == [id])
        #expect(end.terminations.first?.ctx.failureRoute == "MANAGE_FAILURE")
        #expect(table.count == 0)
        guard case .notFound = table.lookupRequest(inv, now: t0 + 8 * sec) else {
            Issue.record("gone"); return
        }
        let st = table.stats
        #expect(st.createdServer == 1)
        #expect(st.activeServer == 0)
        #expect(st.absorbedRetransmissions == 3)
        #expect(st.sentRetransmissions == 2)
    }

    @Test("ACK after a 2xx, and ACK/requests without a transaction, are not absorbed")
    func notAbsorbed() throws {
        let table = Table(timers: rfc)
        guard case .notFound = table.lookupRequest(try request("ACK"), now: t0) else { Issue.record("no tx"); return }
        let id = try #require(created(try table.createServerTransaction(
            for: try request(), peer: "a", reliable: false, context: Ctx(), now: t0)))
        _ = try table.reply(id, status: 200, bytes: ok200, now: t0)
        guard case .notFound = table.lookupRequest(try request("ACK"), now: t0) else {
            Issue.record("ACK for 2xx goes to the core"); return
        }
        #expect(throws: TransactionError.ackCreatesNoTransaction) {
            _ = try table.createServerTransaction(for: try request("ACK"), peer: "a", reliable: false, context: Ctx(), now: t0)
        }
        #expect(throws: TransactionError.missingBranch) {
            _ = try table.createServerTransaction(for: try request(branch: "old2543"), peer: "a", reliable: false,
                                                  context: Ctx(), now: t0)
        }
    }

    @Test("CANCEL: finds the INVITE it cancels and is a transaction of its own")
    func cancelMatching() throws {
        let table = Table(timers: rfc)
        let inv = try #require(created(try table.createServerTransaction(
            for: try request(), peer: "a", reliable: false, context: Ctx(), now: t0)))
        let cancel = try request("CANCEL")
        #expect(table.inviteTransaction(cancelledBy: cancel) == inv)
        #expect(table.inviteTransaction(cancelledBy: try request("CANCEL", branch: "z9hG4bKzzz")) == nil)
        #expect(table.inviteTransaction(cancelledBy: try request("BYE")) == nil)
        guard case .notFound = table.lookupRequest(cancel, now: t0) else { Issue.record("new"); return }
        let c = try #require(created(try table.createServerTransaction(
            for: cancel, peer: "a", reliable: false, context: Ctx(), now: t0)))
        #expect(c != inv)
        #expect(table.info(c)?.kind == .nonInviteServer)
        _ = try table.reply(c, status: 200, bytes: ok200, now: t0)
        guard case .retransmission(c, let again) = table.lookupRequest(cancel, now: t0) else {
            Issue.record("CANCEL retransmission"); return
        }
        #expect(again.sends.map(\.bytes) == [ok200])
    }

    @Test("client: send, Timer E through fire/nextDeadline, responses matched by branch + CSeq method")
    func clientFlow() throws {
        let table = Table(timers: rfc)
        let (id, sent, start) = try relay(table, try request("OPTIONS"), parent: nil, peer: "bob", now: t0)
        #expect(start.sends.count == 1)
        #expect(start.sends.first?.peer == "bob")
        #expect(start.sends.first?.bytes == sent.bytes)
        #expect(table.nextDeadline() == t0 + 500 * ms)
        #expect(table.fire(now: t0 + 499 * ms).isEmpty)
        let e = table.fire(now: t0 + 500 * ms)
        #expect(e.sends.map(\.bytes) == [sent.bytes])
        #expect(table.nextDeadline() == t0 + 1500 * ms)

        // Wrong method in CSeq, unknown branch: no match.
        let wrong = try response(to: try request("BYE", branch: sent.via!.branch!), 200)
        guard case .notFound = table.receiveResponse(wrong, now: t0) else { Issue.record("method differs"); return }
        guard case .notFound = table.receiveResponse(try response(to: try request("OPTIONS"), 200), now: t0) else {
            Issue.record("branch differs"); return
        }

        let ok = try response(to: sent, 200)
        let (mid, acts) = try #require(matched(table.receiveResponse(ok, now: t0 + sec)))
        #expect(mid == id)
        #expect(acts.responses.map { $0.response.statusCode } == [200])
        #expect(acts.responses.first?.parent == nil)
        #expect(table.nextDeadline() == t0 + 6 * sec)               // Timer K
        let (_, again) = try #require(matched(table.receiveResponse(ok, now: t0 + 2 * sec)))
        #expect(again.responses.isEmpty)
        #expect(table.fire(now: t0 + 6 * sec).terminations.map(\.kind) == [.nonInviteClient])
        #expect(table.count == 0)
        #expect(table.nextDeadline() == nil)
    }

    @Test("client timeout: the TU gets a 408 with the context, then the transaction is gone")
    func clientTimeout() throws {
        let table = Table()      // Kamailio defaults: fr_timer 30 s
        let (id, _, _) = try relay(table, try request("MESSAGE"), parent: nil, peer: "bob",
                                   ctx: Ctx(tag: "m1"), now: t0)
        let acts = drive(table, until: t0 + 60 * sec)
        let r = try #require(acts.first { if case .response = $0.action { true } else { false } })
        #expect(r.at == t0 + 30 * sec)
        guard case .response(id, nil, let msg, .timeout, let ctx) = r.action else { Issue.record("408"); return }
        #expect(msg.statusCode == 408)
        #expect(ctx.tag == "m1")
        #expect(acts.filter { !$0.action.isSend }.map(\.at).allSatisfy { $0 == t0 + 30 * sec })
        #expect(table.stats.clientTimeouts == 1)
        #expect(table.count == 0)
    }

    @Test("branches: when all fail the best one comes with allBranchesFailed (486 beats a timeout)")
    func failureRoute() throws {
        let table = Table(timers: TransactionTimers(finalResponse: .seconds(10)))
        let inv = try request()
        let sid = try serverTransaction(table, inv, context: Ctx(failureRoute: "FAIL"))
        let b1 = try relay(table, inv, parent: sid, peer: "b1", now: t0)
        let b2 = try relay(table, inv, parent: sid, peer: "b2", now: t0)
        #expect(table.info(sid)?.branches == [b1.id, b2.id])
        #expect(table.info(b1.id)?.parent == sid)

        let busy = try response(to: b1.request, 486, "Busy Here")
        let (_, a1) = try #require(matched(table.receiveResponse(busy, now: t0 + sec)))
        #expect(a1.responses.map { $0.response.statusCode } == [486])
        #expect(a1.responses.first?.parent == sid)
        #expect(a1.sends.count == 1)                       // the ACK, to b1
        #expect(a1.sends.first?.peer == "b1")
        #expect(a1.failures.isEmpty)                       // b2 still pending

        let acts = drive(table, until: t0 + 11 * sec)
        let failure = try #require(acts.compactMap { a -> (TransactionID, SIPMessage, TransactionID, Ctx)? in
            if case .allBranchesFailed(let id, let best, _, let branch, let ctx) = a.action { (id, best, branch, ctx) } else { nil }
        }.first)
        #expect(failure.0 == sid)
        #expect(failure.1.statusCode == 486)
        #expect(failure.2 == b1.id)
        #expect(failure.3.failureRoute == "FAIL")
        let timeoutIndex = try #require(acts.firstIndex { if case .response(_, _, _, .timeout, _) = $0.action { true } else { false } })
        let failureIndex = try #require(acts.firstIndex { if case .allBranchesFailed = $0.action { true } else { false } })
        #expect(timeoutIndex < failureIndex)

        // The failure route relays the best response upstream: top Via stripped, to alice.
        let up = try table.relayResponse(sid, response: failure.1, now: t0 + 11 * sec)
        let sent = try SIPMessage(try #require(up.sends.first?.bytes))
        #expect(up.sends.first?.peer == "alice")
        #expect(sent.statusCode == 486)
        #expect(sent.headers(.via) == inv.headers(.via))
    }

    @Test("failure route adds a branch: its failure triggers allBranchesFailed again")
    func newBranchAfterFailure() throws {
        let table = Table(timers: rfc)
        let inv = try request("MESSAGE")
        let sid = try serverTransaction(table, inv, reliable: true)
        let b1 = try relay(table, inv, parent: sid, peer: "b1", reliable: true, now: t0)
        let (_, a1) = try #require(matched(table.receiveResponse(try response(to: b1.request, 404), now: t0)))
        #expect(a1.failures.map { $0.best.statusCode } == [404])
        let b2 = try relay(table, inv, parent: sid, peer: "b2", reliable: true, now: t0)
        let (_, a2) = try #require(matched(table.receiveResponse(try response(to: b2.request, 302), now: t0)))
        #expect(a2.failures.map { $0.best.statusCode } == [302])
        #expect(a2.failures.first?.branch == b2.id)
    }

    @Test("a 2xx branch means no failure; the final reply cancels pending branches (CANCEL after their 1xx)")
    func twoHundredCancelsOthers() throws {
        let table = Table(timers: rfc)
        let inv = try request()
        let sid = try serverTransaction(table, inv)
        let b1 = try relay(table, inv, parent: sid, peer: "b1", now: t0)
        let b2 = try relay(table, inv, parent: sid, peer: "b2", now: t0)
        let b3 = try relay(table, inv, parent: sid, peer: "b3", now: t0)
        _ = table.receiveResponse(try response(to: b2.request, 180), now: t0 + 100 * ms)
        let ok = try response(to: b1.request, 200)
        let (_, a) = try #require(matched(table.receiveResponse(ok, now: t0 + sec)))
        #expect(a.responses.map { $0.response.statusCode } == [200])
        #expect(a.sends.isEmpty)                          // no ACK for a 2xx
        let up = try table.relayResponse(sid, response: ok, now: t0 + sec)
        #expect(up.sends.filter { $0.peer == "alice" }.count == 1)
        let cancels = up.sends.filter { $0.peer == "b2" }
        #expect(cancels.count == 1)
        let cancel = try SIPMessage(try #require(cancels.first?.bytes))
        #expect(cancel.method == .cancel)
        #expect(cancel.via?.branch == b2.request.via?.branch)
        #expect(up.sends.filter { $0.peer == "b3" }.isEmpty)  // b3 has no 1xx: CANCEL held back
        #expect(table.stats.activeClient == 4)            // b1 (Accepted), b2, b3, b2's CANCEL

        // b3 rings: its CANCEL goes now.
        let (_, r3) = try #require(matched(table.receiveResponse(try response(to: b3.request, 183), now: t0 + 2 * sec)))
        #expect(r3.sends.filter { $0.peer == "b3" }.count == 1)

        // b2's CANCEL is answered: nothing for the TU. b2's 487 is ACKed; no failure (2xx sent).
        let cancelOK = try response(to: cancel, 200)
        let (_, c) = try #require(matched(table.receiveResponse(cancelOK, now: t0 + 2 * sec)))
        #expect(c.responses.isEmpty)
        let (_, t) = try #require(matched(table.receiveResponse(try response(to: b2.request, 487), now: t0 + 2 * sec)))
        #expect(t.responses.map { $0.response.statusCode } == [487])
        #expect(t.sends.count == 1)
        #expect(t.failures.isEmpty)

        // The CANCEL transactions end without a .terminated action.
        let rest = drive(table, until: t0 + 100 * sec)
        #expect(Set(rest.compactMap { if case .terminated(let id, _, _) = $0.action { id } else { nil } })
            == [sid, b1.id, b2.id, b3.id])
        #expect(table.count == 0)
    }

    @Test("a 6xx on one branch cancels the others and is the best response")
    func sixHundred() throws {
        let table = Table(timers: rfc)
        let inv = try request()
        let sid = try serverTransaction(table, inv)
        let b1 = try relay(table, inv, parent: sid, peer: "b1", now: t0)
        let b2 = try relay(table, inv, parent: sid, peer: "b2", now: t0)
        _ = table.receiveResponse(try response(to: b2.request, 180), now: t0)
        let (_, a) = try #require(matched(table.receiveResponse(try response(to: b1.request, 603, "Decline"), now: t0 + sec)))
        #expect(a.sends.filter { $0.peer == "b2" }.count == 1)       // the CANCEL
        #expect(a.failures.isEmpty)
        let (_, b) = try #require(matched(table.receiveResponse(try response(to: b2.request, 487), now: t0 + 2 * sec)))
        #expect(b.failures.map { $0.best.statusCode } == [603])
        #expect(b.failures.first?.branch == b1.id)
    }

    @Test("upstream CANCEL: cancelBranches; the 487 comes back as the failure")
    func cancelBranches() throws {
        let table = Table(timers: rfc)
        let inv = try request()
        let sid = try serverTransaction(table, inv)
        let b1 = try relay(table, inv, parent: sid, peer: "b1", now: t0)
        _ = table.receiveResponse(try response(to: b1.request, 180), now: t0)
        let acts = try table.cancelBranches(of: sid, now: t0 + sec)
        #expect(acts.sends.count == 1)
        #expect(try SIPMessage(acts.sends[0].bytes).method == .cancel)
        #expect(try table.cancel(b1.id, now: t0 + sec).isEmpty)     // once only
        let (_, a) = try #require(matched(table.receiveResponse(try response(to: b1.request, 487), now: t0 + 2 * sec)))
        #expect(a.failures.map { $0.best.statusCode } == [487])
        #expect(throws: TransactionError.wrongKind) {
            _ = try table.cancel(sid, now: t0)
        }
    }

    @Test("suspended server transaction: serverTimeout after fr_inv_timer; resume refused afterwards")
    func suspended() throws {
        let table = Table(timers: TransactionTimers(inviteFinalResponse: .seconds(5)))
        let sid = try serverTransaction(table, try request(), context: Ctx(tag: "async"))
        try table.suspend(sid, now: t0)
        #expect(table.info(sid)?.isSuspended == true)
        #expect(table.nextDeadline() == t0 + 5 * sec)
        let acts = table.fire(now: t0 + 5 * sec)
        #expect(acts.serverTimeouts.map(\.why) == [.finalResponse])
        #expect(acts.serverTimeouts.first?.ctx.tag == "async")
        #expect(table.info(sid)?.isSuspended == false)
        #expect(throws: TransactionError.notSuspended) { try table.resume(sid, now: t0 + 6 * sec) }
        _ = try table.reply(sid, status: 408, bytes: busy486, now: t0 + 6 * sec)
        #expect(table.stats.serverTimeouts == 1)

        let other = try #require(created(try table.createServerTransaction(
            for: try request(branch: "z9hG4bKsecond"), peer: "alice", reliable: false, context: Ctx(), now: t0)))
        try table.suspend(other, now: t0)
        try table.resume(other, now: t0 + sec)
        #expect(table.info(other)?.isSuspended == false)
        #expect(table.fire(now: t0 + 10 * sec).serverTimeouts.isEmpty)
    }

    @Test("nextDeadline follows cancelled timers exactly")
    func deadlines() throws {
        let table = Table(timers: rfc)
        #expect(table.nextDeadline() == nil)
        let (_, sent, _) = try relay(table, try request("OPTIONS"), parent: nil, peer: "b", now: t0)
        #expect(table.nextDeadline() == t0 + 500 * ms)
        _ = table.receiveResponse(try response(to: sent, 200), now: t0 + 100 * ms)
        #expect(table.nextDeadline() == t0 + 5100 * ms)           // E and F gone, K armed
    }

    @Test("context changes are seen by later actions")
    func contexts() throws {
        let table = Table(timers: rfc)
        let sid = try #require(created(try table.createServerTransaction(
            for: try request("OPTIONS"), peer: "a", reliable: true, context: Ctx(), now: t0)))
        let old = table.withContext(of: sid) { c -> String? in
            defer { c.failureRoute = "LATER" }
            return c.failureRoute
        }
        #expect(old == .some(nil))
        #expect(table.withContext(of: TransactionID(index: 1, label: 999_999)) { _ in 1 } == nil)
        let acts = try table.reply(sid, status: 200, bytes: ok200, now: t0)
        #expect(acts.terminations.first?.ctx.failureRoute == "LATER")
    }

    @Test("transport error on a branch: 503 to the TU and into the branch choice")
    func transportError() throws {
        let table = Table(timers: rfc)
        let inv = try request("OPTIONS")
        let sid = try serverTransaction(table, inv)
        let b = try relay(table, inv, parent: sid, peer: "b", now: t0)
        let acts = table.transportError(b.id, now: t0)
        #expect(acts.responses.map(\.origin) == [.transportError])
        #expect(acts.failures.map { $0.best.statusCode } == [503])
        #expect(acts.terminations.map(\.id) == [b.id])
        #expect(table.stats.transportErrors == 1)
        #expect(table.transportError(b.id, now: t0).isEmpty)
    }

    @Test("errors: unknown ids, wrong kinds, duplicates, missing parent")
    func errors() throws {
        let table = Table(timers: rfc)
        let nobody = TransactionID(index: 0, label: 12345)
        #expect(throws: TransactionError.notFound) { _ = try table.reply(nobody, status: 200, bytes: ok200, now: t0) }
        #expect(throws: TransactionError.notFound) { try table.suspend(nobody, now: t0) }
        let (cid, sent, _) = try relay(table, try request("OPTIONS"), parent: nil, peer: "b", now: t0)
        #expect(throws: TransactionError.wrongKind) { _ = try table.reply(cid, status: 200, bytes: ok200, now: t0) }
        #expect(throws: TransactionError.duplicate) {
            _ = try table.startClientTransaction(request: sent, peer: "b", reliable: false, context: Ctx(), now: t0)
        }
        #expect(throws: TransactionError.notFound) {
            _ = try relay(table, try request("OPTIONS"), parent: nobody, peer: "b", now: t0)
        }
        #expect(throws: TransactionError.notFound) {
            _ = try relay(table, try request("OPTIONS"), parent: cid, peer: "b", now: t0)
        }
        #expect(table.terminate(cid, now: t0).terminations.map(\.id) == [cid])
        #expect(table.count == 0)
    }

    @Test("several threads create, match and answer transactions concurrently")
    func concurrency() throws {
        let table = Table(timers: rfc)
        let threads = 8, perThread = 300
        let failures = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            for k in 0..<perThread {
                do {
                    let req = try request("OPTIONS", branch: "z9hG4bK-\(t)-\(k)", callID: "c\(t)-\(k)")
                    guard let sid = created(try table.createServerTransaction(
                        for: req, peer: "p\(t)", reliable: false, context: Ctx(), now: t0)) else {
                        failures.add(1, ordering: .relaxed); continue
                    }
                    guard case .retransmission(sid, _) = table.lookupRequest(req, now: t0) else {
                        failures.add(1, ordering: .relaxed); continue
                    }
                    let (cid, sent, _) = try relay(table, req, parent: sid, peer: "n\(t)", now: t0)
                    guard let (mid, acts) = matched(table.receiveResponse(try response(to: sent, 200), now: t0)),
                          mid == cid, acts.responses.first?.parent == sid else {
                        failures.add(1, ordering: .relaxed); continue
                    }
                    _ = try table.relayResponse(sid, response: try response(to: sent, 200), now: t0)
                } catch {
                    failures.add(1, ordering: .relaxed)
                }
            }
        }
        #expect(failures.load(ordering: .relaxed) == 0)
        let st = table.stats
        #expect(st.createdServer == threads * perThread)
        #expect(st.createdClient == threads * perThread)
        #expect(st.activeServer == threads * perThread)     // in Completed (Timer J)
        #expect(st.activeClient == threads * perThread)     // in Completed (Timer K)
        _ = drive(table, until: t0 + 100 * sec)
        #expect(table.count == 0)
        #expect(table.stats.activeServer == 0)
    }
}

extension Table.Action {
    var isSend: Bool { if case .send = self { true } else { false } }
}

@Suite("TransactionTable shards")
struct TransactionTableShardTests {
    @Test("a branch lands in its parent's shard; a foreign branch for a parent is refused")
    func branchesFollowTheirParent() throws {
        let table = Table()
        let inv = try request("INVITE")
        let sid = try #require(created(try table.createServerTransaction(for: inv, peer: "up", reliable: false, context: Ctx(), now: 0)))
        for _ in 0..<40 {
            let b = try relay(table, inv, parent: sid, peer: "b", now: 0)
            #expect(b.id.index & UInt32(Table.shardCount - 1) == sid.index & UInt32(Table.shardCount - 1))
        }
        #expect(table.info(sid)?.branches.count == 40)
        // The same branch as the server transaction's shard would pick: accepted.
        let via = SIPProxy.OutgoingVia(host: "203.0.113.5", port: 5060)
        guard case .forward(let ok) = SIPProxy.forwardRequest(inv, via: via, branch: table.generateBranch(forRequest: inv)) else {
            Issue.record("not forwarded")
            return
        }
        _ = try table.startClientTransaction(request: ok.message, peer: "c", reliable: false, context: Ctx(), parent: sid, now: 0)
        // A branch from another shard cannot be made a branch of it.
        var refused = 0
        for _ in 0..<Table.shardCount {
            guard case .forward(let f) = SIPProxy.forwardRequest(inv, via: via, branch: table.generateBranch()) else { continue }
            do {
                _ = try table.startClientTransaction(request: f.message, peer: "x", reliable: false, context: Ctx(), parent: sid, now: 0)
            } catch {
                refused += 1
            }
        }
        #expect(refused == Table.shardCount - 1)
    }

    @Test("transactions spread over every shard; stats add up")
    func spreadAndStats() throws {
        let table = Table()
        var shards = Set<UInt32>()
        for i in 0..<200 {
            let (id, _, _) = try relay(table, try request("OPTIONS", branch: "z9hG4bKsrv\(i)"), parent: nil, peer: "b", now: 0)
            shards.insert(id.index & UInt32(Table.shardCount - 1))
            _ = try table.createServerTransaction(for: try request("MESSAGE", branch: "z9hG4bK-\(i)-x"), peer: "u",
                                                  reliable: false, context: Ctx(), now: 0)
        }
        #expect(shards.count == Table.shardCount)
        #expect(table.count == 400)
        let stats = table.stats
        #expect(stats.createdClient == 200 && stats.activeClient == 200)
        #expect(stats.createdServer == 200 && stats.activeServer == 200)
    }
}
