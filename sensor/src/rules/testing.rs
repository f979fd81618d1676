//! Rule unit tests: YAML files that name events and the rules that must and must not fire.
//!
//! ```yaml
//! rules: [../rules/my_rules.yaml]   # rules files or directories, relative to this file
//! defaults:                         # fields every event of this file starts from
//!   container.id: host
//! tests:
//!   - name: cat reads the shadow file
//!     event: {evt.type: openat, proc.name: cat, fd.name: /etc/shadow}
//!     fires: [Read sensitive file untrusted]
//!   - name: the same event as a JSON line from a replay file
//!     event: '{"evt.type": "openat", "proc.name": "cat", "fd.name": "/etc/shadow"}'
//!     fires: [Read sensitive file untrusted]
//!   - name: sshd reading it is fine
//!     events:                       # several events: expectations cover all of them
//!       - {evt.type: openat, proc.name: sshd, fd.name: /etc/shadow}
//!     silent: all                   # no rule may fire (or a list of rule names)
//!     only: false                   # true: no rule outside `fires` may fire
//!   - name: a Kubernetes audit event (rules of source k8s_audit)
//!     audit: {kind: Event, apiVersion: audit.k8s.io/v1, auditID: 1d2e, stage: ResponseComplete,
//!             verb: create, user: {username: alice}, objectRef: {resource: pods, namespace: default},
//!             responseStatus: {code: 201}, stageTimestamp: "2026-12-07T10:00:00Z"}
//!     fires: [Create Privileged Pod]
//! ```
//!
//! An `audit:` (or `audits:`, a list) case gives a whole `audit.k8s.io/v1` `Event`, as
//! kube-apiserver sends it (YAML, or a string holding its JSON); rules read its `ka.*` and
//! `jevt.*` fields from it as they do from live audit events. `defaults` apply to field maps
//! only.
//!
//! Events are field maps (compact YAML or JSON), typed by the field registry, so a typo in a
//! field name or a value of the wrong type is reported instead of silently never matching.
//! Each map (the file's `defaults`, then the event's own fields) is built into the event the
//! sensor would see, with the state around it, by `state::FieldMapEvent`, and rules read it
//! through the code live events go through. How fields map:
//!
//! - `evt.type` picks the syscall (or `procexit`, `proc_fork`); `evt.res`
//!   (`SUCCESS`, `ENOENT`), `evt.rawres` or `evt.failed` its return value; an open, socket or
//!   accept that succeeds returns `fd.num` (3 by default); `evt.rawtime` the time;
//! - `evt.is_open_read`/`write`/`create`/`exec` and `evt.arg.<name>` (as rendered:
//!   `O_WRONLY|O_TRUNC`, `SIGKILL`, `PTRACE_ATTACH`, `unix:/run/x.sock`) give the arguments;
//!   `fs.path.*` and `fd.name`/`fd.nameraw` the paths (a relative raw path gets a working
//!   directory that leads to the absolute one);
//! - `proc.*`, `thread.*`, `user.*`, `group.*` describe the process before the event (for an
//!   exec, also what the exec carries); `user.prev_uid` is the uid before a set*uid call,
//!   `thread.cap_added` what a capset adds; `proc.pname`, `proc.aname[n]`, `proc.aname: [parent,
//!   grandparent, ...]` and the other `proc.p*`/`proc.a*` fields make the ancestors;
//! - `fd.*` describe the fd the event uses (a call that makes one makes it from its
//!   arguments): a file, a socket (`fd.sip`, `fd.sport`, `fd.cip`..., or `fd.name` as
//!   `cip:cport->sip:sport`) or another kind (`fd.type: pipe`); `proc.stdin.type` and the like
//!   describe fds 0 to 2; `fd.*ip.name` the DNS names of the socket's addresses;
//! - `container.*` and `k8s.*` the container's metadata (`container.id` is `host` or the first
//!   12 hex digits of its id); `sensor.pid` and `evt.hostname` the sensor.
//!
//! The event is then applied to that state as a live one is, and every field the map gives is
//! read back: a field the event renders otherwise fails the case with `file:line: test 'name':
//! field X: the event renders 'A' but the test says 'B'` and, for a field that follows from
//! others, which ones to set. A connect that failed knows no peer (`fd.sip` is `<NA>`; its
//! address is `evt.arg.addr`), as in Falco. All matching rules are collected
//! (`rule_matching: all`).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use super::compile;
use super::engine::{Engine, EngineOptions, RuleMatching};
use super::eval::Scratch;
use super::loader::{Diagnostic, Loc, RuleSet, Severity};
use super::prefilter::Prefilter;
use super::yaml::{self, Node, NodeKind, Pos};
use crate::k8s_audit::{AuditEvent, ForbiddenBursts};
use crate::state::FieldMapEvent;

