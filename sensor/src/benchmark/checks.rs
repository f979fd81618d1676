//! A benchmark's checks, as data (`data/cis-*.yaml`), and how each is decided on a node.
//!
//! A check tests one thing:
//! - `file: {of: ROLE, mode: "600"}`: the file's permission bits are within the mode
//!   (`600` or more restrictive); `owner: "root:root"` its owner; `absent: pass` when a file
//!   that is not there passes (it fails otherwise);
//! - `setting: {of: kubelet|kube_proxy, flag: NAME, config: dotted.key, gate: NAME}` (or
//!   `settings:`, each of them) with `expect:` one of `equals`, `lacks` (not among its
//!   comma-separated values), `set` (given, or not given), `nonzero_duration`, `at_least`,
//!   `above`, `within` (every value among these), `loopback` (bound to a loopback address).
//!   The value is the flag's if given (flags win, as in the kubelet), else the configuration
//!   file's, else the component's default;
//! - `unit: {of: kubelet_service, key: NAME}`: a `NAME=value` line of the systemd unit.

use serde::Deserialize;

use super::node::{Component, FileRole, Node, lookup};

/// One benchmark version.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Benchmark {
    /// `cis-1.12`.
    pub benchmark: String,
    pub title: String,
    /// The kubelet minor versions it is picked for: `["1.31", "1.99"]`.
    pub kubernetes: [String; 2],
    pub checks: Vec<Check>,
}

/// One check.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    pub id: String,
    pub text: String,
    /// Automated (a failure is Fail) or manual (a failure is Warn).
    pub automated: bool,
    #[serde(default)]
    pub file: Option<FileTest>,
    #[serde(default)]
    pub setting: Option<Setting>,
    #[serde(default)]
    pub settings: Vec<Setting>,
    #[serde(default)]
    pub unit: Option<UnitKey>,
    #[serde(default)]
    pub expect: Option<Expect>,
    /// What to do when it fails; `{path}` is the file's path.
    pub remediation: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTest {
    pub of: FileRole,
    /// The most permissive mode that passes, octal.
    #[serde(default)]
    pub mode: Option<String>,
    /// `user:group`.
    #[serde(default)]
    pub owner: Option<String>,
    /// `pass` when a missing file passes.
    #[serde(default)]
    pub absent: Option<Absent>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Absent {
    Pass,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Setting {
    pub of: Component,
    pub flag: String,
    /// The key in the configuration file, dotted.
    #[serde(default)]
    pub config: Option<String>,
    /// A feature gate in `--feature-gates=A=true,B=false`.
    #[serde(default)]
    pub gate: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitKey {
    pub of: FileRole,
    pub key: String,
}

/// What a setting's value must be.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Expect {
    Equals(String),
    Lacks(String),
    Set(bool),
    NonzeroDuration(bool),
    AtLeast(f64),
    Above(f64),
    Within(Vec<String>),
    Loopback(bool),
}

/// A check's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Status {
    Pass,
    Fail,
    Warn,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Warn => "WARN",
        }
    }
}

/// A check's outcome on a node.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CheckResult {
    pub id: String,
    pub text: String,
    pub status: Status,
    pub automated: bool,
    /// What was found (`644`, `false`, `not set`).
    pub observed: String,
    /// What passes.
    pub expected: String,
    /// Where it was found: `flag --anonymous-auth`, `/var/lib/kubelet/config.yaml:7`,
    /// `default of kubelet (with a config file)`, a path.
    pub source: String,
    pub remediation: String,
}

/// Where a setting's value came from.
#[derive(Clone, Debug)]
struct Observed {
    /// `None`: not given, and no default.
    value: Option<serde_json::Value>,
    source: String,
    /// Given by the operator (a flag or the file), not a default.
    explicit: bool,
}

/// The kubelet's defaults for the settings the checks read, by configuration key: with a
/// configuration file (KubeletConfiguration v1beta1's defaults), and with flags alone
/// (the kubelet keeps the command line's older defaults for four of them).
fn kubelet_default(key: &str, with_config: bool) -> Option<&'static str> {
    Some(match (key, with_config) {
        ("authentication.anonymous.enabled", true) => "false",
        ("authentication.anonymous.enabled", false) => "true",
        ("authorization.mode", true) => "Webhook",
        ("authorization.mode", false) => "AlwaysAllow",
        ("readOnlyPort", true) => "0",
        ("readOnlyPort", false) => "10255",
        ("streamingConnectionIdleTimeout", _) => "4h0m0s",
        ("makeIPTablesUtilChains", _) => "true",
        ("eventRecordQPS", _) => "50",
        ("rotateCertificates", _) => "false",
        ("featureGates.RotateKubeletServerCertificate", _) => "true",
        ("podPidsLimit", _) => "-1",
        ("seccompDefault", _) => "false",
        _ => return None,
    })
}

