//! Falco's configuration file (`falco.yaml`), read as Falco reads it: a file holding any key
//! only Falco's has is Falco's, and each of its keys is either given its Falco meaning in
//! this sensor's configuration or, where it has none here (drivers, plugins, libsinsp
//! tuning), accepted with one notice saying so. Nothing is refused, nothing ignored
//! silently. [`KEYS`] is the one list of Falco's keys and what each becomes.
//!
//! `-o key=value` overrides name Falco's keys on a Falco file (`-o json_output=true`,
//! `-o rules_files[]=/etc/falco/extra.yaml` appends), as with Falco.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde_json::{Map, Value, json};

/// What reading a Falco file gave: this sensor's configuration tree, and what to tell the
/// operator (each key accepted without effect, each missing file).
#[derive(Debug, Default)]
pub struct Translated {
    pub tree: Value,
    pub notices: Vec<String>,
}

/// How one of Falco's keys is taken.
enum Handling {
    /// Given its Falco meaning.
    Apply(fn(&str, &Value, &mut Builder) -> anyhow::Result<()>),
    /// No meaning here; one notice (why) when the file has it.
    NotApplicable(&'static str),
    /// No meaning here, and nothing to tell: it only tunes what this sensor does anyway.
    Same,
}

use Handling::{Apply, NotApplicable, Same};

/// Every top-level key of Falco 0.44's `falco.yaml` (and 0.43's gRPC keys), and how each
/// is taken.
const KEYS: &[(&str, Handling)] = &[
    ("config_files", Same), // read by `load` before anything else
    ("watch_config_files", Apply(watch_config_files)),
    ("rules_files", Apply(rules_files)),
    ("rules_file", Apply(rules_files)),
    ("rules", Apply(rule_selection)),
    ("engine", NotApplicable("the sensor has its own kernel programs; no Falco driver is loaded")),
    ("capture", NotApplicable("capture files are `sensor capture`'s; rules do not trigger captures")),
    ("load_plugins", NotApplicable("no Falco plugins are loaded; containers and Kubernetes audit events are built in")),
    ("plugins", NotApplicable("no Falco plugins are loaded; containers and Kubernetes audit events are built in")),
    ("plugins_hostinfo", Same),
    ("time_format_iso_8601", Apply(time_format)),
    ("buffer_format_base64", NotApplicable("no output field renders data buffers")),
    ("priority", Apply(priority)),
    ("json_output", Same), // read by the outputs
    ("json_include_output_property", Apply(json_include)),
    ("json_include_message_property", Apply(json_include)),
    ("json_include_output_fields_property", Apply(json_include)),
    ("json_include_tags_property", Apply(json_include)),
    ("buffered_outputs", Apply(buffered_outputs)),
    ("rule_matching", Apply(rule_matching)),
    ("outputs_queue", Apply(outputs_queue)),
    ("append_output", Apply(append_output)),
    ("static_fields", Apply(static_fields)),
    ("stdout_output", Apply(stdout_output)),
    ("syslog_output", Apply(syslog_output)),
    ("file_output", Apply(file_output)),
    ("http_output", Apply(http_output)),
    ("program_output", Apply(program_output)),
    ("grpc_output", Apply(grpc_output)),
    ("grpc", Same), // read with grpc_output
    ("webserver", Apply(webserver)),
    ("log_stderr", Apply(log_stderr)),
    ("log_syslog", Apply(log_syslog)),
    ("log_level", Apply(log_level)),
    ("libs_logger", NotApplicable("there is no libsinsp; the sensor's own log is log_level's")),
    ("output_timeout", NotApplicable("outputs never block detection: each has its own queue and timeout")),
    ("syscall_event_timeouts", NotApplicable("there is no libscap event timeout")),
    ("syscall_event_drops", Apply(syscall_event_drops)),
    ("metrics", Apply(metrics)),
    ("base_syscalls", NotApplicable("the kernel programs capture what the loaded rules and the process state need")),
    ("falco_libs", NotApplicable("the process table is sized by the sensor's `state` section")),
    ("container_engines", NotApplicable("container runtimes are found at their default sockets")),
    ("metadata_download", NotApplicable("no metadata is downloaded")),
];

/// Keys only Falco's file has: one of them makes a file Falco's.
const FALCO_ONLY: &[&str] = &[
    "rules_files",
    "rules_file",
    "json_output",
    "stdout_output",
    "syslog_output",
    "file_output",
    "http_output",
    "program_output",
    "grpc_output",
    "webserver",
    "log_level",
    "log_stderr",
    "log_syslog",
    "priority",
    "time_format_iso_8601",
    "buffered_outputs",
    "config_files",
    "load_plugins",
    "plugins",
    "base_syscalls",
    "syscall_event_drops",
];

/// Whether a configuration file's tree is Falco's.
pub fn is_falco(tree: &Value) -> bool {
    tree.as_object().is_some_and(|map| map.keys().any(|k| FALCO_ONLY.contains(&k.as_str())))
}

/// What this sensor's configuration is being built from.
struct Builder<'a> {
    /// The whole Falco file (a key may read another: `json_output` for the outputs).
    falco: &'a Value,
    rules: Vec<String>,
    /// Whether `rules_files` was given (none existing: the built-in rules, said).
    rules_given: bool,
    select: Vec<Value>,
    engine: Map<String, Value>,
    outputs: Vec<Value>,
    metrics: Map<String, Value>,
    log: Map<String, Value>,
    internal_alerts: Map<String, Value>,
    reload: Map<String, Value>,
    /// `time_format_iso_8601`.
    time_format: &'static str,
    /// `json_include_*_property`.
    json_alert: Map<String, Value>,
    /// `static_fields`, as an `append_output` entry for every rule.
    static_fields: Option<Value>,
    /// `static_fields`' values, for `static.NAME`.
    static_values: Map<String, Value>,
    notices: Vec<String>,
}

