//! Capture: loads the kernel programs, attaches them, and reads their ring buffers.
//!
//! [`Capture::start`] checks the host ([`preflight`]), resolves kernel structure offsets
//! from BTF ([`btf`]), programs the syscall selection, attaches the probes of [`PROBES`]
//! (BTF tracing programs, or raw tracepoints where those are unavailable) and spawns one
//! reader per ring buffer. Records come out of [`Capture::next_batch`] as raw bytes for
//! [`crate::event::decode`]; kernel-side losses are in [`Capture::counters`].

mod backlog;
pub mod btf;
mod prefilter;
pub mod preflight;
mod ring;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, MapData, PerCpuArray},
    programs::{BtfTracePoint, RawTracePoint, TracePoint},
};
use bytes::Bytes;
use sensor_abi::{
    config::{Config, Counters, MAX_RINGS, SyscallSpec, compat_entry, spec_flags},
    syscalls::{Family, SOCKETCALLS, SYSCALLS, Syscall},
};
use tokio::{sync::mpsc, task::JoinHandle};

use crate::rules::Prefilter;

/// The kernel object built by `build.rs`.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sensor-ebpf"));

/// Names of the ring-buffer maps, by ring index.
const RING_MAPS: [&str; MAX_RINGS] = [
    "RING_0", "RING_1", "RING_2", "RING_3", "RING_4", "RING_5", "RING_6", "RING_7", "RING_8", "RING_9", "RING_10",
    "RING_11", "RING_12", "RING_13", "RING_14", "RING_15",
];

/// Smallest ring the kernel accepts (one page); unused rings get this size.
const PAGE: u32 = 4096;

/// One attach point, with its BTF tracing program and its raw-tracepoint fallback.
struct Probe {
    tracepoint: &'static str,
    btf: &'static str,
    raw: &'static str,
}

/// Every always-on probe. The enter-side tracepoints depend on the syscall selection.
const PROBES: &[Probe] = &[
    Probe { tracepoint: "sys_exit", btf: "sys_exit_btf", raw: "sys_exit_raw" },
    Probe { tracepoint: "sched_process_fork", btf: "sched_fork_btf", raw: "sched_fork_raw" },
    Probe { tracepoint: "sched_process_exec", btf: "sched_exec_btf", raw: "sched_exec_raw" },
    Probe { tracepoint: "sched_process_exit", btf: "sched_exit_btf", raw: "sched_exit_raw" },
    Probe { tracepoint: "cgroup_attach_task", btf: "cgroup_attach_btf", raw: "cgroup_attach_raw" },
];

/// The classic tracepoint program attached to `syscalls:sys_enter_<name>` for each
/// selected syscall that needs its enter side (memory read at enter, or an exec).
const ENTER_PROGRAM: &str = "sys_enter_stash";

/// The empty program that benchmarks use as their floor.
const FLOOR_PROGRAM: &str = "floor_btf";

/// Which kind of program to attach.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeMode {
    /// BTF tracing programs, falling back to raw tracepoints if they fail to load.
    #[default]
    Auto,
    /// BTF tracing programs (`tp_btf`) only.
    Btf,
    /// Raw tracepoints (`raw_tp`) only.
    Raw,
}

/// How to capture.
#[derive(Clone, Debug)]
pub struct CaptureConfig {
    /// Syscalls to capture.
    pub syscalls: Vec<&'static Syscall>,
    /// Bytes per ring buffer (rounded up to a power of two, at least one page).
    pub ring_bytes: u32,
    /// CPUs sharing one ring buffer; 0 puts all CPUs on one.
    pub cpus_per_ring: u32,
    /// Wake the reader when pending data crosses a multiple of this; 0 wakes per record.
    pub wakeup_bytes: u32,
    /// How often readers drain their ring without a wake-up.
    pub poll_interval: Duration,
    /// Program kind.
    pub mode: ProbeMode,
    /// What the kernel keeps back (default: nothing).
    pub prefilter: Prefilter,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        Self {
            syscalls: SYSCALLS.iter().collect(),
            ring_bytes: 8 << 20,
            cpus_per_ring: 2,
            wakeup_bytes: 64 << 10,
            // The bound on how long a lone event (an alert) waits in a quiet ring: a reader
            // woken 500 times a second costs nothing measurable.
            poll_interval: Duration::from_millis(2),
            mode: ProbeMode::Auto,
            prefilter: Prefilter::default(),
        }
    }
}

