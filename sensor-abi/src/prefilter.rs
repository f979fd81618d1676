//! The in-kernel prefilter: file opens that no loaded rule can match never leave the
//! kernel; nor do the closes of the fds they made. When such an fd is used later (`mmap`,
//! `fchmod`, `dup`, `AT_EMPTY_PATH`...), the kernel sends its file's path with that event,
//! so the fd table in user space stays complete for every event rules see.
//!
//! User space compiles the loaded rules into a path map (an LPM trie of path prefixes and
//! exact paths, each with the [`open_class`]es some rule wants for it) and a mask of the
//! classes some rule wants whatever the path; the kernel tests each open against them. The
//! kernel only decides for paths it can compare as the rules see them ([`is_plain_path`]):
//! a relative, unnormalised or long path is always sent. Declared once here: the kernel
//! decides with these definitions and user space models the same decision in its
//! soundness tests.

/// Bytes of a path, with its terminating NUL, an LPM key holds. Longer paths are sent.
pub const PATH_KEY_MAX: usize = 252;

/// The data of a path trie key (aya's `Key<PathBytes>` adds the significant bits): the
/// path's bytes. An exact path includes its NUL, a prefix does not.
pub type PathBytes = [u8; PATH_KEY_MAX];

/// Entries of the path trie (prefixes and exact paths from all rules).
pub const MAX_PATHS: u32 = 16384;

/// Classes of an open that rules tell apart; a trie or name map value, or a class set of
/// [`PrefilterConfig`], is the set of classes wanted; an open is sent when one of its
/// classes is wanted for its path, its file name, any path with a hidden component (if it
/// has one), or any path.
pub mod open_class {
    /// Opened for reading (`evt.is_open_read`): access mode `O_RDONLY` or `O_RDWR`.
    pub const READ: u32 = 1;
    /// Opened for writing (`evt.is_open_write`): access mode `O_WRONLY` or `O_RDWR`.
    pub const WRITE: u32 = 2;
    /// Creates the file (`evt.is_open_create`): `O_CREAT` or `O_TMPFILE`.
    pub const CREATE: u32 = 4;
    /// The call succeeded (`fd.num >= 0`).
    pub const SUCCEEDED: u32 = 8;
    /// The call failed (`evt.res` is an error).
    pub const FAILED: u32 = 16;
    /// Truncates the file: `O_TRUNC`.
    pub const TRUNC: u32 = 32;
    /// Every class: wanted whatever the open.
    pub const ALL: u32 = 63;
}

/// `O_ACCMODE`, `O_WRONLY`, `O_CREAT`, `O_TRUNC` and `O_TMPFILE` from `<fcntl.h>`.
const O_ACCMODE: u64 = 3;
const O_WRONLY: u64 = 1;
const O_CREAT: u64 = 0o100;
const O_TRUNC: u64 = 0o1000;
const O_TMPFILE: u64 = 0o20000000;

/// The classes of an open with open flags `flags` (`None`: a call whose flags the kernel
/// does not read, e.g. `creat` or `openat2`, which then has every class) returning `ret`.
pub const fn open_classes(flags: Option<u64>, ret: i64) -> u32 {
    let outcome = if ret < 0 { open_class::FAILED } else { open_class::SUCCEEDED };
    let Some(flags) = flags else { return open_class::ALL };
    let mut classes = outcome;
    if flags & O_ACCMODE != O_WRONLY {
        classes |= open_class::READ;
    }
    if flags & O_ACCMODE != 0 {
        classes |= open_class::WRITE;
    }
    if flags & (O_CREAT | O_TMPFILE) != 0 {
        classes |= open_class::CREATE;
    }
    if flags & O_TRUNC != 0 {
        classes |= open_class::TRUNC;
    }
    classes
}

/// Whether the kernel compares `path` (without its NUL) with the trie: absolute, shorter
/// than [`PATH_KEY_MAX`], already in the form rules see (`fd.name`: no empty or `.`
/// component, no trailing `/`), and without `..` anywhere (so that no plain path can
/// satisfy a rule's directory-traversal test). Any other path is sent.
pub fn is_plain_path(path: &[u8]) -> bool {
    path.len() + 1 < PATH_KEY_MAX
        && path.first() == Some(&b'/')
        && !path.windows(2).any(|w| w == b"..")
        && path.split(|&b| b == b'/').skip(1).all(|c| !c.is_empty() && c != b".")
}

/// Whether no plain path ([`is_plain_path`]) contains `text`.
pub fn never_in_plain_path(text: &str) -> bool {
    text.contains("..") || text.contains("//") || text.contains("/./") || text.ends_with("/.")
}

