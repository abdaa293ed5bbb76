import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One entry of a Kamailio node's `dmq.list_nodes` answer.
struct DMQListedNode: Sendable, Equatable, CustomStringConvertible {
    var host: String
    /// nil when the entry has no port.
    var port: Int?
    /// `*` when the node URI names no transport (UDP).
    var proto: String
    var resolvedIP: String
    /// `active`, `pending`, `disabled` or `timeout` (5.6).
    var status: String
    var local: Bool

    var isActive: Bool { status == "active" }
    var description: String { "\(host):\(port.map(String.init) ?? "")=\(status)\(local ? "(local)" : "")" }
}

extension Array where Element == DMQListedNode {
    /// The entry for host:port, if listed.
    func entry(host: String, port: Int) -> DMQListedNode? { first { $0.host == host && $0.port == port } }
    /// The status of host:port, or nil when not listed.
    func status(host: String, port: Int) -> String? { entry(host: host, port: port)?.status }
    /// The status of `node`, or nil when not listed.
    func status(of node: any DMQTestNode) -> String? { status(host: node.ip, port: node.port) }
}

/// A request the Lua script of a Kamailio node logged (a KDMQ on a script channel, any KDMQ,
/// or a MESSAGE copied to it by `t_replicate`).
struct DMQReceived: Sendable, Equatable {
    /// The R-URI user: the DMQ channel of a KDMQ (for a replicated MESSAGE, the trigger's action).
    var channel: String
    var requestURI: String
    var from: String
    /// `$cT`: the Content-Type value as received ("" when absent).
    var contentType: String
    var sourceIP: String
    var sourcePort: Int
    /// nil when the request had no Max-Forwards.
    var maxForwards: Int?
    var body: String
    /// `KSR.dmq.is_from_node() > 0` (KDMQ only; true for replicated copies).
    var fromNode: Bool
}

/// A reply a Kamailio node received (its `ksr_reply_route`), e.g. to its own KDMQ requests.
struct DMQReply: Sendable, Equatable {
    var status: Int
    var reason: String
    var method: String
    var sourceIP: String
    var sourcePort: Int
    var body: String
}

/// A real Kamailio 5.6 DMQ node for the end-to-end tests: `Tests/EndToEndTests/dmq/kamailio-node.cfg.in`
/// rendered into a fresh temporary directory (ctl socket, pid file, log there) and run with
/// `kamailio -DD -E` as a child of the test process, routing in `dmq/kamailio-node.lua`.
///
/// Processes are only ever signalled by pid: the main pid this object started and the pids of its
/// descendants read from /proc. Every node listens on UDP only, on a 127.0.0.0/8 address.
///
/// The script: KDMQ on a script channel (`channels`, "app" by default) is logged and answered 200,
/// other KDMQ go to `KSR.dmq.handle_message()`; a MESSAGE from a non-node (see `trigger`) runs
/// `KSR.dmq.bcast_message` / `send_message` / `t_replicate`; a MESSAGE from a node (a replicated
/// copy) is logged and answered 200.
final class KamailioNode {
    enum Error: Swift.Error, CustomStringConvertible {
        case notInstalled(String)
        case badAddress(String)
        case startFailed(String)
        case rpcFailed(String)
        case noReply(String)

        var description: String {
            switch self {
            case .notInstalled(let s), .badAddress(let s), .startFailed(let s), .rpcFailed(let s), .noReply(let s): s
            }
        }
    }

    /// What a trigger MESSAGE asks the node's script to do (the R-URI user).
    enum Action: String, Sendable {
        /// `KSR.dmq.bcast_message(channel, body, contentType)`
        case bcast
        /// `KSR.dmq.send_message(channel, target, body, contentType)`
        case unicast
        /// `KSR.dmq.t_replicate()` of the trigger itself
        case replicate
    }

    let name: String
    let ip: String
    let port: Int
    let notificationAddresses: [String]
    let pingInterval: Int
    let frTimer: Int
    /// KDMQ channels the script answers itself (logged as app messages).
    let channels: [String]
    let extraConfig: String
    let debugLevel: Int

    /// The node's runtime directory (removed in deinit).
    let dir: URL
    var cfgPath: String { dir.appendingPathComponent("node.cfg").path }
    var logPath: String { dir.appendingPathComponent("kamailio.log").path }
    var pidPath: String { dir.appendingPathComponent("kamailio.pid").path }
    var ctlSocket: String { dir.appendingPathComponent("ctl.sock").path }
    /// `sip:ip:port`, the node's DMQ `server_address`.
    var uri: String { "sip:\(ip):\(port)" }

