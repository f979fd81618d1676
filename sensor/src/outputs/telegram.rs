//! The Telegram output: the Bot API's `sendMessage` with MarkdownV2 text.
//!
//! A message reads:
//!
//! ```text
//! [Warning] Terminal shell in container          (bold)
//! A shell was spawned in a container ... user=root container_id=3ad7b26ded6d
//!
//! Time: 2026-11-22T18:37:40.123456789Z          (labels bold)
//! Host: node-1
//! Source: syscall
//! Tags: container, shell, mitre_execution
//! Fields:
//! • user.name: root
//! • container.id: 3ad7b26ded6d
//! ```
//!
//! The second line is the rule's output (Falco's line without its time and priority, which the
//! message shows apart). Every MarkdownV2 special character of the alert's text is escaped, and
//! a message longer than Telegram's 4096 characters is cut and ends with `… [truncated]`.
//! A batch of alerts is one message, the alerts separated by a line of dashes.

use std::{sync::Arc, time::Duration};

use serde::{Deserialize, Deserializer, de};

use super::{SendError, Sink, http, secret::Secret, secret::SecretSource};
use crate::rules::{Alert, output::format_iso8601};

/// Telegram's limit on a message's text, in UTF-16 code units.
const MAX_MESSAGE_UNITS: usize = 4096;

/// What ends a message that had to be cut.
const TRUNCATED: &str = "\n… [truncated]";

/// `telegram:` settings.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    /// The chat: a numeric id (`"-1001234567890"`) or a public channel's `@name`.
    #[serde(deserialize_with = "deserialize_chat_id")]
    pub chat_id: String,
    /// The topic of a forum supergroup, if any.
    #[serde(default)]
    pub message_thread_id: Option<i64>,
    /// The bot's token, from the environment or a file.
    pub token: SecretSource,
    /// The Bot API server (default `https://api.telegram.org`; a local Bot API server's URL).
    #[serde(default = "default_base_url")]
    pub base_url: String,
}

fn default_base_url() -> String {
    "https://api.telegram.org".into()
}

/// A chat id written as a number or as text.
fn deserialize_chat_id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct ChatId;
    impl de::Visitor<'_> for ChatId {
        type Value = String;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a chat id (a number or an @channel name)")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            if v.trim().is_empty() {
                return Err(E::custom("chat_id must not be empty"));
            }
            Ok(v.to_owned())
        }
    }
    d.deserialize_any(ChatId)
}

/// Sends alerts to a Telegram chat.
pub struct TelegramSink {
    client: reqwest::Client,
    /// `https://api.telegram.org`, without a trailing slash; the token is added per request.
    base_url: String,
    token: Secret,
    chat_id: String,
    message_thread_id: Option<i64>,
}

/// The part of the Bot API's answer that matters here.
#[derive(Deserialize)]
struct Reply {
    #[serde(default)]
    ok: bool,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<ReplyParameters>,
}

#[derive(Deserialize)]
struct ReplyParameters {
    #[serde(default)]
    retry_after: Option<u64>,
}

