import KSRBase
import MQueue

#if canImport(Glibc)
import Glibc
#endif

/// What became of one queue's items at shutdown.
public enum ShutdownSaveOutcome: Sendable, Equatable {
    /// Saved in the database; `firstError` is set when the first attempt failed and the retry
    /// worked.
    case saved(count: Int, firstError: QueueStoreError?)
    /// Both attempts failed (`error` is the last one); every item is in the fallback `file`.
    case fallback(count: Int, file: String, error: QueueStoreError)
    /// Both attempts failed and the fallback file could not be written either: the items are lost.
    case lost(count: Int, error: QueueStoreError, fallbackError: String)
    /// The queue was empty and the database could not be written (no retry, no file: nothing
    /// is lost, but the database needs a look).
    case emptyNotSaved(error: QueueStoreError)
}

/// Saves queues at shutdown without losing them silently: a failed save is retried once with
/// a fresh connection; if that fails too, the items go to a fallback file next to the database,
/// `<db>.unsaved-<queue>-<time>.jsonl` (see ``fallbackLine(_:)`` for its format).
public struct ShutdownSaver: Sendable {
    /// Appends items, oldest first, to a queue's table. Throws on any failure (nothing counts
    /// as saved unless it returns).
    public typealias Write = @Sendable (_ items: [QueueItem], _ queue: String) throws(QueueStoreError) -> Void

    /// The database file; the fallback files are written next to it.
    public let databasePath: String
    /// Pause before the retry.
    public var retryDelay: Duration
    /// Unix time in seconds (for the fallback file's name).
    public var now: @Sendable () -> Int
    private let write: Write

    /// Saves into the SQLite database at `databasePath`. Each attempt opens its own connection,
    /// so a database file removed or replaced while the host ran is not written through a
    /// connection to the old, unlinked file (which would "succeed" and lose everything).
    public init(databasePath: String, retryDelay: Duration = .milliseconds(500),
                now: @escaping @Sendable () -> Int = { Int(time(nil)) }) {
        self.init(databasePath: databasePath, retryDelay: retryDelay, now: now) { (items, queue) throws(QueueStoreError) in
            try SQLiteQueueStore(path: databasePath).append(items, toTableOf: queue)
        }
    }

    /// Saves with `write` (tests inject failures here).
    public init(databasePath: String, retryDelay: Duration = .milliseconds(500),
                now: @escaping @Sendable () -> Int = { Int(time(nil)) }, write: @escaping Write) {
        self.databasePath = databasePath
        self.retryDelay = retryDelay
        self.now = now
        self.write = write
    }

    /// Drains `queue` and saves its items: into the database, else (after one retry) into a
    /// fallback file. Never throws: the outcome says where the items are, or how many are lost.
    public func save(_ queue: MessageQueue) -> ShutdownSaveOutcome {
        let items = queue.drain()
        let first: QueueStoreError
        do throws(QueueStoreError) {
            try write(items, queue.name)
            return .saved(count: items.count, firstError: nil)
        } catch {
            first = error
        }
        if items.isEmpty { return .emptyNotSaved(error: first) }
        sleep(for: retryDelay)
        let last: QueueStoreError
        do throws(QueueStoreError) {
            try write(items, queue.name)
            return .saved(count: items.count, firstError: first)
        } catch {
            last = error
        }
        switch writeFallback(items, queue: queue.name) {
        case .success(let file):
            return .fallback(count: items.count, file: file, error: last)
        case .failure(let why):
            return .lost(count: items.count, error: last, fallbackError: why.message)
        }
    }

    // MARK: - fallback file

    /// `<db>.unsaved-<queue>-<time>.jsonl`: the queue name with every byte outside
    /// `A-Z a-z 0-9 . _ -` written as `%XX`, the time in UTC as `YYYYMMDDTHHMMSSZ`. An existing
    /// file is never overwritten: `-2`, `-3`, ... is added after the time instead.
    public func fallbackPath(queue: String, time: Int, attempt: Int = 1) -> String {
        var name = ""
        for b in queue.utf8 {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
                name.unicodeScalars.append(Unicode.Scalar(b))
            default:
                name += "%" + Self.hex(b)
            }
        }
        return "\(databasePath).unsaved-\(name)-\(Self.utcStamp(time))\(attempt > 1 ? "-\(attempt)" : "").jsonl"
    }

    /// One line of a fallback file: `{"key":"...","val":"..."}` and a newline, the columns of
    /// the queue's table. Strings are JSON strings (UTF-8; `"`, `\` and control characters
    /// escaped), so a line never contains a raw newline or an ASCII unit separator (0x1F).
    public static func fallbackLine(_ item: QueueItem) -> String {
        var out = "{\"key\":"
        JSON.append(item.key, to: &out)
        out += ",\"val\":"
        JSON.append(item.value, to: &out)
        out += "}\n"
        return out
    }

    private struct FallbackError: Error {
        var message: String
    }

    /// Writes every item to a new fallback file, flushed to disk; its path, or why not.
    private func writeFallback(_ items: [QueueItem], queue: String) -> Result<String, FallbackError> {
        let time = now()
        var fd: Int32 = -1
        var path = ""
        for attempt in 1...100 {
            path = fallbackPath(queue: queue, time: time, attempt: attempt)
            fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            if fd >= 0 || errno != EEXIST { break }
        }
        guard fd >= 0 else {
            let e = errno
            return .failure(FallbackError(message: "cannot create \(path): \(Self.errnoText(e))"))
        }
        var data: [UInt8] = []
        data.reserveCapacity(items.count * 32)
        for item in items { data += Self.fallbackLine(item).utf8 }
        var failure: String?
        data.withUnsafeBytes { buf in
            var off = 0
            while off < buf.count {
                let n = Glibc.write(fd, buf.baseAddress! + off, buf.count - off)
                if n < 0 {
                    let e = errno
                    if e == EINTR { continue }
                    failure = "cannot write \(path): \(Self.errnoText(e)) (\(off) of \(buf.count) bytes written)"
                    return
                }
                off += n
            }
        }
        if failure == nil && fsync(fd) != 0 {
            let e = errno
            failure = "cannot flush \(path) to disk: \(Self.errnoText(e))"
        }
        if close(fd) != 0 && failure == nil {
            let e = errno
            failure = "cannot close \(path): \(Self.errnoText(e))"
        }
        if let failure { return .failure(FallbackError(message: failure)) }
        return .success(path)
    }

    private static func hex(_ b: UInt8) -> String {
        let digits = Array("0123456789ABCDEF".unicodeScalars)
        return String(digits[Int(b >> 4)]) + String(digits[Int(b & 15)])
    }

    /// `YYYYMMDDTHHMMSSZ` of a Unix time.
    static func utcStamp(_ time: Int) -> String {
        var t = time_t(time)
        var tm = Glibc.tm()
        gmtime_r(&t, &tm)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(tm.tm_year + 1900)\(two(tm.tm_mon + 1))\(two(tm.tm_mday))T\(two(tm.tm_hour))\(two(tm.tm_min))\(two(tm.tm_sec))Z"
    }

    private static func errnoText(_ e: Int32) -> String { String(cString: strerror(e)) }

    private func sleep(for d: Duration) {
        let (s, atto) = d.components
        guard s > 0 || atto > 0 else { return }
        var req = timespec(tv_sec: Int(s), tv_nsec: Int(atto / 1_000_000_000))
        var rem = timespec()
        while nanosleep(&req, &rem) != 0 && errno == EINTR { req = rem }
    }
}
