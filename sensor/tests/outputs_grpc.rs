//! The gRPC output against a Falco client from another stack: Python grpcio with stubs
//! generated from Falco's own .proto files, over a real unix socket or TCP with mutual TLS;
//! the sink on its own, and behind `sensor replay --config`.

mod peers;

use std::{
    io::Write as _,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use peers::{
    grpc::{Subscriber, Target, call, client},
    pki::Pki,
    read_json_lines,
    sensor::{CONTAINER_ID, RULES, Replay, event_by},
    wait_for,
};
use sensor::{
    outputs::{
        Sink,
        grpc::{GrpcConfig, GrpcSink, TcpConfig},
    },
    rules::{Alert, Priority, Value},
};
use serde_json::Value as Json;

fn alert(rule: &str, priority: Priority, seq: u64, message: &str) -> Arc<Alert> {
    Arc::new(Alert {
        time_ns: 1_700_000_000_123_456_789 + seq,
        rule: rule.into(),
        priority,
        source: "syscall".into(),
        hostname: "node-7".into(),
        message: message.into(),
        tags: vec!["mitre_execution".into(), "T1059".into()].into(),
        fields: vec![
            ("seq".into(), Some(Value::UInt(seq))),
            ("proc.name".into(), Some(Value::Str("bash".into()))),
            ("proc.aname[2]".into(), None),
        ],
    })
}

/// A configuration on a socket in a directory that does not exist yet (the sink creates it).
fn unix_config(dir: &Path, buffer: usize, subscriber_buffer: usize) -> (GrpcConfig, PathBuf) {
    let socket = dir.join("run/grpc.sock");
    (GrpcConfig { unix_socket: Some(socket.clone()), tcp: None, buffer, subscriber_buffer }, socket)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_falco_client_subscribes_gets_and_asks_the_version_over_the_unix_socket() {
    let dir = peers::scratch_dir("grpc-unix");
    let (config, socket) = unix_config(&dir, 3, 100);
    let mut sink = GrpcSink::start(&config).await.unwrap();
    assert_eq!(std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777, 0o600);
    let target = Target::Unix(socket.clone());

    let version = call(&target, &["version"]);
    assert_eq!(version[0]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(version[0]["major"], env!("CARGO_PKG_VERSION_MAJOR").parse::<u64>().unwrap());
    assert!(version[0]["engine_version"].as_str().unwrap().starts_with("0."), "{}", version[0]);

    let subscriber = Subscriber::start(&target, "last", false);
    assert_eq!(sink.stats().subscribers, 1, "subscribed once the server answered the call");
    let batch: Vec<_> = Priority::ALL
        .iter()
        .zip(0..)
        .map(|(&p, seq)| alert(&format!("rule {p}"), p, seq, "shell in container"))
        .collect();
    sink.send(&batch).await.unwrap();
    sink.send(&[alert("last", Priority::Debug, 8, "the end")]).await.unwrap();
    let received = subscriber.alerts();

    assert_eq!(received.len(), 9, "{received:?}");
    for (seq, (got, sent)) in received.iter().zip(batch.iter()).enumerate() {
        assert_eq!(got["rule"], sent.rule);
        // Falco's schema numbers priorities from Emergency = 0 to Debug = 7.
        assert_eq!(got["priority"], seq);
        assert_eq!(got["output"], sent.to_text());
        assert_eq!(got["output"], format!("22:13:20.{:09}: {} shell in container", 123_456_789 + seq, sent.priority));
        assert_eq!(got["time"], serde_json::json!({"seconds": 1_700_000_000u64, "nanos": 123_456_789 + seq}));
        assert_eq!(
            got["output_fields"],
            serde_json::json!({
                "evt.time": (1_700_000_000_123_456_789 + seq as u64).to_string(),
                "seq": seq.to_string(),
                "proc.name": "bash",
                "proc.aname[2]": "<NA>",
            })
        );
        assert_eq!(got["hostname"], "node-7");
        assert_eq!(got["tags"], serde_json::json!(["mitre_execution", "T1059"]));
        assert_eq!(got["source"], "syscall");
        assert_eq!(got["source_deprecated"], 0, "SYSCALL");
    }

    // `get` returns what the buffer (3 alerts) kept, oldest first, and each alert only once.
    let rules = |alerts: Vec<Json>| alerts.iter().map(|a| a["rule"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    assert_eq!(rules(call(&target, &["get"])), ["rule Informational", "rule Debug", "last"]);
    assert_eq!(rules(call(&target, &["get"])), Vec::<String>::new());
    sink.send(&[alert("later", Priority::Warning, 9, "again")]).await.unwrap();
    assert_eq!(rules(call(&target, &["get"])), ["later"]);

    // Shutting down ends open subscriptions cleanly instead of waiting for them.
    let open = Subscriber::start(&target, "never sent", false);
    tokio::time::timeout(Duration::from_secs(20), sink.shutdown()).await.expect("shutdown waits for no subscriber");
    assert_eq!(open.alerts(), Vec::<Json>::new());
    assert!(!socket.exists(), "the socket outlived the server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_never_reads_misses_alerts_and_costs_bounded_memory() {
    const BURST: u64 = 20_000;
    const BUFFER: usize = 100;
    let dir = peers::scratch_dir("grpc-stalled");
    let (config, socket) = unix_config(&dir, BUFFER, BUFFER);
    let mut sink = GrpcSink::start(&config).await.unwrap();
    let target = Target::Unix(socket.clone());

    // The client opens the stream, then reads nothing until it gets a line on stdin.
    let mut subscriber = Subscriber::start(&target, "end", true);
    // About 4 kB an alert: 80 MB in all if the stream buffered everything.
    let padding = "x".repeat(4000);
    for seq in 0..BURST {
        sink.send(&[alert("burst", Priority::Warning, seq, &padding)]).await.unwrap();
    }
    let stats = sink.stats();
    assert_eq!((stats.buffered, stats.evicted), (BUFFER, BURST - BUFFER as u64), "{stats:?}");

    subscriber.release();
    sink.send(&[alert("end", Priority::Warning, BURST, "end")]).await.unwrap();
    let received = subscriber.alerts();
    let seqs: Vec<u64> =
        received.iter().map(|a| a["output_fields"]["seq"].as_str().unwrap().parse().unwrap()).collect();

    let missed = sink.stats().missed;
    // Every alert either reached the subscriber or was counted as missed.
    assert_eq!(received.len() as u64 + missed, BURST + 1, "received {} missed {missed}", received.len());
    // What the stalled stream held: its 100 alerts plus what HTTP/2 flow control let into
    // the connection before the client's window closed (about 1,100 alerts of 4 kB here),
    // far below the 80 MB burst.
    let held = received.len() as u64;
    assert!(held < BURST / 4, "received {held} of {BURST}: the stream buffered without bound");
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "out of order: {seqs:?}");
    assert_eq!(seqs[seqs.len() - 2..], [BURST - 1, BURST], "the newest alerts come last");
    sink.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_serves_clients_with_a_certificate_and_refuses_others() {
    let dir = peers::scratch_dir("grpc-tls");
    let pki = Pki::new(&dir);
    let config = GrpcConfig {
        unix_socket: None,
        tcp: Some(TcpConfig {
            address: "127.0.0.1:0".parse().unwrap(),
            cert_file: pki.server_cert.clone(),
            key_file: pki.server_key.clone(),
            client_ca_file: pki.ca.clone(),
        }),
        buffer: 10,
        subscriber_buffer: 10,
    };
    let mut sink = GrpcSink::start(&config).await.unwrap();
    let address = format!("127.0.0.1:{}", sink.local_addr().unwrap().port());
    sink.send(&[alert("over tls", Priority::Critical, 1, "hello")]).await.unwrap();

    let without = Target::Tls { address: address.clone(), pki: pki.clone(), identify: false };
    let refused = client(&without).arg("get").output().unwrap();
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("UNAVAILABLE"), "{refused:?}");

    let with = Target::Tls { address, pki, identify: true };
    let got = call(&with, &["get"]);
    assert_eq!(got.len(), 1, "the refused client took nothing: {got:?}");
    assert_eq!((got[0]["rule"].as_str(), got[0]["priority"].as_u64()), (Some("over tls"), Some(2)));
    assert_eq!(call(&with, &["version"])[0]["version"], env!("CARGO_PKG_VERSION"));
    sink.shutdown().await;
}

#[tokio::test]
async fn a_stale_socket_is_replaced_but_a_live_one_or_a_file_is_not() {
    let dir = peers::scratch_dir("grpc-stale");
    let (config, socket) = unix_config(&dir, 10, 10);
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    // A socket left by a server that is gone.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let sink = GrpcSink::start(&config).await.expect("the stale socket is replaced");

    let err = GrpcSink::start(&config).await.err().expect("a live socket is kept").to_string();
    assert!(err.contains(&format!("{} is in use", socket.display())), "{err}");
    sink.shutdown().await;

    std::fs::write(&socket, "not a socket").unwrap();
    let err = GrpcSink::start(&config).await.err().expect("a file is kept").to_string();
    assert!(err.contains(&socket.display().to_string()) && err.contains("not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&socket).unwrap(), "not a socket");
}

/// A second rule, fired by one event after a burst: when its alert reaches the file, the
/// sensor has gone through the whole burst.
const END_OF_BURST: &str = r#"
- rule: End of burst
  desc: marks the last event of a test's burst
  condition: evt.type = openat and fd.name = /tmp/end-of-burst
  output: "End of burst (container=%container.name)"
  priority: NOTICE
"#;

/// The most memory the process `pid` has held so far (its peak resident set), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).expect("VmHWM in /proc/PID/status");
    line.trim().trim_end_matches("kB").trim().parse().unwrap()
}

/// Through `sensor replay` as a user runs it: 20,000 alerts, each with a 4 kB process name in
/// its output line and in its fields (160 MB in all), while a subscriber reads nothing.
#[test]
fn replay_goes_through_a_burst_while_a_subscriber_never_reads_and_stays_small() {
    const BURST: u64 = 20_000;
    const BUFFER: u64 = 100;
    let dir = peers::scratch_dir("grpc-replay-stalled");
    let (socket, end_file) = (dir.join("grpc.sock"), dir.join("end.jsonl"));
    let config = format!(
        "outputs:
  - grpc: {{unix_socket: {socket}, buffer: {BUFFER}, subscriber_buffer: {BUFFER}}}
  - file: {{path: {end}}}
    rules: {{include: [End of burst]}}
",
        socket = socket.display(),
        end = end_file.display(),
    );
    let mut sensor = Replay::new(&dir, &format!("{RULES}{END_OF_BURST}"), &config).start();
    sensor.wait_for_log(&format!("serving Falco's gRPC API on unix://{}", socket.display()));
    let mut subscriber = Subscriber::start(&Target::Unix(socket), "End of burst", true);

    // A writer thread, so a sensor that blocked would fail the wait below, not hang the test.
    let mut events = sensor.take_events();
    let writer = std::thread::spawn(move || {
        let process = "p".repeat(4000);
        for seq in 0..BURST {
            writeln!(events, "{}", event_by(&process, &seq.to_string())).unwrap();
        }
        let end = serde_json::json!({
            "evt.type": "openat", "fd.name": "/tmp/end-of-burst", "container.id": CONTAINER_ID, "container.name": "end",
        });
        writeln!(events, "{end}").unwrap();
        events
    });
    wait_for("the end of the burst in the file", || read_json_lines(&end_file).len() == 1);
    // Kept open: the sensor, and its gRPC server, run on until the subscriber has read.
    let events = writer.join().unwrap();
    // Holding the burst for the subscriber takes over 200 MB (measured with a large
    // subscriber_buffer); the bounded stream keeps the whole sensor near 30 MB.
    let peak = peak_rss_kib(sensor.pid());
    assert!(peak < 96 * 1024, "the sensor grew to {peak} KiB while the subscriber stalled");

    subscriber.release();
    let received = subscriber.alerts();
    drop(events);
    let run = sensor.finish();
    assert!(run.success, "{}", run.stderr);
    assert!(run.stderr.contains(&format!("replay: {n} events, {n} alerts", n = BURST + 1)), "{}", run.stderr);

    // The subscriber got what its stream held and the newest alerts, in order, the end last.
    let containers: Vec<&str> =
        received.iter().map(|a| a["output_fields"]["container.name"].as_str().unwrap()).collect();
    assert_eq!(containers.last(), Some(&"end"));
    let seqs: Vec<u64> = containers[..containers.len() - 1].iter().map(|c| c.parse().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "out of order: {seqs:?}");
    assert!((seqs.len() as u64) < BURST / 4, "received {} of {BURST}: the stream buffered without bound", seqs.len());

    let grpc = run.assert_adds_up("grpc");
    assert_eq!((grpc["produced"], grpc["failed"]), (BURST + 1, 0), "{grpc:?}");
    let file = run.assert_adds_up("file");
    assert_eq!((file["filtered"], file["sent"]), (BURST, 1), "{file:?}");
}
