//! The cluster's audit webhook in `sensor console`: kube-apiserver's batches over HTTPS with
//! a client certificate (curl) go through the built-in rules and Falco's k8s_audit rules side
//! by side, and both alerts reach stdout and the console's store, where the API finds them
//! with their `ka.*` fields.

mod peers;

use std::{
    io::{BufRead, BufReader},
    net::TcpListener,
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use peers::pki::Pki;
use serde_json::{Value, json};

fn free_port() -> std::net::SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// `curl ARGS URL`: the HTTP status (0: none) and the body.
fn curl(url: &str, args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.trim().parse().unwrap_or(0), body.to_owned())
}

/// The `sensor console` under test: stopped however the test ends.
struct Console(std::process::Child);

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_console_takes_audit_batches_and_shows_their_alerts() {
    let dir = peers::scratch_dir("console-audit");
    let pki = Pki::new(&dir);
    let (ui, hook, metrics) = (free_port(), free_port(), free_port());
    let store = dir.join("alerts.db");
    std::fs::write(dir.join("api-token"), "reader-token\n").unwrap();
    let config = dir.join("console.yaml");
    std::fs::write(
        &config,
        format!(
            "metrics: {{address: {metrics}}}\n\
             ui: {{address: {ui}, store: {{path: {store}}}, api_tokens: [{{file: {token}}}]}}\n\
             rules: [builtin, {falco}]\nengine: {{all_matches: true}}\n\
             outputs:\n  - stdout: {{format: json}}\n  - store: {{path: {store}}}\n\
             k8s_audit:\n  webhook:\n    address: {hook}\n    \
             tls: {{cert_file: {cert}, key_file: {key}, client_ca_file: {ca}}}\n  cluster_name: prod-eu\n",
            store = store.display(),
            falco = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/falco/k8s_audit_rules.yaml"),
            token = dir.join("api-token").display(),
            cert = pki.server_cert.display(),
            key = pki.server_key.display(),
            ca = pki.ca.display(),
        ),
    )
    .unwrap();
    let mut console = Console(
        Command::new(env!("CARGO_BIN_EXE_sensor"))
            .args(["console", "--config"])
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let (tx, alerts) = mpsc::channel::<Value>();
    let stdout = BufReader::new(console.0.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = tx.send(serde_json::from_str(&line).expect("a JSON alert"));
        }
    });

    // A batch as kube-apiserver sends it: an exec into a pod, its items without kind and
    // apiVersion.
    let exec = json!({
        "level": "Request", "auditID": "8147b882-69cd-4f70-9d44-ecea07fd14e5", "stage": "ResponseStarted",
        "requestURI": "/api/v1/namespaces/shop/pods/web-0/exec?command=sh&container=web&stdin=true",
        "verb": "create", "user": {"username": "alice", "groups": ["developers", "system:authenticated"]},
        "sourceIPs": ["10.0.0.7"], "userAgent": "kubectl/v1.31.0 (linux/amd64) kubernetes/9edcffc",
        "objectRef": {"resource": "pods", "namespace": "shop", "name": "web-0", "apiVersion": "v1", "subresource": "exec"},
        "responseStatus": {"metadata": {}, "code": 101},
        "requestReceivedTimestamp": "2026-12-07T10:23:18.197538Z", "stageTimestamp": "2026-12-07T10:23:18.207055Z",
        "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""}
    });
    let batch = json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {}, "items": [exec]});
    let (ca, cert, key) =
        (pki.ca.display().to_string(), pki.client_cert.display().to_string(), pki.client_key.display().to_string());
    let url = format!("https://{hook}/k8s-audit");
    let body = batch.to_string();
    let post = [
        "--cacert",
        &ca,
        "--cert",
        &cert,
        "--key",
        &key,
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        &body,
    ];
    // Ready (`/readyz`) once the webhook and the page both serve: the webhook starts first,
    // so its alerts can be stored before the page listens.
    let deadline = Instant::now() + Duration::from_secs(30);
    while curl(&format!("http://{metrics}/readyz"), &[]).0 != 200 {
        assert!(Instant::now() < deadline, "the console is not ready after 30 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, answer) = loop {
        let answered = curl(&url, &post);
        if answered.0 != 0 || Instant::now() > deadline {
            break answered;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status, 200, "{answer}");

    // The built-in rule and Falco's, loaded side by side, both alert on it.
    let (rule, falco_rule) = ("K8s exec or attach into a pod", "Attach/Exec Pod");
    let mut seen: Vec<Value> = Vec::new();
    while ![rule, falco_rule].iter().all(|r| seen.iter().any(|a| a["rule"] == *r)) {
        seen.push(alerts.recv_timeout(Duration::from_secs(20)).expect("the exec is alerted on stdout by both"));
    }
    for alert in seen.iter().filter(|a| a["rule"] == rule || a["rule"] == falco_rule) {
        assert_eq!(alert["source"], "k8s_audit");
        assert_eq!(alert["output_fields"]["ka.target.name"], "web-0", "{alert}");
    }
    let alert = seen.iter().find(|a| a["rule"] == rule).unwrap();
    assert_eq!(alert["output_fields"]["ka.uri.param[command]"], "sh", "{alert}");

    // The console's API finds it in the store.
    let search = format!(
        "http://{ui}/api/v1/alerts?source=k8s_audit&rule=Attach%2FExec%20Pod&rule=K8s%20exec%20or%20attach%20into%20a%20pod"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let found = loop {
        let (status, body) = curl(&search, &["-H", "Authorization: Bearer reader-token"]);
        assert_eq!(status, 200, "{body}");
        let page: Value = serde_json::from_str(&body).unwrap();
        let hits: Vec<Value> = page["alerts"].as_array().cloned().unwrap_or_default();
        if !hits.is_empty() || Instant::now() > deadline {
            break hits;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut found = found;
    while found.len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        let (_, body) = curl(&search, &["-H", "Authorization: Bearer reader-token"]);
        found = serde_json::from_str::<Value>(&body).unwrap()["alerts"].as_array().cloned().unwrap_or_default();
    }
    let mut rules: Vec<&str> = found.iter().map(|a| a["rule"].as_str().unwrap()).collect();
    rules.sort();
    assert_eq!(rules, [falco_rule, rule], "{found:?}");
    for stored in &found {
        assert!(stored.to_string().contains("\"ka.user.name\":\"alice\""), "{stored}");
    }

    // SAFETY: kill has no memory preconditions; the pid is our child's.
    unsafe { libc::kill(console.0.id() as i32, libc::SIGTERM) };
    assert!(console.0.wait().unwrap().success());
}
