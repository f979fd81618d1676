//! Reading the current task's identity into a record header.
//!
//! Structure offsets come from the loader (resolved against the running kernel's BTF),
//! so every read goes through `bpf_probe_read_kernel` at a configured offset.

use aya_ebpf::helpers::{
    bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_probe_read_kernel,
    generated::{bpf_get_current_cgroup_id, bpf_get_current_task, bpf_get_smp_processor_id, bpf_ktime_get_boot_ns},
};
use sensor_abi::{
    config::{KernelOffsets, OFFSET_MISSING},
    record::{ABI_VERSION, ExecInfo, Header, RecordKind},
};

use crate::maps::{TASK_IDS, TaskIds};

/// Reads a `T` at `base + off` in kernel memory; zero when the read fails.
#[inline(always)]
pub fn read<T: Copy + Default>(base: u64, off: u32) -> T {
    if base == 0 {
        return T::default();
    }
    unsafe { bpf_probe_read_kernel((base + off as u64) as *const T) }.unwrap_or_default()
}

/// The current `task_struct` address.
#[inline(always)]
pub fn current() -> u64 {
    unsafe { bpf_get_current_task() }
}

/// The current task's credentials, executable and terminal, right after an exec.
#[inline(always)]
pub fn exec_info(o: &KernelOffsets) -> ExecInfo {
    let task = current();
    let cred: u64 = read(task, o.task_cred);
    let mm: u64 = read(task, o.task_mm);
    let file: u64 = read(mm, o.mm_exe_file);
    let inode: u64 = read(file, o.file_inode);
    let signal: u64 = read(task, o.task_signal);
    let tty: u64 = read(signal, o.signal_tty);
    let driver: u64 = read(tty, o.tty_driver);
    let (tty_major, tty_minor) = if tty == 0 {
        (0, 0)
    } else {
        let minor_start: i32 = read(driver, o.tty_driver_minor_start);
        let index: i32 = read(tty, o.tty_index);
        (read::<i32>(driver, o.tty_driver_major) as u32, minor_start.wrapping_add(index) as u32)
    };
    ExecInfo {
        cap_effective: read(cred, o.cred_cap_effective),
        cap_permitted: read(cred, o.cred_cap_permitted),
        cap_inheritable: read(cred, o.cred_cap_inheritable),
        exe_ino: read(inode, o.inode_ino),
        exe_ctime_sec: read(inode, o.inode_ctime_sec),
        exe_mtime_sec: read(inode, o.inode_mtime_sec),
        exe_ctime_nsec: read(inode, o.inode_ctime_nsec),
        exe_mtime_nsec: read(inode, o.inode_mtime_nsec),
        tty_major,
        tty_minor,
        loginuid: if o.task_loginuid == OFFSET_MISSING { u32::MAX } else { read(task, o.task_loginuid) },
        _pad: 0,
    }
}

/// Id of `pid` as seen in its own (deepest) pid namespace, and that namespace's inode.
#[inline(always)]
fn ns_view(pid: u64, o: &KernelOffsets) -> (u32, u32) {
    let level: u32 = read(pid, o.pid_level);
    // Bound the level so the address stays verifiably computed (pid namespaces nest <= 32).
    let upid = pid + o.pid_numbers as u64 + (level & 31) as u64 * o.upid_size as u64;
    let nr: u32 = read(upid, o.upid_nr);
    let ns: u64 = read(upid, o.upid_ns);
    (nr, read(ns, o.pid_ns_inum))
}

/// Walks `task_struct` for the namespace view of thread `task`.
#[inline(always)]
fn task_ids(task: u64, nsproxy: u64, is_leader: bool, o: &KernelOffsets) -> TaskIds {
    let (ns_tid, pid_ns) = ns_view(read(task, o.task_thread_pid), o);
    let ns_pid = if is_leader {
        ns_tid
    } else {
        let leader: u64 = read(task, o.task_group_leader);
        ns_view(read(leader, o.task_thread_pid), o).0
    };
    let mnt_ns: u64 = read(nsproxy, o.nsproxy_mnt_ns);
    TaskIds { nsproxy, pid_ns, mnt_ns: read(mnt_ns, o.mnt_ns_inum), ns_tid, ns_pid }
}

/// Fills `h` with the current task's identity, the time and the CPU.
#[inline(always)]
pub fn fill_header(h: &mut Header, kind: RecordKind, o: &KernelOffsets) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let uid_gid = bpf_get_current_uid_gid();
    let task = current();
    h.version = ABI_VERSION;
    h.kind = kind as u16;
    h.ts_boot_ns = unsafe { bpf_ktime_get_boot_ns() };
    h.cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    h.tid = pid_tgid as u32;
    h.pid = (pid_tgid >> 32) as u32;
    h.uid = uid_gid as u32;
    h.gid = (uid_gid >> 32) as u32;
    h.cpu = unsafe { bpf_get_smp_processor_id() };
    h.comm = bpf_get_current_comm().unwrap_or_default();

    // The parent can change (reparenting), so it is read every time.
    let parent: u64 = read(task, o.task_real_parent);
    h.ppid = read(parent, o.task_tgid);

    let nsproxy: u64 = read(task, o.task_nsproxy);
    let ids = match TASK_IDS.get_ptr(pid_tgid) {
        Some(cached) if unsafe { (*cached).nsproxy } == nsproxy => unsafe { *cached },
        _ => {
            let ids = task_ids(task, nsproxy, h.tid == h.pid, o);
            // A full map only costs the next record the walk again.
            let _ = TASK_IDS.insert(pid_tgid, ids, 0);
            ids
        }
    };
    h.ns_tid = ids.ns_tid;
    h.ns_pid = ids.ns_pid;
    h.pid_ns = ids.pid_ns;
    h.mnt_ns = ids.mnt_ns;
}

/// Forgets the cached namespace view of an exiting thread (its id may be reused).
#[inline(always)]
pub fn forget_current() {
    let _ = TASK_IDS.remove(bpf_get_current_pid_tgid());
}
