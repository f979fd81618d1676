//! End to end with Falco's stable ruleset: `sensor run --rules falco_rules.yaml` alerts on
//! real actions performed on this host. Rules that need a container are listed with the
//! reason they are not triggered here.

use std::{
    collections::BTreeSet,
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

const FALCO_RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/falco/falco_rules.yaml");

/// Rules this test does not trigger on the host, and why. Those marked "in a container" are
/// triggered in a real Docker container by `tests/run_containers.rs`.
const NOT_TRIGGERED: &[(&str, &str)] = &[
    ("Terminal shell in container", "in a container: tests/run_containers.rs"),
    ("Netcat Remote Code Execution in Container", "in a container: tests/run_containers.rs"),
    ("Packet socket created in container", "in a container: tests/run_containers.rs"),
    ("Redirect STDOUT/STDIN to Network Connection in Container", "in a container: tests/run_containers.rs"),
    ("Drop and execute new binary in container", "in a container: tests/run_containers.rs"),
    (
        "Contact K8S API Server From Container",
        "its server is fd.sip.name kubernetes.default.svc.cluster.local, a name that resolves only inside a \
         cluster (fd.sip.name itself is tested in cli.rs with localhost)",
    ),
    (
        "Debugfs Launched in Privileged Container",
        "privileged containers cannot start here (root lacks capabilities in this VM)",
    ),
    ("Detect release_agent File Container Escapes", "needs a privileged container (see above)"),
    (
        "Linux Kernel Module Injection Detected",
        "covers containers with CAP_SYS_MODULE: a privileged container (see above)",
    ),
    ("System user interactive", "needs a login shell with a terminal as a system user"),
    ("Read sensitive file trusted after startup", "needs a trusted server that has run for a while"),
    ("Run shell untrusted", "needs a web-server-like parent spawning a shell"),
    (
        "Disallowed SSH Connection Non Standard Port",
        "needs a server on a non-private address: tests/fidelity.rs (a test network namespace)",
    ),
];

fn sh(script: &str) {
    let out = Command::new("bash").args(["-c", script]).output().unwrap();
    assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Runs `program args` directly from this test (so its parent is no shell).
fn direct(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn falco_stable_rules_fire_on_real_actions() {
    let tag = std::process::id();
    let mut sensor = Command::new(env!("CARGO_BIN_EXE_sensor"))
        .args(["run", "--rules", FALCO_RULES, "--json", "--all-matches", "--duration", "12"])
        .env("SENSOR_LOG", "info")
        // Beside other tests' sensors: not the default metrics port.
        .env("SENSOR_CONFIG__METRICS__ADDRESS", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(sensor.stderr.take().unwrap());
    let started = Instant::now();
    loop {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "sensor exited early");
        assert!(!line.starts_with("error:"), "{line}");
        if line.contains(" probes, ") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30));
    }
    std::thread::spawn(move || stderr.lines().map_while(Result::ok).for_each(|l| eprintln!("sensor: {l}")));

    let cat = format!("/tmp/falco-e2e-cat-{tag}");
    std::fs::copy("/bin/cat", &cat).unwrap();
    direct(&cat, &["/etc/shadow"]);
    direct("cat", &["/tmp/../../../etc/passwd"]);
    sh(&format!("ln -s /etc/shadow /tmp/falco-e2e-sym-{tag} && ln /etc/shadow /tmp/falco-e2e-hard-{tag}"));
    sh("find /tmp -maxdepth 1 -name id_rsa; find /tmp -maxdepth 1 -path /tmp/x/.aws/credentials");
    sh(&format!("echo data > /tmp/falco-e2e-shred-{tag} && shred -u /tmp/falco-e2e-shred-{tag}"));
    sh(&format!(": > /var/log/falco-e2e-{tag}.log"));
    sh(&format!("cp /bin/true /dev/shm/falco-e2e-{tag} && /dev/shm/falco-e2e-{tag}"));
    let py = |code: &str| direct("/usr/bin/python3", &["-c", code]);
    // PTRACE_ATTACH to a child.
    py("import ctypes, subprocess, time\n\
        libc = ctypes.CDLL(None, use_errno=True)\n\
        child = subprocess.Popen(['sleep', '5'])\n\
        time.sleep(0.2)\n\
        libc.ptrace(16, child.pid, None, None)\n\
        child.kill()\n\
        child.wait()");
    // PTRACE_TRACEME in a process that then only exits: a traced process stops on any
    // signal until its tracer (this test) waits for it.
    py("import ctypes; ctypes.CDLL(None).ptrace(0, 0, None, None)");
    // A program run from a memfd (fexecve).
    py("import os\n\
        fd = os.memfd_create('falco-e2e')\n\
        os.write(fd, open('/bin/true', 'rb').read())\n\
        pid = os.fork()\n\
        if pid == 0:\n    os.execve(fd, ['true'], {})\n\
        os.waitpid(pid, 0)");
    for f in [
        cat.clone(),
        format!("/tmp/falco-e2e-sym-{tag}"),
        format!("/tmp/falco-e2e-hard-{tag}"),
        format!("/var/log/falco-e2e-{tag}.log"),
        format!("/dev/shm/falco-e2e-{tag}"),
    ] {
        let _ = std::fs::remove_file(f);
    }

    let out = sensor.wait_with_output().unwrap();
    assert!(out.status.success());
    let fired: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON alert"))
        .filter_map(|a| a["rule"].as_str().map(str::to_owned))
        .collect();
    let expected = [
        "Read sensitive file untrusted",
        "Directory traversal monitored file read",
        "Create Symlink Over Sensitive Files",
        "Create Hardlink Over Sensitive Files",
        "Search Private Keys or Passwords",
        "Find AWS Credentials",
        "Remove Bulk Data from Disk",
        "Clear Log Activities",
        "Execution from /dev/shm",
        "PTRACE attached to process",
        "PTRACE anti-debug attempt",
        "Fileless execution via memfd_create",
    ];
    let missing: Vec<_> = expected.iter().filter(|r| !fired.contains(**r)).collect();
    assert!(missing.is_empty(), "rules that did not fire: {missing:?}; fired: {fired:?}");
    // Every stable rule is either triggered above or listed with its reason.
    let all: Vec<String> = std::fs::read_to_string(FALCO_RULES)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("- rule: ").map(str::to_owned))
        .collect();
    assert_eq!(all.len(), 25);
    for rule in &all {
        let listed = NOT_TRIGGERED.iter().any(|(r, _)| r == rule);
        assert!(expected.contains(&rule.as_str()) != listed, "{rule}: exactly one of triggered or listed");
    }
    for (rule, why) in NOT_TRIGGERED {
        eprintln!("not triggered here: {rule}: {why}");
    }
}
