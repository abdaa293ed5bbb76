import Foundation
import KSRBase
import Testing

private typealias Kind = KamailioConfigFile.Kind
private typealias Loc = KSRBase.SourceLocation

private func parse(_ text: String, defines: [String: String] = [:]) throws(ConfigError) -> [KamailioConfigFile.Directive] {
    try KamailioConfigFile.parse(text: text, file: "k.cfg", defines: defines)
}

private func kinds(_ text: String, defines: [String: String] = [:]) throws(ConfigError) -> [Kind] {
    try parse(text, defines: defines).map(\.kind)
}

/// The error `text` fails with, or `nil` if it parses.
private func failure(_ text: String, defines: [String: String] = [:]) -> ConfigError? {
    do {
        _ = try parse(text, defines: defines)
        return nil
    } catch {
        return error
    }
}

private func at(_ line: Int, _ file: String = "k.cfg") -> Loc { Loc(file: file, line: line) }

/// A fresh temporary directory, removed by the caller.
private func makeTempDir() throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ksrcfg-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}

private func write(_ text: String, _ dir: URL, _ name: String) throws {
    let url = dir.appendingPathComponent(name)
    try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
    try text.write(to: url, atomically: true, encoding: .utf8)
}

@Suite("kamailio.cfg reader: statements")
struct KamailioConfigStatementTests {
    @Test func kemiExampleConfig() throws {
        let text = """
            #!KAMAILIO
            #!define WITH_DEBUG
            debug=2
            log_stderror=yes
            children=2
            listen=udp:127.0.0.1:5060
            loadmodule "app_lua.so"
            loadmodule "rtimer.so"
            modparam("rtimer", "timer", "name=ta;interval=1;mode=1;")
            modparam("rtimer", "exec", "timer=ta;route=ksr_rtimer")
            modparam("mqueue", "mqueue_size", 10)
            modparam("app_lua", "load", "/etc/kamailio/kamailio.lua")
            cfgengine "lua"
            """
        let directives = try parse(text)
        #expect(directives == [
            .init(.global(name: "debug", value: .int(2)), at: at(3)),
            .init(.global(name: "log_stderror", value: .token("yes")), at: at(4)),
            .init(.global(name: "children", value: .int(2)), at: at(5)),
            .init(.global(name: "listen", value: .token("udp:127.0.0.1:5060")), at: at(6)),
            .init(.loadmodule("app_lua.so"), at: at(7)),
            .init(.loadmodule("rtimer.so"), at: at(8)),
            .init(.modparam(module: "rtimer", param: "timer", value: .string("name=ta;interval=1;mode=1;")), at: at(9)),
            .init(.modparam(module: "rtimer", param: "exec", value: .string("timer=ta;route=ksr_rtimer")), at: at(10)),
            .init(.modparam(module: "mqueue", param: "mqueue_size", value: .int(10)), at: at(11)),
            .init(.modparam(module: "app_lua", param: "load", value: .string("/etc/kamailio/kamailio.lua")), at: at(12)),
            .init(.cfgengine("lua"), at: at(13)),
        ])
    }

    @Test func globalsWithSpacingSemicolonsAndRepeats() throws {
        let text = """
            debug = 3 ;
            children=4;
              fork = yes
            listen=udp:127.0.0.1:5060
            listen = tcp:[::1]:5060
            listen=udp:[2001:db8::1]:5080;  listen=tls:eth0:5061
            async_workers=4
            async_workers_group="name=reg;workers=2"
            server_header="Server: KSR"; user_agent_header='UA: ksr'
            """
        #expect(try kinds(text) == [
            .global(name: "debug", value: .int(3)),
            .global(name: "children", value: .int(4)),
            .global(name: "fork", value: .token("yes")),
            .global(name: "listen", value: .token("udp:127.0.0.1:5060")),
            .global(name: "listen", value: .token("tcp:[::1]:5060")),
            .global(name: "listen", value: .token("udp:[2001:db8::1]:5080")),
            .global(name: "listen", value: .token("tls:eth0:5061")),
            .global(name: "async_workers", value: .int(4)),
            .global(name: "async_workers_group", value: .string("name=reg;workers=2")),
            .global(name: "server_header", value: .string("Server: KSR")),
            .global(name: "user_agent_header", value: .string("UA: ksr")),
        ])
    }

    @Test func integerForms() throws {
        let text = """
            debug=-1
            a=0
            b=0x1F
            c=010
            d=101b
            e=5060abc
            f=08
            g=99999999999999999999999
            """
        #expect(try kinds(text) == [
            .global(name: "debug", value: .int(-1)),
            .global(name: "a", value: .int(0)),
            .global(name: "b", value: .int(31)),
            .global(name: "c", value: .int(8)),
            .global(name: "d", value: .int(5)),
            .global(name: "e", value: .token("5060abc")),
            .global(name: "f", value: .token("08")),
            .global(name: "g", value: .token("99999999999999999999999")),
        ])
    }

    @Test func multiWordValuesAreKeptAsWritten() throws {
        let text = """
            listen=udp:10.0.0.1:5060 advertise 1.2.3.4:5060 name "sock one"
            log_facility=LOG_LOCAL0
            kemi.onsend_route_callback="ksr_onsend_route"
            pstn.gw_ip = "10.0.0.2" desc "PSTN gateway"
            """
        #expect(try kinds(text) == [
            .global(name: "listen", value: .token("udp:10.0.0.1:5060 advertise 1.2.3.4:5060 name \"sock one\"")),
            .global(name: "log_facility", value: .token("LOG_LOCAL0")),
            .global(name: "kemi.onsend_route_callback", value: .string("ksr_onsend_route")),
            .global(name: "pstn.gw_ip", value: .string("10.0.0.2")),
        ])
    }

    @Test func loadpathForms() throws {
        let text = """
            loadpath "/usr/lib/kamailio/modules/"
            mpath="/opt/modules"
            mpath = "/a:/b";
            loadmodule "tm.so";
            """
        #expect(try kinds(text) == [
            .loadpath("/usr/lib/kamailio/modules/"),
            .loadpath("/opt/modules"),
            .loadpath("/a:/b"),
            .loadmodule("tm.so"),
        ])
    }

    @Test func modparamForms() throws {
        let text = """
            modparam("mqueue", "mqueue", "name=q1;size=10")
            modparam( "tm" , "fr_timer" , -5 ) ;
            modparam("tm", "auto_inv_100", yes)
            modparam("auth|auth_db", "x", 0x10)
            modparam("rtimer", "timer",
                     "name=tb;interval=100000u;mode=1;")
            modparam("htable", "htable", "a=>size=4;" "autoexpire=0;")
            modparam("mqueue", "db_url", "")
            """
        let d = try parse(text)
        #expect(d.map(\.kind) == [
            .modparam(module: "mqueue", param: "mqueue", value: .string("name=q1;size=10")),
            .modparam(module: "tm", param: "fr_timer", value: .int(-5)),
            .modparam(module: "tm", param: "auto_inv_100", value: .token("yes")),
            .modparam(module: "auth|auth_db", param: "x", value: .int(16)),
            .modparam(module: "rtimer", param: "timer", value: .string("name=tb;interval=100000u;mode=1;")),
            .modparam(module: "htable", param: "htable", value: .string("a=>size=4;autoexpire=0;")),
            .modparam(module: "mqueue", param: "db_url", value: .string("")),
        ])
        #expect(d.map(\.location.line) == [1, 2, 3, 4, 5, 7, 8])
    }

    @Test func stringEscapesAndConcatenation() throws {
        let text = #"""
            a="q\"uote \\ back\nnl\ttab"
            b="one" "two"   "three"
            c="x\d+\.y"
            d="\x41\102\0"
            e='raw \n "quoted"'
            f="multi
            line"
            g="joined \
            here"
            h="first"
              "second"
            i=1
            """#
        let d = try parse(text)
        #expect(d.map(\.kind) == [
            .global(name: "a", value: .string("q\"uote \\ back\nnl\ttab")),
            .global(name: "b", value: .string("onetwothree")),
            .global(name: "c", value: .string(#"x\d+\.y"#)),
            .global(name: "d", value: .string(#"AB\0"#)),
            .global(name: "e", value: .string(#"raw \n "quoted""#)),
            .global(name: "f", value: .string("multi\nline")),
            .global(name: "g", value: .string("joined here")),
            .global(name: "h", value: .string("firstsecond")),
            .global(name: "i", value: .int(1)),
        ])
        #expect(d.map(\.location.line) == [1, 2, 3, 4, 5, 6, 8, 10, 12])
    }

    @Test func commentsAndLocations() throws {
        let text = """
            # a comment with "quotes and /* things
            debug=2 # trailing comment
            // slash comment
            children=4 // trailing slash comment
            /* block
               comment spanning
               lines */
            listen=udp:1.2.3.4:5060/* inline */;
            /* nested /* inner */ still comment */ fork=no
            modparam("a", "b", "# not a comment // nor this /* nor this */")
            modparam("a", /* inside */ "c", 1) # after
            """
        let d = try parse(text)
        #expect(d == [
            .init(.global(name: "debug", value: .int(2)), at: at(2)),
            .init(.global(name: "children", value: .int(4)), at: at(4)),
            .init(.global(name: "listen", value: .token("udp:1.2.3.4:5060")), at: at(8)),
            .init(.global(name: "fork", value: .token("no")), at: at(9)),
            .init(.modparam(module: "a", param: "b", value: .string("# not a comment // nor this /* nor this */")), at: at(10)),
            .init(.modparam(module: "a", param: "c", value: .int(1)), at: at(11)),
        ])
    }

    @Test func crlfAndBOMAndEmptyInput() throws {
        #expect(try kinds("\u{FEFF}debug=2\r\nlisten=udp:1.2.3.4:5060\r\n") == [
            .global(name: "debug", value: .int(2)),
            .global(name: "listen", value: .token("udp:1.2.3.4:5060")),
        ])
        #expect(try kinds("").isEmpty)
        #expect(try kinds("\n\n  # only comments\n;;\n").isEmpty)
    }

    @Test func cfgValueTextAndIntValue() {
        #expect(CfgValue.string("abc").text == "abc")
        #expect(CfgValue.int(-3).text == "-3")
        #expect(CfgValue.token("udp:1.2.3.4:5060").text == "udp:1.2.3.4:5060")
        for yes in ["yes", "on", "true", "enable", "YES"] { #expect(CfgValue.token(yes).intValue == 1) }
        for no in ["no", "off", "false", "disable", "Off"] { #expect(CfgValue.token(no).intValue == 0) }
        #expect(CfgValue.int(7).intValue == 7)
        #expect(CfgValue.string("10").intValue == 10)
        #expect(CfgValue.string("-10").intValue == -10)
        #expect(CfgValue.string("yes").intValue == nil)
        #expect(CfgValue.token("udp:1.2.3.4").intValue == nil)
        #expect(CfgValue.string("1x").intValue == nil)
    }

    @Test func descriptionsUseConfigSyntax() {
        let m = Kind.modparam(module: "rtimer", param: "timer", value: .string("name=\"ta\";"))
        #expect(m.description == #"modparam("rtimer", "timer", "name=\"ta\";")"#)
        #expect(Kind.global(name: "debug", value: .int(2)).description == "debug=2")
        #expect(Kind.loadmodule("tm.so").description == #"loadmodule "tm.so""#)
        #expect(Kind.cfgengine("lua").description == #"cfgengine "lua""#)
        let d = KamailioConfigFile.Directive(.loadpath("/m"), at: at(3))
        #expect(d.description == #"k.cfg:3: loadpath "/m""#)
    }
}

@Suite("kamailio.cfg reader: preprocessor")
struct KamailioConfigPreprocessorTests {
    @Test func ifdefBranchesNestedAndElse() throws {
        let text = """
            #!define WITH_DEBUG
            #!ifdef WITH_DEBUG
            debug=4
            #!else
            debug=2
            #!endif
            #!ifndef WITH_DEBUG
            children=8
            #!else
            children=1
              #!ifdef WITH_TLS
            listen=tls:1.2.3.4:5061
                #!ifdef WITH_DEBUG
            nested_inactive=1
                #!endif
              #!else
            listen=udp:1.2.3.4:5060
              #!endif
            #!endif
            fork=yes
            """
        let d = try parse(text)
        #expect(d == [
            .init(.global(name: "debug", value: .int(4)), at: at(3)),
            .init(.global(name: "children", value: .int(1)), at: at(10)),
            .init(.global(name: "listen", value: .token("udp:1.2.3.4:5060")), at: at(17)),
            .init(.global(name: "fork", value: .token("yes")), at: at(20)),
        ])
        #expect(try kinds(text, defines: ["WITH_TLS": ""]).contains(.global(name: "listen", value: .token("tls:1.2.3.4:5061"))))
    }

    @Test func inactiveBranchesAreNotScanned() throws {
        let text = """
            #!ifdef NOT_DEFINED
            request_route {
                xlog("unterminated string);
            /* unterminated comment
            #!substdef "!A!B!g"
            #!define NOT_DEFINED_EITHER 1
            #!endif
            #!ifdef NOT_DEFINED_EITHER
            debug=9
            #!endif
            debug=1
            """
        #expect(try kinds(text) == [.global(name: "debug", value: .int(1))])
    }

    @Test func callerDefines() throws {
        let text = """
            #!ifdef WITH_MQ
            modparam("mqueue", "mqueue", "name=q")
            #!endif
            listen=LISTEN
            """
        #expect(try kinds(text, defines: ["WITH_MQ": "", "LISTEN": "udp:10.1.1.1:5060"]) == [
            .modparam(module: "mqueue", param: "mqueue", value: .string("name=q")),
            .global(name: "listen", value: .token("udp:10.1.1.1:5060")),
        ])
        #expect(failure("", defines: ["BAD-NAME": ""]) != nil)
    }

    @Test func substitutionOfDefinedNames() throws {
        let text = """
            #!define DBURL "mysql://kamailio:kamailiorw@localhost/kamailio"
            #!define MY_IP 192.168.1.10
            #!define MY_PORT 5060
            #!define QSIZE 100
            #!define LISTEN_ALL udp:0.0.0.0:5060
            #!define LOAD_TM loadmodule "tm.so"
            #!define FLAG_YES yes
            modparam("acc", "db_url", DBURL)
            listen=udp:MY_IP:MY_PORT
            modparam("mqueue", "mqueue_size", QSIZE)
            listen=LISTEN_ALL
            LOAD_TM
            fork=FLAG_YES
            alias=sip.MY_IP.nip.io
            port=5060MY_PORT
            modparam("x", "y", "MY_IP is not replaced in strings")
            """
        let d = try parse(text)
        #expect(d.map(\.kind) == [
            .modparam(module: "acc", param: "db_url", value: .string("mysql://kamailio:kamailiorw@localhost/kamailio")),
            .global(name: "listen", value: .token("udp:192.168.1.10:5060")),
            .modparam(module: "mqueue", param: "mqueue_size", value: .int(100)),
            .global(name: "listen", value: .token("udp:0.0.0.0:5060")),
            .loadmodule("tm.so"),
            .global(name: "fork", value: .token("yes")),
            .global(name: "alias", value: .token("sip.192.168.1.10.nip.io")),
            .global(name: "port", value: .token("5060MY_PORT")),
            .modparam(module: "x", param: "y", value: .string("MY_IP is not replaced in strings")),
        ])
        #expect(d.map(\.location.line) == [8, 9, 10, 11, 12, 13, 14, 15, 16])
    }

    @Test func nestedDefinesExpand() throws {
        let text = """
            #!define HOST 10.0.0.1
            #!define SOCK udp:HOST:5060
            listen=SOCK
            """
        #expect(try kinds(text) == [.global(name: "listen", value: .token("udp:10.0.0.1:5060"))])
    }

    @Test func recursiveDefineIsAnError() {
        let err = failure("#!define LOOP LOOP\nlisten=LOOP\n")
        #expect(err?.location == at(2))
        #expect(err?.message.contains("recursive") == true)
    }

    @Test func trydefRedefineUndefAndRedefinitionError() throws {
        let text = """
            #!define A 1
            #!trydef A 2
            #!trydef B 3
            a=A
            b=B
            #!redefine A 4
            #!redef C 5
            a=A
            c=C
            #!undef A
            #!ifndef A
            undefined=yes
            #!endif
            #!undef NEVER_DEFINED
            """
        #expect(try kinds(text) == [
            .global(name: "a", value: .int(1)),
            .global(name: "b", value: .int(3)),
            .global(name: "a", value: .int(4)),
            .global(name: "c", value: .int(5)),
            .global(name: "undefined", value: .token("yes")),
        ])
        let err = failure("#!define A 1\n\n#!define A 2\n")
        #expect(err?.location == at(3))
        #expect(err?.message.contains("already defined") == true)
        // A caller define behaves like -A: #!define of the same name fails, #!trydef keeps it.
        #expect(failure("#!define X 1\n", defines: ["X": "2"]) != nil)
        #expect(try kinds("#!trydef X 1\nx=X\n", defines: ["X": "2"]) == [.global(name: "x", value: .int(2))])
    }

    @Test func defineValueContinuationAndTrailingSpace() throws {
        let text = "#!define LONG \"abc\\\ndef\"   \r\nv=LONG\n"
        let d = try parse(text)
        #expect(d == [.init(.global(name: "v", value: .string("abcdef")), at: at(3))])
    }

    @Test func compatibilityAndUnknownDirectivesAreIgnored() throws {
        let text = """
            #!SER
            #!MAXCOMPAT
            #!ALL
            !!KAMAILIO
            #!/usr/sbin/kamailio
            #!something else
            !!define X 1
            x=X
            """
        #expect(try kinds(text) == [.global(name: "x", value: .int(1))])
    }

    @Test func preprocessorInsideAStatement() throws {
        let text = """
            modparam("tm", "fr_timer",
            #!ifdef FAST
                1000
            #!else
                30000
            #!endif
            )
            """
        #expect(try kinds(text) == [.modparam(module: "tm", param: "fr_timer", value: .int(30000))])
    }

    @Test func preprocessorErrors() {
        #expect(failure("debug=1\n#!substdef \"!MY_IP!1.2.3.4!g\"\n")?.location == at(2))
        #expect(failure("#!substdef \"!A!B!g\"")?.message.contains("#!substdef is not supported") == true)
        #expect(failure("#!subst \"/a/b/\"")?.message.contains("not supported") == true)
        #expect(failure("#!defenv HOME")?.message.contains("not supported") == true)

        let missingEndif = failure("debug=1\n#!ifdef X\nchildren=2\n")
        #expect(missingEndif?.location == at(2))
        #expect(missingEndif?.message.contains("#!endif") == true)

        #expect(failure("debug=1\n#!endif\n")?.location == at(2))
        #expect(failure("#!else\n")?.location == at(1))
        #expect(failure("#!ifdef A\n#!else\n#!else\n#!endif\n")?.location == at(3))
        #expect(failure("#!define BAD-NAME 1\n")?.message.contains("'-'") == true)
        #expect(failure("#!define\n") != nil)
        #expect(failure("#!ifdef\n") != nil)
        #expect(failure("#!ifdef A B\n#!endif\n")?.location == at(1))
        #expect(failure("#!ifdef A\n#!endif // comment\n")?.location == at(2))
    }
}

@Suite("kamailio.cfg reader: errors")
struct KamailioConfigErrorTests {
    @Test(arguments: [
        "request_route {",
        "route[RELAY] {",
        "route {",
        "reply_route {",
        "onreply_route[MANAGE_REPLY] {",
        "failure_route[MANAGE_FAILURE] {",
        "branch_route[MANAGE_BRANCH] {",
        "onsend_route {",
        "event_route[xhttp:request] {",
        "event_route [tm:local-request] {",
    ])
    func nativeRouteBlocksAreRefused(_ opening: String) {
        let text = "debug=2\nloadmodule \"tm.so\"\n\n\(opening)\n    xlog(\"hello\");\n}\n"
        let err = failure(text)
        #expect(err?.location == at(4))
        #expect(err?.message == KamailioConfigFile.nativeRoutesMessage)
        #expect(err?.message.contains("cfgengine \"lua\"") == true)
        #expect(err?.context == opening)
        #expect(err?.description.hasPrefix("k.cfg:4: native route blocks are not supported") == true)
    }

    @Test func unterminatedStringReportsWhereItStarted() {
        let err = failure("debug=2\nmodparam(\"a\", \"b\", \"abc)\nchildren=1\n\n")
        #expect(err?.location == at(2))
        #expect(err?.message.contains("unterminated string") == true)
        #expect(failure("x='abc\n")?.location == at(1))
    }

    @Test func unterminatedBlockCommentReportsWhereItStarted() {
        let err = failure("debug=2\n\n/* start\n more\n")
        #expect(err?.location == at(3))
        #expect(err?.message.contains("unterminated block comment") == true)
        #expect(failure("/* a /* b */\n")?.location == at(1))  // comments nest
    }

    @Test func garbageLines() {
        let err = failure("debug=2\nthis is garbage\n")
        #expect(err?.location == at(2))
        #expect(err?.message == "cannot parse: this is garbage")

        for bad in [
            "debug=",
            "debug=;",
            "=2",
            "\"debug\"=2",
            "loadmodule tm.so",
            "loadmodule(\"tm.so\")",
            "loadmodule \"tm.so\" extra",
            "cfgengine lua",
            "modparam(\"a\", \"b\")",
            "modparam(\"a\", \"b\", c)",
            "modparam(\"a\", \"b\", 1",
            "modparam(a, \"b\", 1)",
            "modparam(\"a\", \"b\", 1) x",
            "debug=2 = 3",
            "if (debug) { exit; }",
            "}",
            "flags FLT_ACC:1",
            "a.=1",
        ] {
            let e = failure("children=1\n\(bad)\n")
            #expect(e?.location == at(2), "\(bad)")
            #expect(e?.message.hasPrefix("cannot parse: ") == true, "\(bad)")
        }
    }

    @Test func cannotParseShowsEveryLineOfAMultiLineStatement() {
        let err = failure("modparam(\"a\",\n   \"b\",\n   oops)\n")
        #expect(err?.location == at(1))
        #expect(err?.message == "cannot parse: modparam(\"a\", \"b\", oops)")
    }
}

@Suite("kamailio.cfg reader: files")
struct KamailioConfigFileTests {
    @Test func readsFileWithIncludesAndImports() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try write("""
            #!KAMAILIO
            #!trydef WITH_MQ
            debug=2
            include_file "conf.d/modules.cfg"
            import_file "local-optional.cfg"
            #!ifdef FROM_INCLUDE
            children=3
            #!endif
            cfgengine "lua"
            """, dir, "kamailio.cfg")
        try write("""
            loadmodule "app_lua.so"

            #!ifdef WITH_MQ
            loadmodule "mqueue.so"
            #!endif
            include_file "params.cfg"
            #!define FROM_INCLUDE
            """, dir, "conf.d/modules.cfg")
        try write("modparam(\"app_lua\", \"load\", \"/etc/kamailio/kamailio.lua\")\n", dir, "conf.d/params.cfg")

        let main = dir.appendingPathComponent("kamailio.cfg").path
        let mods = dir.appendingPathComponent("conf.d/modules.cfg").path
        let params = dir.appendingPathComponent("conf.d/params.cfg").path
        let d = try KamailioConfigFile.parse(path: main)
        #expect(d == [
            .init(.global(name: "debug", value: .int(2)), at: Loc(file: main, line: 3)),
            .init(.loadmodule("app_lua.so"), at: Loc(file: mods, line: 1)),
            .init(.loadmodule("mqueue.so"), at: Loc(file: mods, line: 4)),
            .init(.modparam(module: "app_lua", param: "load", value: .string("/etc/kamailio/kamailio.lua")),
                  at: Loc(file: params, line: 1)),
            .init(.global(name: "children", value: .int(3)), at: Loc(file: main, line: 7)),
            .init(.cfgengine("lua"), at: Loc(file: main, line: 9)),
        ])

        // With the optional file present, it is read too.
        try write("listen=udp:127.0.0.1:5070\n", dir, "local-optional.cfg")
        let d2 = try KamailioConfigFile.parse(path: main)
        #expect(d2.contains(.init(.global(name: "listen", value: .token("udp:127.0.0.1:5070")),
                                  at: Loc(file: dir.appendingPathComponent("local-optional.cfg").path, line: 1))))
    }

    @Test func errorsInIncludedFilesPointIntoThem() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try write("debug=2\ninclude_file \"routes.cfg\"\n", dir, "kamailio.cfg")
        try write("# routes\n\nrequest_route {\n  exit;\n}\n", dir, "routes.cfg")
        do {
            _ = try KamailioConfigFile.parse(path: dir.appendingPathComponent("kamailio.cfg").path)
            Issue.record("expected an error")
        } catch {
            #expect(error.location == Loc(file: dir.appendingPathComponent("routes.cfg").path, line: 3))
            #expect(error.message == KamailioConfigFile.nativeRoutesMessage)
        }
    }

    @Test func missingIncludeIsAnErrorButMissingImportIsNot() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let main = dir.appendingPathComponent("kamailio.cfg").path
        try write("debug=1\n\ninclude_file \"nope.cfg\"\n", dir, "kamailio.cfg")
        do {
            _ = try KamailioConfigFile.parse(path: main)
            Issue.record("expected an error")
        } catch {
            #expect(error.location == Loc(file: main, line: 3))
            #expect(error.message.contains("nope.cfg"))
        }
        try write("debug=1\nimport_file \"nope.cfg\"\nchildren=2\n", dir, "kamailio.cfg")
        #expect(try KamailioConfigFile.parse(path: main).map(\.kind) == [
            .global(name: "debug", value: .int(1)), .global(name: "children", value: .int(2)),
        ])
    }

    @Test func includeCycleIsAnError() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try write("debug=1\ninclude_file \"a.cfg\"\n", dir, "kamailio.cfg")
        try write("include_file \"b.cfg\"\n", dir, "a.cfg")
        try write("x=1\ninclude_file \"./a.cfg\"\n", dir, "b.cfg")
        do {
            _ = try KamailioConfigFile.parse(path: dir.appendingPathComponent("kamailio.cfg").path)
            Issue.record("expected an error")
        } catch {
            #expect(error.message.hasPrefix("include cycle"))
            #expect(error.location == Loc(file: dir.appendingPathComponent("b.cfg").path, line: 2))
        }
        // Including the main file from itself is a cycle too.
        try write("include_file \"kamailio.cfg\"\n", dir, "kamailio.cfg")
        #expect(throws: ConfigError.self) {
            try KamailioConfigFile.parse(path: dir.appendingPathComponent("kamailio.cfg").path)
        }
    }

    @Test func includeWithAbsolutePathAndFromText() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try write("children=7\n", dir, "inc.cfg")
        let abs = dir.appendingPathComponent("inc.cfg").path
        #expect(try kinds("include_file \"\(abs)\"\n") == [.global(name: "children", value: .int(7))])
        let viaFile = try KamailioConfigFile.parse(
            text: "include_file \"inc.cfg\"", file: dir.appendingPathComponent("virtual.cfg").path)
        #expect(viaFile.map(\.location) == [Loc(file: abs, line: 1)])
    }

    @Test func missingMainFile() {
        do {
            _ = try KamailioConfigFile.parse(path: "/nonexistent/dir/kamailio.cfg")
            Issue.record("expected an error")
        } catch {
            #expect(error.location?.file == "/nonexistent/dir/kamailio.cfg")
            #expect(error.message.hasPrefix("cannot read config file"))
        }
    }
}
