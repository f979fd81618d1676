//! The alerts between the workers and the outputs: a queue bounded in bytes, so that a
//! program matching a rule a million times cannot grow the sensor's memory before rate
//! limiting applies; and no rule may hold more than a quarter of it, so that such a flood
//! leaves room for every other rule's alerts. An alert that does not fit is dropped and
//! counted, never waited for: a worker never stalls on a slow output stage. The queue is
//! emptied into the outputs by a task of its own ([`AlertReceiver::publish_to`]), so
//! nothing else the sensor waits for (a busy worker) holds alerts back.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
};

use tokio::{sync::mpsc, task::JoinHandle};

use crate::{
    outputs::OutputStage,
    rules::{Alert, Priority, Value},
};

/// Bytes of alerts queued between the workers and the outputs, by default.
pub const DEFAULT_QUEUE_BYTES: usize = 16 << 20;

/// What sender and receiver share.
#[derive(Debug)]
struct Shared {
    /// Approximate bytes of the alerts queued ([`approx_bytes`]), in all and by rule.
    queued: Mutex<Queued>,
    limit: usize,
    dropped: AtomicU64,
}

#[derive(Debug, Default)]
struct Queued {
    total: usize,
    by_rule: HashMap<String, usize>,
}

impl Shared {
    fn queued(&self) -> std::sync::MutexGuard<'_, Queued> {
        lock(&self.queued)
    }

    /// Whether `q` has room for `bytes` more of `rule`: in all, and in the rule's share.
    fn fits(&self, q: &Queued, rule: &str, bytes: usize) -> bool {
        let held = q.by_rule.get(rule).copied().unwrap_or(0);
        q.total + bytes <= self.limit && held + bytes <= self.limit / 4
    }

    /// Takes room for `bytes` of `rule`, if the queue and the rule's share have it.
    fn reserve(&self, rule: &str, bytes: usize) -> bool {
        let mut q = self.queued();
        if !self.fits(&q, rule, bytes) {
            return false;
        }
        q.total += bytes;
        *q.by_rule.entry(rule.to_owned()).or_default() += bytes;
        true
    }

    /// Gives back the room of `bytes` of `rule`.
    fn release(&self, rule: &str, bytes: usize) {
        let mut q = self.queued();
        q.total -= bytes;
        if let Some(held) = q.by_rule.get_mut(rule) {
            *held -= bytes;
            if *held == 0 {
                q.by_rule.remove(rule);
            }
        }
    }
}

/// The workers' end.
#[derive(Clone, Debug)]
pub struct AlertSender {
    tx: mpsc::UnboundedSender<(Alert, usize)>,
    shared: Arc<Shared>,
}

/// The outputs' end.
#[derive(Debug)]
pub struct AlertReceiver {
    rx: mpsc::UnboundedReceiver<(Alert, usize)>,
    shared: Arc<Shared>,
}

/// A queue holding at most `limit` bytes of alerts.
pub fn alert_queue(limit: usize) -> (AlertSender, AlertReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared { queued: Mutex::default(), limit, dropped: AtomicU64::new(0) });
    (AlertSender { tx, shared: shared.clone() }, AlertReceiver { rx, shared })
}

/// The memory an alert holds, near enough to bound a queue of them.
fn approx_bytes(a: &Alert) -> usize {
    fn value(v: &Value<'_>) -> usize {
        match v {
            Value::Str(s) => s.len(),
            Value::Bytes(b) => b.len(),
            Value::List(l) => l.iter().map(value).sum::<usize>() + 8 * l.len(),
            Value::Int(_) | Value::UInt(_) | Value::Bool(_) | Value::Ip(_) => 0,
        }
    }
    let strings = a.rule.len() + a.source.len() + a.hostname.len() + a.message.len();
    let tags: usize = a.tags.iter().map(|t| t.len() + 24).sum();
    let fields: usize = a.fields.iter().map(|(k, v)| k.len() + v.as_ref().map_or(0, value) + 64).sum();
    size_of::<Alert>() + strings + tags + fields
}

impl AlertSender {
    /// Whether an alert of `rule` may still fit: if not, it is counted as dropped now, and
    /// need not be rendered.
    pub fn admits(&self, rule: &str) -> bool {
        let fits = self.shared.fits(&self.shared.queued(), rule, size_of::<Alert>());
        if !fits {
            self.shared.dropped.fetch_add(1, Relaxed);
        }
        fits
    }

    /// Queues `alert`, unless that would pass the bound or its rule's share (or the outputs
    /// have stopped): then it is dropped and counted. Returns whether it was queued.
    pub fn send(&self, alert: Alert) -> bool {
        let bytes = approx_bytes(&alert);
        if self.shared.reserve(&alert.rule, bytes) {
            match self.tx.send((alert, bytes)) {
                Ok(()) => return true,
                Err(mpsc::error::SendError((alert, bytes))) => self.shared.release(&alert.rule, bytes),
            }
        }
        self.shared.dropped.fetch_add(1, Relaxed);
        false
    }
}

