//! The audit log in both engines (a SQLite file, a real PostgreSQL) against what an operator
//! searching it checks: a fixture spread over 8 days, retention of 7, and each filter
//! giving exactly the events it names.

use super::*;
use crate::store::{StoreConfig, pg_server};

const HOUR: u64 = 3_600 * 1_000_000_000;
const DAY: u64 = 24 * HOUR;
/// 2026-12-06T00:00:00Z.
const T0: u64 = 1_796_515_200 * 1_000_000_000;

use crate::test_dir::TestDir as Dir;

/// Each engine's log, by the engine's name.
type Logs = Vec<(&'static str, Box<dyn AuditLog>)>;

/// One log of each engine for test `name`.
fn logs(name: &str, max_age: std::time::Duration) -> (Dir, Logs) {
    let dir = Dir::new(&format!("audit-{name}"));
    let sqlite = StoreConfig { max_age, ..StoreConfig::at(dir.0.join("audit.db")) };
    let postgres = StoreConfig { max_age, ..StoreConfig::postgres(pg_server::database(&format!("audit_{name}"))) };
    let logs = vec![("sqlite", open(&sqlite).unwrap().log), ("postgres", open(&postgres).unwrap().log)];
    (dir, logs)
}

const USERS: [(&str, &[&str]); 4] = [
    ("alice", &["system:authenticated", "dev"]),
    ("bob@example.com", &["system:authenticated", "ops"]),
    ("system:serviceaccount:kube-system:deployment-controller", &["system:serviceaccounts"]),
    ("system:anonymous", &["system:unauthenticated"]),
];
const ACTIONS: [(&str, &str, Option<&str>, i64); 6] = [
    ("get", "secrets", None, 200),
    ("delete", "deployments", None, 200),
    ("create", "pods", Some("exec"), 101),
    ("list", "configmaps", None, 403),
    ("patch", "deployments", Some("scale"), 200),
    ("create", "clusterrolebindings", None, 201),
];

/// Audit event `i` of the fixture: one every 3 hours from `start`, users, verbs, resources,
/// namespaces, codes, addresses and agents in turn.
fn fixture_event(i: usize, start: u64) -> serde_json::Value {
    let (user, groups) = USERS[i % USERS.len()];
    let (verb, resource, subresource, code) = ACTIONS[i % ACTIONS.len()];
    let namespace = ["shop", "kube-system", "web"][i % 3];
    let time = crate::rules::format_iso8601(start + i as u64 * 3 * HOUR);
    let agent = if i.is_multiple_of(2) {
        "kubectl/v1.31.0 (linux/amd64) kubernetes/9edcffc"
    } else {
        "argocd-application-controller/v2.13"
    };
    let mut object = serde_json::json!({"resource": resource, "namespace": namespace, "name": format!("obj-{}", i % 5), "apiVersion": "v1"});
    if let Some(sub) = subresource {
        object["subresource"] = sub.into();
    }
    serde_json::json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": if i.is_multiple_of(4) { "RequestResponse" } else { "Metadata" },
        "auditID": format!("a0d1-{i:04}"), "stage": "ResponseComplete",
        "requestURI": format!("/api/v1/namespaces/{namespace}/{resource}/obj-{}", i % 5), "verb": verb,
        "user": {"username": user, "groups": groups},
        "sourceIPs": [format!("10.0.{}.7", i % 3), "192.168.1.1"], "userAgent": agent,
        "objectRef": object,
        "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": time, "stageTimestamp": time,
        "annotations": {"authorization.k8s.io/decision": if code == 403 { "forbid" } else { "allow" },
                        "note": format!("change-ticket OPS-{}", 100 + i)}
    })
}

fn record(json: serde_json::Value) -> AuditRecord {
    AuditRecord::of(AuditEvent::from_json(json).unwrap())
}

/// The fixture: 64 events over 8 days from `T0`.
fn fixture() -> Vec<AuditRecord> {
    (0..64).map(|i| record(fixture_event(i, T0))).collect()
}

/// The audit IDs a search finds, walking every page of `limit`.
fn all_found(log: &dyn AuditLog, query: &AuditQuery) -> Vec<String> {
    let mut found = Vec::new();
    let mut query = query.clone();
    loop {
        let page = log.search_audit(&query).unwrap();
        found.extend(page.events.iter().map(|e| e.audit_id.clone()));
        match page.next {
            Some(next) => query.after = Some(next),
            None => return found,
        }
    }
}

