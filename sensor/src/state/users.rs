//! User and group names, from the `/etc/passwd` and `/etc/group` a process sees: the
//! host's, or its container's through `/proc/PID/root`.
//!
//! Those files belong to whoever runs the container: one may be a FIFO, a symlink to
//! `/dev/zero` or out of the container, or huge. So they are read by one loader thread, never
//! by a worker: resolved inside the container's root (`openat2` with `RESOLVE_IN_ROOT`), opened
//! non-blocking, read only when a regular file and only up to [`MAX_FILE_BYTES`]. A worker
//! asks for a mount namespace's accounts and goes on; until they are loaded its lookups
//! report [`Lookup::Pending`] (user fields render the uid) instead of waiting.

use foldhash::fast::RandomState;
use std::{
    collections::HashMap,
    ffi::CString,
    fs::File,
    io::{self, Read as _},
    os::fd::{FromRawFd as _, OwnedFd},
    sync::{
        Arc, Mutex, OnceLock, PoisonError,
        atomic::{AtomicU64, Ordering},
        mpsc::{Receiver, SyncSender, TrySendError, sync_channel},
    },
    time::{Duration, Instant},
};

/// One user.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct User {
    /// Login name.
    pub name: String,
    /// Home directory.
    pub home: String,
    /// Login shell.
    pub shell: String,
}

/// The users and groups of one root file system.
#[derive(Debug, Default)]
pub struct Accounts {
    users: HashMap<u32, User, RandomState>,
    groups: HashMap<u32, String, RandomState>,
}

impl Accounts {
    /// The user `uid`: [`Lookup::Known`] or [`Lookup::Unknown`].
    pub fn user(&self, uid: u32) -> Lookup<&User> {
        self.users.get(&uid).map_or(Lookup::Unknown, Lookup::Known)
    }

    /// The name of group `gid`: [`Lookup::Known`] or [`Lookup::Unknown`].
    pub fn group(&self, gid: u32) -> Lookup<&str> {
        self.groups.get(&gid).map_or(Lookup::Unknown, |g| Lookup::Known(g.as_str()))
    }
}

/// What a lookup found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup<T> {
    /// The account.
    Known(T),
    /// The files were read and do not name it.
    Unknown,
    /// The files are being read: ask again later.
    Pending,
}

impl<T> Lookup<T> {
    /// What the account maps to.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Lookup<U> {
        match self {
            Lookup::Known(t) => Lookup::Known(f(t)),
            Lookup::Unknown => Lookup::Unknown,
            Lookup::Pending => Lookup::Pending,
        }
    }

    /// The account, if known.
    pub fn known(self) -> Option<T> {
        match self {
            Lookup::Known(t) => Some(t),
            Lookup::Unknown | Lookup::Pending => None,
        }
    }
}

/// Whose files: a mount namespace, and processes that may still be in it (an event's
/// process and its parent) to reach its root through `/proc/PID/root`.
#[derive(Clone, Copy, Debug)]
pub struct Root {
    /// The mount namespace's inode number.
    pub mnt_ns: u32,
    /// Candidate processes; each is used only if it is still in `mnt_ns` (a pid reused, or a
    /// parent outside the container, is not).
    pub pids: [u32; 2],
}

/// Most distinct root file systems (mount namespaces) cached.
const MAX_ROOTS: usize = 1024;
/// Most bytes read of one `passwd` or `group` file; the rest is ignored (and counted).
pub const MAX_FILE_BYTES: u64 = 1 << 20;
/// Mount namespaces waiting for the loader; more requests are dropped (and counted), and
/// asked again by a later lookup.
const MAX_QUEUED: usize = 256;
/// A load not done after this long is given up on (counted); the next lookup asks again.
const LOAD_TIMEOUT: Duration = Duration::from_secs(5);
/// After no candidate process was still in the namespace, how long before asking again.
const RETRY_UNRESOLVED: Duration = Duration::from_secs(1);

/// Counters of the account loader, for the metrics.
#[derive(Debug, Default)]
pub struct AccountStats {
    /// Files read in full.
    pub read: AtomicU64,
    /// Files cut at [`MAX_FILE_BYTES`].
    pub truncated: AtomicU64,
    /// Files refused: not a regular file (a FIFO, a device, a directory).
    pub not_regular: AtomicU64,
    /// Files missing or unreadable (nobody is named).
    pub unreadable: AtomicU64,
    /// Loads where no candidate process was still in the namespace (asked again later).
    pub unresolved: AtomicU64,
    /// Requests dropped because the loader's queue was full.
    pub dropped: AtomicU64,
    /// Loads given up after [`LOAD_TIMEOUT`].
    pub timed_out: AtomicU64,
}

