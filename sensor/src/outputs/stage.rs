//! The output stage: one bounded queue and one task per output, fed by [`OutputStage::publish`],
//! which never waits, so a slow or broken output delays neither detection nor the others.

use std::{
    collections::VecDeque,
    fmt,
    sync::{
        Arc, Mutex,
        atomic::{
            AtomicBool, AtomicU64,
            Ordering::{Acquire, Relaxed, Release},
        },
    },
    time::Duration,
};

use anyhow::Context as _;
use tokio::{sync::Notify, task::JoinHandle};

use super::{
    Sink,
    config::{OutputKind, OutputOptions, OutputsConfig, Overflow, SMTP_DEFAULT_BATCH},
    console::{CONSOLE_DEFAULT_BATCH, ConsoleSink},
    file::FileSink,
    grpc::GrpcSink,
    program::ProgramSink,
    smtp::SmtpSink,
    stdout::StdoutSink,
    store::{STORE_DEFAULT_BATCH, StoreSink},
    syslog::SyslogSink,
    telegram::TelegramSink,
    webhook::WebhookSink,
    worker::Worker,
};
use crate::rules::{Alert, Priority};

/// The running outputs.
pub struct OutputStage {
    outputs: Vec<RunningOutput>,
    /// What outputs found wrong at start but worked around, for internal alerts.
    notices: Vec<StartNotice>,
}

/// Something an output found wrong at start and worked around (a corrupt store set aside).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartNotice {
    pub output: String,
    pub message: String,
}

struct RunningOutput {
    name: String,
    filter: Filter,
    queue: Arc<Queue>,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

impl OutputStage {
    /// Starts every enabled output on the current tokio runtime. An output that cannot start
    /// (an unreadable token file, a missing directory) fails the whole start, naming it.
    pub async fn start(config: &OutputsConfig) -> anyhow::Result<Self> {
        let mut stage = OutputStage { outputs: Vec::new(), notices: Vec::new() };
        for output in config.outputs.iter().filter(|o| o.options.enabled) {
            let (name, options) = (&output.name, &output.options);
            let started = match &output.kind {
                OutputKind::Stdout(c) => Ok(launch(name, options, StdoutSink::new(c))),
                OutputKind::File(c) => FileSink::open(c).map(|sink| launch(name, options, sink)),
                OutputKind::Telegram(c) => TelegramSink::new(c).map(|sink| launch(name, options, sink)),
                OutputKind::Webhook(c) => WebhookSink::new(c).map(|sink| launch(name, options, sink)),
                OutputKind::Smtp(c) => SmtpSink::new(c).map(|sink| {
                    let batch = options.batch.or(Some(SMTP_DEFAULT_BATCH));
                    launch(name, &OutputOptions { batch, ..options.clone() }, sink)
                }),
                OutputKind::Grpc(c) => GrpcSink::start(c).await.map(|sink| launch(name, options, sink)),
                OutputKind::Store(c) => StoreSink::open(c).await.map(|sink| {
                    if let Some(message) = sink.set_aside() {
                        stage.notices.push(StartNotice { output: name.clone(), message: message.to_owned() });
                    }
                    let batch = options.batch.or(Some(STORE_DEFAULT_BATCH));
                    launch(name, &OutputOptions { batch, ..options.clone() }, sink)
                }),
                OutputKind::Console(c) => ConsoleSink::new(c).map(|sink| {
                    let batch = options.batch.or(Some(CONSOLE_DEFAULT_BATCH));
                    launch(name, &OutputOptions { batch, ..options.clone() }, sink)
                }),
                OutputKind::Syslog(c) => Ok(launch(name, options, SyslogSink::new(c))),
                OutputKind::Program(c) => Ok(launch(name, options, ProgramSink::new(c))),
            };
            stage.outputs.push(started.with_context(|| format!("output `{name}`"))?);
        }
        Ok(stage)
    }

