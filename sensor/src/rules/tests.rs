//! End-to-end tests of the rule engine: the stable Falco ruleset, operators, precedence,
//! overrides and exceptions, evaluated on events built from field maps (the operators on a
//! plain map of values).

use super::engine::{Engine, EngineOptions};
use super::loader::{RuleSet, Severity};

const FALCO_RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/falco/falco_rules.yaml");

#[test]
fn falco_rules_load_cleanly() {
    let mut set = RuleSet::default();
    set.load_paths(&[FALCO_RULES]);
    assert_eq!((set.rules.len(), set.macros.len(), set.lists.len()), (25, 87, 49));
    let (engine, diags) = Engine::build(&set, EngineOptions::default());
    for d in &diags {
        eprintln!("{d}");
    }
    // No error, and not even a warning: every macro and list is used, every rule names its
    // event types, and the sensor captures all of them.
    assert!(diags.is_empty());
    assert_eq!(engine.expect("engine").rule_count(), 25);
    let report = super::validate(&[FALCO_RULES]);
    assert_eq!(report.to_string(), "25 rules (25 enabled and loaded), 87 macros, 49 lists; 0 errors, 0 warnings");
}

/// Runs the rule unit tests of `dir` (a directory or one file; they must pass), and checks
/// that each rule of `set` has a case that fires it and a near-miss naming it that keeps it
/// silent (`silent: [rule]`, with `only: true` when nothing at all may fire); the rules of
/// `cannot_fire` only the case that keeps them silent.
fn assert_every_rule_has_cases(dir: &str, set: &RuleSet, cannot_fire: &[&str]) {
    let report = super::run_rule_tests(&[dir], &[]);
    let text = report.render(false);
    assert!(report.is_success(), "{text}");
    let mut cases = String::new();
    let path = std::path::Path::new(dir);
    let files: Vec<std::path::PathBuf> = match path.is_dir() {
        true => std::fs::read_dir(path).expect("case directory").map(|e| e.expect("case file").path()).collect(),
        false => vec![path.to_owned()],
    };
    for file in files {
        cases.push_str(&std::fs::read_to_string(file).expect("case file"));
    }
    for r in &set.rules {
        let named = |key: &str| {
            cases.lines().any(|l| {
                l.trim_start()
                    .strip_prefix(key)
                    .is_some_and(|list| list.split([',', '[', ']']).any(|n| n.trim() == r.name))
            })
        };
        if cannot_fire.contains(&r.name.as_str()) {
            assert!(named("silent: ["), "rule '{}' lacks a case keeping it silent", r.name);
            continue;
        }
        assert!(named("fires: [") && named("silent: ["), "rule '{}' lacks a firing case or a near-miss", r.name);
    }
}

