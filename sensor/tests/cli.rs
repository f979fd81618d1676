//! End-to-end tests of the sensor's commands as an operator runs them (as root).

use std::{
    io::{BufRead, BufReader},
    os::unix::process::CommandExt,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

fn sensor() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sensor"))
}

/// Starts `sensor ARGS` and waits until it reports that capture is running.
fn start(args: &[&str]) -> (Child, Vec<String>) {
    let mut child = sensor()
        .args(args)
        .env("SENSOR_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sensor starts");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "sensor exited before capturing: {lines:?}");
        // Logged by the capture once its programs are attached.
        let started = line.contains(" probes, ");
        lines.push(line);
        if started {
            break;
        }
        assert!(Instant::now() < deadline, "sensor did not start: {lines:?}");
    }
    // Keep draining stderr so the sensor never blocks on it; hand the rest back at exit.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rest: Vec<String> = stderr.lines().map_while(Result::ok).collect();
        let _ = tx.send(rest);
    });
    STDERR_TAIL.with(|t| *t.borrow_mut() = Some(rx));
    (child, lines)
}

thread_local! {
    static STDERR_TAIL: std::cell::RefCell<Option<std::sync::mpsc::Receiver<Vec<String>>>> =
        const { std::cell::RefCell::new(None) };
}

/// Waits for the sensor to exit; returns its stdout and the rest of its stderr.
fn finish(child: Child) -> (String, String) {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "sensor failed: {}", out.status);
    let rest = STDERR_TAIL.with(|t| t.borrow_mut().take().unwrap().recv().unwrap());
    (String::from_utf8(out.stdout).unwrap(), rest.join("\n"))
}

#[test]
fn capture_json_shows_execve_of_another_shell_with_full_argv() {
    let (child, _) = start(&["capture", "--json", "--syscalls", "execve", "--duration", "3"]);
    let shell = Command::new("sh").args(["-c", "/bin/echo sensor-e2e 'two words' last"]).output().unwrap();
    assert!(shell.status.success());
    let (stdout, _) = finish(child);
    let events: Vec<serde_json::Value> =
        stdout.lines().map(|l| serde_json::from_str(l).expect("every line is a JSON event")).collect();
    let echo = events
        .iter()
        .find(|e| e["syscall"] == "execve" && e["args"]["path"] == "/bin/echo")
        .unwrap_or_else(|| panic!("no execve of /bin/echo in {} events", events.len()));
    assert_eq!(echo["args"]["argv"], serde_json::json!(["/bin/echo", "sensor-e2e", "two words", "last"]));
    assert_eq!(echo["ret"], 0);
    assert_eq!(echo["event"], "syscall");
    assert_eq!(echo["args"]["family"], "exec");
    assert!(echo["pid"].as_u64().unwrap() > 0 && echo["wall_ts"].as_u64().unwrap() > 0);
}

#[test]
fn capture_output_file_is_json_lines_and_lost_events_are_reported_per_cpu() {
    let file = format!("/tmp/sensor-cli-{}.jsonl", std::process::id());
    // A one-page ring, rarely drained, under a burst of opens: events are lost.
    let (child, _) = start(&[
        "capture",
        "--syscalls",
        "openat,close",
        "--ring-bytes",
        "4096",
        "--cpus-per-ring",
        "0",
        "--wakeup-bytes",
        "1048576",
        "--duration",
        "3",
        "--output",
        &file,
    ]);
    let burst = Command::new("sh").args(["-c", "for i in $(seq 300); do cat /dev/null; done"]).output().unwrap();
    assert!(burst.status.success());
    let (stdout, stderr) = finish(child);
    assert!(stdout.is_empty(), "with --output nothing goes to stdout");
    let recorded = std::fs::read_to_string(&file).unwrap();
    std::fs::remove_file(&file).unwrap();
    assert!(recorded.lines().count() > 0);
    for line in recorded.lines() {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(e["syscall"] == "openat" || e["syscall"] == "close" || e["event"] != "syscall", "{line}");
    }
    let summary = stderr.lines().find(|l| l.starts_with("capture:")).unwrap_or_else(|| panic!("no summary: {stderr}"));
    let lost: u64 = summary.split(" lost").next().unwrap().rsplit(' ').next().unwrap().parse().unwrap();
    assert!(lost > 0, "{summary}");
    assert!(summary.contains("cpu0 emitted=") && summary.contains("lost="), "per-CPU counts: {summary}");
    assert!(stderr.contains("events lost so far"), "a warning while running: {stderr}");
}

