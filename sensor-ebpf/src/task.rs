//! Reading the current task: its identity into a record header, and what an exec gave it.
//!
//! Structure offsets come from the loader (resolved against the running kernel's BTF),
//! so every read goes through `bpf_probe_read_kernel` at a configured offset.

use aya_ebpf::helpers::{
    bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_probe_read_kernel,
    generated::{bpf_get_current_cgroup_id, bpf_get_current_task, bpf_get_smp_processor_id, bpf_ktime_get_boot_ns},
};
use sensor_abi::{
    config::OFFSET_MISSING,
    record::{ABI_VERSION, ExecInfo, Header, RecordKind, exe_flags},
};

use crate::maps::{TASK_IDS, TaskIds, off};

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

/// The `struct file` at number `fd` of the current task's fd table; 0 if none.
#[inline(always)]
pub fn file_of_fd(fd: u64) -> u64 {
    let files: u64 = read(current(), off!(task_files));
    let fdt: u64 = read(files, off!(files_fdt));
    let max_fds: u32 = read(fdt, off!(fdtable_max_fds));
    if fd >= u64::from(max_fds) {
        return 0;
    }
    let table: u64 = read(fdt, off!(fdtable_fd));
    read(table + fd * 8, 0)
}

/// `OVERLAYFS_SUPER_MAGIC`.
const OVERLAYFS_MAGIC: u64 = 0x794c_7630;
/// `SB_RDONLY` in `super_block.s_flags`.
const SB_RDONLY: u64 = 1;
/// `CAP_DAC_OVERRIDE`.
const CAP_DAC_OVERRIDE: u64 = 1 << 1;
/// Write permission bits of `i_mode`: owner, group, others.
const S_IWUSR: u16 = 0o200;
const S_IWGRP: u16 = 0o20;
const S_IWOTH: u16 = 0o2;
/// `enum mm_counter_type`: the `rss_stat` counters.
const MM_FILEPAGES: u32 = 0;
const MM_ANONPAGES: u32 = 1;
const MM_SWAPENTS: u32 = 2;
const MM_SHMEMPAGES: u32 = 3;

/// [`exe_flags`] of the executable `file` for a task with credentials `cred`.
#[inline(always)]
fn exe_flags_of(file: u64, cred: u64, cap_effective: u64) -> u32 {
    let mut flags = 0;
    let dentry: u64 = read(file + u64::from(off!(file_path)), off!(path_dentry));
    // A memfd is a pseudo file: its dentry is its own parent, named "memfd:<name>". A
    // file someone named so on a real file system has a real parent.
    let name: u64 = read(dentry, off!(dentry_name));
    if read::<u64>(dentry, off!(dentry_parent)) == dentry && read::<[u8; 6]>(name, 0) == *b"memfd:" {
        flags |= exe_flags::FROM_MEMFD;
    }
    let inode: u64 = read(file, off!(file_inode));
    let sb: u64 = read(inode, off!(inode_sb));
    if read::<u64>(sb, off!(sb_magic)) == OVERLAYFS_MAGIC && off!(ovl_upperdentry) != OFFSET_MISSING {
        // An overlay inode has an upper dentry once the file exists in the upper layer.
        // The offset is from `vfs_inode` to `__upperdentry` inside `struct ovl_inode`.
        let upper = (inode as i64).wrapping_add(i64::from(off!(ovl_upperdentry) as i32)) as u64;
        flags |= if read::<u64>(upper, 0) != 0 { exe_flags::UPPER_LAYER } else { exe_flags::LOWER_LAYER };
    }
    let mode: u16 = read(inode, off!(inode_mode));
    let writable_bit = if read::<u32>(inode, off!(inode_uid)) == read::<u32>(cred, off!(cred_fsuid)) {
        S_IWUSR
    } else if read::<u32>(inode, off!(inode_gid)) == read::<u32>(cred, off!(cred_fsgid)) {
        S_IWGRP
    } else {
        S_IWOTH
    };
    let read_only = read::<u64>(sb, off!(sb_flags)) & SB_RDONLY != 0;
    if !read_only && (mode & writable_bit != 0 || cap_effective & CAP_DAC_OVERRIDE != 0) {
        flags |= exe_flags::WRITABLE;
    }
    flags
}

/// The number of `pid` (a `struct pid *`) at namespace `level`; 0 when it has none there.
#[inline(always)]
fn pid_nr(pid: u64, level: u32) -> u32 {
    if pid == 0 || level > read::<u32>(pid, off!(pid_level)) {
        return 0;
    }
    read(pid + u64::from(off!(pid_numbers)) + u64::from(level & 31) * u64::from(off!(upid_size)), off!(upid_nr))
}

