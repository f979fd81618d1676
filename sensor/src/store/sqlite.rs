//! The embedded store: one SQLite file (WAL mode, so searches read while the sensor writes,
//! and a `kill -9` loses nothing committed).
//!
//! Alerts live in one table per UTC day of their event time (`alerts_d<days since epoch>`),
//! with a full-text index beside it (`text_d<N>`, FTS5), so that retention drops a day
//! whole instead of deleting row by row; only the day at the age limit, and the oldest day
//! when the store is over its size, lose single rows. A search walks the days in its order,
//! so pages come out already sorted. `days` counts each day's alerts; `meta` holds the
//! schema version and the next id. `counts_d<N>` keeps each day's alert counts per hour,
//! priority and grouping value (kept in step by inserts and deletes), so the dashboard's
//! counts over a time range read those instead of every alert.

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{Context as _, bail};
use rusqlite::{
    CachedStatement, Connection, OpenFlags, OptionalExtension as _, params, params_from_iter, types::Value as SqlValue,
};

use super::benchmark::BenchmarkLog;
use super::checkpointer::{Checkpointer, RESTART_PAGES};
use super::rows::{
    COLUMNS, CountsPlan, DAY_NS, Dialect, HOUR_NS, Param, ROLLUP_GROUPS, ROLLUP_VALUES_AT, Rollup, body, column,
    in_chunks, level_of, ns_column, priority_of_level, rollup_columns, sorted_counts, tags_column, tags_of_column,
};
use super::{AlertStore, GroupBy, Order, Page, Placement, Query, Removed, StoreConfig, StoredAlert, Usage};
use crate::rules::{Alert, Priority};

/// Writes `rollup` into day `day`'s counts table (inside the caller's transaction).
fn apply_rollup(conn: &Connection, day: u64, rollup: &Rollup) -> rusqlite::Result<()> {
    let mut upsert = conn.prepare_cached(&format!(
        "INSERT INTO counts_d{day} (grp, hour, priority, value, alerts) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (grp, hour, priority, value) DO UPDATE SET alerts = alerts + excluded.alerts"
    ))?;
    for ((grp, hour, level, value), delta) in rollup.changes() {
        upsert.execute(params![grp, hour, level, value, delta])?;
    }
    if rollup.removes() {
        conn.execute(&format!("DELETE FROM counts_d{day} WHERE alerts <= 0"), [])?;
    }
    Ok(())
}

/// The schema this code writes; a file with another is refused, not guessed at.
const SCHEMA_VERSION: i64 = 1;

/// A store in a SQLite file.
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    max_age_ns: u64,
    max_size: u64,
    /// The days that have tables, with their alert counts (the `days` table, cached).
    days: BTreeMap<u64, u64>,
    next_id: i64,
    /// Copies the log into the file (none for a store opened to read).
    checkpoints: Option<Checkpointer>,
}

/// What opening a store for writing found.
pub struct Opened {
    pub store: SqliteStore,
    /// A corrupt or foreign file found at the path was moved here, and a new store begun.
    pub set_aside: Option<(PathBuf, String)>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).field("days", &self.days.len()).finish()
    }
}

impl SqliteStore {
    /// Opens (or creates) the store for writing. A file that is not a store of this schema,
    /// or fails SQLite's integrity check, is renamed `PATH.corrupt-<unix seconds>` (with its
    /// `-wal` and `-shm` files) and a new store is begun: alerts keep being kept, and what
    /// was found is reported in [`Opened::set_aside`].
    pub fn open(path: &Path, config: &StoreConfig) -> anyhow::Result<Opened> {
        let (store, set_aside) = open_or_set_aside(path, "alert store", || Self::open_checked(path, config))?;
        Ok(Opened { store, set_aside })
    }

