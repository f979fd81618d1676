//! The time BPF programs spend, from the kernel's own accounting: with
//! `kernel.bpf_stats_enabled` on, each program's fdinfo counts its runs (`run_cnt`) and
//! the nanoseconds they took (`run_time_ns`). Unlike a loop's wall clock, this is not
//! blurred by what else the machine does.

use std::fs;

/// Where the kernel switches the accounting on.
const SWITCH: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// Runs and time of the programs a process holds.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProgramTime {
    pub runs: u64,
    pub ns: u64,
}

impl ProgramTime {
    /// The sum over every BPF program `pid` holds an fd of.
    pub fn of(pid: u32) -> Result<Self, String> {
        let dir = format!("/proc/{pid}/fd");
        let mut total = ProgramTime::default();
        for entry in fs::read_dir(&dir).map_err(|e| format!("{dir}: {e}"))?.flatten() {
            if fs::read_link(entry.path()).is_ok_and(|l| l.as_os_str() == "anon_inode:bpf-prog") {
                let info = fs::read_to_string(format!("/proc/{pid}/fdinfo/{}", entry.file_name().to_string_lossy()))
                    .unwrap_or_default();
                let key =
                    |k: &str| info.lines().find_map(|l| l.strip_prefix(k)?.trim().parse::<u64>().ok()).unwrap_or(0);
                total.runs += key("run_cnt:");
                total.ns += key("run_time_ns:");
            }
        }
        Ok(total)
    }

    /// What ran between `before` and this.
    pub fn since(self, before: ProgramTime) -> ProgramTime {
        ProgramTime { runs: self.runs.saturating_sub(before.runs), ns: self.ns.saturating_sub(before.ns) }
    }
}

/// The accounting switched on, for as long as this lives; it adds a clock read to every
/// program run, so the timed loops run without it.
pub struct Accounting;

impl Accounting {
    pub fn on() -> Result<Self, String> {
        fs::write(SWITCH, "1").map_err(|e| format!("{SWITCH}: {e}"))?;
        Ok(Accounting)
    }
}

impl Drop for Accounting {
    fn drop(&mut self) {
        if let Err(e) = fs::write(SWITCH, "0") {
            eprintln!("bench: {SWITCH}: {e}");
        }
    }
}
