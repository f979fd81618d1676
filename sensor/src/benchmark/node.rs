//! What a benchmark reads on a node: the running kubelet and kube-proxy (found through
//! `/proc`, their real command lines, the configuration files they loaded, read through
//! their own root so that a sensor in a pod sees the host's files), and the files the
//! checks name.

use std::{
    collections::BTreeMap,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

/// The components a check reads settings of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Component {
    Kubelet,
    KubeProxy,
}

impl Component {
    /// The program's name (`/proc/PID/comm`).
    pub fn program(self) -> &'static str {
        match self {
            Component::Kubelet => "kubelet",
            Component::KubeProxy => "kube-proxy",
        }
    }

    /// Its boolean flags: given alone they mean `true`, and never take the next argument.
    fn bool_flags(self) -> &'static [&'static str] {
        match self {
            Component::Kubelet => &[
                "anonymous-auth",
                "make-iptables-util-chains",
                "rotate-certificates",
                "rotate-server-certificates",
                "seccomp-default",
                "protect-kernel-defaults",
                "fail-swap-on",
                "authentication-token-webhook",
            ],
            Component::KubeProxy => &["cleanup", "masquerade-all"],
        }
    }
}

/// A running component: its process, flags and configuration file.
#[derive(Clone, Debug, Default)]
pub struct Process {
    pub pid: u32,
    /// Its command line, as the kernel holds it.
    pub args: Vec<String>,
    /// `--name[=value]` flags, by name; a flag given twice: the last (as pflag takes it).
    pub flags: BTreeMap<String, String>,
    /// The file of `--config`, read.
    pub config: Option<ConfigFile>,
    /// Its root directory (`/proc/PID/root`): where its paths are read from.
    pub root: PathBuf,
    /// Other processes of the same name that were passed over, and why.
    pub passed_over: Vec<String>,
}

/// A YAML configuration file a component loaded.
#[derive(Clone, Debug)]
pub struct ConfigFile {
    /// The path as the component names it.
    pub path: String,
    pub text: String,
    /// The file as JSON (`null` when it does not parse: each setting then reads as absent,
    /// and `error` says why).
    pub value: serde_json::Value,
    pub error: Option<String>,
}

/// A file a check reads the mode and owner of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileFacts {
    /// The path as the node names it.
    pub path: String,
    /// `None`: it does not exist.
    pub stat: Option<FileStat>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileStat {
    /// Permission bits (`0o644`).
    pub mode: u32,
    /// `user:group` by the node's names (a number where it has none).
    pub owner: String,
}

/// The files checks name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileRole {
    /// The kubelet's systemd unit (with kubeadm, its drop-in).
    KubeletService,
    KubeletKubeconfig,
    KubeletConfig,
    /// The CA file client certificates are checked against.
    ClientCa,
    ProxyKubeconfig,
}

/// Where the kubelet's systemd unit may be, the first found being read (kubeadm's drop-in
/// first, as it is what sets the kubelet's flags).
const KUBELET_SERVICE_FILES: [&str; 4] = [
    "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf",
    "/etc/systemd/system/kubelet.service",
    "/usr/lib/systemd/system/kubelet.service",
    "/lib/systemd/system/kubelet.service",
];

/// What a node's benchmark reads.
#[derive(Clone, Debug, Default)]
pub struct Node {
    pub kubelet: Option<Process>,
    pub kube_proxy: Option<Process>,
    /// The host's root, seen from here (the kubelet's root, else `/`).
    pub root: PathBuf,
}

