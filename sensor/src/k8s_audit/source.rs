//! Where audit events come from in `sensor run`: kube-apiserver's webhook backend (an HTTP(S)
//! endpoint taking `EventList` batches and single `Event`s) and its log backend (JSON-lines
//! files, followed across rotation). Both hand events to one bounded queue, so a flood of
//! audit events never takes memory or time from syscall detection: a full queue refuses
//! (the webhook answers 429, a file's event is dropped) and counts what it refused. One
//! thread evaluates the queue with the loaded rules and sends the alerts to the outputs.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Read, Seek, SeekFrom},
    net::SocketAddr,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, PoisonError, RwLock,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed},
        mpsc::{Receiver, SyncSender, sync_channel},
    },
    time::Duration,
};

use anyhow::Context as _;
use axum::{
    Router,
    body::Bytes,
    extract::{DefaultBodyLimit, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::AuditEvent;
use crate::{
    outputs::SecretSource,
    pipeline::AlertSender,
    rules::{Engine, Scratch},
    store::{
        StoreConfig,
        audit::{AuditLog, AuditRecord, Keep},
    },
};

/// The `k8s_audit` section of the configuration.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// The webhook endpoint kube-apiserver posts to (`--audit-webhook-config-file`).
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
    /// Audit log files (`--audit-log-path`) to follow, JSON lines.
    #[serde(default)]
    pub files: Vec<PathBuf>,
    /// Audit events waiting for the rules, at most.
    #[serde(default = "default_queue")]
    pub queue: usize,
    /// The cluster's name, for `ka.cluster.name`.
    #[serde(default)]
    pub cluster_name: Option<String>,
    /// The audit log: where every event that `keep` selects is kept (a SQLite file of its
    /// own, or a PostgreSQL database) and for how long, searchable with `sensor audit
    /// search` and on the console's Audit page. None: audit events are evaluated, not kept.
    #[serde(default)]
    pub store: Option<StoreConfig>,
    /// Which events the audit log keeps (default: all).
    #[serde(default)]
    pub keep: Keep,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            webhook: None,
            files: Vec::new(),
            queue: default_queue(),
            cluster_name: None,
            store: None,
            keep: Keep::default(),
        }
    }
}

fn default_queue() -> usize {
    10_000
}

/// The webhook endpoint.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where to listen, e.g. `0.0.0.0:9765`.
    pub address: SocketAddr,
    /// The path kube-apiserver posts to.
    #[serde(default = "default_path")]
    pub path: String,
    /// TLS with the operator's certificate; with `client_ca_file`, a client certificate
    /// signed by it is required.
    #[serde(default)]
    pub tls: Option<WebhookTls>,
    /// A bearer token every request must carry (the webhook kubeconfig's `token`).
    #[serde(default)]
    pub token: Option<SecretSource>,
    /// The largest event accepted, in bytes (Falco's default: 256 KiB).
    #[serde(default = "default_max_event_bytes")]
    pub max_event_bytes: usize,
    /// The largest request body accepted, in bytes (Falco's default: 12 MiB).
    #[serde(default = "default_max_request_bytes")]
    pub max_request_bytes: usize,
}

fn default_path() -> String {
    "/k8s-audit".into()
}

fn default_max_event_bytes() -> usize {
    256 << 10
}

fn default_max_request_bytes() -> usize {
    12 << 20
}

/// The webhook's TLS files.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
}

/// Why an audit event or request was refused (the `reason` label of the counter).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Refusal {
    /// Not JSON, or JSON that is not an audit event.
    Malformed,
    /// An event or a request over its bound.
    TooLarge,
    /// A request without the token or the client certificate.
    Unauthorized,
    /// The queue to the rules was full.
    QueueFull,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Malformed => "malformed",
            Refusal::TooLarge => "too_large",
            Refusal::Unauthorized => "unauthorized",
            Refusal::QueueFull => "queue_full",
        }
    }
}

/// The source's counters.
#[derive(Debug, Default)]
struct Counters {
    received: AtomicU64,
    evaluated: AtomicU64,
    requests: AtomicU64,
    /// Nanoseconds the webhook spent answering, over all requests.
    request_ns: AtomicU64,
    /// Room in the queue taken: events queued, or about to be.
    pending: AtomicUsize,
    refused: Mutex<BTreeMap<Refusal, u64>>,
    /// Events the audit log stored, and those it lost: its queue full, or written in vain.
    stored: AtomicU64,
    store_queue_full: AtomicU64,
    store_failed: AtomicU64,
}

