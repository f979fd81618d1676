//! Alert latency: alerts matched back to the syscalls that raised them.

/// How far an event's time may precede the time its loop took just before the syscall (the
/// sensor converts the kernel's boot-time clock to wall-clock time with an offset of its own).
const CLOCK_SLACK_NS: i64 = 1_000_000;

/// An alert line as read from the sensor's stdout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// The event's time (`evt.time`), ns since the epoch.
    pub event_ns: i64,
    /// When the line was read, ns since the epoch.
    pub read_ns: i64,
}

/// The latency of each syscall started at `starts_ns` (ascending, at least `spacing_ns`
/// apart) whose alert is among `received`: from the syscall's start to the alert's line,
/// in ns, sorted. An alert matches the last start at or before its event time (within
/// [`CLOCK_SLACK_NS`]) if that start is less than `spacing_ns` before it; each start counts once.
pub fn latencies(starts_ns: &[i64], received: &[Received], spacing_ns: i64) -> Vec<f64> {
    let mut matched = vec![false; starts_ns.len()];
    let mut out = Vec::new();
    for r in received {
        let Some(i) = starts_ns.partition_point(|&s| s <= r.event_ns + CLOCK_SLACK_NS).checked_sub(1) else {
            continue;
        };
        if r.event_ns - starts_ns[i] < spacing_ns && !matched[i] {
            matched[i] = true;
            out.push((r.read_ns - starts_ns[i]) as f64);
        }
    }
    out.sort_by(f64::total_cmp);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;

    fn rx(event_ns: i64, read_ns: i64) -> Received {
        Received { event_ns, read_ns }
    }

    #[test]
    fn matches_each_alert_to_its_syscall() {
        let starts = [100 * MS, 105 * MS, 110 * MS];
        let received = [
            rx(100 * MS + 20_000, 101 * MS), // 1 ms
            rx(110 * MS + 20_000, 113 * MS), // 3 ms
            rx(105 * MS - 10_000, 107 * MS), // event a little before its start (clock offset): 2 ms
            rx(110 * MS + 30_000, 114 * MS), // a second alert for the same syscall: ignored
            rx(90 * MS, 95 * MS),            // before every start
            rx(120 * MS, 121 * MS),          // long after the last one
        ];
        assert_eq!(latencies(&starts, &received, 5 * MS), [MS as f64, 2.0 * MS as f64, 3.0 * MS as f64]);
    }
}
