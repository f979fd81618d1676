//! The field registry: every field a condition or an output may name, with its type, the
//! kind of argument it takes and a one-line description. One table; everything else
//! (checker, `list-fields`, typed JSON output, test events) reads it.

use std::fmt;

/// Index of a field in [`FIELDS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldId(pub u16);

impl FieldId {
    /// The field's registry entry.
    pub fn info(self) -> &'static FieldInfo {
        &FIELDS[usize::from(self.0)]
    }
}

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

/// One registry entry.
#[derive(Debug, PartialEq, Eq)]
pub struct FieldInfo {
    /// Full name, e.g. `proc.name`.
    pub name: &'static str,
    /// Value type.
    pub ty: FieldType,
    /// Accepted argument.
    pub arg: ArgKind,
    /// One line, in the project's words.
    pub desc: &'static str,
}

macro_rules! fields {
    ($( $name:literal $ty:ident $arg:ident $desc:literal ;)*) => {
        /// Every supported field.
        pub static FIELDS: &[FieldInfo] = &[
            $( FieldInfo { name: $name, ty: FieldType::$ty, arg: ArgKind::$arg, desc: $desc }, )*
        ];
    };
}

fields! {
    // --- evt: the event itself
    "evt.num" UInt None "Sequence number of the event.";
    "evt.time" Str None "Event time as HH:MM:SS.nanoseconds.";
    "evt.time.s" Str None "Event time as HH:MM:SS.";
    "evt.time.iso8601" Str None "Event time in ISO 8601 (UTC) with nanoseconds.";
    "evt.datetime" Str None "Event date and time with nanoseconds.";
    "evt.datetime.s" Str None "Event date and time to the second.";
    "evt.rawtime" UInt None "Event time in nanoseconds since the epoch.";
    "evt.rawtime.s" UInt None "Whole seconds of the event time since the epoch.";
    "evt.rawtime.ns" UInt None "Nanosecond part of the event time.";
    "evt.reltime" UInt None "Nanoseconds since the sensor started.";
    "evt.type" Str None "Event (syscall) name, e.g. openat.";
    "evt.type.is" UInt Key "1 when the event has the type given as suffix (evt.type.is.open), else 0.";
    "syscall.type" Str None "Syscall name; unset for events that are not syscalls.";
    "evt.dir" Str None "Direction: '<' (exit). Enter events are not delivered.";
    "evt.category" Str None "Broad category of the event: file, net, process, ipc, memory...";
    "evt.cpu" UInt None "CPU the event happened on.";
    "evt.args" Str None "All event arguments rendered as name=value pairs.";
    "evt.info" Str None "Same text as evt.args.";
    "evt.arg" Str EventArg "One event argument rendered as text, by name (evt.arg.fd) or position (evt.arg[0]).";
    "evt.rawarg" Str EventArg "One event argument as its raw value, by name.";
    "evt.res" Str None "Return value as text: SUCCESS or an errno name such as ENOENT.";
    "evt.rawres" Int None "Return value as a number (negative errno on failure).";
    "evt.failed" Bool None "True when the syscall returned an error.";
    "evt.buffer" Bytes None "Data buffer of I/O events.";
    "evt.buflen" UInt None "Length of the data buffer of I/O events.";
    "evt.is_io" Bool None "True for events that read or write a file descriptor.";
    "evt.is_io_read" Bool None "True for events that read from a file descriptor.";
    "evt.is_io_write" Bool None "True for events that write to a file descriptor.";
    "evt.io_dir" Str None "'r' for reads, 'w' for writes.";
    "evt.is_open_read" Bool None "True for opens that request read access.";
    "evt.is_open_write" Bool None "True for opens that request write access.";
    "evt.is_open_exec" Bool None "True for opens that create a file with execute permission.";
    "evt.is_open_create" Bool None "True for opens that create a file.";
    "evt.abspath" Str OptKey "Absolute path from a dirfd and a relative name (suffix src or dst for two-path syscalls).";
    "evt.count" UInt None "Always 1; handy for counting.";
    "evt.source" Str None "Source that produced the event (syscall).";
    "evt.hostname" Str None "Host name of the machine (FALCO_HOSTNAME overrides it).";
    "evt.is_async" Bool None "True for events not produced by a syscall.";
    "evt.latency" UInt None "Nanoseconds between syscall entry and exit.";
    // --- proc: the process
    "proc.pid" UInt None "Process id (host namespace).";
    "proc.ppid" UInt None "Parent process id (host namespace).";
    "proc.apid" UInt Ancestor "Pid of an ancestor: [0] self, [1] parent...; without index, any ancestor.";
    "proc.vpid" UInt None "Process id inside its PID namespace.";
    "proc.pvpid" UInt None "Parent process id inside its PID namespace.";
    "proc.sid" UInt None "Session id.";
    "proc.sname" Str None "Name of the session leader.";
    "proc.sid.exe" Str None "argv[0] of the session leader.";
    "proc.sid.exepath" Str None "Executable path of the session leader.";
    "proc.vpgid" UInt None "Process group id inside its PID namespace.";
    "proc.vpgid.name" Str None "Name of the process group leader (namespace view).";
    "proc.vpgid.exe" Str None "argv[0] of the process group leader (namespace view).";
    "proc.vpgid.exepath" Str None "Executable path of the process group leader (namespace view).";
    "proc.pgid" UInt None "Process group id (host namespace).";
    "proc.pgid.name" Str None "Name of the process group leader.";
    "proc.pgid.exe" Str None "argv[0] of the process group leader.";
    "proc.pgid.exepath" Str None "Executable path of the process group leader.";
    "proc.name" Str None "Process name (the kernel's comm, at most 15 characters).";
    "proc.pname" Str None "Name of the parent process.";
    "proc.aname" Str Ancestor "Name of an ancestor: [0] self, [1] parent...; without index, any ancestor.";
    "proc.exe" Str None "argv[0] as passed to execve.";
    "proc.pexe" Str None "argv[0] of the parent process.";
    "proc.aexe" Str Ancestor "argv[0] of an ancestor; without index, any ancestor.";
    "proc.exepath" Str None "Resolved path of the executable file.";
    "proc.pexepath" Str None "Resolved executable path of the parent process.";
    "proc.aexepath" Str Ancestor "Resolved executable path of an ancestor; without index, any ancestor.";
    "proc.args" Str None "Command-line arguments after argv[0], space-separated.";
    "proc.aargs" Str Ancestor "Arguments of an ancestor; without index, any ancestor.";
    "proc.cmdline" Str None "proc.name followed by the arguments.";
    "proc.pcmdline" Str None "Command line of the parent process.";
    "proc.acmdline" Str Ancestor "Command line of an ancestor; without index, any ancestor.";
    "proc.cmdnargs" UInt None "Number of command-line arguments.";
    "proc.cmdlenargs" UInt None "Total characters of the arguments, not counting separators.";
    "proc.exeline" Str None "proc.exe followed by the arguments.";
    "proc.env" Str OptKey "Environment as NAME=value pairs, or one variable's value with [NAME].";
    "proc.aenv" Str OptKey "Environment of ancestors; [NAME] looks a variable up along the ancestry.";
    "proc.cwd" Str None "Current working directory.";
    "proc.loginshellid" UInt None "Pid of the oldest shell among the ancestors.";
    "proc.tty" UInt None "Controlling terminal number; 0 when there is none.";
    "proc.duration" UInt None "Nanoseconds since the process started.";
    "proc.ppid.duration" UInt None "Nanoseconds since the parent process started.";
    "proc.pid.ts" UInt None "Start time of the process, in nanoseconds since the epoch.";
    "proc.ppid.ts" UInt None "Start time of the parent, in nanoseconds since the epoch.";
    "proc.is_exe_writable" Bool None "True when the executable is writable by the user who ran it.";
    "proc.is_exe_upper_layer" Bool None "True when the executable lives in an overlayfs upper layer (added after the image).";
    "proc.is_exe_lower_layer" Bool None "True when the executable lives in an overlayfs lower layer (from the image).";
    "proc.is_exe_from_memfd" Bool None "True when the executable is an anonymous memfd file.";
    "proc.is_sid_leader" Bool None "True when the process leads its session.";
    "proc.is_vpgid_leader" Bool None "True when the process leads its process group (namespace view).";
    "proc.is_pgid_leader" Bool None "True when the process leads its process group.";
    "proc.exe_ino" UInt None "Inode of the executable file.";
    "proc.exe_ino.ctime" UInt None "Status-change time of the executable, nanoseconds since the epoch.";
    "proc.exe_ino.mtime" UInt None "Modification time of the executable, nanoseconds since the epoch.";
    "proc.exe_ino.ctime_duration_proc_start" UInt None "Nanoseconds from the executable's ctime to the process start.";
    "proc.exe_ino.ctime_duration_pidns_start" UInt None "Nanoseconds from the PID namespace start to the executable's ctime.";
    "proc.pidns_init_start_ts" UInt None "Start time of the PID namespace's init, nanoseconds since the epoch.";
    "proc.fdopencount" UInt None "Number of open file descriptors.";
    "proc.fdlimit" UInt None "Limit on open file descriptors.";
    "proc.vmsize" UInt None "Virtual memory size in KiB.";
    "proc.vmrss" UInt None "Resident memory in KiB.";
    "proc.vmswap" UInt None "Swapped memory in KiB.";
    "proc.nthreads" UInt None "Number of live threads, leader included.";
    "proc.nchilds" UInt None "Number of live threads other than the leader.";
    "proc.stdin.type" Str None "Type of descriptor 0.";
    "proc.stdout.type" Str None "Type of descriptor 1.";
    "proc.stderr.type" Str None "Type of descriptor 2.";
    "proc.stdin.name" Str None "Name of descriptor 0.";
    "proc.stdout.name" Str None "Name of descriptor 1.";
    "proc.stderr.name" Str None "Name of descriptor 2.";
    // --- thread
    "thread.tid" UInt None "Thread id (host namespace).";
    "thread.vtid" UInt None "Thread id inside its PID namespace.";
    "thread.ismain" Bool None "True for the main thread of the process.";
    "thread.nametid" Str None "Process name and thread id joined, e.g. bash12.";
    "thread.cap_permitted" Str None "Permitted capabilities, space-separated CAP_ names.";
    "thread.cap_inheritable" Str None "Inheritable capabilities, space-separated CAP_ names.";
    "thread.cap_effective" Str None "Effective capabilities, space-separated CAP_ names.";
    "thread.cap_added" Str None "Capabilities this event (a capset) added to the effective, permitted or inheritable set; empty for other events.";
    "thread.cgroups" Str None "All cgroups of the thread as subsystem=path pairs.";
    "thread.cgroup" Str Key "Cgroup path for one subsystem, e.g. thread.cgroup.cpuacct.";
    "thread.pfmajor" UInt None "Major page faults since the thread started.";
    "thread.pfminor" UInt None "Minor page faults since the thread started.";
    "thread.vmsize" UInt None "Virtual memory of the main thread in KiB; 0 for others.";
    "thread.vmrss" UInt None "Resident memory of the main thread in KiB; 0 for others.";
    // --- fd: the file descriptor the event works on
    "fd.num" Int None "Descriptor number; -1 when the syscall failed.";
    "fd.type" Str None "Descriptor kind: file, directory, ipv4, ipv6, unix, pipe, event, signalfd, eventpoll, inotify, memfd...";
    "fd.typechar" Str None "Descriptor kind as one character: f, 4, 6, u, p, e, s, l, i, b, r, m, o.";
    "fd.name" Str None "File path, or the connection tuple for sockets.";
    "fd.nameraw" Str None "File path as passed to the syscall, not made absolute.";
    "fd.directory" Str None "Directory containing the file.";
    "fd.filename" Str None "File name without its directory.";
    "fd.ip" Ip None "Client or server IP address (matches either).";
    "fd.cip" Ip None "Client IP address.";
    "fd.sip" Ip None "Server IP address.";
    "fd.lip" Ip None "Local IP address.";
    "fd.rip" Ip None "Remote IP address.";
    "fd.port" UInt None "Client or server port (matches either).";
    "fd.cport" UInt None "Client port.";
    "fd.sport" UInt None "Server port.";
    "fd.lport" UInt None "Local port.";
    "fd.rport" UInt None "Remote port.";
    "fd.l4proto" Str None "Transport protocol: tcp, udp, icmp or raw.";
    "fd.sockfamily" Str None "Socket family: ip or unix.";
    "fd.is_server" Bool None "True when this process is the server end of the connection.";
    "fd.uid" Str None "Descriptor number and thread id joined, unique per thread.";
    "fd.containername" Str None "Container id and descriptor name joined.";
    "fd.containerdirectory" Str None "Container id and directory joined.";
    "fd.proto" Str None "Client or server protocol name (matches either).";
    "fd.cproto" Str None "Client protocol name.";
    "fd.sproto" Str None "Server protocol name.";
    "fd.lproto" Str None "Local protocol name.";
    "fd.rproto" Str None "Remote protocol name.";
    "fd.net" Net None "Client or server address, compared with networks (matches either).";
    "fd.cnet" Net None "Client address, compared with networks.";
    "fd.snet" Net None "Server address, compared with networks.";
    "fd.lnet" Net None "Local address, compared with networks.";
    "fd.rnet" Net None "Remote address, compared with networks.";
    "fd.connected" Bool None "True when the socket is connected.";
    "fd.name_changed" Bool None "True when this event changed the descriptor's name (e.g. a new UDP peer).";
    "fd.cip.name" Str None "DNS name of the client address.";
    "fd.sip.name" Str None "DNS name of the server address.";
    "fd.lip.name" Str None "DNS name of the local address.";
    "fd.rip.name" Str None "DNS name of the remote address.";
    "fd.dev" UInt None "Device number of the file.";
    "fd.dev.major" UInt None "Major device number of the file.";
    "fd.dev.minor" UInt None "Minor device number of the file.";
    "fd.ino" UInt None "Inode number of the file.";
    "fd.types" Str OptIndex "Kinds of the process's descriptors; [n] for descriptor n.";
    "fd.is_upper_layer" Bool None "True when the file lives in an overlayfs upper layer.";
    "fd.is_lower_layer" Bool None "True when the file lives in an overlayfs lower layer.";
    // --- fs.path: paths of file syscalls
    "fs.path.name" Str None "Absolute path the file syscall works on.";
    "fs.path.nameraw" Str None "Path the file syscall works on, as passed.";
    "fs.path.source" Str None "Absolute source path of two-path syscalls.";
    "fs.path.sourceraw" Str None "Source path of two-path syscalls, as passed.";
    "fs.path.target" Str None "Absolute target path of two-path syscalls.";
    "fs.path.targetraw" Str None "Target path of two-path syscalls, as passed.";
    // --- user and group
    "user.uid" UInt None "User id.";
    "user.name" Str None "User name.";
    "user.homedir" Str None "Home directory of the user.";
    "user.shell" Str None "Login shell of the user.";
    "user.prev_uid" UInt None "Real user id before this event: differs from user.uid only on the set*uid call that changed it.";
    "user.loginuid" Int None "Audit (login) user id; -1 when unset.";
    "user.loginname" Str None "Name of the audit (login) user.";
    "group.gid" UInt None "Group id.";
    "group.name" Str None "Group name.";
    // --- container
    "container.id" Str None "Short (12 characters) container id; 'host' outside containers.";
    "container.full_id" Str None "Full container id; 'host' outside containers.";
    "container.name" Str None "Container name.";
    "container.image" Str None "Image name with tag.";
    "container.image.id" Str None "Image id.";
    "container.image.repository" Str None "Image repository, without tag or digest.";
    "container.image.tag" Str None "Image tag.";
    "container.image.digest" Str None "Image digest.";
    "container.type" Str None "Runtime kind: docker, containerd, cri-o, podman...";
    "container.privileged" Bool None "True for privileged containers.";
    "container.mounts" Str None "All mounts, space-separated, each as source:dest:mode:rdrw:propagation.";
    "container.mount" Str IndexOrPath "One mount as source:dest:mode:rdrw:propagation, by index or source path (a glob; the first match); 'none' when no mount matches.";
    "container.mount.source" Str IndexOrPath "Source of a mount, by index or destination path (a glob); 'none' when no mount matches.";
    "container.mount.dest" Str IndexOrPath "Destination of a mount, by index or source path (a glob); 'none' when no mount matches.";
    "container.mount.mode" Str IndexOrPath "Mode of a mount as the runtime reports it (ro, z...), by index or source path (a glob); 'none' when no mount matches.";
    "container.mount.rdwr" Str IndexOrPath "Whether a mount is writable (true or false), by index or source path (a glob); 'none' when no mount matches.";
    "container.mount.propagation" Str IndexOrPath "Propagation of a mount (rprivate, rslave...), by index or source path (a glob); 'none' when no mount matches.";
    "container.start_ts" UInt None "Container start time, nanoseconds since the epoch.";
    "container.duration" UInt None "Nanoseconds since the container started.";
    "container.ip" Ip None "Container IP address.";
    "container.host_pid" Bool None "True when the container shares the host PID namespace.";
    "container.host_network" Bool None "True when the container shares the host network namespace.";
    "container.host_ipc" Bool None "True when the container shares the host IPC namespace.";
    "container.label" Str Key "One container label, by key.";
    "container.labels" Str None "All container labels as key:value pairs.";
    // --- k8s: pod metadata from the runtime
    "k8s.pod.name" Str None "Pod name.";
    "k8s.ns.name" Str None "Namespace of the pod.";
    "k8s.pod.uid" Str None "Pod UID.";
    "k8s.pod.id" Str None "Pod UID (older name).";
    "k8s.pod.sandbox_id" Str None "Short id of the pod sandbox.";
    "k8s.pod.full_sandbox_id" Str None "Full id of the pod sandbox.";
    "k8s.pod.label" Str Key "One pod label, by key.";
    "k8s.pod.labels" Str None "All pod labels as key:value pairs.";
    "k8s.pod.ip" Ip None "Pod IP address.";
    // --- sensor: the sensor itself, for rules that protect it
    "sensor.pid" UInt None "Process id of this sensor: evt.arg.pid = val(sensor.pid) is a signal sent to it.";
}

