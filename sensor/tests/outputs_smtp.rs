//! The SMTP output against a real SMTP server (aiosmtpd, `tests/peers/smtp_server.py`) that
//! requires TLS and AUTH like Gmail, with a certificate from a CA made for each test by the
//! `openssl` CLI: what reaches the mailbox and how failures are reported, from the sink on its
//! own and through `sensor replay --config`.

mod peers;

use std::{path::PathBuf, sync::Arc};

use peers::{
    ScratchDir,
    pki::Pki,
    sensor::{RULES, Replay, event},
    smtp::{self, FROM, LOGIN, SmtpServer, TO, assert_envelope, part},
};
use sensor::{
    outputs::{
        SecretSource, SendError, Sink as _,
        smtp::{SmtpConfig, SmtpSink, TlsMode},
    },
    rules::{Alert, Priority, Value},
};

/// A test's directory with its PKI and the app password file.
struct Setup {
    dir: ScratchDir,
    pki: Pki,
    password: PathBuf,
}

impl Setup {
    fn new(tag: &str) -> Setup {
        let dir = peers::scratch_dir(tag);
        let (pki, password) = (Pki::new(&dir), smtp::password_file(&dir));
        Setup { dir, pki, password }
    }

    /// The sink's configuration for a relay on 127.0.0.1:`port`, trusting the test's CA.
    fn config(&self, port: u16, tls: TlsMode) -> SmtpConfig {
        SmtpConfig {
            host: "127.0.0.1".into(),
            port: Some(port),
            tls,
            username: LOGIN.into(),
            password: SecretSource { env: None, file: Some(self.password.clone()) },
            from: Some(FROM.into()),
            to: TO.map(String::from).to_vec(),
            ca_file: Some(self.pki.ca.clone()),
            subject_prefix: Some("[test]".into()),
        }
    }
}

fn alert(rule: &str, priority: Priority, second: u64, fields: Vec<(&str, Option<Value<'static>>)>) -> Arc<Alert> {
    Arc::new(Alert {
        time_ns: 1_685_022_240_000_000_000 + second * 1_000_000_000,
        rule: rule.into(),
        priority,
        source: "syscall".into(),
        hostname: "node-7".into(),
        message: format!("{rule} (user=root)"),
        tags: vec!["mitre_execution".into()].into(),
        fields: fields.into_iter().map(|(k, v)| (k.into(), v)).collect(),
    })
}

#[tokio::test]
async fn starttls_relay_gets_one_mail_per_send_for_every_recipient() {
    let setup = Setup::new("smtp-starttls");
    let server = SmtpServer::start(&setup.pki, TlsMode::Starttls, &[]);
    let mut sink = SmtpSink::new(&setup.config(server.port, TlsMode::Starttls)).expect("valid config");

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
    let setup = Setup::new("smtp-implicit");
    let server = SmtpServer::start(&setup.pki, TlsMode::Implicit, &[]);
    let mut sink = SmtpSink::new(&setup.config(server.port, TlsMode::Implicit)).expect("valid config");
    sink.send(&[alert("Terminal shell in container", Priority::Notice, 0, vec![])]).await.expect("accepted");
    let mail = server.next_mail();
    assert_envelope(&mail);
    assert_eq!(mail["subject"], "[test] [Notice] Terminal shell in container", "{mail}");
}

#[tokio::test]
async fn rejected_password_is_a_permanent_error_that_hides_it() {
    let setup = Setup::new("smtp-badpass");
    let server = SmtpServer::start(&setup.pki, TlsMode::Starttls, &[]);
    std::fs::write(&setup.password, "wrong app password\n").unwrap();
    let mut sink = SmtpSink::new(&setup.config(server.port, TlsMode::Starttls)).expect("valid config");
    let err = sink.send(&[alert("r", Priority::Error, 0, vec![])]).await.expect_err("login rejected");
    let SendError::Permanent(reason) = &err else { panic!("not permanent: {err:?}") };
    assert!(reason.contains(&format!("127.0.0.1:{}", server.port)) && reason.contains("535"), "{reason}");
    assert!(!reason.contains("wrong app password"), "{reason}");
    server.assert_no_mail();
}

#[tokio::test]
async fn deferred_mail_is_retried_and_then_delivered() {
    let setup = Setup::new("smtp-defer");
    let server = SmtpServer::start(&setup.pki, TlsMode::Starttls, &["--defer", "1"]);
    let mut sink = SmtpSink::new(&setup.config(server.port, TlsMode::Starttls)).expect("valid config");
    let alerts = [alert("Terminal shell in container", Priority::Critical, 0, vec![])];
    let err = sink.send(&alerts).await.expect_err("the relay defers the first mail");
    let SendError::Retry { reason, after: None } = &err else { panic!("not a retry: {err:?}") };
    assert!(reason.contains("451") && reason.contains("Try again later"), "{reason}");
    server.assert_no_mail();
    sink.send(&alerts).await.expect("the relay accepts the second attempt");
    assert_eq!(server.next_mail()["subject"], "[test] [Critical] Terminal shell in container");
}

/// A port on 127.0.0.1 that nothing listens on (it was free a moment ago).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn relay_not_listening_is_retried() {
    let setup = Setup::new("smtp-down");
    let port = free_port();
    let mut sink = SmtpSink::new(&setup.config(port, TlsMode::Starttls)).expect("valid config");
    let err = sink.send(&[alert("r", Priority::Error, 0, vec![])]).await.expect_err("nobody listens");
    let SendError::Retry { reason, after: None } = &err else { panic!("not a retry: {err:?}") };
    assert!(reason.contains(&format!("127.0.0.1:{port}")) && reason.contains("refused"), "{reason}");
}

