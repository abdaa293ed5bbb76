import KSRBase
import KSRCore
import LuaBridge
import SIP
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

extension WorkerContext {
    /// Sets `$var` slot `slot`; null (unset) reads as integer 0 afterwards, as in Kamailio.
    @inline(__always)
    func setVar(_ slot: Int, _ v: PVValue) {
        if case .null = v { vars[slot] = .int(0) } else { vars[slot] = v }
    }

    /// The PV named by argument `i`: found by the Lua string's address when seen before
    /// (no allocation, no parsing), else parsed and cached.
    @inline(__always)
    func pvAccess(_ args: LuaArgs, _ i: Int32) -> PVAccess? {
        guard let bytes = args.bytes(i) else {
            logUsageError(args.L, "pv name is not a string")
            return nil
        }
        if let hit = pvCache.lookup(bytes) { return hit }
        let name = LuaStrings.string(bytes)
        guard let acc = pv(name) else { return nil }
        pvCache.insert(bytes, acc)
        return acc
    }
}

/// `KSR.pv.*` and the pseudo-variables of the core and of pv: `$var`, `$shv`, time, the
/// message fields. Module parameters `shvset` and `varset` give initial values.
struct PVModule: KEMIModule {
    let name = "pv"
    let summary = "pseudo-variables: KSR.pv.get/sets/seti/unset..., $var, $shv, $T*, message fields"

    var params: [ModuleParam] {
        [
            ModuleParam("shvset", .string, doc: "Initial $shv value: \"name=i:7\" or \"name=s:text\".") { setup, v throws(ParamError) in
                setup.sharedInit.append(try Self.parseInitial(v.text))
                return []
            },
            ModuleParam("varset", .string, doc: "Initial $var value in every worker: \"name=i:7\" or \"name=s:text\".") { setup, v throws(ParamError) in
                setup.varInit.append(try Self.parseInitial(v.text))
                return []
            },
            .notImplemented("avp_aliases", .string),
        ]
    }

    /// `name=i:7` / `name=s:text`.
    static func parseInitial(_ text: String) throws(ParamError) -> (String, PVValue) {
        guard let eq = text.firstIndex(of: "=") else { throw ParamError("expected name=i:NUMBER or name=s:TEXT") }
        let name = String(text[..<eq].trimmingSpaces())
        let rest = text[text.index(after: eq)...]
        guard !name.isEmpty else { throw ParamError("missing name in '\(text)'") }
        if rest.hasPrefix("i:") || rest.hasPrefix("I:") {
            guard let n = Int(rest.dropFirst(2)) else { throw ParamError("not an integer: '\(rest.dropFirst(2))'") }
            return (name, .int(n))
        }
        if rest.hasPrefix("s:") || rest.hasPrefix("S:") { return (name, .string(String(rest.dropFirst(2)))) }
        throw ParamError("value must start with i: or s: in '\(text)'")
    }

    var exports: [KEMIExport] {
        func getter(_ fn: String, _ doc: String, missing: KEMIValue) -> KEMIExport {
            KEMIExport("pv", fn, [("name", .str)], returns: .xval, doc: doc) { ctx, args in
                guard let acc = ctx.pvAccess(args, 1) else { return missing }
                switch acc.value(ctx) {
                case .null: return missing
                case .int(let i): return .int(i)
                case .string(let s): return .string(s)
                }
            }
        }
        return [
            getter("get", "The value of a pseudo-variable (integer or string), nil if null or invalid.", missing: .null),
            getter("gete", "Like get, but \"\" when null or invalid.", missing: .string("")),
            getter("getw", "Like get, but \"<null>\" when null or invalid.", missing: .string("<null>")),
            KEMIExport("pv", "geti", [("name", .str)], returns: .int,
                       doc: "The value as an integer: strings parsed as decimal (else 0), null gives 0.") { ctx, args in
                guard let acc = ctx.pvAccess(args, 1) else { return .int(0) }
                switch acc.value(ctx) {
                case .null: return .int(0)
                case .int(let i): return .int(i)
                case .string(let s): return .int(Int(s.trimmingSpaces()) ?? 0)
                }
            },
            KEMIExport("pv", "getvs", [("name", .str), ("default", .str)], returns: .xval,
                       doc: "The value, or the given string when null or invalid.") { ctx, args in
                let dflt = KEMIValue.string(args.string(2) ?? "")
                guard let acc = ctx.pvAccess(args, 1) else { return dflt }
                switch acc.value(ctx) {
                case .null: return dflt
                case .int(let i): return .int(i)
                case .string(let s): return .string(s)
                }
            },
            KEMIExport("pv", "getvn", [("name", .str), ("default", .int)], returns: .xval,
                       doc: "The value, or the given integer when null or invalid.") { ctx, args in
                let dflt = KEMIValue.int(Int(args.int32(2)))
                guard let acc = ctx.pvAccess(args, 1) else { return dflt }
                switch acc.value(ctx) {
                case .null: return dflt
                case .int(let i): return .int(i)
                case .string(let s): return .string(s)
                }
            },
            KEMIExport("pv", "sets", [("name", .str), ("value", .str)], returns: .bool,
                       doc: "Sets a string value; true on success (read-only variables: true, nothing changes).") { ctx, args in
                guard let acc = ctx.pvAccess(args, 1) else { return .bool(false) }
                guard let v = args.string(2) else {
                    ctx.logUsageError(args.L, "pv.sets: the value is not a string")
                    return .bool(false)
                }
                return .bool(acc.assign(ctx, .string(v)))
            },
            KEMIExport("pv", "seti", [("name", .str), ("value", .int)], returns: .bool,
                       doc: "Sets an integer value; true on success.") { ctx, args in
                guard let acc = ctx.pvAccess(args, 1) else { return .bool(false) }
                return .bool(acc.assign(ctx, .int(Int(args.int32(2)))))
            },
            KEMIExport("pv", "unset", [("name", .str)], returns: .bool, doc: "Sets the variable to null.") { ctx, args in
                guard let acc = ctx.pvAccess(args, 1) else { return .bool(false) }
                return .bool(acc.assign(ctx, .null))
            },
            KEMIExport("pv", "is_null", [("name", .str)], returns: .bool,
                       doc: "Whether the value is null, or the name is unknown or invalid.") { ctx, args in
                guard let acc = ctx.pvAccess(args, 1) else { return .bool(true) }
                if case .null = acc.value(ctx) { return .bool(true) }
                return .bool(false)
            },
        ]
    }

