//! Container ids from a process's cgroup paths (`/proc/PID/cgroup`).
//!
//! Every runtime names a container's cgroup after its 64-hex id; the surrounding path says
//! which runtime made it. Both cgroup drivers are understood:
//!
//! | runtime | cgroupfs driver | systemd driver |
//! |---|---|---|
//! | CRI (containerd, CRI-O, kubelet) | `/kubepods/<qos>/pod<uid>/<id>` | `.../cri-containerd-<id>.scope`, `.../crio-<id>.scope` |
//! | CRI-O (cgroupfs) | `/kubepods/<qos>/pod<uid>/crio-<id>` | `crio-<id>.scope` |
//! | Docker | `/docker/<id>` | `/system.slice/docker-<id>.scope` |
//! | podman | `/libpod_parent/libpod-<id>` | `/machine.slice/libpod-<id>.scope` |
//! | containerd (`ctr`) | `/<namespace>/<id>` | — |
//!
//! Lines of cgroup v1 (`N:controllers:path`) and v2 (`0::path`) are read alike; the
//! deepest id on a path wins (a container nested in a container is the inner one).
//! Runtime helper cgroups (`libpod-conmon-<id>`, `crio-conmon-<id>`) are host processes.

use std::fmt;

/// Length of a full container id in hex digits.
pub const FULL_ID_LEN: usize = 64;
/// Length of the short id Falco prints as `container.id`.
pub const SHORT_ID_LEN: usize = 12;

/// Which runtime's naming a container id was found in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RuntimeKind {
    /// A kubelet pod (`/kubepods/.../pod<uid>/<id>`) whose runtime the path does not tell.
    Cri,
    /// containerd: CRI's systemd form (`cri-containerd-<id>.scope`) or `ctr` (`/<ns>/<id>`).
    Containerd,
    /// CRI-O (`crio-<id>`).
    Crio,
    /// Docker (`/docker/<id>`, `docker-<id>.scope`).
    Docker,
    /// podman (`libpod-<id>`).
    Podman,
}

impl RuntimeKind {
    /// A lower-case name for logs and tests.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cri => "cri",
            Self::Containerd => "containerd",
            Self::Crio => "cri-o",
            Self::Docker => "docker",
            Self::Podman => "podman",
        }
    }
}

/// Where a process runs: on the host, or in the container with this id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ContainerId {
    /// Not in a container (Falco's `container.id = host`).
    Host,
    /// In a container.
    Container {
        /// The full 64-hex id (lower case).
        id: Box<str>,
        /// The runtime the cgroup path points to.
        kind: RuntimeKind,
    },
}

impl ContainerId {
    /// `container.id`: the 12-character short id, or `host`.
    pub fn short(&self) -> &str {
        match self {
            Self::Host => "host",
            Self::Container { id, .. } => &id[..SHORT_ID_LEN],
        }
    }

    /// `container.full_id`: the full 64-hex id, or `host`.
    pub fn full(&self) -> &str {
        match self {
            Self::Host => "host",
            Self::Container { id, .. } => id,
        }
    }

    /// The runtime kind, `None` on the host.
    pub fn kind(&self) -> Option<RuntimeKind> {
        match self {
            Self::Host => None,
            Self::Container { kind, .. } => Some(*kind),
        }
    }

    /// Whether this is the host.
    pub fn is_host(&self) -> bool {
        matches!(self, Self::Host)
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short())
    }
}

/// Parses the contents of `/proc/PID/cgroup` into the container the process runs in.
///
/// Lines that are malformed are skipped; when no line names a container the answer is
/// [`ContainerId::Host`].
pub fn container_id_from_cgroup(text: &str) -> ContainerId {
    text.lines().filter_map(line_path).find_map(container_id_from_path).unwrap_or(ContainerId::Host)
}

/// The container named by the cgroup v2 (`0::`) line only, if that line names one.
///
/// On hybrid hosts a runtime may place containers only in the v1 hierarchies, so a v2
/// cgroup id identifies a container only when this returns one.
pub fn container_id_from_cgroup_v2(text: &str) -> Option<ContainerId> {
    text.lines().find_map(|line| line.strip_prefix("0::")).and_then(container_id_from_path)
}

