import Foundation
import GRDB
import KSRBase
import MQueue
import MQueueSQLite
import Synchronization
import Testing

/// A fresh database path in a new temporary directory, removed by `cleanUp()`.
private struct TempDB {
    let dir: URL
    var path: String { dir.appendingPathComponent("mq.db").path }

    init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("mqueue-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    func cleanUp() { try? FileManager.default.removeItem(at: dir) }

    /// Runs SQL directly on the file.
    func execute(_ sql: String) throws {
        let db = try DatabaseQueue(path: path)
        try db.write { try $0.execute(sql: sql) }
    }

    /// `key=val` of every row of `table` in id order.
    func rows(_ table: String) throws -> [String] {
        let db = try DatabaseQueue(path: path)
        return try db.read { db in
            try Row.fetchAll(db, sql: "SELECT key, val FROM \(quoted(table)) ORDER BY id")
                .map { "\($0[0] as String)=\($0[1] as String)" }
        }
    }

    func tableExists(_ table: String) throws -> Bool {
        let db = try DatabaseQueue(path: path)
        return try db.read { try $0.tableExists(table) }
    }
}

/// An SQL identifier, inner double quotes doubled.
private func quoted(_ name: String) -> String {
    "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
}

private func queue(_ spec: String) -> MessageQueue {
    MessageQueue(try! QueueDefinition(parsing: spec))
}

private func contents(_ queue: MessageQueue) -> [String] {
    queue.drain().map { "\($0.key)=\($0.value)" }
}

private func errorMessage(_ body: () throws(ParamError) -> Void) -> String? {
    do throws(ParamError) {
        try body()
        return nil
    } catch {
        return error.message
    }
}

private func storeError(_ body: () throws(QueueStoreError) -> Void) -> String? {
    do throws(QueueStoreError) {
        try body()
        return nil
    } catch {
        return error.message
    }
}

@Suite struct DBURLTests {
    private func path(_ url: String) -> Result<String, ParamError> {
        Result { () throws(ParamError) in try SQLiteQueueStore.path(fromURL: url) }
    }

    @Test func absoluteForms() {
        #expect(path("sqlite:///var/lib/mq.db") == .success("/var/lib/mq.db"))
        #expect(path("sqlite:////var/lib/mq.db") == .success("/var/lib/mq.db"))
        #expect(path("SQLite:///tmp/x.db") == .success("/tmp/x.db"))
        #expect(path("  sqlite:///tmp/x.db ") == .success("/tmp/x.db"))
    }

    @Test func relativeForm() {
        #expect(path("sqlite://relative.db") == .success("relative.db"))
        #expect(path("sqlite://data/q.db") == .success("data/q.db"))
    }

    @Test func unsupportedSchemes() {
        #expect(path("mysql://kamailio:secret@localhost/kamailio")
            == .failure(ParamError("unsupported db_url: mysql://... (only sqlite:// is supported)")))
        #expect(path("postgres://h/db")
            == .failure(ParamError("unsupported db_url: postgres://... (only sqlite:// is supported)")))
        #expect(path("/tmp/x.db") == .failure(ParamError("unsupported db_url: /tmp/x.db (only sqlite:// is supported)")))
        #expect(path("sqlite:/tmp/x.db")
            == .failure(ParamError("unsupported db_url: sqlite://... (only sqlite:// is supported)")))
    }

    @Test func missingPath() {
        #expect(path("sqlite://") == .failure(ParamError("invalid db_url: sqlite:// (no database file path)")))
        #expect(path("sqlite:///") == .failure(ParamError("invalid db_url: sqlite:/// (no database file path)")))
    }

    @Test func openByURL() throws {
        let tmp = try TempDB()
        defer { tmp.cleanUp() }
        let store = try SQLiteQueueStore(url: "sqlite:///" + tmp.path)
        #expect(store.path == tmp.path)
        #expect(FileManager.default.fileExists(atPath: tmp.path))
        #expect(throws: ParamError.self) { try SQLiteQueueStore(url: "mysql://x/y") }
    }
}

@Suite struct LoadTests {
    @Test func loadsInIDOrderWithSizeLimitAndEmptiesTable() throws {
        let tmp = try TempDB()
        defer { tmp.cleanUp() }
        let store = try SQLiteQueueStore(path: tmp.path)
        let q = queue("name=q;size=2;dbmode=1")
        _ = try store.load(into: q)  // creates the table
        try tmp.execute("INSERT INTO q (id, key, val) VALUES (30, 'c', '3'), (10, 'a', '1'), (20, 'b', '2')")
        #expect(try store.load(into: q) == 3)
        #expect(try tmp.rows("q") == [])
        #expect(q.stats.drops == 1)
        #expect(contents(q) == ["b=2", "c=3"])
    }

