import DMQ
import KSRTestFixtures
import Testing

@Suite("Random bodies")
struct FuzzTests {
    static let seeds: [String] = [
        "sip:127.0.0.2:5092;status=active\r\nsip:127.0.0.1:5091;status=active\r\n",
        "sip:127.0.0.3:5093;status=disabled\r\nsip:[2001:db8::3]:5060;transport=tcp;status=not_active\r\n",
        "sip:notification_peer@127.0.0.4:5094;status=pending\nsip:127.0.0.5;foo=bar;status=timeout\n",
        "sip:localhost:5098;status=active\r\nsip:127.0.0.55:;status=active\r\n\r\n",
    ]
    static let tokens: [String] = [
        "sip:", "sips:", ";status=", "active", "disabled", "not_active", ":", ";", "@", "[", "]", "::1",
        "\r\n", "\n", "\r", " ", "\t", "\0", ";transport=", "tcp", "ws", "=", "?", "%", "65535", "0",
        "99999999999", "127.0.0.1", "5091", "localhost", "\u{FF}", "é",
    ]

    /// 10,000 random and mutated bodies: no crash, the local entry stays, the table stays bounded
    /// and every reply parses back without errors.
    @Test func garbageNeverBreaksTheTable() {
        var rng = SeededRandom(seed: 0xD3C0_FFEE)
        let m = membership(node1, { $0.maxNodes = 48 }) { $0 == "localhost" ? "127.0.0.1" : nil }
        var maxSeen = 0
        for round in 0..<10_000 {
            let body = Self.body(&rng)
            let mf: Int? = Bool.random(using: &rng) ? nil : Int.random(in: -3...300, using: &rng)
            let sender: DMQNodeAddress? = switch Int.random(in: 0..<3, using: &rng) {
            case 0: nil
            case 1: node1
            default: m.peers().randomElement(using: &rng) ?? node2
            }
            let r = m.receivedNotification(body: body, maxForwards: mf, sender: sender)
            let reply = DMQNodeList.parse(Array(r.reply.utf8), maxLines: 1_000)
            #expect(reply.errors.isEmpty)
            #expect(reply.lines.first == DMQNodeList.Line(address: node1, status: .active))
            #expect(r.rebroadcast.allSatisfy { $0.maxForwards >= 1 && $0.target != node1 })
            if round % 7 == 0, let p = m.peers().randomElement(using: &rng) {
                _ = m.replyReceived(from: p, status: [200, 408, 404][round % 3], body: body)
            }
            if round % 97 == 0, let p = m.peers().randomElement(using: &rng) { m.remove(p) }
            let all = m.nodes()
            maxSeen = max(maxSeen, all.count)
            guard all.first == DMQNodeInfo(address: node1, status: .active, resolvedIP: "127.0.0.1", isLocal: true,
                                           failCount: 0, isKSRHost: false),
                  all.dropFirst().allSatisfy({ !$0.isLocal }), all.count <= 48 else {
                Issue.record("table broken after round \(round): \(all)")
                return
            }
        }
        #expect(maxSeen > 10)  // the generator does produce acceptable lines
    }

    static func body(_ rng: inout SeededRandom) -> [UInt8] {
        switch Int.random(in: 0..<4, using: &rng) {
        case 0:  // random bytes
            return (0..<Int.random(in: 0..<200, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        case 1:  // token soup
            return Array((0..<Int.random(in: 0..<40, using: &rng)).map { _ in tokens.randomElement(using: &rng)! }
                .joined().utf8)
        case 2:  // plausible lines with random hosts, ports, statuses
            var s = ""
            for _ in 0..<Int.random(in: 0..<8, using: &rng) {
                s += "sip:10.\(Int.random(in: 0..<3, using: &rng)).0.\(Int.random(in: 0..<30, using: &rng))"
                if Bool.random(using: &rng) { s += ":\(Int.random(in: 0...70000, using: &rng))" }
                if Bool.random(using: &rng) {
                    s += ";status=" + ["active", "not_active", "disabled", "pending", "timeout", "bogus"]
                        .randomElement(using: &rng)!
                }
                s += ["\r\n", "\n", "", "\r\n\r\n"].randomElement(using: &rng)!
            }
            return Array(s.utf8)
        default:  // mutated seed bodies
            var b = Array(seeds.randomElement(using: &rng)!.utf8)
            for _ in 0..<Int.random(in: 1...6, using: &rng) {
                let i = b.isEmpty ? 0 : Int.random(in: 0..<b.count, using: &rng)
                switch Int.random(in: 0..<4, using: &rng) {
                case 0 where !b.isEmpty: b[i] = UInt8.random(in: 0...255, using: &rng)
                case 1 where !b.isEmpty: b.remove(at: i)
                case 2: b.insert(contentsOf: tokens.randomElement(using: &rng)!.utf8, at: i)
                default: b += b.prefix(Int.random(in: 0...b.count, using: &rng))
                }
            }
            return b
        }
    }
}
