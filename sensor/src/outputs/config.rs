//! The `outputs` section of the configuration file: a list of entries, each naming its type
//! by one key (`stdout: {...}`, `telegram: {...}`) beside the options every output shares.
//!
//! This is the raw, I/O-free stage of the configuration: [`super::OutputStage::start`] turns
//! it into running outputs (reading secrets, opening files, building HTTP clients).

use std::{
    fmt,
    num::{NonZeroU32, NonZeroUsize},
    time::Duration,
};

use serde::{
    Deserialize, Deserializer,
    de::{
        self, DeserializeSeed, IntoDeserializer as _, MapAccess, Visitor,
        value::{MapAccessDeserializer, StringDeserializer},
    },
};

use super::{
    file::FileConfig, grpc::GrpcConfig, smtp::SmtpConfig, stdout::StdoutConfig, telegram::TelegramConfig,
    webhook::WebhookConfig,
};
use crate::rules::Priority;

/// Every configured output, in order. The default is one stdout output printing Falco's text
/// line, which is what the sensor does without a configuration file.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputsConfig {
    /// The outputs, each with a unique name.
    pub outputs: Vec<OutputConfig>,
}

impl Default for OutputsConfig {
    fn default() -> Self {
        OutputsConfig::stdout(StdoutConfig::default())
    }
}

impl OutputsConfig {
    /// One stdout output in the given format, with default options.
    pub fn stdout(config: StdoutConfig) -> Self {
        OutputsConfig {
            outputs: vec![OutputConfig {
                name: "stdout".into(),
                options: OutputOptions::default(),
                kind: OutputKind::Stdout(config),
            }],
        }
    }
}

/// The type of an output with its own settings: the one key of an entry that is not a common
/// option. Adding an output type is one variant here and one arm in the stage's `start`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    /// Falco's text line or JSON on standard output.
    Stdout(StdoutConfig),
    /// JSON lines appended to a file.
    File(FileConfig),
    /// Telegram Bot API messages.
    Telegram(TelegramConfig),
    /// Falco's JSON alert POSTed to a URL.
    Webhook(WebhookConfig),
    /// Mail through an SMTP relay (Gmail); digests by default, see [`SMTP_DEFAULT_BATCH`].
    Smtp(SmtpConfig),
    /// Falco's gRPC outputs service (`sub`, `get`) for Falco's clients.
    Grpc(GrpcConfig),
    /// The alert store (SQLite), searchable with `sensor alerts search`; batched, see
    /// [`super::store::STORE_DEFAULT_BATCH`].
    Store(crate::store::StoreConfig),
    /// Batches of JSON alerts to the cluster's `sensor console`; see
    /// [`super::console::CONSOLE_DEFAULT_BATCH`].
    Console(super::console::ConsoleConfig),
    /// One datagram per alert to the local syslog socket (Falco's `syslog_output`).
    Syslog(super::syslog::SyslogConfig),
    /// Lines to a shell command's input (Falco's `program_output`).
    Program(super::program::ProgramConfig),
}

/// The batch an `smtp` output uses unless it sets its own: one digest mail a minute at most,
/// so a burst stays inside a mail provider's sending limits (Gmail's ~500 a day).
pub const SMTP_DEFAULT_BATCH: BatchConfig =
    BatchConfig { window: Duration::from_secs(60), max_alerts: NonZeroUsize::new(1000).expect("non-zero") };

/// One output: its type and the options every output has.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputConfig {
    /// Unique name, for messages and counters (`name`, default: the type key).
    pub name: String,
    /// The options shared by every output type.
    pub options: OutputOptions,
    /// The output's type and settings.
    pub kind: OutputKind,
}

