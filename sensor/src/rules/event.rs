//! What the engine evaluates: anything that can supply field values ([`FieldSource`]) and
//! the values themselves ([`Value`]). Live events, replayed captures and field maps (rule
//! tests, replays of field maps) all reach the engine as `state::EventView`.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use super::fields::{Field, FieldArg};

/// A field value produced by an event. Text and bytes borrow from the event and its state
/// where they can (`'a`), so reading a field on the hot path does not allocate; stored
/// values (alerts, test expectations) are `Value<'static>`.
#[derive(Clone, Debug, PartialEq)]
pub enum Value<'a> {
    /// Text (also flags, rendered `A|B`).
    Str(Cow<'a, str>),
    /// Signed integer.
    Int(i64),
    /// Unsigned integer.
    UInt(u64),
    /// Boolean.
    Bool(bool),
    /// IP address.
    Ip(IpAddr),
    /// Raw bytes.
    Bytes(Cow<'a, [u8]>),
    /// Several values (all ancestors, all descriptor types...).
    List(Vec<Value<'a>>),
}

impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => f.write_str(s),
            Value::Int(i) => write!(f, "{i}"),
            Value::UInt(u) => write!(f, "{u}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Ip(ip) => write!(f, "{ip}"),
            Value::Bytes(b) => f.write_str(&String::from_utf8_lossy(b)),
            Value::List(items) => {
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{v}")?;
                }
                Ok(())
            }
        }
    }
}

impl<'a> Value<'a> {
    /// Text borrowed for as long as `'a`.
    pub fn str(s: &'a str) -> Self {
        Value::Str(Cow::Borrowed(s))
    }

    /// The value owning what it borrowed, to outlive the event.
    pub fn into_owned(self) -> Value<'static> {
        match self {
            Value::Str(s) => Value::Str(Cow::Owned(s.into_owned())),
            Value::Int(i) => Value::Int(i),
            Value::UInt(u) => Value::UInt(u),
            Value::Bool(b) => Value::Bool(b),
            Value::Ip(ip) => Value::Ip(ip),
            Value::Bytes(b) => Value::Bytes(Cow::Owned(b.into_owned())),
            Value::List(items) => Value::List(items.into_iter().map(Value::into_owned).collect()),
        }
    }
}

/// An event that can supply field values (`state::EventView`); the engine asks for each
/// field at most once per event, and only for the fields its rules name, so extraction can
/// be lazy.
///
/// What the engine expects from [`FieldSource::field`] (`id.info()` gives name and type):
/// - the value in the field's [`super::fields::FieldType`] (`Str` for text and flags,
///   `Int`/`UInt` for numbers and nanosecond times, `Ip` for addresses and networks);
///   a text value for a numeric field is parsed, other mismatches do not match;
/// - flags rendered `A|B|C` (`evt.arg.flags`), capabilities space-separated
///   (`thread.cap_effective`);
/// - ancestor fields (`proc.aname`...) with `Some(Index(n))`: level n (0 = the process,
///   1 = the parent); with `None`: a [`Value::List`] of all ancestors from the parent up;
/// - either-end fields (`fd.ip`, `fd.net`, `fd.port`, `fd.proto`): a list of the client and
///   server values;
/// - `evt.arg` with `Key(name)` (`evt.arg.flags`) or `Index(n)` (`evt.arg[0]`); keyed
///   fields (`proc.env[HOME]`, `k8s.pod.label[app]`) with `Key`;
/// - `None` when the value is unknown: every test on it is then false, as in Falco.
pub trait FieldSource {
    /// The event type (syscall name), e.g. `openat`: the value of `evt.type`. The engine
    /// picks an event's rules by it and answers their `evt.type` tests from it.
    fn event_type(&self) -> &str;
    /// The event source; rules only see events of their own source.
    fn source(&self) -> &str {
        "syscall"
    }
    /// Event time in nanoseconds since the epoch.
    fn timestamp_ns(&self) -> u64 {
        0
    }
    /// The value of a field, or `None` when the event cannot supply it; it may borrow from
    /// the event.
    fn field(&self, id: Field, arg: Option<&FieldArg>) -> Option<Value<'_>>;
}