/// The path of one `hierarchy:controllers:path` line.
fn line_path(line: &str) -> Option<&str> {
    let mut parts = line.splitn(3, ':');
    let (_hierarchy, _controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
    Some(path)
}

/// The deepest container named on one cgroup path.
fn container_id_from_path(path: &str) -> Option<ContainerId> {
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let kubepods = components.iter().any(|c| c.starts_with("kubepods"));
    for (i, component) in components.iter().enumerate().rev() {
        let found = if let Some(id) = scoped(component, "cri-containerd-") {
            Some((id, RuntimeKind::Containerd))
        } else if let Some(id) = scoped(component, "crio-") {
            Some((id, RuntimeKind::Crio))
        } else if let Some(id) = scoped(component, "docker-") {
            Some((id, RuntimeKind::Docker))
        } else if let Some(id) = scoped(component, "libpod-") {
            Some((id, RuntimeKind::Podman))
        } else if is_full_id(component) {
            let parent = i.checked_sub(1).map(|p| components[p]);
            let kind = match parent {
                Some("docker") => RuntimeKind::Docker,
                Some("libpod_parent") => RuntimeKind::Podman,
                _ if kubepods => RuntimeKind::Cri,
                // `ctr`: /<namespace>/<id>, directly under the root.
                Some(_) if i == 1 => RuntimeKind::Containerd,
                // A bare id elsewhere: most likely Docker's cgroupfs layout under a parent.
                _ => RuntimeKind::Docker,
            };
            Some((*component, kind))
        } else {
            None
        };
        if let Some((id, kind)) = found {
            return Some(ContainerId::Container { id: id.to_ascii_lowercase().into(), kind });
        }
    }
    None
}

/// The id in `<prefix><id>` or `<prefix><id>.scope`, when it is a full id.
fn scoped<'a>(component: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = component.strip_prefix(prefix)?;
    let id = rest.strip_suffix(".scope").unwrap_or(rest);
    is_full_id(id).then_some(id)
}

