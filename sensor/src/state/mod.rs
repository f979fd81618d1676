//! State: the sensor's view of the node — processes, their fds, users — kept true by the
//! events themselves, and the field values rules read from an event in that context.
//!
//! For each event, [`State::before`] applies what the event changes (a new fd, a new
//! program), rules then read it through [`State::view`], and [`State::after`] applies what
//! must outlive evaluation (a closed fd keeps its name for the `close` event's rules).

mod dns;
mod fd;
mod field_map;
mod fields;
mod process;
mod symbols;
mod users;

use std::{cell::RefCell, collections::HashMap, path::Path, sync::Arc};

pub use dns::{DNS_REFRESH, DnsNames};
pub use fd::{CUT_NAME_BYTES, Fd, FdTable, MAX_FD_NAME_BYTES, MAX_FDS_PER_PROCESS};
pub use field_map::FieldMapEvent;
use fields::{EventChanges, Stream};
pub use fields::{EventView, SensorInfo, node_name};
pub use process::{Process, ProcessTable, read_proc};
pub use users::{AccountStats, Lookup, Root, User, UserDb, account_stats};

use sensor_abi::{config::F_DUPFD_CLOEXEC, record::exe_flags};

use crate::{
    enrich::{ContainerId, ContainerView},
    event::{Event, EventKind, SockAddr, SyscallArgs},
};

const AT_FDCWD: i32 = -100;
const EINPROGRESS: i64 = 115;
/// `O_CLOEXEC`, `SOCK_CLOEXEC` (same bit), and `MFD_CLOEXEC`.
const O_CLOEXEC: u64 = 0o2000000;
const MFD_CLOEXEC: u64 = 1;

/// Limits of the state tables.
#[derive(Clone, Copy, Debug)]
pub struct StateConfig {
    /// Most processes tracked.
    pub max_processes: usize,
    /// How often a live state drops the processes gone from `/proc` whose exit it did not
    /// see (a full table also sweeps, at most once a second).
    pub sweep_interval: std::time::Duration,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self { max_processes: 65536, sweep_interval: std::time::Duration::from_secs(60) }
    }
}

/// Counters of the state tables.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateStats {
    /// Processes tracked now.
    pub processes: usize,
    /// Processes dropped because the table was full.
    pub evicted: u64,
    /// Processes dropped because they were gone from `/proc` (their exit not seen).
    pub swept: u64,
    /// Events from processes the table did not know (read from `/proc` then).
    pub unknown_process: u64,
}

/// Processes, fds and accounts.
#[derive(Debug)]
pub struct State {
    procs: ProcessTable,
    users: RefCell<UserDb>,
    unknown_process: u64,
    /// Live mode: unknown processes are read from this host's `/proc` (not in replays).
    live: bool,
    /// When a live state next drops the processes gone from `/proc`.
    sweep: Sweep,
    /// Overlay upper directory of each mount namespace's root (`None`: not an overlay),
    /// learned from any live process of it, so that short-lived ones resolve too.
    upper_dirs: HashMap<u32, Option<String>, foldhash::fast::RandomState>,
    /// What the last event given to [`State::before`] changed, for the fields that
    /// compare before and after (`fd.name_changed`, `user.prev_uid`, `thread.cap_added`).
    changes: EventChanges,
    /// Addresses of the DNS names the rules use (`fd.sip.name`).
    dns: DnsNames,
    /// Events seen so far: `evt.num`, `evt.reltime`.
    stream: Stream,
    /// The sensor itself: `sensor.pid`, `evt.hostname`.
    sensor: SensorInfo,
}

/// The periodic sweep of a live process table, timed by the events' wall clock.
#[derive(Debug)]
struct Sweep {
    interval_ns: u64,
    /// When the last sweep ran (0: none yet; the table was just seeded from `/proc`).
    last_ns: u64,
}

/// How long a new live state waits for the host's accounts.
const HOST_ACCOUNTS_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// A full table sweeps at most this often: a sweep reads `/proc` once per process.
const FULL_TABLE_SWEEP_NS: u64 = 1_000_000_000;

