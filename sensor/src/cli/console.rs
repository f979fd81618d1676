//! `sensor console`: the cluster's web console, without capture.

use std::sync::Arc;

use clap::Args;
use sensor::{
    console::{Mode, start},
    metrics::{Metrics, Snapshot},
};

/// Options of `sensor console`.
#[derive(Args)]
pub struct ConsoleArgs {
    /// The configuration file: its `ui:` section (`ui.store`, `ui.users`, `ui.ingest_tokens`,
    /// `ui.address`...), `metrics` (the console's own /metrics, /healthz and /readyz) and
    /// `log`; without one, the defaults and the overrides.
    #[arg(long, value_name = "FILE", env = "SENSOR_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// Override a configuration value: `-o ui.address=0.0.0.0:8484` (repeatable).
    #[arg(short = 'o', long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

pub async fn run(args: ConsoleArgs, log_level: Option<String>) -> anyhow::Result<()> {
    let config = sensor::config::SensorConfig::load_with_overrides(args.config.as_deref(), &args.set);
    super::init_logging_for(&config, log_level);
    let config = config?;
    // Its own endpoint (`metrics.address`): health for probes, ingest counters for Prometheus.
    let metrics = Arc::new(Metrics::new(config.metrics.stall_after));
    metrics.clone().serve(&config.metrics).await?;
    let console = start(&config.ui, Mode::Cluster).await?;
    metrics.set_ready(true);
    log::info!("console: serving on {}; stop with SIGTERM or Ctrl-C", console.address);
    let stop = super::stop_signal(None)?;
    tokio::pin!(stop);
    let mut refresh = tokio::time::interval(std::time::Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = refresh.tick() => {
                metrics.update(Snapshot { ingest: console.ingest_counters(), ..Snapshot::default() });
            }
        }
    }
    log::info!("console: stopping");
    drop(console);
    Ok(())
}
