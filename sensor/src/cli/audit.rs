//! `sensor audit`: the Kubernetes audit log (`k8s_audit.store`) from the command line.

use std::{io, path::PathBuf};

use anyhow::bail;
use clap::{Args, Subcommand};
use sensor::{
    config::SensorConfig,
    rules::format_iso8601,
    store::{
        Cursor, Reader, StoreConfig,
        audit::{AuditQuery, AuditRecord},
    },
};

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Search the audit log, newest first: every filter given must hold, and a filter given
    /// several times holds for any of its values ("who deleted this deployment last
    /// Tuesday?": `--verb delete --resource deployments --name web --from 2026-12-01 --to
    /// 2026-12-02`).
    ///
    /// The log is read, never written: this works while the sensor or the console writes it.
    Search(SearchArgs),
}

#[derive(Args)]
pub struct SearchArgs {
    /// The audit log's SQLite file (default: k8s_audit.store of --config, else
    /// /var/lib/sensor/audit.db).
    #[arg(long, value_name = "FILE", env = "SENSOR_AUDIT_STORE")]
    store: Option<PathBuf>,
    /// The sensor's (or the console's) configuration file, to find k8s_audit.store in (a
    /// SQLite file or a PostgreSQL database).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Events of the last span: `15m`, `24h`, `7d`.
    #[arg(long, value_name = "SPAN", conflicts_with = "from")]
    since: Option<String>,
    /// Events at or after this time (RFC 3339: `2026-12-06T15:04:05Z`, or a date).
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// Events before this time (RFC 3339, or a date: its midnight UTC).
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
    /// The user's name (user.username), exactly.
    #[arg(long, value_name = "NAME")]
    user: Vec<String>,
    /// A group of the user (user.groups), exactly.
    #[arg(long, value_name = "GROUP")]
    group: Vec<String>,
    /// A verb: get, list, watch, create, update, patch, delete, deletecollection.
    #[arg(long, value_name = "VERB")]
    verb: Vec<String>,
    /// A resource (objectRef.resource): pods, secrets, deployments...
    #[arg(long, value_name = "RESOURCE")]
    resource: Vec<String>,
    /// A subresource (objectRef.subresource): exec, attach, log, status, scale...
    #[arg(long, value_name = "SUBRESOURCE")]
    subresource: Vec<String>,
    /// A namespace (objectRef.namespace).
    #[arg(long, value_name = "NAMESPACE")]
    namespace: Vec<String>,
    /// An object's name (objectRef.name).
    #[arg(long, value_name = "NAME")]
    name: Vec<String>,
    /// A response code (responseStatus.code): 200, 201, 403...
    #[arg(long, value_name = "CODE")]
    code: Vec<String>,
    /// One of the request's source IPs (sourceIPs).
    #[arg(long, value_name = "IP")]
    source_ip: Vec<String>,
    /// The beginning of the user agent: `kubectl` finds `kubectl/v1.31.0 (linux/amd64) ...`.
    #[arg(long, value_name = "PREFIX")]
    user_agent: Vec<String>,
    /// An audit ID (auditID).
    #[arg(long, value_name = "ID")]
    audit_id: Vec<String>,
    /// Words that must all appear in the event (any string in it: request URI, object
    /// names, annotations...), as written, any ASCII case.
    #[arg(long, value_name = "TEXT")]
    text: Option<String>,
    /// Events per page (at most 10000).
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Continue after this position (what the previous page printed as `next page`).
    #[arg(long, value_name = "CURSOR")]
    after: Option<Cursor>,
    /// Oldest first.
    #[arg(long)]
    oldest_first: bool,
    /// One JSON object per line (the audit event as kube-apiserver sent it, with the log's
    /// `id`), instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Search(args) => search(args),
    }
}

