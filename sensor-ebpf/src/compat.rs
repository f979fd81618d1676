//! Syscalls through the 32-bit gate (a 32-bit program, or `int $0x80` from a 64-bit one):
//! their numbers and argument registers are ia32's, so they are translated to the x86_64
//! call they stand for before anything reads them as one, or counted and dropped.

use aya_ebpf::helpers::{bpf_probe_read_user, generated::bpf_get_current_task_btf};
use sensor_abi::{
    config::{TS_COMPAT, compat_entry},
    syscalls::IA32_SOCKETCALL,
};

use crate::{
    maps::{COMPAT, SOCKETCALL, counters, off},
    syscall::PtRegs,
    task::{current, read},
};

/// Whether the current syscall came through the 32-bit gate, from a BTF tracing program:
/// one load through the task pointer, no helper call for the read.
#[inline(always)]
pub fn in_ia32_syscall_btf() -> bool {
    let task = unsafe { bpf_get_current_task_btf() } as *const u8;
    // The offset is a load-time constant (frozen `.rodata`), which the verifier requires
    // for a load through a BTF pointer.
    let status = unsafe { core::ptr::read_volatile(task.add(off!(task_ti_status) as usize) as *const u32) };
    status & TS_COMPAT != 0
}

/// [`in_ia32_syscall_btf`] for raw tracepoints, through a helper read.
#[inline(always)]
pub fn in_ia32_syscall_raw() -> bool {
    read::<u32>(current(), off!(task_ti_status)) & TS_COMPAT != 0
}

/// The x86_64 number and arguments of ia32 syscall `nr` made with `regs`; `None` (and
/// counted) when it has no x86_64 meaning the sensor captures.
#[inline(always)]
pub fn translate(nr: u64, regs: &PtRegs) -> Option<(u64, [u64; 6])> {
    let mut args = regs.ia32_args();
    let entry = if nr == u64::from(IA32_SOCKETCALL) {
        let entry = SOCKETCALL.get(args[0] as u32).copied().unwrap_or(0);
        // The call's own arguments are 32-bit words behind the second one; calls with
        // fewer than six may end near the end of a mapping, so three are tried next.
        let base = args[1];
        let words: [u32; 6] = match unsafe { bpf_probe_read_user(base as *const [u32; 6]) } {
            Ok(w) => w,
            Err(_) => {
                let three: [u32; 3] = unsafe { bpf_probe_read_user(base as *const [u32; 3]) }.unwrap_or_default();
                [three[0], three[1], three[2], 0, 0, 0]
            }
        };
        for (a, w) in args.iter_mut().zip(words) {
            *a = u64::from(w);
        }
        entry
    } else if nr < u64::from(sensor_abi::syscalls::MAX_IA32_NR) {
        COMPAT.get(nr as u32).copied().unwrap_or(0)
    } else {
        0
    };
    if entry & compat_entry::VALID == 0 {
        if let Some(c) = counters() {
            c.compat_untranslated += 1;
        }
        return None;
    }
    if entry & compat_entry::UID16 != 0 {
        // The 16-bit calls' "unchanged" id is 0xffff, the 32-bit ones' is -1.
        for a in args.iter_mut().take(3) {
            if *a == 0xffff {
                *a = 0xffff_ffff;
            }
        }
    }
    Some((u64::from(entry & compat_entry::NR_MASK), args))
}
