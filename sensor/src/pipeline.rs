//! The pipeline from decoded events to alerts: state, then rules. Live capture and replay
//! both go through it, so a recorded capture alerts exactly as it would have live.

mod alerts;

pub use alerts::{AlertReceiver, AlertSender, DEFAULT_QUEUE_BYTES, Matches, Publisher, RuleMatches, alert_queue};

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering::Relaxed},
};

use sensor_abi::syscalls::{SYSCALLS, Syscall};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use crate::{
    enrich::ContainerView,
    event::{Event, EventKind},
    rules::{Alert, Engine, Field, Scratch},
    state::{Process, State},
};

/// The embedded text of `rules/<file>`, reported as `<built-in>/<file>`.
macro_rules! built_in {
    ($file:literal) => {
        (concat!("<built-in>/", $file), include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/", $file)))
    };
}

/// The built-in rules (`rules/*.yaml`), used when no `--rules` are given: (name, text) pairs
/// loaded in this order. The shared lists and macros come first so that every theme sees
/// them; then the themes from the most specific to the most general, and the informational
/// bad-practice rules last, because with `rule_matching: first` only the first rule an event
/// matches alerts.
pub const DEFAULT_RULES: &[(&str, &str)] = &[
    built_in!("macros.yaml"),
    built_in!("sensor.yaml"),
    built_in!("container.yaml"),
    built_in!("kubernetes.yaml"),
    built_in!("privilege.yaml"),
    built_in!("network.yaml"),
    built_in!("process.yaml"),
    built_in!("filesystem.yaml"),
    built_in!("practices.yaml"),
    built_in!("k8s_audit.yaml"),
];

/// The syscalls to capture for `engine`: every one its rules can match, plus those the
/// state needs (`Syscall::state`). Rules without an event type match everything, so
/// everything is captured then.
pub fn syscalls_for(engine: &Engine) -> Vec<&'static Syscall> {
    match engine.event_types() {
        None => SYSCALLS.iter().collect(),
        Some(types) => SYSCALLS.iter().filter(|s| s.state || types.contains(s.name)).collect(),
    }
}

/// The fields whose values are DNS names of socket addresses.
const DNS_NAME_FIELDS: &[Field] = &[Field::FdCipName, Field::FdSipName, Field::FdLipName, Field::FdRipName];

/// The DNS names `engine`'s rules compare socket addresses with (`fd.sip.name =
/// "api.example.com"`), which must resolve before events name their addresses.
pub fn dns_names_for(engine: &Engine) -> std::collections::BTreeSet<String> {
    engine.strings_compared_with(DNS_NAME_FIELDS)
}

/// Events in, alerts out.
pub struct Pipeline {
    state: State,
    engine: Arc<Engine>,
    scratch: Scratch,
    events: u64,
}

impl Pipeline {
    /// A pipeline over `state` with the rules of `engine` (shared by every worker).
    pub fn new(engine: impl Into<Arc<Engine>>, state: State) -> Self {
        Self { state, engine: engine.into(), scratch: Scratch::default(), events: 0 }
    }

    /// Applies an event to the state without evaluating rules (a lifecycle event another
    /// worker owns, see [`Workers`]).
    pub fn apply(&mut self, ev: &Event) {
        self.state.before(ev);
        self.state.after(ev);
    }

    /// Runs one event through state and rules, without container metadata.
    pub fn process(&mut self, ev: &Event) -> Vec<Alert> {
        self.prepare(ev);
        self.finish(ev, None)
    }

    /// First half of [`process`](Self::process): applies the event to the state. The
    /// caller may then look up the event's container ([`State::container_of`]) before `finish`.
    pub fn prepare(&mut self, ev: &Event) {
        self.events += 1;
        self.state.before(ev);
    }

    /// Second half of [`process`](Self::process): evaluates the rules on the event with
    /// its container's metadata, then applies what must wait until after them.
    pub fn finish(&mut self, ev: &Event, container: Option<&ContainerView>) -> Vec<Alert> {
        self.finish_admitted(ev, container, &mut |_| true)
    }

    /// [`finish`](Self::finish), rendering only the alerts of rules `admit` lets through
    /// ([`Engine::process_admitted`]).
    pub fn finish_admitted(
        &mut self,
        ev: &Event,
        container: Option<&ContainerView>,
        admit: &mut dyn FnMut(&str) -> bool,
    ) -> Vec<Alert> {
        let alerts = if ev.is_state_only() {
            Vec::new()
        } else {
            self.engine.process_admitted(&self.state.view(ev, container), &mut self.scratch, admit)
        };
        self.state.after(ev);
        alerts
    }

