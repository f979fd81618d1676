//! Decoding kernel records (see `sensor_abi::record`) into [`Event`]s.
//!
//! Records come from the kernel, but the decoder trusts nothing: every length and offset
//! is checked, and a bad record is an error, never a panic.

use std::{
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use sensor_abi::{
    prefilter::spec_prefilter,
    record::{
        ABI_VERSION, BLOB_HEADER_SIZE, HEADER_SIZE, RecordKind, SYSCALL_BODY_SIZE, blob_flags, blob_slot, syscall_flags,
    },
    syscalls::{self, Family, Syscall},
};

use super::{Cgroups, Event, EventKind, ExecInfo, FdFile, SockAddr, SyscallArgs, SyscallEvent};

/// The v1 cgroup controller whose path the kernel side reads at exec; the capture sets it
/// from the kernel's BTF ([`set_cgroup_v1_controller`]).
static CGROUP_V1_CONTROLLER: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

/// Names the v1 controller whose cgroup path exec records carry (once per process).
pub fn set_cgroup_v1_controller(name: &'static str) {
    let _ = CGROUP_V1_CONTROLLER.set(name);
}

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than the layout needs.
    #[error("record too short: {needed} bytes needed, {got} present")]
    Short {
        /// Bytes the layout needs.
        needed: usize,
        /// Bytes present.
        got: usize,
    },
    /// Written by kernel programs of another ABI version.
    #[error("record ABI version {0}, expected {ABI_VERSION}")]
    Version(u16),
    /// Unknown record kind.
    #[error("unknown record kind {0}")]
    Kind(u16),
    /// The header's length disagrees with the record's.
    #[error("record length field {field} does not match the {got} bytes received")]
    Length {
        /// Length in the header.
        field: u32,
        /// Bytes received.
        got: usize,
    },
    /// A syscall number the table does not know.
    #[error("unknown syscall number {0}")]
    Syscall(u32),
    /// A blob runs past the end of the record.
    #[error("blob {index} runs past the end of the record")]
    Blob {
        /// Index of the blob.
        index: usize,
    },
}

/// Converts kernel boot-time stamps to wall-clock time.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// Wall-clock minus boot-time, in nanoseconds.
    offset_ns: i128,
}

impl Clock {
    /// Samples both clocks now.
    pub fn now() -> Self {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: clock_gettime writes the timespec it is given.
        unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
        let boot = ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128;
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i128).unwrap_or(0);
        Self { offset_ns: wall - boot }
    }

    /// A clock with a fixed offset (for tests and replays).
    pub fn with_offset(offset_ns: i128) -> Self {
        Self { offset_ns }
    }

    /// Wall-clock nanoseconds for a boot-time stamp.
    pub fn wall(&self, boot_ns: u64) -> u64 {
        (boot_ns as i128 + self.offset_ns).clamp(0, u64::MAX as i128) as u64
    }
}

/// Bounds-checked little reader over a record.
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn slice(&self, off: usize, len: usize) -> Result<&'a [u8], DecodeError> {
        let end = off.saturating_add(len);
        self.0.get(off..end).ok_or(DecodeError::Short { needed: end, got: self.0.len() })
    }
    fn u16(&self, off: usize) -> Result<u16, DecodeError> {
        let b = self.slice(off, 2)?;
        Ok(u16::from_ne_bytes([b[0], b[1]]))
    }
    fn u32(&self, off: usize) -> Result<u32, DecodeError> {
        let b = self.slice(off, 4)?;
        Ok(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&self, off: usize) -> Result<u64, DecodeError> {
        let b = self.slice(off, 8)?;
        Ok(u64::from_ne_bytes(b.try_into().expect("slice of 8")))
    }
}

