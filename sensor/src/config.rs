//! The sensor's configuration file (`--config FILE`): a YAML mapping with one key per part of
//! the sensor, every key optional (the defaults run the built-in rules to stdout). Unknown
//! keys are errors, with their line. `deploy/sensor.yaml` documents every key.
//!
//! Overrides apply on top of the file, in order: environment variables
//! `SENSOR_CONFIG__<KEY>__<KEY>=value` (a path in upper case, `__` between keys), then
//! `-o key.key=value` options; the value is YAML (`-o metrics.address=10.0.0.5:8765`,
//! `-o 'outputs=[{stdout: {format: json}}]'`, `-o outputs.0.min_priority=warning`).

use std::{
    fmt,
    net::SocketAddr,
    num::{NonZeroU32, NonZeroUsize},
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, bail};
use serde::Deserialize;

use crate::{
    capture::ProbeMode,
    outputs::{
        OutputsConfig, SecretSource,
        config::{deserialize_duration, deserialize_positive_duration, deserialize_priority},
    },
    pipeline::DEFAULT_QUEUE_BYTES,
    rules::Priority,
};

pub mod falco;

/// The prefix of environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "SENSOR_CONFIG__";

/// The whole configuration file.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SensorConfig {
    /// Rules files or directories, loaded in order (empty: the built-in rules).
    #[serde(default)]
    pub rules: Vec<PathBuf>,
    /// How the rules are evaluated.
    #[serde(default)]
    pub engine: EngineConfig,
    /// The kernel side.
    #[serde(default)]
    pub capture: CaptureSection,
    /// Pipeline workers (0, the default: one per core).
    #[serde(default)]
    pub workers: usize,
    /// The alerts between the workers and the outputs.
    #[serde(default)]
    pub alert_queue: AlertQueueConfig,
    /// Container and pod metadata.
    #[serde(default)]
    pub containers: ContainersConfig,
    /// The metrics and health endpoint.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// The sensor's own log.
    #[serde(default)]
    pub log: LogConfig,
    /// Alerts about the sensor itself (event drops, failed reloads).
    #[serde(default)]
    pub internal_alerts: InternalAlertsConfig,
    /// Reloading the rules and this file when they change.
    #[serde(default)]
    pub reload: ReloadConfig,
    /// The process table.
    #[serde(default)]
    pub state: StateSection,
    /// Where alerts go (default: Falco's text line on stdout).
    #[serde(default)]
    pub outputs: OutputsConfig,
    /// The web console over the alert store.
    #[serde(default)]
    pub ui: crate::console::UiConfig,
    /// Kubernetes audit events: the webhook kube-apiserver posts to, the logs it writes.
    #[serde(default)]
    pub k8s_audit: crate::k8s_audit::AuditConfig,
    /// The node's CIS benchmark, run at start and every interval; drift alerts.
    #[serde(default)]
    pub benchmark: crate::benchmark::BenchmarkConfig,
    /// How text alerts begin: `local` (the time of day in the node's time zone, as Falco's;
    /// the default), `utc`, or `iso8601` (Falco's `time_format_iso_8601`).
    #[serde(default)]
    pub time_format: crate::rules::output::TimeFormat,
    /// The properties JSON alerts carry on stdout, file, syslog, program and webhook
    /// outputs: `output`, `message`, `output_fields`, `tags` (Falco's `json_include_*`).
    #[serde(default)]
    pub json_alert: crate::rules::output::JsonAlertShape,
    /// Values rules read as `static.NAME` (`static_fields: {cluster: prod-eu}`), the same
    /// on every event, as Falco's `static_fields`.
    #[serde(default)]
    pub static_fields: std::collections::BTreeMap<String, String>,
    /// What reading the file found to tell the operator (a Falco file's keys that have no
    /// effect here, its missing files), logged at start.
    #[serde(skip)]
    pub notices: Vec<String>,
}

impl SensorConfig {
    /// The stores of the enabled `store` outputs.
    pub fn stores(&self) -> impl Iterator<Item = &crate::store::StoreConfig> {
        self.outputs.outputs.iter().filter(|o| o.options.enabled).filter_map(|o| match &o.kind {
            crate::outputs::OutputKind::Store(store) => Some(store),
            _ => None,
        })
    }

