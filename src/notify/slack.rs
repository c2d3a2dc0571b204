//! The Slack channel: Block Kit messages to an incoming webhook.
//!
//! The payload is built in Rust with `serde_json` rather than from a
//! template. Block Kit has hard limits (150 characters in a header, 3000 in
//! a section, 10 fields, 50 blocks, button URLs that must be http(s)), and a
//! message that breaks one is refused with `invalid_blocks` — a permanent
//! failure, a lost alert. Code can guarantee those limits for any input and
//! escape Slack's mrkdwn (`&`, `<`, `>`, so a record error cannot write
//! `<!channel>` or a fake link); a user-edited JSON template could not.
//!
//! Slack gets the summary (what, since when, how bad, top error classes,
//! links); the e-mail carries every detail.

use serde_json::{Value, json};

use crate::config::SlackChannel;
use crate::notify::context::NoticeContext;
use crate::notify::error::{ChannelError, DeliveryError};
use crate::notify::format;
use crate::notify::http;

/// Block Kit limits (api.slack.com/reference/block-kit).
const HEADER_CHARS: usize = 150;
const SECTION_CHARS: usize = 3000;
const FIELD_CHARS: usize = 2000;
const BUTTON_TEXT_CHARS: usize = 75;
const URL_CHARS: usize = 3000;
const MAX_BLOCKS: usize = 50;
/// Error classes listed per notice.
const TOP_CLASSES: usize = 5;
/// Notices shown in full in a grouped message (each takes up to 8 blocks).
const MAX_GROUP_NOTICES: usize = 5;

/// One configured Slack channel (`slack:<name>`).
pub struct SlackSender {
    name: String,
    webhook_url: crate::config::Secret,
    client: reqwest::Client,
}

impl std::fmt::Debug for SlackSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackSender")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl SlackSender {
    pub fn new(name: &str, cfg: &SlackChannel) -> Result<SlackSender, ChannelError> {
        let channel = format!("slack:{name}");
        let url = cfg.webhook_url.expose();
        if !format::is_http_url(url) || reqwest::Url::parse(url).is_err() {
            return Err(ChannelError::config(
                &channel,
                "webhook_url is not an http(s) URL",
            ));
        }
        Ok(SlackSender {
            name: name.to_owned(),
            webhook_url: cfg.webhook_url.clone(),
            client: http::client(&channel, cfg.timeout)?,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Block Kit message for one notice, or for a group.
    pub fn payload(ctxs: &[NoticeContext]) -> Value {
        match ctxs {
            [one] => single(one),
            many => group(many),
        }
    }

    /// POSTs a payload (10 s timeout). Slack answers `200 ok`; its 4xx
    /// bodies (`invalid_payload`, `no_service`, `channel_is_archived`) are
    /// permanent failures, 429 and 5xx transient.
    pub async fn send(&self, payload: &Value) -> Result<(), DeliveryError> {
        let body = serde_json::to_vec(payload)
            .map_err(|e| DeliveryError::permanent(format!("Slack payload: {e}")))?;
        let request = self
            .client
            .post(self.webhook_url.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        http::post(request, body).await
    }

    pub async fn deliver(&self, ctxs: &[NoticeContext]) -> Result<(), DeliveryError> {
        self.send(&SlackSender::payload(ctxs)).await
    }
}

/// Escapes text for mrkdwn: Slack reads `<…>` as links and mentions.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn mrkdwn(text: &str, max: usize) -> Value {
    json!({ "type": "mrkdwn", "text": cap_escaped(text, max) })
}

/// Caps already-escaped text without cutting an `&lt;` in half.
fn cap_escaped(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out = format::cap(text, max);
    if let Some(amp) = out.rfind('&')
        && !out[amp..].contains(';')
    {
        out.truncate(amp);
        out.push('…');
    }
    out
}

fn emoji(kind: &str) -> &'static str {
    match kind {
        "resolved" => ":white_check_mark:",
        "reminder" => ":large_orange_circle:",
        _ => ":red_circle:",
    }
}

fn title(n: &NoticeContext) -> String {
    format::one_line(
        &format!(
            "{} {}: {}",
            emoji(&n.kind),
            format::kind_label(&n.kind),
            n.sync_id
        ),
        HEADER_CHARS,
    )
}

/// `*Runs are failing* · rule `sync-broken` · critical` + the condition.
fn summary_text(n: &NoticeContext) -> String {
    let cause = format::cause_text(&n.kind, n.cause.as_deref());
    let mut text = format!(
        "*{}{}* · rule `{}` · {}\n{}",
        cause.get(..1).unwrap_or_default().to_uppercase(),
        cause.get(1..).unwrap_or_default(),
        esc(&format::one_line(&n.rule, 200)),
        esc(&format::one_line(&n.severity, 50)),
        esc(&n.condition),
    );
    if let Some(reason) = &n.reason {
        text.push_str(&format!("\n*Reason:* {}", esc(reason)));
    }
    text
}

fn sum(values: impl Iterator<Item = Option<u64>>) -> Option<u64> {
    values.fold(None, |acc, v| match (acc, v) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0).saturating_add(b.unwrap_or(0))),
    })
}

