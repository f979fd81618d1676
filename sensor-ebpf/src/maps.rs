//! The maps shared by all programs, and the load-time configuration global.

use core::mem::MaybeUninit;

use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{bpf_get_current_pid_tgid, bpf_get_smp_processor_id, bpf_ktime_get_ns},
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf},
};
use sensor_abi::{
    config::{Config, Counters, FloodBucket, MAX_RINGS, SyscallSpec, flood},
    prefilter::{DROPPED_FDS, MAX_NAMES, MAX_PATHS, NameBytes, PathBytes, PrefilterConfig},
    record::{CGROUP_PATH_MAX, ExecInfo, PATH_MAX, SCRATCH_SIZE},
    syscalls::{MAX_IA32_NR, MAX_SOCKETCALL, MAX_SYSCALL_NR},
};

/// A value the loader writes before load. It lives in `.rodata`, which aya freezes, so
/// the verifier knows every field as a constant. Fields are read one at a time with
/// volatile loads ([`config!`]): the compiler must not fold the placeholder value in, and
/// copying the whole configuration would cost the programs hundreds of bytes of stack.
#[repr(transparent)]
pub struct Rodata<T>(MaybeUninit<T>);

// SAFETY: never written after load; the programs only read it.
unsafe impl<T> Sync for Rodata<T> {}

impl<T> Rodata<T> {
    const fn new(value: T) -> Self {
        Self(MaybeUninit::new(value))
    }

    /// Where the value is.
    #[inline(always)]
    pub fn as_ptr(&self) -> *const T {
        self.0.as_ptr()
    }
}

/// Written by the loader before load (`EbpfLoader::override_global`).
#[unsafe(no_mangle)]
pub static CONFIG: Rodata<Config> = Rodata::new(Config {
    self_pid: 0,
    cpus_per_ring: 1,
    nr_rings: 1,
    wakeup_bytes: 0,
    bulk_limit_bytes: 0,
    flood_limit_bytes: 0,
    quiet_limit_bytes: 0,
    // All u32: zero is a valid (unresolved) value for each; the loader fills them in.
    offsets: unsafe { core::mem::zeroed() },
});

/// One field of [`CONFIG`] (`config!(self_pid)`, `config!(offsets.task_mm)`).
macro_rules! config {
    ($($field:ident).+) => {{
        // Also used inside unsafe blocks, where this one is redundant.
        #[allow(unused_unsafe)]
        // SAFETY: CONFIG is initialised and never written after load.
        let value = unsafe { core::ptr::read_volatile(&raw const (*$crate::maps::CONFIG.as_ptr()).$($field).+) };
        value
    }};
}
pub(crate) use config;

/// One kernel structure offset (`off!(task_mm)`).
macro_rules! off {
    ($field:ident) => {
        $crate::maps::config!(offsets.$field)
    };
}
pub(crate) use off;

/// Capture spec per syscall number, written by user space; an all-zero entry means
/// "not captured", so an uninteresting syscall costs this one lookup.
#[map]
pub static SYSCALLS: Array<SyscallSpec> = Array::with_max_entries(MAX_SYSCALL_NR, 0);

/// Per-CPU counters.
#[map]
pub static COUNTERS: PerCpuArray<Counters> = PerCpuArray::with_max_entries(1, 0);

/// Per-CPU area a record is assembled in before it is copied into a ring.
#[map]
pub static SCRATCH: PerCpuArray<[u8; SCRATCH_SIZE]> = PerCpuArray::with_max_entries(1, 0);

/// Bytes of blob data a [`STASH`] entry holds: the memory arguments read at enter (a path
/// or an address, and a small structure).
pub const STASH_DATA: usize = PATH_MAX + 128;

/// Bytes of blob data an [`EXEC_STASH`] entry holds: the path the call named and the file
/// executed (each up to `PATH_MAX`), two cgroup paths and the `ExecInfo`, with headers.
pub const EXEC_STASH_DATA: usize = 2 * (PATH_MAX + 4) + 2 * (CGROUP_PATH_MAX + 4) + 256;

