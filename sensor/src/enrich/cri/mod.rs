//! The Kubernetes Container Runtime Interface (CRI, `runtime.v1`) over a unix socket:
//! containerd's CRI plugin and CRI-O answer it alike.
//!
//! A container's metadata comes from `ContainerStatus(verbose)` (name, image, labels,
//! mounts, start time; the verbose `info` JSON adds the pod sandbox id and the security
//! context), its pod's from `PodSandboxStatus` (pod labels, IP).
//!
//! [`proto`] is generated at build time (`build.rs`, protox: no `protoc`) from the CRI's
//! `runtime.v1` `api.proto` (kubernetes/cri-api), vendored in `sensor/proto/cri`.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::UnixStream;
use tonic::{
    Code,
    transport::{Channel, Endpoint, Uri},
};

use super::{
    FetchError,
    info::{ContainerInfo, Mount, PodInfo, image_id_hex},
};

/// The CRI `runtime.v1` messages and client, generated from the protocol file.
#[allow(missing_docs, clippy::all, clippy::pedantic, reason = "generated code")]
pub mod proto {
    tonic::include_proto!("runtime.v1");
}

use proto::runtime_service_client::RuntimeServiceClient;

/// A CRI `RuntimeService` client on a unix socket.
pub type Client = RuntimeServiceClient<Channel>;

/// Opens a lazily connecting CRI runtime client on the unix socket `path`.
///
/// The connection is made on the first call and remade after failures. Call it inside a
/// tokio runtime (the channel's task is spawned there).
pub fn connect(path: impl Into<PathBuf>) -> Client {
    RuntimeServiceClient::new(unix_channel(path.into()))
}

/// A lazily connecting gRPC channel on the unix socket `path` (inside a tokio runtime).
pub(crate) fn unix_channel(path: PathBuf) -> Channel {
    // The URI is required by tonic but unused: the connector always dials `path`.
    Endpoint::from_static("http://unix.sock").connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
        let path = path.clone();
        async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
    }))
}

/// A CRI endpoint the cache asks for metadata.
pub(crate) struct CriClient {
    /// The socket path.
    path: PathBuf,
    /// The client (cheap to clone; clones share the connection).
    client: Client,
    /// `container.type`, from the runtime's `Version` answer (`containerd`, `cri-o`).
    runtime_name: tokio::sync::OnceCell<String>,
    /// Bound on each call.
    timeout: Duration,
}

impl CriClient {
    /// A client for the socket at `path`.
    pub(crate) fn new(path: PathBuf, timeout: Duration) -> Self {
        Self { client: connect(path.clone()), path, runtime_name: tokio::sync::OnceCell::new(), timeout }
    }

