import DMQ
import KSRBase
import KSRCore
import Logging
import LuaBridge
import SIP
import SIPTransaction
import SIPTransport

extension WorkerContext {
    /// `handle_message` (queued on a DMQ worker) and `process_message` (now, here): the
    /// channel is the R-URI user; the reply is the handler's. `rc` on success; -1 when DMQ is
    /// off, the request has no channel (no reply is sent, as in Kamailio) or no worker exists.
    func dmqHandle(_ L: OpaquePointer, queued: Bool, rc: Int) -> Int {
        guard let service = runtime.dmq.service else {
            logUsageError(L, "dmq: not configured (set modparam(\"dmq\", \"server_address\", ...))")
            return -1
        }
        guard let inbound = message.inbound, message.sip.isRequest else {
            logUsageError(L, "dmq: handle_message needs a received KDMQ request")
            return -1
        }
        guard let channel = URIParts(message.requestURI).user, !channel.isEmpty else {
            logUsageError(L, "dmq: the request URI \(message.requestURI) has no channel (user part): not handled, no reply")
            return -1
        }
        let sip = message.sip
        let key = (sip.callID ?? "") + "|" + (sip.via?.parameters.first(named: "branch")?.value ?? "") + "|"
            + inbound.source.description
        switch service.replies.begin(key, now: SystemClock().nowNanos()) {
        case .inProgress:
            return rc
        case .answered(let bytes):
            service.transport.send(bytes, replyingTo: inbound)
            return rc
        case .new:
            break
        }
        if queued {
            guard service.post(DMQJob(message: message, channel: channel, key: key)) else {
                service.replies.abandon(key)
                logUsageError(L, "dmq: handle_message: no DMQ workers (num_workers=0); use process_message")
                return -1
            }
        } else {
            dmqRun(service, channel: channel, key: key, nestedOn: L)
        }
        return rc
    }

