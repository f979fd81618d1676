//! File descriptors: what each open fd of a process refers to.

use std::{borrow::Cow, collections::HashMap, fs, net::IpAddr, path::Path};

use crate::event::SockAddr;

/// Most fds remembered per process (the rest are not tracked).
pub const MAX_FDS_PER_PROCESS: usize = 4096;
/// Most bytes of fd names (paths) kept whole per process; past them, a new fd's name is
/// cut to [`CUT_NAME_BYTES`]. With [`MAX_FDS_PER_PROCESS`], a process holds at most about
/// 2 MiB of names in the sensor, however long the paths it opens.
pub const MAX_FD_NAME_BYTES: usize = 1 << 20;
/// What is kept of a new fd's name once its process passed [`MAX_FD_NAME_BYTES`]: enough
/// for every path a rule names (`/etc/shadow` is never cut), while a flood of long paths
/// costs little.
pub const CUT_NAME_BYTES: usize = 256;

/// A process's open fds, with the bytes of their names counted: past
/// [`MAX_FD_NAME_BYTES`], new names are cut and the table says so ([`FdTable::is_truncated`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FdTable {
    /// Seeded hashing, as the process table's: a process picks its fd numbers.
    fds: HashMap<i32, Fd, foldhash::fast::RandomState>,
    name_bytes: usize,
    truncated: bool,
}

impl std::ops::Deref for FdTable {
    type Target = HashMap<i32, Fd, foldhash::fast::RandomState>;

    fn deref(&self) -> &Self::Target {
        &self.fds
    }
}

impl FdTable {
    /// Sets fd `num` to `fd`, cutting its name when the table's names passed their bound.
    /// Past [`MAX_FDS_PER_PROCESS`] fds, a new number is not tracked (and the table is
    /// marked truncated).
    pub fn insert(&mut self, num: i32, mut fd: Fd) {
        if self.fds.len() >= MAX_FDS_PER_PROCESS && !self.fds.contains_key(&num) {
            self.truncated = true;
            return;
        }
        self.remove(&num);
        if self.name_bytes + fd.name_bytes() > MAX_FD_NAME_BYTES && fd.cut_name(CUT_NAME_BYTES) {
            self.truncated = true;
        }
        self.name_bytes += fd.name_bytes();
        self.fds.insert(num, fd);
    }

    /// Forgets fd `num`.
    pub fn remove(&mut self, num: &i32) -> Option<Fd> {
        let fd = self.fds.remove(num)?;
        self.name_bytes -= fd.name_bytes();
        Some(fd)
    }

    /// Keeps only the fds `keep` is true for.
    pub fn retain(&mut self, mut keep: impl FnMut(&i32, &Fd) -> bool) {
        let mut freed = 0;
        self.fds.retain(|num, fd| {
            let kept = keep(num, fd);
            if !kept {
                freed += fd.name_bytes();
            }
            kept
        });
        self.name_bytes -= freed;
    }

    /// The socket at fd `num`, to update its addresses (a socket's name is not counted).
    pub fn socket_mut(&mut self, num: &i32) -> Option<&mut Fd> {
        self.fds.get_mut(num).filter(|fd| matches!(fd, Fd::Socket { .. }))
    }

    /// Whether a name was cut or an fd left untracked at a bound.
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }
}

impl FromIterator<(i32, Fd)> for FdTable {
    fn from_iter<I: IntoIterator<Item = (i32, Fd)>>(fds: I) -> Self {
        let mut table = FdTable::default();
        for (num, fd) in fds {
            table.insert(num, fd);
        }
        table
    }
}

/// What an fd refers to.
#[derive(Clone, Debug, PartialEq)]
pub enum Fd {
    /// A file, directory or device, by path.
    File {
        /// Absolute path (or as opened, when the directory was unknown).
        path: String,
    },
    /// A socket.
    Socket {
        /// `AF_*`, 0 when unknown (seeded from /proc).
        domain: u32,
        /// `SOCK_*` type without flags.
        kind: u32,
        /// Local address, when known.
        local: Option<SockAddr>,
        /// Remote address, when known.
        remote: Option<SockAddr>,
        /// The socket accepted a connection or connected.
        connected: bool,
        /// Server side: accepted (or listening) rather than connecting.
        server: bool,
    },
    /// A memfd, by name.
    Memfd {
        /// Name given to `memfd_create`.
        name: String,
    },
    /// Something else (pipe, eventfd, ...), as `/proc` names it.
    Other {
        /// The `/proc/PID/fd` link text.
        name: String,
    },
}

