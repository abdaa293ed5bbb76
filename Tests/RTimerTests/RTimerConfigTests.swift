import KSRBase
import RTimer
import Testing

/// Runs `body` and returns the `ParamError` message it throws, or `nil` if it does not throw.
private func errorMessage(_ body: () throws(ParamError) -> Void) -> String? {
    do throws(ParamError) {
        try body()
        return nil
    } catch {
        return error.message
    }
}

@Suite struct TimerParamTests {
    @Test func defaults() {
        let config = RTimerConfig()
        #expect(config.defaultInterval == 120)
        #expect(config.timers.isEmpty)
        #expect(config.workers.isEmpty)
    }

    @Test func basicTimer() throws {
        var config = RTimerConfig()
        let warnings = try config.addTimer("name=ta;interval=10;mode=1;")
        #expect(warnings.isEmpty)
        #expect(config.timers == [TimerDefinition(name: "ta", interval: .seconds(10), mode: 1)])
    }

    @Test func keysAreCaseInsensitive() throws {
        var config = RTimerConfig()
        try config.addTimer("NAME=Ta;Interval=7u;MoDe=3")
        #expect(config.timers == [TimerDefinition(name: "Ta", interval: .microseconds(7), mode: 3)])
    }

    @Test func modeDefaultsToZero() throws {
        var config = RTimerConfig()
        try config.addTimer("name=ta;interval=10")
        #expect(config.timers.first?.mode == 0)
    }

    @Test(arguments: ["interval=10;mode=1", "name=;interval=10", "name=\"\""])
    func nameIsRequired(_ value: String) {
        var config = RTimerConfig()
        #expect(errorMessage { () throws(ParamError) in try config.addTimer(value) } == "invalid timer name")
        #expect(config.timers.isEmpty)
    }

