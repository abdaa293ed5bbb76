#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import Synchronization

/// Turns the host part of a SIP URI (an IP literal or a name) into socket addresses, as
/// Kamailio does for a host without SRV records: A and AAAA records through the system resolver
/// (`getaddrinfo`: /etc/hosts, then DNS as nsswitch.conf says); no NAPTR/SRV. The lookup blocks
/// the calling thread, as Kamailio's resolver blocks its worker; answers (and failures) are
/// kept for a while so a hot relay path does not ask the system for every request.
///
/// IP literals ("127.0.0.1", "::1", "[::1]") are parsed, never looked up nor cached.
/// Addresses come back IPv4 first (Kamailio's default, `dns_prefer_ipv6=0`), each family in
/// the system's order, without duplicates.
///
/// Thread-safe: the cache is behind a lock that is not held during a lookup (two threads
/// missing the same name at once both look it up; the later answer stays).
public final class NameResolver: Sendable {
    /// The process-wide resolver (60 s cache, failures kept 10 s).
    public static let shared = NameResolver()

    /// Looks a name up: the addresses (any port) or why not.
    public typealias Lookup = @Sendable (String) -> Result<[SIPSocketAddress], SIPTransportError>

    /// Counters since creation (or the last `flush`).
    public struct Statistics: Sendable, Equatable, CustomStringConvertible {
        /// Calls of the lookup function (`getaddrinfo`): cache misses and expired entries.
        public var lookups: Int = 0
        /// Names answered from the cache (positive or negative).
        public var hits: Int = 0
        /// Lookups that failed.
        public var failures: Int = 0
        /// Names in the cache now (expired ones included until evicted).
        public var entries: Int = 0

        public init(lookups: Int = 0, hits: Int = 0, failures: Int = 0, entries: Int = 0) {
            self.lookups = lookups
            self.hits = hits
            self.failures = failures
            self.entries = entries
        }

        public var description: String { "lookups=\(lookups) hits=\(hits) failures=\(failures) entries=\(entries)" }
    }

    private struct Entry {
        var answer: Result<[SIPSocketAddress], SIPTransportError>
        var expires: UInt64
    }

    private struct State {
        var cache: [String: Entry] = [:]
        var stats = Statistics()
    }

    private let state = Mutex(State())
    private let ttlNanos: UInt64
    private let negativeTTLNanos: UInt64
    private let maxEntries: Int
    private let now: @Sendable () -> UInt64
    private let lookup: Lookup

    /// - Parameters:
    ///   - ttl: how long an answer is used (seconds).
    ///   - negativeTTL: how long a failure is remembered (seconds; 0 looks up again every time).
    ///   - maxEntries: cache size; when full, the entry expiring first goes.
    ///   - now: monotonic nanoseconds (tests pass a hand-driven clock).
    ///   - lookup: the name lookup (tests may count or fake it); `getaddrinfo` by default.
    public init(
        ttl: Double = 60, negativeTTL: Double = 10, maxEntries: Int = 1024,
        now: @escaping @Sendable () -> UInt64 = NameResolver.monotonicNanos,
        lookup: @escaping Lookup = NameResolver.systemLookup
    ) {
        ttlNanos = UInt64(max(0, ttl) * 1e9)
        negativeTTLNanos = UInt64(max(0, negativeTTL) * 1e9)
        self.maxEntries = max(1, maxEntries)
        self.now = now
        self.lookup = lookup
    }

    /// Every address of `host` (an IP literal, bracketed or not, or a name) with `port`:
    /// IPv4 first unless `preferIPv6`. Throws when the name cannot be resolved; the error
    /// names the host and says why ("cannot resolve \"x.invalid\": Name or service not known").
    public func resolve(
        host: String, port: Int = SIPListenAddress.defaultPort, preferIPv6: Bool = false
    ) throws(SIPTransportError) -> [SIPSocketAddress] {
        guard (0...65535).contains(port) else { throw SIPTransportError("invalid port \(port)") }
        if let literal = Self.ipLiteral(host) { return [literal.withPort(port)] }
        let addresses = try cached(Self.bare(host))
        var v4: [SIPSocketAddress] = []
        var v6: [SIPSocketAddress] = []
        v4.reserveCapacity(addresses.count)
        for a in addresses {
            if a.isIPv6 { v6.append(a.withPort(port)) } else { v4.append(a.withPort(port)) }
        }
        return preferIPv6 ? v6 + v4 : v4 + v6
    }

    /// The first address of `host` (IPv4 first unless `preferIPv6`) with `port`.
    public func resolveFirst(
        host: String, port: Int = SIPListenAddress.defaultPort, preferIPv6: Bool = false
    ) throws(SIPTransportError) -> SIPSocketAddress {
        let all = try resolve(host: host, port: port, preferIPv6: preferIPv6)
        guard let first = all.first else { throw SIPTransportError("cannot resolve \"\(host)\": no address") }
        return first
    }

    /// The first IP address of `host` in canonical text form, without brackets
    /// ("localhost" → "127.0.0.1"; an IP literal comes back canonical).
    public func resolveIP(host: String, preferIPv6: Bool = false) throws(SIPTransportError) -> String {
        try resolveFirst(host: host, port: 0, preferIPv6: preferIPv6).ip
    }

