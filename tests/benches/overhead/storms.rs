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
/// How long the machine's background events are counted before each storm (the sensor's
/// metrics are refreshed every second, so the estimate is rough).
const BACKGROUND_WINDOW: Duration = Duration::from_secs(3);

/// One storm's figures.
pub struct Storm {
    /// The loop each CPU ran.
    pub lp: Loop,
    /// The sensor's rules.
    pub rules: Rules,
    /// Syscalls the loops made (iterations × syscalls per iteration).
    pub generated: u64,
    /// Of the events captured, about how many came from the rest of the machine.
    pub background: u64,
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
    let background_per_second = background(sensor)?;
    let (before, _) = sensor.catch_up(CATCH_UP)?;
    let (before, cpu_before) = (before.counts(), sensor.cpu_seconds());
    let start = Instant::now();
    let outcomes = load::run_on_each(lp, &CPUS, Length::Time(plan.storm))?;
    let seconds = start.elapsed().as_secs_f64();
    let (after, caught_up) = sensor.catch_up(CATCH_UP)?;
    let cpu_percent = (sensor.cpu_seconds() - cpu_before) / seconds * 100.0;
    Ok(Storm {
        lp,
        rules,
        generated: outcomes.iter().map(load::Outcome::syscalls).sum(),
        background: (background_per_second * start.elapsed().as_secs_f64()) as u64,
        counts: after.counts().since(before),
        cpu_percent,
        caught_up,
    })
}

/// The events per second the sensor captures from the rest of the machine (other builds,
/// daemons): measured over [`BACKGROUND_WINDOW`] with no load of ours, once it caught up.
fn background(sensor: &Sensor) -> Result<f64, String> {
    let (start, _) = sensor.catch_up(CATCH_UP)?;
    let since = Instant::now();
    std::thread::sleep(BACKGROUND_WINDOW);
    let end = sensor.scrape()?;
    Ok(end.counts().since(start.counts()).captured as f64 / since.elapsed().as_secs_f64())
}

/// The storms table.
pub fn table(plan: &Plan, storms: &[Result<Storm, String>]) -> Table {
    let mut table = Table::new([
        format!("storm ({:.0} s, one loop per CPU)", plan.storm.as_secs_f64()),
        "rules".into(),
        "generated".into(),
        "captured".into(),
        "of which background (est.)".into(),
        "prefiltered".into(),
        "evaluated".into(),
        "lost".into(),
        "held back".into(),
        "sensor CPU".into(),
    ]);
    for storm in storms {
        match storm {
            Ok(s) => table.row([
                s.lp.label().to_owned(),
                s.rules.label().to_owned(),
                thousands(s.generated),
                thousands(s.counts.captured),
                format!("≈{}", thousands(s.background)),
                s.counts.prefiltered.map_or("-".into(), thousands),
                match s.caught_up {
                    true => thousands(s.counts.evaluated),
                    false => format!("{} (still behind after {CATCH_UP:?})", thousands(s.counts.evaluated)),
                },
                thousands(s.counts.lost),
                thousands(s.counts.held_back),
                format!("{:.0} %", s.cpu_percent),
            ]),
            Err(why) => table.row(["not measured".to_owned(), why.clone()]),
        }
    }
    table
}
