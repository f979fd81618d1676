//! The web console as an operator uses it, in Debian's headless Chromium: `sensor run` keeps
//! a real pod's alert in its store and serves the console; the operator is refused with a
//! wrong password, logs in, sees the dashboard, filters the events by priority and by pod,
//! searches a text with dashes, opens the alert, logs out, and is refused afterwards.
//! Screenshots of each page go to `target/browser/`. Needs root; leases the test bed.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use sensor_tests::{
    CriPod, PodSpec, TestBed, alert_stream, await_alert, free_loopback_port, start_sensor, temp_path,
    webdriver::Browser,
};

const SHADOW_RULE: &str = "Read credential file by untrusted program";
const PASSWORD: &str = "an operator's passphrase";

fn shot(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/browser").join(format!("{name}.png"))
}

#[test]
fn an_operator_logs_in_filters_searches_reads_and_logs_out() {
    let bed = TestBed::up();
    let dir = temp_path("console-browser");
    std::fs::create_dir_all(&dir).unwrap();
    let db = format!("{dir}/alerts.db");
    let ui = free_loopback_port().unwrap();
    let hash = sensor::console::hash_password(PASSWORD).unwrap();
    let config = format!("{dir}/sensor.yaml");
    std::fs::write(
        &config,
        format!(
            "outputs:\n  - stdout: {{format: json}}\n  - store: {{path: {db}}}\n\
             ui:\n  enabled: true\n  address: \"{ui}\"\n  users: [{{name: alice, password_hash: \"{hash}\"}}]\n"
        ),
    )
    .unwrap();
    let mut sensor =
        start_sensor(&["run", "--config", &config, "--cri-socket", bed.get("CRI_SOCK"), "--container-wait-ms", "500"]);
    let alerts = alert_stream(&mut sensor);

    // A pod of the test bed reads a secret.
    let pod_name = format!("console-e2e-{}", std::process::id());
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let pod = CriPod::run(
        runtime.handle(),
        bed.env(),
        PodSpec {
            name: pod_name.clone(),
            labels: Vec::new(),
            container: "web".into(),
            container_labels: Vec::new(),
            command: vec![
                "sh".into(),
                "-c".into(),
                "echo 'root:*:1::::::' > /etc/shadow && cat /etc/shadow >/dev/null && exec sleep 600".into(),
            ],
            mounts: Vec::new(),
        },
    );
    let (_, on_stdout) = await_alert(&alerts, Duration::from_secs(60), |a| {
        a["rule"] == SHADOW_RULE && a["output_fields"]["k8s.pod.name"] == pod_name.as_str()
    })
    .expect("the pod's read of /etc/shadow is alerted");

    let browser = Browser::start().expect("headless Chromium");
    let base = format!("http://{ui}");
    let type_in = |selector: &str, text: &str| browser.type_into(&browser.find(selector).unwrap(), text).unwrap();
    let click = |selector: &str| browser.click(&browser.find(selector).unwrap()).unwrap();
    let page = || browser.page_text().unwrap();
    // A click that submits a form returns before the next page loads: wait for its URL.
    let until_url = |want: &dyn Fn(&str) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut url = browser.url().unwrap();
        while !want(&url) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            url = browser.url().unwrap();
        }
        url
    };

    // A wrong password is refused, and says so.
    browser.goto(&format!("{base}/events")).unwrap();
    assert!(browser.url().unwrap().ends_with("/login"), "the events need a login first");
    type_in("#user", "alice");
    type_in("#password", "not the passphrase");
    click("#login");
    let deadline = Instant::now() + Duration::from_secs(10);
    while browser.find("#message").is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(browser.text(&browser.find("#message").unwrap()).unwrap(), "Wrong user name or password.");
    browser.screenshot(&shot("1-login-refused")).unwrap();

    // The right one opens the dashboard, which counts the pod's alert.
    type_in("#user", "alice");
    type_in("#password", PASSWORD);
    click("#login");
    assert_eq!(until_url(&|u| u == format!("{base}/")), format!("{base}/"));
    let dashboard = page();
    assert!(
        dashboard.contains("Dashboard") && dashboard.contains(SHADOW_RULE) && dashboard.contains(&pod_name),
        "{dashboard}"
    );
    browser.screenshot(&shot("2-dashboard")).unwrap();

    // The events, filtered by priority and by pod with the form; the filters are the URL.
    browser.goto(&format!("{base}/events")).unwrap();
    let mut shown = None;
    while shown.is_none() && on_stdout.elapsed() < Duration::from_secs(30) {
        browser.select("#f-priority", "warning").unwrap();
        type_in("#f-pod", &pod_name);
        click("#search");
        until_url(&|u| u.contains("pod="));
        if page().contains(SHADOW_RULE) {
            shown = Some(on_stdout.elapsed());
        }
    }
    eprintln!("the alert was on the events page {shown:?} after it reached stdout (the login steps included)");
    assert!(shown.is_some(), "the pod's alert is on the events page");
    let url = browser.url().unwrap();
    assert!(url.contains("priority=warning") && url.contains(&format!("pod={pod_name}")), "{url}");
    let rows = browser.find_all("tr.alert").unwrap();
    assert!(!rows.is_empty());
    for row in &rows {
        assert!(browser.text(row).unwrap().contains(&pod_name), "only the pod's alerts");
    }
    browser.screenshot(&shot("3-events-by-priority-and-pod")).unwrap();
    // Critical and above: the Warning is left out.
    browser.select("#f-priority", "critical").unwrap();
    click("#search");
    until_url(&|u| u.contains("priority=critical"));
    assert!(browser.find_all("tr.alert").unwrap().is_empty(), "no Critical alert in the pod");
    assert!(page().contains("No alerts match."));

    // A text with dashes: the pod's name, in the search box alone.
    browser.goto(&format!("{base}/events")).unwrap();
    type_in("#f-text", &pod_name);
    click("#search");
    until_url(&|u| u.contains("text="));
    let found = browser.find_all("tr.alert").unwrap();
    assert!(!found.is_empty(), "searching `{pod_name}` finds its alerts");
    browser.screenshot(&shot("4-events-text-with-dashes")).unwrap();

    // One alert's detail: every field, the raw JSON.
    browser.goto(&format!("{base}/events?rule={}&pod={pod_name}", SHADOW_RULE.replace(' ', "%20"))).unwrap();
    click("tr.alert a");
    until_url(&|u| u.contains("/events/"));
    let detail = page();
    assert!(
        detail.contains("k8s.pod.name") && detail.contains(&pod_name) && detail.contains("/etc/shadow"),
        "{detail}"
    );
    assert!(browser.text(&browser.find("#raw").unwrap()).unwrap().contains("\"output_fields\""));
    browser.screenshot(&shot("5-detail")).unwrap();

    // The dashboard's timeline has the alert's bar; About shows the run's own counters.
    browser.goto(&format!("{base}/")).unwrap();
    assert!(!browser.find_all("#timeline rect.p-Warning").unwrap().is_empty(), "the timeline shows the Warning");
    browser.goto(&format!("{base}/about")).unwrap();
    let about = page();
    let rules = about.lines().find_map(|l| l.strip_prefix("rules loaded")).map(str::trim).unwrap_or_default();
    assert!(rules.parse::<u32>().is_ok_and(|n| n > 10), "the run's rules on About: {about}");
    assert!(about.contains("events lost in the kernel") && about.contains("store:"), "{about}");
    browser.screenshot(&shot("6-about")).unwrap();

    // A phone's width: the events, the dashboard and About fit it, nothing wider.
    browser.set_window_size(390, 844).unwrap();
    for (path, name) in [("/events", "events"), ("/", "dashboard"), ("/about", "about")] {
        browser.goto(&format!("{base}{path}")).unwrap();
        let (laid_out, shown) = browser.widths().unwrap();
        assert!(laid_out <= shown, "{path} at a phone's width: laid out {laid_out} px wide in a {shown} px window");
        browser.screenshot(&shot(&format!("phone-{name}"))).unwrap();
    }
    browser.set_window_size(1280, 900).unwrap();

    // Logging out ends the session: the pages ask for a login again.
    click("header form button");
    assert!(until_url(&|u| u.ends_with("/login")).ends_with("/login"));
    browser.screenshot(&shot("7-logged-out")).unwrap();
    browser.goto(&format!("{base}/events")).unwrap();
    assert!(browser.url().unwrap().ends_with("/login"), "refused after logging out");

    drop(browser);
    drop(pod);
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    unsafe { libc::kill(sensor.id() as i32, libc::SIGTERM) };
    assert!(sensor.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(&dir);
}
