//! Which rules an event can match, found before evaluating any: rules are indexed by event
//! type, each with its condition specialised to that type (its `evt.type` tests become
//! constants and fold away, so a rule never re-checks the type the index picked), and within
//! a type by the process name when a rule's condition requires `proc.name` to be one of a
//! few names (a shell, `grep`, `debugfs`...): the other rules of the type are never looked at
//! for other processes.
//!
//! The compiled conditions ([`super::compile::CompiledRule::cond`]) are left as they are;
//! the index holds specialised copies.

use std::collections::{BTreeSet, HashMap};

use foldhash::fast::RandomState;

use super::compile::{CompiledRule, optimize};
use super::eval::{Ctx, Node, Operand, Set, StrTest, Test, TestKind};
use super::event::Value;
use super::fields::Field;

/// A rule to evaluate on events of one type.
#[derive(Debug)]
pub(crate) struct Candidate {
    /// The rule's position in load order.
    pub rule: usize,
    /// Its condition, specialised to the event type.
    pub check: Node,
}

/// The rules of one event type.
#[derive(Debug, Default)]
struct TypeIndex {
    /// Typed rules of this type, then untyped ones, each in load order (Falco's order).
    candidates: Vec<Candidate>,
    /// Every candidate, in order: what an event reaches when the name index does not apply.
    all: Vec<u32>,
    /// The candidates by process name, when some rule of this type requires one.
    names: Option<NameIndex>,
}

/// Candidates by the value of `proc.name`.
#[derive(Debug)]
struct NameIndex {
    /// The `proc.name` operand (its cache slot is shared with the rules that test it).
    op: Operand,
    /// Per name some rule requires: the candidates an event of a process of that name can
    /// match, in order.
    by_name: HashMap<String, Vec<u32>, RandomState>,
    /// The candidates that do not require a name, for every other process.
    others: Vec<u32>,
}

/// Rules indexed by event type and process name.
#[derive(Debug, Default)]
pub(crate) struct RuleIndex {
    by_type: HashMap<String, TypeIndex, RandomState>,
    /// For event types no rule names: the rules that match any type, as compiled.
    untyped: TypeIndex,
}

impl RuleIndex {
    /// Indexes `rules` (in load order).
    pub(crate) fn build(rules: &[CompiledRule]) -> Self {
        let untyped: Vec<usize> = (0..rules.len()).filter(|&i| rules[i].evttypes.is_none()).collect();
        let mut types: BTreeSet<&str> = BTreeSet::new();
        for r in rules {
            types.extend(r.evttypes.iter().flatten().map(String::as_str));
        }
        let mut by_type = HashMap::default();
        for t in types {
            let typed = (0..rules.len()).filter(|&i| rules[i].evttypes.as_ref().is_some_and(|s| s.contains(t)));
            let candidates = typed
                .chain(untyped.iter().copied())
                .map(|rule| Candidate { rule, check: optimize(specialise(&rules[rule].cond, t)) })
                .filter(|c| !matches!(c.check, Node::Const(false)))
                .collect();
            by_type.insert(t.to_owned(), TypeIndex::new(candidates));
        }
        let untyped = TypeIndex::new(
            untyped.into_iter().map(|rule| Candidate { rule, check: rules[rule].cond.clone() }).collect(),
        );
        RuleIndex { by_type, untyped }
    }

    /// The event types some rule names (with rules of any type, all types can match).
    pub(crate) fn types(&self) -> impl Iterator<Item = &str> {
        self.by_type.keys().map(String::as_str)
    }

    /// The candidates of an event of type `evt_type` and, in order, which of them to
    /// evaluate: fetches `proc.name` (into the event's cache) when the type is indexed by it.
    pub(crate) fn select(&self, evt_type: &str, ctx: &mut Ctx<'_>) -> (&[Candidate], &[u32]) {
        let t = self.by_type.get(evt_type).unwrap_or(&self.untyped);
        let order = match &t.names {
            None => &t.all,
            Some(names) => match ctx.value(&names.op).as_deref() {
                Some(Value::Str(name)) => names.by_name.get(name.as_ref()).unwrap_or(&names.others),
                // No name: every test of it is false, so only rules that need none can match.
                None => &names.others,
                // Not text (no event supplies that): evaluate everything.
                Some(_) => &t.all,
            },
        };
        (&t.candidates, order)
    }
}

impl TypeIndex {
    fn new(candidates: Vec<Candidate>) -> Self {
        let all: Vec<u32> = (0..candidates.len() as u32).collect();
        let required: Vec<Option<(Operand, Set<String>)>> =
            candidates.iter().map(|c| required_names(&c.check)).collect();
        let op = required.iter().flatten().map(|(op, _)| op.clone()).next();
        let names = op.map(|op| {
            let mut by_name: HashMap<String, Vec<u32>, RandomState> = HashMap::default();
            for (_, set) in required.iter().flatten() {
                for name in set {
                    by_name.entry(name.clone()).or_default();
                }
            }
            let mut others = Vec::new();
            for (i, req) in (0u32..).zip(&required) {
                match req {
                    None => {
                        others.push(i);
                        by_name.values_mut().for_each(|list| list.push(i));
                    }
                    Some((_, set)) => {
                        for name in set {
                            if let Some(list) = by_name.get_mut(name) {
                                list.push(i);
                            }
                        }
                    }
                }
            }
            NameIndex { op, by_name, others }
        });
        TypeIndex { candidates, all, names }
    }
}