impl CaptureConfig {
    /// Selects syscalls by name (comma-separated list); unknown names are an error.
    pub fn select_syscalls(&mut self, list: &str) -> Result<(), CaptureError> {
        let mut picked = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let sc = sensor_abi::syscalls::by_name(name).ok_or_else(|| {
                let known: Vec<_> = SYSCALLS.iter().map(|s| s.name).collect();
                CaptureError::Config(format!("unknown syscall `{name}`; supported: {}", known.join(",")))
            })?;
            picked.push(sc);
        }
        self.syscalls = picked;
        Ok(())
    }
}

/// Why capture could not start.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The host does not meet a requirement.
    #[error(transparent)]
    Preflight(#[from] preflight::PreflightError),
    /// Kernel BTF could not be read or lacks a needed field.
    #[error("kernel BTF: {0}")]
    Btf(String),
    /// The binary was built with `AYA_BUILD_SKIP=1`.
    #[error("this binary was built without its eBPF programs (AYA_BUILD_SKIP); rebuild with `cargo xtask build`")]
    NoObject,
    /// Loading the object failed.
    #[error("loading the eBPF object: {0}")]
    Load(#[from] aya::EbpfError),
    /// A program failed to load or attach.
    #[error("program {program}: {source}")]
    Program {
        /// Program name.
        program: &'static str,
        /// The cause.
        source: aya::programs::ProgramError,
    },
    /// A map could not be opened or written.
    #[error("map {map}: {source}")]
    Map {
        /// Map name.
        map: &'static str,
        /// The cause.
        source: aya::maps::MapError,
    },
    /// A ring buffer could not be registered with the event loop.
    #[error("polling a ring buffer: {0}")]
    Poll(std::io::Error),
    /// The configuration is invalid.
    #[error("{0}")]
    Config(String),
}

/// Loads a program with `load`, again when the kernel answers EAGAIN: its verifier stops when
/// a signal arrives for the loading thread (a child's exit, a reload's SIGHUP), and a load
/// is then simply to be made again, as libbpf does; at most [`LOAD_ATTEMPTS`] times.
fn load_retrying(
    mut load: impl FnMut() -> Result<(), aya::programs::ProgramError>,
) -> Result<(), aya::programs::ProgramError> {
    let mut attempt = 1;
    loop {
        match load() {
            Err(aya::programs::ProgramError::LoadError { io_error, .. })
                if io_error.raw_os_error() == Some(libc::EAGAIN) && attempt < LOAD_ATTEMPTS =>
            {
                attempt += 1;
            }
            loaded => return loaded,
        }
    }
}

/// Loads of one program tried at most, when the verifier is interrupted.
const LOAD_ATTEMPTS: u32 = 5;

fn program_err(program: &'static str) -> impl FnOnce(aya::programs::ProgramError) -> CaptureError {
    move |source| CaptureError::Program { program, source }
}

/// The program `name` of the object, as the program type `P`.
fn program<'a, P>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut P, CaptureError>
where
    &'a mut P: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or(CaptureError::Config(format!("the eBPF object lacks program {name}")))?
        .try_into()
        .map_err(program_err(name))
}

fn map_err(map: &'static str) -> impl FnOnce(aya::maps::MapError) -> CaptureError {
    move |source| CaptureError::Map { map, source }
}

/// A running capture. Dropping it detaches every program.
pub struct Capture {
    /// Keeps programs attached; its `SYSCALLS` map is rewritten on reload.
    ebpf: Ebpf,
    counters: PerCpuArray<MapData, Counters>,
    /// Events the prefilter kept back, per syscall number and CPU.
    prefiltered: PerCpuArray<MapData, u64>,
    records: mpsc::Receiver<Vec<Bytes>>,
    readers: Vec<JoinHandle<()>>,
    mode: ProbeMode,
    nr_rings: u32,
    /// The syscalls programmed into the kernel (enter sides attached for those needing one).
    syscalls: Vec<&'static Syscall>,
    /// CPUs writing to one ring: CPU `c` writes to ring `c / cpus_per_ring`.
    cpus_per_ring: u32,
    /// Size of each ring.
    ring_bytes: u32,
    /// Record bytes read from each ring.
    consumed: Vec<Arc<AtomicU64>>,
    /// What waits in user space, which the kernel side weighs with its rings.
    backlog: Arc<backlog::Backlog>,
}

