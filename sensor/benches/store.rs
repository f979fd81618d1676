//! The alert store at a million alerts: how fast it writes, how fast the console's searches
//! and dashboard counts answer, how big it gets.
//!
//! `cargo bench -p sensor --bench store [-- ALERTS] [sqlite|postgres]` (default 1,000,000
//! alerts; both engines), for each engine:
//! SQLite in a file, and a real PostgreSQL started for the run (Debian's, with `fsync` off:
//! the database's own disk settings are its operator's). Alerts are shaped as the built-in
//! rules' (Falco's suggested output fields: container, image, namespace, pod), spread over 7
//! days, 20 rules, 8 nodes and 200 pods, written in the store output's batches of 5,000.
//! PostgreSQL's tables are analyzed after the writes, as autovacuum does within a minute.
//! Prints one markdown table per engine.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use sensor::{
    rules::{Alert, Priority, Value},
    store::{GroupBy, Query, Reader, StoreConfig},
};

const DAY_NS: u64 = 86_400 * 1_000_000_000;

fn alert(n: u64, total: u64, start_ns: u64, span_ns: u64) -> Arc<Alert> {
    let rule = n % 20;
    let pod = n % 200;
    let priority = [Priority::Critical, Priority::Error, Priority::Warning, Priority::Notice, Priority::Informational]
        [(n % 5) as usize];
    let field = |k: &str, v: String| (k.into(), Some(Value::Str(v.into())));
    let fields = vec![
        field("proc.name", format!("proc-{}", n % 50)),
        field("proc.cmdline", format!("proc-{} --flag value-{n} /var/data/file-{}", n % 50, n % 1000)),
        field("proc.exepath", format!("/usr/bin/proc-{}", n % 50)),
        field("fd.name", format!("/etc/secret-{}", n % 30)),
        field("user.name", "root".into()),
        field("container.id", format!("{:064x}", pod * 7919)),
        field("container.name", format!("app-{pod}")),
        field("container.image.repository", format!("registry.local/team-{}/app", pod % 10)),
        field("container.image.tag", format!("1.{}", pod % 7)),
        field("k8s.ns.name", format!("ns-{}", pod % 12)),
        field("k8s.pod.name", format!("app-{pod}-7d9f8c-x{}", pod % 3)),
    ];
    let message = format!(
        "Sensitive file opened for reading by non-trusted program (file=/etc/secret-{} proc=proc-{} cmdline=proc-{} --flag \
         value-{n} container=app-{pod} image=registry.local/team-{}/app pod=app-{pod}) rule-{rule}",
        n % 30,
        n % 50,
        n % 50,
        pod % 10
    );
    Arc::new(Alert {
        time_ns: start_ns + (n as u128 * span_ns as u128 / total as u128) as u64,
        rule: format!("Rule number {rule}"),
        priority,
        source: "syscall".into(),
        hostname: format!("node-{}", n % 8),
        message,
        tags: vec!["filesystem".into(), format!("T10{}", rule % 4)].into(),
        fields,
    })
}

