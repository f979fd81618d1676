//! The field registry: every field a condition or an output may name, with its type, the
//! kind of argument it takes, a one-line description and whether this sensor supplies it.
//! One table (`fields!`); it gives the [`Field`] enum, so every `match` over fields (the
//! live implementation in `state`, the test-event builder) must handle a new field before the
//! crate compiles again, and everything else (checker, `list-fields`, typed JSON output)
//! reads [`FIELDS`].

use std::{collections::BTreeMap, fmt};

/// The type of a field's value, which decides how operators compare it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// Text (`=` is exact, `contains` is a substring test).
    Str,
    /// Signed integer.
    Int,
    /// Unsigned integer (ports, ids, counters, nanosecond times).
    UInt,
    /// `true`/`false`.
    Bool,
    /// An IPv4 or IPv6 address.
    Ip,
    /// An address compared against networks (`a.b.c.d/n`).
    Net,
    /// A set of symbolic flags rendered as `A|B|C`; `contains X` means flag X is set.
    Flags,
    /// Raw bytes (`bcontains`/`bstartswith` take hex).
    Bytes,
}

impl FieldType {
    /// Name used by `list-fields`.
    pub fn name(self) -> &'static str {
        match self {
            FieldType::Str => "string",
            FieldType::Int => "int64",
            FieldType::UInt => "uint64",
            FieldType::Bool => "bool",
            FieldType::Ip => "ipaddr",
            FieldType::Net => "ipnet",
            FieldType::Flags => "flags",
            FieldType::Bytes => "bytebuf",
        }
    }

    /// True for integer types.
    pub fn is_numeric(self) -> bool {
        matches!(self, FieldType::Int | FieldType::UInt)
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What argument a field accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArgKind {
    /// No argument.
    None,
    /// Optional ancestor index (`proc.aname[2]`); without it, a filter matches any ancestor.
    Ancestor,
    /// Optional key (`proc.env[HOME]`); without it, the whole value.
    OptKey,
    /// Required key, as `[key]` or as a dotted suffix (`k8s.pod.label.app`).
    Key,
    /// Required event argument, by name (`evt.arg.flags`) or position (`evt.arg[0]`).
    EventArg,
    /// Required numeric index (`fd.types[0]` is optional, see the field).
    OptIndex,
    /// Required index or path glob, in brackets only, since paths hold dots
    /// (`container.mount.dest[0]`, `container.mount.dest[/var/run/*.sock]`).
    IndexOrPath,
}

impl ArgKind {
    /// Name used by `list-fields`.
    pub fn name(self) -> &'static str {
        match self {
            ArgKind::None => "none",
            ArgKind::Ancestor => "ancestor index (optional)",
            ArgKind::OptKey => "key (optional)",
            ArgKind::Key => "key (required)",
            ArgKind::EventArg => "argument name or index (required)",
            ArgKind::OptIndex => "index (optional)",
            ArgKind::IndexOrPath => "index or path glob (required)",
        }
    }
}

/// A field's argument after checking.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FieldArg {
    /// A number, e.g. an ancestor level or an argument position.
    Index(u32),
    /// A name, e.g. an environment variable or an event argument.
    Key(String),
}

impl fmt::Display for FieldArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldArg::Index(i) => write!(f, "{i}"),
            FieldArg::Key(k) => f.write_str(k),
        }
    }
}

/// Whether the sensor supplies a field's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Availability {
    /// Events carry it where it applies.
    Supplied,
    /// Never supplied, for the reason given: conditions on it are always false and outputs
    /// render `<NA>`. `sensor validate` warns about rules that use it.
    Unavailable(&'static str),
}

/// One registry entry.
#[derive(Debug, PartialEq, Eq)]
pub struct FieldInfo {
    /// The field.
    pub field: Field,
    /// Full name, e.g. `proc.name`.
    pub name: &'static str,
    /// Value type.
    pub ty: FieldType,
    /// Accepted argument.
    pub arg: ArgKind,
    /// One line, in the project's words.
    pub desc: &'static str,
    /// Whether the sensor supplies it.
    pub availability: Availability,
    /// Which sources' events supply it.
    pub scope: FieldScope,
    /// A list field (libsinsp's `EPF_IS_LIST`): its values are rendered in outputs as
    /// Falco renders them, `(a,b)`, even one value (`(a)`).
    pub list: bool,
}

/// The event sources a field belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldScope {
    /// Every source's events (the event's time, source and node).
    Any,
    /// Syscall events.
    Syscall,
    /// Kubernetes audit events (`ka.*`, `jevt.*`).
    K8sAudit,
}

impl FieldScope {
    /// The sources whose events supply fields of this scope.
    pub fn sources(self) -> &'static [&'static str] {
        match self {
            FieldScope::Any => &SOURCES,
            FieldScope::Syscall => &[SYSCALL_SOURCE],
            FieldScope::K8sAudit => &[K8S_AUDIT_SOURCE],
        }
    }

    /// Whether events of `source` (a rule's `source:`) supply fields of this scope.
    pub fn serves(self, source: &str) -> bool {
        match self {
            FieldScope::Any => true,
            FieldScope::Syscall => source == SYSCALL_SOURCE,
            FieldScope::K8sAudit => source == K8S_AUDIT_SOURCE,
        }
    }
}

/// The source of syscall events and rules (a rule's default `source:`).
pub const SYSCALL_SOURCE: &str = "syscall";
/// The source of Kubernetes audit events and rules.
pub const K8S_AUDIT_SOURCE: &str = "k8s_audit";
/// Every event source the sensor has.
pub const SOURCES: [&str; 2] = [SYSCALL_SOURCE, K8S_AUDIT_SOURCE];

