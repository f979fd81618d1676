//! The process table: what the sensor knows of each process, seeded from `/proc` and kept
//! true by fork, exec and exit events.

use std::{
    collections::{HashMap, HashSet},
    fs,
    path::Path,
    sync::Arc,
};

use super::fd::{Fd, FdTable};
use crate::{
    enrich::{ContainerId, container_id_from_cgroup},
    event::Cgroups,
};

/// What the sensor knows of one process (thread group).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Process {
    /// Process id (host view).
    pub pid: u32,
    /// Parent process id.
    pub ppid: u32,
    /// Process id in its pid namespace.
    pub vpid: u32,
    /// Session id.
    pub sid: u32,
    /// Session id in its pid namespace (0: outside it, or unknown).
    pub vsid: u32,
    /// Process group id.
    pub pgid: u32,
    /// Process group id in its pid namespace (0: outside it, or unknown).
    pub vpgid: u32,
    /// Inode of its pid namespace (0: unknown).
    pub pid_ns: u32,
    /// Command name (`comm`).
    pub name: String,
    /// `argv[0]`.
    pub exe: String,
    /// Full path of the executable.
    pub exepath: String,
    /// Arguments after `argv[0]`. Shared with forked children until one changes it (an
    /// exec): a fork costs no copy.
    pub args: Arc<Vec<String>>,
    /// Working directory, when known.
    pub cwd: Option<String>,
    /// Controlling terminal device number (0: none).
    pub tty: u32,
    /// Real user id.
    pub uid: u32,
    /// Real group id.
    pub gid: u32,
    /// Login (audit) user id; `u32::MAX` when unset.
    pub loginuid: u32,
    /// Effective capabilities.
    pub cap_effective: u64,
    /// Permitted capabilities.
    pub cap_permitted: u64,
    /// Inheritable capabilities.
    pub cap_inheritable: u64,
    /// Wall-clock start (or exec) time, ns since the epoch; 0 when unknown.
    pub start_ns: u64,
    /// Wall-clock time of its last event, ns since the epoch: a full table evicts the
    /// processes idle longest first.
    pub last_seen_ns: u64,
    /// The executable was run from a memfd.
    pub exe_from_memfd: bool,
    /// The executable is writable by the process's user (or its capabilities).
    pub exe_writable: bool,
    /// The executable lives in a lower (image) layer of an overlay root.
    pub exe_lower_layer: bool,
    /// Soft limit of open files, when known.
    pub fdlimit: Option<u64>,
    /// Memory at its last exec (or when first seen): virtual, resident, swapped, KiB.
    pub vm_kb: Option<(u64, u64, u64)>,
    /// Major and minor page faults at its last exec (or when first seen).
    pub page_faults: Option<(u64, u64)>,
    /// Start of the init of its pid namespace, ns since the epoch, when known.
    pub pidns_init_start_ns: Option<u64>,
    /// Its cgroups, as the kernel saw them at its exec (or read from `/proc`).
    pub cgroups: Option<Cgroups>,
    /// Environment at exec (`KEY=value`), when it could be read; at most
    /// [`MAX_ENV_BYTES`]. Shared with forked children.
    pub env: Arc<Vec<String>>,
    /// `env` is cut at [`MAX_ENV_BYTES`].
    pub env_truncated: bool,
    /// The executable lives in the upper (writable) layer of an overlay root: it was
    /// written after the container started rather than shipped in its image.
    pub exe_upper_layer: bool,
    /// Inode, change time and modification time (ns) of the executable, when known.
    pub exe_ino: Option<(u64, u64, u64)>,
    /// The container the process runs in (from its cgroup); `None` when not known.
    pub container: Option<ContainerId>,
    /// The cgroup v2 id `container` was found for (0: not known); an event from another
    /// cgroup means the process moved (a runtime's exec) and the container is looked up again.
    pub container_cgroup: u64,
    /// Open file descriptors. Shared with forked children until one opens or closes one
    /// (`Arc::make_mut`): a fork costs no copy, whatever the table holds.
    pub fds: Arc<FdTable>,
    /// Those of `fds` opened close-on-exec: a successful exec drops them.
    pub cloexec: Arc<HashSet<i32>>,
}

