import DMQ
import MQueue
import Prometheus
import Synchronization

/// Counters and histograms of one Lua callback.
struct CallbackMetrics {
    let calls: Counter
    let errors: Counter
    let duration: DurationHistogram
}

/// The host's Prometheus metrics (`GET /metrics`). Timers and callbacks update theirs as they
/// run; queue figures are read from the engine's own counters when scraped, so queue
/// operations pay nothing for metrics.
public final class HostMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    let workers: Gauge
    private let queueLock = Mutex<[String: MQueueSeries]>([:])

    /// 10 µs … 10 s.
    static let latencyBuckets: [Duration] = [
        .microseconds(10), .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500),
        .milliseconds(1), .milliseconds(2.5), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(10),
    ]

    struct MQueueSeries {
        let size: Gauge
        let limit: Gauge
        let adds: Counter
        let fetches: Counter
        let drops: Counter
    }

    public init() {
        workers = registry.gauge("ksr_workers", labels: [], help: "Worker threads, each with its own Lua state")
    }

    func callback(_ name: String) -> CallbackMetrics {
        let labels = [("callback", name)]
        return CallbackMetrics(
            calls: registry.counter("ksr_lua_callbacks_total", labels: labels, help: "Lua callbacks run"),
            errors: registry.counter("ksr_lua_callback_errors_total", labels: labels,
                                         help: "Lua callbacks that ended with an error"),
            duration: registry.histogram("ksr_lua_callback_duration_seconds", labels: labels,
                                                     buckets: Self.latencyBuckets, help: "Time spent in Lua callbacks"))
    }

    /// DMQ: nodes per state (read from the node list when scraped) and KDMQ requests sent.
    func updateDMQ(_ dmq: DMQService?) {
        guard let dmq else { return }
        for (state, n) in dmq.membership.counts() {
            registry.gauge("ksr_dmq_nodes", labels: [("state", state.rawValue)], help: "Other DMQ nodes in the node list, per state")
                .set(Double(n))
        }
        let sent = registry.counter("ksr_dmq_requests_sent_total", labels: [], help: "KDMQ requests sent (notifications, messages, replicas)")
        sent.reset()
        sent.increment(by: Int64(dmq.sentMessages.load(ordering: .relaxed)))
    }

    /// The Prometheus text exposition, with the queues' and DMQ's current figures.
    public func render(queues: [MessageQueue], dmq: DMQService? = nil) -> String {
        updateDMQ(dmq)
        return queueLock.withLock { series in
            for q in queues {
                let name = q.definition.name
                let s = series[name] ?? {
                    let labels = [("queue", name)]
                    let s = MQueueSeries(
                        size: registry.gauge("ksr_mqueue_size", labels: labels, help: "Items in the queue"),
                        limit: registry.gauge("ksr_mqueue_limit", labels: labels, help: "Queue size bound (0: none)"),
                        adds: registry.counter("ksr_mqueue_adds_total", labels: labels, help: "Items added"),
                        fetches: registry.counter("ksr_mqueue_fetches_total", labels: labels, help: "Items fetched"),
                        drops: registry.counter("ksr_mqueue_drops_total", labels: labels,
                                                    help: "Oldest items dropped because the queue was full"))
                    series[name] = s
                    return s
                }()
                let stats = q.stats
                s.size.set(Double(q.count))
                s.limit.set(Double(q.definition.size))
                s.adds.reset()
                s.adds.increment(by: Int64(clamping: stats.adds))
                s.fetches.reset()
                s.fetches.increment(by: Int64(clamping: stats.fetches))
                s.drops.reset()
                s.drops.increment(by: Int64(clamping: stats.drops))
            }
            return registry.emitToString()
        }
    }
}

extension PrometheusCollectorRegistry {
    func counter(_ name: String, labels: [(String, String)], help: String) -> Counter {
        makeCounter(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help), labels: labels)
    }
    func gauge(_ name: String, labels: [(String, String)], help: String) -> Gauge {
        makeGauge(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help), labels: labels)
    }
    func histogram(_ name: String, labels: [(String, String)], buckets: [Duration], help: String) -> DurationHistogram {
        makeDurationHistogram(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help),
                              labels: labels, buckets: buckets)
    }
}
