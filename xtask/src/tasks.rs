//! `cargo xtask build | run | test | bench`: each sets up first, then drives cargo.

use std::{os::unix::process::CommandExt, path::PathBuf, time::Instant};

use anyhow::{Context, Result, bail};

use crate::{cmd, setup::setup};

/// Sensor arguments `cargo xtask run` uses when given none: the live mode.
pub const DEFAULT_RUN_ARGS: &[&str] = &["run"];

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
    Stage { name: "test", program: "cargo", args: &["test"], counts_tests: true },
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

/// Sets up, then runs the capture benchmark, passing `args` to the benchmark program.
pub fn bench(args: &[String]) -> Result<()> {
    setup()?;
    let mut cargo = cmd::cargo();
    cargo.args(["bench", "-p", "sensor-tests", "--bench", "capture"]);
    if !args.is_empty() {
        cargo.arg("--").args(args);
    }
    cmd::run(&mut cargo)
}
