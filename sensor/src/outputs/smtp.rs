//! Mail output: alerts sent through an SMTP relay such as Gmail (STARTTLS on 587 or implicit
//! TLS on 465, AUTH with an app password), one mail per [`Sink::send`] call. A batch window
//! set by the output stage turns a burst into one digest mail, which keeps a busy node inside
//! Gmail's daily sending limit.

use std::{path::Path, path::PathBuf, sync::Arc};

use anyhow::{Context as _, anyhow, bail};
use lettre::{
    AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor,
    message::{Mailbox, MultiPart},
    transport::smtp::{
        authentication::Credentials,
        client::{Certificate, Tls, TlsParameters},
    },
};
use rustls::pki_types::{CertificateDer, pem::PemObject as _};
use serde::Deserialize;

use super::{SecretSource, SendError, Sink};
use crate::{
    html::push_escaped,
    rules::{
        Alert, Priority,
        output::{format_iso8601, render},
    },
};

/// How the connection to the relay is encrypted. There is no plaintext mode: the password
/// must never cross the network in the clear.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain connect, then a required `STARTTLS` before AUTH (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte, "SMTPS" (port 465).
    Implicit,
}

impl TlsMode {
    /// The submission port conventionally used with this mode.
    pub fn default_port(self) -> u16 {
        match self {
            TlsMode::Starttls => 587,
            TlsMode::Implicit => 465,
        }
    }
}

/// The `smtp:` output's configuration, as written in the sensor's config file.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// Relay host name (`smtp.gmail.com`); also the name its certificate must carry.
    pub host: String,
    /// Relay port; defaults to 587 with `starttls` and 465 with `implicit`.
    #[serde(default)]
    pub port: Option<u16>,
    /// `starttls` (default) or `implicit`.
    #[serde(default)]
    pub tls: TlsMode,
    /// Login for AUTH (the Gmail address).
    pub username: String,
    /// Password for AUTH (a Gmail app password), from the environment or a file.
    pub password: SecretSource,
    /// Sender mailbox (`Sensor <alerts@example.com>`); defaults to `username`.
    #[serde(default)]
    pub from: Option<String>,
    /// Recipient mailboxes, at least one.
    pub to: Vec<String>,
    /// A PEM file of CA certificates trusted in addition to the system roots (a private relay).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Text put before every subject (`[prod-eu]`), to tell clusters apart in a mailbox.
    #[serde(default)]
    pub subject_prefix: Option<String>,
}

/// Delivers alerts as mail through one SMTP relay.
pub struct SmtpSink {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    subject_prefix: Option<String>,
    /// `host:port`, for error messages.
    relay: String,
}

