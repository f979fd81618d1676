//! One reader task per ring buffer.
//!
//! The kernel side wakes a reader only every so many bytes, so the reader also drains on
//! a short timer. Each drain copies the records out and sends them as one batch; when the
//! consumer is slow, sending waits, the ring fills, and the kernel counts what it loses.

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
        loop {
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
            let batch = drain(fd.get_mut());
            consumed.fetch_add(batch.iter().map(|r| r.len() as u64).sum(), Ordering::Relaxed);
            if !batch.is_empty() && tx.send(batch).await.is_err() {
                return;
            }
        }
    }))
}

/// Copies every available record out of the ring.
fn drain(ring: &mut RingBuf<MapData>) -> Vec<Bytes> {
    let mut batch = Vec::new();
    while let Some(item) = ring.next() {
        batch.push(Bytes::copy_from_slice(&item));
    }
    batch
}