    /// Runs the rules alone on an event that brings its own state (a replayed field map,
    /// `state::FieldMapEvent`), leaving this pipeline's state alone.
    pub fn evaluate(&mut self, ev: &dyn crate::rules::FieldSource) -> Vec<Alert> {
        self.events += 1;
        self.engine.process(ev, &mut self.scratch)
    }

    /// The state, mutably (to record what enrichment found).
    pub fn state_mut(&mut self) -> &mut State {
        &mut self.state
    }

    /// The state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Events processed.
    pub fn events(&self) -> u64 {
        self.events
    }
}

/// Whether every worker's state needs `ev`: process lifecycle (fork, successful exec,
/// exit) and cgroup moves, so that each worker knows every process's ancestry and container.
fn is_lifecycle(ev: &Event) -> bool {
    match &ev.kind {
        EventKind::ProcFork { .. } | EventKind::ProcExit { .. } | EventKind::CgroupAttach { .. } => true,
        EventKind::Syscall(sc) => sc.ret == 0 && matches!(sc.args, crate::event::SyscallArgs::Exec { .. }),
        EventKind::ProcExec { .. } => false,
    }
}

/// Work for a worker, in the order the dispatcher sent it.
enum Job {
    /// An event to evaluate rules on, or only to apply to the state; `room` is its share of
    /// the worker's [`QUEUE_BYTES`], given back when the job is done.
    Event { event: Arc<Event>, evaluate: bool, handoff: Option<Handoff>, room: OwnedSemaphorePermit },
    /// New rules, for every event after this one (a reload).
    Engine(Arc<Engine>),
}

/// What a worker reports about its state, for the metrics.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Processes in its table.
    pub processes: AtomicU64,
    /// Fds tracked over all its processes.
    pub fds: AtomicU64,
    /// Jobs it took from its queue: its progress, which `/healthz` watches.
    pub jobs: AtomicU64,
}

/// Items lost between stages because the stage they were for had stopped (a worker that
/// failed): counted, never silent. Alerts the outputs could not take are counted by the
/// alert queue ([`Publisher::dropped`]).
#[derive(Debug, Default)]
pub struct Lost {
    /// Events (or reloads) a stopped worker could not take.
    pub jobs: AtomicU64,
    /// Forked children whose worker stopped before taking its copy.
    pub handoffs: AtomicU64,
}

impl Lost {
    /// Each count with its metric label.
    pub fn counts(&self) -> Vec<(&'static str, u64)> {
        let Lost { jobs, handoffs } = self;
        vec![("job", jobs.load(Relaxed)), ("handoff", handoffs.load(Relaxed))]
    }
}

/// Most bytes of events queued for one worker (about: see [`Workers::dispatch`]).
pub const QUEUE_BYTES: usize = 16 << 20;
/// Most jobs queued for one worker.
const QUEUE_JOBS: usize = 4096;

/// How often a worker recounts its tables (counting fds walks every process).
const STATS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// A fork whose parent and child belong to different workers: the parent's worker, the only
/// one that followed the parent's fds and credentials, gives its copy of the new child to
/// the child's worker, which waits for it before going on.
enum Handoff {
    Give(oneshot::Sender<Process>),
    Take(oneshot::Receiver<Process>),
}

/// The pipeline spread over several workers, each a [`Pipeline`] with its own state.
///
/// Events are routed by process id, so each process's events are evaluated in order by
/// one worker; lifecycle events are also applied by every other worker, so that each
/// knows every process's ancestry (`proc.pname`, `proc.aname`). A forked child whose
/// worker differs from its parent's gets its inherited fds and credentials handed over
/// from the parent's worker (see [`Handoff`]). Container metadata comes from one shared
/// cache.
///
/// The handoff cannot deadlock: every worker receives the lifecycle events in the same
/// order, and a worker waits only for another to reach the very fork it is at.
pub struct Workers {
    senders: Vec<mpsc::Sender<Job>>,
    /// Each worker's queue, in bytes ([`QUEUE_BYTES`]).
    room: Vec<Arc<Semaphore>>,
    tasks: Vec<tokio::task::JoinHandle<Pipeline>>,
    stats: Vec<Arc<WorkerStats>>,
    lost: Arc<Lost>,
}

