//! `sensor run`: the live pipeline — capture, state, rules — sending alerts to the outputs.

use std::{path::PathBuf, time::Duration};

use anyhow::bail;
use sensor::{
    capture::{Capture, CaptureConfig},
    enrich::{ContainerCache, EnrichConfig, RuntimeApi, RuntimeEndpoint},
    event::{Clock, decode},
    pipeline::{Pipeline, Workers, dns_names_for, load_rules, syscalls_for},
    rules::{EngineOptions, Priority, RuleMatching, SUGGESTED_OUTPUT},
    state::{State, StateConfig},
};

/// Options of `sensor run`.
#[derive(clap::Args)]
pub struct RunArgs {
    /// Rules files or directories, loaded in order (default: the built-in rules).
    #[arg(long, value_name = "RULES")]
    rules: Vec<PathBuf>,
    #[command(flatten)]
    outputs: super::OutputArgs,
    /// Stop after this many seconds (default: until Ctrl-C or SIGTERM).
    #[arg(long, value_name = "S")]
    duration: Option<f64>,
    /// Load only rules at least this severe (emergency ... debug).
    #[arg(long, value_name = "PRIORITY", default_value = "debug")]
    min_priority: String,
    /// Report every matching rule for an event, not only the first.
    #[arg(long)]
    all_matches: bool,
    /// Do not append the container and pod fields (container_id=..., k8s_pod_name=...) to
    /// syscall rule outputs, which Falco does by default.
    #[arg(long)]
    no_suggested_output: bool,
    /// CRI socket (containerd, CRI-O) for container and pod metadata; repeatable. Giving any
    /// runtime socket replaces the defaults (/run/containerd/containerd.sock,
    /// /run/crio/crio.sock, /var/run/docker.sock, /run/podman/podman.sock).
    #[arg(long, value_name = "PATH")]
    cri_socket: Vec<PathBuf>,
    /// containerd socket for its own containers API (namespaces k8s.io, moby, default).
    #[arg(long, value_name = "PATH")]
    containerd_socket: Vec<PathBuf>,
    /// Docker Engine API socket.
    #[arg(long, value_name = "PATH")]
    docker_socket: Vec<PathBuf>,
    /// podman's Docker-compatible API socket.
    #[arg(long, value_name = "PATH")]
    podman_socket: Vec<PathBuf>,
    /// Longest an event waits for its container's metadata, in milliseconds; later events
    /// of the container get it when it arrives.
    #[arg(long, value_name = "MS", default_value_t = 5)]
    container_wait_ms: u64,
    /// Pipeline workers (default: one per core). Each process's events stay in order on
    /// one worker; every worker knows every process's ancestry, and a forked child's
    /// worker gets the fds and credentials it inherits from its parent's worker.
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
}

impl RunArgs {
    /// The container enrichment configuration these options ask for.
    fn enrich_config(&self) -> EnrichConfig {
        let mut endpoints = Vec::new();
        for (api, paths) in [
            (RuntimeApi::Cri, &self.cri_socket),
            (RuntimeApi::Containerd, &self.containerd_socket),
            (RuntimeApi::Docker, &self.docker_socket),
            (RuntimeApi::Podman, &self.podman_socket),
        ] {
            endpoints.extend(paths.iter().map(|p| RuntimeEndpoint::new(api, p)));
        }
        let defaults = EnrichConfig::default();
        EnrichConfig {
            endpoints: if endpoints.is_empty() { defaults.endpoints.clone() } else { endpoints },
            max_wait: Duration::from_millis(self.container_wait_ms),
            ..defaults
        }
    }
}

/// Runs until the duration ends or a signal arrives.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let Some(min_priority) = Priority::parse(&args.min_priority) else {
        bail!("unknown priority `{}`", args.min_priority);
    };
    let opts = EngineOptions {
        min_priority,
        rule_matching: if args.all_matches { RuleMatching::All } else { RuleMatching::First },
        append_output: (!args.no_suggested_output).then(|| SUGGESTED_OUTPUT.to_owned()),
        ..EngineOptions::default()
    };
    let (engine, diagnostics) = match load_rules(&args.rules, opts) {
        Ok(loaded) => loaded,
        Err(report) => bail!("the rules do not load:\n{report}"),
    };
    for d in &diagnostics {
        log::warn!("{d}");
    }
    // Before the kernel programs: a broken output stops the sensor before it watches anything.
    let stage = args.outputs.start().await?;
    let cfg = CaptureConfig { syscalls: syscalls_for(&engine), ..CaptureConfig::default() };
    log::info!("{} rules loaded; capturing {} syscalls", engine.rule_count(), cfg.syscalls.len());
    let clock = Clock::now();
    let mut capture = Capture::start(&cfg)?;
    let workers =
        args.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get)).max(1);
    // Seeded after attaching, so no process can slip between the two; one state per worker.
    let dns = dns_names_for(&engine);
    let engine = std::sync::Arc::new(engine);
    let pipelines = (0..workers)
        .map(|_| {
            let state = State::from_proc(StateConfig::default(), clock.wall(0) as i128).with_dns(dns.clone());
            Pipeline::new(engine.clone(), state)
        })
        .collect();
    let containers = ContainerCache::new(args.enrich_config(), tokio::runtime::Handle::current());
    let (alerts_tx, mut alerts_rx) = tokio::sync::mpsc::unbounded_channel();
    let pool = Workers::start(pipelines, containers.clone(), alerts_tx);

    let stop = super::stop_signal(args.duration.map(Duration::from_secs_f64));
    tokio::pin!(stop);
    let (mut alerts, mut undecodable) = (0u64, 0u64);
    loop {
        tokio::select! {
            batch = capture.next_batch() => {
                let Some(batch) = batch else { break };
                for record in batch {
                    match decode(&record, &clock) {
                        Ok(event) => pool.dispatch(event).await,
                        Err(_) => undecodable += 1,
                    }
                }
            }
            Some(alert) = alerts_rx.recv() => {
                alerts += 1;
                stage.publish(alert);
            }
            r = &mut stop => { r?; break; }
        }
    }
    // Let the workers finish what they were given, then send what they found.
    let done = pool.finish().await;
    while let Ok(alert) = alerts_rx.try_recv() {
        alerts += 1;
        stage.publish(alert);
    }
    args.outputs.finish(stage).await;
    let counters = capture.counters()?;
    let events: u64 = done.iter().map(Pipeline::events).sum();
    let processes = done.iter().map(|p| p.state().stats().processes).max().unwrap_or(0);
    let evicted: u64 = done.iter().map(|p| p.state().stats().evicted).sum();
    eprintln!("run: container metadata: {:?}", containers.stats());
    eprintln!(
        "run: {events} events evaluated by {workers} worker(s), {alerts} alerts, {} lost in the kernel, \
         {undecodable} undecodable; {processes} processes tracked, {evicted} evicted",
        counters.iter().map(|c| c.lost).sum::<u64>(),
    );
    Ok(())
}
