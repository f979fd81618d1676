//! Test harness for kernel-level tests: a capture session that collects decoded events,
//! and a way to run syscall scenarios in a separate process (the `actor` binary).

use std::{
    collections::HashMap,
    process::Command,
    sync::mpsc,
    time::{Duration, Instant},
};

use sensor::{
    capture::{Capture, CaptureConfig},
    enrich::cri::{self, proto},
    event::{Clock, Event, decode},
};
use sensor_abi::config::Counters;

pub mod bench;
pub mod webdriver;

/// A loopback address with a port that was free a moment ago (for a metrics endpoint).
pub fn free_loopback_port() -> Result<std::net::SocketAddr, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free loopback port: {e}"))
}

/// `GET path` over HTTP/1.1 on `addr`: the status code and the body.
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> Result<(u16, String), String> {
    http_get_with(addr, path, &[])
}

/// `GET path` with extra `headers` (`Authorization`...): the status code and the body.
pub fn http_get_with(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(u16, String), String> {
    http_request(addr, "GET", path, headers, "").map(|answer| (answer.status, answer.body))
}

/// An HTTP answer: its status, header lines and body.
pub struct HttpAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpAnswer {
    /// The `name=value` part of the `Set-Cookie` header setting `name`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .find(|(_, v)| v.starts_with(&format!("{name}=")))
            .map(|(_, v)| v.split(';').next().unwrap_or_default().to_owned())
    }
}

/// `METHOD path` over HTTP/1.1 on `addr` with `headers` and `body` (sent as a form when
/// not empty and no Content-Type is given).
pub fn http_request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<HttpAnswer, String> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    let mut lines: String = headers.iter().map(|(name, value)| format!("{name}: {value}\r\n")).collect();
    if !body.is_empty() && !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
        lines.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{lines}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(|e| format!("reading {path}: {e}"))?;
    let (head, body) = response.split_once("\r\n\r\n").ok_or_else(|| format!("{path}: no HTTP header"))?;
    let mut head_lines = head.lines();
    let status = head_lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok());
    let headers =
        head_lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).collect();
    Ok(HttpAnswer { status: status.ok_or("no HTTP status")?, headers, body: body.to_owned() })
}

/// 127.0.0.1 at `port`, as the socket calls take it (the `actor` and `loadgen` scenarios).
pub fn loopback_sockaddr(port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from_be_bytes([127, 0, 0, 1]).to_be() },
        sin_zero: [0; 8],
    }
}

/// The size of a `sockaddr_in`, as the socket calls take it.
pub const SOCKADDR_IN_LEN: u32 = size_of::<libc::sockaddr_in>() as u32;

/// How long to wait for an expected event.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Fails the test with a clear message when not root: these tests load eBPF programs.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "kernel tests load eBPF programs: run them as root");
}

/// A running capture whose decoded events arrive on a channel.
pub struct Session {
    runtime: tokio::runtime::Runtime,
    events: mpsc::Receiver<Event>,
    counters: tokio::sync::mpsc::Sender<tokio::sync::oneshot::Sender<Vec<Counters>>>,
    /// Events read so far that no expectation consumed (shown when one fails).
    seen: Vec<Event>,
}

impl Session {
    /// Starts capturing `syscalls` (comma-separated names; empty for sched events only).
    pub fn start(syscalls: &str) -> Self {
        let mut cfg = CaptureConfig::default();
        cfg.select_syscalls(syscalls).expect("known syscalls");
        Self::with_config(cfg)
    }

    /// Starts capturing with `cfg`.
    pub fn with_config(cfg: CaptureConfig) -> Self {
        require_root();
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let (tx, events) = mpsc::channel();
        let (ctx, mut crx) = tokio::sync::mpsc::channel::<tokio::sync::oneshot::Sender<Vec<Counters>>>(4);
        let mut capture = runtime.block_on(async { Capture::start(&cfg) }).expect("capture starts");
        runtime.spawn(async move {
            let clock = Clock::now();
            loop {
                tokio::select! {
                    batch = capture.next_batch() => {
                        let Some(batch) = batch else { return };
                        for record in batch {
                            let event = decode(&record, &clock).expect("kernel records decode");
                            if tx.send(event).is_err() {
                                return;
                            }
                        }
                    }
                    Some(reply) = crx.recv() => {
                        let _ = reply.send(capture.counters().expect("counters"));
                    }
                }
            }
        });
        Self { runtime, events, counters: ctx, seen: Vec::new() }
    }

