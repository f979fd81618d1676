//! Performs one syscall scenario with known arguments, through raw `syscall(2)` so the
//! exact syscall is made (libc wrappers often use a sibling: `open` is `openat`), and
//! prints a JSON object: its pid and each call's result, named.
//!
//! Usage: `actor SCENARIO [ARGS...]`; the scenarios are the arms of `main`'s match.

use std::{ffi::CString, io::Write as _, ptr};

use libc::{c_long, c_void};
use serde_json::{Map, Value, json};

/// Results reported so far.
struct Report(Map<String, Value>);

impl Report {
    /// Records `r` (a raw `syscall()` result) as `-errno` or the value, like the kernel.
    fn sys(&mut self, key: &str, r: c_long) -> i64 {
        let v = if r == -1 { -(std::io::Error::last_os_error().raw_os_error().unwrap_or(0) as i64) } else { r };
        self.0.insert(key.into(), json!(v));
        v
    }
    fn put(&mut self, key: &str, v: impl Into<Value>) {
        self.0.insert(key.into(), v.into());
    }
    fn print(mut self) {
        // SAFETY: getpid has no preconditions.
        self.0.insert("pid".into(), json!(unsafe { libc::getpid() }));
        let mut out = std::io::stdout();
        writeln!(out, "{}", Value::Object(self.0)).unwrap();
        out.flush().unwrap();
    }
}

fn cstr(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// A null-terminated `char *[]` for exec.
fn argv(args: &[&CString]) -> Vec<*const libc::c_char> {
    args.iter().map(|a| a.as_ptr()).chain([ptr::null()]).collect()
}

use sensor_tests::{SOCKADDR_IN_LEN as SIN_LEN, loopback_sockaddr as sockaddr_in};

fn port_of(fd: i32) -> u16 {
    let mut addr = sockaddr_in(0);
    let mut len = SIN_LEN;
    // SAFETY: getsockname writes at most `len` bytes into `addr`.
    unsafe { libc::getsockname(fd, &mut addr as *mut _ as *mut libc::sockaddr, &mut len) };
    u16::from_be(addr.sin_port)
}

/// `vfork` whose child exits at once, in assembly: the child shares this stack, so it
/// must not return through any Rust frame. Returns the parent's result.
fn vfork_and_exit_child() -> c_long {
    let ret: c_long;
    // SAFETY: the child runs only the two instructions before `syscall` (exit) and never
    // touches memory; the parent resumes after label 2 with the child's pid in rax.
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "mov eax, 60",
            "xor edi, edi",
            "syscall",
            "2:",
            inlateout("rax") libc::SYS_vfork => ret,
            out("rcx") _, out("r11") _, out("rdi") _,
        );
    }
    if ret < 0 {
        // The raw syscall returns -errno; report it through errno like syscall(2) does.
        // SAFETY: errno location is thread-local and valid.
        unsafe { *libc::__errno_location() = -ret as i32 };
        return -1;
    }
    ret
}

/// A syscall through the 32-bit gate (`int $0x80`) from this 64-bit program: ia32 number
/// `nr` and up to five arguments in ebx, ecx, edx, esi, edi. Pointers must be below 4 GiB
/// ([`low_memory`]). Returns the raw result (`-errno` on failure).
fn int80(nr: u32, a: [u32; 5]) -> i64 {
    let ret: u64;
    // SAFETY: the kernel reads only the memory the arguments point at; rbx is reserved by
    // LLVM, so the first argument is swapped into it around the call.
    unsafe {
        std::arch::asm!(
            "xchg {a0:r}, rbx",
            "int 0x80",
            "xchg {a0:r}, rbx",
            a0 = inout(reg) u64::from(a[0]) => _,
            inlateout("rax") u64::from(nr) => ret,
            in("rcx") u64::from(a[1]),
            in("rdx") u64::from(a[2]),
            in("rsi") u64::from(a[3]),
            in("rdi") u64::from(a[4]),
        );
    }
    // The 32-bit result, sign-extended.
    ret as u32 as i32 as i64
}

/// A page below 4 GiB (`MAP_32BIT`) holding `bytes` at its start, for 32-bit pointers.
fn low_memory(bytes: &[u8]) -> *mut u8 {
    assert!(bytes.len() <= 4096);
    // SAFETY: a fresh anonymous mapping, written within its length.
    unsafe {
        let page = libc::mmap(
            ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT,
            -1,
            0,
        );
        assert_ne!(page, libc::MAP_FAILED, "mmap MAP_32BIT: {}", std::io::Error::last_os_error());
        ptr::copy_nonoverlapping(bytes.as_ptr(), page.cast(), bytes.len());
        page.cast()
    }
}

