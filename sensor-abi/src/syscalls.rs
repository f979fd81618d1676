//! The system calls the sensor can capture: one table, read by user space both to program
//! the kernel side (which arguments to read, and how) and to decode what comes back.
//!
//! Numbers are x86_64's; the kernel side reads `orig_ax` of native 64-bit tasks.

use crate::config::spec_flags::{AT_ENTER, EXEC, PROT_EXEC_ONLY};

/// How the kernel side reads one argument beyond its register value.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
    /// Only the register value is kept.
    Value = 0,
    /// A NUL-terminated string in user memory, up to [`PATH_MAX`](crate::record::PATH_MAX).
    Path = 1,
    /// A `struct sockaddr` in user memory; its length is the next argument.
    SockAddr = 2,
    /// A `struct sockaddr` in user memory, filled by the call; its length is behind the
    /// pointer in the next argument (`accept`).
    SockAddrOut = 3,
    /// A `struct msghdr` in user memory; its `msg_name` address is captured.
    MsgHdr = 4,
    /// A fixed 8-byte structure in user memory (`cap_user_header_t`).
    Struct8 = 5,
    /// A fixed 24-byte structure in user memory (`struct open_how`, `cap_user_data_t[2]`).
    Struct24 = 6,
    /// A fixed 64-byte structure in user memory (`struct clone_args`, first version).
    Struct64 = 7,
    /// A NULL-terminated array of string pointers in user memory (an exec's `argv`), read
    /// into one blob of NUL-separated strings. Only read for a failed exec: after success
    /// the arguments come from the new program's stack.
    Argv = 8,
}

impl ArgKind {
    /// The kind for a raw spec value, if known.
    pub const fn from_raw(raw: u8) -> Option<Self> {
        Some(match raw {
            0 => Self::Value,
            1 => Self::Path,
            2 => Self::SockAddr,
            3 => Self::SockAddrOut,
            4 => Self::MsgHdr,
            5 => Self::Struct8,
            6 => Self::Struct24,
            7 => Self::Struct64,
            8 => Self::Argv,
            _ => return None,
        })
    }
}

/// Families of system calls that share one event shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// `open`, `openat`, `openat2`, `creat`.
    Open,
    /// `execve`, `execveat`.
    Exec,
    /// `close`.
    Close,
    /// `dup`, `dup2`, `dup3`.
    Dup,
    /// `socket`.
    Socket,
    /// `connect`.
    Connect,
    /// `accept`, `accept4`.
    Accept,
    /// `bind`.
    Bind,
    /// `listen`.
    Listen,
    /// `sendto`.
    SendTo,
    /// `sendmsg`.
    SendMsg,
    /// `ptrace`.
    Ptrace,
    /// `setuid`, `setgid`, `setreuid`, `setregid`, `setresuid`, `setresgid`.
    SetIds,
    /// `capset`.
    Capset,
    /// `setns`.
    Setns,
    /// `unshare`.
    Unshare,
    /// `clone`, `clone3`, `fork`, `vfork`.
    Clone,
    /// `mount`.
    Mount,
    /// `umount2`.
    Umount,
    /// `chmod`, `fchmod`, `fchmodat`, `fchmodat2`.
    Chmod,
    /// `chown`, `lchown`, `fchown`, `fchownat`.
    Chown,
    /// `link`, `linkat`, `symlink`, `symlinkat`, `rename`, `renameat`, `renameat2`.
    Link,
    /// `unlink`, `unlinkat`, `rmdir`.
    Unlink,
    /// `mkdir`, `mkdirat`.
    Mkdir,
    /// `init_module`, `finit_module`.
    Module,
    /// `memfd_create`.
    MemfdCreate,
    /// `prctl`.
    Prctl,
    /// `kill`, `tkill`, `tgkill`.
    Kill,
    /// `bpf`.
    Bpf,
    /// `mmap`, `mprotect` (only when `PROT_EXEC` is requested).
    Mmap,
}

/// One argument of a system call: its name and how it is captured.
#[derive(Clone, Copy, Debug)]
pub struct Arg {
    /// Name of the argument in events (`dirfd`, `path`, `flags`, ...).
    pub name: &'static str,
    /// How the kernel reads it.
    pub kind: ArgKind,
}