impl Builder<'_> {
    fn notice(&mut self, text: impl Into<String>) {
        self.notices.push(text.into());
    }

    /// `key` of Falco's file, if given.
    fn get(&self, key: &str) -> Option<&Value> {
        self.falco.get(key)
    }

    /// Falco's `json_output` (default false): text or JSON lines.
    fn line_format(&self) -> &'static str {
        if self.get("json_output").and_then(Value::as_bool).unwrap_or(false) { "json" } else { "text" }
    }
}

/// A boolean key of a section, with Falco's default.
fn flag(section: &Value, key: &str, default: bool) -> anyhow::Result<bool> {
    match section.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => bail!("{key}: expected true or false, got {other}"),
    }
}

/// A text key of a section.
fn text<'v>(section: &'v Value, key: &str) -> Option<&'v str> {
    section.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn enabled(section: &Value, default: bool) -> anyhow::Result<bool> {
    flag(section, "enabled", default)
}

fn strings(value: &Value, key: &str) -> anyhow::Result<Vec<String>> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned).with_context(|| format!("{key}: {i} is not a path")))
            .collect(),
        other => bail!("{key}: expected a list of paths, got {other}"),
    }
}

fn watch_config_files(_key: &str, v: &Value, b: &mut Builder) -> anyhow::Result<()> {
    let watch = v.as_bool().context("expected true or false")?;
    b.reload.insert("watch".into(), watch.into());
    Ok(())
}

fn rules_files(_key: &str, v: &Value, b: &mut Builder) -> anyhow::Result<()> {
    b.rules_given = true;
    for path in strings(v, "rules_files")? {
        if Path::new(&path).exists() {
            b.rules.push(path);
        } else {
            b.notice(format!("rules_files: {path} does not exist: skipped"));
        }
    }
    Ok(())
}

/// `rules:`, Falco's selection: `- disable: {rule: GLOB}` / `- enable: {tag: TAG}` in order,
/// after every file is loaded.
fn rule_selection(_key: &str, v: &Value, b: &mut Builder) -> anyhow::Result<()> {
    let Value::Array(items) = v else { bail!("expected a list of `enable:` / `disable:` entries") };
    b.select.extend(items.iter().cloned());
    Ok(())
}

fn time_format(_key: &str, v: &Value, b: &mut Builder) -> anyhow::Result<()> {
    b.time_format = if v.as_bool().context("expected true or false")? { "iso8601" } else { "local" };
    Ok(())
}

fn priority(_key: &str, v: &Value, b: &mut Builder) -> anyhow::Result<()> {
    b.engine.insert("min_priority".into(), v.clone());
    Ok(())
}

