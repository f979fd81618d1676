//! Field offsets of kernel structures, read from the running kernel's BTF.
//!
//! The kernel programs are written in Rust, which cannot emit CO-RE relocations, so the
//! relocation is done here instead: each field the programs read is looked up by name in
//! `/sys/kernel/btf/vmlinux` and its byte offset handed to them in their configuration.
//! Only the parts of the BTF format needed for that are parsed (types and strings).

use std::collections::HashMap;

use sensor_abi::config::{KernelOffsets, OFFSET_MISSING};

const BTF_MAGIC: u16 = 0xeb9f;

/// Why the kernel's BTF could not supply an offset.
#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    /// The data is not BTF or is cut short.
    #[error("malformed BTF: {0}")]
    Malformed(&'static str),
    /// A structure the programs need is not described.
    #[error("kernel BTF has no struct {0}")]
    NoStruct(String),
    /// A field the programs need is not in its structure.
    #[error("kernel BTF has no field {0}.{1}")]
    NoField(String, String),
}

/// The kinds of BTF type this resolver distinguishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Int,
    Ptr,
    Array,
    Struct,
    Union,
    Enum,
    Fwd,
    Typedef,
    Volatile,
    Const,
    Restrict,
    Func,
    FuncProto,
    Var,
    DataSec,
    Float,
    DeclTag,
    TypeTag,
    Enum64,
}

impl Kind {
    fn from_raw(raw: u32) -> Option<Self> {
        use Kind::*;
        Some(match raw {
            1 => Int,
            2 => Ptr,
            3 => Array,
            4 => Struct,
            5 => Union,
            6 => Enum,
            7 => Fwd,
            8 => Typedef,
            9 => Volatile,
            10 => Const,
            11 => Restrict,
            12 => Func,
            13 => FuncProto,
            14 => Var,
            15 => DataSec,
            16 => Float,
            17 => DeclTag,
            18 => TypeTag,
            19 => Enum64,
            _ => return None,
        })
    }
}

/// A member of a struct or union: name offset, type id, offset in bits.
#[derive(Clone, Copy, Debug)]
struct Member {
    name: u32,
    ty: u32,
    bit_offset: u32,
}

#[derive(Clone, Debug)]
struct Type {
    kind: Kind,
    name: u32,
    /// Size in bytes (int, struct, union, enum) or referenced type id (ptr, typedef, ...).
    size_or_type: u32,
    members: Vec<Member>,
    /// Element type and count, for arrays.
    array: Option<(u32, u32)>,
}

/// A parsed BTF blob: enough to resolve struct field offsets.
pub struct Btf {
    /// Index 0 is the implicit `void` type.
    types: Vec<Type>,
    strings: Vec<u8>,
    structs_by_name: HashMap<String, u32>,
    /// Every enumerator (`PIDTYPE_PGID`, `memory_cgrp_id`, ...) and its value.
    enumerators: HashMap<String, i64>,
}

fn u32_at(data: &[u8], off: usize) -> Result<u32, BtfError> {
    data.get(off..off + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).ok_or(BtfError::Malformed("truncated"))
}

impl Btf {
    /// Reads the running kernel's BTF.
    pub fn from_sys_fs() -> std::io::Result<Result<Self, BtfError>> {
        Ok(Self::parse(&std::fs::read("/sys/kernel/btf/vmlinux")?))
    }