    /// Opens an existing store to read (`sensor alerts search`); never writes to it.
    pub fn open_read_only(path: &Path) -> anyhow::Result<SqliteStore> {
        if !path.exists() {
            bail!("no alert store at {}", path.display());
        }
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .with_context(|| format!("opening the alert store {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let version = schema_version(&conn).with_context(|| format!("reading the alert store {}", path.display()))?;
        if version != Some(SCHEMA_VERSION) {
            bail!("{} is not an alert store of this sensor (schema {version:?})", path.display());
        }
        let mut store = SqliteStore {
            conn,
            path: path.to_owned(),
            max_age_ns: u64::MAX,
            max_size: u64::MAX,
            days: BTreeMap::new(),
            next_id: 0,
            checkpoints: None,
        };
        store.load_days()?;
        Ok(store)
    }

    fn open_checked(path: &Path, config: &StoreConfig) -> Result<SqliteStore, OpenError> {
        let conn = Connection::open(path).with_context(|| format!("opening the alert store {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(anyhow::Error::from)?;
        // A file that is not a database fails here, on its first page.
        let version = schema_version(&conn).map_err(|e| unusable(&e))?;
        let check: String = conn.query_row("PRAGMA quick_check(1)", [], |r| r.get(0)).map_err(|e| unusable(&e))?;
        if check != "ok" {
            return Err(OpenError::Unusable(format!("SQLite's integrity check: {check}")));
        }
        match version {
            Some(SCHEMA_VERSION) => {}
            None => {}
            Some(other) => {
                return Err(OpenError::Unusable(format!(
                    "schema version {other}, this sensor writes {SCHEMA_VERSION}"
                )));
            }
        }
        let setup = || -> rusqlite::Result<()> {
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn.pragma_update(None, "journal_size_limit", 64 << 20)?;
            // The log is copied into the file by the checkpointer's thread.
            conn.pragma_update(None, "wal_autocheckpoint", 0)?;
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
                 CREATE TABLE IF NOT EXISTS days (day INTEGER PRIMARY KEY, alerts INTEGER NOT NULL);",
            )?;
            conn.execute_batch(&super::benchmark::sqlite_tables())?;
            conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?1)", [SCHEMA_VERSION])?;
            conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('next_id', 1)", [])?;
            Ok(())
        };
        setup()
            .map_err(|e| anyhow::Error::from(e).context(format!("setting up the alert store {}", path.display())))?;
        let next_id = conn
            .query_row("SELECT value FROM meta WHERE key = 'next_id'", [], |r| r.get(0))
            .map_err(anyhow::Error::from)?;
        let mut store = SqliteStore {
            conn,
            path: path.to_owned(),
            max_age_ns: config.max_age.as_nanos().min(u128::from(u64::MAX)) as u64,
            max_size: config.max_size.unwrap_or(u64::MAX),
            days: BTreeMap::new(),
            next_id,
            checkpoints: Some(Checkpointer::start(path, RESTART_PAGES)?),
        };
        store.load_days()?;
        Ok(store)
    }

    fn load_days(&mut self) -> anyhow::Result<()> {
        let mut stmt = self.conn.prepare("SELECT day, alerts FROM days ORDER BY day")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)))?;
        self.days = rows.collect::<rusqlite::Result<_>>()?;
        Ok(())
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates day `day`'s tables if they are missing (inside the caller's transaction).
    fn ensure_day(conn: &Connection, days: &mut BTreeMap<u64, u64>, day: u64) -> rusqlite::Result<()> {
        if days.contains_key(&day) {
            return Ok(());
        }
        conn.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS alerts_d{day} (
                 id INTEGER PRIMARY KEY,
                 time_ns INTEGER NOT NULL,
                 priority INTEGER NOT NULL,
                 rule TEXT NOT NULL,
                 source TEXT NOT NULL,
                 hostname TEXT NOT NULL,
                 container_id TEXT,
                 container_name TEXT,
                 image TEXT,
                 namespace TEXT,
                 pod TEXT,
                 tags TEXT NOT NULL,
                 json TEXT NOT NULL
             );
             CREATE INDEX IF NOT EXISTS alerts_d{day}_time ON alerts_d{day} (time_ns, id);
             CREATE VIRTUAL TABLE IF NOT EXISTS text_d{day} USING fts5(
                 body, content = '', contentless_delete = 1, tokenize = 'unicode61 remove_diacritics 2'
             );
             CREATE TABLE IF NOT EXISTS counts_d{day} (
                 grp TEXT NOT NULL,
                 hour INTEGER NOT NULL,
                 priority INTEGER NOT NULL,
                 value TEXT NOT NULL,
                 alerts INTEGER NOT NULL,
                 PRIMARY KEY (grp, hour, priority, value)
             ) WITHOUT ROWID;
             INSERT OR IGNORE INTO days (day, alerts) VALUES ({day}, 0);"
        ))?;
        days.insert(day, 0);
        Ok(())
    }

    /// The days with alerts, oldest first, as the file has them now (a reader's view
    /// follows the writer's new days and dropped ones).
    fn stored_days(&self) -> rusqlite::Result<Vec<u64>> {
        let mut stmt = self.conn.prepare_cached("SELECT day FROM days ORDER BY day")?;
        let days: Vec<i64> = stmt.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
        Ok(days.into_iter().map(|d| d as u64).collect())
    }

    /// The days a query may find alerts in, in its order.
    fn days_for(&self, query: &Query) -> rusqlite::Result<Vec<u64>> {
        let first = query.from_ns.map_or(0, |t| t / DAY_NS);
        let last = query.to_ns.map_or(u64::MAX, |t| t.saturating_sub(1) / DAY_NS);
        let after = query.after.map(|c| c.time_ns / DAY_NS);
        let days = self.stored_days()?.into_iter().filter(|d| (first..=last).contains(d));
        Ok(match query.order {
            Order::NewestFirst => days.rev().filter(|d| after.is_none_or(|a| *d <= a)).collect(),
            Order::OldestFirst => days.filter(|d| after.is_none_or(|a| *d >= a)).collect(),
        })
    }
}

