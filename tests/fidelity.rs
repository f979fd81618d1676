//! Fidelity end to end: one real `sensor run` with Falco's stable rules and a rules file of
//! this test's own (rules that output the fields a user reads, for this test's processes:
//! those whose command line or executable path holds the test's marker) watches real actions
//! on the host, in Docker containers and in a CRI pod; then the fields at each event and
//! Falco's alerts are checked. Needs root; leases the test bed (`tests/testbed/testbed.sh`).
//!
//! Contexts: (H) the host; (C) a Docker container's own process (its command, a shell script
//! running each action); (D) `docker exec` into a Docker container; (K) CRI `ExecSync` into a
//! CRI pod's container, as kubelet runs `kubectl exec`. The image is busybox-static only: the
//! `actor` binary runs in containers from a read-only bind mount of this test's directory
//! (which holds the marker in its path), with the host's C library mounted beside it.
//!
//! | action                                              | H | C | D | K |
//! |-----------------------------------------------------|---|---|---|---|
//! | 1. exec identity (busybox applet through `sh -c`)   | x | x | x | x |
//! | 1. `nc -e` raises Netcat Remote Code Execution      |   |   | x | x |
//! | 2. memfd, `execveat(fd, "", AT_EMPTY_PATH)`         | x | x | x | x |
//! | 2. memfd, `execve("/proc/self/fd/N")`               | x |   | x | x |
//! | 3. `open` of /etc/shadow through `int $0x80`        | x | x | x | x |
//! | 4. chdir, then a relative open                      | x | x | x | x |
//! | 5. `fexecve` of a memfd copy reading /etc/shadow    | x | x | x | x |
//! | 6. ssh to a non-private address on another port     | x |   |   |   |
//! | 7. outbound connect's local address                 | x |   | x | x |
//!
//! Not covered, and why: the netcat rule needs `nc` as a process's own name, and a container's
//! command would need its listener in the container's network namespace before it starts (D and
//! K cover the rule in containers); the image has no ssh client, and a container has no route
//! to the test's network namespace (`--network none`, the pod's own bridge); the container's
//! own command (C) prints its connect ports to its log only, so 7 is checked where the test
//! reads the actor's report (D, K); the `/proc/self/fd/N` form differs from the `execveat`
//! one only in the path the kernel is given, so C runs the latter only.
//!
//! Falco's "Disallowed SSH Connection Non Standard Port" lists ports 80, 8080, 88, 443, 8443,
//! 53 and 4444 only; its description suggests adding one's own. The test's rules file adds
//! 2299 (`override: items: append`), and port 4444 is checked with Falco's list as shipped.

use std::{
    io::{BufRead, BufReader},
    net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener},
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    process::{Child, Command},
    sync::mpsc,
    time::{Duration, Instant},
};

use sensor::enrich::cri::proto;
use sensor_tests::{ActorReport, CriPod, POD_NAMESPACE, PodSpec, TestBed};
use serde_json::Value;

const FALCO_RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/falco/falco_rules.yaml");
/// How long the sensor may take to report the last action (a busy machine runs it behind).
const CATCH_UP: Duration = Duration::from_secs(120);
/// Longest an event waits for its container's metadata: a runtime's first answer can be slow.
const CONTAINER_WAIT_MS: &str = "5000";
/// What `/etc/shadow` holds in the containers (the image has none).
const SHADOW: &str = "root:*:1::::::";