/// One capturable system call.
#[derive(Clone, Copy, Debug)]
pub struct Syscall {
    /// x86_64 system call number.
    pub nr: u32,
    /// Name, as Falco's `evt.type` spells it.
    pub name: &'static str,
    /// Event shape.
    pub family: Family,
    /// [`spec_flags`](crate::config::spec_flags) beyond `ENABLED`.
    pub flags: u8,
    /// Arguments in register order.
    pub args: &'static [Arg],
}

impl Syscall {
    /// Index of the argument called `name`.
    pub fn arg_index(&self, name: &str) -> Option<usize> {
        self.args.iter().position(|a| a.name == name)
    }
}

const fn v(name: &'static str) -> Arg {
    Arg { name, kind: ArgKind::Value }
}
const fn p(name: &'static str) -> Arg {
    Arg { name, kind: ArgKind::Path }
}
const fn k(name: &'static str, kind: ArgKind) -> Arg {
    Arg { name, kind }
}
const fn sc(nr: u32, name: &'static str, family: Family, flags: u8, args: &'static [Arg]) -> Syscall {
    Syscall { nr, name, family, flags, args }
}

use ArgKind::{Argv, MsgHdr, SockAddr, SockAddrOut, Struct8, Struct24, Struct64};
use Family::*;

/// Every system call the sensor can capture.
pub static SYSCALLS: &[Syscall] = &[
    sc(2, "open", Open, AT_ENTER, &[p("path"), v("flags"), v("mode")]),
    sc(257, "openat", Open, AT_ENTER, &[v("dirfd"), p("path"), v("flags"), v("mode")]),
    sc(437, "openat2", Open, AT_ENTER, &[v("dirfd"), p("path"), k("how", Struct24), v("size")]),
    sc(85, "creat", Open, AT_ENTER, &[p("path"), v("mode")]),
    sc(59, "execve", Exec, EXEC, &[p("path"), k("argv", Argv), v("envp")]),
    sc(322, "execveat", Exec, EXEC, &[v("dirfd"), p("path"), k("argv", Argv), v("envp"), v("flags")]),
    sc(3, "close", Close, 0, &[v("fd")]),
    sc(32, "dup", Dup, 0, &[v("oldfd")]),
    sc(33, "dup2", Dup, 0, &[v("oldfd"), v("newfd")]),
    sc(292, "dup3", Dup, 0, &[v("oldfd"), v("newfd"), v("flags")]),
    sc(41, "socket", Socket, 0, &[v("domain"), v("type"), v("protocol")]),
    sc(42, "connect", Connect, AT_ENTER, &[v("fd"), k("addr", SockAddr), v("addrlen")]),
    sc(43, "accept", Accept, 0, &[v("fd"), k("addr", SockAddrOut), v("addrlen")]),
    sc(288, "accept4", Accept, 0, &[v("fd"), k("addr", SockAddrOut), v("addrlen"), v("flags")]),
    sc(49, "bind", Bind, 0, &[v("fd"), k("addr", SockAddr), v("addrlen")]),
    sc(50, "listen", Listen, 0, &[v("fd"), v("backlog")]),
    sc(44, "sendto", SendTo, 0, &[v("fd"), v("buf"), v("len"), v("flags"), k("addr", SockAddr), v("addrlen")]),
    sc(46, "sendmsg", SendMsg, 0, &[v("fd"), k("msg", MsgHdr), v("flags")]),
    sc(101, "ptrace", Ptrace, 0, &[v("request"), v("pid"), v("addr"), v("data")]),
    sc(105, "setuid", SetIds, 0, &[v("uid")]),
    sc(106, "setgid", SetIds, 0, &[v("gid")]),
    sc(113, "setreuid", SetIds, 0, &[v("ruid"), v("euid")]),
    sc(114, "setregid", SetIds, 0, &[v("rgid"), v("egid")]),
    sc(117, "setresuid", SetIds, 0, &[v("ruid"), v("euid"), v("suid")]),
    sc(119, "setresgid", SetIds, 0, &[v("rgid"), v("egid"), v("sgid")]),
    sc(126, "capset", Capset, 0, &[k("header", Struct8), k("data", Struct24)]),
    sc(308, "setns", Setns, 0, &[v("fd"), v("nstype")]),
    sc(272, "unshare", Unshare, 0, &[v("flags")]),
    sc(56, "clone", Clone, 0, &[v("flags"), v("stack"), v("parent_tid"), v("child_tid"), v("tls")]),
    sc(435, "clone3", Clone, 0, &[k("args", Struct64), v("size")]),
    sc(57, "fork", Clone, 0, &[]),
    sc(58, "vfork", Clone, 0, &[]),
    sc(165, "mount", Mount, 0, &[p("source"), p("target"), p("fstype"), v("flags"), v("data")]),
    sc(166, "umount2", Umount, 0, &[p("target"), v("flags")]),
    sc(90, "chmod", Chmod, 0, &[p("path"), v("mode")]),
    sc(91, "fchmod", Chmod, 0, &[v("fd"), v("mode")]),
    sc(268, "fchmodat", Chmod, 0, &[v("dirfd"), p("path"), v("mode")]),
    sc(452, "fchmodat2", Chmod, 0, &[v("dirfd"), p("path"), v("mode"), v("flags")]),
    sc(92, "chown", Chown, 0, &[p("path"), v("uid"), v("gid")]),
    sc(94, "lchown", Chown, 0, &[p("path"), v("uid"), v("gid")]),
    sc(93, "fchown", Chown, 0, &[v("fd"), v("uid"), v("gid")]),
    sc(260, "fchownat", Chown, 0, &[v("dirfd"), p("path"), v("uid"), v("gid"), v("flags")]),
    sc(86, "link", Link, 0, &[p("oldpath"), p("newpath")]),
    sc(265, "linkat", Link, 0, &[v("olddirfd"), p("oldpath"), v("newdirfd"), p("newpath"), v("flags")]),
    sc(88, "symlink", Link, 0, &[p("oldpath"), p("newpath")]),
    sc(266, "symlinkat", Link, 0, &[p("oldpath"), v("newdirfd"), p("newpath")]),
    sc(82, "rename", Link, 0, &[p("oldpath"), p("newpath")]),
    sc(264, "renameat", Link, 0, &[v("olddirfd"), p("oldpath"), v("newdirfd"), p("newpath")]),
    sc(316, "renameat2", Link, 0, &[v("olddirfd"), p("oldpath"), v("newdirfd"), p("newpath"), v("flags")]),
    sc(87, "unlink", Unlink, 0, &[p("path")]),
    sc(263, "unlinkat", Unlink, 0, &[v("dirfd"), p("path"), v("flags")]),
    sc(84, "rmdir", Unlink, 0, &[p("path")]),
    sc(83, "mkdir", Mkdir, 0, &[p("path"), v("mode")]),
    sc(258, "mkdirat", Mkdir, 0, &[v("dirfd"), p("path"), v("mode")]),
    sc(175, "init_module", Module, 0, &[v("image"), v("len"), p("params")]),
    sc(313, "finit_module", Module, 0, &[v("fd"), p("params"), v("flags")]),
    sc(319, "memfd_create", MemfdCreate, 0, &[p("name"), v("flags")]),
    sc(157, "prctl", Prctl, 0, &[v("option"), v("arg2"), v("arg3"), v("arg4"), v("arg5")]),
    sc(62, "kill", Kill, 0, &[v("pid"), v("sig")]),
    sc(200, "tkill", Kill, 0, &[v("tid"), v("sig")]),
    sc(234, "tgkill", Kill, 0, &[v("tgid"), v("tid"), v("sig")]),
    sc(321, "bpf", Bpf, 0, &[v("cmd"), v("attr"), v("size")]),
    sc(10, "mprotect", Mmap, PROT_EXEC_ONLY, &[v("addr"), v("len"), v("prot")]),
    sc(9, "mmap", Mmap, PROT_EXEC_ONLY, &[v("addr"), v("len"), v("prot"), v("flags"), v("fd"), v("offset")]),
];

/// `execve`: a successful `execveat` also returns through this number (the kernel's
/// exit path sees `execve`), so the two are captured together.
pub const NR_EXECVE: u32 = 59;
/// `execveat`.
pub const NR_EXECVEAT: u32 = 322;

/// Highest syscall number the `SYSCALLS` map covers (exclusive).
pub const MAX_SYSCALL_NR: u32 = 512;

/// The table entry for a syscall number.
pub fn by_nr(nr: u32) -> Option<&'static Syscall> {
    SYSCALLS.iter().find(|s| s.nr == nr)
}

/// The table entry for a syscall name.
pub fn by_name(name: &str) -> Option<&'static Syscall> {
    SYSCALLS.iter().find(|s| s.name == name)
}
