//! The system calls the sensor can capture: one table, read by user space both to program
//! the kernel side (which arguments to read, and how) and to decode what comes back.
//!
//! Numbers are x86_64's. A call made through the 32-bit gate (a 32-bit program, or `int
//! $0x80` from a 64-bit one) has its own ia32 number and argument registers: each entry
//! lists its ia32 numbers, and the kernel side translates them to the entry's x86_64 number
//! before anything else (see [`Ia32`] and [`SOCKETCALLS`]), so a 32-bit number is never
//! read as a 64-bit one.

use crate::{
    config::spec_flags::{AT_ENTER, DUPFD_ONLY, EXEC, LOCAL_ADDR_ARG0, LOCAL_ADDR_RET, PROT_EXEC_ONLY},
    prefilter::spec_prefilter,
};

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
    /// `chdir`, `fchdir`.
    Chdir,
    /// `fcntl` (only `F_DUPFD` and `F_DUPFD_CLOEXEC`, which make a new fd).
    Fcntl,
    /// `recvfrom`.
    RecvFrom,
    /// `recvmsg`.
    RecvMsg,
    /// `userfaultfd`.
    Userfaultfd,
    /// `setsid`.
    Setsid,
    /// `setpgid`.
    Setpgid,
}

/// One argument of a system call: its name and how it is captured.
#[derive(Clone, Copy, Debug)]
pub struct Arg {
    /// Name of the argument in events (`dirfd`, `path`, `flags`, ...).
    pub name: &'static str,
    /// How the kernel reads it.
    pub kind: ArgKind,
}

/// An ia32 system call number that means an x86_64 entry's call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ia32 {
    /// The ia32 number.
    pub nr: u32,
    /// The legacy variant with 16-bit user and group ids (`setuid` rather than
    /// `setuid32`): the kernel side widens an id of `0xffff` ("unchanged") to `-1`.
    pub uid16: bool,
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
    /// Its numbers through the 32-bit gate (the same arguments, in ia32 registers).
    pub ia32: &'static [Ia32],
    /// The sensor's state needs it whatever the rules say: process lifecycle, the fd table,
    /// the working directory, process groups (Falco's state set, within the table).
    pub state: bool,
}

impl Syscall {
    /// Index of the argument called `name`.
    pub fn arg_index(&self, name: &str) -> Option<usize> {
        self.args.iter().position(|a| a.name == name)
    }

    /// Whether it is bulk ([`BULK`](crate::config::spec_flags::BULK)): frequent, and no
    /// rule's main subject, so shed first when a ring fills up. Process lifecycle, execs,
    /// connections, opens (the prefilter sends only those a rule may match) and every change
    /// of identity, namespace, file or module stay.
    pub fn is_bulk(&self) -> bool {
        match self.family {
            Family::Close
            | Family::Dup
            | Family::Fcntl
            | Family::Mmap
            | Family::SendTo
            | Family::SendMsg
            | Family::RecvFrom
            | Family::RecvMsg => true,
            Family::Open
            | Family::Exec
            | Family::Socket
            | Family::Connect
            | Family::Accept
            | Family::Bind
            | Family::Listen
            | Family::Ptrace
            | Family::SetIds
            | Family::Capset
            | Family::Setns
            | Family::Unshare
            | Family::Clone
            | Family::Mount
            | Family::Umount
            | Family::Chmod
            | Family::Chown
            | Family::Link
            | Family::Unlink
            | Family::Mkdir
            | Family::Module
            | Family::MemfdCreate
            | Family::Prctl
            | Family::Kill
            | Family::Bpf
            | Family::Chdir
            | Family::Userfaultfd
            | Family::Setsid
            | Family::Setpgid => false,
        }
    }

