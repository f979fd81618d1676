//! `cargo xtask`: set up the toolchain, build, run, test and benchmark the sensor, and
//! measure its built-in rules' noise.
//!
//! Run through the alias in `.cargo/config.toml`; `cargo xtask --help` lists the commands.

mod cli;
mod cmd;
mod setup;
mod tasks;

use std::process::ExitCode;

use cli::Action;

/// Parses the command line and runs the task; errors go to stderr with exit status 1.
fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = cli::parse(&args).and_then(|action| match action {
        Action::Help(text) => {
            println!("{text}");
            Ok(())
        }
        Action::Setup => setup::setup(),
        Action::Build { debug } => tasks::build(debug).map(drop),
        Action::Run { args } => tasks::run(&args),
        Action::Test => tasks::test(),
        Action::Bench { args } => tasks::bench(&args),
        Action::Noise => tasks::noise(),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