impl AlertReceiver {
    /// The next alert; `None` once every sender is gone and the queue is empty.
    async fn recv(&mut self) -> Option<Alert> {
        let (alert, bytes) = self.rx.recv().await?;
        self.shared.release(&alert.rule, bytes);
        Some(alert)
    }

    /// The next alert if one is queued.
    #[cfg(test)]
    pub fn try_recv(&mut self) -> Option<Alert> {
        let (alert, bytes) = self.rx.try_recv().ok()?;
        self.shared.release(&alert.rule, bytes);
        Some(alert)
    }

    /// Alerts dropped because the queue was full.
    #[cfg(test)]
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Relaxed)
    }

    /// Hands every alert to `stage` as it arrives, on a task of the current runtime,
    /// counting them by rule, until every sender is gone.
    pub fn publish_to(mut self, stage: Arc<OutputStage>) -> Publisher {
        let matches = Arc::new(Mutex::new(Matches::new()));
        let shared = self.shared.clone();
        let counts = matches.clone();
        let task = tokio::spawn(async move {
            while let Some(alert) = self.recv().await {
                lock(&counts)
                    .entry((alert.rule.clone(), alert.priority))
                    .or_insert_with(|| RuleMatches {
                        alerts: 0,
                        source: alert.source.clone(),
                        tags: alert.tags.clone(),
                    })
                    .alerts += 1;
                stage.publish(alert);
            }
        });
        Publisher { shared, matches, task }
    }
}

/// Alerts handed to the outputs, by rule and priority.
pub type Matches = HashMap<(String, Priority), RuleMatches>;

/// The alerts of one rule (at one priority): how many, and the rule's source and tags
/// (which Falco's metric labels carry).
#[derive(Clone, Debug, PartialEq)]
pub struct RuleMatches {
    pub alerts: u64,
    pub source: String,
    pub tags: Arc<[String]>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The task emptying the queue into the outputs ([`AlertReceiver::publish_to`]).
#[derive(Debug)]
pub struct Publisher {
    shared: Arc<Shared>,
    matches: Arc<Mutex<Matches>>,
    task: JoinHandle<()>,
}

impl Publisher {
    /// Alerts published so far, by rule and priority.
    pub fn matches(&self) -> Matches {
        lock(&self.matches).clone()
    }

    /// Alerts dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Relaxed)
    }

    /// Bytes queued now.
    pub fn queued_bytes(&self) -> usize {
        self.shared.queued().total
    }

    /// Waits until every sender is gone and what they queued is published; returns every
    /// alert published, by rule and priority.
    pub async fn finish(self) -> Matches {
        if let Err(e) = self.task.await {
            log::error!("the alert publisher stopped: {e}");
        }
        std::mem::take(&mut *lock(&self.matches))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(message: &str) -> Alert {
        alert_of("r", message)
    }

    fn alert_of(rule: &str, message: &str) -> Alert {
        Alert {
            time_ns: 0,
            rule: rule.into(),
            priority: Priority::Warning,
            source: "syscall".into(),
            hostname: "h".into(),
            message: message.into(),
            tags: vec![].into(),
            fields: vec![("fd.name".into(), Some(Value::Str("/etc/shadow".into())))],
        }
    }

    #[tokio::test]
    async fn holds_alerts_up_to_its_bytes_and_counts_the_rest() {
        let one = approx_bytes(&alert(&"x".repeat(1000)));
        let (tx, mut rx) = alert_queue(4 * 3 * one);
        let sent = (0..10).filter(|_| tx.send(alert(&"x".repeat(1000)))).count();
        assert_eq!((sent, rx.dropped()), (3, 7));
        assert_eq!(rx.shared.queued().total, 3 * one, "one rule holds at most a quarter");
        // Room again once read.
        assert!(rx.recv().await.is_some());
        assert!(tx.send(alert(&"x".repeat(1000))));
        assert!(!tx.send(alert(&"x".repeat(1000))));
        assert_eq!(rx.dropped(), 8);
        while rx.try_recv().is_some() {}
        assert_eq!(rx.shared.queued().total, 0);
    }

    #[tokio::test]
    async fn a_stopped_receiver_counts_what_it_missed() {
        let (tx, rx) = alert_queue(1 << 20);
        let shared = rx.shared.clone();
        drop(rx);
        assert!(!tx.send(alert("late")));
        assert_eq!((shared.dropped.load(Relaxed), shared.queued().total), (1, 0));
    }

    #[tokio::test]
    async fn a_flooding_rule_leaves_room_for_the_others() {
        let one = approx_bytes(&alert_of("flood", "x"));
        let (tx, mut rx) = alert_queue(8 * one);
        assert_eq!((0..100).filter(|_| tx.send(alert_of("flood", "x"))).count(), 2);
        assert!(!tx.admits("flood"), "the flood's next alert need not be rendered");
        assert!(tx.admits("other"));
        assert!(tx.send(alert_of("other", "x")), "another rule still has its share");
        assert_eq!(rx.dropped(), 99, "refused before rendering counts as dropped");
        let rules: Vec<String> = std::iter::from_fn(|| rx.try_recv()).map(|a| a.rule).collect();
        assert_eq!(rules, ["flood", "flood", "other"]);
        assert!(rx.shared.queued().by_rule.is_empty());
    }
}