impl SqliteStore {
    /// Adds to `counts` what `query` selects, by `by`, reading the alerts.
    fn scan_counts(&self, query: &Query, by: GroupBy, counts: &mut HashMap<String, u64>) -> anyhow::Result<()> {
        let column = column(by);
        for day in self.days_for(query)? {
            let mut args = Vec::new();
            let sql = format!(
                "SELECT {column}, count(*) FROM alerts_d{day} WHERE {} AND {column} IS NOT NULL GROUP BY {column}",
                filters(day, query, &mut args)
            );
            let mut stmt = match self.conn.prepare(&sql) {
                Ok(stmt) => stmt,
                Err(e) if table_gone(&e) => continue,
                Err(e) => return Err(e.into()),
            };
            let mut rows = stmt.query(params_from_iter(args))?;
            while let Some(row) = rows.next()? {
                let n = row.get::<_, i64>(1)? as u64;
                match by {
                    GroupBy::Priority => *counts.entry(priority_of_level(row.get(0)?).to_string()).or_default() += n,
                    GroupBy::Tag => {
                        let tags: String = row.get(0)?;
                        for tag in tags_of_column(&tags) {
                            *counts.entry(tag.to_owned()).or_default() += n;
                        }
                    }
                    _ => *counts.entry(row.get(0)?).or_default() += n,
                }
            }
        }
        Ok(())
    }

    /// Adds to `counts` the alerts of the whole hours `[first_hour, end_hour)` at least
    /// `min_priority`, by `by`, from the counts tables.
    fn rollup_counts(
        &self,
        first_hour: u64,
        end_hour: u64,
        min_priority: Option<Priority>,
        by: GroupBy,
        counts: &mut HashMap<String, u64>,
    ) -> anyhow::Result<()> {
        let level = min_priority.map_or(i64::MAX, level_of);
        let (first_day, last_day) =
            (first_hour * HOUR_NS / DAY_NS, end_hour.saturating_mul(HOUR_NS).saturating_sub(1) / DAY_NS);
        let hours = (ns_column(first_hour), ns_column(end_hour));
        for day in self.stored_days()?.into_iter().filter(|d| (first_day..=last_day).contains(d)) {
            // Every alert has one `rule` row: priorities are counted from those.
            let (grp, key) = match by {
                GroupBy::Priority => (GroupBy::Rule.name(), "priority"),
                other => (other.name(), "value"),
            };
            let sql = format!(
                "SELECT {key}, sum(alerts) FROM counts_d{day} WHERE grp = ?1 AND hour >= ?2 AND hour < ?3 \
                 AND priority <= ?4 GROUP BY {key}"
            );
            let mut stmt = match self.conn.prepare(&sql) {
                Ok(stmt) => stmt,
                Err(e) if table_gone(&e) => continue,
                Err(e) => return Err(e.into()),
            };
            let mut rows = stmt.query(params![grp, hours.0, hours.1, level])?;
            while let Some(row) = rows.next()? {
                let n = row.get::<_, i64>(1)?.max(0) as u64;
                let value = match by {
                    GroupBy::Priority => priority_of_level(row.get(0)?).to_string(),
                    _ => row.get(0)?,
                };
                *counts.entry(value).or_default() += n;
            }
        }
        Ok(())
    }
}

