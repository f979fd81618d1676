//! The maps shared by all programs, and the load-time configuration global.

use aya_ebpf::{
    Global,
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::bpf_get_smp_processor_id,
    macros::map,
    maps::{Array, LruHashMap, PerCpuArray, RingBuf},
};
use sensor_abi::{
    config::{Config, Counters, MAX_RINGS, SyscallSpec},
    record::{PATH_MAX, SCRATCH_SIZE},
    syscalls::MAX_SYSCALL_NR,
};

/// Written by the loader before load (`EbpfLoader::set_global`).
#[unsafe(no_mangle)]
pub static CONFIG: Global<Config> = Global::new(Config {
    self_pid: 0,
    cpus_per_ring: 1,
    nr_rings: 1,
    wakeup_bytes: 0,
    // All u32: zero is a valid (unresolved) value for each; the loader fills them in.
    offsets: unsafe { core::mem::zeroed() },
});

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

/// Bytes of blob data one stash entry holds: a path and a small structure (an exec's
/// `ExecInfo`).
pub const STASH_DATA: usize = PATH_MAX + 128;

/// What the enter side (and `sched_process_exec`) captured for a thread's pending syscall.
#[repr(C)]
pub struct Stash {
    /// Syscall number the entry is for; [`STASH_EMPTY`] once consumed.
    pub nr: u32,
    /// Bytes of `data` in use.
    pub len: u32,
    /// Blobs in `data`.
    pub nblobs: u16,
    /// `syscall_flags` to carry to the record, and [`STASH_EXEC_DONE`].
    pub flags: u16,
    /// Reserved.
    pub pad: u32,
    /// The argument registers at enter.
    pub args: [u64; 6],
    /// Serialized blobs, as they go into the record.
    pub data: [u8; STASH_DATA],
}

/// `Stash::nr` of a consumed entry.
pub const STASH_EMPTY: u32 = u32::MAX;
/// `Stash::flags` bit: `sched_process_exec` ran for this exec and left its path in `data`.
pub const STASH_EXEC_DONE: u16 = 0x8000;

/// Per-thread stash keyed by `pid_tgid`. Entries are reused rather than deleted, so the
/// hot path only inserts for threads it has not seen; LRU eviction bounds it.
#[map]
pub static STASH: LruHashMap<u64, Stash> = LruHashMap::with_max_entries(4096, 0);

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

/// Copies `data` into this CPU's ring and counts the outcome. Wakes the reader only when
/// the pending bytes cross a multiple of `wakeup_bytes`: a wake-up per record would cost
/// more than the capture itself (see the perf-floor notes).
#[inline(always)]
pub fn emit(data: &[u8], cfg: &Config) {
    let cpu = unsafe { bpf_get_smp_processor_id() };
    let idx = cpu.checked_div(cfg.cpus_per_ring).unwrap_or(0);
    let ring = ring_by_index(idx);
    let flags = if cfg.wakeup_bytes == 0 {
        0
    } else {
        let wake = cfg.wakeup_bytes as u64;
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
}