fn fields(n: &NoticeContext) -> Vec<Value> {
    let mut f: Vec<(String, String)> = Vec::new();
    if n.kind == "resolved" {
        let ms = n.totals.map_or(n.at.0 - n.since.0, |t| t.duration_ms);
        f.push(("Broken for".into(), format::human_duration(ms)));
    } else {
        f.push(("Broken since".into(), format::when(n.since)));
    }
    if n.source.is_some() || n.destination.is_some() {
        f.push((
            "Pipeline".into(),
            format!(
                "{} → {}",
                n.source.as_deref().unwrap_or("?"),
                n.destination.as_deref().unwrap_or("?")
            ),
        ));
    }
    if let Some(owner) = &n.owner {
        f.push(("Owner".into(), owner.clone()));
    }
    match (&n.totals, n.kind.as_str()) {
        (Some(t), "resolved") => {
            f.push((
                "Runs failed".into(),
                format!(
                    "{} of {}",
                    format::thousands(t.runs_failed),
                    format::thousands(t.runs)
                ),
            ));
            f.push(("Records failed".into(), format::thousands(t.records_failed)));
            f.push((
                "Records invalid".into(),
                format::thousands(t.records_invalid),
            ));
        }
        _ if !n.bad_runs.is_empty() => {
            f.push((
                "Bad runs".into(),
                format::thousands(n.bad_runs.len() as u64),
            ));
            if let Some(failed) = sum(n.bad_runs.iter().map(|r| r.failed)) {
                f.push(("Records failed".into(), format::thousands(failed)));
            }
            if let Some(invalid) = sum(n.bad_runs.iter().map(|r| r.invalid)) {
                f.push(("Records invalid".into(), format::thousands(invalid)));
            }
        }
        _ => {}
    }
    f.truncate(10);
    f.into_iter()
        .map(|(label, value)| {
            mrkdwn(
                &format!("*{label}*\n{}", esc(&format::one_line(&value, 300))),
                FIELD_CHARS,
            )
        })
        .collect()
}

fn classes_text(n: &NoticeContext) -> Option<String> {
    if n.error_classes.is_empty() {
        return None;
    }
    let mut text = String::from("*Top error classes*");
    for c in n.error_classes.iter().take(TOP_CLASSES) {
        text.push_str("\n• ");
        text.push_str(&esc(&format::one_line(&c.headline(), 400)));
        if !c.examples.is_empty() {
            let examples = c
                .examples
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
            text.push_str(&format!(
                " _(e.g. {})_",
                esc(&format::one_line(&examples, 200))
            ));
        }
    }
    if n.error_classes.len() > TOP_CLASSES {
        text.push_str(&format!(
            "\n… and {} more classes",
            n.error_classes.len() - TOP_CLASSES
        ));
    }
    Some(text)
}

fn context_text(n: &NoticeContext) -> String {
    let mut parts = vec![
        format!("since {}", format::when(n.since)),
        format!("at {}", format::when(n.at)),
        format!("incident `{}`", esc(&n.incident_id)),
    ];
    if !n.downstream.is_empty() {
        parts.push(format!(
            "downstream held: {}",
            esc(&format::one_line(&n.downstream.join(", "), 500))
        ));
    }
    parts.join(" · ")
}

