//! What the engine evaluates: anything that can supply field values ([`FieldSource`]),
//! the values themselves ([`Value`]), and a simple map-backed event ([`MapEvent`]) for tests,
//! replay files and the rule unit-test format.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

use super::fields::{self, ArgKind, Field, FieldArg, FieldType};

/// A field value produced by an event.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Text (also flags, rendered `A|B`).
    Str(String),
    /// Signed integer.
    Int(i64),
    /// Unsigned integer.
    UInt(u64),
    /// Boolean.
    Bool(bool),
    /// IP address.
    Ip(IpAddr),
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// Several values (all ancestors, all descriptor types...).
    List(Vec<Value>),
}

impl fmt::Display for Value {
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

impl Value {
    /// The value as JSON, keeping numbers and booleans typed.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Int(i) => serde_json::Value::from(*i),
            Value::UInt(u) => serde_json::Value::from(*u),
            Value::Bool(b) => serde_json::Value::Bool(*b),
            other => serde_json::Value::String(other.to_string()),
        }
    }
}

/// An event that can supply field values. The live capture event and [`MapEvent`] both
/// implement it; the engine asks for each field at most once per event, and only for the
/// fields its rules name, so extraction can be lazy.
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
    /// The event type (syscall name), e.g. `openat`.
    fn event_type(&self) -> &str;
    /// The event source; rules only see events of their own source.
    fn source(&self) -> &str {
        "syscall"
    }
    /// Event time in nanoseconds since the epoch.
    fn timestamp_ns(&self) -> u64 {
        0
    }
    /// The value of a field, or `None` when the event cannot supply it.
    fn field(&self, id: Field, arg: Option<&FieldArg>) -> Option<Value>;
}

/// An event held as a map from fields to values; the test and replay format.
///
/// Conveniences, so that test events stay short: ancestors can be given as `proc.aname:
/// [parent, grandparent, ...]` or one by one (`proc.pname`, `proc.aname[2]`...), each form
/// filling in the other; `proc.cmdline` defaults to `proc.name` + `proc.args`;
/// `fd.directory`/`fd.filename` default to the parts of an absolute `fd.name`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MapEvent {
    evt_type: String,
    source: String,
    ts: u64,
    values: HashMap<(Field, Option<FieldArg>), Value>,
}

/// (ancestor field, field for level 0, field for level 1)
const ANCESTRY: [(&str, &str, &str); 6] = [
    ("proc.aname", "proc.name", "proc.pname"),
    ("proc.aexe", "proc.exe", "proc.pexe"),
    ("proc.aexepath", "proc.exepath", "proc.pexepath"),
    ("proc.acmdline", "proc.cmdline", "proc.pcmdline"),
    ("proc.apid", "proc.pid", "proc.ppid"),
    ("proc.aargs", "proc.args", ""),
];

fn id_of(name: &str) -> Option<Field> {
    fields::by_name(name)
}

impl MapEvent {
    /// An empty event of the given type.
    pub fn new(evt_type: impl Into<String>) -> Self {
        MapEvent { evt_type: evt_type.into(), source: "syscall".into(), ..Default::default() }
    }

    /// Sets a field by name as written (`proc.aname[2]`, `evt.arg.flags`); the value is
    /// converted to the field's type.
    pub fn set(&mut self, name: &str, value: &serde_json::Value) -> Result<(), String> {
        let (base, bracket) = split_bracket(name);
        let r = fields::resolve(base, bracket)?;
        let multi = fields::is_multi(&r) || (r.id.info().arg == ArgKind::OptIndex && r.arg.is_none());
        let ty = fields::effective_type(&r);
        let v = if multi && let serde_json::Value::Array(items) = value {
            Value::List(
                items.iter().map(|i| convert(ty, i)).collect::<Result<_, _>>().map_err(|e| format!("{name}: {e}"))?,
            )
        } else {
            convert(ty, value).map_err(|e| format!("{name}: {e}"))?
        };
        match r.id.info().name {
            "evt.type" => self.evt_type = v.to_string(),
            "evt.source" => self.source = v.to_string(),
            "evt.rawtime" => {
                if let Value::UInt(t) = v {
                    self.ts = t;
                }
            }
            _ => {}
        }
        self.values.insert((r.id, r.arg), v);
        Ok(())
    }

    /// Builds an event from a JSON object of field names to values; `evt.type` is required.
    pub fn from_json(obj: &serde_json::Value) -> Result<Self, String> {
        let serde_json::Value::Object(map) = obj else {
            return Err(format!("an event must be a mapping of field names to values, not {obj}"));
        };
        let mut ev = MapEvent::new("");
        for (k, v) in map {
            ev.set(k, v)?;
        }
        if ev.evt_type.is_empty() {
            return Err("an event needs evt.type".into());
        }
        Ok(ev)
    }

