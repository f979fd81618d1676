use serde_json::json;

use super::*;
use crate::rules::{Engine, EngineOptions, RuleSet, Severity, fields::resolve};

/// A pod created by alice: two containers (one privileged, one with a registry port in its
/// image), an init container, host paths, ports and a pod-level user.
fn pod_create() -> serde_json::Value {
    json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse",
        "auditID": "5f0c8e2a-7c1d-4b8e-9d3a-0e6f1b2c3d4e", "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/web/pods?fieldManager=kubectl-client-side-apply&dryRun=All&note=a%20b+c",
        "verb": "create",
        "user": {"username": "alice", "groups": ["devs", "system:authenticated"]},
        "sourceIPs": ["10.0.0.7", "192.168.1.1"], "userAgent": "kubectl/v1.31.0 (linux/amd64)",
        "objectRef": {"resource": "pods", "namespace": "web", "name": "shop", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 201},
        "requestObject": {
            "kind": "Pod", "apiVersion": "v1", "metadata": {"name": "shop", "namespace": "web"},
            "spec": {
                "securityContext": {"runAsUser": 1000},
                "containers": [
                    {"name": "app", "image": "nginx:1.27", "command": ["nginx", "-g"],
                     "securityContext": {"privileged": true, "runAsUser": 0, "capabilities": {"add": ["NET_ADMIN", "SYS_TIME"]}},
                     "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 443}]},
                    {"name": "sidecar", "image": "registry.local:5000/team/proxy@sha256:abcd"}
                ],
                "initContainers": [{"name": "init", "image": "busybox", "securityContext": {"privileged": false}}],
                "volumes": [
                    {"name": "sock", "hostPath": {"path": "/var/run/docker.sock", "type": "Socket"}},
                    {"name": "cfg", "configMap": {"name": "shop-config"}}
                ]
            }
        },
        "responseObject": {"kind": "Pod", "metadata": {"name": "shop"}},
        "requestReceivedTimestamp": "2026-12-07T10:00:00.000000Z",
        "stageTimestamp": "2026-12-07T10:00:00.012345Z",
        "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": "RBAC: allowed by RoleBinding"}
    })
}

/// The value of `name` (as written in a rule) in `ev`, rendered as alerts render it.
fn get(ev: &AuditEvent, name: &str) -> Option<String> {
    let (base, bracket) = match name.split_once('[') {
        Some((b, rest)) => (b, Some(rest.trim_end_matches(']'))),
        None => (name, None),
    };
    let r = resolve(base, bracket).unwrap_or_else(|e| panic!("{name}: {e}"));
    ev.field(r.id, r.arg.as_ref()).map(|v| v.to_string())
}

