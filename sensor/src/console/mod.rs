//! The web console and its API over the alert store: a login page, a dashboard, the events
//! with their filters, one alert's detail, and `/api/v1` (search, one alert, counts, export).
//! Every page and endpoint but the login page needs a session (or, for the API, a bearer
//! token); every form carries a CSRF token; failed logins are bounded per client address.
//! Served by `sensor run` when `ui.enabled` is set, under `ui.base_path`, over the run's
//! store; and by `sensor console`, the cluster's console, which also takes the alerts the
//! nodes' `console` outputs send (`/api/v1/ingest`, with a node token) into its store.

mod auth;
mod benchmark;
pub mod config;
mod html;
mod params;

pub use auth::{LoginLimiter, Sessions, Users, hash_password};
pub use config::{ConsoleTls, UiConfig, UiUser};

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
};

use anyhow::Context as _;
use axum::{
    Form, Json, Router,
    extract::{ConnectInfo, Path as UrlPath, Query as UrlQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware,
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};
use serde::Deserialize;

use crate::outputs::constant_time_eq;
use crate::rules::Alert;
use crate::store::audit::{AuditLog, AuditPage, AuditQuery, AuditRecord};
use crate::store::{
    AlertStore, GroupBy, Histogram, Page, Query, Reader, SharedWriter, StoreConfig, StoredAlert, TAIL_BATCH, Tail,
};
use auth::{Session, Tokens, random_hex};

/// The cookie holding a session's token.
const SESSION_COOKIE: &str = "sensor_session";
/// The cookie holding the login form's CSRF token (before there is a session).
const LOGIN_CSRF_COOKIE: &str = "sensor_login_csrf";
/// Alerts one export returns at most; a larger one says where to continue.
pub const EXPORT_MAX: usize = 10_000;
/// The largest ingest request: its body, and its alerts.
pub const INGEST_MAX_BYTES: usize = 16 << 20;
pub const INGEST_MAX_ALERTS: usize = 10_000;
/// Live tails open at once at most; more are refused (503) until one ends.
pub const MAX_TAILS: usize = 32;
/// How often a live tail looks for new alerts.
const TAIL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// What every request handler shares.
struct Console {
    /// `""` or `/base`.
    base: String,
    /// Served over TLS: cookies are `Secure`, and browsers are told to keep to HTTPS.
    secure: bool,
    store: Reader,
    users: Users,
    sessions: Sessions,
    limiter: LoginLimiter,
    tokens: Tokens,
    /// What the cluster's console takes from the nodes.
    ingest: Option<Ingest>,
    /// Room for live tails.
    tails: Arc<tokio::sync::Semaphore>,
    /// The sensor's own counters, beside `sensor run`.
    health: Option<Arc<crate::metrics::Metrics>>,
    /// The Kubernetes audit log (`k8s_audit.store`), when there is one.
    audit: Option<Reader>,
    /// Who runs a node's benchmark again.
    rerun: benchmark::Rerun,
}

/// The store's writer for what nodes send, the tokens they send with, and what they sent.
struct Ingest {
    writer: SharedWriter,
    tokens: Tokens,
    /// Alerts stored, lines (or benchmark reports) refused as malformed, requests that
    /// failed to store, and benchmark reports kept.
    stored: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
    reports: AtomicU64,
}

/// Where the console runs.
pub enum Mode<'a> {
    /// Beside `sensor run`, showing its `store` output's store (unless `ui.store` names one)
    /// and, on the About page, the run's own counters; Re-run wakes `benchmark_rerun`.
    Node {
        store: Option<&'a StoreConfig>,
        health: Arc<crate::metrics::Metrics>,
        benchmark_rerun: Option<Arc<tokio::sync::Notify>>,
    },
    /// `sensor console`: `ui.store` is the cluster's store, written with what the nodes send.
    Cluster,
}

/// The console, serving.
pub struct RunningConsole {
    pub address: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    console: Arc<Console>,
}

impl RunningConsole {
    /// What the cluster's console took from the nodes so far (none beside `sensor run`).
    pub fn ingest_counters(&self) -> Option<crate::metrics::IngestCounters> {
        self.console.ingest.as_ref().map(|i| crate::metrics::IngestCounters {
            stored: i.stored.load(Relaxed),
            refused: i.refused.load(Relaxed),
            failed: i.failed.load(Relaxed),
            benchmark_reports: i.reports.load(Relaxed),
        })
    }
}

