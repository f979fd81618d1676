//! The prefilter (see `sensor_abi::prefilter`): at an open's enter, the classes the rules
//! want for its path; at its exit, whether it is sent; the closes of fds whose open was
//! not sent, and the paths of those fds when a later call uses them.

use core::ffi::c_void;

use aya_ebpf::{
    bindings::BPF_ANY,
    helpers::generated::{bpf_loop, bpf_probe_read_kernel},
    maps::{HashMap, lpm_trie::Key},
};
use sensor_abi::{
    prefilter::{
        DROPPED_FDS, NAME_MAX, NameBytes, PATH_KEY_MAX, PathBytes, PrefilterConfig, bloom_bit, open_classes,
        prefilter_flags,
    },
    record::{BLOB_HEADER_SIZE, BlobHeader, blob_slot},
};

use crate::{
    maps::{
        DROPPED, FdBits, NO_FDS, OPEN_NAMES_0, OPEN_NAMES_1, OPEN_PATHS_0, OPEN_PATHS_1, PREFILTER, PREFILTERED, STASH,
        STASH_EMPTY, off,
    },
    path::path_blob,
    record::Record,
    task::{current, file_of_fd, read},
};

/// `Stash::prefilter` bit: the enter side decided; the other bits are the trie's classes.
pub const DECIDED: u32 = 1 << 31;

/// `S_IFMT` and `S_IFDIR` of `i_mode`.
const S_IFMT: u16 = 0o170000;
const S_IFDIR: u16 = 0o040000;

#[inline(always)]
fn config() -> Option<&'static PrefilterConfig> {
    PREFILTER.get(0)
}

/// High bit of each byte of `x` that is zero (exact: no carry crosses bytes).
#[inline(always)]
fn zero_bytes(x: u64) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    !(((x & LOW7) + LOW7) | x | LOW7)
}

/// High bit of each byte of `x` equal to `c`.
#[inline(always)]
fn bytes_eq(x: u64, c: u8) -> u64 {
    zero_bytes(x ^ (0x0101_0101_0101_0101 * c as u64))
}

/// What the kernel reads off a path: whether it is plain, has a hidden component, and
/// where its last component starts. On the program's stack, as `bpf_loop` requires.
#[repr(C)]
struct PathShape {
    /// The path (NUL-terminated, with at least `PATH_KEY_MAX + 8` readable bytes).
    p: *const u8,
    len: u64,
    /// A step found it is not plain.
    bad: u64,
    hidden: u64,
    name_at: u64,
    /// Where the first component ends (its '/' or the path's end; 0 until found).
    first_end: u64,
}

/// `sensor_abi::prefilter::is_plain_path` for the `len` bytes at `p`, eight bytes at a
/// time (one `bpf_loop` step each, so the verifier checks a step once): `..`, or a `/`
/// followed by `/`, the end, or `.` then `/` or the end, is not plain. On the way: whether
/// a `/.` occurs (a hidden component) and where the last `/` is.
#[inline(always)]
fn shape(p: *const u8, len: usize) -> Option<PathShape> {
    if len == 0 || len + 1 >= PATH_KEY_MAX || unsafe { *p } != b'/' {
        return None;
    }
    let mut shape = PathShape { p, len: len as u64, bad: 0, hidden: 0, name_at: 0, first_end: 0 };
    let step = shape_step as *const () as *mut c_void;
    unsafe { bpf_loop(len.div_ceil(8) as u32, step, &raw mut shape as *mut c_void, 0) };
    if shape.first_end == 0 {
        shape.first_end = len as u64;
    }
    (shape.bad == 0).then_some(shape)
}

/// Step `index` of [`shape`]: bytes `8 * index` to `8 * index + 7`.
#[inline(never)]
extern "C" fn shape_step(index: u64, ctx: *mut c_void) -> i64 {
    let s = unsafe { &mut *(ctx as *mut PathShape) };
    let base = (index as usize * 8) & 255;
    let len = s.len as usize;
    if base >= len || base >= PATH_KEY_MAX {
        return 1;
    }
    let at = |k: usize| unsafe { core::ptr::read_unaligned(s.p.add(base + k) as *const u64) };
    let (b0, b1, b2) = (at(0), at(1), at(2));
    // Only positions inside the path count (the bytes after its NUL are stale).
    let valid = len - base;
    let in_path = if valid >= 8 { u64::MAX } else { (1u64 << ((valid & 7) * 8)) - 1 };
    let slash = bytes_eq(b0, b'/') & in_path;
    let dot1 = bytes_eq(b1, b'.');
    let after_dot = bytes_eq(b2, b'/') | zero_bytes(b2);
    let bad = (slash & (bytes_eq(b1, b'/') | zero_bytes(b1) | (dot1 & after_dot))) | (bytes_eq(b0, b'.') & dot1);
    if bad & in_path != 0 {
        s.bad = 1;
        return 1;
    }
    if slash & dot1 != 0 {
        s.hidden = 1;
    }
    if slash != 0 {
        // The highest flagged byte is the last '/' of this word.
        s.name_at = (base + (63 - slash.leading_zeros() as usize) / 8 + 1) as u64;
    }
    // The lowest '/' after the leading one ends the first component.
    let inner = if base == 0 { slash & !0x80 } else { slash };
    if s.first_end == 0 && inner != 0 {
        s.first_end = (base + inner.trailing_zeros() as usize / 8) as u64;
    }
    0
}

