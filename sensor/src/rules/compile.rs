//! Checker and compiler: a loaded [`RuleSet`] → compiled rules. Macros are expanded (each
//! sees only macros defined before it), list names expanded (a list sees only earlier lists),
//! exceptions folded into conditions, fields checked against the registry and every test
//! specialised by field type. Errors name file:line:column inside the condition.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, StartKind};

use super::ast::{Check, Expr, Op, Operand as AstOperand, Rhs, Span, Transformer};
use super::engine::ExtraField;
use super::eval::{self, Ctx, Node, NumOp, Operand, Scratch, Set, StrTest, Test, TestKind};
use super::event::FieldSource;
use super::fields::{self, Availability, Field, FieldArg, FieldType};
use super::loader::{CondText, Diagnostic, ExcValue, ExceptionDef, Loc, Priority, RuleDef, RuleSet, Severity};
use super::matchers::{self, Cidr, PathTrie};
use super::output::{self, OutputFormat, Piece, RawPiece};
use super::parser::{self, ParseError};
use super::yaml::Pos;

/// Event types of the scheduler events rules see, besides the syscalls of
/// `sensor_abi::syscalls` (`Event::is_state_only` keeps the others from rules).
const SCHED_EVENTS: [&str; 2] = ["proc_fork", "procexit"];

/// Most items a list holds once the lists it names are expanded: lists naming lists can
/// double at each step (40 steps would be 2^40 items).
const MAX_LIST_ITEMS: usize = 100_000;
/// Most nodes a rule's condition (with its exceptions) holds once its macros are expanded:
/// macros using a macro twice can double at each step.
const MAX_EXPANDED_NODES: u32 = 200_000;
/// Deepest nesting of a condition with its macros expanded (bounds recursion everywhere).
const MAX_NESTING: u32 = 1000;

/// A rule ready to evaluate.
#[derive(Debug)]
pub(crate) struct CompiledRule {
    pub name: String,
    pub desc: String,
    pub priority: Priority,
    pub source: String,
    /// Shared with the rule's alerts.
    pub tags: Arc<[String]>,
    pub cond: Node,
    /// Event types the rule can match; `None` = any.
    pub evttypes: Option<BTreeSet<String>>,
    pub output: OutputFormat,
}

/// Result of compiling a rule set.
#[derive(Debug, Default)]
pub(crate) struct Compiled {
    pub rules: Vec<CompiledRule>,
    pub slots: usize,
    pub diagnostics: Vec<Diagnostic>,
}

struct CErr {
    loc: Loc,
    msg: String,
    unknown_field: bool,
    reported: bool,
}

