//! The in-kernel prefilter compiled from the loaded rules (`sensor_abi::prefilter` says
//! what the kernel does with it).
//!
//! Sound by construction: for every rule and every open syscall it can match, a *necessary*
//! condition is derived from its condition (after macros, lists and exceptions, with its
//! `evt.type` tests decided for that syscall) — a path pattern and at most one
//! [`open_class`] — and the kernel sends every open meeting one of them. Whatever cannot be
//! reasoned about (a negation, `contains`, a field other than the path, flags and result)
//! weakens the condition, down to "any open", never the other way.
//!
//! The state loses nothing a rule reads: the kernel sends the path of a kept-back fd with
//! the first event that uses it, and every directory's open (relative paths and `fchdir`
//! resolve through them). What remains: rules that can match `close` keep every close, and
//! `proc.fdopencount` and `fd.types`, which count or list every fd, keep every open.

use std::collections::BTreeMap;

use sensor_abi::{
    prefilter::{
        NAME_MAX, PATH_KEY_MAX, PathBytes, component_bloom_bit, is_plain_path, never_in_plain_path, open_class,
        open_classes, spec_prefilter,
    },
    syscalls::{Family, SYSCALLS, Syscall},
};

use super::ast::Transformer;
use super::compile::CompiledRule;
use super::eval::{Node, NumOp, Operand, StrTest, Test, TestKind};
use super::fields::{Field, FieldArg};
use super::output::Piece;
use crate::event::{Event, SyscallArgs};

/// What the kernel is told to keep back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Prefilter {
    /// The opens to send; `None`: every one.
    pub open: Option<OpenFilter>,
    /// Whether closes of fds whose open was not sent are not sent either.
    pub close: bool,
    /// Why opens are not filtered, when they are not (for the log).
    pub open_off_reason: Option<String>,
}

/// The opens some rule can match: by path, by file name, by a hidden component, and
/// whatever the path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenFilter {
    /// Classes wanted whatever the path.
    pub any: u32,
    /// Classes wanted when the path has a hidden component (`/.`).
    pub hidden: u32,
    /// Classes wanted per path pattern, each including those of the patterns it extends
    /// (what the kernel's longest-prefix lookup needs).
    pub paths: BTreeMap<PathPattern, u32>,
    /// Classes wanted per file name (a path's last component).
    pub names: BTreeMap<String, u32>,
}

/// What a rule's condition says of the path of an open it matches.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Atom {
    /// It matches this pattern.
    Path(PathPattern),
    /// Its last component is this name.
    Name(String),
    /// It has a hidden component (`/.`).
    Hidden,
}

/// A path pattern of the trie.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PathPattern {
    /// This path exactly.
    Exact(String),
    /// Every path starting with these bytes.
    Prefix(String),
}

impl PathPattern {
    /// The trie key: significant bits and bytes (an exact path with its NUL). `None` for an
    /// exact path too long for a key: the kernel sends such paths anyway.
    pub fn key(&self) -> Option<(u32, PathBytes)> {
        let mut data = [0u8; PATH_KEY_MAX];
        let (bytes, nul) = match self {
            PathPattern::Exact(p) => (p.as_bytes(), 1),
            // A longer prefix is cut: a shorter prefix matches more, which is sound.
            PathPattern::Prefix(p) => (&p.as_bytes()[..p.len().min(PATH_KEY_MAX - 1)], 0),
        };
        if bytes.len() + nul > PATH_KEY_MAX {
            return None;
        }
        data[..bytes.len()].copy_from_slice(bytes);
        Some((((bytes.len() + nul) * 8) as u32, data))
    }

    /// The [`component_bloom_bit`] of the first component every path of this pattern has;
    /// all bits when the pattern does not fix it whole.
    pub fn first_component_bloom(&self) -> u64 {
        let (text, whole) = match self {
            PathPattern::Exact(p) => (p, true),
            PathPattern::Prefix(p) => (p, false),
        };
        let Some(rest) = text.strip_prefix('/') else { return u64::MAX };
        match rest.find('/') {
            Some(end) => component_bloom_bit(&rest.as_bytes()[..end]),
            None if whole => component_bloom_bit(rest.as_bytes()),
            None => u64::MAX,
        }
    }

    fn len(&self) -> usize {
        match self {
            PathPattern::Exact(p) => p.len() + 1,
            PathPattern::Prefix(p) => p.len(),
        }
    }