    @Test func loadAppliesAddMode() throws {
        let tmp = try TempDB()
        defer { tmp.cleanUp() }
        try tmp.execute(
            """
            CREATE TABLE "Q2" (id INTEGER PRIMARY KEY AUTOINCREMENT, key VARCHAR(64) NOT NULL DEFAULT '',
                val VARCHAR(4096) NOT NULL DEFAULT '');
            INSERT INTO "Q2" (key, val) VALUES ('a', '1'), ('b', '2'), ('a', '3');
            """)
        let store = try SQLiteQueueStore(path: tmp.path)
        let q = queue("name=Q2;addmode=2")
        q.add(key: "b", value: "0")  // already queued before the load
        #expect(try store.load(into: q) == 3)
        #expect(contents(q) == ["b=2", "a=3"])
    }

    @Test func missingTableIsCreated() throws {
        let tmp = try TempDB()
        defer { tmp.cleanUp() }
        let store = try SQLiteQueueStore(path: tmp.path)
        #expect(try !tmp.tableExists("fresh"))
        #expect(try store.load(into: queue("name=fresh")) == 0)
        #expect(try tmp.tableExists("fresh"))
        let db = try DatabaseQueue(path: tmp.path)
        let columns = try db.read { try $0.columns(in: "fresh") }
        #expect(columns.map(\.name) == ["id", "key", "val"])
        #expect(columns.map(\.type) == ["INTEGER", "VARCHAR(64)", "VARCHAR(4096)"])
        #expect(columns.map(\.isNotNull) == [false, true, true])
        #expect(try db.read { try $0.primaryKey("fresh").columns } == ["id"])
    }

    @Test func nullOrNonTextIsAnErrorAndNothingChanges() throws {
        let tmp = try TempDB()
        defer { tmp.cleanUp() }
        try tmp.execute(
            """
            CREATE TABLE "bad q" (id INTEGER PRIMARY KEY AUTOINCREMENT, key VARCHAR(64), val VARCHAR(4096));
            INSERT INTO "bad q" (id, key, val) VALUES (1, 'a', '1'), (2, NULL, '2');
            CREATE TABLE blobs (id INTEGER PRIMARY KEY AUTOINCREMENT, key VARCHAR(64), val VARCHAR(4096));
            INSERT INTO blobs (id, key, val) VALUES (7, 'k', X'00FF');
            """)
        let store = try SQLiteQueueStore(path: tmp.path)
        let q = queue("name=bad q")
        #expect(storeError { () throws(QueueStoreError) in try store.load(into: q) }
            == #"mqueue table "bad q": row id 2 has a NULL key"#)
        #expect(q.count == 0)  // nothing added
        let db = try DatabaseQueue(path: tmp.path)
        #expect(try db.read { try Int.fetchOne($0, sql: #"SELECT COUNT(*) FROM "bad q""#) } == 2)  // not deleted
        #expect(storeError { () throws(QueueStoreError) in try store.load(into: queue("name=blobs")) }
            == #"mqueue table "blobs": row id 7 has a non-text val"#)
        #expect(try db.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM blobs") } == 1)
    }
}

@Suite struct SaveTests {
    @Test func saveAppendsAfterExistingRowsAndDrains() throws {
        let tmp = try TempDB()
        defer { tmp.cleanUp() }
        let store = try SQLiteQueueStore(path: tmp.path)
        let q = queue("name=q;dbmode=3")
        q.add(key: "old", value: "0")
        #expect(try store.save(from: q) == 1)
        q.add(key: "a", value: "1")
        q.add(key: "b", value: "2")
        #expect(try store.save(from: q) == 2)
        #expect(q.count == 0)
        #expect(try tmp.rows("q") == ["old=0", "a=1", "b=2"])
        #expect(try store.save(from: q) == 0)
        #expect(try tmp.rows("q") == ["old=0", "a=1", "b=2"])
    }

    @Test func emptyKeysAndValuesRoundTrip() throws {
        let tmp = try TempDB()
        defer { tmp.cleanUp() }
        let store = try SQLiteQueueStore(path: tmp.path)
        let q = queue("name=q")
        q.add(key: "", value: "v")
        q.add(key: "k", value: "")
        q.add(key: "", value: "")
        #expect(try store.save(from: q) == 3)
        #expect(try tmp.rows("q") == ["=v", "k=", "="])
        #expect(try store.load(into: q) == 3)
        #expect(contents(q) == ["=v", "k=", "="])
    }

