//! Command-line interface: argument parsing and one module per subcommand.

mod alerts;
mod audit;
mod benchmark;
mod capture;
mod config;
mod console;
mod falco;
mod rules;
mod run;
mod ui;

use std::{
    io::{self, Write as _},
    path::PathBuf,
    process::ExitCode,
    time::Duration,
};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use sensor::{
    config::{LogFormat, SensorConfig},
    outputs::{OutputKind, OutputStage, stdout::LineFormat},
};

/// Node-level eBPF runtime security sensor.
///
/// `run` watches the node and alerts; `capture` records raw events; `validate`,
/// `test-rules`, `replay` and `list-fields` work on rules without a kernel or privileges;
/// `alerts search` reads the alert store, `audit search` the Kubernetes audit log;
/// `benchmark node` checks the node against the CIS Kubernetes Benchmark; `ui
/// hash-password` hashes a console password. Falco's command line works too (`sensor -c
/// /etc/falco/falco.yaml -r rules.yaml`, `-L`, `-V FILE`...): `sensor -h` lists its options.
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// Log level filter (error, warn, info, debug, trace), as RUST_LOG (default: info, or
    /// the configuration's log.level for `run`).
    #[arg(long, global = true, env = "SENSOR_LOG")]
    log: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Watch the node: capture, track processes, evaluate rules, print alerts.
    Run(run::RunArgs),
    /// Capture syscalls and process events from the kernel and print or record them.
    Capture(capture::CaptureArgs),
    /// Load and check rules files; report errors with file:line:column.
    Validate(rules::ValidateArgs),
    /// Run rule unit tests (YAML cases naming events and the rules that must fire).
    TestRules(rules::TestRulesArgs),
    /// Run recorded events through the rules and print the alerts.
    Replay(rules::ReplayArgs),
    /// List every field rules can use.
    ListFields(rules::ListFieldsArgs),
    /// Check a configuration file (and the rules it names) without running anything.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Search the alert store (`store` output) without a browser.
    #[command(subcommand)]
    Alerts(alerts::AlertsCommand),
    /// Search the Kubernetes audit log (`k8s_audit.store`) without a browser.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Check this node against the CIS Kubernetes Benchmark's worker-node section.
    #[command(subcommand)]
    Benchmark(benchmark::BenchmarkCommand),
    /// Helpers for the web console's configuration (password hashes).
    #[command(subcommand)]
    Ui(ui::UiCommand),
    /// Serve the cluster's web console: the nodes' `console` outputs send their alerts here
    /// (with a token from `ui.ingest_tokens`), kept in `ui.store` (PostgreSQL, shared by
    /// several replicas, or a SQLite file) and shown to the users of `ui.users`.
    Console(console::ConsoleArgs),
}

/// Parses the command line and runs the subcommand.
pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if falco::is_falco_command_line(&args) {
        return falco::main(args);
    }
    let cli = Cli::parse();
    // `run` starts its log once its configuration is read (log.level, log.format).
    if !matches!(cli.command, Command::Run(_) | Command::Console(_)) {
        init_logging(cli.log.as_deref().unwrap_or("info"), LogFormat::Text);
    }
    let result = match cli.command {
        Command::Validate(args) => rules::validate(args),
        Command::TestRules(args) => rules::test_rules(args),
        Command::Replay(args) => rules::replay(args),
        Command::ListFields(args) => rules::list_fields(args),
        Command::Config(command) => config::run(command),
        Command::Alerts(command) => alerts::run(command),
        Command::Audit(command) => audit::run(command),
        // Its own exit codes: 1 when a check fails, 2 when it cannot run.
        Command::Benchmark(command) => {
            return benchmark::run(command).unwrap_or_else(|e| {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            });
        }
        Command::Ui(command) => ui::run(command),
        Command::Run(args) => block_on(run::run(args, cli.log)),
        Command::Capture(args) => block_on(capture::run(args)),
        Command::Console(args) => block_on(console::run(args, cli.log)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Whether printing went through; a reader that had enough (`| head`) is no error.
fn printed(result: io::Result<()>) -> io::Result<bool> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        other => other.map(|()| true),
    }
}

