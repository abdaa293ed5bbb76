import KSRBase
import MQueue
import Testing

/// Runs `body` and returns the `ParamError` message it throws, or `nil` if it does not throw.
func errorMessage(_ body: () throws(ParamError) -> Void) -> String? {
    do throws(ParamError) {
        try body()
        return nil
    } catch {
        return error.message
    }
}

private func parseError(_ value: String) -> String? {
    errorMessage { () throws(ParamError) in _ = try QueueDefinition(parsing: value) }
}

@Suite struct QueueDefinitionTests {
    @Test func fullDefinition() throws {
        let def = try QueueDefinition(parsing: "name=q1;size=10;addmode=2;dbmode=1")
        #expect(def.name == "q1")
        #expect(def.size == 10)
        #expect(def.addMode == .keepNewest)
        #expect(def.dbMode == .loadAndSave)
    }

    @Test func defaults() throws {
        let def = try QueueDefinition(parsing: "name=q")
        #expect(def == (try QueueDefinition(name: "q", size: 0, addMode: .append, dbMode: .none)))
    }

    @Test func keysAreCaseInsensitiveAndTrailingSemicolonAllowed() throws {
        let def = try QueueDefinition(parsing: "NAME=Qx;Size=3;ADDMODE=1;DbMode=3;")
        #expect(def.name == "Qx")  // the value keeps its case
        #expect(def.size == 3)
        #expect(def.addMode == .keepOldest)
        #expect(def.dbMode == .saveOnly)
    }

    @Test func repeatedKeyKeepsFirstValue() throws {
        let def = try QueueDefinition(parsing: "name=a;size=1;Name=b;SIZE=2;addmode=1;addmode=2")
        #expect(def.name == "a")
        #expect(def.size == 1)
        #expect(def.addMode == .keepOldest)
    }

    @Test func whitespaceAndSignsAccepted() throws {
        let def = try QueueDefinition(parsing: " name = q ; size = +5 ; addmode = 0 ")
        #expect(def.name == "q")
        #expect(def.size == 5)
    }

    @Test func everyModeParses() throws {
        for mode in AddMode.allCases {
            #expect(try QueueDefinition(parsing: "name=q;addmode=\(mode.rawValue)").addMode == mode)
        }
        for mode in DBMode.allCases {
            #expect(try QueueDefinition(parsing: "name=q;dbmode=\(mode.rawValue)").dbMode == mode)
        }
    }

    @Test func missingName() {
        #expect(parseError("size=3") == "mqueue name not defined: size=3")
        #expect(parseError("name=;size=3") == "mqueue name not defined: name=;size=3")
    }

    @Test func unknownParam() {
        #expect(parseError("name=q;Limit=3") == "unknown param: Limit")
        #expect(parseError("size=3;foo=1") == "unknown param: foo")  // reported before the missing name
    }

