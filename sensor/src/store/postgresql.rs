//! The cluster's store: a PostgreSQL database that the consoles of a cluster share.
//!
//! `alerts` is partitioned by day of the event time (`alerts_d<days since epoch>`) and
//! `alert_counts` (the hourly counts per grouping value, as in SQLite) likewise, so that
//! retention drops a day's partitions whole; a batch appends its count changes to
//! `alert_count_deltas`, which a thread of the writer moves into `alert_counts` (see
//! [`counts`]). Each alert keeps its distinct words (a `tsvector` the store makes itself,
//! so PostgreSQL's parser and dictionaries play no part),
//! and the words of each block of alerts written together are indexed once, with GIN, in
//! `alert_blocks` (also by day): a text search reads the alerts of the blocks holding its
//! words and keeps those whose words and JSON hold the text exactly (a `LIKE`). A word index
//! per alert cost the server more than everything else it does for an alert; a block's
//! index holds its words once. Every alert also carries the digest of its JSON,
//! unique with its time: a batch a sender retries after its first attempt did commit is
//! stored once. Alerts are written with `COPY`; a batch holding one already stored is
//! written again passing over those (see [`copy_into`]). Several writers (console
//! replicas) may share the database: partitions are made under an advisory lock, count deltas
//! are moved by one writer at a time, and one writer at a time runs retention.

mod counts;

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    sync::{Arc, Condvar, Mutex, OnceLock, PoisonError, mpsc},
    time::Duration,
};

use anyhow::{Context as _, bail};
use bytes::BufMut as _;
use postgres::{
    Client, NoTls,
    types::{IsNull, ToSql, Type, to_sql_checked},
};

use super::benchmark::BenchmarkLog;
use super::lock;
use super::rows::{
    COLUMNS, CountsPlan, DAY_NS, Dialect, HOUR_NS, Param, ROLLUP_GROUPS, ROLLUP_VALUES_AT, Rollup, WordVector, column,
    in_chunks, level_of, ns_column, priority_of_level, rollup_columns, sorted_counts, tags_column, tags_of_column,
    word_query,
};
use super::{AlertStore, GroupBy, Page, Placement, PostgresConfig, Query, Removed, StoreConfig, StoredAlert, Usage};
use crate::rules::{Alert, Priority};
#[cfg(test)]
pub(super) use counts::COUNTS_LOCK;
use counts::{COUNTS, DELTAS_TABLE};

/// The schema this code writes; a database with another is refused, but for schemas 1 and
/// 2, which [`PgStore::migrate_from_1`] and [`PgStore::migrate_from_2`] bring up to date.
const SCHEMA_VERSION: i64 = 3;
/// How long a connection may sit idle before it is checked at its next use.
const IDLE_CHECK_AFTER: Duration = Duration::from_secs(2);
/// Advisory lock keys: making partitions, and running retention (of the alerts, of the
/// audit log).
const PARTITION_LOCK: i64 = 0x5e05_0001;
const RETENTION_LOCK: i64 = 0x5e05_0002;
pub(super) const AUDIT_RETENTION_LOCK: i64 = 0x5e05_0003;
/// How many alerts, first in the page's order (of those the other filters select), a text
/// search tries, in turn, before it asks the word index.
const TEXT_PROBE_ALERTS: [usize; 2] = [5_000, 50_000];
/// The most bytes of words one block of the word index holds (a block has one alert at
/// least, whose words are at most 256 KiB): far below PostgreSQL's 1 MiB `tsvector`, and few
/// enough that a rare word's blocks hold few alerts besides.
const BLOCK_WORDS_MAX: usize = 64 * 1024;
/// The most id ranges a text search reads (the blocks holding its words, the closest ones
/// read as one range, with the alerts between them).
const TEXT_RANGES_MAX: usize = 256;
/// The word index's table (by day, as `alerts`) and its GIN index, made by `set_up` and by
/// the move from schema 2. The index takes new blocks into a list it reads whole at each
/// search until the list passes `gin_pending_list_limit`: 1 MiB (of PostgreSQL's 4 MiB
/// default) keeps that read short, for little more work per block written.
const ALERT_BLOCKS: &str = "CREATE TABLE IF NOT EXISTS alert_blocks (
         day bigint NOT NULL,
         first_id bigint NOT NULL,
         last_id bigint NOT NULL,
         words tsvector NOT NULL
     ) PARTITION BY RANGE (day);
     CREATE INDEX IF NOT EXISTS alert_blocks_words ON alert_blocks USING gin (words)
         WITH (gin_pending_list_limit = 1024);";

/// A store in a PostgreSQL database. Clones share the connections.
#[derive(Clone)]
pub struct PgStore {
    pub(super) pool: Arc<Pool>,
    pub(super) max_age_ns: u64,
    pub(super) max_size: Option<u64>,
    /// Days whose partitions exist (made here or seen).
    days: Arc<Mutex<BTreeSet<u64>>>,
    /// Days whose audit log partitions exist.
    pub(super) audit_days: Arc<Mutex<BTreeSet<u64>>>,
    /// Moves the counts' deltas, once this store has written.
    counts: Arc<OnceLock<counts::Compactor>>,
    description: String,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("database", &self.description).finish()
    }
}

/// Open connections, at most `max`.
pub(super) struct Pool {
    config: postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    /// Idle connections, with when each was last used.
    idle: Mutex<Vec<(Client, std::time::Instant)>>,
    /// Connections handed out or idle.
    open: Mutex<usize>,
    freed: Condvar,
    max: usize,
}

/// A connection from the pool; back to it when dropped, unless it broke.
pub(super) struct Conn<'p> {
    pool: &'p Pool,
    client: Option<Client>,
}

impl std::ops::Deref for Conn<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client.as_ref().expect("a connection until dropped")
    }
}

impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().expect("a connection until dropped")
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        let client = self.client.take();
        match client.filter(|c| !c.is_closed()) {
            Some(client) => lock(&self.pool.idle).push((client, std::time::Instant::now())),
            None => *lock(&self.pool.open) -= 1,
        }
        self.pool.freed.notify_one();
    }
}

impl Drop for Pool {
    /// A connection ends by running its own runtime, which a thread driving async tasks must
    /// not do: the last store's connections end on a thread of their own.
    fn drop(&mut self) {
        let idle = std::mem::take(self.idle.get_mut().unwrap_or_else(PoisonError::into_inner));
        if !idle.is_empty() {
            let _ = std::thread::Builder::new().name("pg-close".into()).spawn(move || drop(idle));
        }
    }
}

