//! The sensor's kernel programs.
//!
//! - `sys_exit_btf` / `sys_exit_raw`: the syscall-exit dispatcher (`tp_btf`, or `raw_tp`
//!   where BTF tracing programs are unavailable). A syscall nobody asked for costs one
//!   array lookup.
//! - `sys_enter_stash`: classic `syscalls:sys_enter_*` tracepoints for the calls whose
//!   user memory must be read before the kernel uses it (open*, connect).
//! - `sched_{fork,exec,exit}_{btf,raw}`: process lifecycle; `cgroup_attach_{btf,raw}`:
//!   a task moved to another cgroup (a runtime placing a process in a container).
//! - `floor_btf`: an empty `sys_exit` program, the baseline benchmarks compare against.
#![no_std]
#![no_main]

mod compat;
mod maps;
mod path;
mod prefilter;
mod record;
mod sched;
mod sock;
mod syscall;
mod task;

use aya_ebpf::{
    helpers::bpf_probe_read_kernel,
    macros::{btf_tracepoint, raw_tracepoint, tracepoint},
    programs::{BtfTracePointContext, RawTracePointContext, TracePointContext},
};
use syscall::PtRegs;

/// `sys_exit(struct pt_regs *regs, long ret)` with BTF: `regs` can be read directly.
#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit_btf(ctx: BtfTracePointContext) -> i32 {
    let regs: *const PtRegs = ctx.arg(0);
    let nr = unsafe { core::ptr::read_volatile(&raw const (*regs).orig_ax) };
    let compat = compat::in_ia32_syscall_btf();
    if !compat && syscall::enabled(nr).is_none() {
        return 0;
    }
    // A BTF-typed pointer: plain loads, checked by the verifier, no helper call.
    let regs = unsafe { core::ptr::read_volatile(regs) };
    let Some((nr, args)) = (if compat { compat::translate(nr, &regs) } else { Some((nr, regs.args())) }) else {
        return 0;
    };
    syscall::on_exit(nr, args, ctx.arg(1), compat);
    0
}

/// `sys_exit` as a raw tracepoint: `regs` is an untyped pointer, read through a helper.
#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn sys_exit_raw(ctx: RawTracePointContext) -> i32 {
    let regs: *const PtRegs = ctx.arg(0);
    let nr = unsafe { bpf_probe_read_kernel(&raw const (*regs).orig_ax) }.unwrap_or(u64::MAX);
    let compat = compat::in_ia32_syscall_raw();
    if !compat && syscall::enabled(nr).is_none() {
        return 0;
    }
    let regs = unsafe { bpf_probe_read_kernel(regs) }.unwrap_or_default();
    let Some((nr, args)) = (if compat { compat::translate(nr, &regs) } else { Some((nr, regs.args())) }) else {
        return 0;
    };
    syscall::on_exit(nr, args, ctx.arg(1), compat);
    0
}

/// `syscalls:sys_enter_<name>`: `int __syscall_nr` at 8, `unsigned long args[6]` at 16.
#[tracepoint]
pub fn sys_enter_stash(ctx: TracePointContext) -> i32 {
    let nr: i32 = unsafe { ctx.read_at(8) }.unwrap_or(-1);
    let args: [u64; 6] = unsafe { ctx.read_at(16) }.unwrap_or_default();
    syscall::on_enter(nr as u64, &args);
    0
}

/// Defines a `tp_btf` and a `raw_tp` program for one scheduler tracepoint.
macro_rules! sched_programs {
    ($btf:ident, $raw:ident, $tp:literal, |$ctx:ident| $body:expr) => {
        #[doc = concat!("`", $tp, "` (BTF tracing program).")]
        #[btf_tracepoint(function = $tp)]
        pub fn $btf($ctx: BtfTracePointContext) -> i32 {
            $body;
            0
        }

        #[doc = concat!("`", $tp, "` (raw tracepoint).")]
        #[raw_tracepoint(tracepoint = $tp)]
        pub fn $raw($ctx: RawTracePointContext) -> i32 {
            $body;
            0
        }
    };
}

sched_programs!(sched_fork_btf, sched_fork_raw, "sched_process_fork", |ctx| sched::on_fork(ctx.arg::<u64>(1)));
sched_programs!(sched_exec_btf, sched_exec_raw, "sched_process_exec", |ctx| sched::on_exec(
    ctx.arg::<u64>(1) as u32,
    ctx.arg::<u64>(2)
));
sched_programs!(sched_exit_btf, sched_exit_raw, "sched_process_exit", |_ctx| sched::on_exit());
sched_programs!(cgroup_attach_btf, cgroup_attach_raw, "cgroup_attach_task", |ctx| sched::on_cgroup_attach(
    ctx.arg::<u64>(0),
    ctx.arg::<u64>(1),
    ctx.arg::<u64>(2),
    ctx.arg::<u64>(3) & 0xff != 0
));

/// Does nothing on every syscall exit: the dispatch floor benchmarks measure against.
#[btf_tracepoint(function = "sys_exit")]
pub fn floor_btf(_ctx: BtfTracePointContext) -> i32 {
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
