//! The engine: compiled rules indexed by event type (and process name, see [`super::index`]),
//! evaluated against any [`FieldSource`].
//! Immutable after building, so one engine can serve many threads (`Send + Sync`); each
//! thread brings its own [`Scratch`].

use std::collections::BTreeSet;

use super::compile::{self, CompiledRule};
use super::eval::{Ctx, Node, Operand, Scratch, StrTest, TestKind};
use super::event::FieldSource;
use super::fields::{Field, SYSCALL_SOURCE};
use super::index::RuleIndex;
use super::loader::{Diagnostic, Priority, RuleSet, Severity};
use super::output::Alert;
use super::prefilter::Prefilter;

/// Whether an event stops at its first matching rule (Falco's default) or meets all rules.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RuleMatching {
    /// Stop at the first matching rule, in load order.
    #[default]
    First,
    /// Report every matching rule.
    All,
}

/// Engine settings.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// First or all matches per event.
    pub rule_matching: RuleMatching,
    /// Rules less severe than this are not loaded.
    pub min_priority: Priority,
    /// Host name put into alerts.
    pub hostname: String,
    /// Text appended to the outputs of the rules each entry matches, in order (Falco's
    /// `append_output`; the suggested fields are [`AppendOutput::suggested`]).
    pub append_output: Vec<AppendOutput>,
    /// Rules switched on (true) or off once loaded, in order (Falco's `rules:` selection).
    pub select: Vec<(super::Selector, bool)>,
}

/// The container and pod fields Falco 0.41+ appends to syscall rule outputs by default
/// (`append_output: [{suggested_output: true}]`: the fields the container plugin suggests,
/// in its order, each named as the field with `_` for `.`).
pub const SUGGESTED_OUTPUT: &str = "container_id=%container.id container_name=%container.name \
    container_image_repository=%container.image.repository container_image_tag=%container.image.tag \
    k8s_pod_name=%k8s.pod.name k8s_ns_name=%k8s.ns.name";

/// An entry of Falco's `append_output`: `text` (with `%field`s) appended to the output of
/// each rule of `source`, carrying every one of `tags`, named `rule`; an unset match
/// matches any rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppendOutput {
    /// The rules it is for (`match`).
    #[serde(rename = "match", default)]
    pub matches: AppendMatch,
    /// What is appended to the text (`extra_output`).
    #[serde(rename = "extra_output", default)]
    pub text: String,
    /// Fields added to the alerts alone, not to their text (`extra_fields`): a field's
    /// name (`evt.hostname`), or `{name: value}` (`{cluster: prod}`; `${VAR}` is the
    /// environment's `VAR`).
    #[serde(rename = "extra_fields", default)]
    pub fields: Vec<ExtraField>,
}

/// An `extra_fields` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExtraField {
    /// A field, its value the event's.
    Field(String),
    /// A name with a set value.
    Constant(String, String),
}

impl<'de> serde::Deserialize<'de> for ExtraField {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Field(String),
            Constant(std::collections::BTreeMap<String, String>),
        }
        match Raw::deserialize(d)? {
            Raw::Field(name) => Ok(ExtraField::Field(name)),
            Raw::Constant(map) if map.len() == 1 => {
                let (name, value) = map.into_iter().next().expect("one entry");
                Ok(ExtraField::Constant(name, expand_env(&value)))
            }
            Raw::Constant(_) => Err(serde::de::Error::custom("an extra field is a field name or one `name: value`")),
        }
    }
}

/// `text` with each `${NAME}` replaced by the environment's `NAME` (empty when unset) and
/// `$${` kept as `${`, as Falco expands its configuration's values.
pub(crate) fn expand_env(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        if rest[..at].ends_with('$') {
            out.push_str(&rest[..at - 1]);
            out.push_str("${");
            rest = &rest[at + 2..];
            continue;
        }
        let Some(end) = rest[at..].find('}') else { break };
        out.push_str(&rest[..at]);
        out.push_str(&std::env::var(&rest[at + 2..at + end]).unwrap_or_default());
        rest = &rest[at + end + 1..];
    }
    out.push_str(rest);
    out
}

