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
