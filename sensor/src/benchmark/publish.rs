//! Where a node's benchmark reports go, so the console can show them: the node's own alert
//! stores (`store` outputs) and the cluster's consoles (`console` outputs, to
//! `/api/v1/ingest/benchmark` with the node's token). A console also holds the re-runs an
//! operator asked for, which the node asks it for.

use std::time::Duration;

use anyhow::Context as _;

use super::Report;
use crate::outputs::console::{ConsoleApi, ConsoleConfig};
use crate::store::{Engine, PgStore, StoreConfig, benchmark::BenchmarkLog};

/// How often a report that a console did not take is sent again, and after how long.
const CONSOLE_RETRIES: [Duration; 3] = [Duration::from_secs(1), Duration::from_secs(2), Duration::from_secs(4)];

/// A report as a node sends it to a console.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Submission {
    pub node: String,
    /// When the checks ran, nanoseconds since the epoch.
    pub time_ns: u64,
    pub report: Report,
}

/// A store a node keeps its reports in.
enum StoreDestination {
    Sqlite(std::path::PathBuf),
    /// Connected at the first report, then kept.
    Postgres {
        config: StoreConfig,
        connected: Option<Box<PgStore>>,
    },
}

impl StoreDestination {
    /// Keeps `submission` (blocks).
    fn keep(&mut self, submission: &Submission) -> anyhow::Result<()> {
        let Submission { node, time_ns, report } = submission;
        match self {
            StoreDestination::Sqlite(path) => {
                crate::store::benchmark::open_sqlite(path)?.insert_run(node, *time_ns, report)
            }
            StoreDestination::Postgres { config, connected } => {
                let store = match connected {
                    Some(store) => store,
                    None => match &config.engine {
                        Engine::Postgres(pg) => connected.insert(Box::new(PgStore::connect(pg, config)?)),
                        Engine::Sqlite(_) => unreachable!("made from a PostgreSQL store"),
                    },
                };
                store.insert_run(node, *time_ns, report)
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            StoreDestination::Sqlite(path) => path.display().to_string(),
            StoreDestination::Postgres { config, .. } => config.describe(),
        }
    }
}

/// Every place a node's reports go.
pub struct Destinations {
    stores: Vec<StoreDestination>,
    consoles: Vec<ConsoleApi>,
}

/// What publishing one report did: destinations that took it, and that did not.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Published {
    pub kept: u64,
    pub failed: u64,
}

impl Destinations {
    /// The stores and consoles of the configuration's enabled outputs.
    pub fn new<'a>(
        stores: impl IntoIterator<Item = &'a StoreConfig>,
        consoles: impl IntoIterator<Item = &'a ConsoleConfig>,
    ) -> anyhow::Result<Destinations> {
        let stores = stores
            .into_iter()
            .map(|config| match &config.engine {
                Engine::Sqlite(path) => StoreDestination::Sqlite(path.clone()),
                Engine::Postgres(_) => StoreDestination::Postgres { config: config.clone(), connected: None },
            })
            .collect();
        let consoles = consoles
            .into_iter()
            .map(|c| ConsoleApi::new(c).with_context(|| format!("console {}", c.url)))
            .collect::<anyhow::Result<_>>()?;
        Ok(Destinations { stores, consoles })
    }

    /// Whether reports go anywhere.
    pub fn is_empty(&self) -> bool {
        self.stores.is_empty() && self.consoles.is_empty()
    }

    /// Whether a console may ask for re-runs.
    pub fn has_consoles(&self) -> bool {
        !self.consoles.is_empty()
    }

    /// Sends `submission` everywhere: the stores on a blocking thread, the consoles with
    /// retries. A destination that fails is logged and counted; the others still get it.
    pub async fn publish(&mut self, submission: Submission) -> Published {
        let mut published = Published::default();
        let stores = std::mem::take(&mut self.stores);
        let (stores, submission, outcomes) = tokio::task::spawn_blocking(move || {
            let mut stores = stores;
            let outcomes: Vec<_> =
                stores.iter_mut().map(|s| s.keep(&submission).map_err(|e| (s.describe(), e))).collect();
            (stores, submission, outcomes)
        })
        .await
        .expect("keeping a report does not panic");
        self.stores = stores;
        for outcome in outcomes {
            match outcome {
                Ok(()) => published.kept += 1,
                Err((store, e)) => {
                    published.failed += 1;
                    log::warn!("benchmark: keeping the report in the alert store {store} failed: {e:#}");
                }
            }
        }
        for console in &self.consoles {
            match send(console, &submission).await {
                Ok(()) => published.kept += 1,
                Err(e) => {
                    published.failed += 1;
                    log::warn!("benchmark: sending the report to the console {} failed: {e:#}", console.origin());
                }
            }
        }
        published
    }

    /// Whether any console holds a re-run request for `node` (taken by asking). A console
    /// that does not answer is asked again at the next poll.
    pub async fn rerun_requested(&self, node: &str) -> bool {
        let mut requested = false;
        for console in &self.consoles {
            match ask_rerun(console, node).await {
                Ok(asked) => requested |= asked,
                Err(e) => log::debug!("benchmark: asking the console {} for re-runs: {e:#}", console.origin()),
            }
        }
        requested
    }
}

/// Posts `submission` to the console, trying again after 1, 2 and 4 s.
async fn send(console: &ConsoleApi, submission: &Submission) -> anyhow::Result<()> {
    let body = serde_json::to_vec(submission)?;
    let mut waits = CONSOLE_RETRIES.iter();
    loop {
        let attempt = async {
            let response = console
                .request(reqwest::Method::POST, "api/v1/ingest/benchmark")?
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
                .send()
                .await?;
            let status = response.status();
            anyhow::ensure!(status.is_success(), "answered {status}: {}", answer_text(response).await);
            anyhow::Ok(())
        };
        match (attempt.await, waits.next()) {
            (Ok(()), _) => return Ok(()),
            (Err(e), None) => return Err(e.context(format!("after {} tries", CONSOLE_RETRIES.len() + 1))),
            (Err(_), Some(wait)) => tokio::time::sleep(*wait).await,
        }
    }
}

async fn ask_rerun(console: &ConsoleApi, node: &str) -> anyhow::Result<bool> {
    let response = console
        .request(reqwest::Method::POST, "api/v1/ingest/benchmark/rerun")?
        .json(&serde_json::json!({"node": node}))
        .send()
        .await?;
    let status = response.status();
    anyhow::ensure!(status.is_success(), "answered {status}: {}", answer_text(response).await);
    let answer: serde_json::Value = serde_json::from_slice(&ConsoleApi::answer_body(response).await)?;
    Ok(answer["rerun"].as_bool().unwrap_or(false))
}

/// The start of an answer's body, for a message.
async fn answer_text(response: reqwest::Response) -> String {
    let body = ConsoleApi::answer_body(response).await;
    String::from_utf8_lossy(&body).chars().take(200).collect::<String>().trim().to_owned()
}
