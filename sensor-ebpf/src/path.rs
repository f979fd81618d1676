//! Paths as the kernel resolved them: a file's dentries walked up to the task's root
//! (crossing mount points), and a cgroup's kernfs nodes up to its hierarchy's root. The
//! walk leaves the component names in a [`PathScratch`]; [`Record::path_blob`] writes them
//! out.
//!
//! Each walk is a `bpf_loop` (Linux 5.17): the verifier checks one step once, where an
//! open-coded loop of this many branching steps exceeds its budget.

use core::{
    ffi::c_void,
    ptr::{read_volatile as get, write_volatile as set},
};

use aya_ebpf::helpers::generated::bpf_loop;
use sensor_abi::record::{CGROUP_PATH_MAX, PATH_MAX};

use crate::{
    maps::{PATH_PARTS, PATH_SCRATCH, PathScratch, off},
    record::Record,
    task::{current, read},
};

/// Mount crossings allowed on top of [`PATH_PARTS`] names.
const MOUNT_HOPS: usize = 16;

/// What a dentry walk step needs; on the program's stack, as `bpf_loop` requires.
#[repr(C)]
struct DentryWalk {
    ps: *mut PathScratch,
    root_dentry: u64,
    root_mnt: u64,
}

/// One step up from `ps.node` on `ps.mount`: records its name and moves to its parent, or
/// crosses to the mount point below, or stops (1) at the task's root, the top of the mount
/// tree, or a pseudo file's own root (a memfd, a pipe).
#[inline(never)]
extern "C" fn dentry_step(_index: u64, ctx: *mut c_void) -> i64 {
    let walk = unsafe { &*(ctx as *const DentryWalk) };
    let ps = walk.ps;
    let mount_mnt = u64::from(off!(mount_mnt));
    let dentry = unsafe { get(&raw const (*ps).node) };
    let mount = unsafe { get(&raw const (*ps).mount) };
    let vfsmnt = mount + mount_mnt;
    if dentry == 0 || (dentry == walk.root_dentry && vfsmnt == walk.root_mnt) {
        unsafe { set(&raw mut (*ps).cut, 0) };
        return 1;
    }
    if dentry == read::<u64>(vfsmnt, off!(vfsmount_root)) {
        // The top of this mount: go on from where it is mounted.
        let parent: u64 = read(mount, off!(mount_parent));
        if parent == 0 || parent == mount {
            unsafe { set(&raw mut (*ps).cut, 0) };
            return 1;
        }
        unsafe {
            set(&raw mut (*ps).node, read(mount, off!(mount_mountpoint)));
            set(&raw mut (*ps).mount, parent);
        }
        return 0;
    }
    let n = unsafe { get(&raw const (*ps).n) } as usize;
    if n >= PATH_PARTS {
        return 1;
    }
    let parent: u64 = read(dentry, off!(dentry_parent));
    unsafe {
        (*ps).names[n & (PATH_PARTS - 1)] = read(dentry, off!(dentry_name));
        set(&raw mut (*ps).n, n as u64 + 1);
        set(&raw mut (*ps).node, parent);
    }
    if parent == dentry {
        unsafe { set(&raw mut (*ps).cut, 0) };
        return 1;
    }
    0
}

/// Appends the path of `path` (a `struct path *`: mount and dentry) as seen from the
/// current task's root.
#[inline(always)]
pub fn path_blob(rec: &mut Record, slot: u8, path: u64) {
    let Some(ps) = PATH_SCRATCH.get_ptr_mut(0) else { return };
    let fs: u64 = read(current(), off!(task_fs));
    let root = fs + u64::from(off!(fs_root));
    unsafe {
        set(&raw mut (*ps).n, 0);
        set(&raw mut (*ps).cut, 1);
        set(&raw mut (*ps).node, read(path, off!(path_dentry)));
        set(&raw mut (*ps).mount, read::<u64>(path, off!(path_mnt)).wrapping_sub(u64::from(off!(mount_mnt))));
    }
    let mut walk = DentryWalk { ps, root_dentry: read(root, off!(path_dentry)), root_mnt: read(root, off!(path_mnt)) };
    let step = dentry_step as *const () as *mut c_void;
    unsafe { bpf_loop((PATH_PARTS + MOUNT_HOPS) as u32, step, &raw mut walk as *mut c_void, 0) };
    rec.path_blob(ps, slot, PATH_MAX);
}

/// One step up from kernfs node `ps.node`: records its name and moves to its parent, or
/// stops (1) at the hierarchy's root, which has no parent and no name in the path.
#[inline(never)]
extern "C" fn kernfs_step(_index: u64, ctx: *mut c_void) -> i64 {
    let ps = unsafe { *(ctx as *const *mut PathScratch) };
    let kn = unsafe { get(&raw const (*ps).node) };
    let parent: u64 = read(kn, off!(kernfs_parent));
    if kn == 0 || parent == 0 {
        unsafe { set(&raw mut (*ps).cut, 0) };
        return 1;
    }
    let n = unsafe { get(&raw const (*ps).n) } as usize;
    if n >= PATH_PARTS {
        return 1;
    }
    unsafe {
        (*ps).names[n & (PATH_PARTS - 1)] = read(kn, off!(kernfs_name));
        set(&raw mut (*ps).n, n as u64 + 1);
        set(&raw mut (*ps).node, parent);
    }
    0
}

/// Appends the path of cgroup `cgroup` in its hierarchy (`/` for the root).
#[inline(always)]
pub fn cgroup_blob(rec: &mut Record, slot: u8, cgroup: u64) {
    if cgroup == 0 {
        return;
    }
    let Some(ps) = PATH_SCRATCH.get_ptr_mut(0) else { return };
    unsafe {
        set(&raw mut (*ps).n, 0);
        set(&raw mut (*ps).cut, 1);
        set(&raw mut (*ps).node, read(cgroup, off!(cgroup_kn)));
    }
    let mut ctx = ps;
    let step = kernfs_step as *const () as *mut c_void;
    unsafe { bpf_loop(PATH_PARTS as u32 + 1, step, &raw mut ctx as *mut c_void, 0) };
    rec.path_blob(ps, slot, CGROUP_PATH_MAX);
}
