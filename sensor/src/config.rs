//! The sensor's configuration file (`--config FILE`): a YAML mapping with one key per part of
//! the sensor. Only `outputs` exists so far; any other key is an error, with its line.

use std::{fmt, path::Path};

use anyhow::Context as _;
use serde::Deserialize;

use crate::outputs::OutputsConfig;

/// The whole configuration file.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SensorConfig {
    /// Where alerts go (default: Falco's text line on stdout).
    #[serde(default)]
    pub outputs: OutputsConfig,
}

/// A configuration error and where it is in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based line (0 when unknown).
    pub line: usize,
    /// 1-based column (0 when unknown).
    pub column: usize,
    /// What is wrong, on one line.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

impl SensorConfig {
    /// Reads and checks a configuration file; errors read `FILE:LINE:COLUMN: message`.
    pub fn load(path: &Path) -> anyhow::Result<SensorConfig> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading configuration {}", path.display()))?;
        SensorConfig::parse(&text).map_err(|e| anyhow::anyhow!("{}:{e}", path.display()))
    }

    /// Reads configuration text.
    pub fn parse(text: &str) -> Result<SensorConfig, ConfigError> {
        if text.trim().is_empty() {
            return Ok(SensorConfig::default());
        }
        let mut options = serde_saphyr::Options::default();
        options.with_snippet = false;
        serde_saphyr::from_str_with_options(text, options).map_err(|e| {
            let (line, column) = e.location().map_or((0, 0), |l| (l.line() as usize, l.column() as usize));
            let rendered = e.to_string();
            let message = rendered.lines().next().unwrap_or("invalid configuration").trim();
            // The location is ours to print, once, in front.
            let message = message.split_once(" at line ").map_or(message, |(m, _)| m);
            ConfigError { line, column, message: message.to_owned() }
        })
    }
}
