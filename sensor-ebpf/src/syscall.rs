//! Syscall capture: the exit dispatcher, and the enter side for calls whose user memory
//! must be read before the kernel acts on it.

use core::ffi::c_void;

use aya_ebpf::{
    bindings::BPF_ANY,
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_user, generated::bpf_loop},
    maps::LruHashMap,
};
use sensor_abi::{
    config::{F_DUPFD, F_DUPFD_CLOEXEC, PROT_EXEC, SyscallSpec, spec_flags},
    prefilter::spec_prefilter,
    record::{HEADER_SIZE, Header, RecordKind, SOCKADDR_MAX, SYSCALL_BODY_SIZE, SyscallBody, blob_slot, syscall_flags},
    syscalls::{ArgKind, NR_EXECVE, NR_EXECVEAT},
};

use crate::{
    maps::{
        Class, EXEC_STASH, FLOOD, SCRATCH, STASH, STASH_EMPTY, STASH_EXEC_DONE, STASH_REREAD, SYSCALLS, Stash, config,
        counters, off, throttled,
    },
    prefilter,
    record::{Record, Source},
    sock::local_addr_blob,
    task::{current, fill_header, read},
};

/// Where a syscall record's blobs start.
const BODY_END: usize = HEADER_SIZE + SYSCALL_BODY_SIZE;

/// `EINPROGRESS`: a non-blocking connect that goes on in the background.
const EINPROGRESS: i64 = 115;

/// x86_64 `struct pt_regs`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct PtRegs {
    r15: u64,
    r14: u64,
    r13: u64,
    r12: u64,
    bp: u64,
    bx: u64,
    r11: u64,
    r10: u64,
    r9: u64,
    r8: u64,
    ax: u64,
    cx: u64,
    dx: u64,
    si: u64,
    di: u64,
    /// The syscall number.
    pub orig_ax: u64,
    ip: u64,
    cs: u64,
    flags: u64,
    sp: u64,
    ss: u64,
}

impl PtRegs {
    /// The six syscall arguments of a native call, in order.
    #[inline(always)]
    pub fn args(&self) -> [u64; 6] {
        [self.di, self.si, self.dx, self.r10, self.r8, self.r9]
    }

    /// The six syscall arguments of an ia32 call, in order (32-bit values).
    #[inline(always)]
    pub fn ia32_args(&self) -> [u64; 6] {
        let w = |r: u64| r & 0xffff_ffff;
        [w(self.bx), w(self.cx), w(self.dx), w(self.si), w(self.di), w(self.bp)]
    }
}

/// The capture spec of syscall `nr`, if it is captured.
#[inline(always)]
pub fn enabled(nr: u64) -> Option<&'static SyscallSpec> {
    let spec = SYSCALLS.get(nr as u32)?;
    (spec.flags & spec_flags::ENABLED != 0).then_some(spec)
}

/// Whether the current task belongs to the sensor itself (process `self_pid`).
#[inline(always)]
fn is_self() -> bool {
    (bpf_get_current_pid_tgid() >> 32) as u32 == config!(self_pid)
}

#[inline(always)]
fn user<T: Copy + Default>(addr: u64) -> T {
    if addr == 0 {
        return T::default();
    }
    unsafe { bpf_probe_read_user(addr as *const T) }.unwrap_or_default()
}

/// Enter side, for syscalls whose exit alone is not enough: keeps the number and the
/// argument registers (an exec), or reads their memory arguments now (`AT_ENTER`).
#[inline(always)]
pub fn on_enter(nr: u64, args: &[u64; 6]) {
    let Some(spec) = enabled(nr) else { return };
    if spec.flags & (spec_flags::AT_ENTER | spec_flags::EXEC) == 0 || is_self() {
        return;
    }
    let key = bpf_get_current_pid_tgid();
    if spec.flags & spec_flags::EXEC != 0 {
        let Some(entry) = stash_entry(&EXEC_STASH, key) else { return };
        entry.nr = nr as u32;
        entry.args = *args;
        entry.flags = 0;
        entry.prefilter = 0;
        entry.len = 0;
        entry.nblobs = 0;
        return;
    }
    let Some(mut rec) = Record::start(BODY_END) else { return };
    // The enter side reads the few kinds its calls have (opens, `connect`), not the
    // generic reader's: its verifier states would multiply the prefilter's test.
    let verdict = if spec.prefilter & spec_prefilter::OPEN != 0 {
        capture_open_args(&mut rec, spec, args);
        prefilter::open_verdict(&mut rec, BODY_END)
    } else {
        capture_sockaddr_args(&mut rec, spec, args);
        0
    };
    let Some(entry) = stash_entry(&STASH, key) else { return };
    entry.nr = nr as u32;
    entry.args = *args;
    entry.flags = if rec.faulted { STASH_REREAD } else { 0 };
    entry.prefilter = verdict;
    stash_blobs(entry, &rec, BODY_END);
}

