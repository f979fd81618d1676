//! Container enrichment against real runtimes: a CRI pod (containerd, created the way kubelet
//! does), a Docker container and a podman container. Commands run inside each; the sensor's
//! [`ContainerCache`] must resolve those processes' host pids to the right container and pod.
//!
//! Needs root. Brings `tests/testbed/testbed.sh` up with a lease (`up PID`) and releases it at
//! the end (`down PID`): the bed stops when no other test run holds a lease and a test started
//! it. Runs without libtest's harness so that the test bed is set up once and released at the
//! end: `cargo test -p sensor-tests --test containers [FILTER]`.

use std::{
    collections::HashMap,
    panic::AssertUnwindSafe,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use sensor::enrich::{
    ContainerCache, ContainerId, ContainerView, EnrichConfig, MetaStatus, RuntimeApi, RuntimeEndpoint, RuntimeKind,
    cri::proto,
};
use sensor_tests::{CriPod, POD_NAMESPACE, PodSpec, TestBed};

/// How long a resolution may take before the test fails (the first one includes the fetch).
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

/// One scenario: panics on failure.
type Test = fn(&Ctx);

fn main() {
    // libtest's arguments, as far as they matter here: filters, --exact, --skip F, --list.
    let (mut filters, mut skips, mut exact, mut list) = (Vec::new(), Vec::new(), false, false);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--exact" => exact = true,
            "--list" => list = true,
            "--skip" => skips.extend(args.next()),
            "--test-threads" | "--format" | "--color" | "--logfile" | "-Z" => drop(args.next()),
            flag if flag.starts_with('-') => {}
            _ => filters.push(arg),
        }
    }
    let tests: &[(&str, Test)] = &[
        ("cri_pod_container_resolves_with_pod_fields", cri_pod),
        ("sensor_run_alerts_carry_pod_fields", sensor_run_in_pod),
        ("cri_container_start_and_pod_removal_events_update_the_cache", cri_events),
        ("containerd_ctr_container_resolves", containerd_ctr),
        ("docker_container_resolves", docker),
        ("podman_container_resolves", podman),
        ("docker_start_and_remove_events_update_the_cache", docker_events),
        ("podman_start_and_remove_events_update_the_cache", podman_events),
        ("running_containers_are_fetched_when_the_cache_starts", prefetch_running),
        ("host_process_is_host", host),
        ("metadata_lookup_latency", latency),
    ];
    let matches = |name: &str, f: &String| if exact { name == f } else { name.contains(f.as_str()) };
    let selected: Vec<_> = tests
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| matches(name, f)))
        .filter(|(name, _)| !skips.iter().any(|f| matches(name, f)))
        .collect();
    if list {
        for (name, _) in &selected {
            println!("{name}: test");
        }
        return;
    }
    println!("running {} tests", selected.len());
    if selected.is_empty() {
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("containers: these tests start container runtimes; run them as root");
        std::process::exit(1);
    }
    let bed = TestBed::up();
    let ctx = Ctx::new(&bed);
    let mut failed = Vec::new();
    let total = selected.len();
    for (name, test) in selected {
        let start = Instant::now();
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| test(&ctx)));
        let verdict = if outcome.is_ok() { "ok" } else { "FAILED" };
        println!("test {name} ... {verdict} ({:.2} s)", start.elapsed().as_secs_f64());
        if outcome.is_err() {
            failed.push(*name);
        }
    }
    drop(ctx);
    bed.down();
    // libtest's closing line, so runners that add up counts read this one too.
    let passed = total - failed.len();
    if failed.is_empty() {
        println!("test result: ok. {passed} passed; 0 failed");
    } else {
        println!("test result: FAILED. {passed} passed; {} failed ({})", failed.len(), failed.join(", "));
        std::process::exit(101);
    }
}

/// What every test gets: the runtime, the cache under test, the test bed's settings.
struct Ctx {
    rt: tokio::runtime::Runtime,
    env: HashMap<String, String>,
    endpoints: Vec<RuntimeEndpoint>,
}

