//! Shared by the output tests: their real peers (an aiosmtpd server, a grpcio client, an
//! openssl PKI), running `sensor replay` with a configuration, and waiting on conditions.
#![allow(dead_code, reason = "each test binary uses a part of the shared helpers")]

pub mod grpc;
pub mod pki;
pub mod sensor;
pub mod smtp;

use std::{
    io::{BufRead as _, BufReader, Read},
    ops::Deref,
    path::{Path, PathBuf},
    process::{Child, ExitStatus},
    sync::mpsc,
    time::{Duration, Instant},
};

/// How long a test waits for a condition before it fails: generous, for a loaded machine.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// The Python of the output tests' peers: the virtual environment `cargo xtask setup`
/// creates in `<target>/test-peers` from `tests/peers/requirements.txt`.
pub fn python() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // <target>/<profile>/deps/<test binary>
    let target = exe.ancestors().nth(3).expect("target dir");
    let python = target.join("test-peers/bin/python");
    assert!(python.exists(), "{} is missing: run `cargo xtask setup`", python.display());
    python
}

/// A peer script in `tests/peers/`.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/peers").join(name)
}

/// A scratch directory for one test, emptied when created and removed when dropped, unless
/// the test failed (then it stays for a look).
pub struct ScratchDir(PathBuf);

impl Deref for ScratchDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A fresh scratch directory for the test `tag`.
pub fn scratch_dir(tag: &str) -> ScratchDir {
    let dir = std::env::temp_dir().join(format!("sensor-outputs-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    ScratchDir(dir)
}

/// Waits until `check` holds, failing the test after [`PATIENCE`].
pub fn wait_for(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for `child` (`what`) to exit; kills it and fails the test after [`PATIENCE`].
pub fn wait_for_exit(child: &mut Child, what: &str) -> ExitStatus {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what} did not exit within {PATIENCE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The lines a child process writes to `stream`, read by a thread as they come, so the child
/// never blocks on a full pipe.
pub fn line_channel(stream: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The JSON lines of a file (none if it does not exist yet).
pub fn read_json_lines(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}