impl Drop for RunningConsole {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the console on the current runtime. `store` is the `store` output's, used unless
/// `ui.store` names another; `audit_log` is `k8s_audit.store`, shown on the Audit page.
/// With no user configured, the first start makes the `admin` user's password and prints
/// it once on stderr (only its hash is kept).
pub async fn start(
    config: &UiConfig,
    mode: Mode<'_>,
    audit_log: Option<&StoreConfig>,
) -> anyhow::Result<RunningConsole> {
    let base = config.base()?;
    let store = match &mode {
        Mode::Node { store, .. } => config
            .store
            .clone()
            .or_else(|| store.cloned())
            .context("ui: no alert store to show: add a `store` output or set ui.store")?,
        Mode::Cluster => config.store.clone().context("ui.store: the console needs the store it keeps alerts in")?,
    };
    let users = if config.users.is_empty() {
        let admin_file = match (&config.admin_file, store.sqlite_path()) {
            (Some(file), _) => file.clone(),
            (None, Some(db)) => db.with_file_name("ui-admin.hash"),
            (None, None) => anyhow::bail!("ui: with a PostgreSQL store, set ui.users or ui.admin_file"),
        };
        let (users, password) = Users::admin_from(&admin_file)?;
        if let Some(password) = password {
            // Once, on the terminal: the operator's only chance to read it (the file keeps
            // the hash alone). Not through the log, which may be shipped elsewhere.
            eprintln!(
                "\nui: created the console user `admin` with password {password}\n    \
                 (shown once; its hash is in {}; delete that file to make a new one)\n",
                admin_file.display()
            );
        }
        users
    } else {
        Users::new(&config.users)?
    };
    let ingest = match &mode {
        Mode::Node { .. } => {
            anyhow::ensure!(
                config.ingest_tokens.is_empty(),
                "ui.ingest_tokens: only `sensor console` takes alerts from nodes"
            );
            None
        }
        Mode::Cluster => {
            let owned = store.clone();
            let (writer, set_aside) = tokio::task::spawn_blocking(move || SharedWriter::open(&owned)).await??;
            if let Some(message) = set_aside {
                log::error!("ui: {message}");
            }
            let tokens: Vec<_> = config
                .ingest_tokens
                .iter()
                .map(|t| t.load().context("ui.ingest_tokens"))
                .collect::<anyhow::Result<_>>()?;
            if tokens.is_empty() {
                log::warn!("ui: no ui.ingest_tokens: no node can send alerts to this console");
            }
            Some(Ingest {
                writer,
                tokens: Tokens::new(tokens),
                stored: AtomicU64::new(0),
                refused: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                reports: AtomicU64::new(0),
            })
        }
    };
    let retention = ingest.as_ref().map(|i| i.writer.spawn_retention(store.retention_interval));
    let store = tokio::task::spawn_blocking(move || Reader::open(&store)).await??;
    let audit = match audit_log.cloned() {
        Some(log) => Some(tokio::task::spawn_blocking(move || Reader::open(&log)).await??),
        None => None,
    };
    let sessions = match &store {
        // Replicas behind one Service share the database, and so the logins.
        Reader::Postgres(pg) => Sessions::shared(config.session_ttl, pg.clone()),
        Reader::Sqlite(_) => Sessions::new(config.session_ttl),
    };
    let tokens = config.api_tokens.iter().map(|t| t.load().context("ui.api_tokens")).collect::<anyhow::Result<_>>()?;
    let tls = config
        .tls
        .as_ref()
        .map(|t| crate::tls::server_acceptor(&t.cert_file, &t.key_file, None))
        .transpose()
        .context("ui.tls")?;
    let console = Arc::new(Console {
        base: base.clone(),
        secure: tls.is_some(),
        store,
        users,
        sessions,
        limiter: LoginLimiter::new(config.login_attempts.get(), config.login_window),
        tokens: Tokens::new(tokens),
        ingest,
        tails: Arc::new(tokio::sync::Semaphore::new(MAX_TAILS)),
        health: match &mode {
            Mode::Node { health, .. } => Some(health.clone()),
            Mode::Cluster => None,
        },
        audit,
        rerun: match mode {
            Mode::Node { benchmark_rerun, .. } => benchmark::Rerun::Node(benchmark_rerun),
            Mode::Cluster => benchmark::Rerun::Cluster,
        },
    });
    let listener = tokio::net::TcpListener::bind(config.address)
        .await
        .with_context(|| format!("ui: listening on {}", config.address))?;
    let address = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let app = router(console.clone());
    let task = tokio::spawn(async move {
        let served = match tls {
            Some(acceptor) => match crate::tls::TlsListener::new(listener, acceptor) {
                Ok(listener) => serve(listener, app).await,
                Err(e) => Err(e),
            },
            None => serve(listener, app).await,
        };
        if let Err(e) = served {
            log::error!("ui: the console stopped: {e}");
        }
        if let Some(retention) = retention {
            retention.abort();
        }
    });
    log::info!("ui: console on {scheme}://{address}{base}/");
    Ok(RunningConsole { address, task, console })
}

/// The client's address, as the login limiter counts it.
#[derive(Clone, Copy, Debug)]
struct ClientAddr(SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>> for ClientAddr {
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, crate::tls::TlsListener>> for ClientAddr {
    fn connect_info(stream: axum::serve::IncomingStream<'_, crate::tls::TlsListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

/// Serves `app` on `listener`, each request knowing its client's address.
async fn serve<L>(listener: L, app: Router) -> std::io::Result<()>
where
    L: axum::serve::Listener<Addr = SocketAddr>,
    for<'a> ClientAddr: axum::extract::connect_info::Connected<axum::serve::IncomingStream<'a, L>>,
{
    axum::serve(listener, app.into_make_service_with_connect_info::<ClientAddr>()).await
}

fn router(console: Arc<Console>) -> Router {
    let base = console.base.clone();
    let secure = console.secure;
    let routes = Router::new()
        .route("/login", get(login_page).post(login_submit))
        .route("/logout", post(logout))
        .route("/", get(dashboard))
        .route("/events", get(events))
        .route("/events/{id}", get(detail))
        .route("/about", get(about))
        .route("/audit", get(audit_events))
        .route("/audit/{id}", get(audit_detail))
        .route("/api/v1/alerts", get(api_search))
        .route("/api/v1/alerts/{id}", get(api_get))
        .route("/api/v1/audit", get(api_audit_search))
        .route("/api/v1/audit/{id}", get(api_audit_get))
        .route("/api/v1/counts", get(api_counts))
        .route("/api/v1/histogram", get(api_histogram))
        .route("/api/v1/tail", get(api_tail))
        .route("/api/v1/export", get(api_export))
        .route("/benchmark", get(benchmark::page))
        .route("/benchmark/runs/{id}", get(benchmark::run_page))
        .route("/benchmark/rerun", post(benchmark::rerun_submit))
        .route("/api/v1/benchmark", get(benchmark::api_nodes))
        .route("/api/v1/benchmark/runs", get(benchmark::api_runs))
        .route("/api/v1/benchmark/runs/{id}", get(benchmark::api_run))
        .route("/api/v1/benchmark/rerun", post(benchmark::api_rerun))
        .route("/api/v1/ingest", post(api_ingest).layer(axum::extract::DefaultBodyLimit::max(INGEST_MAX_BYTES)))
        .route(
            "/api/v1/ingest/benchmark",
            post(benchmark::api_ingest).layer(axum::extract::DefaultBodyLimit::max(benchmark::REPORT_MAX_BYTES)),
        )
        .route("/api/v1/ingest/benchmark/rerun", post(benchmark::api_ingest_rerun))
        .fallback(not_found)
        .with_state(console);
    let app = if base.is_empty() {
        routes
    } else {
        // Nested, the dashboard is `/base`; `/base/` leads there.
        let home = base.clone();
        Router::new().route(&format!("{base}/"), get(move || async move { Redirect::to(&home) })).nest(&base, routes)
    };
    let app = app.layer(middleware::map_response(security_headers));
    if secure {
        app.layer(middleware::map_response(|mut response: Response| async move {
            response
                .headers_mut()
                .insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
            response
        }))
    } else {
        app
    }
}

/// What every answer carries: no caching (alerts are sensitive), no framing, no script.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

/// The request's bearer token.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "))
}

/// The value of cookie `name`.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl Console {
    fn cookie_path(&self) -> &str {
        if self.base.is_empty() { "/" } else { &self.base }
    }

    fn set_cookie(&self, name: &str, value: &str, max_age: u64) -> (header::HeaderName, String) {
        (
            header::SET_COOKIE,
            format!(
                "{name}={value}; Path={}; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
                self.cookie_path(),
                if self.secure { "; Secure" } else { "" }
            ),
        )
    }

    /// The request's session and its token.
    async fn session(&self, headers: &HeaderMap) -> Option<(String, Session)> {
        let token = cookie(headers, SESSION_COOKIE)?;
        self.sessions.get(token).await.map(|s| (token.to_owned(), s))
    }

    /// Whether the request may call the API: a bearer token, or a session.
    async fn api_allowed(&self, headers: &HeaderMap) -> bool {
        bearer(headers).is_some_and(|t| self.tokens.accepts(t)) || self.session(headers).await.is_some()
    }

    /// What the cluster's console takes from a node, when the request carries a node
    /// token; else the answer: 404 (beside `sensor run`, which takes no `what`) or 401.
    fn node_ingest(&self, headers: &HeaderMap, what: &str) -> Result<&Ingest, Box<Response>> {
        let Some(ingest) = &self.ingest else {
            let error = Json(serde_json::json!({"error": format!("this console takes no {what}")}));
            return Err(Box::new((StatusCode::NOT_FOUND, error).into_response()));
        };
        if !bearer(headers).is_some_and(|t| ingest.tokens.accepts(t)) {
            return Err(Box::new(unauthorized()));
        }
        Ok(ingest)
    }

    /// The dashboard's path.
    fn home(&self) -> String {
        if self.base.is_empty() { "/".into() } else { self.base.clone() }
    }

    fn to_login(&self) -> Response {
        Redirect::to(&format!("{}/login", self.base)).into_response()
    }

    /// Runs `read` on the store, on a blocking thread.
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&dyn AlertStore) -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T, String> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.read(read))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("{e:#}"))
    }
}