    /// Whether `host` is an IP literal (bracketed IPv6 included): those need no lookup.
    public static func isIPLiteral(_ host: String) -> Bool { ipLiteral(host) != nil }

    /// Counters and the cache size.
    public var statistics: Statistics {
        state.withLock { s in
            var st = s.stats
            st.entries = s.cache.count
            return st
        }
    }

    /// Forgets every cached answer and resets the counters.
    public func flush() {
        state.withLock { $0 = State() }
    }

    // MARK: - Cache

    private func cached(_ name: String) throws(SIPTransportError) -> [SIPSocketAddress] {
        let key = name.utf8.contains(where: { $0 >= 0x41 && $0 <= 0x5A }) ? name.lowercased() : name
        let t = now()
        let hit: Result<[SIPSocketAddress], SIPTransportError>? = state.withLock { s in
            guard let e = s.cache[key], e.expires > t else { return nil }
            s.stats.hits += 1
            return e.answer
        }
        if let hit { return try hit.get() }

        var answer = lookup(key)
        if case .success(let a) = answer, a.isEmpty {
            answer = .failure(SIPTransportError("cannot resolve \"\(key)\": no address"))
        }
        let done = now()
        state.withLock { s in
            s.stats.lookups += 1
            let ttl: UInt64
            switch answer {
            case .success: ttl = ttlNanos
            case .failure: s.stats.failures += 1; ttl = negativeTTLNanos
            }
            guard ttl > 0 else { s.cache[key] = nil; return }
            if s.cache[key] == nil, s.cache.count >= maxEntries { Self.evict(&s.cache, now: done) }
            s.cache[key] = Entry(answer: answer, expires: done &+ ttl)
        }
        return try answer.get()
    }

    /// Drops the expired entries; if none were, the one expiring first.
    private static func evict(_ cache: inout [String: Entry], now: UInt64) {
        let before = cache.count
        cache = cache.filter { $0.value.expires > now }
        if cache.count == before, let oldest = cache.min(by: { $0.value.expires < $1.value.expires }) {
            cache[oldest.key] = nil
        }
    }

    // MARK: - Literals

    /// "[::1]" → "::1"; anything else unchanged.
    private static func bare(_ host: String) -> String {
        if host.hasPrefix("["), host.hasSuffix("]") { return String(host.dropFirst().dropLast()) }
        return host
    }

    /// The address of an IP literal (port 0), or nil for a name. Only strings that could be
    /// one (a digit first, or a colon, or brackets) are parsed, so names cost no failed parse.
    private static func ipLiteral(_ host: String) -> SIPSocketAddress? {
        let text = bare(host)
        guard let first = text.utf8.first else { return nil }
        guard (first >= 0x30 && first <= 0x39) || text.utf8.contains(0x3A) else { return nil }
        guard let nio = try? SocketAddress(ipAddress: text, port: 0) else { return nil }
        return SIPSocketAddress(nio)
    }

    // MARK: - System

    /// `CLOCK_MONOTONIC` in nanoseconds.
    public static let monotonicNanos: @Sendable () -> UInt64 = {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    /// `getaddrinfo(name, AF_UNSPEC, SOCK_DGRAM)`: A and AAAA answers in the system's order,
    /// duplicates removed (port 0).
    public static let systemLookup: Lookup = { name in
        guard !name.isEmpty else { return .failure(SIPTransportError("cannot resolve an empty host name")) }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        #if canImport(Glibc)
        hints.ai_socktype = Int32(SOCK_DGRAM.rawValue)
        #else
        hints.ai_socktype = SOCK_DGRAM
        #endif
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(name, nil, &hints, &list)
        guard rc == 0 else {
            let why: String
            if rc == EAI_SYSTEM {
                why = String(cString: strerror(errno))
            } else {
                why = String(cString: gai_strerror(rc))
            }
            return .failure(SIPTransportError("cannot resolve \"\(name)\": \(why)"))
        }
        defer { freeaddrinfo(list) }
        var out: [SIPSocketAddress] = []
        var next = list
        while let ai = next {
            next = ai.pointee.ai_next
            guard let sa = ai.pointee.ai_addr else { continue }
            let address: SocketAddress
            switch ai.pointee.ai_family {
            case AF_INET:
                address = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { SocketAddress($0.pointee) }
            case AF_INET6:
                address = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { SocketAddress($0.pointee) }
            default:
                continue
            }
            let a = SIPSocketAddress(address).withPort(0)
            if !out.contains(a) { out.append(a) }
        }
        guard !out.isEmpty else { return .failure(SIPTransportError("cannot resolve \"\(name)\": no IPv4 or IPv6 address")) }
        return .success(out)
    }
}

extension SIPSocketAddress {
    /// The same IP address with another port (0...65535).
    public func withPort(_ port: Int) -> SIPSocketAddress {
        precondition((0...65535).contains(port), "invalid port \(port)")
        var nio = self.nio
        nio.port = port
        return SIPSocketAddress(nio)
    }
}
