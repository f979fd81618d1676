//! Field coverage through the shipped binary: every field of the registry (`sensor
//! list-fields --json`) is either produced on live events — some alert of `sensor run`
//! carries a value for it — or marked unavailable with a reason. None may silently render
//! `<NA>` (a JSON `null`) on every event.
//!
//! One `sensor run --json --all-matches` watches everything. Its rules (written by the test)
//! are one per syscall family of the capture table and one for the scheduler events; each
//! selects only the test's own processes — descendants of the test (`proc.apid`) and the
//! processes of its containers (`container.id`) — and its output names every available
//! field, fields with an argument in representative forms ([`forms`]). A last rule compares
//! `fd.sip.name` with `localhost`, so the sensor resolves that name and the DNS name fields
//! have one to give.
//!
//! The actions: the `actor` scenarios (exec, execveat, memfd and ia32 execs, a failed exec,
//! opens with relative paths, chdir, descriptors, sockets of every family and both ends,
//! sends and receives, ptrace, ids, capabilities, namespaces, clones, mounts, permissions,
//! links, modules, BPF, memory, signals, sessions, the 32-bit gate), a script, `setpriv`
//! adding a capability, a process with a login uid (what `pam_loginuid` sets at a login);
//! commands in a Docker container and in a CRI pod made the way kubelet makes them (each
//! with a label and a read-only bind mount), and in a podman container of an image named by
//! its digest.
//!
//! What counts as produced: a value that is not `null` (a boolean `false` counts); not an
//! empty text — every text field has a non-empty value on some event of the test, so an
//! empty one everywhere would be a field filled with nothing; for the mount fields, not
//! `none` (the containers have the mount the test asks for). The test also asserts that
//! every syscall family's rule fired, that the loader warned about no field (the outputs
//! name no unavailable one), and that no alert was dropped on its way out.
//!
//! Needs root; leases the test bed (`tests/testbed/testbed.sh`). Set `FIELD_COVERAGE_ALERTS`
//! to a path to keep the alerts (JSON lines) for a look at the values.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

use sensor::enrich::cri::proto;
use sensor_abi::syscalls::SYSCALLS;
use sensor_tests::{CriPod, PodSpec, TestBed, actor_path, sensor_binary};
use serde_json::Value;

/// The label both containers carry (and `container.label[...]` reads).
const LABEL: &str = "sensor.coverage";
/// The pod label `k8s.pod.label[...]` reads.
const POD_LABEL: (&str, &str) = ("app", "coverage");
/// How long to keep acting for an awaited alert (the last action's, the DNS names') before
/// failing.
const ALERT_TIMEOUT: Duration = Duration::from_secs(60);

/// One field as `sensor list-fields --json` prints it.
struct FieldEntry {
    name: String,
    arg: String,
    /// `None` when available, else the reason.
    unavailable: Option<String>,
}

/// The fields syscall events supply, as `sensor list-fields --json` lists them.
fn list_fields() -> Vec<FieldEntry> {
    let out = Command::new(sensor_binary()).args(["list-fields", "--json"]).output().expect("sensor list-fields runs");
    assert!(out.status.success(), "sensor list-fields --json: {}", String::from_utf8_lossy(&out.stderr));
    let fields: Vec<Value> = serde_json::from_slice(&out.stdout).expect("list-fields prints a JSON array");
    // Kubernetes audit fields come from audit events, not from syscalls (sensor/src/k8s_audit).
    let of_syscalls = |f: &&Value| f["sources"].as_array().is_some_and(|s| s.iter().any(|s| s == "syscall"));
    fields
        .iter()
        .filter(of_syscalls)
        .map(|f| {
            let text =
                |k: &str| f[k].as_str().unwrap_or_else(|| panic!("list-fields entry without {k}: {f}")).to_owned();
            let available = f["available"].as_bool().unwrap_or_else(|| panic!("no `available` in {f}"));
            FieldEntry { name: text("name"), arg: text("arg"), unavailable: (!available).then(|| text("unavailable")) }
        })
        .collect()
}

/// What the representative arguments refer to.
struct Setting {
    /// The host directory both containers mount read-only at `/data`.
    data: String,
    /// Whether the host has a cgroup v1 memory hierarchy (`thread.cgroup.memory`).
    v1_memory: bool,
}