/// Decodes one record.
pub fn decode(record: &[u8], clock: &Clock) -> Result<Event, DecodeError> {
    let r = Bytes(record);
    r.slice(0, HEADER_SIZE)?;
    let version = r.u16(0)?;
    if version != ABI_VERSION {
        return Err(DecodeError::Version(version));
    }
    let raw_kind = r.u16(2)?;
    let kind = RecordKind::from_raw(raw_kind).ok_or(DecodeError::Kind(raw_kind))?;
    let len = r.u32(4)?;
    if len as usize != record.len() {
        return Err(DecodeError::Length { field: len, got: record.len() });
    }
    let ts = r.u64(8)?;
    let comm = r.slice(64, 16)?;
    let comm_end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    let body = HEADER_SIZE;
    let kind = match kind {
        RecordKind::Syscall => EventKind::Syscall(decode_syscall(&r, body, clock)?),
        RecordKind::ProcFork => EventKind::ProcFork { child_tid: r.u32(body)?, child_pid: r.u32(body + 4)? },
        RecordKind::ProcExec => {
            let nblobs = r.u32(body + 4)? as usize;
            let blobs = read_blobs(&r, body + 8, nblobs)?;
            EventKind::ProcExec { old_tid: r.u32(body)?, filename: slot_string(&blobs, blob_slot::EXE_PATH) }
        }
        RecordKind::ProcExit => {
            EventKind::ProcExit { exit_code: r.u32(body)? as i32, group_dead: r.u32(body + 4)? != 0 }
        }
        RecordKind::CgroupAttach => {
            let size = size_of::<sensor_abi::record::CgroupAttachBody>();
            let blobs = read_blobs(&r, body + size, 1)?;
            EventKind::CgroupAttach {
                task_tid: r.u32(body)?,
                task_pid: r.u32(body + 4)?,
                hierarchy: r.u32(body + 8)?,
                path: slot_string(&blobs, blob_slot::CGROUP_PATH),
            }
        }
    };
    Ok(Event {
        ts,
        wall_ts: clock.wall(ts),
        cgroup_id: r.u64(16)?,
        tid: r.u32(24)?,
        pid: r.u32(28)?,
        ns_tid: r.u32(32)?,
        ns_pid: r.u32(36)?,
        ppid: r.u32(40)?,
        uid: r.u32(44)?,
        gid: r.u32(48)?,
        pid_ns: r.u32(52)?,
        mnt_ns: r.u32(56)?,
        cpu: r.u32(60)?,
        comm: String::from_utf8_lossy(&comm[..comm_end]).into_owned(),
        kind,
    })
}

/// A blob as found in a record.
struct Blob<'a> {
    slot: u8,
    flags: u8,
    data: &'a [u8],
}

impl Blob<'_> {
    fn string(&self) -> Option<String> {
        (self.flags & blob_flags::FAULT == 0).then(|| String::from_utf8_lossy(self.data).into_owned())
    }

    /// The [`sensor_abi::record::ExecInfo`] of an exec, if the blob has exactly its size.
    fn exec_info(&self, clock: &Clock) -> Option<ExecInfo> {
        (self.data.len() == size_of::<sensor_abi::record::ExecInfo>()).then_some(())?;
        // SAFETY: the length was checked; the struct is plain integers, for which any bit
        // pattern is valid, and the read makes no alignment assumption.
        let info = unsafe { std::ptr::read_unaligned(self.data.as_ptr().cast::<sensor_abi::record::ExecInfo>()) };
        Some(ExecInfo::from_kernel(&info, clock))
    }
}

/// The blob of `slot` among `blobs`.
fn blob_at<'b, 'a>(blobs: &'b [Blob<'a>], slot: u8) -> Option<&'b Blob<'a>> {
    blobs.iter().find(|b| b.slot == slot)
}