#[derive(Clone, Copy)]
enum Origin<'a> {
    Cond(&'a CondText),
    Fixed(&'a Loc),
}

struct Compiler<'a> {
    set: &'a RuleSet,
    lists: HashMap<&'a str, Vec<String>>,
    macros: HashMap<&'a str, usize>,
    parsed: Vec<Result<Expr, ()>>,
    slots: HashMap<(Field, Option<FieldArg>), usize>,
    used_macros: HashSet<usize>,
    used_lists: HashSet<String>,
    diags: Vec<Diagnostic>,
    rule_name: String,
    /// The source of the rule being compiled: its fields must be fields of that source's
    /// events.
    rule_source: String,
    nesting: u32,
    /// Nodes expanded for the rule being compiled ([`MAX_EXPANDED_NODES`]).
    expanded: u32,
    /// Fields the sensor does not supply that the rule being compiled names: the field,
    /// why, where first, and whether in its output (else in its condition).
    unavailable: Vec<(Field, &'static str, Loc, bool)>,
    in_output: bool,
}

/// Maps a byte offset of a YAML scalar's text back to a line and column, following YAML
/// folding (one separator character between source lines). Best effort for quoted scalars.
fn locate(source: &str, start: Pos, offset: usize) -> Pos {
    let lines: Vec<&str> = source.lines().collect();
    let Some(first) = lines.get(start.line.saturating_sub(1) as usize) else {
        return start;
    };
    let col0 = start.col.saturating_sub(1) as usize;
    let head = first.get(col0..).unwrap_or("");
    let block = head.starts_with('>') || head.starts_with('|');
    let quoted = head.starts_with('"') || head.starts_with('\'');
    // (line index, column of the first text byte, text length)
    let mut segs: Vec<(usize, usize, usize)> = Vec::new();
    let first_line = start.line.saturating_sub(1) as usize;
    if !block {
        let c = col0 + usize::from(quoted);
        segs.push((first_line, c, first.len().saturating_sub(c)));
    }
    // The offset lies inside the scalar, so the walk ends before lines after it matter.
    for (i, l) in lines.iter().enumerate().skip(first_line + 1) {
        let indent = l.len() - l.trim_start().len();
        segs.push((i, indent, l.trim().len()));
    }
    let mut acc = 0usize;
    for (line, col, len) in segs {
        if offset <= acc + len {
            return Pos {
                line: u32::try_from(line + 1).unwrap_or(u32::MAX),
                col: u32::try_from(col + offset - acc + 1).unwrap_or(u32::MAX),
            };
        }
        acc += len + 1;
    }
    start
}

fn op_from_str(s: &str) -> Option<Op> {
    Some(match s.trim() {
        "=" | "==" => Op::Eq,
        "!=" => Op::Ne,
        "<" => Op::Lt,
        "<=" => Op::Le,
        ">" => Op::Gt,
        ">=" => Op::Ge,
        "contains" => Op::Contains,
        "icontains" => Op::IContains,
        "bcontains" => Op::BContains,
        "startswith" => Op::StartsWith,
        "bstartswith" => Op::BStartsWith,
        "endswith" => Op::EndsWith,
        "glob" => Op::Glob,
        "iglob" => Op::IGlob,
        "regex" => Op::Regex,
        "in" => Op::In,
        "intersects" => Op::Intersects,
        "pmatch" => Op::Pmatch,
        _ => return None,
    })
}

fn split_bracket(name: &str) -> (String, Option<String>) {
    match name.find('[') {
        Some(i) if name.ends_with(']') => (name[..i].to_owned(), Some(name[i + 1..name.len() - 1].to_owned())),
        _ => (name.to_owned(), None),
    }
}

impl<'a> Compiler<'a> {
    fn new(set: &'a RuleSet) -> Self {
        let mut c = Compiler {
            set,
            lists: HashMap::new(),
            macros: HashMap::new(),
            parsed: Vec::new(),
            slots: HashMap::new(),
            used_macros: HashSet::new(),
            used_lists: HashSet::new(),
            diags: Vec::new(),
            rule_name: String::new(),
            rule_source: String::new(),
            nesting: 0,
            expanded: 0,
            unavailable: Vec::new(),
            in_output: false,
        };
        // Lists: an item naming an earlier list is replaced by that list's items.
        for l in &set.lists {
            let mut items = Vec::new();
            for it in &l.items {
                let more = c.lists.get(it.as_str()).map_or(1, Vec::len);
                if items.len() + more > MAX_LIST_ITEMS {
                    c.diag(
                        Severity::Error,
                        l.loc.clone(),
                        Some(format!("list '{}'", l.name)),
                        format!("holds more than {MAX_LIST_ITEMS} items once the lists it names are expanded"),
                    );
                    items.clear();
                    break;
                }
                match c.lists.get(it.as_str()) {
                    Some(sub) => {
                        items.extend(sub.iter().cloned());
                        c.used_lists.insert(it.clone());
                    }
                    None => items.push(it.clone()),
                }
            }
            c.lists.insert(l.name.as_str(), items);
        }
        for (i, m) in set.macros.iter().enumerate() {
            c.macros.insert(m.name.as_str(), i);
            let parsed = match parser::parse_condition(&m.condition.text) {
                Ok(e) => Ok(e),
                Err(e) => {
                    let loc = c.cond_loc(&m.condition, e.offset as usize);
                    c.diag(
                        Severity::Error,
                        loc,
                        Some(format!("macro '{}'", m.name)),
                        format!("syntax error: {}", e.message),
                    );
                    Err(())
                }
            };
            c.parsed.push(parsed);
        }
        c
    }

    fn diag(&mut self, severity: Severity, loc: Loc, item: Option<String>, message: String) {
        self.diags.push(Diagnostic { severity, loc, item, message });
    }

    fn cond_loc(&self, cond: &CondText, offset: usize) -> Loc {
        let part = cond.parts.iter().rev().find(|p| p.offset <= offset).or_else(|| cond.parts.first());
        let Some(part) = part else {
            return Loc { file: Arc::from(""), pos: Pos::default() };
        };
        let pos = match self.set.sources.get(&part.loc.file) {
            Some(src) => locate(src, part.loc.pos, offset - part.offset),
            None => part.loc.pos,
        };
        Loc { file: part.loc.file.clone(), pos }
    }

    fn at(&self, origin: Origin<'_>, span: Span) -> Loc {
        match origin {
            Origin::Cond(c) => self.cond_loc(c, span.start as usize),
            Origin::Fixed(l) => l.clone(),
        }
    }

    fn err(&self, origin: Origin<'_>, span: Span, msg: impl Into<String>) -> CErr {
        CErr { loc: self.at(origin, span), msg: msg.into(), unknown_field: false, reported: false }
    }

    fn slot(&mut self, id: Field, arg: Option<FieldArg>) -> Operand {
        let n = self.slots.len();
        let slot = *self.slots.entry((id, arg.clone())).or_insert(n);
        Operand::Field { slot, id, arg }
    }

    /// Resolves an operand; returns it with its type and whether it yields all ancestors.
    fn operand(&mut self, op: &AstOperand, origin: Origin<'_>) -> Result<(Operand, FieldType, bool), CErr> {
        match op {
            AstOperand::Field { name, arg, span } => match fields::resolve(name, arg.as_deref()) {
                Ok(r) => {
                    if !r.id.info().scope.serves(&self.rule_source) {
                        return Err(self.err(
                            origin,
                            *span,
                            format!("field '{name}' is not a field of {} events", self.rule_source),
                        ));
                    }
                    if let Availability::Unavailable(why) = r.id.info().availability {
                        let loc = self.at(origin, *span);
                        self.unavailable.push((r.id, why, loc, self.in_output));
                    }
                    let ty = fields::effective_type(&r);
                    let any = fields::is_multi(&r);
                    Ok((self.slot(r.id, r.arg), ty, any))
                }
                Err(msg) => {
                    let mut e = self.err(origin, *span, msg);
                    e.unknown_field = true;
                    Err(e)
                }
            },
            AstOperand::Transform { tr, inner, .. } => {
                let (o, ty, any) = self.operand(inner, origin)?;
                let out = if *tr == Transformer::Len { FieldType::UInt } else { FieldType::Str };
                let _ = ty;
                Ok((Operand::Transform(*tr, Box::new(o)), out, any))
            }
        }
    }

    fn list_values(&mut self, rhs: &Rhs, origin: Origin<'_>) -> Result<Vec<String>, CErr> {
        match rhs {
            Rhs::List(items, _) => {
                let mut out = Vec::new();
                for (v, _) in items {
                    match self.lists.get(v.as_str()) {
                        Some(sub) => {
                            out.extend(sub.iter().cloned());
                            self.used_lists.insert(v.clone());
                        }
                        None => out.push(v.clone()),
                    }
                }
                Ok(out)
            }
            Rhs::ListRef(name, span) => match self.lists.get(name.as_str()) {
                Some(sub) => {
                    let v = sub.clone();
                    self.used_lists.insert(name.clone());
                    Ok(v)
                }
                None => Err(self.err(origin, *span, format!("undefined list '{name}'"))),
            },
            Rhs::Value(v, _) => Ok(vec![v.clone()]),
            Rhs::None | Rhs::Field(_) => Ok(Vec::new()),
        }
    }

    fn expr(&mut self, e: &Expr, origin: Origin<'_>, visible: Option<usize>) -> Result<Node, CErr> {
        self.expanded += 1;
        let too_big = if self.nesting >= MAX_NESTING {
            Some(format!("condition nests deeper than {MAX_NESTING} levels once macros are expanded"))
        } else if self.expanded > MAX_EXPANDED_NODES {
            Some(format!("condition holds more than {MAX_EXPANDED_NODES} nodes once macros are expanded"))
        } else {
            None
        };
        if let Some(msg) = too_big {
            let span = match e {
                Expr::Check(c) => c.span,
                Expr::Macro { span, .. } => *span,
                _ => Span::default(),
            };
            return Err(self.err(origin, span, msg));
        }
        self.nesting += 1;
        let out = self.expr_inner(e, origin, visible);
        self.nesting -= 1;
        out
    }

    fn expr_inner(&mut self, e: &Expr, origin: Origin<'_>, visible: Option<usize>) -> Result<Node, CErr> {
        match e {
            Expr::And(items) => {
                items.iter().map(|i| self.expr(i, origin, visible)).collect::<Result<_, _>>().map(Node::And)
            }
            Expr::Or(items) => {
                items.iter().map(|i| self.expr(i, origin, visible)).collect::<Result<_, _>>().map(Node::Or)
            }
            Expr::Not(inner) => Ok(Node::Not(Box::new(self.expr(inner, origin, visible)?))),
            Expr::Macro { name, span } => {
                let Some(&idx) = self.macros.get(name.as_str()) else {
                    return Err(self.err(origin, *span, format!("undefined macro '{name}'")));
                };
                if let Some(limit) = visible
                    && idx >= limit
                {
                    let user = &self.set.macros[limit].name;
                    return Err(self.err(origin, *span, format!("macro '{name}' is used by macro '{user}' before it is defined (macros see only earlier macros)")));
                }
                self.used_macros.insert(idx);
                let set = self.set;
                let m = &set.macros[idx];
                match self.parsed.get(idx) {
                    Some(Ok(body)) => {
                        let body = body.clone();
                        self.expr(&body, Origin::Cond(&m.condition), Some(idx))
                    }
                    _ => Err(CErr { loc: m.loc.clone(), msg: String::new(), unknown_field: false, reported: true }),
                }
            }
            Expr::Check(c) => self.check(c, origin),
        }
    }

    fn check(&mut self, c: &Check, origin: Origin<'_>) -> Result<Node, CErr> {
        let (lhs, ty, any) = self.operand(&c.lhs, origin)?;
        let name = c.lhs.to_string();
        // evt.dir: enter events are never delivered, so '<' always and '>' never holds.
        if name == "evt.dir"
            && let Rhs::Value(v, _) = &c.rhs
            && matches!(c.op, Op::Eq | Op::Ne)
        {
            let exit = v == "<";
            self.diag(
                Severity::Warning,
                self.at(origin, c.span),
                Some(format!("rule '{}'", self.rule_name)),
                "evt.dir is deprecated: only exit events are delivered".into(),
            );
            return Ok(Node::Const(exit == (c.op == Op::Eq)));
        }
        if c.op == Op::Exists {
            return Ok(test(lhs, any, TestKind::Exists));
        }
        let span = c.span;
        let op_name = c.op.as_str();
        if let Rhs::Field(other) = &c.rhs {
            let (rop, _, _) = self.operand(other, origin)?;
            let nop = match c.op {
                Op::Eq | Op::In => NumOp::Eq,
                Op::Ne => NumOp::Ne,
                Op::Lt => NumOp::Lt,
                Op::Le => NumOp::Le,
                Op::Gt => NumOp::Gt,
                Op::Ge => NumOp::Ge,
                _ => {
                    return Err(self.err(
                        origin,
                        span,
                        format!("operator '{op_name}' cannot compare with another field"),
                    ));
                }
            };
            return Ok(test(lhs, any, TestKind::Field(nop, rop, ty)));
        }
        let values = self.list_values(&c.rhs, origin)?;
        if !c.op.takes_list() && values.len() > 1 {
            return Err(self.err(origin, c.span, format!("operator '{}' takes one value", c.op.as_str())));
        }
        let single = || values.first().cloned().unwrap_or_default();
        let type_err =
            |s: &Self| s.err(origin, span, format!("operator '{op_name}' cannot be used on '{name}' ({ty})"));
        let kind = match ty {
            FieldType::Str | FieldType::Flags | FieldType::Bytes => match c.op {
                Op::Eq => TestKind::Str(StrTest::Eq(single())),
                Op::Ne => TestKind::Str(StrTest::Ne(single())),
                Op::Contains if ty == FieldType::Flags => TestKind::Flag(single(), false),
                Op::IContains if ty == FieldType::Flags => TestKind::Flag(single(), true),
                Op::Contains => TestKind::Str(StrTest::Contains(single())),
                Op::IContains => TestKind::Str(StrTest::IContains(single().to_ascii_lowercase())),
                Op::StartsWith => TestKind::Str(StrTest::StartsWith(single())),
                Op::EndsWith => TestKind::Str(StrTest::EndsWith(single())),
                Op::Glob => TestKind::Str(StrTest::Glob(single(), false)),
                Op::IGlob => TestKind::Str(StrTest::Glob(single(), true)),
                Op::Regex => {
                    let re = regex::RegexBuilder::new(&format!("^(?:{})$", single()))
                        .size_limit(1 << 22)
                        .dfa_size_limit(1 << 22)
                        .build()
                        .map_err(|e| self.err(origin, span, format!("invalid regex: {e}")))?;
                    TestKind::Str(StrTest::Regex(re))
                }
                Op::In => TestKind::Str(StrTest::In(values.into_iter().collect())),
                Op::Intersects => TestKind::Str(StrTest::Intersects(values.into_iter().collect())),
                Op::Pmatch => {
                    let mut t = PathTrie::default();
                    for v in &values {
                        t.insert(v);
                    }
                    TestKind::Str(StrTest::Pmatch(t))
                }
                Op::BContains | Op::BStartsWith => {
                    let bytes = matchers::decode_hex(&single())
                        .ok_or_else(|| self.err(origin, span, format!("'{}' is not a hex byte string", single())))?;
                    if c.op == Op::BContains { TestKind::BContains(bytes) } else { TestKind::BStartsWith(bytes) }
                }
                Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Exists => return Err(type_err(self)),
            },
            FieldType::Int | FieldType::UInt => {
                let mut nums = Vec::new();
                for v in &values {
                    match eval::parse_number(v) {
                        Some(n) => nums.push(n),
                        None => {
                            return Err(self.err(origin, span, format!("'{v}' is not a number ('{name}' is {ty})")));
                        }
                    }
                }
                let n = nums.first().copied().unwrap_or_default();
                match c.op {
                    Op::Eq => TestKind::Num(NumOp::Eq, n),
                    Op::Ne => TestKind::Num(NumOp::Ne, n),
                    Op::Lt => TestKind::Num(NumOp::Lt, n),
                    Op::Le => TestKind::Num(NumOp::Le, n),
                    Op::Gt => TestKind::Num(NumOp::Gt, n),
                    Op::Ge => TestKind::Num(NumOp::Ge, n),
                    Op::In | Op::Intersects => TestKind::NumIn(nums.into_iter().collect::<Set<i128>>()),
                    _ => return Err(type_err(self)),
                }
            }
            FieldType::Bool => {
                let v = single();
                let b = match v.to_ascii_lowercase().as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => return Err(self.err(origin, span, format!("'{v}' is not true or false"))),
                };
                match c.op {
                    Op::Eq => TestKind::Bool(b),
                    Op::Ne => TestKind::Bool(!b),
                    _ => return Err(type_err(self)),
                }
            }
            FieldType::Ip | FieldType::Net => {
                let mut ips: Set<IpAddr> = Set::default();
                let mut nets = Vec::new();
                for v in &values {
                    if let Ok(ip) = v.parse::<IpAddr>() {
                        ips.insert(ip);
                    } else if let Some(n) = Cidr::parse(v) {
                        nets.push(n);
                    } else {
                        return Err(self.err(origin, span, format!("'{v}' is not an IP address or network")));
                    }
                }
                match c.op {
                    Op::Eq | Op::In | Op::Intersects => TestKind::Ip { ips, nets, negate: false },
                    Op::Ne => TestKind::Ip { ips, nets, negate: true },
                    _ => return Err(type_err(self)),
                }
            }
        };
        Ok(test(lhs, any, kind))
    }

    fn exceptions<'e>(&self, excs: &'e [ExceptionDef]) -> Result<Option<Vec<(Expr, &'e Loc)>>, CErr> {
        let _ = self;
        let mut out = Vec::new();
        for e in excs {
            let fail = |msg: String| CErr {
                loc: e.loc.clone(),
                msg: format!("exception '{}': {msg}", e.name),
                unknown_field: false,
                reported: false,
            };
            let comps: Vec<Op> = if e.comps.is_empty() {
                vec![if e.single { Op::In } else { Op::Eq }; e.fields.len()]
            } else {
                e.comps
                    .iter()
                    .map(|c| op_from_str(c).ok_or_else(|| fail(format!("unknown operator '{c}'"))))
                    .collect::<Result<_, _>>()?
            };
            if comps.len() != e.fields.len() {
                return Err(fail(format!("{} fields but {} comps", e.fields.len(), comps.len())));
            }
            let field_op = |f: &str| {
                let (name, arg) = split_bracket(f);
                AstOperand::Field { name, arg, span: Span::default() }
            };
            let sp = Span::default();
            if e.single {
                if !matches!(comps[0], Op::In | Op::Pmatch | Op::Intersects) {
                    return Err(fail("with a single field, comps must be in, pmatch or intersects".into()));
                }
                let mut items = Vec::new();
                for row in &e.values {
                    for v in row {
                        match v {
                            ExcValue::One(s) => items.push((s.clone(), sp)),
                            ExcValue::List(l) => items.extend(l.iter().map(|s| (s.clone(), sp))),
                        }
                    }
                }
                if !items.is_empty() {
                    out.push((
                        Expr::Check(Check {
                            lhs: field_op(&e.fields[0]),
                            op: comps[0],
                            rhs: Rhs::List(items, sp),
                            span: sp,
                        }),
                        &e.loc,
                    ));
                }
                continue;
            }
            for row in &e.values {
                if row.len() != e.fields.len() {
                    return Err(fail(format!(
                        "a value has {} items but there are {} fields",
                        row.len(),
                        e.fields.len()
                    )));
                }
                let mut checks = Vec::new();
                for ((f, op), v) in e.fields.iter().zip(&comps).zip(row) {
                    let rhs = match v {
                        ExcValue::List(l) => Rhs::List(l.iter().map(|s| (s.clone(), sp)).collect(), sp),
                        ExcValue::One(s) if op.takes_list() => {
                            if self.lists.contains_key(s.as_str()) {
                                Rhs::ListRef(s.clone(), sp)
                            } else {
                                Rhs::List(vec![(s.clone(), sp)], sp)
                            }
                        }
                        ExcValue::One(s) => Rhs::Value(s.clone(), sp),
                    };
                    checks.push(Expr::Check(Check { lhs: field_op(f), op: *op, rhs, span: sp }));
                }
                out.push((Expr::And(checks), &e.loc));
            }
        }
        Ok((!out.is_empty()).then_some(out))
    }

    fn output(&mut self, r: &RuleDef) -> Result<OutputFormat, CErr> {
        self.in_output = true;
        let pieces = self.output_pieces(r);
        self.in_output = false;
        Ok(OutputFormat::new(pieces?))
    }

    fn output_pieces(&mut self, r: &RuleDef) -> Result<Vec<Piece>, CErr> {
        let mut pieces = Vec::new();
        for p in output::split_format(&r.output) {
            match p {
                RawPiece::Lit(s) => pieces.push(Piece::Lit(s)),
                RawPiece::Field { key, operand } => {
                    let (op, _, _) = self.operand(&operand, Origin::Fixed(&r.output_loc)).map_err(|mut e| {
                        e.msg = format!("in output: {}", e.msg);
                        e
                    })?;
                    let first = !pieces.iter().any(|p| matches!(p, Piece::Field { key: k, .. } if **k == *key));
                    pieces.push(Piece::Field { key: key.into(), op, first, shown: true });
                }
            }
        }
        for extra in &r.extra_fields {
            let taken = |key: &str| {
                pieces
                    .iter()
                    .any(|p| matches!(p, Piece::Field { key: k, .. } | Piece::Constant { key: k, .. } if **k == *key))
            };
            match extra {
                ExtraField::Field(name) => {
                    // Read as an output's `%name` is.
                    let parsed = output::split_format(&format!("%{name}")).into_iter().find_map(|p| match p {
                        RawPiece::Field { operand, .. } => Some(operand),
                        RawPiece::Lit(_) => None,
                    });
                    let Some(operand) = parsed else {
                        return Err(CErr {
                            loc: r.output_loc.clone(),
                            msg: format!("in append_output's extra_fields: `{name}` is not a field"),
                            unknown_field: false,
                            reported: false,
                        });
                    };
                    let (op, _, _) = self.operand(&operand, Origin::Fixed(&r.output_loc)).map_err(|mut e| {
                        e.msg = format!("in append_output's extra_fields: {}", e.msg);
                        e
                    })?;
                    let first = !taken(name);
                    pieces.push(Piece::Field { key: name.as_str().into(), op, first, shown: false });
                }
                ExtraField::Constant(key, value) if !taken(key) => {
                    pieces.push(Piece::Constant { key: key.as_str().into(), value: value.as_str().into() });
                }
                ExtraField::Constant(..) => {}
            }
        }
        Ok(pieces)
    }

    /// Warns, once per field, that the rule just compiled names fields the sensor never
    /// supplies.
    fn warn_unavailable(&mut self) {
        let uses = std::mem::take(&mut self.unavailable);
        let mut seen = Vec::new();
        for (field, why, loc, _) in &uses {
            if seen.contains(field) {
                continue;
            }
            seen.push(*field);
            let in_condition = uses.iter().any(|(f, _, _, in_output)| f == field && !in_output);
            let effect =
                if in_condition { "conditions on it are always false" } else { "the output renders <NA> for it" };
            self.diag(
                Severity::Warning,
                loc.clone(),
                Some(format!("rule '{}'", self.rule_name)),
                format!("field '{field}' is not supplied by this sensor ({why}); {effect}"),
            );
        }
    }

    fn rule(&mut self, r: &'a RuleDef) -> Result<CompiledRule, CErr> {
        let e = parser::parse_condition(&r.condition.text).map_err(|e: ParseError| CErr {
            loc: self.cond_loc(&r.condition, e.offset as usize),
            msg: format!("syntax error: {}", e.message),
            unknown_field: false,
            reported: false,
        })?;
        let mut cond = self.expr(&e, Origin::Cond(&r.condition), None)?;
        if let Some(excs) = self.exceptions(&r.exceptions)? {
            let mut alts = Vec::new();
            for (x, loc) in excs {
                alts.push(self.expr(&x, Origin::Fixed(loc), None)?);
            }
            cond = Node::And(vec![cond, Node::Not(Box::new(Node::Or(alts)))]);
        }
        let output = self.output(r)?;
        let cond = optimize(cond);
        let evttypes = evttypes(&cond);
        Ok(CompiledRule {
            name: r.name.clone(),
            desc: r.desc.clone(),
            priority: r.priority,
            source: r.source.clone(),
            tags: r.tags.as_slice().into(),
            cond,
            evttypes,
            output,
        })
    }
}