    /// Makes alerts render as `time_format` and `json_alert` say, and `static.NAME` give
    /// `static_fields`' values, from now on (one setting for the process, as Falco's).
    pub fn apply_alert_formats(&self) {
        crate::rules::output::set_time_format(self.time_format);
        crate::rules::output::set_json_shape(self.json_alert);
        crate::rules::fields::set_static_fields(self.static_fields.clone());
    }

    /// The consoles of the enabled `console` outputs.
    pub fn consoles(&self) -> impl Iterator<Item = &crate::outputs::console::ConsoleConfig> {
        self.outputs.outputs.iter().filter(|o| o.options.enabled).filter_map(|o| match &o.kind {
            crate::outputs::OutputKind::Console(console) => Some(console),
            _ => None,
        })
    }

    /// The store of the first enabled `store` output, if any.
    pub fn store(&self) -> Option<&crate::store::StoreConfig> {
        self.stores().next()
    }

    /// Refuses an audit log in the SQLite file of an alert store (a `store` output or
    /// `ui.store`): each file counts its own size against its own `max_size`.
    pub fn check_audit_store(&self) -> anyhow::Result<()> {
        let Some(audit) = self.k8s_audit.store.as_ref().and_then(|s| s.sqlite_path()) else { return Ok(()) };
        let alerts = self.stores().chain(self.ui.store.as_ref()).filter_map(|s| s.sqlite_path());
        for path in alerts {
            if path == audit {
                bail!(
                    "k8s_audit.store: {} is an alert store's file; the audit log needs a file of its own",
                    audit.display()
                );
            }
        }
        Ok(())
    }
}

/// How the rules are evaluated.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Load only rules at least this severe (default `debug`: all).
    #[serde(deserialize_with = "deserialize_priority")]
    pub min_priority: Priority,
    /// Report every rule an event matches, not only the first (default false).
    pub all_matches: bool,
    /// Append the container and pod fields to syscall rule outputs, as Falco does (default true).
    pub suggested_output: bool,
    /// Rules switched off or on once every file is loaded, in order, as Falco's `rules:`
    /// selection: `- disable: {rule: "Read*"}` (a glob over names), `- enable: {tag: network}`.
    pub select: Vec<RuleSelection>,
    /// Text (with `%field`s) appended to the outputs of chosen rules, after the suggested
    /// fields, as Falco's `append_output`: `- match: {source: syscall, tags: [container],
    /// rule: NAME}` (each optional, all must hold) and `extra_output: "cpu=%evt.cpu"`.
    pub append_output: Vec<crate::rules::AppendOutput>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            min_priority: Priority::Debug,
            all_matches: false,
            suggested_output: true,
            select: Vec::new(),
            append_output: Vec::new(),
        }
    }
}

/// One entry of `engine.select`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum RuleSelection {
    Enable(SelectedRules),
    Disable(SelectedRules),
}

/// The rules an `engine.select` entry names.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum SelectedRules {
    /// Rules whose name matches this glob (`*` for all).
    Rule(String),
    /// Rules with this tag.
    Tag(String),
}

impl RuleSelection {
    /// The selector, and whether it enables.
    pub fn selector(&self) -> (crate::rules::Selector, bool) {
        let (rules, enable) = match self {
            RuleSelection::Enable(r) => (r, true),
            RuleSelection::Disable(r) => (r, false),
        };
        let selector = match rules {
            SelectedRules::Rule(glob) => crate::rules::Selector::Rule(glob.clone()),
            SelectedRules::Tag(tag) => crate::rules::Selector::Tag(tag.clone()),
        };
        (selector, enable)
    }
}

/// The alerts between the workers and the outputs: bounded, so that a rule matching a
/// million times cannot grow the sensor; an alert that does not fit is dropped and counted.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AlertQueueConfig {
    /// KiB of alerts held at most (default 16384); one rule may hold a quarter of it.
    pub kib: NonZeroU32,
}

impl AlertQueueConfig {
    /// The bound in bytes.
    pub fn bytes(&self) -> usize {
        self.kib.get() as usize * 1024
    }
}

impl Default for AlertQueueConfig {
    fn default() -> Self {
        AlertQueueConfig { kib: NonZeroU32::new((DEFAULT_QUEUE_BYTES / 1024) as u32).expect("a nonzero default") }
    }
}

/// The kernel side.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureSection {
    /// KiB per ring buffer, rounded up to a power of two (default 8192).
    pub ring_buffer_kib: u32,
    /// `auto` (BTF programs, raw tracepoints if those fail), `btf` or `raw`.
    pub probes: ProbeMode,
    /// Keep back in the kernel the file opens no loaded rule can match (default true).
    pub prefilter: bool,
}