    /// The socket path.
    pub(crate) fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Fetches container `id` (or, for a pod's sandbox ("pause") container, the sandbox).
    pub(crate) async fn fetch(&self, id: &str) -> Result<ContainerInfo, FetchError> {
        if !self.path.exists() {
            return Err(FetchError::Unavailable(format!("{}: no such socket", self.path.display())));
        }
        let runtime = self.runtime_name().await?;
        let mut client = self.client.clone();
        let request = proto::ContainerStatusRequest { container_id: id.to_owned(), verbose: true };
        let answer = tokio::time::timeout(self.timeout, client.container_status(request)).await;
        let response = match answer {
            Err(_) => return Err(FetchError::Other(format!("{}: ContainerStatus timed out", self.path.display()))),
            Ok(Err(status)) if status.code() == Code::NotFound => return self.fetch_sandbox(id, runtime).await,
            Ok(Err(status)) => return Err(self.rpc_error("ContainerStatus", &status)),
            Ok(Ok(response)) => response.into_inner(),
        };
        let status = response.status.ok_or_else(|| FetchError::Other("ContainerStatus without status".into()))?;
        let verbose: Value =
            response.info.get("info").and_then(|s| serde_json::from_str(s).ok()).unwrap_or(Value::Null);
        let mut info = container_info(runtime, status, &verbose);
        let sandbox_id = verbose.get("sandboxID").and_then(Value::as_str).unwrap_or_default().to_owned();
        if !sandbox_id.is_empty() {
            match self.pod_sandbox(&sandbox_id).await {
                Ok(sandbox) => {
                    let pod = pod_info(&sandbox);
                    info.ip.clone_from(&pod.ip);
                    info.pod = Some(pod);
                }
                // The container's own kubelet labels still name the pod.
                Err(e) => log::warn!("container {id}: pod sandbox {sandbox_id}: no pod labels: {e}"),
            }
            if let Some(pod) = &mut info.pod {
                pod.sandbox_id = sandbox_id;
            }
        }
        Ok(info)
    }

    /// The ids of the running containers.
    pub(crate) async fn list_running(&self) -> Result<Vec<String>, FetchError> {
        if !self.path.exists() {
            return Err(FetchError::Unavailable(format!("{}: no such socket", self.path.display())));
        }
        let running = proto::ContainerStateValue { state: proto::ContainerState::ContainerRunning as i32 };
        let filter = proto::ContainerFilter { state: Some(running), ..Default::default() };
        let mut client = self.client.clone();
        match tokio::time::timeout(
            self.timeout,
            client.list_containers(proto::ListContainersRequest { filter: Some(filter) }),
        )
        .await
        {
            Err(_) => Err(FetchError::Other(format!("{}: ListContainers timed out", self.path.display()))),
            Ok(Err(status)) => Err(self.rpc_error("ListContainers", &status)),
            Ok(Ok(response)) => Ok(response.into_inner().containers.into_iter().map(|c| c.id).collect()),
        }
    }

    /// `PodSandboxStatus` of `id`.
    async fn pod_sandbox(&self, id: &str) -> Result<proto::PodSandboxStatus, FetchError> {
        let mut client = self.client.clone();
        let request = proto::PodSandboxStatusRequest { pod_sandbox_id: id.to_owned(), verbose: false };
        match tokio::time::timeout(self.timeout, client.pod_sandbox_status(request)).await {
            Err(_) => Err(FetchError::Other(format!("{}: PodSandboxStatus timed out", self.path.display()))),
            Ok(Err(status)) if status.code() == Code::NotFound => Err(FetchError::NotFound),
            Ok(Err(status)) => Err(self.rpc_error("PodSandboxStatus", &status)),
            Ok(Ok(response)) => response.into_inner().status.ok_or(FetchError::NotFound),
        }
    }

    /// Metadata of a pod's sandbox container, whose cgroup is named by the sandbox id.
    async fn fetch_sandbox(&self, id: &str, runtime: String) -> Result<ContainerInfo, FetchError> {
        let sandbox = self.pod_sandbox(id).await?;
        let pod = PodInfo { sandbox_id: id.to_owned(), ..pod_info(&sandbox) };
        Ok(ContainerInfo {
            id: id.to_owned(),
            runtime,
            // kubelet's (dockershim's) name for the sandbox container.
            name: "POD".into(),
            labels: to_btree(&sandbox.labels),
            start_ts: u64::try_from(sandbox.created_at).unwrap_or(0),
            ip: pod.ip.clone(),
            host_network: sandbox
                .linux
                .as_ref()
                .and_then(|l| l.namespaces.as_ref())
                .and_then(|n| n.options.as_ref())
                .map(|o| o.network == proto::NamespaceMode::Node as i32),
            pod: Some(pod),
            ..ContainerInfo::default()
        })
    }

    /// The runtime's name from `Version`, asked once.
    async fn runtime_name(&self) -> Result<String, FetchError> {
        self.runtime_name
            .get_or_try_init(|| async {
                let mut client = self.client.clone();
                let request = proto::VersionRequest { version: String::new() };
                match tokio::time::timeout(self.timeout, client.version(request)).await {
                    Err(_) => Err(FetchError::Unavailable(format!("{}: Version timed out", self.path.display()))),
                    Ok(Err(status)) => Err(FetchError::Unavailable(format!(
                        "{}: Version: {}: {}",
                        self.path.display(),
                        status.code(),
                        status.message()
                    ))),
                    Ok(Ok(v)) => Ok(match v.into_inner().runtime_name.as_str() {
                        "cri-o" | "crio" => "cri-o".to_owned(),
                        "" => "cri".to_owned(),
                        other => other.to_owned(),
                    }),
                }
            })
            .await
            .cloned()
    }

    /// A failed call as a fetch error.
    fn rpc_error(&self, call: &str, status: &tonic::Status) -> FetchError {
        let text = format!("{}: {call}: {}: {}", self.path.display(), status.code(), status.message());
        if status.code() == Code::Unavailable { FetchError::Unavailable(text) } else { FetchError::Other(text) }
    }
}

/// Builds the container's metadata from its CRI status and the verbose `info` JSON.
fn container_info(runtime: String, status: proto::ContainerStatus, verbose: &Value) -> ContainerInfo {
    let labels = to_btree(&status.labels);
    let mut info = ContainerInfo {
        id: status.id,
        runtime,
        name: status.metadata.map(|m| m.name).unwrap_or_default(),
        image_id: image_id_hex(&status.image_ref).to_owned(),
        mounts: status
            .mounts
            .iter()
            .map(|m| Mount {
                source: m.host_path.clone(),
                destination: m.container_path.clone(),
                mode: String::new(),
                read_write: !m.readonly,
                // The names Falco's container plugin gives CRI's propagation modes.
                propagation: match proto::MountPropagation::try_from(m.propagation) {
                    Ok(proto::MountPropagation::PropagationPrivate) => "private",
                    Ok(proto::MountPropagation::PropagationHostToContainer) => "rslave",
                    Ok(proto::MountPropagation::PropagationBidirectional) => "rshared",
                    Err(_) => "unknown",
                }
                .into(),
            })
            .collect(),
        start_ts: u64::try_from(status.started_at).unwrap_or(0),
        pod: ContainerInfo::pod_from_labels(&labels),
        labels,
        ..ContainerInfo::default()
    };
    info.set_image(status.image.as_ref().map_or("", |i| i.image.as_str()));
    if info.image.starts_with("sha256:") && !status.image_ref.is_empty() {
        // Some runtimes report the image id; the reference names it better.
        info.set_image(&status.image_ref);
    }
    // containerd: info.config.linux.security_context; CRI-O: info.privileged.
    let security = verbose.pointer("/config/linux/security_context");
    info.privileged = security
        .and_then(|s| s.get("privileged"))
        .or_else(|| verbose.get("privileged"))
        .and_then(Value::as_bool)
        .or(Some(false));
    let node_mode = |kind: &str| {
        security
            .and_then(|s| s.pointer(&format!("/namespace_options/{kind}")))
            .and_then(Value::as_i64)
            .map(|mode| mode == proto::NamespaceMode::Node as i64)
    };
    info.host_network = node_mode("network");
    info.host_pid = node_mode("pid");
    info.host_ipc = node_mode("ipc");
    info
}

/// The pod of a sandbox status.
fn pod_info(sandbox: &proto::PodSandboxStatus) -> PodInfo {
    let meta = sandbox.metadata.clone().unwrap_or_default();
    PodInfo {
        name: meta.name,
        namespace: meta.namespace,
        uid: meta.uid,
        sandbox_id: sandbox.id.clone(),
        labels: to_btree(&sandbox.labels),
        ip: sandbox.network.as_ref().map(|n| n.ip.clone()).unwrap_or_default(),
    }
}

/// A protobuf map as an ordered map.
fn to_btree(map: &std::collections::HashMap<String, String>) -> BTreeMap<String, String> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_to_info() {
        let status = proto::ContainerStatus {
            id: "a".repeat(64),
            metadata: Some(proto::ContainerMetadata { name: "web".into(), attempt: 0 }),
            image: Some(proto::ImageSpec { image: "localhost/testbed-busybox:test".into(), ..Default::default() }),
            image_ref: format!("sha256:{}", "c".repeat(64)),
            started_at: 1_795_365_844_000_000_000,
            labels: [
                ("io.kubernetes.pod.name", "web-0"),
                ("io.kubernetes.pod.namespace", "shop"),
                ("io.kubernetes.pod.uid", "u-1"),
                ("io.kubernetes.container.name", "web"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
            mounts: vec![
                proto::Mount {
                    container_path: "/data".into(),
                    host_path: "/srv/data".into(),
                    readonly: true,
                    ..Default::default()
                },
                proto::Mount {
                    container_path: "/var/lib/kubelet".into(),
                    host_path: "/var/lib/kubelet".into(),
                    propagation: proto::MountPropagation::PropagationBidirectional as i32,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let verbose: Value = serde_json::json!({
            "sandboxID": "b".repeat(64),
            "config": {"linux": {"security_context": {"privileged": true, "namespace_options": {"network": 2, "pid": 1}}}}
        });
        let info = container_info("containerd".into(), status, &verbose);
        assert_eq!(info.name, "web");
        assert_eq!((info.image_repository.as_str(), info.image_tag.as_str()), ("localhost/testbed-busybox", "test"));
        assert_eq!(info.image_id, "c".repeat(64));
        assert_eq!(info.privileged, Some(true));
        assert_eq!((info.host_network, info.host_pid, info.host_ipc), (Some(true), Some(false), None));
        let mount = |source: &str, destination: &str, read_write, propagation: &str| Mount {
            source: source.into(),
            destination: destination.into(),
            mode: String::new(),
            read_write,
            propagation: propagation.into(),
        };
        assert_eq!(
            info.mounts,
            [
                mount("/srv/data", "/data", false, "private"),
                mount("/var/lib/kubelet", "/var/lib/kubelet", true, "rshared")
            ]
        );
        let pod = info.pod.unwrap();
        assert_eq!((pod.name.as_str(), pod.namespace.as_str(), pod.uid.as_str()), ("web-0", "shop", "u-1"));
    }
}
