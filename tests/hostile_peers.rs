//! Hostile peers cannot stall, exhaust or fool the sensor: what an operator would check when
//! a pod floods the metrics port, or an alert endpoint misbehaves.
//!
//! - 1,000 idle connections to the metrics endpoint: a fresh scrape still succeeds, the
//!   sensor's fds and peak memory stay bounded, the idle connections are closed after the
//!   header timeout, every close is counted, and detection goes on (root: real sensor).
//! - `/healthz` fails naming the stalled stage when the run loop is stuck (a reload reading
//!   a configuration file that is a FIFO), and recovers when it moves; `/readyz` is ready
//!   once running (root).
//! - A webhook peer answering `429`/`503` with `Retry-After: 999999` cannot mute the output:
//!   it retries within `max_backoff` and delivers once the peer recovers.
//! - A webhook peer answering an endless error body does not hold the output.
//! - A redirect to another origin is not followed, and the secret header never reaches it.
//! - A symbolic link at the file output's path is refused, with a clear error, at start and
//!   at a reopen (counted).
//!
//! The webhook peers are real HTTP servers on loopback; the outputs are the sensor's own
//! output stage (no root needed).

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

use sensor::{
    config::SensorConfig,
    outputs::{OutputCounters, OutputStage},
    rules::{Alert, Priority},
};
use sensor_tests::{
    bench::prom::Scrape, free_loopback_port, http_get, scrape, sensor_command, start_sensor, temp_path,
};

// ---------------------------------------------------------------------------------------
// The metrics endpoint (a real sensor, root)
// ---------------------------------------------------------------------------------------

/// Open fds of process `pid`.
fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).expect("the sensor's fds").count()
}

/// A `kB` line of `/proc/PID/status` (`VmHWM`, `VmRSS`), in KiB.
fn status_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the sensor's status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
}

/// The value of one sample (`name` with a label containing `label`), 0 if absent.
fn sample(s: &Scrape, name: &str, label: &str) -> u64 {
    s.sum_with(name, label).unwrap_or(0.0) as u64
}

/// A running `sensor run`, stopped (SIGTERM, then waited for) when dropped.
struct Sensor {
    child: Child,
    alerts: mpsc::Receiver<serde_json::Value>,
}

impl Sensor {
    /// `sensor run --json` with the built-in rules, metrics on `metrics` and `extra` options.
    fn start(metrics: SocketAddr, extra: &[&str]) -> Self {
        let address = format!("metrics.address={metrics}");
        let mut args = vec!["run", "--json", "-o", &address];
        args.extend_from_slice(extra);
        let mut child = start_sensor(&args);
        let (tx, alerts) = mpsc::channel();
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if tx.send(serde_json::from_str(&line).expect("a JSON alert")).is_err() {
                    return;
                }
            }
        });
        Sensor { child, alerts }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for an alert of `rule` on a file, failing after 10 s.
    fn expect_alert(&self, rule: &str, file: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.alerts.recv_timeout(left) {
                Ok(a) if a["rule"] == rule && a["output_fields"]["fd.name"] == file => return,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        panic!("no alert `{rule}` on {file} within 10 s");
    }
}

