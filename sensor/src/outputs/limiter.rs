//! Rate limiting of one output: a token bucket per rule and container, and a summary alert
//! ("N similar alerts suppressed") when a window with suppressed alerts ends.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
};

use foldhash::fast::RandomState;
use tokio::time::Instant;

use super::config::{RateLimit, format_duration};
use crate::rules::{Alert, Value};

/// The field holding an alert's container, the second half of a bucket's key.
const CONTAINER_FIELD: &str = "container.id";

/// Rule name and container id (empty when the alert does not carry one).
type BucketKey = (String, String);

/// Token buckets and their suppression windows.
pub(crate) struct RateLimiter {
    limit: RateLimit,
    buckets: HashMap<BucketKey, Bucket, RandomState>,
    /// Open suppression windows by end time. Every window lasts `limit.per`, so windows
    /// opened later end later and a queue keeps them in order.
    windows: VecDeque<(Instant, BucketKey)>,
    /// Bucket count at which idle buckets are swept away, so containers that come and go
    /// do not grow the map forever.
    sweep_at: usize,
}

struct Bucket {
    tokens: f64,
    refilled: Instant,
    /// Alerts suppressed in the open window.
    suppressed: u64,
    window_open: bool,
    /// The last alert suppressed, which the summary describes.
    last: Option<Arc<Alert>>,
}

/// Buckets are swept when there are this many at least.
const MIN_SWEEP: usize = 1024;

impl RateLimiter {
    /// A limiter letting `limit.alerts` alerts through per `limit.per`, per rule and container.
    pub(crate) fn new(limit: RateLimit) -> Self {
        RateLimiter { limit, buckets: HashMap::default(), windows: VecDeque::new(), sweep_at: MIN_SWEEP }
    }

    fn capacity(&self) -> f64 {
        f64::from(self.limit.alerts.get())
    }

    fn refill(limit: RateLimit, bucket: &mut Bucket, now: Instant) {
        let elapsed = now.saturating_duration_since(bucket.refilled).as_secs_f64();
        let rate = f64::from(limit.alerts.get()) / limit.per.as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(f64::from(limit.alerts.get()));
        bucket.refilled = now;
    }

    /// Whether `alert` may go through now; if not, it is counted for its window's summary.
    pub(crate) fn admit(&mut self, alert: &Arc<Alert>, now: Instant) -> bool {
        if self.buckets.len() >= self.sweep_at {
            self.sweep(now);
        }
        let key = (alert.rule.clone(), container_of(alert));
        let capacity = self.capacity();
        let limit = self.limit;
        let bucket = self.buckets.entry(key).or_insert_with_key(|_| Bucket {
            tokens: capacity,
            refilled: now,
            suppressed: 0,
            window_open: false,
            last: None,
        });
        Self::refill(limit, bucket, now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return true;
        }
        bucket.suppressed += 1;
        bucket.last = Some(alert.clone());
        if !bucket.window_open {
            bucket.window_open = true;
            self.windows.push_back((now + limit.per, (alert.rule.clone(), container_of(alert))));
        }
        false
    }

    /// When the next window ends.
    pub(crate) fn next_window_end(&self) -> Option<Instant> {
        self.windows.front().map(|(end, _)| *end)
    }

    /// Ends the windows due by `now`; returns one summary alert per window that suppressed.
    pub(crate) fn end_windows(&mut self, now: Instant) -> Vec<Alert> {
        let mut summaries = Vec::new();
        while self.windows.front().is_some_and(|(end, _)| *end <= now) {
            let Some((_, key)) = self.windows.pop_front() else { break };
            summaries.extend(self.close_window(&key));
        }
        summaries
    }

    /// Ends every window now (at shutdown), so no count of suppressed alerts goes unsaid.
    pub(crate) fn end_all(&mut self) -> Vec<Alert> {
        let keys: Vec<BucketKey> = self.windows.drain(..).map(|(_, key)| key).collect();
        keys.iter().filter_map(|key| self.close_window(key)).collect()
    }

    fn close_window(&mut self, key: &BucketKey) -> Option<Alert> {
        let bucket = self.buckets.get_mut(key)?;
        bucket.window_open = false;
        let last = bucket.last.take()?;
        let suppressed = std::mem::take(&mut bucket.suppressed);
        (suppressed > 0).then(|| summary(&last, suppressed, self.limit))
    }

    /// Drops buckets that are full again and have no open window: they hold nothing a new
    /// bucket would not.
    fn sweep(&mut self, now: Instant) {
        let limit = self.limit;
        let capacity = self.capacity();
        self.buckets.retain(|_, bucket| {
            Self::refill(limit, bucket, now);
            bucket.window_open || bucket.tokens < capacity
        });
        self.sweep_at = (2 * self.buckets.len()).max(MIN_SWEEP);
    }

    #[cfg(test)]
    pub(crate) fn bucket_count(&self) -> usize {
        self.buckets.len()
    }
}

fn container_of(alert: &Alert) -> String {
    alert
        .fields
        .iter()
        .find(|(key, _)| **key == *CONTAINER_FIELD)
        .and_then(|(_, value)| value.as_ref())
        .map(ToString::to_string)
        .unwrap_or_default()
}

