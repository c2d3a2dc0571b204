//! The status UI in a real browser: headless Chromium, driven over the W3C
//! WebDriver protocol (chromedriver) with plain HTTP calls, against a server
//! seeded with the `fleet-30d` scenario. It loads the fleet, follows a
//! firing sync to one of its failed runs, creates a silence through the
//! form and checks that it is listed. Screenshots of each page are saved
//! under `target/ui-artifacts/` (or `$SYNCWARDEN_ARTIFACTS`).
//!
//! Chromium and chromedriver are Debian's `chromium` and `chromium-driver`
//! (`.ci/run` installs them). The network here is closed, so the browser
//! runs with its background networking off; a page that tried to load
//! anything from elsewhere would also break the Content-Security-Policy.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use syncwarden::model::Timestamp;

use crate::helpers::{Opts, TestApp, spawn_with};

const SCENARIO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/scenarios/fleet-30d");
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The scenario is replayed up to this instant: seven incidents are open
/// then (dbt:marts broken and the syncs downstream of it), so the fleet
/// has firing and held syncs to show.
const CUT: &str = "2026-03-13T04:43:56Z";
/// W3C WebDriver's key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn artifacts() -> PathBuf {
    std::env::var_os("SYNCWARDEN_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/ui-artifacts"))
        })
}

