//! `cargo xtask build | run | test | bench | noise`: each sets up first, then drives cargo.

use std::{
    collections::BTreeMap,
    fs::File,
    io::{BufRead, BufReader},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::{cmd, setup::setup};

/// Sensor arguments `cargo xtask run` uses when given none: the live mode with the
/// built-in rules, alerts on stdout and kept in the alert store in [`RUN_STORE_DIR`], the
/// web console on http://127.0.0.1:8484/.
pub const DEFAULT_RUN_ARGS: &[&str] =
    &["run", "-o", "outputs=[{stdout: {}}, {store: {path: /var/lib/sensor/alerts.db}}]", "-o", "ui.enabled=true"];

/// Where `cargo xtask run` keeps its alerts (`sensor alerts search` reads there by default).
const RUN_STORE_DIR: &str = "/var/lib/sensor";

/// One stage of `cargo xtask test`: a name and the command it runs from the workspace root.
struct Stage {
    /// Short name used in progress and summary lines.
    name: &'static str,
    /// The program to run (found on the children's `PATH`).
    program: &'static str,
    /// Its arguments.
    args: &'static [&'static str],
    /// A test runner whose `test result:` counts go into the closing `N passed, N failed` line.
    counts_tests: bool,
}

/// The stages of `cargo xtask test`, run in order; the first failure stops the run.
/// Add new stages here.
const TEST_STAGES: &[Stage] = &[
    Stage { name: "fmt", program: "cargo", args: &["fmt", "--all", "--", "--check"], counts_tests: false },
    // The default members: everything but the kernel crate, which only builds for BPF.
    Stage {
        name: "clippy",
        program: "cargo",
        args: &["clippy", "--all-targets", "--", "-D", "warnings"],
        counts_tests: false,
    },
    // The kernel crate, with Debian's toolchain for the BPF target.
    Stage {
        name: "clippy-ebpf",
        program: "cargo",
        args: &[
            "+debian",
            "clippy",
            "-p",
            "sensor-ebpf",
            "--target",
            "bpfel-unknown-none",
            "--release",
            "--target-dir",
            "target/ebpf-clippy",
            "--",
            "-D",
            "warnings",
        ],
        counts_tests: false,
    },
    // Every test binary runs even when one fails: one run shows every failure.
    Stage { name: "test", program: "cargo", args: &["test", "--no-fail-fast"], counts_tests: true },
];

/// Sets up, builds the sensor (release unless `debug`) and returns the binary's path.
pub fn build(debug: bool) -> Result<PathBuf> {
    setup()?;
    let mut cargo = cmd::cargo();
    cargo.arg("build");
    if !debug {
        cargo.arg("--release");
    }
    cargo.args(["-p", "sensor"]);
    cmd::run(&mut cargo)?;
    let binary = cmd::target_dir().join(if debug { "debug" } else { "release" }).join("sensor");
    if !binary.is_file() {
        bail!("the build succeeded but {} is missing", binary.display());
    }
    println!("build: {}", binary.display());
    Ok(binary)
}

/// Sets up, builds the release sensor and replaces this process with it.
///
/// `exec` (rather than spawn and wait) leaves the sensor alone in the foreground, so
/// Ctrl-C reaches it directly and its exit status is the command's.
pub fn run(args: &[String]) -> Result<()> {
    let binary = build(false)?;
    let mut sensor = cmd::command(&binary.to_string_lossy());
    if args.is_empty() {
        std::fs::create_dir_all(RUN_STORE_DIR).with_context(|| format!("creating {RUN_STORE_DIR}"))?;
        sensor.args(DEFAULT_RUN_ARGS);
    } else {
        sensor.args(args);
    }
    println!("run: {}", cmd::display(&sensor));
    let error = sensor.exec();
    Err(error).with_context(|| format!("could not start {}", binary.display()))
}

/// Sets up, then runs every [`TEST_STAGES`] entry in order, stopping at the first failure.
pub fn test() -> Result<()> {
    setup()?;
    let start = Instant::now();
    let total = TEST_STAGES.len();
    let (mut passed, mut failed) = (0, 0);
    for (index, stage) in TEST_STAGES.iter().enumerate() {
        let mut command = cmd::command(stage.program);
        command.args(stage.args);
        println!("test: [{}/{total}] {}: {}", index + 1, stage.name, cmd::display(&command));
        let stage_start = Instant::now();
        let outcome = if stage.counts_tests {
            cmd::run_counting_tests(&mut command).map(|(p, f)| {
                passed += p;
                failed += f;
            })
        } else {
            cmd::run(&mut command)
        };
        if let Err(error) = outcome {
            println!(
                "test: FAILED at stage {} ({}/{total}) after {:.1} s",
                stage.name,
                index + 1,
                start.elapsed().as_secs_f64()
            );
            return Err(error.context(format!("test stage `{}` failed", stage.name)));
        }
        println!("test: [{}/{total}] {} passed in {:.1} s", index + 1, stage.name, stage_start.elapsed().as_secs_f64());
    }
    let names: Vec<&str> = TEST_STAGES.iter().map(|stage| stage.name).collect();
    println!("test: all {total} stages passed ({}) in {:.1} s", names.join(", "), start.elapsed().as_secs_f64());
    // The plain closing line CI reads: the tests of every runner, added up.
    println!("{passed} passed, {failed} failed");
    Ok(())
}

