//! Both stores, SQLite and a real PostgreSQL, against what an operator searching them would
//! check.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use super::*;
use crate::rules::Value;

const DAY: u64 = 86_400 * 1_000_000_000;
const HOUR_NS: u64 = 3_600 * 1_000_000_000;
/// 2026-12-06T00:00:00Z.
const T0: u64 = 1_796_515_200 * 1_000_000_000;

use crate::test_dir::TestDir as Dir;

/// An alert store file in `dir`.
fn alerts_db(dir: &Dir) -> StoreConfig {
    StoreConfig::at(dir.0.join("alerts.db"))
}

fn alert(time_ns: u64, rule: &str, priority: Priority, message: &str, fields: &[(&str, &str)]) -> Arc<Alert> {
    Arc::new(Alert {
        time_ns,
        rule: rule.into(),
        priority,
        source: "syscall".into(),
        hostname: "node-a".into(),
        message: message.into(),
        tags: vec!["container".into(), "T1611".into()].into(),
        fields: fields.iter().map(|(k, v)| ((*k).into(), Some(Value::Str(v.to_string().into())))).collect(),
    })
}

fn open_sqlite(config: &StoreConfig) -> SqliteStore {
    let opened = SqliteStore::open(config.sqlite_path().unwrap(), config).unwrap();
    assert!(opened.set_aside.is_none());
    opened.store
}

/// One store of each engine for test `name`: a SQLite file, a new PostgreSQL database.
struct Stores {
    dir: Dir,
    postgres: PostgresConfig,
}

impl Stores {
    fn new(name: &str) -> Stores {
        Stores { dir: Dir::new(&format!("store-{name}")), postgres: pg_server::database(name) }
    }

    /// Each engine's store, its limits set by `limits` (applied to a default store).
    fn each(&self, limits: impl Fn(StoreConfig) -> StoreConfig) -> Vec<(&'static str, Box<dyn AlertStore>)> {
        let sqlite = limits(alerts_db(&self.dir));
        let postgres = limits(StoreConfig::postgres(self.postgres.clone()));
        vec![("sqlite", open(&sqlite).unwrap().store), ("postgres", open(&postgres).unwrap().store)]
    }
}

fn ids(page: &Page) -> Vec<i64> {
    page.alerts.iter().map(|a| a.id).collect()
}

fn rules(page: &Page) -> Vec<&str> {
    page.alerts.iter().map(|a| a.rule.as_str()).collect()
}

/// The rules of the alerts a search for `text` finds, newest first.
fn found(store: &dyn AlertStore, text: &str) -> Vec<String> {
    let page = store.search(&Query { text: Some(text.into()), ..Query::default() }).unwrap();
    rules(&page).into_iter().map(str::to_owned).collect()
}

#[test]
fn every_filter_selects_what_it_names() {
    for (engine, mut store) in Stores::new("filters").each(|c| c) {
        every_filter_selects_what_it_names_in(engine, store.as_mut());
    }
}

