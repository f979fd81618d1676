//! The benchmark runs in both engines (a SQLite file, a real PostgreSQL): what the console
//! lists, what a node's history holds, what retention keeps, and re-run requests.

use std::time::Duration;

use super::*;
use crate::benchmark::CheckResult;
use crate::store::{AlertStore, StoreConfig, pg_server};

const HOUR: u64 = 3_600 * 1_000_000_000;
const DAY: u64 = 24 * HOUR;
/// 2026-12-06T00:00:00Z.
const T0: u64 = 1_796_515_200 * 1_000_000_000;

use crate::test_dir::TestDir as Dir;

/// Each engine's store, by the engine's name.
type Stores = Vec<(&'static str, Box<dyn AlertStore>)>;

/// One store of each engine for test `name`, keeping 7 days.
fn stores(name: &str) -> (Dir, Stores) {
    let dir = Dir::new(&format!("benchmark-runs-{name}"));
    let max_age = Duration::from_secs(7 * 86_400);
    let sqlite = StoreConfig { max_age, ..StoreConfig::at(dir.0.join("alerts.db")) };
    let postgres = StoreConfig { max_age, ..StoreConfig::postgres(pg_server::database(&format!("bench_{name}"))) };
    let stores = vec![
        ("sqlite", crate::store::open(&sqlite).unwrap().store),
        ("postgres", crate::store::open(&postgres).unwrap().store),
    ];
    (dir, stores)
}

/// A report of `failing` failed checks out of three.
fn report(failing: usize) -> Report {
    let check = |n: usize| CheckResult {
        id: format!("4.2.{n}"),
        text: format!("check {n}, with \"quotes\", commas and <markup>"),
        status: if n <= failing { Status::Fail } else { Status::Pass },
        automated: true,
        observed: if n <= failing { "true".into() } else { "false".into() },
        expected: "false".into(),
        source: format!("/var/lib/kubelet/config.yaml:{n}"),
        remediation: format!("set it in the file (check {n})"),
    };
    Report {
        benchmark: "cis-1.12".into(),
        title: "CIS Kubernetes V1.12 worker node".into(),
        kubelet_pid: 4242,
        results: (1..=3).map(check).collect(),
        notes: vec!["a second kubelet was passed over".into()],
    }
}

#[test]
fn runs_are_listed_per_node_kept_once_and_retained_but_for_each_nodes_latest() {
    let (_dir, mut stores) = stores("runs");
    for (engine, store) in &mut stores {
        let log = store.benchmark_log();
        log.insert_run("node-a", T0, &report(0)).unwrap();
        log.insert_run("node-b", T0 + HOUR, &report(2)).unwrap();
        log.insert_run("node-a", T0 + 2 * HOUR, &report(1)).unwrap();
        // Sent again after a lost answer: the same run.
        log.insert_run("node-a", T0 + 2 * HOUR, &report(1)).unwrap();
        log.insert_run("node-a", T0 + 8 * DAY, &report(3)).unwrap();

        let latest = log.latest_runs().unwrap();
        let seen: Vec<_> = latest.iter().map(|r| (r.node.as_str(), r.time_ns, r.pass, r.fail, r.warn)).collect();
        assert_eq!(seen, [("node-a", T0 + 8 * DAY, 0, 3, 0), ("node-b", T0 + HOUR, 1, 2, 0)], "{engine}");

        let history = log.runs_of("node-a", 10).unwrap();
        let times: Vec<u64> = history.iter().map(|r| r.time_ns).collect();
        assert_eq!(times, [T0 + 8 * DAY, T0 + 2 * HOUR, T0], "{engine}: newest first, the repeat kept once");
        assert_eq!(log.runs_of("node-a", 2).unwrap().len(), 2, "{engine}: limit");
        assert!(log.runs_of("node-c", 10).unwrap().is_empty(), "{engine}");

        let run = log.run(history[1].id).unwrap().unwrap();
        assert_eq!(run.report, report(1), "{engine}: the report reads back whole");
        assert_eq!(run.summary, history[1], "{engine}");
        let json = run.to_json();
        assert_eq!(json["node"], "node-a", "{engine}");
        assert_eq!(json["totals"], serde_json::json!({"pass": 2, "fail": 1, "warn": 0}), "{engine}");
        assert_eq!(json["results"][0]["status"], "Fail", "{engine}");
        assert!(log.run(i64::MAX).unwrap().is_none(), "{engine}");

        // A day past 7 days: node-a's first two runs go; node-b's only run, as old, is its
        // latest and stays (a node that stopped reporting still shows what it had).
        store.enforce_retention(T0 + 8 * DAY + HOUR).unwrap();
        let log = store.benchmark_log();
        let times: Vec<u64> = log.runs_of("node-a", 10).unwrap().iter().map(|r| r.time_ns).collect();
        assert_eq!(times, [T0 + 8 * DAY], "{engine}");
        assert_eq!(log.runs_of("node-b", 10).unwrap().len(), 1, "{engine}");
    }
}

#[test]
fn a_rerun_request_is_taken_once_and_forgotten_after_a_day() {
    let (_dir, mut stores) = stores("rerun");
    for (engine, store) in &mut stores {
        let log = store.benchmark_log();
        assert!(!log.take_rerun("node-a").unwrap(), "{engine}: nothing asked");
        log.request_rerun("node-a", T0).unwrap();
        log.request_rerun("node-a", T0 + 1).unwrap();
        assert!(!log.take_rerun("node-b").unwrap(), "{engine}: asked of another node");
        assert!(log.take_rerun("node-a").unwrap(), "{engine}");
        assert!(!log.take_rerun("node-a").unwrap(), "{engine}: taken once");

        log.request_rerun("node-gone", T0).unwrap();
        log.retain_runs(0, T0 + DAY + 1).unwrap();
        assert!(!log.take_rerun("node-gone").unwrap(), "{engine}: a node gone a day does not get it later");
        let _ = store;
    }
}

#[test]
fn a_store_file_from_before_runs_were_kept_reads_as_having_none() {
    let (dir, _) = stores("old-file");
    let path = dir.0.join("old.db");
    let store = crate::store::open(&StoreConfig::at(path.clone())).unwrap().store;
    drop(store);
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("DROP TABLE benchmark_runs; DROP TABLE benchmark_reruns;").unwrap();
    drop(conn);
    let reader = crate::store::SqliteStore::open_read_only(&path).unwrap();
    let log = reader.benchmark_log();
    assert!(log.latest_runs().unwrap().is_empty());
    assert!(log.runs_of("node-a", 5).unwrap().is_empty());
    assert!(log.run(1).unwrap().is_none());
    // The node's watch makes the tables when it keeps its first run.
    open_sqlite(&path).unwrap().insert_run("node-a", T0, &report(1)).unwrap();
    let reader = crate::store::SqliteStore::open_read_only(&path).unwrap();
    assert_eq!(reader.benchmark_log().latest_runs().unwrap().len(), 1);
}
