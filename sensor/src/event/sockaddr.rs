//! Socket addresses decoded from raw `struct sockaddr` bytes.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

const AF_UNIX: u16 = 1;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// A socket address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "family", rename_all = "snake_case")]
pub enum SockAddr {
    /// IPv4 address and port.
    Inet {
        /// Address.
        addr: Ipv4Addr,
        /// Port.
        port: u16,
    },
    /// IPv6 address and port.
    Inet6 {
        /// Address.
        addr: Ipv6Addr,
        /// Port.
        port: u16,
    },
    /// Unix socket path; abstract names start with `@`.
    Unix {
        /// Path.
        path: String,
    },
    /// Another family, or too short to read.
    Other {
        /// `AF_*` number (0 when even that is missing).
        af: u16,
    },
}

impl SockAddr {
    /// Decodes `bytes` (as long as the caller passed); never fails, never panics.
    pub fn parse(bytes: &[u8]) -> Self {
        let Some(af) = bytes.get(0..2).map(|b| u16::from_ne_bytes([b[0], b[1]])) else {
            return Self::Other { af: 0 };
        };
        // Ports are in network byte order.
        let port = || bytes.get(2..4).map(|b| u16::from_be_bytes([b[0], b[1]]));
        match af {
            AF_INET => match (port(), bytes.get(4..8)) {
                (Some(port), Some(a)) => Self::Inet { addr: Ipv4Addr::new(a[0], a[1], a[2], a[3]), port },
                _ => Self::Other { af },
            },
            AF_INET6 => match (port(), bytes.get(8..24)) {
                (Some(port), Some(a)) => {
                    let mut octets = [0u8; 16];
                    octets.copy_from_slice(a);
                    Self::Inet6 { addr: Ipv6Addr::from(octets), port }
                }
                _ => Self::Other { af },
            },
            AF_UNIX => {
                let raw = &bytes[2..];
                let path = match raw.first() {
                    // Abstract namespace: a leading NUL, the name is the rest of the length.
                    Some(0) => format!("@{}", String::from_utf8_lossy(&raw[1..])),
                    _ => {
                        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
                        String::from_utf8_lossy(&raw[..end]).into_owned()
                    }
                };
                Self::Unix { path }
            }
            _ => Self::Other { af },
        }
    }
}

impl std::fmt::Display for SockAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Inet { addr, port } => write!(f, "{addr}:{port}"),
            Self::Inet6 { addr, port } => write!(f, "[{addr}]:{port}"),
            Self::Unix { path } => write!(f, "unix:{path}"),
            Self::Other { af } => write!(f, "af={af}"),
        }
    }
}

impl std::str::FromStr for SockAddr {
    type Err = String;

    /// Reads what `Display` writes: `1.2.3.4:80`, `[::1]:80`, `unix:/run/x.sock`, `af=17`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("'{s}' is not a socket address (ip:port, [ipv6]:port, unix:path or af=N)");
        if let Some(path) = s.strip_prefix("unix:") {
            return Ok(Self::Unix { path: path.to_owned() });
        }
        if let Some(af) = s.strip_prefix("af=") {
            return af.parse().map(|af| Self::Other { af }).map_err(|_| bad());
        }
        match s.parse::<std::net::SocketAddr>().map_err(|_| bad())? {
            std::net::SocketAddr::V4(a) => Ok(Self::Inet { addr: *a.ip(), port: a.port() }),
            std::net::SocketAddr::V6(a) => Ok(Self::Inet6 { addr: *a.ip(), port: a.port() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_each_family() {
        let mut v4 = vec![2, 0, 0x1f, 0x90, 127, 0, 0, 1];
        v4.extend([0; 8]);
        assert_eq!(SockAddr::parse(&v4), SockAddr::Inet { addr: Ipv4Addr::LOCALHOST, port: 8080 });

        let mut v6 = vec![10, 0, 0, 80, 0, 0, 0, 0];
        v6.extend(Ipv6Addr::LOCALHOST.octets());
        v6.extend([0; 4]);
        assert_eq!(SockAddr::parse(&v6), SockAddr::Inet6 { addr: Ipv6Addr::LOCALHOST, port: 80 });

        let mut un = vec![1, 0];
        un.extend(b"/run/x.sock\0junk");
        assert_eq!(SockAddr::parse(&un), SockAddr::Unix { path: "/run/x.sock".into() });
        assert_eq!(SockAddr::parse(&[1, 0, 0, b'a', b'b']), SockAddr::Unix { path: "@ab".into() });
    }

    #[test]
    fn text_reads_back() {
        for a in [
            SockAddr::Inet { addr: Ipv4Addr::LOCALHOST, port: 80 },
            SockAddr::Inet6 { addr: Ipv6Addr::LOCALHOST, port: 443 },
            SockAddr::Unix { path: "/run/x.sock".into() },
            SockAddr::Other { af: 17 },
        ] {
            assert_eq!(a.to_string().parse::<SockAddr>(), Ok(a.clone()), "{a}");
        }
        assert!("localhost:80".parse::<SockAddr>().is_err());
    }

    #[test]
    fn short_input_is_other() {
        assert_eq!(SockAddr::parse(&[]), SockAddr::Other { af: 0 });
        assert_eq!(SockAddr::parse(&[2, 0, 1]), SockAddr::Other { af: 2 });
        assert_eq!(SockAddr::parse(&[10, 0, 0, 1, 0, 0, 0, 0, 1]), SockAddr::Other { af: 10 });
    }
}