/// The forms the outputs name `field` in: the field itself, or for fields that take an
/// argument, representative ones. An argument-taking field this table does not know fails
/// the test: give it forms here.
fn forms(field: &FieldEntry, set: &Setting) -> Result<Vec<String>, String> {
    let name = field.name.as_str();
    let v = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    Ok(match name {
        _ if field.arg == "none" => vec![name.to_owned()],
        "evt.type.is" => v(&["evt.type.is.openat"]),
        "evt.arg" => v(&["evt.arg[0]", "evt.arg.fd", "evt.arg.flags"]),
        "evt.rawarg" => v(&["evt.rawarg[0]", "evt.rawarg.fd", "evt.rawarg.flags"]),
        "evt.abspath" => v(&["evt.abspath", "evt.abspath.src", "evt.abspath.dst"]),
        "proc.env" => v(&["proc.env", "proc.env[PATH]"]),
        "proc.aenv" => v(&["proc.aenv", "proc.aenv[1]", "proc.aenv[PATH]"]),
        "fd.types" => v(&["fd.types", "fd.types[0]"]),
        "thread.cgroup" if set.v1_memory => v(&["thread.cgroup.unified", "thread.cgroup.memory"]),
        "thread.cgroup" => v(&["thread.cgroup.unified"]),
        "container.label" => vec![format!("container.label[{LABEL}]")],
        "k8s.pod.label" => vec![format!("k8s.pod.label[{}]", POD_LABEL.0)],
        // The configuration's static_fields (the test's sets `coverage`).
        "static" => v(&["static.coverage"]),
        // By index, and by the source path (container.mount.source: by destination).
        "container.mount" => vec!["container.mount[0]".into(), format!("container.mount[{}]", set.data)],
        "container.mount.source" => v(&["container.mount.source[0]", "container.mount.source[/data]"]),
        "container.mount.dest" | "container.mount.mode" | "container.mount.rdwr" | "container.mount.propagation" => {
            vec![format!("{name}[{}]", set.data)]
        }
        _ if field.arg.starts_with("ancestor index") => vec![name.to_owned(), format!("{name}[1]")],
        _ => return Err(format!("{name} takes an argument ({}): give it representative forms in `forms`", field.arg)),
    })
}

/// True when `value` of output field `form` is a value a user can use (see the module doc).
fn produced(form: &str, value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(s) if s.is_empty() => false,
        Value::String(s) if form.starts_with("container.mount") => s != "none",
        _ => true,
    }
}

/// A rule of the generated file: its name and condition (the output is shared).
struct RuleSpec {
    name: String,
    condition: String,
}

/// One rule per syscall family (its syscalls from the capture table, in table order), one
/// for the scheduler events, and one that makes the sensor resolve `localhost`.
fn rules(selected: &str) -> Vec<RuleSpec> {
    let mut families: Vec<(String, Vec<&str>)> = Vec::new();
    for sc in SYSCALLS {
        let family = format!("{:?}", sc.family);
        match families.iter_mut().find(|(f, _)| *f == family) {
            Some((_, names)) => names.push(sc.name),
            None => families.push((family, vec![sc.name])),
        }
    }
    let mut rules: Vec<RuleSpec> = families
        .into_iter()
        .map(|(family, names)| RuleSpec {
            name: format!("coverage {family}"),
            condition: format!("evt.type in ({}) and {selected}", names.join(", ")),
        })
        .collect();
    rules.push(RuleSpec {
        name: "coverage scheduler".into(),
        condition: format!("evt.type in (proc_fork, procexit) and {selected}"),
    });
    rules.push(RuleSpec {
        name: DNS_RULE.into(),
        condition: format!("evt.type = connect and {selected} and fd.sip.name = localhost"),
    });
    rules
}

/// The rule whose alert shows the DNS names resolved.
const DNS_RULE: &str = "coverage DNS names";

