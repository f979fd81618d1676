//! `sensor alerts`: the alert store from the command line, for a node without a browser.

use std::{io, path::PathBuf};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use sensor::{
    config::SensorConfig,
    rules::{Priority, format_iso8601},
    store::{
        Cursor, Order, Query, Reader, StoreConfig, StoredAlert, TAIL_BATCH, Tail, now_ns, parse_rfc3339, parse_since,
    },
};

#[derive(Subcommand)]
pub enum AlertsCommand {
    /// Search the stored alerts, newest first; every filter given must hold, and a filter
    /// given several times holds for any of its values.
    ///
    /// The store is read, never written: this works while `sensor run` writes to it.
    Search(SearchArgs),
}

#[derive(Args)]
pub struct SearchArgs {
    /// The store's SQLite file (default: the store of --config, else
    /// /var/lib/sensor/alerts.db).
    #[arg(long, value_name = "FILE", env = "SENSOR_STORE")]
    store: Option<PathBuf>,
    /// The sensor's (or the console's) configuration file, to find the store in: its `store`
    /// output, else `ui.store` (a SQLite file or a PostgreSQL database).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Alerts of the last span: `15m`, `24h`, `7d`.
    #[arg(long, value_name = "SPAN", conflicts_with = "from")]
    since: Option<String>,
    /// Alerts at or after this time (RFC 3339: `2026-12-06T15:04:05Z`, or a date).
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// Alerts before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
    /// Alerts at least this severe (emergency ... debug).
    #[arg(long, value_name = "PRIORITY")]
    priority: Option<String>,
    /// A rule's exact name.
    #[arg(long, value_name = "NAME")]
    rule: Vec<String>,
    /// An event source (`syscall`, `internal`).
    #[arg(long, value_name = "SOURCE")]
    source: Vec<String>,
    /// A rule tag.
    #[arg(long, value_name = "TAG")]
    tag: Vec<String>,
    /// A node: the alert's hostname.
    #[arg(long, value_name = "HOSTNAME")]
    node: Vec<String>,
    /// A container: its name, id, or an id prefix of 12 or more characters.
    #[arg(long, value_name = "CONTAINER")]
    container: Vec<String>,
    /// An image: `repository:tag`, or a repository with any tag.
    #[arg(long, value_name = "IMAGE")]
    image: Vec<String>,
    /// A Kubernetes namespace.
    #[arg(long, value_name = "NAMESPACE")]
    namespace: Vec<String>,
    /// A Kubernetes pod.
    #[arg(long, value_name = "POD")]
    pod: Vec<String>,
    /// Words that must all appear in the alert (output, rule, tags, field values), as
    /// written, any ASCII case; dashes, quotes and slashes are part of a word.
    #[arg(long, value_name = "TEXT")]
    text: Option<String>,
    /// Alerts per page (at most 10000).
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Continue after this position (what the previous page printed as `next page`).
    #[arg(long, value_name = "CURSOR")]
    after: Option<Cursor>,
    /// Oldest first.
    #[arg(long)]
    oldest_first: bool,
    /// One JSON object per line (Falco's JSON alert with the store's `id`), instead of a table.
    #[arg(long)]
    json: bool,
    /// After the page, keep printing the alerts of these filters as they are stored (once a
    /// second), until interrupted.
    #[arg(long, short = 'f', conflicts_with_all = ["after", "oldest_first"])]
    follow: bool,
}

pub fn run(command: AlertsCommand) -> anyhow::Result<()> {
    match command {
        AlertsCommand::Search(args) => search(args),
    }
}

/// The store `args` name.
fn store(args: &SearchArgs) -> anyhow::Result<StoreConfig> {
    if let Some(path) = &args.store {
        return Ok(StoreConfig::at(path));
    }
    let Some(config) = &args.config else { return Ok(StoreConfig::at("/var/lib/sensor/alerts.db")) };
    let config = SensorConfig::load(config)?;
    let outputs: Vec<&StoreConfig> = config.stores().collect();
    match (outputs.as_slice(), &config.ui.store) {
        ([one], _) => Ok((*one).clone()),
        ([], Some(ui)) => Ok(ui.clone()),
        ([], None) => {
            bail!("the configuration has no enabled `store` output and no ui.store; name the file with --store")
        }
        (many, _) => bail!("the configuration has {} `store` outputs; name one with --store", many.len()),
    }
}

