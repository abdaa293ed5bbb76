import Foundation
import Testing

@Suite("mqueue through ksr run")
struct MQueueEndToEndTests {
    static let script = luaShow + """
        modparam("mqueue", "mqueue", "name=q;size=3")
        modparam("mqueue", "mqueue", "name=q2;addmode=2")
        modparam("mqueue", "mqueue", "name=q1;ADDMODE=1;")
        modparam("mqueue", "mqueue_size", 2)
        modparam("mqueue", "mqueue_addmode", 1)
        modparam("mqueue", "mqueue_name", "named")
        modparam("rtimer", "timer", "name=t;interval=100000u;mode=1;")
        modparam("rtimer", "exec", "timer=t;route=ksr_t")
        local done = false
        local function drain(q)
          local out = {}
          while KSR.mqueue.mq_fetch(q) == 1 do
            out[#out + 1] = KSR.mqueue.mqk_get(q) .. "=" .. KSR.mqueue.mqv_get(q)
          end
          return table.concat(out, ",")
        end
        function ksr_t()
          if done then return end
          done = true
          local M = KSR.mqueue
          show("size_unknown", M.mq_size("nope"))
          show("fetch_unknown", M.mq_fetch("nope"))
          show("add_unknown", M.mq_add("nope", "k", "v"))
          show("size_empty", M.mq_size("q"))
          show("fetch_empty", M.mq_fetch("q"))
          show("k_after_failed_fetch", M.mqk_get("q"))
          show("gete_nothing", M.mqk_gete("q"))
          show("getw_nothing", M.mqv_getw("q"))
          for i = 1, 5 do M.mq_add("q", "k" .. i, "v" .. i) end
          show("size_bounded", M.mq_size("q"))
          show("pv_size", KSR.pv.get("$mq_size(q)"))
          show("fetch_ok", M.mq_fetch("q"))
          show("first_key", M.mqk_get("q"))
          show("first_val", KSR.pv.get("$mqv(q)"))
          show("free", M.mq_pv_free("q"))
          show("free_unknown", M.mq_pv_free("nope"))
          show("after_free", M.mqk_get("q"))
          show("rest", drain("q"))
          for _, kv in ipairs({{"a","1"},{"b","2"},{"c","3"},{"b","4"},{"a","5"}}) do M.mq_add("q2", kv[1], kv[2]) end
          show("addmode2", drain("q2"))
          for _, kv in ipairs({{"a","1"},{"b","2"},{"a","3"}}) do show("add1_" .. kv[2], M.mq_add("q1", kv[1], kv[2])) end
          show("addmode1", drain("q1"))
          for _, kv in ipairs({{"a","1"},{"a","2"},{"b","3"},{"c","4"}}) do M.mq_add("named", kv[1], kv[2]) end
          show("named", drain("named"))
          M.mq_add("q", nil, "")
          M.mq_fetch("q")
          show("empty_key", M.mqk_get("q"))
          show("empty_key_pv", KSR.pv.get("$mqk(q)"))
          show("empty_val_pv", KSR.pv.get("$mqv(q)"))
          M.mq_add("q", 5, 6.5)
          M.mq_fetch("q")
          show("num_key", M.mqk_get("q"))
          show("num_val", M.mqv_get("q"))
          KSR.pv.sets("$var(qn)", "q")
          M.mq_add("q", "dyn", "amic")
          show("dyn_size", KSR.pv.get("$mq_size($var(qn))"))
          M.mq_fetch("q")
          show("dyn_key", KSR.pv.get("$mqk($var(qn))"))
          show("missing_args", M.mq_add("q", "k"))
          show("pv_unknown_queue", KSR.pv.get("$mqk(nope)"))
          KSR.info("DONE\\n")
        end
        """

