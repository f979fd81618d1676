//! End-to-end tests of the rule engine: the stable Falco ruleset, operators, precedence,
//! overrides and exceptions, evaluated on map events.

use super::engine::{Engine, EngineOptions};
use super::loader::{RuleSet, Severity};

const FALCO_RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/falco/falco_rules.yaml");

#[test]
fn falco_rules_load_cleanly() {
    let mut set = RuleSet::default();
    set.load_paths(&[FALCO_RULES]);
    assert_eq!((set.rules.len(), set.macros.len(), set.lists.len()), (25, 87, 49));
    let (engine, diags) = Engine::build(&set, EngineOptions::default());
    for d in &diags {
        eprintln!("{d}");
    }
    assert!(diags.iter().all(|d| d.severity != Severity::Error));
    assert_eq!(engine.expect("engine").rule_count(), 25);
}
