//! The console's pages: plain HTML forms and tables, no script (the Content-Security-Policy
//! allows none), readable on a phone-width screen. Every value from an alert is escaped:
//! alerts carry what the watched programs chose (their names, arguments, paths).

use std::fmt::Write as _;

use crate::{
    benchmark::Status,
    html::escape,
    rules::{Priority, format_iso8601},
    store::{
        GroupBy, Histogram, StoredAlert,
        audit::{self, AuditRecord},
        benchmark::{BenchmarkRun, RunSummary},
    },
};

use super::params::{encode, url_encoded, with};

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#222}\
header{background:#1f2937;color:#fff;padding:.5em 1em;display:flex;flex-wrap:wrap;gap:1em;align-items:center}\
header a{color:#fff}header form{margin-left:auto}main{padding:1em}\
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.3em;text-align:left;vertical-align:top}\
.out{font-family:monospace;font-size:.85em;word-break:break-all}\
.p-Emergency,.p-Alert,.p-Critical{color:#fff;background:#b91c1c}.p-Error{color:#fff;background:#dc2626}\
.p-Warning{background:#f59e0b}.p-Notice{background:#93c5fd}.p-Informational,.p-Debug{background:#e5e7eb}\
.pri{padding:0 .3em;border-radius:3px}\
rect.p-Emergency,rect.p-Alert,rect.p-Critical{fill:#b91c1c}rect.p-Error{fill:#dc2626}rect.p-Warning{fill:#f59e0b}\
rect.p-Notice{fill:#93c5fd}rect.p-Informational,rect.p-Debug{fill:#9ca3af}svg.timeline{width:100%;height:8em;border-bottom:1px solid #9ca3af}p.axis{margin:.2em 0 1em;color:#4b5563;font-size:.85em}form.filters{display:flex;flex-wrap:wrap;gap:.5em;margin-bottom:1em}\
form.filters label{display:flex;flex-direction:column;font-size:.8em}.grid{display:flex;flex-wrap:wrap;gap:2em}\
.error{color:#b91c1c}.s-PASS{color:#fff;background:#15803d}.s-FAIL{color:#fff;background:#dc2626}\
.s-WARN{background:#f59e0b}.note{color:#4b5563;overflow-wrap:anywhere}.value{font-family:monospace;overflow-wrap:anywhere}\
#checks{table-layout:fixed}#checks td{overflow-wrap:anywhere}#checks th:nth-child(1){width:38%}\
#checks th:nth-child(2){width:4.5em}#checks th:nth-child(3){width:30%}#checks tr:has(+tr.fix) td{border-bottom:0}tr.fix td{color:#4b5563;font-size:.9em}pre{white-space:pre-wrap;word-break:break-all}\
@media (max-width:40em){#events thead{display:none}#events tr{display:block;border-bottom:1px solid #ddd;padding:.4em 0}\
#events td{display:block;border:0;padding:.1em 0}table#about th,table#about td{display:block;border:0}\
table#about tr{display:block;border-bottom:1px solid #ddd}}";

/// A whole page: `title`, the navigation (with a logout form when `session` is given as
/// `(user, csrf)`), and `body`.
pub fn page(base: &str, title: &str, session: Option<(&str, &str)>, body: &str) -> String {
    page_refreshed(base, title, session, body, None)
}

/// A page the browser reloads every `refresh` seconds (the events' live mode: no script).
fn page_refreshed(base: &str, title: &str, session: Option<(&str, &str)>, body: &str, refresh: Option<u32>) -> String {
    let refresh = refresh.map(|s| format!("<meta http-equiv=\"refresh\" content=\"{s}\">")).unwrap_or_default();
    let nav = match session {
        Some((user, csrf)) => format!(
            "<a href=\"{base}/\">Dashboard</a><a href=\"{base}/events\">Events</a><a href=\"{base}/audit\">Audit</a>\
             <a href=\"{base}/benchmark\">Benchmark</a>\
             <a href=\"{base}/about\">About</a>\
             <form method=\"post\" action=\"{base}/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <span>{}</span> <button type=\"submit\">Log out</button></form>",
            escape(csrf),
            escape(user)
        ),
        None => String::new(),
    };
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         {refresh}<title>{} · sensor</title><style>{STYLE}</style></head>\
         <body><header><strong>sensor</strong>{nav}</header><main>{body}</main></body></html>",
        escape(title)
    )
}

pub fn login(base: &str, csrf: &str, message: Option<&str>) -> String {
    let message = message.map(|m| format!("<p class=\"error\" id=\"message\">{}</p>", escape(m))).unwrap_or_default();
    let body = format!(
        "<h1>Log in</h1>{message}<form method=\"post\" action=\"{base}/login\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <p><label>User <input name=\"user\" id=\"user\" autocomplete=\"username\" required></label></p>\
         <p><label>Password <input name=\"password\" id=\"password\" type=\"password\" autocomplete=\"current-password\" required></label></p>\
         <p><button type=\"submit\" id=\"login\">Log in</button></p></form>",
        escape(csrf)
    );
    page(base, "Log in", None, &body)
}

fn priority_badge(p: Priority) -> String {
    format!("<span class=\"pri p-{p}\">{p}</span>")
}

fn placement(a: &StoredAlert) -> (String, String) {
    (a.container.container().unwrap_or("host").to_owned(), a.container.pod_label().unwrap_or_default())
}

/// The filter form, filled from `params`.
fn filter_form(base: &str, params: &[(String, String)]) -> String {
    let value = |key: &str| params.iter().find(|(k, _)| k == key).map(|(_, v)| escape(v)).unwrap_or_default();
    let mut form = format!("<form class=\"filters\" method=\"get\" action=\"{base}/events\" id=\"filters\">");
    for (key, label) in [
        ("since", "Since (15m, 24h, 7d)"),
        ("from", "From (RFC 3339)"),
        ("to", "To"),
        ("rule", "Rule"),
        ("text", "Text"),
        ("node", "Node"),
        ("container", "Container"),
        ("image", "Image"),
        ("namespace", "Namespace"),
        ("pod", "Pod"),
        ("tag", "Tag"),
        ("source", "Source"),
    ] {
        let _ = write!(form, "<label>{label}<input name=\"{key}\" id=\"f-{key}\" value=\"{}\"></label>", value(key));
    }
    let chosen = value("priority");
    form.push_str(
        "<label>Priority at least<select name=\"priority\" id=\"f-priority\"><option value=\"\">any</option>",
    );
    for p in Priority::ALL.map(|p| p.as_str().to_ascii_lowercase()) {
        let selected = if chosen.eq_ignore_ascii_case(&p) { " selected" } else { "" };
        let _ = write!(form, "<option value=\"{p}\"{selected}>{p}</option>");
    }
    form.push_str("</select></label><button type=\"submit\" id=\"search\">Search</button></form>");
    form
}

/// The events page: the form, the table, the next page's link and the export links.
pub fn events(
    base: &str,
    session: (&str, &str),
    params: &[(String, String)],
    alerts: &[StoredAlert],
    next: Option<String>,
    error: Option<&str>,
) -> String {
    let live = params.iter().any(|(k, v)| k == "live" && v == "1");
    let others: Vec<(String, String)> = params.iter().filter(|(k, _)| k != "live").cloned().collect();
    let mut body = String::from("<h1>Events</h1>");
    body.push_str(&filter_form(base, &others));
    // Live: the newest alerts of these filters, reloaded every 5 s.
    let toggle = if live {
        let stop = url_encoded(others.iter().filter(|(_, v)| !v.trim().is_empty()));
        format!("<p id=\"live\">Live: reloading every 5 s. <a href=\"{base}/events?{}\">Stop</a></p>", escape(&stop))
    } else {
        format!("<p><a id=\"live\" href=\"{base}/events?{}\">Live</a></p>", escape(&with(&others, "live", "1")))
    };
    body.push_str(&toggle);
    if let Some(e) = error {
        let _ = write!(body, "<p class=\"error\" id=\"message\">{}</p>", escape(e));
    }
    body.push_str(
        "<table id=\"events\"><thead><tr><th>Time</th><th>Priority</th><th>Rule</th><th>Output</th>\
         <th>Container</th><th>Pod</th><th>Node</th></tr></thead><tbody>",
    );
    for a in alerts {
        let (container, pod) = placement(a);
        let _ = write!(
            body,
            "<tr class=\"alert\" data-id=\"{id}\"><td><a href=\"{base}/events/{id}\">{}</a></td><td>{}</td><td>{}</td>\
             <td class=\"out\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            format_iso8601(a.time_ns),
            priority_badge(a.priority),
            escape(&a.rule),
            escape(&a.output),
            escape(&container),
            escape(&pod),
            escape(&a.hostname),
            id = a.id,
        );
    }
    body.push_str("</tbody></table>");
    if alerts.is_empty() && error.is_none() {
        body.push_str("<p id=\"empty\">No alerts match.</p>");
    }
    if let Some(next) = next {
        let _ = write!(
            body,
            "<p><a id=\"next\" href=\"{base}/events?{}\">Next page</a></p>",
            escape(&with(params, "after", &next))
        );
    }
    let export = |format: &str| escape(&with(params, "format", format));
    let _ = write!(
        body,
        "<p>Export: <a href=\"{base}/api/v1/export?{}\">JSON lines</a> · <a href=\"{base}/api/v1/export?{}\">CSV</a></p>",
        export("jsonl"),
        export("csv")
    );
    page_refreshed(base, "Events", Some(session), &body, live.then_some(5))
}

/// One alert: its columns, every output field, its tags and the raw JSON.
pub fn detail(base: &str, session: (&str, &str), a: &StoredAlert) -> String {
    let (container, pod) = placement(a);
    let mut body = format!(
        "<h1>{}</h1><p>{} · {} · node {} · container {} {}</p><p class=\"out\" id=\"output\">{}</p>",
        escape(&a.rule),
        priority_badge(a.priority),
        format_iso8601(a.time_ns),
        escape(&a.hostname),
        escape(&container),
        if pod.is_empty() { String::new() } else { format!("· pod {}", escape(&pod)) },
        escape(&a.output)
    );
    body.push_str("<h2>Fields</h2><table id=\"fields\">");
    if let Some(fields) = a.json["output_fields"].as_object() {
        for (k, v) in fields {
            let v = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => "<NA>".into(),
                other => other.to_string(),
            };
            let _ = write!(body, "<tr><th>{}</th><td class=\"out\">{}</td></tr>", escape(k), escape(&v));
        }
    }
    body.push_str("</table><h2>Tags</h2><p id=\"tags\">");
    for t in &a.tags {
        let _ = write!(body, "<a href=\"{base}/events?tag={}\">{}</a> ", encode(t), escape(t));
    }
    let raw = serde_json::to_string_pretty(&a.json).unwrap_or_default();
    let _ = write!(body, "</p><h2>JSON</h2><pre id=\"raw\">{}</pre>", escape(&raw));
    page(base, &a.rule, Some(session), &body)
}

/// The dashboard: counts by each grouping over the last `since`, each linking to its events.
pub fn dashboard(
    base: &str,
    session: (&str, &str),
    since: &str,
    timeline: &Histogram,
    counts: &[(GroupBy, Vec<(String, u64)>)],
) -> String {
    let mut body = format!(
        "<h1>Dashboard</h1><form method=\"get\" action=\"{base}/\"><label>Last <input name=\"since\" value=\"{}\" size=\"5\"></label> \
         <button type=\"submit\">Show</button></form>{}<div class=\"grid\">",
        escape(since),
        timeline_svg(base, timeline)
    );
    for (by, rows) in counts {
        let _ = write!(body, "<section id=\"by-{}\"><h2>By {}</h2><table>", by.name(), by.name());
        for (value, n) in rows.iter().take(10) {
            let filter = match by {
                GroupBy::Hostname => "node",
                other => other.name(),
            };
            let link = format!("{base}/events?since={}&{filter}={}", encode(since), encode(value));
            let label = if *by == GroupBy::Priority {
                priority_badge(Priority::parse(value).unwrap_or(Priority::Debug))
            } else {
                escape(value)
            };
            let _ = write!(body, "<tr><td><a href=\"{}\">{label}</a></td><td>{n}</td></tr>", escape(&link));
        }
        if rows.is_empty() {
            body.push_str("<tr><td>none</td></tr>");
        }
        body.push_str("</table></section>");
    }
    body.push_str("</div>");
    page(base, "Dashboard", Some(session), &body)
}

/// The timeline: a bar per bucket, its alerts stacked by priority (the most severe at the
/// bottom), scaled to the busiest bucket; a bar leads to its alerts. Drawn here, so the page
/// needs no script and the browser never holds the alerts themselves.
fn timeline_svg(base: &str, h: &Histogram) -> String {
    const BAR: usize = 10;
    const HEIGHT: u64 = 100;
    let busiest = h.buckets.iter().map(|(_, c)| c.iter().sum::<u64>()).max().unwrap_or(0).max(1);
    let width = h.buckets.len().max(1) * BAR;
    let mut svg = format!(
        "<svg class=\"timeline\" id=\"timeline\" viewBox=\"0 0 {width} {HEIGHT}\" preserveAspectRatio=\"none\" \
         role=\"img\" aria-label=\"alerts over time, by priority\">"
    );
    for (i, (start, counts)) in h.buckets.iter().enumerate() {
        let total: u64 = counts.iter().sum();
        if total == 0 {
            continue;
        }
        let (from, to) = (format_iso8601(*start), format_iso8601(start + h.bucket_ns));
        let link = format!("{base}/events?from={}&to={}", encode(&from), encode(&to));
        let _ = write!(svg, "<a href=\"{}\"><title>{} {total} alerts</title>", escape(&link), escape(&from));
        let mut top = HEIGHT;
        for (level, n) in counts.iter().enumerate().filter(|(_, n)| **n > 0) {
            let height = (n * HEIGHT).div_ceil(busiest).max(1);
            top = top.saturating_sub(height);
            let _ = write!(
                svg,
                "<rect class=\"p-{}\" x=\"{}\" y=\"{top}\" width=\"{}\" height=\"{height}\"/>",
                Priority::ALL[level],
                i * BAR,
                BAR - 2
            );
        }
        svg.push_str("</a>");
    }
    svg.push_str("</svg>");
    let (first, last) = (h.buckets.first().map_or(0, |b| b.0), h.buckets.last().map_or(0, |b| b.0 + h.bucket_ns));
    let _ = write!(
        svg,
        "<p class=\"axis\" id=\"timeline-axis\">{} to {}, a bar per {}; the busiest holds {busiest} alerts</p>",
        format_iso8601(first).get(..16).unwrap_or_default(),
        format_iso8601(last).get(..16).unwrap_or_default(),
        span_text(h.bucket_ns)
    );
    svg
}

/// A bucket width as an operator says it: `15 min`, `3 h`, `1 d`.
fn span_text(ns: u64) -> String {
    let s = ns / 1_000_000_000;
    match s {
        s if s % 86_400 == 0 => format!("{} d", s / 86_400),
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// The audit log's page: the filter form (every search parameter), a table of events (each
/// leading to its detail), the next page's link.
pub fn audit(
    base: &str,
    session: (&str, &str),
    params: &[(String, String)],
    events: &[AuditRecord],
    next: Option<String>,
    error: Option<&str>,
) -> String {
    let value = |key: &str| params.iter().find(|(k, _)| k == key).map(|(_, v)| escape(v)).unwrap_or_default();
    let mut body =
        format!("<h1>Audit</h1><form class=\"filters\" method=\"get\" action=\"{base}/audit\" id=\"filters\">");
    for (key, hint) in audit::PARAMETERS.iter().filter(|(k, _)| !matches!(*k, "after" | "limit" | "order")) {
        let _ = write!(
            body,
            "<label title=\"{}\">{}<input name=\"{key}\" id=\"f-{key}\" value=\"{}\"></label>",
            escape(hint),
            key.replace('_', " "),
            value(key)
        );
    }
    body.push_str("<button type=\"submit\" id=\"search\">Search</button></form>");
    if let Some(e) = error {
        let _ = write!(body, "<p class=\"error\" id=\"message\">{}</p>", escape(e));
    }
    body.push_str(
        "<table id=\"events\"><thead><tr><th>Time</th><th>User</th><th>Verb</th><th>Resource</th><th>Object</th>\
         <th>Code</th><th>Source IP</th><th>User agent</th></tr></thead><tbody>",
    );
    for e in events {
        let resource = match (&e.resource, &e.subresource) {
            (Some(r), Some(s)) => format!("{r}/{s}"),
            (r, _) => r.clone().unwrap_or_default(),
        };
        let object = match (&e.namespace, &e.name) {
            (Some(ns), Some(n)) => format!("{ns}/{n}"),
            (ns, n) => n.clone().or(ns.clone()).unwrap_or_default(),
        };
        let _ = write!(
            body,
            "<tr class=\"audit\" data-id=\"{id}\" data-audit-id=\"{}\"><td><a href=\"{base}/audit/{id}\">{}</a></td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"out\">{}</td></tr>",
            escape(&e.audit_id),
            format_iso8601(e.time_ns),
            escape(&e.user),
            escape(&e.verb),
            escape(&resource),
            escape(&object),
            e.code.map_or(String::new(), |c| c.to_string()),
            escape(&e.source_ips.join(", ")),
            escape(e.user_agent.as_deref().unwrap_or_default()),
            id = e.id,
        );
    }
    body.push_str("</tbody></table>");
    if events.is_empty() && error.is_none() {
        body.push_str("<p id=\"empty\">No audit events match.</p>");
    }
    if let Some(next) = next {
        let _ = write!(
            body,
            "<p><a id=\"next\" href=\"{base}/audit?{}\">Next page</a></p>",
            escape(&with(params, "after", &next))
        );
    }
    page(base, "Audit", Some(session), &body)
}

/// One audit event: the request, the object, the user, where it came from, the answer and
/// the stage timestamps, then its JSON whole.
pub fn audit_detail(base: &str, session: (&str, &str), e: &AuditRecord) -> String {
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let json = &e.json;
    let object = &json["objectRef"];
    let status = &json["responseStatus"];
    let rows: [(&str, &str, String); 18] = [
        ("audit-id", "Audit ID", e.audit_id.clone()),
        ("stage", "Stage", e.stage.clone()),
        ("level", "Level", e.level.clone()),
        ("verb", "Verb", e.verb.clone()),
        ("request-uri", "Request URI", text(&json["requestURI"])),
        ("user", "User", e.user.clone()),
        ("groups", "Groups", e.groups.join(", ")),
        ("impersonated", "Impersonated user", text(&json["impersonatedUser"]["username"])),
        ("api-group", "Object API group", text(&object["apiGroup"])),
        ("api-version", "Object API version", text(&object["apiVersion"])),
        ("resource", "Object resource", text(&object["resource"])),
        ("subresource", "Object subresource", text(&object["subresource"])),
        ("namespace", "Object namespace", text(&object["namespace"])),
        ("name", "Object name", text(&object["name"])),
        ("source-ips", "Source IPs", e.source_ips.join(", ")),
        ("user-agent", "User agent", e.user_agent.clone().unwrap_or_default()),
        (
            "status",
            "Response status",
            [text(&status["code"]), text(&status["status"]), text(&status["reason"]), text(&status["message"])]
                .into_iter()
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
                .join(" "),
        ),
        (
            "timestamps",
            "Request received / stage",
            format!("{} / {}", text(&json["requestReceivedTimestamp"]), text(&json["stageTimestamp"])),
        ),
    ];
    let mut body = format!(
        "<h1>{} {}</h1><p>{} · {}</p><table id=\"audit-detail\">",
        escape(&e.verb),
        escape(json["requestURI"].as_str().unwrap_or_default()),
        format_iso8601(e.time_ns),
        escape(&e.user)
    );
    for (id, label, value) in rows {
        let _ = write!(body, "<tr><th>{label}</th><td class=\"out\" id=\"d-{id}\">{}</td></tr>", escape(&value));
    }
    let raw = serde_json::to_string_pretty(json).unwrap_or_default();
    let _ = write!(body, "</table><h2>JSON</h2><pre id=\"raw\">{}</pre>", escape(&raw));
    page(base, "Audit event", Some(session), &body)
}

fn status_badge(status: Status) -> String {
    let s = status.as_str();
    format!("<span class=\"pri s-{s}\">{s}</span>")
}

/// The totals of a run, each a badge.
fn totals(r: &RunSummary) -> String {
    format!(
        "<span class=\"pri s-PASS\">{} PASS</span> <span class=\"pri s-FAIL\">{} FAIL</span> \
         <span class=\"pri s-WARN\">{} WARN</span>",
        r.pass, r.fail, r.warn
    )
}

/// The form that asks `node` to run its checks again.
fn rerun_form(base: &str, csrf: &str, node: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{base}/benchmark/rerun\" class=\"rerun\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"node\" value=\"{}\">\
         <button type=\"submit\">Re-run</button></form>",
        escape(csrf),
        escape(node)
    )
}

/// The Benchmark page: each node's latest run, with a link to it and a Re-run button.
pub fn benchmark(base: &str, session: (&str, &str), nodes: &[RunSummary], notice: Option<&str>) -> String {
    let mut body = String::from("<h1>Node benchmark</h1>");
    if let Some(notice) = notice {
        let _ = write!(body, "<p id=\"notice\">{}</p>", escape(notice));
    }
    if nodes.is_empty() {
        body.push_str(
            "<p id=\"none\">No node has sent a benchmark report yet: nodes run the CIS kubelet checks at start and \
             every <code>benchmark.interval</code> when a kubelet runs on them.</p>",
        );
        return page(base, "Benchmark", Some(session), &body);
    }
    body.push_str(
        "<table id=\"nodes\"><thead><tr><th>Node</th><th>Benchmark</th><th>Checked</th><th>Result</th><th></th>\
         </tr></thead><tbody>",
    );
    for r in nodes {
        let _ = write!(
            body,
            "<tr><td><a href=\"{base}/benchmark/runs/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            r.id,
            escape(&r.node),
            escape(&r.benchmark),
            format_iso8601(r.time_ns),
            totals(r),
            rerun_form(base, session.1, &r.node)
        );
    }
    body.push_str("</tbody></table>");
    page(base, "Benchmark", Some(session), &body)
}

/// One run: every check with what was observed where, the remediation of each that did not
/// pass, the downloads, and the node's earlier runs.
pub fn benchmark_run(base: &str, session: (&str, &str), run: &BenchmarkRun, history: &[RunSummary]) -> String {
    let (r, report) = (&run.summary, &run.report);
    let mut body = format!(
        "<h1>{} · {}</h1><p>{} · kubelet pid {} · checked {} · {}</p>{}\
         <p><a href=\"{base}/api/v1/benchmark/runs/{}?format=json\" id=\"download-json\">Download JSON</a> · \
         <a href=\"{base}/api/v1/benchmark/runs/{}?format=csv\" id=\"download-csv\">Download CSV</a></p>\
         <table id=\"checks\"><thead><tr><th>Check</th><th>Status</th><th>Observed</th><th>Expected</th>\
         </tr></thead><tbody>",
        escape(&r.node),
        escape(&r.benchmark),
        escape(&report.title),
        report.kubelet_pid,
        format_iso8601(r.time_ns),
        totals(r),
        rerun_form(base, session.1, &r.node),
        r.id,
        r.id,
    );
    for c in &report.results {
        let _ = write!(
            body,
            "<tr id=\"check-{}\"><td>{} {}</td><td>{}</td><td><span class=\"value\">{}</span><br>\
             <span class=\"note\">{}</span></td><td>{}</td></tr>",
            escape(&c.id),
            escape(&c.id),
            escape(&c.text),
            status_badge(c.status),
            escape(&c.observed),
            escape(&c.source),
            escape(&c.expected),
        );
        if c.status != Status::Pass {
            let _ = write!(
                body,
                "<tr class=\"fix\" id=\"fix-{}\"><td></td><td colspan=\"3\">Remediation: {}</td></tr>",
                escape(&c.id),
                escape(&c.remediation)
            );
        }
    }
    body.push_str("</tbody></table>");
    for note in &report.notes {
        let _ = write!(body, "<p class=\"note\">note: {}</p>", escape(note));
    }
    body.push_str("<h2>History</h2><table id=\"history\"><tbody>");
    for h in history {
        let current = if h.id == r.id { " (shown)" } else { "" };
        let _ = write!(
            body,
            "<tr><td><a href=\"{base}/benchmark/runs/{}\">{}</a>{current}</td><td>{}</td><td>{}</td></tr>",
            h.id,
            format_iso8601(h.time_ns),
            escape(&h.benchmark),
            totals(h)
        );
    }
    body.push_str("</tbody></table>");
    page(base, &format!("Benchmark of {}", r.node), Some(session), &body)
}

/// The About page: version and the store's usage.
pub fn about(base: &str, session: (&str, &str), facts: &[(&str, String)]) -> String {
    let mut body = String::from("<h1>About</h1><table id=\"about\">");
    for (k, v) in facts {
        let _ = write!(body, "<tr><th>{}</th><td>{}</td></tr>", escape(k), escape(v));
    }
    body.push_str("</table>");
    page(base, "About", Some(session), &body)
}

/// A page saying what went wrong, with a way back.
pub fn message(base: &str, title: &str, text: &str) -> String {
    page(
        base,
        title,
        None,
        &format!(
            "<h1>{}</h1><p id=\"message\">{}</p><p><a href=\"{base}/login\">Log in</a></p>",
            escape(title),
            escape(text)
        ),
    )
}
