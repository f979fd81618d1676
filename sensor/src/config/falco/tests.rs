//! Falco's configuration files, read as a Falco user's would be: the stock `falco.yaml`
//! (vendored in `tests/falco/`) with exactly the documented notices, each key's Falco
//! meaning, `config_files`, and `-o` overrides naming Falco's keys.

use std::path::PathBuf;

use crate::config::{RuleSelection, SelectedRules, SensorConfig};
use crate::outputs::OutputKind;

fn stock() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/falco/falco.yaml")
}

use crate::test_dir::TestDir;

fn dir(name: &str) -> TestDir {
    TestDir::new(&format!("falco-config-{name}"))
}

fn kinds(c: &SensorConfig) -> Vec<String> {
    c.outputs
        .outputs
        .iter()
        .map(|o| match &o.kind {
            OutputKind::Stdout(s) => format!("stdout {:?}", s.format),
            OutputKind::Syslog(s) => format!("syslog {:?} {}", s.format, s.socket.display()),
            OutputKind::File(f) => format!("file {:?} {}", f.format, f.path.display()),
            OutputKind::Webhook(w) => format!("webhook {} {}", o.name, w.url),
            OutputKind::Program(p) => format!("program {:?} keep_alive={} {}", p.format, p.keep_alive, p.command),
            OutputKind::Grpc(_) => "grpc".into(),
            other => format!("{other:?}"),
        })
        .collect()
}

#[test]
fn the_stock_falco_yaml_reads_with_only_the_documented_notices() {
    assert!(!std::path::Path::new("/etc/falco").exists(), "this test expects a machine without Falco installed");
    let c = SensorConfig::load_with_overrides(Some(&stock()), &[]).unwrap();
    assert!(c.rules.is_empty(), "none of /etc/falco's files exists here: the built-in rules");
    assert_eq!(kinds(&c), ["stdout Text", "syslog Text /dev/log"], "stdout_output and syslog_output are on");
    assert_eq!(c.metrics.address, Some("0.0.0.0:8765".parse().unwrap()), "webserver's address");
    assert!(!c.metrics.prometheus, "prometheus_metrics_enabled: false");
    assert_eq!(c.log.level, "info");
    assert!(c.engine.suggested_output && !c.engine.all_matches);
    assert_eq!(c.engine.min_priority, crate::rules::Priority::Debug);
    assert!(c.reload.watch, "watch_config_files: true");
    assert_eq!(c.internal_alerts.drop_threshold, 0, "actions: [log, alert]");
    assert!(c.internal_alerts.falco_drop_alert, "Falco's drop alert");
    assert_eq!(c.time_format, crate::rules::output::TimeFormat::Local, "time_format_iso_8601: false");
    let mut notices = c.notices.clone();
    notices.sort();
    let documented = [
        "base_syscalls: not applied: the kernel programs capture what the loaded rules and the process state need",
        "buffer_format_base64: not applied: no output field renders data buffers",
        "capture: not applied: capture files are `sensor capture`'s; rules do not trigger captures",
        "config_files: /etc/falco/config.d does not exist: skipped",
        "engine: not applied: the sensor has its own kernel programs; no Falco driver is loaded",
        "falco_libs: not applied: the process table is sized by the sensor's `state` section",
        "libs_logger: not applied: there is no libsinsp; the sensor's own log is log_level's",
        "load_plugins: not applied: no Falco plugins are loaded; containers and Kubernetes audit events are built in",
        "log_syslog: true is not applied: the sensor's log goes to stderr only (alerts go to syslog_output)",
        "output_timeout: not applied: outputs never block detection: each has its own queue and timeout",
        "plugins: not applied: no Falco plugins are loaded; containers and Kubernetes audit events are built in",
        "rules_files: /etc/falco/falco_rules.local.yaml does not exist: skipped",
        "rules_files: /etc/falco/falco_rules.yaml does not exist: skipped",
        "rules_files: /etc/falco/rules.d does not exist: skipped",
        "rules_files: none of the files exists: running the built-in rules",
        "syscall_event_timeouts: not applied: there is no libscap event timeout",
    ];
    assert_eq!(notices, documented);
}