/// Fills `info` with the current task's credentials, executable (`file`, its
/// `mm.exe_file`), terminal, process group, limits and memory, right after an exec.
///
/// Each field is stored as soon as it is known: a value kept in a register across the
/// branches that compute the next ones would make the verifier check every later path once
/// per combination of them.
#[inline(always)]
pub fn exec_info(info: *mut ExecInfo, file: u64) {
    macro_rules! put {
        ($field:ident, $value:expr) => {
            unsafe { core::ptr::write_volatile(&raw mut (*info).$field, $value) }
        };
    }
    let task = current();
    let cred: u64 = read(task, off!(task_cred));
    let mm: u64 = read(task, off!(task_mm));
    let inode: u64 = read(file, off!(file_inode));
    let cap_effective: u64 = read(cred, off!(cred_cap_effective));
    put!(cap_effective, cap_effective);
    put!(cap_permitted, read(cred, off!(cred_cap_permitted)));
    put!(cap_inheritable, read(cred, off!(cred_cap_inheritable)));
    put!(exe_ino, read(inode, off!(inode_ino)));
    put!(exe_ctime_sec, read(inode, off!(inode_ctime_sec)));
    put!(exe_mtime_sec, read(inode, off!(inode_mtime_sec)));
    put!(exe_ctime_nsec, read(inode, off!(inode_ctime_nsec)));
    put!(exe_mtime_nsec, read(inode, off!(inode_mtime_nsec)));
    put!(exe_flags, exe_flags_of(file, cred, cap_effective));
    let signal: u64 = read(task, off!(task_signal));
    let tty: u64 = read(signal, off!(signal_tty));
    put!(tty_major, 0);
    put!(tty_minor, 0);
    if tty != 0 {
        let driver: u64 = read(tty, off!(tty_driver));
        let minor_start: i32 = read(driver, off!(tty_driver_minor_start));
        let index: i32 = read(tty, off!(tty_index));
        put!(tty_major, read::<i32>(driver, off!(tty_driver_major)) as u32);
        put!(tty_minor, minor_start.wrapping_add(index) as u32);
    }
    let loginuid = off!(task_loginuid);
    put!(loginuid, if loginuid == OFFSET_MISSING { u32::MAX } else { read(task, loginuid) });
    // The task's own pid namespace level and namespace, for the namespace views.
    let thread_pid: u64 = read(task, off!(task_thread_pid));
    let level: u32 = read(thread_pid, off!(pid_level));
    let pids = signal + u64::from(off!(signal_pids));
    let pgrp: u64 = read(pids + 8 * u64::from(off!(pidtype_pgid) & 7), 0);
    put!(pgid, pid_nr(pgrp, 0));
    put!(vpgid, pid_nr(pgrp, level));
    let session: u64 = read(pids + 8 * u64::from(off!(pidtype_sid) & 7), 0);
    put!(sid, pid_nr(session, 0));
    put!(vsid, pid_nr(session, level));
    put!(fdlimit, read(signal, off!(signal_nofile_cur)));
    put!(maj_flt, read(task, off!(task_maj_flt)));
    put!(min_flt, read(task, off!(task_min_flt)));
    put!(vm_pages, read(mm, off!(mm_total_vm)));
    // Counters can be transiently negative (per-CPU deltas); those read as 0.
    let rss = |counter: u32| -> u64 {
        let at = mm + u64::from(off!(mm_rss_stat)) + u64::from(counter * off!(rss_stride));
        read::<i64>(at, off!(rss_count)) as u64 & (i64::MAX as u64)
    };
    put!(rss_pages, rss(MM_FILEPAGES) + rss(MM_ANONPAGES) + rss(MM_SHMEMPAGES));
    put!(swap_pages, rss(MM_SWAPENTS));
    let ns: u64 = read(
        thread_pid + u64::from(off!(pid_numbers)) + u64::from(level & 31) * u64::from(off!(upid_size)),
        off!(upid_ns),
    );
    let reaper: u64 = read(ns, off!(pid_ns_reaper));
    put!(pidns_init_start_ns, read(reaper, off!(task_start_boottime)));
}

/// Id of `pid` as seen in its own (deepest) pid namespace, and that namespace's inode.
#[inline(always)]
fn ns_view(pid: u64) -> (u32, u32) {
    let level: u32 = read(pid, off!(pid_level));
    // Bound the level so the address stays verifiably computed (pid namespaces nest <= 32).
    let upid = pid + off!(pid_numbers) as u64 + (level & 31) as u64 * off!(upid_size) as u64;
    let nr: u32 = read(upid, off!(upid_nr));
    let ns: u64 = read(upid, off!(upid_ns));
    (nr, read(ns, off!(pid_ns_inum)))
}

/// Walks `task_struct` for the namespace view of thread `task`.
#[inline(always)]
fn task_ids(task: u64, nsproxy: u64, is_leader: bool) -> TaskIds {
    let (ns_tid, pid_ns) = ns_view(read(task, off!(task_thread_pid)));
    let ns_pid = if is_leader {
        ns_tid
    } else {
        let leader: u64 = read(task, off!(task_group_leader));
        ns_view(read(leader, off!(task_thread_pid))).0
    };
    let mnt_ns: u64 = read(nsproxy, off!(nsproxy_mnt_ns));
    TaskIds { nsproxy, pid_ns, mnt_ns: read(mnt_ns, off!(mnt_ns_inum)), ns_tid, ns_pid }
}

/// Fills `h` with the current task's identity, the time and the CPU.
#[inline(always)]
pub fn fill_header(h: &mut Header, kind: RecordKind) {
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
    let parent: u64 = read(task, off!(task_real_parent));
    h.ppid = read(parent, off!(task_tgid));

    let nsproxy: u64 = read(task, off!(task_nsproxy));
    let ids = match TASK_IDS.get_ptr(pid_tgid) {
        Some(cached) if unsafe { (*cached).nsproxy } == nsproxy => unsafe { *cached },
        _ => {
            let ids = task_ids(task, nsproxy, h.tid == h.pid);
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