/// The counters at one moment, for the metrics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuditCounters {
    /// Audit events taken into the queue.
    pub received: u64,
    /// Audit events the rules evaluated.
    pub evaluated: u64,
    /// Audit events waiting for the rules.
    pub queued: u64,
    /// Webhook requests answered.
    pub requests: u64,
    /// Seconds the webhook spent answering them, in all (from the request's body read to
    /// its answer: over `requests`, the mean latency kube-apiserver waits for).
    pub request_seconds: f64,
    /// Events (or whole requests) refused, by reason.
    pub refused: Vec<(&'static str, u64)>,
    /// Events the audit log stored (an event it held already is not counted again).
    pub stored: u64,
    /// Events `keep` selected that the audit log lost: `queue_full` (the writer was
    /// [`STORE_QUEUE`] events behind) or `write_failed` (the store refused them, retried).
    pub store_lost: Vec<(&'static str, u64)>,
}

impl Counters {
    fn refuse(&self, why: Refusal, n: u64) {
        *self.refused.lock().unwrap_or_else(PoisonError::into_inner).entry(why).or_default() += n;
    }
}

/// The running audit source.
pub struct AuditSource {
    /// The source's own sender: the evaluating thread ends once it and the intakes' are gone.
    queue: Option<SyncSender<AuditEvent>>,
    counters: Arc<Counters>,
    engine: Arc<RwLock<Arc<Engine>>>,
    webhook: Option<SocketAddr>,
    stop: Arc<AtomicBool>,
    server: Option<tokio::task::JoinHandle<()>>,
    followers: Vec<std::thread::JoinHandle<()>>,
    evaluator: Option<std::thread::JoinHandle<()>>,
    /// The audit log's writer, when there is one: it ends once the evaluator has.
    writer: Option<std::thread::JoinHandle<()>>,
}

/// Events waiting for the audit log's writer, at most; more are lost and counted.
pub const STORE_QUEUE: usize = 50_000;
/// The internal alert raised when the audit log's SQLite file was unusable and set aside.
pub const AUDIT_LOG_SET_ASIDE: &str = "sensor internal: audit log set aside";
/// Events the writer stores in one transaction, at most.
const STORE_BATCH: usize = 1_000;
/// A batch the store refused is tried again after these pauses, then counted lost.
const STORE_RETRIES: [Duration; 3] = [Duration::from_secs(1), Duration::from_secs(2), Duration::from_secs(4)];

impl AuditSource {
    /// Starts what `config` enables (`None` when it enables nothing): the evaluating thread,
    /// a follower per file and the webhook. Errors (an address in use, a TLS file that does
    /// not load, a secret that cannot be read) stop the sensor before it runs.
    pub async fn start(
        config: &AuditConfig,
        engine: Arc<Engine>,
        alerts: AlertSender,
    ) -> anyhow::Result<Option<AuditSource>> {
        if config.webhook.is_none() && config.files.is_empty() {
            return Ok(None);
        }
        anyhow::ensure!(config.queue > 0, "k8s_audit.queue must be at least 1");
        let (queue, events) = sync_channel(config.queue);
        let counters = Arc::new(Counters::default());
        let engine = Arc::new(RwLock::new(engine));
        let stop = Arc::new(AtomicBool::new(false));
        let (store, writer) = match &config.store {
            Some(store) => {
                let owned = store.clone();
                let opened = tokio::task::spawn_blocking(move || crate::store::audit::open(&owned))
                    .await?
                    .with_context(|| format!("k8s_audit.store {}", store.describe()))?;
                if let Some(message) = opened.set_aside {
                    // Audit events keep being kept; the operator hears where the old ones went.
                    log::error!("k8s_audit.store: {message}");
                    alerts.send(crate::rules::Alert::internal(
                        AUDIT_LOG_SET_ASIDE,
                        crate::rules::Priority::Error,
                        message,
                        crate::state::node_name().to_owned(),
                        Vec::new(),
                    ));
                }
                let log = opened.log;
                let (to_store, stored) = sync_channel(STORE_QUEUE);
                let (counters, interval) = (counters.clone(), store.retention_interval);
                let writer = std::thread::Builder::new()
                    .name("k8s-audit-store".into())
                    .spawn(move || write_log(log, stored, &counters, interval))
                    .context("starting the audit log writer")?;
                log::info!("k8s_audit: keeping audit events in {}", store.describe());
                (Some((to_store, config.keep.clone())), Some(writer))
            }
            None => (None, None),
        };
        let evaluator = {
            let (engine, counters) = (engine.clone(), counters.clone());
            std::thread::Builder::new()
                .name("k8s-audit".into())
                .spawn(move || evaluate(events, &engine, &alerts, &counters, store))
                .context("starting the audit evaluation thread")?
        };
        let intake = Intake {
            queue: queue.clone(),
            counters: counters.clone(),
            cluster: config.cluster_name.clone(),
            capacity: config.queue,
        };
        let mut followers = Vec::new();
        for path in &config.files {
            let (intake, stop, path) = (intake.clone(), stop.clone(), path.clone());
            let follower = std::thread::Builder::new()
                .name("k8s-audit-file".into())
                .spawn(move || follow(&path, &intake, &stop))
                .context("starting an audit file follower")?;
            followers.push(follower);
        }
        let (webhook, server) = match &config.webhook {
            Some(w) => {
                let (address, server) = serve(w, intake).await?;
                (Some(address), Some(server))
            }
            None => (None, None),
        };
        Ok(Some(AuditSource {
            queue: Some(queue),
            counters,
            engine,
            webhook,
            stop,
            server,
            followers,
            evaluator: Some(evaluator),
            writer,
        }))
    }

    /// Stops taking events, lets the rules evaluate those queued (their alerts go to the
    /// outputs before they stop), and returns the counters.
    pub async fn finish(mut self) -> AuditCounters {
        self.stop.store(true, Relaxed);
        if let Some(server) = self.server.take() {
            server.abort();
            let _ = server.await;
        }
        self.queue = None;
        let followers = std::mem::take(&mut self.followers);
        let evaluator = self.evaluator.take();
        let writer = self.writer.take();
        let _ = tokio::task::spawn_blocking(move || {
            for follower in followers {
                let _ = follower.join();
            }
            for thread in evaluator.into_iter().chain(writer) {
                let _ = thread.join();
            }
        })
        .await;
        self.counters()
    }

    /// Evaluates what comes next with `engine` (after a reload).
    pub fn set_engine(&self, engine: Arc<Engine>) {
        *self.engine.write().unwrap_or_else(PoisonError::into_inner) = engine;
    }

    /// Where the webhook listens, when it does.
    pub fn webhook_address(&self) -> Option<SocketAddr> {
        self.webhook
    }

    /// The counters now.
    pub fn counters(&self) -> AuditCounters {
        let c = &self.counters;
        let received = c.received.load(Relaxed);
        let evaluated = c.evaluated.load(Relaxed);
        let refused = c.refused.lock().unwrap_or_else(PoisonError::into_inner);
        AuditCounters {
            received,
            evaluated,
            queued: c.pending.load(Relaxed) as u64,
            requests: c.requests.load(Relaxed),
            request_seconds: c.request_ns.load(Relaxed) as f64 / 1e9,
            refused: refused.iter().map(|(why, n)| (why.as_str(), *n)).collect(),
            stored: c.stored.load(Relaxed),
            store_lost: vec![
                ("queue_full", c.store_queue_full.load(Relaxed)),
                ("write_failed", c.store_failed.load(Relaxed)),
            ],
        }
    }
}

impl Drop for AuditSource {
    /// Without [`AuditSource::finish`]: the threads end by themselves, the followers at
    /// their next look at `stop`, the evaluating one once every sender is gone.
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// What both kinds of source hand events to. Room in the queue is taken before events are
/// parsed, all of a batch or none of it: a batch refused for a full queue was not taken in
/// part, so kube-apiserver's retry of it repeats nothing.
#[derive(Clone)]
struct Intake {
    queue: SyncSender<AuditEvent>,
    counters: Arc<Counters>,
    cluster: Option<String>,
    /// The queue's bound ([`AuditConfig::queue`]).
    capacity: usize,
}

impl Intake {
    /// Takes room for `n` events, all or none.
    fn reserve(&self, n: usize) -> bool {
        let room = |pending: usize| (pending + n <= self.capacity).then_some(pending + n);
        self.counters.pending.fetch_update(Relaxed, Relaxed, room).is_ok()
    }

    /// Queues one event's JSON (an item of an `EventList` of that `apiVersion`, with
    /// `list`) into room [`Intake::reserve`] took for it, or gives the room back and counts
    /// why not.
    fn take(&self, json: serde_json::Value, list: Option<&str>) -> Result<(), Refusal> {
        let event = match list {
            Some(api_version) => AuditEvent::from_list_item(json, api_version),
            None => AuditEvent::from_json(json),
        };
        let mut event = event.map_err(|e| {
            log::debug!("k8s_audit: refused an event: {e}");
            self.counters.pending.fetch_sub(1, Relaxed);
            self.counters.refuse(Refusal::Malformed, 1);
            Refusal::Malformed
        })?;
        if let Some(cluster) = &self.cluster {
            event = event.with_cluster_name(cluster.clone());
        }
        // The room was taken: the queue holds fewer than its bound, so this does not wait.
        match self.queue.send(event) {
            Ok(()) => {
                self.counters.received.fetch_add(1, Relaxed);
                Ok(())
            }
            // The rules are gone (the source is stopping).
            Err(_) => {
                self.counters.pending.fetch_sub(1, Relaxed);
                self.counters.refuse(Refusal::QueueFull, 1);
                Err(Refusal::QueueFull)
            }
        }
    }
}

/// The evaluating thread: each event through the current rules, alerts to the outputs,
/// then to the audit log's writer if `store` keeps it (never waiting for the writer: a full
/// queue to it loses the event, counted).
fn evaluate(
    events: Receiver<AuditEvent>,
    engine: &RwLock<Arc<Engine>>,
    alerts: &AlertSender,
    counters: &Counters,
    store: Option<(SyncSender<AuditEvent>, Keep)>,
) {
    let mut scratch = Scratch::default();
    let mut bursts = super::ForbiddenBursts::default();
    for mut event in events {
        counters.pending.fetch_sub(1, Relaxed);
        bursts.observe(&mut event);
        let engine = engine.read().unwrap_or_else(PoisonError::into_inner).clone();
        for alert in engine.process_admitted(&event, &mut scratch, &mut |rule| alerts.admits(rule)) {
            alerts.send(alert);
        }
        counters.evaluated.fetch_add(1, Relaxed);
        if let Some((to_store, keep)) = &store
            && keep.keeps(&event)
            && to_store.try_send(event).is_err()
        {
            counters.store_queue_full.fetch_add(1, Relaxed);
        }
    }
}

/// The audit log's writer thread: batches of what comes, each stored in one transaction
/// (retried after [`STORE_RETRIES`], then counted lost), and retention every `interval`.
/// Ends once the evaluating thread has, after storing what it was given.
fn write_log(mut log: Box<dyn AuditLog>, events: Receiver<AuditEvent>, counters: &Counters, interval: Duration) {
    let mut next_retention = std::time::Instant::now();
    let mut open = true;
    while open {
        if std::time::Instant::now() >= next_retention {
            match log.retain_audit(crate::store::now_ns()) {
                Ok(removed) if removed.expired + removed.over_size > 0 => log::info!(
                    "k8s_audit: the audit log removed {} events past max_age and {} over max_size",
                    removed.expired,
                    removed.over_size
                ),
                Ok(_) => {}
                Err(e) => log::warn!("k8s_audit: audit log retention failed: {e:#}"),
            }
            next_retention = std::time::Instant::now() + interval;
        }
        let wait = next_retention.saturating_duration_since(std::time::Instant::now());
        let mut batch = Vec::new();
        match events.recv_timeout(wait) {
            Ok(event) => batch.push(AuditRecord::of(event)),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
        while batch.len() < STORE_BATCH {
            match events.try_recv() {
                Ok(event) => batch.push(AuditRecord::of(event)),
                Err(std::sync::mpsc::TryRecvError::Empty) => break,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        let mut attempt = 0;
        loop {
            match log.insert_audit(&batch) {
                Ok(stored) => {
                    counters.stored.fetch_add(stored, Relaxed);
                    break;
                }
                Err(e) if attempt < STORE_RETRIES.len() => {
                    log::warn!("k8s_audit: storing {} audit events failed (will retry): {e:#}", batch.len());
                    std::thread::sleep(STORE_RETRIES[attempt]);
                    attempt += 1;
                }
                Err(e) => {
                    log::error!("k8s_audit: {} audit events lost: the audit log refused them: {e:#}", batch.len());
                    counters.store_failed.fetch_add(batch.len() as u64, Relaxed);
                    break;
                }
            }
        }
    }
}

/// How often a follower at the end of its file looks again.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// Follows an audit log from its end as kube-apiserver appends to it (what it held before
/// is not replayed), and each new file once it is rotated (renamed or truncated) from its
/// start. A line over the event bound is skipped whole and counted.
fn follow(path: &Path, intake: &Intake, stop: &AtomicBool) {
    let max_line = default_max_event_bytes();
    let mut opened: Option<(BufReader<std::fs::File>, u64, u64)> = None; // reader, inode, position
    let mut partial: Vec<u8> = Vec::new();
    let mut skipping = false;
    let mut first = true;
    let mut line_number = 0u64;
    while !stop.load(Relaxed) {
        let current = std::fs::metadata(path).ok().map(|m| (m.ino(), m.len()));
        let rotated = match (&opened, current) {
            (Some((_, ino, pos)), Some((now_ino, len))) => *ino != now_ino || len < *pos,
            (None, Some(_)) => true,
            (_, None) => false,
        };
        if rotated {
            match std::fs::File::open(path) {
                Ok(mut file) => {
                    let ino = file.metadata().map(|m| m.ino()).unwrap_or(0);
                    // The file there at start is followed from its end; later ones from their start.
                    let pos = if first { file.seek(SeekFrom::End(0)).unwrap_or(0) } else { 0 };
                    opened = Some((BufReader::new(file), ino, pos));
                    partial.clear();
                    skipping = false;
                    line_number = 0;
                }
                Err(e) => log::warn!("k8s_audit: cannot open {}: {e}", path.display()),
            }
        }
        first = false;
        let Some((reader, _, pos)) = opened.as_mut() else {
            std::thread::sleep(FOLLOW_POLL);
            continue;
        };
        let mut chunk = Vec::new();
        let read = reader.by_ref().take(1 << 20).read_until(b'\n', &mut chunk).unwrap_or(0);
        if read == 0 {
            std::thread::sleep(FOLLOW_POLL);
            continue;
        }
        *pos += read as u64;
        let complete = chunk.last() == Some(&b'\n');
        if !skipping {
            partial.extend_from_slice(&chunk);
        }
        if partial.len() > max_line {
            partial.clear();
            skipping = true;
        }
        if !complete {
            continue;
        }
        line_number += 1;
        if std::mem::take(&mut skipping) {
            log::warn!("k8s_audit: {}:{line_number}: an event over {max_line} bytes, skipped", path.display());
            intake.counters.refuse(Refusal::TooLarge, 1);
            continue;
        }
        let line = std::mem::take(&mut partial);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<serde_json::Value>(&line) {
            Ok(json) => {
                // The file keeps what the queue has no room for yet: wait rather than drop.
                while !intake.reserve(1) {
                    if stop.load(Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                if let Err(Refusal::Malformed) = intake.take(json, None) {
                    log::warn!("k8s_audit: {}:{line_number}: not an audit event", path.display());
                }
            }
            Err(e) => {
                log::warn!("k8s_audit: {}:{line_number}: not JSON: {e}", path.display());
                intake.counters.refuse(Refusal::Malformed, 1);
            }
        }
    }
}

/// What the webhook's handler shares.
#[derive(Clone)]
struct Webhook {
    intake: Intake,
    token: Option<Arc<crate::outputs::Secret>>,
    max_event_bytes: usize,
}

/// Starts the webhook; its address and task.
async fn serve(config: &WebhookConfig, intake: Intake) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    anyhow::ensure!(config.path.starts_with('/'), "k8s_audit.webhook.path must begin with /");
    let token = match &config.token {
        Some(source) => Some(Arc::new(source.load().context("k8s_audit.webhook.token")?)),
        None => None,
    };
    let tls = match &config.tls {
        Some(t) => Some(
            crate::tls::server_acceptor_with(&t.cert_file, &t.key_file, t.client_ca_file.as_deref(), true)
                .context("k8s_audit.webhook.tls")?,
        ),
        None => None,
    };
    let state = Webhook { intake, token, max_event_bytes: config.max_event_bytes };
    let limit = config.max_request_bytes;
    let app = Router::new()
        .route(&config.path, post(receive))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
        .fallback(|| async { StatusCode::NOT_FOUND });
    let listener = tokio::net::TcpListener::bind(config.address)
        .await
        .with_context(|| format!("k8s_audit.webhook.address {}", config.address))?;
    let address = listener.local_addr()?;
    log::info!("k8s_audit: webhook on {}://{address}{}", if tls.is_some() { "https" } else { "http" }, config.path);
    let task = tokio::spawn(async move {
        let served = match tls {
            Some(acceptor) => match crate::tls::TlsListener::new(listener, acceptor) {
                Ok(listener) => axum::serve(listener, app).await,
                Err(e) => Err(e),
            },
            None => axum::serve(listener, app).await,
        };
        if let Err(e) = served {
            log::error!("k8s_audit: webhook stopped: {e}");
        }
    });
    Ok((address, task))
}

/// An `EventList` with its items left as they came, so that each one's size is known
/// without writing it again.
#[derive(Deserialize)]
struct Batch<'a> {
    kind: Option<String>,
    #[serde(rename = "apiVersion")]
    api_version: Option<String>,
    #[serde(borrow, default)]
    items: Vec<&'a RawValue>,
}

/// `POST <path>`: an `EventList` or one `Event`. 200 when every event was taken; 400 for
/// what is not an audit event (nothing of the request is kept); 401 without the token;
/// 413 over the request bound (an event over its own bound is dropped and counted, the
/// rest kept); 429 when the queue has no room for all of them (none is taken: the
/// apiserver's retry repeats nothing).
async fn receive(
    State(hook): State<Webhook>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let started = std::time::Instant::now();
    let answer = answer(&hook, &headers, body);
    let counters = &hook.intake.counters;
    counters.requests.fetch_add(1, Relaxed);
    counters.request_ns.fetch_add(started.elapsed().as_nanos() as u64, Relaxed);
    answer
}

fn answer(
    hook: &Webhook,
    headers: &HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let counters = &hook.intake.counters;
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let why = match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => Refusal::TooLarge,
                _ => Refusal::Malformed,
            };
            counters.refuse(why, 1);
            return rejection.into_response();
        }
    };
    if let Some(token) = &hook.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !token.matches(given.as_bytes()) {
            counters.refuse(Refusal::Unauthorized, 1);
            return (StatusCode::UNAUTHORIZED, "a bearer token is required\n").into_response();
        }
    }
    let batch: Batch<'_> = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            counters.refuse(Refusal::Malformed, 1);
            return (StatusCode::BAD_REQUEST, format!("not JSON: {e}\n")).into_response();
        }
    };
    let items: Vec<&str> = match batch.kind.as_deref() {
        Some("EventList") => batch.items.iter().map(|raw| raw.get()).collect(),
        Some("Event") => vec![std::str::from_utf8(&body).unwrap_or_default()],
        other => {
            counters.refuse(Refusal::Malformed, 1);
            let kind = other.unwrap_or("none");
            return (StatusCode::BAD_REQUEST, format!("expected an EventList or an Event, got kind {kind}\n"))
                .into_response();
        }
    };
    let (mut taken, mut full, mut bad, mut large) = (0u64, 0u64, 0u64, 0u64);
    let (items, oversized): (Vec<&str>, Vec<&str>) = items.into_iter().partition(|i| i.len() <= hook.max_event_bytes);
    if !oversized.is_empty() {
        large = oversized.len() as u64;
        counters.refuse(Refusal::TooLarge, large);
    }
    if !hook.intake.reserve(items.len()) {
        full = items.len() as u64;
        counters.refuse(Refusal::QueueFull, full);
        let summary = format!("taken 0, queue full {full}, malformed 0, too large {large}\n");
        return (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "1")], summary).into_response();
    }
    for item in items {
        let json = match serde_json::from_str(item) {
            Ok(json) => json,
            Err(_) => {
                counters.pending.fetch_sub(1, Relaxed);
                counters.refuse(Refusal::Malformed, 1);
                bad += 1;
                continue;
            }
        };
        let list = match batch.kind.as_deref() {
            Some("EventList") => Some(batch.api_version.as_deref().unwrap_or_default()),
            _ => None,
        };
        match hook.intake.take(json, list) {
            Ok(()) => taken += 1,
            Err(Refusal::QueueFull) => full += 1,
            Err(_) => bad += 1,
        }
    }
    let summary = format!("taken {taken}, queue full {full}, malformed {bad}, too large {large}\n");
    if full > 0 {
        return (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "1")], summary).into_response();
    }
    if taken == 0 && bad > 0 {
        return (StatusCode::BAD_REQUEST, summary).into_response();
    }
    (StatusCode::OK, summary).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A queue without room for a whole batch: the webhook answers 429 with Retry-After and
    /// takes none of it (a retry repeats nothing); a batch that fits is taken.
    #[tokio::test]
    async fn a_full_queue_is_answered_429_and_counted() {
        let (queue, _held) = sync_channel(2);
        let counters = Arc::new(Counters::default());
        let hook = Webhook {
            intake: Intake { queue, counters: counters.clone(), cluster: None, capacity: 2 },
            token: None,
            max_event_bytes: 1 << 20,
        };
        let event = |id: &str| {
            serde_json::json!({"kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": id,
                "stageTimestamp": "2026-12-07T10:00:00Z"})
        };
        let body = serde_json::json!({"kind": "EventList", "items": [event("a"), event("b"), event("c")]});
        let response = receive(State(hook.clone()), HeaderMap::new(), Ok(Bytes::from(body.to_string()))).await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers().get(header::RETRY_AFTER).map(|v| v.as_bytes()), Some(&b"1"[..]));
        assert_eq!(counters.received.load(Relaxed), 0);
        assert_eq!(counters.refused.lock().unwrap().get(&Refusal::QueueFull), Some(&3));
        let two = serde_json::json!({"kind": "EventList", "items": [event("d"), event("e")]});
        let response = receive(State(hook.clone()), HeaderMap::new(), Ok(Bytes::from(two.to_string()))).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(counters.received.load(Relaxed), 2);
        let one = serde_json::json!({"kind": "EventList", "items": [event("f")]});
        let response = receive(State(hook), HeaderMap::new(), Ok(Bytes::from(one.to_string()))).await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS, "the queue is full until the rules take from it");
    }
}