#[test]
fn unknown_syscall_is_a_clear_error() {
    let out = sensor().args(["capture", "--syscalls", "openat,nosuchcall"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown syscall `nosuchcall`") && err.contains("openat"), "{err}");
}

#[test]
fn unprivileged_user_gets_a_clear_error() {
    let out = sensor().args(["capture", "--duration", "1"]).uid(65534).gid(65534).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs root, or the capabilities CAP_BPF and CAP_PERFMON"), "{err}");
}

#[test]
fn help_explains_capture_options() {
    let out = sensor().args(["capture", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout).to_lowercase();
    for option in ["--json", "--syscalls", "--duration", "--output", "--ring-bytes", "--cpus-per-ring", "lost"] {
        assert!(help.contains(option), "--help lacks {option}:\n{help}");
    }
}

/// A copy of `cat` under a name no rule trusts.
fn untrusted_cat(tag: &str) -> String {
    let path = format!("/tmp/sensor-e2e-{tag}-{}", std::process::id());
    std::fs::copy("/bin/cat", &path).unwrap();
    path
}

#[test]
fn run_alerts_when_an_untrusted_program_reads_shadow() {
    let cat = untrusted_cat("cat");
    // Two pipeline workers: the alert comes from whichever owns the process.
    let (child, _) = start(&["run", "--json", "--duration", "4", "--workers", "2"]);
    let read = Command::new(&cat).arg("/etc/shadow").output().unwrap();
    assert!(read.status.success());
    let (stdout, stderr) = finish(child);
    std::fs::remove_file(&cat).unwrap();
    let alerts: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).expect("JSON alert")).collect();
    let name = cat.rsplit('/').next().unwrap();
    let alert = alerts
        .iter()
        .find(|a| a["output_fields"]["proc.name"] == name[..name.len().min(15)])
        .unwrap_or_else(|| panic!("no alert for {name}: {stdout}\n{stderr}"));
    assert_eq!(alert["rule"], "Read credential file by untrusted program");
    assert_eq!(alert["priority"], "Warning");
    assert_eq!(alert["source"], "syscall");
    assert_eq!(alert["output_fields"]["fd.name"], "/etc/shadow");
    assert_eq!(alert["output_fields"]["proc.exepath"], cat.as_str());
    assert_eq!(alert["output_fields"]["user.name"], "root");
    assert_eq!(alert["output_fields"]["container.id"], "host");
    assert!(alert["output"].as_str().unwrap().contains("file=/etc/shadow"));
    assert!(stderr.contains("by 2 worker(s)") && stderr.contains(" alerts"), "{stderr}");
}

#[test]
fn capture_file_replays_to_the_same_alert() {
    let cat = untrusted_cat("replay");
    let file = format!("/tmp/sensor-replay-{}.jsonl", std::process::id());
    let (child, _) = start(&["capture", "--duration", "3", "--output", &file]);
    assert!(Command::new(&cat).arg("/etc/shadow").output().unwrap().status.success());
    finish(child);
    std::fs::remove_file(&cat).unwrap();
    let out = sensor().args(["replay", "--events", &file, "--json"]).output().unwrap();
    std::fs::remove_file(&file).unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let hit = stdout.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()).find(|a| {
        a["rule"] == "Read credential file by untrusted program" && a["output_fields"]["proc.exepath"] == cat.as_str()
    });
    assert!(hit.is_some(), "the replay alerts like live mode: {stdout}");
}

#[test]
fn validate_loads_falco_stable_rules_and_locates_errors() {
    let falco = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/falco/falco_rules.yaml");
    let out = sensor().args(["validate", falco]).output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("25 rules") && report.contains("87 macros") && report.contains("49 lists"), "{report}");
    assert!(report.contains("0 errors"), "{report}");

    let bad = format!("/tmp/sensor-bad-rules-{}.yaml", std::process::id());
    std::fs::write(
        &bad,
        "- rule: Broken\n  desc: x\n  condition: evt.type = open and proc.nme = cat\n  output: o\n  priority: INFO\n",
    )
    .unwrap();
    let out = sensor().args(["validate", &bad]).output().unwrap();
    std::fs::remove_file(&bad).unwrap();
    assert!(!out.status.success());
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains(&format!("{bad}:3:")), "file:line:column in {report}");
    assert!(report.contains("proc.nme"), "{report}");
}

#[test]
fn test_rules_runs_the_rule_unit_tests_of_both_rulesets() {
    for dir in ["default", "falco"] {
        let tests = format!("{}/../rules/tests/{dir}", env!("CARGO_MANIFEST_DIR"));
        let out = sensor().args(["test-rules", &tests]).output().unwrap();
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{dir}: {report}");
        let last = report.lines().last().unwrap_or("");
        assert!(last.ends_with(" passed, 0 failed"), "{dir}: {last}");
    }
}

