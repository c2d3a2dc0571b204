//! The status UI over HTTP: every page answers with HTML that says what
//! matters, hostile third-party text is escaped, forms need a CSRF token,
//! tokens guard the pages when configured, and ids with `/` and `:` work
//! percent-encoded — the links notices carry.

use serde_json::{Value, json};

use crate::helpers::{Opts, TestApp, minutes_from_now, run, spawn_app, spawn_with};

const RULES: &str = r#"
[[rule]]
name = "broken"
match = { sync = "*" }
fire_after = 2
resolve_after = 1

[[sync]]
id = "dbt:marts/core"
owner = "analytics@example.com"

[[sync]]
id = "census:42"
depends_on = ["dbt:marts/core"]
owner = "growth@example.com"
"#;

const HOSTILE: &str = "<script>alert('pwned')</script>";

async fn page(app: &TestApp, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let mut req = app.http.get(app.url(path));
    if let Some(t) = &app.token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.expect("body"))
}

/// Two failed runs of `census:42` (so `broken` fires) with hostile error
/// text, and a healthy upstream.
async fn seeded(opts: Opts) -> TestApp {
    let app = spawn_with(Opts {
        rules: Some(RULES.into()),
        ..opts
    })
    .await;
    let mut ok = run("dbt:marts/core", "m/1", "success", &minutes_from_now(-90));
    ok["records"] = json!({"processed": 10, "succeeded": 10});
    let mut f1 = run("census:42", "r:1", "failed", &minutes_from_now(-60));
    f1["records"] = json!({"processed": 100, "succeeded": 60, "failed": 40});
    let mut f2 = run("census:42", "r/2 #x", "failed", &minutes_from_now(-30));
    f2["records"] = json!({"processed": 200, "succeeded": 150, "failed": 50});
    f2["error"] = json!({"code": "E<1>", "message": format!("run failed {HOSTILE}")});
    f2["url"] = json!("https://runner.example.com/runs/2?a=1&b=2");
    f2["labels"] = json!({"destination": "salesforce", "team": "<i>growth</i>"});
    f2["record_errors"] = json!([
        {"record_id": "<img src=x onerror=alert(1)>", "code": "INVALID", "message": HOSTILE, "field": "Email"},
        {"record_id": "rec-2", "code": "INVALID", "message": HOSTILE},
    ]);
    let (status, body) = app.post_json("/v1/runs", &json!([ok, f1, f2])).await;
    assert_eq!(status, 202, "{body}");
    app
}

fn assert_no_raw_script(html: &str) {
    assert!(!html.contains("<script"), "a script tag got through");
    assert!(!html.contains("<img"), "an img tag got through");
    assert!(!html.contains("<i>growth"), "a label's markup got through");
}

#[tokio::test]
async fn the_fleet_lists_every_sync_with_firing_first_and_a_sparkline() {
    let app = seeded(Opts::default()).await;
    let (status, headers, html) = page(&app, "/").await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/html")
    );
    let csp = headers["content-security-policy"]
        .to_str()
        .unwrap_or_default();
    assert!(csp.contains("default-src 'none'") && !csp.contains("unsafe-inline"));
    assert_eq!(headers["cache-control"], "no-store");

    let census = html.find("/syncs/census:42").expect("census:42 is listed");
    let dbt = html
        .find("/syncs/dbt:marts%2Fcore")
        .expect("the upstream is listed, encoded");
    assert!(census < dbt, "the firing sync comes first");
    assert!(html.contains("badge s-firing"));
    assert!(
        html.contains("growth@example.com"),
        "owner from the catalogue"
    );
    assert!(html.contains("salesforce"), "destination label");
    assert!(html.contains("<svg class=\"spark\""), "a sparkline per row");
    // 24 h: 2 runs, none succeeded; 90 failed records.
    assert!(html.contains(">90<"), "records failed over 24 h: {html}");
    assert_no_raw_script(&html);
}

