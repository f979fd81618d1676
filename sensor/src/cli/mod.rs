//! Command-line interface: argument parsing and one module per subcommand.

mod capture;
mod rules;
mod run;

use std::{io, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use sensor::{
    config::SensorConfig,
    outputs::{
        OutputStage, OutputsConfig,
        stdout::{LineFormat, StdoutConfig},
    },
};

/// Node-level eBPF runtime security sensor.
///
/// `run` watches the node and alerts; `capture` records raw events; `validate`,
/// `test-rules`, `replay` and `list-fields` work on rules without a kernel or privileges.
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// Log level filter (error, warn, info, debug, trace), as RUST_LOG.
    #[arg(long, global = true, env = "SENSOR_LOG", default_value = "info")]
    log: String,
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
}

/// Parses the command line and runs the subcommand.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::new().parse_filters(&cli.log).format_target(false).init();
    let result = match cli.command {
        Command::Validate(args) => rules::validate(args),
        Command::TestRules(args) => rules::test_rules(args),
        Command::Replay(args) => rules::replay(args),
        Command::ListFields(args) => rules::list_fields(args),
        Command::Run(args) => block_on(run::run(args)),
        Command::Capture(args) => block_on(capture::run(args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn block_on(task: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(task)
}

/// Resolves after `duration`, or on Ctrl-C or SIGTERM.
async fn stop_signal(duration: Option<Duration>) -> io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let timeout = async {
        match duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = timeout => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(())
}

/// Where alerts go: the options `run` and `replay` share.
#[derive(clap::Args)]
struct OutputArgs {
    /// Configuration file (YAML); its `outputs` list says where alerts go (default: Falco's
    /// text line on stdout).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Without --config: print alerts as Falco JSON lines instead of Falco's text line.
    #[arg(long, conflicts_with = "config")]
    json: bool,
    /// At exit, how long the outputs may take to deliver what they still hold, in seconds;
    /// what is left after that is counted as dropped.
    #[arg(long, value_name = "S", default_value_t = 10.0)]
    drain_timeout: f64,
}

impl OutputArgs {
    /// Reads the configuration and starts the outputs; an output that cannot start is an error.
    async fn start(&self) -> anyhow::Result<OutputStage> {
        self.drain_bound()?;
        let config = match &self.config {
            Some(path) => SensorConfig::load(path)?.outputs,
            None => {
                let format = if self.json { LineFormat::Json } else { LineFormat::Text };
                OutputsConfig::stdout(StdoutConfig { format })
            }
        };
        OutputStage::start(&config).await
    }

    /// The --drain-timeout bound.
    fn drain_bound(&self) -> anyhow::Result<Duration> {
        Duration::try_from_secs_f64(self.drain_timeout).context("--drain-timeout")
    }

    /// Lets the outputs drain, then prints each one's counters on stderr.
    async fn finish(&self, stage: OutputStage) {
        // Checked at start, so this default is never used.
        let bound = self.drain_bound().unwrap_or_default();
        for counters in stage.shutdown(bound).await {
            eprintln!("{counters}");
        }
    }
}
