import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A process pinned by a pidfd (Linux 5.3+, glibc 2.36+): a signal sent through it reaches that
/// very process or nobody. A bare `kill(pid, ...)` after the process was reaped reaches whatever
/// got the pid since: pids wrap at `/proc/sys/kernel/pid_max` (32768 on the test machines,
/// recycled within minutes under load), and pids and thread ids share one space, so a recycled
/// pid can be a thread of the test process itself, and `kill` on a thread id signals its whole
/// process: a SIGKILL there ends the test run without a word.
final class PIDHandle: @unchecked Sendable {
    let pid: pid_t
    /// -1 when pidfds are not available: then only a process (not a thread) that `verify`
    /// accepts is signalled.
    private let fd: Int32
    private let verify: (pid_t) -> Bool

    private typealias Open = @convention(c) (pid_t, UInt32) -> Int32
    private typealias SendSignal = @convention(c) (Int32, Int32, UnsafeMutableRawPointer?, UInt32) -> Int32
    private static let open: Open? = dlsym(nil, "pidfd_open").map { unsafeBitCast($0, to: Open.self) }
    private static let sendSignal: SendSignal? = dlsym(nil, "pidfd_send_signal").map { unsafeBitCast($0, to: SendSignal.self) }

    /// Pins `pid` if it is alive now and `verify` accepts it (checked after the pidfd is open,
    /// so the check is about the process the pidfd holds). nil if it is gone or not it.
    init?(_ pid: pid_t, verify: @escaping (pid_t) -> Bool = { _ in true }) {
        guard pid > 0 else { return nil }
        self.pid = pid
        self.verify = verify
        if let open = Self.open, Self.sendSignal != nil {
            let fd = open(pid, 0)
            guard fd >= 0 else { return nil }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            self.fd = fd
            guard Self.isProcess(pid), verify(pid) else {
                close(fd)
                return nil
            }
        } else {
            self.fd = -1
            guard Self.isProcess(pid), verify(pid) else { return nil }
        }
    }

    deinit { if fd >= 0 { close(fd) } }

    /// Sends `signal`; false if the process is gone (or, without pidfds, no longer passes `verify`).
    @discardableResult
    func signal(_ signal: Int32) -> Bool {
        if fd >= 0, let send = Self.sendSignal { return send(fd, signal, nil, 0) == 0 }
        guard Self.isProcess(pid), verify(pid) else { return false }
        return kill(pid, signal) == 0
    }

    /// True once the process has exited (a zombie counts as exited).
    var hasExited: Bool {
        if fd >= 0 {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            return poll(&p, 1, 0) == 1
        }
        return !KamailioNode.isRunning(pid)
    }

    /// True when `pid` is a process (thread-group leader), not another thread of some process.
    static func isProcess(_ pid: pid_t) -> Bool {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Tgid:") }) else { return false }
        return pid_t(line.dropFirst(5).trimmingCharacters(in: .whitespaces)) == pid
    }

    /// Thread ids of this test process (for the tests of this type).
    static var ownThreadIDs: [pid_t] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []).compactMap { pid_t($0) }
    }
}
