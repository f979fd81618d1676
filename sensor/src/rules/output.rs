//! Alert output: rule output formats (`%field`, `%field[arg]`, `%transformer(field)`, `<NA>`
//! for missing values) and the two Falco renderings of an alert: the text line
//! `<time>: <Priority> <message>` and the JSON object of Falco's `json_output`.

use std::fmt::Write as _;
use std::sync::Arc;

use super::ast;
use super::eval::{Ctx, Operand};
use super::event::Value;
use super::loader::Priority;
use super::parser;

/// One piece of an output format.
#[derive(Debug)]
pub(crate) enum Piece {
    Lit(String),
    /// A placeholder; `first` when no earlier one has the same key (alerts list each
    /// key's value once); not `shown` in the text (an `append_output` extra field: in the
    /// alert's fields alone).
    Field {
        /// Shared with every alert that lists this field.
        key: Arc<str>,
        op: Operand,
        first: bool,
        shown: bool,
    },
    /// A field of the alert with a set value (an `append_output` extra field's).
    Constant {
        key: Arc<str>,
        value: Arc<str>,
    },
}

/// A compiled output format.
#[derive(Debug, Default)]
pub(crate) struct OutputFormat {
    pub pieces: Vec<Piece>,
    /// The length of its literal text: with the values, about half a message (sizes the
    /// message once instead of growing it).
    text_len: usize,
    /// The number of distinct placeholders: the alert's fields.
    keys: usize,
}

/// A placeholder as parsed, before field resolution.
#[derive(Debug)]
pub(crate) enum RawPiece {
    Lit(String),
    Field { key: String, operand: ast::Operand },
}

/// Splits an output format into literal text and `%` placeholders. A `%` that does not
/// start a field (`100%`, `%%`) stays literal.
pub(crate) fn split_format(text: &str) -> Vec<RawPiece> {
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        let Some(ch) = rest.chars().next() else { break };
        if ch == '%'
            && let Ok((operand, used)) = parser::parse_operand_prefix(&rest[1..])
        {
            if !lit.is_empty() {
                out.push(RawPiece::Lit(std::mem::take(&mut lit)));
            }
            out.push(RawPiece::Field { key: rest[1..=used].to_owned(), operand });
            i += 1 + used;
            continue;
        }
        lit.push(ch);
        i += ch.len_utf8();
    }
    if !lit.is_empty() {
        out.push(RawPiece::Lit(lit));
    }
    out
}

/// A list field's value as libsinsp renders one: its values between parentheses, separated
/// by commas (one value too: `(a)`).
fn list_text(v: &Value<'_>) -> String {
    match v {
        Value::List(items) => format!("({})", items.iter().map(Value::to_string).collect::<Vec<_>>().join(",")),
        one => format!("({one})"),
    }
}

/// Renders a value for an output line: control characters escaped as in Falco.
pub(crate) fn render(v: &Value<'_>, out: &mut String) {
    let written = match v {
        // Text straight in, without the formatting machinery.
        Value::Str(s) => Escaped(out).write_str(s),
        other => write!(Escaped(out), "{other}"),
    };
    written.expect("writing into a String cannot fail");
}

/// Text written with control characters escaped as in Falco, without an intermediate copy.
struct Escaped<'o>(&'o mut String);

impl std::fmt::Write for Escaped<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        // Control characters are U+0000–U+001F and U+007F–U+009F: bytes below 0x20, 0x7F, or
        // a sequence starting 0xC2. Text without those bytes has none (the common case,
        // checked without decoding).
        if !s.bytes().any(|b| b < 0x20 || b == 0x7f || b == 0xc2) {
            self.0.push_str(s);
            return Ok(());
        }
        for c in s.chars() {
            if c.is_control() {
                write!(self.0, "\\u{:04x}", u32::from(c))?;
            } else {
                self.0.push(c);
            }
        }
        Ok(())
    }
}

impl OutputFormat {
    pub(crate) fn new(pieces: Vec<Piece>) -> Self {
        let text_len = pieces.iter().map(|p| if let Piece::Lit(s) = p { s.len() } else { 0 }).sum();
        let keys =
            pieces.iter().filter(|p| matches!(p, Piece::Field { first: true, .. } | Piece::Constant { .. })).count();
        OutputFormat { pieces, text_len, keys }
    }

