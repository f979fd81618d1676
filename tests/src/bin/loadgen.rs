//! The benchmark's load generator: one syscall loop, pinned to one CPU, for a number of
//! iterations or seconds; prints one JSON object (its pid, the iterations done, ns per
//! iteration, and the syscalls one iteration makes).
//!
//! Usage: `loadgen LOOP CPU (--iters N | --seconds S) [--spacing-us U]`
//!
//! | loop | one iteration (its syscalls) |
//! |---|---|
//! | `getpid` | `getpid` (1): a syscall no rule wants |
//! | `close` | `close(-1)` (1): a bulk syscall the sensor captures whatever the rules (it keeps the fd table), failing at once |
//! | `open` | `openat` of a file below /tmp for reading, `close` (2) |
//! | `exec` | `fork`, `execve("/bin/true")` in the child, its `exit_group`, `wait4` (4; the syscalls `/bin/true` makes while it loads are not counted) |
//! | `connect` | `socket`, `setsockopt(SO_LINGER 0)` (a reset on close: no `TIME_WAIT`), `connect` to a loopback listener of this process, `accept4`, `close` of both ends (6) |
//! | `forkfds` | with 4,096 files of ~4 KiB paths held open (set up before the loop): `fork`, `openat("/etc/shadow")` and `close` in the child, its `exit_group`, `wait4` (5) |
//! | `alert` | `openat("/etc/shadow")` for reading, `close` (2), then a pause of `--spacing-us` (default 5000): reports the wall-clock time (ns) taken just before each `openat` in `starts_ns` |
//!
//! Syscalls go through `syscall(2)` so each is exactly the one named.

use std::{
    ffi::CString,
    io::Write as _,
    ptr,
    time::{Duration, Instant},
};

use serde_json::{Map, Value, json};

/// How long the loop runs.
#[derive(Clone, Copy)]
enum Length {
    /// A fixed number of iterations.
    Iters(u64),
    /// As many iterations as fit in this time.
    Time(Duration),
}

impl Length {
    /// Whether the loop goes on after `done` iterations begun at `start`; the clock is read
    /// only every 64 iterations.
    fn more(self, done: u64, start: Instant) -> bool {
        match self {
            Length::Iters(n) => done < n,
            Length::Time(d) => !done.is_multiple_of(64) || start.elapsed() < d,
        }
    }
}

/// A loop: its state and one iteration.
trait Loop {
    /// The syscalls one iteration makes.
    const SYSCALLS: u64;
    /// One iteration.
    fn step(&mut self);
    /// Anything to report besides the counts.
    fn report(self, _out: &mut Map<String, Value>)
    where
        Self: Sized,
    {
    }
}

/// `getpid`.
struct Getpid;

impl Loop for Getpid {
    const SYSCALLS: u64 = 1;
    fn step(&mut self) {
        // SAFETY: getpid has no preconditions.
        unsafe { libc::syscall(libc::SYS_getpid) };
    }
}

/// `close(-1)`.
struct CloseBad;

impl Loop for CloseBad {
    const SYSCALLS: u64 = 1;
    fn step(&mut self) {
        // SAFETY: closing an fd that cannot exist only fails with EBADF.
        unsafe { libc::syscall(libc::SYS_close, -1) };
    }
}

/// `openat` + `close` of a file of its own below /tmp, removed at the end.
struct Open {
    path: CString,
}

impl Open {
    fn new() -> Self {
        let path = format!("/tmp/sensor-bench-loadgen-{}", std::process::id());
        std::fs::write(&path, b"").expect("creating the loop's file below /tmp");
        Self { path: CString::new(path).expect("no NUL in the path") }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.path.to_str().unwrap_or_default());
    }
}

impl Loop for Open {
    const SYSCALLS: u64 = 2;
    fn step(&mut self) {
        open_close(&self.path);
    }
}

/// Fds held open by [`ForkFds`], and the length of their paths.
const HELD_FDS: usize = 4096;
const HELD_PATH_BYTES: usize = 4000;