/// What the enter side (and `sched_process_exec`) captured for a thread's pending syscall.
#[repr(C)]
pub struct Stash<const N: usize> {
    /// Syscall number the entry is for; [`STASH_EMPTY`] once consumed.
    pub nr: u32,
    /// Bytes of `data` in use.
    pub len: u32,
    /// Blobs in `data`.
    pub nblobs: u16,
    /// `syscall_flags` to carry to the record, and [`STASH_EXEC_DONE`].
    pub flags: u16,
    /// The prefilter's verdict at enter for an open ([`crate::prefilter::open_verdict`]).
    pub prefilter: u32,
    /// The argument registers at enter.
    pub args: [u64; 6],
    /// Serialized blobs, as they go into the record.
    pub data: [u8; N],
}

/// `Stash::nr` of a consumed entry.
pub const STASH_EMPTY: u32 = u32::MAX;
/// `Stash::flags` bit: `sched_process_exec` ran for this exec and left its blobs in `data`.
pub const STASH_EXEC_DONE: u16 = 0x8000;
/// `Stash::flags` bit: a memory argument faulted at enter; read them all again at exit.
pub const STASH_REREAD: u16 = 0x4000;

/// Per-thread stash of the memory arguments read at enter, keyed by `pid_tgid`. Entries
/// are reused rather than deleted, so the hot path only inserts for threads it has not
/// seen; LRU eviction bounds it.
#[map]
pub static STASH: LruHashMap<u64, Stash<STASH_DATA>> = LruHashMap::with_max_entries(4096, 0);

/// Per-thread stash of an exec in flight, keyed by `pid_tgid`: the number and arguments at
/// enter, then what `sched_process_exec` read. An entry lives from an exec's enter to its
/// exit, so few are in use at once; LRU eviction bounds it.
#[map]
pub static EXEC_STASH: LruHashMap<u64, Stash<EXEC_STASH_DATA>> = LruHashMap::with_max_entries(512, 0);

/// The x86_64 meaning of each ia32 syscall number (`compat_entry`), written by user space.
#[map]
pub static COMPAT: Array<u32> = Array::with_max_entries(MAX_IA32_NR, 0);

/// The x86_64 meaning of each `socketcall` call number (`compat_entry`).
#[map]
pub static SOCKETCALL: Array<u32> = Array::with_max_entries(MAX_SOCKETCALL, 0);

/// Per-CPU area the `ExecInfo` of an exec is assembled in (too large for the stack).
#[map]
pub static EXEC_INFO: PerCpuArray<ExecInfo> = PerCpuArray::with_max_entries(1, 0);

/// Most path components walked (dentries up to the root, kernfs nodes up to a
/// hierarchy's root); a deeper path is cut at its top and marked truncated.
pub const PATH_PARTS: usize = 64;

/// A path being walked and written. The counters live here, in map memory the verifier
/// does not track, rather than in registers: every loop iteration and every loop exit
/// then looks the same to it, so it checks each loop once instead of once per length.
#[repr(C)]
pub struct PathScratch {
    /// Name pointers of the components, leaf first.
    pub names: [u64; PATH_PARTS],
    /// Names in `names`.
    pub n: u64,
    /// The walk stopped before the top (too deep).
    pub cut: u64,
    /// Bytes of the path written so far.
    pub used: u64,
    /// `blob_flags` of the path being written.
    pub flags: u64,
    /// The walk's current dentry (or kernfs node).
    pub node: u64,
    /// The walk's current `struct mount`.
    pub mount: u64,
}

/// Per-CPU [`PathScratch`].
#[map]
pub static PATH_SCRATCH: PerCpuArray<PathScratch> = PerCpuArray::with_max_entries(1, 0);

/// Namespace view of a thread, which only changes with its `nsproxy` (setns, unshare) or
/// not at all (its pid namespace and ids in it): cached so each record costs one read to
/// validate instead of a dozen to walk `task_struct`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct TaskIds {
    /// `task->nsproxy` when the entry was made.
    pub nsproxy: u64,
    /// pid namespace inode.
    pub pid_ns: u32,
    /// mount namespace inode.
    pub mnt_ns: u32,
    /// Thread id in the pid namespace.
    pub ns_tid: u32,
    /// Process id in the pid namespace.
    pub ns_pid: u32,
}

