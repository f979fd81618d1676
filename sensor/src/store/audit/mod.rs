//! The audit log: every Kubernetes audit event that passes `k8s_audit.keep` (not only those
//! that alerted), kept for `max_age` within `max_size` like the alerts, searchable by time,
//! user, groups, verb, resource, subresource, namespace, object name, response code, source
//! IP, user agent, audit ID and free text.
//!
//! One trait, [`AuditLog`], over the engines: a SQLite file of its own ([`SqliteAuditLog`],
//! day tables as the alert store keeps) or the alert store's PostgreSQL database (tables
//! `audit_events` and their day partitions, beside the alerts). An event is stored once
//! per digest of its JSON (with its time): a batch kube-apiserver retries is not stored twice, while a
//! request that reuses another's audit ID (clients may set `Audit-ID`) is a new event, kept.

mod postgresql;
mod sqlite;

pub use sqlite::SqliteAuditLog;

use serde::Deserialize;

use super::rows::{Dialect, Param, list_column, tags_of_column};
use super::{Cursor, Order, Removed, Usage};
use crate::k8s_audit::AuditEvent;
use crate::rules::FieldSource as _;

/// The level an audit policy logs an event at (kube-apiserver's names).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
pub enum Level {
    None,
    Metadata,
    Request,
    RequestResponse,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "None",
            Level::Metadata => "Metadata",
            Level::Request => "Request",
            Level::RequestResponse => "RequestResponse",
        }
    }
}

/// Which audit events the log keeps (`k8s_audit.keep`); an empty list keeps any value.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Keep {
    /// Audit levels kept (`Metadata`, `Request`, `RequestResponse`).
    #[serde(default)]
    pub levels: Vec<Level>,
    /// Verbs kept (`create`, `delete`, `get`, `list`, `watch`, ...).
    #[serde(default)]
    pub verbs: Vec<String>,
}

impl Keep {
    /// Whether `event` is kept.
    pub fn keeps(&self, event: &AuditEvent) -> bool {
        let text = |key: &str| event.json().get(key).and_then(serde_json::Value::as_str).unwrap_or_default();
        let level = text("level");
        (self.levels.is_empty() || self.levels.iter().any(|l| l.as_str() == level))
            && (self.verbs.is_empty() || self.verbs.iter().any(|v| v == text("verb")))
    }
}

/// An audit event as the log keeps it: the columns it is searched by, and its JSON whole.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditRecord {
    /// The log's number for it, unique and increasing in the order stored (0 before).
    pub id: i64,
    /// `stageTimestamp` (else `requestReceivedTimestamp`), ns since the epoch.
    pub time_ns: u64,
    pub audit_id: String,
    pub stage: String,
    pub level: String,
    pub verb: String,
    pub user: String,
    pub groups: Vec<String>,
    pub resource: Option<String>,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// `responseStatus.code`.
    pub code: Option<i64>,
    pub source_ips: Vec<String>,
    pub user_agent: Option<String>,
    /// The event as kube-apiserver sent it.
    pub json: serde_json::Value,
}

/// The columns a search reads, in the order [`AuditRecord::from_columns`] takes them.
const COLUMNS: &str = "id, time_ns, audit_id, stage, level, verb, user_name, groups, resource, subresource, \
                       namespace, name, code, source_ips, user_agent, json";

