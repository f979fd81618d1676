//! Metrics and health: Prometheus metrics on `/metrics`, liveness on `/healthz`, readiness
//! (programs attached, rules loaded) on `/readyz`, served over HTTP.
//!
//! The run loop refreshes one [`Snapshot`] of every stage's counters about once a second;
//! a scrape encodes the latest snapshot, so scraping never touches the pipeline.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
};

use anyhow::Context as _;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode, body::Bytes, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::Registry,
};
use sensor_abi::config::Counters;

use crate::{capture::RingFill, enrich::ContainerStats, outputs::OutputCounters};

/// Every stage's counters at one moment.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Kernel-side counters, one entry per CPU.
    pub kernel: Vec<Counters>,
    /// Events the in-kernel prefilter kept back, by syscall.
    pub prefiltered: Vec<(&'static str, u64)>,
    /// How full each ring buffer is.
    pub rings: Vec<RingFill>,
    /// Events decoded, by event type (`openat`, `procexit`, ...).
    pub events: Vec<(String, u64)>,
    /// Records that did not decode.
    pub undecodable: u64,
    /// Events whose captured data is incomplete, by reason (`SyscallEvent::gaps`).
    pub partial: Vec<(String, u64)>,
    /// Events the rules evaluated.
    pub evaluated: u64,
    /// Rule matches by rule and priority.
    pub matches: Vec<(String, String, u64)>,
    /// Each output's counters.
    pub outputs: Vec<OutputCounters>,
    /// Container metadata lookups.
    pub containers: ContainerStats,
    /// Processes tracked.
    pub processes: u64,
    /// Open fds tracked, over all processes.
    pub fds: u64,
    /// Alerts the workers dropped because the queue to the outputs was full.
    pub alerts_dropped: u64,
    /// Bytes of alerts queued between the workers and the outputs.
    pub alert_queue_bytes: u64,
    /// Internal alerts raised (event drops, failed reloads).
    pub internal_alerts: Vec<(String, u64)>,
    /// Successful and failed rule reloads.
    pub reloads: (u64, u64),
}

/// What the HTTP endpoint serves: the latest snapshot and the health flags.
#[derive(Debug, Default)]
pub struct Metrics {
    snapshot: Mutex<Snapshot>,
    ready: AtomicBool,
}

impl Metrics {
    /// Replaces the snapshot.
    pub fn update(&self, snapshot: Snapshot) {
        *self.snapshot.lock().unwrap_or_else(PoisonError::into_inner) = snapshot;
    }

    /// Marks the sensor ready (programs attached, rules loaded) or not.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// The exposition text of every metric: OpenMetrics, or Prometheus's classic text
    /// format (what `promtool check metrics` and older scrapers read).
    pub fn render(self: &Arc<Self>, format: Exposition) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(SnapshotCollector(self.clone())));
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
        match format {
            Exposition::OpenMetrics => text,
            Exposition::Classic => to_classic(&text),
        }
    }

    /// Serves `/metrics`, `/healthz` and `/readyz` on `addr` until the runtime stops.
    pub async fn serve(self: Arc<Self>, addr: SocketAddr) -> anyhow::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("metrics: binding {addr}"))?;
        let local = listener.local_addr().with_context(|| format!("metrics: {addr}"))?;
        log::info!("metrics on http://{local}/metrics, health on /healthz and /readyz");
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let metrics = self.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let metrics = metrics.clone();
                        async move { Ok::<_, Infallible>(metrics.respond(&req)) }
                    });
                    // A client that hangs up mid-request is its own problem.
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        Ok(local)
    }

    fn respond<B>(self: &Arc<Self>, req: &Request<B>) -> Response<Full<Bytes>> {
        // Prometheus asks for OpenMetrics in its Accept header; anything else gets the classic format.
        let openmetrics = req
            .headers()
            .get(hyper::header::ACCEPT)
            .and_then(|a| a.to_str().ok())
            .is_some_and(|a| a.contains("application/openmetrics-text"));
        let (status, content_type, body) = match req.uri().path() {
            "/metrics" if openmetrics => (
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                self.render(Exposition::OpenMetrics),
            ),
            "/metrics" => {
                (StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", self.render(Exposition::Classic))
            }
            "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
            "/readyz" if self.ready.load(Ordering::Relaxed) => (StatusCode::OK, "text/plain", "ready\n".to_owned()),
            "/readyz" => (StatusCode::SERVICE_UNAVAILABLE, "text/plain", "not ready\n".to_owned()),
            _ => (StatusCode::NOT_FOUND, "text/plain", "not found: try /metrics, /healthz or /readyz\n".to_owned()),
        };
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        if let Ok(value) = content_type.parse() {
            response.headers_mut().insert(hyper::header::CONTENT_TYPE, value);
        }
        response
    }
}

