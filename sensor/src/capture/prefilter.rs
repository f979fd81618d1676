//! Programs the in-kernel prefilter (`sensor_abi::prefilter`) from the one the rules
//! compiled ([`Prefilter`]), and reads what it kept back.
//!
//! A change goes through "off": the kernel sends everything while the inactive path trie is
//! rewritten, then the settings flip to it in one write. The fds remembered as not sent are
//! forgotten on each change, so a close is never kept back on the strength of an old
//! filter (forgetting only makes the kernel send closes).

use aya::{
    Ebpf,
    maps::{Array, HashMap, LpmTrie, MapData, PerCpuArray, lpm_trie::Key},
};
use sensor_abi::prefilter::{
    NAME_MAX, NameBytes, PathBytes, PrefilterConfig, component_bloom_bit, prefilter_flags, spec_prefilter,
};
use sensor_abi::syscalls::Syscall;

use super::{CaptureError, map_err, map_missing};
use crate::rules::Prefilter;

const TRIES: [&str; 2] = ["OPEN_PATHS_0", "OPEN_PATHS_1"];
const NAMES: [&str; 2] = ["OPEN_NAMES_0", "OPEN_NAMES_1"];

fn settings(ebpf: &mut Ebpf) -> Result<Array<&mut MapData, PrefilterConfig>, CaptureError> {
    Array::try_from(ebpf.map_mut("PREFILTER").ok_or(map_missing("PREFILTER"))?).map_err(map_err("PREFILTER"))
}

/// Makes `filter` the kernel's prefilter.
pub(super) fn program(ebpf: &mut Ebpf, filter: &Prefilter) -> Result<(), CaptureError> {
    let current = settings(ebpf)?.get(&0, 0).map_err(map_err("PREFILTER"))?;
    let off = PrefilterConfig { trie: current.trie, ..PrefilterConfig::default() };
    settings(ebpf)?.set(0, off, 0).map_err(map_err("PREFILTER"))?;
    forget_dropped_fds(ebpf)?;
    let Some(open) = &filter.open else { return Ok(()) };
    let next = 1 - current.trie.min(1);
    let name = TRIES[next as usize];
    let mut trie: LpmTrie<&mut MapData, PathBytes, u32> =
        LpmTrie::try_from(ebpf.map_mut(name).ok_or(map_missing(name))?).map_err(map_err(name))?;
    let stale: Vec<Key<PathBytes>> = trie.keys().filter_map(Result::ok).collect();
    for key in stale {
        trie.remove(&key).map_err(map_err(name))?;
    }
    for (pattern, classes) in &open.paths {
        if let Some((bits, data)) = pattern.key() {
            trie.insert(&Key::new(bits, data), classes, 0).map_err(map_err(name))?;
        }
    }
    let map = NAMES[next as usize];
    let mut names: HashMap<&mut MapData, NameBytes, u32> =
        HashMap::try_from(ebpf.map_mut(map).ok_or(map_missing(map))?).map_err(map_err(map))?;
    let stale: Vec<NameBytes> = names.keys().filter_map(Result::ok).collect();
    for key in stale {
        names.remove(&key).map_err(map_err(map))?;
    }
    for (file_name, classes) in &open.names {
        let mut key = [0u8; NAME_MAX];
        // The analysis only keeps names shorter than the key.
        if let Some(dst) = key.get_mut(..file_name.len()) {
            dst.copy_from_slice(file_name.as_bytes());
            names.insert(key, classes, 0).map_err(map_err(map))?;
        }
    }
    let flags = prefilter_flags::OPEN
        | if filter.close { prefilter_flags::CLOSE } else { 0 }
        | if open.names.is_empty() { 0 } else { prefilter_flags::NAMES };
    let config = PrefilterConfig {
        flags,
        open_any: open.any,
        trie: next,
        open_hidden: open.hidden,
        dirs_bloom: open.paths.keys().fold(0, |bits, p| bits | p.first_component_bloom()),
        names_bloom: open.names.keys().fold(0, |bits, n| bits | component_bloom_bit(n.as_bytes())),
    };
    settings(ebpf)?.set(0, config, 0).map_err(map_err("PREFILTER"))
}

fn forget_dropped_fds(ebpf: &mut Ebpf) -> Result<(), CaptureError> {
    let mut dropped: HashMap<&mut MapData, u64, [u64; 16]> =
        HashMap::try_from(ebpf.map_mut("DROPPED").ok_or(map_missing("DROPPED"))?).map_err(map_err("DROPPED"))?;
    let keys: Vec<u64> = dropped.keys().filter_map(Result::ok).collect();
    for k in keys {
        // Gone already (evicted, or its process exited): nothing to forget.
        let _ = dropped.remove(&k);
    }
    Ok(())
}

/// Events kept back per syscall (of those that can be), all CPUs together.
pub(super) fn counts(
    map: &PerCpuArray<MapData, u64>,
    syscalls: &[&'static Syscall],
) -> Result<Vec<(&'static str, u64)>, CaptureError> {
    let mut out = Vec::new();
    for sc in syscalls {
        if sc.prefilter_role() & (spec_prefilter::OPEN | spec_prefilter::CLOSE) != 0 {
            let per_cpu = map.get(&sc.nr, 0).map_err(map_err("PREFILTERED"))?;
            out.push((sc.name, per_cpu.iter().sum()));
        }
    }
    Ok(out)
}
