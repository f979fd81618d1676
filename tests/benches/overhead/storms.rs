//! Storms: one loop per CPU for a while under a running sensor; what it generated, what the
//! sensor captured, prefiltered, evaluated and lost (from its metrics), and its CPU time.

use std::time::{Duration, Instant};

use sensor_tests::bench::{markdown::Table, prom::Counts, stats::thousands};

use crate::{
    Plan,
    load::{self, Length, Loop},
    sensor::{Rules, Sensor},
};

/// The CPUs the storms' loops run on, one loop each.
const CPUS: [usize; 2] = [0, 1];
/// Longest the sensor may take to work through a storm's backlog.
pub const CATCH_UP: Duration = Duration::from_secs(30);

/// One storm's figures.
pub struct Storm {
    /// The loop each CPU ran.
    pub lp: Loop,
    /// The sensor's rules.
    pub rules: Rules,
    /// Syscalls the loops made (iterations × syscalls per iteration).
    pub generated: u64,
    /// The sensor's counters over the storm and its drain (the whole machine's events).
    pub counts: Counts,
    /// The sensor's CPU time from the storm's start until it caught up, over the storm's
    /// length, in % of one core.
    pub cpu_percent: f64,
    /// Whether the sensor worked through the storm's events within [`CATCH_UP`].
    pub caught_up: bool,
}

/// Runs each of [`Loop::STORMS`] on every CPU for `plan.storm` under `sensor`.
pub fn run_all(plan: &Plan, sensor: &Sensor, rules: Rules) -> Vec<Result<Storm, String>> {
    Loop::STORMS
        .into_iter()
        .map(|lp| {
            eprintln!("bench: storm, {}: {} on each CPU for {:?}", rules.label(), lp.label(), plan.storm);
            run(plan, sensor, rules, lp).map_err(|why| format!("{} ({}): {why}", lp.label(), rules.label()))
        })
        .collect()
}

/// One storm, once the sensor has caught up with what came before.
fn run(plan: &Plan, sensor: &Sensor, rules: Rules, lp: Loop) -> Result<Storm, String> {
    let (before, _) = sensor.catch_up(CATCH_UP)?;
    let before = before.counts();
    let cpu_before = sensor.cpu_seconds();
    let start = Instant::now();
    let outcomes = load::run_on_each(lp, &CPUS, Length::Time(plan.storm))?;
    let seconds = start.elapsed().as_secs_f64();
    let (after, caught_up) = sensor.catch_up(CATCH_UP)?;
    let cpu_percent = (sensor.cpu_seconds() - cpu_before) / seconds * 100.0;
    Ok(Storm {
        lp,
        rules,
        generated: outcomes.iter().map(load::Outcome::syscalls).sum(),
        counts: after.counts().since(before),
        cpu_percent,
        caught_up,
    })
}

/// The storms table.
pub fn table(plan: &Plan, storms: &[Result<Storm, String>]) -> Table {
    let mut table = Table::new([
        format!("storm ({:.0} s, one loop per CPU)", plan.storm.as_secs_f64()),
        "rules".into(),
        "generated".into(),
        "captured".into(),
        "prefiltered".into(),
        "evaluated".into(),
        "lost".into(),
        "sensor CPU".into(),
    ]);
    for storm in storms {
        match storm {
            Ok(s) => table.row([
                s.lp.label().to_owned(),
                s.rules.label().to_owned(),
                thousands(s.generated),
                thousands(s.counts.captured),
                s.counts.prefiltered.map_or("-".into(), thousands),
                match s.caught_up {
                    true => thousands(s.counts.evaluated),
                    false => format!("{} (still behind after {CATCH_UP:?})", thousands(s.counts.evaluated)),
                },
                thousands(s.counts.lost),
                format!("{:.0} %", s.cpu_percent),
            ]),
            Err(why) => table.row(["not measured".to_owned(), why.clone()]),
        }
    }
    table
}
