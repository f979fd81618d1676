//! No blind spots under load: while two processes flood every core with opens and closes,
//! an untrusted program reads `/etc/shadow` five times, and each read is alerted, with the
//! built-in rules and with Falco's. The in-kernel prefilter keeps the flood back (counted
//! per syscall in the metrics). Needs root.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use sensor_tests::{actor_path, bench::prom::Scrape, free_loopback_port, http_get, start_sensor};

/// The sensor's metrics now.
fn scrape(addr: SocketAddr) -> Scrape {
    let (status, body) = http_get(addr, "/metrics").expect("metrics endpoint");
    assert_eq!(status, 200, "/metrics: {body}");
    Scrape::parse(&body)
}

const FALCO_RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/falco/falco_rules.yaml");
const READS: usize = 5;

/// One storm at a time: two would flood each other's sensor.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn storm(rules: &[&str], rule: &str) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let metrics = free_loopback_port().unwrap();
    let address = format!("metrics.address={metrics}");
    let mut args = vec!["run", "--json", "-o", &address];
    args.extend_from_slice(rules);
    let mut sensor = start_sensor(&args);
    let (tx, rx) = mpsc::channel::<serde_json::Value>();
    let stdout = BufReader::new(sensor.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = tx.send(serde_json::from_str(&line).expect("JSON alert"));
        }
    });

    // One flood per core, long enough to cover every read.
    let floods: Vec<_> = (0..2)
        .map(|cpu| {
            Command::new(actor_path())
                .args(["loop", "3000000", &cpu.to_string()])
                .stdout(Stdio::piped())
                .spawn()
                .expect("flood starts")
        })
        .collect();
    for _ in 0..READS {
        std::thread::sleep(Duration::from_millis(300));
        let out = Command::new("cat").arg("/etc/shadow").stdout(Stdio::null()).status().expect("cat runs");
        assert!(out.success());
    }
    let mut floods_done = Vec::new();
    for f in floods {
        let out = f.wait_with_output().expect("flood ends");
        assert!(out.status.success(), "flood failed");
        floods_done.push(sensor_tests::ActorReport::parse(&String::from_utf8_lossy(&out.stdout)));
    }

    let is_read = |a: &serde_json::Value| {
        a["rule"] == rule && a["output_fields"]["fd.name"] == "/etc/shadow" && a["output_fields"]["proc.name"] == "cat"
    };
    let mut alerts = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while alerts.iter().filter(|a| is_read(a)).count() < READS {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(a) => alerts.push(a),
            Err(_) => break,
        }
    }
    // The metrics are a snapshot the sensor refreshes: wait until it covers the floods.
    let flooded: i64 = floods_done.iter().map(|r| r.int("n")).sum();
    let kept_back = |s: &Scrape| s.sum_with("sensor_kernel_prefiltered_total", "syscall=\"openat\"").unwrap_or(0.0);
    let mut now = scrape(metrics);
    let deadline = Instant::now() + Duration::from_secs(30);
    while kept_back(&now) < flooded as f64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        now = scrape(metrics);
    }
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    unsafe { libc::kill(sensor.id() as i32, libc::SIGTERM) };
    assert!(sensor.wait().unwrap().success());
    alerts.extend(rx.try_iter());

    let lost = now.sum("sensor_kernel_lost_events_all_total").unwrap_or(0.0);
    let kept_back = kept_back(&now);
    eprintln!("{flooded} open+close pairs flooded; openat kept back in the kernel: {kept_back}; lost: {lost}");
    let reads = alerts.iter().filter(|a| is_read(a)).count();
    assert_eq!(reads, READS, "every read of /etc/shadow is alerted under the flood; alerts: {alerts:#?}");
    // The flood's opens are what the prefilter kept back (others' too, on a shared machine).
    assert!(kept_back >= flooded as f64, "the prefilter kept back {kept_back} of {flooded} flood opens");
}

#[test]
fn reads_of_secrets_are_alerted_during_an_open_flood_with_the_built_in_rules() {
    storm(&[], "Read credential file by untrusted program");
}

#[test]
fn reads_of_secrets_are_alerted_during_an_open_flood_with_falco_rules() {
    storm(&["--rules", FALCO_RULES], "Read sensitive file untrusted");
}