impl Workers {
    /// Starts one worker per pipeline on the current tokio runtime; alerts go to `alerts`.
    pub fn start(pipelines: Vec<Pipeline>, containers: crate::enrich::ContainerCache, alerts: AlertSender) -> Self {
        let mut senders = Vec::new();
        let mut room = Vec::new();
        let mut tasks = Vec::new();
        let mut all_stats = Vec::new();
        let lost = Arc::new(Lost::default());
        for mut pipeline in pipelines {
            let (tx, mut rx) = mpsc::channel::<Job>(QUEUE_JOBS);
            room.push(Arc::new(Semaphore::new(QUEUE_BYTES)));
            let containers = containers.clone();
            let alerts = alerts.clone();
            let stats = Arc::new(WorkerStats::default());
            let lost = lost.clone();
            senders.push(tx);
            all_stats.push(stats.clone());
            tasks.push(tokio::spawn(async move {
                let mut counted = std::time::Instant::now() - STATS_INTERVAL;
                while let Some(job) = rx.recv().await {
                    stats.jobs.fetch_add(1, Relaxed);
                    // `_room` is given back at the end of this turn.
                    let (event, evaluate, handoff, _room) = match job {
                        Job::Event { event, evaluate, handoff, room } => (event, evaluate, handoff, room),
                        Job::Engine(engine) => {
                            pipeline.engine = engine;
                            continue;
                        }
                    };
                    let ev = &*event;
                    if evaluate && !ev.is_state_only() {
                        pipeline.prepare(ev);
                        let container = container_of(&mut pipeline, &containers, ev).await;
                        // A full queue counts what it drops, before or after rendering.
                        for alert in pipeline.finish_admitted(ev, Some(&container), &mut |rule| alerts.admits(rule)) {
                            alerts.send(alert);
                        }
                    } else {
                        pipeline.apply(ev);
                    }
                    if counted.elapsed() >= STATS_INTERVAL {
                        counted = std::time::Instant::now();
                        let table = pipeline.state().processes();
                        stats.processes.store(table.len() as u64, Relaxed);
                        stats.fds.store(table.iter().map(|p| p.fds.len() as u64).sum(), Relaxed);
                    }
                    let EventKind::ProcFork { child_pid, .. } = ev.kind else { continue };
                    match handoff {
                        Some(Handoff::Give(tx)) => {
                            if let Some(child) = pipeline.state().processes().get(child_pid)
                                && tx.send(child.clone()).is_err()
                            {
                                lost.handoffs.fetch_add(1, Relaxed);
                            }
                        }
                        // A parent unknown to its worker sends nothing: keep this worker's view.
                        Some(Handoff::Take(rx)) => {
                            if let Ok(child) = rx.await {
                                pipeline.state_mut().adopt(child);
                            }
                        }
                        None => {}
                    }
                }
                pipeline
            }));
        }
        Self { senders, room, tasks, stats: all_stats, lost }
    }

    /// Evaluates every event dispatched after this call with `engine` (a rules reload):
    /// no event is lost or evaluated twice across the switch.
    pub async fn set_engine(&self, engine: Arc<Engine>) {
        for tx in &self.senders {
            if tx.send(Job::Engine(engine.clone())).await.is_err() {
                self.lost.jobs.fetch_add(1, Relaxed);
            }
        }
    }

    /// Processes and fds tracked: the largest process table (every worker follows every
    /// process's lifecycle) and the fds over all workers (each follows its own processes').
    pub fn table_sizes(&self) -> (u64, u64) {
        let processes = self.stats.iter().map(|s| s.processes.load(Relaxed)).max().unwrap_or(0);
        let fds = self.stats.iter().map(|s| s.fds.load(Relaxed)).sum();
        (processes, fds)
    }

    /// Each worker's progress: jobs taken and jobs queued. A worker that stopped has work
    /// it will never take, so it counts one job waiting at least, and `/healthz` names it.
    pub fn progress(&self) -> Vec<(u64, u64)> {
        self.senders
            .iter()
            .zip(&self.stats)
            .map(|(tx, stats)| {
                let queued = (tx.max_capacity() - tx.capacity()) as u64;
                (stats.jobs.load(Relaxed), if tx.is_closed() { queued.max(1) } else { queued })
            })
            .collect()
    }

    /// Items lost between stages, by kind.
    pub fn lost(&self) -> Vec<(&'static str, u64)> {
        self.lost.counts()
    }