/// A YAML single-quoted string.
fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn rules_yaml(rules: &[RuleSpec], output: &str) -> String {
    rules
        .iter()
        .map(|r| {
            format!(
                "- rule: {}\n  desc: field coverage\n  condition: {}\n  output: {}\n  priority: INFO\n",
                quoted(&r.name),
                quoted(&r.condition),
                quoted(output)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

// ------------------------------------------------------------------------------ the sensor

/// `sensor run`, its alerts read as they come and its log kept.
struct Sensor {
    child: std::process::Child,
    alerts: mpsc::Receiver<Value>,
    /// Alerts read so far.
    seen: Vec<Value>,
    /// Every log line.
    log: Arc<Mutex<Vec<String>>>,
    /// Log lines until the programs were attached: the loader's diagnostics are there.
    startup_log: Vec<String>,
    /// The threads reading stdout and stderr.
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Sensor {
    fn start(args: &[&str]) -> Self {
        let mut child = sensor_tests::sensor_command()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the sensor binary is built (`cargo build -p sensor`)");
        let mut stderr = BufReader::new(child.stderr.take().expect("piped stderr"));
        let mut startup_log = Vec::new();
        loop {
            let mut line = String::new();
            let n = stderr.read_line(&mut line).expect("sensor log");
            assert!(n > 0, "sensor exited before attaching its programs:\n{}", startup_log.join(""));
            eprint!("sensor: {line}");
            let attached = line.contains(" probes, ");
            startup_log.push(line);
            if attached {
                break;
            }
        }
        let log = Arc::new(Mutex::new(startup_log.clone()));
        let kept = log.clone();
        let log_reader = std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                eprintln!("sensor: {line}");
                kept.lock().unwrap().push(line);
            }
        });
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let (tx, alerts) = mpsc::channel();
        let alert_reader = std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                let alert = serde_json::from_str(&line).unwrap_or_else(|e| panic!("alert is not JSON ({e}): {line}"));
                if tx.send(alert).is_err() {
                    return;
                }
            }
        });
        Self { child, alerts, seen: Vec::new(), log, startup_log, readers: vec![log_reader, alert_reader] }
    }

    /// Waits until an alert satisfies `pred` (true), or `timeout` passes (false).
    fn wait_for(&mut self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> bool {
        if self.seen.iter().any(&pred) {
            return true;
        }
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.alerts.recv_timeout(left) {
                Ok(alert) => {
                    let hit = pred(&alert);
                    self.seen.push(alert);
                    if hit {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
        false
    }

    /// Does `action`, again every two seconds, until an alert satisfies `pred`; fails the
    /// test after [`ALERT_TIMEOUT`] with `what` was awaited.
    fn act_until(&mut self, what: &str, pred: impl Fn(&Value) -> bool, action: impl Fn()) {
        let deadline = Instant::now() + ALERT_TIMEOUT;
        self.seen.extend(self.alerts.try_iter());
        while !self.seen.iter().any(&pred) {
            action();
            if self.wait_for(Duration::from_secs(2), &pred) {
                return;
            }
            let n = self.seen.len();
            assert!(Instant::now() < deadline, "no alert for {what} within {ALERT_TIMEOUT:?}; {n} alerts came");
        }
    }

    /// Stops the sensor (SIGTERM drains what the kernel holds) and returns every alert and
    /// every log line.
    fn stop(mut self) -> (Vec<Value>, Vec<String>) {
        // SAFETY: kill has no memory preconditions; the pid is our child's.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().expect("sensor exits");
        for reader in std::mem::take(&mut self.readers) {
            reader.join().expect("reader thread");
        }
        assert!(status.success(), "sensor run exited with {status}");
        let mut alerts = std::mem::take(&mut self.seen);
        alerts.extend(self.alerts.try_iter());
        let log = std::mem::take(&mut *self.log.lock().unwrap());
        (alerts, log)
    }
}

impl Drop for Sensor {
    /// A test that failed while the sensor runs does not leave it running.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ------------------------------------------------------------------------------ containers

/// The test bed's settings podman's CLI needs.
const PODMAN_ENV: [&str; 2] = ["CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF"];

/// A container made with a runtime's CLI (`docker`, `podman`) on the test bed, removed on
/// drop.
struct CliContainer {
    program: String,
    env: Vec<(String, String)>,
    /// The arguments that remove it at once.
    rm: &'static [&'static str],
    name: String,
    /// The full id.
    id: String,
}

impl CliContainer {
    /// A Docker container on the test bed's dockerd.
    fn docker(bed: &TestBed, name: String, run_args: &[&str]) -> Self {
        let env = vec![("DOCKER_HOST".to_owned(), format!("unix://{}", bed.get("DOCKER_SOCK")))];
        Self::run(bed.get("DOCKER").to_owned(), env, &["rm", "-f"], name, run_args)
    }

    /// A podman container with the test bed's podman configuration.
    fn podman(bed: &TestBed, name: String, run_args: &[&str]) -> Self {
        let env = PODMAN_ENV.map(|k| (k.to_owned(), bed.get(k).to_owned()));
        Self::run("podman".into(), env.to_vec(), &["rm", "-f", "-t", "0"], name, run_args)
    }

    /// `CLI run -d --name NAME RUN_ARGS...`.
    fn run(
        program: String,
        env: Vec<(String, String)>,
        rm: &'static [&'static str],
        name: String,
        run_args: &[&str],
    ) -> Self {
        let mut c = Self { program, env, rm, name, id: String::new() };
        c.id = c.cli(&[&["run", "-d", "--name", &c.name], run_args].concat());
        c
    }

    /// `CLI ARGS...`, which must succeed; its stdout, trimmed.
    fn cli(&self, args: &[&str]) -> String {
        let out = command(&self.program).envs(self.env.iter().cloned()).args(args).output().expect("CLI runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{} {args:?}: {}\n{stderr}", self.program, out.status);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Runs `cmd` in the container to its end.
    fn exec(&self, cmd: &[&str]) {
        self.cli(&[&["exec", self.name.as_str()], cmd].concat());
    }
}

impl Drop for CliContainer {
    fn drop(&mut self) {
        let removed = command(&self.program).envs(self.env.iter().cloned()).args(self.rm).arg(&self.name).output();
        if !removed.is_ok_and(|o| o.status.success()) {
            eprintln!("removing container {} failed", self.name);
        }
    }
}

// ------------------------------------------------------------------------------ the test

/// A scratch directory, removed on drop (mounts in it are gone by then).
struct Scratch(PathBuf);

impl Scratch {
    fn path(&self, rel: &str) -> String {
        self.0.join(rel).display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            eprintln!("removing {}: {e}", self.0.display());
        }
    }
}

/// `program`, without the library path cargo gives tests: with it, the loader tries a
/// hundred directories at every program start, a hundred alerts of every field each.
fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new(program);
    c.env_remove("LD_LIBRARY_PATH");
    c
}

/// Runs `cmd`, which must succeed.
fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
}

