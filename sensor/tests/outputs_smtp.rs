//! The SMTP output against a real SMTP server (aiosmtpd, `tests/peers/smtp_server.py`) that
//! requires TLS and AUTH like Gmail, with a certificate from a CA made for each test by the
//! `openssl` CLI: what reaches the mailbox, and how failures are reported.

mod peers;

use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, mpsc},
    time::Duration,
};

use sensor::{
    outputs::{
        SecretSource, SendError, Sink as _,
        smtp::{SmtpConfig, SmtpSink, TlsMode},
    },
    rules::{Alert, Priority, Value},
};
use serde_json::Value as Json;

const LOGIN: &str = "sensor@example.com";
const PASSWORD: &str = "abcd efgh ijkl mnop";

/// Runs `openssl ARGS` in `dir`, failing the test with its stderr.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A test's scratch directory: a CA, a server certificate it signed for 127.0.0.1 and
/// localhost, and the app password file the sink reads.
struct Pki {
    dir: PathBuf,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Pki {
    fn new(tag: &str) -> Pki {
        let dir = peers::scratch_dir(tag);
        let new_ec_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        let ca = ["-x509", "-days", "2", "-subj", "/CN=sensor test CA", "-keyout", "ca.key", "-out", "ca.pem"];
        let ca_extensions =
            ["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"];
        openssl(&dir, &[&["req"][..], &new_ec_key, &ca, &ca_extensions].concat());
        let csr = ["-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.csr"];
        openssl(&dir, &[&["req"][..], &new_ec_key, &csr].concat());
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName = IP:127.0.0.1, DNS:localhost\nextendedKeyUsage = serverAuth\nbasicConstraints = CA:FALSE\n",
        )
        .unwrap();
        let sign = ["-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2"];
        openssl(&dir, &[&["x509"][..], &sign, &["-extfile", "server.ext", "-out", "server.pem"]].concat());
        std::fs::write(dir.join("password"), format!("{PASSWORD}\n")).unwrap();
        Pki { ca: dir.join("ca.pem"), cert: dir.join("server.pem"), key: dir.join("server.key"), dir }
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running `smtp_server.py` and the messages it has printed.
struct SmtpServer {
    child: Child,
    port: u16,
    mails: mpsc::Receiver<Json>,
}

impl SmtpServer {
    /// Starts the server with `pki`'s certificate, STARTTLS or implicit TLS, accepting
    /// `LOGIN` / `PASSWORD`, and waits until it listens.
    fn start(pki: &Pki, tls: TlsMode) -> SmtpServer {
        SmtpServer::start_with(pki, tls, &[])
    }

    /// [`SmtpServer::start`] with more arguments for `smtp_server.py`.
    fn start_with(pki: &Pki, tls: TlsMode, args: &[&str]) -> SmtpServer {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/peers/smtp_server.py");
        let mut command = Command::new(peers::python());
        command.arg(script).arg("--cert").arg(&pki.cert).arg("--key").arg(&pki.key);
        command.args(["--login", LOGIN, "--password", PASSWORD]);
        if tls == TlsMode::Implicit {
            command.arg("--implicit-tls");
        }
        command.args(args);
        let mut child = command.stdout(Stdio::piped()).spawn().expect("smtp_server.py starts");
        let (tx, rx) = mpsc::channel();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                let json: Json = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
                if tx.send(json).is_err() {
                    break;
                }
            }
        });
        let ready = rx.recv_timeout(Duration::from_secs(30)).expect("smtp_server.py prints its port");
        let port = u16::try_from(ready["port"].as_u64().expect("port")).unwrap();
        SmtpServer { child, port, mails: rx }
    }

    /// The next message the server accepted.
    fn next_mail(&self) -> Json {
        self.mails.recv_timeout(Duration::from_secs(10)).expect("the server received a mail")
    }

    /// Fails if the server accepted a message in the last half second.
    fn assert_no_mail(&self) {
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

/// The output's configuration for a relay on 127.0.0.1:`port`, trusting `pki`'s CA.
fn config(pki: &Pki, port: u16, tls: TlsMode) -> SmtpConfig {
    SmtpConfig {
        host: "127.0.0.1".into(),
        port: Some(port),
        tls,
        username: LOGIN.into(),
        password: SecretSource { env: None, file: Some(pki.dir.join("password")) },
        from: Some(format!("Sensor <{LOGIN}>")),
        to: vec!["ops@example.com".into(), "On Call <oncall@example.org>".into()],
        ca_file: Some(pki.ca.clone()),
        subject_prefix: Some("[test]".into()),
    }
}

fn alert(rule: &str, priority: Priority, second: u64, fields: Vec<(&str, Option<Value>)>) -> Arc<Alert> {
    Arc::new(Alert {
        time_ns: 1_685_022_240_000_000_000 + second * 1_000_000_000,
        rule: rule.into(),
        priority,
        source: "syscall".into(),
        hostname: "node-7".into(),
        message: format!("{rule} (user=root)"),
        tags: vec!["mitre_execution".into()],
        fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
    })
}

/// The decoded text of the mail's part of type `content_type`, with mail's CRLF line ends
/// turned into `\n`.
fn part(mail: &Json, content_type: &str) -> String {
    let parts = mail["parts"].as_array().expect("parts");
    let found = parts.iter().find(|p| p["content_type"] == content_type);
    let text = found.and_then(|p| p["text"].as_str()).unwrap_or_else(|| panic!("no {content_type} part in {mail}"));
    text.replace("\r\n", "\n")
}

/// Checks what every mail of the sink configured by [`config`] carries.
fn assert_envelope(mail: &Json) {
    assert_eq!(mail["mail_from"], LOGIN, "{mail}");
    assert_eq!(mail["rcpt_tos"], serde_json::json!(["ops@example.com", "oncall@example.org"]), "{mail}");
    assert_eq!(mail["auth"]["login"], LOGIN, "{mail}");
    let mechanism = mail["auth"]["mechanism"].as_str().unwrap_or_default();
    assert!(["PLAIN", "LOGIN"].contains(&mechanism), "{mail}");
    assert!(mail["tls_version"].as_str().is_some_and(|v| v.starts_with("TLSv1.")), "{mail}");
    assert_eq!(mail["from"], format!("Sensor <{LOGIN}>"), "{mail}");
    assert_eq!(mail["to"], "ops@example.com, On Call <oncall@example.org>", "{mail}");
    assert_eq!(mail["content_type"], "multipart/alternative", "{mail}");
    assert_eq!((&mail["has_date"], &mail["has_message_id"]), (&Json::Bool(true), &Json::Bool(true)), "{mail}");
    assert_eq!(mail["parts"].as_array().map(Vec::len), Some(2), "{mail}");
}

#[tokio::test]
async fn starttls_relay_gets_one_mail_per_send_for_every_recipient() {
    let pki = Pki::new("smtp-starttls");
    let server = SmtpServer::start(&pki, TlsMode::Starttls);
    let mut sink = SmtpSink::new(&config(&pki, server.port, TlsMode::Starttls)).expect("valid config");

    let single = alert(
        "Read sensitive file untrusted",
        Priority::Warning,
        0,
        vec![("fd.name", Some(Value::Str("/etc/shadow".into()))), ("container.id", None)],
    );
    sink.send(&[single]).await.expect("the relay accepts the mail");
    let mail = server.next_mail();
    assert_envelope(&mail);
    assert_eq!(mail["subject"], "[test] [Warning] Read sensitive file untrusted", "{mail}");
    let text = part(&mail, "text/plain");
    assert!(text.contains("Output:  13:44:00.000000000: Warning Read sensitive file untrusted (user=root)"), "{text}");
    assert!(text.contains("  fd.name = /etc/shadow\n") && text.contains("  container.id = <NA>\n"), "{text}");
    assert!(text.contains("Host:    node-7\n"), "{text}");
    let html = part(&mail, "text/html");
    assert!(html.contains("<code>/etc/shadow</code>") && html.contains("2023-05-25T13:44:00.000000000Z"), "{html}");

    // A batch window's digest: one mail whose subject names the most severe alert.
    let digest = [
        alert("Read sensitive file untrusted", Priority::Warning, 1, vec![]),
        alert(
            "Terminal shell in container",
            Priority::Critical,
            2,
            vec![("proc.cmdline", Some(Value::Str("sh -c <script>alert(1)</script>".into())))],
        ),
        alert("Drop and execute new binary", Priority::Critical, 3, vec![("proc.pid", Some(Value::UInt(4242)))]),
    ];
    sink.send(&digest).await.expect("the relay accepts the digest");
    let mail = server.next_mail();
    assert_envelope(&mail);
    assert_eq!(mail["subject"], "[test] [Critical] Terminal shell in container (+2 more alerts)", "{mail}");
    let text = part(&mail, "text/plain");
    assert!(text.starts_with("3 alerts from 2023-05-25T13:44:01.000000000Z to 2023-05-25T13:44:03.000000000Z"));
    for rule in ["[Warning] Read sensitive file", "[Critical] Terminal shell", "[Critical] Drop and execute"] {
        assert!(text.contains(rule), "{rule} missing: {text}");
    }
    assert!(text.contains("  proc.cmdline = sh -c <script>alert(1)</script>\n"), "{text}");
    assert!(text.contains("  proc.pid = 4242\n"), "{text}");
    let html = part(&mail, "text/html");
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("<code>sh -c &lt;script&gt;alert(1)&lt;/script&gt;</code>"), "{html}");
    assert_eq!(html.matches("<h3").count(), 3, "{html}");
    server.assert_no_mail();
}

