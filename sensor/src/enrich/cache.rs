//! [`ContainerCache`]: container ids from cgroups, metadata from runtimes behind an LRU.

use std::{
    borrow::Cow,
    num::NonZeroUsize,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, MutexGuard, Weak,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use lru::LruCache;
use tokio::sync::watch;

use super::{
    ContainerId, FetchError, RuntimeApi, RuntimeEndpoint, RuntimeKind,
    cgroup::{container_id_from_cgroup, container_id_from_cgroup_v2},
    containerd::{ContainerdClient, ContainerdEvent},
    cri::CriClient,
    docker::DockerClient,
    info::ContainerInfo,
};

/// How the cache finds and keeps container metadata.
#[derive(Clone, Debug)]
pub struct EnrichConfig {
    /// Runtime sockets, asked in this order (after those matching the cgroup's runtime kind).
    pub endpoints: Vec<RuntimeEndpoint>,
    /// How long [`ContainerCache::lookup`] waits for metadata not yet cached.
    pub max_wait: Duration,
    /// How many containers' metadata are kept.
    pub capacity: NonZeroUsize,
    /// Bound on each runtime call.
    pub request_timeout: Duration,
    /// After a failed fetch, lookups of that container answer [`MetaStatus::Failed`] for this
    /// long before the runtimes are asked again.
    pub retry_after: Duration,
    /// Where procfs is mounted.
    pub proc_root: PathBuf,
    /// Where the cgroup v2 hierarchy is mounted (`None`: found in `/proc/self/mountinfo`).
    pub cgroup2_root: Option<PathBuf>,
    /// Follow the runtimes' container events (Docker API, containerd's event service): fetch
    /// metadata when a container starts, forget it when the container is removed.
    pub follow_events: bool,
    /// At start, fetch the metadata of the containers already running (CRI and Docker-API
    /// runtimes; one fetch at a time, at most `capacity`).
    pub prefetch_running: bool,
}

impl Default for EnrichConfig {
    fn default() -> Self {
        Self {
            endpoints: RuntimeEndpoint::defaults(),
            max_wait: Duration::from_millis(5),
            capacity: NonZeroUsize::new(4096).unwrap_or(NonZeroUsize::MIN),
            request_timeout: Duration::from_secs(2),
            retry_after: Duration::from_secs(5),
            proc_root: PathBuf::from("/proc"),
            cgroup2_root: None,
            follow_events: true,
            prefetch_running: true,
        }
    }
}

/// How far a lookup got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaStatus {
    /// A host process: `container.id = host`, no metadata.
    Host,
    /// The container's metadata is known.
    Known,
    /// The metadata is being fetched; fields render `<NA>` until it arrives.
    Pending,
    /// The runtimes could not give the metadata (retried later); fields render `<NA>`.
    Failed,
    /// The process's container could not be told (it exited before its cgroup was read).
    Unknown,
}

/// The answer to a lookup: the container id and, when known, its metadata.
#[derive(Clone, Debug)]
pub struct ContainerView {
    /// The container the process runs in; `None` when it could not be told.
    pub id: Option<ContainerId>,
    /// The runtime's metadata, when known.
    pub info: Option<Arc<ContainerInfo>>,
    /// How far the lookup got.
    pub status: MetaStatus,
}

impl ContainerView {
    /// A field (`container.*`, `k8s.*`) as text; `None` renders `<NA>`. `key` is the
    /// argument of `container.label[key]`, `k8s.pod.label[key]` and the mount fields
    /// (`container.mount.dest[/var/run/docker.sock]`, `container.mount[0]`).
    pub fn field<'v>(&'v self, name: &str, key: Option<&str>) -> Option<Cow<'v, str>> {
        let id = self.id.as_ref()?;
        match name {
            "container.id" => return Some(Cow::Borrowed(id.short())),
            "container.full_id" => return Some(Cow::Borrowed(id.full())),
            _ => {}
        }
        if id.is_host() {
            // Falco: the host's name is "host"; other container fields are empty there.
            return (name == "container.name").then_some(Cow::Borrowed("host"));
        }
        let info = self.info.as_deref()?;
        let nonempty = |s: &'v str| (!s.is_empty()).then_some(Cow::Borrowed(s));
        let pod = info.pod.as_ref();
        let labels = |map: &std::collections::BTreeMap<String, String>| {
            map.iter().map(|(k, v)| format!("{k}:{v}")).collect::<Vec<_>>().join(", ")
        };
        match name {
            "container.name" => nonempty(&info.name),
            "container.image" => nonempty(&info.image),
            "container.image.repository" => nonempty(&info.image_repository),
            "container.image.tag" => nonempty(&info.image_tag),
            "container.image.digest" => nonempty(&info.image_digest),
            "container.image.id" => nonempty(&info.image_id),
            "container.type" => nonempty(&info.runtime),
            "container.privileged" => info.privileged.map(bool_text),
            "container.host_network" => info.host_network.map(bool_text),
            "container.host_pid" => info.host_pid.map(bool_text),
            "container.host_ipc" => info.host_ipc.map(bool_text),
            "container.label" => info.labels.get(key?).map(|v| Cow::Borrowed(v.as_str())),
            "container.labels" => Some(Cow::Owned(labels(&info.labels))),
            "container.start_ts" => (info.start_ts != 0).then(|| Cow::Owned(info.start_ts.to_string())),
            "container.ip" => nonempty(&info.ip),
            "k8s.pod.name" => nonempty(&pod?.name),
            "k8s.ns.name" => nonempty(&pod?.namespace),
            "k8s.pod.uid" | "k8s.pod.id" => nonempty(&pod?.uid),
            "k8s.pod.sandbox_id" => pod?.sandbox_id.get(..super::SHORT_ID_LEN).map(Cow::Borrowed),
            "k8s.pod.full_sandbox_id" => nonempty(&pod?.sandbox_id),
            "k8s.pod.label" => pod?.labels.get(key?).map(|v| Cow::Borrowed(v.as_str())),
            "k8s.pod.labels" => Some(Cow::Owned(labels(&pod?.labels))),
            "k8s.pod.ip" => nonempty(&pod?.ip),
            _ => super::info::mount_field(&info.mounts, name, key).map(Cow::Owned),
        }
    }

    /// A view of a process whose container could not be told.
    fn unknown() -> Self {
        Self { id: None, info: None, status: MetaStatus::Unknown }
    }
}

