//! The file output: Falco's JSON alert, one per line, appended to a file that is reopened on
//! SIGHUP or SIGUSR1, so logrotate can move it away and signal the sensor.
//!
//! The sensor runs as root and creates no links, so a symbolic link at the path is someone
//! else's (a user who can write the directory, pointing it at `/etc/shadow`): the file is
//! opened with `O_NOFOLLOW` and a link is refused, at start and at every reopen.

use std::{
    fs::{File, OpenOptions},
    io::{self, Write as _},
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
};

use anyhow::{Context as _, bail};
use serde::Deserialize;
use tokio::signal::unix::{SignalKind, signal};

use super::{SendError, Sink, stdout::LineFormat};
use crate::rules::Alert;

/// `file:` settings.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The file alerts are appended to (created with mode 0640 if missing; its directory must
    /// exist; a symbolic link is refused).
    pub path: PathBuf,
    /// `json` (JSON lines, the default) or `text` (Falco's line, as Falco's `file_output`
    /// without `json_output`).
    #[serde(default = "json_lines")]
    pub format: LineFormat,
}

fn json_lines() -> LineFormat {
    LineFormat::Json
}

/// Appends JSON lines to a file.
pub struct FileSink {
    path: PathBuf,
    format: LineFormat,
    file: Arc<File>,
    /// Reopens refused (a symbolic link at the path, a missing directory).
    reopen_failures: Arc<AtomicU64>,
    /// A file opened again after a signal, picked up at the next write.
    reopened: Arc<Mutex<Option<File>>>,
    signals: tokio::task::JoinHandle<()>,
}

/// Opens `path` for appending, with an error that says what is wrong with it.
fn open(path: &Path) -> anyhow::Result<File> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match std::fs::metadata(parent) {
        Ok(meta) if !meta.is_dir() => bail!("{} is not a directory", parent.display()),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => bail!("directory {} does not exist", parent.display()),
        Err(e) => bail!("directory {}: {e}", parent.display()),
    }
    OpenOptions::new().append(true).create(true).mode(0o640).custom_flags(libc::O_NOFOLLOW).open(path).map_err(|e| {
        match e.raw_os_error() {
            // O_NOFOLLOW's answer when the last component is a link.
            Some(libc::ELOOP) => anyhow::anyhow!(
                "{} is a symbolic link: refused (the sensor appends only to a regular file it opens itself)",
                path.display()
            ),
            _ => anyhow::Error::new(e).context(format!("opening {} for appending", path.display())),
        }
    })
}

impl FileSink {
    /// Opens the file and starts listening for the reopen signals; needs a tokio runtime.
    pub fn open(config: &FileConfig) -> anyhow::Result<Self> {
        let file = open(&config.path)?;
        let reopened = Arc::new(Mutex::new(None));
        let mut hangup = signal(SignalKind::hangup()).context("listening for SIGHUP")?;
        let mut user1 = signal(SignalKind::user_defined1()).context("listening for SIGUSR1")?;
        let reopen_failures = Arc::new(AtomicU64::new(0));
        let (path, slot, failures) = (config.path.clone(), reopened.clone(), reopen_failures.clone());
        // Reopened as soon as the signal arrives (not at the next alert), so the new file
        // exists at once and the old one is released.
        let signals = tokio::spawn(async move {
            loop {
                let name = tokio::select! {
                    Some(()) = hangup.recv() => "SIGHUP",
                    Some(()) = user1.recv() => "SIGUSR1",
                    else => return,
                };
                match open(&path) {
                    Ok(file) => {
                        // In place before it is logged: alerts after the log line go to the new file.
                        *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(file);
                        log::info!("reopened {} on {name}", path.display());
                    }
                    Err(e) => {
                        failures.fetch_add(1, Relaxed);
                        log::warn!("cannot reopen {} on {name}, writing on to the old file: {e:#}", path.display())
                    }
                }
            }
        });
        Ok(FileSink {
            path: config.path.clone(),
            format: config.format,
            file: Arc::new(file),
            reopen_failures,
            reopened,
            signals,
        })
    }
}

impl Drop for FileSink {
    fn drop(&mut self) {
        self.signals.abort();
    }
}

impl Sink for FileSink {
    fn errors(&self) -> Option<Arc<AtomicU64>> {
        Some(self.reopen_failures.clone())
    }

    async fn send(&mut self, alerts: &[Arc<Alert>]) -> Result<(), SendError> {
        if let Some(file) = self.reopened.lock().unwrap_or_else(|e| e.into_inner()).take() {
            self.file = Arc::new(file);
        }
        let mut lines = Vec::new();
        for alert in alerts {
            self.format.write_line(alert, &mut lines);
        }
        let file = self.file.clone();
        // One append of whole lines, off the runtime's threads (a slow disk blocks).
        let written = tokio::task::spawn_blocking(move || (&*file).write_all(&lines))
            .await
            .map_err(|e| SendError::Permanent(format!("writing {}: {e}", self.path.display())))?;
        written.map_err(|e| SendError::retry(format!("writing {}: {e}", self.path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_directory_is_named() {
        let err = open(Path::new("/nonexistent-sensor-dir/alerts.jsonl")).unwrap_err().to_string();
        assert_eq!(err, "directory /nonexistent-sensor-dir does not exist");
        let err = open(Path::new("/etc/hostname/alerts.jsonl")).unwrap_err().to_string();
        assert_eq!(err, "/etc/hostname is not a directory");
    }

    #[test]
    fn a_symbolic_link_at_the_path_is_refused() {
        let dir = std::env::temp_dir().join(format!("sensor-file-link-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (target, link) = (dir.join("target"), dir.join("alerts.jsonl"));
        std::fs::write(&target, "untouched\n").unwrap();
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = open(&link).unwrap_err().to_string();
        assert!(err.contains("is a symbolic link: refused"), "{err}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "untouched\n");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