    /// Waits for the first event matching `pred`, failing the test after [`EVENT_TIMEOUT`].
    pub fn expect(&mut self, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
        if let Some(i) = self.seen.iter().position(&pred) {
            return self.seen.remove(i);
        }
        let deadline = Instant::now() + EVENT_TIMEOUT;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.events.recv_timeout(left) {
                Ok(e) if pred(&e) => return e,
                Ok(e) => self.seen.push(e),
                Err(_) => break,
            }
        }
        let tail: Vec<String> = self.seen.iter().rev().take(20).map(|e| e.to_string()).collect();
        panic!("no event for {what} within {EVENT_TIMEOUT:?}; last events seen:\n{}", tail.join("\n"));
    }

    /// Reads every event that arrives within `window`.
    pub fn collect_for(&mut self, window: Duration) -> Vec<Event> {
        let deadline = Instant::now() + window;
        let mut all = std::mem::take(&mut self.seen);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.events.recv_timeout(left) {
                Ok(e) => all.push(e),
                Err(_) => break,
            }
        }
        all
    }

    /// The kernel-side counters, per CPU.
    pub fn counters(&self) -> Vec<Counters> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.runtime.block_on(async {
            self.counters.send(tx).await.expect("capture task alive");
            rx.await.expect("counters reply")
        })
    }

    /// The syscall event `name` from process `pid`.
    pub fn expect_syscall(&mut self, pid: u32, name: &str) -> Event {
        self.expect(&format!("{name} from pid {pid}"), |e| e.pid == pid && e.syscall().is_some_and(|s| s.name == name))
    }
}

/// What the actor reports: its pid, and the scenario's results by name.
#[derive(Debug)]
pub struct ActorReport {
    /// Process id of the actor.
    pub pid: u32,
    /// The scenario's results (return values, fds, child pids, ports...).
    pub values: serde_json::Map<String, serde_json::Value>,
}

impl ActorReport {
    /// The report in what an actor printed: its last line that is a JSON object (a scenario
    /// that execs another program prints its report before that program's output).
    pub fn parse(stdout: &str) -> Self {
        let mut values = stdout
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(l).ok())
            .unwrap_or_else(|| panic!("actor printed no JSON report: {stdout}"));
        let pid = values.remove("pid").and_then(|v| v.as_u64()).expect("actor pid") as u32;
        Self { pid, values }
    }

    /// A floating-point result.
    pub fn float(&self, key: &str) -> f64 {
        self.values
            .get(key)
            .and_then(|v| v.as_f64())
            .unwrap_or_else(|| panic!("actor reported no {key}: {:?}", self.values))
    }

    /// An integer result.
    pub fn int(&self, key: &str) -> i64 {
        self.values
            .get(key)
            .and_then(|v| v.as_i64())
            .unwrap_or_else(|| panic!("actor reported no {key}: {:?}", self.values))
    }
}

/// Path of the `actor` binary: cargo puts it beside the `deps/` folder of the running
/// test or bench executable.
pub fn actor_path() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.parent().and_then(|deps| deps.parent()).expect("target dir").join("actor")
}

/// The `sensor` binary cargo built beside the running test's `deps/` folder.
pub fn sensor_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.parent().and_then(|deps| deps.parent()).expect("target dir").join("sensor")
}

/// `sensor` with its log at `info` and, unless the arguments say otherwise (`-o
/// metrics.address=...` wins over the environment), its metrics endpoint on a free loopback
/// port: tests run sensors side by side, and the default port fits one per host.
pub fn sensor_command() -> Command {
    let mut command = Command::new(sensor_binary());
    command.env("SENSOR_LOG", "info").env("SENSOR_CONFIG__METRICS__ADDRESS", "127.0.0.1:0");
    // A test that fails leaves no sensor behind: it dies with the thread that started it
    // (its test), instead of capturing every later test's events.
    // SAFETY: prctl is async-signal-safe and touches no memory of this process.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command
}

/// The JSON alerts `sensor` prints on its piped stdout, as they come (a thread reads them
/// until the receiver goes away).
pub fn alert_stream(sensor: &mut std::process::Child) -> mpsc::Receiver<serde_json::Value> {
    use std::io::{BufRead, BufReader};
    let stdout = BufReader::new(sensor.stdout.take().expect("piped stdout"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if tx.send(serde_json::from_str(&line).expect("a JSON alert")).is_err() {
                return;
            }
        }
    });
    rx
}

