//! The outputs end to end: `sensor replay --config` sends real alerts over real HTTP to a
//! Telegram stand-in that checks requests as Telegram does, to a webhook receiver (plain, and
//! a Python HTTPS server requiring a client certificate), to a file, to stdout, and, for the
//! tests of every output at once, to an aiosmtpd relay and a Python gRPC subscriber.

mod peers;

use std::{
    collections::{HashMap, VecDeque},
    convert::Infallible,
    io::{BufRead as _, BufReader},
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use http_body_util::{BodyExt as _, Full};
use hyper::{Request, Response, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use peers::{
    grpc::{Subscriber, Target},
    pki::Pki,
    read_json_lines,
    sensor::{AWKWARD_NAME, Finished, RULES, Replay, event},
    smtp::{self, SmtpServer},
    wait_for,
};
use sensor::outputs::smtp::TlsMode;
use serde_json::{Value, json};

/// The bot token the tests give the sensor; it must never show in its output.
const TOKEN: &str = "123456789:AAH-test_token-never-printed";
const CHAT_ID: &str = "-1001234567890";
/// The webhook's Authorization header, a secret too.
const WEBHOOK_AUTH: &str = "Bearer s3cret-webhook";

// ---------------------------------------------------------------------------------------------
// An HTTP peer on 127.0.0.1, recording every request and answering through a handler.

/// One request as the peer received it.
#[derive(Clone, Debug)]
struct Received {
    at: Instant,
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

type Handler = Box<dyn Fn(&Received) -> (u16, String) + Send + Sync>;

struct HttpPeer {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    _runtime: tokio::runtime::Runtime,
}

impl HttpPeer {
    fn start(handler: Handler) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let (log, handler) = (received.clone(), Arc::new(handler));
        runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (log, handler) = (log.clone(), handler.clone());
                let service = service_fn(move |request: Request<Incoming>| {
                    let (log, handler) = (log.clone(), handler.clone());
                    async move {
                        let path = request.uri().path().to_owned();
                        let headers = request
                            .headers()
                            .iter()
                            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                            .collect();
                        let body =
                            request.into_body().collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
                        let got = Received { at: Instant::now(), path, headers, body };
                        let (status, answer) = handler(&got);
                        log.lock().unwrap().push(got);
                        let response = Response::builder()
                            .status(status)
                            .header("content-type", "application/json")
                            .body(Full::new(bytes::Bytes::from(answer)))
                            .unwrap();
                        Ok::<_, Infallible>(response)
                    }
                });
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
        HttpPeer { addr, received, _runtime: runtime }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// What the Telegram stand-in answers once the request passed its checks.
#[derive(Clone, Copy)]
enum Answer {
    Ok,
    TooManyRequests { retry_after: u64 },
    ServerError,
}

/// A Telegram Bot API stand-in: checks path, token, JSON body, chat and MarkdownV2 as Telegram
/// does, then answers from `script` (200 when it runs out).
fn telegram(script: &[Answer]) -> HttpPeer {
    let script = Mutex::new(script.iter().copied().collect::<VecDeque<_>>());
    HttpPeer::start(Box::new(move |request| {
        let refuse = |code: u16, description: &str| {
            (code, json!({"ok": false, "error_code": code, "description": description}).to_string())
        };
        let Some(rest) = request.path.strip_prefix("/bot") else { return refuse(404, "Not Found") };
        let Some((token, method)) = rest.split_once('/') else { return refuse(404, "Not Found") };
        if token != TOKEN {
            return refuse(401, "Unauthorized");
        }
        if method != "sendMessage" {
            return refuse(404, "Not Found");
        }
        if !request.headers.get("content-type").is_some_and(|t| t.starts_with("application/json")) {
            return refuse(400, "Bad Request: message text is empty");
        }
        let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
            return refuse(400, "Bad Request: can't parse JSON");
        };
        let chat = match &body["chat_id"] {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return refuse(400, "Bad Request: chat_id is empty"),
        };
        if chat != CHAT_ID {
            return refuse(400, "Bad Request: chat not found");
        }
        let Some(text) = body["text"].as_str() else { return refuse(400, "Bad Request: message text is empty") };
        if body["parse_mode"] != "MarkdownV2" {
            return refuse(400, "Bad Request: unsupported parse_mode");
        }
        let plain = match parse_markdown_v2(text) {
            Ok(plain) => plain,
            Err(e) => return refuse(400, &format!("Bad Request: can't parse entities: {e}")),
        };
        if plain.encode_utf16().count() > 4096 {
            return refuse(400, "Bad Request: message is too long");
        }
        match script.lock().unwrap().pop_front().unwrap_or(Answer::Ok) {
            Answer::Ok => (200, json!({"ok": true, "result": {"message_id": 1, "text": plain}}).to_string()),
            Answer::TooManyRequests { retry_after } => (
                429,
                json!({"ok": false, "error_code": 429, "description": format!("Too Many Requests: retry after {retry_after}"),
                       "parameters": {"retry_after": retry_after}})
                .to_string(),
            ),
            Answer::ServerError => refuse(500, "Internal Server Error"),
        }
    }))
}

/// MarkdownV2 as Telegram reads it: `\` escapes any character, `*`, `_`, `__`, `~` and `||`
/// open and close entities, every other special character is reserved. The plain text.
fn parse_markdown_v2(text: &str) -> Result<String, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut plain = String::new();
    let mut open: Vec<&str> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let entity = match (c, chars.get(i + 1)) {
            ('\\', Some(next)) => {
                plain.push(*next);
                i += 2;
                continue;
            }
            ('\\', None) => return Err("Character '\\' is reserved and must be escaped with the preceding '\\'".into()),
            ('_', Some('_')) => "__",
            ('|', Some('|')) => "||",
            ('*', _) => "*",
            ('_', _) => "_",
            ('~', _) => "~",
            (c, _) if "_*[]()~`>#+-=|{}.!".contains(c) => {
                return Err(format!("Character '{c}' is reserved and must be escaped with the preceding '\\'"));
            }
            (c, _) => {
                plain.push(c);
                i += 1;
                continue;
            }
        };
        match open.iter().position(|e| *e == entity) {
            Some(at) => drop(open.remove(at)),
            None => open.push(entity),
        }
        i += entity.chars().count();
    }
    match open.first() {
        Some(entity) => Err(format!("Can't find end of the entity {entity}")),
        None => Ok(plain),
    }
}

/// A webhook receiver answering the statuses of `script` in turn (200 after it).
fn webhook(script: &[u16]) -> HttpPeer {
    let script = Mutex::new(script.iter().copied().collect::<VecDeque<_>>());
    HttpPeer::start(Box::new(move |_| (script.lock().unwrap().pop_front().unwrap_or(200), "{}".into())))
}

// ---------------------------------------------------------------------------------------------
// Running the sensor.

/// `sensor replay` of the rule [`RULES`] with `config`, the Telegram token and the webhook
/// secret in its environment.
fn sensor_replay(dir: &Path, config: &str) -> Replay {
    Replay::new(dir, RULES, config).env("TELEGRAM_TEST_TOKEN", TOKEN).env("WEBHOOK_TEST_AUTH", WEBHOOK_AUTH)
}

/// Fails if the sensor printed a secret; `run`.
fn secrets_hidden(run: Finished) -> Finished {
    for secret in [TOKEN, WEBHOOK_AUTH, smtp::PASSWORD] {
        assert!(!run.stdout.contains(secret) && !run.stderr.contains(secret), "`{secret}` leaked:\n{}", run.stderr);
    }
    run
}

/// Replays `events` (from a file) with `config` and more command-line arguments `extra`.
fn replay(dir: &Path, config: &str, events: &[String], extra: &[&str]) -> Finished {
    secrets_hidden(sensor_replay(dir, config).args(extra).run(events))
}

// ---------------------------------------------------------------------------------------------
// The tests.

/// `replay --events -` reads stdin: the sensor starts, the gRPC subscriber subscribes, and
/// only then the event is written, so the subscriber is there when the alert is produced.
#[test]
fn one_alert_reaches_every_output_in_its_documented_format() {
    let dir = peers::scratch_dir("formats");
    let pki = Pki::new(&dir);
    let relay = SmtpServer::start(&pki, TlsMode::Starttls, &[]);
    let (bot, hook) = (telegram(&[]), webhook(&[]));
    let (file, socket) = (dir.join("alerts.jsonl"), dir.join("run/grpc.sock"));
    let config = format!(
        "outputs:
  - stdout: {{format: text}}
  - file: {{path: {file}}}
  - telegram:
      chat_id: \"{CHAT_ID}\"
      message_thread_id: 42
      token: {{env: TELEGRAM_TEST_TOKEN}}
      base_url: {bot}
  - webhook:
      url: {hook}/falco
      headers: {{Authorization: {{env: WEBHOOK_TEST_AUTH}}, X-Source: sensor}}
{smtp}  - grpc: {{unix_socket: {socket}}}
",
        file = file.display(),
        bot = bot.url(),
        hook = hook.url(),
        smtp = smtp::output_entry(&pki, relay.port, &smtp::password_file(&dir), ""),
        socket = socket.display(),
    );
    let mut sensor = sensor_replay(&dir, &config).start();
    sensor.wait_for_log(&format!("serving Falco's gRPC API on unix://{}", socket.display()));
    let subscriber = Subscriber::start(&Target::Unix(socket), "Shadow read", false);
    sensor.send(&event("web"));
    let run = secrets_hidden(sensor.finish());
    assert!(run.success, "{}", run.stderr);

    // stdout: Falco's text line.
    let output =
        format!("Sensitive file opened (file=/etc/shadow proc={AWKWARD_NAME} container_id=3ad7b26ded6d container=web)");
    let line = format!("00:00:00.000000000: Warning {output}");
    assert_eq!(run.stdout, format!("{line}\n"));

    // The file: Falco's JSON alert on one line.
    let written = read_json_lines(&file);
    assert_eq!(written.len(), 1);
    let alert = &written[0];
    assert_eq!(alert["rule"], "Shadow read");
    assert_eq!(alert["priority"], "Warning");
    assert_eq!(alert["output"], line);
    assert_eq!(alert["source"], "syscall");
    assert_eq!(alert["time"], "1970-01-01T00:00:00.000000000Z");
    let fields = json!({
        "fd.name": "/etc/shadow", "proc.name": AWKWARD_NAME, "container.id": "3ad7b26ded6d", "container.name": "web",
    });
    let with_time = |time: Value| {
        let mut fields = fields.clone();
        fields["evt.time"] = time;
        fields
    };
    // Falco's JSON gives evt.time as a number (nanoseconds), its gRPC response as text.
    assert_eq!(alert["output_fields"], with_time(json!(0)));
    assert_eq!(alert["tags"], json!(["filesystem", "mitre_credential_access"]));
    let host = alert["hostname"].as_str().unwrap();
    assert!(!host.is_empty());

    // Telegram: one message the stand-in parsed, in the documented layout.
    let sent = bot.received();
    assert_eq!(sent.len(), 1);
    let body = sent[0].json();
    assert_eq!((body["chat_id"].as_str(), body["message_thread_id"].as_i64()), (Some(CHAT_ID), Some(42)));
    let plain = parse_markdown_v2(body["text"].as_str().unwrap()).unwrap();
    assert_eq!(
        plain,
        format!(
            "[Warning] Shadow read\n{output}\n\nTime: 1970-01-01T00:00:00.000000000Z\nHost: {host}\nSource: syscall\n\
             Tags: filesystem, mitre_credential_access\nFields:\n• fd.name: /etc/shadow\n• proc.name: {AWKWARD_NAME}\n\
             • container.id: 3ad7b26ded6d\n• container.name: web"
        )
    );

    // The webhook: the same Falco JSON, with the configured headers.
    let posted = hook.received();
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0].path, "/falco");
    assert_eq!(posted[0].json(), *alert);
    assert_eq!(posted[0].headers["content-type"], "application/json");
    assert_eq!(posted[0].headers["authorization"], WEBHOOK_AUTH);
    assert_eq!(posted[0].headers["x-source"], "sensor");

    // The mail: STARTTLS and AUTH with the password from its file, subject `[Priority] rule`,
    // the alert and its fields in a text part and an HTML part.
    let mail = relay.next_mail();
    smtp::assert_envelope(&mail);
    assert_eq!(mail["subject"], "[Warning] Shadow read", "{mail}");
    let text = smtp::part(&mail, "text/plain");
    assert!(text.contains(&format!("Output:  {line}\n")), "{text}");
    assert!(text.contains(&format!("Host:    {host}\n")), "{text}");
    assert!(text.contains(&format!("  proc.name = {AWKWARD_NAME}\n")), "{text}");
    assert!(text.contains("  container.id = 3ad7b26ded6d\n"), "{text}");
    let html = smtp::part(&mail, "text/html");
    assert!(html.contains("<code>x_*[1](2)~`&gt;#+-=|{}.!\\&lt;b&gt;&amp;</code>"), "{html}");
    relay.assert_no_mail();

    // gRPC: Falco's `response`, as Falco's own stubs decode it.
    let got = subscriber.alerts();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["rule"], "Shadow read");
    assert_eq!(got[0]["priority"], 4, "Falco's schema numbers Warning 4");
    assert_eq!(got[0]["output"], line);
    assert_eq!(got[0]["output_fields"], with_time(json!("0")));
    assert_eq!((got[0]["hostname"].as_str(), got[0]["source"].as_str()), (Some(host), Some("syscall")));
    assert_eq!(got[0]["tags"], alert["tags"]);

    for name in ["stdout", "file", "telegram", "webhook", "smtp", "grpc"] {
        let c = run.assert_adds_up(name);
        assert_eq!((c["produced"], c["sent"], c["retried"]), (1, 1, 0), "{name}");
    }
}