/// Declares every field once, by scope: `section Scope { Variant "name" Type ArgKind
/// "description"; ... }`, each entry followed by `unavailable "reason"` for fields the
/// sensor cannot supply. Each section also becomes a pattern macro of its name
/// (`syscall_fields!()` matches every syscall field), so that an event of one source can
/// answer another's fields with one arm while the compiler still points at every new field
/// of its own.
macro_rules! fields {
    ($( $section:ident $scope:ident { $( $variant:ident $name:literal $ty:ident $arg:ident $($list:ident)? $desc:literal $(unavailable $why:literal)? ;)* } )*) => {
        /// A registered field; [`Field::info`] gives its entry in [`FIELDS`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Field {
            $( $( #[doc = concat!("`", $name, "`")] $variant, )* )*
        }

        /// Every field, in the order of [`Field`].
        pub static FIELDS: &[FieldInfo] = &[
            $( $( FieldInfo {
                field: Field::$variant,
                name: $name,
                ty: FieldType::$ty,
                arg: ArgKind::$arg,
                desc: $desc,
                availability: fields!(@availability $($why)?),
                scope: FieldScope::$scope,
                list: fields!(@list $($list)?),
            }, )* )*
        ];

        $(
            #[allow(unused_macros)]
            macro_rules! $section {
                () => { $( $crate::rules::Field::$variant )|* };
            }
            #[allow(unused_imports)]
            pub(crate) use $section;
        )*
    };
    (@list) => { false };
    (@list list) => { true };
    (@availability) => { Availability::Supplied };
    (@availability $why:literal) => { Availability::Unavailable($why) };
}

fields! {
    any_source_fields Any {
        // --- evt: the time, source and node of events of every source
        EvtTime "evt.time" Str None "Event time (UTC) as HH:MM:SS.nanoseconds.";
        EvtTimeS "evt.time.s" Str None "Event time (UTC) as HH:MM:SS.";
        EvtTimeIso8601 "evt.time.iso8601" Str None "Event time in ISO 8601 (UTC) with nanoseconds.";
        EvtDatetime "evt.datetime" Str None "Event date and time (UTC) as YYYY-MM-DD HH:MM:SS.nanoseconds.";
        EvtDatetimeS "evt.datetime.s" Str None "Event date and time (UTC) as YYYY-MM-DD HH:MM:SS.";
        EvtRawtime "evt.rawtime" UInt None "Event time in nanoseconds since the epoch.";
        EvtRawtimeS "evt.rawtime.s" UInt None "Whole seconds of the event time since the epoch.";
        EvtRawtimeNs "evt.rawtime.ns" UInt None "Nanosecond part of the event time.";
        EvtSource "evt.source" Str None "Source that produced the event (syscall).";
        EvtHostname "evt.hostname" Str None "The node's name, as alerts carry it: SENSOR_HOSTNAME, else FALCO_HOSTNAME, else the kernel's host name.";
        // --- static: the configuration's static_fields, the same on every event
        Static "static" Str Key "A value of the configuration's static_fields, by name (static.cluster); unset names have none.";
    }
    syscall_fields Syscall {
        // --- evt: the event itself
        EvtNum "evt.num" UInt None "Sequence number of the event in the pipeline that evaluates it, from 1.";
        EvtReltime "evt.reltime" UInt None "Nanoseconds since the first event the pipeline saw.";
        EvtType "evt.type" Str None "Event (syscall) name, e.g. openat.";
        EvtTypeIs "evt.type.is" UInt Key "1 when the event has the type given as suffix (evt.type.is.open), else 0.";
        SyscallType "syscall.type" Str None "Syscall name; unset for events that are not syscalls.";
        EvtDir "evt.dir" Str None "Direction: '<' (exit). Enter events are not delivered.";
        EvtCategory "evt.category" Str None "Broad category of the event: file, net, process, memory, signal, user, other; I/O events (close, dup, send) take the kind of their descriptor: file, net, ipc, unknown.";
        EvtCpu "evt.cpu" UInt None "CPU the event happened on.";
        EvtArgs "evt.args" Str None "All event arguments as name=value pairs, the return value first (res=).";
        EvtInfo "evt.info" Str None "Same text as evt.args.";
        EvtArg "evt.arg" Str EventArg "One event argument rendered as text, by name (evt.arg.fd) or position (evt.arg[0]).";
        EvtRawarg "evt.rawarg" Str EventArg "One event argument as its raw value (flags as numbers), by name.";
        EvtRes "evt.res" Str None "Return value as text: SUCCESS or an errno name such as ENOENT.";
        EvtRawres "evt.rawres" Int None "Return value as a number (negative errno on failure).";
        EvtFailed "evt.failed" Bool None "True when the syscall returned an error.";
        EvtBuffer "evt.buffer" Bytes None "Data buffer of I/O events." unavailable "I/O payloads are not captured";
        EvtBuflen "evt.buflen" UInt None "Bytes a successful I/O event transferred (its return value).";
        EvtIsIo "evt.is_io" Bool None "True for events that read or write a file descriptor.";
        EvtIsIoRead "evt.is_io_read" Bool None "True for events that read from a file descriptor.";
        EvtIsIoWrite "evt.is_io_write" Bool None "True for events that write to a file descriptor.";
        EvtIoDir "evt.io_dir" Str None "read for events that read from a descriptor, write for those that write (libsinsp spells it out).";
        EvtIsOpenRead "evt.is_open_read" Bool None "True for open, openat and openat2 calls that request read access; false for other events (creat too, as in libsinsp).";
        EvtIsOpenWrite "evt.is_open_write" Bool None "True for open, openat and openat2 calls that request write access; false for other events (creat too, as in libsinsp).";
        EvtIsOpenExec "evt.is_open_exec" Bool None "True for open calls and creat that create a file with an execute permission bit.";
        EvtIsOpenCreate "evt.is_open_create" Bool None "True for open calls that request O_CREAT (or make an O_TMPFILE); whether the file existed before is not captured.";
        EvtAbspath "evt.abspath" Str OptKey "Absolute path from a dirfd and a relative name (suffix src or dst for two-path syscalls).";
        EvtCount "evt.count" UInt None "Always 1; handy for counting.";
        EvtIsAsync "evt.is_async" Bool None "True for events not produced by a syscall or a tracepoint; the sensor has none.";
        EvtLatency "evt.latency" UInt None "Nanoseconds between syscall entry and exit." unavailable "the time of syscall entry is not kept";
        EvtIsTruncated "evt.is_truncated" Bool None "True when a string or structure the event captured was cut at its bound (a path, argv or environment longer than 4096 bytes), or its process's state was (its environment past 32 KiB; past 4,096 fds, or 1 MiB of fd names, a new fd's name is cut to 256 bytes).";
        EvtIsEnterMissing "evt.is_enter_missing" Bool None "True when the enter side of the call was not captured: the memory arguments read there (paths, addresses) are absent.";
        EvtIsReread "evt.is_reread" Bool None "True when a memory argument could not be read at syscall entry (not resident yet) and was read at exit: the call may have used other bytes.";
        EvtIsIa32 "evt.is_ia32" Bool None "True for a syscall made through the 32-bit gate (a 32-bit program, or int 0x80), reported with its x86_64 name and arguments.";
        // --- proc: the process
        ProcPid "proc.pid" UInt None "Process id (host namespace).";
        ProcPpid "proc.ppid" UInt None "Parent process id (host namespace).";
        ProcApid "proc.apid" UInt Ancestor "Pid of an ancestor: [0] self, [1] parent...; without index, any ancestor.";
        ProcVpid "proc.vpid" UInt None "Process id inside its PID namespace.";
        ProcPvpid "proc.pvpid" UInt None "Parent process id inside its PID namespace.";
        ProcSid "proc.sid" UInt None "Session id.";
        ProcSname "proc.sname" Str None "Name of the session leader (the process whose pid is proc.sid, else the eldest ancestor in the session).";
        ProcSidExe "proc.sid.exe" Str None "argv[0] of the session leader.";
        ProcSidExepath "proc.sid.exepath" Str None "Executable path of the session leader.";
        ProcVpgid "proc.vpgid" UInt None "Process group id inside its PID namespace (0 when the group's leader is outside it).";
        ProcVpgidName "proc.vpgid.name" Str None "Name of the process group leader.";
        ProcVpgidExe "proc.vpgid.exe" Str None "argv[0] of the process group leader.";
        ProcVpgidExepath "proc.vpgid.exepath" Str None "Executable path of the process group leader.";
        ProcPgid "proc.pgid" UInt None "Process group id (host namespace).";
        ProcPgidName "proc.pgid.name" Str None "Name of the process group leader.";
        ProcPgidExe "proc.pgid.exe" Str None "argv[0] of the process group leader.";
        ProcPgidExepath "proc.pgid.exepath" Str None "Executable path of the process group leader.";
        ProcName "proc.name" Str None "Process name (the kernel's comm, at most 15 characters).";
        ProcPname "proc.pname" Str None "Name of the parent process.";
        ProcAname "proc.aname" Str Ancestor "Name of an ancestor: [0] self, [1] parent...; without index, any ancestor.";
        ProcExe "proc.exe" Str None "argv[0] as passed to execve.";
        ProcPexe "proc.pexe" Str None "argv[0] of the parent process.";
        ProcAexe "proc.aexe" Str Ancestor "argv[0] of an ancestor; without index, any ancestor.";
        ProcExepath "proc.exepath" Str None "Resolved path of the executable file.";
        ProcPexepath "proc.pexepath" Str None "Resolved executable path of the parent process.";
        ProcAexepath "proc.aexepath" Str Ancestor "Resolved executable path of an ancestor; without index, any ancestor.";
        ProcArgs "proc.args" Str None "Command-line arguments after argv[0], space-separated.";
        ProcAargs "proc.aargs" Str Ancestor "Arguments of an ancestor; without index, any ancestor.";
        ProcCmdline "proc.cmdline" Str None "proc.name followed by the arguments.";
        ProcPcmdline "proc.pcmdline" Str None "Command line of the parent process.";
        ProcAcmdline "proc.acmdline" Str Ancestor "Command line of an ancestor; without index, any ancestor.";
        ProcCmdnargs "proc.cmdnargs" UInt None "Number of command-line arguments.";
        ProcCmdlenargs "proc.cmdlenargs" UInt None "Total characters of the arguments, not counting separators.";
        ProcExeline "proc.exeline" Str None "proc.exe followed by a space and the arguments.";
        ProcEnv "proc.env" Str OptKey "Environment as NAME=value pairs, or one variable's value with [NAME].";
        ProcAenv "proc.aenv" Str OptKey "Without argument or with [0], the environment (as proc.env); [n] that of ancestor n; [NAME] the first value of NAME among the ancestors, parent first.";
        ProcCwd "proc.cwd" Str None "Current working directory.";
        ProcLoginshellid "proc.loginshellid" UInt None "Pid of the oldest process whose name ends in sh, from the process up through its ancestors.";
        ProcTty "proc.tty" UInt None "Controlling terminal number; 0 when there is none.";
        ProcDuration "proc.duration" UInt None "Nanoseconds since the process started.";
        ProcPpidDuration "proc.ppid.duration" UInt None "Nanoseconds since the parent process started.";
        ProcPidTs "proc.pid.ts" UInt None "Start time of the process, in nanoseconds since the epoch.";
        ProcPpidTs "proc.ppid.ts" UInt None "Start time of the parent, in nanoseconds since the epoch.";
        ProcIsExeWritable "proc.is_exe_writable" Bool None "True when the executable was writable by the process's fsuid/fsgid (owner, group or other write bit, or CAP_DAC_OVERRIDE) on a file system mounted writable, at its exec; false for processes running before the sensor started.";
        ProcIsExeUpperLayer "proc.is_exe_upper_layer" Bool None "True when the executable lives in an overlayfs upper layer (added after the image).";
        ProcIsExeLowerLayer "proc.is_exe_lower_layer" Bool None "True when the executable lives in an overlayfs lower layer (from the image), from the kernel at its exec.";
        ProcIsExeFromMemfd "proc.is_exe_from_memfd" Bool None "True when the executable is an anonymous memfd file.";
        ProcIsSidLeader "proc.is_sid_leader" Bool None "True when the process leads its session (proc.sid = proc.pid).";
        ProcIsVpgidLeader "proc.is_vpgid_leader" Bool None "True when the process leads its process group (namespace view).";
        ProcIsPgidLeader "proc.is_pgid_leader" Bool None "True when the process leads its process group.";
        ProcExeIno "proc.exe_ino" UInt None "Inode of the executable file.";
        ProcExeInoCtime "proc.exe_ino.ctime" UInt None "Status-change time of the executable, nanoseconds since the epoch.";
        ProcExeInoMtime "proc.exe_ino.mtime" UInt None "Modification time of the executable, nanoseconds since the epoch.";
        ProcExeInoCtimeDurationProcStart "proc.exe_ino.ctime_duration_proc_start" UInt None "Nanoseconds from the executable's ctime to the process start.";
        ProcExeInoCtimeDurationPidnsStart "proc.exe_ino.ctime_duration_pidns_start" UInt None "Nanoseconds from the start of the PID namespace's init to the executable's ctime, when the namespace started first; 0 otherwise.";
        ProcPidnsInitStartTs "proc.pidns_init_start_ts" UInt None "Start time of the PID namespace's init, nanoseconds since the epoch.";
        ProcFdopencount "proc.fdopencount" UInt None "Number of open file descriptors.";
        ProcFdlimit "proc.fdlimit" UInt None "Soft limit on open file descriptors (RLIMIT_NOFILE), at the last exec or when first seen.";
        ProcVmsize "proc.vmsize" UInt None "Virtual memory size in KiB, at the last exec or when first seen.";
        ProcVmrss "proc.vmrss" UInt None "Resident memory in KiB, at the last exec or when first seen (the kernel's approximate counters).";
        ProcVmswap "proc.vmswap" UInt None "Swapped memory in KiB, at the last exec or when first seen.";
        ProcNthreads "proc.nthreads" UInt None "Number of live threads, leader included." unavailable "threads are not counted";
        ProcNchilds "proc.nchilds" UInt None "Number of live threads other than the leader." unavailable "threads are not counted";
        ProcStdinType "proc.stdin.type" Str None "Type of descriptor 0.";
        ProcStdoutType "proc.stdout.type" Str None "Type of descriptor 1.";
        ProcStderrType "proc.stderr.type" Str None "Type of descriptor 2.";
        ProcStdinName "proc.stdin.name" Str None "Name of descriptor 0.";
        ProcStdoutName "proc.stdout.name" Str None "Name of descriptor 1.";
        ProcStderrName "proc.stderr.name" Str None "Name of descriptor 2.";
        // --- thread
        ThreadTid "thread.tid" UInt None "Thread id (host namespace).";
        ThreadVtid "thread.vtid" UInt None "Thread id inside its PID namespace.";
        ThreadIsmain "thread.ismain" Bool None "True for the main thread of the process.";
        ThreadNametid "thread.nametid" Str None "Process name and thread id joined, e.g. bash12.";
        ThreadCapPermitted "thread.cap_permitted" Str None "Permitted capabilities, space-separated CAP_ names.";
        ThreadCapInheritable "thread.cap_inheritable" Str None "Inheritable capabilities, space-separated CAP_ names.";
        ThreadCapEffective "thread.cap_effective" Str None "Effective capabilities, space-separated CAP_ names.";
        ThreadCapAdded "thread.cap_added" Str None "Capabilities this event (a capset) added to the effective, permitted or inheritable set; empty for other events.";
        ThreadCgroups "thread.cgroups" Str None "The thread's cgroups as controller=path pairs: the default (v2) hierarchy as unified, and one v1 controller (memory, else pids or cpu), as at its exec or when first seen.";
        ThreadCgroup "thread.cgroup" Str Key "Cgroup path for one controller: thread.cgroup.unified, or the v1 controller thread.cgroups names (thread.cgroup.memory).";
        ThreadPfmajor "thread.pfmajor" UInt None "Major page faults of the process at its last exec or when first seen.";
        ThreadPfminor "thread.pfminor" UInt None "Minor page faults of the process at its last exec or when first seen.";
        ThreadVmsize "thread.vmsize" UInt None "Virtual memory of the main thread in KiB (as proc.vmsize); 0 for others.";
        ThreadVmrss "thread.vmrss" UInt None "Resident memory of the main thread in KiB (as proc.vmrss); 0 for others.";
        // --- fd: the file descriptor the event works on
        FdNum "fd.num" Int None "Descriptor number; -1 when a call that returns one failed.";
        FdType "fd.type" Str None "Descriptor kind: file, ipv4, ipv6, unix, netlink, memfd, pipe, event, signalfd, eventpoll, inotify, timerfd, bpf, userfaultfd, io_uring, pidfd, unknown.";
        FdTypechar "fd.typechar" Str None "Descriptor kind as one character: f, 4, 6, u (unix), n, m, p, e, s, l, i, t, b, u (userfaultfd), r, P, o.";
        FdName "fd.name" Str None "File path, or the connection tuple for sockets.";
        FdNameraw "fd.nameraw" Str None "File path as passed to the syscall, not made absolute.";
        FdDirectory "fd.directory" Str None "Directory containing the file.";
        FdFilename "fd.filename" Str None "File name without its directory.";
        FdIp "fd.ip" Ip None "Client or server IP address (matches either).";
        FdCip "fd.cip" Ip None "Client IP address.";
        FdSip "fd.sip" Ip None "Server IP address.";
        FdLip "fd.lip" Ip None "Local IP address.";
        FdRip "fd.rip" Ip None "Remote IP address.";
        FdPort "fd.port" UInt None "Client or server port (matches either).";
        FdCport "fd.cport" UInt None "Client port.";
        FdSport "fd.sport" UInt None "Server port.";
        FdLport "fd.lport" UInt None "Local port.";
        FdRport "fd.rport" UInt None "Remote port.";
        FdL4proto "fd.l4proto" Str None "Transport protocol of an IP socket: tcp, udp or raw.";
        FdSockfamily "fd.sockfamily" Str None "Socket family: ip or unix.";
        FdIsServer "fd.is_server" Bool None "True when this process is the server end of the socket (it accepted or listens); false for other sockets.";
        FdUid "fd.uid" Str None "Thread id and descriptor number joined, e.g. 12343 for fd 3 of thread 1234.";
        FdContainername "fd.containername" Str None "Container id and descriptor name joined by a colon.";
        FdContainerdirectory "fd.containerdirectory" Str None "Container id and directory joined by a colon.";
        FdProto "fd.proto" Str None "Client or server port as text (matches either); Falco resolves no service names either.";
        FdCproto "fd.cproto" Str None "Client port as text.";
        FdSproto "fd.sproto" Str None "Server port as text.";
        FdLproto "fd.lproto" Str None "Local port as text.";
        FdRproto "fd.rproto" Str None "Remote port as text.";
        FdNet "fd.net" Net None "Client or server address, compared with networks (matches either).";
        FdCnet "fd.cnet" Net None "Client address, compared with networks.";
        FdSnet "fd.snet" Net None "Server address, compared with networks.";
        FdLnet "fd.lnet" Net None "Local address, compared with networks.";
        FdRnet "fd.rnet" Net None "Remote address, compared with networks.";
        FdConnected "fd.connected" Bool None "True when the socket is connected.";
        FdNameChanged "fd.name_changed" Bool None "True when this event changed the descriptor's name (e.g. a new UDP peer).";
        FdCipName "fd.cip.name" Str None "DNS name of the client address.";
        FdSipName "fd.sip.name" Str None "DNS name of the server address.";
        FdLipName "fd.lip.name" Str None "DNS name of the local address.";
        FdRipName "fd.rip.name" Str None "DNS name of the remote address.";
        FdDev "fd.dev" UInt None "Device number of the file." unavailable "the device and inode of opened files are not captured";
        FdDevMajor "fd.dev.major" UInt None "Major device number of the file." unavailable "the device and inode of opened files are not captured";
        FdDevMinor "fd.dev.minor" UInt None "Minor device number of the file." unavailable "the device and inode of opened files are not captured";
        FdIno "fd.ino" UInt None "Inode number of the file." unavailable "the device and inode of opened files are not captured";
        FdTypes "fd.types" Str OptIndex list "Kinds of the descriptors the process has open, each once; [n] the kind of descriptor n.";
        FdIsUpperLayer "fd.is_upper_layer" Bool None "True when the file lives in an overlayfs upper layer." unavailable "the overlay layer of opened files is not captured";
        FdIsLowerLayer "fd.is_lower_layer" Bool None "True when the file lives in an overlayfs lower layer." unavailable "the overlay layer of opened files is not captured";
        // --- fs.path: paths of file syscalls
        FsPathName "fs.path.name" Str None "Absolute path the file syscall works on.";
        FsPathNameraw "fs.path.nameraw" Str None "Path the file syscall works on, as passed.";
        FsPathSource "fs.path.source" Str None "Absolute source path of two-path syscalls.";
        FsPathSourceraw "fs.path.sourceraw" Str None "Source path of two-path syscalls, as passed.";
        FsPathTarget "fs.path.target" Str None "Absolute target path of two-path syscalls.";
        FsPathTargetraw "fs.path.targetraw" Str None "Target path of two-path syscalls, as passed.";
        // --- user and group
        UserUid "user.uid" UInt None "User id.";
        UserName "user.name" Str None "User name.";
        UserHomedir "user.homedir" Str None "Home directory of the user.";
        UserShell "user.shell" Str None "Login shell of the user.";
        UserPrevUid "user.prev_uid" UInt None "Real user id before this event: differs from user.uid only on the set*uid call that changed it.";
        UserLoginuid "user.loginuid" Int None "Audit (login) user id; -1 when unset.";
        UserLoginname "user.loginname" Str None "Name of the audit (login) user.";
        GroupGid "group.gid" UInt None "Group id.";
        GroupName "group.name" Str None "Group name.";
        // --- container
        ContainerId "container.id" Str None "Short (12 characters) container id; 'host' outside containers.";
        ContainerFullId "container.full_id" Str None "Full container id; 'host' outside containers.";
        ContainerName "container.name" Str None "Container name.";
        ContainerImage "container.image" Str None "Image name with tag.";
        ContainerImageId "container.image.id" Str None "Image id.";
        ContainerImageRepository "container.image.repository" Str None "Image repository, without tag or digest.";
        ContainerImageTag "container.image.tag" Str None "Image tag.";
        ContainerImageDigest "container.image.digest" Str None "Image digest.";
        ContainerType "container.type" Str None "Runtime kind: docker, containerd, cri-o, podman...";
        ContainerPrivileged "container.privileged" Bool None "True for privileged containers.";
        ContainerMounts "container.mounts" Str None "All mounts, space-separated, each as source:dest:mode:rdrw:propagation.";
        ContainerMount "container.mount" Str IndexOrPath "One mount as source:dest:mode:rdrw:propagation, by index or source path (a glob; the first match); 'none' when no mount matches.";
        ContainerMountSource "container.mount.source" Str IndexOrPath "Source of a mount, by index or destination path (a glob); 'none' when no mount matches.";
        ContainerMountDest "container.mount.dest" Str IndexOrPath "Destination of a mount, by index or source path (a glob); 'none' when no mount matches.";
        ContainerMountMode "container.mount.mode" Str IndexOrPath "Mode of a mount as the runtime reports it (ro, z...), by index or source path (a glob); 'none' when no mount matches.";
        ContainerMountRdwr "container.mount.rdwr" Str IndexOrPath "Whether a mount is writable (true or false), by index or source path (a glob); 'none' when no mount matches.";
        ContainerMountPropagation "container.mount.propagation" Str IndexOrPath "Propagation of a mount (rprivate, rslave...), by index or source path (a glob); 'none' when no mount matches.";
        ContainerStartTs "container.start_ts" UInt None "Container start time, nanoseconds since the epoch.";
        ContainerDuration "container.duration" UInt None "Nanoseconds since the container started.";
        ContainerIp "container.ip" Ip None "Container IP address.";
        ContainerHostPid "container.host_pid" Bool None "True when the container shares the host PID namespace.";
        ContainerHostNetwork "container.host_network" Bool None "True when the container shares the host network namespace.";
        ContainerHostIpc "container.host_ipc" Bool None "True when the container shares the host IPC namespace.";
        ContainerLabel "container.label" Str Key "One container label, by key.";
        ContainerLabels "container.labels" Str None "All container labels as key:value pairs.";
        // --- k8s: pod metadata from the runtime
        K8sPodName "k8s.pod.name" Str None "Pod name.";
        K8sNsName "k8s.ns.name" Str None "Namespace of the pod.";
        K8sPodUid "k8s.pod.uid" Str None "Pod UID.";
        K8sPodId "k8s.pod.id" Str None "Pod UID (older name).";
        K8sPodSandboxId "k8s.pod.sandbox_id" Str None "Short id of the pod sandbox.";
        K8sPodFullSandboxId "k8s.pod.full_sandbox_id" Str None "Full id of the pod sandbox.";
        K8sPodLabel "k8s.pod.label" Str Key "One pod label, by key.";
        K8sPodLabels "k8s.pod.labels" Str None "All pod labels as key:value pairs.";
        K8sPodIp "k8s.pod.ip" Ip None "Pod IP address.";
        // --- sensor: the sensor itself, for rules that protect it
        SensorPid "sensor.pid" UInt None "Process id of this sensor: evt.arg.pid = val(sensor.pid) is a signal sent to it.";
    }
    k8s_audit_fields K8sAudit {
        // --- ka: a Kubernetes audit event (audit.k8s.io/v1 Event)
        KaAuditid "ka.auditid" Str None "The audit ID the API server gave the request (auditID).";
        KaStage "ka.stage" Str None "The stage of the request the event was written at (stage): RequestReceived, ResponseStarted, ResponseComplete or Panic.";
        KaAuthDecision "ka.auth.decision" Str None "The authorizer's decision, allow or forbid (annotation authorization.k8s.io/decision).";
        KaAuthReason "ka.auth.reason" Str None "Why the authorizer decided so (annotation authorization.k8s.io/reason).";
        KaAuthOpenshiftDecision "ka.auth.openshift.decision" Str None "OpenShift's authorization decision (annotation authorization.openshift.io/decision).";
        KaValidationsAdmissionPolicyFailure "ka.validations.admission.policy.failure" Str None "Why a validating admission policy failed the request (annotation validation.policy.admission.k8s.io/validation_failure).";
        KaSecurityPodViolations "ka.security.pod.violations" Str None "Which Pod Security Standards the pod violates (annotation pod-security.kubernetes.io/audit-violations).";
        KaAuthOpenshiftUsername "ka.auth.openshift.username" Str None "The user name OpenShift authenticated (annotation authentication.openshift.io/username).";
        KaUserName "ka.user.name" Str None "The user who made the request (user.username).";
        KaUserGroups "ka.user.groups" Str None list "The groups of the user who made the request (user.groups).";
        KaImpuserName "ka.impuser.name" Str None "The user the request impersonates (impersonatedUser.username).";
        KaVerb "ka.verb" Str None "The request's verb: get, list, watch, create, update, patch, delete... (verb).";
        KaUri "ka.uri" Str None "The request URI as the client sent it (requestURI).";
        KaUriParam "ka.uri.param" Str Key "One query parameter of the request URI, by name (its first value).";
        KaTargetName "ka.target.name" Str None "The name of the object the request acts on (objectRef.name).";
        KaTargetNamespace "ka.target.namespace" Str None "The namespace of the object the request acts on (objectRef.namespace).";
        KaTargetResource "ka.target.resource" Str None "The resource of the object the request acts on, e.g. pods (objectRef.resource).";
        KaTargetSubresource "ka.target.subresource" Str None "The subresource the request acts on, e.g. exec (objectRef.subresource).";
        KaTargetPodName "ka.target.pod.name" Str None "The name of the pod the request acts on: objectRef.name for the pods resource, else none.";
        KaReqBindingSubjects "ka.req.binding.subjects" Str None list "The subjects of the role binding in the request, each as its JSON (requestObject.subjects).";
        KaReqBindingSubjectsUserNames "ka.req.binding.subjects.user_names" Str None list "The names of the User subjects of the role binding in the request.";
        KaReqBindingSubjectsServiceaccountNames "ka.req.binding.subjects.serviceaccount_names" Str None list "The names of the ServiceAccount subjects of the role binding in the request.";
        KaReqBindingSubjectsServiceaccountNsNames "ka.req.binding.subjects.serviceaccount_ns_names" Str None list "The ServiceAccount subjects of the role binding in the request, as namespace:name.";
        KaReqBindingSubjectsGroupNames "ka.req.binding.subjects.group_names" Str None list "The names of the Group subjects of the role binding in the request.";
        KaReqBindingRole "ka.req.binding.role" Str None "The role the binding in the request refers to (requestObject.roleRef.name).";
        KaReqBindingSubjectHasName "ka.req.binding.subject.has_name" Str Key "True when a subject of the role binding in the request has the name given as argument.";
        KaReqConfigmapName "ka.req.configmap.name" Str None "The name of the configmap the request acts on (objectRef.name).";
        KaReqConfigmapObj "ka.req.configmap.obj" Str None "The data of the configmap in the request, as JSON (requestObject.data).";
        KaReqPodContainersArgs "ka.req.pod.containers.args" Str OptIndex list "The arguments of the pod's containers in the request; [n] the n-th container's.";
        KaReqPodContainersCommand "ka.req.pod.containers.command" Str OptIndex list "The commands of the pod's containers in the request; [n] the n-th container's.";
        KaReqPodContainersName "ka.req.pod.containers.name" Str OptIndex list "The names of the pod's containers in the request; [n] the n-th container's.";
        KaReqPodContainersImage "ka.req.pod.containers.image" Str OptIndex list "The images of the containers of the pod in the request; [n] the n-th container's.";
        KaReqContainerImage "ka.req.container.image" Str None "The image of the first container of the pod in the request.";
        KaReqPodContainersImageRepository "ka.req.pod.containers.image.repository" Str OptIndex list "The images of the pod's containers in the request without tag or digest; [n] the n-th container's.";
        KaReqContainerImageRepository "ka.req.container.image.repository" Str None "The image of the first container of the pod in the request without tag or digest.";
        KaReqPodHostIpc "ka.req.pod.host_ipc" Str None "Whether the pod in the request shares the host's IPC namespace (spec.hostIPC).";
        KaReqPodHostNetwork "ka.req.pod.host_network" Str None "Whether the pod in the request uses the host's network (spec.hostNetwork).";
        KaReqContainerHostNetwork "ka.req.container.host_network" Str None "Whether the pod in the request uses the host's network (spec.hostNetwork; older name).";
        KaReqPodHostPid "ka.req.pod.host_pid" Str None "Whether the pod in the request shares the host's PID namespace (spec.hostPID).";
        KaReqPodContainersHostPort "ka.req.pod.containers.host_port" Str OptIndex list "The host ports the pod's containers in the request ask for (hostPort, else containerPort); [n] the n-th container's.";
        KaReqPodContainersPrivileged "ka.req.pod.containers.privileged" Str OptIndex list "The privileged flags the pod's containers in the request set (securityContext.privileged); [n] the n-th container's.";
        KaReqContainerPrivileged "ka.req.container.privileged" Str None "True when any container of the pod in the request is privileged.";
        KaReqPodContainersAllowPrivilegeEscalation "ka.req.pod.containers.allow_privilege_escalation" Str OptIndex list "The allowPrivilegeEscalation settings of the pod's containers in the request; [n] the n-th container's.";
        KaReqPodContainersReadOnlyFs "ka.req.pod.containers.read_only_fs" Str OptIndex list "The readOnlyRootFilesystem settings of the pod's containers in the request; [n] the n-th container's.";
        KaReqPodRunAsUser "ka.req.pod.run_as_user" Str None "The pod's runAsUser in the request (spec.securityContext.runAsUser).";
        KaReqPodContainersRunAsUser "ka.req.pod.containers.run_as_user" Str OptIndex list "The runAsUser settings of the pod's containers in the request; [n] the n-th container's.";
        KaReqPodContainersEffRunAsUser "ka.req.pod.containers.eff_run_as_user" Str OptIndex list "The user each container of the pod in the request runs as: its runAsUser, else the pod's, else 0; [n] the n-th container's.";
        KaReqPodRunAsGroup "ka.req.pod.run_as_group" Str None "The pod's runAsGroup in the request (spec.securityContext.runAsGroup).";
        KaReqPodContainersRunAsGroup "ka.req.pod.containers.run_as_group" Str OptIndex list "The runAsGroup settings of the pod's containers in the request; [n] the n-th container's.";
        KaReqPodContainersEffRunAsGroup "ka.req.pod.containers.eff_run_as_group" Str OptIndex list "The group each container of the pod in the request runs as: its runAsGroup, else the pod's, else 0; [n] the n-th container's.";
        KaReqPodContainersProcMount "ka.req.pod.containers.proc_mount" Str OptIndex list "The procMount settings of the pod's containers in the request; [n] the n-th container's.";
        KaReqRoleRules "ka.req.role.rules" Str None list "The rules of the role in the request, each as its JSON (requestObject.rules).";
        KaReqRoleRulesApiGroups "ka.req.role.rules.apiGroups" Str OptIndex list "The API groups the rules of the role in the request name; [n] those of the n-th rule.";
        KaReqRoleRulesNonResourceURLs "ka.req.role.rules.nonResourceURLs" Str OptIndex list "The non-resource URLs the rules of the role in the request name; [n] those of the n-th rule.";
        KaReqRoleRulesVerbs "ka.req.role.rules.verbs" Str OptIndex list "The verbs the rules of the role in the request allow; [n] those of the n-th rule.";
        KaReqRoleRulesResources "ka.req.role.rules.resources" Str OptIndex list "The resources the rules of the role in the request name; [n] those of the n-th rule.";
        KaReqPodFsGroup "ka.req.pod.fs_group" Str None "The pod's fsGroup in the request (spec.securityContext.fsGroup).";
        KaReqPodSupplementalGroups "ka.req.pod.supplemental_groups" Str None list "The pod's supplemental groups in the request (spec.securityContext.supplementalGroups).";
        KaReqPodContainersAddCapabilities "ka.req.pod.containers.add_capabilities" Str OptIndex list "The capabilities the pod's containers in the request add (securityContext.capabilities.add); [n] the n-th container's.";
        KaReqServiceType "ka.req.service.type" Str None "The type of the service in the request (spec.type).";
        KaReqServicePorts "ka.req.service.ports" Str OptIndex list "The ports of the service in the request, each as its JSON; [n] the n-th.";
        KaReqPodVolumesHostpath "ka.req.pod.volumes.hostpath" Str OptIndex list "The host paths the pod's volumes in the request mount (hostPath.path); [n] the n-th volume's.";
        KaReqVolumeHostpath "ka.req.volume.hostpath" Str Key "True when a volume of the pod in the request mounts the host path given as argument (a trailing * matches a prefix), else false.";
        KaReqPodVolumesFlexvolumeDriver "ka.req.pod.volumes.flexvolume_driver" Str OptIndex list "The flexVolume drivers of the pod's volumes in the request; [n] the n-th volume's.";
        KaReqPodVolumesVolumeType "ka.req.pod.volumes.volume_type" Str OptIndex list "The types of the pod's volumes in the request (the key other than name: hostPath, secret...); [n] the n-th volume's.";
        KaRespName "ka.resp.name" Str None "The name of the object in the response (responseObject.metadata.name).";
        KaResponseCode "ka.response.code" Str None "The HTTP status code of the response (responseStatus.code).";
        KaResponseReason "ka.response.reason" Str None "The reason of the response status (responseStatus.reason).";
        KaUseragent "ka.useragent" Str None "The user agent of the client that made the request (userAgent).";
        KaSourceips "ka.sourceips" Str OptIndex list "The client addresses of the request, the nearest first (sourceIPs); [n] the n-th.";
        KaUserForbiddenRecent "ka.user.forbidden_recent" UInt None "Requests of the event's user answered 403 in the minute up to the event, it included (at most 1,000): counted by the sensor over the audit events it receives; not a field of Falco's plugin.";
        KaClusterName "ka.cluster.name" Str None "The name of the cluster, as the operator configured it for the audit source.";
        KaReqPodInitContainersName "ka.req.pod.initContainers.name" Str OptIndex list "The names of the pod's init containers in the request; [n] the n-th's.";
        KaReqPodInitContainersImage "ka.req.pod.initContainers.image" Str OptIndex list "The images of the pod's init containers in the request; [n] the n-th's.";
        KaReqPodInitContainersImageRepository "ka.req.pod.initContainers.image.repository" Str OptIndex list "The images without tag or digest of the pod's init containers in the request; [n] the n-th's.";
        KaReqPodInitContainersCommand "ka.req.pod.initContainers.command" Str OptIndex list "The commands of the pod's init containers in the request; [n] the n-th's.";
        KaReqPodInitContainersArgs "ka.req.pod.initContainers.args" Str OptIndex list "The arguments of the pod's init containers in the request; [n] the n-th's.";
        KaReqPodInitContainersPrivileged "ka.req.pod.initContainers.privileged" Str OptIndex list "The privileged flags of the pod's init containers in the request; [n] the n-th's.";
        KaReqPodInitContainersAllowPrivilegeEscalation "ka.req.pod.initContainers.allow_privilege_escalation" Str OptIndex list "The allowPrivilegeEscalation settings of the pod's init containers in the request; [n] the n-th's.";
        KaReqPodInitContainersReadOnlyFs "ka.req.pod.initContainers.read_only_fs" Str OptIndex list "The readOnlyRootFilesystem settings of the pod's init containers in the request; [n] the n-th's.";
        KaReqPodInitContainersRunAsUser "ka.req.pod.initContainers.run_as_user" Str OptIndex list "The runAsUser settings of the pod's init containers in the request; [n] the n-th's.";
        KaReqPodInitContainersEffRunAsUser "ka.req.pod.initContainers.eff_run_as_user" Str OptIndex list "The effective users (runAsUser, else the pod's, else 0) of the pod's init containers in the request; [n] the n-th's.";
        KaReqPodInitContainersRunAsGroup "ka.req.pod.initContainers.run_as_group" Str OptIndex list "The runAsGroup settings of the pod's init containers in the request; [n] the n-th's.";
        KaReqPodInitContainersEffRunAsGroup "ka.req.pod.initContainers.eff_run_as_group" Str OptIndex list "The effective groups (runAsGroup, else the pod's, else 0) of the pod's init containers in the request; [n] the n-th's.";
        KaReqPodInitContainersProcMount "ka.req.pod.initContainers.proc_mount" Str OptIndex list "The procMount settings of the pod's init containers in the request; [n] the n-th's.";
        KaReqPodInitContainersAddCapabilities "ka.req.pod.initContainers.add_capabilities" Str OptIndex list "The added capabilities of the pod's init containers in the request; [n] the n-th's.";
        KaReqPodInitContainersHostPort "ka.req.pod.initContainers.host_port" Str OptIndex list "The host ports of the pod's init containers in the request; [n] the n-th's.";
        KaReqPodEphemeralContainersName "ka.req.pod.ephemeralContainers.name" Str OptIndex list "The names of the pod's ephemeral containers in the request; [n] the n-th's.";
        KaReqPodEphemeralContainersImage "ka.req.pod.ephemeralContainers.image" Str OptIndex list "The images of the pod's ephemeral containers in the request; [n] the n-th's.";
        KaReqPodEphemeralContainersImageRepository "ka.req.pod.ephemeralContainers.image.repository" Str OptIndex list "The images without tag or digest of the pod's ephemeral containers in the request; [n] the n-th's.";
        KaReqPodEphemeralContainersCommand "ka.req.pod.ephemeralContainers.command" Str OptIndex list "The commands of the pod's ephemeral containers in the request; [n] the n-th's.";
        KaReqPodEphemeralContainersArgs "ka.req.pod.ephemeralContainers.args" Str OptIndex list "The arguments of the pod's ephemeral containers in the request; [n] the n-th's.";
        KaReqPodEphemeralContainersPrivileged "ka.req.pod.ephemeralContainers.privileged" Str OptIndex list "The privileged flags of the pod's ephemeral containers in the request; [n] the n-th's.";
        KaReqPodEphemeralContainersAllowPrivilegeEscalation "ka.req.pod.ephemeralContainers.allow_privilege_escalation" Str OptIndex list "The allowPrivilegeEscalation settings of the pod's ephemeral containers in the request; [n] the n-th's.";
        KaReqPodEphemeralContainersReadOnlyFs "ka.req.pod.ephemeralContainers.read_only_fs" Str OptIndex list "The readOnlyRootFilesystem settings of the pod's ephemeral containers in the request; [n] the n-th's.";
        KaReqPodEphemeralContainersRunAsUser "ka.req.pod.ephemeralContainers.run_as_user" Str OptIndex list "The runAsUser settings of the pod's ephemeral containers in the request; [n] the n-th's.";
        KaReqPodEphemeralContainersEffRunAsUser "ka.req.pod.ephemeralContainers.eff_run_as_user" Str OptIndex list "The effective users (runAsUser, else the pod's, else 0) of the pod's ephemeral containers in the request; [n] the n-th's.";
        KaReqPodEphemeralContainersRunAsGroup "ka.req.pod.ephemeralContainers.run_as_group" Str OptIndex list "The runAsGroup settings of the pod's ephemeral containers in the request; [n] the n-th's.";
        KaReqPodEphemeralContainersEffRunAsGroup "ka.req.pod.ephemeralContainers.eff_run_as_group" Str OptIndex list "The effective groups (runAsGroup, else the pod's, else 0) of the pod's ephemeral containers in the request; [n] the n-th's.";
        KaReqPodEphemeralContainersProcMount "ka.req.pod.ephemeralContainers.proc_mount" Str OptIndex list "The procMount settings of the pod's ephemeral containers in the request; [n] the n-th's.";
        KaReqPodEphemeralContainersAddCapabilities "ka.req.pod.ephemeralContainers.add_capabilities" Str OptIndex list "The added capabilities of the pod's ephemeral containers in the request; [n] the n-th's.";
        // --- jevt: the audit event as JSON
        JevtTime "jevt.time" Str None "The audit event's time (UTC) as HH:MM:SS.nanoseconds.";
        JevtTimeIso8601 "jevt.time.iso8601" Str None "The audit event's time in ISO 8601 (UTC).";
        JevtRawtime "jevt.rawtime" UInt None "The audit event's time in nanoseconds since the epoch.";
        JevtValue "jevt.value" Str Key "The value at a JSON pointer in the audit event (jevt.value[/objectRef/name]), as text; objects and lists as JSON.";
        JevtObj "jevt.obj" Str None "The whole audit event as JSON.";
    }
}

impl Field {
    /// The field's registry entry.
    pub fn info(self) -> &'static FieldInfo {
        &FIELDS[self as usize]
    }

    /// The field's full name.
    pub fn name(self) -> &'static str {
        self.info().name
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Looks a field up by its exact registered name.
pub fn by_name(name: &str) -> Option<Field> {
    static INDEX: std::sync::OnceLock<std::collections::HashMap<&'static str, Field>> = std::sync::OnceLock::new();
    INDEX.get_or_init(|| FIELDS.iter().map(|f| (f.name, f.field)).collect()).get(name).copied()
}

/// Result of resolving a field name as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The registry entry.
    pub id: Field,
    /// The argument, when one was given.
    pub arg: Option<FieldArg>,
}

