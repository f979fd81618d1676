//! The typed events the sensor works on, and their stable JSON form.
//!
//! [`decode`](decode::decode) turns a kernel record into an [`Event`]. The JSON form (one
//! object per line in capture files) is the serde form of these types:
//!
//! ```json
//! {"ts":1234,"wall_ts":1763800000000000000,"cpu":1,"pid":42,"tid":42,"ns_pid":42,
//!  "ns_tid":42,"ppid":1,"uid":0,"gid":0,"comm":"cat","cgroup_id":7,"pid_ns":4026531836,
//!  "mnt_ns":4026531841,"event":"syscall","syscall":"openat","nr":257,"ret":3,
//!  "args":{"family":"open","dirfd":-100,"path":"/etc/hosts","flags":0,"mode":0}}
//! ```
//!
//! `event` is one of `syscall`, `proc_fork`, `proc_exec`, `proc_exit`, `cgroup_attach`; a syscall's `args`
//! carry a `family` tag naming the [`SyscallArgs`] variant. Fields are only added, never
//! renamed, so capture files stay readable.

mod args;
pub mod decode;
mod display;
mod sockaddr;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use args::ArgValue;
pub use decode::{Clock, DecodeError, decode};
pub use sockaddr::SockAddr;

/// One captured event: who did it, when, and what.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// `CLOCK_BOOTTIME` nanoseconds (monotonic).
    pub ts: u64,
    /// Wall-clock nanoseconds since the Unix epoch.
    pub wall_ts: u64,
    /// CPU the event was captured on.
    pub cpu: u32,
    /// Process id (host view).
    pub pid: u32,
    /// Thread id (host view).
    pub tid: u32,
    /// Process id inside the task's pid namespace.
    pub ns_pid: u32,
    /// Thread id inside the task's pid namespace.
    pub ns_tid: u32,
    /// Parent process id (host view).
    pub ppid: u32,
    /// Real user id.
    pub uid: u32,
    /// Real group id.
    pub gid: u32,
    /// Task command name.
    pub comm: String,
    /// cgroup v2 id.
    pub cgroup_id: u64,
    /// pid namespace inode.
    pub pid_ns: u32,
    /// mount namespace inode.
    pub mnt_ns: u32,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What an event describes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// A system call returned.
    Syscall(SyscallEvent),
    /// A task created a thread or process.
    ProcFork {
        /// Process id of the new task.
        child_pid: u32,
        /// Thread id of the new task.
        child_tid: u32,
    },
    /// A task started a new program.
    ProcExec {
        /// Thread id before the exec.
        old_tid: u32,
        /// Path of the program, as the kernel resolved the call.
        filename: Option<String>,
    },
    /// A thread exited.
    ProcExit {
        /// Wait status (`exit_code`).
        exit_code: i32,
        /// The last thread of its process.
        group_dead: bool,
    },
    /// A task was moved to another cgroup (a runtime placing a process in a container); the
    /// event's own task is the one that moved it.
    CgroupAttach {
        /// Process id of the moved task (the event's own `pid` is the mover's).
        task_pid: u32,
        /// Thread id of the moved task.
        task_tid: u32,
        /// The hierarchy, as `/proc/PID/cgroup` numbers it (0: the default, v2, one).
        hierarchy: u32,
        /// The cgroup's path in that hierarchy.
        path: Option<String>,
    },
}

/// The cgroups of a task, as the kernel saw them at its exec: the default (v2)
/// hierarchy's, and that of one v1 controller (on v1 and hybrid hosts, where runtimes
/// place containers).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cgroups {
    /// Path in the default (v2) hierarchy.
    pub unified: Option<String>,
    /// The v1 controller read (`memory`, else `pids` or `cpu`) and its path.
    pub v1: Option<(String, String)>,
}

