//! The markdown report: a header saying what ran where, then each section's table with a
//! paragraph saying what it measured. Headings start at level 3, so the report can sit under
//! the README's "Performance" section as it is.

use std::{fmt::Write as _, process::Command, time::Instant};

use sensor_tests::bench::stats::thousands;

use crate::{
    Plan,
    columns::BPFTRACE_PROGRAM,
    cost::Cost,
    latency::{self, Latency},
    load::Loop,
    memory, storms,
};

/// The report being written.
pub struct Report {
    plan: &'static Plan,
    started: Instant,
    /// The date, the commit, the machine and its load at the start.
    header: String,
    sections: String,
}

impl Report {
    /// Starts the report.
    pub fn begin(plan: &'static Plan) -> Self {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let date = sensor::rules::format_iso8601(now.as_nanos() as u64);
        let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
        let header = format!(
            "### `{}` ({} run, {} UTC)\n\nCommit {}, kernel {}, {cpus} CPUs; load average {} at the start",
            plan.command(),
            plan.name,
            date.get(..16).unwrap_or(&date).replace('T', " "),
            commit(),
            read_trimmed("/proc/sys/kernel/osrelease"),
            load_average(),
        );
        Self { plan, started: Instant::now(), header, sections: String::new() }
    }

    /// The whole report, ending the header with the load at the end and the time taken.
    pub fn finish(self) -> String {
        let minutes = self.started.elapsed().as_secs_f64() / 60.0;
        format!("{}, {} at the end; {minutes:.1} min.\n{}", self.header, load_average(), self.sections)
    }

    /// A section: its heading, what it measured, and its table.
    fn section(&mut self, heading: &str, about: &str, table: &str) {
        let _ = write!(self.sections, "\n#### {heading}\n\n{about}\n\n{table}");
    }

    /// The cost table.
    pub fn cost(&mut self, cost: &Cost) {
        let iters: Vec<String> =
            Loop::COST.iter().map(|&lp| format!("{} {}", lp.label(), thousands(self.plan.iters(lp)))).collect();
        let about = format!(
            "Each loop runs in its own process (`loadgen`) pinned to CPU 0; the sensor and bpftrace \
             are not pinned. {} alternating rounds, the column order rotated each round. First \
             column: time per iteration with nothing attached; the others: the ratio to it in the \
             same round. Each round runs each loop {} time(s) per column and keeps the fastest run \
             (the machine's other work only adds time). Median (min–max) over the rounds. \
             Iterations per run: {}. The empty program is the sensor's `floor_btf` \
             (`tp_btf/sys_exit`, returns 0); bpftrace runs `{}`.",
            self.plan.rounds,
            self.plan.repeats,
            iters.join(", "),
            BPFTRACE_PROGRAM,
        );
        let mut table = cost.table().render();
        for problem in &cost.problems {
            let _ = writeln!(table, "\nNot measured: {problem}");
        }
        self.section("Cost per loop iteration", &about, &table);
        let about = "The same loops, once more per round and column with the kernel's accounting on \
             (`kernel.bpf_stats_enabled`): the run time of every BPF program the configuration holds \
             (on any CPU, the rest of the machine's syscalls included), divided by the loop's \
             iterations. The accounting itself adds a clock read to each run, and the time a program \
             takes to be called (the tracepoint, the trampoline) is not in it; the figures compare \
             configurations, not absolute costs. Median (min–max) ns over the rounds.";
        self.section("BPF program time per loop iteration", about, &cost.program_table().render());
    }

    /// The storms table.
    pub fn storms(&mut self, storms: &[Result<storms::Storm, String>]) {
        let about = "Generated: the loops' syscalls (iterations × syscalls per iteration: openat+close 2; \
             fork+exec 4, i.e. clone, execve, exit_group, wait4, not counting what `/bin/true` does \
             while it loads; connect 6, i.e. socket, setsockopt, connect, accept4, 2 close). Captured, \
             prefiltered, evaluated, lost, held back: the sensor's counters (`sensor_kernel_events`, its \
             prefilter counter if it has one, else -, `sensor_evaluated_events`, \
             `sensor_kernel_lost_events` (a ring was full), `sensor_kernel_shed_events` plus \
             `sensor_kernel_throttled_events` (its overload policy)) from the storm's start until the sensor caught up (no \
             event in flight): the whole machine's events, not only the loops'; the background is \
             the rest of the machine's rate, counted for 3 s before the storm, times that span. \
             Each storm starts once the sensor has caught up with the one before. Sensor CPU: its user+system time \
             over the same span, divided by the storm's length (100 % = one core).";
        self.section("Storms", about, &storms::table(self.plan, storms).render());
    }

    /// The alert latency table.
    pub fn latency(&mut self, rows: &[Result<Latency, String>]) {
        let about = format!(
            "{} reads of `/etc/shadow` (openat, close) by `loadgen` pinned to CPU 0, {} ms apart, \
             under `sensor run --json` (no rate limit) once it has caught up with the storms; \
             each alert is matched to its read by \
             `evt.time`. Latency: from the wall-clock time taken just before the openat to the \
             moment the bench read the alert's line from the sensor's stdout.",
            self.plan.alerts,
            self.plan.alert_spacing.as_millis(),
        );
        self.section("Alert latency, syscall to stdout", &about, &latency::table(rows).render());
    }

    /// The memory table.
    pub fn memory(&mut self, rows: &[memory::Row]) {
        let about = "VmRSS and VmHWM (peak) of a fresh sensor from `/proc/PID/status`, 2 s after it is \
             ready, and 2 s after it has caught up with the work (and with whatever else the machine \
             did meanwhile). Processes: fork+exec of /bin/true, one at a time. Containers: \
             `docker run --rm --network none` of the test bed's busybox image, 2 at a time \
             (`tests/testbed/testbed.sh`), the sensor given the test bed's runtime sockets. The \
             BPF maps mapped into the sensor are, nearly all, its ring buffers: kernel memory that \
             exists whether mapped or not (8 MiB per ring by default), whose data pages the kernel \
             maps twice in a row so that a record that wraps around reads as one; VmRSS counts \
             them twice (Rss of the `anon_inode:bpf-map` mappings in `/proc/PID/smaps`).";
        self.section("Sensor memory", about, &memory::table(rows).render());
    }
}

impl Plan {
    /// The command that runs this plan.
    pub fn command(&self) -> &'static str {
        if self.name == "quick" { "cargo xtask bench -- --quick" } else { "cargo xtask bench" }
    }
}

/// The short commit of the workspace, marked when the tree has changes.
fn commit() -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(["-C", env!("CARGO_MANIFEST_DIR")])
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let Some(head) = git(&["rev-parse", "--short", "HEAD"]) else { return "unknown".into() };
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    if dirty { format!("{head} (with uncommitted changes)") } else { head }
}

/// The 1, 5 and 15 minute load averages.
fn load_average() -> String {
    read_trimmed("/proc/loadavg").split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// A file's content, trimmed; empty if unreadable.
fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default().trim().to_owned()
}
