//! End to end in real containers: `sensor run` with Falco's stable rules watches a Docker
//! container while commands run in it; the alerts must carry that container's id, name and
//! image. Needs root; leases the test bed (`tests/testbed/testbed.sh up PID`, released with
//! `down PID`: it stops when the last lease holder that started it is done).

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use sensor_tests::TestBed;

const FALCO_RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/falco/falco_rules.yaml");

#[test]
fn falco_rules_alert_with_the_container_they_happened_in() {
    let bed = TestBed::up();
    let name = format!("sensor-run-e2e-{}", std::process::id());
    let image = bed.get("IMAGE").to_owned();
    let id = bed.docker(&["run", "-d", "--network", "none", "--name", &name, &image, "sleep", "120"]);

    let sensor = sensor_tests::start_sensor(&[
        "run",
        "--rules",
        FALCO_RULES,
        "--json",
        "--all-matches",
        "--docker-socket",
        bed.get("DOCKER_SOCK"),
        "--container-wait-ms",
        "200",
    ]);

    // The image has no /etc/shadow: make one (written by sh), then read it with cat.
    bed.docker(&["exec", &name, "sh", "-c", "echo 'root:*:1::::::' > /etc/shadow"]);
    bed.docker(&["exec", &name, "cat", "/etc/shadow"]);
    // A listener, then netcat handing a program to the connection (busybox nc -e).
    bed.docker(&["exec", "-d", &name, "nc", "-l", "-p", "9999"]);
    std::thread::sleep(Duration::from_millis(300));
    bed.docker(&["exec", &name, "nc", "127.0.0.1", "9999", "-e", "/bin/true"]);

    // arping opens an AF_PACKET socket (then finds lo is not ARP-capable: fine).
    let _ = bed.docker_status(&["exec", &name, "arping", "-c", "1", "-I", "lo", "127.0.0.1"]);
    // A binary that is not in the image: written into the container, then run.
    bed.docker(&["exec", &name, "sh", "-c", "cp /bin/busybox /tmp/true && /tmp/true"]);
    // A shell with a terminal, as `docker exec -it` gives one; `script` supplies the pty.
    // It exits at once: the kernel side reads the terminal at exec, so no race with /proc.
    let docker_host = format!("unix://{}", bed.get("DOCKER_SOCK"));
    let tty = Command::new("script")
        .args(["-qec", &format!("docker exec -it {name} sh -c true"), "/dev/null"])
        .env("DOCKER_HOST", &docker_host)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(tty.status.success(), "{}", String::from_utf8_lossy(&tty.stderr));

    // Stopped once everything happened (however long that took on a busy machine), with a
    // moment for the last events to arrive; SIGTERM drains the pipeline before exit.
    std::thread::sleep(Duration::from_secs(2));
    unsafe { libc::kill(sensor.id() as i32, libc::SIGTERM) };
    let out = sensor.wait_with_output().unwrap();
    let _ = bed.docker(&["rm", "-f", &name]);
    assert!(out.status.success());
    let alerts: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let find = |rule: &str| {
        alerts
            .iter()
            .find(|a| a["rule"] == rule && a["output_fields"]["container.id"] == id[..12])
            .unwrap_or_else(|| panic!("no '{rule}' alert for container {}: {alerts:#?}", &id[..12]))
    };
    let shadow = find("Read sensitive file untrusted");
    assert_eq!(shadow["output_fields"]["fd.name"], "/etc/shadow");
    assert_eq!(shadow["output_fields"]["container.name"], name.as_str());
    assert_eq!(shadow["output_fields"]["container.image.repository"], image.rsplit_once(':').unwrap().0);
    let packet = find("Packet socket created in container");
    assert_eq!(packet["output_fields"]["proc.name"], "arping");
    let dropped = find("Drop and execute new binary in container");
    assert_eq!(dropped["output_fields"]["proc.exepath"], "/tmp/true");
    let terminal = find("Terminal shell in container");
    assert_ne!(terminal["output_fields"]["proc.tty"], 0, "{terminal}");
    let nc = find("Netcat Remote Code Execution in Container");
    assert!(nc["output_fields"]["proc.cmdline"].as_str().unwrap().contains(" -e /bin/true"), "{nc}");
    find("Redirect STDOUT/STDIN to Network Connection in Container");
    // Host processes stay on the host.
    assert!(alerts.iter().all(|a| a["output_fields"]["container.id"] != "<NA>"), "{alerts:#?}");
    bed.down();
}
