//! `sensor config check`: reads a configuration the way `run` does and reports what is
//! wrong with it, with file:line, without touching the kernel or the network.

use std::path::PathBuf;

use anyhow::bail;
use sensor::store::Engine;
use sensor::{
    config::SensorConfig,
    outputs::{OutputKind, webhook::HeaderSource},
    pipeline::load_rules,
};

/// `sensor config ...`.
#[derive(clap::Subcommand)]
pub enum ConfigCommand {
    /// Check a configuration file: its keys and values, the rules it names, and the
    /// secrets and files its outputs need.
    Check(CheckArgs),
}

/// Options of `sensor config check`.
#[derive(clap::Args)]
pub struct CheckArgs {
    /// The configuration file.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Overrides, as for `sensor run -o KEY=VALUE`.
    #[arg(short = 'o', long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

/// Runs a `config` subcommand.
pub fn run(command: ConfigCommand) -> anyhow::Result<()> {
    let ConfigCommand::Check(args) = command;
    let config = SensorConfig::load_with_overrides(Some(&args.file), &args.set)?;
    for notice in &config.notices {
        eprintln!("warning: {notice}");
    }
    let (engine, diagnostics) = match load_rules(&config.rules, super::run::engine_options(&config)) {
        Ok(loaded) => loaded,
        Err(report) => bail!("the rules do not load:\n{report}"),
    };
    for d in &diagnostics {
        eprintln!("{d}");
    }
    let mut problems = Vec::new();
    if let Err(e) = config.check_audit_store() {
        problems.push(format!("{e:#}"));
    }
    if let Err(e) = sensor::metrics::check(&config.metrics) {
        problems.push(format!("{e:#}"));
    }
    for output in config.outputs.outputs.iter().filter(|o| o.options.enabled) {
        if let Err(e) = check_output(&output.kind) {
            problems.push(format!("output `{}`: {e:#}", output.name));
        }
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    println!(
        "{}: ok ({} rules loaded, {} outputs: {})",
        args.file.display(),
        engine.rule_count(),
        config.outputs.outputs.len(),
        config.outputs.outputs.iter().map(|o| o.name.as_str()).collect::<Vec<_>>().join(", ")
    );
    Ok(())
}

/// What can be checked of an output without starting it: its secrets load.
fn check_output(kind: &OutputKind) -> anyhow::Result<()> {
    match kind {
        OutputKind::Telegram(c) => c.token.load().map(drop),
        OutputKind::Smtp(c) => c.password.load().map(drop),
        OutputKind::Webhook(c) => c.headers.values().try_for_each(|h| match h {
            HeaderSource::Secret(secret) => secret.load().map(drop),
            HeaderSource::Plain(_) => Ok(()),
        }),
        OutputKind::Grpc(c) => c.endpoint().map(drop),
        OutputKind::Console(c) => c.token.load().map(drop),
        OutputKind::Stdout(_) | OutputKind::File(_) | OutputKind::Syslog(_) | OutputKind::Program(_) => Ok(()),
        OutputKind::Store(c) => match &c.engine {
            Engine::Sqlite(path) => match path.parent().filter(|p| !p.as_os_str().is_empty()) {
                Some(dir) if !dir.is_dir() => anyhow::bail!("the store's directory {} does not exist", dir.display()),
                _ => Ok(()),
            },
            Engine::Postgres(pg) => pg.password.as_ref().map_or(Ok(()), |p| p.load().map(drop)),
        },
    }
}
