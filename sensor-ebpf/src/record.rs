//! Assembling a record in the per-CPU scratch area.
//!
//! Every write lands at an offset masked with `OFFSET_MASK` and is at most `PATH_MAX`
//! bytes long, so the verifier can prove it stays inside the scratch map value.

use aya_ebpf::helpers::{
    bpf_probe_read_user as read_user_value,
    generated::{bpf_probe_read_kernel, bpf_probe_read_kernel_str, bpf_probe_read_user, bpf_probe_read_user_str},
};
use sensor_abi::record::{
    ARGV_MAX, ARGV_MAX_ARGS, BLOB_HEADER_SIZE, BlobHeader, OFFSET_MASK, PATH_MAX, SCRATCH_SIZE, blob_flags, blob_slot,
};

use core::{
    ffi::c_void,
    ptr::{read_volatile as get, write_volatile as set},
};

use aya_ebpf::helpers::generated::bpf_loop;

use crate::maps::{Class, PATH_PARTS, PathScratch, SCRATCH, emit};

/// A record being written into this CPU's scratch area.
pub struct Record {
    buf: *mut u8,
    /// Bytes written so far.
    pub off: usize,
    /// Blobs written so far.
    pub nblobs: u16,
    /// Some data did not fit or was cut.
    pub truncated: bool,
    /// Some memory could not be read (a fault: the page may not be resident yet).
    pub faulted: bool,
}

/// Where a blob's bytes come from.
#[derive(Clone, Copy)]
pub enum Source {
    /// A NUL-terminated string in user memory.
    UserStr,
    /// A NUL-terminated string in kernel memory.
    KernelStr,
    /// `len` bytes of user memory.
    User(usize),
}

impl Record {
    /// Starts a record in this CPU's scratch area, with `body` bytes reserved for the
    /// header and body the caller fills through [`Record::at`].
    #[inline(always)]
    pub fn start(body: usize) -> Option<Self> {
        let buf = SCRATCH.get_ptr_mut(0)? as *mut u8;
        Some(Self { buf, off: body, nblobs: 0, truncated: false, faulted: false })
    }

    /// A typed view of the scratch area at a fixed offset (header and body).
    #[inline(always)]
    pub fn at<T>(&mut self, off: usize) -> &mut T {
        unsafe { &mut *(self.buf.add(off) as *mut T) }
    }

    /// The address of byte `off` of the scratch area.
    #[inline(always)]
    pub fn ptr(&self, off: usize) -> *const u8 {
        unsafe { self.buf.add(off) }
    }

    /// Appends a blob for `slot` read from `src` (a no-op for a null pointer).
    #[inline(always)]
    pub fn blob(&mut self, slot: u8, src: u64, from: Source) {
        if src == 0 {
            return;
        }
        if self.off > OFFSET_MASK {
            self.truncated = true;
            return;
        }
        let o = self.off & OFFSET_MASK;
        let data = unsafe { self.buf.add(o + BLOB_HEADER_SIZE) } as *mut _;
        let srcp = src as *const _;
        let mut flags = 0u8;
        let ret = unsafe {
            match from {
                Source::UserStr => bpf_probe_read_user_str(data, PATH_MAX as u32, srcp),
                Source::KernelStr => bpf_probe_read_kernel_str(data, PATH_MAX as u32, srcp),
                Source::User(n) => {
                    if n > PATH_MAX {
                        flags |= blob_flags::TRUNCATED;
                    }
                    let n = bound(n);
                    let r = bpf_probe_read_user(data, n as u32, srcp);
                    if r == 0 { n as i64 } else { r }
                }
            }
        };
        let mut len = 0usize;
        if ret < 0 {
            flags |= blob_flags::FAULT;
            self.faulted = true;
        } else {
            len = ret as usize;
            if matches!(from, Source::UserStr | Source::KernelStr) {
                // The helpers count the terminating NUL; the blob does not carry it.
                if len >= PATH_MAX {
                    flags |= blob_flags::TRUNCATED;
                }
                len = len.saturating_sub(1);
            }
            len &= (PATH_MAX - 1) | PATH_MAX;
        }
        let h: &mut BlobHeader = self.at(o);
        h.arg = slot;
        h.flags = flags;
        h.len = len as u16;
        if flags & blob_flags::TRUNCATED != 0 {
            self.truncated = true;
        }
        self.off = o + BLOB_HEADER_SIZE + len;
        self.nblobs += 1;
    }