/// `node` for events of type `evt_type`: its `evt.type` comparisons (`=`, `!=`, `in`)
/// replaced by their outcome. The engine only gives an event the rules of its type, and
/// [`super::FieldSource::event_type`] is the value of `evt.type`.
fn specialise(node: &Node, evt_type: &str) -> Node {
    match node {
        Node::Const(b) => Node::Const(*b),
        Node::And(items) => Node::And(items.iter().map(|n| specialise(n, evt_type)).collect()),
        Node::Or(items) => Node::Or(items.iter().map(|n| specialise(n, evt_type)).collect()),
        Node::Not(inner) => Node::Not(Box::new(specialise(inner, evt_type))),
        Node::Test(t) => match type_test(t) {
            Some(TypeTest::Eq(v)) => Node::Const(v == evt_type),
            Some(TypeTest::Ne(v)) => Node::Const(v != evt_type),
            Some(TypeTest::In(set)) => Node::Const(set.contains(evt_type)),
            None => Node::Test(t.clone()),
        },
    }
}

/// An `evt.type` comparison the index can answer.
enum TypeTest<'n> {
    Eq(&'n str),
    Ne(&'n str),
    In(&'n Set<String>),
}

fn type_test(t: &Test) -> Option<TypeTest<'_>> {
    let Operand::Field { id: Field::EvtType, arg: None, .. } = &t.lhs else { return None };
    match &t.kind {
        TestKind::Str(StrTest::Eq(v)) => Some(TypeTest::Eq(v)),
        TestKind::Str(StrTest::Ne(v)) => Some(TypeTest::Ne(v)),
        TestKind::Str(StrTest::In(set)) => Some(TypeTest::In(set)),
        _ => None,
    }
}

/// The process names a condition requires (`proc.name = x` or `proc.name in (...)` that
/// must hold for it to hold), with the `proc.name` operand; `None` when it matches whatever
/// the name. A condition that can never hold requires none of them: the empty set.
fn required_names(node: &Node) -> Option<(Operand, Set<String>)> {
    match node {
        Node::Test(t) => {
            let Operand::Field { id: Field::ProcName, arg: None, .. } = &t.lhs else { return None };
            match &t.kind {
                TestKind::Str(StrTest::Eq(v)) => Some((t.lhs.clone(), Set::from_iter([v.clone()]))),
                TestKind::Str(StrTest::In(set)) => Some((t.lhs.clone(), set.clone())),
                _ => None,
            }
        }
        // Each conjunct must hold: the names all of the requiring ones allow.
        Node::And(items) => items.iter().filter_map(required_names).reduce(|(op, a), (_, b)| {
            let both = a.intersection(&b).cloned().collect();
            (op, both)
        }),
        // One alternative must hold: the names any of them allows, if each requires some.
        Node::Or(items) => {
            let mut out: Option<(Operand, Set<String>)> = None;
            for item in items {
                let (op, names) = required_names(item)?;
                match &mut out {
                    Some((_, acc)) => acc.extend(names),
                    None => out = Some((op, names)),
                }
            }
            out
        }
        Node::Const(_) | Node::Not(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_test(kind: StrTest) -> Node {
        let lhs = Operand::Field { slot: 1, id: Field::ProcName, arg: None };
        Node::Test(Box::new(Test { lhs, any: false, kind: TestKind::Str(kind) }))
    }

    fn names(n: &Node) -> Option<Vec<String>> {
        required_names(n).map(|(_, set)| {
            let mut v: Vec<String> = set.into_iter().collect();
            v.sort();
            v
        })
    }

    #[test]
    fn names_required_through_and_or() {
        let eq = |v: &str| name_test(StrTest::Eq(v.into()));
        let set = |v: &[&str]| name_test(StrTest::In(v.iter().map(|s| (*s).to_owned()).collect()));
        let other = Node::Const(true);
        assert_eq!(names(&Node::And(vec![other, set(&["a", "b", "c"]), set(&["b", "c", "d"])])).unwrap(), ["b", "c"]);
        assert_eq!(names(&Node::Or(vec![eq("a"), set(&["x"])])).unwrap(), ["a", "x"]);
        assert_eq!(names(&Node::Or(vec![eq("a"), Node::Const(true)])), None, "one alternative needs no name");
        assert_eq!(names(&Node::Not(Box::new(eq("a")))), None);
        assert_eq!(names(&name_test(StrTest::Ne("a".into()))), None);
    }
}