    /// Renders the message and collects the typed values of its fields.
    pub(crate) fn format(&self, ctx: &mut Ctx<'_>) -> (String, AlertFields) {
        let mut msg = String::with_capacity(self.text_len * 2);
        let mut fields: AlertFields = Vec::with_capacity(self.keys);
        for p in &self.pieces {
            match p {
                Piece::Lit(s) => msg.push_str(s),
                Piece::Constant { key, value } => {
                    fields.push((key.clone(), Some(Value::Str(value.to_string().into()))))
                }
                Piece::Field { key, op, first, shown } => {
                    let v = ctx.value(op);
                    // A list field is one text in Falco's output and its output fields: `(a,b)`.
                    let v = match (v, op) {
                        (Some(v), Operand::Field { id, .. }) if id.info().list => {
                            Some(std::borrow::Cow::Owned(Value::Str(list_text(&v).into())))
                        }
                        (v, _) => v,
                    };
                    match v.as_deref() {
                        _ if !shown => {}
                        Some(v) => render(v, &mut msg),
                        None => msg.push_str("<NA>"),
                    }
                    if *first {
                        fields.push((key.clone(), v.map(|v| std::borrow::Cow::into_owned(v).into_owned())));
                    }
                }
            }
        }
        (msg, fields)
    }
}

/// A rule match, ready to print or send.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    /// Event time, nanoseconds since the epoch.
    pub time_ns: u64,
    /// Rule name.
    pub rule: String,
    /// Rule priority.
    pub priority: Priority,
    /// Event source (`syscall`).
    pub source: String,
    /// Host name reported in JSON.
    pub hostname: String,
    /// The rendered output format (without time and priority).
    pub message: String,
    /// Rule tags.
    pub tags: Arc<[String]>,
    /// Values of the output's fields, keyed as written (`proc.aname[2]`); `None` = missing.
    pub fields: AlertFields,
}

/// An alert's output fields: each name as written in the output format (shared by the
/// rule's alerts) with its value; `None` = missing.
pub type AlertFields = Vec<(Arc<str>, Option<Value<'static>>)>;

/// Splits nanoseconds since the epoch into a UTC civil date and time.
fn civil(ns: u64) -> (i64, u32, u32, u32, u32, u32, u32) {
    let secs = ns / 1_000_000_000;
    let nanos = u32::try_from(ns % 1_000_000_000).unwrap_or(0);
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let sod = u32::try_from(secs % 86_400).unwrap_or(0);
    // Days to civil date (proleptic Gregorian), after H. Hinnant's algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, sod / 3600, sod / 60 % 60, sod % 60, nanos)
}

/// How text alerts begin: the time of day in the node's time zone (Falco's default), in
/// UTC, or ISO 8601 (Falco's `time_format_iso_8601`). One setting for the process, as in
/// Falco.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeFormat {
    /// `HH:MM:SS.nnnnnnnnn` in the node's time zone.
    #[default]
    Local,
    /// `HH:MM:SS.nnnnnnnnn` in UTC.
    Utc,
    /// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
    Iso8601,
}

static TIME_FORMAT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Sets how text alerts begin, from now on.
pub fn set_time_format(format: TimeFormat) {
    TIME_FORMAT.store(format as u8, std::sync::atomic::Ordering::Relaxed);
}

fn time_format() -> TimeFormat {
    match TIME_FORMAT.load(std::sync::atomic::Ordering::Relaxed) {
        1 => TimeFormat::Utc,
        2 => TimeFormat::Iso8601,
        _ => TimeFormat::Local,
    }
}

/// Which properties the JSON alerts of the outputs Falco has (stdout, file, syslog,
/// program, webhook) carry: Falco's `json_include_*_property` keys. The alert store and the
/// console always keep the whole alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JsonAlertShape {
    /// `output`: the text line (default true).
    pub output: bool,
    /// `message`: the text line without its time and priority (default false).
    pub message: bool,
    /// `output_fields` (default true).
    pub output_fields: bool,
    /// `tags` (default true).
    pub tags: bool,
}

impl Default for JsonAlertShape {
    fn default() -> Self {
        JsonAlertShape { output: true, message: false, output_fields: true, tags: true }
    }
}