/// The test's rules, for processes whose command line or executable path holds `marker`.
fn own_rules(marker: &str) -> String {
    format!(
        r#"
# As Falco's rule description suggests: the organisation's own non-standard SSH port.
- list: ssh_non_standard_ports
  items: [2299]
  override:
    items: append

- macro: fidelity_own
  condition: (proc.cmdline contains "{marker}" or proc.exepath contains "{marker}")

- rule: Fidelity exec
  desc: a program the fidelity test started, with the fields a user reads at its exec
  condition: spawned_process and fidelity_own
  output: >
    exec (evt_type=%evt.type pid=%proc.pid name=%proc.name exepath=%proc.exepath
    cmdline=%proc.cmdline memfd=%proc.is_exe_from_memfd container=%container.id
    container_name=%container.name pod=%k8s.pod.name ns=%k8s.ns.name)
  priority: INFORMATIONAL

- rule: Fidelity open
  desc: a file named shadow opened by a program of the fidelity test
  condition: evt.type in (open, openat, openat2) and fd.name endswith "/shadow" and fidelity_own
  output: >
    open (evt_type=%evt.type ia32=%evt.is_ia32 read=%evt.is_open_read file=%fd.name cwd=%proc.cwd
    res=%evt.res pid=%proc.pid name=%proc.name cmdline=%proc.cmdline container=%container.id)
  priority: INFORMATIONAL

- rule: Fidelity connect
  desc: an IP connect by a program of the fidelity test
  condition: evt.type = connect and (fd.typechar = 4 or fd.typechar = 6) and fidelity_own
  output: >
    connect (connection=%fd.name lport=%fd.lport cip=%fd.cip cport=%fd.cport sip=%fd.sip
    sport=%fd.sport ia32=%evt.is_ia32 res=%evt.res pid=%proc.pid cmdline=%proc.cmdline
    container=%container.id)
  priority: INFORMATIONAL
"#
    )
}

// ------------------------------------------------------------------------------------ set-up

/// The test's directory, `/tmp/sensor-fidelity-PID` (its name is the marker): a copy of the
/// actor, the rules file, and empty files `cat` reads, one per action (so each command line
/// is unique). Mounted read-only into the containers at the same path; removed on drop.
struct Workspace {
    dir: PathBuf,
}

impl Workspace {
    fn new() -> Self {
        let dir = PathBuf::from(format!("/tmp/sensor-fidelity-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(sensor_tests::actor_path(), dir.join("actor")).unwrap();
        Self { dir }
    }

    /// The marker in this test's command lines and paths.
    fn marker(&self) -> &str {
        self.dir.file_name().unwrap().to_str().unwrap()
    }

    fn path(&self) -> &str {
        self.dir.to_str().unwrap()
    }

    /// The actor's copy.
    fn actor(&self) -> String {
        format!("{}/actor", self.path())
    }

    /// An empty file named `name` in the directory, made now; its path.
    fn file(&self, name: &str) -> String {
        let path = self.dir.join(name);
        std::fs::write(&path, "").unwrap();
        path.display().to_string()
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("removing {}: {e}", self.dir.display());
        }
    }
}

/// A network namespace with a veth pair to this host, addressed from TEST-NET-2
/// (198.51.100.0/24: documentation, not one of Falco's rfc_1918_addresses), one /30 chosen
/// by pid so that concurrent runs do not meet. Removed on drop, also when the test fails.
struct TestNet {
    ns: String,
    host_if: String,
    /// This host's end.
    host_ip: Ipv4Addr,
    /// The namespace's end.
    peer_ip: Ipv4Addr,
}

impl TestNet {
    fn new() -> Self {
        let pid = std::process::id();
        let base = 4 * (pid % 64) as u8;
        let net = Self {
            ns: format!("sensor-fid-{pid}"),
            host_if: format!("sfid{pid}"),
            host_ip: Ipv4Addr::new(198, 51, 100, base + 1),
            peer_ip: Ipv4Addr::new(198, 51, 100, base + 2),
        };
        let peer_if = format!("sfidp{pid}");
        let ip = |args: &[&str]| {
            let out = Command::new("ip").args(args).output().expect("ip runs");
            assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        ip(&["netns", "add", &net.ns]);
        ip(&["link", "add", &net.host_if, "type", "veth", "peer", "name", &peer_if]);
        ip(&["link", "set", &peer_if, "netns", &net.ns]);
        ip(&["addr", "add", &format!("{}/30", net.host_ip), "dev", &net.host_if]);
        ip(&["link", "set", &net.host_if, "up"]);
        ip(&["-n", &net.ns, "addr", "add", &format!("{}/30", net.peer_ip), "dev", &peer_if]);
        ip(&["-n", &net.ns, "link", "set", &peer_if, "up"]);
        net
    }

    /// Listens on `port` of the namespace's address (from a thread that enters the
    /// namespace), accepts one connection and closes it at once; the connection's peer
    /// address arrives on the returned channel.
    fn accept_once(&self, port: u16) -> mpsc::Receiver<Result<SocketAddr, String>> {
        let (bound_tx, bound_rx) = mpsc::channel();
        let (tx, rx) = mpsc::channel();
        let (ns, addr) = (format!("/var/run/netns/{}", self.ns), SocketAddrV4::new(self.peer_ip, port));
        std::thread::spawn(move || {
            let listen = || {
                let ns = std::fs::File::open(&ns).map_err(|e| format!("{ns}: {e}"))?;
                // SAFETY: setns on a valid fd moves only this thread into the namespace.
                if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(format!("setns: {}", std::io::Error::last_os_error()));
                }
                TcpListener::bind(addr).map_err(|e| format!("bind {addr}: {e}"))
            };
            let listener = match listen() {
                Ok(l) => l,
                Err(e) => return bound_tx.send(Err(e)).unwrap(),
            };
            bound_tx.send(Ok(())).unwrap();
            let _ = tx.send(listener.accept().map(|(_, peer)| peer).map_err(|e| e.to_string()));
        });
        bound_rx.recv().unwrap().unwrap_or_else(|e| panic!("listening in {}: {e}", self.ns));
        rx
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        // Deleting one end deletes the pair (the namespace lives on while a thread is in it).
        for args in [&["link", "del", &self.host_if][..], &["netns", "del", &self.ns]] {
            match Command::new("ip").args(args).output() {
                Ok(out) if out.status.success() => {}
                other => eprintln!("ip {args:?}: {other:?}"),
            }
        }
    }
}

/// A Docker container removed on drop (also when the test fails).
struct DockerContainer<'a> {
    bed: &'a TestBed,
    name: String,
    /// Its full id.
    id: String,
}

