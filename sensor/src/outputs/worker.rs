//! The task behind one output: takes alerts from its queue, rate limits, batches, and delivers
//! through the sink with a timeout per attempt and retries with backoff and jitter.

use std::{
    hash::{BuildHasher as _, Hasher as _},
    sync::Arc,
    time::Duration,
};

use tokio::time::Instant;

use super::{
    SendError, Sink,
    config::{BatchConfig, OutputOptions, RetryPolicy, format_duration},
    limiter::RateLimiter,
    stage::{Counters, Queue},
};
use crate::rules::Alert;

/// An alert taken from the queue, or a summary the limiter made.
struct Pending {
    alert: Arc<Alert>,
    summary: bool,
}

/// One output's delivery loop.
pub(crate) struct Worker<S> {
    name: String,
    sink: S,
    queue: Arc<Queue>,
    counters: Arc<Counters>,
    limiter: Option<RateLimiter>,
    batch: Option<BatchConfig>,
    retry: RetryPolicy,
    timeout: Duration,
    /// The batch being filled (one alert at most without batching).
    pending: Vec<Pending>,
    batch_due: Option<Instant>,
    jitter: Jitter,
    failures: FailureLog,
}

impl<S: Sink> Worker<S> {
    /// A worker for the output `name` with these options.
    pub(crate) fn new(
        name: &str,
        options: &OutputOptions,
        sink: S,
        queue: Arc<Queue>,
        counters: Arc<Counters>,
    ) -> Self {
        Worker {
            name: name.to_owned(),
            sink,
            queue,
            counters,
            limiter: options.rate_limit.map(RateLimiter::new),
            batch: options.batch,
            retry: options.retry,
            timeout: options.timeout,
            pending: Vec::new(),
            batch_due: None,
            jitter: Jitter::new(),
            failures: FailureLog::default(),
        }
    }

    /// Delivers until the queue is closed and empty, then ends open windows and flushes.
    pub(crate) async fn run(mut self) {
        loop {
            while let Some(alert) = self.queue.pop(&self.counters) {
                self.take(alert).await;
            }
            self.end_windows(Instant::now()).await;
            if self.queue.is_closed() && self.queue.is_empty() {
                break;
            }
            let window_end = self.limiter.as_ref().and_then(RateLimiter::next_window_end);
            tokio::select! {
                () = self.queue.ready() => {}
                () = sleep_until(self.batch_due) => self.flush().await,
                () = sleep_until(window_end) => {}
            }
        }
        let summaries = self.limiter.as_mut().map(RateLimiter::end_all).unwrap_or_default();
        for summary in summaries {
            self.add_summary(summary).await;
        }
        self.flush().await;
    }

    async fn take(&mut self, alert: Arc<Alert>) {
        let now = Instant::now();
        // Windows that ended before this alert come before it.
        self.end_windows(now).await;
        if let Some(limiter) = &mut self.limiter
            && !limiter.admit(&alert, now)
        {
            self.counters.settle_suppressed();
            return;
        }
        self.add(Pending { alert, summary: false }).await;
    }

    async fn end_windows(&mut self, now: Instant) {
        let summaries = self.limiter.as_mut().map(|l| l.end_windows(now)).unwrap_or_default();
        for summary in summaries {
            self.add_summary(summary).await;
        }
    }

    async fn add_summary(&mut self, summary: Alert) {
        self.counters.hold_summary();
        self.add(Pending { alert: Arc::new(summary), summary: true }).await;
    }

    async fn add(&mut self, pending: Pending) {
        let Some(batch) = self.batch else {
            self.pending.push(pending);
            return self.flush().await;
        };
        if self.pending.is_empty() {
            self.batch_due = Some(Instant::now() + batch.window);
        }
        self.pending.push(pending);
        if self.pending.len() >= batch.max_alerts.get() {
            self.flush().await;
        }
    }