/// The metrics of the sensor serving them at `addr`, now.
pub fn scrape(addr: std::net::SocketAddr) -> bench::prom::Scrape {
    let (status, body) = http_get(addr, "/metrics").expect("the metrics endpoint");
    assert_eq!(status, 200, "/metrics: {body}");
    bench::prom::Scrape::parse(&body)
}

/// Waits up to `timeout` for an alert of `alerts` that `wanted` accepts (skipping others);
/// it and when it came.
pub fn await_alert(
    alerts: &mpsc::Receiver<serde_json::Value>,
    timeout: Duration,
    wanted: impl Fn(&serde_json::Value) -> bool,
) -> Option<(serde_json::Value, Instant)> {
    let deadline = Instant::now() + timeout;
    loop {
        let alert = alerts.recv_timeout(deadline.saturating_duration_since(Instant::now())).ok()?;
        if wanted(&alert) {
            return Some((alert, Instant::now()));
        }
    }
}

/// Starts `sensor ARGS` with its stdout piped and waits until its programs are attached;
/// its log goes on to this test's stderr.
pub fn start_sensor(args: &[&str]) -> std::process::Child {
    start_sensor_from(sensor_command(), args, "sensor")
}

/// [`start_sensor`] from `command` ([`sensor_command`] with its own environment); its log
/// lines are prefixed with `label`.
pub fn start_sensor_from(mut command: Command, args: &[&str], label: &str) -> std::process::Child {
    use std::io::{BufRead, BufReader};
    let mut sensor = command
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the sensor binary is built by `cargo test` (or `cargo build -p sensor`)");
    let mut stderr = BufReader::new(sensor.stderr.take().expect("piped stderr"));
    let started = Instant::now();
    loop {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).expect("sensor log") > 0, "sensor exited early");
        if line.contains(" probes, ") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the sensor did not start");
    }
    let label = label.to_owned();
    std::thread::spawn(move || stderr.lines().map_while(Result::ok).for_each(|l| eprintln!("{label}: {l}")));
    sensor
}

/// Runs `actor SCENARIO ARGS...` to completion and returns its report.
pub fn actor(args: &[&str]) -> ActorReport {
    actor_at(&actor_path(), args)
}