    /// The worker that evaluates the events of process `pid`.
    fn owner(&self, pid: u32) -> usize {
        pid as usize % self.senders.len()
    }

    /// Hands `ev`, decoded from a record of `bytes`, to its worker (and lifecycle events to
    /// every worker's state), once the worker's queue has room for it: a slow worker makes
    /// the run loop wait, the rings fill, and the kernel counts what it holds back.
    pub async fn dispatch(&self, ev: Event, bytes: usize) {
        // The decoded event holds about what its record did, plus its own struct.
        let cost = (size_of::<Event>() + 2 * bytes).min(QUEUE_BYTES) as u32;
        let owner = self.owner(ev.pid);
        let (mut give, mut take) = (None, None);
        if let EventKind::ProcFork { child_pid, .. } = ev.kind {
            let heir = self.owner(child_pid);
            if heir != owner {
                let (tx, rx) = oneshot::channel();
                give = Some((owner, Handoff::Give(tx)));
                take = Some((heir, Handoff::Take(rx)));
            }
        }
        let event = Arc::new(ev);
        let everyone = is_lifecycle(&event);
        for (i, tx) in self.senders.iter().enumerate() {
            if i == owner || everyone {
                let handoff = [&mut give, &mut take]
                    .into_iter()
                    .find(|h| h.as_ref().is_some_and(|(worker, _)| *worker == i))
                    .and_then(Option::take)
                    .map(|(_, h)| h);
                // A worker that stopped has failed; its share is lost with the channel.
                let Ok(room) = self.room[i].clone().acquire_many_owned(cost).await else {
                    self.lost.jobs.fetch_add(1, Relaxed);
                    continue;
                };
                let job = Job::Event { event: event.clone(), evaluate: i == owner, handoff, room };
                if tx.send(job).await.is_err() {
                    self.lost.jobs.fetch_add(1, Relaxed);
                }
            }
        }
    }

    /// Waits for the workers to finish what they were given; returns their pipelines.
    pub async fn finish(self) -> Vec<Pipeline> {
        drop(self.senders);
        let mut done = Vec::new();
        for t in self.tasks {
            if let Ok(p) = t.await {
                done.push(p);
            }
        }
        done
    }

    /// The bytes queued for the workers now (as [`Workers::dispatch`] counts them), for the
    /// kernel's overload policy ([`crate::capture::Capture::weigh_downstream`]).
    pub fn queued_bytes(&self) -> impl Fn() -> u64 + Send + Sync + 'static {
        let room = self.room.clone();
        move || room.iter().map(|r| QUEUE_BYTES.saturating_sub(r.available_permits()) as u64).sum()
    }
}

/// The container of `ev`: the one the state knows for its cgroup, else a lookup in the
/// cache (waiting at most its bound), else what the state last knew of the process.
pub async fn container_of(
    pipeline: &mut Pipeline,
    containers: &crate::enrich::ContainerCache,
    ev: &Event,
) -> ContainerView {
    if let Some(id) = pipeline.state().container_of(ev) {
        return containers.lookup_container(id.clone()).await;
    }
    let mut view = containers.lookup(ev.pid, Some(ev.cgroup_id)).await;
    if view.id.is_none()
        && let Some(known) = pipeline.state().last_known_container(ev.pid).cloned()
    {
        // Gone before its cgroup could be read: keep what was known.
        view = containers.lookup_container(known).await;
    }
    pipeline.state_mut().set_container(ev.pid, ev.cgroup_id, view.id.clone());
    view
}

/// The entry of a rules list that stands for the built-in rules, so that local files can
/// come after them (`rules: [builtin, /etc/sensor/rules.d]`).
pub const BUILTIN_RULES: &str = "builtin";

/// Loads the rules of `paths` in order ([`BUILTIN_RULES`] for the built-in ones, which an
/// empty list also means). On failure, the diagnostics to print (every one with
/// file:line:column).
pub fn load_rules(
    paths: &[std::path::PathBuf],
    opts: crate::rules::EngineOptions,
) -> Result<(Engine, Vec<crate::rules::Diagnostic>), crate::rules::Report> {
    let mut set = load_rule_set(paths);
    for (selector, enable) in &opts.select {
        if set.select(selector, *enable) == 0 {
            log::warn!("rules selection: {} matches no loaded rule", selector);
        }
    }
    crate::rules::build_engine(&set, opts)
}