/// `json_include_<property>_property`: whether the outputs' JSON alerts carry it.
fn json_include(key: &str, v: &Value, b: &mut Builder) -> anyhow::Result<()> {
    let property = key.trim_start_matches("json_include_").trim_end_matches("_property");
    b.json_alert.insert(property.into(), v.as_bool().context("expected true or false")?.into());
    Ok(())
}

fn buffered_outputs(_key: &str, v: &Value, b: &mut Builder) -> anyhow::Result<()> {
    if v.as_bool().context("expected true or false")? {
        b.notice("buffered_outputs: true is not applied: each output writes every batch of alerts at once");
    }
    Ok(())
}

fn rule_matching(_key: &str, v: &Value, b: &mut Builder) -> anyhow::Result<()> {
    let all = match v.as_str() {
        Some("first") => false,
        Some("all") => true,
        _ => bail!("expected `first` or `all`, got {v}"),
    };
    b.engine.insert("all_matches".into(), all.into());
    Ok(())
}

fn outputs_queue(_key: &str, v: &Value, b: &mut Builder) -> anyhow::Result<()> {
    let capacity = v.get("capacity").and_then(Value::as_u64).unwrap_or(0);
    if capacity != 0 {
        b.notice(format!(
            "outputs_queue.capacity: {capacity} is not applied: the queue to the outputs is bounded in bytes \
             (alert_queue.kib, 16 MiB), and what does not fit is dropped and counted"
        ));
    }
    Ok(())
}

/// `append_output`: `suggested_output`, and entries of `match`, `extra_output` and
/// `extra_fields`.
fn append_output(_key: &str, v: &Value, b: &mut Builder) -> anyhow::Result<()> {
    let Value::Array(items) = v else { bail!("expected a list") };
    let mut suggested = false;
    let mut extra = Vec::new();
    for item in items {
        let Some(entry) = item.as_object() else { bail!("{item}: expected a mapping") };
        if let Some(on) = entry.get("suggested_output") {
            suggested |= on.as_bool().context("suggested_output: expected true or false")?;
        }
        let mut kept = entry.clone();
        kept.remove("suggested_output");
        if kept.contains_key("extra_output") || kept.contains_key("extra_fields") {
            extra.push(Value::Object(kept));
        }
    }
    b.engine.insert("suggested_output".into(), suggested.into());
    if !extra.is_empty() {
        b.engine.insert("append_output".into(), Value::Array(extra));
    }
    Ok(())
}

/// `static_fields: {NAME: VALUE}`: what rules read as `static.NAME`; in every alert's
/// fields as `static.NAME`, and in its text as `static_NAME=VALUE` with the suggested
/// fields, as Falco's.
fn static_fields(_key: &str, v: &Value, b: &mut Builder) -> anyhow::Result<()> {
    let Value::Object(fields) = v else { bail!("expected a mapping of names to values") };
    if fields.is_empty() {
        return Ok(());
    }
    let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    let extra: Vec<Value> = fields.iter().map(|(k, v)| json!({ format!("static.{k}"): text(v) })).collect();
    let mut entry = json!({ "extra_fields": extra });
    let suggested = b
        .get("append_output")
        .and_then(Value::as_array)
        .is_none_or(|items| items.iter().any(|i| i.get("suggested_output").and_then(Value::as_bool) == Some(true)));
    if suggested {
        let line: Vec<String> = fields.iter().map(|(k, v)| format!("static_{k}={}", text(v))).collect();
        entry["extra_output"] = line.join(" ").into();
    }
    b.static_fields = Some(entry);
    b.static_values = fields.iter().map(|(k, v)| (k.clone(), Value::String(text(v)))).collect();
    Ok(())
}

fn stdout_output(_key: &str, v: &Value, b: &mut Builder) -> anyhow::Result<()> {
    if enabled(v, true)? {
        let format = b.line_format();
        b.outputs.push(json!({"stdout": {"format": format}}));
    }
    Ok(())
}

fn syslog_output(_key: &str, v: &Value, b: &mut Builder) -> anyhow::Result<()> {
    if enabled(v, true)? {
        let format = b.line_format();
        b.outputs.push(json!({"syslog": {"format": format}}));
    }
    Ok(())
}

fn file_output(_key: &str, v: &Value, b: &mut Builder) -> anyhow::Result<()> {
    if enabled(v, false)? {
        let path = text(v, "filename").unwrap_or("./events.txt");
        let format = b.line_format();
        b.outputs.push(json!({"file": {"path": path, "format": format}}));
    }
    Ok(())
}

