//! What the HTTP outputs (Telegram, webhook) share: the client with its TLS settings, and error
//! text that never carries a URL (Telegram's holds the bot token, webhook URLs often a key).

use std::{error::Error as _, path::Path, time::Duration};

use anyhow::{Context as _, bail};
use reqwest::StatusCode;

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

/// Builds an HTTP client trusting what `tls` says.
pub(crate) fn client(tls: TlsFiles<'_>) -> anyhow::Result<reqwest::Client> {
    super::install_crypto_provider();
    let mut builder = reqwest::Client::builder().user_agent(USER_AGENT).connect_timeout(Duration::from_secs(10));
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

/// The retry decision for an HTTP status that is not a success: 5xx and 429 are worth
/// retrying (after `retry_after` when the peer gave one), other codes are final.
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
