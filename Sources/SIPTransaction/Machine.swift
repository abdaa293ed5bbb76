import SIP

/// One of the four machines, for the table.
enum Machine: Sendable {
    case inviteServer(ServerInviteTransaction)
    case nonInviteServer(ServerNonInviteTransaction)
    case inviteClient(ClientInviteTransaction)
    case nonInviteClient(ClientNonInviteTransaction)

    var kind: TransactionKind {
        switch self {
        case .inviteServer: .inviteServer
        case .nonInviteServer: .nonInviteServer
        case .inviteClient: .inviteClient
        case .nonInviteClient: .nonInviteClient
        }
    }

    var state: TransactionState {
        switch self {
        case .inviteServer(let m): m.state
        case .nonInviteServer(let m): m.state
        case .inviteClient(let m): m.state
        case .nonInviteClient(let m): m.state
        }
    }

    var request: SIPMessage {
        switch self {
        case .inviteServer(let m): m.request
        case .nonInviteServer(let m): m.request
        case .inviteClient(let m): m.request
        case .nonInviteClient(let m): m.request
        }
    }

    var reliable: Bool {
        switch self {
        case .inviteServer(let m): m.reliable
        case .nonInviteServer(let m): m.reliable
        case .inviteClient(let m): m.reliable
        case .nonInviteClient(let m): m.reliable
        }
    }

    var timers: TransactionTimers {
        switch self {
        case .inviteServer(let m): m.timers
        case .nonInviteServer(let m): m.timers
        case .inviteClient(let m): m.timers
        case .nonInviteClient(let m): m.timers
        }
    }

    var isSuspended: Bool {
        switch self {
        case .inviteServer(let m): m.isSuspended
        case .nonInviteServer(let m): m.isSuspended
        default: false
        }
    }

    /// Server: a response (provisional or final) was sent.
    var responded: Bool {
        switch self {
        case .inviteServer(let m): m.lastProvisional != nil || m.finalStatus != nil
        case .nonInviteServer(let m): m.lastProvisional != nil || m.finalStatus != nil
        default: false
        }
    }

    /// Server: a final response was sent.
    var finalSent: Bool {
        switch self {
        case .inviteServer(let m): m.finalStatus != nil
        case .nonInviteServer(let m): m.finalStatus != nil
        default: false
        }
    }

    var nextDeadline: UInt64? {
        switch self {
        case .inviteServer(let m): m.nextDeadline
        case .nonInviteServer(let m): m.nextDeadline
        case .inviteClient(let m): m.nextDeadline
        case .nonInviteClient(let m): m.nextDeadline
        }
    }

    mutating func fire(now: UInt64) -> [TransactionEffect] {
        switch self {
        case .inviteServer(var m): defer { self = .inviteServer(m) }; return m.fire(now: now)
        case .nonInviteServer(var m): defer { self = .nonInviteServer(m) }; return m.fire(now: now)
        case .inviteClient(var m): defer { self = .inviteClient(m) }; return m.fire(now: now)
        case .nonInviteClient(var m): defer { self = .nonInviteClient(m) }; return m.fire(now: now)
        }
    }

    mutating func start(now: UInt64) -> [TransactionEffect] {
        switch self {
        case .inviteServer(var m): defer { self = .inviteServer(m) }; return m.start(now: now)
        case .nonInviteServer(var m): defer { self = .nonInviteServer(m) }; return m.start(now: now)
        case .inviteClient(var m): defer { self = .inviteClient(m) }; return m.start(now: now)
        case .nonInviteClient(var m): defer { self = .nonInviteClient(m) }; return m.start(now: now)
        }
    }

    mutating func transportError() -> [TransactionEffect] {
        switch self {
        case .inviteServer(var m): defer { self = .inviteServer(m) }; return m.transportError()
        case .nonInviteServer(var m): defer { self = .nonInviteServer(m) }; return m.transportError()
        case .inviteClient(var m): defer { self = .inviteClient(m) }; return m.transportError()
        case .nonInviteClient(var m): defer { self = .nonInviteClient(m) }; return m.transportError()
        }
    }

    mutating func terminate() -> [TransactionEffect] {
        switch self {
        case .inviteServer(var m): defer { self = .inviteServer(m) }; return m.terminate()
        case .nonInviteServer(var m): defer { self = .nonInviteServer(m) }; return m.terminate()
        case .inviteClient(var m): defer { self = .inviteClient(m) }; return m.terminate()
        case .nonInviteClient(var m): defer { self = .nonInviteClient(m) }; return m.terminate()
        }
    }

    mutating func receiveRetransmission(now: UInt64) -> [TransactionEffect] {
        switch self {
        case .inviteServer(var m): defer { self = .inviteServer(m) }; return m.receiveRetransmission(now: now)
        case .nonInviteServer(var m): defer { self = .nonInviteServer(m) }; return m.receiveRetransmission(now: now)
        default: return []
        }
    }

    mutating func receiveACK(now: UInt64) -> [TransactionEffect]? {
        guard case .inviteServer(var m) = self else { return nil }
        defer { self = .inviteServer(m) }
        return m.receiveACK(now: now)
    }

    mutating func receive(response: SIPMessage, now: UInt64) -> [TransactionEffect] {
        switch self {
        case .inviteClient(var m): defer { self = .inviteClient(m) }; return m.receive(response: response, now: now)
        case .nonInviteClient(var m): defer { self = .nonInviteClient(m) }; return m.receive(response: response, now: now)
        default: return []
        }
    }

    mutating func respond(status: Int, bytes: [UInt8], now: UInt64) throws(TransactionError) -> [TransactionEffect] {
        switch self {
        case .inviteServer(var m):
            let out = try m.respond(status: status, bytes: bytes, now: now)
            self = .inviteServer(m)
            return out
        case .nonInviteServer(var m):
            let out = try m.respond(status: status, bytes: bytes, now: now)
            self = .nonInviteServer(m)
            return out
        default:
            throw .wrongKind
        }
    }

    mutating func suspend(now: UInt64) throws(TransactionError) -> [TransactionEffect] {
        switch self {
        case .inviteServer(var m):
            let out = try m.suspend(now: now)
            self = .inviteServer(m)
            return out
        case .nonInviteServer(var m):
            let out = try m.suspend(now: now)
            self = .nonInviteServer(m)
            return out
        default:
            throw .wrongKind
        }
    }

    mutating func resume() throws(TransactionError) -> [TransactionEffect] {
        switch self {
        case .inviteServer(var m):
            let out = try m.resume()
            self = .inviteServer(m)
            return out
        case .nonInviteServer(var m):
            let out = try m.resume()
            self = .nonInviteServer(m)
            return out
        default:
            throw .wrongKind
        }
    }

    mutating func requestCancel(now: UInt64) throws(TransactionError) -> [TransactionEffect] {
        guard case .inviteClient(var m) = self else { throw .wrongKind }
        defer { self = .inviteClient(m) }
        return m.requestCancel(now: now)
    }
}
