//! `sensor`: the command-line entry point. Each subcommand lives in `cli/`.
mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