/// The alert standing for `suppressed` alerts like `last`: same rule, priority and tags, so
/// filters and readers treat it like them.
fn summary(last: &Alert, suppressed: u64, limit: RateLimit) -> Alert {
    let container = container_of(last);
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let container_text = if container.is_empty() { "<NA>".to_owned() } else { container.clone() };
    Alert {
        time_ns: now_ns,
        rule: last.rule.clone(),
        priority: last.priority,
        source: last.source.clone(),
        hostname: last.hostname.clone(),
        message: format!(
            "{suppressed} similar alerts suppressed (rule={} container_id={container_text} rate_limit={} per {})",
            last.rule,
            limit.alerts,
            format_duration(limit.per)
        ),
        tags: last.tags.clone(),
        fields: vec![
            (CONTAINER_FIELD.into(), (!container.is_empty()).then_some(Value::Str(container.into()))),
            ("suppressed".into(), Some(Value::UInt(suppressed))),
        ],
    }
}

#[cfg(test)]
mod tests {
    use std::{num::NonZeroU32, time::Duration};

    use super::*;
    use crate::rules::Priority;

    fn alert(rule: &str, container: &str) -> Arc<Alert> {
        Arc::new(Alert {
            time_ns: 0,
            rule: rule.into(),
            priority: Priority::Warning,
            source: "syscall".into(),
            hostname: "h".into(),
            message: "m".into(),
            tags: vec!["t".into()].into(),
            fields: vec![(CONTAINER_FIELD.into(), Some(Value::Str(container.to_owned().into())))],
        })
    }

    fn limiter(alerts: u32, per: Duration) -> RateLimiter {
        RateLimiter::new(RateLimit { alerts: NonZeroU32::new(alerts).unwrap(), per })
    }

    #[test]
    fn lets_a_burst_through_then_suppresses_and_summarises_when_the_window_ends() {
        let start = Instant::now();
        let mut limiter = limiter(3, Duration::from_secs(60));
        let a = alert("Shell", "c1");
        let admitted = (0..10).filter(|_| limiter.admit(&a, start)).count();
        assert_eq!(admitted, 3);
        assert_eq!(limiter.next_window_end(), Some(start + Duration::from_secs(60)));
        assert!(limiter.end_windows(start + Duration::from_secs(59)).is_empty());
        let summaries = limiter.end_windows(start + Duration::from_secs(60));
        assert_eq!(summaries.len(), 1);
        let summary = &summaries[0];
        assert!(
            summary.message.starts_with("7 similar alerts suppressed (rule=Shell container_id=c1"),
            "{}",
            summary.message
        );
        assert_eq!((summary.rule.as_str(), summary.priority), ("Shell", Priority::Warning));
        assert_eq!(summary.to_json()["output_fields"]["suppressed"], 7);
        assert_eq!(limiter.next_window_end(), None);
        // The bucket refilled during the minute: a full burst goes through again.
        let later = start + Duration::from_secs(60);
        assert_eq!((0..5).filter(|_| limiter.admit(&a, later)).count(), 3);
    }

    #[test]
    fn refills_one_token_per_period() {
        let start = Instant::now();
        let mut limiter = limiter(2, Duration::from_secs(10));
        let a = alert("Shell", "c1");
        assert!(limiter.admit(&a, start) && limiter.admit(&a, start));
        assert!(!limiter.admit(&a, start));
        let period = limiter.limit.per / limiter.limit.alerts.get();
        assert!(!limiter.admit(&a, start + period - Duration::from_millis(1)));
        assert!(limiter.admit(&a, start + period));
        assert!(!limiter.admit(&a, start + period));
    }

    #[test]
    fn rules_and_containers_have_their_own_buckets() {
        let now = Instant::now();
        let mut limiter = limiter(1, Duration::from_secs(60));
        for a in [alert("A", "c1"), alert("A", "c2"), alert("B", "c1")] {
            assert!(limiter.admit(&a, now));
            assert!(!limiter.admit(&a, now));
        }
        let mut messages: Vec<String> = limiter.end_all().into_iter().map(|s| s.message).collect();
        messages.sort();
        assert_eq!(messages.len(), 3);
        assert!(messages[0].starts_with("1 similar alerts suppressed (rule=A container_id=c1"));
        assert!(messages[1].starts_with("1 similar alerts suppressed (rule=A container_id=c2"));
        assert!(messages[2].starts_with("1 similar alerts suppressed (rule=B container_id=c1"));
    }

    #[test]
    fn idle_buckets_are_swept() {
        let start = Instant::now();
        let mut limiter = limiter(5, Duration::from_secs(1));
        for i in 0..MIN_SWEEP {
            assert!(limiter.admit(&alert("A", &i.to_string()), start));
        }
        assert_eq!(limiter.bucket_count(), MIN_SWEEP);
        // A second later every bucket is full again and goes at the next sweep.
        assert!(limiter.admit(&alert("A", "new"), start + Duration::from_secs(1)));
        assert_eq!(limiter.bucket_count(), 1);
    }
}
