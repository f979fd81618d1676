//! The symbolic names Falco gives numbers in event arguments (`O_WRONLY`, `SIGTERM`,
//! `CAP_SYS_ADMIN`, `ENOENT`), one table each, read both ways: to render a field and to
//! parse the value a test event gives it.

use std::borrow::Cow;

/// `O_*` open flags as Falco names them.
pub(super) const OPEN_FLAGS: &[(u64, &str)] = &[
    (0o1, "O_WRONLY"),
    (0o2, "O_RDWR"),
    (0o100, "O_CREAT"),
    (0o200, "O_EXCL"),
    (0o400, "O_NOCTTY"),
    (0o1000, "O_TRUNC"),
    (0o2000, "O_APPEND"),
    (0o4000, "O_NONBLOCK"),
    (0o10000, "O_DSYNC"),
    (0o40000, "O_DIRECT"),
    (0o200000, "O_DIRECTORY"),
    (0o400000, "O_NOFOLLOW"),
    (0o1000000, "O_NOATIME"),
    (0o2000000, "O_CLOEXEC"),
    (0o10000000, "O_PATH"),
    (0o20000000, "O_TMPFILE"),
];
/// The flags of an executable at its exec, Falco's `PPM_EXE_*` names (`evt.arg.flags` of
/// an exec: `exe_flags=%evt.arg.flags` in Falco's outputs).
pub(super) const EXE_FLAGS: &[(u64, &str)] = &[
    (sensor_abi::record::exe_flags::WRITABLE as u64, "EXE_WRITABLE"),
    (sensor_abi::record::exe_flags::UPPER_LAYER as u64, "EXE_UPPER_LAYER"),
    (sensor_abi::record::exe_flags::FROM_MEMFD as u64, "EXE_FROM_MEMFD"),
    (sensor_abi::record::exe_flags::LOWER_LAYER as u64, "EXE_LOWER_LAYER"),
];

/// `PROT_*` of `mmap`/`mprotect`.
pub(super) const PROT_FLAGS: &[(u64, &str)] =
    &[(1, "PROT_READ"), (2, "PROT_WRITE"), (sensor_abi::config::PROT_EXEC, "PROT_EXEC")];

/// `CLONE_NEW*`: the namespaces `clone`, `unshare` and `setns` name alike.
const CLONE_NEW: [(u64, &str); 7] = [
    (0x20000, "CLONE_NEWNS"),
    (0x0200_0000, "CLONE_NEWCGROUP"),
    (0x0400_0000, "CLONE_NEWUTS"),
    (0x0800_0000, "CLONE_NEWIPC"),
    (0x1000_0000, "CLONE_NEWUSER"),
    (0x2000_0000, "CLONE_NEWPID"),
    (0x4000_0000, "CLONE_NEWNET"),
];

/// `CLONE_*` flags of `clone`/`clone3`.
pub(super) const CLONE_FLAGS: &[(u64, &str)] = &join::<19>(
    &[
        (0x100, "CLONE_VM"),
        (0x200, "CLONE_FS"),
        (0x400, "CLONE_FILES"),
        (0x800, "CLONE_SIGHAND"),
        (0x1000, "CLONE_PIDFD"),
        (0x2000, "CLONE_PTRACE"),
        (0x4000, "CLONE_VFORK"),
        (0x8000, "CLONE_PARENT"),
        (0x10000, "CLONE_THREAD"),
        (0x40000, "CLONE_SYSVSEM"),
        (0x80000, "CLONE_SETTLS"),
        (0x8000_0000, "CLONE_IO"),
    ],
    &CLONE_NEW,
);