/// An event of a case, built.
enum Built {
    Fields(Box<FieldMapEvent>),
    Audit(Box<AuditEvent>),
}

/// The result of one test case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestOutcome {
    /// Where the case is written.
    pub loc: Loc,
    /// The case's name.
    pub name: String,
    /// Explanation lines when the case failed; empty when it passed.
    pub failures: Vec<String>,
}

impl TestOutcome {
    /// True when every expectation held.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Results of a test run.
#[derive(Clone, Debug, Default)]
pub struct TestReport {
    /// One entry per test case, in file order.
    pub outcomes: Vec<TestOutcome>,
    /// Problems that kept files or their rules from loading (each counts as a failure).
    pub errors: Vec<Diagnostic>,
}

impl TestReport {
    /// Number of passing cases.
    pub fn passed(&self) -> usize {
        self.outcomes.iter().filter(|o| o.passed()).count()
    }

    /// Number of failing cases plus load errors.
    pub fn failed(&self) -> usize {
        self.outcomes.len() - self.passed() + self.errors.len()
    }

    /// True when everything passed and loaded.
    pub fn is_success(&self) -> bool {
        self.failed() == 0 && !self.outcomes.is_empty()
    }

    /// Human-readable report: failures with their diffs, then a summary line
    /// (`N passed, N failed`). With `verbose`, passing cases are listed too.
    pub fn render(&self, verbose: bool) -> String {
        let mut out = String::new();
        for e in &self.errors {
            out.push_str(&format!("ERROR {e}\n"));
        }
        for o in &self.outcomes {
            if o.passed() {
                if verbose {
                    out.push_str(&format!("ok    {}  {}\n", o.loc, o.name));
                }
            } else {
                out.push_str(&format!("FAIL  {}  {}\n", o.loc, o.name));
                for l in &o.failures {
                    out.push_str(&format!("      {l}\n"));
                }
            }
        }
        out.push_str(&format!("{} passed, {} failed\n", self.passed(), self.failed()));
        out
    }
}

enum Silent {
    None,
    All,
    Rules(Vec<String>),
}

/// An event of a case: a field map of a syscall event, or a Kubernetes audit event.
enum CaseEvent {
    Fields(serde_json::Value),
    Audit(serde_json::Value),
}

struct Case {
    loc: Loc,
    name: String,
    events: Vec<(Pos, CaseEvent)>,
    fires: Vec<String>,
    silent: Silent,
    only: bool,
}

/// Runs every test file under `paths` (files, or directories searched recursively for
/// `.yaml`/`.yml`). `rules` are loaded before each file's own `rules:`.
pub fn run_rule_tests<P: AsRef<Path>>(paths: &[P], rules: &[PathBuf]) -> TestReport {
    let mut files = Vec::new();
    for p in paths {
        collect(p.as_ref(), &mut files);
    }
    let mut report = TestReport::default();
    if files.is_empty() {
        report.errors.push(diag(&Loc { file: "".into(), pos: Pos::default() }, "no test files found".into()));
    }
    let mut engines: Engines = HashMap::new();
    for f in files {
        run_file(&f, rules, &mut engines, &mut report);
    }
    report
}

/// Loaded rules per list of rules paths, shared by the test files that name the same rules.
type Engines = HashMap<Vec<PathBuf>, (RuleSet, Option<Engine>)>;

fn collect(p: &Path, out: &mut Vec<PathBuf>) {
    if p.is_dir() {
        let mut entries: Vec<PathBuf> =
            std::fs::read_dir(p).into_iter().flatten().filter_map(Result::ok).map(|e| e.path()).collect();
        entries.sort();
        for e in entries {
            if e.is_dir() || e.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                collect(&e, out);
            }
        }
    } else {
        out.push(p.to_owned());
    }
}

