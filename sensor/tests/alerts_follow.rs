//! `sensor alerts search --follow`: the page, then every alert of the filters as it is
//! stored, from a store another process writes.

use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
    sync::Arc,
    time::Duration,
};

use sensor::{
    rules::{Alert, Priority, Value},
    store::{StoreConfig, now_ns},
};

fn alert(rule: &str, pod: &str) -> Arc<Alert> {
    Arc::new(Alert {
        time_ns: now_ns(),
        rule: rule.into(),
        priority: Priority::Warning,
        source: "syscall".into(),
        hostname: "node-a".into(),
        message: format!("{rule} in {pod}"),
        tags: vec![].into(),
        fields: vec![("k8s.pod.name".into(), Some(Value::Str(pod.to_owned().into())))],
    })
}

#[test]
fn follow_prints_new_alerts_of_its_filters_as_they_are_stored() {
    let dir = std::env::temp_dir().join(format!("sensor-follow-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = StoreConfig::at(dir.join("alerts.db"));
    let mut store = sensor::store::open(&config).unwrap().store;
    store.insert(&[alert("Before", "web-1")]).unwrap();
    let mut follow = Command::new(env!("CARGO_BIN_EXE_sensor"))
        .args(["alerts", "search", "--json", "--follow", "--pod", "web-1", "--store"])
        .arg(dir.join("alerts.db"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    let rule = |line: Option<std::io::Result<String>>| -> String {
        let json: serde_json::Value = serde_json::from_str(&line.expect("a line").unwrap()).unwrap();
        json["rule"].as_str().unwrap().to_owned()
    };
    assert_eq!(rule(lines.next()), "Before", "the page first");
    std::thread::sleep(Duration::from_millis(300));
    store.insert(&[alert("Other pod", "db-1"), alert("After", "web-1")]).unwrap();
    store.insert(&[alert("Later", "web-1")]).unwrap();
    assert_eq!(rule(lines.next()), "After", "then what is stored, through the filter");
    assert_eq!(rule(lines.next()), "Later");
    follow.kill().unwrap();
    follow.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
