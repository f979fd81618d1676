//! The alert store: every alert kept for `max_age` (and within `max_size`), searchable by
//! time, priority, rule, source, tags, node, container, image, namespace, pod and free text.
//!
//! One trait, [`AlertStore`], over the engines; the embedded one is SQLite ([`SqliteStore`]),
//! a file on the node with nothing to install. The store is fed as an output
//! ([`crate::outputs::store`]): the same queue, counters and retries as any other, so a
//! slow or full disk never stalls detection.

pub mod audit;
pub mod benchmark;
mod checkpointer;
mod config;
mod postgresql;
mod query;
mod rows;
mod sqlite;

pub use config::{Engine, PostgresConfig, StoreConfig, parse_size};
pub use postgresql::PgStore;
pub use query::{Cursor, GroupBy, Histogram, Order, Page, Query, TAIL_BATCH, Tail, parse_rfc3339, parse_since};
pub use sqlite::{Opened, SqliteStore};

use crate::rules::{Alert, Priority};

/// Locks `m`, taking over from a holder that panicked (what the engines keep under their
/// locks stays whole between statements).
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One stored alert: the columns it is searched by, and Falco's JSON alert whole.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredAlert {
    /// The store's number for it, unique and increasing in the order alerts were stored.
    pub id: i64,
    /// Event time, nanoseconds since the epoch.
    pub time_ns: u64,
    pub priority: Priority,
    pub rule: String,
    pub source: String,
    /// The node (the alert's `hostname`).
    pub hostname: String,
    /// Falco's text line.
    pub output: String,
    pub tags: Vec<String>,
    /// The container, image and pod fields of the alert, when its output named them.
    pub container: Placement,
    /// Falco's JSON alert (`time`, `rule`, `priority`, `output_fields`...).
    pub json: serde_json::Value,
}

impl StoredAlert {
    /// Falco's JSON alert with the store's `id`, as the API and `sensor alerts search
    /// --json` give it.
    pub fn to_json(&self) -> serde_json::Value {
        let mut json = self.json.clone();
        if let Some(map) = json.as_object_mut() {
            map.insert("id".into(), self.id.into());
        }
        json
    }
}

/// Where an alert happened, from its output fields (the suggested output Falco appends to
/// syscall rules names all of them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Placement {
    pub container_id: Option<String>,
    pub container_name: Option<String>,
    /// `repository[:tag]`, or `container.image` as the rule named it.
    pub image: Option<String>,
    pub namespace: Option<String>,
    pub pod: Option<String>,
}

impl Placement {
    /// The container by its name, else its id (none: the host).
    pub fn container(&self) -> Option<&str> {
        self.container_name.as_deref().or(self.container_id.as_deref())
    }

    /// The pod as `namespace/pod`, or the pod alone when its namespace is unknown.
    pub fn pod_label(&self) -> Option<String> {
        match (&self.namespace, &self.pod) {
            (Some(ns), Some(pod)) => Some(format!("{ns}/{pod}")),
            (None, Some(pod)) => Some(pod.clone()),
            _ => None,
        }
    }

    /// The placement an alert's output fields give; `<NA>`, `host` and empty values are none.
    pub fn of(alert: &Alert) -> Placement {
        let field = |key: &str| {
            alert
                .fields
                .iter()
                .find(|(k, _)| **k == *key)
                .and_then(|(_, v)| v.as_ref())
                .map(|v| v.to_string())
                .filter(|v| !v.is_empty() && v != "<NA>")
        };
        let image = match (field("container.image.repository"), field("container.image.tag")) {
            (Some(repo), Some(tag)) => Some(format!("{repo}:{tag}")),
            (Some(repo), None) => Some(repo),
            (None, _) => field("container.image"),
        };
        Placement {
            container_id: field("container.id").filter(|id| id != "host"),
            container_name: field("container.name").filter(|n| n != "host"),
            image,
            namespace: field("k8s.ns.name"),
            pod: field("k8s.pod.name"),
        }
    }
}

/// What a retention pass removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Removed {
    /// Alerts older than `max_age`.
    pub expired: u64,
    /// The oldest alerts, removed to bring the store under `max_size`.
    pub over_size: u64,
}

/// How much the store holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub alerts: u64,
    /// Bytes of the store's pages in use (free pages are reused before the file grows).
    pub bytes: u64,
    /// The time of the oldest alert kept, if any.
    pub oldest_ns: Option<u64>,
}

/// An alert store engine. Calls block (disk and database work): async code calls them on
/// a blocking thread.
pub trait AlertStore: Send {
    /// Stores `alerts` in one transaction: all of them or, on an error, none.
    fn insert(&mut self, alerts: &[std::sync::Arc<Alert>]) -> anyhow::Result<()>;

    /// The alerts `query` selects, one page of them.
    fn search(&self, query: &Query) -> anyhow::Result<Page>;

    /// One alert by its id.
    fn get(&self, id: i64) -> anyhow::Result<Option<StoredAlert>>;

    /// How many alerts `query` selects (its order, cursor and limit aside), by the value
    /// of `by`, most first; alerts without a value (a host alert's pod) are left out.
    fn counts(&self, query: &Query, by: GroupBy) -> anyhow::Result<Vec<(String, u64)>>;

    /// How many alerts `query` selects (its order, cursor and limit aside) per `bucket_ns` of
    /// their time and priority: `(bucket start, priority, alerts)`, buckets with none left out.
    fn histogram(&self, query: &Query, bucket_ns: u64) -> anyhow::Result<Vec<(u64, Priority, u64)>>;

