//! The benchmark runs: each node's CIS benchmark reports, kept beside the alerts for the
//! store's `max_age` (a node's latest run is kept however old, so a node that stopped
//! reporting still shows what it last had), and the re-runs the console asked for.
//!
//! One trait, [`BenchmarkLog`], over the engines: a SQLite store's file (tables
//! `benchmark_runs` and `benchmark_reruns`) or its PostgreSQL database (the same tables).
//! A run is kept once per (node, time): a report sent again after a lost answer is not kept
//! twice.

use std::path::Path;

use anyhow::Context as _;
use rusqlite::Connection;

use super::PgStore;
use super::rows::{Param, ns_column};
use crate::benchmark::{Report, Status};

/// The tables, as both engines make them (`$ID` is each engine's key column).
const TABLES: &str = "CREATE TABLE IF NOT EXISTS benchmark_runs (
         id $ID,
         time_ns bigint NOT NULL,
         node text NOT NULL,
         benchmark text NOT NULL,
         pass bigint NOT NULL,
         fail bigint NOT NULL,
         warn bigint NOT NULL,
         report text NOT NULL,
         UNIQUE (node, time_ns)
     );
     CREATE TABLE IF NOT EXISTS benchmark_reruns (node text PRIMARY KEY, requested_ns bigint NOT NULL);";

/// The tables for SQLite.
pub(super) fn sqlite_tables() -> String {
    TABLES.replace("$ID", "INTEGER PRIMARY KEY AUTOINCREMENT")
}

/// The tables for PostgreSQL.
pub(super) fn postgres_tables() -> String {
    TABLES.replace("$ID", "bigserial PRIMARY KEY")
}

/// How long a re-run the console asked for waits for its node; after that the node is
/// taken to be gone and the request forgotten.
const RERUN_KEPT_NS: u64 = 86_400 * 1_000_000_000;

/// One run on one node, without its checks (the lists: latest per node, a node's history).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RunSummary {
    pub id: i64,
    /// When the checks ran, nanoseconds since the epoch.
    pub time_ns: u64,
    pub node: String,
    /// `cis-1.12`.
    pub benchmark: String,
    pub pass: u64,
    pub fail: u64,
    pub warn: u64,
}

impl RunSummary {
    /// As the API gives it.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "time": crate::rules::format_iso8601(self.time_ns),
            "node": self.node,
            "benchmark": self.benchmark,
            "totals": {"pass": self.pass, "fail": self.fail, "warn": self.warn},
        })
    }
}

/// One run with every check's outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchmarkRun {
    pub summary: RunSummary,
    pub report: Report,
}

impl BenchmarkRun {
    /// The run as the API gives it: the summary's keys and the report's.
    pub fn to_json(&self) -> serde_json::Value {
        let mut json = self.report.json();
        if let (Some(map), serde_json::Value::Object(summary)) = (json.as_object_mut(), self.summary.to_json()) {
            map.extend(summary);
        }
        json
    }
}

/// The benchmark runs of a store. Calls block.
pub trait BenchmarkLog {
    /// Keeps `report`, run on `node` at `time_ns` (once: the same node and time again is
    /// not a new run).
    fn insert_run(&self, node: &str, time_ns: u64, report: &Report) -> anyhow::Result<()>;

    /// Each node's latest run, by node name.
    fn latest_runs(&self) -> anyhow::Result<Vec<RunSummary>>;

    /// The runs of `node`, newest first, at most `limit`.
    fn runs_of(&self, node: &str, limit: usize) -> anyhow::Result<Vec<RunSummary>>;

    /// One run, with its checks.
    fn run(&self, id: i64) -> anyhow::Result<Option<BenchmarkRun>>;

    /// Asks `node` to run its checks again (it asks the console for requests).
    fn request_rerun(&self, node: &str, now_ns: u64) -> anyhow::Result<()>;

    /// Whether a re-run of `node` was asked for; the request is taken (answered once).
    fn take_rerun(&self, node: &str) -> anyhow::Result<bool>;

    /// Removes the runs before `cutoff_ns` but each node's latest, and re-run requests no
    /// node took within a day; how many runs went.
    fn retain_runs(&self, cutoff_ns: u64, now_ns: u64) -> anyhow::Result<u64>;
}

const LATEST: &str = "SELECT id, time_ns, node, benchmark, pass, fail, warn FROM benchmark_runs \
     WHERE id IN (SELECT max(id) FROM benchmark_runs GROUP BY node) ORDER BY node";

