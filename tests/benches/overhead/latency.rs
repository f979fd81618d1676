//! Alert latency: reads of `/etc/shadow` (which both rule sets alert on), spaced out, each
//! matched to its alert line on the sensor's stdout.

use std::time::{Duration, Instant};

use sensor_tests::bench::{
    latency::{Received, latencies},
    markdown::Table,
    stats::{duration_ns, percentile},
};

use crate::{
    Plan,
    load::{self, Length, Loop},
    sensor::{Rules, Sensor},
    storms::CATCH_UP,
};

/// How long alerts may still arrive after the last read.
const TAIL: Duration = Duration::from_secs(5);

/// Latencies of one rule set.
pub struct Latency {
    /// The sensor's rules.
    pub rules: Rules,
    /// Reads made.
    pub sent: usize,
    /// Each matched alert's latency, in ns, sorted.
    pub ns: Vec<f64>,
    /// The rules that fired for the reads.
    pub fired: Vec<String>,
}

/// Makes `plan.alerts` reads of `/etc/shadow`, `plan.alert_spacing` apart, under `sensor`.
pub fn measure(plan: &Plan, sensor: &Sensor, rules: Rules) -> Result<Latency, String> {
    eprintln!("bench: alert latency, {}: {} reads of /etc/shadow", rules.label(), plan.alerts);
    // Measured on a sensor that is not behind; what it printed before is not ours.
    sensor.catch_up(CATCH_UP)?;
    while sensor.lines().try_recv().is_ok() {}
    let spacing = plan.alert_spacing;
    let spacing_us = spacing.as_micros().to_string();
    let outcome = load::run(Loop::Alert, 0, Length::Iters(plan.alerts), &["--spacing-us", &spacing_us])?;
    let deadline = Instant::now() + TAIL;
    let (mut received, mut fired) = (Vec::new(), Vec::new());
    while received.len() < outcome.starts_ns.len() {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else { break };
        let Ok(line) = sensor.lines().recv_timeout(left) else { break };
        let Ok(alert) = serde_json::from_str::<serde_json::Value>(&line.text) else { continue };
        let fields = &alert["output_fields"];
        let ours = fields["proc.name"] == "loadgen" || alert["output"].as_str().is_some_and(|o| o.contains("loadgen"));
        let Some(event_ns) = fields["evt.time"].as_i64() else { continue };
        if !ours {
            continue;
        }
        let rule = alert["rule"].as_str().unwrap_or_default().to_owned();
        if !fired.contains(&rule) {
            fired.push(rule);
        }
        received.push(Received { event_ns, read_ns: line.read_ns });
    }
    let ns = latencies(&outcome.starts_ns, &received, spacing.as_nanos() as i64);
    Ok(Latency { rules, sent: outcome.starts_ns.len(), ns, fired })
}

/// The latency table.
pub fn table(rows: &[Result<Latency, String>]) -> Table {
    let mut table = Table::new(["rules (rule that fired)", "alerts received", "p50", "p99", "max"]);
    for row in rows {
        match row {
            Ok(l) => {
                let at = |p| percentile(&l.ns, p).map_or("-".into(), duration_ns);
                let fired = if l.fired.is_empty() { "no alert".into() } else { l.fired.join(", ") };
                table.row([
                    format!("{} ({fired})", l.rules.label()),
                    format!("{} of {}", l.ns.len(), l.sent),
                    at(50.0),
                    at(99.0),
                    at(100.0),
                ]);
            }
            Err(why) => table.row(["not measured".to_owned(), why.clone()]),
        }
    }
    table
}
