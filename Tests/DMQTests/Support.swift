import DMQ
import Foundation
import KSRTestFixtures
import SIP

extension Fixtures {
    static func message(_ number: String) throws -> SIPMessage {
        try SIPMessage(bytes(named(number)))
    }
}

/// `sip:127.0.0.N:PORT` addresses of the captured cluster.
let node1 = DMQNodeAddress(host: "127.0.0.1", port: 5091)
let node2 = DMQNodeAddress(host: "127.0.0.2", port: 5092)
let node3 = DMQNodeAddress(host: "127.0.0.3", port: 5093)

func addr(_ text: String) -> DMQNodeAddress {
    do {
        return try DMQNodeAddress(parsing: text)
    } catch {
        fatalError("test address \(text): \(error)")
    }
}

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// The lines of a rendered list as a set (order carries no meaning, spec 4.1).
func lineSet(_ body: String) -> Set<String> {
    Set(body.components(separatedBy: "\r\n").filter { !$0.isEmpty })
}

func lineSet(_ body: some Collection<UInt8>) -> Set<String> {
    lineSet(String(decoding: Array(body), as: UTF8.self))
}

func membership(_ local: DMQNodeAddress = node1, _ edit: (inout DMQMembershipConfig) -> Void = { _ in },
                resolver: @escaping @Sendable (String) -> String? = { _ in nil }) -> DMQMembership {
    var c = DMQMembershipConfig(local: local)
    edit(&c)
    return DMQMembership(config: c, resolver: resolver)
}

extension DMQMembership {
    func status(_ a: DMQNodeAddress) -> DMQNodeState? { node(a)?.status }

    /// A notification from `sender` whose body is `lines` (CRLF each).
    @discardableResult
    func notify(_ lines: [String], mf: Int? = 1, from sender: DMQNodeAddress?)
        -> (reply: String, rebroadcast: [DMQOutgoing], report: DMQMergeReport, events: [DMQEvent]) {
        receivedNotification(body: bytes(lines.map { $0 + "\r\n" }.joined()), maxForwards: mf, sender: sender)
    }

    @discardableResult
    func timeout(_ a: DMQNodeAddress) -> [DMQEvent] { replyReceived(from: a, status: 408, body: []).events }

    @discardableResult
    func ok(_ a: DMQNodeAddress, body: String = "") -> (report: DMQMergeReport, events: [DMQEvent]) {
        replyReceived(from: a, status: 200, body: bytes(body))
    }
}
