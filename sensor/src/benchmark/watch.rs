//! The benchmark inside `sensor run`: at start, every `benchmark.interval` and when an
//! operator asks (the console's Re-run), the node's checks again; a check that passed and
//! no longer does raises the alert `Node benchmark check failed`, each report goes to the
//! node's alert stores and the cluster's consoles, and the latest counts are the run's
//! metrics.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use serde::Deserialize;

use super::publish::{Destinations, Published, Submission};
use super::{Benchmark, Node, Report, Status};
use crate::{
    outputs::config::deserialize_positive_duration,
    pipeline::AlertSender,
    rules::{Alert, Priority, Value},
};

/// The rule name of drift alerts.
pub const DRIFT_RULE: &str = "Node benchmark check failed";

/// The `benchmark` section of the configuration.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BenchmarkConfig {
    /// Run the node's checks in `sensor run` (a node without a kubelet is skipped, once noted).
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// How often they run again (and at start).
    #[serde(default = "default_interval", deserialize_with = "deserialize_positive_duration")]
    pub interval: Duration,
    /// The benchmark version (`cis-1.12`); default: the one for `kubelet_version`, else the newest.
    #[serde(default)]
    pub version: Option<String>,
    /// The kubelet's version, to pick the benchmark.
    #[serde(default)]
    pub kubelet_version: Option<String>,
    /// Checks whose failure is a Warn, not a Fail (the operator's low-severity ones).
    #[serde(default)]
    pub low_severity: Vec<String>,
    /// How often the node asks the cluster's consoles (its `console` outputs) whether an
    /// operator asked for a re-run.
    #[serde(default = "default_rerun_poll", deserialize_with = "deserialize_positive_duration")]
    pub rerun_poll_interval: Duration,
}

impl Default for BenchmarkConfig {
    fn default() -> Self {
        BenchmarkConfig {
            enabled: default_enabled(),
            interval: default_interval(),
            version: None,
            kubelet_version: None,
            low_severity: Vec::new(),
            rerun_poll_interval: default_rerun_poll(),
        }
    }
}

fn default_rerun_poll() -> Duration {
    Duration::from_secs(30)
}

fn default_enabled() -> bool {
    true
}

fn default_interval() -> Duration {
    Duration::from_secs(3600)
}

impl BenchmarkConfig {
    /// The benchmark it names.
    pub fn benchmark(&self) -> anyhow::Result<Benchmark> {
        match &self.version {
            Some(name) => Benchmark::named(name),
            None => Benchmark::for_kubelet(self.kubelet_version.as_deref()),
        }
    }
}

impl Report {
    /// The checks of `ids` that failed are Warn (the operator's low-severity ones).
    pub fn lower(&mut self, ids: &[String]) {
        for r in self.results.iter_mut().filter(|r| r.status == Status::Fail && ids.contains(&r.id)) {
            r.status = Status::Warn;
        }
    }
}

/// What the watch did, for the metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WatchCounters {
    /// The latest run's checks passed, failed and warned (none before the first run, or
    /// without a kubelet).
    pub checks: Option<[u64; 3]>,
    /// Reports a store or console took, and did not take (after its retries).
    pub reports: Published,
}