impl Pool {
    /// A connection: an idle one, a new one while fewer than `max` are open, else the next
    /// one freed (an error after 30 s).
    pub(super) fn get(&self) -> anyhow::Result<Conn<'_>> {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut open = lock(&self.open);
        loop {
            let idle = lock(&self.idle).pop();
            if let Some((mut client, since)) = idle {
                // A connection idle for a while may have been closed by the server (a restart,
                // a proxy's timeout): checked before use, replaced if it was.
                if since.elapsed() < IDLE_CHECK_AFTER || client.is_valid(Duration::from_secs(2)).is_ok() {
                    return Ok(Conn { pool: self, client: Some(client) });
                }
                *open -= 1;
                let _ = std::thread::Builder::new().name("pg-close".into()).spawn(move || drop(client));
                continue;
            }
            if *open < self.max {
                *open += 1;
                drop(open);
                return match self.connect() {
                    Ok(client) => Ok(Conn { pool: self, client: Some(client) }),
                    Err(e) => {
                        *lock(&self.open) -= 1;
                        Err(e)
                    }
                };
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                bail!("all {} database connections stayed busy for 30 s", self.max);
            }
            open = self.freed.wait_timeout(open, left).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    fn connect(&self) -> anyhow::Result<Client> {
        let client = match &self.tls {
            Some(tls) => self.config.connect(tls.clone()),
            None => self.config.connect(NoTls),
        };
        client.map_err(|e| anyhow::anyhow!("connecting to the database: {}", describe(&e)))
    }
}

/// A database error with its server message (code, detail) when it has one.
fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!(
            "{} ({}){}",
            db.message(),
            db.code().code(),
            db.detail().map(|d| format!(": {d}")).unwrap_or_default()
        ),
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            text
        }
    }
}

/// `?` for database calls: the error with its server message.
pub(super) trait Described<T> {
    fn db(self) -> anyhow::Result<T>;
}

impl<T> Described<T> for Result<T, postgres::Error> {
    fn db(self) -> anyhow::Result<T> {
        self.map_err(|e| anyhow::anyhow!(describe(&e)))
    }
}

impl PgStore {
    /// Connects, and makes the schema if the database has none. A database holding another
    /// schema version is refused.
    pub fn connect(pg: &PostgresConfig, config: &StoreConfig) -> anyhow::Result<PgStore> {
        let description = pg.describe();
        let mut pg_config: postgres::Config = pg.url.parse().map_err(|e| anyhow::anyhow!("postgres.url: {e}"))?;
        if let Some(source) = &pg.password {
            let password = source.load().context("postgres.password")?;
            pg_config.password(password.expose());
        }
        pg_config.connect_timeout(Duration::from_secs(10));
        pg_config.application_name("sensor");
        let tls = match pg_config.get_ssl_mode() {
            postgres::config::SslMode::Disable => None,
            _ => Some(tokio_postgres_rustls::MakeRustlsConnect::new(tls_config(pg.ca_file.as_deref())?)),
        };
        let pool = Arc::new(Pool {
            config: pg_config,
            tls,
            idle: Mutex::new(Vec::new()),
            open: Mutex::new(0),
            freed: Condvar::new(),
            max: pg.pool.get(),
        });
        let store = PgStore {
            pool,
            max_age_ns: config.max_age.as_nanos().min(u128::from(u64::MAX)) as u64,
            max_size: config.max_size,
            days: Arc::new(Mutex::new(BTreeSet::new())),
            audit_days: Arc::new(Mutex::new(BTreeSet::new())),
            counts: Arc::new(OnceLock::new()),
            description,
        };
        store.set_up().with_context(|| format!("the alert store {}", store.description))?;
        Ok(store)
    }

    /// The database, for messages.
    pub fn description(&self) -> &str {
        &self.description
    }

