//! # Rule engine (README)
//!
//! Loads Falco rules files unmodified and evaluates them with Falco's semantics.
//!
//! ## Stages (one module each)
//! `yaml` (the only YAML reader: text → nodes with line:column) → `loader` (items, `override`,
//! `append`, `exceptions`, redefinitions, in file order) → `parser` (condition text → `ast`
//! with byte spans) → `compile` (macros and lists expanded with Falco's visibility rules,
//! fields checked against `fields`, tests specialised by type) → `eval` (the compiled tree)
//! → `engine` (rules indexed by event type, first/all matching) → `output` (Falco text and
//! JSON alerts). `testing` runs rule unit tests.
//!
//! ## Entry points for the CLI
//! - `sensor validate RULES...` → [`validate`]: print [`Report`] (its `Display` lists every
//!   diagnostic as `file:line:col: error|warning: item: message`, then the counts); exit
//!   non-zero when [`Report::is_ok`] is false.
//! - `sensor list-fields [--json]` → [`fields::list_text`] / [`fields::list_json`].
//! - `sensor test-rules PATH... [--rules R...]` → [`run_rule_tests`]; print
//!   [`TestReport::render`]; exit non-zero unless [`TestReport::is_success`].
//! - `sensor replay` and live mode: a [`RuleSet`] loaded with [`RuleSet::load_paths`], then
//!   [`build_engine`], then per event [`Engine::process`] with a per-thread
//!   [`Scratch`]; the event must implement [`FieldSource`] (see its docs for what the engine
//!   expects of field values). [`Engine::event_types`] tells the capture side which syscalls
//!   the rules need. Falco's `rules:` enable/disable configuration maps to [`RuleSet::select`]
//!   (load with [`RuleSet::load_paths`], select, then [`Engine::build`]); `rule_matching` and
//!   the minimum priority are [`EngineOptions`].
//!
//! ## Diagnostics
//! Errors (the engine is not built): YAML syntax, unknown or ill-typed keys, bad priorities,
//! invalid `override`/`append` use, condition syntax, unknown fields (with a "did you mean"),
//! undefined macros and lists, macros used before their definition, values of the wrong type
//! for the field (`fd.num = abc`), invalid regexes, engine versions newer than
//! [`loader::ENGINE_VERSION`]. Warnings: unknown keys and top-level items, rules without
//! `evt.type`, event types the sensor does not capture, unused macros and lists, rules
//! skipped by `skip-if-unknown-filter`, unsupported sources, unavailable plugins, the
//! deprecated bare `enabled:` toggle and `evt.dir`, and fields the sensor does not supply
//! (`fields::Availability::Unavailable`: conditions on them are always false, outputs
//! render `<NA>`; `sensor list-fields` marks them).
//!
//! ## Rule unit tests
//! See [`testing`] for the format: a YAML file names events (field maps, built into the events
//! and state the sensor would see and read through the same code as live events) and the
//! rules that must (`fires`) and must not (`silent`, `only`) fire. Failures print a `-`/`+` diff of
//! expected and actual rules, the events, and for each rule that should have fired the parts
//! of its condition that were false (descending into macros). Cases for the stable Falco
//! rules live in `rules/tests/falco/` at the repository root.
//!
//! ## Semantics worth knowing
//! - A test on a field the event lacks is false, whatever the operator (`container.id != host`
//!   is false without a container id); `not` inverts the result.
//! - `proc.aname` (and the other ancestor fields) without index match any ancestor.
//! - `glob` is `fnmatch(pattern, value, 0)`: `*` crosses `/`, braces are literal; `regex` is a
//!   full match; `pmatch` matches path prefixes on `/` boundaries; network fields take CIDRs;
//!   `contains` on flag fields (`evt.arg.flags`) tests one flag.
//! - Event types come from `evt.type =`/`in` tests (`and` intersects, `or` unites, `not` is
//!   any); rules without one warn and run on every event, after the typed rules.
//! - Appending to a condition is textual, as in Falco: `a and b` + `or c` is `(a and b) or c`.
//! - The text alert's time prefix is UTC (`HH:MM:SS.nnnnnnnnn`); Falco prints local time.
//!
//! ## Not supported yet
//! The 2026 additions to libsinsp's grammar (`oneof`/`anyof`/`allof` list modifiers and the
//! `join`/`concat`/`getopt` transformers), sources other than `syscall` (such rules are
//! skipped with a warning), and `append_output`/`static_fields` (Falco configuration).