/// The configuration's `static_fields`, which `static.NAME` reads.
static STATIC_FIELDS: std::sync::RwLock<BTreeMap<String, String>> = std::sync::RwLock::new(BTreeMap::new());

/// Sets the values `static.NAME` gives, from now on.
pub fn set_static_fields(fields: BTreeMap<String, String>) {
    *STATIC_FIELDS.write().unwrap_or_else(std::sync::PoisonError::into_inner) = fields;
}

/// The value of `static.NAME` for `arg` (the name), if configured.
pub fn static_value(arg: Option<&FieldArg>) -> Option<super::Value<'static>> {
    let Some(FieldArg::Key(name)) = arg else { return None };
    let fields = STATIC_FIELDS.read().unwrap_or_else(std::sync::PoisonError::into_inner);
    fields.get(name.as_str()).map(|v| super::Value::Str(v.clone().into()))
}

/// Looks up a field as written (`name` without brackets, `bracket` its `[...]` argument).
/// Suffix forms are understood: `evt.arg.flags`, `k8s.pod.label.app`, `evt.type.is.open`.
pub fn resolve(name: &str, bracket: Option<&str>) -> Result<Resolved, String> {
    if let Some(id) = by_name(name) {
        return check_arg(id, bracket.map(str::to_owned));
    }
    // Dotted-suffix argument: the longest registered prefix that takes one.
    let mut cut = name.len();
    while let Some(dot) = name[..cut].rfind('.') {
        let (base, rest) = (&name[..dot], &name[dot + 1..]);
        if let Some(id) = by_name(base)
            && matches!(id.info().arg, ArgKind::Key | ArgKind::EventArg | ArgKind::OptKey)
            && !rest.is_empty()
        {
            if bracket.is_some() {
                return Err(format!("field '{name}' takes no further argument"));
            }
            return check_arg(id, Some(rest.to_owned()));
        }
        cut = dot;
    }
    let hint = suggest(name).map(|s| format!("; did you mean '{s}'?")).unwrap_or_default();
    Err(format!("unknown field '{name}'{hint}"))
}

