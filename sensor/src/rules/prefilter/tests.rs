use sensor_abi::prefilter::open_class::{ALL, CREATE, FAILED, READ, SUCCEEDED, WRITE};

use super::{OpenFilter, PathPattern, Prefilter};
use crate::rules::{Engine, EngineOptions, RuleSet};

const O_RDONLY: u64 = 0;
const O_WRONLY: u64 = 1;
const O_CREAT: u64 = 0o100;

fn prefilter(rules: &str) -> Prefilter {
    let mut set = RuleSet::default();
    set.load_str("test.yaml", rules);
    let (engine, diags) = Engine::build(&set, EngineOptions::default());
    let engine = engine.unwrap_or_else(|| panic!("{diags:?}"));
    engine.prefilter()
}

fn rule(cond: &str, output: &str) -> String {
    format!("- rule: r\n  desc: d\n  condition: {cond}\n  output: \"{output}\"\n  priority: WARNING\n")
}

fn open_filter(rules: &str) -> OpenFilter {
    prefilter(rules).open.expect("opens are filtered")
}

#[test]
fn paths_and_classes_from_conditions() {
    let f = open_filter(&rule(
        "evt.type in (open, openat) and evt.is_open_write=true and (fd.name startswith /etc/ or fd.name = /root/x)",
        "%fd.name",
    ));
    assert_eq!(f.any, 0);
    assert_eq!(f.paths.get(&PathPattern::Prefix("/etc/".into())), Some(&WRITE));
    assert_eq!(f.paths.get(&PathPattern::Exact("/root/x".into())), Some(&WRITE));
    assert!(f.sends("/etc/passwd", Some(O_WRONLY), 3));
    assert!(!f.sends("/etc/passwd", Some(O_RDONLY), 3));
    assert!(!f.sends("/tmp/x", Some(O_WRONLY), 3));
    // Paths the kernel cannot compare as rules see them are always sent.
    assert!(f.sends("/tmp/../etc/passwd", Some(O_RDONLY), 3));
    assert!(f.sends("passwd", Some(O_RDONLY), 3));
    // A call whose flags are not read has every class.
    assert!(f.sends("/etc/passwd", None, 3));
}

#[test]
fn directories_globs_pmatch_and_results() {
    let f = open_filter(&rule(
        "evt.type = openat and (fd.directory in (/etc, /) or fd.name glob '/var/*/x' or fd.name pmatch (/srv/a, 'b/c'))",
        "%fd.name",
    ));
    for p in ["/etc/", "/", "/var/", "/srv/a/", "/b/c/"] {
        assert_eq!(f.paths.get(&PathPattern::Prefix(p.into())), Some(&ALL), "{p}: {f:?}");
    }
    // pmatch is by component: the directory itself, and below it.
    for p in ["/srv/a", "/b/c"] {
        assert_eq!(f.paths.get(&PathPattern::Exact(p.into())), Some(&ALL), "{p}: {f:?}");
    }
    let f = open_filter(&rule("evt.type = openat and fd.name pmatch (/srv/a)", "%fd.name"));
    assert!(f.sends("/srv/a", Some(O_RDONLY), 3) && f.sends("/srv/a/b", Some(O_RDONLY), 3));
    assert!(!f.sends("/srv/ab", Some(O_RDONLY), 3));
    let f = open_filter(&rule("evt.type = openat and fd.num = -1 and fd.name = /x", "%fd.name"));
    assert_eq!(f.paths.get(&PathPattern::Exact("/x".into())), Some(&FAILED));
    assert!(!f.sends("/x", Some(O_RDONLY), 3) && f.sends("/x", Some(O_RDONLY), -2));
    let f = open_filter(&rule("evt.type = openat and evt.arg.flags contains O_CREAT and fd.name = /x", "%fd.name"));
    assert!(f.sends("/x", Some(O_WRONLY | O_CREAT), 3) && !f.sends("/x", Some(O_WRONLY), 3));
    // A shorter pattern's classes reach the longer ones (the kernel finds the longest).
    let f = open_filter(&format!(
        "{}{}",
        rule("evt.type = openat and evt.is_open_read=true and fd.name startswith /etc", "x"),
        rule("evt.type = openat and evt.is_open_create=true and fd.name = /etc/x", "x").replace("rule: r", "rule: r2"),
    ));
    assert_eq!(f.paths.get(&PathPattern::Exact("/etc/x".into())), Some(&(READ | CREATE)));
}

