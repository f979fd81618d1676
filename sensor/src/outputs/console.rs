//! The console output: a node's alerts sent to the cluster's `sensor console`, batched as
//! JSON lines (Falco's JSON alert each) to its `/api/v1/ingest`, with the node's token. The
//! console answers only once it stored them; anything else is retried, and a batch retried
//! after it did commit is stored once (the PostgreSQL store keeps one row per alert).

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context as _;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde::Deserialize;

use super::{SendError, Sink, config::BatchConfig, http, secret::SecretSource};
use crate::rules::Alert;

/// The batch a `console` output uses unless it sets its own: one request a second, or per
/// 1,000 alerts.
pub const CONSOLE_DEFAULT_BATCH: BatchConfig =
    BatchConfig { window: Duration::from_secs(1), max_alerts: std::num::NonZeroUsize::new(1000).expect("non-zero") };

/// `console:` settings.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// The console's address with its base path: `http://sensor-console.sensor:8484`,
    /// `https://console.example.com/sensor`.
    pub url: String,
    /// The node's token, one of the console's `ui.ingest_tokens` (a file or the environment).
    pub token: SecretSource,
    /// PEM bundle of the CAs to trust instead of the system's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) for mutual TLS; needs `client_key`.
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    #[serde(default)]
    pub client_key: Option<PathBuf>,
}

/// Sends batches to a console.
pub struct ConsoleSink {
    client: reqwest::Client,
    ingest: reqwest::Url,
    origin: String,
    authorization: HeaderValue,
}

impl ConsoleSink {
    /// Checks the URL, reads the token and TLS files, and builds the client.
    pub fn new(config: &ConsoleConfig) -> anyhow::Result<Self> {
        let mut url = reqwest::Url::parse(&config.url).map_err(|e| anyhow::anyhow!("url: {e}"))?;
        anyhow::ensure!(matches!(url.scheme(), "http" | "https"), "url: `{}` is not http or https", url.scheme());
        if !url.path().ends_with('/') {
            url.set_path(&format!("{}/", url.path()));
        }
        let ingest = url.join("api/v1/ingest").context("url")?;
        let token = config.token.load().context("token")?;
        let mut authorization = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
            .map_err(|_| anyhow::anyhow!("token: the value from {} is not a valid token", config.token.origin()))?;
        authorization.set_sensitive(true);
        let tls = http::TlsFiles {
            ca_file: config.ca_file.as_deref(),
            client_cert: config.client_cert.as_deref(),
            client_key: config.client_key.as_deref(),
        };
        let client = http::client(tls, http::Redirects::None)?;
        Ok(ConsoleSink { client, origin: http::origin(&ingest), ingest, authorization })
    }
}

impl Sink for ConsoleSink {
    async fn send(&mut self, alerts: &[Arc<Alert>]) -> Result<(), SendError> {
        let mut body = Vec::new();
        for alert in alerts {
            serde_json::to_writer(&mut body, &alert.to_json()).expect("a JSON value serializes into memory");
            body.push(b'\n');
        }
        let response = self
            .client
            .post(self.ingest.clone())
            .header(AUTHORIZATION, self.authorization.clone())
            .header(CONTENT_TYPE, "application/x-ndjson")
            .body(body)
            .send()
            .await
            .map_err(|e| SendError::retry(format!("POST to {}: {}", self.origin, http::describe(e))))?;
        let status = response.status();
        let retry_after = http::retry_after(response.headers());
        let (answer, truncated) = http::read_bounded(response).await.unwrap_or_default();
        if status.is_success() {
            // Lines the console could not read are lost whatever is tried again: said once.
            let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap_or_default();
            if let Some(refused) = answer["refused"].as_array().filter(|r| !r.is_empty()) {
                log::warn!(
                    "console {}: refused {} of {} alerts: {}",
                    self.origin,
                    refused.len(),
                    alerts.len(),
                    refused[0]
                );
            }
            return Ok(());
        }
        let answer: String = String::from_utf8_lossy(&answer).chars().take(200).collect();
        Err(http::status_error(
            status,
            format!("POST to {} answered {status}: {}{}", self.origin, answer.trim(), http::truncation_note(truncated)),
            retry_after,
        ))
    }
}