fn check_arg(id: Field, arg: Option<String>) -> Result<Resolved, String> {
    let info = id.info();
    let arg = match (info.arg, arg) {
        (ArgKind::None, None) => None,
        (ArgKind::None, Some(_)) => return Err(format!("field '{}' takes no argument", info.name)),
        (ArgKind::Ancestor | ArgKind::OptIndex, None) | (ArgKind::OptKey, None) => None,
        (ArgKind::Ancestor | ArgKind::OptIndex, Some(a)) => match a.parse::<u32>() {
            Ok(n) => Some(FieldArg::Index(n)),
            Err(_) => {
                return Err(format!("field '{}' needs a numeric index, not '{a}'", info.name));
            }
        },
        (ArgKind::Key | ArgKind::EventArg, None) => {
            return Err(format!("field '{}' needs an argument, e.g. {}[x] or {}.x", info.name, info.name, info.name));
        }
        (ArgKind::IndexOrPath, None) => {
            return Err(format!(
                "field '{}' needs an index or a path, e.g. {}[0] or {}[/etc]",
                info.name, info.name, info.name
            ));
        }
        (ArgKind::EventArg | ArgKind::IndexOrPath, Some(a)) => match a.parse::<u32>() {
            Ok(n) => Some(FieldArg::Index(n)),
            Err(_) => Some(FieldArg::Key(a)),
        },
        (ArgKind::Key | ArgKind::OptKey, Some(a)) => Some(FieldArg::Key(a)),
    };
    if id == Field::EvtAbspath
        && let Some(FieldArg::Key(k)) = &arg
        && !matches!(k.as_str(), "src" | "dst")
    {
        return Err(format!("field 'evt.abspath' takes src or dst, not '{k}'"));
    }
    Ok(Resolved { id, arg })
}

