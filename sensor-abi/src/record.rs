//! Layout of the records the kernel programs write into the ring buffers.
//!
//! A record is a [`Header`], then a body that depends on [`Header::kind`]:
//!
//! - [`RecordKind::Syscall`]: a [`SyscallBody`], then `nblobs` [`Blob`]s;
//! - [`RecordKind::ProcFork`]: a [`ForkBody`];
//! - [`RecordKind::ProcExec`]: an [`ExecBody`], then the executable path and [`ExecInfo`] as blobs;
//! - [`RecordKind::ProcExit`]: an [`ExitBody`];
//! - [`RecordKind::CgroupAttach`]: a [`CgroupAttachBody`], then the cgroup path as a blob.
//!
//! A blob is a [`BlobHeader`] followed by `len` bytes, unaligned. Every integer is in the
//! host's byte order. User space checks `version` and `len` before trusting anything else.

/// Version of this layout; bumped on any change so a stale object is refused, not misread.
pub const ABI_VERSION: u16 = 3;

/// Largest path or string captured from user memory (Linux `PATH_MAX`, NUL included).
pub const PATH_MAX: usize = 4096;
/// Largest argument vector captured for an exec, in bytes (NUL-separated arguments).
pub const ARGV_MAX: usize = 4096;
/// Most arguments read from an exec's argument pointer array.
pub const ARGV_MAX_ARGS: usize = 64;
/// Largest socket address captured (`sockaddr_un` is 110 bytes).
pub const SOCKADDR_MAX: usize = 128;
/// Bytes of the scratch area a record is assembled in. A record never exceeds
/// [`RECORD_MAX`]; the rest is slack so every bounded write at a masked offset fits.
pub const SCRATCH_SIZE: usize = 32768;
/// Offsets inside the scratch area are masked with this before each write.
pub const OFFSET_MASK: usize = 16383;
/// Largest cgroup path captured (one per hierarchy read).
pub const CGROUP_PATH_MAX: usize = 1024;
/// Largest record the kernel emits.
pub const RECORD_MAX: usize = OFFSET_MASK + 1 + PATH_MAX;

/// What a record describes.
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// The exit of a captured system call.
    Syscall = 1,
    /// A task was created (`sched_process_fork`), thread or process.
    ProcFork = 2,
    /// A task replaced its program (`sched_process_exec`).
    ProcExec = 3,
    /// A task exited (`sched_process_exit`).
    ProcExit = 4,
    /// A task was moved to another cgroup (`cgroup_attach_task`).
    CgroupAttach = 5,
}

impl RecordKind {
    /// The kind for a raw header value, if known.
    pub const fn from_raw(raw: u16) -> Option<Self> {
        match raw {
            1 => Some(Self::Syscall),
            2 => Some(Self::ProcFork),
            3 => Some(Self::ProcExec),
            4 => Some(Self::ProcExit),
            5 => Some(Self::CgroupAttach),
            _ => None,
        }
    }
}

/// Task identity and timing, at the start of every record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Header {
    /// [`ABI_VERSION`].
    pub version: u16,
    /// A [`RecordKind`].
    pub kind: u16,
    /// Total length of the record in bytes, header included.
    pub len: u32,
    /// `CLOCK_BOOTTIME` in nanoseconds (monotonic, counts suspend).
    pub ts_boot_ns: u64,
    /// cgroup v2 id of the task.
    pub cgroup_id: u64,
    /// Thread id as the host sees it (kernel `pid`).
    pub tid: u32,
    /// Process id as the host sees it (kernel `tgid`).
    pub pid: u32,
    /// Thread id inside the task's pid namespace.
    pub ns_tid: u32,
    /// Process id inside the task's pid namespace.
    pub ns_pid: u32,
    /// Process id of the parent (`real_parent->tgid`).
    pub ppid: u32,
    /// Real user id.
    pub uid: u32,
    /// Real group id.
    pub gid: u32,
    /// Inode number of the task's pid namespace.
    pub pid_ns: u32,
    /// Inode number of the task's mount namespace.
    pub mnt_ns: u32,
    /// CPU the record was written on.
    pub cpu: u32,
    /// Task command name, NUL-padded.
    pub comm: [u8; 16],
}