fn test(lhs: Operand, any: bool, kind: TestKind) -> Node {
    Node::Test(Box::new(Test { lhs, any, kind }))
}

/// Flattens, folds constants, and merges three or more `contains`/`icontains` tests of the
/// same field under one `or` into a single Aho-Corasick search.
pub(crate) fn optimize(n: Node) -> Node {
    match n {
        Node::And(items) => {
            let mut out = Vec::new();
            for i in items {
                match optimize(i) {
                    Node::And(x) => out.extend(x),
                    Node::Const(true) => {}
                    Node::Const(false) => return Node::Const(false),
                    o => out.push(o),
                }
            }
            match out.len() {
                0 => Node::Const(true),
                1 => out.pop().unwrap_or(Node::Const(true)),
                _ => Node::And(out),
            }
        }
        Node::Or(items) => {
            let mut out = Vec::new();
            for i in items {
                match optimize(i) {
                    Node::Or(x) => out.extend(x),
                    Node::Const(false) => {}
                    Node::Const(true) => return Node::Const(true),
                    o => out.push(o),
                }
            }
            let out = merge_contains(out);
            match out.len() {
                0 => Node::Const(false),
                1 => out.into_iter().next().unwrap_or(Node::Const(false)),
                _ => Node::Or(out),
            }
        }
        Node::Not(inner) => match optimize(*inner) {
            Node::Const(b) => Node::Const(!b),
            Node::Not(x) => *x,
            o => Node::Not(Box::new(o)),
        },
        other => other,
    }
}

