//! Copies a SQLite store's write-ahead log into its database file on a thread of its own.
//!
//! SQLite's own checkpoint runs inside the commit that passes its threshold: about a sixth of
//! the writer's time at full rate, during which it makes no rows. With it turned off on the
//! writer's connection, each commit wakes this thread instead, which copies what the log holds
//! through a connection of its own while the writer goes on.
//!
//! The log starts again from its beginning only when a transaction begins with all of it
//! copied. A writer that never waits would keep it growing, one batch ahead of the copy, so
//! once the log holds [`RESTART_PAGES`] pages the writer waits for the copy under way
//! ([`Checkpointer::settle`]) before its next transaction: the log stays within about that
//! size plus one batch, as with SQLite's own checkpoint (a reader holding an old snapshot
//! still keeps it from starting again, as it did).

use std::{
    path::Path,
    sync::{Arc, Condvar, Mutex},
};

use super::lock;

/// The log's size, in pages, past which the writer waits for the copy under way before its
/// next transaction (64 MiB of 4 KiB pages: `journal_size_limit` truncates the file back to
/// that size once the log starts again).
pub(super) const RESTART_PAGES: i64 = 16_384;

/// The most commits the writer runs ahead of the copies.
const COMMITS_AHEAD: u64 = 2;

struct Progress {
    /// Commits that asked for a copy.
    requested: u64,
    /// The commits copied: all those up to this one.
    copied: u64,
    /// The log's pages at the last copy.
    log_pages: i64,
    stop: bool,
}

pub(super) struct Checkpointer {
    progress: Arc<(Mutex<Progress>, Condvar)>,
    /// The log's size past which [`Checkpointer::settle`] waits for the copy under way.
    restart_pages: i64,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts copying the log of the store at `path` (already in WAL mode); the writer
    /// waits once it holds `restart_pages` ([`RESTART_PAGES`]).
    pub fn start(path: &Path, restart_pages: i64) -> anyhow::Result<Checkpointer> {
        let conn = rusqlite::Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let progress = Progress { requested: 0, copied: 0, log_pages: 0, stop: false };
        let progress = Arc::new((Mutex::new(progress), Condvar::new()));
        let shared = progress.clone();
        let thread = std::thread::Builder::new().name("store-checkpoint".into()).spawn(move || {
            let (state, changed) = &*shared;
            loop {
                let target = {
                    let p = changed
                        .wait_while(lock(state), |p| p.requested == p.copied && !p.stop)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    if p.stop {
                        return;
                    }
                    p.requested
                };
                // A passive copy never waits for the writer or readers: what it cannot copy
                // now, the next one does. It fails only as a write would (a full disk), and
                // the log keeps what it could not copy.
                let log_pages =
                    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1)).unwrap_or_else(|e| {
                        log::debug!("alert store: copying the write-ahead log: {e}");
                        -1
                    });
                let mut p = lock(state);
                p.copied = target;
                if log_pages >= 0 {
                    p.log_pages = log_pages;
                }
                changed.notify_all();
            }
        })?;
        Ok(Checkpointer { progress, restart_pages, thread: Some(thread) })
    }

    /// Asks for a copy of what the writer committed.
    pub fn request(&self) {
        let (state, changed) = &*self.progress;
        lock(state).requested += 1;
        changed.notify_all();
    }

    /// Before a transaction: waits for the copy under way if the log has reached its
    /// restart size, so that this transaction starts it again; and otherwise while the copies
    /// lag more than [`COMMITS_AHEAD`] commits behind (a copying thread held off the
    /// processor), so that the size the last copy saw stays within that many of the log's.
    pub fn settle(&self) {
        let (state, changed) = &*self.progress;
        let p = lock(state);
        let restart = p.log_pages >= self.restart_pages;
        let lag = if restart { 0 } else { COMMITS_AHEAD };
        let mut p = changed
            .wait_while(p, |p| p.requested - p.copied > lag && !p.stop)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if restart {
            // Known again at the next copy, after the restart.
            p.log_pages = 0;
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let (state, changed) = &*self.progress;
        lock(state).stop = true;
        changed.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_is_copied_into_the_file_and_starts_again_at_its_limit() {
        let dir = crate::test_dir::TestDir::new("checkpointer");
        let path = dir.0.join("db");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        conn.execute_batch("CREATE TABLE t (x BLOB)").unwrap();
        let (limit, written) = (64, 40);
        let checkpoints = Checkpointer::start(&path, limit).unwrap();
        let mut largest_log = 0;
        for _ in 0..50 {
            checkpoints.settle();
            // About `written` pages a transaction.
            conn.execute_batch(&format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {written}) \
                 INSERT INTO t SELECT randomblob(3900) FROM n"
            ))
            .unwrap();
            checkpoints.request();
            largest_log = largest_log.max(std::fs::metadata(dir.0.join("db-wal")).unwrap().len());
        }
        // The log grew to its limit and at most four transactions past it (those written
        // while the copies that find it long run), never to what was written.
        let page = 4096 + 24;
        assert!(largest_log <= (limit + 4 * (written + 2)) as u64 * page, "log of {largest_log} bytes");
        assert!(largest_log >= (limit as u64) * page, "log of {largest_log} bytes: the limit was never reached");
        // What the log held is in the file, with the writer's connection still open (but for
        // the last transactions, maybe).
        drop(checkpoints);
        let file = std::fs::metadata(&path).unwrap().len();
        assert!(file >= 45 * written as u64 * 3900, "file of {file} bytes");
    }
}
