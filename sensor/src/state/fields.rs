//! Field values of an event in the context of the state: what rules read. One `match` over
//! [`Field`] (no catch-all), so a field added to the registry does not compile until it is
//! given a value here or declared unavailable there.

use std::borrow::Cow;

use super::{
    Fd, Lookup, Process, Root, State,
    fd::IoClass,
    process::Lineage,
    symbols::{
        BPF_CMDS, CLONE_FLAGS, EXE_FLAGS, FAMILIES, FCNTL_CMDS, MEMFD_FLAGS, MODE_EXEC, MODE_FLAGS, NAMESPACE_FLAGS,
        O_ACCMODE, O_CREAT, O_RDONLY, O_TMPFILE, O_WRONLY, OPEN_FLAGS, PROT_FLAGS, PTRACE_REQUESTS, SIGNALS, cap_names,
        enum_name, flag_names, result_name,
    },
    users::Accounts,
};
use crate::{
    enrich::ContainerView,
    event::{ArgValue, Event, EventKind, SockAddr, SyscallArgs},
    rules::{Field, FieldArg, FieldSource, Value},
};

/// What an event changed in the state, kept while rules see it: the fields that compare
/// before and after read it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventChanges {
    /// The event changed its fd's name (a socket connected to a new peer): `fd.name_changed`.
    pub fd_name_changed: bool,
    /// The process's real uid before the event (`None`: the process was not known):
    /// `user.prev_uid`.
    pub prev_uid: Option<u32>,
    /// Capabilities a capset added to any of the three sets: `thread.cap_added`.
    pub cap_added: u64,
}

/// Where the pipeline is in its stream of events: `evt.num` and `evt.reltime`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Stream {
    /// Events given to the state so far, this one included.
    pub(super) events: u64,
    /// Wall-clock time of the first of them.
    pub(super) first_ts: u64,
}

impl Stream {
    /// Counts `ev`.
    pub(super) fn record(&mut self, ev: &Event) {
        self.events += 1;
        if self.events == 1 {
            self.first_ts = ev.wall_ts;
        }
    }
}

/// The node's name alerts carry (`evt.hostname`), looked up once.
pub fn node_name() -> &'static str {
    static HOSTNAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOSTNAME.get_or_init(crate::rules::engine::default_hostname)
}

/// The sensor itself, as rules see it: `sensor.pid` and `evt.hostname`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SensorInfo {
    /// Process id of the sensor.
    pub pid: u32,
    /// The node's name, the one alerts carry.
    pub hostname: String,
}

impl SensorInfo {
    /// This process, on this node.
    pub fn current() -> Self {
        Self { pid: std::process::id(), hostname: node_name().to_owned() }
    }
}

/// An event with the state around it, as the rule engine sees it.
pub struct EventView<'a> {
    ev: &'a Event,
    state: &'a State,
    container: Option<&'a ContainerView>,
    /// The event's process, when the table knows it (looked up once: most fields read it).
    process: Option<&'a Process>,
    /// The fd number the event works on (its argument, or the fd it returned; -1 when a
    /// call that returns one failed), and what it refers to when known: the table's, or
    /// made from the path of an open the table does not hold.
    fd: Option<(i64, Option<Cow<'a, Fd>>)>,
    /// The users and groups the event's process sees, fetched at the first user field
    /// (`None` inside: not loaded yet).
    accounts: std::cell::OnceCell<Option<std::sync::Arc<Accounts>>>,
    /// The process's first ancestors, walked at the first field that needs one: rules read
    /// `proc.aname[2]`, `[3]`, ... in turn, each a walk from the process otherwise.
    ancestors: std::cell::OnceCell<Ancestors<'a>>,
}

/// The most generations a field walks up the ancestry.
const ANCESTRY_MAX: usize = 64;

/// The first [`Lineage::INLINE`] ancestors of an event's process, parent first.
struct Ancestors<'a> {
    procs: [Option<&'a Process>; Lineage::INLINE],
    /// The walk ended within them: there is no further ancestor.
    complete: bool,
}

impl<'a> Ancestors<'a> {
    fn walk(mut lineage: Lineage<'a>) -> Self {
        let mut procs = [None; Lineage::INLINE];
        for slot in &mut procs {
            *slot = lineage.next();
            if slot.is_none() {
                return Ancestors { procs, complete: true };
            }
        }
        Ancestors { procs, complete: lineage.next().is_none() }
    }
}

/// Which way data moves in an I/O event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IoDir {
    Read,
    Write,
}

/// A syscall family as libsinsp classifies it: a fixed `evt.category`, or I/O on a
/// descriptor (categorised by the descriptor's kind) with the way data moves, if any.
enum Class {
    Category(&'static str),
    Io(Option<IoDir>),
}

fn class_of(args: &SyscallArgs) -> Class {
    use Class::{Category, Io};
    match args {
        SyscallArgs::Open { .. }
        | SyscallArgs::Mount { .. }
        | SyscallArgs::Umount { .. }
        | SyscallArgs::Chmod { .. }
        | SyscallArgs::Chown { .. }
        | SyscallArgs::Link { .. }
        | SyscallArgs::Unlink { .. }
        | SyscallArgs::Mkdir { .. }
        | SyscallArgs::Chdir { .. } => Category("file"),
        SyscallArgs::Exec { .. }
        | SyscallArgs::Setsid
        | SyscallArgs::Setpgid { .. }
        | SyscallArgs::Ptrace { .. }
        | SyscallArgs::Capset { .. }
        | SyscallArgs::Setns { .. }
        | SyscallArgs::Unshare { .. }
        | SyscallArgs::Clone { .. }
        | SyscallArgs::Prctl { .. } => Category("process"),
        SyscallArgs::Socket { .. }
        | SyscallArgs::Connect { .. }
        | SyscallArgs::Accept { .. }
        | SyscallArgs::Bind { .. }
        | SyscallArgs::Listen { .. } => Category("net"),
        SyscallArgs::SetIds { .. } => Category("user"),
        SyscallArgs::MemfdCreate { .. } | SyscallArgs::Mmap { .. } => Category("memory"),
        SyscallArgs::Kill { .. } => Category("signal"),
        SyscallArgs::Module { .. } | SyscallArgs::Bpf { .. } | SyscallArgs::Userfaultfd { .. } => Category("other"),
        SyscallArgs::Close { .. } | SyscallArgs::Dup { .. } | SyscallArgs::Fcntl { .. } => Io(None),
        SyscallArgs::SendTo { .. } | SyscallArgs::SendMsg { .. } => Io(Some(IoDir::Write)),
        SyscallArgs::RecvFrom { .. } | SyscallArgs::RecvMsg { .. } => Io(Some(IoDir::Read)),
    }
}

/// How `evt.arg.<name>` renders a number.
#[derive(Clone, Copy)]
pub(super) enum Codec {
    /// As it is.
    Plain,
    /// Flags named by the table, the text for none of them.
    Flags(&'static [(u64, &'static str)], &'static str),
    /// One value named by the table.
    Enum(&'static [(u64, &'static str)]),
    /// A capability set.
    Caps,
    /// A socket address.
    Addr,
}

/// The member `key` (dotted for a nested one: `info.exe_flags`) of arguments' serde form.
pub(super) fn arg_value<'j>(json: &'j serde_json::Value, key: &str) -> Option<&'j serde_json::Value> {
    key.split('.').try_fold(json, |v, part| v.get(part))
}