    fn set_up(&self) -> anyhow::Result<()> {
        let mut conn = self.pool.get()?;
        let mut tx = conn.transaction().db()?;
        tx.query_one("SELECT pg_advisory_xact_lock($1)", &[&PARTITION_LOCK]).db()?;
        let has_meta: bool = tx.query_one("SELECT to_regclass('sensor_store_meta') IS NOT NULL", &[]).db()?.get(0);
        if has_meta {
            let version: Option<i64> =
                tx.query_opt("SELECT value FROM sensor_store_meta WHERE key = 'schema'", &[]).db()?.map(|r| r.get(0));
            match version {
                Some(SCHEMA_VERSION) => {}
                Some(1) => {
                    Self::migrate_from_1(&mut tx)?;
                    Self::migrate_from_2(&mut tx)?;
                }
                Some(2) => Self::migrate_from_2(&mut tx)?,
                _ => bail!("the database holds alert store schema {version:?}; this sensor writes {SCHEMA_VERSION}"),
            }
        }
        tx.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS sensor_store_meta (key text PRIMARY KEY, value bigint NOT NULL);
             CREATE SEQUENCE IF NOT EXISTS alert_ids INCREMENT BY {ID_RANGE};
             CREATE TABLE IF NOT EXISTS alerts (
                 id bigint NOT NULL DEFAULT nextval('alert_ids'),
                 time_ns bigint NOT NULL,
                 json_md5 text NOT NULL,
                 priority bigint NOT NULL,
                 rule text NOT NULL,
                 source text NOT NULL,
                 hostname text NOT NULL,
                 container_id text,
                 container_name text,
                 image text,
                 namespace text,
                 pod text,
                 tags text NOT NULL,
                 words tsvector NOT NULL,
                 json text NOT NULL,
                 PRIMARY KEY (time_ns, id),
                 UNIQUE (time_ns, json_md5)
             ) PARTITION BY RANGE (time_ns);
             CREATE INDEX IF NOT EXISTS alerts_by_id ON alerts (id);
             CREATE INDEX IF NOT EXISTS alerts_by_rule ON alerts (rule, time_ns);
             {ALERT_BLOCKS}
             CREATE TABLE IF NOT EXISTS alert_counts (
                 hour bigint NOT NULL,
                 grp text NOT NULL,
                 priority bigint NOT NULL,
                 value text NOT NULL,
                 alerts bigint NOT NULL,
                 PRIMARY KEY (hour, grp, priority, value)
             ) PARTITION BY RANGE (hour);
             CREATE INDEX IF NOT EXISTS alert_counts_by_grp ON alert_counts (grp, hour);
             {DELTAS_TABLE}
             CREATE SEQUENCE IF NOT EXISTS audit_event_ids;
             CREATE TABLE IF NOT EXISTS audit_events (
                 id bigint NOT NULL DEFAULT nextval('audit_event_ids'),
                 time_ns bigint NOT NULL,
                 audit_id text NOT NULL,
                 stage text NOT NULL,
                 level text NOT NULL,
                 verb text NOT NULL,
                 user_name text NOT NULL,
                 groups text NOT NULL,
                 resource text,
                 subresource text,
                 namespace text,
                 name text,
                 code bigint,
                 source_ips text NOT NULL,
                 user_agent text,
                 words tsvector NOT NULL,
                 json text NOT NULL,
                 digest bytea NOT NULL,
                 PRIMARY KEY (time_ns, id),
                 UNIQUE (time_ns, digest)
             ) PARTITION BY RANGE (time_ns);
             CREATE INDEX IF NOT EXISTS audit_events_by_id ON audit_events (id);
             CREATE INDEX IF NOT EXISTS audit_events_by_user ON audit_events (user_name, time_ns);
             CREATE INDEX IF NOT EXISTS audit_events_words ON audit_events USING gin (words);
             CREATE TABLE IF NOT EXISTS console_sessions (
                 token_sha256 bytea PRIMARY KEY,
                 user_name text NOT NULL,
                 csrf text NOT NULL,
                 expires_ns bigint NOT NULL
             );"
        ))
        .db()?;
        // A database made before ids were taken in ranges counts by one.
        let increment: i64 = tx
            .query_one("SELECT seqincrement FROM pg_sequence WHERE seqrelid = 'alert_ids'::regclass", &[])
            .db()?
            .get(0);
        if increment != ID_RANGE {
            tx.batch_execute(&format!("ALTER SEQUENCE alert_ids INCREMENT BY {ID_RANGE}")).db()?;
        }
        tx.batch_execute(&super::benchmark::postgres_tables()).db()?;
        tx.execute(
            "INSERT INTO sensor_store_meta (key, value) VALUES ('schema', $1) ON CONFLICT (key) DO NOTHING",
            &[&SCHEMA_VERSION],
        )
        .db()?;
        tx.commit().db()?;
        drop(conn);
        *lock(&self.days) = self.stored_days()?.into_iter().collect();
        Ok(())
    }

    /// Schema 1 indexed each alert's words as text with trigrams (`pg_trgm`): a few hundred
    /// index entries per alert, which held writes to a few thousand alerts a second. Schema 2
    /// holds the same words as a `tsvector`, one entry per word (its index is schema 3's step).
    /// Runs inside `set_up`'s transaction: a failure leaves schema 1 as it was.
    fn migrate_from_1(tx: &mut postgres::Transaction<'_>) -> anyhow::Result<()> {
        log::info!("alert store: moving the alert words to schema 2 (every stored alert is rewritten once)");
        tx.batch_execute(
            "DROP INDEX IF EXISTS alerts_words;
             ALTER TABLE alerts ALTER COLUMN words TYPE tsvector
                 USING array_to_tsvector(array_remove(string_to_array(btrim(words), ' '), ''));",
        )
        .db()
        .context("moving the alert store to schema 2")?;
        tx.execute("UPDATE sensor_store_meta SET value = 2 WHERE key = 'schema'", &[]).db()?;
        Ok(())
    }

    /// Schema 2 indexed each alert's words; schema 3 indexes each block's ([`Block`]). The
    /// stored alerts become a block each: their index costs what it cost. The digest column
    /// is renamed, so that a writer of schema 2 still running (a console replica not yet
    /// upgraded) fails to write, and its senders retry through another, rather than write
    /// alerts the word index would not hold. Runs inside `set_up`'s transaction: a failure
    /// leaves schema 2 as it was.
    fn migrate_from_2(tx: &mut postgres::Transaction<'_>) -> anyhow::Result<()> {
        log::info!("alert store: moving the word index to schema 3 (every stored alert's words are indexed once)");
        tx.batch_execute(&format!(
            "DROP INDEX IF EXISTS alerts_words;
             ALTER TABLE alerts RENAME COLUMN digest TO json_md5;
             {ALERT_BLOCKS}"
        ))
        .db()
        .context("moving the alert store to schema 3")?;
        for day in partition_days_in(tx, "alerts")? {
            tx.batch_execute(&format!(
                "{} INSERT INTO alert_blocks_d{day} (day, first_id, last_id, words) \
                 SELECT {day}, id, id, words FROM alerts_d{day};",
                Self::block_partition(day)
            ))
            .db()
            .context("moving the alert store to schema 3")?;
        }
        tx.execute("UPDATE sensor_store_meta SET value = 3 WHERE key = 'schema'", &[]).db()?;
        Ok(())
    }

    /// The DDL of day `day`'s partition of the word index.
    fn block_partition(day: u64) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS alert_blocks_d{day} PARTITION OF alert_blocks FOR VALUES FROM ({day}) TO ({});",
            day + 1
        )
    }

    /// The thread moving the counts' deltas, started at the first write.
    fn compactor(&self) -> anyhow::Result<&counts::Compactor> {
        if let Some(compactor) = self.counts.get() {
            return Ok(compactor);
        }
        let started = counts::Compactor::start(self.pool.clone())?;
        Ok(self.counts.get_or_init(|| started))
    }

    /// The days with alert partitions, oldest first, as the database has them now.
    fn stored_days(&self) -> anyhow::Result<Vec<u64>> {
        self.partition_days("alerts")
    }

    /// The days with partitions (`<parent>_d<day>`) of table `parent`, oldest first.
    pub(super) fn partition_days(&self, parent: &str) -> anyhow::Result<Vec<u64>> {
        partition_days_in(&mut *self.pool.get()?, parent)
    }

    /// Makes the alert partitions of `days` that are missing.
    fn ensure_days(&self, days: &BTreeSet<u64>) -> anyhow::Result<()> {
        self.ensure_partitions(&self.days, days, |day| {
            let (from, to) = (ns_column(day * DAY_NS), ns_column((day + 1) * DAY_NS));
            format!(
                "CREATE TABLE IF NOT EXISTS alerts_d{day} PARTITION OF alerts FOR VALUES FROM ({from}) TO ({to});
                 CREATE TABLE IF NOT EXISTS alert_counts_d{day} PARTITION OF alert_counts
                     FOR VALUES FROM ({}) TO ({});
                 {}",
                day * 24,
                (day + 1) * 24,
                Self::block_partition(day)
            )
        })
    }

    /// Runs `ddl` for each day of `days` not in `known` (the partitions made here or seen),
    /// under the partition lock, then counts them known.
    pub(super) fn ensure_partitions(
        &self,
        known: &Mutex<BTreeSet<u64>>,
        days: &BTreeSet<u64>,
        ddl: impl Fn(u64) -> String,
    ) -> anyhow::Result<()> {
        let missing: Vec<u64> = {
            let known = lock(known);
            days.iter().filter(|d| !known.contains(d)).copied().collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        let mut conn = self.pool.get()?;
        let mut tx = conn.transaction().db()?;
        tx.query_one("SELECT pg_advisory_xact_lock($1)", &[&PARTITION_LOCK]).db()?;
        for day in &missing {
            tx.batch_execute(&ddl(*day)).db()?;
        }
        tx.commit().db()?;
        lock(known).extend(missing);
        Ok(())
    }

    /// Deletes the alerts of day `day` before `before_ns` (all of them: `None`) with what they
    /// added to the counts, or drops the day whole; returns how many alerts went.
    fn remove_day(tx: &mut postgres::Transaction<'_>, day: u64, before_ns: Option<u64>) -> anyhow::Result<u64> {
        let Some(before) = before_ns else {
            let n: i64 = tx.query_one(&format!("SELECT count(*) FROM alerts_d{day}"), &[]).db()?.get(0);
            tx.batch_execute(&format!("DROP TABLE IF EXISTS alerts_d{day}; DROP TABLE IF EXISTS alert_blocks_d{day};"))
                .db()?;
            counts::remove_day(tx, day)?;
            return Ok(n as u64);
        };
        let rows = tx
            .query(
                &format!("DELETE FROM alerts_d{day} WHERE time_ns < $1 RETURNING {}", rollup_columns()),
                &[&ns_column(before)],
            )
            .db()?;
        let mut removed = Rollup::default();
        for r in &rows {
            let values =
                ROLLUP_GROUPS.iter().enumerate().map(|(i, by)| (*by, r.get::<_, Option<&str>>(ROLLUP_VALUES_AT + i)));
            removed.add(-1, r.get::<_, i64>(0) as u64, r.get(1), values, r.get::<_, &str>(2));
        }
        counts::add(tx, &removed)?;
        Ok(rows.len() as u64)
    }

    /// Bytes of the alert partitions and their indexes, and of the counts and word index.
    fn used_bytes(&self) -> anyhow::Result<u64> {
        let mut conn = self.pool.get()?;
        let bytes: i64 = conn
            .query_one(
                "SELECT (coalesce(sum(pg_total_relation_size(i.inhrelid)), 0) \
                         + pg_total_relation_size('alert_count_deltas'))::bigint FROM pg_inherits i \
                 WHERE i.inhparent IN ('alerts'::regclass, 'alert_counts'::regclass, 'alert_blocks'::regclass)",
                &[],
            )
            .db()?
            .get(0);
        Ok(bytes.max(0) as u64)
    }

    /// The blocks of the word index that hold the words of `query`'s text, in its days;
    /// `None` without text (or with text of no word, which every alert's JSON is searched
    /// for).
    fn text_blocks(&self, query: &Query) -> anyhow::Result<Option<TextBlocks>> {
        let Some(words) = query.text.as_deref().and_then(word_query) else { return Ok(None) };
        let first_day = query.from_ns.map_or(0, |t| t / DAY_NS);
        let last_day = query.to_ns.map_or(u64::MAX, |t| t.saturating_sub(1) / DAY_NS);
        let mut conn = self.pool.get()?;
        let mut tx = conn.transaction().db()?;
        // A day's blocks are few rows, so the planner would read them all rather than the
        // index; but each block's words are a large value that it would decompress to test.
        tx.batch_execute("SET LOCAL enable_seqscan = off").db()?;
        let rows = tx
            .query(
                "SELECT first_id, last_id FROM alert_blocks WHERE words @@ $1::text::tsquery \
                 AND day >= $2 AND day <= $3 ORDER BY first_id",
                &[&words, &ns_column(first_day), &ns_column(last_day)],
            )
            .db()?;
        tx.commit().db()?;
        let ranges = merged_ranges(rows.iter().map(|r| (r.get(0), r.get(1))), TEXT_RANGES_MAX);
        Ok(Some(TextBlocks { span: ranges.iter().map(|(first, last)| last - first + 1).sum(), ranges }))
    }

    /// Runs `sql` with `params` (as [`Dialect::filters`] bound them).
    pub(super) fn query(&self, sql: &str, params: &[Param]) -> anyhow::Result<Vec<postgres::Row>> {
        let values: Vec<Box<dyn ToSql + Sync>> = params
            .iter()
            .map(|p| -> Box<dyn ToSql + Sync> {
                match p {
                    Param::Int(i) => Box::new(*i),
                    Param::Text(t) => Box::new(t.clone()),
                }
            })
            .collect();
        let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v.as_ref()).collect();
        let mut conn = self.pool.get()?;
        conn.query(sql, &refs).db()
    }
}

