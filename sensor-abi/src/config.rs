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

    // The executable's path, layer and permissions (`mm.exe_file`), and the working
    // directory: paths are walked up their dentries and mounts to the task's root.
    /// `task_struct.fs`
    pub task_fs: u32,
    /// `fs_struct.root` (a `struct path`)
    pub fs_root: u32,
    /// `path.mnt`
    pub path_mnt: u32,
    /// `path.dentry`
    pub path_dentry: u32,
    /// `file.f_path`
    pub file_path: u32,
    /// `dentry.d_parent`
    pub dentry_parent: u32,
    /// `dentry.d_name.name`
    pub dentry_name: u32,
    /// `vfsmount.mnt_root`
    pub vfsmount_root: u32,
    /// `mount.mnt`: where the `vfsmount` sits inside its `struct mount`
    pub mount_mnt: u32,
    /// `mount.mnt_parent`
    pub mount_parent: u32,
    /// `mount.mnt_mountpoint`
    pub mount_mountpoint: u32,
    /// `inode.i_sb`
    pub inode_sb: u32,
    /// `super_block.s_magic`
    pub sb_magic: u32,
    /// `super_block.s_flags`
    pub sb_flags: u32,
    /// `inode.i_mode`
    pub inode_mode: u32,
    /// `inode.i_uid`
    pub inode_uid: u32,
    /// `inode.i_gid`
    pub inode_gid: u32,
    /// `cred.fsuid`
    pub cred_fsuid: u32,
    /// `cred.fsgid`
    pub cred_fsgid: u32,
    /// `ovl_inode.__upperdentry` minus `ovl_inode.vfs_inode`: from an overlay inode to
    /// its upper dentry; [`OFFSET_MISSING`] without overlayfs in the kernel's BTF
    pub ovl_upperdentry: u32,

    // Process group, session, limits and memory, at exec.
    /// `signal_struct.pids` (an array of `struct pid *` by `enum pid_type`)
    pub signal_pids: u32,
    /// `PIDTYPE_PGID`
    pub pidtype_pgid: u32,
    /// `PIDTYPE_SID`
    pub pidtype_sid: u32,
    /// `signal_struct.rlim[RLIMIT_NOFILE].rlim_cur`
    pub signal_nofile_cur: u32,
    /// `task_struct.maj_flt`
    pub task_maj_flt: u32,
    /// `task_struct.min_flt`
    pub task_min_flt: u32,
    /// `mm_struct.total_vm` (pages)
    pub mm_total_vm: u32,
    /// `mm_struct.rss_stat`: an array of counters by `MM_*PAGES`/`MM_SWAPENTS`
    pub mm_rss_stat: u32,
    /// Bytes from one `rss_stat` counter to the next
    pub rss_stride: u32,
    /// Where a counter's value sits inside one `rss_stat` element (`percpu_counter.count`,
    /// or 0 for an `atomic_long_t`)
    pub rss_count: u32,
    /// `pid_namespace.child_reaper`
    pub pid_ns_reaper: u32,
    /// `task_struct.start_boottime`
    pub task_start_boottime: u32,

    // cgroups: the default (v2) hierarchy's path and one v1 controller's.
    /// `task_struct.cgroups`
    pub task_cgroups: u32,
    /// `css_set.dfl_cgrp`
    pub css_set_dfl_cgrp: u32,
    /// `css_set.subsys` (an array of `struct cgroup_subsys_state *`)
    pub css_set_subsys: u32,
    /// The `cgroup_subsys_id` of the v1 controller whose path is read (`memory`, else
    /// `pids`, else `cpu`); [`OFFSET_MISSING`] for none
    pub cgroup_v1_subsys: u32,
    /// `cgroup_subsys_state.cgroup`
    pub css_cgroup: u32,
    /// `cgroup.kn`
    pub cgroup_kn: u32,
    /// `kernfs_node.name`
    pub kernfs_name: u32,
    /// `kernfs_node.__parent` (or `parent` before 6.15)
    pub kernfs_parent: u32,
    /// `cgroup.root`
    pub cgroup_root: u32,
    /// `cgroup_root.hierarchy_id`
    pub cgroup_root_hierarchy_id: u32,

    // 32-bit syscalls.
    /// `task_struct.thread_info.status` (`TS_COMPAT` marks an ia32 syscall)
    pub task_ti_status: u32,

    // The local end of a socket.
    /// `task_struct.files`
    pub task_files: u32,
    /// `files_struct.fdt`
    pub files_fdt: u32,
    /// `fdtable.max_fds`
    pub fdtable_max_fds: u32,
    /// `fdtable.fd`
    pub fdtable_fd: u32,
    /// `file.private_data`
    pub file_private_data: u32,
    /// `socket.sk`
    pub socket_sk: u32,
    /// `socket.file`
    pub socket_file: u32,
    /// `sock_common.skc_family`
    pub sk_family: u32,
    /// `sock_common.skc_rcv_saddr`
    pub sk_rcv_saddr: u32,
    /// `sock_common.skc_num` (the local port, host order)
    pub sk_num: u32,
    /// `sock_common.skc_v6_rcv_saddr`
    pub sk_v6_rcv_saddr: u32,
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
    /// Pending bytes in a ring above which records of [`spec_flags::BULK`] syscalls are shed
    /// (counted in [`Counters::shed`]) instead of written; 0 never sheds.
    pub bulk_limit_bytes: u32,
    /// Pending bytes in a ring above which each process's syscall records are rate limited
    /// ([`flood`]), the rest counted in [`Counters::throttled`]; 0 never limits.
    pub flood_limit_bytes: u32,
    /// Pending bytes in a ring above which only quiet processes (a bucket nearly full,
    /// [`flood::QUIET`]) write syscall records: the rest of the ring is theirs.
    pub quiet_limit_bytes: u32,
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
    /// ia32 syscalls (32-bit programs, `int $0x80`) seen with no x86_64 meaning the sensor
    /// captures: not decoded, only counted.
    pub compat_untranslated: u64,
    /// Records of bulk syscalls not written because their ring was above
    /// [`Config::bulk_limit_bytes`]: room kept for the events rules need most.
    pub shed: u64,
    /// Syscall records not written because their ring was above
    /// [`Config::flood_limit_bytes`] and their process over its [`flood`] rate: one process
    /// flooding the ring cannot crowd out the others.
    pub throttled: u64,
}

