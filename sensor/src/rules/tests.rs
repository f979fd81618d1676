//! End-to-end tests of the rule engine: the stable Falco ruleset, operators, precedence,
//! overrides and exceptions, evaluated on map events.

use super::engine::{Engine, EngineOptions};
use super::loader::{RuleSet, Severity};

const FALCO_RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/falco/falco_rules.yaml"
);

#[test]
fn falco_rules_load_cleanly() {
    let mut set = RuleSet::default();
    set.load_paths(&[FALCO_RULES]);
    assert_eq!(
        (set.rules.len(), set.macros.len(), set.lists.len()),
        (25, 87, 49)
    );
    let (engine, diags) = Engine::build(&set, EngineOptions::default());
    for d in &diags {
        eprintln!("{d}");
    }
    assert!(diags.iter().all(|d| d.severity != Severity::Error));
    assert_eq!(engine.expect("engine").rule_count(), 25);
}

#[test]
fn falco_rule_cases() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/tests/falco");
    let report = super::run_rule_tests(&[dir], &[]);
    let text = report.render(false);
    assert!(report.is_success(), "{text}");
    // Every stable rule has a case that fires it and a near-miss that keeps it silent.
    let mut cases = String::new();
    for f in ["files.yaml", "process.yaml", "network.yaml"] {
        cases.push_str(&std::fs::read_to_string(format!("{dir}/{f}")).expect("case file"));
    }
    let mut set = RuleSet::default();
    set.load_paths(&[FALCO_RULES]);
    for r in &set.rules {
        let fires = cases
            .lines()
            .any(|l| l.trim_start().starts_with("fires: [") && l.contains(r.name.as_str()));
        let silent = cases
            .lines()
            .any(|l| l.trim_start().starts_with("silent: [") && l.contains(r.name.as_str()));
        assert!(
            fires && silent,
            "rule '{}' lacks a firing case or a near-miss",
            r.name
        );
    }
}