    async fn flush(&mut self) {
        self.batch_due = None;
        if self.pending.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.pending);
        let alerts: Vec<Arc<Alert>> = batch.iter().map(|p| p.alert.clone()).collect();
        let delivered = self.deliver(&alerts).await;
        let summaries = batch.iter().filter(|p| p.summary).count() as u64;
        self.counters.settle(batch.len() as u64 - summaries, summaries, delivered);
    }

    /// Sends `alerts`, retrying transient failures; whether they were delivered.
    async fn deliver(&mut self, alerts: &[Arc<Alert>]) -> bool {
        let attempts = self.retry.attempts.get();
        for attempt in 1..=attempts {
            let outcome = match tokio::time::timeout(self.timeout, self.sink.send(alerts)).await {
                Ok(outcome) => outcome,
                Err(_) => Err(SendError::retry(format!("no answer within {}", format_duration(self.timeout)))),
            };
            let (reason, wait) = match outcome {
                Ok(()) => {
                    self.failures.recovered(&self.name);
                    return true;
                }
                Err(SendError::Permanent(reason)) => (reason, None),
                Err(SendError::Retry { reason, after }) => {
                    // The peer's wait, but never past max_backoff: a peer must not mute an
                    // output for as long as it likes.
                    let wait = match after {
                        Some(after) => after.min(self.retry.max_backoff),
                        None => backoff(&self.retry, attempt, self.jitter.next()),
                    };
                    (reason, Some(wait))
                }
            };
            match wait {
                Some(wait) if attempt < attempts => {
                    log::debug!("output `{}`: attempt {attempt} failed ({reason}); retrying in {wait:?}", self.name);
                    self.counters.add_retry();
                    tokio::time::sleep(wait).await;
                }
                _ => {
                    self.failures.failed(&self.name, alerts.len(), attempt, &reason);
                    return false;
                }
            }
        }
        false
    }
}

/// Resolves at `deadline`, or never.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The wait before retry number `retry` (1 for the first): the initial backoff doubled at each
/// retry, capped, then scaled by `unit` in [0, 1) into its upper half, so outputs that failed
/// together do not retry in lockstep.
pub(crate) fn backoff(policy: &RetryPolicy, retry: u32, unit: f64) -> Duration {
    let doubled = policy.initial_backoff.saturating_mul(1u32.checked_shl(retry.saturating_sub(1)).unwrap_or(u32::MAX));
    let capped = doubled.min(policy.max_backoff);
    capped.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
}

/// A small random source for jitter (xorshift, seeded from the standard library's random keys).
struct Jitter(u64);

impl Jitter {
    fn new() -> Self {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(0x9e37_79b9_7f4a_7c15);
        Jitter(hasher.finish() | 1)
    }

    /// A number in [0, 1).
    fn next(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Logs delivery failures without flooding: the first one, then at most one line a minute
/// with the count of those in between, and a line when deliveries work again.
#[derive(Default)]
struct FailureLog {
    last_logged: Option<Instant>,
    unlogged: u64,
}

const FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(60);

impl FailureLog {
    fn failed(&mut self, name: &str, alerts: usize, attempts: u32, reason: &str) {
        let now = Instant::now();
        if self.last_logged.is_some_and(|t| now.duration_since(t) < FAILURE_LOG_INTERVAL) {
            self.unlogged += 1;
            return;
        }
        let earlier = match std::mem::take(&mut self.unlogged) {
            0 => String::new(),
            n => format!(" ({n} more failed deliveries since the last report)"),
        };
        log::warn!("output `{name}`: {alerts} alert(s) not delivered after {attempts} attempt(s): {reason}{earlier}");
        self.last_logged = Some(now);
    }

    fn recovered(&mut self, name: &str) {
        if self.last_logged.take().is_some() {
            log::info!("output `{name}` delivers again");
            self.unlogged = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_bounds_and_caps() {
        let policy = RetryPolicy {
            attempts: std::num::NonZeroU32::new(10).unwrap(),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        };
        let mut jitter = Jitter::new();
        for retry in 1..40 {
            let ceiling =
                Duration::from_millis(100u64.saturating_mul(1 << (retry - 1).min(20))).min(policy.max_backoff);
            for _ in 0..100 {
                let wait = backoff(&policy, retry, jitter.next());
                assert!(
                    wait >= ceiling / 2 && wait <= ceiling,
                    "retry {retry}: {wait:?} outside {ceiling:?}/2..{ceiling:?}"
                );
            }
        }
        assert_eq!(backoff(&policy, 1, 0.0), Duration::from_millis(50));
        assert_eq!(backoff(&policy, 3, 0.0), Duration::from_millis(200));
        assert_eq!(backoff(&policy, 60, 0.0), Duration::from_millis(500));
    }

    #[test]
    fn jitter_spreads_over_the_unit_interval() {
        let mut jitter = Jitter::new();
        let samples: Vec<f64> = (0..1000).map(|_| jitter.next()).collect();
        assert!(samples.iter().all(|x| (0.0..1.0).contains(x)));
        assert!(samples.iter().any(|x| *x < 0.1) && samples.iter().any(|x| *x > 0.9));
    }
}