/// [`TaskIds`] per thread, keyed by `pid_tgid`; removed when the thread exits.
#[map]
pub static TASK_IDS: LruHashMap<u64, TaskIds> = LruHashMap::with_max_entries(65536, 0);

/// The prefilter's settings (one entry), written by user space.
#[map]
pub static PREFILTER: Array<PrefilterConfig> = Array::with_max_entries(1, 0);

/// The two path tries of the prefilter (`PrefilterConfig::trie` says which is in use): the
/// open classes some rule wants for each path prefix or exact path.
#[map]
pub static OPEN_PATHS_0: LpmTrie<PathBytes, u32> = LpmTrie::with_max_entries(MAX_PATHS, 0);
/// See [`OPEN_PATHS_0`].
#[map]
pub static OPEN_PATHS_1: LpmTrie<PathBytes, u32> = LpmTrie::with_max_entries(MAX_PATHS, 0);

/// The two file-name maps of the prefilter (alongside the tries): the open classes some
/// rule wants for each file name (a path's last component).
#[map]
pub static OPEN_NAMES_0: HashMap<NameBytes, u32> = HashMap::with_max_entries(MAX_NAMES, 0);
/// See [`OPEN_NAMES_0`].
#[map]
pub static OPEN_NAMES_1: HashMap<NameBytes, u32> = HashMap::with_max_entries(MAX_NAMES, 0);

/// A bitmap of fd numbers.
pub type FdBits = [u64; DROPPED_FDS / 64];

/// Per fd table (`task->files`, shared by the threads of a process): the fds whose open
/// the prefilter did not send, so that their closes are not sent either. LRU eviction
/// forgets some, whose closes are then sent: never the other way round.
#[map]
pub static DROPPED: LruHashMap<u64, FdBits> = LruHashMap::with_max_entries(4096, 0);

/// An all-zero [`FdBits`], the seed of a new [`DROPPED`] entry.
#[map]
pub static NO_FDS: Array<FdBits> = Array::with_max_entries(1, 0);

/// Each process's rate under ring pressure, by thread group id.
#[map]
pub static FLOOD: LruHashMap<u32, FloodBucket> = LruHashMap::with_max_entries(flood::MAX_PROCESSES, 0);

/// Record bytes user space has taken from the rings and not yet evaluated (one entry),
/// written by user space every few milliseconds: the overload policy weighs what waits
/// there as well as what waits in the ring, so a flood is held back before it queues
/// every later record behind it.
#[map]
pub static BACKLOG: Array<u64> = Array::with_max_entries(1, 0);

/// Events the prefilter did not send, per syscall number and CPU.
#[map]
pub static PREFILTERED: PerCpuArray<u64> = PerCpuArray::with_max_entries(MAX_SYSCALL_NR, 0);

macro_rules! rings {
    ($($name:ident = $idx:literal),* $(,)?) => {
        $(
            /// A ring buffer for one group of CPUs; sized by the loader.
            #[map]
            pub static $name: RingBuf = RingBuf::with_byte_size(4096, 0);
        )*

        /// The ring buffer of ring index `idx`.
        #[inline(always)]
        fn ring_by_index(idx: u32) -> &'static RingBuf {
            match idx {
                $($idx => &$name,)*
                _ => &RING_0,
            }
        }
    };
}

rings!(
    RING_0 = 0,
    RING_1 = 1,
    RING_2 = 2,
    RING_3 = 3,
    RING_4 = 4,
    RING_5 = 5,
    RING_6 = 6,
    RING_7 = 7,
    RING_8 = 8,
    RING_9 = 9,
    RING_10 = 10,
    RING_11 = 11,
    RING_12 = 12,
    RING_13 = 13,
    RING_14 = 14,
    RING_15 = 15,
);

const _: () = assert!(MAX_RINGS == 16);

/// This CPU's counters.
#[inline(always)]
pub fn counters() -> Option<&'static mut Counters> {
    COUNTERS.get_ptr_mut(0).map(|p| unsafe { &mut *p })
}

/// How a record fares when its ring fills up.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Process lifecycle: never held back.
    Lifecycle,
    /// A syscall rules may need: only its process's rate holds it back ([`throttled`]).
    Syscall,
    /// A bulk syscall: shed first, at `bulk_limit_bytes`.
    Bulk,
}

