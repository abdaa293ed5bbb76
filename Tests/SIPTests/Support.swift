import Foundation
import KSRTestFixtures
import SIP

/// `text` with every LF turned into CRLF (test messages are written with LF line ends).
func crlf(_ text: String) -> [UInt8] {
    var out: [UInt8] = []
    for b in text.utf8 {
        if b == 10 { out.append(13) }
        out.append(b)
    }
    return out
}

/// Parses `text` (LF → CRLF) as a datagram; nil on error.
func parse(_ text: String, framing: SIPMessage.Framing = .datagram) -> SIPMessage? {
    try? SIPMessage(crlf(text), framing: framing)
}

/// The error thrown for `bytes`, or nil when they parse.
func parseError(_ bytes: [UInt8], framing: SIPMessage.Framing = .datagram,
                limits: SIPMessage.Limits = .default) -> SIPParseError? {
    do {
        _ = try SIPMessage(bytes, framing: framing, limits: limits)
        return nil
    } catch {
        return error
    }
}

func string(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

/// Index of the first CRLFCRLF + 4 in `bytes`, or nil.
func headerEnd(_ bytes: [UInt8]) -> Int? {
    guard bytes.count >= 4 else { return nil }
    for i in 0...(bytes.count - 4)
    where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 {
        return i + 4
    }
    return nil
}
