//! End-to-end tests of the `sensor capture` command as an operator runs it (as root).

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
        let started = line.contains("capturing");
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
