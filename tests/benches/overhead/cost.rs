//! The cost table: each loop, pinned to CPU 0, under each [`Column`], in alternating rounds;
//! each round's figure is a ratio against the same round's baseline.

use std::{path::Path, time::Duration};

use sensor_tests::bench::{
    markdown::Table,
    stats::{Summary, duration_summary},
};

use crate::{
    Plan,
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
    /// Why a column or loop was not measured, once per reason.
    pub problems: Vec<String>,
}

/// Measures every loop under every column for `plan.rounds` rounds, each round in a
/// different column order (rotated), so that no configuration always runs first or last.
pub fn measure(plan: &Plan, logs: &Path) -> Cost {
    let mut cost =
        Cost { ns: vec![vec![vec![None; plan.rounds]; Loop::COST.len()]; Column::ALL.len()], problems: Vec::new() };
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
                match load::run(lp, LOOP_CPU, Length::Iters(plan.iters(lp)), &[]) {
                    Ok(outcome) => cost.ns[c][l][round] = Some(outcome.ns_per_iter),
                    Err(why) => cost.problem(format!("{} under {}: {why}", lp.label(), column.header())),
                }
            }
            drop(attached);
        }
    }
    cost
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
}
