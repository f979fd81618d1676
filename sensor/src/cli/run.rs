//! `sensor run`: the live pipeline — capture, state, rules — sending alerts to the outputs,
//! with metrics, internal alerts and live rule reloads.

use sensor::k8s_audit::AuditSource;
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime},
};

use anyhow::{Context as _, bail};
use sensor::{
    capture::{Capture, CaptureConfig},
    config::{ContainersConfig, SensorConfig},
    enrich::{ContainerCache, EnrichConfig, RuntimeApi, RuntimeEndpoint},
    event::{Clock, decode},
    metrics::{Metrics, Progress, Snapshot},
    outputs::OutputStage,
    pipeline::{Pipeline, Publisher, Workers, alert_queue, dns_names_for, load_rules, syscalls_for},
    rules::{Alert, AppendOutput, Engine, EngineOptions, Prefilter, Priority, RuleMatching, Value, prefilter},
    state::{DNS_REFRESH, DnsNames, State},
};
use tokio::signal::unix::{SignalKind, signal};

/// Options of `sensor run`; each one given overrides the configuration's value.
#[derive(clap::Args, Clone)]
pub struct RunArgs {
    /// Rules files or directories, loaded in order (default: the configuration's `rules`,
    /// else the built-in rules).
    #[arg(long, value_name = "RULES")]
    rules: Vec<PathBuf>,
    #[command(flatten)]
    config: super::ConfigArgs,
    /// Stop after this many seconds (default: until Ctrl-C or SIGTERM).
    #[arg(long, value_name = "S")]
    duration: Option<f64>,
    /// Load only rules at least this severe (emergency ... debug; default: debug).
    #[arg(long, value_name = "PRIORITY")]
    min_priority: Option<String>,
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
    /// Longest an event waits for its container's metadata, in milliseconds (default 5);
    /// later events of the container get it when it arrives.
    #[arg(long, value_name = "MS")]
    container_wait_ms: Option<u64>,
    /// Pipeline workers (default: one per core). Each process's events stay in order on
    /// one worker; every worker knows every process's ancestry, and a forked child's
    /// worker gets the fds and credentials it inherits from its parent's worker.
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Falco's command line, when it was given instead of `run`: its `-r`, `-A` and rule
    /// selections apply over the configuration.
    #[arg(skip)]
    pub(super) falco: Option<super::falco::FalcoArgs>,
}

impl RunArgs {
    /// The options of `argv` (`sensor run ...`).
    pub(super) fn parse_from_argv(argv: Vec<String>) -> anyhow::Result<RunArgs> {
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(subcommand)]
            command: WrapperCommand,
        }
        #[derive(clap::Subcommand)]
        enum WrapperCommand {
            Run(RunArgs),
        }
        let Wrapper { command: WrapperCommand::Run(args) } =
            <Wrapper as clap::Parser>::try_parse_from(argv).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(args)
    }

    /// The configuration, with this command line's options applied over it.
    fn configuration(&self) -> anyhow::Result<SensorConfig> {
        let mut c = self.config.load()?;
        if let Some(falco) = &self.falco {
            falco.adjust(&mut c);
        }
        if !self.rules.is_empty() {
            c.rules.clone_from(&self.rules);
        }
        if let Some(p) = &self.min_priority {
            c.engine.min_priority = Priority::parse(p).with_context(|| format!("unknown priority `{p}`"))?;
        }
        c.engine.all_matches |= self.all_matches;
        c.engine.suggested_output &= !self.no_suggested_output;
        let sockets = [&self.cri_socket, &self.containerd_socket, &self.docker_socket, &self.podman_socket];
        if sockets.iter().any(|s| !s.is_empty()) {
            let k = &mut c.containers;
            k.cri_sockets = Some(self.cri_socket.clone());
            k.containerd_sockets = Some(self.containerd_socket.clone());
            k.docker_sockets = Some(self.docker_socket.clone());
            k.podman_sockets = Some(self.podman_socket.clone());
        }
        if let Some(ms) = self.container_wait_ms {
            c.containers.wait = Duration::from_millis(ms);
        }
        if let Some(workers) = self.workers {
            c.workers = workers;
        }
        Ok(c)
    }
}