impl DockerContainer<'_> {
    /// The container as alerts name it.
    fn expected(&self) -> Container {
        Container { id: self.id[..12].to_owned(), name: self.name.clone(), pod: None }
    }
}

impl Drop for DockerContainer<'_> {
    fn drop(&mut self) {
        if !self.bed.docker_status(&["rm", "-f", &self.name]) {
            eprintln!("removing container {} failed", self.name);
        }
    }
}

/// The sensor, stopped with SIGTERM (which drains its pipeline) and reaped; killed on drop
/// if the test fails before.
struct Sensor(Option<Child>);

impl Sensor {
    fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.0.take().expect("running");
        // SAFETY: kill has no memory preconditions; the pid is our child's.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        child.wait().expect("sensor exits")
    }
}

impl Drop for Sensor {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

// -------------------------------------------------------------------------------------- checks

/// Where an event must be attributed: `container.id`, `container.name` and, in a pod,
/// `k8s.pod.name`.
#[derive(Clone)]
struct Container {
    id: String,
    name: String,
    pod: Option<String>,
}

impl Container {
    fn host() -> Self {
        Self { id: "host".into(), name: "host".into(), pod: None }
    }
}

/// A field of an alert as text (`<NA>` when absent).
fn field(alert: &Value, key: &str) -> String {
    match &alert["output_fields"][key] {
        Value::String(s) => s.clone(),
        Value::Null => "<NA>".into(),
        other => other.to_string(),
    }
}

/// The alerts of a run and the failed expectations, collected so that one run reports every
/// failure at once.
struct Checks<'a> {
    alerts: &'a [Value],
    failures: Vec<String>,
}

