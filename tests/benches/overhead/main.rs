//! The overhead benchmark `cargo xtask bench` runs (as root): what the sensor costs a node
//! and how it holds up, printed as one markdown report on stdout and written to
//! `target/bench/latest.md`. Progress goes to stderr; every figure is measured, never
//! asserted.
//!
//! 1. Cost: getpid, openat+close, fork+exec and connect loops pinned to CPU 0 with nothing
//!    attached, the empty `tp_btf` program, `sensor run` with the built-in rules and with
//!    Falco's stable rules, and bpftrace counting syscalls per comm; alternating rounds,
//!    medians (min–max) of per-round ratios to nothing attached.
//! 2. Storms: one loop per CPU for 10 s under the sensor, with each rule set: syscalls
//!    generated; events captured, prefiltered, evaluated and lost (its metrics); its CPU.
//! 3. Alert latency from a syscall to its alert line on the sensor's stdout, p50/p99.
//! 4. The sensor's memory after 10,000 processes and after 200 containers.
//!
//! `--quick` runs a smaller version of each (a minute or two) for development.

mod bpfstats;
mod columns;
mod cost;
mod latency;
mod load;
mod memory;
mod report;
mod sensor;
mod storms;

use std::{path::PathBuf, time::Duration};

use load::Loop;
use sensor::{Rules, Sensor};

/// How much of each measurement to do.
pub struct Plan {
    /// `full` or `quick`.
    pub name: &'static str,
    /// Alternating rounds of the cost table.
    pub rounds: usize,
    /// Runs of each loop per round and configuration; the fastest counts.
    pub repeats: usize,
    /// Divides each loop's iterations ([`Loop::cost_iters`]).
    pub scale: u64,
    /// How long each storm lasts.
    pub storm: Duration,
    /// Alerts whose latency is measured, per rule set.
    pub alerts: u64,
    /// Time between two alerting syscalls.
    pub alert_spacing: Duration,
    /// Short processes for the memory measurement.
    pub processes: u64,
    /// Containers for the memory measurement.
    pub containers: usize,
}

impl Plan {
    /// The full bench (under 15 minutes on 2 cores).
    const FULL: Plan = Plan {
        name: "full",
        rounds: 5,
        repeats: 3,
        scale: 1,
        storm: Duration::from_secs(10),
        alerts: 1_000,
        alert_spacing: Duration::from_millis(5),
        processes: 10_000,
        containers: 200,
    };

    /// A quick pass through everything, for development.
    const QUICK: Plan = Plan {
        name: "quick",
        rounds: 2,
        repeats: 1,
        scale: 10,
        storm: Duration::from_secs(2),
        alerts: 100,
        alert_spacing: Duration::from_millis(5),
        processes: 1_000,
        containers: 10,
    };

    /// Iterations of `lp` per cost measurement.
    pub fn iters(&self, lp: Loop) -> u64 {
        (lp.cost_iters() / self.scale).max(1)
    }
}

/// The target directory: `target/release/deps/<this bench>` is three levels below it.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the bench's own path");
    exe.ancestors().nth(3).expect("target/<profile>/deps/<bench>").to_path_buf()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        return; // `cargo bench -- --list` asks harness-less benches for nothing.
    }
    sensor_tests::require_root();
    let plan = if args.iter().any(|a| a == "--quick") { &Plan::QUICK } else { &Plan::FULL };
    let out_dir = target_dir().join("bench");
    let logs = out_dir.join("logs");
    // This run's logs only (each sensor run appends to its configuration's log).
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&logs).expect("creating target/bench/logs");
    let mut report = report::Report::begin(plan);

    let cost = cost::measure(plan, &logs);
    let (mut storms, mut latencies) = (Vec::new(), Vec::new());
    for rules in Rules::ALL {
        let log = logs.join(format!("storms-{}.log", if rules == Rules::Builtin { "builtin" } else { "falco" }));
        match Sensor::start(rules, &[], &log) {
            Ok(sensor) => {
                std::thread::sleep(Duration::from_secs(2));
                storms.extend(storms::run_all(plan, &sensor, rules));
                latencies.push(latency::measure(plan, &sensor, rules));
            }
            Err(why) => {
                storms.push(Err(format!("{}: {why}", rules.label())));
                latencies.push(Err(format!("{}: {why}", rules.label())));
            }
        }
    }
    let mut memory = memory::processes(plan, &logs);
    memory.extend(memory::containers(plan, &logs));

    report.cost(&cost);
    report.storms(&storms);
    report.latency(&latencies);
    report.memory(&memory);
    let text = report.finish();
    print!("{text}");
    let latest = out_dir.join("latest.md");
    std::fs::write(&latest, &text).expect("writing target/bench/latest.md");
    eprintln!("bench: written to {} (logs in {})", latest.display(), logs.display());
}
