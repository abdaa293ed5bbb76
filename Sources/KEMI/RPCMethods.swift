import Control
import Synchronization

extension ScriptHost {
    /// Every module's RPC methods in one registry (system.listMethods is built in).
    public func rpcRegistry() -> RPCRegistry {
        let registry = RPCRegistry()
        for m in Self.modules { for method in m.rpcMethods(self) { registry.register(method) } }
        return registry
    }

    var timerStates: [TimerState] { state.withLock { $0.timerStates } }
    var startedAt: (seconds: Int, micros: Int) { state.withLock { $0.startedAt } }
}