/// A Telegram output retrying fast, so retries without a requested wait are quick.
fn telegram_config(bot: &HttpPeer, extra: &str) -> String {
    format!(
        "outputs:
  - telegram:
      chat_id: \"{CHAT_ID}\"
      token: {{env: TELEGRAM_TEST_TOKEN}}
      base_url: {}
    retry: {{attempts: 4, initial_backoff: 20ms, max_backoff: 100ms}}
{extra}",
        bot.url()
    )
}

#[test]
fn telegram_server_errors_are_retried_until_delivered() {
    let dir = peers::scratch_dir("telegram-500");
    let bot = telegram(&[Answer::ServerError, Answer::ServerError]);
    let run = replay(&dir, &telegram_config(&bot, ""), &[event("c1")], &[]);
    assert!(run.success, "{}", run.stderr);
    assert_eq!(bot.received().len(), 3);
    let c = run.assert_adds_up("telegram");
    assert_eq!((c["sent"], c["retried"], c["failed"]), (1, 2, 0));
    assert!(
        run.stderr.contains("Telegram answered 500 Internal Server Error: Internal Server Error"),
        "{}",
        run.stderr
    );
}

#[test]
fn telegram_retry_after_is_honoured_up_to_max_backoff() {
    let dir = peers::scratch_dir("telegram-429");
    let bot = telegram(&[Answer::TooManyRequests { retry_after: 2 }, Answer::TooManyRequests { retry_after: 3600 }]);
    // Up to 5 s between attempts: Telegram's 2 s is honoured, its hour is not.
    let config = telegram_config(&bot, "").replace("max_backoff: 100ms", "max_backoff: 5s");
    let run = replay(&dir, &config, &[event("c1")], &[]);
    assert!(run.success, "{}", run.stderr);
    let sent = bot.received();
    assert_eq!(sent.len(), 3);
    // The backoff alone would have retried within 20 ms.
    let waited = sent[1].at - sent[0].at;
    assert!(waited >= Duration::from_secs(2), "retried after {waited:?}, not the 2 s Telegram asked for");
    let capped = sent[2].at - sent[1].at;
    assert!(
        capped >= Duration::from_secs(5) && capped < Duration::from_secs(7),
        "retried after {capped:?}, not at max_backoff"
    );
    let c = run.assert_adds_up("telegram");
    assert_eq!((c["sent"], c["retried"]), (1, 2));
}

