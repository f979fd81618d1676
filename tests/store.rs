//! The alert store under what an operator's node does to it: `kill -9` in the middle of a
//! burst and a full disk (SQLite and PostgreSQL), its PostgreSQL server going away, a file
//! that is not a store, and a real container's alert found again with `sensor alerts search`.
//! Needs root (a real sensor; a tmpfs mount); leases the test bed.

use std::{
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use sensor::store::{AlertStore as _, GroupBy, Order, Query, Reader, SqliteStore, StoreConfig};
use sensor_tests::{
    TestBed, alert_stream, await_alert, free_loopback_port, http_get_with, scrape, sensor_binary, start_sensor,
    temp_path,
};

const SHADOW_RULE: &str = "Read credential file by untrusted program";
/// The test bed's image has no /etc/shadow: the container makes one, then reads it.
const SHADOW_READ: &str = "echo 'root:*:1::::::' > /etc/shadow && cat /etc/shadow >/dev/null";

/// One case at a time: every sensor sees the whole host, so one case's burst would be
/// another's alerts.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A directory for one case, removed afterwards (unmounted first if it is a mount).
struct Scratch {
    dir: String,
    mounted: bool,
}

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = temp_path(tag);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch { dir, mounted: false }
    }

    /// A tmpfs of `size` mounted on the directory.
    fn tmpfs(tag: &str, size: &str) -> Scratch {
        let mut scratch = Scratch::new(tag);
        let ok =
            Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", &scratch.dir]).status();
        assert!(ok.is_ok_and(|s| s.success()), "mounting a tmpfs on {}", scratch.dir);
        scratch.mounted = true;
        scratch
    }

    fn path(&self, name: &str) -> String {
        format!("{}/{name}", self.dir)
    }

    /// A configuration file with `body`, in the directory.
    fn config(&self, body: &str) -> String {
        let path = self.path("sensor.yaml");
        std::fs::write(&path, body).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(&self.dir).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Alerts committed to the store now (0 while it does not exist yet).
fn committed(path: &str) -> u64 {
    SqliteStore::open_read_only(path.as_ref()).and_then(|s| s.usage()).map_or(0, |u| u.alerts)
}

/// Every stored alert's id, oldest first.
fn all_ids(store: &SqliteStore) -> Vec<i64> {
    let mut ids = Vec::new();
    let mut query = Query { order: Order::OldestFirst, limit: 10_000, ..Query::default() };
    loop {
        let page = store.search(&query).unwrap();
        ids.extend(page.alerts.iter().map(|a| a.id));
        match page.next {
            Some(next) => query.after = Some(next),
            None => return ids,
        }
    }
}

fn loadgen_alerts(cpu: usize, iters: u64, spacing_us: u64) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["alert", &cpu.to_string(), "--iters", &iters.to_string(), "--spacing-us", &spacing_us.to_string()])
        .stdout(Stdio::null())
        .spawn()
        .expect("loadgen starts")
}

/// `GET path` on the console at `addr` with `Authorization: Bearer token`: status and body.
fn get_with_token(addr: std::net::SocketAddr, path: &str, token: &str) -> (u16, String) {
    http_get_with(addr, path, &[("Authorization", &format!("Bearer {token}"))]).expect("the console answers")
}