#[test]
fn each_falco_key_takes_its_falco_meaning() {
    let d = dir("keys");
    let rules = d.0.join("my_rules.yaml");
    std::fs::write(&rules, "- list: x\n  items: [a]\n").unwrap();
    std::fs::create_dir_all(d.0.join("config.d")).unwrap();
    // An included file's keys win over the main file's (mappings merged key by key), and
    // its lists are appended (Falco's default strategy); an add-only file adds new keys only.
    std::fs::write(
        d.0.join("config.d/10-web.yaml"),
        "webserver:\n  listen_port: 9911\nrules:\n  - enable: {rule: \"Read credential file*\"}\n",
    )
    .unwrap();
    std::fs::write(d.0.join("late.yaml"), "log_level: debug\nrule_matching: first\n").unwrap();
    let file = d.0.join("falco.yaml");
    std::fs::write(
        &file,
        format!(
            "config_files: [config.d, {{path: late.yaml, strategy: add-only}}]\n\
             rules_files: [{rules}, /nonexistent/rules.yaml]\n\
             rules:\n  - disable: {{rule: \"*\"}}\n  - enable: {{tag: network}}\n\
             priority: warning\nrule_matching: all\njson_output: true\ntime_format_iso_8601: true\n\
             json_include_tags_property: false\n\
             stdout_output: {{enabled: false}}\nsyslog_output: {{enabled: false}}\n\
             file_output: {{enabled: true, filename: \"${{HOME}}/falco-events.txt\"}}\n\
             http_output: {{enabled: true, url: \"http://sidekick:2801/\", user_agent: \"falcosecurity/falco $${{HOME}}\", \
             mtls: true, client_cert: /c.crt, client_key: /c.key, ca_cert: /ca.pem, insecure: true}}\n\
             program_output: {{enabled: true, keep_alive: true, program: \"jq -c .\"}}\n\
             webserver: {{enabled: true, listen_address: 127.0.0.1, listen_port: 8765, prometheus_metrics_enabled: true}}\n\
             log_level: warning\nwatch_config_files: false\n\
             syscall_event_drops: {{actions: [log], threshold: .1, rate: .03333}}\n\
             outputs_queue: {{capacity: 0}}\nappend_output: [{{suggested_output: false}}, {{match: {{tags: [container]}}, extra_output: \"cpu=%evt.cpu\", \
             extra_fields: [evt.hostname]}}]\n\
             a_key_of_nobodys: 1\n",
            rules = rules.display()
        ),
    )
    .unwrap();
    let c = SensorConfig::load_with_overrides(Some(&file), &[]).unwrap();
    assert_eq!(c.rules, std::slice::from_ref(&rules));
    assert_eq!(
        c.engine.select,
        [
            RuleSelection::Disable(SelectedRules::Rule("*".into())),
            RuleSelection::Enable(SelectedRules::Tag("network".into())),
            RuleSelection::Enable(SelectedRules::Rule("Read credential file*".into())),
        ]
    );
    assert_eq!(c.engine.min_priority, crate::rules::Priority::Warning);
    assert!(c.engine.all_matches && !c.engine.suggested_output);
    assert_eq!(c.time_format, crate::rules::output::TimeFormat::Iso8601);
    assert!(!c.json_alert.tags && c.json_alert.output && c.json_alert.output_fields && !c.json_alert.message);
    assert_eq!(
        c.engine.append_output,
        [crate::rules::AppendOutput {
            matches: crate::rules::AppendMatch { tags: vec!["container".into()], ..Default::default() },
            text: "cpu=%evt.cpu".into(),
            fields: vec![crate::rules::ExtraField::Field("evt.hostname".into())],
        }]
    );
    assert_eq!(
        kinds(&c),
        [
            &format!("file Json {}/falco-events.txt", std::env::var("HOME").unwrap()),
            "webhook http_output http://sidekick:2801/",
            "program Json keep_alive=true jq -c .",
        ]
    );
    let OutputKind::Webhook(w) = &c.outputs.outputs[1].kind else { unreachable!() };
    assert_eq!(w.ca_file.as_deref(), Some(std::path::Path::new("/ca.pem")));
    assert_eq!(w.client_cert.as_deref(), Some(std::path::Path::new("/c.crt")));
    // `${NAME}` is the environment's; `$${` a literal `${`.
    assert_eq!(format!("{:?}", w.headers["User-Agent"]), "Plain(\"falcosecurity/falco ${HOME}\")");
    assert_eq!(c.metrics.address, Some("127.0.0.1:9911".parse().unwrap()), "config.d's port over the main file's");
    assert!(c.metrics.prometheus);
    assert_eq!(c.log.level, "warn", "add-only: the main file's level stays");
    assert!(!c.reload.watch);
    assert_eq!(c.internal_alerts.drop_threshold, u64::MAX, "no `alert` action: no drop alert");
    let mut notices = c.notices.clone();
    notices.sort();
    assert_eq!(
        notices,
        [
            "a_key_of_nobodys: not a key of Falco's configuration: ignored".to_owned(),
            "http_output.insecure: true is not applied: certificates are always verified (give ca_cert)".into(),
            "rules_files: /nonexistent/rules.yaml does not exist: skipped".into(),
        ]
    );
}