/// The options every output has, beside its type key.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OutputOptions {
    /// Name of the output (default: its type).
    #[serde(default)]
    pub name: Option<String>,
    /// `false` keeps the entry in the file without starting it (secrets are not read).
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// Least severe priority delivered (default `debug`: everything).
    #[serde(default = "least_severe", deserialize_with = "deserialize_priority")]
    pub min_priority: Priority,
    /// Rules delivered or left out, by exact name.
    #[serde(default)]
    pub rules: NameFilter,
    /// Tags: an alert is delivered when it has one of `include` (if any) and none of `exclude`.
    #[serde(default)]
    pub tags: NameFilter,
    /// At most `alerts` alerts per `per` for each rule and container (default: no limit).
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// How failed deliveries are retried.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Longest one delivery attempt may take (default 10s).
    #[serde(default = "default_timeout", deserialize_with = "deserialize_duration")]
    pub timeout: Duration,
    /// The output's queue between detection and delivery.
    #[serde(default)]
    pub queue: QueueConfig,
    /// Collect alerts for a window and deliver them together (default: one at a time).
    #[serde(default)]
    pub batch: Option<BatchConfig>,
}

impl Default for OutputOptions {
    fn default() -> Self {
        OutputOptions {
            name: None,
            enabled: true,
            min_priority: Priority::Debug,
            rules: NameFilter::default(),
            tags: NameFilter::default(),
            rate_limit: None,
            retry: RetryPolicy::default(),
            timeout: default_timeout(),
            queue: QueueConfig::default(),
            batch: None,
        }
    }
}

fn enabled_by_default() -> bool {
    true
}

fn least_severe() -> Priority {
    Priority::Debug
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

/// Names to include (empty: all) and to exclude.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NameFilter {
    /// Only these (when not empty).
    #[serde(default)]
    pub include: Vec<String>,
    /// Never these.
    #[serde(default)]
    pub exclude: Vec<String>,
}

/// A token bucket per rule and container: `alerts` at once, refilled at `alerts` per `per`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Alerts let through per window (and the burst size).
    pub alerts: NonZeroU32,
    /// The window.
    #[serde(deserialize_with = "deserialize_positive_duration")]
    pub per: Duration,
}

/// Retries of a failed delivery: exponential backoff with jitter, capped.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included (default 5; 1 = no retry).
    pub attempts: NonZeroU32,
    /// Wait before the first retry (default 1s); doubles at each retry.
    #[serde(deserialize_with = "deserialize_duration")]
    pub initial_backoff: Duration,
    /// Longest wait between attempts (default 30s).
    #[serde(deserialize_with = "deserialize_duration")]
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: NonZeroU32::new(5).expect("non-zero"),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// An output's bounded queue.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Alerts waiting at most (default 1000).
    pub capacity: NonZeroUsize,
    /// Which alert a full queue drops (default `drop_oldest`).
    pub overflow: Overflow,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig { capacity: NonZeroUsize::new(1000).expect("non-zero"), overflow: Overflow::DropOldest }
    }
}

/// What a full queue does with a new alert.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Overflow {
    /// Drop the oldest queued alert to make room: recent alerts matter more in an incident.
    DropOldest,
    /// Drop the new alert.
    DropNewest,
}

/// Alerts collected for one delivery.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// How long the first alert of a batch waits for others.
    #[serde(deserialize_with = "deserialize_positive_duration")]
    pub window: Duration,
    /// A batch is delivered at once when it holds this many alerts (default 100).
    #[serde(default = "default_batch_size")]
    pub max_alerts: NonZeroUsize,
}

fn default_batch_size() -> NonZeroUsize {
    NonZeroUsize::new(100).expect("non-zero")
}

/// Parses a duration written as an integer and a unit: `500ms`, `5s`, `1m`, `1h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let expected = || format!("invalid duration `{text}`: expected a number and a unit (ms, s, m, h, d), e.g. `5s`");
    let n: u64 = digits.parse().map_err(|_| expected())?;
    let millis_per_unit = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(expected()),
    };
    n.checked_mul(millis_per_unit).map(Duration::from_millis).ok_or_else(|| format!("duration `{text}` is too long"))
}