fn buttons(n: &NoticeContext) -> Option<Value> {
    let runner_label = format!("Open in {}", n.source.as_deref().unwrap_or("the runner"));
    let candidates = [
        (
            "open_run",
            "Open the run".to_owned(),
            n.links.run.as_deref(),
        ),
        ("open_runner", runner_label, n.links.runner.as_deref()),
        (
            "open_sync",
            "Sync page".to_owned(),
            Some(n.links.sync.as_str()),
        ),
        (
            "open_incident",
            "Incident".to_owned(),
            Some(n.links.incident.as_str()),
        ),
    ];
    let elements: Vec<Value> = candidates
        .into_iter()
        .filter_map(|(id, label, url)| {
            let url = url.filter(|u| format::is_http_url(u) && u.len() <= URL_CHARS)?;
            Some(json!({
                "type": "button",
                "action_id": id,
                "text": {
                    "type": "plain_text",
                    "text": format::one_line(&label, BUTTON_TEXT_CHARS),
                    "emoji": false
                },
                "url": url
            }))
        })
        .collect();
    (!elements.is_empty()).then(|| json!({ "type": "actions", "elements": elements }))
}

/// The blocks describing one notice, headed by `header`.
fn notice_blocks(n: &NoticeContext, header: Value) -> Vec<Value> {
    let mut blocks = vec![
        header,
        json!({ "type": "section", "text": mrkdwn(&summary_text(n), SECTION_CHARS) }),
        json!({ "type": "section", "fields": fields(n) }),
    ];
    if n.is_failure() {
        if let Some(err) = &n.run_error {
            blocks.push(json!({
                "type": "section",
                "text": mrkdwn(&format!("*Latest run error:* {}", esc(&format::one_line(err, 1000))), SECTION_CHARS)
            }));
        }
        if let Some(text) = classes_text(n) {
            blocks.push(json!({ "type": "section", "text": mrkdwn(&text, SECTION_CHARS) }));
        }
    }
    if let Some(actions) = buttons(n) {
        blocks.push(actions);
    }
    let mut context = vec![mrkdwn(&context_text(n), SECTION_CHARS)];
    if n.is_failure() {
        context.push(mrkdwn(
            &format!(
                "Silence: `{}`",
                esc(&format::one_line(&n.silence_hint, 500))
            ),
            SECTION_CHARS,
        ));
    }
    blocks.push(json!({ "type": "context", "elements": context }));
    blocks
}

fn single(n: &NoticeContext) -> Value {
    let header = json!({
        "type": "header",
        "text": { "type": "plain_text", "text": title(n), "emoji": true }
    });
    json!({
        "text": fallback(n),
        "blocks": notice_blocks(n, header),
    })
}

/// The notification text (phones, the sidebar, clients without blocks).
fn fallback(n: &NoticeContext) -> String {
    let line = format::one_line(
        &format!(
            "{} {} — {}: {}",
            format::kind_label(&n.kind),
            n.sync_id,
            n.rule,
            n.condition
        ),
        SECTION_CHARS,
    );
    cap_escaped(&esc(&line), SECTION_CHARS)
}

fn group(ctxs: &[NoticeContext]) -> Value {
    let (_, _, _, breakdown) = format::group_breakdown(ctxs.iter().map(|c| c.kind.as_str()));
    let heading = format::one_line(
        &format!("{} notices: {breakdown}", ctxs.len()),
        HEADER_CHARS,
    );
    let mut blocks = vec![json!({
        "type": "header",
        "text": { "type": "plain_text", "text": heading, "emoji": true }
    })];
    for n in ctxs.iter().take(MAX_GROUP_NOTICES) {
        blocks.push(json!({ "type": "divider" }));
        let header = json!({
            "type": "section",
            "text": mrkdwn(&format!("{} *{}* {}", emoji(&n.kind), format::kind_label(&n.kind), esc(&format::one_line(&n.sync_id, 200))), SECTION_CHARS)
        });
        blocks.extend(notice_blocks(n, header));
    }
    if ctxs.len() > MAX_GROUP_NOTICES {
        let rest: Vec<String> = ctxs[MAX_GROUP_NOTICES..]
            .iter()
            .map(|n| format!("{} {}", format::kind_label(&n.kind), n.sync_id))
            .collect();
        blocks.push(json!({ "type": "divider" }));
        blocks.push(json!({
            "type": "section",
            "text": mrkdwn(
                &format!("… and {} more: {}", rest.len(), esc(&format::one_line(&rest.join(", "), 2500))),
                SECTION_CHARS
            )
        }));
    }
    blocks.truncate(MAX_BLOCKS);
    let line = format::one_line(
        &format!(
            "{heading}: {}",
            ctxs.iter()
                .map(|c| c.sync_id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        SECTION_CHARS,
    );
    let text = cap_escaped(&esc(&line), SECTION_CHARS);
    json!({ "text": text, "blocks": blocks })
}

#[cfg(test)]
mod tests;
