//! Rule-engine throughput on one core: the stable Falco ruleset over a mix of exec, open and
//! connect events, against the cost of decoding the same events (JSON lines → `FieldMapEvent`)
//! without rules. Run: `AYA_BUILD_SKIP=1 cargo bench -p sensor --bench rules`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sensor::{
    pipeline::load_rules,
    rules::{EngineOptions, Scratch},
    state::FieldMapEvent,
};
use serde_json::json;

const FALCO_RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/falco/falco_rules.yaml");

/// A deterministic, mostly benign mix: 40% exec, 40% open, 20% connect.
fn events(n: usize) -> Vec<String> {
    let procs = ["bash", "python3", "nginx", "java", "curl", "cat", "sh", "node", "sshd", "grep"];
    let parents = ["systemd", "bash", "containerd-shim", "sshd", "runc", "node", "nginx"];
    let files = [
        "/etc/hosts",
        "/usr/lib/x86_64-linux-gnu/libc.so.6",
        "/var/log/app.log",
        "/proc/self/stat",
        "/etc/shadow",
        "/home/u/.bashrc",
    ];
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let p = procs[i % procs.len()];
        let pp = parents[(i / 3) % parents.len()];
        let container = if i % 4 == 0 { "host".to_owned() } else { format!("{:012x}", i % 7 + 0xabc) };
        let common = json!({
            "proc.name": p, "proc.pname": pp, "proc.aname": [pp, "systemd"], "proc.exe": format!("/usr/bin/{p}"),
            "proc.exepath": format!("/usr/bin/{p}"), "proc.args": format!("--flag {i}"), "proc.tty": if i % 5 == 0 { 34816 } else { 0 },
            "user.name": "root", "user.uid": 0, "user.loginuid": -1, "container.id": container, "proc.duration": 9_000_000_000_u64,
            "evt.rawtime": 1_700_000_000_000_000_000_u64 + i as u64,
        });
        let mut ev = common.as_object().cloned().unwrap_or_default();
        let specific = match i % 5 {
            0 | 1 => {
                json!({"evt.type": "execve", "proc.is_exe_upper_layer": false})
            }
            2 | 3 => json!({
                "evt.type": "openat", "fd.name": files[i % files.len()], "fd.nameraw": files[i % files.len()], "fd.typechar": "f",
                "fd.num": 3, "evt.is_open_read": true, "evt.is_open_write": i % 7 == 0, "evt.arg.flags": "O_RDONLY|O_CLOEXEC",
            }),
            _ => json!({
                "evt.type": "connect", "fd.typechar": "4", "fd.l4proto": "tcp", "fd.cip": "10.0.0.5",
                "fd.sip": if i % 2 == 0 { "93.184.216.34" } else { "10.0.0.9" }, "fd.sport": 443, "evt.rawres": 0,
                "evt.res": "SUCCESS", "fd.sip.name": "example.com",
            }),
        };
        if let Some(m) = specific.as_object() {
            ev.extend(m.clone());
        }
        out.push(serde_json::Value::Object(ev).to_string());
    }
    out
}

fn decode(lines: &[String]) -> Vec<FieldMapEvent> {
    lines.iter().map(|l| FieldMapEvent::from_json(&serde_json::from_str(l).expect("json")).expect("event")).collect()
}

fn bench(c: &mut Criterion) {
    let (engine, _) = load_rules(&[FALCO_RULES.into()], EngineOptions::default()).unwrap_or_else(|r| panic!("{r}"));
    let lines = events(1000);
    let decoded = decode(&lines);
    let mut g = c.benchmark_group("falco_rules");
    g.throughput(Throughput::Elements(lines.len() as u64));
    g.bench_function("decode_only", |b| b.iter(|| black_box(decode(black_box(&lines)))));
    g.bench_function("decode_and_rules", |b| {
        let mut scratch = Scratch::default();
        b.iter(|| {
            let mut alerts = 0;
            for ev in decode(black_box(&lines)) {
                alerts += engine.process(&ev.view(), &mut scratch).len();
            }
            black_box(alerts)
        });
    });
    g.bench_function("rules_only", |b| {
        let mut scratch = Scratch::default();
        b.iter(|| {
            let mut alerts = 0;
            for ev in &decoded {
                alerts += engine.process(&black_box(ev).view(), &mut scratch).len();
            }
            black_box(alerts)
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
