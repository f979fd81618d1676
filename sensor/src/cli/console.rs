//! `sensor console`: the cluster's web console, without capture.

use clap::Args;
use sensor::console::{Mode, start};

/// Options of `sensor console`.
#[derive(Args)]
pub struct ConsoleArgs {
    /// The configuration file: its `ui:` section (`ui.store`, `ui.users`, `ui.ingest_tokens`,
    /// `ui.address`...) and `log_format`; without one, the defaults and the overrides.
    #[arg(long, value_name = "FILE", env = "SENSOR_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// Override a configuration value: `-o ui.address=0.0.0.0:8484` (repeatable).
    #[arg(short = 'o', long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

pub async fn run(args: ConsoleArgs) -> anyhow::Result<()> {
    let config = sensor::config::SensorConfig::load_with_overrides(args.config.as_deref(), &args.set)?;
    let console = start(&config.ui, Mode::Cluster).await?;
    log::info!("console: serving on {}; stop with SIGTERM or Ctrl-C", console.address);
    super::stop_signal(None)?.await;
    log::info!("console: stopping");
    drop(console);
    Ok(())
}
