//! A real browser for the end-to-end tests: Debian's headless Chromium driven over WebDriver
//! (`chromedriver`) with fantoccini.
//!
//! One `chromedriver` serves the whole test binary; each test opens its own browser session (a
//! fresh profile) and closes it when done. At most [`SESSIONS`] sessions run at once, so a
//! parallel test run does not start a dozen browsers on two cores. The driver lives as long as
//! the test process: it is started under a small shell that ends it when the process's end
//! closes the shell's standard input (the workspace forbids the `unsafe` a parent-death signal
//! would need).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, LazyLock, Mutex, OnceLock};
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Browser sessions open at once.
pub const SESSIONS: usize = 2;

static PERMITS: LazyLock<Arc<Semaphore>> = LazyLock::new(|| Arc::new(Semaphore::new(SESSIONS)));

struct Driver {
    url: String,
    _child: Mutex<Child>,
}

fn driver() -> &'static Driver {
    static DRIVER: OnceLock<Driver> = OnceLock::new();
    DRIVER.get_or_init(|| {
        for tool in ["chromium", "chromedriver"] {
            assert!(
                Command::new("sh")
                    .args(["-c", &format!("command -v {tool}")])
                    .stdout(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success()),
                "{tool} is missing: the browser tests need Debian's chromium and chromium-driver \
                 (tests/run installs them)"
            );
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port for chromedriver")
            .port();
        // `cat` returns when this process ends (its stdin pipe closes); then the driver goes.
        let child = Command::new("sh")
            .args([
                "-c",
                "chromedriver --port=\"$1\" --log-level=OFF >/dev/null 2>&1 & driver=$!; \
                 cat >/dev/null; kill $driver",
                "sh",
                &port.to_string(),
            ])
            .stdin(Stdio::piped())
            .spawn()
            .expect("starting chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        // Ready when it accepts connections (a bounded wait for a process that starts in ms).
        let ready = (0..200).any(|_| {
            let up = TcpStream::connect(("127.0.0.1", port)).is_ok();
            if !up {
                std::thread::sleep(Duration::from_millis(50));
            }
            up
        });
        assert!(ready, "chromedriver did not listen on port {port}");
        Driver {
            url,
            _child: Mutex::new(child),
        }
    })
}

/// One browser session. Close it with [`Browser::close`]; a test that panics first leaves it to
/// `Drop`, which ends the session synchronously so no Chromium outlives the test.
pub struct Browser {
    pub client: Client,
    session: Option<String>,
    _permit: OwnedSemaphorePermit,
}

impl Browser {
    /// A new headless Chromium window of `width` × `height` CSS pixels.
    pub async fn open(width: u32, height: u32) -> Self {
        let driver = driver();
        let permit = PERMITS.clone().acquire_owned().await.unwrap();
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--no-first-run", "--disable-extensions", "--lang=en-US",
                         "--force-device-scale-factor=1",
                         format!("--window-size={width},{height}")]
            }
        });
        let caps = match caps {
            Value::Object(map) => map,
            _ => unreachable!(),
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&driver.url)
            .await
            .expect("a Chromium session from chromedriver");
        let session = client.session_id().await.unwrap();
        Self {
            client,
            session,
            _permit: permit,
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    /// The element `css`, once it exists (the page renders after its script's requests).
    pub async fn wait(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(30))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    /// Waits until the page's `h1` says `text`.
    pub async fn wait_heading(&self, text: &str) {
        let xpath = format!("//h1[contains(normalize-space(.), \"{text}\")]");
        self.client
            .wait()
            .at_most(Duration::from_secs(30))
            .for_element(Locator::XPath(&xpath))
            .await
            .unwrap_or_else(|e| panic!("no heading {text:?}: {e}"));
    }

    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        self.client.find_all(Locator::Css(css)).await.unwrap()
    }

    /// Types into the input `css` (after clearing it).
    pub async fn fill(&self, css: &str, text: &str) {
        let input = self.wait(css).await;
        input.clear().await.unwrap();
        input.send_keys(text).await.unwrap();
    }

    pub async fn click(&self, css: &str) {
        self.wait(css).await.click().await.unwrap();
    }

    /// Runs `script` in the page and returns its value.
    pub async fn eval(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    /// The id of the focused element.
    pub async fn focused_id(&self) -> String {
        self.eval("return document.activeElement && document.activeElement.id")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Types into whatever has the focus, as a keyboard would (`\n` is Enter, `\t` Tab).
    pub async fn type_keys(&self, keys: &str) {
        let keys = keys.replace('\n', "\u{E007}").replace('\t', "\u{E004}");
        self.client
            .active_element()
            .await
            .unwrap()
            .send_keys(&keys)
            .await
            .unwrap();
    }

    /// axe-core's serious and critical violations on the current page (empty when clean).
    pub async fn accessibility_violations(&self) -> Vec<Value> {
        self.client.execute(axe_source(), vec![]).await.unwrap();
        let found = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, { resultTypes: ['violations'] }).then(function (r) {
                   done(r.violations.filter(function (v) { return v.impact === 'serious' || v.impact === 'critical'; })
                     .map(function (v) { return { id: v.id, impact: v.impact, help: v.help,
                       nodes: v.nodes.map(function (n) { return n.target.join(' '); }) }; }));
                 }, function (e) { done([{ id: 'axe-error', help: String(e) }]); });",
                vec![],
            )
            .await
            .unwrap();
        found.as_array().cloned().unwrap_or_default()
    }

    pub async fn screenshot(&self) -> Vec<u8> {
        self.client.screenshot().await.unwrap()
    }

    /// Ends the session (and its Chromium).
    pub async fn close(mut self) {
        self.session = None;
        let client = self.client.clone();
        client.close().await.unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Only after a panic: `close` already ended the session. The async client cannot run
        // here, so send WebDriver's "delete session" by hand.
        let Some(session) = self.session.take() else {
            return;
        };
        let Some(hostport) = driver().url.strip_prefix("http://") else {
            return;
        };
        if let Ok(mut stream) = TcpStream::connect(hostport) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let request = format!(
                "DELETE /session/{session} HTTP/1.1\r\nHost: {hostport}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            if stream.write_all(request.as_bytes()).is_ok() {
                let mut answer = Vec::new();
                let _ = stream.read_to_end(&mut answer);
            }
        }
    }
}

/// axe-core, pinned in `tests/browser/package-lock.json` and installed by `tests/run`
/// (`npm ci` in `tests/browser`).
fn axe_source() -> &'static str {
    static AXE: OnceLock<String> = OnceLock::new();
    AXE.get_or_init(|| {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("browser/node_modules/axe-core/axe.min.js");
        std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; install axe-core with `npm ci` in tests/browser (tests/run does)",
                path.display()
            )
        })
    })
}