/// Which tests of one field under an `or` can be answered by one search.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Multi {
    Contains,
    IContains,
    StartsWith,
    Eq,
}

fn multi_of(k: &TestKind) -> Option<(Multi, &String)> {
    match k {
        TestKind::Str(StrTest::Contains(s)) => Some((Multi::Contains, s)),
        TestKind::Str(StrTest::IContains(s)) => Some((Multi::IContains, s)),
        TestKind::Str(StrTest::StartsWith(s)) => Some((Multi::StartsWith, s)),
        TestKind::Str(StrTest::Eq(s)) => Some((Multi::Eq, s)),
        _ => None,
    }
}

/// Replaces three or more `contains`/`icontains`/`startswith`/`=` tests of the same operand
/// under one `or` with one Aho-Corasick search (anchored for `startswith`) or one hash set.
fn merge_contains(items: Vec<Node>) -> Vec<Node> {
    type Key = (Operand, bool, Multi);
    let key_of = |n: &Node| -> Option<(Key, String)> {
        let Node::Test(t) = n else { return None };
        let (m, s) = multi_of(&t.kind)?;
        Some(((t.lhs.clone(), t.any, m), s.clone()))
    };
    let mut groups: HashMap<Key, Vec<String>> = HashMap::new();
    for n in &items {
        if let Some((k, s)) = key_of(n) {
            groups.entry(k).or_default().push(s);
        }
    }
    groups.retain(|_, v| v.len() >= 3);
    if groups.is_empty() {
        return items;
    }
    let mut out: Vec<Node> =
        items.into_iter().filter(|n| key_of(n).is_none_or(|(k, _)| !groups.contains_key(&k))).collect();
    let mut keys: Vec<&Key> = groups.keys().collect();
    keys.sort_by_key(|k| format!("{:?}", k.0));
    for key in keys {
        let (lhs, any, m) = key.clone();
        let needles = &groups[key];
        let merged = match m {
            Multi::Eq => Some(StrTest::In(needles.iter().cloned().collect())),
            Multi::Contains | Multi::IContains => AhoCorasick::builder()
                .ascii_case_insensitive(m == Multi::IContains)
                .build(needles)
                .ok()
                .map(StrTest::AnyContains),
            Multi::StartsWith => AhoCorasick::builder()
                .start_kind(StartKind::Anchored)
                .build(needles)
                .ok()
                .map(|ac| StrTest::AnyPrefix(ac, needles.clone())),
        };
        match merged {
            Some(st) => out.push(test(lhs, any, TestKind::Str(st))),
            None => {
                for s in needles {
                    let st = match m {
                        Multi::Contains => StrTest::Contains(s.clone()),
                        Multi::IContains => StrTest::IContains(s.clone()),
                        Multi::StartsWith => StrTest::StartsWith(s.clone()),
                        Multi::Eq => StrTest::Eq(s.clone()),
                    };
                    out.push(test(lhs.clone(), any, TestKind::Str(st)));
                }
            }
        }
    }
    out
}

