//! Metrics and health: Prometheus metrics on `/metrics`, liveness on `/healthz`, readiness
//! (programs attached, rules loaded) on `/readyz`, served over HTTP.
//!
//! The run loop refreshes one [`Snapshot`] of every stage's counters about once a second;
//! a scrape encodes the latest snapshot, so scraping never touches the pipeline.
//!
//! The endpoint shares the node's network with every pod, so no client can hold more than
//! [`MetricsConfig`] allows: each connection must send its headers within `header_timeout`
//! (which also ends idle keep-alive connections) and closes after `connection_timeout`;
//! at `max_connections`, the oldest connection that has not sent a request yet makes room.
//! Each of those outcomes is counted (`sensor_http_connections_closed_total`).
//!
//! `/healthz` is not a constant: it fails, naming the stage, when the run loop stopped
//! publishing snapshots or a stage with work waiting made no progress for `stall_after`.
//! An idle stage (nothing waiting) is healthy however long it does nothing.

use std::{
    collections::VecDeque,
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode, body::Bytes, server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::Registry,
};
use sensor_abi::config::Counters;

use crate::{
    capture::RingFill,
    config::MetricsConfig,
    enrich::ContainerStats,
    outputs::{OutputCounters, Secret},
};

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
    /// Rules loaded now.
    pub rules_loaded: u64,
    /// Alerts by rule and priority, with the rule's source and tags.
    pub matches: Vec<((String, crate::rules::Priority), crate::pipeline::RuleMatches)>,
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
    /// How far each stage got (ring readers, workers), for `/healthz`.
    pub progress: Vec<Progress>,
    /// Items lost between pipeline stages because the next one had stopped, by kind.
    pub pipeline_lost: Vec<(&'static str, u64)>,
    /// What the cluster's console took from the nodes (`sensor console` only).
    pub ingest: Option<IngestCounters>,
    /// Kubernetes audit events, when a source of them is enabled.
    pub k8s_audit: Option<crate::k8s_audit::AuditCounters>,
    /// The node benchmark, when it runs.
    pub benchmark: Option<crate::benchmark::WatchCounters>,
}

/// The cluster console's ingest: alerts stored, lines refused, requests that failed to store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IngestCounters {
    pub stored: u64,
    pub refused: u64,
    pub failed: u64,
    /// Benchmark reports kept.
    pub benchmark_reports: u64,
}

/// How far one stage got: the work it finished so far and the work waiting for it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// `ring 0`, `worker 3`.
    pub stage: String,
    /// Work finished since start (bytes a ring reader read, jobs a worker did).
    pub done: u64,
    /// Work waiting now (bytes in the ring, jobs in the worker's queue).
    pub waiting: u64,
}

/// What the HTTP endpoint serves: the latest snapshot and the health flags.
#[derive(Debug)]
pub struct Metrics {
    snapshot: Mutex<Snapshot>,
    ready: AtomicBool,
    health: Mutex<Health>,
    /// How long a stage with work waiting may make no progress before `/healthz` fails.
    stall_after: Duration,
    server: ServerStats,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(MetricsConfig::default().stall_after)
    }
}

impl Metrics {
    /// Metrics whose `/healthz` fails after `stall_after` without progress.
    pub fn new(stall_after: Duration) -> Self {
        Metrics {
            snapshot: Mutex::default(),
            ready: AtomicBool::new(false),
            health: Mutex::default(),
            stall_after,
            server: ServerStats::default(),
        }
    }

    /// Replaces the snapshot.
    pub fn update(&self, snapshot: Snapshot) {
        self.health.lock().unwrap_or_else(PoisonError::into_inner).observe(
            &snapshot.progress,
            Instant::now(),
            self.stall_after,
        );
        *self.snapshot.lock().unwrap_or_else(PoisonError::into_inner) = snapshot;
    }

    /// The latest snapshot.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Marks the sensor ready (programs attached, rules loaded) or not.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// `Ok` with a short text while healthy; otherwise what stalled.
    pub fn health(&self) -> Result<String, String> {
        self.health.lock().unwrap_or_else(PoisonError::into_inner).verdict(Instant::now(), self.stall_after)
    }

