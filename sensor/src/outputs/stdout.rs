//! The stdout output: one line per alert, Falco's text line or its JSON alert.

use std::{
    io::{self, Write as _},
    sync::Arc,
};

use serde::Deserialize;

use super::{SendError, Sink};
use crate::rules::Alert;

/// `stdout:` settings.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StdoutConfig {
    /// `text` (Falco's `<time>: <Priority> <output>`, the default) or `json`.
    #[serde(default)]
    pub format: LineFormat,
}

/// How an alert is written on one line.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LineFormat {
    /// Falco's text line.
    #[default]
    Text,
    /// Falco's JSON alert.
    Json,
}

impl LineFormat {
    /// Appends `alert` to `out` as one line.
    pub fn write_line(self, alert: &Alert, out: &mut Vec<u8>) {
        match self {
            LineFormat::Text => out.extend_from_slice(alert.to_text().as_bytes()),
            LineFormat::Json => {
                serde_json::to_writer(&mut *out, &alert.to_output_json()).expect("a JSON value serializes into memory")
            }
        }
        out.push(b'\n');
    }
}

/// Writes alerts to standard output.
pub struct StdoutSink {
    format: LineFormat,
}

impl StdoutSink {
    /// A sink printing in the configured format.
    pub fn new(config: &StdoutConfig) -> Self {
        StdoutSink { format: config.format }
    }
}

impl Sink for StdoutSink {
    async fn send(&mut self, alerts: &[Arc<Alert>]) -> Result<(), SendError> {
        let mut lines = Vec::new();
        for alert in alerts {
            self.format.write_line(alert, &mut lines);
        }
        // A pipe to a slow reader blocks; keep that off the runtime's threads. The lock keeps
        // the lines of a batch together.
        let written = tokio::task::spawn_blocking(move || {
            let mut out = io::stdout().lock();
            out.write_all(&lines)?;
            out.flush()
        })
        .await
        .map_err(|e| SendError::Permanent(format!("writing to stdout: {e}")))?;
        written.map_err(|e| match e.kind() {
            io::ErrorKind::BrokenPipe => SendError::Permanent("stdout is closed".into()),
            _ => SendError::retry(format!("writing to stdout: {e}")),
        })
    }
}