fn query(args: &SearchArgs) -> anyhow::Result<Query> {
    let time = |t: &Option<String>| t.as_deref().map(parse_rfc3339).transpose().map_err(anyhow::Error::msg);
    let mut from_ns = time(&args.from)?;
    if let Some(since) = &args.since {
        from_ns = Some(now_ns().saturating_sub(parse_since(since).map_err(anyhow::Error::msg)?));
    }
    let min_priority = match &args.priority {
        Some(p) => Some(Priority::parse(p).with_context(|| {
            format!("unknown priority `{p}`: expected emergency, alert, critical, error, warning, notice, informational or debug")
        })?),
        None => None,
    };
    Ok(Query {
        from_ns,
        to_ns: time(&args.to)?,
        min_priority,
        rules: args.rule.clone(),
        sources: args.source.clone(),
        tags: args.tag.clone(),
        hostnames: args.node.clone(),
        containers: args.container.clone(),
        images: args.image.clone(),
        namespaces: args.namespace.clone(),
        pods: args.pod.clone(),
        text: args.text.clone(),
        order: if args.oldest_first { Order::OldestFirst } else { Order::NewestFirst },
        after: args.after,
        stored_after: None,
        limit: args.limit.max(1),
    })
}

fn search(args: SearchArgs) -> anyhow::Result<()> {
    let query = query(&args)?;
    let reader = Reader::open(&store(&args)?)?;
    let page = reader.read(|store| store.search(&query))?;
    if !super::printed(print_page(&mut io::stdout().lock(), &page.alerts, args.json))? {
        return Ok(());
    }
    match page.next {
        Some(next) => eprintln!("{} alerts; next page: --after {next}", page.alerts.len()),
        None => eprintln!("{} alerts", page.alerts.len()),
    }
    if args.follow {
        let last = match page.alerts.iter().map(|a| a.id).max() {
            Some(id) => id,
            None => reader.read(|store| Tail::newest_id(store))?,
        };
        let mut tail = Tail::after(query, last);
        loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
            let q = tail.query();
            let (alerts, skipped) = tail.advance(reader.read(|store| store.search(&q))?);
            if skipped {
                eprintln!("over {TAIL_BATCH} alerts in a second: skipping ahead");
            }
            if !alerts.is_empty() && !super::printed(print_page(&mut io::stdout().lock(), &alerts, args.json))? {
                return Ok(());
            }
        }
    }
    Ok(())
}

fn print_page(out: &mut impl io::Write, alerts: &[StoredAlert], json: bool) -> io::Result<()> {
    if json {
        for alert in alerts {
            writeln!(out, "{}", alert.to_json())?;
        }
    } else {
        print_table(out, alerts)?;
    }
    out.flush()
}

fn print_table(out: &mut impl io::Write, alerts: &[StoredAlert]) -> io::Result<()> {
    let rows: Vec<[String; 7]> = alerts
        .iter()
        .map(|a| {
            let container = a.container.container().unwrap_or("host").to_owned();
            let pod = a.container.pod_label().unwrap_or_else(|| "-".into());
            [
                a.id.to_string(),
                format_iso8601(a.time_ns),
                a.priority.to_string(),
                a.rule.clone(),
                a.hostname.clone(),
                container,
                pod,
            ]
        })
        .collect();
    const HEADERS: [&str; 7] = ["ID", "TIME", "PRIORITY", "RULE", "NODE", "CONTAINER", "POD"];
    let line = super::table_line(&HEADERS, &rows);
    writeln!(out, "{}", line(&HEADERS))?;
    for (row, alert) in rows.iter().zip(alerts) {
        writeln!(out, "{}", line(&row.each_ref().map(String::as_str)))?;
        writeln!(out, "    {}", alert.output)?;
    }
    Ok(())
}