#[test]
fn telegram_rejections_are_final_and_errors_never_show_the_token() {
    let dir = peers::scratch_dir("telegram-400");
    let bot = telegram(&[]);
    let config = telegram_config(&bot, "").replace(CHAT_ID, "-100999");
    let run = replay(&dir, &config, &[event("c1")], &[]);
    assert!(run.success, "an output failing does not fail the sensor: {}", run.stderr);
    assert_eq!(bot.received().len(), 1);
    let c = run.assert_adds_up("telegram");
    assert_eq!((c["sent"], c["failed"], c["retried"]), (0, 1, 0));
    assert!(run.stderr.contains("Telegram answered 400 Bad Request: Bad Request: chat not found"), "{}", run.stderr);

    // Nothing listening: reqwest's errors name the URL, which holds the token.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let config = telegram_config(&bot, "").replace(&bot.url(), &url);
    let run = replay(&dir, &config, &[event("c1")], &[]);
    let c = run.assert_adds_up("telegram");
    assert_eq!((c["failed"], c["retried"]), (1, 3));
    assert!(run.stderr.contains("Telegram: error sending request"), "{}", run.stderr);
}

#[test]
fn webhook_retries_server_errors_and_gives_up_on_client_errors() {
    let dir = peers::scratch_dir("webhook-codes");
    let hook = webhook(&[503, 200, 404]);
    let config = format!("outputs:\n  - webhook: {{url: {}/}}\n    retry: {{initial_backoff: 10ms}}\n", hook.url());
    let run = replay(&dir, &config, &[event("first"), event("second")], &[]);
    assert!(run.success, "{}", run.stderr);
    let containers: Vec<Value> =
        hook.received().iter().map(|r| r.json()["output_fields"]["container.name"].clone()).collect();
    assert_eq!(containers, [json!("first"), json!("first"), json!("second")]);
    let c = run.assert_adds_up("webhook");
    assert_eq!((c["sent"], c["failed"], c["retried"]), (1, 1, 1));
    assert!(run.stderr.contains("answered 404 Not Found"), "{}", run.stderr);
}