impl<'a> Checks<'a> {
    /// The first alert of `rule` that `pred` accepts; a failure named `what` when none does.
    fn find(&mut self, what: &str, rule: &str, pred: impl Fn(&Value) -> bool) -> Option<&'a Value> {
        let found = self.alerts.iter().find(|a| a["rule"] == rule && pred(a));
        if found.is_none() {
            self.failures.push(format!("{what}: no '{rule}' alert"));
        }
        found
    }

    /// A failure named `what` unless field `key` of `alert` is one of `want`.
    fn field_in(&mut self, what: &str, alert: &Value, key: &str, want: &[&str]) {
        let got = field(alert, key);
        if !want.contains(&got.as_str()) {
            self.failures.push(format!(
                "{what}: {key} is {got:?}, expected {}: {}",
                want.join(" or "),
                alert["output"]
            ));
        }
    }

    fn field(&mut self, what: &str, alert: &Value, key: &str, want: &str) {
        self.field_in(what, alert, key, &[want]);
    }

    /// `alert` happened in `container`.
    fn container(&mut self, what: &str, alert: &Value, container: &Container) {
        self.field(what, alert, "container.id", &container.id);
        self.field(what, alert, "container.name", &container.name);
        if let Some(pod) = &container.pod {
            self.field(what, alert, "k8s.pod.name", pod);
            self.field(what, alert, "k8s.ns.name", POD_NAMESPACE);
        }
    }

    /// Action 1: `SHELL -c 'cat FILE'` (a busybox shell) was exec'd in `container`, and the
    /// shell exec'd the applet through /proc/self/exe in the same process. Both execs are
    /// of the real file, busybox at `exepath` (never /proc/self/exe).
    fn exec_identity(&mut self, what: &str, shell: &str, file: &str, exepath: &str, container: &Container) {
        let script = format!("{shell} -c cat {file}");
        // Not the docker CLI that asked for it, on the host.
        let own = |a: &Value| field(a, "proc.cmdline").contains(file) && field(a, "proc.name") != "docker";
        let shell_exec = format!("{what}: the shell's exec");
        if let Some(sh) =
            self.find(&shell_exec, "Fidelity exec", |a| own(a) && field(a, "proc.cmdline").contains(&script))
        {
            self.field(&shell_exec, sh, "proc.name", shell.split(' ').next().unwrap());
            let cmdline = field(sh, "proc.cmdline");
            if !cmdline.starts_with(&script) {
                self.failures.push(format!("{shell_exec}: proc.cmdline {cmdline:?} does not start with {script:?}"));
            }
            self.field(&shell_exec, sh, "proc.exepath", exepath);
            self.container(&shell_exec, sh, container);
        }
        // The kernel names the task after the file it execs (`exe`), as Falco shows it.
        let applet_exec = format!("{what}: the applet's exec");
        if let Some(applet) =
            self.find(&applet_exec, "Fidelity exec", |a| own(a) && !field(a, "proc.cmdline").contains(" -c "))
        {
            self.field(&applet_exec, applet, "proc.name", "exe");
            self.field(&applet_exec, applet, "proc.cmdline", &format!("exe {file}"));
            self.field(&applet_exec, applet, "proc.exepath", exepath);
            self.field(&applet_exec, applet, "proc.is_exe_from_memfd", "false");
            self.container(&applet_exec, applet, container);
        }
    }

    /// Action 2: a program run from a memfd with `tag` in its command line, by `evt_type`.
    fn memfd(&mut self, what: &str, tag: &str, evt_type: &str, container: &Container) {
        // Not the actor that ran it, the shell that ran the actor (C), nor the docker CLI.
        let own = |a: &Value| {
            field(a, "proc.cmdline").contains(tag)
                && !["actor", "sh", "docker"].contains(&field(a, "proc.name").as_str())
        };
        if let Some(exec) = self.find(what, "Fidelity exec", own) {
            self.field(what, exec, "evt.type", evt_type);
            self.field(what, exec, "proc.is_exe_from_memfd", "true");
            let exepath = field(exec, "proc.exepath");
            if !exepath.contains("memfd:payload") {
                self.failures.push(format!("{what}: proc.exepath {exepath:?} names no memfd:payload"));
            }
            self.container(what, exec, container);
        }
        if let Some(alert) = self.find(what, "Fileless execution via memfd_create", own) {
            self.field(what, alert, "container.id", &container.id);
        }
    }

    /// Actions 3 and 5: /etc/shadow read by the process whose command line holds `tag`: the
    /// open's fields, and Falco's alert.
    fn shadow_read(&mut self, what: &str, tag: &str, evt_type: &str, ia32: bool, container: &Container) {
        let own = |a: &Value| field(a, "proc.cmdline").contains(tag) && field(a, "container.id") == container.id;
        if let Some(open) = self.find(what, "Fidelity open", |a| own(a) && field(a, "evt.is_open_read") == "true") {
            self.field(what, open, "evt.type", evt_type);
            self.field(what, open, "evt.is_ia32", &ia32.to_string());
            self.field(what, open, "fd.name", "/etc/shadow");
        }
        if let Some(alert) = self.find(what, "Read sensitive file untrusted", own) {
            self.field(what, alert, "fd.name", "/etc/shadow");
            self.field(what, alert, "evt.type", evt_type);
        }
    }

    /// Action 4: `shadow` opened relative to the working directory /etc.
    fn relative_read(&mut self, what: &str, tag: &str, container: &Container) {
        let own = |a: &Value| field(a, "proc.cmdline").contains(tag) && field(a, "container.id") == container.id;
        let open = self.find(what, "Fidelity open", |a| {
            own(a) && field(a, "evt.is_open_read") == "true" && field(a, "evt.res") == "SUCCESS"
        });
        if let Some(open) = open {
            self.field(what, open, "fd.name", "/etc/shadow");
            self.field_in(what, open, "proc.cwd", &["/etc", "/etc/"]);
        }
        if let Some(alert) = self.find(what, "Read sensitive file untrusted", own) {
            self.field(what, alert, "fd.name", "/etc/shadow");
        }
    }

    /// Action 7: the connect from local port `client` to 127.0.0.1:`server`.
    fn loopback_connect(&mut self, what: &str, client: u16, server: u16, ia32: bool, container: &Container) {
        let name = format!("127.0.0.1:{client}->127.0.0.1:{server}");
        let connect = self.find(&format!("{what} ({name})"), "Fidelity connect", |a| {
            field(a, "fd.sport") == server.to_string()
                && field(a, "evt.is_ia32") == ia32.to_string()
                && field(a, "container.id") == container.id
        });
        if let Some(connect) = connect {
            self.field(what, connect, "fd.name", &name);
            self.field(what, connect, "fd.lport", &client.to_string());
            self.field(what, connect, "fd.cip", "127.0.0.1");
            self.field(what, connect, "fd.cport", &client.to_string());
        }
    }

    /// Action 1, netcat: Falco's alert for `nc 127.0.0.1 PORT -e /bin/true` in `container`.
    fn netcat(&mut self, what: &str, container: &Container) {
        let rule = "Netcat Remote Code Execution in Container";
        if let Some(alert) = self.find(what, rule, |a| {
            field(a, "container.id") == container.id && field(a, "proc.cmdline").contains(" -e /bin/true")
        }) {
            self.field(what, alert, "proc.name", "nc");
            self.field(what, alert, "proc.exepath", "/bin/busybox");
            self.container(what, alert, container);
        }
    }
}

