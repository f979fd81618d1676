//! What the runtime knows about a container: [`ContainerInfo`] and its pod.

use std::collections::BTreeMap;

/// Metadata of one container, as its runtime reports it (Falco's `container.*` and `k8s.*`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerInfo {
    /// Full 64-hex id.
    pub id: String,
    /// `container.type`: `docker`, `podman`, `containerd`, `cri-o`.
    pub runtime: String,
    /// `container.name` (Docker's leading `/` removed; the CRI container name for pods).
    pub name: String,
    /// `container.image`: the image as named (`repo:tag`, `repo@digest`).
    pub image: String,
    /// `container.image.repository`: the image name without tag or digest.
    pub image_repository: String,
    /// `container.image.tag`: the tag, empty when none.
    pub image_tag: String,
    /// `container.image.digest`: `sha256:...` when the image was named by digest.
    pub image_digest: String,
    /// `container.image.id`: the image id (hex, without `sha256:`).
    pub image_id: String,
    /// `container.privileged`, when the runtime says.
    pub privileged: Option<bool>,
    /// `container.host_network`, when the runtime says.
    pub host_network: Option<bool>,
    /// `container.host_pid`, when the runtime says.
    pub host_pid: Option<bool>,
    /// `container.host_ipc`, when the runtime says.
    pub host_ipc: Option<bool>,
    /// `container.mounts`.
    pub mounts: Vec<Mount>,
    /// `container.labels`.
    pub labels: BTreeMap<String, String>,
    /// `container.start_ts`: nanoseconds since the epoch, 0 when unknown.
    pub start_ts: u64,
    /// `container.ip`: the container's (or its pod's) IP address, empty when none.
    pub ip: String,
    /// The pod, for containers of a Kubernetes pod.
    pub pod: Option<PodInfo>,
}

/// One mount of a container (`container.mount[...]`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mount {
    /// Host path (or volume source).
    pub source: String,
    /// Path inside the container.
    pub destination: String,
    /// Mount mode as the runtime reports it (`ro`, `z`, ...), empty when none.
    pub mode: String,
    /// Whether the mount is writable.
    pub read_write: bool,
    /// Propagation (`private`, `rslave`, ...), empty when unknown.
    pub propagation: String,
}

/// The pod a container belongs to (Falco's `k8s.*` fields).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodInfo {
    /// `k8s.pod.name`.
    pub name: String,
    /// `k8s.ns.name`.
    pub namespace: String,
    /// `k8s.pod.uid`.
    pub uid: String,
    /// `k8s.pod.full_sandbox_id`: the pod sandbox's full id, empty when unknown.
    pub sandbox_id: String,
    /// `k8s.pod.labels`: from the pod sandbox (the container's labels when no sandbox).
    pub labels: BTreeMap<String, String>,
    /// `k8s.pod.ip`, empty when unknown.
    pub ip: String,
}

/// Kubelet's container label naming the pod.
pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
/// Kubelet's container label naming the pod's namespace.
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
/// Kubelet's container label carrying the pod's uid.
pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
/// Kubelet's container label naming the container inside its pod.
pub const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";

impl ContainerInfo {
    /// Sets `image` and the repository, tag and digest parsed from it.
    pub fn set_image(&mut self, image: &str) {
        let (repository, tag, digest) = split_image(image);
        self.image = image.to_owned();
        self.image_repository = repository.to_owned();
        self.image_tag = tag.to_owned();
        self.image_digest = digest.to_owned();
    }

    /// The pod named by kubelet's labels, if the container carries them.
    pub fn pod_from_labels(labels: &BTreeMap<String, String>) -> Option<PodInfo> {
        let name = labels.get(LABEL_POD_NAME)?;
        Some(PodInfo {
            name: name.clone(),
            namespace: labels.get(LABEL_POD_NAMESPACE).cloned().unwrap_or_default(),
            uid: labels.get(LABEL_POD_UID).cloned().unwrap_or_default(),
            labels: BTreeMap::new(),
            ..PodInfo::default()
        })
    }