/// A table's line: each of the `N` columns as wide as its widest cell (or header), two
/// spaces apart, without trailing spaces.
fn table_line<const N: usize>(headers: &[&str; N], rows: &[[String; N]]) -> impl Fn(&[&str]) -> String {
    let widths: Vec<usize> =
        (0..N).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0).max(headers[i].len())).collect();
    move |cells| {
        cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect::<Vec<_>>().join("  ").trim_end().to_owned()
    }
}

fn block_on(task: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = runtime.block_on(task);
    // A blocking task still running (a reload reading a FIFO) must not hold the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// A future that resolves after `duration`, or on SIGINT (Ctrl-C) or SIGTERM. The signal
/// handlers are installed by this call, so a signal arriving from now on is never fatal.
fn stop_signal(duration: Option<Duration>) -> io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        let timeout = async {
            match duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = timeout => {}
            _ = interrupt.recv() => {}
            _ = term.recv() => {}
        }
    })
}

/// The configuration options `run` and `replay` share: the file, its overrides, and where
/// alerts go.
#[derive(clap::Args, Clone)]
struct ConfigArgs {
    /// Configuration file (YAML; every key is documented in deploy/sensor.yaml). Without
    /// it: the built-in rules, alerts as Falco's text line on stdout.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Override a configuration key, after the file and the SENSOR_CONFIG__* environment
    /// variables: `-o metrics.address=10.0.0.5:8765`, `-o outputs.0.min_priority=warning`;
    /// the value is YAML. Repeatable.
    #[arg(short = 'o', long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Print alerts on stdout as Falco JSON lines (every stdout output) instead of Falco's
    /// text line.
    #[arg(long)]
    json: bool,
    /// At exit, how long the outputs may take to deliver what they still hold, in seconds;
    /// what is left after that is counted as dropped.
    #[arg(long, value_name = "S", default_value_t = DRAIN_TIMEOUT_S)]
    drain_timeout: f64,
}

/// How long the outputs may take at exit to deliver what they hold, by default, in seconds.
pub(crate) const DRAIN_TIMEOUT_S: f64 = 10.0;

impl ConfigArgs {
    /// The configuration: the file with its overrides, and `--json` applied.
    fn load(&self) -> anyhow::Result<SensorConfig> {
        self.drain_bound()?;
        let mut config = SensorConfig::load_with_overrides(self.config.as_deref(), &self.set)?;
        if self.json {
            for output in &mut config.outputs.outputs {
                if let OutputKind::Stdout(stdout) = &mut output.kind {
                    stdout.format = LineFormat::Json;
                }
            }
        }
        Ok(config)
    }

    /// The --drain-timeout bound.
    fn drain_bound(&self) -> anyhow::Result<Duration> {
        Duration::try_from_secs_f64(self.drain_timeout).context("--drain-timeout")
    }

    /// Lets the outputs drain, then prints each one's counters on stderr.
    async fn finish(&self, stage: OutputStage) {
        // Checked at load, so this default is never used.
        let bound = self.drain_bound().unwrap_or_default();
        for counters in stage.shutdown(bound).await {
            eprintln!("{counters}");
        }
    }
}

/// Starts the log as the configuration (or, when it failed to load, the defaults) and the
/// `--log` option say, so that even a configuration error is reported in its format.
fn init_logging_for(config: &anyhow::Result<SensorConfig>, log_level: Option<String>) {
    let (level, format) = match config {
        Ok(c) => (log_level.unwrap_or_else(|| c.log.level.clone()), c.log.format),
        Err(_) => (log_level.unwrap_or_else(|| "info".into()), LogFormat::default()),
    };
    init_logging(&level, format);
    if let Ok(c) = config {
        for notice in &c.notices {
            log::warn!("{notice}");
        }
    }
}

/// Starts the log on stderr: `level` as RUST_LOG, as text or one JSON object per line.
fn init_logging(level: &str, format: LogFormat) {
    let mut builder = env_logger::Builder::new();
    builder.parse_filters(level).format_target(false);
    if format == LogFormat::Json {
        builder.format(|buf, record| {
            let line = serde_json::json!({
                "time": sensor::rules::format_iso8601(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_nanos() as u64)
                ),
                "level": record.level().as_str(),
                "message": record.args().to_string(),
            });
            writeln!(buf, "{line}")
        });
    }
    // A second call (a test calling twice) keeps the first logger.
    let _ = builder.try_init();
}
