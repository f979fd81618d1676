//! Kubernetes audit events: how many a second the rules evaluate (JSON text in, alerts out, on
//! one thread), and how many a second `sensor run`'s webhook takes and evaluates end to end
//! (HTTP on loopback, batches of 400 events as kube-apiserver's webhook backend sends by
//! default, 4 clients), with Falco's k8s_audit rules and with the built-in rules; and how
//! many a second the audit log (`k8s_audit.store`) keeps, in batches of 1,000 as its writer
//! does (the columns and the word index made from each event's JSON included), in a SQLite
//! file and in a real PostgreSQL database.
//!
//! `cargo bench -p sensor --bench audit [-- EVENTS]` (default 200,000). Prints one markdown
//! table. The mix: reads by service accounts (Metadata level), pod creations with their pod
//! (RequestResponse), execs, secret reads by people, 403s and role bindings.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use sensor::{
    k8s_audit::{AuditConfig, AuditEvent, AuditSource, ForbiddenBursts},
    pipeline::{DEFAULT_RULES, alert_queue, load_rules},
    rules::{Engine, EngineOptions, RuleSet, Scratch},
    store::audit::AuditRecord,
};
use serde_json::{Value, json};

const FALCO_AUDIT_RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/falco/k8s_audit_rules.yaml");

/// Event `n` of the mix, as the apiserver writes it.
fn event(n: usize) -> Value {
    let time = format!("2026-12-07T10:{:02}:{:02}.{:06}Z", n / 60_000 % 60, n / 1000 % 60, n % 1000 * 1000);
    let (user, verb, resource, sub, code, stage, body): (String, &str, &str, Option<&str>, u16, &str, Option<Value>) =
        match n % 10 {
            0..=4 => (
                format!("system:serviceaccount:app-{}:default", n % 40),
                "get",
                "configmaps",
                None,
                200,
                "ResponseComplete",
                None,
            ),
            5 | 6 => (
                "kubernetes-admin".into(),
                "create",
                "pods",
                None,
                201,
                "ResponseComplete",
                Some(json!({"kind": "Pod", "apiVersion": "v1", "metadata": {"name": format!("web-{n}")},
                    "spec": {"containers": [{"name": "app", "image": "nginx:1.27",
                        "securityContext": {"privileged": n % 20 == 5}}]}})),
            ),
            7 => ("alice".into(), "create", "pods", Some("exec"), 101, "ResponseStarted", None),
            8 => (format!("user-{}", n % 7), "list", "secrets", None, 403, "ResponseComplete", None),
            _ => (
                "alice".into(),
                "create",
                "rolebindings",
                None,
                201,
                "ResponseComplete",
                Some(json!({"kind": "RoleBinding", "roleRef": {"kind": "ClusterRole", "name": "edit"},
                    "subjects": [{"kind": "User", "name": "bob"}]})),
            ),
        };
    let mut ev = json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": if body.is_some() { "RequestResponse" } else { "Metadata" },
        "auditID": format!("5f0c8e2a-7c1d-4b8e-9d3a-{n:012}"), "stage": stage,
        "requestURI": format!("/api/v1/namespaces/app-{}/{resource}", n % 40), "verb": verb,
        "user": {"username": user, "groups": ["system:authenticated"]},
        "sourceIPs": ["10.0.0.7"], "userAgent": "kubectl/v1.31.0 (linux/amd64) kubernetes/9edcffc",
        "objectRef": {"resource": resource, "namespace": format!("app-{}", n % 40), "name": format!("obj-{}", n % 100), "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": time, "stageTimestamp": time,
        "annotations": {"authorization.k8s.io/decision": if code == 403 { "forbid" } else { "allow" }, "authorization.k8s.io/reason": ""}
    });
    if let Some(sub) = sub {
        ev["objectRef"]["subresource"] = sub.into();
    }
    if let Some(body) = body {
        ev["requestObject"] = body;
    }
    ev
}

fn engine(falco: bool) -> Engine {
    if falco {
        return load_rules(&[FALCO_AUDIT_RULES.into()], EngineOptions::default()).unwrap_or_else(|r| panic!("{r}")).0;
    }
    let mut set = RuleSet::default();
    for (name, text) in DEFAULT_RULES {
        set.load_str(name, text);
    }
    Engine::build(&set, EngineOptions::default()).0.expect("built-in rules")
}

