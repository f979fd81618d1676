//! A syscall's arguments read one at a time by the name their JSON form gives them
//! ([`SyscallArgs::arg`]), without serialising: rules read `evt.arg.flags` and the like on
//! the hot path. The JSON form stays the reference: a test checks every syscall's every
//! argument against it.

use super::{Cgroups, ExecInfo, SockAddr, SyscallArgs};

/// One argument, as its JSON form holds it; absent and `null` arguments are `None` where
/// one is asked for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ArgValue<'a> {
    /// A signed integer.
    Int(i64),
    /// An unsigned integer.
    UInt(u64),
    /// Text.
    Str(&'a str),
    /// A list of texts (`argv`, `env`).
    Strs(&'a [String]),
    /// A list of unsigned integers (`prctl`'s arguments).
    UInts(&'a [u64]),
    /// A socket address (a JSON object).
    Addr(&'a SockAddr),
    /// An exec's cgroups (a JSON object).
    Cgroups(&'a Cgroups),
    /// What the kernel read at an exec (a JSON object, whose members are read by
    /// [`ExecInfo::arg`]).
    Info(&'a ExecInfo),
}

impl ArgValue<'_> {
    /// The integer's bits (a negative one in two's complement), as flags and enums read it.
    pub fn bits(&self) -> Option<u64> {
        match self {
            ArgValue::Int(i) => Some(*i as u64),
            ArgValue::UInt(u) => Some(*u),
            ArgValue::Str(_)
            | ArgValue::Strs(_)
            | ArgValue::UInts(_)
            | ArgValue::Addr(_)
            | ArgValue::Cgroups(_)
            | ArgValue::Info(_) => None,
        }
    }
}

fn int(v: impl Into<i64>) -> Option<ArgValue<'static>> {
    Some(ArgValue::Int(v.into()))
}

fn uint(v: impl Into<u64>) -> Option<ArgValue<'static>> {
    Some(ArgValue::UInt(v.into()))
}

fn text(v: &Option<String>) -> Option<ArgValue<'_>> {
    v.as_deref().map(ArgValue::Str)
}

fn addr(v: &Option<SockAddr>) -> Option<ArgValue<'_>> {
    v.as_ref().map(ArgValue::Addr)
}

