//! Which rules an event can match, found before evaluating any: rules are indexed by event
//! type, each with its condition specialised to that type (its `evt.type` tests become
//! constants and fold away, so a rule never re-checks the type the index picked), and within
//! a type by the process name when a rule's condition requires `proc.name` to be one of a
//! few names (a shell, `grep`, `debugfs`...): the other rules of the type are never looked at
//! for other processes.
//!
//!
//! Within a type, a test that several rules require (a conjunct of each condition, such as
//! `evt.is_open_write = true` or `container.id != host`) is a guard: taken out of those
//! conditions and evaluated at most once per event, so a rule whose guard fails is passed
//! over with one bit test instead of a walk into its condition.
//!
//! The compiled conditions ([`super::compile::CompiledRule::cond`]) are left as they are;
//! the index holds specialised copies.

use std::collections::{BTreeSet, HashMap};

use foldhash::fast::RandomState;

use super::compile::{CompiledRule, optimize};
use super::eval::{self, Ctx, Node, Operand, Program, Set, StrTest, Test, TestKind};
use super::event::Value;
use super::fields::Field;

/// The most guards an event type has: one bit each in a [`Candidate::guards`] mask.
const MAX_GUARDS: usize = u64::BITS as usize;

/// A rule to evaluate on events of one type.
#[derive(Debug)]
pub(crate) struct Candidate {
    /// The rule's position in load order.
    pub rule: usize,
    /// The guards of the type its condition requires (bit i: guard i).
    guards: u64,
    /// Its condition, specialised to the event type, without those guards.
    program: Program,
}

/// A candidate while its type's index is built: its condition still a tree, to find the
/// names it requires and the guards it shares.
struct Pending {
    rule: usize,
    guards: u64,
    check: Node,
}

impl Pending {
    fn new(rule: usize, check: Node) -> Self {
        Pending { rule, guards: 0, check }
    }
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
    /// Tests several candidates require, taken out of their conditions.
    guards: Vec<Program>,
}

/// The candidates an event can match, in order, and the outcomes of the type's guards so
/// far for this event.
pub(crate) struct Selection<'i> {
    candidates: &'i [Candidate],
    order: &'i [u32],
    guards: &'i [Program],
    /// Guards evaluated for the event (bit i: guard i)...
    known: u64,
    /// ...and those of them that held.
    held: u64,
}

impl<'i> Selection<'i> {
    /// The candidates to evaluate, in order.
    pub(crate) fn candidates(&self) -> impl Iterator<Item = &'i Candidate> + use<'i> {
        let candidates = self.candidates;
        self.order.iter().filter_map(move |&i| candidates.get(i as usize))
    }

    /// Whether `c`'s condition holds for the event: its guards (each evaluated once per
    /// event, in order), then the rest.
    pub(crate) fn matches(&mut self, c: &Candidate, ctx: &mut Ctx<'_>) -> bool {
        let mut need = c.guards;
        while need != 0 {
            let bit = need & need.wrapping_neg();
            if self.known & bit == 0 {
                let guard = &self.guards[bit.trailing_zeros() as usize];
                self.known |= bit;
                if guard.eval(ctx) {
                    self.held |= bit;
                }
            }
            if self.held & bit == 0 {
                return false;
            }
            need &= !bit;
        }
        c.program.eval(ctx)
    }
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
                .map(|rule| Pending::new(rule, optimize(specialise(&rules[rule].cond, t))))
                .filter(|c| !matches!(c.check, Node::Const(false)))
                .collect();
            by_type.insert(t.to_owned(), TypeIndex::new(candidates));
        }
        let untyped =
            TypeIndex::new(untyped.into_iter().map(|rule| Pending::new(rule, rules[rule].cond.clone())).collect());
        RuleIndex { by_type, untyped }
    }

    /// The event types some rule names (with rules of any type, all types can match).
    pub(crate) fn types(&self) -> impl Iterator<Item = &str> {
        self.by_type.keys().map(String::as_str)
    }

    /// The candidates an event of type `evt_type` can match: fetches `proc.name` (into the
    /// event's cache) when the type is indexed by it.
    pub(crate) fn select(&self, evt_type: &str, ctx: &mut Ctx<'_>) -> Selection<'_> {
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
        Selection { candidates: &t.candidates, order, guards: &t.guards, known: 0, held: 0 }
    }
}

impl TypeIndex {
    fn new(mut candidates: Vec<Pending>) -> Self {
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
        let guards = take_guards(&mut candidates);
        let candidates = candidates
            .into_iter()
            .map(|p| Candidate { rule: p.rule, guards: p.guards, program: Program::new(p.check) })
            .collect();
        TypeIndex { candidates, all, names, guards }
    }
}