/// Formats a duration the way the configuration writes it (`1m`, `1500ms`).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        0 => "0s".into(),
        _ if ms.is_multiple_of(86_400_000) => format!("{}d", ms / 86_400_000),
        _ if ms.is_multiple_of(3_600_000) => format!("{}h", ms / 3_600_000),
        _ if ms.is_multiple_of(60_000) => format!("{}m", ms / 60_000),
        _ if ms.is_multiple_of(1_000) => format!("{}s", ms / 1_000),
        _ => format!("{ms}ms"),
    }
}

/// Reads a duration option (`500ms`, `5s`, `1m`, `1h`, `7d`); for outputs' own settings too.
pub fn deserialize_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text).map_err(de::Error::custom)
}

/// Reads a duration option that must be more than zero.
pub fn deserialize_positive_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let duration = deserialize_duration(d)?;
    if duration.is_zero() {
        return Err(de::Error::custom("the duration must be more than 0"));
    }
    Ok(duration)
}

pub(crate) fn deserialize_priority<'de, D: Deserializer<'de>>(d: D) -> Result<Priority, D::Error> {
    let text = String::deserialize(d)?;
    Priority::parse(&text).ok_or_else(|| {
        de::Error::custom(format!(
            "unknown priority `{text}`, expected one of emergency, alert, critical, error, warning, notice, \
             informational, debug"
        ))
    })
}

impl<'de> Deserialize<'de> for OutputsConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_seq(OutputsVisitor)
    }
}

/// Reads the list of outputs, each entry knowing the names before it.
struct OutputsVisitor;

impl<'de> Visitor<'de> for OutputsVisitor {
    type Value = OutputsConfig;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of outputs")
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<OutputsConfig, A::Error> {
        let mut outputs: Vec<OutputConfig> = Vec::new();
        while let Some(output) = seq.next_element_seed(OutputVisitor { earlier: &outputs })? {
            outputs.push(output);
        }
        Ok(OutputsConfig { outputs })
    }
}

/// Reads one entry: the type key goes to [`OutputKind`], every other key to [`OutputOptions`].
struct OutputVisitor<'e> {
    /// The entries before this one, whose names this one's must differ from.
    earlier: &'e [OutputConfig],
}

impl<'de> DeserializeSeed<'de> for OutputVisitor<'_> {
    type Value = OutputConfig;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<OutputConfig, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for OutputVisitor<'_> {
    type Value = OutputConfig;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an output: a mapping with one type key ({})", declared_names::<OutputKind>().join(", "))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<OutputConfig, A::Error> {
        let mut split = TypeKeySplitter { map, kind: None };
        let options = OutputOptions::deserialize(MapAccessDeserializer::new(&mut split))?;
        let Some((type_key, kind)) = split.kind else {
            return Err(de::Error::custom(format!(
                "an output needs one type key: {}",
                declared_names::<OutputKind>().join(", ")
            )));
        };
        let name = options.name.clone().unwrap_or(type_key);
        if name.trim().is_empty() {
            return Err(de::Error::custom("an output's `name` must not be empty"));
        }
        if let Some(i) = self.earlier.iter().position(|o| o.name == name) {
            return Err(de::Error::custom(format!(
                "output {} is named `{name}` too; give one of them another `name`",
                i + 1
            )));
        }
        Ok(OutputConfig { name, options, kind })
    }
}

/// A view of an entry's mapping that hands the common options on and takes the type key out,
/// reading its value as an [`OutputKind`] on the way.
struct TypeKeySplitter<A> {
    map: A,
    kind: Option<(String, OutputKind)>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for TypeKeySplitter<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
        let type_seen = self.kind.as_ref().map(|(key, _)| key.as_str());
        match self.map.next_key_seed(EntryKey { type_seen })? {
            None => Ok(None),
            Some(EntryKeyKind::Option(key)) => {
                let key: StringDeserializer<A::Error> = key.into_deserializer();
                seed.deserialize(key).map(Some)
            }
            Some(EntryKeyKind::Type(key)) => {
                let entry = TypeEntry { key: Some(key.clone()), map: &mut self.map };
                let kind = OutputKind::deserialize(MapAccessDeserializer::new(entry))?;
                self.kind = Some((key, kind));
                self.next_key_seed(seed)
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
}

/// Reads a key of an entry and tells an option from the type. It checks the key while the
/// YAML reader is on it, so errors point at the key itself.
struct EntryKey<'k> {
    /// The type key already read, if any: a second one is an error.
    type_seen: Option<&'k str>,
}

enum EntryKeyKind {
    Option(String),
    Type(String),
}

impl<'de> DeserializeSeed<'de> for EntryKey<'_> {
    type Value = EntryKeyKind;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<EntryKeyKind, D::Error> {
        d.deserialize_string(self)
    }
}