impl Process {
    /// The directory a path relative to `dirfd` starts in: the working directory for
    /// `AT_FDCWD` (or no dirfd), else the path of that fd; `None` when not known.
    pub fn dir_of(&self, dirfd: Option<i32>) -> Option<&str> {
        match dirfd {
            None | Some(super::AT_FDCWD) => self.cwd.as_deref(),
            Some(fd) => self.fds.get(&fd).and_then(Fd::path),
        }
    }

    /// `proc.cmdline`: the name followed by the arguments.
    pub fn cmdline(&self) -> String {
        let len = self.name.len() + self.args.iter().map(|a| a.len() + 1).sum::<usize>();
        let mut s = String::with_capacity(len);
        s.push_str(&self.name);
        for a in self.args.iter() {
            s.push(' ');
            s.push_str(a);
        }
        s
    }
}

/// Reads one process from `/proc/<pid>` (under `root`, normally `/proc`); `None` if it is
/// gone or unreadable.
pub fn read_proc(root: &Path, pid: u32, boot_to_wall_ns: i128) -> Option<Process> {
    let dir = root.join(pid.to_string());
    let stat = fs::read_to_string(dir.join("stat")).ok()?;
    // "pid (comm) state ppid pgrp session tty_nr ..." where comm may contain spaces and ')'.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_owned();
    let rest: Vec<&str> = stat.get(close + 2..)?.split(' ').collect();
    let field = |i: usize| rest.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let (ppid, pgid, sid, tty, start_ticks) =
        (field(1) as u32, field(2) as u32, field(3) as u32, field(4) as u32, field(19));
    let (minflt, majflt) = (field(7), field(9));
    let cmdline = fs::read(dir.join("cmdline")).unwrap_or_default();
    let mut argv: Vec<String> = cmdline
        .strip_suffix(&[0])
        .unwrap_or(&cmdline)
        .split(|&b| b == 0)
        .filter(|_| !cmdline.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let exe = if argv.is_empty() { name.clone() } else { argv.remove(0) };
    let link = |n: &str| fs::read_link(dir.join(n)).ok().map(|p| p.to_string_lossy().into_owned());
    let exepath = link("exe").unwrap_or_default();
    let exepath_for_layer = exepath.clone();
    let status = fs::read_to_string(dir.join("status")).unwrap_or_default();
    let status_field = |key: &str| status.lines().find_map(|l| l.strip_prefix(key)).map(str::trim);
    let first_id = |key: &str| status_field(key).and_then(|v| v.split_whitespace().next()?.parse().ok()).unwrap_or(0);
    let (cap_effective, cap_permitted, cap_inheritable) = read_caps(&dir).unwrap_or_default();
    // The innermost namespace's view is the last of the NS* columns.
    let ns_last = |key: &str| status_field(key).and_then(|v| v.split_whitespace().last()?.parse::<u32>().ok());
    let vpid = ns_last("NSpid:").unwrap_or(pid);
    let kb = |key: &str| status_field(key).and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok()).unwrap_or(0);
    let fdlimit = fs::read_to_string(dir.join("limits")).ok().and_then(|limits| {
        let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
        line.split_whitespace().nth(3)?.parse().ok()
    });
    let loginuid =
        fs::read_to_string(dir.join("loginuid")).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(u32::MAX);
    // starttime is in clock ticks since boot.
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let start_boot_ns = start_ticks * (1_000_000_000 / hz);
    let cgroup_text = fs::read_to_string(dir.join("cgroup")).ok();
    let (env, env_truncated) = read_environ(&dir);
    Some(Process {
        pid,
        ppid,
        vpid,
        sid,
        vsid: ns_last("NSsid:").unwrap_or(0),
        pgid,
        vpgid: ns_last("NSpgid:").unwrap_or(0),
        pid_ns: mnt_or_pid_ns(&dir, "pid").unwrap_or(0),
        fdlimit,
        vm_kb: Some((kb("VmSize:"), kb("VmRSS:"), kb("VmSwap:"))),
        page_faults: Some((majflt, minflt)),
        pidns_init_start_ns: None,
        cgroups: cgroup_text.as_deref().map(cgroups_from_proc),
        exe_writable: false,
        exe_lower_layer: false,
        name,
        exe,
        exe_from_memfd: exepath.starts_with("/memfd:"),
        exepath,
        args: argv.into(),
        cwd: link("cwd"),
        tty,
        uid: first_id("Uid:"),
        gid: first_id("Gid:"),
        loginuid,
        cap_effective,
        cap_permitted,
        cap_inheritable,
        start_ns: (start_boot_ns as i128 + boot_to_wall_ns).max(0) as u64,
        // Not seen yet: idle since it started.
        last_seen_ns: (start_boot_ns as i128 + boot_to_wall_ns).max(0) as u64,
        container: cgroup_text.as_deref().map(container_id_from_cgroup),
        container_cgroup: 0,
        exe_upper_layer: overlay_upper_dir(&dir).is_some_and(|upper| in_upper_layer(&upper, &exepath_for_layer)),
        env: Arc::new(env),
        env_truncated,
        exe_ino: exe_inode(&dir),
        fds: super::fd::read_fds(&dir).into(),
        // Unknown for processes found running: their fds stay until closed or replaced.
        cloexec: Arc::default(),
    })
}