fn diag(loc: &Loc, message: String) -> Diagnostic {
    Diagnostic { severity: Severity::Error, loc: loc.clone(), item: None, message }
}

fn strings(n: &Node) -> Option<Vec<String>> {
    match &n.kind {
        NodeKind::Seq(items) => items.iter().map(Node::as_text).collect(),
        NodeKind::Null => Some(Vec::new()),
        _ => n.as_text().map(|s| vec![s]),
    }
}

fn run_file(path: &Path, cli_rules: &[PathBuf], engines: &mut Engines, report: &mut TestReport) {
    let file: std::sync::Arc<str> = path.display().to_string().into();
    let floc = |pos: Pos| Loc { file: file.clone(), pos };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            return report.errors.push(diag(&floc(Pos::default()), format!("cannot read test file: {e}")));
        }
    };
    let root = match yaml::parse(&text) {
        Ok(r) => r,
        Err(e) => {
            return report.errors.push(diag(&floc(e.pos), format!("invalid YAML: {}", e.message)));
        }
    };
    if !matches!(root.kind, NodeKind::Map(_)) {
        return report.errors.push(diag(
            &floc(root.pos),
            "a test file is a mapping with 'tests' (and optionally 'rules', 'defaults')".into(),
        ));
    }
    if let NodeKind::Map(entries) = &root.kind {
        for (k, _) in entries {
            let key = k.as_text().unwrap_or_default();
            if !["rules", "defaults", "tests"].contains(&key.as_str()) {
                report
                    .errors
                    .push(diag(&floc(k.pos), format!("unknown key '{key}' (expected rules, defaults, tests)")));
            }
        }
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let mut rule_paths: Vec<PathBuf> = cli_rules.to_vec();
    if let Some(r) = root.get("rules") {
        match strings(r) {
            Some(list) => rule_paths.extend(list.into_iter().map(|p| base.join(p))),
            None => {
                return report.errors.push(diag(&floc(r.pos), "'rules' must be a list of paths".into()));
            }
        }
    }
    if rule_paths.is_empty() {
        return report
            .errors
            .push(diag(&floc(root.pos), "no rules: add 'rules:' to the file or pass rules files".into()));
    }
    let defaults = match root.get("defaults") {
        None => serde_json::Map::new(),
        Some(d) => match d.to_json() {
            serde_json::Value::Object(m) => m,
            serde_json::Value::Null => serde_json::Map::new(),
            _ => {
                return report
                    .errors
                    .push(diag(&floc(d.pos), "'defaults' must be a mapping of fields to values".into()));
            }
        },
    };
    let cases = match parse_cases(&root, &floc) {
        Ok(c) => c,
        Err(d) => return report.errors.push(d),
    };
    let (set, engine) = engines.entry(rule_paths.clone()).or_insert_with(|| {
        let mut set = RuleSet::default();
        set.load_paths(&rule_paths);
        let opts = EngineOptions { rule_matching: RuleMatching::All, ..EngineOptions::default() };
        let (engine, diags) = Engine::build(&set, opts);
        report.errors.extend(diags.into_iter().filter(|d| d.severity == Severity::Error));
        (set, engine)
    });
    let Some(engine) = engine.as_ref() else {
        return report.errors.push(diag(&floc(root.pos), "rules did not load; see the errors above".into()));
    };
    let known: BTreeSet<&str> = engine.rule_names().collect();
    let prefilter = engine.prefilter();
    let mut scratch = Scratch::default();
    for case in cases {
        report.outcomes.push(run_case(set, (engine, &prefilter), &known, &defaults, case, &mut scratch));
    }
}