impl Console {
    /// Runs `read` on the audit log, on a blocking thread; an error when there is none.
    async fn read_audit<T: Send + 'static>(
        &self,
        read: impl FnOnce(&dyn AuditLog) -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T, String> {
        let Some(log) = self.audit.clone() else {
            return Err("no audit log: set k8s_audit.store in the configuration".into());
        };
        tokio::task::spawn_blocking(move || log.read_audit(read))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("{e:#}"))
    }
}

type Params = UrlQuery<Vec<(String, String)>>;

async fn login_page(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    if console.session(&headers).await.is_some() {
        return Redirect::to(&console.home()).into_response();
    }
    let csrf = random_hex(32);
    ([console.set_cookie(LOGIN_CSRF_COOKIE, &csrf, 3600)], Html(html::login(&console.base, &csrf, None)))
        .into_response()
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
}

async fn login_submit(
    State(console): State<Arc<Console>>,
    ConnectInfo(ClientAddr(client)): ConnectInfo<ClientAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let base = &console.base;
    let expected = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if expected.is_empty() || !constant_time_eq(expected.as_bytes(), form.csrf.as_bytes()) {
        let page = html::message(
            base,
            "Form expired",
            "The login form expired or came from elsewhere: open the login page again.",
        );
        return (StatusCode::FORBIDDEN, Html(page)).into_response();
    }
    let client = client.ip();
    if let Some(wait) = console.limiter.wait(client) {
        let text = format!("Too many failed logins from this address: try again in {} s.", wait.as_secs() + 1);
        let csrf = random_hex(32);
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [console.set_cookie(LOGIN_CSRF_COOKIE, &csrf, 3600)],
            Html(html::login(base, &csrf, Some(&text))),
        )
            .into_response();
    }
    let verifier = console.clone();
    let (user, password) = (form.user.clone(), form.password);
    let ok = tokio::task::spawn_blocking(move || verifier.users.verify(&user, &password)).await.unwrap_or(false);
    if !ok {
        console.limiter.failed(client);
        log::warn!("ui: failed login for `{}` from {client}", form.user.escape_debug());
        let csrf = random_hex(32);
        return (
            StatusCode::UNAUTHORIZED,
            [console.set_cookie(LOGIN_CSRF_COOKIE, &csrf, 3600)],
            Html(html::login(base, &csrf, Some("Wrong user name or password."))),
        )
            .into_response();
    }
    console.limiter.succeeded(client);
    log::info!("ui: `{}` logged in from {client}", form.user.escape_debug());
    let token = match console.sessions.start(&form.user).await {
        Ok(token) => token,
        Err(e) => {
            log::error!("ui: keeping the session of `{}`: {e:#}", form.user.escape_debug());
            return (StatusCode::SERVICE_UNAVAILABLE, "the session could not be kept: try again\n").into_response();
        }
    };
    let mut response = Redirect::to(&console.home()).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        console.set_cookie(SESSION_COOKIE, &token, console.sessions.ttl().as_secs()),
        console.set_cookie(LOGIN_CSRF_COOKIE, "", 0),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.append(name, value);
        }
    }
    response
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(State(console): State<Arc<Console>>, headers: HeaderMap, Form(form): Form<CsrfForm>) -> Response {
    let Some((token, session)) = console.session(&headers).await else { return console.to_login() };
    if !constant_time_eq(session.csrf.as_bytes(), form.csrf.as_bytes()) {
        return (StatusCode::FORBIDDEN, "the form's CSRF token is missing or wrong\n").into_response();
    }
    console.sessions.end(&token).await;
    log::info!("ui: `{}` logged out", session.user.escape_debug());
    ([console.set_cookie(SESSION_COOKIE, "", 0)], Redirect::to(&format!("{}/login", console.base))).into_response()
}

