//! DNS names of socket addresses (`fd.sip.name` and the like), as Falco supplies them: the
//! names the rules compare those fields with are resolved in the background and refreshed,
//! and an address the event names maps back to the name it resolved from. No reverse
//! lookups happen on the event path.

use foldhash::fast::RandomState;
use std::{
    collections::{BTreeSet, HashMap},
    net::{IpAddr, ToSocketAddrs},
    sync::{Arc, PoisonError, RwLock, Weak, mpsc},
    time::Duration,
};

/// How often the names are resolved again (addresses of cloud endpoints move).
pub const DNS_REFRESH: Duration = Duration::from_secs(30);

/// Addresses of the names the rules use, kept fresh by a background thread.
#[derive(Clone, Debug, Default)]
pub struct DnsNames {
    by_addr: Arc<RwLock<HashMap<IpAddr, String, RandomState>>>,
    /// Wakes the resolver with a new set of names (a rules reload); `None` without a thread.
    names: Option<mpsc::Sender<BTreeSet<String>>>,
}

impl DnsNames {
    /// Resolves `names` on a background thread now and every `refresh` after, for as long
    /// as a clone of the result lives.
    pub fn start(names: BTreeSet<String>, refresh: Duration) -> Self {
        let by_addr = Arc::default();
        let (tx, rx) = mpsc::channel();
        let weak = Arc::downgrade(&by_addr);
        let spawned = std::thread::Builder::new()
            .name("dns-names".into())
            .spawn(move || resolve_loop(names, &rx, &weak, refresh));
        if let Err(e) = spawned {
            log::warn!("cannot start the DNS resolver thread ({e}): fd.*ip.name fields stay empty");
        }
        DnsNames { by_addr, names: Some(tx) }
    }

    /// Fixed names of addresses, never refreshed (an event built from a field map).
    pub fn fixed(names: impl IntoIterator<Item = (IpAddr, String)>) -> Self {
        DnsNames { by_addr: Arc::new(RwLock::new(names.into_iter().collect())), names: None }
    }

    /// Resolves `names` from now on instead (the names of reloaded rules).
    pub fn set_names(&self, names: BTreeSet<String>) {
        if let Some(tx) = &self.names
            && tx.send(names).is_err()
        {
            log::warn!("the DNS resolver thread has stopped: the names of the new rules are not resolved");
        }
    }

    /// The rule name `ip` resolved from, if any.
    pub fn name_of(&self, ip: IpAddr) -> Option<String> {
        self.by_addr.read().unwrap_or_else(PoisonError::into_inner).get(&ip).cloned()
    }
}

fn resolve_loop(
    mut names: BTreeSet<String>,
    updates: &mpsc::Receiver<BTreeSet<String>>,
    map: &Weak<RwLock<HashMap<IpAddr, String, RandomState>>>,
    refresh: Duration,
) {
    loop {
        let mut fresh = HashMap::default();
        // In order, so an address two names share maps to the first, the same every time.
        for name in &names {
            match (name.as_str(), 0).to_socket_addrs() {
                Ok(addrs) => {
                    for a in addrs {
                        fresh.entry(a.ip()).or_insert_with(|| name.clone());
                    }
                }
                Err(e) => log::debug!("resolving {name}: {e}"),
            }
        }
        let Some(map) = map.upgrade() else { return };
        *map.write().unwrap_or_else(PoisonError::into_inner) = fresh;
        drop(map);
        match updates.recv_timeout(refresh) {
            Ok(new) => names = new,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // Every DnsNames is gone.
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_for(dns: &DnsNames, ip: IpAddr) -> Option<String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while dns.name_of(ip).is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        dns.name_of(ip)
    }

    #[test]
    fn addresses_map_back_to_the_names_that_resolved_to_them() {
        let dns = DnsNames::start(BTreeSet::new(), DNS_REFRESH);
        let loopback = IpAddr::from([127, 0, 0, 1]);
        assert_eq!(dns.name_of(loopback), None, "no names yet");
        dns.set_names(["localhost".to_string()].into());
        assert_eq!(wait_for(&dns, loopback).as_deref(), Some("localhost"), "resolved at once, not at the refresh");
        assert_eq!(dns.name_of(IpAddr::from([192, 0, 2, 1])), None);
    }
}