/// An event written as a YAML mapping, or as a string holding a JSON object (a line
/// copied from a replay file).
fn event_json(n: &Node) -> serde_json::Value {
    match &n.kind {
        NodeKind::Str(s) => serde_json::from_str(s).unwrap_or_else(|_| serde_json::Value::String(s.clone())),
        _ => n.to_json(),
    }
}

/// The keys of a test case.
const CASE_KEYS: [&str; 8] = ["name", "event", "events", "audit", "audits", "fires", "silent", "only"];

fn parse_cases(root: &Node, floc: &dyn Fn(Pos) -> Loc) -> Result<Vec<Case>, Diagnostic> {
    let Some(tests) = root.get("tests") else {
        return Err(diag(&floc(root.pos), "missing 'tests'".into()));
    };
    let NodeKind::Seq(items) = &tests.kind else {
        return Err(diag(&floc(tests.pos), "'tests' must be a sequence".into()));
    };
    let mut out = Vec::new();
    for (i, t) in items.iter().enumerate() {
        let loc = floc(t.pos);
        if let NodeKind::Map(entries) = &t.kind {
            for (k, _) in entries {
                let key = k.as_text().unwrap_or_default();
                if !CASE_KEYS.contains(&key.as_str()) {
                    return Err(diag(&floc(k.pos), format!("unknown key '{key}' (expected {})", CASE_KEYS.join(", "))));
                }
            }
        } else {
            return Err(diag(&loc, "a test case must be a mapping".into()));
        }
        let name = t.get("name").and_then(Node::as_text).unwrap_or_else(|| format!("test #{}", i + 1));
        let mut events = Vec::new();
        for (one, many, make) in [
            ("event", "events", CaseEvent::Fields as fn(serde_json::Value) -> CaseEvent),
            ("audit", "audits", CaseEvent::Audit),
        ] {
            if let Some(e) = t.get(one) {
                events.push((e.pos, make(event_json(e))));
            }
            if let Some(es) = t.get(many) {
                let NodeKind::Seq(list) = &es.kind else {
                    return Err(diag(&floc(es.pos), format!("'{many}' must be a sequence")));
                };
                events.extend(list.iter().map(|e| (e.pos, make(event_json(e)))));
            }
        }
        if events.is_empty() {
            return Err(diag(&loc, format!("test '{name}' has no 'event', 'events', 'audit' or 'audits'")));
        }
        let fires = match t.get("fires") {
            None => Vec::new(),
            Some(f) => strings(f).ok_or_else(|| diag(&floc(f.pos), "'fires' must be a list of rule names".into()))?,
        };
        let silent = match t.get("silent") {
            None => Silent::None,
            Some(s) if s.as_text().as_deref() == Some("all") => Silent::All,
            Some(s) => Silent::Rules(
                strings(s)
                    .ok_or_else(|| diag(&floc(s.pos), "'silent' must be 'all' or a list of rule names".into()))?,
            ),
        };
        let only = matches!(t.get("only").map(|o| &o.kind), Some(NodeKind::Bool(true)));
        if fires.is_empty() && matches!(silent, Silent::None) && !only {
            return Err(diag(&loc, format!("test '{name}' expects nothing: add 'fires', 'silent' or 'only'")));
        }
        out.push(Case { loc, name, events, fires, silent, only });
    }
    Ok(out)
}