/// A flag as the text the container fields give it.
fn bool_text(b: bool) -> Cow<'static, str> {
    Cow::Borrowed(if b { "true" } else { "false" })
}

/// A snapshot of the cache's counters (all since start).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ContainerStats {
    /// Lookups made.
    pub lookups: u64,
    /// Lookups that found a host process.
    pub host: u64,
    /// Lookups whose process's container could not be told (process gone, cgroup unknown).
    pub no_id: u64,
    /// Lookups that found the container's metadata cached.
    pub hits: u64,
    /// Lookups of a container whose metadata was not cached (fetch started or under way,
    /// or a recent failure).
    pub misses: u64,
    /// Misses whose metadata arrived within the wait bound.
    pub resolved_in_wait: u64,
    /// Lookups of a container answered without metadata (fields render `<NA>`).
    pub unknown_yet: u64,
    /// Runtime fetches completed.
    pub fetches: u64,
    /// Fetches that failed (no runtime knew the id, or errors).
    pub failures: u64,
    /// Total time of completed fetches, nanoseconds.
    pub fetch_ns_total: u64,
    /// Longest completed fetch, nanoseconds.
    pub fetch_ns_max: u64,
    /// Total time callers spent in lookups (waits included), nanoseconds.
    pub lookup_ns_total: u64,
    /// Container events received from the runtimes.
    pub runtime_events: u64,
    /// Fetches started by a runtime's container start event.
    pub prefetches: u64,
    /// Containers forgotten because the runtime removed them.
    pub evictions: u64,
    /// Containers whose metadata (or pending fetch, or failure) is cached now.
    pub cached: u64,
}

/// The live counters behind [`ContainerStats`].
#[derive(Default)]
struct Stats {
    lookups: AtomicU64,
    host: AtomicU64,
    no_id: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    resolved_in_wait: AtomicU64,
    unknown_yet: AtomicU64,
    fetches: AtomicU64,
    failures: AtomicU64,
    fetch_ns_total: AtomicU64,
    fetch_ns_max: AtomicU64,
    lookup_ns_total: AtomicU64,
    runtime_events: AtomicU64,
    prefetches: AtomicU64,
    evictions: AtomicU64,
}

/// One container's entry in the LRU.
enum Slot {
    /// A fetch is under way; the flag turns true when it has finished.
    Pending(watch::Receiver<bool>),
    /// The metadata.
    Ready(Arc<ContainerInfo>),
    /// The last fetch failed; the runtimes are asked again after `until`.
    Failed { until: Instant },
}

/// What a lookup found in the LRU.
enum Probe {
    Ready(Arc<ContainerInfo>),
    Failed,
    Wait(watch::Receiver<bool>),
}

/// A runtime client.
enum Client {
    Cri(Box<CriClient>),
    Containerd(Box<ContainerdClient>),
    Docker { client: DockerClient, api: RuntimeApi },
}

impl Client {
    /// The API it speaks.
    fn api(&self) -> RuntimeApi {
        match self {
            Self::Cri(_) => RuntimeApi::Cri,
            Self::Containerd(_) => RuntimeApi::Containerd,
            Self::Docker { api, .. } => *api,
        }
    }

    /// The socket path.
    fn path(&self) -> &Path {
        match self {
            Self::Cri(c) => c.path(),
            Self::Containerd(c) => c.path(),
            Self::Docker { client, .. } => client.path(),
        }
    }

    /// Fetches container `id`.
    async fn fetch(&self, id: &str) -> Result<ContainerInfo, FetchError> {
        match self {
            Self::Cri(c) => c.fetch(id).await,
            Self::Containerd(c) => c.fetch(id).await,
            Self::Docker { client, .. } => client.fetch(id).await,
        }
    }
}

/// The LRU state, under one lock.
struct State {
    /// Full container id → entry.
    containers: LruCache<Box<str>, Slot>,
    /// cgroup v2 id → container, learned from `/proc/PID/cgroup`.
    cgroups: LruCache<u64, ContainerId>,
}

