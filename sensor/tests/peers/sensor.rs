//! Running `sensor replay --config` as a user does: rules and configuration in files, events
//! from a file or a pipe, and the per-output counters it prints at exit.

use std::{
    collections::HashMap,
    io::{Read as _, Write as _},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::mpsc,
    thread::JoinHandle,
    time::Instant,
};

use serde_json::json;

/// The rule the output tests fire: a warning with tags, whose output names the file, the
/// process and the container (its id, and its name, which tells the tests' events apart).
pub const RULES: &str = r#"
- rule: Shadow read
  desc: a test rule
  condition: evt.type = openat and fd.name = /etc/shadow
  output: "Sensitive file opened (file=%fd.name proc=%proc.name container_id=%container.id container=%container.name)"
  priority: WARNING
  tags: [filesystem, mitre_credential_access]
"#;

/// A process name full of the characters Telegram's MarkdownV2 and HTML give a meaning to.
pub const AWKWARD_NAME: &str = "x_*[1](2)~`>#+-=|{}.!\\<b>&";

/// The container of the tests' events.
pub const CONTAINER_ID: &str = "3ad7b26ded6d";

/// An event (at time 0) that fires [`RULES`] in [`CONTAINER_ID`], named `container`, by a
/// process named `process`.
pub fn event_by(process: &str, container: &str) -> String {
    json!({
        "evt.type": "openat", "evt.rawtime": 0, "fd.name": "/etc/shadow", "proc.name": process,
        "container.id": CONTAINER_ID, "container.name": container,
    })
    .to_string()
}

/// An event that fires [`RULES`] in the container named `container`, by a process named
/// [`AWKWARD_NAME`].
pub fn event(container: &str) -> String {
    event_by(AWKWARD_NAME, container)
}

/// `sensor replay` with rules and a configuration written into a test's directory.
pub struct Replay {
    command: Command,
    dir: PathBuf,
}

impl Replay {
    /// `sensor replay --rules DIR/rules.yaml --config DIR/sensor.yaml`, logging at debug level.
    pub fn new(dir: &Path, rules: &str, config: &str) -> Replay {
        std::fs::write(dir.join("rules.yaml"), rules).unwrap();
        std::fs::write(dir.join("sensor.yaml"), config).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_sensor"));
        command.arg("replay").arg("--rules").arg(dir.join("rules.yaml")).arg("--config").arg(dir.join("sensor.yaml"));
        command.env("SENSOR_LOG", "debug");
        Replay { command, dir: dir.to_owned() }
    }

    /// Adds command-line arguments.
    pub fn args(mut self, args: &[&str]) -> Replay {
        self.command.args(args);
        self
    }

    /// Sets an environment variable of the sensor.
    pub fn env(mut self, name: &str, value: &str) -> Replay {
        self.command.env(name, value);
        self
    }

    /// Replays `events`, written to a file, to the end.
    pub fn run(self, events: &[String]) -> Finished {
        let path = self.dir.join("events.jsonl");
        std::fs::write(&path, events.join("\n") + "\n").unwrap();
        self.spawn(&path, Stdio::null()).finish()
    }

    /// Starts replaying events the test writes to the sensor's stdin (`--events -`): the sensor
    /// runs until [`Running::finish`] closes it.
    pub fn start(self) -> Running {
        self.spawn(Path::new("-"), Stdio::piped())
    }

    fn spawn(mut self, events: &Path, stdin: Stdio) -> Running {
        let mut child = self
            .command
            .arg("--events")
            .arg(events)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sensor starts");
        let mut stdout = child.stdout.take().unwrap();
        let stdout = std::thread::spawn(move || {
            let mut text = String::new();
            stdout.read_to_string(&mut text).expect("UTF-8 on stdout");
            text
        });
        let stderr = super::line_channel(child.stderr.take().unwrap());
        Running { events: child.stdin.take(), child, stdout, stderr, stderr_seen: Vec::new() }
    }
}

/// A running `sensor replay`.
pub struct Running {
    child: Child,
    events: Option<ChildStdin>,
    stdout: JoinHandle<String>,
    stderr: mpsc::Receiver<String>,
    /// The stderr lines read so far.
    stderr_seen: Vec<String>,
}

impl Running {
    /// The sensor's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes one event line to the sensor's stdin.
    pub fn send(&mut self, event: &str) {
        let events = self.events.as_mut().expect("started with `start`");
        writeln!(events, "{event}").expect("the sensor reads its stdin");
    }

    /// The sensor's stdin, for a writer thread.
    pub fn take_events(&mut self) -> ChildStdin {
        self.events.take().expect("started with `start`")
    }

    /// Waits until the sensor logs a line containing `needle` (failing after a long while).
    pub fn wait_for_log(&mut self, needle: &str) {
        if self.stderr_seen.iter().any(|l| l.contains(needle)) {
            return;
        }
        let deadline = Instant::now() + super::PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(needle);
                    self.stderr_seen.push(line);
                    if found {
                        return;
                    }
                }
                Err(e) => panic!("no `{needle}` in the sensor's log ({e}):\n{}", self.stderr_seen.join("\n")),
            }
        }
    }

    /// Closes the sensor's stdin and waits for it to exit (failing if it hangs).
    pub fn finish(mut self) -> Finished {
        drop(self.events.take());
        let status = super::wait_for_exit(&mut self.child, "sensor replay");
        self.stderr_seen.extend(self.stderr.iter());
        Finished {
            success: status.success(),
            stdout: self.stdout.join().expect("stdout reader"),
            stderr: self.stderr_seen.join("\n"),
        }
    }
}

/// What a finished `sensor replay` printed.
pub struct Finished {
    /// Whether it exited with 0.
    pub success: bool,
    /// Its standard output.
    pub stdout: String,
    /// Its log and counters.
    pub stderr: String,
}

impl Finished {
    /// The counters the sensor printed for output `name` at exit.
    pub fn counters(&self, name: &str) -> HashMap<String, u64> {
        let prefix = format!("output {name}: ");
        let line = self
            .stderr
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no counters for {name} in:\n{}", self.stderr));
        line.split_whitespace()
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_owned(), v.parse().unwrap())
            })
            .collect()
    }

    /// Asserts `produced = filtered + sent + failed + dropped + suppressed` and an empty queue
    /// for output `name`; its counters.
    pub fn assert_adds_up(&self, name: &str) -> HashMap<String, u64> {
        let c = self.counters(name);
        let accounted = c["filtered"] + c["sent"] + c["failed"] + c["dropped"] + c["suppressed"];
        assert_eq!(c["produced"], accounted, "{name}: {c:?}");
        assert_eq!(c["queued"], 0, "{name}: {c:?}");
        c
    }
}
