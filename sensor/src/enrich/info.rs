//! What the runtime knows about a container: [`ContainerInfo`] and its pod.

use std::{collections::BTreeMap, fmt};

use crate::rules::matchers::fnmatch;

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
    /// The mounts, in the runtime's order (`container.mounts`, `container.mount[...]`).
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

/// One mount of a container; it renders as Falco's `source:dest:mode:rdrw:propagation`.
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

impl fmt::Display for Mount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Mount { source, destination, mode, read_write, propagation } = self;
        write!(f, "{source}:{destination}:{mode}:{read_write}:{propagation}")
    }
}

impl Mount {
    /// Parses `container.mounts` as rendered: space-separated `source:dest:mode:rdrw:propagation`
    /// (for events given as field maps).
    pub fn parse_list(text: &str) -> Result<Vec<Mount>, String> {
        text.split_whitespace()
            .map(|entry| {
                let bad = || format!("'{entry}' is not a mount as source:dest:mode:rdrw:propagation");
                let parts: Vec<&str> = entry.rsplitn(4, ':').collect();
                let [propagation, rdrw, mode, rest] = parts[..] else { return Err(bad()) };
                let (source, destination) = rest.rsplit_once(':').ok_or_else(bad)?;
                let read_write = match rdrw {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad()),
                };
                Ok(Mount {
                    source: source.to_owned(),
                    destination: destination.to_owned(),
                    mode: mode.to_owned(),
                    read_write,
                    propagation: propagation.to_owned(),
                })
            })
            .collect()
    }
}

/// The mount fields of a container with `mounts`, as Falco's container plugin documents
/// them; `None` for any other field. `arg` is the bracket argument: an index, or a path glob
/// (`fnmatch`, the first mount that matches) compared with the mount's destination for
/// `container.mount.source` and with its source for the others. No such mount gives `none`.
pub fn mount_field(mounts: &[Mount], name: &str, arg: Option<&str>) -> Option<String> {
    let part: fn(&Mount) -> String = match name {
        "container.mounts" => return Some(mounts.iter().map(Mount::to_string).collect::<Vec<_>>().join(" ")),
        "container.mount" => Mount::to_string,
        "container.mount.source" => |m| m.source.clone(),
        "container.mount.dest" => |m| m.destination.clone(),
        "container.mount.mode" => |m| m.mode.clone(),
        "container.mount.rdwr" => |m| m.read_write.to_string(),
        "container.mount.propagation" => |m| m.propagation.clone(),
        _ => return None,
    };
    let arg = arg?;
    let found = match arg.parse::<usize>() {
        Ok(index) => mounts.get(index),
        Err(_) if name == "container.mount.source" => mounts.iter().find(|m| fnmatch(arg, &m.destination, false)),
        Err(_) => mounts.iter().find(|m| fnmatch(arg, &m.source, false)),
    };
    Some(found.map_or_else(|| "none".to_owned(), part))
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

    /// A container with a read-only directory, the Docker socket and a volume.
    fn mounts() -> Vec<Mount> {
        let mount = |source: &str, destination: &str, mode: &str, read_write| Mount {
            source: source.into(),
            destination: destination.into(),
            mode: mode.into(),
            read_write,
            propagation: "rprivate".into(),
        };
        vec![
            mount("/srv/data", "/data", "ro", false),
            mount("/var/run/docker.sock", "/var/run/docker.sock", "", true),
            mount("/var/lib/docker/volumes/cache/_data", "/usr/local/cache", "z", true),
        ]
    }

    #[test]
    fn mount_fields_by_index_and_glob() {
        let mounts = mounts();
        let field = |name: &str, arg: &str| mount_field(&mounts, name, Some(arg)).unwrap();
        // By index.
        assert_eq!(field("container.mount", "0"), "/srv/data:/data:ro:false:rprivate");
        assert_eq!(field("container.mount.dest", "2"), "/usr/local/cache");
        assert_eq!(field("container.mount.source", "1"), "/var/run/docker.sock");
        assert_eq!(field("container.mount.mode", "0"), "ro");
        assert_eq!(field("container.mount.rdwr", "0"), "false");
        assert_eq!(field("container.mount.propagation", "1"), "rprivate");
        // container.mount.source by destination, the others by source; a glob takes the first match.
        assert_eq!(field("container.mount.source", "/data"), "/srv/data");
        assert_eq!(field("container.mount.source", "/usr/local/*"), "/var/lib/docker/volumes/cache/_data");
        assert_eq!(field("container.mount.dest", "/var/run/docker.sock"), "/var/run/docker.sock");
        assert_eq!(field("container.mount.dest", "/srv/*"), "/data");
        assert_eq!(field("container.mount.dest", "/var/*"), "/var/run/docker.sock", "first of two matches");
        assert_eq!(field("container.mount.rdwr", "/var/lib/docker/volumes/*"), "true");
        assert_eq!(field("container.mount.mode", "/var/lib/docker/volumes/*"), "z");
        assert_eq!(field("container.mount", "/srv/dat?"), "/srv/data:/data:ro:false:rprivate");
        // The path is a whole-string glob, compared with the right end of the mount.
        assert_eq!(field("container.mount.dest", "/srv"), "none");
        assert_eq!(field("container.mount.dest", "/data"), "none", "by source, not destination");
        assert_eq!(field("container.mount.source", "/srv/data"), "none", "by destination, not source");
        // No such mount: the string "none", not an absent value.
        assert_eq!(field("container.mount", "3"), "none");
        assert_eq!(field("container.mount.dest", "/proc*"), "none");
        assert_eq!(mount_field(&[], "container.mount.dest", Some("0")).as_deref(), Some("none"));
        assert_eq!(mount_field(&mounts, "container.labels", None), None, "not a mount field");
    }

    #[test]
    fn mounts_render_and_parse_back() {
        let text = mount_field(&mounts(), "container.mounts", None).unwrap();
        assert_eq!(
            text,
            "/srv/data:/data:ro:false:rprivate /var/run/docker.sock:/var/run/docker.sock::true:rprivate \
             /var/lib/docker/volumes/cache/_data:/usr/local/cache:z:true:rprivate"
        );
        assert_eq!(Mount::parse_list(&text), Ok(mounts()));
        assert_eq!(mount_field(&[], "container.mounts", None).as_deref(), Some(""));
        assert_eq!(Mount::parse_list(""), Ok(vec![]));
        let e = Mount::parse_list("/srv:/data:ro:rw:rprivate").unwrap_err();
        assert!(e.contains("'/srv:/data:ro:rw:rprivate' is not a mount as source:dest:mode:rdrw:propagation"), "{e}");
        assert!(Mount::parse_list("/srv:true:rprivate").is_err());
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