    fn covers(&self, other: &PathPattern) -> bool {
        match (self, other) {
            (PathPattern::Prefix(p), PathPattern::Exact(o) | PathPattern::Prefix(o)) => o.starts_with(p.as_str()),
            (PathPattern::Exact(p), PathPattern::Exact(o)) => p == o,
            (PathPattern::Exact(_), PathPattern::Prefix(_)) => false,
        }
    }
}

impl OpenFilter {
    /// The classes wanted for `path`, as the kernel finds them: the longest matching
    /// pattern's (which include the shorter ones'), its name's, and the hidden ones.
    fn classes_for(&self, path: &str) -> u32 {
        let exact = PathPattern::Exact(path.to_owned());
        let longest = self.paths.iter().filter(|(p, _)| p.covers(&exact)).max_by_key(|(p, _)| p.len());
        let name = path.rsplit('/').next().unwrap_or_default();
        self.any
            | longest.map_or(0, |(_, c)| *c)
            | self.names.get(name).copied().unwrap_or(0)
            | if path.contains("/.") { self.hidden } else { 0 }
    }

    /// Whether the kernel sends an open of `path` with `flags` (`None`: not read) returning
    /// `ret`, assuming it is not a directory (those are always sent).
    pub fn sends(&self, path: &str, flags: Option<u64>, ret: i64) -> bool {
        !is_plain_path(path.as_bytes()) || open_classes(flags, ret) & self.classes_for(path) != 0
    }

    /// Whether every successful open of `path` is sent, whatever its flags.
    fn sends_every_open_of(&self, path: &str) -> bool {
        const O_RDONLY: u64 = 0;
        const O_WRONLY: u64 = 1;
        const O_RDWR: u64 = 2;
        const O_CREAT: u64 = 0o100;
        [O_RDONLY, O_WRONLY, O_RDWR]
            .into_iter()
            .flat_map(|acc| [acc, acc | O_CREAT])
            .all(|flags| self.sends(path, Some(flags), 3))
    }
}

impl Prefilter {
    /// A prefilter that keeps nothing back.
    pub fn off(reason: &str) -> Self {
        Prefilter { open: None, close: false, open_off_reason: Some(reason.to_owned()) }
    }

    /// Compiles the prefilter of `rules`.
    pub(crate) fn compile(rules: &[CompiledRule]) -> Self {
        let mut needs = Needs::default();
        for r in rules.iter().filter(|r| r.source == super::fields::SYSCALL_SOURCE) {
            needs.add_rule(r);
        }
        needs.finish()
    }

    /// Whether the kernel sends `ev` (a model of its decision, for soundness tests), where
    /// `fd_file` is the path of the file its fd refers to, when it does.
    pub fn sends(&self, ev: &Event, fd_file: Option<&str>) -> bool {
        let Some(sc) = ev.syscall() else { return true };
        let Some(open) = &self.open else { return true };
        match &sc.args {
            SyscallArgs::Open { path: Some(path), flags, .. } => {
                let role = sensor_abi::syscalls::by_nr(sc.nr).map_or(0, |s| s.prefilter_role());
                open.sends(path, spec_prefilter::arg(role).map(|_| *flags), sc.ret)
            }
            // A close is kept back with its fd's open.
            SyscallArgs::Close { .. } => !self.close || fd_file.is_none_or(|p| open.sends_every_open_of(p)),
            // Other events are sent (with their fd's path when its open was kept back).
            _ => true,
        }
    }
}

/// The names of a set of [`open_class`]es, for logs: `none`, `any open`, or e.g. `write|trunc`.
pub fn class_names(classes: u32) -> String {
    const NAMES: [(u32, &str); 6] = [
        (open_class::READ, "read"),
        (open_class::WRITE, "write"),
        (open_class::CREATE, "create"),
        (open_class::TRUNC, "trunc"),
        (open_class::SUCCEEDED, "succeeded"),
        (open_class::FAILED, "failed"),
    ];
    match classes {
        0 => "none".into(),
        open_class::ALL => "any open".into(),
        c => NAMES.iter().filter(|(bit, _)| c & bit != 0).map(|(_, n)| *n).collect::<Vec<_>>().join("|"),
    }
}