async fn dashboard(State(console): State<Arc<Console>>, headers: HeaderMap, UrlQuery(params): Params) -> Response {
    let Some((_, session)) = console.session(&headers).await else { return console.to_login() };
    let since = params.iter().find(|(k, _)| k == "since").map_or("24h".to_owned(), |(_, v)| v.clone());
    let query = match params::query_of(&[("since".into(), since.clone())]) {
        Ok(q) => q,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    let (from, to) = (query.from_ns.unwrap_or(0), crate::store::now_ns());
    let bucket_ns = Histogram::bucket_for(to - from.min(to));
    let groups = GroupBy::DASHBOARD;
    let read = console
        .read(move |store| {
            let timeline = Histogram::dense(from, to, bucket_ns, &store.histogram(&query, bucket_ns)?);
            let counts =
                groups.iter().map(|by| Ok((*by, store.counts(&query, *by)?))).collect::<anyhow::Result<Vec<_>>>()?;
            Ok((timeline, counts))
        })
        .await;
    match read {
        Ok((timeline, counts)) => {
            Html(html::dashboard(&console.base, (&session.user, &session.csrf), &since, &timeline, &counts))
                .into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}

async fn events(State(console): State<Arc<Console>>, headers: HeaderMap, UrlQuery(params): Params) -> Response {
    let Some((_, session)) = console.session(&headers).await else { return console.to_login() };
    let session = (session.user.as_str(), session.csrf.as_str());
    let query = match params::query_of(&params) {
        Ok(q) => q,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, Html(html::events(&console.base, session, &params, &[], None, Some(&e))))
                .into_response();
        }
    };
    match console.read(move |store| store.search(&query)).await {
        Ok(Page { alerts, next }) => {
            Html(html::events(&console.base, session, &params, &alerts, next.map(|c| c.to_string()), None))
                .into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}

async fn detail(State(console): State<Arc<Console>>, headers: HeaderMap, UrlPath(id): UrlPath<i64>) -> Response {
    let Some((_, session)) = console.session(&headers).await else { return console.to_login() };
    match console.read(move |store| store.get(id)).await {
        Ok(Some(alert)) => Html(html::detail(&console.base, (&session.user, &session.csrf), &alert)).into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, format!("no alert {id}\n")).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}

async fn about(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let Some((_, session)) = console.session(&headers).await else { return console.to_login() };
    let store_path = console.store.describe();
    let usage = console.read(|store| store.usage()).await;
    let mut facts = vec![("version", env!("CARGO_PKG_VERSION").to_owned()), ("alert store", store_path)];
    match usage {
        Ok(u) => {
            facts.push(("alerts stored", u.alerts.to_string()));
            facts.push(("store size (pages in use)", format!("{:.1} MiB", u.bytes as f64 / 1048576.0)));
            facts.push(("oldest alert", u.oldest_ns.map_or("none".into(), crate::rules::format_iso8601)));
        }
        Err(e) => facts.push(("store error", e)),
    }
    if let Some(log) = &console.audit {
        facts.push(("audit log", log.describe()));
        match console.read_audit(|log| log.audit_usage()).await {
            Ok(u) => {
                facts.push(("audit events kept", u.alerts.to_string()));
                facts.push(("oldest audit event", u.oldest_ns.map_or("none".into(), crate::rules::format_iso8601)));
            }
            Err(e) => facts.push(("audit log error", e)),
        }
    }
    if let Some(health) = &console.health {
        let s = health.snapshot();
        let (emitted, lost) = s.kernel.iter().fold((0, 0), |(e, l), c| (e + c.emitted, l + c.lost));
        let shed: u64 = s.kernel.iter().map(|c| c.shed + c.throttled).sum();
        facts.push(("health", health.health().unwrap_or_else(|stalled| format!("unhealthy: {stalled}"))));
        facts.push(("rules loaded", s.rules_loaded.to_string()));
        facts.push(("events from the kernel", emitted.to_string()));
        facts.push(("events lost in the kernel (rings full)", lost.to_string()));
        facts.push(("events shed or throttled in the kernel (floods)", shed.to_string()));
        facts.push(("events lost between stages", s.pipeline_lost.iter().map(|(_, n)| n).sum::<u64>().to_string()));
        facts.push(("events evaluated", s.evaluated.to_string()));
        facts.push(("alerts dropped (queue to the outputs full)", s.alerts_dropped.to_string()));
        for o in &s.outputs {
            facts.push((
                "output",
                format!(
                    "{}: {} sent, {} failed, {} dropped, {} retried, {} filtered out",
                    o.name, o.sent, o.failed, o.dropped, o.retried, o.filtered
                ),
            ));
        }
    }
    if let Some(ingest) = &console.ingest {
        facts.push(("alerts taken from nodes", ingest.stored.load(Relaxed).to_string()));
        facts.push(("ingested lines refused (not a JSON alert)", ingest.refused.load(Relaxed).to_string()));
        facts.push(("ingest requests that failed to store", ingest.failed.load(Relaxed).to_string()));
        facts.push(("benchmark reports taken from nodes", ingest.reports.load(Relaxed).to_string()));
    }
    Html(html::about(&console.base, (&session.user, &session.csrf), &facts)).into_response()
}

/// The audit log's page: the filter form, a page of events, the next page's link.
async fn audit_events(State(console): State<Arc<Console>>, headers: HeaderMap, UrlQuery(params): Params) -> Response {
    let Some((_, session)) = console.session(&headers).await else { return console.to_login() };
    let session = (session.user.as_str(), session.csrf.as_str());
    let read = match AuditQuery::from_params(&params) {
        Ok(query) => console
            .read_audit(move |log| log.search_audit(&query))
            .await
            .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e)),
        Err(e) => Err((StatusCode::BAD_REQUEST, e)),
    };
    match read {
        Ok(AuditPage { events, next }) => {
            Html(html::audit(&console.base, session, &params, &events, next.map(|c| c.to_string()), None))
                .into_response()
        }
        Err((status, e)) => {
            (status, Html(html::audit(&console.base, session, &params, &[], None, Some(&e)))).into_response()
        }
    }
}

/// One audit event: who did what to which object, from where, with what result.
async fn audit_detail(State(console): State<Arc<Console>>, headers: HeaderMap, UrlPath(id): UrlPath<i64>) -> Response {
    let Some((_, session)) = console.session(&headers).await else { return console.to_login() };
    match console.read_audit(move |log| log.get_audit(id)).await {
        Ok(Some(event)) => {
            Html(html::audit_detail(&console.base, (&session.user, &session.csrf), &event)).into_response()
        }
        Ok(None) => (StatusCode::NOT_FOUND, format!("no audit event {id}\n")).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}

async fn api_audit_search(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    UrlQuery(params): Params,
) -> Response {
    if !console.api_allowed(&headers).await {
        return unauthorized();
    }
    let query = match AuditQuery::from_params(&params) {
        Ok(q) => q,
        Err(e) => return bad_request(e),
    };
    match console.read_audit(move |log| log.search_audit(&query)).await {
        Ok(page) => Json(serde_json::json!({
            "events": page.events.iter().map(AuditRecord::to_json).collect::<Vec<_>>(),
            "next": page.next.map(|c| c.to_string()),
        }))
        .into_response(),
        Err(e) => server_error(e),
    }
}

async fn api_audit_get(State(console): State<Arc<Console>>, headers: HeaderMap, UrlPath(id): UrlPath<i64>) -> Response {
    if !console.api_allowed(&headers).await {
        return unauthorized();
    }
    match console.read_audit(move |log| log.get_audit(id)).await {
        Ok(Some(event)) => Json(event.to_json()).into_response(),
        Ok(None) => {
            (StatusCode::NOT_FOUND, Json(serde_json::json!({"error": format!("no audit event {id}")}))).into_response()
        }
        Err(e) => server_error(e),
    }
}

/// The API's refusal without a session or token.
fn unauthorized() -> Response {
    let body = Json(serde_json::json!({"error": "log in, or send Authorization: Bearer TOKEN"}));
    (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], body).into_response()
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(serde_json::json!({"error": message}))).into_response()
}