/// How full one ring buffer is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingFill {
    /// Record bytes read since start: the reader's progress.
    pub read_bytes: u64,
    /// Record bytes written by the kernel and not yet read.
    pub pending_bytes: u64,
    /// The ring's size in bytes.
    pub size_bytes: u64,
}

/// Ring layout for a CPU count: (CPUs per ring, rings).
fn ring_layout(nr_cpus: u32, cpus_per_ring: u32) -> (u32, u32) {
    let nr_cpus = nr_cpus.max(1);
    let mut per = if cpus_per_ring == 0 { nr_cpus } else { cpus_per_ring };
    if nr_cpus.div_ceil(per) > MAX_RINGS as u32 {
        per = nr_cpus.div_ceil(MAX_RINGS as u32);
        log::warn!("more CPU groups than {MAX_RINGS} ring buffers; using {per} CPUs per ring");
    }
    (per, nr_cpus.div_ceil(per))
}

fn load_object(config: &Config, ring_bytes: u32) -> Result<Ebpf, CaptureError> {
    if EBPF_OBJECT.is_empty() {
        return Err(CaptureError::NoObject);
    }
    let mut loader = EbpfLoader::new();
    loader.override_global("CONFIG", config, true);
    for (i, name) in RING_MAPS.iter().enumerate() {
        loader.map_max_entries(name, if (i as u32) < config.nr_rings { ring_bytes } else { PAGE });
    }
    Ok(loader.load(EBPF_OBJECT)?)
}

fn kernel_offsets() -> Result<sensor_abi::config::KernelOffsets, CaptureError> {
    let btf = btf::Btf::from_sys_fs()
        .map_err(|e| CaptureError::Btf(format!("reading /sys/kernel/btf/vmlinux: {e}")))?
        .map_err(|e| CaptureError::Btf(e.to_string()))?;
    if let Some((_, name)) = btf.cgroup_v1_controller() {
        crate::event::decode::set_cgroup_v1_controller(name);
    }
    btf.kernel_offsets().map_err(|e| CaptureError::Btf(e.to_string()))
}

/// Loads and attaches the probes of [`PROBES`] in `mode`; returns the mode used.
fn attach_probes(ebpf: &mut Ebpf, mode: ProbeMode) -> Result<ProbeMode, CaptureError> {
    if mode != ProbeMode::Raw {
        match attach_btf(ebpf) {
            Ok(()) => return Ok(ProbeMode::Btf),
            Err(e) if mode == ProbeMode::Auto => {
                log::warn!("BTF tracing programs unavailable ({e}); falling back to raw tracepoints");
            }
            Err(e) => return Err(e),
        }
    }
    for p in PROBES {
        let prog: &mut RawTracePoint = program(ebpf, p.raw)?;
        load_retrying(|| prog.load()).map_err(program_err(p.raw))?;
        prog.attach(p.tracepoint).map_err(program_err(p.raw))?;
    }
    Ok(ProbeMode::Raw)
}

fn attach_btf(ebpf: &mut Ebpf) -> Result<(), CaptureError> {
    let btf = aya::Btf::from_sys_fs().map_err(|e| CaptureError::Btf(e.to_string()))?;
    for p in PROBES {
        let prog: &mut BtfTracePoint = program(ebpf, p.btf)?;
        load_retrying(|| prog.load(p.tracepoint, &btf)).map_err(program_err(p.btf))?;
        prog.attach().map_err(program_err(p.btf))?;
    }
    Ok(())
}