    private var child: Child?
    /// Main pid of the running instance (nil when not running).
    private(set) var pid: pid_t?

    /// Renders the cfg; does not start anything (see `start()`).
    /// - Parameters:
    ///   - port: UDP port; nil picks a free one (distinct within this test process).
    ///   - notificationAddresses: DMQ `notification_address` URIs, e.g. `other.uri`.
    ///   - pingInterval: dmq `ping_interval` in seconds (Kamailio raises values below 5 to 5).
    ///   - frTimer: tm `fr_timer` in ms: an unanswered KDMQ ends in a local 408 after this.
    ///   - channels: KDMQ channels the script answers 200 itself and logs.
    ///   - extraConfig: cfg text inserted after the dmq modparams (modules loaded there come after dmq).
    init(name: String, ip: String, port: Int? = nil, notificationAddresses: [String] = [],
         pingInterval: Int = 5, frTimer: Int = 3000, channels: [String] = ["app"],
         extraConfig: String = "", debugLevel: Int = 2) throws {
        guard Self.isLoopback(ip) else { throw Error.badAddress("KamailioNode: \(ip) is not a 127.0.0.0/8 address") }
        let tools = try Self.tools()
        self.name = name
        self.ip = ip
        self.port = try port ?? Self.freeUDPPort(on: ip)
        self.notificationAddresses = notificationAddresses
        self.pingInterval = pingInterval
        self.frTimer = frTimer
        self.channels = channels
        self.extraConfig = extraConfig
        self.debugLevel = debugLevel
        let safe = name.filter { $0.isLetter || $0.isNumber || $0 == "-" }.prefix(16)
        dir = URL(fileURLWithPath: "/tmp").appendingPathComponent("kam-\(safe)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try Self.renderTemplate(name: name, ip: ip, port: self.port, notificationAddresses: notificationAddresses,
                                pingInterval: pingInterval, frTimer: frTimer, dir: dir.path, mpath: tools.mpath,
                                channels: channels, extraConfig: extraConfig, debugLevel: debugLevel)
            .write(toFile: cfgPath, atomically: true, encoding: .utf8)
    }

    /// A node that runs the cfg `render(port, dir, mpath)` returns instead of the DMQ template
    /// (it must load dmq, ctl with `binrpc` on `unix:<dir>/ctl.sock`, and listen on `ip:port`).
    init(name: String, ip: String, port: Int? = nil, cfg render: (_ port: Int, _ dir: String, _ mpath: String) -> String) throws {
        guard Self.isLoopback(ip) else { throw Error.badAddress("KamailioNode: \(ip) is not a 127.0.0.0/8 address") }
        let tools = try Self.tools()
        self.name = name
        self.ip = ip
        self.port = try port ?? Self.freeUDPPort(on: ip)
        (notificationAddresses, pingInterval, frTimer, channels, extraConfig, debugLevel) = ([], 5, 3000, [], "", 2)
        let safe = name.filter { $0.isLetter || $0.isNumber || $0 == "-" }.prefix(16)
        dir = URL(fileURLWithPath: "/tmp").appendingPathComponent("kam-\(safe)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try render(self.port, dir.path, tools.mpath).write(toFile: cfgPath, atomically: true, encoding: .utf8)
    }

    deinit {
        kill9All()
        // KAMAILIO_KEEP_DIRS=1 keeps cfg and log for a look after the test.
        if ProcessInfo.processInfo.environment["KAMAILIO_KEEP_DIRS"] == nil { try? FileManager.default.removeItem(at: dir) }
    }

    // MARK: - Installation

    struct Tools: Sendable {
        var kamailio: String
        var kamcmd: String
        var mpath: String
    }

    private static let hint = "install with `scripts/setup --test` (Debian packages kamailio kamailio-lua-modules)"

    /// kamailio, kamcmd and the module directory (with dmq.so and app_lua.so), or a clear error.
    static func tools() throws -> Tools {
        let env = ProcessInfo.processInfo.environment
        for v in ["KAMAILIO_BIN", "KAMCMD_BIN"] {
            if let path = env[v], !FileManager.default.isExecutableFile(atPath: path) {
                throw Error.notInstalled("\(v)=\(path) is not an executable file; \(hint)")
            }
        }
        guard let kamailio = env["KAMAILIO_BIN"] ?? findExecutable("kamailio") else {
            throw Error.notInstalled("Kamailio is not installed: no kamailio in /usr/sbin, /usr/local/sbin or PATH; \(hint)")
        }
        guard let kamcmd = env["KAMCMD_BIN"] ?? findExecutable("kamcmd") else {
            throw Error.notInstalled("kamcmd not found in /usr/sbin, /usr/local/sbin or PATH; \(hint)")
        }
        var candidates = [String]()
        if let m = env["KAMAILIO_MPATH"] { candidates.append(m) }
        if let multiarch = try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib") {
            candidates += multiarch.filter { $0.hasSuffix("-linux-gnu") }.sorted().map { "/usr/lib/\($0)/kamailio/modules" }
        }
        candidates += ["/usr/lib/kamailio/modules", "/usr/lib64/kamailio/modules",
                       "/usr/local/lib/kamailio/modules", "/usr/local/lib64/kamailio/modules"]
        guard let mpath = candidates.first(where: { FileManager.default.fileExists(atPath: "\($0)/dmq.so") }) else {
            throw Error.notInstalled("Kamailio's dmq.so not found in \(candidates); \(hint)")
        }
        guard FileManager.default.fileExists(atPath: "\(mpath)/app_lua.so") else {
            throw Error.notInstalled("Kamailio's app_lua.so not found in \(mpath) (package kamailio-lua-modules); \(hint)")
        }
        return Tools(kamailio: kamailio, kamcmd: kamcmd, mpath: mpath + "/")
    }