fn server_error(message: String) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, Json(serde_json::json!({"error": message}))).into_response()
}

async fn api_search(State(console): State<Arc<Console>>, headers: HeaderMap, UrlQuery(params): Params) -> Response {
    if !console.api_allowed(&headers).await {
        return unauthorized();
    }
    let query = match params::query_of(&params) {
        Ok(q) => q,
        Err(e) => return bad_request(e),
    };
    match console.read(move |store| store.search(&query)).await {
        Ok(page) => Json(serde_json::json!({
            "alerts": page.alerts.iter().map(StoredAlert::to_json).collect::<Vec<_>>(),
            "next": page.next.map(|c| c.to_string()),
        }))
        .into_response(),
        Err(e) => server_error(e),
    }
}

async fn api_get(State(console): State<Arc<Console>>, headers: HeaderMap, UrlPath(id): UrlPath<i64>) -> Response {
    if !console.api_allowed(&headers).await {
        return unauthorized();
    }
    match console.read(move |store| store.get(id)).await {
        Ok(Some(alert)) => Json(alert.to_json()).into_response(),
        Ok(None) => {
            (StatusCode::NOT_FOUND, Json(serde_json::json!({"error": format!("no alert {id}")}))).into_response()
        }
        Err(e) => server_error(e),
    }
}

