//! The console's Benchmark page and API: each node's latest CIS benchmark run, one run's
//! checks, a node's history, downloads (JSON, CSV) and Re-run. Beside `sensor run` the
//! runs are the node's own (its watch keeps them in its store) and Re-run wakes its watch;
//! on the cluster's console the nodes send their runs (`/api/v1/ingest/benchmark`, with a
//! node token), and a Re-run is kept until the node asks for it
//! (`/api/v1/ingest/benchmark/rerun`, every `benchmark.rerun_poll_interval`).

use std::sync::{Arc, atomic::Ordering::Relaxed};

use axum::{
    Form, Json,
    extract::{Path as UrlPath, Query as UrlQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Redirect, Response},
};
use serde::Deserialize;

use super::{Console, Params, bad_request, bearer, csv_cell, html, server_error, unauthorized};
use crate::benchmark::publish::Submission;
use crate::outputs::constant_time_eq;
use crate::store::benchmark::BenchmarkLog;

/// Runs a node's history shows and the API gives at most.
pub const HISTORY_MAX: usize = 500;
/// The largest report a node may send.
pub const REPORT_MAX_BYTES: usize = 1 << 20;

/// Who runs a node's checks again when an operator asks.
pub enum Rerun {
    /// Beside `sensor run`: this node's watch (none when `benchmark.enabled` is off).
    Node(Option<Arc<tokio::sync::Notify>>),
    /// The cluster's console: a request kept until the node asks for it.
    Cluster,
}

impl Console {
    /// Runs `read` on the benchmark runs, on a blocking thread.
    async fn read_runs<T: Send + 'static>(
        &self,
        read: impl FnOnce(&dyn BenchmarkLog) -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T, String> {
        self.read(move |store| read(store.benchmark_log())).await
    }

    /// Asks `node` to run its checks again; what to tell the operator.
    async fn request_rerun(&self, node: String) -> Result<String, (StatusCode, String)> {
        match &self.rerun {
            Rerun::Node(watch) => {
                let here = crate::state::node_name();
                if node != here {
                    return Err((StatusCode::NOT_FOUND, format!("this console runs on node {here}, not on {node}")));
                }
                let Some(watch) = watch else {
                    return Err((StatusCode::CONFLICT, "the benchmark is off here (benchmark.enabled)".into()));
                };
                watch.notify_one();
                Ok(format!("{node} is running its checks again: reload the page in a few seconds."))
            }
            Rerun::Cluster => {
                let known = node.clone();
                let nodes = self.read_runs(|log| log.latest_runs()).await.map_err(internal)?;
                if !nodes.iter().any(|r| r.node == known) {
                    return Err((StatusCode::NOT_FOUND, format!("no node {node} has sent a benchmark report")));
                }
                let Some(ingest) = &self.ingest else { return Err(internal("no store to keep the request".into())) };
                let writer = ingest.writer.clone();
                let asked = node.clone();
                tokio::task::spawn_blocking(move || {
                    writer.with_benchmark_log(|log| log.request_rerun(&asked, crate::store::now_ns()))
                })
                .await
                .map_err(|e| internal(e.to_string()))?
                .map_err(|e| internal(format!("{e:#}")))?;
                Ok(format!(
                    "{node} will run its checks again when it next asks this console (every \
                     benchmark.rerun_poll_interval, 30 s by default): reload the page then."
                ))
            }
        }
    }
}

fn internal(e: String) -> (StatusCode, String) {
    (StatusCode::INTERNAL_SERVER_ERROR, e)
}