/// Events a second through parsing and the rules on this thread, and the alerts.
fn evaluate(engine: &Engine, lines: &[String]) -> (f64, usize) {
    let mut scratch = Scratch::default();
    let mut bursts = ForbiddenBursts::default();
    let mut alerts = 0;
    let started = Instant::now();
    for line in lines {
        let mut ev = AuditEvent::from_json(serde_json::from_str(line).unwrap()).unwrap();
        bursts.observe(&mut ev);
        alerts += engine.process(&ev, &mut scratch).len();
    }
    (lines.len() as f64 / started.elapsed().as_secs_f64(), alerts)
}

/// Events a second the webhook takes and evaluates: `clients` posting `bodies` in turn.
async fn webhook(engine: Engine, bodies: Arc<Vec<String>>, per_body: usize, clients: usize) -> (f64, u64) {
    let config: AuditConfig =
        serde_json::from_value(json!({"webhook": {"address": "127.0.0.1:0"}, "queue": 10_000})).unwrap();
    let (tx, rx) = alert_queue(1 << 30);
    let none = sensor::outputs::OutputsConfig { outputs: Vec::new() };
    let stage = Arc::new(sensor::outputs::OutputStage::start(&none).await.unwrap());
    let publisher = rx.publish_to(stage);
    let source = AuditSource::start(&config, Arc::new(engine), tx).await.unwrap().unwrap();
    let url = format!("http://{}/k8s-audit", source.webhook_address().unwrap());
    sensor::outputs::install_crypto_provider();
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (client, url, bodies) = (client.clone(), url.clone(), bodies.clone());
        tasks.push(tokio::spawn(async move {
            let mut retried = 0u64;
            for body in bodies.iter().skip(c).step_by(clients) {
                loop {
                    let status = client.post(&url).body(body.clone()).send().await.unwrap().status();
                    if status == 200 {
                        break;
                    }
                    // 429: the queue was full; what it took stays taken (a few repeat).
                    retried += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            retried
        }));
    }
    let mut retried = 0;
    for t in tasks {
        retried += t.await.unwrap();
    }
    let total = (bodies.len() * per_body) as u64;
    while source.counters().evaluated < total {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let rate = source.counters().evaluated as f64 / started.elapsed().as_secs_f64();
    source.finish().await;
    drop(publisher);
    (rate, retried)
}

/// Events kept a second by the audit log `config` names, `events` stored in batches of
/// 1,000 (as parsed events, each made into its record as the writer does).
fn store(config: &sensor::store::StoreConfig, lines: &[String]) -> f64 {
    let mut log = sensor::store::audit::open(config).unwrap().log;
    let mut events: Vec<AuditEvent> =
        lines.iter().map(|l| AuditEvent::from_json(serde_json::from_str(l).unwrap()).unwrap()).collect();
    let started = Instant::now();
    let mut stored = 0;
    while !events.is_empty() {
        let batch = events.drain(..events.len().min(1000));
        let records: Vec<AuditRecord> = batch.map(AuditRecord::of).collect();
        stored += log.insert_audit(&records).unwrap();
    }
    assert_eq!(stored as usize, lines.len(), "every event is new");
    lines.len() as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let total: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(200_000);
    let lines: Vec<String> = (0..total).map(|n| event(n).to_string()).collect();
    let per_body = 400;
    let bodies: Arc<Vec<String>> = Arc::new(
        lines
            .chunks(per_body)
            .map(|chunk| {
                format!("{{\"kind\":\"EventList\",\"apiVersion\":\"audit.k8s.io/v1\",\"items\":[{}]}}", chunk.join(","))
            })
            .collect(),
    );
    let bytes: usize = lines.iter().map(String::len).sum();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    println!(
        "\n| audit events ({total}, {} bytes on average) | evaluated on one thread | through the webhook |",
        bytes / total
    );
    println!("|---|---|---|");
    for (name, falco) in [("Falco's k8s_audit_rules.yaml", true), ("built-in rules", false)] {
        let (rate, alerts) = evaluate(&engine(falco), &lines);
        let (hook, retried) = runtime.block_on(webhook(engine(falco), bodies.clone(), per_body, 4));
        println!(
            "| {name} | {:.0} events/s ({alerts} alerts) | {hook:.0} events/s ({retried} requests answered 429 and retried) |",
            rate
        );
    }
    let dir = std::env::temp_dir().join(format!("sensor-bench-audit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sqlite = sensor::store::StoreConfig::at(dir.join("audit.db"));
    let postgres = sensor::store::StoreConfig::postgres(sensor::store::pg_server::database("bench_audit"));
    println!("\n| audit log ({total} events, batches of 1,000) | events kept a second |");
    println!("|---|---|");
    println!("| SQLite file | {:.0} |", store(&sqlite, &lines));
    println!("| PostgreSQL | {:.0} |", store(&postgres, &lines));
    let _ = std::fs::remove_dir_all(&dir);
}
