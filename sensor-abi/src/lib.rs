//! Kernel/user ABI of the sensor, compiled by both the eBPF programs and user space.
//!
//! Everything the kernel writes and user space reads is declared here once: the record
//! layouts in [`record`], the per-syscall capture table in [`syscalls`], and the load-time
//! configuration and counters in [`config`]. The `user` feature adds the user-space face
//! (`aya::Pod` impls) without touching the kernel build.
#![no_std]

pub mod config;
pub mod prefilter;
pub mod record;
pub mod syscalls;
