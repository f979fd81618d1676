//! The store's settings: where it lives and how long and how much it keeps.

use std::{
    num::NonZeroUsize,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Deserializer, de};

use crate::outputs::{SecretSource, config::deserialize_positive_duration};

/// An alert store: its engine and how long and how much it keeps.
///
/// ```yaml
/// path: /var/lib/sensor/alerts.db          # SQLite, on this node
/// # or
/// postgres: {url: "postgres://sensor@db/sensor?sslmode=require", password: {file: /run/secrets/pg}}
/// max_age: 7d
/// max_size: 1GiB
/// ```
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(try_from = "RawStoreConfig")]
pub struct StoreConfig {
    pub engine: Engine,
    /// Alerts older than this are removed (default `7d`).
    pub max_age: Duration,
    /// The oldest alerts are removed while the store passes this. SQLite (default `1GiB`):
    /// the pages in use, the file may hold up to this much in free pages besides.
    /// PostgreSQL (default: no limit, the database's own sizing): the alert tables and
    /// their indexes, whole days dropped oldest first.
    pub max_size: Option<u64>,
    /// How often retention runs when no alert arrives (default `30s`; it also runs after
    /// every write).
    pub retention_interval: Duration,
}

/// Where the alerts are kept.
#[derive(Clone, Debug, PartialEq)]
pub enum Engine {
    /// A SQLite file (its directory must exist); `-wal` and `-shm` files sit beside it.
    Sqlite(PathBuf),
    /// A PostgreSQL database, shared by a cluster's consoles.
    Postgres(PostgresConfig),
}

/// A PostgreSQL database (`store: {postgres: {...}}`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// `postgres://USER@HOST:PORT/DATABASE?sslmode=require` (or the `key=value` form), without
    /// the password: `sslmode` is `disable`, `prefer` (the default) or `require`.
    pub url: String,
    /// The password, from a file (a mounted Secret) or the environment.
    #[serde(default)]
    pub password: Option<SecretSource>,
    /// PEM bundle of the CAs trusted for the server's certificate (default: the system's).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Connections kept open at most (default 4; at least 2: a writer uses two, and a third
    /// to move its counts while it writes the next batch).
    #[serde(default = "default_pool")]
    pub pool: NonZeroUsize,
}

fn default_pool() -> NonZeroUsize {
    NonZeroUsize::new(4).expect("non-zero")
}

/// `StoreConfig` as written: exactly one of `path` and `postgres`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStoreConfig {
    #[serde(default)]
    path: Option<PathBuf>,
    #[serde(default)]
    postgres: Option<PostgresConfig>,
    #[serde(default = "default_max_age", deserialize_with = "deserialize_positive_duration")]
    max_age: Duration,
    #[serde(default, deserialize_with = "deserialize_optional_size")]
    max_size: Option<u64>,
    #[serde(default = "default_retention_interval", deserialize_with = "deserialize_positive_duration")]
    retention_interval: Duration,
}

impl TryFrom<RawStoreConfig> for StoreConfig {
    type Error = String;

    fn try_from(raw: RawStoreConfig) -> Result<Self, String> {
        let engine = match (raw.path, raw.postgres) {
            (Some(path), None) => Engine::Sqlite(path),
            (None, Some(pg)) if pg.pool.get() < 2 => {
                return Err(format!(
                    "postgres.pool is {}: it must be at least 2 (a writer uses two connections: one for the alerts, \
                     one for their word index)",
                    pg.pool
                ));
            }
            (None, Some(pg)) => Engine::Postgres(pg),
            _ => return Err("a store needs exactly one of `path` (SQLite) or `postgres`".into()),
        };
        let max_size = match engine {
            Engine::Sqlite(_) => Some(raw.max_size.unwrap_or_else(default_max_size)),
            Engine::Postgres(_) => raw.max_size,
        };
        Ok(StoreConfig { engine, max_age: raw.max_age, max_size, retention_interval: raw.retention_interval })
    }
}

impl StoreConfig {
    /// A SQLite store at `path` with the default limits.
    pub fn at(path: impl Into<PathBuf>) -> Self {
        StoreConfig {
            engine: Engine::Sqlite(path.into()),
            max_age: default_max_age(),
            max_size: Some(default_max_size()),
            retention_interval: default_retention_interval(),
        }
    }