impl Default for CaptureSection {
    fn default() -> Self {
        CaptureSection { ring_buffer_kib: 8192, probes: ProbeMode::Auto, prefilter: true }
    }
}

/// Container and pod metadata from the runtimes' unix sockets.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ContainersConfig {
    /// Longest an event waits for its container's metadata (default 5ms).
    #[serde(deserialize_with = "deserialize_duration")]
    pub wait: Duration,
    /// CRI sockets (containerd, CRI-O). Giving any socket list replaces every default.
    pub cri_sockets: Option<Vec<PathBuf>>,
    /// containerd sockets, for its own containers API.
    pub containerd_sockets: Option<Vec<PathBuf>>,
    /// Docker Engine API sockets.
    pub docker_sockets: Option<Vec<PathBuf>>,
    /// podman's Docker-compatible API sockets.
    pub podman_sockets: Option<Vec<PathBuf>>,
}

impl Default for ContainersConfig {
    fn default() -> Self {
        ContainersConfig {
            wait: Duration::from_millis(5),
            cri_sockets: None,
            containerd_sockets: None,
            docker_sockets: None,
            podman_sockets: None,
        }
    }
}

/// The HTTP endpoint of `/metrics`, `/healthz` and `/readyz`. It shares the node's network
/// with every pod, so it listens on loopback unless told otherwise, and bounds what any
/// client can hold: one request's headers, an idle connection, the number of connections.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address to listen on (default `127.0.0.1:8765`; null: no endpoint). An IPv6 address
    /// may be written without brackets (`fd00::5:8765`), as `$(POD_IP):8765` expands.
    #[serde(deserialize_with = "deserialize_listen_address")]
    pub address: Option<SocketAddr>,
    /// Longest a client may take to send a request's headers, and longest a connection may
    /// sit idle between requests (default 5s).
    #[serde(deserialize_with = "deserialize_positive_duration")]
    pub header_timeout: Duration,
    /// Longest a connection stays open, whatever it does (default 30s).
    #[serde(deserialize_with = "deserialize_positive_duration")]
    pub connection_timeout: Duration,
    /// Connections open at once (default 64). At the cap, a new connection replaces the
    /// oldest one that has not sent a request yet, or is closed if every one has.
    pub max_connections: NonZeroUsize,
    /// A bearer token `/metrics` requires (`Authorization: Bearer ...`), from `{env: NAME}`
    /// or `{file: PATH}` (default: none). `/healthz` and `/readyz` stay open for probes.
    pub bearer_token: Option<SecretSource>,
    /// HTTPS, and with `client_ca_file` a client certificate for `/metrics` (default: none,
    /// plain HTTP).
    pub tls: Option<MetricsTls>,
    /// `/healthz` fails when a stage (a ring reader, a worker, the run loop) with work
    /// waiting made no progress for this long (default 10s).
    #[serde(deserialize_with = "deserialize_positive_duration")]
    pub stall_after: Duration,
    /// Serve `/metrics` (default true; false leaves `/healthz` and `/readyz`, as Falco's
    /// `webserver` without `prometheus_metrics_enabled`).
    pub prometheus: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            address: Some(SocketAddr::from(([127, 0, 0, 1], 8765))),
            header_timeout: Duration::from_secs(5),
            connection_timeout: Duration::from_secs(30),
            max_connections: NonZeroUsize::new(64).expect("non-zero"),
            bearer_token: None,
            tls: None,
            stall_after: Duration::from_secs(10),
            prometheus: true,
        }
    }
}

/// HTTPS on the metrics endpoint.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricsTls {
    /// PEM certificate chain of the endpoint.
    pub cert_file: PathBuf,
    /// PEM private key of `cert_file`.
    pub key_file: PathBuf,
    /// PEM CAs whose client certificates may read `/metrics` (mutual TLS). Clients without
    /// one (the kubelet's probes) still get `/healthz` and `/readyz`. Default: none, any
    /// client may read `/metrics` (unless `bearer_token` says otherwise).
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
}

/// Reads a listen address: `host:port` with the host an IP address, IPv6 with or without
/// brackets; null for none.
fn deserialize_listen_address<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let Some(text) = Option::<String>::deserialize(d)? else { return Ok(None) };
    parse_listen_address(&text).map(Some).map_err(serde::de::Error::custom)
}