/// The syscalls to program into the kernel for a selection: a successful `execveat`
/// exits as `execve`, so either exec brings the other.
fn kernel_selection(selected: &[&'static Syscall]) -> Vec<&'static Syscall> {
    let mut all = selected.to_vec();
    if all.iter().any(|s| s.family == Family::Exec) {
        all.extend(SYSCALLS.iter().filter(|s| s.family == Family::Exec));
    }
    all.sort_by_key(|s| s.nr);
    all.dedup_by_key(|s| s.nr);
    all
}

/// Writes the capture spec of every syscall in `enable` into the `SYSCALLS` map and clears
/// the entries of those in `previous` that are no longer wanted.
fn program_syscalls(ebpf: &mut Ebpf, enable: &[&Syscall], previous: &[&Syscall]) -> Result<(), CaptureError> {
    let mut specs: Array<_, SyscallSpec> =
        Array::try_from(ebpf.map_mut("SYSCALLS").ok_or(map_missing("SYSCALLS"))?).map_err(map_err("SYSCALLS"))?;
    for sc in enable {
        let mut kinds = [0u8; 6];
        for (k, arg) in kinds.iter_mut().zip(sc.args) {
            *k = arg.kind as u8;
        }
        let bulk = if sc.is_bulk() { spec_flags::BULK } else { 0 };
        let spec = SyscallSpec { flags: spec_flags::ENABLED | sc.flags | bulk, kinds, prefilter: sc.prefilter_role() };
        specs.set(sc.nr, spec, 0).map_err(map_err("SYSCALLS"))?;
    }
    for sc in previous.iter().filter(|p| !enable.iter().any(|e| e.nr == p.nr)) {
        specs.set(sc.nr, SyscallSpec::default(), 0).map_err(map_err("SYSCALLS"))?;
    }
    Ok(())
}

/// Writes the x86_64 meaning of every ia32 syscall number and `socketcall` call the table
/// knows into the `COMPAT` and `SOCKETCALL` maps. Whether one is captured is then the
/// `SYSCALLS` map's say, as for native calls.
fn program_compat(ebpf: &mut Ebpf) -> Result<(), CaptureError> {
    let entry = |nr: u32, uid16: bool| nr | compat_entry::VALID | if uid16 { compat_entry::UID16 } else { 0 };
    let mut compat: Array<_, u32> =
        Array::try_from(ebpf.map_mut("COMPAT").ok_or(map_missing("COMPAT"))?).map_err(map_err("COMPAT"))?;
    for sc in SYSCALLS {
        for ia32 in sc.ia32 {
            compat.set(ia32.nr, entry(sc.nr, ia32.uid16), 0).map_err(map_err("COMPAT"))?;
        }
    }
    let mut socketcall: Array<_, u32> =
        Array::try_from(ebpf.map_mut("SOCKETCALL").ok_or(map_missing("SOCKETCALL"))?).map_err(map_err("SOCKETCALL"))?;
    for &(call, nr) in SOCKETCALLS {
        socketcall.set(call, entry(nr, false), 0).map_err(map_err("SOCKETCALL"))?;
    }
    Ok(())
}

/// Whether a syscall needs the enter-side program.
fn has_enter_side(sc: &Syscall) -> bool {
    sc.flags & (spec_flags::AT_ENTER | spec_flags::EXEC) != 0
}

impl Capture {
    /// Checks the host, loads and attaches the programs, and starts reading. Must be
    /// called inside a tokio runtime.
    pub fn start(cfg: &CaptureConfig) -> Result<Self, CaptureError> {
        let syscalls = kernel_selection(&cfg.syscalls);
        let needs_enter = syscalls.iter().any(|s| has_enter_side(s));
        preflight::check(needs_enter)?;
        if cfg.ring_bytes > 1 << 30 {
            return Err(CaptureError::Config(format!("ring size {} is over 1 GiB", cfg.ring_bytes)));
        }
        let ring_bytes = cfg.ring_bytes.max(PAGE).next_power_of_two();
        let nr_cpus = aya::util::nr_cpus().map_err(|(what, e)| CaptureError::Config(format!("{what}: {e}")))?;
        let (cpus_per_ring, nr_rings) = ring_layout(nr_cpus as u32, cfg.cpus_per_ring);
        let config = Config {
            self_pid: std::process::id(),
            cpus_per_ring,
            nr_rings,
            wakeup_bytes: cfg.wakeup_bytes,
            bulk_limit_bytes: ring_bytes / 2,
            flood_limit_bytes: ring_bytes / 4,
            quiet_limit_bytes: ring_bytes / 4 * 3,
            offsets: kernel_offsets()?,
        };
        let mut ebpf = load_object(&config, ring_bytes)?;

        program_syscalls(&mut ebpf, &syscalls, &[])?;
        program_compat(&mut ebpf)?;
        prefilter::program(&mut ebpf, &cfg.prefilter)?;

        let mode = attach_probes(&mut ebpf, cfg.mode)?;
        if needs_enter {
            let prog: &mut TracePoint = program(&mut ebpf, ENTER_PROGRAM)?;
            load_retrying(|| prog.load()).map_err(program_err(ENTER_PROGRAM))?;
            for sc in syscalls.iter().filter(|s| has_enter_side(s)) {
                prog.attach("syscalls", &format!("sys_enter_{}", sc.name)).map_err(program_err(ENTER_PROGRAM))?;
            }
        }

        let counters = PerCpuArray::try_from(ebpf.take_map("COUNTERS").ok_or(map_missing("COUNTERS"))?)
            .map_err(map_err("COUNTERS"))?;
        let prefiltered = PerCpuArray::try_from(ebpf.take_map("PREFILTERED").ok_or(map_missing("PREFILTERED"))?)
            .map_err(map_err("PREFILTERED"))?;
        let (tx, records) = mpsc::channel(ring::BACKLOG_BATCHES);
        let backlog = Arc::new(backlog::Backlog::default());
        let map = ebpf.take_map("BACKLOG").ok_or(map_missing("BACKLOG"))?;
        let mut readers = vec![backlog::spawn_reporter(map, backlog.clone(), cfg.poll_interval)?];
        let consumed: Vec<Arc<AtomicU64>> = (0..nr_rings).map(|_| Arc::default()).collect();
        for (name, consumed) in RING_MAPS[..nr_rings as usize].iter().zip(&consumed) {
            let map = ebpf.take_map(name).ok_or(map_missing(name))?;
            let reader = ring::Reader {
                tx: tx.clone(),
                poll: cfg.poll_interval,
                consumed: consumed.clone(),
                backlog: backlog.clone(),
            };
            readers.push(reader.spawn(map)?);
        }
        log::info!(
            "capturing {} syscalls with {mode:?} probes, {nr_rings} ring(s) of {ring_bytes} bytes for {nr_cpus} CPU(s)",
            syscalls.len()
        );
        Ok(Self {
            ebpf,
            counters,
            prefiltered,
            records,
            readers,
            mode,
            nr_rings,
            syscalls,
            cpus_per_ring,
            ring_bytes,
            consumed,
            backlog,
        })
    }

    /// Captures `selected` from now on instead of the syscalls given at start (a rules
    /// reload). Only syscalls whose enter side was attached at start can be added when
    /// they need one; the others are refused, naming them.
    pub fn set_syscalls(&mut self, selected: &[&'static Syscall]) -> Result<(), CaptureError> {
        let wanted = kernel_selection(selected);
        let unattached: Vec<&str> = wanted
            .iter()
            .filter(|s| has_enter_side(s) && !self.syscalls.iter().any(|a| a.nr == s.nr && has_enter_side(a)))
            .map(|s| s.name)
            .collect();
        if !unattached.is_empty() {
            return Err(CaptureError::Config(format!(
                "{} need enter-side programs not attached at start; restart the sensor to capture them",
                unattached.join(", ")
            )));
        }
        program_syscalls(&mut self.ebpf, &wanted, &self.syscalls)?;
        // Enter-side attachments stay: keep what was attached in the list.
        let attached: Vec<&'static Syscall> = self.syscalls.iter().copied().filter(|s| has_enter_side(s)).collect();
        self.syscalls = wanted;
        for sc in attached {
            if !self.syscalls.iter().any(|s| s.nr == sc.nr) {
                self.syscalls.push(sc);
            }
        }
        Ok(())
    }

    /// Makes `filter` the kernel's prefilter from now on (a rules reload): the kernel sends
    /// everything while it changes.
    pub fn set_prefilter(&mut self, filter: &Prefilter) -> Result<(), CaptureError> {
        prefilter::program(&mut self.ebpf, filter)
    }

    /// Events the prefilter kept back, per syscall (those it can keep back), since start.
    pub fn prefiltered(&self) -> Result<Vec<(&'static str, u64)>, CaptureError> {
        prefilter::counts(&self.prefiltered, &self.syscalls)
    }

    /// The syscalls the kernel side captures now.
    pub fn syscalls(&self) -> &[&'static Syscall] {
        &self.syscalls
    }

    /// The next batch of raw records, in ring order; `None` once all readers stopped.
    pub async fn next_batch(&mut self) -> Option<Vec<Bytes>> {
        let batch = self.records.recv().await?;
        self.backlog.claimed(batch.iter().map(|r| r.len() as u64).sum());
        Some(batch)
    }

    /// Has the kernel's overload policy weigh `downstream()` too: the record bytes taken
    /// by [`Capture::next_batch`] and still waiting further on (in the pipeline's queues).
    pub fn weigh_downstream(&self, downstream: impl Fn() -> u64 + Send + Sync + 'static) {
        self.backlog.weigh(Box::new(downstream));
    }

    /// Kernel-side counters, one entry per possible CPU.
    pub fn counters(&self) -> Result<Vec<Counters>, CaptureError> {
        let values = self.counters.get(&0, 0).map_err(map_err("COUNTERS"))?;
        Ok(values.iter().copied().collect())
    }

    /// How full each ring buffer is: what its CPUs wrote minus what its reader read
    /// (record payloads; the kernel's 8-byte record headers come on top).
    pub fn ring_fill(&self) -> Result<Vec<RingFill>, CaptureError> {
        let counters = self.counters()?;
        let per = self.cpus_per_ring.max(1) as usize;
        Ok(self
            .consumed
            .iter()
            .enumerate()
            .map(|(ring, consumed)| {
                let written: u64 = counters.iter().skip(ring * per).take(per).map(|c| c.emitted_bytes).sum();
                let read_bytes = consumed.load(Ordering::Relaxed);
                RingFill {
                    read_bytes,
                    pending_bytes: written.saturating_sub(read_bytes),
                    size_bytes: u64::from(self.ring_bytes),
                }
            })
            .collect())
    }

    /// The probe kind in use.
    pub fn mode(&self) -> ProbeMode {
        self.mode
    }

    /// Ring buffers in use.
    pub fn nr_rings(&self) -> u32 {
        self.nr_rings
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        for r in &self.readers {
            r.abort();
        }
    }
}

fn map_missing(map: &'static str) -> CaptureError {
    CaptureError::Map { map, source: aya::maps::MapError::InvalidName { name: map.into() } }
}

/// An attached program that does nothing on every syscall exit: the cost floor that
/// benchmarks compare the sensor against. Dropping it detaches it.
pub struct FloorProbe {
    _ebpf: Ebpf,
}

impl FloorProbe {
    /// Loads and attaches the empty `sys_exit` program.
    pub fn attach() -> Result<Self, CaptureError> {
        preflight::check(false)?;
        let config = Config { nr_rings: 1, cpus_per_ring: 0, offsets: kernel_offsets()?, ..Config::default() };
        let mut ebpf = load_object(&config, PAGE)?;
        let btf = aya::Btf::from_sys_fs().map_err(|e| CaptureError::Btf(e.to_string()))?;
        let prog: &mut BtfTracePoint = program(&mut ebpf, FLOOR_PROGRAM)?;
        load_retrying(|| prog.load("sys_exit", &btf)).map_err(program_err(FLOOR_PROGRAM))?;
        prog.attach().map_err(program_err(FLOOR_PROGRAM))?;
        Ok(Self { _ebpf: ebpf })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_cpus_onto_rings() {
        assert_eq!(ring_layout(2, 2), (2, 1));
        assert_eq!(ring_layout(2, 1), (1, 2));
        assert_eq!(ring_layout(8, 0), (8, 1));
        assert_eq!(ring_layout(5, 2), (2, 3));
        // 64 CPUs, one per ring, would need 64 rings: regrouped onto 16.
        assert_eq!(ring_layout(64, 1), (4, 16));
    }

    #[test]
    fn either_exec_selects_both() {
        let mut cfg = CaptureConfig::default();
        cfg.select_syscalls("execveat,openat").unwrap();
        let names: Vec<_> = kernel_selection(&cfg.syscalls).iter().map(|s| s.name).collect();
        assert_eq!(names, ["execve", "openat", "execveat"]);
    }

    #[test]
    fn selects_syscalls_by_name() {
        let mut cfg = CaptureConfig::default();
        cfg.select_syscalls("openat, execve").unwrap();
        assert_eq!(cfg.syscalls.iter().map(|s| s.name).collect::<Vec<_>>(), ["openat", "execve"]);
        let err = cfg.select_syscalls("openat,nosuch").unwrap_err().to_string();
        assert!(err.contains("unknown syscall `nosuch`"), "{err}");
    }
}