/// The rule engine options a configuration asks for.
pub fn engine_options(c: &SensorConfig) -> EngineOptions {
    EngineOptions {
        min_priority: c.engine.min_priority,
        rule_matching: if c.engine.all_matches { RuleMatching::All } else { RuleMatching::First },
        append_output: c
            .engine
            .suggested_output
            .then(AppendOutput::suggested)
            .into_iter()
            .chain(c.engine.append_output.iter().cloned())
            .collect(),
        select: c.engine.select.iter().map(sensor::config::RuleSelection::selector).collect(),
        ..EngineOptions::default()
    }
}

/// The container enrichment a configuration asks for: its socket lists, or the default
/// sockets when it gives none.
fn enrich_config(c: &ContainersConfig) -> EnrichConfig {
    let defaults = EnrichConfig::default();
    let lists = [
        (RuntimeApi::Cri, &c.cri_sockets),
        (RuntimeApi::Containerd, &c.containerd_sockets),
        (RuntimeApi::Docker, &c.docker_sockets),
        (RuntimeApi::Podman, &c.podman_sockets),
    ];
    let endpoints = if lists.iter().all(|(_, l)| l.is_none()) {
        defaults.endpoints.clone()
    } else {
        lists.iter().flat_map(|(api, paths)| paths.iter().flatten().map(|p| RuntimeEndpoint::new(*api, p))).collect()
    };
    EnrichConfig { endpoints, max_wait: c.wait, ..defaults }
}

/// Loads the rules a configuration names; the report of what is wrong otherwise.
pub(super) fn load_engine(c: &SensorConfig) -> anyhow::Result<Engine> {
    match load_rules(&c.rules, engine_options(c)) {
        Ok((engine, diagnostics)) => {
            for d in &diagnostics {
                log::warn!("{d}");
            }
            Ok(engine)
        }
        Err(report) => bail!("the rules do not load:\n{report}"),
    }
}

/// What the kernel may keep back for `engine`'s rules (logged, so an operator sees what a
/// rule set costs).
fn prefilter_for(engine: &Engine, config: &SensorConfig) -> Prefilter {
    if !config.capture.prefilter {
        return Prefilter::off("capture.prefilter is false");
    }
    let filter = engine.prefilter();
    match (&filter.open, &filter.open_off_reason) {
        (Some(open), _) => log::info!(
            "prefilter: opens kept back in the kernel unless a rule can match them ({} path patterns, {} file \
             names; any path for: {}; closes of their fds {})",
            open.paths.len(),
            open.names.len(),
            prefilter::class_names(open.any),
            if filter.close { "kept back too" } else { "sent (a rule matches close)" },
        ),
        (None, Some(reason)) => log::info!("prefilter: every open is sent: {reason}"),
        (None, None) => {}
    }
    filter
}

