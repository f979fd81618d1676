//! The Kubernetes audit log end to end: `sensor console` takes a week and a day of audit
//! events from kube-apiserver's webhook (an `EventList` with a bearer token), keeps those
//! `k8s_audit.keep` selects in its audit log (a SQLite file; a real PostgreSQL database),
//! drops the day past the 7 days kept, and `sensor audit search` and the console's Audit page
//! (Debian's headless Chromium) find exactly the events each filter names.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use sensor_tests::{free_loopback_port, http_request, scrape, temp_path, webdriver::Browser};
use serde_json::{Value, json};

const HOUR: u64 = 3_600 * 1_000_000_000;
const DAY: u64 = 24 * HOUR;
const TOKEN: &str = "audit-webhook-token-5f0c";
const PASSWORD: &str = "an auditor's passphrase";
/// The fixture's events: one every 3 hours over 8 days.
const EVENTS: usize = 64;

const USERS: [(&str, &[&str]); 4] = [
    ("alice", &["system:authenticated", "dev"]),
    ("bob@example.com", &["system:authenticated", "ops"]),
    ("system:serviceaccount:kube-system:deployment-controller", &["system:serviceaccounts"]),
    ("system:anonymous", &["system:unauthenticated"]),
];
/// Verb, resource, subresource, code; `watch` is not kept (`k8s_audit.keep.verbs`).
const ACTIONS: [(&str, &str, Option<&str>, i64); 7] = [
    ("get", "secrets", None, 200),
    ("delete", "deployments", None, 200),
    ("create", "pods", Some("exec"), 101),
    ("list", "configmaps", None, 403),
    ("patch", "deployments", Some("scale"), 200),
    ("create", "clusterrolebindings", None, 201),
    ("watch", "pods", None, 200),
];

fn now_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
}

/// RFC 3339 with microseconds, as kube-apiserver writes times.
fn rfc3339(ns: u64) -> String {
    let secs = (ns / 1_000_000_000) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ns % 1_000_000_000 / 1000
    )
}

/// One fixture event and what a search compares it by.
#[derive(Clone, Debug)]
struct Fixture {
    time_ns: u64,
    json: Value,
}

impl Fixture {
    fn text(&self, pointer: &str) -> &str {
        self.json.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
    }

    fn audit_id(&self) -> String {
        self.text("/auditID").to_owned()
    }
}

/// Event `i`, at `start + 3h * i`: users, actions, namespaces, names, addresses and agents
/// in turn.
fn fixture_event(i: usize, start: u64) -> Fixture {
    let time_ns = start + i as u64 * 3 * HOUR;
    let (user, groups) = USERS[i % USERS.len()];
    let (verb, resource, subresource, code) = ACTIONS[i % ACTIONS.len()];
    let namespace = ["shop", "kube-system", "web"][i % 3];
    let name = format!("obj-{}", i % 5);
    let agent = if i.is_multiple_of(2) {
        "kubectl/v1.31.0 (linux/amd64) kubernetes/9edcffc"
    } else {
        "argocd-application-controller/v2.13"
    };
    let mut object = json!({"resource": resource, "namespace": namespace, "name": name, "apiVersion": "v1"});
    if let Some(sub) = subresource {
        object["subresource"] = sub.into();
    }
    let time = rfc3339(time_ns);
    let json = json!({
        "level": if i.is_multiple_of(4) { "RequestResponse" } else { "Metadata" },
        "auditID": format!("5e1f{i:04}-0c1d-4e5f-8a9b-{:012}", i * 7919),
        "stage": "ResponseComplete",
        "requestURI": format!("/api/v1/namespaces/{namespace}/{resource}/{name}"), "verb": verb,
        "user": {"username": user, "groups": groups},
        "sourceIPs": [format!("10.0.{}.7", i % 3), "192.168.1.1"], "userAgent": agent,
        "objectRef": object,
        "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": time, "stageTimestamp": time,
        "annotations": {"authorization.k8s.io/decision": if code == 403 { "forbid" } else { "allow" },
                        "change": format!("ticket OPS-{}", 100 + i)}
    });
    Fixture { time_ns, json }
}