impl Drop for Sensor {
    fn drop(&mut self) {
        // SAFETY: kill has no memory preconditions; the pid is our child's.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// Raises this process's soft fd limit to its hard limit: the test holds 1,000 sockets.
fn raise_fd_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit read and write the struct given.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    assert!(limit.rlim_cur > 1100, "the hard fd limit {} is below what the test holds", limit.rlim_cur);
}

/// Whether the server closed `stream` (end of file or a reset), without waiting.
fn closed_by_peer(mut stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).expect("nonblocking");
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

#[test]
fn a_thousand_idle_connections_cannot_exhaust_the_metrics_endpoint() {
    sensor_tests::require_root();
    raise_fd_limit();
    let metrics = free_loopback_port().unwrap();
    // The documented defaults: 5 s header timeout, 64 connections.
    let sensor = Sensor::start(metrics, &[]);
    let pid = sensor.pid();
    scrape(metrics);
    let (fds_before, hwm_before) = (fd_count(pid), status_kib(pid, "VmHWM"));

    let idle: Vec<TcpStream> =
        (0..1000).map(|i| TcpStream::connect(metrics).unwrap_or_else(|e| panic!("connection {i}: {e}"))).collect();
    // A scrape while they are all open still gets through: idle connections make room.
    let during = Instant::now();
    let (status, _) = http_get(metrics, "/healthz").expect("a request during the flood");
    assert_eq!(status, 200);
    let now = scrape(metrics);
    let answered_in = during.elapsed();
    let (fds_during, hwm_during) = (fd_count(pid), status_kib(pid, "VmHWM"));
    eprintln!(
        "1000 idle connections: fds {fds_before} -> {fds_during}, VmHWM {hwm_before} -> {hwm_during} KiB, \
         scrape answered in {answered_in:?}"
    );
    assert!(fds_during <= fds_before + 64 + 2, "fds grew from {fds_before} to {fds_during}");
    assert!(hwm_during <= hwm_before + 16 * 1024, "peak memory grew from {hwm_before} to {hwm_during} KiB");
    let evicted = sample(&now, "sensor_http_connections_closed_total", "reason=\"evicted_idle\"");
    assert!(evicted >= 1000 - 64, "{evicted} idle connections evicted to make room");
    let open = sample(&now, "sensor_http_open_connections", "");
    assert!(open <= 64, "{open} connections open");

    // Detection goes on.
    let cat = Command::new("cat").arg("/etc/shadow").stdout(Stdio::null()).status().expect("cat runs");
    assert!(cat.success());
    sensor.expect_alert("Read credential file by untrusted program", "/etc/shadow");

    // The ones still open are closed after the header timeout, and counted.
    std::thread::sleep(Duration::from_secs(7));
    let still_open = idle.iter().filter(|s| !closed_by_peer(s)).count();
    assert_eq!(still_open, 0, "connections the sensor left open past its header timeout");
    let after = scrape(metrics);
    let timed_out = sample(&after, "sensor_http_connections_closed_total", "reason=\"header_timeout\"");
    let evicted = sample(&after, "sensor_http_connections_closed_total", "reason=\"evicted_idle\"");
    assert!(evicted + timed_out >= 1000, "closes counted: {evicted} evicted, {timed_out} timed out");
    assert!(sample(&after, "sensor_http_connections_total", "") >= 1000);
    let fds_after = fd_count(pid);
    eprintln!("after the header timeout: fds {fds_after}, {evicted} evicted, {timed_out} timed out");
    assert!(fds_after <= fds_before + 2, "fds {fds_before} -> {fds_after} after the connections closed");
}

/// `/readyz` turns ready once the sensor started, and a reload whose file blocks (a FIFO)
/// waits off the run loop: `/healthz` stays healthy and alerts keep coming meanwhile.
#[test]
fn readyz_follows_the_start_and_a_blocked_reload_stalls_neither_health_nor_detection() {
    sensor_tests::require_root();
    let metrics = free_loopback_port().unwrap();
    let dir = temp_path("stall");
    std::fs::create_dir_all(&dir).unwrap();
    let config = format!("{dir}/sensor.yaml");
    std::fs::write(&config, "reload: {watch: false}\nmetrics: {stall_after: 2s}\n").unwrap();
    let sensor = Sensor::start(metrics, &["--config", &config]);
    let get = |path| http_get(metrics, path).expect("the metrics endpoint answers");
    let until = |path, status: u16, within: Duration| {
        let deadline = Instant::now() + within;
        loop {
            let (got, body) = get(path);
            if got == status {
                return body;
            }
            assert!(Instant::now() < deadline, "{path} stayed {got} ({}) for {within:?}", body.trim());
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    until("/readyz", 200, Duration::from_secs(10));
    // Running, quiet or not, for longer than stall_after: healthy.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(get("/healthz"), (200, "ok\n".to_owned()));

    // The configuration file becomes a FIFO: the reload blocks reading it, off the run loop
    // (it once blocked the run loop, which this test found), so health and detection go on.
    let fifo = format!("{dir}/fifo");
    let path = std::ffi::CString::new(fifo.clone()).unwrap();
    // SAFETY: mkfifo reads the NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0, "mkfifo {fifo}");
    std::fs::rename(&fifo, &config).unwrap();
    // SAFETY: kill has no memory preconditions.
    assert_eq!(unsafe { libc::kill(sensor.pid() as i32, libc::SIGHUP) }, 0);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(get("/healthz"), (200, "ok\n".to_owned()), "healthy while the reload waits");
    let cat = Command::new("cat").arg("/etc/shadow").stdout(Stdio::null()).status().expect("cat runs");
    assert!(cat.success());
    sensor.expect_alert("Read credential file by untrusted program", "/etc/shadow");
    assert_eq!(sample(&scrape(metrics), "sensor_rule_reloads_total", "result=\"success\""), 0, "still loading");

    // Unblocked (the same configuration), the reload completes.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&config)
        .expect("the FIFO's writer")
        .write_all(b"reload: {watch: false}\nmetrics: {stall_after: 2s}\n")
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while sample(&scrape(metrics), "sensor_rule_reloads_total", "result=\"success\"") == 0 {
        assert!(Instant::now() < deadline, "the reload completes once its file is readable");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(get("/healthz"), (200, "ok\n".to_owned()));
    drop(sensor);
    std::fs::remove_dir_all(dir).unwrap();
}

// ---------------------------------------------------------------------------------------
// Alert endpoints (real HTTP peers on loopback, the sensor's output stage)
// ---------------------------------------------------------------------------------------

/// One request a peer received.
#[derive(Clone, Debug)]
struct Received {
    /// `POST /path`.
    line: String,
    /// Header names in lower case, with their values.
    headers: Vec<(String, String)>,
    at: Instant,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// What a peer does with a request.
enum Answer {
    /// Writes these bytes and closes.
    Bytes(String),
    /// A `500` whose chunked body never ends (until the client goes away).
    Endless,
}

/// A real HTTP/1.1 server on loopback: each request gets what `answer` returns for it (its
/// number, from 0), on a connection of its own.
struct Peer {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Peer {
    fn start(answer: impl Fn(usize) -> Answer + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a peer port");
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let (log, answer) = (received.clone(), Arc::new(answer));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let (log, answer) = (log.clone(), answer.clone());
                std::thread::spawn(move || serve(stream, &log, &*answer));
            }
        });
        Peer { addr, received }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// Reads one request (headers and a `Content-Length` body), logs it, answers.
fn serve(stream: TcpStream, log: &Mutex<Vec<Received>>, answer: &dyn Fn(usize) -> Answer) {
    let mut reader = BufReader::new(stream.try_clone().expect("a second handle"));
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).expect("a header line");
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').expect("name: value");
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let length: usize =
        headers.iter().find(|(n, _)| n == "content-length").map_or(0, |(_, v)| v.parse().expect("a length"));
    let mut body = vec![0; length];
    reader.read_exact(&mut body).expect("the body");
    let n = {
        let mut log = log.lock().unwrap();
        log.push(Received { line: line.trim_end().to_owned(), headers, at: Instant::now() });
        log.len() - 1
    };
    let mut stream = stream;
    match answer(n) {
        Answer::Bytes(bytes) => {
            // The client may hang up first; the test judges by what it received.
            let _ = stream.write_all(bytes.as_bytes());
        }
        Answer::Endless => {
            let head = "HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n";
            let chunk = format!("4000\r\n{}\r\n", "x".repeat(0x4000));
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut out = stream.write_all(head.as_bytes());
            while out.is_ok() && Instant::now() < deadline {
                out = stream.write_all(chunk.as_bytes());
            }
        }
    }
}

/// An HTTP answer with `status` and extra header lines, closing the connection.
fn answer(status: &str, headers: &[&str]) -> Answer {
    let mut text = format!("HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n");
    for h in headers {
        text.push_str(h);
        text.push_str("\r\n");
    }
    text.push_str("\r\nno");
    Answer::Bytes(text)
}

fn ok() -> Answer {
    Answer::Bytes("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into())
}

fn alert(message: &str) -> Alert {
    Alert {
        time_ns: 0,
        rule: "Hostile peer test".into(),
        priority: Priority::Warning,
        source: "syscall".into(),
        hostname: "h".into(),
        message: message.into(),
        tags: vec![].into(),
        fields: vec![],
    }
}

/// Starts the outputs of `config` (the `outputs:` list of sensor.yaml).
async fn outputs(config: &str) -> OutputStage {
    let config = SensorConfig::parse(config).unwrap_or_else(|e| panic!("{e}\n{config}"));
    OutputStage::start(&config.outputs).await.expect("the outputs start")
}

/// Waits until the one output's counters satisfy `done` (within `within`), and returns them.
async fn settled(stage: &OutputStage, within: Duration, done: impl Fn(&OutputCounters) -> bool) -> OutputCounters {
    let deadline = Instant::now() + within;
    loop {
        let counters = stage.counters().remove(0);
        if done(&counters) {
            return counters;
        }
        assert!(Instant::now() < deadline, "not settled within {within:?}: {counters}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_cannot_mute_a_webhook_past_max_backoff() {
    let peer = Peer::start(|n| match n {
        0 => answer("429 Too Many Requests", &["Retry-After: 999999"]),
        1 => answer("503 Service Unavailable", &["Retry-After: 999999"]),
        _ => ok(),
    });
    let stage = outputs(&format!(
        "outputs:\n  - webhook: {{url: \"{}\"}}\n    retry: {{attempts: 5, initial_backoff: 100ms, max_backoff: 1s}}\n",
        peer.url("/alerts")
    ))
    .await;
    stage.publish(alert("a"));
    let counters = settled(&stage, Duration::from_secs(10), |c| c.sent + c.failed == 1).await;
    assert_eq!((counters.sent, counters.retried, counters.failed), (1, 2, 0), "{counters}");
    let times: Vec<Instant> = peer.received().iter().map(|r| r.at).collect();
    for pair in times.windows(2) {
        let wait = pair[1] - pair[0];
        assert!(wait >= Duration::from_millis(900) && wait < Duration::from_secs(3), "waited {wait:?}");
    }
    stage.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_error_body_does_not_hold_a_webhook() {
    let peer = Peer::start(|_| Answer::Endless);
    let stage = outputs(&format!(
        "outputs:\n  - webhook: {{url: \"{}\"}}\n    retry: {{attempts: 1}}\n    timeout: 20s\n",
        peer.url("/")
    ))
    .await;
    let start = Instant::now();
    stage.publish(alert("a"));
    let counters = settled(&stage, Duration::from_secs(15), |c| c.failed == 1).await;
    // Read to its bound, not to the attempt's timeout.
    assert!(start.elapsed() < Duration::from_secs(5), "the failure took {:?}", start.elapsed());
    assert_eq!((counters.sent, counters.retried), (0, 0), "{counters}");
    stage.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_elsewhere_is_not_followed_and_the_secret_stays() {
    // SAFETY (set_var): a variable only this test reads.
    unsafe { std::env::set_var("HOSTILE_PEERS_WEBHOOK_KEY", "k3y-s3cret") };
    let elsewhere = Arc::new(Peer::start(|_| ok()));
    let target = elsewhere.url("/collect");
    let redirector = Peer::start(move |_| answer("302 Found", &[&format!("Location: {target}")]));
    let webhook = |url: &str, extra: &str| {
        format!(
            "outputs:\n  - webhook:\n      url: \"{url}\"\n      headers: {{X-Api-Key: {{env: HOSTILE_PEERS_WEBHOOK_KEY}}}}\n\
             {extra}    retry: {{attempts: 3, initial_backoff: 100ms}}\n"
        )
    };

    // Default: no redirect is followed; a failed delivery, not retried.
    let stage = outputs(&webhook(&redirector.url("/hook"), "")).await;
    stage.publish(alert("a"));
    let counters = settled(&stage, Duration::from_secs(10), |c| c.failed == 1).await;
    assert_eq!((counters.sent, counters.retried), (0, 0), "{counters}");
    stage.shutdown(Duration::from_secs(1)).await;
    assert_eq!(redirector.received().len(), 1);
    assert_eq!(redirector.received()[0].header("x-api-key"), Some("k3y-s3cret"));

    // same_origin: a redirect on the same origin is followed (with the header), one to
    // another origin is not.
    let same = Arc::new(Mutex::new(None::<String>));
    let (same_in, elsewhere_url) = (same.clone(), elsewhere.url("/collect"));
    let origin = Peer::start(move |n| match n {
        0 => answer("307 Temporary Redirect", &[&format!("Location: {}", same_in.lock().unwrap().clone().unwrap())]),
        1 => ok(),
        _ => answer("308 Permanent Redirect", &[&format!("Location: {elsewhere_url}")]),
    });
    *same.lock().unwrap() = Some(origin.url("/moved"));
    let stage = outputs(&webhook(&origin.url("/hook"), "      redirects: same_origin\n")).await;
    stage.publish(alert("followed"));
    settled(&stage, Duration::from_secs(10), |c| c.sent == 1).await;
    stage.publish(alert("not followed"));
    let counters = settled(&stage, Duration::from_secs(10), |c| c.failed == 1).await;
    assert_eq!((counters.sent, counters.retried), (1, 0), "{counters}");
    stage.shutdown(Duration::from_secs(1)).await;
    let lines: Vec<String> = origin.received().iter().map(|r| r.line.clone()).collect();
    assert_eq!(lines, ["POST /hook HTTP/1.1", "POST /moved HTTP/1.1", "POST /hook HTTP/1.1"]);
    assert_eq!(origin.received()[1].header("x-api-key"), Some("k3y-s3cret"));

    assert!(elsewhere.received().is_empty(), "the other origin got {:?}", elsewhere.received());
}

#[test]
fn a_symbolic_link_at_the_file_outputs_path_is_refused() {
    let dir = temp_path("file-link");
    std::fs::create_dir_all(&dir).unwrap();
    let (target, link) = (format!("{dir}/victim"), format!("{dir}/alerts.jsonl"));
    std::fs::write(&target, "untouched\n").unwrap();
    std::os::unix::fs::symlink(&target, &link).unwrap();
    // The sensor stops before it loads anything, naming the link.
    let out = sensor_command()
        .args(["run", "-o", &format!("outputs=[{{file: {{path: {link}}}}}]")])
        .output()
        .expect("sensor runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the sensor started with a linked alert file: {stderr}");
    assert!(stderr.contains(&format!("{link} is a symbolic link: refused")), "{stderr}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "untouched\n");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_swapped_in_before_a_reopen_is_refused_and_counted() {
    let dir = temp_path("file-swap");
    std::fs::create_dir_all(&dir).unwrap();
    let (path, rotated, victim) = (format!("{dir}/alerts.jsonl"), format!("{dir}/alerts.1"), format!("{dir}/victim"));
    std::fs::write(&victim, "untouched\n").unwrap();
    let stage = outputs(&format!("outputs:\n  - file: {{path: {path}}}\n")).await;
    // Rotation, with someone's link put where the new file should be.
    std::fs::rename(&path, &rotated).unwrap();
    std::os::unix::fs::symlink(&victim, &path).unwrap();
    // SAFETY: raise has no memory preconditions; the file output handles SIGHUP (a reopen).
    assert_eq!(unsafe { libc::raise(libc::SIGHUP) }, 0);
    settled(&stage, Duration::from_secs(10), |c| c.errors == 1).await;
    stage.publish(alert("after the refused reopen"));
    let counters = settled(&stage, Duration::from_secs(10), |c| c.sent == 1).await;
    assert_eq!((counters.failed, counters.dropped), (0, 0), "{counters}");
    stage.shutdown(Duration::from_secs(1)).await;
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched\n");
    assert!(
        std::fs::read_to_string(&rotated).unwrap().contains("after the refused reopen"),
        "written on to the old file"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