/// The per-process rate under ring pressure ([`Config::flood_limit_bytes`]): a token bucket
/// per thread group, in the kernel.
pub mod flood {
    /// One token (one record) every this many nanoseconds: 10,000 records a second.
    pub const NS_PER_TOKEN: u64 = 100_000;
    /// Most tokens a process saves up.
    pub const BURST: u64 = 10_000;
    /// Above `quiet_limit_bytes`, a process writes only while it has used fewer than this
    /// many of its tokens: one that keeps trying (a flood) never gets there.
    pub const QUIET: u64 = 100;
    /// Processes with a bucket; the least recently used give theirs up.
    pub const MAX_PROCESSES: u32 = 8192;
}

/// A process's [`flood`] bucket.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct FloodBucket {
    /// Records it may still write; every attempt under pressure takes one, written or not.
    pub tokens: u64,
    /// When the tokens were last topped up (`bpf_ktime_get_ns`).
    pub refilled_ns: u64,
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
    /// The syscall's role in the prefilter ([`spec_prefilter`](crate::prefilter::spec_prefilter));
    /// 0 for none.
    pub prefilter: u8,
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
    /// Only capture `fcntl` when the command (index 1) makes a new fd (`F_DUPFD`,
    /// `F_DUPFD_CLOEXEC`): the other commands are frequent and change no state.
    pub const DUPFD_ONLY: u8 = 16;
    /// After success, add the local address of the socket fd in argument 0 (`connect`).
    pub const LOCAL_ADDR_ARG0: u8 = 32;
    /// After success, add the local address of the socket fd returned (`accept`).
    pub const LOCAL_ADDR_RET: u8 = 64;
    /// Bulk: shed first when the ring fills up ([`Config::bulk_limit_bytes`]), so that the
    /// events rules need most (exec, connect, opens a rule may match) find room.
    pub const BULK: u8 = 128;
}

/// Entries of the `COMPAT` (by ia32 syscall number) and `SOCKETCALL` (by `socketcall`
/// call number) array maps: the x86_64 number the call stands for, and flags.
pub mod compat_entry {
    /// Bits of the x86_64 syscall number.
    pub const NR_MASK: u32 = 0xffff;
    /// The call has 16-bit uid/gid arguments ([`Ia32::uid16`](crate::syscalls::Ia32)).
    pub const UID16: u32 = 1 << 16;
    /// The entry is in use (0 means "no x86_64 meaning captured").
    pub const VALID: u32 = 1 << 31;
}

/// `F_DUPFD` and `F_DUPFD_CLOEXEC` from `<fcntl.h>`.
pub const F_DUPFD: u64 = 0;
/// See [`F_DUPFD`].
pub const F_DUPFD_CLOEXEC: u64 = 1030;

/// `TS_COMPAT` in `thread_info.status` (x86): the current syscall came through the 32-bit gate.
pub const TS_COMPAT: u32 = 2;

/// `PROT_EXEC` from `<sys/mman.h>`.
pub const PROT_EXEC: u64 = 4;

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain `repr(C)` integer structs without padding; any bit pattern is valid.
    unsafe impl aya::Pod for super::Config {}
    unsafe impl aya::Pod for super::Counters {}
    unsafe impl aya::Pod for super::SyscallSpec {}
    unsafe impl aya::Pod for crate::prefilter::PrefilterConfig {}
}

const _: () = assert!(core::mem::size_of::<SyscallSpec>() == 8);
const _: () = assert!(core::mem::size_of::<KernelOffsets>().is_multiple_of(4));
// No padding: seven u32 fields, then the offsets (all u32).
const _: () = assert!(core::mem::size_of::<Config>() == 28 + core::mem::size_of::<KernelOffsets>());
