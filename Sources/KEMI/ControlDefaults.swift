#if canImport(Glibc)
import Glibc
#endif

/// Where the control plane listens unless `rpc_listen` / `rpc_socket` say otherwise, and
/// where `ksr rpc` looks by default.
public enum ControlDefaults {
    /// JSON-RPC over HTTP on loopback, Kamailio-free port.
    public static let listen = "http:127.0.0.1:5064"

    /// `$XDG_RUNTIME_DIR/ksr_rpc.sock`, else `/tmp/ksr-UID/ksr_rpc.sock` (the directory is
    /// created with mode 0700 by the server).
    public static var socketPath: String {
        if let xdg = getenv("XDG_RUNTIME_DIR"), xdg.pointee != 0 {
            return String(cString: xdg) + "/ksr_rpc.sock"
        }
        return "/tmp/ksr-\(getuid())/ksr_rpc.sock"
    }

    /// `http:HOST:PORT` (also `http://HOST:PORT`, `HOST:PORT`, `[::1]:PORT`) as host and port.
    public static func tcpAddress(_ text: String) -> (host: String, port: Int)? {
        var s = Substring(text)
        if s.hasPrefix("http://") { s = s.dropFirst(7) } else if s.hasPrefix("http:") { s = s.dropFirst(5) }
        guard let colon = s.lastIndex(of: ":"), let port = Int(s[s.index(after: colon)...]), (0...65535).contains(port) else {
            return nil
        }
        var host = s[..<colon]
        if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        guard !host.isEmpty else { return nil }
        return (String(host), port)
    }

    /// `unix:/path` or `/path` as a path.
    public static func socketPath(_ text: String) -> String {
        text.hasPrefix("unix:") ? String(text.dropFirst(5)) : text
    }
}