    /// Parses a little-endian BTF blob.
    pub fn parse(data: &[u8]) -> Result<Self, BtfError> {
        let magic = data.get(0..2).map(|b| u16::from_le_bytes([b[0], b[1]]));
        if magic != Some(BTF_MAGIC) {
            return Err(BtfError::Malformed("bad magic"));
        }
        let hdr_len = u32_at(data, 4)? as usize;
        let type_off = u32_at(data, 8)? as usize;
        let type_len = u32_at(data, 12)? as usize;
        let str_off = u32_at(data, 16)? as usize;
        let str_len = u32_at(data, 20)? as usize;
        let types_start = hdr_len + type_off;
        let section =
            data.get(types_start..types_start + type_len).ok_or(BtfError::Malformed("type section out of bounds"))?;
        let strings = data
            .get(hdr_len + str_off..hdr_len + str_off + str_len)
            .ok_or(BtfError::Malformed("string section out of bounds"))?
            .to_vec();

        let mut types = vec![Type { kind: Kind::Int, name: 0, size_or_type: 0, members: Vec::new(), array: None }];
        let mut enumerators = Vec::new();
        let mut off = 0;
        while off < section.len() {
            let name = u32_at(section, off)?;
            let info = u32_at(section, off + 4)?;
            let size_or_type = u32_at(section, off + 8)?;
            off += 12;
            let vlen = (info & 0xffff) as usize;
            let kind_flag = info >> 31 == 1;
            let kind = Kind::from_raw((info >> 24) & 0x1f).ok_or(BtfError::Malformed("unknown kind"))?;
            let mut ty = Type { kind, name, size_or_type, members: Vec::new(), array: None };
            match kind {
                Kind::Int | Kind::Var | Kind::DeclTag => off += 4,
                Kind::Array => {
                    ty.array = Some((u32_at(section, off)?, u32_at(section, off + 8)?));
                    off += 12;
                }
                Kind::Struct | Kind::Union => {
                    for i in 0..vlen {
                        let m = off + i * 12;
                        let raw = u32_at(section, m + 8)?;
                        // With kind_flag set, the top 8 bits are a bitfield size.
                        let bit_offset = if kind_flag { raw & 0x00ff_ffff } else { raw };
                        ty.members.push(Member { name: u32_at(section, m)?, ty: u32_at(section, m + 4)?, bit_offset });
                    }
                    off += vlen * 12;
                }
                Kind::Enum => {
                    for i in 0..vlen {
                        let e = off + i * 8;
                        enumerators.push((u32_at(section, e)?, i64::from(u32_at(section, e + 4)? as i32)));
                    }
                    off += vlen * 8;
                }
                Kind::Enum64 => {
                    for i in 0..vlen {
                        let e = off + i * 12;
                        let value = u64::from(u32_at(section, e + 4)?) | u64::from(u32_at(section, e + 8)?) << 32;
                        enumerators.push((u32_at(section, e)?, value as i64));
                    }
                    off += vlen * 12;
                }
                Kind::FuncProto => off += vlen * 8,
                Kind::DataSec => off += vlen * 12,
                Kind::Ptr
                | Kind::Fwd
                | Kind::Typedef
                | Kind::Volatile
                | Kind::Const
                | Kind::Restrict
                | Kind::Func
                | Kind::Float
                | Kind::TypeTag => {}
            }
            types.push(ty);
        }

        let mut btf = Self { types, strings, structs_by_name: HashMap::new(), enumerators: HashMap::new() };
        for (name, value) in enumerators {
            let name = btf.name(name).to_owned();
            btf.enumerators.entry(name).or_insert(value);
        }
        for (id, ty) in btf.types.iter().enumerate().skip(1) {
            if ty.kind == Kind::Struct && ty.name != 0 {
                let name = btf.name(ty.name).to_owned();
                btf.structs_by_name.entry(name).or_insert(id as u32);
            }
        }
        Ok(btf)
    }

    fn name(&self, off: u32) -> &str {
        let rest = self.strings.get(off as usize..).unwrap_or_default();
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        std::str::from_utf8(&rest[..end]).unwrap_or("")
    }

    fn ty(&self, id: u32) -> Option<&Type> {
        self.types.get(id as usize)
    }