#[test]
fn reads_the_fields_of_a_pod_creation() {
    let ev = AuditEvent::from_json(pod_create()).unwrap().with_cluster_name("prod-eu");
    let cases = [
        ("ka.auditid", "5f0c8e2a-7c1d-4b8e-9d3a-0e6f1b2c3d4e"),
        ("ka.stage", "ResponseComplete"),
        ("ka.auth.decision", "allow"),
        ("ka.auth.reason", "RBAC: allowed by RoleBinding"),
        ("ka.user.name", "alice"),
        ("ka.user.groups", "devs system:authenticated"),
        ("ka.verb", "create"),
        ("ka.uri.param[fieldManager]", "kubectl-client-side-apply"),
        ("ka.uri.param[note]", "a b c"),
        ("ka.target.name", "shop"),
        ("ka.target.namespace", "web"),
        ("ka.target.resource", "pods"),
        ("ka.target.pod.name", "shop"),
        ("ka.req.pod.containers.image", "nginx:1.27 registry.local:5000/team/proxy@sha256:abcd"),
        ("ka.req.pod.containers.image[1]", "registry.local:5000/team/proxy@sha256:abcd"),
        // Cut at the first ':' as the plugin does: a registry's port loses the rest.
        ("ka.req.pod.containers.image.repository", "nginx registry.local"),
        ("ka.req.container.image", "nginx:1.27"),
        ("ka.req.container.image.repository", "nginx"),
        ("ka.req.pod.containers.name", "app sidecar"),
        ("ka.req.pod.containers.command", "nginx -g"),
        // Containers without the setting add nothing.
        ("ka.req.pod.containers.privileged", "true"),
        ("ka.req.container.privileged", "true"),
        ("ka.req.pod.containers.run_as_user", "0"),
        // The container's own, else the pod's.
        ("ka.req.pod.containers.eff_run_as_user", "0 1000"),
        ("ka.req.pod.containers.eff_run_as_group", "0 0"),
        ("ka.req.pod.containers.add_capabilities", "NET_ADMIN SYS_TIME"),
        ("ka.req.pod.containers.host_port", "8080 443"),
        ("ka.req.pod.initContainers.privileged", "false"),
        ("ka.req.pod.initContainers.image", "busybox"),
        ("ka.req.pod.run_as_user", "1000"),
        ("ka.req.pod.volumes.hostpath", "/var/run/docker.sock"),
        ("ka.req.volume.hostpath[/var/run/docker.sock]", "true"),
        ("ka.req.volume.hostpath[/var/run/*]", "true"),
        ("ka.req.volume.hostpath[/etc]", "false"),
        ("ka.req.pod.volumes.volume_type", "hostPath configMap"),
        ("ka.resp.name", "shop"),
        ("ka.response.code", "201"),
        ("ka.useragent", "kubectl/v1.31.0 (linux/amd64)"),
        ("ka.sourceips", "10.0.0.7 192.168.1.1"),
        ("ka.sourceips[1]", "192.168.1.1"),
        ("ka.cluster.name", "prod-eu"),
        ("jevt.value[/objectRef/namespace]", "web"),
        ("jevt.value[/requestObject/spec/volumes/1/configMap]", r#"{"name":"shop-config"}"#),
        ("jevt.rawtime", "1796637600012345000"),
        ("evt.time.iso8601", "2026-12-07T10:00:00.012345000Z"),
        ("evt.source", "k8s_audit"),
    ];
    for (name, want) in cases {
        assert_eq!(get(&ev, name).as_deref(), Some(want), "{name}");
    }
    // Absent: keys the event lacks, and every syscall field.
    for name in [
        "ka.impuser.name",
        "ka.target.subresource",
        "ka.req.pod.ephemeralContainers.image",
        "ka.req.binding.role",
        "ka.req.pod.containers.image[5]",
        "jevt.value[/nope]",
        "proc.name",
        "evt.type",
    ] {
        assert_eq!(get(&ev, name), None, "{name}");
    }
    assert_eq!(
        get(&ev, "jevt.obj").map(|j| serde_json::from_str::<serde_json::Value>(&j).unwrap()),
        Some(pod_create())
    );
}

#[test]
fn reads_role_bindings_and_roles() {
    let mut binding = pod_create();
    binding["objectRef"] = json!({"resource": "clusterrolebindings", "name": "ops"});
    binding["requestObject"] = json!({
        "kind": "ClusterRoleBinding", "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [
            {"kind": "User", "name": "bob"}, {"kind": "Group", "name": "ops"},
            {"kind": "ServiceAccount", "name": "deployer", "namespace": "ci"}
        ],
        "rules": [{"apiGroups": [""], "resources": ["pods", "secrets"], "verbs": ["get", "*"]},
                  {"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]
    });
    let ev = AuditEvent::from_json(binding).unwrap();
    for (name, want) in [
        ("ka.req.binding.role", "cluster-admin"),
        ("ka.req.binding.subjects.user_names", "bob"),
        ("ka.req.binding.subjects.group_names", "ops"),
        ("ka.req.binding.subjects.serviceaccount_names", "deployer"),
        ("ka.req.binding.subjects.serviceaccount_ns_names", "ci:deployer"),
        ("ka.req.binding.subject.has_name[bob]", "true"),
        ("ka.req.binding.subject.has_name[eve]", "false"),
        ("ka.req.role.rules.verbs", "get * get"),
        ("ka.req.role.rules.verbs[1]", "get"),
        ("ka.req.role.rules.resources", "pods secrets"),
        ("ka.req.role.rules.nonResourceURLs", "/metrics"),
        ("ka.target.pod.name", ""),
    ] {
        let got = get(&ev, name);
        if want.is_empty() {
            assert_eq!(got, None, "{name}");
        } else {
            assert_eq!(got.as_deref(), Some(want), "{name}");
        }
    }
}

#[test]
fn refuses_what_is_not_an_audit_event() {
    let mut list = pod_create();
    list["kind"] = "EventList".into();
    let mut beta = pod_create();
    beta["apiVersion"] = "audit.k8s.io/v1beta1".into();
    let mut alpha = pod_create();
    alpha["apiVersion"] = "audit.k8s.io/v1alpha1".into();
    let mut timeless = pod_create();
    timeless.as_object_mut().unwrap().retain(|k, _| !k.ends_with("Timestamp"));
    assert!(AuditEvent::from_json(beta).is_ok());
    for (ev, says) in [
        (json!([1]), "not an array"),
        (list, "not EventList"),
        (alpha, "unknown audit apiVersion 'audit.k8s.io/v1alpha1'"),
        (timeless, "neither"),
    ] {
        let err = AuditEvent::from_json(ev).unwrap_err();
        assert!(err.contains(says), "{err}");
    }
}

fn build(rules: &str) -> (Option<Engine>, Vec<crate::rules::Diagnostic>) {
    let mut set = RuleSet::default();
    set.load_str("audit.yaml", rules);
    Engine::build(&set, EngineOptions::default())
}

#[test]
fn audit_rules_alert_with_their_fields_and_refuse_syscall_fields() {
    let (engine, diags) = build(
        "- rule: Pod with host socket\n  desc: d\n  source: k8s_audit\n  priority: WARNING\n  \
         condition: ka.verb=create and ka.req.volume.hostpath[/var/run/docker.sock]=true\n  \
         output: user=%ka.user.name pod=%ka.target.namespace/%ka.target.name images=%ka.req.pod.containers.image\n",
    );
    assert!(diags.is_empty(), "{diags:?}");
    let engine = engine.unwrap();
    let ev = AuditEvent::from_json(pod_create()).unwrap();
    let alerts = engine.process_one(&ev);
    assert_eq!(alerts.len(), 1);
    assert_eq!((alerts[0].source.as_str(), alerts[0].time_ns), ("k8s_audit", 1_796_637_600_012_345_000));
    // A list field as Falco renders it, in the text and in the output fields.
    let images = "(nginx:1.27,registry.local:5000/team/proxy@sha256:abcd)";
    assert_eq!(alerts[0].message, format!("user=alice pod=web/shop images={images}"));
    let json = alerts[0].to_json();
    assert_eq!(json["output_fields"]["ka.req.pod.containers.image"], images);
    // The kernel need not capture anything more for audit rules.
    assert_eq!(engine.event_types(), Some(Default::default()));

    let (engine, diags) = build(
        "- rule: r\n  desc: d\n  source: k8s_audit\n  priority: WARNING\n  condition: proc.name=kubectl\n  output: o\n",
    );
    assert!(engine.is_none());
    assert!(
        diags
            .iter()
            .any(|d| d.severity == Severity::Error && d.message.contains("'proc.name' is not a field of k8s_audit")),
        "{diags:?}"
    );
    let (engine, diags) = build("- rule: r\n  desc: d\n  priority: WARNING\n  condition: ka.verb=get\n  output: o\n");
    assert!(engine.is_none());
    assert!(diags.iter().any(|d| d.message.contains("'ka.verb' is not a field of syscall")), "{diags:?}");
}

#[test]
fn a_rule_of_an_unknown_source_is_an_error() {
    let (engine, diags) = build(
        "- rule: r\n  desc: d\n  source: aws_cloudtrail\n  priority: WARNING\n  condition: ct.name=x\n  output: o\n",
    );
    assert!(engine.is_none());
    let d = diags.iter().find(|d| d.severity == Severity::Error).expect("an error");
    assert!(
        d.message.contains("source 'aws_cloudtrail' is not an event source of this sensor (syscall, k8s_audit)"),
        "{d:?}"
    );
}

/// A webhook (plain HTTP, a token) in front of a rule that alerts on every event, with a
/// queue of `queue` events and bounds of 8 KiB an event and `max_request` bytes a request.
async fn webhook(queue: usize, max_request: usize) -> (AuditSource, crate::pipeline::AlertReceiver, String) {
    // SAFETY: tests of this module set it to the same value.
    unsafe { std::env::set_var("SENSOR_TEST_AUDIT_TOKEN", "s3cret") };
    let (engine, diags) = build(
        "- rule: Every audit event\n  desc: d\n  source: k8s_audit\n  priority: NOTICE\n  \
         condition: ka.auditid exists\n  output: id=%ka.auditid\n",
    );
    assert!(diags.is_empty(), "{diags:?}");
    let config: AuditConfig = serde_json::from_value(json!({
        "webhook": {"address": "127.0.0.1:0", "token": {"env": "SENSOR_TEST_AUDIT_TOKEN"},
                    "max_event_bytes": 8192, "max_request_bytes": max_request},
        "queue": queue,
    }))
    .unwrap();
    let (tx, rx) = crate::pipeline::alert_queue(1 << 30);
    let source = AuditSource::start(&config, std::sync::Arc::new(engine.unwrap()), tx).await.unwrap().unwrap();
    let url = format!("http://{}/k8s-audit", source.webhook_address().unwrap());
    (source, rx, url)
}

fn event(id: usize) -> serde_json::Value {
    let mut ev = pod_create();
    ev["auditID"] = format!("event-{id}").into();
    ev
}

/// [`event`] as logged at the Metadata level (no request or response object): ~700 bytes.
fn metadata_event(id: usize) -> serde_json::Value {
    let mut ev = event(id);
    let map = ev.as_object_mut().unwrap();
    map.remove("requestObject");
    map.remove("responseObject");
    map.insert("level".into(), "Metadata".into());
    ev
}

fn list(events: impl IntoIterator<Item = serde_json::Value>) -> String {
    json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": events.into_iter().collect::<Vec<_>>()})
        .to_string()
}

/// A client of the webhook (reqwest with the crypto provider the sensor installs).
fn client() -> reqwest::Client {
    crate::outputs::install_crypto_provider();
    reqwest::Client::new()
}

async fn post(client: &reqwest::Client, url: &str, body: String, token: Option<&str>) -> (u16, String) {
    let mut request = client.post(url).body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("the webhook answers");
    (response.status().as_u16(), response.text().await.unwrap_or_default())
}

/// Waits until the rules evaluated every event taken.
async fn drained(source: &AuditSource) -> AuditCounters {
    for _ in 0..200 {
        let c = source.counters();
        if c.evaluated == c.received {
            return c;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    source.counters()
}

fn refused(c: &AuditCounters, why: &str) -> u64 {
    c.refused.iter().find(|(w, _)| *w == why).map_or(0, |(_, n)| *n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_answers_each_bad_request_as_documented_and_counts_it() {
    let (source, mut alerts, url) = webhook(10_000, 1 << 20).await;
    let client = client();
    let token = Some("s3cret");
    let one = list([event(1)]);
    assert_eq!(post(&client, &url, one.clone(), None).await.0, 401);
    assert_eq!(post(&client, &url, one.clone(), Some("wrong")).await.0, 401);
    assert_eq!(post(&client, &url, "{\"kind\": \"EventList\", \"items\": [".into(), token).await.0, 400);
    assert_eq!(post(&client, &url, json!({"kind": "Pod"}).to_string(), token).await.0, 400);
    let mut alpha = event(2);
    alpha["apiVersion"] = "audit.k8s.io/v1alpha1".into();
    let (status, answer) = post(&client, &url, list([alpha]), token).await;
    assert_eq!((status, answer.as_str()), (400, "taken 0, queue full 0, malformed 1, too large 0\n"));
    // A request over 1 MiB is refused whole; an event over 8 KiB alone.
    let (status, _) = post(&client, &url, list((0..1_000).map(event)), token).await;
    assert_eq!(status, 413);
    let mut big = event(3);
    big["annotations"]["note"] = "x".repeat(10_000).into();
    let (status, answer) = post(&client, &url, list([big, event(4)]), token).await;
    assert_eq!((status, answer.as_str()), (200, "taken 1, queue full 0, malformed 0, too large 1\n"));
    // A single Event is taken as well as a list.
    assert_eq!(post(&client, &url, event(5).to_string(), token).await.0, 200);
    // As the webhook backend sends them: items without the list's kind and apiVersion.
    let mut bare = event(6);
    bare.as_object_mut().unwrap().retain(|k, _| k != "kind" && k != "apiVersion");
    assert_eq!(post(&client, &url, list([bare.clone()]), token).await.0, 200);
    let unknown = json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v2", "items": [bare]});
    assert_eq!(post(&client, &url, unknown.to_string(), token).await.0, 400);

    let c = drained(&source).await;
    assert_eq!((c.received, c.evaluated, c.requests), (3, 3, 10));
    assert!(c.request_seconds > 0.0 && c.request_seconds < 10.0, "{c:?}");
    // The request over its bound and the event over its own.
    for (why, n) in [("unauthorized", 2), ("malformed", 4), ("too_large", 2), ("queue_full", 0)] {
        assert_eq!(refused(&c, why), n, "{why}: {c:?}");
    }
    let ids: Vec<String> = std::iter::from_fn(|| alerts.try_recv()).map(|a| a.message).collect();
    assert_eq!(ids, ["id=event-4", "id=event-5", "id=event-6"]);
    source.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_events_in_one_request_and_a_flood_from_many_clients_lose_nothing_uncounted() {
    // 10,000 events in one request, under Falco's default 12 MiB.
    let (source, mut alerts, url) = webhook(10_000, 12 << 20).await;
    let client = client();
    let big_list = list((0..10_000).map(metadata_event));
    let (status, answer) = post(&client, &url, big_list, Some("s3cret")).await;
    assert!(status == 200 || status == 429, "{status} {answer}");
    let c = drained(&source).await;
    assert_eq!(c.received + refused(&c, "queue_full"), 10_000, "{c:?}");
    assert_eq!(std::iter::from_fn(|| alerts.try_recv()).count() as u64, c.received);

    // 16 clients at once, 20 batches of 100 each: what the queue cannot take is answered 429
    // and counted; every event taken is evaluated and alerted.
    let before = source.counters();
    let mut clients = Vec::new();
    for c in 0..16 {
        let (client, url) = (client.clone(), url.clone());
        clients.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for b in 0..20 {
                let body = list((0..100).map(|i| metadata_event(100_000 + c * 10_000 + b * 100 + i)));
                statuses.push(post(&client, &url, body, Some("s3cret")).await.0);
            }
            statuses
        }));
    }
    let mut statuses = Vec::new();
    for c in clients {
        statuses.extend(c.await.unwrap());
    }
    assert!(statuses.iter().all(|s| *s == 200 || *s == 429), "{statuses:?}");
    let c = drained(&source).await;
    let taken = c.received - before.received;
    let full = refused(&c, "queue_full") - refused(&before, "queue_full");
    assert_eq!(taken + full, 32_000, "{c:?}");
    assert_eq!(std::iter::from_fn(|| alerts.try_recv()).count() as u64, taken);
    source.finish().await;
}

#[test]
fn forbidden_answers_count_per_user_over_a_minute_and_stop_at_their_bound() {
    let mut bursts = ForbiddenBursts::default();
    let answer = |user: &str, code: u64, second: u64| {
        let mut ev = pod_create();
        ev["user"]["username"] = user.into();
        ev["responseStatus"]["code"] = code.into();
        ev["stageTimestamp"] =
            format!("2026-12-07T{:02}:{:02}:{:02}Z", 10 + second / 3600, second / 60 % 60, second % 60).into();
        AuditEvent::from_json(ev).unwrap()
    };
    let mut seen = |user: &str, code: u64, second: u64| {
        let mut ev = answer(user, code, second);
        bursts.observe(&mut ev);
        ev.forbidden_recent
    };
    assert_eq!(seen("eve", 403, 0), Some(1));
    assert_eq!(seen("eve", 201, 1), Some(1), "a success counts nothing");
    assert_eq!(seen("bob", 403, 2), Some(1), "another user's count is its own");
    assert_eq!(seen("eve", 403, 59), Some(2));
    assert_eq!(seen("eve", 403, 60), Some(2), "the first answer is a minute old");
    for s in 0..1_500 {
        seen("flood", 403, 100 + s / 100);
    }
    assert_eq!(seen("flood", 403, 115), Some(1_000), "at most 1,000 answers a user");
}

/// Every field of the k8saudit plugin's table (vendored from its README) is supplied here
/// with the plugin's type, argument and list flag: a rule written for Falco names nothing
/// this sensor refuses, and its outputs render lists as Falco's do.
#[test]
fn every_field_of_the_k8saudit_plugin_is_supplied_as_the_plugin_declares_it() {
    use crate::rules::fields::{ArgKind, FieldScope, FieldType, by_name};
    let table = include_str!("../../../rules/falco/k8saudit_fields.md");
    let mut rows = 0;
    for (n, line) in table.lines().enumerate() {
        let cells: Vec<&str> = line.split('|').map(|c| c.trim().trim_matches('`')).collect();
        let [name, ty, arg] = cells[..] else { panic!("k8saudit_fields.md:{}: {line}", n + 1) };
        let field = by_name(name).unwrap_or_else(|| panic!("{name} is not a field here"));
        let info = field.info();
        assert_eq!(info.scope, FieldScope::K8sAudit, "{name}");
        assert_eq!(info.ty, FieldType::Str, "{name}: the plugin's fields are strings");
        assert_eq!(info.list, ty == "string (list)", "{name}: {ty}");
        let want = match arg {
            "None" => ArgKind::None,
            "Index" => ArgKind::OptIndex,
            "Key, Required" => ArgKind::Key,
            other => panic!("{name}: argument {other}"),
        };
        assert_eq!(info.arg, want, "{name}");
        rows += 1;
    }
    assert_eq!(rows, 100);
}