// ------------------------------------------------------------------------------------- actions

/// Runs a command in a container (D or K); whether it succeeded, and its standard output.
type Exec<'a> = &'a dyn Fn(&[&str]) -> (bool, String);

/// What D and K run (C runs the same as its command, see [`container_script`]); returns the
/// actor's `server` report (ports of a loopback connect).
fn container_actions(exec: Exec, ws: &Workspace, ctx: &str) -> ActorReport {
    let run = |args: &[&str]| {
        let (ok, out) = exec(args);
        assert!(ok, "{ctx}: {args:?} failed: {out}");
        out
    };
    let actor = ws.actor();
    run(&["sh", "-c", &format!("cat {}", ws.file(&format!("{ctx}-exec")))]);
    run(&["sh", "-c", &format!("echo '{SHADOW}' > /etc/shadow")]);
    run(&[&actor, "ia32", "/etc/shadow", "9"]);
    run(&["sh", "-c", &format!("cd /etc && cat shadow {}", ws.file(&format!("{ctx}-cwd")))]);
    // Fileless runs from a shell, as an intruder's would: a program `docker exec` or ExecSync
    // starts may still be runc's child when it execs again, and Falco's rule excepts runc's
    // children (known_memfd_execution_processes).
    let from_shell = |command: String| run(&["sh", "-c", &format!("{command}; exit")]);
    from_shell(format!("{actor} memfd_exec /bin/busybox true {}/{ctx}-memfd-at", ws.path()));
    from_shell(format!("{actor} memfd_exec_path /bin/busybox true {}/{ctx}-memfd-path", ws.path()));
    from_shell(format!("{actor} memfd_exec /bin/busybox cat /etc/shadow {}", ws.file(&format!("{ctx}-fexecve"))));
    let server = ActorReport::parse(&run(&[&actor, "server"]));
    // A listener, then netcat handing a program to the connection. Whether it connected
    // does not matter (the rule is about the exec); the listener has no readiness signal.
    run(&["sh", "-c", "nc -l -p 9999 </dev/null >/dev/null 2>&1 &"]);
    std::thread::sleep(Duration::from_millis(300));
    exec(&["nc", "127.0.0.1", "9999", "-e", "/bin/true"]);
    server
}