    var pseudoVariables: [PVClass] {
        var c: [PVClass] = [
            PVClass("var", argument: .required, doc: "Per-worker variable; never set or unset reads as integer 0.") { ctx, arg throws(ParamError) in
                let name = arg!
                let slot: Int
                if let s = ctx.varSlots[name] {
                    slot = s
                } else {
                    slot = ctx.vars.count
                    ctx.varSlots[name] = slot
                    ctx.vars.append(.int(0))
                }
                return PVAccess(varSlot: slot)
            },
            PVClass("shv", argument: .required, doc: "Variable shared by all workers; never set reads as integer 0, unset as \"\".") { ctx, arg throws(ParamError) in
                let cell = ctx.runtime.shared.cell(arg!)
                return PVAccess(get: { _ in cell.value.withLock { $0 } }, set: { _, v in
                    cell.value.withLock { if case .null = v { $0 = .string("") } else { $0 = v } }
                    return true
                })
            },
            PVClass("TS", doc: "Current Unix time (integer).") { _, _ throws(ParamError) in
                PVAccess(get: { _ in .int(WallClock.now().seconds) })
            },
            PVClass("Ts", doc: "Unix time when the current event started (integer).") { _, _ throws(ParamError) in
                PVAccess(get: { .int($0.eventTime.seconds) })
            },
            PVClass("TF", doc: "Current time as ctime text, e.g. \"Mon Nov 23 07:45:38 2026\".") { _, _ throws(ParamError) in
                PVAccess(get: { _ in .string(Self.ctime(WallClock.now().seconds)) })
            },
            PVClass("Tf", doc: "Event time as ctime text.") { _, _ throws(ParamError) in
                PVAccess(get: { .string(Self.ctime($0.eventTime.seconds)) })
            },
            PVClass("TV", argument: .required,
                    doc: "Time of day: s and u (seconds, microseconds of the event), sn and un (now), Sn (\"sec.usec\" now).") { _, arg throws(ParamError) in
                switch arg! {
                case "s": return PVAccess(get: { .int($0.eventTime.seconds) })
                case "u": return PVAccess(get: { .int($0.eventTime.micros) })
                case "sn": return PVAccess(get: { _ in .int(WallClock.now().seconds) })
                case "un": return PVAccess(get: { _ in .int(WallClock.now().micros) })
                case "Sn":
                    return PVAccess(get: { _ in
                        let t = WallClock.now()
                        let u = String(t.micros)
                        return .string("\(t.seconds).\(String(repeating: "0", count: 6 - u.count))\(u)")
                    })
                default: throw ParamError("unknown $TV(\(arg!)): use s, u, sn, un or Sn")
                }
            },
            PVClass("pp", doc: "Process id.") { _, _ throws(ParamError) in PVAccess(get: { _ in .int(Int(getpid())) }) },
            PVClass("ru", doc: "Request URI (settable); nil for a reply.") { _, _ throws(ParamError) in
                PVAccess(get: { $0.message.isReply ? .null : .string($0.message.requestURI) }, set: { c, v in
                    guard let t = v.text, !t.isEmpty else { return false }
                    c.message.requestURI = t
                    return true
                })
            },
            PVClass("du", doc: "Destination URI (settable; unset clears it).") { _, _ throws(ParamError) in
                PVAccess(get: { $0.message.destinationURI.map { .string($0) } ?? .null }, set: { c, v in
                    c.message.destinationURI = v.text.flatMap { $0.isEmpty ? nil : $0 }
                    return true
                })
            },
            PVClass("hdr", argument: .required, doc: "Body of the first header with that name (compact forms too); nil if absent.") { _, arg throws(ParamError) in
                let name = arg!
                return PVAccess(get: { c in c.message.sip.header(named: name).map { .string($0) } ?? .null })
            },
        ]
        func ro(_ name: String, _ doc: String, _ get: @escaping @Sendable (WorkerContext) -> PVValue) {
            c.append(PVClass(name, doc: doc) { _, _ throws(ParamError) in PVAccess(get: get) })
        }
        @Sendable func str(_ s: String?) -> PVValue { s.map { .string($0) } ?? .null }
        ro("rm", "Request method (CSeq method for a reply).") { .string($0.message.method) }
        // The R-URI parts are nil in a reply, as in Kamailio.
        ro("rU", "Request URI user (nil for a reply).") { $0.message.isReply ? .null : str(URIParts($0.message.requestURI).user) }
        ro("rd", "Request URI host (nil for a reply).") { $0.message.isReply ? .null : str(URIParts($0.message.requestURI).host) }
        ro("rp", "Request URI port, a string as in Kamailio (\"5060\" when the URI has none; nil for a reply).") { c in
            c.message.isReply ? .null : .string(String(URIParts(c.message.requestURI).port ?? 5060))
        }
        ro("ou", "Original request URI (nil for a reply).") { $0.message.isReply ? .null : .string($0.message.originalURI) }
        ro("fu", "From URI.") { str($0.message.fromURI) }
        ro("fU", "From URI user.") { str(URIParts($0.message.fromURI).user) }
        ro("fd", "From URI host.") { str(URIParts($0.message.fromURI).host) }
        ro("ft", "From tag.") { str($0.message.fromTag) }
        ro("tu", "To URI.") { str($0.message.toURI) }
        ro("tU", "To URI user.") { str(URIParts($0.message.toURI).user) }
        ro("td", "To URI host.") { str(URIParts($0.message.toURI).host) }
        ro("tt", "To tag.") { str($0.message.toTag) }
        ro("ci", "Call-ID.") { str($0.message.callID) }
        ro("cs", "CSeq number, a string as in Kamailio (\"1\").") { c in c.message.sip.cseq.map { .string(String($0.number)) } ?? .null }
        ro("si", "Source IP address.") { .string($0.message.sourceIP) }
        ro("sp", "Source port (an integer).") { .int($0.message.sourcePort) }
        // The faked message of timers and tasks arrived on no socket: nil, as in Kamailio.
        ro("Ri", "IP address of the socket the message arrived on (nil for the faked message).") { c in
            c.message.isFaked ? .null : .string(c.message.localIP)
        }
        ro("Rp", "Port of the socket the message arrived on, an integer (nil for the faked message).") { c in
            c.message.isFaked ? .null : .int(c.message.localPort)
        }
        ro("pr", "Transport protocol (udp, tcp).") { .string($0.message.proto) }
        ro("ua", "User-Agent header body.") { str($0.message.sip.header(.userAgent)) }
        ro("rs", "Reply status code, an integer (nil for a request).") { c in c.message.sip.statusCode.map { .int($0) } ?? .null }
        ro("rr", "Reply reason phrase (replies only).") { str($0.message.sip.reasonPhrase) }
        ro("mb", "The whole message.") { .string($0.message.raw) }
        ro("ml", "Message length in bytes (an integer).") { .int($0.message.length) }
        ro("rb", "Message body (\"\" when there is none).") { .string(String(decoding: $0.message.sip.body, as: UTF8.self)) }
        ro("cT", "Content-Type header body; nil if absent.") { str($0.message.sip.header(named: "Content-Type")) }
        ro("T_reply_code", "An integer: in a reply route the reply's code, in a failure route the code of the best reply, after t_reply its code, 0 elsewhere.") { c in
            .int(c.message.sip.statusCode ?? c.message.failureCode ?? c.message.transactionReplyCode ?? 0)
        }
        return c
    }

    static func ctime(_ seconds: Int) -> String {
        var t = time_t(seconds)
        var tmv = tm()
        localtime_r(&t, &tmv)
        var buf = [CChar](repeating: 0, count: 64)
        let n = strftime(&buf, 64, "%a %b %e %H:%M:%S %Y", &tmv)
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
