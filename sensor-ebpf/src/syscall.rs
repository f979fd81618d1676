//! Syscall capture: the exit dispatcher, and the enter side for calls whose user memory
//! must be read before the kernel acts on it.

use aya_ebpf::{
    bindings::BPF_ANY,
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_user},
};
use sensor_abi::{
    config::{PROT_EXEC, SyscallSpec, spec_flags},
    record::{HEADER_SIZE, Header, RecordKind, SOCKADDR_MAX, SYSCALL_BODY_SIZE, SyscallBody, blob_slot, syscall_flags},
    syscalls::{ArgKind, NR_EXECVE, NR_EXECVEAT},
};

use crate::{
    maps::{CONFIG, SCRATCH, STASH, STASH_DATA, STASH_EMPTY, STASH_EXEC_DONE, SYSCALLS, Stash, counters},
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

/// Whether the current task belongs to the sensor itself (process `self_pid`).
#[inline(always)]
fn is_self(self_pid: u32) -> bool {
    (bpf_get_current_pid_tgid() >> 32) as u32 == self_pid
}

#[inline(always)]
fn user<T: Copy + Default>(addr: u64) -> T {
    if addr == 0 {
        return T::default();
    }
    unsafe { bpf_probe_read_user(addr as *const T) }.unwrap_or_default()
}

/// Enter side, for syscalls whose exit alone is not enough: keeps the number and the
/// argument registers, and for `AT_ENTER` calls reads their memory arguments now.
#[inline(always)]
pub fn on_enter(nr: u64, args: &[u64; 6]) {
    let Some(spec) = enabled(nr) else { return };
    if spec.flags & (spec_flags::AT_ENTER | spec_flags::EXEC) == 0 || is_self(CONFIG.load().self_pid) {
        return;
    }
    let Some(mut rec) = Record::start(BODY_END) else { return };
    if spec.flags & spec_flags::AT_ENTER != 0 {
        capture_args(&mut rec, spec, args, 0);
    }
    let Some(entry) = stash_entry(bpf_get_current_pid_tgid()) else { return };
    entry.nr = nr as u32;
    entry.args = *args;
    entry.flags = 0;
    stash_blobs(entry, &rec, BODY_END);
}

/// Exit side: emits the record of a captured syscall.
#[inline(always)]
pub fn on_exit(nr: u64, spec: &SyscallSpec, regs: &PtRegs, ret: i64) {
    let mut args = regs.args();
    if spec.flags & spec_flags::PROT_EXEC_ONLY != 0 && args[2] & PROT_EXEC == 0 {
        return;
    }
    // One copy of the configuration serves the whole run.
    let cfg = CONFIG.load();
    if is_self(cfg.self_pid) {
        return;
    }
    let Some(mut rec) = Record::start(BODY_END) else { return };
    fill_header(rec.at::<Header>(0), RecordKind::Syscall, &cfg.offsets);
    let mut nr = nr as u32;
    let mut flags = 0u16;
    if spec.flags & spec_flags::EXEC != 0 && ret == 0 {
        // The registers and memory are the new program's now: the number and arguments
        // were kept at enter (a successful execveat even exits as execve), the path by
        // sched_process_exec, and the arguments are on the new program's stack.
        match take_stash(bpf_get_current_pid_tgid(), |e| {
            e.flags & STASH_EXEC_DONE != 0 && (e.nr == NR_EXECVE || e.nr == NR_EXECVEAT)
        }) {
            Some(entry) => {
                nr = entry.nr;
                args = entry.args;
                append_stash(&mut rec, entry);
            }
            None => {
                miss();
                flags |= syscall_flags::NO_ENTER;
            }
        }
        let mm: u64 = read(current(), cfg.offsets.task_mm);
        let start: u64 = read(mm, cfg.offsets.mm_arg_start);
        let end: u64 = read(mm, cfg.offsets.mm_arg_end);
        if end > start {
            rec.blob(blob_slot::ARGV, start, Source::User((end - start) as usize));
        }
        let env_start: u64 = read(mm, cfg.offsets.mm_env_start);
        let env_end: u64 = read(mm, cfg.offsets.mm_env_end);
        if env_end > env_start {
            rec.blob(blob_slot::ENV, env_start, Source::User((env_end - env_start) as usize));
        }
    } else if spec.flags & spec_flags::AT_ENTER != 0 {
        match take_stash(bpf_get_current_pid_tgid(), |e| e.nr == nr) {
            Some(entry) => append_stash(&mut rec, entry),
            None => {
                miss();
                flags |= syscall_flags::NO_ENTER;
            }
        }
    } else {
        capture_args(&mut rec, spec, &args, ret);
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
    rec.emit(&cfg);
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
            Some(ArgKind::Argv) => rec.argv_blob(a),
            Some(ArgKind::Value) | None => {}
        }
    }
}

#[inline(always)]
fn clamp_addr(len: u64) -> usize {
    if len > SOCKADDR_MAX as u64 { SOCKADDR_MAX } else { len as usize }
}

/// The stash entry of thread `key`, created on first use; later calls reuse it.
#[inline(always)]
pub fn stash_entry(key: u64) -> Option<&'static mut Stash> {
    if let Some(e) = STASH.get_ptr_mut(key) {
        return Some(unsafe { &mut *e });
    }
    // The value to insert only needs the right size; its content is overwritten. The
    // scratch area is large enough.
    let seed = unsafe { &*(SCRATCH.get_ptr(0)? as *const Stash) };
    if STASH.insert(key, seed, BPF_ANY as u64).is_err() {
        miss();
        return None;
    }
    let e = STASH.get_ptr_mut(key)?;
    Some(unsafe { &mut *e })
}

/// Saves the blobs of `rec` from `from` on into `entry`.
#[inline(always)]
pub fn stash_blobs(entry: &mut Stash, rec: &Record, from: usize) {
    entry.len = rec.copy_out(from, entry.data.as_mut_ptr(), STASH_DATA) as u32;
    entry.nblobs = rec.nblobs;
    if rec.truncated {
        entry.flags |= syscall_flags::TRUNCATED;
    }
}

/// The stash entry of thread `key`, if `valid` accepts it.
#[inline(always)]
fn take_stash(key: u64, valid: impl Fn(&Stash) -> bool) -> Option<&'static mut Stash> {
    let entry = unsafe { &mut *STASH.get_ptr_mut(key)? };
    (entry.nr != STASH_EMPTY && valid(entry)).then_some(entry)
}

/// Appends the blobs of a stash entry to `rec`, then marks the entry consumed.
#[inline(always)]
fn append_stash(rec: &mut Record, entry: &mut Stash) {
    rec.append_raw(entry.data.as_ptr(), entry.len as usize, entry.nblobs);
    if entry.flags & syscall_flags::TRUNCATED != 0 {
        rec.truncated = true;
    }
    entry.nr = STASH_EMPTY;
}

#[inline(always)]
fn miss() {
    if let Some(c) = counters() {
        c.enter_missed += 1;
    }
}