/// Shared by the cache's handles and its fetch tasks.
struct Inner {
    config: EnrichConfig,
    cgroup2_root: Option<PathBuf>,
    /// Whether this host has only the cgroup v2 hierarchy (then every process's v2 cgroup
    /// tells host from container).
    cgroup_v2_only: bool,
    clients: Vec<Client>,
    state: Mutex<State>,
    stats: Stats,
    runtime: tokio::runtime::Handle,
    /// Turns true when the cache is dropped: event followers stop.
    shutdown: watch::Sender<bool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

/// Container metadata for processes, fetched from the runtimes and kept in an LRU.
///
/// Cheap to clone: clones share the cache.
#[derive(Clone)]
pub struct ContainerCache {
    inner: Arc<Inner>,
}

impl ContainerCache {
    /// A cache asking `config`'s runtimes; fetches run as tasks on `runtime`.
    pub fn new(config: EnrichConfig, runtime: tokio::runtime::Handle) -> Self {
        // The CRI channels spawn their connection tasks on the runtime they are made in.
        let _in_runtime = runtime.enter();
        let clients = config
            .endpoints
            .iter()
            .map(|e| match e.api {
                RuntimeApi::Cri => Client::Cri(Box::new(CriClient::new(e.path.clone(), config.request_timeout))),
                RuntimeApi::Containerd => {
                    Client::Containerd(Box::new(ContainerdClient::new(e.path.clone(), config.request_timeout)))
                }
                RuntimeApi::Docker | RuntimeApi::Podman => Client::Docker {
                    client: DockerClient::new(
                        e.path.clone(),
                        if e.api == RuntimeApi::Podman { "podman" } else { "docker" },
                        config.request_timeout,
                    ),
                    api: e.api,
                },
            })
            .collect();
        let cgroup2_root = config.cgroup2_root.clone().or_else(find_cgroup2_root);
        let cgroup_v2_only = std::fs::read_to_string("/proc/self/cgroup")
            .is_ok_and(|text| !text.is_empty() && text.lines().all(|l| l.starts_with("0::")));
        let cgroups_capacity = config.capacity.saturating_mul(NonZeroUsize::new(4).unwrap_or(NonZeroUsize::MIN));
        let state = State { containers: LruCache::new(config.capacity), cgroups: LruCache::new(cgroups_capacity) };
        let (shutdown, _) = watch::channel(false);
        let inner = Arc::new(Inner {
            config,
            cgroup2_root,
            cgroup_v2_only,
            clients,
            state: Mutex::new(state),
            stats: Stats::default(),
            runtime,
            shutdown,
        });
        if inner.config.prefetch_running {
            inner.runtime.spawn(Inner::prefetch_running(Arc::downgrade(&inner)));
        }
        if inner.config.follow_events {
            for (index, client) in inner.clients.iter().enumerate() {
                if matches!(client, Client::Docker { .. } | Client::Containerd(_)) {
                    let follower = Inner::follow_events(Arc::downgrade(&inner), index, inner.shutdown.subscribe());
                    inner.runtime.spawn(follower);
                }
            }
        }
        Self { inner }
    }

    /// The container of process `pid` (its event's cgroup v2 id, when known, in
    /// `cgroup_id`), waiting at most [`EnrichConfig::max_wait`] for metadata not yet cached.
    pub async fn lookup(&self, pid: u32, cgroup_id: Option<u64>) -> ContainerView {
        let start = Instant::now();
        let id = self.container_id(pid, cgroup_id);
        self.resolve(id, start).await
    }

    /// Like [`lookup`](Self::lookup) but never waits: metadata not yet cached is fetched in
    /// the background and the answer is [`MetaStatus::Pending`].
    pub fn lookup_now(&self, pid: u32, cgroup_id: Option<u64>) -> ContainerView {
        let start = Instant::now();
        let id = self.container_id(pid, cgroup_id);
        self.resolve_now(id, start)
    }

    /// The metadata of container `id` (e.g. kept per process by the process table),
    /// waiting at most [`EnrichConfig::max_wait`]; no procfs read.
    pub async fn lookup_container(&self, id: ContainerId) -> ContainerView {
        self.resolve(Some(id), Instant::now()).await
    }

    /// Like [`lookup_container`](Self::lookup_container) but never waits.
    pub fn lookup_container_now(&self, id: ContainerId) -> ContainerView {
        self.resolve_now(Some(id), Instant::now())
    }

    /// The container process `pid` runs in, from the event's cgroup v2 id when a process
    /// already proved which container it is, else from `/proc/PID/cgroup`; `None` when the
    /// process is gone and the cgroup id unknown. Synchronous: one small procfs read at most.
    pub fn container_id(&self, pid: u32, cgroup_id: Option<u64>) -> Option<ContainerId> {
        if let Some(cgroup_id) = cgroup_id
            && let Some(id) = self.state().cgroups.get(&cgroup_id)
        {
            return Some(id.clone());
        }
        let path = self.inner.config.proc_root.join(pid.to_string()).join("cgroup");
        let text = std::fs::read_to_string(path).ok()?;
        let id = container_id_from_cgroup(&text);
        if let Some(cgroup_id) = cgroup_id {
            self.learn_cgroup(cgroup_id, &text, &id);
        }
        Some(id)
    }

    /// The cached metadata of container `id`, if ready; starts no fetch and counts nothing.
    pub fn peek(&self, id: &ContainerId) -> Option<Arc<ContainerInfo>> {
        match self.state().containers.peek(id.full()) {
            Some(Slot::Ready(info)) => Some(info.clone()),
            _ => None,
        }
    }

    /// The counters now.
    pub fn stats(&self) -> ContainerStats {
        let s = &self.inner.stats;
        ContainerStats {
            lookups: s.lookups.load(Relaxed),
            host: s.host.load(Relaxed),
            no_id: s.no_id.load(Relaxed),
            hits: s.hits.load(Relaxed),
            misses: s.misses.load(Relaxed),
            resolved_in_wait: s.resolved_in_wait.load(Relaxed),
            unknown_yet: s.unknown_yet.load(Relaxed),
            fetches: s.fetches.load(Relaxed),
            failures: s.failures.load(Relaxed),
            fetch_ns_total: s.fetch_ns_total.load(Relaxed),
            fetch_ns_max: s.fetch_ns_max.load(Relaxed),
            lookup_ns_total: s.lookup_ns_total.load(Relaxed),
            runtime_events: s.runtime_events.load(Relaxed),
            prefetches: s.prefetches.load(Relaxed),
            evictions: s.evictions.load(Relaxed),
            cached: self.state().containers.len() as u64,
        }
    }