    @Test func returnCodesAddModesAndSlots() throws {
        let r = try ScriptRun.run(Self.script)
        #expect(r.status == 0, "\(r.stderr)")
        let expected: [String: String] = [
            "size_unknown": "-1|number", "fetch_unknown": "-1|number", "add_unknown": "-1|number",
            "size_empty": "0|number", "fetch_empty": "-2|number", "k_after_failed_fetch": "nil|nil",
            "gete_nothing": "nil|nil", "getw_nothing": "nil|nil",
            "size_bounded": "3|number", "pv_size": "3|number", "fetch_ok": "1|number",
            "first_key": "k3|string", "first_val": "v3|string", "free": "1|number", "free_unknown": "1|number",
            "after_free": "nil|nil", "rest": "k4=v4,k5=v5|string",
            "addmode2": "c=3,b=4,a=5|string", "add1_1": "1|number", "add1_2": "1|number", "add1_3": "1|number",
            "addmode1": "a=1,b=2|string", "named": "b=3,c=4|string",
            "empty_key": "|string", "empty_key_pv": "nil|nil", "empty_val_pv": "nil|nil",
            "num_key": "5|string", "num_val": "6.5|string",
            "dyn_size": "1|number", "dyn_key": "dyn|string", "missing_args": "false|boolean",
            "pv_unknown_queue": "nil|nil",
        ]
        for (k, v) in expected { #expect(r.results[k] == v, "\(k): \(r.results[k] ?? "missing")") }
        #expect(r.stderr.contains("mqueue not found: nope"))
        #expect(r.stderr.contains("not enough parameters for: mqueue.mq_add"))
    }

    /// Keys and values of every short length, non-ASCII, invalid UTF-8 and embedded NULs come
    /// back from the queue as they went in (the short ASCII ones take the fast conversion).
    @Test func itemsKeepTheirBytes() throws {
        let script = luaShow + """
            modparam("mqueue", "mqueue", "name=bytes")
            modparam("rtimer", "timer", "name=t;interval=100000u;mode=1;")
            modparam("rtimer", "exec", "timer=t;route=ksr_t")
            local done = false
            function ksr_t()
              if done then return end
              done = true
              local M = KSR.mqueue
              local items = {}
              local letters = "abcdefghijklmnopqrstuvwxyz0123456789"
              for n = 0, 24 do items[#items + 1] = letters:sub(1, n) end
              items[#items + 1] = "caf\\u{e9}"
              items[#items + 1] = "\\u{65e5}\\u{672c}"
              items[#items + 1] = "fourteen bytes" .. "\\u{e9}"
              items[#items + 1] = "a\\0b\\0"
              local bad, n = 0, 0
              for i, s in ipairs(items) do
                M.mq_add("bytes", s, s .. "|" .. i)
              end
              for i, s in ipairs(items) do
                if M.mq_fetch("bytes") ~= 1 then bad = bad + 1 end
                local k, v = M.mqk_get("bytes"), M.mqv_get("bytes")
                if k ~= s or v ~= s .. "|" .. i then
                  bad = bad + 1
                  KSR.info("MISMATCH " .. i .. " [" .. tostring(k) .. "] [" .. tostring(v) .. "]\\n")
                end
                n = n + 1
              end
              -- invalid UTF-8 is repaired (U+FFFD), as before
              M.mq_add("bytes", "\\255", "x")
              M.mq_fetch("bytes")
              show("invalid", M.mqk_get("bytes") == "\\u{fffd}")
              show("checked", n)
              show("bad", bad)
              KSR.info("DONE\\n")
            end
            """
        let r = try ScriptRun.run(script)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.results["checked"] == "29|number", "\(r.stderr)")
        #expect(r.results["bad"] == "0|number", "\(r.stderr)")
        #expect(r.results["invalid"] == "true|boolean", "\(r.stderr)")
    }