/// The console's sessions, shared by its replicas: under the SHA-256 of their token (the
/// database never keeps a token that would open a session).
impl PgStore {
    /// Keeps a new session; forgets the expired ones.
    pub fn session_start(&self, token: &str, user: &str, csrf: &str, expires_ns: u64) -> anyhow::Result<()> {
        let mut conn = self.pool.get()?;
        conn.execute("DELETE FROM console_sessions WHERE expires_ns < $1", &[&ns_column(super::now_ns())]).db()?;
        conn.execute(
            "INSERT INTO console_sessions (token_sha256, user_name, csrf, expires_ns) \
             VALUES (sha256(convert_to($1, 'UTF8')), $2, $3, $4)",
            &[&token, &user, &csrf, &ns_column(expires_ns)],
        )
        .db()?;
        Ok(())
    }

    /// The user, CSRF token and expiry of the live session of `token` at `now_ns`.
    pub fn session(&self, token: &str, now_ns: u64) -> anyhow::Result<Option<(String, String, u64)>> {
        let mut conn = self.pool.get()?;
        let row = conn
            .query_opt(
                "SELECT user_name, csrf, expires_ns FROM console_sessions \
                 WHERE token_sha256 = sha256(convert_to($1, 'UTF8')) AND expires_ns > $2",
                &[&token, &ns_column(now_ns)],
            )
            .db()?;
        Ok(row.map(|r| (r.get(0), r.get(1), r.get::<_, i64>(2) as u64)))
    }

    /// Ends the session of `token`.
    pub fn session_end(&self, token: &str) -> anyhow::Result<()> {
        let mut conn = self.pool.get()?;
        conn.execute("DELETE FROM console_sessions WHERE token_sha256 = sha256(convert_to($1, 'UTF8'))", &[&token])
            .db()?;
        Ok(())
    }
}

/// TLS to the database: the CAs of `ca_file`, else the system's roots.
fn tls_config(ca_file: Option<&std::path::Path>) -> anyhow::Result<rustls::ClientConfig> {
    crate::outputs::install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem = std::fs::read(path).with_context(|| format!("reading postgres.ca_file {}", path.display()))?;
            for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
                let cert: rustls::pki_types::CertificateDer<'static> =
                    cert.with_context(|| format!("postgres.ca_file {} is not PEM", path.display()))?;
                roots.add(cert).with_context(|| format!("postgres.ca_file {}", path.display()))?;
            }
            if roots.is_empty() {
                bail!("postgres.ca_file {} holds no certificate", path.display());
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    Ok(rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth())
}

fn row_to_alert(r: &postgres::Row) -> StoredAlert {
    let tags: &str = r.get(11);
    let json: serde_json::Value = serde_json::from_str(r.get::<_, &str>(12)).unwrap_or(serde_json::Value::Null);
    StoredAlert {
        id: r.get(0),
        time_ns: r.get::<_, i64>(1) as u64,
        priority: priority_of_level(r.get(2)),
        rule: r.get(3),
        source: r.get(4),
        hostname: r.get(5),
        container: Placement {
            container_id: r.get(6),
            container_name: r.get(7),
            image: r.get(8),
            namespace: r.get(9),
            pod: r.get(10),
        },
        tags: tags_of_column(tags).map(str::to_owned).collect(),
        output: json["output"].as_str().unwrap_or_default().to_owned(),
        json,
    }
}

/// [`PgStore::partition_days`], asked through `client` (a connection, or a transaction).
fn partition_days_in(client: &mut impl postgres::GenericClient, parent: &str) -> anyhow::Result<Vec<u64>> {
    let rows = client
        .query(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = to_regclass($1)",
            &[&parent],
        )
        .db()?;
    let prefix = format!("{parent}_d");
    let mut days: Vec<u64> =
        rows.iter().filter_map(|r| r.get::<_, String>(0).strip_prefix(&prefix)?.parse().ok()).collect();
    days.sort_unstable();
    Ok(days)
}