    @Test func oddTableNamesAreQuoted() throws {
        let tmp = try TempDB()
        defer { tmp.cleanUp() }
        let store = try SQLiteQueueStore(path: tmp.path)
        for name in [#"we"ird; DROP TABLE x"#, "select", "Q1", "é", "É"] {
            let q = queue("name=\(name)")
            q.add(key: "k", value: name)
            try store.save(from: q)
        }
        #expect(try tmp.tableExists(#"we"ird; DROP TABLE x"#))
        for name in [#"we"ird; DROP TABLE x"#, "select", "Q1", "é", "É"] {
            let q = queue("name=\(name)")
            #expect(try store.load(into: q) == 1)
            #expect(contents(q) == ["k=\(name)"])
        }
    }

    @Test func caseClashingTableNames() throws {
        let defs = try ["name=Q1;dbmode=1", "name=q2;dbmode=2", "name=Mem", "name=mem;dbmode=3", "name=Q2;dbmode=3"]
            .map { try QueueDefinition(parsing: $0) }
        let message = errorMessage { () throws(ParamError) in try SQLiteQueueStore.checkTableNames(defs) }
        #expect(message == "mqueue names q2 and Q2 map to the same SQLite table (table names are case-insensitive)")
        // Only queues with a dbmode count, and only ASCII letters fold (as in SQLite).
        let fine = try ["name=Q1;dbmode=1", "name=q1", "name=É;dbmode=1", "name=é;dbmode=1"]
            .map { try QueueDefinition(parsing: $0) }
        #expect(errorMessage { () throws(ParamError) in try SQLiteQueueStore.checkTableNames(fine) } == nil)
    }

    @Test func nulInNameIsRejected() throws {
        let tmp = try TempDB()
        defer { tmp.cleanUp() }
        let store = try SQLiteQueueStore(path: tmp.path)
        let q = MessageQueue(try QueueDefinition(name: "a\u{0}b"))
        q.add(key: "k", value: "v")
        #expect(storeError { () throws(QueueStoreError) in try store.save(from: q) }
            == "mqueue name \"a\u{0}b\" cannot be a table name (NUL character)")
        #expect(q.count == 1)
    }

    @Test func failedSaveKeepsItems() throws {
        let tmp = try TempDB()
        defer { tmp.cleanUp() }
        try tmp.execute("CREATE TABLE q (other TEXT)")
        let store = try SQLiteQueueStore(path: tmp.path)
        let q = queue("name=q")
        q.add(key: "a", value: "1")
        q.add(key: "b", value: "2")
        let message = storeError { () throws(QueueStoreError) in try store.save(from: q) }
        #expect(message?.hasPrefix(#"cannot save 2 items of mqueue "q" to "#) == true)
        #expect(contents(q) == ["a=1", "b=2"])
    }

    @Test func restartRoundTrip() throws {
        let tmp = try TempDB()
        defer { tmp.cleanUp() }
        let url = "sqlite:////" + tmp.path.drop(while: { $0 == "/" })
        do {
            let registry = QueueRegistry()
            let both = try registry.define(QueueDefinition(parsing: "name=both;dbmode=1;addmode=2"))
            let loadOnly = try registry.define(QueueDefinition(parsing: "name=loadonly;dbmode=2"))
            let saveOnly = try registry.define(QueueDefinition(parsing: "name=saveonly;dbmode=3"))
            let memory = try registry.define(QueueDefinition(parsing: "name=memory"))
            for i in 0..<100 { both.add(key: "k\(i % 60)", value: "\(i)") }
            loadOnly.add(key: "x", value: "1")
            saveOnly.add(key: "y", value: "2")
            memory.add(key: "z", value: "3")
            let store = try SQLiteQueueStore(url: url)
            #expect(try store.saveAll(from: registry) == 61)
            #expect(loadOnly.count == 1)  // dbmode 2 does not save
        }
        try tmp.execute("INSERT INTO saveonly (key, val) VALUES ('y', 'old')")
        let registry = QueueRegistry()
        let both = try registry.define(QueueDefinition(parsing: "name=both;dbmode=1;addmode=2"))
        let saveOnly = try registry.define(QueueDefinition(parsing: "name=saveonly;dbmode=3"))
        let store = try SQLiteQueueStore(url: url)
        #expect(try store.loadAll(into: registry) == 60)
        let expected = (40..<60).map { "k\($0)=\($0)" } + (60..<100).map { "k\($0 - 60)=\($0)" }
        #expect(contents(both) == expected)
        #expect(saveOnly.count == 0)  // dbmode 3 does not load
        #expect(try tmp.rows("saveonly") == ["y=2", "y=old"])
        #expect(try tmp.rows("both") == [])
    }
}