/// The Benchmark page: each node's latest run.
pub(super) async fn page(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    UrlQuery(params): Params,
) -> Response {
    let Some((_, session)) = console.session(&headers).await else { return console.to_login() };
    let notice = params.iter().find(|(k, _)| k == "notice").map(|(_, v)| v.clone());
    match console.read_runs(|log| log.latest_runs()).await {
        Ok(nodes) => Html(html::benchmark(&console.base, (&session.user, &session.csrf), &nodes, notice.as_deref()))
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}

/// One run with its node's history.
pub(super) async fn run_page(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<i64>,
) -> Response {
    let Some((_, session)) = console.session(&headers).await else { return console.to_login() };
    let read = console
        .read_runs(move |log| {
            let Some(run) = log.run(id)? else { return Ok(None) };
            let history = log.runs_of(&run.summary.node, HISTORY_MAX)?;
            Ok(Some((run, history)))
        })
        .await;
    match read {
        Ok(Some((run, history))) => {
            Html(html::benchmark_run(&console.base, (&session.user, &session.csrf), &run, &history)).into_response()
        }
        Ok(None) => (StatusCode::NOT_FOUND, format!("no benchmark run {id}\n")).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}

#[derive(Deserialize)]
pub(super) struct RerunForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    node: String,
}

/// The page's Re-run button: asks, then back to the Benchmark page saying what happens.
pub(super) async fn rerun_submit(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Form(form): Form<RerunForm>,
) -> Response {
    let Some((_, session)) = console.session(&headers).await else { return console.to_login() };
    if !constant_time_eq(session.csrf.as_bytes(), form.csrf.as_bytes()) {
        return (StatusCode::FORBIDDEN, "the form's CSRF token is missing or wrong\n").into_response();
    }
    log::info!(
        "ui: `{}` asked node {} to run its benchmark again",
        session.user.escape_debug(),
        form.node.escape_debug()
    );
    let notice = match console.request_rerun(form.node).await {
        Ok(notice) => notice,
        Err((_, e)) => e,
    };
    Redirect::to(&format!("{}/benchmark?notice={}", console.base, super::params::encode(&notice))).into_response()
}

/// `GET /api/v1/benchmark`: each node's latest run.
pub(super) async fn api_nodes(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    if !console.api_allowed(&headers).await {
        return unauthorized();
    }
    match console.read_runs(|log| log.latest_runs()).await {
        Ok(nodes) => {
            Json(serde_json::json!({"nodes": nodes.iter().map(|r| r.to_json()).collect::<Vec<_>>()})).into_response()
        }
        Err(e) => server_error(e),
    }
}

/// `GET /api/v1/benchmark/runs?node=NODE[&limit=N]`: the node's runs, newest first.
pub(super) async fn api_runs(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    UrlQuery(params): Params,
) -> Response {
    if !console.api_allowed(&headers).await {
        return unauthorized();
    }
    let param = |key: &str| params.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let Some(node) = param("node").filter(|n| !n.is_empty()) else {
        return bad_request("node: which node's runs (GET /api/v1/benchmark lists the nodes)".into());
    };
    let limit = match param("limit").map(|l| l.parse::<usize>()) {
        None => 100,
        Some(Ok(n)) if (1..=HISTORY_MAX).contains(&n) => n,
        Some(_) => return bad_request(format!("limit: a number from 1 to {HISTORY_MAX}")),
    };
    match console.read_runs(move |log| log.runs_of(&node, limit)).await {
        Ok(runs) => {
            Json(serde_json::json!({"runs": runs.iter().map(|r| r.to_json()).collect::<Vec<_>>()})).into_response()
        }
        Err(e) => server_error(e),
    }
}

/// `GET /api/v1/benchmark/runs/ID[?format=json|csv]`: one run; with `format`, as a file to
/// keep (CSV: a row per check).
pub(super) async fn api_run(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<i64>,
    UrlQuery(params): Params,
) -> Response {
    if !console.api_allowed(&headers).await {
        return unauthorized();
    }
    let format = params.iter().find(|(k, _)| k == "format").map(|(_, v)| v.as_str());
    if !matches!(format, None | Some("json" | "csv")) {
        return bad_request(format!("format: `{}`, expected json or csv", format.unwrap_or_default()));
    }
    let run = match console.read_runs(move |log| log.run(id)).await {
        Ok(Some(run)) => run,
        Ok(None) => {
            let error = Json(serde_json::json!({"error": format!("no benchmark run {id}")}));
            return (StatusCode::NOT_FOUND, error).into_response();
        }
        Err(e) => return server_error(e),
    };
    let Some(format) = format else { return Json(run.to_json()).into_response() };
    let (kind, body) = if format == "csv" {
        let mut body = String::from("node,time,benchmark,check,text,status,observed,source,expected,remediation\r\n");
        let time = crate::rules::format_iso8601(run.summary.time_ns);
        for c in &run.report.results {
            let cells: [&str; 10] = [
                &run.summary.node,
                &time,
                &run.summary.benchmark,
                &c.id,
                &c.text,
                c.status.as_str(),
                &c.observed,
                &c.source,
                &c.expected,
                &c.remediation,
            ];
            body.push_str(&cells.map(csv_cell).join(","));
            body.push_str("\r\n");
        }
        ("text/csv; charset=utf-8", body)
    } else {
        ("application/json", serde_json::to_string_pretty(&run.to_json()).unwrap_or_default())
    };
    let name: String =
        run.summary.node.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.')).collect();
    let mut response = ([(header::CONTENT_TYPE, kind)], body).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"benchmark-{name}-{id}.{format}\"")) {
        response.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

#[derive(Deserialize)]
pub(super) struct NodeBody {
    node: String,
}

/// `POST /api/v1/benchmark/rerun` `{"node": NODE}`: with an API token (the page has its
/// form, which carries a CSRF token; a session alone may not post here).
pub(super) async fn api_rerun(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Json(body): Json<NodeBody>,
) -> Response {
    if !bearer(&headers).is_some_and(|t| console.tokens.accepts(t)) {
        return unauthorized();
    }
    match console.request_rerun(body.node).await {
        Ok(notice) => Json(serde_json::json!({"requested": true, "message": notice})).into_response(),
        Err((status, e)) => (status, Json(serde_json::json!({"error": e}))).into_response(),
    }
}

/// `POST /api/v1/ingest/benchmark`: a node's report (node token). Answered once kept; the
/// same node and time again is kept once.
pub(super) async fn api_ingest(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let ingest = match console.node_ingest(&headers, "reports") {
        Ok(ingest) => ingest,
        Err(refused) => return *refused,
    };
    let submission: Submission = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => {
            ingest.refused.fetch_add(1, Relaxed);
            return bad_request(format!("not a benchmark report: {e}"));
        }
    };
    if let Err(e) = valid_node(&submission.node) {
        ingest.refused.fetch_add(1, Relaxed);
        return bad_request(e);
    }
    let writer = ingest.writer.clone();
    let kept = tokio::task::spawn_blocking(move || {
        writer.with_benchmark_log(|log| log.insert_run(&submission.node, submission.time_ns, &submission.report))
    })
    .await;
    match kept.map_err(anyhow::Error::from).and_then(|k| k) {
        Ok(()) => {
            ingest.reports.fetch_add(1, Relaxed);
            Json(serde_json::json!({"kept": true})).into_response()
        }
        Err(e) => {
            ingest.failed.fetch_add(1, Relaxed);
            let error = format!("keeping the report failed: {e:#}");
            log::warn!("ui: {error}");
            (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({"error": error}))).into_response()
        }
    }
}

/// `POST /api/v1/ingest/benchmark/rerun` `{"node": NODE}` (node token): whether an operator
/// asked the node to run its checks again; the request is taken.
pub(super) async fn api_ingest_rerun(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Json(body): Json<NodeBody>,
) -> Response {
    let ingest = match console.node_ingest(&headers, "reports") {
        Ok(ingest) => ingest,
        Err(refused) => return *refused,
    };
    if let Err(e) = valid_node(&body.node) {
        return bad_request(e);
    }
    let writer = ingest.writer.clone();
    let taken = tokio::task::spawn_blocking(move || writer.with_benchmark_log(|log| log.take_rerun(&body.node))).await;
    match taken.map_err(anyhow::Error::from).and_then(|t| t) {
        Ok(rerun) => Json(serde_json::json!({"rerun": rerun})).into_response(),
        Err(e) => server_error(format!("{e:#}")),
    }
}

/// A node name as Kubernetes allows them (a DNS subdomain: at most 253 characters).
fn valid_node(node: &str) -> Result<(), String> {
    if node.is_empty() || node.len() > 253 || node.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!("node: `{}` is not a node name", node.escape_debug()));
    }
    Ok(())
}