impl SmtpSink {
    /// Validates `cfg` (addresses, recipients, the password source, the CA file) and builds
    /// the transport. Nothing is sent and no connection is opened yet.
    pub fn new(cfg: &SmtpConfig) -> anyhow::Result<Self> {
        if cfg.host.trim().is_empty() {
            bail!("smtp.host is empty");
        }
        if cfg.username.is_empty() {
            bail!("smtp.username is empty");
        }
        let from_text = cfg.from.as_deref().unwrap_or(&cfg.username);
        let from: Mailbox = from_text.parse().map_err(|e| {
            let option = if cfg.from.is_some() { "smtp.from" } else { "smtp.from (defaulting to smtp.username)" };
            anyhow!("{option}: `{from_text}` is not an email address: {e}")
        })?;
        if cfg.to.is_empty() {
            bail!("smtp.to: at least one recipient is needed");
        }
        let to = cfg
            .to
            .iter()
            .enumerate()
            .map(|(i, text)| {
                text.parse::<Mailbox>().map_err(|e| anyhow!("smtp.to[{i}]: `{text}` is not an email address: {e}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let password = cfg.password.load().context("smtp.password")?;

        let mut tls = TlsParameters::builder(cfg.host.clone());
        if let Some(path) = &cfg.ca_file {
            for cert in load_ca_file(path)? {
                tls = tls.add_root_certificate(cert);
            }
        }
        // Building fails only on a CA certificate rustls cannot use as a trust anchor.
        let tls = tls.build_rustls().with_context(|| match &cfg.ca_file {
            Some(path) => format!("smtp.ca_file: {} holds an unusable CA certificate", path.display()),
            None => format!("smtp: TLS settings for {}", cfg.host),
        })?;
        let port = cfg.port.unwrap_or(cfg.tls.default_port());
        // `builder_dangerous` only means "no TLS preset": the TLS mode is set just below and
        // is always required.
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&cfg.host)
            .port(port)
            .tls(match cfg.tls {
                TlsMode::Starttls => Tls::Required(tls),
                TlsMode::Implicit => Tls::Wrapper(tls),
            })
            .credentials(Credentials::new(cfg.username.clone(), password.expose().to_owned()))
            .build();
        Ok(SmtpSink {
            transport,
            from,
            to,
            subject_prefix: cfg.subject_prefix.clone(),
            relay: format!("{}:{port}", cfg.host),
        })
    }

    /// The mail carrying `alerts` (not empty).
    fn message(&self, alerts: &[Arc<Alert>]) -> Result<Message, lettre::error::Error> {
        let mut builder = Message::builder().from(self.from.clone());
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        builder
            .subject(subject(self.subject_prefix.as_deref(), alerts))
            .message_id(None)
            .multipart(MultiPart::alternative_plain_html(text_body(alerts), html_body(alerts)))
    }

    /// Sorts a failed delivery into retry-able or permanent, with the relay named.
    fn send_error(&self, err: &lettre::transport::smtp::Error) -> SendError {
        let relay = &self.relay;
        if let Some(tls) = certificate_error(err) {
            SendError::Permanent(format!(
                "SMTP relay {relay}: TLS certificate refused: {tls} (if the relay uses a private CA, set smtp.ca_file)"
            ))
        } else if err.is_permanent() || err.is_client() {
            // 5xx replies (rejected login or recipient), or a relay that lacks STARTTLS or a
            // usable AUTH mechanism: the same mail would fail the same way.
            SendError::Permanent(format!("SMTP relay {relay}: {err}"))
        } else {
            // Refused or dropped connections, timeouts and 4xx replies are transient.
            SendError::retry(format!("SMTP relay {relay}: {err}"))
        }
    }
}

impl Sink for SmtpSink {
    /// Sends one mail for the whole slice: a single alert, or the digest of a batch window.
    async fn send(&mut self, alerts: &[Arc<Alert>]) -> Result<(), SendError> {
        if alerts.is_empty() {
            return Ok(());
        }
        let message = self
            .message(alerts)
            .map_err(|e| SendError::Permanent(format!("building the mail for {}: {e}", self.relay)))?;
        self.transport.send(message).await.map(drop).map_err(|e| self.send_error(&e))
    }
}

/// Reads the PEM certificates of `smtp.ca_file`; a file with none is an error, not a no-op.
fn load_ca_file(path: &Path) -> anyhow::Result<Vec<Certificate>> {
    let pem = std::fs::read(path).with_context(|| format!("smtp.ca_file: reading {}", path.display()))?;
    let ders = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("smtp.ca_file: {} is not valid PEM: {e}", path.display()))?;
    if ders.is_empty() {
        bail!("smtp.ca_file: {} holds no PEM certificate", path.display());
    }
    ders.into_iter()
        .map(|der| {
            Certificate::from_der(der.to_vec())
                .map_err(|e| anyhow!("smtp.ca_file: a certificate of {}: {e}", path.display()))
        })
        .collect()
}

/// The rustls error of a TLS handshake that failed because the relay's certificate was not
/// trusted or did not name the host, which no retry can fix.
fn certificate_error(err: &lettre::transport::smtp::Error) -> Option<&rustls::Error> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cause {
        // An `io::Error` hides the rustls error it wraps from `source()`.
        let wrapped = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()).map(|inner| inner as _);
        for e in [Some(e), wrapped].into_iter().flatten() {
            if let Some(tls @ (rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented)) =
                e.downcast_ref::<rustls::Error>()
            {
                return Some(tls);
            }
        }
        cause = e.source();
    }
    None
}

