import KSRBase
import KSRCore
import Logging
import LuaBridge
import SIP
import SIPTransport

extension WorkerContext {
    /// Sends a stateless reply to the current request, as Kamailio's sl module does:
    /// 1 when sent, -1 for the faked message, an ACK, a bad code or a send failure.
    func sendStatelessReply(_ code: Int, _ reason: String, _ L: OpaquePointer) -> Int {
        guard let inbound = message.inbound, let transport = runtime.sip.transport else {
            logUsageError(L, "sl: cannot reply to the faked message (no SIP request here)")
            return -1
        }
        let sip = message.sip
        guard sip.isRequest else {
            logUsageError(L, "sl: cannot reply to a reply")
            return -1
        }
        guard sip.method != .ack else { return -1 }
        guard (100...699).contains(code) else {
            logUsageError(L, "sl: invalid reply code \(code) (100..699)")
            return -1
        }
        replyBuffer.removeAll(keepingCapacity: true)
        SIPResponseBuilder.appendReply(
            into: &replyBuffer, to: sip, status: code, reason: reason.isEmpty ? SLModule.defaultReason(code) : reason,
            source: (inbound.source.ip, inbound.source.port), toTag: SLModule.toTag(for: sip),
            extraHeaders: message.replyHeaders, server: SLModule.server)
        transport.send(replyBuffer, replyingTo: inbound)
        if code >= 200 { message.statelessFinalSent = true }
        if capturingDMQReply && dmqCapture.isEmpty { dmqCapture = replyBuffer }
        return 1
    }
}

/// sl: stateless replies (`KSR.sl.*`).
struct SLModule: KEMIModule {
    let name = "sl"
    let summary = "stateless replies"

    var params: [ModuleParam] {
        [.notImplemented("bind_tm", .int), .notImplemented("default_reason", .string), .notImplemented("event_callback", .string)]
    }

    static let server = "ksr (\(ScriptHost.version))"

    var exports: [KEMIExport] {
        [
            KEMIExport("sl", "sl_send_reply", [("code", .int), ("reason", .str)], returns: .int,
                       doc: "Sends a stateless reply: 1 sent, -1 error (ACK, faked message, bad code). After a KSR.async.sleep that suspended the request's transaction, replies through it.") { ctx, args in
                // A sleep made (or suspended) the transaction without the script asking: a
                // stateless reply beside it would leave retransmissions unanswered and be
                // followed by tm's 500, so the reply goes through the transaction.
                ctx.message.sleptInTransaction && ctx.message.transaction != nil
                    ? .int(ctx.transactionReply(Int(args.int32(1)), args.string(2) ?? "", args.L))
                    : .int(ctx.sendStatelessReply(Int(args.int32(1)), args.string(2) ?? "", args.L))
            },
            KEMIExport("sl", "send_reply", [("code", .int), ("reason", .str)], returns: .int,
                       doc: "Replies through the transaction if there is one, else statelessly: 1 sent, -1 error.") { ctx, args in
                ctx.message.transaction != nil
                    ? .int(ctx.transactionReply(Int(args.int32(1)), args.string(2) ?? "", args.L))
                    : .int(ctx.sendStatelessReply(Int(args.int32(1)), args.string(2) ?? "", args.L))
            },
        ]
    }

    /// The To-tag of stateless replies: a hash of the Call-ID, From and top Via header values
    /// (the From-tag and the branch with them), so a retransmitted request gets the same tag.
    /// Hashed as received, without parsing those headers.
    static func toTag(for sip: SIPMessage) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a
        sip.bytes.withUnsafeBufferPointer { bytes in
            func mix(_ kind: SIPHeaderKind) {
                if let field = sip.firstField(kind) {
                    for i in field.valueRange { h = (h ^ UInt64(bytes[i])) &* 0x0000_0100_0000_01b3 }
                }
                h = (h ^ 0xff) &* 0x0000_0100_0000_01b3
            }
            mix(.callID)
            mix(.from)
            mix(.via)
        }
        let hex = String(h, radix: 16)
        return "ksr" + String(repeating: "0", count: 16 - hex.count) + hex
    }

    static func defaultReason(_ code: Int) -> String {
        switch code {
        case 100: "Trying"
        case 180: "Ringing"
        case 200: "OK"
        case 202: "Accepted"
        case 400: "Bad Request"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 408: "Request Timeout"
        case 480: "Temporarily Unavailable"
        case 483: "Too Many Hops"
        case 486: "Busy Here"
        case 500: "Server Internal Error"
        case 501: "Not Implemented"
        case 503: "Service Unavailable"
        default: "Unknown"
        }
    }
}

/// `KSR.hdr.*`: read headers of the current message, add headers to the replies it gets.
struct HdrModule: KEMIModule {
    let name = "hdr"
    /// Part of Kamailio's core, not a module.
    let isLoadable = false
    let summary = "headers: get, is_present, append/insert/remove (applied when relayed), append_to_reply"

