/// A header line to write: `name: value`. CR and LF in either are written as spaces.
public struct SIPHeader: Sendable, Hashable, CustomStringConvertible {
    public var name: String
    public var value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }

    public var description: String { name + ": " + value }
}

/// Builds replies to requests the way Kamailio's `sl` module does (`build_res_buf_from_sip_req`).
public enum SIPResponseBuilder {
    /// A stateless reply to `request`:
    ///
    /// * `SIP/2.0 <status> <reason>`;
    /// * every Via, From, To, Call-ID and CSeq line copied in the request's order
    ///   (Record-Route too for 180...299), with the top Via fixed as Kamailio does:
    ///   an `rport` parameter (with or without value) becomes `rport=<source port>`, and
    ///   `received=<source ip>` is added when the Via host is not the source address, or the Via
    ///   has `rport`, or already has `received` (which is replaced). The new parameters go where
    ///   `rport` was, else right after `branch`, else at the end of the top Via value;
    /// * `;tag=<toTag>` appended to the To when it has no tag, for every status but 100;
    /// * `extraHeaders` (whole lines, without CRLF; several lines in one string are split),
    ///   then `Server: <server>` when given, then `Content-Length`, the empty line and `body`.
    ///
    /// Never fails: headers that do not parse are copied as they are.
    public static func reply(to request: SIPMessage, status: Int, reason: String,
                             source: (ip: String, port: Int), toTag: String,
                             extraHeaders: [String] = [], body: [UInt8] = [],
                             server: String? = nil) -> [UInt8] {
        var out: [UInt8] = []
        appendReply(into: &out, to: request, status: status, reason: reason, source: source,
                    toTag: toTag, extraHeaders: extraHeaders, body: body, server: server)
        return out
    }

    /// `reply(to:...)` appending to a caller-owned buffer (reuse it to avoid an allocation).
    public static func appendReply(into out: inout [UInt8], to request: SIPMessage, status: Int,
                                   reason: String, source: (ip: String, port: Int), toTag: String,
                                   extraHeaders: [String] = [], body: [UInt8] = [],
                                   server: String? = nil) {
        var extraCount = 0
        for e in extraHeaders { extraCount += e.utf8.count + 2 }
        out.reserveCapacity(out.count + request.bodyRange.lowerBound + extraCount + body.count
                            + (server?.utf8.count ?? 0) + 160)
        out.append("SIP/2.0 ")
        if status >= 0, status < 1000 {
            out.append(ASCII.zero &+ UInt8(status / 100))
            out.append(ASCII.zero &+ UInt8(status / 10 % 10))
            out.append(ASCII.zero &+ UInt8(status % 10))
        } else {
            out.appendDecimal(status)
        }
        out.append(ASCII.space)
        out.appendSingleLine(reason)
        out.append("\r\n")

        var topVia = true
        var firstTo = true
        for f in request.fields {
            switch f.kind {
            case .via:
                if topVia {
                    topVia = false
                    writeTopVia(&out, request, f, source)
                } else {
                    copyField(&out, request, f)
                }
            case .recordRoute:
                if status >= 180, status < 300 { copyField(&out, request, f) }
            case .to:
                if firstTo, status != 100, !toTag.isEmpty {
                    firstTo = false
                    writeTo(&out, request, f, toTag)
                } else {
                    firstTo = false
                    copyField(&out, request, f)
                }
            case .from, .callID, .cseq:
                copyField(&out, request, f)
            default:
                break
            }
        }
        for e in extraHeaders { appendLines(&out, e) }
        if let server {
            out.append("Server: ")
            out.appendSingleLine(server)
            out.append("\r\n")
        }
        out.append("Content-Length: ")
        out.appendDecimal(body.count)
        out.append("\r\n\r\n")
        out.append(contentsOf: body)
    }

    /// A response from scratch (for relaying or tests): status line, headers, correct
    /// Content-Length (see `SIPRequestBuilder.request` for its placement), body.
    public static func response(status: Int, reason: String, headers: [SIPHeader],
                                body: [UInt8] = []) -> [UInt8] {
        var out: [UInt8] = []
        out.append("SIP/2.0 ")
        out.appendDecimal(status)
        out.append(ASCII.space)
        out.appendSingleLine(reason)
        out.append("\r\n")
        appendHeadersAndBody(&out, headers, body)
        return out
    }

    // MARK: helpers

    /// Writes the field as received (name as written), unfolded when folded.
    static func copyField(_ out: inout [UInt8], _ m: SIPMessage, _ f: SIPHeaderField) {
        m.bytes.withUnsafeBufferPointer { p in
            if !f.isFolded {
                out.append(p, Int(f.nameStart)..<Int(f.valueEnd))
            } else {
                out.append(p, f.nameRange)
                out.append(": ")
                m.withValue(f) { v, r in out.append(v, r) }
            }
        }
        out.append("\r\n")
    }

    /// The name as written and what separates it from the value (`Via: `), or `Name: ` for
    /// folded fields.
    private static func writePrefix(_ out: inout [UInt8], _ m: SIPMessage, _ f: SIPHeaderField) {
        m.bytes.withUnsafeBufferPointer { p in
            if !f.isFolded {
                out.append(p, Int(f.nameStart)..<Int(f.valueStart))
            } else {
                out.append(p, f.nameRange)
                out.append(": ")
            }
        }
    }

    private static func writeTo(_ out: inout [UInt8], _ m: SIPMessage, _ f: SIPHeaderField, _ tag: String) {
        writePrefix(&out, m, f)
        m.withValue(f) { v, r in
            out.append(v, r)
            let hasTag = scanNameAddr(v, r.lowerBound, r.upperBound)?.tag != nil
            if !hasTag {
                out.append(";tag=")
                out.appendSingleLine(tag)
            }
        }
        out.append("\r\n")
    }