    /// Appends an exec's argument vector, read through its user pointer array (of 32-bit
    /// pointers for an ia32 call), as one [`blob_slot::ARGV`] blob of NUL-terminated strings.
    #[inline(always)]
    pub fn argv_blob(&mut self, argv: u64, compat: bool) {
        if argv == 0 {
            return;
        }
        if self.off > OFFSET_MASK {
            self.truncated = true;
            return;
        }
        let o = self.off & OFFSET_MASK;
        let base = o + BLOB_HEADER_SIZE;
        let mut used = 0usize;
        let mut flags = 0u8;
        for i in 0..ARGV_MAX_ARGS {
            let arg = if compat {
                unsafe { read_user_value((argv + 4 * i as u64) as *const u32) }.map(u64::from)
            } else {
                unsafe { read_user_value((argv + 8 * i as u64) as *const u64) }
            };
            let arg = match arg {
                Ok(p) => p,
                Err(_) => {
                    flags |= blob_flags::FAULT;
                    break;
                }
            };
            if arg == 0 {
                break;
            }
            if used >= ARGV_MAX || i == ARGV_MAX_ARGS - 1 {
                flags |= blob_flags::TRUNCATED;
                break;
            }
            let dst = unsafe { self.buf.add(base + (used & (ARGV_MAX - 1))) };
            let room = (ARGV_MAX - used) & (ARGV_MAX | (ARGV_MAX - 1));
            let n = unsafe { bpf_probe_read_user_str(dst as *mut _, room as u32, arg as *const _) };
            if n <= 0 {
                flags |= blob_flags::FAULT;
                break;
            }
            used += n as usize;
            if n as usize >= room {
                flags |= blob_flags::TRUNCATED;
                break;
            }
        }
        let used = used & (ARGV_MAX | (ARGV_MAX - 1));
        let h: &mut BlobHeader = self.at(o);
        h.arg = blob_slot::ARGV;
        h.flags = flags & !blob_flags::FAULT;
        h.len = used as u16;
        if flags & blob_flags::TRUNCATED != 0 {
            self.truncated = true;
        }
        self.off = base + used;
        self.nblobs += 1;
    }

    /// Appends `value`, a plain structure, as the blob of `slot`.
    #[inline(always)]
    pub fn struct_blob<T>(&mut self, slot: u8, value: &T) {
        if self.off > OFFSET_MASK {
            self.truncated = true;
            return;
        }
        let o = self.off & OFFSET_MASK;
        let len = core::mem::size_of::<T>();
        let dst = unsafe { self.buf.add(o + BLOB_HEADER_SIZE) } as *mut _;
        if unsafe { bpf_probe_read_kernel(dst, len as u32, value as *const T as *const _) } != 0 {
            return;
        }
        let h: &mut BlobHeader = self.at(o);
        h.arg = slot;
        h.flags = 0;
        h.len = len as u16;
        self.off = o + BLOB_HEADER_SIZE + len;
        self.nblobs += 1;
    }

    /// Appends `len` bytes of already serialized blobs (from a stash) at the current end.
    #[inline(always)]
    pub fn append_raw(&mut self, src: *const u8, len: usize, nblobs: u16) {
        if self.off > OFFSET_MASK || len == 0 {
            return;
        }
        let o = self.off & OFFSET_MASK;
        let n = len & (SCRATCH_SIZE / 2 - 1);
        if n > SCRATCH_SIZE - 1 - OFFSET_MASK {
            self.truncated = true;
            return;
        }
        let r = unsafe { bpf_probe_read_kernel(self.buf.add(o) as *mut _, n as u32, src as *const _) };
        if r == 0 {
            self.off = o + n;
            self.nblobs += nblobs;
        }
    }

    /// Copies the bytes `[from, off)` to `dst` (at most `cap` bytes); returns how many.
    #[inline(always)]
    pub fn copy_out(&self, from: usize, dst: *mut u8, cap: usize) -> usize {
        let len = self.off.saturating_sub(from);
        if len == 0 || len > cap || from > OFFSET_MASK {
            return 0;
        }
        let n = len & (SCRATCH_SIZE / 2 - 1);
        let r = unsafe { bpf_probe_read_kernel(dst as *mut _, n as u32, self.buf.add(from & OFFSET_MASK) as *const _) };
        if r == 0 { n } else { 0 }
    }