/// A necessary condition for a rule to match an open: a path pattern (or any path) and a
/// class (or [`open_class::ALL`]: no requirement).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Conj {
    /// `None`: any path; else one of these holds.
    paths: Option<Vec<Atom>>,
    class: u32,
}

const TOP: Conj = Conj { paths: None, class: open_class::ALL };

/// A disjunction of [`Conj`]; empty: cannot match.
type Approx = Vec<Conj>;

/// Most disjuncts an `and` may multiply out to; past it, a term is left out (sound: the
/// condition only gets weaker).
const MAX_DISJUNCTS: usize = 256;

/// Classes in order of preference when a conjunction requires several: the one fewest
/// opens have.
const CLASS_PREFERENCE: [u32; 6] = [
    open_class::TRUNC,
    open_class::CREATE,
    open_class::FAILED,
    open_class::WRITE,
    open_class::READ,
    open_class::SUCCEEDED,
];

fn narrower_class(a: u32, b: u32) -> u32 {
    CLASS_PREFERENCE.into_iter().find(|c| *c == a || *c == b).unwrap_or(open_class::ALL)
}

fn and(a: &Conj, b: &Conj) -> Conj {
    let paths = match (&a.paths, &b.paths) {
        (None, p) | (p, None) => p.clone(),
        // Either side contains the intersection: keep the smaller.
        (Some(x), Some(y)) => Some(if x.len() <= y.len() { x.clone() } else { y.clone() }),
    };
    Conj { paths, class: narrower_class(a.class, b.class) }
}

/// A necessary condition for `node` to hold on an event of type `evt_type`.
fn approx(node: &Node, evt_type: &str) -> Approx {
    match node {
        Node::Const(true) => vec![TOP],
        Node::Const(false) => Vec::new(),
        // Only a `not` of something known for this type says anything.
        Node::Not(inner) => match decide(inner, evt_type) {
            Some(true) => Vec::new(),
            Some(false) | None => vec![TOP],
        },
        Node::Or(items) => {
            let mut out = Vec::new();
            for i in items {
                let a = approx(i, evt_type);
                if a.contains(&TOP) {
                    return vec![TOP];
                }
                out.extend(a);
            }
            out
        }
        Node::And(items) => {
            let mut acc = vec![TOP];
            for i in items {
                let a = approx(i, evt_type);
                if a.len() * acc.len() > MAX_DISJUNCTS {
                    continue;
                }
                acc = acc.iter().flat_map(|x| a.iter().map(move |y| and(x, y))).collect();
            }
            acc
        }
        Node::Test(t) if matches!(t.lhs, Operand::Field { id: Field::EvtType, .. }) => {
            match type_test(&t.kind, evt_type) {
                Some(false) => Vec::new(),
                Some(true) | None => vec![TOP],
            }
        }
        Node::Test(t) => match test_approx(t) {
            None => vec![TOP],
            Some(Conj { paths: Some(p), .. }) if p.is_empty() => Vec::new(),
            Some(c) => vec![c],
        },
    }
}

/// The value of `node` on every event of type `evt_type`, when its `evt.type` tests decide it.
fn decide(node: &Node, evt_type: &str) -> Option<bool> {
    match node {
        Node::Const(b) => Some(*b),
        Node::Not(inner) => decide(inner, evt_type).map(|b| !b),
        Node::And(items) => {
            let all: Vec<Option<bool>> = items.iter().map(|n| decide(n, evt_type)).collect();
            if all.contains(&Some(false)) { Some(false) } else { all.iter().all(|d| *d == Some(true)).then_some(true) }
        }
        Node::Or(items) => {
            let all: Vec<Option<bool>> = items.iter().map(|n| decide(n, evt_type)).collect();
            if all.contains(&Some(true)) { Some(true) } else { all.iter().all(|d| *d == Some(false)).then_some(false) }
        }
        Node::Test(t) if matches!(t.lhs, Operand::Field { id: Field::EvtType, .. }) => type_test(&t.kind, evt_type),
        Node::Test(_) => None,
    }
}

/// The outcome of a test of `evt.type` on an event of type `evt_type`, when known.
fn type_test(kind: &TestKind, evt_type: &str) -> Option<bool> {
    match kind {
        TestKind::Str(StrTest::Eq(s)) => Some(s == evt_type),
        TestKind::Str(StrTest::Ne(s)) => Some(s != evt_type),
        TestKind::Str(StrTest::In(set)) => Some(set.contains(evt_type)),
        _ => None,
    }
}