/// A SQLite store kept in one set of tables per UTC day (the alerts, the audit log): what
/// [`retain_days`] needs of it.
pub(super) trait DayTables {
    /// The days that have tables, with their rows, oldest first.
    fn day_rows(&self) -> &BTreeMap<u64, u64>;
    /// `max_age` and `max_size` in nanoseconds and bytes.
    fn limits(&self) -> (u64, u64);
    /// Drops day `day`'s tables.
    fn drop_day(&mut self, day: u64) -> rusqlite::Result<()>;
    /// Deletes day `day`'s rows before `before_ns`, at most `limit`, oldest first; how many.
    fn delete_oldest(&mut self, day: u64, before_ns: Option<u64>, limit: u64) -> rusqlite::Result<u64>;
    /// Bytes of the file's pages in use.
    fn used_bytes(&self) -> rusqlite::Result<u64>;
}

/// Removes what is older than `max_age` at `now_ns` (whole days, then the rows of the day at
/// the limit), then the oldest rows while the file is over `max_size`: as many as the excess
/// holds at the average bytes per row (whole days when a day holds no more than that), until
/// the pages in use fit, since freeing rows frees somewhat fewer pages than the average.
pub(super) fn retain_days(store: &mut impl DayTables, now_ns: u64) -> anyhow::Result<Removed> {
    let (max_age_ns, max_size) = store.limits();
    let mut removed = Removed::default();
    let cutoff = now_ns.saturating_sub(max_age_ns);
    let cutoff_day = cutoff / DAY_NS;
    let expired: Vec<(u64, u64)> = store.day_rows().range(..cutoff_day).map(|(d, n)| (*d, *n)).collect();
    for (day, rows) in expired {
        store.drop_day(day)?;
        removed.expired += rows;
    }
    if store.day_rows().contains_key(&cutoff_day) {
        removed.expired += store.delete_oldest(cutoff_day, Some(cutoff), u64::MAX)?;
    }
    loop {
        let used = store.used_bytes()?;
        let rows: u64 = store.day_rows().values().sum();
        if used <= max_size || rows == 0 {
            break;
        }
        let per_row = used.div_ceil(rows).max(1);
        let mut excess = (used - max_size).div_ceil(per_row);
        while excess > 0 {
            let Some((&day, &count)) = store.day_rows().iter().next() else { break };
            if count <= excess {
                store.drop_day(day)?;
                removed.over_size += count;
                excess -= count;
            } else {
                removed.over_size += store.delete_oldest(day, None, excess)?;
                break;
            }
        }
    }
    Ok(removed)
}

impl DayTables for SqliteStore {
    fn day_rows(&self) -> &BTreeMap<u64, u64> {
        &self.days
    }

    fn limits(&self) -> (u64, u64) {
        (self.max_age_ns, self.max_size)
    }