/// Flags in [`SyscallBody::flags`].
pub mod syscall_flags {
    /// Some blob was cut at its bound, or some blobs did not fit the record.
    pub const TRUNCATED: u16 = 1;
    /// The enter-side capture for this call was missing (stash evicted or call started
    /// before the sensor attached); blobs that come from the enter side are absent.
    pub const NO_ENTER: u16 = 2;
    /// The call came through the 32-bit gate; `nr` and the arguments are already translated
    /// to their x86_64 meaning. Its memory arguments were read at exit (the kernel has no
    /// per-syscall enter tracepoints for ia32 calls).
    pub const COMPAT: u16 = 4;
    /// Some memory argument could not be read at enter (a page not yet resident) and was
    /// read again at exit: what the call used may differ from what was read.
    pub const REREAD_AT_EXIT: u16 = 8;
}

/// Body of a [`RecordKind::Syscall`] record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SyscallBody {
    /// System call number (x86_64 numbering).
    pub nr: u32,
    /// Number of blobs that follow.
    pub nblobs: u16,
    /// [`syscall_flags`].
    pub flags: u16,
    /// Return value.
    pub ret: i64,
    /// The six argument registers, as passed.
    pub args: [u64; 6],
}

/// Header of a variable-length blob captured from memory.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct BlobHeader {
    /// Index of the argument the blob belongs to (0..6), or one of [`blob_slot`].
    pub arg: u8,
    /// [`blob_flags`].
    pub flags: u8,
    /// Number of bytes that follow.
    pub len: u16,
}

/// Blob slots that are not a plain argument index.
pub mod blob_slot {
    /// The argument vector of an exec (NUL-separated).
    pub const ARGV: u8 = 16;
    /// The path an exec ran, as the kernel resolved the call (`linux_binprm.filename`).
    pub const EXE_PATH: u8 = 17;
    /// The environment of an exec'd program (NUL-separated `KEY=value`).
    pub const ENV: u8 = 18;
    /// An [`ExecInfo`](super::ExecInfo): the exec'd program's credentials, file and terminal.
    pub const EXEC_INFO: u8 = 19;
    /// The file the task runs (`mm.exe_file`), its path walked up to the task's root: what
    /// the kernel executed, whatever path or fd the call named.
    pub const EXE_FILE: u8 = 20;
    /// The task's cgroup in the default (v2) hierarchy.
    pub const CGROUP_DFL: u8 = 21;
    /// The task's cgroup in the hierarchy of one v1 controller (`KernelOffsets::cgroup_v1_subsys`).
    pub const CGROUP_V1: u8 = 22;
    /// The local address of a socket, as a `struct sockaddr`.
    pub const LOCAL_ADDR: u8 = 23;
    /// The cgroup path of a [`RecordKind::CgroupAttach`](super::RecordKind).
    pub const CGROUP_PATH: u8 = 24;
    /// The path of the file a syscall's fd argument refers to, when the prefilter kept
    /// that file's open back (see `prefilter::spec_prefilter::FD_ARG`).
    pub const FD_FILE: u8 = 25;
}

/// Flags in [`BlobHeader::flags`].
pub mod blob_flags {
    /// The data was cut at its bound.
    pub const TRUNCATED: u8 = 1;
    /// Reading the memory failed; `len` is 0.
    pub const FAULT: u8 = 2;
}

/// Body of a [`RecordKind::ProcFork`] record; the header describes the parent.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ForkBody {
    /// Thread id of the new task.
    pub child_tid: u32,
    /// Process id of the new task (equals the parent's for a thread).
    pub child_pid: u32,
}

/// Body of a [`RecordKind::ProcExec`] record; the blobs of the path executed and of its
/// [`ExecInfo`] follow.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ExecBody {
    /// Thread id before the exec (differs when a non-leader thread execs).
    pub old_tid: u32,
    /// Number of blobs that follow.
    pub nblobs: u32,
}

