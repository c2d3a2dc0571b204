//! The generic webhook channel: notices as JSON for any receiver (an
//! incident tool, a chat bridge, a ticket system).
//!
//! # The request
//!
//! `POST <url>` with `Content-Type: application/json` and the body
//!
//! ```json
//! {"version": 1, "notices": [ NoticeContext, … ]}
//! ```
//!
//! where each notice has exactly the fields of
//! [`NoticeContext`](crate::notify::context::NoticeContext) (documented in
//! `templates/README.md`); absent values are `null`. `version` changes only
//! when a field is removed or changes meaning; new fields may appear at any
//! time. A grouped delivery carries several notices.
//!
//! Headers:
//! - `Idempotency-Key`: the notice keys of the body joined by `,` — the same
//!   on every retry, so a receiver can drop a duplicate delivery.
//! - With a `secret` configured: `X-Syncwarden-Timestamp: <unix seconds>`
//!   and `X-Syncwarden-Signature: sha256=<hex>`, where `<hex>` is
//!   HMAC-SHA256 keyed with the secret over the bytes
//!   `<timestamp>` `.` `<body>` (the timestamp header's value, one ASCII
//!   dot, then the raw request body). Signing the timestamp with the body
//!   lets a receiver refuse replays: reject timestamps older than a few
//!   minutes, then compare signatures in constant time.
//!
//! The payload is built in Rust, not from a template: it is a contract, and
//! a template could silently break it.

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use serde_json::Value;
use sha2::Sha256;

use crate::config::{Secret, WebhookChannel};
use crate::notify::context::NoticeContext;
use crate::notify::error::{ChannelError, DeliveryError};
use crate::notify::format;
use crate::notify::http;

/// The body's `version`.
pub const PAYLOAD_VERSION: u32 = 1;
pub const SIGNATURE_HEADER: &str = "X-Syncwarden-Signature";
pub const TIMESTAMP_HEADER: &str = "X-Syncwarden-Timestamp";
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// The webhook body.
#[derive(Debug, Serialize)]
pub struct WebhookBody<'a> {
    pub version: u32,
    pub notices: &'a [NoticeContext],
}

/// One configured webhook channel (`webhook:<name>`).
pub struct WebhookSender {
    name: String,
    url: Secret,
    secret: Option<Secret>,
    client: reqwest::Client,
}

impl std::fmt::Debug for WebhookSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSender")
            .field("name", &self.name)
            .field("signed", &self.secret.is_some())
            .finish_non_exhaustive()
    }
}

impl WebhookSender {
    pub fn new(name: &str, cfg: &WebhookChannel) -> Result<WebhookSender, ChannelError> {
        let channel = format!("webhook:{name}");
        let url = cfg.url.expose();
        if !format::is_http_url(url) || reqwest::Url::parse(url).is_err() {
            return Err(ChannelError::config(&channel, "url is not an http(s) URL"));
        }
        if cfg.secret.as_ref().is_some_and(|s| s.expose().is_empty()) {
            return Err(ChannelError::config(&channel, "secret is empty"));
        }
        Ok(WebhookSender {
            name: name.to_owned(),
            url: cfg.url.clone(),
            secret: cfg.secret.clone(),
            client: http::client(&channel, cfg.timeout)?,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `{"version":1,"notices":[…]}`.
    pub fn payload(ctxs: &[NoticeContext]) -> Value {
        serde_json::to_value(WebhookBody {
            version: PAYLOAD_VERSION,
            notices: ctxs,
        })
        .unwrap_or_default()
    }

    /// POSTs `payload` with the idempotency key for `keys` and, with a
    /// secret, the signature of this exact body at the current time.
    pub async fn send(&self, payload: &Value, keys: &[String]) -> Result<(), DeliveryError> {
        let body = serde_json::to_vec(payload)
            .map_err(|e| DeliveryError::permanent(format!("webhook payload: {e}")))?;
        let mut request = self
            .client
            .post(self.url.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(IDEMPOTENCY_HEADER, idempotency_key(keys));
        if let Some(secret) = &self.secret {
            let timestamp = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            request = request
                .header(TIMESTAMP_HEADER, timestamp.to_string())
                .header(SIGNATURE_HEADER, sign(secret.expose(), timestamp, &body));
        }
        http::post(request, body).await
    }

    pub async fn deliver(&self, ctxs: &[NoticeContext]) -> Result<(), DeliveryError> {
        let keys: Vec<String> = ctxs.iter().map(|c| c.key.clone()).collect();
        self.send(&WebhookSender::payload(ctxs), &keys).await
    }
}

/// `sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub fn sign(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac = signer(secret, timestamp);
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks a signature header the way a receiver should: constant-time, on
/// the raw body. Here for receivers written in Rust and for tests.
pub fn verify(secret: &str, timestamp: u64, body: &[u8], header: &str) -> bool {
    let Some(sig) = header
        .strip_prefix("sha256=")
        .and_then(|h| hex::decode(h).ok())
    else {
        return false;
    };
    let mut mac = signer(secret, timestamp);
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

fn signer(secret: &str, timestamp: u64) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac
}

/// The keys joined by `,`, restricted to characters valid in a header.
fn idempotency_key(keys: &[String]) -> String {
    keys.iter()
        .map(|k| {
            k.chars()
                .filter(|c| c.is_ascii_graphic() && *c != ',')
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests;
