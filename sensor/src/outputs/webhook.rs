//! The webhook output: Falco's JSON alert POSTed to a URL, one request per alert, which is
//! what falcosidekick's input (`http://falcosidekick:2801/`) and Falco's `http_output` speak.

use std::{collections::BTreeMap, path::PathBuf, sync::Arc};

use anyhow::Context as _;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, LOCATION};
use serde::{Deserialize, Deserializer, de};

use super::{SendError, Sink, http, secret::SecretSource};
use crate::rules::Alert;

/// `webhook:` settings.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where alerts are POSTed (`http://` or `https://`).
    pub url: String,
    /// Extra request headers: a plain value, or `{env: NAME}` / `{file: PATH}` for a secret.
    #[serde(default)]
    pub headers: BTreeMap<String, HeaderSource>,
    /// PEM bundle of the CAs to trust instead of the system's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) for mutual TLS; needs `client_key`.
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// Redirects followed: `none` (default; a 3xx answer fails the delivery) or
    /// `same_origin` (never to another scheme, host or port, so `headers` stay with the peer).
    #[serde(default)]
    pub redirects: http::Redirects,
}

/// A header value: written in the configuration, or a secret read at start.
#[derive(Clone, Debug, PartialEq)]
pub enum HeaderSource {
    /// The value as written.
    Plain(String),
    /// A secret (`Authorization: {env: WEBHOOK_AUTH}`), never printed.
    Secret(SecretSource),
}

impl<'de> Deserialize<'de> for HeaderSource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct HeaderVisitor;
        impl<'de> de::Visitor<'de> for HeaderVisitor {
            type Value = HeaderSource;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a header value, or {env: NAME} or {file: PATH}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HeaderSource, E> {
                Ok(HeaderSource::Plain(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<HeaderSource, E> {
                Ok(HeaderSource::Plain(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<HeaderSource, E> {
                Ok(HeaderSource::Plain(v.to_string()))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<HeaderSource, A::Error> {
                SecretSource::deserialize(de::value::MapAccessDeserializer::new(map)).map(HeaderSource::Secret)
            }
        }
        d.deserialize_any(HeaderVisitor)
    }
}

/// POSTs alerts to a URL.
pub struct WebhookSink {
    client: reqwest::Client,
    url: reqwest::Url,
    /// `scheme://host:port`, the only part of the URL messages show.
    origin: String,
    headers: HeaderMap,
}

impl WebhookSink {
    /// Checks the URL and headers, reads secrets and TLS files, and builds the client.
    pub fn new(config: &WebhookConfig) -> anyhow::Result<Self> {
        let url = reqwest::Url::parse(&config.url).map_err(|e| anyhow::anyhow!("url: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            anyhow::bail!("url: `{}` is not http or https", url.scheme());
        }
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, source) in &config.headers {
            let header = HeaderName::from_bytes(name.as_bytes()).with_context(|| format!("header name `{name}`"))?;
            let value = match source {
                HeaderSource::Plain(text) => {
                    HeaderValue::from_str(text).with_context(|| format!("header {name}: invalid value"))?
                }
                HeaderSource::Secret(source) => {
                    let secret = source.load().with_context(|| format!("header {name}"))?;
                    let mut value = HeaderValue::from_str(secret.expose()).map_err(|_| {
                        anyhow::anyhow!("header {name}: the value from {} is not a valid header value", source.origin())
                    })?;
                    value.set_sensitive(true);
                    value
                }
            };
            headers.insert(header, value);
        }
        let tls = http::TlsFiles {
            ca_file: config.ca_file.as_deref(),
            client_cert: config.client_cert.as_deref(),
            client_key: config.client_key.as_deref(),
        };
        let client = http::client(tls, config.redirects)?;
        Ok(WebhookSink { client, origin: http::origin(&url), url, headers })
    }

    async fn post(&self, alert: &Alert) -> Result<(), SendError> {
        let body = serde_json::to_vec(&alert.to_output_json()).expect("a JSON value serializes into memory");
        let response = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .body(body)
            .send()
            .await
            .map_err(|e| SendError::retry(format!("POST to {}: {}", self.origin, http::describe(e))))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let header = |name| response.headers().get(name).and_then(|v: &HeaderValue| v.to_str().ok());
        let retry_after = http::retry_after(response.headers());
        // Where a redirect pointed, by origin only (its path or query may hold a secret).
        let redirect = status.is_redirection().then(|| {
            let target = header(LOCATION).and_then(|l| self.url.join(l).ok());
            let target = target.map_or_else(|| "nowhere".to_owned(), |url| http::origin(&url));
            format!(" (a redirect to {target}, not followed)")
        });
        let (answer, truncated) = http::read_bounded(response).await.unwrap_or_default();
        let answer: String = String::from_utf8_lossy(&answer).chars().take(200).collect();
        Err(http::status_error(
            status,
            format!(
                "POST to {} answered {status}{}: {}{}",
                self.origin,
                redirect.unwrap_or_default(),
                answer.trim(),
                http::truncation_note(truncated)
            ),
            retry_after,
        ))
    }
}

impl Sink for WebhookSink {
    async fn send(&mut self, alerts: &[Arc<Alert>]) -> Result<(), SendError> {
        for alert in alerts {
            self.post(alert).await?;
        }
        Ok(())
    }
}