/// `http_output`: Falco's JSON alert POSTed to `url` (falcosidekick's input).
fn http_output(_key: &str, v: &Value, b: &mut Builder) -> anyhow::Result<()> {
    if !enabled(v, false)? {
        return Ok(());
    }
    let url = text(v, "url").context("url: an enabled http_output needs one")?;
    let mut webhook = json!({
        "url": url,
        "headers": {"User-Agent": text(v, "user_agent").unwrap_or("falcosecurity/falco")},
    });
    if let Some(ca) = text(v, "ca_cert").or_else(|| text(v, "ca_bundle")) {
        webhook["ca_file"] = ca.into();
    }
    if flag(v, "mtls", false)? {
        webhook["client_cert"] = text(v, "client_cert").unwrap_or("/etc/ssl/certs/client.crt").into();
        webhook["client_key"] = text(v, "client_key").unwrap_or("/etc/ssl/certs/client.key").into();
    }
    for (key, meaning) in [
        ("insecure", "certificates are always verified (give ca_cert)"),
        ("echo", "answers are not printed"),
        ("compress_uploads", "bodies are sent uncompressed"),
    ] {
        if flag(v, key, false)? {
            b.notice(format!("http_output.{key}: true is not applied: {meaning}"));
        }
    }
    b.outputs.push(json!({"name": "http_output", "webhook": webhook}));
    Ok(())
}

fn program_output(_key: &str, v: &Value, b: &mut Builder) -> anyhow::Result<()> {
    if !enabled(v, false)? {
        return Ok(());
    }
    let program = text(v, "program").context("program: an enabled program_output needs one")?;
    let format = b.line_format();
    let keep_alive = flag(v, "keep_alive", false)?;
    b.outputs.push(json!({"program": {"command": program, "format": format, "keep_alive": keep_alive}}));
    Ok(())
}

/// Falco 0.43's `grpc_output` with `grpc`'s address (`unix:///run/falco/falco.sock` or
/// `HOST:PORT`).
fn grpc_output(_key: &str, v: &Value, b: &mut Builder) -> anyhow::Result<()> {
    if !enabled(v, false)? {
        return Ok(());
    }
    let grpc = b.get("grpc").cloned().unwrap_or(Value::Null);
    let address = text(&grpc, "bind_address").unwrap_or("unix:///run/falco/falco.sock");
    let output = match address.strip_prefix("unix://") {
        Some(path) => json!({"grpc": {"unix_socket": path}}),
        None => json!({"grpc": {"tcp": {"address": address}}}),
    };
    b.outputs.push(output);
    Ok(())
}

/// `webserver`: the endpoint of `/healthz` and (with `prometheus_metrics_enabled`) `/metrics`.
fn webserver(_key: &str, v: &Value, b: &mut Builder) -> anyhow::Result<()> {
    if !enabled(v, true)? {
        b.metrics.insert("address".into(), Value::Null);
        return Ok(());
    }
    let host = text(v, "listen_address").unwrap_or("0.0.0.0");
    let port = v.get("listen_port").and_then(Value::as_u64).unwrap_or(8765);
    let address = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    b.metrics.insert("address".into(), address.into());
    b.metrics.insert("prometheus".into(), flag(v, "prometheus_metrics_enabled", false)?.into());
    if flag(v, "ssl_enabled", false)? {
        let pem = text(v, "ssl_certificate").unwrap_or("/etc/falco/falco.pem");
        b.metrics.insert("tls".into(), json!({"cert_file": pem, "key_file": pem}));
    }
    if let Some(endpoint) = text(v, "k8s_healthz_endpoint").filter(|e| *e != "/healthz") {
        b.notice(format!("webserver.k8s_healthz_endpoint: {endpoint} is not applied: health is on /healthz"));
    }
    Ok(())
}

fn log_stderr(_key: &str, v: &Value, b: &mut Builder) -> anyhow::Result<()> {
    if !v.as_bool().context("expected true or false")? {
        b.notice("log_stderr: false is not applied: the sensor's log goes to stderr");
    }
    Ok(())
}

fn log_syslog(_key: &str, v: &Value, b: &mut Builder) -> anyhow::Result<()> {
    if v.as_bool().context("expected true or false")? {
        b.notice("log_syslog: true is not applied: the sensor's log goes to stderr only (alerts go to syslog_output)");
    }
    Ok(())
}

