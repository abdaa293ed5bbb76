import CKSRSys
import Foundation
import Testing

/// `ksr_page_out_executable`, which `ksr run` calls a second after start to give back the
/// resident pages of startup code: file pages leave this process's PSS, and everything that
/// runs afterwards (code, constants, relocated data of the binary and its libraries) still works.
@Suite("Idle memory: page-out of the binary's read-only mappings")
struct PageOutTests {
    /// `Pss_File` of this process in kB, from /proc/self/smaps_rollup.
    static func pssFileKB() -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/smaps_rollup", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("Pss_File:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        }
        return nil
    }

    @Test func filePagesLeaveAndTheProcessKeepsWorking() throws {
        // Touch Foundation's code and data first, so that there is something to give back.
        let before = try JSONEncoder().encode(["k": [1, 2, 3]])
        let pssBefore = try #require(Self.pssFileKB())
        let advised = ksr_page_out_executable()
        #expect(advised > 0)
        let pssAfter = try #require(Self.pssFileKB())
        #expect(pssAfter < pssBefore, "Pss_File \(pssBefore) kB before, \(pssAfter) kB after")
        // Code, constants and relocated pages come back: the same work gives the same bytes.
        let after = try JSONEncoder().encode(["k": [1, 2, 3]])
        #expect(after == before)
        #expect(String(format: "%05.1f|%@", 3.14159, "x") == "003.1|x")
        let decoded = try JSONDecoder().decode([String: [Int]].self, from: after)
        #expect(decoded == ["k": [1, 2, 3]])
    }
}