    @Test func queuesAreSharedBetweenWorkers() throws {
        let script = """
            modparam("mqueue", "mqueue", "name=shared")
            modparam("rtimer", "timer", "name=producer;interval=50000u;mode=1;")
            modparam("rtimer", "exec", "timer=producer;route=produce")
            modparam("rtimer", "timer", "name=consumer;interval=50000u;mode=1;")
            modparam("rtimer", "exec", "timer=consumer;route=consume")
            local n = 0
            function produce() n = n + 1 KSR.mqueue.mq_add("shared", "k" .. n, "from-producer") end
            function consume()
              if KSR.mqueue.mq_fetch("shared") == 1 then
                KSR.info("CONSUMED " .. KSR.mqueue.mqk_get("shared") .. " " .. KSR.mqueue.mqv_get("shared") .. "\\n")
                KSR.info("DONE\\n")
              end
            end
            """
        let r = try ScriptRun.run(script)
        #expect(r.stderr.contains("from-producer"))
        #expect(r.stderr.contains("CONSUMED k1 from-producer"))
    }

    @Test func persistenceSurvivesARestart() throws {
        let dir = TempDir()
        let db = dir.path("queues.db")
        let producer = """
            modparam("mqueue", "db_url", "sqlite://\(db)")
            modparam("mqueue", "mqueue", "name=saved;dbmode=1")
            modparam("mqueue", "mqueue", "name=appendonly;dbmode=3")
            modparam("mqueue", "mqueue", "name=volatile")
            modparam("rtimer", "timer", "name=t;interval=100000u;mode=1;")
            modparam("rtimer", "exec", "timer=t;route=fill")
            local done = false
            function fill()
              if done then return end
              done = true
              KSR.mqueue.mq_add("saved", "k1", "v1")
              KSR.mqueue.mq_add("saved", "", "empty key")
              KSR.mqueue.mq_add("saved", "empty value", "")
              KSR.mqueue.mq_add("saved", "k4", "v4 with 'quotes' and ünïcode")
              KSR.mqueue.mq_add("appendonly", "a", "1")
              KSR.mqueue.mq_add("volatile", "x", "y")
              KSR.info("DONE\\n")
            end
            """
        let first = try ScriptRun.run(producer)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stderr.contains("queue [saved] saved in db (4 items)"))
        #expect(first.stderr.contains("queue [appendonly] saved in db (1 items)"))

        let consumer = luaShow + """
            modparam("mqueue", "db_url", "sqlite://\(db)")
            modparam("mqueue", "mqueue", "name=saved;dbmode=1")
            modparam("mqueue", "mqueue", "name=appendonly;dbmode=3")
            modparam("mqueue", "mqueue", "name=volatile")
            modparam("rtimer", "timer", "name=t;interval=100000u;mode=1;")
            modparam("rtimer", "exec", "timer=t;route=read")
            local done = false
            function read()
              if done then return end
              done = true
              local out = {}
              while KSR.mqueue.mq_fetch("saved") == 1 do
                out[#out + 1] = "[" .. KSR.mqueue.mqk_get("saved") .. "=" .. KSR.mqueue.mqv_get("saved") .. "]"
              end
              show("saved", table.concat(out))
              show("appendonly", KSR.mqueue.mq_size("appendonly"))
              show("volatile", KSR.mqueue.mq_size("volatile"))
              KSR.mqueue.mq_add("appendonly", "b", "2")
              KSR.info("DONE\\n")
            end
            """
        let second = try ScriptRun.run(consumer)
        #expect(second.status == 0, "\(second.stderr)")
        #expect(second.results["saved"] == "[k1=v1][=empty key][empty value=][k4=v4 with 'quotes' and ünïcode]|string")
        #expect(second.results["appendonly"] == "0|number")  // dbmode 3: saved, never loaded
        #expect(second.results["volatile"] == "0|number")
        // dbmode 3 appends: both runs' items are in the table now.
        let rows = try KSR.sqlite(db, "SELECT key || '=' || val FROM appendonly ORDER BY id")
        #expect(rows == ["a=1", "b=2"])
        // dbmode 1 emptied the table at load and saved nothing new (the queue was drained).
        #expect(try KSR.sqlite(db, "SELECT count(*) FROM saved") == ["0"])
    }
}