    fn drop_day(&mut self, day: u64) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute_batch(&format!(
            "DROP TABLE IF EXISTS alerts_d{day}; DROP TABLE IF EXISTS text_d{day}; DROP TABLE IF EXISTS counts_d{day}; \
             DELETE FROM days WHERE day = {day};"
        ))?;
        tx.commit()?;
        self.days.remove(&day);
        Ok(())
    }

    /// Deletes day `day`'s alerts that come before `(time_ns, id)`, at most `limit` of them,
    /// oldest first; returns how many.
    fn delete_oldest(&mut self, day: u64, before_ns: Option<u64>, limit: u64) -> rusqlite::Result<u64> {
        let tx = self.conn.transaction()?;
        let before = before_ns.map_or(i64::MAX, ns_column);
        let limit = limit.min(i64::MAX as u64) as i64;
        let selected = format!("SELECT id FROM alerts_d{day} WHERE time_ns < ?1 ORDER BY time_ns, id LIMIT ?2");
        // The counts lose what the deleted alerts added.
        let mut removed = Rollup::default();
        {
            let mut stmt =
                tx.prepare(&format!("SELECT {} FROM alerts_d{day} WHERE id IN ({selected})", rollup_columns()))?;
            let mut rows = stmt.query(params![before, limit])?;
            while let Some(r) = rows.next()? {
                let mut values = Vec::with_capacity(ROLLUP_GROUPS.len());
                for (i, by) in ROLLUP_GROUPS.iter().enumerate() {
                    values.push((*by, r.get_ref(ROLLUP_VALUES_AT + i)?.as_str_or_null()?));
                }
                removed.add(-1, r.get::<_, i64>(0)? as u64, r.get(1)?, values, r.get_ref(2)?.as_str()?);
            }
        }
        apply_rollup(&tx, day, &removed)?;
        tx.execute(&format!("DELETE FROM text_d{day} WHERE rowid IN ({selected})"), params![before, limit])?;
        let n =
            tx.execute(&format!("DELETE FROM alerts_d{day} WHERE id IN ({selected})"), params![before, limit])? as u64;
        if n > 0 {
            tx.execute("UPDATE days SET alerts = alerts - ?1 WHERE day = ?2", params![n as i64, day as i64])?;
            // Deleted rows leave tombstones in the text index until its segments merge.
            tx.execute(&format!("INSERT INTO text_d{day}(text_d{day}) VALUES ('optimize')"), [])?;
        }
        tx.commit()?;
        if let Some(count) = self.days.get_mut(&day) {
            *count = count.saturating_sub(n);
        }
        Ok(n)
    }

    fn used_bytes(&self) -> rusqlite::Result<u64> {
        used_bytes(&self.conn)
    }
}

pub(super) enum OpenError {
    /// The file is not a store this code can write to.
    Unusable(String),
    Other(anyhow::Error),
}

impl From<anyhow::Error> for OpenError {
    fn from(e: anyhow::Error) -> Self {
        OpenError::Other(e)
    }
}

/// Opens the SQLite file at `path` with `open_checked`; one that is unusable is set aside
/// ([`set_aside`]) and a new one begun in its place. What was opened, and where the old file
/// went and why; `what` names the file in errors (`alert store`, `audit log`).
pub(super) fn open_or_set_aside<T>(
    path: &Path,
    what: &str,
    open_checked: impl Fn() -> Result<T, OpenError>,
) -> anyhow::Result<(T, Option<(PathBuf, String)>)> {
    match open_checked() {
        Ok(opened) => Ok((opened, None)),
        Err(OpenError::Other(e)) => Err(e),
        Err(OpenError::Unusable(why)) => {
            let aside = set_aside(path)?;
            let opened = open_checked().map_err(|e| match e {
                OpenError::Unusable(why) => anyhow::anyhow!("the new {what} is unusable: {why}"),
                OpenError::Other(e) => e,
            })?;
            Ok((opened, Some((aside, why))))
        }
    }
}

/// Renames the unusable SQLite file at `path` (with its `-wal` and `-shm` files) to
/// `PATH.corrupt-<unix seconds>`, so a new one can begin there; where it went.
fn set_aside(path: &Path) -> anyhow::Result<PathBuf> {
    let stamp = super::now_ns() / 1_000_000_000;
    let aside = PathBuf::from(format!("{}.corrupt-{stamp}", path.display()));
    std::fs::rename(path, &aside).with_context(|| format!("setting aside the unusable file {}", path.display()))?;
    for suffix in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{suffix}", path.display()));
        if side.exists() {
            let _ = std::fs::rename(&side, format!("{}{suffix}", aside.display()));
        }
    }
    Ok(aside)
}

/// An open error: unusable when SQLite says the file is not a database or is corrupt.
pub(super) fn unusable(e: &rusqlite::Error) -> OpenError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) => {
            OpenError::Unusable(e.to_string())
        }
        _ => OpenError::Other(anyhow::anyhow!("{e}")),
    }
}