    /// A PostgreSQL store with the default limits.
    pub fn postgres(config: PostgresConfig) -> Self {
        StoreConfig {
            engine: Engine::Postgres(config),
            max_age: default_max_age(),
            max_size: None,
            retention_interval: default_retention_interval(),
        }
    }

    /// The SQLite file, for an embedded store.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match &self.engine {
            Engine::Sqlite(path) => Some(path),
            Engine::Postgres(_) => None,
        }
    }

    /// The store for messages: its file, or its database's host and name (never the password).
    pub fn describe(&self) -> String {
        match &self.engine {
            Engine::Sqlite(path) => path.display().to_string(),
            Engine::Postgres(pg) => pg.describe(),
        }
    }
}

impl PostgresConfig {
    /// `postgresql://HOST:PORT/DATABASE`, from the URL, for messages.
    pub fn describe(&self) -> String {
        match self.url.parse::<postgres::Config>() {
            Ok(c) => {
                let host = c
                    .get_hosts()
                    .first()
                    .map(|h| match h {
                        postgres::config::Host::Tcp(h) => h.clone(),
                        postgres::config::Host::Unix(p) => p.display().to_string(),
                    })
                    .unwrap_or_else(|| "localhost".into());
                let port = c.get_ports().first().copied().unwrap_or(5432);
                format!("postgresql://{host}:{port}/{}", c.get_dbname().unwrap_or_default())
            }
            Err(_) => "postgresql (an unreadable url)".into(),
        }
    }
}

fn default_max_age() -> Duration {
    Duration::from_secs(7 * 86_400)
}

fn default_max_size() -> u64 {
    1 << 30
}

fn default_retention_interval() -> Duration {
    Duration::from_secs(30)
}

/// Reads a size: a number and a unit, `B`, `KiB`, `MiB`, `GiB` or `TiB` (`512MiB`, `1GiB`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let expected =
        || format!("invalid size `{text}`: expected a number and a unit (B, KiB, MiB, GiB, TiB), e.g. `1GiB`");
    let n: u64 = digits.parse().map_err(|_| expected())?;
    let shift = match unit.trim_start() {
        "B" => 0,
        "KiB" => 10,
        "MiB" => 20,
        "GiB" => 30,
        "TiB" => 40,
        _ => return Err(expected()),
    };
    n.checked_mul(1 << shift).filter(|&b| b > 0).ok_or_else(|| format!("size `{text}` is 0 or too large"))
}

fn deserialize_optional_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let text = String::deserialize(d)?;
    parse_size(&text).map(Some).map_err(de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_need_their_unit() {
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("512 MiB"), Ok(512 << 20));
        assert_eq!(parse_size("4096B"), Ok(4096));
        for bad in ["", "1", "1GB", "1.5GiB", "0MiB", "-1KiB", "99999999999TiB"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_keep_a_week_and_a_gibibyte() {
        let c: StoreConfig = serde_saphyr::from_str("path: /var/lib/sensor/alerts.db\n").unwrap();
        assert_eq!(c, StoreConfig::at("/var/lib/sensor/alerts.db"));
        assert_eq!((c.max_age, c.max_size), (Duration::from_secs(604_800), Some(1 << 30)));
        let c: StoreConfig = serde_saphyr::from_str("path: a.db\nmax_age: 1h\nmax_size: 64MiB\n").unwrap();
        assert_eq!((c.max_age, c.max_size), (Duration::from_secs(3600), Some(64 << 20)));
        assert!(serde_saphyr::from_str::<StoreConfig>("path: a.db\nmax_age: 0s\n").is_err());
    }

    #[test]
    fn a_store_is_a_file_or_a_database_not_both() {
        let c: StoreConfig =
            serde_saphyr::from_str("postgres: {url: \"postgres://sensor@db:5433/alerts\", password: {env: PG}}\n")
                .unwrap();
        assert_eq!(c.max_size, None, "PostgreSQL is sized by its operator");
        assert_eq!(c.describe(), "postgresql://db:5433/alerts");
        for bad in ["max_age: 1h\n", "path: a.db\npostgres: {url: \"host=db\"}\n", "path: a.db\ncolour: red\n"] {
            let e = serde_saphyr::from_str::<StoreConfig>(bad).unwrap_err().to_string();
            assert!(!e.is_empty(), "{bad}");
        }
        let e = serde_saphyr::from_str::<StoreConfig>("postgres: {url: \"host=db\", pool: 1}\n").unwrap_err();
        assert!(e.to_string().contains("postgres.pool is 1: it must be at least 2"), "{e}");
    }
}