/// The [`bloom_bit`] of the component `[from, to)` of the path at `p`.
#[inline(always)]
fn component_bit(p: *const u8, from: usize, to: usize) -> u64 {
    if to <= from {
        return u64::MAX;
    }
    // Through memory, so the compiler keeps the masks the verifier needs to see the bound.
    let (from, to) = unsafe { (core::ptr::read_volatile(&from), core::ptr::read_volatile(&to)) };
    let (first, last) = unsafe { (*p.add(from & 255), *p.add((to - 1) & 255)) };
    bloom_bit(to.wrapping_sub(from), first, last)
}

/// At an open's enter, with its path as the record's first blob at `at`: the classes the
/// rules want for that path, with [`DECIDED`]; 0 (send) when the prefilter is off or the
/// path is not one it decides for.
#[inline(always)]
pub fn open_verdict(rec: &mut Record, at: usize) -> u32 {
    let Some(cfg) = config() else { return 0 };
    if cfg.flags & prefilter_flags::OPEN == 0 || rec.nblobs == 0 {
        return 0;
    }
    let (tries, names) = if cfg.trie == 0 { (&OPEN_PATHS_0, &OPEN_NAMES_0) } else { (&OPEN_PATHS_1, &OPEN_NAMES_1) };
    let h: &mut BlobHeader = rec.at(at);
    let (flags, len) = (h.flags, h.len as usize);
    if flags != 0 {
        return 0;
    }
    let path = rec.ptr(at + BLOB_HEADER_SIZE);
    let Some(shape) = shape(path, len) else { return 0 };
    let mut classes = if shape.hidden != 0 { cfg.open_hidden } else { 0 };
    let name_at = shape.name_at as usize;
    if cfg.flags & prefilter_flags::NAMES != 0 && cfg.names_bloom & component_bit(path, name_at, len) != 0 {
        classes |= name_classes(names, path, name_at, len);
    }
    if cfg.dirs_bloom & component_bit(path, 1, shape.first_end as usize) != 0 {
        // The key is built in place: its bit count over the blob header, then the header back.
        let saved: u32 = *rec.at(at);
        *rec.at::<u32>(at) = ((len + 1) * 8) as u32;
        classes |= tries.get(rec.at::<Key<PathBytes>>(at)).copied().unwrap_or(0);
        *rec.at::<u32>(at) = saved;
    }
    classes | DECIDED
}

/// The classes the name map has for the path's last component (from `name_at` to `len`).
#[inline(always)]
fn name_classes(names: &HashMap<NameBytes, u32>, path: *const u8, name_at: usize, len: usize) -> u32 {
    let n = len.saturating_sub(name_at);
    if n == 0 || n >= NAME_MAX {
        return 0;
    }
    let mut key: NameBytes = [0; NAME_MAX];
    // `name_at` < `len` < PATH_KEY_MAX; the mask only shows the verifier a bound.
    let src = unsafe { path.add(name_at & 255) };
    if unsafe { bpf_probe_read_kernel(key.as_mut_ptr() as *mut _, (n & (NAME_MAX - 1)) as u32, src as *const _) } != 0 {
        return 0;
    }
    unsafe { names.get(key) }.copied().unwrap_or(0)
}

/// The classes of an open with `args` (its open flags at `flags_arg`) returning `ret`.
#[inline(always)]
fn classes_of(flags_arg: Option<usize>, args: &[u64; 6], ret: i64) -> u32 {
    let flags = match flags_arg {
        Some(i) if i < 6 => Some(args[i]),
        _ => None,
    };
    open_classes(flags, ret)
}

/// At an open's exit: whether it is not sent (counted, its stash entry consumed and its fd
/// remembered), from the enter side's verdict in thread `key`'s stash entry. A directory is
/// always sent: later `*at` calls and `fchdir` resolve paths through it.
#[inline(always)]
pub fn drops_open(key: u64, nr: u64, flags_arg: Option<usize>, ret: i64) -> bool {
    let Some(entry) = STASH.get_ptr_mut(key) else { return false };
    let entry = unsafe { &mut *entry };
    let verdict = entry.prefilter;
    if entry.nr != nr as u32 || verdict & DECIDED == 0 {
        return false;
    }
    let Some(cfg) = config() else { return false };
    if cfg.flags & prefilter_flags::OPEN == 0 || classes_of(flags_arg, &entry.args, ret) & (verdict | cfg.open_any) != 0
    {
        return false;
    }
    if ret >= 0 {
        let fd = ret as u64;
        if fd >= DROPPED_FDS as u64 {
            return false;
        }
        let inode: u64 = read(file_of_fd(fd), off!(file_inode));
        if read::<u16>(inode, off!(inode_mode)) & S_IFMT == S_IFDIR || !remember(fd) {
            return false;
        }
    }
    entry.nr = STASH_EMPTY;
    count(nr);
    true
}

