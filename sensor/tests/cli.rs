//! End-to-end tests of the sensor's commands as an operator runs them (as root).

use std::{
    io::{BufRead, BufReader},
    os::unix::process::CommandExt,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// The sensor binary, its metrics endpoint on a free loopback port unless the arguments
/// say otherwise: tests run sensors side by side, and the default port fits one per host.
fn sensor() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sensor"));
    command.env("SENSOR_CONFIG__METRICS__ADDRESS", "127.0.0.1:0");
    // A failed test leaves no sensor behind: it dies with the test's thread.
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

/// `sensor audit search` has a flag for every parameter of the console's Audit page.
#[test]
fn audit_search_has_a_flag_for_every_parameter_of_the_audit_page() {
    let out = sensor().args(["audit", "search", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for (name, _) in sensor::store::audit::PARAMETERS {
        let flag = match name {
            "order" => "--oldest-first".to_owned(),
            other => format!("--{}", other.replace('_', "-")),
        };
        assert!(help.contains(&flag), "--help lacks {flag}:\n{help}");
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
    let falco = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/falco/falco_rules.yaml");
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
    assert!(!out.status.success());
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains(&format!("{bad}:3:")), "file:line:column in {report}");
    assert!(report.contains("proc.nme"), "{report}");
    // --json: the same report for a pipeline.
    let out = sensor().args(["validate", "--json", &bad]).output().unwrap();
    std::fs::remove_file(&bad).unwrap();
    assert!(!out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((json["errors"].as_u64(), json["rules"].as_u64()), (Some(1), Some(1)), "{json}");
    let d = &json["diagnostics"][0];
    assert_eq!(
        (d["file"].as_str(), d["line"].as_u64(), d["severity"].as_str()),
        (Some(bad.as_str()), Some(3), Some("error"))
    );
    assert!(d["message"].as_str().unwrap().contains("proc.nme"), "{d}");
}

#[test]
fn validate_loads_falco_stable_incubating_and_sandbox_rules_together() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/falco");
    let files =
        ["falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml"].map(|f| format!("{dir}/{f}"));
    let out = sensor().arg("validate").args(&files).output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    let summary = report.lines().last().unwrap_or_default();
    println!("{summary}");
    // Every rule item of the three files is a rule, and each one not disabled loads.
    let lines: Vec<String> = files
        .iter()
        .flat_map(|f| std::fs::read_to_string(f).unwrap().lines().map(str::to_owned).collect::<Vec<_>>())
        .collect();
    let items = lines.iter().filter(|l| l.starts_with("- rule:")).count();
    let disabled = lines.iter().filter(|l| l.trim() == "enabled: false").count();
    assert!(
        summary.starts_with(&format!("{items} rules ({} enabled and loaded)", items - disabled)),
        "{items} rule items, {disabled} disabled: {report}"
    );
    assert!(summary.contains("; 0 errors, "), "{report}");
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
    let field = |name: &str| fields.as_array().unwrap().iter().find(|f| f["name"] == name).cloned().unwrap();
    assert_eq!(field("fd.lport")["available"], true);
    assert_eq!(field("evt.buffer")["unavailable"], "I/O payloads are not captured");
    let out = sensor().arg("list-fields").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("fd.ino ")).unwrap();
    assert!(line.ends_with("(unavailable: the device and inode of opened files are not captured)"), "{line}");
    let line = text.lines().find(|l| l.starts_with("proc.vmswap ")).unwrap();
    assert!(!line.contains("unavailable"), "supplied from the kernel at exec: {line}");
}

#[test]
fn replayed_field_maps_render_what_they_say_or_stop_at_their_line() {
    let dir = std::env::temp_dir().join(format!("sensor-field-maps-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rules = dir.join("rules.yaml");
    std::fs::write(
        &rules,
        "- rule: Etc read\n  desc: d\n  condition: evt.type = openat and fd.directory = /etc\n  \
         output: \"read %fd.name in %fd.directory at %evt.rawtime.ns\"\n  priority: INFO\n",
    )
    .unwrap();
    let events = dir.join("events.jsonl");
    let replay = |lines: &str| {
        std::fs::write(&events, lines).unwrap();
        sensor().arg("replay").arg("--rules").arg(&rules).arg("--events").arg(&events).output().unwrap()
    };
    let good = r#"{"evt.type": "openat", "fd.name": "/etc/hosts", "evt.rawtime": 1700000000000000042}"#;
    let out = replay(&format!("{good}\n"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("read /etc/hosts in /etc at 42"), "the nanosecond part");
    let out =
        replay(&format!("{good}\n{}\n", r#"{"evt.type": "openat", "fd.name": "/etc/hosts", "fd.directory": "/usr"}"#));
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let want = format!(
        "{}:2: field fd.directory: the event renders '/etc' but the test says '/usr'; it follows from fd.name",
        events.display()
    );
    assert!(stderr.contains(&want), "{stderr}");
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

/// `GET path` on `addr`: the status code and the body.
fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// The address the sensor logged for its metrics endpoint.
fn metrics_addr(lines: &[String]) -> String {
    let line = lines.iter().find(|l| l.contains("metrics on http://")).expect("metrics address logged");
    line.split("http://").nth(1).and_then(|r| r.split('/').next()).unwrap().to_owned()
}

#[test]
fn run_serves_health_and_metrics_that_promtool_accepts() {
    let (child, lines) = start(&["run", "-o", "metrics.address=127.0.0.1:0", "--duration", "4"]);
    let addr = metrics_addr(&lines);
    assert_eq!(http_get(&addr, "/healthz").0, 200);
    // Ready once the process table is seeded and the workers run, a moment after attaching.
    let deadline = Instant::now() + Duration::from_secs(20);
    while http_get(&addr, "/readyz").0 != 200 {
        assert!(Instant::now() < deadline, "never ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(http_get(&addr, "/readyz"), (200, "ready\n".into()));
    // Something to count, then a refresh of the snapshot.
    let _ = std::fs::read("/etc/hostname");
    std::thread::sleep(Duration::from_millis(1500));
    let (status, body) = http_get(&addr, "/metrics");
    assert_eq!(status, 200);
    for family in [
        "sensor_events_total{type=\"openat\"}",
        "sensor_kernel_lost_events_total{cpu=\"0\"}",
        "sensor_processes ",
        "sensor_ring_buffer_pending_bytes{ring=\"0\"}",
    ] {
        assert!(body.contains(family), "{family} missing:\n{body}");
    }
    assert!(body.contains("output=\"stdout\""), "output counters: {body}");
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus, installed by cargo xtask setup)");
    use std::io::Write;
    promtool.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let checked = promtool.wait_with_output().unwrap();
    let complaints =
        format!("{}{}", String::from_utf8_lossy(&checked.stdout), String::from_utf8_lossy(&checked.stderr));
    assert!(checked.status.success() && complaints.trim().is_empty(), "promtool: {complaints}\n{body}");
    finish(child);
}

/// The alerts a running sensor prints, as they come (JSON lines on its stdout).
fn alert_stream(child: &mut Child) -> std::sync::mpsc::Receiver<serde_json::Value> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(alert) = serde_json::from_str(&line) {
                let _ = tx.send(alert);
            }
        }
    });
    rx
}

/// Waits for an alert `pred` accepts, keeping every alert seen in `seen`.
fn wait_alert(
    rx: &std::sync::mpsc::Receiver<serde_json::Value>,
    seen: &mut Vec<serde_json::Value>,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if let Ok(alert) = rx.recv_timeout(left) {
            seen.push(alert.clone());
            if pred(&alert) {
                return alert;
            }
        }
    }
    panic!("no {what} within 20 s; saw {seen:#?}")
}

fn marker_rule(name: &str, dir: &str, prefix: &str) -> String {
    format!(
        "- rule: {name}\n  desc: opening {dir}/{prefix}-N\n  condition: evt.type = openat and fd.name startswith \
         {dir}/{prefix}-\n  output: opened %fd.name\n  priority: WARNING\n"
    )
}

/// The sequence number of a marker file an alert names.
fn seq(alert: &serde_json::Value) -> u64 {
    let name = alert["output_fields"]["fd.name"].as_str().unwrap_or_default();
    name.rsplit('-').next().and_then(|n| n.parse().ok()).unwrap_or(0)
}

#[test]
fn rules_reload_live_without_losing_events_and_a_broken_file_keeps_the_old_ones() {
    let dir = format!("/tmp/sensor-reload-{}", std::process::id());
    std::fs::create_dir_all(&dir).unwrap();
    let rules = format!("{dir}/rules.yaml");
    std::fs::write(&rules, marker_rule("Marker A", &dir, "a")).unwrap();
    let (mut child, _) = start(&["run", "--rules", &rules, "--json", "-o", "reload.interval=200ms"]);
    let rx = alert_stream(&mut child);
    // Load: a thread opening a-N and b-N files, over and over.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let opener = {
        let (stop, dir) = (stop.clone(), dir.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                for prefix in ["a", "b"] {
                    let _ = std::fs::File::create(format!("{dir}/{prefix}-{n}"));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let mut seen = Vec::new();
    wait_alert(&rx, &mut seen, "Marker A", |a| a["rule"] == "Marker A");

    std::fs::write(&rules, marker_rule("Marker B", &dir, "b")).unwrap();
    let first_b = seq(&wait_alert(&rx, &mut seen, "Marker B after the reload", |a| a["rule"] == "Marker B"));

    std::fs::write(&rules, "- rule: Broken\n  condition: evt.type = openat and (\n").unwrap();
    let failed =
        wait_alert(&rx, &mut seen, "the reload-failed alert", |a| a["rule"] == "sensor internal: reload failed");
    assert_eq!(failed["priority"], "Error");
    assert_eq!(failed["source"], "internal");
    assert!(failed["output"].as_str().unwrap().contains("rules.yaml"), "names the file: {failed}");
    let failed_at = seen.iter().filter(|a| a["rule"] == "Marker B").map(seq).max().unwrap_or(0);
    let later = wait_alert(&rx, &mut seen, "Marker B after the failed reload", |a| {
        a["rule"] == "Marker B" && seq(a) > failed_at + 5
    });
    assert!(seq(&later) > failed_at);

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    opener.join().unwrap();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(status.success(), "{status}");
    // The switch lost nothing: every b-N from the first B alert on alerted (a few of the
    // last ones may be pending at SIGTERM), and no a-N opened after the switch did.
    let bs: std::collections::BTreeSet<u64> = seen.iter().filter(|a| a["rule"] == "Marker B").map(seq).collect();
    let last_b = *bs.iter().max().unwrap();
    let missing: Vec<u64> = (first_b..=last_b).filter(|n| !bs.contains(n)).collect();
    assert!(missing.is_empty(), "B alerts missing for {missing:?}");
    let late_a: Vec<u64> =
        seen.iter().filter(|a| a["rule"] == "Marker A").map(seq).filter(|&n| n > first_b + 2).collect();
    assert!(late_a.is_empty(), "A still fired after the reload for {late_a:?}");
}

#[test]
fn kernel_drops_raise_a_rate_limited_internal_alert() {
    let (mut child, _) = start(&[
        "run",
        "--json",
        "-o",
        "capture.ring_buffer_kib=4",
        "-o",
        "internal_alerts.interval=1s",
        "--duration",
        "6",
    ]);
    let rx = alert_stream(&mut child);
    // A storm: far more opens than a 4 KiB ring drains between reads.
    let storm = std::thread::spawn(|| {
        let end = Instant::now() + Duration::from_secs(3);
        while Instant::now() < end {
            for _ in 0..1000 {
                let _ = std::fs::File::open("/etc/hostname");
            }
        }
    });
    let mut seen = Vec::new();
    let alert = wait_alert(&rx, &mut seen, "the drop alert", |a| a["rule"] == "sensor internal: event drops");
    storm.join().unwrap();
    assert_eq!(alert["priority"], "Critical");
    assert!(alert["output_fields"]["sensor.lost_events"].as_u64().unwrap() > 0, "{alert}");
    let status = child.wait().unwrap();
    assert!(status.success());
    let drops = seen.iter().filter(|a| a["rule"] == "sensor internal: event drops").count();
    // At most one per interval over the run (6 s plus start-up).
    assert!(drops <= 8, "{drops} drop alerts");
}

#[test]
fn config_check_reports_mistakes_with_their_line() {
    let dir = std::env::temp_dir().join(format!("sensor-config-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.yaml");
    std::fs::write(&good, "metrics: {address: \"0.0.0.0:8765\"}\noutputs:\n  - stdout: {format: json}\n").unwrap();
    let out = sensor().args(["config", "check"]).arg(&good).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(": ok ("), "{out:?}");
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "workers: 2\nmetrics:\n  adress: 0.0.0.0:8765\n").unwrap();
    let out = sensor().args(["config", "check"]).arg(&bad).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(&format!("{}:3:", bad.display())) && stderr.contains("adress"), "{stderr}");
    let secret = dir.join("secret.yaml");
    std::fs::write(&secret, "outputs:\n  - telegram: {chat_id: 1, token: {file: /nonexistent/token}}\n").unwrap();
    let out = sensor().args(["config", "check"]).arg(&secret).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("/nonexistent/token"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_signal_that_stops_the_sensor_is_reported() {
    let (child, _) = start(&["run", "--json"]);
    // From another program, as an attacker's `kill` would be.
    let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let (stdout, _) = finish(child);
    let alert = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|a| a["rule"] == "Signal sent to the sensor")
        .unwrap_or_else(|| panic!("no alert for the stopping signal: {stdout}"));
    assert_eq!(alert["output_fields"]["proc.name"], "kill", "{alert}");
}
