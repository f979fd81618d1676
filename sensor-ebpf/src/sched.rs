//! Process lifecycle from the scheduler tracepoints: fork, exec and exit.

use aya_ebpf::helpers::bpf_get_current_pid_tgid;
use sensor_abi::{
    config::Config,
    record::{ExecBody, ExitBody, ForkBody, HEADER_SIZE, Header, RecordKind, blob_slot},
    syscalls::{NR_EXECVE, NR_EXECVEAT},
};

use crate::{
    maps::{CONFIG, STASH_EXEC_DONE},
    record::{Record, Source},
    syscall::{stash_blobs, stash_entry},
    task::{current, exec_info, fill_header, forget_current, read},
};

/// Starts a record of `kind` with a `B` body and fills its header.
#[inline(always)]
fn start<B>(kind: RecordKind, cfg: &Config) -> Option<Record> {
    let mut rec = Record::start(HEADER_SIZE + core::mem::size_of::<B>())?;
    fill_header(rec.at::<Header>(0), kind, &cfg.offsets);
    Some(rec)
}

#[inline(always)]
fn finish(mut rec: Record, cfg: &Config) {
    let len = rec.off as u32;
    rec.at::<Header>(0).len = len;
    rec.emit(cfg);
}

/// `sched_process_fork(parent, child)`: runs in the parent.
#[inline(always)]
pub fn on_fork(child: u64) {
    let cfg = CONFIG.load();
    let Some(mut rec) = start::<ForkBody>(RecordKind::ProcFork, &cfg) else { return };
    let o = cfg.offsets;
    let body: &mut ForkBody = rec.at(HEADER_SIZE);
    body.child_tid = read(child, o.task_pid);
    body.child_pid = read(child, o.task_tgid);
    finish(rec, &cfg);
}

/// `sched_process_exec(task, old_pid, bprm)`: runs in the task, after the new program is
/// loaded.
#[inline(always)]
pub fn on_exec(old_pid: u32, bprm: u64) {
    let cfg = CONFIG.load();
    let Some(mut rec) = start::<ExecBody>(RecordKind::ProcExec, &cfg) else { return };
    let o = cfg.offsets;
    let filename: u64 = read(bprm, o.bprm_filename);
    rec.blob(blob_slot::EXE_PATH, filename, Source::KernelStr);
    rec.struct_blob(blob_slot::EXEC_INFO, &exec_info(&o));
    let nblobs = rec.nblobs as u32;
    let body: &mut ExecBody = rec.at(HEADER_SIZE);
    body.old_tid = old_pid;
    body.nblobs = nblobs;
    // Leave the path for the exec syscall's exit, keeping the number and arguments its
    // enter side stored (an entry without them means the enter was missed: assume execve).
    if let Some(entry) = stash_entry(bpf_get_current_pid_tgid()) {
        if entry.nr != NR_EXECVE && entry.nr != NR_EXECVEAT {
            entry.nr = NR_EXECVE;
            entry.args = [0; 6];
            entry.flags = 0;
        }
        entry.flags |= STASH_EXEC_DONE;
        stash_blobs(entry, &rec, HEADER_SIZE + core::mem::size_of::<ExecBody>());
    }
    finish(rec, &cfg);
}

/// `sched_process_exit(task)`: runs in the exiting thread.
#[inline(always)]
pub fn on_exit() {
    let cfg = CONFIG.load();
    let Some(mut rec) = start::<ExitBody>(RecordKind::ProcExit, &cfg) else { return };
    let o = cfg.offsets;
    let task = current();
    let signal: u64 = read(task, o.task_signal);
    let live: i32 = read(signal, o.signal_live);
    let body: &mut ExitBody = rec.at(HEADER_SIZE);
    body.exit_code = read(task, o.task_exit_code);
    body.group_dead = (live == 0) as u32;
    finish(rec, &cfg);
    forget_current();
}