/// A write that fails its first `failures` calls, then appends to the database at `path`.
private final class FlakyWrite: Sendable {
    let failures: Int
    let path: String
    private let calls = Mutex(0)

    init(failures: Int, path: String) {
        self.failures = failures
        self.path = path
    }

    var count: Int { calls.withLock { $0 } }

    var write: ShutdownSaver.Write {
        { (items, queue) throws(QueueStoreError) in
            let n = self.calls.withLock { c in
                c += 1
                return c
            }
            if n <= self.failures { throw QueueStoreError("injected failure \(n)") }
            try SQLiteQueueStore(path: self.path).append(items, toTableOf: queue)
        }
    }
}

/// The decoded lines of a fallback file: `key=val` each.
private func fallbackItems(_ path: String) throws -> [String] {
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    let text = String(decoding: data, as: UTF8.self)
    #expect(text.hasSuffix("\n"))
    return try text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map { line in
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String]
        #expect(object?.keys.sorted() == ["key", "val"], "\(line)")
        return "\(object?["key"] ?? "?")=\(object?["val"] ?? "?")"
    }
}

@Suite("saving at shutdown: retry, fallback file")
struct ShutdownSaveTests {
    /// 2024-02-29 23:59:58 UTC.
    static let time = 1_709_251_198

    @Test func savedAtOnce() throws {
        let tmp = try TempDB()
        defer { tmp.cleanUp() }
        let q = queue("name=q;dbmode=1")
        for i in 0..<3 { q.add(key: "k\(i)", value: "\(i)") }
        let flaky = FlakyWrite(failures: 0, path: tmp.path)
        let saver = ShutdownSaver(databasePath: tmp.path, retryDelay: .zero, write: flaky.write)
        #expect(saver.save(q) == .saved(count: 3, firstError: nil))
        #expect(flaky.count == 1)
        #expect(q.count == 0)
        #expect(try tmp.rows("q") == ["k0=0", "k1=1", "k2=2"])
    }

    @Test func oneFailureIsRetried() throws {
        let tmp = try TempDB()
        defer { tmp.cleanUp() }
        let q = queue("name=q;dbmode=1")
        for i in 0..<3 { q.add(key: "k\(i)", value: "\(i)") }
        let flaky = FlakyWrite(failures: 1, path: tmp.path)
        let saver = ShutdownSaver(databasePath: tmp.path, retryDelay: .milliseconds(50), write: flaky.write)
        let clock = ContinuousClock()
        let start = clock.now
        #expect(saver.save(q) == .saved(count: 3, firstError: QueueStoreError("injected failure 1")))
        #expect(clock.now - start >= .milliseconds(50))  // waited before the retry
        #expect(flaky.count == 2)
        #expect(try tmp.rows("q") == ["k0=0", "k1=1", "k2=2"])
        let files = try FileManager.default.contentsOfDirectory(atPath: tmp.dir.path)
        #expect(!files.contains { $0.contains("unsaved") })
    }

    @Test func twoFailuresGoToTheFallbackFileInOrder() throws {
        let tmp = try TempDB()
        defer { tmp.cleanUp() }
        let q = queue("name=jobs;dbmode=3;addmode=2")
        var expected: [String] = []
        for i in 0..<5000 { q.add(key: "k\(i)", value: "v\(i)") }
        q.add(key: "k0", value: "moved to the end")  // addmode 2: the queue's order, not the keys'
        q.add(key: "", value: "")
        q.add(key: "quote\"back\\slash", value: "line\nbreak\ttab\r\u{1}\u{1F}\u{7F} é 🎉")
        expected = (1..<5000).map { "k\($0)=v\($0)" } + ["k0=moved to the end", "=", "quote\"back\\slash=line\nbreak\ttab\r\u{1}\u{1F}\u{7F} é 🎉"]
        let flaky = FlakyWrite(failures: 2, path: tmp.path)
        let saver = ShutdownSaver(databasePath: tmp.path, retryDelay: .zero, now: { Self.time }, write: flaky.write)
        let file = tmp.path + ".unsaved-jobs-20240229T235958Z.jsonl"
        #expect(saver.save(q) == .fallback(count: 5002, file: file, error: QueueStoreError("injected failure 2")))
        #expect(flaky.count == 2)
        #expect(q.count == 0)
        #expect(try fallbackItems(file) == expected)
        // Raw form: compact JSON, control characters escaped, nothing else.
        let lines = try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n")
        #expect(lines[0] == #"{"key":"k1","val":"v1"}"#)
        #expect(lines[5000] == #"{"key":"","val":""}"#)
        #expect(lines[5001] == #"{"key":"quote\"back\\slash","val":"line\nbreak\ttab\r\u0001\u001F\#u{7F} é 🎉"}"#)
        #expect(!lines.contains { $0.contains("\u{1F}") })
    }

