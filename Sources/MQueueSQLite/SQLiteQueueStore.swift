import GRDB
import KSRBase
import MQueue

/// A failure reading or writing a queue's table.
public struct QueueStoreError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Persistence of mqueue queues in SQLite (the mqueue module's `db_url`, `dbmode` 1–3).
///
/// Each queue lives in a table named after it, with Kamailio's schema:
/// `id INTEGER PRIMARY KEY AUTOINCREMENT, key VARCHAR(64) NOT NULL DEFAULT '',
/// val VARCHAR(4096) NOT NULL DEFAULT ''`.
///
/// Differences from Kamailio: a missing table is created (Kamailio aborts startup), and items
/// with an empty key or value are saved like any other (Kamailio 5.6.3 crashes on them).
public final class SQLiteQueueStore: Sendable {
    /// The database file.
    public let path: String
    private let db: DatabaseQueue

    /// Opens (creating if needed) the database of a `db_url` such as `sqlite:///var/lib/mq.db`.
    /// Throws a `ParamError` for an unsupported URL, a `QueueStoreError` if it cannot be opened.
    public convenience init(url: String) throws {
        try self.init(path: Self.path(fromURL: url))
    }

    /// Opens (creating if needed) the database file at `path`.
    public init(path: String) throws(QueueStoreError) {
        self.path = path
        var config = Configuration()
        config.busyMode = .timeout(5)
        do {
            db = try DatabaseQueue(path: path, configuration: config)
        } catch {
            throw QueueStoreError("cannot open mqueue database \(path): \(Self.describe(error))")
        }
    }

    /// The file path of a `db_url`: `sqlite:///abs/path.db` and Kamailio's
    /// `sqlite:////abs/path.db` both give `/abs/path.db`; `sqlite://rel.db` gives `rel.db`
    /// (relative to the working directory). Any other scheme is rejected.
    public static func path(fromURL url: String) throws(ParamError) -> String {
        let text = url.trimmingSpaces()
        guard let colon = text.firstIndex(of: ":") else {
            throw ParamError("unsupported db_url: \(text) (only sqlite:// is supported)")
        }
        let scheme = text[..<colon]
        let rest = text[text.index(after: colon)...]
        // Only the scheme is echoed: other URLs may carry credentials.
        guard scheme.lowercased() == "sqlite", rest.hasPrefix("//") else {
            throw ParamError("unsupported db_url: \(scheme)://... (only sqlite:// is supported)")
        }
        let body = rest.dropFirst(2)
        let path = body.hasPrefix("/") ? "/" + body.drop(while: { $0 == "/" }) : String(body)
        guard !path.isEmpty, path != "/" else {
            throw ParamError("invalid db_url: \(text) (no database file path)")
        }
        return path
    }

    /// Checks that no two queues with a dbmode share a table: SQLite table names are
    /// case-insensitive (ASCII), so queues `Q1` and `q1` would both use one table.
    /// Throws `mqueue names Q1 and q1 map to the same SQLite table ...` for the first clash.
    public static func checkTableNames(_ definitions: [QueueDefinition]) throws(ParamError) {
        var seen: [String: String] = [:]
        for def in definitions where def.dbMode != .none {
            let folded = String(decoding: def.name.utf8.map { $0 >= 65 && $0 <= 90 ? $0 + 32 : $0 }, as: UTF8.self)
            if let other = seen[folded] {
                throw ParamError(
                    "mqueue names \(other) and \(def.name) map to the same SQLite table (table names are case-insensitive)")
            }
            seen[folded] = def.name
        }
    }

    /// Reads the queue's table in `id` order, adds every row to the queue with its normal
    /// rules (size limit and addmode apply) and deletes all rows; reading and deleting are
    /// one transaction, and nothing is added unless it commits. Creates the table if missing.
    /// Returns the number of rows read.
    @discardableResult
    public func load(into queue: MessageQueue) throws(QueueStoreError) -> Int {
        let table = try Self.quoted(queue.name)
        let items: [QueueItem]
        do {
            items = try db.write { db in
                try Self.createTable(table, in: db)
                var items: [QueueItem] = []
                let rows = try Row.fetchCursor(db, sql: "SELECT id, key, val FROM \(table) ORDER BY id")
                while let row = try rows.next() {
                    let id: DatabaseValue = row[0]
                    items.append(
                        QueueItem(
                            key: try Self.text(row[1], column: "key", id: id, table: queue.name),
                            value: try Self.text(row[2], column: "val", id: id, table: queue.name)))
                }
                try db.execute(sql: "DELETE FROM \(table)")
                return items
            }
        } catch let error as QueueStoreError {
            throw error
        } catch {
            throw QueueStoreError("cannot load mqueue table \(table) from \(path): \(Self.describe(error))")
        }
        for item in items { queue.add(key: item.key, value: item.value) }
        return items.count
    }

    /// Drains the queue and appends its items (oldest first) to the queue's table in one
    /// transaction, after any rows already there. Creates the table if missing. If the write
    /// fails, the drained items are added back to the queue. Returns the number of rows written.
    @discardableResult
    public func save(from queue: MessageQueue) throws(QueueStoreError) -> Int {
        let items = queue.drain()
        do throws(QueueStoreError) {
            try append(items, toTableOf: queue.name)
        } catch {
            for item in items { queue.add(key: item.key, value: item.value) }
            throw error
        }
        return items.count
    }

    /// Appends `items` (in this order) to the table of queue `name` in one transaction, after
    /// any rows already there; creates the table if missing. Nothing is written if it throws.
    public func append(_ items: [QueueItem], toTableOf name: String) throws(QueueStoreError) {
        let table = try Self.quoted(name)
        do {
            try db.write { db in
                try Self.createTable(table, in: db)
                let insert = try db.makeStatement(sql: "INSERT INTO \(table) (key, val) VALUES (?, ?)")
                for item in items {
                    insert.setUncheckedArguments([item.key, item.value])
                    try insert.execute()
                }
            }
        } catch {
            throw QueueStoreError(
                "cannot save \(items.count) items of mqueue \(table) to \(path): \(Self.describe(error))")
        }
    }

    /// Loads every queue of `registry` whose dbmode loads at startup (1 and 2).
    /// Stops at the first error. Returns the total number of rows read.
    @discardableResult
    public func loadAll(into registry: QueueRegistry) throws(QueueStoreError) -> Int {
        var total = 0
        for queue in registry.queues where queue.definition.dbMode.loadsAtStartup {
            total += try load(into: queue)
        }
        return total
    }

    /// Saves every queue of `registry` whose dbmode saves at shutdown (1 and 3). A failing
    /// queue does not stop the others; the first error is thrown at the end.
    /// Returns the total number of rows written.
    @discardableResult
    public func saveAll(from registry: QueueRegistry) throws(QueueStoreError) -> Int {
        var total = 0
        var firstError: QueueStoreError?
        for queue in registry.queues where queue.definition.dbMode.savesAtShutdown {
            do throws(QueueStoreError) {
                total += try save(from: queue)
            } catch {
                firstError = firstError ?? error
            }
        }
        if let firstError { throw firstError }
        return total
    }

    private static func createTable(_ quotedName: String, in db: Database) throws {
        try db.execute(
            sql: """
                CREATE TABLE IF NOT EXISTS \(quotedName) (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    key VARCHAR(64) NOT NULL DEFAULT '',
                    val VARCHAR(4096) NOT NULL DEFAULT ''
                )
                """)
    }

    private static func text(_ value: DatabaseValue, column: String, id: DatabaseValue, table: String)
        throws(QueueStoreError) -> String
    {
        switch value.storage {
        case .string(let s):
            return s
        case .null:
            throw QueueStoreError("mqueue table \(Self.quotedForMessage(table)): row id \(id) has a NULL \(column)")
        case .int64, .double, .blob:
            throw QueueStoreError(
                "mqueue table \(Self.quotedForMessage(table)): row id \(id) has a non-text \(column)")
        }
    }

    /// `name` as an SQL identifier: in double quotes, inner double quotes doubled.
    /// (GRDB's `quotedDatabaseIdentifier` does not escape inner quotes.)
    static func quoted(_ name: String) throws(QueueStoreError) -> String {
        guard !name.utf8.contains(0) else {
            throw QueueStoreError("mqueue name \(quotedForMessage(name)) cannot be a table name (NUL character)")
        }
        return quotedForMessage(name)
    }

    private static func quotedForMessage(_ name: String) -> String {
        var out = "\""
        for c in name.unicodeScalars {
            if c == "\"" { out += "\"\"" } else { out.unicodeScalars.append(c) }
        }
        out += "\""
        return out
    }

    private static func describe(_ error: any Error) -> String {
        if let error = error as? DatabaseError { return error.message ?? "\(error)" }
        return "\(error)"
    }
}