impl Node {
    /// Finds the kubelet and kube-proxy under `proc` (`/proc`). A kubelet is taken only in the
    /// host's PID and mount namespaces (a process in a container named `kubelet` is not the
    /// node's kubelet); of several, the oldest, the others noted.
    pub fn discover(proc: &Path) -> Node {
        let host_ns = |pid: &str| ["pid", "mnt"].map(|ns| std::fs::read_link(proc.join(pid).join("ns").join(ns)).ok());
        // The host's namespaces are init's; where init's cannot be read (a sandbox hiding
        // it), the PID namespace this sensor runs in (the host's, with hostPID).
        let init = match host_ns("1") {
            [Some(pid), Some(mnt)] => [Some(pid), Some(mnt)],
            _ => [host_ns("self")[0].clone(), None],
        };
        let mut found: BTreeMap<Component, Vec<(u64, u32, bool)>> = BTreeMap::new();
        for entry in std::fs::read_dir(proc).into_iter().flatten().flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            let component = match comm.trim_end() {
                "kubelet" => Component::Kubelet,
                "kube-proxy" => Component::KubeProxy,
                _ => continue,
            };
            let started = process_start(&entry.path()).unwrap_or(u64::MAX);
            let own = host_ns(&pid.to_string());
            let on_host = init[0].is_some() && init.iter().zip(&own).all(|(host, own)| host.is_none() || host == own);
            found.entry(component).or_default().push((started, pid, on_host));
        }
        let mut node = Node { root: PathBuf::from("/"), ..Node::default() };
        for (component, mut candidates) in found {
            candidates.sort();
            let chosen = match component {
                Component::Kubelet => candidates.iter().find(|(_, _, on_host)| *on_host).copied(),
                Component::KubeProxy => candidates.first().copied(),
            };
            let Some((_, pid, _)) = chosen else { continue };
            let mut process = Process::read(proc, pid, component);
            process.passed_over = candidates
                .iter()
                .filter(|(_, other, _)| *other != pid)
                .map(|(_, other, on_host)| {
                    let why = if *on_host { "younger" } else { "not in the host's namespaces" };
                    format!("{} pid {other} ({why})", component.program())
                })
                .collect();
            match component {
                Component::Kubelet => {
                    node.root = process.root.clone();
                    node.kubelet = Some(process);
                }
                Component::KubeProxy => node.kube_proxy = Some(process),
            }
        }
        node
    }

    /// The running `component`.
    pub fn process(&self, component: Component) -> Option<&Process> {
        match component {
            Component::Kubelet => self.kubelet.as_ref(),
            Component::KubeProxy => self.kube_proxy.as_ref(),
        }
    }

    /// The file of `role`: its path as the node names it (from the component's flags and
    /// configuration, else the usual place) and its mode and owner.
    pub fn file(&self, role: FileRole) -> FileFacts {
        let kubelet = self.kubelet.as_ref();
        let (root, path) = match role {
            FileRole::KubeletService => {
                let found = KUBELET_SERVICE_FILES.iter().find(|p| under(&self.root, p).exists());
                (self.root.clone(), found.unwrap_or(&KUBELET_SERVICE_FILES[0]).to_string())
            }
            FileRole::KubeletKubeconfig => {
                (self.root.clone(), flag_or(kubelet, "kubeconfig", "/etc/kubernetes/kubelet.conf"))
            }
            FileRole::KubeletConfig => (self.root.clone(), flag_or(kubelet, "config", "/var/lib/kubelet/config.yaml")),
            FileRole::ClientCa => {
                let from_config = kubelet
                    .and_then(|k| k.config.as_ref())
                    .and_then(|c| lookup(&c.value, "authentication.x509.clientCAFile"))
                    .and_then(|v| v.as_str().map(str::to_owned));
                let path = kubelet
                    .and_then(|k| k.flags.get("client-ca-file").cloned())
                    .or(from_config)
                    .unwrap_or_else(|| "/etc/kubernetes/pki/ca.crt".into());
                (self.root.clone(), path)
            }
            FileRole::ProxyKubeconfig => match &self.kube_proxy {
                Some(proxy) => {
                    let from_config = proxy
                        .config
                        .as_ref()
                        .and_then(|c| lookup(&c.value, "clientConnection.kubeconfig"))
                        .and_then(|v| v.as_str().map(str::to_owned));
                    let path = proxy.flags.get("kubeconfig").cloned().or(from_config);
                    (proxy.root.clone(), path.unwrap_or_else(|| "/etc/kubernetes/proxy.conf".into()))
                }
                None => (self.root.clone(), "/etc/kubernetes/proxy.conf".into()),
            },
        };
        // Owners by the host's names (a container's root may have no passwd at all).
        let stat = std::fs::metadata(under(&root, &path)).ok().map(|m| FileStat {
            mode: m.mode() & 0o7777,
            owner: format!(
                "{}:{}",
                name_of(&self.root, "etc/passwd", m.uid()),
                name_of(&self.root, "etc/group", m.gid())
            ),
        });
        FileFacts { path, stat }
    }

    /// The lines of the kubelet's systemd unit (and kubeadm's drop-in), for `key=value`.
    pub fn unit_setting(&self, role: FileRole, key: &str) -> Option<(String, usize, String)> {
        let facts = self.file(role);
        let text = std::fs::read_to_string(under(&self.root, &facts.path)).ok()?;
        // The last line setting it wins, as in systemd.
        text.lines()
            .enumerate()
            .filter_map(|(n, line)| {
                let (k, v) = line.trim().split_once('=')?;
                (k.trim() == key).then(|| (facts.path.clone(), n + 1, v.trim().to_owned()))
            })
            .last()
    }
}

