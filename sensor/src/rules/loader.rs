//! Loader: rules files → a [`RuleSet`] of lists, macros and rules, applying Falco's
//! redefinition, `override` and legacy `append` semantics in file order. Conditions stay
//! text here; the compiler parses and checks them.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::yaml::{self, Node, NodeKind, Pos};

/// The Falco engine version whose rule language this engine implements.
pub const ENGINE_VERSION: (u64, u64, u64) = (0, 63, 0);

/// Plugins whose fields the sensor provides natively: the container metadata of syscall
/// events, and Kubernetes audit events (`k8saudit`'s `ka.*`, `json`'s `jevt.*`).
pub const BUILTIN_PLUGINS: [&str; 3] = ["container", "k8saudit", "json"];

/// A position in a named source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loc {
    /// File name as given to the loader.
    pub file: Arc<str>,
    /// Line and column.
    pub pos: Pos,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)
    }
}

/// How serious a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Loading fails.
    Error,
    /// Loading goes on.
    Warning,
}

/// An error or warning with its place and the item it concerns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Where.
    pub loc: Loc,
    /// The item, e.g. `rule 'Foo'`, when known.
    pub item: Option<String>,
    /// What.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{}: {sev}: ", self.loc)?;
        if let Some(item) = &self.item {
            write!(f, "{item}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Rule priority, most severe first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// 0.
    Emergency,
    /// 1.
    Alert,
    /// 2.
    Critical,
    /// 3.
    Error,
    /// 4.
    Warning,
    /// 5.
    Notice,
    /// 6.
    Informational,
    /// 7.
    Debug,
}

impl Priority {
    /// Every priority, most severe first (a priority's index here is its syslog level).
    pub const ALL: [Priority; 8] = [
        Priority::Emergency,
        Priority::Alert,
        Priority::Critical,
        Priority::Error,
        Priority::Warning,
        Priority::Notice,
        Priority::Informational,
        Priority::Debug,
    ];

    /// Parses a priority case-insensitively (`Info` is `Informational`).
    pub fn parse(s: &str) -> Option<Priority> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "emergency" => Priority::Emergency,
            "alert" => Priority::Alert,
            "critical" => Priority::Critical,
            "error" => Priority::Error,
            "warning" => Priority::Warning,
            "notice" => Priority::Notice,
            "informational" | "info" => Priority::Informational,
            "debug" => Priority::Debug,
            _ => return None,
        })
    }

    /// The name Falco prints in alerts (`Warning`, `Informational`...).
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Emergency => "Emergency",
            Priority::Alert => "Alert",
            Priority::Critical => "Critical",
            Priority::Error => "Error",
            Priority::Warning => "Warning",
            Priority::Notice => "Notice",
            Priority::Informational => "Informational",
            Priority::Debug => "Debug",
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which rules a [`RuleSet::select`] call applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// Rules whose name matches this glob.
    Rule(String),
    /// Rules carrying this tag.
    Tag(String),
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Selector::Rule(glob) => write!(f, "rule `{glob}`"),
            Selector::Tag(tag) => write!(f, "tag `{tag}`"),
        }
    }
}

/// A piece of condition text and where it came from (conditions grow by appends).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextPart {
    /// Byte offset of the piece in the final condition.
    pub offset: usize,
    /// Where the YAML scalar holding the piece starts.
    pub loc: Loc,
}

/// A condition with its provenance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CondText {
    /// The text.
    pub text: String,
    /// Provenance of each piece, by increasing offset.
    pub parts: Vec<TextPart>,
}

impl CondText {
    fn new(text: String, loc: Loc) -> Self {
        CondText { text, parts: vec![TextPart { offset: 0, loc }] }
    }

    fn append(&mut self, more: &str, loc: Loc) {
        self.text.push(' ');
        self.parts.push(TextPart { offset: self.text.len(), loc });
        self.text.push_str(more);
    }
}

/// A `list` item.
#[derive(Clone, Debug, PartialEq)]
pub struct ListDef {
    /// Name.
    pub name: String,
    /// Items as written (quotes removed); names of earlier lists are expanded at compile time.
    pub items: Vec<String>,
    /// Where it was first defined.
    pub loc: Loc,
}

/// A `macro` item.
#[derive(Clone, Debug, PartialEq)]
pub struct MacroDef {
    /// Name.
    pub name: String,
    /// Condition text.
    pub condition: CondText,
    /// Where it was first defined.
    pub loc: Loc,
}

/// One value of an exception tuple.
#[derive(Clone, Debug, PartialEq)]
pub enum ExcValue {
    /// A scalar (a value, or a list name for `in`).
    One(String),
    /// A list of values.
    List(Vec<String>),
}

/// An entry of a rule's `exceptions`.
#[derive(Clone, Debug, PartialEq)]
pub struct ExceptionDef {
    /// Name (used to add values later).
    pub name: String,
    /// Fields; one field when `single`.
    pub fields: Vec<String>,
    /// True for the single-field form (`fields: fd.name`).
    pub single: bool,
    /// Operators, aligned with `fields`.
    pub comps: Vec<String>,
    /// Value tuples (for the single form, each tuple has one value).
    pub values: Vec<Vec<ExcValue>>,
    /// Where it was defined.
    pub loc: Loc,
}