/// Whether this host has a cgroup v1 memory hierarchy (a hybrid or v1 layout).
fn has_v1_memory() -> bool {
    std::fs::read_to_string("/proc/self/cgroup")
        .is_ok_and(|t| t.lines().any(|l| l.split(':').nth(1).is_some_and(|c| c.split(',').any(|c| c == "memory"))))
}

#[test]
fn every_available_field_is_produced_on_live_events_or_marked_unavailable() {
    let started = Instant::now();
    let me = std::process::id();
    let scratch = Scratch(PathBuf::from(sensor_tests::temp_path("coverage")));
    for dir in ["data", "files", "cwd-a", "cwd-b", "bin"] {
        std::fs::create_dir_all(scratch.0.join(dir)).unwrap();
    }
    std::fs::write(scratch.0.join("data/file"), "data\n").unwrap();
    for dir in ["cwd-a", "cwd-b"] {
        std::fs::write(scratch.0.join(dir).join("f"), "f\n").unwrap();
    }
    // A path for `unresident_path` to map (NUL-terminated).
    std::fs::write(scratch.0.join("path"), "/dev/null\0").unwrap();
    let script = scratch.path("bin/script.sh");
    std::fs::write(&script, "#!/bin/sh\ncat /etc/hostname > /dev/null\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    // The fields, and the forms the outputs name them in.
    let setting = Setting { data: scratch.path("data"), v1_memory: has_v1_memory() };
    let fields = list_fields();
    let (available, unavailable): (Vec<&FieldEntry>, Vec<&FieldEntry>) =
        fields.iter().partition(|f| f.unavailable.is_none());
    let mut by_field: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut unknown_args = Vec::new();
    for f in &available {
        match forms(f, &setting) {
            Ok(list) => {
                by_field.insert(&f.name, list);
            }
            Err(e) => unknown_args.push(e),
        }
    }
    assert!(unknown_args.is_empty(), "fields without forms:\n{}", unknown_args.join("\n"));
    let all_forms: Vec<&String> = by_field.values().flatten().collect();
    // No unavailable field slipped into the outputs (the loader would warn; checked below too).
    let named = |form: &str, field: &str| {
        form == field || form.starts_with(&format!("{field}[")) || form.starts_with(&format!("{field}."))
    };
    let listed_unavailable: Vec<&String> =
        all_forms.iter().copied().filter(|form| unavailable.iter().any(|u| named(form, &u.name))).collect();
    assert!(listed_unavailable.is_empty(), "outputs name unavailable fields: {listed_unavailable:?}");

    // The containers, up before the sensor (it fetches running ones at start).
    let bed = TestBed::up();
    let image = bed.get("IMAGE").to_owned();
    let docker = CliContainer::docker(
        &bed,
        format!("sensor-coverage-{me}"),
        &[
            "--label",
            &format!("{LABEL}={me}"),
            "-v",
            &format!("{}:/data:ro", setting.data),
            "--network",
            "none",
            &image,
            "sleep",
            "600",
        ],
    );
    // A container of an image named by its digest, as pinned images run (container.image.digest):
    // podman records the digests of the images it loads; dockerd keeps none for a loaded
    // image, and CRI reports a container's image by its tag.
    let env = PODMAN_ENV.map(|k| (k, bed.get(k)));
    let inspect = command("podman").envs(env).args(["image", "inspect", "--format", "{{.Digest}}", &image]).output();
    let digest = String::from_utf8_lossy(&inspect.expect("podman runs").stdout).trim().to_owned();
    assert!(digest.starts_with("sha256:"), "podman knows no digest of {image}: '{digest}'");
    let (repository, _tag) = image.rsplit_once(':').expect("the test bed's image has a tag");
    let pinned = format!("{repository}@{digest}");
    let podman = CliContainer::podman(
        &bed,
        format!("sensor-coverage-pinned-{me}"),
        &["--network", "none", &pinned, "sleep", "600"],
    );
    let pod_name = format!("coverage-{me}");
    // kubelet's labels and POD_LABEL, the container labelled LABEL, `data` read-only at /data.
    let cri_runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let pod = CriPod::run(
        cri_runtime.handle(),
        bed.env(),
        PodSpec {
            name: pod_name.clone(),
            labels: vec![(POD_LABEL.0.into(), POD_LABEL.1.into())],
            container: "main".into(),
            container_labels: vec![(LABEL.into(), me.to_string())],
            command: vec!["sleep".into(), "600".into()],
            mounts: vec![proto::Mount {
                container_path: "/data".into(),
                host_path: setting.data.clone(),
                readonly: true,
                ..Default::default()
            }],
        },
    );
    println!("containers up at {:.1} s", started.elapsed().as_secs_f64());

    // The rules: each family's syscalls, from the test's processes only.
    let selected = format!(
        "(proc.apid = {me} or container.id in ({}))",
        [&docker.id, &podman.id, &pod.container_id].map(|id| &id[..12]).join(", ")
    );
    let output = all_forms.iter().map(|f| format!("{f}=%{f}")).collect::<Vec<_>>().join(" ");
    let specs = rules(&selected);
    let rules_file = scratch.path("rules.yaml");
    std::fs::write(&rules_file, rules_yaml(&specs, &output)).unwrap();

    // Every alert reaches stdout: the queues hold them all (each alert names every field,
    // some 10 KB, so a burst of them on a busy machine passes the default 16 MiB between the
    // workers and the outputs), and the exit waits for them; a larger ring than the default,
    // as the machine may be busy with others' work.
    let config_file = scratch.path("sensor.yaml");
    std::fs::write(
        &config_file,
        "capture: {ring_buffer_kib: 32768}\nalert_queue: {kib: 1048576}\nstatic_fields: {coverage: \"on\"}\noutputs:\n  - stdout: {}\n    queue: {capacity: 1000000}\n",
    )
    .unwrap();
    let mut sensor = Sensor::start(&[
        "run",
        "--config",
        &config_file,
        "--drain-timeout",
        "120",
        "--rules",
        &rules_file,
        "--json",
        "--all-matches",
        "--cri-socket",
        bed.get("CRI_SOCK"),
        "--docker-socket",
        bed.get("DOCKER_SOCK"),
        "--podman-socket",
        bed.get("PODMAN_SOCK"),
        "--container-wait-ms",
        "5000",
    ]);
    println!("sensor up at {:.1} s", started.elapsed().as_secs_f64());

    // --- actions on the host
    let tcp4 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port4 = tcp4.local_addr().unwrap().port().to_string();
    let tcp6 = std::net::TcpListener::bind("[::1]:0").unwrap();
    let port6 = tcp6.local_addr().unwrap().port().to_string();
    let unix_path = scratch.path("unix.sock");
    let _unix = std::os::unix::net::UnixListener::bind(&unix_path).unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp_port = udp.local_addr().unwrap().port().to_string();
    let a = |args: &[&str]| run(command(actor_path()).args(args));
    // Programs: exec, execveat, a failed exec, a long argv (truncated), a memfd exec, an
    // ia32 exec, a script.
    a(&["execve"]);
    a(&["execveat"]);
    a(&["execve_missing", &scratch.path("missing")]);
    a(&["long_argv"]);
    a(&["memfd_exec", "/bin/true", "payload"]);
    a(&["ia32_exec"]);
    run(&mut command(&script));
    // Files: relative paths from the working directory, then after chdir and fchdir.
    let files = scratch.path("files");
    for (call, name) in [("open", "o"), ("openat", "oa"), ("openat2", "oa2"), ("creat", "c")] {
        run(command(actor_path()).args([call, name]).current_dir(&files));
    }
    a(&["cwd", &scratch.path("cwd-a"), &scratch.path("cwd-b"), "f"]);
    a(&["long_path"]);
    a(&["unresident_path", &scratch.path("path")]);
    a(&["fds"]);
    a(&["perms", &scratch.path("files/perms")]);
    a(&["links", &scratch.path("files/link")]);
    a(&["mount", &scratch.path("mnt")]);
    // Sockets: every family, both ends, sends and receives, and the 32-bit gate.
    a(&["socket"]);
    a(&["connect", &port4]);
    a(&["connect6", &port6]);
    a(&["connect_unix", &unix_path]);
    a(&["server"]);
    a(&["send", &udp_port]);
    a(&["recv"]);
    a(&["ia32", "/dev/null", &port4]);
    // Processes, credentials, namespaces, memory, signals, the rest.
    for scenario in [
        "ptrace",
        "traceme",
        "setids",
        "capset",
        "namespaces",
        "clones",
        "prctl",
        "signals",
        "session",
        "modules",
        "memfd",
        "bpf",
        "bpf_prog_load",
        "mmap",
        "userfaultfd",
    ] {
        a(&[scenario]);
    }
    // A capset that adds a capability (to the inheritable set): thread.cap_added.
    run(command("setpriv").args(["--inh-caps", "+sys_boot", "true"]));
    // A process with a login uid, as pam_loginuid sets at a login: user.loginname.
    let actor = actor_path().display().to_string();
    run(command("sh").args(["-c", &format!("echo 0 > /proc/self/loginuid && exec {actor} prctl")]));

    // --- actions in the containers: a file of the mount, a program added to the container.
    docker.exec(&["sh", "-c", "cat /data/file; cp /bin/busybox /tmp/true && /tmp/true"]);
    podman.exec(&["cat", "/etc/hostname"]);
    let reply = pod.exec(&["sh", "-c", "cat /data/file; cp /bin/busybox /tmp/true && /tmp/true"]);
    assert_eq!(reply.exit_code, 0, "in the pod: {}", String::from_utf8_lossy(&reply.stderr));

    // --- a last action, whose alert means the ones before it were evaluated (repeated: the
    // kernel may lose events on a busy machine).
    let sentinel = scratch.path("sentinel");
    sensor.act_until(
        "the exec of the last action",
        |alert| alert["output_fields"]["fs.path.nameraw"] == sentinel.as_str(),
        || a(&["execve_missing", &sentinel]),
    );
    println!("actions evaluated at {:.1} s", started.elapsed().as_secs_f64());
    // --- DNS names: the connections to 127.0.0.1 above are named localhost once the sensor
    // has resolved the name (in the background, after it started); until then, more.
    sensor.act_until(
        "a connection to 127.0.0.1 named localhost (fd.sip.name)",
        |alert| alert["rule"] == DNS_RULE,
        || a(&["connect", &port4]),
    );

    println!("DNS names seen at {:.1} s", started.elapsed().as_secs_f64());
    let startup_log = sensor.startup_log.clone();
    let (alerts, log) = sensor.stop();
    println!("{} alerts; sensor stopped at {:.1} s", alerts.len(), started.elapsed().as_secs_f64());
    drop(pod);
    let (docker_name, podman_name) = (docker.name.clone(), podman.name.clone());
    drop((docker, podman));
    println!("containers removed at {:.1} s", started.elapsed().as_secs_f64());
    if let Ok(path) = std::env::var("FIELD_COVERAGE_ALERTS") {
        let lines: Vec<String> = alerts.iter().map(Value::to_string).collect();
        std::fs::write(&path, lines.join("\n")).unwrap();
    }

    // --- what the sensor said: no warning about the rules (they name no unavailable
    // field), no alert dropped on its way out; events lost in the kernel (a busy machine)
    // are reported with any failure below.
    let warnings: Vec<&String> =
        startup_log.iter().filter(|l| l.contains(&rules_file) || l.contains("not supplied by this sensor")).collect();
    assert!(
        warnings.is_empty(),
        "the rules loaded with warnings:\n{}",
        warnings.iter().map(|s| s.as_str()).collect::<String>()
    );
    let line = |what: &str| {
        log.iter().find(|l| l.contains(what)).unwrap_or_else(|| panic!("the sensor's exit summary has no '{what}'"))
    };
    assert!(line("output stdout: ").contains(" dropped=0 "), "{}", line("output stdout: "));
    assert!(line(" events evaluated by ").contains(" (0 dropped: queue full)"), "{}", line(" events evaluated by "));
    let losses = if line(" lost in the kernel").contains(", 0 lost in the kernel") {
        String::new()
    } else {
        format!(
            "\nnote: the kernel lost events (the machine was busy; what is missing may be among them): {}",
            line(" lost in the kernel")
        )
    };

    // --- every family's rule fired, and the containers' events carried their metadata.
    let mut per_rule: BTreeMap<&str, usize> = specs.iter().map(|r| (r.name.as_str(), 0)).collect();
    for alert in &alerts {
        if let Some(n) = alert["rule"].as_str().and_then(|r| per_rule.get_mut(r)) {
            *n += 1;
        }
    }
    println!("alerts per rule: {per_rule:?}");
    let silent: Vec<&&str> = per_rule.iter().filter(|(_, n)| **n == 0).map(|(r, _)| r).collect();
    assert!(silent.is_empty(), "rules that never fired (their syscalls were not seen): {silent:?}{losses}");
    let from = |key: &str, want: &str| alerts.iter().any(|a| a["output_fields"][key] == want);
    assert!(from("container.name", &docker_name), "no alert from Docker container {docker_name} with its name{losses}");
    assert!(
        from("container.image", &pinned),
        "no alert from podman container {podman_name} with its image {pinned}{losses}"
    );
    assert!(from("k8s.pod.name", &pod_name), "no alert from CRI pod {pod_name} with its pod name{losses}");

    // --- every available field produced, in every form.
    let produced_forms: BTreeSet<&str> = alerts
        .iter()
        .filter_map(|alert| alert["output_fields"].as_object())
        .flatten()
        .filter(|(form, value)| produced(form, value))
        .map(|(form, _)| form.as_str())
        .collect();
    let mut missing = Vec::new();
    for (field, list) in &by_field {
        let absent: Vec<&String> = list.iter().filter(|form| !produced_forms.contains(form.as_str())).collect();
        if absent.len() == list.len() && list.len() == 1 {
            missing.push((*field).to_owned());
        } else if !absent.is_empty() {
            missing.push(format!("{field} (as {absent:?})"));
        }
    }
    let reasons: Vec<String> =
        unavailable.iter().map(|u| format!("{} ({})", u.name, u.unavailable.as_deref().unwrap_or_default())).collect();
    println!(
        "{} available fields produced, {} unavailable: {}",
        by_field.len() - missing.len(),
        unavailable.len(),
        reasons.join(", ")
    );
    assert!(
        missing.is_empty(),
        "{} of {} available fields were never produced on live events (implement them in \
         sensor/src/state/fields.rs, or mark them unavailable in sensor/src/rules/fields.rs with \
         the reason):\n  {}{losses}",
        missing.len(),
        by_field.len(),
        missing.join("\n  ")
    );
}