/// `path` (absolute, as a process names it) under `root`.
pub fn under(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

fn flag_or(process: Option<&Process>, flag: &str, default: &str) -> String {
    process.and_then(|p| p.flags.get(flag).cloned()).unwrap_or_else(|| default.to_owned())
}

/// The name of `id` in the node's `passwd` or `group` file under `root`, else `root` for
/// 0 and the number for others.
fn name_of(root: &Path, file: &str, id: u32) -> String {
    let text = std::fs::read_to_string(root.join(file)).unwrap_or_default();
    let named = text.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)?.parse::<u32>().ok()? == id).then(|| name.to_owned())
    });
    named.unwrap_or_else(|| if id == 0 { "root".into() } else { id.to_string() })
}

/// The process's start time in clock ticks since boot (`/proc/PID/stat` field 22).
fn process_start(dir: &Path) -> Option<u64> {
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    // The name may hold spaces and parentheses: the fields start after the last `)`.
    stat.rsplit_once(')')?.1.split_whitespace().nth(19)?.parse().ok()
}

impl Process {
    /// Reads process `pid` under `proc` as `component`.
    pub fn read(proc: &Path, pid: u32, component: Component) -> Process {
        let dir = proc.join(pid.to_string());
        let raw = std::fs::read(dir.join("cmdline")).unwrap_or_default();
        let args: Vec<String> =
            raw.split(|b| *b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        let flags = parse_flags(&args, component.bool_flags());
        let root = dir.join("root");
        let config = flags.get("config").map(|path| ConfigFile::read(&root, path));
        Process { pid, args, flags, config, root, passed_over: Vec::new() }
    }
}

/// The flags of a Go (pflag) command line: `--name=value`, `--name value` (not for boolean
/// flags), `--name` alone (`true`); `-name` as `--name`; the last of a repeated flag wins.
pub fn parse_flags(args: &[String], bool_flags: &[&str]) -> BTreeMap<String, String> {
    let mut flags = BTreeMap::new();
    let mut i = 1;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            break;
        }
        let Some(body) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else { continue };
        match body.split_once('=') {
            Some((name, value)) => {
                flags.insert(name.to_owned(), value.to_owned());
            }
            None if bool_flags.contains(&body) => {
                flags.insert(body.to_owned(), "true".to_owned());
            }
            None => {
                let value = match args.get(i) {
                    Some(next) if !next.starts_with('-') => {
                        i += 1;
                        next.clone()
                    }
                    _ => "true".to_owned(),
                };
                flags.insert(body.to_owned(), value);
            }
        }
    }
    flags
}

impl ConfigFile {
    /// Reads the YAML file `path` under `root`.
    pub fn read(root: &Path, path: &str) -> ConfigFile {
        let (text, error) = match std::fs::read_to_string(under(root, path)) {
            Ok(text) => (text, None),
            Err(e) => (String::new(), Some(format!("cannot read {path}: {e}"))),
        };
        let (value, error) = match (&error, serde_saphyr::from_str::<serde_json::Value>(&text)) {
            (Some(_), _) => (serde_json::Value::Null, error),
            (None, Ok(value)) => (value, None),
            (None, Err(e)) => (serde_json::Value::Null, Some(format!("{path} is not YAML: {e}"))),
        };
        ConfigFile { path: path.to_owned(), text, value, error }
    }

    /// The 1-based line where the dotted `key` is written, when written in block style.
    pub fn line_of(&self, key: &str) -> Option<usize> {
        let mut parts = key.split('.');
        let mut want = parts.next()?;
        let mut min_indent = 0;
        let mut last_indent: Option<usize> = None;
        for (n, line) in self.text.lines().enumerate() {
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let indent = line.len() - trimmed.len();
            if let Some(parent) = last_indent
                && indent <= parent
            {
                // Left the parent's block without finding the key.
                return None;
            }
            if indent < min_indent {
                continue;
            }
            let name = trimmed.split(':').next().unwrap_or_default().trim().trim_matches(['"', '\'']);
            if trimmed.contains(':') && name == want {
                match parts.next() {
                    Some(next) => {
                        want = next;
                        last_indent = Some(indent);
                        min_indent = indent + 1;
                    }
                    None => return Some(n + 1),
                }
            }
        }
        None
    }
}

/// The value at the dotted `key` of a JSON tree.
pub fn lookup<'v>(value: &'v serde_json::Value, key: &str) -> Option<&'v serde_json::Value> {
    key.split('.').try_fold(value, |v, part| v.get(part)).filter(|v| !v.is_null())
}