impl Cgroups {
    /// `controller=path` pairs: the default hierarchy as `unified`, then the v1 controller.
    pub fn pairs(&self) -> impl Iterator<Item = String> + '_ {
        let unified = self.unified.iter().map(|path| format!("unified={path}"));
        unified.chain(self.v1.iter().map(|(controller, path)| format!("{controller}={path}")))
    }

    /// The path for `controller` (`unified` for the default hierarchy).
    pub fn path_of(&self, controller: &str) -> Option<String> {
        match &self.v1 {
            _ if controller == "unified" => self.unified.clone(),
            Some((name, path)) if name == controller => Some(path.clone()),
            _ => None,
        }
    }

    /// The paths as `/proc/PID/cgroup` lines (`0::/path`, `N:memory:/path`), which the
    /// container id is read from.
    pub fn proc_text(&self) -> String {
        let mut text = String::new();
        if let Some(path) = &self.unified {
            text.push_str(&format!("0::{path}\n"));
        }
        if let Some((controller, path)) = &self.v1 {
            text.push_str(&format!("1:{controller}:{path}\n"));
        }
        text
    }
}

/// What the kernel knew of a program right after its exec (so a program that exits at
/// once still has them): capabilities, executable inode, times and flags, terminal, login
/// uid, process group and session, limits and memory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExecInfo {
    /// Effective capabilities.
    pub cap_effective: u64,
    /// Permitted capabilities.
    pub cap_permitted: u64,
    /// Inheritable capabilities.
    pub cap_inheritable: u64,
    /// Inode number of the executable.
    pub exe_ino: u64,
    /// The executable's ctime, ns since the epoch.
    pub exe_ctime_ns: u64,
    /// The executable's mtime, ns since the epoch.
    pub exe_mtime_ns: u64,
    /// Controlling terminal as `/proc/PID/stat` encodes it (`tty_nr`); 0 for none.
    pub tty: u32,
    /// Login uid (`u32::MAX`: unset).
    pub loginuid: u32,
    /// The executable's `sensor_abi::record::exe_flags` (writable, upper or lower overlay
    /// layer, memfd).
    pub exe_flags: u32,
    /// Process group id (host view).
    pub pgid: u32,
    /// Process group id in the process's pid namespace (0: outside it).
    pub vpgid: u32,
    /// Session id (host view).
    pub sid: u32,
    /// Session id in the process's pid namespace (0: outside it).
    pub vsid: u32,
    /// Soft limit of open files.
    pub fdlimit: u64,
    /// Major page faults so far.
    pub maj_flt: u64,
    /// Minor page faults so far.
    pub min_flt: u64,
    /// Virtual memory, KiB.
    pub vm_size_kb: u64,
    /// Resident memory, KiB.
    pub vm_rss_kb: u64,
    /// Swapped-out memory, KiB.
    pub vm_swap_kb: u64,
    /// Start of the init process of its pid namespace, wall-clock ns since the epoch.
    pub pidns_init_start_ns: u64,
}

impl ExecInfo {
    /// The kernel's record, with boot-time stamps turned into wall-clock time by `clock`.
    pub fn from_kernel(k: &sensor_abi::record::ExecInfo, clock: &decode::Clock) -> Self {
        let ns = |sec: i64, nsec: u32| (sec.max(0) as u64) * 1_000_000_000 + u64::from(nsec);
        // The kernel's new_encode_dev(), as /proc/PID/stat prints it.
        let (major, minor) = (k.tty_major, k.tty_minor);
        let tty = (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12);
        // SAFETY: sysconf has no preconditions.
        let page_kb = (unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1024) as u64) / 1024;
        ExecInfo {
            cap_effective: k.cap_effective,
            cap_permitted: k.cap_permitted,
            cap_inheritable: k.cap_inheritable,
            exe_ino: k.exe_ino,
            exe_ctime_ns: ns(k.exe_ctime_sec, k.exe_ctime_nsec),
            exe_mtime_ns: ns(k.exe_mtime_sec, k.exe_mtime_nsec),
            tty,
            loginuid: k.loginuid,
            exe_flags: k.exe_flags,
            pgid: k.pgid,
            vpgid: k.vpgid,
            sid: k.sid,
            vsid: k.vsid,
            fdlimit: k.fdlimit,
            maj_flt: k.maj_flt,
            min_flt: k.min_flt,
            vm_size_kb: k.vm_pages * page_kb,
            vm_rss_kb: k.rss_pages * page_kb,
            vm_swap_kb: k.swap_pages * page_kb,
            pidns_init_start_ns: if k.pidns_init_start_ns == 0 { 0 } else { clock.wall(k.pidns_init_start_ns) },
        }
    }

    /// Whether the executable has `flag` (a `sensor_abi::record::exe_flags` value).
    pub fn has(&self, flag: u32) -> bool {
        self.exe_flags & flag != 0
    }
}