#[tokio::test]
async fn the_fleet_filters_by_state_label_and_text() {
    let app = seeded(Opts::default()).await;
    let (_, _, html) = page(&app, "/?state=firing").await;
    assert!(html.contains("/syncs/census:42") && !html.contains("/syncs/dbt:marts%2Fcore"));
    let (_, _, html) = page(&app, "/?state=ok").await;
    assert!(!html.contains("/syncs/census:42") && html.contains("/syncs/dbt:marts%2Fcore"));
    let (_, _, html) = page(&app, "/?label=destination%3Dsalesforce").await;
    assert!(html.contains("/syncs/census:42") && !html.contains("/syncs/dbt:marts%2Fcore"));
    let (_, _, html) = page(&app, "/?q=MARTS").await;
    assert!(!html.contains("/syncs/census:42") && html.contains("/syncs/dbt:marts%2Fcore"));
    let (status, _, html) = page(&app, "/?state=%3Cscript%3E").await;
    assert_eq!(status, 400);
    assert_no_raw_script(&html);
}

#[tokio::test]
async fn the_sync_page_shows_runs_alerts_incidents_and_neighbours() {
    let app = seeded(Opts::default()).await;
    let (status, _, html) = page(&app, "/syncs/census%3A42").await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("<svg class=\"chart\""),
        "the processed vs failed chart"
    );
    assert!(html.contains("broken"), "the rule");
    assert!(html.contains("consecutive"), "why it fires: {html}");
    assert!(html.contains("/syncs/dbt:marts%2Fcore"), "its upstream");
    // Both runs, newest first, linking to their pages with encoded ids.
    let newest = html
        .find("/runs/census:42/r%2F2%20%23x")
        .expect("newest run link");
    let older = html.find("/runs/census:42/r:1").expect("older run link");
    assert!(newest < older);
    let incidents = section(&html, "<h2>Incidents</h2>", "<h2>Runs");
    assert!(
        incidents.contains("badge s-firing\">firing<"),
        "the incident: {incidents}"
    );
    // Its firing notice, queued or already delivered by the outbox worker.
    assert!(
        incidents.contains("<b>firing</b>")
            && (incidents.contains("badge s-pending\">pending<")
                || incidents.contains("badge s-sent\">sent<")),
        "the firing notice and its delivery status: {incidents}"
    );
    assert_no_raw_script(&html);

    let (_, _, up) = page(&app, "/syncs/dbt:marts%2Fcore").await;
    assert!(up.contains("/syncs/census:42"), "its downstream");
    let downstream = up.split("<h2>Downstream</h2>").nth(1).unwrap_or_default();
    assert!(
        downstream.contains("badge s-firing"),
        "with its state: {downstream}"
    );
}

#[tokio::test]
async fn the_sync_page_pages_through_its_runs() {
    let app = spawn_app().await;
    let runs: Vec<Value> = (0..60)
        .map(|i| {
            run(
                "s",
                &format!("run-{i:02}"),
                "success",
                &minutes_from_now(-120 + i),
            )
        })
        .collect();
    let (status, _) = app.post_json("/v1/runs", &json!(runs)).await;
    assert_eq!(status, 202);
    let (_, _, first) = page(&app, "/syncs/s").await;
    assert!(first.contains("run-59") && !first.contains("run-09"));
    let next = first
        .split("href=\"")
        .find(|s| s.starts_with("/syncs/s?before="))
        .and_then(|s| s.split('"').next())
        .expect("an older-runs link");
    let (status, _, second) = page(&app, next).await;
    assert_eq!(status, 200);
    assert!(second.contains("run-09") && !second.contains("run-59"));
    let (status, _, _) = page(&app, "/syncs/s?before=garbage").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn an_unknown_sync_or_run_is_an_html_404() {
    let app = spawn_app().await;
    for path in ["/syncs/nope", "/runs/nope/1", "/runs/%3Cscript%3E/x"] {
        let (status, headers, html) = page(&app, path).await;
        assert_eq!(status, 404, "{path}");
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap_or_default()
                .starts_with("text/html")
        );
        assert!(html.contains("404"));
        assert_no_raw_script(&html);
    }
    // The API keeps answering JSON.
    let (status, body) = app.get("/v1/syncs/nope").await;
    assert_eq!(status, 404);
    assert!(body["error"].is_string());
}

#[tokio::test]
async fn the_run_page_shows_counts_classes_and_escapes_hostile_errors() {
    let app = seeded(Opts::default()).await;
    let (status, _, html) = page(&app, "/runs/census%3A42/r%2F2%20%23x").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("200"), "processed");
    assert!(html.contains("25.0%"), "failed ratio");
    assert!(
        html.contains("&lt;script&gt;"),
        "the hostile message is shown, escaped"
    );
    assert!(
        html.contains("E&lt;1&gt;"),
        "the run-level error code, escaped"
    );
    assert!(html.contains("INVALID"), "the error class");
    assert!(
        html.contains("href=\"https://runner.example.com/runs/2?a=1&amp;b=2\""),
        "the runner link: {html}"
    );
    assert_no_raw_script(&html);
}

