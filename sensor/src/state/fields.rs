//! Field values of an event in the context of the state: what rules read.

use super::{Fd, Process, State};
use crate::{
    enrich::ContainerView,
    event::{Event, EventKind, SyscallArgs},
    rules::{FieldArg, FieldId, FieldSource, Value},
};

/// What an event changed in the state, kept while rules see it: the fields that compare
/// before and after read it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventChanges {
    /// The event changed its fd's name (a socket connected to a new peer): `fd.name_changed`.
    pub fd_name_changed: bool,
    /// The process's real uid before the event (`None`: the process was not known):
    /// `user.prev_uid`.
    pub prev_uid: Option<u32>,
    /// Capabilities a capset added to any of the three sets: `thread.cap_added`.
    pub cap_added: u64,
}

/// An event with the state around it, as the rule engine sees it.
pub struct EventView<'a> {
    ev: &'a Event,
    state: &'a State,
    container: Option<&'a ContainerView>,
    /// The fd the event is about: its argument, or the new fd it returned.
    fd: Option<(i32, Fd)>,
}

/// `O_*` open flags as Falco names them.
const OPEN_FLAGS: &[(u64, &str)] = &[
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

const PTRACE_REQUESTS: &[(u64, &str)] = &[
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
const MODE_FLAGS: &[(u64, &str)] = &[
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

/// Namespace types of `unshare` flags and `setns` (`evt.arg.flags contains CLONE_NEWUSER`).
const NAMESPACE_FLAGS: &[(u64, &str)] = &[
    (0x80, "CLONE_NEWTIME"),
    (0x20000, "CLONE_NEWNS"),
    (0x0200_0000, "CLONE_NEWCGROUP"),
    (0x0400_0000, "CLONE_NEWUTS"),
    (0x0800_0000, "CLONE_NEWIPC"),
    (0x1000_0000, "CLONE_NEWUSER"),
    (0x2000_0000, "CLONE_NEWPID"),
    (0x4000_0000, "CLONE_NEWNET"),
];

/// x86_64 signal numbers (`evt.arg.sig = SIGKILL`).
const SIGNALS: &[(u64, &str)] = &[
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
const BPF_CMDS: &[(u64, &str)] = &[
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

const FAMILIES: &[(u64, &str)] =
    &[(1, "AF_UNIX"), (2, "AF_INET"), (10, "AF_INET6"), (16, "AF_NETLINK"), (17, "AF_PACKET"), (0, "AF_UNSPEC")];

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

const ERRNOS: &[(i64, &str)] = &[
    (1, "EPERM"),
    (2, "ENOENT"),
    (3, "ESRCH"),
    (4, "EINTR"),
    (5, "EIO"),
    (9, "EBADF"),
    (11, "EAGAIN"),
    (12, "ENOMEM"),
    (13, "EACCES"),
    (14, "EFAULT"),
    (16, "EBUSY"),
    (17, "EEXIST"),
    (20, "ENOTDIR"),
    (21, "EISDIR"),
    (22, "EINVAL"),
    (24, "EMFILE"),
    (28, "ENOSPC"),
    (30, "EROFS"),
    (36, "ENAMETOOLONG"),
    (38, "ENOSYS"),
    (95, "EOPNOTSUPP"),
    (98, "EADDRINUSE"),
    (104, "ECONNRESET"),
    (110, "ETIMEDOUT"),
    (111, "ECONNREFUSED"),
    (115, "EINPROGRESS"),
];

/// Renders `flags` as `A|B` with `names`; `zero` names the value 0.
fn flag_names(flags: u64, names: &[(u64, &str)], zero: &str) -> String {
    let set: Vec<&str> = names.iter().filter(|(bit, _)| flags & bit == *bit).map(|(_, n)| *n).collect();
    if set.is_empty() { zero.to_owned() } else { set.join("|") }
}

fn enum_name(v: u64, names: &[(u64, &str)]) -> String {
    names.iter().find(|(n, _)| *n == v).map_or_else(|| v.to_string(), |(_, n)| (*n).to_owned())
}

fn cap_names(caps: u64) -> String {
    let names: Vec<&str> = CAPS.iter().enumerate().filter(|(i, _)| caps & (1 << i) != 0).map(|(_, n)| *n).collect();
    names.join(" ")
}

fn split_path(path: &str) -> (String, String) {
    match path.rfind('/') {
        Some(0) => ("/".into(), path[1..].into()),
        Some(i) => (path[..i].into(), path[i + 1..].into()),
        None => (String::new(), path.into()),
    }
}

fn s(v: impl Into<String>) -> Option<Value> {
    Some(Value::Str(v.into()))
}

impl<'a> EventView<'a> {
    /// The view of `ev` against `state`, with its container's metadata if looked up.
    pub(super) fn new(ev: &'a Event, state: &'a State, container: Option<&'a ContainerView>) -> Self {
        let fd = Self::event_fd(ev, state.procs.get(ev.pid));
        Self { ev, state, container, fd }
    }

    /// `container.*` and `k8s.*`: from the looked-up metadata, else the id the process
    /// table knows (`host` when nothing is known, as for replayed events).
    fn container_field(&self, name: &str, arg: Option<&FieldArg>) -> Option<Value> {
        let key = match arg {
            Some(FieldArg::Key(k)) => Some(k.clone()),
            Some(FieldArg::Index(i)) => Some(i.to_string()),
            None => None,
        };
        let text = match self.container {
            Some(view) => view.field(name, key.as_deref())?,
            None => {
                let id = self.process().and_then(|p| p.container.as_ref());
                match name {
                    "container.id" => id.map_or("host", |c| c.short()).to_owned(),
                    "container.full_id" => id.map_or("host", |c| c.full()).to_owned(),
                    _ => return None,
                }
            }
        };
        match name {
            "container.privileged" | "container.host_network" | "container.host_pid" | "container.host_ipc" => {
                text.parse().ok().map(Value::Bool)
            }
            "container.start_ts" => text.parse().ok().map(Value::UInt),
            "container.ip" | "k8s.pod.ip" => text.parse().ok().map(Value::Ip),
            _ => Some(Value::Str(text)),
        }
    }

    fn event_fd(ev: &Event, p: Option<&Process>) -> Option<(i32, Fd)> {
        let sc = ev.syscall()?;
        let known = |fd: i32| p.and_then(|p| p.fds.get(&fd).cloned()).map(|f| (fd, f));
        match &sc.args {
            SyscallArgs::Open { path, .. } => {
                known(sc.ret as i32).or_else(|| path.clone().map(|path| (sc.ret as i32, Fd::File { path })))
            }
            SyscallArgs::Socket { .. } | SyscallArgs::Accept { .. } | SyscallArgs::MemfdCreate { .. } => {
                known(sc.ret as i32)
            }
            SyscallArgs::Dup { oldfd, .. } => known(sc.ret as i32).or_else(|| known(*oldfd)),
            SyscallArgs::Close { fd }
            | SyscallArgs::Connect { fd, .. }
            | SyscallArgs::Bind { fd, .. }
            | SyscallArgs::Listen { fd, .. }
            | SyscallArgs::SendTo { fd, .. }
            | SyscallArgs::SendMsg { fd, .. }
            | SyscallArgs::Setns { fd, .. } => known(*fd),
            SyscallArgs::Chmod { fd: Some(fd), .. } | SyscallArgs::Chown { fd: Some(fd), .. } => known(*fd),
            SyscallArgs::Mmap { fd: Some(fd), .. } if *fd >= 0 => known(*fd),
            _ => None,
        }
    }

    fn process(&self) -> Option<&'a Process> {
        self.state.procs.get(self.ev.pid)
    }

    /// The process `level` generations up (0: the event's own).
    fn ancestor(&self, level: u32) -> Option<&'a Process> {
        if level == 0 {
            return self.process();
        }
        self.state.procs.ancestors(self.ev.pid, level as usize).get(level as usize - 1).copied()
    }

    fn ancestry(&self, arg: Option<&FieldArg>, f: impl Fn(&Process) -> Value) -> Option<Value> {
        match arg {
            Some(FieldArg::Index(n)) => self.ancestor(*n).map(f),
            _ => Some(Value::List(self.state.procs.ancestors(self.ev.pid, 64).into_iter().map(f).collect())),
        }
    }

    /// `evt.arg.<name>` (or `evt.arg[n]`), in Falco's naming where it differs from ours.
    fn event_arg(&self, arg: Option<&FieldArg>) -> Option<Value> {
        let sc = self.ev.syscall()?;
        let json = serde_json::to_value(&sc.args).ok()?;
        let obj = json.as_object()?;
        let key = match arg? {
            FieldArg::Key(k) => k.as_str(),
            FieldArg::Index(n) => {
                let table = sensor_abi::syscalls::by_nr(sc.nr)?;
                table.args.get(*n as usize)?.name
            }
        };
        match (key, &sc.args) {
            ("res", _) => Some(Value::Int(sc.ret)),
            ("flags", SyscallArgs::Open { flags, .. }) => s(flag_names(*flags, OPEN_FLAGS, "O_RDONLY")),
            ("request", SyscallArgs::Ptrace { request, .. }) => s(enum_name(*request, PTRACE_REQUESTS)),
            ("domain", SyscallArgs::Socket { domain, .. }) => s(enum_name(*domain as u64, FAMILIES)),
            (
                "mode",
                SyscallArgs::Open { mode, .. } | SyscallArgs::Chmod { mode, .. } | SyscallArgs::Mkdir { mode, .. },
            ) => s(flag_names(u64::from(*mode), MODE_FLAGS, "0")),
            ("flags", SyscallArgs::Unshare { flags }) | ("nstype", SyscallArgs::Setns { nstype: flags, .. }) => {
                s(flag_names(*flags, NAMESPACE_FLAGS, "0"))
            }
            ("sig", SyscallArgs::Kill { sig, .. }) => s(enum_name(*sig as u64, SIGNALS)),
            ("cmd", SyscallArgs::Bpf { cmd }) => s(enum_name(u64::from(*cmd), BPF_CMDS)),
            // Falco's names for the ids of the set*id calls.
            ("uid" | "gid", SyscallArgs::SetIds { id, .. })
            | ("ruid" | "rgid", SyscallArgs::SetIds { real: id, .. })
            | ("euid" | "egid", SyscallArgs::SetIds { effective: id, .. })
            | ("suid" | "sgid", SyscallArgs::SetIds { saved: id, .. }) => id.map(Value::Int),
            ("cap_effective", SyscallArgs::Capset { effective: Some(c), .. })
            | ("cap_permitted", SyscallArgs::Capset { permitted: Some(c), .. })
            | ("cap_inheritable", SyscallArgs::Capset { inheritable: Some(c), .. }) => s(cap_names(*c)),
            ("name" | "filename" | "pathname", _) if obj.contains_key("path") => json_value(&obj["path"]),
            ("target", SyscallArgs::Link { oldpath, .. }) => oldpath.clone().map(Value::Str),
            ("linkpath", SyscallArgs::Link { newpath, .. }) => newpath.clone().map(Value::Str),
            ("tuple" | "addr", _) => obj
                .get("addr")
                .and_then(|a| serde_json::from_value(a.clone()).ok())
                .map(|a: crate::event::SockAddr| Value::Str(a.to_string())),
            (k, _) => obj.get(k).and_then(json_value),
        }
    }

    /// `fs.path.*`: the path a file syscall works on (`name`), or the two paths of a link
    /// or rename (`source`, `target`), absolute (from the directory fd or the working
    /// directory) or as passed (`*raw`). A symlink's source is its content, kept as written.
    fn fs_path_field(&self, name: &str) -> Option<Value> {
        let sc = self.ev.syscall()?;
        let p = self.process();
        let dir_of = |dirfd: Option<i32>| match dirfd {
            None | Some(super::AT_FDCWD) => p.and_then(|p| p.cwd.clone()),
            Some(fd) => p.and_then(|p| p.fds.get(&fd)).and_then(|f| f.path().map(str::to_owned)),
        };
        let resolve = |dirfd: Option<i32>, path: &Option<String>, raw: bool| {
            let path = path.as_deref()?;
            Some(Value::Str(if raw { path.to_owned() } else { super::absolute(dir_of(dirfd).as_deref(), path) }))
        };
        let raw = name.ends_with("raw");
        match (name.trim_end_matches("raw"), &sc.args) {
            ("fs.path.name", SyscallArgs::Open { dirfd, path, .. })
            | ("fs.path.name", SyscallArgs::Exec { dirfd, path, .. })
            | ("fs.path.name", SyscallArgs::Unlink { dirfd, path, .. })
            | ("fs.path.name", SyscallArgs::Mkdir { dirfd, path, .. })
            | ("fs.path.name", SyscallArgs::Chmod { dirfd, path: path @ Some(_), .. })
            | ("fs.path.name", SyscallArgs::Chown { dirfd, path: path @ Some(_), .. }) => resolve(*dirfd, path, raw),
            ("fs.path.name", SyscallArgs::Chmod { fd: Some(_), .. } | SyscallArgs::Chown { fd: Some(_), .. }) => {
                self.fd.as_ref().and_then(|(_, f)| f.path()).map(|p| Value::Str(p.to_owned()))
            }
            ("fs.path.source", SyscallArgs::Link { olddirfd, oldpath, .. }) => {
                let symlink = matches!(sc.name.as_str(), "symlink" | "symlinkat");
                resolve(*olddirfd, oldpath, raw || symlink)
            }
            ("fs.path.target", SyscallArgs::Link { newdirfd, newpath, .. }) => resolve(*newdirfd, newpath, raw),
            _ => None,
        }
    }

    fn user_field(&self, name: &str) -> Option<Value> {
        let ev = self.ev;
        let mut users = self.state.users.borrow_mut();
        match name {
            "user.uid" => Some(Value::UInt(ev.uid as u64)),
            "user.prev_uid" => Some(Value::UInt(u64::from(self.state.changes.prev_uid.unwrap_or(ev.uid)))),
            "user.name" => users.user(ev.pid, ev.mnt_ns, ev.uid).map(|u| Value::Str(u.name)),
            "user.homedir" => users.user(ev.pid, ev.mnt_ns, ev.uid).map(|u| Value::Str(u.home)),
            "user.shell" => users.user(ev.pid, ev.mnt_ns, ev.uid).map(|u| Value::Str(u.shell)),
            "user.loginuid" => {
                self.process().map(|p| Value::Int(if p.loginuid == u32::MAX { -1 } else { p.loginuid as i64 }))
            }
            "user.loginname" => {
                let p = self.process()?;
                users.user(ev.pid, ev.mnt_ns, p.loginuid).map(|u| Value::Str(u.name))
            }
            "group.gid" => Some(Value::UInt(ev.gid as u64)),
            "group.name" => users.group(ev.pid, ev.mnt_ns, ev.gid).map(Value::Str),
            _ => None,
        }
    }

    fn fd_field(&self, name: &str) -> Option<Value> {
        let (num, fd) = self.fd.as_ref()?;
        let ip = |e: Option<(std::net::IpAddr, u16)>| e.map(|(ip, _)| Value::Ip(ip));
        let port = |e: Option<(std::net::IpAddr, u16)>| e.map(|(_, p)| Value::UInt(p as u64));
        let dns_name =
            |e: Option<(std::net::IpAddr, u16)>| e.and_then(|(ip, _)| self.state.dns.name_of(ip)).map(Value::Str);
        let both = |a: Option<Value>, b: Option<Value>| Some(Value::List(a.into_iter().chain(b).collect()));
        let nameraw = || match &self.ev.syscall()?.args {
            SyscallArgs::Open { path, .. } => path.clone(),
            _ => None,
        };
        match name {
            "fd.num" => Some(Value::Int(*num as i64)),
            "fd.type" => s(fd.type_name()),
            "fd.typechar" => s(fd.typechar()),
            "fd.name" => s(fd.name()),
            "fd.nameraw" => nameraw().or_else(|| Some(fd.name())).map(Value::Str),
            "fd.directory" => fd.path().map(|p| Value::Str(split_path(p).0)),
            "fd.filename" => fd.path().map(|p| Value::Str(split_path(p).1)),
            "fd.cip" => ip(fd.client()),
            "fd.sip" => ip(fd.server()),
            "fd.lip" => ip(fd.local()),
            "fd.rip" => ip(fd.remote()),
            "fd.cip.name" => dns_name(fd.client()),
            "fd.sip.name" => dns_name(fd.server()),
            "fd.lip.name" => dns_name(fd.local()),
            "fd.rip.name" => dns_name(fd.remote()),
            "fd.cport" => port(fd.client()),
            "fd.sport" => port(fd.server()),
            "fd.ip" | "fd.net" => both(ip(fd.client()), ip(fd.server())),
            "fd.cnet" => ip(fd.client()),
            "fd.snet" => ip(fd.server()),
            "fd.port" => both(port(fd.client()), port(fd.server())),
            "fd.l4proto" => fd.l4proto().map(|p| Value::Str(p.into())),
            "fd.is_server" => matches!(fd, Fd::Socket { server: true, .. }).then_some(Value::Bool(true)),
            "fd.connected" => Some(Value::Bool(matches!(fd, Fd::Socket { connected: true, .. }))),
            "fd.name_changed" => Some(Value::Bool(self.state.changes.fd_name_changed)),
            "fd.sockfamily" => match fd.typechar() {
                "4" | "6" => s("ip"),
                "u" => s("unix"),
                _ => None,
            },
            _ => None,
        }
    }

    fn proc_field(&self, name: &str, arg: Option<&FieldArg>) -> Option<Value> {
        let ev = self.ev;
        let p = self.process();
        let parent = || self.ancestor(1);
        let now = ev.wall_ts;
        match name {
            "proc.pid" => Some(Value::UInt(ev.pid as u64)),
            "proc.ppid" => Some(Value::UInt(ev.ppid as u64)),
            "proc.vpid" => Some(Value::UInt(ev.ns_pid as u64)),
            "proc.sid" => p.map(|p| Value::UInt(p.sid as u64)),
            "proc.sname" => p.and_then(|p| self.state.procs.get(p.sid)).map(|s| Value::Str(s.name.clone())),
            "proc.name" => s(ev.comm.clone()),
            "proc.exe" => p.map(|p| Value::Str(p.exe.clone())),
            "proc.exepath" => p.map(|p| Value::Str(p.exepath.clone())),
            "proc.args" => p.map(|p| Value::Str(p.args.join(" "))),
            "proc.cmdline" => p.map(|p| Value::Str(p.cmdline())),
            "proc.cmdnargs" => p.map(|p| Value::UInt(p.args.len() as u64)),
            "proc.cwd" => p.and_then(|p| p.cwd.clone()).map(Value::Str),
            "proc.tty" => p.map(|p| Value::UInt(p.tty as u64)),
            "proc.duration" => p.filter(|p| p.start_ns > 0).map(|p| Value::UInt(now.saturating_sub(p.start_ns))),
            "proc.pid.ts" => p.map(|p| Value::UInt(p.start_ns)),
            "proc.is_exe_from_memfd" => p.map(|p| Value::Bool(p.exe_from_memfd)),
            "proc.is_exe_upper_layer" => p.map(|p| Value::Bool(p.exe_upper_layer)),
            "proc.pname" => parent().map(|p| Value::Str(p.name.clone())),
            "proc.pexe" => parent().map(|p| Value::Str(p.exe.clone())),
            "proc.pexepath" => parent().map(|p| Value::Str(p.exepath.clone())),
            "proc.pcmdline" => parent().map(|p| Value::Str(p.cmdline())),
            "proc.pvpid" => parent().map(|p| Value::UInt(p.vpid as u64)),
            "proc.ppid.duration" => {
                parent().filter(|p| p.start_ns > 0).map(|p| Value::UInt(now.saturating_sub(p.start_ns)))
            }
            "proc.aname" => self.ancestry(arg, |p| Value::Str(p.name.clone())),
            "proc.apid" => self.ancestry(arg, |p| Value::UInt(p.pid as u64)),
            "proc.aexe" => self.ancestry(arg, |p| Value::Str(p.exe.clone())),
            "proc.aexepath" => self.ancestry(arg, |p| Value::Str(p.exepath.clone())),
            "proc.acmdline" => self.ancestry(arg, |p| Value::Str(p.cmdline())),
            "proc.aargs" => self.ancestry(arg, |p| Value::Str(p.args.join(" "))),
            "proc.fdopencount" => p.map(|p| Value::UInt(p.fds.len() as u64)),
            "proc.env" => {
                let p = p?;
                match arg {
                    Some(FieldArg::Key(k)) => p
                        .env
                        .iter()
                        .find_map(|kv| kv.strip_prefix(k.as_str())?.strip_prefix('='))
                        .map(|v| Value::Str(v.to_owned())),
                    _ => Some(Value::Str(p.env.join(" "))),
                }
            }
            "proc.exe_ino" => p?.exe_ino.map(|(ino, _, _)| Value::UInt(ino)),
            "proc.exe_ino.ctime" => p?.exe_ino.map(|(_, ctime, _)| Value::UInt(ctime)),
            "proc.exe_ino.mtime" => p?.exe_ino.map(|(_, _, mtime)| Value::UInt(mtime)),
            "proc.exe_ino.ctime_duration_proc_start" => {
                let p = p?;
                p.exe_ino.map(|(_, ctime, _)| Value::UInt(p.start_ns.saturating_sub(ctime)))
            }
            "thread.tid" => Some(Value::UInt(ev.tid as u64)),
            "thread.vtid" => Some(Value::UInt(ev.ns_tid as u64)),
            "thread.ismain" => Some(Value::Bool(ev.tid == ev.pid)),
            "thread.cap_effective" => p.map(|p| Value::Str(cap_names(p.cap_effective))),
            "thread.cap_permitted" => p.map(|p| Value::Str(cap_names(p.cap_permitted))),
            "thread.cap_inheritable" => p.map(|p| Value::Str(cap_names(p.cap_inheritable))),
            "thread.cap_added" => s(cap_names(self.state.changes.cap_added)),
            _ => None,
        }
    }

    fn evt_field(&self, name: &str, arg: Option<&FieldArg>) -> Option<Value> {
        let ev = self.ev;
        let sc = ev.syscall();
        let open_flags = || match sc.map(|s| &s.args) {
            Some(SyscallArgs::Open { flags, .. }) => Some(*flags),
            _ => None,
        };
        match name {
            "evt.type" | "syscall.type" => s(ev.type_name()),
            "evt.dir" => s("<"),
            "evt.cpu" => Some(Value::UInt(ev.cpu as u64)),
            "evt.rawtime" | "evt.rawtime.ns" => Some(Value::UInt(ev.wall_ts)),
            "evt.rawtime.s" => Some(Value::UInt(ev.wall_ts / 1_000_000_000)),
            "evt.time" => s(crate::rules::output::format_time(ev.wall_ts)),
            "evt.time.iso8601" | "evt.datetime" => s(crate::rules::output::format_iso8601(ev.wall_ts)),
            "evt.category" => s(match &ev.kind {
                EventKind::Syscall(_) => "syscall",
                _ => "process",
            }),
            "evt.rawres" => sc.map(|s| Value::Int(s.ret)),
            "evt.failed" => sc.map(|s| Value::Bool(s.ret < 0)),
            "evt.res" => sc.map(|s| match s.ret {
                r if r >= 0 => Value::Str("SUCCESS".into()),
                r => Value::Str(ERRNOS.iter().find(|(n, _)| *n == -r).map_or(format!("E{}", -r), |(_, n)| (*n).into())),
            }),
            "evt.arg" => self.event_arg(arg),
            "evt.is_open_read" => open_flags().map(|f| Value::Bool(f & 0o3 != 0o1)),
            "evt.is_open_write" => open_flags().map(|f| Value::Bool(f & 0o3 != 0)),
            "evt.is_open_create" => open_flags().map(|f| Value::Bool(f & 0o100 != 0)),
            "evt.is_open_exec" => open_flags().map(|_| Value::Bool(false)),
            "evt.source" => s("syscall"),
            _ => None,
        }
    }
}

fn json_value(v: &serde_json::Value) -> Option<Value> {
    match v {
        serde_json::Value::String(s) => Some(Value::Str(s.clone())),
        serde_json::Value::Number(n) => n.as_i64().map(Value::Int).or_else(|| n.as_u64().map(Value::UInt)),
        serde_json::Value::Bool(b) => Some(Value::Bool(*b)),
        serde_json::Value::Array(items) => Some(Value::List(items.iter().filter_map(json_value).collect())),
        _ => None,
    }
}

impl FieldSource for EventView<'_> {
    fn event_type(&self) -> &str {
        self.ev.type_name()
    }

    fn timestamp_ns(&self) -> u64 {
        self.ev.wall_ts
    }

    fn field(&self, id: FieldId, arg: Option<&FieldArg>) -> Option<Value> {
        let name = id.info().name;
        let class = name.split('.').next().unwrap_or("");
        match class {
            "evt" | "syscall" => self.evt_field(name, arg),
            "proc" | "thread" => self.proc_field(name, arg),
            "fd" => self.fd_field(name),
            "user" | "group" => self.user_field(name),
            "container" | "k8s" => self.container_field(name, arg),
            "fs" => self.fs_path_field(name),
            "sensor" if name == "sensor.pid" => Some(Value::UInt(u64::from(std::process::id()))),
            _ => None,
        }
    }
}
