//! Nodes built as files: a `/proc` with a kubelet (and kube-proxy) whose command line and
//! namespaces are a real node's, and the host's files with chosen modes and owners (owners
//! by the node's own `passwd`, so that the tests need not chown). Every check passes on a
//! node made to pass it and fails on one made to fail it; a hardened and a default kubeadm
//! node give kube-bench's verdicts check by check.

use std::{os::unix::fs::PermissionsExt as _, path::PathBuf};

use super::*;

/// A node to build.
#[derive(Clone)]
struct Spec {
    kubelet_args: Vec<String>,
    /// The KubeletConfiguration at /var/lib/kubelet/config.yaml (`--config` names it).
    config: Option<String>,
    /// Files by path under the host root: (mode, owned by root).
    files: Vec<(&'static str, u32, bool)>,
    unit: String,
    /// kube-proxy's flags and its config (in its own root, as in a pod).
    proxy: Option<(Vec<String>, String)>,
    /// A process named kubelet in a container, started before the real one.
    impostor: bool,
    /// kube-proxy's kubeconfig (in its pod): mode, owned by root.
    proxy_kubeconfig: (u32, bool),
}

const KUBEADM_CONFIG: &str = "apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous:
    enabled: false
  webhook:
    cacheTTL: 0s
    enabled: true
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
authorization:
  mode: Webhook
cgroupDriver: systemd
clusterDNS:
- 10.96.0.10
clusterDomain: cluster.local
rotateCertificates: true
staticPodPath: /etc/kubernetes/manifests
streamingConnectionIdleTimeout: 0s
";

const UNIT: &str = "[Service]
Environment=\"KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf\"
Environment=\"KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml\"
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS
";

impl Spec {
    /// A node as `kubeadm init` leaves it (Kubernetes 1.31): its kubelet's flags and config.
    fn kubeadm_default() -> Spec {
        Spec {
            kubelet_args: [
                "/usr/bin/kubelet",
                "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
                "--kubeconfig=/etc/kubernetes/kubelet.conf",
                "--config=/var/lib/kubelet/config.yaml",
                "--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock",
                "--pod-infra-container-image=registry.k8s.io/pause:3.10",
            ]
            .map(String::from)
            .to_vec(),
            config: Some(KUBEADM_CONFIG.into()),
            files: vec![
                ("etc/systemd/system/kubelet.service.d/10-kubeadm.conf", 0o644, true),
                ("etc/kubernetes/kubelet.conf", 0o600, true),
                ("etc/kubernetes/pki/ca.crt", 0o644, true),
                ("var/lib/kubelet/config.yaml", 0o644, true),
            ],
            unit: UNIT.into(),
            proxy: Some((
                ["/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf", "--hostname-override=node-1"]
                    .map(String::from)
                    .to_vec(),
                "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nclientConnection:\n  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf\nmetricsBindAddress: \"\"\nmode: iptables\n".into(),
            )),
            impostor: false,
            proxy_kubeconfig: (0o644, true),
        }
    }

