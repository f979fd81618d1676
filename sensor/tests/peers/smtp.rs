//! The SMTP peer: `tests/peers/smtp_server.py`, a real aiosmtpd server that requires TLS and
//! AUTH like Gmail, and the mails it received, as JSON.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use sensor::outputs::smtp::TlsMode;
use serde_json::Value as Json;

use super::pki::Pki;

/// The login the server accepts.
pub const LOGIN: &str = "sensor@example.com";
/// The app password the server accepts.
pub const PASSWORD: &str = "abcd efgh ijkl mnop";
/// The sender the outputs under test set.
pub const FROM: &str = "Sensor <sensor@example.com>";
/// The recipients the outputs under test set.
pub const TO: [&str; 2] = ["ops@example.com", "On Call <oncall@example.org>"];

/// Writes the app password to a file in `dir`, as an operator stores it; its path.
pub fn password_file(dir: &Path) -> PathBuf {
    let path = dir.join("smtp-password");
    std::fs::write(&path, format!("{PASSWORD}\n")).unwrap();
    path
}

/// The `smtp` entry of a sensor configuration for the relay on 127.0.0.1:`port` with
/// STARTTLS, trusting `pki`'s CA, the password read from `password`, and the entry's common
/// `options` (lines indented by four spaces) after it.
pub fn output_entry(pki: &Pki, port: u16, password: &Path, options: &str) -> String {
    format!(
        "  - smtp:
      host: 127.0.0.1
      port: {port}
      tls: starttls
      username: {LOGIN}
      password: {{file: {password}}}
      from: \"{FROM}\"
      to: [\"{}\", \"{}\"]
      ca_file: {ca}
{options}",
        TO[0],
        TO[1],
        password = password.display(),
        ca = pki.ca.display(),
    )
}

/// A running `smtp_server.py` and the messages it has printed.
pub struct SmtpServer {
    child: Child,
    /// The port it listens on, at 127.0.0.1.
    pub port: u16,
    mails: mpsc::Receiver<String>,
}

impl SmtpServer {
    /// Starts the server with `pki`'s server certificate, STARTTLS or implicit TLS, accepting
    /// [`LOGIN`] / [`PASSWORD`], with more `args` for the script (`--port N`, `--defer N`),
    /// and waits until it listens.
    pub fn start(pki: &Pki, tls: TlsMode, args: &[&str]) -> SmtpServer {
        let mut command = Command::new(super::python());
        command.arg(super::script("smtp_server.py"));
        command.arg("--cert").arg(&pki.server_cert).arg("--key").arg(&pki.server_key);
        command.args(["--login", LOGIN, "--password", PASSWORD]);
        if tls == TlsMode::Implicit {
            command.arg("--implicit-tls");
        }
        let mut child = command.args(args).stdout(Stdio::piped()).spawn().expect("smtp_server.py starts");
        let mails = super::line_channel(child.stdout.take().unwrap());
        let ready = mails.recv_timeout(super::PATIENCE).expect("smtp_server.py prints its port");
        let ready: Json = serde_json::from_str(&ready).unwrap_or_else(|e| panic!("{e}: {ready}"));
        let port = u16::try_from(ready["port"].as_u64().expect("port")).unwrap();
        SmtpServer { child, port, mails }
    }

    /// The next message the server accepted.
    pub fn next_mail(&self) -> Json {
        let line = self.mails.recv_timeout(super::PATIENCE).expect("the server received a mail");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    /// Fails if the server accepts a message within half a second.
    pub fn assert_no_mail(&self) {
        if let Ok(mail) = self.mails.recv_timeout(Duration::from_millis(500)) {
            panic!("unexpected mail: {mail}");
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The decoded text of the mail's part of type `content_type`, with mail's CRLF line ends
/// turned into `\n`.
pub fn part(mail: &Json, content_type: &str) -> String {
    let parts = mail["parts"].as_array().expect("parts");
    let found = parts.iter().find(|p| p["content_type"] == content_type);
    let text = found.and_then(|p| p["text"].as_str()).unwrap_or_else(|| panic!("no {content_type} part in {mail}"));
    text.replace("\r\n", "\n")
}

/// How many alerts a mail carries, from its subject: `[Priority] rule`, then
/// `(+1 more alert)` or `(+N more alerts)` for a digest.
pub fn alerts_in(mail: &Json) -> u64 {
    let subject = mail["subject"].as_str().expect("a subject");
    let more = subject.rsplit_once(" (+").and_then(|(_, tail)| tail.split_once(" more alert"));
    more.map_or(1, |(n, _)| 1 + n.parse::<u64>().unwrap_or_else(|e| panic!("{e}: {subject}")))
}

/// Checks what every mail of an output set up with [`LOGIN`], [`FROM`] and [`TO`] carries:
/// the envelope, AUTH over TLS, the headers, and a text and an HTML part.
pub fn assert_envelope(mail: &Json) {
    assert_eq!(mail["mail_from"], LOGIN, "{mail}");
    assert_eq!(mail["rcpt_tos"], serde_json::json!(["ops@example.com", "oncall@example.org"]), "{mail}");
    assert_eq!(mail["auth"]["login"], LOGIN, "{mail}");
    let mechanism = mail["auth"]["mechanism"].as_str().unwrap_or_default();
    assert!(["PLAIN", "LOGIN"].contains(&mechanism), "{mail}");
    assert!(mail["tls_version"].as_str().is_some_and(|v| v.starts_with("TLSv1.")), "{mail}");
    assert_eq!(mail["from"], FROM, "{mail}");
    assert_eq!(mail["to"], TO.join(", "), "{mail}");
    assert_eq!(mail["content_type"], "multipart/alternative", "{mail}");
    assert_eq!((&mail["has_date"], &mail["has_message_id"]), (&Json::Bool(true), &Json::Bool(true)), "{mail}");
    let types: Vec<&Json> = mail["parts"].as_array().expect("parts").iter().map(|p| &p["content_type"]).collect();
    assert_eq!(types, ["text/plain", "text/html"], "{mail}");
}
