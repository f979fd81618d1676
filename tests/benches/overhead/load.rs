//! The loops the bench runs, through the `loadgen` binary (`tests/src/bin/loadgen.rs`).

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

/// A syscall loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loop {
    /// `getpid`: a syscall no rule wants.
    Getpid,
    /// `openat` + `close` of a file below /tmp that no rule cares about.
    Open,
    /// `fork` + `execve("/bin/true")` + `wait4`.
    Exec,
    /// A TCP connection to a loopback listener, accepted and closed.
    Connect,
    /// Reads of `/etc/shadow`, which the rules alert on, spaced out.
    Alert,
}

impl Loop {
    /// The loops of the cost table, in its order.
    pub const COST: [Loop; 4] = [Loop::Getpid, Loop::Open, Loop::Exec, Loop::Connect];
    /// The loops of the storms.
    pub const STORMS: [Loop; 3] = [Loop::Open, Loop::Exec, Loop::Connect];

    /// Its name on `loadgen`'s command line.
    fn arg(self) -> &'static str {
        match self {
            Loop::Getpid => "getpid",
            Loop::Open => "open",
            Loop::Exec => "exec",
            Loop::Connect => "connect",
            Loop::Alert => "alert",
        }
    }

    /// Its name in the table.
    pub fn label(self) -> &'static str {
        match self {
            Loop::Getpid => "getpid",
            Loop::Open => "openat+close of a /tmp file",
            Loop::Exec => "fork+exec /bin/true",
            Loop::Connect => "TCP connect, accept, close (loopback)",
            Loop::Alert => "openat /etc/shadow",
        }
    }

    /// Iterations per cost measurement: each takes a few tenths of a second unloaded.
    pub fn cost_iters(self) -> u64 {
        match self {
            Loop::Getpid => 2_000_000,
            Loop::Open => 300_000,
            Loop::Exec => 1_000,
            Loop::Connect => 20_000,
            Loop::Alert => 1_000,
        }
    }
}

/// How long a loop runs.
#[derive(Clone, Copy, Debug)]
pub enum Length {
    /// This many iterations.
    Iters(u64),
    /// As many iterations as fit in this time.
    Time(Duration),
}

/// What a loop reports.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Iterations done.
    pub iters: u64,
    /// Mean wall-clock ns per iteration.
    pub ns_per_iter: f64,
    /// Syscalls one iteration makes.
    pub syscalls_per_iter: u64,
    /// For [`Loop::Alert`]: the wall-clock time (ns) just before each alerting syscall.
    pub starts_ns: Vec<i64>,
}

impl Outcome {
    /// The syscalls the loop made (iterations × syscalls per iteration).
    pub fn syscalls(&self) -> u64 {
        self.iters * self.syscalls_per_iter
    }
}

/// A loop started in its own process.
pub struct Running(Child);

/// Starts `lp` pinned to `cpu` for `length`; `extra` are further `loadgen` options.
pub fn start(lp: Loop, cpu: usize, length: Length, extra: &[&str]) -> Result<Running, String> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_loadgen"));
    cmd.args([lp.arg(), &cpu.to_string()]);
    match length {
        Length::Iters(n) => cmd.args(["--iters", &n.to_string()]),
        Length::Time(d) => cmd.args(["--seconds", &d.as_secs_f64().to_string()]),
    };
    // Cargo runs benches with its library directories in `LD_LIBRARY_PATH`: a program the
    // loop runs (`/bin/true`) would then look for its libraries there first, some 20 failed
    // opens per exec that no user's program makes.
    let child = cmd
        .env_remove("LD_LIBRARY_PATH")
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting loadgen: {e}"))?;
    Ok(Running(child))
}

impl Running {
    /// Waits for the loop to end and reads its report.
    pub fn finish(self) -> Result<Outcome, String> {
        let out = self.0.wait_with_output().map_err(|e| format!("waiting for loadgen: {e}"))?;
        if !out.status.success() {
            return Err(format!("loadgen failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim()));
        }
        let report: serde_json::Value =
            serde_json::from_slice(&out.stdout).map_err(|e| format!("loadgen's report: {e}"))?;
        let int = |key: &str| report[key].as_u64().ok_or_else(|| format!("loadgen reported no {key}"));
        Ok(Outcome {
            iters: int("iters")?,
            ns_per_iter: report["ns_per_iter"].as_f64().ok_or("loadgen reported no ns_per_iter")?,
            syscalls_per_iter: int("syscalls_per_iter")?,
            starts_ns: report["starts_ns"].as_array().into_iter().flatten().filter_map(|v| v.as_i64()).collect(),
        })
    }
}

/// Runs `lp` pinned to `cpu` for `length` and waits for its report.
pub fn run(lp: Loop, cpu: usize, length: Length, extra: &[&str]) -> Result<Outcome, String> {
    start(lp, cpu, length, extra)?.finish()
}

/// Runs `lp` on each of `cpus` at once for `length`; their reports.
pub fn run_on_each(lp: Loop, cpus: &[usize], length: Length) -> Result<Vec<Outcome>, String> {
    let running: Vec<Running> = cpus.iter().map(|&cpu| start(lp, cpu, length, &[])).collect::<Result<_, _>>()?;
    running.into_iter().map(Running::finish).collect()
}