/// Sends `signal` to the process `pid`.
fn kill(pid: u32, signal: &str) {
    let status = Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status().unwrap();
    assert!(status.success());
}

/// `sensor replay --events -` keeps running while its input is open, which lets the test
/// rotate the file under a running sensor.
#[test]
fn the_file_is_reopened_after_rotation_on_sighup_and_sigusr1() {
    let dir = peers::scratch_dir("rotate");
    let file = dir.join("alerts.jsonl");
    let config = format!("outputs:\n  - file: {{path: {}}}\n", file.display());
    let mut sensor = sensor_replay(&dir, &config).start();
    let containers = |path: &Path| -> Vec<String> {
        read_json_lines(path)
            .iter()
            .map(|a| a["output_fields"]["container.name"].as_str().unwrap().to_owned())
            .collect()
    };

    sensor.send(&event("before"));
    wait_for("the first alert", || read_json_lines(&file).len() == 1);
    let mut rotated = Vec::new();
    for (n, signal) in ["HUP", "USR1"].iter().enumerate() {
        let old = dir.join(format!("alerts.jsonl.{}", n + 1));
        std::fs::rename(&file, &old).unwrap();
        kill(sensor.pid(), signal);
        // The new file exists a moment before the sink writes to it; the log says it does.
        sensor.wait_for_log(&format!("reopened {} on SIG{signal}", file.display()));
        sensor.send(&event(&format!("after-{signal}")));
        wait_for("the alert after rotation", || read_json_lines(&file).len() == 1);
        rotated.push(old);
    }
    let run = secrets_hidden(sensor.finish());
    assert!(run.success, "{}", run.stderr);
    assert_eq!(containers(&rotated[0]), ["before"]);
    assert_eq!(containers(&rotated[1]), ["after-HUP"]);
    assert_eq!(containers(&file), ["after-USR1"]);
    let c = run.assert_adds_up("file");
    assert_eq!(c["sent"], 3);
}