/// A `rule` item.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleDef {
    /// Name.
    pub name: String,
    /// Condition.
    pub condition: CondText,
    /// Output format.
    pub output: String,
    /// Where the output was written.
    pub output_loc: Loc,
    /// Description.
    pub desc: String,
    /// Priority.
    pub priority: Priority,
    /// Event source (`syscall` by default).
    pub source: String,
    /// Whether the rule runs.
    pub enabled: bool,
    /// Tags.
    pub tags: Vec<String>,
    /// Exceptions.
    pub exceptions: Vec<ExceptionDef>,
    /// Warn when the rule has no event type restriction.
    pub warn_evttypes: bool,
    /// Skip the rule (instead of failing) when it names an unknown field.
    pub skip_if_unknown_filter: bool,
    /// Fields its alerts carry beside its output's (Falco's `append_output` `extra_fields`,
    /// set by the engine's options; none in a file).
    pub extra_fields: Vec<super::engine::ExtraField>,
    /// Where it was first defined.
    pub loc: Loc,
}

/// Everything loaded from a set of files, in definition order.
#[derive(Clone, Debug, Default)]
pub struct RuleSet {
    /// Lists, in definition order.
    pub lists: Vec<ListDef>,
    /// Macros, in definition order.
    pub macros: Vec<MacroDef>,
    /// Rules, in definition order.
    pub rules: Vec<RuleDef>,
    /// Errors and warnings so far.
    pub diagnostics: Vec<Diagnostic>,
    /// Source texts by file name (for positions inside conditions).
    pub sources: HashMap<Arc<str>, Arc<str>>,
    /// Files read, in order.
    pub files: Vec<PathBuf>,
}

impl RuleSet {
    /// Enables or disables rules after loading, as Falco's `rules:` configuration does:
    /// `Selector::Rule` takes a glob over rule names (`*` for all), `Selector::Tag` a tag.
    /// Returns how many rules the selector matched.
    pub fn select(&mut self, selector: &Selector, enable: bool) -> usize {
        let mut n = 0;
        for r in &mut self.rules {
            let hit = match selector {
                Selector::Rule(glob) => super::matchers::fnmatch(glob, &r.name, false),
                Selector::Tag(tag) => r.tags.iter().any(|t| t == tag),
            };
            if hit {
                r.enabled = enable;
                n += 1;
            }
        }
        n
    }

    /// True when any error was recorded.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(|d| d.severity == Severity::Error)
    }

    /// Loads files and directories in order (a directory contributes its `.yaml`/`.yml`
    /// files sorted by name); later items override earlier ones.
    pub fn load_paths<P: AsRef<Path>>(&mut self, paths: &[P]) {
        for p in paths {
            let p = p.as_ref();
            if p.is_dir() {
                let mut entries: Vec<PathBuf> = match std::fs::read_dir(p) {
                    Ok(rd) => rd
                        .filter_map(Result::ok)
                        .map(|e| e.path())
                        .filter(|q| q.is_file() && q.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                        .collect(),
                    Err(e) => {
                        self.error(
                            &Loc { file: path_name(p), pos: Pos::default() },
                            None,
                            format!("cannot read directory: {e}"),
                        );
                        continue;
                    }
                };
                entries.sort();
                for e in entries {
                    self.load_file(&e);
                }
            } else {
                self.load_file(p);
            }
        }
    }

    /// Loads one file.
    pub fn load_file(&mut self, path: &Path) {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                self.files.push(path.to_owned());
                self.load_str(&path.display().to_string(), &text);
            }
            Err(e) => {
                self.error(&Loc { file: path_name(path), pos: Pos::default() }, None, format!("cannot read file: {e}"))
            }
        }
    }

    /// Loads rules from text, naming the source `file` in diagnostics.
    pub fn load_str(&mut self, file: &str, text: &str) {
        let file: Arc<str> = Arc::from(file);
        self.sources.insert(file.clone(), Arc::from(text));
        let root = match yaml::parse(text) {
            Ok(n) => n,
            Err(e) => {
                self.error(&Loc { file, pos: e.pos }, None, format!("invalid YAML: {}", e.message));
                return;
            }
        };
        let items = match root.kind {
            NodeKind::Null => return,
            NodeKind::Seq(items) => items,
            _ => {
                self.error(&Loc { file, pos: root.pos }, None, "a rules file must be a YAML sequence of items");
                return;
            }
        };
        for item in &items {
            let loc = Loc { file: file.clone(), pos: item.pos };
            let mut cx = ItemCx { set: self, file: &file };
            cx.item(item, &loc);
        }
    }

    fn push(&mut self, severity: Severity, loc: &Loc, item: Option<&str>, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic {
            severity,
            loc: loc.clone(),
            item: item.map(str::to_owned),
            message: message.into(),
        });
    }

    fn error(&mut self, loc: &Loc, item: Option<&str>, message: impl Into<String>) {
        self.push(Severity::Error, loc, item, message);
    }

    fn warn(&mut self, loc: &Loc, item: Option<&str>, message: impl Into<String>) {
        self.push(Severity::Warning, loc, item, message);
    }
}

