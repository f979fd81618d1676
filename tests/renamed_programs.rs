//! Exemptions a watched program cannot talk itself into. The built-in rules exempt programs
//! by the file the kernel ran (`proc.exepath`), never by the name a process gives itself, so
//! each of these reads of `/etc/shadow` is alerted as `Read credential file by untrusted
//! program`, although each carries the name of a program entitled to it:
//!
//! - a copy of `cat` named `sudo` (in a temporary directory): its comm is `sudo`;
//! - a copy of the shell named `login`, opening the file itself (`: < /etc/shadow`);
//! - the `actor`, which names itself `unix_chkpwd` with prctl(PR_SET_NAME) before the read;
//! - python3, a trusted interpreter in /usr/bin, naming itself `sshd` the same way.
//!
//! Needs root; one sensor run with the built-in rules, a few seconds.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use sensor_tests::{actor, actor_path, require_root, start_sensor, temp_path};

const RULE: &str = "Read credential file by untrusted program";

/// One read that must be alerted: the name it gave itself and the executable it ran.
struct Read {
    what: &'static str,
    name: &'static str,
    exe: PathBuf,
}

/// Removes the temporary directory at the end, whatever happened.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn renamed_and_self_named_programs_reading_shadow_are_alerted() {
    require_root();
    let dir = TempDir(PathBuf::from(temp_path("renamed")));
    std::fs::create_dir_all(&dir.0).unwrap();
    let sudo = dir.0.join("sudo");
    std::fs::copy(canonical(Path::new("/bin/cat")), &sudo).expect("copy cat");

    let mut sensor = start_sensor(&["run", "--json"]);
    let rx = sensor_tests::alert_stream(&mut sensor);

    let mut reads = Vec::new();
    let status = Command::new(&sudo).arg("/etc/shadow").stdout(Stdio::null()).status().expect("the copy runs");
    assert!(status.success(), "{} /etc/shadow: {status}", sudo.display());
    reads.push(Read { what: "a copy of cat named sudo", name: "sudo", exe: sudo.clone() });

    let login = dir.0.join("login");
    std::fs::copy(canonical(Path::new("/bin/sh")), &login).expect("copy sh");
    let status = Command::new(&login).args(["-c", ": < /etc/shadow"]).status().expect("the shell runs");
    assert!(status.success(), "{} -c ': < /etc/shadow': {status}", login.display());
    reads.push(Read { what: "a copy of sh named login", name: "login", exe: login.clone() });

    let report = actor(&["renamed_read", "unix_chkpwd", "/etc/shadow"]);
    assert_eq!(report.int("prctl"), 0, "prctl(PR_SET_NAME)");
    assert!(report.int("ret") >= 0, "the actor opens /etc/shadow");
    reads.push(Read {
        what: "the actor named unix_chkpwd by prctl",
        name: "unix_chkpwd",
        exe: canonical(&actor_path()),
    });

    let python = Path::new("/usr/bin/python3");
    if python.exists() {
        let script = "import ctypes; ctypes.CDLL(None).prctl(15, b'sshd', 0, 0, 0); open('/etc/shadow').read()";
        let status = Command::new(python).args(["-c", script]).status().expect("python3 runs");
        assert!(status.success(), "python3: {status}");
        reads.push(Read { what: "python3 named sshd by prctl", name: "sshd", exe: canonical(python) });
    } else {
        eprintln!("SKIPPED: the trusted-interpreter case needs /usr/bin/python3");
    }

    let alerted = |r: &Read, a: &serde_json::Value| {
        a["rule"] == RULE
            && a["output_fields"]["fd.name"] == "/etc/shadow"
            && a["output_fields"]["proc.name"] == r.name
            && a["output_fields"]["proc.exepath"] == r.exe.to_string_lossy().as_ref()
    };
    let mut alerts = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !reads.iter().all(|r| alerts.iter().any(|a| alerted(r, a))) {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(a) => alerts.push(a),
            Err(_) => break,
        }
    }
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    unsafe { libc::kill(sensor.id() as i32, libc::SIGTERM) };
    assert!(sensor.wait().unwrap().success());

    let missed: Vec<_> = reads.iter().filter(|r| !alerts.iter().any(|a| alerted(r, a))).collect();
    let seen: Vec<_> = alerts.iter().filter(|a| a["rule"] == RULE).map(|a| a["output"].to_string()).collect();
    assert!(
        missed.is_empty(),
        "not alerted: {}\n{RULE} alerts seen:\n{}",
        missed.iter().map(|r| format!("{} ({})", r.what, r.exe.display())).collect::<Vec<_>>().join(", "),
        seen.join("\n")
    );
}