/// Joins `path` to the directory it is relative to and removes `.` and `..` components,
/// as Falco's `fd.name` does (`fd.nameraw` keeps the path as passed). A relative path in
/// an unknown directory stays relative.
fn absolute(dir: Option<&str>, path: &str) -> String {
    let joined = match dir {
        Some(d) if !path.starts_with('/') => format!("{d}/{path}"),
        _ => path.to_owned(),
    };
    if !joined.starts_with('/') {
        return joined;
    }
    // Most paths are already normal: no empty, `.` or `..` component.
    if joined.as_bytes()[1..].split(|&b| b == b'/').all(|part| !matches!(part, b"" | b"." | b"..")) {
        return joined;
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

impl State {
    /// An empty state.
    pub fn new(cfg: StateConfig) -> Self {
        Self {
            procs: ProcessTable::new(cfg.max_processes),
            users: RefCell::default(),
            unknown_process: 0,
            live: false,
            sweep: Sweep { interval_ns: cfg.sweep_interval.as_nanos() as u64, last_ns: 0 },
            upper_dirs: HashMap::default(),
            changes: EventChanges::default(),
            dns: DnsNames::default(),
            stream: Stream::default(),
            sensor: SensorInfo::current(),
        }
    }

    /// Uses `dns` for the `fd.*ip.name` fields.
    pub fn with_dns(self, dns: DnsNames) -> Self {
        Self { dns, ..self }
    }

    /// A state seeded from every process in `/proc`.
    pub fn from_proc(cfg: StateConfig, boot_to_wall_ns: i128) -> Self {
        let mut s = Self { live: true, ..Self::new(cfg) };
        s.procs.seed(Path::new("/proc"), boot_to_wall_ns);
        let pids: Vec<u32> = s.procs.pids().collect();
        for pid in pids {
            let dir = Path::new("/proc").join(pid.to_string());
            if let Some(ns) = process::mnt_ns_of(&dir) {
                s.upper_dirs.entry(ns).or_insert_with(|| process::overlay_upper_dir(&dir));
                // Every running container's accounts start loading now, not at its first alert.
                s.users.get_mut().prefetch(Root { mnt_ns: ns, pids: [pid, 0] });
            }
        }
        // The host's are waited for (briefly): the first alerts after a start name their user.
        if let Some(ns) = process::mnt_ns_of(Path::new("/proc/1")) {
            s.users.get_mut().wait_for(Root { mnt_ns: ns, pids: [1, 0] }, HOST_ACCOUNTS_WAIT);
        }
        s
    }

    /// The process table.
    pub fn processes(&self) -> &ProcessTable {
        &self.procs
    }

    /// Counters.
    pub fn stats(&self) -> StateStats {
        StateStats {
            processes: self.procs.len(),
            evicted: self.procs.evicted,
            swept: self.procs.swept,
            unknown_process: self.unknown_process,
        }
    }

    /// The fields of `ev` in this state, for the rule engine, with the metadata of its
    /// container when the caller looked it up.
    pub fn view<'a>(&'a self, ev: &'a Event, container: Option<&'a ContainerView>) -> EventView<'a> {
        EventView::new(ev, self, container)
    }

    /// The container of `ev`'s process, when known for the cgroup the event came from. A
    /// runtime moves a process into the container's cgroup between fork and exec, so a
    /// new cgroup id means the container must be looked up again ([`State::set_container`]).
    pub fn container_of(&self, ev: &Event) -> Option<&ContainerId> {
        let p = self.procs.get(ev.pid)?;
        (p.container_cgroup == ev.cgroup_id).then_some(p.container.as_ref()).flatten()
    }

    /// The container the table last knew for process `pid` (seeded, or inherited from its
    /// parent), whatever cgroup it was found for: the fallback when the process is gone
    /// before its cgroup could be read.
    pub fn last_known_container(&self, pid: u32) -> Option<&ContainerId> {
        self.procs.get(pid)?.container.as_ref()
    }

    /// Records the container of process `pid` for events of cgroup `cgroup_id`.
    pub fn set_container(&mut self, pid: u32, cgroup_id: u64, id: Option<ContainerId>) {
        if let Some(p) = self.procs.get_mut(pid) {
            p.container = id;
            p.container_cgroup = cgroup_id;
        }
    }

    /// Replaces what the state knows of a process with `p`: the copy another worker, the
    /// one that followed its parent's fds and credentials, made of it at its fork.
    pub fn adopt(&mut self, p: Process) {
        self.procs.insert(p);
    }

    /// The process of `ev`, made known from `/proc` (or the event) if it was not.
    fn process_of(&mut self, ev: &Event) -> &mut Process {
        if self.procs.get(ev.pid).is_none() {
            self.unknown_process += 1;
            let from_proc = if self.live { read_proc(Path::new("/proc"), ev.pid, 0) } else { None };
            let p = from_proc.unwrap_or_else(|| Process {
                pid: ev.pid,
                ppid: ev.ppid,
                name: ev.comm.clone(),
                exe: ev.comm.clone(),
                start_ns: ev.wall_ts,
                ..Process::default()
            });
            self.procs.insert(p);
        }
        self.procs.get_mut(ev.pid).expect("inserted above")
    }

    /// Whether the program `ev` (a successful exec) runs is in the upper layer of its
    /// overlay root. The upper directory is learned per mount namespace from any live
    /// process of it, so a program that is gone by now still resolves.
    fn exe_upper_layer(&mut self, ev: &Event) -> bool {
        let Some(SyscallArgs::Exec { path, .. }) = ev.syscall().map(|s| &s.args) else { return false };
        let dir = Path::new("/proc").join(ev.pid.to_string());
        let exe = std::fs::read_link(dir.join("exe")).map(|l| l.to_string_lossy().into_owned()).ok();
        let Some(exe) = exe.or_else(|| path.clone()) else { return false };
        let upper = match self.upper_dirs.get(&ev.mnt_ns) {
            Some(known) => known.clone(),
            None if dir.exists() => {
                let found = process::overlay_upper_dir(&dir);
                if self.upper_dirs.len() < 4096 {
                    self.upper_dirs.insert(ev.mnt_ns, found.clone());
                }
                found
            }
            None => None,
        };
        upper.is_some_and(|u| process::in_upper_layer(&u, &exe))
    }

    /// In a live state, drops the processes gone from `/proc` whose exit was not seen
    /// (lost, or before the sensor started): every `sweep_interval`, and when the table is
    /// full, before it evicts anything live.
    fn sweep_if_due(&mut self, now_ns: u64) {
        if self.sweep.last_ns == 0 {
            self.sweep.last_ns = now_ns;
            return;
        }
        let since = now_ns.saturating_sub(self.sweep.last_ns);
        if since < self.sweep.interval_ns && !(self.procs.is_full() && since >= FULL_TABLE_SWEEP_NS) {
            return;
        }
        self.sweep.last_ns = now_ns;
        let swept = self.procs.sweep(|pid| Path::new("/proc").join(pid.to_string()).exists());
        if swept > 0 {
            log::debug!("{swept} processes gone from /proc without an exit event dropped");
        }
    }

    /// Applies what `ev` changes, before rules see it.
    pub fn before(&mut self, ev: &Event) {
        self.changes = EventChanges::default();
        self.stream.record(ev);
        if self.live {
            self.sweep_if_due(ev.wall_ts);
        }
        if let EventKind::CgroupAttach { task_pid, hierarchy, path: Some(path), .. } = &ev.kind {
            self.attach_cgroup(*task_pid, *hierarchy, path);
            return;
        }
        if let Some(SyscallArgs::Setpgid { pid, pgid }) = ev.syscall().filter(|s| s.ret == 0).map(|s| &s.args) {
            self.set_process_group(ev, *pid, *pgid);
        }
        if let EventKind::ProcFork { child_pid, .. } = ev.kind {
            if child_pid != ev.pid {
                let parent = self.process_of(ev).clone();
                // The child keeps its parent's container as a guess, but looks it up again on
                // its first event: runtimes move a new process into the container's cgroup,
                // which on hybrid cgroup hosts may not even change its cgroup v2 id.
                let child = Process {
                    pid: child_pid,
                    ppid: ev.pid,
                    vpid: 0,
                    start_ns: ev.wall_ts,
                    last_seen_ns: ev.wall_ts,
                    container_cgroup: 0,
                    ..parent
                };
                self.procs.insert(child);
            }
            return;
        }
        let live = self.live;
        if live && matches!(ev.syscall().map(|s| &s.args), Some(SyscallArgs::Exec { .. })) {
            // A new program, maybe in a new container: its accounts load while it starts, so
            // its alerts can name its user.
            self.users.get_mut().prefetch(Root { mnt_ns: ev.mnt_ns, pids: [ev.pid, ev.ppid] });
        }
        let exe_upper_layer = match ev.syscall() {
            // Records from the kernel say it themselves (`ExecInfo`); older captures do not.
            Some(sc) if live && sc.ret == 0 && matches!(sc.args, SyscallArgs::Exec { info: None, .. }) => {
                self.exe_upper_layer(ev)
            }
            _ => false,
        };
        // The kernel reports the uid after the call: a set*uid that changed it is only seen
        // by comparing with what the process had before.
        self.changes.prev_uid = self.procs.get(ev.pid).map(|p| p.uid);
        let p = self.process_of(ev);
        p.last_seen_ns = ev.wall_ts;
        p.name.clone_from(&ev.comm);
        p.ppid = ev.ppid;
        p.vpid = ev.ns_pid;
        p.pid_ns = ev.pid_ns;
        p.uid = ev.uid;
        p.gid = ev.gid;
        let Some(sc) = ev.syscall() else { return };
        let ret = sc.ret;
        // A new fd, and whether it closes at the next exec (the kernel closes those without
        // a close event, so a stale entry would outlive them in the programs run next).
        let set_fd = |p: &mut Process, fd: i64, f: Fd, cloexec: bool| {
            if fd >= 0 {
                Arc::make_mut(&mut p.fds).insert(fd as i32, f);
                if cloexec {
                    Arc::make_mut(&mut p.cloexec).insert(fd as i32);
                } else if p.cloexec.contains(&(fd as i32)) {
                    Arc::make_mut(&mut p.cloexec).remove(&(fd as i32));
                }
            }
        };
        // A copy of fd `from` at `to` (dup, fcntl F_DUPFD). A copy of an fd the sensor never
        // saw made (a pipe): whatever `to` held before is gone.
        let copy_fd = |p: &mut Process, from: i32, to: i64, cloexec: bool| match p.fds.get(&from).cloned() {
            Some(f) => set_fd(p, to, f, cloexec),
            None => {
                if p.fds.contains_key(&(to as i32)) {
                    Arc::make_mut(&mut p.fds).remove(&(to as i32));
                }
                if p.cloexec.contains(&(to as i32)) {
                    Arc::make_mut(&mut p.cloexec).remove(&(to as i32));
                }
            }
        };
        // An fd whose open the kernel kept back (the prefilter), named by the first event
        // that uses it; whether it closes at exec is unknown, so it is kept (a later open at
        // its number replaces it).
        if let Some(f) = &sc.fd_file {
            set_fd(p, f.fd.into(), Fd::File { path: f.path.clone() }, false);
        }
        match &sc.args {
            SyscallArgs::Exec { path, exe_file, cgroups, argv, env, info, .. } if ret == 0 => {
                // The container is the one of the cgroups the kernel saw at the exec (a
                // runtime's exec enters the container just before it); without them (an
                // older capture), it is looked up again.
                match cgroups {
                    Some(cgroups) => {
                        p.container = Some(crate::enrich::container_id_from_cgroup(&cgroups.proc_text()));
                        p.container_cgroup = ev.cgroup_id;
                        p.cgroups = Some((**cgroups).clone());
                    }
                    None => p.container_cgroup = 0,
                }
                // The kernel side captures the environment (bounded) and the credentials,
                // executable and terminal; /proc is the fallback for records without them.
                p.env = env.clone();
                if let Some(info) = info {
                    p.exe_ino = Some((info.exe_ino, info.exe_ctime_ns, info.exe_mtime_ns));
                    // `docker exec -t` and the like give the new program a terminal, and a
                    // runtime drops capabilities between fork and exec.
                    p.tty = info.tty;
                    (p.cap_effective, p.cap_permitted, p.cap_inheritable) =
                        (info.cap_effective, info.cap_permitted, info.cap_inheritable);
                    p.loginuid = info.loginuid;
                    p.exe_writable = info.has(exe_flags::WRITABLE);
                    p.exe_upper_layer = info.has(exe_flags::UPPER_LAYER);
                    p.exe_lower_layer = info.has(exe_flags::LOWER_LAYER);
                    p.exe_from_memfd = info.has(exe_flags::FROM_MEMFD);
                    (p.pgid, p.vpgid, p.sid, p.vsid) = (info.pgid, info.vpgid, info.sid, info.vsid);
                    p.fdlimit = Some(info.fdlimit);
                    p.vm_kb = Some((info.vm_size_kb, info.vm_rss_kb, info.vm_swap_kb));
                    p.page_faults = Some((info.maj_flt, info.min_flt));
                    p.pidns_init_start_ns = Some(info.pidns_init_start_ns).filter(|&ns| ns > 0);
                } else {
                    p.exe_upper_layer = exe_upper_layer;
                    if live {
                        // Read as soon as the exec is seen; a process that is already gone keeps none.
                        let dir = Path::new("/proc").join(ev.pid.to_string());
                        if p.env.is_empty() {
                            let (env, truncated) = process::read_environ(&dir);
                            (p.env, p.env_truncated) = (Arc::new(env), truncated);
                        }
                        p.exe_ino = process::exe_inode(&dir);
                        p.tty = process::read_tty(&dir).unwrap_or(p.tty);
                        if let Some((eff, prm, inh)) = process::read_caps(&dir) {
                            (p.cap_effective, p.cap_permitted, p.cap_inheritable) = (eff, prm, inh);
                        }
                    }
                }
                // The file the kernel executed, whatever path the call named (a symlink,
                // /proc/self/exe, an fd); the named path for records without it.
                p.exepath = exe_file.clone().or_else(|| path.clone()).unwrap_or_default();
                if info.is_none() {
                    // fexecve of a memfd runs /dev/fd/N: the memfd behind it decides.
                    let via_fd = ["/dev/fd/", "/proc/self/fd/"]
                        .iter()
                        .find_map(|prefix| path.as_deref().unwrap_or_default().strip_prefix(prefix))
                        .and_then(|n| n.parse::<i32>().ok());
                    p.exe_from_memfd = p.exepath.starts_with("/memfd:")
                        || via_fd.is_some_and(|n| matches!(p.fds.get(&n), Some(Fd::Memfd { .. })));
                }
                let mut args = argv.iter().cloned();
                p.exe = args.next().unwrap_or_else(|| ev.comm.clone());
                p.args = Arc::new(args.collect());
                let cloexec = std::mem::take(&mut p.cloexec);
                if !cloexec.is_empty() {
                    Arc::make_mut(&mut p.fds).retain(|fd, _| !cloexec.contains(fd));
                }
            }
            SyscallArgs::Open { dirfd, path: Some(path), flags, .. } if ret >= 0 => {
                let full = absolute(p.dir_of(*dirfd), path);
                set_fd(p, ret, Fd::File { path: full }, flags & O_CLOEXEC != 0);
            }
            SyscallArgs::MemfdCreate { name, flags } if ret >= 0 => {
                set_fd(p, ret, Fd::Memfd { name: name.clone().unwrap_or_default() }, flags & MFD_CLOEXEC != 0);
            }
            SyscallArgs::Socket { domain, kind, .. } if ret >= 0 => {
                let f = Fd::Socket {
                    domain: *domain,
                    kind: kind & 0xf,
                    local: None,
                    remote: None,
                    connected: false,
                    server: false,
                };
                set_fd(p, ret, f, u64::from(*kind) & O_CLOEXEC != 0);
            }
            SyscallArgs::Connect { fd, addr, local: kernel_local } if ret == 0 || ret == -EINPROGRESS => {
                if let Some(socket @ Fd::Socket { .. }) = Arc::make_mut(&mut p.fds).socket_mut(fd) {
                    let before = socket.name_parts();
                    if let Fd::Socket { remote, local, connected, .. } = socket {
                        remote.clone_from(addr);
                        // The kernel chose the local address and port at the connect.
                        if kernel_local.is_some() {
                            local.clone_from(kernel_local);
                        }
                        *connected = true;
                    }
                    // A UDP socket connected again names a new peer.
                    self.changes.fd_name_changed = socket.name_parts() != before;
                } else if let Some(a) = addr {
                    let f = Fd::Socket {
                        domain: sockaddr_domain(a),
                        kind: 1,
                        local: kernel_local.clone(),
                        remote: Some(a.clone()),
                        connected: true,
                        server: false,
                    };
                    set_fd(p, *fd as i64, f, false);
                }
            }
            SyscallArgs::Bind { fd, addr } if ret == 0 => {
                if let Some(Fd::Socket { local, .. }) = Arc::make_mut(&mut p.fds).socket_mut(fd) {
                    local.clone_from(addr);
                }
            }
            SyscallArgs::Listen { fd, .. } if ret == 0 => {
                if let Some(Fd::Socket { server, .. }) = Arc::make_mut(&mut p.fds).socket_mut(fd) {
                    *server = true;
                }
            }
            SyscallArgs::Accept { fd, addr, flags, local: kernel_local } if ret >= 0 => {
                let (domain, kind, local) = match p.fds.get(fd) {
                    Some(Fd::Socket { domain, kind, local, .. }) => (*domain, *kind, local.clone()),
                    _ => (addr.as_ref().map_or(0, sockaddr_domain), 1, None),
                };
                // The listening socket may be bound to any address; the kernel knows which
                // one this connection came to.
                let local = kernel_local.clone().or(local);
                let f = Fd::Socket { domain, kind, local, remote: addr.clone(), connected: true, server: true };
                set_fd(p, ret, f, flags & O_CLOEXEC != 0);
            }
            SyscallArgs::Fcntl { fd, cmd } if ret >= 0 => copy_fd(p, *fd, ret, *cmd == F_DUPFD_CLOEXEC),
            SyscallArgs::Chdir { path, fd } if ret == 0 => {
                // As Falco does, from the path text: a symlinked directory keeps its
                // link's name.
                p.cwd = match (path, fd) {
                    (Some(path), _) => Some(absolute(p.cwd.as_deref(), path)),
                    (None, Some(fd)) => p.dir_of(Some(*fd)).map(str::to_owned),
                    (None, None) => None,
                };
            }
            SyscallArgs::Setsid if ret >= 0 => {
                (p.sid, p.pgid) = (ev.pid, ev.pid);
                (p.vsid, p.vpgid) = (ev.ns_pid, ev.ns_pid);
            }
            // Only dup3 can set close-on-exec on the copy.
            SyscallArgs::Dup { oldfd, flags, .. } if ret >= 0 => copy_fd(p, *oldfd, ret, flags & O_CLOEXEC != 0),
            // A capset only succeeds on the caller: its header names it by 0 or by its own
            // pid (libcap-ng, as setpriv uses it, gives the pid); any other is EPERM.
            SyscallArgs::Capset { effective, permitted, inheritable, .. } if ret == 0 => {
                let (eff, prm, inh) = (p.cap_effective, p.cap_permitted, p.cap_inheritable);
                p.cap_effective = effective.unwrap_or(p.cap_effective);
                p.cap_permitted = permitted.unwrap_or(p.cap_permitted);
                p.cap_inheritable = inheritable.unwrap_or(p.cap_inheritable);
                self.changes.cap_added =
                    (p.cap_effective & !eff) | (p.cap_permitted & !prm) | (p.cap_inheritable & !inh);
            }
            _ => {}
        }
    }

    /// `setpgid(pid, pgid)` by `ev`'s process: both numbers are in the caller's pid
    /// namespace, 0 meaning the caller and the target itself.
    fn set_process_group(&mut self, ev: &Event, pid: i32, pgid: i32) {
        let host_pid = |ns_pid: i32| -> Option<u32> {
            if ns_pid == 0 {
                return None;
            }
            if ev.pid == ev.ns_pid {
                return Some(ns_pid as u32);
            }
            self.procs.iter().find(|p| p.pid_ns == ev.pid_ns && p.vpid == ns_pid as u32).map(|p| p.pid)
        };
        let target = if pid == 0 { Some(ev.pid) } else { host_pid(pid) };
        let Some(target) = target else { return };
        let group = if pgid == 0 { Some(target) } else { host_pid(pgid) };
        let vgroup = if pgid == 0 { self.procs.get(target).map(|p| p.vpid) } else { Some(pgid as u32) };
        if let Some(p) = self.procs.get_mut(target) {
            p.pgid = group.unwrap_or(0);
            p.vpgid = vgroup.unwrap_or(0);
        }
    }

    /// Moves process `pid` to cgroup `path` of `hierarchy` (`cgroup_attach_task`): a path
    /// naming a container makes it the process's container. A path naming none changes
    /// nothing, since on hybrid hosts runtimes place containers in some hierarchies only.
    fn attach_cgroup(&mut self, pid: u32, hierarchy: u32, path: &str) {
        let Some(p) = self.procs.get_mut(pid) else { return };
        if hierarchy == 0 {
            p.cgroups.get_or_insert_with(Default::default).unified = Some(path.to_owned());
        }
        let id = crate::enrich::container_id_from_cgroup(&format!("{hierarchy}::{path}"));
        if id != ContainerId::Host {
            p.container = Some(id);
            // Looked up again at its next event.
            p.container_cgroup = 0;
        }
    }

    /// Applies what must wait until rules have seen `ev`.
    pub fn after(&mut self, ev: &Event) {
        match &ev.kind {
            EventKind::ProcExit { group_dead: true, .. } => {
                self.procs.remove(ev.pid);
            }
            EventKind::Syscall(sc) => {
                if let (SyscallArgs::Close { fd }, 0) = (&sc.args, sc.ret)
                    && let Some(p) = self.procs.get_mut(ev.pid)
                {
                    if p.fds.contains_key(fd) {
                        Arc::make_mut(&mut p.fds).remove(fd);
                    }
                    if p.cloexec.contains(fd) {
                        Arc::make_mut(&mut p.cloexec).remove(fd);
                    }
                }
            }
            _ => {}
        }
    }
}

