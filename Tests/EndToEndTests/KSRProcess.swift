import Foundation
import Testing

/// Runs the `ksr` binary built next to the test bundle, as a user would.
struct KSR {
    static let binary: String = {
        if let env = ProcessInfo.processInfo.environment["KSR_BIN"] { return env }
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("ksr").path
    }()

    /// The package root (for samples/ and lua/).
    static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs `ksr args...` (or another `executable`) to completion (killing it after `timeout` seconds).
    static func run(_ args: [String], cwd: URL? = nil, timeout: Double = 60, executable: String = KSR.binary) throws -> Result {
        let p = try Running(args, cwd: cwd, executable: executable)
        let deadline = Date().addingTimeInterval(timeout)
        while p.process.isRunning && Date() < deadline { usleep(10_000) }
        if p.process.isRunning { p.signal(SIGKILL) }
        p.process.waitUntilExit()
        return Result(status: p.process.terminationStatus, stdout: p.stdout, stderr: p.stderr)
    }

    /// A `ksr` process running in the background, its output going to files.
    final class Running {
        let process = Process()
        let dir: URL
        let outURL: URL
        let errURL: URL

        init(_ args: [String], cwd: URL? = nil, environment: [String: String] = [:], executable: String = KSR.binary) throws {
            dir = FileManager.default.temporaryDirectory.appendingPathComponent("ksr-e2e-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            outURL = dir.appendingPathComponent("stdout")
            errURL = dir.appendingPathComponent("stderr")
            _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
            _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = args
            if let cwd { process.currentDirectoryURL = cwd }
            if !environment.isEmpty {
                process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
            }
            process.standardOutput = try FileHandle(forWritingTo: outURL)
            process.standardError = try FileHandle(forWritingTo: errURL)
            process.standardInput = FileHandle.nullDevice
            try process.run()
            handle = PIDHandle(process.processIdentifier)
        }

        /// The child pinned right after it started (nil if it was already gone): signals go
        /// through it, never to a pid that another process or thread may have got since.
        private var handle: PIDHandle?

        /// Sends `signal` to the child if it still runs.
        func signal(_ signal: Int32) {
            guard process.isRunning else { return }
            if let handle { handle.signal(signal) } else { kill(process.processIdentifier, signal) }
        }

        var stdout: String { (try? String(contentsOf: outURL, encoding: .utf8)) ?? "" }
        var stderr: String { (try? String(contentsOf: errURL, encoding: .utf8)) ?? "" }

        /// Waits until stderr satisfies `condition` (or the process ends, or the time is up).
        @discardableResult
        func waitForStderr(timeout: Double = 20, _ condition: (String) -> Bool) -> Bool {
            let deadline = Date().addingTimeInterval(timeout)
            while Date() < deadline {
                if condition(stderr) { return true }
                if !process.isRunning { return condition(stderr) }
                usleep(20_000)
            }
            return condition(stderr)
        }

        /// Sends a signal and waits for the process to end; returns its exit status.
        @discardableResult
        func stop(_ signal: Int32 = SIGTERM, timeout: Double = 20) -> Int32 {
            self.signal(signal)
            let deadline = Date().addingTimeInterval(timeout)
            while process.isRunning && Date() < deadline { usleep(10_000) }
            self.signal(SIGKILL)
            process.waitUntilExit()
            return process.terminationStatus
        }

        deinit {
            if process.isRunning { signal(SIGKILL); process.waitUntilExit() }
            try? FileManager.default.removeItem(at: dir)
        }
    }
}

/// A temporary directory with files for one test.
final class TempDir {
    let url: URL
    init() {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("ksr-test-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    @discardableResult
    func write(_ name: String, _ text: String) -> String {
        let u = url.appendingPathComponent(name)
        try? text.write(to: u, atomically: true, encoding: .utf8)
        return u.path
    }
    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
    deinit { try? FileManager.default.removeItem(at: url) }
}

extension String {
    /// Lines containing `needle`.
    func lines(containing needle: String) -> [Substring] {
        split(separator: "\n").filter { $0.contains(needle) }
    }
}