/// `sensor alerts ARGS`, which must succeed; its stdout.
fn sensor_alerts(args: &[&str]) -> String {
    let out = Command::new(sensor_binary()).arg("alerts").args(args).output().expect("sensor alerts runs");
    assert!(out.status.success(), "sensor alerts {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `sensor run` killed with SIGKILL in the middle of a burst of reads of /etc/shadow (over
/// 50,000 alerts, a transaction per 5,000), after it committed more than 12,000 of them:
/// every alert the store had committed before the kill is there after it, the file passes
/// SQLite's integrity check (it is not set aside on the next start), and the ids run on
/// with no hole.
#[test]
fn kill_9_during_a_burst_loses_no_committed_alert() {
    let _turn = turn();
    let scratch = Scratch::new("store-kill");
    let db = scratch.path("alerts.db");
    let config = scratch.config(&format!("alert_queue: {{kib: 262144}}\noutputs:\n  - store: {{path: {db}}}\n"));
    let seen = kill_9_during_a_burst(&config, 12_000, || committed(&db));

    let opened = SqliteStore::open(db.as_ref(), &StoreConfig::at(&db)).expect("the store opens after the kill");
    assert!(opened.set_aside.is_none(), "the store failed its check after a kill: {:?}", opened.set_aside);
    let store = opened.store;
    let usage = store.usage().unwrap();
    // Ids follow the order alerts were stored, which two workers make differ a little from
    // their events' order.
    let mut ids = all_ids(&store);
    ids.sort_unstable();
    eprintln!("{seen} alerts committed when the sensor was killed; {} in the store after", ids.len());
    assert!(ids.len() as u64 >= seen, "{} alerts after the kill, {seen} committed before", ids.len());
    let hole = ids.iter().zip(1..).find(|(id, want)| **id != *want);
    assert_eq!(hole, None, "the ids have a hole or a repeat (of {})", ids.len());
    assert_eq!(usage.alerts, ids.len() as u64, "the day counts agree with the rows");
    let shadow = store.search(&Query { rules: vec![SHADOW_RULE.into()], limit: 1, ..Query::default() }).unwrap();
    assert_eq!(shadow.alerts.len(), 1, "the burst's alerts are the rule's");
}

/// The same kill with the store in a real PostgreSQL: every alert committed before the kill
/// is there after it, once, and the hourly counts agree with the rows (the transaction the
/// kill cut short left neither rows nor counts).
#[test]
fn kill_9_during_a_burst_loses_no_committed_alert_in_postgresql() {
    let _turn = turn();
    let scratch = Scratch::new("store-kill-pg");
    let pg = sensor::store::pg_server::database("kill");
    let store_config = StoreConfig::postgres(pg.clone());
    let config = scratch
        .config(&format!("alert_queue: {{kib: 262144}}\noutputs:\n  - store: {{postgres: {{url: '{}'}}}}\n", pg.url));
    let reader = Reader::open(&store_config).unwrap();
    let count = || reader.read(|s| s.usage()).map_or(0, |u| u.alerts);
    // PostgreSQL writes more slowly (see the README's bench): a smaller part, still several
    // transactions, is committed when the kill comes.
    let seen = kill_9_during_a_burst(&config, 3_000, count);

    let (alerts, by_rule) = reader
        .read(|s| {
            let mut ids = Vec::new();
            let mut query = Query { order: Order::OldestFirst, limit: 10_000, ..Query::default() };
            loop {
                let page = s.search(&query)?;
                ids.extend(page.alerts.iter().map(|a| a.id));
                match page.next {
                    Some(next) => query.after = Some(next),
                    None => break,
                }
            }
            // Whole hours from the counts table, the rest from the rows.
            let counted: u64 = s.counts(&Query::default(), GroupBy::Rule)?.iter().map(|(_, n)| n).sum();
            Ok((ids, counted))
        })
        .unwrap();
    let unique: std::collections::BTreeSet<i64> = alerts.iter().copied().collect();
    eprintln!("{seen} alerts committed when the sensor was killed; {} in the store after", alerts.len());
    assert!(alerts.len() as u64 >= seen, "{} alerts after the kill, {seen} committed before", alerts.len());
    assert_eq!(unique.len(), alerts.len(), "an alert stored twice");
    assert_eq!(by_rule, alerts.len() as u64, "the hourly counts agree with the rows");
}

/// Starts `sensor run --config CONFIG`, bursts reads of /etc/shadow from two CPUs, and kills
/// the sensor with SIGKILL once `committed` passes `threshold` while the burst still runs;
/// what `committed` said last before the kill.
fn kill_9_during_a_burst(config: &str, threshold: u64, committed: impl Fn() -> u64) -> u64 {
    let mut sensor = start_sensor(&["run", "--config", config]);
    // Longer than the test needs (at least 4 s each): the kill comes while they run.
    let mut bursts: Vec<_> = (0..2).map(|cpu| loadgen_alerts(cpu, 200_000, 20)).collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = 0;
    while Instant::now() < deadline {
        seen = committed();
        if seen > threshold {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let burst_running = bursts.iter_mut().any(|b| b.try_wait().unwrap().is_none());
    sensor.kill().unwrap();
    sensor.wait().unwrap();
    for mut b in bursts {
        let _ = b.kill();
        b.wait().unwrap();
    }
    assert!(seen > threshold, "the store committed only {seen} alerts in 120 s");
    assert!(burst_running, "the burst ended before the kill: make it longer");
    seen
}

/// The store's filesystem fills up: the store output counts failed deliveries, detection
/// and the other outputs go on, and once space returns new alerts are stored again.
#[test]
fn a_full_disk_counts_failures_keeps_detecting_and_recovers() {
    let _turn = turn();
    let scratch = Scratch::tmpfs("store-full", "4m");
    let db = scratch.path("alerts.db");
    a_full_disk(&scratch, &format!("{{path: {db}}}"), &StoreConfig::at(&db));
}

/// The same with the store in PostgreSQL whose database is on a volume of its own (a
/// tablespace on the tmpfs; the server's write-ahead log is elsewhere, as where data and
/// log volumes are apart): the full volume fails the store's transactions while the server
/// stays up, and the output stores again once space returns.
#[test]
fn a_full_database_volume_counts_failures_keeps_detecting_and_recovers() {
    let _turn = turn();
    let scratch = Scratch::tmpfs("store-full-pg", "32m");
    let tablespace = scratch.path("tablespace");
    std::fs::create_dir(&tablespace).unwrap();
    /// Drops the database before the tmpfs under it is unmounted.
    struct Database;
    impl Drop for Database {
        fn drop(&mut self) {
            sensor::store::pg_server::drop_database_in("full");
        }
    }
    let pg = sensor::store::pg_server::database_in("full", tablespace.as_ref());
    let _database = Database;
    a_full_disk(&scratch, &format!("{{postgres: {{url: '{}'}}}}", pg.url), &StoreConfig::postgres(pg));
}

/// Runs a sensor whose store output is `store` (YAML), with its data on `scratch`'s tmpfs,
/// then fills the tmpfs, bursts alerts, and frees it again.
fn a_full_disk(scratch: &Scratch, store: &str, store_config: &StoreConfig) {
    let metrics = free_loopback_port().unwrap();
    let config = scratch.config(&format!(
        "outputs:\n  - stdout: {{format: json}}\n  - store: {store}\n    \
         retry: {{attempts: 2, initial_backoff: 100ms, max_backoff: 100ms}}\n"
    ));
    let address = format!("metrics.address={metrics}");
    let mut sensor = start_sensor(&["run", "--config", &config, "-o", &address]);
    let alerts = alert_stream(&mut sensor);
    let reader = Reader::open(store_config).unwrap();
    // How many stored alerts name `marker` (0 while the store does not exist yet).
    let stored = |marker: &str| {
        let query = Query { text: Some(marker.into()), ..Query::default() };
        reader.read(|s| s.search(&query)).map_or(0, |p| p.alerts.len())
    };
    let await_stored = |marker: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while stored(marker) == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        stored(marker)
    };
    // How many of `want` reads of /etc/shadow (naming `marker`) are alerted within 30 s.
    let shadow_alerts = |alerts: &mpsc::Receiver<serde_json::Value>, want: usize, marker: Option<&str>| {
        let deadline = Instant::now() + Duration::from_secs(30);
        let wanted = |a: &serde_json::Value| {
            let cmdline = a["output_fields"]["proc.cmdline"].as_str().unwrap_or_default();
            a["rule"] == SHADOW_RULE && marker.is_none_or(|m| cmdline.contains(m))
        };
        (0..want)
            .take_while(|_| await_alert(alerts, deadline.saturating_duration_since(Instant::now()), wanted).is_some())
            .count()
    };
    let cat = |marker: &str| {
        // `cat` reads /etc/shadow, then fails on the marker path, which names the read.
        let _ = Command::new("cat").args(["/etc/shadow", marker]).stdout(Stdio::null()).stderr(Stdio::null()).status();
    };

    cat("/nonexistent/before-the-fill");
    assert_eq!(shadow_alerts(&alerts, 1, Some("before-the-fill")), 1);
    assert_eq!(await_stored("before-the-fill"), 1, "the first alert was stored");

    // Fill the filesystem, to its last page.
    let filler = scratch.path("filler");
    {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&filler).unwrap();
        for size in [64 << 10, 4 << 10] {
            let block = vec![0u8; size];
            while f.write_all(&block).is_ok() {}
        }
        let _ = f.sync_all();
    }
    let before = scrape(metrics);
    let failed_before = before.sum_with("sensor_output_failed_alerts_total", "store").unwrap_or(0.0);
    // Enough alerts that their pages cannot fit in what the store's files already hold.
    let burst = loadgen_alerts(0, 400, 500).wait().unwrap();
    assert!(burst.success());
    assert!(shadow_alerts(&alerts, 100, None) >= 100, "detection and the stdout output go on while the disk is full");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut failed = failed_before;
    while failed <= failed_before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        failed = scrape(metrics).sum_with("sensor_output_failed_alerts_total", "store").unwrap_or(0.0);
    }
    let retries = scrape(metrics).sum_with("sensor_output_retries_total", "store").unwrap_or(0.0);
    eprintln!("disk full: {failed} alerts failed for the store after {retries} retries");
    assert!(failed > failed_before, "the store's failures are counted");

    // Space returns: new alerts are stored again.
    std::fs::remove_file(&filler).unwrap();
    cat("/nonexistent/after-the-fill");
    assert_eq!(shadow_alerts(&alerts, 1, Some("after-the-fill")), 1);
    assert_eq!(await_stored("after-the-fill"), 1, "an alert after space returned is stored");
    assert_eq!(stored("before-the-fill"), 1, "what was stored before the fill is still there");
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    unsafe { libc::kill(sensor.id() as i32, libc::SIGTERM) };
    assert!(sensor.wait().unwrap().success());
}

/// The PostgreSQL store's server goes away (stopped, its connections broken): the store
/// output counts failed deliveries while detection and stdout go on; once the server is back
/// the output reconnects and stores new alerts, and what was stored before is still there.
#[test]
fn a_database_away_counts_failures_keeps_detecting_and_recovers() {
    let _turn = turn();
    let scratch = Scratch::new("store-pg-away");
    let pg = sensor::store::pg_server::database("away");
    let metrics = free_loopback_port().unwrap();
    let config = scratch.config(&format!(
        "outputs:\n  - stdout: {{format: json}}\n  - store: {{postgres: {{url: '{}'}}}}\n    \
         retry: {{attempts: 2, initial_backoff: 100ms, max_backoff: 100ms}}\n",
        pg.url
    ));
    let address = format!("metrics.address={metrics}");
    let mut sensor = start_sensor(&["run", "--config", &config, "-o", &address]);
    let alerts = alert_stream(&mut sensor);
    let reader = Reader::open(&StoreConfig::postgres(pg)).unwrap();
    let stored = |marker: &str| {
        let query = Query { rules: vec![SHADOW_RULE.into()], text: Some(marker.into()), ..Query::default() };
        reader.read(|s| s.search(&query)).map_or(0, |p| p.alerts.len())
    };
    let cat = |marker: &str| {
        let _ = Command::new("cat")
            .args(["/etc/shadow", &format!("/nonexistent/{marker}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    };
    let alerted = |marker: &str| {
        await_alert(&alerts, Duration::from_secs(20), |a| {
            a["rule"] == SHADOW_RULE && a["output_fields"]["proc.cmdline"].as_str().is_some_and(|c| c.contains(marker))
        })
        .is_some()
    };
    let await_stored = |marker: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while stored(marker) == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        stored(marker)
    };

    cat("before-the-outage");
    assert!(alerted("before-the-outage"));
    assert_eq!(await_stored("before-the-outage"), 1);

    sensor::store::pg_server::stop();
    let failed_before = scrape(metrics).sum_with("sensor_output_failed_alerts_total", "store").unwrap_or(0.0);
    cat("during-the-outage");
    assert!(alerted("during-the-outage"), "detection and stdout go on while the database is away");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut failed = failed_before;
    while failed <= failed_before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        failed = scrape(metrics).sum_with("sensor_output_failed_alerts_total", "store").unwrap_or(0.0);
    }
    assert!(failed > failed_before, "the store's failures are counted");

    sensor::store::pg_server::start_again();
    cat("after-the-outage");
    assert!(alerted("after-the-outage"));
    assert_eq!(await_stored("after-the-outage"), 1, "the output reconnects and stores again");
    assert_eq!(stored("before-the-outage"), 1, "what was stored before is still there");
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    unsafe { libc::kill(sensor.id() as i32, libc::SIGTERM) };
    assert!(sensor.wait().unwrap().success());
}

/// A file that is not a store is set aside with an internal alert; then a real Docker
/// container's read of /etc/shadow is stored with its container, and `sensor alerts search`
/// finds it by container, image, priority and text.
#[test]
fn a_container_alert_is_found_again_and_a_bad_file_is_set_aside() {
    let _turn = turn();
    let bed = TestBed::up();
    let image = bed.get("IMAGE").to_owned();
    let scratch = Scratch::new("store-container");
    let db = scratch.path("alerts.db");
    std::fs::write(&db, "not a database: an operator's stray file\n".repeat(200)).unwrap();
    let token_file = scratch.path("ui-token");
    std::fs::write(&token_file, "e2e-console-token\n").unwrap();
    let ui = free_loopback_port().unwrap();
    let config = scratch.config(&format!(
        "outputs:\n  - stdout: {{format: json}}\n  - store: {{path: {db}, max_age: 1d}}\n\
         ui: {{enabled: true, address: \"{ui}\", api_tokens: [{{file: {token_file}}}]}}\n"
    ));
    let mut sensor = start_sensor(&[
        "run",
        "--config",
        &config,
        "--docker-socket",
        bed.get("DOCKER_SOCK"),
        "--container-wait-ms",
        "500",
    ]);
    let alerts = alert_stream(&mut sensor);

    let first = alerts.recv_timeout(Duration::from_secs(10)).expect("the set-aside alert");
    assert_eq!(first["rule"], "sensor internal: alert store set aside", "{first}");
    assert_eq!(first["priority"], "Error");
    assert!(first["output"].as_str().unwrap().contains("alerts.db.corrupt-"), "{first}");
    let aside: Vec<_> = std::fs::read_dir(&scratch.dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("alerts.db.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "the stray file is kept aside: {aside:?}");

    let name = format!("sensor-store-{}", std::process::id());
    bed.docker(&["run", "--rm", "--network", "none", "--name", &name, &image, "sh", "-c", SHADOW_READ]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let (_, on_stdout) = await_alert(&alerts, Duration::from_secs(30), |a| {
        a["rule"] == SHADOW_RULE && a["output_fields"]["container.name"] == name.as_str()
    })
    .expect("the container's read is alerted");

    // The console's API shows it (the same store), to a bearer token only.
    let api = format!("/api/v1/alerts?container={name}&rule={}", SHADOW_RULE.replace(' ', "%20"));
    let (status, _) = get_with_token(ui, &api, "wrong");
    assert_eq!(status, 401);
    let mut shown = None;
    while shown.is_none() && Instant::now() < deadline {
        let (status, body) = get_with_token(ui, &api, "e2e-console-token");
        assert_eq!(status, 200, "{body}");
        let page: serde_json::Value = serde_json::from_str(&body).unwrap();
        if page["alerts"].as_array().is_some_and(|a| a.len() == 1) {
            shown = Some(on_stdout.elapsed());
        } else {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    eprintln!("the console's API showed the alert {shown:?} after it reached stdout");
    assert!(shown.is_some(), "the console's API shows the container's alert");
    // No user configured: the first start made `admin` a password and kept only its hash.
    let admin = std::fs::metadata(scratch.path("ui-admin.hash")).expect("the admin hash file");
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&admin.permissions()) & 0o777, 0o600);
    let by_container = ["search", "--store", &db, "--container", &name, "--rule", SHADOW_RULE, "--json"];
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut found = sensor_alerts(&by_container);
    while found.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        found = sensor_alerts(&by_container);
    }
    eprintln!("stored {:?} after the alert reached stdout", on_stdout.elapsed());
    let stored: Vec<serde_json::Value> = found.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(stored.len(), 1, "{found}");
    assert_eq!(stored[0]["rule"], SHADOW_RULE);
    assert_eq!(stored[0]["output_fields"]["container.name"], name.as_str());
    let id = stored[0]["id"].as_i64().expect("the store's id");

    // The same alert by the other filters, and the table names it.
    let repository = stored[0]["output_fields"]["container.image.repository"].as_str().expect("the image").to_owned();
    for filters in [
        vec!["--image", repository.as_str()],
        vec!["--priority", "warning", "--text", "/etc/shadow", "--since", "10m"],
        vec!["--text", name.as_str(), "--source", "syscall"],
    ] {
        let mut args = vec!["search", "--store", db.as_str(), "--json"];
        args.extend(filters.iter().copied());
        let ids: Vec<i64> = sensor_alerts(&args)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].as_i64().unwrap())
            .collect();
        assert!(ids.contains(&id), "{filters:?} misses alert {id}: {ids:?}");
    }
    // The container also wrote /etc/shadow (an Error); nothing of it is Critical.
    let errors = sensor_alerts(&["search", "--store", &db, "--container", &name, "--priority", "error", "--json"]);
    assert_eq!(errors.lines().count(), 1, "only the write is at least an Error: {errors}");
    let none = sensor_alerts(&["search", "--store", &db, "--container", &name, "--priority", "critical", "--json"]);
    assert!(none.is_empty(), "nothing is Critical: {none}");
    let table = sensor_alerts(&["search", "--store", &db, "--container", &name]);
    assert!(table.starts_with("ID ") && table.contains(&name) && table.contains("/etc/shadow"), "{table}");

    // SAFETY: kill has no memory preconditions; the pid is our child's.
    unsafe { libc::kill(sensor.id() as i32, libc::SIGTERM) };
    assert!(sensor.wait().unwrap().success());
}
