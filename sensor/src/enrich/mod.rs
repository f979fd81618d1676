//! Container and pod enrichment: which container a process runs in, and what its runtime
//! knows about it (Falco's `container.*` and `k8s.*` fields).
//!
//! Two steps:
//! 1. **The id**, from the process's cgroup path, synchronously and without I/O beyond
//!    `/proc/PID/cgroup`: [`container_id_from_cgroup`] → [`ContainerId`] (`host`, or a
//!    64-hex id with the [`RuntimeKind`] its path names).
//! 2. **The metadata**, from the runtime over its unix socket, asynchronously behind an
//!    LRU cache: [`ContainerCache`] → [`ContainerInfo`] (name, image, labels, pod, ...).
//!    Runtimes are CRI (containerd, CRI-O: `ContainerStatus(verbose)` + `PodSandboxStatus`),
//!    containerd's own containers API (namespaces `k8s.io`, `moby`, `default`) and the
//!    Docker Engine API (dockerd, and podman's Docker-compatible service).
//!
//! # API
//!
//! ```no_run
//! # async fn demo(pid: u32, cgroup_id: u64) {
//! use sensor::enrich::{ContainerCache, EnrichConfig};
//! // Default sockets: /run/containerd/containerd.sock (CRI, then containerd's own API),
//! // /run/crio/crio.sock (CRI), /var/run/docker.sock (Docker), /run/podman/podman.sock
//! // (podman); wait at most 5 ms.
//! let cache = ContainerCache::new(EnrichConfig::default(), tokio::runtime::Handle::current());
//! let view = cache.lookup(pid, Some(cgroup_id)).await; // waits at most `max_wait`
//! println!("{}", view.field("container.id", None).unwrap_or_else(|| "<NA>".into()));
//! let stats = cache.stats(); // lookups, hits, misses, failures, latency
//! # }
//! ```
//!
//! - [`ContainerCache::lookup`] waits at most [`EnrichConfig::max_wait`] for metadata not yet
//!   cached; the answer is then [`MetaStatus::Pending`] (fields render `<NA>`) while the
//!   fetch completes in the background, so later events of that container get it.
//!   [`ContainerCache::lookup_now`] never waits (for callers outside async code).
//! - [`ContainerCache::container_id`] gives just the id (synchronous, at most one procfs
//!   read); a process table can keep it per process and later ask
//!   [`ContainerCache::lookup_container`] / [`ContainerCache::lookup_container_now`], which
//!   read no procfs at all.
//! - [`ContainerView`] is the answer: the id, the metadata when known, and
//!   [`ContainerView::field`] rendering a `container.*` / `k8s.*` field as text.
//! - [`ContainerStats`] is a snapshot of the counters.
//! - The cgroup v2 id of an event (`bpf_get_current_cgroup_id()`) is remembered once a
//!   process's `/proc/PID/cgroup` proved which container it belongs to, so events of
//!   processes that already exited still resolve.
//! - [`ContainerCache::peek`] reads the cache without fetching or counting.
//! - When the cache starts it fetches the containers already running
//!   ([`EnrichConfig::prefetch_running`]); it follows the runtimes' container events
//!   ([`EnrichConfig::follow_events`]: Docker's and podman's `/events`, containerd's event
//!   service for CRI pods and other containerd clients): a started container is fetched
//!   before its first event needs it, a removed one is forgotten.
//!
//! Failed fetches are logged (`warn`), counted, and retried after
//! [`EnrichConfig::retry_after`]. Not supported: CRI-O is spoken to through CRI only and
//! was not tried on a real CRI-O here; `ctr` containers whose ids are not 64 hex digits are
//! not recognised in cgroup paths (nor by Falco).

mod cache;
mod cgroup;
mod containerd;
pub mod cri;
mod docker;
mod info;

use std::path::PathBuf;

pub use cache::{ContainerCache, ContainerStats, ContainerView, EnrichConfig, MetaStatus};
pub use cgroup::{
    ContainerId, FULL_ID_LEN, RuntimeKind, SHORT_ID_LEN, container_id_from_cgroup, container_id_from_cgroup_v2,
};
pub use info::{ContainerInfo, Mount, PodInfo, mount_field, parse_rfc3339_ns, split_image};

/// Which API a runtime socket speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuntimeApi {
    /// The Kubernetes CRI (`runtime.v1`): containerd's CRI plugin, CRI-O.
    Cri,
    /// containerd's own containers API, for containers CRI does not know (`ctr`, nerdctl),
    /// in the namespaces `k8s.io`, `moby` and `default`.
    Containerd,
    /// The Docker Engine API, served by dockerd.
    Docker,
    /// podman's Docker-compatible API (containers get `container.type = podman`).
    Podman,
}

/// A runtime socket to ask for metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeEndpoint {
    /// The API it speaks.
    pub api: RuntimeApi,
    /// The unix socket's path.
    pub path: PathBuf,
}

impl RuntimeEndpoint {
    /// An endpoint speaking `api` on the socket `path`.
    pub fn new(api: RuntimeApi, path: impl Into<PathBuf>) -> Self {
        Self { api, path: path.into() }
    }

    /// The runtimes' default sockets. A socket that is missing is skipped at each lookup,
    /// so a runtime started after the sensor is still found.
    pub fn defaults() -> Vec<Self> {
        vec![
            Self::new(RuntimeApi::Cri, "/run/containerd/containerd.sock"),
            Self::new(RuntimeApi::Cri, "/run/crio/crio.sock"),
            Self::new(RuntimeApi::Containerd, "/run/containerd/containerd.sock"),
            Self::new(RuntimeApi::Docker, "/var/run/docker.sock"),
            Self::new(RuntimeApi::Podman, "/run/podman/podman.sock"),
        ]
    }
}

/// Why one runtime could not give a container's metadata.
#[derive(Debug)]
pub(crate) enum FetchError {
    /// The runtime does not know the id.
    NotFound,
    /// The socket is missing or nothing answers on it.
    Unavailable(String),
    /// The runtime answered with an error, or an unreadable answer.
    Other(String),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotFound => f.write_str("not found"),
            Self::Unavailable(s) | Self::Other(s) => f.write_str(s),
        }
    }
}
