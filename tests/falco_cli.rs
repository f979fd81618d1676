//! A Falco user's command lines, unchanged: `sensor` started with Falco's stock
//! `falco.yaml` (vendored in `tests/falco/`, unmodified) warns only what the README
//! documents and alerts as Falco prints; `-c`, `-r`, `-o`, `-A`, `-M`, `-P`, `-U` run it;
//! `-L`, `-l`, `--list`, `-N`, `--list-events`, `-V`, `-D`, `-T`, `-t`, `--dry-run` and
//! `--support` answer as Falco's documentation says. Needs root (the runs load the kernel
//! programs).

use std::{
    io::{BufRead as _, BufReader},
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use sensor_tests::{sensor_binary, sensor_command, temp_path};

fn falco_yaml() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("falco/falco.yaml").display().to_string()
}

fn falco_rules() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../rules/falco/falco_rules.yaml").display().to_string()
}

fn loadgen() -> PathBuf {
    sensor_binary().with_file_name("loadgen")
}

/// `sensor ARGS`: exit code, stdout, stderr.
fn sensor(args: &[&str]) -> (i32, String, String) {
    let out = sensor_command().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A running `sensor` with Falco's command line: killed however the test ends.
struct Running {
    child: std::process::Child,
    /// Its log until its programs were attached.
    log: Vec<String>,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `sensor ARGS` and waits until its programs are attached.
fn start(args: &[&str]) -> Running {
    start_from(sensor_command(), args)
}

/// [`start`] from `command`.
fn start_from(mut command: Command, args: &[&str]) -> Running {
    let mut child = command.args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("sensor starts");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut log = Vec::new();
    let started = Instant::now();
    loop {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "sensor exited early: {log:#?}");
        log.push(line.trim_end().to_owned());
        if line.contains(" probes, ") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the sensor did not start: {log:#?}");
    }
    std::thread::spawn(move || stderr.lines().map_while(Result::ok).for_each(|l| eprintln!("sensor: {l}")));
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    Running { child, log, lines }
}

/// Reads /etc/shadow from a program no rule trusts, once.
fn read_shadow() {
    let out = Command::new(loadgen()).args(["alert", "0", "--iters", "1", "--spacing-us", "0"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The first line of `running`'s stdout that `wanted` accepts, within 10 s.
fn line(running: &Running, wanted: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = running.lines.recv_timeout(left).expect("the alert was printed");
        if wanted(&line) {
            return line;
        }
    }
}

#[test]
fn the_stock_falco_yaml_starts_the_sensor_with_only_the_documented_warnings() {
    assert!(!std::path::Path::new("/etc/falco").exists(), "this test expects a node without Falco installed");
    // The node's time zone is Tokyo's: text alerts print its time of day, as Falco's do.
    let mut command = sensor_command();
    command.env("TZ", "Asia/Tokyo");
    let running = start_from(command, &["-c", &falco_yaml(), "-M", "60"]);
    // The machine's own warnings (a kernel that charges BPF memory to the cgroup) come with
    // any configuration; the rest are the file's, each documented.
    let mut warnings: Vec<&str> = running
        .log
        .iter()
        .filter_map(|l| l.split_once(" WARN ] ").map(|(_, w)| w))
        .filter(|w| !w.starts_with("cannot raise RLIMIT_MEMLOCK"))
        .collect();
    warnings.sort();
    // The configuration's notices, each logged once and nothing else: their text is the
    // documented list `config::falco`'s own test holds the reader to.
    let mut notices = sensor::config::SensorConfig::load(std::path::Path::new(&falco_yaml())).unwrap().notices;
    notices.sort();
    assert_eq!(notices.len(), 16, "{notices:#?}");
    assert_eq!(warnings, notices, "{:#?}", running.log);
    // stdout_output, text (json_output: false): Falco's `<time>: <Priority> <output>`.
    read_shadow();
    let alert = line(&running, |l| l.contains("/etc/shadow"));
    let (time, rest) = alert.split_once(": ").unwrap();
    assert!(
        time.len() == 18 && time.as_bytes()[2] == b':' && time.as_bytes()[8] == b'.',
        "Falco's time of day: {alert}"
    );
    assert!(rest.starts_with("Warning ") || rest.starts_with("Error ") || rest.starts_with("Critical "), "{alert}");
    let hour: u64 = time[..2].parse().unwrap();
    let utc_hours = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() / 3600;
    let tokyo = [(utc_hours + 9) % 24, (utc_hours + 8) % 24];
    assert!(tokyo.contains(&hour), "Tokyo's hour (UTC+9), not UTC's: {alert}");
}

#[test]
fn falco_run_options_choose_rules_format_events_and_duration() {
    let dir = temp_path("falco-cli");
    std::fs::create_dir_all(&dir).unwrap();
    let pidfile = format!("{dir}/sensor.pid");
    // -r: Falco's stable rules instead of the file's; -o: JSON lines; -A: every event
    // captured (no prefilter); -M: its own end; -P: its pid; -U: accepted.
    let started = Instant::now();
    let mut running = start(&[
        "-c",
        &falco_yaml(),
        "-r",
        &falco_rules(),
        "-o",
        "json_output=true",
        "-o",
        "time_format_iso_8601=true",
        "-o",
        "json_include_message_property=true",
        "-o",
        "json_include_tags_property=false",
        "-o",
        "syslog_output.enabled=false",
        "-A",
        "-U",
        "-M",
        "20",
        "-P",
        &pidfile,
    ]);
    assert!(!running.log.iter().any(|l| l.contains("kept back in the kernel")), "-A: {:#?}", running.log);
    assert!(running.log.iter().any(|l| l.contains("25 rules loaded")), "Falco's 25 stable rules: {:#?}", running.log);
    let pid: u32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    assert_eq!(pid, running.child.id());
    read_shadow();
    let alert: serde_json::Value = serde_json::from_str(&line(&running, |l| l.contains("/etc/shadow"))).unwrap();
    assert_eq!(alert["rule"], "Read sensitive file untrusted");
    assert_eq!(alert["output_fields"]["fd.name"], "/etc/shadow");
    // json_include_*: a `message` without the time and priority; no `tags`.
    assert!(alert.get("tags").is_none(), "{alert}");
    let message = alert["message"].as_str().unwrap();
    // time_format_iso_8601: the output begins with the ISO 8601 time, as the `time` field.
    let output = alert["output"].as_str().unwrap();
    assert_eq!(output, format!("{}: Warning {message}", alert["time"].as_str().unwrap()), "{alert}");
    // -M 20: it ends by itself, cleanly.
    let status = running.child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(started.elapsed() < Duration::from_secs(50));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn falco_query_options_answer_as_falcos_docs_say() {
    let rules = falco_rules();
    // -V: each file's verdict, exit 1 when one does not load.
    let (code, out, _) = sensor(&["-V", &rules]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("{rules}: Ok")), "{out}");
    let dir = temp_path("falco-cli-v");
    std::fs::create_dir_all(&dir).unwrap();
    let broken = format!("{dir}/broken.yaml");
    std::fs::write(
        &broken,
        "- rule: Broken\n  desc: d\n  condition: evt.type = open and\n  output: o\n  priority: WARNING\n",
    )
    .unwrap();
    let (code, out, _) = sensor(&["-V", &broken]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("{broken}: Invalid")) && out.contains(&format!("{broken}:3:")), "{out}");

    // -L: every rule's name and description; -l: one rule's.
    let (code, out, _) = sensor(&["-r", &rules, "-L"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("Rule ") && out.lines().nth(1).unwrap().starts_with("---- "), "{out}");
    assert_eq!(out.lines().count(), 2 + 25, "Falco's 25 stable rules: {out}");
    assert!(out.lines().any(|l| l.starts_with("Read sensitive file untrusted ") && l.contains("An attempt to read")));
    let (code, out, _) = sensor(&["-r", &rules, "-l", "Terminal shell in container"]);
    assert_eq!((code, out.lines().count()), (0, 3), "{out}");
    let (code, _, err) = sensor(&["-r", &rules, "-l", "No such rule"]);
    assert_eq!(code, 1);
    assert!(err.contains("no rule `No such rule`"), "{err}");
    // With json_output, -L is JSON.
    let (_, out, _) = sensor(&["-r", &rules, "-o", "json_output=true", "-c", &falco_yaml(), "-L"]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["rules"].as_array().unwrap().len(), 25);

    // --list: fields (of one source), -N names only; --list-events: the system calls.
    let (_, out, _) = sensor(&["--list"]);
    assert!(out.lines().any(|l| l.starts_with("proc.name ")) && out.lines().any(|l| l.starts_with("ka.verb ")));
    let (_, out, _) = sensor(&["--list", "k8s_audit", "-N"]);
    assert!(out.lines().any(|l| l == "ka.verb") && !out.lines().any(|l| l == "proc.name"), "{out}");
    let (_, out, _) = sensor(&["--list-events"]);
    assert!(["openat", "execve", "connect"].iter().all(|e| out.lines().any(|l| l == *e)), "{out}");

    // --dry-run loads the configuration and the rules, and stops; -D, -T and -t select.
    let loaded = |extra: &[&str]| -> usize {
        let (code, _, err) = sensor(&[&["-c", &falco_yaml(), "-r", &rules, "--dry-run"], extra].concat());
        assert_eq!(code, 0, "{err}");
        let line = err.lines().find(|l| l.contains("dry run: configuration and ")).unwrap_or_else(|| panic!("{err}"));
        line.split("configuration and ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(loaded(&[]), 25);
    assert_eq!(loaded(&["-D", "sensitive file"]), 23, "two rules' names hold it");
    let network = loaded(&["-t", "network"]);
    assert!(network > 0 && network < 25, "{network}");
    assert_eq!(loaded(&["-T", "network"]), 25 - network);

    // --support: what a bug report needs.
    let (code, out, _) = sensor(&["-c", &falco_yaml(), "--support"]);
    assert_eq!(code, 0);
    let support: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(support["system_info"]["sysname"], "Linux");
    assert_eq!(support["config"], std::fs::read_to_string(falco_yaml()).unwrap());
    assert!(support["version"].is_string() && support["cmdline"].as_str().unwrap().contains("--support"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A falcosidekick stand-in: takes what Falco's `http_output` POSTs (`/`, JSON, Falco's
/// user agent) and refuses anything else with 400, as falcosidekick's input does; each
/// accepted payload goes to the channel.
fn sidekick() -> (std::net::SocketAddr, std::sync::mpsc::Receiver<serde_json::Value>) {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                loop {
                    let mut head = Vec::new();
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        head.push(line.trim_end().to_owned());
                    }
                    let header = |name: &str| {
                        head.iter()
                            .filter_map(|h| h.split_once(':'))
                            .find(|(k, _)| k.eq_ignore_ascii_case(name))
                            .map(|(_, v)| v.trim().to_owned())
                    };
                    let length: usize = header("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    let verdict = falco_payload(&head[0], header("content-type"), header("user-agent"), &body);
                    let status = match verdict {
                        Ok(payload) => {
                            let _ = tx.send(payload);
                            "200 OK"
                        }
                        Err(why) => {
                            eprintln!("sidekick refused: {why}");
                            "400 Bad Request"
                        }
                    };
                    let answer = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
                    if stream.write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (address, rx)
}

/// Falco's `http_output` payload as falcosidekick's `FalcoPayload` reads it, and nothing
/// else: its keys only, each of its type, a known priority and an RFC 3339 time.
fn falco_payload(
    request_line: &str,
    content_type: Option<String>,
    user_agent: Option<String>,
    body: &[u8],
) -> Result<serde_json::Value, String> {
    if !request_line.starts_with("POST / HTTP/1.1") {
        return Err(format!("request {request_line}"));
    }
    if content_type.as_deref() != Some("application/json") {
        return Err(format!("content type {content_type:?}"));
    }
    if user_agent.as_deref() != Some("falcosecurity/falco") {
        return Err(format!("user agent {user_agent:?}"));
    }
    let payload: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let map = payload.as_object().ok_or("not an object")?;
    for key in map.keys() {
        if !["output", "priority", "rule", "time", "output_fields", "source", "tags", "hostname", "uuid"]
            .contains(&key.as_str())
        {
            return Err(format!("unknown key {key}"));
        }
    }
    let text = |k: &str| map.get(k).and_then(|v| v.as_str()).ok_or(format!("{k}: not a string"));
    let priorities = ["Emergency", "Alert", "Critical", "Error", "Warning", "Notice", "Informational", "Debug"];
    if !priorities.contains(&text("priority")?) {
        return Err(format!("priority {}", text("priority")?));
    }
    text("rule")?;
    text("output")?;
    text("source")?;
    text("hostname")?;
    let time = text("time")?;
    if !(time.len() == 30 && time.ends_with('Z') && time.as_bytes()[10] == b'T') {
        return Err(format!("time {time}: not RFC 3339 with nanoseconds"));
    }
    if !map.get("output_fields").is_some_and(|f| f.is_object()) || !map.get("tags").is_some_and(|t| t.is_array()) {
        return Err("output_fields or tags".into());
    }
    Ok(payload)
}

#[test]
fn falcosidekick_receives_the_alerts_falcos_http_output_would_send() {
    let (address, payloads) = sidekick();
    let url = format!("http_output.url=http://{address}/");
    // A rule that reads the configuration's static field, as Falco's `static.NAME`.
    let dir = temp_path("falco-sidekick");
    std::fs::create_dir_all(&dir).unwrap();
    let rules = format!("{dir}/rules.yaml");
    std::fs::write(
        &rules,
        "- rule: Shadow read in production
  desc: d
  condition: evt.type in (open, openat) and fd.name = /etc/shadow \
         and static.cluster = prod-eu
  output: \"shadow read in %static.cluster (file=%fd.name)\"
  priority: WARNING
\
         - rule: Shadow read in staging
  desc: d
  condition: evt.type in (open, openat) and fd.name = /etc/shadow \
         and static.cluster = staging
  output: \"never\"
  priority: WARNING
",
    )
    .unwrap();
    let running = start(&[
        "-c",
        &falco_yaml(),
        "-r",
        &rules,
        "-o",
        "http_output.enabled=true",
        "-o",
        &url,
        "-o",
        "static_fields={cluster: prod-eu}",
        "-o",
        "json_output=true",
        "-o",
        "syslog_output.enabled=false",
        "-M",
        "60",
    ]);
    read_shadow();
    let printed: serde_json::Value = serde_json::from_str(&line(&running, |l| l.contains("/etc/shadow"))).unwrap();
    let received = loop {
        let payload = payloads.recv_timeout(Duration::from_secs(10)).expect("falcosidekick got the alert");
        if payload["output"] == printed["output"] {
            break payload;
        }
    };
    assert_eq!(received, printed, "the alert as json_output prints it, unchanged");
    // static_fields: the rule read the cluster's name, and every alert carries it.
    assert_eq!(received["rule"], "Shadow read in production");
    assert!(received["output"].as_str().unwrap().contains("shadow read in prod-eu (file=/etc/shadow)"), "{received}");
    assert_eq!(received["output_fields"]["static.cluster"], "prod-eu");
    assert!(received["output"].as_str().unwrap().ends_with(" static_cluster=prod-eu"), "{received}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Falco's metric names, as an operator's Prometheus rules use them: evaluated by
/// `promtool test rules` over what a live sensor served (each sample from 0 a minute
/// before): the rule-match alert fires for the rule that matched, with Falco's labels, and
/// the drop alert only if the kernel dropped events.
#[test]
fn a_prometheus_rule_written_for_falcos_metric_names_evaluates_against_a_live_scrape() {
    let metrics = sensor_tests::free_loopback_port().unwrap();
    let mut command = sensor_command();
    command.env("SENSOR_CONFIG__METRICS__ADDRESS", metrics.to_string());
    let running = start_from(
        command,
        &[
            "-c",
            &falco_yaml(),
            "-r",
            &falco_rules(),
            "-o",
            "webserver.prometheus_metrics_enabled=true",
            "-o",
            "syslog_output.enabled=false",
            "-M",
            "60",
        ],
    );
    read_shadow();
    line(&running, |l| l.contains("/etc/shadow"));
    let deadline = Instant::now() + Duration::from_secs(15);
    let scrape = loop {
        let (status, body) = sensor_tests::http_get(metrics, "/metrics").unwrap();
        assert_eq!(status, 200, "{body}");
        if body.contains("falcosecurity_falco_rules_matches_total{") {
            break body;
        }
        assert!(Instant::now() < deadline, "no rule match counted: {body}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let samples: Vec<(&str, f64)> = scrape
        .lines()
        .filter(|l| l.starts_with("falcosecurity_"))
        .filter_map(|l| l.rsplit_once(' ').map(|(series, value)| (series, value.parse().unwrap())))
        .collect();
    let drops = samples.iter().find(|(s, _)| *s == "falcosecurity_scap_n_drops_total").map(|(_, v)| *v).unwrap();
    let dir = temp_path("falco-promtool");
    std::fs::create_dir_all(&dir).unwrap();
    // Rules as a Falco operator writes them (Falco's docs' metric names and labels).
    let rules = [
        "groups:",
        "- name: falco",
        "  rules:",
        "  - alert: FalcoWarningOrWorse",
        "    expr: sum by (rule_name, priority) (increase(falcosecurity_falco_rules_matches_total{priority=~\"[0-4]\"}[5m])) > 0",
        "  - alert: FalcoSensitiveFileRule",
        "    expr: sum by (rule_name) (increase(falcosecurity_falco_rules_matches_total{tag_filesystem=\"true\",source=\"syscall\"}[5m])) > 0",
        "  - alert: FalcoKernelDrops",
        "    expr: increase(falcosecurity_scap_n_drops_total[5m]) > 0 and on() increase(falcosecurity_scap_n_evts_total[5m]) > 0",
    ];
    std::fs::write(format!("{dir}/falco.rules.yaml"), rules.join("\n") + "\n").unwrap();
    let mut test = vec![
        "rule_files: [falco.rules.yaml]".to_owned(),
        "evaluation_interval: 1m".into(),
        "tests:".into(),
        "- interval: 1m".into(),
        "  input_series:".into(),
    ];
    for (series, value) in &samples {
        test.push(format!("  - series: '{}'", series.replace('\'', "''")));
        test.push(format!("    values: '0 {value}'"));
    }
    test.extend(
        [
            "  alert_rule_test:",
            "  - eval_time: 1m",
            "    alertname: FalcoWarningOrWorse",
            "    exp_alerts:",
            "    - exp_labels: {rule_name: Read sensitive file untrusted, priority: \"4\"}",
            "  - eval_time: 1m",
            "    alertname: FalcoSensitiveFileRule",
            "    exp_alerts:",
            "    - exp_labels: {rule_name: Read sensitive file untrusted}",
            "  - eval_time: 1m",
            "    alertname: FalcoKernelDrops",
        ]
        .map(str::to_owned),
    );
    // The drop alert fires exactly when the sensor counted drops.
    test.push(if drops > 0.0 { "    exp_alerts: [{exp_labels: {}}]".into() } else { "    exp_alerts: []".into() });
    std::fs::write(format!("{dir}/falco.test.yaml"), test.join("\n") + "\n").unwrap();
    let out = Command::new("promtool").args(["test", "rules", "falco.test.yaml"]).current_dir(&dir).output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}\n{scrape}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// With Falco's `syscall_event_drops.actions: [log, alert]` (the stock file's), kernel
/// losses raise Falco's drop alert, by Falco's name and with its output fields.
#[test]
fn kernel_drops_raise_falcos_drop_alert() {
    let mut command = sensor_command();
    // This sensor's own keys over Falco's file: a tiny ring, a check every second.
    command.env("SENSOR_CONFIG__CAPTURE__RING_BUFFER_KIB", "4").env("SENSOR_CONFIG__INTERNAL_ALERTS__INTERVAL", "1s");
    let running = start_from(
        command,
        &["-c", &falco_yaml(), "-o", "json_output=true", "-o", "syslog_output.enabled=false", "-A", "-M", "30"],
    );
    let storm = std::thread::spawn(|| {
        let end = Instant::now() + Duration::from_secs(3);
        while Instant::now() < end {
            for _ in 0..1000 {
                let _ = std::fs::File::open("/etc/hostname");
            }
        }
    });
    let alert: serde_json::Value =
        serde_json::from_str(&line(&running, |l| l.contains("Falco internal: syscall event drop"))).unwrap();
    storm.join().unwrap();
    assert_eq!(
        (alert["rule"].as_str(), alert["priority"].as_str()),
        (Some("Falco internal: syscall event drop"), Some("Critical"))
    );
    let fields = &alert["output_fields"];
    let n = |k: &str| fields[k].as_str().unwrap_or_else(|| panic!("{k}: {alert}")).parse::<u64>().unwrap();
    assert!(n("n_drops") > 0 && n("n_evts") >= n("n_drops"), "{alert}");
    assert_eq!((n("n_drops_scratch_map"), n("n_drops_page_faults"), n("n_drops_bug"), n("ebpf_enabled")), (0, 0, 0, 1));
    let message = alert["output"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "Falco internal: syscall event drop. {} system calls dropped in last second.",
            n("n_drops")
        )),
        "{message}"
    );
}