/// The alerts a text search reads: the id ranges of the blocks holding its words.
struct TextBlocks {
    ranges: Vec<(i64, i64)>,
    /// How many ids the ranges hold.
    span: i64,
}

impl TextBlocks {
    /// The clause (after a WHERE's others) keeping the alerts of `blocks`, if any.
    fn clause(blocks: &Option<TextBlocks>) -> String {
        match blocks {
            None => String::new(),
            Some(b) if b.ranges.is_empty() => " AND false".into(),
            Some(b) => {
                let ranges: Vec<String> =
                    b.ranges.iter().map(|(first, last)| format!("id BETWEEN {first} AND {last}")).collect();
                format!(" AND ({})", ranges.join(" OR "))
            }
        }
    }
}

/// `ranges`, ordered by their first id, with those that overlap or touch made one; when more
/// than `max` are left, those with the narrowest gaps between them are made one too (the
/// gap's ids are read with them).
pub(super) fn merged_ranges(ranges: impl IntoIterator<Item = (i64, i64)>, max: usize) -> Vec<(i64, i64)> {
    let mut merged: Vec<(i64, i64)> = Vec::new();
    for (first, last) in ranges {
        match merged.last_mut() {
            Some(previous) if first <= previous.1.saturating_add(1) => previous.1 = previous.1.max(last),
            _ => merged.push((first, last)),
        }
    }
    if merged.len() <= max.max(1) {
        return merged;
    }
    // The widest `max - 1` gaps stay gaps.
    let mut gaps: Vec<(i64, usize)> = merged.windows(2).enumerate().map(|(i, w)| (w[1].0 - w[0].1, i)).collect();
    gaps.sort_unstable_by(|a, b| b.cmp(a));
    let mut kept: Vec<usize> = gaps[..max.max(1) - 1].iter().map(|(_, i)| *i).collect();
    kept.sort_unstable();
    let mut out = Vec::with_capacity(max);
    let mut start = 0;
    for end in kept.into_iter().chain([merged.len() - 1]) {
        out.push((merged[start].0, merged[end].1));
        start = end + 1;
    }
    out
}

/// PostgreSQL's `md5()` of `json`: lowercase hex.
pub(super) fn json_digest(json: &str) -> String {
    use md5::Digest as _;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(32);
    for b in md5::Md5::digest(json.as_bytes()) {
        hex.push(char::from(HEX[usize::from(b >> 4)]));
        hex.push(char::from(HEX[usize::from(b & 15)]));
    }
    hex
}

/// The rows of one chunk of an insert: its distinct alerts, made ready to copy.
struct Chunk<'a> {
    /// Each distinct alert (an alert given twice in a batch is one alert), with where it ran.
    rows: Vec<(&'a Alert, Placement)>,
    tags: Vec<String>,
    /// Each row's id.
    ids: Vec<i64>,
    /// The rows as [`ALERT_COLUMNS`] lists their columns.
    copy: CopyRows,
    /// What the rows add to the counts, if all are new.
    rollup: Rollup,
}

/// The columns a writer gives each alert, in the order [`Chunk::of`] makes them.
const ALERT_COLUMNS: &str = "id, time_ns, priority, rule, source, hostname, container_id, container_name, image, \
                             namespace, pod, tags, json, words, json_md5";

/// How a batch is written. `COPY` costs the server less than half what an `INSERT` of the
/// same rows does (it inserts them in batches, with no conflict check before each), but
/// fails on an alert already stored (a batch a sender retried after its first attempt did
/// commit, or that another writer stores too): a batch that does is written again, its
/// chunks copied to a table of their own, then inserted passing over what is stored.
///
/// A writer uses two connections, and a third to move its counts ([`counts`]). On the
/// first, one transaction copies the batch's chunks and appends their count changes
/// ([`counts::add`]). On the second ([`IndexWriter`]), the batch's ids are taken first
/// ([`ID_RANGE`]), then a thread of its own writes each chunk's blocks of the word index as
/// the chunk's rows are made, each committed at once, all before the batch commits: the
/// server does both at the same time, and the blocks of an alert are stored before it is. A
/// block may name ids no alert was stored with (a batch that failed, an alert stored
/// already): a text search reads nothing more for them.
fn copy_into(table: &str) -> String {
    format!("COPY {table} ({ALERT_COLUMNS}) FROM STDIN (FORMAT binary)")
}

/// The second connection of a batch's writer (see [`copy_into`]).
struct IndexWriter<'p> {
    conn: Conn<'p>,
    ids: postgres::Statement,
    blocks: postgres::Statement,
}

/// Alert ids come from the `alert_ids` sequence in ranges: the sequence counts by
/// `ID_RANGE`, and each value it gives is the first of a range of that many ids, the writer's
/// alone. A batch takes its ids in one statement; a writer's ids increase, batch after batch.
/// (A writer of before, taking one value per alert, still takes ids no one else has.)
pub(super) const ID_RANGE: i64 = 1024;

impl<'p> IndexWriter<'p> {
    fn open(pool: &'p Pool) -> anyhow::Result<IndexWriter<'p>> {
        let mut conn = pool.get()?;
        let ids = conn.prepare("SELECT array_agg(nextval('alert_ids')) FROM generate_series(1, $1::int4)").db()?;
        let blocks = conn
            .prepare(
                "INSERT INTO alert_blocks (day, first_id, last_id, words) \
                 SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::tsvector[])",
            )
            .db()?;
        Ok(IndexWriter { conn, ids, blocks })
    }

    /// Takes `count` alert ids, in increasing order.
    fn take_ids(&mut self, count: usize) -> anyhow::Result<Vec<i64>> {
        let ranges = i32::try_from(count.div_ceil(ID_RANGE as usize))?;
        let firsts: Vec<i64> = self.conn.query_one(&self.ids, &[&ranges]).db()?.get(0);
        let mut ids: Vec<i64> = firsts.iter().flat_map(|first| *first..first + ID_RANGE).take(count).collect();
        ids.sort_unstable();
        if ids.len() != count {
            bail!("{} alert ids taken for {count} alerts", ids.len());
        }
        Ok(ids)
    }

    /// Writes a chunk's blocks, committed at once.
    fn write_blocks(&mut self, rows: &BlockRows) -> anyhow::Result<()> {
        if !rows.days.is_empty() {
            self.conn.execute(&self.blocks, &[&rows.days, &rows.firsts, &rows.lasts, &rows.words]).db()?;
        }
        Ok(())
    }
}

/// A chunk's blocks of the word index as rows of `alert_blocks`, column by column.
#[derive(Default)]
struct BlockRows {
    days: Vec<i64>,
    firsts: Vec<i64>,
    lasts: Vec<i64>,
    words: Vec<WordVector>,
}

impl BlockRows {
    /// The rows of `blocks`, whose alerts (`block_of` gives each alert's block) have ids
    /// `ids`.
    fn of(blocks: Vec<Block>, block_of: &[usize], ids: &[i64]) -> BlockRows {
        // Each block's ids: from its first alert's to its last's.
        let mut ranges: Vec<Option<(i64, i64)>> = vec![None; blocks.len()];
        for (block, id) in block_of.iter().zip(ids) {
            let range = &mut ranges[*block];
            *range = Some(range.map_or((*id, *id), |(first, last)| (first.min(*id), last.max(*id))));
        }
        let mut rows = BlockRows::default();
        for (block, range) in blocks.into_iter().zip(ranges) {
            if let Some((first, last)) = range {
                rows.days.push(block.day as i64);
                rows.firsts.push(first);
                rows.lasts.push(last);
                rows.words.push(block.words);
            }
        }
        rows
    }
}

/// The table a batch with alerts already stored is copied to, a chunk at a time.
const INCOMING: &str = "alerts_incoming";

/// How a batch's chunks are written.
enum Write {
    /// Copied into `alerts`.
    Copy,
    /// Copied into [`INCOMING`], then inserted into `alerts` but for the alerts stored already.
    SkipStored,
}

/// A batch's `COPY` met an alert already stored.
#[derive(Debug)]
struct AlreadyStored(String);

impl std::fmt::Display for AlreadyStored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AlreadyStored {}

/// Rows in `COPY`'s binary format (a header; each row's count of fields, then each field's
/// length and bytes; a trailer), made on the thread that makes a chunk's rows while the
/// database writes the chunk before. Each row's first field, its id, is filled in last.
struct CopyRows {
    bytes: bytes::BytesMut,
    /// Where each row's id is.
    id_at: Vec<usize>,
}

impl CopyRows {
    fn new(capacity: usize) -> CopyRows {
        let mut bytes = bytes::BytesMut::with_capacity(capacity);
        bytes.put_slice(b"PGCOPY\n\xff\r\n\0");
        bytes.put_i32(0); // flags
        bytes.put_i32(0); // the header extension's length
        CopyRows { bytes, id_at: Vec::new() }
    }

