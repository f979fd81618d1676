//! Debian's headless Chromium driven through chromedriver's WebDriver protocol (W3C), over
//! plain HTTP/1.1 on loopback: just what the console's browser test needs.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

/// The key W3C WebDriver names an element reference by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A headless Chromium session; ended (and chromedriver stopped) on drop.
pub struct Browser {
    driver: Child,
    address: SocketAddr,
    session: String,
    profile: String,
}

/// An element of the current page.
#[derive(Clone, Debug)]
pub struct Element(String);

impl Browser {
    /// Starts chromedriver on a free loopback port and a headless Chromium session with a
    /// new profile and no background network traffic (the machine has no internet).
    pub fn start() -> Result<Browser, String> {
        let address = crate::free_loopback_port()?;
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={}", address.port()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting /usr/bin/chromedriver (cargo xtask setup installs it): {e}"))?;
        let profile = crate::temp_path("chromium-profile");
        let mut browser = Browser { driver, address, session: String::new(), profile };
        let started = Instant::now();
        while TcpStream::connect(address).is_err() {
            if started.elapsed() > Duration::from_secs(20) {
                return Err("chromedriver did not listen within 20 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,900",
            &format!("--user-data-dir={}", browser.profile),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
        }}});
        let answer = browser.call("POST", "/session", Some(&capabilities))?;
        browser.session = answer["sessionId"].as_str().ok_or_else(|| format!("no session: {answer}"))?.to_owned();
        Ok(browser)
    }

    /// A WebDriver command; its `value`, or the driver's error.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut stream = TcpStream::connect(self.address).map_err(|e| format!("chromedriver: {e}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(60))).map_err(|e| e.to_string())?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            self.address,
            body.len()
        )
        .map_err(|e| e.to_string())?;
        // chromedriver keeps the connection open whatever the request says: read the head,
        // then the body's Content-Length bytes.
        let mut answer = Vec::new();
        let mut buf = [0u8; 8192];
        let failed = |e: std::io::Error| format!("chromedriver {method} {path}: {e}");
        let head_end = loop {
            if let Some(at) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let n = stream.read(&mut buf).map_err(failed)?;
            if n == 0 {
                return Err(format!("chromedriver {method} {path}: the connection closed in the head"));
            }
            answer.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&answer[..head_end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| format!("chromedriver {method} {path}: no Content-Length in {head}"))?;
        while answer.len() < head_end + length {
            let n = stream.read(&mut buf).map_err(failed)?;
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
        }
        let json = String::from_utf8_lossy(&answer[head_end..]);
        let value: Value =
            serde_json::from_str(&json).map_err(|e| format!("chromedriver {method} {path}: {e}: {json}"))?;
        let value = value["value"].clone();
        if let Some(error) = value.get("error").and_then(Value::as_str) {
            return Err(format!("{method} {path}: {error}: {}", value["message"]));
        }
        Ok(value)
    }

    fn session_call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    pub fn goto(&self, url: &str) -> Result<(), String> {
        self.session_call("POST", "/url", Some(&json!({"url": url}))).map(drop)
    }

    /// The current page's URL.
    pub fn url(&self) -> Result<String, String> {
        self.session_call("GET", "/url", None).map(|v| v.as_str().unwrap_or_default().to_owned())
    }

    /// The first element matching the CSS `selector`.
    pub fn find(&self, selector: &str) -> Result<Element, String> {
        let found =
            self.session_call("POST", "/element", Some(&json!({"using": "css selector", "value": selector})))?;
        found[ELEMENT].as_str().map(|id| Element(id.to_owned())).ok_or_else(|| format!("{selector}: {found}"))
    }

    /// Every element matching `selector`.
    pub fn find_all(&self, selector: &str) -> Result<Vec<Element>, String> {
        let found =
            self.session_call("POST", "/elements", Some(&json!({"using": "css selector", "value": selector})))?;
        Ok(found
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e[ELEMENT].as_str())
            .map(|id| Element(id.to_owned()))
            .collect())
    }

    /// Types `text` into `element` (after clearing it).
    pub fn type_into(&self, element: &Element, text: &str) -> Result<(), String> {
        self.session_call("POST", &format!("/element/{}/clear", element.0), Some(&json!({})))?;
        self.session_call("POST", &format!("/element/{}/value", element.0), Some(&json!({"text": text}))).map(drop)
    }

    pub fn click(&self, element: &Element) -> Result<(), String> {
        self.session_call("POST", &format!("/element/{}/click", element.0), Some(&json!({}))).map(drop)
    }

    /// Selects the `<option>` with `value` in the `<select>` matching `selector`.
    pub fn select(&self, selector: &str, value: &str) -> Result<(), String> {
        let option = self.find(&format!("{selector} option[value=\"{value}\"]"))?;
        self.click(&option)
    }

    /// The rendered text of `element`.
    pub fn text(&self, element: &Element) -> Result<String, String> {
        self.session_call("GET", &format!("/element/{}/text", element.0), None)
            .map(|v| v.as_str().unwrap_or_default().to_owned())
    }

    /// The value of `element`'s attribute `name`, when it has one.
    pub fn attribute(&self, element: &Element, name: &str) -> Result<Option<String>, String> {
        self.session_call("GET", &format!("/element/{}/attribute/{name}", element.0), None)
            .map(|v| v.as_str().map(str::to_owned))
    }

    /// The rendered text of the whole page.
    pub fn page_text(&self) -> Result<String, String> {
        let body = self.find("body")?;
        self.text(&body)
    }

    /// Resizes the window (to a phone's width, say).
    pub fn set_window_size(&self, width: u32, height: u32) -> Result<(), String> {
        self.session_call("POST", "/window/rect", Some(&json!({"width": width, "height": height}))).map(drop)
    }

    /// How wide the page is laid out and how wide the window shows it, in CSS pixels.
    pub fn widths(&self) -> Result<(u64, u64), String> {
        let script = json!({
            "script": "return [document.documentElement.scrollWidth, window.innerWidth];",
            "args": [],
        });
        let value = self.session_call("POST", "/execute/sync", Some(&script))?;
        let width = |i: usize| value[i].as_u64().ok_or_else(|| format!("not a width: {value}"));
        Ok((width(0)?, width(1)?))
    }

    /// Writes a PNG of the viewport to `path`.
    pub fn screenshot(&self, path: &std::path::Path) -> Result<(), String> {
        let png = self.session_call("GET", "/screenshot", None)?;
        let bytes = decode_base64(png.as_str().unwrap_or_default()).ok_or("the screenshot is not base64")?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Standard base64 (with padding), as WebDriver sends screenshots.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let bytes: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace() && *b != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let v: Vec<u8> = chunk.iter().map(|c| value(*c)).collect::<Option<_>>()?;
        let n = v.iter().enumerate().fold(0u32, |acc, (i, x)| acc | (u32::from(*x) << (18 - 6 * i)));
        out.extend(n.to_be_bytes()[1..chunk.len()].iter());
    }
    Some(out)
}