impl SyscallArgs {
    /// The argument the JSON form names `name` (`flags`, `path`, `type` for a socket's
    /// kind); `None` when this family has no such argument or it was not captured.
    pub fn arg(&self, name: &str) -> Option<ArgValue<'_>> {
        use SyscallArgs::*;
        match (self, name) {
            (Open { dirfd, .. }, "dirfd") => dirfd.and_then(int),
            (Open { path, .. }, "path") => text(path),
            (Open { flags, .. }, "flags") => uint(*flags),
            (Open { mode, .. }, "mode") => uint(*mode),
            (Open { resolve, .. }, "resolve") => resolve.and_then(uint),
            (Exec { dirfd, .. }, "dirfd") => dirfd.and_then(int),
            (Exec { path, .. }, "path") => text(path),
            (Exec { exe_file, .. }, "exe_file") => text(exe_file),
            (Exec { cgroups, .. }, "cgroups") => cgroups.as_deref().map(ArgValue::Cgroups),
            (Exec { argv, .. }, "argv") => Some(ArgValue::Strs(argv)),
            // The JSON form leaves an empty environment out.
            (Exec { env, .. }, "env") => (!env.is_empty()).then_some(ArgValue::Strs(env)),
            (Exec { flags, .. }, "flags") => uint(*flags),
            (Exec { info, .. }, "info") => info.as_deref().map(ArgValue::Info),
            (Close { fd }, "fd") => int(*fd),
            (Dup { oldfd, .. }, "oldfd") => int(*oldfd),
            (Dup { newfd, .. }, "newfd") => newfd.and_then(int),
            (Dup { flags, .. }, "flags") => uint(*flags),
            (Socket { domain, .. }, "domain") => uint(*domain),
            (Socket { kind, .. }, "type") => uint(*kind),
            (Socket { protocol, .. }, "protocol") => uint(*protocol),
            (Connect { fd, .. }, "fd") => int(*fd),
            (Connect { addr: a, .. }, "addr") => addr(a),
            (Connect { local, .. }, "local") => addr(local),
            (Accept { fd, .. }, "fd") => int(*fd),
            (Accept { addr: a, .. }, "addr") => addr(a),
            (Accept { flags, .. }, "flags") => uint(*flags),
            (Accept { local, .. }, "local") => addr(local),
            (Bind { fd, .. }, "fd") => int(*fd),
            (Bind { addr: a, .. }, "addr") => addr(a),
            (Listen { fd, .. }, "fd") => int(*fd),
            (Listen { backlog, .. }, "backlog") => int(*backlog),
            (SendTo { fd, .. }, "fd") => int(*fd),
            (SendTo { len, .. }, "len") => uint(*len),
            (SendTo { flags, .. }, "flags") => uint(*flags),
            (SendTo { addr: a, .. }, "addr") => addr(a),
            (SendMsg { fd, .. }, "fd") => int(*fd),
            (SendMsg { addr: a, .. }, "addr") => addr(a),
            (SendMsg { flags, .. }, "flags") => uint(*flags),
            (Ptrace { request, .. }, "request") => uint(*request),
            (Ptrace { pid, .. }, "pid") => int(*pid),
            (SetIds { id, .. }, "id") => id.and_then(int),
            (SetIds { real, .. }, "real") => real.and_then(int),
            (SetIds { effective, .. }, "effective") => effective.and_then(int),
            (SetIds { saved, .. }, "saved") => saved.and_then(int),
            (Capset { pid, .. }, "pid") => pid.and_then(int),
            (Capset { effective, .. }, "effective") => effective.and_then(uint),
            (Capset { permitted, .. }, "permitted") => permitted.and_then(uint),
            (Capset { inheritable, .. }, "inheritable") => inheritable.and_then(uint),
            (Setns { fd, .. }, "fd") => int(*fd),
            (Setns { nstype, .. }, "nstype") => uint(*nstype),
            (Unshare { flags }, "flags") => uint(*flags),
            (Clone { flags }, "flags") => flags.and_then(uint),
            (Mount { source, .. }, "source") => text(source),
            (Mount { target, .. }, "target") => text(target),
            (Mount { fstype, .. }, "fstype") => text(fstype),
            (Mount { flags, .. }, "flags") => uint(*flags),
            (Umount { target, .. }, "target") => text(target),
            (Umount { flags, .. }, "flags") => uint(*flags),
            (Chmod { dirfd, .. }, "dirfd") => dirfd.and_then(int),
            (Chmod { path, .. }, "path") => text(path),
            (Chmod { fd, .. }, "fd") => fd.and_then(int),
            (Chmod { mode, .. }, "mode") => uint(*mode),
            (Chmod { flags, .. }, "flags") => uint(*flags),
            (Chown { dirfd, .. }, "dirfd") => dirfd.and_then(int),
            (Chown { path, .. }, "path") => text(path),
            (Chown { fd, .. }, "fd") => fd.and_then(int),
            (Chown { uid, .. }, "uid") => int(*uid),
            (Chown { gid, .. }, "gid") => int(*gid),
            (Chown { flags, .. }, "flags") => uint(*flags),
            (Link { olddirfd, .. }, "olddirfd") => olddirfd.and_then(int),
            (Link { oldpath, .. }, "oldpath") => text(oldpath),
            (Link { newdirfd, .. }, "newdirfd") => newdirfd.and_then(int),
            (Link { newpath, .. }, "newpath") => text(newpath),
            (Link { flags, .. }, "flags") => uint(*flags),
            (Unlink { dirfd, .. }, "dirfd") => dirfd.and_then(int),
            (Unlink { path, .. }, "path") => text(path),
            (Unlink { flags, .. }, "flags") => uint(*flags),
            (Mkdir { dirfd, .. }, "dirfd") => dirfd.and_then(int),
            (Mkdir { path, .. }, "path") => text(path),
            (Mkdir { mode, .. }, "mode") => uint(*mode),
            (Module { fd, .. }, "fd") => fd.and_then(int),
            (Module { len, .. }, "len") => len.and_then(uint),
            (Module { params, .. }, "params") => text(params),
            (Module { flags, .. }, "flags") => uint(*flags),
            (MemfdCreate { name, .. }, "name") => text(name),
            (MemfdCreate { flags, .. }, "flags") => uint(*flags),
            (Prctl { option, .. }, "option") => uint(*option),
            (Prctl { args, .. }, "args") => Some(ArgValue::UInts(args)),
            (Kill { pid, .. }, "pid") => pid.and_then(int),
            (Kill { tid, .. }, "tid") => tid.and_then(int),
            (Kill { sig, .. }, "sig") => int(*sig),
            (Bpf { cmd }, "cmd") => uint(*cmd),
            (Chdir { path, .. }, "path") => text(path),
            (Chdir { fd, .. }, "fd") => fd.and_then(int),
            (Fcntl { fd, .. }, "fd") => int(*fd),
            (Fcntl { cmd, .. }, "cmd") => uint(*cmd),
            (RecvFrom { fd, .. }, "fd") => int(*fd),
            (RecvFrom { len, .. }, "len") => uint(*len),
            (RecvFrom { flags, .. }, "flags") => uint(*flags),
            (RecvFrom { addr: a, .. }, "addr") => addr(a),
            (RecvMsg { fd, .. }, "fd") => int(*fd),
            (RecvMsg { addr: a, .. }, "addr") => addr(a),
            (RecvMsg { flags, .. }, "flags") => uint(*flags),
            (Userfaultfd { flags }, "flags") => uint(*flags),
            (Setpgid { pid, .. }, "pid") => int(*pid),
            (Setpgid { pgid, .. }, "pgid") => int(*pgid),
            (Mmap { addr: a, .. }, "addr") => uint(*a),
            (Mmap { len, .. }, "len") => uint(*len),
            (Mmap { prot, .. }, "prot") => uint(*prot),
            (Mmap { flags, .. }, "flags") => flags.and_then(uint),
            (Mmap { fd, .. }, "fd") => fd.and_then(int),
            // Any other name is no argument of the family (the test below holds the
            // families' JSON members to this list).
            (
                Open { .. }
                | Exec { .. }
                | Close { .. }
                | Dup { .. }
                | Socket { .. }
                | Connect { .. }
                | Accept { .. }
                | Bind { .. }
                | Listen { .. }
                | SendTo { .. }
                | SendMsg { .. }
                | Ptrace { .. }
                | SetIds { .. }
                | Capset { .. }
                | Setns { .. }
                | Unshare { .. }
                | Clone { .. }
                | Mount { .. }
                | Umount { .. }
                | Chmod { .. }
                | Chown { .. }
                | Link { .. }
                | Unlink { .. }
                | Mkdir { .. }
                | Module { .. }
                | MemfdCreate { .. }
                | Prctl { .. }
                | Kill { .. }
                | Bpf { .. }
                | Chdir { .. }
                | Fcntl { .. }
                | RecvFrom { .. }
                | RecvMsg { .. }
                | Userfaultfd { .. }
                | Setsid
                | Setpgid { .. }
                | Mmap { .. },
                _,
            ) => None,
        }
    }
}

