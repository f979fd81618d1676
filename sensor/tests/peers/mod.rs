//! Shared by the output tests: where their real peers (aiosmtpd, grpcio) live.

use std::path::PathBuf;

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

/// A scratch directory for one test, removed and recreated.
pub fn scratch_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sensor-outputs-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}