    fn get(&self, name: &str, arg: Option<FieldArg>) -> Option<Value> {
        let id = id_of(name)?;
        self.values.get(&(id, arg)).cloned()
    }

    fn ancestor(&self, family: &(&str, &str, &str), level: u32) -> Option<Value> {
        let (multi, zero, one) = *family;
        if let Some(v) = self.get(multi, Some(FieldArg::Index(level))) {
            return Some(v);
        }
        if level == 0 {
            return self.field_by_name(zero);
        }
        if level == 1
            && !one.is_empty()
            && let Some(v) = self.get(one, None)
        {
            return Some(v);
        }
        match self.get(multi, None) {
            Some(Value::List(items)) => items.get(usize::try_from(level).ok()? - 1).cloned(),
            Some(v) if level == 1 => Some(v),
            _ => None,
        }
    }

    fn field_by_name(&self, name: &str) -> Option<Value> {
        let id = id_of(name)?;
        self.field(id, None)
    }
}

fn split_bracket(name: &str) -> (&str, Option<&str>) {
    match name.find('[') {
        Some(i) if name.ends_with(']') => (&name[..i], Some(&name[i + 1..name.len() - 1])),
        _ => (name, None),
    }
}

fn convert(ty: FieldType, v: &serde_json::Value) -> Result<Value, String> {
    use serde_json::Value as J;
    Ok(match (ty, v) {
        (_, J::Null) => return Err("null is not a value (leave the field out instead)".into()),
        (FieldType::Str, J::String(s)) => Value::Str(s.clone()),
        (FieldType::Str, J::Number(n)) => Value::Str(n.to_string()),
        (FieldType::Str, J::Bool(b)) => Value::Str(b.to_string()),
        (FieldType::Flags, J::String(s)) => Value::Str(s.clone()),
        (FieldType::Flags, J::Array(a)) => Value::Str(
            a.iter().map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned)).collect::<Vec<_>>().join("|"),
        ),
        (FieldType::Int, J::Number(n)) => Value::Int(n.as_i64().ok_or_else(|| format!("{n} is not an integer"))?),
        (FieldType::Int, J::String(s)) => Value::Int(s.trim().parse().map_err(|_| format!("'{s}' is not an integer"))?),
        (FieldType::UInt, J::Number(n)) => {
            Value::UInt(n.as_u64().ok_or_else(|| format!("{n} is not an unsigned integer"))?)
        }
        (FieldType::UInt, J::String(s)) => {
            Value::UInt(s.trim().parse().map_err(|_| format!("'{s}' is not an unsigned integer"))?)
        }
        (FieldType::Bool, J::Bool(b)) => Value::Bool(*b),
        (FieldType::Bool, J::String(s)) => match s.as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(format!("'{s}' is not true or false")),
        },
        (FieldType::Ip | FieldType::Net, J::String(s)) => {
            Value::Ip(s.parse().map_err(|_| format!("'{s}' is not an IP address"))?)
        }
        (FieldType::Bytes, J::String(s)) => Value::Bytes(s.as_bytes().to_vec()),
        (ty, other) => return Err(format!("{other} is not a valid {ty} value")),
    })
}

impl FieldSource for MapEvent {
    fn event_type(&self) -> &str {
        &self.evt_type
    }

    fn source(&self) -> &str {
        &self.source
    }

    fn timestamp_ns(&self) -> u64 {
        self.ts
    }