#[tokio::test]
async fn implicit_tls_relay_gets_the_mail() {
    let pki = Pki::new("smtp-implicit");
    let server = SmtpServer::start(&pki, TlsMode::Implicit);
    let mut sink = SmtpSink::new(&config(&pki, server.port, TlsMode::Implicit)).expect("valid config");
    sink.send(&[alert("Terminal shell in container", Priority::Notice, 0, vec![])]).await.expect("accepted");
    let mail = server.next_mail();
    assert_envelope(&mail);
    assert_eq!(mail["subject"], "[test] [Notice] Terminal shell in container", "{mail}");
}

#[tokio::test]
async fn rejected_password_is_a_permanent_error_that_hides_it() {
    let pki = Pki::new("smtp-badpass");
    let server = SmtpServer::start(&pki, TlsMode::Starttls);
    std::fs::write(pki.dir.join("password"), "wrong app password\n").unwrap();
    let mut sink = SmtpSink::new(&config(&pki, server.port, TlsMode::Starttls)).expect("valid config");
    let err = sink.send(&[alert("r", Priority::Error, 0, vec![])]).await.expect_err("login rejected");
    let SendError::Permanent(reason) = &err else { panic!("not permanent: {err:?}") };
    assert!(reason.contains(&format!("127.0.0.1:{}", server.port)) && reason.contains("535"), "{reason}");
    assert!(!reason.contains("wrong app password"), "{reason}");
    server.assert_no_mail();
}

