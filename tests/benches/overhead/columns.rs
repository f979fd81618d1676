//! The five configurations the loops are measured under: nothing, the empty `tp_btf`
//! program, the sensor with each rule set, and bpftrace.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use sensor::capture::FloorProbe;

use crate::sensor::{Rules, Sensor};

/// The bpftrace program: the issue's per-comm syscall count, and a `BEGIN` probe, which runs
/// once every probe is attached, to say so.
pub const BPFTRACE_PROGRAM: &str =
    r#"BEGIN { printf("ready\n"); } tracepoint:raw_syscalls:sys_exit { @[comm] = count(); }"#;

/// How long bpftrace may take to attach.
const BPFTRACE_TIMEOUT: Duration = Duration::from_secs(60);

/// What is attached while a loop runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    /// Nothing: the baseline.
    Nothing,
    /// The sensor's empty `tp_btf` program on `sys_exit` (`floor_btf`): the dispatch floor.
    Floor,
    /// `sensor run` with some rules.
    Sensor(Rules),
    /// bpftrace counting syscalls per comm.
    Bpftrace,
}

impl Column {
    /// Every column, in the table's order.
    pub const ALL: [Column; 5] = [
        Column::Nothing,
        Column::Floor,
        Column::Sensor(Rules::Builtin),
        Column::Sensor(Rules::Falco),
        Column::Bpftrace,
    ];

    /// Its header in the table.
    pub fn header(self) -> &'static str {
        match self {
            Column::Nothing => "nothing attached",
            Column::Floor => "empty tp_btf program",
            Column::Sensor(Rules::Builtin) => "`sensor run` (built-in rules)",
            Column::Sensor(Rules::Falco) => "`sensor run --rules falco_rules.yaml`",
            Column::Bpftrace => "bpftrace per-comm count",
        }
    }

    /// A name for log files.
    fn slug(self) -> &'static str {
        match self {
            Column::Nothing => "nothing",
            Column::Floor => "floor",
            Column::Sensor(Rules::Builtin) => "sensor-builtin",
            Column::Sensor(Rules::Falco) => "sensor-falco",
            Column::Bpftrace => "bpftrace",
        }
    }

    /// Attaches this configuration; it stays attached until the result is dropped. Logs go
    /// below `logs`.
    pub fn attach(self, logs: &Path) -> Result<Attached, String> {
        let log = logs.join(format!("{}.log", self.slug()));
        Ok(match self {
            Column::Nothing => Attached::Nothing,
            Column::Floor => Attached::Floor { _probe: FloorProbe::attach().map_err(|e| format!("floor_btf: {e}"))? },
            Column::Sensor(rules) => Attached::Sensor { sensor: Sensor::start(rules, &[], &log)? },
            Column::Bpftrace => Attached::Bpftrace { bpftrace: Bpftrace::start()? },
        })
    }
}

impl Attached {
    /// The process that holds the configuration's BPF programs, if it has any.
    pub fn programs_owner(&self) -> Option<u32> {
        match self {
            Attached::Nothing => None,
            Attached::Floor { .. } => Some(std::process::id()),
            Attached::Sensor { sensor } => Some(sensor.pid()),
            Attached::Bpftrace { bpftrace } => Some(bpftrace.0.id()),
        }
    }
}

/// An attached configuration, held to be dropped (which detaches it).
pub enum Attached {
    /// Nothing attached.
    Nothing,
    /// The empty program, loaded and attached by this process.
    Floor { _probe: FloorProbe },
    /// A running sensor.
    Sensor { sensor: Sensor },
    /// A running bpftrace.
    Bpftrace { bpftrace: Bpftrace },
}

/// A running bpftrace; stopped with SIGINT on drop (it prints its map and exits).
pub struct Bpftrace(Child);

impl Bpftrace {
    /// Starts bpftrace and waits until its probes are attached.
    fn start() -> Result<Self, String> {
        let mut child = Command::new("bpftrace")
            .args(["-e", BPFTRACE_PROGRAM])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("bpftrace: {e} (`cargo xtask setup` installs Debian's bpftrace)"))?;
        let stdout = child.stdout.take().ok_or("no bpftrace stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads every line (its map at exit too), so bpftrace never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let bpftrace = Self(child);
        let start = Instant::now();
        while let Some(left) = BPFTRACE_TIMEOUT.checked_sub(start.elapsed()) {
            match rx.recv_timeout(left) {
                Ok(line) if line.trim() == "ready" => return Ok(bpftrace),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        Err("bpftrace did not attach (no `ready` from its BEGIN probe)".into())
    }
}

impl Drop for Bpftrace {
    fn drop(&mut self) {
        // SAFETY: kill has no memory preconditions; the pid is our own child's.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGINT) };
        let _ = self.0.wait();
    }
}
