//! Kubernetes audit events into a real `sensor run` with Falco's k8s_audit rules: an
//! `EventList` over HTTPS with a client certificate (curl, as kube-apiserver's webhook
//! backend posts it) and lines of an audit log that is rotated in the middle; the alerts
//! come out on stdout with their `ka.*` fields and are kept by the store output, what is
//! refused is answered and counted; and a flood of batches from many clients, refused and
//! counted while a syscall alert still arrives.
//! Needs root (a real sensor).

#[path = "../sensor/tests/peers/pki.rs"]
mod pki;

use std::{
    io::Write as _,
    process::Command,
    time::{Duration, Instant},
};

use sensor::store::{
    AlertStore as _, Order, Query, SqliteStore,
    audit::{AuditLog as _, AuditQuery, SqliteAuditLog},
};
use sensor_tests::{alert_stream, await_alert, free_loopback_port, scrape, start_sensor, temp_path};
use serde_json::{Value, json};

/// A user the rules allow (kubeadm's admin), so that each event meets its own rule first
/// (Falco's rule matching stops at the first rule that matches, and "Disallowed K8s User"
/// comes first).
const ADMIN: &str = "kubernetes-admin";

const AUDIT_RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/falco/k8s_audit_rules.yaml");

/// A pod `name` created in `web` by `user`, its container privileged or not, as the
/// apiserver logs it at RequestResponse level when the response completes.
fn pod_create(user: &str, name: &str, privileged: bool) -> Value {
    json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse",
        "auditID": format!("0b7c6a1e-{name}"), "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/web/pods?fieldManager=kubectl-create", "verb": "create",
        "user": {"username": user, "groups": ["system:authenticated"]},
        "sourceIPs": ["10.0.0.7"], "userAgent": "kubectl/v1.31.0 (linux/amd64) kubernetes/9edcffc",
        "objectRef": {"resource": "pods", "namespace": "web", "name": name, "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 201},
        "requestObject": {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": name, "namespace": "web"},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.27",
                "securityContext": {"privileged": privileged}}]}},
        "responseObject": {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": name, "namespace": "web"}},
        "requestReceivedTimestamp": "2026-12-07T10:00:00.000000Z", "stageTimestamp": "2026-12-07T10:00:00.012000Z",
        "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""}
    })
}

/// `user` starting a `kubectl exec` into pod `pod` (logged when the stream starts).
fn exec(user: &str, pod: &str) -> Value {
    let id = format!("8147b882-{pod}");
    json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Request",
        "auditID": id, "stage": "ResponseStarted",
        "requestURI": format!("/api/v1/namespaces/shop/pods/{pod}/exec?command=sh&container=web&stdin=true"),
        "verb": "create", "user": {"username": user, "groups": ["system:authenticated"]},
        "sourceIPs": ["10.0.0.8"], "userAgent": "kubectl/v1.31.0 (linux/amd64) kubernetes/9edcffc",
        "objectRef": {"resource": "pods", "namespace": "shop", "name": pod, "apiVersion": "v1", "subresource": "exec"},
        "responseStatus": {"metadata": {}, "code": 101},
        "requestReceivedTimestamp": "2026-12-07T10:23:18.197538Z", "stageTimestamp": "2026-12-07T10:23:18.207055Z",
        "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""}
    })
}

