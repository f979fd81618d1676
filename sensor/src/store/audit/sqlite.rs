//! The audit log in a SQLite file of its own (WAL mode: searches read while the source
//! writes). As in the alert store, events live in one table per UTC day of their time
//! (`audit_d<days since epoch>`) with a full-text index beside it (`audit_text_d<N>`), so
//! that retention drops a day whole, and a search walks the days in its order.

use std::{collections::BTreeMap, path::Path};

use anyhow::{Context as _, bail};
use rusqlite::{Connection, OpenFlags, OptionalExtension as _, params, params_from_iter, types::Value as SqlValue};

use super::{AuditLog, AuditPage, AuditQuery, AuditRecord, COLUMNS, list_column, list_of_column};
use crate::store::rows::{DAY_NS, Dialect, Param, ns_column};
use crate::store::sqlite::{
    DayTables, OpenError, fts_query, open_or_set_aside, retain_days, sql_value, table_gone, unusable, used_bytes,
};
use crate::store::{Order, Removed, StoreConfig, Usage};

/// The schema this code writes; a file with another is refused.
const SCHEMA_VERSION: i64 = 1;

/// An audit log in a SQLite file.
pub struct SqliteAuditLog {
    conn: Connection,
    max_age_ns: u64,
    max_size: u64,
    /// The days that have tables, with their event counts (`audit_days`, cached).
    days: BTreeMap<u64, u64>,
}

impl SqliteAuditLog {
    /// Opens (or creates) the log for writing.
    pub fn open(path: &Path, config: &StoreConfig) -> anyhow::Result<(SqliteAuditLog, Option<String>)> {
        let (log, set_aside) = open_or_set_aside(path, "audit log", || Self::open_checked(path, config))?;
        let message = set_aside.map(|(aside, why)| {
            format!(
                "the audit log {} was unusable ({why}); it was moved to {} and a new log begun",
                path.display(),
                aside.display()
            )
        });
        Ok((log, message))
    }

    /// [`SqliteAuditLog::open`] without setting anything aside: a file that is not an audit
    /// log of this schema, or fails SQLite's integrity check, is unusable.
    fn open_checked(path: &Path, config: &StoreConfig) -> Result<SqliteAuditLog, OpenError> {
        let conn = Connection::open(path).with_context(|| format!("opening the audit log {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(anyhow::Error::from)?;
        let check: String = conn.query_row("PRAGMA quick_check(1)", [], |r| r.get(0)).map_err(|e| unusable(&e))?;
        if check != "ok" {
            return Err(OpenError::Unusable(format!("SQLite's integrity check: {check}")));
        }
        let setup = || -> rusqlite::Result<Option<i64>> {
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn.pragma_update(None, "journal_size_limit", 64 << 20)?;
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS audit_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
                 CREATE TABLE IF NOT EXISTS audit_days (day INTEGER PRIMARY KEY, events INTEGER NOT NULL);",
            )?;
            conn.execute("INSERT OR IGNORE INTO audit_meta (key, value) VALUES ('schema', ?1)", [SCHEMA_VERSION])?;
            conn.execute("INSERT OR IGNORE INTO audit_meta (key, value) VALUES ('next_id', 1)", [])?;
            conn.query_row("SELECT value FROM audit_meta WHERE key = 'schema'", [], |r| r.get(0)).optional()
        };
        let version = setup().map_err(|e| match unusable(&e) {
            OpenError::Other(e) => OpenError::Other(e.context(format!("setting up the audit log {}", path.display()))),
            unusable => unusable,
        })?;
        if version != Some(SCHEMA_VERSION) {
            return Err(OpenError::Unusable(format!(
                "audit log schema {version:?}; this sensor writes {SCHEMA_VERSION}"
            )));
        }
        Ok(Self::with(conn, path, config.max_age.as_nanos().min(u128::from(u64::MAX)) as u64, config.max_size)?)
    }

    /// Opens an existing log to read (`sensor audit search`, the console); never writes.
    pub fn open_read_only(path: &Path) -> anyhow::Result<SqliteAuditLog> {
        if !path.exists() {
            bail!("no audit log at {}", path.display());
        }
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .with_context(|| format!("opening the audit log {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let version: Option<i64> = conn
            .query_row("SELECT value FROM audit_meta WHERE key = 'schema'", [], |r| r.get(0))
            .optional()
            .unwrap_or(None);
        if version != Some(SCHEMA_VERSION) {
            bail!("{} is not an audit log of this sensor", path.display());
        }
        Self::with(conn, path, u64::MAX, None)
    }

    fn with(conn: Connection, path: &Path, max_age_ns: u64, max_size: Option<u64>) -> anyhow::Result<Self> {
        let mut log =
            SqliteAuditLog { conn, max_age_ns, max_size: max_size.unwrap_or(u64::MAX), days: BTreeMap::new() };
        log.days = log.stored_days().with_context(|| format!("reading the audit log {}", path.display()))?;
        Ok(log)
    }

    /// The days with events and their counts, as the file has them now.
    fn stored_days(&self) -> rusqlite::Result<BTreeMap<u64, u64>> {
        let mut stmt = self.conn.prepare_cached("SELECT day, events FROM audit_days ORDER BY day")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)?.max(0) as u64)))?;
        rows.collect()
    }

    /// Creates day `day`'s tables if they are missing (inside the caller's transaction).
    fn ensure_day(conn: &Connection, days: &mut BTreeMap<u64, u64>, day: u64) -> rusqlite::Result<()> {
        if days.contains_key(&day) {
            return Ok(());
        }
        conn.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS audit_d{day} (
                 id INTEGER PRIMARY KEY,
                 time_ns INTEGER NOT NULL,
                 audit_id TEXT NOT NULL,
                 stage TEXT NOT NULL,
                 level TEXT NOT NULL,
                 verb TEXT NOT NULL,
                 user_name TEXT NOT NULL,
                 groups TEXT NOT NULL,
                 resource TEXT,
                 subresource TEXT,
                 namespace TEXT,
                 name TEXT,
                 code INTEGER,
                 source_ips TEXT NOT NULL,
                 user_agent TEXT,
                 json TEXT NOT NULL,
                 digest BLOB NOT NULL,
                 UNIQUE (time_ns, digest)
             );
             CREATE INDEX IF NOT EXISTS audit_d{day}_time ON audit_d{day} (time_ns, id);
             CREATE INDEX IF NOT EXISTS audit_d{day}_user ON audit_d{day} (user_name, time_ns);
             CREATE VIRTUAL TABLE IF NOT EXISTS audit_text_d{day} USING fts5(
                 body, content = '', contentless_delete = 1, tokenize = 'unicode61 remove_diacritics 2'
             );
             INSERT OR IGNORE INTO audit_days (day, events) VALUES ({day}, 0);"
        ))?;
        days.insert(day, 0);
        Ok(())
    }

    /// The days a query may find events in, in its order.
    fn days_for(&self, query: &AuditQuery) -> rusqlite::Result<Vec<u64>> {
        let first = query.from_ns.map_or(0, |t| t / DAY_NS);
        let last = query.to_ns.map_or(u64::MAX, |t| t.saturating_sub(1) / DAY_NS);
        let after = query.after.map(|c| c.time_ns / DAY_NS);
        let days = self.stored_days()?.into_keys().filter(|d| (first..=last).contains(d));
        Ok(match query.order {
            Order::NewestFirst => days.rev().filter(|d| after.is_none_or(|a| *d <= a)).collect(),
            Order::OldestFirst => days.filter(|d| after.is_none_or(|a| *d >= a)).collect(),
        })
    }
}