const AF_INET: u32 = 2;
const AF_UNIX: u32 = 1;
const AF_INET6: u32 = 10;
const AF_NETLINK: u32 = 16;
const SOCK_DGRAM: u32 = 2;
const SOCK_RAW: u32 = 3;

/// Kinds of descriptor `/proc/PID/fd` names by their link text, as libsinsp types them:
/// (`fd.typechar`, `fd.type`, start of the link text).
const LINK_KINDS: &[(&str, &str, &str)] = &[
    ("p", "pipe", "pipe:"),
    ("e", "event", "anon_inode:[eventfd]"),
    ("s", "signalfd", "anon_inode:[signalfd]"),
    ("l", "eventpoll", "anon_inode:[eventpoll]"),
    ("i", "inotify", "anon_inode:inotify"),
    ("t", "timerfd", "anon_inode:[timerfd]"),
    ("b", "bpf", "anon_inode:bpf"),
    ("u", "userfaultfd", "anon_inode:[userfaultfd]"),
    ("r", "io_uring", "anon_inode:[io_uring]"),
    ("P", "pidfd", "anon_inode:[pidfd]"),
];

/// Where I/O on a descriptor kind counts in `evt.category`, as libsinsp sorts them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoClass {
    /// Files and directories.
    File,
    /// IP sockets.
    Net,
    /// Unix sockets, pipes, event and signal fds, inotify, userfaultfd.
    Ipc,
    /// Anything else.
    Other,
}

/// What an fd's name is made of ([`Fd::name_parts`]): equal parts, equal names.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NameParts {
    /// An IP socket with a server end: `client->server`, or `server` without a client.
    Ends(Option<(IpAddr, u16)>, (IpAddr, u16)),
    /// An IP socket without a server end: the empty name.
    Unnamed,
    /// Any other fd: its name.
    Text(String),
}

impl Fd {
    /// The bytes of its name that [`FdTable`] counts: a path, memfd or link name.
    fn name_bytes(&self) -> usize {
        match self {
            Fd::File { path: name } | Fd::Memfd { name } | Fd::Other { name } => name.len(),
            Fd::Socket { .. } => 0,
        }
    }

    /// Cuts its name to at most `max` bytes (at a character boundary); whether it was longer.
    fn cut_name(&mut self, max: usize) -> bool {
        let (Fd::File { path: name } | Fd::Memfd { name } | Fd::Other { name }) = self else { return false };
        if name.len() <= max {
            return false;
        }
        let end = (0..=max).rev().find(|&i| name.is_char_boundary(i)).unwrap_or(0);
        name.truncate(end);
        true
    }

    /// `fd.typechar` and `fd.type`: `f` file, `4`/`6` IP socket, `u` unix socket, `n`
    /// netlink socket, `m` memfd, the kinds `/proc` names by link text, `o`/`unknown` otherwise.
    pub fn kind(&self) -> (&'static str, &'static str) {
        match self {
            Fd::File { .. } => ("f", "file"),
            Fd::Socket { domain: AF_INET, .. } => ("4", "ipv4"),
            Fd::Socket { domain: AF_INET6, .. } => ("6", "ipv6"),
            Fd::Socket { domain: AF_UNIX, .. } => ("u", "unix"),
            Fd::Socket { domain: AF_NETLINK, .. } => ("n", "netlink"),
            Fd::Socket { .. } => ("o", "unknown"),
            Fd::Memfd { .. } => ("m", "memfd"),
            Fd::Other { name } => LINK_KINDS
                .iter()
                .find(|(_, _, link)| name.starts_with(link))
                .map_or(("o", "unknown"), |(c, t, _)| (*c, *t)),
        }
    }

