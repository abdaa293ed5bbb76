/// What a worker thread is for. Every worker carries one from its creation; nothing reads a
/// kind back out of a worker's name. `kamailioDescription` is what Kamailio 5.6's `core.psx`
/// prints for the process that does the same job.
public enum WorkerKind: Sendable, Hashable {
    /// A SIP receiver (one of `children`): runs the routes for messages of every listen socket.
    /// `udp`: the UDP sockets it serves, as `ip:port`; `tcp`: whether TCP messages come to it too.
    case sipReceiver(child: Int, udp: [String], tcp: Bool)
    /// A DMQ worker: runs the `KSR.dmq.handle_message()` jobs.
    case dmqWorker(child: Int)
    /// A worker of an async group (`async_workers`, `async_workers_group`).
    case asyncTask(group: String, child: Int)
    /// The one worker for every rtimer `mode=0` timer.
    case sharedTimer
    /// Worker `child` of the rtimer `mode=N` timer `timer`.
    case rtimer(timer: String, child: Int)
    /// Transaction timers (retransmissions, fr_timer); runs no Lua.
    case tmTimer
    /// DMQ pings and node list upkeep; runs no Lua.
    case dmqTimer
    /// The configuration pass: the script's top level, run once before the workers start.
    case config

    /// Kamailio's `core.psx` description of the process doing this job:
    /// `udp receiver child=0 sock=127.0.0.1:5060`, `DMQ WORKER`, `Async Task Worker - grp`,
    /// `RTIMER EXEC child=0 timer=ta`, `timer` (tm's timers), `slow timer` (where Kamailio
    /// runs rtimer `mode=0` timers and dmq's ping timer).
    public var kamailioDescription: String {
        switch self {
        case .sipReceiver(let child, let udp, let tcp):
            if udp.isEmpty { return "tcp receiver (generic) child=\(child)" }
            let socks = udp.map { "sock=\($0)" }.joined(separator: " ")
            return "udp receiver child=\(child) \(socks)" + (tcp ? " (and tcp)" : "")
        case .dmqWorker: return "DMQ WORKER"
        case .asyncTask(let group, _): return "Async Task Worker - \(group)"
        case .sharedTimer, .dmqTimer: return "slow timer"
        case .rtimer(let timer, let child): return "RTIMER EXEC child=\(child) timer=\(timer)"
        case .tmTimer: return "timer"
        case .config: return "configuration"
        }
    }

    /// A short stable label (`core.psx` KIND): sip, dmq, async, timer, rtimer, tm, dmq-timer, config.
    public var label: String {
        switch self {
        case .sipReceiver: "sip"
        case .dmqWorker: "dmq"
        case .asyncTask: "async"
        case .sharedTimer: "timer"
        case .rtimer: "rtimer"
        case .tmTimer: "tm"
        case .dmqTimer: "dmq-timer"
        case .config: "config"
        }
    }

    /// The worker's index among its peers (child number), 0 for a single worker.
    public var index: Int {
        switch self {
        case .sipReceiver(let child, _, _), .dmqWorker(let child), .asyncTask(_, let child), .rtimer(_, let child): child
        case .sharedTimer, .tmTimer, .dmqTimer, .config: 0
        }
    }
}
