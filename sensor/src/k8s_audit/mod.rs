//! The `k8s_audit` event source: Kubernetes API audit events (`audit.k8s.io/v1` `Event`s,
//! as kube-apiserver's webhook and log backends write them), evaluated by the same engine
//! as syscalls with the `ka.*` and `jevt.*` fields of Falco's k8saudit plugin.
//!
//! An [`AuditEvent`] keeps the event's JSON as it came and answers each field from it when
//! a rule asks ([`fields`]), so that a field no loaded rule names costs nothing.

mod fields;
mod source;

pub use source::{AuditConfig, AuditCounters, AuditSource, Refusal, WebhookConfig, WebhookTls};

use crate::rules::{Field, FieldArg, FieldSource, Value, fields::K8S_AUDIT_SOURCE};

/// The `apiVersion`s of audit events this source reads (`v1beta1` has the same shape for
/// every field here; kube-apiserver stopped writing it in 1.24).
const API_VERSIONS: [&str; 2] = ["audit.k8s.io/v1", "audit.k8s.io/v1beta1"];

/// One audit event.
#[derive(Clone, Debug)]
pub struct AuditEvent {
    json: serde_json::Value,
    /// `stageTimestamp`, else `requestReceivedTimestamp`, in nanoseconds since the epoch.
    time_ns: u64,
    /// The node's name (`evt.hostname`).
    hostname: &'static str,
    /// The cluster's name as the operator configured it (`ka.cluster.name`).
    cluster: Option<String>,
    /// 403s of the user in the last minute, when counted ([`ForbiddenBursts`]).
    forbidden_recent: Option<u64>,
}

impl AuditEvent {
    /// Reads one audit `Event` object (as a log backend writes it: with its `kind` and
    /// `apiVersion`). Refused, with the reason: anything but a JSON object, a `kind` other
    /// than `Event` (an `EventList` is split into its `items` by the caller), an unknown
    /// `apiVersion`, or no time.
    pub fn from_json(json: serde_json::Value) -> Result<AuditEvent, String> {
        Self::read(json, None)
    }

    /// Reads an item of an `EventList` of `api_version` (as the webhook backend sends them:
    /// the items need not repeat the list's `kind` and `apiVersion`).
    pub fn from_list_item(json: serde_json::Value, api_version: &str) -> Result<AuditEvent, String> {
        Self::read(json, Some(api_version))
    }

    fn read(json: serde_json::Value, list: Option<&str>) -> Result<AuditEvent, String> {
        let serde_json::Value::Object(map) = &json else {
            return Err(format!("an audit event is a JSON object, not {}", kind_of(&json)));
        };
        let text = |key: &str| map.get(key).and_then(serde_json::Value::as_str);
        match (text("kind"), list) {
            (Some("Event"), _) | (None, Some(_)) => {}
            (Some(other), _) => return Err(format!("an audit event has kind Event, not {other}")),
            (None, None) => return Err("an audit event has kind Event; this object has no kind".into()),
        }
        match text("apiVersion").or(list) {
            Some(v) if API_VERSIONS.contains(&v) => {}
            Some(v) => return Err(format!("unknown audit apiVersion '{v}' (expected {})", API_VERSIONS.join(" or "))),
            None => return Err("an audit event names its apiVersion (audit.k8s.io/v1); this one does not".into()),
        }
        let time = ["stageTimestamp", "requestReceivedTimestamp"]
            .iter()
            .find_map(|key| map.get(*key).and_then(serde_json::Value::as_str));
        let Some(time) = time else {
            return Err(
                "an audit event has a stageTimestamp or a requestReceivedTimestamp; this one has neither".into()
            );
        };
        let time_ns = crate::enrich::parse_rfc3339_ns(time)
            .ok_or_else(|| format!("the audit event's time '{time}' is not an RFC 3339 time"))?;
        let hostname = crate::state::node_name();
        Ok(AuditEvent { json, time_ns, hostname, cluster: None, forbidden_recent: None })
    }

    /// The event with `ka.cluster.name` set to `name`.
    pub fn with_cluster_name(mut self, name: impl Into<String>) -> Self {
        self.cluster = Some(name.into());
        self
    }

    /// The user's name (`user.username`), when the event has one.
    pub fn user(&self) -> Option<&str> {
        self.json.get("user")?.get("username")?.as_str()
    }

    /// Whether the request was answered 403, as logged when it completed.
    fn forbidden(&self) -> bool {
        let completed = self.json.get("stage").and_then(serde_json::Value::as_str) == Some("ResponseComplete");
        let code = self.json.get("responseStatus").and_then(|s| s.get("code")).and_then(serde_json::Value::as_u64);
        completed && code == Some(403)
    }

    /// The event as it came.
    pub fn json(&self) -> &serde_json::Value {
        &self.json
    }

    /// The event as it came, kept.
    pub fn into_json(self) -> serde_json::Value {
        self.json
    }
}

/// How long a user's 403s count toward `ka.user.forbidden_recent`.
const FORBIDDEN_WINDOW_NS: u64 = 60_000_000_000;
/// The most 403s counted per user in the window (the count stops there).
const FORBIDDEN_MAX: usize = 1_000;
/// The most users whose recent 403s are kept; the least recently seen go first.
const FORBIDDEN_USERS: usize = 10_000;

/// Each user's 403s over the last minute of audit events (by their time), for
/// `ka.user.forbidden_recent`: the one stateful audit field, kept where events are
/// evaluated in order. Bounded: [`FORBIDDEN_USERS`] users, [`FORBIDDEN_MAX`] answers each.
#[derive(Debug)]
pub struct ForbiddenBursts {
    by_user: lru::LruCache<String, std::collections::VecDeque<u64>>,
}

impl Default for ForbiddenBursts {
    fn default() -> Self {
        let users = std::num::NonZeroUsize::new(FORBIDDEN_USERS).expect("nonzero");
        ForbiddenBursts { by_user: lru::LruCache::new(users) }
    }
}

impl ForbiddenBursts {
    /// Counts `event` if it is a 403 and sets its `ka.user.forbidden_recent`.
    pub fn observe(&mut self, event: &mut AuditEvent) {
        let Some(user) = event.user() else { return };
        let now = event.time_ns;
        let forbidden = event.forbidden();
        let times = match self.by_user.get_mut(user) {
            Some(times) => times,
            None if forbidden => self.by_user.get_or_insert_mut(user.to_owned(), Default::default),
            None => {
                event.forbidden_recent = Some(0);
                return;
            }
        };
        while times.front().is_some_and(|t| now.saturating_sub(*t) >= FORBIDDEN_WINDOW_NS) {
            times.pop_front();
        }
        if forbidden && times.len() < FORBIDDEN_MAX {
            times.push_back(now);
        }
        event.forbidden_recent = Some(times.len() as u64);
    }
}

fn kind_of(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

impl FieldSource for AuditEvent {
    /// Audit events have no type of their own: every `k8s_audit` rule sees every one.
    fn event_type(&self) -> &str {
        K8S_AUDIT_SOURCE
    }

    fn source(&self) -> &str {
        K8S_AUDIT_SOURCE
    }

    fn timestamp_ns(&self) -> u64 {
        self.time_ns
    }

    fn field(&self, id: Field, arg: Option<&FieldArg>) -> Option<Value<'_>> {
        fields::field(self, id, arg)
    }
}

#[cfg(test)]
mod tests;
