//! String matchers with Falco's exact semantics: `glob` as `fnmatch(pattern, value, 0)`,
//! `pmatch` as a path-prefix trie, and CIDR networks.

use std::collections::HashMap;
use std::net::IpAddr;

use foldhash::fast::RandomState;

/// `fnmatch(pattern, text, 0)`: `*` and `?` also match `/`, `[...]` classes (with `!` or `^`
/// negation and ranges), `\` escapes, braces are literal. With `fold`, ASCII case is ignored
/// (`FNM_CASEFOLD`). Runs in O(len(pattern) × len(text)); ASCII input is matched bytewise
/// without allocating.
pub fn fnmatch(pattern: &str, text: &str, fold: bool) -> bool {
    if pattern.is_ascii() && text.is_ascii() {
        return fnmatch_in(pattern.as_bytes(), text.as_bytes(), fold);
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    fnmatch_in(&p, &t, fold)
}

/// A pattern or text unit: a byte (ASCII input) or a char.
trait Sym: Copy + PartialEq + PartialOrd {
    fn is(self, c: char) -> bool;
    fn lower(self) -> Self;
    fn upper(self) -> Self;
}

impl Sym for u8 {
    fn is(self, c: char) -> bool {
        char::from(self) == c
    }
    fn lower(self) -> Self {
        self.to_ascii_lowercase()
    }
    fn upper(self) -> Self {
        self.to_ascii_uppercase()
    }
}

impl Sym for char {
    fn is(self, c: char) -> bool {
        self == c
    }
    fn lower(self) -> Self {
        self.to_ascii_lowercase()
    }
    fn upper(self) -> Self {
        self.to_ascii_uppercase()
    }
}

fn fnmatch_in<T: Sym>(p: &[T], t: &[T], fold: bool) -> bool {
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() {
            let c = p[pi];
            if c.is('*') {
                while pi < p.len() && p[pi].is('*') {
                    pi += 1;
                }
                star = Some((pi, ti));
                continue;
            }
            if c.is('?') {
                pi += 1;
                ti += 1;
                continue;
            }
            if c.is('[') {
                match class(p, pi, t[ti], fold) {
                    Some((true, next)) => {
                        pi = next;
                        ti += 1;
                        continue;
                    }
                    Some((false, _)) => {}
                    // An unclosed '[' is an ordinary character.
                    None if eq(c, t[ti], fold) => {
                        pi += 1;
                        ti += 1;
                        continue;
                    }
                    None => {}
                }
            } else if c.is('\\') && pi + 1 < p.len() {
                if eq(p[pi + 1], t[ti], fold) {
                    pi += 2;
                    ti += 1;
                    continue;
                }
            } else if eq(c, t[ti], fold) {
                pi += 1;
                ti += 1;
                continue;
            }
        }
        match star {
            Some((sp, st)) => {
                pi = sp;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    while pi < p.len() && p[pi].is('*') {
        pi += 1;
    }
    pi == p.len()
}

fn eq<T: Sym>(a: T, b: T, fold: bool) -> bool {
    a == b || (fold && a.lower() == b.lower())
}

/// Matches `c` against the class starting at `p[start] == '['`; returns (matched, index
/// after the class) or `None` when the class is not closed.
fn class<T: Sym>(p: &[T], start: usize, c: T, fold: bool) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = p.get(i).is_some_and(|x| x.is('!') || x.is('^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let ch = *p.get(i)?;
        if ch.is(']') && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        let lo = if ch.is('\\') {
            i += 1;
            *p.get(i)?
        } else {
            ch
        };
        if p.get(i + 1).is_some_and(|x| x.is('-')) && p.get(i + 2).is_some_and(|x| !x.is(']')) {
            let mut hi = p[i + 2];
            let mut skip = 3;
            if hi.is('\\') {
                hi = *p.get(i + 3)?;
                skip = 4;
            }
            let in_range = |x: T| lo <= x && x <= hi;
            if in_range(c) || (fold && (in_range(c.lower()) || in_range(c.upper()))) {
                matched = true;
            }
            i += skip;
        } else {
            if eq(lo, c, fold) {
                matched = true;
            }
            i += 1;
        }
    }
}

/// A set of path prefixes matched on component boundaries: `/tmp/a` matches `/tmp/a` and
/// `/tmp/a/b` but not `/tmp/ab`. Components may hold glob wildcards.
#[derive(Debug, Default, Clone)]
pub struct PathTrie {
    root: TrieNode,
    /// The prefixes inserted, as given.
    prefixes: Vec<String>,
}

/// The non-empty components of a path, split at `/` bytes (a `/` is always a whole
/// character) without the general string searcher: this runs on every `pmatch` test.
#[derive(Clone)]
struct Components<'p>(&'p str);

impl<'p> Iterator for Components<'p> {
    type Item = &'p str;

    fn next(&mut self) -> Option<&'p str> {
        while !self.0.is_empty() {
            let end = self.0.bytes().position(|b| b == b'/').unwrap_or(self.0.len());
            let (comp, rest) = self.0.split_at(end);
            self.0 = rest.strip_prefix('/').unwrap_or(rest);
            if !comp.is_empty() {
                return Some(comp);
            }
        }
        None
    }
}

#[derive(Debug, Default, Clone)]
struct TrieNode {
    terminal: bool,
    children: HashMap<String, TrieNode, RandomState>,
    wildcards: Vec<(String, TrieNode)>,
}

impl PathTrie {
    /// Adds a prefix.
    pub fn insert(&mut self, prefix: &str) {
        self.prefixes.push(prefix.to_owned());
        let mut node = &mut self.root;
        for comp in prefix.split('/').filter(|c| !c.is_empty()) {
            if comp.contains(['*', '?', '[']) {
                let pos = node.wildcards.iter().position(|(p, _)| p == comp);
                let idx = pos.unwrap_or_else(|| {
                    node.wildcards.push((comp.to_owned(), TrieNode::default()));
                    node.wildcards.len() - 1
                });
                node = &mut node.wildcards[idx].1;
            } else {
                node = node.children.entry(comp.to_owned()).or_default();
            }
        }
        node.terminal = true;
    }

    /// For each prefix, its components up to the first with a wildcard, and whether that is
    /// all of them: every path it matches is those components (only when whole) or below.
    pub fn literal_prefixes(&self) -> impl Iterator<Item = (Vec<&str>, bool)> + '_ {
        self.prefixes.iter().map(|p| {
            let all: Vec<&str> = p.split('/').filter(|c| !c.is_empty()).collect();
            let literal: Vec<&str> = all.iter().copied().take_while(|c| !c.contains(['*', '?', '['])).collect();
            let whole = literal.len() == all.len();
            (literal, whole)
        })
    }

    /// True when some prefix in the set is a component-wise prefix of `path`.
    pub fn matches(&self, path: &str) -> bool {
        Self::walk(&self.root, Components(path))
    }

    /// Walks `comps` (an iterator, cloned at each branch: no list per path).
    fn walk<'p>(node: &TrieNode, mut comps: impl Iterator<Item = &'p str> + Clone) -> bool {
        if node.terminal {
            return true;
        }
        let Some(first) = comps.next() else {
            return false;
        };
        if let Some(child) = node.children.get(first)
            && Self::walk(child, comps.clone())
        {
            return true;
        }
        node.wildcards.iter().any(|(pat, child)| fnmatch(pat, first, false) && Self::walk(child, comps.clone()))
    }
}

