//! The node benchmark: the worker-node checks of the CIS Kubernetes Benchmark (v1.10, v1.11
//! and v1.12, one data file each in `data/`), run against the node's real kubelet and
//! kube-proxy, each Pass, Fail (an automated check that fails) or Warn (a manual one).
//!
//! [`Node::discover`] reads the running components through `/proc`; [`Benchmark`] is one
//! version's checks ([`checks`] says how each is decided); [`Report`] is their outcome as a
//! table, JSON or JUnit XML.

pub mod checks;
pub mod node;
pub mod publish;
mod report;
pub mod watch;

pub use checks::{Benchmark, CheckResult, Status};
pub use node::{Component, Node};
pub use report::Report;
pub use watch::{BenchmarkConfig, DRIFT_RULE, Watch, WatchCounters};

/// The benchmark versions this sensor has, oldest first.
const DATA: [(&str, &str); 3] = [
    ("cis-1.10", include_str!("data/cis-1.10.yaml")),
    ("cis-1.11", include_str!("data/cis-1.11.yaml")),
    ("cis-1.12", include_str!("data/cis-1.12.yaml")),
];

/// The names of the benchmarks this sensor has.
pub fn names() -> impl Iterator<Item = &'static str> {
    DATA.iter().map(|(name, _)| *name)
}

impl Benchmark {
    /// The benchmark called `name` (`cis-1.12`).
    pub fn named(name: &str) -> anyhow::Result<Benchmark> {
        let Some((_, text)) = DATA.iter().find(|(n, _)| *n == name) else {
            anyhow::bail!("no benchmark `{name}`: this sensor has {}", names().collect::<Vec<_>>().join(", "));
        };
        serde_saphyr::from_str(text).map_err(|e| anyhow::anyhow!("the built-in benchmark {name}: {e}"))
    }

    /// The benchmark for a kubelet of `version` (`v1.31.2`, `1.30`); the newest when the
    /// version is unknown or newer than every benchmark's range.
    pub fn for_kubelet(version: Option<&str>) -> anyhow::Result<Benchmark> {
        let minor = |v: &str| -> Option<(u32, u32)> {
            let mut parts = v.trim_start_matches('v').split('.');
            Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
        };
        let wanted = version.and_then(minor);
        for (name, _) in DATA.iter().rev() {
            let benchmark = Benchmark::named(name)?;
            let [from, through] = &benchmark.kubernetes;
            if let (Some(v), Some(lo), Some(hi)) = (wanted, minor(from), minor(through))
                && (lo..=hi).contains(&v)
            {
                return Ok(benchmark);
            }
        }
        Benchmark::named(DATA[DATA.len() - 1].0)
    }

    /// Every check on `node`. A node without a running kubelet has nothing to check: an
    /// error, not a report of failures.
    pub fn run(&self, node: &Node) -> anyhow::Result<Report> {
        let Some(kubelet) = &node.kubelet else {
            anyhow::bail!("no kubelet runs on this node (no process `kubelet` in the host's namespaces)")
        };
        let mut notes = kubelet.passed_over.clone();
        if let Some(error) = kubelet.config.as_ref().and_then(|c| c.error.clone()) {
            notes.push(format!("kubelet config: {error}"));
        }
        if let Some(proxy) = &node.kube_proxy {
            notes.extend(proxy.passed_over.iter().cloned());
        }
        Ok(Report {
            benchmark: self.benchmark.clone(),
            title: self.title.clone(),
            kubelet_pid: kubelet.pid,
            results: self.checks.iter().map(|c| c.run(node)).collect(),
            notes,
        })
    }
}

#[cfg(test)]
mod tests;
