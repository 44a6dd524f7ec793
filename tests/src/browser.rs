//! Headless Chromium driven through chromedriver's WebDriver HTTP/JSON
//! API, with the harness's own HTTP client (no WebDriver crate). The
//! browser and chromedriver are stopped when the [`Browser`] is dropped,
//! also when the test panics. Test code only.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use palisade_test_support::{free_port, wait_until, ProcessGuard};
use serde_json::{json, Value};

use crate::http;

/// Where the packages put the browser and its driver (scripts/setup.sh
/// installs `chromium` and `chromium-driver`).
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// One chromedriver with one browser session.
pub struct Browser {
    port: u16,
    session: String,
    profile: PathBuf,
    // Dropped after the session is closed (see `Drop`): stops chromedriver
    // and whatever is left in its process group.
    _driver: ProcessGuard,
}

/// One request to chromedriver. It keeps connections open whatever the
/// request says, so the answer ends at its `Content-Length`, not at EOF.
fn request(port: u16, method: &str, path: &str, body: Option<&str>) -> Result<http::Response, String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(120))).map_err(|e| e.to_string())?;
    let body = body.unwrap_or("");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body.as_bytes())).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let n = stream.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        let length = http::parse(&raw[..end + 4])?.header("content-length").and_then(|v| v.parse::<usize>().ok());
        if length.is_some_and(|l| raw.len() >= end + 4 + l) {
            break;
        }
    }
    http::parse(&raw)
}

/// A WebDriver answer's `value`, or the error it names.
fn value(r: Result<http::Response, String>, what: &str) -> Result<Value, String> {
    let r = r.map_err(|e| format!("{what}: {e}"))?;
    let body: Value = serde_json::from_str(&r.body).map_err(|e| format!("{what}: not JSON ({e}): {}", r.body))?;
    if r.status != 200 {
        let err = &body["value"];
        return Err(format!("{what}: {} {}: {}", r.status, err["error"], err["message"]));
    }
    Ok(body["value"].clone())
}

impl Browser {
    /// Start chromedriver on a free port and open a headless session with
    /// a fresh profile under `dir`. The window is `width` x `height`;
    /// `extra`: more Chromium switches.
    pub fn start(dir: &Path, width: u32, height: u32, extra: &[&str]) -> Browser {
        assert!(
            Path::new(CHROMEDRIVER).exists() && Path::new(CHROMIUM).exists(),
            "{CHROMIUM} or {CHROMEDRIVER} is missing: run scripts/setup.sh"
        );
        let port = free_port();
        let profile = dir.join(format!("chromium-profile-{port}"));
        std::fs::create_dir_all(&profile).unwrap();
        let log = std::fs::File::create(dir.join(format!("chromedriver-{port}.log"))).unwrap();
        let mut cmd = Command::new(CHROMEDRIVER);
        cmd.arg(format!("--port={port}")).stdout(log.try_clone().unwrap()).stderr(Stdio::from(log));
        let driver = ProcessGuard::spawn("chromedriver", cmd).unwrap();
        let ready = wait_until(Duration::from_secs(30), || {
            request(port, "GET", "/status", None).is_ok_and(|r| r.json()["value"]["ready"] == json!(true))
        });
        assert!(ready, "chromedriver did not start on port {port}");
        let mut args = vec![
            "--headless".to_string(),
            // Tests run as root: Chromium refuses to start sandboxed.
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--disable-dev-shm-usage".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.display()),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        }}});
        let session = value(request(port, "POST", "/session", Some(&caps.to_string())), "new session")
            .unwrap_or_else(|e| panic!("{e}"));
        let session = session["sessionId"].as_str().unwrap().to_string();
        Browser { port, session, profile, _driver: driver }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let path = format!("/session/{}{path}", self.session);
        let body = body.map(|b| b.to_string());
        value(request(self.port, method, &path, body.as_deref()), &format!("{method} {path}"))
    }

    /// Load `url` (returns once the page has loaded).
    pub fn navigate(&self, url: &str) {
        self.call("POST", "/url", Some(json!({"url": url}))).unwrap();
    }

    /// Run `script` (a function body; `return` gives the value) in the page.
    pub fn execute(&self, script: &str) -> Result<Value, String> {
        self.call("POST", "/execute/sync", Some(json!({"script": script, "args": []})))
    }

    /// Run `script` in the page; it calls `done(value)` (its last argument)
    /// when it has an answer.
    pub fn execute_async(&self, script: &str) -> Result<Value, String> {
        let script = format!("const done = arguments[arguments.length - 1];\n{script}");
        self.call("POST", "/execute/async", Some(json!({"script": script, "args": []})))
    }

    /// The text of the open `alert`/`confirm` dialog, if one is open.
    pub fn dialog_text(&self) -> Option<String> {
        self.call("GET", "/alert/text", None).ok().and_then(|v| v.as_str().map(String::from))
    }

    /// Answer the open dialog with OK.
    pub fn accept_dialog(&self) {
        self.call("POST", "/alert/accept", Some(json!({}))).unwrap();
    }

    /// A PNG of the viewport.
    pub fn screenshot(&self) -> Vec<u8> {
        let b64 = self.call("GET", "/screenshot", None).unwrap();
        base64::engine::general_purpose::STANDARD.decode(b64.as_str().unwrap_or("")).unwrap()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Quit the browser; the driver guard then stops chromedriver.
        let _ = request(self.port, "DELETE", &format!("/session/{}", self.session), None);
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