/// Falco's log levels as this sensor's.
fn log_level(_key: &str, v: &Value, b: &mut Builder) -> anyhow::Result<()> {
    let level = match v.as_str().unwrap_or_default() {
        "emergency" | "alert" | "critical" | "error" => "error",
        "warning" => "warn",
        "notice" | "info" => "info",
        "debug" => "debug",
        other => bail!("`{other}`: expected emergency, alert, critical, error, warning, notice, info or debug"),
    };
    b.log.insert("level".into(), level.into());
    Ok(())
}

/// `syscall_event_drops`: with `alert` among its actions, kernel losses raise the internal
/// drop alert; its rate limit is this sensor's one alert per interval.
fn syscall_event_drops(_key: &str, v: &Value, b: &mut Builder) -> anyhow::Result<()> {
    let actions = strings(v.get("actions").unwrap_or(&Value::Null), "actions")?;
    if actions.iter().any(|a| a == "alert") {
        b.internal_alerts.insert("falco_drop_alert".into(), true.into());
    } else {
        b.internal_alerts.insert("drop_threshold".into(), u64::MAX.into());
    }
    if actions.iter().any(|a| a == "exit") {
        b.notice(
            "syscall_event_drops.actions: exit is not applied: the sensor goes on, and alerts and counts the loss",
        );
    }
    let threshold = v.get("threshold").and_then(Value::as_f64).unwrap_or(0.1);
    if threshold != 0.1 || v.get("rate").and_then(Value::as_f64).is_some_and(|r| (r - 0.03333).abs() > 1e-6) {
        b.notice(
            "syscall_event_drops: threshold and rate are not applied: any loss raises the drop alert, at most once \
             per internal_alerts.interval (1m)",
        );
    }
    Ok(())
}

fn metrics(_key: &str, v: &Value, b: &mut Builder) -> anyhow::Result<()> {
    if enabled(v, false)? {
        b.notice(
            "metrics.enabled: true is not applied: there is no metrics snapshot rule or file; the endpoint's \
             /metrics has the counters (webserver.prometheus_metrics_enabled)",
        );
    }
    Ok(())
}

/// Reads Falco's file at `path` (with its `config_files`) and gives this sensor's
/// configuration tree, `overrides` (Falco's keys) applied over it.
pub fn translate(path: &Path, falco: Value, overrides: &[(String, String)]) -> anyhow::Result<Translated> {
    let mut falco = falco;
    let mut notices = Vec::new();
    for (included, strategy) in included_files(&falco, path, &mut notices)? {
        let text = std::fs::read_to_string(&included)
            .with_context(|| format!("config_files: reading {}", included.display()))?;
        let tree: Value =
            serde_saphyr::from_str(&text).map_err(|e| anyhow::anyhow!("config_files: {}: {e}", included.display()))?;
        merge(&mut falco, tree, strategy);
    }
    for (key, value) in overrides {
        let value: Value =
            serde_saphyr::from_str(value).map_err(|e| anyhow::anyhow!("-o {key}: the value is not YAML: {e}"))?;
        match key.strip_suffix("[]") {
            Some(list) => super::append_path(&mut falco, list, value),
            None => super::set_path(&mut falco, key, value),
        }
        .with_context(|| format!("-o {key}"))?;
    }
    expand_env(&mut falco);
    let mut b = Builder {
        falco: &falco,
        rules: Vec::new(),
        rules_given: false,
        select: Vec::new(),
        engine: Map::new(),
        outputs: Vec::new(),
        metrics: Map::new(),
        log: Map::new(),
        internal_alerts: Map::new(),
        reload: Map::new(),
        time_format: "local",
        json_alert: Map::new(),
        static_fields: None,
        static_values: Map::new(),
        notices,
    };
    // Falco's defaults where this sensor's differ: the endpoint on every address (with
    // /metrics off), the outputs on (stdout, syslog) and the suggested fields appended.
    for (key, default) in [
        ("webserver", json!({})),
        ("stdout_output", json!({})),
        ("syslog_output", json!({})),
        ("append_output", json!([{"suggested_output": true}])),
    ] {
        if falco.get(key).is_none() {
            let handle = KEYS.iter().find(|(k, _)| *k == key).map(|(_, h)| h);
            if let Some(Apply(apply)) = handle {
                apply(key, &default, &mut b)?;
            }
        }
    }
    let Some(map) = falco.as_object() else { bail!("{}: not a mapping", path.display()) };
    for (key, value) in map {
        match KEYS.iter().find(|(k, _)| k == key) {
            Some((_, Apply(apply))) => {
                apply(key, value, &mut b).with_context(|| format!("{}: {key}", path.display()))?
            }
            Some((_, NotApplicable(why))) => b.notice(format!("{key}: not applied: {why}")),
            Some((_, Same)) => {}
            None => b.notice(format!("{key}: not a key of Falco's configuration: ignored")),
        }
    }
    if b.rules_given && b.rules.is_empty() {
        let listed = falco.get("rules_files").or_else(|| falco.get("rules_file"));
        if listed.and_then(Value::as_array).is_some_and(Vec::is_empty) {
            b.notice("rules_files: empty: running the built-in rules");
        } else {
            b.notice("rules_files: none of the files exists: running the built-in rules");
        }
    }
    let mut engine = b.engine;
    if let Some(entry) = b.static_fields {
        let list = engine.entry("append_output").or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(items) = list {
            items.push(entry);
        }
    }
    if !b.select.is_empty() {
        engine.insert("select".into(), Value::Array(b.select));
    }
    let tree = json!({
        "rules": b.rules,
        "engine": engine,
        "outputs": b.outputs,
        "metrics": b.metrics,
        "log": b.log,
        "internal_alerts": b.internal_alerts,
        "reload": b.reload,
        "time_format": b.time_format,
        "json_alert": b.json_alert,
        "static_fields": b.static_values,
    });
    Ok(Translated { tree, notices: b.notices })
}

