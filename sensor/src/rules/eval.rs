//! The compiled condition tree and its evaluation. Nodes are specialised by field type at
//! compile time ([`super::compile`]) and lowered to closures to run ([`Program`]);
//! evaluation only fetches field values (each at most once per event, through a per-event
//! cache) and compares.
//!
//! Falco semantics kept here: a test on a field the event cannot supply is false (so
//! `container.id != host` is false when there is no container id, and `not` flips that);
//! an ancestor field without index (`proc.aname`) holds when any ancestor matches.

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::IpAddr;

use aho_corasick::AhoCorasick;
use foldhash::fast::RandomState;

use super::ast::Transformer;
use super::event::{FieldSource, Value};
use super::fields::{Field, FieldArg, FieldType};
use super::matchers::{self, Cidr, PathTrie};

/// A hash set with a seeded hasher (keys come from monitored processes).
pub(crate) type Set<T> = HashSet<T, RandomState>;

/// A compiled boolean expression.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Const(bool),
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    Test(Box<Test>),
}

/// A value source: a field (with its cache slot) or a transformer over one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Operand {
    Field { slot: usize, id: Field, arg: Option<FieldArg> },
    Transform(Transformer, Box<Operand>),
}

/// One comparison.
#[derive(Debug, Clone)]
pub(crate) struct Test {
    pub lhs: Operand,
    /// The operand yields all ancestors: the test holds when any of them matches.
    pub any: bool,
    pub kind: TestKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum NumOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl NumOp {
    fn apply<T: PartialOrd>(self, a: &T, b: &T) -> bool {
        match self {
            NumOp::Eq => a == b,
            NumOp::Ne => a != b,
            NumOp::Lt => a < b,
            NumOp::Le => a <= b,
            NumOp::Gt => a > b,
            NumOp::Ge => a >= b,
        }
    }
}

/// The strings of an `in` or `intersects` test, with the lengths they have: a text of
/// another length is refused without hashing it (most texts a rule tests are in none of
/// its lists).
#[derive(Debug, Clone, Default)]
pub(crate) struct StrSet {
    strings: Set<String>,
    /// Bit `n`: some string is `n` bytes long (bit 63: 63 or more).
    lengths: u64,
}

impl StrSet {
    fn length_bit(len: usize) -> u64 {
        1 << len.min(63)
    }

    /// Whether `s` is one of the strings.
    pub(crate) fn contains(&self, s: &str) -> bool {
        self.lengths & Self::length_bit(s.len()) != 0 && self.strings.contains(s)
    }

