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

/// A console's API as a node calls it: its address, the node's token, the TLS to use.
#[derive(Clone)]
pub struct ConsoleApi {
    client: reqwest::Client,
    /// The console's address with its base path, ending in `/`.
    base: reqwest::Url,
    origin: String,
    authorization: HeaderValue,
}

impl ConsoleApi {
    /// Checks the URL, reads the token and TLS files, and builds the client.
    pub fn new(config: &ConsoleConfig) -> anyhow::Result<Self> {
        let mut base = reqwest::Url::parse(&config.url).map_err(|e| anyhow::anyhow!("url: {e}"))?;
        anyhow::ensure!(matches!(base.scheme(), "http" | "https"), "url: `{}` is not http or https", base.scheme());
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
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
        Ok(ConsoleApi { client, origin: http::origin(&base), base, authorization })
    }

    /// The console's scheme, host and port, for messages (never the token).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// An answer's body, read up to the bound every output reads answers to.
    pub async fn answer_body(response: reqwest::Response) -> Vec<u8> {
        http::read_bounded(response).await.map(|(body, _)| body).unwrap_or_default()
    }

    /// A request to `path` under the console's base (`api/v1/ingest`), with the token.
    pub fn request(&self, method: reqwest::Method, path: &str) -> anyhow::Result<reqwest::RequestBuilder> {
        let url = self.base.join(path).with_context(|| format!("the console's {path}"))?;
        Ok(self.client.request(method, url).header(AUTHORIZATION, self.authorization.clone()))
    }
}

/// Sends batches to a console.
pub struct ConsoleSink {
    api: ConsoleApi,
}

impl ConsoleSink {
    /// Checks the URL, reads the token and TLS files, and builds the client.
    pub fn new(config: &ConsoleConfig) -> anyhow::Result<Self> {
        Ok(ConsoleSink { api: ConsoleApi::new(config)? })
    }
}

impl Sink for ConsoleSink {
    async fn send(&mut self, alerts: &[Arc<Alert>]) -> Result<(), SendError> {
        let mut body = Vec::new();
        for alert in alerts {
            serde_json::to_writer(&mut body, &alert.to_json()).expect("a JSON value serializes into memory");
            body.push(b'\n');
        }
        let origin = self.api.origin();
        let request =
            self.api.request(reqwest::Method::POST, "api/v1/ingest").map_err(|e| SendError::retry(e.to_string()))?;
        let response = request
            .header(CONTENT_TYPE, "application/x-ndjson")
            .body(body)
            .send()
            .await
            .map_err(|e| SendError::retry(format!("POST to {origin}: {}", http::describe(e))))?;
        let status = response.status();
        let retry_after = http::retry_after(response.headers());
        let (answer, truncated) = http::read_bounded(response).await.unwrap_or_default();
        if status.is_success() {
            // Lines the console could not read are lost whatever is tried again: said once.
            let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap_or_default();
            if let Some(refused) = answer["refused"].as_array().filter(|r| !r.is_empty()) {
                log::warn!("console {}: refused {} of {} alerts: {}", origin, refused.len(), alerts.len(), refused[0]);
            }
            return Ok(());
        }
        let answer: String = String::from_utf8_lossy(&answer).chars().take(200).collect();
        Err(http::status_error(
            status,
            format!("POST to {} answered {status}: {}{}", origin, answer.trim(), http::truncation_note(truncated)),
            retry_after,
        ))
    }
}