/// The text of the blob of `slot`, unless its memory was unreadable.
fn slot_string(blobs: &[Blob<'_>], slot: u8) -> Option<String> {
    blob_at(blobs, slot).and_then(Blob::string)
}

fn read_blobs<'a>(r: &Bytes<'a>, mut off: usize, n: usize) -> Result<Vec<Blob<'a>>, DecodeError> {
    // Each blob takes at least its header: a count larger than the record can hold is bad.
    if n > r.0.len() / BLOB_HEADER_SIZE {
        return Err(DecodeError::Blob { index: 0 });
    }
    let mut blobs = Vec::with_capacity(n);
    for index in 0..n {
        let hdr = r.slice(off, BLOB_HEADER_SIZE).map_err(|_| DecodeError::Blob { index })?;
        let len = u16::from_ne_bytes([hdr[2], hdr[3]]) as usize;
        let data = r.slice(off + BLOB_HEADER_SIZE, len).map_err(|_| DecodeError::Blob { index })?;
        blobs.push(Blob { slot: hdr[0], flags: hdr[1], data });
        off += BLOB_HEADER_SIZE + len;
    }
    Ok(blobs)
}

fn decode_syscall(r: &Bytes<'_>, body: usize, clock: &Clock) -> Result<SyscallEvent, DecodeError> {
    r.slice(body, SYSCALL_BODY_SIZE)?;
    let nr = r.u32(body)?;
    let nblobs = r.u16(body + 4)? as usize;
    let flags = r.u16(body + 6)?;
    let ret = r.u64(body + 8)? as i64;
    let mut regs = [0u64; 6];
    for (i, reg) in regs.iter_mut().enumerate() {
        *reg = r.u64(body + 16 + i * 8)?;
    }
    let sc = syscalls::by_nr(nr).ok_or(DecodeError::Syscall(nr))?;
    let blobs = read_blobs(r, body + SYSCALL_BODY_SIZE, nblobs)?;
    let args = Args { sc, regs, blobs, clock };
    let fd_file = args.fd_file();
    Ok(SyscallEvent {
        name: sc.name.to_owned(),
        nr,
        ret,
        truncated: flags & syscall_flags::TRUNCATED != 0,
        enter_missing: flags & syscall_flags::NO_ENTER != 0,
        compat: flags & syscall_flags::COMPAT != 0,
        reread: flags & syscall_flags::REREAD_AT_EXIT != 0,
        fd_file,
        args: args.family(ret),
    })
}

/// A syscall's registers and blobs, looked up by the table's argument names.
struct Args<'a> {
    sc: &'static Syscall,
    regs: [u64; 6],
    blobs: Vec<Blob<'a>>,
    clock: &'a Clock,
}