/// C's command: the actions of [`container_actions`] that need no reply, then it sleeps.
fn container_script(ws: &Workspace) -> String {
    let actor = ws.actor();
    [
        format!("cat {}", ws.file("c-exec")),
        format!("echo '{SHADOW}' > /etc/shadow"),
        format!("{actor} ia32 /etc/shadow 9"),
        format!("(cd /etc && cat shadow {})", ws.file("c-cwd")),
        format!("{actor} memfd_exec /bin/busybox true {}/c-memfd-at", ws.path()),
        format!("{actor} memfd_exec /bin/busybox cat /etc/shadow {}", ws.file("c-fexecve")),
        "exec sleep 600".into(),
    ]
    .join("; ")
}

/// Action 6: `ssh -p PORT` from this host into the test's network namespace; the client's
/// address of the connection the listener accepted.
fn ssh(net: &TestNet, marker: &str, port: u16) -> SocketAddr {
    let accepted = net.accept_once(port);
    // It fails once connected (the listener closes at once): that is fine.
    let out = Command::new("ssh")
        .args(["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no"])
        .args(["-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=3", "-p", &port.to_string()])
        .arg(format!("{marker}@{}", net.peer_ip))
        .arg("true")
        .output()
        .expect("ssh runs (Debian openssh-client, installed by `cargo xtask setup`)");
    match accepted.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(peer)) => peer,
        other => panic!("ssh -p {port} did not connect ({other:?}): {}", String::from_utf8_lossy(&out.stderr)),
    }
}