/// Two name tables as one (`N` is their total length; a wrong one does not compile).
const fn join<const N: usize>(a: &[(u64, &'static str)], b: &[(u64, &'static str)]) -> [(u64, &'static str); N] {
    assert!(a.len() + b.len() == N, "join: N is not the total length");
    let mut out = [(0, ""); N];
    let mut i = 0;
    while i < N {
        out[i] = if i < a.len() { a[i] } else { b[i - a.len()] };
        i += 1;
    }
    out
}

/// `MFD_*` flags of `memfd_create`.
pub(super) const MEMFD_FLAGS: &[(u64, &str)] =
    &[(1, "MFD_CLOEXEC"), (2, "MFD_ALLOW_SEALING"), (4, "MFD_HUGETLB"), (8, "MFD_NOEXEC_SEAL"), (0x10, "MFD_EXEC")];

/// The `fcntl` commands the sensor captures.
pub(super) const FCNTL_CMDS: &[(u64, &str)] =
    &[(sensor_abi::config::F_DUPFD, "F_DUPFD"), (sensor_abi::config::F_DUPFD_CLOEXEC, "F_DUPFD_CLOEXEC")];

/// What an open with none of [`OPEN_FLAGS`]' access bits asks for.
pub(super) const O_RDONLY: &str = "O_RDONLY";
pub(super) const O_ACCMODE: u64 = 0o3;
pub(super) const O_WRONLY: u64 = 0o1;
pub(super) const O_RDWR: u64 = 0o2;
pub(super) const O_CREAT: u64 = 0o100;
pub(super) const O_TRUNC: u64 = 0o1000;
pub(super) const O_TMPFILE: u64 = 0o20000000;

/// `PTRACE_*` requests.
pub(super) const PTRACE_REQUESTS: &[(u64, &str)] = &[
    (0, "PTRACE_TRACEME"),
    (1, "PTRACE_PEEKTEXT"),
    (2, "PTRACE_PEEKDATA"),
    (4, "PTRACE_POKETEXT"),
    (5, "PTRACE_POKEDATA"),
    (6, "PTRACE_POKEUSR"),
    (7, "PTRACE_CONT"),
    (8, "PTRACE_KILL"),
    (9, "PTRACE_SINGLESTEP"),
    (12, "PTRACE_GETREGS"),
    (13, "PTRACE_SETREGS"),
    (16, "PTRACE_ATTACH"),
    (17, "PTRACE_DETACH"),
    (24, "PTRACE_SYSCALL"),
    (0x4206, "PTRACE_SEIZE"),
];

/// File mode bits as Falco names them (`evt.arg.mode contains S_ISUID`).
pub(super) const MODE_FLAGS: &[(u64, &str)] = &[
    (0o1, "S_IXOTH"),
    (0o2, "S_IWOTH"),
    (0o4, "S_IROTH"),
    (0o10, "S_IXGRP"),
    (0o20, "S_IWGRP"),
    (0o40, "S_IRGRP"),
    (0o100, "S_IXUSR"),
    (0o200, "S_IWUSR"),
    (0o400, "S_IRUSR"),
    (0o1000, "S_ISVTX"),
    (0o2000, "S_ISGID"),
    (0o4000, "S_ISUID"),
];
/// Execute permission for anyone: an open creating such a file is `evt.is_open_exec`.
pub(super) const MODE_EXEC: u32 = 0o111;

/// Namespace types of `unshare` flags and `setns` (`evt.arg.flags contains CLONE_NEWUSER`);
/// `CLONE_NEWTIME` shares its bit with `clone`'s exit signal, so it is theirs only.
pub(super) const NAMESPACE_FLAGS: &[(u64, &str)] = &join::<8>(&[(0x80, "CLONE_NEWTIME")], &CLONE_NEW);

/// x86_64 signal numbers (`evt.arg.sig = SIGKILL`).
pub(super) const SIGNALS: &[(u64, &str)] = &[
    (1, "SIGHUP"),
    (2, "SIGINT"),
    (3, "SIGQUIT"),
    (4, "SIGILL"),
    (5, "SIGTRAP"),
    (6, "SIGABRT"),
    (7, "SIGBUS"),
    (8, "SIGFPE"),
    (9, "SIGKILL"),
    (10, "SIGUSR1"),
    (11, "SIGSEGV"),
    (12, "SIGUSR2"),
    (13, "SIGPIPE"),
    (14, "SIGALRM"),
    (15, "SIGTERM"),
    (17, "SIGCHLD"),
    (18, "SIGCONT"),
    (19, "SIGSTOP"),
    (20, "SIGTSTP"),
];

/// `bpf(2)` commands (`evt.arg.cmd = BPF_PROG_LOAD`).
pub(super) const BPF_CMDS: &[(u64, &str)] = &[
    (0, "BPF_MAP_CREATE"),
    (1, "BPF_MAP_LOOKUP_ELEM"),
    (2, "BPF_MAP_UPDATE_ELEM"),
    (3, "BPF_MAP_DELETE_ELEM"),
    (4, "BPF_MAP_GET_NEXT_KEY"),
    (5, "BPF_PROG_LOAD"),
    (6, "BPF_OBJ_PIN"),
    (7, "BPF_OBJ_GET"),
    (8, "BPF_PROG_ATTACH"),
    (9, "BPF_PROG_DETACH"),
    (17, "BPF_RAW_TRACEPOINT_OPEN"),
    (18, "BPF_BTF_LOAD"),
    (28, "BPF_LINK_CREATE"),
];

/// `AF_*` socket families.
pub(super) const FAMILIES: &[(u64, &str)] =
    &[(1, "AF_UNIX"), (2, "AF_INET"), (10, "AF_INET6"), (16, "AF_NETLINK"), (17, "AF_PACKET"), (0, "AF_UNSPEC")];

/// Capabilities by bit number.
const CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Linux errno names (x86_64), as `evt.res` gives them.
const ERRNOS: &[(i64, &str)] = &[
    (1, "EPERM"),
    (2, "ENOENT"),
    (3, "ESRCH"),
    (4, "EINTR"),
    (5, "EIO"),
    (6, "ENXIO"),
    (7, "E2BIG"),
    (8, "ENOEXEC"),
    (9, "EBADF"),
    (10, "ECHILD"),
    (11, "EAGAIN"),
    (12, "ENOMEM"),
    (13, "EACCES"),
    (14, "EFAULT"),
    (15, "ENOTBLK"),
    (16, "EBUSY"),
    (17, "EEXIST"),
    (18, "EXDEV"),
    (19, "ENODEV"),
    (20, "ENOTDIR"),
    (21, "EISDIR"),
    (22, "EINVAL"),
    (23, "ENFILE"),
    (24, "EMFILE"),
    (25, "ENOTTY"),
    (26, "ETXTBSY"),
    (27, "EFBIG"),
    (28, "ENOSPC"),
    (29, "ESPIPE"),
    (30, "EROFS"),
    (31, "EMLINK"),
    (32, "EPIPE"),
    (33, "EDOM"),
    (34, "ERANGE"),
    (35, "EDEADLK"),
    (36, "ENAMETOOLONG"),
    (37, "ENOLCK"),
    (38, "ENOSYS"),
    (39, "ENOTEMPTY"),
    (40, "ELOOP"),
    (42, "ENOMSG"),
    (43, "EIDRM"),
    (61, "ENODATA"),
    (62, "ETIME"),
    (71, "EPROTO"),
    (74, "EBADMSG"),
    (75, "EOVERFLOW"),
    (84, "EILSEQ"),
    (88, "ENOTSOCK"),
    (89, "EDESTADDRREQ"),
    (90, "EMSGSIZE"),
    (91, "EPROTOTYPE"),
    (92, "ENOPROTOOPT"),
    (93, "EPROTONOSUPPORT"),
    (94, "ESOCKTNOSUPPORT"),
    (95, "EOPNOTSUPP"),
    (96, "EPFNOSUPPORT"),
    (97, "EAFNOSUPPORT"),
    (98, "EADDRINUSE"),
    (99, "EADDRNOTAVAIL"),
    (100, "ENETDOWN"),
    (101, "ENETUNREACH"),
    (102, "ENETRESET"),
    (103, "ECONNABORTED"),
    (104, "ECONNRESET"),
    (105, "ENOBUFS"),
    (106, "EISCONN"),
    (107, "ENOTCONN"),
    (108, "ESHUTDOWN"),
    (109, "ETOOMANYREFS"),
    (110, "ETIMEDOUT"),
    (111, "ECONNREFUSED"),
    (112, "EHOSTDOWN"),
    (113, "EHOSTUNREACH"),
    (114, "EALREADY"),
    (115, "EINPROGRESS"),
    (116, "ESTALE"),
    (122, "EDQUOT"),
    (125, "ECANCELED"),
    (126, "ENOKEY"),
    (127, "EKEYEXPIRED"),
    (128, "EKEYREVOKED"),
    (129, "EKEYREJECTED"),
    (130, "EOWNERDEAD"),
    (131, "ENOTRECOVERABLE"),
    (132, "ERFKILL"),
    (133, "EHWPOISON"),
];

/// Renders `flags` as `A|B` with `names`; `zero` names the value without any of them.
pub(super) fn flag_names(flags: u64, names: &[(u64, &'static str)], zero: &'static str) -> Cow<'static, str> {
    let mut set = names.iter().filter(|(bit, _)| flags & bit == *bit).map(|(_, n)| *n);
    // No flag or one flag (the common cases) name a constant: no text is built.
    match (set.next(), set.next()) {
        (None, _) => Cow::Borrowed(zero),
        (Some(one), None) => Cow::Borrowed(one),
        (Some(a), Some(b)) => {
            let mut text = format!("{a}|{b}");
            for n in set {
                text.push('|');
                text.push_str(n);
            }
            Cow::Owned(text)
        }
    }
}

/// Parses `A|B` (names of `names`, or `zero`, or numbers) back into flags.
pub(super) fn parse_flags(text: &str, names: &[(u64, &str)], zero: &str) -> Result<u64, String> {
    let mut flags = 0;
    for part in text.split('|').map(str::trim).filter(|p| !p.is_empty() && *p != zero) {
        flags |= match names.iter().find(|(_, n)| *n == part) {
            Some((bit, _)) => *bit,
            None => parse_u64(part).ok_or_else(|| {
                let known: Vec<&str> = names.iter().map(|(_, n)| *n).collect();
                format!("unknown flag '{part}' (known: {zero}, {})", known.join(", "))
            })?,
        };
    }
    Ok(flags)
}

/// The name of `v` in `names`, else the number.
pub(super) fn enum_name(v: u64, names: &[(u64, &'static str)]) -> Cow<'static, str> {
    names.iter().find(|(n, _)| *n == v).map_or_else(|| Cow::Owned(v.to_string()), |(_, n)| Cow::Borrowed(*n))
}

/// Parses a name of `names`, or a number.
pub(super) fn parse_enum(text: &str, names: &[(u64, &str)]) -> Result<u64, String> {
    let text = text.trim();
    names.iter().find(|(_, n)| *n == text).map(|(v, _)| *v).or_else(|| parse_u64(text)).ok_or_else(|| {
        let known: Vec<&str> = names.iter().map(|(_, n)| *n).collect();
        format!("unknown value '{text}' (known: {})", known.join(", "))
    })
}

/// Capabilities as space-separated `CAP_` names, lowest bit first.
pub(super) fn cap_names(caps: u64) -> String {
    let names: Vec<&str> = CAPS.iter().enumerate().filter(|(i, _)| caps & (1 << i) != 0).map(|(_, n)| *n).collect();
    names.join(" ")
}

/// Parses space- (or `|`-, `,`-) separated `CAP_` names.
pub(super) fn parse_caps(text: &str) -> Result<u64, String> {
    let mut caps = 0;
    for name in text.split([' ', '|', ',']).filter(|n| !n.is_empty()) {
        let bit = CAPS.iter().position(|c| *c == name).ok_or_else(|| format!("unknown capability '{name}'"))?;
        caps |= 1 << bit;
    }
    Ok(caps)
}

/// `evt.res`: `SUCCESS` for a return value that is not an error, else the errno's name.
pub(super) fn result_name(ret: i64) -> Cow<'static, str> {
    if ret >= 0 {
        return Cow::Borrowed("SUCCESS");
    }
    ERRNOS.iter().find(|(n, _)| *n == -ret).map_or_else(|| Cow::Owned(format!("E{}", -ret)), |(_, n)| Cow::Borrowed(*n))
}

/// The (positive) errno called `name`.
pub(super) fn errno(name: &str) -> Option<i64> {
    ERRNOS.iter().find(|(_, n)| *n == name).map(|(v, _)| *v)
}

fn parse_u64(text: &str) -> Option<u64> {
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_both_ways() {
        let flags = parse_flags("O_WRONLY|O_CREAT|O_TRUNC", OPEN_FLAGS, O_RDONLY).unwrap();
        assert_eq!(flags, 0o1101);
        assert_eq!(flag_names(flags, OPEN_FLAGS, O_RDONLY), "O_WRONLY|O_CREAT|O_TRUNC");
        assert_eq!(parse_flags("O_RDONLY", OPEN_FLAGS, O_RDONLY), Ok(0));
        assert!(parse_flags("O_RDWX", OPEN_FLAGS, O_RDONLY).unwrap_err().contains("O_RDWR"));
        assert_eq!(parse_enum("SIGKILL", SIGNALS), Ok(9));
        assert_eq!(parse_enum("0", SIGNALS), Ok(0));
        assert_eq!(enum_name(9, SIGNALS), "SIGKILL");
        let caps = parse_caps("CAP_CHOWN CAP_SYS_ADMIN").unwrap();
        assert_eq!(cap_names(caps), "CAP_CHOWN CAP_SYS_ADMIN");
        assert!(parse_caps("CAP_NOPE").is_err());
        assert_eq!(
            (result_name(3), result_name(-101), result_name(-4095)),
            ("SUCCESS".into(), "ENETUNREACH".into(), "E4095".into())
        );
        assert_eq!(errno("EINPROGRESS"), Some(115));
    }
}
