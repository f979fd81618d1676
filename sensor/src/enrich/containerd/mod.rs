//! containerd's own API over its unix socket: `Containers/Get` for containers that CRI does
//! not know (made by `ctr`, nerdctl or other clients in the namespaces `k8s.io`, `moby` and
//! `default`), and `Events/Subscribe` for task starts and container deletions in every
//! namespace (containerd 1.6's CRI has no event stream of its own).
//!
//! [`proto`] is generated at build time (`build.rs`, protox: no `protoc`) from containerd's
//! `containers.proto` and `events.proto`, vendored in `sensor/proto/containerd`.
//!
//! containerd keeps no start time, IP or privileged flag for such containers: `start_ts` is
//! the creation time, the namespaces and mounts come from the OCI spec, the rest stays
//! unknown.

use std::{path::PathBuf, time::Duration};

use prost::Message;
use serde_json::Value;
use tonic::{Code, transport::Channel};

use super::{
    FetchError,
    info::{ContainerInfo, Mount},
};

/// containerd's container-store messages and client, generated from the protocol file.
#[allow(missing_docs, clippy::all, clippy::pedantic, reason = "generated code")]
pub(crate) mod proto {
    pub mod containerd {
        pub mod types {
            tonic::include_proto!("containerd.types");
        }
        pub mod services {
            pub mod containers {
                pub mod v1 {
                    tonic::include_proto!("containerd.services.containers.v1");
                }
            }
            pub mod events {
                pub mod v1 {
                    tonic::include_proto!("containerd.services.events.v1");
                }
            }
        }
    }
}

use proto::containerd::services::{
    containers::v1::{self as containers, containers_client::ContainersClient},
    events::v1::{self as events, events_client::EventsClient},
};

/// The first field of containerd's event payloads `TaskStart` (`container_id`) and
/// `ContainerDelete` (`id`); the other fields are skipped.
#[derive(Clone, PartialEq, Message)]
struct EventSubject {
    /// The container's id.
    #[prost(string, tag = "1")]
    id: String,
}

/// What a containerd event says happened to a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ContainerdEvent {
    /// A task (the container's process) started.
    Started,
    /// The container was deleted.
    Deleted,
}

/// The namespaces asked, in order.
pub const NAMESPACES: &[&str] = &["k8s.io", "moby", "default"];
/// The gRPC metadata key carrying containerd's namespace.
const NAMESPACE_HEADER: &str = "containerd-namespace";

/// A containerd endpoint the cache asks for metadata.
#[derive(Clone)]
pub(crate) struct ContainerdClient {
    /// The socket path.
    path: PathBuf,
    /// The containers client (clones share the connection).
    client: ContainersClient<Channel>,
    /// The events client, on the same connection.
    events: EventsClient<Channel>,
    /// Bound on each call.
    timeout: Duration,
}

impl ContainerdClient {
    /// A client for the socket at `path` (call inside a tokio runtime).
    pub(crate) fn new(path: PathBuf, timeout: Duration) -> Self {
        let channel = super::cri::unix_channel(path.clone());
        Self { client: ContainersClient::new(channel.clone()), events: EventsClient::new(channel), path, timeout }
    }

    /// The socket path.
    pub(crate) fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Fetches container `id` from the first namespace that has it.
    pub(crate) async fn fetch(&self, id: &str) -> Result<ContainerInfo, FetchError> {
        if !self.path.exists() {
            return Err(FetchError::Unavailable(format!("{}: no such socket", self.path.display())));
        }
        for namespace in NAMESPACES {
            let mut request = tonic::Request::new(containers::GetContainerRequest { id: id.to_owned() });
            request.metadata_mut().insert(NAMESPACE_HEADER, tonic::metadata::MetadataValue::from_static(namespace));
            let mut client = self.client.clone();
            match tokio::time::timeout(self.timeout, client.get(request)).await {
                Err(_) => return Err(FetchError::Other(format!("{}: Containers.Get timed out", self.path.display()))),
                Ok(Err(status)) if status.code() == Code::NotFound => {}
                Ok(Err(status)) => {
                    let text =
                        format!("{}: Containers.Get: {}: {}", self.path.display(), status.code(), status.message());
                    return Err(if status.code() == Code::Unavailable {
                        FetchError::Unavailable(text)
                    } else {
                        FetchError::Other(text)
                    });
                }
                Ok(Ok(response)) => {
                    let container = response.into_inner().container.ok_or(FetchError::NotFound)?;
                    return Ok(container_info(container));
                }
            }
        }
        Err(FetchError::NotFound)
    }