    /// The exposition text of every metric: OpenMetrics, or Prometheus's classic text
    /// format (what `promtool check metrics` and older scrapers read).
    pub fn render(self: &Arc<Self>, format: Exposition) -> Result<String, std::fmt::Error> {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(SnapshotCollector(self.clone())));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry)?;
        Ok(match format {
            Exposition::OpenMetrics => text,
            Exposition::Classic => to_classic(&text),
        })
    }

    /// Serves `/metrics`, `/healthz` and `/readyz` where `config` says, until the runtime
    /// stops; the address it listens on (none when `config.address` is null). Reads the
    /// bearer token now, so a missing one stops the start.
    pub async fn serve(self: Arc<Self>, config: &MetricsConfig) -> anyhow::Result<Option<SocketAddr>> {
        let Some(addr) = config.address else { return Ok(None) };
        let (access, tls) = access_and_tls(config)?;
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
            format!("metrics: binding {addr} (another sensor there? set metrics.address, or null for no endpoint)")
        })?;
        let local = listener.local_addr().with_context(|| format!("metrics: {addr}"))?;
        log::info!(
            "{} on {}://{local}/metrics{}{}, health on /healthz and /readyz",
            if access.prometheus { "metrics" } else { "no metrics (metrics.prometheus: false)" },
            if tls.is_some() { "https" } else { "http" },
            if access.token.is_some() { " (bearer token required)" } else { "" },
            if access.client_certificate { " (client certificate required)" } else { "" },
        );
        let server = Server {
            metrics: self,
            access: Arc::new(access),
            tls,
            header_timeout: config.header_timeout,
            connection_timeout: config.connection_timeout,
            max_connections: config.max_connections.get(),
        };
        tokio::spawn(server.accept_loop(listener));
        Ok(Some(local))
    }

    /// The answer to `req`, from a client that presented a verified certificate or not.
    fn respond<B>(self: &Arc<Self>, req: &Request<B>, access: &Access, verified: bool) -> Response<Full<Bytes>> {
        // Prometheus asks for OpenMetrics in its Accept header; anything else gets the classic format.
        let openmetrics = req
            .headers()
            .get(hyper::header::ACCEPT)
            .and_then(|a| a.to_str().ok())
            .is_some_and(|a| a.contains("application/openmetrics-text"));
        let text = "text/plain";
        let (status, content_type, body) = match req.uri().path() {
            "/metrics" if !access.prometheus => {
                (StatusCode::NOT_FOUND, text, "/metrics is off (metrics.prometheus: false)\n".to_owned())
            }
            "/metrics" if !authorized(req, access.token.as_ref()) => {
                self.server.unauthorized.fetch_add(1, Ordering::Relaxed);
                (StatusCode::UNAUTHORIZED, text, "a bearer token is required\n".to_owned())
            }
            "/metrics" if access.client_certificate && !verified => {
                self.server.unauthorized.fetch_add(1, Ordering::Relaxed);
                (StatusCode::FORBIDDEN, text, "a client certificate is required\n".to_owned())
            }
            "/metrics" => {
                let (format, content_type) = if openmetrics {
                    (Exposition::OpenMetrics, "application/openmetrics-text; version=1.0.0; charset=utf-8")
                } else {
                    (Exposition::Classic, "text/plain; version=0.0.4; charset=utf-8")
                };
                match self.render(format) {
                    Ok(body) => (StatusCode::OK, content_type, body),
                    Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, text, "the metrics did not encode\n".to_owned()),
                }
            }
            "/healthz" => match self.health() {
                Ok(ok) => (StatusCode::OK, text, format!("{ok}\n")),
                Err(stalled) => (StatusCode::SERVICE_UNAVAILABLE, text, format!("{stalled}\n")),
            },
            "/readyz" if self.ready.load(Ordering::Relaxed) => (StatusCode::OK, text, "ready\n".to_owned()),
            "/readyz" => (StatusCode::SERVICE_UNAVAILABLE, text, "not ready\n".to_owned()),
            _ => (StatusCode::NOT_FOUND, text, "not found: try /metrics, /healthz or /readyz\n".to_owned()),
        };
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(content_type));
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(hyper::header::WWW_AUTHENTICATE, hyper::header::HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// What `/metrics` requires of a client; `/healthz` and `/readyz` require nothing.
#[derive(Debug, Default)]
struct Access {
    /// `/metrics` is served (Falco's `webserver.prometheus_metrics_enabled`).
    prometheus: bool,
    /// `Authorization: Bearer` with this token.
    token: Option<Secret>,
    /// A client certificate the configured CAs verified.
    client_certificate: bool,
}

/// What `config` asks of clients, with its secret and TLS files read: what `sensor config
/// check` checks too.
pub fn check(config: &MetricsConfig) -> anyhow::Result<()> {
    access_and_tls(config).map(drop)
}

fn access_and_tls(config: &MetricsConfig) -> anyhow::Result<(Access, Option<tokio_rustls::TlsAcceptor>)> {
    let token = match &config.bearer_token {
        Some(source) => Some(source.load().context("metrics.bearer_token")?),
        None => None,
    };
    let tls = config
        .tls
        .as_ref()
        .map(|t| crate::tls::server_acceptor(&t.cert_file, &t.key_file, t.client_ca_file.as_deref()))
        .transpose()
        .context("metrics.tls")?;
    let client_certificate = config.tls.as_ref().is_some_and(|t| t.client_ca_file.is_some());
    Ok((Access { token, client_certificate, prometheus: config.prometheus }, tls))
}

/// Whether `req` carries the bearer token (always, when none is configured). The
/// comparison takes the same time wherever the first wrong byte is.
fn authorized<B>(req: &Request<B>, token: Option<&Secret>) -> bool {
    let Some(token) = token else { return true };
    let given = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .unwrap_or_default();
    token.matches(given)
}

/// Progress seen over the last `stall_after`, and the stages that stalled in it.
#[derive(Debug, Default)]
struct Health {
    /// When the run loop last published a snapshot (none yet: starting).
    refreshed: Option<Instant>,
    /// Progress at each refresh, oldest first, going back just past `stall_after`.
    history: VecDeque<(Instant, Vec<Progress>)>,
}

impl Health {
    fn observe(&mut self, progress: &[Progress], now: Instant, stall_after: Duration) {
        self.refreshed = Some(now);
        self.history.push_back((now, progress.to_vec()));
        // Keep one entry at least `stall_after` old: the one to compare with.
        while self.history.get(1).is_some_and(|(at, _)| now.duration_since(*at) >= stall_after) {
            self.history.pop_front();
        }
    }

    /// Stalled stages: work waiting at both ends of the last `stall_after` and none done
    /// in between. A stage with nothing waiting is idle, not stalled.
    fn stalled(&self, now: Instant, stall_after: Duration) -> Vec<String> {
        let (Some((then, before)), Some((_, current))) = (self.history.front(), self.history.back()) else {
            return Vec::new();
        };
        if now.duration_since(*then) < stall_after {
            return Vec::new();
        }
        current
            .iter()
            .filter(|p| p.waiting > 0)
            .filter(|p| before.iter().any(|b| b.stage == p.stage && b.done == p.done && b.waiting > 0))
            .map(|p| format!("{} ({} waiting)", p.stage, p.waiting))
            .collect()
    }

    fn verdict(&self, now: Instant, stall_after: Duration) -> Result<String, String> {
        let Some(refreshed) = self.refreshed else { return Ok("ok: starting".into()) };
        let age = now.duration_since(refreshed);
        if age > stall_after {
            return Err(format!("stalled: run loop (no snapshot for {}s)", age.as_secs()));
        }
        match self.stalled(now, stall_after).as_slice() {
            [] => Ok("ok".into()),
            stages => Err(format!("stalled: {} (no progress for {}s)", stages.join(", "), stall_after.as_secs())),
        }
    }
}

/// What the HTTP server counts about its clients.
#[derive(Debug, Default)]
struct ServerStats {
    accepted: AtomicU64,
    open: AtomicU64,
    /// Closed without a request to make room for a new connection.
    evicted: AtomicU64,
    /// Closed at once: every open connection was in a request.
    refused: AtomicU64,
    /// Headers not sent within `header_timeout` (or idle that long between requests).
    header_timeout: AtomicU64,
    /// Open longer than `connection_timeout`.
    connection_timeout: AtomicU64,
    /// Ended by an error (a malformed request, a reset).
    failed: AtomicU64,
    /// `accept` failed (out of file descriptors, say).
    accept_errors: AtomicU64,
    /// `/metrics` requests without the bearer token.
    unauthorized: AtomicU64,
}

/// The accept loop's settings.
struct Server {
    metrics: Arc<Metrics>,
    access: Arc<Access>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    header_timeout: Duration,
    connection_timeout: Duration,
    max_connections: usize,
}

/// One open connection, as the accept loop tracks it.
struct Connection {
    task: tokio::task::JoinHandle<()>,
    /// Set once a request's headers arrived: the connection is in use, not idle.
    requested: Arc<AtomicBool>,
}

/// Counts an open connection for as long as its task lives (aborted or not).
struct OpenGuard(Arc<Metrics>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.server.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A pause after a failed `accept`: a full fd table fails every call at once.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// hyper's read buffer per connection (its minimum is 8 KiB): bounds what one client's
/// headers can take.
const MAX_REQUEST_BUFFER: usize = 16 * 1024;

impl Server {
    async fn accept_loop(self, listener: tokio::net::TcpListener) {
        let stats = &self.metrics.server;
        // Oldest first.
        let mut open: Vec<Connection> = Vec::new();
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                    log::debug!("metrics: accept failed: {e}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            open.retain(|c| !c.task.is_finished());
            if open.len() >= self.max_connections {
                match open.iter().position(|c| !c.requested.load(Ordering::Relaxed)) {
                    Some(idle) => {
                        let evicted = open.remove(idle).task;
                        evicted.abort();
                        // An abort only asks; waiting for the task to end closes its socket
                        // before the next accept, so the fds in use never pass the cap.
                        if let Err(e) = evicted.await
                            && e.is_panic()
                        {
                            log::warn!("metrics: a connection failed: {e}");
                        }
                        stats.evicted.fetch_add(1, Ordering::Relaxed);
                    }
                    None => {
                        stats.refused.fetch_add(1, Ordering::Relaxed);
                        drop(stream);
                        continue;
                    }
                }
            }
            stats.accepted.fetch_add(1, Ordering::Relaxed);
            let requested = Arc::new(AtomicBool::new(false));
            let task = tokio::spawn(self.connection(stream, requested.clone()));
            open.push(Connection { task, requested });
        }
    }

    /// Serves one connection within its bounds (the TLS handshake, if any, within the
    /// header timeout) and counts how it ended.
    fn connection(
        &self,
        stream: tokio::net::TcpStream,
        requested: Arc<AtomicBool>,
    ) -> impl Future<Output = ()> + use<> {
        let metrics = self.metrics.clone();
        metrics.server.open.fetch_add(1, Ordering::Relaxed);
        let guard = OpenGuard(metrics.clone());
        let (access, tls) = (self.access.clone(), self.tls.clone());
        let (header_timeout, limit) = (self.header_timeout, self.connection_timeout);
        let serve = move |io: Box<dyn Stream>, verified: bool| {
            let service = service_fn(move |req| {
                requested.store(true, Ordering::Relaxed);
                let response = metrics.respond(&req, &access, verified);
                async move { Ok::<_, Infallible>(response) }
            });
            let mut builder = http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(header_timeout).max_buf_size(MAX_REQUEST_BUFFER);
            builder.serve_connection(TokioIo::new(io), service)
        };
        async move {
            let stats = &guard.0.server;
            let served = async {
                let Some(tls) = tls else { return Ended::from(serve(Box::new(stream), false).await) };
                match tokio::time::timeout(header_timeout, tls.accept(stream)).await {
                    Ok(Ok(stream)) => {
                        // Presented and verified: the verifier refuses a certificate it cannot verify.
                        let verified = stream.get_ref().1.peer_certificates().is_some();
                        Ended::from(serve(Box::new(stream), verified).await)
                    }
                    Ok(Err(_)) => Ended::Failed,
                    Err(_) => Ended::HeaderTimeout,
                }
            };
            let outcome = match tokio::time::timeout(limit, served).await {
                Ok(Ended::Done) => return,
                Ok(Ended::HeaderTimeout) => &stats.header_timeout,
                Ok(Ended::Failed) => &stats.failed,
                Err(_) => &stats.connection_timeout,
            };
            outcome.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A connection's byte stream: plain TCP, or TLS over it.
trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for S {}

/// How a connection ended, short of its overall deadline.
enum Ended {
    Done,
    HeaderTimeout,
    Failed,
}

impl From<Result<(), hyper::Error>> for Ended {
    fn from(result: Result<(), hyper::Error>) -> Self {
        match result {
            Ok(()) => Ended::Done,
            Err(e) if e.is_timeout() => Ended::HeaderTimeout,
            Err(_) => Ended::Failed,
        }
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

/// The counts Falco's dashboards and alerting rules read, under Falco's names and labels
/// (`falcosecurity_*`, as Falco's `webserver.prometheus_metrics_enabled` serves them): the
/// same counts as the sensor's own families, a second name each.
fn falco_names(w: &mut Writer<'_, '_>, s: &Snapshot) -> std::fmt::Result {
    let lost: u64 = s.kernel.iter().map(|c| c.lost).sum();
    let held_back: u64 = s.kernel.iter().map(|c| c.shed + c.throttled).sum();
    w.counter("falcosecurity_scap_n_evts", "Events the kernel programs captured (sensor_kernel_events).", {
        s.kernel.iter().map(|c| c.emitted).sum::<u64>()
    })?;
    w.counters(
        "falcosecurity_scap_n_evts_cpu",
        "Events the kernel programs captured, per CPU.",
        s.kernel.iter().enumerate().map(|(cpu, c)| (label("cpu", cpu), c.emitted)),
    )?;
    w.counter(
        "falcosecurity_scap_n_drops",
        "Events not delivered from the kernel: lost (a ring full) and held back (shed or throttled under a flood).",
        lost + held_back,
    )?;
    w.counter("falcosecurity_scap_n_drops_buffer", "Events lost in the kernel because a ring buffer was full.", lost)?;
    w.counters(
        "falcosecurity_scap_n_drops_cpu",
        "Events not delivered from the kernel, per CPU.",
        s.kernel.iter().enumerate().map(|(cpu, c)| (label("cpu", cpu), c.lost + c.shed + c.throttled)),
    )?;
    w.counters(
        "falcosecurity_falco_rules_matches",
        "Alerts by rule: its name, priority (0 Emergency ... 7 Debug), source, and a tag_<tag>=\"true\" label per tag.",
        s.matches.iter().map(|((rule, priority), m)| {
            let mut labels = vec![
                ("priority".to_owned(), (*priority as u8).to_string()),
                ("rule_name".to_owned(), rule.clone()),
                ("source".to_owned(), m.source.clone()),
            ];
            let mut tags: Vec<String> = m
                .tags
                .iter()
                .map(|t| format!("tag_{}", t.replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "_")))
                .collect();
            tags.sort();
            tags.dedup();
            labels.extend(tags.into_iter().map(|t| (t, "true".to_owned())));
            (labels, m.alerts)
        }),
    )?;
    w.counter(
        "falcosecurity_falco_outputs_queue_num_drops",
        "Alerts dropped because the queue to the outputs was full.",
        s.alerts_dropped,
    )?;
    w.gauge("falcosecurity_falco_n_threads", "Processes in the process table.", s.processes as i64)?;
    w.gauge("falcosecurity_falco_n_fds", "Open file descriptors tracked.", s.fds as i64)?;
    w.gauges(
        "falcosecurity_falco_version_info",
        "The sensor's version.",
        [(label("version", env!("CARGO_PKG_VERSION")), 1)],
    )
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
        w.gauge("sensor_rules_loaded", "Rules loaded now (after the last reload).", s.rules_loaded as i64)?;
        w.counter(
            "sensor_alerts_dropped",
            "Alerts dropped because the queue between the workers and the outputs held its bound (16 MiB) \
             already.",
            s.alerts_dropped,
        )?;
        if let Some(ingest) = s.ingest {
            w.counter(
                "sensor_console_ingested_alerts",
                "Alerts the nodes sent that the console stored.",
                ingest.stored,
            )?;
            w.counter(
                "sensor_console_ingest_refused_lines",
                "Lines of ingest requests that were not a JSON alert (refused; the rest stored), and benchmark \
                 reports that did not read.",
                ingest.refused,
            )?;
            w.counter(
                "sensor_console_ingest_failed_requests",
                "Ingest requests the store could not take (answered 503: the node retries).",
                ingest.failed,
            )?;
            w.counter(
                "sensor_console_ingest_benchmark_reports",
                "Node benchmark reports the nodes sent and the store kept.",
                ingest.benchmark_reports,
            )?;
        }
        if let Some(benchmark) = &s.benchmark {
            if let Some(counts) = &benchmark.checks {
                w.gauges(
                    "sensor_benchmark_checks",
                    "The node benchmark's checks at its latest run, by status (pass, fail, warn).",
                    ["pass", "fail", "warn"].iter().zip(counts).map(|(status, n)| (label("status", status), *n as i64)),
                )?;
            }
            let reports = benchmark.reports;
            w.counters(
                "sensor_benchmark_reports",
                "Node benchmark reports by result: kept (an alert store or console took one) or failed (one did \
                 not, after its retries; the next run sends a new report).",
                [(label("result", "kept"), reports.kept), (label("result", "failed"), reports.failed)],
            )?;
        }
        if let Some(audit) = &s.k8s_audit {
            w.counter(
                "sensor_k8s_audit_received_events",
                "Kubernetes audit events taken from the webhook and the audit log files into the queue to the rules.",
                audit.received,
            )?;
            w.counters(
                "sensor_k8s_audit_refused",
                "Kubernetes audit events (or whole webhook requests) refused, by reason: malformed (not JSON or \
                 not an audit.k8s.io Event), too_large (over k8s_audit.webhook.max_event_bytes, 256 KiB by \
                 default), unauthorized (no token or client certificate) or queue_full (k8s_audit.queue events \
                 were waiting already; the webhook answered 429).",
                audit.refused.iter().map(|(reason, n)| (label("reason", reason), *n)),
            )?;
            w.gauge(
                "sensor_k8s_audit_queued_events",
                "Kubernetes audit events waiting for the rules.",
                audit.queued as i64,
            )?;
            w.counter(
                "sensor_k8s_audit_evaluated_events",
                "Kubernetes audit events the rules evaluated.",
                audit.evaluated,
            )?;
            w.counter(
                "sensor_k8s_audit_stored_events",
                "Kubernetes audit events kept in the audit log (k8s_audit.store; an event held already is not \
                 counted again).",
                audit.stored,
            )?;
            w.counters(
                "sensor_k8s_audit_store_lost_events",
                "Kubernetes audit events k8s_audit.keep selected that the audit log lost, by reason: queue_full \
                 (its writer was 50,000 events behind) or write_failed (the store refused them 4 times).",
                audit.store_lost.iter().map(|(reason, n)| (label("reason", reason), *n)),
            )?;
            w.counter("sensor_k8s_audit_webhook_requests", "Requests the audit webhook answered.", audit.requests)?;
            w.counter(
                "sensor_k8s_audit_webhook_request_seconds",
                "Seconds the audit webhook spent answering requests, in all (over \
                 sensor_k8s_audit_webhook_requests_total: the mean time kube-apiserver waits).",
                audit.request_seconds,
            )?;
        }
        w.gauge(
            "sensor_alert_queue_bytes",
            "Bytes of alerts queued between the workers and the outputs.",
            s.alert_queue_bytes as i64,
        )?;
        w.counters(
            "sensor_rule_matches",
            "Alerts raised, by rule and priority.",
            s.matches.iter().map(|((rule, priority), m)| {
                (vec![("rule".to_owned(), rule.clone()), ("priority".to_owned(), priority.to_string())], m.alerts)
            }),
        )?;

        falco_names(&mut w, &s)?;

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
        w.counters(
            "sensor_output_errors",
            "Errors of an output outside deliveries, which lost no alert (the file output refusing to reopen a \
             symbolic link).",
            per_output(|o| o.errors),
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
        )?;
        w.gauge(
            "sensor_healthy",
            "1 while /healthz answers 200 (no stage stalled).",
            i64::from(self.0.health().is_ok()),
        )?;
        w.counters(
            "sensor_stage_progress",
            "Work each stage finished: bytes a ring reader read, jobs a worker did.",
            s.progress.iter().map(|p| (label("stage", &p.stage), p.done)),
        )?;
        w.gauges(
            "sensor_stage_waiting",
            "Work waiting for each stage: bytes in a ring, jobs in a worker's queue.",
            s.progress.iter().map(|p| (label("stage", &p.stage), p.waiting as i64)),
        )?;
        w.counters(
            "sensor_pipeline_lost",
            "Items lost between pipeline stages because the next stage had stopped, by kind.",
            s.pipeline_lost.iter().map(|(item, n)| (label("item", item), *n)),
        )?;
        let http = &self.0.server;
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
        w.counter("sensor_http_connections", "Connections the metrics endpoint accepted.", load(&http.accepted))?;
        w.gauge("sensor_http_open_connections", "Connections open on the metrics endpoint.", load(&http.open) as i64)?;
        let closed = [
            ("evicted_idle", &http.evicted),
            ("refused_full", &http.refused),
            ("header_timeout", &http.header_timeout),
            ("connection_timeout", &http.connection_timeout),
            ("error", &http.failed),
            ("accept_error", &http.accept_errors),
        ];
        w.counters(
            "sensor_http_connections_closed",
            "Metrics endpoint connections the sensor closed or could not take, by reason: evicted_idle (no \
             request yet, to make room at max_connections), refused_full (every connection busy), header_timeout \
             (headers not sent within header_timeout, or idle that long), connection_timeout, error, accept_error.",
            closed.map(|(reason, n)| (label("reason", reason), load(n))),
        )?;
        w.counter(
            "sensor_http_unauthorized_requests",
            "/metrics requests refused for a missing or wrong bearer token.",
            load(&http.unauthorized),
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
            rings: vec![RingFill { read_bytes: 1 << 20, pending_bytes: 4096, size_bytes: 8 << 20 }],
            events: vec![("openat".into(), 7)],
            matches: vec![(
                ("Read sensitive file".into(), crate::rules::Priority::Warning),
                crate::pipeline::RuleMatches {
                    alerts: 1,
                    source: "syscall".into(),
                    tags: vec!["T1555".into(), "PCI_DSS_11.5.1".into()].into(),
                },
            )],
            processes: 42,
            ..Snapshot::default()
        });
        let open = metrics.render(Exposition::OpenMetrics).unwrap();
        assert!(open.contains("sensor_kernel_lost_events_total{cpu=\"0\"} 2"), "{open}");
        assert!(open.contains("sensor_events_total{type=\"openat\"} 7"), "{open}");
        assert!(open.contains("sensor_rule_matches_total{rule=\"Read sensitive file\",priority=\"Warning\"} 1"));
        assert!(open.contains("sensor_processes 42\n") && open.contains("sensor_ready 0\n"), "{open}");
        assert!(open.contains("sensor_ring_buffer_pending_bytes{ring=\"0\"} 4096"), "{open}");
        assert!(open.ends_with("# EOF\n"));
        // Falco's names for the same counts, with Falco's labels.
        assert!(
            open.contains(
                "falcosecurity_falco_rules_matches_total{priority=\"4\",rule_name=\"Read sensitive file\",\
                 source=\"syscall\",tag_PCI_DSS_11_5_1=\"true\",tag_T1555=\"true\"} 1"
            ),
            "{open}"
        );
        assert!(open.contains("falcosecurity_scap_n_evts_total 10\n"), "{open}");
        assert!(open.contains("falcosecurity_scap_n_drops_buffer_total 2\n"), "{open}");
        assert!(open.contains("falcosecurity_scap_n_drops_cpu_total{cpu=\"0\"} 2\n"), "{open}");
        let classic = metrics.render(Exposition::Classic).unwrap();
        assert!(classic.contains("# TYPE sensor_events_total counter\n"), "{classic}");
        assert!(classic.contains("# HELP sensor_events_total Events decoded"), "{classic}");
        assert!(classic.contains("# TYPE sensor_processes gauge\n"), "{classic}");
        assert!(!classic.contains("# EOF"));
    }

    fn at(stage: &str, done: u64, waiting: u64) -> Progress {
        Progress { stage: stage.into(), done, waiting }
    }

    #[test]
    fn health_tells_a_stall_from_idleness() {
        let interval = Duration::from_secs(10);
        let start = Instant::now();
        let mut health = Health::default();
        assert_eq!(health.verdict(start, interval), Ok("ok: starting".into()));
        // Idle for a long time: nothing done, nothing waiting.
        for s in 0..=30 {
            health.observe(&[at("ring 0", 0, 0), at("worker 0", 5, 0)], start + Duration::from_secs(s), interval);
        }
        let now = start + Duration::from_secs(30);
        assert_eq!(health.verdict(now, interval), Ok("ok".into()));
        // The worker gets work it never takes; the ring keeps moving.
        for s in 31..=45 {
            health.observe(&[at("ring 0", s, 1), at("worker 0", 5, 3)], start + Duration::from_secs(s), interval);
            let verdict = health.verdict(start + Duration::from_secs(s), interval);
            // Waiting since 31: a stall once 31 is `interval` behind.
            assert_eq!(verdict.is_err(), s >= 41, "second {s}: {verdict:?}");
        }
        let verdict = health.verdict(start + Duration::from_secs(45), interval).unwrap_err();
        assert_eq!(verdict, "stalled: worker 0 (3 waiting) (no progress for 10s)");
        // It moves again: healthy at the next refresh.
        health.observe(&[at("ring 0", 46, 0), at("worker 0", 6, 2)], start + Duration::from_secs(46), interval);
        assert_eq!(health.verdict(start + Duration::from_secs(46), interval), Ok("ok".into()));
        // The run loop stops publishing: the run loop is named.
        let verdict = health.verdict(start + Duration::from_secs(60), interval).unwrap_err();
        assert!(verdict.starts_with("stalled: run loop"), "{verdict}");
        assert!(health.history.len() <= 12, "history is bounded by the interval: {}", health.history.len());
    }

    #[test]
    fn the_bearer_token_is_checked_exactly() {
        let token = crate::outputs::SecretSource { env: Some("SENSOR_TEST_METRICS_TOKEN".into()), file: None };
        // A variable only this test sets.
        unsafe { std::env::set_var("SENSOR_TEST_METRICS_TOKEN", "s3cret") };
        let token = token.load().unwrap();
        let with = |auth: Option<&str>| {
            let mut req = Request::builder().uri("/metrics");
            if let Some(auth) = auth {
                req = req.header("authorization", auth);
            }
            req.body(()).unwrap()
        };
        assert!(authorized(&with(Some("Bearer s3cret")), Some(&token)));
        for wrong in [None, Some("Bearer s3cre"), Some("Bearer s3cret2"), Some("Basic s3cret"), Some("s3cret")] {
            assert!(!authorized(&with(wrong), Some(&token)), "{wrong:?}");
        }
        assert!(authorized(&with(None), None));
        let metrics = Arc::new(Metrics::default());
        let access = Access { token: Some(token), client_certificate: true, prometheus: true };
        let response = metrics.respond(&with(None), &access, true);
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let response = metrics.respond(&with(Some("Bearer s3cret")), &access, false);
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "no client certificate");
        assert_eq!(metrics.respond(&with(Some("Bearer s3cret")), &access, true).status(), StatusCode::OK);
        let healthz = Request::builder().uri("/healthz").body(()).unwrap();
        assert_eq!(metrics.respond(&healthz, &access, false).status(), StatusCode::OK);
    }
}