    /// The strings, in no particular order.
    pub(crate) fn strings(&self) -> &Set<String> {
        &self.strings
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &String> {
        self.strings.iter()
    }
}

impl FromIterator<String> for StrSet {
    fn from_iter<I: IntoIterator<Item = String>>(items: I) -> Self {
        let strings: Set<String> = items.into_iter().collect();
        let lengths = strings.iter().fold(0, |bits, s| bits | Self::length_bit(s.len()));
        StrSet { strings, lengths }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum StrTest {
    Eq(String),
    Ne(String),
    Contains(String),
    IContains(String),
    StartsWith(String),
    EndsWith(String),
    Glob(String, bool),
    Regex(regex::Regex),
    In(StrSet),
    Intersects(StrSet),
    Pmatch(PathTrie),
    /// Several `contains`/`icontains` on the same field joined by `or`.
    AnyContains(AhoCorasick),
    /// Several `startswith` on the same field joined by `or` (an anchored search), and the
    /// prefixes (for the prefilter).
    AnyPrefix(AhoCorasick, Vec<String>),
}

#[derive(Debug, Clone)]
pub(crate) enum TestKind {
    Exists,
    Str(StrTest),
    Num(NumOp, i128),
    NumIn(Set<i128>),
    Bool(bool),
    /// Address in one of `ips` or `nets`; `negate` for `!=`; `all` for `in` on lists.
    Ip {
        ips: Set<IpAddr>,
        nets: Vec<Cidr>,
        negate: bool,
    },
    /// A flag is set (`contains`), optionally ignoring case.
    Flag(String, bool),
    BContains(Vec<u8>),
    BStartsWith(Vec<u8>),
    /// Compare with another operand (`val(...)`), as text or numbers.
    Field(NumOp, Operand, FieldType),
}

/// Per-thread evaluation memory, reused from event to event so that evaluating allocates
/// nothing once warm: each field is fetched at most once per event.
#[derive(Debug, Default)]
pub struct Scratch {
    /// Per cache slot: the event it was last fetched for, and where its value is in
    /// `values`. A slot is fetched for the current event only when its stamp is `event`,
    /// so starting an event is one increment, not a clearing of every slot.
    stamps: Vec<(u32, u32)>,
    /// The number of the event being evaluated (0 is never used, so that fresh stamps
    /// never match).
    event: u32,
    /// The buffer of the values fetched for an event, empty between events: the values
    /// borrow from their event, so only the allocation is kept.
    values: Vec<Option<Value<'static>>>,
}

/// An emptied vector of values for another lifetime, on the same allocation: collecting
/// an empty `into_iter` into a vector of a same-sized type reuses its buffer in place.
fn recycle<'b>(mut v: Vec<Option<Value<'_>>>) -> Vec<Option<Value<'b>>> {
    for value in v.drain(..) {
        // Most values own nothing (numbers, text borrowed from the event): forgetting them
        // skips a call into the recursive type's drop glue per value. Every variant is
        // named, so that a new one owning memory cannot be forgotten by mistake.
        match value {
            Some(Value::Str(Cow::Owned(_)) | Value::Bytes(Cow::Owned(_)) | Value::List(_)) => drop(value),
            None
            | Some(
                Value::Str(Cow::Borrowed(_))
                | Value::Bytes(Cow::Borrowed(_))
                | Value::Int(_)
                | Value::UInt(_)
                | Value::Bool(_)
                | Value::Ip(_),
            ) => std::mem::forget(value),
        }
    }
    v.into_iter().map(|_| None).collect()
}

/// Evaluation context for one event: the event and the values fetched from it so far.
pub(crate) struct Ctx<'a> {
    src: &'a dyn FieldSource,
    scratch: &'a mut Scratch,
    values: Vec<Option<Value<'a>>>,
}

impl<'a> Ctx<'a> {
    /// Starts evaluating `src` with `slots` cache slots.
    pub(crate) fn new(src: &'a dyn FieldSource, scratch: &'a mut Scratch, slots: usize) -> Self {
        if scratch.stamps.len() < slots {
            scratch.stamps.resize(slots, (0, 0));
        }
        scratch.event = scratch.event.wrapping_add(1);
        if scratch.event == 0 {
            // After 2^32 events the numbers come round: forget every stamp once.
            scratch.stamps.fill((0, 0));
            scratch.event = 1;
        }
        // Empty, and values borrowing for `'static` may borrow for `'a`.
        let values = std::mem::take(&mut scratch.values);
        Ctx { src, scratch, values }
    }

    pub(crate) fn value(&mut self, op: &Operand) -> Option<Cow<'_, Value<'a>>> {
        match op {
            Operand::Field { slot, id, arg } => self.field(*slot, *id, arg.as_ref()).map(Cow::Borrowed),
            Operand::Transform(tr, inner) => {
                let v = self.value(inner)?;
                Some(Cow::Owned(transform(*tr, &v)))
            }
        }
    }
}

impl<'a> Ctx<'a> {
    /// The value of a field (in cache slot `slot`), fetched at most once per event.
    #[inline]
    fn field(&mut self, slot: usize, id: Field, arg: Option<&FieldArg>) -> Option<&Value<'a>> {
        let (stamp, at) = *self.scratch.stamps.get(slot)?;
        let at = if stamp == self.scratch.event { at } else { self.fetch(slot, id, arg) };
        self.values.get(at as usize)?.as_ref()
    }

    /// Fetches a field not yet fetched for this event into its slot; returns where it is.
    #[inline(never)]
    fn fetch(&mut self, slot: usize, id: Field, arg: Option<&FieldArg>) -> u32 {
        let at = self.values.len() as u32;
        self.values.push(self.src.field(id, arg));
        if let Some(stamp) = self.scratch.stamps.get_mut(slot) {
            *stamp = (self.scratch.event, at);
        }
        at
    }
}

impl Drop for Ctx<'_> {
    fn drop(&mut self) {
        self.scratch.values = recycle(std::mem::take(&mut self.values));
    }
}

