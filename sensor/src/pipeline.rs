//! The pipeline from decoded events to alerts: state, then rules. Live capture and replay
//! both go through it, so a recorded capture alerts exactly as it would have live.

use sensor_abi::syscalls::{SYSCALLS, Syscall};

use crate::{
    enrich::ContainerView,
    event::Event,
    rules::{Alert, Engine, Scratch},
    state::State,
};

/// The built-in rules, used when no `--rules` are given.
pub const DEFAULT_RULES: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/default.yaml"));
/// The name the built-in rules are reported under.
pub const DEFAULT_RULES_NAME: &str = "<built-in>/default.yaml";

/// Syscalls the state needs whatever the rules say: process lifecycle and the fd table
/// (Falco's state set, reference §2.2, within what the sensor captures).
pub const STATE_SYSCALLS: &[&str] = &[
    "execve",
    "execveat",
    "clone",
    "clone3",
    "fork",
    "vfork",
    "capset",
    "open",
    "openat",
    "openat2",
    "creat",
    "close",
    "dup",
    "dup2",
    "dup3",
    "socket",
    "connect",
    "accept",
    "accept4",
    "bind",
    "listen",
    "memfd_create",
];

/// The syscalls to capture for `engine`: every one its rules can match, plus
/// [`STATE_SYSCALLS`]. Rules without an event type match everything, so everything is
/// captured then.
pub fn syscalls_for(engine: &Engine) -> Vec<&'static Syscall> {
    match engine.event_types() {
        None => SYSCALLS.iter().collect(),
        Some(types) => SYSCALLS.iter().filter(|s| types.contains(s.name) || STATE_SYSCALLS.contains(&s.name)).collect(),
    }
}

/// Events in, alerts out.
pub struct Pipeline {
    state: State,
    engine: Engine,
    scratch: Scratch,
    events: u64,
}

impl Pipeline {
    /// A pipeline over `state` with the rules of `engine`.
    pub fn new(engine: Engine, state: State) -> Self {
        Self { state, engine, scratch: Scratch::default(), events: 0 }
    }

    /// Runs one event through state and rules, without container metadata.
    pub fn process(&mut self, ev: &Event) -> Vec<Alert> {
        self.prepare(ev);
        self.finish(ev, None)
    }

    /// First half of [`process`](Self::process): applies the event to the state. The
    /// caller may then look up the event's container ([`State::container_of`]) before `finish`.
    pub fn prepare(&mut self, ev: &Event) {
        self.events += 1;
        self.state.before(ev);
    }

    /// Second half of [`process`](Self::process): evaluates the rules on the event with
    /// its container's metadata, then applies what must wait until after them.
    pub fn finish(&mut self, ev: &Event, container: Option<&ContainerView>) -> Vec<Alert> {
        let alerts = self.engine.process(&self.state.view(ev, container), &mut self.scratch);
        self.state.after(ev);
        alerts
    }

    /// Runs the rules alone on an event that carries its own field values (a replayed
    /// field map), without state.
    pub fn evaluate(&mut self, ev: &dyn crate::rules::FieldSource) -> Vec<Alert> {
        self.events += 1;
        self.engine.process(ev, &mut self.scratch)
    }

    /// The state, mutably (to record what enrichment found).
    pub fn state_mut(&mut self) -> &mut State {
        &mut self.state
    }

    /// The state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Events processed.
    pub fn events(&self) -> u64 {
        self.events
    }
}

/// Loads the rules of `paths`, or the built-in rules when there are none. On failure,
/// the diagnostics to print (every one with file:line:column).
pub fn load_rules(
    paths: &[std::path::PathBuf],
    opts: crate::rules::EngineOptions,
) -> Result<(Engine, Vec<crate::rules::Diagnostic>), crate::rules::Report> {
    if !paths.is_empty() {
        return crate::rules::load_engine(paths, opts);
    }
    let mut set = crate::rules::RuleSet::default();
    set.load_str(DEFAULT_RULES_NAME, DEFAULT_RULES);
    match Engine::build(&set, opts) {
        (Some(engine), diagnostics) => Ok((engine, diagnostics)),
        (None, diagnostics) => Err(crate::rules::Report {
            rules: set.rules.len(),
            macros: set.macros.len(),
            lists: set.lists.len(),
            loaded_rules: 0,
            diagnostics,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_rules_load_cleanly() {
        let (engine, diagnostics) =
            load_rules(&[], crate::rules::EngineOptions::default()).expect("built-in rules load");
        let errors: Vec<_> = diagnostics.iter().filter(|d| d.severity == crate::rules::Severity::Error).collect();
        assert!(errors.is_empty(), "{errors:?}");
        assert!(engine.rule_count() >= 6);
        let names: Vec<_> = syscalls_for(&engine).iter().map(|s| s.name).collect();
        assert!(names.contains(&"ptrace") && names.contains(&"init_module") && names.contains(&"openat"));
        assert!(!names.contains(&"mount"), "no rule or state needs mount: {names:?}");
    }
}
