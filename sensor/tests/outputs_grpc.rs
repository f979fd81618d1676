//! The gRPC output against a Falco client from another stack: Python grpcio with stubs
//! generated from Falco's own .proto files, over a real unix socket or TCP with mutual TLS.

mod peers;

use std::{
    io::Write as _,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use sensor::{
    outputs::{
        Sink,
        grpc::{GrpcConfig, GrpcSink, TcpConfig},
    },
    rules::{Alert, Priority, Value},
};
use serde_json::Value as Json;

const PRIORITIES: [Priority; 8] = [
    Priority::Emergency,
    Priority::Alert,
    Priority::Critical,
    Priority::Error,
    Priority::Warning,
    Priority::Notice,
    Priority::Informational,
    Priority::Debug,
];

/// Python stubs generated once per test run from Falco's .proto files (not the sensor's).
fn stubs() -> &'static Path {
    static STUBS: OnceLock<PathBuf> = OnceLock::new();
    STUBS.get_or_init(|| {
        let falco = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/falco");
        let dir = peers::scratch_dir("grpc-stubs");
        let out = Command::new(peers::python())
            .args(["-m", "grpc_tools.protoc", "-I"])
            .arg(&falco)
            .arg(format!("--python_out={}", dir.display()))
            .arg(format!("--grpc_python_out={}", dir.display()))
            .args(["outputs.proto", "schema.proto", "version.proto"])
            .output()
            .expect("grpc_tools.protoc runs");
        assert!(out.status.success(), "protoc on {}: {}", falco.display(), String::from_utf8_lossy(&out.stderr));
        dir
    })
}

/// How the client reaches the server: a target, and TLS files when over TCP.
struct Target {
    address: String,
    /// CA, and the client certificate and key if the client presents one.
    tls: Option<(PathBuf, Option<(PathBuf, PathBuf)>)>,
}

impl Target {
    fn unix(path: &Path) -> Target {
        Target { address: format!("unix://{}", path.display()), tls: None }
    }
}