impl ExecInfo {
    /// The member the JSON form names `name` (`exe_flags`, `tty`...).
    pub fn arg(&self, name: &str) -> Option<ArgValue<'_>> {
        let ExecInfo {
            cap_effective,
            cap_permitted,
            cap_inheritable,
            exe_ino,
            exe_ctime_ns,
            exe_mtime_ns,
            tty,
            loginuid,
            exe_flags,
            pgid,
            vpgid,
            sid,
            vsid,
            fdlimit,
            maj_flt,
            min_flt,
            vm_size_kb,
            vm_rss_kb,
            vm_swap_kb,
            pidns_init_start_ns,
        } = self;
        let v: u64 = match name {
            "cap_effective" => *cap_effective,
            "cap_permitted" => *cap_permitted,
            "cap_inheritable" => *cap_inheritable,
            "exe_ino" => *exe_ino,
            "exe_ctime_ns" => *exe_ctime_ns,
            "exe_mtime_ns" => *exe_mtime_ns,
            "tty" => u64::from(*tty),
            "loginuid" => u64::from(*loginuid),
            "exe_flags" => u64::from(*exe_flags),
            "pgid" => u64::from(*pgid),
            "vpgid" => u64::from(*vpgid),
            "sid" => u64::from(*sid),
            "vsid" => u64::from(*vsid),
            "fdlimit" => *fdlimit,
            "maj_flt" => *maj_flt,
            "min_flt" => *min_flt,
            "vm_size_kb" => *vm_size_kb,
            "vm_rss_kb" => *vm_rss_kb,
            "vm_swap_kb" => *vm_swap_kb,
            "pidns_init_start_ns" => *pidns_init_start_ns,
            _ => return None,
        };
        uint(v)
    }
}