/// The alerts of this test (by marker or container), one line each, for failure messages.
fn summary(alerts: &[Value], marker: &str, containers: &[&Container]) -> String {
    alerts
        .iter()
        .filter(|a| {
            let f = |k| field(a, k);
            f("proc.cmdline").contains(marker)
                || f("proc.exepath").contains(marker)
                || containers.iter().any(|c| f("container.id") == c.id)
        })
        .map(|a| format!("  {}: {}", a["rule"], a["output"]))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn exec_identity_memfd_ia32_cwd_and_connect_fields_match_falco_end_to_end() {
    sensor_tests::require_root();
    let started = Instant::now();
    let bed = TestBed::up();
    let ws = Workspace::new();
    let marker = ws.marker().to_owned();
    let net = TestNet::new();
    let rules = format!("{}/rules.yaml", ws.path());
    std::fs::write(&rules, own_rules(&marker)).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();

    let mut sensor = Sensor(Some(sensor_tests::start_sensor(&[
        "run",
        "--rules",
        FALCO_RULES,
        "--rules",
        &rules,
        "--json",
        "--all-matches",
        "--docker-socket",
        bed.get("DOCKER_SOCK"),
        "--cri-socket",
        bed.get("CRI_SOCK"),
        "--container-wait-ms",
        CONTAINER_WAIT_MS,
    ])));
    let (tx, rx) = mpsc::channel::<Value>();
    let stdout = BufReader::new(sensor.0.as_mut().unwrap().stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = tx.send(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}")));
        }
    });
    println!("sensor attached after {:.1} s", started.elapsed().as_secs_f64());

    // ---- Containers, started under the sensor's eyes. The actor's directory and the C
    // library it links against are mounted read-only.
    let own_dir = format!("{0}:{0}:ro", ws.path());
    let libs = ["-v", "/lib/x86_64-linux-gnu:/lib/x86_64-linux-gnu:ro", "-v", "/lib64:/lib64:ro"];
    let docker_run = |ctx: &str, command: &[&str]| {
        let name = format!("{marker}-{ctx}");
        let run = ["run", "-d", "--network", "none", "--name", &name, "-v", &own_dir];
        let args = [&run[..], &libs[..], &[bed.get("IMAGE")], command].concat();
        let id = bed.docker(&args);
        DockerContainer { bed: &bed, name, id }
    };
    // C: the actions are the container's own command.
    let c = docker_run("c", &["sh", "-c", &container_script(&ws)]);
    let d = docker_run("d", &["sleep", "600"]);
    let mount = |path: &str| proto::Mount {
        container_path: path.into(),
        host_path: path.into(),
        readonly: true,
        ..Default::default()
    };
    let pod = CriPod::run(
        rt.handle(),
        bed.env(),
        PodSpec {
            name: format!("{marker}-k"),
            labels: Vec::new(),
            container: "fidelity".into(),
            container_labels: Vec::new(),
            command: vec!["sleep".into(), "600".into()],
            mounts: vec![mount(ws.path()), mount("/lib/x86_64-linux-gnu"), mount("/lib64")],
        },
    );
    let (in_c, in_d) = (c.expected(), d.expected());
    let in_k =
        Container { id: pod.container_id[..12].to_owned(), name: "fidelity".into(), pod: Some(format!("{marker}-k")) };

    // ---- D and K.
    let docker_exec = |args: &[&str]| {
        let out = bed.docker_command().args([&["exec", &d.name][..], args].concat()).output().expect("docker exec");
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let d_server = container_actions(&docker_exec, &ws, "d");
    let cri_exec = |args: &[&str]| {
        let out = pod.exec(args);
        (out.exit_code == 0, String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let k_server = container_actions(&cri_exec, &ws, "k");

    // ---- H.
    let actor = |args: &[&str]| sensor_tests::actor_at(Path::new(&ws.actor()), args);
    let busybox = Command::new("busybox").args(["sh", "-c", &format!("cat {}", ws.file("h-exec"))]).status().unwrap();
    assert!(busybox.success());
    actor(&["memfd_exec", "/bin/true", "true", &format!("{}/h-memfd-at", ws.path())]);
    actor(&["memfd_exec_path", "/bin/true", "true", &format!("{}/h-memfd-path", ws.path())]);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let ia32 = actor(&["ia32", "/etc/shadow", &port.to_string()]);
    let cwd = actor(&["cwd", "/etc", "/usr", "shadow"]);
    actor(&["memfd_exec", "/bin/cat", "cat", "/etc/shadow", &ws.file("h-fexecve")]);
    let ssh_2299 = ssh(&net, &marker, 2299);
    let ssh_4444 = ssh(&net, &marker, 4444);
    let connect = actor(&["connect", &port.to_string()]);

    // ---- The last action's alert means the sensor has read everything before it; SIGTERM
    // then drains what its workers still hold.
    let done = ws.file("done");
    assert!(Command::new("cat").arg(&done).status().unwrap().success());
    let mut alerts = Vec::new();
    let deadline = Instant::now() + CATCH_UP;
    while !alerts.iter().any(|a: &Value| a["rule"] == "Fidelity exec" && field(a, "proc.cmdline").contains(&done)) {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(alert) => alerts.push(alert),
            Err(_) => break,
        }
    }
    let status = sensor.stop();
    alerts.extend(rx.iter());
    drop((c, d, pod));
    assert!(status.success(), "the sensor failed: {status}");
    println!("{} alerts; actions done after {:.1} s", alerts.len(), started.elapsed().as_secs_f64());

    // ---- Checks.
    let mut check = Checks { alerts: &alerts, failures: Vec::new() };
    let host = Container::host();
    let host_busybox = std::fs::canonicalize("/bin/busybox").unwrap().display().to_string();

    // 1. Exec identity, and netcat.
    check.exec_identity("H: busybox sh -c", "busybox sh", &format!("{}/h-exec", ws.path()), &host_busybox, &host);
    for (ctx, container) in [("c", &in_c), ("d", &in_d), ("k", &in_k)] {
        let what = format!("{}: sh -c", ctx.to_uppercase());
        check.exec_identity(&what, "sh", &format!("{}/{ctx}-exec", ws.path()), "/bin/busybox", container);
    }
    check.netcat("D: nc -e", &in_d);
    check.netcat("K: nc -e", &in_k);

    // 2. Fileless execution.
    check.memfd("H: execveat of a memfd", &format!("{}/h-memfd-at", ws.path()), "execveat", &host);
    check.memfd("H: execve of /proc/self/fd/N", &format!("{}/h-memfd-path", ws.path()), "execve", &host);
    for (ctx, container) in [("c", &in_c), ("d", &in_d), ("k", &in_k)] {
        let upper = ctx.to_uppercase();
        let at = format!("{}/{ctx}-memfd-at", ws.path());
        check.memfd(&format!("{upper}: execveat of a memfd"), &at, "execveat", container);
        if ctx != "c" {
            let path = format!("{}/{ctx}-memfd-path", ws.path());
            check.memfd(&format!("{upper}: execve of /proc/self/fd/N"), &path, "execve", container);
        }
    }

    // 3. open through int $0x80, and its socketcall connect on the host.
    let h_ia32 = format!("actor ia32 /etc/shadow {port}");
    check.shadow_read("H: ia32 open", &h_ia32, "open", true, &host);
    let ia32_port = u16::try_from(ia32.int("local_port")).unwrap();
    check.loopback_connect("H: ia32 socketcall connect", ia32_port, port, true, &host);
    for (ctx, container) in [("C", &in_c), ("D", &in_d), ("K", &in_k)] {
        check.shadow_read(&format!("{ctx}: ia32 open"), "actor ia32 /etc/shadow 9", "open", true, container);
    }

    // 4. A relative path after chdir; after fchdir to /usr the same name is /usr/shadow.
    check.relative_read("H: chdir /etc, open shadow", "actor cwd /etc /usr shadow", &host);
    assert!(cwd.int("open1") >= 0, "the actor opened /etc/shadow: {:?}", cwd.values);
    let after_fchdir = check.find("H: fchdir /usr, open shadow", "Fidelity open", |a| {
        field(a, "proc.pid") == cwd.pid.to_string() && field(a, "evt.res") != "SUCCESS"
    });
    if let Some(open) = after_fchdir {
        check.field("H: fchdir /usr, open shadow", open, "fd.name", "/usr/shadow");
        check.field_in("H: fchdir /usr, open shadow", open, "proc.cwd", &["/usr", "/usr/"]);
    }
    for (ctx, container) in [("c", &in_c), ("d", &in_d), ("k", &in_k)] {
        let what = format!("{}: cd /etc && cat shadow", ctx.to_uppercase());
        check.relative_read(&what, &format!("shadow {}/{ctx}-cwd", ws.path()), container);
    }

    // 5. fexecve of a memfd copy of cat reading /etc/shadow.
    let h_fexecve = format!("{}/h-fexecve", ws.path());
    check.shadow_read("H: fexecve'd cat", &h_fexecve, "openat", false, &host);
    check.memfd("H: fexecve'd cat", &h_fexecve, "execveat", &host);
    for (ctx, container) in [("c", &in_c), ("d", &in_d), ("k", &in_k)] {
        let tag = format!("{}/{ctx}-fexecve", ws.path());
        let what = format!("{}: fexecve'd cat", ctx.to_uppercase());
        check.shadow_read(&what, &tag, "openat", false, container);
        check.memfd(&what, &tag, "execveat", container);
    }

    // 6. ssh to a non-private address on a non-standard port: the connection's own
    // address, and Falco's alert.
    for (port, client) in [(2299u16, ssh_2299), (4444, ssh_4444)] {
        let what = format!("H: ssh -p {port}");
        let name = format!("{client}->{}:{port}", net.peer_ip);
        let own = |a: &Value| {
            field(a, "fd.name").ends_with(&format!(":{port}")) && field(a, "proc.cmdline").contains(&marker)
        };
        if let Some(connect) = check.find(&what, "Fidelity connect", own) {
            check.field(&what, connect, "fd.name", &name);
            check.field(&what, connect, "fd.lport", &client.port().to_string());
            check.field(&what, connect, "fd.cip", &net.host_ip.to_string());
        }
        if let Some(alert) = check.find(&what, "Disallowed SSH Connection Non Standard Port", own) {
            check.field(&what, alert, "fd.name", &name);
            check.field(&what, alert, "container.id", "host");
        }
    }

    // 7. Outbound connect to a loopback listener: the local end from the kernel.
    let local = u16::try_from(connect.int("local_port")).unwrap();
    check.loopback_connect("H: connect", local, port, false, &host);
    for (ctx, report, container) in [("D", &d_server, &in_d), ("K", &k_server, &in_k)] {
        let (client, server) = (report.int("client_port"), report.int("port"));
        let (client, server) = (u16::try_from(client).unwrap(), u16::try_from(server).unwrap());
        check.loopback_connect(&format!("{ctx}: connect"), client, server, false, container);
    }
    drop(listener);

    let failures = std::mem::take(&mut check.failures);
    assert!(
        failures.is_empty(),
        "{} failed expectations:\n  {}\nthis test's alerts:\n{}",
        failures.len(),
        failures.join("\n  "),
        summary(&alerts, &marker, &[&in_c, &in_d, &in_k])
    );
    println!("all checks passed in {:.1} s", started.elapsed().as_secs_f64());
    drop(net);
    drop(ws);
    bed.down();
}