impl AccountStats {
    /// `(result, count)` pairs.
    pub fn counts(&self) -> [(&'static str, u64); 7] {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("read", n(&self.read)),
            ("truncated", n(&self.truncated)),
            ("not_regular", n(&self.not_regular)),
            ("unreadable", n(&self.unreadable)),
            ("unresolved", n(&self.unresolved)),
            ("dropped", n(&self.dropped)),
            ("timed_out", n(&self.timed_out)),
        ]
    }
}

/// A mount namespace's accounts in the shared cache.
enum Slot {
    Loading(Instant),
    Unresolved(Instant),
    Ready(Arc<Accounts>),
}

/// The accounts every worker shares, and the loader thread's queue.
struct Loader {
    slots: Mutex<lru::LruCache<u32, Slot>>,
    requests: SyncSender<Root>,
    stats: AccountStats,
}

impl Loader {
    /// The process's loader, started on first use.
    fn get() -> &'static Loader {
        static LOADER: OnceLock<Loader> = OnceLock::new();
        LOADER.get_or_init(|| {
            let (requests, rx) = sync_channel(MAX_QUEUED);
            let spawned = std::thread::Builder::new().name("accounts".into()).spawn(move || load_requests(rx));
            if let Err(e) = spawned {
                log::error!("cannot start the account loader: {e}; user names render as uids");
            }
            let cap = std::num::NonZeroUsize::new(MAX_ROOTS).expect("non-zero");
            Loader { slots: Mutex::new(lru::LruCache::new(cap)), requests, stats: AccountStats::default() }
        })
    }

    /// The accounts of `root` if loaded; otherwise asks for them unless already asked.
    fn accounts(&self, root: Root) -> Option<Arc<Accounts>> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        match slots.get(&root.mnt_ns) {
            Some(Slot::Ready(a)) => return Some(a.clone()),
            Some(Slot::Loading(since)) if since.elapsed() < LOAD_TIMEOUT => return None,
            Some(Slot::Unresolved(since)) if since.elapsed() < RETRY_UNRESOLVED => return None,
            Some(Slot::Loading(_)) => {
                self.stats.timed_out.fetch_add(1, Ordering::Relaxed);
            }
            Some(Slot::Unresolved(_)) | None => {}
        }
        match self.requests.try_send(root) {
            Ok(()) => {
                slots.put(root.mnt_ns, Slot::Loading(Instant::now()));
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        None
    }
}

/// The loader thread: reads each requested namespace's files and publishes them.
fn load_requests(rx: Receiver<Root>) {
    for root in rx {
        let loader = Loader::get();
        let slot = match read_accounts(root, &loader.stats) {
            Some(accounts) => Slot::Ready(Arc::new(accounts)),
            None => {
                loader.stats.unresolved.fetch_add(1, Ordering::Relaxed);
                Slot::Unresolved(Instant::now())
            }
        };
        loader.slots.lock().unwrap_or_else(PoisonError::into_inner).put(root.mnt_ns, slot);
    }
}

/// The accounts of `root`'s namespace, through the first candidate process still in it (or
/// init, for the namespace init is in); `None` when none is. A file the root lacks or that is
/// refused names nobody: never the host's accounts for a container's ids.
fn read_accounts(root: Root, stats: &AccountStats) -> Option<Accounts> {
    let dir = root.pids.into_iter().chain([1]).find_map(|pid| root_of(pid, root.mnt_ns))?;
    let read = |file: &str| match read_in_root(&dir, file) {
        Ok((text, cut)) => {
            let counter = if cut { &stats.truncated } else { &stats.read };
            counter.fetch_add(1, Ordering::Relaxed);
            text
        }
        Err(ReadError::NotRegular) => {
            stats.not_regular.fetch_add(1, Ordering::Relaxed);
            log::debug!("mount namespace {}: {file}: not a regular file", root.mnt_ns);
            String::new()
        }
        Err(ReadError::Io(e)) => {
            stats.unreadable.fetch_add(1, Ordering::Relaxed);
            log::debug!("mount namespace {}: {file}: {e}", root.mnt_ns);
            String::new()
        }
    };
    Some(Accounts { users: parse_passwd(&read("etc/passwd")), groups: parse_group(&read("etc/group")) })
}

/// The root directory of process `pid`, if it is in mount namespace `mnt_ns`. Both are read
/// through one `/proc/PID` directory fd, so a pid reused in between cannot mix them up.
fn root_of(pid: u32, mnt_ns: u32) -> Option<OwnedFd> {
    if pid == 0 {
        return None;
    }
    let proc_dir = open_dir(None, &format!("/proc/{pid}")).ok()?;
    let ns = CString::new("ns/mnt").ok()?;
    // SAFETY: a zeroed stat is a valid buffer; valid fd and path.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::fstatat(std::os::fd::AsRawFd::as_raw_fd(&proc_dir), ns.as_ptr(), &mut st, 0) };
    if r != 0 || st.st_ino != u64::from(mnt_ns) {
        return None;
    }
    open_dir(Some(&proc_dir), "root").ok()
}

