//! The sensor's memory (built-in rules): after it starts, after many short processes, and
//! after many containers started and stopped on the container test bed.

use std::{path::Path, time::Duration};

use sensor_tests::{
    TestBed,
    bench::{
        markdown::Table,
        stats::{megabytes, thousands},
    },
};

use crate::{
    Plan,
    load::{self, Length, Loop},
    sensor::{Memory, Rules, Sensor},
    storms::CATCH_UP,
};

/// Time for the sensor to settle before and after the work.
const SETTLE: Duration = Duration::from_secs(2);
/// Containers started at once.
const PARALLEL: usize = 2;

/// One measurement: what was done, and the memory after it (or why there is none).
pub struct Row {
    /// What the sensor watched.
    pub case: String,
    /// Its memory after that.
    pub memory: Result<Memory, String>,
}

/// Memory after start and after `plan.processes` short processes (fork+exec /bin/true).
pub fn processes(plan: &Plan, logs: &Path) -> Vec<Row> {
    let case = format!("after {} processes (fork+exec /bin/true)", thousands(plan.processes));
    eprintln!("bench: memory, {case}");
    let work = || load::run(Loop::Exec, 0, Length::Iters(plan.processes), &[]).map(drop);
    watch(&[], &logs.join("memory-processes.log"), ["started".into(), case], work)
}

/// Memory after start and after `plan.containers` Docker containers started and stopped on
/// the test bed (with the test bed's runtime sockets given to the sensor).
pub fn containers(plan: &Plan, logs: &Path) -> Vec<Row> {
    let case = format!("after {} Docker containers started and stopped", plan.containers);
    eprintln!("bench: memory, {case}");
    let bed = match TestBed::try_up() {
        Ok(bed) => bed,
        Err(why) => return vec![Row { case, memory: Err(format!("no container test bed ({why})")) }],
    };
    let sockets = [
        ("--cri-socket", "CRI_SOCK"),
        ("--containerd-socket", "CRI_SOCK"),
        ("--docker-socket", "DOCKER_SOCK"),
        ("--podman-socket", "PODMAN_SOCK"),
    ];
    let args: Vec<String> =
        sockets.iter().flat_map(|(flag, key)| [flag.to_string(), bed.get(key).to_owned()]).collect();
    let work = || run_containers(&bed, plan.containers);
    let started = "started with the test bed's runtime sockets".to_owned();
    let rows = watch(&args, &logs.join("memory-containers.log"), [started, case], work);
    bed.down();
    rows
}

/// Starts `docker run --rm` of the test bed's image `n` times, [`PARALLEL`] at once.
fn run_containers(bed: &TestBed, n: usize) -> Result<(), String> {
    let image = bed.get("IMAGE");
    for batch in 0..n.div_ceil(PARALLEL) {
        let count = PARALLEL.min(n - batch * PARALLEL);
        let children: Vec<_> = (0..count)
            .map(|_| {
                bed.docker_command()
                    .args(["run", "--rm", "--network", "none", image, "true"])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .map_err(|e| format!("docker run: {e}"))
            })
            .collect::<Result<_, _>>()?;
        for child in children {
            let out = child.wait_with_output().map_err(|e| format!("docker run: {e}"))?;
            if !out.status.success() {
                return Err(format!("docker run failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
            }
        }
    }
    Ok(())
}

/// Starts the sensor (built-in rules, `args`), reads its memory, does `work`, and reads it
/// again: the rows `cases[0]` (started) and `cases[1]` (after the work).
fn watch(args: &[String], log: &Path, cases: [String; 2], work: impl FnOnce() -> Result<(), String>) -> Vec<Row> {
    let [started, after_work] = cases;
    let sensor = match Sensor::start(Rules::Builtin, args, log) {
        Ok(sensor) => sensor,
        Err(why) => return vec![Row { case: after_work, memory: Err(why) }],
    };
    std::thread::sleep(SETTLE);
    let at_start = sensor.memory();
    // Read once the sensor has worked through the events of the work.
    let after = work().and_then(|()| sensor.catch_up(CATCH_UP)).map(|_| {
        std::thread::sleep(SETTLE);
        sensor.memory()
    });
    vec![Row { case: started, memory: Ok(at_start) }, Row { case: after_work, memory: after }]
}

/// The memory table.
pub fn table(rows: &[Row]) -> Table {
    let mut table = Table::new([
        "sensor (built-in rules)",
        "VmRSS",
        "VmHWM",
        "of VmRSS: BPF maps mapped (the rings, twice)",
        "VmRSS without them",
    ]);
    for row in rows {
        match &row.memory {
            Ok(m) => table.row([
                row.case.clone(),
                megabytes(m.rss_kib),
                megabytes(m.hwm_kib),
                megabytes(m.maps_kib),
                megabytes(m.rss_kib.saturating_sub(m.maps_kib)),
            ]),
            Err(why) => table.row([row.case.clone(), format!("not measured: {why}")]),
        }
    }
    table
}
