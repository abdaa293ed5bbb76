import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The harnesses signal processes through `PIDHandle`: a signal meant for a process that is
/// gone must never reach whatever got its pid, least of all a thread of this test process
/// (`kill` on a thread id signals the whole process).
@Suite("PIDHandle: signals only the process it pinned")
struct PIDHandleTests {
    @Test func threadIDsOfThisProcessAreRefused() async throws {
        // Make sure there are threads besides the main one.
        try await Task.sleep(for: .milliseconds(1))
        let others = PIDHandle.ownThreadIDs.filter { $0 != getpid() }
        #expect(!others.isEmpty)
        for tid in others {
            #expect(PIDHandle(tid) == nil, "thread \(tid) of the test process taken for a process")
            #expect(!PIDHandle.isProcess(tid))
        }
        #expect(PIDHandle.isProcess(getpid()))
    }

    @Test func aReapedChildIsNeverSignalledAgain() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sleep")
        p.arguments = ["30"]
        try p.run()
        let handle = try #require(PIDHandle(p.processIdentifier))
        #expect(!handle.hasExited)
        #expect(handle.signal(0))
        #expect(handle.signal(SIGKILL))
        p.waitUntilExit()
        #expect(p.terminationReason == .uncaughtSignal && p.terminationStatus == SIGKILL)
        #expect(handle.hasExited)
        #expect(!handle.signal(SIGKILL))  // gone: nothing is signalled, whoever has the pid now
    }

    @Test func verifyDecidesWhichProcessesArePinned() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sleep")
        p.arguments = ["30"]
        try p.run()
        defer { PIDHandle(p.processIdentifier)?.signal(SIGKILL); p.waitUntilExit() }
        // Not a Kamailio of some node's cfg: refused, as KamailioNode.familyHandles does.
        #expect(PIDHandle(p.processIdentifier) { _ in false } == nil)
        let pid = p.processIdentifier
        #expect(PIDHandle(pid) { $0 == pid }?.pid == pid)
    }
}
