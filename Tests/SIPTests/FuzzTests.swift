import KSRTestFixtures
import Foundation
import SIP
import Testing

/// Deterministic mutation fuzzing of every fixture and torture case through `SIPFuzz.run`,
/// which parses (datagram and stream), reads every accessor, builds replies and edits, and
/// checks invariants with `precondition`. A crash or a hang fails the run.
///
/// `SIP_FUZZ_ITERATIONS` and `SIP_FUZZ_SEED` (environment) override the number of mutants and
/// the RNG seed; the default keeps the debug run around a few seconds.
@Suite struct FuzzTests {
    static var seeds: [[UInt8]] {
        let fixtures: [[UInt8]] = Fixtures.names.map { Fixtures.bytes($0) }
        let torture: [[UInt8]] = Torture.all.map { crlf($0.text) }
        return fixtures + torture + [
            crlf("OPTIONS sip:a@b SIP/2.0\nv: SIP/2.0/UDP [::1]:5060;rport;branch=z9hG4bK1\nf: <sip:c@d>;tag=1\nt: sip:a@b\ni: x\nCSeq: 1 OPTIONS\nl: 0\n\n"),
            crlf("SIP/2.0 200 OK\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1;received=10.0.0.2\nContent-Length: 0\n\n"),
        ]
    }

    static let specials: [UInt8] = [13, 10, 0, 58, 59, 60, 62, 34, 44, 32, 9, 92, 61, 64, 91, 93, 63, 0xFF, 0x80, 48, 57]

    static func mutate(_ input: [UInt8], _ rng: inout SeededRandom) -> [UInt8] {
        var b = input
        let rounds = 1 + Int(rng.next() % 4)
        for _ in 0..<rounds {
            if b.isEmpty { b = [13, 10] }
            let at = Int(rng.next() % UInt64(b.count))
            switch rng.next() % 10 {
            case 0: b[at] ^= UInt8(1 << (rng.next() % 8))                       // bit flip
            case 1: b[at] = UInt8(truncatingIfNeeded: rng.next())               // random byte
            case 2: b[at] = specials[Int(rng.next() % UInt64(specials.count))]  // special byte
            case 3: b.insert(specials[Int(rng.next() % UInt64(specials.count))], at: at)
            case 4: b.removeSubrange(at..<min(b.count, at + 1 + Int(rng.next() % 16)))
            case 5: b = Array(b.prefix(at))                                       // truncation
            case 6:                                                               // duplicate a slice
                let len = min(b.count - at, 1 + Int(rng.next() % 64))
                let slice = Array(b[at..<(at + len)])
                let to = Int(rng.next() % UInt64(b.count + 1))
                b.insert(contentsOf: slice, at: to)
            case 7:                                                               // duplicate a line
                if let lf = b[at...].firstIndex(of: 10),
                   let next = b[(lf + 1)...].firstIndex(of: 10) {
                    b.insert(contentsOf: Array(b[(lf + 1)...next]), at: lf + 1)
                }
            case 8:                                                               // digits
                let digits = Array(String(rng.next() % 3 == 0 ? Int.max : Int(rng.next() % 100_000)).utf8)
                b.insert(contentsOf: digits, at: at)
            default:                                                              // swap two bytes
                let other = Int(rng.next() % UInt64(b.count))
                b.swapAt(at, other)
            }
        }
        return b
    }

    @Test func mutationFuzz() {
        // longreq (32 KB) is left to seedsThemselves and the torture tests: mutating it would
        // take most of the time budget
        let seeds = Self.seeds.filter { $0.count <= 8192 }
        let total = ProcessInfo.processInfo.environment["SIP_FUZZ_ITERATIONS"].flatMap(Int.init) ?? 20_000
        let env = ProcessInfo.processInfo.environment
        var rng = SeededRandom(seed: env["SIP_FUZZ_SEED"].flatMap { UInt64($0) } ?? 0x5EED_51F0)
        let clock = ContinuousClock()
        let start = clock.now
        var slowest = Duration.zero
        var parsed = 0
        for i in 0..<total {
            let mutant = Self.mutate(seeds[i % seeds.count], &rng)
            let t0 = clock.now
            SIPFuzz.run(mutant)
            let dt = clock.now - t0
            if dt > slowest { slowest = dt }
            if (try? SIPMessage(mutant)) != nil { parsed += 1 }
        }
        let elapsed = clock.now - start
        print("SIP fuzz: \(total) mutants of \(seeds.count) seeds in \(elapsed), \(parsed) parsed, slowest \(slowest)")
        // no hang: every input is handled in bounded time (generous for debug builds on busy machines)
        #expect(slowest < .seconds(1))
        // the mutator is not so destructive that nothing parses any more, nor so mild that everything does
        #expect(parsed > total / 10)
        #expect(parsed < total)
    }

    @Test func seedsThemselves() {
        for s in Self.seeds { SIPFuzz.run(s) }
        SIPFuzz.run([])
        SIPFuzz.run([13, 10, 13, 10])
        SIPFuzz.run(Array(repeating: 0, count: 1000))
    }

    /// Inputs shaped to make a careless parser quadratic or recursive.
    @Test func pathologicalInputsAreBounded() {
        let clock = ContinuousClock()
        var inputs: [[UInt8]] = []
        let head = "OPTIONS sip:a@b SIP/2.0\r\n"
        inputs.append(Array((head + "Via: " + String(repeating: "SIP/2.0/UDP h;branch=z9hG4bK1,", count: 2000) + "\r\n\r\n").utf8))
        inputs.append(Array((head + "Contact: " + String(repeating: "<", count: 60_000) + "\r\n\r\n").utf8))
        inputs.append(Array((head + "X: a\r\n" + String(repeating: " b\r\n", count: 2000) + "\r\n").utf8))
        inputs.append(Array((head + String(repeating: "A: b\r\n", count: 10_000) + "\r\n").utf8))
        inputs.append(Array((head + "Route: " + String(repeating: "\"", count: 60_000) + "\r\n\r\n").utf8))
        inputs.append(Array(repeating: 10, count: 65_535))
        inputs.append(Array((head + "To: " + String(repeating: ";a=b", count: 2000) + "\r\n\r\n").utf8))
        for input in inputs {
            let t0 = clock.now
            SIPFuzz.run(input)
            var framer = SIPStreamFramer()
            for chunk in stride(from: 0, to: input.count, by: 1000) {
                framer.append(contentsOf: input[chunk..<min(input.count, chunk + 1000)])
                _ = try? framer.next()
            }
            let dt = clock.now - t0
            #expect(dt < .seconds(3), "input of \(input.count) bytes took \(dt)")
        }
    }
}