#[test]
fn falco_rule_cases() {
    let mut set = RuleSet::default();
    set.load_paths(&[FALCO_RULES]);
    assert_every_rule_has_cases(concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/tests/falco"), &set, &[]);
}

const K8S_AUDIT_RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/falco/k8s_audit_rules.yaml");

/// Rules of Falco's k8s_audit set that its own macros keep from firing, as shipped: a
/// macro that is always true where the rule needs it false, or never true where it needs
/// it true (an operator overrides it to use the rule).
const K8S_AUDIT_SHIPPED_OFF: [&str; 5] = [
    "Create Disallowed Pod",
    "All K8s Audit Events",
    "Full K8s Administrative Access",
    "Untrusted Node Successfully Joined the Cluster",
    "Untrusted Node Unsuccessfully Tried to Join the Cluster",
];

#[test]
fn k8s_audit_rules_load_cleanly_and_each_has_cases() {
    let report = super::validate(&[K8S_AUDIT_RULES]);
    assert_eq!(report.to_string(), "48 rules (48 enabled and loaded), 45 macros, 18 lists; 0 errors, 0 warnings");
    let mut set = RuleSet::default();
    set.load_paths(&[K8S_AUDIT_RULES]);
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/tests/falco/k8s_audit.yaml");
    assert_every_rule_has_cases(dir, &set, &K8S_AUDIT_SHIPPED_OFF);
}

#[test]
fn default_rule_cases() {
    let mut set = RuleSet::default();
    for (name, text) in crate::pipeline::DEFAULT_RULES {
        set.load_str(name, text);
    }
    assert!(set.rules.len() >= 50, "{} built-in rules", set.rules.len());
    assert_every_rule_has_cases(concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/tests/default"), &set, &[]);
    for r in &set.rules {
        // Who did it, where: process, parent, user, command line, container and pod; for an
        // API request, the user, their addresses and the request's audit id.
        let who: &[&str] = match r.source.as_str() {
            "k8s_audit" => &["%ka.user.name", "%ka.sourceips", "%ka.auditid"],
            _ => &["%proc.name", "%proc.pname", "%user.name", "%proc.cmdline", "%container.id", "%k8s.pod.name"],
        };
        for field in who {
            assert!(r.output.contains(field), "rule '{}' does not output {field}", r.name);
        }
        assert!(!r.desc.is_empty(), "rule '{}' has no desc", r.name);
        let tactic = r.tags.iter().any(|t| t.starts_with("mitre_")) && r.tags.iter().any(|t| t.starts_with("TA00"));
        let technique = r.tags.iter().any(|t| t.starts_with('T') && t[1..].starts_with(|c: char| c.is_ascii_digit()));
        assert!(tactic && technique, "rule '{}' lacks a MITRE tactic or technique tag: {:?}", r.name, r.tags);
    }
}

use std::collections::HashMap;

use serde_json::json;

use super::engine::RuleMatching;
use super::event::{FieldSource, Value};
use super::fields::{self, Field, FieldArg, FieldType};
use super::output::Alert;
use crate::state::FieldMapEvent;

/// Builds an engine from rules text; panics with the diagnostics when it does not load.
fn engine(text: &str, matching: RuleMatching) -> Engine {
    let mut set = RuleSet::default();
    set.load_str("t.yaml", text);
    let opts = EngineOptions { rule_matching: matching, hostname: "h".into(), ..EngineOptions::default() };
    let (engine, diags) = Engine::build(&set, opts);
    let errs: Vec<String> = diags.iter().filter(|d| d.severity == Severity::Error).map(ToString::to_string).collect();
    engine.unwrap_or_else(|| panic!("rules did not load: {errs:#?}"))
}

/// An event built from a field map as the sensor ships it; it must render what it says.
fn built(ev: &serde_json::Value) -> FieldMapEvent {
    let built = FieldMapEvent::from_json(ev).expect("event");
    assert_eq!(built.mismatches(), Vec::<String>::new(), "{ev}");
    built
}

fn fired(e: &Engine, ev: serde_json::Value) -> Vec<String> {
    e.process_one(&built(&ev).view()).into_iter().map(|a| a.rule).collect()
}

/// An event that gives exactly the values written (no derived fields, no consistency):
/// for the operator tests, which test comparisons rather than fields.
struct MapSource {
    values: HashMap<(Field, Option<FieldArg>), Value<'static>>,
}

impl MapSource {
    fn new(map: &serde_json::Value) -> Self {
        let value = |ty: FieldType, v: &serde_json::Value| match (ty, v) {
            (FieldType::Ip | FieldType::Net, serde_json::Value::String(s)) => Value::Ip(s.parse().expect("ip")),
            (_, serde_json::Value::String(s)) => Value::Str(s.clone().into()),
            (_, serde_json::Value::Bool(b)) => Value::Bool(*b),
            (FieldType::Int, n) => Value::Int(n.as_i64().expect("int")),
            (_, n) => Value::UInt(n.as_u64().expect("uint")),
        };
        let mut values = HashMap::new();
        for (name, v) in map.as_object().expect("a map") {
            let (base, bracket) = match name.split_once('[') {
                Some((b, rest)) => (b, Some(rest.trim_end_matches(']'))),
                None => (name.as_str(), None),
            };
            let r = fields::resolve(base, bracket).expect("field");
            let ty = fields::effective_type(&r);
            let v = match v {
                serde_json::Value::Array(items) => Value::List(items.iter().map(|i| value(ty, i)).collect()),
                v => value(ty, v),
            };
            values.insert((r.id, r.arg), v);
        }
        MapSource { values }
    }
}

impl FieldSource for MapSource {
    fn event_type(&self) -> &str {
        "openat"
    }

    fn field(&self, id: Field, arg: Option<&FieldArg>) -> Option<Value<'_>> {
        self.values.get(&(id, arg.cloned())).cloned()
    }
}

const MACROS: &str = "
- macro: yes_
  condition: proc.name = bash
- macro: no_
  condition: proc.name = zsh
";

/// True when `cond` holds for the standard test event.
fn holds(cond: &str) -> bool {
    let text = format!(
        "{MACROS}- rule: t\n  desc: d\n  condition: |\n    {cond}\n  output: o\n  priority: info\n  warn_evttypes: false\n"
    );
    let e = engine(&text, RuleMatching::First);
    let ev = MapSource::new(&json!({
        "evt.type": "openat", "evt.dir": "<", "evt.type.is[openat]": 1, "evt.type.is[open]": 0, "proc.name": "bash",
        "proc.args": "-c ls", "fd.name": "/etc/shadow", "fd.num": 3, "proc.aname": ["sshd", "systemd"],
        "proc.aname[0]": "bash", "proc.aname[1]": "sshd", "proc.pname": "sshd", "evt.arg.flags": "O_RDONLY|O_CLOEXEC",
        "fd.sip": "10.1.2.3", "fd.snet": "10.1.2.3", "fd.sport": 443, "container.privileged": false,
        "thread.cap_effective": "CAP_CHOWN CAP_SYS_ADMIN", "proc.env[HOME]": "/root", "proc.env[TOKEN]": "aGVsbG8=",
        "k8s.pod.label[app]": "web",
    }));
    !e.process_one(&ev).is_empty()
}

#[test]
fn operator_semantics() {
    let cases = [
        ("proc.name = bash", true),
        ("proc.name == bash", true),
        ("proc.name != bash", false),
        ("proc.name = BASH", false),
        ("fd.num < 4", true),
        ("fd.num <= 3", true),
        ("fd.num > 3", false),
        ("fd.num >= 3", true),
        ("fd.num = 0x3", true),
        ("fd.name contains shad", true),
        ("fd.name icontains SHAD", true),
        ("fd.name startswith /etc/", true),
        ("fd.name endswith dow", true),
        ("fd.name bcontains 736861", true),
        ("fd.name bstartswith 2f657463", true),
        ("fd.name bcontains 7a7a", false),
        ("fd.name glob '/etc/*'", true),
        ("fd.name glob '/*w'", true),
        ("fd.name glob '/etc/{shadow,passwd}'", false),
        ("fd.name glob '/etc/sh?dow'", true),
        ("fd.name iglob '/ETC/*'", true),
        ("fd.name glob '/ETC/*'", false),
        ("fd.name regex '/etc/s.*'", true),
        ("fd.name regex 'etc'", false),
        ("proc.name in (sh, bash)", true),
        ("proc.name in (sh)", false),
        ("proc.name in ()", false),
        ("proc.name intersects (bash, zsh)", true),
        ("fd.name pmatch (/etc, /var)", true),
        ("fd.name pmatch (/et)", false),
        ("proc.pname exists", true),
        ("container.id exists", false),
        ("not container.id exists", true),
        ("container.id != host", false),
        ("container.id = host", false),
        ("not container.id = host", true),
        ("proc.aname = systemd", true),
        ("proc.aname = bash", false),
        ("proc.aname[0] = bash", true),
        ("proc.aname[1] = sshd", true),
        ("proc.aname[2] = sshd", false),
        ("proc.aname in (systemd, init)", true),
        ("evt.arg.flags contains O_CLOEXEC", true),
        ("evt.arg.flags contains O_CLOEX", false),
        ("evt.arg.flags icontains o_rdonly", true),
        ("thread.cap_effective contains CAP_SYS_ADMIN", true),
        ("thread.cap_effective icontains sys_admin", true),
        ("fd.sip = 10.1.2.3", true),
        ("fd.sip != 10.1.2.3", false),
        ("fd.snet = 10.0.0.0/8", true),
        ("fd.snet != \"10.0.0.0/8\"", false),
        ("fd.snet in (192.168.0.0/16, 10.0.0.0/8)", true),
        ("fd.snet in (192.168.0.0/16)", false),
        ("fd.sport in (80, 443)", true),
        ("fd.sport > 1024", false),
        ("container.privileged = false", true),
        ("container.privileged = true", false),
        ("toupper(proc.name) = BASH", true),
        ("tolower(toupper(proc.name)) = bash", true),
        ("len(proc.name) = 4", true),
        ("len(proc.name) > 4", false),
        ("basename(fd.name) = shadow", true),
        ("b64(proc.env[TOKEN]) = hello", true),
        ("proc.env[HOME] = /root", true),
        ("proc.env[NOPE] = /root", false),
        ("proc.name = val(proc.aname[0])", true),
        ("proc.name = val(proc.pname)", false),
        ("proc.name != val(proc.pname)", true),
        ("toupper(proc.name) = toupper(proc.name)", true),
        ("k8s.pod.label[app] = web", true),
        ("k8s.pod.label.app = web", true),
        ("proc.args contains '-c'", true),
        ("evt.dir = <", true),
        ("evt.type.is.openat = 1", true),
        ("evt.type.is.open = 1", false),
        ("evt.dir = >", false),
    ];
    let mut bad = Vec::new();
    for (cond, want) in cases {
        if holds(cond) != want {
            bad.push(format!("{cond}: expected {want}"));
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn merged_or_tests_keep_their_meaning() {
    let cases = [
        ("fd.name contains zz or fd.name contains yy or fd.name contains adow", true),
        ("fd.name contains zz or fd.name contains yy or fd.name contains xx", false),
        ("proc.args icontains ZZ or proc.args icontains YY or proc.args icontains -C", true),
        ("fd.name startswith /e or fd.name startswith /x or fd.name startswith /y", true),
        ("fd.name startswith etc or fd.name startswith /x or fd.name startswith /y", false),
        ("proc.name = a or proc.name = b or proc.name = bash", true),
        ("proc.name = a or proc.name = b or proc.name = c", false),
        ("proc.aname = a or proc.aname = b or proc.aname = systemd", true),
        ("not (proc.name = a or proc.name = b or proc.name = c)", true),
    ];
    for (cond, want) in cases {
        assert_eq!(holds(cond), want, "{cond}");
    }
}

#[test]
fn precedence_semantics() {
    let cases = [
        ("yes_ or yes_ and no_", true),
        ("no_ and yes_ or yes_", true),
        ("(yes_ or yes_) and no_", false),
        ("not no_ and no_", false),
        ("not (no_ and no_)", true),
        ("not yes_ or yes_", true),
        ("not not yes_", true),
        ("yes_ and not no_ and not not yes_", true),
        ("no_ or no_ or not yes_", false),
        ("yes_ and (no_ or (yes_ and not no_))", true),
    ];
    for (cond, want) in cases {
        assert_eq!(holds(cond), want, "{cond}");
    }
}

const BASE: &str = "
- list: editors
  items: [vim]
- macro: opener
  condition: evt.type = openat
- rule: R
  desc: d
  condition: opener and proc.name in (editors)
  output: o
  priority: warning
";

fn event(name: &str) -> serde_json::Value {
    json!({"evt.type": "openat", "proc.name": name, "fd.name": "/etc/hosts"})
}

#[test]
fn overrides_and_appends_change_behaviour() {
    let e = engine(BASE, RuleMatching::First);
    assert_eq!(fired(&e, event("vim")), ["R"]);
    assert!(fired(&e, event("nano")).is_empty());

    let e = engine(
        &format!("{BASE}- list: editors\n  items: [nano]\n  override: {{items: append}}\n"),
        RuleMatching::First,
    );
    assert_eq!(fired(&e, event("nano")), ["R"]);
    assert_eq!(fired(&e, event("vim")), ["R"]);

    let e = engine(&format!("{BASE}- list: editors\n  items: [nano]\n  append: true\n"), RuleMatching::First);
    assert_eq!(fired(&e, event("nano")), ["R"]);

    let e = engine(
        &format!("{BASE}- list: editors\n  items: [nano]\n  override: {{items: replace}}\n"),
        RuleMatching::First,
    );
    assert!(fired(&e, event("vim")).is_empty());

    let e = engine(
        &format!("{BASE}- macro: opener\n  condition: evt.type = open\n  override: {{condition: replace}}\n"),
        RuleMatching::First,
    );
    assert!(fired(&e, event("vim")).is_empty());

    // Appending is textual: `a and b or c` reads as `(a and b) or c`, as in Falco.
    let e = engine(&format!("{BASE}- rule: R\n  condition: or proc.name = ed\n  append: true\n"), RuleMatching::First);
    assert_eq!(fired(&e, json!({"evt.type": "execve", "proc.name": "ed"})), ["R"]);

    let e =
        engine(&format!("{BASE}- rule: R\n  enabled: false\n  override: {{enabled: replace}}\n"), RuleMatching::First);
    assert_eq!(e.rule_count(), 0);
    let e = engine(
        &format!(
            "{BASE}- rule: R\n  enabled: false\n  override: {{enabled: replace}}\n- rule: R\n  enabled: true\n  override: {{enabled: replace}}\n"
        ),
        RuleMatching::First,
    );
    assert_eq!(fired(&e, event("vim")), ["R"]);

    let e = engine(
        &format!("{BASE}- rule: R\n  priority: DEBUG\n  override: {{priority: replace}}\n"),
        RuleMatching::First,
    );
    assert_eq!(e.process_one(&built(&event("vim")).view())[0].priority, super::loader::Priority::Debug);
}

#[test]
fn exceptions_exclude_matches() {
    let rules = "
- list: trusted
  items: [cat]
- rule: Open
  desc: d
  condition: evt.type = openat
  output: o
  priority: warning
  exceptions:
    - name: proc_dir
      fields: [proc.name, fd.directory]
      comps: [=, in]
      values:
        - [vim, [/etc, /usr/share]]
    - name: names
      fields: proc.name
      values: [less, trusted]
    - name: prefixes
      fields: fd.name
      comps: pmatch
      values: [/srv/data]
- rule: Open
  exceptions:
    - name: proc_dir
      values:
        - [nano, [/tmp]]
    - name: cmd
      fields: [proc.cmdline]
      comps: [startswith]
      values:
        - [sed -i]
  override: {exceptions: append}
";
    let e = engine(rules, RuleMatching::First);
    let cases = [
        (json!({"evt.type": "openat", "proc.name": "vim", "fd.name": "/etc/hosts"}), false),
        (json!({"evt.type": "openat", "proc.name": "vim", "fd.name": "/usr/share/x"}), false),
        (json!({"evt.type": "openat", "proc.name": "vim", "fd.name": "/var/x"}), true),
        (json!({"evt.type": "openat", "proc.name": "nano", "fd.name": "/tmp/x"}), false),
        (json!({"evt.type": "openat", "proc.name": "nano", "fd.name": "/etc/x"}), true),
        (json!({"evt.type": "openat", "proc.name": "less", "fd.name": "/etc/x"}), false),
        (json!({"evt.type": "openat", "proc.name": "cat", "fd.name": "/etc/x"}), false),
        (json!({"evt.type": "openat", "proc.name": "dd", "fd.name": "/srv/data/x"}), false),
        (json!({"evt.type": "openat", "proc.name": "dd", "fd.name": "/srv/database"}), true),
        (json!({"evt.type": "openat", "proc.name": "sed", "proc.args": "-i s/a/b/ f", "fd.name": "/x"}), false),
        (json!({"evt.type": "openat", "proc.name": "sed", "proc.args": "-n p f", "fd.name": "/x"}), true),
    ];
    for (ev, want) in cases {
        assert_eq!(!fired(&e, ev.clone()).is_empty(), want, "{ev}");
    }
}

#[test]
fn exceptions_can_be_replaced() {
    let rules = "
- rule: Open
  desc: d
  condition: evt.type = openat
  output: o
  priority: warning
  exceptions:
    - name: names
      fields: proc.name
      values: [vim]
- rule: Open
  exceptions:
    - name: others
      fields: [proc.name]
      values: [[nano]]
  override: {exceptions: replace}
";
    let e = engine(rules, RuleMatching::First);
    assert_eq!(fired(&e, json!({"evt.type": "openat", "proc.name": "vim"})), ["Open"]);
    assert!(fired(&e, json!({"evt.type": "openat", "proc.name": "nano"})).is_empty());
}

#[test]
fn visibility_rules() {
    // A macro may only use macros defined before it.
    let mut set = RuleSet::default();
    set.load_str(
        "t.yaml",
        "- macro: a\n  condition: b\n- macro: b\n  condition: evt.type = open\n- rule: R\n  desc: d\n  condition: a\n  output: o\n  priority: info\n",
    );
    let (e, diags) = Engine::build(&set, EngineOptions::default());
    assert!(e.is_none());
    let msg = diags.iter().find(|d| d.severity == Severity::Error).expect("error").to_string();
    assert!(
        msg.starts_with("t.yaml:2:14: error: rule 'R': macro 'b' is used by macro 'a' before it is defined"),
        "{msg}"
    );

    // A list naming a later list keeps the name as a plain value.
    let e = engine(
        "- list: a\n  items: [b, x]\n- list: b\n  items: [y]\n- rule: R\n  desc: d\n  condition: evt.type = open and proc.name in (a)\n  output: o\n  priority: info\n",
        RuleMatching::First,
    );
    assert_eq!(fired(&e, json!({"evt.type": "open", "proc.name": "b"})), ["R"]);
    assert!(fired(&e, json!({"evt.type": "open", "proc.name": "y"})).is_empty());
    // A rule can use any macro, wherever it is defined.
    engine(
        "- rule: R\n  desc: d\n  condition: m\n  output: o\n  priority: info\n- macro: m\n  condition: evt.type = open\n",
        RuleMatching::First,
    );
}

#[test]
fn deep_macro_chains_are_rejected_not_overflowed() {
    let mut text = String::from("- macro: m0\n  condition: evt.type = open\n");
    for i in 1..3000 {
        text.push_str(&format!("- macro: m{i}\n  condition: not (m{})\n", i - 1));
    }
    text.push_str("- rule: R\n  desc: d\n  condition: m2999\n  output: o\n  priority: info\n");
    let mut set = RuleSet::default();
    set.load_str("t.yaml", &text);
    let (e, diags) = Engine::build(&set, EngineOptions::default());
    assert!(e.is_none());
    assert!(diags.iter().any(|d| d.message.contains("nests deeper")), "{:?}", diags.first());
}

/// Each item of a chain of 40 names the one before twice: 2^40 once expanded.
fn doubling(kind: &str, use_in_rule: &str) -> String {
    let mut text = match kind {
        "macro" => String::from("- macro: d0\n  condition: proc.name = a\n"),
        _ => String::from("- list: d0\n  items: [a, b]\n"),
    };
    for i in 1..=40 {
        let prev = i - 1;
        text.push_str(&match kind {
            "macro" => format!("- macro: d{i}\n  condition: d{prev} or d{prev}\n"),
            _ => format!("- list: d{i}\n  items: [d{prev}, d{prev}]\n"),
        });
    }
    text + &format!(
        "- rule: R\n  desc: d\n  condition: evt.type = open and {use_in_rule}\n  output: o\n  priority: info\n"
    )
}

#[test]
fn doubling_macros_and_lists_are_refused_with_their_place() {
    for (kind, use_in_rule, line, message) in [
        ("macro", "d40", None, "holds more than 200000 nodes once macros are expanded"),
        ("list", "proc.name in (d40)", Some(33), "holds more than 100000 items"),
    ] {
        let mut set = RuleSet::default();
        set.load_str("t.yaml", &doubling(kind, use_in_rule));
        let (e, diags) = Engine::build(&set, EngineOptions::default());
        assert!(e.is_none(), "{kind}");
        let d = diags.iter().find(|d| d.message.contains(message)).unwrap_or_else(|| panic!("{kind}: {diags:?}"));
        assert_eq!(&*d.loc.file, "t.yaml");
        if let Some(line) = line {
            // The first list past the bound: d16 (2^17 items), defined on line 33.
            assert!(d.loc.to_string().starts_with(&format!("t.yaml:{line}:")), "{d:?}");
        }
    }
}

#[test]
fn uncaptured_event_types_warn() {
    let mut set = RuleSet::default();
    set.load_str(
        "t.yaml",
        "- rule: R\n  desc: d\n  condition: evt.type in (opne, openat)\n  output: o\n  priority: info\n",
    );
    let (e, diags) = Engine::build(&set, EngineOptions::default());
    assert!(e.is_some());
    let msg = diags.iter().map(ToString::to_string).find(|m| m.contains("not captured")).expect("warning");
    assert!(msg.starts_with("t.yaml:3:14: warning: rule 'R': event type(s) opne are not captured"), "{msg}");
}

#[test]
fn rule_matching_first_or_all() {
    let rules = "
- rule: Any
  desc: d
  condition: proc.name = y
  output: any
  priority: info

- rule: A
  desc: d
  condition: evt.type = open
  output: a
  priority: info
- rule: B
  desc: d
  condition: evt.type in (open, openat)
  output: b
  priority: info
- rule: C
  desc: d
  condition: proc.name = x
  output: c
  priority: info
";
    let first = engine(rules, RuleMatching::First);
    let all = engine(rules, RuleMatching::All);
    let ev = json!({"evt.type": "open", "proc.name": "x"});
    assert_eq!(fired(&first, ev.clone()), ["A"]);
    assert_eq!(fired(&all, ev), ["A", "B", "C"]);
    assert_eq!(fired(&all, json!({"evt.type": "openat", "proc.name": "x"})), ["B", "C"]);
    assert_eq!(fired(&all, json!({"evt.type": "execve", "proc.name": "x"})), ["C"]);
    assert_eq!(all.event_types(), None);
    // Typed rules are tried before untyped ones, even when defined later (as in Falco).
    let ev = json!({"evt.type": "open", "proc.name": "y"});
    assert_eq!(fired(&first, ev.clone()), ["A"]);
    assert_eq!(fired(&all, ev), ["A", "B", "Any"]);
    assert_eq!(fired(&first, json!({"evt.type": "execve", "proc.name": "y"})), ["Any"]);
}

#[test]
fn the_process_name_index_keeps_load_order_and_type_tests_fold() {
    let rule = |name: &str, cond: &str| {
        format!("- rule: {name}\n  desc: d\n  condition: {cond}\n  output: o\n  priority: info\n")
    };
    let rules = [
        rule("Shell", "evt.type = execve and proc.name in (bash, sh)"),
        rule("Anyone", "evt.type in (execve, openat) and (evt.type = openat or user.uid = 0)"),
        rule("Bash", "evt.type = execve and (proc.name = bash or proc.name = zsh)"),
        rule("NotBash", "evt.type = execve and not proc.name = bash"),
    ]
    .concat();
    let (first, all) = (engine(&rules, RuleMatching::First), engine(&rules, RuleMatching::All));
    let exec = |name: &str, uid: u32| json!({"evt.type": "execve", "proc.name": name, "user.uid": uid});
    assert_eq!(fired(&all, exec("bash", 0)), ["Shell", "Anyone", "Bash"]);
    assert_eq!(fired(&all, exec("sh", 0)), ["Shell", "Anyone", "NotBash"]);
    assert_eq!(fired(&all, exec("zsh", 0)), ["Anyone", "Bash", "NotBash"]);
    assert_eq!(fired(&all, exec("cat", 1000)), ["NotBash"]);
    assert_eq!(fired(&first, exec("zsh", 0)), ["Anyone"]);
    assert_eq!(fired(&first, exec("zsh", 1000)), ["Bash"]);
    let open = json!({"evt.type": "openat", "proc.name": "bash", "user.uid": 1000, "fd.name": "/tmp/x"});
    assert_eq!(fired(&all, open), ["Anyone"], "evt.type = openat holds for openat");
}

#[test]
fn errors_name_file_line_column() {
    let text = "- rule: R\n  desc: d\n  condition: >\n    evt.type = open\n    and proc.nmae = x\n  output: o\n  priority: info\n\
                - rule: S\n  desc: d\n  condition: evt.type = open and (proc.name = x\n  output: o\n  priority: info\n\
                - rule: T\n  desc: d\n  condition: evt.type = open and fd.num = abc\n  output: o %proc.nope\n  priority: info\n\
                - rule: U\n  desc: d\n  condition: evt.type = open and proc.nmae = x\n  output: o\n  priority: info\n  skip-if-unknown-filter: true\n";
    let mut set = RuleSet::default();
    set.load_str("t.yaml", text);
    let (_, diags) = Engine::build(&set, EngineOptions::default());
    let msgs: Vec<String> = diags.iter().map(ToString::to_string).collect();
    let want = [
        "t.yaml:5:9: error: rule 'R': unknown field 'proc.nmae'; did you mean 'proc.name'?",
        "t.yaml:10:48: error: rule 'S': syntax error: expected ')' but found 'end of condition'",
        "t.yaml:15:34: error: rule 'T': 'abc' is not a number ('fd.num' is int64)",
        "t.yaml:20:34: warning: rule 'U': rule skipped (skip-if-unknown-filter): unknown field 'proc.nmae'",
    ];
    for w in want {
        assert!(msgs.iter().any(|m| m.starts_with(w)), "missing {w:?} in {msgs:#?}");
    }
    let mut set = RuleSet::default();
    set.load_str(
        "t.yaml",
        "- rule: T\n  desc: d\n  condition: evt.type = open\n  output: o %proc.nope\n  priority: info\n",
    );
    let (_, diags) = Engine::build(&set, EngineOptions::default());
    assert!(
        diags[0].to_string().starts_with("t.yaml:4:11: error: rule 'T': in output: unknown field 'proc.nope'"),
        "{diags:?}"
    );
}

#[test]
fn warnings_for_untyped_rules_and_unused_items() {
    let report = {
        let dir = std::env::temp_dir().join(format!("rules-validate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp");
        std::fs::write(dir.join("a.yaml"), "- list: l\n  items: [a]\n- macro: m\n  condition: proc.name = a\n")
            .expect("write");
        std::fs::write(
            dir.join("b.yml"),
            "- rule: R\n  desc: d\n  condition: proc.name = a\n  output: o\n  priority: info\n",
        )
        .expect("write");
        std::fs::write(dir.join("c.txt"), "not yaml: [").expect("write");
        let r = super::validate(&[&dir]);
        let _ = std::fs::remove_dir_all(&dir);
        r
    };
    assert!(report.is_ok(), "{report}");
    assert_eq!((report.rules, report.macros, report.lists, report.warnings()), (1, 1, 1, 3), "{report}");
    let text = report.to_string();
    assert!(text.contains("rule matches every event type"), "{text}");
    assert!(text.contains("macro 'm': macro is not used"), "{text}");
    let j = report.to_json();
    assert_eq!((j["rules"].as_u64(), j["warnings"].as_u64()), (Some(1), Some(3)));
    assert_eq!(j["diagnostics"][0]["severity"], "warning");
    assert!(j["diagnostics"][0]["line"].as_u64().is_some());
    assert!(text.ends_with("1 rules (1 enabled and loaded), 1 macros, 1 lists; 0 errors, 3 warnings"), "{text}");
}

#[test]
fn rules_naming_unavailable_fields_warn() {
    let mut set = RuleSet::default();
    set.load_str(
        "u.yaml",
        "- macro: on_device\n  condition: fd.dev > 1000\n- rule: Device\n  desc: d\n  \
         condition: evt.type = openat and (on_device or fd.dev > 5)\n  output: dev=%fd.dev ino=%fd.ino\n  \
         priority: INFO\n",
    );
    let (engine, diags) = Engine::build(&set, EngineOptions::default());
    assert!(engine.is_some(), "warnings only");
    let text: Vec<String> = diags.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        [
            "u.yaml:2:14: warning: rule 'Device': field 'fd.dev' is not supplied by this sensor (the device and inode \
             of opened files are not captured); conditions on it are always false",
            "u.yaml:6:11: warning: rule 'Device': field 'fd.ino' is not supplied by this sensor (the device and inode \
             of opened files are not captured); the output renders <NA> for it",
        ]
    );
}

#[test]
fn falco_alert_formats() {
    let mut set = RuleSet::default();
    set.load_paths(&[FALCO_RULES]);
    let opts = EngineOptions { hostname: "node-1".into(), ..EngineOptions::default() };
    let (engine, _) = Engine::build(&set, opts);
    let engine = engine.expect("engine");
    let ev = built(&json!({
        "evt.type": "openat", "evt.rawtime": 1_685_022_245_478_445_995_u64, "evt.is_open_read": true, "fd.typechar": "f",
        "fd.num": 3, "fd.name": "/etc/shadow", "proc.name": "cat", "proc.args": "/etc/shadow", "proc.pname": "bash",
        "container.id": "host", "user.name": "root", "user.uid": 0, "user.loginuid": -1, "proc.exepath": "/usr/bin/cat",
        "proc.tty": 34816,
    }));
    let alerts: Vec<Alert> = engine.process_one(&ev.view());
    assert_eq!(alerts.len(), 1);
    let a = &alerts[0];
    assert_eq!(
        a.to_text(),
        "13:44:05.478445995: Warning Sensitive file opened for reading by non-trusted program | file=/etc/shadow \
         gparent=<NA> ggparent=<NA> gggparent=<NA> evt_type=openat user=root user_uid=0 user_loginuid=-1 process=cat \
         proc_exepath=/usr/bin/cat parent=bash command=cat /etc/shadow terminal=34816"
    );
    let j = a.to_json();
    assert_eq!(j["time"], "2023-05-25T13:44:05.478445995Z");
    assert_eq!(j["rule"], "Read sensitive file untrusted");
    assert_eq!(j["priority"], "Warning");
    assert_eq!(j["source"], "syscall");
    assert_eq!(j["hostname"], "node-1");
    assert_eq!(j["output"], a.to_text());
    assert_eq!(j["tags"][0], "maturity_stable");
    let f = &j["output_fields"];
    assert_eq!(f["evt.time"], 1_685_022_245_478_445_995_u64);
    assert_eq!(f["fd.name"], "/etc/shadow");
    assert_eq!(f["user.uid"], 0);
    assert_eq!(f["user.loginuid"], -1);
    assert_eq!(f["proc.tty"], 34816);
    assert!(f["proc.aname[2]"].is_null());
    assert_eq!(f.as_object().map(serde_json::Map::len), Some(14));
}

#[test]
fn unit_test_runner_reports_diffs() {
    let dir = std::env::temp_dir().join(format!("rules-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    std::fs::write(dir.join("r.yaml"), BASE).expect("write");
    std::fs::write(
        dir.join("t.yaml"),
        "rules: [r.yaml]\ntests:\n  - name: ok\n    event: '{\"evt.type\": \"openat\", \"proc.name\": \"vim\"}'\n    fires: [R]\n\
         \x20 - name: wrong\n    event: {evt.type: openat, proc.name: nano}\n    fires: [R]\n\
         \x20 - name: noisy\n    events:\n      - {evt.type: openat, proc.name: vim}\n    silent: all\n\
         \x20 - name: typo\n    event: {evt.type: openat, proc.nam: vim}\n    silent: [R, Nope]\n",
    )
    .expect("write");
    let report = super::run_rule_tests(&[&dir.join("t.yaml")], &[]);
    let _ = std::fs::remove_dir_all(&dir);
    let text = report.render(true);
    assert_eq!((report.passed(), report.failed()), (1, 3), "{text}");
    assert!(text.contains("- R   (must fire, did not)"), "{text}");
    assert!(text.contains("why 'R' did not fire on the event at line 7:\n        ✗ proc.name in (editors)"), "{text}");
    assert!(text.contains("+ R   (must not fire, fired)"), "{text}");
    assert!(text.contains("did you mean 'proc.name'"), "{text}");
    assert!(text.contains("unknown rule 'Nope'"), "{text}");
    assert!(text.ends_with("1 passed, 3 failed\n"), "{text}");
}

proptest::proptest! {
    #[test]
    fn pipeline_never_panics(parts in proptest::collection::vec(proptest::sample::select(vec![
        "proc.name", "fd.num", "proc.aname[2]", "evt.arg.flags", "fd.snet", "=", "!=", "<", "in", "contains", "glob",
        "regex", "pmatch", "exists", "(", ")", ",", " and ", " or ", "not ", "'x*'", "1", "10.0.0.0/8", "yes_", "no_",
        "val(proc.pname)", "tolower(", "len(", "[", "]", "\\", "'", " ",
    ]), 1..30), out in ".{0,40}") {
        let cond = parts.concat();
        let text = format!(
            "{MACROS}- rule: t\n  desc: d\n  condition: {cond:?}\n  output: {out:?}\n  priority: info\n"
        );
        let mut set = RuleSet::default();
        set.load_str("p.yaml", &text);
        if let (Some(e), _) = Engine::build(&set, EngineOptions::default()) {
            let _ = e.process_one(&built(&json!({"evt.type": "open", "proc.name": "x"})).view());
        }
    }
}

/// Tests several rules of a type share become guards, evaluated once per event: the rules
/// still fire exactly when their whole conditions hold, in load order.
#[test]
fn shared_conjuncts_guard_rules_without_changing_what_fires() {
    let rules = r#"
- rule: Write a
  desc: d
  condition: evt.type = openat and evt.is_open_write = true and fd.name = /tmp/a
  output: "a %fd.name"
  priority: WARNING
- rule: Write any but b
  desc: d
  condition: evt.type = openat and evt.is_open_write = true and not proc.name = sh and fd.name != /tmp/b
  output: "any %fd.name"
  priority: WARNING
- rule: Read by a non-shell
  desc: d
  condition: evt.type = openat and evt.is_open_read = true and not proc.name = sh
  output: "read %fd.name"
  priority: WARNING
"#;
    let open = |name: &str, proc: &str, write: bool| {
        serde_json::json!({"evt.type": "openat", "fd.name": name, "proc.name": proc, "fd.typechar": "f",
            "evt.is_open_write": write, "evt.is_open_read": !write})
    };
    let all = engine(rules, RuleMatching::All);
    assert_eq!(fired(&all, open("/tmp/a", "cat", true)), ["Write a", "Write any but b"]);
    assert_eq!(fired(&all, open("/tmp/b", "cat", true)), Vec::<String>::new());
    assert_eq!(fired(&all, open("/tmp/a", "sh", true)), ["Write a"]);
    assert_eq!(fired(&all, open("/tmp/a", "cat", false)), ["Read by a non-shell"]);
    assert_eq!(fired(&all, open("/tmp/a", "sh", false)), Vec::<String>::new());
    let first = engine(rules, RuleMatching::First);
    assert_eq!(fired(&first, open("/tmp/a", "cat", true)), ["Write a"]);
    assert_eq!(fired(&first, open("/tmp/c", "cat", true)), ["Write any but b"]);
}

#[test]
fn append_output_entries_append_to_the_rules_they_match() {
    use super::engine::{AppendMatch, AppendOutput, ExtraField};
    let mut set = RuleSet::default();
    let rule = |name: &str, tags: &str| {
        format!(
            "- rule: {name}\n  desc: d\n  condition: evt.type = openat and proc.name = cat\n  output: \"{name} fired\"\n  \
             priority: WARNING\n  tags: [{tags}]\n"
        )
    };
    set.load_str("t.yaml", &(rule("In container", "container, shell") + &rule("On host", "host")));
    let append = |matches: AppendMatch, text: &str| AppendOutput { matches, text: text.into(), fields: vec![] };
    let opts = EngineOptions {
        rule_matching: RuleMatching::All,
        append_output: vec![
            append(
                AppendMatch { tags: vec!["container".into(), "shell".into()], ..AppendMatch::default() },
                "by=%proc.name",
            ),
            append(AppendMatch { rule: Some("On host".into()), ..AppendMatch::default() }, "(host rule)"),
            append(AppendMatch { tags: vec!["container".into(), "network".into()], ..AppendMatch::default() }, "never"),
            append(AppendMatch { source: Some("k8s_audit".into()), ..AppendMatch::default() }, "never"),
            append(AppendMatch::default(), "always"),
            // Fields in the alert alone: a field's value, a set value (a cluster's name).
            AppendOutput {
                matches: AppendMatch { rule: Some("On host".into()), ..AppendMatch::default() },
                text: String::new(),
                fields: vec![
                    ExtraField::Field("proc.name".into()),
                    ExtraField::Field("fd.name".into()),
                    ExtraField::Constant("cluster".into(), "prod-eu".into()),
                ],
            },
        ],
        ..EngineOptions::default()
    };
    let engine = Engine::build(&set, opts).0.expect("engine");
    let ev =
        built(&json!({"evt.type": "openat", "fd.typechar": "f", "fd.num": 3, "fd.name": "/tmp/x", "proc.name": "cat"}));
    let alerts = engine.process_one(&ev.view());
    let messages: Vec<&str> = alerts.iter().map(|a| a.message.as_str()).collect();
    assert_eq!(messages, ["In container fired by=cat always", "On host fired (host rule) always"]);
    let fields = |a: &Alert| -> Vec<String> { a.fields.iter().map(|(k, v)| format!("{k}={v:?}")).collect() };
    assert_eq!(fields(&alerts[0]), ["proc.name=Some(Str(\"cat\"))"]);
    assert_eq!(
        fields(&alerts[1]),
        ["proc.name=Some(Str(\"cat\"))", "fd.name=Some(Str(\"/tmp/x\"))", "cluster=Some(Str(\"prod-eu\"))"]
    );
    // A name that is no field is refused at load, naming it.
    let bad = AppendOutput { fields: vec![ExtraField::Field("proc.nme".into())], ..AppendOutput::default() };
    let (engine, diags) = Engine::build(&set, EngineOptions { append_output: vec![bad], ..EngineOptions::default() });
    assert!(engine.is_none());
    assert!(diags.iter().any(|d| d.message.contains("extra_fields") && d.message.contains("proc.nme")), "{diags:?}");
}

#[test]
fn static_fields_are_read_in_conditions_and_outputs() {
    super::fields::set_static_fields([("env".to_owned(), "prod".to_owned())].into());
    let rule = |name: &str, cond: &str| {
        format!(
            "- rule: {name}\n  desc: d\n  condition: evt.type = openat and {cond}\n  output: \"env=%static.env \
             other=%static.other\"\n  priority: WARNING\n"
        )
    };
    let rules =
        [rule("Prod", "static.env = prod"), rule("Dev", "static.env = dev"), rule("Unset", "static.other exists")]
            .concat();
    let engine = engine(&rules, RuleMatching::All);
    let ev =
        built(&json!({"evt.type": "openat", "fd.typechar": "f", "fd.num": 3, "fd.name": "/tmp/x", "proc.name": "cat"}));
    let alerts = engine.process_one(&ev.view());
    let seen: Vec<(&str, &str)> = alerts.iter().map(|a| (a.rule.as_str(), a.message.as_str())).collect();
    assert_eq!(seen, [("Prod", "env=prod other=<NA>")]);
    assert!(fields::resolve("static", None).is_err(), "a name is needed");
}