fn path_name(p: &Path) -> Arc<str> {
    Arc::from(p.display().to_string())
}

/// Removes one level of matching quotes around a list item (`'"(systemd)"'` → `(systemd)`).
pub fn unquote_item(s: &str) -> String {
    let t = s.trim();
    let b = t.as_bytes();
    if b.len() >= 2 && (b[0] == b'"' || b[0] == b'\'') && b[b.len() - 1] == b[0] {
        let q = char::from(b[0]);
        let inner = &t[1..t.len() - 1];
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                match chars.next() {
                    Some(n) if n == q || n == '\\' => out.push(n),
                    Some(n) => {
                        out.push('\\');
                        out.push(n);
                    }
                    None => out.push('\\'),
                }
            } else {
                out.push(c);
            }
        }
        return out;
    }
    t.to_owned()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Append,
    Replace,
}

struct ItemCx<'a> {
    set: &'a mut RuleSet,
    file: &'a Arc<str>,
}

type R<T> = Result<T, ()>;

const RULE_KEYS: [&str; 15] = [
    "rule",
    "condition",
    "output",
    "desc",
    "priority",
    "source",
    "enabled",
    "capture",
    "capture_duration",
    "warn_evttypes",
    "skip-if-unknown-filter",
    "tags",
    "exceptions",
    "override",
    "append",
];
const RULE_APPEND: [&str; 5] = ["condition", "output", "desc", "tags", "exceptions"];
const RULE_REPLACE: [&str; 11] = [
    "condition",
    "output",
    "desc",
    "priority",
    "tags",
    "exceptions",
    "enabled",
    "warn_evttypes",
    "skip-if-unknown-filter",
    "capture",
    "capture_duration",
];

