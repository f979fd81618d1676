//! Command-line interface: argument parsing and one module per subcommand.

mod capture;
mod rules;
mod run;

use std::{io, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use sensor::rules::Alert;

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

/// Writes one alert line: Falco's text form, or its JSON form.
fn print_alert(out: &mut impl io::Write, alert: &Alert, json: bool) -> io::Result<()> {
    if json {
        serde_json::to_writer(&mut *out, &alert.to_json())?;
        writeln!(out)
    } else {
        writeln!(out, "{}", alert.to_text())
    }
}