/// The event types a condition can match (`None` = any), as Falco derives them: `evt.type =`
/// and `in` give sets, `and` intersects, `or` unites, anything else (including `not`) is any.
fn evttypes(n: &Node) -> Option<BTreeSet<String>> {
    match n {
        Node::Const(true) | Node::Not(_) => None,
        Node::Const(false) => Some(BTreeSet::new()),
        Node::Test(t) => match (&t.lhs, &t.kind) {
            (Operand::Field { id, arg: None, .. }, TestKind::Str(StrTest::Eq(v))) if *id == Field::EvtType => {
                Some(BTreeSet::from([v.clone()]))
            }
            (Operand::Field { id, arg: None, .. }, TestKind::Str(StrTest::In(set))) if *id == Field::EvtType => {
                Some(set.iter().cloned().collect())
            }
            _ => None,
        },
        Node::And(items) => {
            let mut acc: Option<BTreeSet<String>> = None;
            for i in items {
                if let Some(s) = evttypes(i) {
                    acc = Some(match acc {
                        None => s,
                        Some(a) => a.intersection(&s).cloned().collect(),
                    });
                }
            }
            acc
        }
        Node::Or(items) => {
            let mut acc = BTreeSet::new();
            for i in items {
                acc.extend(evttypes(i)?);
            }
            Some(acc)
        }
    }
}