/// A system call's exit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyscallEvent {
    /// Syscall name (`openat`), as Falco's `evt.type`.
    #[serde(rename = "syscall")]
    pub name: String,
    /// Syscall number.
    pub nr: u32,
    /// Return value (negative errno on failure).
    pub ret: i64,
    /// Some captured data was cut at its bound.
    #[serde(default, skip_serializing_if = "is_false")]
    pub truncated: bool,
    /// The enter-side capture was missing, so memory arguments are absent.
    #[serde(default, skip_serializing_if = "is_false")]
    pub enter_missing: bool,
    /// The call came through the 32-bit gate (translated to its x86_64 meaning).
    #[serde(default, skip_serializing_if = "is_false")]
    pub compat: bool,
    /// A memory argument was unreadable at enter and was read at exit instead.
    #[serde(default, skip_serializing_if = "is_false")]
    pub reread: bool,
    /// The file behind the fd argument, sent by the kernel because it kept the file's open
    /// back (the in-kernel prefilter): the fd table learns it from this event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fd_file: Option<FdFile>,
    /// Arguments, by family.
    pub args: SyscallArgs,
}

/// An fd and the path of its file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdFile {
    /// The fd number.
    pub fd: i32,
    /// The file's path, from the process's root.
    pub path: String,
}

impl SyscallEvent {
    /// A complete native call of syscall `name` (number `nr`) that returned `ret`.
    pub fn new(name: &str, nr: u32, ret: i64, args: SyscallArgs) -> Self {
        Self {
            name: name.to_owned(),
            nr,
            ret,
            truncated: false,
            enter_missing: false,
            compat: false,
            reread: false,
            fd_file: None,
            args,
        }
    }