    /// A lookup of `id` that waits at most `max_wait`; `start` is when it began.
    async fn resolve(&self, id: Option<ContainerId>, start: Instant) -> ContainerView {
        let view = match self.begin(id) {
            Ok(view) => view,
            Err((id, mut rx)) => {
                let waited = tokio::time::timeout(self.inner.config.max_wait, rx.wait_for(|done| *done)).await;
                let info = waited.is_ok().then(|| self.ready(&id)).flatten();
                if info.is_some() {
                    self.inner.stats.resolved_in_wait.fetch_add(1, Relaxed);
                }
                self.finish(id, info)
            }
        };
        self.inner.stats.lookup_ns_total.fetch_add(elapsed_ns(start), Relaxed);
        view
    }

    /// A lookup of `id` that does not wait; `start` is when it began.
    fn resolve_now(&self, id: Option<ContainerId>, start: Instant) -> ContainerView {
        let view = match self.begin(id) {
            Ok(view) => view,
            Err((id, _)) => self.finish(id, None),
        };
        self.inner.stats.lookup_ns_total.fetch_add(elapsed_ns(start), Relaxed);
        view
    }

    /// The first half of a lookup: a finished view, or the container to wait for.
    fn begin(&self, id: Option<ContainerId>) -> Result<ContainerView, (ContainerId, watch::Receiver<bool>)> {
        let stats = &self.inner.stats;
        stats.lookups.fetch_add(1, Relaxed);
        let Some(id) = id else {
            stats.no_id.fetch_add(1, Relaxed);
            return Ok(ContainerView::unknown());
        };
        if id.is_host() {
            stats.host.fetch_add(1, Relaxed);
            return Ok(ContainerView { id: Some(id), info: None, status: MetaStatus::Host });
        }
        match self.probe(&id) {
            Probe::Ready(info) => {
                stats.hits.fetch_add(1, Relaxed);
                Ok(ContainerView { id: Some(id), info: Some(info), status: MetaStatus::Known })
            }
            Probe::Failed => {
                stats.misses.fetch_add(1, Relaxed);
                stats.unknown_yet.fetch_add(1, Relaxed);
                Ok(ContainerView { id: Some(id), info: None, status: MetaStatus::Failed })
            }
            Probe::Wait(rx) => {
                stats.misses.fetch_add(1, Relaxed);
                Err((id, rx))
            }
        }
    }

    /// The view of a container after waiting: with `info`, or pending / failed.
    fn finish(&self, id: ContainerId, info: Option<Arc<ContainerInfo>>) -> ContainerView {
        if let Some(info) = info {
            return ContainerView { id: Some(id), info: Some(info), status: MetaStatus::Known };
        }
        self.inner.stats.unknown_yet.fetch_add(1, Relaxed);
        let failed = matches!(self.state().containers.peek(id.full()), Some(Slot::Failed { .. }));
        ContainerView {
            id: Some(id),
            info: None,
            status: if failed { MetaStatus::Failed } else { MetaStatus::Pending },
        }
    }

    /// The cached metadata of `id`, if ready.
    fn ready(&self, id: &ContainerId) -> Option<Arc<ContainerInfo>> {
        match self.state().containers.get(id.full()) {
            Some(Slot::Ready(info)) => Some(info.clone()),
            _ => None,
        }
    }

    /// Looks `id` up in the LRU, starting a fetch when it is absent or its failure expired.
    fn probe(&self, id: &ContainerId) -> Probe {
        Inner::probe(&self.inner, id)
    }

    /// Remembers that cgroup v2 id `cgroup_id` is container `id`, when the process's v2
    /// path names that container and the path's directory has that id (the process may
    /// have moved since its event). Host cgroups are remembered only on cgroup-v2-only
    /// hosts: on hybrid hosts a container placed only in v1 hierarchies would share a host
    /// process's v2 cgroup.
    fn learn_cgroup(&self, cgroup_id: u64, text: &str, id: &ContainerId) {
        use std::os::unix::fs::MetadataExt;
        let Some(root) = &self.inner.cgroup2_root else { return };
        let v2 = container_id_from_cgroup_v2(text);
        let remember = match &v2 {
            Some(v2) => v2 == id,
            None => id.is_host() && self.inner.cgroup_v2_only,
        };
        let Some(path) = text.lines().find_map(|l| l.strip_prefix("0::")) else { return };
        let dir = root.join(path.trim_start_matches('/'));
        if remember && std::fs::metadata(dir).is_ok_and(|m| m.ino() == cgroup_id) {
            self.state().cgroups.put(cgroup_id, id.clone());
        }
    }

    /// The locked state (a panic while holding the lock leaves it usable: entries are
    /// whole values).
    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state()
    }
}

impl Inner {
    /// The locked state.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Looks `id` up in the LRU, starting a fetch when it is absent or its failure expired.
    fn probe(inner: &Arc<Self>, id: &ContainerId) -> Probe {
        let mut state = inner.state();
        match state.containers.get(id.full()) {
            Some(Slot::Ready(info)) => return Probe::Ready(info.clone()),
            // A fetch task that ended without an outcome (its runtime shut down) is redone.
            Some(Slot::Pending(rx)) if rx.has_changed().is_ok() => return Probe::Wait(rx.clone()),
            Some(Slot::Failed { until }) if Instant::now() < *until => return Probe::Failed,
            Some(Slot::Pending(_) | Slot::Failed { .. }) | None => {}
        }
        let (tx, rx) = watch::channel(false);
        state.containers.put(id.full().into(), Slot::Pending(rx.clone()));
        drop(state);
        let task_inner = inner.clone();
        let id = id.clone();
        inner.runtime.spawn(async move { Inner::fetch(task_inner, id, tx).await });
        Probe::Wait(rx)
    }