/// The audit log `args` name.
fn store(args: &SearchArgs) -> anyhow::Result<StoreConfig> {
    if let Some(path) = &args.store {
        return Ok(StoreConfig::at(path));
    }
    let Some(config) = &args.config else { return Ok(StoreConfig::at("/var/lib/sensor/audit.db")) };
    match SensorConfig::load(config)?.k8s_audit.store {
        Some(store) => Ok(store),
        None => bail!("{} has no k8s_audit.store; name the audit log's file with --store", config.display()),
    }
}

/// The query of `args`, through the parameters the console's URLs take.
fn query(args: &SearchArgs) -> anyhow::Result<AuditQuery> {
    let mut params: Vec<(String, String)> = Vec::new();
    let mut add = |key: &str, values: &[String]| params.extend(values.iter().map(|v| (key.to_owned(), v.clone())));
    add("since", args.since.as_slice());
    add("from", args.from.as_slice());
    add("to", args.to.as_slice());
    add("user", &args.user);
    add("group", &args.group);
    add("verb", &args.verb);
    add("resource", &args.resource);
    add("subresource", &args.subresource);
    add("namespace", &args.namespace);
    add("name", &args.name);
    add("code", &args.code);
    add("source_ip", &args.source_ip);
    add("user_agent", &args.user_agent);
    add("audit_id", &args.audit_id);
    add("text", args.text.as_slice());
    let mut query = AuditQuery::from_params(&params).map_err(|e| anyhow::anyhow!("--{}", e.replacen('_', "-", 1)))?;
    query.limit = args.limit.max(1);
    query.after = args.after;
    if args.oldest_first {
        query.order = sensor::store::Order::OldestFirst;
    }
    Ok(query)
}

fn search(args: SearchArgs) -> anyhow::Result<()> {
    let query = query(&args)?;
    let reader = Reader::open(&store(&args)?)?;
    let page = reader.read_audit(|log| log.search_audit(&query))?;
    let mut out = io::stdout().lock();
    let written = if args.json { print_json(&mut out, &page.events) } else { print_table(&mut out, &page.events) };
    if !super::printed(written)? {
        return Ok(());
    }
    match page.next {
        Some(next) => eprintln!("{} events; next page: --after {next}", page.events.len()),
        None => eprintln!("{} events", page.events.len()),
    }
    Ok(())
}

fn print_json(out: &mut impl io::Write, events: &[AuditRecord]) -> io::Result<()> {
    for event in events {
        writeln!(out, "{}", event.to_json())?;
    }
    out.flush()
}

fn print_table(out: &mut impl io::Write, events: &[AuditRecord]) -> io::Result<()> {
    const HEADERS: [&str; 9] = ["ID", "TIME", "USER", "VERB", "RESOURCE", "OBJECT", "CODE", "SOURCE IP", "AUDIT ID"];
    let rows: Vec<[String; 9]> = events
        .iter()
        .map(|e| {
            let resource = match (&e.resource, &e.subresource) {
                (Some(r), Some(s)) => format!("{r}/{s}"),
                (Some(r), None) => r.clone(),
                (None, _) => e.text("requestURI").unwrap_or("-").to_owned(),
            };
            let object = match (&e.namespace, &e.name) {
                (Some(ns), Some(name)) => format!("{ns}/{name}"),
                (None, Some(name)) => name.clone(),
                (Some(ns), None) => format!("{ns}/"),
                (None, None) => "-".into(),
            };
            [
                e.id.to_string(),
                format_iso8601(e.time_ns),
                e.user.clone(),
                e.verb.clone(),
                resource,
                object,
                e.code.map_or("-".into(), |c| c.to_string()),
                e.source_ips.first().cloned().unwrap_or_else(|| "-".into()),
                e.audit_id.clone(),
            ]
        })
        .collect();
    let line = super::table_line(&HEADERS, &rows);
    writeln!(out, "{}", line(&HEADERS))?;
    for row in &rows {
        // A value of the event is the requester's choice: no control characters reach the terminal.
        let cells = row.each_ref().map(|c| c.replace(|ch: char| ch.is_control(), "?"));
        writeln!(out, "{}", line(&cells.each_ref().map(String::as_str)))?;
    }
    out.flush()
}