    /// Removes what is older than `max_age` at `now_ns`, then the oldest alerts while the
    /// store is over `max_size`.
    fn enforce_retention(&mut self, now_ns: u64) -> anyhow::Result<Removed>;

    /// How much the store holds now.
    fn usage(&self) -> anyhow::Result<Usage>;

    /// The benchmark runs the store keeps beside the alerts.
    fn benchmark_log(&self) -> &dyn benchmark::BenchmarkLog;
}

/// A store opened for writing.
pub struct Writer {
    pub store: Box<dyn AlertStore>,
    /// What opening found unusable and moved aside (a corrupt SQLite file), for the operator.
    pub set_aside: Option<String>,
}

/// Opens the store `config` names for writing (blocks: call it on a blocking thread).
pub fn open(config: &StoreConfig) -> anyhow::Result<Writer> {
    match &config.engine {
        Engine::Sqlite(path) => {
            let opened = SqliteStore::open(path, config)?;
            let set_aside = opened.set_aside.map(|(aside, why)| {
                format!(
                    "the alert store {} was unusable ({why}); it was moved to {} and a new store begun",
                    path.display(),
                    aside.display()
                )
            });
            Ok(Writer { store: Box::new(opened.store), set_aside })
        }
        Engine::Postgres(pg) => Ok(Writer { store: Box::new(PgStore::connect(pg, config)?), set_aside: None }),
    }
}

/// A store's writer, shared by what writes to it (the store output's batches, the
/// console's ingest) and by its retention timer. Calls block: async code makes them on a
/// blocking thread.
#[derive(Clone)]
pub struct SharedWriter {
    store: std::sync::Arc<std::sync::Mutex<Box<dyn AlertStore>>>,
    description: std::sync::Arc<str>,
    /// Failed retention passes (the alerts were stored; the store may grow past its limits
    /// until a pass succeeds).
    retention_failures: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl SharedWriter {
    /// Opens the store `config` names (blocks); what opening set aside, if anything, with it.
    pub fn open(config: &StoreConfig) -> anyhow::Result<(SharedWriter, Option<String>)> {
        let Writer { store, set_aside } = open(config)?;
        let writer = SharedWriter {
            store: std::sync::Arc::new(std::sync::Mutex::new(store)),
            description: config.describe().into(),
            retention_failures: Default::default(),
        };
        Ok((writer, set_aside))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Box<dyn AlertStore>> {
        self.store.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stores `alerts` in one transaction.
    pub fn insert(&self, alerts: &[std::sync::Arc<Alert>]) -> anyhow::Result<()> {
        self.lock().insert(alerts)
    }

    /// Runs `f` on the store's benchmark runs.
    pub fn with_benchmark_log<T>(
        &self,
        f: impl FnOnce(&dyn benchmark::BenchmarkLog) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        f(self.lock().benchmark_log())
    }

    /// One retention pass; a failure is counted and logged, never fatal.
    pub fn retain(&self) {
        let mut store = self.lock();
        match store.enforce_retention(now_ns()) {
            Ok(Removed { expired: 0, over_size: 0 }) => {}
            Ok(Removed { expired, over_size }) => log::info!(
                "alert store {}: removed {expired} alerts past max_age and {over_size} over max_size",
                self.description
            ),
            Err(e) => {
                self.retention_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                log::warn!("alert store {}: retention failed: {e:#}", self.description);
            }
        }
    }

    /// Failed retention passes so far.
    pub fn retention_failures(&self) -> std::sync::Arc<std::sync::atomic::AtomicU64> {
        self.retention_failures.clone()
    }

    /// Runs retention every `interval` on the current runtime, until the handle is aborted.
    pub fn spawn_retention(&self, interval: std::time::Duration) -> tokio::task::JoinHandle<()> {
        let writer = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let writer = writer.clone();
                let _ = tokio::task::spawn_blocking(move || writer.retain()).await;
            }
        })
    }
}

/// A store to read from, shared by the console's requests and the CLI: a SQLite file
/// (opened read-only for each read, so it never holds the writer back) or a database's
/// connections.
#[derive(Clone, Debug)]
pub enum Reader {
    Sqlite(std::path::PathBuf),
    Postgres(PgStore),
}

impl Reader {
    /// A reader of the store `config` names (for PostgreSQL: connects, and makes the schema
    /// if there is none; blocks).
    pub fn open(config: &StoreConfig) -> anyhow::Result<Reader> {
        Ok(match &config.engine {
            Engine::Sqlite(path) => Reader::Sqlite(path.clone()),
            Engine::Postgres(pg) => Reader::Postgres(PgStore::connect(pg, config)?),
        })
    }

    /// Runs `read` on the store (blocks).
    pub fn read<T>(&self, read: impl FnOnce(&dyn AlertStore) -> anyhow::Result<T>) -> anyhow::Result<T> {
        match self {
            Reader::Sqlite(path) => read(&SqliteStore::open_read_only(path)?),
            Reader::Postgres(pg) => read(pg),
        }
    }

    /// Runs `read` on the audit log the store holds (blocks).
    pub fn read_audit<T>(&self, read: impl FnOnce(&dyn audit::AuditLog) -> anyhow::Result<T>) -> anyhow::Result<T> {
        match self {
            Reader::Sqlite(path) => read(&audit::SqliteAuditLog::open_read_only(path)?),
            Reader::Postgres(pg) => read(pg),
        }
    }

    /// The store, for messages.
    pub fn describe(&self) -> String {
        match self {
            Reader::Sqlite(path) => path.display().to_string(),
            Reader::Postgres(pg) => pg.description().to_owned(),
        }
    }
}

/// Nanoseconds since the epoch, now.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

#[doc(hidden)]
pub mod pg_server;
#[cfg(test)]
mod tests;
