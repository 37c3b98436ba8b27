//! End to end in a real browser: `glimpse serve` on a free local port, the page loaded in
//! headless Chromium (driven through ChromeDriver), a digit drawn with the page's own
//! pointer events, and every panel asked to draw. Screenshots of each panel go to
//! `$GLIMPSE_SCREENSHOTS` (default: a folder under the target directory).
//!
//! Needs Debian's `chromium` and `chromium-driver` (.ci/run installs them; without them the
//! test is skipped, except under CI where it fails).

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, MOUSE_BUTTON_LEFT, MouseActions, PointerAction};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

/// A child process killed when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `glimpse serve` on a free port; its address.
fn start_server() -> (Killed, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_glimpse"))
        .args(["--threads", "2", "serve", "--addr", "127.0.0.1:0", "--checkpoints"])
        .arg(repo().join("checkpoints"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("glimpse starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr =
        line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("no address in `{line}`")).to_string();
    (Killed(child), addr)
}

/// The ChromeDriver and Chromium binaries (`$GLIMPSE_CHROMEDRIVER`, `$GLIMPSE_CHROMIUM`, else
/// Debian's); `None` when either is missing, which fails the test under CI (`CI` set).
fn browser() -> Option<(String, String)> {
    let driver = std::env::var("GLIMPSE_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    let chrome = std::env::var("GLIMPSE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if Path::new(&driver).is_file() && Path::new(&chrome).is_file() {
        return Some((driver, chrome));
    }
    let why = format!("{driver} or {chrome} is missing: apt-get install chromium chromium-driver");
    assert!(std::env::var_os("CI").is_none(), "{why}");
    eprintln!("skipped: {why}");
    None
}

/// ChromeDriver on a free port; its URL once it answers.
fn start_chromedriver(driver: &str) -> (Killed, String) {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(20), "chromedriver did not listen on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
    (Killed(child), format!("http://127.0.0.1:{port}"))
}

/// Waits until the element `css` exists.
async fn wait_for(c: &Client, css: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} never appeared: {e}"))
}

/// The text of `css` once it is no longer `placeholder`.
async fn text_when_set(c: &Client, css: &str, placeholder: &str) -> String {
    let start = Instant::now();
    loop {
        let t = c.find(Locator::Css(css)).await.unwrap().text().await.unwrap();
        if t != placeholder {
            return t;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{css} stayed `{placeholder}`");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_works_in_a_real_browser() {
    let Some((driver, chrome)) = browser() else { return };
    let (_server, addr) = start_server();
    let (_driver, driver_url) = start_chromedriver(&driver);
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({ "binary": chrome, "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1300,1900"] }),
    );
    let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver_url)
        .await
        .expect("a Chromium session");
    c.goto(&addr).await.unwrap();
    wait_for(&c, "#ram-checkpoint option").await; // the status has come

    // Draw a "1" on the canvas: a pointer pressed, moved down in steps, released.
    let canvas = c.find(Locator::Id("digit")).await.unwrap();
    let mut stroke = MouseActions::new("mouse".into())
        .then(PointerAction::MoveToElement { element: canvas.clone(), duration: None, x: 4.0, y: -95.0 })
        .then(PointerAction::Down { button: MOUSE_BUTTON_LEFT });
    for k in 1..=19 {
        let y = -95.0 + 10.0 * k as f64;
        stroke = stroke.then(PointerAction::MoveToElement {
            element: canvas.clone(),
            duration: Some(Duration::from_millis(10)),
            x: 4.0 - 0.2 * k as f64,
            y,
        });
    }
    stroke = stroke.then(PointerAction::Up { button: MOUSE_BUTTON_LEFT });
    c.perform_actions(stroke).await.unwrap();
    assert_eq!(text_when_set(&c, "#cnn-prediction", "?").await, "1", "the CNN reads the drawn 1");
    wait_for(&c, "#saliency[data-drawn]").await;
    assert_eq!(text_when_set(&c, "#ram-prediction", "?").await, "1", "RAM reads the drawn 1");
    wait_for(&c, "#ram-canvas[data-drawn]").await;

    // The other panels, each with its default input.
    for button in ["translate-go", "memory-go", "draw-generate", "draw-classify", "write-go"] {
        c.find(Locator::Id(button)).await.unwrap().click().await.unwrap();
    }
    wait_for(&c, "#alignment[data-drawn]").await;
    assert_eq!(c.find(Locator::Id("translate-answer")).await.unwrap().text().await.unwrap(), "2021-03-03");
    wait_for(&c, "#memory-weights[data-drawn]").await;
    let errors = c.find(Locator::Id("memory-errors")).await.unwrap().text().await.unwrap();
    assert!(errors.ends_with("bit errors"), "{errors}");
    wait_for(&c, "#draw-canvas[data-drawn]").await;
    wait_for(&c, "#write-canvas[data-drawn]").await;
    let status = c.find(Locator::Id("write-status")).await.unwrap().text().await.unwrap();
    assert!(status.contains("pen points"), "{status}");
    for id in ["digit-error", "draw-error", "write-error", "translate-error", "memory-error"] {
        let e = c.find(Locator::Id(id)).await.unwrap().text().await.unwrap();
        assert!(e.is_empty(), "#{id} says {e}");
    }
    // Needs MNIST's cluttered test set (GLIMPSE_DATA): the DRAW classifier's reads.
    if std::env::var_os("GLIMPSE_DATA").is_some() {
        wait_for(&c, "#read-canvas[data-drawn]").await;
    }

    // Screenshots of each panel and of the page.
    let out = std::env::var_os("GLIMPSE_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots"));
    std::fs::create_dir_all(&out).unwrap();
    for panel in ["implicit", "soft", "location", "associative", "memory"] {
        let png = c.find(Locator::Id(&format!("panel-{panel}"))).await.unwrap().screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(out.join(format!("serve-{panel}.png")), png).unwrap();
    }
    std::fs::write(out.join("serve-page.png"), c.screenshot().await.unwrap()).unwrap();
    c.close().await.unwrap();
}