/// The environment of a process (`/proc/PID/environ`), at most [`MAX_ENV_BYTES`] of it,
/// and whether it was longer (the rest is not read).
pub fn read_environ(proc_dir: &Path) -> (Vec<String>, bool) {
    let mut raw = Vec::new();
    if let Ok(f) = fs::File::open(proc_dir.join("environ")) {
        // One byte more than is kept tells whether there was more. An unreadable environ
        // (the process is gone) leaves what was read.
        let _partial_read_is_kept =
            std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_ENV_BYTES as u64 + 1), &mut raw);
    }
    let truncated = raw.len() > MAX_ENV_BYTES;
    raw.truncate(MAX_ENV_BYTES);
    let vars = raw.split(|&b| b == 0).filter(|v| !v.is_empty()).map(|v| String::from_utf8_lossy(v).into_owned());
    (vars.collect(), truncated)
}

/// Most bytes of a process's environment kept (the process sets it: 2 MiB is allowed).
pub const MAX_ENV_BYTES: usize = 32 << 10;

/// Effective, permitted and inheritable capabilities from `/proc/PID/status`.
pub fn read_caps(proc_dir: &Path) -> Option<(u64, u64, u64)> {
    let status = fs::read_to_string(proc_dir.join("status")).ok()?;
    let cap = |key: &str| {
        status.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
    };
    Some((cap("CapEff:")?, cap("CapPrm:")?, cap("CapInh:")?))
}

/// The upper (writable) directory of the overlay mounted at a process's root, from its
/// `/proc/PID/mountinfo`; `None` when the root is not an overlay.
pub fn overlay_upper_dir(proc_dir: &Path) -> Option<String> {
    let mountinfo = fs::read_to_string(proc_dir.join("mountinfo")).ok()?;
    // "id parent major:minor root mountpoint options [optional...] - fstype source superoptions"
    mountinfo.lines().find_map(|line| {
        let (head, tail) = line.split_once(" - ")?;
        let mountpoint = head.split(' ').nth(4)?;
        let mut tail = tail.split(' ');
        let (fstype, _source, options) = (tail.next()?, tail.next()?, tail.next()?);
        (mountpoint == "/" && fstype == "overlay")
            .then(|| options.split(',').find_map(|o| o.strip_prefix("upperdir=")).map(str::to_owned))
            .flatten()
    })
}

/// Whether `exepath` (as the process sees it) exists in the overlay upper directory `upper`.
pub fn in_upper_layer(upper: &str, exepath: &str) -> bool {
    exepath.starts_with('/') && fs::symlink_metadata(format!("{upper}{exepath}")).is_ok()
}

