//! `sensor benchmark node`: the CIS Kubernetes Benchmark's worker-node checks on this node.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use sensor::benchmark::{Benchmark, Node};

#[derive(Subcommand)]
pub enum BenchmarkCommand {
    /// Check this node's kubelet and kube-proxy against the worker-node section of the CIS
    /// Kubernetes Benchmark: configuration files (modes, owners), the kubelet's settings
    /// (its flags, else its --config file, else its defaults) and kube-proxy's metrics
    /// address. Each check is PASS, FAIL (an automated check that fails) or WARN (a manual
    /// one); each result says what was observed, where (flag, file:line, default) and how to
    /// fix it.
    ///
    /// Needs root (it reads the kubelet's /proc entries and files). In a pod: hostPID, the
    /// files are read through the kubelet's own root. Exit status: 0 when no check FAILs,
    /// 1 when one does, 2 when it cannot run (no kubelet).
    Node(NodeArgs),
}

#[derive(Args)]
pub struct NodeArgs {
    /// The benchmark version: cis-1.10, cis-1.11 or cis-1.12 (default: the one for
    /// --kubelet-version, else the newest).
    #[arg(long, value_name = "NAME")]
    benchmark: Option<String>,
    /// The kubelet's version (`v1.31.2`), to pick the benchmark (the kubelet's binary is
    /// never run to ask it).
    #[arg(long, value_name = "VERSION")]
    kubelet_version: Option<String>,
    /// A check whose failure is a WARN, not a FAIL (the operator's low-severity ones);
    /// repeatable.
    #[arg(long, value_name = "ID")]
    low_severity: Vec<String>,
    /// The report's form.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Where /proc is (a test's or a chroot's).
    #[arg(long, value_name = "DIR", default_value = "/proc", hide = true)]
    proc: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// One line per check, the remediations, the totals.
    Table,
    /// One JSON object: benchmark, results (id, text, status, observed, expected, source,
    /// remediation), totals.
    Json,
    /// JUnit XML: a failure per FAIL, skipped per WARN.
    Junit,
}

/// Runs the command; the exit code it ends with.
pub fn run(command: BenchmarkCommand) -> anyhow::Result<std::process::ExitCode> {
    let BenchmarkCommand::Node(args) = command;
    let benchmark = match &args.benchmark {
        Some(name) => Benchmark::named(name)?,
        None => Benchmark::for_kubelet(args.kubelet_version.as_deref())?,
    };
    let node = Node::discover(&args.proc);
    let mut report = match benchmark.run(&node) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(std::process::ExitCode::from(2));
        }
    };
    report.lower(&args.low_severity);
    let text = match args.format {
        Format::Table => report.table(),
        Format::Json => format!("{}\n", serde_json::to_string_pretty(&report.json())?),
        Format::Junit => report.junit(),
    };
    print!("{text}");
    Ok(if report.failed() { std::process::ExitCode::from(1) } else { std::process::ExitCode::SUCCESS })
}