    /// Acts on a runtime's container event: fetch on `start` (so the container's first
    /// events find its metadata), forget on `destroy` (Docker) or `remove` (podman).
    fn on_runtime_event(inner: &Arc<Self>, kind: RuntimeKind, action: &str, id: &str) {
        inner.stats.runtime_events.fetch_add(1, Relaxed);
        if id.len() != super::FULL_ID_LEN || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return;
        }
        match action {
            "start" => {
                Self::prefetch(inner, ContainerId::Container { id: id.to_ascii_lowercase().into(), kind });
            }
            // Docker says destroy, podman remove.
            "destroy" | "remove" => {
                let id = id.to_ascii_lowercase();
                let mut state = inner.state();
                if state.containers.pop(id.as_str()).is_some() {
                    inner.stats.evictions.fetch_add(1, Relaxed);
                }
                let stale: Vec<u64> =
                    state.cgroups.iter().filter(|(_, c)| c.full() == id).map(|(cgroup, _)| *cgroup).collect();
                for cgroup in stale {
                    state.cgroups.pop(&cgroup);
                }
            }
            _ => {}
        }
    }

    /// Starts fetching `id` unless it is cached; the fetch's completion, if one started.
    fn prefetch(inner: &Arc<Self>, id: ContainerId) -> Option<watch::Receiver<bool>> {
        if inner.state().containers.contains(id.full()) {
            return None;
        }
        inner.stats.prefetches.fetch_add(1, Relaxed);
        match Self::probe(inner, &id) {
            Probe::Wait(rx) => Some(rx),
            Probe::Ready(_) | Probe::Failed => None,
        }
    }

    /// Fetches the metadata of the containers running now, one at a time.
    async fn prefetch_running(weak: Weak<Self>) {
        let Some(inner) = weak.upgrade() else { return };
        let mut ids = Vec::new();
        for client in &inner.clients {
            let (listed, kind) = match client {
                Client::Cri(c) => (c.list_running().await, RuntimeKind::Cri),
                Client::Docker { client, api } => (
                    client.list_running().await,
                    if *api == RuntimeApi::Podman { RuntimeKind::Podman } else { RuntimeKind::Docker },
                ),
                // Its containers include stopped ones; CRI and Docker list the running ones.
                Client::Containerd(_) => continue,
            };
            match listed {
                Ok(list) => ids.extend(list.into_iter().map(|id| (id, kind))),
                Err(FetchError::Unavailable(e)) => log::debug!("listing running containers: {e}"),
                Err(e) => log::warn!("listing running containers: {e}"),
            }
        }
        drop(inner);
        for (id, kind) in ids.into_iter().take(self_capacity(&weak)) {
            if id.len() != super::FULL_ID_LEN {
                continue;
            }
            let Some(inner) = weak.upgrade() else { return };
            let pending = Self::prefetch(&inner, ContainerId::Container { id: id.to_ascii_lowercase().into(), kind });
            drop(inner);
            if let Some(mut done) = pending {
                let _ = done.wait_for(|done| *done).await;
            }
        }
    }

    /// Follows the container events of client `index` (Docker API or containerd) until the
    /// cache is dropped, reconnecting with a growing pause (the runtime may start later or
    /// restart).
    async fn follow_events(weak: Weak<Self>, index: usize, mut shutdown: watch::Receiver<bool>) {
        let mut pause = Duration::from_millis(500);
        loop {
            let Some(inner) = weak.upgrade() else { return };
            let source = match &inner.clients[index] {
                Client::Docker { client, api } => EventSource::Docker(
                    client.clone(),
                    if *api == RuntimeApi::Podman { RuntimeKind::Podman } else { RuntimeKind::Docker },
                ),
                Client::Containerd(client) => EventSource::Containerd(client.clone()),
                Client::Cri(_) => return,
            };
            // Only the callbacks hold the cache, so dropping the cache ends this task.
            drop(inner);
            let started = Instant::now();
            let events = weak.clone();
            let outcome = tokio::select! {
                outcome = source.follow(|kind, action, id| {
                    if let Some(inner) = events.upgrade() {
                        Self::on_runtime_event(&inner, kind, action, id);
                    }
                }) => outcome,
                _ = shutdown.wait_for(|stop| *stop) => return,
            };
            match outcome {
                Ok(()) => log::debug!("{}: container events ended", source.path().display()),
                // A runtime that is not installed or not running is normal.
                Err(FetchError::Unavailable(e)) => log::debug!("container events: {e}"),
                Err(e) => log::warn!("container events: {e}"),
            }
            if started.elapsed() > Duration::from_secs(30) {
                pause = Duration::from_millis(500);
            }
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            pause = (pause * 2).min(Duration::from_secs(30));
        }
    }

    /// Fetches `id` from the runtimes, stores the outcome, and wakes the waiters.
    async fn fetch(inner: Arc<Self>, id: ContainerId, done: watch::Sender<bool>) {
        let start = Instant::now();
        let outcome = inner.fetch_from_runtimes(&id).await;
        let elapsed = elapsed_ns(start);
        let stats = &inner.stats;
        let failed = outcome.is_err();
        let slot = match outcome {
            Ok(info) => Slot::Ready(Arc::new(info)),
            Err(error) => {
                log::warn!("container {}: no metadata: {error}", id.full());
                Slot::Failed { until: Instant::now() + inner.config.retry_after }
            }
        };
        inner.state().containers.put(id.full().into(), slot);
        // Counted once stored, so a completed fetch is always visible to lookups.
        if failed {
            stats.failures.fetch_add(1, Relaxed);
        }
        stats.fetch_ns_total.fetch_add(elapsed, Relaxed);
        stats.fetch_ns_max.fetch_max(elapsed, Relaxed);
        stats.fetches.fetch_add(1, Relaxed);
        // Whoever waits (perhaps nobody) sees it done.
        done.send_replace(true);
    }

    /// Asks the runtimes, those matching the id's runtime kind first, until one knows it.
    async fn fetch_from_runtimes(&self, id: &ContainerId) -> Result<ContainerInfo, String> {
        let kind = id.kind().ok_or("a host process has no container")?;
        let mut clients: Vec<&Client> = self.clients.iter().collect();
        clients.sort_by_key(|c| preference(kind, c.api()));
        let mut not_found = Vec::new();
        let mut errors = Vec::new();
        for client in clients {
            match client.fetch(id.full()).await {
                Ok(mut info) => {
                    if info.id.is_empty() {
                        info.id = id.full().to_owned();
                    }
                    return Ok(info);
                }
                Err(FetchError::NotFound) => not_found.push(client.path().display().to_string()),
                Err(FetchError::Unavailable(e)) => log::debug!("{e}"),
                Err(FetchError::Other(e)) => errors.push(e),
            }
        }
        Err(if !errors.is_empty() {
            errors.join("; ")
        } else if !not_found.is_empty() {
            format!("unknown to {}", not_found.join(", "))
        } else {
            format!("no {} runtime socket answers (configured: {})", kind.as_str(), self.endpoint_list())
        })
    }

    /// The configured sockets, for messages.
    fn endpoint_list(&self) -> String {
        self.clients.iter().map(|c| c.path().display().to_string()).collect::<Vec<_>>().join(", ")
    }
}