/// Compiles every enabled rule; reports errors, unused macros and lists, and rules that
/// match every event type.
pub(crate) fn compile(set: &RuleSet) -> Compiled {
    let mut c = Compiler::new(set);
    let mut rules = Vec::new();
    for r in &set.rules {
        if !r.enabled {
            continue;
        }
        let item = Some(format!("rule '{}'", r.name));
        if !fields::SOURCES.contains(&r.source.as_str()) {
            c.diag(
                Severity::Error,
                r.loc.clone(),
                item,
                format!(
                    "source '{}' is not an event source of this sensor ({}); rule not loaded",
                    r.source,
                    fields::SOURCES.join(", ")
                ),
            );
            continue;
        }
        c.rule_name = r.name.clone();
        c.rule_source = r.source.clone();
        c.unavailable.clear();
        c.expanded = 0;
        match c.rule(r) {
            Ok(cr) => {
                c.warn_unavailable();
                // Only syscall events have types; other sources' rules see all their events.
                if cr.evttypes.is_none() && r.warn_evttypes && r.source == fields::SYSCALL_SOURCE {
                    c.diag(
                        Severity::Warning,
                        r.condition.parts[0].loc.clone(),
                        item,
                        "rule matches every event type (no evt.type restriction); this is costly".into(),
                    );
                }
                let uncaptured: Vec<&str> = cr
                    .evttypes
                    .iter()
                    .flatten()
                    .map(String::as_str)
                    .filter(|t| sensor_abi::syscalls::by_name(t).is_none() && !SCHED_EVENTS.contains(t))
                    .collect();
                if !uncaptured.is_empty() {
                    c.diag(
                        Severity::Warning,
                        r.condition.parts[0].loc.clone(),
                        Some(format!("rule '{}'", r.name)),
                        format!(
                            "event type(s) {} are not captured by the sensor (misspelt?); the rule never sees them",
                            uncaptured.join(", ")
                        ),
                    );
                }
                rules.push(cr);
            }
            Err(e) if e.reported => {}
            Err(e) if e.unknown_field && r.skip_if_unknown_filter => {
                c.diag(Severity::Warning, e.loc, item, format!("rule skipped (skip-if-unknown-filter): {}", e.msg));
            }
            Err(e) => c.diag(Severity::Error, e.loc, item, e.msg),
        }
    }
    for (i, m) in set.macros.iter().enumerate() {
        if !c.used_macros.contains(&i) {
            c.diag(Severity::Warning, m.loc.clone(), Some(format!("macro '{}'", m.name)), "macro is not used".into());
        }
    }
    for l in &set.lists {
        if !c.used_lists.contains(&l.name) {
            c.diag(Severity::Warning, l.loc.clone(), Some(format!("list '{}'", l.name)), "list is not used".into());
        }
    }
    Compiled { rules, slots: c.slots.len(), diagnostics: c.diags }
}