    /// Its roles in the prefilter ([`spec_prefilter`]).
    pub fn prefilter_role(&self) -> u8 {
        use spec_prefilter::{CLOSE, FD_ARG, NEW_FD, OPEN, with_arg};
        // The fd argument through which a call uses an existing file: `AT_EMPTY_PATH` makes
        // a dirfd one (a real directory's open is always sent).
        let fd_arg = self
            .args
            .iter()
            .position(|a| a.kind == ArgKind::Value && matches!(a.name, "fd" | "oldfd" | "dirfd" | "olddirfd"));
        let uses_fd = if fd_arg.is_some() { with_arg(FD_ARG, fd_arg) } else { 0 };
        match self.family {
            // `creat` has no flags argument and `openat2` keeps them in `how`: every class.
            // Their dirfd only serves relative paths, which are always sent.
            Family::Open => with_arg(OPEN, self.arg_index("flags")),
            Family::Close => CLOSE,
            // The executable's path comes from the kernel.
            Family::Exec => 0,
            Family::Socket | Family::MemfdCreate | Family::Userfaultfd => NEW_FD,
            Family::Accept | Family::Dup | Family::Fcntl => NEW_FD | uses_fd,
            Family::Connect
            | Family::Bind
            | Family::Listen
            | Family::SendTo
            | Family::SendMsg
            | Family::Ptrace
            | Family::SetIds
            | Family::Capset
            | Family::Setns
            | Family::Unshare
            | Family::Clone
            | Family::Mount
            | Family::Umount
            | Family::Chmod
            | Family::Chown
            | Family::Link
            | Family::Unlink
            | Family::Mkdir
            | Family::Module
            | Family::Prctl
            | Family::Kill
            | Family::Bpf
            | Family::Mmap
            | Family::Chdir
            | Family::RecvFrom
            | Family::RecvMsg
            | Family::Setsid
            | Family::Setpgid => uses_fd,
        }
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
    Syscall { nr, name, family, flags, args, ia32: &[], state: false }
}
const fn i(nr: u32) -> Ia32 {
    Ia32 { nr, uid16: false }
}
const fn u16(nr: u32) -> Ia32 {
    Ia32 { nr, uid16: true }
}

impl Syscall {
    const fn ia32(self, ia32: &'static [Ia32]) -> Self {
        Self { ia32, ..self }
    }
    const fn state(self) -> Self {
        Self { state: true, ..self }
    }
}

use ArgKind::{Argv, MsgHdr, SockAddr, SockAddrOut, Struct8, Struct24, Struct64};
use Family::*;

/// Every system call the sensor can capture.
pub static SYSCALLS: &[Syscall] = &[
    sc(2, "open", Open, AT_ENTER, &[p("path"), v("flags"), v("mode")]).ia32(&[i(5)]).state(),
    sc(257, "openat", Open, AT_ENTER, &[v("dirfd"), p("path"), v("flags"), v("mode")]).ia32(&[i(295)]).state(),
    sc(437, "openat2", Open, AT_ENTER, &[v("dirfd"), p("path"), k("how", Struct24), v("size")]).ia32(&[i(437)]).state(),
    sc(85, "creat", Open, AT_ENTER, &[p("path"), v("mode")]).ia32(&[i(8)]).state(),
    sc(59, "execve", Exec, EXEC, &[p("path"), k("argv", Argv), v("envp")]).ia32(&[i(11)]).state(),
    sc(322, "execveat", Exec, EXEC, &[v("dirfd"), p("path"), k("argv", Argv), v("envp"), v("flags")])
        .ia32(&[i(358)])
        .state(),
    sc(3, "close", Close, 0, &[v("fd")]).ia32(&[i(6)]).state(),
    sc(32, "dup", Dup, 0, &[v("oldfd")]).ia32(&[i(41)]).state(),
    sc(33, "dup2", Dup, 0, &[v("oldfd"), v("newfd")]).ia32(&[i(63)]).state(),
    sc(292, "dup3", Dup, 0, &[v("oldfd"), v("newfd"), v("flags")]).ia32(&[i(330)]).state(),
    sc(41, "socket", Socket, 0, &[v("domain"), v("type"), v("protocol")]).ia32(&[i(359)]).state(),
    // The local end of a socket comes from the kernel at exit (an outbound connect's port
    // is only chosen then).
    sc(42, "connect", Connect, AT_ENTER | LOCAL_ADDR_ARG0, &[v("fd"), k("addr", SockAddr), v("addrlen")])
        .ia32(&[i(362)])
        .state(),
    // accept exists on ia32 only through socketcall.
    sc(43, "accept", Accept, LOCAL_ADDR_RET, &[v("fd"), k("addr", SockAddrOut), v("addrlen")]).state(),
    sc(288, "accept4", Accept, LOCAL_ADDR_RET, &[v("fd"), k("addr", SockAddrOut), v("addrlen"), v("flags")])
        .ia32(&[i(364)])
        .state(),
    sc(49, "bind", Bind, 0, &[v("fd"), k("addr", SockAddr), v("addrlen")]).ia32(&[i(361)]).state(),
    sc(50, "listen", Listen, 0, &[v("fd"), v("backlog")]).ia32(&[i(363)]).state(),
    sc(44, "sendto", SendTo, 0, &[v("fd"), v("buf"), v("len"), v("flags"), k("addr", SockAddr), v("addrlen")])
        .ia32(&[i(369)]),
    sc(46, "sendmsg", SendMsg, 0, &[v("fd"), k("msg", MsgHdr), v("flags")]).ia32(&[i(370)]),
    sc(101, "ptrace", Ptrace, 0, &[v("request"), v("pid"), v("addr"), v("data")]).ia32(&[i(26)]),
    sc(105, "setuid", SetIds, 0, &[v("uid")]).ia32(&[u16(23), i(213)]),
    sc(106, "setgid", SetIds, 0, &[v("gid")]).ia32(&[u16(46), i(214)]),
    sc(113, "setreuid", SetIds, 0, &[v("ruid"), v("euid")]).ia32(&[u16(70), i(203)]),
    sc(114, "setregid", SetIds, 0, &[v("rgid"), v("egid")]).ia32(&[u16(71), i(204)]),
    sc(117, "setresuid", SetIds, 0, &[v("ruid"), v("euid"), v("suid")]).ia32(&[u16(164), i(208)]),
    sc(119, "setresgid", SetIds, 0, &[v("rgid"), v("egid"), v("sgid")]).ia32(&[u16(170), i(210)]),
    sc(126, "capset", Capset, 0, &[k("header", Struct8), k("data", Struct24)]).ia32(&[i(185)]).state(),
    sc(308, "setns", Setns, 0, &[v("fd"), v("nstype")]).ia32(&[i(346)]),
    sc(272, "unshare", Unshare, 0, &[v("flags")]).ia32(&[i(310)]),
    sc(56, "clone", Clone, 0, &[v("flags"), v("stack"), v("parent_tid"), v("child_tid"), v("tls")])
        .ia32(&[i(120)])
        .state(),
    sc(435, "clone3", Clone, 0, &[k("args", Struct64), v("size")]).ia32(&[i(435)]).state(),
    sc(57, "fork", Clone, 0, &[]).ia32(&[i(2)]).state(),
    sc(58, "vfork", Clone, 0, &[]).ia32(&[i(190)]).state(),
    sc(165, "mount", Mount, 0, &[p("source"), p("target"), p("fstype"), v("flags"), v("data")]).ia32(&[i(21)]),
    sc(166, "umount2", Umount, 0, &[p("target"), v("flags")]).ia32(&[i(52)]),
    sc(90, "chmod", Chmod, 0, &[p("path"), v("mode")]).ia32(&[i(15)]),
    sc(91, "fchmod", Chmod, 0, &[v("fd"), v("mode")]).ia32(&[i(94)]),
    sc(268, "fchmodat", Chmod, 0, &[v("dirfd"), p("path"), v("mode")]).ia32(&[i(306)]),
    sc(452, "fchmodat2", Chmod, 0, &[v("dirfd"), p("path"), v("mode"), v("flags")]).ia32(&[i(452)]),
    sc(92, "chown", Chown, 0, &[p("path"), v("uid"), v("gid")]).ia32(&[u16(182), i(212)]),
    sc(94, "lchown", Chown, 0, &[p("path"), v("uid"), v("gid")]).ia32(&[u16(16), i(198)]),
    sc(93, "fchown", Chown, 0, &[v("fd"), v("uid"), v("gid")]).ia32(&[u16(95), i(207)]),
    sc(260, "fchownat", Chown, 0, &[v("dirfd"), p("path"), v("uid"), v("gid"), v("flags")]).ia32(&[i(298)]),
    sc(86, "link", Link, 0, &[p("oldpath"), p("newpath")]).ia32(&[i(9)]),
    sc(265, "linkat", Link, 0, &[v("olddirfd"), p("oldpath"), v("newdirfd"), p("newpath"), v("flags")]).ia32(&[i(303)]),
    sc(88, "symlink", Link, 0, &[p("oldpath"), p("newpath")]).ia32(&[i(83)]),
    sc(266, "symlinkat", Link, 0, &[p("oldpath"), v("newdirfd"), p("newpath")]).ia32(&[i(304)]),
    sc(82, "rename", Link, 0, &[p("oldpath"), p("newpath")]).ia32(&[i(38)]),
    sc(264, "renameat", Link, 0, &[v("olddirfd"), p("oldpath"), v("newdirfd"), p("newpath")]).ia32(&[i(302)]),
    sc(316, "renameat2", Link, 0, &[v("olddirfd"), p("oldpath"), v("newdirfd"), p("newpath"), v("flags")])
        .ia32(&[i(353)]),
    sc(87, "unlink", Unlink, 0, &[p("path")]).ia32(&[i(10)]),
    sc(263, "unlinkat", Unlink, 0, &[v("dirfd"), p("path"), v("flags")]).ia32(&[i(301)]),
    sc(84, "rmdir", Unlink, 0, &[p("path")]).ia32(&[i(40)]),
    sc(83, "mkdir", Mkdir, 0, &[p("path"), v("mode")]).ia32(&[i(39)]),
    sc(258, "mkdirat", Mkdir, 0, &[v("dirfd"), p("path"), v("mode")]).ia32(&[i(296)]),
    sc(175, "init_module", Module, 0, &[v("image"), v("len"), p("params")]).ia32(&[i(128)]),
    sc(313, "finit_module", Module, 0, &[v("fd"), p("params"), v("flags")]).ia32(&[i(350)]),
    sc(319, "memfd_create", MemfdCreate, 0, &[p("name"), v("flags")]).ia32(&[i(356)]).state(),
    sc(157, "prctl", Prctl, 0, &[v("option"), v("arg2"), v("arg3"), v("arg4"), v("arg5")]).ia32(&[i(172)]),
    sc(62, "kill", Kill, 0, &[v("pid"), v("sig")]).ia32(&[i(37)]),
    sc(200, "tkill", Kill, 0, &[v("tid"), v("sig")]).ia32(&[i(238)]),
    sc(234, "tgkill", Kill, 0, &[v("tgid"), v("tid"), v("sig")]).ia32(&[i(270)]),
    sc(321, "bpf", Bpf, 0, &[v("cmd"), v("attr"), v("size")]).ia32(&[i(357)]),
    sc(10, "mprotect", Mmap, PROT_EXEC_ONLY, &[v("addr"), v("len"), v("prot")]).ia32(&[i(125)]),
    // mmap2: the offset is in pages, which no event uses.
    sc(9, "mmap", Mmap, PROT_EXEC_ONLY, &[v("addr"), v("len"), v("prot"), v("flags"), v("fd"), v("offset")])
        .ia32(&[i(192)]),
    sc(80, "chdir", Chdir, 0, &[p("path")]).ia32(&[i(12)]).state(),
    sc(81, "fchdir", Chdir, 0, &[v("fd")]).ia32(&[i(133)]).state(),
    sc(72, "fcntl", Fcntl, DUPFD_ONLY, &[v("fd"), v("cmd"), v("arg")]).ia32(&[i(55), i(221)]).state(),
    sc(45, "recvfrom", RecvFrom, 0, &[v("fd"), v("buf"), v("len"), v("flags"), k("addr", SockAddrOut), v("addrlen")])
        .ia32(&[i(371)]),
    sc(47, "recvmsg", RecvMsg, 0, &[v("fd"), k("msg", MsgHdr), v("flags")]).ia32(&[i(372)]),
    sc(323, "userfaultfd", Userfaultfd, 0, &[v("flags")]).ia32(&[i(374)]),
    sc(112, "setsid", Setsid, 0, &[]).ia32(&[i(66)]).state(),
    sc(109, "setpgid", Setpgid, 0, &[v("pid"), v("pgid")]).ia32(&[i(57)]).state(),
];

/// `socketcall(call, args)`, the ia32 multiplexer of the socket calls: its `call` numbers
/// and the x86_64 calls they stand for. The arguments are 32-bit words behind `args`.
pub const IA32_SOCKETCALL: u32 = 102;

/// `socketcall` call numbers (`SYS_*` of `<linux/net.h>`) and their x86_64 syscalls.
pub static SOCKETCALLS: &[(u32, u32)] =
    &[(1, 41), (2, 49), (3, 42), (4, 50), (5, 43), (11, 44), (12, 45), (16, 46), (17, 47), (18, 288)];

/// Highest ia32 syscall number the `COMPAT` map covers (exclusive).
pub const MAX_IA32_NR: u32 = 512;

/// Highest `socketcall` call number the `SOCKETCALL` map covers (exclusive).
pub const MAX_SOCKETCALL: u32 = 32;

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

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;

    /// The enter side reads only these: an open's path (and `openat2`'s `how`), or a
    /// `sockaddr` (`sensor-ebpf`'s `capture_open_args` and `capture_sockaddr_args`).
    #[test]
    fn enter_side_memory_arguments() {
        for sc in SYSCALLS.iter().filter(|s| s.flags & AT_ENTER != 0) {
            let kinds: Vec<ArgKind> = sc.args.iter().map(|a| a.kind).filter(|k| *k != ArgKind::Value).collect();
            let ok = match sc.family {
                Family::Open => {
                    matches!(kinds.as_slice(), [ArgKind::Path] | [ArgKind::Path, ArgKind::Struct24])
                        && sc.args.iter().position(|a| a.kind == ArgKind::Path).is_some_and(|i| i <= 1)
                }
                _ => kinds.iter().all(|k| *k == ArgKind::SockAddr),
            };
            assert!(ok, "{}: {kinds:?}", sc.name);
        }
    }
}