/// `curl` posting `body` to `url` with `args`: its exit code, the HTTP status (0: none) and
/// the body of the answer.
fn post(url: &str, body: &str, args: &[&str]) -> (i32, u16, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", "-w", "\n%{http_code}", "-H", "Content-Type: application/json"])
        .args(["--data-binary", body])
        .args(args)
        .arg(url)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (answer, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (out.status.code().unwrap_or(-1), status.trim().parse().unwrap_or(0), answer.to_owned())
}

fn append(path: &str, events: &[Value]) {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    for e in events {
        writeln!(f, "{e}").unwrap();
    }
}

#[test]
fn audit_events_over_https_and_from_a_rotated_log_alert_with_their_fields() {
    let dir = temp_path("k8s-audit");
    std::fs::create_dir_all(&dir).unwrap();
    let pki = pki::Pki::new(dir.as_ref());
    let webhook = free_loopback_port().unwrap();
    let metrics = free_loopback_port().unwrap();
    let log = format!("{dir}/audit.log");
    let store = format!("{dir}/alerts.db");
    std::fs::write(&log, "").unwrap();
    let config = format!("{dir}/sensor.yaml");
    std::fs::write(
        &config,
        format!(
            "rules: [builtin, {AUDIT_RULES}]\nengine: {{all_matches: true}}\noutputs:\n  - stdout: {{format: json}}\n  - store: {{path: {store}}}\n\
             k8s_audit:\n  webhook:\n    \
             address: {webhook}\n    tls: {{cert_file: {}, key_file: {}, client_ca_file: {}}}\n  files: [{log}]\n  \
             cluster_name: test-cluster\n  store: {{path: {dir}/audit.db}}\n",
            pki.server_cert.display(),
            pki.server_key.display(),
            pki.ca.display()
        ),
    )
    .unwrap();
    let address = format!("metrics.address={metrics}");
    let mut sensor = start_sensor(&["run", "--config", &config, "-o", &address]);
    let alerts = alert_stream(&mut sensor);
    let url = format!("https://{webhook}/k8s-audit");
    let (ca, cert, key) = (pki.ca.display().to_string(), pki.client_cert.display(), pki.client_key.display());
    let (cert, key) = (cert.to_string(), key.to_string());
    let mutual = ["--cacert", &ca, "--cert", &cert, "--key", &key];
    // As kube-apiserver's webhook backend sends a batch: its items without kind and apiVersion.
    let item = |mut e: Value| {
        e.as_object_mut().unwrap().retain(|k, _| k != "kind" && k != "apiVersion");
        e
    };
    let list = json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {},
        "items": [item(pod_create(ADMIN, "shop", true)), item(pod_create(ADMIN, "plain", false))]});

    // The webhook may still be starting after the probes are attached.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (code, status, answer) = loop {
        let posted = post(&url, &list.to_string(), &mutual);
        if posted.1 != 0 || Instant::now() > deadline {
            break posted;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!((code, status), (0, 200), "{answer}");
    assert!(answer.starts_with("taken 2,"), "{answer}");
    // Falco's rule and the built-in audit theme's, loaded side by side, both alert on it.
    let mut seen: Vec<Value> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let wanted = ["Create Privileged Pod", "K8s privileged pod created"];
    while !wanted.iter().all(|r| seen.iter().any(|a| a["rule"] == *r)) {
        let left = deadline.saturating_duration_since(Instant::now());
        seen.push(alerts.recv_timeout(left).expect("the privileged pod is alerted by both rule sets"));
    }
    let of = |rule: &str| seen.iter().find(|a| a["rule"] == rule).unwrap().clone();
    let alert = of("Create Privileged Pod");
    assert_eq!(alert["source"], "k8s_audit");
    assert_eq!(alert["priority"], "Warning");
    let fields = &alert["output_fields"];
    assert_eq!(
        (&fields["ka.user.name"], &fields["ka.target.namespace"], &fields["ka.resp.name"]),
        (&json!(ADMIN), &json!("web"), &json!("shop")),
        "{alert}"
    );
    assert!(alert["output"].as_str().unwrap().contains("images=(nginx:1.27) "), "{alert}");
    let own = of("K8s privileged pod created");
    assert_eq!(
        (&own["source"], &own["output_fields"]["ka.target.name"]),
        (&json!("k8s_audit"), &json!("shop")),
        "{own}"
    );

    // Without a client certificate the handshake fails; what is not an audit event is
    // refused whole.
    let (code, status, _) = post(&url, &list.to_string(), &["--cacert", &ca]);
    assert!(code != 0 && status == 0, "no client certificate: curl exit {code}, status {status}");
    let (_, status, answer) = post(&url, "{\"kind\": \"EventList\", \"items\": [", &mutual);
    assert_eq!(status, 400, "{answer}");
    let (_, status, answer) = post(&url, &json!({"kind": "Pod"}).to_string(), &mutual);
    assert_eq!(status, 400, "{answer}");

    // The log: a line appended, then the file rotated and a line in the new one.
    append(&log, &[exec(ADMIN, "web-0")]);
    let into = |pod: &'static str| {
        move |a: &Value| a["rule"] == "Attach/Exec Pod" && a["output_fields"]["ka.target.name"] == pod
    };
    let (alert, _) = await_alert(&alerts, Duration::from_secs(10), into("web-0")).expect("the exec is alerted");
    let command = alert["output_fields"]["ka.uri.param[command]"].clone();
    assert_eq!((&alert["output_fields"]["ka.user.name"], &command), (&json!(ADMIN), &json!("sh")), "{alert}");
    std::fs::rename(&log, format!("{log}.1")).unwrap();
    append(&log, &[json!({"not": "an audit event"}), exec(ADMIN, "web-1")]);
    await_alert(&alerts, Duration::from_secs(10), into("web-1")).expect("the exec after the rotation is alerted");

    // The metrics are a snapshot taken every second.
    let deadline = Instant::now() + Duration::from_secs(10);
    let counted = || {
        let counts = scrape(metrics);
        let received = counts.sum_with("sensor_k8s_audit_received_events_total", "").unwrap_or(0.0);
        let malformed = counts.sum_with("sensor_k8s_audit_refused_total", "malformed").unwrap_or(0.0);
        (received, malformed)
    };
    while counted() != (4.0, 3.0) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    // Two events over the webhook and two from the log; two requests and a log line refused.
    assert_eq!(counted(), (4.0, 3.0), "received and malformed");
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    unsafe { libc::kill(sensor.id() as i32, libc::SIGTERM) };
    assert!(sensor.wait().unwrap().success());
    // The store output kept them, as audit alerts with their fields.
    let stored = SqliteStore::open_read_only(store.as_ref()).unwrap();
    let query = Query { sources: vec!["k8s_audit".into()], order: Order::OldestFirst, ..Query::default() };
    let mut rules: Vec<String> = stored.search(&query).unwrap().alerts.iter().map(|a| a.rule.clone()).collect();
    rules.sort();
    assert_eq!(
        rules,
        [
            "Attach/Exec Pod",
            "Attach/Exec Pod",
            "Create Privileged Pod",
            "K8s exec or attach into a pod",
            "K8s exec or attach into a pod",
            "K8s privileged pod created"
        ],
        "the stored audit alerts"
    );
    // The audit log kept every event, from the webhook and from both files, alerted or not.
    let log = SqliteAuditLog::open_read_only(format!("{dir}/audit.db").as_ref()).unwrap();
    let mut kept: Vec<String> =
        log.search_audit(&AuditQuery::default()).unwrap().events.into_iter().map(|e| e.audit_id).collect();
    kept.sort();
    assert_eq!(kept, ["0b7c6a1e-plain", "0b7c6a1e-shop", "8147b882-web-0", "8147b882-web-1"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Many clients flood the webhook with batches while a process sets a setuid bit: the
/// webhook answers every request 200 or 429 (nothing else), what the queue refuses and what
/// the audit log cannot keep up with is counted, and the syscall alert arrives in the middle
/// of the flood; the sensor stops cleanly afterwards.
#[test]
fn an_audit_flood_is_refused_and_counted_while_syscall_alerts_keep_flowing() {
    let dir = temp_path("k8s-audit-flood");
    std::fs::create_dir_all(&dir).unwrap();
    let (webhook, metrics) = (free_loopback_port().unwrap(), free_loopback_port().unwrap());
    let config = format!("{dir}/sensor.yaml");
    std::fs::write(
        &config,
        format!(
            "outputs:\n  - stdout: {{format: json}}\n\
             k8s_audit:\n  webhook: {{address: \"{webhook}\"}}\n  queue: 800\n  store: {{path: {dir}/audit.db}}\n"
        ),
    )
    .unwrap();
    let address = format!("metrics.address={metrics}");
    let mut sensor = start_sensor(&["run", "--config", &config, "-o", &address]);
    let alerts = alert_stream(&mut sensor);
    // Batches of 400 distinct events (each a pod read by a service account: no rule fires).
    let batch = |client: usize, n: usize| {
        let items: Vec<Value> = (0..400)
            .map(|i| {
                json!({"level": "Metadata", "auditID": format!("f1d0{client:02}-{n:08}-{i:04}"), "stage": "ResponseComplete",
                       "requestURI": "/api/v1/namespaces/shop/pods/web-0", "verb": "get",
                       "user": {"username": "system:serviceaccount:shop:default", "groups": ["system:serviceaccounts"]},
                       "sourceIPs": ["10.0.0.9"], "objectRef": {"resource": "pods", "namespace": "shop", "name": "web-0"},
                       "responseStatus": {"code": 200}, "stageTimestamp": "2026-12-07T10:00:00.000000Z"})
            })
            .collect();
        json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": items}).to_string()
    };
    // The webhook may still be starting after the probes are attached.
    let deadline = Instant::now() + Duration::from_secs(20);
    let empty = json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": []}).to_string();
    let json_type = [("Content-Type", "application/json")];
    while sensor_tests::http_request(webhook, "POST", "/k8s-audit", &json_type, &empty).is_err() {
        assert!(Instant::now() < deadline, "the webhook does not answer");
        std::thread::sleep(Duration::from_millis(100));
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..8)
        .map(|client| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut answers = std::collections::BTreeMap::<u16, u64>::new();
                let mut n = 0;
                let headers = [("Content-Type", "application/json")];
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let status =
                        match sensor_tests::http_request(webhook, "POST", "/k8s-audit", &headers, &batch(client, n)) {
                            Ok(answer) => answer.status,
                            Err(e) => {
                                eprintln!("client {client}: {e}");
                                0
                            }
                        };
                    *answers.entry(status).or_default() += 1;
                    n += 1;
                }
                answers
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    // A syscall rule, in the middle of the flood: a setuid bit set on a file of the test.
    let file = format!("{dir}/setuid");
    std::fs::write(&file, b"").unwrap();
    assert!(Command::new("chmod").args(["u+s", &file]).status().unwrap().success());
    let setuid = await_alert(&alerts, Duration::from_secs(20), |a| {
        a["rule"] == "Setuid or setgid bit set" && a["output_fields"]["fs.path.name"] == file.as_str()
    });
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut answers = std::collections::BTreeMap::<u16, u64>::new();
    for client in clients {
        for (status, n) in client.join().unwrap() {
            *answers.entry(status).or_default() += n;
        }
    }
    eprintln!("webhook answers during the flood: {answers:?}");
    assert!(setuid.is_some(), "the setuid alert arrives while the webhook is flooded");
    assert!(answers.keys().all(|s| [200, 429].contains(s)), "every request answered 200 or 429: {answers:?}");
    let taken = answers.get(&200).copied().unwrap_or(0);
    assert!(taken > 0 && answers.get(&429).copied().unwrap_or(0) > 0, "{answers:?}");
    // Every event taken was evaluated, and kept or counted lost (the metrics: once a second).
    let deadline = Instant::now() + Duration::from_secs(30);
    let counted = || {
        let m = scrape(metrics);
        let get = |name: &str| m.sum_with(name, "").unwrap_or(0.0);
        let refused = m.sum_with("sensor_k8s_audit_refused_total", "queue_full").unwrap_or(0.0);
        (
            get("sensor_k8s_audit_received_events_total"),
            get("sensor_k8s_audit_evaluated_events_total"),
            get("sensor_k8s_audit_stored_events_total") + get("sensor_k8s_audit_store_lost_events_total"),
            refused,
        )
    };
    let want = (taken * 400) as f64;
    while counted().2 < want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(300));
    }
    let (received, evaluated, kept_or_lost, refused) = counted();
    eprintln!("received {received}, evaluated {evaluated}, kept or lost {kept_or_lost}, refused {refused}");
    assert_eq!((received, evaluated, kept_or_lost), (want, want, want), "every event taken is accounted for");
    assert_eq!(refused, (answers[&429] * 400) as f64, "each 429 refused its whole batch, counted");
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    unsafe { libc::kill(sensor.id() as i32, libc::SIGTERM) };
    assert!(sensor.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(&dir);
}
