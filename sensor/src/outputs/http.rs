//! What the HTTP outputs (Telegram, webhook) share: the client with its TLS and redirect
//! settings, bounded reads of answers, and error text that never carries a URL (Telegram's
//! holds the bot token, webhook URLs often a key).
//!
//! A peer is not trusted to behave: it cannot send the client elsewhere (no redirects, or
//! same-origin ones only, so configured headers never reach another origin), make it read
//! an endless body, or mute it with a long `Retry-After` (the worker caps that).

use std::{error::Error as _, path::Path, time::Duration};

use anyhow::{Context as _, bail};
use reqwest::{StatusCode, redirect};
use serde::Deserialize;

use super::SendError;

/// The client's own `User-Agent`.
const USER_AGENT: &str = concat!("sensor/", env!("CARGO_PKG_VERSION"));

/// Custom trust and client certificate for an HTTPS peer.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TlsFiles<'a> {
    /// PEM bundle of the only CAs trusted (default: the system's roots).
    pub ca_file: Option<&'a Path>,
    /// PEM client certificate chain, for mutual TLS.
    pub client_cert: Option<&'a Path>,
    /// PEM private key of `client_cert`.
    pub client_key: Option<&'a Path>,
}

/// Which redirects a client follows.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Redirects {
    /// None: a 3xx answer is a failed delivery that names where it pointed.
    #[default]
    None,
    /// Those to the same scheme, host and port only (at most [`MAX_REDIRECTS`]), so headers
    /// with secrets never go to another origin.
    SameOrigin,
}

/// Redirects followed in a row at most, with [`Redirects::SameOrigin`].
const MAX_REDIRECTS: usize = 5;

impl Redirects {
    fn policy(self) -> redirect::Policy {
        match self {
            Redirects::None => redirect::Policy::none(),
            Redirects::SameOrigin => redirect::Policy::custom(|attempt| {
                let first = attempt.previous().first().map(reqwest::Url::origin);
                if attempt.previous().len() > MAX_REDIRECTS {
                    attempt.error("too many redirects")
                } else if first.is_some_and(|origin| origin == attempt.url().origin()) {
                    attempt.follow()
                } else {
                    attempt.stop()
                }
            }),
        }
    }
}

/// The most of an answer's body read: enough for any error message or API reply.
pub(crate) const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The body of `response`, read up to [`MAX_ANSWER_BYTES`]; `true` with it when the body
/// was longer (the rest is left unread).
pub(crate) async fn read_bounded(mut response: reqwest::Response) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_ANSWER_BYTES - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}

/// What ends an answer's text when its body was cut at [`MAX_ANSWER_BYTES`].
pub(crate) fn truncation_note(truncated: bool) -> String {
    if truncated { format!(" [answer over {} KiB, read no further]", MAX_ANSWER_BYTES / 1024) } else { String::new() }
}

/// Builds an HTTP client trusting what `tls` says and following `redirects`.
pub(crate) fn client(tls: TlsFiles<'_>, redirects: Redirects) -> anyhow::Result<reqwest::Client> {
    super::install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(Duration::from_secs(10))
        .redirect(redirects.policy());
    if let Some(path) = tls.ca_file {
        let pem = std::fs::read(path).with_context(|| format!("reading ca_file {}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("ca_file {} is not a PEM certificate bundle", path.display()))?;
        if certs.is_empty() {
            bail!("ca_file {} holds no certificate", path.display());
        }
        builder = builder.tls_certs_only(certs);
    }
    match (tls.client_cert, tls.client_key) {
        (Some(cert), Some(key)) => {
            let mut pem = std::fs::read(cert).with_context(|| format!("reading client_cert {}", cert.display()))?;
            pem.push(b'\n');
            pem.extend(std::fs::read(key).with_context(|| format!("reading client_key {}", key.display()))?);
            let identity = reqwest::Identity::from_pem(&pem).with_context(|| {
                format!("client_cert {} and client_key {} are not a PEM chain and key", cert.display(), key.display())
            })?;
            builder = builder.identity(identity);
        }
        (None, None) => {}
        _ => bail!("client_cert and client_key go together"),
    }
    builder.build().context("building the HTTP client")
}

/// A request error as text: its causes, never its URL.
pub(crate) fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The wait a peer asked for in its `Retry-After` header, in seconds (the form Falco's peers
/// use); none when absent or given as a date.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse().ok().map(Duration::from_secs)
}

/// The retry decision for an HTTP status that is not a success: 5xx and 429 are worth
/// retrying (after `retry_after` when the peer gave one, which the worker caps at
/// `max_backoff`), other codes are final.
pub(crate) fn status_error(status: StatusCode, what: String, retry_after: Option<Duration>) -> SendError {
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        SendError::Retry { reason: what, after: retry_after }
    } else {
        SendError::Permanent(what)
    }
}

/// `scheme://host:port` of a URL: enough to name the peer in messages, without the path,
/// query or user info that may hold a secret.
pub(crate) fn origin(url: &reqwest::Url) -> String {
    url.origin().ascii_serialization()
}
