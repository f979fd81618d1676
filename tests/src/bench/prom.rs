//! The sensor's `/metrics` (Prometheus's classic text format) read back: the counters the
//! bench reports.

/// One scrape: every sample's metric name, labels and value.
#[derive(Clone, Debug, Default)]
pub struct Scrape {
    /// Metric name, labels (`{...}` as written, empty for none), value.
    samples: Vec<(String, String, f64)>,
}

/// The counters a storm reports, all totals since the sensor started.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counts {
    /// Records the kernel programs wrote (`sensor_kernel_events`, all CPUs).
    pub captured: u64,
    /// Records lost in the kernel (`sensor_kernel_lost_events`: a ring was full), all CPUs.
    pub lost: u64,
    /// Records the kernel held back under pressure by its policy (`sensor_kernel_shed_events`,
    /// `sensor_kernel_throttled_events`), all CPUs.
    pub held_back: u64,
    /// Events the rules evaluated (`sensor_evaluated_events`).
    pub evaluated: u64,
    /// Events dropped by in-kernel prefilters, when the sensor exports such a counter (any
    /// metric whose name holds `prefilter`); `None` when it does not.
    pub prefiltered: Option<u64>,
}

impl Counts {
    /// What happened between `before` and `self`.
    pub fn since(self, before: Counts) -> Counts {
        Counts {
            captured: self.captured.saturating_sub(before.captured),
            lost: self.lost.saturating_sub(before.lost),
            held_back: self.held_back.saturating_sub(before.held_back),
            evaluated: self.evaluated.saturating_sub(before.evaluated),
            prefiltered: self.prefiltered.map(|now| now.saturating_sub(before.prefiltered.unwrap_or(0))),
        }
    }
}

impl Scrape {
    /// Parses exposition text; comments and malformed lines are skipped.
    pub fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                let (name, labels) = series.split_once('{').map_or((series, ""), |(n, l)| (n, l));
                Some((name.trim().to_owned(), labels.to_owned(), value.trim().parse().ok()?))
            })
            .collect();
        Self { samples }
    }

    /// The sum of every sample of metric `name` (over its labels); `None` if it has none.
    pub fn sum(&self, name: &str) -> Option<f64> {
        self.sum_with(name, "")
    }

    /// The sum of the samples of metric `name` whose labels contain `label` (e.g.
    /// `syscall="openat"`); `None` if it has none.
    pub fn sum_with(&self, name: &str, label: &str) -> Option<f64> {
        let mut values =
            self.samples.iter().filter(|(n, l, _)| n == name && l.contains(label)).map(|(_, _, v)| v).peekable();
        values.peek()?;
        Some(values.sum())
    }

    /// Bytes written to the ring buffers and not yet read.
    pub fn pending_bytes(&self) -> u64 {
        self.sum("sensor_ring_buffer_pending_bytes").unwrap_or(0.0) as u64
    }

    /// Events the kernel wrote that the sensor has not decoded yet (at the snapshot's time):
    /// in its ring buffers or in the batch it is working through.
    pub fn backlog(&self) -> u64 {
        let c = self.counts();
        let undecodable = self.sum("sensor_undecodable_records_total").unwrap_or(0.0) as u64;
        c.captured.saturating_sub(c.evaluated + undecodable)
    }

    /// The counters of [`Counts`].
    pub fn counts(&self) -> Counts {
        let total = |name: &str| self.sum(name).unwrap_or(0.0) as u64;
        Counts {
            captured: total("sensor_kernel_events_total"),
            lost: total("sensor_kernel_lost_events_total"),
            held_back: total("sensor_kernel_shed_events_total") + total("sensor_kernel_throttled_events_total"),
            evaluated: total("sensor_evaluated_events_total"),
            prefiltered: self.prefiltered(),
        }
    }

    /// Events dropped by prefilters: the counter family whose name holds `prefilter`,
    /// summed over its labels (per syscall, per CPU); an `..._all` total when one exists.
    fn prefiltered(&self) -> Option<u64> {
        let counters = |all: bool| {
            self.samples
                .iter()
                .filter(|(n, _, _)| n.contains("prefilter") && n.ends_with("_total") && n.contains("_all") == all)
                .map(|(_, _, v)| *v as u64)
                .reduce(|a, b| a + b)
        };
        counters(true).or_else(|| counters(false))
    }
}

