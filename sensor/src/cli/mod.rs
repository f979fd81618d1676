//! Command-line interface: argument parsing and one module per subcommand.

mod capture;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Node-level eBPF runtime security sensor.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// Log level filter (error, warn, info, debug, trace), as RUST_LOG.
    #[arg(long, global = true, env = "SENSOR_LOG", default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Capture syscalls and process events from the kernel and print or record them.
    Capture(capture::CaptureArgs),
}

/// Parses the command line and runs the subcommand.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::new().parse_filters(&cli.log).format_target(false).init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Capture(args) => capture::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