/// `fork` of a process holding [`HELD_FDS`] fds of long paths; the child reads
/// `/etc/shadow` (an alert) and exits. The files live below /tmp, removed at the end.
struct ForkFds {
    top: String,
    fds: Vec<std::fs::File>,
    shadow: CString,
}

impl ForkFds {
    fn new() -> Self {
        let limit = libc::rlimit { rlim_cur: 8192, rlim_max: 8192 };
        // SAFETY: a valid rlimit to read.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0, "raising the open files limit");
        let top = format!("/tmp/sensor-loadgen-fds-{}", std::process::id());
        // Components of 200 bytes (a name may have 255), down to a path of about 4,000.
        let mut dir = top.clone();
        while dir.len() + 201 + 6 < HELD_PATH_BYTES {
            dir.push('/');
            dir.push_str(&"d".repeat(200));
        }
        std::fs::create_dir_all(&dir).expect("creating the long directory");
        let fds = (0..HELD_FDS)
            .map(|i| std::fs::File::create(format!("{dir}/{i:05}")).expect("creating a held file"))
            .collect();
        Self { top, fds, shadow: CString::new("/etc/shadow").expect("no NUL") }
    }
}

impl Drop for ForkFds {
    fn drop(&mut self) {
        self.fds.clear();
        let _ = std::fs::remove_dir_all(&self.top);
    }
}

impl Loop for ForkFds {
    const SYSCALLS: u64 = 5;
    fn step(&mut self) {
        fork_and_wait(|| {
            open_close(&self.shadow);
            0
        });
    }
    fn report(self, out: &mut Map<String, Value>) {
        out.insert("held_fds".into(), json!(self.fds.len()));
    }
}

/// `openat(path, O_RDONLY)` and `close`.
fn open_close(path: &CString) {
    // SAFETY: a valid NUL-terminated path; the fd returned (or -1) is closed.
    unsafe {
        let fd = libc::syscall(libc::SYS_openat, libc::AT_FDCWD, path.as_ptr(), libc::O_RDONLY, 0);
        libc::syscall(libc::SYS_close, fd);
    }
}

/// `fork`, `execve("/bin/true")`, `wait4`.
struct Exec {
    program: CString,
    argv: [*const libc::c_char; 2],
}

impl Exec {
    fn new() -> Self {
        let program = CString::new("/bin/true").expect("no NUL");
        let argv = [program.as_ptr(), ptr::null()];
        Self { program, argv }
    }
}

impl Loop for Exec {
    const SYSCALLS: u64 = 4;
    fn step(&mut self) {
        fork_and_wait(|| {
            unsafe extern "C" {
                static environ: *const *const libc::c_char;
            }
            // SAFETY: argv and environ were built before the fork; execve returns only on failure.
            unsafe { libc::execve(self.program.as_ptr(), self.argv.as_ptr(), environ) };
            127
        });
    }
}

/// `fork`; the child runs `child` and exits with what it returns; the parent waits for it
/// (`wait4`). `child` may only make raw syscalls: nothing it calls may allocate or lock.
fn fork_and_wait(child: impl FnOnce() -> i32) {
    // SAFETY: this program is single-threaded while a loop runs, and the child only runs
    // `child` (raw syscalls) and `_exit`.
    unsafe {
        let pid = libc::fork();
        if pid == 0 {
            libc::_exit(child());
        }
        assert!(pid > 0, "fork: {}", std::io::Error::last_os_error());
        libc::syscall(libc::SYS_wait4, pid, ptr::null_mut::<i32>(), 0, ptr::null_mut::<libc::rusage>());
    }
}

/// A TCP connection to its own loopback listener, accepted and closed.
struct Connect {
    listener: i32,
    addr: libc::sockaddr_in,
}

use sensor_tests::{SOCKADDR_IN_LEN as SIN_LEN, loopback_sockaddr as loopback};

impl Connect {
    fn new() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback listener");
        let port = listener.local_addr().expect("its address").port();
        Self { listener: std::os::fd::IntoRawFd::into_raw_fd(listener), addr: loopback(port) }
    }
}