/// Takes the tests that two or more of `candidates` require out of their conditions (into
/// their [`Pending::guards`] masks) and returns them, bit i being the i-th.
fn take_guards(candidates: &mut [Pending]) -> Vec<Program> {
    // Per guardable conjunct, in order of first appearance: how many candidates require it.
    let mut seen: Vec<(GuardKey, usize)> = Vec::new();
    let mut at: HashMap<GuardKey, usize> = HashMap::new();
    for c in candidates.iter() {
        let mut mine = BTreeSet::new();
        for key in conjuncts(&c.check).iter().filter_map(guard_key) {
            let i = *at.entry(key.clone()).or_insert_with(|| {
                seen.push((key, 0));
                seen.len() - 1
            });
            if mine.insert(i) {
                seen[i].1 += 1;
            }
        }
    }
    let chosen: HashMap<GuardKey, usize> =
        seen.into_iter().filter(|(_, n)| *n >= 2).map(|(k, _)| k).take(MAX_GUARDS).zip(0..).collect();
    let mut guards: Vec<Option<Node>> = (0..chosen.len()).map(|_| None).collect();
    for c in candidates {
        let items = match std::mem::replace(&mut c.check, Node::Const(true)) {
            Node::And(items) => items,
            other => vec![other],
        };
        let mut rest = Vec::with_capacity(items.len());
        for item in items {
            match guard_key(&item).and_then(|k| chosen.get(&k)) {
                Some(&i) => {
                    c.guards |= 1 << i;
                    guards[i].get_or_insert(item);
                }
                None => rest.push(item),
            }
        }
        c.check = optimize(Node::And(rest));
    }
    // Every chosen key came from a conjunct, so each slot is filled.
    guards.into_iter().map(|g| Program::new(g.unwrap_or(Node::Const(true)))).collect()
}

/// The conjuncts of a condition: the items of an `and`, else the condition itself.
fn conjuncts(node: &Node) -> &[Node] {
    match node {
        Node::And(items) => items,
        other => std::slice::from_ref(other),
    }
}

/// What identifies a test (or a negated one) that can be a guard: a cheap one, on a single
/// value (not on every ancestor nor through a transformer), with a comparison whose
/// constant can be compared.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct GuardKey {
    negated: bool,
    field: Operand,
    kind: GuardKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum GuardKind {
    Exists,
    Bool(bool),
    Num(eval::NumOp, i128),
    Flag(String, bool),
    Eq(String),
    Ne(String),
    StartsWith(String),
    EndsWith(String),
    Contains(String),
    /// The set's members, sorted.
    In(Vec<String>),
}

fn guard_key(node: &Node) -> Option<GuardKey> {
    let (negated, t) = match node {
        Node::Test(t) => (false, t),
        Node::Not(inner) => match &**inner {
            Node::Test(t) => (true, t),
            Node::Const(_) | Node::And(_) | Node::Or(_) | Node::Not(_) => return None,
        },
        Node::Const(_) | Node::And(_) | Node::Or(_) => return None,
    };
    if t.any || !matches!(t.lhs, Operand::Field { .. }) {
        return None;
    }
    let kind = match &t.kind {
        TestKind::Exists => GuardKind::Exists,
        TestKind::Bool(b) => GuardKind::Bool(*b),
        TestKind::Num(op, n) => GuardKind::Num(*op, *n),
        TestKind::Flag(flag, fold) => GuardKind::Flag(flag.clone(), *fold),
        TestKind::Str(st) => match st {
            StrTest::Eq(v) => GuardKind::Eq(v.clone()),
            StrTest::Ne(v) => GuardKind::Ne(v.clone()),
            StrTest::StartsWith(v) => GuardKind::StartsWith(v.clone()),
            StrTest::EndsWith(v) => GuardKind::EndsWith(v.clone()),
            StrTest::Contains(v) => GuardKind::Contains(v.clone()),
            StrTest::In(set) => {
                let mut members: Vec<String> = set.iter().cloned().collect();
                members.sort();
                GuardKind::In(members)
            }
            // Costlier, or with constants that do not compare.
            StrTest::IContains(_)
            | StrTest::Glob(..)
            | StrTest::Regex(_)
            | StrTest::Intersects(_)
            | StrTest::Pmatch(_)
            | StrTest::AnyContains(_)
            | StrTest::AnyPrefix(..) => return None,
        },
        TestKind::NumIn(_)
        | TestKind::Ip { .. }
        | TestKind::BContains(_)
        | TestKind::BStartsWith(_)
        | TestKind::Field(..) => {
            return None;
        }
    };
    Some(GuardKey { negated, field: t.lhs.clone(), kind })
}

