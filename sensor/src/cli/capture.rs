//! `sensor capture`: print captured events, or record them to a capture file.

use std::{
    fs::File,
    io::{self, BufWriter, Write},
    path::PathBuf,
    time::Duration,
};

use anyhow::Context as _;
use sensor::{
    capture::{Capture, CaptureConfig, ProbeMode},
    event::{Clock, decode},
};
use sensor_abi::config::Counters;

/// Options of `sensor capture`.
#[derive(clap::Args)]
#[command(after_help = "Lost events (ring buffer full) are counted per CPU in the kernel; a warning \
    is printed on stderr when they occur, and a per-CPU summary when the capture ends.")]
pub struct CaptureArgs {
    /// Print events as JSON lines (the capture-file format) instead of text.
    #[arg(long)]
    json: bool,
    /// Comma-separated syscalls to capture (default: every supported one).
    #[arg(long, value_name = "LIST")]
    syscalls: Option<String>,
    /// Stop after this many seconds (default: until Ctrl-C or SIGTERM).
    #[arg(long, value_name = "S")]
    duration: Option<f64>,
    /// Write JSON lines to FILE instead of printing (a capture file for `replay`).
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Bytes per ring buffer (a power of two; default 8 MiB).
    #[arg(long, value_name = "N", default_value_t = 8 << 20)]
    ring_bytes: u32,
    /// CPUs sharing one ring buffer (0: one ring for all CPUs).
    #[arg(long, value_name = "N", default_value_t = 2)]
    cpus_per_ring: u32,
    /// Wake the reader every N bytes of pending records (0: on every record).
    #[arg(long, value_name = "N", default_value_t = 64 << 10)]
    wakeup_bytes: u32,
    /// Program kind: BTF tracing programs, raw tracepoints, or BTF with raw fallback.
    #[arg(long, value_enum, default_value_t = ProbeMode::Auto)]
    probes: ProbeMode,
}

/// Runs the capture until the duration ends or a signal arrives.
pub async fn run(args: CaptureArgs) -> anyhow::Result<()> {
    let mut cfg = CaptureConfig {
        ring_bytes: args.ring_bytes,
        cpus_per_ring: args.cpus_per_ring,
        wakeup_bytes: args.wakeup_bytes,
        mode: args.probes,
        ..CaptureConfig::default()
    };
    if let Some(list) = &args.syscalls {
        cfg.select_syscalls(list)?;
    }
    let json = args.json || args.output.is_some();
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => {
            Box::new(BufWriter::new(File::create(path).with_context(|| format!("creating {}", path.display()))?))
        }
        None => Box::new(BufWriter::new(io::stdout().lock())),
    };

    let stop = super::stop_signal(args.duration.map(Duration::from_secs_f64))?;
    let mut capture = Capture::start(&cfg)?;
    let clock = Clock::now();
    tokio::pin!(stop);
    let mut report = tokio::time::interval(Duration::from_secs(1));
    let mut lost_reported = 0;
    let mut undecodable = 0u64;
    loop {
        tokio::select! {
            batch = capture.next_batch() => {
                let Some(batch) = batch else { break };
                for record in batch {
                    match decode(&record, &clock) {
                        Ok(event) if json => serde_json::to_writer(&mut out, &event).map_err(io::Error::from)?,
                        Ok(event) => write!(out, "{event}")?,
                        Err(e) => {
                            undecodable += 1;
                            if undecodable.is_power_of_two() {
                                log::warn!("undecodable record ({e}); {undecodable} so far");
                            }
                            continue;
                        }
                    }
                    out.write_all(b"\n")?;
                }
                out.flush()?;
            }
            _ = report.tick() => {
                let counters = capture.counters()?;
                let lost = total(&counters, |c| c.lost + c.shed + c.throttled);
                if lost > lost_reported {
                    log::warn!("{lost} events lost so far: the ring buffers were full, or held back under pressure ({})",
                        per_cpu(&counters));
                    lost_reported = lost;
                }
            }
            _ = &mut stop => break,
        }
    }
    out.flush()?;
    let counters = capture.counters()?;
    eprintln!(
        "capture: {} events emitted, {} lost, {} shed or throttled, {} enter-side misses, {} undecodable; per CPU: {}",
        total(&counters, |c| c.emitted),
        total(&counters, |c| c.lost),
        total(&counters, |c| c.shed + c.throttled),
        total(&counters, |c| c.enter_missed),
        undecodable,
        per_cpu(&counters)
    );
    Ok(())
}

fn total(counters: &[Counters], f: impl Fn(&Counters) -> u64) -> u64 {
    counters.iter().map(f).sum()
}

fn per_cpu(counters: &[Counters]) -> String {
    let cpus: Vec<String> = counters
        .iter()
        .enumerate()
        .map(|(cpu, c)| format!("cpu{cpu} emitted={} lost={} shed={}", c.emitted, c.lost, c.shed))
        .collect();
    cpus.join(", ")
}
