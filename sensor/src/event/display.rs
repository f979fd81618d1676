//! The one-line text form of an event, for `sensor capture` without `--json`.

use std::fmt;

use super::{Event, EventKind};

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.wall_ts / 1_000_000_000;
        let nanos = self.wall_ts % 1_000_000_000;
        let (h, m, s) = (secs / 3600 % 24, secs / 60 % 60, secs % 60);
        write!(
            f,
            "{h:02}:{m:02}:{s:02}.{nanos:09} cpu={} {}[{}:{}] ppid={} uid={} ",
            self.cpu, self.comm, self.pid, self.tid, self.ppid, self.uid
        )?;
        match &self.kind {
            EventKind::Syscall(sc) => {
                write!(f, "{}(", sc.name)?;
                // The serde form names every argument; reuse it rather than a second list.
                if let Ok(serde_json::Value::Object(args)) = serde_json::to_value(&sc.args) {
                    let mut first = true;
                    for (k, v) in args.iter().filter(|(k, v)| *k != "family" && !v.is_null()) {
                        write!(f, "{}{k}={v}", if first { "" } else { ", " })?;
                        first = false;
                    }
                }
                write!(f, ") = {}", sc.ret)?;
                if sc.truncated {
                    write!(f, " [truncated]")?;
                }
                if sc.enter_missing {
                    write!(f, " [enter missing]")?;
                }
                Ok(())
            }
            EventKind::ProcFork { child_pid, child_tid } => write!(f, "fork child={child_pid}:{child_tid}"),
            EventKind::ProcExec { old_tid, filename } => {
                write!(f, "exec {} old_tid={old_tid}", filename.as_deref().unwrap_or("<unknown>"))
            }
            EventKind::ProcExit { exit_code, group_dead } => {
                write!(f, "exit code={exit_code} group_dead={group_dead}")
            }
            EventKind::CgroupAttach { task_pid, task_tid, hierarchy, path } => {
                write!(
                    f,
                    "cgroup_attach {task_pid}:{task_tid} to {hierarchy}:{}",
                    path.as_deref().unwrap_or("<unknown>")
                )
            }
        }
    }
}