async fn api_counts(State(console): State<Arc<Console>>, headers: HeaderMap, UrlQuery(params): Params) -> Response {
    if !console.api_allowed(&headers).await {
        return unauthorized();
    }
    let by_name = params.iter().find(|(k, _)| k == "by").map_or("rule", |(_, v)| v.as_str());
    let Some(by) = GroupBy::parse(by_name) else {
        let names: Vec<&str> = GroupBy::ALL.iter().map(|g| g.name()).collect();
        return bad_request(format!("by: `{by_name}`, expected one of {}", names.join(", ")));
    };
    let query = match params::query_of(&params) {
        Ok(q) => q,
        Err(e) => return bad_request(e),
    };
    match console.read(move |store| store.counts(&query, by)).await {
        Ok(counts) => Json(serde_json::json!({
            "by": by.name(),
            "counts": counts.iter().map(|(value, n)| serde_json::json!({"value": value, "alerts": n})).collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(e) => server_error(e),
    }
}

/// Alerts from a node's `console` output: JSON lines, each Falco's JSON alert. What is
/// stored is answered only once committed, so a sender retries anything else; a retried
/// batch is stored once (PostgreSQL keeps one row per alert digest). A line that is not an
/// alert is refused with its number and the rest stored.
async fn api_ingest(State(console): State<Arc<Console>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let ingest = match console.node_ingest(&headers, "alerts") {
        Ok(ingest) => ingest,
        Err(refused) => return *refused,
    };
    let mut alerts = Vec::new();
    let mut refused = Vec::new();
    for (i, line) in body.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let parsed = serde_json::from_slice::<serde_json::Value>(line)
            .map_err(|e| e.to_string())
            .and_then(|json| Alert::from_json(&json).map_err(|e| e.to_string()));
        match parsed {
            Ok(alert) => alerts.push(Arc::new(alert)),
            Err(e) => refused.push(serde_json::json!({"line": i + 1, "error": e})),
        }
    }
    if alerts.len() > INGEST_MAX_ALERTS {
        let message = format!("{} alerts in one request; send at most {INGEST_MAX_ALERTS}", alerts.len());
        return (StatusCode::PAYLOAD_TOO_LARGE, Json(serde_json::json!({"error": message}))).into_response();
    }
    ingest.refused.fetch_add(refused.len() as u64, Relaxed);
    if !refused.is_empty() {
        log::warn!("ui: ingest refused {} lines that are not JSON alerts (first: {})", refused.len(), refused[0]);
    }
    let (writer, count) = (ingest.writer.clone(), alerts.len());
    let outcome = tokio::task::spawn_blocking(move || writer.insert(&alerts)).await;
    match outcome.map_err(anyhow::Error::from).and_then(|stored| stored) {
        Ok(()) => {
            ingest.stored.fetch_add(count as u64, Relaxed);
            Json(serde_json::json!({"stored": count, "refused": refused})).into_response()
        }
        Err(e) => {
            ingest.failed.fetch_add(1, Relaxed);
            let error = format!("{e:#}");
            log::warn!("ui: storing {count} ingested alerts failed: {error}");
            // The sender keeps the alerts and tries again.
            (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({"error": format!("storing failed: {error}")})))
                .into_response()
        }
    }
}

/// The timeline of the alerts the filters select: alerts per bucket by priority, over
/// `from`/`since` (default the last 24 h) to `to` (default now), in buckets of `bucket` (a
/// span, `1h`; default: a round width giving at most 120).
async fn api_histogram(State(console): State<Arc<Console>>, headers: HeaderMap, UrlQuery(params): Params) -> Response {
    if !console.api_allowed(&headers).await {
        return unauthorized();
    }
    let mut query = match params::query_of(&params) {
        Ok(q) => q,
        Err(e) => return bad_request(e),
    };
    let now = crate::store::now_ns();
    let from = *query.from_ns.get_or_insert(now.saturating_sub(86_400 * 1_000_000_000));
    let to = query.to_ns.unwrap_or(now);
    if from >= to {
        return bad_request("the range is empty: `from` must come before `to`".into());
    }
    let bucket_ns = match params.iter().find(|(k, _)| k == "bucket") {
        Some((_, span)) => match crate::store::parse_since(span) {
            Ok(b) if b >= 1_000_000_000 && (to - from) / b <= 10_000 => b,
            Ok(_) => return bad_request(format!("bucket: `{span}` is under 1s or makes over 10000 buckets")),
            Err(e) => return bad_request(format!("bucket: {e}")),
        },
        None => Histogram::bucket_for(to - from),
    };
    match console.read(move |store| store.histogram(&query, bucket_ns)).await {
        Ok(rows) => {
            let timeline = Histogram::dense(from, to, bucket_ns, &rows);
            let buckets: Vec<serde_json::Value> = timeline
                .buckets
                .iter()
                .map(|(start, counts)| {
                    let by_priority: serde_json::Map<String, serde_json::Value> = counts
                        .iter()
                        .zip(crate::rules::Priority::ALL)
                        .filter(|(n, _)| **n > 0)
                        .map(|(n, p)| (p.to_string(), (*n).into()))
                        .collect();
                    serde_json::json!({
                        "start": crate::rules::format_iso8601(*start),
                        "alerts": counts.iter().sum::<u64>(),
                        "by_priority": by_priority,
                    })
                })
                .collect();
            Json(serde_json::json!({"bucket_seconds": bucket_ns / 1_000_000_000, "buckets": buckets})).into_response()
        }
        Err(e) => server_error(e),
    }
}

/// The alerts the filters select as they are stored, as server-sent events: `alert` events
/// (Falco's JSON alert with its `id`, the event's id), from now on, or after the alert of
/// `Last-Event-ID` when a client reconnects; a `skipped` event when more than 1,000 arrived
/// within a second (the tail goes on from the newest of them). Ends when the client goes.
async fn api_tail(State(console): State<Arc<Console>>, headers: HeaderMap, UrlQuery(params): Params) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    if !console.api_allowed(&headers).await {
        return unauthorized();
    }
    let query = match params::query_of(&params) {
        Ok(q) => q,
        Err(e) => return bad_request(e),
    };
    let Ok(permit) = console.tails.clone().try_acquire_owned() else {
        let error = Json(serde_json::json!({"error": format!("{MAX_TAILS} live tails are open: try again later")}));
        return (StatusCode::SERVICE_UNAVAILABLE, error).into_response();
    };
    let resume = headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<i64>().ok());
    let start = match resume {
        Some(id) => Ok(id),
        // From now: after the newest alert stored.
        None => console.read(|store| Tail::newest_id(store)).await,
    };
    let mut tail = match start {
        Ok(id) => Tail::after(query, id),
        Err(e) => return server_error(e),
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Event, std::convert::Infallible>>(TAIL_BATCH);
    tokio::spawn(async move {
        let _permit = permit;
        let mut ticks = tokio::time::interval(TAIL_INTERVAL);
        loop {
            ticks.tick().await;
            if tx.is_closed() {
                return;
            }
            let q = tail.query();
            let page = match console.read(move |store| store.search(&q)).await {
                Ok(page) => page,
                Err(e) => {
                    log::warn!("ui: a live tail's search failed: {e}");
                    continue;
                }
            };
            let (alerts, skipped) = tail.advance(page);
            if skipped {
                let skipped = Event::default()
                    .event("skipped")
                    .data(format!("over {TAIL_BATCH} alerts in a second: skipping ahead"));
                if tx.send(Ok(skipped)).await.is_err() {
                    return;
                }
            }
            for alert in alerts {
                let event = Event::default().event("alert").id(alert.id.to_string()).data(alert.to_json().to_string());
                if tx.send(Ok(event)).await.is_err() {
                    return;
                }
            }
        }
    });
    Sse::new(tokio_stream::wrappers::ReceiverStream::new(rx)).keep_alive(KeepAlive::default()).into_response()
}