#![warn(missing_docs)]

pub mod ast;
mod compile;
pub mod engine;
mod eval;
pub mod event;
pub mod fields;
mod index;
pub mod loader;
pub(crate) mod matchers;
pub mod output;
pub mod parser;
pub mod prefilter;
pub mod testing;
mod yaml;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::Path;

pub use engine::{AppendMatch, AppendOutput, Engine, EngineOptions, ExtraField, RuleMatching, SUGGESTED_OUTPUT};
pub use eval::Scratch;
pub use event::{FieldSource, Value};
pub use fields::{Availability, Field, FieldArg, FieldInfo, FieldType};
pub use loader::{Diagnostic, Loc, Priority, RuleSet, Selector, Severity};
pub use output::{Alert, format_iso8601};
pub use prefilter::Prefilter;
pub use testing::{TestReport, run_rule_tests};

/// What [`validate`] found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Rules defined (enabled or not).
    pub rules: usize,
    /// Macros defined.
    pub macros: usize,
    /// Lists defined.
    pub lists: usize,
    /// Rules that compiled and are enabled.
    pub loaded_rules: usize,
    /// All errors and warnings.
    pub diagnostics: Vec<Diagnostic>,
}

impl Report {
    /// Number of errors.
    pub fn errors(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.severity == Severity::Error).count()
    }

    /// Number of warnings.
    pub fn warnings(&self) -> usize {
        self.diagnostics.len() - self.errors()
    }

    /// True when there is no error.
    pub fn is_ok(&self) -> bool {
        self.errors() == 0
    }

    /// The report as JSON: counts and `diagnostics` with file, line, column, severity,
    /// item and message (for `sensor validate --json`).
    pub fn to_json(&self) -> serde_json::Value {
        let diags: Vec<serde_json::Value> = self
            .diagnostics
            .iter()
            .map(|d| {
                serde_json::json!({
                    "severity": if d.severity == Severity::Error { "error" } else { "warning" },
                    "file": d.loc.file.as_ref(), "line": d.loc.pos.line, "column": d.loc.pos.col,
                    "item": d.item, "message": d.message,
                })
            })
            .collect();
        serde_json::json!({
            "rules": self.rules, "macros": self.macros, "lists": self.lists, "loaded_rules": self.loaded_rules,
            "errors": self.errors(), "warnings": self.warnings(), "diagnostics": diags,
        })
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.diagnostics {
            writeln!(f, "{d}")?;
        }
        write!(
            f,
            "{} rules ({} enabled and loaded), {} macros, {} lists; {} errors, {} warnings",
            self.rules,
            self.loaded_rules,
            self.macros,
            self.lists,
            self.errors(),
            self.warnings()
        )
    }
}

/// Loads and checks rules files and directories, as `sensor validate` does.
pub fn validate<P: AsRef<Path>>(paths: &[P]) -> Report {
    let mut set = RuleSet::default();
    set.load_paths(paths);
    let (engine, diagnostics) = Engine::build(&set, EngineOptions::default());
    Report {
        rules: set.rules.len(),
        macros: set.macros.len(),
        lists: set.lists.len(),
        loaded_rules: engine.as_ref().map_or(0, Engine::rule_count),
        diagnostics,
    }
}

/// Compiles a loaded rule set into an engine; on error returns the [`Report`] to print.
pub fn build_engine(set: &RuleSet, opts: EngineOptions) -> Result<(Engine, Vec<Diagnostic>), Report> {
    match Engine::build(set, opts) {
        (Some(e), diagnostics) => Ok((e, diagnostics)),
        (None, diagnostics) => Err(Report {
            rules: set.rules.len(),
            macros: set.macros.len(),
            lists: set.lists.len(),
            loaded_rules: 0,
            diagnostics,
        }),
    }
}