/// At a close's exit: whether `fd`'s open was not sent, so neither is this (counted).
#[inline(always)]
pub fn drops_close(fd: u64, nr: u64) -> bool {
    let Some(cfg) = config() else { return false };
    if cfg.flags & prefilter_flags::CLOSE == 0 || fd >= DROPPED_FDS as u64 {
        return false;
    }
    let Some(bits) = dropped_fds() else { return false };
    let (word, bit) = fd_bit(fd);
    if bits[word] & bit == 0 {
        return false;
    }
    bits[word] &= !bit;
    count(nr);
    true
}

/// A call returned the new fd `fd` and is sent: its number no longer stands for an fd
/// whose open was not.
#[inline(always)]
pub fn fd_sent(fd: i64) {
    if fd < 0 || fd >= DROPPED_FDS as i64 || config().is_none_or(|c| c.flags == 0) {
        return;
    }
    if let Some(bits) = dropped_fds() {
        let (word, bit) = fd_bit(fd as u64);
        bits[word] &= !bit;
    }
}

/// A call returned the new fd `fd` and was shed: like a kept-back open, its first use
/// carries the file's path, so user space still learns what the fd is.
#[inline(always)]
pub fn fd_shed(fd: i64) {
    if fd < 0 || fd >= DROPPED_FDS as i64 || config().is_none_or(|c| c.flags == 0) {
        return;
    }
    remember(fd as u64);
}

/// At the exit of a call using `fd`: when that fd's open was not sent, adds the file's path
/// as the [`blob_slot::FD_FILE`] blob; user space knows the fd from then on.
#[inline(always)]
pub fn fd_file_blob(rec: &mut Record, fd: u64) {
    if fd >= DROPPED_FDS as u64 || config().is_none_or(|c| c.flags == 0) {
        return;
    }
    let Some(bits) = dropped_fds() else { return };
    let (word, bit) = fd_bit(fd);
    if bits[word] & bit == 0 {
        return;
    }
    bits[word] &= !bit;
    let file = file_of_fd(fd);
    if file != 0 {
        path_blob(rec, blob_slot::FD_FILE, file + u64::from(off!(file_path)));
    }
}

/// A process forked with its own copy of the fd table: the copy of an fd whose open was
/// not sent was not sent either.
#[inline(always)]
pub fn on_fork(child: u64) {
    let files: u64 = read(current(), off!(task_files));
    let child_files: u64 = read(child, off!(task_files));
    if child_files == files || child_files == 0 {
        return;
    }
    // The child's table may sit where a dead process's did: its entry goes either way.
    let copied = match DROPPED.get_ptr(files) {
        Some(bits) => DROPPED.insert(child_files, unsafe { *bits }, BPF_ANY as u64).is_ok(),
        None => false,
    };
    if !copied {
        DROPPED.remove(child_files).ok();
    }
}

/// The word of an [`FdBits`] that holds `fd`, and its bit there.
#[inline(always)]
fn fd_bit(fd: u64) -> (usize, u64) {
    ((fd / 64) as usize & (DROPPED_FDS / 64 - 1), 1u64 << (fd % 64))
}

/// The current fd table's entry in [`DROPPED`], if it has one.
#[inline(always)]
fn dropped_fds() -> Option<&'static mut FdBits> {
    let files: u64 = read(current(), off!(task_files));
    DROPPED.get_ptr_mut(files).map(|p| unsafe { &mut *p })
}

/// Remembers that `fd`'s open was not sent; false when it cannot be (then it is sent).
#[inline(always)]
fn remember(fd: u64) -> bool {
    let bits = match dropped_fds() {
        Some(bits) => bits,
        None => {
            let files: u64 = read(current(), off!(task_files));
            let Some(zero) = NO_FDS.get(0) else { return false };
            if DROPPED.insert(files, zero, BPF_ANY as u64).is_err() {
                return false;
            }
            let Some(bits) = dropped_fds() else { return false };
            bits
        }
    };
    let (word, bit) = fd_bit(fd);
    bits[word] |= bit;
    true
}

#[inline(always)]
fn count(nr: u64) {
    if let Some(n) = PREFILTERED.get_ptr_mut(nr as u32) {
        unsafe { *n += 1 };
    }
}