/// A CSV cell: quoted when it must be, and a leading `= + - @` made inert, since alert text
/// comes from the watched programs and spreadsheets run formulas.
fn csv_cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) { format!("'{s}") } else { s.to_owned() };
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s }
}

async fn api_export(State(console): State<Arc<Console>>, headers: HeaderMap, UrlQuery(params): Params) -> Response {
    if !console.api_allowed(&headers).await {
        return unauthorized();
    }
    let csv = match params.iter().find(|(k, _)| k == "format").map_or("jsonl", |(_, v)| v.as_str()) {
        "jsonl" => false,
        "csv" => true,
        other => return bad_request(format!("format: `{other}`, expected jsonl or csv")),
    };
    let query = match params::query_of(&params) {
        Ok(q) => Query { limit: EXPORT_MAX, ..q },
        Err(e) => return bad_request(e),
    };
    let page = match console.read(move |store| store.search(&query)).await {
        Ok(page) => page,
        Err(e) => return server_error(e),
    };
    let mut body = String::new();
    if csv {
        body.push_str("id,time,priority,rule,source,node,container,image,namespace,pod,output\r\n");
    }
    for a in &page.alerts {
        if csv {
            let c = &a.container;
            let cells = [
                a.id.to_string(),
                crate::rules::format_iso8601(a.time_ns),
                a.priority.to_string(),
                a.rule.clone(),
                a.source.clone(),
                a.hostname.clone(),
                c.container().unwrap_or_default().to_owned(),
                c.image.clone().unwrap_or_default(),
                c.namespace.clone().unwrap_or_default(),
                c.pod.clone().unwrap_or_default(),
                a.output.clone(),
            ];
            body.push_str(&cells.iter().map(|c| csv_cell(c)).collect::<Vec<_>>().join(","));
            body.push_str("\r\n");
        } else {
            body.push_str(&a.to_json().to_string());
            body.push('\n');
        }
    }
    let (kind, name) =
        if csv { ("text/csv; charset=utf-8", "alerts.csv") } else { ("application/x-ndjson", "alerts.jsonl") };
    let mut response = ([(header::CONTENT_TYPE, kind)], body).into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    // More than one export holds: where the next one starts.
    if let Some(next) = page.next
        && let Ok(v) = HeaderValue::from_str(&next.to_string())
    {
        headers.insert("x-next-cursor", v);
    }
    response
}

#[cfg(test)]
mod tests;