/// The mount namespace inode of a process.
pub fn mnt_ns_of(proc_dir: &Path) -> Option<u32> {
    mnt_or_pid_ns(proc_dir, "mnt")
}

/// The inode of namespace `kind` (`mnt`, `pid`) of a process.
fn mnt_or_pid_ns(proc_dir: &Path, kind: &str) -> Option<u32> {
    let link = fs::read_link(proc_dir.join("ns").join(kind)).ok()?;
    link.to_str()?.strip_prefix(kind)?.strip_prefix(":[")?.strip_suffix(']')?.parse().ok()
}

/// The cgroups of `/proc/PID/cgroup`: the default hierarchy's path, and the first v1
/// hierarchy with one controller that the kernel side would also read (`memory`, `pids`
/// or `cpu`).
fn cgroups_from_proc(text: &str) -> Cgroups {
    let mut cgroups = Cgroups::default();
    let lines: Vec<(&str, &str)> =
        text.lines().filter_map(|l| l.split_once(':')).filter_map(|(_, rest)| rest.split_once(':')).collect();
    cgroups.unified = lines.iter().find(|(controllers, _)| controllers.is_empty()).map(|(_, p)| (*p).to_owned());
    cgroups.v1 = ["memory", "pids", "cpu"].iter().find_map(|want| {
        lines
            .iter()
            .find(|(controllers, _)| controllers.split(',').any(|c| c == *want))
            .map(|(_, p)| ((*want).to_owned(), (*p).to_owned()))
    });
    cgroups
}

/// The controlling terminal of a process (`tty_nr` of `/proc/PID/stat`).
pub fn read_tty(proc_dir: &Path) -> Option<u32> {
    let stat = fs::read_to_string(proc_dir.join("stat")).ok()?;
    stat.get(stat.rfind(')')? + 2..)?.split(' ').nth(4)?.parse().ok()
}

/// Inode, ctime and mtime (ns) of a process's executable (`/proc/PID/exe`).
pub fn exe_inode(proc_dir: &Path) -> Option<(u64, u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(proc_dir.join("exe")).ok()?;
    let ns = |s: i64, n: i64| (s.max(0) as u64) * 1_000_000_000 + n.max(0) as u64;
    Some((m.ino(), ns(m.ctime(), m.ctime_nsec()), ns(m.mtime(), m.mtime_nsec())))
}

/// All processes by pid, bounded.
#[derive(Debug)]
pub struct ProcessTable {
    /// Seeded hashing: looked up several times per event, and faster than SipHash.
    procs: HashMap<u32, Process, foldhash::fast::RandomState>,
    max: usize,
    /// Processes dropped because the table was full.
    pub evicted: u64,
    /// Processes removed because they were gone from `/proc` (their exit was not seen).
    pub swept: u64,
}

impl ProcessTable {
    /// An empty table holding at most `max` processes.
    pub fn new(max: usize) -> Self {
        Self { procs: HashMap::default(), max: max.max(1), evicted: 0, swept: 0 }
    }

    /// Whether the table holds as many processes as it may.
    pub fn is_full(&self) -> bool {
        self.procs.len() >= self.max
    }