/// The argument Falco calls `name` in `args`: the member of their serde form that holds it,
/// and how it renders. Read both to render `evt.arg.<name>` and to set it in a test event.
pub(super) fn arg_spec<'n>(name: &'n str, args: &SyscallArgs) -> (&'n str, Codec) {
    use Codec::{Addr, Caps, Enum, Flags, Plain};
    match (name, args) {
        ("flags", SyscallArgs::Open { .. }) => ("flags", Flags(OPEN_FLAGS, O_RDONLY)),
        ("mode", SyscallArgs::Open { .. } | SyscallArgs::Chmod { .. } | SyscallArgs::Mkdir { .. }) => {
            ("mode", Flags(MODE_FLAGS, "0"))
        }
        ("flags", SyscallArgs::Unshare { .. }) | ("nstype", SyscallArgs::Setns { .. }) => {
            (name, Flags(NAMESPACE_FLAGS, "0"))
        }
        // Falco's exec exit event: the executable's flags, not execveat's AT_* flags.
        ("flags", SyscallArgs::Exec { .. }) => ("info.exe_flags", Flags(EXE_FLAGS, "0")),
        ("flags", SyscallArgs::Clone { .. }) => ("flags", Flags(CLONE_FLAGS, "0")),
        ("flags", SyscallArgs::MemfdCreate { .. }) => ("flags", Flags(MEMFD_FLAGS, "0")),
        ("prot", SyscallArgs::Mmap { .. }) => ("prot", Flags(PROT_FLAGS, "PROT_NONE")),
        ("cmd", SyscallArgs::Fcntl { .. }) => ("cmd", Enum(FCNTL_CMDS)),
        ("request", SyscallArgs::Ptrace { .. }) => ("request", Enum(PTRACE_REQUESTS)),
        ("domain", SyscallArgs::Socket { .. }) => ("domain", Enum(FAMILIES)),
        ("sig", SyscallArgs::Kill { .. }) => ("sig", Enum(SIGNALS)),
        ("cmd", SyscallArgs::Bpf { .. }) => ("cmd", Enum(BPF_CMDS)),
        // Falco's names for the ids of the set*id calls.
        ("uid" | "gid", SyscallArgs::SetIds { .. }) => ("id", Plain),
        ("ruid" | "rgid", SyscallArgs::SetIds { .. }) => ("real", Plain),
        ("euid" | "egid", SyscallArgs::SetIds { .. }) => ("effective", Plain),
        ("suid" | "sgid", SyscallArgs::SetIds { .. }) => ("saved", Plain),
        ("cap_effective", SyscallArgs::Capset { .. }) => ("effective", Caps),
        ("cap_permitted", SyscallArgs::Capset { .. }) => ("permitted", Caps),
        ("cap_inheritable", SyscallArgs::Capset { .. }) => ("inheritable", Caps),
        (
            "name" | "filename" | "pathname",
            SyscallArgs::Open { .. }
            | SyscallArgs::Exec { .. }
            | SyscallArgs::Unlink { .. }
            | SyscallArgs::Mkdir { .. }
            | SyscallArgs::Chmod { .. }
            | SyscallArgs::Chown { .. },
        ) => ("path", Plain),
        ("target", SyscallArgs::Link { .. }) => ("oldpath", Plain),
        ("linkpath", SyscallArgs::Link { .. }) => ("newpath", Plain),
        ("tuple" | "addr", _) => ("addr", Addr),
        (other, _) => (other, Plain),
    }
}

fn s<'v>(v: impl Into<Cow<'v, str>>) -> Option<Value<'v>> {
    Some(Value::Str(v.into()))
}

fn uint(v: impl Into<u64>) -> Option<Value<'static>> {
    Some(Value::UInt(v.into()))
}

/// A path's directory and file name.
fn split_path(path: &str) -> (&str, &str) {
    match memchr::memrchr(b'/', path.as_bytes()) {
        Some(0) => ("/", &path[1..]),
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("", path),
    }
}

fn json_value(v: &serde_json::Value) -> Option<Value<'static>> {
    match v {
        serde_json::Value::String(s) => Some(Value::Str(s.clone().into())),
        serde_json::Value::Number(n) => n.as_i64().map(Value::Int).or_else(|| n.as_u64().map(Value::UInt)),
        serde_json::Value::Bool(b) => Some(Value::Bool(*b)),
        serde_json::Value::Array(items) => Some(Value::List(items.iter().filter_map(json_value).collect())),
        _ => None,
    }
}

/// A JSON number as the bits it holds (negative `int`s keep their two's complement).
fn json_bits(v: &serde_json::Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_i64().map(|i| i as u64))
}

/// An argument as a field value, as its JSON form reads: a number that fits `i64` is
/// signed, an object has no value of its own.
fn arg_field(v: ArgValue<'_>) -> Option<Value<'_>> {
    let num = |u: u64| i64::try_from(u).map_or(Value::UInt(u), Value::Int);
    match v {
        ArgValue::Int(i) => Some(Value::Int(i)),
        ArgValue::UInt(u) => Some(num(u)),
        ArgValue::Str(text) => Some(Value::str(text)),
        ArgValue::Strs(items) => Some(Value::List(items.iter().map(|t| Value::str(t)).collect())),
        ArgValue::UInts(items) => Some(Value::List(items.iter().map(|&u| num(u)).collect())),
        ArgValue::Addr(_) | ArgValue::Cgroups(_) | ArgValue::Info(_) => None,
    }
}

/// `evt.arg.<key>` for a dotted key naming a member of an argument, from the arguments'
/// JSON form.
fn json_arg(args: &SyscallArgs, key: &str, codec: Codec, raw: bool) -> Option<Value<'static>> {
    let json = serde_json::to_value(args).ok()?;
    let v = arg_value(&json, key)?;
    match codec {
        Codec::Plain => json_value(v),
        Codec::Addr => serde_json::from_value::<SockAddr>(v.clone()).ok().map(|a| Value::Str(a.to_string().into())),
        _ if raw => json_value(v),
        Codec::Flags(names, zero) => s(flag_names(json_bits(v)?, names, zero)),
        Codec::Enum(names) => s(enum_name(json_bits(v)?, names)),
        Codec::Caps => s(cap_names(json_bits(v)?)),
    }
}

impl<'a> EventView<'a> {
    /// The view of `ev` against `state`, with its container's metadata if looked up.
    pub(super) fn new(ev: &'a Event, state: &'a State, container: Option<&'a ContainerView>) -> Self {
        let process = state.procs.get(ev.pid);
        let fd = Self::event_fd(ev, process, state);
        Self {
            ev,
            state,
            container,
            process,
            fd,
            accounts: std::cell::OnceCell::new(),
            ancestors: std::cell::OnceCell::new(),
        }
    }

    /// The fd `ev` works on, as libsinsp picks it: the argument of calls that take one (the
    /// old fd of a `dup`), the fd returned by calls that make one (-1 when they failed; a
    /// failed open still names its file).
    fn event_fd(ev: &Event, p: Option<&'a Process>, state: &State) -> Option<(i64, Option<Cow<'a, Fd>>)> {
        let sc = ev.syscall()?;
        let used = |fd: i32| Some((i64::from(fd), p.and_then(|p| p.fds.get(&fd)).map(Cow::Borrowed)));
        let made = || if sc.ret >= 0 { used(sc.ret as i32) } else { Some((-1, None)) };
        match &sc.args {
            SyscallArgs::Open { dirfd, path, .. } => {
                let named =
                    || path.as_deref().map(|path| Cow::Owned(Fd::File { path: state.absolute_at(ev, *dirfd, path) }));
                match made()? {
                    (num, Some(fd)) => Some((num, Some(fd))),
                    (num, None) => Some((num, named())),
                }
            }
            SyscallArgs::Socket { .. }
            | SyscallArgs::Accept { .. }
            | SyscallArgs::MemfdCreate { .. }
            | SyscallArgs::Userfaultfd { .. } => made(),
            SyscallArgs::Dup { oldfd: fd, .. }
            | SyscallArgs::Close { fd }
            | SyscallArgs::Connect { fd, .. }
            | SyscallArgs::Bind { fd, .. }
            | SyscallArgs::Listen { fd, .. }
            | SyscallArgs::SendTo { fd, .. }
            | SyscallArgs::SendMsg { fd, .. }
            | SyscallArgs::Setns { fd, .. }
            | SyscallArgs::Chmod { fd: Some(fd), .. }
            | SyscallArgs::Chown { fd: Some(fd), .. }
            | SyscallArgs::Module { fd: Some(fd), .. }
            | SyscallArgs::Fcntl { fd, .. }
            | SyscallArgs::RecvFrom { fd, .. }
            | SyscallArgs::RecvMsg { fd, .. }
            | SyscallArgs::Chdir { fd: Some(fd), .. } => used(*fd),
            SyscallArgs::Mmap { fd: Some(fd), .. } if *fd >= 0 => used(*fd),
            SyscallArgs::Chmod { fd: None, .. }
            | SyscallArgs::Chown { fd: None, .. }
            | SyscallArgs::Module { fd: None, .. }
            | SyscallArgs::Mmap { .. }
            | SyscallArgs::Exec { .. }
            | SyscallArgs::Ptrace { .. }
            | SyscallArgs::SetIds { .. }
            | SyscallArgs::Capset { .. }
            | SyscallArgs::Unshare { .. }
            | SyscallArgs::Clone { .. }
            | SyscallArgs::Mount { .. }
            | SyscallArgs::Umount { .. }
            | SyscallArgs::Link { .. }
            | SyscallArgs::Unlink { .. }
            | SyscallArgs::Mkdir { .. }
            | SyscallArgs::Prctl { .. }
            | SyscallArgs::Kill { .. }
            | SyscallArgs::Bpf { .. }
            | SyscallArgs::Chdir { fd: None, .. }
            | SyscallArgs::Setsid
            | SyscallArgs::Setpgid { .. } => None,
        }
    }