#[tokio::test]
async fn notice_links_point_at_ui_pages() {
    // notify/gather.rs builds `{public_url}/syncs/{enc}`, `/runs/{enc}/{enc}`,
    // `/incidents?sync_id=` and `/silences?sync=`.
    let app = seeded(Opts::default()).await;
    for path in [
        "/syncs/census:42",
        "/runs/census:42/r%2F2%20%23x",
        "/incidents?sync_id=census%3A42",
        "/silences?sync=census%3A42",
    ] {
        let (status, _, html) = page(&app, path).await;
        assert_eq!(status, 200, "{path}: {html}");
    }
    let (_, _, html) = page(&app, "/incidents?sync_id=census%3A42").await;
    assert!(html.contains("badge s-firing") && html.contains("/syncs/census:42"));
    let (_, _, html) = page(&app, "/silences?sync=census%3A42").await;
    assert!(
        html.contains("value=\"census:42\""),
        "the form is pre-filled"
    );
}

/// GETs `/silences` and returns the CSRF cookie pair and form token.
async fn csrf(app: &TestApp) -> (String, String) {
    let (_, headers, html) = page(app, "/silences").await;
    let cookie = headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("syncwarden_csrf="))
        .and_then(|v| v.split(';').next())
        .expect("a CSRF cookie")
        .to_string();
    let token = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a CSRF token in the form")
        .to_string();
    (cookie, token)
}

/// `application/x-www-form-urlencoded`, as a browser posts a form.
trait FormExt {
    fn form_of<K: AsRef<str>, V: AsRef<str>>(self, pairs: &[(K, V)]) -> Self;
}

impl FormExt for reqwest::RequestBuilder {
    fn form_of<K: AsRef<str>, V: AsRef<str>>(self, pairs: &[(K, V)]) -> Self {
        let enc = |s: &str| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        let body: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k.as_ref()), enc(v.as_ref())))
            .collect();
        self.header("content-type", "application/x-www-form-urlencoded")
            .body(body.join("&"))
    }
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

#[tokio::test]
async fn a_silence_is_created_and_expired_through_the_forms() {
    let app = seeded(Opts::default()).await;
    let (cookie, token) = csrf(&app).await;
    let http = no_redirects();
    let resp = http
        .post(app.url("/silences"))
        .header("cookie", &cookie)
        .form_of(&[
            ("csrf", token.as_str()),
            ("sync", "census:*"),
            ("rule", "*"),
            ("duration", "2h"),
            ("author", "oncall@example.com"),
            ("comment", "Salesforce <quota>"),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status().as_u16(), 303);
    let (_, body) = app.get("/v1/silences").await;
    let silences = body["silences"].as_array().expect("silences");
    assert_eq!(silences.len(), 1, "{body}");
    assert_eq!(silences[0]["sync"], "census:*");
    let id = silences[0]["id"].as_str().expect("id").to_string();

    let (_, _, html) = page(&app, "/silences").await;
    assert!(html.contains("Salesforce &lt;quota&gt;") && html.contains("oncall@example.com"));

    let resp = http
        .post(app.url(&format!("/silences/{id}/expire")))
        .header("cookie", &cookie)
        .form_of(&[("csrf", token.as_str())])
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status().as_u16(), 303);
    let (_, body) = app.get("/v1/silences").await;
    assert_eq!(body["silences"].as_array().map(Vec::len), Some(0), "{body}");
}