fn expr_span(e: &Expr) -> Option<Span> {
    match e {
        Expr::Check(c) => Some(c.span),
        Expr::Macro { span, .. } => Some(*span),
        Expr::Not(inner) => expr_span(inner),
        Expr::And(items) | Expr::Or(items) => {
            let first = expr_span(items.first()?)?;
            let last = expr_span(items.last()?)?;
            Some(Span { start: first.start, end: last.end })
        }
    }
}

fn snippet(text: &str, e: &Expr) -> String {
    let body = expr_span(e)
        .and_then(|s| text.get(s.start as usize..s.end as usize))
        .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "(expression)".into());
    let body = if let Expr::Not(_) = e { format!("not {body}") } else { body };
    if body.chars().count() > 100 { format!("{}…", body.chars().take(100).collect::<String>()) } else { body }
}

impl Compiler<'_> {
    /// Evaluates `e` on its own; `None` when it does not compile.
    fn eval_alone(
        &mut self,
        e: &Expr,
        origin: Origin<'_>,
        visible: Option<usize>,
        ev: &dyn FieldSource,
    ) -> Option<bool> {
        let node = optimize(self.expr(e, origin, visible).ok()?);
        let mut scratch = Scratch::default();
        Some(eval::Program::new(node).eval(&mut Ctx::new(ev, &mut scratch, self.slots.len())))
    }

    /// Lists the false conjuncts of `e`, descending into macros.
    fn why(&mut self, e: &Expr, sc: &Scope<'_>, ev: &dyn FieldSource, depth: usize, out: &mut Vec<String>) {
        let items: Vec<&Expr> = match e {
            Expr::And(items) => items.iter().collect(),
            other => vec![other],
        };
        for item in items {
            if self.eval_alone(item, sc.origin, sc.visible, ev) != Some(false) {
                continue;
            }
            out.push(format!("{}✗ {}", "  ".repeat(depth), snippet(sc.text, item)));
            if depth >= 6 {
                continue;
            }
            let set = self.set;
            match item {
                Expr::Macro { name, .. } => {
                    if let Some(&idx) = self.macros.get(name.as_str())
                        && let Some(Ok(body)) = self.parsed.get(idx).cloned()
                    {
                        let m = &set.macros[idx];
                        let inner =
                            Scope { text: &m.condition.text, origin: Origin::Cond(&m.condition), visible: Some(idx) };
                        self.why(&body, &inner, ev, depth + 1, out);
                    }
                }
                Expr::Or(alts) if alts.len() <= 4 => {
                    for a in alts {
                        self.why(a, sc, ev, depth + 1, out);
                    }
                }
                _ => {}
            }
        }
    }
}