/// The directory `path` (relative to `at`, else absolute), to resolve paths in.
fn open_dir(at: Option<&OwnedFd>, path: &str) -> io::Result<OwnedFd> {
    let path = CString::new(path).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let at = at.map_or(libc::AT_FDCWD, std::os::fd::AsRawFd::as_raw_fd);
    // SAFETY: a valid fd and NUL-terminated path; the fd returned is owned below.
    let dir = unsafe { libc::openat(at, path.as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) };
    if dir < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(dir) })
}

/// Why a file under a root was not read.
#[derive(Debug)]
enum ReadError {
    /// Not a regular file: a FIFO, a device, a directory, a socket.
    NotRegular,
    Io(io::Error),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// Reads `path` (relative) inside the directory tree `root` (an fd) as its own root: symlinks and
/// `..` cannot leave it. Only a regular file is read, and at most [`MAX_FILE_BYTES`] of it;
/// returns the text (up to its last whole line) and whether it was cut.
fn read_in_root(root: &OwnedFd, path: &str) -> Result<(String, bool), ReadError> {
    let path = CString::new(path).map_err(|_| ReadError::Io(io::ErrorKind::InvalidInput.into()))?;
    // SAFETY: all-zero is a valid open_how (plain integers).
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    // Non-blocking: opening a FIFO must not wait for a writer.
    how.flags = (libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: valid fd, path and open_how of the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            std::os::fd::AsRawFd::as_raw_fd(root),
            path.as_ptr(),
            &how as *const libc::open_how,
            size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error().into());
    }
    // SAFETY: a fresh fd we own.
    let file = unsafe { File::from_raw_fd(fd as i32) };
    if !file.metadata()?.file_type().is_file() {
        return Err(ReadError::NotRegular);
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    let cut = bytes.len() as u64 > MAX_FILE_BYTES;
    if cut {
        // Only whole lines: a cut one could name a user wrongly.
        let end = bytes[..MAX_FILE_BYTES as usize].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        bytes.truncate(end);
    }
    Ok((String::from_utf8_lossy(&bytes).into_owned(), cut))
}

fn parse_passwd(text: &str) -> HashMap<u32, User, RandomState> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let uid = f.get(2)?.parse().ok()?;
            Some((uid, User { name: f[0].to_owned(), home: f.get(5)?.to_string(), shell: f.get(6)?.to_string() }))
        })
        .collect()
}

fn parse_group(text: &str) -> HashMap<u32, String, RandomState> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some((f.get(2)?.parse().ok()?, f[0].to_owned()))
        })
        .collect()
}

/// The account databases one worker uses: the shared loader's, with this worker's copy of
/// the ones it already has (no lock per lookup).
#[derive(Debug, Default)]
pub struct UserDb {
    by_mnt_ns: HashMap<u32, Arc<Accounts>, RandomState>,
    /// Accounts every process sees, instead of its files (an event built from a field map).
    fixed: Option<Arc<Accounts>>,
}

impl UserDb {
    /// These users and groups, whatever a process's files say.
    pub fn fixed(users: HashMap<u32, User>, groups: HashMap<u32, String>) -> Self {
        let accounts = Accounts { users: users.into_iter().collect(), groups: groups.into_iter().collect() };
        UserDb { by_mnt_ns: HashMap::default(), fixed: Some(Arc::new(accounts)) }
    }

    /// The accounts processes in `root` see, when loaded (else asks for them): shared, so
    /// that an event's fields may borrow from them.
    pub fn accounts(&mut self, root: Root) -> Option<Arc<Accounts>> {
        if let Some(fixed) = &self.fixed {
            return Some(fixed.clone());
        }
        if let Some(loaded) = self.by_mnt_ns.get(&root.mnt_ns) {
            return Some(loaded.clone());
        }
        let loaded = Loader::get().accounts(root)?;
        if self.by_mnt_ns.len() >= MAX_ROOTS {
            self.by_mnt_ns.clear();
        }
        self.by_mnt_ns.insert(root.mnt_ns, loaded.clone());
        Some(loaded)
    }

    /// Asks for the accounts of `root` now, if not loaded.
    pub fn prefetch(&mut self, root: Root) {
        self.accounts(root);
    }

