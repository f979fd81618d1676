//! The cluster's console: two `sensor run` processes (standing in for two nodes, each with
//! its own `SENSOR_HOSTNAME`) send their alerts through their `console` outputs to one
//! `sensor console` backed by a real PostgreSQL started by the test. The console's page and
//! API show both nodes' alerts, each with its node; a second console replica on the same
//! database honours the first one's login and its logout ends it on both; the console killed
//! and restarted while the nodes alert loses none of their alerts, and stores none twice. Needs root (real
//! sensors).

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use sensor_tests::{
    HttpAnswer, free_loopback_port, http_request, require_root, scrape, sensor_command, start_sensor_from, temp_path,
};

const SHADOW_RULE: &str = "Read credential file by untrusted program";
const PASSWORD: &str = "cluster console password";
const NODE_TOKEN: &str = "node-token-5f1e9a0c7d3b2468";
const API_TOKEN: &str = "api-token-0c9d8e7f6a5b4c3d";

/// The test's files, removed afterwards.
struct Scratch(String);

impl Scratch {
    fn write(&self, name: &str, body: &str) -> String {
        let path = format!("{}/{name}", self.0);
        std::fs::write(&path, body).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `sensor console --config FILE`, answering on `addr` (waits for it), its metrics on
/// `metrics`.
fn start_console(config: &str, addr: std::net::SocketAddr, metrics: std::net::SocketAddr) -> std::process::Child {
    let console = sensor_command()
        .args(["console", "--config", config, "-o", &format!("ui.address={addr}")])
        .args(["-o", &format!("metrics.address={metrics}")])
        .stdout(Stdio::null())
        .spawn()
        .expect("the sensor binary is built");
    let deadline = Instant::now() + Duration::from_secs(30);
    while http_request(addr, "GET", "/login", &[], "").is_err() {
        assert!(Instant::now() < deadline, "the console did not answer on {addr}");
        std::thread::sleep(Duration::from_millis(100));
    }
    console
}

/// The alerts of `node` by the /etc/shadow rule whose text holds `marker`, through the
/// console's API.
fn alerts_of(addr: std::net::SocketAddr, node: &str, marker: &str) -> Vec<serde_json::Value> {
    let rule = SHADOW_RULE.replace(' ', "%20");
    let path = format!("/api/v1/alerts?node={node}&rule={rule}&text={marker}&limit=1000");
    let answer = http_request(addr, "GET", &path, &[("Authorization", &format!("Bearer {API_TOKEN}"))], "").unwrap();
    assert_eq!(answer.status, 200, "{path}: {}", answer.body);
    let json: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    json["alerts"].as_array().cloned().unwrap_or_default()
}

/// Waits up to 30 s until `node` has `want` alerts naming `marker`; how many it has.
fn await_alerts(addr: std::net::SocketAddr, node: &str, marker: &str, want: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = alerts_of(addr, node, marker).len();
        if n >= want || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `cat` reads /etc/shadow, then fails on the marker path, which names the read.
fn read_shadow(marker: &str) {
    let _ = Command::new("cat")
        .args(["/etc/shadow", &format!("/nonexistent/{marker}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Logs in on the console's page; the session cookie.
fn log_in(addr: std::net::SocketAddr) -> String {
    let page = http_request(addr, "GET", "/login", &[], "").unwrap();
    let csrf_cookie = page.cookie("sensor_login_csrf").expect("the login form's cookie");
    let at = page.body.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    let csrf = page.body[at..].split('"').next().unwrap();
    let form = format!("user=admin&password={}&csrf={csrf}", PASSWORD.replace(' ', "+"));
    let answer: HttpAnswer = http_request(addr, "POST", "/login", &[("Cookie", &csrf_cookie)], &form).unwrap();
    assert_eq!(answer.status, 303, "logging in: {}", answer.body);
    answer.cookie("sensor_session").expect("a session")
}

#[test]
fn two_nodes_send_to_one_console_over_postgresql_and_a_restart_loses_nothing() {
    require_root();
    let scratch = Scratch(temp_path("cluster"));
    std::fs::create_dir_all(&scratch.0).unwrap();
    let database = sensor::store::pg_server::database("cluster");
    let addr = free_loopback_port().unwrap();
    let node_token = scratch.write("node-token", NODE_TOKEN);
    let api_token = scratch.write("api-token", API_TOKEN);
    let hash = sensor::console::hash_password(PASSWORD).unwrap();
    let console_config = scratch.write(
        "console.yaml",
        &format!(
            "ui:\n  address: {addr}\n  store:\n    postgres: {{url: '{}'}}\n  users: [{{name: admin, password_hash: '{hash}'}}]\n  \
             ingest_tokens: [{{file: {node_token}}}]\n  api_tokens: [{{file: {api_token}}}]\n",
            database.url
        ),
    );
    // The nodes retry for longer than the console is away.
    let node_config = scratch.write(
        "node.yaml",
        &format!(
            "outputs:\n  - console: {{url: 'http://{addr}', token: {{file: {node_token}}}}}\n    \
             batch: {{window: 200ms, max_alerts: 500}}\n    retry: {{attempts: 60, initial_backoff: 200ms, max_backoff: 1s}}\n"
        ),
    );
    let console_metrics = free_loopback_port().unwrap();
    let mut console = start_console(&console_config, addr, console_metrics);
    let mut nodes: Vec<std::process::Child> = ["node-a", "node-b"]
        .into_iter()
        .map(|node| {
            let mut command = sensor_command();
            command.env("SENSOR_HOSTNAME", node);
            start_sensor_from(command, &["run", "--config", &node_config], node)
        })
        .collect();

    // Both nodes' alerts reach the console, each with its node.
    read_shadow("cluster-one");
    for node in ["node-a", "node-b"] {
        assert_eq!(await_alerts(addr, node, "cluster-one", 1), 1, "{node}'s alert on the console");
        let alert = &alerts_of(addr, node, "cluster-one")[0];
        assert_eq!(alert["rule"], SHADOW_RULE);
        assert_eq!(alert["hostname"], node);
    }
    // The page shows them, with their nodes, to a user who logged in.
    let session = log_in(addr);
    let page = http_request(addr, "GET", "/events?text=cluster-one", &[("Cookie", &session)], "").unwrap();
    assert_eq!(page.status, 200);
    assert!(page.body.contains("node-a") && page.body.contains("node-b"), "{}", page.body);
    let only_b =
        http_request(addr, "GET", "/events?text=cluster-one&node=node-b", &[("Cookie", &session)], "").unwrap();
    assert!(only_b.body.contains("node-b") && !only_b.body.contains(">node-a<"), "{}", only_b.body);

    // The console counts what it took, for Prometheus: at least the two alerts, no line refused.
    std::thread::sleep(Duration::from_secs(3));
    let counted = scrape(console_metrics);
    assert!(counted.sum("sensor_console_ingested_alerts_total").unwrap_or(0.0) >= 2.0);
    assert_eq!(counted.sum("sensor_console_ingest_refused_lines_total"), Some(0.0));

    // The console dies; the nodes go on alerting; a new console (the same database) starts.
    console.kill().unwrap();
    console.wait().unwrap();
    for i in 0..5 {
        read_shadow(&format!("cluster-two-{i}"));
    }
    std::thread::sleep(Duration::from_secs(2));
    let mut console = start_console(&console_config, addr, console_metrics);
    for node in ["node-a", "node-b"] {
        for i in 0..5 {
            let marker = format!("cluster-two-{i}");
            assert_eq!(await_alerts(addr, node, &marker, 1), 1, "{node}'s alert {marker} after the restart");
        }
    }
    // Nothing twice, though the nodes retried: one alert per node and read, over the whole run.
    std::thread::sleep(Duration::from_secs(1));
    for node in ["node-a", "node-b"] {
        assert_eq!(alerts_of(addr, node, "cluster-").len(), 6, "{node}: each alert once");
    }
    for node in &mut nodes {
        unsafe { libc::kill(node.id() as i32, libc::SIGTERM) };
    }
    for node in &mut nodes {
        node.wait().unwrap();
    }
    console.kill().unwrap();
    console.wait().unwrap();
}