/// `grpc_client.py` with its connection options, ready for a command.
fn client(target: &Target) -> Command {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/peers/grpc_client.py");
    let mut cmd = Command::new(peers::python());
    cmd.arg(script).arg("--stubs").arg(stubs()).args(["--target", &target.address]);
    if let Some((ca, identity)) = &target.tls {
        cmd.arg("--ca").arg(ca);
        if let Some((cert, key)) = identity {
            cmd.arg("--cert").arg(cert).arg("--key").arg(key);
        }
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd
}

/// Runs a client command to its end and returns its JSON lines; panics if it fails.
fn run(target: &Target, args: &[&str]) -> Vec<Json> {
    json_lines(&client(target).args(args).output().expect("python starts"))
}

fn json_lines(out: &Output) -> Vec<Json> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "client failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    stdout.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

/// Starts `grpc_client.py sub` and waits until the server counts it as a subscriber.
fn subscribe(sink: &GrpcSink, target: &Target, args: &[&str]) -> Child {
    let mut child = client(target).arg("sub").args(args).stdin(Stdio::piped()).spawn().expect("python starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    while sink.stats().subscribers == 0 {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the subscriber exited with {status}: {:?}", child.wait_with_output().unwrap());
        }
        assert!(Instant::now() < deadline, "the subscriber never subscribed");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn alert(rule: &str, priority: Priority, seq: u64, message: &str) -> Arc<Alert> {
    Arc::new(Alert {
        time_ns: 1_700_000_000_123_456_789 + seq,
        rule: rule.into(),
        priority,
        source: "syscall".into(),
        hostname: "node-7".into(),
        message: message.into(),
        tags: vec!["mitre_execution".into(), "T1059".into()],
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
    let target = Target::unix(&socket);

    let version = run(&target, &["version"]);
    assert_eq!(version[0]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(version[0]["major"], env!("CARGO_PKG_VERSION_MAJOR").parse::<u64>().unwrap());
    assert!(version[0]["engine_version"].as_str().unwrap().starts_with("0."), "{}", version[0]);

    let subscriber = subscribe(&sink, &target, &["--until", "last"]);
    let batch: Vec<_> =
        PRIORITIES.iter().zip(0..).map(|(&p, seq)| alert(&format!("rule {p}"), p, seq, "shell in container")).collect();
    sink.send(&batch).await.unwrap();
    sink.send(&[alert("last", Priority::Debug, 8, "the end")]).await.unwrap();
    let received = json_lines(&subscriber.wait_with_output().unwrap());

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
    assert_eq!(rules(run(&target, &["get"])), ["rule Informational", "rule Debug", "last"]);
    assert_eq!(rules(run(&target, &["get"])), Vec::<String>::new());
    sink.send(&[alert("later", Priority::Warning, 9, "again")]).await.unwrap();
    assert_eq!(rules(run(&target, &["get"])), ["later"]);

    // Shutting down ends open subscriptions cleanly instead of waiting for them.
    let open = subscribe(&sink, &target, &["--until", "never sent"]);
    tokio::time::timeout(Duration::from_secs(20), sink.shutdown()).await.expect("shutdown waits for no subscriber");
    assert_eq!(json_lines(&open.wait_with_output().unwrap()), Vec::<Json>::new());
    assert!(!socket.exists(), "the socket outlived the server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_never_reads_misses_alerts_and_costs_bounded_memory() {
    const BURST: u64 = 20_000;
    const BUFFER: usize = 100;
    let dir = peers::scratch_dir("grpc-stalled");
    let (config, socket) = unix_config(&dir, BUFFER, BUFFER);
    let mut sink = GrpcSink::start(&config).await.unwrap();
    let target = Target::unix(&socket);

    // The client opens the stream, then reads nothing until it gets a line on stdin.
    let mut subscriber = subscribe(&sink, &target, &["--until", "end", "--wait-stdin"]);
    // About 4 kB an alert: 80 MB in all if the stream buffered everything.
    let padding = "x".repeat(4000);
    for seq in 0..BURST {
        sink.send(&[alert("burst", Priority::Warning, seq, &padding)]).await.unwrap();
    }
    let stats = sink.stats();
    assert_eq!((stats.buffered, stats.evicted), (BUFFER, BURST - BUFFER as u64), "{stats:?}");

    subscriber.stdin.take().unwrap().write_all(b"go\n").unwrap();
    sink.send(&[alert("end", Priority::Warning, BURST, "end")]).await.unwrap();
    let received = json_lines(&subscriber.wait_with_output().unwrap());
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

/// Makes a CA, a server certificate for 127.0.0.1 and a client certificate with openssl.
fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    openssl(
        &[
            &["req", "-x509"][..],
            &key,
            &["-subj", "/CN=sensor test CA", "-keyout", "ca.key", "-out", "ca.crt", "-days", "1"],
            &["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ]
        .concat(),
    );
    for (name, usage, san) in
        [("server", "serverAuth", "DNS:localhost,IP:127.0.0.1"), ("client", "clientAuth", "DNS:client")]
    {
        std::fs::write(
            dir.join(format!("{name}.ext")),
            format!("subjectAltName={san}\nextendedKeyUsage={usage}\nbasicConstraints=CA:FALSE\n"),
        )
        .unwrap();
        let (csr, crt, keyfile, ext) =
            (format!("{name}.csr"), format!("{name}.crt"), format!("{name}.key"), format!("{name}.ext"));
        openssl(&[&["req"][..], &key, &["-subj", &format!("/CN={name}"), "-keyout", &keyfile, "-out", &csr]].concat());
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            &ext,
            "-out",
            &crt,
        ]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_serves_clients_with_a_certificate_and_refuses_others() {
    let dir = peers::scratch_dir("grpc-tls");
    make_certificates(&dir);
    let config = GrpcConfig {
        unix_socket: None,
        tcp: Some(TcpConfig {
            address: "127.0.0.1:0".parse().unwrap(),
            cert_file: dir.join("server.crt"),
            key_file: dir.join("server.key"),
            client_ca_file: dir.join("ca.crt"),
        }),
        buffer: 10,
        subscriber_buffer: 10,
    };
    let mut sink = GrpcSink::start(&config).await.unwrap();
    let address = format!("127.0.0.1:{}", sink.local_addr().unwrap().port());
    sink.send(&[alert("over tls", Priority::Critical, 1, "hello")]).await.unwrap();

    let without = Target { address: address.clone(), tls: Some((dir.join("ca.crt"), None)) };
    let refused = client(&without).arg("get").output().unwrap();
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("UNAVAILABLE"), "{refused:?}");

    let with =
        Target { address, tls: Some((dir.join("ca.crt"), Some((dir.join("client.crt"), dir.join("client.key"))))) };
    let got = run(&with, &["get"]);
    assert_eq!(got.len(), 1, "the refused client took nothing: {got:?}");
    assert_eq!((got[0]["rule"].as_str(), got[0]["priority"].as_u64()), (Some("over tls"), Some(2)));
    assert_eq!(run(&with, &["version"])[0]["version"], env!("CARGO_PKG_VERSION"));
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