/// `[Priority] rule` for one alert; for several, the most severe one (the first of equals)
/// and how many more the mail carries.
fn subject(prefix: Option<&str>, alerts: &[Arc<Alert>]) -> String {
    let mut subject = String::new();
    if let Some(prefix) = prefix.filter(|p| !p.is_empty()) {
        subject.push_str(prefix);
        subject.push(' ');
    }
    if let Some(top) = alerts.iter().min_by_key(|a| a.priority) {
        subject.push_str(&format!("[{}] {}", top.priority, top.rule));
    }
    match alerts.len() {
        0 | 1 => {}
        2 => subject.push_str(" (+1 more alert)"),
        n => {
            subject.push_str(&format!(" (+{} more alerts)", n - 1));
        }
    }
    // A header is one line: a rule name with a line break must not start another header.
    subject.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// A field's value as in the alert's output line; `<NA>` when the event lacked it.
fn field_text(value: Option<&crate::rules::Value>) -> String {
    let mut text = String::new();
    match value {
        Some(v) => render(v, &mut text),
        None => text.push_str("<NA>"),
    }
    text
}

/// `N alerts from <first time> to <last time>`, the opening line of a digest.
fn digest_summary(alerts: &[Arc<Alert>]) -> Option<String> {
    match alerts {
        [first, .., last] => Some(format!(
            "{} alerts from {} to {}",
            alerts.len(),
            format_iso8601(first.time_ns),
            format_iso8601(last.time_ns)
        )),
        _ => None,
    }
}

/// The text/plain part: every alert with its time, host, output line and fields.
fn text_body(alerts: &[Arc<Alert>]) -> String {
    let mut out = String::new();
    if let Some(summary) = digest_summary(alerts) {
        out.push_str(&format!("{summary}\n\n"));
    }
    for (i, alert) in alerts.iter().enumerate() {
        if i > 0 {
            out.push_str("\n----------------------------------------\n\n");
        }
        out.push_str(&format!("[{}] {}\n", alert.priority, alert.rule));
        out.push_str(&format!("Time:    {}\n", format_iso8601(alert.time_ns)));
        out.push_str(&format!("Host:    {}\n", alert.hostname));
        out.push_str(&format!("Source:  {}\n", alert.source));
        if !alert.tags.is_empty() {
            out.push_str(&format!("Tags:    {}\n", alert.tags.join(", ")));
        }
        out.push_str(&format!("Output:  {}\n", alert.to_text()));
        if !alert.fields.is_empty() {
            out.push_str("Fields:\n");
            for (name, value) in &alert.fields {
                out.push_str(&format!("  {name} = {}\n", field_text(value.as_ref())));
            }
        }
    }
    out
}

/// Appends a `<tr>` with a header cell and a value cell, both escaped.
fn push_row(out: &mut String, name: &str, value: &str, code: bool) {
    out.push_str("<tr><th style=\"text-align:left;vertical-align:top;padding:2px 12px 2px 0\">");
    push_escaped(out, name);
    out.push_str("</th><td style=\"padding:2px 0\">");
    if code {
        out.push_str("<code>");
    }
    push_escaped(out, value);
    if code {
        out.push_str("</code>");
    }
    out.push_str("</td></tr>\n");
}

/// A heading colour by severity: red for Error and worse, amber for Warning, grey below.
fn priority_colour(priority: Priority) -> &'static str {
    if priority <= Priority::Error {
        "#b71c1c"
    } else if priority == Priority::Warning {
        "#e65100"
    } else {
        "#455a64"
    }
}

