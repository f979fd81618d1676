//! Spawning child processes: the workspace root, a predictable environment, and status checks.

use std::{
    env,
    ffi::OsString,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

/// The workspace root: the parent of this crate's directory.
pub fn workspace_root() -> PathBuf {
    let xtask = Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask.parent().unwrap_or(xtask).to_path_buf()
}

/// The cargo target directory: `$CARGO_TARGET_DIR` if set, else `<root>/target`.
pub fn target_dir() -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR").filter(|dir| !dir.is_empty()) {
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    }
}

/// Where `cargo install` puts binaries by default: `$CARGO_HOME/bin`, else `~/.cargo/bin`.
pub fn cargo_bin_dir() -> Option<PathBuf> {
    env::var_os("CARGO_HOME")
        .filter(|home| !home.is_empty())
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .map(|home| home.join("bin"))
}

/// The `PATH` children get: the cargo bin directory first, then the inherited entries.
fn child_path() -> OsString {
    let first = cargo_bin_dir();
    let inherited = env::var_os("PATH").unwrap_or_default();
    let rest = env::split_paths(&inherited).filter(|dir| Some(dir) != first.as_ref());
    env::join_paths(first.clone().into_iter().chain(rest)).unwrap_or(inherited)
}

/// Whether `program` is an executable file in one of the children's `PATH` directories.
pub fn on_path(program: &str) -> bool {
    env::split_paths(&child_path()).any(|dir| dir.join(program).is_file())
}

/// A command run from the workspace root with the children's environment.
///
/// rustup sets `RUSTUP_TOOLCHAIN` for `cargo xtask` itself; it is removed so that nothing
/// forces a toolchain on the child (the workspace has no `rust-toolchain.toml`: user space
/// builds with rustup's default, and `sensor/build.rs` picks the `debian` toolchain).
pub fn command(program: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(workspace_root()).env_remove("RUSTUP_TOOLCHAIN").env("PATH", child_path());
    cmd
}

/// A `cargo` command (rustup's proxy, found first on the children's `PATH`).
pub fn cargo() -> Command {
    command("cargo")
}

/// The command line of `cmd` as a shell user would type it (program and arguments).
pub fn display(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|part| part.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs a test runner like [`run`], echoing its output, and adds up the `N passed` and
/// `N failed` counts of its `test result:` lines.
pub fn run_counting_tests(cmd: &mut Command) -> Result<(u64, u64)> {
    use std::io::{BufRead, BufReader};
    let line = display(cmd);
    let mut child =
        cmd.stdout(std::process::Stdio::piped()).spawn().with_context(|| format!("could not start `{line}`"))?;
    let (mut passed, mut failed) = (0, 0);
    let stdout = child.stdout.take().context("test runner stdout")?;
    for out in BufReader::new(stdout).lines() {
        let out = out?;
        println!("{out}");
        if let Some(result) = out.strip_prefix("test result: ") {
            passed += count_before(result, " passed");
            failed += count_before(result, " failed");
        }
    }
    let status = child.wait()?;
    if !status.success() {
        println!("{passed} passed, {failed} failed");
        bail!("`{line}` failed ({status})");
    }
    Ok((passed, failed))
}

/// The number just before `label` in a cargo `test result:` line (`ok. 3 passed; 0 failed`).
fn count_before(result: &str, label: &str) -> u64 {
    result
        .split(';')
        .find_map(|part| part.trim().strip_suffix(label).and_then(|n| n.rsplit(' ').next()?.parse().ok()))
        .unwrap_or(0)
}

/// Runs `cmd` with inherited stdio, failing unless it exits successfully.
pub fn run(cmd: &mut Command) -> Result<()> {
    let line = display(cmd);
    let status = cmd.status().with_context(|| format!("could not start `{line}`"))?;
    if !status.success() {
        bail!("`{line}` failed ({status})");
    }
    Ok(())
}

/// Runs `cmd` quietly and returns its stdout, or `None` if it cannot start or fails.
pub fn capture(cmd: &mut Command) -> Option<String> {
    let output = cmd.output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Tests of the output parsing.
#[cfg(test)]
mod tests {
    use super::count_before;

    /// Counts in cargo's `test result:` lines.
    #[test]
    fn reads_test_result_counts() {
        let line = "ok. 22 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 4.33s";
        assert_eq!(count_before(line, " passed"), 22);
        assert_eq!(count_before(line, " failed"), 1);
        assert_eq!(count_before("nothing here", " passed"), 0);
    }
}