    /// Appends the path walked into `ps` (names leaf first, see [`PathScratch`]) as a blob
    /// of `/`-joined names from the top down, at most `max_len` bytes (`/` for none).
    #[inline(always)]
    pub fn path_blob(&mut self, ps: *mut PathScratch, slot: u8, max_len: usize) {
        if self.off > OFFSET_MASK {
            self.truncated = true;
            return;
        }
        let o = self.off & OFFSET_MASK;
        let base = o + BLOB_HEADER_SIZE;
        unsafe {
            set(&raw mut (*ps).used, 0);
            let cut = get(&raw const (*ps).cut) != 0;
            set(&raw mut (*ps).flags, if cut { u64::from(blob_flags::TRUNCATED) } else { 0 });
        }
        let mut ctx = PathWrite {
            ps,
            dst: unsafe { self.buf.add(base) },
            max_len: if max_len > PATH_MAX { PATH_MAX as u64 } else { max_len as u64 },
        };
        let n = unsafe { get(&raw const (*ps).n) } as u32 & (2 * PATH_PARTS as u32 - 1);
        let step = path_write_step as *const () as *mut c_void;
        unsafe { bpf_loop(n, step, &raw mut ctx as *mut c_void, 0) };
        let flags = unsafe { get(&raw const (*ps).flags) } as u8;
        let mut used = unsafe { get(&raw const (*ps).used) } as usize & (PATH_MAX - 1);
        if used == 0 && flags & blob_flags::FAULT == 0 {
            unsafe { *self.buf.add(base) = b'/' };
            used = 1;
        }
        let h: &mut BlobHeader = self.at(o);
        h.arg = slot;
        h.flags = flags;
        h.len = used as u16;
        if flags & blob_flags::TRUNCATED != 0 {
            self.truncated = true;
        }
        self.off = base + used;
        self.nblobs += 1;
    }

    /// Sends the record (`off` bytes) to this CPU's ring buffer ([`emit`]); returns whether
    /// it was written.
    #[inline(always)]
    pub fn emit(&self, class: Class) -> bool {
        let len = self.off & (SCRATCH_SIZE - 1);
        if len == 0 {
            return false;
        }
        emit(unsafe { core::slice::from_raw_parts(self.buf, len) }, class)
    }
}

/// What a path-writing step needs; on the program's stack, as `bpf_loop` requires.
#[repr(C)]
struct PathWrite {
    ps: *mut PathScratch,
    /// Where the path's bytes go (a blob's data in the scratch area).
    dst: *mut u8,
    /// Most bytes of the path.
    max_len: u64,
}

/// Adds `flag` to the `blob_flags` of the path being written.
#[inline(always)]
fn add_flag(ps: *mut PathScratch, flag: u8) {
    unsafe { set(&raw mut (*ps).flags, get(&raw const (*ps).flags) | u64::from(flag)) };
}

/// Step `index` of writing a path: `/` and the `index`-th name from the top (the names are
/// leaf first). Stops (1) when the path would pass its bound or a name is unreadable.
#[inline(never)]
extern "C" fn path_write_step(index: u64, ctx: *mut c_void) -> i64 {
    let w = unsafe { &*(ctx as *const PathWrite) };
    let ps = w.ps;
    let n = unsafe { get(&raw const (*ps).n) };
    let used = unsafe { get(&raw const (*ps).used) } as usize & (PATH_MAX - 1);
    let max_len = w.max_len as usize & (PATH_MAX | (PATH_MAX - 1));
    // One byte for the '/' and at least one for the name and its NUL.
    if index >= n {
        return 1;
    }
    if used + 2 > max_len {
        add_flag(ps, blob_flags::TRUNCATED);
        return 1;
    }
    let name = unsafe { (*ps).names[(n - 1 - index) as usize & (PATH_PARTS - 1)] };
    unsafe { *w.dst.add(used) = b'/' };
    let room = (max_len - used - 1) & (PATH_MAX - 1);
    let r = unsafe { bpf_probe_read_kernel_str(w.dst.add(used + 1) as *mut _, room as u32, name as *const _) };
    if r <= 0 {
        add_flag(ps, blob_flags::FAULT);
        return 1;
    }
    // The helper counts the NUL, which the next '/' overwrites.
    unsafe { set(&raw mut (*ps).used, (used + r as usize) as u64) };
    if r as usize >= room {
        add_flag(ps, blob_flags::TRUNCATED);
        return 1;
    }
    0
}

/// Clamps a read length to `1..=PATH_MAX` in a way the verifier can follow.
#[inline(always)]
fn bound(n: usize) -> usize {
    let n = if n > PATH_MAX { PATH_MAX } else { n };
    n & (PATH_MAX | (PATH_MAX - 1))
}
