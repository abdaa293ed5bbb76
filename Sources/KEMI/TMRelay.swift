import KSRBase
import KSRCore
import Logging
import LuaBridge
import SIP
import SIPTransaction
import SIPTransport

extension WorkerContext {
    /// `t_relay`: forwards the request statefully to `$du`, else the R-URI (an IP address or a
    /// name resolved through `NameResolver.shared`; `;transport=tcp` selects TCP). Replies come
    /// back through the transaction; a next hop that never answers gets the request a 408. An
    /// ACK is forwarded statelessly.
    /// 1 when forwarded, -1 on error (483 is answered when Max-Forwards is exhausted).
    func relay(_ L: OpaquePointer) -> Int {
        // The branch route runs first (nested, on this coroutine) and may change the target.
        if let route = message.branchRoute, message.sip.method != .ack, message.sip.method != .cancel {
            message.branchRoute = nil
            dropRequested = false
            switch LuaState.protectedCall(on: L, route) {
            case .failed(let e):
                logger.error("error from Lua in branch route [\(route)]: \(e.traceback ?? e.message)", metadata: ["ksr.module": "tm"])
            default:
                break
            }
            if dropRequested {
                dropRequested = false
                logUsageError(L, "tm: t_relay: the branch route dropped the branch")
                return -1
            }
        }
        guard let inbound = message.inbound, message.sip.isRequest,
              let table = runtime.tm.table, let transport = runtime.sip.transport else {
            logUsageError(L, "tm: t_relay needs a received request")
            return -1
        }
        let target = message.destinationURI ?? message.requestURI
        guard let uri = try? SIPURI(parsing: target) else {
            logUsageError(L, "tm: t_relay: cannot parse the destination \(target)")
            return -1
        }
        let proto: SIPTransportProtocol = uri.parameter(named: "transport")?.value?.lowercased() == "tcp" ? .tcp : .udp
        // A name is resolved to A/AAAA records (no SRV/NAPTR; port 5060 when none is given),
        // blocking this worker on a cache miss; IPv4 first, then the first address of a family
        // a listen socket exists for.
        let candidates: [SIPSocketAddress]
        do throws(SIPTransportError) {
            candidates = try NameResolver.shared.resolve(host: uri.host, port: uri.port ?? SIPListenAddress.defaultPort)
        } catch {
            logUsageError(L, "tm: t_relay: \(error) (destination \(target))")
            return -1
        }
        let sockets = transport.listeners.filter { $0.proto == proto }
        guard !sockets.isEmpty else {
            logUsageError(L, "tm: t_relay: no \(proto) listen socket to send from (add coreparam(\"listen\", \"\(proto):...\"))")
            return -1
        }
        var chosen: (SIPSocketAddress, SIPListener)?
        for address in candidates {
            if let socket = sockets.first(where: { $0.isIPv6 == address.isIPv6 }) { chosen = (address, socket); break }
        }
        guard let (destination, listener) = chosen else {
            let family = candidates.first?.isIPv6 == true ? "IPv6" : "IPv4"
            logUsageError(L, "tm: t_relay: no \(proto) listen socket for the \(family) address of \(uri.host) (add coreparam(\"listen\", \"\(proto):...\"))")
            return -1
        }
        // A CANCEL for an INVITE we relayed: answer it, cancel the INVITE's branches; their 487
        // goes upstream through the INVITE's transaction.
        if message.sip.method == .cancel, let invite = table.inviteTransaction(cancelledBy: message.sip) {
            guard newTransaction(L) == 1 else { return -1 }
            _ = transactionReply(200, "Canceling", L)
            do throws(TransactionError) {
                runtime.tm.perform(try table.cancelBranches(of: invite, now: SystemClock().nowNanos()))
            } catch {
                logUsageError(L, "tm: cannot cancel the INVITE's branches: \(error)")
            }
            return 1
        }
        let via = SIPProxy.OutgoingVia(transport: proto == .tcp ? "TCP" : "UDP", host: listener.ip, port: listener.port)
        let forward = SIPProxy.forwardRequest(HeaderLump.apply(message.lumps, to: message.sip), via: via,
                                              branch: table.generateBranch(forRequest: message.sip), requestURI: message.newRequestURI)
        let fr: SIPProxy.ForwardedRequest
        switch forward {
        case .forward(let f): fr = f
        case .tooManyHops:
            _ = message.transaction != nil || newTransaction(L) == 1
            _ = transactionReply(483, "Too Many Hops", L)
            return -1
        case .invalidMaxForwards, .malformed:
            logUsageError(L, "tm: t_relay: the request cannot be forwarded (bad Max-Forwards or Via)")
            return -1
        }
        // ksr_onsend_route sees the request about to go out ($ru, headers of the forwarded
        // message); as in Kamailio's KEMI, what it does cannot stop the send.
        if lua.hasGlobalFunction("ksr_onsend_route") {
            let saved = message
            message = MessageState(sip: fr.message, inbound: inbound)
            if case .failed(let e) = LuaState.protectedCall(on: L, "ksr_onsend_route") {
                logger.error("error from Lua in ksr_onsend_route: \(e.traceback ?? e.message)", metadata: ["ksr.module": "tm"])
            }
            message = saved
        }
        if message.sip.method == .ack {
            if proto == .udp { transport.send(fr.bytes, to: destination, via: listener) } else { transport.send(fr.bytes, to: destination, proto: .tcp) }
            return 1
        }
        if message.transaction == nil {
            guard newTransaction(L) == 1 else { return -1 }
        }
        guard let server = message.transaction else { return -1 }
        let failureRoute = message.failureRoute
        _ = table.withContext(of: server) { $0.failureRoute = failureRoute }
        let peer = SIPInbound(bytes: [], source: destination, local: listener, connection: nil, receivedAt: 0)
        do throws(TransactionError) {
            let (_, actions) = try table.startClientTransaction(
                request: fr.message, peer: peer, reliable: proto != .udp,
                context: TMContext(source: (inbound.source.ip, inbound.source.port), inbound: inbound,
                                   replyRoute: message.replyRoute),
                parent: server, now: SystemClock().nowNanos())
            runtime.tm.perform(actions)
            return 1
        } catch {
            logUsageError(L, "tm: t_relay failed: \(error)")
            return -1
        }
    }
}
