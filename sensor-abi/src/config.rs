//! Load-time configuration of the kernel programs, and the counters they keep.

/// Most ring buffers the kernel side can write to; CPUs are grouped onto them.
pub const MAX_RINGS: usize = 16;

/// Byte offsets of the kernel structure fields the programs read, resolved by user space
/// from the running kernel's BTF (`/sys/kernel/btf/vmlinux`), so one object runs on every
/// kernel layout.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    /// `task_struct.real_parent`
    pub task_real_parent: u32,
    /// `task_struct.tgid`
    pub task_tgid: u32,
    /// `task_struct.pid`
    pub task_pid: u32,
    /// `task_struct.group_leader`
    pub task_group_leader: u32,
    /// `task_struct.thread_pid`
    pub task_thread_pid: u32,
    /// `task_struct.nsproxy`
    pub task_nsproxy: u32,
    /// `task_struct.mm`
    pub task_mm: u32,
    /// `task_struct.exit_code`
    pub task_exit_code: u32,
    /// `task_struct.signal`
    pub task_signal: u32,
    /// `signal_struct.live` (an `atomic_t`: threads still running)
    pub signal_live: u32,
    /// `pid.level`
    pub pid_level: u32,
    /// `pid.numbers` (an array of `struct upid`)
    pub pid_numbers: u32,
    /// `sizeof(struct upid)`
    pub upid_size: u32,
    /// `upid.nr`
    pub upid_nr: u32,
    /// `upid.ns`
    pub upid_ns: u32,
    /// `pid_namespace.ns.inum`
    pub pid_ns_inum: u32,
    /// `nsproxy.mnt_ns`
    pub nsproxy_mnt_ns: u32,
    /// `mnt_namespace.ns.inum`
    pub mnt_ns_inum: u32,
    /// `mm_struct.arg_start`
    pub mm_arg_start: u32,
    /// `mm_struct.arg_end`
    pub mm_arg_end: u32,
    /// `mm_struct.env_start`
    pub mm_env_start: u32,
    /// `mm_struct.env_end`
    pub mm_env_end: u32,
    /// `linux_binprm.filename`
    pub bprm_filename: u32,
    /// `task_struct.cred`
    pub task_cred: u32,
    /// `cred.cap_effective`
    pub cred_cap_effective: u32,
    /// `cred.cap_permitted`
    pub cred_cap_permitted: u32,
    /// `cred.cap_inheritable`
    pub cred_cap_inheritable: u32,
    /// `task_struct.loginuid`, or [`OFFSET_MISSING`] (a kernel without audit)
    pub task_loginuid: u32,
    /// `mm_struct.exe_file`
    pub mm_exe_file: u32,
    /// `file.f_inode`
    pub file_inode: u32,
    /// `inode.i_ino`
    pub inode_ino: u32,
    /// `inode.i_ctime_sec` (or the `tv_sec` of older kernels' timespec)
    pub inode_ctime_sec: u32,
    /// `inode.i_ctime_nsec` (or `tv_nsec`)
    pub inode_ctime_nsec: u32,
    /// `inode.i_mtime_sec` (or `tv_sec`)
    pub inode_mtime_sec: u32,
    /// `inode.i_mtime_nsec` (or `tv_nsec`)
    pub inode_mtime_nsec: u32,
    /// `signal_struct.tty`
    pub signal_tty: u32,
    /// `tty_struct.index`
    pub tty_index: u32,
    /// `tty_struct.driver`
    pub tty_driver: u32,
    /// `tty_driver.major`
    pub tty_driver_major: u32,
    /// `tty_driver.minor_start`
    pub tty_driver_minor_start: u32,
}

/// A [`KernelOffsets`] entry for a field this kernel does not have; the programs skip it.
pub const OFFSET_MISSING: u32 = u32::MAX;

/// Configuration the loader writes into the object's `CONFIG` global before loading.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Config {
    /// Process id of the sensor itself; its own syscalls are not captured (no feedback loop).
    pub self_pid: u32,
    /// CPUs that share one ring buffer; CPU `c` writes to ring `c / cpus_per_ring`.
    pub cpus_per_ring: u32,
    /// Number of ring buffers in use (at most [`MAX_RINGS`]).
    pub nr_rings: u32,
    /// Wake the reader when pending data crosses a multiple of this many bytes; between
    /// wake-ups the reader drains on a timer. 0 wakes the reader for every record.
    pub wakeup_bytes: u32,
    /// Field offsets of the running kernel.
    pub offsets: KernelOffsets,
}

/// Per-CPU counters, one entry of the `COUNTERS` per-CPU array.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Records written to a ring buffer.
    pub emitted: u64,
    /// Records lost because the ring buffer was full.
    pub lost: u64,
    /// Enter-side captures lost because the stash was full or the exit found none.
    pub enter_missed: u64,
    /// Bytes of the records written (their payload, as user space reads it back), so that
    /// user space can tell how full a ring is from what it has read.
    pub emitted_bytes: u64,
}

/// One entry of the `SYSCALLS` array map (indexed by syscall number): whether the syscall
/// is captured and how each of its arguments is read.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyscallSpec {
    /// [`spec_flags`]; 0 means the syscall is not captured.
    pub flags: u8,
    /// An [`ArgKind`](crate::syscalls::ArgKind) per argument.
    pub kinds: [u8; 6],
    /// Reserved (keeps the entry 8-byte sized).
    pub pad: u8,
}

/// Flags in [`SyscallSpec::flags`].
pub mod spec_flags {
    /// Capture this syscall.
    pub const ENABLED: u8 = 1;
    /// Memory arguments are read at syscall enter and kept for the exit (time-of-check
    /// to time-of-use: user memory can change while the call runs).
    pub const AT_ENTER: u8 = 2;
    /// Only capture when the `prot` argument (index 2) requests `PROT_EXEC`.
    pub const PROT_EXEC_ONLY: u8 = 4;
    /// An exec: after success the caller's registers and memory are the new program's, so
    /// the syscall number and arguments are kept at enter, the path comes from
    /// `sched_process_exec`, and `argv` from the new `mm`.
    pub const EXEC: u8 = 8;
}

/// `PROT_EXEC` from `<sys/mman.h>`.
pub const PROT_EXEC: u64 = 4;

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain `repr(C)` integer structs without padding; any bit pattern is valid.
    unsafe impl aya::Pod for super::Config {}
    unsafe impl aya::Pod for super::Counters {}
    unsafe impl aya::Pod for super::SyscallSpec {}
}

const _: () = assert!(core::mem::size_of::<SyscallSpec>() == 8);
const _: () = assert!(core::mem::size_of::<Config>() == 16 + 40 * 4);