#[test]
fn weak_conditions_keep_every_open() {
    for cond in [
        "evt.type = openat and not fd.name startswith /etc",
        "evt.type = openat and fd.name contains shadow",
        "evt.type = openat and proc.name = cat",
        "proc.name = cat",
    ] {
        let p = prefilter(&rule(cond, "%proc.name"));
        assert!(p.open.is_none(), "{cond}: {p:?}");
    }
    // A class alone filters whatever the path.
    let f = open_filter(&rule("evt.type = openat and evt.is_open_write=true and proc.name = cat", "x"));
    assert_eq!((f.any, f.paths.len()), (WRITE, 0));
    let f = open_filter(&rule("evt.type = openat and fd.num >= 0 and proc.name = cat", "x"));
    assert_eq!(f.any, SUCCEEDED);
}

#[test]
fn first_component_blooms() {
    use sensor_abi::prefilter::component_bloom_bit;
    let etc = component_bloom_bit(b"etc");
    assert_eq!(PathPattern::Exact("/etc/shadow".into()).first_component_bloom(), etc);
    assert_eq!(PathPattern::Exact("/etc".into()).first_component_bloom(), etc);
    assert_eq!(PathPattern::Prefix("/etc/".into()).first_component_bloom(), etc);
    // "/etc" as a prefix also covers "/etcd": its first component is not fixed.
    assert_eq!(PathPattern::Prefix("/etc".into()).first_component_bloom(), u64::MAX);
    assert_eq!(PathPattern::Prefix("/".into()).first_component_bloom(), u64::MAX);
}

#[test]
fn state_needs() {
    // Later uses of an fd need no open: the kernel sends the fd's path with the use.
    let p = prefilter(&rule("evt.type in (mmap, fchmod, dup) and proc.name = x", "%fd.name %fs.path.name"));
    assert!(p.open.as_ref().is_some_and(|f| f.any == 0 && f.paths.is_empty()), "{p:?}");
    assert!(p.close);
    // Rules on close keep every close; counting fds keeps every open.
    assert!(!prefilter(&rule("evt.type = close and proc.name = x", "x")).close);
    assert!(prefilter(&rule("evt.type = execve and proc.fdopencount > 100", "x")).open.is_none());
}

#[test]
fn event_type_tests_are_decided_per_syscall() {
    let f = open_filter(&rule(
        "(evt.type = execve and proc.name = x) or (evt.type in (openat, open) and fd.name startswith /etc/) \
         or (not evt.type in (openat, open, creat, openat2) and proc.name = y)",
        "x",
    ));
    assert_eq!((f.any, f.paths.len()), (0, 1), "{f:?}");
}

#[test]
fn falco_and_built_in_rules_filter_opens() {
    let falco = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/falco/falco_rules.yaml"))
        .expect("falco rules");
    let p = prefilter(&falco);
    let f = p.open.unwrap_or_else(|| panic!("Falco's rules keep every open: {:?}", p.open_off_reason));
    assert!(!f.sends("/tmp/bench-file", Some(O_RDONLY), 3), "{f:?}");
    assert!(f.sends("/etc/shadow", Some(O_RDONLY), 3));
    let mut set = RuleSet::default();
    for (name, text) in crate::pipeline::DEFAULT_RULES {
        set.load_str(name, text);
    }
    let (engine, diags) = Engine::build(&set, EngineOptions::default());
    let p = engine.unwrap_or_else(|| panic!("{diags:?}")).prefilter();
    let f = p.open.unwrap_or_else(|| panic!("the built-in rules keep every open: {:?}", p.open_off_reason));
    assert!(!f.sends("/tmp/bench-file", Some(O_RDONLY), 3), "{f:?}");
    assert!(f.sends("/etc/shadow", Some(O_RDONLY), 3));
}

#[test]
fn flagless_calls_take_no_class_from_the_others() {
    // `creat` has no flags argument: the kernel gives it every class. A rule on successful
    // writes that also names `creat` must not send every successful read of its paths.
    let f = open_filter(&rule(
        "((evt.type in (open, openat, openat2) and evt.is_open_write = true) or evt.type = creat) \
         and evt.res = SUCCESS and fd.name startswith /etc/",
        "%fd.name",
    ));
    assert!(!f.sends("/etc/ld.so.cache", Some(O_RDONLY), 3), "{f:?}");
    assert!(f.sends("/etc/passwd", Some(O_WRONLY), 3));
    // `creat` and `openat2` (flags not read: `None`) are still sent below /etc.
    assert!(f.sends("/etc/passwd", None, 3));
    assert!(!f.sends("/tmp/x", None, 3));
    // A rule on any `creat` keeps back reads elsewhere instead of every open.
    let f = open_filter(&rule("evt.type = creat", "%fd.name"));
    assert!(f.sends("/tmp/x", None, 3));
    assert!(!f.sends("/tmp/x", Some(O_RDONLY), 3));
    assert!(f.sends("/tmp/x", Some(O_WRONLY | O_CREAT | 0o1000), 3));
}
