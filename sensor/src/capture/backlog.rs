//! What waits in user space, reported to the kernel side (its `BACKLOG` map) so that its
//! overload policy weighs it with what waits in the rings: a ring drained fast into a deep
//! queue would otherwise never look full, and a flood would queue every later record —
//! those the rules need among them — behind it instead of being held back.

use std::{
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use aya::maps::{Array, Map, MapData};
use tokio::task::JoinHandle;

use super::CaptureError;

/// Record bytes waiting in user space.
#[derive(Default)]
pub(super) struct Backlog {
    /// Read from the rings and not yet taken by [`super::Capture::next_batch`].
    unclaimed: AtomicU64,
    /// What waits further on, as the pipeline reports it ([`super::Capture::weigh_downstream`]).
    downstream: OnceLock<Box<dyn Fn() -> u64 + Send + Sync>>,
}

impl Backlog {
    /// `bytes` more read from a ring.
    pub(super) fn read(&self, bytes: u64) {
        self.unclaimed.fetch_add(bytes, Relaxed);
    }

    /// `bytes` taken by the pipeline.
    pub(super) fn claimed(&self, bytes: u64) {
        self.unclaimed.fetch_sub(bytes, Relaxed);
    }

    /// Counts `downstream()` in from now on (once; a second call is ignored).
    pub(super) fn weigh(&self, downstream: Box<dyn Fn() -> u64 + Send + Sync>) {
        if self.downstream.set(downstream).is_err() {
            log::warn!("the pipeline's backlog is already reported");
        }
    }

    fn bytes(&self) -> u64 {
        self.unclaimed.load(Relaxed) + self.downstream.get().map_or(0, |f| f())
    }
}

/// Writes `backlog` into the kernel's `BACKLOG` map every `interval` while it changes.
pub(super) fn spawn_reporter(
    map: Map,
    backlog: Arc<Backlog>,
    interval: Duration,
) -> Result<JoinHandle<()>, CaptureError> {
    let mut map: Array<MapData, u64> =
        Array::try_from(map).map_err(|source| CaptureError::Map { map: "BACKLOG", source })?;
    Ok(tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reported = 0;
        loop {
            tick.tick().await;
            let now = backlog.bytes();
            if now == reported {
                continue;
            }
            match map.set(0, now, 0) {
                Ok(()) => reported = now,
                // An array's only entry cannot be missing: this is the kernel refusing.
                Err(e) => {
                    log::error!("reporting the backlog to the kernel failed, it weighs its rings alone: {e}");
                    return;
                }
            }
        }
    }))
}