impl Ctx {
    fn new(bed: &TestBed) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let endpoints = vec![
            RuntimeEndpoint::new(RuntimeApi::Cri, bed.get("CRI_SOCK")),
            RuntimeEndpoint::new(RuntimeApi::Containerd, bed.get("CRI_SOCK")),
            RuntimeEndpoint::new(RuntimeApi::Docker, bed.get("DOCKER_SOCK")),
            RuntimeEndpoint::new(RuntimeApi::Podman, bed.get("PODMAN_SOCK")),
        ];
        Self { rt, env: bed.env().clone(), endpoints }
    }

    fn get(&self, key: &str) -> &str {
        &self.env[key]
    }

    /// A fresh cache on the test bed's sockets (default wait bound), not fetching the
    /// containers already running (so each test counts only its own lookups).
    fn cache(&self) -> ContainerCache {
        self.cache_with(|_| {})
    }

    /// A fresh cache on the test bed's sockets, configured further by `tune`.
    fn cache_with(&self, tune: impl FnOnce(&mut EnrichConfig)) -> ContainerCache {
        let mut config =
            EnrichConfig { endpoints: self.endpoints.clone(), prefetch_running: false, ..EnrichConfig::default() };
        tune(&mut config);
        ContainerCache::new(config, self.rt.handle().clone())
    }

    /// Looks `pid` up until its metadata is known (later events get what the first missed).
    fn resolve(&self, cache: &ContainerCache, pid: u32, cgroup_id: Option<u64>) -> ContainerView {
        let deadline = Instant::now() + RESOLVE_TIMEOUT;
        loop {
            let view = self.rt.block_on(cache.lookup(pid, cgroup_id));
            match view.status {
                MetaStatus::Known | MetaStatus::Host => return view,
                MetaStatus::Unknown => panic!("pid {pid}: container unknown (process gone?)"),
                MetaStatus::Pending | MetaStatus::Failed if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => panic!("pid {pid}: no metadata within {RESOLVE_TIMEOUT:?}: {view:?}; stats {:?}", cache.stats()),
            }
        }
    }

    /// A command with the test bed's podman configuration.
    fn podman(&self) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", self.get("CONTAINERS_CONF"))
            .env("CONTAINERS_STORAGE_CONF", self.get("CONTAINERS_STORAGE_CONF"));
        c
    }

    /// A docker CLI command on the test bed's dockerd.
    fn docker(&self) -> Command {
        let mut c = Command::new(self.get("DOCKER"));
        c.env("DOCKER_HOST", format!("unix://{}", self.get("DOCKER_SOCK")));
        c
    }
}

/// Runs `cmd`, failing the test with its output unless it succeeds; returns trimmed stdout.
fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A number no other process uses as its `sleep` argument.
fn unique_seconds(salt: u32) -> u32 {
    100_000 + (std::process::id() % 10_000) * 10 + salt
}

/// The host pid of the process whose argv is exactly `argv`, waiting for it to appear.
fn pid_of(argv: &[&str]) -> u32 {
    let want: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
    let deadline = Instant::now() + RESOLVE_TIMEOUT;
    loop {
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            if std::fs::read(entry.path().join("cmdline")).is_ok_and(|c| c == want) {
                return pid;
            }
        }
        assert!(Instant::now() < deadline, "no process {argv:?} within {RESOLVE_TIMEOUT:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The cgroup v2 id (inode of its cgroup directory) of `pid`, as `bpf_get_current_cgroup_id()`.
fn cgroup_v2_id(pid: u32) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root = mountinfo
        .lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            (right.split_whitespace().next()? == "cgroup2").then(|| left.split_whitespace().nth(4).unwrap().to_owned())
        })
        .expect("a cgroup2 mount");
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let path = text.lines().find_map(|l| l.strip_prefix("0::")).expect("a cgroup v2 line");
    std::fs::metadata(Path::new(&root).join(path.trim_start_matches('/'))).unwrap().ino()
}