/// Argument names whose `evt.arg` value is a path.
const PATH_ARGS: [&str; 8] = ["name", "filename", "pathname", "path", "oldpath", "newpath", "target", "linkpath"];

/// Whether `op` is a field whose value, for a plain absolute path, is that path.
fn is_path_field(op: &Operand) -> bool {
    let Operand::Field { id, arg, .. } = op else { return false };
    match id {
        Field::FdName
        | Field::FdNameraw
        | Field::FsPathName
        | Field::FsPathNameraw
        | Field::FsPathSource
        | Field::FsPathSourceraw
        | Field::FsPathTarget
        | Field::FsPathTargetraw => true,
        Field::EvtArg => matches!(arg, Some(FieldArg::Key(k)) if PATH_ARGS.contains(&k.as_str())),
        _ => false,
    }
}

fn field_of(op: &Operand) -> Option<(Field, Option<&FieldArg>)> {
    match op {
        Operand::Field { id, arg, .. } => Some((*id, arg.as_ref())),
        Operand::Transform(..) => None,
    }
}

/// A file name the kernel can look up: non-empty, without `/`, shorter than its key.
fn name_atom(name: &str) -> Option<Atom> {
    (!name.is_empty() && !name.contains('/') && name.len() < NAME_MAX).then(|| Atom::Name(name.to_owned()))
}

/// What a path ending with `suffix` says: its last component, or a hidden component.
fn suffix_atom(suffix: &str) -> Option<Atom> {
    let name = suffix.rsplit_once('/').map(|(_, n)| n);
    name.and_then(name_atom).or_else(|| suffix.contains("/.").then_some(Atom::Hidden))
}

/// What `fnmatch(pattern, path)` says of the path: the literal start, else the last
/// component when it is literal, else a hidden component a literal part has.
fn glob_atom(pattern: &str) -> Option<Atom> {
    const WILD: [char; 4] = ['*', '?', '[', '\\'];
    match pattern.find(WILD) {
        None => return Some(Atom::Path(PathPattern::Exact(pattern.to_owned()))),
        Some(i) if i > 1 => return Some(Atom::Path(PathPattern::Prefix(pattern[..i].to_owned()))),
        Some(_) => {}
    }
    let last = pattern.rsplit_once('/').map(|(_, n)| n).filter(|n| !n.contains(WILD));
    last.and_then(name_atom).or_else(|| pattern.split(WILD).any(|part| part.contains("/.")).then_some(Atom::Hidden))
}

/// The atoms a test of a path field allows: `Some(empty)` when no plain path passes it,
/// `None` when any may.
fn path_atoms(kind: &TestKind) -> Option<Vec<Atom>> {
    let TestKind::Str(st) = kind else { return None };
    let impossible = match st {
        StrTest::Contains(s) | StrTest::IContains(s) | StrTest::EndsWith(s) => never_in_plain_path(s),
        StrTest::Glob(p, _) => p.split(['*', '?', '[', ']', '\\']).any(never_in_plain_path),
        _ => false,
    };
    if impossible {
        return Some(Vec::new());
    }
    let exact = |s: &String| Atom::Path(PathPattern::Exact(s.clone()));
    let prefix = |s: &String| Atom::Path(PathPattern::Prefix(s.clone()));
    Some(match st {
        StrTest::Eq(s) => vec![exact(s)],
        StrTest::In(set) | StrTest::Intersects(set) => set.iter().map(exact).collect(),
        StrTest::StartsWith(s) => vec![prefix(s)],
        StrTest::AnyPrefix(_, prefixes) => prefixes.iter().map(prefix).collect(),
        StrTest::Pmatch(trie) => trie
            .literal_prefixes()
            .flat_map(|(components, whole)| {
                let dir = format!("/{}", components.join("/"));
                let below = Atom::Path(PathPattern::Prefix(if dir == "/" { dir.clone() } else { format!("{dir}/") }));
                let itself = (whole && dir != "/").then_some(Atom::Path(PathPattern::Exact(dir)));
                itself.into_iter().chain([below])
            })
            .collect(),
        StrTest::Glob(p, false) => vec![glob_atom(p)?],
        StrTest::EndsWith(s) => vec![suffix_atom(s)?],
        StrTest::Contains(s) if s.contains("/.") => vec![Atom::Hidden],
        StrTest::Glob(_, true)
        | StrTest::Ne(_)
        | StrTest::Contains(_)
        | StrTest::IContains(_)
        | StrTest::Regex(_)
        | StrTest::AnyContains(_) => return None,
    })
}