#[tokio::test]
async fn a_silence_form_with_problems_is_shown_again_with_them() {
    let app = spawn_app().await;
    let (cookie, token) = csrf(&app).await;
    let resp = no_redirects()
        .post(app.url("/silences"))
        .header("cookie", &cookie)
        .form_of(&[
            ("csrf", token.as_str()),
            ("sync", "x"),
            ("duration", "soon"),
            ("author", ""),
            ("comment", ""),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status().as_u16(), 400);
    let html = resp.text().await.expect("body");
    assert!(
        html.contains("duration") && html.contains("author"),
        "{html}"
    );
    let (_, body) = app.get("/v1/silences").await;
    assert_eq!(body["silences"].as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn posts_without_a_valid_csrf_token_are_refused() {
    let app = spawn_app().await;
    let (cookie, token) = csrf(&app).await;
    let http = no_redirects();
    let form = |t: &str| {
        vec![
            ("csrf", t.to_string()),
            ("sync", "*".to_string()),
            ("duration", "1h".to_string()),
            ("author", "a".to_string()),
            ("comment", "b".to_string()),
        ]
    };
    // No cookie, a forged token, no token at all.
    let cases = [
        (None, form(&token)),
        (Some(cookie.clone()), form(&"0".repeat(64))),
        (Some(cookie.clone()), form("")),
    ];
    for (cookie, body) in cases {
        let mut req = http.post(app.url("/silences")).form_of(&body);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        let resp = req.send().await.expect("post");
        assert_eq!(resp.status().as_u16(), 403);
    }
    let resp = http
        .post(app.url("/silences/whatever/expire"))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status().as_u16(), 403);
    let (_, body) = app.get("/v1/silences").await;
    assert_eq!(body["silences"].as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn with_tokens_configured_pages_need_one_and_login_sets_a_cookie() {
    let app = seeded(Opts {
        tokens: vec!["s3cret; token".into()],
        ..Opts::default()
    })
    .await;
    let http = no_redirects();
    for path in [
        "/",
        "/syncs/census:42",
        "/runs/census:42/r:1",
        "/incidents",
        "/silences",
    ] {
        let resp = http.get(app.url(path)).send().await.expect("get");
        assert_eq!(resp.status().as_u16(), 401, "{path}");
        let html = resp.text().await.expect("body");
        assert!(html.contains("action=\"/login\""), "the login form");
        assert!(!html.contains("census:42\""), "nothing of the fleet leaks");
    }
    // A bearer header works, as for the API.
    let (status, _, _) = page(&app, "/").await;
    assert_eq!(status, 200);
    // The stylesheet is public (the login page needs it).
    let css = http
        .get(app.url("/ui/style.css"))
        .send()
        .await
        .expect("css");
    assert_eq!(css.status().as_u16(), 200);
    assert!(
        css.headers()["cache-control"]
            .to_str()
            .unwrap_or_default()
            .contains("max-age")
    );

    // The login form: CSRF first, then the token.
    let resp = http.get(app.url("/login")).send().await.expect("login");
    let csrf_cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.strip_prefix("syncwarden_csrf=")
                .map(|_| v.split(';').next().unwrap_or_default().to_string())
        })
        .expect("csrf cookie");
    let html = resp.text().await.expect("body");
    let token = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("csrf token")
        .to_string();
    let bad = http
        .post(app.url("/login"))
        .header("cookie", &csrf_cookie)
        .form_of(&[("csrf", token.as_str()), ("token", "wrong")])
        .send()
        .await
        .expect("post");
    assert_eq!(bad.status().as_u16(), 401);
    let good = http
        .post(app.url("/login"))
        .header("cookie", &csrf_cookie)
        .form_of(&[("csrf", token.as_str()), ("token", "s3cret; token")])
        .send()
        .await
        .expect("post");
    assert_eq!(good.status().as_u16(), 303);
    let session = good
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("syncwarden_token="))
        .expect("token cookie")
        .to_string();
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Strict"));
    let pair = session.split(';').next().unwrap_or_default().to_string();
    let resp = http
        .get(app.url("/syncs/census:42"))
        .header("cookie", &pair)
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status().as_u16(), 200);
    // The cookie is for the UI only: the API still wants the header.
    let resp = http
        .get(app.url("/v1/syncs"))
        .header("cookie", &pair)
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status().as_u16(), 401);
}