/// Runs until the duration ends or a signal arrives.
pub async fn run(args: RunArgs, log_level: Option<String>) -> anyhow::Result<()> {
    let config = args.configuration();
    super::init_logging_for(&config, log_level);
    // From here on SIGTERM and SIGINT stop the sensor cleanly, even while it starts.
    let stop = super::stop_signal(args.duration.map(Duration::from_secs_f64))?;
    let config = config?;
    config.apply_alert_formats();
    config.check_audit_store()?;
    raise_open_files_limit();
    let engine = load_engine(&config)?;
    let metrics = Arc::new(Metrics::new(config.metrics.stall_after));
    metrics.clone().serve(&config.metrics).await?;
    // Before the kernel programs: a broken output stops the sensor before it watches anything.
    let stage = Arc::new(OutputStage::start(&config.outputs).await?);
    // The console's Re-run wakes the benchmark.
    let benchmark_rerun = Arc::new(tokio::sync::Notify::new());
    // After the store output, which makes the store it shows; lives as long as the run.
    let _console = match config.ui.enabled {
        true => Some(
            sensor::console::start(
                &config.ui,
                sensor::console::Mode::Node {
                    store: config.store(),
                    health: metrics.clone(),
                    benchmark_rerun: config.benchmark.enabled.then(|| benchmark_rerun.clone()),
                },
                config.k8s_audit.store.as_ref(),
            )
            .await?,
        ),
        false => None,
    };
    let capture_cfg = CaptureConfig {
        syscalls: syscalls_for(&engine),
        ring_bytes: config.capture.ring_buffer_kib.saturating_mul(1024),
        mode: config.capture.probes,
        prefilter: prefilter_for(&engine, &config),
        ..CaptureConfig::default()
    };
    let rules = engine.rule_count();
    log::info!("{rules} rules loaded; capturing {} syscalls", capture_cfg.syscalls.len());
    let clock = Clock::now();
    let capture = Capture::start(&capture_cfg)?;
    let workers = match config.workers {
        0 => std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        n => n,
    };
    let dns = DnsNames::start(dns_names_for(&engine), DNS_REFRESH);
    let engine = Arc::new(engine);
    // Seeded after attaching, so no process can slip between the two; one state per worker.
    let pipelines = (0..workers)
        .map(|_| {
            let state = State::from_proc(config.state.state_config(), clock.wall(0) as i128).with_dns(dns.clone());
            Pipeline::new(engine.clone(), state)
        })
        .collect();
    let containers = ContainerCache::new(enrich_config(&config.containers), tokio::runtime::Handle::current());
    let (alerts_tx, alerts_rx) = alert_queue(config.alert_queue.bytes());
    let audit = AuditSource::start(&config.k8s_audit, engine.clone(), alerts_tx.clone()).await?;
    let benchmark = sensor::benchmark::Watch::start(
        &config.benchmark,
        alerts_tx.clone(),
        sensor::benchmark::publish::Destinations::new(config.stores(), config.consoles())?,
        benchmark_rerun,
    )?;
    let pool = Workers::start(pipelines, containers.clone(), alerts_tx);
    let publisher = alerts_rx.publish_to(stage.clone());
    capture.weigh_downstream(pool.queued_bytes());
    metrics.set_ready(true);

    let mut runner = Runner {
        watched: Watched::of(&args, &config),
        args: &args,
        config,
        capture,
        clock,
        pool,
        publisher,
        stage,
        containers,
        dns,
        metrics,
        hostname: EngineOptions::default().hostname,
        tally: Tally::default(),
        rules,
        workers,
        loading: None,
        memory: MemoryTrim { due: true, decoded: 0 },
        reload_again: false,
        audit,
        benchmark,
    };
    for notice in runner.stage.notices().to_vec() {
        let fields = vec![("output", Value::Str(notice.output.into()))];
        runner.internal_alert(STORE_ALERT, Priority::Error, notice.message, fields);
    }
    runner.run(stop).await?;
    runner.finish().await
}

/// Counts the run loop keeps for the metrics and the exit summary.
#[derive(Default)]
struct Tally {
    events: HashMap<String, u64>,
    decoded: u64,
    undecodable: u64,
    partial: HashMap<&'static str, u64>,
    internal: HashMap<&'static str, u64>,
    reloads: (u64, u64),
    /// Kernel losses and sheds already reported by a drop alert.
    lost_reported: u64,
    /// Kernel events counted at the last drop check.
    events_reported: u64,
}

/// The running sensor: the loop from capture to outputs and what it reacts to.
struct Runner<'a> {
    args: &'a RunArgs,
    config: SensorConfig,
    watched: Watched,
    capture: Capture,
    clock: Clock,
    pool: Workers,
    publisher: Publisher,
    stage: Arc<OutputStage>,
    containers: ContainerCache,
    dns: DnsNames,
    metrics: Arc<Metrics>,
    hostname: String,
    tally: Tally,
    /// Rules loaded now.
    rules: usize,
    workers: usize,
    /// The reload being read and compiled, if any.
    loading: Option<Loading>,
    /// Another reload was asked for while one was loading.
    reload_again: bool,
    memory: MemoryTrim,
    /// Kubernetes audit events, when a source of them is enabled.
    audit: Option<AuditSource>,
    /// The node benchmark, when enabled.
    benchmark: Option<sensor::benchmark::Watch>,
}

/// A reload being read and compiled ([`Runner::start_reload`]).
type Loading = tokio::task::JoinHandle<anyhow::Result<(SensorConfig, Engine)>>;

/// The outcome of the reload under way; never resolves without one.
async fn loaded(loading: &mut Option<Loading>) -> anyhow::Result<(SensorConfig, Engine)> {
    match loading {
        Some(task) => task.await.unwrap_or_else(|e| Err(anyhow::anyhow!("the reload stopped: {e}"))),
        None => std::future::pending().await,
    }
}

