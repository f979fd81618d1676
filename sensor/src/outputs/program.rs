//! The program output: alerts written, one line each, to the standard input of a shell
//! command, as Falco's `program_output` does (`jq ... | curl ...`): with `keep_alive` one
//! process takes every alert (started again if it exits), without it a process per alert.
//! The command's own output goes where the sensor's does.

use std::{process::Stdio, sync::Arc, time::Duration};

use serde::Deserialize;
use tokio::{io::AsyncWriteExt as _, process::Command};

use super::{SendError, Sink, stdout::LineFormat};
use crate::rules::Alert;

/// How long a command run for one alert may take before it is killed.
pub const PROGRAM_TIMEOUT: Duration = Duration::from_secs(10);

/// `program:` settings.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProgramConfig {
    /// The command, run by `/bin/sh -c`.
    pub command: String,
    /// `text` (Falco's line, the default) or `json`.
    #[serde(default)]
    pub format: LineFormat,
    /// One process for every alert (default false: one per alert).
    #[serde(default)]
    pub keep_alive: bool,
}

/// Writes alerts to a command.
pub struct ProgramSink {
    config: ProgramConfig,
    /// The kept-alive process.
    running: Option<(tokio::process::Child, tokio::process::ChildStdin)>,
}

impl ProgramSink {
    pub fn new(config: &ProgramConfig) -> Self {
        ProgramSink { config: config.clone(), running: None }
    }

    fn spawn(&self) -> Result<(tokio::process::Child, tokio::process::ChildStdin), SendError> {
        let mut child = Command::new("/bin/sh")
            .args(["-c", &self.config.command])
            .stdin(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| SendError::retry(format!("starting `{}`: {e}", self.config.command)))?;
        let stdin = child.stdin.take().expect("piped stdin");
        Ok((child, stdin))
    }
}

impl Sink for ProgramSink {
    async fn send(&mut self, alerts: &[Arc<Alert>]) -> Result<(), SendError> {
        if self.config.keep_alive {
            let mut lines = Vec::new();
            for alert in alerts {
                self.config.format.write_line(alert, &mut lines);
            }
            let (_, stdin) = match &mut self.running {
                Some(running) => running,
                None => self.running.insert(self.spawn()?),
            };
            if let Err(e) = async {
                stdin.write_all(&lines).await?;
                stdin.flush().await
            }
            .await
            {
                // It exited: started again for the retry.
                self.running = None;
                return Err(SendError::retry(format!("writing to `{}`: {e}", self.config.command)));
            }
            return Ok(());
        }
        for alert in alerts {
            let mut line = Vec::new();
            self.config.format.write_line(alert, &mut line);
            let (mut child, mut stdin) = self.spawn()?;
            let run = async {
                // A command that does not read its input still runs: its exit is what counts.
                let _ = stdin.write_all(&line).await;
                drop(stdin);
                child.wait().await
            };
            match tokio::time::timeout(PROGRAM_TIMEOUT, run).await {
                Ok(Ok(status)) if status.success() => {}
                Ok(Ok(status)) => {
                    return Err(SendError::retry(format!("`{}` exited with {status}", self.config.command)));
                }
                Ok(Err(e)) => return Err(SendError::retry(format!("running `{}`: {e}", self.config.command))),
                Err(_) => {
                    return Err(SendError::retry(format!(
                        "`{}` ran over {} s",
                        self.config.command,
                        PROGRAM_TIMEOUT.as_secs()
                    )));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Priority;

    fn alert(n: u64) -> Arc<Alert> {
        Arc::new(Alert {
            time_ns: 1_796_515_200 * 1_000_000_000 + n,
            rule: "R".into(),
            priority: Priority::Notice,
            source: "syscall".into(),
            hostname: "node-a".into(),
            message: format!("alert {n}"),
            tags: vec![].into(),
            fields: vec![],
        })
    }

    #[tokio::test]
    async fn alerts_reach_the_command_kept_alive_or_one_process_each() {
        let dir = std::env::temp_dir().join(format!("sensor-program-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("out");
        let lines = || std::fs::read_to_string(&out).unwrap_or_default();

        // One process per alert: each a new `sh`, whose pid the line carries.
        let command = format!("read line; echo \"$$ $line\" >> {}", out.display());
        let mut each = ProgramSink::new(&ProgramConfig { command, format: LineFormat::Text, keep_alive: false });
        each.send(&[alert(1), alert(2)]).await.unwrap();
        let pids: std::collections::HashSet<String> =
            lines().lines().map(|l| l.split(' ').next().unwrap().to_owned()).collect();
        assert_eq!(lines().lines().count(), 2, "{}", lines());
        assert_eq!(pids.len(), 2, "a process per alert: {}", lines());
        assert!(lines().contains("Notice alert 2"));

        // Kept alive: one process takes every batch, in JSON.
        std::fs::remove_file(&out).unwrap();
        let command = format!("while read line; do echo \"$$ $line\" >> {}; done", out.display());
        let mut kept = ProgramSink::new(&ProgramConfig { command, format: LineFormat::Json, keep_alive: true });
        kept.send(&[alert(3)]).await.unwrap();
        kept.send(&[alert(4), alert(5)]).await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while lines().lines().count() < 3 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let pids: std::collections::HashSet<String> =
            lines().lines().map(|l| l.split(' ').next().unwrap().to_owned()).collect();
        assert_eq!((lines().lines().count(), pids.len()), (3, 1), "{}", lines());
        assert!(lines().contains("\"output\""), "JSON lines: {}", lines());

        // A command that fails is retried, and says how it ended.
        let mut failing =
            ProgramSink::new(&ProgramConfig { command: "exit 3".into(), format: LineFormat::Text, keep_alive: false });
        let e = failing.send(&[alert(6)]).await.unwrap_err();
        assert!(matches!(e, SendError::Retry { .. }) && e.to_string().contains("exit status: 3"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