#[test]
fn overrides_name_falco_keys_and_append_to_lists() {
    let d = dir("overrides");
    let file = d.0.join("falco.yaml");
    std::fs::write(&file, "rules_files: []\nstdout_output: {enabled: true}\nsyslog_output: {enabled: false}\n")
        .unwrap();
    let extra = d.0.join("extra.yaml");
    std::fs::write(&extra, "- list: y\n  items: [b]\n").unwrap();
    let c = SensorConfig::load_with_overrides(
        Some(&file),
        &[
            "json_output=true".into(),
            format!("rules_files[]={}", extra.display()),
            "webserver.listen_port=9912".into(),
            "webserver.listen_address=127.0.0.1".into(),
        ],
    )
    .unwrap();
    assert_eq!(kinds(&c), ["stdout Json"]);
    assert_eq!(c.rules, [extra]);
    assert_eq!(c.metrics.address, Some("127.0.0.1:9912".parse().unwrap()));
    // static_fields: a cluster's name in every alert, its text (with the suggested fields) and fields.
    let c = SensorConfig::load_with_overrides(Some(&file), &["static_fields={cluster: prod-eu}".into()]).unwrap();
    assert_eq!(
        c.engine.append_output,
        [crate::rules::AppendOutput {
            matches: Default::default(),
            text: "static_cluster=prod-eu".into(),
            fields: vec![crate::rules::ExtraField::Constant("static.cluster".into(), "prod-eu".into())],
        }]
    );
    assert_eq!(c.notices, ["rules_files: empty: running the built-in rules"]);
    assert_eq!(c.static_fields, [("cluster".to_owned(), "prod-eu".to_owned())].into());
    // A value of the wrong kind names the key and the file.
    let e = SensorConfig::load_with_overrides(Some(&file), &["rule_matching=sometimes".into()]).unwrap_err();
    assert!(format!("{e:#}").contains("rule_matching: expected `first` or `all`"), "{e:#}");
    // Not every file with a key Falco also has is Falco's: this sensor's own still reads as ours.
    let ours = d.0.join("sensor.yaml");
    std::fs::write(&ours, "rules: [builtin]\nengine: {all_matches: true}\n").unwrap();
    let c = SensorConfig::load_with_overrides(Some(&ours), &[]).unwrap();
    assert!(c.engine.all_matches && c.notices.is_empty());
}

#[test]
fn the_selection_switches_rules_off_and_on_by_name_and_tag() {
    use crate::rules::{EngineOptions, Selector};
    let count = |select: Vec<(Selector, bool)>| {
        let (engine, _) =
            crate::pipeline::load_rules(&[], EngineOptions { select, ..EngineOptions::default() }).unwrap();
        engine.rule_count()
    };
    let all = count(vec![]);
    assert!(all > 20);
    assert_eq!(count(vec![(Selector::Rule("*".into()), false)]), 0);
    let network = count(vec![(Selector::Rule("*".into()), false), (Selector::Tag("network".into()), true)]);
    assert!(network > 0 && network < all, "{network} of {all}");
    let one = count(vec![(Selector::Rule("*".into()), false), (Selector::Rule("Read credential file*".into()), true)]);
    assert_eq!(one, 1);
}