extension MQueueEndToEndTests {
    /// `count` items put in queue `jobs` (db_url `db`, dbmode 1) and `later` (dbmode 3) by a
    /// timer; `idle` (dbmode 3) stays empty.
    static func producer(db: String, count: Int) -> String {
        """
        modparam("mqueue", "db_url", "sqlite://\(db)")
        modparam("mqueue", "mqueue", "name=jobs;dbmode=1")
        modparam("mqueue", "mqueue", "name=later;dbmode=3")
        modparam("mqueue", "mqueue", "name=idle;dbmode=3")
        modparam("mqueue", "mqueue", "name=volatile")
        modparam("rtimer", "timer", "name=t;interval=100000u;mode=1;")
        modparam("rtimer", "exec", "timer=t;route=fill")
        local done = false
        function fill()
          if done then return end
          done = true
          for i = 1, \(count) do
            KSR.mqueue.mq_add("jobs", "k" .. i, "v" .. i .. " \\"q\\" \\\\ \\t é")
          end
          KSR.mqueue.mq_add("jobs", "", "")
          KSR.mqueue.mq_add("later", "a", "1")
          KSR.mqueue.mq_add("volatile", "x", "y")
          KSR.info("DONE\\n")
        end
        """
    }

    /// What `producer` puts in `jobs`, as `key=val`.
    static func produced(_ count: Int) -> [String] {
        (1...count).map { "k\($0)=v\($0) \"q\" \\ \t é" } + ["="]
    }

    /// The fallback files of `queue` next to `db`.
    static func fallbackFiles(_ db: String, queue: String) -> [String] {
        let url = URL(fileURLWithPath: db)
        let dir = url.deletingLastPathComponent()
        let prefix = url.lastPathComponent + ".unsaved-\(queue)-"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { $0.hasPrefix(prefix) && $0.hasSuffix(".jsonl") }.sorted().map { dir.appendingPathComponent($0).path }
    }