/// A running `sensor console` with the audit webhook and log.
struct Console {
    child: Child,
    dir: PathBuf,
    config: PathBuf,
    ui: std::net::SocketAddr,
    metrics: std::net::SocketAddr,
}

impl Drop for Console {
    fn drop(&mut self) {
        // SAFETY: kill has no memory preconditions; the pid is our child's.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts `sensor console` keeping audit events in the store `store_yaml` names, and posts
/// the fixture to its webhook: the events kept after the 7 days' retention, newest first.
fn console_with_a_week_of_audit(store_yaml: &str) -> (Console, Vec<Fixture>) {
    let dir = PathBuf::from(temp_path("audit-log"));
    std::fs::create_dir_all(&dir).unwrap();
    let (ui, hook, metrics) =
        (free_loopback_port().unwrap(), free_loopback_port().unwrap(), free_loopback_port().unwrap());
    std::fs::write(dir.join("token"), TOKEN).unwrap();
    let hash = sensor::console::hash_password(PASSWORD).unwrap();
    let config = dir.join("console.yaml");
    std::fs::write(
        &config,
        format!(
            "metrics: {{address: \"{metrics}\"}}\n\
             ui: {{address: \"{ui}\", store: {{path: {alerts}}}, users: [{{name: auditor, password_hash: \"{hash}\"}}]}}\n\
             outputs:\n  - stdout: {{format: json}}\n\
             k8s_audit:\n  webhook: {{address: \"{hook}\", token: {{file: {token}}}}}\n  \
             store: {store_yaml}\n  keep: {{verbs: [get, list, create, update, patch, delete]}}\n",
            alerts = dir.join("alerts.db").display(),
            token = dir.join("token").display(),
        ),
    )
    .unwrap();
    let child = Command::new(sensor_tests::sensor_binary())
        .args(["console", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut console = Console { child, dir, config, ui, metrics };

    // A week and a day, ending two and a half hours ago: the first day is past the 7 kept.
    // Whole seconds: the times the CLI is given compare exactly.
    let now = now_ns() / 1_000_000_000 * 1_000_000_000;
    let start = now - 8 * DAY + HOUR / 2;
    let fixture: Vec<Fixture> = (0..EVENTS).map(|i| fixture_event(i, start)).collect();
    let batch = json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {},
                       "items": fixture.iter().map(|f| f.json.clone()).collect::<Vec<_>>()});
    let body = batch.to_string();
    let auth = format!("Bearer {TOKEN}");
    let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        match http_request(hook, "POST", "/k8s-audit", &headers, &body) {
            Ok(answer) => break answer.status,
            Err(_) if Instant::now() < deadline => {
                if let Some(status) = console.child.try_wait().unwrap() {
                    panic!("sensor console exited before its webhook answered: {status}");
                }
                std::thread::sleep(Duration::from_millis(200))
            }
            Err(e) => panic!("the webhook does not answer: {e}"),
        }
    };
    assert_eq!(status, 200);
    // Without the token: refused, nothing kept.
    let refused = http_request(hook, "POST", "/k8s-audit", &[("Content-Type", "application/json")], &body).unwrap();
    assert_eq!(refused.status, 401);

    let kept: Vec<Fixture> =
        fixture.iter().rev().filter(|f| f.text("/verb") != "watch" && f.time_ns >= now - 7 * DAY).cloned().collect();
    // Stored, then the oldest day removed by retention (every second here).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = search(&console, &["--limit", "1000"]);
        if found.len() == kept.len() {
            break;
        }
        assert!(Instant::now() < deadline, "the audit log holds {} events, {} expected", found.len(), kept.len());
        std::thread::sleep(Duration::from_millis(300));
    }
    // The console refreshes its metrics every 2 s.
    let watched = fixture.iter().filter(|f| f.text("/verb") == "watch").count();
    let deadline = Instant::now() + Duration::from_secs(10);
    let stored = loop {
        let stored = scrape(console.metrics).sum("sensor_k8s_audit_stored_events_total");
        if stored == Some((EVENTS - watched) as f64) || Instant::now() > deadline {
            break stored;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(stored, Some((EVENTS - watched) as f64), "every event kept was counted once");
    (console, kept)
}

/// `sensor audit search --config CONFIG --json ARGS`: the audit IDs found, in order.
fn search(console: &Console, args: &[&str]) -> Vec<String> {
    let out = sensor_audit(console, &[&["--json"], args].concat());
    assert!(out.status.success(), "sensor audit search {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let event: Value = serde_json::from_str(l).expect("a JSON event");
            assert!(event["id"].is_i64(), "{event}");
            event["auditID"].as_str().unwrap().to_owned()
        })
        .collect()
}

fn sensor_audit(console: &Console, args: &[&str]) -> std::process::Output {
    Command::new(sensor_tests::sensor_binary())
        .args(["audit", "search", "--config"])
        .arg(&console.config)
        .args(args)
        .output()
        .unwrap()
}

/// Each filter of `sensor audit search` against what the fixture says it selects.
fn the_cli_finds_exactly(console: &Console, kept: &[Fixture]) {
    let ids = |select: &dyn Fn(&Fixture) -> bool| -> Vec<String> {
        kept.iter().filter(|f| select(f)).map(Fixture::audit_id).collect()
    };
    let day3 = kept.last().unwrap().time_ns + 2 * DAY;
    let (from, to) = (rfc3339(day3), rfc3339(day3 + DAY + 6 * HOUR));
    let one = kept[10].audit_id();
    type Case<'a> = (Vec<&'a str>, Box<dyn Fn(&Fixture) -> bool + 'a>);
    let cases: Vec<Case> = vec![
        (vec![], Box::new(|_| true)),
        (vec!["--from", &from, "--to", &to], Box::new(|f| f.time_ns >= day3 && f.time_ns < day3 + DAY + 6 * HOUR)),
        (vec!["--user", "alice"], Box::new(|f| f.text("/user/username") == "alice")),
        (vec!["--group", "ops"], Box::new(|f| f.json["user"]["groups"].as_array().unwrap().contains(&json!("ops")))),
        (vec!["--verb", "delete", "--verb", "patch"], Box::new(|f| ["delete", "patch"].contains(&f.text("/verb")))),
        (
            vec!["--resource", "deployments", "--namespace", "shop"],
            Box::new(|f| f.text("/objectRef/resource") == "deployments" && f.text("/objectRef/namespace") == "shop"),
        ),
        (vec!["--subresource", "exec"], Box::new(|f| f.text("/objectRef/subresource") == "exec")),
        (vec!["--name", "obj-3"], Box::new(|f| f.text("/objectRef/name") == "obj-3")),
        (vec!["--code", "403"], Box::new(|f| f.json["responseStatus"]["code"] == 403)),
        (vec!["--source-ip", "10.0.2.7"], Box::new(|f| f.json["sourceIPs"][0] == "10.0.2.7")),
        (vec!["--user-agent", "argocd"], Box::new(|f| f.text("/userAgent").starts_with("argocd"))),
        (vec!["--audit-id", &one], Box::new(|f| f.audit_id() == one)),
        (vec!["--text", "ops-142"], Box::new(|f| f.text("/annotations/change") == "ticket OPS-142")),
        (
            vec!["--text", "/namespaces/web/secrets"],
            Box::new(|f| f.text("/requestURI").starts_with("/api/v1/namespaces/web/secrets/")),
        ),
    ];
    for (args, select) in &cases {
        let want = ids(select.as_ref());
        assert_eq!(search(console, &[&["--limit", "1000"], args.as_slice()].concat()), want, "{args:?}");
        // Oldest first: the same events, the other way round.
        let oldest = search(console, &[&["--limit", "1000", "--oldest-first"], args.as_slice()].concat());
        assert_eq!(oldest, want.iter().rev().cloned().collect::<Vec<_>>(), "{args:?} --oldest-first");
    }
    // Not vacuous: the text filter found its one event, the code filter some and not all.
    assert_eq!(ids(&|f| f.text("/annotations/change") == "ticket OPS-142").len(), 1);
    let forbidden = ids(&|f| f.json["responseStatus"]["code"] == 403).len();
    assert!(forbidden > 0 && forbidden < kept.len());

    // Pages of 7, each naming where the next starts, together give every event once.
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut args = vec!["--json", "--limit", "7"];
        if let Some(a) = &after {
            args.extend(["--after", a.as_str()]);
        }
        let out = sensor_audit(console, &args);
        assert!(out.status.success());
        let stdout = String::from_utf8_lossy(&out.stdout);
        all.extend(
            stdout.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["auditID"].as_str().unwrap().to_owned()),
        );
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        match stderr.split("--after ").nth(1) {
            Some(next) => after = Some(next.trim().to_owned()),
            None => break,
        }
    }
    assert_eq!(all, ids(&|_| true));

    // The table: a row per event, its columns.
    let out = sensor_audit(console, &["--user", "alice", "--verb", "get", "--limit", "1"]);
    let table = String::from_utf8_lossy(&out.stdout);
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    for column in ["ID", "TIME", "USER", "VERB", "RESOURCE", "OBJECT", "CODE", "SOURCE IP", "AUDIT ID"] {
        assert!(header.contains(column), "{table}");
    }
    let newest =
        &kept[kept.iter().position(|f| f.text("/user/username") == "alice" && f.text("/verb") == "get").unwrap()];
    let row = lines.next().unwrap();
    for cell in ["alice", "get", "secrets", newest.text("/objectRef/name"), "200", &newest.audit_id()] {
        assert!(row.contains(cell), "`{cell}` in {row}");
    }

    // A filter that makes no sense is refused, by name.
    let out = sensor_audit(console, &["--code", "forbidden"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--code: `forbidden` is not a status code"));
}

#[test]
fn a_week_of_audit_events_in_sqlite_is_searched_in_the_cli_and_the_browser() {
    let alerts_dir = temp_path("audit-log-file");
    std::fs::create_dir_all(&alerts_dir).unwrap();
    let store = format!("{{path: {alerts_dir}/audit.db, retention_interval: 1s}}");
    let (console, kept) = console_with_a_week_of_audit(&store);
    the_cli_finds_exactly(&console, &kept);
    the_audit_page_finds_exactly(&console, &kept);
    drop(console);
    let _ = std::fs::remove_dir_all(&alerts_dir);
}

#[test]
fn a_week_of_audit_events_in_postgresql_is_searched_in_the_cli() {
    let pg = sensor::store::pg_server::database("audit_log");
    let store = format!("{{postgres: {{url: \"{}\"}}, retention_interval: 1s}}", pg.url);
    let (console, kept) = console_with_a_week_of_audit(&store);
    the_cli_finds_exactly(&console, &kept);
}

fn shot(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/browser").join(format!("audit-{name}.png"))
}

/// An auditor logs in, searches with the Audit page's form, pages, and opens an event.
fn the_audit_page_finds_exactly(console: &Console, kept: &[Fixture]) {
    let browser = Browser::start().expect("headless Chromium");
    let base = format!("http://{}", console.ui);
    let type_in = |selector: &str, text: &str| browser.type_into(&browser.find(selector).unwrap(), text).unwrap();
    let click = |selector: &str| browser.click(&browser.find(selector).unwrap()).unwrap();
    let until_url = |want: &dyn Fn(&str) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut url = browser.url().unwrap();
        while !want(&url) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            url = browser.url().unwrap();
        }
        url
    };
    let shown = || -> Vec<String> {
        browser
            .find_all("tr.audit")
            .unwrap()
            .iter()
            .map(|row| browser.attribute(row, "data-audit-id").unwrap().unwrap_or_default())
            .collect()
    };

    browser.goto(&format!("{base}/audit")).unwrap();
    assert!(browser.url().unwrap().ends_with("/login"), "the audit log needs a login first");
    type_in("#user", "auditor");
    type_in("#password", PASSWORD);
    click("#login");
    until_url(&|u| u == format!("{base}/"));
    browser.goto(&format!("{base}/audit")).unwrap();
    assert_eq!(shown().len(), kept.len().min(100));
    browser.screenshot(&shot("1-all")).unwrap();

    // "Who deleted deployments in shop?" with the form.
    type_in("#f-verb", "delete");
    type_in("#f-resource", "deployments");
    type_in("#f-namespace", "shop");
    click("#search");
    until_url(&|u| u.contains("verb=delete"));
    let want: Vec<String> = kept
        .iter()
        .filter(|f| {
            f.text("/verb") == "delete"
                && f.text("/objectRef/resource") == "deployments"
                && f.text("/objectRef/namespace") == "shop"
        })
        .map(Fixture::audit_id)
        .collect();
    assert!(!want.is_empty());
    assert_eq!(shown(), want);
    browser.screenshot(&shot("2-deletes")).unwrap();

    // A group and a text with a dash, then pages of 10 that lead on to each other.
    browser.goto(&format!("{base}/audit?group=ops&limit=10")).unwrap();
    let ops: Vec<String> = kept
        .iter()
        .filter(|f| f.json["user"]["groups"].as_array().unwrap().contains(&json!("ops")))
        .map(Fixture::audit_id)
        .collect();
    let mut paged = shown();
    while browser.find("#next").is_ok() {
        click("#next");
        until_url(&|u| u.contains("after="));
        paged.extend(shown());
        if paged.len() > ops.len() {
            break;
        }
    }
    assert_eq!(paged, ops, "pages neither skip nor repeat");
    browser.goto(&format!("{base}/audit")).unwrap();
    type_in("#f-text", "OPS-142");
    click("#search");
    until_url(&|u| u.contains("text="));
    let one: Vec<String> =
        kept.iter().filter(|f| f.text("/annotations/change") == "ticket OPS-142").map(Fixture::audit_id).collect();
    assert_eq!(shown(), one);

    // The event's detail: the request, the object, the user, where from, the answer, the times.
    click("tr.audit a");
    until_url(&|u| u.contains("/audit/"));
    let event = kept.iter().find(|f| f.text("/annotations/change") == "ticket OPS-142").unwrap();
    let cell = |id: &str| browser.text(&browser.find(&format!("#d-{id}")).unwrap()).unwrap();
    assert_eq!(cell("audit-id"), event.audit_id());
    assert_eq!(cell("request-uri"), event.text("/requestURI"));
    assert_eq!(cell("verb"), event.text("/verb"));
    assert_eq!(cell("user"), event.text("/user/username"));
    assert_eq!(
        cell("groups"),
        event.json["user"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g.as_str().unwrap())
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert_eq!(cell("resource"), event.text("/objectRef/resource"));
    assert_eq!(cell("namespace"), event.text("/objectRef/namespace"));
    assert_eq!(cell("name"), event.text("/objectRef/name"));
    assert_eq!(cell("api-version"), "v1");
    assert_eq!(cell("source-ips"), format!("{}, 192.168.1.1", event.json["sourceIPs"][0].as_str().unwrap()));
    assert_eq!(cell("user-agent"), event.text("/userAgent"));
    assert_eq!(cell("status"), event.json["responseStatus"]["code"].to_string());
    assert_eq!(
        cell("timestamps"),
        format!("{} / {}", event.text("/requestReceivedTimestamp"), event.text("/stageTimestamp"))
    );
    assert!(browser.text(&browser.find("#raw").unwrap()).unwrap().contains("ticket OPS-142"));
    browser.screenshot(&shot("3-detail")).unwrap();

    // At a phone's width the page fits.
    browser.set_window_size(390, 844).unwrap();
    browser.goto(&format!("{base}/audit")).unwrap();
    let (laid_out, window) = browser.widths().unwrap();
    assert!(laid_out <= window, "the Audit page at a phone's width: {laid_out} px in {window} px");
    browser.screenshot(&shot("phone")).unwrap();
}