    /// Adds a row: its id (to fill in), then `fields`.
    fn row(&mut self, fields: &[(&(dyn ToSql + Sync), Type)]) -> anyhow::Result<()> {
        self.bytes.put_i16(i16::try_from(fields.len() + 1)?);
        self.bytes.put_i32(8);
        self.id_at.push(self.bytes.len());
        self.bytes.put_i64(0);
        for (value, ty) in fields {
            let at = self.bytes.len();
            self.bytes.put_i32(0);
            match value.to_sql_checked(ty, &mut self.bytes) {
                Ok(IsNull::No) => {
                    let len = i32::try_from(self.bytes.len() - at - 4).context("a column of 2 GiB")?;
                    self.bytes[at..at + 4].copy_from_slice(&len.to_be_bytes());
                }
                Ok(IsNull::Yes) => {
                    self.bytes.truncate(at);
                    self.bytes.put_i32(-1);
                }
                Err(e) => bail!("encoding a {ty} column: {e}"),
            }
        }
        Ok(())
    }

    fn finish(&mut self) {
        self.bytes.put_i16(-1);
    }

    /// Fills in the rows' `ids` (one per row, in order).
    fn set_ids(&mut self, ids: &[i64]) {
        for (at, id) in self.id_at.iter().zip(ids) {
            self.bytes[*at..at + 8].copy_from_slice(&id.to_be_bytes());
        }
    }
}

/// A `tsvector` in its binary form: the count of words, then each word's bytes ending in a
/// NUL and its count of positions (none).
impl ToSql for WordVector {
    fn to_sql(&self, _: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.put_i32(i32::try_from(self.words().len())?);
        for word in self.words() {
            out.put_slice(word.as_bytes());
            out.put_u8(0);
            out.put_u16(0);
        }
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TS_VECTOR
    }