/// Raises the soft limit on open files to the hard one: service managers often leave it at
/// 1,024, which runtime sockets, outputs and metrics connections share.
fn raise_open_files_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: a valid rlimit to fill, then to set.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        log::warn!("cannot read RLIMIT_NOFILE: {}", std::io::Error::last_os_error());
        return;
    }
    if limit.rlim_cur >= limit.rlim_max {
        return;
    }
    let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        log::info!("open files limit raised from {} to {}", limit.rlim_cur, limit.rlim_max);
    } else {
        log::warn!("cannot raise the open files limit from {}: {}", limit.rlim_cur, std::io::Error::last_os_error());
    }
}

/// The name of the internal alert raised when the kernel loses events.
const DROP_ALERT: &str = "sensor internal: event drops";
/// Its name and shape as Falco raises it (`internal_alerts.falco_drop_alert`).
const FALCO_DROP_ALERT: &str = "Falco internal: syscall event drop";
/// The name of the internal alert raised when a reload is refused.
const RELOAD_ALERT: &str = "sensor internal: reload failed";
/// The name of the internal alert raised when an alert store was unusable and set aside.
const STORE_ALERT: &str = "sensor internal: alert store set aside";

impl Runner<'_> {
    async fn run(&mut self, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
        tokio::pin!(stop);
        let mut hangup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
        let mut refresh = tokio::time::interval(Duration::from_secs(1));
        let mut drops = tokio::time::interval(self.config.internal_alerts.interval);
        drops.reset();
        let mut watch = tokio::time::interval(self.config.reload.interval);
        let mut trim = tokio::time::interval(MEMORY_TRIM_INTERVAL);
        loop {
            tokio::select! {
                batch = self.capture.next_batch() => {
                    let Some(batch) = batch else { break };
                    self.dispatch(batch).await;
                }
                _ = refresh.tick() => {
                    self.refresh_metrics();
                    self.memory.second_passed(self.tally.decoded);
                }
                _ = drops.tick() => self.check_drops(),
                _ = trim.tick() => self.memory.due = true,
                _ = hangup.recv() => {
                    log::info!("SIGHUP: reloading");
                    self.start_reload();
                }
                _ = watch.tick(), if self.config.reload.watch && self.loading.is_none() => {
                    if Watched::of(self.args, &self.config) != self.watched {
                        log::info!("a rules or configuration file changed: reloading");
                        self.start_reload();
                    }
                }
                loaded = loaded(&mut self.loading) => {
                    self.loading = None;
                    self.reload(loaded).await;
                }
                () = &mut stop => {
                    self.drain_rings().await;
                    break;
                }
            }
        }
        Ok(())
    }

    /// Decodes a batch of records and hands the events to the workers.
    async fn dispatch(&mut self, batch: Vec<bytes::Bytes>) {
        for record in batch {
            match decode(&record, &self.clock) {
                Ok(event) => {
                    self.tally.decoded += 1;
                    for reason in event.syscall().map(|sc| sc.gaps()).into_iter().flatten() {
                        *self.tally.partial.entry(reason).or_default() += 1;
                    }
                    match self.tally.events.get_mut(event.type_name()) {
                        Some(n) => *n += 1,
                        None => {
                            self.tally.events.insert(event.type_name().to_owned(), 1);
                        }
                    }
                    self.pool.dispatch(event, record.len()).await;
                }
                Err(_) => self.tally.undecodable += 1,
            }
        }
    }

    /// At a stop, takes what the rings still hold (the signal that stopped the sensor is in
    /// there, and rules watch for it): until they stay empty briefly, for a second at most.
    async fn drain_rings(&mut self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while tokio::time::Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_millis(100), self.capture.next_batch()).await {
                Ok(Some(batch)) => self.dispatch(batch).await,
                _ => break,
            }
        }
    }

    /// Raises an internal alert through the outputs.
    fn internal_alert(
        &mut self,
        rule: &'static str,
        priority: Priority,
        message: String,
        fields: Vec<(&str, Value<'static>)>,
    ) {
        log::warn!("{rule}: {message}");
        *self.tally.internal.entry(rule).or_default() += 1;
        let fields = fields.into_iter().map(|(k, v)| (k.into(), Some(v))).collect();
        self.stage.publish(Alert::internal(rule, priority, message, self.hostname.clone(), fields));
    }

    /// Raises [`DROP_ALERT`] when the kernel lost or shed more events than the threshold since
    /// the last check (so at most one alert per interval).
    fn check_drops(&mut self) {
        let Ok(counters) = self.capture.counters() else { return };
        let lost: u64 = counters.iter().map(|c| c.lost).sum();
        let shed: u64 = counters.iter().map(|c| c.shed + c.throttled).sum();
        let emitted: u64 = counters.iter().map(|c| c.emitted).sum();
        let new = (lost + shed).saturating_sub(self.tally.lost_reported);
        let events = emitted.saturating_sub(self.tally.events_reported) + new;
        self.tally.events_reported = emitted;
        if new <= self.config.internal_alerts.drop_threshold {
            return;
        }
        self.tally.lost_reported = lost + shed;
        let interval = self.config.internal_alerts.interval;
        if self.config.internal_alerts.falco_drop_alert {
            // Falco's rule name, message and output fields (strings, as Falco's are), for
            // the dashboards and alert routes written for Falco's.
            let n_lost = counters.iter().map(|c| c.lost).sum::<u64>();
            let fields = [
                ("n_evts", events),
                ("n_drops", new),
                ("n_drops_buffer_total", n_lost),
                ("n_drops_scratch_map", 0),
                ("n_drops_page_faults", 0),
                ("n_drops_bug", 0),
                ("ebpf_enabled", 1),
            ];
            let span = if interval == Duration::from_secs(1) { "second".to_owned() } else { format!("{interval:?}") };
            self.internal_alert(
                FALCO_DROP_ALERT,
                Priority::Critical,
                format!("{FALCO_DROP_ALERT}. {new} system calls dropped in last {span}."),
                fields.into_iter().map(|(k, v)| (k, Value::Str(v.to_string().into()))).collect(),
            );
            return;
        }
        let per_cpu: Vec<String> = counters
            .iter()
            .enumerate()
            .filter(|(_, c)| c.lost + c.shed + c.throttled > 0)
            .map(|(i, c)| format!("cpu {i}: {} lost, {} shed, {} throttled", c.lost, c.shed, c.throttled))
            .collect();
        self.internal_alert(
            DROP_ALERT,
            Priority::Critical,
            format!(
                "{new} events dropped in the kernel in the last {interval:?} ({lost} lost because a ring buffer \
                 was full, and {shed} held back under pressure: bulk events at half full, a flooding \
                 process's beyond its rate; in all; {}): raise capture.ring_buffer_kib or narrow the rules",
                per_cpu.join(", ")
            ),
            vec![
                ("sensor.lost_events", Value::UInt(new)),
                ("sensor.lost_events_total", Value::UInt(lost)),
                ("sensor.shed_events_total", Value::UInt(shed)),
            ],
        );
    }

    /// Reads and compiles the configuration and rules again, off the run loop (a large
    /// rules set takes a while): the loop goes on with the old rules until
    /// [`Runner::reload`] applies the outcome. A reload asked for meanwhile waits for it.
    fn start_reload(&mut self) {
        if self.loading.is_some() {
            self.reload_again = true;
            return;
        }
        let args = self.args.clone();
        self.loading = Some(tokio::task::spawn_blocking(move || {
            let config = args.configuration()?;
            let engine = load_engine(&config)?;
            Ok((config, engine))
        }));
    }

    /// Applies what [`Runner::start_reload`] read: only if everything loaded, the new rules
    /// (and the syscalls they need) replace the old ones, between two events. Otherwise the
    /// old rules stay and [`RELOAD_ALERT`] is raised.
    async fn reload(&mut self, loaded: anyhow::Result<(SensorConfig, Engine)>) {
        let outcome = match loaded {
            Ok((config, engine)) => self.apply_reload(config, engine).await,
            Err(e) => Err(e),
        };
        // What was read, whether it loaded or not: a broken file is retried once it changes.
        self.watched = Watched::of(self.args, &self.config);
        if std::mem::take(&mut self.reload_again) {
            self.start_reload();
        }
        match outcome {
            Ok(rules) => {
                self.tally.reloads.0 += 1;
                log::info!("reloaded: {rules} rules");
            }
            Err(e) => {
                self.tally.reloads.1 += 1;
                self.internal_alert(
                    RELOAD_ALERT,
                    Priority::Error,
                    format!("the old rules stay: {e:#}"),
                    vec![("sensor.reload_error", Value::Str(format!("{e:#}").into()))],
                );
            }
        }
    }

    async fn apply_reload(&mut self, config: SensorConfig, engine: Engine) -> anyhow::Result<usize> {
        // The kernel sends everything while rules change, then keeps back what the new
        // ones cannot match.
        self.capture.set_prefilter(&Prefilter::off("reloading"))?;
        self.capture.set_syscalls(&syscalls_for(&engine))?;
        self.dns.set_names(dns_names_for(&engine));
        let rules = engine.rule_count();
        self.rules = rules;
        let prefilter = prefilter_for(&engine, &config);
        let engine = Arc::new(engine);
        if let Some(audit) = &self.audit {
            audit.set_engine(engine.clone());
        }
        self.pool.set_engine(engine).await;
        self.capture.set_prefilter(&prefilter)?;
        config.apply_alert_formats();
        let needs_restart = [
            ("outputs", config.outputs != self.config.outputs),
            ("metrics", config.metrics != self.config.metrics),
            ("capture", config.capture != self.config.capture),
            ("containers", config.containers != self.config.containers),
            ("workers", config.workers != self.config.workers),
            ("alert_queue", config.alert_queue != self.config.alert_queue),
            ("ui", config.ui != self.config.ui),
            ("k8s_audit", config.k8s_audit != self.config.k8s_audit),
            ("benchmark", config.benchmark != self.config.benchmark),
            ("log", config.log != self.config.log),
        ];
        for (section, _) in needs_restart.iter().filter(|(_, changed)| *changed) {
            log::warn!("configuration `{section}` changed: it applies after a restart");
        }
        // Engine, rules, reload and internal alert settings apply now.
        self.config.rules = config.rules;
        self.config.engine = config.engine;
        self.config.internal_alerts = config.internal_alerts;
        self.config.reload = config.reload;
        Ok(rules)
    }

    /// Publishes a snapshot of every stage's counters to the metrics endpoint.
    fn refresh_metrics(&self) {
        let t = &self.tally;
        let (processes, fds) = self.pool.table_sizes();
        let rings = self.capture.ring_fill().unwrap_or_default();
        let ring_progress = rings.iter().enumerate().map(|(i, r)| Progress {
            stage: format!("ring {i}"),
            done: r.read_bytes,
            waiting: r.pending_bytes,
        });
        let worker_progress = self.pool.progress().into_iter().enumerate().map(|(i, (done, waiting))| Progress {
            stage: format!("worker {i}"),
            done,
            waiting,
        });
        self.metrics.update(Snapshot {
            kernel: self.capture.counters().unwrap_or_default(),
            prefiltered: self.capture.prefiltered().unwrap_or_default(),
            progress: ring_progress.chain(worker_progress).collect(),
            pipeline_lost: self.pool.lost(),
            rings,
            events: t.events.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            undecodable: t.undecodable,
            partial: t.partial.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            evaluated: t.decoded,
            rules_loaded: self.rules as u64,
            matches: self.publisher.matches().into_iter().collect(),
            outputs: self.stage.counters(),
            containers: self.containers.stats(),
            processes,
            fds,
            alerts_dropped: self.publisher.dropped(),
            alert_queue_bytes: self.publisher.queued_bytes() as u64,
            internal_alerts: t.internal.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            reloads: t.reloads,
            ingest: None,
            k8s_audit: self.audit.as_ref().map(AuditSource::counters),
            benchmark: self.benchmark.as_ref().map(sensor::benchmark::Watch::counters),
        });
    }

    /// Stops capture, lets the workers finish, delivers what they found, and reports.
    async fn finish(self) -> anyhow::Result<()> {
        let Runner {
            args, capture, pool, publisher, stage, containers, metrics, tally, workers, audit, benchmark, ..
        } = self;
        // Its alert sender must go for the alert queue to end.
        drop(benchmark);
        metrics.set_ready(false);
        let counters = capture.counters()?;
        // Detach the programs first: nothing new arrives while the pipeline drains.
        drop(capture);
        if let Some(audit) = audit {
            let c = audit.finish().await;
            let refused: Vec<String> = c.refused.iter().map(|(why, n)| format!("{n} {why}")).collect();
            eprintln!(
                "run: k8s_audit: {} events received, {} evaluated, refused: {}",
                c.received,
                c.evaluated,
                if refused.is_empty() { "none".into() } else { refused.join(", ") }
            );
        }
        let done = pool.finish().await;
        // The workers are gone, so the publisher ends once it has published what they found.
        let dropped = publisher.dropped();
        let alerts: u64 = publisher.finish().await.values().map(|m| m.alerts).sum();
        let stage = Arc::into_inner(stage).context("the output stage is still shared at exit")?;
        args.config.finish(stage).await;
        let events: u64 = done.iter().map(Pipeline::events).sum();
        let processes = done.iter().map(|p| p.state().stats().processes).max().unwrap_or(0);
        let evicted: u64 = done.iter().map(|p| p.state().stats().evicted).sum();
        let swept: u64 = done.iter().map(|p| p.state().stats().swept).sum();
        eprintln!("run: container metadata: {:?}", containers.stats());
        eprintln!(
            "run: {events} events evaluated by {workers} worker(s), {} alerts ({} dropped: queue full), {} lost \
             in the kernel ({} more held back under pressure), {} undecodable; {processes} processes tracked, \
             {evicted} evicted, {swept} swept (gone without an exit event)",
            alerts,
            dropped,
            counters.iter().map(|c| c.lost).sum::<u64>(),
            counters.iter().map(|c| c.shed + c.throttled).sum::<u64>(),
            tally.undecodable,
        );
        Ok(())
    }
}