/// The scenario's rules without `stale_after`: `serve` runs stale timers on
/// the wall clock, and replaying a month in seconds would make every sync
/// stale between batches.
fn rules() -> String {
    let text = std::fs::read_to_string(format!("{SCENARIO}/rules/fleet.toml")).expect("rules");
    text.lines()
        .filter(|l| !l.trim_start().starts_with("stale_after"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The scenario's runs finished by [`CUT`], in `finished_at` order, moved
/// in time so that [`CUT`] is half an hour ago: the UI's 24 h and 7 d
/// windows then have something to show.
fn runs() -> Vec<Value> {
    let cut = Timestamp::parse_rfc3339(CUT).expect("cut");
    let shift = Timestamp::now().0 - 30 * 60_000 - cut.0;
    let text = std::fs::read_to_string(format!("{SCENARIO}/runs.ndjson")).expect("runs");
    let mut runs: Vec<(i64, Value)> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|mut r| {
            let fin = Timestamp::parse_rfc3339(r["finished_at"].as_str()?).ok()?;
            if fin > cut {
                return None;
            }
            for key in ["finished_at", "started_at"] {
                if let Some(t) = r[key]
                    .as_str()
                    .and_then(|s| Timestamp::parse_rfc3339(s).ok())
                {
                    r[key] = json!(t.plus_millis(shift).to_rfc3339());
                }
            }
            Some((fin.0, r))
        })
        .collect();
    runs.sort_by_key(|(t, _)| *t);
    runs.into_iter().map(|(_, r)| r).collect()
}

async fn seeded() -> TestApp {
    let app = spawn_with(Opts {
        rules: Some(rules()),
        ..Opts::default()
    })
    .await;
    let runs = runs();
    assert!(runs.len() > 10_000, "the scenario is there: {}", runs.len());
    for batch in runs.chunks(1000) {
        let (status, body) = app.post_json("/v1/runs", &json!(batch)).await;
        assert_eq!(status, 202, "{body}");
    }
    app
}

/// A WebDriver session on a chromedriver this test started.
struct Browser {
    http: reqwest::Client,
    base: String,
    session: String,
    _driver: tokio::process::Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Browser {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(bin).exists(),
                "{bin} is missing: apt-get install chromium chromium-driver (see .ci/run)"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let driver = tokio::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        let base = format!("http://127.0.0.1:{port}");
        let mut ready = false;
        for _ in 0..100 {
            if let Ok(r) = http.get(format!("{base}/status")).send().await
                && let Ok(v) = r.json::<Value>().await
                && v["value"]["ready"] == true
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ready, "chromedriver did not become ready");
        let profile = tempfile::tempdir().expect("profile dir");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--hide-scrollbars",
                    "--window-size=1440,1100",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        }}});
        let resp: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("session JSON");
        let session = resp["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {resp}"))
            .to_string();
        Browser {
            http,
            base,
            session,
            _driver: driver,
            _profile: profile,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req
            .send()
            .await
            .expect("webdriver call")
            .json()
            .await
            .expect("webdriver JSON");
        assert!(v["value"]["error"].is_null(), "{path}: {v}");
        v["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v[ELEMENT].as_str().expect("element id").to_string()
    }

    async fn count(&self, css: &str) -> usize {
        let v = self
            .call(
                reqwest::Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v.as_array().map_or(0, Vec::len)
    }

    async fn click(&self, element: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await;
    }

    async fn text_of(&self, element: &str) -> String {
        let v = self
            .call(
                reqwest::Method::GET,
                &format!("/element/{element}/text"),
                None,
            )
            .await;
        v.as_str().unwrap_or_default().to_string()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{el}/clear"),
            Some(json!({})),
        )
        .await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{el}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    async fn current_url(&self) -> String {
        let v = self.call(reqwest::Method::GET, "/url", None).await;
        v.as_str().unwrap_or_default().to_string()
    }

    /// Waits (up to 10 s) for the page to reach a URL containing `part`: a
    /// click that submits a form or follows a link returns before the
    /// navigation it starts has finished.
    async fn wait_for_url(&self, part: &str) -> String {
        let mut url = String::new();
        for _ in 0..100 {
            url = self.current_url().await;
            if url.contains(part) {
                return url;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the browser did not reach {part:?}; it is on {url}");
    }

    async fn source(&self) -> String {
        let v = self.call(reqwest::Method::GET, "/source", None).await;
        v.as_str().unwrap_or_default().to_string()
    }

    async fn screenshot(&self, name: &str) {
        let v = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .expect("base64 PNG");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let dir = artifacts();
        std::fs::create_dir_all(&dir).expect("artifacts dir");
        std::fs::write(dir.join(name), png).expect("screenshot written");
    }

    async fn quit(self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send()
            .await;
    }
}

#[tokio::test]
async fn in_a_browser_the_fleet_leads_to_a_failed_run_and_a_silence_can_be_created() {
    tokio::time::timeout(Duration::from_secs(300), async {
        let app = seeded().await;
        let browser = Browser::start().await;

        browser.goto(&app.url("/")).await;
        assert!(browser.count("tr.row-firing").await >= 1, "a firing sync");
        browser.screenshot("fleet.png").await;

        // Firing first: the first row is a firing sync.
        let link = browser
            .find("table.fleet tbody tr.row-firing a.sync-link")
            .await;
        let sync_id = browser.text_of(&link).await;
        browser.click(&link).await;
        browser.wait_for_url("/syncs/").await;
        let page = browser.source().await;
        assert!(page.contains("Records processed vs failed"));
        // The sync page agrees with the fleet: its firing notice went out
        // (census:1000's upstream broke 20 s later), so nothing says held.
        let alerts = page
            .split("<h2>Alerts</h2>")
            .nth(1)
            .and_then(|s| s.split("<h2>Upstream</h2>").next())
            .unwrap_or_default();
        assert!(
            alerts.contains("badge s-firing") && !alerts.contains("held:"),
            "{sync_id}: {alerts}"
        );
        assert!(
            browser.count("svg.chart rect").await > 0,
            "the chart has bars"
        );
        browser.screenshot("sync.png").await;

        let run = if browser.count("tr.run-failed a.run-link").await > 0 {
            browser.find("tr.run-failed a.run-link").await
        } else {
            browser.find("a.run-link").await
        };
        let run_id = browser.text_of(&run).await;
        browser.click(&run).await;
        browser.wait_for_url("/runs/").await;
        let source = browser.source().await;
        assert!(source.contains(&run_id), "the run page names the run");
        assert!(source.contains("Processed"));
        browser.screenshot("run.png").await;

        // The sync page's "silence…" link pre-fills the form.
        browser
            .goto(&app.url(&format!(
                "/silences?sync={}",
                percent_encoding::utf8_percent_encode(&sync_id, percent_encoding::NON_ALPHANUMERIC)
            )))
            .await;
        browser.type_into("#s-duration", "3h").await;
        browser.type_into("#s-author", "oncall@example.com").await;
        browser
            .type_into("#s-comment", "Looking into the upstream dbt failure")
            .await;
        let submit = browser.find("#s-submit").await;
        browser.click(&submit).await;
        // After the POST and its redirect the browser is on the plain list
        // (the form page had `?sync=`).
        browser.wait_for_url("/silences").await;
        for _ in 0..100 {
            if browser.current_url().await.ends_with("/silences") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            browser.current_url().await.ends_with("/silences"),
            "redirected back to the list"
        );
        let listed = browser.source().await;
        assert!(
            listed.contains("Looking into the upstream dbt failure"),
            "listed"
        );
        assert!(listed.contains(&sync_id), "for the sync");
        assert_eq!(browser.count("table.silences tbody tr").await, 1);
        browser.screenshot("silences.png").await;

        let (_, body) = app.get("/v1/silences").await;
        assert_eq!(body["silences"][0]["sync"], json!(sync_id));
        browser.quit().await;
    })
    .await
    .expect("the browser test finishes in time");
}
