//! Capture benchmarks (run as root by `cargo xtask bench`); every figure is a ratio
//! against a baseline measured in the same run, never a timed assertion.
//!
//! (a) Throughput: two processes, one per CPU, run openat+close loops while the sensor
//!     captures them; events decoded in user space per second, and events lost.
//! (b) Cost per syscall: an openat+close loop pinned to CPU 0 (the reader on CPU 1), with
//!     nothing attached, with an empty `sys_exit` program (the dispatch floor), and with
//!     the sensor capturing every supported syscall. Rounds alternate; medians are shown.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use sensor::{
    capture::{Capture, CaptureConfig, FloorProbe},
    event::{Clock, decode},
    pipeline::{Pipeline, load_rules, syscalls_for},
    rules::EngineOptions,
    state::{State, StateConfig},
};
use sensor_tests::{actor, require_root};

const LOOP_ITERS: &str = "200000";
const ROUNDS: usize = 7;
const THROUGHPUT_ITERS: &str = "400000";

fn pin_self(cpus: &[usize]) {
    // SAFETY: a zeroed cpu_set_t is empty; CPU_SET writes within it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        libc::sched_setaffinity(0, size_of_val(&set), &set);
    }
}

/// A capture whose records are decoded and counted by a task of `rt`.
struct Running {
    capture_task: tokio::task::JoinHandle<Capture>,
    stop: Arc<AtomicBool>,
    decoded: Arc<AtomicU64>,
}

fn start_capture(rt: &tokio::runtime::Runtime, cfg: CaptureConfig) -> Running {
    let mut capture = rt.block_on(async { Capture::start(&cfg) }).expect("capture starts");
    let stop = Arc::new(AtomicBool::new(false));
    let decoded = Arc::new(AtomicU64::new(0));
    let (stop2, decoded2) = (stop.clone(), decoded.clone());
    let capture_task = rt.spawn(async move {
        let clock = Clock::now();
        while !stop2.load(Ordering::Relaxed) {
            let Ok(Some(batch)) = tokio::time::timeout(Duration::from_millis(50), capture.next_batch()).await else {
                continue;
            };
            let n = batch.iter().filter(|r| decode(r, &clock).is_ok()).count();
            decoded2.fetch_add(n as u64, Ordering::Relaxed);
        }
        capture
    });
    Running { capture_task, stop, decoded }
}

impl Running {
    /// Stops reading; returns (decoded, lost) totals.
    fn finish(self, rt: &tokio::runtime::Runtime) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        let capture = rt.block_on(self.capture_task).unwrap();
        let lost = capture.counters().unwrap().iter().map(|c| c.lost).sum();
        (self.decoded.load(Ordering::Relaxed), lost)
    }
}

/// Resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// (c) The live pipeline (decode, state, built-in rules) on this process's runtime.
fn pipeline_section(rt: &tokio::runtime::Runtime) {
    println!("\n(c) live pipeline: decode + state + built-in rules, one task");
    let (engine, _) = load_rules(&[], EngineOptions::default()).expect("built-in rules");
    let cfg = CaptureConfig { syscalls: syscalls_for(&engine), ..CaptureConfig::default() };
    let mut capture = rt.block_on(async { Capture::start(&cfg) }).expect("capture starts");
    let clock = Clock::now();
    let pipeline = Pipeline::new(engine, State::from_proc(StateConfig::default(), clock.wall(0) as i128));
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let task = rt.spawn(async move {
        let mut pipeline = pipeline;
        let mut alerts = 0u64;
        while !stop2.load(Ordering::Relaxed) {
            let Ok(Some(batch)) = tokio::time::timeout(Duration::from_millis(50), capture.next_batch()).await else {
                continue;
            };
            for r in batch {
                if let Ok(ev) = decode(&r, &clock) {
                    alerts += pipeline.process(&ev).len() as u64;
                }
            }
        }
        (capture, pipeline, alerts)
    });
    std::thread::sleep(Duration::from_millis(300));
    let rss_before = rss_kib();
    let forks = Instant::now();
    actor(&["forks", "10000"]);
    let forks = forks.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let rss_after_forks = rss_kib();

    let start = Instant::now();
    let loops: Vec<_> =
        (0..2).map(|cpu| std::thread::spawn(move || actor(&["loop", THROUGHPUT_ITERS, &cpu.to_string()]))).collect();
    for l in loops {
        l.join().unwrap();
    }
    let produced = start.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let (capture, pipeline, alerts) = rt.block_on(task).unwrap();
    let lost: u64 = capture.counters().unwrap().iter().map(|c| c.lost).sum();
    let stats = pipeline.state().stats();
    println!(
        "  10,000 short-lived processes in {:.2} s: RSS {rss_before} KiB before, {rss_after_forks} KiB after \
         ({:+} KiB); {} processes tracked at the end, {} evicted",
        forks.as_secs_f64(),
        rss_after_forks as i64 - rss_before as i64,
        stats.processes,
        stats.evicted
    );
    println!(
        "  {} events through the pipeline in {:.2} s of load: {:.0} events/s, {lost} lost in the kernel, {alerts} alerts",
        pipeline.events(),
        produced.as_secs_f64(),
        pipeline.events() as f64 / produced.as_secs_f64()
    );
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn loop_cost() -> f64 {
    actor(&["loop", LOOP_ITERS, "0"]).float("ns_per_iter")
}

fn main() {
    require_root();
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` asks harness-less benches for nothing.
    }
    // The reader side (this process) on CPU 1; the loops pin themselves to CPU 0.
    pin_self(&[1]);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();

    println!("(b) openat+close loop, {LOOP_ITERS} iterations pinned to CPU 0, {ROUNDS} alternating rounds");
    let (mut none, mut floor, mut sensor) = (Vec::new(), Vec::new(), Vec::new());
    let mut sensor_lost = 0;
    for _ in 0..ROUNDS {
        none.push(loop_cost());
        {
            let _floor = FloorProbe::attach().expect("floor probe attaches");
            floor.push(loop_cost());
        }
        let running = start_capture(&rt, CaptureConfig::default());
        sensor.push(loop_cost());
        sensor_lost += running.finish(&rt).1;
    }
    let (none, floor, sensor) = (median(&mut none), median(&mut floor), median(&mut sensor));
    println!("  {:<44} {:>9} {:>8}", "configuration", "ns/iter", "ratio");
    println!("  {:<44} {:>9.0} {:>7.2}x", "nothing attached (baseline)", none, 1.0);
    println!("  {:<44} {:>9.0} {:>7.2}x", "empty tp_btf sys_exit program (floor)", floor, floor / none);
    let all = format!("sensor, all {} syscalls, decoding", sensor_abi::syscalls::SYSCALLS.len());
    println!("  {:<44} {:>9.0} {:>7.2}x", all, sensor, sensor / none);
    println!(
        "  sensor above the floor: {:.0} ns per iteration (2 syscalls, 2 events); events lost: {sensor_lost}",
        sensor - floor
    );

    println!("\n(a) throughput: 2 processes x {THROUGHPUT_ITERS} openat+close, one per CPU, reader unpinned");
    pin_self(&[0, 1]);
    for (label, ring) in [("8 MiB ring (default)", 8u32 << 20), ("32 MiB ring", 32 << 20)] {
        let cfg = CaptureConfig {
            syscalls: ["openat", "close"].iter().filter_map(|n| sensor_abi::syscalls::by_name(n)).collect(),
            ring_bytes: ring,
            cpus_per_ring: 1,
            ..CaptureConfig::default()
        };
        let running = start_capture(&rt, cfg);
        let start = Instant::now();
        let loops: Vec<_> = (0..2)
            .map(|cpu| std::thread::spawn(move || actor(&["loop", THROUGHPUT_ITERS, &cpu.to_string()])))
            .collect();
        for l in loops {
            l.join().unwrap();
        }
        let produced = start.elapsed();
        std::thread::sleep(Duration::from_millis(300)); // let the reader drain
        let (decoded, lost) = running.finish(&rt);
        println!(
            "  {label:<22} {:>10.0} events/s decoded ({decoded} events in {:.2} s), {lost} lost",
            decoded as f64 / produced.as_secs_f64(),
            produced.as_secs_f64()
        );
    }
    pipeline_section(&rt);
}
