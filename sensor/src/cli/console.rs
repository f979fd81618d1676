//! `sensor console`: the cluster's web console, without capture.

use std::sync::Arc;

use clap::Args;
use sensor::{
    config::SensorConfig,
    console::{Mode, start},
    k8s_audit::AuditSource,
    metrics::{Metrics, Snapshot},
    outputs::OutputStage,
    pipeline::{Publisher, alert_queue},
};

/// Options of `sensor console`.
#[derive(Args)]
pub struct ConsoleArgs {
    /// The configuration file: its `ui:` section (`ui.store`, `ui.users`, `ui.ingest_tokens`,
    /// `ui.address`...), `metrics` (the console's own /metrics, /healthz and /readyz) and
    /// `log`; with `k8s_audit` (the cluster's audit webhook), also `rules` and `outputs` (a
    /// `store` output naming `ui.store` shows the audit alerts on the page); without one,
    /// the defaults and the overrides.
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
    config.apply_alert_formats();
    config.check_audit_store()?;
    // Its own endpoint (`metrics.address`): health for probes, ingest counters for Prometheus.
    let metrics = Arc::new(Metrics::new(config.metrics.stall_after));
    metrics.clone().serve(&config.metrics).await?;
    // The audit source first: it makes the audit log the console shows.
    let audit = ClusterAudit::start(&config).await?;
    let console = start(&config.ui, Mode::Cluster, config.k8s_audit.store.as_ref()).await?;
    metrics.set_ready(true);
    log::info!("console: serving on {}; stop with SIGTERM or Ctrl-C", console.address);
    let stop = super::stop_signal(None)?;
    tokio::pin!(stop);
    let mut refresh = tokio::time::interval(std::time::Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = refresh.tick() => {
                metrics.update(Snapshot {
                    ingest: console.ingest_counters(),
                    k8s_audit: audit.as_ref().map(|a| a.source.counters()),
                    ..Snapshot::default()
                });
            }
        }
    }
    log::info!("console: stopping");
    if let Some(audit) = audit {
        audit.finish().await;
    }
    drop(console);
    Ok(())
}

/// The cluster's audit webhook in the console: the audit events through the rules, their
/// alerts to the outputs.
struct ClusterAudit {
    source: AuditSource,
    publisher: Publisher,
    stage: Arc<OutputStage>,
}

impl ClusterAudit {
    /// Starts when the configuration has a `k8s_audit` source.
    async fn start(config: &SensorConfig) -> anyhow::Result<Option<ClusterAudit>> {
        if config.k8s_audit.webhook.is_none() && config.k8s_audit.files.is_empty() {
            return Ok(None);
        }
        let engine = super::run::load_engine(config)?;
        log::info!("console: {} rules loaded for the audit events", engine.rule_count());
        let stage = Arc::new(OutputStage::start(&config.outputs).await?);
        let (alerts, queued) = alert_queue(config.alert_queue.bytes());
        let publisher = queued.publish_to(stage.clone());
        let source = AuditSource::start(&config.k8s_audit, Arc::new(engine), alerts).await?;
        Ok(source.map(|source| ClusterAudit { source, publisher, stage }))
    }

    /// Evaluates what was taken, delivers its alerts and lets the outputs drain.
    async fn finish(self) {
        let ClusterAudit { source, publisher, stage } = self;
        let counters = source.finish().await;
        eprintln!("console: k8s_audit: {} events received, {} evaluated", counters.received, counters.evaluated);
        publisher.finish().await;
        if let Some(stage) = Arc::into_inner(stage) {
            for counters in stage.shutdown(std::time::Duration::from_secs_f64(super::DRAIN_TIMEOUT_S)).await {
                eprintln!("{counters}");
            }
        }
    }
}