    /// Runs the handler of `channel` for the current KDMQ request and sends its reply:
    /// the membership protocol (200 with the node list), a `channel_route` Lua function
    /// (its own reply, else 200), an auto-registered channel (202), or 404.
    func dmqRun(_ service: DMQService, channel: String, key: String, nestedOn L: OpaquePointer?) {
        guard let inbound = message.inbound else { return }
        let sip = message.sip
        var reply: (code: Int, reason: String, body: [UInt8], contentType: String?)
        var warning: String?
        if channel == service.settings.notificationChannel {
            let sender = sip.from.flatMap { try? DMQNodeAddress(parsing: $0.uri.description) }
            let mf = sip.header(named: "Max-Forwards").flatMap { Int($0.trimmingSpaces()) }
            let r = service.membership.receivedNotification(body: sip.body, maxForwards: mf, sender: sender)
            if let sender, let ua = sip.header(.userAgent), ua.hasPrefix("ksr ") { service.membership.markKSRHost(sender) }
            service.log(r.report, from: sender)
            service.log(r.events, because: "node list from \(sender.map { "\($0)" } ?? inbound.source.description)")
            // Kamailio never sends more than Max-Forwards 2 (a join), so a re-broadcast never
            // needs more than 1: a hostile Max-Forwards cannot make nodes forward lists on and on.
            let rebroadcast = r.rebroadcast.map { DMQOutgoing(target: $0.target, body: $0.body, maxForwards: min($0.maxForwards, 1)) }
            service.sendNotifications(rebroadcast)
            service.greetNew(r.events, except: sender, sent: rebroadcast)
            if let first = r.report.errors.first {
                // The valid lines are merged; the sender learns its list had bad ones.
                reply = (400, "Bad Request", [], nil)
                warning = "Warning: 399 ksr \"bad node list: \(first.map { $0 == "\"" || $0 < " " ? "'" : $0 })\""
            } else {
                reply = (200, "OK", Array(r.reply.utf8), "text/plain")
            }
        } else if let function = service.settings.channelRoutes[channel] {
            dmqCapture = []
            capturingDMQReply = true
            let outcome: LuaState.CallOutcome
            if let L {
                outcome = LuaState.protectedCall(on: L, function)
            } else {
                outcome = lua.callGlobal(function)
            }
            capturingDMQReply = false
            if !dmqCapture.isEmpty {
                service.replies.finish(key, reply: dmqCapture, now: SystemClock().nowNanos())
                return
            }
            switch outcome {
            case .failed(let e):
                logger.error("error from Lua in dmq channel_route [\(function)] for channel \(channel): \(e.traceback ?? e.message)",
                             metadata: ["ksr.module": "dmq"])
                reply = (500, "Server Internal Error", [], nil)
            case .missing:
                logger.error("dmq channel_route: the script defines no function [\(function)] (channel \(channel))",
                             metadata: ["ksr.module": "dmq"])
                reply = (500, "Server Internal Error", [], nil)
            default:
                reply = (200, "OK", [], nil)
            }
        } else if service.isRegistered(channel) {
            reply = (202, "Accepted DMQ", [], nil)
        } else {
            reply = (404, "User Not Found", [], nil)
        }
        let bytes = SIPResponseBuilder.reply(
            to: sip, status: reply.code, reason: reply.reason, source: (inbound.source.ip, inbound.source.port),
            toTag: SLModule.toTag(for: sip), extraHeaders: (reply.contentType.map { ["Content-Type: \($0)"] } ?? []) + (warning.map { [$0] } ?? []),
            body: reply.body, server: SLModule.server)
        service.transport.send(bytes, replyingTo: inbound)
        service.replies.finish(key, reply: bytes, now: SystemClock().nowNanos())
    }

    /// `send_message` (to `node`) and `bcast_message` (node nil: every active node).
    func dmqSend(_ L: OpaquePointer, channel: String, node: String?, body: String, contentType: String) -> Int {
        guard let service = runtime.dmq.service else {
            logUsageError(L, "dmq: not configured (set modparam(\"dmq\", \"server_address\", ...))")
            return -1
        }
        guard !channel.isEmpty, channel.utf8.allSatisfy({ $0 > 32 && $0 != UInt8(ascii: "@") && $0 != UInt8(ascii: ":") }) else {
            logUsageError(L, "dmq: invalid channel name '\(channel)'")
            return -1
        }
        service.register(channel)
        let bytes = Array(body.utf8)
        guard let node else {
            for peer in service.membership.activePeers() {
                service.send(channel: channel, to: peer, body: bytes, contentType: contentType, maxForwards: 1, notify: true)
            }
            return 1
        }
        guard let address = try? DMQNodeAddress(parsing: node) else {
            logUsageError(L, "dmq: send_message: '\(node)' is not a node URI")
            return -1
        }
        guard service.membership.node(address) != nil else {
            logUsageError(L, "dmq: send_message: \(address) is not in the node list")
            return -1
        }
        return service.send(channel: channel, to: address, body: bytes, contentType: contentType, maxForwards: 1, notify: true) ? 1 : -1
    }

    /// `t_replicate`: a stateful copy of the current request to every active node, with this
    /// node's Via on top and everything else as received; replies are absorbed. 0, or -1.
    func dmqReplicate(_ L: OpaquePointer, skipLoopCheck: Bool) -> Int {
        guard let service = runtime.dmq.service else {
            logUsageError(L, "dmq: not configured (set modparam(\"dmq\", \"server_address\", ...))")
            return -1
        }
        guard let inbound = message.inbound, message.sip.isRequest, message.sip.method != .ack,
              let table = runtime.tm.table else {
            logUsageError(L, "dmq: t_replicate needs a received request (not an ACK)")
            return -1
        }
        if !skipLoopCheck && service.membership.isNode(ip: inbound.source.ip) {
            logger.debug("dmq: t_replicate: the request comes from a node (\(inbound.source.ip)): not replicated",
                         metadata: ["ksr.module": "dmq"])
            return -1
        }
        var failed = 0
        for peer in service.membership.activePeers() {
            guard let (destination, via) = service.route(to: peer) else { failed += 1; continue }
            var editor = SIPMessageEditor(message.sip)
            let outgoing = SIPProxy.OutgoingVia(transport: via.address.proto == .tcp ? "TCP" : "UDP",
                                                host: via.address.ip, port: via.address.port)
            editor.prependHeader("Via", outgoing.value(branch: table.generateBranch()))
            guard let copy = try? SIPMessage(editor.serialize()),
                  service.start(copy, to: destination, via: via, context: nil) else { failed += 1; continue }
        }
        return failed == 0 ? 0 : -1
    }
}
