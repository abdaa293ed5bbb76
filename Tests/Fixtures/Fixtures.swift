import Foundation

/// The KDMQ messages captured from a real Kamailio 5.6.3 cluster (`dmq/*.sip`, each one SIP
/// message exactly as it was on the wire), shared by the codec and DMQ tests. Read at run time;
/// the folder is excluded from compilation.
public enum Fixtures {
    public static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()
        .appendingPathComponent("dmq")

    /// `01-notification-join-request.sip`, ... sorted.
    public static let names: [String] = {
        let all = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return all.filter { $0.hasSuffix(".sip") }.sorted()
    }()

    public static func bytes(_ name: String) -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: directory.appendingPathComponent(name).path) else {
            return []
        }
        return [UInt8](data)
    }

    /// The fixture whose name starts with `NN-`.
    public static func named(_ number: String) -> String {
        names.first { $0.hasPrefix(number + "-") } ?? "missing-\(number)"
    }

    public static func bytes(number: String) -> [UInt8] { bytes(named(number)) }

    /// Request fixture → the captured reply to it.
    public static let requestReplyPairs: [(request: String, reply: String)] = [
        ("01", "02"), ("03", "04"), ("05", "06"), ("07", "08"), ("09", "10"), ("11", "12"),
        ("13", "14"), ("15", "16"), ("17", "18"), ("20", "21"), ("22", "23"), ("27", "28"),
        ("29", "30"), ("31", "32"),
    ]
}