    to_sql_checked!();
}

/// Alerts of one day written together whose words the word index holds as one entry: a text
/// search reads the alerts whose ids lie between the first and last of a block holding its
/// words (those of another writer's between them too, which its other tests then refuse).
struct Block {
    day: u64,
    words: WordVector,
}

/// The rows of `words` (of `days`) in blocks: per day, consecutive rows while their distinct
/// words stay within [`BLOCK_WORDS_MAX`] bytes. Returns the blocks and each row's block.
fn blocks_of(days: &[u64], words: &[WordVector]) -> (Vec<Block>, Vec<usize>) {
    let mut rows_of_day: std::collections::BTreeMap<u64, Vec<usize>> = std::collections::BTreeMap::new();
    for (row, day) in days.iter().enumerate() {
        rows_of_day.entry(*day).or_default().push(row);
    }
    let (mut blocks, mut block_of) = (Vec::new(), vec![0; days.len()]);
    for (day, rows) in rows_of_day {
        let mut held: foldhash::HashSet<&str> = foldhash::HashSet::default();
        let mut bytes = 0;
        let close = |held: &mut foldhash::HashSet<&str>, blocks: &mut Vec<Block>| {
            blocks.push(Block { day, words: WordVector::of_distinct(held.drain()) });
        };
        for row in rows {
            let new: usize = words[row].words().filter(|w| !held.contains(w)).map(|w| w.len() + 1).sum();
            if !held.is_empty() && bytes + new > BLOCK_WORDS_MAX {
                close(&mut held, &mut blocks);
                bytes = 0;
            }
            for word in words[row].words() {
                if held.insert(word) {
                    bytes += word.len() + 1;
                }
            }
            block_of[row] = blocks.len();
        }
        close(&mut held, &mut blocks);
    }
    (blocks, block_of)
}

impl<'a> Chunk<'a> {
    /// The distinct alerts of `alerts`, given the first of `ids`, their blocks of the word
    /// index sent to `index`.
    fn of(alerts: &'a [Arc<Alert>], ids: &[i64], index: &mpsc::Sender<BlockRows>) -> anyhow::Result<Chunk<'a>> {
        let (mut rows, mut jsons, mut digests) = (Vec::new(), Vec::new(), Vec::new());
        let mut seen = HashSet::new();
        for alert in alerts {
            let json = alert.to_json_text();
            let digest = json_digest(&json);
            if seen.insert((alert.time_ns, digest.clone())) {
                rows.push((alert.as_ref(), Placement::of(alert)));
                jsons.push(json);
                digests.push(digest);
            }
        }
        let words: Vec<WordVector> = rows.iter().map(|(a, _)| WordVector::of_alert(a)).collect();
        let days: Vec<u64> = rows.iter().map(|(a, _)| a.time_ns / DAY_NS).collect();
        let (blocks, block_of) = blocks_of(&days, &words);
        let tags: Vec<String> = rows.iter().map(|(a, _)| tags_column(a)).collect();
        let mut rollup = Rollup::default();
        for ((alert, place), tags) in rows.iter().zip(&tags) {
            rollup.add_alert(1, alert, place, tags);
        }
        let mut copy = CopyRows::new(jsons.iter().map(|j| 2 * j.len() + 512).sum());
        for (row, (alert, place)) in rows.iter().enumerate() {
            // After the id, as ALERT_COLUMNS lists them.
            copy.row(&[
                (&ns_column(alert.time_ns), Type::INT8),
                (&level_of(alert.priority), Type::INT8),
                (&alert.rule, Type::TEXT),
                (&alert.source, Type::TEXT),
                (&alert.hostname, Type::TEXT),
                (&place.container_id, Type::TEXT),
                (&place.container_name, Type::TEXT),
                (&place.image, Type::TEXT),
                (&place.namespace, Type::TEXT),
                (&place.pod, Type::TEXT),
                (&tags[row], Type::TEXT),
                (&jsons[row], Type::TEXT),
                (&words[row], Type::TS_VECTOR),
                (&digests[row], Type::TEXT),
            ])?;
        }
        copy.finish();
        let ids = ids[..rows.len()].to_vec();
        copy.set_ids(&ids);
        index
            .send(BlockRows::of(blocks, &block_of, &ids))
            .map_err(|_| anyhow::anyhow!("the word index's writer stopped"))?;
        Ok(Chunk { rows, tags, ids, copy, rollup })
    }
}

impl PgStore {
    /// Writes those of `alerts` not stored yet, in one transaction, as `how` says.
    fn write_batch(&self, alerts: &[Arc<Alert>], how: Write) -> anyhow::Result<()> {
        let mut conn = self.pool.get()?;
        let mut index = IndexWriter::open(&self.pool)?;
        let ids = index.take_ids(alerts.len())?;
        let mut tx = conn.transaction().db()?;
        // Where chunks are copied, and the insert that takes the new alerts from there.
        let (into, skip_stored) = match how {
            Write::Copy => ("alerts", None),
            Write::SkipStored => {
                tx.batch_execute(&format!("CREATE TEMPORARY TABLE {INCOMING} (LIKE alerts) ON COMMIT DROP")).db()?;
                let insert = tx
                    .prepare(&format!(
                        "INSERT INTO alerts ({ALERT_COLUMNS}) SELECT {ALERT_COLUMNS} FROM {INCOMING} \
                         ON CONFLICT (time_ns, json_md5) DO NOTHING RETURNING id"
                    ))
                    .db()?;
                (INCOMING, Some(insert))
            }
        };
        let copy = tx.prepare(&copy_into(into)).db()?;
        let mut rollup = Rollup::default();
        // The word index's blocks are written on a thread of their own, all before the
        // alerts are committed.
        std::thread::scope(|scope| {
            let (to_index, blocks) = mpsc::channel::<BlockRows>();
            let indexing = scope
                .spawn(move || -> anyhow::Result<()> { blocks.iter().try_for_each(|rows| index.write_blocks(&rows)) });
            let copied = in_chunks(
                alerts,
                |at, alerts| Chunk::of(alerts, &ids[at..], &to_index),
                |_, chunk| {
                    let mut chunk = chunk?;
                    let mut writer = tx.copy_in(&copy).db()?;
                    // The writer sends what it holds when it is full: an error then is the server's.
                    std::io::Write::write_all(&mut writer, &chunk.copy.bytes).map_err(|e| {
                        match e.get_ref().and_then(|inner| inner.downcast_ref::<postgres::Error>()) {
                            Some(e) => self.written_error(e),
                            None => anyhow::anyhow!("copying alerts: {e}"),
                        }
                    })?;
                    writer.finish().map_err(|e| self.written_error(&e))?;
                    if let Some(insert) = &skip_stored {
                        let new: HashSet<i64> = tx
                            .query(insert, &[])
                            .map_err(|e| self.written_error(&e))?
                            .iter()
                            .map(|r| r.get(0))
                            .collect();
                        tx.batch_execute(&format!("TRUNCATE {INCOMING}")).db()?;
                        // The counts of the rows another writer (or a retried batch) stored already.
                        for (row, (alert, place)) in chunk.rows.iter().enumerate() {
                            if !new.contains(&chunk.ids[row]) {
                                chunk.rollup.add_alert(-1, alert, place, &chunk.tags[row]);
                            }
                        }
                    }
                    rollup.merge(std::mem::take(&mut chunk.rollup));
                    Ok(())
                },
            );
            drop(to_index);
            let indexed = indexing.join().map_err(|_| anyhow::anyhow!("writing the word index failed"))?;
            // The index's own error first: the rows' then only says its writer stopped.
            indexed.and(copied)
        })?;
        counts::add(&mut tx, &rollup)?;
        tx.commit().db()?;
        Ok(())
    }

    /// The error `e` of writing alerts, described; an alert already stored is
    /// [`AlreadyStored`].
    fn written_error(&self, e: &postgres::Error) -> anyhow::Error {
        if describe(e).contains("no partition") {
            // Another writer's retention dropped a day this one thought it had.
            lock(&self.days).clear();
            if let Ok(days) = self.stored_days() {
                lock(&self.days).extend(days);
            }
        }
        if e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION) {
            anyhow::Error::new(AlreadyStored(describe(e)))
        } else {
            anyhow::anyhow!(describe(e))
        }
    }
}

impl AlertStore for PgStore {
    fn insert(&mut self, alerts: &[Arc<Alert>]) -> anyhow::Result<()> {
        if alerts.is_empty() {
            return Ok(());
        }
        let days: BTreeSet<u64> = alerts.iter().map(|a| a.time_ns / DAY_NS).collect();
        self.ensure_days(&days)?;
        match self.write_batch(alerts, Write::Copy) {
            Err(e) if e.is::<AlreadyStored>() => self.write_batch(alerts, Write::SkipStored),
            written => written,
        }?;
        self.compactor()?.request();
        Ok(())
    }

    fn search(&self, query: &Query) -> anyhow::Result<Page> {
        let limit = query.page_size();
        let direction = query.order.sql();
        let order = format!("ORDER BY time_ns {direction}, id {direction}");
        let blocks = self.text_blocks(query)?;
        // Text that many alerts hold is found soonest by reading alerts in the page's order,
        // and text that few hold through the word index. So unless the blocks holding the
        // text hold few alerts, the first alerts in the page's order are tried first, more of
        // them each time: a full page among them is the page, since every alert past them
        // comes after it.
        let few = blocks.as_ref().is_some_and(|b| b.span <= TEXT_PROBE_ALERTS[TEXT_PROBE_ALERTS.len() - 1] as i64);
        if query.text.is_some() && !few {
            for probe in TEXT_PROBE_ALERTS {
                let mut params = Vec::new();
                let recent = Dialect::Postgres.filters(&Query { text: None, ..query.clone() }, &mut params);
                let text =
                    Dialect::Postgres.filters(&Query { text: query.text.clone(), ..Query::default() }, &mut params);
                let sql = format!(
                    "SELECT {COLUMNS} FROM (SELECT * FROM alerts WHERE {recent} {order} LIMIT {probe}) recent \
                     WHERE {text} {order} LIMIT {}",
                    limit + 1
                );
                let alerts: Vec<StoredAlert> = self.query(&sql, &params)?.iter().map(row_to_alert).collect();
                if alerts.len() > limit {
                    return Ok(Page::of(alerts, limit));
                }
            }
        }
        let mut params = Vec::new();
        let sql = format!(
            "SELECT {COLUMNS} FROM alerts WHERE {}{} {order} LIMIT {}",
            Dialect::Postgres.filters(query, &mut params),
            TextBlocks::clause(&blocks),
            limit + 1
        );
        let alerts: Vec<StoredAlert> = self.query(&sql, &params)?.iter().map(row_to_alert).collect();
        Ok(Page::of(alerts, limit))
    }