    @Test func fallbackFilesAreNeverOverwrittenAndNamesAreSafe() throws {
        let tmp = try TempDB()
        defer { tmp.cleanUp() }
        let saver = ShutdownSaver(databasePath: tmp.path, retryDelay: .zero, now: { Self.time }) { (_, _) throws(QueueStoreError) in
            throw QueueStoreError("down")
        }
        #expect(saver.fallbackPath(queue: "a/b c%é", time: Self.time)
            == tmp.path + ".unsaved-a%2Fb%20c%25%C3%A9-20240229T235958Z.jsonl")
        var files: [String] = []
        for round in 1...3 {
            let q = queue("name=same")
            q.add(key: "round", value: "\(round)")
            guard case .fallback(1, let file, QueueStoreError("down")) = saver.save(q) else {
                Issue.record("round \(round) not in a fallback file")
                continue
            }
            files.append(file)
            #expect(try fallbackItems(file) == ["round=\(round)"])
        }
        let stem = tmp.path + ".unsaved-same-20240229T235958Z"
        #expect(files == [stem + ".jsonl", stem + "-2.jsonl", stem + "-3.jsonl"])
        // An empty queue: nothing to keep, so no retry and no file, but the failure is reported.
        #expect(saver.save(queue("name=empty")) == .emptyNotSaved(error: QueueStoreError("down")))
        #expect(!FileManager.default.fileExists(atPath: tmp.path + ".unsaved-empty-20240229T235958Z.jsonl"))
    }

    @Test func lostWhenTheFallbackFileCannotBeWrittenEither() throws {
        let tmp = try TempDB()
        defer { tmp.cleanUp() }
        // The database's directory is a regular file: no database and no file next to it.
        let blocked = tmp.dir.appendingPathComponent("not-a-dir").path
        #expect(FileManager.default.createFile(atPath: blocked, contents: Data("x".utf8)))
        let db = blocked + "/mq.db"
        let saver = ShutdownSaver(databasePath: db, retryDelay: .zero, now: { Self.time })
        let q = queue("name=q;dbmode=1")
        for i in 0..<7 { q.add(key: "k\(i)", value: "\(i)") }
        guard case .lost(7, let error, let why) = saver.save(q) else {
            Issue.record("not reported as lost")
            return
        }
        #expect(error.message.hasPrefix("cannot open mqueue database \(db)"))
        #expect(why == "cannot create \(db).unsaved-q-20240229T235958Z.jsonl: Not a directory")
    }

    /// With the real SQLite writer: the database file replaced by a directory while running.
    @Test func realDatabaseReplacedByADirectory() throws {
        let tmp = try TempDB()
        defer { tmp.cleanUp() }
        let store = try SQLiteQueueStore(path: tmp.path)
        let q = queue("name=q;dbmode=1")
        _ = try store.load(into: q)
        q.add(key: "a", value: "1")
        q.add(key: "b", value: "2")
        try FileManager.default.removeItem(atPath: tmp.path)
        try FileManager.default.createDirectory(atPath: tmp.path, withIntermediateDirectories: false)
        let saver = ShutdownSaver(databasePath: tmp.path, retryDelay: .zero, now: { Self.time })
        guard case .fallback(2, let file, let error) = saver.save(q) else {
            Issue.record("not in a fallback file")
            return
        }
        #expect(error.message.hasPrefix("cannot open mqueue database \(tmp.path)"))
        #expect(try fallbackItems(file) == ["a=1", "b=2"])
        withExtendedLifetime(store) {}
    }

    /// A database file removed while running: the save opens a new connection and creates the
    /// file again, where a connection opened at startup would write into the unlinked file.
    @Test func realDatabaseRemovedWhileRunningIsCreatedAgain() throws {
        let tmp = try TempDB()
        defer { tmp.cleanUp() }
        let store = try SQLiteQueueStore(path: tmp.path)
        let q = queue("name=q;dbmode=1")
        _ = try store.load(into: q)
        q.add(key: "a", value: "1")
        try FileManager.default.removeItem(atPath: tmp.path)
        let saver = ShutdownSaver(databasePath: tmp.path, retryDelay: .zero)
        #expect(saver.save(q) == .saved(count: 1, firstError: nil))
        #expect(try tmp.rows("q") == ["a=1"])
        withExtendedLifetime(store) {}
    }
}