/// Whether `s` is 64 hex digits.
fn is_full_id(s: &str) -> bool {
    s.len() == FULL_ID_LEN && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f2a9c0d4b1e8f7a6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b";

    /// (description, /proc/PID/cgroup text, expected kind or None for host)
    fn cases() -> Vec<(&'static str, String, Option<RuntimeKind>)> {
        use RuntimeKind::*;
        vec![
            // Real lines seen on this machine (hybrid v1/v2, cgroupfs driver).
            (
                "CRI pod via containerd, cgroupfs, hybrid",
                format!(
                    "9:name=systemd:/kubepods/besteffort/pod3f6a1c52-0000-4000-8000-000000000001/{ID}\n\
                     4:memory:/kubepods/besteffort/pod3f6a1c52-0000-4000-8000-000000000001/{ID}\n\
                     0::/kubepods/besteffort/pod3f6a1c52-0000-4000-8000-000000000001/{ID}\n"
                ),
                Some(Cri),
            ),
            ("Docker, cgroupfs", format!("4:memory:/docker/{ID}\n1:cpu:/docker/{ID}\n0::/docker/{ID}\n"), Some(Docker)),
            (
                "podman, cgroupfs",
                format!("4:memory:/libpod_parent/libpod-{ID}\n0::/libpod_parent/libpod-{ID}\n"),
                Some(Podman),
            ),
            ("ctr, namespace k8s.io", format!("4:memory:/k8s.io/{ID}\n0::/k8s.io/{ID}\n"), Some(Containerd)),
            ("ctr, namespace default", format!("0::/default/{ID}\n"), Some(Containerd)),
            (
                "the sensor's own cgroup here (32 hex, not an id)",
                "9:name=systemd:/\n4:memory:/process_api/26d915369111f00879e48af5114aff6b\n0::/\n".into(),
                None,
            ),
            ("host, cgroup v2 only", "0::/init.scope\n".into(), None),
            ("host, v2 root", "0::/\n".into(), None),
            // systemd driver forms, cgroup v2.
            (
                "CRI containerd, systemd",
                format!(
                    "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0a1b2c3d_4e5f_6789_abcd_ef0123456789.slice/cri-containerd-{ID}.scope\n"
                ),
                Some(Containerd),
            ),
            (
                "CRI-O, systemd",
                format!(
                    "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podabc.slice/crio-{ID}.scope\n"
                ),
                Some(Crio),
            ),
            (
                "CRI-O, cgroupfs",
                format!("0::/kubepods/besteffort/pod0a1b2c3d-4e5f-6789-abcd-ef0123456789/crio-{ID}\n"),
                Some(Crio),
            ),
            (
                "CRI-O's conmon is a host process",
                format!("0::/kubepods.slice/kubepods-besteffort.slice/crio-conmon-{ID}.scope\n"),
                None,
            ),
            ("Docker, systemd", format!("0::/system.slice/docker-{ID}.scope\n"), Some(Docker)),
            (
                "Docker, systemd, cgroup v1",
                format!("12:pids:/system.slice/docker-{ID}.scope\n1:name=systemd:/system.slice/docker-{ID}.scope\n"),
                Some(Docker),
            ),
            ("podman, systemd", format!("0::/machine.slice/libpod-{ID}.scope\n"), Some(Podman)),
            (
                "podman, systemd, process in a sub-cgroup",
                format!("0::/machine.slice/libpod-{ID}.scope/container\n"),
                Some(Podman),
            ),
            ("podman's conmon is a host process", format!("0::/machine.slice/libpod-conmon-{ID}.scope\n"), None),
            (
                "kubelet with the Docker runtime (cgroupfs)",
                format!("4:memory:/kubepods/burstable/pod0a1b2c3d-4e5f-6789-abcd-ef0123456789/{ID}\n"),
                Some(Cri),
            ),
            ("systemd inside a Docker container", format!("0::/docker/{ID}/system.slice/cron.service\n"), Some(Docker)),
            ("upper-case hex is accepted", format!("0::/docker/{}\n", ID.to_uppercase()), Some(Docker)),
            ("malformed lines are skipped", format!("garbage\n\n0::/docker/{ID}\n"), Some(Docker)),
            ("63 hex digits are not an id", format!("0::/docker/{}\n", &ID[1..]), None),
        ]
    }

    #[test]
    fn table() {
        for (what, text, want) in cases() {
            let got = container_id_from_cgroup(&text);
            match want {
                None => assert_eq!(got, ContainerId::Host, "{what}"),
                Some(kind) => {
                    assert_eq!(got, ContainerId::Container { id: ID.into(), kind }, "{what}");
                    assert_eq!(got.short(), &ID[..12], "{what}");
                    assert_eq!(got.full(), ID, "{what}");
                }
            }
        }
    }

    #[test]
    fn host_renders_host() {
        assert_eq!(ContainerId::Host.short(), "host");
        assert_eq!(ContainerId::Host.full(), "host");
        assert_eq!(ContainerId::Host.to_string(), "host");
    }

    #[test]
    fn nested_containers_resolve_to_the_inner_one() {
        let inner = "b".repeat(64);
        let got = container_id_from_cgroup(&format!("0::/docker/{ID}/docker/{inner}\n"));
        assert_eq!(got.full(), inner);
    }

    #[test]
    fn v2_only_lookup_ignores_v1_lines() {
        let hybrid_v1_only = format!("4:memory:/docker/{ID}\n0::/\n");
        assert_eq!(container_id_from_cgroup(&hybrid_v1_only).full(), ID);
        assert_eq!(container_id_from_cgroup_v2(&hybrid_v1_only), None);
        assert_eq!(container_id_from_cgroup_v2(&format!("0::/docker/{ID}\n")).unwrap().full(), ID);
    }
}
