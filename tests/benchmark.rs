//! `sensor benchmark node` on this machine against a running program named `kubelet` with a
//! real kubelet's command line, a KubeletConfiguration file, a kubeconfig and a CA file of
//! chosen modes: the report reads the process's flags over its file, names where each value
//! came from, and exits 1 on a FAIL; without a kubelet it exits 2. Needs root (it reads
//! another process's /proc entries and files).

use std::{
    os::unix::fs::PermissionsExt as _,
    process::{Command, Stdio},
};

use sensor_tests::{sensor_binary, temp_path};
use serde_json::Value;

/// The stand-in kubelet cargo built beside the sensor.
fn kubelet_binary() -> std::path::PathBuf {
    sensor_binary().with_file_name("kubelet")
}

/// One test at a time: each runs its own kubelet, and each would see the other's.
fn turn() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn benchmark(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(sensor_binary()).args(["benchmark", "node"]).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_running_kubelet_is_checked_by_its_flags_its_file_and_its_defaults() {
    let _turn = turn();
    // Before the kubelet starts: no kubelet, no report.
    let (code, _, stderr) = benchmark(&[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("no kubelet runs on this node"), "{stderr}");

    let dir = temp_path("benchmark");
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: &str, mode: u32| {
        let path = format!("{dir}/{name}");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    };
    let config = write(
        "config.yaml",
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nauthentication:\n  anonymous:\n    \
         enabled: false\nauthorization:\n  mode: Webhook\nreadOnlyPort: 10255\nrotateCertificates: true\n",
        0o600,
    );
    let kubeconfig = write("kubelet.conf", "apiVersion: v1\nkind: Config\n", 0o644);
    let ca = write("ca.crt", "-----BEGIN CERTIFICATE-----\n", 0o644);
    /// Killed however the test ends.
    struct Running(std::process::Child);
    impl Drop for Running {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let kubelet = Command::new(kubelet_binary())
        .args([
            format!("--config={config}"),
            format!("--kubeconfig={kubeconfig}"),
            format!("--client-ca-file={ca}"),
            "--anonymous-auth=true".into(),
            "--container-runtime-endpoint=unix:///run/containerd/containerd.sock".into(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the stand-in kubelet is built by `cargo test`");
    let kubelet = Running(kubelet);

    let (code, stdout, stderr) = benchmark(&["--benchmark", "cis-1.12", "--format", "json"]);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout} {stderr}"));
    let result = |id: &str| report["results"].as_array().unwrap().iter().find(|r| r["id"] == id).unwrap().clone();
    assert_eq!(report["kubelet_pid"], kubelet.0.id());
    // The flag wins over the file, and says so.
    let anonymous = result("4.2.1");
    assert_eq!((&anonymous["status"], &anonymous["observed"]), (&"Fail".into(), &"true".into()), "{anonymous}");
    assert_eq!(anonymous["source"], "flag --anonymous-auth");
    // The file's value, at its line.
    let port = result("4.2.4");
    assert_eq!((&port["status"], &port["observed"]), (&"Warn".into(), &"10255".into()), "{port}");
    assert_eq!(port["source"], format!("{config}:8"));
    // The files the flags name, with their modes.
    let kubeconfig_mode = result("4.1.5");
    assert_eq!((&kubeconfig_mode["status"], &kubeconfig_mode["observed"]), (&"Fail".into(), &"644".into()));
    assert_eq!(kubeconfig_mode["source"], kubeconfig);
    assert_eq!(kubeconfig_mode["remediation"], format!("chmod 600 {kubeconfig}"));
    assert_eq!(result("4.1.9")["status"], "Pass", "the config file is 600");
    assert_eq!((&result("4.1.7")["status"], &result("4.1.7")["source"]), (&"Pass".into(), &ca.clone().into()));
    // What nothing sets: the kubelet's defaults with a config file.
    let idle = result("4.2.5");
    assert_eq!((&idle["status"], &idle["observed"]), (&"Pass".into(), &"4h0m0s".into()));
    assert_eq!(idle["source"], "default of kubelet (with a config file)");
    assert_eq!(code, 1, "a FAIL exits 1");

    // The table and JUnit forms of the same report.
    let (_, table, _) = benchmark(&["--benchmark", "cis-1.12"]);
    assert!(table.contains("[FAIL] 4.2.1   Ensure that the --anonymous-auth argument is set to false"), "{table}");
    assert!(table.contains("observed: true (flag --anonymous-auth); expected: false"), "{table}");
    let (_, junit, _) = benchmark(&["--benchmark", "cis-1.12", "--format", "junit"]);
    assert!(junit.starts_with("<?xml") && junit.contains("<testcase classname=\"cis-1.12\" name=\"4.2.1 "), "{junit}");
    let (code, _, stderr) = benchmark(&["--benchmark", "cis-2.0"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no benchmark `cis-2.0`"), "{stderr}");

    drop(kubelet);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `sensor run` checks the node at start and every `benchmark.interval`: the kubelet's file
/// changed to open the read-only port raises `Node benchmark check failed` for 4.2.4 within
/// an interval, with the check's fields, and the metrics count the checks by status.
#[test]
fn a_kubelet_config_drifting_to_the_read_only_port_is_alerted_within_an_interval() {
    let _turn = turn();
    let dir = temp_path("benchmark-drift");
    std::fs::create_dir_all(&dir).unwrap();
    let config = format!("{dir}/config.yaml");
    let hardened = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nreadOnlyPort: 0\n";
    std::fs::write(&config, hardened).unwrap();
    struct Running(std::process::Child);
    impl Drop for Running {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _kubelet = Running(
        Command::new(kubelet_binary())
            .arg(format!("--config={config}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let metrics = sensor_tests::free_loopback_port().unwrap();
    let sensor_config = format!("{dir}/sensor.yaml");
    std::fs::write(
        &sensor_config,
        "outputs:\n  - stdout: {format: json}\nbenchmark: {interval: 1s, version: cis-1.12}\n",
    )
    .unwrap();
    let address = format!("metrics.address={metrics}");
    let mut sensor = sensor_tests::start_sensor(&["run", "--config", &sensor_config, "-o", &address]);
    let alerts = sensor_tests::alert_stream(&mut sensor);
    // The first run passes 4.2.4; then the file opens the port.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while sensor_tests::scrape(metrics).sum("sensor_benchmark_checks").is_none() {
        assert!(std::time::Instant::now() < deadline, "the benchmark ran at start");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let counted = sensor_tests::scrape(metrics);
    assert_eq!(counted.sum("sensor_benchmark_checks"), Some(25.0), "every check of cis-1.12 is counted");
    std::fs::write(&config, hardened.replace("readOnlyPort: 0", "readOnlyPort: 10255")).unwrap();
    let changed = std::time::Instant::now();
    let (alert, at) = sensor_tests::await_alert(&alerts, std::time::Duration::from_secs(10), |a| {
        a["rule"] == "Node benchmark check failed" && a["output_fields"]["benchmark.check"] == "4.2.4"
    })
    .expect("the drift is alerted");
    eprintln!("drift alerted {:?} after the change", at - changed);
    assert_eq!(alert["priority"], "Warning", "a manual check");
    let fields = &alert["output_fields"];
    assert_eq!((&fields["benchmark.observed"], &fields["benchmark.expected"]), (&"10255".into(), &"0".into()));
    assert_eq!(fields["benchmark.source"], format!("{config}:3"));
    assert!(at - changed < std::time::Duration::from_secs(3), "within an interval and its run");
    // Nothing else drifted.
    assert!(alerts.try_iter().all(|a| a["rule"] != "Node benchmark check failed"));
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    unsafe { libc::kill(sensor.id() as i32, libc::SIGTERM) };
    assert!(sensor.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Killed (TERM, then waited for) however the test ends.
struct Stopped(std::process::Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        // SAFETY: kill has no memory preconditions; the pid is our child's.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

/// GETs `path` from a console with the API token; the JSON answer.
fn api(console: std::net::SocketAddr, path: &str) -> (u16, String) {
    let auth = format!("Bearer {API_TOKEN}");
    let answer = sensor_tests::http_request(console, "GET", path, &[("Authorization", &auth)], "")
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    (answer.status, answer.body)
}

fn api_json(console: std::net::SocketAddr, path: &str) -> Value {
    let (status, body) = api(console, path);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Waits (at most `secs`) until `ready` holds for the console's answer to `path`.
fn until(console: std::net::SocketAddr, path: &str, secs: u64, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let answer =
            sensor_tests::http_request(console, "GET", path, &[("Authorization", &format!("Bearer {API_TOKEN}"))], "")
                .ok()
                .and_then(|a| serde_json::from_str::<Value>(&a.body).ok());
        match answer {
            Some(json) if ready(&json) => return json,
            last => assert!(std::time::Instant::now() < deadline, "{path} after {secs} s: {last:?}"),
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

const API_TOKEN: &str = "api-token-for-the-benchmark-test";
const NODE_TOKEN: &str = "node-token-for-the-benchmark-test";
const PASSWORD: &str = "benchmark operator password";

/// A node's benchmark where operators look: `sensor run` keeps each report in its own store
/// (its console's Benchmark page) and sends it to the cluster's `sensor console`; an
/// operator logs in to the cluster's console in Chromium, reads the node's checks, and
/// presses Re-run after the kubelet's file changed: the node runs again within its poll
/// interval, and the new run, its history and the CSV download show the change.
#[test]
fn a_nodes_benchmark_reaches_the_consoles_and_reruns_when_an_operator_asks() {
    let _turn = turn();
    let dir = temp_path("benchmark-console");
    std::fs::create_dir_all(&dir).unwrap();
    let kubelet_config = format!("{dir}/config.yaml");
    let hardened = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nreadOnlyPort: 0\n";
    std::fs::write(&kubelet_config, hardened).unwrap();
    let _kubelet = Stopped(
        Command::new(kubelet_binary())
            .arg(format!("--config={kubelet_config}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    for (name, token) in [("api-token", API_TOKEN), ("node-token", NODE_TOKEN)] {
        std::fs::write(format!("{dir}/{name}"), token).unwrap();
    }
    let hash = sensor::console::hash_password(PASSWORD).unwrap();
    let free = || sensor_tests::free_loopback_port().unwrap();
    let (cluster, cluster_metrics, node_ui, node_metrics) = (free(), free(), free(), free());
    let users =
        format!("users: [{{name: operator, password_hash: \"{hash}\"}}], api_tokens: [{{file: {dir}/api-token}}]");
    std::fs::write(
        format!("{dir}/console.yaml"),
        format!(
            "metrics: {{address: \"{cluster_metrics}\"}}\noutputs:\n  - stdout: {{}}\n\
             ui: {{address: \"{cluster}\", store: {{path: {dir}/cluster.db}}, {users}, \
             ingest_tokens: [{{file: {dir}/node-token}}]}}\n"
        ),
    )
    .unwrap();
    let console = Stopped(
        Command::new(sensor_binary())
            .args(["console", "--config", &format!("{dir}/console.yaml")])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let node_config = format!("{dir}/sensor.yaml");
    std::fs::write(
        &node_config,
        format!(
            "outputs:\n  - stdout: {{format: json}}\n  - store: {{path: {dir}/node.db}}\n  \
             - console: {{url: \"http://{cluster}\", token: {{file: {dir}/node-token}}}}\n\
             ui: {{enabled: true, address: \"{node_ui}\", {users}}}\n\
             benchmark: {{interval: 1h, version: cis-1.12, rerun_poll_interval: 1s}}\n"
        ),
    )
    .unwrap();
    let address = format!("metrics.address={node_metrics}");
    let mut sensor = sensor_tests::start_sensor(&["run", "--config", &node_config, "-o", &address]);
    let alerts = sensor_tests::alert_stream(&mut sensor);
    let sensor = Stopped(sensor);

    // The first run reaches both consoles: the node's own, from its store, and the cluster's.
    let one_node = |json: &Value| json["nodes"].as_array().is_some_and(|n| n.len() == 1);
    let nodes = until(cluster, "/api/v1/benchmark", 30, one_node);
    let first = &nodes["nodes"][0];
    let node = first["node"].as_str().unwrap().to_owned();
    assert_eq!(first["benchmark"], "cis-1.12");
    let local = until(node_ui, "/api/v1/benchmark", 10, one_node);
    assert_eq!(local["nodes"][0]["node"], node.as_str());
    assert_eq!(local["nodes"][0]["totals"], first["totals"], "the same run in both");
    let first_id = first["id"].as_i64().unwrap();
    let run = api_json(cluster, &format!("/api/v1/benchmark/runs/{first_id}"));
    let check =
        |run: &Value, id: &str| run["results"].as_array().unwrap().iter().find(|r| r["id"] == id).unwrap().clone();
    assert_eq!(check(&run, "4.2.4")["status"], "Pass", "readOnlyPort: 0");
    assert_eq!(run["results"].as_array().unwrap().len(), 25, "every check of cis-1.12");

    // The file opens the read-only port; the operator asks for a run in the browser.
    std::fs::write(&kubelet_config, hardened.replace("readOnlyPort: 0", "readOnlyPort: 10255")).unwrap();
    let browser = sensor_tests::webdriver::Browser::start().expect("headless Chromium");
    let base = format!("http://{cluster}");
    let find = |selector: &str| browser.find(selector).unwrap_or_else(|e| panic!("{selector}: {e}"));
    browser.goto(&format!("{base}/benchmark")).unwrap();
    browser.type_into(&find("#user"), "operator").unwrap();
    browser.type_into(&find("#password"), PASSWORD).unwrap();
    browser.click(&find("#login")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    browser.goto(&format!("{base}/benchmark")).unwrap();
    let rows = browser.find_all("#nodes tbody tr").unwrap();
    assert_eq!(rows.len(), 1);
    assert!(browser.text(&rows[0]).unwrap().contains(&node), "{}", browser.page_text().unwrap());
    browser.click(&find("#nodes a")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(browser.url().unwrap().ends_with(&format!("/benchmark/runs/{first_id}")), "{}", browser.url().unwrap());
    assert!(browser.text(&find("#check-4\\.2\\.4")).unwrap().contains("PASS"));
    browser.click(&find("form.rerun button")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let notice = browser.text(&find("#notice")).unwrap();
    assert!(notice.contains(&format!("{node} will run its checks again")), "{notice}");
    let asked = std::time::Instant::now();

    // Within the node's poll interval and a run: a second run, with the port open.
    let history = until(cluster, &format!("/api/v1/benchmark/runs?node={node}"), 20, |json| {
        json["runs"].as_array().is_some_and(|r| r.len() == 2)
    });
    eprintln!("the re-run arrived {:?} after the operator asked", asked.elapsed());
    let second_id = history["runs"][0]["id"].as_i64().unwrap();
    assert_eq!(history["runs"][1]["id"].as_i64(), Some(first_id), "newest first");
    let run = api_json(cluster, &format!("/api/v1/benchmark/runs/{second_id}"));
    let open = check(&run, "4.2.4");
    assert_eq!((open["status"].as_str(), open["observed"].as_str()), (Some("Warn"), Some("10255")));
    assert_eq!(open["source"], format!("{kubelet_config}:3"));
    browser.goto(&format!("{base}/benchmark/runs/{second_id}")).unwrap();
    assert!(browser.text(&find("#check-4\\.2\\.4")).unwrap().contains("WARN"));
    assert_eq!(browser.find_all("#history tr").unwrap().len(), 2);
    browser
        .screenshot(&std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/browser/benchmark-run.png"))
        .unwrap();
    // The download the page links to.
    let link = browser.attribute(&find("#download-csv"), "href").unwrap().unwrap();
    let (status, csv) = api(cluster, link.trim_start_matches(&base));
    assert_eq!(status, 200);
    let row = csv.lines().find(|l| l.contains(",4.2.4,")).unwrap().to_owned();
    assert!(row.starts_with(&format!("{node},")) && row.contains(",WARN,10255,"), "{row}");
    // The drift alert went out with the run, to the node's outputs.
    sensor_tests::await_alert(&alerts, std::time::Duration::from_secs(5), |a| {
        a["rule"] == "Node benchmark check failed" && a["output_fields"]["benchmark.check"] == "4.2.4"
    })
    .expect("the drift is alerted");
    // The node counted its reports: two runs, each to its store and the console.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let kept = loop {
        let kept = sensor_tests::scrape(node_metrics).sum_with("sensor_benchmark_reports_total", "result=\"kept\"");
        if kept == Some(4.0) || std::time::Instant::now() > deadline {
            break kept;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(kept, Some(4.0));
    assert_eq!(
        sensor_tests::scrape(node_metrics).sum_with("sensor_benchmark_reports_total", "result=\"failed\""),
        Some(0.0)
    );
    drop((sensor, console));
    let _ = std::fs::remove_dir_all(&dir);
}
