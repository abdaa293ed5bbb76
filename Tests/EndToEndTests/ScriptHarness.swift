import Foundation
import Testing

/// Runs a script with `ksr run` until it logs `DONE` (or the time is up), stops it with
/// SIGTERM and returns what it logged, its exit status and the `RESULT key=value|type` lines.
struct ScriptRun {
    var stderr: String
    var status: Int32
    var results: [String: String]

    static func run(_ script: String, args: [String] = [], until marker: String = "DONE",
                    timeout: Double = 30) throws -> ScriptRun {
        let dir = TempDir()
        let path = dir.write("app.lua", script)
        let p = try KSR.Running(["run", path] + args)
        p.waitForStderr(timeout: timeout) { $0.contains(marker) }
        let status = p.stop()
        let err = p.stderr
        return ScriptRun(stderr: err, status: status, results: parse(err))
    }

    /// The `RESULT key=value|type` lines of a log.
    static func parse(_ log: String) -> [String: String] {
        var results: [String: String] = [:]
        for line in log.split(separator: "\n") {
            guard let r = line.range(of: "RESULT ") else { continue }
            let kv = line[r.upperBound...]
            guard let eq = kv.firstIndex(of: "=") else { continue }
            results[String(kv[..<eq])] = String(kv[kv.index(after: eq)...])
        }
        return results
    }
}

/// Lua helper prepended to test scripts: `show(key, value)` logs `RESULT key=value|type`.
let luaShow = """
    local function show(k, v) KSR.info("RESULT " .. k .. "=" .. tostring(v) .. "|" .. type(v) .. "\\n") end

    """