/// Runs the actor binary at `program` (a copy of [`actor_path`]) with `args` to completion
/// and returns its report.
pub fn actor_at(program: &std::path::Path, args: &[&str]) -> ActorReport {
    let out = Command::new(program).args(args).output().expect("actor runs");
    assert!(out.status.success(), "actor {args:?} failed: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    ActorReport::parse(&String::from_utf8_lossy(&out.stdout))
}

/// A fresh path under /tmp for a test to create.
pub fn temp_path(tag: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("/tmp/sensor-test-{}-{tag}-{n}", std::process::id())
}

/// The container test bed (`tests/testbed/testbed.sh`), leased by this process: started
/// unless it is up, and stopped when the last lease holder that started it is done.
pub struct TestBed {
    script: std::path::PathBuf,
    env: HashMap<String, String>,
    released: bool,
}

impl TestBed {
    /// Starts the test bed unless it is up, and takes a lease on it.
    pub fn up() -> Self {
        Self::try_up().unwrap_or_else(|why| panic!("{why}"))
    }

    /// Like [`TestBed::up`], but says why the bed cannot start (no container runtime
    /// installed, a daemon that does not answer) instead of failing the test: for the bench,
    /// which reports that and goes on.
    pub fn try_up() -> Result<Self, String> {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testbed/testbed.sh");
        let start = Instant::now();
        let up = Command::new(&script)
            .args(["up", &std::process::id().to_string()])
            .stdout(std::io::stderr())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        // From here on the lease is released on drop, whatever fails next.
        let mut bed = Self { script, env: HashMap::new(), released: false };
        // Its progress log, shown as before (after the fact).
        let stderr = String::from_utf8_lossy(&up.stderr);
        eprint!("{stderr}");
        if !up.status.success() {
            let why = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message");
            return Err(format!("testbed.sh up failed ({}): {why}", up.status));
        }
        eprintln!("test bed up in {:.1} s", start.elapsed().as_secs_f64());
        let out = Command::new(&bed.script).arg("env").output().map_err(|e| format!("testbed.sh env: {e}"))?;
        if !out.status.success() {
            return Err(format!("testbed.sh env failed ({})", out.status));
        }
        bed.env = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Ok(bed)
    }

    /// A setting printed by `testbed.sh env`.
    pub fn get(&self, key: &str) -> &str {
        self.env.get(key).unwrap_or_else(|| panic!("testbed.sh env has no {key}"))
    }

    /// Every setting printed by `testbed.sh env`.
    pub fn env(&self) -> &HashMap<String, String> {
        &self.env
    }

    /// A docker CLI command on the test bed's dockerd.
    pub fn docker_command(&self) -> Command {
        let mut c = Command::new(self.get("DOCKER"));
        c.env("DOCKER_HOST", format!("unix://{}", self.get("DOCKER_SOCK")));
        c
    }

    /// `docker ARGS` on the test bed's dockerd, which must succeed; its stdout, trimmed.
    pub fn docker(&self, args: &[&str]) -> String {
        let out = self.docker_command().args(args).output().expect("docker runs");
        assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// `docker ARGS` on the test bed's dockerd: whether it succeeded (actions that are
    /// refused, or programs that exit non-zero, still happened).
    pub fn docker_status(&self, args: &[&str]) -> bool {
        self.docker_command().args(args).output().is_ok_and(|o| o.status.success())
    }

    fn release(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.released = true;
        Command::new(&self.script).args(["down", &std::process::id().to_string()]).status()
    }

    /// Releases the lease, failing the test if that fails.
    pub fn down(mut self) {
        let status = self.release().expect("run testbed.sh down");
        assert!(status.success(), "testbed.sh down failed ({status})");
    }
}

impl Drop for TestBed {
    /// A test that panicked still releases its lease.
    fn drop(&mut self) {
        if !self.released {
            let _ = self.release();
        }
    }
}

// ------------------------------------------------------------------------------------ CRI pods

/// The Kubernetes namespace of the tests' CRI pods.
pub const POD_NAMESPACE: &str = "sensor-test";

/// A pod for [`CriPod::run`]: its name, labels beyond kubelet's, and its one container.
pub struct PodSpec {
    /// The pod's name (`k8s.pod.name`).
    pub name: String,
    /// Pod labels besides the ones kubelet sets.
    pub labels: Vec<(String, String)>,
    /// The container's name (`container.name`).
    pub container: String,
    /// Container labels besides the ones kubelet sets.
    pub container_labels: Vec<(String, String)>,
    /// The container's command.
    pub command: Vec<String>,
    /// Host paths mounted into the container.
    pub mounts: Vec<proto::Mount>,
}

/// A CRI pod sandbox and its container on the test bed's containerd, made as kubelet makes
/// them (its labels, its cgroupfs parent `/kubepods/besteffort/pod<uid>`) through the
/// sensor's own CRI client; removed on drop (also when the test fails).
pub struct CriPod {
    /// A client of the test bed's CRI socket.
    pub client: cri::Client,
    handle: tokio::runtime::Handle,
    /// The pod sandbox's id.
    pub sandbox_id: String,
    /// The pod's uid.
    pub uid: String,
    /// The id of the pod's container.
    pub container_id: String,
}

impl CriPod {
    /// Runs `spec` on the test bed whose settings (`testbed.sh env`) are `env`, through the
    /// tokio runtime of `handle` (not from inside it): RunPodSandbox, CreateContainer and
    /// StartContainer, as kubelet calls them.
    pub fn run(handle: &tokio::runtime::Handle, env: &HashMap<String, String>, spec: PodSpec) -> Self {
        let setting = |key: &str| env.get(key).unwrap_or_else(|| panic!("testbed.sh env has no {key}")).as_str();
        let mut client = {
            let _in_runtime = handle.enter();
            cri::connect(setting("CRI_SOCK"))
        };
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let uid = format!("{:08x}-5e50-4000-8000-{:012x}", std::process::id(), nanos);
        let kubelet_labels = [
            ("io.kubernetes.pod.name", spec.name.as_str()),
            ("io.kubernetes.pod.namespace", POD_NAMESPACE),
            ("io.kubernetes.pod.uid", uid.as_str()),
        ];
        let labels = kubelet_labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .chain(spec.labels.iter().cloned())
            .collect();
        let config = proto::PodSandboxConfig {
            metadata: Some(proto::PodSandboxMetadata {
                name: spec.name.clone(),
                uid: uid.clone(),
                namespace: POD_NAMESPACE.to_owned(),
                attempt: 0,
            }),
            hostname: spec.name.clone(),
            log_directory: format!("{}/{POD_NAMESPACE}_{}_{uid}", setting("POD_LOG_DIR"), spec.name),
            labels,
            linux: Some(proto::LinuxPodSandboxConfig {
                cgroup_parent: format!("/kubepods/besteffort/pod{uid}"),
                security_context: Some(proto::LinuxSandboxSecurityContext {
                    namespace_options: Some(proto::NamespaceOption {
                        network: proto::NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let sandbox_id = handle
            .block_on(client.run_pod_sandbox(proto::RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: String::new(),
            }))
            .expect("RunPodSandbox")
            .into_inner()
            .pod_sandbox_id;
        // Removed on drop from here on, whatever fails next.
        let mut pod = Self {
            client: client.clone(),
            handle: handle.clone(),
            sandbox_id,
            uid: uid.clone(),
            container_id: String::new(),
        };

        // The container, labelled as kubelet labels it.
        let labels = kubelet_labels
            .iter()
            .chain(&[("io.kubernetes.container.name", spec.container.as_str())])
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .chain(spec.container_labels.iter().cloned())
            .collect();
        let container = proto::ContainerConfig {
            metadata: Some(proto::ContainerMetadata { name: spec.container.clone(), attempt: 0 }),
            image: Some(proto::ImageSpec { image: setting("IMAGE").to_owned(), ..Default::default() }),
            command: spec.command,
            labels,
            mounts: spec.mounts,
            log_path: format!("{}/0.log", spec.container),
            ..Default::default()
        };
        let request = proto::CreateContainerRequest {
            pod_sandbox_id: pod.sandbox_id.clone(),
            config: Some(container),
            sandbox_config: Some(config),
        };
        pod.container_id =
            handle.block_on(client.create_container(request)).expect("CreateContainer").into_inner().container_id;
        handle
            .block_on(client.start_container(proto::StartContainerRequest { container_id: pod.container_id.clone() }))
            .expect("StartContainer");
        pod
    }

    /// Runs `cmd` in the pod's container as kubelet runs `kubectl exec` (the ExecSync RPC),
    /// waiting for it to exit; its exit code and output.
    pub fn exec(&self, cmd: &[&str]) -> proto::ExecSyncResponse {
        let request = proto::ExecSyncRequest {
            container_id: self.container_id.clone(),
            cmd: cmd.iter().map(|s| (*s).to_owned()).collect(),
            timeout: 0,
        };
        self.handle
            .block_on(self.client.clone().exec_sync(request))
            .unwrap_or_else(|e| panic!("ExecSync {cmd:?}: {e}"))
            .into_inner()
    }
}

impl Drop for CriPod {
    fn drop(&mut self) {
        let mut client = self.client.clone();
        let sandbox_id = self.sandbox_id.clone();
        let result = self.handle.block_on(async move {
            let filter = proto::ContainerFilter { pod_sandbox_id: sandbox_id.clone(), ..Default::default() };
            let listed = client.list_containers(proto::ListContainersRequest { filter: Some(filter) }).await;
            for c in listed.map_err(|e| e.to_string())?.into_inner().containers {
                let stop = proto::StopContainerRequest { container_id: c.id.clone(), timeout: 0 };
                client.stop_container(stop).await.map_err(|e| e.to_string())?;
                let remove = proto::RemoveContainerRequest { container_id: c.id };
                client.remove_container(remove).await.map_err(|e| e.to_string())?;
            }
            let stop = proto::StopPodSandboxRequest { pod_sandbox_id: sandbox_id.clone() };
            client.stop_pod_sandbox(stop).await.map_err(|e| e.to_string())?;
            let remove = proto::RemovePodSandboxRequest { pod_sandbox_id: sandbox_id };
            client.remove_pod_sandbox(remove).await.map_err(|e| e.to_string())?;
            Ok::<_, String>(())
        });
        if let Err(e) = result {
            eprintln!("removing CRI pod {}: {e}", self.sandbox_id);
        }
        // kubelet removes the pod's cgroup parent; so do we (only empty ones go).
        for hierarchy in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
            let _ = std::fs::remove_dir(hierarchy.path().join(format!("kubepods/besteffort/pod{}", self.uid)));
        }
    }
}