/// Accepts connections and never answers: an output stuck for good.
fn black_hole() -> (std::net::TcpListener, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    (listener, url)
}

/// Every output type at once: Telegram and the file rate limited, a webhook stuck for good,
/// stdout filtering everything out, mail in digests, gRPC with nobody subscribed.
#[test]
fn a_burst_of_10000_alerts_is_rate_limited_dropped_and_counted_without_blocking_detection() {
    const BURST: u64 = 10_000;
    let dir = peers::scratch_dir("burst");
    let bot = telegram(&[]);
    let (_hole, stuck_url) = black_hole();
    let pki = Pki::new(&dir);
    let relay = SmtpServer::start(&pki, TlsMode::Starttls, &[]);
    let file = dir.join("alerts.jsonl");
    let config = format!(
        "outputs:
  - telegram:
      chat_id: \"{CHAT_ID}\"
      token: {{env: TELEGRAM_TEST_TOKEN}}
      base_url: {bot}
    rate_limit: {{alerts: 3, per: 1h}}
  - file: {{path: {file}}}
    rate_limit: {{alerts: 5, per: 1h}}
    queue: {{capacity: 10000}}
  - webhook: {{url: {stuck_url}}}
    name: stuck
    timeout: 1h
    queue: {{capacity: 4}}
  - stdout: {{}}
    min_priority: critical
{smtp}  - grpc: {{unix_socket: {socket}, buffer: 100}}
",
        bot = bot.url(),
        file = file.display(),
        smtp = smtp::output_entry(&pki, relay.port, &smtp::password_file(&dir), ""),
        socket = dir.join("grpc.sock").display(),
    );
    let events: Vec<String> = (0..BURST).map(|_| event("burst")).collect();
    // The stuck webhook holds the exit for the whole bound; the others are done well before.
    let run = replay(&dir, &config, &events, &["--drain-timeout", "10"]);
    assert!(run.success, "{}", run.stderr);
    // Detection went through every event while an output was stuck.
    assert!(run.stderr.contains(&format!("replay: {BURST} events, {BURST} alerts")), "{}", run.stderr);

    // Telegram: at most the burst of 3, the rest suppressed (or dropped by the queue), and
    // one summary saying how many were suppressed.
    let telegram = run.assert_adds_up("telegram");
    assert_eq!(telegram["produced"], BURST);
    assert!(telegram["sent"] <= 3 && telegram["suppressed"] > 0, "{telegram:?}");
    assert_eq!(telegram["summaries"], 1);
    let messages: Vec<String> = bot.received().iter().map(|r| r.json()["text"].as_str().unwrap().to_owned()).collect();
    assert_eq!(messages.len() as u64, telegram["sent"] + 1);
    let summary = parse_markdown_v2(messages.last().unwrap()).unwrap();
    let expected =
        format!("{} similar alerts suppressed (rule=Shadow read container_id=3ad7b26ded6d ", telegram["suppressed"]);
    assert!(summary.contains(&expected), "{summary}");

    // The file: what was sent, then the summary, line for line.
    let file_counts = run.assert_adds_up("file");
    assert!(file_counts["sent"] <= 5 && file_counts["suppressed"] > 0, "{file_counts:?}");
    let written = read_json_lines(&file);
    assert_eq!(written.len() as u64, file_counts["sent"] + file_counts["summaries"]);
    let last = written.last().unwrap();
    assert_eq!(last["output_fields"]["suppressed"], file_counts["suppressed"]);

    // The stuck webhook kept 4 queued and 1 in flight; everything is dropped, and counted.
    let stuck = run.assert_adds_up("stuck");
    assert_eq!((stuck["produced"], stuck["dropped"], stuck["sent"]), (BURST, BURST, 0));

    // stdout wanted only critical alerts.
    let stdout = run.assert_adds_up("stdout");
    assert_eq!((stdout["filtered"], stdout["sent"]), (BURST, 0));
    assert!(run.stdout.is_empty());

    // Mail: digests of at most 1,000 alerts (the default batch), full but for the last one,
    // carrying every alert sent; the rest fell out of the queue while a digest was sent.
    let mail = run.assert_adds_up("smtp");
    assert_eq!((mail["produced"], mail["failed"], mail["suppressed"]), (BURST, 0, 0), "{mail:?}");
    assert!(mail["sent"] >= 1000, "{mail:?}");
    let mut digests = Vec::new();
    while digests.iter().sum::<u64>() < mail["sent"] {
        digests.push(smtp::alerts_in(&relay.next_mail()));
    }
    relay.assert_no_mail();
    assert_eq!(digests.iter().sum::<u64>(), mail["sent"], "{digests:?}");
    let (last, full) = digests.split_last().unwrap();
    assert!(full.iter().all(|&n| n == 1000) && *last <= 1000, "{digests:?}");

    // gRPC: published to the `get` buffer, nothing to wait for.
    let grpc = run.assert_adds_up("grpc");
    assert_eq!((grpc["produced"], grpc["failed"], grpc["suppressed"]), (BURST, 0, 0), "{grpc:?}");
    assert!(grpc["sent"] > 0, "{grpc:?}");
}