impl ItemCx<'_> {
    fn loc(&self, n: &Node) -> Loc {
        Loc { file: self.file.clone(), pos: n.pos }
    }

    fn err(&mut self, n: &Node, item: Option<&str>, msg: impl Into<String>) {
        let loc = self.loc(n);
        self.set.error(&loc, item, msg);
    }

    fn warn(&mut self, n: &Node, item: Option<&str>, msg: impl Into<String>) {
        let loc = self.loc(n);
        self.set.warn(&loc, item, msg);
    }

    fn item(&mut self, item: &Node, loc: &Loc) {
        let NodeKind::Map(entries) = &item.kind else {
            self.set.error(loc, None, format!("each item must be a mapping, not a {}", item.kind_name()));
            return;
        };
        let has = |k: &str| item.get(k).is_some();
        let _ = if has("rule") {
            self.rule(item)
        } else if has("macro") {
            self.macro_item(item)
        } else if has("list") {
            self.list(item)
        } else if let Some(v) = item.get("required_engine_version") {
            self.engine_version(v)
        } else if let Some(v) = item.get("required_plugin_versions") {
            self.plugin_versions(v)
        } else {
            let first = entries.first().and_then(|(k, _)| k.as_text()).unwrap_or_default();
            self.set.warn(loc, None, format!("unknown top-level item '{first}' ignored"));
            Ok(())
        };
    }

    fn name(&mut self, item: &Node, key: &str) -> R<String> {
        let n = item.get(key).ok_or(())?;
        match n.as_text() {
            Some(s) if !s.trim().is_empty() => Ok(s),
            _ => {
                self.err(n, None, format!("{key} name must be a non-empty string"));
                Err(())
            }
        }
    }

    fn text(&mut self, item: &Node, key: &str, what: &str) -> R<Option<(String, Loc)>> {
        let Some(n) = item.get(key) else {
            return Ok(None);
        };
        match &n.kind {
            NodeKind::Str(_) | NodeKind::Int(_) | NodeKind::Float(_) | NodeKind::Bool(_) => {
                Ok(Some((n.as_text().unwrap_or_default(), self.loc(n))))
            }
            NodeKind::Null => Ok(Some((String::new(), self.loc(n)))),
            _ => {
                self.err(n, Some(what), format!("'{key}' must be a string, not a {}", n.kind_name()));
                Err(())
            }
        }
    }

    fn boolean(&mut self, item: &Node, key: &str, what: &str) -> R<Option<bool>> {
        let Some(n) = item.get(key) else {
            return Ok(None);
        };
        let v = match &n.kind {
            NodeKind::Bool(b) => Some(*b),
            NodeKind::Str(s) => match s.to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" => Some(true),
                "false" | "no" | "off" => Some(false),
                _ => None,
            },
            _ => None,
        };
        if v.is_none() {
            self.err(n, Some(what), format!("'{key}' must be true or false"));
            return Err(());
        }
        Ok(v)
    }

    fn strings(&mut self, item: &Node, key: &str, what: &str) -> R<Option<Vec<String>>> {
        let Some(n) = item.get(key) else {
            return Ok(None);
        };
        match &n.kind {
            NodeKind::Null => Ok(Some(Vec::new())),
            NodeKind::Seq(items) => {
                let mut out = Vec::new();
                for i in items {
                    match i.as_text() {
                        Some(s) => out.push(s),
                        None => {
                            self.err(
                                i,
                                Some(what),
                                format!("'{key}' entries must be scalars, not a {}", i.kind_name()),
                            );
                            return Err(());
                        }
                    }
                }
                Ok(Some(out))
            }
            _ => {
                self.err(n, Some(what), format!("'{key}' must be a sequence, not a {}", n.kind_name()));
                Err(())
            }
        }
    }

    fn unknown_keys(&mut self, item: &Node, allowed: &[&str], what: &str) {
        if let NodeKind::Map(entries) = &item.kind {
            for (k, _) in entries {
                let key = k.as_text().unwrap_or_default();
                if !allowed.contains(&key.as_str()) {
                    self.warn(k, Some(what), format!("unknown key '{key}' ignored"));
                }
            }
        }
    }

    /// Reads `override:` and legacy `append:`; returns the mode for each key.
    fn modes(
        &mut self,
        item: &Node,
        what: &str,
        append_ok: &[&str],
        replace_ok: &[&str],
    ) -> R<Option<HashMap<String, Mode>>> {
        let legacy = self.boolean(item, "append", what)?.unwrap_or(false);
        let Some(ov) = item.get("override") else {
            return Ok(legacy.then(HashMap::new));
        };
        if item.get("append").is_some() {
            self.err(ov, Some(what), "'override' and 'append' cannot be used together");
            return Err(());
        }
        let NodeKind::Map(entries) = &ov.kind else {
            self.err(ov, Some(what), "'override' must be a mapping of keys to append or replace");
            return Err(());
        };
        let mut out = HashMap::new();
        for (k, v) in entries {
            let key = k.as_text().unwrap_or_default();
            let mode = match v.as_text().as_deref() {
                Some("append") => Mode::Append,
                Some("replace") => Mode::Replace,
                _ => {
                    self.err(v, Some(what), format!("override of '{key}' must be 'append' or 'replace'"));
                    return Err(());
                }
            };
            let allowed = if mode == Mode::Append { append_ok } else { replace_ok };
            if !allowed.contains(&key.as_str()) {
                let m = if mode == Mode::Append { "appended" } else { "replaced" };
                self.err(k, Some(what), format!("key '{key}' cannot be {m}"));
                return Err(());
            }
            if item.get(&key).is_none() {
                self.err(k, Some(what), format!("override names '{key}' but the item has no '{key}'"));
                return Err(());
            }
            if out.insert(key.clone(), mode).is_some() {
                self.err(k, Some(what), format!("'{key}' is overridden twice"));
                return Err(());
            }
        }
        if let NodeKind::Map(entries) = &item.kind {
            for (k, _) in entries {
                let key = k.as_text().unwrap_or_default();
                let is_name = ["rule", "macro", "list", "override"].contains(&key.as_str());
                if !is_name && !out.contains_key(&key) {
                    self.err(
                        k,
                        Some(what),
                        format!("'{key}' is given without an override mode (add it to 'override')"),
                    );
                    return Err(());
                }
            }
        }
        Ok(Some(out))
    }

    fn engine_version(&mut self, v: &Node) -> R<()> {
        let text = v.as_text().unwrap_or_default();
        let parsed: Option<(u64, u64, u64)> = if let NodeKind::Int(i) = v.kind {
            u64::try_from(i).ok().map(|m| (0, m, 0))
        } else {
            let parts: Vec<Option<u64>> = text.trim().split('.').map(|p| p.parse().ok()).collect();
            match parts.as_slice() {
                [Some(a), Some(b), Some(c)] => Some((*a, *b, *c)),
                [Some(m)] => Some((0, *m, 0)),
                _ => None,
            }
        };
        match parsed {
            None => self.err(v, None, format!("required_engine_version '{text}' is not a version (use \"0.57.0\")")),
            Some(req) if req > ENGINE_VERSION => {
                let (a, b, c) = ENGINE_VERSION;
                self.err(v, None, format!("rules require engine version {text}, this engine implements {a}.{b}.{c}"));
            }
            Some(_) => {}
        }
        Ok(())
    }

    fn plugin_versions(&mut self, v: &Node) -> R<()> {
        let NodeKind::Seq(items) = &v.kind else {
            self.err(v, None, "required_plugin_versions must be a sequence");
            return Err(());
        };
        for p in items {
            let Some(name) = p.get("name").and_then(Node::as_text) else {
                self.err(p, None, "a required plugin needs a name");
                continue;
            };
            if p.get("version").and_then(Node::as_text).is_none() {
                self.err(p, None, format!("required plugin '{name}' needs a version"));
                continue;
            }
            let mut names = vec![name.clone()];
            if let Some(NodeKind::Seq(alts)) = p.get("alternatives").map(|a| &a.kind) {
                names.extend(alts.iter().filter_map(|a| a.get("name").and_then(Node::as_text)));
            }
            if !names.iter().any(|n| BUILTIN_PLUGINS.contains(&n.as_str())) {
                self.warn(
                    p,
                    None,
                    format!("plugin '{name}' is not available; rules that use its fields will not load"),
                );
            }
        }
        Ok(())
    }

    fn list(&mut self, item: &Node) -> R<()> {
        let name = self.name(item, "list")?;
        let what = format!("list '{name}'");
        self.unknown_keys(item, &["list", "items", "append", "override"], &what);
        let modes = self.modes(item, &what, &["items"], &["items"])?;
        let items: Vec<String> =
            self.strings(item, "items", &what)?.unwrap_or_default().iter().map(|s| unquote_item(s)).collect();
        let existing = self.set.lists.iter().position(|l| l.name == name);
        match (modes, existing) {
            (None, _) if item.get("items").is_none() => {
                self.err(item, Some(&what), "a list needs 'items'");
                return Err(());
            }
            (None, Some(i)) => self.set.lists[i].items = items,
            (None, None) => self.set.lists.push(ListDef { name, items, loc: self.loc(item) }),
            (Some(_), None) => {
                self.err(item, Some(&what), "cannot append to or override a list that is not defined yet");
                return Err(());
            }
            (Some(m), Some(i)) => {
                let mode = m.get("items").copied().unwrap_or(Mode::Append);
                let l = &mut self.set.lists[i];
                if mode == Mode::Replace {
                    l.items = items;
                } else {
                    l.items.extend(items);
                }
            }
        }
        Ok(())
    }

    fn macro_item(&mut self, item: &Node) -> R<()> {
        let name = self.name(item, "macro")?;
        let what = format!("macro '{name}'");
        self.unknown_keys(item, &["macro", "condition", "append", "override"], &what);
        let modes = self.modes(item, &what, &["condition"], &["condition"])?;
        let Some((cond, cloc)) = self.text(item, "condition", &what)? else {
            self.err(item, Some(&what), "a macro needs a 'condition'");
            return Err(());
        };
        let existing = self.set.macros.iter().position(|m| m.name == name);
        match (modes, existing) {
            (None, Some(i)) => self.set.macros[i].condition = CondText::new(cond, cloc),
            (None, None) => {
                self.set.macros.push(MacroDef { name, condition: CondText::new(cond, cloc), loc: self.loc(item) })
            }
            (Some(_), None) => {
                self.err(item, Some(&what), "cannot append to or override a macro that is not defined yet");
                return Err(());
            }
            (Some(m), Some(i)) => {
                let mode = m.get("condition").copied().unwrap_or(Mode::Append);
                let c = &mut self.set.macros[i].condition;
                if mode == Mode::Replace {
                    *c = CondText::new(cond, cloc);
                } else {
                    c.append(&cond, cloc);
                }
            }
        }
        Ok(())
    }

    fn exceptions(&mut self, item: &Node, what: &str) -> R<Option<Vec<ExceptionDef>>> {
        let Some(n) = item.get("exceptions") else {
            return Ok(None);
        };
        let items = match &n.kind {
            NodeKind::Seq(items) => items,
            NodeKind::Null => return Ok(Some(Vec::new())),
            _ => {
                self.err(n, Some(what), "'exceptions' must be a sequence");
                return Err(());
            }
        };
        let mut out = Vec::new();
        for e in items {
            out.push(self.exception(e, what)?);
        }
        Ok(Some(out))
    }

    fn exception(&mut self, e: &Node, what: &str) -> R<ExceptionDef> {
        let Some(name) = e.get("name").and_then(Node::as_text) else {
            self.err(e, Some(what), "an exception needs a 'name'");
            return Err(());
        };
        self.unknown_keys(e, &["name", "fields", "comps", "values"], what);
        let (fields, single) = match e.get("fields").map(|f| &f.kind) {
            None => (Vec::new(), false),
            Some(NodeKind::Seq(_)) => (self.strings(e, "fields", what)?.unwrap_or_default(), false),
            Some(_) => (vec![e.get("fields").and_then(Node::as_text).unwrap_or_default()], true),
        };
        let comps = match e.get("comps").map(|c| &c.kind) {
            None => Vec::new(),
            Some(NodeKind::Seq(_)) => self.strings(e, "comps", what)?.unwrap_or_default(),
            Some(_) => vec![e.get("comps").and_then(Node::as_text).unwrap_or_default()],
        };
        let mut values = Vec::new();
        if let Some(v) = e.get("values") {
            match &v.kind {
                NodeKind::Seq(rows) => {
                    for row in rows {
                        if single {
                            match &row.kind {
                                NodeKind::Seq(_) => {
                                    let list = self.exc_list(row, what)?;
                                    values.push(vec![ExcValue::List(list)]);
                                }
                                _ => values.push(vec![ExcValue::One(row.as_text().unwrap_or_default())]),
                            }
                        } else {
                            let NodeKind::Seq(cells) = &row.kind else {
                                self.err(
                                    row,
                                    Some(what),
                                    format!("exception '{name}': each value must be a sequence aligned with 'fields'"),
                                );
                                return Err(());
                            };
                            let mut tuple = Vec::new();
                            for c in cells {
                                match &c.kind {
                                    NodeKind::Seq(_) => tuple.push(ExcValue::List(self.exc_list(c, what)?)),
                                    _ => tuple.push(ExcValue::One(c.as_text().unwrap_or_default())),
                                }
                            }
                            values.push(tuple);
                        }
                    }
                }
                NodeKind::Null => {}
                _ => {
                    self.err(v, Some(what), format!("exception '{name}': 'values' must be a sequence"));
                    return Err(());
                }
            }
        }
        Ok(ExceptionDef { name, fields, single, comps, values, loc: self.loc(e) })
    }

    fn exc_list(&mut self, n: &Node, what: &str) -> R<Vec<String>> {
        let NodeKind::Seq(items) = &n.kind else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for i in items {
            match i.as_text() {
                Some(s) => out.push(unquote_item(&s)),
                None => {
                    self.err(i, Some(what), "exception list values must be scalars");
                    return Err(());
                }
            }
        }
        Ok(out)
    }

    fn rule(&mut self, item: &Node) -> R<()> {
        let name = self.name(item, "rule")?;
        let what = format!("rule '{name}'");
        self.unknown_keys(item, &RULE_KEYS, &what);
        let modes = self.modes(item, &what, &RULE_APPEND, &RULE_REPLACE)?;
        let cond = self.text(item, "condition", &what)?;
        let output = self.text(item, "output", &what)?;
        let desc = self.text(item, "desc", &what)?;
        let priority = match self.text(item, "priority", &what)? {
            Some((p, _)) => match Priority::parse(&p) {
                Some(p) => Some(p),
                None => {
                    let n = item.get("priority").unwrap_or(item);
                    self.err(n, Some(&what), format!("invalid priority '{p}' (use emergency, alert, critical, error, warning, notice, informational/info or debug)"));
                    return Err(());
                }
            },
            None => None,
        };
        let source = self.text(item, "source", &what)?.map(|s| s.0);
        let enabled = self.boolean(item, "enabled", &what)?;
        let warn_evttypes = self.boolean(item, "warn_evttypes", &what)?;
        let skip = self.boolean(item, "skip-if-unknown-filter", &what)?;
        let tags = self.strings(item, "tags", &what)?;
        let exceptions = self.exceptions(item, &what)?;
        let existing = self.set.rules.iter().position(|r| r.name == name);

        let Some(modes) = modes else {
            // A definition; or the deprecated bare `enabled:` toggle of an existing rule.
            if cond.is_none()
                && let (Some(i), Some(en)) = (existing, enabled)
            {
                self.warn(item, Some(&what), "changing 'enabled' without 'override: {enabled: replace}' is deprecated");
                self.set.rules[i].enabled = en;
                return Ok(());
            }
            let mut missing = Vec::new();
            for (k, present) in [
                ("condition", cond.is_some()),
                ("output", output.is_some()),
                ("desc", desc.is_some()),
                ("priority", priority.is_some()),
            ] {
                if !present {
                    missing.push(k);
                }
            }
            if !missing.is_empty() {
                self.err(item, Some(&what), format!("missing required key(s): {}", missing.join(", ")));
                return Err(());
            }
            let (cond, cloc) = cond.unwrap_or_default_loc(self.loc(item));
            let (output, oloc) = output.unwrap_or_default_loc(self.loc(item));
            for e in exceptions.iter().flatten() {
                if e.fields.is_empty() {
                    self.set.error(&e.loc, Some(&what), format!("exception '{}' needs 'fields'", e.name));
                    return Err(());
                }
            }
            let def = RuleDef {
                name,
                condition: CondText::new(cond, cloc),
                output: output.trim_end().to_owned(),
                output_loc: oloc,
                desc: desc.map(|d| d.0).unwrap_or_default(),
                priority: priority.unwrap_or(Priority::Debug),
                source: source.unwrap_or_else(|| super::fields::SYSCALL_SOURCE.into()),
                enabled: enabled.unwrap_or(true),
                tags: tags.unwrap_or_default(),
                exceptions: exceptions.unwrap_or_default(),
                warn_evttypes: warn_evttypes.unwrap_or(true),
                skip_if_unknown_filter: skip.unwrap_or(false),
                extra_fields: Vec::new(),
                loc: self.loc(item),
            };
            match existing {
                Some(i) => self.set.rules[i] = def,
                None => self.set.rules.push(def),
            }
            return Ok(());
        };

        let Some(i) = existing else {
            self.err(item, Some(&what), "cannot append to or override a rule that is not defined yet");
            return Err(());
        };
        let legacy = modes.is_empty();
        let mode_of = |k: &str| {
            if legacy { Some(Mode::Append) } else { modes.get(k).copied() }
        };
        if legacy {
            for k in
                ["output", "desc", "priority", "tags", "enabled", "warn_evttypes", "skip-if-unknown-filter", "source"]
            {
                if let Some(n) = item.get(k) {
                    self.err(
                        n,
                        Some(&what),
                        format!("'append: true' only appends 'condition' and 'exceptions', not '{k}'"),
                    );
                    return Err(());
                }
            }
        }
        let mut exc_err = None;
        let r = &mut self.set.rules[i];
        if let Some((c, cloc)) = cond {
            match mode_of("condition") {
                Some(Mode::Replace) => r.condition = CondText::new(c, cloc),
                _ => r.condition.append(&c, cloc),
            }
        }
        if let Some((o, _)) = output {
            match mode_of("output") {
                Some(Mode::Replace) => r.output = o.trim_end().to_owned(),
                _ => {
                    r.output.push(' ');
                    r.output.push_str(o.trim_end());
                }
            }
        }
        if let Some((d, _)) = desc {
            match mode_of("desc") {
                Some(Mode::Replace) => r.desc = d,
                _ => {
                    r.desc.push(' ');
                    r.desc.push_str(&d);
                }
            }
        }
        if let Some(t) = tags {
            match mode_of("tags") {
                Some(Mode::Replace) => r.tags = t,
                _ => r.tags.extend(t.into_iter().filter(|x| !r.tags.contains(x)).collect::<Vec<_>>()),
            }
        }
        if let Some(p) = priority {
            r.priority = p;
        }
        if let Some(en) = enabled {
            r.enabled = en;
        }
        if let Some(w) = warn_evttypes {
            r.warn_evttypes = w;
        }
        if let Some(s) = skip {
            r.skip_if_unknown_filter = s;
        }
        if let Some(ex) = exceptions {
            if mode_of("exceptions") == Some(Mode::Replace) {
                r.exceptions = ex;
            } else {
                for e in ex {
                    if let Some(old) = r.exceptions.iter_mut().find(|o| o.name == e.name) {
                        if !e.fields.is_empty() && e.fields != old.fields {
                            exc_err = Some((
                                e.loc.clone(),
                                format!("exception '{}' is appended with different fields", e.name),
                            ));
                            break;
                        }
                        old.values.extend(e.values);
                    } else if e.fields.is_empty() {
                        exc_err =
                            Some((e.loc.clone(), format!("exception '{}' is new here and needs 'fields'", e.name)));
                        break;
                    } else {
                        r.exceptions.push(e);
                    }
                }
            }
        }
        if let Some((loc, msg)) = exc_err {
            self.set.error(&loc, Some(&what), msg);
            return Err(());
        }
        Ok(())
    }
}