/// The atoms a test of a path's last component allows (`fd.filename`, `basename(...)`).
fn name_atoms(kind: &TestKind) -> Option<Vec<Atom>> {
    let TestKind::Str(st) = kind else { return None };
    match st {
        StrTest::Eq(s) => Some(vec![name_atom(s)?]),
        StrTest::In(set) | StrTest::Intersects(set) => set.iter().map(|s| name_atom(s)).collect(),
        _ => None,
    }
}

/// `fd.directory` values as path prefixes.
fn directory_atoms(kind: &TestKind) -> Option<Vec<Atom>> {
    let dir = |d: &String| Atom::Path(PathPattern::Prefix(if d.ends_with('/') { d.clone() } else { format!("{d}/") }));
    let TestKind::Str(st) = kind else { return None };
    match st {
        StrTest::Eq(s) => Some(vec![dir(s)]),
        StrTest::In(set) | StrTest::Intersects(set) => Some(set.iter().map(dir).collect()),
        StrTest::StartsWith(s) => Some(vec![Atom::Path(PathPattern::Prefix(s.clone()))]),
        _ => None,
    }
}

/// The class a test of a result requires: `fd.num`/`evt.rawres` compared with a number.
fn result_class(kind: &TestKind) -> Option<u32> {
    let TestKind::Num(op, n) = kind else { return None };
    let (ok, failed) = (Some(open_class::SUCCEEDED), Some(open_class::FAILED));
    match (op, *n) {
        (NumOp::Ge, n) if n >= 0 => ok,
        (NumOp::Gt, n) if n >= -1 => ok,
        (NumOp::Eq, n) if n >= 0 => ok,
        (NumOp::Eq, n) if n < 0 => failed,
        (NumOp::Lt, n) if n <= 0 => failed,
        (NumOp::Le, n) if n < 0 => failed,
        _ => None,
    }
}

fn test_approx(t: &Test) -> Option<Conj> {
    let class = |c| Some(Conj { paths: None, class: c });
    let on_path = |atoms: Option<Vec<Atom>>| atoms.map(|p| Conj { paths: Some(p), class: open_class::ALL });
    if is_path_field(&t.lhs) {
        return on_path(path_atoms(&t.kind));
    }
    if let Operand::Transform(Transformer::Basename, inner) = &t.lhs
        && is_path_field(inner)
    {
        return on_path(name_atoms(&t.kind));
    }
    let (field, arg) = field_of(&t.lhs)?;
    match (field, &t.kind) {
        (Field::FdDirectory, kind) => on_path(directory_atoms(kind)),
        (Field::FdFilename, kind) => on_path(name_atoms(kind)),
        (Field::EvtIsOpenRead, TestKind::Bool(true)) => class(open_class::READ),
        (Field::EvtIsOpenWrite, TestKind::Bool(true)) => class(open_class::WRITE),
        (Field::EvtIsOpenCreate, TestKind::Bool(true)) => class(open_class::CREATE),
        (Field::EvtFailed, TestKind::Bool(b)) => class(if *b { open_class::FAILED } else { open_class::SUCCEEDED }),
        (Field::EvtArg, TestKind::Flag(flag, _)) if matches!(arg, Some(FieldArg::Key(k)) if k == "flags") => {
            match flag.to_ascii_uppercase().as_str() {
                "O_WRONLY" | "O_RDWR" => class(open_class::WRITE),
                "O_CREAT" | "O_TMPFILE" => class(open_class::CREATE),
                "O_TRUNC" => class(open_class::TRUNC),
                _ => None,
            }
        }
        (Field::FdNum | Field::EvtRawres, kind) => result_class(kind).and_then(class),
        (Field::EvtRes, TestKind::Str(StrTest::Eq(s))) if s == "SUCCESS" => class(open_class::SUCCEEDED),
        (Field::EvtRes, TestKind::Str(StrTest::StartsWith(s))) if s == "E" => class(open_class::FAILED),
        _ => None,
    }
}