static JSON_SHAPE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0b1101);

impl JsonAlertShape {
    fn bits(self) -> u8 {
        u8::from(self.output)
            | u8::from(self.message) << 1
            | u8::from(self.output_fields) << 2
            | u8::from(self.tags) << 3
    }

    fn of_bits(bits: u8) -> Self {
        JsonAlertShape {
            output: bits & 1 != 0,
            message: bits & 2 != 0,
            output_fields: bits & 4 != 0,
            tags: bits & 8 != 0,
        }
    }
}

/// Sets the shape of the outputs' JSON alerts, from now on.
pub fn set_json_shape(shape: JsonAlertShape) {
    JSON_SHAPE.store(shape.bits(), std::sync::atomic::Ordering::Relaxed);
}

/// The text alerts' time prefix: `HH:MM:SS.nnnnnnnnn` in the node's time zone (as Falco's
/// `%evt.time`), or in UTC, or ISO 8601 ([`set_time_format`]).
pub fn format_time(ns: u64) -> String {
    match time_format() {
        TimeFormat::Local => format_local_clock(ns),
        TimeFormat::Utc => format_clock(ns, false, true),
        TimeFormat::Iso8601 => format_iso8601(ns),
    }
}

/// `HH:MM:SS.nnnnnnnnn` in the time zone of the node (`TZ`, else `/etc/localtime`; UTC
/// without either).
fn format_local_clock(ns: u64) -> String {
    let secs = (ns / 1_000_000_000) as libc::time_t;
    // SAFETY: localtime_r writes the `tm` it is given and reads `secs`; both are ours.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&secs, &mut tm) }.is_null() {
        return format_clock(ns, false, true);
    }
    format!("{:02}:{:02}:{:02}.{:09}", tm.tm_hour, tm.tm_min, tm.tm_sec, ns % 1_000_000_000)
}

/// The time (UTC) as libsinsp writes it: `[YYYY-MM-DD ]HH:MM:SS[.nnnnnnnnn]`.
pub fn format_clock(ns: u64, date: bool, nanos: bool) -> String {
    let (y, mo, d, h, mi, s, n) = civil(ns);
    let mut out = if date { format!("{y:04}-{mo:02}-{d:02} ") } else { String::new() };
    out.push_str(&format!("{h:02}:{mi:02}:{s:02}"));
    if nanos {
        out.push_str(&format!(".{n:09}"));
    }
    out
}

/// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`, the JSON `time`.
pub fn format_iso8601(ns: u64) -> String {
    let (y, mo, d, h, mi, s, n) = civil(ns);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{n:09}Z")
}

impl Alert {
    /// An alert the sensor raises about itself, now: source `internal`, tags `sensor` and
    /// `internal`.
    pub fn internal(rule: &str, priority: Priority, message: String, hostname: String, fields: AlertFields) -> Alert {
        let time_ns =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        Alert {
            time_ns,
            rule: rule.to_owned(),
            priority,
            source: "internal".into(),
            hostname,
            message,
            tags: vec!["sensor".into(), "internal".into()].into(),
            fields,
        }
    }

    /// Falco's JSON alert as the outputs send it: [`Alert::to_json`] with the properties
    /// [`set_json_shape`] leaves out removed, and `message` when it asks for it.
    pub fn to_output_json(&self) -> serde_json::Value {
        self.to_json_shaped(JsonAlertShape::of_bits(JSON_SHAPE.load(std::sync::atomic::Ordering::Relaxed)))
    }

    /// [`Alert::to_json`] with the properties of `shape`.
    pub fn to_json_shaped(&self, shape: JsonAlertShape) -> serde_json::Value {
        let mut json = self.to_json();
        if let Some(map) = json.as_object_mut() {
            for (key, kept) in [("output", shape.output), ("output_fields", shape.output_fields), ("tags", shape.tags)]
            {
                if !kept {
                    map.remove(key);
                }
            }
            if shape.message {
                map.insert("message".into(), self.message.clone().into());
            }
        }
        json
    }

    /// Falco's text line: `<time>: <Priority> <message>`.
    pub fn to_text(&self) -> String {
        format!("{}: {} {}", format_time(self.time_ns), self.priority, self.message)
    }