    private static func findExecutable(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let dirs = ["/usr/sbin", "/usr/local/sbin"] + path.split(separator: ":").map(String.init)
        return dirs.map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    // MARK: - Addresses and ports

    static func isLoopback(_ ip: String) -> Bool {
        var a = in_addr()
        guard inet_pton(AF_INET, ip, &a) == 1 else { return false }
        return UInt32(bigEndian: a.s_addr) >> 24 == 127
    }

    /// The next port of a per-process sequence (random start in 20000..<40000) that is free for UDP on `ip`.
    static func freeUDPPort(on ip: String) throws -> Int {
        for _ in 0..<200 {
            let p = nextPort.withLock { next -> Int in
                let p = next
                next = next + 1 >= 40_000 ? 20_000 : next + 1
                return p
            }
            if udpPortIsFree(p, on: ip) && udpPortIsFree(p, on: "0.0.0.0") { return p }
        }
        throw Error.startFailed("no free UDP port on \(ip) in 20000..<40000")
    }

    private static let nextPort = Mutex(Int.random(in: 20_000..<39_000))

    private static func udpPortIsFree(_ port: Int, on ip: String) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddrIn(ip, port)
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    fileprivate static func sockaddrIn(_ ip: String, _ port: Int) -> sockaddr_in {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr(ip)
        addr.sin_port = UInt16(port).bigEndian
        return addr
    }

    // MARK: - Configuration

    static let resources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("dmq")

    // MARK: - Life cycle

    var isRunning: Bool { child?.isRunning ?? false }

    /// Starts Kamailio and waits until its ctl socket answers `dmq.list_nodes` (or throws, with
    /// the log's tail, when it exits or does not answer within `timeout` seconds).
    func start(timeout: Double = 15) throws {
        guard !isRunning else { return }
        let tools = try Self.tools()
        try? FileManager.default.removeItem(atPath: pidPath)
        try? FileManager.default.removeItem(atPath: ctlSocket)
        let c = try Child(tools.kamailio, ["-f", cfgPath, "-P", pidPath, "-Y", dir.path, "-DD", "-E", "-m", "64", "-M", "8"],
                          output: logPath)
        child = c
        pid = c.pid
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if !c.isRunning {
                child = nil
                pid = nil
                throw Error.startFailed("kamailio \(name) (\(uri)) exited (\(c.exitDescription)) at startup:\n\(logTail())")
            }
            if FileManager.default.fileExists(atPath: ctlSocket), (try? listNodes()) != nil {
                let recorded = (try? String(contentsOfFile: pidPath, encoding: .utf8))?
                    .trimmingCharacters(in: .whitespacesAndNewlines)
                if recorded == String(c.pid) { return }
            }
            usleep(50_000)
        }
        kill9All()
        throw Error.startFailed("kamailio \(name) (\(uri)) did not answer on \(ctlSocket) within \(timeout) s:\n\(logTail())")
    }

