//! The metrics endpoint over HTTPS with client certificates, as curl sees it: the probes'
//! paths answer any TLS client, `/metrics` only one with a certificate from the configured
//! CA; a certificate from another CA fails the handshake; plain HTTP gets nothing; every
//! refusal is counted.

mod peers;

use std::{ffi::OsString, process::Command, sync::Arc};

use peers::pki::Pki;
use sensor::{
    config::SensorConfig,
    metrics::{Exposition, Metrics},
};

/// `curl` of `url` with `args`: its exit code and the HTTP status it got (0: none).
fn curl(url: &str, args: &[OsString]) -> (i32, u16) {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "--max-time", "5", "-w", "%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .expect("curl runs");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_metrics_need_a_client_certificate_and_probes_do_not() {
    let dir = peers::scratch_dir("metrics-tls");
    let pki = Pki::new(&dir);
    let stranger_dir = dir.join("stranger");
    std::fs::create_dir_all(&stranger_dir).unwrap();
    let stranger = Pki::new(&stranger_dir);
    let config = SensorConfig::parse(&format!(
        "metrics:\n  address: 127.0.0.1:0\n  tls: {{cert_file: {}, key_file: {}, client_ca_file: {}}}\n",
        pki.server_cert.display(),
        pki.server_key.display(),
        pki.ca.display()
    ))
    .unwrap();
    sensor::metrics::check(&config.metrics).expect("the TLS files load");
    let metrics = Arc::new(Metrics::default());
    metrics.set_ready(true);
    let addr = metrics.clone().serve(&config.metrics).await.unwrap().expect("an address");

    let results = tokio::task::spawn_blocking(move || {
        let https = |path: &str| format!("https://{addr}{path}");
        let ca: Vec<OsString> = vec!["--cacert".into(), pki.ca.clone().into()];
        let with = |p: &Pki| {
            let cert: Vec<OsString> =
                vec!["--cert".into(), p.client_cert.clone().into(), "--key".into(), p.client_key.clone().into()];
            [ca.clone(), cert].concat()
        };
        [
            curl(&https("/healthz"), &ca),
            curl(&https("/readyz"), &ca),
            curl(&https("/metrics"), &ca),
            curl(&https("/metrics"), &with(&pki)),
            curl(&https("/metrics"), &with(&stranger)),
            curl(&format!("http://{addr}/metrics"), &[]),
        ]
    })
    .await
    .unwrap();
    let [healthz, readyz, anonymous, client, stranger, plain] = results;
    assert_eq!(healthz, (0, 200), "probes need no certificate");
    assert_eq!(readyz, (0, 200));
    assert_eq!(anonymous, (0, 403), "/metrics without a client certificate");
    assert_eq!(client, (0, 200), "/metrics with a certificate from the CA");
    assert_ne!(stranger.0, 0, "a certificate from another CA passed the handshake: {stranger:?}");
    assert_eq!(stranger.1, 0);
    assert_eq!(plain.1, 0, "plain HTTP got an answer");

    // The server counts a failed handshake when it sees the connection end, which may be
    // after the client has given up: the counters are read until both are in (5 s at most).
    let errors = |text: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix("sensor_http_connections_closed_total{reason=\"error\"} "))
            .and_then(|n| n.parse::<u64>().ok())
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut text = metrics.render(Exposition::Classic).unwrap();
    while errors(&text).is_none_or(|n| n < 2) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        text = metrics.render(Exposition::Classic).unwrap();
    }
    assert!(text.contains("sensor_http_unauthorized_requests_total 1\n"), "{text}");
    assert!(errors(&text).is_some_and(|n| n >= 2), "failed handshakes counted: {:?}\n{text}", errors(&text));
}
