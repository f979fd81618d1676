//! The cost table: each loop, pinned to CPU 0, under each [`Column`], in alternating rounds;
//! each round's figure is a ratio against the same round's baseline. And the time the
//! columns' BPF programs took per iteration, by the kernel's own accounting.

use std::{path::Path, time::Duration};

use sensor_tests::bench::{
    markdown::Table,
    stats::{Summary, duration_summary},
};

use crate::{
    Plan,
    bpfstats::{Accounting, ProgramTime},
    columns::Column,
    load::{self, Length, Loop},
};

/// The CPU the loops run on.
const LOOP_CPU: usize = 0;
/// Time given to a configuration after it attaches (the sensor's start-up work ends).
const SETTLE: Duration = Duration::from_secs(1);

/// ns per iteration of every loop under every column, per round (`None`: not measured).
pub struct Cost {
    /// `[column][loop][round]`, indexed as [`Column::ALL`] and [`Loop::COST`].
    ns: Vec<Vec<Vec<Option<f64>>>>,
    /// BPF program ns per iteration, indexed as `ns`.
    bpf_ns: Vec<Vec<Vec<Option<f64>>>>,
    /// Why a column or loop was not measured, once per reason.
    pub problems: Vec<String>,
}

/// Measures every loop under every column for `plan.rounds` rounds, each round in a
/// different column order (rotated), so that no configuration always runs first or last.
/// In a round, each loop runs `plan.repeats` times and the fastest run counts: what else
/// the machine does can only add time to a run. Then, with the kernel's accounting on, once
/// more for the BPF program time.
pub fn measure(plan: &Plan, logs: &Path) -> Cost {
    let empty = vec![vec![vec![None; plan.rounds]; Loop::COST.len()]; Column::ALL.len()];
    let mut cost = Cost { ns: empty.clone(), bpf_ns: empty, problems: Vec::new() };
    for round in 0..plan.rounds {
        for c in (0..Column::ALL.len()).map(|i| (i + round) % Column::ALL.len()) {
            let column = Column::ALL[c];
            eprintln!("bench: cost, round {}/{}: {}", round + 1, plan.rounds, column.header());
            let attached = match column.attach(logs) {
                Ok(attached) => attached,
                Err(why) => {
                    cost.problem(format!("{}: {why}", column.header()));
                    continue;
                }
            };
            std::thread::sleep(SETTLE);
            for (l, lp) in Loop::COST.into_iter().enumerate() {
                let length = Length::Iters(plan.iters(lp));
                for _ in 0..plan.repeats {
                    match load::run(lp, LOOP_CPU, length, &[]) {
                        Ok(outcome) => {
                            let best = cost.ns[c][l][round].get_or_insert(outcome.ns_per_iter);
                            *best = best.min(outcome.ns_per_iter);
                        }
                        Err(why) => cost.problem(format!("{} under {}: {why}", lp.label(), column.header())),
                    }
                }
                if let Some(pid) = attached.programs_owner() {
                    match program_ns_per_iter(pid, lp, length) {
                        Ok(ns) => cost.bpf_ns[c][l][round] = Some(ns),
                        Err(why) => {
                            cost.problem(format!("BPF time of {} under {}: {why}", lp.label(), column.header()))
                        }
                    }
                }
            }
            drop(attached);
        }
    }
    cost
}

/// BPF program ns per iteration of `lp`, over the programs `pid` holds, from one run with
/// the kernel's accounting on.
fn program_ns_per_iter(pid: u32, lp: Loop, length: Length) -> Result<f64, String> {
    let _on = Accounting::on()?;
    let before = ProgramTime::of(pid)?;
    let outcome = load::run(lp, LOOP_CPU, length, &[])?;
    let ran = ProgramTime::of(pid)?.since(before);
    Ok(ran.ns as f64 / outcome.iters.max(1) as f64)
}

impl Cost {
    /// Records a problem once.
    fn problem(&mut self, why: String) {
        eprintln!("bench: {why}");
        if !self.problems.contains(&why) {
            self.problems.push(why);
        }
    }

    /// The baseline's ns per iteration of loop `l`, over the rounds.
    fn baseline(&self, l: usize) -> Option<Summary> {
        Summary::of(&self.ns[0][l].iter().flatten().copied().collect::<Vec<_>>())
    }

    /// Column `c`'s ratio to the baseline for loop `l`, one per round where both ran.
    fn ratios(&self, c: usize, l: usize) -> Option<Summary> {
        let pairs = self.ns[c][l].iter().zip(&self.ns[0][l]);
        Summary::of(&pairs.filter_map(|(x, base)| Some((*x)? / (*base)?)).collect::<Vec<_>>())
    }

    /// The table: one row per loop; the baseline in ns, the others as ratios to it.
    pub fn table(&self) -> Table {
        let header = std::iter::once("loop (pinned to CPU 0)").chain(Column::ALL.iter().map(|c| c.header()));
        let mut table = Table::new(header);
        for (l, lp) in Loop::COST.into_iter().enumerate() {
            let mut row = vec![lp.label().to_owned()];
            row.push(self.baseline(l).map_or("-".into(), duration_summary));
            for c in 1..Column::ALL.len() {
                row.push(
                    self.ratios(c, l).map_or("-".into(), |s| format!("×{:.2} ({:.2}–{:.2})", s.median, s.min, s.max)),
                );
            }
            table.row(row);
        }
        table
    }

    /// The BPF program time table: one row per loop, a column per configuration with
    /// programs; median (min–max) ns per iteration over the rounds.
    pub fn program_table(&self) -> Table {
        let with_programs = || (0..Column::ALL.len()).filter(|&c| Column::ALL[c] != Column::Nothing);
        let header = std::iter::once("loop (pinned to CPU 0)").chain(with_programs().map(|c| Column::ALL[c].header()));
        let mut table = Table::new(header);
        for (l, lp) in Loop::COST.into_iter().enumerate() {
            let mut row = vec![lp.label().to_owned()];
            for c in with_programs() {
                let ns = Summary::of(&self.bpf_ns[c][l].iter().flatten().copied().collect::<Vec<_>>());
                row.push(ns.map_or("-".into(), |s| format!("{:.0} ns ({:.0}–{:.0})", s.median, s.min, s.max)));
            }
            table.row(row);
        }
        table
    }
}