#[cfg(test)]
mod follow_tests {
    use super::*;

    fn line(id: &str) -> String {
        serde_json::json!({"kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": id,
            "stageTimestamp": "2026-12-07T10:00:00Z"})
        .to_string()
            + "\n"
    }

    /// A follower skips (and counts) a line over the event bound, a line that is not JSON and
    /// one that is not an audit event, keeps the rest, and reads a file truncated in place
    /// (copytruncate rotation) again from its start.
    #[test]
    fn a_follower_skips_what_is_not_an_event_and_follows_a_truncated_file() {
        use std::io::Write as _;
        let dir = std::env::temp_dir().join(format!("sensor-audit-follow-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.log");
        std::fs::write(&path, line("before-start")).unwrap();
        let (queue, events) = sync_channel(100);
        let counters = Arc::new(Counters::default());
        let intake = Intake { queue, counters: counters.clone(), cluster: None, capacity: 100 };
        let stop = Arc::new(AtomicBool::new(false));
        let follower = {
            let (path, stop) = (path.clone(), stop.clone());
            std::thread::spawn(move || follow(&path, &intake, &stop))
        };
        let ids = || -> Vec<String> {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            let mut ids = Vec::new();
            while let Ok(ev) = events.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())) {
                ids.push(ev.json()["auditID"].as_str().unwrap_or_default().to_owned());
                if ids.len() == 2 {
                    break;
                }
            }
            ids
        };
        std::thread::sleep(FOLLOW_POLL * 2);
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        let huge = format!("{{\"pad\": \"{}\"}}\n", "x".repeat(default_max_event_bytes() + 1));
        for text in [huge.as_str(), "not json\n", "{\"kind\": \"Pod\"}\n", &line("a"), &line("b")] {
            f.write_all(text.as_bytes()).unwrap();
        }
        assert_eq!(ids(), ["a", "b"], "what was there at start is not replayed");
        // Truncated in place, then written again.
        std::fs::File::create(&path).unwrap().write_all(line("c").as_bytes()).unwrap();
        std::thread::sleep(FOLLOW_POLL * 2);
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(line("d").as_bytes()).unwrap();
        assert_eq!(ids(), ["c", "d"]);
        stop.store(true, Relaxed);
        follower.join().unwrap();
        let refused = counters.refused.lock().unwrap().clone();
        assert_eq!(refused.get(&Refusal::TooLarge), Some(&1));
        assert_eq!(refused.get(&Refusal::Malformed), Some(&2));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