    /// Seeds the table from every process in `/proc`.
    pub fn seed(&mut self, root: &Path, boot_to_wall_ns: i128) {
        let Ok(entries) = fs::read_dir(root) else { return };
        for e in entries.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|n| n.parse().ok())
                && let Some(p) = read_proc(root, pid, boot_to_wall_ns)
            {
                self.insert(p);
            }
        }
    }

    /// Adds or replaces a process, making room first when full ([`Self::make_room`]).
    pub fn insert(&mut self, p: Process) {
        if self.is_full() && !self.procs.contains_key(&p.pid) {
            self.make_room();
        }
        self.procs.insert(p.pid, p);
    }

    /// Evicts a sixty-fourth of the table (one scan per that many inserts): the leaves (no
    /// process's parent) idle longest, so that ancestors, which every descendant's
    /// `proc.aname` needs, go last; then, if leaves were too few, the idlest of the rest.
    fn make_room(&mut self) {
        let batch = (self.max / 64).max(1);
        let parents: std::collections::HashSet<u32, foldhash::fast::RandomState> =
            self.procs.values().map(|p| p.ppid).collect();
        let mut leaves: Vec<(u64, u32)> =
            self.procs.values().filter(|p| !parents.contains(&p.pid)).map(|p| (p.last_seen_ns, p.pid)).collect();
        if leaves.len() < batch {
            leaves = self.procs.values().map(|p| (p.last_seen_ns, p.pid)).collect();
        }
        let n = batch.min(leaves.len());
        if n < leaves.len() {
            leaves.select_nth_unstable(n);
        }
        for &(_, pid) in &leaves[..n] {
            self.procs.remove(&pid);
        }
        self.evicted += n as u64;
    }

    /// Removes the processes `alive` says are gone (an exit the sensor did not see);
    /// returns how many.
    pub fn sweep(&mut self, alive: impl Fn(u32) -> bool) -> usize {
        let before = self.procs.len();
        self.procs.retain(|&pid, _| alive(pid));
        let swept = before - self.procs.len();
        self.swept += swept as u64;
        swept
    }

    /// A process by pid.
    pub fn get(&self, pid: u32) -> Option<&Process> {
        self.procs.get(&pid)
    }

    /// A process by pid, mutably.
    pub fn get_mut(&mut self, pid: u32) -> Option<&mut Process> {
        self.procs.get_mut(&pid)
    }

    /// Removes a process.
    pub fn remove(&mut self, pid: u32) -> Option<Process> {
        self.procs.remove(&pid)
    }

    /// The pids in the table.
    pub fn pids(&self) -> impl Iterator<Item = u32> + '_ {
        self.procs.keys().copied()
    }

    /// Every process in the table, in no order.
    pub fn iter(&self) -> impl Iterator<Item = &Process> {
        self.procs.values()
    }

    /// Processes in the table.
    pub fn len(&self) -> usize {
        self.procs.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }

    /// The ancestors of `pid`, parent first, at most `max` of them (stops at a loop or an
    /// unknown process).
    pub fn ancestors(&self, pid: u32, max: usize) -> Vec<&Process> {
        self.lineage(pid).take(max).collect()
    }

    /// The ancestors of `pid`, parent first, without allocating for the first
    /// [`Lineage::INLINE`] generations: rules read one or two of them on most events.
    pub fn lineage(&self, pid: u32) -> Lineage<'_> {
        Lineage {
            table: self,
            next: self.procs.get(&pid).map(|p| p.ppid),
            inline: [0; Lineage::INLINE],
            len: 0,
            more: Vec::new(),
        }
    }

    /// The ancestor `level` generations up (1: the parent), as [`ProcessTable::ancestors`]
    /// finds it.
    pub fn ancestor(&self, pid: u32, level: usize) -> Option<&Process> {
        self.lineage(pid).nth(level.checked_sub(1)?)
    }
}

/// The walk up a process's ancestry ([`ProcessTable::lineage`]): it stops at pid 0, at an
/// unknown process, or when a pid comes round again (a loop in a corrupted table).
#[derive(Debug)]
pub struct Lineage<'t> {
    table: &'t ProcessTable,
    next: Option<u32>,
    /// The pids yielded so far: the first ones inline, the rest in `more`.
    inline: [u32; Lineage::INLINE],
    len: usize,
    more: Vec<u32>,
}

impl Lineage<'_> {
    /// Generations remembered without allocating.
    pub const INLINE: usize = 16;

    fn seen(&self, pid: u32) -> bool {
        self.inline[..self.len.min(Self::INLINE)].contains(&pid) || self.more.contains(&pid)
    }
}

impl<'t> Iterator for Lineage<'t> {
    type Item = &'t Process;