    /// Graceful stop: SIGTERM to the main pid, then waits; after `timeout` seconds everything left
    /// gets SIGKILL. Kamailio 5.6 sends nothing to its peers on shutdown.
    func stop(timeout: Double = 10) {
        guard let c = child, c.isRunning else { child = nil; pid = nil; return }
        // Pinned now, while they run: by the time they get their SIGKILL they may be gone and
        // reaped by init, their pids free for anything (a thread of this very process included).
        let family = familyHandles(of: c.pid)
        kill(c.pid, SIGTERM)  // our unreaped child: its pid cannot be anybody else's yet
        if !c.wait(timeout: timeout) { kill(c.pid, SIGKILL); c.wait() }
        for h in family where !h.hasExited { h.signal(SIGKILL) }
        Self.waitExited(family, timeout: 2)
        child = nil
        pid = nil
    }

    /// Crash: SIGKILL to the main pid and to each of its descendants (found by pid in /proc).
    /// Returns the pids killed, main pid first, once none of them runs: the main pid is reaped,
    /// the others may stay zombies until init reaps them (`waitGone`).
    @discardableResult
    func crash() -> [pid_t] {
        guard let c = child, c.isRunning else { return [] }
        let all = [c.pid] + descendants(of: c.pid)
        kill9All()
        return all
    }

    private func kill9All() {
        defer { child = nil; pid = nil }
        guard let c = child, c.isRunning else { return }
        let family = familyHandles(of: c.pid)
        kill(c.pid, SIGKILL)
        for h in family { h.signal(SIGKILL) }
        c.wait()
        // Dead, not yet reaped: init reaps the orphaned children (here it took ~1.5 s).
        Self.waitExited(family, timeout: 2)
    }