#[tokio::test]
async fn the_incidents_page_lists_firing_resolved_and_pending() {
    let app = seeded(Opts::default()).await;
    let (_, body) = app
        .post_json(
            "/v1/runs",
            &json!(run("other", "1", "failed", &minutes_from_now(-10))),
        )
        .await;
    assert_eq!(body["accepted"], 1);
    let (status, _, html) = page(&app, "/incidents").await;
    assert_eq!(status, 200);
    assert!(html.contains("/syncs/census:42"), "the firing incident");
    assert!(
        html.contains("Pending") && html.contains("/syncs/other"),
        "the pending alert"
    );
    let (_, _, html) = page(&app, "/incidents?state=resolved").await;
    assert!(!html.contains("/syncs/census:42"));
    let (status, _, _) = page(&app, "/incidents?state=bogus").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn the_fleet_counts_24_hours_from_hourly_and_7_days_from_daily_rollups() {
    let app = spawn_app().await;
    let mut recent = run("s", "1", "success", &minutes_from_now(-60));
    recent["records"] = json!({"processed": 100, "succeeded": 90, "failed": 6, "invalid": 4});
    let mut older = run("s", "0", "failed", &minutes_from_now(-3 * 24 * 60));
    older["records"] = json!({"processed": 50, "failed": 7});
    let mut ancient = run("s", "-1", "failed", &minutes_from_now(-20 * 24 * 60));
    ancient["records"] = json!({"processed": 5000, "failed": 1000});
    let (status, body) = app
        .post_json("/v1/runs", &json!([recent, older, ancient]))
        .await;
    assert_eq!(status, 202, "{body}");
    let (_, _, html) = page(&app, "/").await;
    let cells: Vec<&str> = html
        .split("<td class=\"num\">")
        .skip(1)
        .filter_map(|c| c.split('<').next())
        .collect();
    // Success 24 h, failed 24 h, success 7 d, failed 7 d.
    assert_eq!(cells, ["100.0%", "10", "50.0%", "17"], "{html}");
}

#[tokio::test]
async fn every_link_in_a_real_failure_email_opens_a_ui_page() {
    let app = seeded(Opts {
        public_url: Some("http://ui.test".into()),
        ..Opts::default()
    })
    .await;
    // The outbox worker writes the firing notice of census:42 as an .eml.
    let outbox = app.dir.path().join("outbox");
    let mut text = String::new();
    for _ in 0..100 {
        if let Ok(entries) = std::fs::read_dir(&outbox) {
            for e in entries.flatten() {
                let raw = std::fs::read(e.path()).unwrap_or_default();
                if let Some(m) = mail_parser::MessageParser::default().parse(&raw)
                    && m.subject().unwrap_or_default().contains("census:42")
                {
                    text = m.body_text(0).unwrap_or_default().to_string();
                }
            }
        }
        if !text.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(!text.is_empty(), "a notice for census:42 was written");
    let links: Vec<&str> = text
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("http://ui.test"))
        .collect();
    assert!(
        links.len() >= 3,
        "sync, run, incident and silence links: {text}"
    );
    for path in links {
        let (status, _, html) = page(&app, path).await;
        assert_eq!(status, 200, "{path}: {html}");
    }
}

#[tokio::test]
async fn without_tokens_the_login_page_sends_you_to_the_fleet() {
    let app = spawn_app().await;
    let resp = no_redirects()
        .get(app.url("/login"))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(resp.headers()["location"], "/");
}

#[tokio::test]
async fn a_hostile_run_id_is_escaped_in_text_and_encoded_in_links() {
    let app = spawn_app().await;
    let id = "<script>x</script>\"'&?#%";
    let (status, body) = app
        .post_json(
            "/v1/runs",
            &json!(run("s", id, "failed", &minutes_from_now(-5))),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let (_, _, html) = page(&app, "/syncs/s").await;
    assert_no_raw_script(&html);
    let href = "/runs/s/%3Cscript%3Ex%3C%2Fscript%3E%22%27%26%3F%23%25";
    assert!(html.contains(&format!("href=\"{href}\"")), "{html}");
    let (status, _, run_page) = page(&app, href).await;
    assert_eq!(status, 200);
    assert_no_raw_script(&run_page);
    assert!(
        run_page.contains("&lt;script&gt;x&lt;&#x2f;script&gt;"),
        "{run_page}"
    );
}

async fn post_runs(app: &TestApp, runs: Value) {
    let (status, body) = app.post_json("/v1/runs", &runs).await;
    assert_eq!(status, 202, "{body}");
}

/// The state badge of `href`'s row on the fleet page.
fn fleet_state<'a>(html: &'a str, href: &str) -> &'a str {
    let at = html
        .find(&format!("href=\"{href}\""))
        .unwrap_or_else(|| panic!("{href} is listed: {html}"));
    let row = html[..at].rfind("<tr class=\"row-").expect("its row") + "<tr class=\"row-".len();
    let end = html[row..].find('"').expect("the class ends");
    &html[row..row + end]
}