#[test]
fn configuration_errors_name_file_and_line_and_a_broken_output_stops_the_start() {
    let dir = peers::scratch_dir("errors");
    let run = replay(&dir, "outputs:\n  - stdout: {}\n    min_priorty: warning\n", &[event("c")], &[]);
    assert!(!run.success);
    let config = dir.join("sensor.yaml");
    assert!(
        run.stderr.contains(&format!("error: {}:3:5: unknown key `min_priorty`", config.display())),
        "{}",
        run.stderr
    );

    let missing = dir.join("missing-token");
    let broken = format!(
        "outputs:\n  - stdout: {{}}\n  - telegram: {{chat_id: 1, token: {{file: {}}}}}\n    name: alerts-chat\n",
        missing.display()
    );
    let run = replay(&dir, &broken, &[event("c")], &[]);
    assert!(!run.success);
    assert!(run.stdout.is_empty(), "nothing is replayed when an output cannot start");
    assert!(
        run.stderr.contains(&format!("error: output `alerts-chat`: reading secret file {}", missing.display())),
        "{}",
        run.stderr
    );
}

#[test]
fn without_a_configuration_json_selects_falco_json_on_stdout() {
    let dir = peers::scratch_dir("json");
    std::fs::write(dir.join("rules.yaml"), RULES).unwrap();
    std::fs::write(dir.join("events.jsonl"), event("c9")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sensor"))
        .args(["replay", "--json", "--rules"])
        .arg(dir.join("rules.yaml"))
        .arg("--events")
        .arg(dir.join("events.jsonl"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let alert: Value = serde_json::from_slice(&out.stdout).expect("one JSON alert");
    assert_eq!(alert["output_fields"]["container.name"], "c9");
    assert!(String::from_utf8_lossy(&out.stderr).contains("output stdout: produced=1 filtered=0 sent=1"));
}

// ---------------------------------------------------------------------------------------------
// HTTPS with a custom CA and mutual TLS, against Python's ssl module.

/// tests/peers/https_receiver.py, serving HTTPS with `pki`'s server certificate and requiring
/// a client certificate signed by its CA, logging to `log`; its port.
fn https_receiver(pki: &Pki, log: &Path) -> (Child, u16) {
    let mut child = Command::new(peers::python())
        .arg(peers::script("https_receiver.py"))
        .arg("--cert")
        .arg(&pki.server_cert)
        .arg("--key")
        .arg(&pki.server_key)
        .arg("--client-ca")
        .arg(&pki.ca)
        .arg("--log")
        .arg(log)
        .stdout(Stdio::piped())
        .spawn()
        .expect("the Python receiver starts");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    let port = line.trim().strip_prefix("port ").and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("{line:?}"));
    (child, port)
}

#[test]
fn webhook_over_https_trusts_the_configured_ca_and_presents_its_client_certificate() {
    let dir = peers::scratch_dir("mtls");
    let pki = Pki::new(&dir);
    let log = dir.join("received.jsonl");
    let (mut receiver, port) = https_receiver(&pki, &log);
    let webhook = |name: &str, tls: &str| {
        format!(
            "  - webhook: {{url: \"https://127.0.0.1:{port}/\", ca_file: {ca}{tls}}}\n    name: {name}\n    retry: {{attempts: 2, initial_backoff: 10ms}}\n",
            ca = pki.ca.display(),
        )
    };
    let client = format!(", client_cert: {}, client_key: {}", pki.client_cert.display(), pki.client_key.display());
    let config = format!("outputs:\n{}{}", webhook("mtls", &client), webhook("no-client-cert", ""));
    let run = replay(&dir, &config, &[event("tls")], &[]);
    receiver.kill().unwrap();
    receiver.wait().unwrap();
    assert!(run.success, "{}", run.stderr);

    let c = run.assert_adds_up("mtls");
    assert_eq!(c["sent"], 1, "{}", run.stderr);
    let received = read_json_lines(&log);
    assert_eq!(received.len(), 1);
    assert_eq!(received[0]["client"], "client");
    assert_eq!(received[0]["alert"]["output_fields"]["container.name"], "tls");

    // The server requires a client certificate: without one the handshake fails.
    let c = run.assert_adds_up("no-client-cert");
    assert_eq!((c["sent"], c["failed"]), (0, 1));
    assert!(run.stderr.contains("CertificateRequired"), "{}", run.stderr);
}
