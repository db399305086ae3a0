//! Debian's headless Chromium over WebDriver (chromedriver), for the tests of web pages.

#![allow(dead_code)]

use crate::running::Running;
use fantoccini::{Client, ClientBuilder, Locator};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian's `chromium-driver` puts chromedriver.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Where Debian's `chromium` puts the browser.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Whether the browser is here. Where it is missing the test says so and passes, except
/// under CI (`CI` set), where it fails: `.ci/run` installs `chromium` and `chromium-driver`.
pub fn available() -> bool {
    if Path::new(CHROMEDRIVER).exists() && Path::new(CHROMIUM).exists() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must have Debian's chromium and chromium-driver (.ci/run installs them)"
    );
    eprintln!("skipped: install Debian's chromium and chromium-driver to run this test");
    false
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// chromedriver on a free port, once it answers; its URL.
pub fn chromedriver() -> (Running, String) {
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    (Running(child), format!("http://127.0.0.1:{port}"))
}

/// A headless Chromium session asking for Chinese, with a window of `size` (`390,844`: a
/// phone).
pub async fn session(driver: &str, size: &str) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".to_string(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", format!("--window-size={size}"), "--lang=zh-CN"],
            "prefs": { "intl.accept_languages": "zh-CN,zh" },
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(driver)
        .await
        .expect("a headless Chromium session")
}

/// Types `text` into the web chat's box and presses send.
pub async fn chat_send(page: &Client, text: &str) {
    let input = page.find(Locator::Css("#send textarea")).await.unwrap();
    input.send_keys(text).await.unwrap();
    page.find(Locator::Css("#send button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}
