//! The console's routes in process, against a real store: what a user and an attacker on
//! the network would try.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use axum::{body::Body, http::Request};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

use super::*;
use crate::{
    rules::{Alert, Priority, Value},
    store::StoreConfig,
};

const T0: u64 = 1_796_515_200 * 1_000_000_000;
const PASSWORD: &str = "correct horse battery";
const TOKEN: &str = "api-token-0123456789";

struct Fixture {
    dir: PathBuf,
    app: Router,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn alert(n: u64, rule: &str, priority: Priority, pod: Option<&str>, message: &str) -> Arc<Alert> {
    let mut fields = vec![("proc.name".into(), Some(Value::Str("cat".into())))];
    if let Some(pod) = pod {
        fields.push(("k8s.ns.name".into(), Some(Value::Str("shop".into()))));
        fields.push(("k8s.pod.name".into(), Some(Value::Str(pod.to_owned().into()))));
        fields.push(("container.name".into(), Some(Value::Str("web".into()))));
    }
    Arc::new(Alert {
        time_ns: T0 + n * 1_000_000,
        rule: rule.into(),
        priority,
        source: "syscall".into(),
        hostname: "node-a".into(),
        message: message.into(),
        tags: vec!["T1003".into()].into(),
        fields,
    })
}

/// A store of 250 alerts (every fifth in pod `web-1`, one with markup in its output) and
/// the console over it, under `base_path`.
fn fixture(name: &str, base_path: &str) -> Fixture {
    let dir = std::env::temp_dir().join(format!("sensor-console-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = StoreConfig::at(dir.join("alerts.db"));
    let mut store = crate::store::open(&config).unwrap().store;
    let mut alerts: Vec<Arc<Alert>> = (0..249)
        .map(|n| {
            let (priority, pod) =
                if n % 5 == 0 { (Priority::Critical, Some("web-1")) } else { (Priority::Notice, None) };
            alert(n, "Read sensitive file", priority, pod, &format!("read /etc/shadow by cat-{n}"))
        })
        .collect();
    alerts.push(alert(249, "Markup", Priority::Warning, None, "<script>alert(1)</script> by x-y"));
    store.insert(&alerts).unwrap();
    let audit = StoreConfig::at(dir.join("audit.db"));
    crate::store::audit::open(&audit).unwrap().log.insert_audit(&audit_events()).unwrap();
    let mut console = console(base_path, &config, None);
    Arc::get_mut(&mut console).unwrap().audit = Some(Reader::open(&audit).unwrap());
    Fixture { dir, app: router(console) }
}

/// 30 audit events: alice reads secrets in `shop`, bob deletes deployments in `web`; the
/// last one's user and URI carry markup.
fn audit_events() -> Vec<crate::store::audit::AuditRecord> {
    (0..30)
        .map(|n| {
            let (user, verb, resource, ns) =
                if n % 3 == 0 { ("bob", "delete", "deployments", "web") } else { ("alice", "get", "secrets", "shop") };
            let user = if n == 29 { "<img src=x onerror=alert(1)>" } else { user };
            let time = crate::rules::format_iso8601(T0 + n * 60_000_000_000);
            let json = serde_json::json!({
                "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "auditID": format!("id-{n}"),
                "stage": "ResponseComplete", "verb": verb,
                "requestURI": format!("/apis/apps/v1/namespaces/{ns}/{resource}/obj-{n}?<b>x</b>"),
                "user": {"username": user, "groups": ["system:authenticated"]}, "sourceIPs": ["10.1.2.3"],
                "userAgent": "kubectl/v1.31.0", "objectRef": {"resource": resource, "namespace": ns,
                "name": format!("obj-{n}"), "apiGroup": "apps", "apiVersion": "v1"},
                "responseStatus": {"metadata": {}, "code": 200},
                "requestReceivedTimestamp": time, "stageTimestamp": time
            });
            crate::store::audit::AuditRecord::of(crate::k8s_audit::AuditEvent::from_json(json).unwrap())
        })
        .collect()
}

/// The console over the store `config` names, under `base_path`, taking alerts with
/// `ingest` when given.
fn console(base_path: &str, config: &StoreConfig, ingest: Option<Ingest>) -> Arc<Console> {
    let rerun = match ingest {
        Some(_) => benchmark::Rerun::Cluster,
        None => benchmark::Rerun::Node(None),
    };
    Arc::new(Console {
        base: UiConfig { base_path: base_path.into(), ..UiConfig::default() }.base().unwrap(),
        secure: false,
        store: Reader::open(config).unwrap(),
        users: Users::new(&[UiUser { name: "alice".into(), password_hash: hash_password(PASSWORD).unwrap() }]).unwrap(),
        sessions: Sessions::new(Duration::from_secs(3600)),
        limiter: LoginLimiter::new(3, Duration::from_secs(300)),
        tokens: Tokens::new(vec![crate::outputs::Secret::for_test(TOKEN)]),
        ingest,
        tails: Arc::new(tokio::sync::Semaphore::new(2)),
        health: Some(Arc::new(crate::metrics::Metrics::default())),
        audit: None,
        rerun,
    })
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    fn location(&self) -> &str {
        self.headers.get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    /// The `name=value` of a Set-Cookie header.
    fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(|v| v.split(';').next().unwrap_or_default().to_owned())
    }

    /// The value of the form field `name="csrf"`.
    fn csrf_field(&self) -> String {
        let at = self.body.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
        self.body[at..].split('"').next().unwrap().to_owned()
    }
}

async fn send(app: &Router, method: &str, uri: &str, headers: &[(&str, &str)], body: &str, from: [u8; 4]) -> Answer {
    let mut request = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    if method == "POST" && !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
        request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    }
    let mut request = request.body(Body::from(body.to_owned())).unwrap();
    request.extensions_mut().insert(ConnectInfo(ClientAddr(SocketAddr::from((from, 40_000)))));
    let response = app.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = String::from_utf8_lossy(&body.collect().await.unwrap().to_bytes()).into_owned();
    Answer { status: parts.status, headers: parts.headers, body }
}

const CLIENT: [u8; 4] = [10, 0, 0, 1];

async fn get(app: &Router, uri: &str, cookie: &str) -> Answer {
    send(app, "GET", uri, &[("cookie", cookie)], "", CLIENT).await
}

/// Logs in as alice; the session cookie (`name=value`).
async fn log_in(app: &Router, base: &str) -> String {
    let page = get(app, &format!("{base}/login"), "").await;
    let csrf_cookie = page.cookie(LOGIN_CSRF_COOKIE).unwrap();
    let form = format!("user=alice&password={}&csrf={}", params::encode(PASSWORD), page.csrf_field());
    let answer = send(app, "POST", &format!("{base}/login"), &[("cookie", &csrf_cookie)], &form, CLIENT).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    answer.cookie(SESSION_COOKIE).expect("a session cookie")
}

const PAGES: [&str; 9] = [
    "/",
    "/events",
    "/events/1",
    "/about",
    "/events?priority=warning",
    "/audit",
    "/audit/1",
    "/benchmark",
    "/benchmark/runs/1",
];
const API: [&str; 10] = [
    "/api/v1/benchmark",
    "/api/v1/benchmark/runs?node=node-a",
    "/api/v1/benchmark/runs/1?format=csv",
    "/api/v1/alerts",
    "/api/v1/alerts/1",
    "/api/v1/audit",
    "/api/v1/audit/1",
    "/api/v1/counts?by=rule",
    "/api/v1/histogram?since=7d",
    "/api/v1/export?format=csv",
];

#[tokio::test]
async fn nothing_answers_without_a_session_or_token() {
    let f = fixture("noauth", "/");
    for cookie in ["", "sensor_session=forged", "sensor_session="] {
        for page in PAGES {
            let a = get(&f.app, page, cookie).await;
            assert_eq!((a.status, a.location()), (StatusCode::SEE_OTHER, "/login"), "{page} with {cookie:?}");
            assert!(!a.body.contains("shadow") && !a.body.contains("secrets"));
        }
        for api in API {
            let a = get(&f.app, api, cookie).await;
            assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{api} with {cookie:?}");
            assert!(!a.body.contains("shadow"));
        }
    }
    for bearer in ["Bearer wrong", "Bearer ", "Basic YWxpY2U6eA==", "bearer api-token-0123456789"] {
        let a = send(&f.app, "GET", "/api/v1/alerts", &[("authorization", bearer)], "", CLIENT).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{bearer}");
    }
    let a = send(&f.app, "GET", "/api/v1/alerts", &[("authorization", &format!("Bearer {TOKEN}"))], "", CLIENT).await;
    assert_eq!(a.status, StatusCode::OK, "the API token is accepted");
    // Every answer forbids caching, framing and script.
    assert_eq!(a.headers[header::CACHE_CONTROL], "no-store");
    assert!(a.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap().contains("default-src 'none'"));
}

#[tokio::test]
async fn log_in_wrong_and_right_browse_then_log_out() {
    let f = fixture("login", "/");
    let page = get(&f.app, "/login", "").await;
    assert_eq!(page.status, StatusCode::OK);
    let login_cookie = page.cookie(LOGIN_CSRF_COOKIE).unwrap();
    let raw_cookie = page.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap();
    assert!(raw_cookie.contains("HttpOnly") && raw_cookie.contains("SameSite=Strict"), "{raw_cookie}");
    let csrf = page.csrf_field();

    let wrong = format!("user=alice&password=guess&csrf={csrf}");
    let a = send(&f.app, "POST", "/login", &[("cookie", &login_cookie)], &wrong, CLIENT).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.body.contains("Wrong user name or password."));
    assert!(a.cookie(SESSION_COOKIE).is_none());

    let session = log_in(&f.app, "").await;
    let dashboard = get(&f.app, "/", &session).await;
    assert_eq!(dashboard.status, StatusCode::OK, "{}", dashboard.body);
    assert!(dashboard.body.contains("By rule") && dashboard.body.contains("alice"), "{}", dashboard.body);
    // The timeline, drawn on the server: the day's bar, stacked by priority, leading to its alerts.
    let years = get(&f.app, "/?since=3650d", &session).await.body;
    assert!(years.contains("id=\"timeline\""), "{years}");
    assert!(years.contains("<rect class=\"p-Critical\"") && years.contains("<rect class=\"p-Notice\""), "{years}");
    assert!(years.contains("<title>2026-11-") || years.contains("<title>2026-12-"), "{years}");
    assert!(years.contains("/events?from=2026-"), "a bar leads to its alerts");
    assert!(years.contains("a bar per 30 d; the busiest holds 250 alerts"), "{years}");
    let events = get(&f.app, "/events?pod=web-1", &session).await;
    assert_eq!(events.body.matches("class=\"alert\"").count(), 50, "every fifth alert is in web-1");
    // Live mode: the same filters, reloaded by the browser; a way out keeps the filters.
    assert!(events.body.contains("href=\"/events?pod=web-1&amp;live=1\"") && !events.body.contains("http-equiv"));
    let live = get(&f.app, "/events?pod=web-1&live=1", &session).await.body;
    assert!(live.contains("<meta http-equiv=\"refresh\" content=\"5\">"), "{live}");
    assert!(live.contains("Stop</a>") && live.contains("href=\"/events?pod=web-1\""), "{live}");
    assert_eq!(live.matches("class=\"alert\"").count(), 50);
    let detail = get(&f.app, "/events/1", &session).await;
    assert!(detail.body.contains("proc.name") && detail.body.contains("read /etc/shadow by cat-0"), "{}", detail.body);

    // Logging out needs the session's CSRF token.
    let a = send(&f.app, "POST", "/logout", &[("cookie", &session)], "csrf=wrong", CLIENT).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(get(&f.app, "/", &session).await.status, StatusCode::OK, "still logged in");
    let form = format!("csrf={}", dashboard.csrf_field());
    let a = send(&f.app, "POST", "/logout", &[("cookie", &session)], &form, CLIENT).await;
    assert_eq!((a.status, a.location()), (StatusCode::SEE_OTHER, "/login"));
    for page in PAGES {
        assert_eq!(get(&f.app, page, &session).await.status, StatusCode::SEE_OTHER, "{page} after logout");
    }
    assert_eq!(get(&f.app, "/api/v1/alerts", &session).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_login_without_its_csrf_token_is_refused() {
    let f = fixture("csrf", "/");
    let page = get(&f.app, "/login", "").await;
    let login_cookie = page.cookie(LOGIN_CSRF_COOKIE).unwrap();
    let form = format!("user=alice&password={}", params::encode(PASSWORD));
    // No token, a wrong one, a token without its cookie (a form posted from another site).
    for (cookie, body) in [
        (login_cookie.as_str(), form.clone()),
        (login_cookie.as_str(), format!("{form}&csrf=00")),
        ("", format!("{form}&csrf={}", page.csrf_field())),
    ] {
        let a = send(&f.app, "POST", "/login", &[("cookie", cookie)], &body, CLIENT).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{body}");
        assert!(a.cookie(SESSION_COOKIE).is_none());
    }
}

#[tokio::test]
async fn failed_logins_are_limited_per_address() {
    let f = fixture("limit", "/");
    let attempt = |password: &'static str, from: [u8; 4]| {
        let app = f.app.clone();
        async move {
            let page = get(&app, "/login", "").await;
            let cookie = page.cookie(LOGIN_CSRF_COOKIE).unwrap();
            let form = format!("user=alice&password={}&csrf={}", params::encode(password), page.csrf_field());
            send(&app, "POST", "/login", &[("cookie", &cookie)], &form, from).await
        }
    };
    for _ in 0..3 {
        assert_eq!(attempt("guess", CLIENT).await.status, StatusCode::UNAUTHORIZED);
    }
    let held = attempt(PASSWORD, CLIENT).await;
    assert_eq!(held.status, StatusCode::TOO_MANY_REQUESTS, "even the right password waits");
    assert!(held.body.contains("Too many failed logins from this address: try again in"), "{}", held.body);
    assert!(held.cookie(SESSION_COOKIE).is_none());
    assert_eq!(attempt(PASSWORD, [10, 0, 0, 2]).await.status, StatusCode::SEE_OTHER, "another address logs in");
}

#[tokio::test]
async fn the_api_filters_pages_counts_and_exports() {
    let f = fixture("api", "/");
    let session = log_in(&f.app, "").await;
    let api = |uri: String| {
        let (app, session) = (f.app.clone(), session.clone());
        async move {
            let a = get(&app, &uri, &session).await;
            assert_eq!(a.status, StatusCode::OK, "{uri}: {}", a.body);
            a
        }
    };
    let ids = |page: &serde_json::Value| -> Vec<i64> {
        page["alerts"].as_array().unwrap().iter().map(|a| a["id"].as_i64().unwrap()).collect()
    };

    // Pages of 40, newest first: every alert once.
    let mut seen = Vec::new();
    let mut uri = "/api/v1/alerts?limit=40".to_string();
    loop {
        let page = api(uri.clone()).await.json();
        seen.extend(ids(&page));
        match page["next"].as_str() {
            Some(next) => uri = format!("/api/v1/alerts?limit=40&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen, (1..=250).rev().collect::<Vec<_>>());

    let count = |q: &'static str| {
        let api = &api;
        async move { ids(&api(format!("/api/v1/alerts?limit=1000&{q}")).await.json()).len() }
    };
    assert_eq!(count("priority=critical").await, 50);
    assert_eq!(count("priority=warning").await, 51);
    assert_eq!(count("pod=web-1&namespace=shop").await, 50);
    assert_eq!(count("container=web").await, 50);
    assert_eq!(count("rule=Markup").await, 1);
    assert_eq!(count("node=node-a&source=syscall&tag=T1003").await, 250);
    assert_eq!(count("node=node-b").await, 0);
    assert_eq!(count("text=cat-17").await, 11, "a dash in the search text: cat-17 and cat-170..179");
    assert_eq!(count("text=cat-170").await, 1);
    assert_eq!(count("text=%22cat-1%22").await, 0, "quotes are searched as written");
    assert_eq!(count("text=x-y%20%3Cscript%3E").await, 1);
    assert_eq!(count("from=2026-12-06T00:00:00.100Z&to=2026-12-06T00:00:00.200Z").await, 100);
    assert_eq!(count("since=1h").await, 0, "the alerts are from another day");
    let bad = get(&f.app, "/api/v1/alerts?priority=loud", &session).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.json()["error"].as_str().unwrap().contains("priority"));

    let one = api("/api/v1/alerts/250".into()).await.json();
    assert_eq!((one["id"].as_i64(), one["rule"].as_str()), (Some(250), Some("Markup")));
    assert_eq!(get(&f.app, "/api/v1/alerts/999", &session).await.status, StatusCode::NOT_FOUND);

    let counts = api("/api/v1/counts?by=priority".into()).await.json();
    assert_eq!(counts["counts"][0], serde_json::json!({"value": "Notice", "alerts": 199}));
    let counts = api("/api/v1/counts?by=pod&priority=critical".into()).await.json();
    assert_eq!(counts["counts"], serde_json::json!([{"value": "web-1", "alerts": 50}]));

    // The timeline: a minute in seconds; every alert in its first second, by priority.
    let minute = "from=2026-12-06T00:00:00Z&to=2026-12-06T00:01:00Z";
    let timeline = api(format!("/api/v1/histogram?{minute}&bucket=1s")).await.json();
    assert_eq!(timeline["bucket_seconds"], 1);
    let buckets = timeline["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 60);
    assert_eq!(buckets[0]["start"], "2026-12-06T00:00:00.000000000Z");
    assert_eq!(buckets[0]["alerts"], 250);
    assert_eq!(buckets[0]["by_priority"], serde_json::json!({"Critical": 50, "Warning": 1, "Notice": 199}));
    assert_eq!(buckets[1]["alerts"], 0);
    let pod = api(format!("/api/v1/histogram?{minute}&bucket=1s&pod=web-1")).await.json();
    assert_eq!(pod["buckets"][0]["by_priority"], serde_json::json!({"Critical": 50}));
    for bad in [format!("{minute}&bucket=1ms"), format!("{minute}&bucket=often"), "since=24h&bucket=1s".into()] {
        let a = get(&f.app, &format!("/api/v1/histogram?{bad}"), &session).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{bad}: {}", a.body);
    }

    let jsonl = api("/api/v1/export?format=jsonl&pod=web-1".into()).await;
    assert_eq!(jsonl.body.lines().count(), 50);
    assert!(jsonl.headers[header::CONTENT_DISPOSITION].to_str().unwrap().contains("alerts.jsonl"));
    let csv = api("/api/v1/export?format=csv&rule=Markup".into()).await;
    let mut lines = csv.body.lines();
    assert_eq!(lines.next(), Some("id,time,priority,rule,source,node,container,image,namespace,pod,output"));
    assert!(lines.next().unwrap().starts_with("250,2026-12-06T00:00:00.249000000Z,Warning,Markup,syscall,node-a,"));
}

#[tokio::test]
async fn markup_from_an_alert_is_shown_as_text() {
    let f = fixture("xss", "/");
    let session = log_in(&f.app, "").await;
    for page in ["/events?rule=Markup", "/events/250"] {
        let body = get(&f.app, page, &session).await.body;
        assert!(!body.contains("<script>"), "{page}: {body}");
        assert!(body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{page}");
    }
}

#[tokio::test]
async fn the_console_works_under_a_sub_path() {
    let f = fixture("subpath", "/tools/sensor/");
    assert_eq!(get(&f.app, "/login", "").await.status, StatusCode::NOT_FOUND);
    let a = get(&f.app, "/tools/sensor/events", "").await;
    assert_eq!((a.status, a.location()), (StatusCode::SEE_OTHER, "/tools/sensor/login"));
    let page = get(&f.app, "/tools/sensor/login", "").await;
    assert!(page.body.contains("action=\"/tools/sensor/login\""));
    assert!(page.headers[header::SET_COOKIE].to_str().unwrap().contains("Path=/tools/sensor;"));
    let session = log_in(&f.app, "/tools/sensor").await;
    let events = get(&f.app, "/tools/sensor/events?limit=10", &session).await;
    assert!(events.body.contains("href=\"/tools/sensor/events/250\""), "{}", events.body);
    assert!(
        events.body.contains("href=\"/tools/sensor/events?limit=10&amp;after="),
        "the next page stays under the path"
    );
    let home = get(&f.app, "/tools/sensor/", &session).await;
    assert_eq!((home.status, home.location()), (StatusCode::SEE_OTHER, "/tools/sensor"));
    assert_eq!(get(&f.app, "/tools/sensor", &session).await.status, StatusCode::OK);
    assert_eq!(get(&f.app, "/tools/sensor/api/v1/alerts/250", &session).await.status, StatusCode::OK);
    assert!(UiConfig { base_path: "/a/../b".into(), ..UiConfig::default() }.base().is_err());
}

#[test]
fn exported_cells_cannot_become_spreadsheet_formulas() {
    assert_eq!(csv_cell("=HYPERLINK(\"http://x\")"), "\"'=HYPERLINK(\"\"http://x\"\")\"");
    for formula in ["+1", "-1+2", "@SUM(A1)"] {
        assert_eq!(csv_cell(formula), format!("'{formula}"));
    }
    assert_eq!(csv_cell("a,b"), "\"a,b\"");
    assert_eq!(csv_cell("plain /etc/shadow"), "plain /etc/shadow");
}

const NODE_TOKEN: &str = "node-token-abcdef0123456789";

/// What the cluster's console takes from nodes with [`NODE_TOKEN`], into the store `config` names.
fn node_ingest(config: &StoreConfig) -> Ingest {
    let (writer, _) = SharedWriter::open(config).unwrap();
    Ingest {
        writer,
        tokens: Tokens::new(vec![crate::outputs::Secret::for_test(NODE_TOKEN)]),
        stored: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        reports: AtomicU64::new(0),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_console_takes_alerts_only_with_a_node_token() {
    let f = fixture("ingest", "/sensor");
    let config = StoreConfig::at(f.dir.join("alerts.db"));
    let app = router(console("/sensor", &config, Some(node_ingest(&config))));
    let sent = alert(300, "From node-b", Priority::Error, Some("web-9"), "read /etc/shadow on node-b");
    let sent = Alert { hostname: "node-b".into(), ..(*sent).clone() };
    let body = format!("{}\n{{\"not\": \"an alert\"}}\nnot json\n\n", sent.to_json());
    let post = |auth: String| {
        let (app, body) = (app.clone(), body.clone());
        async move { send(&app, "POST", "/sensor/api/v1/ingest", &[("authorization", &auth)], &body, CLIENT).await }
    };
    // Neither the API token (it reads, it does not write), nor none, nor a wrong one.
    for auth in [format!("Bearer {TOKEN}"), String::new(), "Bearer node-token".into()] {
        assert_eq!(post(auth.clone()).await.status, StatusCode::UNAUTHORIZED, "{auth:?}");
    }
    let a = post(format!("Bearer {NODE_TOKEN}")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let answer = a.json();
    assert_eq!(answer["stored"], 1);
    let refused: Vec<u64> = answer["refused"].as_array().unwrap().iter().map(|r| r["line"].as_u64().unwrap()).collect();
    assert_eq!(refused, [2, 3], "the lines that are not alerts, by number");
    // Stored as sent, and shown with its node.
    let found = send(
        &app,
        "GET",
        "/sensor/api/v1/alerts?node=node-b",
        &[("authorization", &format!("Bearer {TOKEN}"))],
        "",
        CLIENT,
    )
    .await;
    let alerts = found.json()["alerts"].as_array().unwrap().clone();
    assert_eq!(alerts.len(), 1, "{}", found.body);
    assert_eq!(alerts[0]["output"], sent.to_json()["output"]);
    assert_eq!(alerts[0]["output_fields"]["k8s.pod.name"], "web-9");
    // The console beside `sensor run` takes nothing.
    let a = send(
        &f.app,
        "POST",
        "/sensor/api/v1/ingest",
        &[("authorization", &format!("Bearer {NODE_TOKEN}"))],
        &body,
        CLIENT,
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
}

/// Reads a live tail's events until `done` holds for what came (at most 10 s).
async fn read_events(body: &mut Body, done: impl Fn(&str) -> bool) -> String {
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done(&text) {
        let frame = tokio::time::timeout_at(deadline, body.frame()).await.expect("the tail sent in time");
        let frame = frame.expect("the tail goes on").unwrap();
        if let Some(data) = frame.data_ref() {
            text.push_str(&String::from_utf8_lossy(data));
        }
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_tail_sends_new_alerts_as_they_are_stored_and_resumes() {
    let f = fixture("tail", "/");
    let config = StoreConfig::at(f.dir.join("alerts.db"));
    let app = router(console("/", &config, None));
    let tail = |last: Option<&str>| {
        let mut request = Request::get("/api/v1/tail?pod=web-1").header("authorization", format!("Bearer {TOKEN}"));
        if let Some(id) = last {
            request = request.header("last-event-id", id);
        }
        let mut request = request.body(Body::empty()).unwrap();
        request.extensions_mut().insert(ConnectInfo(ClientAddr(SocketAddr::from((CLIENT, 40_000)))));
        app.clone().oneshot(request)
    };
    let response = tail(None).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut body = response.into_body();
    // Nothing already stored is sent: only what comes after, through the filter.
    let mut writer = crate::store::open(&config).unwrap().store;
    writer
        .insert(&[
            alert(300, "Elsewhere", Priority::Critical, Some("db-1"), "not in web-1"),
            alert(301, "Tailed", Priority::Critical, Some("web-1"), "new in web-1"),
        ])
        .unwrap();
    let text = read_events(&mut body, |t| t.contains("event: alert")).await;
    assert_eq!(text.matches("event: alert").count(), 1, "{text}");
    assert!(text.contains("\"rule\":\"Tailed\"") && text.contains("id: 252"), "{text}");
    assert!(!text.contains("Elsewhere") && !text.contains("cat-0"), "{text}");
    drop(body);

    // A client reconnecting with the last id it saw gets what it missed, once.
    writer.insert(&[alert(302, "Missed", Priority::Critical, Some("web-1"), "while away")]).unwrap();
    let mut body = tail(Some("252")).await.unwrap().into_body();
    let text = read_events(&mut body, |t| t.contains("Missed")).await;
    assert!(!text.contains("Tailed"), "{text}");
    // Two tails fill this console's room: a third is refused until one ends.
    let second = tail(None).await.unwrap();
    assert_eq!(tail(None).await.unwrap().status(), StatusCode::SERVICE_UNAVAILABLE);
    drop((body, second));
}

#[tokio::test]
async fn the_about_page_shows_the_sensors_own_counters() {
    let f = fixture("about", "/");
    let config = StoreConfig::at(f.dir.join("alerts.db"));
    let console = console("/", &config, None);
    let counters = sensor_abi::config::Counters { emitted: 1000, lost: 3, shed: 4, throttled: 5, ..Default::default() };
    console.health.as_ref().unwrap().update(crate::metrics::Snapshot {
        kernel: vec![counters, counters],
        rules_loaded: 52,
        outputs: vec![crate::outputs::OutputCounters {
            name: "telegram".into(),
            sent: 7,
            failed: 2,
            ..Default::default()
        }],
        ..Default::default()
    });
    let app = router(console);
    let session = log_in(&app, "").await;
    let about = get(&app, "/about", &session).await.body;
    for fact in [
        "<th>rules loaded</th><td>52</td>",
        "<th>events from the kernel</th><td>2000</td>",
        "<th>events lost in the kernel (rings full)</th><td>6</td>",
        "<th>events shed or throttled in the kernel (floods)</th><td>18</td>",
        "telegram: 7 sent, 2 failed",
        "<th>alerts stored</th><td>250</td>",
    ] {
        assert!(about.contains(fact), "{fact} in {about}");
    }
}

#[tokio::test]
async fn the_audit_page_filters_pages_shows_an_event_whole_and_escapes_it() {
    let f = fixture("audit", "/");
    let session = log_in(&f.app, "").await;
    let rows = |body: &str| body.matches("class=\"audit\"").count();
    let all = get(&f.app, "/audit", &session).await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(rows(&all.body), 30, "{}", all.body);
    // Filters from the form's parameters, several at once.
    let deletes = get(&f.app, "/audit?user=bob&verb=delete&namespace=web", &session).await.body;
    assert_eq!(rows(&deletes), 10, "bob deletes every third event");
    assert!(deletes.contains("id=\"f-user\" value=\"bob\""), "the form keeps the filters");
    assert_eq!(rows(&get(&f.app, "/audit?text=obj-17", &session).await.body), 1);
    assert_eq!(rows(&get(&f.app, "/audit?user_agent=kubectl&code=200&source_ip=10.1.2.3", &session).await.body), 30);
    assert_eq!(rows(&get(&f.app, "/audit?code=403", &session).await.body), 0);
    // Pages of 10 lead on to each other.
    let first = get(&f.app, "/audit?limit=10", &session).await.body;
    assert_eq!(rows(&first), 10);
    let next = first.split("id=\"next\" href=\"").nth(1).unwrap().split('"').next().unwrap().replace("&amp;", "&");
    let second = get(&f.app, &next, &session).await.body;
    assert_eq!(rows(&second), 10);
    assert!(!second.contains("data-audit-id=\"id-29\"") && second.contains("data-audit-id=\"id-19\""));
    // A bad filter is named.
    let bad = get(&f.app, "/audit?code=forbidden", &session).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("code: `forbidden` is not a status code"), "{}", bad.body);
    // The newest event's detail: its markup shown as text, never as markup.
    let id = all.body.split("data-id=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let detail = get(&f.app, &format!("/audit/{id}"), &session).await.body;
    assert!(!detail.contains("<img src=x") && detail.contains("&lt;img src=x onerror=alert(1)&gt;"), "{detail}");
    assert!(!all.body.contains("<img src=x"));
    for (field, want) in [
        ("audit-id", "id-29"),
        ("request-uri", "/apis/apps/v1/namespaces/shop/secrets/obj-29?&lt;b&gt;x&lt;/b&gt;"),
        ("api-group", "apps"),
        ("api-version", "v1"),
        ("resource", "secrets"),
        ("namespace", "shop"),
        ("name", "obj-29"),
        ("source-ips", "10.1.2.3"),
        ("user-agent", "kubectl/v1.31.0"),
        ("status", "200"),
        ("timestamps", "2026-12-06T00:29:00.000000000Z / 2026-12-06T00:29:00.000000000Z"),
    ] {
        assert!(detail.contains(&format!("id=\"d-{field}\">{want}</td>")), "{field}: {detail}");
    }
    assert_eq!(get(&f.app, "/audit/99999", &session).await.status, StatusCode::NOT_FOUND);
    // The API: the events as kube-apiserver sent them, with the log's id.
    let api = send(
        &f.app,
        "GET",
        "/api/v1/audit?verb=delete&limit=4",
        &[("authorization", &format!("Bearer {TOKEN}"))],
        "",
        CLIENT,
    )
    .await
    .json();
    assert_eq!(api["events"].as_array().unwrap().len(), 4);
    assert_eq!(api["events"][0]["auditID"], "id-27");
    assert!(api["events"][0]["id"].is_i64() && api["next"].is_string());
}

/// A report of node `node`'s kubelet with `failing` of its three checks failed.
fn benchmark_report(failing: usize) -> crate::benchmark::Report {
    use crate::benchmark::{CheckResult, Status};
    let check = |n: usize| CheckResult {
        id: format!("4.2.{n}"),
        text: format!("Check {n}, with \"quotes\", commas and <b>markup</b>"),
        status: if n <= failing { Status::Fail } else { Status::Pass },
        automated: true,
        observed: if n <= failing { "=cmd|' /C calc'!A0".into() } else { "false".into() },
        expected: "false".into(),
        source: format!("/var/lib/kubelet/config.yaml:{n}"),
        remediation: format!("Set it to false in the file (check {n})."),
    };
    crate::benchmark::Report {
        benchmark: "cis-1.12".into(),
        title: "CIS Kubernetes V1.12 worker node".into(),
        kubelet_pid: 4242,
        results: (1..=3).map(check).collect(),
        notes: vec![],
    }
}

/// The cluster's console over a new store, taking what nodes send with [`NODE_TOKEN`].
fn cluster_console(name: &str) -> (Fixture, Arc<Console>) {
    let dir = std::env::temp_dir().join(format!("sensor-console-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = StoreConfig::at(dir.join("alerts.db"));
    let console = console("", &config, Some(node_ingest(&config)));
    (Fixture { dir, app: router(console.clone()) }, console)
}

const JSON: (&str, &str) = ("content-type", "application/json");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_console_shows_each_nodes_benchmark_its_history_downloads_and_reruns() {
    let (f, console) = cluster_console("bench-cluster");
    let app = &f.app;
    let node_auth = format!("Bearer {NODE_TOKEN}");
    let submit = |node: &str, time_ns: u64, failing: usize| {
        serde_json::json!({"node": node, "time_ns": time_ns, "report": benchmark_report(failing)}).to_string()
    };
    let post = |uri: &'static str, auth: String, body: String| async move {
        send(app, "POST", uri, &[("authorization", &auth), JSON], &body, CLIENT).await
    };
    // Only a node token sends reports.
    for auth in [format!("Bearer {TOKEN}"), String::new(), "Bearer node-token".into()] {
        let a = post("/api/v1/ingest/benchmark", auth.clone(), submit("node-b", T0, 0)).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{auth:?}");
    }
    let a = post("/api/v1/ingest/benchmark", node_auth.clone(), "{\"node\": \"node-b\"}".into()).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert!(a.json()["error"].as_str().unwrap().contains("not a benchmark report"), "{}", a.body);
    let a = post("/api/v1/ingest/benchmark", node_auth.clone(), submit("two words", T0, 0)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    for (node, time_ns, failing) in [
        ("node-b", T0, 0),
        ("node-b", T0 + 3_600_000_000_000, 2),
        ("node-b", T0 + 3_600_000_000_000, 2),
        ("<i>c</i>", T0, 1),
    ] {
        let a = post("/api/v1/ingest/benchmark", node_auth.clone(), submit(node, time_ns, failing)).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    }
    let ingest = console.ingest.as_ref().unwrap();
    assert_eq!((ingest.reports.load(Relaxed), ingest.refused.load(Relaxed)), (4, 2));

    // The API: the latest per node, a node's history, one run.
    let api = |uri: String| async move {
        send(app, "GET", &uri, &[("authorization", &format!("Bearer {TOKEN}"))], "", CLIENT).await
    };
    let nodes = api("/api/v1/benchmark".into()).await.json();
    let nodes = nodes["nodes"].as_array().unwrap().clone();
    let seen: Vec<_> =
        nodes.iter().map(|n| (n["node"].as_str().unwrap(), n["totals"]["fail"].as_u64().unwrap())).collect();
    assert_eq!(seen, [("<i>c</i>", 1), ("node-b", 2)], "each node's latest run, by name");
    let history = api("/api/v1/benchmark/runs?node=node-b".into()).await.json();
    let history: Vec<_> =
        history["runs"].as_array().unwrap().iter().map(|r| r["time"].as_str().unwrap().to_owned()).collect();
    assert_eq!(
        history,
        ["2026-12-06T01:00:00.000000000Z", "2026-12-06T00:00:00.000000000Z"],
        "newest first, once each"
    );
    assert_eq!(api("/api/v1/benchmark/runs".into()).await.status, StatusCode::BAD_REQUEST, "which node");
    assert_eq!(api("/api/v1/benchmark/runs?node=node-b&limit=0".into()).await.status, StatusCode::BAD_REQUEST);
    let latest_b = nodes[1]["id"].as_i64().unwrap();
    let run = api(format!("/api/v1/benchmark/runs/{latest_b}")).await.json();
    assert_eq!(run["results"].as_array().unwrap().len(), 3);
    assert_eq!((run["node"].as_str(), run["results"][0]["status"].as_str()), (Some("node-b"), Some("Fail")));
    assert_eq!(api("/api/v1/benchmark/runs/999".into()).await.status, StatusCode::NOT_FOUND);

    // Downloads: JSON and CSV files; a cell that would be a formula is made inert.
    let csv = api(format!("/api/v1/benchmark/runs/{latest_b}?format=csv")).await;
    assert_eq!(csv.headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    assert_eq!(
        csv.headers[header::CONTENT_DISPOSITION].to_str().unwrap(),
        format!("attachment; filename=\"benchmark-node-b-{latest_b}.csv\"")
    );
    let lines: Vec<&str> = csv.body.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines[0], "node,time,benchmark,check,text,status,observed,source,expected,remediation");
    assert_eq!(
        lines[1],
        "node-b,2026-12-06T01:00:00.000000000Z,cis-1.12,4.2.1,\"Check 1, with \"\"quotes\"\", commas and <b>markup</b>\",\
         FAIL,'=cmd|' /C calc'!A0,/var/lib/kubelet/config.yaml:1,false,Set it to false in the file (check 1)."
    );
    assert_eq!(lines.len(), 4);
    let json = api(format!("/api/v1/benchmark/runs/{latest_b}?format=json")).await;
    assert!(json.headers[header::CONTENT_DISPOSITION].to_str().unwrap().ends_with(".json\""));
    assert_eq!(json.json()["totals"]["fail"], 2);
    assert_eq!(api(format!("/api/v1/benchmark/runs/{latest_b}?format=xml")).await.status, StatusCode::BAD_REQUEST);

    // The pages: every node, its markup as text; one run with its checks and history.
    let session = log_in(app, "").await;
    let page = get(app, "/benchmark", &session).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("&lt;i&gt;c&lt;/i&gt;") && !page.body.contains("<i>c</i>"), "{}", page.body);
    assert!(page.body.contains(&format!("href=\"/benchmark/runs/{latest_b}\">node-b</a>")), "{}", page.body);
    assert!(page.body.contains("1 PASS</span> <span class=\"pri s-FAIL\">2 FAIL"), "{}", page.body);
    let run_page = get(app, &format!("/benchmark/runs/{latest_b}"), &session).await.body;
    assert!(
        run_page.contains("Set it to false in the file (check 2).") && !run_page.contains("(check 3)."),
        "remediations of what failed"
    );
    assert!(run_page.contains("&lt;b&gt;markup&lt;/b&gt;") && !run_page.contains("<b>markup"), "{run_page}");
    assert!(run_page.contains(&format!("/api/v1/benchmark/runs/{latest_b}?format=csv")), "{run_page}");
    assert_eq!(run_page.matches("/benchmark/runs/").count() - 2, 2, "both runs in the history: {run_page}");

    // Re-run: the page's form (with the session's CSRF token), then the node takes it once.
    let take = || post("/api/v1/ingest/benchmark/rerun", node_auth.clone(), "{\"node\": \"node-b\"}".into());
    assert_eq!(take().await.json()["rerun"], false);
    let a = send(app, "POST", "/benchmark/rerun", &[("cookie", &session)], "csrf=wrong&node=node-b", CLIENT).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let form = format!("csrf={}&node=node-b", page.csrf_field());
    let a = send(app, "POST", "/benchmark/rerun", &[("cookie", &session)], &form, CLIENT).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let shown = get(app, a.location(), &session).await.body;
    assert!(shown.contains("node-b will run its checks again when it next asks"), "{shown}");
    assert_eq!(take().await.json()["rerun"], true);
    assert_eq!(take().await.json()["rerun"], false, "taken once");
    let a = send(
        app,
        "POST",
        "/benchmark/rerun",
        &[("cookie", &session)],
        &format!("csrf={}&node=node-z", page.csrf_field()),
        CLIENT,
    )
    .await;
    assert!(get(app, a.location(), &session).await.body.contains("no node node-z has sent a benchmark report"));
    // The API's re-run needs a token: a session alone (a cross-site form) may not post there.
    let a =
        send(app, "POST", "/api/v1/benchmark/rerun", &[("cookie", &session), JSON], "{\"node\": \"node-b\"}", CLIENT)
            .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let a = post("/api/v1/benchmark/rerun", format!("Bearer {TOKEN}"), "{\"node\": \"node-b\"}".into()).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(take().await.json()["rerun"], true);
    let a = post("/api/v1/ingest/benchmark/rerun", format!("Bearer {TOKEN}"), "{\"node\": \"node-b\"}".into()).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "asking for re-runs takes a node token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nodes_console_reruns_its_own_watch_and_takes_no_reports() {
    use crate::store::benchmark::BenchmarkLog as _;
    let f = fixture("bench-node", "/");
    let config = StoreConfig::at(f.dir.join("alerts.db"));
    let here = crate::state::node_name().to_owned();
    crate::store::benchmark::open_sqlite(config.sqlite_path().unwrap())
        .unwrap()
        .insert_run(&here, T0, &benchmark_report(1))
        .unwrap();
    let watch = Arc::new(tokio::sync::Notify::new());
    let mut console = console("/", &config, None);
    Arc::get_mut(&mut console).unwrap().rerun = benchmark::Rerun::Node(Some(watch.clone()));
    let app = router(console);
    let session = log_in(&app, "").await;
    let page = get(&app, "/benchmark", &session).await;
    assert!(page.body.contains(&format!(">{here}</a>")), "{}", page.body);
    let form = format!("csrf={}&node={}", page.csrf_field(), params::encode(&here));
    let a = send(&app, "POST", "/benchmark/rerun", &[("cookie", &session)], &form, CLIENT).await;
    assert!(get(&app, a.location(), &session).await.body.contains("is running its checks again"));
    tokio::time::timeout(Duration::from_secs(5), watch.notified()).await.expect("the watch was woken");
    let form = format!("csrf={}&node=another-node", page.csrf_field());
    let a = send(&app, "POST", "/benchmark/rerun", &[("cookie", &session)], &form, CLIENT).await;
    assert!(get(&app, a.location(), &session).await.body.contains("not on another-node"));
    // With the benchmark off, Re-run says so.
    let off = router(self::console("/", &config, None));
    let session = log_in(&off, "").await;
    let form = format!("csrf={}&node={}", get(&off, "/benchmark", &session).await.csrf_field(), params::encode(&here));
    let a = send(&off, "POST", "/benchmark/rerun", &[("cookie", &session)], &form, CLIENT).await;
    assert!(get(&off, a.location(), &session).await.body.contains("the benchmark is off here"));
    let a = send(
        &app,
        "POST",
        "/api/v1/ingest/benchmark",
        &[("authorization", &format!("Bearer {NODE_TOKEN}")), JSON],
        "{}",
        CLIENT,
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
}