fn kube_proxy_default(key: &str) -> Option<&'static str> {
    match key {
        "metricsBindAddress" => Some("127.0.0.1:10249"),
        _ => None,
    }
}

/// A JSON value as text: strings bare, lists comma-joined.
fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

impl Setting {
    /// The setting's value on `node`.
    fn observe(&self, node: &Node) -> Result<Observed, String> {
        let Some(process) = node.process(self.of) else {
            return Err(format!("{} is not running", self.of.program()));
        };
        let from_flag = process.flags.get(&self.flag).and_then(|v| match &self.gate {
            Some(gate) => v.split(',').find_map(|g| {
                let (name, value) = g.split_once('=')?;
                (name.trim() == gate).then(|| value.trim().to_owned())
            }),
            None => Some(v.clone()),
        });
        if let Some(value) = from_flag {
            return Ok(Observed { value: Some(value.into()), source: format!("flag --{}", self.flag), explicit: true });
        }
        if let (Some(key), Some(config)) = (&self.config, &process.config) {
            if let Some(value) =
                lookup(&config.value, key).filter(|v| !(v.as_str() == Some("") && key == "metricsBindAddress"))
            {
                let source = match config.line_of(key) {
                    Some(line) => format!("{}:{line}", config.path),
                    None => config.path.clone(),
                };
                return Ok(Observed { value: Some(value.clone()), source, explicit: true });
            }
        }
        let default = self.config.as_deref().and_then(|key| match self.of {
            Component::Kubelet => kubelet_default(key, process.config.is_some()),
            Component::KubeProxy => kube_proxy_default(key),
        });
        Ok(match default {
            Some(value) => {
                let mode = if process.config.is_some() { "with a config file" } else { "flags only" };
                Observed {
                    value: Some(value.into()),
                    source: format!("default of {} ({mode})", self.of.program()),
                    explicit: false,
                }
            }
            None => Observed { value: None, source: "not set".into(), explicit: false },
        })
    }
}

/// A Go duration (`4h0m0s`, `5m`, `0`) in seconds.
fn duration_s(text: &str) -> Option<f64> {
    let text = text.trim();
    if text == "0" {
        return Some(0.0);
    }
    let mut total = 0.0;
    let mut number = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if (c == 'm' && chars.peek() == Some(&'s'))
            || ((c == 'u' || c == 'µ' || c == 'n') && chars.peek() == Some(&'s'))
        {
            unit.push(chars.next()?);
        }
        let scale = match unit.as_str() {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += number.parse::<f64>().ok()? * scale;
        number.clear();
    }
    number.is_empty().then_some(total)
}

/// Whether `address` (`host:port`, `[v6]:port` or a host) is a loopback address.
fn is_loopback(address: &str) -> bool {
    let host = match address.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) && !host.ends_with(':') => host,
        _ => address,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl Expect {
    /// Whether `observed` meets it.
    fn holds(&self, observed: &Observed) -> bool {
        let value = observed.value.as_ref().map(text);
        let number = value.as_deref().and_then(|v| v.trim().parse::<f64>().ok());
        match self {
            Expect::Set(want) => observed.explicit == *want,
            Expect::Equals(want) => value.is_some_and(|v| v.eq_ignore_ascii_case(want)),
            Expect::Lacks(unwanted) => value.is_some_and(|v| !v.split(',').any(|m| m.trim() == unwanted)),
            Expect::NonzeroDuration(_) => value.as_deref().and_then(duration_s).is_some_and(|s| s != 0.0),
            Expect::AtLeast(min) => number.is_some_and(|n| n >= *min),
            Expect::Above(min) => number.is_some_and(|n| n > *min),
            Expect::Within(allowed) => value.is_some_and(|v| {
                v.split(',').map(str::trim).filter(|s| !s.is_empty()).all(|s| allowed.iter().any(|a| a == s))
            }),
            Expect::Loopback(_) => value.as_deref().is_some_and(is_loopback),
        }
    }

    /// What passes, for the report.
    fn describe(&self) -> String {
        match self {
            Expect::Set(true) => "set".into(),
            Expect::Set(false) => "not set".into(),
            Expect::Equals(v) => v.clone(),
            Expect::Lacks(v) => format!("not {v}"),
            Expect::NonzeroDuration(_) => "a duration other than 0".into(),
            Expect::AtLeast(n) => format!(">= {n}"),
            Expect::Above(n) => format!("> {n}"),
            Expect::Within(list) => format!("a subset of {}", list.join(",")),
            Expect::Loopback(_) => "a loopback address".into(),
        }
    }
}