/// The rules of `paths` loaded in order, as [`load_rules`] reads them, not compiled.
pub fn load_rule_set(paths: &[std::path::PathBuf]) -> crate::rules::RuleSet {
    let mut set = crate::rules::RuleSet::default();
    let builtin = std::path::PathBuf::from(BUILTIN_RULES);
    for path in if paths.is_empty() { std::slice::from_ref(&builtin) } else { paths } {
        if *path == builtin {
            for (name, text) in DEFAULT_RULES {
                set.load_str(name, text);
            }
        } else {
            set.load_paths(std::slice::from_ref(path));
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        event::{EventKind, SyscallArgs, SyscallEvent},
        state::{State, StateConfig},
    };

    fn event(pid: u32, kind: EventKind) -> Event {
        Event::for_test(pid, "mycat", kind)
    }

    /// Two workers with the built-in rules and no container runtime.
    fn two_workers() -> (Workers, AlertReceiver) {
        let (engine, _) = load_rules(&[], crate::rules::EngineOptions::default()).unwrap();
        let engine = Arc::new(engine);
        let pipelines = (0..2).map(|_| Pipeline::new(engine.clone(), State::new(StateConfig::default()))).collect();
        let cache = crate::enrich::ContainerCache::new(
            crate::enrich::EnrichConfig { endpoints: vec![], ..Default::default() },
            tokio::runtime::Handle::current(),
        );
        let (tx, rx) = alert_queue(DEFAULT_QUEUE_BYTES);
        (Workers::start(pipelines, cache, tx), rx)
    }

    #[tokio::test]
    async fn workers_evaluate_each_event_once_and_share_lifecycle() {
        let (workers, mut rx) = two_workers();
        // Pids beyond pid_max: nothing is read from this host's /proc for them.
        let (parent, child) = (4_000_000, 4_000_001);
        workers.dispatch(event(parent, EventKind::ProcFork { child_pid: child, child_tid: child }), 0).await;
        let open =
            SyscallArgs::Open { dirfd: Some(-100), path: Some("/etc/shadow".into()), flags: 0, mode: 0, resolve: None };
        let sc = SyscallEvent::new("openat", 257, 3, open);
        workers.dispatch(Event { ppid: parent, ..event(child, EventKind::Syscall(sc)) }, 0).await;
        let done = workers.finish().await;
        let mut alerts = Vec::new();
        while let Some(a) = rx.try_recv() {
            alerts.push(a);
        }
        assert_eq!(alerts.len(), 1, "one worker evaluates the open");
        assert_eq!(done.iter().map(Pipeline::events).sum::<u64>(), 2, "each event evaluated once");
        for p in &done {
            assert_eq!(p.state().processes().get(child).map(|c| c.ppid), Some(parent), "every worker knows the fork");
        }
    }

    #[tokio::test]
    async fn a_child_on_another_worker_inherits_its_parents_fds() {
        let (workers, _rx) = two_workers();
        // Even and odd pids: parent on worker 0, child on worker 1.
        let (parent, child) = (4_000_000, 4_000_001);
        assert_ne!(workers.owner(parent), workers.owner(child));
        let memfd = SyscallArgs::MemfdCreate { name: Some("payload".into()), flags: 0 };
        let sc = SyscallEvent::new("memfd_create", 319, 3, memfd);
        workers.dispatch(event(parent, EventKind::Syscall(sc)), 0).await;
        workers.dispatch(event(parent, EventKind::ProcFork { child_pid: child, child_tid: child }), 0).await;
        let done = workers.finish().await;
        let fd = done[1].state().processes().get(child).and_then(|c| c.fds.get(&3).cloned());
        assert_eq!(fd, Some(crate::state::Fd::Memfd { name: "payload".into() }), "the child's worker knows fd 3");
    }

    #[test]
    fn builtin_in_a_rules_list_loads_the_built_in_rules_there() {
        let dir = std::env::temp_dir().join(format!("sensor-builtin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let local = dir.join("local.yaml");
        // Uses a built-in macro, so it loads only after the built-in rules.
        std::fs::write(
            &local,
            "- rule: Local\n  desc: d\n  condition: sensor_spawned_process and proc.name = x\n  output: o\n  priority: INFO\n",
        )
        .unwrap();
        let opts = crate::rules::EngineOptions::default;
        let (alone, _) = load_rules(&[], opts()).unwrap();
        let (both, _) = load_rules(&[BUILTIN_RULES.into(), local.clone()], opts()).unwrap();
        assert_eq!(both.rule_count(), alone.rule_count() + 1);
        assert!(load_rules(&[local], opts()).is_err(), "alone, the local file lacks the built-in macro");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn built_in_rules_load_cleanly() {
        let (engine, diagnostics) =
            load_rules(&[], crate::rules::EngineOptions::default()).expect("built-in rules load");
        // Not even a warning: every list and macro is used, every rule names captured event types.
        assert!(diagnostics.is_empty(), "{diagnostics:#?}");
        assert!(engine.rule_count() >= 40, "{} rules", engine.rule_count());
        let names: Vec<_> = syscalls_for(&engine).iter().map(|s| s.name).collect();
        // The rules', and the state's: the working directory, fd copies, process groups.
        for needed in ["ptrace", "init_module", "openat", "mount", "kill", "bpf", "setns", "chmod", "renameat2"]
            .into_iter()
            .chain(["chdir", "fchdir", "fcntl", "setsid", "setpgid"])
        {
            assert!(names.contains(&needed), "{needed} not captured: {names:?}");
        }
        assert!(!names.contains(&"mprotect"), "no rule or state needs mprotect: {names:?}");
    }

    #[test]
    fn the_working_directory_and_session_are_followed_whatever_the_rules_name() {
        // Falco's rules name no chdir, yet their opens of relative paths need the cwd.
        let falco = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/falco/falco_rules.yaml");
        let (engine, _) = load_rules(&[falco.into()], crate::rules::EngineOptions::default()).unwrap();
        let names: Vec<_> = syscalls_for(&engine).iter().map(|s| s.name).collect();
        for needed in ["chdir", "fchdir", "fcntl", "setsid", "setpgid"] {
            assert!(names.contains(&needed), "{needed} not captured: {names:?}");
        }
    }

    #[test]
    fn the_first_match_is_the_most_specific_rule() {
        let (engine, _) = load_rules(&[], crate::rules::EngineOptions::default()).unwrap();
        let fired = |fields: serde_json::Value| {
            let ev = crate::state::FieldMapEvent::from_json(&fields).unwrap();
            assert_eq!(ev.mismatches(), Vec::<String>::new());
            engine.process_one(&ev.view()).into_iter().map(|a| a.rule).collect::<Vec<_>>()
        };
        // A privileged container whose first program is a miner: the miner, not the bad practice.
        let miner = serde_json::json!({"evt.type": "execve", "evt.res": "SUCCESS", "container.id": "3ad7b26ded6d",
            "container.privileged": true, "proc.vpid": 1, "proc.name": "xmrig", "proc.pname": "containerd-shim"});
        assert_eq!(fired(miner), ["Crypto miner started"]);
        // Writing the sensor's rules is tampering with the sensor before it is a write below /etc.
        let rules = serde_json::json!({"evt.type": "openat", "evt.res": "SUCCESS", "container.id": "host",
            "evt.is_open_write": true, "fd.name": "/etc/sensor/rules.yaml", "proc.name": "sh"});
        assert_eq!(fired(rules), ["Sensor files modified"]);
        // A dropped binary run from /tmp is the dropped binary.
        let dropped = serde_json::json!({"evt.type": "execve", "evt.res": "SUCCESS", "container.id": "3ad7b26ded6d",
            "proc.is_exe_upper_layer": true, "proc.exepath": "/tmp/x", "proc.name": "x", "proc.pname": "sh"});
        assert_eq!(fired(dropped), ["Binary dropped into a container and executed"]);
    }

    #[test]
    fn every_rules_file_is_built_in_and_the_directory_loads_alike() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".yaml"))
            .collect();
        files.sort();
        let mut built_in: Vec<String> =
            DEFAULT_RULES.iter().map(|(name, _)| name.trim_start_matches("<built-in>/").to_owned()).collect();
        built_in.sort();
        assert_eq!(files, built_in, "every rules/*.yaml is embedded");
        // `--rules rules/` loads the files in name order, which must give the same rules: the
        // theme files hold rules only, so no list or macro is used before it is defined.
        let report = crate::rules::validate(&[dir]);
        assert!(report.is_ok() && report.to_string().ends_with("0 errors, 0 warnings"), "{report}");
        let (engine, _) = load_rules(&[], crate::rules::EngineOptions::default()).unwrap();
        assert!(report.to_string().starts_with(&format!("{} rules", engine.rule_count())), "{report}");
    }
}
