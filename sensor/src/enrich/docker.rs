//! The Docker Engine API (`GET /containers/{id}/json`) over a unix socket; podman's
//! Docker-compatible service answers the same request.
//!
//! One HTTP/1.1 request per lookup on hyper's client connection (hyper already comes with
//! tonic for CRI), rather than bollard: the sensor needs one call and a dozen fields, and
//! bollard's generated models would be the largest crate of the build.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::UnixStream;

use super::{
    FetchError,
    info::{ContainerInfo, Mount, image_id_hex, parse_rfc3339_ns},
};

/// A Docker-API endpoint: dockerd, or podman's service.
#[derive(Clone)]
pub(crate) struct DockerClient {
    /// The socket path.
    path: PathBuf,
    /// `container.type` of what it answers (`docker` or `podman`).
    runtime: &'static str,
    /// Bound on each request.
    timeout: Duration,
}

impl DockerClient {
    /// A client for the socket at `path` whose containers are of type `runtime`.
    pub(crate) fn new(path: PathBuf, runtime: &'static str, timeout: Duration) -> Self {
        Self { path, runtime, timeout }
    }

    /// The socket path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Fetches container `id`.
    pub(crate) async fn fetch(&self, id: &str) -> Result<ContainerInfo, FetchError> {
        if !self.path.exists() {
            return Err(FetchError::Unavailable(format!("{}: no such socket", self.path.display())));
        }
        let uri = format!("/containers/{id}/json");
        let (status, body) = tokio::time::timeout(self.timeout, get(&self.path, &uri))
            .await
            .map_err(|_| FetchError::Other(format!("{}: GET {uri} timed out", self.path.display())))??;
        match status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Err(FetchError::NotFound),
            _ => {
                let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
                return Err(FetchError::Other(format!("{}: GET {uri}: {status}: {text}", self.path.display())));
            }
        }
        let json: Value = serde_json::from_slice(&body)
            .map_err(|e| FetchError::Other(format!("{}: GET {uri}: bad JSON: {e}", self.path.display())))?;
        Ok(container_info(self.runtime, &json))
    }
}

impl DockerClient {
    /// The ids of the running containers (`GET /containers/json`).
    pub(crate) async fn list_running(&self) -> Result<Vec<String>, FetchError> {
        if !self.path.exists() {
            return Err(FetchError::Unavailable(format!("{}: no such socket", self.path.display())));
        }
        let uri = "/containers/json";
        let (status, body) = tokio::time::timeout(self.timeout, get(&self.path, uri))
            .await
            .map_err(|_| FetchError::Other(format!("{}: GET {uri} timed out", self.path.display())))??;
        if status != StatusCode::OK {
            return Err(FetchError::Other(format!("{}: GET {uri}: {status}", self.path.display())));
        }
        let list: Value = serde_json::from_slice(&body)
            .map_err(|e| FetchError::Other(format!("{}: GET {uri}: bad JSON: {e}", self.path.display())))?;
        Ok(list
            .as_array()
            .map(|all| all.iter().filter_map(|c| c.get("Id").and_then(Value::as_str).map(str::to_owned)).collect())
            .unwrap_or_default())
    }

    /// Follows the runtime's container events (`GET /events`), calling `on_event(action, id)`
    /// for each, until the stream ends or fails.
    pub(crate) async fn follow_events(&self, mut on_event: impl FnMut(&str, &str)) -> Result<(), FetchError> {
        // filters={"type":["container"]}
        let uri = "/events?filters=%7B%22type%22%3A%5B%22container%22%5D%7D";
        let other = |e: hyper::Error| FetchError::Other(format!("{}: GET /events: {e}", self.path.display()));
        let (response, driver) = send_get(&self.path, uri).await?;
        if response.status() != StatusCode::OK {
            driver.abort();
            return Err(FetchError::Other(format!("{}: GET /events: {}", self.path.display(), response.status())));
        }
        let mut body = response.into_body();
        let mut pending: Vec<u8> = Vec::new();
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame.map_err(other)?.into_data() else { continue };
            pending.extend_from_slice(&data);
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                if let Ok(event) = serde_json::from_slice::<Value>(&line) {
                    let field = |a: &str, b: &str| {
                        event.pointer(a).or_else(|| event.pointer(b)).and_then(Value::as_str).unwrap_or_default()
                    };
                    on_event(field("/Action", "/status"), field("/Actor/ID", "/id"));
                }
            }
        }
        driver.abort();
        Ok(())
    }
}