/// Waits until `cache` holds the metadata of container `full_id` without being asked for it
/// (fetched on a runtime event or at start).
fn wait_cached(cache: &ContainerCache, full_id: &str, kind: RuntimeKind, why: &str) {
    let id = ContainerId::Container { id: full_id.into(), kind };
    let deadline = Instant::now() + RESOLVE_TIMEOUT;
    while cache.peek(&id).is_none() {
        assert!(Instant::now() < deadline, "{full_id} not fetched ({why}): {:?}", cache.stats());
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until `cache` no longer holds container `full_id` (forgotten on a runtime event).
fn wait_forgotten(cache: &ContainerCache, full_id: &str, why: &str) {
    let id = ContainerId::Container { id: full_id.into(), kind: RuntimeKind::Cri };
    let deadline = Instant::now() + RESOLVE_TIMEOUT;
    while cache.peek(&id).is_some() {
        assert!(Instant::now() < deadline, "{full_id} not forgotten ({why}): {:?}", cache.stats());
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Asserts `field` of `view` renders `want`.
fn expect_field(view: &ContainerView, field: &str, key: Option<&str>, want: &str) {
    assert_eq!(
        view.field(field, key).as_deref(),
        Some(want),
        "{field}{} of {view:#?}",
        key.map(|k| format!("[{k}]")).unwrap_or_default()
    );
}

/// The fields every runtime gives a container of the test bed's image: the id in both
/// lengths, the name, the image and its parts, the runtime, and not privileged.
fn expect_container(ctx: &Ctx, view: &ContainerView, full_id: &str, name: &str, runtime: &str) {
    expect_field(view, "container.full_id", None, full_id);
    expect_field(view, "container.id", None, &full_id[..12]);
    expect_field(view, "container.name", None, name);
    expect_field(view, "container.image", None, ctx.get("IMAGE"));
    expect_field(view, "container.image.repository", None, "localhost/sensor-testbed");
    expect_field(view, "container.image.tag", None, "1");
    expect_field(view, "container.type", None, runtime);
    expect_field(view, "container.privileged", None, "false");
}

/// Host paths bind-mounted into a test container, removed on drop (after the container): a
/// directory, mounted read-only at `/data`, and a file in the place of the Docker socket.
struct HostMounts(PathBuf);

impl HostMounts {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("sensor-ct-mounts-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(dir.join("docker.sock"), "").unwrap();
        Self(dir)
    }

    /// The directory mounted at `/data`.
    fn data(&self) -> String {
        self.0.join("data").display().to_string()
    }

    /// The file mounted at `/var/run/docker.sock`.
    fn socket(&self) -> String {
        self.0.join("docker.sock").display().to_string()
    }
}

impl Drop for HostMounts {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            eprintln!("removing {}: {e}", self.0.display());
        }
    }
}

/// Asserts the mount fields of a container started with `host`'s mounts, against the mounts
/// its runtime reports (`source:dest:mode:rdrw:propagation` each), looked up as Falco's rules
/// do: by source (`container.mount.source` by destination), by glob, and missing (`none`).
fn expect_mounts(view: &ContainerView, host: &HostMounts, reported: &[String]) {
    let all = view.field("container.mounts", None).unwrap_or_else(|| panic!("container.mounts of {view:#?}"));
    let mut listed: Vec<&str> = all.split(' ').collect();
    let mut want: Vec<&str> = reported.iter().map(String::as_str).collect();
    listed.sort_unstable();
    want.sort_unstable();
    assert_eq!(listed, want, "container.mounts");
    for (source, dest, rdwr) in [(host.data(), "/data", "false"), (host.socket(), "/var/run/docker.sock", "true")] {
        let entry = reported.iter().find(|m| m.starts_with(&format!("{source}:{dest}:"))).expect("reported");
        expect_field(view, "container.mount", Some(&source), entry);
        expect_field(view, "container.mount.dest", Some(&source), dest);
        expect_field(view, "container.mount.source", Some(dest), &source);
        expect_field(view, "container.mount.rdwr", Some(&source), rdwr);
    }
    let glob = format!("{}/*.sock", host.0.display());
    expect_field(view, "container.mount.dest", Some(&glob), "/var/run/docker.sock");
    expect_field(view, "container.mount.dest", Some("/proc*"), "none");
    expect_field(view, "container.mount.source", Some("/etc/kubernetes"), "none");
    let first = view.field("container.mount", Some("0")).unwrap();
    assert!(reported.iter().any(|m| *m == *first), "container.mount[0] = {first} is a reported mount");
}

// ------------------------------------------------------------------------------------ CRI pod

/// A test pod and the host paths mounted into it, removed after it.
struct TestPod {
    pod: CriPod,
    mounts: HostMounts,
}

impl std::ops::Deref for TestPod {
    type Target = CriPod;
    fn deref(&self) -> &CriPod {
        &self.pod
    }
}

/// Runs pod `pod_name` (kubelet's labels plus `app=web`, `tier=frontend`) with one container
/// `web` running `sleep 3600` with the pod's [`HostMounts`], as kubelet would; returns the pod
/// (removed on drop), its uid and the container's id.
fn run_cri_pod(ctx: &Ctx, pod_name: &str) -> (TestPod, String, String) {
    let mounts = HostMounts::new(pod_name);
    let volumes = vec![
        proto::Mount { container_path: "/data".into(), host_path: mounts.data(), readonly: true, ..Default::default() },
        proto::Mount {
            container_path: "/var/run/docker.sock".into(),
            host_path: mounts.socket(),
            ..Default::default()
        },
    ];
    let spec = PodSpec {
        name: pod_name.to_owned(),
        labels: [("app", "web"), ("tier", "frontend")].map(|(k, v)| (k.to_owned(), v.to_owned())).to_vec(),
        container: "web".into(),
        container_labels: Vec::new(),
        command: vec!["sleep".into(), "3600".into()],
        mounts: volumes,
    };
    let pod = CriPod::run(ctx.rt.handle(), &ctx.env, spec);
    let (uid, container_id) = (pod.uid.clone(), pod.container_id.clone());
    (TestPod { pod, mounts }, uid, container_id)
}

/// `sensor run` watching a CRI pod: an alert on a command run in it carries the pod's
/// Kubernetes fields and the container's.
fn sensor_run_in_pod(ctx: &Ctx) {
    use std::io::{BufRead, BufReader};
    let rules = std::env::temp_dir().join(format!("sensor-pod-rules-{}.yaml", std::process::id()));
    std::fs::write(
        &rules,
        "- rule: Credential file read in a pod\n  desc: test rule\n  \
         condition: evt.type in (open, openat) and fd.name = /etc/shadow and k8s.ns.name exists\n  \
         output: pod read (pod=%k8s.pod.name ns=%k8s.ns.name uid=%k8s.pod.uid app=%k8s.pod.label[app] \
         container=%container.name image=%container.image.repository)\n  priority: WARNING\n",
    )
    .unwrap();
    let mut run = sensor_tests::sensor_command()
        .args(["run", "--json", "--duration", "12", "--container-wait-ms", "100", "--rules"])
        .arg(&rules)
        .args(["--cri-socket", ctx.get("CRI_SOCK")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the sensor binary is built by `cargo test`");
    let mut stderr = BufReader::new(run.stderr.take().unwrap());
    loop {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "sensor exited early");
        if line.contains(" probes, ") {
            break;
        }
    }
    std::thread::spawn(move || stderr.lines().map_while(Result::ok).for_each(|l| println!("  sensor: {l}")));

    let pod_name = format!("shadow-{}", std::process::id());
    let (pod, uid, container_id) = run_cri_pod(ctx, &pod_name);
    let mut client = pod.client.clone();
    let exec = proto::ExecSyncRequest {
        container_id: container_id.clone(),
        cmd: vec!["sh".into(), "-c".into(), "echo 'root:*:1::::::' > /etc/shadow; cat /etc/shadow".into()],
        timeout: 0,
    };
    ctx.rt.handle().block_on(client.exec_sync(exec)).expect("ExecSync");
    let out = run.wait_with_output().unwrap();
    drop(pod);
    std::fs::remove_file(&rules).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let alert: serde_json::Value = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|a| a["output_fields"]["k8s.pod.name"] == pod_name.as_str())
        .unwrap_or_else(|| panic!("no alert from pod {pod_name}: {stdout}"));
    let f = &alert["output_fields"];
    assert_eq!(f["k8s.ns.name"], POD_NAMESPACE);
    assert_eq!(f["k8s.pod.uid"], uid.as_str());
    assert_eq!(f["k8s.pod.label[app]"], "web");
    assert_eq!(f["container.name"], "web");
    assert_eq!(f["container.image.repository"], "localhost/sensor-testbed");
    assert_eq!(f["container.id"], &container_id[..12], "suggested output fields: {alert}");
}

fn cri_pod(ctx: &Ctx) {
    let handle = ctx.rt.handle().clone();
    let pod_name = format!("web-{}", std::process::id());
    let (pod, uid, container_id) = run_cri_pod(ctx, &pod_name);
    let sandbox_id = pod.sandbox_id.clone();
    let mut client = pod.client.clone();

    // A command inside it (ExecSync returns when it exits; it runs until the pod goes).
    let secs = unique_seconds(1).to_string();
    let exec = proto::ExecSyncRequest {
        container_id: container_id.clone(),
        cmd: vec!["sleep".into(), secs.clone()],
        timeout: 0,
    };
    let mut exec_client = client.clone();
    let exec_task = handle.spawn(async move { exec_client.exec_sync(exec).await });
    let exec_pid = pid_of(&["sleep", &secs]);
    // The container's own process, from the runtime's verbose status.
    let status = handle
        .block_on(
            client
                .container_status(proto::ContainerStatusRequest { container_id: container_id.clone(), verbose: true }),
        )
        .expect("ContainerStatus")
        .into_inner();
    let verbose: serde_json::Value = serde_json::from_str(&status.info["info"]).unwrap();
    let init_pid = u32::try_from(verbose["pid"].as_u64().expect("pid in verbose info")).unwrap();
    // CRI reports the two mounts the container asked for, with the default propagation.
    let reported: Vec<String> = status
        .status
        .as_ref()
        .expect("a container status")
        .mounts
        .iter()
        .map(|m| {
            assert_eq!(m.propagation, proto::MountPropagation::PropagationPrivate as i32, "{m:?}");
            format!("{}:{}::{}:private", m.host_path, m.container_path, !m.readonly)
        })
        .collect();
    assert_eq!(reported.len(), 2, "{reported:?}");
    let sandbox_status =
        handle
            .block_on(client.pod_sandbox_status(proto::PodSandboxStatusRequest {
                pod_sandbox_id: sandbox_id.clone(),
                verbose: true,
            }))
            .expect("PodSandboxStatus")
            .into_inner();
    let pod_ip = sandbox_status.status.and_then(|s| s.network).map(|n| n.ip).unwrap_or_default();
    let sandbox_verbose: serde_json::Value = serde_json::from_str(&sandbox_status.info["info"]).unwrap();
    let sandbox_pid =
        u32::try_from(sandbox_verbose["pid"].as_u64().expect("pid in the sandbox's verbose info")).unwrap();
    assert!(!pod_ip.is_empty(), "the pod has an IP on the test bed's CNI bridge");

    let cache = ctx.cache();
    for (what, pid) in [("exec'd sleep", exec_pid), ("container init", init_pid)] {
        let view = ctx.resolve(&cache, pid, None);
        println!(
            "  CRI {what} pid {pid}: {} {}",
            view.field("container.id", None).unwrap_or_default(),
            view.field("k8s.pod.name", None).unwrap_or_default()
        );
        expect_container(ctx, &view, &container_id, "web", "containerd");
        expect_mounts(&view, &pod.mounts, &reported);
        expect_field(&view, "container.label", Some("io.kubernetes.container.name"), "web");
        expect_field(&view, "container.ip", None, &pod_ip);
        expect_field(&view, "k8s.pod.name", None, &pod_name);
        expect_field(&view, "k8s.ns.name", None, POD_NAMESPACE);
        expect_field(&view, "k8s.pod.uid", None, &uid);
        expect_field(&view, "k8s.pod.full_sandbox_id", None, &sandbox_id);
        expect_field(&view, "k8s.pod.sandbox_id", None, &sandbox_id[..12]);
        expect_field(&view, "k8s.pod.label", Some("app"), "web");
        expect_field(&view, "k8s.pod.label", Some("tier"), "frontend");
        expect_field(&view, "k8s.pod.ip", None, &pod_ip);
        assert!(view.field("container.start_ts", None).is_some(), "start_ts known");
    }
    // The pod's sandbox ("pause") process belongs to the pod too.
    let sandbox = ctx.resolve(&cache, sandbox_pid, None);
    expect_field(&sandbox, "container.full_id", None, &sandbox_id);
    expect_field(&sandbox, "container.name", None, "POD");
    expect_field(&sandbox, "k8s.pod.name", None, &pod_name);
    expect_field(&sandbox, "k8s.pod.uid", None, &uid);
    expect_field(&sandbox, "k8s.pod.label", Some("app"), "web");
    exec_task.abort();
    let stats = cache.stats();
    println!("  stats: {stats:?}");
    assert_eq!(stats.failures, 0, "no failed fetches: {stats:?}");
    drop(pod);
}

/// With the cache following containerd's events, a new CRI pod's container is fetched when
/// its task starts (its first lookup is a hit) and forgotten when the pod is removed.
fn cri_events(ctx: &Ctx) {
    let cache = ctx.cache();
    // Let the follower subscribe before the pod starts.
    std::thread::sleep(Duration::from_millis(300));
    let (pod, _uid, container_id) = run_cri_pod(ctx, &format!("events-{}", std::process::id()));
    let mut client = pod.client.clone();
    let status = ctx
        .rt
        .block_on(
            client
                .container_status(proto::ContainerStatusRequest { container_id: container_id.clone(), verbose: true }),
        )
        .expect("ContainerStatus")
        .into_inner();
    let verbose: serde_json::Value = serde_json::from_str(&status.info["info"]).unwrap();
    let init_pid = u32::try_from(verbose["pid"].as_u64().expect("pid in verbose info")).unwrap();
    wait_cached(&cache, &container_id, RuntimeKind::Cri, "containerd's task start event");
    let view = cache.lookup_now(init_pid, None);
    expect_field(&view, "container.full_id", None, &container_id);
    expect_field(&view, "container.name", None, "web");
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.failures), (1, 0, 0), "{stats:?}");
    drop(pod);
    wait_forgotten(&cache, &container_id, "containerd's container delete event");
    println!("  stats: {:?}", cache.stats());
}