#[tokio::test]
async fn relay_with_an_untrusted_certificate_gets_nothing() {
    let setup = Setup::new("smtp-untrusted");
    let server = SmtpServer::start(&setup.pki, TlsMode::Starttls, &[]);
    let mut cfg = setup.config(server.port, TlsMode::Starttls);
    cfg.ca_file = None;
    let mut sink = SmtpSink::new(&cfg).expect("valid config");
    let err = sink.send(&[alert("r", Priority::Error, 0, vec![])]).await.expect_err("certificate refused");
    let SendError::Permanent(reason) = &err else { panic!("not permanent: {err:?}") };
    assert!(reason.contains("TLS certificate refused") && reason.contains("UnknownIssuer"), "{reason}");
    assert!(reason.contains("set smtp.ca_file"), "{reason}");
    server.assert_no_mail();
}

/// The relay is down when the alert comes and starts on the output's port once the first
/// attempt has failed: a retry delivers the mail, and the counters say it took retries.
#[test]
fn a_relay_down_then_up_gets_the_mail_on_a_retry() {
    let setup = Setup::new("smtp-down-up");
    let port = free_port();
    // Backoffs of 0.25-0.5 s, then 0.5-1 s, then 1-2 s: at least 7 s of retries after the
    // first failure, for the relay to start on a loaded machine.
    let options = "    batch: {window: 200ms}\n    retry: {attempts: 10, initial_backoff: 500ms, max_backoff: 2s}\n";
    let config = format!("outputs:\n{}", smtp::output_entry(&setup.pki, port, &setup.password, options));
    let mut sensor = Replay::new(&setup.dir, RULES, &config).start();
    sensor.send(&event("relay-down"));
    sensor.wait_for_log(&format!("output `smtp`: attempt 1 failed (SMTP relay 127.0.0.1:{port}: "));

    let relay = SmtpServer::start(&setup.pki, TlsMode::Starttls, &["--port", &port.to_string()]);
    let mail = relay.next_mail();
    let run = sensor.finish();
    assert!(run.success, "{}", run.stderr);
    assert_envelope(&mail);
    assert_eq!(mail["subject"], "[Warning] Shadow read", "{mail}");
    assert!(part(&mail, "text/plain").contains("  container.name = relay-down\n"), "{mail}");
    relay.assert_no_mail();

    let c = run.assert_adds_up("smtp");
    assert_eq!((c["produced"], c["sent"], c["failed"]), (1, 1, 0), "{c:?}");
    assert!(c["retried"] >= 1, "{c:?}");
}