impl AuditRecord {
    /// The record of `event` (not stored yet: id 0), which keeps its JSON.
    pub fn of(event: AuditEvent) -> AuditRecord {
        let time_ns = event.timestamp_ns();
        let json = event.into_json();
        let text = |v: &serde_json::Value, key: &str| v.get(key).and_then(serde_json::Value::as_str).map(str::to_owned);
        let list = |v: Option<&serde_json::Value>| -> Vec<String> {
            v.and_then(serde_json::Value::as_array)
                .map(|a| a.iter().filter_map(serde_json::Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default()
        };
        let object = json.get("objectRef").unwrap_or(&serde_json::Value::Null);
        let user = json.get("user").unwrap_or(&serde_json::Value::Null);
        AuditRecord {
            id: 0,
            time_ns,
            audit_id: text(&json, "auditID").unwrap_or_default(),
            stage: text(&json, "stage").unwrap_or_default(),
            level: text(&json, "level").unwrap_or_default(),
            verb: text(&json, "verb").unwrap_or_default(),
            user: text(user, "username").unwrap_or_default(),
            groups: list(user.get("groups")),
            resource: text(object, "resource"),
            subresource: text(object, "subresource"),
            namespace: text(object, "namespace"),
            name: text(object, "name"),
            code: json.get("responseStatus").and_then(|s| s.get("code")).and_then(serde_json::Value::as_i64),
            source_ips: list(json.get("sourceIPs")),
            user_agent: text(&json, "userAgent"),
            json,
        }
    }

    /// A text field of the event (`requestURI`, ...), for display.
    pub fn text(&self, key: &str) -> Option<&str> {
        self.json.get(key).and_then(serde_json::Value::as_str)
    }

    /// The event's JSON with the log's `id`, as the API and `sensor audit search --json` give it.
    pub fn to_json(&self) -> serde_json::Value {
        let mut json = self.json.clone();
        if let Some(map) = json.as_object_mut() {
            map.insert("id".into(), self.id.into());
        }
        json
    }

    /// The event's JSON text and its digest, which a repeated event shares: the first 128
    /// bits of its SHA-256 (no event can be made to pass for another).
    fn json_and_digest(&self) -> (String, Vec<u8>) {
        let json = self.json.to_string();
        let digest = ring::digest::digest(&ring::digest::SHA256, json.as_bytes());
        (json, digest.as_ref()[..16].to_vec())
    }

    /// The text its word index holds: every string and number of the event, keys aside.
    fn body(&self) -> String {
        fn walk(v: &serde_json::Value, out: &mut String) {
            match v {
                serde_json::Value::String(s) => {
                    out.push_str(s);
                    out.push('\n');
                }
                serde_json::Value::Number(n) => {
                    out.push_str(&n.to_string());
                    out.push('\n');
                }
                serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
                serde_json::Value::Object(map) => map.values().for_each(|i| walk(i, out)),
                serde_json::Value::Bool(_) | serde_json::Value::Null => {}
            }
        }
        let mut body = String::new();
        walk(&self.json, &mut body);
        body
    }
}

/// The values of a list column.
fn list_of_column(column: &str) -> Vec<String> {
    tags_of_column(column).map(str::to_owned).collect()
}

/// A search of the audit log: every filter given must hold (several values of one filter:
/// any of them).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuditQuery {
    /// Events at or after this time (ns since the epoch).
    pub from_ns: Option<u64>,
    /// Events before this time.
    pub to_ns: Option<u64>,
    /// `user.username`.
    pub users: Vec<String>,
    /// Events of a user in any of these groups.
    pub groups: Vec<String>,
    pub verbs: Vec<String>,
    pub resources: Vec<String>,
    pub subresources: Vec<String>,
    pub namespaces: Vec<String>,
    /// Object names.
    pub names: Vec<String>,
    /// Response codes.
    pub codes: Vec<i64>,
    /// Events with any of these among their `sourceIPs`.
    pub source_ips: Vec<String>,
    /// User agents beginning with any of these (`kubectl` finds `kubectl/v1.31.0 ...`).
    pub user_agents: Vec<String>,
    pub audit_ids: Vec<String>,
    /// Terms that must all appear in the event (any string of its JSON), ignoring case.
    pub text: Option<String>,
    pub order: Order,
    /// Continue after this event (the previous page's `next`).
    pub after: Option<Cursor>,
    /// Events per page (0: 100; at most 10,000).
    pub limit: usize,
}

/// The search's parameters by name, as the console's URLs and `sensor audit search` give
/// them (each repeatable but the times, text, limit, cursor and order), with what they set.
pub const PARAMETERS: [(&str, &str); 18] = [
    ("since", "events of the last span: 15m, 24h, 7d"),
    ("from", "events at or after this time (RFC 3339, or a date)"),
    ("to", "events before this time (RFC 3339)"),
    ("user", "user.username, exactly"),
    ("group", "a group of the user, exactly"),
    ("verb", "get, list, watch, create, update, patch, delete, ..."),
    ("resource", "objectRef.resource: pods, secrets, deployments, ..."),
    ("subresource", "objectRef.subresource: exec, log, status, scale, ..."),
    ("namespace", "objectRef.namespace"),
    ("name", "objectRef.name"),
    ("code", "responseStatus.code: 200, 403, ..."),
    ("source_ip", "one of sourceIPs"),
    ("user_agent", "the beginning of userAgent: kubectl, argocd, ..."),
    ("audit_id", "auditID"),
    ("text", "words that must all appear in the event, as written, any case"),
    ("limit", "events per page (default 100, at most 10000)"),
    ("after", "continue after this position (a page's `next`)"),
    ("order", "newest (the default) or oldest"),
];

impl AuditQuery {
    /// The query `params` describe (names of [`PARAMETERS`]; others are left to the
    /// caller); an error names the parameter.
    pub fn from_params(params: &[(String, String)]) -> Result<AuditQuery, String> {
        let mut q = AuditQuery::default();
        for (key, value) in params {
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            if q.window().read(key, value)? {
                continue;
            }
            let text = value.to_owned();
            match key.as_str() {
                "user" => q.users.push(text),
                "group" => q.groups.push(text),
                "verb" => q.verbs.push(text),
                "resource" => q.resources.push(text),
                "subresource" => q.subresources.push(text),
                "namespace" => q.namespaces.push(text),
                "name" => q.names.push(text),
                "code" => q
                    .codes
                    .push(value.parse().map_err(|_| format!("code: `{value}` is not a status code (200, 403...)"))?),
                "source_ip" => q.source_ips.push(text),
                "user_agent" => q.user_agents.push(text),
                "audit_id" => q.audit_ids.push(text),
                "text" => q.text = Some(text),
                // Parameters of the page itself are read by their handlers.
                _ => {}
            }
        }
        Ok(q)
    }