/// Which rules an [`AppendOutput`] is for.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppendMatch {
    /// The rule's source (`syscall`, `k8s_audit`).
    #[serde(default)]
    pub source: Option<String>,
    /// Tags the rule must all carry.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The rule's name.
    #[serde(default)]
    pub rule: Option<String>,
}

impl AppendOutput {
    /// Falco's suggested fields, appended to every syscall rule's output.
    pub fn suggested() -> AppendOutput {
        AppendOutput {
            matches: AppendMatch { source: Some(SYSCALL_SOURCE.to_owned()), ..AppendMatch::default() },
            text: SUGGESTED_OUTPUT.to_owned(),
            fields: Vec::new(),
        }
    }

    fn applies_to(&self, rule: &super::loader::RuleDef) -> bool {
        let m = &self.matches;
        m.source.as_ref().is_none_or(|s| *s == rule.source)
            && m.rule.as_ref().is_none_or(|r| *r == rule.name)
            && m.tags.iter().all(|t| rule.tags.contains(t))
    }
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            rule_matching: RuleMatching::First,
            min_priority: Priority::Debug,
            hostname: default_hostname(),
            append_output: Vec::new(),
            select: Vec::new(),
        }
    }
}

/// The node's name for alerts: `SENSOR_HOSTNAME` (a DaemonSet sets it to the node's name;
/// a pod's own host name is the pod's), else `FALCO_HOSTNAME`, else the kernel's host name.
pub fn default_hostname() -> String {
    for var in ["SENSOR_HOSTNAME", "FALCO_HOSTNAME"] {
        if let Ok(h) = std::env::var(var)
            && !h.is_empty()
        {
            return h;
        }
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_default()
}

/// Compiled rules ready to evaluate events.
#[derive(Debug)]
pub struct Engine {
    rules: Vec<CompiledRule>,
    /// Each rule's source, as its position in `sources`: compared per candidate rule
    /// without comparing text.
    source_of: Vec<usize>,
    sources: Vec<String>,
    index: RuleIndex,
    slots: usize,
    opts: EngineOptions,
}

impl Engine {
    /// Compiles a loaded rule set. Returns the engine (when there was no error) and all
    /// diagnostics, loader ones first.
    pub fn build(set: &RuleSet, opts: EngineOptions) -> (Option<Engine>, Vec<Diagnostic>) {
        let appended;
        let set = if opts.append_output.is_empty() {
            set
        } else {
            let mut with = set.clone();
            for r in &mut with.rules {
                let entries: Vec<&AppendOutput> = opts.append_output.iter().filter(|a| a.applies_to(r)).collect();
                for entry in entries {
                    if !entry.text.is_empty() {
                        r.output = format!("{} {}", r.output.trim_end(), entry.text);
                    }
                    r.extra_fields.extend(entry.fields.iter().cloned());
                }
            }
            appended = with;
            &appended
        };
        let compiled = compile::compile(set);
        let mut diags = set.diagnostics.clone();
        diags.extend(compiled.diagnostics);
        if diags.iter().any(|d| d.severity == Severity::Error) {
            return (None, diags);
        }
        let rules: Vec<CompiledRule> = compiled.rules.into_iter().filter(|r| r.priority <= opts.min_priority).collect();
        let index = RuleIndex::build(&rules);
        let mut sources: Vec<String> = Vec::new();
        let source_of = rules
            .iter()
            .map(|r| match sources.iter().position(|s| *s == r.source) {
                Some(at) => at,
                None => {
                    sources.push(r.source.clone());
                    sources.len() - 1
                }
            })
            .collect();
        (Some(Engine { rules, source_of, sources, index, slots: compiled.slots, opts }), diags)
    }

    /// Number of loaded (enabled, compiled) rules.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Names of the loaded rules, in load order.
    pub fn rule_names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.name.as_str())
    }

    /// Name, description, priority and tags of each loaded rule, in load order.
    pub fn describe(&self) -> Vec<(&str, &str, Priority, &[String])> {
        self.rules.iter().map(|r| (r.name.as_str(), r.desc.as_str(), r.priority, &r.tags[..])).collect()
    }

    /// The event types some syscall rule can match, or `None` when one matches any type
    /// (for choosing what the kernel side captures).
    pub fn event_types(&self) -> Option<BTreeSet<String>> {
        if self.rules.iter().any(|r| r.source == SYSCALL_SOURCE && r.evttypes.is_none()) {
            return None;
        }
        Some(self.index.types().map(str::to_owned).collect())
    }

    /// What the kernel may keep back for these rules (see [`Prefilter`]).
    pub fn prefilter(&self) -> Prefilter {
        Prefilter::compile(&self.rules)
    }

    /// The text constants the rules compare any of `fields` with by `=` or `in` (the DNS
    /// names of `fd.sip.name = "..."`, which must be resolved ahead of events).
    pub fn strings_compared_with(&self, fields: &[Field]) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for r in &self.rules {
            collect_strings(&r.cond, fields, &mut out);
        }
        out
    }

    /// Evaluates an event and returns the alerts (one, or all with `RuleMatching::All`).
    pub fn process(&self, ev: &dyn FieldSource, scratch: &mut Scratch) -> Vec<Alert> {
        self.process_admitted(ev, scratch, &mut |_| true)
    }

    /// [`Engine::process`], rendering the alert of a matching rule only if `admit(rule name)`:
    /// a rule whose alerts would be dropped anyway (its share of the alert queue is full)
    /// costs no rendering.
    pub fn process_admitted(
        &self,
        ev: &dyn FieldSource,
        scratch: &mut Scratch,
        admit: &mut dyn FnMut(&str) -> bool,
    ) -> Vec<Alert> {
        let mut out = Vec::new();
        let Some(source) = self.sources.iter().position(|s| s == ev.source()) else {
            return out;
        };
        let mut ctx = Ctx::new(ev, scratch, self.slots);
        let mut selection = self.index.select(ev.event_type(), &mut ctx);
        for c in selection.candidates() {
            if self.source_of[c.rule] != source || !selection.matches(c, &mut ctx) {
                continue;
            }
            let r = &self.rules[c.rule];
            if !admit(&r.name) {
                if self.opts.rule_matching == RuleMatching::First {
                    break;
                }
                continue;
            }
            let (message, fields) = r.output.format(&mut ctx);
            out.push(Alert {
                time_ns: ev.timestamp_ns(),
                rule: r.name.clone(),
                priority: r.priority,
                source: r.source.clone(),
                hostname: self.opts.hostname.clone(),
                message,
                tags: r.tags.clone(),
                fields,
            });
            if self.opts.rule_matching == RuleMatching::First {
                break;
            }
        }
        out
    }

    /// [`Engine::process`] with a fresh scratch (simple, allocates).
    pub fn process_one(&self, ev: &dyn FieldSource) -> Vec<Alert> {
        self.process(ev, &mut Scratch::default())
    }
}

/// Adds to `out` the strings of `node`'s `=` and `in` tests on any of `fields`.
fn collect_strings(node: &Node, fields: &[Field], out: &mut BTreeSet<String>) {
    match node {
        Node::Const(_) => {}
        Node::And(nodes) | Node::Or(nodes) => nodes.iter().for_each(|n| collect_strings(n, fields, out)),
        Node::Not(n) => collect_strings(n, fields, out),
        Node::Test(t) => {
            let Operand::Field { id, .. } = &t.lhs else { return };
            if !fields.contains(id) {
                return;
            }
            match &t.kind {
                TestKind::Str(StrTest::Eq(v) | StrTest::Ne(v)) => {
                    out.insert(v.clone());
                }
                TestKind::Str(StrTest::In(set)) => out.extend(set.iter().cloned()),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Engine>();
    }
}