/// Sends `GET uri` on the unix socket `path`; returns the response (its body still to
/// read) and the connection task, to abort once the body is done.
async fn send_get(
    path: &Path,
    uri: &str,
) -> Result<(hyper::Response<hyper::body::Incoming>, tokio::task::JoinHandle<hyper::Result<()>>), FetchError> {
    let unavailable = |e: &dyn std::fmt::Display| FetchError::Unavailable(format!("{}: {e}", path.display()));
    let stream = UnixStream::connect(path).await.map_err(|e| unavailable(&e))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| unavailable(&e))?;
    // The connection task ends with the response; its errors surface in `send_request`.
    let driver = tokio::spawn(connection);
    let request = Request::get(uri)
        .header(hyper::header::HOST, "localhost")
        .body(Empty::<Bytes>::new())
        .map_err(|e| FetchError::Other(format!("request for {uri}: {e}")))?;
    match sender.send_request(request).await {
        Ok(response) => Ok((response, driver)),
        Err(e) => {
            driver.abort();
            Err(FetchError::Other(format!("{}: GET {uri}: {e}", path.display())))
        }
    }
}

/// `GET uri` on the unix socket `path`: (status, body).
async fn get(path: &Path, uri: &str) -> Result<(StatusCode, Bytes), FetchError> {
    let (response, driver) = send_get(path, uri).await?;
    let status = response.status();
    let body = response.into_body().collect().await;
    driver.abort();
    let body = body.map_err(|e| FetchError::Other(format!("{}: GET {uri}: {e}", path.display())))?.to_bytes();
    Ok((status, body))
}

/// Builds the container's metadata from an inspect answer.
fn container_info(runtime: &str, json: &Value) -> ContainerInfo {
    let str_at = |pointer: &str| json.pointer(pointer).and_then(Value::as_str).unwrap_or_default();
    let labels: BTreeMap<String, String> = json
        .pointer("/Config/Labels")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect())
        .unwrap_or_default();
    let mounts = json
        .get("Mounts")
        .and_then(Value::as_array)
        .map(|all| {
            all.iter()
                .map(|m| {
                    let s = |key: &str| m.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
                    Mount {
                        source: s("Source"),
                        destination: s("Destination"),
                        mode: s("Mode"),
                        read_write: m.get("RW").and_then(Value::as_bool).unwrap_or(false),
                        propagation: s("Propagation"),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let mode_is_host = |pointer: &str| json.pointer(pointer).and_then(Value::as_str).map(|m| m == "host");
    let mut ip = str_at("/NetworkSettings/IPAddress").to_owned();
    if ip.is_empty()
        && let Some(networks) = json.pointer("/NetworkSettings/Networks").and_then(Value::as_object)
    {
        ip = networks
            .values()
            .filter_map(|n| n.get("IPAddress").and_then(Value::as_str))
            .find(|a| !a.is_empty())
            .unwrap_or_default()
            .to_owned();
    }
    let mut info = ContainerInfo {
        id: str_at("/Id").to_owned(),
        runtime: runtime.to_owned(),
        name: str_at("/Name").trim_start_matches('/').to_owned(),
        image_id: image_id_hex(str_at("/Image")).to_owned(),
        privileged: json.pointer("/HostConfig/Privileged").and_then(Value::as_bool),
        host_network: mode_is_host("/HostConfig/NetworkMode"),
        host_pid: mode_is_host("/HostConfig/PidMode"),
        host_ipc: mode_is_host("/HostConfig/IpcMode"),
        mounts,
        start_ts: parse_rfc3339_ns(str_at("/State/StartedAt")).unwrap_or(0),
        ip,
        pod: ContainerInfo::pod_from_labels(&labels),
        labels,
        ..ContainerInfo::default()
    };
    info.set_image(str_at("/Config/Image"));
    if let Some(pod) = &mut info.pod {
        pod.labels = info.labels.clone();
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inspect_to_info() {
        let json = serde_json::json!({
            "Id": "a".repeat(64),
            "Name": "/web",
            "Image": format!("sha256:{}", "c".repeat(64)),
            "Config": {"Image": "localhost/testbed-busybox:test", "Labels": {"app": "shop"}},
            "State": {"StartedAt": "2026-11-22T16:44:04.5Z"},
            "HostConfig": {"Privileged": true, "NetworkMode": "host", "PidMode": "", "IpcMode": "private"},
            "Mounts": [{"Source": "/srv", "Destination": "/data", "Mode": "ro", "RW": false, "Propagation": "rprivate"}],
            "NetworkSettings": {"IPAddress": "", "Networks": {"host": {"IPAddress": ""}, "b": {"IPAddress": "10.0.0.2"}}}
        });
        let info = container_info("docker", &json);
        assert_eq!(info.name, "web");
        assert_eq!(info.image_repository, "localhost/testbed-busybox");
        assert_eq!(info.image_tag, "test");
        assert_eq!(info.image_id, "c".repeat(64));
        assert_eq!(info.privileged, Some(true));
        assert_eq!((info.host_network, info.host_pid, info.host_ipc), (Some(true), Some(false), Some(false)));
        assert_eq!(info.start_ts, 1_795_365_844_500_000_000);
        assert_eq!(info.ip, "10.0.0.2");
        assert_eq!(info.labels["app"], "shop");
        let srv = Mount {
            source: "/srv".into(),
            destination: "/data".into(),
            mode: "ro".into(),
            read_write: false,
            propagation: "rprivate".into(),
        };
        assert_eq!(info.mounts, [srv]);
        assert!(info.pod.is_none());
    }
}