/// Where an expression being explained comes from.
struct Scope<'s> {
    text: &'s str,
    origin: Origin<'s>,
    visible: Option<usize>,
}

/// Explains why rule `name` does or does not match `ev`: the parts of its condition that
/// are false (descending into macros), or the exception that excludes the event.
pub(crate) fn explain(set: &RuleSet, name: &str, ev: &dyn FieldSource) -> Vec<String> {
    let Some(r) = set.rules.iter().find(|r| r.name == name) else {
        return vec![format!("no rule named '{name}'")];
    };
    let Ok(e) = parser::parse_condition(&r.condition.text) else {
        return vec!["the condition does not parse".into()];
    };
    let mut c = Compiler::new(set);
    c.diags.clear();
    c.rule_source = r.source.clone();
    let mut out = Vec::new();
    if r.source != ev.source() {
        out.push(format!("the rule is for source '{}', the event is from '{}'", r.source, ev.source()));
    }
    let scope = Scope { text: &r.condition.text, origin: Origin::Cond(&r.condition), visible: None };
    c.why(&e, &scope, ev, 0, &mut out);
    if out.is_empty()
        && let Ok(Some(excs)) = c.exceptions(&r.exceptions)
    {
        for (x, loc) in excs {
            if c.eval_alone(&x, Origin::Fixed(loc), None, ev) == Some(true) {
                let which = r.exceptions.iter().find(|e| &e.loc == loc).map_or("?", |e| e.name.as_str());
                out.push(format!("the condition holds but exception '{which}' excludes the event"));
            }
        }
    }
    if out.is_empty() {
        out.push("the condition holds for this event".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_in_scalars() {
        let src = "- rule: a\n  condition: proc.name = x and bad\n  other: >\n    evt.type = open\n    and nope\n";
        assert_eq!(locate(src, Pos { line: 2, col: 14 }, 18), Pos { line: 2, col: 32 });
        assert_eq!(locate(src, Pos { line: 3, col: 10 }, 20), Pos { line: 5, col: 9 });
        let q = "x: \"abc def\"\n";
        assert_eq!(locate(q, Pos { line: 1, col: 4 }, 4), Pos { line: 1, col: 9 });
    }
}