    fn next(&mut self) -> Option<&'t Process> {
        let ppid = self.next.take()?;
        if ppid == 0 || self.seen(ppid) {
            return None;
        }
        let parent = self.table.procs.get(&ppid)?;
        match self.inline.get_mut(self.len) {
            Some(slot) => *slot = ppid,
            None => self.more.push(ppid),
        }
        self.len += 1;
        self.next = Some(parent.ppid);
        Some(parent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_from_proc() {
        let me = read_proc(Path::new("/proc"), std::process::id(), 0).expect("own /proc entry");
        assert_eq!(me.pid, std::process::id());
        assert_eq!(me.ppid, std::os::unix::process::parent_id());
        assert!(me.exepath.ends_with(std::env::current_exe().unwrap().file_name().unwrap().to_str().unwrap()));
        assert!(me.fds.contains_key(&0) || me.fds.contains_key(&1), "stdio fds are listed");
        assert!(me.container.is_some(), "the cgroup was read");
    }

    #[test]
    fn finds_executables_in_the_overlay_upper_layer() {
        let base = std::env::temp_dir().join(format!("sensor-upper-{}", std::process::id()));
        let upper = base.join("upper");
        fs::create_dir_all(upper.join("tmp")).unwrap();
        fs::write(upper.join("tmp/dropped"), b"x").unwrap();
        let line = format!(
            "812 700 0:91 / / rw,relatime master:1 - overlay overlay rw,lowerdir=/l1:/l2,upperdir={},workdir=/w\n\
             813 812 0:92 / /proc rw - proc proc rw\n",
            upper.display()
        );
        fs::write(base.join("mountinfo"), line).unwrap();
        let dir = overlay_upper_dir(&base).expect("an overlay root");
        assert!(in_upper_layer(&dir, "/tmp/dropped"));
        assert!(!in_upper_layer(&dir, "/bin/sh"));
        fs::write(base.join("mountinfo"), "1 0 8:1 / / rw - ext4 /dev/vda rw\n").unwrap();
        assert_eq!(overlay_upper_dir(&base), None, "not an overlay root");
        fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn a_full_table_evicts_idle_leaves_before_ancestors() {
        let mut t = ProcessTable::new(4);
        // 1 → 10 → 20, and two leaves of 10: 11 idle longest, 12 seen last.
        for (pid, ppid, seen) in [(1, 0, 1), (10, 1, 2), (20, 10, 9), (11, 10, 3), (12, 10, 8)] {
            t.insert(Process { pid, ppid, last_seen_ns: seen, ..Default::default() });
        }
        assert_eq!((t.len(), t.evicted), (4, 1));
        assert!(t.get(11).is_none(), "the idlest leaf went");
        assert!(t.get(1).is_some() && t.get(10).is_some(), "ancestors stay, however idle");
        let names: Vec<u32> = t.ancestors(20, 10).iter().map(|p| p.pid).collect();
        assert_eq!(names, [10, 1]);
        assert_eq!(t.ancestors(20, 1).len(), 1);
    }

    #[test]
    fn a_sweep_removes_what_is_gone() {
        let mut t = ProcessTable::new(10);
        for pid in [1, 2, 3] {
            t.insert(Process { pid, ..Default::default() });
        }
        assert_eq!(t.sweep(|pid| pid != 2), 1);
        assert_eq!((t.len(), t.swept), (2, 1));
    }

    #[test]
    fn lineage_stops_at_a_loop_past_the_inline_generations() {
        let mut t = ProcessTable::new(100);
        // 1000 → 1001 → … → 1039, whose parent is 1010 again.
        for i in 0..40 {
            let pid = 1000 + i;
            t.insert(Process { pid, ppid: if i == 39 { 1010 } else { pid + 1 }, ..Default::default() });
        }
        t.insert(Process { pid: 5, ppid: 5, ..Default::default() });
        assert_eq!(t.ancestors(1000, 64).len(), 39);
        assert_eq!(t.ancestor(1000, 39).map(|p| p.pid), Some(1039));
        assert_eq!(t.ancestor(1000, 40).map(|p| p.pid), None, "1010 came round again");
        assert_eq!(t.ancestor(1000, 0).map(|p| p.pid), None, "level 0 is the process, not an ancestor");
        assert_eq!(t.ancestors(5, 3).iter().map(|p| p.pid).collect::<Vec<_>>(), [5], "its own parent, once");
    }
}