    /// Falco's JSON alert (`time`, `rule`, `priority`, `source`, `hostname`, `output`, `tags`,
    /// `output_fields` with typed values and `evt.time` in nanoseconds).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(FalcoJson::of(self)).unwrap_or_default()
    }

    /// [`Alert::to_json`]'s text, written without building the value first (what a store
    /// keeps of each alert).
    pub fn to_json_text(&self) -> String {
        serde_json::to_string(&FalcoJson::of(self)).unwrap_or_default()
    }
}

/// Falco's JSON alert, declared once for both renderings: its keys in the order a JSON
/// object's come out of `serde_json` (sorted), so both give the same text.
#[derive(serde::Serialize)]
struct FalcoJson<'a> {
    hostname: &'a str,
    output: String,
    output_fields: OutputFields<'a>,
    priority: &'a str,
    rule: &'a str,
    source: &'a str,
    tags: &'a [String],
    time: String,
}

impl<'a> FalcoJson<'a> {
    fn of(alert: &'a Alert) -> FalcoJson<'a> {
        FalcoJson {
            hostname: &alert.hostname,
            output: alert.to_text(),
            output_fields: OutputFields(alert),
            priority: alert.priority.as_str(),
            rule: &alert.rule,
            source: &alert.source,
            tags: &alert.tags,
            time: format_iso8601(alert.time_ns),
        }
    }
}

/// `output_fields`: `evt.time` (nanoseconds), then each field's typed value (null when
/// missing), as a map fills: in key order, a later field replacing an earlier of its name.
struct OutputFields<'a>(&'a Alert);

impl serde::Serialize for OutputFields<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let time = Value::UInt(self.0.time_ns);
        let mut entries: Vec<(&str, Option<&Value>)> = Vec::with_capacity(self.0.fields.len() + 1);
        entries.push(("evt.time", Some(&time)));
        entries.extend(self.0.fields.iter().map(|(k, v)| (k.as_ref(), v.as_ref())));
        // Stable: of a name given twice, the later stays later.
        entries.sort_by(|a, b| a.0.cmp(b.0));
        let mut map = serializer.serialize_map(None)?;
        for (i, (key, value)) in entries.iter().enumerate() {
            if entries.get(i + 1).is_some_and(|next| next.0 == *key) {
                continue;
            }
            match value {
                None => map.serialize_entry(key, &())?,
                Some(Value::Int(n)) => map.serialize_entry(key, n)?,
                Some(Value::UInt(n)) => map.serialize_entry(key, n)?,
                Some(Value::Bool(b)) => map.serialize_entry(key, b)?,
                Some(other) => map.serialize_entry(key, &format_args!("{other}"))?,
            }
        }
        map.end()
    }
}

/// Why a JSON alert could not be read back.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct AlertJsonError(String);