fn every_filter_selects_what_it_names_in(engine: &str, store: &mut dyn AlertStore) {
    let web = [
        ("container.id", "3f2a9c81d0e4b5a6c7d8e9f00112233445566778899aabbccddeeff001122334"),
        ("container.name", "web"),
        ("container.image.repository", "registry:5000/shop/web"),
        ("container.image.tag", "1.2"),
        ("k8s.ns.name", "shop"),
        ("k8s.pod.name", "web-7d9f-x2x"),
    ];
    store
        .insert(&[
            alert(T0 + 1, "Read sensitive file untrusted", Priority::Warning, "read /etc/shadow by cat-x", &web),
            alert(T0 + 2, "Terminal shell in container", Priority::Notice, "shell \"bash\" in web", &web),
            alert(
                T0 + 3,
                "Drop and execute new binary",
                Priority::Critical,
                "ran /tmp/x on host",
                &[("container.id", "host")],
            ),
            Arc::new(Alert {
                source: "internal".into(),
                hostname: "node-b".into(),
                tags: vec![].into(),
                ..(*alert(T0 + DAY, "sensor internal: event drops", Priority::Error, "3 lost", &[])).clone()
            }),
        ])
        .unwrap();
    let search = |q: Query| store.search(&q).unwrap();
    let all = search(Query::default());
    assert_eq!(ids(&all), [4, 3, 2, 1], "{engine}: newest first by default");
    assert_eq!(all.next, None);
    assert_eq!(all.alerts[3].container.image.as_deref(), Some("registry:5000/shop/web:1.2"));
    assert_eq!(all.alerts[3].json["output_fields"]["k8s.pod.name"], "web-7d9f-x2x");
    assert_eq!(all.alerts[1].container, Placement::default(), "a host alert has no container");

    let q = |f: fn(&mut Query)| {
        let mut q = Query::default();
        f(&mut q);
        rules(&search(q)).into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    assert_eq!(
        q(|q| q.min_priority = Some(Priority::Error)),
        ["sensor internal: event drops", "Drop and execute new binary"]
    );
    assert_eq!(q(|q| q.rules = vec!["Terminal shell in container".into()]), ["Terminal shell in container"]);
    assert_eq!(q(|q| q.sources = vec!["internal".into()]), ["sensor internal: event drops"]);
    assert_eq!(q(|q| q.hostnames = vec!["node-b".into()]), ["sensor internal: event drops"]);
    assert_eq!(q(|q| q.tags = vec!["T1611".into()]).len(), 3);
    assert_eq!(q(|q| q.tags = vec!["T161".into()]).len(), 0, "a tag matches whole");
    assert_eq!(q(|q| q.containers = vec!["web".into()]).len(), 2);
    assert_eq!(q(|q| q.containers = vec!["3f2a9c81d0e4".into()]).len(), 2, "Docker's short id");
    assert_eq!(q(|q| q.containers = vec!["3f2a".into()]).len(), 0, "too short to be an id prefix");
    assert_eq!(q(|q| q.images = vec!["registry:5000/shop/web".into()]).len(), 2, "a repository, any tag");
    assert_eq!(q(|q| q.images = vec!["registry:5000/shop/web:1.2".into()]).len(), 2);
    assert_eq!(q(|q| q.images = vec!["registry:5000/shop/web:1.3".into()]).len(), 0);
    assert_eq!(q(|q| q.namespaces = vec!["shop".into()]).len(), 2);
    assert_eq!(q(|q| q.pods = vec!["web-7d9f-x2x".into(), "other".into()]).len(), 2);
    assert_eq!(q(|q| (q.from_ns, q.to_ns) = (Some(T0 + 2), Some(T0 + 3))), ["Terminal shell in container"]);
    assert_eq!(q(|q| (q.pods, q.min_priority) = (vec!["web-7d9f-x2x".into()], Some(Priority::Warning))).len(), 1);

    // Counts, by each grouping, under the same filters.
    let counts = |by: GroupBy, query: Query| store.counts(&query, by).unwrap();
    let pairs = |v: &[(&str, u64)]| v.iter().map(|(k, n)| (k.to_string(), *n)).collect::<Vec<_>>();
    assert_eq!(
        counts(GroupBy::Priority, Query::default()),
        pairs(&[("Critical", 1), ("Error", 1), ("Notice", 1), ("Warning", 1)])
    );
    assert_eq!(counts(GroupBy::Container, Query::default()), pairs(&[("web", 2)]), "host alerts have no container");
    assert_eq!(counts(GroupBy::Tag, Query::default()), pairs(&[("T1611", 3), ("container", 3)]));
    assert_eq!(counts(GroupBy::Hostname, Query::default()), pairs(&[("node-a", 3), ("node-b", 1)]));
    assert_eq!(
        counts(
            GroupBy::Rule,
            Query { min_priority: Some(Priority::Warning), pods: vec!["web-7d9f-x2x".into()], ..Query::default() }
        ),
        pairs(&[("Read sensitive file untrusted", 1)])
    );
    assert_eq!(counts(GroupBy::Image, Query::default()), pairs(&[("registry:5000/shop/web:1.2", 2)]));
    for by in GroupBy::ALL {
        assert_eq!(GroupBy::parse(by.name()), Some(by));
    }
}

#[test]
fn text_search_takes_any_character_as_written() {
    for (engine, mut store) in Stores::new("text").each(|c| c) {
        text_search_takes_any_character_as_written_in(engine, store.as_mut());
    }
}

fn text_search_takes_any_character_as_written_in(engine: &str, store: &mut dyn AlertStore) {
    store
        .insert(&[
            alert(
                T0 + 1,
                "A",
                Priority::Warning,
                "read /etc/shadow by cat-x",
                &[("proc.cmdline", "cat-x /etc/shadow"), ("proc.pname", "only-in-a-field")],
            ),
            alert(T0 + 2, "B", Priority::Warning, "shell \"bash\" in web", &[]),
            alert(T0 + 3, "C", Priority::Warning, "cat x read /etc/shadow-", &[("fd.name", "/etc/shadow-")]),
            alert(T0 + 4, "D", Priority::Warning, "100% done; DROP TABLE alerts_d1; --", &[]),
        ])
        .unwrap();
    let find = |text: &str| found(&*store, text);
    assert_eq!(find("cat-x"), ["A"], "{engine}: the dash is part of the term, not FTS syntax");
    assert_eq!(find("CAT-X"), ["A"], "ASCII case is ignored");
    assert_eq!(find("/etc/shadow"), ["C", "A"]);
    assert_eq!(find("/etc/shadow-"), ["C"]);
    assert_eq!(find("\"bash\""), ["B"]);
    assert_eq!(find("bash\""), ["B"]);
    assert_eq!(find("sha"), ["C", "A"], "a word's beginning finds it");
    assert_eq!(find("shadow cat-x"), ["A"], "every term must appear");
    assert_eq!(find("--"), ["D"]);
    assert_eq!(find("alerts_d1; --"), ["D"]);
    assert_eq!(find("100%"), ["D"]);
    assert_eq!(find("*"), Vec::<String>::new());
    assert_eq!(find("NEAR(a b) OR"), Vec::<String>::new(), "FTS operators are plain words");
    // Field values are searched too, not only the output text.
    assert_eq!(find("only-in-a-field"), ["A"]);
    assert_eq!(find("\\"), Vec::<String>::new(), "a backslash is searched as one");
}

#[test]
fn pages_neither_skip_nor_repeat_while_alerts_arrive() {
    for (engine, mut store) in Stores::new("pages").each(|c| c) {
        pages_neither_skip_nor_repeat_in(engine, store.as_mut());
    }
}

fn pages_neither_skip_nor_repeat_in(engine: &str, store: &mut dyn AlertStore) {
    // 3 days, several alerts sharing a timestamp (the id breaks the tie).
    let batch: Vec<Arc<Alert>> =
        (0..1050u64).map(|i| alert(T0 + (i / 3) * (DAY / 200), "R", Priority::Notice, &format!("n{i}"), &[])).collect();
    store.insert(&batch).unwrap();
    for order in [Order::NewestFirst, Order::OldestFirst] {
        let mut seen = Vec::new();
        let mut query = Query { order, limit: 100, ..Query::default() };
        loop {
            let page = store.search(&query).unwrap();
            seen.extend(ids(&page));
            // New alerts, newer than everything, arrive between pages.
            store.insert(&[alert(T0 + 10 * DAY, "late", Priority::Notice, "late", &[])]).unwrap();
            match page.next {
                Some(next) => query.after = Some(next),
                None => break,
            }
        }
        let unique: BTreeSet<i64> = seen.iter().copied().collect();
        assert_eq!(unique.len(), seen.len(), "{engine} {order:?}: an alert repeated");
        let originals: Vec<i64> = seen.iter().copied().filter(|id| *id <= 1050).collect();
        let mut expected: Vec<i64> = (1..=1050).collect();
        if order == Order::NewestFirst {
            expected.reverse();
        }
        assert_eq!(originals, expected, "{engine} {order:?}: every alert once, in order");
    }
}

#[test]
fn age_retention_removes_exactly_what_is_older() {
    let stores = Stores::new("age");
    for (engine, mut store) in stores.each(|c| StoreConfig { max_age: Duration::from_secs(2 * 86_400), ..c }) {
        age_retention_removes_exactly_in(engine, store.as_mut());
    }
}

fn age_retention_removes_exactly_in(engine: &str, store: &mut dyn AlertStore) {
    let times: Vec<u64> = (0..40).map(|i| T0 + i * (DAY / 8)).collect(); // 5 days
    store.insert(&times.iter().map(|t| alert(*t, "R", Priority::Notice, "x", &[])).collect::<Vec<_>>()).unwrap();
    let now = T0 + 4 * DAY + DAY / 3;
    let cutoff = now - 2 * DAY;
    let removed = store.enforce_retention(now).unwrap();
    let kept: Vec<u64> = store
        .search(&Query { order: Order::OldestFirst, limit: 1000, ..Query::default() })
        .unwrap()
        .alerts
        .iter()
        .map(|a| a.time_ns)
        .collect();
    let expected: Vec<u64> = times.iter().copied().filter(|t| *t >= cutoff).collect();
    assert_eq!(kept, expected, "{engine}");
    assert_eq!(removed, Removed { expired: (times.len() - expected.len()) as u64, over_size: 0 }, "{engine}");
    assert_eq!(store.usage().unwrap().alerts, expected.len() as u64);
    assert_eq!(store.enforce_retention(now).unwrap(), Removed::default(), "a second pass finds nothing");
}

#[test]
fn size_retention_keeps_the_newest_within_the_limit() {
    let dir = Dir::new("store-size");
    let max_size = 2 << 20;
    let config = StoreConfig { max_size: Some(max_size), ..alerts_db(&dir) };
    let mut store = open_sqlite(&config);
    let text = "x".repeat(300);
    let mut id = 0u64;
    // Four days of alerts, well over 2 MiB in all.
    for _ in 0..12 {
        let batch: Vec<Arc<Alert>> = (0..500)
            .map(|_| {
                id += 1;
                alert(T0 + id * (DAY / 1500), "R", Priority::Notice, &format!("{id} {text}"), &[])
            })
            .collect();
        store.insert(&batch).unwrap();
    }
    let before = store.usage().unwrap();
    assert!(before.bytes > 2 * max_size, "{before:?}");
    let removed = store.enforce_retention(T0 + 5 * DAY).unwrap();
    let after = store.usage().unwrap();
    assert!(after.bytes <= max_size, "{after:?} after removing {removed:?}");
    assert!(after.bytes >= max_size * 3 / 4, "removed far more than the excess: {after:?}");
    assert_eq!(removed.expired, 0);
    assert_eq!(removed.over_size + after.alerts, id);
    // What is kept is the newest alerts, with no gap.
    let kept = store.search(&Query { order: Order::OldestFirst, limit: 10_000, ..Query::default() }).unwrap();
    let kept = ids(&kept);
    let first = id as i64 - after.alerts as i64 + 1;
    assert_eq!(kept, (first..=id as i64).collect::<Vec<_>>());
}

#[test]
fn a_reopened_store_keeps_its_alerts_and_numbers() {
    let dir = Dir::new("store-reopen");
    let config = alerts_db(&dir);
    let mut store = open_sqlite(&config);
    store.insert(&[alert(T0, "R", Priority::Notice, "one", &[])]).unwrap();
    drop(store);
    let mut store = open_sqlite(&config);
    store.insert(&[alert(T0 + 1, "R", Priority::Notice, "two", &[])]).unwrap();
    assert_eq!(ids(&store.search(&Query::default()).unwrap()), [2, 1]);
    assert_eq!(store.get(1).unwrap().map(|a| a.output.contains("one")), Some(true));
    assert_eq!(store.get(3).unwrap(), None);
    let reader = SqliteStore::open_read_only(config.sqlite_path().unwrap()).unwrap();
    assert_eq!(ids(&reader.search(&Query::default()).unwrap()), [2, 1]);
    store.insert(&[alert(T0 + DAY, "R", Priority::Notice, "three", &[])]).unwrap();
    assert_eq!(ids(&reader.search(&Query::default()).unwrap()), [3, 2, 1], "a reader sees a new day's alerts");
}

#[test]
fn a_corrupt_file_is_set_aside_and_a_new_store_begun() {
    let dir = Dir::new("store-corrupt");
    let config = alerts_db(&dir);
    let path = config.sqlite_path().unwrap();
    // Not a database at all.
    std::fs::write(path, b"this is not a database, it is a text file left here\n".repeat(100)).unwrap();
    let opened = SqliteStore::open(path, &config).unwrap();
    let (aside, why) = opened.set_aside.expect("set aside");
    assert!(aside.to_string_lossy().contains("alerts.db.corrupt-"), "{}", aside.display());
    assert!(why.contains("not a database"), "{why}");
    assert!(std::fs::read(&aside).unwrap().starts_with(b"this is not"), "the old file is kept, untouched");
    let mut store = opened.store;
    store.insert(&[alert(T0, "R", Priority::Notice, "after", &[])]).unwrap();
    drop(store);

    // A database whose pages were overwritten.
    let mut store = open_sqlite(&config);
    let batch: Vec<Arc<Alert>> =
        (0..2000).map(|i| alert(T0 + i, "R", Priority::Notice, &"y".repeat(200), &[])).collect();
    store.insert(&batch).unwrap();
    drop(store);
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.pragma_update(None, "wal_checkpoint", "TRUNCATE").unwrap();
    drop(conn);
    let mut bytes = std::fs::read(path).unwrap();
    let len = bytes.len();
    for b in &mut bytes[len / 3..len / 3 + 20_000] {
        *b = 0x5a;
    }
    std::fs::write(path, &bytes).unwrap();
    let opened = SqliteStore::open(path, &config).unwrap();
    let (_, why) = opened.set_aside.expect("a damaged store is set aside");
    assert!(!why.is_empty());
    assert_eq!(opened.store.usage().unwrap().alerts, 0);
}

#[test]
fn dashboard_counts_from_the_hourly_table_agree_with_the_alerts() {
    let stores = Stores::new("rollup");
    for (engine, mut store) in stores.each(|c| StoreConfig { max_age: Duration::from_secs(3 * 86_400), ..c }) {
        dashboard_counts_agree_in(engine, store.as_mut());
    }
}

fn dashboard_counts_agree_in(engine: &str, store: &mut dyn AlertStore) {
    // Four days of alerts, of three priorities, half of them in one of seven pods.
    let pods: Vec<String> = (0..7).map(|p| format!("pod-{p}")).collect();
    let batch: Vec<Arc<Alert>> = (0..3000u64)
        .map(|i| {
            let priority = [Priority::Critical, Priority::Warning, Priority::Notice][(i % 3) as usize];
            let pod = pods[(i % 7) as usize].as_str();
            let fields: &[(&str, &str)] =
                if i % 2 == 0 { &[("k8s.pod.name", pod), ("container.name", "c")] } else { &[] };
            alert(T0 + i * (4 * DAY / 3000), &format!("R{}", i % 5), priority, "x", fields)
        })
        .collect();
    store.insert(&batch).unwrap();
    let check = |store: &dyn AlertStore, whole: bool| {
        let ranges = [
            (None, None),
            (Some(T0 + DAY / 3 + 12_345), None),
            (Some(T0 + DAY + 7), Some(T0 + 3 * DAY - 99)),
            (Some(T0 + 5), Some(T0 + 1_800_000_000_000)),
        ];
        for (from_ns, to_ns) in ranges {
            for min_priority in [None, Some(Priority::Warning)] {
                let query = Query { from_ns, to_ns, min_priority, ..Query::default() };
                // A filter every alert passes takes the same question through the alerts.
                let scanned = Query { sources: vec!["syscall".into()], ..query.clone() };
                for by in GroupBy::ALL {
                    let counts = store.counts(&query, by).unwrap();
                    assert_eq!(
                        counts,
                        store.counts(&scanned, by).unwrap(),
                        "{engine} {by:?} {from_ns:?}..{to_ns:?} {min_priority:?}"
                    );
                    assert!(!whole || by != GroupBy::Rule || !counts.is_empty(), "{from_ns:?}..{to_ns:?}: nothing");
                }
                // The timeline, from the hourly counts where whole buckets of whole hours
                // allow, agrees with the alerts' own, and adds up to the count.
                let total: u64 = store.counts(&query, GroupBy::Priority).unwrap().iter().map(|(_, n)| n).sum();
                for bucket_ns in [HOUR_NS, 6 * HOUR_NS, 900_000_000_000] {
                    let mut fast = store.histogram(&query, bucket_ns).unwrap();
                    let mut slow = store.histogram(&scanned, bucket_ns).unwrap();
                    fast.sort();
                    slow.sort();
                    assert_eq!(fast, slow, "{engine} timeline of {bucket_ns} {from_ns:?}..{to_ns:?} {min_priority:?}");
                    assert_eq!(fast.iter().map(|(_, _, n)| n).sum::<u64>(), total);
                    assert!(fast.iter().all(|(start, ..)| start % bucket_ns == 0));
                }
            }
        }
    };
    check(store, true);
    // Retention drops nothing whole here but cuts into the first day: the counts follow.
    let removed = store.enforce_retention(T0 + 3 * DAY + DAY / 2).unwrap();
    assert!(removed.expired > 0 && removed.expired < 750, "{engine}: {removed:?}");
    check(store, false);
}

#[test]
fn postgres_stores_a_batch_given_twice_once_and_counts_it_once() {
    let config = StoreConfig::postgres(pg_server::database("twice"));
    let mut first = open(&config).unwrap().store;
    // A second writer (another console replica) on the same database.
    let mut second = open(&config).unwrap().store;
    let batch: Vec<Arc<Alert>> = (0..500).map(|i| alert(T0 + i * 1000, "R", Priority::Notice, "x", &[])).collect();
    first.insert(&batch).unwrap();
    // A sender retrying after its first attempt did commit, through another replica; with
    // one new alert.
    let mut retry = batch.clone();
    retry.push(alert(T0 + DAY, "R", Priority::Notice, "new", &[]));
    second.insert(&retry).unwrap();
    assert_eq!(first.usage().unwrap().alerts, 501);
    assert_eq!(
        first.counts(&Query::default(), GroupBy::Rule).unwrap(),
        [("R".to_owned(), 501)],
        "the counts did not count the retry"
    );
    // Its new alert is in the word index, as a batch of new alerts' are.
    assert_eq!(found(first.as_ref(), "new"), ["R"]);
    // Two writers storing the same batch at the same moment: one waits for the other to
    // commit, then passes over what it stored.
    let same: Vec<Arc<Alert>> =
        (0..3_000).map(|i| alert(T0 + 3 * DAY + i * 1000, "S", Priority::Notice, "z", &[])).collect();
    std::thread::scope(|scope| {
        for store in [&mut first, &mut second] {
            let same = &same;
            scope.spawn(move || store.insert(same).unwrap());
        }
    });
    assert_eq!(first.usage().unwrap().alerts, 3_501);
    let at_once = Query { from_ns: Some(T0 + 3 * DAY), ..Query::default() };
    assert_eq!(first.counts(&at_once, GroupBy::Rule).unwrap(), [("S".to_owned(), 3_000)]);
    // A batch written in several statements, an alert in it twice (one statement apart).
    let mut long: Vec<Arc<Alert>> =
        (0..2_500).map(|i| alert(T0 + 2 * DAY + i * 1000, "L", Priority::Notice, "y", &[])).collect();
    long.push(long[3].clone());
    long.insert(1_500, long[1_400].clone());
    first.insert(&long).unwrap();
    assert_eq!(first.usage().unwrap().alerts, 6_001);
    let counts = first.counts(&Query::default(), GroupBy::Rule).unwrap();
    assert_eq!(counts, [("S".to_owned(), 3_000), ("L".to_owned(), 2_500), ("R".to_owned(), 501)]);
    // The same question through the whole hours of the counts table.
    let hours = Query { from_ns: Some(T0), to_ns: Some(T0 + 2 * DAY), ..Query::default() };
    assert_eq!(first.counts(&hours, GroupBy::Rule).unwrap(), [("R".to_owned(), 501)]);
}

#[test]
fn postgres_counts_wait_as_deltas_until_moved_and_count_right_throughout() {
    let pg = pg_server::database("deltas");
    let config = StoreConfig { max_age: Duration::from_secs(30 * 86_400), ..StoreConfig::postgres(pg.clone()) };
    let mut client = postgres::Client::connect(&pg.url, postgres::NoTls).unwrap();
    let waiting = |client: &mut postgres::Client| -> i64 {
        client.query_one("SELECT count(*) FROM alert_count_deltas", &[]).unwrap().get(0)
    };
    let batch = |day: u64, rule: &str, n: u64| -> Vec<Arc<Alert>> {
        (0..n).map(|i| alert(T0 + day * DAY + i * 1000, rule, Priority::Notice, rule, &[])).collect()
    };
    let rules = |store: &dyn AlertStore| store.counts(&Query::default(), GroupBy::Rule).unwrap();
    let counted = |n: u64, rule: &str| (rule.to_owned(), n);

    // Moved after each commit: a store closed has moved what it wrote.
    let mut store = open(&config).unwrap().store;
    store.insert(&batch(0, "A", 300)).unwrap();
    drop(store);
    assert_eq!(waiting(&mut client), 0, "the deltas were moved");
    let moved: i64 =
        client.query_one("SELECT sum(alerts)::bigint FROM alert_counts WHERE grp = 'rule'", &[]).unwrap().get(0);
    assert_eq!(moved, 300);

    // Another writer moving them (the lock held): the deltas wait, and count meanwhile.
    let mut other = postgres::Client::connect(&pg.url, postgres::NoTls).unwrap();
    let mut moving = other.transaction().unwrap();
    moving.query_one("SELECT pg_advisory_xact_lock($1)", &[&postgresql::COUNTS_LOCK]).unwrap();
    let mut store = open(&config).unwrap().store;
    store.insert(&batch(1, "B", 200)).unwrap();
    store.insert(&batch(2, "C", 100)).unwrap();
    assert_eq!(rules(store.as_ref()), [counted(300, "A"), counted(200, "B"), counted(100, "C")]);
    drop(store);
    assert!(waiting(&mut client) > 0, "nothing moved while another writer held the lock");
    moving.commit().unwrap();
    let mut store = open(&config).unwrap().store;
    assert_eq!(rules(store.as_ref()), [counted(300, "A"), counted(200, "B"), counted(100, "C")]);

    // Retention removing a day whose deltas wait removes them with it.
    let removed = store.enforce_retention(T0 + 32 * DAY).unwrap();
    assert_eq!(removed.expired, 500, "days 0 and 1 went whole");
    assert_eq!(rules(store.as_ref()), [counted(100, "C")]);
    let day_2_hour = ((T0 / DAY + 2) * 24) as i64;
    let day_1: i64 =
        client.query_one("SELECT count(*) FROM alert_count_deltas WHERE hour < $1", &[&day_2_hour]).unwrap().get(0);
    assert_eq!(day_1, 0, "day 1's deltas went with its alerts");

    // A writer of before removing a day knew no deltas: those of its day are dropped at the
    // next move, which then moves the rest.
    let again: Vec<Arc<Alert>> =
        (0..50).map(|i| alert(T0 + 2 * DAY + i * 1000, "C", Priority::Notice, "again", &[])).collect();
    store.insert(&again).unwrap();
    let mut moving = other.transaction().unwrap();
    moving.query_one("SELECT pg_advisory_xact_lock($1)", &[&postgresql::COUNTS_LOCK]).unwrap();
    store.insert(&batch(3, "D", 40)).unwrap();
    drop(store);
    moving.commit().unwrap();
    let day_3 = T0 / DAY + 3;
    client
        .batch_execute(&format!(
            "DROP TABLE alerts_d{day_3}; DROP TABLE alert_counts_d{day_3}; DROP TABLE alert_blocks_d{day_3};"
        ))
        .unwrap();
    let mut store = open(&config).unwrap().store;
    store.insert(&batch(4, "E", 10)).unwrap();
    drop(store);
    assert_eq!(waiting(&mut client), 0, "the deltas of a day gone were dropped, the others moved");
    let store = open(&config).unwrap().store;
    assert_eq!(rules(store.as_ref()), [counted(150, "C"), counted(10, "E")]);
}

#[test]
fn postgres_size_retention_drops_the_oldest_days_whole() {
    let mut config = StoreConfig::postgres(pg_server::database("size"));
    let mut store = open(&config).unwrap().store;
    let text = "x".repeat(300);
    let batch: Vec<Arc<Alert>> = (0..4000u64)
        .map(|i| alert(T0 + i * (4 * DAY / 4000), "R", Priority::Notice, &format!("{i} {text}"), &[]))
        .collect();
    store.insert(&batch).unwrap();
    let before = store.usage().unwrap();
    // Room for about two of the four days.
    config.max_size = Some(before.bytes / 2);
    let mut store = open(&config).unwrap().store;
    let removed = store.enforce_retention(T0 + 5 * DAY).unwrap();
    let after = store.usage().unwrap();
    assert!(after.bytes <= before.bytes / 2, "{after:?}");
    assert_eq!(removed.expired, 0);
    assert_eq!(removed.over_size % 1000, 0, "whole days: {removed:?}");
    assert_eq!(removed.over_size + after.alerts, 4000);
    assert_eq!(after.oldest_ns, Some(T0 + (removed.over_size / 1000) * DAY), "the oldest days went");
}

#[test]
fn postgres_refuses_a_database_of_another_schema() {
    let pg = pg_server::database("schema");
    let mut client = postgres::Client::connect(&pg.url, postgres::NoTls).unwrap();
    client
        .batch_execute("CREATE TABLE sensor_store_meta (key text PRIMARY KEY, value bigint); INSERT INTO sensor_store_meta VALUES ('schema', 99)")
        .unwrap();
    let e = open(&StoreConfig::postgres(pg)).err().expect("refused");
    assert!(format!("{e:#}").contains("schema Some(99)"), "{e:#}");
}

#[test]
fn postgres_moves_schema_1_and_2_databases_to_the_block_word_index() {
    // Each older schema as it was written: schema 1 held the words as ` a b c ` text with a
    // trigram index (gone here), schema 2 as a `tsvector` with a GIN index per alert.
    let older = [
        (
            1,
            "DROP TABLE alert_blocks;
             ALTER TABLE alerts RENAME COLUMN json_md5 TO digest;
             ALTER TABLE alerts ALTER COLUMN words TYPE text
                 USING ' ' || array_to_string(tsvector_to_array(words), ' ') || ' ';
             ALTER SEQUENCE alert_ids INCREMENT BY 1;
             UPDATE sensor_store_meta SET value = 1 WHERE key = 'schema';",
        ),
        (
            2,
            "DROP TABLE alert_blocks;
             ALTER TABLE alerts RENAME COLUMN json_md5 TO digest;
             CREATE INDEX alerts_words ON alerts USING gin (words);
             ALTER SEQUENCE alert_ids INCREMENT BY 1;
             UPDATE sensor_store_meta SET value = 2 WHERE key = 'schema';",
        ),
    ];
    for (version, downgrade) in older {
        let pg = pg_server::database(&format!("schema{version}"));
        let config = StoreConfig::postgres(pg.clone());
        let mut store = open(&config).unwrap().store;
        store
            .insert(&[
                alert(T0, "A", Priority::Warning, "read /etc/shadow by cat-x", &[]),
                alert(T0 + DAY, "B", Priority::Warning, "shell in web", &[]),
            ])
            .unwrap();
        drop(store);
        let mut client = postgres::Client::connect(&pg.url, postgres::NoTls).unwrap();
        client.batch_execute(downgrade).unwrap();
        let store = open(&config).unwrap().store;
        let find = |text: &str| found(&*store, text);
        assert_eq!(find("cat-x"), ["A"], "from schema {version}");
        assert_eq!(find("shel"), ["B"], "from schema {version}");
        assert_eq!(find("nowhere"), Vec::<String>::new(), "from schema {version}");
        let now: i64 =
            client.query_one("SELECT value FROM sensor_store_meta WHERE key = 'schema'", &[]).unwrap().get(0);
        assert_eq!(now, 3, "from schema {version}");
        let per_alert: bool = client.query_one("SELECT to_regclass('alerts_words') IS NOT NULL", &[]).unwrap().get(0);
        assert!(!per_alert, "the per-alert word index is gone (from schema {version})");
        let blocks: i64 = client.query_one("SELECT count(*) FROM alert_blocks", &[]).unwrap().get(0);
        assert_eq!(blocks, 2, "each stored alert is a block (from schema {version})");
        // A writer of schema 2 still running (as it wrote: the digest made by the server)
        // fails, rather than store alerts the word index does not hold.
        let old_writer = client.execute(
            "INSERT INTO alerts (time_ns, digest, priority, rule, source, hostname, tags, words, json) \
             SELECT $1, md5('{}'), 3, 'C', 'syscall', 'node-a', '', 'c'::tsvector, '{}'",
            &[&((T0 + 5) as i64)],
        );
        let e = old_writer.expect_err("a schema 2 insert is refused");
        assert!(e.to_string().contains("digest") || format!("{e:?}").contains("digest"), "{e:?}");
        assert_eq!(store.usage().unwrap().alerts, 2);
        // Ids are taken in ranges from now on, after those stored.
        let increment: i64 = client
            .query_one("SELECT seqincrement FROM pg_sequence WHERE seqrelid = 'alert_ids'::regclass", &[])
            .unwrap()
            .get(0);
        assert_eq!(increment, super::postgresql::ID_RANGE, "from schema {version}");
        let mut store = store;
        store.insert(&[alert(T0 + 6, "D", Priority::Warning, "written after the move", &[])]).unwrap();
        assert_eq!(found(&*store, "after the move"), ["D"], "from schema {version}");
        let ids: Vec<i64> =
            client.query("SELECT id FROM alerts ORDER BY rule", &[]).unwrap().iter().map(|r| r.get(0)).collect();
        assert!(ids[2] > ids[0].max(ids[1]), "{ids:?}");
    }
}

#[test]
fn postgres_finds_text_in_an_alert_with_more_words_than_its_index_holds() {
    let config = StoreConfig::postgres(pg_server::database("overflow"));
    let mut store = open(&config).unwrap().store;
    // 40,000 distinct words of 8 letters: more than the index entry's 256 KiB; the last
    // ones sort after the cut. One word longer than an indexed word.
    let many: Vec<String> = (0..40_000u32).map(|i| format!("w{i:07}")).collect();
    let long = format!("start{}", "y".repeat(300));
    store
        .insert(&[
            alert(T0, "big", Priority::Warning, &many.join(" "), &[]),
            alert(T0 + 1, "long", Priority::Warning, &format!("{long} end"), &[]),
            alert(T0 + 2, "small", Priority::Warning, "w0000001 alone", &[]),
        ])
        .unwrap();
    let find = |text: &str| found(&*store, text);
    assert_eq!(find("w0039999"), ["big"], "a word past the index entry's end");
    assert_eq!(find("w0000001"), ["small", "big"]);
    assert_eq!(find(&long), ["long"], "a word longer than an indexed word");
    assert_eq!(find(&format!("{long}y")), Vec::<String>::new());
    assert_eq!(find("nowhere"), Vec::<String>::new());
}

#[test]
fn text_search_pages_the_same_whether_many_or_few_alerts_hold_the_text() {
    for (engine, mut store) in Stores::new("text-pages").each(|c| c) {
        // 12,000 alerts over two days: every one holds `common`, every third `third`, and
        // only the oldest 120 `rare` (past the newest alerts a text search tries first).
        let batch: Vec<Arc<Alert>> = (0..12_000u64)
            .map(|i| {
                let mut message = format!("common n{i}");
                if i % 3 == 0 {
                    message.push_str(" third");
                }
                if i < 120 {
                    message.push_str(" rare");
                }
                alert(T0 + i * (2 * DAY / 12_000), "R", Priority::Notice, &message, &[])
            })
            .collect();
        store.insert(&batch).unwrap();
        let messages = |text: &str, order: Order, limit: usize| {
            let mut query = Query { text: Some(text.into()), order, limit, ..Query::default() };
            let mut seen = Vec::new();
            loop {
                let page = store.search(&query).unwrap();
                // The output is `<time>: Notice <message>`.
                seen.extend(page.alerts.iter().map(|a| a.output.split_once("Notice ").unwrap().1.to_owned()));
                match page.next {
                    Some(next) if seen.len() < 400 => query.after = Some(next),
                    _ => break,
                }
            }
            seen
        };
        let expect = |filter: &dyn Fn(u64) -> bool, order: Order| -> Vec<String> {
            let mut ids: Vec<u64> = (0..12_000).filter(|i| filter(*i)).collect();
            if order == Order::NewestFirst {
                ids.reverse();
            }
            ids.truncate(400);
            ids.iter().map(|i| batch[*i as usize].message.clone()).collect()
        };
        for order in [Order::NewestFirst, Order::OldestFirst] {
            assert_eq!(messages("common", order, 50), expect(&|_| true, order), "{engine} {order:?}");
            assert_eq!(messages("third", order, 50), expect(&|i| i % 3 == 0, order), "{engine} {order:?}");
            assert_eq!(messages("rare", order, 50), expect(&|i| i < 120, order), "{engine} {order:?}");
            assert_eq!(messages("rare third", order, 7), expect(&|i| i < 120 && i % 3 == 0, order), "{engine}");
        }
    }
}

#[test]
fn postgres_text_search_reads_the_blocks_holding_its_words() {
    let pg = pg_server::database("blocks");
    let config = StoreConfig::postgres(pg.clone());
    // Two writers (console replicas) at once: their alerts' ids interleave, so their blocks'
    // id ranges overlap. Batches span two days; every 100th alert holds 8,000 distinct words
    // of its own (about 72 KiB: a block of its own, past a block's budget).
    let writers: Vec<std::thread::JoinHandle<()>> = ["a", "b"]
        .into_iter()
        .map(|writer| {
            let config = config.clone();
            std::thread::spawn(move || {
                let mut store = open(&config).unwrap().store;
                for batch in 0..4u64 {
                    let alerts: Vec<Arc<Alert>> = (0..1_500u64)
                        .map(|i| {
                            let n = batch * 1_500 + i;
                            let mut message = format!("{writer}only n{writer}{n} common");
                            if n % 100 == 7 {
                                for w in 0..8_000 {
                                    message.push_str(&format!(" big{writer}{n}x{w}"));
                                }
                            }
                            alert(T0 + n * (2 * DAY / 6_000), &format!("{writer}{n}"), Priority::Notice, &message, &[])
                        })
                        .collect();
                    store.insert(&alerts).unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let store = open(&config).unwrap().store;
    assert_eq!(store.usage().unwrap().alerts, 12_000);
    for writer in ["a", "b"] {
        for n in [0u64, 999, 1_000, 1_500, 3_001, 5_999] {
            assert_eq!(found(&*store, &format!("n{writer}{n}")), [format!("{writer}{n}")], "n{writer}{n}");
        }
        // A word of a word-heavy alert, its first and its last.
        assert_eq!(found(&*store, &format!("big{writer}2307x0")), [format!("{writer}2307")]);
        assert_eq!(found(&*store, &format!("big{writer}4907x7999")), [format!("{writer}4907")]);
        // A word half the alerts hold, a page of 50 at a time, newest first, none twice.
        let mut query = Query { text: Some(format!("{writer}only")), limit: 50, ..Query::default() };
        let mut seen = Vec::new();
        loop {
            let page = store.search(&query).unwrap();
            seen.extend(page.alerts.iter().map(|a| a.rule.clone()));
            match page.next {
                Some(next) => query.after = Some(next),
                None => break,
            }
        }
        let expected: Vec<String> = (0..6_000u64).rev().map(|n| format!("{writer}{n}")).collect();
        assert_eq!(seen, expected, "every alert of writer {writer} once, in order");
        // Within one day only, and counted.
        let day = Query { text: Some(format!("n{writer}5999")), from_ns: Some(T0 + DAY), ..Query::default() };
        assert_eq!(rules(&store.search(&day).unwrap()), [format!("{writer}5999")]);
        let first_day = Query { text: Some(format!("n{writer}5999")), to_ns: Some(T0 + DAY), ..Query::default() };
        assert!(store.search(&first_day).unwrap().alerts.is_empty());
        let counts =
            store.counts(&Query { text: Some(format!("{writer}only")), ..Query::default() }, GroupBy::Priority);
        assert_eq!(counts.unwrap(), [("Notice".to_owned(), 6_000)]);
    }
    assert_eq!(found(&*store, "nowhere"), Vec::<String>::new());
    // Each day's word index keeps its list of new blocks short (read whole by each search).
    let mut client = postgres::Client::connect(&pg.url, postgres::NoTls).unwrap();
    let options: Vec<String> = client
        .query(
            "SELECT coalesce(array_to_string(c.reloptions, ','), '') FROM pg_class c \
             WHERE c.relkind = 'i' AND c.relname LIKE 'alert_blocks_d%'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(options, ["gin_pending_list_limit=1024"; 2], "the two days' indexes");
}

#[test]
fn postgres_text_ranges_merge_what_touches_and_keep_the_widest_gaps() {
    use super::postgresql::merged_ranges;
    assert_eq!(merged_ranges([(1, 5), (3, 9), (10, 12), (20, 30)], 10), [(1, 12), (20, 30)]);
    assert_eq!(merged_ranges([(1, 2), (4, 5), (100, 101), (103, 104)], 2), [(1, 5), (100, 104)]);
    assert_eq!(merged_ranges([(1, 2), (50, 51), (60, 61)], 1), [(1, 61)]);
    assert_eq!(merged_ranges([(7, 7)], 0), [(7, 7)]);
    assert_eq!(merged_ranges([], 4), Vec::<(i64, i64)>::new());
}

#[test]
fn postgres_alert_digest_is_the_servers_md5_of_its_json() {
    // Writers of older versions had the server make it: a retry across an upgrade is still
    // stored once.
    let pg = pg_server::database("digest");
    let mut client = postgres::Client::connect(&pg.url, postgres::NoTls).unwrap();
    for json in ["", "{}", "{\"output\":\"é ✓ \\\"q\\\"\"}", &"x".repeat(5000)] {
        let server: String = client.query_one("SELECT md5($1::text)", &[&json]).unwrap().get(0);
        assert_eq!(super::postgresql::json_digest(json), server, "{json:.40}");
    }
}

#[test]
fn word_vectors_hold_each_word_of_a_text_once_lowercased_cut_and_in_order() {
    use super::rows::{WordVector, indexed_word, words_of};
    let long = "Ä".repeat(100);
    for text in [
        "Read /etc/shadow by CAT-x; cat x CAT",
        "ΑΣ'Β ΟΔΟΣ İstanbul straße ﬀ 東京 ⅷ",
        &format!("{long} short {long}x"),
        "",
        "--- ... ///",
    ] {
        let vector = WordVector::of(text);
        // The words a search looks for (`word_query`), as the index holds them.
        let mut expected: Vec<String> = words_of(text).map(indexed_word).collect();
        expected.sort();
        expected.dedup();
        assert_eq!(vector.words().collect::<Vec<_>>(), expected, "{text:.60}");
    }
    // A word is held by its first 128 bytes, cut at a character boundary.
    assert_eq!(WordVector::of(&long).words().collect::<Vec<_>>(), ["ä".repeat(64)]);
    // Past 256 KiB of words: the first ones in order, and the overflow word.
    let many: Vec<String> = (0..40_000u32).map(|i| format!("w{i:07}")).collect();
    let vector = WordVector::of(&many.join(" "));
    let words: Vec<&str> = vector.words().collect();
    assert_eq!(words[0], "-");
    assert_eq!(words[1], "w0000000");
    assert!(words.len() < 40_000 && words.len() > 20_000, "{}", words.len());
    assert!(words.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn an_alerts_word_vector_is_the_vector_of_its_indexed_text() {
    use super::rows::{WordVector, body};
    let mut alert = (*alert(
        5,
        "Read Shadow",
        Priority::Error,
        "cat read /etc/shadow (CAT) ÄB äb x-1",
        &[("proc.name", "cat"), ("fd.name", "/etc/shadow"), ("k8s.pod.name", "Äb-x")],
    ))
    .clone();
    // Values that are not text, one repeating a word of the output.
    alert.fields.push(("proc.pid".into(), Some(Value::Int(1))));
    alert.fields.push(("fd.sport".into(), Some(Value::UInt(4242))));
    alert.fields.push(("evt.res".into(), None));
    let expected: Vec<String> = WordVector::of(&body(&alert)).words().map(str::to_owned).collect();
    assert!(expected.iter().any(|w| w == "4242") && expected.iter().any(|w| w == "äb"), "{expected:?}");
    assert_eq!(WordVector::of_alert(&alert).words().collect::<Vec<_>>(), expected);
}
