import Foundation
import Testing

/// scripts/install as an operator runs it, and the installed binary started the way its systemd
/// unit starts it, on a view of the machine where the Swift toolchain's folder is empty.
///
/// The binary is a debug ksr built with `--static-swift-stdlib`, as scripts/build-release builds
/// the release one that scripts/install installs (same static runtime; debug code, because the
/// release build takes 10+ minutes). scripts/test builds it before the tests into its own
/// scratch path (objects compiled for the dynamic runtime cannot be relinked statically).
@Suite("scripts/install and a ksr without the toolchain", .serialized)
struct InstallTests {
    static let install = KSR.packageRoot.appendingPathComponent("scripts/install").path

    /// `swift build --static-swift-stdlib --product ksr --scratch-path .build-static` (scripts/test);
    /// KSR_STATIC_BIN names another (e.g. scripts/build-release's).
    static let binary: String = ProcessInfo.processInfo.environment["KSR_STATIC_BIN"]
        ?? KSR.packageRoot.appendingPathComponent(".build-static/debug/ksr").path

    /// The toolchain this test bundle runs on: the folder its libswiftCore.so is in, up to
    /// `<root>/lib/swift/linux/` (e.g. /opt/swift/usr).
    static let toolchainRoot: String? = {
        // /proc files report size 0: read to the end rather than by size.
        guard let data = FileHandle(forReadingAtPath: "/proc/self/maps")?.readDataToEndOfFile(),
              let maps = String(data: data, encoding: .utf8) else { return nil }
        for line in maps.split(separator: "\n") where line.hasSuffix("/libswiftCore.so") {
            guard let slash = line.firstIndex(of: "/") else { continue }
            let path = String(line[slash...])
            guard let r = path.range(of: "/lib/swift/linux/") else { continue }
            return String(path[..<r.lowerBound])
        }
        return nil
    }()

    static func ldd(_ file: String) throws -> KSR.Result {
        try KSR.run([file], timeout: 30, executable: "/usr/bin/ldd")
    }

    static func bashScript(_ args: [String]) throws -> KSR.Result {
        try KSR.run([install] + args, timeout: 120, executable: "/bin/bash")
    }