/// The schema version a file holds (`None`: not a store yet, an empty file included).
fn schema_version(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    let has_meta: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta')",
        [],
        |r| r.get(0),
    )?;
    if !has_meta {
        return Ok(None);
    }
    conn.query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| r.get(0)).optional()
}

/// Bytes of the pages of `conn`'s file in use (free pages are reused before it grows).
pub(super) fn used_bytes(conn: &Connection) -> rusqlite::Result<u64> {
    let pragma = |name: &str| conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0));
    let used = pragma("page_count")? - pragma("freelist_count")?;
    Ok((used.max(0) as u64) * pragma("page_size")? as u64)
}

/// A bound value as SQLite takes it.
pub(super) fn sql_value(p: Param) -> SqlValue {
    match p {
        Param::Int(i) => SqlValue::Integer(i),
        Param::Text(t) => SqlValue::Text(t),
    }
}

/// Whether an error says a day's table is gone (dropped by retention since the days were
/// read).
pub(super) fn table_gone(e: &rusqlite::Error) -> bool {
    e.to_string().contains("no such table")
}

/// An FTS5 query finding alerts that hold every term: each term a phrase (quotes doubled),
/// its last token a prefix. Terms without a letter or digit have no tokens and are left to
/// the exact check alone.
pub(super) fn fts_query(terms: &[&str]) -> Option<String> {
    let phrases: Vec<String> = terms
        .iter()
        .filter(|t| t.chars().any(char::is_alphanumeric))
        .map(|t| format!("\"{}\"*", t.replace('"', "\"\"")))
        .collect();
    (!phrases.is_empty()).then(|| phrases.join(" AND "))
}

/// What an alert's rows hold besides its own fields, made before they are written.
struct Row {
    place: Placement,
    tags: String,
    /// The text of its full-text index.
    body: String,
    json: String,
}

/// A chunk's rows, with what they add to each day's counts.
struct Rows {
    rows: Vec<Row>,
    rollups: BTreeMap<u64, Rollup>,
}

impl Rows {
    fn of(alerts: &[Arc<Alert>]) -> Rows {
        let mut rollups: BTreeMap<u64, Rollup> = BTreeMap::new();
        let rows = alerts
            .iter()
            .map(|a| {
                let row = Row { place: Placement::of(a), tags: tags_column(a), body: body(a), json: a.to_json_text() };
                rollups.entry(a.time_ns / DAY_NS).or_default().add_alert(1, a, &row.place, &row.tags);
                row
            })
            .collect();
        Rows { rows, rollups }
    }
}