impl Loop for Connect {
    const SYSCALLS: u64 = 6;
    fn step(&mut self) {
        let linger = libc::linger { l_onoff: 1, l_linger: 0 };
        // SAFETY: valid fds and pointers to live locals with their true sizes.
        unsafe {
            let fd = libc::syscall(libc::SYS_socket, libc::AF_INET, libc::SOCK_STREAM, 0) as i32;
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            libc::syscall(
                libc::SYS_setsockopt,
                fd,
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                &linger as *const libc::linger,
                size_of::<libc::linger>() as u32,
            );
            let r = libc::syscall(libc::SYS_connect, fd, &self.addr as *const libc::sockaddr_in, SIN_LEN);
            assert_eq!(r, 0, "connect: {}", std::io::Error::last_os_error());
            let peer = libc::syscall(libc::SYS_accept4, self.listener, ptr::null_mut::<libc::sockaddr>(), 0, 0);
            libc::syscall(libc::SYS_close, fd);
            libc::syscall(libc::SYS_close, peer);
        }
    }
}

/// Reads of `/etc/shadow` spaced out in time, each start time kept.
struct Alert {
    path: CString,
    spacing: Duration,
    starts_ns: Vec<i64>,
}

/// The wall-clock time, in ns since the epoch.
fn wall_ns() -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid timespec to write.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

impl Loop for Alert {
    const SYSCALLS: u64 = 2;
    fn step(&mut self) {
        self.starts_ns.push(wall_ns());
        open_close(&self.path);
        std::thread::sleep(self.spacing);
    }
    fn report(self, out: &mut Map<String, Value>) {
        out.insert("starts_ns".into(), json!(self.starts_ns));
    }
}

/// Pins this thread to `cpu`.
fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is empty; CPU_SET writes within it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        let r = libc::sched_setaffinity(0, size_of_val(&set), &set);
        assert_eq!(r, 0, "pinning to CPU {cpu}: {}", std::io::Error::last_os_error());
    }
}

/// Runs `lp` for `length` and prints the report.
fn run<L: Loop>(name: &str, mut lp: L, length: Length) {
    let start = Instant::now();
    let mut done = 0;
    while length.more(done, start) {
        lp.step();
        done += 1;
    }
    let elapsed = start.elapsed();
    let mut out = Map::new();
    lp.report(&mut out);
    out.insert("loop".into(), json!(name));
    out.insert("pid".into(), json!(std::process::id()));
    out.insert("iters".into(), json!(done));
    out.insert("syscalls_per_iter".into(), json!(L::SYSCALLS));
    out.insert("seconds".into(), json!(elapsed.as_secs_f64()));
    out.insert("ns_per_iter".into(), json!(elapsed.as_nanos() as f64 / done.max(1) as f64));
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", Value::Object(out)).expect("writing the report");
}

/// The value after `flag` in `args`.
fn option(args: &[String], flag: &str) -> Option<String> {
    args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage =
        "usage: loadgen getpid|close|open|exec|connect|forkfds|alert CPU (--iters N | --seconds S) [--spacing-us U]";
    let (Some(name), Some(cpu)) = (args.first(), args.get(1).and_then(|c| c.parse().ok())) else {
        panic!("{usage}");
    };
    let length = match (option(&args, "--iters"), option(&args, "--seconds")) {
        (Some(n), None) => Length::Iters(n.parse().expect("--iters N")),
        (None, Some(s)) => Length::Time(Duration::from_secs_f64(s.parse().expect("--seconds S"))),
        _ => panic!("{usage}"),
    };
    pin(cpu);
    match name.as_str() {
        "getpid" => run(name, Getpid, length),
        "close" => run(name, CloseBad, length),
        "open" => run(name, Open::new(), length),
        "exec" => run(name, Exec::new(), length),
        "connect" => run(name, Connect::new(), length),
        "forkfds" => run(name, ForkFds::new(), length),
        "alert" => {
            let spacing = option(&args, "--spacing-us").map_or(5000, |u| u.parse().expect("--spacing-us U"));
            let path = CString::new("/etc/shadow").expect("no NUL");
            run(name, Alert { path, spacing: Duration::from_micros(spacing), starts_ns: Vec::new() }, length);
        }
        other => panic!("unknown loop `{other}`; {usage}"),
    }
}
