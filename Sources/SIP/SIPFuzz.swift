/// A fuzzing entry point: feeds arbitrary bytes through every parser, accessor and builder,
/// and checks invariants with `precondition` (a broken invariant is a crash the fuzzer
/// reports, like any other). The unit tests call it on deterministic mutants of the fixtures.
///
/// To run it under libFuzzer + AddressSanitizer (shipped with the Linux toolchain), compile the
/// SIP sources together with a one-function driver into a single module (no package changes;
/// `KSRBase` is not needed):
///
/// ```sh
/// mkdir -p /tmp/sipfuzz/corpus && cd /tmp/sipfuzz
/// cat > main.swift <<'SWIFT'
/// @_cdecl("LLVMFuzzerTestOneInput")
/// public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
///     SIPFuzz.run(Array(UnsafeBufferPointer(start: data, count: size)))
///     return 0
/// }
/// SWIFT
/// swiftc -O -parse-as-library -sanitize=fuzzer,address -module-name SIPFuzzer \
///     /path/to/KSRHost/Sources/SIP/*.swift main.swift -o fuzz
/// cp /path/to/KSRHost/Tests/Fixtures/dmq/*.sip corpus/
/// ./fuzz corpus -max_len=70000 -timeout=2 -max_total_time=600
/// ```
///
/// (ld.gold prints "Cannot export local symbol '__asan_...'" warnings; they are harmless.)
/// A crash leaves `crash-<sha1>` in the current directory; replay it with `./fuzz crash-<sha1>`
/// and turn it into a unit test.
public enum SIPFuzz {
    /// Exercises everything on `data`. Never throws; traps only when an invariant is broken.
    public static func run(_ data: [UInt8]) {
        var datagram: SIPMessage? = nil
        do {
            let m = try SIPMessage(data)
            datagram = m
            exercise(m)
        } catch {
            _ = error.description
            if let partial = error.partialMessage {
                precondition(partial.isRequest && partial.canFormReply)
                exercise(partial)
                let reply = SIPResponseBuilder.reply(
                    to: partial, status: 400, reason: "Bad Request",
                    source: ("192.0.2.7", 5060), toTag: "fz")
                checkReply(reply, to: partial)
            }
        }
        // Stream framing accepts a subset of what datagram framing accepts, identically.
        if let s = try? SIPMessage(data, framing: .stream) {
            guard let d = datagram else { preconditionFailure("stream accepts what datagram rejects") }
            precondition(s.fields == d.fields && s.bodyRange == d.bodyRange && s.method == d.method
                         && s.statusCode == d.statusCode)
        }

        // Stream framing, fed in three uneven pieces.
        var framer = SIPStreamFramer(maxMessageSize: 65_535)
        let cut1 = data.count / 3, cut2 = data.count - data.count / 5
        for piece in [data[..<cut1], data[cut1..<cut2], data[cut2...]] {
            framer.append(contentsOf: piece)
            var produced = 0
            while produced <= data.count {
                guard let msg = try? framer.next() else { break }
                produced += 1
                precondition(!msg.isEmpty && msg.count <= data.count)
                _ = try? SIPMessage(msg, framing: .stream)
            }
        }

        // The value parsers on the raw text.
        let text = String(decoding: data.prefix(2048), as: UTF8.self)
        if let u = try? SIPURI(parsing: text) {
            precondition(u.description == text)
            touch(u)
        }
        if let na = try? SIPNameAddr(parsing: text) {
            touch(na)
            let again = try? SIPNameAddr(parsing: na.description)
            precondition(again?.uri == na.uri && again?.parameters == na.parameters,
                         "name-addr does not round-trip: \(text)")
        }
        if let v = try? SIPVia(parsing: text) { touch(v) }
        _ = SIPMethod(text).name
        _ = SIPHeaderKind(name: text).canonicalName
    }

    static func exercise(_ m: SIPMessage) {
        precondition(m.bodyRange.upperBound <= m.bytes.count)
        precondition(m.contentLength == nil || m.contentLength == m.bodyRange.count)
        _ = m.startLine
        _ = m.requestURI
        if let u = m.parsedRequestURI { touch(u) }
        _ = m.reasonPhrase
        _ = m.version
        _ = m.bodyText
        var seenKinds = Set<SIPHeaderKind>()
        for f in m.fields {
            _ = m.value(of: f)
            if f.isFolded { _ = m.valueBytes(of: f) }
            // look each known header up once, and unknown ones by name
            guard f.kind == .other || seenKinds.insert(f.kind).inserted else { continue }
            let name = m.name(of: f)
            let all = m.headers(named: name)
            precondition(!all.isEmpty || f.kind.isList || m.value(of: f).isEmpty)
            _ = m.header(named: name)
        }
        if let v = m.via { touch(v) }
        for v in m.vias { touch(v) }
        if let f = m.from { touch(f) }
        if let t = m.to { touch(t) }
        for na in m.nameAddrs(.contact) { touch(na) }
        for na in m.nameAddrs(.route) { touch(na) }
        _ = m.callID
        _ = m.cseq?.description
        _ = m.maxForwards
        _ = m.contentType
        let canReply = m.canFormReply
        if canReply {
            precondition(m.via != nil && m.from != nil && m.to != nil && m.callID != nil && m.cseq != nil,
                         "canFormReply but an accessor fails")
        }
        if m.isRequest {
            for (status, ip) in [(100, "192.0.2.7"), (200, "[2001:db8::9]")] {
                let reply = SIPResponseBuilder.reply(
                    to: m, status: status, reason: "Reason", source: (ip, 5070), toTag: "fz1",
                    extraHeaders: ["X-Fuzz: 1"], body: [65, 66], server: "fuzz")
                if canReply { checkReply(reply, to: m) }
            }
        }
        var editor = SIPMessageEditor(m)
        _ = editor.decrementMaxForwards()
        editor.prependHeader("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKfuzz")
        editor.removeHeaders(named: "Route")
        editor.removeTopVia()
        editor.setHeader("X-Fuzz", "1")
        if m.isRequest { editor.setRequestURI("sip:fuzz@192.0.2.2") }
        let edited = editor.serialize()
        if let again = try? SIPMessage(edited) {
            precondition(again.body.count == m.body.count, "editor changed the body length")
        }
    }

    static func checkReply(_ reply: [UInt8], to request: SIPMessage) {
        guard let r = try? SIPMessage(reply, framing: .stream) else {
            preconditionFailure("reply does not parse: \(String(decoding: reply, as: UTF8.self))")
        }
        precondition(r.isResponse)
        precondition(r.callID == request.callID, "Call-ID changed")
        precondition(r.cseq == request.cseq, "CSeq changed")
        precondition(r.via?.branch == request.via?.branch, "branch changed")
        precondition(r.from?.tag == request.from?.tag, "From tag changed")
    }

    static func touch(_ u: SIPURI) {
        _ = (u.scheme, u.user, u.password, u.host, u.port, u.hostPort, u.parameters, u.headers)
        _ = u.schemeSpecificPart
        _ = SIPURI.percentDecoded(u.user ?? "")
    }

    static func touch(_ na: SIPNameAddr) {
        touch(na.uri)
        _ = (na.displayName, na.tag, na.description)
        for p in na.parameters { _ = p.unquotedValue }
    }

    static func touch(_ v: SIPVia) {
        _ = (v.transport, v.host, v.port, v.branch, v.received, v.rport, v.hasRPort, v.description)
    }
}
