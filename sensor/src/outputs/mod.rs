//! Alert outputs: the last pipeline stage. Each configured output is a [`Sink`] driven by
//! its own task behind its own bounded queue, so a slow or broken output delays neither
//! detection nor the other outputs.

pub mod config;
pub mod console;
pub mod file;
pub mod grpc;
mod http;
mod limiter;
pub mod program;
mod secret;
pub mod smtp;
mod stage;
pub mod stdout;
pub mod store;
pub mod syslog;
pub mod telegram;
pub mod webhook;
mod worker;

pub use config::{OutputConfig, OutputKind, OutputOptions, OutputsConfig};
pub use http::Redirects;
pub use secret::{Secret, SecretSource, constant_time_eq};
pub use stage::{OutputCounters, OutputStage, StartNotice};

use std::{sync::Arc, time::Duration};

use crate::rules::Alert;

/// One destination for alerts (stdout, a file, Telegram, SMTP, gRPC, a webhook, the alert
/// store, the cluster's console).
///
/// The output stage owns queueing, filtering, rate limiting, batching and retries; a sink
/// only delivers. `send` gets one alert, or every alert of a batch window for outputs that
/// batch (a mail digest), and either delivers all of them or fails as a whole.
pub trait Sink: Send + 'static {
    /// Delivers `alerts`, in order.
    fn send(&mut self, alerts: &[Arc<Alert>]) -> impl Future<Output = Result<(), SendError>> + Send;

    /// Where the sink counts its errors outside deliveries (a refused reopen of the file
    /// output), which lose no alert but an operator must see; none by default.
    fn errors(&self) -> Option<Arc<std::sync::atomic::AtomicU64>> {
        None
    }
}

/// Why a delivery failed, and whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// A transient failure (peer down, timeout, 5xx, 429): retried with backoff, or after
    /// `after` when the peer said how long to wait.
    #[error("{reason}")]
    Retry {
        /// What went wrong, for logs.
        reason: String,
        /// The wait the peer asked for (Telegram's `retry_after`), if any.
        after: Option<Duration>,
    },
    /// A failure that retrying cannot fix (rejected credentials, a 400): the alerts are
    /// counted as failed at once.
    #[error("{0}")]
    Permanent(String),
}

impl SendError {
    /// A transient failure with no requested wait.
    pub fn retry(reason: impl ToString) -> Self {
        SendError::Retry { reason: reason.to_string(), after: None }
    }
}

/// Makes ring rustls's process-wide crypto provider (the only one built in), as TLS clients
/// and servers that do not name one need; calling it again is harmless.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
