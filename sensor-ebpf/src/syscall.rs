//! Syscall capture: the exit dispatcher, and the enter side for calls whose user memory
//! must be read before the kernel acts on it.

use aya_ebpf::{
    bindings::BPF_ANY,
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_user},
};
use sensor_abi::{
    config::{PROT_EXEC, SyscallSpec, spec_flags},
    record::{HEADER_SIZE, Header, RecordKind, SOCKADDR_MAX, SYSCALL_BODY_SIZE, SyscallBody, blob_slot, syscall_flags},
    syscalls::ArgKind,
};

use crate::{
    maps::{CONFIG, SCRATCH, STASH, STASH_DATA, STASH_EMPTY, STASH_EXEC, SYSCALLS, Stash, counters},
    record::{Record, Source},
    task::{current, fill_header, read},
};

/// Where a syscall record's blobs start.
const BODY_END: usize = HEADER_SIZE + SYSCALL_BODY_SIZE;

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
    /// The six syscall arguments, in order.
    #[inline(always)]
    pub fn args(&self) -> [u64; 6] {
        [self.di, self.si, self.dx, self.r10, self.r8, self.r9]
    }
}

/// The capture spec of syscall `nr`, if it is captured.
#[inline(always)]
pub fn enabled(nr: u64) -> Option<&'static SyscallSpec> {
    let spec = SYSCALLS.get(nr as u32)?;
    (spec.flags & spec_flags::ENABLED != 0).then_some(spec)
}

#[inline(always)]
fn is_self() -> bool {
    (bpf_get_current_pid_tgid() >> 32) as u32 == CONFIG.load().self_pid
}

#[inline(always)]
fn user<T: Copy + Default>(addr: u64) -> T {
    if addr == 0 {
        return T::default();
    }
    unsafe { bpf_probe_read_user(addr as *const T) }.unwrap_or_default()
}

/// Enter side: reads the memory arguments of an `AT_ENTER` syscall into the thread's stash.
#[inline(always)]
pub fn on_enter(nr: u64, args: &[u64; 6]) {
    let Some(spec) = enabled(nr) else { return };
    if spec.flags & spec_flags::AT_ENTER == 0 || is_self() {
        return;
    }
    let Some(mut rec) = Record::start(BODY_END) else { return };
    capture_args(&mut rec, spec, args, 0);
    stash_put(bpf_get_current_pid_tgid(), nr as u32, &rec, BODY_END);
}

/// Exit side: emits the record of a captured syscall.
#[inline(always)]
pub fn on_exit(nr: u64, spec: &SyscallSpec, regs: &PtRegs, ret: i64) {
    let args = regs.args();
    if spec.flags & spec_flags::PROT_EXEC_ONLY != 0 && args[2] & PROT_EXEC == 0 {
        return;
    }
    if is_self() {
        return;
    }
    let Some(mut rec) = Record::start(BODY_END) else { return };
    let cfg = CONFIG.load();
    fill_header(rec.at::<Header>(0), RecordKind::Syscall, &cfg.offsets);
    let mut flags = 0u16;
    if spec.flags & spec_flags::AT_ENTER != 0 {
        if !stash_take(bpf_get_current_pid_tgid(), nr as u32, &mut rec) {
            flags |= syscall_flags::NO_ENTER;
        }
    } else if spec.flags & spec_flags::EXEC != 0 && ret == 0 {
        // The caller's memory is gone: the path comes from sched_process_exec, the
        // arguments from the new program's stack.
        stash_take(bpf_get_current_pid_tgid(), STASH_EXEC, &mut rec);
        let mm: u64 = read(current(), cfg.offsets.task_mm);
        let start: u64 = read(mm, cfg.offsets.mm_arg_start);
        let end: u64 = read(mm, cfg.offsets.mm_arg_end);
        if end > start {
            rec.blob(blob_slot::ARGV, start, Source::User((end - start) as usize));
        }
    } else {
        capture_args(&mut rec, spec, &args, ret);
    }
    if rec.truncated {
        flags |= syscall_flags::TRUNCATED;
    }
    let nblobs = rec.nblobs;
    let body: &mut SyscallBody = rec.at(HEADER_SIZE);
    body.nr = nr as u32;
    body.nblobs = nblobs;
    body.flags = flags;
    body.ret = ret;
    body.args = args;
    let len = rec.off as u32;
    rec.at::<Header>(0).len = len;
    rec.emit();
}

/// Reads the memory behind each argument as the spec says.
#[inline(always)]
fn capture_args(rec: &mut Record, spec: &SyscallSpec, args: &[u64; 6], ret: i64) {
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
                // struct msghdr { void *msg_name; int msg_namelen; ... }
                let name: u64 = user(a);
                let len: u32 = user(a + 8);
                rec.blob(slot, name, Source::User(clamp_addr(len as u64)));
            }
            Some(ArgKind::Struct8) => rec.blob(slot, a, Source::User(8)),
            Some(ArgKind::Struct24) => rec.blob(slot, a, Source::User(24)),
            Some(ArgKind::Struct64) => rec.blob(slot, a, Source::User(64)),
            Some(ArgKind::Value) | None => {}
        }
    }
}

#[inline(always)]
fn clamp_addr(len: u64) -> usize {
    if len > SOCKADDR_MAX as u64 { SOCKADDR_MAX } else { len as usize }
}

/// Saves the blobs of `rec` from `from` on into the stash entry of thread `key`.
#[inline(always)]
pub fn stash_put(key: u64, nr: u32, rec: &Record, from: usize) {
    let entry = match STASH.get_ptr_mut(key) {
        Some(e) => e,
        None => {
            // New thread: create its entry once; later calls reuse it. The value to copy
            // in only needs the right size: this CPU's counters area would be too small,
            // the scratch area is large enough.
            let Some(seed) = SCRATCH.get_ptr(0) else { return };
            let seed = unsafe { &*(seed as *const Stash) };
            if STASH.insert(key, seed, BPF_ANY as u64).is_err() {
                miss();
                return;
            }
            match STASH.get_ptr_mut(key) {
                Some(e) => e,
                None => return,
            }
        }
    };
    let entry = unsafe { &mut *entry };
    let n = rec.copy_out(from, entry.data.as_mut_ptr(), STASH_DATA);
    entry.nr = nr;
    entry.len = n as u32;
    entry.nblobs = rec.nblobs;
    entry.flags = if rec.truncated { syscall_flags::TRUNCATED } else { 0 };
}

/// Appends the stash of thread `key` for syscall `nr` to `rec`; false when there is none.
#[inline(always)]
fn stash_take(key: u64, nr: u32, rec: &mut Record) -> bool {
    let Some(entry) = STASH.get_ptr_mut(key) else {
        miss();
        return false;
    };
    let entry = unsafe { &mut *entry };
    if entry.nr != nr {
        miss();
        return false;
    }
    rec.append_raw(entry.data.as_ptr(), entry.len as usize, entry.nblobs);
    if entry.flags & syscall_flags::TRUNCATED != 0 {
        rec.truncated = true;
    }
    entry.nr = STASH_EMPTY;
    true
}

#[inline(always)]
fn miss() {
    if let Some(c) = counters() {
        c.enter_missed += 1;
    }
}
