import Foundation
import KSRCore
import Logging
import Testing

@Suite("Logging")
struct LoggingTests {
    @Test func textLinesLookLikeKamailios() {
        let h = KSRLogHandler(label: "core", format: .text)
        let line = h.render(level: .info, message: "tick\n",
                            metadata: ["ksr.module": "script", "ksr.where": "app.lua:12", "worker": "rtimer:ta/0"])
        #expect(line == "rtimer:ta/0 INFO: <script> [app.lua:12]: tick\n")
        let plain = h.render(level: .warning, message: "careful", metadata: nil)
        #expect(plain == "main WARNING: <core>: careful\n")
        let extra = h.render(level: .error, message: "x", metadata: ["b": "2", "a": "1"])
        #expect(extra == "main ERROR: <core>: x a=1 b=2\n")
    }

    @Test func jsonLinesAreValidJSON() throws {
        let h = KSRLogHandler(label: "core", format: .json)
        let line = h.render(level: .notice, message: "quote \" and \\ and \u{1}\n",
                            metadata: ["ksr.module": "script", "worker": "timer"], timestamp: "T")
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String])
        #expect(obj == ["ts": "T", "level": "notice", "module": "script", "worker": "timer", "msg": "quote \" and \\ and \u{1}"])
    }

    @Test func kamailioLevelsMapOntoSwiftLog() {
        #expect(KamailioLogLevel.loggerLevel(debug: 3) == .debug)
        #expect(KamailioLogLevel.loggerLevel(debug: 2) == .info)
        #expect(KamailioLogLevel.loggerLevel(debug: 1) == .notice)
        #expect(KamailioLogLevel.loggerLevel(debug: 0) == .warning)
        #expect(KamailioLogLevel.loggerLevel(debug: -1) == .error)
        #expect(KamailioLogLevel.loggerLevel(debug: -3) == .critical)
        #expect(KamailioLogLevel.level(named: "DBG") == .debug)
        #expect(KamailioLogLevel.level(named: "warn") == .warning)
        #expect(KamailioLogLevel.level(named: "bogus") == .error)
    }
}