    /// The descendants of `root` running this node's cfg, each pinned by a `PIDHandle` (checked
    /// again once pinned), so that no signal meant for them can reach a process that gets one
    /// of their pids later.
    func familyHandles(of root: pid_t) -> [PIDHandle] {
        let cfg = cfgPath
        return descendants(of: root).compactMap { p in
            PIDHandle(p) { pid in
                let cmdline = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))) ?? Data()
                return String(decoding: cmdline, as: UTF8.self).contains(cfg)
            }
        }
    }

    /// Waits (bounded) until every pinned process has exited.
    @discardableResult
    static func waitExited(_ handles: [PIDHandle], timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if handles.allSatisfy(\.hasExited) { return true }
            usleep(2_000)
        }
        return false
    }

    /// Pids of all descendants of `root` that run this node's cfg (from /proc/<pid>/task/*/children).
    func descendants(of root: pid_t) -> [pid_t] {
        var result: [pid_t] = []
        var queue = [root]
        while let p = queue.popLast() {
            let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(p)/task")) ?? []
            for t in tasks {
                let text = (try? String(contentsOfFile: "/proc/\(p)/task/\(t)/children", encoding: .utf8)) ?? ""
                for c in text.split(separator: " ") {
                    guard let child = pid_t(c.trimmingCharacters(in: .whitespacesAndNewlines)), !result.contains(child) else { continue }
                    let cmdline = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(child)/cmdline"))) ?? Data()
                    guard String(decoding: cmdline, as: UTF8.self).contains(cfgPath) else { continue }
                    result.append(child)
                    queue.append(child)
                }
            }
        }
        return result
    }

    /// True when /proc/<pid> exists and is not a zombie.
    static func isRunning(_ pid: pid_t) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        let state = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).prefix(1)
        return state != "Z" && state != "X"
    }

    /// Waits (bounded) until none of `pids` is in /proc any more (reaped).
    @discardableResult
    static func waitGone(_ pids: [pid_t], timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if !pids.contains(where: { FileManager.default.fileExists(atPath: "/proc/\($0)") }) { return true }
            usleep(20_000)
        }
        return false
    }

    /// A child process started with posix_spawn and reaped by this object with waitpid.
    ///
    /// Not Foundation.Process: on Linux, Process notices a child's exit when a socket the child
    /// inherited is closed, and then its one manager thread blocks in waitpid(pid). Kamailio
    /// closes the inherited descriptors at startup, so that thread would block for as long as
    /// Kamailio runs, and no other Process in the test process (ksr, kamcmd, sipp) would ever be
    /// seen to exit. This child gets stdin /dev/null, stdout and stderr appended to `output`,
    /// no other descriptor, default signal handling and mask, and its own process group.
    final class Child {
        let pid: pid_t
        private var status: Int32?

        init(_ path: String, _ args: [String], output: String) throws {
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
            Self.closeInheritedDescriptors(&actions)
            var attr = posix_spawnattr_t()
            posix_spawnattr_init(&attr)
            defer { posix_spawnattr_destroy(&attr) }
            var none = sigset_t(), all = sigset_t()
            sigemptyset(&none)
            sigfillset(&all)
            posix_spawnattr_setsigmask(&attr, &none)
            posix_spawnattr_setsigdefault(&attr, &all)
            posix_spawnattr_setpgroup(&attr, 0)
            posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))
            let argv: [UnsafeMutablePointer<CChar>?] = ([path] + args).map { strdup($0) } + [nil]
            defer { for a in argv { free(a) } }
            var pid: pid_t = 0
            let rc = posix_spawn(&pid, path, &actions, &attr, argv, environ)
            guard rc == 0 else { throw Error.startFailed("posix_spawn \(path): \(String(cString: strerror(rc)))") }
            self.pid = pid
        }

        private typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32

        /// Every descriptor from 3 up is closed in the child: with glibc's
        /// posix_spawn_file_actions_addclosefrom_np (2.34+; not in Swift's Glibc module, hence
        /// dlsym), else one close action per descriptor open now.
        private static func closeInheritedDescriptors(_ actions: inout posix_spawn_file_actions_t) {
            if let sym = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np"),
               unsafeBitCast(sym, to: CloseFrom.self)(&actions, 3) == 0 {
                return
            }
            let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
            for fd in fds.compactMap({ Int32($0) }) where fd > 2 {
                posix_spawn_file_actions_addclose(&actions, fd)
            }
        }

        /// False once the child has exited (and was reaped here).
        var isRunning: Bool {
            if status != nil { return false }
            var s: Int32 = 0
            let r = waitpid(pid, &s, WNOHANG)
            if r == pid || (r < 0 && errno == ECHILD) { status = r == pid ? s : -1; return false }
            return true
        }

        /// Waits until the child exits; false when `timeout` seconds passed first.
        @discardableResult
        func wait(timeout: Double = .infinity) -> Bool {
            let deadline = Date().addingTimeInterval(min(timeout, 86_400))
            while isRunning {
                if Date() >= deadline { return false }
                usleep(5_000)
            }
            return true
        }

        /// The exit status when it exited normally, nil when killed by a signal or still running.
        var exitCode: Int32? {
            guard !isRunning, let s = status, s >= 0, s & 0x7f == 0 else { return nil }
            return (s >> 8) & 0xff
        }

        var exitDescription: String {
            guard !isRunning, let s = status else { return "running" }
            if s < 0 { return "unknown status" }
            return s & 0x7f == 0 ? "status \((s >> 8) & 0xff)" : "signal \(s & 0x7f)"
        }

        deinit {
            if isRunning { kill(pid, SIGKILL); wait() }
        }
    }

    // MARK: - RPC

    /// `kamcmd -s unix:<dir>/ctl.sock args...`; its stdout, or throws with its output.
    @discardableResult
    func rpc(_ args: [String], timeout: Double = 5) throws -> String {
        let tools = try Self.tools()
        let out = dir.appendingPathComponent("rpc-\(UUID().uuidString.prefix(8)).out").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let c = try Child(tools.kamcmd, ["-s", "unix:\(ctlSocket)"] + args, output: out)
        if !c.wait(timeout: timeout) { kill(c.pid, SIGKILL); c.wait() }
        let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        guard c.exitCode == 0 else {
            throw Error.rpcFailed("kamcmd \(args.joined(separator: " ")) on \(name): \(c.exitDescription): \(text)")
        }
        return text
    }

    /// `dmq.list_nodes`, in list order.
    func listNodes() throws -> [DMQListedNode] {
        Self.parseNodeList(try rpc(["dmq.list_nodes"]))
    }

    /// Parses kamcmd's rendering of `dmq.list_nodes` (`{` / `key: value` lines / `}` per node).
    static func parseNodeList(_ text: String) -> [DMQListedNode] {
        var nodes: [DMQListedNode] = []
        var fields: [String: String] = [:]
        for raw in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line == "{" { fields = [:]; continue }
            if line == "}" {
                nodes.append(DMQListedNode(
                    host: fields["host"] ?? "", port: fields["port"].flatMap { Int($0) }, proto: fields["proto"] ?? "",
                    resolvedIP: fields["resolved_ip"] ?? "", status: fields["status"] ?? "", local: fields["local"] == "1"))
                continue
            }
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[String(line[..<colon])] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return nodes
    }

    /// Changes the script channels at run time (`pv.shvSet chans`).
    func setScriptChannels(_ channels: [String]) throws {
        try rpc(["pv.shvSet", "chans", "str", channels.joined(separator: ",")])
    }

    // MARK: - Log

    /// Everything this node logged (all its runs).
    var log: String {
        (try? Data(contentsOf: URL(fileURLWithPath: logPath))).map { String(decoding: $0, as: UTF8.self) } ?? ""
    }

    /// Polls `probe` every 50 ms until it returns true (or the time is up).
    @discardableResult
    static func wait(timeout: Double = 5, until probe: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if probe() { return true }
            if Date() >= deadline { return false }
            usleep(50_000)
        }
    }

    // MARK: - Sending SIP

    /// The status code of a reply's status line.
    static func status(of reply: String) -> Int? {
        let first = reply.prefix { $0 != "\r" && $0 != "\n" }.split(separator: " ")
        guard first.count >= 2, first[0] == "SIP/2.0" else { return nil }
        return Int(first[1])
    }

    /// Sends one request `method sip:user@ip:port` over UDP from `bindIP` (an ephemeral port) and
    /// returns the whole final reply (provisional replies are skipped). Throws after `timeout` s.
    static func sendRequest(method: String, user: String, to ip: String, port: Int, headers: [String] = [],
                            body: String = "", from bindIP: String = "127.0.0.9", timeout: Double = 5) throws -> String {
        let client = try UDPClient(bindIP: bindIP)
        let tag = String(UInt32.random(in: .min ... .max), radix: 16)
        let branch = "z9hG4bK-kam-\(UInt32.random(in: .min ... .max))"
        let callID = "\(UUID().uuidString)@\(bindIP)"
        let lines = [
            "\(method) sip:\(user)@\(ip):\(port) SIP/2.0",
            "Via: SIP/2.0/UDP \(bindIP):\(client.port);branch=\(branch);rport",
            "Max-Forwards: 70",
            "From: <sip:tester@\(bindIP)>;tag=\(tag)",
            "To: <sip:\(user)@\(ip):\(port)>",
            "Call-ID: \(callID)",
            "CSeq: 1 \(method)",
        ] + headers + ["Content-Length: \(body.utf8.count)", "", ""]
        client.send(lines.joined(separator: "\r\n") + body, to: ip, port: port)
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            guard let reply = client.receive(until: deadline) else { break }
            guard reply.contains(callID), let code = status(of: reply) else { continue }
            if code >= 200 { return reply }
        }
        throw Error.noReply("no final reply to \(method) sip:\(user)@\(ip):\(port) within \(timeout) s")
    }

    /// A UDP socket bound to `bindIP` on an ephemeral port.
    final class UDPClient {
        let fd: Int32
        let port: Int

        init(bindIP: String) throws {
            let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            guard fd >= 0 else { throw Error.startFailed("socket() failed") }
            self.fd = fd
            var addr = KamailioNode.sockaddrIn(bindIP, 0)
            let rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard rc == 0 else { close(fd); throw Error.startFailed("cannot bind UDP on \(bindIP): errno \(errno)") }
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
            }
            port = Int(UInt16(bigEndian: addr.sin_port))
        }

        func send(_ text: String, to ip: String, port: Int) {
            var addr = KamailioNode.sockaddrIn(ip, port)
            let bytes = Array(text.utf8)
            _ = withUnsafePointer(to: &addr) { a in
                a.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, bytes, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }

        /// The next datagram, or nil when `deadline` passes first.
        func receive(until deadline: Date) -> String? {
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else { return nil }
            // (a zero timeval would mean "no timeout")
            var tv = timeval(tv_sec: Int(left), tv_usec: max(1_000, Int((left - left.rounded(.down)) * 1_000_000)))
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            var buf = [UInt8](repeating: 0, count: 65_536)
            let n = recv(fd, &buf, buf.count, 0)
            // A signal (SIGCHLD of a kamcmd, say) ends a recv with a timeout early: try again.
            if n < 0 && errno == EINTR { return receive(until: deadline) }
            return n > 0 ? String(decoding: buf[0..<n], as: UTF8.self) : nil
        }

        deinit { close(fd) }
    }
}
