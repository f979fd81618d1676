//! The hourly counts of a PostgreSQL store: a batch appends its changes to
//! `alert_count_deltas`, and a thread of the writer's own ([`Compactor`]) moves them into
//! `alert_counts` after each commit, while the writer goes on with its next batch.
//!
//! Upserting a batch's count rows in its own transaction cost the server about 6.5 µs a row
//! (about 2,950 rows per batch of 5,000 in the bench: a sixth of the batch), on the one
//! connection the batch's alerts are written through. Appending them to a table without
//! indexes costs a fraction of that, and the upserts move to another connection, which the
//! server runs on the other core. A count is what `alert_counts` and the deltas add up to
//! ([`COUNTS`]): a move is one transaction, so a reader never sees a batch's alerts without
//! their counts, nor a change counted twice.

use std::sync::{Arc, mpsc};

use super::{Described as _, Pool};
use crate::store::rows::Rollup;

/// The deltas' table, made by `set_up` (a database of before gets it at its next start: a
/// writer of before, which still upserts `alert_counts` itself, counts right beside it).
pub(super) const DELTAS_TABLE: &str = "CREATE TABLE IF NOT EXISTS alert_count_deltas (
         hour bigint NOT NULL,
         grp text NOT NULL,
         priority bigint NOT NULL,
         value text NOT NULL,
         alerts bigint NOT NULL
     );";

/// The counts as readers take them: the moved ones and those still waiting, summed by the
/// reader's `GROUP BY`, which keeps the sums above 0 (a count the deltas bring to 0 goes when
/// they are moved).
pub(super) const COUNTS: &str = "(SELECT hour, grp, priority, value, alerts FROM alert_counts \
     UNION ALL SELECT hour, grp, priority, value, alerts FROM alert_count_deltas) counts";

/// Advisory lock key: moving the deltas, and removing a day's counts (retention). One writer
/// moves them at a time; another finding the lock taken leaves the deltas to it.
pub(in crate::store) const COUNTS_LOCK: i64 = 0x5e05_0004;

/// Appends `rollup`'s changes to the deltas, inside the caller's transaction.
pub(super) fn add(tx: &mut postgres::Transaction<'_>, rollup: &Rollup) -> anyhow::Result<()> {
    let (mut hours, mut groups, mut levels, mut values, mut deltas) = (vec![], vec![], vec![], vec![], vec![]);
    for ((grp, hour, level, value), delta) in rollup.changes() {
        hours.push(hour);
        groups.push(grp);
        levels.push(level);
        values.push(value);
        deltas.push(delta);
    }
    if !hours.is_empty() {
        tx.execute(
            "INSERT INTO alert_count_deltas (hour, grp, priority, value, alerts) \
             SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::bigint[])",
            &[&hours, &groups, &levels, &values, &deltas],
        )
        .db()?;
    }
    Ok(())
}

/// Removes the counts of day `day` (its count partition goes with its alerts), inside the
/// caller's transaction: the deltas' lock first, so that no move is under way.
pub(super) fn remove_day(tx: &mut postgres::Transaction<'_>, day: u64) -> anyhow::Result<()> {
    tx.query_one("SELECT pg_advisory_xact_lock($1)", &[&COUNTS_LOCK]).db()?;
    tx.batch_execute(&format!(
        "DROP TABLE IF EXISTS alert_counts_d{day}; \
         DELETE FROM alert_count_deltas WHERE hour >= {} AND hour < {};",
        day * 24,
        (day + 1) * 24
    ))
    .db()
}

/// Moves every delta into `alert_counts`, in one transaction; returns how many delta rows
/// it moved (0 when another writer is moving them). Count rows are upserted in key order, and
/// those left at 0 go. The deltas of a day whose counts are gone (removed by a writer of
/// before, which knew no deltas) go with nothing counted: a day's alerts went with them.
pub(super) fn compact(client: &mut postgres::Client) -> anyhow::Result<u64> {
    let mut tx = client.transaction().db()?;
    let ours: bool = tx.query_one("SELECT pg_try_advisory_xact_lock($1)", &[&COUNTS_LOCK]).db()?.get(0);
    if !ours {
        return Ok(0);
    }
    let moved = tx
        .query_one(
            "WITH moved AS (DELETE FROM alert_count_deltas RETURNING hour, grp, priority, value, alerts),
                  days AS (SELECT substr(c.relname, 15)::bigint AS day FROM pg_inherits i
                           JOIN pg_class c ON c.oid = i.inhrelid
                           WHERE i.inhparent = 'alert_counts'::regclass AND c.relname ~ '^alert_counts_d[0-9]+$'),
                  summed AS (SELECT hour, grp, priority, value, sum(alerts)::bigint AS alerts
                             FROM moved WHERE hour / 24 IN (SELECT day FROM days)
                             GROUP BY hour, grp, priority, value),
                  counted AS (INSERT INTO alert_counts (hour, grp, priority, value, alerts)
                              SELECT * FROM summed ORDER BY hour, grp, priority, value
                              ON CONFLICT (hour, grp, priority, value)
                              DO UPDATE SET alerts = alert_counts.alerts + excluded.alerts
                              RETURNING alerts)
             SELECT (SELECT count(*) FROM moved), count(*) FILTER (WHERE alerts <= 0) FROM counted",
            &[],
        )
        .db()?;
    let (moved, emptied): (i64, i64) = (moved.get(0), moved.get(1));
    if emptied > 0 {
        tx.execute("DELETE FROM alert_counts WHERE alerts <= 0", &[]).db()?;
    }
    tx.commit().db()?;
    Ok(moved.max(0) as u64)
}

/// The thread that moves the deltas, woken after each commit ([`Compactor::request`]). A
/// move that fails (the database away, a day removed by a writer of before) is logged and
/// tried again at the next request: until then the deltas still count.
pub(super) struct Compactor {
    wake: Option<mpsc::SyncSender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Compactor {
    pub fn start(pool: Arc<Pool>) -> anyhow::Result<Compactor> {
        // One request waits while a move runs: those made meanwhile are the same request.
        let (wake, woken) = mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new().name("store-counts".into()).spawn(move || {
            for () in woken {
                if let Err(e) = pool.get().and_then(|mut conn| compact(&mut conn)) {
                    log::warn!("alert store: moving the counts' deltas: {e:#}");
                }
            }
        })?;
        Ok(Compactor { wake: Some(wake), thread: Some(thread) })
    }

    /// Asks for a move (it runs at once, or after the one under way).
    pub fn request(&self) {
        if let Some(wake) = &self.wake {
            let _ = wake.try_send(());
        }
    }
}

impl Drop for Compactor {
    /// Runs the move asked for, if any, then stops.
    fn drop(&mut self) {
        drop(self.wake.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