    /// Its time range, page and order, to read parameters into.
    pub fn window(&mut self) -> super::query::Window<'_> {
        super::query::Window {
            from_ns: &mut self.from_ns,
            to_ns: &mut self.to_ns,
            limit: &mut self.limit,
            after: &mut self.after,
            order: &mut self.order,
        }
    }

    /// The page size to use.
    pub fn page_size(&self) -> usize {
        match self.limit {
            0 => super::query::DEFAULT_LIMIT,
            n => n.min(super::query::MAX_LIMIT),
        }
    }

    fn terms(&self) -> Vec<&str> {
        self.text.as_deref().map(|t| t.split_whitespace().collect()).unwrap_or_default()
    }

    /// The WHERE clause over an audit table (the text's exact check included; the word
    /// index's candidates are each engine's), binding values into `args`.
    fn filters(&self, dialect: Dialect, args: &mut Vec<Param>) -> String {
        let mut clauses: Vec<String> = Vec::new();
        dialect.time_range(self.from_ns, self.to_ns, args, &mut clauses);
        for (column, values) in [
            ("user_name", &self.users),
            ("verb", &self.verbs),
            ("resource", &self.resources),
            ("subresource", &self.subresources),
            ("namespace", &self.namespaces),
            ("name", &self.names),
            ("audit_id", &self.audit_ids),
        ] {
            if !values.is_empty() {
                clauses.push(dialect.any_of(column, values, args));
            }
        }
        if !self.codes.is_empty() {
            let marks: Vec<String> = self.codes.iter().map(|c| dialect.bind(args, Param::Int(*c))).collect();
            clauses.push(format!("code IN ({})", marks.join(", ")));
        }
        for (column, values) in [("groups", &self.groups), ("source_ips", &self.source_ips)] {
            if !values.is_empty() {
                clauses.push(dialect.any_in_list(column, values, args));
            }
        }
        if !self.user_agents.is_empty() {
            let tests: Vec<String> = self
                .user_agents
                .iter()
                .map(|ua| {
                    let v = dialect.bind(args, Param::Text(ua.clone()));
                    format!("substr(user_agent, 1, length({v})) = {v}")
                })
                .collect();
            clauses.push(format!("({})", tests.join(" OR ")));
        }
        for term in self.terms() {
            clauses.push(dialect.json_holds(term, args));
        }
        if let Some(after) = self.after {
            clauses.push(dialect.after(after, self.order, args));
        }
        if clauses.is_empty() { "TRUE".into() } else { clauses.join(" AND ") }
    }
}

/// One page of an audit search.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuditPage {
    pub events: Vec<AuditRecord>,
    /// Where the next page starts, when there may be one.
    pub next: Option<Cursor>,
}

impl AuditPage {
    /// The page of `limit` events from up to one more, in the search's order.
    fn of(mut events: Vec<AuditRecord>, limit: usize) -> AuditPage {
        let next = if events.len() > limit {
            events.truncate(limit);
            events.last().map(|e| Cursor { time_ns: e.time_ns, id: e.id })
        } else {
            None
        };
        AuditPage { events, next }
    }
}

/// An audit log engine. Calls block: async code makes them on a blocking thread.
pub trait AuditLog: Send {
    /// Stores `events` in one transaction (all or, on an error, none); returns how many were
    /// new (an event already stored, the same JSON, is not stored again).
    fn insert_audit(&mut self, events: &[AuditRecord]) -> anyhow::Result<u64>;

    /// The events `query` selects, one page of them.
    fn search_audit(&self, query: &AuditQuery) -> anyhow::Result<AuditPage>;

    /// One event by its id.
    fn get_audit(&self, id: i64) -> anyhow::Result<Option<AuditRecord>>;

    /// Removes what is older than `max_age` at `now_ns`, then the oldest events while the log
    /// is over `max_size`.
    fn retain_audit(&mut self, now_ns: u64) -> anyhow::Result<Removed>;

    /// How much the log holds (`alerts`: its events).
    fn audit_usage(&self) -> anyhow::Result<Usage>;
}

/// Opens the audit log `config` names for writing (blocks).
pub fn open(config: &super::StoreConfig) -> anyhow::Result<Opened> {
    Ok(match &config.engine {
        super::Engine::Sqlite(path) => {
            let (log, set_aside) = SqliteAuditLog::open(path, config)?;
            Opened { log: Box::new(log), set_aside }
        }
        super::Engine::Postgres(pg) => Opened { log: Box::new(super::PgStore::connect(pg, config)?), set_aside: None },
    })
}

/// An audit log opened for writing.
pub struct Opened {
    pub log: Box<dyn AuditLog>,
    /// What opening found unusable and moved aside (a corrupt SQLite file), for the operator.
    pub set_aside: Option<String>,
}

#[cfg(test)]
mod tests;