impl Visitor<'_> for EntryKey<'_> {
    type Value = EntryKeyKind;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an output type or option")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<EntryKeyKind, E> {
        let (types, options) = (declared_names::<OutputKind>(), declared_names::<OutputOptions>());
        if options.contains(&key) {
            return Ok(EntryKeyKind::Option(key.to_owned()));
        }
        if !types.contains(&key) {
            return Err(E::custom(format!(
                "unknown key `{key}`: an output has one type ({}) and the options {}",
                types.join(", "),
                options.join(", ")
            )));
        }
        if let Some(first) = self.type_seen {
            return Err(E::custom(format!(
                "an output has one type, this one has `{first}` and `{key}`: make them two entries"
            )));
        }
        Ok(EntryKeyKind::Type(key.to_owned()))
    }
}

/// The type key already read and its value still in the entry's mapping: a one-entry map, which
/// serde reads as an externally tagged enum.
struct TypeEntry<'m, A> {
    key: Option<String>,
    map: &'m mut A,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for TypeEntry<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
        match self.key.take() {
            Some(key) => {
                let key: StringDeserializer<A::Error> = key.into_deserializer();
                seed.deserialize(key).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
}

/// The field names of a derived struct or the variant names of a derived enum, as serde's
/// derive declares them, so the lists in messages and in [`TypeKeySplitter`] cannot drift.
pub(crate) fn declared_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let mut names: &'static [&'static str] = &[];
    let _ = T::deserialize(NameProbe(&mut names));
    names
}

/// A deserializer that only records the names a derived impl declares, then fails.
struct NameProbe<'n>(&'n mut &'static [&'static str]);

