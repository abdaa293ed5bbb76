import SIP

/// Stateful-proxy message helpers for `t_relay`: the forwarded request, the response going
/// back upstream, and the choice of the best final response (RFC 3261 §16.6, §16.7).
public enum SIPProxy {
    /// The Via this proxy adds: the outgoing socket's transport, host and port.
    public struct OutgoingVia: Sendable, Hashable {
        /// As in a Via: `UDP`, `TCP`, `TLS`, ...
        public var transport: String
        /// IP address (IPv6 with or without brackets) or host name.
        public var host: String
        public var port: Int?
        /// Add an empty `rport` parameter (RFC 3581).
        public var rport: Bool

        public init(transport: String = "UDP", host: String, port: Int? = nil, rport: Bool = true) {
            self.transport = transport
            self.host = host
            self.port = port
            self.rport = rport
        }

        /// `SIP/2.0/UDP host:port;branch=...;rport`.
        public func value(branch: String) -> String {
            var h = host
            if h.utf8.contains(UInt8(ascii: ":")), !h.hasPrefix("[") { h = "[" + h + "]" }
            var s = "SIP/2.0/" + transport.uppercased() + " " + h
            if let port { s += ":" + String(port) }
            s += ";branch=" + branch
            if rport { s += ";rport" }
            return s
        }
    }

    /// The forwarded request and what went into it.
    public struct ForwardedRequest: Sendable {
        /// Ready to send.
        public let bytes: [UInt8]
        /// The same, parsed (to start a client transaction with).
        public let message: SIPMessage
        /// The branch of the new top Via.
        public let branch: String
        /// Max-Forwards in the forwarded request.
        public let maxForwards: Int
    }

    public enum ForwardResult: Sendable {
        case forward(ForwardedRequest)
        /// Max-Forwards is 0: reply 483 Too Many Hops (RFC 3261 §16.3 step 2); do not forward.
        case tooManyHops
        /// Max-Forwards is not a number: reply 400 (or 483, as Kamailio's maxfwd does).
        case invalidMaxForwards
        /// The result did not parse (cannot happen for a request that parsed, but never traps).
        case malformed(String)
    }

    /// Builds the request to forward from a received one (RFC 3261 §16.6):
    ///
    /// * Max-Forwards decremented (added as `defaultMaxForwards` when absent); 0 → `.tooManyHops`;
    /// * with `received`: the received top Via gets `received=<ip>` when its host is not that
    ///   address (or it asks for `rport`), and `rport=<port>` when it has `rport` (RFC 3581) —
    ///   that one Via value is rewritten, everything else stays;
    /// * a new top Via (`via` with `branch`);
    /// * the Request-URI replaced when `requestURI` is given;
    /// * every other byte identical (Content-Length kept correct).
    public static func forwardRequest(_ request: SIPMessage, via: OutgoingVia, branch: String,
                                      requestURI: String? = nil,
                                      received: (ip: String, port: Int)? = nil,
                                      defaultMaxForwards: Int = 70) -> ForwardResult {
        var editor = SIPMessageEditor(request)
        let mf: Int
        switch editor.decrementMaxForwards(default: defaultMaxForwards) {
        case .decremented(let v), .added(let v): mf = v
        case .exhausted: return .tooManyHops
        case .invalid: return .invalidMaxForwards
        }
        if let received, let top = request.via, let fixed = receivedFix(top, received) {
            editor.removeTopVia()
            editor.prependHeader("Via", fixed.description)
        }
        editor.prependHeader("Via", via.value(branch: branch))
        if let requestURI { editor.setRequestURI(requestURI) }
        let bytes = editor.serialize()
        do {
            let m = try SIPMessage(bytes)
            return .forward(ForwardedRequest(bytes: bytes, message: m, branch: branch, maxForwards: mf))
        } catch {
            return .malformed(error.description)
        }
    }

    /// The received Via with `received`/`rport` set, or nil when it needs no change.
    static func receivedFix(_ via: SIPVia, _ source: (ip: String, port: Int)) -> SIPVia? {
        var v = via
        let bare = { (s: String) -> String in
            var t = s.lowercased()
            if t.hasPrefix("["), t.hasSuffix("]") { t = String(t.dropFirst().dropLast()) }
            return t
        }
        let needReceived = via.hasRPort || via.received != nil || bare(via.host) != bare(source.ip)
        guard needReceived else { return nil }
        var params: [SIPParameter] = []
        var placed = false
        for p in v.parameters {
            let name = p.name.lowercased()
            if name == "received" { continue }
            if name == "rport" {
                params.append(SIPParameter("rport", String(source.port)))
                if needReceived { params.append(SIPParameter("received", bare(source.ip))) }
                placed = true
                continue
            }
            params.append(p)
        }
        if !placed, needReceived { params.append(SIPParameter("received", bare(source.ip))) }
        v.parameters = params
        return v
    }

    /// A response from a client transaction going upstream: the top Via (ours) removed, all
    /// else byte-identical. Nil when no Via would be left (the response was for this proxy).
    public static func forwardResponse(_ response: SIPMessage) -> [UInt8]? {
        guard response.vias.count >= 2 else { return nil }
        var editor = SIPMessageEditor(response)
        editor.removeTopVia()
        return editor.serialize()
    }

    /// The index of the best final response among `responses` (RFC 3261 §16.7 step 6): a 6xx
    /// when there is one, else one of the lowest class; among equals received responses
    /// before synthesized ones (timeouts last), then the earliest. Provisional responses do
    /// not count; 2xx (class 2) wins over everything. Nil when there is no final response.
    /// (When a 503 is chosen the proxy should send 500 instead — the caller's business.)
    public static func bestResponse(_ responses: [(response: SIPMessage, origin: ResponseOrigin)]) -> Int? {
        func rank(_ r: (response: SIPMessage, origin: ResponseOrigin)) -> (Int, Int)? {
            guard let s = r.response.statusCode, s >= 200 else { return nil }
            let cls = s / 100
            let classRank = cls == 2 ? 0 : cls == 6 ? 1 : cls
            let originRank = switch r.origin {
            case .network: 0
            case .transportError: 1
            case .timeout: 2
            }
            return (classRank, originRank)
        }
        var best: (index: Int, rank: (Int, Int))? = nil
        for (k, r) in responses.enumerated() {
            guard let rk = rank(r) else { continue }
            if let b = best, !(rk < b.rank) { continue }
            best = (k, rk)
        }
        return best?.index
    }
}