// The statements both engines run, with PostgreSQL's `$N` placeholders (SQLite's `?N`).
const INSERT: &str = "INSERT INTO benchmark_runs (time_ns, node, benchmark, pass, fail, warn, report) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (node, time_ns) DO NOTHING";
const HISTORY: &str = "SELECT id, time_ns, node, benchmark, pass, fail, warn FROM benchmark_runs WHERE node = $1 \
     ORDER BY time_ns DESC, id DESC LIMIT $2";
const ONE: &str = "SELECT id, time_ns, node, benchmark, pass, fail, warn, report FROM benchmark_runs WHERE id = $1";
const REQUEST: &str = "INSERT INTO benchmark_reruns (node, requested_ns) VALUES ($1, $2) \
     ON CONFLICT (node) DO UPDATE SET requested_ns = excluded.requested_ns";
const TAKE: &str = "DELETE FROM benchmark_reruns WHERE node = $1 RETURNING node";
const RETAIN: &str = "DELETE FROM benchmark_runs WHERE time_ns < $1 \
     AND id NOT IN (SELECT max(id) FROM benchmark_runs GROUP BY node) RETURNING id";
const FORGET_RERUNS: &str = "DELETE FROM benchmark_reruns WHERE requested_ns < $1";

/// The columns of a run kept for `report`.
fn insert_params(node: &str, time_ns: u64, report: &Report) -> Vec<Param> {
    let count = |s| Param::Int(report.count(s) as i64);
    vec![
        Param::Int(ns_column(time_ns)),
        Param::Text(node.to_owned()),
        Param::Text(report.benchmark.clone()),
        count(Status::Pass),
        count(Status::Fail),
        count(Status::Warn),
        Param::Text(serde_json::to_string(report).expect("a report serializes")),
    ]
}

fn report_of(id: i64, json: &str) -> anyhow::Result<Report> {
    serde_json::from_str(json).with_context(|| format!("benchmark run {id}: its stored report does not read"))
}

/// A summary from its columns: id, time_ns, node, benchmark, pass, fail, warn.
fn summary(id: i64, time_ns: i64, node: String, benchmark: String, totals: [i64; 3]) -> RunSummary {
    let [pass, fail, warn] = totals.map(|n| n.max(0) as u64);
    RunSummary { id, time_ns: time_ns.max(0) as u64, node, benchmark, pass, fail, warn }
}

