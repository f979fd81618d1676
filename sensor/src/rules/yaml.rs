//! The one place that reads YAML (through serde-saphyr): text → a tree of [`Node`]s, each
//! with the line and column where it starts. Everything else in the rule engine works on
//! this tree, so swapping the YAML crate touches only this file.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A 1-based line and column in a source file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    /// 1-based line (0 when unknown).
    pub line: u32,
    /// 1-based column (0 when unknown).
    pub col: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// A YAML value with the position where it starts.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Where the value starts.
    pub pos: Pos,
    /// The value itself.
    pub kind: NodeKind,
}

/// The shape of a YAML value. Scalars keep their text form next to the typed one, so that
/// `items: [22, "22"]` both read as the string `22`.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeKind {
    /// `~`, `null` or an empty value.
    Null,
    /// A boolean scalar.
    Bool(bool),
    /// An integer scalar.
    Int(i64),
    /// A floating-point scalar.
    Float(f64),
    /// A string scalar.
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in source order.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The scalar as text (`None` for null, sequences and mappings).
    pub fn as_text(&self) -> Option<String> {
        match &self.kind {
            NodeKind::Bool(b) => Some(b.to_string()),
            NodeKind::Int(i) => Some(i.to_string()),
            NodeKind::Float(f) => Some(f.to_string()),
            NodeKind::Str(s) => Some(s.clone()),
            NodeKind::Null | NodeKind::Seq(_) | NodeKind::Map(_) => None,
        }
    }

    /// The value of key `key` when this is a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            NodeKind::Map(entries) => {
                entries.iter().find(|(k, _)| matches!(&k.kind, NodeKind::Str(s) if s == key)).map(|(_, v)| v)
            }
            _ => None,
        }
    }

    /// A short name of the node's kind, for error messages.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            NodeKind::Null => "null",
            NodeKind::Bool(_) => "boolean",
            NodeKind::Int(_) => "integer",
            NodeKind::Float(_) => "number",
            NodeKind::Str(_) => "string",
            NodeKind::Seq(_) => "sequence",
            NodeKind::Map(_) => "mapping",
        }
    }

    /// Converts the tree to JSON (used for test events written in YAML).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.kind {
            NodeKind::Null => J::Null,
            NodeKind::Bool(b) => J::Bool(*b),
            NodeKind::Int(i) => J::from(*i),
            NodeKind::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            NodeKind::Str(s) => J::String(s.clone()),
            NodeKind::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            NodeKind::Map(entries) => {
                J::Object(entries.iter().map(|(k, v)| (k.as_text().unwrap_or_default(), v.to_json())).collect())
            }
        }
    }
}

/// A YAML syntax error with its position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct YamlError {
    /// Where the parser stopped (0:0 when unknown).
    pub pos: Pos,
    /// What went wrong, on one line.
    pub message: String,
}

/// Parses one YAML document into a [`Node`] tree.
pub fn parse(text: &str) -> Result<Node, YamlError> {
    if text.trim().is_empty() {
        return Ok(Node { pos: Pos { line: 1, col: 1 }, kind: NodeKind::Null });
    }
    match serde_saphyr::from_str::<Spanned<Raw>>(text) {
        Ok(s) => Ok(to_node(s)),
        Err(e) => {
            let pos = e.location().map_or(Pos::default(), |l| Pos {
                line: u32::try_from(l.line()).unwrap_or(u32::MAX),
                col: u32::try_from(l.column()).unwrap_or(u32::MAX),
            });
            let rendered = e.without_snippet().to_string();
            let message = rendered.lines().next().unwrap_or("invalid YAML").trim().to_owned();
            Err(YamlError { pos, message })
        }
    }
}

fn to_node(s: Spanned<Raw>) -> Node {
    let pos = Pos {
        line: u32::try_from(s.referenced.line()).unwrap_or(u32::MAX),
        col: u32::try_from(s.referenced.column()).unwrap_or(u32::MAX),
    };
    let kind = match s.value {
        Raw::Null => NodeKind::Null,
        Raw::Bool(b) => NodeKind::Bool(b),
        Raw::Int(i) => NodeKind::Int(i),
        Raw::Float(f) => NodeKind::Float(f),
        Raw::Str(t) => NodeKind::Str(t),
        Raw::Seq(items) => NodeKind::Seq(items.into_iter().map(to_node).collect()),
        Raw::Map(entries) => NodeKind::Map(entries.into_iter().map(|(k, v)| (to_node(k), to_node(v))).collect()),
    };
    Node { pos, kind }
}

/// The serde-facing mirror of [`NodeKind`], with spanned children.
enum Raw {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Raw>>),
    Map(Vec<(Spanned<Raw>, Spanned<Raw>)>),
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Raw, E> {
        Ok(i64::try_from(v).map_or_else(|_| Raw::Str(v.to_string()), Raw::Int))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Raw, E> {
        Ok(i64::try_from(v).map_or_else(|_| Raw::Str(v.to_string()), Raw::Int))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Raw, E> {
        Ok(i64::try_from(v).map_or_else(|_| Raw::Str(v.to_string()), Raw::Int))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Raw, E> {
        Ok(Raw::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Raw, E> {
        Ok(Raw::Str(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_none<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        Raw::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Raw>>()? {
            items.push(item);
        }
        Ok(Raw::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::new();
        while let Some(k) = map.next_key::<Spanned<Raw>>()? {
            let v = map.next_value::<Spanned<Raw>>()?;
            entries.push((k, v));
        }
        Ok(Raw::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let n = parse("- rule: a\n  condition: evt.type = open\n").unwrap();
        let NodeKind::Seq(items) = &n.kind else { panic!("not a seq: {n:?}") };
        assert_eq!(items[0].pos, Pos { line: 1, col: 3 });
        let cond = items[0].get("condition").unwrap();
        assert_eq!(cond.pos, Pos { line: 2, col: 14 });
        assert_eq!(cond.as_text().unwrap(), "evt.type = open");
    }

    #[test]
    fn scalars_keep_text() {
        let n = parse("items: [22, \"8080\", yes, ~]").unwrap();
        let items = n.get("items").unwrap();
        let NodeKind::Seq(v) = &items.kind else { panic!() };
        assert_eq!(v[0].as_text().unwrap(), "22");
        assert_eq!(v[1].as_text().unwrap(), "8080");
        assert_eq!(v[3].kind, NodeKind::Null);
    }

    #[test]
    fn deep_nesting_is_an_error_not_an_overflow() {
        let text = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse(&text).is_err());
    }

    #[test]
    fn syntax_error_has_position() {
        let e = parse("- rule: a\n  condition: [unclosed\n").unwrap_err();
        assert!(e.pos.line >= 2, "{e:?}");
    }
}