/// What the kernel knows of a newly exec'd program at `sched_process_exec`, read there
/// because a short-lived program is gone before user space could ask `/proc`. The data
/// of a [`blob_slot::EXEC_INFO`] blob, on the exec's `ProcExec` and syscall records.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExecInfo {
    /// `cred.cap_effective` (after set-uid and file capabilities applied).
    pub cap_effective: u64,
    /// `cred.cap_permitted`.
    pub cap_permitted: u64,
    /// `cred.cap_inheritable`.
    pub cap_inheritable: u64,
    /// Inode number of the executable (`mm.exe_file`).
    pub exe_ino: u64,
    /// The executable's ctime, seconds.
    pub exe_ctime_sec: i64,
    /// The executable's mtime, seconds.
    pub exe_mtime_sec: i64,
    /// The executable's ctime, nanoseconds part.
    pub exe_ctime_nsec: u32,
    /// The executable's mtime, nanoseconds part.
    pub exe_mtime_nsec: u32,
    /// Controlling terminal's device major (0 and minor 0: none).
    pub tty_major: u32,
    /// Controlling terminal's device minor.
    pub tty_minor: u32,
    /// `task.loginuid` (`u32::MAX`: unset, or not in this kernel).
    pub loginuid: u32,
    /// [`exe_flags`] of the executable.
    pub exe_flags: u32,
    /// Process group id (host view).
    pub pgid: u32,
    /// Process group id in the task's pid namespace.
    pub vpgid: u32,
    /// Session id (host view).
    pub sid: u32,
    /// Session id in the task's pid namespace.
    pub vsid: u32,
    /// Soft limit of open files (`RLIMIT_NOFILE`).
    pub fdlimit: u64,
    /// Major page faults of the task so far.
    pub maj_flt: u64,
    /// Minor page faults of the task so far.
    pub min_flt: u64,
    /// Virtual memory, pages.
    pub vm_pages: u64,
    /// Resident memory (file, anonymous and shared pages), pages.
    pub rss_pages: u64,
    /// Swapped-out pages.
    pub swap_pages: u64,
    /// When the init of the task's pid namespace started, `CLOCK_BOOTTIME` ns.
    pub pidns_init_start_ns: u64,
}

/// Flags of [`ExecInfo::exe_flags`], Falco's `PPM_EXE_*` values.
pub mod exe_flags {
    /// The executable is writable by the task (its fsuid/fsgid and mode bits, or
    /// `CAP_DAC_OVERRIDE`) on a file system mounted writable.
    pub const WRITABLE: u32 = 1;
    /// The executable is in the upper (writable) layer of an overlay file system.
    pub const UPPER_LAYER: u32 = 2;
    /// The executable is an anonymous memfd file.
    pub const FROM_MEMFD: u32 = 4;
    /// The executable is in a lower (image) layer of an overlay file system.
    pub const LOWER_LAYER: u32 = 8;
}

/// Body of a [`RecordKind::CgroupAttach`] record; the header describes the task doing the
/// move (a runtime), the body the task moved.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct CgroupAttachBody {
    /// Thread id of the moved task.
    pub tid: u32,
    /// Process id of the moved task.
    pub pid: u32,
    /// The hierarchy (`/proc/PID/cgroup`'s first column: 0 for the default one).
    pub hierarchy: u32,
    /// Non-zero when the whole thread group moves.
    pub threadgroup: u32,
}

/// Body of a [`RecordKind::ProcExit`] record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ExitBody {
    /// `task->exit_code` (wait status encoding).
    pub exit_code: i32,
    /// Non-zero when the thread is the process's last one.
    pub group_dead: u32,
}

/// Size of [`Header`].
pub const HEADER_SIZE: usize = core::mem::size_of::<Header>();
/// Size of [`SyscallBody`].
pub const SYSCALL_BODY_SIZE: usize = core::mem::size_of::<SyscallBody>();
/// Size of [`BlobHeader`].
pub const BLOB_HEADER_SIZE: usize = core::mem::size_of::<BlobHeader>();

const _: () = assert!(HEADER_SIZE == 80);
const _: () = assert!(SYSCALL_BODY_SIZE == 64);
const _: () = assert!(BLOB_HEADER_SIZE == 4);
const _: () = assert!(core::mem::size_of::<ExecInfo>() == 144);
const _: () = assert!(OFFSET_MASK + 1 + PATH_MAX + BLOB_HEADER_SIZE <= SCRATCH_SIZE);
// An argv blob writes each string at up to ARGV_MAX - 1 past its start, up to PATH_MAX long.
const _: () = assert!(OFFSET_MASK + BLOB_HEADER_SIZE + ARGV_MAX + PATH_MAX <= SCRATCH_SIZE);
const _: () = assert!(SCRATCH_SIZE.is_power_of_two() && ARGV_MAX.is_power_of_two());
const _: () = assert!((OFFSET_MASK + 1).is_power_of_two());