/// Opens the SQLite store at `path` to keep runs in, beside the writer that keeps its
/// alerts (which may not have made the file yet).
pub fn open_sqlite(path: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open(path).with_context(|| format!("opening the alert store {}", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.execute_batch(&sqlite_tables()).with_context(|| format!("the alert store {}", path.display()))?;
    Ok(conn)
}

/// `params` bound for SQLite, and `sql` with its placeholders.
fn sqlite_bound(sql: &str, params: Vec<Param>) -> (String, rusqlite::ParamsFromIter<Vec<rusqlite::types::Value>>) {
    (sql.replace('$', "?"), rusqlite::params_from_iter(params.into_iter().map(super::sqlite::sql_value).collect()))
}

/// A store file written before runs were kept has no tables for them: it has no runs.
fn none_if_no_table<T: Default>(read: rusqlite::Result<T>) -> anyhow::Result<T> {
    match read {
        Err(e) if super::sqlite::table_gone(&e) => Ok(T::default()),
        other => Ok(other?),
    }
}

fn sqlite_summaries(conn: &Connection, sql: &str, params: Vec<Param>) -> anyhow::Result<Vec<RunSummary>> {
    let (sql, params) = sqlite_bound(sql, params);
    let read = || -> rusqlite::Result<Vec<RunSummary>> {
        let mut statement = conn.prepare(&sql)?;
        let rows = statement.query_map(params, |r| {
            Ok(summary(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, [r.get(4)?, r.get(5)?, r.get(6)?]))
        })?;
        rows.collect()
    };
    none_if_no_table(read())
}

/// Runs `sql` on SQLite; how many rows it gave back (`RETURNING`).
fn sqlite_returning(conn: &Connection, sql: &str, params: Vec<Param>) -> rusqlite::Result<u64> {
    let (sql, params) = sqlite_bound(sql, params);
    let mut statement = conn.prepare(&sql)?;
    let mut rows = statement.query(params)?;
    let mut n = 0;
    while rows.next()?.is_some() {
        n += 1;
    }
    Ok(n)
}

impl BenchmarkLog for Connection {
    fn insert_run(&self, node: &str, time_ns: u64, report: &Report) -> anyhow::Result<()> {
        let (sql, params) = sqlite_bound(INSERT, insert_params(node, time_ns, report));
        self.execute(&sql, params)?;
        Ok(())
    }

    fn latest_runs(&self) -> anyhow::Result<Vec<RunSummary>> {
        sqlite_summaries(self, LATEST, Vec::new())
    }

    fn runs_of(&self, node: &str, limit: usize) -> anyhow::Result<Vec<RunSummary>> {
        sqlite_summaries(self, HISTORY, vec![Param::Text(node.to_owned()), Param::Int(limit as i64)])
    }

    fn run(&self, id: i64) -> anyhow::Result<Option<BenchmarkRun>> {
        let read = self.query_row(&ONE.replace('$', "?"), [id], |r| {
            let summary = summary(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, [r.get(4)?, r.get(5)?, r.get(6)?]);
            Ok((summary, r.get::<_, String>(7)?))
        });
        let read = match read {
            Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
            other => none_if_no_table(other.map(Some)),
        }?;
        read.map(|(summary, json)| Ok(BenchmarkRun { report: report_of(summary.id, &json)?, summary })).transpose()
    }

    fn request_rerun(&self, node: &str, now_ns: u64) -> anyhow::Result<()> {
        let (sql, params) = sqlite_bound(REQUEST, vec![Param::Text(node.to_owned()), Param::Int(ns_column(now_ns))]);
        self.execute(&sql, params)?;
        Ok(())
    }

    fn take_rerun(&self, node: &str) -> anyhow::Result<bool> {
        Ok(sqlite_returning(self, TAKE, vec![Param::Text(node.to_owned())])? > 0)
    }

    fn retain_runs(&self, cutoff_ns: u64, now_ns: u64) -> anyhow::Result<u64> {
        let forget = Param::Int(ns_column(now_ns.saturating_sub(RERUN_KEPT_NS)));
        none_if_no_table(sqlite_returning(self, FORGET_RERUNS, vec![forget]))?;
        none_if_no_table(sqlite_returning(self, RETAIN, vec![Param::Int(ns_column(cutoff_ns))]))
    }
}

fn pg_summaries(rows: &[postgres::Row]) -> Vec<RunSummary> {
    rows.iter().map(|r| summary(r.get(0), r.get(1), r.get(2), r.get(3), [r.get(4), r.get(5), r.get(6)])).collect()
}

impl BenchmarkLog for PgStore {
    fn insert_run(&self, node: &str, time_ns: u64, report: &Report) -> anyhow::Result<()> {
        self.query(INSERT, &insert_params(node, time_ns, report))?;
        Ok(())
    }

    fn latest_runs(&self) -> anyhow::Result<Vec<RunSummary>> {
        Ok(pg_summaries(&self.query(LATEST, &[])?))
    }

    fn runs_of(&self, node: &str, limit: usize) -> anyhow::Result<Vec<RunSummary>> {
        let params = [Param::Text(node.to_owned()), Param::Int(limit as i64)];
        Ok(pg_summaries(&self.query(HISTORY, &params)?))
    }

    fn run(&self, id: i64) -> anyhow::Result<Option<BenchmarkRun>> {
        let rows = self.query(ONE, &[Param::Int(id)])?;
        let Some(row) = rows.first() else { return Ok(None) };
        let summary = pg_summaries(std::slice::from_ref(row)).remove(0);
        Ok(Some(BenchmarkRun { report: report_of(id, row.get(7))?, summary }))
    }

    fn request_rerun(&self, node: &str, now_ns: u64) -> anyhow::Result<()> {
        self.query(REQUEST, &[Param::Text(node.to_owned()), Param::Int(ns_column(now_ns))])?;
        Ok(())
    }

    fn take_rerun(&self, node: &str) -> anyhow::Result<bool> {
        Ok(!self.query(TAKE, &[Param::Text(node.to_owned())])?.is_empty())
    }

    fn retain_runs(&self, cutoff_ns: u64, now_ns: u64) -> anyhow::Result<u64> {
        self.query(FORGET_RERUNS, &[Param::Int(ns_column(now_ns.saturating_sub(RERUN_KEPT_NS)))])?;
        Ok(self.query(RETAIN, &[Param::Int(ns_column(cutoff_ns))])?.len() as u64)
    }
}

#[cfg(test)]
mod tests;