    private static func writeTopVia(_ out: inout [UInt8], _ m: SIPMessage, _ f: SIPHeaderField,
                                    _ source: (ip: String, port: Int)) {
        writePrefix(&out, m, f)
        m.withValue(f) { v, r in
            guard let via = scanVia(v, r.lowerBound, r.upperBound) else {
                out.append(v, r)
                return
            }
            let needReceived = via.received != nil || via.rport != nil
                || !sameAddress(v, via.host, source.ip)
            @inline(__always) func writeAdded(rport: Bool) {
                if rport {
                    out.append(";rport=")
                    out.appendDecimal(source.port)
                }
                if needReceived {
                    out.append(";received=")
                    withUTF8NoThrow(source.ip) { s in
                        var a = 0, b = s.count
                        if b - a >= 2, s[a] == ASCII.lbracket, s[b - 1] == ASCII.rbracket {
                            a += 1
                            b -= 1
                        }
                        for k in a..<b {
                            let c = s[k]
                            out.append(c == ASCII.cr || c == ASCII.lf ? ASCII.space : c)
                        }
                    }
                }
            }
            var cursor = r.lowerBound
            if let rport = via.rport {
                // replace the old rport with rport=PORT[;received=IP]; drop an old received
                if let old = via.received, old.start < rport.start {
                    out.append(v, cursor..<old.start)
                    cursor = old.end
                }
                out.append(v, cursor..<rport.start)
                writeAdded(rport: true)
                cursor = rport.end
                if let old = via.received, old.start > rport.start {
                    out.append(v, cursor..<old.start)
                    cursor = old.end
                }
            } else if needReceived {
                let anchor = via.branch?.end ?? via.end
                if let old = via.received, old.start < anchor {
                    out.append(v, cursor..<old.start)
                    cursor = old.end
                }
                out.append(v, cursor..<anchor)
                writeAdded(rport: false)
                cursor = anchor
                if let old = via.received, old.start >= anchor {
                    out.append(v, cursor..<old.start)
                    cursor = old.end
                }
            }
            out.append(v, cursor..<r.upperBound)
        }
        out.append("\r\n")
    }

    /// Whether the Via host (`p[host]`) names the source address: numerically when both are IP
    /// addresses, else by case-insensitive text.
    static func sameAddress(_ p: Bytes, _ host: Range<Int>, _ ip: String) -> Bool {
        withUTF8NoThrow(ip) { s in
            if let a = IPAddressValue.parse(p, host.lowerBound, host.upperBound),
               let b = IPAddressValue.parse(s, 0, s.count) {
                return a == b
            }
            return equalsIgnoringCase(p, host, s, 0..<s.count)
        }
    }

    static func appendLines(_ out: inout [UInt8], _ s: String) {
        withUTF8NoThrow(s) { p in
            var i = 0
            while i < p.count {
                var j = i
                while j < p.count, p[j] != ASCII.cr, p[j] != ASCII.lf { j += 1 }
                if j > i {
                    out.append(p, i..<j)
                    out.append("\r\n")
                }
                i = j + 1
            }
        }
    }

    static func appendHeadersAndBody(_ out: inout [UInt8], _ headers: [SIPHeader], _ body: [UInt8]) {
        var wroteLength = false
        for h in headers { appendHeaderLine(&out, h, bodyCount: body.count, wroteLength: &wroteLength) }
        finishHeaders(&out, bodyCount: body.count, wroteLength: wroteLength)
        out.append(contentsOf: body)
    }

    /// Writes `h` as a header line; a Content-Length gets the real body length and is written
    /// once. Shared by the builders and `SIPMessageEditor`.
    static func appendHeaderLine(_ out: inout [UInt8], _ h: SIPHeader, bodyCount: Int, wroteLength: inout Bool) {
        if SIPHeaderKind(name: h.name) == .contentLength {
            if wroteLength { return }
            wroteLength = true
            out.appendSingleLine(h.name)
            out.append(": ")
            out.appendDecimal(bodyCount)
        } else {
            out.appendSingleLine(h.name)
            out.append(": ")
            out.appendSingleLine(h.value)
        }
        out.append("\r\n")
    }

    /// Adds a Content-Length when none was written, then the empty line.
    static func finishHeaders(_ out: inout [UInt8], bodyCount: Int, wroteLength: Bool) {
        if !wroteLength {
            out.append("Content-Length: ")
            out.appendDecimal(bodyCount)
            out.append("\r\n")
        }
        out.append("\r\n")
    }
}

/// Builds requests.
public enum SIPRequestBuilder {
    /// `METHOD uri SIP/2.0`, the headers in the given order, then the body.
    ///
    /// Content-Length is always correct: a `Content-Length` (or `l`) header in `headers` keeps
    /// its position and gets `body.count` as value (further ones are dropped); without one,
    /// `Content-Length` is added after the other headers. Kamailio's DMQ order is
    /// Via, To, From, CSeq, Call-ID, Content-Length, User-Agent, Max-Forwards, Content-Type.
    public static func request(method: SIPMethod, requestURI: String, headers: [SIPHeader],
                               body: [UInt8] = []) -> [UInt8] {
        var out: [UInt8] = []
        var size = requestURI.utf8.count + body.count + 48
        for h in headers { size += h.name.utf8.count + h.value.utf8.count + 4 }
        out.reserveCapacity(size)
        out.appendSingleLine(method.name)
        out.append(ASCII.space)
        out.appendSingleLine(requestURI)
        out.append(" SIP/2.0\r\n")
        SIPResponseBuilder.appendHeadersAndBody(&out, headers, body)
        return out
    }
}
