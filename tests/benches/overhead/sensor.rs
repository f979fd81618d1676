//! `sensor run` as a user runs it, in a child process: its metrics endpoint, its alert lines
//! (timestamped as they are read), its CPU time and memory.

use std::{
    fs::File,
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use sensor_tests::{
    bench::prom::{Scrape, caught_up},
    free_loopback_port, http_get,
};

/// How long the sensor may take to load its rules and attach its programs.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long it may take to stop after SIGTERM (it drains its outputs for up to 10 s).
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Longer than the interval of the sensor's metrics snapshot (a second).
const SCRAPE_INTERVAL: Duration = Duration::from_millis(1100);

/// Which rules the sensor loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rules {
    /// The built-in rules (no `--rules`).
    Builtin,
    /// Falco's stable rules, vendored in `rules/falco/falco_rules.yaml`.
    Falco,
}

impl Rules {
    /// Both, in the table's order.
    pub const ALL: [Rules; 2] = [Rules::Builtin, Rules::Falco];

    /// The short name used in the table.
    pub fn label(self) -> &'static str {
        match self {
            Rules::Builtin => "built-in",
            Rules::Falco => "Falco stable",
        }
    }

    /// The `sensor run` options that select them.
    fn args(self) -> Vec<String> {
        match self {
            Rules::Builtin => Vec::new(),
            Rules::Falco => vec!["--rules".into(), falco_rules().to_string_lossy().into_owned()],
        }
    }
}

/// Falco's stable rules file in this repository.
pub fn falco_rules() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/falco/falco_rules.yaml")
}

/// A line the sensor printed on stdout and when it was read (ns since the epoch).
pub struct Line {
    /// When the bench read it.
    pub read_ns: i64,
    /// The line, without its newline.
    pub text: String,
}

/// The sensor's resident memory, in KiB.
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: the most it was ever resident.
    pub hwm_kib: u64,
    /// Of `rss_kib`, the BPF maps mapped into the process (the ring buffers, counted twice).
    pub maps_kib: u64,
}

/// A running `sensor run --json` with its metrics endpoint on a loopback port; stopped with
/// SIGTERM on drop.
pub struct Sensor {
    child: Child,
    metrics: SocketAddr,
    lines: mpsc::Receiver<Line>,
    log: PathBuf,
}

impl Sensor {
    /// Starts `sensor run --json` with `rules` and `extra` options, its log in `log`, and
    /// waits until it is ready (programs attached, rules loaded: `/readyz`).
    pub fn start(rules: Rules, extra: &[String], log: &Path) -> Result<Self, String> {
        let binary = sensor_tests::sensor_binary();
        if !binary.is_file() {
            return Err(format!("{} is missing: run the bench with `cargo xtask bench`", binary.display()));
        }
        let metrics = free_loopback_port()?;
        let mut child = Command::new(&binary)
            .args(["run", "--json", "-o", &format!("metrics.address={metrics}")])
            .args(rules.args())
            .args(extra)
            .env("SENSOR_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(append(log)?)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", binary.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for text in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(Line { read_ns: wall_ns(), text }).is_err() {
                    return;
                }
            }
        });
        let mut sensor = Self { child, metrics, lines, log: log.to_owned() };
        sensor.wait_ready()?;
        Ok(sensor)
    }

    /// Polls `/readyz` until it answers 200.
    fn wait_ready(&mut self) -> Result<(), String> {
        let start = Instant::now();
        while start.elapsed() < START_TIMEOUT {
            if http_get(self.metrics, "/readyz").is_ok_and(|(status, _)| status == 200) {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("the sensor exited while starting ({status}); see {}", self.log.display()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!("the sensor was not ready within {START_TIMEOUT:?}; see {}", self.log.display()))
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The lines it printed on stdout (its alerts), in order.
    pub fn lines(&self) -> &mpsc::Receiver<Line> {
        &self.lines
    }

    /// Its `/metrics` now (refreshed by the sensor about once a second).
    pub fn scrape(&self) -> Result<Scrape, String> {
        match http_get(self.metrics, "/metrics")? {
            (200, body) => Ok(Scrape::parse(&body)),
            (status, _) => Err(format!("/metrics answered {status}")),
        }
    }

    /// Waits until the sensor has worked through its backlog ([`caught_up`]), for `timeout`
    /// at most; its metrics then, and whether it caught up.
    pub fn catch_up(&self, timeout: Duration) -> Result<(Scrape, bool), String> {
        let start = Instant::now();
        let mut previous = self.scrape()?;
        loop {
            let cpu = self.cpu_seconds();
            std::thread::sleep(SCRAPE_INTERVAL);
            let busy_cores = (self.cpu_seconds() - cpu) / SCRAPE_INTERVAL.as_secs_f64();
            let now = self.scrape()?;
            if caught_up(&previous, &now, busy_cores) {
                return Ok((now, true));
            }
            if start.elapsed() > timeout {
                return Ok((now, false));
            }
            previous = now;
        }
    }

    /// CPU time used so far (user + system, all threads), in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        let fields: Vec<&str> = stat.rsplit_once(") ").map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
        // After the command, the state is field 3; utime is field 14 and stime 15.
        let ticks: u64 = [14, 15].iter().filter_map(|n| fields.get(n - 3)?.parse::<u64>().ok()).sum();
        // SAFETY: sysconf has no preconditions.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
        ticks as f64 / per_second as f64
    }

    /// Its resident memory now and its peak.
    pub fn memory(&self) -> Memory {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let kib = |key: &str| status.lines().find_map(|l| kib_value(l.strip_prefix(key)?)).unwrap_or(0);
        // Resident pages of BPF map mappings: the rings, whose data pages the kernel maps
        // twice in a row (a record that wraps reads as one), so VmRSS counts them twice.
        let smaps = std::fs::read_to_string(format!("/proc/{}/smaps", self.pid())).unwrap_or_default();
        let mut in_map = false;
        let mut maps_kib = 0;
        for line in smaps.lines() {
            if line.split_whitespace().next().is_some_and(|range| range.contains('-') && !range.ends_with(':')) {
                in_map = line.ends_with("anon_inode:bpf-map");
            } else if in_map && let Some(v) = line.strip_prefix("Rss:") {
                maps_kib += kib_value(v).unwrap_or(0);
            }
        }
        Memory { rss_kib: kib("VmRSS:"), hwm_kib: kib("VmHWM:"), maps_kib }
    }
}

impl Drop for Sensor {
    fn drop(&mut self) {
        // SAFETY: kill has no memory preconditions; the pid is our own child's.
        unsafe { libc::kill(self.pid() as i32, libc::SIGTERM) };
        let start = Instant::now();
        while start.elapsed() < STOP_TIMEOUT {
            if self.child.try_wait().is_ok_and(|s| s.is_some()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("bench: the sensor did not stop within {STOP_TIMEOUT:?}; killing it");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The number of a `/proc` line's `   1234 kB` value.
fn kib_value(v: &str) -> Option<u64> {
    v.trim().trim_end_matches("kB").trim().parse().ok()
}

/// `path` opened for appending (a log several runs of the sensor share).
fn append(path: &Path) -> Result<File, String> {
    File::options().create(true).append(true).open(path).map_err(|e| format!("opening {}: {e}", path.display()))
}

/// The wall-clock time, ns since the epoch (as the load generator takes it).
pub fn wall_ns() -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid timespec to write.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}