/// The 32-bit address of `p` (from [`low_memory`]).
fn low(p: *const u8) -> u32 {
    u32::try_from(p as usize).expect("a MAP_32BIT address")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_else(|| panic!("scenario needs argument {i}"));
    let mut r = Report(Map::new());
    // SAFETY (all blocks below): raw syscalls with valid pointers to live locals; each
    // scenario runs in this short-lived process only.
    unsafe {
        match arg(0).as_str() {
            "open" => {
                let p = cstr(&arg(1));
                r.sys("ret", libc::syscall(libc::SYS_open, p.as_ptr(), libc::O_WRONLY | libc::O_CREAT, 0o640));
            }
            "openat" => {
                let p = cstr(&arg(1));
                let fd =
                    libc::syscall(libc::SYS_openat, libc::AT_FDCWD, p.as_ptr(), libc::O_WRONLY | libc::O_CREAT, 0o640);
                r.sys("ret", fd);
            }
            "openat2" => {
                let p = cstr(&arg(1));
                // struct open_how { flags, mode, resolve }; resolve 4 = RESOLVE_NO_SYMLINKS.
                let how: [u64; 3] = [(libc::O_RDWR | libc::O_CREAT) as u64, 0o600, 4];
                r.sys("ret", libc::syscall(libc::SYS_openat2, libc::AT_FDCWD, p.as_ptr(), &how, size_of_val(&how)));
            }
            "creat" => {
                let p = cstr(&arg(1));
                r.sys("ret", libc::syscall(libc::SYS_creat, p.as_ptr(), 0o644));
            }
            "execve" | "execveat" => {
                let (exe, a, b) = (cstr("/bin/true"), cstr("a"), cstr("b"));
                let name = cstr("true");
                let av = argv(&[&name, &a, &b]);
                let (e1, e2) = (cstr("SENSOR_ACTOR=1"), cstr("LANG=C"));
                let env = argv(&[&e1, &e2]);
                r.put("exec", 0);
                r.print();
                if arg(0) == "execve" {
                    libc::syscall(libc::SYS_execve, exe.as_ptr(), av.as_ptr(), env.as_ptr());
                } else {
                    libc::syscall(libc::SYS_execveat, libc::AT_FDCWD, exe.as_ptr(), av.as_ptr(), env.as_ptr(), 0);
                }
                panic!("exec failed: {}", std::io::Error::last_os_error());
            }
            "long_path" => {
                // Longer than PATH_MAX: the kernel refuses it; the capture keeps a bounded part.
                let p = cstr(&"a/".repeat(2500));
                r.sys("ret", libc::syscall(libc::SYS_openat, libc::AT_FDCWD, p.as_ptr(), libc::O_RDONLY, 0));
            }
            "long_argv" => {
                // 100 arguments of 100 bytes: more than the 4096 bytes of argv captured.
                let exe = cstr("/bin/true");
                let owned: Vec<CString> = (0..100).map(|i| cstr(&format!("{i:03}{}", "x".repeat(96)))).collect();
                let refs: Vec<&CString> = std::iter::once(&exe).chain(owned.iter()).collect();
                let av = argv(&refs);
                let env: [*const libc::c_char; 1] = [ptr::null()];
                r.put("exec", 0);
                r.print();
                libc::syscall(libc::SYS_execve, exe.as_ptr(), av.as_ptr(), env.as_ptr());
                panic!("exec failed: {}", std::io::Error::last_os_error());
            }
            "execve_missing" => {
                let (exe, name, flag, last) = (cstr(&arg(1)), cstr("missing"), cstr("--flag"), cstr("last arg"));
                let av = argv(&[&name, &flag, &last]);
                let env: [*const libc::c_char; 1] = [ptr::null()];
                r.sys("ret", libc::syscall(libc::SYS_execve, exe.as_ptr(), av.as_ptr(), env.as_ptr()));
            }
            "fds" => {
                let p = cstr("/dev/null");
                let fd = r.sys("fd", libc::syscall(libc::SYS_openat, libc::AT_FDCWD, p.as_ptr(), libc::O_RDONLY, 0));
                r.sys("dup", libc::syscall(libc::SYS_dup, fd));
                r.sys("dup2", libc::syscall(libc::SYS_dup2, fd, 100));
                r.sys("dup3", libc::syscall(libc::SYS_dup3, fd, 101, libc::O_CLOEXEC));
                r.sys("close", libc::syscall(libc::SYS_close, fd));
            }
            "socket" => {
                r.sys("ret", libc::syscall(libc::SYS_socket, libc::AF_INET6, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0));
            }
            "connect" => {
                let port: u16 = arg(1).parse().unwrap();
                let fd = r.sys("fd", libc::syscall(libc::SYS_socket, libc::AF_INET, libc::SOCK_STREAM, 0));
                let sa = sockaddr_in(port);
                r.sys("ret", libc::syscall(libc::SYS_connect, fd, &sa, SIN_LEN));
                // The port the kernel chose for this end.
                r.put("local_port", port_of(fd as i32));
            }
            "connect6" => {
                let port: u16 = arg(1).parse().unwrap();
                let fd = r.sys("fd", libc::syscall(libc::SYS_socket, libc::AF_INET6, libc::SOCK_STREAM, 0));
                let mut sa: libc::sockaddr_in6 = std::mem::zeroed();
                sa.sin6_family = libc::AF_INET6 as u16;
                sa.sin6_port = port.to_be();
                sa.sin6_addr.s6_addr[15] = 1;
                r.sys("ret", libc::syscall(libc::SYS_connect, fd, &sa, size_of_val(&sa)));
            }
            "connect_unix" => {
                let fd = r.sys("fd", libc::syscall(libc::SYS_socket, libc::AF_UNIX, libc::SOCK_STREAM, 0));
                let mut sa: libc::sockaddr_un = std::mem::zeroed();
                sa.sun_family = libc::AF_UNIX as u16;
                for (d, s) in sa.sun_path.iter_mut().zip(arg(1).bytes()) {
                    *d = s as libc::c_char;
                }
                let len = 2 + arg(1).len() + 1;
                r.sys("ret", libc::syscall(libc::SYS_connect, fd, &sa, len));
            }
            "server" => {
                // bind + listen on an ephemeral port, connect to it, accept4 the peer.
                let srv = r.sys("fd", libc::syscall(libc::SYS_socket, libc::AF_INET, libc::SOCK_STREAM, 0)) as i32;
                let sa = sockaddr_in(0);
                r.sys("bind", libc::syscall(libc::SYS_bind, srv, &sa, SIN_LEN));
                r.put("port", port_of(srv));
                r.sys("listen", libc::syscall(libc::SYS_listen, srv, 7));
                let cli = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
                let to = sockaddr_in(port_of(srv));
                libc::connect(cli, &to as *const _ as *const libc::sockaddr, SIN_LEN);
                r.put("client_port", port_of(cli));
                let mut peer = sockaddr_in(0);
                let mut len = SIN_LEN;
                r.sys("accept4", libc::syscall(libc::SYS_accept4, srv, &mut peer, &mut len, libc::SOCK_CLOEXEC));
                let cli2 = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
                libc::connect(cli2, &to as *const _ as *const libc::sockaddr, SIN_LEN);
                r.sys(
                    "accept",
                    libc::syscall(libc::SYS_accept, srv, ptr::null_mut::<c_void>(), ptr::null_mut::<c_void>()),
                );
            }
            "send" => {
                let port: u16 = arg(1).parse().unwrap();
                let fd = r.sys("fd", libc::syscall(libc::SYS_socket, libc::AF_INET, libc::SOCK_DGRAM, 0));
                let to = sockaddr_in(port);
                let buf = b"hello";
                r.sys("sendto", libc::syscall(libc::SYS_sendto, fd, buf.as_ptr(), 5, 0, &to, SIN_LEN));
                let mut iov = libc::iovec { iov_base: buf.as_ptr() as *mut c_void, iov_len: 3 };
                let mut msg: libc::msghdr = std::mem::zeroed();
                let mut to2 = sockaddr_in(port + 1);
                msg.msg_name = &mut to2 as *mut _ as *mut c_void;
                msg.msg_namelen = SIN_LEN;
                msg.msg_iov = &mut iov;
                msg.msg_iovlen = 1;
                r.sys("sendmsg", libc::syscall(libc::SYS_sendmsg, fd, &msg, libc::MSG_DONTWAIT));
            }
            "ptrace" => {
                let child = libc::fork();
                if child == 0 {
                    libc::sleep(5);
                    libc::_exit(0);
                }
                r.put("child", child);
                r.sys("ret", libc::syscall(libc::SYS_ptrace, libc::PTRACE_ATTACH, child, 0, 0));
                libc::kill(child, libc::SIGKILL);
                libc::waitpid(child, ptr::null_mut(), 0);
            }
            "setids" => {
                r.sys("setresgid", libc::syscall(libc::SYS_setresgid, 2001, 2002, 2003));
                r.sys("setregid", libc::syscall(libc::SYS_setregid, -1, 2004));
                r.sys("setgid", libc::syscall(libc::SYS_setgid, 2005));
                r.sys("setreuid", libc::syscall(libc::SYS_setreuid, -1, 0));
                r.sys("setresuid", libc::syscall(libc::SYS_setresuid, 1001, 1002, 1003));
                r.sys("setuid", libc::syscall(libc::SYS_setuid, 1001));
            }
            "capset" => {
                // Read our capabilities and set the same ones back, minus CAP_SYS_BOOT.
                let mut hdr = [0x2008_0522u32, 0];
                let mut data = [0u32; 6];
                libc::syscall(libc::SYS_capget, hdr.as_mut_ptr(), data.as_mut_ptr());
                data[0] &= !(1 << 22);
                r.put("effective", data[0] as u64 | (data[3] as u64) << 32);
                r.put("permitted", data[1] as u64 | (data[4] as u64) << 32);
                r.sys("ret", libc::syscall(libc::SYS_capset, hdr.as_mut_ptr(), data.as_ptr()));
            }
            "namespaces" => {
                let p = cstr("/proc/self/ns/uts");
                let fd = r.sys("fd", libc::syscall(libc::SYS_openat, libc::AT_FDCWD, p.as_ptr(), libc::O_RDONLY, 0));
                r.sys("setns", libc::syscall(libc::SYS_setns, fd, libc::CLONE_NEWUTS));
                r.sys("unshare", libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUTS));
            }
            "clones" => {
                let reap = |pid: i64| {
                    libc::waitpid(pid as i32, ptr::null_mut(), 0);
                };
                let c = libc::syscall(libc::SYS_clone, libc::SIGCHLD, 0, 0, 0, 0);
                if c == 0 {
                    libc::_exit(0);
                }
                reap(r.sys("clone", c));
                let f = libc::syscall(libc::SYS_fork);
                if f == 0 {
                    libc::_exit(0);
                }
                reap(r.sys("fork", f));
                reap(r.sys("vfork", vfork_and_exit_child()));
                let mut cargs = [0u64; 8];
                cargs[0] = libc::CLONE_PARENT_SETTID as u64;
                let mut ptid = 0i32;
                cargs[3] = &mut ptid as *mut i32 as u64;
                cargs[4] = libc::SIGCHLD as u64;
                let c3 = libc::syscall(libc::SYS_clone3, cargs.as_ptr(), 64);
                if c3 == 0 {
                    libc::_exit(0);
                }
                reap(r.sys("clone3", c3));
            }
            "mount" => {
                let dir = arg(1);
                std::fs::create_dir_all(&dir).unwrap();
                let (src, target, fstype, data) = (cstr("sensor-tmpfs"), cstr(&dir), cstr("tmpfs"), cstr("size=1m"));
                r.sys(
                    "mount",
                    libc::syscall(
                        libc::SYS_mount,
                        src.as_ptr(),
                        target.as_ptr(),
                        fstype.as_ptr(),
                        libc::MS_NOSUID,
                        data.as_ptr(),
                    ),
                );
                r.sys("umount2", libc::syscall(libc::SYS_umount2, target.as_ptr(), libc::MNT_DETACH));
                std::fs::remove_dir(&dir).unwrap();
            }
            "perms" => {
                let p = cstr(&arg(1));
                let fd = r.sys(
                    "fd",
                    libc::syscall(libc::SYS_openat, libc::AT_FDCWD, p.as_ptr(), libc::O_RDWR | libc::O_CREAT, 0o600),
                );
                r.sys("chmod", libc::syscall(libc::SYS_chmod, p.as_ptr(), 0o601));
                r.sys("fchmod", libc::syscall(libc::SYS_fchmod, fd, 0o602));
                r.sys("fchmodat", libc::syscall(libc::SYS_fchmodat, libc::AT_FDCWD, p.as_ptr(), 0o603));
                r.sys("chown", libc::syscall(libc::SYS_chown, p.as_ptr(), 1000, 1001));
                r.sys("fchown", libc::syscall(libc::SYS_fchown, fd, 1002, -1));
                r.sys(
                    "fchownat",
                    libc::syscall(
                        libc::SYS_fchownat,
                        libc::AT_FDCWD,
                        p.as_ptr(),
                        1003,
                        1004,
                        libc::AT_SYMLINK_NOFOLLOW,
                    ),
                );
                std::fs::remove_file(arg(1)).unwrap();
            }
            "links" => {
                let base = arg(1);
                let path = |s: &str| cstr(&format!("{base}-{s}"));
                let (a, b, c, d, e, f, g, h) =
                    (path("a"), path("b"), path("c"), path("d"), path("e"), path("f"), path("g"), path("h"));
                std::fs::write(format!("{base}-a"), b"x").unwrap();
                r.sys("link", libc::syscall(libc::SYS_link, a.as_ptr(), b.as_ptr()));
                r.sys(
                    "linkat",
                    libc::syscall(libc::SYS_linkat, libc::AT_FDCWD, a.as_ptr(), libc::AT_FDCWD, c.as_ptr(), 0),
                );
                r.sys("symlink", libc::syscall(libc::SYS_symlink, a.as_ptr(), d.as_ptr()));
                r.sys("symlinkat", libc::syscall(libc::SYS_symlinkat, a.as_ptr(), libc::AT_FDCWD, e.as_ptr()));
                r.sys("rename", libc::syscall(libc::SYS_rename, b.as_ptr(), f.as_ptr()));
                r.sys(
                    "renameat",
                    libc::syscall(libc::SYS_renameat, libc::AT_FDCWD, c.as_ptr(), libc::AT_FDCWD, g.as_ptr()),
                );
                r.sys(
                    "renameat2",
                    libc::syscall(
                        libc::SYS_renameat2,
                        libc::AT_FDCWD,
                        d.as_ptr(),
                        libc::AT_FDCWD,
                        h.as_ptr(),
                        libc::RENAME_NOREPLACE,
                    ),
                );
                // unlink family over what was made.
                r.sys("unlink", libc::syscall(libc::SYS_unlink, f.as_ptr()));
                r.sys("unlinkat", libc::syscall(libc::SYS_unlinkat, libc::AT_FDCWD, g.as_ptr(), 0));
                for p in [&a, &e, &h] {
                    libc::unlink(p.as_ptr());
                }
                let (d1, d2) = (path("dir1"), path("dir2"));
                r.sys("mkdir", libc::syscall(libc::SYS_mkdir, d1.as_ptr(), 0o750));
                r.sys("mkdirat", libc::syscall(libc::SYS_mkdirat, libc::AT_FDCWD, d2.as_ptr(), 0o700));
                r.sys(
                    "unlinkat_dir",
                    libc::syscall(libc::SYS_unlinkat, libc::AT_FDCWD, d2.as_ptr(), libc::AT_REMOVEDIR),
                );
                r.sys("rmdir", libc::syscall(libc::SYS_rmdir, d1.as_ptr()));
            }
            "modules" => {
                // Not a module: the kernel refuses it, but the attempt is what is captured.
                let image = [0u8; 16];
                let params = cstr("sensor_test=1");
                r.sys(
                    "init_module",
                    libc::syscall(libc::SYS_init_module, image.as_ptr(), image.len(), params.as_ptr()),
                );
                let null = cstr("/dev/null");
                let fd = libc::open(null.as_ptr(), libc::O_RDONLY);
                r.put("fd", fd);
                r.sys("finit_module", libc::syscall(libc::SYS_finit_module, fd, params.as_ptr(), 0));
            }
            "memfd" => {
                let name = cstr("sensor-memfd");
                r.sys("ret", libc::syscall(libc::SYS_memfd_create, name.as_ptr(), libc::MFD_CLOEXEC));
            }
            "prctl" => {
                r.sys("ret", libc::syscall(libc::SYS_prctl, libc::PR_SET_DUMPABLE, 0, 0, 0, 0));
            }
            "renamed_read" => {
                // A program that gives itself another name (comm) before reading a file:
                // prctl(PR_SET_NAME, arg 1), then openat(arg 2, O_RDONLY).
                let (name, path) = (cstr(&arg(1)), cstr(&arg(2)));
                r.sys("prctl", libc::syscall(libc::SYS_prctl, libc::PR_SET_NAME, name.as_ptr(), 0, 0, 0));
                let fd = libc::syscall(libc::SYS_openat, libc::AT_FDCWD, path.as_ptr(), libc::O_RDONLY);
                r.sys("ret", fd);
                if fd >= 0 {
                    libc::close(fd as i32);
                }
            }
            "signals" => {
                let (pid, tid) = (libc::getpid(), libc::gettid());
                r.put("tid", tid);
                r.sys("kill", libc::syscall(libc::SYS_kill, pid, 0));
                r.sys("tkill", libc::syscall(libc::SYS_tkill, tid, 0));
                r.sys("tgkill", libc::syscall(libc::SYS_tgkill, pid, tid, 0));
            }
            "bpf" => {
                let attr = [0u8; 64];
                r.sys("ret", libc::syscall(libc::SYS_bpf, 0, attr.as_ptr(), attr.len()));
            }
            "bpf_prog_load" => {
                // An empty program: the kernel refuses it, but the load attempt is the event.
                let attr = [0u8; 128];
                r.sys("ret", libc::syscall(libc::SYS_bpf, 5, attr.as_ptr(), attr.len()));
            }
            "traceme" => {
                r.sys("ret", libc::syscall(libc::SYS_ptrace, libc::PTRACE_TRACEME, 0, 0, 0));
            }
            "setuid_root" => {
                // Run from a setuid-root copy by another user: real, effective and saved uid to 0.
                r.put("uid_before", libc::getuid());
                r.sys("ret", libc::syscall(libc::SYS_setresuid, 0, 0, 0));
            }
            "memfd_exec" | "memfd_exec_path" => {
                // Fileless execution: the program at arg 1, copied into a memfd and run from it
                // with argv[0] = arg 2 and the arguments after it; `memfd_exec` through
                // execveat(fd, "", AT_EMPTY_PATH) (fexecve), `memfd_exec_path` through
                // execve("/proc/self/fd/N").
                let image = std::fs::read(arg(1)).expect("program to copy");
                let name = cstr("payload");
                let fd = libc::syscall(libc::SYS_memfd_create, name.as_ptr(), libc::MFD_CLOEXEC) as i32;
                assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
                let written = libc::write(fd, image.as_ptr().cast(), image.len());
                assert_eq!(written, image.len() as isize, "write to the memfd");
                let owned: Vec<CString> = args[2..].iter().map(|a| cstr(a)).collect();
                let av = argv(&owned.iter().collect::<Vec<_>>());
                let env: [*const libc::c_char; 1] = [ptr::null()];
                r.put("exec", 0);
                r.print();
                if arg(0) == "memfd_exec" {
                    let empty = cstr("");
                    libc::syscall(
                        libc::SYS_execveat,
                        fd,
                        empty.as_ptr(),
                        av.as_ptr(),
                        env.as_ptr(),
                        libc::AT_EMPTY_PATH,
                    );
                } else {
                    let path = cstr(&format!("/proc/self/fd/{fd}"));
                    libc::syscall(libc::SYS_execve, path.as_ptr(), av.as_ptr(), env.as_ptr());
                }
                panic!("exec from the memfd failed: {}", std::io::Error::last_os_error());
            }
            "mmap" => {
                let exec = libc::syscall(
                    libc::SYS_mmap,
                    0,
                    12288,
                    libc::PROT_READ | libc::PROT_EXEC,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                );
                r.sys("mmap", exec);
                r.sys(
                    "mprotect",
                    libc::syscall(libc::SYS_mprotect, exec, 4096, libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC),
                );
                // Not executable: must not be captured.
                r.sys(
                    "mmap_plain",
                    libc::syscall(
                        libc::SYS_mmap,
                        0,
                        20480,
                        libc::PROT_READ,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                        -1,
                        0,
                    ),
                );
                r.sys("mprotect_plain", libc::syscall(libc::SYS_mprotect, exec, 8192, libc::PROT_READ));
            }
            "loop" => {
                // Many open+close pairs, for drop tests and benchmarks; optionally pinned to
                // the CPU given as the second argument.
                let n: u64 = arg(1).parse().unwrap();
                if let Some(cpu) = args.get(2) {
                    let mut set: libc::cpu_set_t = std::mem::zeroed();
                    libc::CPU_SET(cpu.parse().unwrap(), &mut set);
                    assert_eq!(libc::sched_setaffinity(0, size_of_val(&set), &set), 0, "pinning to CPU {cpu}");
                }
                let p = cstr("/dev/null");
                let start = std::time::Instant::now();
                for _ in 0..n {
                    let fd = libc::syscall(libc::SYS_openat, libc::AT_FDCWD, p.as_ptr(), libc::O_RDONLY, 0);
                    libc::syscall(libc::SYS_close, fd);
                }
                r.put("ns_per_iter", start.elapsed().as_nanos() as f64 / n as f64);
                r.put("n", n);
            }
            "prefilter" => {
                // Under directory arg(1), which holds files quiet, quiet2, quiet3 and watched:
                // opens the prefilter keeps back, later uses of those fds (one in a forked
                // child), and opens it must send.
                let dir = arg(1);
                let at = |name: &str| cstr(&format!("{dir}/{name}"));
                let open =
                    |p: &CString, flags: i32| libc::syscall(libc::SYS_openat, libc::AT_FDCWD, p.as_ptr(), flags, 0o600);
                let used = r.sys("used_fd", open(&at("quiet"), libc::O_RDONLY));
                let unused = r.sys("unused_fd", open(&at("quiet2"), libc::O_RDONLY));
                let inherited = r.sys("inherited_fd", open(&at("quiet3"), libc::O_RDWR));
                r.sys("watched_fd", open(&at("watched"), libc::O_RDONLY));
                // Not plain: always sent (rules see them normalised).
                r.sys("slashes_fd", open(&cstr(&format!("{dir}//quiet")), libc::O_RDONLY));
                r.sys(
                    "dotdot_fd",
                    open(&cstr(&format!("{dir}/../{}/quiet", dir.rsplit('/').next().unwrap())), libc::O_RDONLY),
                );
                // A directory: always sent (relative paths resolve through it).
                r.sys("dir_fd", open(&cstr(&dir), libc::O_RDONLY));
                let map = r.sys(
                    "mmap",
                    libc::syscall(
                        libc::SYS_mmap,
                        0,
                        4096,
                        libc::PROT_READ | libc::PROT_EXEC,
                        libc::MAP_PRIVATE,
                        used,
                        0,
                    ),
                );
                r.sys("close_used", libc::syscall(libc::SYS_close, used));
                r.sys("close_unused", libc::syscall(libc::SYS_close, unused));
                let child = libc::fork();
                if child == 0 {
                    libc::syscall(libc::SYS_fchmod, inherited, 0o640);
                    libc::_exit(0);
                }
                r.put("child", child);
                libc::waitpid(child, ptr::null_mut(), 0);
                libc::munmap(map as *mut c_void, 4096);
            }
            "forks" => {
                // Many short-lived processes, for state-bound benchmarks.
                let n: u64 = arg(1).parse().unwrap();
                for _ in 0..n {
                    let child = libc::fork();
                    if child == 0 {
                        libc::_exit(0);
                    }
                    libc::waitpid(child, ptr::null_mut(), 0);
                }
                r.put("n", n);
            }
            "ia32" => {
                // Through the 32-bit gate from a 64-bit program: open (ia32 5), read (3,
                // which is close in x86_64 numbering), close (6), and socketcall (102)
                // socket + connect to the port at arg 2.
                let mut path = arg(1).into_bytes();
                path.push(0);
                let low_path = low_memory(&path);
                let fd = r.sys("open", int80(5, [low(low_path), libc::O_RDONLY as u32, 0, 0, 0]) as c_long);
                let buf = low_memory(&[0; 64]);
                r.sys("read", int80(3, [fd as u32, low(buf), 64, 0, 0]) as c_long);
                r.sys("close", int80(6, [fd as u32, 0, 0, 0, 0]) as c_long);
                let socket_args: [u32; 3] = [libc::AF_INET as u32, libc::SOCK_STREAM as u32, 0];
                let words = low_memory(std::slice::from_raw_parts(socket_args.as_ptr().cast(), 12));
                let sock = r.sys("socket", int80(102, [1, low(words), 0, 0, 0]) as c_long);
                let port: u16 = arg(2).parse().unwrap();
                let sa = sockaddr_in(port);
                let low_sa = low_memory(std::slice::from_raw_parts((&raw const sa).cast(), SIN_LEN as usize));
                let connect_args: [u32; 3] = [sock as u32, low(low_sa), SIN_LEN];
                let words = low_memory(std::slice::from_raw_parts(connect_args.as_ptr().cast(), 12));
                r.sys("connect", int80(102, [3, low(words), 0, 0, 0]) as c_long);
                r.put("local_port", port_of(sock as i32));
            }
            "ia32_exec" => {
                // execve (ia32 11, munmap in x86_64 numbering) of /bin/true with 32-bit
                // pointers to its arguments.
                let exe = low_memory(b"/bin/true\0");
                let strings = low_memory(b"true\0ia32\0");
                let argv: [u32; 3] = [low(strings), low(strings) + 5, 0];
                let low_argv = low_memory(std::slice::from_raw_parts(argv.as_ptr().cast(), 12));
                let envp = low_memory(&[0; 4]);
                r.put("exec", 0);
                r.print();
                int80(11, [low(exe), low(low_argv), low(envp), 0, 0]);
                panic!("ia32 execve failed");
            }
            "cwd" => {
                // chdir to arg 1, open a relative path there; fchdir to an fd of arg 2 and
                // open again; an fcntl copy of an fd; an fcntl that makes no fd.
                let dir = cstr(&arg(1));
                r.sys("chdir", libc::syscall(libc::SYS_chdir, dir.as_ptr()));
                let name = cstr(&arg(3));
                r.sys("open1", libc::syscall(libc::SYS_openat, libc::AT_FDCWD, name.as_ptr(), libc::O_RDONLY, 0));
                let other = cstr(&arg(2));
                let dfd = libc::syscall(libc::SYS_openat, libc::AT_FDCWD, other.as_ptr(), libc::O_RDONLY, 0);
                r.sys("dirfd", dfd);
                r.sys("fchdir", libc::syscall(libc::SYS_fchdir, dfd));
                let file =
                    r.sys("open2", libc::syscall(libc::SYS_openat, libc::AT_FDCWD, name.as_ptr(), libc::O_RDONLY, 0));
                r.sys("dupfd", libc::syscall(libc::SYS_fcntl, file, libc::F_DUPFD_CLOEXEC, 50));
                r.sys("getfl", libc::syscall(libc::SYS_fcntl, file, libc::F_GETFL));
            }
            "recv" => {
                // A UDP datagram to ourselves, read with recvfrom and recvmsg.
                let fd = r.sys("fd", libc::syscall(libc::SYS_socket, libc::AF_INET, libc::SOCK_DGRAM, 0)) as i32;
                let sa = sockaddr_in(0);
                libc::bind(fd, &sa as *const _ as *const libc::sockaddr, SIN_LEN);
                let me = sockaddr_in(port_of(fd));
                r.put("port", port_of(fd));
                for _ in 0..2 {
                    libc::sendto(fd, b"x".as_ptr().cast(), 1, 0, &me as *const _ as *const libc::sockaddr, SIN_LEN);
                }
                let mut buf = [0u8; 8];
                let mut from = sockaddr_in(0);
                let mut len = SIN_LEN;
                r.sys(
                    "recvfrom",
                    libc::syscall(libc::SYS_recvfrom, fd, buf.as_mut_ptr(), buf.len(), 0, &mut from, &mut len),
                );
                let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
                let mut msg: libc::msghdr = std::mem::zeroed();
                let mut from2 = sockaddr_in(0);
                msg.msg_name = (&raw mut from2).cast();
                msg.msg_namelen = SIN_LEN;
                msg.msg_iov = &mut iov;
                msg.msg_iovlen = 1;
                r.sys("recvmsg", libc::syscall(libc::SYS_recvmsg, fd, &mut msg, 0));
            }
            "userfaultfd" => {
                r.sys("ret", libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC | libc::O_NONBLOCK));
            }
            "session" => {
                // A new session in a child (a group leader cannot start one), then a group.
                let child = libc::fork();
                if child == 0 {
                    libc::syscall(libc::SYS_setsid);
                    libc::syscall(libc::SYS_setpgid, 0, 0);
                    libc::_exit(0);
                }
                r.put("child", child);
                libc::waitpid(child, ptr::null_mut(), 0);
            }
            "unresident_path" => {
                // The path lives in a file mapping not touched yet: the kernel faults it in
                // for the call, but a reader that cannot fault (the sensor, at enter) finds
                // nothing there.
                let file = std::fs::File::open(arg(1)).unwrap();
                let len = std::fs::metadata(arg(1)).unwrap().len() as usize;
                use std::os::fd::AsRawFd as _;
                let map = libc::mmap(ptr::null_mut(), len, libc::PROT_READ, libc::MAP_PRIVATE, file.as_raw_fd(), 0);
                assert_ne!(map, libc::MAP_FAILED);
                r.sys("ret", libc::syscall(libc::SYS_openat, libc::AT_FDCWD, map, libc::O_RDONLY, 0));
            }
            other => panic!("unknown scenario {other}"),
        }
    }
    r.print();
}
