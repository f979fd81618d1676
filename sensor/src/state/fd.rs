//! File descriptors: what each open fd of a process refers to.

use std::{collections::HashMap, fs, net::IpAddr, path::Path};

use crate::event::SockAddr;

/// Most fds remembered per process (the rest are not tracked).
pub const MAX_FDS_PER_PROCESS: usize = 4096;

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

const AF_UNIX: u32 = 1;
const SOCK_DGRAM: u32 = 2;

impl Fd {
    /// `fd.typechar`: `f` file, `4`/`6` IP socket, `u` unix socket, `s` other socket,
    /// `m` memfd, `o` other.
    pub fn typechar(&self) -> &'static str {
        match self {
            Fd::File { .. } => "f",
            Fd::Socket { domain: 2, .. } => "4",
            Fd::Socket { domain: 10, .. } => "6",
            Fd::Socket { domain: AF_UNIX, .. } => "u",
            Fd::Socket { .. } => "s",
            Fd::Memfd { .. } => "m",
            Fd::Other { .. } => "o",
        }
    }

    /// `fd.type`: `file`, `ipv4`, `ipv6`, `unix`, `socket`, `memfd`, `other`.
    pub fn type_name(&self) -> &'static str {
        match self.typechar() {
            "f" => "file",
            "4" => "ipv4",
            "6" => "ipv6",
            "u" => "unix",
            "s" => "socket",
            "m" => "memfd",
            _ => "other",
        }
    }

    /// `fd.name`: the path, or `client:port->server:port` for IP sockets.
    pub fn name(&self) -> String {
        match self {
            Fd::File { path } => path.clone(),
            Fd::Memfd { name } => format!("memfd:{name}"),
            Fd::Other { name } => name.clone(),
            Fd::Socket { domain: AF_UNIX, local, remote, .. } => match remote.as_ref().or(local.as_ref()) {
                Some(SockAddr::Unix { path }) => path.clone(),
                _ => String::new(),
            },
            Fd::Socket { .. } => match (self.client(), self.server()) {
                (Some((cip, cport)), Some((sip, sport))) => format!("{cip}:{cport}->{sip}:{sport}"),
                (None, Some((sip, sport))) => format!("{sip}:{sport}"),
                _ => String::new(),
            },
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

    /// `fd.l4proto`: `tcp`, `udp`, or nothing for non-IP fds.
    pub fn l4proto(&self) -> Option<&'static str> {
        match self {
            Fd::Socket { domain: 2 | 10, kind, .. } => Some(if kind & 0xf == SOCK_DGRAM { "udp" } else { "tcp" }),
            _ => None,
        }
    }
}

/// Reads the open fds of a process from `/proc/PID/fd` (paths only; sockets unresolved).
pub fn read_fds(proc_dir: &Path) -> HashMap<i32, Fd> {
    let mut fds = HashMap::new();
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
        assert_eq!((unix.name().as_str(), unix.typechar()), ("/run/x.sock", "u"));
    }
}