    /// `fd.typechar`.
    pub fn typechar(&self) -> &'static str {
        self.kind().0
    }

    /// `fd.type`.
    pub fn type_name(&self) -> &'static str {
        self.kind().1
    }

    /// A descriptor of a kind `/proc` names by link text (`pipe`, `event`...), given by its
    /// `fd.type` or `fd.typechar`.
    pub fn of_link_kind(kind: &str) -> Option<Fd> {
        LINK_KINDS
            .iter()
            .find(|(c, t, _)| *c == kind || *t == kind)
            .map(|(_, _, link)| Fd::Other { name: (*link).into() })
    }

    /// How I/O on this descriptor is categorised.
    pub fn io_class(&self) -> IoClass {
        match self.typechar() {
            "f" => IoClass::File,
            "4" | "6" => IoClass::Net,
            "u" | "p" | "e" | "s" | "i" => IoClass::Ipc,
            _ => IoClass::Other,
        }
    }

    /// `fd.name`: the path, or `client:port->server:port` for IP sockets.
    pub fn name(&self) -> Cow<'_, str> {
        match self {
            Fd::File { path } => Cow::Borrowed(path),
            Fd::Memfd { name } => Cow::Owned(format!("memfd:{name}")),
            Fd::Other { name } => Cow::Borrowed(name),
            Fd::Socket { domain: AF_UNIX, local, remote, .. } => match remote.as_ref().or(local.as_ref()) {
                Some(SockAddr::Unix { path }) => Cow::Borrowed(path),
                _ => Cow::Borrowed(""),
            },
            Fd::Socket { .. } => match (self.client(), self.server()) {
                (Some((cip, cport)), Some((sip, sport))) => Cow::Owned(format!("{cip}:{cport}->{sip}:{sport}")),
                (None, Some((sip, sport))) => Cow::Owned(format!("{sip}:{sport}")),
                _ => Cow::Borrowed(""),
            },
        }
    }

    /// What [`Fd::name`] is made of, to tell whether it changed without rendering it: an
    /// IP socket's ends, else the name itself.
    pub(crate) fn name_parts(&self) -> NameParts {
        match self {
            Fd::Socket { domain, .. } if *domain != AF_UNIX => match (self.client(), self.server()) {
                (client, Some(server)) => NameParts::Ends(client, server),
                (_, None) => NameParts::Unnamed,
            },
            Fd::File { .. } | Fd::Memfd { .. } | Fd::Other { .. } | Fd::Socket { .. } => {
                NameParts::Text(self.name().into_owned())
            }
        }
    }

    /// The path of a file fd.
    pub fn path(&self) -> Option<&str> {
        match self {
            Fd::File { path } => Some(path),
            _ => None,
        }
    }

    fn ip_port(a: &Option<SockAddr>) -> Option<(IpAddr, u16)> {
        match a {
            Some(SockAddr::Inet { addr, port }) => Some((IpAddr::V4(*addr), *port)),
            Some(SockAddr::Inet6 { addr, port }) => Some((IpAddr::V6(*addr), *port)),
            _ => None,
        }
    }

    /// Client end (ip, port) of an IP socket.
    pub fn client(&self) -> Option<(IpAddr, u16)> {
        match self {
            Fd::Socket { remote, server: true, .. } => Self::ip_port(remote),
            Fd::Socket { local, .. } => Self::ip_port(local),
            _ => None,
        }
    }

    /// This process's end (ip, port) of an IP socket.
    pub fn local(&self) -> Option<(IpAddr, u16)> {
        match self {
            Fd::Socket { local, .. } => Self::ip_port(local),
            _ => None,
        }
    }

    /// The peer's end (ip, port) of an IP socket.
    pub fn remote(&self) -> Option<(IpAddr, u16)> {
        match self {
            Fd::Socket { remote, .. } => Self::ip_port(remote),
            _ => None,
        }
    }

    /// Server end (ip, port) of an IP socket.
    pub fn server(&self) -> Option<(IpAddr, u16)> {
        match self {
            Fd::Socket { local, server: true, .. } => Self::ip_port(local),
            Fd::Socket { remote, .. } => Self::ip_port(remote),
            _ => None,
        }
    }

    /// `fd.l4proto`: `tcp`, `udp`, `raw`, or nothing for non-IP fds.
    pub fn l4proto(&self) -> Option<&'static str> {
        match self {
            Fd::Socket { domain: AF_INET | AF_INET6, kind, .. } => Some(match kind & 0xf {
                SOCK_DGRAM => "udp",
                SOCK_RAW => "raw",
                _ => "tcp",
            }),
            _ => None,
        }
    }
}