/// Looks a field up by its exact registered name.
pub fn by_name(name: &str) -> Option<FieldId> {
    static INDEX: std::sync::OnceLock<std::collections::HashMap<&'static str, FieldId>> = std::sync::OnceLock::new();
    INDEX
        .get_or_init(|| {
            FIELDS.iter().enumerate().map(|(i, f)| (f.name, FieldId(u16::try_from(i).unwrap_or(u16::MAX)))).collect()
        })
        .get(name)
        .copied()
}

/// Result of resolving a field name as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The registry entry.
    pub id: FieldId,
    /// The argument, when one was given.
    pub arg: Option<FieldArg>,
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

fn check_arg(id: FieldId, arg: Option<String>) -> Result<Resolved, String> {
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
    Ok(Resolved { id, arg })
}

/// The effective type of a field with its argument (event arguments that hold flags are
/// typed as flags, so that `contains` tests a flag).
pub fn effective_type(r: &Resolved) -> FieldType {
    let info = r.id.info();
    if info.name == "evt.arg"
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
pub const EITHER_END: [&str; 4] = ["fd.ip", "fd.net", "fd.port", "fd.proto"];

/// True when a field yields several values of which any may match: an ancestor field
/// without index (all ancestors) or an either-end field.
pub fn is_multi(r: &Resolved) -> bool {
    let info = r.id.info();
    (info.arg == ArgKind::Ancestor && r.arg.is_none()) || EITHER_END.contains(&info.name)
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

/// The field list as text, one field a line (for `sensor list-fields`).
pub fn list_text() -> String {
    let width = FIELDS.iter().map(|f| f.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for f in FIELDS {
        let arg = match f.arg {
            ArgKind::None => String::new(),
            k => format!(" [{}]", k.name()),
        };
        out.push_str(&format!("{:width$}  {:8} {}{}\n", f.name, f.ty.name(), f.desc, arg));
    }
    out
}

/// The field list as a JSON array of `{name, type, arg, desc}` (for `sensor list-fields --json`).
pub fn list_json() -> serde_json::Value {
    serde_json::Value::Array(
        FIELDS
            .iter()
            .map(|f| serde_json::json!({"name": f.name, "type": f.ty.name(), "arg": f.arg.name(), "desc": f.desc}))
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
        assert!(list_text().contains("proc.name"));
        assert_eq!(list_json().as_array().unwrap().len(), FIELDS.len());
    }
}