    /// Asks for the accounts of `root` and waits up to `bound` for them (at start only:
    /// workers never wait).
    pub fn wait_for(&mut self, root: Root, bound: Duration) {
        let deadline = Instant::now() + bound;
        while self.accounts(root).is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// The account loader's counters.
pub fn account_stats() -> &'static AccountStats {
    &Loader::get().stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_account_files() {
        let users = parse_passwd(
            "root:x:0:0:root:/root:/bin/bash\nbad line\nnobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n",
        );
        assert_eq!(users[&0], User { name: "root".into(), home: "/root".into(), shell: "/bin/bash".into() });
        assert_eq!(users[&65534].name, "nobody");
        assert_eq!(parse_group("root:x:0:\nadm:x:4:syslog\n")[&4], "adm");
    }

    #[test]
    fn resolves_root_on_this_host_once_loaded() {
        let mut db = UserDb::default();
        let pid = std::process::id();
        let mnt_ns = std::fs::metadata(format!("/proc/{pid}/ns/mnt")).map(|m| std::os::unix::fs::MetadataExt::ino(&m));
        let root = Root { mnt_ns: mnt_ns.unwrap() as u32, pids: [pid, 0] };
        let deadline = Instant::now() + Duration::from_secs(10);
        let accounts = loop {
            if let Some(accounts) = db.accounts(root) {
                break accounts;
            }
            assert!(Instant::now() < deadline, "the loader never answered");
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(accounts.user(0).map(|u| u.name.as_str()), Lookup::Known("root"));
        assert_eq!(accounts.group(0), Lookup::Known("root"));
    }

    #[test]
    fn a_process_in_another_namespace_does_not_stand_for_it() {
        // This process is not in namespace 1: neither it nor init is used.
        assert!(root_of(std::process::id(), 1).is_none());
        assert!(read_accounts(Root { mnt_ns: 1, pids: [std::process::id(), 0] }, &AccountStats::default()).is_none());
    }

    /// A root directory holding `etc/` as the test builds it.
    fn root_with(setup: impl FnOnce(&std::path::Path)) -> tempfile_dir::Dir {
        let dir = tempfile_dir::Dir::new();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        setup(dir.path());
        dir
    }

    /// A scratch directory removed on drop (std only).
    mod tempfile_dir {
        pub struct Dir(std::path::PathBuf);
        impl Dir {
            pub fn new() -> Self {
                static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
                let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let p = std::env::temp_dir().join(format!("sensor-users-test-{}-{n}", std::process::id()));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
            pub fn path(&self) -> &std::path::Path {
                &self.0
            }
            pub fn root(&self) -> std::os::fd::OwnedFd {
                super::open_dir(None, self.0.to_str().unwrap()).unwrap()
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn a_fifo_is_refused_without_waiting() {
        let root = root_with(|p| {
            let fifo = CString::new(p.join("etc/passwd").to_str().unwrap()).unwrap();
            // SAFETY: a valid path.
            assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        });
        assert!(matches!(read_in_root(&root.root(), "etc/passwd"), Err(ReadError::NotRegular)));
    }

    #[test]
    fn a_symlink_to_a_device_is_refused() {
        // Resolved in the root: the link's target is the root's own /dev/zero, absent here.
        let root = root_with(|p| std::os::unix::fs::symlink("/dev/zero", p.join("etc/passwd")).unwrap());
        assert!(read_in_root(&root.root(), "etc/passwd").is_err());
        // The host's /dev/zero, as the root it is in: refused as not a regular file.
        assert!(matches!(read_in_root(&open_dir(None, "/").unwrap(), "dev/zero"), Err(ReadError::NotRegular)));
    }

    #[test]
    fn a_symlink_cannot_leave_the_root() {
        let root = root_with(|p| {
            std::fs::create_dir_all(p.join("host/etc")).unwrap();
            std::fs::write(p.join("etc/real"), "inside:x:7:7::/:/bin/sh\n").unwrap();
            // An absolute link names a path in the root, not the sensor's.
            std::os::unix::fs::symlink("/etc/real", p.join("etc/passwd")).unwrap();
            std::os::unix::fs::symlink("../../../../../../etc/shadow", p.join("etc/group")).unwrap();
        });
        let (text, cut) = read_in_root(&root.root(), "etc/passwd").unwrap();
        assert_eq!((text.as_str(), cut), ("inside:x:7:7::/:/bin/sh\n", false));
        // `..` stops at the root: the host's /etc/shadow is not reached.
        let outside = read_in_root(&root.root(), "etc/group");
        assert!(matches!(&outside, Err(ReadError::Io(e)) if e.kind() == io::ErrorKind::NotFound), "{outside:?}");
    }

    #[test]
    fn a_huge_file_is_read_to_its_bound_in_whole_lines() {
        let line = "u:x:1:1::/:/bin/sh\n";
        let root = root_with(|p| {
            std::fs::write(p.join("etc/passwd"), line.repeat((2 * MAX_FILE_BYTES as usize) / line.len())).unwrap()
        });
        let (text, cut) = read_in_root(&root.root(), "etc/passwd").unwrap();
        assert!(cut);
        assert!(text.len() as u64 <= MAX_FILE_BYTES && text.ends_with('\n'), "{}", text.len());
    }
}