    /// Follows typedefs and qualifiers to the underlying type.
    fn resolve(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            match self.ty(id).map(|t| t.kind) {
                Some(Kind::Typedef | Kind::Volatile | Kind::Const | Kind::Restrict | Kind::TypeTag) => {
                    id = self.types[id as usize].size_or_type;
                }
                _ => break,
            }
        }
        id
    }

    /// Byte offset of member `name` in composite type `id`, looking through anonymous
    /// structs and unions; returns the offset and the member's type id.
    fn member(&self, id: u32, name: &str) -> Option<(u32, u32)> {
        let ty = self.ty(self.resolve(id))?;
        for m in &ty.members {
            if m.name != 0 && self.name(m.name) == name {
                return Some((m.bit_offset / 8, m.ty));
            }
            if m.name == 0
                && let Some((off, t)) = self.member(m.ty, name)
            {
                return Some((m.bit_offset / 8 + off, t));
            }
        }
        None
    }

    /// Byte offset of a dotted field path (`ns.inum`) in `struct <strukt>`.
    pub fn offset(&self, strukt: &str, path: &str) -> Result<u32, BtfError> {
        let mut id = *self.structs_by_name.get(strukt).ok_or_else(|| BtfError::NoStruct(strukt.into()))?;
        let mut total = 0;
        for part in path.split('.') {
            let (off, ty) = self.member(id, part).ok_or_else(|| BtfError::NoField(strukt.into(), path.into()))?;
            total += off;
            id = ty;
        }
        Ok(total)
    }

    /// Size in bytes of `struct <strukt>`.
    pub fn struct_size(&self, strukt: &str) -> Result<u32, BtfError> {
        let id = *self.structs_by_name.get(strukt).ok_or_else(|| BtfError::NoStruct(strukt.into()))?;
        Ok(self.types[id as usize].size_or_type)
    }

    /// Every offset the kernel programs need.
    pub fn kernel_offsets(&self) -> Result<KernelOffsets, BtfError> {
        let (rss_stat, rss_stride, rss_count) = self.rss_stat()?;
        Ok(KernelOffsets {
            task_real_parent: self.offset("task_struct", "real_parent")?,
            task_tgid: self.offset("task_struct", "tgid")?,
            task_pid: self.offset("task_struct", "pid")?,
            task_group_leader: self.offset("task_struct", "group_leader")?,
            task_thread_pid: self.offset("task_struct", "thread_pid")?,
            task_nsproxy: self.offset("task_struct", "nsproxy")?,
            task_mm: self.offset("task_struct", "mm")?,
            task_exit_code: self.offset("task_struct", "exit_code")?,
            task_signal: self.offset("task_struct", "signal")?,
            signal_live: self.offset("signal_struct", "live")?,
            pid_level: self.offset("pid", "level")?,
            pid_numbers: self.offset("pid", "numbers")?,
            upid_size: self.struct_size("upid")?,
            upid_nr: self.offset("upid", "nr")?,
            upid_ns: self.offset("upid", "ns")?,
            pid_ns_inum: self.offset("pid_namespace", "ns.inum")?,
            nsproxy_mnt_ns: self.offset("nsproxy", "mnt_ns")?,
            mnt_ns_inum: self.offset("mnt_namespace", "ns.inum")?,
            mm_arg_start: self.offset("mm_struct", "arg_start")?,
            mm_arg_end: self.offset("mm_struct", "arg_end")?,
            mm_env_start: self.offset("mm_struct", "env_start")?,
            mm_env_end: self.offset("mm_struct", "env_end")?,
            bprm_filename: self.offset("linux_binprm", "filename")?,
            task_cred: self.offset("task_struct", "cred")?,
            cred_cap_effective: self.offset("cred", "cap_effective")?,
            cred_cap_permitted: self.offset("cred", "cap_permitted")?,
            cred_cap_inheritable: self.offset("cred", "cap_inheritable")?,
            task_loginuid: self.offset("task_struct", "loginuid").unwrap_or(OFFSET_MISSING),
            mm_exe_file: self.offset("mm_struct", "exe_file")?,
            file_inode: self.offset("file", "f_inode")?,
            inode_ino: self.offset("inode", "i_ino")?,
            // 6.11 split the timestamps into seconds and nanoseconds; 6.6 to 6.10 call the
            // ctime timespec `__i_ctime`; before that it is `i_ctime`.
            inode_ctime_sec: self.first_offset("inode", &["i_ctime_sec", "__i_ctime.tv_sec", "i_ctime.tv_sec"])?,
            inode_ctime_nsec: self.first_offset("inode", &["i_ctime_nsec", "__i_ctime.tv_nsec", "i_ctime.tv_nsec"])?,
            inode_mtime_sec: self.first_offset("inode", &["i_mtime_sec", "__i_mtime.tv_sec", "i_mtime.tv_sec"])?,
            inode_mtime_nsec: self.first_offset("inode", &["i_mtime_nsec", "__i_mtime.tv_nsec", "i_mtime.tv_nsec"])?,
            signal_tty: self.offset("signal_struct", "tty")?,
            tty_index: self.offset("tty_struct", "index")?,
            tty_driver: self.offset("tty_struct", "driver")?,
            tty_driver_major: self.offset("tty_driver", "major")?,
            tty_driver_minor_start: self.offset("tty_driver", "minor_start")?,
            task_fs: self.offset("task_struct", "fs")?,
            fs_root: self.offset("fs_struct", "root")?,
            path_mnt: self.offset("path", "mnt")?,
            path_dentry: self.offset("path", "dentry")?,
            file_path: self.offset("file", "f_path")?,
            dentry_parent: self.offset("dentry", "d_parent")?,
            dentry_name: self.offset("dentry", "d_name.name")?,
            vfsmount_root: self.offset("vfsmount", "mnt_root")?,
            mount_mnt: self.offset("mount", "mnt")?,
            mount_parent: self.offset("mount", "mnt_parent")?,
            mount_mountpoint: self.offset("mount", "mnt_mountpoint")?,
            inode_sb: self.offset("inode", "i_sb")?,
            sb_magic: self.offset("super_block", "s_magic")?,
            sb_flags: self.offset("super_block", "s_flags")?,
            inode_mode: self.offset("inode", "i_mode")?,
            inode_uid: self.offset("inode", "i_uid")?,
            inode_gid: self.offset("inode", "i_gid")?,
            cred_fsuid: self.offset("cred", "fsuid")?,
            cred_fsgid: self.offset("cred", "fsgid")?,
            // Only where overlayfs is built in (a module has its own BTF).
            ovl_upperdentry: match (self.offset("ovl_inode", "__upperdentry"), self.offset("ovl_inode", "vfs_inode")) {
                (Ok(upper), Ok(inode)) => (i64::from(upper) - i64::from(inode)) as i32 as u32,
                _ => OFFSET_MISSING,
            },
            signal_pids: self.offset("signal_struct", "pids")?,
            pidtype_pgid: self.enumerator("PIDTYPE_PGID")? as u32,
            pidtype_sid: self.enumerator("PIDTYPE_SID")? as u32,
            signal_nofile_cur: self.offset("signal_struct", "rlim")?
                + RLIMIT_NOFILE * self.struct_size("rlimit")?
                + self.offset("rlimit", "rlim_cur")?,
            task_maj_flt: self.offset("task_struct", "maj_flt")?,
            task_min_flt: self.offset("task_struct", "min_flt")?,
            mm_total_vm: self.offset("mm_struct", "total_vm")?,
            mm_rss_stat: rss_stat,
            rss_stride,
            rss_count,
            pid_ns_reaper: self.offset("pid_namespace", "child_reaper")?,
            task_start_boottime: self.offset("task_struct", "start_boottime")?,
            task_cgroups: self.offset("task_struct", "cgroups")?,
            css_set_dfl_cgrp: self.offset("css_set", "dfl_cgrp")?,
            css_set_subsys: self.offset("css_set", "subsys")?,
            cgroup_v1_subsys: self.cgroup_v1_controller().map_or(OFFSET_MISSING, |(id, _)| id),
            css_cgroup: self.offset("cgroup_subsys_state", "cgroup")?,
            cgroup_kn: self.offset("cgroup", "kn")?,
            kernfs_name: self.offset("kernfs_node", "name")?,
            // 6.15 renamed `parent` to `__parent`.
            kernfs_parent: self.first_offset("kernfs_node", &["__parent", "parent"])?,
            cgroup_root: self.offset("cgroup", "root")?,
            cgroup_root_hierarchy_id: self.offset("cgroup_root", "hierarchy_id")?,
            task_ti_status: self.offset("task_struct", "thread_info.status")?,
            task_files: self.offset("task_struct", "files")?,
            files_fdt: self.offset("files_struct", "fdt")?,
            fdtable_max_fds: self.offset("fdtable", "max_fds")?,
            fdtable_fd: self.offset("fdtable", "fd")?,
            file_private_data: self.offset("file", "private_data")?,
            socket_sk: self.offset("socket", "sk")?,
            socket_file: self.offset("socket", "file")?,
            sk_family: self.offset("sock", "__sk_common.skc_family")?,
            sk_rcv_saddr: self.offset("sock", "__sk_common.skc_rcv_saddr")?,
            sk_num: self.offset("sock", "__sk_common.skc_num")?,
            sk_v6_rcv_saddr: self.offset("sock", "__sk_common.skc_v6_rcv_saddr")?,
        })
    }

    /// The value of enumerator `name` (of any enum).
    pub fn enumerator(&self, name: &str) -> Result<i64, BtfError> {
        self.enumerators.get(name).copied().ok_or_else(|| BtfError::NoField("enum".into(), name.into()))
    }

    /// The v1 cgroup controller whose path exec records carry, as its `cgroup_subsys_id`
    /// and name: one every container runtime sets up on v1 and hybrid hosts.
    pub fn cgroup_v1_controller(&self) -> Option<(u32, &'static str)> {
        [("memory_cgrp_id", "memory"), ("pids_cgrp_id", "pids"), ("cpu_cgrp_id", "cpu")]
            .iter()
            .find_map(|(enumerator, name)| Some((self.enumerator(enumerator).ok()? as u32, *name)))
    }

    /// `(offset in mm_struct, stride, offset of the value)` of the `rss_stat` counters:
    /// an array of `percpu_counter` since 6.2, an array of `atomic_long_t` before.
    fn rss_stat(&self) -> Result<(u32, u32, u32), BtfError> {
        if let Ok(old) = self.offset("mm_struct", "rss_stat.count") {
            return Ok((old, 8, 0));
        }
        Ok((
            self.offset("mm_struct", "rss_stat")?,
            self.struct_size("percpu_counter")?,
            self.offset("percpu_counter", "count")?,
        ))
    }

    /// The offset of the first of `paths` that `struct <strukt>` has (fields renamed
    /// across kernel versions).
    fn first_offset(&self, strukt: &str, paths: &[&str]) -> Result<u32, BtfError> {
        paths
            .iter()
            .find_map(|path| self.offset(strukt, path).ok())
            .ok_or_else(|| BtfError::NoField(strukt.into(), paths.join(" | ")))
    }
}