    @Test func duplicateNameIsCaseInsensitive() throws {
        var config = RTimerConfig()
        try config.addTimer("name=ta;interval=10")
        #expect(
            errorMessage { () throws(ParamError) in try config.addTimer("name=TA;interval=20") }
                == "duplicate timer with same name: TA")
        #expect(config.timers.count == 1)
        #expect(config.timers[0].interval == .seconds(10))
        try config.addTimer("name=tb;interval=20")
        #expect(config.timers.map(\.name) == ["ta", "tb"])
    }

    @Test(arguments: ["abc", "-5", "+5", "10s", "u", "", "1.5", "10uu", "4294967296", "4294967296u"])
    func invalidInterval(_ text: String) {
        var config = RTimerConfig()
        #expect(
            errorMessage { () throws(ParamError) in try config.addTimer("name=ta;interval=\(text)") }
                == "invalid interval: \(text)")
        #expect(config.timers.isEmpty)
    }

    @Test func largestIntervalIsAccepted() throws {
        var config = RTimerConfig()
        try config.addTimer("name=ta;interval=4294967295")
        #expect(config.timers[0].interval == .seconds(4_294_967_295))
    }

    @Test(arguments: ["x", "-1", "", "1u", "4294967296"])
    func invalidMode(_ text: String) {
        var config = RTimerConfig()
        #expect(
            errorMessage { () throws(ParamError) in try config.addTimer("name=ta;interval=1;mode=\(text)") }
                == "invalid mode: \(text)")
        #expect(config.timers.isEmpty)
    }

    @Test(arguments: [
        ("interval=500000u", TimerInterval.microseconds(500_000), 1),
        ("interval=500000U", .microseconds(500_000), 1),
        ("interval=500000u;mode=0", .microseconds(500_000), 1),
        ("interval=500000u;mode=2", .microseconds(500_000), 2),
        ("mode=2;interval=500000u", .microseconds(500_000), 2),
        ("mode=0;interval=500000u", .microseconds(500_000), 1),
        ("interval=5;mode=0", .seconds(5), 0),
        ("mode=4;interval=5", .seconds(5), 4),
    ])
    func microsecondsForceDedicatedWorker(_ rest: String, _ interval: TimerInterval, _ mode: Int) throws {
        var config = RTimerConfig()
        try config.addTimer("name=ta;\(rest)")
        #expect(config.timers == [TimerDefinition(name: "ta", interval: interval, mode: mode)])
    }

    @Test func zeroOrMissingIntervalUsesDefault() throws {
        var config = RTimerConfig()
        try config.addTimer("name=a")
        try config.addTimer("name=b;interval=0")
        try config.addTimer("name=c;interval=0u")
        try config.addTimer("name=d;interval=000")
        #expect(
            config.timers.map(\.interval) == [.seconds(120), .seconds(120), .microseconds(120), .seconds(120)])
        #expect(config.timers.map(\.mode) == [0, 0, 1, 0])
    }

    @Test func defaultIntervalAppliesOnlyToLaterTimers() throws {
        var config = RTimerConfig()
        try config.addTimer("name=a")
        try config.setDefaultInterval(30)
        #expect(config.defaultInterval == 30)
        try config.addTimer("name=b")
        try config.addTimer("name=c;interval=5")
        try config.setDefaultInterval(7)
        try config.addTimer("name=d;interval=0")
        #expect(config.timers.map(\.interval) == [.seconds(120), .seconds(30), .seconds(5), .seconds(7)])
    }

    @Test(arguments: [0, -1, Int(UInt32.max) + 1])
    func invalidDefaultInterval(_ value: Int) {
        var config = RTimerConfig()
        #expect(
            errorMessage { () throws(ParamError) in try config.setDefaultInterval(value) }
                == "invalid default_interval: \(value) (must be > 0)")
        #expect(config.defaultInterval == 120)
    }

    @Test func repeatedKeyKeepsFirstValue() throws {
        var config = RTimerConfig()
        try config.addTimer("name=ta;interval=5;mode=2;INTERVAL=9;mode=3;name=tb")
        #expect(config.timers == [TimerDefinition(name: "ta", interval: .seconds(5), mode: 2)])
    }

    @Test func unknownKeysAreWarnings() throws {
        var config = RTimerConfig()
        let warnings = try config.addTimer("name=ta;foo=1;interval=3;Bar=x")
        #expect(warnings.count == 2)
        #expect(warnings[0].contains("'foo'"))
        #expect(warnings[1].contains("'Bar'"))
        #expect(warnings.allSatisfy { $0.contains("timer") })
        #expect(config.timers == [TimerDefinition(name: "ta", interval: .seconds(3), mode: 0)])

        let execWarnings = try config.addExec("timer=ta;route=cb;prio=1")
        #expect(execWarnings.count == 1)
        #expect(execWarnings[0].contains("'prio'"))
        #expect(execWarnings[0].contains("exec"))
        #expect(config.timers[0].execs == [ExecDefinition(timer: "ta", route: "cb")])
    }

    @Test func syntaxErrorsPropagate() {
        var config = RTimerConfig()
        #expect(errorMessage { () throws(ParamError) in try config.addTimer("") } == "empty parameter value")
        #expect(errorMessage { () throws(ParamError) in try config.addTimer("name") } != nil)
        #expect(errorMessage { () throws(ParamError) in try config.addExec("timer;route=x") } != nil)
        #expect(config.timers.isEmpty)
    }

    @Test func lookupIsCaseInsensitive() throws {
        var config = RTimerConfig()
        try config.addTimer("name=MyTimer;interval=1")
        #expect(config.timer(named: "mytimer")?.name == "MyTimer")
        #expect(config.timer(named: "MYTIMER")?.interval == .seconds(1))
        #expect(config.timer(named: "other") == nil)
    }
}

@Suite struct ExecParamTests {
    private func configWithTimers() throws -> RTimerConfig {
        var config = RTimerConfig()
        try config.addTimer("name=Ta;interval=10")
        try config.addTimer("name=tb;interval=20;mode=2")
        return config
    }

    @Test func execAttachesToTimerCaseInsensitively() throws {
        var config = try configWithTimers()
        let warnings = try config.addExec("TIMER=ta;Route=ksr_timer_a")
        #expect(warnings.isEmpty)
        #expect(config.timers[0].execs == [ExecDefinition(timer: "Ta", route: "ksr_timer_a")])
        #expect(config.timers[1].execs.isEmpty)
    }

    @Test func execsRunInDeclarationOrder() throws {
        var config = try configWithTimers()
        try config.addExec("timer=tb;route=first")
        try config.addExec("timer=ta;route=other")
        try config.addExec("timer=TB;route=second")
        try config.addExec("timer=tb;route=third")
        #expect(config.timers[1].execs.map(\.route) == ["first", "second", "third"])
        #expect(config.timer(named: "tb")?.execs.map(\.timer) == ["tb", "tb", "tb"])
        #expect(config.timers[0].execs.map(\.route) == ["other"])
    }