    /// Offers `alert` to every output: filtered, or queued (a full queue drops per its policy).
    /// Never waits.
    pub fn publish(&self, alert: Alert) {
        let alert = Arc::new(alert);
        for output in &self.outputs {
            output.counters.produced.fetch_add(1, Relaxed);
            if output.filter.accepts(&alert) {
                output.queue.push(alert.clone(), &output.counters);
            } else {
                output.counters.filtered.fetch_add(1, Relaxed);
            }
        }
    }

    /// What outputs found wrong at start and worked around.
    pub fn notices(&self) -> &[StartNotice] {
        &self.notices
    }

    /// Every output's counters now.
    pub fn counters(&self) -> Vec<OutputCounters> {
        self.outputs.iter().map(RunningOutput::snapshot).collect()
    }

    /// Lets every output deliver what it holds (ending rate-limit windows and batches early)
    /// for at most `bound`; what is still undelivered then is counted as dropped. Returns the
    /// final counters.
    pub async fn shutdown(mut self, bound: Duration) -> Vec<OutputCounters> {
        let outputs = std::mem::take(&mut self.outputs);
        for output in &outputs {
            output.queue.close();
        }
        let deadline = tokio::time::Instant::now() + bound;
        let mut last = Vec::new();
        for mut output in outputs {
            match tokio::time::timeout_at(deadline, &mut output.task).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => log::error!("output `{}` stopped: {e}", output.name),
                Err(_) => {
                    output.task.abort();
                    let _ = (&mut output.task).await;
                    log::warn!("output `{}` did not finish delivering within {bound:?}", output.name);
                }
            }
            output.counters.abandon(output.queue.clear());
            last.push(output.snapshot());
        }
        last
    }
}

impl Drop for OutputStage {
    /// A stage dropped without [`OutputStage::shutdown`] (a failed start) stops its tasks.
    fn drop(&mut self) {
        for output in &self.outputs {
            output.task.abort();
        }
    }
}

/// Starts the task of one output.
fn launch<S: Sink>(name: &str, options: &OutputOptions, sink: S) -> RunningOutput {
    let queue = Arc::new(Queue::new(options.queue.capacity.get(), options.queue.overflow));
    let counters = Arc::new(Counters { errors: sink.errors().unwrap_or_default(), ..Counters::default() });
    let worker = Worker::new(name, options, sink, queue.clone(), counters.clone());
    RunningOutput {
        name: name.to_owned(),
        filter: Filter::new(options),
        queue,
        counters,
        task: tokio::spawn(worker.run()),
    }
}

impl RunningOutput {
    fn snapshot(&self) -> OutputCounters {
        let c = &self.counters;
        OutputCounters {
            name: self.name.clone(),
            produced: c.produced.load(Relaxed),
            filtered: c.filtered.load(Relaxed),
            sent: c.sent.load(Relaxed),
            failed: c.failed.load(Relaxed),
            retried: c.retried.load(Relaxed),
            dropped: c.dropped.load(Relaxed),
            suppressed: c.suppressed.load(Relaxed),
            summaries: c.summaries.load(Relaxed),
            summaries_failed: c.summaries_failed.load(Relaxed),
            errors: c.errors.load(Relaxed),
            queue_depth: self.queue.len() as u64,
        }
    }
}

/// Which alerts an output wants. Applied before queueing, so alerts an output does not want
/// never take room in its queue from those it does.
struct Filter {
    min_priority: Priority,
    rules_include: Vec<String>,
    rules_exclude: Vec<String>,
    tags_include: Vec<String>,
    tags_exclude: Vec<String>,
}

impl Filter {
    fn new(options: &OutputOptions) -> Self {
        Filter {
            min_priority: options.min_priority,
            rules_include: options.rules.include.clone(),
            rules_exclude: options.rules.exclude.clone(),
            tags_include: options.tags.include.clone(),
            tags_exclude: options.tags.exclude.clone(),
        }
    }

    fn accepts(&self, alert: &Alert) -> bool {
        // Priorities order from the most severe (Emergency) down.
        alert.priority <= self.min_priority
            && (self.rules_include.is_empty() || self.rules_include.contains(&alert.rule))
            && !self.rules_exclude.contains(&alert.rule)
            && (self.tags_include.is_empty() || alert.tags.iter().any(|t| self.tags_include.contains(t)))
            && !alert.tags.iter().any(|t| self.tags_exclude.contains(t))
    }
}