/// A runtime whose container events the cache follows.
enum EventSource {
    /// A Docker-API socket; its containers are of this kind.
    Docker(DockerClient, RuntimeKind),
    /// containerd's event service (every namespace).
    Containerd(Box<ContainerdClient>),
}

impl EventSource {
    /// The socket path.
    fn path(&self) -> &Path {
        match self {
            Self::Docker(client, _) => client.path(),
            Self::Containerd(client) => client.path(),
        }
    }

    /// Streams events as `deliver(kind, action, id)` with Docker's action names (`start`,
    /// `destroy`), until the stream ends or fails.
    async fn follow(&self, mut deliver: impl FnMut(RuntimeKind, &str, &str)) -> Result<(), FetchError> {
        match self {
            Self::Docker(client, kind) => client.follow_events(|action, id| deliver(*kind, action, id)).await,
            Self::Containerd(client) => {
                client
                    .follow_events(|namespace, what, id| {
                        // CRI's namespace, dockerd's namespace, or a containerd client's.
                        let kind = match namespace {
                            "k8s.io" => RuntimeKind::Cri,
                            "moby" => RuntimeKind::Docker,
                            _ => RuntimeKind::Containerd,
                        };
                        let action = match what {
                            ContainerdEvent::Started => "start",
                            ContainerdEvent::Deleted => "destroy",
                        };
                        deliver(kind, action, id);
                    })
                    .await
            }
        }
    }
}

/// The cache's capacity, 0 once it is dropped.
fn self_capacity(weak: &Weak<Inner>) -> usize {
    weak.upgrade().map_or(0, |inner| inner.config.capacity.get())
}

/// Rank of asking an `api` endpoint for a container found in `kind`'s cgroup (lower first).
fn preference(kind: RuntimeKind, api: RuntimeApi) -> u8 {
    match (kind, api) {
        (RuntimeKind::Cri | RuntimeKind::Containerd | RuntimeKind::Crio, RuntimeApi::Cri) => 0,
        (RuntimeKind::Docker, RuntimeApi::Docker) | (RuntimeKind::Podman, RuntimeApi::Podman) => 0,
        // CRI knows only the containers it made; containerd also knows ctr's and dockerd's.
        (RuntimeKind::Cri | RuntimeKind::Containerd, RuntimeApi::Containerd) => 1,
        (RuntimeKind::Docker, RuntimeApi::Podman) | (RuntimeKind::Podman, RuntimeApi::Docker) => 1,
        _ => 2,
    }
}