/// p50 and p95 of `runs` runs of `f`.
fn percentiles(runs: usize, mut f: impl FnMut(usize)) -> (Duration, Duration) {
    let mut times: Vec<Duration> = (0..runs)
        .map(|i| {
            let t = Instant::now();
            f(i);
            t.elapsed()
        })
        .collect();
    times.sort();
    (times[runs / 2], times[(runs * 95 / 100).min(runs - 1)])
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let total: u64 = args.iter().find_map(|a| a.parse().ok()).unwrap_or(1_000_000);
    let only = |engine: &str| {
        let named = ["sqlite", "postgres"].iter().any(|e| args.iter().any(|a| a == e));
        !named || args.iter().any(|a| a == engine)
    };
    let dir = std::env::temp_dir().join(format!("sensor-store-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let sqlite = StoreConfig { max_size: Some(1 << 40), ..StoreConfig::at(dir.join("alerts.db")) };
    if only("sqlite") {
        bench("SQLite", &sqlite, total);
    }
    // Gone before the next engine's run: the kernel would otherwise be writing the file's
    // gigabyte and more back to disk during it (PostgreSQL wrote 45,059 alerts/s after it,
    // 58,068 and 59,444 in a process of its own).
    let _ = std::fs::remove_dir_all(&dir);
    if only("postgres") {
        let postgres = StoreConfig::postgres(sensor::store::pg_server::database("bench"));
        bench("PostgreSQL", &postgres, total);
    }
}

fn bench(engine: &str, config: &StoreConfig, total: u64) {
    let mut store = sensor::store::open(config).unwrap().store;
    let now = sensor::store::now_ns();
    let (start, span) = (now - 7 * DAY_NS + DAY_NS / 2, 7 * DAY_NS - DAY_NS / 2);

    let mut write = Duration::ZERO;
    let mut n = 0;
    while n < total {
        let batch: Vec<Arc<Alert>> = (n..(n + 5000).min(total)).map(|i| alert(i, total, start, span)).collect();
        let t = Instant::now();
        store.insert(&batch).unwrap();
        store.enforce_retention(now).unwrap();
        write += t.elapsed();
        n += batch.len() as u64;
    }
    let usage = store.usage().unwrap();
    let file = config.sqlite_path().and_then(|p| std::fs::metadata(p).ok()).map(|m| m.len());
    let rate = total as f64 / write.as_secs_f64();

    if let sensor::store::Engine::Postgres(pg) = &config.engine {
        // What autovacuum does within a minute of the writes (it analyzes a partition once a
        // tenth of its rows changed, looking every minute): without statistics, the planner
        // reads a rule and an image's alerts through the time index (2.4 s for 20 pages at
        // 500,000 alerts, against 22 ms).
        let mut client = postgres::Client::connect(&pg.url, postgres::NoTls).unwrap();
        client.batch_execute("ANALYZE").unwrap();
    }
    let reader = Reader::open(config).unwrap();
    let day = Query { from_ns: Some(now - DAY_NS), ..Query::default() };
    let searches: Vec<(&str, Query)> = vec![
        ("newest 50", Query { limit: 50, ..Query::default() }),
        ("priority ≥ error, 24 h", Query { min_priority: Some(Priority::Error), limit: 50, ..day.clone() }),
        ("one pod, 7 d", Query { pods: vec!["app-17-7d9f8c-x2".into()], limit: 50, ..Query::default() }),
        ("text `value-123456`", Query { text: Some("value-123456".into()), limit: 50, ..Query::default() }),
        ("text `secret-7 proc-3`, 24 h", Query { text: Some("secret-7 proc-3".into()), limit: 50, ..day.clone() }),
        (
            "rule + image + page 20",
            Query {
                rules: vec!["Rule number 3".into()],
                images: vec!["registry.local/team-3/app".into()],
                limit: 50,
                ..Query::default()
            },
        ),
    ];
    println!("\n| {engine} alert store, {total} alerts over 7 days | |\n|---|---|");
    println!("| written | {rate:.0} alerts/s (batches of 5,000, retention after each) |");
    println!(
        "| size | {:.0} MiB in use{}; {:.0} bytes per alert |",
        usage.bytes as f64 / 1048576.0,
        file.map(|f| format!(", {:.0} MiB file", f as f64 / 1048576.0)).unwrap_or_default(),
        usage.bytes as f64 / total as f64
    );
    for (name, query) in &searches {
        let (p50, p95) = percentiles(20, |i| {
            let mut q = query.clone();
            if name.contains("page 20") {
                // 20 pages deep, following the cursors.
                for _ in 0..20 {
                    let page = reader.read(|s| s.search(&q)).unwrap();
                    q.after = page.next;
                }
            } else {
                q.limit += i % 2;
                reader.read(|s| s.search(&q)).unwrap();
            }
        });
        println!("| search: {name} | p50 {}, p95 {} |", ms(p50), ms(p95));
    }
    let groups = GroupBy::DASHBOARD;
    for (name, query) in [("24 h", day.clone()), ("7 d", Query::default())] {
        let (p50, p95) = percentiles(5, |_| {
            reader
                .read(|s| {
                    for by in groups {
                        s.counts(&query, by)?;
                    }
                    Ok(())
                })
                .unwrap();
        });
        println!("| dashboard (7 counts), {name} | p50 {}, p95 {} |", ms(p50), ms(p95));
    }
}