    @Test func invalidSize() {
        #expect(parseError("name=q;size=abc") == "invalid size: abc (expected a non-negative integer up to 2147483647)")
        #expect(parseError("name=q;size=-1") == "invalid size: -1 (expected a non-negative integer up to 2147483647)")
        #expect(parseError("name=q;size=10x") == "invalid size: 10x (expected a non-negative integer up to 2147483647)")
        #expect(parseError("name=q;size=") == "invalid size:  (expected a non-negative integer up to 2147483647)")
        #expect(
            parseError("name=q;size=2147483648")
                == "invalid size: 2147483648 (expected a non-negative integer up to 2147483647)")
        #expect(parseError("name=q;size=2147483647") == nil)
    }

    @Test func invalidAddMode() {
        #expect(parseError("name=q;addmode=3") == "invalid addmode: 3 (expected 0, 1 or 2)")
        #expect(parseError("name=q;addmode=-1") == "invalid addmode: -1 (expected 0, 1 or 2)")
        #expect(parseError("name=q;addmode=x") == "invalid addmode: x (expected 0, 1 or 2)")
    }

    @Test func invalidDBMode() {
        #expect(parseError("name=q;dbmode=4") == "invalid dbmode: 4 (expected 0, 1, 2 or 3)")
        #expect(parseError("name=q;dbmode=one") == "invalid dbmode: one (expected 0, 1, 2 or 3)")
    }

    @Test func syntaxErrorsFromParamList() {
        #expect(parseError("") == "empty parameter value")
        #expect(parseError("name") == "missing '=' in 'name'")
    }

    @Test func fromParts() throws {
        // mqueue_name: the name with the current mqueue_size and mqueue_addmode, dbmode 0.
        let def = try QueueDefinition(name: "byname", size: 4, addMode: .keepOldest)
        #expect(def.name == "byname")
        #expect(def.size == 4)
        #expect(def.addMode == .keepOldest)
        #expect(def.dbMode == .none)
        #expect(errorMessage { () throws(ParamError) in _ = try QueueDefinition(name: "") } == "mqueue name not defined: ")
        #expect(
            errorMessage { () throws(ParamError) in _ = try QueueDefinition(name: "q", size: -2) }
                == "invalid size: -2 (expected a non-negative integer up to 2147483647)")
    }

    @Test func modParamHelpers() throws {
        #expect(try QueueDefinition.parseSize("12") == 12)
        #expect(try QueueDefinition.parseAddMode("2") == .keepNewest)
        #expect(try QueueDefinition.parseDBMode("0") == DBMode.none)
        #expect(
            errorMessage { () throws(ParamError) in _ = try QueueDefinition.parseSize("1.5") }
                == "invalid size: 1.5 (expected a non-negative integer up to 2147483647)")
    }

    @Test func dbModeFlags() {
        #expect(!DBMode.none.loadsAtStartup && !DBMode.none.savesAtShutdown)
        #expect(DBMode.loadAndSave.loadsAtStartup && DBMode.loadAndSave.savesAtShutdown)
        #expect(DBMode.loadOnly.loadsAtStartup && !DBMode.loadOnly.savesAtShutdown)
        #expect(!DBMode.saveOnly.loadsAtStartup && DBMode.saveOnly.savesAtShutdown)
    }
}

@Suite struct QueueRegistryTests {
    @Test func defineAndLookUp() throws {
        let registry = QueueRegistry()
        #expect(registry.queues.isEmpty)
        #expect(registry.queue(named: "Q1") == nil)
        let q1 = try registry.define(QueueDefinition(parsing: "name=Q1"))
        let q2 = try registry.define(QueueDefinition(parsing: "name=q1;size=3"))  // different name
        let q0 = try registry.define(QueueDefinition(name: "a"))
        #expect(registry.queue(named: "Q1") === q1)
        #expect(registry.queue(named: "q1") === q2)
        #expect(registry.queue(named: "a") === q0)
        #expect(registry.queue(named: "A") == nil)
        #expect(registry.queues.map(\.name) == ["Q1", "q1", "a"])
        #expect(q2.definition.size == 3)
    }

    @Test func redefinitionFails() throws {
        let registry = QueueRegistry()
        let first = try registry.define(QueueDefinition(parsing: "name=Q;size=1"))
        let message = errorMessage { () throws(ParamError) in
            try registry.define(QueueDefinition(parsing: "name=Q;size=5"))
        }
        #expect(message == "mqueue redefined: Q")
        #expect(registry.queues.count == 1)
        #expect(registry.queue(named: "Q") === first)
    }

    @Test func concurrentLookupsWhileDefining() async throws {
        let registry = QueueRegistry()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for i in 0..<200 { try registry.define(QueueDefinition(name: "q\(i)")) }
            }
            group.addTask {
                for _ in 0..<2000 {
                    let all = registry.queues
                    // A snapshot is always a prefix of the definition order.
                    #expect(all.enumerated().allSatisfy { $0.element.name == "q\($0.offset)" })
                    _ = registry.queue(named: "q10")
                }
            }
            try await group.waitForAll()
        }
        #expect(registry.queues.count == 200)
        #expect(registry.queue(named: "q199")?.name == "q199")
    }
}