    /// Why the event's data is incomplete, if it is: `truncated` (cut at a bound),
    /// `enter_missing` (no enter-side capture), `reread_at_exit` (memory read at exit).
    pub fn gaps(&self) -> impl Iterator<Item = &'static str> {
        [(self.truncated, "truncated"), (self.enter_missing, "enter_missing"), (self.reread, "reread_at_exit")]
            .into_iter()
            .filter_map(|(set, reason)| set.then_some(reason))
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn no_strings(strings: &Arc<Vec<String>>) -> bool {
    strings.is_empty()
}

/// Arguments of a system call, one variant per family. Memory arguments are `None` when
/// they were not captured (null pointer, unreadable memory, or a missing enter side).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "family", rename_all = "snake_case")]
pub enum SyscallArgs {
    /// `open`, `openat`, `openat2`, `creat`; the new fd is the return value.
    Open {
        /// Directory fd for relative paths (`AT_FDCWD` is -100); absent for `open`/`creat`.
        dirfd: Option<i32>,
        /// Path as passed.
        path: Option<String>,
        /// `O_*` flags.
        flags: u64,
        /// Creation mode.
        mode: u32,
        /// `RESOLVE_*` flags (`openat2`).
        resolve: Option<u64>,
    },
    /// `execve`, `execveat`.
    Exec {
        /// Directory fd (`execveat`).
        dirfd: Option<i32>,
        /// Program path as the call named it (`linux_binprm.filename` on success: with an
        /// fd, `/dev/fd/N`), as passed on failure.
        path: Option<String>,
        /// After success, the path of the file the kernel executed (`mm.exe_file`), from
        /// the process's root: the binary behind a symlink, `/proc/self/exe` or an fd.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exe_file: Option<String>,
        /// After success, the process's cgroups at the exec.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cgroups: Option<Box<Cgroups>>,
        /// Arguments, `argv[0]` first: from the new program's stack after success, through
        /// the caller's pointer array after a failure.
        argv: Vec<String>,
        /// Environment (`KEY=value`) of the new program, after success (bounded): shared
        /// with the process table, which keeps it as it is.
        #[serde(default, skip_serializing_if = "no_strings")]
        env: Arc<Vec<String>>,
        /// `AT_*` flags (`execveat`).
        flags: u64,
        /// The new program's credentials, executable and terminal, after success.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        info: Option<Box<ExecInfo>>,
    },
    /// `close`.
    Close {
        /// The fd closed.
        fd: i32,
    },
    /// `dup`, `dup2`, `dup3`; the new fd is the return value.
    Dup {
        /// The fd duplicated.
        oldfd: i32,
        /// The requested new fd (`dup2`, `dup3`).
        newfd: Option<i32>,
        /// `O_CLOEXEC` (`dup3`).
        flags: u64,
    },
    /// `socket`; the new fd is the return value.
    Socket {
        /// `AF_*`.
        domain: u32,
        /// `SOCK_*`, with `SOCK_NONBLOCK`/`SOCK_CLOEXEC`.
        #[serde(rename = "type")]
        kind: u32,
        /// Protocol number.
        protocol: u32,
    },
    /// `connect`.
    Connect {
        /// Socket fd.
        fd: i32,
        /// Destination.
        addr: Option<SockAddr>,
        /// The socket's local address after the call, from the kernel (IP sockets).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        local: Option<SockAddr>,
    },
    /// `accept`, `accept4`; the new fd is the return value.
    Accept {
        /// Listening socket fd.
        fd: i32,
        /// Peer address, when the caller asked for it.
        addr: Option<SockAddr>,
        /// `SOCK_*` flags (`accept4`).
        flags: u64,
        /// The new socket's local address, from the kernel (IP sockets).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        local: Option<SockAddr>,
    },
    /// `bind`.
    Bind {
        /// Socket fd.
        fd: i32,
        /// Local address.
        addr: Option<SockAddr>,
    },
    /// `listen`.
    Listen {
        /// Socket fd.
        fd: i32,
        /// Backlog.
        backlog: i32,
    },
    /// `sendto`.
    SendTo {
        /// Socket fd.
        fd: i32,
        /// Bytes requested.
        len: u64,
        /// `MSG_*` flags.
        flags: u64,
        /// Destination, for unconnected sockets.
        addr: Option<SockAddr>,
    },
    /// `sendmsg`.
    SendMsg {
        /// Socket fd.
        fd: i32,
        /// Destination (`msg_name`), for unconnected sockets.
        addr: Option<SockAddr>,
        /// `MSG_*` flags.
        flags: u64,
    },
    /// `ptrace`.
    Ptrace {
        /// `PTRACE_*` request.
        request: u64,
        /// Target thread id.
        pid: i32,
    },
    /// `setuid`, `setgid`, `setreuid`, `setregid`, `setresuid`, `setresgid` (-1: unchanged).
    SetIds {
        /// The id of `setuid`/`setgid`.
        id: Option<i64>,
        /// Real id.
        real: Option<i64>,
        /// Effective id.
        effective: Option<i64>,
        /// Saved id.
        saved: Option<i64>,
    },
    /// `capset`.
    Capset {
        /// Target process (0: the caller).
        pid: Option<i32>,
        /// Effective set.
        effective: Option<u64>,
        /// Permitted set.
        permitted: Option<u64>,
        /// Inheritable set.
        inheritable: Option<u64>,
    },
    /// `setns`.
    Setns {
        /// Namespace fd.
        fd: i32,
        /// `CLONE_NEW*` type, 0 for any.
        nstype: u64,
    },
    /// `unshare`.
    Unshare {
        /// `CLONE_*` flags.
        flags: u64,
    },
    /// `clone`, `clone3`, `fork`, `vfork`; the return value is the child's id (0 in it).
    Clone {
        /// `CLONE_*` flags (absent for `fork`/`vfork`, or an unreadable `clone_args`).
        flags: Option<u64>,
    },
    /// `mount`.
    Mount {
        /// Source device or path.
        source: Option<String>,
        /// Mount point.
        target: Option<String>,
        /// File system type.
        fstype: Option<String>,
        /// `MS_*` flags.
        flags: u64,
    },
    /// `umount2`.
    Umount {
        /// Mount point.
        target: Option<String>,
        /// `MNT_*` flags.
        flags: u64,
    },
    /// `chmod`, `fchmod`, `fchmodat`, `fchmodat2`.
    Chmod {
        /// Directory fd (`*at`).
        dirfd: Option<i32>,
        /// Path (path forms).
        path: Option<String>,
        /// File fd (`fchmod`).
        fd: Option<i32>,
        /// New mode.
        mode: u32,
        /// `AT_*` flags.
        flags: u64,
    },
    /// `chown`, `lchown`, `fchown`, `fchownat` (-1: unchanged).
    Chown {
        /// Directory fd (`fchownat`).
        dirfd: Option<i32>,
        /// Path (path forms).
        path: Option<String>,
        /// File fd (`fchown`).
        fd: Option<i32>,
        /// New owner.
        uid: i64,
        /// New group.
        gid: i64,
        /// `AT_*` flags.
        flags: u64,
    },
    /// `link`, `linkat`, `symlink`, `symlinkat`, `rename`, `renameat`, `renameat2`.
    Link {
        /// Directory fd of `oldpath`.
        olddirfd: Option<i32>,
        /// Existing path (or a symlink's target).
        oldpath: Option<String>,
        /// Directory fd of `newpath`.
        newdirfd: Option<i32>,
        /// New path.
        newpath: Option<String>,
        /// `AT_*` / `RENAME_*` flags.
        flags: u64,
    },
    /// `unlink`, `unlinkat`, `rmdir`.
    Unlink {
        /// Directory fd (`unlinkat`).
        dirfd: Option<i32>,
        /// Path removed.
        path: Option<String>,
        /// `AT_REMOVEDIR`.
        flags: u64,
    },
    /// `mkdir`, `mkdirat`.
    Mkdir {
        /// Directory fd (`mkdirat`).
        dirfd: Option<i32>,
        /// Path created.
        path: Option<String>,
        /// Mode.
        mode: u32,
    },
    /// `init_module`, `finit_module`.
    Module {
        /// Module file fd (`finit_module`).
        fd: Option<i32>,
        /// Image length (`init_module`).
        len: Option<u64>,
        /// Module parameters.
        params: Option<String>,
        /// `MODULE_INIT_*` flags.
        flags: u64,
    },
    /// `memfd_create`; the new fd is the return value.
    MemfdCreate {
        /// Name given.
        name: Option<String>,
        /// `MFD_*` flags.
        flags: u64,
    },
    /// `prctl`.
    Prctl {
        /// `PR_*` option.
        option: u64,
        /// Its arguments.
        args: [u64; 4],
    },
    /// `kill`, `tkill`, `tgkill`.
    Kill {
        /// Target process (`kill`, `tgkill`).
        pid: Option<i32>,
        /// Target thread (`tkill`, `tgkill`).
        tid: Option<i32>,
        /// Signal.
        sig: i32,
    },
    /// `bpf`.
    Bpf {
        /// `BPF_*` command.
        cmd: u32,
    },
    /// `chdir`, `fchdir`.
    Chdir {
        /// Path (`chdir`).
        path: Option<String>,
        /// Directory fd (`fchdir`).
        fd: Option<i32>,
    },
    /// `fcntl` with `F_DUPFD` or `F_DUPFD_CLOEXEC`; the new fd is the return value.
    Fcntl {
        /// The fd duplicated.
        fd: i32,
        /// `F_DUPFD` (0) or `F_DUPFD_CLOEXEC` (1030).
        cmd: u64,
    },
    /// `recvfrom`.
    RecvFrom {
        /// Socket fd.
        fd: i32,
        /// Bytes requested.
        len: u64,
        /// `MSG_*` flags.
        flags: u64,
        /// Sender, when the caller asked for it.
        addr: Option<SockAddr>,
    },
    /// `recvmsg`.
    RecvMsg {
        /// Socket fd.
        fd: i32,
        /// Sender (`msg_name`), when the caller asked for it.
        addr: Option<SockAddr>,
        /// `MSG_*` flags.
        flags: u64,
    },
    /// `userfaultfd`; the new fd is the return value.
    Userfaultfd {
        /// `O_CLOEXEC`, `O_NONBLOCK`, `UFFD_USER_MODE_ONLY`.
        flags: u64,
    },
    /// `setsid`; the new session id is the return value.
    Setsid,
    /// `setpgid`.
    Setpgid {
        /// The process whose group changes (0: the caller).
        pid: i32,
        /// The new group (0: the process's own id).
        pgid: i32,
    },
    /// `mmap`, `mprotect` requesting `PROT_EXEC`.
    Mmap {
        /// Address.
        addr: u64,
        /// Length.
        len: u64,
        /// `PROT_*`.
        prot: u64,
        /// `MAP_*` (`mmap`).
        flags: Option<u64>,
        /// Mapped fd (`mmap`).
        fd: Option<i32>,
    },
}

impl Event {
    /// An event of host process `pid` (its only thread, parent 1, root) for unit tests.
    #[cfg(test)]
    pub(crate) fn for_test(pid: u32, comm: &str, kind: EventKind) -> Self {
        Self {
            ts: 1,
            wall_ts: 1,
            cpu: 0,
            pid,
            tid: pid,
            ns_pid: pid,
            ns_tid: pid,
            ppid: 1,
            uid: 0,
            gid: 0,
            comm: comm.into(),
            cgroup_id: 0,
            pid_ns: 0,
            mnt_ns: 0,
            kind,
        }
    }

    /// The syscall details, for a syscall event.
    pub fn syscall(&self) -> Option<&SyscallEvent> {
        match &self.kind {
            EventKind::Syscall(s) => Some(s),
            _ => None,
        }
    }

    /// Whether the event only changes the state and is not shown to rules (a cgroup move:
    /// Falco has no such event, and rules without an event type would match it).
    pub fn is_state_only(&self) -> bool {
        match &self.kind {
            EventKind::CgroupAttach { .. } => true,
            EventKind::Syscall(_)
            | EventKind::ProcFork { .. }
            | EventKind::ProcExec { .. }
            | EventKind::ProcExit { .. } => false,
        }
    }

    /// Falco's `evt.type`: the syscall name, or `procexit`/`fork`/`exec` style names for
    /// the scheduler events.
    pub fn type_name(&self) -> &str {
        match &self.kind {
            EventKind::Syscall(s) => &s.name,
            EventKind::ProcFork { .. } => "proc_fork",
            EventKind::ProcExec { .. } => "proc_exec",
            EventKind::ProcExit { .. } => "procexit",
            EventKind::CgroupAttach { .. } => "cgroup_attach",
        }
    }
}