fn row_to_alert(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredAlert> {
    let level: i64 = r.get(2)?;
    let tags: String = r.get(11)?;
    let json: serde_json::Value = serde_json::from_str(&r.get::<_, String>(12)?).unwrap_or(serde_json::Value::Null);
    Ok(StoredAlert {
        id: r.get(0)?,
        time_ns: r.get::<_, i64>(1)? as u64,
        priority: priority_of_level(level),
        rule: r.get(3)?,
        source: r.get(4)?,
        hostname: r.get(5)?,
        container: Placement {
            container_id: r.get(6)?,
            container_name: r.get(7)?,
            image: r.get(8)?,
            namespace: r.get(9)?,
            pod: r.get(10)?,
        },
        tags: tags_of_column(&tags).map(str::to_owned).collect(),
        output: json["output"].as_str().unwrap_or_default().to_owned(),
        json,
    })
}

/// The WHERE clause of `query` over day `day`'s tables, binding its values into `args`:
/// the full-text index finds candidates for the text terms, [`Dialect::filters`] the rest.
fn filters(day: u64, query: &Query, args: &mut Vec<SqlValue>) -> String {
    let mut params = Vec::new();
    let mut clauses = Vec::new();
    if let Some(fts) = fts_query(&query.terms()) {
        let mark = Dialect::Sqlite.bind(&mut params, Param::Text(fts));
        clauses.push(format!("id IN (SELECT rowid FROM text_d{day} WHERE text_d{day} MATCH {mark})"));
    }
    clauses.push(Dialect::Sqlite.filters(query, &mut params));
    args.extend(params.into_iter().map(sql_value));
    clauses.join(" AND ")
}

impl AlertStore for SqliteStore {
    fn insert(&mut self, alerts: &[Arc<Alert>]) -> anyhow::Result<()> {
        if alerts.is_empty() {
            return Ok(());
        }
        if let Some(checkpoints) = &self.checkpoints {
            checkpoints.settle();
        }
        let tx = self.conn.transaction()?;
        let mut days = self.days.clone();
        let mut added: BTreeMap<u64, i64> = BTreeMap::new();
        let mut rollups: BTreeMap<u64, Rollup> = BTreeMap::new();
        let mut id = self.next_id;
        in_chunks(
            alerts,
            |_, chunk| Rows::of(chunk),
            |chunk, rows| {
                for (day, rollup) in rows.rollups {
                    rollups.entry(day).or_default().merge(rollup);
                }
                // The day's two inserts, looked up again only when the day changes.
                let mut inserts: Option<(u64, CachedStatement<'_>, CachedStatement<'_>)> = None;
                for (alert, row) in chunk.iter().zip(rows.rows) {
                    let day = alert.time_ns / DAY_NS;
                    if inserts.as_ref().is_none_or(|(of, ..)| *of != day) {
                        // No statement held while the day's tables may be made.
                        drop(inserts.take());
                        Self::ensure_day(&tx, &mut days, day)?;
                        inserts = Some((
                            day,
                            tx.prepare_cached(&format!(
                                "INSERT INTO alerts_d{day} (id, time_ns, priority, rule, source, hostname, \
                                 container_id, container_name, image, namespace, pod, tags, json) \
                                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
                            ))?,
                            tx.prepare_cached(&format!("INSERT INTO text_d{day} (rowid, body) VALUES (?1, ?2)"))?,
                        ));
                    }
                    let (_, insert_alert, insert_text) = inserts.as_mut().expect("prepared for this day");
                    insert_alert.execute(params![
                        id,
                        ns_column(alert.time_ns),
                        level_of(alert.priority),
                        alert.rule,
                        alert.source,
                        alert.hostname,
                        row.place.container_id,
                        row.place.container_name,
                        row.place.image,
                        row.place.namespace,
                        row.place.pod,
                        row.tags,
                        row.json,
                    ])?;
                    insert_text.execute(params![id, row.body])?;
                    *added.entry(day).or_default() += 1;
                    id += 1;
                }
                Ok(())
            },
        )?;
        for (day, rollup) in &rollups {
            apply_rollup(&tx, *day, rollup)?;
        }
        for (day, n) in &added {
            tx.prepare_cached("UPDATE days SET alerts = alerts + ?1 WHERE day = ?2")?
                .execute(params![n, *day as i64])?;
            *days.entry(*day).or_default() += *n as u64;
        }
        tx.prepare_cached("UPDATE meta SET value = ?1 WHERE key = 'next_id'")?.execute([id])?;
        tx.commit()?;
        if let Some(checkpoints) = &self.checkpoints {
            checkpoints.request();
        }
        self.days = days;
        self.next_id = id;
        Ok(())
    }

    fn search(&self, query: &Query) -> anyhow::Result<Page> {
        let limit = query.page_size();
        let direction = query.order.sql();
        let mut alerts = Vec::new();
        for day in self.days_for(query)? {
            let mut args = Vec::new();
            let sql = format!(
                "SELECT {COLUMNS} FROM alerts_d{day} WHERE {} ORDER BY time_ns {direction}, id {direction} LIMIT {}",
                filters(day, query, &mut args),
                // One more than the page, to know whether a next page exists.
                limit + 1 - alerts.len(),
            );
            let mut stmt = match self.conn.prepare(&sql) {
                Ok(stmt) => stmt,
                // The day was dropped by retention since the days were read.
                Err(e) if table_gone(&e) => continue,
                Err(e) => return Err(e.into()),
            };
            let rows = stmt.query_map(params_from_iter(args), row_to_alert)?;
            for row in rows {
                alerts.push(row?);
            }
            if alerts.len() > limit {
                break;
            }
        }
        Ok(Page::of(alerts, limit))
    }

    fn get(&self, id: i64) -> anyhow::Result<Option<StoredAlert>> {
        for day in self.stored_days()?.into_iter().rev() {
            let found = self
                .conn
                .query_row(&format!("SELECT {COLUMNS} FROM alerts_d{day} WHERE id = ?1"), [id], row_to_alert)
                .optional();
            match found {
                Ok(Some(alert)) => return Ok(Some(alert)),
                Ok(None) => {}
                Err(e) if table_gone(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }

    fn counts(&self, query: &Query, by: GroupBy) -> anyhow::Result<Vec<(String, u64)>> {
        let mut counts = HashMap::new();
        let plan = CountsPlan::of(query);
        if let Some((first_hour, end_hour)) = plan.rollup {
            self.rollup_counts(first_hour, end_hour, query.min_priority, by, &mut counts)?;
        }
        for scan in &plan.scans {
            self.scan_counts(scan, by, &mut counts)?;
        }
        Ok(sorted_counts(counts))
    }

    fn histogram(&self, query: &Query, bucket_ns: u64) -> anyhow::Result<Vec<(u64, Priority, u64)>> {
        let mut counts: HashMap<(u64, i64), u64> = HashMap::new();
        let plan = CountsPlan::with_buckets(query, bucket_ns);
        let mut run = |sql: &str, args: Vec<SqlValue>, unit: u64| -> anyhow::Result<()> {
            let mut stmt = match self.conn.prepare(sql) {
                Ok(stmt) => stmt,
                // The day was dropped by retention since the days were read.
                Err(e) if table_gone(&e) => return Ok(()),
                Err(e) => return Err(e.into()),
            };
            let mut rows = stmt.query(params_from_iter(args))?;
            while let Some(row) = rows.next()? {
                let start = row.get::<_, i64>(0)?.max(0) as u64 * unit / bucket_ns * bucket_ns;
                *counts.entry((start, row.get(1)?)).or_default() += row.get::<_, i64>(2)?.max(0) as u64;
            }
            Ok(())
        };
        if let Some((first_hour, end_hour)) = plan.rollup {
            // Every alert has one `rule` row in the counts.
            let level = query.min_priority.map_or(i64::MAX, level_of);
            let (first_day, last_day) = (first_hour * HOUR_NS / DAY_NS, (end_hour * HOUR_NS - 1) / DAY_NS);
            for day in self.stored_days()?.into_iter().filter(|d| (first_day..=last_day).contains(d)) {
                let sql = format!(
                    "SELECT hour, priority, sum(alerts) FROM counts_d{day} WHERE grp = 'rule' AND hour >= ?1 \
                     AND hour < ?2 AND priority <= ?3 GROUP BY hour, priority"
                );
                let args = vec![
                    SqlValue::Integer(ns_column(first_hour)),
                    SqlValue::Integer(ns_column(end_hour)),
                    SqlValue::Integer(level),
                ];
                run(&sql, args, HOUR_NS)?;
            }
        }
        for scan in &plan.scans {
            for day in self.days_for(scan)? {
                let mut args = Vec::new();
                let sql = format!(
                    "SELECT time_ns / {bucket_ns}, priority, count(*) FROM alerts_d{day} WHERE {} GROUP BY 1, 2",
                    filters(day, scan, &mut args)
                );
                run(&sql, args, bucket_ns)?;
            }
        }
        Ok(counts.into_iter().map(|((start, level), n)| (start, priority_of_level(level), n)).collect())
    }

    fn enforce_retention(&mut self, now_ns: u64) -> anyhow::Result<Removed> {
        self.conn.retain_runs(now_ns.saturating_sub(self.max_age_ns), now_ns)?;
        let removed = retain_days(self, now_ns);
        if let Some(checkpoints) = &self.checkpoints {
            checkpoints.request();
        }
        removed
    }

    fn benchmark_log(&self) -> &dyn BenchmarkLog {
        &self.conn
    }

    fn usage(&self) -> anyhow::Result<Usage> {
        let oldest_ns = match self.days.keys().next() {
            Some(day) => self
                .conn
                .query_row(&format!("SELECT min(time_ns) FROM alerts_d{day}"), [], |r| r.get::<_, Option<i64>>(0))?
                .map(|t| t as u64),
            None => None,
        };
        Ok(Usage { alerts: self.days.values().sum(), bytes: self.used_bytes()?, oldest_ns })
    }
}