/// An IP network `addr/len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    len: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/n`, `x::/n`, or a bare address (a host network).
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match l {
            Some(l) => l.trim().parse::<u8>().ok().filter(|&n| n <= max)?,
            None => max,
        };
        Some(Cidr { addr, len })
    }

    /// True when `ip` is inside the network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.len == 0 { 0 } else { u32::MAX << (32 - u32::from(self.len)) };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.len == 0 { 0 } else { u128::MAX << (128 - u32::from(self.len)) };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// Decodes a hex string (`CAFEBABE`, spaces allowed) for `bcontains`/`bstartswith`.
pub fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !digits.len().is_multiple_of(2) || digits.is_empty() {
        return None;
    }
    digits
        .chunks(2)
        .map(|pair| {
            let hi = char::from(pair[0]).to_digit(16)?;
            let lo = char::from(pair[1]).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect()
}

/// Decodes standard or URL-safe base64 (padding optional), for the `b64` transformer.
pub fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0u32;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            b'\n' | b'\r' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).ok()?);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_table() {
        let cases = [
            ("/home/*/.ssh/*", "/home/bob/.ssh/id_rsa", true),
            ("/home/*/.ssh/*", "/home/a/b/.ssh/x/y", true), // '*' crosses '/'
            ("*../*../*", "/var/www/../../etc/passwd", true),
            ("*../*../*", "/var/www/../etc/passwd", false),
            ("a?c", "a/c", true),
            ("{a,b}", "a", false), // braces are literal
            ("{a,b}", "{a,b}", true),
            ("[abc]x", "bx", true),
            ("[!abc]x", "bx", false),
            ("[^abc]x", "dx", true),
            ("[a-c]", "b", true),
            ("[]]", "]", true),
            ("\\*", "*", true),
            ("\\*", "a", false),
            ("[", "[", true),
            ("", "", true),
            ("*", "", true),
            ("**", "anything/at/all", true),
            ("abc", "abcd", false),
            ("*.log", "/var/log/syslog.log", true),
        ];
        for (p, t, want) in cases {
            assert_eq!(fnmatch(p, t, false), want, "fnmatch({p:?}, {t:?})");
        }
        assert!(fnmatch("*.LOG", "a.log", true));
        assert!(!fnmatch("*.LOG", "a.log", false));
        assert!(fnmatch("[A-C]", "b", true));
        assert!(fnmatch("/tmp/ü*", "/tmp/über", false));
        assert!(fnmatch("/tmp/?ber", "/tmp/über", false));
    }

    #[test]
    fn pmatch_is_component_wise() {
        let mut t = PathTrie::default();
        t.insert("/tmp/hello");
        t.insert("/var/*/cache");
        assert!(t.matches("/tmp/hello"));
        assert!(t.matches("/tmp/hello/world"));
        assert!(!t.matches("/tmp/hello_world"));
        assert!(!t.matches("/tmp"));
        assert!(t.matches("/var/lib/cache/x"));
        assert!(!t.matches("/var/lib/other"));
        let mut root = PathTrie::default();
        root.insert("/");
        assert!(root.matches("/anything"));
    }

    #[test]
    fn cidrs() {
        let n = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(n.contains("10.1.2.3".parse().unwrap()));
        assert!(!n.contains("11.1.2.3".parse().unwrap()));
        assert!(n.contains("::ffff:10.0.0.1".parse().unwrap()));
        assert!(Cidr::parse("127.0.0.1").unwrap().contains("127.0.0.1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains("8.8.8.8".parse().unwrap()));
        assert!(Cidr::parse("fd00::/8").unwrap().contains("fd12::1".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("host").is_none());
    }

    #[test]
    fn decoders() {
        assert_eq!(decode_hex("CAFE babe"), Some(vec![0xca, 0xfe, 0xba, 0xbe]));
        assert_eq!(decode_hex("ABC"), None);
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVsbG8").unwrap(), b"hello");
        assert_eq!(decode_base64("!"), None);
    }

    proptest::proptest! {
        #[test]
        fn fnmatch_never_panics(p in ".{0,30}", t in ".{0,30}") {
            let _ = fnmatch(&p, &t, false);
            let _ = fnmatch(&p, &t, true);
        }

        #[test]
        fn byte_and_char_matchers_agree(p in "[a-c*?\\[\\]!^\\\\/-]{0,12}", t in "[a-cA-C/*?-]{0,12}", fold: bool) {
            let pc: Vec<char> = p.chars().collect();
            let tc: Vec<char> = t.chars().collect();
            proptest::prop_assert_eq!(fnmatch_in(p.as_bytes(), t.as_bytes(), fold), fnmatch_in(&pc, &tc, fold));
        }

        #[test]
        fn path_components_are_the_non_empty_parts_between_slashes(path in "[a/é]{0,12}") {
            let expected: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
            proptest::prop_assert_eq!(Components(&path).collect::<Vec<_>>(), expected);
        }

        #[test]
        fn literal_patterns_match_themselves(t in "[a-z/._-]{0,30}") {
            proptest::prop_assert!(fnmatch(&t, &t, false));
        }
    }
}