impl Alert {
    /// Reads back Falco's JSON alert (what [`Alert::to_json`] writes, and what Falco's
    /// `json_output` and `http_output` send): `time` (RFC 3339; else `output_fields`'s
    /// `evt.time`), `rule`, `priority`, `output`; `source`, `hostname`, `tags` and
    /// `output_fields` when present. Field values keep their JSON type (numbers, booleans,
    /// text; anything else as its JSON text).
    pub fn from_json(json: &serde_json::Value) -> Result<Alert, AlertJsonError> {
        let err = |what: &str| AlertJsonError(what.to_owned());
        let text = |key: &str| json.get(key).and_then(serde_json::Value::as_str);
        let object = json.as_object().ok_or_else(|| err("not a JSON object"))?;
        let fields = match object.get("output_fields") {
            None | Some(serde_json::Value::Null) => serde_json::Map::new(),
            Some(serde_json::Value::Object(map)) => map.clone(),
            Some(_) => return Err(err("`output_fields` is not an object")),
        };
        let time_ns = match text("time") {
            Some(t) => crate::enrich::parse_rfc3339_ns(t).ok_or_else(|| err("`time` is not an RFC 3339 time"))?,
            None => fields.get("evt.time").and_then(serde_json::Value::as_u64).ok_or_else(|| err("no `time`"))?,
        };
        let rule = text("rule").filter(|r| !r.is_empty()).ok_or_else(|| err("no `rule`"))?.to_owned();
        let priority = text("priority").ok_or_else(|| err("no `priority`"))?;
        let priority = Priority::parse(priority).ok_or_else(|| err(&format!("unknown priority `{priority}`")))?;
        let output = text("output").ok_or_else(|| err("no `output`"))?;
        // `output` is the text line, `<time>: <Priority> <message>` (the time in the sender's
        // format and zone); the message alone is kept.
        let message = output
            .split_once(&format!(": {priority} "))
            .filter(|(time, _)| !time.is_empty() && time.len() <= 40 && !time.contains(' '))
            .map_or(output, |(_, message)| message)
            .to_owned();
        let tags = match object.get("tags") {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(serde_json::Value::Array(tags)) => tags
                .iter()
                .map(|t| t.as_str().map(str::to_owned).ok_or_else(|| err("a tag is not text")))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(err("`tags` is not a list")),
        };
        let fields = fields
            .into_iter()
            .filter(|(key, value)| !(key == "evt.time" && value.as_u64() == Some(time_ns)))
            .map(|(key, value)| {
                let value = match value {
                    serde_json::Value::Null => None,
                    serde_json::Value::Bool(b) => Some(Value::Bool(b)),
                    serde_json::Value::Number(n) => Some(match (n.as_u64(), n.as_i64()) {
                        (Some(u), _) => Value::UInt(u),
                        (None, Some(i)) => Value::Int(i),
                        _ => Value::Str(n.to_string().into()),
                    }),
                    serde_json::Value::String(s) => Some(Value::Str(s.into())),
                    other => Some(Value::Str(other.to_string().into())),
                };
                (Arc::from(key), value)
            })
            .collect();
        Ok(Alert {
            time_ns,
            rule,
            priority,
            source: text("source").unwrap_or("syscall").to_owned(),
            hostname: text("hostname").unwrap_or_default().to_owned(),
            message,
            tags: tags.into(),
            fields,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_in_values_are_escaped_and_other_text_is_not() {
        let rendered = |text: &str| {
            let mut out = String::new();
            render(&Value::str(text), &mut out);
            out
        };
        assert_eq!(rendered("plain /etc/shadow"), "plain /etc/shadow");
        assert_eq!(rendered("a\x1b[2Jb\nc\x7f"), "a\\u001b[2Jb\\u000ac\\u007f");
        // U+0085 (a C1 control) is escaped; U+00A0 and U+00E9 share or neighbour its lead byte
        // and are not.
        assert_eq!(rendered("x\u{85}y\u{a0}z\u{e9}"), "x\\u0085y\u{a0}z\u{e9}");
    }

    #[test]
    fn the_json_text_is_the_json_values_text() {
        let field = |k: &str, v: Option<Value<'static>>| (Arc::<str>::from(k), v);
        let alert = Alert {
            time_ns: 1_685_022_245_478_445_995,
            rule: "Rule \"quoted\" \u{1b}".into(),
            priority: Priority::Critical,
            source: "syscall".into(),
            hostname: "node-é".into(),
            message: "text\nwith ✓ and \\".into(),
            tags: vec!["b".into(), "a".into()].into(),
            fields: vec![
                field("proc.name", Some(Value::str("cat"))),
                field("evt.time", Some(Value::Str("given".into()))),
                field("fd.sport", Some(Value::UInt(8080))),
                field("evt.rawres", Some(Value::Int(-2))),
                field("proc.name", Some(Value::str("later wins"))),
                field("fd.typechar", None),
                field("evt.is_open_write", Some(Value::Bool(true))),
                field("fd.sip", Some(Value::Ip("10.0.0.1".parse().unwrap()))),
                field("proc.aname", Some(Value::List(vec![Value::str("sh"), Value::str("init")]))),
                field("evt.buffer", Some(Value::Bytes(b"\x00\xff".to_vec().into()))),
                field("Z.upper", Some(Value::str(""))),
            ],
        };
        assert_eq!(alert.to_json_text(), alert.to_json().to_string());
        assert_eq!(alert.to_json()["output_fields"]["proc.name"], "later wins");
        assert_eq!(alert.to_json()["output_fields"]["evt.time"], "given", "a field named evt.time replaces it");
        let plain = Alert { fields: vec![], ..alert };
        assert_eq!(plain.to_json_text(), plain.to_json().to_string());
        assert_eq!(plain.to_json()["output_fields"]["evt.time"], 1_685_022_245_478_445_995u64);
    }

    #[test]
    fn a_json_alert_reads_back_as_it_was() {
        let alert = Alert {
            time_ns: 1_685_022_245_478_445_995,
            rule: "Read sensitive file".into(),
            priority: Priority::Warning,
            source: "syscall".into(),
            hostname: "node-a".into(),
            message: "read /etc/shadow (user=root pid=42)".into(),
            tags: vec!["T1003".into(), "filesystem".into()].into(),
            fields: vec![
                ("fd.name".into(), Some(Value::Str("/etc/shadow".into()))),
                ("proc.pid".into(), Some(Value::UInt(42))),
                ("evt.rawres".into(), Some(Value::Int(-2))),
                ("fd.typechar".into(), None),
            ],
        };
        let back = Alert::from_json(&alert.to_json()).unwrap();
        assert_eq!(back.to_json(), alert.to_json());
        assert_eq!(back.message, alert.message);
        // An output shaped as Falco's json_include_* keys say; an ISO 8601 time prefix
        // (another node's `time_format`) still reads back to the message.
        let keys = |shape| {
            let json = alert.to_json_shaped(shape);
            json.as_object().unwrap().keys().cloned().collect::<Vec<_>>().join(",")
        };
        assert_eq!(keys(JsonAlertShape::default()), "hostname,output,output_fields,priority,rule,source,tags,time");
        let falco_all_off = JsonAlertShape { output: false, message: true, output_fields: false, tags: false };
        assert_eq!(keys(falco_all_off), "hostname,message,priority,rule,source,time");
        assert_eq!(alert.to_json_shaped(falco_all_off)["message"], alert.message);
        let mut iso = alert.to_json();
        iso["output"] = format!("{}: Warning {}", format_iso8601(alert.time_ns), alert.message).into();
        assert_eq!(Alert::from_json(&iso).unwrap().message, alert.message);
        for (bad, why) in [
            (serde_json::json!([1]), "not a JSON object"),
            (serde_json::json!({"rule": "R", "priority": "Warning", "output": "x"}), "no `time`"),
            (serde_json::json!({"time": "yesterday", "rule": "R", "priority": "Warning", "output": "x"}), "RFC 3339"),
            (
                serde_json::json!({"time": "2026-12-06T00:00:00Z", "rule": "R", "priority": "Loud", "output": "x"}),
                "priority",
            ),
            (
                serde_json::json!({"time": "2026-12-06T00:00:00Z", "rule": "R", "priority": "Warning", "output": "x", "tags": "a"}),
                "tags",
            ),
        ] {
            let e = Alert::from_json(&bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn times() {
        assert_eq!(format_iso8601(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(format_iso8601(1_685_022_245_478_445_995), "2023-05-25T13:44:05.478445995Z");
        assert_eq!(format_clock(1_685_022_245_478_445_995, false, true), "13:44:05.478445995");
        assert_eq!(format_clock(1_685_022_245_478_445_995, true, true), "2023-05-25 13:44:05.478445995");
        assert_eq!(format_clock(1_685_022_245_478_445_995, true, false), "2023-05-25 13:44:05");
        assert_eq!(format_clock(1_685_022_245_478_445_995, false, false), "13:44:05");
        assert_eq!(format_iso8601(951_782_400_000_000_000), "2000-02-29T00:00:00.000000000Z");
    }

    proptest::proptest! {
        #[test]
        fn splitting_never_panics(s in ".{0,80}") {
            let _ = split_format(&s);
        }
    }

    #[test]
    fn splits_placeholders() {
        let p = split_format("a %proc.name b=%proc.aname[2]. 100% %toupper(user.name)%");
        let keys: Vec<String> = p
            .iter()
            .map(|x| match x {
                RawPiece::Lit(s) => format!("L{s}"),
                RawPiece::Field { key, .. } => format!("F{key}"),
            })
            .collect();
        assert_eq!(keys, ["La ", "Fproc.name", "L b=", "Fproc.aname[2]", "L. 100% ", "Ftoupper(user.name)", "L%"]);
    }
}