/// One output's counters, as the stage and its task update them.
#[derive(Default)]
pub(crate) struct Counters {
    produced: AtomicU64,
    filtered: AtomicU64,
    sent: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    dropped: AtomicU64,
    suppressed: AtomicU64,
    summaries: AtomicU64,
    summaries_failed: AtomicU64,
    /// The sink's own errors outside deliveries ([`Sink::errors`]).
    errors: Arc<AtomicU64>,
    /// Alerts the task took from the queue and has not settled yet (being batched or sent),
    /// counted as dropped if the task is stopped at shutdown.
    in_hand: AtomicU64,
    /// Summaries made and not settled yet.
    summaries_in_hand: AtomicU64,
}

impl Counters {
    /// One alert suppressed by the rate limiter.
    pub(crate) fn settle_suppressed(&self) {
        self.in_hand.fetch_sub(1, Relaxed);
        self.suppressed.fetch_add(1, Relaxed);
    }

    /// A summary made by the rate limiter, now in the task's hands.
    pub(crate) fn hold_summary(&self) {
        self.summaries_in_hand.fetch_add(1, Relaxed);
    }

    /// The outcome of one delivery of `alerts` alerts and `summaries` summaries.
    pub(crate) fn settle(&self, alerts: u64, summaries: u64, delivered: bool) {
        self.in_hand.fetch_sub(alerts, Relaxed);
        self.summaries_in_hand.fetch_sub(summaries, Relaxed);
        if delivered {
            self.sent.fetch_add(alerts, Relaxed);
            self.summaries.fetch_add(summaries, Relaxed);
        } else {
            self.failed.fetch_add(alerts, Relaxed);
            self.summaries_failed.fetch_add(summaries, Relaxed);
        }
    }

    /// One retry of a delivery.
    pub(crate) fn add_retry(&self) {
        self.retried.fetch_add(1, Relaxed);
    }

    /// After the task stopped: what it held and what was still queued is dropped.
    fn abandon(&self, queued: u64) {
        self.dropped.fetch_add(queued + self.in_hand.swap(0, Relaxed), Relaxed);
        self.summaries_failed.fetch_add(self.summaries_in_hand.swap(0, Relaxed), Relaxed);
    }
}

/// One output's counters at one moment. Once the output is drained,
/// `produced = filtered + sent + failed + dropped + suppressed`; summaries of suppressed
/// alerts are messages of their own, counted apart.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutputCounters {
    /// The output's name.
    pub name: String,
    /// Alerts offered to the output.
    pub produced: u64,
    /// Alerts its filters left out.
    pub filtered: u64,
    /// Alerts delivered.
    pub sent: u64,
    /// Alerts whose delivery failed for good (retries exhausted or a permanent error).
    pub failed: u64,
    /// Delivery attempts that were retries.
    pub retried: u64,
    /// Alerts dropped by a full queue, or still undelivered when the shutdown bound passed.
    pub dropped: u64,
    /// Alerts held back by the rate limit.
    pub suppressed: u64,
    /// "N similar alerts suppressed" summaries delivered.
    pub summaries: u64,
    /// Summaries not delivered.
    pub summaries_failed: u64,
    /// Errors of the output outside deliveries, which lost no alert (a refused reopen).
    pub errors: u64,
    /// Alerts waiting in the queue.
    pub queue_depth: u64,
}

impl fmt::Display for OutputCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "output {}: produced={} filtered={} sent={} failed={} retried={} dropped={} suppressed={} summaries={} \
             summaries_failed={} errors={} queued={}",
            self.name,
            self.produced,
            self.filtered,
            self.sent,
            self.failed,
            self.retried,
            self.dropped,
            self.suppressed,
            self.summaries,
            self.summaries_failed,
            self.errors,
            self.queue_depth
        )
    }
}

/// The alerts of one output's queue, each rule's apart, served in turns.
#[derive(Default)]
struct Held {
    /// Each rule with alerts queued, with them (oldest first), in the order of their turns.
    rules: VecDeque<(String, VecDeque<Arc<Alert>>)>,
    len: usize,
}

