//! User and group names, from the `/etc/passwd` and `/etc/group` a process sees: the
//! host's, or its container's through `/proc/PID/root`.

use std::{collections::HashMap, fs};

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
struct Accounts {
    users: HashMap<u32, User>,
    groups: HashMap<u32, String>,
}

/// Most distinct root file systems (mount namespaces) cached.
const MAX_ROOTS: usize = 1024;

/// Account databases per mount namespace, read once and cached.
#[derive(Debug, Default)]
pub struct UserDb {
    by_mnt_ns: HashMap<u32, Accounts>,
    /// Accounts every process sees, instead of its files (an event built from a field map).
    fixed: Option<Accounts>,
}

fn parse_passwd(text: &str) -> HashMap<u32, User> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let uid = f.get(2)?.parse().ok()?;
            Some((uid, User { name: f[0].to_owned(), home: f.get(5)?.to_string(), shell: f.get(6)?.to_string() }))
        })
        .collect()
}

fn parse_group(text: &str) -> HashMap<u32, String> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some((f.get(2)?.parse().ok()?, f[0].to_owned()))
        })
        .collect()
}

impl UserDb {
    /// These users and groups, whatever a process's files say.
    pub fn fixed(users: HashMap<u32, User>, groups: HashMap<u32, String>) -> Self {
        UserDb { by_mnt_ns: HashMap::new(), fixed: Some(Accounts { users, groups }) }
    }

    fn accounts(&mut self, pid: u32, mnt_ns: u32) -> &Accounts {
        if let Some(fixed) = &self.fixed {
            return fixed;
        }
        if self.by_mnt_ns.len() >= MAX_ROOTS && !self.by_mnt_ns.contains_key(&mnt_ns) {
            self.by_mnt_ns.clear();
        }
        self.by_mnt_ns.entry(mnt_ns).or_insert_with(|| {
            let read = |file: &str| {
                // A process gone already: the host's files, through init's root (in a pod,
                // `/etc` is the sensor's image's), else the sensor's own.
                fs::read_to_string(format!("/proc/{pid}/root/etc/{file}"))
                    .or_else(|_| fs::read_to_string(format!("/proc/1/root/etc/{file}")))
                    .or_else(|_| fs::read_to_string(format!("/etc/{file}")))
                    .unwrap_or_default()
            };
            Accounts { users: parse_passwd(&read("passwd")), groups: parse_group(&read("group")) }
        })
    }

    /// The user `uid` as process `pid` (in mount namespace `mnt_ns`) sees it.
    pub fn user(&mut self, pid: u32, mnt_ns: u32, uid: u32) -> Option<&User> {
        self.accounts(pid, mnt_ns).users.get(&uid)
    }

    /// The name of group `gid` as process `pid` sees it.
    pub fn group(&mut self, pid: u32, mnt_ns: u32, gid: u32) -> Option<&str> {
        self.accounts(pid, mnt_ns).groups.get(&gid).map(String::as_str)
    }
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
    fn resolves_root_on_this_host() {
        let mut db = UserDb::default();
        assert_eq!(db.user(std::process::id(), 1, 0).map(|u| u.name.as_str()), Some("root"));
        assert_eq!(db.group(std::process::id(), 1, 0), Some("root"));
    }
}