/// The files a reload reads, with their modification times and sizes: the configuration
/// file and the rules files (every `.yaml`/`.yml` of a rules directory).
#[derive(Debug, PartialEq, Eq)]
struct Watched(Vec<(PathBuf, Option<(SystemTime, u64)>)>);

impl Watched {
    fn of(args: &RunArgs, config: &SensorConfig) -> Self {
        let mut files: Vec<PathBuf> = args.config.config.iter().cloned().collect();
        for path in &config.rules {
            match std::fs::read_dir(path) {
                Ok(dir) => {
                    let mut entries: Vec<PathBuf> = dir
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                        .collect();
                    entries.sort();
                    files.extend(entries);
                }
                Err(_) => files.push(path.clone()),
            }
        }
        let stamp = |p: &Path| std::fs::metadata(p).ok().and_then(|m| Some((m.modified().ok()?, m.len())));
        Watched(files.into_iter().map(|p| (stamp(&p), p)).map(|(s, p)| (p, s)).collect())
    }
}

/// How often the memory freed since is given back to the kernel, at most.
const MEMORY_TRIM_INTERVAL: Duration = Duration::from_secs(60);
/// Events decoded in a second below which the sensor is quiet enough to give memory back:
/// never under load, when the pages would only be faulted in again and the trim would hold
/// the allocator's locks against the workers.
const QUIET_EVENTS_PER_SECOND: u64 = 2_000;

/// Gives memory that starting, a reload or a burst (containers come and go, a storm fills
/// the queues) used and freed back to the kernel: glibc's allocator otherwise keeps free
/// pages between live allocations (1.8 MB of 38 MB resident after starting with the built-in
/// rules). Due at start and every [`MEMORY_TRIM_INTERVAL`]; done in the first quiet second.
struct MemoryTrim {
    due: bool,
    /// Events decoded when the last second ended.
    decoded: u64,
}

impl MemoryTrim {
    /// A second has passed, by when `decoded` events had been decoded in all.
    fn second_passed(&mut self, decoded: u64) {
        let recent = decoded.saturating_sub(std::mem::replace(&mut self.decoded, decoded));
        if self.due && recent < QUIET_EVENTS_PER_SECOND {
            self.due = false;
            #[cfg(target_env = "gnu")]
            // SAFETY: malloc_trim only walks the allocator's own free lists.
            unsafe {
                libc::malloc_trim(0);
            }
        }
    }
}