/// `node` for events of type `evt_type`: its `evt.type` comparisons (`=`, `!=`, `in`)
/// replaced by their outcome, and its other tests [cheapened](cheapen). The engine only gives an event the rules of its type, and
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
            None => Node::Test(Box::new(cheapen(t))),
        },
    }
}

/// `t`, or a cheaper test that holds for the same values: a case-sensitive `glob` whose
/// only wildcards are `*` at its ends is `=`, `startswith`, `endswith` or `contains` (`*`
/// matches any text, `/` included).
fn cheapen(t: &Test) -> Test {
    const WILD: [char; 4] = ['*', '?', '[', '\\'];
    let TestKind::Str(StrTest::Glob(pattern, false)) = &t.kind else { return t.clone() };
    let core = pattern.trim_matches('*');
    if core.is_empty() || core.contains(WILD) {
        return t.clone();
    }
    let literal = core.to_owned();
    let st = match (pattern.starts_with('*'), pattern.ends_with('*')) {
        (false, false) => StrTest::Eq(literal),
        (false, true) => StrTest::StartsWith(literal),
        (true, false) => StrTest::EndsWith(literal),
        (true, true) => StrTest::Contains(literal),
    };
    Test { lhs: t.lhs.clone(), any: t.any, kind: TestKind::Str(st) }
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
        TestKind::Str(StrTest::In(set)) => Some(TypeTest::In(set.strings())),
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
                TestKind::Str(StrTest::In(set)) => Some((t.lhs.clone(), set.strings().clone())),
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

    #[test]
    fn conjuncts_two_rules_share_become_guards() {
        let mut set = super::super::loader::RuleSet::default();
        set.load_str(
            "t.yaml",
            r#"
- rule: A
  desc: d
  condition: evt.type = openat and evt.is_open_write = true and fd.name = /a
  output: o
  priority: WARNING
- rule: B
  desc: d
  condition: evt.type = openat and evt.is_open_write = true and not proc.name = sh and fd.name = /b
  output: o
  priority: WARNING
- rule: C
  desc: d
  condition: evt.type = openat and not proc.name = sh
  output: o
  priority: WARNING
"#,
        );
        let index = RuleIndex::build(&super::super::compile::compile(&set).rules);
        let openat = &index.by_type["openat"];
        assert_eq!(openat.guards.len(), 2, "{:?}", openat.guards);
        let masks: Vec<u64> = openat.candidates.iter().map(|c| c.guards).collect();
        assert_eq!(masks, [0b01, 0b11, 0b10]);
        assert_eq!(openat.candidates[2].program.constant(), Some(true), "C is its guard alone");
    }

    #[test]
    fn globs_with_stars_only_at_the_ends_become_plain_string_tests() {
        let glob = |p: &str, fold: bool| {
            let lhs = Operand::Field { slot: 1, id: Field::FdName, arg: None };
            cheapen(&Test { lhs, any: false, kind: TestKind::Str(StrTest::Glob(p.into(), fold)) }).kind
        };
        let text = |k: TestKind| format!("{k:?}");
        assert_eq!(text(glob("*/.kube/config", false)), r#"Str(EndsWith("/.kube/config"))"#);
        assert_eq!(text(glob("/etc/*", false)), r#"Str(StartsWith("/etc/"))"#);
        assert_eq!(text(glob("**/.ssh/id_*", false)), r#"Str(Contains("/.ssh/id_"))"#);
        assert_eq!(text(glob("/etc/passwd", false)), r#"Str(Eq("/etc/passwd"))"#);
        for kept in ["/etc/ssh/ssh_host_*_key", "*.ss?", "*[ab]", "*\\*", "*", "*/A", "x*"] {
            let fold = kept == "*/A" || kept == "x*";
            assert!(matches!(glob(kept, fold), TestKind::Str(StrTest::Glob(..))), "{kept}");
        }
        for (pattern, text) in [("*/.kube/config", "/root/.kube/config"), ("/etc/*", "/etc/"), ("*a*", "a")] {
            let cheap = glob(pattern, false);
            let TestKind::Str(st) = cheap else { panic!() };
            let holds = match st {
                StrTest::Eq(s) => text == s,
                StrTest::StartsWith(s) => text.starts_with(&s),
                StrTest::EndsWith(s) => text.ends_with(&s),
                StrTest::Contains(s) => text.contains(&s),
                other => panic!("{other:?}"),
            };
            assert_eq!(holds, super::super::matchers::fnmatch(pattern, text, false), "{pattern} {text}");
        }
    }
}