/// The effective type of a field with its argument (event arguments that hold flags are
/// typed as flags, so that `contains` tests a flag).
pub fn effective_type(r: &Resolved) -> FieldType {
    let info = r.id.info();
    if matches!(r.id, Field::EvtArg)
        && let Some(FieldArg::Key(k)) = &r.arg
        && FLAG_ARGS.contains(&k.as_str())
    {
        return FieldType::Flags;
    }
    info.ty
}

/// Event-argument names whose values are flag sets.
const FLAG_ARGS: [&str; 7] = ["flags", "request", "domain", "mode", "prot", "resolve", "nstype"];

/// Fields that stand for either end of a connection (`fd.ip` is the client or the server
/// address); an event supplies them as a list of both.
pub const EITHER_END: [Field; 4] = [Field::FdIp, Field::FdNet, Field::FdPort, Field::FdProto];

/// True when a field yields several values of which any may match: an ancestor field
/// without index (all ancestors) or an either-end field.
pub fn is_multi(r: &Resolved) -> bool {
    let info = r.id.info();
    (info.arg == ArgKind::Ancestor && r.arg.is_none()) || EITHER_END.contains(&r.id)
}

/// The registered field closest to `name` by edit distance, if close enough.
pub fn suggest(name: &str) -> Option<&'static str> {
    FIELDS
        .iter()
        .map(|f| (edit_distance(name, f.name), f.name))
        .filter(|(d, _)| *d <= 3)
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The field list as text, one field a line (for `sensor list-fields`); fields the sensor
/// does not supply end with `(unavailable: reason)`.
pub fn list_text() -> String {
    let width = FIELDS.iter().map(|f| f.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for f in FIELDS {
        let arg = match f.arg {
            ArgKind::None => String::new(),
            k => format!(" [{}]", k.name()),
        };
        let availability = match f.availability {
            Availability::Supplied => String::new(),
            Availability::Unavailable(why) => format!(" (unavailable: {why})"),
        };
        let source = match f.scope {
            FieldScope::K8sAudit => " (k8s_audit events)",
            FieldScope::Any | FieldScope::Syscall => "",
        };
        let ty = if f.list { format!("{} (list)", f.ty.name()) } else { f.ty.name().to_owned() };
        out.push_str(&format!("{:width$}  {ty:8} {}{arg}{source}{availability}\n", f.name, f.desc));
    }
    out
}

/// The field list as a JSON array of `{name, type, arg, desc, sources, available, list}` (the
/// event sources that supply it; whether it is a list field), with `unavailable` (the reason) for fields the sensor does
/// not supply (for `sensor list-fields --json`).
pub fn list_json() -> serde_json::Value {
    serde_json::Value::Array(
        FIELDS
            .iter()
            .map(|f| {
                let mut entry = serde_json::json!({
                    "name": f.name, "type": f.ty.name(), "arg": f.arg.name(), "desc": f.desc,
                    "sources": f.scope.sources(), "available": f.availability == Availability::Supplied,
                    "list": f.list,
                });
                if let Availability::Unavailable(why) = f.availability {
                    entry["unavailable"] = why.into();
                }
                entry
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_described() {
        let mut names: Vec<_> = FIELDS.iter().map(|f| f.name).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(n, names.len(), "duplicate field names");
        assert!(FIELDS.iter().all(|f| !f.desc.is_empty() && f.desc.ends_with('.')));
        assert!(FIELDS.iter().enumerate().all(|(i, f)| f.field as usize == i && by_name(f.name) == Some(f.field)));
    }

    #[test]
    fn resolves_argument_forms() {
        let r = resolve("evt.arg.flags", None).unwrap();
        assert_eq!(r.id.info().name, "evt.arg");
        assert_eq!(r.arg, Some(FieldArg::Key("flags".into())));
        assert_eq!(effective_type(&r), FieldType::Flags);
        let r = resolve("evt.arg", Some("0")).unwrap();
        assert_eq!(r.arg, Some(FieldArg::Index(0)));
        let r = resolve("proc.aname", Some("2")).unwrap();
        assert_eq!(r.arg, Some(FieldArg::Index(2)));
        assert!(is_multi(&resolve("proc.aname", None).unwrap()));
        let r = resolve("k8s.pod.label.app", None).unwrap();
        assert_eq!((r.id.info().name, r.arg), ("k8s.pod.label", Some(FieldArg::Key("app".into()))));
        let r = resolve("k8s.pod.label", Some("app.kubernetes.io/name")).unwrap();
        assert_eq!(r.arg, Some(FieldArg::Key("app.kubernetes.io/name".into())));
        assert!(resolve("proc.aname", Some("x")).is_err());
        assert!(resolve("proc.name", Some("1")).is_err());
        assert!(resolve("evt.arg", None).is_err());
        assert_eq!(resolve("evt.abspath.src", None).unwrap().arg, Some(FieldArg::Key("src".into())));
        assert!(resolve("evt.abspath.from", None).unwrap_err().contains("takes src or dst"));
        let e = resolve("proc.nme", None).unwrap_err();
        assert!(e.contains("did you mean 'proc.name'"), "{e}");
    }

    #[test]
    fn mount_fields_take_an_index_or_a_path_in_brackets() {
        // The longer registered names win over `container.mount` with a dotted key.
        for name in [
            "container.mount",
            "container.mount.source",
            "container.mount.dest",
            "container.mount.mode",
            "container.mount.rdwr",
            "container.mount.propagation",
        ] {
            let r = resolve(name, Some("/var/run/docker.sock")).unwrap();
            assert_eq!((r.id.info().name, r.arg), (name, Some(FieldArg::Key("/var/run/docker.sock".into()))));
            assert_eq!(resolve(name, Some("1")).unwrap().arg, Some(FieldArg::Index(1)), "{name}");
            let e = resolve(name, None).unwrap_err();
            assert!(e.contains("needs an index or a path"), "{e}");
        }
        let r = resolve("container.mount", Some("/usr/local/*")).unwrap();
        assert_eq!(r.arg, Some(FieldArg::Key("/usr/local/*".into())));
        // Paths hold dots, so no dotted-suffix form.
        let e = resolve("container.mount.etc", None).unwrap_err();
        assert!(e.starts_with("unknown field 'container.mount.etc'"), "{e}");
        assert!(resolve("container.mounts", Some("0")).is_err());
    }

    #[test]
    fn fields_of_the_sensor_and_of_changes_are_registered() {
        for (name, ty) in
            [("sensor.pid", FieldType::UInt), ("user.prev_uid", FieldType::UInt), ("thread.cap_added", FieldType::Str)]
        {
            assert_eq!(by_name(name).map(|id| id.info().ty), Some(ty), "{name}");
        }
        assert_eq!(effective_type(&resolve("evt.arg.nstype", None).unwrap()), FieldType::Flags);
    }

    #[test]
    fn lists_render() {
        let text = list_text();
        let line = |name: &str| text.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_default();
        assert!(line("proc.name").ends_with("at most 15 characters)."), "{}", line("proc.name"));
        let unavailable = "(unavailable: the device and inode of opened files are not captured)";
        assert!(line("fd.ino").ends_with(unavailable), "{}", line("fd.ino"));
        let json = list_json();
        assert_eq!(json.as_array().unwrap().len(), FIELDS.len());
        let ino = json.as_array().unwrap().iter().find(|f| f["name"] == "fd.ino").unwrap();
        let reason = "the device and inode of opened files are not captured";
        assert_eq!((&ino["available"], &ino["unavailable"]), (&false.into(), &reason.into()));
        // List fields say so, as Falco's field lists do.
        assert!(line("fd.types").contains(" string (list) "), "{}", line("fd.types"));
        assert!(!line("proc.name").contains("(list)"));
        let groups = json.as_array().unwrap().iter().find(|f| f["name"] == "ka.user.groups").unwrap();
        assert_eq!(groups["list"], true);
    }
}
