//! The live path on one core: kernel records (as the rings deliver them) decoded, applied to
//! the state and evaluated by the rules, against decoding alone. Built-in rules and Falco's
//! stable rules, over a 40/40/20 exec/open/connect mix of records from a few processes.
//! Run: `AYA_BUILD_SKIP=1 cargo bench -p sensor --bench live`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sensor::{
    event::{Clock, decode},
    pipeline::{DEFAULT_RULES, Pipeline, load_rules},
    rules::{Engine, EngineOptions, RuleSet},
    state::{State, StateConfig},
};
use sensor_abi::record::{ABI_VERSION, BlobHeader, HEADER_SIZE, Header, RecordKind, SyscallBody, blob_slot};

const FALCO_RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/falco/falco_rules.yaml");

fn bytes_of<T>(v: &T) -> &[u8] {
    // SAFETY: the ABI structs are plain integers without padding.
    unsafe { std::slice::from_raw_parts(v as *const T as *const u8, size_of::<T>()) }
}

/// A syscall record as the kernel writes it.
fn record(pid: u32, comm: &str, nr: u32, ret: i64, args: [u64; 6], blobs: &[(u8, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (slot, data) in blobs {
        let h = BlobHeader { arg: *slot, flags: 0, len: data.len() as u16 };
        body.extend_from_slice(bytes_of(&h));
        body.extend_from_slice(data);
    }
    let mut name = [0u8; 16];
    name[..comm.len()].copy_from_slice(comm.as_bytes());
    let sc = SyscallBody { nr, nblobs: blobs.len() as u16, flags: 0, ret, args };
    let len = HEADER_SIZE + size_of::<SyscallBody>() + body.len();
    let h = Header {
        version: ABI_VERSION,
        kind: RecordKind::Syscall as u16,
        len: len as u32,
        ts_boot_ns: 1_000_000_000,
        tid: pid,
        pid,
        ns_tid: pid,
        ns_pid: pid,
        ppid: 1,
        comm: name,
        ..Header::default()
    };
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(bytes_of(&h));
    out.extend_from_slice(bytes_of(&sc));
    out.extend_from_slice(&body);
    out
}

/// 40 % exec, 40 % open, 20 % connect, from ten processes.
fn records(n: usize) -> Vec<Vec<u8>> {
    let procs = ["bash", "python3", "nginx", "java", "curl", "cat", "sh", "node", "sshd", "grep"];
    let files =
        ["/etc/hosts", "/usr/lib/x86_64-linux-gnu/libc.so.6", "/var/log/app.log", "/proc/self/stat", "/etc/shadow"];
    let sockaddr = |ip: [u8; 4]| {
        let mut a = vec![2, 0, 1, 187];
        a.extend_from_slice(&ip);
        a.extend_from_slice(&[0; 8]);
        a
    };
    (0..n)
        .map(|i| {
            let pid = 1000 + (i % procs.len()) as u32;
            let comm = procs[i % procs.len()];
            match i % 5 {
                0 | 1 => {
                    let exe = format!("/usr/bin/{comm}");
                    let argv = format!("{comm}\0--flag\0{i}\0");
                    record(
                        pid,
                        comm,
                        59,
                        0,
                        [0; 6],
                        &[
                            (0, exe.as_bytes()),
                            (blob_slot::EXE_FILE, exe.as_bytes()),
                            (blob_slot::ARGV, argv.as_bytes()),
                        ],
                    )
                }
                2 | 3 => {
                    let path = files[i % files.len()];
                    record(pid, comm, 257, 3, [u64::MAX - 99, 0, 0, 0, 0, 0], &[(1, path.as_bytes())])
                }
                _ => {
                    let ip = if i % 2 == 0 { [93, 184, 216, 34] } else { [10, 0, 0, 9] };
                    record(pid, comm, 42, 0, [3, 0, 16, 0, 0, 0], &[(1, &sockaddr(ip))])
                }
            }
        })
        .collect()
}

fn engine(files: &[&str]) -> Engine {
    if files.is_empty() {
        let mut set = RuleSet::default();
        for (name, text) in DEFAULT_RULES {
            set.load_str(name, text);
        }
        return Engine::build(&set, EngineOptions::default()).0.expect("built-in rules");
    }
    let paths: Vec<std::path::PathBuf> = files.iter().map(Into::into).collect();
    load_rules(&paths, EngineOptions::default()).unwrap_or_else(|r| panic!("{r}")).0
}

fn bench(c: &mut Criterion) {
    let clock = Clock::now();
    let recs = records(1000);
    for r in &recs {
        decode(r, &clock).expect("the bench's records decode");
    }
    let mut g = c.benchmark_group("live_path");
    g.throughput(Throughput::Elements(recs.len() as u64));
    g.bench_function("decode_only", |b| {
        b.iter(|| {
            for r in &recs {
                black_box(decode(black_box(r), &clock).ok());
            }
        })
    });
    for (name, files) in [("built_in", &[][..]), ("falco", &[FALCO_RULES][..])] {
        let mut pipeline = Pipeline::new(engine(files), State::new(StateConfig::default()));
        g.bench_function(format!("decode_state_rules_{name}"), |b| {
            b.iter(|| {
                let mut alerts = 0;
                for r in &recs {
                    if let Ok(ev) = decode(black_box(r), &clock) {
                        alerts += pipeline.process(&ev).len();
                    }
                }
                black_box(alerts)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