trait OrLoc {
    fn unwrap_or_default_loc(self, loc: Loc) -> (String, Loc);
}

impl OrLoc for Option<(String, Loc)> {
    fn unwrap_or_default_loc(self, loc: Loc) -> (String, Loc) {
        self.unwrap_or((String::new(), loc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> RuleSet {
        let mut s = RuleSet::default();
        s.load_str("t.yaml", text);
        s
    }

    fn errors(s: &RuleSet) -> Vec<String> {
        s.diagnostics.iter().filter(|d| d.severity == Severity::Error).map(ToString::to_string).collect()
    }

    const BASE: &str = "
- list: shells
  items: [bash, '\"z sh\"']
- macro: spawned
  condition: evt.type = execve
- rule: R
  desc: d
  condition: spawned
  output: out %proc.name
  priority: info
  tags: [a]
";

    #[test]
    fn loads_items() {
        let s = load(BASE);
        assert!(errors(&s).is_empty(), "{:?}", s.diagnostics);
        assert_eq!(s.lists[0].items, vec!["bash", "z sh"]);
        assert_eq!(s.rules[0].priority, Priority::Informational);
        assert_eq!(s.rules[0].condition.parts[0].loc.pos, Pos { line: 8, col: 14 });
    }

    #[test]
    fn selection_by_name_glob_and_tag() {
        let mut s = load(&format!(
            "{BASE}- rule: Other\n  desc: d\n  condition: spawned\n  output: o\n  priority: info\n  tags: [b]\n"
        ));
        assert_eq!(s.select(&Selector::Rule("*".into()), false), 2);
        assert!(s.rules.iter().all(|r| !r.enabled));
        assert_eq!(s.select(&Selector::Tag("b".into()), true), 1);
        assert_eq!(s.select(&Selector::Rule("R".into()), true), 1);
        assert!(s.rules.iter().all(|r| r.enabled));
        assert_eq!(s.select(&Selector::Rule("Oth*".into()), false), 1);
        assert!(!s.rules[1].enabled);
    }

    #[test]
    fn priorities() {
        for (t, p) in [
            ("EMERGENCY", Priority::Emergency),
            ("Info", Priority::Informational),
            ("warning", Priority::Warning),
            ("DeBuG", Priority::Debug),
        ] {
            assert_eq!(Priority::parse(t), Some(p));
        }
        assert_eq!(Priority::parse("warn"), None);
        let s = load("- rule: x\n  desc: d\n  condition: a\n  output: o\n  priority: loud\n");
        assert!(errors(&s)[0].starts_with("t.yaml:5:13: error: rule 'x': invalid priority"), "{:?}", errors(&s));
    }

    #[test]
    fn override_and_append() {
        let s = load(&format!(
            "{BASE}
- list: shells
  items: [zsh]
  override: {{items: append}}
- macro: spawned
  condition: or evt.type = execveat
  append: true
- rule: R
  condition: and proc.name = bash
  output: extra
  tags: [b]
  override: {{condition: append, output: append, tags: append}}
- rule: R
  priority: CRITICAL
  enabled: false
  override: {{priority: replace, enabled: replace}}
"
        ));
        assert!(errors(&s).is_empty(), "{:?}", s.diagnostics);
        assert_eq!(s.lists[0].items, vec!["bash", "z sh", "zsh"]);
        assert_eq!(s.macros[0].condition.text, "evt.type = execve or evt.type = execveat");
        let r = &s.rules[0];
        assert_eq!(r.condition.text, "spawned and proc.name = bash");
        assert_eq!(r.condition.parts.len(), 2);
        assert_eq!(r.output, "out %proc.name extra");
        assert_eq!(r.tags, vec!["a", "b"]);
        assert_eq!(r.priority, Priority::Critical);
        assert!(!r.enabled);
    }

    #[test]
    fn override_errors() {
        let cases = [
            ("- rule: R\n  priority: debug\n  override: {priority: append}\n", "cannot be appended"),
            ("- rule: R\n  condition: x\n  override: {condition: append}\n  append: true\n", "cannot be used together"),
            ("- rule: Nope\n  condition: x\n  override: {condition: append}\n", "not defined yet"),
            ("- rule: R\n  condition: x\n  output: y\n  override: {condition: append}\n", "without an override mode"),
            ("- rule: R\n  override: {condition: replace}\n", "has no 'condition'"),
            ("- list: nope\n  items: [a]\n  append: true\n", "not defined yet"),
            ("- rule: R\n  output: x\n  append: true\n", "only appends"),
            ("- rule: New\n  condition: x\n", "missing required key(s): output, desc, priority"),
        ];
        for (extra, want) in cases {
            let s = load(&format!("{BASE}{extra}"));
            let e = errors(&s);
            assert!(e.iter().any(|m| m.contains(want)), "{extra}: {e:?}");
        }
    }

    #[test]
    fn redefinition_keeps_position_and_enabled_toggle_warns() {
        let s = load(&format!("{BASE}- macro: spawned\n  condition: evt.type = open\n- rule: R\n  enabled: false\n"));
        assert!(errors(&s).is_empty());
        assert_eq!(s.macros.len(), 1);
        assert_eq!(s.macros[0].condition.text, "evt.type = open");
        assert!(!s.rules[0].enabled);
        assert!(s.diagnostics.iter().any(|d| d.message.contains("deprecated")));
    }

    #[test]
    fn exceptions_forms() {
        let s = load(&format!(
            "{BASE}
- rule: E
  desc: d
  condition: evt.type = open
  output: o
  priority: warning
  exceptions:
    - name: pw
      fields: [proc.name, fd.directory]
      comps: [=, in]
      values:
        - [cat, [/etc, /tmp]]
    - name: files
      fields: fd.filename
      values: [a, b]
- rule: E
  exceptions:
    - name: pw
      values:
        - [dog, shells]
    - name: more
      fields: proc.pname
      comps: in
      values: [x]
  override: {{exceptions: append}}
"
        ));
        assert!(errors(&s).is_empty(), "{:?}", s.diagnostics);
        let r = &s.rules[1];
        assert_eq!(r.exceptions.len(), 3);
        assert_eq!(r.exceptions[0].values.len(), 2);
        assert!(r.exceptions[1].single);
        assert_eq!(r.exceptions[1].values, vec![vec![ExcValue::One("a".into())], vec![ExcValue::One("b".into())]]);
    }

    #[test]
    fn versions_and_unknowns() {
        let s = load(
            "- required_engine_version: 0.57.0\n- required_engine_version: 99.0.0\n- required_plugin_versions:\n    - name: cloudtrail\n      version: 0.1.0\n- something: x\n",
        );
        let e = errors(&s);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("t.yaml:2:28"), "{e:?}");
        assert_eq!(s.diagnostics.iter().filter(|d| d.severity == Severity::Warning).count(), 2);
        let s = load("- required_engine_version: 13\n");
        assert!(errors(&s).is_empty());
    }

    #[test]
    fn yaml_errors_have_positions() {
        let s = load("- rule: x\n  desc: [\n");
        assert!(errors(&s)[0].starts_with("t.yaml:"), "{:?}", errors(&s));
        let s = load("rule: x\n");
        assert!(errors(&s)[0].contains("sequence"));
    }

    #[test]
    fn unquoting() {
        assert_eq!(unquote_item("'\"a\"'"), "\"a\"");
        assert_eq!(unquote_item("\"(systemd)\""), "(systemd)");
        assert_eq!(unquote_item("\"sh -c \\\"x\\\"\""), "sh -c \"x\"");
        assert_eq!(unquote_item("plain"), "plain");
    }

    proptest::proptest! {
        #[test]
        fn loader_never_panics(s in ".{0,300}") {
            let mut set = RuleSet::default();
            set.load_str("p.yaml", &s);
        }

        #[test]
        fn loader_never_panics_on_item_soup(parts in proptest::collection::vec(proptest::sample::select(vec![
            "- rule: a\n", "- macro: m\n", "- list: l\n", "  condition: x\n", "  items: [a]\n", "  append: true\n",
            "  override: {condition: append}\n", "  exceptions:\n    - name: e\n      fields: [a]\n", "  priority: x\n",
            "  output: o\n", "  desc: d\n", "  enabled: false\n", "- [\n", "  values: [[a]]\n",
        ]), 0..20)) {
            let mut set = RuleSet::default();
            set.load_str("p.yaml", &parts.concat());
        }
    }
}