    /// The default node hardened as the benchmark asks.
    fn hardened() -> Spec {
        let mut spec = Spec::kubeadm_default();
        let config = KUBEADM_CONFIG.replace("streamingConnectionIdleTimeout: 0s", "streamingConnectionIdleTimeout: 5m")
            + "readOnlyPort: 0\nmakeIPTablesUtilChains: true\neventRecordQPS: 5\nfeatureGates:\n  RotateKubeletServerCertificate: true\n\
               tlsCertFile: /var/lib/kubelet/pki/kubelet.crt\ntlsPrivateKeyFile: /var/lib/kubelet/pki/kubelet.key\n\
               tlsCipherSuites:\n- TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\n- TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384\n\
               podPidsLimit: 4096\nseccompDefault: true\n";
        spec.config = Some(config);
        spec.files =
            spec.files.iter().map(|(p, _, r)| (*p, if p.ends_with("ca.crt") { 0o644 } else { 0o600 }, *r)).collect();
        spec.unit.push_str("IPAddressDeny=any\nIPAddressAllow=localhost 10.0.0.0/8\n");
        spec.proxy_kubeconfig = (0o600, true);
        spec
    }
}

struct Built {
    dir: PathBuf,
    node: Node,
}

impl Drop for Built {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Builds `spec` under a new directory and discovers it.
fn build(spec: &Spec) -> Built {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("sensor-bench-node-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (host, proc) = (dir.join("host"), dir.join("proc"));
    let uid = unsafe { libc::geteuid() };
    let gid = unsafe { libc::getegid() };
    let write = |path: PathBuf, text: &str, mode: u32| {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    // The test's own user is `root` on this node; a file that must not be root's is given
    // to `nobody` (the tests run as root).
    let not_root = |path: &std::path::Path| std::os::unix::fs::chown(path, Some(65534), Some(65534)).unwrap();
    for (path, mode, root) in &spec.files {
        let text = match *path {
            "var/lib/kubelet/config.yaml" => spec.config.clone().unwrap_or_default(),
            p if p.contains("systemd") => spec.unit.clone(),
            _ => "x\n".into(),
        };
        write(host.join(path), &text, *mode);
        if !root {
            not_root(&host.join(path));
        }
    }
    write(
        host.join("etc/passwd"),
        &format!("root:x:{uid}:{gid}::/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n"),
        0o644,
    );
    write(host.join("etc/group"), &format!("root:x:{gid}:\nnogroup:x:65534:\n"), 0o644);
    let process = |pid: u32, comm: &str, args: &[String], root: &std::path::Path, ns: &str, start: u64| {
        let p = proc.join(pid.to_string());
        std::fs::create_dir_all(p.join("ns")).unwrap();
        std::fs::write(p.join("comm"), format!("{comm}\n")).unwrap();
        std::fs::write(p.join("cmdline"), args.iter().map(|a| format!("{a}\0")).collect::<String>()).unwrap();
        let fields: Vec<String> = (0..18).map(|i| i.to_string()).collect();
        std::fs::write(p.join("stat"), format!("{pid} ({comm}) S {} {start} 0\n", fields.join(" "))).unwrap();
        for kind in ["pid", "mnt"] {
            std::os::unix::fs::symlink(format!("{kind}:[{ns}]"), p.join("ns").join(kind)).unwrap();
        }
        std::os::unix::fs::symlink(root, p.join("root")).unwrap();
    };
    process(1, "systemd", &["/sbin/init".to_owned()], &host, "4026531836", 1);
    if spec.impostor {
        let container = dir.join("container");
        std::fs::create_dir_all(&container).unwrap();
        let args = ["kubelet", "--anonymous-auth=false", "--read-only-port=0"].map(String::from);
        process(50, "kubelet", &args, &container, "4026532999", 10);
    }
    process(812, "kubelet", &spec.kubelet_args, &host, "4026531836", 100);
    if let Some((args, config)) = &spec.proxy {
        let pod = dir.join("kube-proxy-root");
        write(pod.join("var/lib/kube-proxy/config.conf"), config, 0o644);
        let kubeconfig = pod.join("var/lib/kube-proxy/kubeconfig.conf");
        write(kubeconfig.clone(), "x\n", spec.proxy_kubeconfig.0);
        if !spec.proxy_kubeconfig.1 {
            not_root(&kubeconfig);
        }
        process(2301, "kube-proxy", args, &pod, "4026532501", 300);
    }
    let node = Node::discover(&proc);
    Built { dir, node }
}

/// The outcome of check `id` of `benchmark` on `spec`'s node.
fn outcome(benchmark: &str, spec: &Spec, id: &str) -> CheckResult {
    let built = build(spec);
    let report = Benchmark::named(benchmark).unwrap().run(&built.node).unwrap();
    report.results.into_iter().find(|r| r.id == id).unwrap_or_else(|| panic!("no check {id} in {benchmark}"))
}

fn statuses(report: &Report) -> Vec<(String, Status)> {
    report.results.iter().map(|r| (r.id.clone(), r.status)).collect()
}

#[test]
fn every_benchmark_loads_with_the_checks_of_its_version() {
    let counts: Vec<(String, usize)> =
        names().map(|n| (n.to_owned(), Benchmark::named(n).unwrap().checks.len())).collect();
    // As the benchmark documents number them (kube-bench's encoding has the same).
    assert_eq!(counts, [("cis-1.10".into(), 24), ("cis-1.11".into(), 26), ("cis-1.12".into(), 25)]);
    for name in names() {
        let b = Benchmark::named(name).unwrap();
        for c in &b.checks {
            let tests = [c.file.is_some(), c.setting.is_some() || !c.settings.is_empty(), c.unit.is_some()];
            assert_eq!(tests.iter().filter(|t| **t).count(), 1, "{name} {}: one thing to test", c.id);
            assert!(c.file.is_some() || c.expect.is_some(), "{name} {}: an expectation", c.id);
        }
    }
    assert!(Benchmark::named("cis-9.9").unwrap_err().to_string().contains("cis-1.10, cis-1.11, cis-1.12"));
    assert_eq!(Benchmark::for_kubelet(Some("v1.31.2")).unwrap().benchmark, "cis-1.12");
    assert_eq!(Benchmark::for_kubelet(Some("1.30")).unwrap().benchmark, "cis-1.11");
    assert_eq!(Benchmark::for_kubelet(Some("v1.28.9")).unwrap().benchmark, "cis-1.10");
    assert_eq!(Benchmark::for_kubelet(None).unwrap().benchmark, "cis-1.12");
}

/// kube-bench's verdicts for these two nodes, from its checks in `../shared/cis` (each
/// check's audit and test against the node's files and flags; a comment where this sensor
/// differs, and why).
#[test]
fn a_default_and_a_hardened_kubeadm_node_get_kube_benchs_verdicts() {
    use Status::{Fail, Pass, Warn};
    let default = Benchmark::named("cis-1.12").unwrap().run(&build(&Spec::kubeadm_default()).node).unwrap();
    let want: Vec<(&str, Status)> = vec![
        ("4.1.1", Fail), // 10-kubeadm.conf is 644
        ("4.1.2", Pass),
        // kube-proxy's kubeconfig, as kube-proxy loads it in its pod (a ConfigMap: 644). kube-bench
        // looks for one on the host, finds none and warns for both; here an absent file passes
        // (the benchmark's "if ... exists"), and the present one is read.
        ("4.1.3", Warn),
        ("4.1.4", Pass),
        ("4.1.5", Pass),
        ("4.1.6", Pass),
        ("4.1.7", Pass),
        ("4.1.8", Pass),
        ("4.1.9", Fail), // config.yaml is 644
        ("4.1.10", Pass),
        ("4.2.1", Pass),
        ("4.2.2", Pass),
        ("4.2.3", Pass),
        ("4.2.4", Pass), // not set: kube-bench passes; the default with a config file is 0
        ("4.2.5", Warn), // kubeadm writes streamingConnectionIdleTimeout: 0s
        ("4.2.6", Pass),
        ("4.2.7", Pass), // kube-proxy's --hostname-override is not the kubelet's
        ("4.2.8", Pass),
        ("4.2.9", Warn),
        ("4.2.10", Pass),
        ("4.2.11", Pass),
        ("4.2.12", Warn),
        ("4.2.13", Warn),
        ("4.2.14", Warn),
        ("4.3.1", Pass), // metricsBindAddress "" is kube-proxy's default, 127.0.0.1:10249
    ];
    let want: Vec<(String, Status)> = want.into_iter().map(|(id, s)| (id.to_owned(), s)).collect();
    assert_eq!(statuses(&default), want, "{}", default.table());
    // 4.1.3: kube-bench reads a kube-proxy kubeconfig on the host; here, the one kube-proxy loads.
    let proxy = default.results.iter().find(|r| r.id == "4.1.3").unwrap();
    assert_eq!((proxy.observed.as_str(), proxy.source.as_str()), ("644", "/var/lib/kube-proxy/kubeconfig.conf"));
    assert!(default.failed(), "the default node fails the benchmark");

    let hardened = Benchmark::named("cis-1.12").unwrap().run(&build(&Spec::hardened()).node).unwrap();
    let not_passed: Vec<(String, Status)> = statuses(&hardened).into_iter().filter(|(_, s)| *s != Pass).collect();
    assert_eq!(not_passed, [], "{}", hardened.table());
    assert!(!hardened.failed());
    // cis-1.11's systemd check reads the unit's IPAddressDeny line.
    let unit = outcome("cis-1.11", &Spec::hardened(), "4.2.15");
    assert_eq!((unit.status, unit.observed.as_str()), (Pass, "any"));
    assert!(unit.source.ends_with("10-kubeadm.conf:6"), "{}", unit.source);
    assert_eq!(outcome("cis-1.11", &Spec::kubeadm_default(), "4.2.15").status, Warn);
}

/// A node that passes `id` and one that fails it, from the hardened node, with the source
/// and remediation the report gives for the failure.
#[test]
fn every_check_passes_and_fails_on_a_node_made_for_it() {
    type Change = fn(&mut Spec);
    fn set_config(spec: &mut Spec, from: &str, to: &str) {
        let config = spec.config.take().unwrap();
        assert!(config.contains(from), "{from}");
        spec.config = Some(config.replace(from, to));
    }
    fn mode(spec: &mut Spec, file: &str, mode: u32) {
        spec.files.iter_mut().find(|(p, _, _)| p.contains(file)).unwrap().1 = mode;
    }
    fn not_root(spec: &mut Spec, file: &str) {
        spec.files.iter_mut().find(|(p, _, _)| p.contains(file)).unwrap().2 = false;
    }
    fn flag(spec: &mut Spec, f: &str) {
        spec.kubelet_args.push(f.to_owned());
    }
    // (check, what makes the hardened node fail it, what the report then says was observed)
    let cases: Vec<(&str, Change, &str)> = vec![
        ("4.1.1", |s| mode(s, "10-kubeadm", 0o640), "640"),
        ("4.1.3", |s| s.proxy_kubeconfig.0 = 0o640, "640"),
        ("4.1.4", |s| s.proxy_kubeconfig.1 = false, "nobody:nogroup"),
        ("4.1.2", |s| not_root(s, "10-kubeadm"), "nobody:nogroup"),
        ("4.1.5", |s| mode(s, "kubelet.conf", 0o644), "644"),
        ("4.1.6", |s| not_root(s, "kubelet.conf"), "nobody:nogroup"),
        ("4.1.7", |s| mode(s, "ca.crt", 0o666), "666"),
        ("4.1.8", |s| not_root(s, "ca.crt"), "nobody:nogroup"),
        ("4.1.9", |s| mode(s, "config.yaml", 0o604), "604"),
        ("4.1.10", |s| not_root(s, "config.yaml"), "nobody:nogroup"),
        ("4.2.1", |s| set_config(s, "    enabled: false\n  webhook", "    enabled: true\n  webhook"), "true"),
        ("4.2.2", |s| set_config(s, "mode: Webhook", "mode: AlwaysAllow"), "AlwaysAllow"),
        ("4.2.3", |s| set_config(s, "    clientCAFile: /etc/kubernetes/pki/ca.crt\n", ""), "not set"),
        ("4.2.4", |s| set_config(s, "readOnlyPort: 0", "readOnlyPort: 10255"), "10255"),
        ("4.2.5", |s| set_config(s, "streamingConnectionIdleTimeout: 5m", "streamingConnectionIdleTimeout: 0s"), "0s"),
        ("4.2.6", |s| flag(s, "--make-iptables-util-chains=false"), "false"),
        ("4.2.7", |s| flag(s, "--hostname-override=web-1"), "web-1"),
        ("4.2.8", |s| set_config(s, "eventRecordQPS: 5", "eventRecordQPS: -1"), "-1"),
        (
            "4.2.9",
            |s| set_config(s, "tlsPrivateKeyFile: /var/lib/kubelet/pki/kubelet.key\n", ""),
            "/var/lib/kubelet/pki/kubelet.crt; not set",
        ),
        ("4.2.10", |s| set_config(s, "rotateCertificates: true", "rotateCertificates: false"), "false"),
        ("4.2.11", |s| flag(s, "--feature-gates=RotateKubeletServerCertificate=false,Foo=true"), "false"),
        (
            "4.2.12",
            |s| set_config(s, "- TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "- TLS_RSA_WITH_AES_128_CBC_SHA"),
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_RSA_WITH_AES_128_CBC_SHA",
        ),
        ("4.2.13", |s| set_config(s, "podPidsLimit: 4096", "podPidsLimit: -1"), "-1"),
        ("4.2.14", |s| set_config(s, "seccompDefault: true", "seccompDefault: false"), "false"),
        ("4.3.1", |s| s.proxy.as_mut().unwrap().0.push("--metrics-bind-address=0.0.0.0:10249".into()), "0.0.0.0:10249"),
    ];
    let hardened = Spec::hardened();
    let benchmark = Benchmark::named("cis-1.12").unwrap();
    for check in &benchmark.checks {
        let (_, change, observed) =
            cases.iter().find(|(id, _, _)| *id == check.id).unwrap_or_else(|| panic!("{}: no failing case", check.id));
        assert_eq!(outcome("cis-1.12", &hardened, &check.id).status, Status::Pass, "{} on the hardened node", check.id);
        let mut failing = hardened.clone();
        change(&mut failing);
        let result = outcome("cis-1.12", &failing, &check.id);
        let want = if check.automated { Status::Fail } else { Status::Warn };
        assert_eq!(result.status, want, "{}: {result:?}", check.id);
        assert_eq!(result.observed, *observed, "{}", check.id);
        assert!(!result.remediation.is_empty() && !result.remediation.contains("{path}"), "{}", check.id);
    }
    // The proxy kubeconfig checks (manual) pass when kube-proxy runs without one it names.
    let mut no_proxy = hardened.clone();
    no_proxy.proxy = None;
    for id in ["4.1.3", "4.1.4", "4.3.1"] {
        let r = outcome("cis-1.12", &no_proxy, id);
        assert_eq!(r.status, Status::Pass, "{id} without kube-proxy: {r:?}");
    }
}

#[test]
fn flags_win_over_the_file_and_defaults_fill_what_neither_sets() {
    // A flag overrides the file, and says so.
    let mut spec = Spec::hardened();
    spec.kubelet_args.push("--anonymous-auth=true".into());
    let r = outcome("cis-1.12", &spec, "4.2.1");
    assert_eq!((r.status, r.observed.as_str(), r.source.as_str()), (Status::Fail, "true", "flag --anonymous-auth"));
    assert!(r.remediation.contains("anonymous"), "{}", r.remediation);
    // A bool flag alone is true; `--name value` takes the next argument.
    spec.kubelet_args.extend(["--read-only-port".into(), "10255".into(), "--seccomp-default".into()]);
    assert_eq!(outcome("cis-1.12", &spec, "4.2.4").observed, "10255");
    assert_eq!(outcome("cis-1.12", &spec, "4.2.14").status, Status::Pass);
    // The file's value names its line.
    let r = outcome("cis-1.12", &Spec::hardened(), "4.2.2");
    assert_eq!(r.source, "/var/lib/kubelet/config.yaml:12");
    // Without a config file, the kubelet's command-line defaults apply: anonymous requests,
    // AlwaysAllow and the read-only port.
    let mut flags_only = Spec::kubeadm_default();
    flags_only.kubelet_args.retain(|a| !a.starts_with("--config"));
    for (id, observed) in [("4.2.1", "true"), ("4.2.2", "AlwaysAllow"), ("4.2.4", "10255")] {
        let r = outcome("cis-1.12", &flags_only, id);
        assert_ne!(r.status, Status::Pass, "{id}");
        assert_eq!((r.observed.as_str(), r.source.as_str()), (observed, "default of kubelet (flags only)"), "{id}");
    }
    // With the kubeadm config file, its defaults: rotation of the server certificate on.
    let r = outcome("cis-1.12", &Spec::kubeadm_default(), "4.2.11");
    assert_eq!((r.status, r.source.as_str()), (Status::Pass, "default of kubelet (with a config file)"));
}

#[test]
fn a_kubelet_in_a_container_is_not_the_nodes() {
    let mut spec = Spec::kubeadm_default();
    spec.impostor = true;
    let built = build(&spec);
    let report = Benchmark::named("cis-1.12").unwrap().run(&built.node).unwrap();
    assert_eq!(report.kubelet_pid, 812, "the impostor is older, but not in the host's namespaces");
    assert_eq!(report.notes, ["kubelet pid 50 (not in the host's namespaces)"]);
    assert_eq!(report.results.iter().find(|r| r.id == "4.2.5").unwrap().status, Status::Warn);
    // No kubelet on the host: an error, not a report.
    spec.kubelet_args = vec![];
    let mut built = build(&spec);
    built.node.kubelet = None;
    let e = Benchmark::named("cis-1.12").unwrap().run(&built.node).unwrap_err().to_string();
    assert!(e.contains("no kubelet runs on this node"), "{e}");
}

#[test]
fn reports_render_as_a_table_json_and_junit() {
    let built = build(&Spec::kubeadm_default());
    let report = Benchmark::named("cis-1.12").unwrap().run(&built.node).unwrap();
    let table = report.table();
    assert!(table.contains("[FAIL] 4.1.1   Ensure that the kubelet service file permissions"), "{table}");
    assert!(table.contains("observed: 644 (/etc/systemd/system/kubelet.service.d/10-kubeadm.conf)"), "{table}");
    assert!(table.contains("4.1.1 chmod 600 /etc/systemd/system/kubelet.service.d/10-kubeadm.conf"), "{table}");
    assert!(table.ends_with("17 checks PASS, 2 FAIL, 6 WARN\n"), "{table}");
    let json = report.json();
    assert_eq!(json["totals"], serde_json::json!({"pass": 17, "fail": 2, "warn": 6}));
    assert_eq!(json["results"][0]["status"], "Fail");
    let xml = report.junit();
    assert!(xml.contains("tests=\"25\" failures=\"2\" skipped=\"6\""), "{xml}");
    assert_eq!(xml.matches("<testcase ").count(), 25);
    assert_eq!(xml.matches("<failure ").count(), 2);
}

#[test]
fn drift_alerts_only_a_check_that_passed_and_low_severity_checks_warn() {
    let built = build(&Spec::hardened());
    let benchmark = Benchmark::named("cis-1.12").unwrap();
    let passing = benchmark.run(&built.node).unwrap();
    let mut failing_spec = Spec::hardened();
    failing_spec.kubelet_args.push("--anonymous-auth=true".into());
    failing_spec.kubelet_args.push("--read-only-port=10255".into());
    let failing = benchmark.run(&build(&failing_spec).node).unwrap();
    let before: std::collections::BTreeMap<String, Status> =
        passing.results.iter().map(|r| (r.id.clone(), r.status)).collect();
    // The first run has nothing to drift from; failing again is no news.
    assert!(watch::drift(None, &failing).is_empty());
    let after: std::collections::BTreeMap<String, Status> =
        failing.results.iter().map(|r| (r.id.clone(), r.status)).collect();
    assert!(watch::drift(Some(&after), &failing).is_empty());
    let alerts = watch::drift(Some(&before), &failing);
    let got: Vec<(String, crate::rules::Priority)> = alerts
        .iter()
        .map(|a| {
            (
                a.fields.iter().find(|(k, _)| &**k == "benchmark.check").unwrap().1.clone().unwrap().to_string(),
                a.priority,
            )
        })
        .collect();
    assert_eq!(
        got,
        [("4.2.1".into(), crate::rules::Priority::Error), ("4.2.4".into(), crate::rules::Priority::Warning)]
    );
    assert_eq!(alerts[0].rule, DRIFT_RULE);
    assert!(
        alerts[0].message.contains("observed=true expected=false source=flag --anonymous-auth"),
        "{}",
        alerts[0].message
    );
    // The operator's low-severity checks warn instead of failing.
    let mut lowered = failing.clone();
    lowered.lower(&["4.2.1".into()]);
    assert_eq!(lowered.results.iter().find(|r| r.id == "4.2.1").unwrap().status, Status::Warn);
    assert!(!lowered.failed());
}

/// cis-1.10 and cis-1.11 give 1.12's verdicts on the checks they share, but where their
/// checks differ: 1.10's CA file check asks for 600 (not 644) and has no seccomp check, 1.11
/// adds the systemd unit's IPAddressDeny.
#[test]
fn the_older_versions_differ_from_1_12_where_their_checks_do() {
    for spec in [Spec::kubeadm_default(), Spec::hardened()] {
        let node = build(&spec);
        let run = |name: &str| -> std::collections::BTreeMap<String, Status> {
            statuses(&Benchmark::named(name).unwrap().run(&node.node).unwrap()).into_iter().collect()
        };
        let (v10, v11, v12) = (run("cis-1.10"), run("cis-1.11"), run("cis-1.12"));
        for (id, status) in &v12 {
            match id.as_str() {
                "4.1.7" => assert_eq!(v10[id], Status::Warn, "1.10 wants the CA file at 600; it is 644"),
                "4.2.14" => assert!(!v10.contains_key(id)),
                _ => assert_eq!(v10.get(id), Some(status), "cis-1.10 {id}"),
            }
            assert_eq!(v11.get(id), Some(status), "cis-1.11 {id}");
        }
        let deny = if spec.unit.contains("IPAddressDeny=any") { Status::Pass } else { Status::Warn };
        assert_eq!(v11["4.2.15"], deny);
        assert_eq!((v10.len(), v11.len()), (24, 26));
    }
}