    static func requireStaticBinary() throws {
        try #require(FileManager.default.isExecutableFile(atPath: binary),
                     "\(binary) is missing: `swift build --static-swift-stdlib --product ksr --scratch-path .build-static` (scripts/test does) builds it")
        let libs = try ldd(binary)
        try #require(libs.status == 0 && !libs.stdout.contains("libswiftCore"),
                     "\(binary) links the toolchain's runtime:\n\(libs.stdout)")
    }

    @Test func installedBinaryStartsItsConfigWithoutTheToolchain() throws {
        let toolchain = try #require(Self.toolchainRoot, "this test bundle does not map libswiftCore.so from a toolchain")
        try Self.requireStaticBinary()
        let tmp = TempDir()
        let prefix = tmp.path("prefix")

        let r = try Self.bashScript(["--prefix", prefix, "--binary", Self.binary])
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
        #expect(r.stdout.contains("installed \(prefix)/bin/ksr"))
        #expect(r.stdout.contains("installed \(prefix)/etc/ksr/kamailio.cfg"))
        #expect(r.stdout.contains("installed \(prefix)/etc/ksr/ksr.lua"))
        #expect(r.stdout.contains("installed \(prefix)/lib/systemd/system/ksr.service"))
        #expect(r.stdout.contains("ksr.lua: OK"), "the installed config is checked: \(r.stdout)")

        // Only the system's libraries: nothing from the toolchain, nothing missing.
        let bin = "\(prefix)/bin/ksr"
        let libs = try Self.ldd(bin)
        #expect(libs.status == 0, "\(libs.stderr)")
        #expect(!libs.stdout.contains(toolchain), "ldd \(bin) names the toolchain:\n\(libs.stdout)")
        #expect(!libs.stdout.contains("libswift") && !libs.stdout.contains("libFoundation") && !libs.stdout.contains("not found"),
                "\(libs.stdout)")
        #expect(libs.stdout.contains("liblua5.4") && libs.stdout.contains("libsqlite3"), "\(libs.stdout)")

        // The unit runs the installed binary on the installed config; reload is SIGHUP.
        let unit = try String(contentsOfFile: "\(prefix)/lib/systemd/system/ksr.service", encoding: .utf8)
        #expect(unit.contains("\nExecStart=\(bin) run -f \(prefix)/etc/ksr/kamailio.cfg\n"), "\(unit)")
        #expect(unit.contains("\nExecReload=/bin/kill -HUP $MAINPID\n"))
        #expect(unit.contains("\nRestart=on-failure\n"))
        #expect(unit.contains("\nWorkingDirectory=\(prefix)/etc/ksr\n"))
        #expect(unit.contains("\nWantedBy=multi-user.target\n"))
        // systemd's own check of the unit, where systemd is installed (Debian: apt install systemd).
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze") {
            let verify = try KSR.run(["verify", "\(prefix)/lib/systemd/system/ksr.service"], timeout: 60,
                                     executable: "/usr/bin/systemd-analyze")
            #expect(verify.status == 0 && verify.stderr.isEmpty, "\(verify.stdout)\n\(verify.stderr)")
        }

        // The unit's command in a mount namespace where the toolchain's folder is an empty
        // directory (the shell runs ksr only when libswiftCore.so is gone from the view).
        let empty = tmp.path("empty")
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        let script = """
            mount --bind "$2" "$1" || exit 97
            [ -e "$1/lib/swift/linux/libswiftCore.so" ] && exit 98
            echo "toolchain hidden: $1" >&2
            cd "$3/etc/ksr" && exec env -u LD_LIBRARY_PATH "$3/bin/ksr" run -f "$3/etc/ksr/kamailio.cfg"
            """
        let p = try KSR.Running(["-m", "/bin/sh", "-c", script, "sh", toolchain, empty, prefix], executable: "/usr/bin/unshare")
        #expect(p.waitForStderr(timeout: 30) { $0.contains("ksr status: up 1 s") }, "\(p.stderr)")
        #expect(p.stderr.contains("toolchain hidden: \(toolchain)"))
        // What `systemctl reload ksr` does (unshare and sh exec'd into ksr: same pid).
        kill(p.process.processIdentifier, SIGHUP)
        #expect(p.waitForStderr(timeout: 30) { $0.contains("reloaded") && $0.contains("ksr.lua") }, "\(p.stderr)")
        #expect(p.stop() == 0, "\(p.stderr)")
        #expect(!p.stderr.contains(" ERROR: ") && !p.stderr.contains(" WARNING: <config>"), "\(p.stderr)")
    }

    @Test func reinstallKeepsTheConfigAndRefusesAToolchainBinary() throws {
        try Self.requireStaticBinary()
        let tmp = TempDir()
        let prefix = tmp.path("prefix")
        let first = try Self.bashScript(["--prefix", prefix, "--binary", Self.binary])
        #expect(first.status == 0, "\(first.stdout)\n\(first.stderr)")

        // An operator's edit survives a second install; nothing else changes.
        let cfg = "\(prefix)/etc/ksr/kamailio.cfg"
        let edited = try String(contentsOfFile: cfg, encoding: .utf8) + "# edited by the operator\nchildren=3\n"
        try edited.write(toFile: cfg, atomically: true, encoding: .utf8)
        let again = try Self.bashScript(["--prefix", prefix, "--binary", Self.binary])
        #expect(again.status == 0, "\(again.stdout)\n\(again.stderr)")
        #expect(again.stdout.contains("kept \(cfg) (exists)"))
        #expect(again.stdout.contains("kept \(prefix)/etc/ksr/ksr.lua (exists)"))
        #expect(again.stdout.contains("unchanged \(prefix)/bin/ksr"))
        #expect(again.stdout.contains("unchanged \(prefix)/lib/systemd/system/ksr.service"))
        #expect(try String(contentsOfFile: cfg, encoding: .utf8) == edited)

        // A kept config that does not pass `ksr check` fails the install, naming file and line.
        try (edited + "modparam(\"rtimer\", \"timer\", \"name=status;interval=0;mode=1;\")\n")
            .write(toFile: cfg, atomically: true, encoding: .utf8)
        let broken = try Self.bashScript(["--prefix", prefix, "--binary", Self.binary])
        #expect(broken.status != 0)
        #expect(broken.stderr.contains("\(cfg):"), "\(broken.stderr)")
        #expect(broken.stderr.contains("does not pass ksr check"), "\(broken.stderr)")

        // A binary linked to the toolchain's libraries (this test bundle) is refused.
        let other = tmp.path("other")
        let bundle = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let refused = try Self.bashScript(["--prefix", other, "--binary", bundle])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("needs libraries of the Swift toolchain"), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(other)/bin/ksr"))
    }

    @Test func helpAndBadArguments() throws {
        let help = try Self.bashScript(["--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("--prefix DIR") && help.stdout.contains("/usr/local") && help.stdout.contains("--binary FILE"))
        let bad = try Self.bashScript(["--prefx", "/tmp/x"])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("unknown argument: --prefx"))
        let spaced = try Self.bashScript(["--prefix", "/tmp/a b", "--binary", Self.binary])
        #expect(spaced.status != 0)
        #expect(spaced.stderr.contains("systemd unit"))
    }
}