/// `host:port` (IPv6 hosts in brackets or bare) as a socket address.
pub fn parse_listen_address(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    let invalid = || format!("invalid address `{text}`: expected IP:PORT, e.g. 127.0.0.1:8765");
    let (host, port) = text.rsplit_once(':').ok_or_else(invalid)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip: std::net::IpAddr = host.parse().map_err(|_| invalid())?;
    let port: u16 = port.parse().map_err(|_| invalid())?;
    Ok(SocketAddr::new(ip, port))
}

/// The sensor's own log (on stderr).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Level filter: `error`, `warn`, `info` (default), `debug`, `trace`, or `RUST_LOG` syntax.
    pub level: String,
    /// `text` (default) or `json` (one object per line).
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { level: "info".into(), format: LogFormat::Text }
    }
}

/// How log lines look.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `[time LEVEL] message`.
    #[default]
    Text,
    /// `{"time": ..., "level": ..., "message": ...}`.
    Json,
}

/// Alerts about the sensor itself, sent through the outputs like rule alerts.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct InternalAlertsConfig {
    /// Raise "sensor internal: event drops" when more events than this were lost in the
    /// kernel within one `interval` (default 0: any loss).
    pub drop_threshold: u64,
    /// How often drops are checked, and at most one drop alert per interval (default 1m).
    #[serde(deserialize_with = "deserialize_duration")]
    pub interval: Duration,
    /// Raise the drop alert as Falco does: rule `Falco internal: syscall event drop`, its
    /// message and output fields (`n_evts`, `n_drops`, `n_drops_buffer_total`, ...)
    /// (default false; true for a Falco configuration file).
    pub falco_drop_alert: bool,
}

impl Default for InternalAlertsConfig {
    fn default() -> Self {
        InternalAlertsConfig { drop_threshold: 0, interval: Duration::from_secs(60), falco_drop_alert: false }
    }
}

/// Reloading: SIGHUP always reloads; `watch` also reloads when a rules or configuration
/// file changes.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ReloadConfig {
    /// Watch the rules and configuration files (default true).
    pub watch: bool,
    /// How often the files are checked for changes (default 2s).
    #[serde(deserialize_with = "deserialize_duration")]
    pub interval: Duration,
}

impl Default for ReloadConfig {
    fn default() -> Self {
        ReloadConfig { watch: true, interval: Duration::from_secs(2) }
    }
}

/// The process table: its bound, and how often it drops processes whose exit was not seen.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StateSection {
    /// Most processes tracked per worker (default 65536); a full table evicts the leaves
    /// idle longest, never ancestors first.
    pub max_processes: usize,
    /// How often processes gone from `/proc` without an exit event are dropped (default 60s).
    #[serde(deserialize_with = "deserialize_duration")]
    pub sweep_interval: Duration,
}

impl Default for StateSection {
    fn default() -> Self {
        let d = crate::state::StateConfig::default();
        StateSection { max_processes: d.max_processes, sweep_interval: d.sweep_interval }
    }
}

impl StateSection {
    /// The state's limits.
    pub fn state_config(&self) -> crate::state::StateConfig {
        crate::state::StateConfig { max_processes: self.max_processes.max(1), sweep_interval: self.sweep_interval }
    }
}

/// A configuration error and where it is in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based line (0 when unknown).
    pub line: usize,
    /// 1-based column (0 when unknown).
    pub column: usize,
    /// What is wrong, on one line.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

impl SensorConfig {
    /// Reads and checks a configuration file (this sensor's, or Falco's `falco.yaml`);
    /// errors read `FILE:LINE:COLUMN: message`.
    pub fn load(path: &Path) -> anyhow::Result<SensorConfig> {
        let text = read_text(path)?;
        match falco_tree(&text) {
            Some(falco) => SensorConfig::from_falco(path, falco, &[], &[]),
            None => SensorConfig::parse(&text).map_err(|e| anyhow::anyhow!("{}:{e}", path.display())),
        }
    }

    /// Falco's file at `path` (its tree `falco`), with Falco-key `overrides` and then this
    /// sensor's `ours` applied.
    fn from_falco(
        path: &Path,
        falco: serde_json::Value,
        overrides: &[(String, String)],
        ours: &[(String, String)],
    ) -> anyhow::Result<SensorConfig> {
        let translated = falco::translate(path, falco, overrides)?;
        let mut tree = translated.tree;
        for (key, value) in ours {
            let value: serde_json::Value = serde_saphyr::from_str(value)
                .map_err(|e| anyhow::anyhow!("override {key}: the value is not YAML: {e}"))?;
            set_path(&mut tree, key, value).with_context(|| format!("override {key}"))?;
        }
        let mut config: SensorConfig = serde_json::from_value(tree)
            .with_context(|| format!("{}: Falco's configuration, as this sensor's", path.display()))?;
        config.notices = translated.notices;
        Ok(config)
    }