/// `RLIMIT_NOFILE` (x86_64).
const RLIMIT_NOFILE: u32 = 7;

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a tiny BTF blob: `struct inner { int a; int b; }` and
    /// `struct outer { int x; union { int y; struct inner in; }; }`.
    fn blob() -> Vec<u8> {
        let strings = b"\0int\0inner\0a\0b\0outer\0x\0y\0in\0".to_vec();
        let s = |name: &str| {
            let needle = format!("\0{name}\0");
            (strings.windows(needle.len()).position(|w| w == needle.as_bytes()).unwrap() + 1) as u32
        };
        let mut t = Vec::new();
        let mut push = |words: &[u32]| words.iter().for_each(|w| t.extend_from_slice(&w.to_le_bytes()));
        push(&[s("int"), 1 << 24, 4, 32]); // 1: int
        push(&[s("inner"), 4 << 24 | 2, 8, s("a"), 1, 0, s("b"), 1, 32]); // 2
        push(&[0, 5 << 24 | 2, 8, s("y"), 1, 0, s("in"), 2, 0]); // 3: anonymous union
        push(&[s("outer"), 4 << 24 | 2, 12, s("x"), 1, 0, 0, 3, 32]); // 4
        let mut out = Vec::new();
        out.extend_from_slice(&BTF_MAGIC.to_le_bytes());
        out.extend_from_slice(&[1, 0]);
        for w in [24u32, 0, t.len() as u32, t.len() as u32, strings.len() as u32] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(&t);
        out.extend_from_slice(&strings);
        out
    }

    #[test]
    fn resolves_nested_and_anonymous_members() {
        let btf = Btf::parse(&blob()).unwrap();
        assert_eq!(btf.offset("outer", "x").unwrap(), 0);
        assert_eq!(btf.offset("outer", "y").unwrap(), 4);
        assert_eq!(btf.offset("outer", "in.b").unwrap(), 8);
        assert_eq!(btf.struct_size("inner").unwrap(), 8);
        assert!(matches!(btf.offset("outer", "zz"), Err(BtfError::NoField(..))));
        assert!(matches!(btf.offset("nope", "x"), Err(BtfError::NoStruct(..))));
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        assert!(Btf::parse(b"").is_err());
        assert!(Btf::parse(&[0x9f, 0xeb, 1, 0, 24, 0, 0, 0]).is_err());
        let mut cut = blob();
        cut.truncate(40);
        assert!(Btf::parse(&cut).is_err());
    }

    #[test]
    fn running_kernel_has_every_offset() {
        let Ok(Ok(btf)) = Btf::from_sys_fs() else {
            panic!("this test needs /sys/kernel/btf/vmlinux (Linux with CONFIG_DEBUG_INFO_BTF)");
        };
        let o = btf.kernel_offsets().unwrap();
        assert!(o.task_tgid > 0 && o.task_pid > 0 && o.upid_size >= 12);
        // x86_64 since 5.11: flags, syscall_work, then status.
        assert_eq!(o.task_ti_status, 16, "thread_info.status");
        assert_eq!((o.pidtype_pgid, o.pidtype_sid), (2, 3), "enum pid_type");
        assert_ne!(o.ovl_upperdentry, OFFSET_MISSING, "overlayfs is built into this kernel");
        assert_eq!(btf.cgroup_v1_controller().map(|(_, name)| name), Some("memory"));
    }
}
