//! The cluster's console over HTTPS with the operator's certificate: a node's `console`
//! output trusting that certificate's CA sends an alert through it and the API finds it;
//! the session cookies are `Secure` and browsers are told to keep to HTTPS; plain HTTP gets
//! no page; a client trusting another CA fails the handshake.

mod peers;

use std::sync::Arc;

use peers::pki::Pki;
use sensor::{
    config::SensorConfig,
    console::{Mode, start},
    outputs::{Sink as _, console::ConsoleSink},
    rules::{Alert, Priority, Value},
};

const TOKEN: &str = "node-token-7e6d5c4b3a29";
const API_TOKEN: &str = "api-token-1a2b3c4d5e6f";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_console_takes_a_nodes_alerts_and_sets_secure_cookies() {
    let dir = peers::scratch_dir("console-tls");
    let pki = Pki::new(&dir);
    let stranger_dir = dir.join("stranger");
    std::fs::create_dir_all(&stranger_dir).unwrap();
    let stranger = Pki::new(&stranger_dir);
    std::fs::write(dir.join("ingest-token"), TOKEN).unwrap();
    std::fs::write(dir.join("api-token"), API_TOKEN).unwrap();
    let hash = sensor::console::hash_password("a console password").unwrap();
    let d = dir.display();
    let config = SensorConfig::parse(&format!(
        "ui:\n  address: 127.0.0.1:0\n  tls: {{cert_file: {}, key_file: {}}}\n  store: {{path: {d}/alerts.db}}\n  \
         users: [{{name: admin, password_hash: '{hash}'}}]\n  ingest_tokens: [{{file: {d}/ingest-token}}]\n  \
         api_tokens: [{{file: {d}/api-token}}]\n",
        pki.server_cert.display(),
        pki.server_key.display(),
    ))
    .unwrap();
    let console = start(&config.ui, Mode::Cluster, None).await.unwrap();
    let port = console.address.port();

    // Clients that connect and never finish a handshake hold up no one else.
    let stalled: Vec<std::net::TcpStream> =
        (0..8).map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();

    // A node's output, trusting the console's CA, sends an alert.
    let node = SensorConfig::parse(&format!(
        "outputs:\n  - console: {{url: 'https://localhost:{port}/', token: {{file: {d}/ingest-token}}, ca_file: {}}}\n",
        pki.ca.display()
    ))
    .unwrap();
    let sensor::outputs::OutputKind::Console(output) = &node.outputs.outputs[0].kind else {
        panic!("a console output")
    };
    let mut sink = ConsoleSink::new(output).unwrap();
    let alert = Arc::new(Alert {
        time_ns: sensor::store::now_ns(),
        rule: "Over TLS".into(),
        priority: Priority::Critical,
        source: "syscall".into(),
        hostname: "node-tls".into(),
        message: "read /etc/shadow over https".into(),
        tags: vec![].into(),
        fields: vec![("proc.name".into(), Some(Value::Str("cat".into())))],
    });
    sink.send(&[alert]).await.expect("the alert is stored");

    let https = |ca: &std::path::Path| {
        let pem = std::fs::read(ca).unwrap();
        let certs = reqwest::Certificate::from_pem_bundle(&pem).unwrap();
        sensor::outputs::install_crypto_provider();
        // Bounded: a console stuck behind the stalled handshakes fails here.
        reqwest::Client::builder().tls_certs_only(certs).timeout(std::time::Duration::from_secs(5)).build().unwrap()
    };
    let client = https(&pki.ca);
    let found = client
        .get(format!("https://localhost:{port}/api/v1/alerts?node=node-tls"))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(found.status(), 200);
    let found: serde_json::Value = found.json().await.unwrap();
    assert_eq!(found["alerts"][0]["rule"], "Over TLS", "{found}");

    let login = client.get(format!("https://localhost:{port}/login")).send().await.unwrap();
    assert_eq!(login.status(), 200);
    assert!(login.headers()["strict-transport-security"].to_str().unwrap().starts_with("max-age="));
    let cookie = login.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("; Secure") && cookie.contains("HttpOnly"), "{cookie}");

    // Plain HTTP gets no page, and a client trusting another CA no connection.
    let plain = reqwest::Client::new().get(format!("http://127.0.0.1:{port}/login")).send().await;
    assert!(plain.is_err() || plain.is_ok_and(|r| r.status() != 200));
    let other = https(&stranger.ca).get(format!("https://localhost:{port}/login")).send().await;
    assert!(other.is_err(), "a certificate from another CA was trusted");
    drop((stalled, console));
}