    /// `container.mounts` as Falco renders it: `source:dest:mode:rdrw:propagation,...`.
    pub fn mounts_string(&self) -> String {
        self.mounts
            .iter()
            .map(|m| format!("{}:{}:{}:{}:{}", m.source, m.destination, m.mode, m.read_write, m.propagation))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Splits an image reference into (repository, tag, digest).
///
/// `registry:5000/ns/app:1.2@sha256:ab` → (`registry:5000/ns/app`, `1.2`, `sha256:ab`).
pub fn split_image(image: &str) -> (&str, &str, &str) {
    let (name, digest) = image.split_once('@').unwrap_or((image, ""));
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[last_slash..].rfind(':') {
        Some(colon) => (&name[..last_slash + colon], &name[last_slash + colon + 1..], digest),
        None => (name, "", digest),
    }
}

/// An image id without its `sha256:` prefix.
pub fn image_id_hex(id: &str) -> &str {
    id.strip_prefix("sha256:").unwrap_or(id)
}

/// Parses an RFC 3339 UTC-or-offset timestamp (`2026-11-22T16:44:04.123456789Z`) into
/// nanoseconds since the epoch; `None` for malformed text or times before 1970.
pub fn parse_rfc3339_ns(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut nanos: i64 = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        for (i, d) in frac[..digits].bytes().take(9).enumerate() {
            nanos += i64::from(d - b'0') * 10i64.pow(8 - i as u32);
        }
        rest = &frac[digits..];
    }
    let offset_s = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            sign * (rest[1..3].parse::<i64>().ok()? * 3600 + rest[4..6].parse::<i64>().ok()? * 60)
        }
    };
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset_s;
    u64::try_from(secs).ok()?.checked_mul(1_000_000_000)?.checked_add(nanos as u64)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references() {
        for (image, want) in [
            ("localhost/testbed-busybox:test", ("localhost/testbed-busybox", "test", "")),
            ("nginx", ("nginx", "", "")),
            ("docker.io/library/nginx:1.25", ("docker.io/library/nginx", "1.25", "")),
            ("registry:5000/ns/app", ("registry:5000/ns/app", "", "")),
            ("registry:5000/ns/app:1.2@sha256:ab12", ("registry:5000/ns/app", "1.2", "sha256:ab12")),
            ("app@sha256:ab12", ("app", "", "sha256:ab12")),
            ("sha256:4f3a", ("sha256", "4f3a", "")),
        ] {
            assert_eq!(split_image(image), want, "{image}");
        }
    }

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339_ns("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339_ns("2026-11-22T16:44:04Z"), Some(1_795_365_844_000_000_000));
        assert_eq!(parse_rfc3339_ns("2026-11-22T16:44:04.123456789Z"), Some(1_795_365_844_123_456_789));
        assert_eq!(parse_rfc3339_ns("2026-11-22T16:44:04.5Z"), Some(1_795_365_844_500_000_000));
        assert_eq!(parse_rfc3339_ns("2026-11-22T17:44:04+01:00"), Some(1_795_365_844_000_000_000));
        assert_eq!(parse_rfc3339_ns("0001-01-01T00:00:00Z"), None, "Docker's zero time");
        assert_eq!(parse_rfc3339_ns("2026-13-22T16:44:04Z"), None);
        assert_eq!(parse_rfc3339_ns("yesterday"), None);
    }

    #[test]
    fn pod_from_kubelet_labels() {
        let labels: BTreeMap<String, String> = [
            (LABEL_POD_NAME, "web-0"),
            (LABEL_POD_NAMESPACE, "shop"),
            (LABEL_POD_UID, "3f6a1c52-0000-4000-8000-000000000001"),
            (LABEL_CONTAINER_NAME, "web"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let pod = ContainerInfo::pod_from_labels(&labels).unwrap();
        assert_eq!((pod.name.as_str(), pod.namespace.as_str()), ("web-0", "shop"));
        assert_eq!(pod.uid, "3f6a1c52-0000-4000-8000-000000000001");
        assert!(ContainerInfo::pod_from_labels(&BTreeMap::new()).is_none());
    }
}
