//! Process lifecycle from the scheduler tracepoints: fork, exec and exit; and cgroup moves.

use aya_ebpf::helpers::bpf_get_current_pid_tgid;
use sensor_abi::{
    config::OFFSET_MISSING,
    record::{CgroupAttachBody, ExecBody, ExitBody, ForkBody, HEADER_SIZE, Header, RecordKind, blob_slot},
    syscalls::{NR_EXECVE, NR_EXECVEAT},
};

use crate::{
    maps::{Class, EXEC_INFO, EXEC_STASH, STASH_EXEC_DONE, off},
    path::{cgroup_blob, path_blob},
    record::{Record, Source},
    syscall::{stash_blobs, stash_entry},
    task::{current, exec_info, fill_header, forget_current, read},
};

/// Starts a record of `kind` with a `B` body and fills its header.
#[inline(always)]
fn start<B>(kind: RecordKind) -> Option<Record> {
    let mut rec = Record::start(HEADER_SIZE + core::mem::size_of::<B>())?;
    fill_header(rec.at::<Header>(0), kind);
    Some(rec)
}

#[inline(always)]
fn finish(mut rec: Record) {
    let len = rec.off as u32;
    rec.at::<Header>(0).len = len;
    rec.emit(Class::Lifecycle);
}

/// `sched_process_fork(parent, child)`: runs in the parent.
#[inline(always)]
pub fn on_fork(child: u64) {
    crate::prefilter::on_fork(child);
    let Some(mut rec) = start::<ForkBody>(RecordKind::ProcFork) else { return };
    let body: &mut ForkBody = rec.at(HEADER_SIZE);
    body.child_tid = read(child, off!(task_pid));
    body.child_pid = read(child, off!(task_tgid));
    finish(rec);
}

/// Appends the current task's cgroup paths: the default (v2) hierarchy's and one v1
/// controller's, so the container is known at the exec itself on every cgroup layout.
#[inline(always)]
fn cgroup_blobs(rec: &mut Record) {
    let css_set: u64 = read(current(), off!(task_cgroups));
    cgroup_blob(rec, blob_slot::CGROUP_DFL, read(css_set, off!(css_set_dfl_cgrp)));
    let subsys = off!(cgroup_v1_subsys);
    if subsys != OFFSET_MISSING {
        let css: u64 = read(css_set + u64::from(off!(css_set_subsys)) + 8 * u64::from(subsys & 63), 0);
        cgroup_blob(rec, blob_slot::CGROUP_V1, read(css, off!(css_cgroup)));
    }
}

/// `sched_process_exec(task, old_pid, bprm)`: runs in the task, after the new program is
/// loaded.
#[inline(always)]
pub fn on_exec(old_pid: u32, bprm: u64) {
    let Some(mut rec) = start::<ExecBody>(RecordKind::ProcExec) else { return };
    let filename: u64 = read(bprm, off!(bprm_filename));
    rec.blob(blob_slot::EXE_PATH, filename, Source::KernelStr);
    let mm: u64 = read(current(), off!(task_mm));
    let file: u64 = read(mm, off!(mm_exe_file));
    if file != 0 {
        path_blob(&mut rec, blob_slot::EXE_FILE, file + u64::from(off!(file_path)));
    }
    cgroup_blobs(&mut rec);
    // Built in a map: it is too large for the BPF stack beside the rest.
    let Some(info) = EXEC_INFO.get_ptr_mut(0) else { return };
    exec_info(info, file);
    rec.struct_blob(blob_slot::EXEC_INFO, unsafe { &*info });
    let nblobs = rec.nblobs as u32;
    let body: &mut ExecBody = rec.at(HEADER_SIZE);
    body.old_tid = old_pid;
    body.nblobs = nblobs;
    // Leave the blobs for the exec syscall's exit, keeping the number and arguments its
    // enter side stored. A thread other than the leader that execs takes the leader's id,
    // so its enter side is under its old thread id.
    let key = bpf_get_current_pid_tgid();
    let enter_key = (key & !0xffff_ffff) | u64::from(old_pid);
    let entered = EXEC_STASH.get_ptr(enter_key).map(|e| unsafe { ((*e).nr, (*e).args) });
    if let Some(entry) = stash_entry(&EXEC_STASH, key) {
        match entered {
            Some((nr, args)) if nr == NR_EXECVE || nr == NR_EXECVEAT => {
                entry.nr = nr;
                entry.args = args;
            }
            // The enter was missed: assume execve.
            _ => {
                entry.nr = NR_EXECVE;
                entry.args = [0; 6];
            }
        }
        entry.flags = STASH_EXEC_DONE;
        stash_blobs(entry, &rec, HEADER_SIZE + core::mem::size_of::<ExecBody>());
    }
    finish(rec);
}

/// `sched_process_exit(task)`: runs in the exiting thread.
#[inline(always)]
pub fn on_exit() {
    let Some(mut rec) = start::<ExitBody>(RecordKind::ProcExit) else { return };
    let task = current();
    let signal: u64 = read(task, off!(task_signal));
    let live: i32 = read(signal, off!(signal_live));
    let body: &mut ExitBody = rec.at(HEADER_SIZE);
    body.exit_code = read(task, off!(task_exit_code));
    body.group_dead = (live == 0) as u32;
    finish(rec);
    forget_current();
    crate::syscall::forget_exiting_thread(live == 0);
}

/// `cgroup_attach_task(dst_cgrp, path, task, threadgroup)`: runs in the task doing the move.
#[inline(always)]
pub fn on_cgroup_attach(dst_cgrp: u64, path: u64, task: u64, threadgroup: bool) {
    let Some(mut rec) = start::<CgroupAttachBody>(RecordKind::CgroupAttach) else { return };
    rec.blob(blob_slot::CGROUP_PATH, path, Source::KernelStr);
    let root: u64 = read(dst_cgrp, off!(cgroup_root));
    let body: &mut CgroupAttachBody = rec.at(HEADER_SIZE);
    body.tid = read(task, off!(task_pid));
    body.pid = read(task, off!(task_tgid));
    body.hierarchy = read(root, off!(cgroup_root_hierarchy_id));
    body.threadgroup = threadgroup as u32;
    finish(rec);
}
