//! The built-in rules end to end: `sensor run` with no `--rules` watches three Docker
//! containers of the test bed (busybox image) while real actions happen in them; each
//! targeted rule must alert with the container's id and the process that acted. The sensor
//! runs as shipped (`rule_matching: first`), so each action is the first match of its rule.
//! Needs root; leases the test bed (`tests/testbed/testbed.sh`).
//!
//! The programs the image lacks come from the `actor` binary (ptrace, BPF, memfd, setuid),
//! bind-mounted with the host's C library: a dynamically linked program run inside the
//! container, not on the host.
//!
//! Rules not triggered here, and why:
//! - `Privileged container started`: this VM cannot start privileged containers (runc fails
//!   "unable to apply caps").
//! - `SSH on a non-standard port`: the image has no SSH client or server.
//! - `Interactive shell by a system account`: in a container the same shell is a
//!   `Terminal shell in a container`, which comes first; on the host it needs a login.
//! - `Interactive root shell on the host`: a host rule (and the test has no terminal of its own).

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use sensor_tests::TestBed;

/// A global IPv4 address of this host, which a host-network container can connect to
/// without it counting as loopback.
fn host_address() -> String {
    let out = Command::new("ip").args(["-4", "-o", "addr", "show", "scope", "global"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let addr = text.split_whitespace().skip_while(|w| *w != "inet").nth(1).expect("a global IPv4 address");
    addr.split('/').next().unwrap().to_owned()
}

/// One rule the actions must fire: its name, the process, and the container it ran in.
struct Expected {
    rule: &'static str,
    proc_name: &'static str,
    container: Container,
}

/// The containers of the test.
#[derive(Clone, Copy, Debug)]
enum Container {
    /// Own namespaces, no network, the runtime socket and the actor mounted.
    Main,
    /// The host's network and pid namespaces, an executable tmpfs on /tmp.
    HostNs,
    /// The host's network: its pid 1 starts in a host namespace.
    HostNet,
}

const fn expect(rule: &'static str, proc_name: &'static str, container: Container) -> Expected {
    Expected { rule, proc_name, container }
}

use Container::{HostNet, HostNs, Main};

/// Every rule the actions below trigger.
const EXPECTED: &[Expected] = &[
    expect("Container started with a sensitive host mount", "sleep", Main),
    expect("Container started with host namespaces", "sleep", HostNet),
    expect("Write below etc", "sh", Main),
    expect("Read credential file by untrusted program", "cat", Main),
    expect("SSH private key read by untrusted program", "cat", Main),
    expect("Cloud credentials read by untrusted program", "cat", Main),
    expect("SSH authorized keys modified", "sh", Main),
    expect("Kubernetes credentials read by untrusted program", "cat", Main),
    expect("Service account token read by hand", "cat", Main),
    expect("Write below binary directories", "sh", Main),
    expect("Write below library directories", "sh", Main),
    expect("Dynamic linker preload file modified", "sh", Main),
    expect("Sensor files modified", "sh", Main),
    expect("Setuid or setgid bit set", "chmod", Main),
    expect("Ownership of a sensitive file changed", "chown", Main),
    expect("Link created to a sensitive file", "ln", Main),
    expect("Log file cleared or removed", "rm", Main),
    expect("Shell history deleted or truncated", "rm", Main),
    expect("Shell history disabled through the environment", "sh", Main),
    expect("Data destruction tool run", "shred", Main),
    expect("Search for private keys or passwords", "grep", Main),
    expect("Crypto miner started", "echo", Main),
    expect("Shell spawned by a program in a container", "sh", Main),
    expect("Terminal shell in a container", "sh", Main),
    expect("Package manager run in a container", "dpkg", Main),
    expect("Privilege escalation tool run in a container", "su", Main),
    expect("Container administration tool run in a container", "kubectl", Main),
    expect("Binary dropped into a container and executed", "true", Main),
    expect("Netcat started with a program to execute", "nc", Main),
    expect("Network socket redirected to standard input or output", "nc", Main),
    expect("Packet socket created", "arping", Main),
    expect("Cloud metadata service contacted from a container", "nc", Main),
    expect("Namespace changed in a container", "unshare", Main),
    expect("Namespaces of pid 1 entered from a container", "nsenter", Main),
    expect("Container escape through a cgroup release_agent", "sh", Main),
    expect("Host filesystem mounted in a container", "mount", Main),
    expect("Kernel module load attempted", "insmod", Main),
    expect("Capabilities added with capset", "setpriv", Main),
    expect("Process attached to another with ptrace", "actor", Main),
    expect("Anti-debugging with PTRACE_TRACEME", "actor", Main),
    expect("BPF program loaded", "actor", Main),
    expect("Container runtime socket accessed from a container", "actor", Main),
    expect("Program executed from a memfd", "memfd:payload", Main),
    expect("Process changed its user to root", "sa", Main),
    expect("Kubernetes API server contacted from a container", "nc", HostNs),
    expect("Connection to a mining pool port", "nc", HostNs),
    expect("Program executed from a temporary directory", "true", HostNs),
    expect("Signal sent to the sensor", "kill", HostNs),
];

/// Runs the actions that should fire [`EXPECTED`], in container `main` and `hostns`.
fn act(bed: &TestBed, main: &str, hostns: &str, sensor_pid: u32) {
    let sh = |c: &str, script: &str| bed.docker(&["exec", c, "sh", "-c", script]);
    let exec = |c: &str, args: &[&str]| bed.docker(&[&["exec", c][..], args].concat());
    // Refused or failing on purpose: only the attempt matters.
    let attempt = |c: &str, args: &[&str]| bed.docker_status(&[&["exec", c][..], args].concat());

    // Files: written by the shell, then read or changed by single programs.
    sh(main, "echo 'root:*:1::::::' > /etc/shadow");
    exec(main, &["cat", "/etc/shadow"]);
    sh(main, "mkdir -p /root/.ssh /root/.aws /root/.kube && echo k > /root/.ssh/id_rsa");
    sh(main, "echo k > /root/.aws/credentials && echo k > /root/.kube/config");
    exec(main, &["cat", "/root/.ssh/id_rsa"]);
    exec(main, &["cat", "/root/.aws/credentials"]);
    exec(main, &["cat", "/root/.kube/config"]);
    sh(main, "echo 'ssh-ed25519 AAAA intruder' >> /root/.ssh/authorized_keys");
    let sa = "/var/run/secrets/kubernetes.io/serviceaccount";
    sh(main, &format!("mkdir -p {sa} && echo t > {sa}/token"));
    exec(main, &["cat", &format!("{sa}/token")]);
    sh(main, "echo x > /usr/bin/evil");
    sh(main, "mkdir -p /usr/lib && echo x > /usr/lib/libevil.so");
    sh(main, "echo /usr/lib/libevil.so > /etc/ld.so.preload");
    sh(main, "mkdir -p /etc/sensor && echo x > /etc/sensor/rules.yaml");
    sh(main, "echo x > /tmp/f");
    exec(main, &["chmod", "u+s", "/tmp/f"]);
    exec(main, &["chown", "0:0", "/etc/passwd"]);
    exec(main, &["ln", "-s", "/etc/shadow", "/tmp/s"]);
    sh(main, "mkdir -p /var/log && echo a >> /var/log/app.log");
    exec(main, &["rm", "/var/log/app.log"]);
    sh(main, "echo ls >> /root/.ash_history");
    exec(main, &["rm", "/root/.ash_history"]);
    bed.docker(&["exec", "-e", "HISTFILE=/dev/null", main, "sh", "-c", "true"]);
    exec(main, &["shred", "/tmp/f"]);
    attempt(main, &["grep", "-r", "PRIVATE KEY", "/root"]);

    // Processes.
    exec(main, &["/bin/echo", "stratum+tcp://pool.example:3333"]);
    exec(main, &["awk", "BEGIN { system(\"true\") }"]);
    let tty = Command::new("script")
        .args(["-qec", &format!("{} exec -it {main} sh -c true", bed.get("DOCKER")), "/dev/null"])
        .env("DOCKER_HOST", format!("unix://{}", bed.get("DOCKER_SOCK")))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(tty.status.success(), "{}", String::from_utf8_lossy(&tty.stderr));
    attempt(main, &["dpkg", "-l"]);
    exec(main, &["su", "-c", "true"]);
    // busybox under another name: it does not know the applet, but it ran.
    attempt(main, &["/opt/actor/kubectl", "get", "secrets"]);
    exec(main, &["cp", "/bin/busybox", "/root/true"]);
    exec(main, &["/root/true"]);

    // Network.
    bed.docker(&["exec", "-d", main, "nc", "-l", "-p", "9999"]);
    std::thread::sleep(Duration::from_millis(300));
    exec(main, &["nc", "127.0.0.1", "9999", "-e", "/bin/true"]);
    attempt(main, &["arping", "-c", "1", "-w", "1", "-I", "lo", "127.0.0.1"]);
    attempt(main, &["nc", "-w", "1", "169.254.169.254", "80"]);

    // Escapes and privileges: refused in this unprivileged container, which is the point.
    attempt(main, &["unshare", "-U", "true"]);
    attempt(main, &["nsenter", "-t", "1", "-m", "true"]);
    attempt(main, &["sh", "-c", "echo x > /sys/fs/cgroup/release_agent"]);
    exec(main, &["mkdir", "-p", "/mnt/host"]);
    attempt(main, &["mount", "/dev/sda1", "/mnt/host"]);
    sh(main, "echo x > /tmp/m.ko");
    attempt(main, &["insmod", "/tmp/m.ko"]);
    exec(main, &["setpriv", "--inh-caps=+chown", "true"]);
    let actor = "/opt/actor/actor";
    exec(main, &[actor, "ptrace"]);
    exec(main, &[actor, "traceme"]);
    exec(main, &[actor, "bpf_prog_load"]);
    exec(main, &[actor, "connect_unix", "/var/run/docker.sock"]);
    exec(main, &[actor, "memfd_exec", "/bin/busybox", "true"]);
    // A setuid-root copy, planted by root and run by another user, makes itself root.
    sh(main, &format!("cp {actor} /root/sa && chmod u+s /root/sa"));
    bed.docker(&["exec", "-u", "1000", main, "/root/sa", "setuid_root"]);

    // The host's network: a listener and a client on a global address.
    let host = host_address();
    for port in ["6443", "3333"] {
        bed.docker(&["exec", "-d", hostns, "nc", "-l", "-p", port]);
        std::thread::sleep(Duration::from_millis(300));
        attempt(hostns, &["nc", "-w", "1", &host, port]);
    }
    // An executable tmpfs: a temporary directory that is not the container's upper layer.
    sh(hostns, "cp /bin/busybox /tmp/true");
    exec(hostns, &["/tmp/true"]);
    // The host's pid namespace: nobody tries to stop the sensor, and is refused.
    assert!(!bed.docker_status(&["exec", "-u", "65534", hostns, "kill", "-TERM", &sensor_pid.to_string()]));
}

#[test]
fn built_in_rules_alert_on_real_actions_in_containers() {
    let bed = TestBed::up();
    let tag = std::process::id();
    let (main, hostns, hostnet) = (
        format!("sensor-rules-main-{tag}"),
        format!("sensor-rules-hostns-{tag}"),
        format!("sensor-rules-hostnet-{tag}"),
    );
    let image = bed.get("IMAGE").to_owned();
    // The actor alone in a directory: a bind-mounted directory keeps it out of the upper layer.
    let actor_dir = sensor_tests::temp_path("actor");
    std::fs::create_dir_all(&actor_dir).unwrap();
    std::fs::copy(sensor_tests::actor_path(), format!("{actor_dir}/actor")).unwrap();
    // busybox under the name of a cluster tool, shipped (mounted) rather than dropped.
    std::os::unix::fs::symlink("/bin/busybox", format!("{actor_dir}/kubectl")).unwrap();

    let mut sensor = sensor_tests::start_sensor(&[
        "run",
        "--json",
        "--docker-socket",
        bed.get("DOCKER_SOCK"),
        "--container-wait-ms",
        "500",
    ]);

    // Started under the sensor's eyes, so that their first processes are seen.
    let lib = "/lib/x86_64-linux-gnu:/lib/x86_64-linux-gnu:ro";
    let main_id = bed.docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &main,
        "-v",
        lib,
        "-v",
        "/lib64:/lib64:ro",
        "-v",
        &format!("{actor_dir}:/opt/actor:ro"),
        "-v",
        &format!("{}:/var/run/docker.sock", bed.get("DOCKER_SOCK")),
        &image,
        "sleep",
        "600",
    ]);
    let hostns_id = bed.docker(&[
        "run",
        "-d",
        "--network",
        "host",
        "--pid",
        "host",
        "--tmpfs",
        "/tmp:exec",
        "--name",
        &hostns,
        &image,
        "sleep",
        "600",
    ]);
    // Alerts as they come, so that the test knows when the sensor has caught up.
    let (tx, rx) = std::sync::mpsc::channel::<serde_json::Value>();
    let stdout = BufReader::new(sensor.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = tx.send(serde_json::from_str(&line).expect("JSON alert"));
        }
    });
    let hostnet_id = bed.docker(&["run", "-d", "--network", "host", "--name", &hostnet, &image, "sleep", "600"]);
    act(&bed, &main, &hostns, sensor.id());

    // The last action's alert means the sensor has seen everything before it (on a busy
    // machine it may run seconds behind); then SIGTERM stops it.
    let mut alerts = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !alerts.iter().any(|a: &serde_json::Value| a["rule"] == "Signal sent to the sensor") {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(alert) => alerts.push(alert),
            Err(_) => break,
        }
    }
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    unsafe { libc::kill(sensor.id() as i32, libc::SIGTERM) };
    let status = sensor.wait().unwrap();
    alerts.extend(rx.iter());
    bed.docker(&["rm", "-f", &main, &hostns, &hostnet]);
    std::fs::remove_dir_all(&actor_dir).unwrap();
    assert!(status.success());

    let missing: Vec<String> = EXPECTED
        .iter()
        .filter(|e| {
            let id = match e.container {
                Main => &main_id[..12],
                HostNs => &hostns_id[..12],
                HostNet => &hostnet_id[..12],
            };
            !alerts.iter().any(|a| {
                a["rule"] == e.rule
                    && a["output_fields"]["container.id"] == id
                    && a["output_fields"]["proc.name"] == e.proc_name
            })
        })
        .map(|e| format!("{} ({} in {:?})", e.rule, e.proc_name, e.container))
        .collect();
    let fired: Vec<String> = alerts
        .iter()
        .map(|a| {
            let f = &a["output_fields"];
            format!("{} ({} in {})", a["rule"], f["proc.name"], f["container.id"])
        })
        .collect();
    assert!(missing.is_empty(), "missing alerts:\n  {}\nalerts:\n  {}", missing.join("\n  "), fired.join("\n  "));
    println!("{} rules fired live, as expected", EXPECTED.len());
    bed.down();
}