#[test]
fn list_fields_covers_the_field_classes() {
    let out = sensor().args(["list-fields", "--json"]).output().unwrap();
    assert!(out.status.success());
    let fields: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = fields.to_string();
    for f in ["proc.aname", "fd.name", "evt.arg", "user.name", "container.id", "k8s.pod.name", "thread.cap_effective"] {
        assert!(text.contains(&format!("\"{f}\"")), "{f} missing");
    }
}

#[test]
fn run_reads_environment_and_executable_inode_at_exec() {
    use std::os::unix::fs::MetadataExt;
    let rules = format!("/tmp/sensor-env-rules-{}.yaml", std::process::id());
    std::fs::write(
        &rules,
        "- rule: Marked process\n  desc: a process started with SENSOR_E2E_MARK=yes\n  \
         condition: evt.type = execve and proc.env[SENSOR_E2E_MARK] = yes\n  \
         output: marked %proc.name ino=%proc.exe_ino\n  priority: INFO\n",
    )
    .unwrap();
    let (child, _) = start(&["run", "--rules", &rules, "--json", "--duration", "3"]);
    // Programs that exit at once: what the rule reads was captured in the kernel at exec.
    let marked = Command::new("/bin/true").env("SENSOR_E2E_MARK", "yes").output().unwrap();
    assert!(marked.status.success());
    let unmarked = Command::new("/bin/true").env("SENSOR_E2E_MARK", "no").output().unwrap();
    assert!(unmarked.status.success());
    let (stdout, _) = finish(child);
    std::fs::remove_file(&rules).unwrap();
    let alerts: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(alerts.len(), 1, "only the marked process: {stdout}");
    let ino = std::fs::metadata("/bin/true").unwrap().ino();
    assert_eq!(alerts[0]["output_fields"]["proc.exe_ino"], ino, "{stdout}");
}

#[test]
fn run_names_server_addresses_by_the_dns_names_rules_use() {
    let rules = format!("/tmp/sensor-dns-rules-{}.yaml", std::process::id());
    std::fs::write(
        &rules,
        "- rule: Connect to localhost by name\n  desc: a connection to an address of localhost\n  \
         condition: evt.type = connect and fd.sip.name = localhost\n  \
         output: connect to %fd.sip.name (%fd.sip:%fd.sport)\n  priority: INFO\n",
    )
    .unwrap();
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (child, _) = start(&["run", "--rules", &rules, "--json", "--duration", "3"]);
    // The names resolve in the background after start: give them a moment.
    std::thread::sleep(std::time::Duration::from_millis(500));
    // 127.0.0.2 reaches the same listener but is not an address of localhost.
    for ip in ["127.0.0.2", "127.0.0.1"] {
        std::net::TcpStream::connect((ip, port)).unwrap();
    }
    let (stdout, _) = finish(child);
    std::fs::remove_file(&rules).unwrap();
    let alerts: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let ours: Vec<_> = alerts.iter().filter(|a| a["output_fields"]["fd.sport"] == port).collect();
    assert_eq!(ours.len(), 1, "only the connection to 127.0.0.1: {stdout}");
    assert_eq!(ours[0]["output_fields"]["fd.sip.name"], "localhost");
    assert_eq!(ours[0]["output_fields"]["fd.sip"], "127.0.0.1");
}

#[test]
fn run_with_a_config_sends_live_alerts_to_its_outputs() {
    let dir = std::env::temp_dir().join(format!("sensor-run-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let alerts_file = dir.join("alerts.jsonl");
    let config = dir.join("sensor.yaml");
    std::fs::write(
        &config,
        format!(
            "outputs:\n  - stdout: {{format: text}}\n  - file: {{path: {}}}\n    min_priority: warning\n",
            alerts_file.display()
        ),
    )
    .unwrap();
    let cat = untrusted_cat("config");
    let (child, _) = start(&["run", "--config", config.to_str().unwrap(), "--duration", "3"]);
    assert!(Command::new(&cat).arg("/etc/shadow").output().unwrap().status.success());
    let (stdout, stderr) = finish(child);
    std::fs::remove_file(&cat).unwrap();
    let name = cat.rsplit('/').next().unwrap();
    let name = &name[..name.len().min(15)];
    // stdout: Falco's text line.
    assert!(
        stdout.lines().any(|l| l.contains(": Warning ") && l.contains(name) && l.contains("/etc/shadow")),
        "{stdout}"
    );
    // The file: Falco's JSON alert, one per line.
    let text = std::fs::read_to_string(&alerts_file).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let ours: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|a| a["output_fields"]["proc.name"] == name)
        .collect();
    assert_eq!(ours.len(), 1, "{text}");
    assert_eq!(ours[0]["rule"], "Read credential file by untrusted program");
    // Both outputs report their counters at exit.
    assert!(stderr.contains("output stdout: produced=") && stderr.contains("output file: produced="), "{stderr}");
}