    @Test func timerMustExist() throws {
        var config = try configWithTimers()
        #expect(
            errorMessage { () throws(ParamError) in try config.addExec("timer=tc;route=cb") }
                == "timer not found - name: tc")
    }

    @Test func timerMustBeDefinedEarlier() throws {
        var config = RTimerConfig()
        #expect(
            errorMessage { () throws(ParamError) in try config.addExec("timer=ta;route=cb") }
                == "timer not found - name: ta")
        try config.addTimer("name=ta")
        try config.addExec("timer=ta;route=cb")
        #expect(config.timers[0].execs.count == 1)
    }

    @Test(arguments: ["route=cb", "timer=;route=cb"])
    func timerIsRequired(_ value: String) throws {
        var config = try configWithTimers()
        #expect(errorMessage { () throws(ParamError) in try config.addExec(value) } == "missing timer= in exec")
    }

    @Test(arguments: ["timer=ta", "timer=ta;route=", "timer=ta;route=\"\"", "timer=ta;rout=cb"])
    func routeIsRequired(_ value: String) throws {
        var config = try configWithTimers()
        #expect(errorMessage { () throws(ParamError) in try config.addExec(value) } == "missing route= in exec")
        #expect(config.timers[0].execs.isEmpty)
    }

    @Test func routeNameLength() throws {
        var config = try configWithTimers()
        let ok = String(repeating: "r", count: 62)
        try config.addExec("timer=ta;route=\(ok)")
        #expect(config.timers[0].execs.map(\.route) == [ok])

        let long = String(repeating: "r", count: 63)
        #expect(
            errorMessage { () throws(ParamError) in try config.addExec("timer=ta;route=\(long)") }
                == "route block name is too long [\(long)] (63)")
        #expect(config.timers[0].execs.count == 1)
    }

    @Test func validateRouteNameDirectly() {
        #expect(errorMessage { () throws(ParamError) in try validateRouteName("ksr_cb") } == nil)
        #expect(errorMessage { () throws(ParamError) in try validateRouteName(String(repeating: "x", count: 62)) } == nil)
        #expect(errorMessage { () throws(ParamError) in try validateRouteName("") } == "missing route= in exec")
        // The limit counts UTF-8 bytes: 31 two-byte characters fit, 32 do not.
        #expect(errorMessage { () throws(ParamError) in try validateRouteName(String(repeating: "é", count: 31)) } == nil)
        let wide = String(repeating: "é", count: 32)
        #expect(
            errorMessage { () throws(ParamError) in try validateRouteName(wide) }
                == "route block name is too long [\(wide)] (64)")
    }
}

@Suite struct WorkerPlanTests {
    @Test func sharedThenDedicated() throws {
        var config = RTimerConfig()
        try config.addTimer("name=a;interval=1")
        try config.addTimer("name=b;interval=2;mode=2")
        try config.addTimer("name=c;interval=3")
        try config.addTimer("name=d;interval=100u")
        try config.addExec("timer=b;route=cb1")
        try config.addExec("timer=b;route=cb2")
        let a = try #require(config.timer(named: "a"))
        let b = try #require(config.timer(named: "b"))
        let c = try #require(config.timer(named: "c"))
        let d = try #require(config.timer(named: "d"))
        #expect(
            config.workers == [
                .shared(timers: [a, c]),
                .dedicated(timer: b, index: 0),
                .dedicated(timer: b, index: 1),
                .dedicated(timer: d, index: 0),
            ])
        // Each dedicated worker runs every exec of its timer.
        for case .dedicated(let timer, _) in config.workers where timer.name == "b" {
            #expect(timer.execs.map(\.route) == ["cb1", "cb2"])
        }
    }

    @Test func noSharedWorkerWithoutModeZeroTimers() throws {
        var config = RTimerConfig()
        try config.addTimer("name=a;interval=1;mode=1")
        #expect(config.workers.count == 1)
        guard case .dedicated(let timer, let index) = config.workers.first else {
            Issue.record("expected a dedicated worker")
            return
        }
        #expect(timer.name == "a")
        #expect(index == 0)
    }
}

@Suite struct TimerIntervalTests {
    @Test func nanoseconds() {
        #expect(TimerInterval.seconds(10).nanoseconds == 10_000_000_000)
        #expect(TimerInterval.microseconds(500_000).nanoseconds == 500_000_000)
        #expect(TimerInterval.microseconds(1).nanoseconds == 1_000)
        #expect(TimerInterval.seconds(4_294_967_295).nanoseconds == 4_294_967_295_000_000_000)
        #expect(TimerInterval.seconds(Int.max).nanoseconds == .max)
        #expect(TimerInterval.seconds(-1).nanoseconds == 0)
    }

    @Test func descriptionUsesConfigSyntax() {
        #expect(TimerInterval.seconds(10).description == "10")
        #expect(TimerInterval.microseconds(500).description == "500u")
        #expect(TimerInterval.microseconds(500).isMicroseconds)
        #expect(!TimerInterval.seconds(5).isMicroseconds)
    }
}
