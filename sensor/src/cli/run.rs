//! `sensor run`: the live pipeline — capture, state, rules — printing alerts.

use std::{
    io::{self, BufWriter, Write},
    path::PathBuf,
    time::Duration,
};

use anyhow::bail;
use sensor::{
    capture::{Capture, CaptureConfig},
    enrich::{ContainerCache, EnrichConfig, RuntimeApi, RuntimeEndpoint},
    event::{Clock, decode},
    pipeline::{Pipeline, load_rules, syscalls_for},
    rules::{EngineOptions, Priority, RuleMatching, SUGGESTED_OUTPUT},
    state::{State, StateConfig},
};

/// Options of `sensor run`.
#[derive(clap::Args)]
pub struct RunArgs {
    /// Rules files or directories, loaded in order (default: the built-in rules).
    #[arg(long, value_name = "RULES")]
    rules: Vec<PathBuf>,
    /// Print alerts as Falco JSON lines instead of Falco's text line.
    #[arg(long)]
    json: bool,
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
    let cfg = CaptureConfig { syscalls: syscalls_for(&engine), ..CaptureConfig::default() };
    log::info!("{} rules loaded; capturing {} syscalls", engine.rule_count(), cfg.syscalls.len());
    let clock = Clock::now();
    let mut capture = Capture::start(&cfg)?;
    // Seeded after attaching, so no process can slip between the two.
    let state = State::from_proc(StateConfig::default(), clock.wall(0) as i128);
    let mut pipeline = Pipeline::new(engine, state);
    let containers = ContainerCache::new(args.enrich_config(), tokio::runtime::Handle::current());
    let mut out = BufWriter::new(io::stdout().lock());

    let stop = super::stop_signal(args.duration.map(Duration::from_secs_f64));
    tokio::pin!(stop);
    let (mut alerts, mut undecodable) = (0u64, 0u64);
    loop {
        tokio::select! {
            batch = capture.next_batch() => {
                let Some(batch) = batch else { break };
                for record in batch {
                    let Ok(event) = decode(&record, &clock) else {
                        undecodable += 1;
                        continue;
                    };
                    // The container's metadata, waiting at most the configured bound.
                    pipeline.prepare(&event);
                    let container = match pipeline.state().container_of(&event) {
                        Some(id) => containers.lookup_container(id.clone()).await,
                        None => {
                            let mut view = containers.lookup(event.pid, Some(event.cgroup_id)).await;
                            if view.id.is_none()
                                && let Some(known) = pipeline.state().last_known_container(event.pid).cloned()
                            {
                                // Gone before its cgroup could be read: keep what was known.
                                view = containers.lookup_container(known).await;
                            }
                            pipeline.state_mut().set_container(event.pid, event.cgroup_id, view.id.clone());
                            view
                        }
                    };
                    for alert in pipeline.finish(&event, Some(&container)) {
                        alerts += 1;
                        super::print_alert(&mut out, &alert, args.json)?;
                    }
                }
                out.flush()?;
            }
            r = &mut stop => { r?; break; }
        }
    }
    let counters = capture.counters()?;
    let stats = pipeline.state().stats();
    let c = containers.stats();
    eprintln!("run: container metadata: {c:?}");
    eprintln!(
        "run: {} events, {alerts} alerts, {} lost in the kernel, {undecodable} undecodable; {} processes tracked, {} evicted",
        pipeline.events(),
        counters.iter().map(|c| c.lost).sum::<u64>(),
        stats.processes,
        stats.evicted
    );
    Ok(())
}