    /// The path of the file the event's fd refers to, when it is a file.
    pub fn fd_file(&self) -> Option<&str> {
        match self.fd.as_ref()?.1.as_deref()? {
            Fd::File { path } => Some(path),
            _ => None,
        }
    }

    fn process(&self) -> Option<&'a Process> {
        self.process
    }

    /// The process `level` generations up (0: the event's own).
    fn ancestor(&self, level: u32) -> Option<&'a Process> {
        let Some(up) = (level as usize).checked_sub(1) else { return self.process() };
        let ancestors = self.ancestors();
        match ancestors.procs.get(up) {
            Some(found) => *found,
            None if ancestors.complete => None,
            None => self.state.procs.ancestor(self.ev.pid, level as usize),
        }
    }

    fn ancestors(&self) -> &Ancestors<'a> {
        self.ancestors.get_or_init(|| Ancestors::walk(self.state.procs.lineage(self.ev.pid)))
    }

    fn parent(&self) -> Option<&'a Process> {
        self.ancestor(1)
    }

    fn ancestry(&self, arg: Option<&FieldArg>, f: impl Fn(&'a Process) -> Value<'a>) -> Option<Value<'a>> {
        match arg {
            Some(FieldArg::Index(n)) => self.ancestor(*n).map(f),
            _ => {
                let ancestors = self.ancestors();
                let list = if ancestors.complete {
                    ancestors.procs.iter().map_while(|p| p.map(&f)).collect()
                } else {
                    self.state.procs.lineage(self.ev.pid).take(ANCESTRY_MAX).map(f).collect()
                };
                Some(Value::List(list))
            }
        }
    }

    /// The session leader, as libsinsp finds it: the process whose pid is the session id,
    /// else the eldest ancestor in the same session. `None` when the process is unknown,
    /// `Some(None)` when the leader is.
    fn session_leader(&self) -> Option<Option<&'a Process>> {
        let p = self.process()?;
        let by_pid = self.state.procs.get(p.sid);
        let eldest = || self.state.procs.ancestors(p.pid, ANCESTRY_MAX).into_iter().rev().find(|a| a.sid == p.sid);
        Some(by_pid.or_else(eldest))
    }

    /// The leader of the event's process group, when the table knows it.
    fn group_leader(&self) -> Option<&'a Process> {
        let p = self.process().filter(|p| p.pgid > 0)?;
        self.state.procs.get(p.pgid)
    }

    fn session_field(&self, f: impl Fn(&'a Process) -> &'a str) -> Option<Value<'a>> {
        // libsinsp gives an empty text, not <NA>, when the leader is not known.
        self.session_leader().map(|leader| Value::str(leader.map_or("", f)))
    }

    /// `proc.aenv`: libsinsp's three forms (see the registry).
    fn ancestor_env(&self, arg: Option<&FieldArg>) -> Option<Value<'a>> {
        let p = self.process()?;
        let key = match arg {
            None => return s(p.env.join(" ")),
            Some(FieldArg::Index(n)) => return self.ancestor(*n).map(|a| Value::Str(a.env.join(" ").into())),
            Some(FieldArg::Key(k)) => k,
        };
        if let Ok(n) = key.parse::<u32>() {
            return self.ancestor(n).map(|a| Value::Str(a.env.join(" ").into()));
        }
        let found = self.state.procs.lineage(p.pid).take(20).find_map(|a| env_var(a, key));
        s(found.unwrap_or_default())
    }

    /// `proc.loginshellid`: the oldest process whose name ends in `sh`, self included.
    fn login_shell(&self) -> Option<Value<'a>> {
        let p = self.process()?;
        let mut lineage = vec![p];
        lineage.extend(self.state.procs.lineage(p.pid).take(ANCESTRY_MAX));
        lineage.iter().rev().find(|a| a.name.ends_with("sh")).map(|a| Value::UInt(u64::from(a.pid)))
    }

    fn stdio(&self, fd: i32, f: impl Fn(&'a Fd) -> Cow<'a, str>) -> Option<Value<'a>> {
        self.process()?.fds.get(&fd).map(|d| Value::Str(f(d)))
    }

    /// `fd.types`: the kinds of the process's fds, each once; `[n]`: the kind of fd n.
    fn fd_types(&self, arg: Option<&FieldArg>) -> Option<Value<'a>> {
        let p = self.process()?;
        let kinds: std::collections::BTreeSet<&'static str> = match arg {
            Some(FieldArg::Index(n)) => p.fds.get(&i32::try_from(*n).ok()?).map(Fd::type_name).into_iter().collect(),
            _ => p.fds.values().map(Fd::type_name).collect(),
        };
        Some(Value::List(kinds.into_iter().map(Value::str).collect()))
    }

    /// `container.*` and `k8s.*`: from the looked-up metadata, else the id the process
    /// table knows (`host` when nothing is known, as for replayed events).
    fn container_field(&self, field: Field, arg: Option<&FieldArg>) -> Option<Value<'a>> {
        let key = match arg {
            Some(FieldArg::Key(k)) => Some(k.clone()),
            Some(FieldArg::Index(i)) => Some(i.to_string()),
            None => None,
        };
        let text: Cow<'a, str> = match self.container {
            Some(view) => view.field(field.name(), key.as_deref())?,
            None => {
                let id = self.process().and_then(|p| p.container.as_ref());
                Cow::Borrowed(match field {
                    Field::ContainerId => id.map_or("host", |c| c.short()),
                    Field::ContainerFullId => id.map_or("host", |c| c.full()),
                    _ => return None,
                })
            }
        };
        match field.info().ty {
            crate::rules::FieldType::Bool => text.parse().ok().map(Value::Bool),
            crate::rules::FieldType::UInt => text.parse().ok().map(Value::UInt),
            crate::rules::FieldType::Ip => text.parse().ok().map(Value::Ip),
            _ => Some(Value::Str(text)),
        }
    }

    /// `evt.arg.<name>` (or `evt.arg[n]`), in Falco's naming; `raw` keeps numbers as they are.
    fn event_arg(&self, arg: Option<&FieldArg>, raw: bool) -> Option<Value<'a>> {
        let sc = self.ev.syscall()?;
        let name = match arg? {
            FieldArg::Key(k) => k.as_str(),
            FieldArg::Index(n) => sensor_abi::syscalls::by_nr(sc.nr)?.args.get(*n as usize)?.name,
        };
        if name == "res" {
            return Some(Value::Int(sc.ret));
        }
        let (key, codec) = arg_spec(name, &sc.args);
        let v = match key.split_once('.') {
            None => sc.args.arg(key)?,
            Some((top, member)) => match sc.args.arg(top)? {
                ArgValue::Info(info) => info.arg(member)?,
                // A member of another argument (`evt.arg.addr.port`): rare, read from the
                // JSON form.
                _ => return json_arg(&sc.args, key, codec, raw),
            },
        };
        match codec {
            Codec::Plain => arg_field(v),
            Codec::Addr => match v {
                ArgValue::Addr(a) => Some(Value::Str(a.to_string().into())),
                // No address (`mmap`'s `addr` is a number).
                ArgValue::Int(_)
                | ArgValue::UInt(_)
                | ArgValue::Str(_)
                | ArgValue::Strs(_)
                | ArgValue::UInts(_)
                | ArgValue::Cgroups(_)
                | ArgValue::Info(_) => None,
            },
            _ if raw => arg_field(v),
            Codec::Flags(names, zero) => s(flag_names(v.bits()?, names, zero)),
            Codec::Enum(names) => s(enum_name(v.bits()?, names)),
            Codec::Caps => s(cap_names(v.bits()?)),
        }
    }

    /// `evt.args`: `res=` and every argument as `name=value`, named as `evt.arg.<name>`
    /// takes them; for other events, what they carry.
    fn args_text(&self) -> String {
        let (mut parts, json) = match &self.ev.kind {
            EventKind::Syscall(sc) => {
                let res = match sc.ret {
                    r if r >= 0 => format!("res={r}"),
                    r => format!("res={r}({})", result_name(r)),
                };
                (vec![res], serde_json::to_value(&sc.args).ok())
            }
            kind => (Vec::new(), serde_json::to_value(kind).ok()),
        };
        let syscall = self.ev.syscall().is_some();
        for (k, v) in json.iter().filter_map(|j| j.as_object()).flatten() {
            if k == "family" || k == "event" || v.is_null() {
                continue;
            }
            let value = if syscall { self.event_arg(Some(&FieldArg::Key(k.clone())), false) } else { json_value(v) };
            if let Some(value) = value {
                parts.push(format!("{k}={value}"));
            }
        }
        parts.join(" ")
    }

    fn category(&self) -> Option<Value<'a>> {
        let Some(sc) = self.ev.syscall() else { return s("process") };
        match class_of(&sc.args) {
            Class::Category(c) => s(c),
            Class::Io(_) => s(match self.fd().map(Fd::io_class) {
                Some(IoClass::File) => "file",
                Some(IoClass::Net) => "net",
                Some(IoClass::Ipc) => "ipc",
                Some(IoClass::Other) | None => "unknown",
            }),
        }
    }

    fn io_dir(&self) -> Option<IoDir> {
        match class_of(&self.ev.syscall()?.args) {
            Class::Io(dir) => dir,
            Class::Category(_) => None,
        }
    }

    /// `evt.is_open_*`: false for events other than `open`, `openat`, `openat2` (libsinsp
    /// leaves `creat` out of all but `is_open_exec`).
    fn open_flag(&self, test: impl Fn(u64, u32, i64) -> bool) -> Option<Value<'a>> {
        let sc = self.ev.syscall();
        let hit = match sc.map(|s| (&s.args, s.name.as_str(), s.ret)) {
            Some((SyscallArgs::Open { flags, mode, .. }, "open" | "openat" | "openat2", ret)) => {
                test(*flags, *mode, ret)
            }
            _ => false,
        };
        Some(Value::Bool(hit))
    }

    /// `evt.abspath`: the path an `*at` call works on, from its directory fd; `src`/`dst`
    /// pick the paths of a rename or link (a symlink has only its link path).
    fn abspath(&self, arg: Option<&FieldArg>) -> Option<Value<'a>> {
        let sc = self.ev.syscall()?;
        let dst = matches!(arg, Some(FieldArg::Key(k)) if k == "dst");
        let (dirfd, path) = match &sc.args {
            SyscallArgs::Link { newdirfd: Some(d), newpath, .. } if dst || sc.name == "symlinkat" => (d, newpath),
            SyscallArgs::Link { olddirfd: Some(d), oldpath, .. } if sc.name != "symlinkat" => (d, oldpath),
            SyscallArgs::Open { dirfd: Some(d), path, .. }
            | SyscallArgs::Unlink { dirfd: Some(d), path, .. }
            | SyscallArgs::Mkdir { dirfd: Some(d), path, .. }
            | SyscallArgs::Chmod { dirfd: Some(d), path, .. }
            | SyscallArgs::Chown { dirfd: Some(d), path, .. } => (d, path),
            _ => return None,
        };
        path.as_deref().map(|p| Value::Str(self.state.absolute_at(self.ev, Some(*dirfd), p).into()))
    }

    /// `fs.path.*`: the path a file syscall works on (`name`), or the two paths of a link
    /// or rename (`source`, `target`), absolute (from the directory fd or the working
    /// directory) or as passed (`raw`). A symlink's source is its content, kept as written.
    fn fs_path(&self, which: PathRole, raw: bool) -> Option<Value<'a>> {
        let sc = self.ev.syscall()?;
        let resolve = |dirfd: Option<i32>, path: &'a Option<String>, raw: bool| {
            let path = path.as_deref()?;
            Some(Value::Str(if raw {
                Cow::Borrowed(path)
            } else {
                self.state.absolute_at(self.ev, dirfd, path).into()
            }))
        };
        match (which, &sc.args) {
            (PathRole::Name, SyscallArgs::Open { dirfd, path, .. })
            | (PathRole::Name, SyscallArgs::Exec { dirfd, path, .. })
            | (PathRole::Name, SyscallArgs::Unlink { dirfd, path, .. })
            | (PathRole::Name, SyscallArgs::Mkdir { dirfd, path, .. })
            | (PathRole::Name, SyscallArgs::Chmod { dirfd, path: path @ Some(_), .. })
            | (PathRole::Name, SyscallArgs::Chown { dirfd, path: path @ Some(_), .. }) => resolve(*dirfd, path, raw),
            (PathRole::Name, SyscallArgs::Chmod { fd: Some(_), .. } | SyscallArgs::Chown { fd: Some(_), .. }) => {
                self.fd().and_then(Fd::path).map(|p| Value::Str(p.to_owned().into()))
            }
            (PathRole::Source, SyscallArgs::Link { olddirfd, oldpath, .. }) => {
                let symlink = matches!(sc.name.as_str(), "symlink" | "symlinkat");
                resolve(*olddirfd, oldpath, raw || symlink)
            }
            (PathRole::Target, SyscallArgs::Link { newdirfd, newpath, .. }) => resolve(*newdirfd, newpath, raw),
            _ => None,
        }
    }

    fn user_field(&self, field: Field) -> Option<Value<'_>> {
        let ev = self.ev;
        let accounts = self
            .accounts
            .get_or_init(|| {
                let root = Root { mnt_ns: ev.mnt_ns, pids: [ev.pid, ev.ppid] };
                self.state.users.borrow_mut().accounts(root)
            })
            .as_deref();
        let user = |uid: u32| accounts.map_or(Lookup::Pending, |a| a.user(uid));
        // Accounts not loaded yet: the id stands for the name, rather than waiting.
        fn named(found: Lookup<&str>, id: u32) -> Option<Value<'_>> {
            match found {
                Lookup::Known(name) => Some(Value::str(name)),
                Lookup::Pending => Some(Value::Str(Cow::Owned(id.to_string()))),
                Lookup::Unknown => None,
            }
        }
        match field {
            Field::UserName => named(user(ev.uid).map(|u| u.name.as_str()), ev.uid),
            Field::UserHomedir => user(ev.uid).known().map(|u| Value::str(&u.home)),
            Field::UserShell => user(ev.uid).known().map(|u| Value::str(&u.shell)),
            Field::UserLoginname => {
                let p = self.process()?;
                named(user(p.loginuid).map(|u| u.name.as_str()), p.loginuid)
            }
            Field::GroupName => named(accounts.map_or(Lookup::Pending, |a| a.group(ev.gid)), ev.gid),
            _ => None,
        }
    }

    /// What the event's fd refers to, when known.
    fn fd(&self) -> Option<&Fd> {
        self.fd.as_ref()?.1.as_deref()
    }

    fn fd_num(&self) -> Option<i64> {
        self.fd.as_ref().map(|(n, _)| *n)
    }

    /// One end of the event's socket, mapped by `f`.
    fn end(
        &self,
        end: fn(&Fd) -> Option<(std::net::IpAddr, u16)>,
        f: impl Fn(std::net::IpAddr, u16) -> Option<Value<'a>>,
    ) -> Option<Value<'a>> {
        self.fd().and_then(end).and_then(|(ip, port)| f(ip, port))
    }

    fn dns_name(&self, ip: std::net::IpAddr) -> Option<Value<'a>> {
        self.state.dns.name_of(ip).map(|n| Value::Str(n.into()))
    }

    /// An either-end field: the client's and the server's values.
    fn both(&self, f: impl Fn(std::net::IpAddr, u16) -> Option<Value<'a>> + Copy) -> Option<Value<'a>> {
        let fd = self.fd()?;
        let ends = [fd.client(), fd.server()];
        Some(Value::List(ends.into_iter().flatten().filter_map(|(ip, port)| f(ip, port)).collect()))
    }
}

