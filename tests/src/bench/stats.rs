//! Medians with their range, percentiles, and the number formats of the table.

/// A median with the smallest and largest sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// The median (the mean of the middle two for an even count).
    pub median: f64,
    /// The smallest sample.
    pub min: f64,
    /// The largest sample.
    pub max: f64,
}

impl Summary {
    /// The summary of `samples`; `None` when there are none.
    pub fn of(samples: &[f64]) -> Option<Self> {
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = match n {
            0 => return None,
            _ if n % 2 == 1 => sorted[n / 2],
            _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        };
        Some(Self { median, min: sorted[0], max: sorted[n - 1] })
    }
}

/// The nearest-rank `p`-th percentile (0 < p <= 100) of sorted `samples`.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len().max(1)) - 1).copied()
}

/// `12,345,678`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// The unit a duration of `ns` reads best in: its size in ns, its symbol, its decimals.
fn unit(ns: f64) -> (f64, &'static str, usize) {
    match ns {
        n if n < 1e3 => (1.0, "ns", 0),
        n if n < 1e4 => (1e3, "µs", 1),
        n if n < 1e6 => (1e3, "µs", 0),
        n if n < 1e7 => (1e6, "ms", 2),
        _ => (1e6, "ms", 1),
    }
}

/// A duration given in ns, in the unit that reads best: `63 ns`, `1.8 µs`, `421 µs`, `2.10 ms`.
pub fn duration_ns(ns: f64) -> String {
    let (size, symbol, decimals) = unit(ns);
    format!("{:.decimals$} {symbol}", ns / size)
}

/// A summary of durations in ns, in its median's unit: `63 ns (60–71)`.
pub fn duration_summary(s: Summary) -> String {
    let (size, symbol, decimals) = unit(s.median);
    format!("{:.decimals$} {symbol} ({:.decimals$}–{:.decimals$})", s.median / size, s.min / size, s.max / size)
}

/// KiB as MB (10^6 bytes, as the issue states its memory goal).
pub fn megabytes(kib: u64) -> String {
    format!("{:.1} MB", kib as f64 * 1024.0 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_ranges() {
        assert_eq!(Summary::of(&[3.0, 1.0, 2.0]), Some(Summary { median: 2.0, min: 1.0, max: 3.0 }));
        assert_eq!(Summary::of(&[4.0, 1.0, 2.0, 3.0]).map(|s| s.median), Some(2.5));
        assert_eq!(Summary::of(&[]), None);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v[..1], 99.0), Some(1.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn number_formats() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(duration_ns(63.2), "63 ns");
        assert_eq!(duration_ns(1_800.0), "1.8 µs");
        assert_eq!(duration_ns(421_000.0), "421 µs");
        assert_eq!(duration_ns(2_100_000.0), "2.10 ms");
        let s = Summary { median: 1_800.0, min: 1_650.0, max: 12_000.0 };
        assert_eq!(duration_summary(s), "1.8 µs (1.6–12.0)");
        assert_eq!(megabytes(30_000), "30.7 MB");
    }
}