// ------------------------------------------------------------------------- containerd (ctr)

/// A `ctr` container, killed and removed on drop.
struct CtrContainer {
    sock: String,
    id: String,
}

impl Drop for CtrContainer {
    fn drop(&mut self) {
        let ctr = |args: &[&str]| {
            Command::new("ctr")
                .args(["-a", &self.sock, "-n", "default"])
                .args(args)
                .output()
                .map(|o| o.status.success())
        };
        let _ = ctr(&["tasks", "kill", "-s", "KILL", &self.id]);
        let deadline = Instant::now() + RESOLVE_TIMEOUT;
        while !matches!(ctr(&["tasks", "rm", "-f", &self.id]), Ok(true)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if !matches!(ctr(&["containers", "rm", &self.id]), Ok(true)) {
            eprintln!("removing ctr container {} failed", self.id);
        }
    }
}

/// A container made by `ctr` (namespace default) is known only to containerd's own API.
fn containerd_ctr(ctx: &Ctx) {
    let sock = ctx.get("CRI_SOCK").to_owned();
    // ctr's ids are free-form; runtimes (and the cgroup parser) use 64 hex digits.
    let id = format!("{:08x}{}", std::process::id(), "c7".repeat(28));
    let secs = unique_seconds(6).to_string();
    run(Command::new("ctr").args(["-a", &sock, "-n", "default", "run", "-d", "--label", "app=ctr"]).args([
        ctx.get("IMAGE"),
        &id,
        "sleep",
        &secs,
    ]));
    let _container = CtrContainer { sock, id: id.clone() };
    let pid = pid_of(&["sleep", &secs]);
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(text.contains(&format!("/default/{id}")), "ctr's cgroup path is /<namespace>/<id>: {text}");
    let cache = ctx.cache();
    let view = ctx.resolve(&cache, pid, None);
    expect_field(&view, "container.full_id", None, &id);
    expect_field(&view, "container.id", None, &id[..12]);
    expect_field(&view, "container.name", None, &id);
    expect_field(&view, "container.image", None, ctx.get("IMAGE"));
    expect_field(&view, "container.image.repository", None, "localhost/sensor-testbed");
    expect_field(&view, "container.type", None, "containerd");
    expect_field(&view, "container.label", Some("app"), "ctr");
    // `ctr run` without --net-host gives the container its own network namespace.
    expect_field(&view, "container.host_network", None, "false");
    assert!(view.field("container.start_ts", None).is_some(), "start_ts known");
    let stats = cache.stats();
    println!("  ctr pid {pid}: {}; stats: {stats:?}", view.field("container.id", None).unwrap_or_default());
    assert_eq!(stats.failures, 0, "no failed fetches: {stats:?}");
}

// ---------------------------------------------------------------------------- Docker and podman

/// A container removed on drop (also when the test fails).
struct Removed(Command);

impl Drop for Removed {
    fn drop(&mut self) {
        match self.0.output() {
            Ok(out) if out.status.success() => {}
            other => eprintln!("removing a test container: {:?}: {other:?}", self.0),
        }
    }
}

/// Starts a container with the given CLI, runs a command in it, and checks both processes.
fn docker_like(ctx: &Ctx, cli: fn(&Ctx) -> Command, runtime: &str, salt: u32) {
    let name = format!("sensor-ct-{runtime}-{}", std::process::id());
    let mounts = HostMounts::new(runtime);
    let id = run(cli(ctx)
        .args(["run", "-d", "--name", &name, "--network", "none", "--label", "app=ct"])
        .args(["-v", &format!("{}:/data:ro", mounts.data())])
        .args(["-v", &format!("{}:/var/run/docker.sock", mounts.socket())])
        .args([ctx.get("IMAGE"), "sleep", "3600"]));
    let mut rm = cli(ctx);
    rm.args(["rm", "-f", &name]);
    if runtime == "podman" {
        // Without it podman waits 10 s for `sleep` (pid 1) to honour SIGTERM.
        rm.args(["-t", "0"]);
    }
    let _cleanup = Removed(rm);
    assert_eq!(id.len(), 64, "{runtime} run printed the full id: {id}");
    let secs = unique_seconds(salt).to_string();
    run(cli(ctx).args(["exec", "-d", &name, "sleep", &secs]));
    let exec_pid = pid_of(&["sleep", &secs]);
    let init_pid: u32 = run(cli(ctx).args(["inspect", "-f", "{{.State.Pid}}", &name])).parse().unwrap();
    let inspected: serde_json::Value =
        serde_json::from_str(&run(cli(ctx).args(["inspect", "-f", "{{json .Mounts}}", &name]))).unwrap();
    let reported: Vec<String> = inspected
        .as_array()
        .expect("Mounts")
        .iter()
        .map(|m| {
            let s = |key: &str| m[key].as_str().unwrap_or_default().to_owned();
            format!("{}:{}:{}:{}:{}", s("Source"), s("Destination"), s("Mode"), m["RW"], s("Propagation"))
        })
        .collect();

    let cache = ctx.cache();
    for (what, pid) in [("exec'd sleep", exec_pid), ("container init", init_pid)] {
        let view = ctx.resolve(&cache, pid, None);
        println!(
            "  {runtime} {what} pid {pid}: {} {}",
            view.field("container.id", None).unwrap_or_default(),
            view.field("container.name", None).unwrap_or_default()
        );
        expect_container(ctx, &view, &id, &name, runtime);
        expect_mounts(&view, &mounts, &reported);
        expect_field(&view, "container.label", Some("app"), "ct");
        assert_eq!(view.field("k8s.pod.name", None), None, "not a pod");
        assert!(view.field("container.start_ts", None).is_some(), "start_ts known");
    }

    // Events carry the cgroup v2 id: once learned from a live process, it still resolves
    // after that process has exited.
    let script = format!("sleep 1; echo {}", unique_seconds(salt + 5));
    let mut short = cli(ctx);
    short.args(["exec", &name, "sh", "-c", &script]).stdout(std::process::Stdio::null());
    let mut child = short.spawn().expect("exec a short command");
    let short_pid = pid_of(&["sh", "-c", &script]);
    let cgroup_id = cgroup_v2_id(short_pid);
    let first = ctx.resolve(&cache, short_pid, Some(cgroup_id));
    expect_field(&first, "container.full_id", None, &id);
    assert!(child.wait().expect("wait for exec").success());
    let deadline = Instant::now() + RESOLVE_TIMEOUT;
    while Path::new(&format!("/proc/{short_pid}")).exists() {
        assert!(Instant::now() < deadline, "pid {short_pid} did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
    let after = ctx.rt.block_on(cache.lookup(short_pid, Some(cgroup_id)));
    expect_field(&after, "container.full_id", None, &id);
    expect_field(&after, "container.name", None, &name);
    let stats = cache.stats();
    println!("  stats: {stats:?}");
    assert_eq!(stats.failures, 0, "no failed fetches: {stats:?}");
}

/// With the cache already following the runtime's events, a new container's metadata is
/// fetched when it starts (its first lookup is a hit) and dropped when it is removed.
fn events(ctx: &Ctx, cli: fn(&Ctx) -> Command, runtime: &str) {
    let cache = ctx.cache();
    // Let the follower connect before the container starts.
    std::thread::sleep(Duration::from_millis(300));
    let name = format!("sensor-ct-{runtime}-events-{}", std::process::id());
    let id = run(cli(ctx).args(["run", "-d", "--name", &name, "--network", "none", ctx.get("IMAGE"), "sleep", "3600"]));
    let mut rm = cli(ctx);
    rm.args(["rm", "-f", &name]);
    if runtime == "podman" {
        rm.args(["-t", "0"]);
    }
    let init_pid: u32 = run(cli(ctx).args(["inspect", "-f", "{{.State.Pid}}", &name])).parse().unwrap();
    wait_cached(&cache, &id, RuntimeKind::Docker, "start event");
    let view = cache.lookup_now(init_pid, None);
    expect_field(&view, "container.full_id", None, &id);
    expect_field(&view, "container.name", None, &name);
    let stats = cache.stats();
    // Docker reports the start on its own stream and through containerd's (namespace moby).
    assert!(stats.prefetches >= 1, "{stats:?}");
    assert_eq!((stats.hits, stats.misses), (1, 0), "{stats:?}");
    run(&mut rm);
    wait_forgotten(&cache, &id, "destroy/remove event");
    println!("  stats: {:?}", cache.stats());
}

/// A container already running when the cache is made is fetched at once (the CRI and
/// Docker-API runtimes are listed): its first lookup is a hit.
fn prefetch_running(ctx: &Ctx) {
    let name = format!("sensor-ct-running-{}", std::process::id());
    let id =
        run(ctx.docker().args(["run", "-d", "--name", &name, "--network", "none", ctx.get("IMAGE"), "sleep", "3600"]));
    let mut rm = ctx.docker();
    rm.args(["rm", "-f", &name]);
    let _cleanup = Removed(rm);
    let pid: u32 = run(ctx.docker().args(["inspect", "-f", "{{.State.Pid}}", &name])).parse().unwrap();
    let cache = ctx.cache_with(|c| {
        c.prefetch_running = true;
        c.follow_events = false;
    });
    wait_cached(&cache, &id, RuntimeKind::Docker, "listing at start");
    let view = cache.lookup_now(pid, None);
    expect_field(&view, "container.name", None, &name);
    let stats = cache.stats();
    println!("  stats: {stats:?}");
    assert_eq!((stats.hits, stats.misses, stats.failures), (1, 0, 0), "{stats:?}");
}

fn docker_events(ctx: &Ctx) {
    events(ctx, Ctx::docker, "docker");
}

fn podman_events(ctx: &Ctx) {
    events(ctx, Ctx::podman, "podman");
}

fn docker(ctx: &Ctx) {
    docker_like(ctx, Ctx::docker, "docker", 2);
}

fn podman(ctx: &Ctx) {
    docker_like(ctx, Ctx::podman, "podman", 3);
}

// ------------------------------------------------------------------------------------------ host

fn host(ctx: &Ctx) {
    let cache = ctx.cache();
    let mut child = Command::new("sleep").arg(unique_seconds(4).to_string()).spawn().unwrap();
    for pid in [std::process::id(), child.id()] {
        let view = ctx.resolve(&cache, pid, None);
        assert_eq!(view.status, MetaStatus::Host, "pid {pid}");
        expect_field(&view, "container.id", None, "host");
        expect_field(&view, "container.full_id", None, "host");
        assert_eq!(view.field("container.image", None), None);
        assert_eq!(view.field("k8s.pod.name", None), None);
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

// ------------------------------------------------------------------------------------ benchmark

/// Prints the metadata lookup latency on a miss (a real runtime round trip) and on a hit.
fn latency(ctx: &Ctx) {
    let name = format!("sensor-ct-bench-{}", std::process::id());
    run(ctx.docker().args(["run", "-d", "--name", &name, "--network", "none", ctx.get("IMAGE"), "sleep", "3600"]));
    let mut rm = ctx.docker();
    rm.args(["rm", "-f", &name]);
    let _cleanup = Removed(rm);
    let pid: u32 = run(ctx.docker().args(["inspect", "-f", "{{.State.Pid}}", &name])).parse().unwrap();

    // Miss: a fresh cache each time, waiting as long as the fetch takes.
    let mut misses = Vec::new();
    for _ in 0..20 {
        // Nothing else asks the runtime meanwhile: no listing at start, no event stream.
        let cache = ctx.cache_with(|c| {
            c.max_wait = Duration::from_secs(5);
            c.follow_events = false;
        });
        let start = Instant::now();
        let view = ctx.rt.block_on(cache.lookup(pid, None));
        misses.push(start.elapsed());
        assert_eq!(view.status, MetaStatus::Known, "{view:?}");
    }
    // Hit: the same container again, by pid (reads /proc/PID/cgroup) and by cgroup id.
    let cache = ctx.cache();
    let cgroup_id = cgroup_v2_id(pid);
    ctx.resolve(&cache, pid, Some(cgroup_id));
    let n = 10_000u32;
    let by_pid = ctx.rt.block_on(async {
        let start = Instant::now();
        for _ in 0..n {
            assert_eq!(cache.lookup(pid, None).await.status, MetaStatus::Known);
        }
        start.elapsed() / n
    });
    let by_cgroup = ctx.rt.block_on(async {
        let start = Instant::now();
        for _ in 0..n {
            assert_eq!(cache.lookup(pid, Some(cgroup_id)).await.status, MetaStatus::Known);
        }
        start.elapsed() / n
    });
    misses.sort();
    let median = misses[misses.len() / 2];
    println!(
        "  lookup latency: miss (Docker API round trip) median {median:?}, min {:?}, max {:?}; \
         hit by pid {by_pid:?}, hit by cgroup id {by_cgroup:?}",
        misses[0],
        misses[misses.len() - 1]
    );
    assert!(by_cgroup < median, "a hit is cheaper than a miss");
}