/// Applies a transformer to a value.
pub(crate) fn transform(tr: Transformer, v: &Value<'_>) -> Value<'static> {
    match (tr, v) {
        (_, Value::List(items)) if tr != Transformer::Len => {
            Value::List(items.iter().map(|i| transform(tr, i)).collect())
        }
        (Transformer::ToLower, v) => Value::Str(v.to_string().to_lowercase().into()),
        (Transformer::ToUpper, v) => Value::Str(v.to_string().to_uppercase().into()),
        (Transformer::B64, v) => {
            let text = v.to_string();
            match matchers::decode_base64(text.trim()) {
                Some(bytes) => Value::Str(String::from_utf8_lossy(&bytes).into_owned().into()),
                None => Value::Str(Cow::Borrowed("")),
            }
        }
        (Transformer::Basename, v) => Value::Str(basename(&v.to_string()).to_owned().into()),
        (Transformer::Len, Value::List(items)) => Value::UInt(items.len() as u64),
        (Transformer::Len, Value::Bytes(b)) => Value::UInt(b.len() as u64),
        (Transformer::Len, v) => Value::UInt(v.to_string().chars().count() as u64),
    }
}

fn text<'v>(v: &'v Value<'_>) -> Cow<'v, str> {
    match v {
        Value::Str(s) => Cow::Borrowed(s),
        other => Cow::Owned(other.to_string()),
    }
}

pub(crate) fn number(v: &Value<'_>) -> Option<i128> {
    match v {
        Value::Int(i) => Some(i128::from(*i)),
        Value::UInt(u) => Some(i128::from(*u)),
        Value::Bool(b) => Some(i128::from(*b)),
        Value::Str(s) => parse_number(s),
        _ => None,
    }
}

/// Parses a decimal or `0x` hexadecimal integer.
pub(crate) fn parse_number(s: &str) -> Option<i128> {
    let s = s.trim();
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let n = if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        i128::from_str_radix(h, 16).ok()?
    } else {
        body.parse::<i128>().ok()?
    };
    Some(if neg { -n } else { n })
}

/// ASCII case-insensitive substring test without allocating.
pub(crate) fn contains_ci(hay: &str, needle_lower: &str) -> bool {
    let (h, n) = (hay.as_bytes(), needle_lower.as_bytes());
    if n.is_empty() {
        return true;
    }
    if n.len() > h.len() {
        return false;
    }
    h.windows(n.len()).any(|w| w.iter().zip(n).all(|(a, b)| a.to_ascii_lowercase() == *b))
}

/// A condition ready to evaluate: its tree lowered to closures, each specialised to its
/// node, so that a test costs one call (and a text test on a text field goes straight to
/// its comparison) instead of a walk through the generic matches. The tree is the form the
/// compiler, the index and the prefilter reason about; lowering consumes it, so a rule's
/// lists and sets are held once.
pub(crate) struct Program {
    run: Lowered,
    /// The outcome when the condition is a constant.
    constant: Option<bool>,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program").field("constant", &self.constant).finish_non_exhaustive()
    }
}

impl Program {
    /// Lowers `node`.
    pub(crate) fn new(node: Node) -> Self {
        let constant = match node {
            Node::Const(b) => Some(b),
            _ => None,
        };
        Program { run: lower(node), constant }
    }

    /// Whether the condition holds for the event of `ctx`.
    #[inline]
    pub(crate) fn eval(&self, ctx: &mut Ctx<'_>) -> bool {
        (self.run)(ctx)
    }

    /// The outcome whatever the event, when the condition is a constant.
    #[cfg(test)]
    pub(crate) fn constant(&self) -> Option<bool> {
        self.constant
    }
}