/// Nanoseconds since `start`.
fn elapsed_ns(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// The cgroup2 mount point, from `/proc/self/mountinfo`.
fn find_cgroup2_root() -> Option<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mount_point = left.split_whitespace().nth(4)?;
        (right.split_whitespace().next()? == "cgroup2").then(|| PathBuf::from(mount_point))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// A fake procfs with one host process (1) and one Docker process (2).
    fn fake_proc() -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("enrich-proc-{}-{:?}", std::process::id(), std::thread::current().id()));
        for (pid, text) in
            [(1, "0::/init.scope\n".to_owned()), (2, format!("4:memory:/docker/{ID}\n0::/docker/{ID}\n"))]
        {
            std::fs::create_dir_all(dir.join(pid.to_string())).unwrap();
            std::fs::write(dir.join(pid.to_string()).join("cgroup"), text).unwrap();
        }
        dir
    }

    fn config(proc_root: PathBuf, endpoints: Vec<RuntimeEndpoint>) -> EnrichConfig {
        EnrichConfig {
            endpoints,
            proc_root,
            max_wait: Duration::from_millis(200),
            follow_events: false,
            prefetch_running: false,
            ..EnrichConfig::default()
        }
    }

    #[tokio::test]
    async fn host_and_gone_processes() {
        let cache = ContainerCache::new(config(fake_proc(), vec![]), tokio::runtime::Handle::current());
        let host = cache.lookup(1, None).await;
        assert_eq!(host.status, MetaStatus::Host);
        assert_eq!(host.field("container.id", None).as_deref(), Some("host"));
        assert_eq!(host.field("container.name", None).as_deref(), Some("host"));
        assert_eq!(host.field("k8s.pod.name", None), None);
        let gone = cache.lookup(999_999, None).await;
        assert_eq!(gone.status, MetaStatus::Unknown);
        assert_eq!(gone.field("container.id", None), None);
        let s = cache.stats();
        assert_eq!((s.lookups, s.host, s.no_id, s.hits, s.misses), (2, 1, 1, 0, 0));
    }

    #[tokio::test]
    async fn missing_sockets_fail_counted_and_cached() {
        let endpoints = vec![
            RuntimeEndpoint::new(RuntimeApi::Docker, "/nonexistent/docker.sock"),
            RuntimeEndpoint::new(RuntimeApi::Cri, "/nonexistent/cri.sock"),
        ];
        let cache = ContainerCache::new(config(fake_proc(), endpoints), tokio::runtime::Handle::current());
        let view = cache.lookup(2, None).await;
        assert_eq!(view.id.as_ref().map(ContainerId::short), Some(&ID[..12]));
        assert_eq!(view.status, MetaStatus::Failed, "both sockets are missing");
        assert_eq!(view.field("container.id", None).as_deref(), Some(&ID[..12]));
        assert_eq!(view.field("container.name", None), None, "renders <NA>");
        // The failure is cached: no second fetch within retry_after.
        let again = cache.lookup(2, None).await;
        assert_eq!(again.status, MetaStatus::Failed);
        let s = cache.stats();
        assert_eq!((s.lookups, s.misses, s.fetches, s.failures, s.unknown_yet), (2, 2, 1, 1, 2));
    }

    /// A Docker-API server on a unix socket answering inspect requests after `delay`; its
    /// event stream reports container `ID` started, then removed 300 ms later.
    async fn fake_docker(name: &str, delay: Duration) -> PathBuf {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let path = std::env::temp_dir().join(format!("enrich-docker-{}-{name}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else { return };
                tokio::spawn(async move {
                    let mut buf = vec![0; 4096];
                    let n = stream.read(&mut buf).await.unwrap_or(0);
                    let request = String::from_utf8_lossy(&buf[..n]).into_owned();
                    if request.starts_with("GET /events?") {
                        let chunk = |action: &str| {
                            let line = format!(
                                "{{\"Type\":\"container\",\"Action\":\"{action}\",\"Actor\":{{\"ID\":\"{ID}\"}}}}\n"
                            );
                            format!("{:x}\r\n{line}\r\n", line.len())
                        };
                        let head =
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
                        let _ = stream.write_all(format!("{head}{}", chunk("start")).as_bytes()).await;
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        let _ = stream.write_all(chunk("destroy").as_bytes()).await;
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        return;
                    }
                    tokio::time::sleep(delay).await;
                    let (status, body) = if request.starts_with("GET /containers/json ") {
                        ("200 OK", serde_json::json!([{"Id": ID}]).to_string())
                    } else if request.starts_with(&format!("GET /containers/{ID}/json ")) {
                        let body = serde_json::json!({
                            "Id": ID, "Name": "/web", "Config": {"Image": "localhost/app:1", "Labels": {}},
                            "Image": "sha256:ff", "State": {"StartedAt": "2026-11-22T16:44:04Z"}
                        });
                        ("200 OK", body.to_string())
                    } else {
                        ("404 Not Found", r#"{"message":"no such container"}"#.to_owned())
                    };
                    // Chunked, as podman answers.
                    let reply = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(reply.as_bytes()).await;
                });
            }
        });
        path
    }

    #[tokio::test]
    async fn fetch_within_the_bound_then_hit() {
        let socket = fake_docker("bound", Duration::ZERO).await;
        let endpoints = vec![RuntimeEndpoint::new(RuntimeApi::Docker, socket)];
        let cache = ContainerCache::new(config(fake_proc(), endpoints), tokio::runtime::Handle::current());
        let view = cache.lookup(2, None).await;
        assert_eq!(view.status, MetaStatus::Known);
        assert_eq!(view.field("container.name", None).as_deref(), Some("web"));
        assert_eq!(view.field("container.image.repository", None).as_deref(), Some("localhost/app"));
        assert_eq!(view.field("container.type", None).as_deref(), Some("docker"));
        let hit = cache.lookup(2, None).await;
        assert_eq!(hit.status, MetaStatus::Known);
        let s = cache.stats();
        assert_eq!((s.misses, s.resolved_in_wait, s.hits, s.fetches, s.failures), (1, 1, 1, 1, 0));
    }

    #[tokio::test]
    async fn slow_runtime_answers_later_events() {
        let socket = fake_docker("slow", Duration::from_millis(300)).await;
        let endpoints = vec![RuntimeEndpoint::new(RuntimeApi::Docker, socket)];
        let mut cfg = config(fake_proc(), endpoints);
        cfg.max_wait = Duration::from_millis(5);
        let cache = ContainerCache::new(cfg, tokio::runtime::Handle::current());
        let start = Instant::now();
        let first = cache.lookup(2, None).await;
        assert!(start.elapsed() < Duration::from_millis(250), "the wait is bounded: {:?}", start.elapsed());
        assert_eq!(first.status, MetaStatus::Pending);
        assert_eq!(first.field("container.name", None), None);
        assert_eq!(cache.lookup_now(2, None).status, MetaStatus::Pending);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let later = cache.lookup_now(2, None);
        assert_eq!(later.field("container.name", None).as_deref(), Some("web"));
        let s = cache.stats();
        assert_eq!((s.misses, s.unknown_yet, s.hits, s.fetches), (2, 2, 1, 1));
    }

    #[tokio::test]
    async fn unknown_ids_are_failures() {
        let socket = fake_docker("unknown", Duration::ZERO).await;
        let dir = fake_proc();
        let other = "f".repeat(64);
        std::fs::create_dir_all(dir.join("3")).unwrap();
        std::fs::write(dir.join("3/cgroup"), format!("0::/docker/{other}\n")).unwrap();
        let endpoints = vec![RuntimeEndpoint::new(RuntimeApi::Docker, socket)];
        let cache = ContainerCache::new(config(dir, endpoints), tokio::runtime::Handle::current());
        let view = cache.lookup(3, None).await;
        assert_eq!(view.status, MetaStatus::Failed);
        assert_eq!(cache.stats().failures, 1);
    }

    #[tokio::test]
    async fn cgroup_ids_outlive_their_processes() {
        use std::os::unix::fs::MetadataExt;
        let proc_root = fake_proc();
        let cgroup2 = proc_root.join("cgroup2");
        std::fs::create_dir_all(cgroup2.join("docker").join(ID)).unwrap();
        std::fs::create_dir_all(cgroup2.join("init.scope")).unwrap();
        let container_cgroup = std::fs::metadata(cgroup2.join("docker").join(ID)).unwrap().ino();
        let root_cgroup = std::fs::metadata(&cgroup2).unwrap().ino();
        // pid 4: a hybrid-host container process seen only in v1; its v2 cgroup is the root's.
        std::fs::create_dir_all(proc_root.join("4")).unwrap();
        std::fs::write(proc_root.join("4/cgroup"), format!("4:memory:/docker/{ID}\n0::/\n")).unwrap();
        let mut cfg = config(proc_root.clone(), vec![]);
        cfg.cgroup2_root = Some(cgroup2);
        let cache = ContainerCache::new(cfg, tokio::runtime::Handle::current());

        assert_eq!(cache.container_id(2, Some(container_cgroup)).unwrap().full(), ID);
        assert_eq!(cache.container_id(4, Some(root_cgroup)).unwrap().full(), ID);
        std::fs::remove_dir_all(proc_root.join("2")).unwrap();
        std::fs::remove_dir_all(proc_root.join("4")).unwrap();
        // Learned from the v2 path: still resolves once the process is gone.
        assert_eq!(cache.container_id(2, Some(container_cgroup)).unwrap().full(), ID);
        // Not learned: the root v2 cgroup does not tell containers from the host here.
        assert_eq!(cache.container_id(4, Some(root_cgroup)), None);
        // A wrong cgroup id (the process moved since its event) is not learned either.
        assert_eq!(cache.container_id(1, Some(container_cgroup + 1_000_000)), Some(ContainerId::Host));
        assert_eq!(cache.lookup(2, Some(container_cgroup + 1_000_000)).await.status, MetaStatus::Unknown);

        let id = ContainerId::Container { id: ID.into(), kind: RuntimeKind::Docker };
        let view = cache.lookup_container_now(id);
        assert_eq!(view.status, MetaStatus::Pending, "no runtime: fetch under way");
    }

    #[tokio::test]
    async fn runtime_events_prefetch_and_evict() {
        let socket = fake_docker("events", Duration::ZERO).await;
        let endpoints = vec![RuntimeEndpoint::new(RuntimeApi::Docker, socket)];
        let cfg = EnrichConfig { follow_events: true, ..config(fake_proc(), endpoints) };
        let cache = ContainerCache::new(cfg, tokio::runtime::Handle::current());
        let deadline = Instant::now() + Duration::from_secs(5);
        while cache.stats().fetches == 0 {
            assert!(Instant::now() < deadline, "no prefetch on the start event: {:?}", cache.stats());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The container's first event finds its metadata.
        let view = cache.lookup_now(2, None);
        assert_eq!(view.field("container.name", None).as_deref(), Some("web"));
        let s = cache.stats();
        assert_eq!((s.prefetches, s.hits, s.misses), (1, 1, 0), "{s:?}");
        while cache.stats().evictions == 0 {
            assert!(Instant::now() < deadline, "no eviction on the destroy event: {:?}", cache.stats());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(cache.stats().cached, 0);
        assert_eq!(cache.stats().runtime_events, 2);
    }

    #[tokio::test]
    async fn running_containers_are_fetched_at_start() {
        let socket = fake_docker("running", Duration::ZERO).await;
        let endpoints = vec![RuntimeEndpoint::new(RuntimeApi::Docker, socket)];
        let cfg = EnrichConfig { prefetch_running: true, ..config(fake_proc(), endpoints) };
        let cache = ContainerCache::new(cfg, tokio::runtime::Handle::current());
        let deadline = Instant::now() + Duration::from_secs(5);
        while cache.stats().fetches == 0 {
            assert!(Instant::now() < deadline, "no prefetch of running containers: {:?}", cache.stats());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(cache.lookup_now(2, None).status, MetaStatus::Known);
        let s = cache.stats();
        assert_eq!((s.prefetches, s.hits, s.misses, s.failures), (1, 1, 0, 0), "{s:?}");
    }

    #[test]
    fn runtime_preference() {
        assert!(preference(RuntimeKind::Cri, RuntimeApi::Cri) < preference(RuntimeKind::Cri, RuntimeApi::Docker));
        assert!(
            preference(RuntimeKind::Podman, RuntimeApi::Podman) < preference(RuntimeKind::Podman, RuntimeApi::Docker)
        );
        assert!(preference(RuntimeKind::Docker, RuntimeApi::Podman) < preference(RuntimeKind::Docker, RuntimeApi::Cri));
        assert!(
            preference(RuntimeKind::Containerd, RuntimeApi::Cri)
                < preference(RuntimeKind::Containerd, RuntimeApi::Containerd)
        );
        assert!(
            preference(RuntimeKind::Containerd, RuntimeApi::Containerd)
                < preference(RuntimeKind::Containerd, RuntimeApi::Docker)
        );
    }
}