    var exports: [KEMIExport] {
        func get(_ fn: String, _ missing: KEMIValue, _ doc: String) -> KEMIExport {
            KEMIExport("hdr", fn, [("name", .str)], returns: .xval, doc: doc) { ctx, args in
                guard let name = args.string(1), let v = ctx.message.sip.header(named: name) else { return missing }
                return .string(v)
            }
        }
        func getIdx(_ fn: String, _ missing: KEMIValue, _ doc: String) -> KEMIExport {
            KEMIExport("hdr", fn, [("name", .str), ("index", .int)], returns: .xval, doc: doc) { ctx, args in
                guard let name = args.string(1) else { return missing }
                let sip = ctx.message.sip
                let fields = sip.fields(named: name).prefix(256)
                var i = Int(args.int32(2))
                if i < 0 { i += fields.count }
                guard i >= 0, i < fields.count else { return missing }
                return .string(sip.value(of: fields[fields.startIndex + i]))
            }
        }
        return [
            get("get", .null, "Body of the first header with that name (compact forms match); nil if absent."),
            get("gete", .string(""), "Like get, \"\" if absent."),
            get("getw", .string("<null>"), "Like get, \"<null>\" if absent."),
            getIdx("get_idx", .null, "Body of the i-th header with that name (0-based; negative counts from the end); nil if absent."),
            getIdx("gete_idx", .string(""), "Like get_idx, \"\" if absent."),
            getIdx("getw_idx", .string("<null>"), "Like get_idx, \"<null>\" if absent."),
            KEMIExport("hdr", "is_present", [("name", .str)], returns: .int,
                       doc: "1 if a header with that name is present, -1 if not.") { ctx, args in
                guard let name = args.string(1), !name.isEmpty else { return .int(-1) }
                return .int(ctx.message.sip.fields(named: name).isEmpty ? -1 : 1)
            },
            KEMIExport("hdr", "append", [("text", .str)], returns: .int,
                       doc: "Adds header lines (\"Name: value\\r\\n\") after the last header when the request is relayed: 1, or -1.") { ctx, args in
                guard let text = args.string(1), !HeaderLump.lines(text).isEmpty else { return .int(-1) }
                ctx.message.lumps.append(.append(text))
                return .int(1)
            },
            KEMIExport("hdr", "insert", [("text", .str)], returns: .int,
                       doc: "Adds header lines before the first header when the request is relayed: 1, or -1.") { ctx, args in
                guard let text = args.string(1), !HeaderLump.lines(text).isEmpty else { return .int(-1) }
                ctx.message.lumps.append(.insert(text))
                return .int(1)
            },
            KEMIExport("hdr", "remove", [("name", .str)], returns: .int,
                       doc: "Removes every header with that name when the request is relayed: 1 (also when none matched).") { ctx, args in
                guard let name = args.string(1), !name.isEmpty else { return .int(-1) }
                ctx.message.lumps.append(.remove(name))
                return .int(1)
            },
            KEMIExport("hdr", "append_after", [("text", .str), ("name", .str)], returns: .int,
                       doc: "Adds header lines after the first header called name (at the end if none) when relayed: 1, or -1.") { ctx, args in
                guard let text = args.string(1), !HeaderLump.lines(text).isEmpty, let name = args.string(2), !name.isEmpty else { return .int(-1) }
                ctx.message.lumps.append(.appendAfter(text, name))
                return .int(1)
            },
            KEMIExport("hdr", "insert_before", [("text", .str), ("name", .str)], returns: .int,
                       doc: "Adds header lines before the first header called name (at the start if none) when relayed: 1, or -1.") { ctx, args in
                guard let text = args.string(1), !HeaderLump.lines(text).isEmpty, let name = args.string(2), !name.isEmpty else { return .int(-1) }
                ctx.message.lumps.append(.insertBefore(text, name))
                return .int(1)
            },
            KEMIExport("hdr", "rmappend", [("name", .str), ("text", .str)], returns: .int,
                       doc: "Removes the headers with that name, then appends header lines, when relayed: 1, or -1.") { ctx, args in
                guard let name = args.string(1), !name.isEmpty, let text = args.string(2), !HeaderLump.lines(text).isEmpty else { return .int(-1) }
                ctx.message.lumps.append(.remove(name))
                ctx.message.lumps.append(.append(text))
                return .int(1)
            },
            KEMIExport("hdr", "rminsert", [("name", .str), ("text", .str)], returns: .int,
                       doc: "Removes the headers with that name, then inserts header lines first, when relayed: 1, or -1.") { ctx, args in
                guard let name = args.string(1), !name.isEmpty, let text = args.string(2), !HeaderLump.lines(text).isEmpty else { return .int(-1) }
                ctx.message.lumps.append(.remove(name))
                ctx.message.lumps.append(.insert(text))
                return .int(1)
            },
            KEMIExport("hdr", "append_to_reply", [("text", .str)], returns: .int,
                       doc: "Adds header lines (\"Name: value\\r\\n\") to the replies sent for this message: 1, or -1.") { ctx, args in
                guard var text = args.string(1), !text.isEmpty else { return .int(-1) }
                while text.hasSuffix("\n") || text.hasSuffix("\r") { text.removeLast() }
                ctx.message.replyHeaders.append(text)
                return .int(1)
            },
        ]
    }
}