fn sockaddr_domain(a: &SockAddr) -> u32 {
    match a {
        SockAddr::Inet { .. } => 2,
        SockAddr::Inet6 { .. } => 10,
        SockAddr::Unix { .. } => 1,
        SockAddr::Other { af } => *af as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::SyscallEvent;

    fn event(pid: u32, kind: EventKind) -> Event {
        Event::for_test(pid, "test", kind)
    }

    fn syscall(pid: u32, name: &str, ret: i64, args: SyscallArgs) -> Event {
        let nr = sensor_abi::syscalls::by_name(name).unwrap().nr;
        event(pid, EventKind::Syscall(SyscallEvent::new(name, nr, ret, args)))
    }

    #[test]
    fn a_fork_shares_the_parents_tables_until_one_changes() {
        let mut s = State::new(StateConfig::default());
        let pid = 4_000_000;
        let fds: FdTable = (0..4096).map(|n| (n, Fd::File { path: format!("/{}", "x".repeat(4000)) })).collect();
        s.procs.insert(Process {
            pid,
            ppid: 1,
            fds: Arc::new(fds),
            env: Arc::new(vec!["A=b".into()]),
            ..Default::default()
        });
        for child in 1..=200 {
            s.before(&event(pid, EventKind::ProcFork { child_pid: pid + child, child_tid: pid + child }));
        }
        let parent = s.procs.get(pid).unwrap();
        for child in 1..=200 {
            let c = s.procs.get(pid + child).unwrap();
            assert!(Arc::ptr_eq(&c.fds, &parent.fds) && Arc::ptr_eq(&c.env, &parent.env), "no copy at fork");
        }
        // A child that closes an fd gets its own table; the parent's is untouched.
        let close = syscall(pid + 1, "close", 0, SyscallArgs::Close { fd: 3 });
        s.before(&close);
        s.after(&close);
        assert_eq!((s.procs.get(pid + 1).unwrap().fds.len(), s.procs.get(pid).unwrap().fds.len()), (4095, 4096));
    }

    #[test]
    fn follows_fork_exec_fds_and_exit() {
        let mut s = State::new(StateConfig::default());
        let pid = 4_000_000; // beyond pid_max: never read from /proc
        s.procs.insert(Process { pid, ppid: 1, cwd: Some("/work".into()), ..Default::default() });
        s.before(&event(pid, EventKind::ProcFork { child_pid: pid + 1, child_tid: pid + 1 }));
        assert_eq!(s.procs.get(pid + 1).map(|p| p.ppid), Some(pid));

        let exec = SyscallArgs::Exec {
            dirfd: None,
            path: Some("/bin/cat".into()),
            exe_file: Some("/usr/bin/cat".into()),
            cgroups: None,
            argv: vec!["cat".into(), "/etc/shadow".into()],
            env: vec!["HOME=/root".into()].into(),
            flags: 0,
            info: Some(Box::new(crate::event::ExecInfo {
                exe_ino: 77,
                tty: 34816,
                cap_effective: 0x20,
                ..Default::default()
            })),
        };
        s.before(&syscall(pid + 1, "execve", 0, exec));
        let open = SyscallArgs::Open {
            dirfd: Some(AT_FDCWD),
            path: Some("notes.txt".into()),
            flags: 0,
            mode: 0,
            resolve: None,
        };
        let ev = syscall(pid + 1, "openat", 3, open);
        s.before(&ev);
        let p = s.procs.get(pid + 1).unwrap();
        assert_eq!(
            (p.exepath.as_str(), p.exe.as_str(), p.args.as_slice()),
            ("/usr/bin/cat", "cat", &["/etc/shadow".to_string()][..])
        );
        assert_eq!((p.exe_ino.map(|i| i.0), p.tty, p.cap_effective), (Some(77), 34816, 0x20), "from the kernel");
        assert_eq!(p.fds.get(&3), Some(&Fd::File { path: "/work/notes.txt".into() }));

        s.before(&syscall(pid + 1, "dup2", 7, SyscallArgs::Dup { oldfd: 3, newfd: Some(7), flags: 0 }));
        let close = syscall(pid + 1, "close", 0, SyscallArgs::Close { fd: 3 });
        s.before(&close);
        assert!(s.procs.get(pid + 1).unwrap().fds.contains_key(&3), "a closing fd keeps its name for the rules");
        s.after(&close);
        let p = s.procs.get(pid + 1).unwrap();
        assert!(!p.fds.contains_key(&3) && p.fds.contains_key(&7));

        let exit = event(pid + 1, EventKind::ProcExit { exit_code: 0, group_dead: true });
        s.before(&exit);
        s.after(&exit);
        assert!(s.procs.get(pid + 1).is_none());
    }

    #[test]
    fn paths_are_made_absolute_and_normal() {
        assert_eq!(absolute(None, "/tmp/../../../etc/passwd"), "/etc/passwd");
        assert_eq!(absolute(Some("/work/a"), "./b/../c"), "/work/a/c");
        assert_eq!(absolute(Some("/"), "etc//hosts"), "/etc/hosts");
        assert_eq!(absolute(None, "rel/x"), "rel/x");
        assert_eq!(absolute(Some("/work"), "a/b"), "/work/a/b");
        assert_eq!(absolute(None, "/"), "/");
        assert_eq!(absolute(None, "/etc/"), "/etc");
        assert_eq!(absolute(None, "/a/.b/..c"), "/a/.b/..c");
    }

    /// The value rules read for `field` (as written, `evt.arg.sig` or `proc.env[HOME]`) on `ev`.
    fn field(s: &State, ev: &Event, field: &str) -> Option<crate::rules::Value<'static>> {
        use crate::rules::FieldSource as _;
        let (name, bracket) = match field.split_once('[') {
            Some((n, rest)) => (n, Some(rest.trim_end_matches(']'))),
            None => (field, None),
        };
        let r = crate::rules::fields::resolve(name, bracket).expect("known field");
        s.view(ev, None).field(r.id, r.arg.as_ref()).map(crate::rules::Value::into_owned)
    }

    fn text(v: &str) -> Option<crate::rules::Value<'_>> {
        Some(crate::rules::Value::Str(v.into()))
    }

    #[test]
    fn set_uid_calls_show_the_uid_before_them() {
        let mut s = State::new(StateConfig::default());
        let pid = 4_000_200;
        s.procs.insert(Process { pid, uid: 1000, ..Default::default() });
        let ids = SyscallArgs::SetIds { id: None, real: Some(0), effective: Some(0), saved: Some(0) };
        let ev = Event { uid: 0, ..syscall(pid, "setresuid", 0, ids) };
        s.before(&ev);
        assert_eq!(field(&s, &ev, "user.prev_uid"), Some(crate::rules::Value::UInt(1000)));
        assert_eq!(field(&s, &ev, "user.uid"), Some(crate::rules::Value::UInt(0)));
        assert_eq!(field(&s, &ev, "evt.arg.euid"), Some(crate::rules::Value::Int(0)), "Falco's argument names");
        let again =
            syscall(pid, "setuid", 0, SyscallArgs::SetIds { id: Some(0), real: None, effective: None, saved: None });
        s.before(&again);
        assert_eq!(field(&s, &again, "user.prev_uid"), Some(crate::rules::Value::UInt(0)), "root already");
        assert_eq!(field(&s, &again, "evt.arg.uid"), Some(crate::rules::Value::Int(0)));
    }

    #[test]
    fn capset_shows_the_capabilities_it_added() {
        let mut s = State::new(StateConfig::default());
        let pid = 4_000_300;
        // CAP_CHOWN (0) and CAP_KILL (5) permitted, only CAP_KILL effective.
        s.procs.insert(Process { pid, cap_effective: 1 << 5, cap_permitted: 1 | 1 << 5, ..Default::default() });
        let raise = SyscallArgs::Capset {
            pid: Some(0),
            effective: Some(1 | 1 << 5),
            permitted: Some(1 | 1 << 5),
            inheritable: Some(0),
        };
        let ev = syscall(pid, "capset", 0, raise);
        s.before(&ev);
        assert_eq!(field(&s, &ev, "thread.cap_added"), text("CAP_CHOWN"));
        assert_eq!(field(&s, &ev, "evt.arg.cap_effective"), text("CAP_CHOWN CAP_KILL"));
        let drop =
            SyscallArgs::Capset { pid: Some(0), effective: Some(0), permitted: Some(1 | 1 << 5), inheritable: Some(0) };
        let ev = syscall(pid, "capset", 0, drop);
        s.before(&ev);
        assert_eq!(field(&s, &ev, "thread.cap_added"), text(""), "dropping adds nothing");
        // The caller named by its own pid, as libcap-ng does: CAP_SYS_BOOT (22) inheritable.
        let own = SyscallArgs::Capset {
            pid: Some(pid as i32),
            effective: Some(0),
            permitted: Some(1 | 1 << 5),
            inheritable: Some(1 << 22),
        };
        let ev = syscall(pid, "capset", 0, own);
        s.before(&ev);
        assert_eq!(field(&s, &ev, "thread.cap_added"), text("CAP_SYS_BOOT"));
        assert_eq!(field(&s, &ev, "thread.cap_inheritable"), text("CAP_SYS_BOOT"));
    }

    #[test]
    fn close_on_exec_fds_end_at_exec_and_dup_of_an_unknown_fd_replaces_its_target() {
        let mut s = State::new(StateConfig::default());
        let pid = 4_000_400;
        s.procs.insert(Process { pid, ..Default::default() });
        // fd 5: a socket closed at exec; fd 6: one that stays.
        s.before(&syscall(pid, "socket", 5, SyscallArgs::Socket { domain: 2, kind: 1 | 0o2000000, protocol: 0 }));
        s.before(&syscall(pid, "socket", 6, SyscallArgs::Socket { domain: 2, kind: 1, protocol: 0 }));
        // dup2 of fd 9, a pipe the sensor never saw made, onto fd 6.
        let dup = SyscallArgs::Dup { oldfd: 9, newfd: Some(6), flags: 0 };
        s.before(&syscall(pid, "dup2", 6, dup));
        assert!(!s.procs.get(pid).unwrap().fds.contains_key(&6), "fd 6 is no longer the socket");
        s.before(&syscall(pid, "socket", 7, SyscallArgs::Socket { domain: 2, kind: 1, protocol: 0 }));
        let exec = SyscallArgs::Exec {
            dirfd: None,
            path: Some("/usr/bin/rustc".into()),
            exe_file: None,
            cgroups: None,
            argv: vec!["rustc".into()],
            env: vec![].into(),
            flags: 0,
            info: None,
        };
        s.before(&syscall(pid, "execve", 0, exec));
        let p = s.procs.get(pid).unwrap();
        assert!(!p.fds.contains_key(&5) && p.fds.contains_key(&7), "{:?}", p.fds);
    }

    #[test]
    fn file_syscalls_give_absolute_paths() {
        let mut s = State::new(StateConfig::default());
        let pid = 4_000_500;
        s.procs.insert(Process { pid, cwd: Some("/root".into()), ..Default::default() });
        let rm = SyscallArgs::Unlink { dirfd: Some(AT_FDCWD), path: Some(".bash_history".into()), flags: 0 };
        let ev = syscall(pid, "unlinkat", 0, rm);
        s.before(&ev);
        assert_eq!(field(&s, &ev, "fs.path.name"), text("/root/.bash_history"));
        assert_eq!(field(&s, &ev, "fs.path.nameraw"), text(".bash_history"));
        let ln = SyscallArgs::Link {
            olddirfd: None,
            oldpath: Some("../etc/shadow".into()),
            newdirfd: Some(AT_FDCWD),
            newpath: Some("s".into()),
            flags: 0,
        };
        let ev = syscall(pid, "symlinkat", 0, ln);
        s.before(&ev);
        assert_eq!(field(&s, &ev, "fs.path.source"), text("../etc/shadow"), "a symlink's content as written");
        assert_eq!(field(&s, &ev, "fs.path.target"), text("/root/s"));
        let chmod = SyscallArgs::Chmod { dirfd: None, path: Some("/tmp/x".into()), fd: None, mode: 0o4755, flags: 0 };
        let ev = syscall(pid, "chmod", 0, chmod);
        s.before(&ev);
        assert_eq!(field(&s, &ev, "fs.path.name"), text("/tmp/x"));
        assert_eq!(
            field(&s, &ev, "evt.arg.mode"),
            text("S_IXOTH|S_IROTH|S_IXGRP|S_IRGRP|S_IXUSR|S_IWUSR|S_IRUSR|S_ISUID")
        );
    }

    #[test]
    fn arguments_render_with_their_names() {
        let s = State::new(StateConfig::default());
        let pid = 4_000_600;
        let kill = syscall(pid, "kill", 0, SyscallArgs::Kill { pid: Some(77), tid: None, sig: 15 });
        assert_eq!(field(&s, &kill, "evt.arg.sig"), text("SIGTERM"));
        assert_eq!(field(&s, &kill, "evt.arg.pid"), Some(crate::rules::Value::Int(77)));
        assert_eq!(
            field(&s, &kill, "sensor.pid"),
            Some(crate::rules::Value::UInt(u64::from(std::process::id()))),
            "the process evaluating the rules"
        );
        let bpf = syscall(pid, "bpf", -1, SyscallArgs::Bpf { cmd: 5 });
        assert_eq!(field(&s, &bpf, "evt.arg.cmd"), text("BPF_PROG_LOAD"));
        let unshare = syscall(pid, "unshare", -1, SyscallArgs::Unshare { flags: 0x1000_0000 | 0x20000 });
        assert_eq!(field(&s, &unshare, "evt.arg.flags"), text("CLONE_NEWNS|CLONE_NEWUSER"));
    }

    #[test]
    fn sockets_gain_addresses() {
        let mut s = State::new(StateConfig::default());
        let pid = 4_000_100;
        s.procs.insert(Process { pid, ..Default::default() });
        s.before(&syscall(pid, "socket", 5, SyscallArgs::Socket { domain: 2, kind: 1, protocol: 0 }));
        let addr = SockAddr::Inet { addr: std::net::Ipv4Addr::LOCALHOST, port: 4444 };
        s.before(&syscall(pid, "connect", 0, SyscallArgs::Connect { fd: 5, addr: Some(addr.clone()), local: None }));
        let f = s.procs.get(pid).unwrap().fds.get(&5).unwrap();
        assert_eq!(f.server(), Some(("127.0.0.1".parse().unwrap(), 4444)));
        assert_eq!(f.typechar(), "4");
        assert!(s.changes.fd_name_changed, "connecting names the peer");
        s.before(&syscall(pid, "connect", 0, SyscallArgs::Connect { fd: 5, addr: Some(addr.clone()), local: None }));
        assert!(!s.changes.fd_name_changed, "the same peer again");
        let other = SockAddr::Inet { addr: std::net::Ipv4Addr::LOCALHOST, port: 5555 };
        s.before(&syscall(pid, "connect", 0, SyscallArgs::Connect { fd: 5, addr: Some(other), local: None }));
        assert!(s.changes.fd_name_changed, "a UDP-style reconnect to another peer");
        s.before(&syscall(pid, "close", 0, SyscallArgs::Close { fd: 5 }));
        assert!(!s.changes.fd_name_changed);
    }

    #[test]
    fn the_exec_names_the_file_the_kernel_ran_and_the_container_it_runs_in() {
        let mut s = State::new(StateConfig::default());
        let pid = 4_000_700;
        s.procs.insert(Process { pid, ..Default::default() });
        let id = "3ad7b26ded6d0123456789abcdef0123456789abcdef0123456789abcdef0123";
        let exec = SyscallArgs::Exec {
            dirfd: None,
            // busybox sh runs applets through /proc/self/exe: the file is busybox.
            path: Some("/proc/self/exe".into()),
            exe_file: Some("/bin/busybox".into()),
            cgroups: Some(Box::new(crate::event::Cgroups {
                unified: Some("/".into()),
                v1: Some(("memory".into(), format!("/docker/{id}"))),
            })),
            argv: vec!["nc".into(), "-e".into(), "/bin/sh".into()],
            env: vec![].into(),
            flags: 0,
            info: Some(Box::new(crate::event::ExecInfo {
                exe_flags: exe_flags::LOWER_LAYER | exe_flags::WRITABLE,
                pgid: pid,
                vpgid: 1,
                fdlimit: 1024,
                ..Default::default()
            })),
        };
        let ev = Event { cgroup_id: 77, ..syscall(pid, "execve", 0, exec) };
        s.before(&ev);
        assert_eq!(field(&s, &ev, "proc.exepath"), text("/bin/busybox"));
        assert_eq!(field(&s, &ev, "container.id"), text("3ad7b26ded6d"), "the container at the exec itself");
        assert_eq!(s.container_of(&ev).map(ContainerId::short), Some("3ad7b26ded6d"));
        assert_eq!(
            field(&s, &ev, "thread.cgroup.memory"),
            Some(crate::rules::Value::Str(format!("/docker/{id}").into()))
        );
        for (name, want) in [
            ("proc.is_exe_lower_layer", true),
            ("proc.is_exe_writable", true),
            ("proc.is_exe_upper_layer", false),
            ("proc.is_exe_from_memfd", false),
            ("proc.is_pgid_leader", true),
        ] {
            assert_eq!(field(&s, &ev, name), Some(crate::rules::Value::Bool(want)), "{name}");
        }
        assert_eq!(field(&s, &ev, "proc.fdlimit"), Some(crate::rules::Value::UInt(1024)));
        // Falco's outputs print `exe_flags=%evt.arg.flags`.
        assert_eq!(field(&s, &ev, "evt.arg.flags"), text("EXE_WRITABLE|EXE_LOWER_LAYER"));
        assert_eq!(field(&s, &ev, "evt.rawarg.flags"), Some(crate::rules::Value::Int(9)));
    }

    #[test]
    fn flags_render_by_name() {
        let s = State::new(StateConfig::default());
        let pid = 4_001_000;
        let mmap = SyscallArgs::Mmap { addr: 0, len: 4096, prot: 5, flags: Some(0x22), fd: Some(-1) };
        assert_eq!(field(&s, &syscall(pid, "mmap", 0, mmap), "evt.arg.prot"), text("PROT_READ|PROT_EXEC"));
        let clone = syscall(pid, "clone", 7, SyscallArgs::Clone { flags: Some(0x2000_0000 | 0x100) });
        assert_eq!(field(&s, &clone, "evt.arg.flags"), text("CLONE_VM|CLONE_NEWPID"));
        let memfd = SyscallArgs::MemfdCreate { name: Some("x".into()), flags: 1 };
        assert_eq!(field(&s, &syscall(pid, "memfd_create", 3, memfd), "evt.arg.flags"), text("MFD_CLOEXEC"));
        let fcntl = SyscallArgs::Fcntl { fd: 3, cmd: 1030 };
        assert_eq!(field(&s, &syscall(pid, "fcntl", 9, fcntl), "evt.arg.cmd"), text("F_DUPFD_CLOEXEC"));
    }

    #[test]
    fn cgroup_moves_and_process_groups_follow_the_kernel() {
        let mut s = State::new(StateConfig::default());
        let (runtime, pid) = (4_000_800, 4_000_801);
        s.procs.insert(Process { pid, vpid: pid, pgid: 1, ..Default::default() });
        let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let attach =
            EventKind::CgroupAttach { task_pid: pid, task_tid: pid, hierarchy: 4, path: Some(format!("/docker/{id}")) };
        s.before(&event(runtime, attach));
        assert_eq!(s.last_known_container(pid).map(ContainerId::short), Some("0123456789ab"));
        let host =
            EventKind::CgroupAttach { task_pid: pid, task_tid: pid, hierarchy: 0, path: Some("/user.slice".into()) };
        s.before(&event(runtime, host));
        assert_eq!(s.last_known_container(pid).map(ContainerId::short), Some("0123456789ab"), "kept");
        s.before(&syscall(pid, "setsid", i64::from(pid), SyscallArgs::Setsid));
        let p = s.procs.get(pid).unwrap();
        assert_eq!((p.sid, p.pgid), (pid, pid));
        s.before(&syscall(pid, "setpgid", 0, SyscallArgs::Setpgid { pid: 0, pgid: 0 }));
        assert_eq!(s.procs.get(pid).unwrap().pgid, pid);
    }

    #[test]
    fn working_directory_and_fcntl_copies_are_followed() {
        let mut s = State::new(StateConfig::default());
        let pid = 4_000_900;
        s.procs.insert(Process { pid, cwd: Some("/root".into()), ..Default::default() });
        s.before(&syscall(pid, "chdir", 0, SyscallArgs::Chdir { path: Some("../etc/".into()), fd: None }));
        assert_eq!(s.procs.get(pid).unwrap().cwd.as_deref(), Some("/etc"));
        let open =
            SyscallArgs::Open { dirfd: Some(AT_FDCWD), path: Some("shadow".into()), flags: 0, mode: 0, resolve: None };
        let ev = syscall(pid, "openat", 3, open);
        s.before(&ev);
        assert_eq!(field(&s, &ev, "fd.name"), text("/etc/shadow"), "relative to the new working directory");
        let dir = SyscallArgs::Open {
            dirfd: Some(AT_FDCWD),
            path: Some("/usr/lib".into()),
            flags: 0,
            mode: 0,
            resolve: None,
        };
        s.before(&syscall(pid, "openat", 4, dir));
        s.before(&syscall(pid, "fchdir", 0, SyscallArgs::Chdir { path: None, fd: Some(4) }));
        assert_eq!(s.procs.get(pid).unwrap().cwd.as_deref(), Some("/usr/lib"));
        s.before(&syscall(pid, "fcntl", 9, SyscallArgs::Fcntl { fd: 3, cmd: sensor_abi::config::F_DUPFD_CLOEXEC }));
        let p = s.procs.get(pid).unwrap();
        assert_eq!(p.fds.get(&9), Some(&Fd::File { path: "/etc/shadow".into() }));
        assert!(p.cloexec.contains(&9));
    }
}
