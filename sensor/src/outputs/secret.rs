//! Secrets (bot tokens, SMTP passwords) read from the environment or a file, never from the
//! configuration text, and never printed.

use std::{fmt, path::PathBuf};

use anyhow::{Context as _, bail};
use serde::Deserialize;

/// Where a secret comes from: `env: NAME` or `file: /path` (exactly one).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    /// Environment variable holding the secret.
    #[serde(default)]
    pub env: Option<String>,
    /// File holding the secret (trailing newline ignored), e.g. a mounted Kubernetes Secret.
    #[serde(default)]
    pub file: Option<PathBuf>,
}

impl SecretSource {
    /// Reads the secret now.
    pub fn load(&self) -> anyhow::Result<Secret> {
        let value = match (&self.env, &self.file) {
            (Some(name), None) => {
                std::env::var(name).with_context(|| format!("environment variable {name} is not set"))?
            }
            (None, Some(path)) => {
                std::fs::read_to_string(path).with_context(|| format!("reading secret file {}", path.display()))?
            }
            _ => bail!("a secret needs exactly one of `env` or `file`"),
        };
        let value = value.trim_end_matches(['\r', '\n']).to_owned();
        if value.is_empty() {
            bail!("the secret from {} is empty", self.origin());
        }
        Ok(Secret(value))
    }

    /// Where the secret is read from, for messages (never the value).
    pub fn origin(&self) -> String {
        match (&self.env, &self.file) {
            (Some(name), _) => format!("${name}"),
            (_, Some(path)) => path.display().to_string(),
            _ => "<unset>".into(),
        }
    }
}

/// Whether `a` and `b` are equal, in a time that does not depend on where the first
/// differing byte is (for tokens a client sends).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A secret value; `Debug` and `Display` print `***` so it cannot leak into logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `given` is this secret (a bearer token a client sent), compared in
    /// [`constant_time_eq`].
    pub fn matches(&self, given: &[u8]) -> bool {
        constant_time_eq(self.0.as_bytes(), given)
    }

    /// A secret with this value, for tests.
    #[cfg(test)]
    pub(crate) fn for_test(value: &str) -> Secret {
        Secret(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_file_without_its_newline_and_never_prints_it() {
        let dir = std::env::temp_dir().join(format!("sensor-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, "s3cret\n").unwrap();
        let secret = SecretSource { env: None, file: Some(path) }.load().unwrap();
        assert_eq!(secret.expose(), "s3cret");
        assert_eq!(format!("{secret:?} {secret}"), "*** ***");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn needs_exactly_one_source() {
        let both = SecretSource { env: Some("X".into()), file: Some("/x".into()) };
        assert!(both.load().is_err());
        let missing = SecretSource { env: Some("SENSOR_TEST_SURELY_UNSET_VAR".into()), file: None };
        let err = missing.load().unwrap_err().to_string();
        assert!(err.contains("SENSOR_TEST_SURELY_UNSET_VAR"), "{err}");
    }
}