impl<'de> Deserializer<'de> for NameProbe<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("name probe"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        self.deserialize_any(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = variants;
        self.deserialize_any(visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SensorConfig;

    fn parse(text: &str) -> Result<OutputsConfig, String> {
        SensorConfig::parse(text).map(|c| c.outputs).map_err(|e| e.to_string())
    }

    #[test]
    fn durations_take_a_number_and_a_unit() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        for bad in ["", "5", "s", "1.5s", "-1s", "5 s", "5sec", "10w", "99999999999999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        for d in ["7d", "1h", "25h", "1m", "90s", "1500ms", "0s"] {
            assert_eq!(format_duration(parse_duration(d).unwrap()), d);
        }
    }

    #[test]
    fn the_documented_example_reads() {
        let text = "\
outputs:
  - stdout: {format: json}
  - file: {path: /var/log/sensor/alerts.jsonl}
    min_priority: notice
  - telegram:
      chat_id: \"-1001234567890\"
      message_thread_id: 42
      token: {env: TELEGRAM_BOT_TOKEN}
    min_priority: warning
    rate_limit: {alerts: 10, per: 1m}
    rules: {exclude: [Noisy rule]}
    tags: {include: [container]}
    retry: {attempts: 3, initial_backoff: 500ms}
    queue: {capacity: 50, overflow: drop_newest}
  - webhook:
      url: http://falcosidekick:2801/
      headers: {Authorization: {env: WEBHOOK_AUTH}, X-Source: sensor}
    name: sidekick
    timeout: 2s
    batch: {window: 5s}
";
        let outputs = parse(text).unwrap().outputs;
        let names: Vec<&str> = outputs.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["stdout", "file", "telegram", "sidekick"]);
        let telegram = &outputs[2].options;
        assert_eq!(telegram.min_priority, Priority::Warning);
        assert_eq!(telegram.rate_limit.unwrap().per, Duration::from_secs(60));
        assert_eq!(telegram.rate_limit.unwrap().alerts.get(), 10);
        assert_eq!(telegram.rules.exclude, ["Noisy rule"]);
        assert_eq!(telegram.tags.include, ["container"]);
        assert_eq!(telegram.retry.attempts.get(), 3);
        assert_eq!(telegram.retry.initial_backoff, Duration::from_millis(500));
        assert_eq!(telegram.retry.max_backoff, RetryPolicy::default().max_backoff);
        assert_eq!(telegram.queue.capacity.get(), 50);
        assert_eq!(telegram.queue.overflow, Overflow::DropNewest);
        let sidekick = &outputs[3].options;
        assert_eq!(sidekick.timeout, Duration::from_secs(2));
        assert_eq!(sidekick.batch.unwrap().max_alerts, default_batch_size());
        let file = &outputs[1].options;
        assert_eq!((file.min_priority, file.enabled, file.rate_limit), (Priority::Notice, true, None));
        assert!(
            matches!(&outputs[1].kind, OutputKind::File(f) if f.path.to_str() == Some("/var/log/sensor/alerts.jsonl"))
        );
    }

    #[test]
    fn without_outputs_key_the_default_is_stdout_text() {
        assert_eq!(parse("{}\n").unwrap(), OutputsConfig::default());
        assert_eq!(parse("").unwrap(), OutputsConfig::default());
        assert_eq!(parse("outputs: []").unwrap().outputs, []);
    }

    /// The error names the line (and column) where the problem is.
    fn error_at(text: &str, line: usize, needle: &str) {
        let err = parse(text).unwrap_err();
        assert!(err.starts_with(&format!("{line}:")), "expected line {line}: {err}");
        assert!(err.contains(needle), "expected `{needle}` in: {err}");
    }

    #[test]
    fn errors_carry_line_numbers() {
        error_at("outputs:\n  - stdout: {}\n    min_priorty: warning\n", 3, "unknown key `min_priorty`");
        error_at("outputs:\n  - stdout: {}\n  - file: {path: /x, mode: 0600}\n", 3, "mode");
        error_at("outputs:\n  - stdout: {}\n    timeout: 5x\n", 3, "invalid duration `5x`");
        error_at("outputs:\n  - stdout: {}\n    min_priority: loud\n", 3, "unknown priority `loud`");
        error_at("outputs:\n  - stdout: {format: xml}\n", 2, "xml");
        error_at("outputs:\n  - stdout: {}\n    queue: {capacity: 0}\n", 3, "expected a nonzero");
        error_at("outputs:\n  - stdout: {}\n    rate_limit: {alerts: 5, per: 0s}\n", 3, "more than 0");
        error_at("outputs:\n  - stdout: {}\n    queue: {overflow: drop_all}\n", 3, "drop_all");
        error_at("output:\n  - stdout: {}\n", 1, "output");
        error_at("outputs:\n  - stdout: {}\n  - name: x\n", 3, "needs one type key");
        error_at("outputs:\n  - stdout: {}\n    file: {path: /x}\n", 3, "make them two entries");
        error_at("outputs:\n  - stdout: {}\n  -\n    stdout: {}\n", 4, "output 1 is named `stdout` too");
        error_at(
            "outputs:\n  - stdout: {}\n  - file: {path: /x}\n    name: stdout\n",
            3,
            "output 1 is named `stdout` too",
        );
        error_at("outputs:\n  - webhook: {url: x, headers: {A: [1]}}\n", 2, "{env: NAME}");
        error_at("outputs:\n  - telegram: {chat_id: 1, token: {env: X}, bogus: 1}\n", 2, "unknown field `bogus`");
    }

    #[test]
    fn names_come_from_the_derives() {
        assert_eq!(
            declared_names::<OutputKind>(),
            ["stdout", "file", "telegram", "webhook", "smtp", "grpc", "store", "console", "syslog", "program"]
        );
        assert!(declared_names::<OutputOptions>().contains(&"rate_limit"));
    }
}
