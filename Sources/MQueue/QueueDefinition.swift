import KSRBase

// The configuration half of the mqueue engine: Kamailio's `mqueue`, `mqueue_name`,
// `mqueue_size` and `mqueue_addmode` module parameters, parsed into definitions.
//
// Differences from Kamailio (documented):
// - Kamailio reads `size`, `addmode` and `dbmode` with `str2sint` and silently turns garbage
//   into 0. KSRHost rejects garbage and out-of-range values with a ``ParamError``.
// - Kamailio's README swaps the meaning of dbmode 2 and 3; the code (and KSRHost) uses
//   2 = load only, 3 = save only.

/// What `add` does when an item with the same key is already in the queue (`addmode`).
public enum AddMode: Int, Sendable, Hashable, CaseIterable {
    /// 0: always append; keys may repeat.
    case append = 0
    /// 1: if the key is already queued, ignore the new item (the add still succeeds):
    /// keeps the oldest.
    case keepOldest = 1
    /// 2: if the key is already queued, remove that item and append the new one at the tail:
    /// keeps the newest.
    case keepNewest = 2
}

/// Whether a queue is loaded from / saved to the database (`dbmode`).
public enum DBMode: Int, Sendable, Hashable, CaseIterable {
    /// 0: memory only.
    case none = 0
    /// 1: load at startup and save at shutdown.
    case loadAndSave = 1
    /// 2: load at startup only (Kamailio's README says "save only"; its code loads).
    case loadOnly = 2
    /// 3: save at shutdown only (Kamailio's README says "load only"; its code saves).
    case saveOnly = 3

    /// Whether the queue's table is read (and emptied) at startup.
    public var loadsAtStartup: Bool { self == .loadAndSave || self == .loadOnly }
    /// Whether the queue's items are written to its table at shutdown.
    public var savesAtShutdown: Bool { self == .loadAndSave || self == .saveOnly }
}

/// One queue as configured: `modparam("mqueue", "mqueue", "name=q;size=100;addmode=2;dbmode=1")`.
public struct QueueDefinition: Sendable, Hashable {
    /// The name, exact and case-sensitive (`Q1` and `q1` are different queues). Never empty.
    public let name: String
    /// The maximum number of items, 0 = unlimited. When an add makes the queue longer,
    /// the oldest item is discarded. At most `Int32.max`.
    public let size: Int
    public let addMode: AddMode
    public let dbMode: DBMode

    /// The largest accepted `size`.
    public static let maxSize = Int(Int32.max)

    /// A definition from its parts, e.g. for `mqueue_name` (which uses the current
    /// `mqueue_size` and `mqueue_addmode` and dbmode 0).
    /// Throws if `name` is empty or `size` is negative or above ``maxSize``.
    public init(name: String, size: Int = 0, addMode: AddMode = .append, dbMode: DBMode = .none)
        throws(ParamError)
    {
        guard !name.isEmpty else { throw ParamError("mqueue name not defined: \(name)") }
        guard size >= 0, size <= Self.maxSize else {
            throw ParamError("invalid size: \(size) (expected a non-negative integer up to \(Self.maxSize))")
        }
        self.name = name
        self.size = size
        self.addMode = addMode
        self.dbMode = dbMode
    }

    /// Parses an `mqueue` parameter value: `name=Q;size=N;addmode=A;dbmode=D`.
    ///
    /// Keys are case-insensitive, one trailing `;` is allowed and a repeated key keeps its
    /// first value. `name` is required; `size`, `addmode` and `dbmode` default to 0.
    public init(parsing value: String) throws(ParamError) {
        let params = try ParamList(parsing: value)
        if let unknown = params.unknownNames(known: ["name", "size", "addmode", "dbmode"]).first {
            throw ParamError("unknown param: \(unknown)")
        }
        guard let name = params["name"], !name.isEmpty else {
            throw ParamError("mqueue name not defined: \(value)")
        }
        var size = 0
        var addMode = AddMode.append
        var dbMode = DBMode.none
        if let v = params["size"] { size = try Self.parseSize(v) }
        if let v = params["addmode"] { addMode = try Self.parseAddMode(v) }
        if let v = params["dbmode"] { dbMode = try Self.parseDBMode(v) }
        try self.init(name: name, size: size, addMode: addMode, dbMode: dbMode)
    }

    /// Parses a `size` value (also usable for `mqueue_size`): a decimal integer
    /// in `0...maxSize`.
    public static func parseSize(_ text: String) throws(ParamError) -> Int {
        guard let n = parseSignedDecimal(text), n >= 0, n <= maxSize else {
            throw ParamError("invalid size: \(text) (expected a non-negative integer up to \(maxSize))")
        }
        return n
    }

    /// Parses an `addmode` value (also usable for `mqueue_addmode`): 0, 1 or 2.
    public static func parseAddMode(_ text: String) throws(ParamError) -> AddMode {
        guard let n = parseSignedDecimal(text), let mode = AddMode(rawValue: n) else {
            throw ParamError("invalid addmode: \(text) (expected 0, 1 or 2)")
        }
        return mode
    }

    /// Parses a `dbmode` value: 0, 1, 2 or 3.
    public static func parseDBMode(_ text: String) throws(ParamError) -> DBMode {
        guard let n = parseSignedDecimal(text), let mode = DBMode(rawValue: n) else {
            throw ParamError("invalid dbmode: \(text) (expected 0, 1, 2 or 3)")
        }
        return mode
    }
}