/// The field `op` reads (through any transformers).
fn operand_field(mut op: &Operand) -> Option<Field> {
    while let Operand::Transform(_, inner) = op {
        op = inner;
    }
    match op {
        Operand::Field { id, .. } => Some(*id),
        Operand::Transform(..) => None,
    }
}

/// Adds every field `node` reads to `out`.
fn fields_of(node: &Node, out: &mut Vec<Field>) {
    match node {
        Node::Const(_) => {}
        Node::And(items) | Node::Or(items) => items.iter().for_each(|n| fields_of(n, out)),
        Node::Not(n) => fields_of(n, out),
        Node::Test(t) => {
            out.extend(operand_field(&t.lhs));
            if let TestKind::Field(_, rhs, _) = &t.kind {
                out.extend(operand_field(rhs));
            }
        }
    }
}

/// What the loaded rules need, gathered rule by rule.
#[derive(Default)]
struct Needs {
    open: Approx,
    /// Something needs every open (the reason).
    all_opens: Option<String>,
    close_matched: bool,
}

impl Needs {
    fn add_rule(&mut self, r: &CompiledRule) {
        let types: Vec<&Syscall> = match &r.evttypes {
            None => SYSCALLS.iter().collect(),
            Some(types) => SYSCALLS.iter().filter(|s| types.contains(s.name)).collect(),
        };
        let mut fields = Vec::new();
        fields_of(&r.cond, &mut fields);
        for p in &r.output.pieces {
            if let Piece::Field { op, .. } = p {
                fields.extend(operand_field(op));
            }
        }
        // Kept-back fds are missing from the table until used: counting or listing them
        // needs every open.
        if fields.iter().any(|f| matches!(f, Field::ProcFdopencount | Field::FdTypes)) {
            self.all_opens.get_or_insert_with(|| format!("rule '{}' counts or lists every fd", r.name));
        }
        if types.iter().any(|s| s.family == Family::Close) {
            self.close_matched = true;
        }
        for sc in types.iter().filter(|s| s.family == Family::Open) {
            // The kernel gives a call whose flags it does not read (`creat`, `openat2`) every
            // class: any one sends it. What a rule requires of the class then says nothing
            // of these calls, and the narrowest class keeps the other calls' opens of the
            // same paths from being sent for them.
            let flagless = spec_prefilter::arg(sc.prefilter_role()).is_none();
            for mut c in approx(&r.cond, sc.name) {
                if flagless {
                    c.class = CLASS_PREFERENCE[0];
                }
                if c == TOP {
                    self.all_opens.get_or_insert_with(|| {
                        format!("rule '{}' can match an {} of any path, whatever its flags", r.name, sc.name)
                    });
                }
                self.open.push(c);
            }
        }
    }

    fn finish(self) -> Prefilter {
        let close = !self.close_matched;
        if let Some(reason) = self.all_opens {
            return Prefilter { open: None, close, open_off_reason: Some(reason) };
        }
        let mut filter = OpenFilter::default();
        for c in &self.open {
            let Some(atoms) = &c.paths else {
                filter.any |= c.class;
                continue;
            };
            for atom in atoms {
                match atom {
                    Atom::Path(PathPattern::Prefix(s)) if s.is_empty() => filter.any |= c.class,
                    Atom::Path(p) => {
                        // Too long for a key: the kernel sends such paths anyway.
                        if p.key().is_some() {
                            *filter.paths.entry(p.clone()).or_default() |= c.class;
                        }
                    }
                    Atom::Name(n) => *filter.names.entry(n.clone()).or_default() |= c.class,
                    Atom::Hidden => filter.hidden |= c.class,
                }
            }
        }
        if filter.any == open_class::ALL {
            let reason = "the rules together match an open of any path, whatever its flags";
            return Prefilter { open: None, close, open_off_reason: Some(reason.into()) };
        }
        // The kernel finds the longest matching pattern only: give each the classes of the
        // shorter ones it extends.
        let snapshot: Vec<(PathPattern, u32)> = filter.paths.iter().map(|(p, c)| (p.clone(), *c)).collect();
        for (p, classes) in filter.paths.iter_mut() {
            for (q, c) in &snapshot {
                if q.covers(p) {
                    *classes |= c;
                }
            }
        }
        Prefilter { open: Some(filter), close, open_off_reason: None }
    }
}

#[cfg(test)]
mod tests;