/// Sets up, builds the release sensor (the bench runs `target/release/sensor` as a user
/// would), then runs the overhead benchmark, passing `args` (`--quick`) to it. The report
/// goes to stdout and `target/bench/latest.md`.
pub fn bench(args: &[String]) -> Result<()> {
    build(false)?;
    let mut cargo = cmd::cargo();
    cargo.args(["bench", "-p", "sensor-tests", "--bench", "overhead"]);
    if !args.is_empty() {
        cargo.arg("--").args(args);
    }
    cmd::run(&mut cargo)
}

/// One step of the ordinary work `cargo xtask noise` does under the sensor.
struct Work {
    /// Short name used in progress lines.
    name: &'static str,
    /// The command.
    command: Command,
    /// Whether a failure ends the run; apt may find its lock held or no network, which is
    /// reported and not fatal.
    required: bool,
}

/// The package `cargo xtask noise` reinstalls: small, installed everywhere, and with
/// maintainer scripts that rewrite files below /etc.
const NOISE_PACKAGE: &str = "ca-certificates";

/// The ordinary work of `cargo xtask noise`, in order; `dir` holds its scratch files.
fn noise_work(dir: &Path, clone: &Path) -> Vec<Work> {
    let target = dir.join("target");
    let target = target.to_string_lossy();
    let cargo = |args: &[&str]| {
        let mut c = cmd::cargo();
        c.args(args).args(["--target-dir", &target]);
        c
    };
    let git = |args: &[&str]| {
        let mut c = cmd::command("git");
        c.arg("-C").arg(clone).args(args);
        c
    };
    let apt = |program: &str, args: &[&str]| {
        let mut c = cmd::command(program);
        c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    let mut clone_cmd = cmd::command("git");
    clone_cmd.args(["clone", "--quiet"]).arg(cmd::workspace_root()).arg(clone);
    let mut commit = cmd::command("git");
    commit.args(["-c", "user.name=noise", "-c", "user.email=noise@localhost", "-C"]).arg(clone);
    commit.args(["commit", "--quiet", "--message", "noise: a commit in a clone"]);
    let step = |name, command, required| Work { name, command, required };
    vec![
        // The workspace's own crates only: their build scripts (the eBPF build) run again
        // without rebuilding every dependency each time.
        step("build", cargo(&["clean", "-p", "sensor", "-p", "sensor-abi", "-p", "sensor-tests", "-p", "xtask"]), true),
        step("build", cargo(&["build"]), true),
        step("test", cargo(&["test", "-p", "sensor", "-p", "xtask", "--lib", "--bins"]), true),
        step("git", clone_cmd, true),
        step("git", git(&["log", "--oneline", "-5"]), true),
        step("git", git(&["status", "--short"]), true),
        step("git", git(&["mv", "README.md", "NOISE.md"]), true),
        step("git", commit, true),
        step("packages", apt("apt-get", &["install", "--reinstall", "-y", "-q", NOISE_PACKAGE]), false),
        step("packages", apt("dpkg", &["-s", NOISE_PACKAGE]), true),
        step("packages", apt("apt-cache", &["policy", NOISE_PACKAGE]), true),
    ]
}

/// Sets up, builds the release sensor and runs it with its built-in rules while this
/// machine does ordinary work (builds, unit tests, git, a package reinstall), then reports
/// the alerts per rule and priority. Fails when any alert is at Notice or above.
pub fn noise() -> Result<()> {
    let binary = build(false)?;
    let dir = cmd::target_dir().join("noise");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let alerts = dir.join("alerts.jsonl");
    let log = dir.join("sensor.log");
    let mut sensor = cmd::command(&binary.to_string_lossy());
    sensor.args(["run", "--json"]).stdout(File::create(&alerts)?).stderr(File::create(&log)?);
    println!("noise: {} > {}", cmd::display(&sensor), alerts.display());
    let mut sensor = sensor.spawn().with_context(|| format!("could not start {}", binary.display()))?;
    let outcome = wait_until_capturing(&mut sensor, &log).and_then(|()| do_noise_work(&dir));
    // A last moment for the sensor to evaluate the work's final events.
    std::thread::sleep(Duration::from_secs(5));
    // Stopped as an operator would; the sensor reports this signal too ("Signal sent to the
    // sensor"), which the report below expects and does not count as noise.
    let stop_cmdline = format!("kill -TERM {}", sensor.id());
    cmd::run(cmd::command("kill").args(["-TERM", &sensor.id().to_string()]))?;
    let status = sensor.wait()?;
    outcome?;
    if !status.success() {
        bail!("the sensor failed ({status}); see {}", log.display());
    }
    if let Some(summary) = std::fs::read_to_string(&log)?.lines().rfind(|l| l.starts_with("run: ")) {
        println!("noise: {summary}");
    }
    let loud = report_alerts(&alerts, &stop_cmdline)?;
    if loud > 0 {
        bail!("{loud} alert(s) at Notice or above on ordinary work; see {}", alerts.display());
    }
    Ok(())
}

/// Waits until the sensor logs that its programs are attached (its first `probes, ` line).
fn wait_until_capturing(sensor: &mut Child, log: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if std::fs::read_to_string(log)?.contains(" probes, ") {
            return Ok(());
        }
        if let Some(status) = sensor.try_wait()? {
            bail!("the sensor exited ({status}) before capturing; see {}", log.display());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("the sensor did not start capturing within 60 s; see {}", log.display())
}

/// Runs [`noise_work`] in order, with progress lines; the git work is in a fresh clone
/// below /tmp, removed at the end.
fn do_noise_work(dir: &Path) -> Result<()> {
    let clone = PathBuf::from(format!("/tmp/sensor-noise-clone-{}", std::process::id()));
    let start = Instant::now();
    for mut work in noise_work(dir, &clone) {
        println!("noise: [{}] {}", work.name, cmd::display(&work.command));
        let step_start = Instant::now();
        let status = work.command.status().with_context(|| format!("could not start `{}`", work.name))?;
        println!("noise: [{}] {status} in {:.1} s", work.name, step_start.elapsed().as_secs_f64());
        if !status.success() && work.required {
            let _ = std::fs::remove_dir_all(&clone);
            bail!("noise step `{}` failed ({status})", work.name);
        }
    }
    std::fs::remove_dir_all(&clone).with_context(|| format!("removing {}", clone.display()))?;
    println!("noise: ordinary work done in {:.1} s", start.elapsed().as_secs_f64());
    Ok(())
}

/// Falco's priorities, most severe first; an alert's index in this list is its rank.
const PRIORITIES: [&str; 8] =
    ["Emergency", "Alert", "Critical", "Error", "Warning", "Notice", "Informational", "Debug"];

/// The rule that reports the task's own stop signal.
const STOP_RULE: &str = "Signal sent to the sensor";

/// Prints the alerts of `path` (JSON lines) per priority and rule, with an example of each
/// rule at Notice or above; returns how many alerts are at Notice or above. The alert for
/// the task's own stop (`kill` with `stop_cmdline`) is the self-protection working: it is
/// reported apart and not counted.
fn report_alerts(path: &Path, stop_cmdline: &str) -> Result<usize> {
    let notice = PRIORITIES.iter().position(|p| *p == "Notice").unwrap_or(5);
    let mut counts: BTreeMap<(usize, String), (usize, String)> = BTreeMap::new();
    let mut stop_seen = false;
    for line in BufReader::new(File::open(path)?).lines() {
        let alert: serde_json::Value = serde_json::from_str(&line?).context("an alert that is not JSON")?;
        if !stop_seen && alert["rule"] == STOP_RULE && alert["output_fields"]["proc.cmdline"] == stop_cmdline {
            stop_seen = true;
            continue;
        }
        let priority = alert["priority"].as_str().unwrap_or_default();
        let rank = PRIORITIES.iter().position(|p| *p == priority).unwrap_or(PRIORITIES.len());
        let rule = alert["rule"].as_str().unwrap_or_default().to_owned();
        let entry =
            counts.entry((rank, rule)).or_insert_with(|| (0, alert["output"].as_str().unwrap_or_default().into()));
        entry.0 += 1;
    }
    let seen = if stop_seen { "reported, as it should be" } else { "not reported" };
    println!("noise: the task's own stop signal ({stop_cmdline}): {seen}");
    let total: usize = counts.values().map(|(n, _)| n).sum();
    println!("noise: {total} alert(s) per priority and rule (the stop signal left out):");
    let mut loud = 0;
    for ((rank, rule), (n, example)) in &counts {
        let priority = PRIORITIES.get(*rank).copied().unwrap_or("?");
        println!("  {priority:<13} {n:>6}  {rule}");
        if *rank <= notice {
            loud += n;
            println!("  {:<13} {:>6}  e.g. {}", "", "", example.chars().take(400).collect::<String>());
        }
    }
    println!("noise: {loud} alert(s) at Notice or above");
    Ok(loud)
}