impl DayTables for SqliteAuditLog {
    fn day_rows(&self) -> &BTreeMap<u64, u64> {
        &self.days
    }

    fn limits(&self) -> (u64, u64) {
        (self.max_age_ns, self.max_size)
    }

    fn drop_day(&mut self, day: u64) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute_batch(&format!(
            "DROP TABLE IF EXISTS audit_d{day}; DROP TABLE IF EXISTS audit_text_d{day}; \
             DELETE FROM audit_days WHERE day = {day};"
        ))?;
        tx.commit()?;
        self.days.remove(&day);
        Ok(())
    }

    /// Deletes day `day`'s events before `before_ns`, at most `limit`, oldest first.
    fn delete_oldest(&mut self, day: u64, before_ns: Option<u64>, limit: u64) -> rusqlite::Result<u64> {
        let tx = self.conn.transaction()?;
        let before = before_ns.map_or(i64::MAX, ns_column);
        let limit = limit.min(i64::MAX as u64) as i64;
        let selected = format!("SELECT id FROM audit_d{day} WHERE time_ns < ?1 ORDER BY time_ns, id LIMIT ?2");
        tx.execute(&format!("DELETE FROM audit_text_d{day} WHERE rowid IN ({selected})"), params![before, limit])?;
        let n =
            tx.execute(&format!("DELETE FROM audit_d{day} WHERE id IN ({selected})"), params![before, limit])? as u64;
        if n > 0 {
            tx.execute("UPDATE audit_days SET events = events - ?1 WHERE day = ?2", params![n as i64, day as i64])?;
            tx.execute(&format!("INSERT INTO audit_text_d{day}(audit_text_d{day}) VALUES ('optimize')"), [])?;
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

/// The WHERE clause of `query` over day `day`'s tables, binding into `args`.
fn filters(day: u64, query: &AuditQuery, args: &mut Vec<SqlValue>) -> String {
    let mut params = Vec::new();
    let mut clauses = Vec::new();
    if let Some(fts) = fts_query(&query.terms()) {
        let mark = Dialect::Sqlite.bind(&mut params, Param::Text(fts));
        clauses.push(format!("id IN (SELECT rowid FROM audit_text_d{day} WHERE audit_text_d{day} MATCH {mark})"));
    }
    clauses.push(query.filters(Dialect::Sqlite, &mut params));
    args.extend(params.into_iter().map(sql_value));
    clauses.join(" AND ")
}

fn row_to_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRecord> {
    Ok(AuditRecord {
        id: r.get(0)?,
        time_ns: r.get::<_, i64>(1)?.max(0) as u64,
        audit_id: r.get(2)?,
        stage: r.get(3)?,
        level: r.get(4)?,
        verb: r.get(5)?,
        user: r.get(6)?,
        groups: list_of_column(&r.get::<_, String>(7)?),
        resource: r.get(8)?,
        subresource: r.get(9)?,
        namespace: r.get(10)?,
        name: r.get(11)?,
        code: r.get(12)?,
        source_ips: list_of_column(&r.get::<_, String>(13)?),
        user_agent: r.get(14)?,
        json: serde_json::from_str(&r.get::<_, String>(15)?).unwrap_or(serde_json::Value::Null),
    })
}

impl AuditLog for SqliteAuditLog {
    fn insert_audit(&mut self, events: &[AuditRecord]) -> anyhow::Result<u64> {
        if events.is_empty() {
            return Ok(0);
        }
        let tx = self.conn.transaction()?;
        let mut days = self.days.clone();
        let mut added: BTreeMap<u64, i64> = BTreeMap::new();
        let mut id: i64 = tx.query_row("SELECT value FROM audit_meta WHERE key = 'next_id'", [], |r| r.get(0))?;
        for event in events {
            let (json, digest) = event.json_and_digest();
            let day = event.time_ns / DAY_NS;
            Self::ensure_day(&tx, &mut days, day)?;
            let new = tx
                .prepare_cached(&format!(
                    "INSERT OR IGNORE INTO audit_d{day} (id, time_ns, audit_id, stage, level, verb, user_name, groups, \
                     resource, subresource, namespace, name, code, source_ips, user_agent, json, digest) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
                ))?
                .execute(params![
                    id,
                    ns_column(event.time_ns),
                    event.audit_id,
                    event.stage,
                    event.level,
                    event.verb,
                    event.user,
                    list_column(&event.groups),
                    event.resource,
                    event.subresource,
                    event.namespace,
                    event.name,
                    event.code,
                    list_column(&event.source_ips),
                    event.user_agent,
                    json,
                    digest,
                ])?;
            if new == 0 {
                continue;
            }
            tx.prepare_cached(&format!("INSERT INTO audit_text_d{day} (rowid, body) VALUES (?1, ?2)"))?
                .execute(params![id, event.body()])?;
            *added.entry(day).or_default() += 1;
            id += 1;
        }
        for (day, n) in &added {
            tx.prepare_cached("UPDATE audit_days SET events = events + ?1 WHERE day = ?2")?
                .execute(params![n, *day as i64])?;
            *days.entry(*day).or_default() += *n as u64;
        }
        tx.prepare_cached("UPDATE audit_meta SET value = ?1 WHERE key = 'next_id'")?.execute([id])?;
        tx.commit()?;
        self.days = days;
        Ok(added.values().sum::<i64>() as u64)
    }

    fn search_audit(&self, query: &AuditQuery) -> anyhow::Result<AuditPage> {
        let limit = query.page_size();
        let direction = query.order.sql();
        let mut events = Vec::new();
        for day in self.days_for(query)? {
            let mut args = Vec::new();
            let sql = format!(
                "SELECT {COLUMNS} FROM audit_d{day} WHERE {} ORDER BY time_ns {direction}, id {direction} LIMIT {}",
                filters(day, query, &mut args),
                limit + 1 - events.len(),
            );
            let mut stmt = match self.conn.prepare(&sql) {
                Ok(stmt) => stmt,
                Err(e) if table_gone(&e) => continue,
                Err(e) => return Err(e.into()),
            };
            for row in stmt.query_map(params_from_iter(args), row_to_record)? {
                events.push(row?);
            }
            if events.len() > limit {
                break;
            }
        }
        Ok(AuditPage::of(events, limit))
    }

    fn get_audit(&self, id: i64) -> anyhow::Result<Option<AuditRecord>> {
        for day in self.stored_days()?.into_keys().rev() {
            let sql = format!("SELECT {COLUMNS} FROM audit_d{day} WHERE id = ?1");
            match self.conn.query_row(&sql, [id], row_to_record).optional() {
                Ok(Some(event)) => return Ok(Some(event)),
                Ok(None) => {}
                Err(e) if table_gone(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }

    fn retain_audit(&mut self, now_ns: u64) -> anyhow::Result<Removed> {
        retain_days(self, now_ns)
    }

    fn audit_usage(&self) -> anyhow::Result<Usage> {
        let days = self.stored_days()?;
        let oldest_ns = match days.keys().next() {
            Some(day) => self
                .conn
                .query_row(&format!("SELECT min(time_ns) FROM audit_d{day}"), [], |r| r.get::<_, Option<i64>>(0))?
                .map(|t| t.max(0) as u64),
            None => None,
        };
        Ok(Usage { alerts: days.values().sum(), bytes: DayTables::used_bytes(self)?, oldest_ns })
    }
}

impl std::fmt::Debug for SqliteAuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteAuditLog").field("days", &self.days.len()).finish()
    }
}