type Lowered = Box<dyn Fn(&mut Ctx<'_>) -> bool + Send + Sync>;

fn lower(node: Node) -> Lowered {
    match node {
        Node::Const(b) => Box::new(move |_| b),
        Node::And(items) => {
            let items: Vec<Lowered> = items.into_iter().map(lower).collect();
            Box::new(move |ctx| items.iter().all(|n| n(ctx)))
        }
        Node::Or(items) => {
            let items: Vec<Lowered> = items.into_iter().map(lower).collect();
            Box::new(move |ctx| items.iter().any(|n| n(ctx)))
        }
        Node::Not(inner) => {
            let inner = lower(*inner);
            Box::new(move |ctx| !inner(ctx))
        }
        Node::Test(t) => lower_test(*t),
    }
}

/// A test on a field's own value (most tests) fetches it and compares: text, booleans and
/// numbers of the test's own kind directly, other values as [`test_value`] does. Anything
/// else takes the general path, [`eval_test`].
fn lower_test(t: Test) -> Lowered {
    match t {
        Test { lhs: Operand::Field { slot, id, arg }, any, kind } if !matches!(kind, TestKind::Field(..)) => {
            Box::new(move |ctx| match (ctx.field(slot, id, arg.as_ref()), &kind) {
                (Some(Value::Str(s)), TestKind::Str(st)) => str_test(st, s),
                (Some(Value::Bool(b)), TestKind::Bool(want)) => b == want,
                (Some(Value::Int(x)), TestKind::Num(op, n)) => op.apply(&i128::from(*x), n),
                (Some(Value::UInt(x)), TestKind::Num(op, n)) => op.apply(&i128::from(*x), n),
                (Some(v), kind) => test_value(any, kind, v),
                (None, _) => false,
            })
        }
        t => lower_transformed(t),
    }
}

/// A test through a transformer: `basename(field)` against text (the built-in rules' way
/// of naming the file a process runs) compares the file name within the path directly.
fn lower_transformed(t: Test) -> Lowered {
    if let (Operand::Transform(Transformer::Basename, inner), TestKind::Str(_)) = (&t.lhs, &t.kind)
        && let Operand::Field { slot, id, arg } = &**inner
    {
        let (slot, id, arg) = (*slot, *id, arg.clone());
        return Box::new(move |ctx| match (ctx.field(slot, id, arg.as_ref()), &t.kind) {
            (Some(Value::Str(path)), TestKind::Str(st)) => str_test(st, basename(path)),
            (Some(_), _) => eval_test(&t, ctx),
            (None, _) => false,
        });
    }
    Box::new(move |ctx| eval_test(&t, ctx))
}

fn eval_test(t: &Test, ctx: &mut Ctx<'_>) -> bool {
    if let TestKind::Field(op, rhs, ty) = &t.kind {
        let Some(a) = ctx.value(&t.lhs).map(Cow::into_owned) else {
            return false;
        };
        let Some(b) = ctx.value(rhs) else {
            return false;
        };
        return compare_values(*op, &a, &b, *ty);
    }
    // A field's value is borrowed from the event's cache (no `Cow` to build and move on
    // the most common path); a transformer's is made here, borrowing where it can.
    match &t.lhs {
        Operand::Field { slot, id, arg } => {
            ctx.field(*slot, *id, arg.as_ref()).is_some_and(|v| test_value(t.any, &t.kind, v))
        }
        Operand::Transform(tr, inner) => match &**inner {
            Operand::Field { slot, id, arg } => ctx
                .field(*slot, *id, arg.as_ref())
                .is_some_and(|v| with_transform(*tr, v, |v| test_value(t.any, &t.kind, v))),
            Operand::Transform(..) => {
                ctx.value(&t.lhs).map(Cow::into_owned).is_some_and(|v| test_value(t.any, &t.kind, &v))
            }
        },
    }
}

/// Calls `f` with `tr` applied to `v`: a file name borrowed from a path, else made.
fn with_transform<R>(tr: Transformer, v: &Value<'_>, f: impl FnOnce(&Value<'_>) -> R) -> R {
    match (tr, v) {
        (Transformer::Basename, Value::Str(path)) => f(&Value::str(basename(path))),
        _ => f(&transform(tr, v)),
    }
}

/// What follows the last `/` (all of a text without one; empty after a trailing `/`).
fn basename(path: &str) -> &str {
    path.rfind('/').map_or(path, |at| &path[at + 1..])
}

/// Whether the value `v` of a test's operand passes its comparison `kind` (`any`: the operand
/// yields all ancestors, see [`Test::any`]).
fn test_value(any: bool, kind: &TestKind, v: &Value<'_>) -> bool {
    match (v, kind) {
        (_, TestKind::Exists) => true,
        (Value::List(items), kind) => match kind {
            TestKind::Str(StrTest::In(set)) if !any => {
                !items.is_empty() && items.iter().all(|i| set.contains(text(i).as_ref()))
            }
            TestKind::NumIn(set) if !any => {
                !items.is_empty() && items.iter().all(|i| number(i).is_some_and(|n| set.contains(&n)))
            }
            TestKind::Ip { ips, nets, negate: false } if !any => {
                !items.is_empty() && items.iter().all(|i| ip_matches(i, ips, nets))
            }
            kind => items.iter().any(|i| scalar(i, kind)),
        },
        (v, kind) => scalar(v, kind),
    }
}