    fn field(&self, id: Field, arg: Option<&FieldArg>) -> Option<Value> {
        if let Some(v) = self.values.get(&(id, arg.cloned())) {
            return Some(v.clone());
        }
        let name = id.info().name;
        if let Some(fam) = ANCESTRY.iter().find(|f| f.0 == name) {
            return match arg {
                Some(FieldArg::Index(n)) => self.ancestor(fam, *n),
                Some(FieldArg::Key(_)) => None,
                None => {
                    let all: Vec<Value> = (1..=32).map_while(|n| self.ancestor(fam, n)).collect();
                    (!all.is_empty()).then_some(Value::List(all))
                }
            };
        }
        if let Some(fam) = ANCESTRY.iter().find(|f| f.2 == name) {
            return self.ancestor(fam, 1);
        }
        match name {
            "evt.type.is" => match arg {
                Some(FieldArg::Key(t)) => Some(Value::UInt(u64::from(*t == self.evt_type))),
                _ => None,
            },
            "evt.type" => Some(Value::Str(self.evt_type.clone())),
            "syscall.type" => Some(Value::Str(self.evt_type.clone())),
            "evt.source" => Some(Value::Str(self.source.clone())),
            "evt.rawtime" => Some(Value::UInt(self.ts)),
            "evt.rawtime.s" => Some(Value::UInt(self.ts / 1_000_000_000)),
            "evt.rawtime.ns" => Some(Value::UInt(self.ts % 1_000_000_000)),
            "evt.time" => Some(Value::Str(super::output::format_time(self.ts))),
            "evt.time.iso8601" => Some(Value::Str(super::output::format_iso8601(self.ts))),
            "fd.snet" => self.get("fd.sip", None),
            "fd.cnet" => self.get("fd.cip", None),
            "fd.lnet" => self.get("fd.lip", None),
            "fd.rnet" => self.get("fd.rip", None),
            "fd.ip" | "fd.net" | "fd.port" | "fd.proto" => {
                let (c, s) = match name {
                    "fd.port" => ("fd.cport", "fd.sport"),
                    "fd.proto" => ("fd.cproto", "fd.sproto"),
                    _ => ("fd.cip", "fd.sip"),
                };
                let both: Vec<Value> = [self.get(c, None), self.get(s, None)].into_iter().flatten().collect();
                (!both.is_empty()).then_some(Value::List(both))
            }
            "proc.cmdline" => {
                let name = self.get("proc.name", None)?;
                Some(match self.get("proc.args", None) {
                    Some(args) if !args.to_string().is_empty() => Value::Str(format!("{name} {args}")),
                    _ => Value::Str(name.to_string()),
                })
            }
            "fd.directory" | "fd.filename" => {
                let Value::Str(path) = self.get("fd.name", None)? else {
                    return None;
                };
                if !path.starts_with('/') {
                    return None;
                }
                let cut = path.rfind('/')?;
                Some(Value::Str(if name == "fd.directory" {
                    if cut == 0 { "/".into() } else { path[..cut].to_owned() }
                } else {
                    path[cut + 1..].to_owned()
                }))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(ev: &MapEvent, name: &str, arg: Option<FieldArg>) -> Option<Value> {
        let id = fields::resolve(name, None).unwrap().id;
        ev.field(id, arg.as_ref())
    }

    #[test]
    fn ancestors_fill_each_other() {
        let ev = MapEvent::from_json(&json!({
            "evt.type": "execve", "proc.name": "bash", "proc.aname": ["sshd", "systemd"], "proc.aname[3]": "x"
        }))
        .unwrap();
        assert_eq!(field(&ev, "proc.pname", None), Some(Value::Str("sshd".into())));
        assert_eq!(field(&ev, "proc.aname", Some(FieldArg::Index(0))), Some(Value::Str("bash".into())));
        assert_eq!(field(&ev, "proc.aname", Some(FieldArg::Index(2))), Some(Value::Str("systemd".into())));
        assert_eq!(field(&ev, "proc.aname", Some(FieldArg::Index(3))), Some(Value::Str("x".into())));
        let ev = MapEvent::from_json(&json!({"evt.type": "execve", "proc.pname": "a", "proc.aname[2]": "b"})).unwrap();
        assert_eq!(
            field(&ev, "proc.aname", None),
            Some(Value::List(vec![Value::Str("a".into()), Value::Str("b".into())]))
        );
    }

    #[test]
    fn values_are_typed() {
        let ev = MapEvent::from_json(&json!({
            "evt.type": "connect", "fd.sport": "443", "fd.num": -1, "fd.sip": "10.0.0.1",
            "evt.arg.flags": ["O_RDONLY", "O_TRUNC"], "container.privileged": true
        }))
        .unwrap();
        assert_eq!(field(&ev, "fd.sport", None), Some(Value::UInt(443)));
        assert_eq!(field(&ev, "fd.num", None), Some(Value::Int(-1)));
        assert_eq!(field(&ev, "fd.sip", None), Some(Value::Ip("10.0.0.1".parse().unwrap())));
        assert!(MapEvent::from_json(&json!({"evt.type": "x", "fd.sport": "http"})).is_err());
        assert!(MapEvent::from_json(&json!({"evt.type": "x", "proc.nam": "a"})).unwrap_err().contains("proc.name"));
        assert!(MapEvent::from_json(&json!({"proc.name": "a"})).is_err());
    }

    #[test]
    fn derived_fields() {
        let ev = MapEvent::from_json(&json!({
            "evt.type": "openat", "fd.name": "/etc/shadow", "proc.name": "cat", "proc.args": "/etc/shadow"
        }))
        .unwrap();
        assert_eq!(field(&ev, "fd.directory", None), Some(Value::Str("/etc".into())));
        assert_eq!(field(&ev, "fd.filename", None), Some(Value::Str("shadow".into())));
        assert_eq!(field(&ev, "proc.cmdline", None), Some(Value::Str("cat /etc/shadow".into())));
        let ev = MapEvent::from_json(&json!({"evt.type": "open", "evt.rawtime": 1_000_000_001_u64})).unwrap();
        assert_eq!(field(&ev, "evt.time", None), Some(Value::Str("00:00:01.000000001".into())));
        assert_eq!(field(&ev, "evt.rawtime.ns", None), Some(Value::UInt(1)));
    }
}