    /// The configuration of `path` (none: the defaults) with the environment's
    /// `SENSOR_CONFIG__*` overrides and then `overrides` (`key.key=value`) applied. A Falco
    /// file (`falco.yaml`) is read as Falco's, `overrides` naming Falco's keys.
    pub fn load_with_overrides(path: Option<&Path>, overrides: &[String]) -> anyhow::Result<SensorConfig> {
        let mut all: Vec<(String, String)> = std::env::vars()
            .filter_map(|(name, value)| {
                let key = name.strip_prefix(ENV_PREFIX)?;
                Some((key.split("__").map(str::to_ascii_lowercase).collect::<Vec<_>>().join("."), value))
            })
            .collect();
        all.sort();
        let mut given = Vec::new();
        for o in overrides {
            let Some((key, value)) = o.split_once('=') else { bail!("-o {o}: expected KEY=VALUE") };
            given.push((key.trim().to_owned(), value.to_owned()));
        }
        // Read once: the file may be a FIFO (a reload waiting for its writer).
        let text = path.map(read_text).transpose()?.unwrap_or_default();
        if let Some(path) = path
            && let Some(falco) = falco_tree(&text)
        {
            return SensorConfig::from_falco(path, falco, &given, &all);
        }
        all.extend(given);
        // The file alone first, so its own mistakes are reported with their lines.
        let config = match path {
            Some(path) => SensorConfig::parse(&text).map_err(|e| anyhow::anyhow!("{}:{e}", path.display()))?,
            None => SensorConfig::default(),
        };
        if all.is_empty() {
            return Ok(config);
        }
        let mut tree: serde_json::Value = if text.trim().is_empty() {
            serde_json::Value::Object(Default::default())
        } else {
            serde_saphyr::from_str(&text).context("re-reading the configuration")?
        };
        for (key, value) in &all {
            let value: serde_json::Value = serde_saphyr::from_str(value)
                .map_err(|e| anyhow::anyhow!("override {key}: the value is not YAML: {e}"))?;
            set_path(&mut tree, key, value).with_context(|| format!("override {key}"))?;
        }
        let keys: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
        serde_json::from_value(tree).with_context(|| format!("the configuration with overrides {}", keys.join(", ")))
    }

    /// Reads configuration text.
    pub fn parse(text: &str) -> Result<SensorConfig, ConfigError> {
        if text.trim().is_empty() {
            return Ok(SensorConfig::default());
        }
        let mut options = serde_saphyr::Options::default();
        options.with_snippet = false;
        serde_saphyr::from_str_with_options(text, options).map_err(|e| {
            let (line, column) = e.location().map_or((0, 0), |l| (l.line() as usize, l.column() as usize));
            let rendered = e.to_string();
            let message = rendered.lines().next().unwrap_or("invalid configuration").trim();
            // The location is ours to print, once, in front.
            let message = message.split_once(" at line ").map_or(message, |(m, _)| m);
            ConfigError { line, column, message: message.to_owned() }
        })
    }
}

/// The text of the configuration file at `path`.
fn read_text(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading configuration {}", path.display()))
}

/// The tree of a configuration file's `text` when it is Falco's configuration file.
fn falco_tree(text: &str) -> Option<serde_json::Value> {
    if text.trim().is_empty() {
        return None;
    }
    // A file that does not read as YAML is reported, with its line, by the usual reading.
    let tree = serde_saphyr::from_str::<serde_json::Value>(text).ok()?;
    falco::is_falco(&tree).then_some(tree)
}

/// Appends `value` to the list at the dotted `path` of `tree` (made if absent): Falco's
/// `-o key[]=value`.
fn append_path(tree: &mut serde_json::Value, path: &str, value: serde_json::Value) -> anyhow::Result<()> {
    let mut list = match pointer(tree, path) {
        Some(serde_json::Value::Array(items)) => items.clone(),
        Some(serde_json::Value::Null) | None => Vec::new(),
        Some(other) => vec![other.clone()],
    };
    list.push(value);
    set_path(tree, path, serde_json::Value::Array(list))
}

