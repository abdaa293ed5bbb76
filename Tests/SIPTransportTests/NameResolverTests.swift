import SIPTransport
import Synchronization
import Testing

/// A clock moved by hand, and a fake lookup that counts its calls.
private final class FakeSystem: Sendable {
    let nanos = Atomic<UInt64>(1_000_000_000)
    let calls = Mutex<[String]>([])
    let answers: [String: [String]]

    init(_ answers: [String: [String]]) { self.answers = answers }

    func advance(seconds: Double) { nanos.add(UInt64(seconds * 1e9), ordering: .relaxed) }

    func resolver(ttl: Double = 60, negativeTTL: Double = 10, maxEntries: Int = 1024) -> NameResolver {
        NameResolver(
            ttl: ttl, negativeTTL: negativeTTL, maxEntries: maxEntries,
            now: { self.nanos.load(ordering: .relaxed) },
            lookup: { name in
                self.calls.withLock { $0.append(name) }
                guard let ips = self.answers[name] else {
                    return .failure(SIPTransportError("cannot resolve \"\(name)\": fake NXDOMAIN"))
                }
                return .success(ips.map { try! SIPSocketAddress(ip: $0, port: 0) })
            })
    }
}

@Suite("name resolution for relaying")
struct NameResolverTests {
    @Test(arguments: [
        ("127.0.0.1", "127.0.0.1", false),
        ("10.1.2.3", "10.1.2.3", false),
        ("::1", "::1", true),
        ("[::1]", "::1", true),
        ("[0:0:0:0:0:0:0:1]", "::1", true),
        ("fe80::1", "fe80::1", true),
    ])
    func ipLiteralsPassThroughWithoutLookup(host: String, ip: String, v6: Bool) throws {
        let fake = FakeSystem([:])
        let r = fake.resolver()
        let all = try r.resolve(host: host, port: 5070)
        #expect(all.count == 1)
        #expect(all.first?.ip == ip)
        #expect(all.first?.port == 5070)
        #expect(all.first?.isIPv6 == v6)
        #expect(try r.resolveIP(host: host) == ip)
        #expect(NameResolver.isIPLiteral(host))
        #expect(fake.calls.withLock { $0 }.isEmpty)
        #expect(r.statistics == NameResolver.Statistics())
    }

    @Test func namesAreNotLiterals() {
        for name in ["localhost", "example.com", "3com.com", "1.2.3.4.example", ""] {
            #expect(!NameResolver.isIPLiteral(name), "\(name)")
        }
    }