impl State {
    /// `path` made absolute against directory fd `dirfd` of `ev`'s process (its working
    /// directory for `AT_FDCWD` or none); it stays relative when that is not known.
    pub(super) fn absolute_at(&self, ev: &Event, dirfd: Option<i32>, path: &str) -> String {
        super::absolute(self.procs.get(ev.pid).and_then(|p| p.dir_of(dirfd)), path)
    }
}

#[derive(Clone, Copy)]
enum PathRole {
    Name,
    Source,
    Target,
}

fn env_var(p: &Process, key: &str) -> Option<String> {
    p.env.iter().find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')).map(str::to_owned)
}

fn ip<'v>(ip: std::net::IpAddr, _: u16) -> Option<Value<'v>> {
    Some(Value::Ip(ip))
}

fn port<'v>(_: std::net::IpAddr, port: u16) -> Option<Value<'v>> {
    uint(port)
}

/// A port as text: libsinsp's protocol fields with name resolution off, as Falco runs it.
fn proto<'v>(_: std::net::IpAddr, port: u16) -> Option<Value<'v>> {
    s(port.to_string())
}

impl FieldSource for EventView<'_> {
    fn event_type(&self) -> &str {
        self.ev.type_name()
    }

    fn timestamp_ns(&self) -> u64 {
        self.ev.wall_ts
    }

    fn field(&self, id: Field, arg: Option<&FieldArg>) -> Option<Value<'_>> {
        use Field::*;
        let ev = self.ev;
        let sc = ev.syscall();
        let p = self.process();
        let now = ev.wall_ts;
        let state = self.state;
        match id {
            // A syscall event has none of an audit event's fields.
            crate::rules::fields::k8s_audit_fields!() => None,
            // --- evt
            EvtNum => uint(state.stream.events),
            EvtTime => s(crate::rules::output::format_clock(now, false, true)),
            EvtTimeS => s(crate::rules::output::format_clock(now, false, false)),
            EvtTimeIso8601 => s(crate::rules::format_iso8601(now)),
            EvtDatetime => s(crate::rules::output::format_clock(now, true, true)),
            EvtDatetimeS => s(crate::rules::output::format_clock(now, true, false)),
            EvtRawtime => uint(now),
            EvtRawtimeS => uint(now / 1_000_000_000),
            EvtRawtimeNs => uint(now % 1_000_000_000),
            EvtReltime => uint(now.saturating_sub(state.stream.first_ts)),
            EvtType => s(ev.type_name()),
            EvtTypeIs => match arg {
                Some(FieldArg::Key(t)) => uint(u64::from(t.as_str() == ev.type_name())),
                _ => None,
            },
            SyscallType => sc.map(|sc| Value::str(&sc.name)),
            EvtDir => s("<"),
            EvtCategory => self.category(),
            EvtCpu => uint(ev.cpu),
            EvtArgs | EvtInfo => s(self.args_text()),
            EvtArg => self.event_arg(arg, false),
            EvtRawarg => self.event_arg(arg, true),
            EvtRes => sc.map(|sc| Value::Str(result_name(sc.ret))),
            EvtRawres => sc.map(|sc| Value::Int(sc.ret)),
            EvtFailed => sc.map(|sc| Value::Bool(sc.ret < 0)),
            EvtBuffer => None,
            EvtBuflen => match (self.io_dir(), sc) {
                (Some(_), Some(sc)) if sc.ret >= 0 => uint(sc.ret as u64),
                _ => None,
            },
            EvtIsIo => Some(Value::Bool(self.io_dir().is_some())),
            EvtIsIoRead => Some(Value::Bool(self.io_dir() == Some(IoDir::Read))),
            EvtIsIoWrite => Some(Value::Bool(self.io_dir() == Some(IoDir::Write))),
            EvtIoDir => self.io_dir().map(|d| Value::str(if d == IoDir::Read { "read" } else { "write" })),
            EvtIsOpenRead => self.open_flag(|flags, _, _| flags & O_ACCMODE != O_WRONLY),
            EvtIsOpenWrite => self.open_flag(|flags, _, _| flags & O_ACCMODE != 0),
            EvtIsOpenCreate => {
                self.open_flag(|flags, _, ret| flags & O_CREAT != 0 || (flags & O_TMPFILE != 0 && ret >= 0))
            }
            EvtIsOpenExec => match sc.map(|sc| (&sc.args, sc.name.as_str())) {
                // libsinsp counts creat here, whatever its flags.
                Some((SyscallArgs::Open { mode, .. }, "creat")) => Some(Value::Bool(mode & MODE_EXEC != 0)),
                _ => self.open_flag(|flags, mode, _| flags & (O_CREAT | O_TMPFILE) != 0 && mode & MODE_EXEC != 0),
            },
            EvtAbspath => self.abspath(arg),
            EvtCount => uint(1u64),
            EvtSource => s("syscall"),
            EvtHostname => s(state.sensor.hostname.as_str()),
            Static => crate::rules::fields::static_value(arg),
            EvtIsAsync => Some(Value::Bool(false)),
            EvtLatency => None,
            // What the event captured, or what its process's state keeps: fd names, environment.
            EvtIsTruncated => sc.map(|sc| {
                Value::Bool(sc.truncated || self.process().is_some_and(|p| p.fds.is_truncated() || p.env_truncated))
            }),
            EvtIsEnterMissing => sc.map(|sc| Value::Bool(sc.enter_missing)),
            EvtIsReread => sc.map(|sc| Value::Bool(sc.reread)),
            EvtIsIa32 => sc.map(|sc| Value::Bool(sc.compat)),
            // --- proc
            ProcPid => uint(ev.pid),
            ProcPpid => uint(ev.ppid),
            ProcApid => self.ancestry(arg, |p| Value::UInt(u64::from(p.pid))),
            ProcVpid => uint(ev.ns_pid),
            ProcPvpid => self.parent().map(|p| Value::UInt(u64::from(p.vpid))),
            ProcSid => p.map(|p| Value::UInt(u64::from(p.sid))),
            ProcSname => self.session_field(|l| &l.name),
            ProcSidExe => self.session_field(|l| &l.exe),
            ProcSidExepath => self.session_field(|l| &l.exepath),
            ProcPgid => p.filter(|p| p.pgid > 0).map(|p| Value::UInt(u64::from(p.pgid))),
            ProcVpgid => p.filter(|p| p.pgid > 0).map(|p| Value::UInt(u64::from(p.vpgid))),
            // The namespace view names the same group, so the same leader.
            ProcPgidName | ProcVpgidName => self.group_leader().map(|l| Value::str(&l.name)),
            ProcPgidExe | ProcVpgidExe => self.group_leader().map(|l| Value::str(&l.exe)),
            ProcPgidExepath | ProcVpgidExepath => self.group_leader().map(|l| Value::str(&l.exepath)),
            ProcName => s(ev.comm.as_str()),
            ProcPname => self.parent().map(|p| Value::str(&p.name)),
            ProcAname => self.ancestry(arg, |p| Value::str(&p.name)),
            ProcExe => p.map(|p| Value::str(&p.exe)),
            ProcPexe => self.parent().map(|p| Value::str(&p.exe)),
            ProcAexe => self.ancestry(arg, |p| Value::str(&p.exe)),
            ProcExepath => p.map(|p| Value::str(&p.exepath)),
            ProcPexepath => self.parent().map(|p| Value::str(&p.exepath)),
            ProcAexepath => self.ancestry(arg, |p| Value::str(&p.exepath)),
            ProcArgs => p.map(|p| Value::Str(p.args.join(" ").into())),
            ProcAargs => self.ancestry(arg, |p| Value::Str(p.args.join(" ").into())),
            ProcCmdline => p.map(|p| Value::Str(p.cmdline().into())),
            ProcPcmdline => self.parent().map(|p| Value::Str(p.cmdline().into())),
            ProcAcmdline => self.ancestry(arg, |p| Value::Str(p.cmdline().into())),
            ProcCmdnargs => p.map(|p| Value::UInt(p.args.len() as u64)),
            ProcCmdlenargs => p.map(|p| Value::UInt(p.args.iter().map(|a| a.len() as u64).sum())),
            // libsinsp's: the exe and a space, then the arguments.
            ProcExeline => p.map(|p| Value::Str(format!("{} {}", p.exe, p.args.join(" ")).into())),
            ProcEnv => match (p, arg) {
                (Some(p), Some(FieldArg::Key(k))) => env_var(p, k).map(|v| Value::Str(v.into())),
                (Some(p), _) => s(p.env.join(" ")),
                (None, _) => None,
            },
            ProcAenv => self.ancestor_env(arg),
            ProcCwd => p.and_then(|p| p.cwd.as_deref()).map(Value::str),
            ProcLoginshellid => self.login_shell(),
            ProcTty => p.map(|p| Value::UInt(u64::from(p.tty))),
            ProcDuration => p.filter(|p| p.start_ns > 0).map(|p| Value::UInt(now.saturating_sub(p.start_ns))),
            ProcPpidDuration => {
                self.parent().filter(|p| p.start_ns > 0).map(|p| Value::UInt(now.saturating_sub(p.start_ns)))
            }
            ProcPidTs => p.map(|p| Value::UInt(p.start_ns)),
            ProcPpidTs => self.parent().map(|p| Value::UInt(p.start_ns)),
            ProcIsExeWritable => p.map(|p| Value::Bool(p.exe_writable)),
            ProcIsExeLowerLayer => p.map(|p| Value::Bool(p.exe_lower_layer)),
            ProcIsExeUpperLayer => p.map(|p| Value::Bool(p.exe_upper_layer)),
            ProcIsExeFromMemfd => p.map(|p| Value::Bool(p.exe_from_memfd)),
            // libsinsp compares the session id with the pid in the process's namespace; the
            // table keeps the host's view of both.
            ProcIsSidLeader => p.map(|p| Value::Bool(p.sid == p.pid)),
            ProcIsPgidLeader => p.filter(|p| p.pgid > 0).map(|p| Value::Bool(p.pgid == p.pid)),
            ProcIsVpgidLeader => p.filter(|p| p.pgid > 0).map(|p| Value::Bool(p.vpgid == p.vpid)),
            ProcExeIno => p?.exe_ino.map(|(ino, _, _)| Value::UInt(ino)),
            ProcExeInoCtime => p?.exe_ino.map(|(_, ctime, _)| Value::UInt(ctime)),
            ProcExeInoMtime => p?.exe_ino.map(|(_, _, mtime)| Value::UInt(mtime)),
            ProcExeInoCtimeDurationProcStart => {
                let p = p?;
                p.exe_ino.map(|(_, ctime, _)| Value::UInt(p.start_ns.saturating_sub(ctime)))
            }
            ProcPidnsInitStartTs => p?.pidns_init_start_ns.map(Value::UInt),
            ProcExeInoCtimeDurationPidnsStart => {
                let p = p?;
                let (start, (_, ctime, _)) = (p.pidns_init_start_ns?, p.exe_ino?);
                Some(Value::UInt(ctime.saturating_sub(start)))
            }
            ProcFdopencount => p.map(|p| Value::UInt(p.fds.len() as u64)),
            ProcFdlimit => p?.fdlimit.map(Value::UInt),
            ProcVmsize => p?.vm_kb.map(|(size, _, _)| Value::UInt(size)),
            ProcVmrss => p?.vm_kb.map(|(_, rss, _)| Value::UInt(rss)),
            ProcVmswap => p?.vm_kb.map(|(_, _, swap)| Value::UInt(swap)),
            ProcNthreads | ProcNchilds => None,
            ProcStdinType => self.stdio(0, |fd| fd.type_name().into()),
            ProcStdoutType => self.stdio(1, |fd| fd.type_name().into()),
            ProcStderrType => self.stdio(2, |fd| fd.type_name().into()),
            ProcStdinName => self.stdio(0, Fd::name),
            ProcStdoutName => self.stdio(1, Fd::name),
            ProcStderrName => self.stdio(2, Fd::name),
            // --- thread
            ThreadTid => uint(ev.tid),
            ThreadVtid => uint(ev.ns_tid),
            ThreadIsmain => Some(Value::Bool(ev.tid == ev.pid)),
            ThreadNametid => s(format!("{}{}", ev.comm, ev.tid)),
            ThreadCapPermitted => p.map(|p| Value::Str(cap_names(p.cap_permitted).into())),
            ThreadCapInheritable => p.map(|p| Value::Str(cap_names(p.cap_inheritable).into())),
            ThreadCapEffective => p.map(|p| Value::Str(cap_names(p.cap_effective).into())),
            ThreadCapAdded => s(cap_names(state.changes.cap_added)),
            ThreadCgroups => p?.cgroups.as_ref().map(|c| Value::Str(c.pairs().collect::<Vec<_>>().join(" ").into())),
            ThreadCgroup => match arg {
                Some(FieldArg::Key(controller)) => {
                    p?.cgroups.as_ref()?.path_of(controller).map(|c| Value::Str(c.into()))
                }
                _ => None,
            },
            ThreadPfmajor => p?.page_faults.map(|(major, _)| Value::UInt(major)),
            ThreadPfminor => p?.page_faults.map(|(_, minor)| Value::UInt(minor)),
            // libsinsp gives the process's figures to its main thread, 0 to the others.
            ThreadVmsize => p?.vm_kb.map(|(size, _, _)| Value::UInt(if ev.tid == ev.pid { size } else { 0 })),
            ThreadVmrss => p?.vm_kb.map(|(_, rss, _)| Value::UInt(if ev.tid == ev.pid { rss } else { 0 })),
            // --- fd
            FdNum => self.fd_num().map(Value::Int),
            FdType => self.fd().map(|fd| Value::str(fd.type_name())),
            FdTypechar => self.fd().map(|fd| Value::str(fd.typechar())),
            FdName => self.fd().map(|fd| Value::Str(fd.name())),
            FdNameraw => match sc.map(|sc| &sc.args) {
                Some(SyscallArgs::Open { path: Some(path), .. }) => s(path.as_str()),
                _ => self.fd().map(|fd| Value::Str(fd.name())),
            },
            FdDirectory => self.fd().and_then(Fd::path).map(|p| Value::str(split_path(p).0)),
            FdFilename => self.fd().and_then(Fd::path).map(|p| Value::str(split_path(p).1)),
            FdIp | FdNet => self.both(ip),
            FdCip | FdCnet => self.end(Fd::client, ip),
            FdSip | FdSnet => self.end(Fd::server, ip),
            FdLip | FdLnet => self.end(Fd::local, ip),
            FdRip | FdRnet => self.end(Fd::remote, ip),
            FdPort => self.both(port),
            FdCport => self.end(Fd::client, port),
            FdSport => self.end(Fd::server, port),
            FdLport => self.end(Fd::local, port),
            FdRport => self.end(Fd::remote, port),
            FdProto => self.both(proto),
            FdCproto => self.end(Fd::client, proto),
            FdSproto => self.end(Fd::server, proto),
            FdLproto => self.end(Fd::local, proto),
            FdRproto => self.end(Fd::remote, proto),
            FdCipName => self.end(Fd::client, |ip, _| self.dns_name(ip)),
            FdSipName => self.end(Fd::server, |ip, _| self.dns_name(ip)),
            FdLipName => self.end(Fd::local, |ip, _| self.dns_name(ip)),
            FdRipName => self.end(Fd::remote, |ip, _| self.dns_name(ip)),
            FdL4proto => self.fd().and_then(Fd::l4proto).map(Value::str),
            FdSockfamily => match (self.fd()?, self.fd()?.typechar()) {
                (Fd::Socket { .. }, "4" | "6") => s("ip"),
                (Fd::Socket { .. }, "u") => s("unix"),
                _ => None,
            },
            FdIsServer => match self.fd()? {
                Fd::Socket { server, .. } => Some(Value::Bool(*server)),
                _ => None,
            },
            FdConnected => Some(Value::Bool(matches!(self.fd()?, Fd::Socket { connected: true, .. }))),
            FdNameChanged => Some(Value::Bool(state.changes.fd_name_changed)),
            // libsinsp: the thread id, then the fd number.
            FdUid => self.fd_num().map(|n| Value::Str(format!("{}{n}", ev.tid).into())),
            FdContainername | FdContainerdirectory => {
                let container = self.container_field(ContainerId, None)?;
                let rest = if id == FdContainername {
                    self.fd().map(Fd::name)
                } else {
                    self.fd().and_then(Fd::path).map(|p| Cow::Borrowed(split_path(p).0))
                };
                rest.map(|rest| Value::Str(format!("{container}:{rest}").into()))
            }
            FdDev | FdDevMajor | FdDevMinor | FdIno | FdIsUpperLayer | FdIsLowerLayer => None,
            FdTypes => self.fd_types(arg),
            // --- fs.path
            FsPathName => self.fs_path(PathRole::Name, false),
            FsPathNameraw => self.fs_path(PathRole::Name, true),
            FsPathSource => self.fs_path(PathRole::Source, false),
            FsPathSourceraw => self.fs_path(PathRole::Source, true),
            FsPathTarget => self.fs_path(PathRole::Target, false),
            FsPathTargetraw => self.fs_path(PathRole::Target, true),
            // --- user and group
            UserUid => uint(ev.uid),
            UserPrevUid => uint(state.changes.prev_uid.unwrap_or(ev.uid)),
            UserLoginuid => p.map(|p| Value::Int(if p.loginuid == u32::MAX { -1 } else { i64::from(p.loginuid) })),
            UserName | UserHomedir | UserShell | UserLoginname | GroupName => self.user_field(id),
            GroupGid => uint(ev.gid),
            // --- container and pod
            ContainerDuration => match self.container_field(ContainerStartTs, None)? {
                Value::UInt(start) => uint(now.saturating_sub(start)),
                _ => None,
            },
            ContainerId
            | ContainerFullId
            | ContainerName
            | ContainerImage
            | ContainerImageId
            | ContainerImageRepository
            | ContainerImageTag
            | ContainerImageDigest
            | ContainerType
            | ContainerPrivileged
            | ContainerMounts
            | ContainerMount
            | ContainerMountSource
            | ContainerMountDest
            | ContainerMountMode
            | ContainerMountRdwr
            | ContainerMountPropagation
            | ContainerStartTs
            | ContainerIp
            | ContainerHostPid
            | ContainerHostNetwork
            | ContainerHostIpc
            | ContainerLabel
            | ContainerLabels
            | K8sPodName
            | K8sNsName
            | K8sPodUid
            | K8sPodId
            | K8sPodSandboxId
            | K8sPodFullSandboxId
            | K8sPodLabel
            | K8sPodLabels
            | K8sPodIp => self.container_field(id, arg),
            // --- the sensor
            SensorPid => uint(state.sensor.pid),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::{
        event::SyscallEvent,
        rules::fields::{FIELDS, resolve},
        state::StateConfig,
    };

    const PID: u32 = 4_000_700;
    const TS: u64 = 1_700_000_000_123_456_789;

    fn syscall(name: &str, ret: i64, args: SyscallArgs) -> Event {
        let nr = sensor_abi::syscalls::by_name(name).unwrap().nr;
        let sc = SyscallEvent::new(name, nr, ret, args);
        Event { wall_ts: TS, ..Event::for_test(PID, "bash", EventKind::Syscall(sc)) }
    }

    /// The value rules read for `field` as written (`evt.arg.sig`, `proc.aenv[HOME]`).
    fn field(s: &State, ev: &Event, field: &str) -> Option<Value<'static>> {
        let (name, bracket) = match field.split_once('[') {
            Some((n, rest)) => (n, Some(rest.trim_end_matches(']'))),
            None => (field, None),
        };
        let r = resolve(name, bracket).expect("known field");
        s.view(ev, None).field(r.id, r.arg.as_ref()).map(Value::into_owned)
    }

    fn text(s: &State, ev: &Event, name: &str) -> String {
        field(s, ev, name).map_or_else(|| "<NA>".into(), |v| v.to_string())
    }

    /// sshd (pid 1) → bash (the session leader) → bash (the event's process), which has a
    /// terminal on stdin and a TCP connection on fd 3.
    fn state() -> State {
        let mut s = State::new(StateConfig::default());
        let inet = |a: [u8; 4], port| Some(SockAddr::Inet { addr: Ipv4Addr::from(a), port });
        let conn = Fd::Socket {
            domain: 2,
            kind: 1,
            local: inet([10, 0, 0, 5], 40000),
            remote: inet([203, 0, 113, 7], 443),
            connected: true,
            server: false,
        };
        let fds = [(0, Fd::File { path: "/dev/pts/0".into() }), (1, Fd::Other { name: "pipe:[77]".into() }), (3, conn)];
        let env = |v: &[&str]| v.iter().map(|e| (*e).to_owned()).collect::<Vec<_>>();
        s.procs.insert(Process { pid: 1, name: "sshd".into(), env: env(&["LANG=C"]).into(), ..Default::default() });
        s.procs.insert(Process {
            pid: PID - 1,
            ppid: 1,
            sid: PID - 1,
            name: "bash".into(),
            exe: "-bash".into(),
            exepath: "/usr/bin/bash".into(),
            env: env(&["HOME=/root", "TERM=xterm"]).into(),
            start_ns: TS - 5_000,
            ..Default::default()
        });
        s.procs.insert(Process {
            pid: PID,
            ppid: PID - 1,
            sid: PID - 1,
            name: "bash".into(),
            exe: "bash".into(),
            args: vec!["-c".into(), "id".into()].into(),
            cwd: Some("/root".into()),
            env: env(&["TERM=dumb"]).into(),
            fds: std::sync::Arc::new(fds.into_iter().collect()),
            ..Default::default()
        });
        s
    }

    #[test]
    fn times_and_stream() {
        let mut s = state();
        let close = syscall("close", 0, SyscallArgs::Close { fd: 1 });
        s.before(&Event { wall_ts: TS - 1_000, ..close.clone() });
        s.before(&close);
        assert_eq!(text(&s, &close, "evt.rawtime.ns"), "123456789", "the nanosecond part, as in Falco");
        assert_eq!(text(&s, &close, "evt.rawtime.s"), "1700000000");
        assert_eq!(text(&s, &close, "evt.datetime"), "2023-11-14 22:13:20.123456789");
        assert_eq!(text(&s, &close, "evt.datetime.s"), "2023-11-14 22:13:20");
        assert_eq!(text(&s, &close, "evt.time.s"), "22:13:20");
        assert_eq!((text(&s, &close, "evt.num"), text(&s, &close, "evt.reltime")), ("2".into(), "1000".into()));
        assert_eq!(text(&s, &close, "evt.hostname"), crate::rules::engine::default_hostname());
    }

    #[test]
    fn ancestry_deeper_than_the_walk_kept_per_event() {
        // init (1) → p2 → ... → p39 → the event's process: 39 ancestors, more than the
        // first ones an event keeps.
        let mut s = State::new(StateConfig::default());
        let depth = 40;
        for pid in 1..=depth {
            let name = if pid == depth { "bash".to_owned() } else { format!("p{pid}") };
            let pid = if pid == depth { PID } else { pid };
            let ppid = match pid {
                1 => 0,
                PID => depth - 1,
                _ => pid - 1,
            };
            s.procs.insert(Process { pid, ppid, name, ..Default::default() });
        }
        let ev = syscall("close", 0, SyscallArgs::Close { fd: 1 });
        assert_eq!(text(&s, &ev, "proc.aname[1]"), "p39");
        assert_eq!(text(&s, &ev, "proc.aname[16]"), "p24");
        assert_eq!(text(&s, &ev, "proc.aname[17]"), "p23", "past the kept ones, walked");
        assert_eq!(text(&s, &ev, "proc.aname[39]"), "p1");
        assert_eq!(text(&s, &ev, "proc.aname[40]"), "<NA>");
        let Some(Value::List(names)) = field(&s, &ev, "proc.aname") else { panic!("a list") };
        assert_eq!(names.len(), 39);
        assert_eq!((names[0].to_string(), names[38].to_string()), ("p39".into(), "p1".into()));
        // A short ancestry is all kept: the list and the indexes agree.
        let s = state();
        assert_eq!(text(&s, &ev, "proc.aname"), "bash sshd");
        assert_eq!((text(&s, &ev, "proc.aname[2]"), text(&s, &ev, "proc.aname[3]")), ("sshd".into(), "<NA>".into()));
    }

    #[test]
    fn process_fields() {
        let s = state();
        let ev = syscall("close", 0, SyscallArgs::Close { fd: 1 });
        for (name, want) in [
            ("proc.exeline", "bash -c id"),
            ("proc.cmdlenargs", "4"),
            ("proc.pvpid", "0"),
            ("proc.ppid.ts", &(TS - 5_000).to_string()),
            ("proc.sname", "bash"),
            ("proc.sid.exe", "-bash"),
            ("proc.sid.exepath", "/usr/bin/bash"),
            ("proc.is_sid_leader", "false"),
            ("proc.loginshellid", &(PID - 1).to_string()),
            ("proc.aenv", "TERM=dumb"),
            ("proc.aenv[1]", "HOME=/root TERM=xterm"),
            ("proc.aenv[TERM]", "xterm"),
            ("proc.aenv[LANG]", "C"),
            ("proc.aenv[NOPE]", ""),
            ("proc.stdin.type", "file"),
            ("proc.stdin.name", "/dev/pts/0"),
            ("proc.stdout.type", "pipe"),
            ("proc.stderr.type", "<NA>"),
            ("thread.nametid", &format!("bash{PID}")),
            ("fd.types", "file ipv4 pipe"),
            ("fd.types[3]", "ipv4"),
        ] {
            assert_eq!(text(&s, &ev, name), want, "{name}");
        }
    }

    #[test]
    fn socket_ends() {
        let s = state();
        let ev = syscall("sendto", 120, SyscallArgs::SendTo { fd: 3, len: 200, flags: 0, addr: None });
        for (name, want) in [
            ("fd.num", "3"),
            ("fd.lport", "40000"),
            ("fd.rport", "443"),
            ("fd.lnet", "10.0.0.5"),
            ("fd.rip", "203.0.113.7"),
            ("fd.sproto", "443"),
            ("fd.cproto", "40000"),
            ("fd.proto", "40000 443"),
            ("fd.is_server", "false"),
            ("fd.uid", &format!("{PID}3")),
            ("fd.containername", "host:10.0.0.5:40000->203.0.113.7:443"),
            ("fd.containerdirectory", "<NA>"),
            ("evt.is_io", "true"),
            ("evt.is_io_write", "true"),
            ("evt.io_dir", "write"),
            ("evt.buflen", "120"),
            ("evt.category", "net"),
            ("evt.args", "res=120 fd=3 flags=0 len=200"),
        ] {
            assert_eq!(text(&s, &ev, name), want, "{name}");
        }
    }

    #[test]
    fn opens_and_paths() {
        let mut s = state();
        let open = |ret, flags, mode| {
            syscall(
                "openat",
                ret,
                SyscallArgs::Open { dirfd: Some(-100), path: Some("../etc/x".into()), flags, mode, resolve: None },
            )
        };
        let failed = open(-2, 0o101, 0o755);
        s.before(&failed);
        for (name, want) in [
            ("fd.num", "-1"),
            ("fd.name", "/etc/x"),
            ("fd.typechar", "f"),
            ("fd.nameraw", "../etc/x"),
            ("evt.res", "ENOENT"),
            ("evt.abspath", "/etc/x"),
            ("evt.is_open_exec", "true"),
            ("evt.is_open_create", "true"),
            ("evt.is_open_read", "false"),
            ("evt.arg.flags", "O_WRONLY|O_CREAT"),
            ("evt.rawarg.flags", "65"),
            (
                "evt.args",
                "res=-2(ENOENT) dirfd=-100 flags=O_WRONLY|O_CREAT mode=S_IXOTH|S_IROTH|S_IXGRP|S_IRGRP|S_IXUSR|S_IWUSR|S_IRUSR path=../etc/x",
            ),
            ("evt.category", "file"),
            ("evt.is_io", "false"),
            ("evt.io_dir", "<NA>"),
        ] {
            assert_eq!(text(&s, &failed, name), want, "{name}");
        }
        let creat = syscall(
            "creat",
            4,
            SyscallArgs::Open { dirfd: None, path: Some("x".into()), flags: 0o1101, mode: 0o700, resolve: None },
        );
        s.before(&creat);
        // As in libsinsp: creat is no open for evt.is_open_*, except is_open_exec.
        assert_eq!(
            (text(&s, &creat, "evt.is_open_write"), text(&s, &creat, "evt.is_open_exec")),
            ("false".into(), "true".into())
        );
        assert_eq!((text(&s, &creat, "fd.name"), text(&s, &creat, "evt.abspath")), ("/root/x".into(), "<NA>".into()));
        let rename = syscall(
            "renameat2",
            0,
            SyscallArgs::Link {
                olddirfd: Some(-100),
                oldpath: Some("a".into()),
                newdirfd: Some(-100),
                newpath: Some("/tmp/b".into()),
                flags: 0,
            },
        );
        assert_eq!(text(&s, &rename, "evt.abspath"), "/root/a");
        assert_eq!(text(&s, &rename, "evt.abspath.src"), "/root/a");
        assert_eq!(text(&s, &rename, "evt.abspath.dst"), "/tmp/b");
        let dup = syscall("dup2", 1, SyscallArgs::Dup { oldfd: 3, newfd: Some(1), flags: 0 });
        s.before(&dup);
        assert_eq!((text(&s, &dup, "fd.num"), text(&s, &dup, "fd.type")), ("3".into(), "ipv4".into()), "the old fd");
        assert_eq!(text(&s, &dup, "evt.category"), "net");
    }

    #[test]
    fn unavailable_fields_are_never_supplied() {
        let mut s = state();
        let ev = syscall("sendto", 120, SyscallArgs::SendTo { fd: 3, len: 200, flags: 0, addr: None });
        s.before(&ev);
        for f in FIELDS.iter().filter(|f| matches!(f.availability, crate::rules::Availability::Unavailable(_))) {
            let arg = match f.arg {
                crate::rules::fields::ArgKind::Key => Some(FieldArg::Key("cpu".into())),
                _ => None,
            };
            assert_eq!(s.view(&ev, None).field(f.field, arg.as_ref()), None, "{}", f.name);
        }
    }
}