fn ip_matches(v: &Value<'_>, ips: &Set<IpAddr>, nets: &[Cidr]) -> bool {
    let ip = match v {
        Value::Ip(ip) => *ip,
        Value::Str(s) => match s.parse() {
            Ok(ip) => ip,
            Err(_) => return false,
        },
        _ => return false,
    };
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    ips.contains(&ip) || nets.iter().any(|n| n.contains(ip))
}

fn scalar(v: &Value<'_>, kind: &TestKind) -> bool {
    match kind {
        TestKind::Exists => true,
        TestKind::Str(st) => str_test(st, &text(v)),
        TestKind::Num(op, n) => number(v).is_some_and(|x| op.apply(&x, n)),
        TestKind::NumIn(set) => number(v).is_some_and(|x| set.contains(&x)),
        TestKind::Bool(want) => match v {
            Value::Bool(b) => b == want,
            other => {
                number(other).map(|n| n != 0) == Some(*want) || text(other) == if *want { "true" } else { "false" }
            }
        },
        TestKind::Ip { ips, nets, negate } => ip_matches(v, ips, nets) != *negate,
        TestKind::Flag(flag, fold) => {
            text(v).split(['|', ' ', ',']).any(|f| if *fold { f.eq_ignore_ascii_case(flag) } else { f == flag })
        }
        TestKind::BContains(needle) => bytes(v).windows(needle.len().max(1)).any(|w| w == needle.as_slice()),
        TestKind::BStartsWith(needle) => bytes(v).starts_with(needle),
        TestKind::Field(..) => false,
    }
}

/// Whether text `s` passes string test `st`.
fn str_test(st: &StrTest, s: &str) -> bool {
    match st {
        StrTest::Eq(x) => s == x,
        StrTest::Ne(x) => s != x,
        StrTest::Contains(x) => memchr::memmem::find(s.as_bytes(), x.as_bytes()).is_some(),
        StrTest::IContains(x) => contains_ci(s, x),
        StrTest::StartsWith(x) => s.starts_with(x.as_str()),
        StrTest::EndsWith(x) => s.ends_with(x.as_str()),
        StrTest::Glob(p, fold) => matchers::fnmatch(p, s, *fold),
        StrTest::Regex(re) => re.is_match(s),
        StrTest::In(set) | StrTest::Intersects(set) => set.contains(s),
        StrTest::Pmatch(trie) => trie.matches(s),
        StrTest::AnyContains(ac) => ac.is_match(s),
        StrTest::AnyPrefix(ac, _) => ac.is_match(aho_corasick::Input::new(s).anchored(aho_corasick::Anchored::Yes)),
    }
}

fn bytes<'v>(v: &'v Value<'_>) -> Cow<'v, [u8]> {
    match v {
        Value::Bytes(b) => Cow::Borrowed(b),
        Value::Str(s) => Cow::Borrowed(s.as_bytes()),
        other => Cow::Owned(other.to_string().into_bytes()),
    }
}

