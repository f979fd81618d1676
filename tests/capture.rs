//! Kernel capture tests: each syscall family is performed by the `actor` process with
//! known arguments, and the captured event must carry them and the return value.
//! Needs root and a kernel with BTF (CI runs as root on a real kernel).

use std::{net::Ipv4Addr, time::Duration};

use sensor::{
    capture::{CaptureConfig, ProbeMode},
    event::{Event, EventKind, SockAddr, SyscallArgs},
};
use sensor_tests::{Session, actor, temp_path};

const AT_FDCWD: i32 = -100;

/// `CLOCK_BOOTTIME` now, the clock of [`Event::ts`].
fn boot_time_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Field `n` (after the command name: 0 is the state) of this process's `/proc/self/stat`.
fn own_stat_field(n: usize) -> u32 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    stat[stat.rfind(')').unwrap() + 2..].split(' ').nth(n).unwrap().parse().unwrap()
}

/// This process's soft limit of open files.
fn own_nofile_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes the struct it is given.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    limit.rlim_cur
}

fn args(e: &Event) -> &SyscallArgs {
    &e.syscall().expect("a syscall event").args
}

fn ret(e: &Event) -> i64 {
    e.syscall().expect("a syscall event").ret
}

/// The `name` event of the actor that returned what the actor reported as `key`. (The
/// actor's pid also makes the calls of the dynamic loader and, before its exec, of the
/// spawning child: the return value tells its own call apart.)
fn call(s: &mut Session, a: &sensor_tests::ActorReport, name: &str, key: &str) -> Event {
    let want = a.int(key);
    s.expect(&format!("{name} from pid {} returning {want}", a.pid), |e| {
        e.pid == a.pid && e.syscall().is_some_and(|sc| sc.name == name && sc.ret == want)
    })
}

/// The `name` event of the actor on `path`, checked against the reported result `key`.
fn call_on(s: &mut Session, a: &sensor_tests::ActorReport, name: &str, path: &str, key: &str) -> Event {
    let e = s.expect(&format!("{name} of {path} from pid {}", a.pid), |e| {
        e.pid == a.pid
            && e.syscall().is_some_and(|sc| {
                sc.name == name
                    && matches!(&sc.args, SyscallArgs::Open { path: Some(p), .. } | SyscallArgs::Exec { path: Some(p), .. } if p == path)
            })
    });
    assert_eq!(ret(&e), a.int(key), "{name} return value: {e}");
    e
}