/// The text formats `/metrics` speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exposition {
    /// OpenMetrics 1.0 (`application/openmetrics-text`).
    OpenMetrics,
    /// Prometheus's text format 0.0.4 (`text/plain`).
    Classic,
}

/// Rewrites OpenMetrics text as Prometheus's classic format: a counter's `# HELP` and
/// `# TYPE` name its `_total` samples, and there is no `# EOF`.
fn to_classic(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> =
        openmetrics.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter")).collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" {
            continue;
        }
        let comment = ["# HELP ", "# TYPE "].into_iter().find_map(|p| Some((p, line.strip_prefix(p)?)));
        match comment {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let name = if counters.contains(name) { format!("{name}_total") } else { name.to_owned() };
                out.push_str(&format!("{prefix}{name} {tail}\n"));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// Encodes a [`Metrics`] snapshot at scrape time.
#[derive(Debug)]
struct SnapshotCollector(Arc<Metrics>);

/// Label pairs of one sample.
type Labels = Vec<(String, String)>;

/// Writes metric families into a scrape.
struct Writer<'a, 'e>(&'a mut DescriptorEncoder<'e>);

impl Writer<'_, '_> {
    /// A family with `(labels, value)` samples of one metric type.
    fn family<M: EncodeMetric>(
        &mut self,
        name: &str,
        help: &str,
        kind: MetricType,
        samples: impl IntoIterator<Item = (Labels, M)>,
    ) -> std::fmt::Result {
        let mut metric = self.0.encode_descriptor(name, help, None, kind)?;
        for (labels, value) in samples {
            if labels.is_empty() {
                value.encode(metric)?;
                return Ok(());
            }
            value.encode(metric.encode_family(&labels)?)?;
        }
        Ok(())
    }

    fn counters(
        &mut self,
        name: &str,
        help: &str,
        samples: impl IntoIterator<Item = (Labels, u64)>,
    ) -> std::fmt::Result {
        self.family(name, help, MetricType::Counter, samples.into_iter().map(|(l, v)| (l, ConstCounter::new(v))))
    }

    fn counter<N: prometheus_client::encoding::EncodeCounterValue>(
        &mut self,
        name: &str,
        help: &str,
        value: N,
    ) -> std::fmt::Result {
        self.family(name, help, MetricType::Counter, [(Labels::new(), ConstCounter::new(value))])
    }

    fn gauges(&mut self, name: &str, help: &str, samples: impl IntoIterator<Item = (Labels, i64)>) -> std::fmt::Result {
        self.family(name, help, MetricType::Gauge, samples.into_iter().map(|(l, v)| (l, ConstGauge::new(v))))
    }

    fn gauge(&mut self, name: &str, help: &str, value: i64) -> std::fmt::Result {
        self.gauges(name, help, [(Labels::new(), value)])
    }
}

/// One label.
fn label(key: &str, value: impl ToString) -> Labels {
    vec![(key.to_owned(), value.to_string())]
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let s = self.0.snapshot.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let mut w = Writer(&mut encoder);
        let per_cpu =
            |get: fn(&Counters) -> u64| s.kernel.iter().enumerate().map(move |(cpu, c)| (label("cpu", cpu), get(c)));
        w.counters(
            "sensor_kernel_events",
            "Records the kernel programs wrote to the ring buffers, per CPU.",
            per_cpu(|c| c.emitted),
        )?;
        w.counters(
            "sensor_kernel_lost_events",
            "Records lost in the kernel because a ring buffer was full, per CPU.",
            per_cpu(|c| c.lost),
        )?;
        w.counter(
            "sensor_kernel_lost_events_all",
            "Records lost in the kernel, all CPUs.",
            s.kernel.iter().map(|c| c.lost).sum::<u64>(),
        )?;
        w.counters(
            "sensor_kernel_shed_events",
            "Records of bulk syscalls (close, dup, fcntl, mmap, send, recv) the kernel shed because their ring was \
             over half full, keeping room for the events rules need most, per CPU.",
            per_cpu(|c| c.shed),
        )?;
        w.counters(
            "sensor_kernel_throttled_events",
            "Records the kernel held back because their ring was over a quarter full and their process over its \
             rate (10,000 a second, bursts of 10,000), or over three quarters full and their process not quiet, \
             so that one process flooding the ring cannot crowd out the others, per CPU.",
            per_cpu(|c| c.throttled),
        )?;
        w.counters(
            "sensor_account_file_reads",
            "Reads of the passwd and group files a process sees (its container's), by result: read, truncated \
             (cut at 1 MiB), not_regular (a FIFO, device or directory: refused), unreadable, dropped (the \
             loader's queue was full) or timed_out.",
            crate::state::account_stats().counts().into_iter().map(|(result, n)| (label("result", result), n)),
        )?;
        w.counters(
            "sensor_kernel_enter_missed",
            "Syscall enter-side captures missing at exit (stash full or enter not seen), per CPU.",
            per_cpu(|c| c.enter_missed),
        )?;
        w.gauges(
            "sensor_ring_buffer_pending_bytes",
            "Record bytes written to each ring buffer and not yet read.",
            s.rings.iter().enumerate().map(|(ring, f)| (label("ring", ring), f.pending_bytes as i64)),
        )?;
        w.gauges(
            "sensor_ring_buffer_size_bytes",
            "Size of each ring buffer.",
            s.rings.iter().enumerate().map(|(ring, f)| (label("ring", ring), f.size_bytes as i64)),
        )?;
        w.counters(
            "sensor_events",
            "Events decoded from the kernel, by event type.",
            s.events.iter().map(|(t, n)| (label("type", t), *n)),
        )?;
        w.counter("sensor_undecodable_records", "Records from the kernel that did not decode.", s.undecodable)?;
        w.counters(
            "sensor_partial_events",
            "Events with incomplete data, by reason: truncated (a string or blob cut at its bound), \
             enter_missing (the enter side was not captured) or reread_at_exit (memory unreadable at \
             enter, read at exit).",
            s.partial.iter().map(|(reason, n)| (label("reason", reason), *n)),
        )?;
        w.counters(
            "sensor_kernel_prefiltered",
            "Events the in-kernel prefilter kept back because no loaded rule could match them (opens, and the \
             closes of their fds), by syscall.",
            s.prefiltered.iter().map(|(sc, n)| (label("syscall", sc), *n)),
        )?;
        w.counters(
            "sensor_kernel_ia32_untranslated",
            "Syscalls through the 32-bit gate with no x86_64 meaning the sensor captures (counted, \
             not decoded), per CPU.",
            per_cpu(|c| c.compat_untranslated),
        )?;
        w.counter("sensor_evaluated_events", "Events the rules evaluated.", s.evaluated)?;
        w.counter(
            "sensor_alerts_dropped",
            "Alerts dropped because the queue between the workers and the outputs held its bound (16 MiB) \
             already.",
            s.alerts_dropped,
        )?;
        w.gauge(
            "sensor_alert_queue_bytes",
            "Bytes of alerts queued between the workers and the outputs.",
            s.alert_queue_bytes as i64,
        )?;
        w.counters(
            "sensor_rule_matches",
            "Alerts raised, by rule and priority.",
            s.matches.iter().map(|(rule, priority, n)| {
                (vec![("rule".to_owned(), rule.clone()), ("priority".to_owned(), priority.clone())], *n)
            }),
        )?;

        let per_output =
            |get: fn(&OutputCounters) -> u64| s.outputs.iter().map(move |o| (label("output", &o.name), get(o)));
        w.counters("sensor_output_produced_alerts", "Alerts offered to each output.", per_output(|o| o.produced))?;
        w.counters(
            "sensor_output_filtered_alerts",
            "Alerts an output's filters left out.",
            per_output(|o| o.filtered),
        )?;
        w.counters("sensor_output_sent_alerts", "Alerts each output delivered.", per_output(|o| o.sent))?;
        w.counters("sensor_output_failed_alerts", "Alerts whose delivery failed for good.", per_output(|o| o.failed))?;
        w.counters("sensor_output_retries", "Delivery attempts that were retries.", per_output(|o| o.retried))?;
        w.counters(
            "sensor_output_dropped_alerts",
            "Alerts dropped by a full queue or at shutdown.",
            per_output(|o| o.dropped),
        )?;
        w.counters(
            "sensor_output_suppressed_alerts",
            "Alerts held back by the rate limit.",
            per_output(|o| o.suppressed),
        )?;
        w.gauges(
            "sensor_output_queue_depth",
            "Alerts waiting in each output's queue.",
            s.outputs.iter().map(|o| (label("output", &o.name), o.queue_depth as i64)),
        )?;

        let c = &s.containers;
        let lookups =
            [("hit", c.hits), ("miss", c.misses), ("host", c.host), ("no_id", c.no_id), ("unknown_yet", c.unknown_yet)];
        w.counters(
            "sensor_container_lookups",
            "Container metadata lookups, by result.",
            lookups.map(|(r, n)| (label("result", r), n)),
        )?;
        w.counter("sensor_container_fetches", "Metadata fetches from the container runtimes.", c.fetches)?;
        w.counter("sensor_container_fetch_failures", "Metadata fetches that failed.", c.failures)?;
        w.counter(
            "sensor_container_fetch_seconds",
            "Time spent in completed metadata fetches, in seconds.",
            c.fetch_ns_total as f64 / 1e9,
        )?;
        w.gauge("sensor_processes", "Processes in the process table.", s.processes as i64)?;
        w.gauge("sensor_fds", "Open file descriptors tracked, over all processes.", s.fds as i64)?;
        w.counters(
            "sensor_internal_alerts",
            "Internal alerts raised (event drops, failed reloads).",
            s.internal_alerts.iter().map(|(rule, n)| (label("rule", rule), *n)),
        )?;
        w.counters(
            "sensor_rule_reloads",
            "Rule reloads, by outcome.",
            [(label("result", "success"), s.reloads.0), (label("result", "failure"), s.reloads.1)],
        )?;
        let (cpu_seconds, rss_bytes) = own_usage();
        w.counter("process_cpu_seconds", "CPU time the sensor used, in seconds.", cpu_seconds)?;
        w.gauge("process_resident_memory_bytes", "The sensor's resident memory, in bytes.", rss_bytes)?;
        w.gauge(
            "sensor_ready",
            "1 once the programs are attached and the rules loaded.",
            i64::from(self.0.ready.load(Ordering::Relaxed)),
        )
    }
}

/// The sensor's own CPU seconds (user + system) and resident bytes, from `/proc/self`.
fn own_usage() -> (f64, i64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    // After the command: state is field 3, utime 14, stime 15, rss (pages) 24.
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1);
    ((field(14) + field(15)) as f64 / ticks, field(24) as i64 * page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_renders_in_both_formats() {
        let metrics = Arc::new(Metrics::default());
        metrics.update(Snapshot {
            kernel: vec![Counters { emitted: 10, lost: 2, ..Counters::default() }, Counters::default()],
            rings: vec![RingFill { pending_bytes: 4096, size_bytes: 8 << 20 }],
            events: vec![("openat".into(), 7)],
            matches: vec![("Read sensitive file".into(), "Warning".into(), 1)],
            processes: 42,
            ..Snapshot::default()
        });
        let open = metrics.render(Exposition::OpenMetrics);
        assert!(open.contains("sensor_kernel_lost_events_total{cpu=\"0\"} 2"), "{open}");
        assert!(open.contains("sensor_events_total{type=\"openat\"} 7"), "{open}");
        assert!(open.contains("sensor_rule_matches_total{rule=\"Read sensitive file\",priority=\"Warning\"} 1"));
        assert!(open.contains("sensor_processes 42\n") && open.contains("sensor_ready 0\n"), "{open}");
        assert!(open.contains("sensor_ring_buffer_pending_bytes{ring=\"0\"} 4096"), "{open}");
        assert!(open.ends_with("# EOF\n"));
        let classic = metrics.render(Exposition::Classic);
        assert!(classic.contains("# TYPE sensor_events_total counter\n"), "{classic}");
        assert!(classic.contains("# HELP sensor_events_total Events decoded"), "{classic}");
        assert!(classic.contains("# TYPE sensor_processes gauge\n"), "{classic}");
        assert!(!classic.contains("# EOF"));
    }
}