/// Exit side: emits the record of syscall `nr` (x86_64 numbering; an ia32 call already
/// translated when `compat`) that returned `ret`, if it is captured. One call site per
/// program: the verifier checks what is inlined here once.
#[inline(always)]
pub fn on_exit(nr: u64, mut args: [u64; 6], ret: i64, compat: bool) {
    let Some(spec) = enabled(nr) else { return };
    if spec.flags & spec_flags::PROT_EXEC_ONLY != 0 && args[2] & PROT_EXEC == 0 {
        return;
    }
    if spec.flags & spec_flags::DUPFD_ONLY != 0 && args[1] != F_DUPFD && args[1] != F_DUPFD_CLOEXEC {
        return;
    }
    if is_self() {
        return;
    }
    let role = spec.prefilter;
    let key = bpf_get_current_pid_tgid();
    if kept_back(role, spec.flags & spec_flags::EXEC != 0, nr, args[0], key, ret, compat) {
        return;
    }
    let Some(mut rec) = Record::start(BODY_END) else { return };
    fill_header(rec.at::<Header>(0), RecordKind::Syscall);
    let mut nr = nr as u32;
    let mut flags = if compat { syscall_flags::COMPAT } else { 0 };
    let mut read_args = false;
    if spec.flags & spec_flags::EXEC != 0 && ret == 0 {
        // The registers and memory are the new program's now: the number and arguments
        // were kept at enter (a successful execveat even exits as execve), the file and
        // paths by sched_process_exec, and the arguments are on the new program's stack.
        match take_stash(&EXEC_STASH, key, |e| {
            e.flags & STASH_EXEC_DONE != 0 && (e.nr == NR_EXECVE || e.nr == NR_EXECVEAT)
        }) {
            Some(entry) => {
                nr = entry.nr;
                if !compat {
                    args = entry.args;
                }
                append_stash(&mut rec, entry);
            }
            None => {
                miss();
                flags |= syscall_flags::NO_ENTER;
            }
        }
        let mm: u64 = read(current(), off!(task_mm));
        let start: u64 = read(mm, off!(mm_arg_start));
        let end: u64 = read(mm, off!(mm_arg_end));
        if end > start {
            rec.blob(blob_slot::ARGV, start, Source::User((end - start) as usize));
        }
        let env_start: u64 = read(mm, off!(mm_env_start));
        let env_end: u64 = read(mm, off!(mm_env_end));
        if env_end > env_start {
            rec.blob(blob_slot::ENV, env_start, Source::User((env_end - env_start) as usize));
        }
    } else if spec.flags & spec_flags::AT_ENTER != 0 && !compat {
        // ia32 calls have no per-syscall enter tracepoints: theirs are read below, at exit.
        match take_stash(&STASH, key, |e| e.nr == nr) {
            Some(entry) if entry.flags & STASH_REREAD != 0 => {
                // Unreadable at enter (not resident yet); the call has faulted it in.
                entry.nr = STASH_EMPTY;
                read_args = true;
                flags |= syscall_flags::REREAD_AT_EXIT;
            }
            Some(entry) => append_stash(&mut rec, entry),
            None => {
                miss();
                flags |= syscall_flags::NO_ENTER;
            }
        }
    } else {
        read_args = true;
    }
    if read_args {
        capture_args(&mut rec, spec, &args, ret, compat);
    }
    let socket = if spec.flags & spec_flags::LOCAL_ADDR_ARG0 != 0 && (ret == 0 || ret == -EINPROGRESS) {
        Some(args[0] & 0xffff_ffff)
    } else if spec.flags & spec_flags::LOCAL_ADDR_RET != 0 && ret >= 0 {
        Some(ret as u64)
    } else {
        None
    };
    if let Some(fd) = socket {
        local_addr_blob(&mut rec, fd);
    }
    if role & spec_prefilter::FD_ARG != 0
        && let Some(i) = spec_prefilter::arg(role)
        && i < 6
    {
        prefilter::fd_file_blob(&mut rec, args[i] & 0xffff_ffff);
    }
    if rec.truncated {
        flags |= syscall_flags::TRUNCATED;
    }
    let nblobs = rec.nblobs;
    let body: &mut SyscallBody = rec.at(HEADER_SIZE);
    body.nr = nr;
    body.nblobs = nblobs;
    body.flags = flags;
    body.ret = ret;
    body.args = args;
    let len = rec.off as u32;
    rec.at::<Header>(0).len = len;
    let sent = rec.emit(if spec.flags & spec_flags::BULK != 0 { Class::Bulk } else { Class::Syscall });
    if role & (spec_prefilter::OPEN | spec_prefilter::NEW_FD) != 0 {
        if sent {
            prefilter::fd_sent(ret);
        } else {
            prefilter::fd_shed(ret);
        }
    }
}

