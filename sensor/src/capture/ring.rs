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
/// which absorbs a few seconds of a storm beyond the ring while the pipeline catches up.
pub(super) const BACKLOG_BATCHES: usize = 128;

/// Starts reading the ring buffer `map` into `tx`, adding the bytes of each record read
/// to `consumed`.
pub(super) fn spawn_reader(
    map: Map,
    tx: mpsc::Sender<Vec<Bytes>>,
    poll: Duration,
    consumed: Arc<AtomicU64>,
) -> Result<JoinHandle<()>, super::CaptureError> {
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
            consumed.fetch_add(batch.iter().map(|r| r.len() as u64).sum(), Ordering::Relaxed);
            if !batch.is_empty() && tx.send(batch).await.is_err() {
                return;
            }
        }
    }))
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