#[test]
fn every_filter_finds_exactly_its_events_over_a_week_and_the_eighth_day_is_gone() {
    let (_dir, mut logs) = logs("week", std::time::Duration::from_secs(7 * 86_400));
    let events = fixture();
    // "Now" is the end of the eighth day: the first day is past the 7 days kept.
    let now = T0 + 8 * DAY;
    let kept: Vec<&AuditRecord> = events.iter().filter(|e| e.time_ns >= now - 7 * DAY).collect();
    assert_eq!(events.len() - kept.len(), 8, "the fixture's first day holds 8 events");
    let ids = |select: &dyn Fn(&AuditRecord) -> bool| -> Vec<String> {
        // Newest first, as a search gives them.
        kept.iter().rev().filter(|e| select(e)).map(|e| e.audit_id.clone()).collect()
    };
    type Case = (&'static str, AuditQuery, Box<dyn Fn(&AuditRecord) -> bool>);
    let q = AuditQuery::default;
    let cases: Vec<Case> = vec![
        ("everything", q(), Box::new(|_| true)),
        (
            "a time range",
            AuditQuery { from_ns: Some(T0 + 2 * DAY), to_ns: Some(T0 + 3 * DAY + 6 * HOUR), ..q() },
            Box::new(|e| e.time_ns >= T0 + 2 * DAY && e.time_ns < T0 + 3 * DAY + 6 * HOUR),
        ),
        ("a user", AuditQuery { users: vec!["alice".into()], ..q() }, Box::new(|e| e.user == "alice")),
        (
            "a group",
            AuditQuery { groups: vec!["ops".into()], ..q() },
            Box::new(|e| e.groups.contains(&"ops".to_owned())),
        ),
        (
            "a group is whole, not a prefix",
            AuditQuery { groups: vec!["system:authenticate".into()], ..q() },
            Box::new(|_| false),
        ),
        (
            "two verbs",
            AuditQuery { verbs: vec!["delete".into(), "patch".into()], ..q() },
            Box::new(|e| e.verb == "delete" || e.verb == "patch"),
        ),
        (
            "a resource and a namespace",
            AuditQuery { resources: vec!["deployments".into()], namespaces: vec!["shop".into()], ..q() },
            Box::new(|e| e.resource.as_deref() == Some("deployments") && e.namespace.as_deref() == Some("shop")),
        ),
        (
            "a subresource",
            AuditQuery { subresources: vec!["exec".into()], ..q() },
            Box::new(|e| e.subresource.as_deref() == Some("exec")),
        ),
        (
            "an object name",
            AuditQuery { names: vec!["obj-3".into()], ..q() },
            Box::new(|e| e.name.as_deref() == Some("obj-3")),
        ),
        ("a response code", AuditQuery { codes: vec![403], ..q() }, Box::new(|e| e.code == Some(403))),
        (
            "a source IP",
            AuditQuery { source_ips: vec!["10.0.2.7".into()], ..q() },
            Box::new(|e| e.source_ips.contains(&"10.0.2.7".to_owned())),
        ),
        (
            "a user agent's beginning",
            AuditQuery { user_agents: vec!["argocd".into()], ..q() },
            Box::new(|e| e.user_agent.as_deref().is_some_and(|a| a.starts_with("argocd"))),
        ),
        (
            "an audit ID",
            AuditQuery { audit_ids: vec!["a0d1-0042".into()], ..q() },
            Box::new(|e| e.audit_id == "a0d1-0042"),
        ),
        (
            "text with a dash, any case",
            AuditQuery { text: Some("ops-142".into()), ..q() },
            Box::new(|e| e.audit_id == "a0d1-0042"),
        ),
        (
            "text of a request URI",
            AuditQuery { text: Some("/namespaces/web/secrets".into()), ..q() },
            Box::new(|e| e.text("requestURI").is_some_and(|u| u.contains("/namespaces/web/secrets"))),
        ),
        (
            "who deleted a deployment in a day",
            AuditQuery {
                verbs: vec!["delete".into()],
                resources: vec!["deployments".into()],
                from_ns: Some(T0 + 4 * DAY),
                to_ns: Some(T0 + 5 * DAY),
                ..q()
            },
            Box::new(|e| e.verb == "delete" && e.time_ns >= T0 + 4 * DAY && e.time_ns < T0 + 5 * DAY),
        ),
    ];
    for (engine, log) in &mut logs {
        assert_eq!(log.insert_audit(&events).unwrap(), 64, "{engine}");
        let removed = log.retain_audit(now).unwrap();
        assert_eq!(removed.expired, 8, "{engine}: the oldest day is gone");
        assert_eq!(log.audit_usage().unwrap().alerts, 56, "{engine}");
        for (name, query, select) in &cases {
            let want = ids(select.as_ref());
            // Small pages: paging neither skips nor repeats.
            let got = all_found(log.as_ref(), &AuditQuery { limit: 5, ..query.clone() });
            assert_eq!(got, want, "{engine}: {name}");
            let oldest = all_found(log.as_ref(), &AuditQuery { limit: 7, order: Order::OldestFirst, ..query.clone() });
            assert_eq!(oldest, want.iter().rev().cloned().collect::<Vec<_>>(), "{engine}: {name}, oldest first");
        }
        // Not vacuous: the filters above each found some events, and not all of them.
        assert!(ids(&|e| e.code == Some(403)).len() < kept.len());
        assert!(!ids(&|e| e.subresource.as_deref() == Some("exec")).is_empty());
        // One event by its id, whole.
        let first = log.search_audit(&AuditQuery { limit: 1, ..q() }).unwrap().events.remove(0);
        let got = log.get_audit(first.id).unwrap().unwrap();
        assert_eq!(got, first);
        assert_eq!(got.json, events.iter().find(|e| e.audit_id == got.audit_id).unwrap().json);
        assert_eq!(log.get_audit(i64::MAX).unwrap(), None);
    }
}

#[test]
fn an_event_given_twice_is_stored_once_and_a_reused_audit_id_is_not_a_repeat() {
    let (_dir, mut logs) = logs("twice", std::time::Duration::from_secs(7 * 86_400));
    let events: Vec<AuditRecord> = (0..10).map(|i| record(fixture_event(i, T0))).collect();
    for (engine, log) in &mut logs {
        assert_eq!(log.insert_audit(&events).unwrap(), 10, "{engine}");
        // A retried batch, with one new event.
        let mut retried = events[5..].to_vec();
        retried.push(record(fixture_event(10, T0)));
        assert_eq!(log.insert_audit(&retried).unwrap(), 1, "{engine}");
        assert_eq!(all_found(log.as_ref(), &AuditQuery::default()).len(), 11, "{engine}");
        // The same audit ID at another stage is another event.
        let mut started = fixture_event(3, T0);
        started["stage"] = "ResponseStarted".into();
        assert_eq!(log.insert_audit(&[record(started)]).unwrap(), 1, "{engine}");
        // A client may set the Audit-ID header: a request reusing a stored event's audit ID
        // and stage, at the same time, is still kept, and found by its audit ID.
        let mut reused = fixture_event(4, T0);
        reused["requestURI"] = "/api/v1/namespaces/kube-system/secrets/admin-token".into();
        reused["verb"] = "get".into();
        assert_eq!(log.insert_audit(&[record(reused)]).unwrap(), 1, "{engine}");
        let same_id = AuditQuery { audit_ids: vec!["a0d1-0004".into()], ..AuditQuery::default() };
        assert_eq!(all_found(log.as_ref(), &same_id).len(), 2, "{engine}");
        let text = AuditQuery { text: Some("admin-token".into()), ..AuditQuery::default() };
        assert_eq!(all_found(log.as_ref(), &text), ["a0d1-0004"], "{engine}");
    }
}

#[test]
fn size_retention_keeps_the_newest_events() {
    let dir = Dir::new("audit-size");
    let config = StoreConfig { max_size: Some(256 << 10), ..StoreConfig::at(dir.0.join("audit.db")) };
    let (mut log, _) = SqliteAuditLog::open(&dir.0.join("audit.db"), &config).unwrap();
    let events: Vec<AuditRecord> = (0..2000).map(|i| record(fixture_event(i, T0))).collect();
    log.insert_audit(&events).unwrap();
    let removed = log.retain_audit(T0 + 2000 * 3 * HOUR).unwrap();
    let usage = log.audit_usage().unwrap();
    assert!(removed.over_size > 0 && usage.bytes <= 256 << 10, "{removed:?} {usage:?}");
    assert_eq!(usage.alerts + removed.over_size + removed.expired, 2000);
    // What is left is the newest.
    let oldest =
        log.search_audit(&AuditQuery { order: Order::OldestFirst, limit: 1, ..AuditQuery::default() }).unwrap();
    let newest = log.search_audit(&AuditQuery { limit: 1, ..AuditQuery::default() }).unwrap();
    assert_eq!(newest.events[0].audit_id, "a0d1-1999");
    assert!(oldest.events[0].time_ns > T0);
}

#[test]
fn the_keep_filter_selects_levels_and_verbs() {
    let event = |level: &str, verb: &str| {
        let mut json = fixture_event(0, T0);
        json["level"] = level.into();
        json["verb"] = verb.into();
        AuditEvent::from_json(json).unwrap()
    };
    let all = Keep::default();
    assert!(all.keeps(&event("Metadata", "watch")));
    let keep = Keep { levels: vec![Level::Request, Level::RequestResponse], verbs: vec![] };
    assert!(keep.keeps(&event("Request", "get")));
    assert!(!keep.keeps(&event("Metadata", "get")));
    let writes = Keep { levels: vec![], verbs: vec!["create".into(), "delete".into()] };
    assert!(writes.keeps(&event("Metadata", "delete")));
    assert!(!writes.keeps(&event("RequestResponse", "list")));
    // A level that is not one of kube-apiserver's is refused where it is written.
    let config = "k8s_audit:\n  keep:\n    levels: [Requests]\n";
    let e = crate::config::SensorConfig::parse(config).unwrap_err().to_string();
    assert!(e.starts_with("3:") && e.contains("Requests"), "{e}");
}

#[test]
fn a_reader_refuses_a_file_that_is_not_an_audit_log() {
    let dir = Dir::new("audit-foreign");
    let alerts = dir.0.join("alerts.db");
    crate::store::SqliteStore::open(&alerts, &StoreConfig::at(&alerts)).unwrap();
    let e = SqliteAuditLog::open_read_only(&alerts).unwrap_err().to_string();
    assert!(e.contains("not an audit log"), "{e}");
    let e = SqliteAuditLog::open_read_only(&dir.0.join("none.db")).unwrap_err().to_string();
    assert!(e.contains("no audit log"), "{e}");
}

#[test]
fn every_parameter_named_is_read_and_a_bad_value_is_named() {
    let sample = |name: &str| match name {
        "since" => "24h",
        "from" | "to" => "2026-12-01",
        "code" | "limit" => "403",
        "after" => "1796515200000000000-7",
        "order" => "oldest",
        _ => "x",
    };
    for (name, _) in PARAMETERS {
        let query = AuditQuery::from_params(&[(name.to_owned(), sample(name).to_owned())]).unwrap();
        assert_ne!(query, AuditQuery::default(), "`{name}` is read");
    }
    let q = AuditQuery::from_params(&[
        ("verb".into(), "get".into()),
        ("verb".into(), "list".into()),
        ("code".into(), " 404 ".into()),
        ("user".into(), "".into()),
    ])
    .unwrap();
    assert_eq!((q.verbs.len(), q.codes.as_slice(), q.users.len()), (2, &[404][..], 0));
    for (name, bad) in [("code", "forbidden"), ("from", "yesterday"), ("limit", "many"), ("order", "up")] {
        let e = AuditQuery::from_params(&[(name.into(), bad.into())]).unwrap_err();
        assert!(e.starts_with(&format!("{name}: ")), "{e}");
    }
}

#[test]
fn a_corrupt_log_file_is_set_aside_and_a_new_log_begun() {
    let dir = Dir::new("audit-corrupt");
    let path = dir.0.join("audit.db");
    let garbage = b"not a database, a hostile or damaged file".repeat(200);
    std::fs::write(&path, &garbage).unwrap();
    let config = StoreConfig::at(&path);
    let opened = open(&config).unwrap();
    let message = opened.set_aside.expect("the operator is told");
    assert!(message.contains("was unusable") && message.contains(".corrupt-"), "{message}");
    let aside: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().contains("audit.db.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1);
    assert_eq!(std::fs::read(&aside[0]).unwrap(), garbage, "the old file is kept as it was");
    // The new log keeps events.
    let mut log = opened.log;
    log.insert_audit(&[record(fixture_event(0, T0))]).unwrap();
    assert_eq!(log.audit_usage().unwrap().alerts, 1);
    // Opened again, a sound log is kept.
    drop(log);
    assert!(open(&config).unwrap().set_aside.is_none());
}