/// Reads the open fds of a process from `/proc/PID/fd` (paths only; sockets unresolved).
pub fn read_fds(proc_dir: &Path) -> FdTable {
    let mut fds = FdTable::default();
    let Ok(entries) = fs::read_dir(proc_dir.join("fd")) else { return fds };
    for e in entries.flatten().take(MAX_FDS_PER_PROCESS) {
        let Some(num) = e.file_name().to_str().and_then(|n| n.parse().ok()) else { continue };
        let Ok(target) = fs::read_link(e.path()) else { continue };
        let target = target.to_string_lossy().into_owned();
        let fd = if target.starts_with('/') {
            match target.strip_prefix("/memfd:") {
                Some(name) => Fd::Memfd { name: name.trim_end_matches(" (deleted)").to_owned() },
                None => Fd::File { path: target },
            }
        } else if target.starts_with("socket:") {
            Fd::Socket { domain: 0, kind: 0, local: None, remote: None, connected: false, server: false }
        } else {
            Fd::Other { name: target }
        };
        fds.insert(num, fd);
    }
    fds
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    #[test]
    fn a_process_holds_a_bounded_amount_of_fd_names_and_short_paths_stay_whole() {
        let long = |n: i32| Fd::File { path: format!("/{n}/{}", "x".repeat(4000)) };
        let mut table: FdTable = (0..4096).map(|n| (n, long(n))).collect();
        assert!(table.is_truncated());
        let bytes: usize = table.values().map(Fd::name_bytes).sum();
        assert_eq!(bytes, table.name_bytes);
        assert!(bytes <= MAX_FD_NAME_BYTES + MAX_FDS_PER_PROCESS * CUT_NAME_BYTES, "{bytes}");
        // The first names fit whole; a later long one is cut, a short one never.
        assert_eq!(table[&0], long(0));
        assert_eq!(table[&4000].name_bytes(), CUT_NAME_BYTES);
        table.insert(4000, Fd::File { path: "/etc/shadow".into() });
        assert_eq!(table[&4000], Fd::File { path: "/etc/shadow".into() });
        // Past the count, a new number is not tracked; a known one is replaced.
        table.insert(5000, long(5000));
        assert!(!table.contains_key(&5000));
        // Closing gives the room back.
        table.retain(|num, _| *num >= 1000);
        table.remove(&1000);
        assert_eq!(table.name_bytes, table.values().map(Fd::name_bytes).sum::<usize>());
        let mut fresh = FdTable::default();
        fresh.insert(3, long(3));
        assert!(!fresh.is_truncated());
    }

    use super::*;

    #[test]
    fn names_sockets_like_falco() {
        let client = Fd::Socket {
            domain: 2,
            kind: 1,
            local: Some(SockAddr::Inet { addr: Ipv4Addr::new(10, 0, 0, 1), port: 40000 }),
            remote: Some(SockAddr::Inet { addr: Ipv4Addr::LOCALHOST, port: 80 }),
            connected: true,
            server: false,
        };
        assert_eq!(client.name(), "10.0.0.1:40000->127.0.0.1:80");
        assert_eq!((client.typechar(), client.l4proto()), ("4", Some("tcp")));
        let accepted = Fd::Socket {
            domain: 2,
            kind: 1,
            local: Some(SockAddr::Inet { addr: Ipv4Addr::LOCALHOST, port: 80 }),
            remote: Some(SockAddr::Inet { addr: Ipv4Addr::new(10, 0, 0, 2), port: 5555 }),
            connected: true,
            server: true,
        };
        assert_eq!(accepted.name(), "10.0.0.2:5555->127.0.0.1:80");
        let unix = Fd::Socket {
            domain: 1,
            kind: 1,
            local: None,
            remote: Some(SockAddr::Unix { path: "/run/x.sock".into() }),
            connected: true,
            server: false,
        };
        assert_eq!((&*unix.name(), unix.typechar()), ("/run/x.sock", "u"));
    }

    #[test]
    fn types_what_proc_names_like_libsinsp() {
        for (link, kind) in [
            ("pipe:[4242]", ("p", "pipe")),
            ("anon_inode:[eventfd]", ("e", "event")),
            ("anon_inode:[eventpoll]", ("l", "eventpoll")),
            ("anon_inode:inotify", ("i", "inotify")),
            ("anon_inode:bpf-map", ("b", "bpf")),
            ("anon_inode:[io_uring]", ("r", "io_uring")),
            ("anon_inode:[perf_event]", ("o", "unknown")),
        ] {
            assert_eq!(Fd::Other { name: link.into() }.kind(), kind, "{link}");
        }
        assert_eq!(Fd::of_link_kind("pipe").map(|f| f.kind()), Some(("p", "pipe")));
        assert_eq!(Fd::of_link_kind("e").map(|f| f.kind()), Some(("e", "event")));
        assert_eq!(Fd::of_link_kind("file"), None, "files are not named by link text");
    }
}
