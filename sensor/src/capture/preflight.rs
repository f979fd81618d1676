//! Checks that the kernel and the process can run the capture, with errors that say what
//! to do about it.

use std::{fs, path::Path};

/// Oldest kernel with what the programs use: BPF ring buffers and BTF tracing programs
/// (5.8), and `bpf_loop` (5.17), which walks an executable's path and a cgroup's.
pub const MIN_KERNEL: (u32, u32) = (5, 17);
/// Kernels from here on charge BPF memory to the cgroup, not to `RLIMIT_MEMLOCK`.
const MEMCG_ACCOUNTING: (u32, u32) = (5, 11);

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// A requirement the host does not meet.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    /// Not root and without the capabilities BPF needs.
    #[error(
        "capturing needs root, or the capabilities CAP_BPF and CAP_PERFMON (effective set: {0:#x}); \
         run as root or grant them (e.g. `setcap cap_bpf,cap_perfmon+ep`)"
    )]
    Privileges(u64),
    /// No kernel BTF.
    #[error(
        "the kernel exposes no BTF at /sys/kernel/btf/vmlinux; a kernel built with \
         CONFIG_DEBUG_INFO_BTF=y is required"
    )]
    NoBtf,
    /// Kernel older than [`MIN_KERNEL`].
    #[error("kernel {0} is too old: Linux >= {major}.{minor} is required", major = MIN_KERNEL.0, minor = MIN_KERNEL.1)]
    KernelTooOld(String),
    /// tracefs is not mounted where the syscall tracepoints are looked up.
    #[error(
        "tracefs is not mounted (no /sys/kernel/tracing/events); mount it with \
         `mount -t tracefs nodev /sys/kernel/tracing`"
    )]
    NoTracefs,
}

/// Parses `major.minor` from a kernel release string such as `6.18.44-fc`.
pub fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn kernel_release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned()
}

fn effective_caps() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0)
}

/// Checks everything loading needs; `needs_tracefs` when classic tracepoints are attached.
pub fn check(needs_tracefs: bool) -> Result<(), PreflightError> {
    let release = kernel_release();
    if parse_release(&release).is_some_and(|v| v < MIN_KERNEL) {
        return Err(PreflightError::KernelTooOld(release));
    }
    let caps = effective_caps();
    let has = |cap: u32| caps & (1 << cap) != 0;
    if !(has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))) {
        return Err(PreflightError::Privileges(caps));
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Err(PreflightError::NoBtf);
    }
    if needs_tracefs && tracefs_events().is_none() {
        return Err(PreflightError::NoTracefs);
    }
    raise_memlock(&release);
    Ok(())
}

/// Where tracefs's `events` directory is, if mounted.
fn tracefs_events() -> Option<&'static str> {
    ["/sys/kernel/tracing/events", "/sys/kernel/debug/tracing/events"].into_iter().find(|p| Path::new(p).is_dir())
}

/// Lifts `RLIMIT_MEMLOCK`; only a warning when that fails on a kernel that accounts BPF
/// memory by cgroup, where the limit does not apply.
fn raise_memlock(release: &str) {
    let unlimited = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: setrlimit reads the struct it is given.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) } == 0 {
        return;
    }
    let err = std::io::Error::last_os_error();
    if parse_release(release).is_some_and(|v| v >= MEMCG_ACCOUNTING) {
        log::warn!("cannot raise RLIMIT_MEMLOCK ({err}); continuing: this kernel charges BPF memory to the cgroup");
    } else {
        log::warn!("cannot raise RLIMIT_MEMLOCK ({err}); loading may fail with EPERM on this kernel");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kernel_releases() {
        assert_eq!(parse_release("6.18.44-fc-v657"), Some((6, 18)));
        assert_eq!(parse_release("5.8.0"), Some((5, 8)));
        assert_eq!(parse_release("4.19"), Some((4, 19)));
        assert!(parse_release("4.19").unwrap() < MIN_KERNEL);
        assert_eq!(parse_release("garbage"), None);
    }
}