/// What [`kept_back`] decides on, on the program's stack as `bpf_loop` requires.
#[repr(C)]
struct ExitCall {
    /// The syscall's `spec_prefilter` byte.
    role: u64,
    exec: u64,
    nr: u64,
    arg0: u64,
    key: u64,
    ret: i64,
    compat: u64,
    /// Set by the step: the record is not sent.
    kept_back: u64,
}

/// Whether the record of this syscall exit is kept back: by the prefilter (a close of an fd
/// whose open was not sent, an open no rule wants), else by the overload policy
/// ([`throttled`]), which never holds back an exec (each is a new program, and it
/// completes its stash). The prefilter goes first: it costs less than the ring's query,
/// and what it drops is not counted as throttled. Decided in one `bpf_loop` step, which
/// the verifier checks once and which returns one state: inline, its branches would
/// multiply the states of everything after.
#[inline(always)]
fn kept_back(role: u8, exec: bool, nr: u64, arg0: u64, key: u64, ret: i64, compat: bool) -> bool {
    let mut call =
        ExitCall { role: role as u64, exec: exec as u64, nr, arg0, key, ret, compat: compat as u64, kept_back: 0 };
    let step = kept_back_step as *const () as *mut c_void;
    unsafe { bpf_loop(1, step, &raw mut call as *mut c_void, 0) };
    call.kept_back != 0
}

/// The one step of [`kept_back`].
#[inline(never)]
extern "C" fn kept_back_step(_index: u64, ctx: *mut c_void) -> i64 {
    let call = unsafe { &mut *(ctx as *mut ExitCall) };
    let role = call.role as u8;
    let prefiltered = if role & spec_prefilter::CLOSE != 0 {
        prefilter::drops_close(call.arg0 & 0xffff_ffff, call.nr)
    } else {
        // ia32 calls have no per-syscall enter tracepoints (nor a verdict).
        role & spec_prefilter::OPEN != 0
            && call.compat == 0
            && prefilter::drops_open(call.key, call.nr, spec_prefilter::arg(role), call.ret)
    };
    call.kept_back = (prefiltered || (call.exec == 0 && throttled())) as u64;
    1
}

/// Reads the memory behind each argument as the spec says (structures laid out for an
/// ia32 caller when `compat`).
#[inline(always)]
fn capture_args(rec: &mut Record, spec: &SyscallSpec, args: &[u64; 6], ret: i64, compat: bool) {
    for i in 0..6 {
        let a = args[i];
        let next = if i < 5 { args[i + 1] } else { 0 };
        let slot = i as u8;
        match ArgKind::from_raw(spec.kinds[i]) {
            Some(ArgKind::Path) => rec.blob(slot, a, Source::UserStr),
            Some(ArgKind::SockAddr) => {
                rec.blob(slot, a, Source::User(clamp_addr(next)));
            }
            Some(ArgKind::SockAddrOut) => {
                if ret >= 0 && next != 0 {
                    let len: u32 = user(next);
                    rec.blob(slot, a, Source::User(clamp_addr(len as u64)));
                }
            }
            Some(ArgKind::MsgHdr) => {
                // struct msghdr { void *msg_name; int msg_namelen; ... }, with a 32-bit
                // pointer in struct compat_msghdr.
                let (name, len): (u64, u32) =
                    if compat { (u64::from(user::<u32>(a)), user(a + 4)) } else { (user(a), user(a + 8)) };
                rec.blob(slot, name, Source::User(clamp_addr(len as u64)));
            }
            Some(ArgKind::Struct8) => rec.blob(slot, a, Source::User(8)),
            Some(ArgKind::Struct24) => rec.blob(slot, a, Source::User(24)),
            Some(ArgKind::Struct64) => rec.blob(slot, a, Source::User(64)),
            Some(ArgKind::Argv) => rec.argv_blob(a, compat),
            Some(ArgKind::Value) | None => {}
        }
    }
}