/// The value at the dotted `path` of `tree`.
fn pointer<'t>(tree: &'t serde_json::Value, path: &str) -> Option<&'t serde_json::Value> {
    path.split('.').try_fold(tree, |node, part| match node {
        serde_json::Value::Array(items) => items.get(part.parse::<usize>().ok()?),
        other => other.get(part),
    })
}

/// Sets `value` at the dotted `path` of `tree`, creating maps on the way; a numeric key
/// indexes a list.
fn set_path(tree: &mut serde_json::Value, path: &str, value: serde_json::Value) -> anyhow::Result<()> {
    let mut node = tree;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if part.is_empty() {
            bail!("empty key in `{path}`");
        }
        let last = i + 1 == parts.len();
        node = match node {
            serde_json::Value::Array(items) => {
                let index: usize = part.parse().map_err(|_| anyhow::anyhow!("`{part}` is not a list index"))?;
                let len = items.len();
                items.get_mut(index).ok_or_else(|| anyhow::anyhow!("index {index} is past the list's {len} entries"))?
            }
            serde_json::Value::Object(map) => map.entry(part.to_string()).or_insert(serde_json::Value::Null),
            other => {
                *other = serde_json::Value::Object(Default::default());
                let serde_json::Value::Object(map) = other else { unreachable!("just made a map") };
                map.entry(part.to_string()).or_insert(serde_json::Value::Null)
            }
        };
        if last {
            *node = value;
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_section_parses_and_defaults_fill_the_rest() {
        let c = SensorConfig::parse(
            "rules: [/etc/sensor/rules.d]\nengine: {min_priority: notice, all_matches: true}\nworkers: 3\n\
             alert_queue: {kib: 65536}\n\
             capture: {ring_buffer_kib: 4096, probes: raw}\ncontainers: {wait: 20ms, docker_sockets: [/d.sock]}\n\
             metrics: {address: \"127.0.0.1:8765\"}\nlog: {level: debug, format: json}\n\
             internal_alerts: {drop_threshold: 10, interval: 30s}\nreload: {watch: false}\n\
             outputs:\n  - stdout: {format: json}\n",
        )
        .unwrap();
        assert_eq!(c.rules, [PathBuf::from("/etc/sensor/rules.d")]);
        assert_eq!(
            (c.engine.min_priority, c.engine.all_matches, c.engine.suggested_output),
            (Priority::Notice, true, true)
        );
        assert_eq!((c.workers, c.capture.ring_buffer_kib, c.capture.probes), (3, 4096, ProbeMode::Raw));
        assert_eq!(c.alert_queue.bytes(), 64 << 20);
        assert_eq!(c.containers.wait, Duration::from_millis(20));
        assert_eq!(c.containers.docker_sockets, Some(vec![PathBuf::from("/d.sock")]));
        assert_eq!(c.containers.cri_sockets, None);
        assert_eq!(c.metrics.address, Some("127.0.0.1:8765".parse().unwrap()));
        assert_eq!((c.log.level.as_str(), c.log.format), ("debug", LogFormat::Json));
        assert_eq!((c.internal_alerts.drop_threshold, c.internal_alerts.interval), (10, Duration::from_secs(30)));
        assert_eq!((c.reload.watch, c.reload.interval), (false, Duration::from_secs(2)));
        assert_eq!(c.outputs.outputs.len(), 1);
        assert_eq!(SensorConfig::parse("").unwrap(), SensorConfig::default());
    }

    #[test]
    fn the_documented_example_states_the_defaults() {
        let text = include_str!("../../deploy/sensor.yaml");
        assert_eq!(SensorConfig::parse(text).unwrap(), SensorConfig::default());
        for key in crate::outputs::config::declared_names::<SensorConfig>() {
            assert!(text.lines().any(|l| l.starts_with(&format!("{key}:"))), "deploy/sensor.yaml lacks `{key}`");
        }
    }

    #[test]
    fn the_audit_log_needs_a_file_of_its_own() {
        let shared = "outputs:\n  - store: {path: /var/lib/sensor/alerts.db}\n\
                      k8s_audit:\n  store: {path: /var/lib/sensor/alerts.db}\n";
        let e = SensorConfig::parse(shared).unwrap().check_audit_store().unwrap_err().to_string();
        assert!(e.contains("needs a file of its own"), "{e}");
        let ui = "ui: {store: {path: /a.db}}\nk8s_audit: {store: {path: /a.db}}\n";
        assert!(SensorConfig::parse(ui).unwrap().check_audit_store().is_err());
        let own = "outputs:\n  - store: {path: /a.db}\nk8s_audit: {store: {path: /audit.db}}\n";
        assert!(SensorConfig::parse(own).unwrap().check_audit_store().is_ok());
    }

    #[test]
    fn listen_addresses_take_the_pod_ip_as_the_downward_api_gives_it() {
        let c = SensorConfig::parse("metrics: {address: \"fd00::5:8765\", max_connections: 8}\n").unwrap();
        assert_eq!(c.metrics.address, Some("[fd00::5]:8765".parse().unwrap()));
        assert_eq!(c.metrics.max_connections.get(), 8);
        assert_eq!(parse_listen_address("10.1.2.3:8765"), Ok("10.1.2.3:8765".parse().unwrap()));
        assert_eq!(parse_listen_address("[::1]:9"), Ok("[::1]:9".parse().unwrap()));
        assert!(parse_listen_address("pod:8765").unwrap_err().contains("expected IP:PORT"));
        assert_eq!(SensorConfig::parse("metrics: {address: null}\n").unwrap().metrics.address, None);
        // As the DaemonSet's `$(POD_IP):8765` expands, unquoted, through an override.
        for (text, addr) in [("10.244.1.5:8765", "10.244.1.5:8765"), ("fd00:10:244::5:8765", "[fd00:10:244::5]:8765")] {
            let c = SensorConfig::load_with_overrides(None, &[format!("metrics.address={text}")]).unwrap();
            assert_eq!(c.metrics.address, Some(addr.parse().unwrap()), "{text}");
        }
        let e = SensorConfig::parse("metrics: {header_timeout: 0s}\n").unwrap_err();
        assert!(e.message.contains("more than 0"), "{e}");
    }

    #[test]
    fn mistakes_are_reported_at_their_line() {
        let e = SensorConfig::parse("workers: 2\nmetrics:\n  adress: 1.2.3.4:5\n").unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains("adress"), "{e}");
        let e = SensorConfig::parse("engine:\n  min_priority: loud\n").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        let e = SensorConfig::parse("capture: {probes: kprobe}\n").unwrap_err();
        assert!(e.message.contains("kprobe"), "{e}");
        // A queue of no bytes would drop every alert.
        let e = SensorConfig::parse("workers: 1\nalert_queue:\n  kib: 0\n").unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains("nonzero"), "{e}");
    }

    #[test]
    fn overrides_apply_in_order_over_the_file() {
        let dir = std::env::temp_dir().join(format!("sensor-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sensor.yaml");
        std::fs::write(&path, "workers: 2\noutputs:\n  - stdout: {}\n  - file: {path: /tmp/x.jsonl}\n").unwrap();
        let overrides = [
            "metrics.address=127.0.0.1:9100".to_string(),
            "outputs.1.min_priority=warning".to_string(),
            "engine.all_matches=true".to_string(),
        ];
        let c = SensorConfig::load_with_overrides(Some(&path), &overrides).unwrap();
        assert_eq!(c.workers, 2, "the file's value stays");
        assert_eq!(c.metrics.address, Some("127.0.0.1:9100".parse().unwrap()));
        assert_eq!(c.outputs.outputs[1].options.min_priority, Priority::Warning);
        assert!(c.engine.all_matches);
        let bad = SensorConfig::load_with_overrides(Some(&path), &["outputs.5.name=x".to_string()]).unwrap_err();
        assert!(format!("{bad:#}").contains("past the list"), "{bad:#}");
        let unknown = SensorConfig::load_with_overrides(Some(&path), &["metrics.port=1".to_string()]).unwrap_err();
        assert!(format!("{unknown:#}").contains("port"), "{unknown:#}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn environment_keys_are_paths_in_upper_case() {
        // A variable only this test sets; the process environment is shared by the tests.
        unsafe { std::env::set_var("SENSOR_CONFIG__RELOAD__INTERVAL", "7s") };
        let c = SensorConfig::load_with_overrides(None, &["reload.watch=false".to_string()]).unwrap();
        unsafe { std::env::remove_var("SENSOR_CONFIG__RELOAD__INTERVAL") };
        assert_eq!((c.reload.interval, c.reload.watch), (Duration::from_secs(7), false));
    }
}