    /// Follows task starts and container deletions in every namespace, calling
    /// `on_event(namespace, what, container id)`, until the stream ends or fails.
    pub(crate) async fn follow_events(
        &self,
        mut on_event: impl FnMut(&str, ContainerdEvent, &str),
    ) -> Result<(), FetchError> {
        if !self.path.exists() {
            return Err(FetchError::Unavailable(format!("{}: no such socket", self.path.display())));
        }
        let filters = vec![r#"topic=="/tasks/start""#.to_owned(), r#"topic=="/containers/delete""#.to_owned()];
        let mut client = self.events.clone();
        let status_error = |status: tonic::Status| {
            let text = format!("{}: Events.Subscribe: {}: {}", self.path.display(), status.code(), status.message());
            if status.code() == Code::Unavailable { FetchError::Unavailable(text) } else { FetchError::Other(text) }
        };
        let mut stream =
            client.subscribe(events::SubscribeRequest { filters }).await.map_err(status_error)?.into_inner();
        while let Some(envelope) = stream.message().await.map_err(status_error)? {
            let what = match envelope.topic.as_str() {
                "/tasks/start" => ContainerdEvent::Started,
                "/containers/delete" => ContainerdEvent::Deleted,
                _ => continue,
            };
            let Some(payload) = envelope.event else { continue };
            match EventSubject::decode(payload.value.as_slice()) {
                Ok(subject) => on_event(&envelope.namespace, what, &subject.id),
                Err(e) => log::warn!("{}: undecodable {} event: {e}", self.path.display(), envelope.topic),
            }
        }
        Ok(())
    }
}

/// Builds the container's metadata from containerd's record of it.
fn container_info(container: containers::Container) -> ContainerInfo {
    let labels: std::collections::BTreeMap<String, String> = container.labels.into_iter().collect();
    // The OCI runtime spec, stored as JSON in an Any.
    let spec: Value = container.spec.and_then(|any| serde_json::from_slice(&any.value).ok()).unwrap_or(Value::Null);
    let namespaces = spec.pointer("/linux/namespaces").and_then(Value::as_array);
    // A container shares the host's namespace of a type its spec does not create.
    let shares_host =
        |kind: &str| namespaces.map(|all| !all.iter().any(|n| n.get("type").and_then(Value::as_str) == Some(kind)));
    let mounts = spec
        .get("mounts")
        .and_then(Value::as_array)
        .map(|all| {
            all.iter()
                .map(|m| {
                    let options: Vec<&str> = m
                        .get("options")
                        .and_then(Value::as_array)
                        .map(|o| o.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    let s = |key: &str| m.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
                    Mount {
                        source: s("source"),
                        destination: s("destination"),
                        // As Falco's container plugin: the `mode=` option (tmpfs, devpts).
                        mode: options.iter().find_map(|o| o.strip_prefix("mode=")).unwrap_or_default().to_owned(),
                        read_write: !options.contains(&"ro"),
                        propagation: options
                            .iter()
                            .find(|o| matches!(**o, "private" | "rprivate" | "slave" | "rslave" | "shared" | "rshared"))
                            .map(|o| (*o).to_owned())
                            .unwrap_or_default(),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let name = labels
        .get(super::info::LABEL_CONTAINER_NAME)
        .or_else(|| labels.get("nerdctl/name"))
        .cloned()
        .unwrap_or_else(|| container.id.clone());
    let start_ts = container
        .created_at
        .and_then(|t| {
            u64::try_from(t.seconds).ok()?.checked_mul(1_000_000_000)?.checked_add(u64::try_from(t.nanos).ok()?)
        })
        .unwrap_or(0);
    let mut info = ContainerInfo {
        id: container.id,
        runtime: "containerd".into(),
        name,
        host_network: shares_host("network"),
        host_pid: shares_host("pid"),
        host_ipc: shares_host("ipc"),
        mounts,
        start_ts,
        pod: ContainerInfo::pod_from_labels(&labels),
        labels,
        ..ContainerInfo::default()
    };
    info.set_image(&container.image);
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_to_info() {
        let spec = serde_json::json!({
            "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}]},
            "mounts": [{"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid"]},
                       {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
                       {"destination": "/etc/hosts", "source": "/srv/hosts", "options": ["rbind", "ro", "rprivate"]}]
        });
        let container = containers::Container {
            id: "a".repeat(64),
            labels: [("app".to_owned(), "ctr".to_owned())].into_iter().collect(),
            image: "localhost/sensor-testbed:1".into(),
            spec: Some(prost_types::Any {
                type_url: "types.containerd.io/opencontainers/runtime-spec/1/Spec".into(),
                value: spec.to_string().into_bytes(),
            }),
            created_at: Some(prost_types::Timestamp { seconds: 1_795_365_844, nanos: 5 }),
            ..Default::default()
        };
        let info = container_info(container);
        assert_eq!(info.name, "a".repeat(64));
        assert_eq!((info.image_repository.as_str(), info.image_tag.as_str()), ("localhost/sensor-testbed", "1"));
        assert_eq!((info.host_network, info.host_pid, info.host_ipc), (Some(true), Some(false), Some(false)));
        let mount = |source: &str, destination: &str, mode: &str, read_write, propagation: &str| Mount {
            source: source.into(),
            destination: destination.into(),
            mode: mode.into(),
            read_write,
            propagation: propagation.into(),
        };
        assert_eq!(
            info.mounts,
            [
                mount("proc", "/proc", "", true, ""),
                mount("tmpfs", "/dev", "755", true, ""),
                mount("/srv/hosts", "/etc/hosts", "", false, "rprivate")
            ]
        );
        assert_eq!(info.start_ts, 1_795_365_844_000_000_005);
        assert_eq!(info.labels["app"], "ctr");
        assert_eq!(info.runtime, "containerd");
    }
}