/// The text/html part: the same content as [`text_body`], every value escaped.
fn html_body(alerts: &[Arc<Alert>]) -> String {
    let mut out = String::from("<!DOCTYPE html>\n<html><body style=\"font-family:sans-serif;font-size:14px\">\n");
    if let Some(summary) = digest_summary(alerts) {
        out.push_str("<p>");
        push_escaped(&mut out, &summary);
        out.push_str("</p>\n");
    }
    for (i, alert) in alerts.iter().enumerate() {
        if i > 0 {
            out.push_str("<hr>\n");
        }
        out.push_str(&format!("<h3 style=\"color:{}\">", priority_colour(alert.priority)));
        push_escaped(&mut out, &format!("[{}] {}", alert.priority, alert.rule));
        out.push_str("</h3>\n<table style=\"border-collapse:collapse\">\n");
        push_row(&mut out, "Time", &format_iso8601(alert.time_ns), false);
        push_row(&mut out, "Host", &alert.hostname, false);
        push_row(&mut out, "Source", &alert.source, false);
        if !alert.tags.is_empty() {
            push_row(&mut out, "Tags", &alert.tags.join(", "), false);
        }
        push_row(&mut out, "Output", &alert.to_text(), true);
        for (name, value) in &alert.fields {
            push_row(&mut out, name, &field_text(value.as_ref()), true);
        }
        out.push_str("</table>\n");
    }
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Value;

    fn alert(rule: &str, priority: Priority, fields: &[(&str, Option<Value<'static>>)]) -> Arc<Alert> {
        Arc::new(Alert {
            time_ns: 1_685_022_245_478_445_995,
            rule: rule.into(),
            priority,
            source: "syscall".into(),
            hostname: "node-1".into(),
            message: format!("{rule} happened"),
            tags: vec!["container".into(), "shell".into()].into(),
            fields: fields.iter().map(|(k, v)| ((*k).into(), v.clone())).collect(),
        })
    }

    fn config(yaml: &str) -> SmtpConfig {
        serde_saphyr::from_str(yaml).expect("config parses")
    }

    /// A valid config whose password file exists; `extra` lines are appended.
    fn valid_yaml(dir: &Path, extra: &str) -> String {
        let password = dir.join("password");
        std::fs::write(&password, "app-password\n").unwrap();
        format!(
            "host: smtp.example.com\nusername: sensor@example.com\npassword: {{file: {}}}\n{extra}",
            password.display()
        )
    }

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sensor-smtp-unit-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn new_err(cfg: &SmtpConfig) -> String {
        match SmtpSink::new(cfg) {
            Ok(_) => panic!("config accepted: {cfg:?}"),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn one_alert_subject_is_priority_and_rule() {
        let alerts = [alert("Terminal shell in container", Priority::Notice, &[])];
        assert_eq!(subject(None, &alerts), "[Notice] Terminal shell in container");
        assert_eq!(subject(Some("[prod]"), &alerts), "[prod] [Notice] Terminal shell in container");
    }

    #[test]
    fn digest_subject_names_the_most_severe_alert_and_the_count() {
        let mut alerts = vec![alert("Read sensitive file", Priority::Warning, &[])];
        alerts.extend((0..10).map(|_| alert("Terminal shell in container", Priority::Critical, &[])));
        alerts.push(alert("Later critical", Priority::Critical, &[]));
        assert_eq!(subject(None, &alerts), "[Critical] Terminal shell in container (+11 more alerts)");
        assert_eq!(subject(None, &alerts[..2]), "[Critical] Terminal shell in container (+1 more alert)");
    }

    #[test]
    fn subject_stays_on_one_line() {
        let alerts = [alert("evil\r\nBcc: someone@example.com", Priority::Error, &[])];
        assert_eq!(subject(None, &alerts), "[Error] evil  Bcc: someone@example.com");
    }

    #[test]
    fn html_part_escapes_field_values_and_text_part_keeps_them() {
        let alerts = [alert(
            "Shell <in> container",
            Priority::Critical,
            &[
                ("proc.cmdline", Some(Value::Str("sh -c '<script>alert(1)</script>' && x".into()))),
                ("user.name", None),
                ("proc.pid", Some(Value::UInt(4242))),
            ],
        )];
        let html = html_body(&alerts);
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("sh -c &#39;&lt;script&gt;alert(1)&lt;/script&gt;&#39; &amp;&amp; x"), "{html}");
        assert!(html.contains("[Critical] Shell &lt;in&gt; container</h3>"), "{html}");
        assert!(html.contains("<code>&lt;NA&gt;</code>"), "{html}");
        assert!(html.contains("<code>4242</code>"), "{html}");
        assert!(html.contains("2023-05-25T13:44:05.478445995Z"), "{html}");

        let text = text_body(&alerts);
        assert!(text.starts_with("[Critical] Shell <in> container\n"), "{text}");
        assert!(text.contains("  proc.cmdline = sh -c '<script>alert(1)</script>' && x\n"), "{text}");
        assert!(text.contains("  user.name = <NA>\n"), "{text}");
        assert!(text.contains("Output:  13:44:05.478445995: Critical Shell <in> container happened\n"), "{text}");
        assert!(text.contains("Host:    node-1\n"), "{text}");
        assert!(text.contains("Tags:    container, shell\n"), "{text}");
        assert!(!text.contains("alerts from"), "a single alert has no digest summary: {text}");
    }

    #[test]
    fn field_values_cannot_forge_lines() {
        let alerts = [alert("r", Priority::Error, &[("fd.name", Some(Value::Str("/tmp/x\nFields:".into())))])];
        assert!(text_body(&alerts).contains("  fd.name = /tmp/x\\u000aFields:\n"));
    }

    #[test]
    fn digest_body_carries_every_alert_in_order() {
        let mut alerts =
            vec![alert("first rule", Priority::Notice, &[]), alert("second rule", Priority::Critical, &[])];
        Arc::make_mut(&mut alerts[1]).time_ns += 60_000_000_000;
        let text = text_body(&alerts);
        assert!(
            text.starts_with("2 alerts from 2023-05-25T13:44:05.478445995Z to 2023-05-25T13:45:05.478445995Z\n"),
            "{text}"
        );
        let (first, second) = (text.find("[Notice] first rule").unwrap(), text.find("[Critical] second rule").unwrap());
        assert!(first < second, "{text}");
        let html = html_body(&alerts);
        assert_eq!(html.matches("<h3").count(), 2, "{html}");
        assert!(html.contains("<p>2 alerts from"), "{html}");
    }

    #[test]
    fn port_follows_the_tls_mode_and_from_defaults_to_username() {
        let dir = scratch("defaults");
        let cfg = config(&valid_yaml(&dir, "to: [ops@example.com]\n"));
        assert_eq!((cfg.tls, cfg.port), (TlsMode::Starttls, None));
        let sink = SmtpSink::new(&cfg).unwrap();
        assert_eq!(sink.relay, "smtp.example.com:587");
        assert_eq!(sink.from.email.to_string(), "sensor@example.com");

        let cfg = config(&valid_yaml(&dir, "to: [ops@example.com]\ntls: implicit\nfrom: Sensor <s@example.com>\n"));
        let sink = SmtpSink::new(&cfg).unwrap();
        assert_eq!(sink.relay, "smtp.example.com:465");
        assert_eq!(sink.from.name.as_deref(), Some("Sensor"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn invalid_configs_name_the_option() {
        let dir = scratch("invalid");
        let cases = [
            ("to: []\n", "smtp.to: at least one recipient"),
            ("to: [ops@example.com, not an address]\n", "smtp.to[1]: `not an address` is not an email address"),
            ("to: [ops@example.com]\nfrom: nobody\n", "smtp.from: `nobody` is not an email address"),
            ("to: [ops@example.com]\nca_file: /nonexistent/ca.pem\n", "smtp.ca_file: reading /nonexistent/ca.pem"),
        ];
        for (extra, expected) in cases {
            let err = new_err(&config(&valid_yaml(&dir, extra)));
            assert!(err.contains(expected), "{extra:?}: {err}");
        }

        let not_pem = dir.join("not-a-ca.pem");
        std::fs::write(&not_pem, "hello\n").unwrap();
        let err = new_err(&config(&valid_yaml(&dir, &format!("to: [a@b.c]\nca_file: {}\n", not_pem.display()))));
        assert!(err.contains(&format!("smtp.ca_file: {} holds no PEM certificate", not_pem.display())), "{err}");
        std::fs::write(&not_pem, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap();
        let err = new_err(&config(&valid_yaml(&dir, &format!("to: [a@b.c]\nca_file: {}\n", not_pem.display()))));
        assert!(err.contains("holds an unusable CA certificate"), "{err}");

        let cfg = config(
            "host: h\nusername: u@example.com\npassword: {env: SENSOR_TEST_SURELY_UNSET_VAR}\nto: [a@example.com]\n",
        );
        let err = new_err(&cfg);
        assert!(err.contains("smtp.password") && err.contains("SENSOR_TEST_SURELY_UNSET_VAR"), "{err}");

        let err = new_err(&config("host: h\nusername: user\npassword: {env: X}\nto: [a@example.com]\n"));
        assert!(err.contains("smtp.from (defaulting to smtp.username): `user`"), "{err}");

        let unknown =
            serde_saphyr::from_str::<SmtpConfig>("host: h\nusername: u\npassword: {env: X}\nto: []\nstarttls: true\n");
        assert!(unknown.unwrap_err().to_string().contains("starttls"));
        let plaintext =
            serde_saphyr::from_str::<SmtpConfig>("host: h\nusername: u\npassword: {env: X}\nto: []\ntls: none\n");
        assert!(plaintext.is_err(), "there is no plaintext mode");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