/// Every text value of `tree` with `${NAME}` replaced by the environment's `NAME`, as
/// Falco expands its configuration (`$${` for a literal `${`).
fn expand_env(tree: &mut Value) {
    match tree {
        Value::String(text) if text.contains("${") => *text = crate::rules::engine::expand_env(text),
        Value::Array(items) => items.iter_mut().for_each(expand_env),
        Value::Object(map) => map.values_mut().for_each(expand_env),
        _ => {}
    }
}

/// How an included file's keys join the main file's (Falco's `strategy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Strategy {
    /// The default: lists appended, other values replaced, new keys added.
    Append,
    /// Values replaced, new keys added.
    Override,
    /// Only new keys added.
    AddOnly,
}

/// The files `config_files` names (a directory: its `.yaml` files by name), relative to
/// the main file's directory, each with its merge strategy; a missing one is said and
/// skipped.
fn included_files(falco: &Value, path: &Path, notices: &mut Vec<String>) -> anyhow::Result<Vec<(PathBuf, Strategy)>> {
    let Some(list) = falco.get("config_files") else { return Ok(Vec::new()) };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut files = Vec::new();
    let entries = match list {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    };
    for entry in entries {
        // `- /etc/falco/config.d`, or `- {path: ..., strategy: append|override|add-only}`.
        let Some(name) = entry.as_str().or_else(|| entry.get("path").and_then(Value::as_str)) else {
            bail!("config_files: {entry} is not a path");
        };
        let strategy = match entry.get("strategy").and_then(Value::as_str) {
            None | Some("append") => Strategy::Append,
            Some("override") => Strategy::Override,
            Some("add-only") => Strategy::AddOnly,
            Some(other) => bail!("config_files: strategy `{other}`: expected append, override or add-only"),
        };
        let included = dir.join(name);
        if included.is_dir() {
            let mut yamls: Vec<PathBuf> = std::fs::read_dir(&included)
                .with_context(|| format!("config_files: {}", included.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect();
            yamls.sort();
            files.extend(yamls.into_iter().map(|p| (p, strategy)));
        } else if included.is_file() {
            files.push((included, strategy));
        } else {
            notices.push(format!("config_files: {} does not exist: skipped", included.display()));
        }
    }
    Ok(files)
}

/// `over`'s keys joined to `base`'s by `strategy`, mappings key by key.
fn merge(base: &mut Value, over: Value, strategy: Strategy) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                match base.get_mut(&key) {
                    Some(_) if strategy == Strategy::AddOnly => {}
                    Some(existing) => merge(existing, value, strategy),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (Value::Array(base), Value::Array(over)) if strategy == Strategy::Append => base.extend(over),
        (base, over) => *base = over,
    }
}

#[cfg(test)]
mod tests;