    /// `key=val` of every line of a fallback file.
    static func fallbackItems(_ path: String) throws -> [String] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        return try text.split(separator: "\n").map { line in
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String]
            return "\(object?["key"] ?? "?")=\(object?["val"] ?? "?")"
        }
    }

    /// The database file replaced by a directory before SIGTERM (as root, chmod would not stop
    /// the save): both attempts fail, every item goes to the fallback file in order, the exit
    /// status is 3; the README's sqlite3 recipe puts the rows back and the next run loads them.
    @Test func failedSaveAtShutdownGoesToAFallbackFile() throws {
        let dir = TempDir()
        let db = dir.path("queues.db")
        let count = 3000
        let p = try KSR.Running(["run", dir.write("app.lua", Self.producer(db: db, count: count))])
        #expect(p.waitForStderr(timeout: 30) { $0.contains("DONE") }, "\(p.stderr)")
        try FileManager.default.removeItem(atPath: db)
        try FileManager.default.createDirectory(atPath: db, withIntermediateDirectories: false)
        let status = p.stop()
        let log = p.stderr
        #expect(status == 3, "\(log)")
        let jobs = Self.fallbackFiles(db, queue: "jobs"), later = Self.fallbackFiles(db, queue: "later")
        #expect(jobs.count == 1 && later.count == 1, "\(log)")
        guard let file = jobs.first, let laterFile = later.first else { return }
        let lines = log.lines(containing: "queue [jobs]: \(count + 1) items NOT saved in the database \(db) (cannot open mqueue database")
        #expect(lines.count == 1, "\(log)")
        #expect(lines.first?.contains("retried once); they are in \(file) (") == true, "\(log)")
        #expect(lines.first?.contains("ERROR") == true || lines.first?.contains("error") == true, "\(log)")
        #expect(log.contains("queue [later]: 1 items NOT saved"))
        #expect(log.contains("exit status 3: queues only in fallback files: 2"), "\(log)")
        #expect(!log.contains("saved in db"))
        // An empty queue: a warning, no file.
        #expect(log.contains("queue [idle] was empty, nothing to save, but the database \(db) failed"), "\(log)")
        #expect(Self.fallbackFiles(db, queue: "idle").isEmpty)
        #expect(try Self.fallbackItems(file) == Self.produced(count))
        #expect(try Self.fallbackItems(laterFile) == ["a=1"])

        // The README's recipe, with ksr stopped: the rows back in the database.
        try FileManager.default.removeItem(atPath: db)
        let recipe = """
            CREATE TABLE IF NOT EXISTS "jobs" (id INTEGER PRIMARY KEY AUTOINCREMENT,
              key VARCHAR(64) NOT NULL DEFAULT '', val VARCHAR(4096) NOT NULL DEFAULT '');
            CREATE TEMP TABLE unsaved(line TEXT);
            .mode ascii
            .separator "\\037" "\\n"
            .import \(file) unsaved
            INSERT INTO "jobs" (key, val)
              SELECT json_extract(line, '$.key'), json_extract(line, '$.val') FROM unsaved ORDER BY rowid;

            """
        let sql = dir.write("restore.sql", recipe)
        let sqlite = Process()
        sqlite.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        sqlite.arguments = [db]
        sqlite.standardInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: sql))
        try sqlite.run()
        sqlite.waitUntilExit()
        #expect(sqlite.terminationStatus == 0)
        #expect(try KSR.sqlite(db, "SELECT count(*) FROM jobs") == ["\(count + 1)"])

        let consumer = luaShow + """
            modparam("mqueue", "db_url", "sqlite://\(db)")
            modparam("mqueue", "mqueue", "name=jobs;dbmode=2")
            modparam("rtimer", "timer", "name=t;interval=100000u;mode=1;")
            modparam("rtimer", "exec", "timer=t;route=read")
            local done = false
            function read()
              if done then return end
              done = true
              local n, ordered = 0, true
              while KSR.mqueue.mq_fetch("jobs") == 1 do
                n = n + 1
                local k, v = KSR.mqueue.mqk_get("jobs"), KSR.mqueue.mqv_get("jobs")
                if n <= \(count) and (k ~= "k" .. n or v ~= "v" .. n .. " \\"q\\" \\\\ \\t é") then ordered = false end
                if n == \(count + 1) and (k ~= "" or v ~= "") then ordered = false end
              end
              show("count", n)
              show("ordered", ordered)
              KSR.info("DONE\\n")
            end
            """
        let second = try ScriptRun.run(consumer)
        #expect(second.status == 0, "\(second.stderr)")
        #expect(second.results["count"] == "\(count + 1)|number")
        #expect(second.results["ordered"] == "true|boolean")
    }

    /// The database's directory replaced by a regular file: neither the database nor a
    /// fallback file can be written; the log says how many items are lost and the exit status is 4.
    @Test func lostItemsAtShutdownAreLoudAndExitFour() throws {
        let dir = TempDir()
        let sub = dir.path("data")
        try FileManager.default.createDirectory(atPath: sub, withIntermediateDirectories: false)
        let db = sub + "/queues.db"
        let p = try KSR.Running(["run", dir.write("app.lua", Self.producer(db: db, count: 10))])
        #expect(p.waitForStderr(timeout: 30) { $0.contains("DONE") }, "\(p.stderr)")
        try FileManager.default.removeItem(atPath: sub)
        #expect(FileManager.default.createFile(atPath: sub, contents: Data("not a directory".utf8)))
        let status = p.stop()
        let log = p.stderr
        #expect(status == 4, "\(log)")
        let lines = log.lines(containing: "queue [jobs]: 11 items LOST: NOT saved in the database \(db)")
        #expect(lines.count == 1, "\(log)")
        #expect(lines.first?.contains("and the fallback file failed too (cannot create \(db).unsaved-jobs-") == true, "\(log)")
        #expect(lines.first?.contains("Not a directory)") == true, "\(log)")
        #expect(log.contains("queue [later]: 1 items LOST"))
        #expect(log.contains("exit status 4: queue items lost: 12"), "\(log)")
    }
}

extension KSR {
    /// Runs a query with the sqlite3 command-line tool (installed by scripts/setup --test).
    static func sqlite(_ db: String, _ sql: String) throws -> [String] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        p.arguments = [db, sql]
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }
}