/// This CPU's ring.
#[inline(always)]
fn this_ring() -> &'static RingBuf {
    let cpu = unsafe { bpf_get_smp_processor_id() };
    ring_by_index(cpu.checked_div(config!(cpus_per_ring)).unwrap_or(0))
}

/// Whether the current process's next syscall record is held back (and counted), so that
/// one process flooding the ring cannot crowd out the others: when the ring with the
/// [`BACKLOG`] in user space holds more than `flood_limit_bytes` and the process is over
/// its [`flood`] rate, or the ring alone more than `quiet_limit_bytes` and the process is
/// not quiet. Only inside a `bpf_loop` step (`syscall::kept_back`): inline, its branches
/// would multiply the states of everything after.
#[inline(always)]
pub fn throttled() -> bool {
    let limit = config!(flood_limit_bytes) as u64;
    let in_ring = this_ring().query(BPF_RB_AVAIL_DATA as u64);
    let backlog = BACKLOG.get(0).copied().unwrap_or(0);
    if limit == 0 || in_ring.saturating_add(backlog) <= limit {
        return false;
    }
    // The last resort is for a ring about to lose records, whatever user space still holds.
    let quiet_only = in_ring > config!(quiet_limit_bytes) as u64;
    if take_token(quiet_only) {
        return false;
    }
    if let Some(c) = counters() {
        c.throttled += 1;
    }
    true
}

/// Takes one of the current process's [`flood`] tokens; whether it may write: it had one
/// left, or, when `quiet_only`, it had used fewer than [`flood::QUIET`].
#[inline(always)]
fn take_token(quiet_only: bool) -> bool {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let now = unsafe { bpf_ktime_get_ns() };
    let Some(bucket) = FLOOD.get_ptr_mut(tgid) else {
        let fresh = FloodBucket { tokens: flood::BURST - 1, refilled_ns: now };
        // A full map evicts the least recently used; an insert that fails lets it through.
        let _inserted = FLOOD.insert(tgid, fresh, 0).is_ok();
        return true;
    };
    let bucket = unsafe { &mut *bucket };
    let earned = now.saturating_sub(bucket.refilled_ns) / flood::NS_PER_TOKEN;
    if earned > 0 {
        bucket.tokens = (bucket.tokens + earned).min(flood::BURST);
        bucket.refilled_ns = now;
    }
    let had = bucket.tokens;
    bucket.tokens = had.saturating_sub(1);
    if quiet_only { had > flood::BURST - flood::QUIET } else { had > 0 }
}

/// Copies `data` into this CPU's ring and counts the outcome; a [`Class::Bulk`] record is
/// shed (counted) instead when the ring holds more than `bulk_limit_bytes`, keeping the
/// rest for the records rules need most. Wakes the reader only when the pending bytes cross
/// a multiple of `wakeup_bytes`: a wake-up per record would cost more than the capture
/// itself (see the perf-floor notes). Returns whether the record was written.
#[inline(always)]
pub fn emit(data: &[u8], class: Class) -> bool {
    let ring = this_ring();
    if class == Class::Bulk {
        let limit = config!(bulk_limit_bytes) as u64;
        if limit != 0 && ring.query(BPF_RB_AVAIL_DATA as u64) + data.len() as u64 > limit {
            if let Some(c) = counters() {
                c.shed += 1;
            }
            return false;
        }
    }
    let wakeup_bytes = config!(wakeup_bytes);
    let flags = if wakeup_bytes == 0 {
        0
    } else {
        let wake = wakeup_bytes as u64;
        let pending = ring.query(BPF_RB_AVAIL_DATA as u64);
        if (pending + data.len() as u64) / wake != pending / wake {
            BPF_RB_FORCE_WAKEUP as u64
        } else {
            BPF_RB_NO_WAKEUP as u64
        }
    };
    let ok = ring.output::<[u8]>(data, flags).is_ok();
    if let Some(c) = counters() {
        if ok {
            c.emitted += 1;
            c.emitted_bytes += data.len() as u64;
        } else {
            c.lost += 1;
        }
    }
    ok
}