#[test]
fn header_identifies_the_task() {
    let mut s = Session::start("openat");
    let path = temp_path("hdr");
    let a = actor(&["openat", &path]);
    let e = call_on(&mut s, &a, "openat", &path, "ret");
    assert_eq!((e.pid, e.tid), (a.pid, a.pid));
    assert_eq!(e.comm, "actor");
    assert_eq!(e.ppid, std::process::id(), "the test process spawned the actor");
    assert_eq!((e.uid, e.gid), (0, 0));
    // Host processes: the namespace view equals the host view.
    assert_eq!((e.ns_pid, e.ns_tid), (a.pid, a.pid));
    let self_ns = std::fs::read_link("/proc/self/ns/pid").unwrap().to_string_lossy().into_owned();
    assert_eq!(self_ns, format!("pid:[{}]", e.pid_ns));
    let mnt_ns = std::fs::read_link("/proc/self/ns/mnt").unwrap().to_string_lossy().into_owned();
    assert_eq!(mnt_ns, format!("mnt:[{}]", e.mnt_ns));
    assert!(e.cgroup_id > 0 && e.ts > 0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    assert!(now.abs_diff(e.wall_ts) < 60_000_000_000, "wall clock {} vs now {now}", e.wall_ts);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn open_family() {
    let mut s = Session::start("open,openat,openat2,creat");
    let (p1, p2, p3, p4) = (temp_path("open"), temp_path("openat"), temp_path("openat2"), temp_path("creat"));
    let (a1, a2, a3, a4) =
        (actor(&["open", &p1]), actor(&["openat", &p2]), actor(&["openat2", &p3]), actor(&["creat", &p4]));
    let wronly_creat = (libc::O_WRONLY | libc::O_CREAT) as u64;

    let e = call_on(&mut s, &a1, "open", &p1, "ret");
    assert_eq!(
        args(&e),
        &SyscallArgs::Open { dirfd: None, path: Some(p1.clone()), flags: wronly_creat, mode: 0o640, resolve: None }
    );
    let e = call_on(&mut s, &a2, "openat", &p2, "ret");
    assert_eq!(
        args(&e),
        &SyscallArgs::Open {
            dirfd: Some(AT_FDCWD),
            path: Some(p2.clone()),
            flags: wronly_creat,
            mode: 0o640,
            resolve: None
        }
    );
    assert!(ret(&e) >= 3, "openat returns an fd");
    let e = call_on(&mut s, &a3, "openat2", &p3, "ret");
    assert_eq!(
        args(&e),
        &SyscallArgs::Open {
            dirfd: Some(AT_FDCWD),
            path: Some(p3.clone()),
            flags: (libc::O_RDWR | libc::O_CREAT) as u64,
            mode: 0o600,
            resolve: Some(4)
        }
    );
    let e = call_on(&mut s, &a4, "creat", &p4, "ret");
    let SyscallArgs::Open { path, mode, .. } = args(&e) else { panic!("{e}") };
    assert_eq!((path.as_deref(), *mode), (Some(p4.as_str()), 0o644));
    for p in [p1, p2, p3, p4] {
        std::fs::remove_file(p).unwrap();
    }
}

#[test]
fn execve_family_with_full_argv() {
    let mut s = Session::start("execve,execveat");
    let a = actor(&["execve"]);
    let e = call_on(&mut s, &a, "execve", "/bin/true", "exec");
    let SyscallArgs::Exec { info, cgroups, .. } = args(&e) else { panic!("{e}") };
    let info = info.clone().expect("the kernel read the new program's credentials and executable");
    let cgroups = cgroups.clone().expect("the kernel read the new program's cgroups");
    assert_eq!(
        args(&e),
        &SyscallArgs::Exec {
            dirfd: None,
            path: Some("/bin/true".into()),
            // The file executed, with the /bin symlink resolved (as /proc/PID/exe shows it).
            exe_file: Some(std::fs::canonicalize("/bin/true").unwrap().to_string_lossy().into_owned()),
            cgroups: Some(cgroups.clone()),
            argv: vec!["true".into(), "a".into(), "b".into()],
            env: vec!["SENSOR_ACTOR=1".into(), "LANG=C".into()].into(),
            flags: 0,
            info: Some(info.clone()),
        }
    );
    // The actor's cgroups are ours.
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let line = |want: &str| {
        own.lines().find_map(|l| {
            let (_, rest) = l.split_once(':')?;
            let (controllers, path) = rest.split_once(':')?;
            (controllers == want || controllers.split(',').any(|c| c == want)).then(|| path.to_owned())
        })
    };
    assert_eq!(cgroups.unified, line(""), "the default hierarchy's path");
    assert_eq!(cgroups.v1.as_ref().map(|(_, path)| path.clone()), line("memory"), "the memory controller's path");
    // As root (CAP_DAC_OVERRIDE) on a writable file system; not a memfd, not an overlay.
    assert_eq!(info.exe_flags, sensor_abi::record::exe_flags::WRITABLE, "{info:?}");
    assert_eq!(
        (info.pgid, info.sid, info.fdlimit),
        (own_stat_field(2), own_stat_field(3), own_nofile_limit()),
        "the actor keeps our process group, session and limit"
    );
    // What /proc and stat(2) say of the same program and process.
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata("/bin/true").unwrap();
    assert_eq!(info.exe_ino, meta.ino());
    assert_eq!(info.exe_mtime_ns, meta.mtime() as u64 * 1_000_000_000 + meta.mtime_nsec() as u64);
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let cap = |key: &str| {
        let line = status.lines().find(|l| l.starts_with(key)).unwrap();
        u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
    };
    assert_eq!((info.cap_effective, info.cap_permitted), (cap("CapEff:"), cap("CapPrm:")), "the actor's are ours");
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let tty_nr: u32 = stat[stat.rfind(')').unwrap() + 2..].split(' ').nth(4).unwrap().parse().unwrap();
    assert_eq!(info.tty, tty_nr, "the actor shares our terminal (or none)");
    // The exec'd program's name is already the comm at exit.
    assert_eq!(e.comm, "true");
    let proc_exec = s.expect("proc_exec of /bin/true", |e| {
        e.pid == a.pid && matches!(&e.kind, EventKind::ProcExec { filename: Some(f), .. } if f == "/bin/true")
    });
    assert!(
        matches!(&proc_exec.kind, EventKind::ProcExec { filename: Some(f), old_tid } if f == "/bin/true" && *old_tid == a.pid)
    );

    let a = actor(&["execveat"]);
    let e = call_on(&mut s, &a, "execveat", "/bin/true", "exec");
    let SyscallArgs::Exec { dirfd, path, argv, .. } = args(&e) else { panic!("{e}") };
    assert_eq!((*dirfd, path.as_deref()), (Some(AT_FDCWD), Some("/bin/true")));
    assert_eq!(argv, &["true", "a", "b"]);

    // Run from a memfd through execveat(fd, "", AT_EMPTY_PATH): the kernel names the
    // file that ran, whatever the call named.
    let a = actor(&["memfd_exec", "/bin/true", "payload-argv0"]);
    let e = s.expect("execveat from a memfd", |e| {
        e.pid == a.pid && e.syscall().is_some_and(|sc| sc.name == "execveat" && sc.ret == 0)
    });
    let SyscallArgs::Exec { exe_file, info, .. } = args(&e) else { panic!("{e}") };
    assert_eq!(exe_file.as_deref(), Some("/memfd:payload"), "{e}");
    let flags = info.as_ref().expect("exec info").exe_flags;
    assert!(flags & sensor_abi::record::exe_flags::FROM_MEMFD != 0, "{e}");

    let missing = temp_path("no-such-program");
    let a = actor(&["execve_missing", &missing]);
    let e = call_on(&mut s, &a, "execve", &missing, "ret");
    assert_eq!(ret(&e), -(libc::ENOENT as i64));
    // A failed exec keeps the caller's memory: argv is read through its pointer array.
    let SyscallArgs::Exec { argv, .. } = args(&e) else { panic!("{e}") };
    assert_eq!(argv, &["missing", "--flag", "last arg"]);
}

#[test]
fn close_and_dup_family() {
    let mut s = Session::start("close,dup,dup2,dup3");
    let a = actor(&["fds"]);
    let fd = a.int("fd") as i32;
    let e = call(&mut s, &a, "dup", "dup");
    assert_eq!(args(&e), &SyscallArgs::Dup { oldfd: fd, newfd: None, flags: 0 });
    let e = call(&mut s, &a, "dup2", "dup2");
    assert_eq!(args(&e), &SyscallArgs::Dup { oldfd: fd, newfd: Some(100), flags: 0 });
    let e = call(&mut s, &a, "dup3", "dup3");
    assert_eq!(args(&e), &SyscallArgs::Dup { oldfd: fd, newfd: Some(101), flags: libc::O_CLOEXEC as u64 });
    let e = s.expect("close of the /dev/null fd", |e| {
        e.pid == a.pid && matches!(e.syscall().map(|s| &s.args), Some(SyscallArgs::Close { fd: f }) if *f == fd)
    });
    assert_eq!(ret(&e), 0);
}

#[test]
fn socket_family() {
    let mut s = Session::start("socket");
    let a = actor(&["socket"]);
    let e = call(&mut s, &a, "socket", "ret");
    assert_eq!(
        args(&e),
        &SyscallArgs::Socket {
            domain: libc::AF_INET6 as u32,
            kind: (libc::SOCK_DGRAM | libc::SOCK_CLOEXEC) as u32,
            protocol: 0
        }
    );
}

#[test]
fn connect_ipv4_ipv6_unix() {
    let mut s = Session::start("connect");
    let v4 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let v4_port = v4.local_addr().unwrap().port();
    let a = actor(&["connect", &v4_port.to_string()]);
    let e = call(&mut s, &a, "connect", "ret");
    assert_eq!(ret(&e), 0);
    assert_eq!(
        args(&e),
        &SyscallArgs::Connect {
            fd: a.int("fd") as i32,
            addr: Some(SockAddr::Inet { addr: Ipv4Addr::LOCALHOST, port: v4_port }),
            // The port the kernel chose for this end, as getsockname(2) tells it.
            local: Some(SockAddr::Inet { addr: Ipv4Addr::LOCALHOST, port: a.int("local_port") as u16 }),
        }
    );

    let v6 = std::net::TcpListener::bind("[::1]:0").unwrap();
    let v6_port = v6.local_addr().unwrap().port();
    let a = actor(&["connect6", &v6_port.to_string()]);
    let e = call(&mut s, &a, "connect", "ret");
    let SyscallArgs::Connect { fd, addr, local } = args(&e) else { panic!("{e}") };
    assert_eq!(
        (*fd, addr),
        (a.int("fd") as i32, &Some(SockAddr::Inet6 { addr: std::net::Ipv6Addr::LOCALHOST, port: v6_port }))
    );
    assert!(
        matches!(local, Some(SockAddr::Inet6 { addr, port }) if *addr == std::net::Ipv6Addr::LOCALHOST && *port != 0),
        "{e}"
    );

    let sock = temp_path("unix.sock");
    let _unix = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let a = actor(&["connect_unix", &sock]);
    let e = call(&mut s, &a, "connect", "ret");
    assert_eq!(
        args(&e),
        &SyscallArgs::Connect {
            fd: a.int("fd") as i32,
            addr: Some(SockAddr::Unix { path: sock.clone() }),
            local: None
        }
    );
    std::fs::remove_file(sock).unwrap();
}

#[test]
fn bind_listen_accept() {
    let mut s = Session::start("bind,listen,accept,accept4");
    let a = actor(&["server"]);
    let (fd, port, client_port) = (a.int("fd") as i32, a.int("port") as u16, a.int("client_port") as u16);
    let e = call(&mut s, &a, "bind", "bind");
    assert_eq!(args(&e), &SyscallArgs::Bind { fd, addr: Some(SockAddr::Inet { addr: Ipv4Addr::LOCALHOST, port: 0 }) });
    let e = call(&mut s, &a, "listen", "listen");
    assert_eq!(args(&e), &SyscallArgs::Listen { fd, backlog: 7 });
    let e = call(&mut s, &a, "accept4", "accept4");
    assert_eq!(
        args(&e),
        &SyscallArgs::Accept {
            fd,
            addr: Some(SockAddr::Inet { addr: Ipv4Addr::LOCALHOST, port: client_port }),
            flags: libc::SOCK_CLOEXEC as u64,
            // The listening socket's address, as the new connection's local end.
            local: Some(SockAddr::Inet { addr: Ipv4Addr::LOCALHOST, port }),
        }
    );
    assert_ne!(port, 0);
    let e = call(&mut s, &a, "accept", "accept");
    assert_eq!(
        args(&e),
        &SyscallArgs::Accept {
            fd,
            addr: None,
            flags: 0,
            local: Some(SockAddr::Inet { addr: Ipv4Addr::LOCALHOST, port })
        }
    );
}

#[test]
fn sendto_and_sendmsg_destinations() {
    let mut s = Session::start("sendto,sendmsg");
    let a = actor(&["send", "5353"]);
    let fd = a.int("fd") as i32;
    let e = call(&mut s, &a, "sendto", "sendto");
    assert_eq!(
        args(&e),
        &SyscallArgs::SendTo {
            fd,
            len: 5,
            flags: 0,
            addr: Some(SockAddr::Inet { addr: Ipv4Addr::LOCALHOST, port: 5353 })
        }
    );
    let e = call(&mut s, &a, "sendmsg", "sendmsg");
    assert_eq!(
        args(&e),
        &SyscallArgs::SendMsg {
            fd,
            addr: Some(SockAddr::Inet { addr: Ipv4Addr::LOCALHOST, port: 5354 }),
            flags: libc::MSG_DONTWAIT as u64
        }
    );
}

#[test]
fn ptrace_request_and_target() {
    let mut s = Session::start("ptrace");
    let a = actor(&["ptrace"]);
    let e = call(&mut s, &a, "ptrace", "ret");
    assert_eq!(args(&e), &SyscallArgs::Ptrace { request: libc::PTRACE_ATTACH as u64, pid: a.int("child") as i32 });
}

#[test]
fn set_id_family() {
    let mut s = Session::start("setuid,setgid,setreuid,setregid,setresuid,setresgid");
    let a = actor(&["setids"]);
    let ids = |id, real, effective, saved| SyscallArgs::SetIds { id, real, effective, saved };
    let e = call(&mut s, &a, "setresgid", "setresgid");
    assert_eq!(args(&e), &ids(None, Some(2001), Some(2002), Some(2003)));
    let e = call(&mut s, &a, "setregid", "setregid");
    assert_eq!(args(&e), &ids(None, Some(-1), Some(2004), None));
    let e = call(&mut s, &a, "setgid", "setgid");
    assert_eq!(args(&e), &ids(Some(2005), None, None, None));
    let e = call(&mut s, &a, "setreuid", "setreuid");
    assert_eq!(args(&e), &ids(None, Some(-1), Some(0), None));
    let e = call(&mut s, &a, "setresuid", "setresuid");
    assert_eq!(args(&e), &ids(None, Some(1001), Some(1002), Some(1003)));
    let e = call(&mut s, &a, "setuid", "setuid");
    assert_eq!(args(&e), &ids(Some(1001), None, None, None));
    // The header's ids follow the process: the last call ran with real uid 1001.
    assert_eq!(e.uid, 1001);
}

#[test]
fn capset_sets() {
    let mut s = Session::start("capset");
    let a = actor(&["capset"]);
    let e = call(&mut s, &a, "capset", "ret");
    assert_eq!(ret(&e), 0);
    let SyscallArgs::Capset { pid, effective, permitted, inheritable } = args(&e) else { panic!("{e}") };
    assert_eq!(*pid, Some(0));
    assert_eq!(*effective, Some(a.int("effective") as u64));
    assert_eq!(*permitted, Some(a.int("permitted") as u64));
    assert_eq!(*inheritable, Some(0));
}

#[test]
fn setns_and_unshare() {
    let mut s = Session::start("setns,unshare");
    let a = actor(&["namespaces"]);
    let e = call(&mut s, &a, "setns", "setns");
    assert_eq!(args(&e), &SyscallArgs::Setns { fd: a.int("fd") as i32, nstype: libc::CLONE_NEWUTS as u64 });
    let e = call(&mut s, &a, "unshare", "unshare");
    assert_eq!(args(&e), &SyscallArgs::Unshare { flags: libc::CLONE_NEWUTS as u64 });
}

#[test]
fn clone_family_and_process_lifecycle() {
    let mut s = Session::start("clone,clone3,fork,vfork");
    let a = actor(&["clones"]);
    for (name, flags) in [
        ("clone", Some(libc::SIGCHLD as u64)),
        ("fork", None),
        ("vfork", None),
        ("clone3", Some(libc::CLONE_PARENT_SETTID as u64)),
    ] {
        let child = a.int(name);
        let e = call(&mut s, &a, name, name);
        assert_eq!(args(&e), &SyscallArgs::Clone { flags }, "{name}");
        // The child returns from the same call with 0.
        let c = s.expect(&format!("{name} in the child"), |e| {
            e.pid as i64 == child && e.syscall().is_some_and(|sc| sc.name == name)
        });
        assert_eq!((ret(&c), c.ppid), (0, a.pid), "{name} child");
        let f = s.expect(
            &format!("fork event for {name}"),
            |e| matches!(e.kind, EventKind::ProcFork { child_pid, .. } if child_pid as i64 == child),
        );
        assert_eq!(f.pid, a.pid);
        s.expect(&format!("exit of the {name} child"), |e| {
            e.pid as i64 == child && matches!(e.kind, EventKind::ProcExit { exit_code: 0, group_dead: true })
        });
    }
}

#[test]
fn mount_and_umount() {
    let mut s = Session::start("mount,umount2");
    let dir = temp_path("mnt");
    let a = actor(&["mount", &dir]);
    let e = call(&mut s, &a, "mount", "mount");
    assert_eq!(ret(&e), 0);
    assert_eq!(
        args(&e),
        &SyscallArgs::Mount {
            source: Some("sensor-tmpfs".into()),
            target: Some(dir.clone()),
            fstype: Some("tmpfs".into()),
            flags: libc::MS_NOSUID
        }
    );
    let e = call(&mut s, &a, "umount2", "umount2");
    assert_eq!(args(&e), &SyscallArgs::Umount { target: Some(dir), flags: libc::MNT_DETACH as u64 });
}

#[test]
fn chmod_and_chown_families() {
    let mut s = Session::start("chmod,fchmod,fchmodat,chown,fchown,fchownat");
    let p = temp_path("perms");
    let a = actor(&["perms", &p]);
    let fd = Some(a.int("fd") as i32);
    let chmod = |dirfd, path: Option<&str>, fd, mode| SyscallArgs::Chmod {
        dirfd,
        path: path.map(Into::into),
        fd,
        mode,
        flags: 0,
    };
    assert_eq!(args(&call(&mut s, &a, "chmod", "chmod")), &chmod(None, Some(&p), None, 0o601));
    assert_eq!(args(&call(&mut s, &a, "fchmod", "fchmod")), &chmod(None, None, fd, 0o602));
    assert_eq!(args(&call(&mut s, &a, "fchmodat", "fchmodat")), &chmod(Some(AT_FDCWD), Some(&p), None, 0o603));
    let chown = |dirfd, path: Option<&str>, fd, uid, gid, flags| SyscallArgs::Chown {
        dirfd,
        path: path.map(Into::into),
        fd,
        uid,
        gid,
        flags,
    };
    assert_eq!(args(&call(&mut s, &a, "chown", "chown")), &chown(None, Some(&p), None, 1000, 1001, 0));
    assert_eq!(args(&call(&mut s, &a, "fchown", "fchown")), &chown(None, None, fd, 1002, -1, 0));
    assert_eq!(
        args(&call(&mut s, &a, "fchownat", "fchownat")),
        &chown(Some(AT_FDCWD), Some(&p), None, 1003, 1004, libc::AT_SYMLINK_NOFOLLOW as u64)
    );
}

#[test]
fn link_rename_unlink_mkdir_families() {
    let mut s =
        Session::start("link,linkat,symlink,symlinkat,rename,renameat,renameat2,unlink,unlinkat,rmdir,mkdir,mkdirat");
    let base = temp_path("links");
    let a = actor(&["links", &base]);
    let p = |s: &str| Some(format!("{base}-{s}"));
    let link = |olddirfd, old: &str, newdirfd, new: &str, flags| SyscallArgs::Link {
        olddirfd,
        oldpath: p(old),
        newdirfd,
        newpath: p(new),
        flags,
    };
    let cwd = Some(AT_FDCWD);
    assert_eq!(args(&call(&mut s, &a, "link", "link")), &link(None, "a", None, "b", 0));
    assert_eq!(args(&call(&mut s, &a, "linkat", "linkat")), &link(cwd, "a", cwd, "c", 0));
    assert_eq!(args(&call(&mut s, &a, "symlink", "symlink")), &link(None, "a", None, "d", 0));
    assert_eq!(args(&call(&mut s, &a, "symlinkat", "symlinkat")), &link(None, "a", cwd, "e", 0));
    assert_eq!(args(&call(&mut s, &a, "rename", "rename")), &link(None, "b", None, "f", 0));
    assert_eq!(args(&call(&mut s, &a, "renameat", "renameat")), &link(cwd, "c", cwd, "g", 0));
    assert_eq!(
        args(&call(&mut s, &a, "renameat2", "renameat2")),
        &link(cwd, "d", cwd, "h", libc::RENAME_NOREPLACE as u64)
    );
    assert_eq!(
        args(&call(&mut s, &a, "unlink", "unlink")),
        &SyscallArgs::Unlink { dirfd: None, path: p("f"), flags: 0 }
    );
    assert_eq!(
        args(&call(&mut s, &a, "unlinkat", "unlinkat")),
        &SyscallArgs::Unlink { dirfd: cwd, path: p("g"), flags: 0 }
    );
    assert_eq!(
        args(&call(&mut s, &a, "mkdir", "mkdir")),
        &SyscallArgs::Mkdir { dirfd: None, path: p("dir1"), mode: 0o750 }
    );
    assert_eq!(
        args(&call(&mut s, &a, "mkdirat", "mkdirat")),
        &SyscallArgs::Mkdir { dirfd: cwd, path: p("dir2"), mode: 0o700 }
    );
    let e = s.expect("unlinkat of the directory", |e| {
        e.pid == a.pid && matches!(e.syscall().map(|s| &s.args), Some(SyscallArgs::Unlink { flags, .. }) if *flags != 0)
    });
    assert_eq!(args(&e), &SyscallArgs::Unlink { dirfd: cwd, path: p("dir2"), flags: libc::AT_REMOVEDIR as u64 });
    assert_eq!(ret(&e), a.int("unlinkat_dir"));
    assert_eq!(
        args(&call(&mut s, &a, "rmdir", "rmdir")),
        &SyscallArgs::Unlink { dirfd: None, path: p("dir1"), flags: 0 }
    );
}

#[test]
fn module_loading_attempts() {
    let mut s = Session::start("init_module,finit_module");
    let a = actor(&["modules"]);
    let e = call(&mut s, &a, "init_module", "init_module");
    assert!(ret(&e) < 0, "a zeroed image is refused");
    assert_eq!(
        args(&e),
        &SyscallArgs::Module { fd: None, len: Some(16), params: Some("sensor_test=1".into()), flags: 0 }
    );
    let e = call(&mut s, &a, "finit_module", "finit_module");
    assert_eq!(
        args(&e),
        &SyscallArgs::Module {
            fd: Some(a.int("fd") as i32),
            len: None,
            params: Some("sensor_test=1".into()),
            flags: 0
        }
    );
}

#[test]
fn memfd_prctl_signals_bpf() {
    let mut s = Session::start("memfd_create,prctl,kill,tkill,tgkill,bpf");
    let a = actor(&["memfd"]);
    let e = call(&mut s, &a, "memfd_create", "ret");
    assert_eq!(
        args(&e),
        &SyscallArgs::MemfdCreate { name: Some("sensor-memfd".into()), flags: libc::MFD_CLOEXEC as u64 }
    );

    let a = actor(&["prctl"]);
    let e = call(&mut s, &a, "prctl", "ret");
    assert_eq!(args(&e), &SyscallArgs::Prctl { option: libc::PR_SET_DUMPABLE as u64, args: [0; 4] });

    let a = actor(&["signals"]);
    let (pid, tid) = (Some(a.pid as i32), Some(a.int("tid") as i32));
    assert_eq!(args(&call(&mut s, &a, "kill", "kill")), &SyscallArgs::Kill { pid, tid: None, sig: 0 });
    assert_eq!(args(&call(&mut s, &a, "tkill", "tkill")), &SyscallArgs::Kill { pid: None, tid, sig: 0 });
    assert_eq!(args(&call(&mut s, &a, "tgkill", "tgkill")), &SyscallArgs::Kill { pid, tid, sig: 0 });

    let a = actor(&["bpf"]);
    let e = call(&mut s, &a, "bpf", "ret");
    assert_eq!(args(&e), &SyscallArgs::Bpf { cmd: 0 });
}

#[test]
fn mmap_and_mprotect_only_when_executable() {
    let mut s = Session::start("mmap,mprotect");
    let a = actor(&["mmap"]);
    let prot_rx = (libc::PROT_READ | libc::PROT_EXEC) as u64;
    let addr = a.int("mmap") as u64;
    let e = call(&mut s, &a, "mmap", "mmap");
    assert_eq!(
        args(&e),
        &SyscallArgs::Mmap {
            addr,
            len: 12288,
            prot: prot_rx,
            flags: Some((libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64),
            fd: Some(-1)
        }
    );
    let e = call(&mut s, &a, "mprotect", "mprotect");
    assert_eq!(
        args(&e),
        &SyscallArgs::Mmap {
            addr,
            len: 4096,
            prot: (libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC) as u64,
            flags: None,
            fd: None
        }
    );
    // Wait for the actor's exit, then check that nothing non-executable was captured.
    s.expect("actor exit", |e| e.pid == a.pid && matches!(e.kind, EventKind::ProcExit { .. }));
    let rest = s.collect_for(Duration::from_millis(200));
    let plain: Vec<_> = rest
        .iter()
        .filter(|e| e.pid == a.pid && matches!(e.syscall().map(|s| &s.args), Some(SyscallArgs::Mmap { prot, .. }) if prot & libc::PROT_EXEC as u64 == 0))
        .collect();
    assert!(plain.is_empty(), "non-executable mappings were captured: {plain:?}");
}

#[test]
fn uninteresting_syscalls_are_not_captured() {
    let mut s = Session::start("openat");
    let a = actor(&["fds"]);
    s.expect("actor exit", |e| e.pid == a.pid && matches!(e.kind, EventKind::ProcExit { .. }));
    let events = s.collect_for(Duration::from_millis(300));
    let names: std::collections::BTreeSet<_> =
        events.iter().filter(|e| e.pid == a.pid).filter_map(|e| e.syscall()).map(|s| s.name.clone()).collect();
    assert!(names.iter().all(|n| n == "openat"), "only openat was asked for, got {names:?}");
}

#[test]
fn raw_tracepoint_fallback_captures_the_same() {
    let cfg = CaptureConfig { mode: ProbeMode::Raw, ..CaptureConfig::default() };
    let mut s =
        Session::with_config(CaptureConfig { syscalls: vec![sensor_abi::syscalls::by_name("openat").unwrap()], ..cfg });
    let path = temp_path("raw");
    let a = actor(&["openat", &path]);
    let e = call_on(&mut s, &a, "openat", &path, "ret");
    assert!(ret(&e) >= 3);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn lost_events_are_counted_per_cpu_and_capture_goes_on() {
    // One tiny ring, woken rarely, and a burst far larger than it holds.
    let cfg = CaptureConfig {
        syscalls: vec![
            sensor_abi::syscalls::by_name("openat").unwrap(),
            sensor_abi::syscalls::by_name("close").unwrap(),
        ],
        ring_bytes: 4096,
        cpus_per_ring: 0,
        wakeup_bytes: 1 << 20,
        poll_interval: Duration::from_millis(20),
        ..CaptureConfig::default()
    };
    let mut s = Session::with_config(cfg);
    let a = actor(&["loop", "20000"]);
    let counters = s.counters();
    let lost: u64 = counters.iter().map(|c| c.lost).sum();
    let emitted: u64 = counters.iter().map(|c| c.emitted).sum();
    assert!(lost > 0, "a 4 KiB ring cannot hold 40000 records: {counters:?}");
    assert!(emitted > 0, "{counters:?}");
    // Loss is attributed to CPUs: the per-CPU entries add up and at least one has some.
    assert!(counters.iter().any(|c| c.lost > 0));
    // Capture goes on after the burst: records written after it still arrive. (Other
    // tests' processes share the tiny ring, so which ones survive is not predictable.)
    let burst_end = boot_time_ns();
    actor(&["fds"]);
    s.expect("any record written after the burst", |e| e.ts > burst_end);
    assert_eq!(a.int("n"), 20000);
}

#[test]
fn namespace_view_inside_a_new_pid_namespace() {
    let mut s = Session::start("openat");
    let path = temp_path("pidns");
    // The actor runs as pid 1 of a fresh pid namespace, as a container's init would.
    let out = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--kill-child"])
        .arg(sensor_tests::actor_path())
        .args(["openat", &path])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(r#""pid":1"#), "the actor is pid 1 inside");
    let e = s.expect(
        &format!("openat of {path}"),
        |e| matches!(e.syscall().map(|s| &s.args), Some(SyscallArgs::Open { path: Some(p), .. }) if *p == path),
    );
    assert_eq!((e.ns_pid, e.ns_tid), (1, 1));
    assert_ne!(e.pid, 1, "the host view is the host pid");
    let host_ns = std::fs::read_link("/proc/self/ns/pid").unwrap().to_string_lossy().into_owned();
    assert_ne!(host_ns, format!("pid:[{}]", e.pid_ns), "a new pid namespace");
    std::fs::remove_file(path).unwrap();
}

#[test]
fn long_paths_and_argv_are_bounded_and_marked_truncated() {
    let mut s = Session::start("openat,execve");
    let a = actor(&["long_path"]);
    let e = s.expect("openat of the long path", |e| {
        e.pid == a.pid && matches!(e.syscall().map(|s| &s.args), Some(SyscallArgs::Open { path: Some(p), .. }) if p.starts_with("a/a/"))
    });
    assert_eq!(ret(&e), -(libc::ENAMETOOLONG as i64));
    let sc = e.syscall().unwrap();
    assert!(sc.truncated, "{e}");
    let SyscallArgs::Open { path: Some(path), .. } = &sc.args else { panic!("{e}") };
    assert_eq!(path.len(), sensor_abi::record::PATH_MAX - 1, "cut at PATH_MAX, NUL excluded");

    let a = actor(&["long_argv"]);
    let e = call_on(&mut s, &a, "execve", "/bin/true", "exec");
    let sc = e.syscall().unwrap();
    assert!(sc.truncated, "{e}");
    let SyscallArgs::Exec { argv, .. } = &sc.args else { panic!("{e}") };
    assert_eq!(argv[0], "/bin/true");
    assert!(argv[1].starts_with("000xxx") && argv.len() < 101, "{} args kept", argv.len());
    let bytes: usize = argv.iter().map(|a| a.len() + 1).sum();
    assert!(bytes <= sensor_abi::record::ARGV_MAX + 1, "{bytes} bytes kept");
}

#[test]
fn ia32_calls_are_translated_and_the_rest_counted() {
    let mut s = Session::start("open,close,socket,connect,execve");
    let path = temp_path("ia32");
    std::fs::write(&path, "secret").unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let before: u64 = s.counters().iter().map(|c| c.compat_untranslated).sum();
    let a = actor(&["ia32", &path, &port.to_string()]);
    // open (ia32 5) is x86_64's open, with its path read from the 32-bit pointer.
    let e = call_on(&mut s, &a, "open", &path, "open");
    assert!(e.syscall().unwrap().compat, "marked as an ia32 call: {e}");
    assert_eq!(
        args(&e),
        &SyscallArgs::Open { dirfd: None, path: Some(path.clone()), flags: 0, mode: 0, resolve: None }
    );
    let fd = a.int("open") as i32;
    // read (ia32 3) is not captured; it must not show as x86_64's 3, close. The ia32
    // close (6) is.
    let read = a.int("read");
    assert_eq!(read, 6, "the read worked");
    let e =
        s.expect("the ia32 close", |e| e.pid == a.pid && e.syscall().is_some_and(|sc| sc.compat && sc.name == "close"));
    assert_eq!((args(&e), ret(&e)), (&SyscallArgs::Close { fd }, 0));
    // socketcall (ia32 102) with SYS_SOCKET and SYS_CONNECT, its arguments in memory.
    let e = call(&mut s, &a, "socket", "socket");
    assert!(e.syscall().unwrap().compat);
    assert_eq!(
        args(&e),
        &SyscallArgs::Socket { domain: libc::AF_INET as u32, kind: libc::SOCK_STREAM as u32, protocol: 0 }
    );
    let e = call(&mut s, &a, "connect", "connect");
    assert_eq!(
        args(&e),
        &SyscallArgs::Connect {
            fd: a.int("socket") as i32,
            addr: Some(SockAddr::Inet { addr: Ipv4Addr::LOCALHOST, port }),
            local: Some(SockAddr::Inet { addr: Ipv4Addr::LOCALHOST, port: a.int("local_port") as u16 }),
        }
    );
    s.expect("actor exit", |e| e.pid == a.pid && matches!(e.kind, EventKind::ProcExit { .. }));
    let closes: Vec<_> = s
        .collect_for(Duration::from_millis(300))
        .into_iter()
        .filter(|e| e.pid == a.pid && e.syscall().is_some_and(|sc| sc.name == "close" && sc.ret == read))
        .collect();
    assert!(closes.is_empty(), "the ia32 read was decoded as a close: {closes:?}");
    let after: u64 = s.counters().iter().map(|c| c.compat_untranslated).sum();
    assert!(after > before, "the ia32 read is counted as untranslated ({before} -> {after})");

    // execve (ia32 11, munmap in x86_64 numbering), with 32-bit argv pointers. Loading a
    // 64-bit program ends the task's ia32 mode, and the kernel then reports the call as
    // x86_64's execve itself.
    let a = actor(&["ia32_exec"]);
    let e = s.expect("ia32 execve", |e| {
        e.pid == a.pid
            && matches!(e.syscall().map(|sc| &sc.args), Some(SyscallArgs::Exec { argv, .. }) if argv.len() == 2 && argv[1] == "ia32")
    });
    assert_eq!(ret(&e), 0, "{e}");
    let SyscallArgs::Exec { path: exec_path, exe_file, argv, .. } = args(&e) else { panic!("{e}") };
    assert_eq!(exec_path.as_deref(), Some("/bin/true"));
    assert_eq!(exe_file.as_deref(), Some(std::fs::canonicalize("/bin/true").unwrap().to_str().unwrap()));
    assert_eq!(argv, &["true", "ia32"]);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn working_directory_and_fd_copies() {
    let mut s = Session::start("chdir,fchdir,fcntl,openat");
    let a = actor(&["cwd", "/etc", "/usr", "hostname"]);
    let e = call(&mut s, &a, "chdir", "chdir");
    assert_eq!(args(&e), &SyscallArgs::Chdir { path: Some("/etc".into()), fd: None });
    let e = call(&mut s, &a, "fchdir", "fchdir");
    assert_eq!(args(&e), &SyscallArgs::Chdir { path: None, fd: Some(a.int("dirfd") as i32) });
    let e = call(&mut s, &a, "fcntl", "dupfd");
    assert_eq!(args(&e), &SyscallArgs::Fcntl { fd: a.int("open2") as i32, cmd: libc::F_DUPFD_CLOEXEC as u64 });
    s.expect("actor exit", |e| e.pid == a.pid && matches!(e.kind, EventKind::ProcExit { .. }));
    let getfl: Vec<_> = s
        .collect_for(Duration::from_millis(300))
        .into_iter()
        .filter(|e| e.pid == a.pid && e.syscall().is_some_and(|sc| sc.name == "fcntl"))
        .collect();
    assert!(getfl.is_empty(), "fcntl(F_GETFL) makes no fd and is not captured: {getfl:?}");
}

#[test]
fn receive_calls_and_userfaultfd() {
    let mut s = Session::start("recvfrom,recvmsg,userfaultfd");
    let a = actor(&["recv"]);
    let me = Some(SockAddr::Inet { addr: Ipv4Addr::LOCALHOST, port: a.int("port") as u16 });
    let fd = a.int("fd") as i32;
    let e = call(&mut s, &a, "recvfrom", "recvfrom");
    assert_eq!(args(&e), &SyscallArgs::RecvFrom { fd, len: 8, flags: 0, addr: me.clone() });
    let e = call(&mut s, &a, "recvmsg", "recvmsg");
    assert_eq!(args(&e), &SyscallArgs::RecvMsg { fd, addr: me, flags: 0 });
    let a = actor(&["userfaultfd"]);
    let e = s.expect_syscall(a.pid, "userfaultfd");
    assert_eq!(args(&e), &SyscallArgs::Userfaultfd { flags: (libc::O_CLOEXEC | libc::O_NONBLOCK) as u64 });
}

#[test]
fn sessions_and_process_groups() {
    let mut s = Session::start("setsid,setpgid");
    let a = actor(&["session"]);
    let child = a.int("child") as u32;
    let e = s.expect_syscall(child, "setsid");
    assert_eq!((args(&e), ret(&e)), (&SyscallArgs::Setsid, i64::from(child)));
    let e = s.expect_syscall(child, "setpgid");
    assert_eq!(args(&e), &SyscallArgs::Setpgid { pid: 0, pgid: 0 });
}

#[test]
fn a_path_unreadable_at_enter_is_read_at_exit() {
    let mut s = Session::start("openat");
    // The path's bytes, in a file the actor maps without touching.
    let target = temp_path("unresident-target");
    std::fs::write(&target, "x").unwrap();
    let holder = temp_path("unresident-path");
    std::fs::write(&holder, format!("{target}\0")).unwrap();
    let a = actor(&["unresident_path", &holder]);
    let e = call_on(&mut s, &a, "openat", &target, "ret");
    let sc = e.syscall().unwrap();
    assert!(sc.reread && !sc.enter_missing, "read again at exit: {e}");
    std::fs::remove_file(target).unwrap();
    std::fs::remove_file(holder).unwrap();
}

#[test]
fn cgroup_moves_name_the_task_and_its_new_cgroup() {
    let mut s = Session::start("");
    // A v1 memory hierarchy where there is one (hybrid hosts), else the unified one.
    let (root, controller) = if std::path::Path::new("/sys/fs/cgroup/memory/cgroup.procs").exists() {
        ("/sys/fs/cgroup/memory", "memory")
    } else {
        ("/sys/fs/cgroup", "")
    };
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let hierarchy: u32 = own
        .lines()
        .find_map(|l| {
            let (id, rest) = l.split_once(':')?;
            let (controllers, _) = rest.split_once(':')?;
            (controllers.split(',').any(|c| c == controller) || controllers == controller).then(|| id.parse().ok())?
        })
        .expect("this process's cgroup in that hierarchy");
    let name = format!("sensor-attach-{}", std::process::id());
    let dir = format!("{root}/{name}");
    std::fs::create_dir(&dir).unwrap();
    let mut sleeper = std::process::Command::new("sleep").arg("5").spawn().unwrap();
    std::fs::write(format!("{dir}/cgroup.procs"), sleeper.id().to_string()).unwrap();
    let pid = sleeper.id();
    let e = s.expect(
        "the move of the sleeper",
        |e| matches!(&e.kind, EventKind::CgroupAttach { task_pid, .. } if *task_pid == pid),
    );
    let result = e.kind.clone();
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    std::fs::remove_dir(&dir).unwrap();
    assert_eq!(
        result,
        EventKind::CgroupAttach { task_pid: pid, task_tid: pid, hierarchy, path: Some(format!("/{name}")) }
    );
    assert_eq!(e.pid, std::process::id(), "the mover is the test, which wrote cgroup.procs");
}

/// The in-kernel prefilter keeps back the opens its filter does not want and the closes of
/// their fds, sends every path it cannot compare as rules see it and every directory, and
/// names a kept-back fd with the first event that uses it, in a forked child too.
#[test]
fn prefilter_keeps_back_unwanted_opens_and_names_their_fds_when_used() {
    use sensor::{
        event::FdFile,
        rules::{
            Prefilter,
            prefilter::{OpenFilter, PathPattern},
        },
    };
    use sensor_abi::prefilter::open_class;

    let dir = temp_path("prefilter");
    std::fs::create_dir(&dir).unwrap();
    for name in ["quiet", "quiet2", "quiet3", "watched"] {
        std::fs::write(format!("{dir}/{name}"), b"x").unwrap();
    }
    let watched = format!("{dir}/watched");
    let open =
        OpenFilter { paths: [(PathPattern::Exact(watched.clone()), open_class::ALL)].into(), ..OpenFilter::default() };
    let syscalls = ["openat", "close", "mmap", "fchmod"].map(|n| sensor_abi::syscalls::by_name(n).unwrap());
    let cfg = CaptureConfig {
        syscalls: syscalls.to_vec(),
        prefilter: Prefilter { open: Some(open), close: true, open_off_reason: None },
        // No fallback: the BTF programs must pass the verifier with the prefilter in them.
        mode: ProbeMode::Btf,
        ..CaptureConfig::default()
    };
    let mut s = Session::with_config(cfg);
    let a = actor(&["prefilter", &dir]);
    let opened = |s: &mut Session, path: &str, key: &str| call_on(s, &a, "openat", path, key);
    opened(&mut s, &watched, "watched_fd");
    opened(&mut s, &format!("{dir}//quiet"), "slashes_fd");
    let parent = dir.rsplit('/').next().unwrap();
    opened(&mut s, &format!("{dir}/../{parent}/quiet"), "dotdot_fd");
    opened(&mut s, &dir, "dir_fd");
    let used = a.int("used_fd") as i32;
    let e = call(&mut s, &a, "mmap", "mmap");
    let sc = e.syscall().unwrap();
    assert_eq!(sc.fd_file, Some(FdFile { fd: used, path: format!("{dir}/quiet") }), "{e}");
    // Named by the mmap, the fd is known from then on: its close is sent.
    s.expect("close of the used fd", |e| {
        e.pid == a.pid && matches!(e.syscall().map(|s| &s.args), Some(SyscallArgs::Close { fd }) if *fd == used)
    });
    let child = a.int("child") as u32;
    let e = s.expect_syscall(child, "fchmod");
    let fd_file = e.syscall().unwrap().fd_file.clone();
    assert_eq!(fd_file, Some(FdFile { fd: a.int("inherited_fd") as i32, path: format!("{dir}/quiet3") }), "{e}");
    s.expect("actor exit", |e| e.pid == a.pid && matches!(e.kind, EventKind::ProcExit { .. }));
    let rest = s.collect_for(Duration::from_millis(300));
    let unused = a.int("unused_fd") as i32;
    let kept_back: Vec<&Event> = rest
        .iter()
        .filter(|e| e.pid == a.pid)
        .filter(|e| match e.syscall().map(|s| &s.args) {
            Some(SyscallArgs::Open { path: Some(p), .. }) => p.starts_with(&format!("{dir}/quiet")),
            Some(SyscallArgs::Close { fd }) => *fd == unused,
            _ => false,
        })
        .collect();
    assert!(kept_back.is_empty(), "opens or closes the prefilter should keep back were sent: {kept_back:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// A rule on successful writes below a directory that also names `creat` (the built-in rules'
/// way): the kernel gives `creat` every class, so the prefilter compiled from that rule sends
/// a `creat` there and keeps back a read of a file there.
#[test]
fn prefilter_from_a_rule_naming_creat_sends_the_creat_and_keeps_back_reads() {
    use sensor::rules::{Engine, EngineOptions, RuleSet};

    let dir = temp_path("prefilter-creat");
    std::fs::create_dir(&dir).unwrap();
    let existing = format!("{dir}/existing");
    std::fs::write(&existing, b"x").unwrap();
    let mut set = RuleSet::default();
    set.load_str(
        "creat.yaml",
        &format!(
            "- rule: write below the test directory\n  desc: d\n  condition: >\n    \
             ((evt.type in (open, openat, openat2) and evt.is_open_write = true) or evt.type = creat)\n    \
             and evt.res = SUCCESS and fd.name startswith {dir}/\n  output: \"%fd.name\"\n  priority: WARNING\n"
        ),
    );
    let (engine, diags) = Engine::build(&set, EngineOptions::default());
    let prefilter = engine.unwrap_or_else(|| panic!("{diags:?}")).prefilter();
    assert!(prefilter.open.is_some(), "opens are filtered: {prefilter:?}");
    let syscalls = ["openat", "creat", "close"].map(|n| sensor_abi::syscalls::by_name(n).unwrap());
    let cfg = CaptureConfig { syscalls: syscalls.to_vec(), prefilter, ..CaptureConfig::default() };
    let mut s = Session::with_config(cfg);
    // A read of a file below the directory (`cat` opens it for reading), then a `creat` there.
    let cat = std::process::Command::new("cat").arg(&existing).output().unwrap();
    assert!(cat.status.success());
    let created = format!("{dir}/created");
    let a = actor(&["creat", &created]);
    call_on(&mut s, &a, "creat", &created, "ret");
    let rest = s.collect_for(Duration::from_millis(300));
    let reads: Vec<&Event> = rest
        .iter()
        .filter(
            |e| matches!(e.syscall().map(|s| &s.args), Some(SyscallArgs::Open { path: Some(p), .. }) if *p == existing),
        )
        .collect();
    assert!(reads.is_empty(), "the read below the directory was sent: {reads:?}");
    std::fs::remove_dir_all(dir).unwrap();
}
