//! The store's settings: where it lives and how long and how much it keeps.

use std::{path::PathBuf, time::Duration};

use serde::{Deserialize, Deserializer, de};

use crate::outputs::config::deserialize_positive_duration;

/// An alert store (`outputs: [{store: {path: ...}}]`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The SQLite file (its directory must exist); `-wal` and `-shm` files sit beside it.
    pub path: PathBuf,
    /// Alerts older than this are removed (default `7d`).
    #[serde(default = "default_max_age", deserialize_with = "deserialize_positive_duration")]
    pub max_age: Duration,
    /// The oldest alerts are removed while the store's pages in use pass this (default
    /// `1GiB`); the file itself may hold up to this much in free pages besides.
    #[serde(default = "default_max_size", deserialize_with = "deserialize_size")]
    pub max_size: u64,
    /// How often retention runs when no alert arrives (default `30s`; it also runs after
    /// every write).
    #[serde(default = "default_retention_interval", deserialize_with = "deserialize_positive_duration")]
    pub retention_interval: Duration,
}

impl StoreConfig {
    /// A store at `path` with the default limits.
    pub fn at(path: impl Into<PathBuf>) -> Self {
        StoreConfig {
            path: path.into(),
            max_age: default_max_age(),
            max_size: default_max_size(),
            retention_interval: default_retention_interval(),
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

fn deserialize_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let text = String::deserialize(d)?;
    parse_size(&text).map_err(de::Error::custom)
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
        assert_eq!((c.max_age, c.max_size), (Duration::from_secs(604_800), 1 << 30));
        let c: StoreConfig = serde_saphyr::from_str("path: a.db\nmax_age: 1h\nmax_size: 64MiB\n").unwrap();
        assert_eq!((c.max_age, c.max_size), (Duration::from_secs(3600), 64 << 20));
        assert!(serde_saphyr::from_str::<StoreConfig>("path: a.db\nmax_age: 0s\n").is_err());
    }
}