impl TelegramSink {
    /// Reads the token and builds the HTTP client.
    pub fn new(config: &TelegramConfig) -> anyhow::Result<Self> {
        let token = config.token.load()?;
        let base_url = config.base_url.trim_end_matches('/').to_owned();
        let parsed = reqwest::Url::parse(&base_url).map_err(|e| anyhow::anyhow!("base_url `{base_url}`: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            anyhow::bail!("base_url `{base_url}` is not an http(s) URL");
        }
        Ok(TelegramSink {
            client: http::client(http::TlsFiles::default(), http::Redirects::None)?,
            base_url,
            token,
            chat_id: config.chat_id.clone(),
            message_thread_id: config.message_thread_id,
        })
    }

    /// Removes the token from text that may quote it.
    fn redact(&self, text: &str) -> String {
        text.replace(self.token.expose(), "***")
    }
}

impl Sink for TelegramSink {
    async fn send(&mut self, alerts: &[Arc<Alert>]) -> Result<(), SendError> {
        let mut body = serde_json::json!({
            "chat_id": self.chat_id,
            "text": message(alerts),
            "parse_mode": "MarkdownV2",
            "link_preview_options": {"is_disabled": true},
        });
        if let Some(thread) = self.message_thread_id {
            body["message_thread_id"] = thread.into();
        }
        let url = format!("{}/bot{}/sendMessage", self.base_url, self.token.expose());
        let response = self
            .client
            .post(url)
            .json(&body)
            .send()
            .await
            .map_err(|e| SendError::retry(self.redact(&format!("Telegram: {}", http::describe(e)))))?;
        let status = response.status();
        let (body, truncated) = http::read_bounded(response).await.unwrap_or_default();
        let reply: Option<Reply> = serde_json::from_slice(&body).ok();
        if status.is_success() && reply.as_ref().is_some_and(|r| r.ok) {
            return Ok(());
        }
        let description = reply.as_ref().and_then(|r| r.description.clone()).unwrap_or_else(|| "no description".into());
        let retry_after = reply.and_then(|r| r.parameters).and_then(|p| p.retry_after).map(Duration::from_secs);
        let what =
            self.redact(&format!("Telegram answered {status}: {description}{}", http::truncation_note(truncated)));
        Err(http::status_error(status, what, retry_after))
    }
}

/// Escapes every MarkdownV2 special character, so Telegram shows `text` as written.
fn escape_markdown_v2(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        if is_special(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The characters MarkdownV2 reserves, the escape character included.
fn is_special(c: char) -> bool {
    matches!(
        c,
        '_' | '*'
            | '['
            | ']'
            | '('
            | ')'
            | '~'
            | '`'
            | '>'
            | '#'
            | '+'
            | '-'
            | '='
            | '|'
            | '{'
            | '}'
            | '.'
            | '!'
            | '\\'
    )
}

/// MarkdownV2 text built piece by piece within Telegram's length limit: a piece that does
/// not fit is cut, and nothing is added after it but the truncation marker.
struct MessageText {
    text: String,
    units: usize,
    limit: usize,
    truncated: bool,
}

impl MessageText {
    fn new() -> Self {
        let marker_units = escape_markdown_v2(TRUNCATED).encode_utf16().count();
        MessageText { text: String::new(), units: 0, limit: MAX_MESSAGE_UNITS - marker_units, truncated: false }
    }

    fn plain(&mut self, text: &str) {
        self.piece("", text);
    }

    fn bold(&mut self, text: &str) {
        self.piece("*", text);
    }

    /// Adds `text`, escaped, between two `marker`s (a formatting entity), or as much of it as fits.
    fn piece(&mut self, marker: &str, text: &str) {
        if self.truncated {
            return;
        }
        let mut piece = String::from(marker);
        let mut units = 2 * marker.len();
        for c in text.chars() {
            let escape = is_special(c);
            let more = c.len_utf16() + usize::from(escape);
            if self.units + units + more > self.limit {
                self.truncated = true;
                break;
            }
            if escape {
                piece.push('\\');
            }
            piece.push(c);
            units += more;
        }
        // An entity with nothing left in it is left out whole.
        if piece.len() == marker.len() && !marker.is_empty() {
            return;
        }
        piece.push_str(marker);
        self.text.push_str(&piece);
        self.units += units;
    }

    fn finish(mut self) -> String {
        if self.truncated {
            self.text.push_str(&escape_markdown_v2(TRUNCATED));
        }
        self.text
    }
}

/// The message for one alert, or for a batch of them.
fn message(alerts: &[Arc<Alert>]) -> String {
    let mut text = MessageText::new();
    for (i, alert) in alerts.iter().enumerate() {
        if i > 0 {
            text.plain("\n\n----------\n\n");
        }
        describe(alert, &mut text);
    }
    text.finish()
}

fn describe(alert: &Alert, text: &mut MessageText) {
    text.bold(&format!("[{}] {}", alert.priority, alert.rule));
    text.plain(&format!("\n{}\n\n", alert.message));
    let mut labelled = |label: &str, value: &str| {
        text.bold(label);
        text.plain(&format!(" {value}\n"));
    };
    labelled("Time:", &format_iso8601(alert.time_ns));
    labelled("Host:", &alert.hostname);
    labelled("Source:", &alert.source);
    if !alert.tags.is_empty() {
        labelled("Tags:", &alert.tags.join(", "));
    }
    if !alert.fields.is_empty() {
        text.bold("Fields:");
        for (key, value) in &alert.fields {
            let value = value.as_ref().map_or_else(|| "<NA>".to_owned(), ToString::to_string);
            text.plain(&format!("\n• {key}: {value}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{Priority, Value};

    /// Reads MarkdownV2 as Telegram does for the subset used here (escapes and bold): the
    /// plain text, or where an unescaped special character or an open entity makes it fail.
    fn parse_markdown_v2(text: &str) -> Result<String, String> {
        let mut plain = String::new();
        let mut bold = false;
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => plain.push(chars.next().ok_or("a lone \\ at the end")?),
                '*' => bold = !bold,
                c if is_special(c) => return Err(format!("character '{c}' is reserved and must be escaped")),
                c => plain.push(c),
            }
        }
        if bold {
            return Err("can't find end of bold entity".into());
        }
        Ok(plain)
    }

    fn alert(message: &str, fields: usize) -> Arc<Alert> {
        Arc::new(Alert {
            time_ns: 1_685_022_245_478_445_995,
            rule: "Read sensitive file (untrusted) [v2]".into(),
            priority: Priority::Warning,
            source: "syscall".into(),
            hostname: "node-1.example.com".into(),
            message: message.into(),
            tags: vec!["filesystem".into(), "mitre_credential_access".into()].into(),
            fields: (0..fields)
                .map(|i| {
                    (format!("proc.aname[{i}]").into(), (i % 3 != 0).then(|| Value::Str(format!("bash-{i}.sh").into())))
                })
                .collect(),
        })
    }

    proptest::proptest! {
        #[test]
        fn escaped_text_reads_back_as_plain_text(text in "\\PC{0,200}") {
            proptest::prop_assert_eq!(parse_markdown_v2(&escape_markdown_v2(&text)), Ok(text));
        }

        #[test]
        fn every_message_parses_and_fits(body in "\\PC{0,300}", repeat in 1usize..60, fields in 0usize..80) {
            let one = alert(&body.repeat(repeat), fields);
            let text = message(&[one.clone(), one]);
            proptest::prop_assert!(text.encode_utf16().count() <= MAX_MESSAGE_UNITS);
            proptest::prop_assert!(parse_markdown_v2(&text).is_ok(), "{}", text);
        }
    }

    #[test]
    fn escapes_every_special_character() {
        assert_eq!(escape_markdown_v2(r"_*[]()~`>#+-=|{}.!\ ok"), r"\_\*\[\]\(\)\~\`\>\#\+\-\=\|\{\}\.\!\\ ok");
    }

    #[test]
    fn shows_priority_rule_output_and_fields() {
        let text = message(&[alert("File opened by cat (user=root)", 2)]);
        let plain = parse_markdown_v2(&text).unwrap();
        assert_eq!(
            plain,
            "[Warning] Read sensitive file (untrusted) [v2]\nFile opened by cat (user=root)\n\n\
             Time: 2023-05-25T13:44:05.478445995Z\nHost: node-1.example.com\nSource: syscall\n\
             Tags: filesystem, mitre_credential_access\nFields:\n• proc.aname[0]: <NA>\n• proc.aname[1]: bash-1.sh"
        );
        assert!(text.starts_with(r"*\[Warning\] Read sensitive file \(untrusted\) \[v2\]*"), "{text}");
    }

    #[test]
    fn a_long_message_is_cut_with_a_marker() {
        let text = message(&[alert(&"é🦀.".repeat(3000), 3)]);
        assert!(text.encode_utf16().count() <= MAX_MESSAGE_UNITS);
        assert!(text.encode_utf16().count() > MAX_MESSAGE_UNITS - 10, "cut well before the limit");
        let plain = parse_markdown_v2(&text).unwrap();
        assert!(plain.ends_with("é🦀.… [truncated]") || plain.ends_with("… [truncated]"), "{plain}");
        assert!(!plain.contains("Host:"));
    }
}