/// Runs one case. Every event a rule fires on must also be one the in-kernel prefilter of
/// these rules sends (its soundness, checked on every case of every rule file).
fn run_case(
    set: &RuleSet,
    (engine, prefilter): (&Engine, &Prefilter),
    known: &BTreeSet<&str>,
    defaults: &serde_json::Map<String, serde_json::Value>,
    case: Case,
    scratch: &mut Scratch,
) -> TestOutcome {
    let mut failures = Vec::new();
    let mut fired: BTreeSet<String> = BTreeSet::new();
    for r in case.fires.iter().chain(match &case.silent {
        Silent::Rules(r) => r.iter(),
        _ => [].iter(),
    }) {
        if !known.contains(r.as_str()) {
            failures.push(format!("unknown rule '{r}' (not loaded, disabled or misspelt)"));
        }
    }
    let mut shown = Vec::new();
    let mut built: Vec<(u32, Built)> = Vec::new();
    // The events of a case are one stream: `ka.user.forbidden_recent` counts across them.
    let mut bursts = ForbiddenBursts::default();
    for (pos, ev) in case.events {
        let at = format!("{}:{}: test '{}'", case.loc.file, pos.line, case.name);
        match ev {
            CaseEvent::Fields(ev) => {
                let mut obj = defaults.clone();
                if let serde_json::Value::Object(m) = &ev {
                    obj.extend(m.clone());
                }
                match FieldMapEvent::from_json(&serde_json::Value::Object(obj)) {
                    Ok(e) => {
                        let mismatches = e.mismatches();
                        if !mismatches.is_empty() {
                            failures.extend(mismatches.into_iter().map(|m| format!("{at}: {m}")));
                            continue;
                        }
                        let view = e.view();
                        let alerts = engine.process(&view, scratch);
                        if !alerts.is_empty() && !prefilter.sends(e.event(), view.fd_file()) {
                            let rules: Vec<&str> = alerts.iter().map(|a| a.rule.as_str()).collect();
                            failures.push(format!(
                                "{at}: the in-kernel prefilter of these rules would keep this event back, yet {} \
                                 fire on it (a prefilter bug: please report it)",
                                rules.join(", ")
                            ));
                        }
                        fired.extend(alerts.into_iter().map(|a| a.rule));
                        shown.push(format!("event at line {}: {}", pos.line, ev));
                        built.push((pos.line, Built::Fields(Box::new(e))));
                    }
                    Err(msg) => failures.push(format!("{at}: {msg}")),
                }
            }
            CaseEvent::Audit(ev) => match AuditEvent::from_json(ev.clone()) {
                Ok(mut e) => {
                    bursts.observe(&mut e);
                    fired.extend(engine.process(&e, scratch).into_iter().map(|a| a.rule));
                    shown.push(format!("audit event at line {}: {}", pos.line, ev));
                    built.push((pos.line, Built::Audit(Box::new(e))));
                }
                Err(msg) => failures.push(format!("{at}: {msg}")),
            },
        }
    }
    if !failures.is_empty() {
        return TestOutcome { loc: case.loc, name: case.name, failures };
    }
    let mut diff = Vec::new();
    let mut why = Vec::new();
    for r in &case.fires {
        if !fired.contains(r) {
            diff.push(format!("- {r}   (must fire, did not)"));
            for (line, e) in &built {
                why.push(format!("why '{r}' did not fire on the event at line {line}:"));
                let lines = match e {
                    Built::Fields(e) => compile::explain(set, r, &e.view()),
                    Built::Audit(e) => compile::explain(set, r, &**e),
                };
                why.extend(lines.into_iter().map(|l| format!("  {l}")));
            }
        }
    }
    for r in &fired {
        let forbidden = match &case.silent {
            Silent::All => true,
            Silent::Rules(list) => list.contains(r),
            Silent::None => false,
        } || (case.only && !case.fires.contains(r));
        if forbidden {
            diff.push(format!("+ {r}   (must not fire, fired)"));
        }
    }
    if !diff.is_empty() {
        failures.push("rules (- expected, + unexpected):".into());
        failures.extend(diff.into_iter().map(|d| format!("  {d}")));
        let all: Vec<&str> = fired.iter().map(String::as_str).collect();
        failures.push(format!("fired: {}", if all.is_empty() { "(nothing)".into() } else { all.join(", ") }));
        failures.extend(shown);
        failures.extend(why);
    }
    TestOutcome { loc: case.loc, name: case.name, failures }
}