/// The running watch.
pub struct Watch {
    task: tokio::task::JoinHandle<()>,
    counters: Arc<Mutex<WatchCounters>>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Watch {
    /// Starts the watch on the current runtime (none when disabled); its reports go to
    /// `destinations`, and `rerun` wakes it early. A benchmark version that does not exist
    /// stops the sensor at start.
    pub fn start(
        config: &BenchmarkConfig,
        alerts: AlertSender,
        mut destinations: Destinations,
        rerun: Arc<tokio::sync::Notify>,
    ) -> anyhow::Result<Option<Watch>> {
        if !config.enabled {
            return Ok(None);
        }
        let benchmark = Arc::new(config.benchmark()?);
        let (interval, poll, low) = (config.interval, config.rerun_poll_interval, config.low_severity.clone());
        let counters: Arc<Mutex<WatchCounters>> = Arc::default();
        let shared = counters.clone();
        let update =
            move |f: &dyn Fn(&mut WatchCounters)| f(&mut shared.lock().unwrap_or_else(PoisonError::into_inner));
        let node = crate::state::node_name().to_owned();
        let task = tokio::spawn(async move {
            let mut previous: Option<BTreeMap<String, Status>> = None;
            let mut noted_absent = false;
            loop {
                let (bench, low) = (benchmark.clone(), low.clone());
                let time_ns = crate::store::now_ns();
                let ran = tokio::task::spawn_blocking(move || {
                    let mut report = bench.run(&Node::discover(std::path::Path::new("/proc")))?;
                    report.lower(&low);
                    anyhow::Ok(report)
                })
                .await;
                match ran {
                    Ok(Ok(report)) => {
                        noted_absent = false;
                        let counts = [Status::Pass, Status::Fail, Status::Warn].map(|s| report.count(s) as u64);
                        update(&|c| c.checks = Some(counts));
                        if previous.is_none() {
                            log::info!(
                                "benchmark {}: {} checks PASS, {} FAIL, {} WARN (`sensor benchmark node` shows them)",
                                report.benchmark,
                                counts[0],
                                counts[1],
                                counts[2]
                            );
                        }
                        for alert in drift(previous.as_ref(), &report) {
                            alerts.send(alert);
                        }
                        previous = Some(report.results.iter().map(|r| (r.id.clone(), r.status)).collect());
                        if !destinations.is_empty() {
                            let published =
                                destinations.publish(Submission { node: node.clone(), time_ns, report }).await;
                            update(&|c| {
                                c.reports.kept += published.kept;
                                c.reports.failed += published.failed;
                            });
                        }
                    }
                    Ok(Err(e)) => {
                        update(&|c| c.checks = None);
                        if !noted_absent {
                            log::info!("benchmark: not run: {e:#}");
                            noted_absent = true;
                        }
                    }
                    Err(e) => log::warn!("benchmark: the check did not finish: {e}"),
                }
                // Until the interval ends, or an operator asks for a run (here or at a console).
                let due = tokio::time::Instant::now() + interval;
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep_until(due) => break,
                        _ = rerun.notified() => {
                            log::info!("benchmark: running the checks again, as the console asked");
                            break;
                        }
                        _ = tokio::time::sleep(poll), if destinations.has_consoles() => {
                            if destinations.rerun_requested(&node).await {
                                log::info!("benchmark: running the checks again, as the cluster's console asked");
                                break;
                            }
                        }
                    }
                }
            }
        });
        Ok(Some(Watch { task, counters }))
    }

    /// What the watch did so far.
    pub fn counters(&self) -> WatchCounters {
        *self.counters.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The alerts for the checks of `report` that passed in `previous` and no longer do.
pub fn drift(previous: Option<&BTreeMap<String, Status>>, report: &Report) -> Vec<Alert> {
    let Some(previous) = previous else { return Vec::new() };
    let now = crate::store::now_ns();
    report
        .results
        .iter()
        .filter(|r| r.status != Status::Pass && previous.get(&r.id) == Some(&Status::Pass))
        .map(|r| {
            let priority = if r.status == Status::Fail { Priority::Error } else { Priority::Warning };
            let fields = [
                ("benchmark.name", report.benchmark.clone()),
                ("benchmark.check", r.id.clone()),
                ("benchmark.text", r.text.clone()),
                ("benchmark.status", r.status.as_str().to_owned()),
                ("benchmark.observed", r.observed.clone()),
                ("benchmark.expected", r.expected.clone()),
                ("benchmark.source", r.source.clone()),
            ];
            Alert {
                time_ns: now,
                rule: DRIFT_RULE.into(),
                priority,
                source: "internal".into(),
                hostname: crate::state::node_name().to_owned(),
                message: format!(
                    "{DRIFT_RULE} (check={} {} observed={} expected={} source={} benchmark={})",
                    r.id, r.text, r.observed, r.expected, r.source, report.benchmark
                ),
                tags: vec!["benchmark".into(), "cis".into(), "host".into()].into(),
                fields: fields.into_iter().map(|(k, v)| (k.into(), Some(Value::Str(v.into())))).collect(),
            }
        })
        .collect()
}
