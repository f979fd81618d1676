//! The console's settings (`ui:` in the configuration file).

use std::{net::SocketAddr, num::NonZeroU32, path::PathBuf, time::Duration};

use serde::Deserialize;

use crate::outputs::{SecretSource, config::deserialize_positive_duration};
use crate::store::StoreConfig;

/// The web console and its API.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct UiConfig {
    /// Serve the console (default false).
    pub enabled: bool,
    /// Where it listens (default `127.0.0.1:8484`: the node only).
    pub address: SocketAddr,
    /// HTTPS with the operator's certificate (default: none, plain HTTP); the session
    /// cookies are then `Secure`.
    pub tls: Option<ConsoleTls>,
    /// The path it is served under, behind an ingress (`/sensor`; default `/`).
    pub base_path: String,
    /// The alert store it shows (default: the `store` output's); `sensor console` needs it.
    pub store: Option<StoreConfig>,
    /// Users who may log in, with argon2id hashes (`sensor ui hash-password` makes one).
    /// None: the user `admin`, whose password is made at the first start and whose hash is
    /// kept in `admin_file`.
    pub users: Vec<UiUser>,
    /// The hash of the generated `admin` password (default `ui-admin.hash` beside a SQLite
    /// store; a PostgreSQL store needs it set, or `users`).
    pub admin_file: Option<PathBuf>,
    /// Bearer tokens that may call the API (`Authorization: Bearer TOKEN`), from files or
    /// the environment.
    pub api_tokens: Vec<SecretSource>,
    /// Tokens nodes send alerts with to `/api/v1/ingest` (`Authorization: Bearer TOKEN`), from
    /// files or the environment; only `sensor console` takes alerts, and only with a token.
    pub ingest_tokens: Vec<SecretSource>,
    /// How long a login lasts (default `12h`).
    #[serde(deserialize_with = "deserialize_positive_duration")]
    pub session_ttl: Duration,
    /// Failed logins one client address may make per `login_window` before it must wait
    /// (default 5).
    pub login_attempts: NonZeroU32,
    /// default `5m`.
    #[serde(deserialize_with = "deserialize_positive_duration")]
    pub login_window: Duration,
}

/// The console's certificate.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ConsoleTls {
    /// PEM certificate chain.
    pub cert_file: PathBuf,
    /// PEM private key of `cert_file`.
    pub key_file: PathBuf,
}

/// A console user.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UiUser {
    pub name: String,
    /// An argon2id PHC string (`$argon2id$v=19$...`).
    pub password_hash: String,
}

impl Default for UiConfig {
    fn default() -> Self {
        UiConfig {
            enabled: false,
            address: SocketAddr::from(([127, 0, 0, 1], 8484)),
            tls: None,
            base_path: "/".into(),
            store: None,
            users: Vec::new(),
            admin_file: None,
            api_tokens: Vec::new(),
            ingest_tokens: Vec::new(),
            session_ttl: Duration::from_secs(12 * 3600),
            login_attempts: NonZeroU32::new(5).expect("non-zero"),
            login_window: Duration::from_secs(300),
        }
    }
}

impl UiConfig {
    /// The base path in the form routes are nested under: `""` for `/`, else `/a/b`
    /// (leading slash, none trailing); an error for what a URL path cannot hold.
    pub fn base(&self) -> anyhow::Result<String> {
        let trimmed = self.base_path.trim_matches('/');
        if trimmed.is_empty() {
            return Ok(String::new());
        }
        let valid = trimmed.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        });
        anyhow::ensure!(
            valid,
            "ui.base_path `{}`: expected a path such as /sensor (letters, digits, - . _ ~)",
            self.base_path
        );
        Ok(format!("/{trimmed}"))
    }
}
