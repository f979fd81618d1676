//! The stage's behaviour with a scripted sink, on tokio's paused clock: waits are virtual, so
//! the tests check backoff and windows exactly without taking that long.

use std::{
    collections::VecDeque,
    num::{NonZeroU32, NonZeroUsize},
};

use tokio::time::Instant;

use super::*;
use crate::{
    outputs::{
        SendError,
        config::{BatchConfig, NameFilter, QueueConfig, RateLimit, RetryPolicy},
    },
    rules::Value,
};

/// What the scripted sink does with one call.
#[derive(Clone, Copy)]
enum Step {
    Deliver,
    /// Deliver after a (virtual) wait.
    DeliverAfter(Duration),
    Retry(Option<Duration>),
    Reject,
    /// Never answer.
    Hang,
}

/// One call to the sink.
struct Call {
    at: Instant,
    messages: Vec<String>,
}

/// A sink that follows a script (then delivers) and records every call.
struct ScriptedSink {
    steps: VecDeque<Step>,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Sink for ScriptedSink {
    async fn send(&mut self, alerts: &[Arc<Alert>]) -> Result<(), SendError> {
        let messages = alerts.iter().map(|a| a.message.clone()).collect();
        self.calls.lock().unwrap().push(Call { at: Instant::now(), messages });
        match self.steps.pop_front().unwrap_or(Step::Deliver) {
            Step::Deliver => Ok(()),
            Step::DeliverAfter(wait) => {
                tokio::time::sleep(wait).await;
                Ok(())
            }
            Step::Retry(after) => Err(SendError::Retry { reason: "scripted".into(), after }),
            Step::Reject => Err(SendError::Permanent("scripted".into())),
            Step::Hang => std::future::pending().await,
        }
    }
}

struct Harness {
    stage: OutputStage,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Harness {
    fn new(options: OutputOptions, steps: &[Step]) -> Self {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let sink = ScriptedSink { steps: steps.iter().copied().collect(), calls: calls.clone() };
        Harness { stage: OutputStage { outputs: vec![launch("test", &options, sink)], notices: vec![] }, calls }
    }

    /// Lets the output's task run until the sink has had `n` calls.
    async fn until_calls(&self, n: usize) {
        while self.calls.lock().unwrap().len() < n {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    fn delivered(&self) -> Vec<Vec<String>> {
        self.calls.lock().unwrap().iter().map(|c| c.messages.clone()).collect()
    }

    fn call_times(&self) -> Vec<Instant> {
        self.calls.lock().unwrap().iter().map(|c| c.at).collect()
    }

    async fn finish(self, bound: Duration) -> (OutputCounters, Vec<Vec<String>>, Vec<Instant>) {
        let Harness { stage, calls } = self;
        let counters = stage.shutdown(bound).await.remove(0);
        assert_adds_up(&counters);
        let calls = calls.lock().unwrap();
        (counters, calls.iter().map(|c| c.messages.clone()).collect(), calls.iter().map(|c| c.at).collect())
    }
}

fn assert_adds_up(c: &OutputCounters) {
    assert_eq!(c.produced, c.filtered + c.sent + c.failed + c.dropped + c.suppressed, "{c}");
    assert_eq!(c.queue_depth, 0, "{c}");
}

fn alert(message: &str) -> Alert {
    alert_with("Rule", Priority::Warning, &[], "c1", message)
}

fn alert_with(rule: &str, priority: Priority, tags: &[&str], container: &str, message: &str) -> Alert {
    Alert {
        time_ns: 0,
        rule: rule.into(),
        priority,
        source: "syscall".into(),
        hostname: "h".into(),
        message: message.into(),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        fields: vec![("container.id".into(), Some(Value::Str(container.to_owned().into())))],
    }
}

fn retry(attempts: u32, initial_ms: u64) -> RetryPolicy {
    RetryPolicy {
        attempts: NonZeroU32::new(attempts).unwrap(),
        initial_backoff: Duration::from_millis(initial_ms),
        max_backoff: Duration::from_secs(30),
    }
}

fn queue(capacity: usize, overflow: Overflow) -> QueueConfig {
    QueueConfig { capacity: NonZeroUsize::new(capacity).unwrap(), overflow }
}

const BOUND: Duration = Duration::from_secs(3600);

#[tokio::test(start_paused = true)]
async fn filters_by_priority_rules_and_tags_before_queueing() {
    let options = OutputOptions {
        min_priority: Priority::Warning,
        rules: NameFilter { include: vec![], exclude: vec!["Noisy".into()] },
        tags: NameFilter { include: vec!["container".into(), "network".into()], exclude: vec!["test".into()] },
        ..OutputOptions::default()
    };
    let h = Harness::new(options, &[]);
    for (rule, priority, tags, message) in [
        ("Shell", Priority::Critical, &["container"][..], "severe, tagged"),
        ("Shell", Priority::Warning, &["network", "x"][..], "at the minimum"),
        ("Shell", Priority::Notice, &["container"][..], "not severe enough"),
        ("Noisy", Priority::Critical, &["container"][..], "excluded rule"),
        ("Shell", Priority::Critical, &["other"][..], "no included tag"),
        ("Shell", Priority::Critical, &["container", "test"][..], "excluded tag"),
    ] {
        h.stage.publish(alert_with(rule, priority, tags, "c1", message));
    }
    let (counters, delivered, _) = h.finish(BOUND).await;
    assert_eq!(delivered, [["severe, tagged"], ["at the minimum"]]);
    assert_eq!((counters.produced, counters.filtered, counters.sent), (6, 4, 2));
}

#[tokio::test(start_paused = true)]
async fn retries_transient_failures_with_growing_jittered_backoff() {
    let options = OutputOptions { retry: retry(5, 1000), ..OutputOptions::default() };
    let h = Harness::new(options, &[Step::Retry(None), Step::Retry(None), Step::Deliver]);
    h.stage.publish(alert("a"));
    let (counters, delivered, at) = h.finish(BOUND).await;
    assert_eq!(delivered.len(), 3);
    assert_eq!((counters.sent, counters.retried, counters.failed), (1, 2, 0));
    let (first, second) = (at[1] - at[0], at[2] - at[1]);
    assert!(first >= Duration::from_millis(500) && first <= Duration::from_secs(1), "{first:?}");
    assert!(second >= Duration::from_secs(1) && second <= Duration::from_secs(2), "{second:?}");
}

#[tokio::test(start_paused = true)]
async fn waits_as_long_as_the_peer_asks() {
    let options = OutputOptions { retry: retry(5, 10), ..OutputOptions::default() };
    let h = Harness::new(options, &[Step::Retry(Some(Duration::from_secs(7)))]);
    h.stage.publish(alert("a"));
    let (counters, _, at) = h.finish(BOUND).await;
    assert_eq!(at[1] - at[0], Duration::from_secs(7));
    assert_eq!((counters.sent, counters.retried), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_peer_cannot_ask_for_a_wait_past_max_backoff() {
    let options = OutputOptions { retry: retry(5, 10), ..OutputOptions::default() };
    let h = Harness::new(options, &[Step::Retry(Some(Duration::from_secs(999_999)))]);
    h.stage.publish(alert("a"));
    let (counters, _, at) = h.finish(BOUND).await;
    assert_eq!(at[1] - at[0], Duration::from_secs(30), "the retry policy's max_backoff");
    assert_eq!((counters.sent, counters.retried), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_permanent_failure_is_not_retried() {
    let h = Harness::new(OutputOptions::default(), &[Step::Reject]);
    h.stage.publish(alert("a"));
    h.stage.publish(alert("b"));
    let (counters, delivered, _) = h.finish(BOUND).await;
    assert_eq!(delivered, [["a"], ["b"]]);
    assert_eq!((counters.sent, counters.failed, counters.retried), (1, 1, 0));
}

#[tokio::test(start_paused = true)]
async fn gives_up_after_the_configured_attempts() {
    let options = OutputOptions { retry: retry(3, 100), ..OutputOptions::default() };
    let h = Harness::new(options, &[Step::Retry(None); 3]);
    h.stage.publish(alert("a"));
    let (counters, delivered, _) = h.finish(BOUND).await;
    assert_eq!(delivered.len(), 3);
    assert_eq!((counters.sent, counters.failed, counters.retried), (0, 1, 2));
}

#[tokio::test(start_paused = true)]
async fn an_attempt_that_hangs_times_out_and_is_retried() {
    let options = OutputOptions { timeout: Duration::from_secs(2), retry: retry(2, 100), ..OutputOptions::default() };
    let h = Harness::new(options, &[Step::Hang]);
    h.stage.publish(alert("a"));
    let (counters, _, at) = h.finish(BOUND).await;
    assert!(at[1] - at[0] >= Duration::from_secs(2));
    assert_eq!((counters.sent, counters.retried), (1, 1));
}

/// Publishes `a` and waits until the sink is busy with it, then publishes `b`..`e` into a
/// queue of two.
async fn overflow(policy: Overflow) -> (OutputCounters, Vec<Vec<String>>) {
    let options = OutputOptions { queue: queue(2, policy), ..OutputOptions::default() };
    let h = Harness::new(options, &[Step::DeliverAfter(Duration::from_secs(10))]);
    h.stage.publish(alert("a"));
    h.until_calls(1).await;
    for m in ["b", "c", "d", "e"] {
        h.stage.publish(alert(m));
    }
    assert_eq!(h.stage.counters()[0].queue_depth, 2);
    let (counters, delivered, _) = h.finish(BOUND).await;
    (counters, delivered)
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_drops_the_oldest_by_default() {
    let (counters, delivered) = overflow(Overflow::DropOldest).await;
    assert_eq!(delivered, [["a"], ["d"], ["e"]]);
    assert_eq!((counters.sent, counters.dropped), (3, 2));
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_can_drop_the_newest() {
    let (counters, delivered) = overflow(Overflow::DropNewest).await;
    assert_eq!(delivered, [["a"], ["b"], ["c"]]);
    assert_eq!((counters.sent, counters.dropped), (3, 2));
}

#[tokio::test(start_paused = true)]
async fn rate_limit_suppresses_per_rule_and_container_and_summarises_when_the_window_ends() {
    let limit = RateLimit { alerts: NonZeroU32::new(3).unwrap(), per: Duration::from_secs(60) };
    let options = OutputOptions { rate_limit: Some(limit), ..OutputOptions::default() };
    let h = Harness::new(options, &[]);
    let start = Instant::now();
    for i in 0..10 {
        h.stage.publish(alert_with("Shell", Priority::Warning, &[], "c1", &format!("c1 #{i}")));
    }
    h.stage.publish(alert_with("Shell", Priority::Warning, &[], "c2", "c2 #0"));
    h.until_calls(4).await;
    assert_eq!(h.delivered(), [["c1 #0"], ["c1 #1"], ["c1 #2"], ["c2 #0"]]);
    // The summary comes when the window ends, not before.
    h.until_calls(5).await;
    assert_eq!(h.call_times()[4] - start, Duration::from_secs(60));
    let summary = &h.delivered()[4][0];
    assert!(summary.starts_with("7 similar alerts suppressed (rule=Shell container_id=c1 "), "{summary}");
    let (counters, delivered, _) = h.finish(BOUND).await;
    assert_eq!(delivered.len(), 5);
    assert_eq!((counters.produced, counters.sent, counters.suppressed, counters.summaries), (11, 4, 7, 1));
}

#[tokio::test(start_paused = true)]
async fn shutdown_ends_rate_limit_windows_early() {
    let limit = RateLimit { alerts: NonZeroU32::new(1).unwrap(), per: Duration::from_secs(3600) };
    let h = Harness::new(OutputOptions { rate_limit: Some(limit), ..OutputOptions::default() }, &[]);
    let start = Instant::now();
    for m in ["a", "b", "c"] {
        h.stage.publish(alert(m));
    }
    let (counters, delivered, at) = h.finish(BOUND).await;
    assert_eq!(delivered[0], ["a"]);
    assert!(delivered[1][0].starts_with("2 similar alerts suppressed"), "{delivered:?}");
    assert!(at[1] - start < Duration::from_secs(1));
    assert_eq!((counters.sent, counters.suppressed, counters.summaries), (1, 2, 1));
}

#[tokio::test(start_paused = true)]
async fn batches_wait_for_the_window_or_the_size() {
    let batch = BatchConfig { window: Duration::from_secs(5), max_alerts: NonZeroUsize::new(3).unwrap() };
    let h = Harness::new(OutputOptions { batch: Some(batch), ..OutputOptions::default() }, &[]);
    let start = Instant::now();
    for m in ["a", "b", "c", "d", "e"] {
        h.stage.publish(alert(m));
    }
    h.until_calls(2).await;
    assert_eq!(h.delivered(), [vec!["a", "b", "c"], vec!["d", "e"]]);
    let at = h.call_times();
    assert_eq!((at[0] - start, at[1] - start), (Duration::ZERO, Duration::from_secs(5)));
    let (counters, _, _) = h.finish(BOUND).await;
    assert_eq!(counters.sent, 5);
}

#[tokio::test(start_paused = true)]
async fn what_is_left_at_the_shutdown_bound_is_counted_as_dropped() {
    let options = OutputOptions { timeout: BOUND, ..OutputOptions::default() };
    let h = Harness::new(options, &[Step::Hang]);
    for m in ["a", "b", "c", "d", "e"] {
        h.stage.publish(alert(m));
    }
    h.until_calls(1).await;
    let start = Instant::now();
    let (counters, _, _) = h.finish(Duration::from_secs(2)).await;
    assert_eq!(Instant::now() - start, Duration::from_secs(2));
    assert_eq!((counters.sent, counters.dropped), (0, 5));
}

#[tokio::test(start_paused = true)]
async fn publishing_to_a_stuck_output_never_waits_and_counts_every_drop() {
    let options = OutputOptions { timeout: BOUND, queue: queue(5, Overflow::DropOldest), ..OutputOptions::default() };
    let h = Harness::new(options, &[Step::Hang]);
    h.stage.publish(alert("first"));
    h.until_calls(1).await;
    // No await in between: the output's task cannot run, and publishing must not need it to.
    for i in 0..10_000 {
        h.stage.publish(alert(&i.to_string()));
    }
    assert_eq!(h.stage.counters()[0].dropped, 10_000 - 5);
    let (counters, _, _) = h.finish(Duration::from_secs(1)).await;
    assert_eq!((counters.produced, counters.dropped, counters.sent), (10_001, 10_001, 0));
}

/// A rule flooding a full queue gives up its own alerts, never another rule's.
async fn flood_beside(policy: Overflow) -> Vec<Vec<String>> {
    let options = OutputOptions { queue: queue(3, policy), ..OutputOptions::default() };
    let h = Harness::new(options, &[Step::DeliverAfter(Duration::from_secs(10))]);
    h.stage.publish(alert("a"));
    h.until_calls(1).await;
    h.stage.publish(alert_with("other", Priority::Critical, &[], "", "lone"));
    for m in ["f1", "f2", "f3", "f4", "f5"] {
        h.stage.publish(alert(m));
    }
    let (counters, delivered, _) = h.finish(BOUND).await;
    assert_eq!(counters.dropped, 3);
    delivered
}

#[tokio::test(start_paused = true)]
async fn a_flooding_rule_does_not_push_out_another_rules_alert() {
    assert_eq!(flood_beside(Overflow::DropOldest).await, [["a"], ["lone"], ["f4"], ["f5"]]);
    assert_eq!(flood_beside(Overflow::DropNewest).await, [["a"], ["lone"], ["f1"], ["f2"]]);
}

#[tokio::test(start_paused = true)]
async fn another_rules_alert_waits_for_one_alert_of_a_flood_not_for_all_of_it() {
    let options = OutputOptions { queue: queue(1000, Overflow::DropOldest), ..OutputOptions::default() };
    let h = Harness::new(options, &[Step::DeliverAfter(Duration::from_secs(10))]);
    h.stage.publish(alert("a"));
    h.until_calls(1).await;
    for i in 0..500 {
        h.stage.publish(alert(&format!("f{i}")));
    }
    h.stage.publish(alert_with("other", Priority::Critical, &[], "", "lone"));
    h.stage.publish(alert_with("third", Priority::Critical, &[], "", "lone too"));
    let (counters, delivered, _) = h.finish(BOUND).await;
    let order: Vec<&str> = delivered.iter().take(5).map(|d| d[0].as_str()).collect();
    assert_eq!(order, ["a", "f0", "lone", "lone too", "f1"]);
    assert_eq!((counters.sent, counters.dropped), (503, 0));
    let flood: Vec<String> = delivered.iter().map(|d| d[0].clone()).filter(|m| m.starts_with('f')).collect();
    let in_order: Vec<String> = (0..500).map(|i| format!("f{i}")).collect();
    assert_eq!(flood, in_order, "a rule's own alerts keep their order");
}