#[tokio::test]
async fn deferred_mail_is_retried_and_then_delivered() {
    let pki = Pki::new("smtp-defer");
    let server = SmtpServer::start_with(&pki, TlsMode::Starttls, &["--defer", "1"]);
    let mut sink = SmtpSink::new(&config(&pki, server.port, TlsMode::Starttls)).expect("valid config");
    let alerts = [alert("Terminal shell in container", Priority::Critical, 0, vec![])];
    let err = sink.send(&alerts).await.expect_err("the relay defers the first mail");
    let SendError::Retry { reason, after: None } = &err else { panic!("not a retry: {err:?}") };
    assert!(reason.contains("451") && reason.contains("Try again later"), "{reason}");
    server.assert_no_mail();
    sink.send(&alerts).await.expect("the relay accepts the second attempt");
    assert_eq!(server.next_mail()["subject"], "[test] [Critical] Terminal shell in container");
}

#[tokio::test]
async fn relay_not_listening_is_retried() {
    let pki = Pki::new("smtp-down");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut sink = SmtpSink::new(&config(&pki, port, TlsMode::Starttls)).expect("valid config");
    let err = sink.send(&[alert("r", Priority::Error, 0, vec![])]).await.expect_err("nobody listens");
    let SendError::Retry { reason, after: None } = &err else { panic!("not a retry: {err:?}") };
    assert!(reason.contains(&format!("127.0.0.1:{port}")) && reason.contains("refused"), "{reason}");
}

#[tokio::test]
async fn relay_with_an_untrusted_certificate_gets_nothing() {
    let pki = Pki::new("smtp-untrusted");
    let server = SmtpServer::start(&pki, TlsMode::Starttls);
    let mut cfg = config(&pki, server.port, TlsMode::Starttls);
    cfg.ca_file = None;
    let mut sink = SmtpSink::new(&cfg).expect("valid config");
    let err = sink.send(&[alert("r", Priority::Error, 0, vec![])]).await.expect_err("certificate refused");
    let SendError::Permanent(reason) = &err else { panic!("not permanent: {err:?}") };
    assert!(reason.contains("TLS certificate refused") && reason.contains("UnknownIssuer"), "{reason}");
    assert!(reason.contains("set smtp.ca_file"), "{reason}");
    server.assert_no_mail();
}