/// Events in flight below which the sensor counts as caught up (its metrics snapshot is
/// taken at one moment, with the machine's own events arriving).
const BACKLOG_TOLERANCE: u64 = 5_000;
/// Ring-buffer bytes unread below which the sensor counts as caught up.
const PENDING_TOLERANCE: u64 = 64 << 10;
/// CPU (in cores) below which a sensor whose metrics did not change is idle, not stuck.
const IDLE_CORES: f64 = 0.5;

/// Whether the sensor has worked through what a load left it, from two scrapes an interval
/// apart and the CPU it used in that interval (in cores). Its metrics snapshot is refreshed
/// by the loop that hands events to the workers, so a busy sensor can show an old snapshot:
/// one that did not change counts only if the sensor was idle meanwhile.
pub fn caught_up(previous: &Scrape, now: &Scrape, busy_cores: f64) -> bool {
    let settled = now.backlog() <= BACKLOG_TOLERANCE && now.pending_bytes() < PENDING_TOLERANCE;
    let refreshed = previous.counts() != now.counts();
    settled && (refreshed || busy_cores < IDLE_CORES)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# HELP sensor_kernel_events_total Records the kernel programs wrote.
# TYPE sensor_kernel_events_total counter
sensor_kernel_events_total{cpu=\"0\"} 1108
sensor_kernel_events_total{cpu=\"1\"} 236
sensor_kernel_lost_events_total{cpu=\"0\"} 3
sensor_kernel_lost_events_total{cpu=\"1\"} 4
sensor_kernel_lost_events_all_total 7
sensor_kernel_shed_events_total{cpu=\"0\"} 2
sensor_ring_buffer_pending_bytes{ring=\"0\"} 4096
sensor_evaluated_events_total 1344
process_cpu_seconds_total 1.73
";

    #[test]
    fn reads_the_counters() {
        let s = Scrape::parse(TEXT);
        let counts = Counts { captured: 1344, lost: 7, held_back: 2, evaluated: 1344, prefiltered: None };
        assert_eq!(s.counts(), counts);
        assert_eq!(s.pending_bytes(), 4096);
        assert_eq!(s.sum("process_cpu_seconds_total"), Some(1.73));
        assert_eq!(s.sum("nope"), None);
    }

    #[test]
    fn reads_a_prefilter_counter_when_there_is_one() {
        let per_syscall = format!(
            "{TEXT}sensor_kernel_prefiltered_events_total{{syscall=\"openat\"}} 10\n\
             sensor_kernel_prefiltered_events_total{{syscall=\"close\"}} 5\n"
        );
        assert_eq!(Scrape::parse(&per_syscall).counts().prefiltered, Some(15));
        let with_all = format!("{per_syscall}sensor_kernel_prefiltered_events_all_total 15\n");
        assert_eq!(Scrape::parse(&with_all).counts().prefiltered, Some(15));
    }

    #[test]
    fn backlog_and_catching_up() {
        let at = |captured: u64, evaluated: u64, pending: u64| {
            Scrape::parse(&format!(
                "sensor_kernel_events_total{{cpu=\"0\"}} {captured}\nsensor_evaluated_events_total {evaluated}\n\
                 sensor_undecodable_records_total 1\nsensor_ring_buffer_pending_bytes{{ring=\"0\"}} {pending}\n"
            ))
        };
        assert_eq!(at(100_000, 60_000, 0).backlog(), 39_999);
        // Behind: a backlog, or bytes in the ring.
        assert!(!caught_up(&at(90_000, 50_000, 0), &at(100_000, 60_000, 0), 1.0));
        assert!(!caught_up(&at(90_000, 90_000, 0), &at(100_000, 100_000, 1 << 20), 1.0));
        // A fresh snapshot with nothing in flight.
        assert!(caught_up(&at(90_000, 90_000, 0), &at(100_000, 99_000, 0), 1.0));
        // The same snapshot twice: idle, or too busy to refresh it.
        assert!(caught_up(&at(100_000, 99_000, 0), &at(100_000, 99_000, 0), 0.1));
        assert!(!caught_up(&at(100_000, 99_000, 0), &at(100_000, 99_000, 0), 1.0));
    }

    #[test]
    fn differences() {
        let before = Counts { captured: 10, lost: 1, held_back: 2, evaluated: 9, prefiltered: None };
        let after = Counts { captured: 25, lost: 1, held_back: 5, evaluated: 20, prefiltered: Some(4) };
        let since = Counts { captured: 15, lost: 0, held_back: 3, evaluated: 11, prefiltered: Some(4) };
        assert_eq!(after.since(before), since);
    }
}