/// The part of the sync page between two headings.
fn section<'a>(html: &'a str, from: &str, to: &str) -> &'a str {
    let rest = html.split(from).nth(1).unwrap_or_default();
    rest.split(to).next().unwrap_or_default()
}

/// SPEC §3.5 on the pages: while `dbt:marts/core` fires, the firing notice
/// of `census:42` is held and every page says so; when the upstream
/// recovers the notice goes out and the pages say it was released. An
/// upstream that fires after the downstream's notice went out holds nothing
/// (the `census:1000` case of `fleet-30d`): the sync is firing, not held.
#[tokio::test]
async fn a_downstream_sync_shows_held_while_its_upstream_fires_and_released_after() {
    let app = spawn_with(Opts {
        rules: Some(RULES.into()),
        ..Opts::default()
    })
    .await;
    let up = "dbt:marts/core";
    post_runs(
        &app,
        json!([
            run(up, "m/1", "failed", &minutes_from_now(-100)),
            run(up, "m/2", "failed", &minutes_from_now(-95)),
            run("census:42", "r1", "failed", &minutes_from_now(-90)),
            run("census:42", "r2", "failed", &minutes_from_now(-85)),
        ]),
    )
    .await;

    let (_, _, fleet) = page(&app, "/").await;
    assert_eq!(fleet_state(&fleet, "/syncs/census:42"), "held");
    assert_eq!(fleet_state(&fleet, "/syncs/dbt:marts%2Fcore"), "firing");
    let (_, _, html) = page(&app, "/syncs/census%3A42").await;
    let alerts = section(&html, "<h2>Alerts</h2>", "<h2>Upstream</h2>");
    assert!(alerts.contains("badge s-held"), "{alerts}");
    assert!(alerts.contains("held: inhibited"), "{alerts}");
    let incidents = section(&html, "<h2>Incidents</h2>", "<h2>Runs");
    assert!(incidents.contains("held: inhibited"), "{incidents}");
    assert!(
        incidents.contains("badge s-held\">held<") && incidents.contains("inhibited: dbt:marts"),
        "the held firing names its upstream: {incidents}"
    );
    assert!(!incidents.contains("s-pending") && !incidents.contains("s-sent"));

    // The upstream recovers: the held firing goes out at that instant.
    post_runs(
        &app,
        json!([run(up, "m/3", "success", &minutes_from_now(-80))]),
    )
    .await;
    let (_, _, fleet) = page(&app, "/").await;
    assert_eq!(fleet_state(&fleet, "/syncs/census:42"), "firing");
    assert_eq!(fleet_state(&fleet, "/syncs/dbt:marts%2Fcore"), "ok");
    let (_, _, html) = page(&app, "/syncs/census%3A42").await;
    let alerts = section(&html, "<h2>Alerts</h2>", "<h2>Upstream</h2>");
    assert!(
        alerts.contains("badge s-firing") && !alerts.contains("held:"),
        "{alerts}"
    );
    let incidents = section(&html, "<h2>Incidents</h2>", "<h2>Runs");
    assert!(!incidents.contains("held: inhibited"), "{incidents}");
    assert!(
        incidents.contains("badge s-released\">released<") && incidents.contains("was held"),
        "the held record says it was released: {incidents}"
    );
    assert!(
        !incidents.contains("badge s-held\">held<"),
        "nothing is held any more: {incidents}"
    );
    assert!(
        incidents.contains("s-pending") || incidents.contains("s-sent"),
        "the released firing is a notice of its own: {incidents}"
    );

    // The upstream breaks again after the downstream's firing went out:
    // nothing of census:42 waits, so it shows firing and no hold.
    post_runs(
        &app,
        json!([
            run(up, "m/4", "failed", &minutes_from_now(-70)),
            run(up, "m/5", "failed", &minutes_from_now(-65)),
        ]),
    )
    .await;
    let (_, _, fleet) = page(&app, "/").await;
    assert_eq!(fleet_state(&fleet, "/syncs/dbt:marts%2Fcore"), "firing");
    assert_eq!(fleet_state(&fleet, "/syncs/census:42"), "firing");
    let (_, _, html) = page(&app, "/syncs/census%3A42").await;
    let alerts = section(&html, "<h2>Alerts</h2>", "<h2>Upstream</h2>");
    assert!(!alerts.contains("held:"), "{alerts}");
}