impl Args<'_> {
    /// The file of the fd argument, when the kernel sent it (its open was prefiltered).
    fn fd_file(&self) -> Option<FdFile> {
        let path = self.slot_string(blob_slot::FD_FILE)?;
        let index = spec_prefilter::arg(self.sc.prefilter_role())?;
        Some(FdFile { fd: self.regs.get(index).copied().unwrap_or(0) as i32, path })
    }

    fn val(&self, name: &str) -> Option<u64> {
        self.sc.arg_index(name).map(|i| self.regs[i])
    }
    fn num(&self, name: &str) -> u64 {
        self.val(name).unwrap_or(0)
    }
    /// A C `int` argument (fds, pids, signals).
    fn int(&self, name: &str) -> Option<i32> {
        self.val(name).map(|v| v as u32 as i32)
    }
    /// A `uid_t`/`gid_t`, with -1 kept as -1.
    fn id(&self, name: &str) -> Option<i64> {
        self.val(name).map(|v| v as u32 as i32 as i64).map(|v| if v < 0 { -1 } else { v as u32 as i64 })
    }
    fn blob(&self, slot: u8) -> Option<&Blob<'_>> {
        blob_at(&self.blobs, slot)
    }
    fn arg_blob(&self, name: &str) -> Option<&Blob<'_>> {
        self.blob(self.sc.arg_index(name)? as u8)
    }
    fn string(&self, name: &str) -> Option<String> {
        self.arg_blob(name).and_then(Blob::string)
    }
    fn addr(&self, name: &str) -> Option<SockAddr> {
        self.arg_blob(name).filter(|b| b.flags & blob_flags::FAULT == 0).map(|b| SockAddr::parse(b.data))
    }
    /// The socket's local address the kernel side added.
    fn local_addr(&self) -> Option<SockAddr> {
        self.blob(blob_slot::LOCAL_ADDR).filter(|b| b.flags & blob_flags::FAULT == 0).map(|b| SockAddr::parse(b.data))
    }
    fn slot_string(&self, slot: u8) -> Option<String> {
        slot_string(&self.blobs, slot)
    }
    fn cgroups(&self) -> Option<Box<Cgroups>> {
        let unified = self.slot_string(blob_slot::CGROUP_DFL);
        let v1 = self
            .slot_string(blob_slot::CGROUP_V1)
            .map(|path| (CGROUP_V1_CONTROLLER.get().copied().unwrap_or("memory").to_owned(), path));
        (unified.is_some() || v1.is_some()).then(|| Box::new(Cgroups { unified, v1 }))
    }
    /// The `n`th native-endian u64 of a structure blob.
    fn struct_u64(&self, name: &str, n: usize) -> Option<u64> {
        let b = self.arg_blob(name)?;
        b.data.get(n * 8..n * 8 + 8).map(|w| u64::from_ne_bytes(w.try_into().expect("slice of 8")))
    }
    fn struct_u32(&self, name: &str, n: usize) -> Option<u32> {
        let b = self.arg_blob(name)?;
        b.data.get(n * 4..n * 4 + 4).map(|w| u32::from_ne_bytes(w.try_into().expect("slice of 4")))
    }

    /// A blob of NUL-separated strings (argv, environment).
    fn strings(&self, slot: u8) -> Vec<String> {
        self.blob(slot)
            .filter(|b| b.flags & blob_flags::FAULT == 0)
            .map(|b| {
                let data = b.data.strip_suffix(&[0]).unwrap_or(b.data);
                data.split(|&c| c == 0).map(|s| String::from_utf8_lossy(s).into_owned()).collect()
            })
            .unwrap_or_default()
    }

    fn family(&self, ret: i64) -> SyscallArgs {
        match self.sc.family {
            Family::Open => {
                // openat2 passes flags, mode and resolve in `struct open_how`.
                let how = |n| self.struct_u64("how", n);
                SyscallArgs::Open {
                    dirfd: self.int("dirfd"),
                    path: self.string("path"),
                    flags: self.val("flags").or(how(0)).unwrap_or(match self.sc.name {
                        // creat(path, mode) is open(path, O_CREAT|O_WRONLY|O_TRUNC, mode).
                        "creat" => 0o1101,
                        _ => 0,
                    }),
                    mode: self.val("mode").or(how(1)).unwrap_or(0) as u32,
                    resolve: how(2),
                }
            }
            Family::Exec => SyscallArgs::Exec {
                dirfd: self.int("dirfd"),
                path: self.slot_string(blob_slot::EXE_PATH).or_else(|| self.string("path")),
                exe_file: self.slot_string(blob_slot::EXE_FILE),
                cgroups: self.cgroups(),
                argv: self.strings(blob_slot::ARGV),
                env: Arc::new(self.strings(blob_slot::ENV)),
                flags: self.num("flags"),
                info: self.blob(blob_slot::EXEC_INFO).and_then(|b| b.exec_info(self.clock)).map(Box::new),
            },
            Family::Close => SyscallArgs::Close { fd: self.int("fd").unwrap_or(-1) },
            Family::Dup => SyscallArgs::Dup {
                oldfd: self.int("oldfd").unwrap_or(-1),
                newfd: self.int("newfd"),
                flags: self.num("flags"),
            },
            Family::Socket => SyscallArgs::Socket {
                domain: self.num("domain") as u32,
                kind: self.num("type") as u32,
                protocol: self.num("protocol") as u32,
            },
            Family::Connect => SyscallArgs::Connect {
                fd: self.int("fd").unwrap_or(-1),
                addr: self.addr("addr"),
                local: self.local_addr(),
            },
            Family::Accept => SyscallArgs::Accept {
                fd: self.int("fd").unwrap_or(-1),
                addr: self.addr("addr"),
                flags: self.num("flags"),
                local: self.local_addr(),
            },
            Family::Bind => SyscallArgs::Bind { fd: self.int("fd").unwrap_or(-1), addr: self.addr("addr") },
            Family::Listen => {
                SyscallArgs::Listen { fd: self.int("fd").unwrap_or(-1), backlog: self.int("backlog").unwrap_or(0) }
            }
            Family::SendTo => SyscallArgs::SendTo {
                fd: self.int("fd").unwrap_or(-1),
                len: self.num("len"),
                flags: self.num("flags"),
                addr: self.addr("addr"),
            },
            Family::SendMsg => SyscallArgs::SendMsg {
                fd: self.int("fd").unwrap_or(-1),
                addr: self.addr("msg"),
                flags: self.num("flags"),
            },
            Family::Ptrace => SyscallArgs::Ptrace { request: self.num("request"), pid: self.int("pid").unwrap_or(0) },
            Family::SetIds => {
                let pick = |names: [&str; 2]| names.iter().find_map(|n| self.id(n));
                SyscallArgs::SetIds {
                    id: pick(["uid", "gid"]),
                    real: pick(["ruid", "rgid"]),
                    effective: pick(["euid", "egid"]),
                    saved: pick(["suid", "sgid"]),
                }
            }
            Family::Capset => {
                // Two 32-bit halves per set: data[0] low words, data[1] high words.
                let set = |n: usize| {
                    let lo = self.struct_u32("data", n)?;
                    let hi = self.struct_u32("data", n + 3).unwrap_or(0);
                    Some((hi as u64) << 32 | lo as u64)
                };
                SyscallArgs::Capset {
                    pid: self.struct_u32("header", 1).map(|p| p as i32),
                    effective: set(0),
                    permitted: set(1),
                    inheritable: set(2),
                }
            }
            Family::Setns => SyscallArgs::Setns { fd: self.int("fd").unwrap_or(-1), nstype: self.num("nstype") },
            Family::Unshare => SyscallArgs::Unshare { flags: self.num("flags") },
            Family::Clone => SyscallArgs::Clone {
                flags: match self.sc.name {
                    "clone3" => self.struct_u64("args", 0),
                    _ => self.val("flags"),
                },
            },
            Family::Mount => SyscallArgs::Mount {
                source: self.string("source"),
                target: self.string("target"),
                fstype: self.string("fstype"),
                flags: self.num("flags"),
            },
            Family::Umount => SyscallArgs::Umount { target: self.string("target"), flags: self.num("flags") },
            Family::Chmod => SyscallArgs::Chmod {
                dirfd: self.int("dirfd"),
                path: self.string("path"),
                fd: self.int("fd"),
                mode: self.num("mode") as u32,
                flags: self.num("flags"),
            },
            Family::Chown => SyscallArgs::Chown {
                dirfd: self.int("dirfd"),
                path: self.string("path"),
                fd: self.int("fd"),
                uid: self.id("uid").unwrap_or(-1),
                gid: self.id("gid").unwrap_or(-1),
                flags: self.num("flags"),
            },
            Family::Link => SyscallArgs::Link {
                olddirfd: self.int("olddirfd"),
                oldpath: self.string("oldpath"),
                newdirfd: self.int("newdirfd"),
                newpath: self.string("newpath"),
                flags: self.num("flags"),
            },
            Family::Unlink => {
                SyscallArgs::Unlink { dirfd: self.int("dirfd"), path: self.string("path"), flags: self.num("flags") }
            }
            Family::Mkdir => SyscallArgs::Mkdir {
                dirfd: self.int("dirfd"),
                path: self.string("path"),
                mode: self.num("mode") as u32,
            },
            Family::Module => SyscallArgs::Module {
                fd: self.int("fd"),
                len: self.val("len"),
                params: self.string("params"),
                flags: self.num("flags"),
            },
            Family::MemfdCreate => SyscallArgs::MemfdCreate { name: self.string("name"), flags: self.num("flags") },
            Family::Prctl => SyscallArgs::Prctl {
                option: self.num("option"),
                args: [self.num("arg2"), self.num("arg3"), self.num("arg4"), self.num("arg5")],
            },
            Family::Kill => SyscallArgs::Kill {
                pid: self.int("pid").or(self.int("tgid")),
                tid: self.int("tid"),
                sig: self.int("sig").unwrap_or(0),
            },
            Family::Bpf => SyscallArgs::Bpf { cmd: self.num("cmd") as u32 },
            Family::Mmap => SyscallArgs::Mmap {
                addr: if self.sc.name == "mmap" && ret >= 0 { ret as u64 } else { self.num("addr") },
                len: self.num("len"),
                prot: self.num("prot"),
                flags: self.val("flags"),
                fd: self.int("fd"),
            },
            Family::Chdir => SyscallArgs::Chdir { path: self.string("path"), fd: self.int("fd") },
            Family::Fcntl => SyscallArgs::Fcntl { fd: self.int("fd").unwrap_or(-1), cmd: self.num("cmd") },
            Family::RecvFrom => SyscallArgs::RecvFrom {
                fd: self.int("fd").unwrap_or(-1),
                len: self.num("len"),
                flags: self.num("flags"),
                addr: self.addr("addr"),
            },
            Family::RecvMsg => SyscallArgs::RecvMsg {
                fd: self.int("fd").unwrap_or(-1),
                addr: self.addr("msg"),
                flags: self.num("flags"),
            },
            Family::Userfaultfd => SyscallArgs::Userfaultfd { flags: self.num("flags") },
            Family::Setsid => SyscallArgs::Setsid,
            Family::Setpgid => {
                SyscallArgs::Setpgid { pid: self.int("pid").unwrap_or(0), pgid: self.int("pgid").unwrap_or(0) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::event::ArgValue;
    use proptest::prelude::*;
    use sensor_abi::record::{BlobHeader, Header, SyscallBody};

    use super::*;

    fn as_bytes<T>(v: &T) -> &[u8] {
        // SAFETY: the ABI structs are plain integers without padding.
        unsafe { std::slice::from_raw_parts(v as *const T as *const u8, size_of::<T>()) }
    }

    /// A syscall record as the kernel would write it.
    pub(crate) fn syscall_record(nr: u32, ret: i64, args: [u64; 6], blobs: &[(u8, u8, &[u8])]) -> Vec<u8> {
        let mut h = Header { version: ABI_VERSION, kind: RecordKind::Syscall as u16, ..Default::default() };
        h.pid = 10;
        h.tid = 11;
        h.comm[..3].copy_from_slice(b"cat");
        let body = SyscallBody { nr, nblobs: blobs.len() as u16, flags: 0, ret, args };
        let mut out = Vec::new();
        out.extend_from_slice(as_bytes(&h));
        out.extend_from_slice(as_bytes(&body));
        for (slot, flags, data) in blobs {
            let bh = BlobHeader { arg: *slot, flags: *flags, len: data.len() as u16 };
            out.extend_from_slice(as_bytes(&bh));
            out.extend_from_slice(data);
        }
        let len = out.len() as u32;
        out[4..8].copy_from_slice(&len.to_ne_bytes());
        out
    }

    #[test]
    fn decodes_openat() {
        let rec = syscall_record(257, 3, [(-100i64) as u64, 0x7000, 0o1101, 0o640, 0, 0], &[(1, 0, b"/tmp/x")]);
        let ev = decode(&rec, &Clock::with_offset(5)).unwrap();
        assert_eq!((ev.pid, ev.tid, ev.comm.as_str(), ev.wall_ts), (10, 11, "cat", 5));
        let sc = ev.syscall().unwrap();
        assert_eq!((sc.name.as_str(), sc.ret), ("openat", 3));
        assert_eq!(
            sc.args,
            SyscallArgs::Open {
                dirfd: Some(-100),
                path: Some("/tmp/x".into()),
                flags: 0o1101,
                mode: 0o640,
                resolve: None
            }
        );
    }

    #[test]
    fn decodes_exec_argv_and_path() {
        let rec = syscall_record(
            59,
            0,
            [0; 6],
            &[(blob_slot::EXE_PATH, 0, b"/bin/true"), (blob_slot::ARGV, 0, b"true\0a\0b\0")],
        );
        let ev = decode(&rec, &Clock::with_offset(0)).unwrap();
        let SyscallArgs::Exec { path, argv, .. } = &ev.syscall().unwrap().args else { panic!() };
        assert_eq!(path.as_deref(), Some("/bin/true"));
        assert_eq!(argv, &["true", "a", "b"]);
    }

    #[test]
    fn json_round_trips() {
        let rec = syscall_record(42, 0, [3, 0, 16, 0, 0, 0], &[(1, 0, &[2, 0, 0x1f, 0x90, 127, 0, 0, 1])]);
        let ev = decode(&rec, &Clock::with_offset(0)).unwrap();
        let json = serde_json::to_string(&ev).unwrap();
        assert!(json.contains(r#""syscall":"connect""#), "{json}");
        assert!(json.contains(r#""addr":{"family":"inet","addr":"127.0.0.1","port":8080}"#), "{json}");
        let back: Event = serde_json::from_str(&json).unwrap();
        assert_eq!(back, ev);
    }

    #[test]
    fn every_event_kind_round_trips_through_json() {
        // The capture-file form flattens the kind into the event: no key may clash.
        let kinds = [
            EventKind::ProcFork { child_pid: 3, child_tid: 4 },
            EventKind::ProcExec { old_tid: 5, filename: Some("/bin/true".into()) },
            EventKind::ProcExit { exit_code: 0, group_dead: true },
            EventKind::CgroupAttach { task_pid: 6, task_tid: 7, hierarchy: 4, path: Some("/docker/x".into()) },
        ];
        for kind in kinds {
            let ev = Event::for_test(10, "runc", kind);
            let json = serde_json::to_string(&ev).unwrap();
            assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), ev, "{json}");
        }
    }

    /// Every member of `args`' JSON form, `info.*` for an exec's, read by name.
    fn assert_typed_args_are_the_json_ones(args: &SyscallArgs) {
        let as_json = |v: ArgValue<'_>| match v {
            ArgValue::Int(i) => serde_json::json!(i),
            ArgValue::UInt(u) => serde_json::json!(u),
            ArgValue::Str(s) => serde_json::json!(s),
            ArgValue::Strs(v) => serde_json::json!(v),
            ArgValue::UInts(v) => serde_json::json!(v),
            ArgValue::Addr(a) => serde_json::to_value(a).unwrap(),
            ArgValue::Cgroups(c) => serde_json::to_value(c).unwrap(),
            ArgValue::Info(i) => serde_json::to_value(i).unwrap(),
        };
        let json = serde_json::to_value(args).unwrap();
        let members = json.as_object().unwrap();
        // Each family's members, and the names of every other family's (which it lacks).
        let names = ["flags", "path", "fd", "addr", "type", "cmd", "request", "sig", "uid", "mode", "nope"];
        for name in members.keys().map(String::as_str).chain(names) {
            let want = members.get(name).filter(|v| !v.is_null() && name != "family");
            assert_eq!(args.arg(name).map(as_json).as_ref(), want, "{name} of {json}");
        }
        if let Some(ArgValue::Info(info)) = args.arg("info") {
            let json = serde_json::to_value(info).unwrap();
            for (name, want) in json.as_object().unwrap() {
                assert_eq!(info.arg(name).map(as_json).as_ref(), Some(want), "info.{name}");
            }
            assert_eq!(info.arg("nope"), None);
        }
    }

    #[test]
    fn typed_arguments_are_the_json_ones_for_every_syscall() {
        let blobs: Vec<(u8, u8, &[u8])> = (0..25).map(|slot| (slot, 0, &b"/x/y\0z"[..])).collect();
        let patterns = [[0; 6], [3, 0o1101, 0o640, 1, 2, 9], [u64::MAX, u64::MAX - 1, 1 << 63, 7, 0, 1]];
        for sc in sensor_abi::syscalls::SYSCALLS {
            for regs in patterns {
                for blobs in [&blobs[..], &[]] {
                    for ret in [0, 4, -13] {
                        let ev = decode(&syscall_record(sc.nr, ret, regs, blobs), &Clock::with_offset(0)).unwrap();
                        assert_typed_args_are_the_json_ones(&ev.syscall().unwrap().args);
                    }
                }
            }
        }
        let info = ExecInfo { exe_flags: 3, tty: 34816, cap_effective: u64::MAX, ..ExecInfo::default() };
        let cgroups = Cgroups { unified: Some("/a".into()), v1: Some(("memory".into(), "/b".into())) };
        assert_typed_args_are_the_json_ones(&SyscallArgs::Exec {
            dirfd: Some(-100),
            path: Some("/bin/sh".into()),
            exe_file: Some("/usr/bin/dash".into()),
            cgroups: Some(Box::new(cgroups)),
            argv: vec!["sh".into()],
            env: vec!["A=b".into()].into(),
            flags: 0,
            info: Some(Box::new(info)),
        });
        let local = SockAddr::Inet { addr: std::net::Ipv4Addr::LOCALHOST, port: 5 };
        assert_typed_args_are_the_json_ones(&SyscallArgs::Connect { fd: 3, addr: None, local: Some(local) });
    }

    #[test]
    fn rejects_bad_records() {
        let good = syscall_record(3, 0, [4, 0, 0, 0, 0, 0], &[]);
        assert!(decode(&good, &Clock::with_offset(0)).is_ok());
        assert!(matches!(decode(&good[..50], &Clock::with_offset(0)), Err(DecodeError::Short { .. })));
        let mut v = good.clone();
        v[0] = 99;
        assert_eq!(decode(&v, &Clock::with_offset(0)), Err(DecodeError::Version(99)));
        let mut k = good.clone();
        k[2] = 77;
        assert_eq!(decode(&k, &Clock::with_offset(0)), Err(DecodeError::Kind(77)));
        let mut n = good.clone();
        n[80..84].copy_from_slice(&999u32.to_ne_bytes());
        assert_eq!(decode(&n, &Clock::with_offset(0)), Err(DecodeError::Syscall(999)));
        let mut b = syscall_record(257, 3, [0; 6], &[(1, 0, b"/x")]);
        b[84..86].copy_from_slice(&5u16.to_ne_bytes());
        assert!(matches!(decode(&b, &Clock::with_offset(0)), Err(DecodeError::Blob { .. })));
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = decode(&bytes, &Clock::with_offset(0));
        }

        #[test]
        fn never_panics_on_corrupted_records(
            nr in prop::sample::select(syscalls::SYSCALLS.iter().map(|s| s.nr).collect::<Vec<_>>()),
            args in any::<[u64; 6]>(),
            blob in proptest::collection::vec(any::<u8>(), 0..64),
            slot in 0u8..20,
            cut in any::<prop::sample::Index>(),
            flip in any::<(prop::sample::Index, u8)>(),
        ) {
            let rec = syscall_record(nr, -1, args, &[(slot, 0, &blob)]);
            // Whole and valid: must decode.
            prop_assert!(decode(&rec, &Clock::with_offset(0)).is_ok());
            // Truncated (with the length fixed up) and bit-flipped: must not panic.
            let mut short = rec[..cut.index(rec.len())].to_vec();
            if short.len() >= 8 {
                let len = short.len() as u32;
                short[4..8].copy_from_slice(&len.to_ne_bytes());
            }
            let _ = decode(&short, &Clock::with_offset(0));
            let mut flipped = rec.clone();
            let i = flip.0.index(flipped.len());
            flipped[i] ^= flip.1;
            let _ = decode(&flipped, &Clock::with_offset(0));
        }
    }
}