fn compare_values(op: NumOp, a: &Value<'_>, b: &Value<'_>, ty: FieldType) -> bool {
    if let (Value::List(items), false) = (a, matches!(b, Value::List(_))) {
        return items.iter().any(|i| compare_values(op, i, b, ty));
    }
    if ty.is_numeric()
        && let (Some(x), Some(y)) = (number(a), number(b))
    {
        return op.apply(&x, &y);
    }
    op.apply(&text(a), &text(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An event whose every field has one value.
    struct Fixed(Option<Value<'static>>);

    impl FieldSource for Fixed {
        fn event_type(&self) -> &str {
            "openat"
        }

        fn field(&self, _: Field, _: Option<&FieldArg>) -> Option<Value<'_>> {
            self.0.clone()
        }
    }

    #[test]
    fn a_string_set_finds_its_strings_and_refuses_others_of_any_length() {
        let long = "x".repeat(70);
        let set: StrSet = ["sh".to_owned(), "bash".to_owned(), long.clone()].into_iter().collect();
        assert!(set.contains("sh") && set.contains("bash") && set.contains(&long));
        assert!(!set.contains("zsh") && !set.contains("bas") && !set.contains(""));
        // Lengths of 63 bytes and more share one bit: the strings themselves decide.
        assert!(!set.contains(&"x".repeat(64)) && !set.contains(&"y".repeat(70)));
    }

    #[test]
    fn lowered_tests_agree_with_the_general_path_on_every_value_shape() {
        let text = |s: &'static str| Value::str(s);
        let scalars = [
            text(""),
            text("a"),
            text("b/c"),
            text("/x/c"),
            text("5"),
            text("true"),
            text("-1"),
            Value::Int(-1),
            Value::Int(5),
            Value::UInt(5),
            Value::UInt(u64::MAX),
            Value::Bool(true),
            Value::Bool(false),
        ];
        let mut values: Vec<Option<Value<'static>>> = scalars.iter().cloned().map(Some).collect();
        values.push(None);
        values.push(Some(Value::List(vec![])));
        values.push(Some(Value::List(vec![text("a"), text("/x/c")])));
        values.push(Some(Value::List(vec![Value::Int(5), Value::Bool(true)])));
        let set = |items: &[&str]| items.iter().map(|i| (*i).to_owned()).collect::<StrSet>();
        let mut kinds = vec![
            TestKind::Exists,
            TestKind::Str(StrTest::Eq("a".into())),
            TestKind::Str(StrTest::Ne("a".into())),
            TestKind::Str(StrTest::In(set(&["a", "c", "5"]))),
            TestKind::Str(StrTest::Contains("c".into())),
            TestKind::Str(StrTest::StartsWith("/".into())),
            TestKind::Str(StrTest::Glob("*c".into(), false)),
            TestKind::Bool(true),
            TestKind::Bool(false),
        ];
        for op in [NumOp::Eq, NumOp::Ne, NumOp::Lt, NumOp::Le, NumOp::Gt, NumOp::Ge] {
            kinds.push(TestKind::Num(op, 5));
            kinds.push(TestKind::Num(op, -1));
        }
        let field = Operand::Field { slot: 0, id: Field::FdName, arg: None };
        let operands = [field.clone(), Operand::Transform(Transformer::Basename, Box::new(field))];
        let mut scratch = Scratch::default();
        for lhs in &operands {
            for kind in &kinds {
                for any in [false, true] {
                    let t = Test { lhs: lhs.clone(), any, kind: kind.clone() };
                    let program = Program::new(Node::Test(Box::new(t.clone())));
                    for v in &values {
                        let event = Fixed(v.clone());
                        let lowered = program.eval(&mut Ctx::new(&event, &mut scratch, 1));
                        let general = eval_test(&t, &mut Ctx::new(&event, &mut scratch, 1));
                        assert_eq!(lowered, general, "{t:?} on {v:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn recycling_keeps_the_allocation() {
        let mut v: Vec<Option<Value<'static>>> = Vec::with_capacity(32);
        v.push(Some(Value::str("a")));
        let ptr = v.as_ptr() as usize;
        let text = String::from("borrowed");
        let mut w: Vec<Option<Value<'_>>> = recycle(v);
        w.push(Some(Value::str(&text)));
        assert_eq!((w.as_ptr() as usize, w.capacity()), (ptr, 32), "no new buffer per event");
    }

    #[test]
    fn helpers() {
        assert!(contains_ci("CAP_SYS_MODULE CAP_X", "sys_module"));
        assert!(!contains_ci("CAP", "capx"));
        assert_eq!(parse_number("0x10"), Some(16));
        assert_eq!(parse_number("-5"), Some(-5));
        assert_eq!(parse_number("5s"), None);
        assert_eq!(transform(Transformer::Basename, &Value::Str("/a/b".into())), Value::Str("b".into()));
        assert_eq!(transform(Transformer::Basename, &Value::Str("/a/b/".into())), Value::Str("".into()));
        assert_eq!(transform(Transformer::Len, &Value::Str("héllo".into())), Value::UInt(5));
        assert_eq!(transform(Transformer::B64, &Value::Str("aGk=".into())), Value::Str("hi".into()));
        assert_eq!(transform(Transformer::ToUpper, &Value::Str("ab".into())), Value::Str("AB".into()));
    }
}