    @Test func localhostResolvesThroughTheSystem() throws {
        let r = NameResolver()
        let all = try r.resolve(host: "localhost")
        #expect(all.contains { $0.ip == "127.0.0.1" || $0.ip == "::1" }, "\(all)")
        #expect(all.allSatisfy { $0.port == 5060 })
        // IPv4 first (when /etc/hosts has both, ::1 comes after 127.0.0.1).
        if all.contains(where: { !$0.isIPv6 }) { #expect(all.first?.isIPv6 == false) }
        #expect(try r.resolveFirst(host: "LocalHost", port: 5080).port == 5080)
        let ip = try r.resolveIP(host: "localhost")
        #expect(ip == "127.0.0.1" || ip == "::1")
        let s = r.statistics
        #expect(s.lookups == 1)  // "LocalHost" is the same cache entry
        #expect(s.hits == 2)
        #expect(s.failures == 0)
        #expect(s.entries == 1)
    }

    @Test func anInvalidNameFailsWithItsNameInTheError() {
        let r = NameResolver()
        do {
            let got = try r.resolve(host: "no-such-host.invalid")
            Issue.record("resolved to \(got)")
        } catch {
            #expect(error.message.contains("no-such-host.invalid"), "\(error)")
            #expect(error.message.hasPrefix("cannot resolve"), "\(error)")
        }
        #expect(throws: SIPTransportError.self) { try r.resolveIP(host: "no-such-host.invalid") }
        let s = r.statistics
        #expect(s.lookups == 1)  // the failure is remembered
        #expect(s.hits == 1)
        #expect(s.failures == 1)
    }

    @Test func cacheHitsUntilTheTTLRunsOut() throws {
        let fake = FakeSystem(["sip.example": ["192.0.2.1", "2001:db8::1", "192.0.2.2"]])
        let r = fake.resolver(ttl: 60)
        for _ in 0..<100 {
            let all = try r.resolve(host: "sip.example", port: 5062)
            #expect(all.map(\.description) == ["192.0.2.1:5062", "192.0.2.2:5062", "[2001:db8::1]:5062"])
        }
        #expect(r.statistics == NameResolver.Statistics(lookups: 1, hits: 99, failures: 0, entries: 1))
        #expect(try r.resolve(host: "sip.example", preferIPv6: true).first?.description == "[2001:db8::1]:5060")
        fake.advance(seconds: 59)
        _ = try r.resolve(host: "SIP.Example")
        #expect(r.statistics.lookups == 1)
        fake.advance(seconds: 2)
        _ = try r.resolve(host: "sip.example")
        #expect(r.statistics.lookups == 2)
        #expect(r.statistics.hits == 101)
        #expect(fake.calls.withLock { $0 } == ["sip.example", "sip.example"])
        r.flush()
        #expect(r.statistics == NameResolver.Statistics())
        _ = try r.resolve(host: "sip.example")
        #expect(r.statistics.lookups == 1)
    }

    @Test func failuresAreRememberedForTheNegativeTTL() {
        let fake = FakeSystem([:])
        let r = fake.resolver(negativeTTL: 5)
        for _ in 0..<3 { #expect(throws: SIPTransportError.self) { try r.resolve(host: "gone.example") } }
        #expect(r.statistics == NameResolver.Statistics(lookups: 1, hits: 2, failures: 1, entries: 1))
        fake.advance(seconds: 6)
        #expect(throws: SIPTransportError.self) { try r.resolve(host: "gone.example") }
        #expect(r.statistics.lookups == 2)

        let uncached = fake.resolver(negativeTTL: 0)
        for _ in 0..<3 { #expect(throws: SIPTransportError.self) { try uncached.resolve(host: "gone.example") } }
        #expect(uncached.statistics == NameResolver.Statistics(lookups: 3, hits: 0, failures: 3, entries: 0))
    }

    @Test func theCacheStaysSmall() throws {
        let fake = FakeSystem(["a.example": ["192.0.2.1"], "b.example": ["192.0.2.2"], "c.example": ["192.0.2.3"]])
        let r = fake.resolver(maxEntries: 2)
        _ = try r.resolve(host: "a.example")
        fake.advance(seconds: 1)
        _ = try r.resolve(host: "b.example")
        _ = try r.resolve(host: "c.example")  // evicts a (expiring first)
        #expect(r.statistics.entries == 2)
        _ = try r.resolve(host: "b.example")
        _ = try r.resolve(host: "c.example")
        #expect(r.statistics.lookups == 3)
        _ = try r.resolve(host: "a.example")
        #expect(r.statistics.lookups == 4)
    }

    @Test func anEmptyAnswerAndABadPortAreErrors() {
        let fake = FakeSystem(["empty.example": []])
        let r = fake.resolver()
        #expect(throws: SIPTransportError.self) { try r.resolve(host: "empty.example") }
        #expect(throws: SIPTransportError.self) { try r.resolve(host: "127.0.0.1", port: 70000) }
        #expect(throws: SIPTransportError.self) { try NameResolver().resolve(host: "") }
    }

    @Test func concurrentUseFromManyThreads() async throws {
        let r = NameResolver()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<8 {
                group.addTask {
                    try await blocking {
                        for _ in 0..<200 {
                            _ = try r.resolve(host: i % 2 == 0 ? "localhost" : "127.0.0.1")
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        let s = r.statistics
        #expect(s.lookups >= 1 && s.lookups <= 4)
        #expect(s.lookups + s.hits == 800)
    }
}
