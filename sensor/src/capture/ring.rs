//! One reader task per ring buffer.
//!
//! The kernel side wakes a reader only every so many bytes, so the reader also drains on
//! a short timer. Each drain copies up to [`BATCH_BYTES`] of records out and sends them as
//! one batch; when the consumer is slow, sending waits, the ring fills, and the kernel
//! counts what it loses (or sheds): what waits in user space is bounded in bytes, at most
//! [`BACKLOG_BATCHES`] batches.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use super::backlog::Backlog;
use aya::maps::{Map, MapData, RingBuf};
use bytes::Bytes;
use tokio::{
    io::{Interest, unix::AsyncFd},
    sync::mpsc,
    task::JoinHandle,
};

/// Most record bytes in one batch.
pub(super) const BATCH_BYTES: usize = 256 << 10;
/// Most batches waiting for the pipeline, over all readers: with [`BATCH_BYTES`], 32 MiB,
/// which absorbs a few seconds of a storm of the records never held back (execs) while the
/// pipeline catches up. The kernel weighs what waits here ([`super::backlog`]), so a flood
/// is held back before it fills this.
pub(super) const BACKLOG_BATCHES: usize = 128;

/// What one reader task needs besides its ring.
pub(super) struct Reader {
    /// Where batches go.
    pub tx: mpsc::Sender<Vec<Bytes>>,
    /// How often the ring is drained without a wake-up.
    pub poll: Duration,
    /// Record bytes read from this ring.
    pub consumed: Arc<AtomicU64>,
    /// What waits in user space, batches being sent included.
    pub backlog: Arc<Backlog>,
}

impl Reader {
    /// Starts reading the ring buffer `map`.
    pub(super) fn spawn(self, map: Map) -> Result<JoinHandle<()>, super::CaptureError> {
        let Reader { tx, poll, consumed, backlog } = self;
        let ring = RingBuf::try_from(map).map_err(|source| super::CaptureError::Map { map: "ring", source })?;
        // SAFETY: the RingBuf owns its map fd and keeps it open for as long as the AsyncFd
        // owns the RingBuf.
        let mut fd = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
            .map_err(|e| super::CaptureError::Poll(e.into()))?;
        Ok(tokio::spawn(async move {
            let mut tick = tokio::time::interval(poll);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut more = false;
            loop {
                // A drain cut at its bound goes on at once; otherwise wait for data.
                if !more {
                    tokio::select! {
                        ready = fd.readable_mut() => match ready {
                            Ok(mut guard) => guard.clear_ready(),
                            Err(e) => {
                                log::error!("ring buffer poll failed: {e}");
                                return;
                            }
                        },
                        _ = tick.tick() => {}
                    }
                }
                let batch;
                (batch, more) = drain(fd.get_mut());
                if batch.is_empty() {
                    continue;
                }
                let bytes = batch.iter().map(|r| r.len() as u64).sum();
                consumed.fetch_add(bytes, Ordering::Relaxed);
                backlog.read(bytes);
                if tx.send(batch).await.is_err() {
                    return;
                }
            }
        }))
    }
}

/// Copies the available records out of the ring, up to [`BATCH_BYTES`]; returns them and
/// whether it stopped at that bound.
fn drain(ring: &mut RingBuf<MapData>) -> (Vec<Bytes>, bool) {
    let mut batch = Vec::new();
    let mut bytes = 0;
    while bytes < BATCH_BYTES {
        let Some(item) = ring.next() else { return (batch, false) };
        bytes += item.len();
        batch.push(Bytes::copy_from_slice(&item));
    }
    (batch, true)
}