/// The prefilter's settings: one entry of the `PREFILTER` array map, written by user space
/// (each field on its own, so a reload flips it in one write).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PrefilterConfig {
    /// [`prefilter_flags`].
    pub flags: u32,
    /// Classes of opens some rule wants whatever the path.
    pub open_any: u32,
    /// Which of the two sets of path tries and name maps is in use (0 or 1): a reload fills
    /// the other, then flips.
    pub trie: u32,
    /// Classes of opens some rule wants when the path has a hidden component (`/.`):
    /// `*/.ssh/id_*`-like patterns, which no prefix describes.
    pub open_hidden: u32,
    /// [`bloom_bit`]s of the first components of the trie's patterns (all bits when one
    /// pattern's first component is not whole): a path whose first component is not in
    /// it skips the trie.
    pub dirs_bloom: u64,
    /// [`bloom_bit`]s of the file-name map's names: a name not in it skips the map.
    pub names_bloom: u64,
}

/// The bloom bit of a path component of `len` bytes that starts with `first` and ends
/// with `last` (cheap for the kernel, which has those at hand).
pub const fn bloom_bit(len: usize, first: u8, last: u8) -> u64 {
    1 << ((len * 31 + first as usize * 7 + last as usize * 13) % 64)
}

/// The [`bloom_bit`] of a component given whole.
pub fn component_bloom_bit(component: &[u8]) -> u64 {
    match component {
        [] => u64::MAX,
        [first, .., last] => bloom_bit(component.len(), *first, *last),
        [only] => bloom_bit(1, *only, *only),
    }
}

/// Bits of [`PrefilterConfig::flags`].
pub mod prefilter_flags {
    /// Opens are tested against the trie and `open_any`.
    pub const OPEN: u32 = 1;
    /// The close of an fd whose open was not sent is not sent either (no rule matches
    /// `close`).
    pub const CLOSE: u32 = 2;
    /// The file-name map has entries: look the path's last component up.
    pub const NAMES: u32 = 4;
}

/// Bytes of a file name (a path's last component) the name map holds; a longer name is
/// never in it.
pub const NAME_MAX: usize = 32;

/// A key of the file-name map: the name, zero-padded.
pub type NameBytes = [u8; NAME_MAX];

/// Entries of the file-name map.
pub const MAX_NAMES: u32 = 4096;

/// The roles of a syscall in the prefilter: [`SyscallSpec::prefilter`](crate::config::SyscallSpec),
/// from [`Syscall::prefilter_role`](crate::syscalls::Syscall::prefilter_role).
pub mod spec_prefilter {
    /// An open: tested against the rules' paths; the fd it returns is remembered as not
    /// sent when the open is not. Its argument (below) is the open flags.
    pub const OPEN: u8 = 1;
    /// `close`: not sent for an fd whose open was not.
    pub const CLOSE: u8 = 2;
    /// Returns a new fd (`socket`, `dup`...): that number no longer stands for an fd whose
    /// open was not sent.
    pub const NEW_FD: u8 = 4;
    /// Its argument (below) is an fd: when that fd's open was not sent, the record carries
    /// the file's path ([`FD_FILE`](crate::record::blob_slot::FD_FILE)) instead, so user
    /// space learns the fd when it is used.
    pub const FD_ARG: u8 = 8;
    /// Shift of the argument index plus one (0: none; an open without flags argument then
    /// has every class).
    pub const ARG_SHIFT: u8 = 4;

    /// `roles` with argument `arg`.
    pub const fn with_arg(roles: u8, arg: Option<usize>) -> u8 {
        match arg {
            Some(i) => roles | (((i as u8) + 1) << ARG_SHIFT),
            None => roles,
        }
    }

    /// The argument index of spec byte `b`.
    pub const fn arg(b: u8) -> Option<usize> {
        match b >> ARG_SHIFT {
            0 => None,
            n => Some((n - 1) as usize),
        }
    }
}

/// Fds per process whose open was not sent that the kernel remembers (a bitmap); the open
/// of a higher fd is always sent.
pub const DROPPED_FDS: usize = 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths() {
        for p in ["/etc/shadow", "/home/u/.bashrc", "/a/.b/c", "/.x", "/a/b.", "/a/b.c."] {
            assert!(is_plain_path(p.as_bytes()), "{p}");
        }
        for p in [
            "",
            "/",
            "etc/shadow",
            "/etc//shadow",
            "/etc/",
            "/./etc",
            "/tmp/../etc/shadow",
            "/a/.",
            "/a/..",
            "/a/..b",
            "/a../b",
        ] {
            assert!(!is_plain_path(p.as_bytes()), "{p}");
        }
        assert!(!is_plain_path(&[b'a'; PATH_KEY_MAX]));
    }

    #[test]
    fn classes() {
        use open_class::*;
        assert_eq!(open_classes(Some(0), 3), READ | SUCCEEDED);
        assert_eq!(open_classes(Some(1 | O_CREAT | O_TRUNC), -2), WRITE | CREATE | TRUNC | FAILED);
        assert_eq!(open_classes(Some(2), 3), READ | WRITE | SUCCEEDED);
        assert_eq!(open_classes(None, 3), ALL);
        assert_eq!(spec_prefilter::arg(spec_prefilter::with_arg(spec_prefilter::OPEN, Some(2))), Some(2));
        assert_eq!(spec_prefilter::arg(spec_prefilter::OPEN), None);
    }
}