impl Held {
    fn push(&mut self, alert: Arc<Alert>) {
        match self.rules.iter_mut().find(|(rule, _)| *rule == alert.rule) {
            Some((_, alerts)) => alerts.push_back(alert),
            None => self.rules.push_back((alert.rule.clone(), VecDeque::from([alert]))),
        }
        self.len += 1;
    }

    /// The oldest alert of the rule whose turn it is; that rule's next turn comes after
    /// every other rule's.
    fn pop(&mut self) -> Option<Arc<Alert>> {
        let (rule, mut alerts) = self.rules.pop_front()?;
        let alert = alerts.pop_front();
        if !alerts.is_empty() {
            self.rules.push_back((rule, alerts));
        }
        self.len -= 1;
        alert
    }

    /// The alerts of the rule holding the most of the queue.
    fn busiest(&mut self) -> Option<&mut (String, VecDeque<Arc<Alert>>)> {
        self.rules.iter_mut().max_by_key(|(_, alerts)| alerts.len())
    }

    /// Makes room for `alert` by dropping one alert of the busiest rule: its oldest or
    /// newest, per `overflow`; `alert` itself when it is the newest of the busiest rule.
    /// Returns whether `alert` still goes in.
    fn make_room(&mut self, alert: &Alert, overflow: Overflow) -> bool {
        let Some((rule, alerts)) = self.busiest() else { return true };
        let dropped = match overflow {
            Overflow::DropNewest if *rule == alert.rule => return false,
            Overflow::DropNewest => alerts.pop_back(),
            Overflow::DropOldest => alerts.pop_front(),
        };
        if dropped.is_some() {
            self.len -= 1;
            self.rules.retain(|(_, alerts)| !alerts.is_empty());
        }
        true
    }

    fn clear(&mut self) -> usize {
        self.rules.clear();
        std::mem::take(&mut self.len)
    }
}

/// A bounded queue of alerts for one output. The publisher never waits: a full queue drops
/// an alert (per the overflow policy, from the rule holding the most of it) and counts it.
/// Rules are served in turns, one alert each, so that one rule's flood delays another
/// rule's alert by one alert at most (each rule's alerts keep their order).
pub(crate) struct Queue {
    alerts: Mutex<Held>,
    capacity: usize,
    overflow: Overflow,
    closed: AtomicBool,
    ready: Notify,
}

impl Queue {
    fn new(capacity: usize, overflow: Overflow) -> Self {
        Queue {
            alerts: Mutex::new(Held::default()),
            capacity,
            overflow,
            closed: AtomicBool::new(false),
            ready: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        // The lock is only held to push or pop, which cannot panic half-way.
        self.alerts.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn push(&self, alert: Arc<Alert>, counters: &Counters) {
        {
            let mut alerts = self.lock();
            if alerts.len >= self.capacity {
                counters.dropped.fetch_add(1, Relaxed);
                // The room is taken from the rule holding the most of the queue, so that one
                // rule's flood never pushes out another rule's alert.
                if !alerts.make_room(&alert, self.overflow) {
                    return;
                }
            }
            alerts.push(alert);
        }
        self.ready.notify_one();
    }

    /// The next alert (see [`Queue`] for the order), now in the task's hands.
    pub(crate) fn pop(&self, counters: &Counters) -> Option<Arc<Alert>> {
        let alert = self.lock().pop()?;
        counters.in_hand.fetch_add(1, Relaxed);
        Some(alert)
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.lock().len == 0
    }

    /// Resolves when alerts were pushed (or the queue closed) since the last wake-up.
    pub(crate) async fn ready(&self) {
        self.ready.notified().await;
    }

    fn close(&self) {
        // Release: a worker that sees the flag also sees every alert pushed before it.
        self.closed.store(true, Release);
        self.ready.notify_one();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Acquire)
    }

    /// Empties the queue; how many alerts it held.
    fn clear(&self) -> u64 {
        self.lock().clear() as u64
    }
}

#[cfg(test)]
mod tests;