/// [`capture_args`] for the open calls: the path (argument 0 or 1), and `openat2`'s `how`.
#[inline(always)]
fn capture_open_args(rec: &mut Record, spec: &SyscallSpec, args: &[u64; 6]) {
    let path = if spec.kinds[0] == ArgKind::Path as u8 { 0 } else { 1 };
    rec.blob(path as u8, args[path], Source::UserStr);
    if spec.kinds[2] == ArgKind::Struct24 as u8 {
        rec.blob(2, args[2], Source::User(24));
    }
}

/// [`capture_args`] for the `sockaddr` arguments (`connect`'s), the only memory arguments
/// of the other calls read at enter (`sensor_abi::syscalls` tests it).
#[inline(always)]
fn capture_sockaddr_args(rec: &mut Record, spec: &SyscallSpec, args: &[u64; 6]) {
    for i in 0..5 {
        if spec.kinds[i] == ArgKind::SockAddr as u8 {
            rec.blob(i as u8, args[i], Source::User(clamp_addr(args[i + 1])));
        }
    }
}

#[inline(always)]
fn clamp_addr(len: u64) -> usize {
    if len > SOCKADDR_MAX as u64 { SOCKADDR_MAX } else { len as usize }
}

/// The entry of thread `key` in stash `map`, created on first use; later calls reuse it.
#[inline(always)]
pub fn stash_entry<const N: usize>(map: &LruHashMap<u64, Stash<N>>, key: u64) -> Option<&'static mut Stash<N>> {
    if let Some(e) = map.get_ptr_mut(key) {
        return Some(unsafe { &mut *e });
    }
    // The value to insert only needs the right size; its content is overwritten. The
    // scratch area is large enough.
    let seed = unsafe { &*(SCRATCH.get_ptr(0)? as *const Stash<N>) };
    if map.insert(key, seed, BPF_ANY as u64).is_err() {
        miss();
        return None;
    }
    let e = map.get_ptr_mut(key)?;
    Some(unsafe { &mut *e })
}

/// Saves the blobs of `rec` from `from` on into `entry`.
#[inline(always)]
pub fn stash_blobs<const N: usize>(entry: &mut Stash<N>, rec: &Record, from: usize) {
    entry.len = rec.copy_out(from, entry.data.as_mut_ptr(), N) as u32;
    entry.nblobs = rec.nblobs;
    if rec.truncated {
        entry.flags |= syscall_flags::TRUNCATED;
    }
}

/// The stash entry of thread `key` in `map`, if `valid` accepts it.
#[inline(always)]
fn take_stash<const N: usize>(
    map: &LruHashMap<u64, Stash<N>>,
    key: u64,
    valid: impl Fn(&Stash<N>) -> bool,
) -> Option<&'static mut Stash<N>> {
    let entry = unsafe { &mut *map.get_ptr_mut(key)? };
    (entry.nr != STASH_EMPTY && valid(entry)).then_some(entry)
}

/// Appends the blobs of a stash entry to `rec`, then marks the entry consumed.
#[inline(always)]
fn append_stash<const N: usize>(rec: &mut Record, entry: &mut Stash<N>) {
    rec.append_raw(entry.data.as_ptr(), entry.len as usize, entry.nblobs);
    if entry.flags & syscall_flags::TRUNCATED != 0 {
        rec.truncated = true;
    }
    entry.nr = STASH_EMPTY;
}

/// The current thread exits: its stash entries go, and with the last thread its process's
/// rate. Left to the LRU, every new thread's first stash would evict a dead one's, which
/// costs a new process's first open several times an open.
#[inline(always)]
pub fn forget_exiting_thread(group_dead: bool) {
    let key = bpf_get_current_pid_tgid();
    // Looked up first: a lookup takes no lock, a removal does, even of an absent key.
    if STASH.get_ptr(key).is_some() {
        STASH.remove(key).ok();
    }
    if EXEC_STASH.get_ptr(key).is_some() {
        EXEC_STASH.remove(key).ok();
    }
    let tgid = (key >> 32) as u32;
    if group_dead && FLOOD.get_ptr(tgid).is_some() {
        FLOOD.remove(tgid).ok();
    }
}

#[inline(always)]
fn miss() {
    if let Some(c) = counters() {
        c.enter_missed += 1;
    }
}
