//! The syslog output: each alert one datagram to the local syslog socket (`/dev/log`), as
//! Falco's `syslog_output` sends them with syslog(3): facility `user`, the alert's priority
//! as the severity (Falco's eight priorities are syslog's eight levels), tag `sensor`.
//! Without a syslog daemon (no socket, or nobody on it) an alert fails at once, counted,
//! without retries: what syslog(3) would lose silently, and nothing to wait for at exit.

use std::{os::unix::net::UnixDatagram, path::PathBuf, sync::Arc};

use serde::Deserialize;

use super::{SendError, Sink, stdout::LineFormat};
use crate::rules::{Alert, Priority};

/// The longest datagram sent: a longer alert is cut, and says so.
pub const SYSLOG_MAX_BYTES: usize = 8192;
/// syslog's facility `user` (1), shifted as the priority value wants it.
const FACILITY_USER: u8 = 1 << 3;

/// `syslog:` settings.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// `text` (Falco's line, the default) or `json`.
    #[serde(default)]
    pub format: LineFormat,
    /// The syslog socket (default `/dev/log`).
    #[serde(default = "default_socket")]
    pub socket: PathBuf,
}

fn default_socket() -> PathBuf {
    PathBuf::from("/dev/log")
}

/// Sends alerts to the syslog socket, connecting when it first can.
pub struct SyslogSink {
    config: SyslogConfig,
    socket: Option<UnixDatagram>,
}

impl SyslogSink {
    pub fn new(config: &SyslogConfig) -> Self {
        SyslogSink { config: config.clone(), socket: None }
    }
}

/// syslog's severity of an alert's priority.
fn severity(p: Priority) -> u8 {
    match p {
        Priority::Emergency => 0,
        Priority::Alert => 1,
        Priority::Critical => 2,
        Priority::Error => 3,
        Priority::Warning => 4,
        Priority::Notice => 5,
        Priority::Informational => 6,
        Priority::Debug => 7,
    }
}

/// The datagram of `alert`: `<PRI>sensor[PID]: LINE`, at most [`SYSLOG_MAX_BYTES`].
pub fn datagram(alert: &Alert, format: LineFormat) -> Vec<u8> {
    let mut out =
        format!("<{}>sensor[{}]: ", FACILITY_USER | severity(alert.priority), std::process::id()).into_bytes();
    format.write_line(alert, &mut out);
    out.pop(); // the newline
    out.truncate(SYSLOG_MAX_BYTES);
    out
}

impl Sink for SyslogSink {
    async fn send(&mut self, alerts: &[Arc<Alert>]) -> Result<(), SendError> {
        let socket = match &self.socket {
            Some(socket) => socket,
            None => {
                let socket = UnixDatagram::unbound().map_err(|e| SendError::retry(format!("a socket: {e}")))?;
                socket.connect(&self.config.socket).map_err(|e| {
                    let message = format!("no syslog at {}: {e}", self.config.socket.display());
                    match e.kind() {
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                            SendError::Permanent(message)
                        }
                        _ => SendError::retry(message),
                    }
                })?;
                socket.set_nonblocking(true).map_err(|e| SendError::retry(e.to_string()))?;
                self.socket.insert(socket)
            }
        };
        for alert in alerts {
            if let Err(e) = socket.send(&datagram(alert, self.config.format)) {
                // The daemon restarted (a new socket at the path), or its queue is full.
                self.socket = None;
                return Err(SendError::retry(format!("sending to {}: {e}", self.config.socket.display())));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(priority: Priority, message: &str) -> Arc<Alert> {
        Arc::new(Alert {
            time_ns: 1_796_515_200 * 1_000_000_000,
            rule: "R".into(),
            priority,
            source: "syscall".into(),
            hostname: "node-a".into(),
            message: message.into(),
            tags: vec![].into(),
            fields: vec![],
        })
    }

    #[tokio::test]
    async fn alerts_reach_the_syslog_socket_with_their_severity_and_none_there_fails_at_once() {
        let dir = std::env::temp_dir().join(format!("sensor-syslog-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log");
        let mut sink = SyslogSink::new(&SyslogConfig { format: LineFormat::Text, socket: path.clone() });
        // No daemon yet: the alert fails at once (counted, not retried), and nothing stops.
        let e = sink.send(&[alert(Priority::Warning, "early")]).await.unwrap_err();
        assert!(matches!(e, SendError::Permanent(_)) && e.to_string().contains("no syslog at"), "{e}");
        let daemon = UnixDatagram::bind(&path).unwrap();
        let long = "x".repeat(10_000);
        sink.send(&[alert(Priority::Warning, "read /etc/shadow"), alert(Priority::Critical, &long)]).await.unwrap();
        let mut buf = vec![0; 16_384];
        let n = daemon.recv(&mut buf).unwrap();
        let first = String::from_utf8_lossy(&buf[..n]).into_owned();
        let pid = std::process::id();
        assert_eq!(first, format!("<12>sensor[{pid}]: 00:00:00.000000000: Warning read /etc/shadow"));
        let n = daemon.recv(&mut buf).unwrap();
        assert_eq!(n, SYSLOG_MAX_BYTES, "a longer alert is cut");
        assert!(buf.starts_with(format!("<10>sensor[{pid}]: ").as_bytes()), "Critical is severity 2");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