    fn get(&self, id: i64) -> anyhow::Result<Option<StoredAlert>> {
        let rows = self.query(&format!("SELECT {COLUMNS} FROM alerts WHERE id = $1::bigint"), &[Param::Int(id)])?;
        Ok(rows.first().map(row_to_alert))
    }

    fn counts(&self, query: &Query, by: GroupBy) -> anyhow::Result<Vec<(String, u64)>> {
        let mut counts: HashMap<String, u64> = HashMap::new();
        let mut add = |value: String, n: i64| *counts.entry(value).or_default() += n.max(0) as u64;
        let plan = CountsPlan::of(query);
        if let Some((first_hour, end_hour)) = plan.rollup {
            // Every alert has one `rule` row: priorities are counted from those.
            let (grp, key) = match by {
                GroupBy::Priority => (GroupBy::Rule.name(), "priority::text"),
                other => (other.name(), "value"),
            };
            let level = query.min_priority.map_or(i64::MAX, level_of);
            let rows = self.query(
                &format!(
                    "SELECT {key}, sum(alerts)::bigint FROM {COUNTS} WHERE grp = $1::text \
                     AND hour >= $2::bigint AND hour < $3::bigint AND priority <= $4::bigint GROUP BY {key} \
                     HAVING sum(alerts) > 0"
                ),
                &[
                    Param::Text(grp.into()),
                    Param::Int(ns_column(first_hour)),
                    Param::Int(ns_column(end_hour)),
                    Param::Int(level),
                ],
            )?;
            for r in &rows {
                let value: String = r.get(0);
                let value = match by {
                    GroupBy::Priority => priority_of_level(value.parse().unwrap_or(i64::MAX)).to_string(),
                    _ => value,
                };
                add(value, r.get(1));
            }
        }
        let expression = column(by);
        let blocks = self.text_blocks(query)?;
        for scan in &plan.scans {
            let mut params = Vec::new();
            let sql = format!(
                "SELECT ({expression})::text, count(*) FROM alerts WHERE {}{} AND {expression} IS NOT NULL \
                 GROUP BY {expression}",
                Dialect::Postgres.filters(scan, &mut params),
                TextBlocks::clause(&blocks)
            );
            for r in &self.query(&sql, &params)? {
                let (value, n): (String, i64) = (r.get(0), r.get(1));
                match by {
                    GroupBy::Priority => add(priority_of_level(value.parse().unwrap_or(i64::MAX)).to_string(), n),
                    GroupBy::Tag => tags_of_column(&value).for_each(|tag| add(tag.to_owned(), n)),
                    _ => add(value, n),
                }
            }
        }
        Ok(sorted_counts(counts))
    }

    fn histogram(&self, query: &Query, bucket_ns: u64) -> anyhow::Result<Vec<(u64, Priority, u64)>> {
        let mut counts: HashMap<(u64, i64), u64> = HashMap::new();
        let mut add = |rows: Vec<postgres::Row>, unit: u64| {
            for r in rows {
                let start = r.get::<_, i64>(0).max(0) as u64 * unit / bucket_ns * bucket_ns;
                *counts.entry((start, r.get(1))).or_default() += r.get::<_, i64>(2).max(0) as u64;
            }
        };
        let plan = CountsPlan::with_buckets(query, bucket_ns);
        if let Some((first_hour, end_hour)) = plan.rollup {
            // Every alert has one `rule` row in the counts.
            let level = query.min_priority.map_or(i64::MAX, level_of);
            let rows = self.query(
                &format!(
                    "SELECT hour, priority, sum(alerts)::bigint FROM {COUNTS} WHERE grp = 'rule' \
                     AND hour >= $1::bigint AND hour < $2::bigint AND priority <= $3::bigint GROUP BY hour, priority \
                     HAVING sum(alerts) > 0"
                ),
                &[Param::Int(ns_column(first_hour)), Param::Int(ns_column(end_hour)), Param::Int(level)],
            )?;
            add(rows, HOUR_NS);
        }
        let blocks = self.text_blocks(query)?;
        for scan in &plan.scans {
            let mut params = Vec::new();
            let sql = format!(
                "SELECT time_ns / {bucket_ns}, priority, count(*) FROM alerts WHERE {}{} GROUP BY 1, 2",
                Dialect::Postgres.filters(scan, &mut params),
                TextBlocks::clause(&blocks)
            );
            add(self.query(&sql, &params)?, bucket_ns);
        }
        Ok(counts.into_iter().map(|((start, level), n)| (start, priority_of_level(level), n)).collect())
    }

    fn enforce_retention(&mut self, now_ns: u64) -> anyhow::Result<Removed> {
        let mut removed = Removed::default();
        let cutoff = now_ns.saturating_sub(self.max_age_ns);
        let cutoff_day = cutoff / DAY_NS;
        self.retain_runs(cutoff, now_ns)?;
        let days = self.stored_days()?;
        let mut conn = self.pool.get()?;
        let mut tx = conn.transaction().db()?;
        // One writer at a time: another console replica doing it now is as good.
        let ours: bool = tx.query_one("SELECT pg_try_advisory_xact_lock($1)", &[&RETENTION_LOCK]).db()?.get(0);
        if !ours {
            return Ok(removed);
        }
        for &day in days.iter().filter(|d| **d < cutoff_day) {
            removed.expired += Self::remove_day(&mut tx, day, None)?;
        }
        if days.contains(&cutoff_day) {
            removed.expired += Self::remove_day(&mut tx, cutoff_day, Some(cutoff))?;
        }
        tx.commit().db()?;
        drop(conn);
        // Over size: whole days, oldest first; the newest day is kept.
        if let Some(max_size) = self.max_size {
            let mut days: Vec<u64> = self.stored_days()?;
            while days.len() > 1 && self.used_bytes()? > max_size {
                let day = days.remove(0);
                let mut conn = self.pool.get()?;
                let mut tx = conn.transaction().db()?;
                removed.over_size += Self::remove_day(&mut tx, day, None)?;
                tx.commit().db()?;
            }
        }
        *lock(&self.days) = self.stored_days()?.into_iter().collect();
        Ok(removed)
    }

    fn benchmark_log(&self) -> &dyn BenchmarkLog {
        self
    }

    fn usage(&self) -> anyhow::Result<Usage> {
        let rows = self.query("SELECT count(*), min(time_ns) FROM alerts", &[])?;
        let (alerts, oldest): (i64, Option<i64>) = rows.first().map_or((0, None), |r| (r.get(0), r.get(1)));
        Ok(Usage { alerts: alerts.max(0) as u64, bytes: self.used_bytes()?, oldest_ns: oldest.map(|t| t as u64) })
    }
}