impl Check {
    /// The check's outcome on `node`.
    pub fn run(&self, node: &Node) -> CheckResult {
        let (passed, observed, expected, source, path) = self.decide(node);
        let status = match (passed, self.automated) {
            (true, _) => Status::Pass,
            (false, true) => Status::Fail,
            (false, false) => Status::Warn,
        };
        CheckResult {
            id: self.id.clone(),
            text: self.text.clone(),
            status,
            automated: self.automated,
            observed,
            expected,
            source,
            remediation: self.remediation.replace("{path}", &path),
        }
    }

    /// Whether it passes, what was observed and expected, where from, and the file's path.
    fn decide(&self, node: &Node) -> (bool, String, String, String, String) {
        if let Some(test) = &self.file {
            let facts = node.file(test.of);
            let expected = [test.mode.as_ref().map(|m| format!("{m} or stricter")), test.owner.clone()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", ");
            let Some(stat) = &facts.stat else {
                let passed = test.absent == Some(Absent::Pass);
                return (passed, "file not found".into(), expected, facts.path.clone(), facts.path);
            };
            let mode_ok = test
                .mode
                .as_deref()
                .and_then(|m| u32::from_str_radix(m, 8).ok())
                .is_none_or(|max| stat.mode & !max == 0);
            let owner_ok = test.owner.as_ref().is_none_or(|o| *o == stat.owner);
            let observed = match (&test.mode, &test.owner) {
                (Some(_), None) => format!("{:o}", stat.mode),
                (None, Some(_)) => stat.owner.clone(),
                _ => format!("{:o} {}", stat.mode, stat.owner),
            };
            return (mode_ok && owner_ok, observed, expected, facts.path.clone(), facts.path);
        }
        if let Some(unit) = &self.unit {
            let expected = self.expect.as_ref().map_or(String::new(), Expect::describe);
            return match node.unit_setting(unit.of, &unit.key) {
                Some((path, line, value)) => {
                    let observed =
                        Observed { value: Some(value.clone().into()), source: String::new(), explicit: true };
                    let passed = self.expect.as_ref().is_some_and(|e| e.holds(&observed));
                    (passed, value, expected, format!("{path}:{line}"), path)
                }
                None => (false, "not set".into(), expected, node.file(unit.of).path, String::new()),
            };
        }
        let settings: Vec<&Setting> = self.setting.iter().chain(&self.settings).collect();
        let Some(expect) = &self.expect else {
            return (false, "the check names nothing to test".into(), String::new(), String::new(), String::new());
        };
        let mut passed = true;
        let (mut observed, mut sources) = (Vec::new(), Vec::new());
        for setting in settings {
            match setting.observe(node) {
                Ok(found) => {
                    passed &= expect.holds(&found);
                    observed.push(found.value.as_ref().map_or("not set".into(), text));
                    sources.push(found.source);
                }
                // A component that does not run has nothing to expose (kube-proxy replaced
                // by a CNI); a missing kubelet is refused before any check runs.
                Err(why) => {
                    passed &= setting.of == Component::KubeProxy;
                    observed.push(why.clone());
                    sources.push(why);
                }
            }
        }
        (passed, observed.join("; "), expect.describe(), sources.join("; "), String::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_loopback_addresses_read_as_go_and_kube_proxy_read_them() {
        assert_eq!(duration_s("4h0m0s"), Some(14_400.0));
        assert_eq!(duration_s("5m"), Some(300.0));
        assert_eq!(duration_s("0s"), Some(0.0));
        assert_eq!(duration_s("0"), Some(0.0));
        assert_eq!(duration_s("1m30s"), Some(90.0));
        assert_eq!(duration_s("soon"), None);
        for yes in ["127.0.0.1:10249", "localhost:10249", "[::1]:10249", "127.0.0.1"] {
            assert!(is_loopback(yes), "{yes}");
        }
        for no in ["0.0.0.0:10249", "10.0.0.5:10249", ":10249", "[::]:10249"] {
            assert!(!is_loopback(no), "{no}");
        }
    }
}
