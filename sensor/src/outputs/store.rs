//! The alert store as an output (`store: {path: ...}` or `store: {postgres: ...}`): each batch is one transaction on a
//! blocking thread, followed by a retention pass; retention also runs on a timer, so an
//! idle store still forgets what is past `max_age`.

use std::{
    sync::{Arc, atomic::AtomicU64},
    time::Duration,
};

use tokio::task::JoinHandle;

use super::{SendError, Sink, config::BatchConfig};
use crate::{
    rules::Alert,
    store::{SharedWriter, StoreConfig},
};

/// The batch a `store` output uses unless it sets its own: a transaction per 200 ms or per
/// 5,000 alerts, whichever comes first (a commit per alert would cap the rate at the disk's
/// flushes per second).
pub const STORE_DEFAULT_BATCH: BatchConfig = BatchConfig {
    window: Duration::from_millis(200),
    max_alerts: std::num::NonZeroUsize::new(5000).expect("non-zero"),
};

/// Writes alerts into a store.
pub struct StoreSink {
    writer: SharedWriter,
    /// An attempt the output's timeout may cut short: waited for before anything else is
    /// written, so that a retry of a batch that did commit does not store it twice.
    in_flight: Option<InFlight>,
    retention: JoinHandle<()>,
    /// What opening found unusable and moved aside, for the operator.
    set_aside: Option<String>,
}

/// A batch and its transaction, running on a blocking thread.
struct InFlight {
    batch: Vec<Arc<Alert>>,
    commit: JoinHandle<anyhow::Result<()>>,
}

impl StoreSink {
    /// Opens the store (checking it, which reads the whole file: on a blocking thread) and
    /// starts its retention timer.
    pub async fn open(config: &StoreConfig) -> anyhow::Result<Self> {
        let owned = config.clone();
        let (writer, set_aside) = tokio::task::spawn_blocking(move || SharedWriter::open(&owned)).await??;
        let retention = writer.spawn_retention(config.retention_interval);
        Ok(StoreSink { writer, in_flight: None, retention, set_aside })
    }

    /// What opening found unusable and set aside, if anything.
    pub fn set_aside(&self) -> Option<&str> {
        self.set_aside.as_deref()
    }
}

impl Drop for StoreSink {
    fn drop(&mut self) {
        self.retention.abort();
    }
}

impl Sink for StoreSink {
    fn errors(&self) -> Option<Arc<AtomicU64>> {
        Some(self.writer.retention_failures())
    }

    async fn send(&mut self, alerts: &[Arc<Alert>]) -> Result<(), SendError> {
        if let Some(InFlight { batch, commit }) = self.in_flight.as_mut() {
            let outcome = commit.await;
            let same = batch.len() == alerts.len() && batch.iter().zip(alerts).all(|(a, b)| Arc::ptr_eq(a, b));
            self.in_flight = None;
            if same && matches!(outcome, Ok(Ok(()))) {
                return Ok(());
            }
        }
        let batch = alerts.to_vec();
        let writer = self.writer.clone();
        let rows = batch.clone();
        let commit = tokio::task::spawn_blocking(move || {
            writer.insert(&rows)?;
            writer.retain();
            Ok(())
        });
        let outcome = (&mut self.in_flight.insert(InFlight { batch, commit }).commit).await;
        self.in_flight = None;
        match outcome {
            Ok(Ok(())) => Ok(()),
            // A full disk, an I/O error, a lock held too long: the batch was rolled back
            // whole, and may be written later.
            Ok(Err(e)) => Err(SendError::retry(format!("{e:#}"))),
            Err(e) => Err(SendError::Permanent(format!("the store's writer stopped: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        rules::Priority,
        store::{AlertStore as _, SqliteStore},
    };

    fn alert(n: u64) -> Arc<Alert> {
        Arc::new(Alert {
            time_ns: 1_796_515_200_000_000_000 + n,
            rule: "R".into(),
            priority: Priority::Warning,
            source: "syscall".into(),
            hostname: "node".into(),
            message: format!("alert {n}"),
            tags: vec![].into(),
            fields: vec![],
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_retried_after_its_attempt_was_cut_short_is_stored_once() {
        let dir = std::env::temp_dir().join(format!("sensor-store-sink-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = StoreConfig::at(dir.join("alerts.db"));
        let mut sink = StoreSink::open(&config).await.unwrap();
        let batch: Vec<Arc<Alert>> = (0..3000).map(alert).collect();
        // Cut short as the output's timeout does: the transaction goes on without it.
        let attempt = tokio::time::timeout(Duration::from_nanos(1), sink.send(&batch)).await;
        assert!(attempt.is_err(), "the attempt was cut short");
        // The worker retries the same batch; then sends the next.
        sink.send(&batch).await.unwrap();
        sink.send(&[alert(5000)]).await.unwrap();
        drop(sink);
        let store = SqliteStore::open_read_only(&dir.join("alerts.db")).unwrap();
        assert_eq!(store.usage().unwrap().alerts, 3001, "every alert once");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
