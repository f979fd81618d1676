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
