//! Loading and compiling any rules file, then evaluating an event, must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sensor::{
    rules::{Engine, EngineOptions, RuleSet},
    state::FieldMapEvent,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut set = RuleSet::default();
    set.load_str("fuzz.yaml", text);
    let opts = EngineOptions { hostname: "fuzz".into(), ..EngineOptions::default() };
    if let (Some(engine), _) = Engine::build(&set, opts) {
        let ev = serde_json::json!({"evt.type": "openat", "proc.name": "cat", "fd.name": "/etc/shadow", "fd.num": 3});
        if let Ok(ev) = FieldMapEvent::from_json(&ev) {
            for alert in engine.process_one(&ev.view()) {
                let _ = alert.to_json();
            }
        }
    }
});
