//! One vendor API client per workspace: bearer auth, a governor quota, a
//! timeout per request, and retries with exponential backoff that honour
//! `Retry-After`.
//!
//! A 429 pauses the whole workspace (every task sharing the client waits),
//! not just the request that got it: the vendor's limit is per token. The
//! caller may pass a deadline (a webhook handler must answer its sender in
//! time): a retry that would end after it is not attempted.

use std::sync::Mutex;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use tokio::time::Instant;

use crate::config::Secret;
use crate::ingest::adapters::AdapterError;
use crate::ingest::sources::ApiSettings;

/// The largest response body read from a vendor API.
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Why a vendor API call failed (after its retries).
#[derive(Debug, thiserror::Error)]
pub enum VendorError {
    #[error("{vendor} API answered {status} for {path}{detail}")]
    Status {
        vendor: &'static str,
        status: u16,
        path: String,
        detail: String,
    },
    #[error("{vendor} API unreachable for {path}: {detail}")]
    Transport {
        vendor: &'static str,
        path: String,
        detail: String,
    },
    #[error("{vendor} API: unexpected response for {path}: {source}")]
    Payload {
        vendor: &'static str,
        path: String,
        source: AdapterError,
    },
}

impl VendorError {
    /// A client error that retrying will not fix (4xx other than 429).
    pub fn is_permanent(&self) -> bool {
        matches!(self, VendorError::Status { status, .. } if *status != 429 && *status < 500)
    }
}

pub struct VendorClient {
    vendor: &'static str,
    http: reqwest::Client,
    base: Url,
    token: Secret,
    limiter: DefaultDirectRateLimiter,
    settings: ApiSettings,
    /// Set by a 429: no request of this workspace starts before it.
    paused_until: Mutex<Option<Instant>>,
}

impl VendorClient {
    pub fn new(
        vendor: &'static str,
        token: Secret,
        settings: &ApiSettings,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(settings.request_timeout)
            .connect_timeout(settings.request_timeout)
            .user_agent(concat!("syncwarden/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let n = std::num::NonZeroU32::new(settings.requests_per_second)
            .unwrap_or(std::num::NonZeroU32::MIN);
        Ok(VendorClient {
            vendor,
            http,
            base: settings.api_url.clone(),
            token,
            limiter: RateLimiter::direct(Quota::per_second(n).allow_burst(n)),
            settings: settings.clone(),
            paused_until: Mutex::new(None),
        })
    }

    pub fn vendor(&self) -> &'static str {
        self.vendor
    }

    /// `GET <api_url>/<segments…>?<query>` and the body of its 2xx answer.
    /// Segments are percent-encoded (vendor ids are opaque).
    pub async fn get(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
        deadline: Option<Instant>,
    ) -> Result<Vec<u8>, VendorError> {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let path = format!("/{}", segments.join("/"));
        let mut attempt = 0u32;
        loop {
            self.wait_turn().await;
            let (error, wait) = match self.once(url.clone(), &path).await {
                Ok(body) => return Ok(body),
                Err(Failure::Permanent(e)) => return Err(e),
                Err(Failure::Retry { error, retry_after }) => {
                    let backoff = self.backoff(attempt);
                    let wait = retry_after
                        .unwrap_or(backoff)
                        .min(self.settings.max_backoff);
                    if retry_after.is_some() {
                        self.pause_for(wait);
                    }
                    (error, wait)
                }
            };
            let past_deadline = deadline.is_some_and(|d| Instant::now() + wait > d);
            if attempt >= self.settings.max_retries || past_deadline {
                return Err(error);
            }
            tracing::debug!(vendor = self.vendor, %path, ?wait, error = %error, "retrying");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn once(&self, url: Url, path: &str) -> Result<Vec<u8>, Failure> {
        let transport = |e: reqwest::Error| {
            let detail = if e.is_timeout() {
                format!(
                    "timed out after {}",
                    humantime::format_duration(self.settings.request_timeout)
                )
            } else {
                e.without_url().to_string()
            };
            Failure::Retry {
                error: VendorError::Transport {
                    vendor: self.vendor,
                    path: path.to_owned(),
                    detail,
                },
                retry_after: None,
            }
        };
        let mut resp = self
            .http
            .get(url)
            .bearer_auth(self.token.expose())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status();
        if !status.is_success() {
            let retry_after = retry_after(resp.headers());
            let body = resp.text().await.unwrap_or_default();
            let error = VendorError::Status {
                vendor: self.vendor,
                status: status.as_u16(),
                path: path.to_owned(),
                detail: snippet(&body),
            };
            return Err(
                if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                    Failure::Retry { error, retry_after }
                } else {
                    Failure::Permanent(error)
                },
            );
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(Failure::Permanent(VendorError::Transport {
                    vendor: self.vendor,
                    path: path.to_owned(),
                    detail: format!("response larger than {MAX_BODY_BYTES} bytes"),
                }));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn backoff(&self, attempt: u32) -> Duration {
        self.settings
            .backoff
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(self.settings.max_backoff)
    }

    fn pause_for(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut paused = self
            .paused_until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if paused.is_none_or(|p| p < until) {
            *paused = Some(until);
        }
    }

    /// Waits out a 429 pause, then for the quota.
    async fn wait_turn(&self) {
        let until = *self
            .paused_until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
        self.limiter.until_ready().await;
    }
}

enum Failure {
    Permanent(VendorError),
    Retry {
        error: VendorError,
        retry_after: Option<Duration>,
    },
}

/// `Retry-After` in seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc2822).ok()?;
    let secs = (at - time::OffsetDateTime::now_utc()).whole_milliseconds();
    Some(Duration::from_millis(u64::try_from(secs).unwrap_or(0)))
}

/// The start of an error body, for logs and `/readyz` (vendors explain
/// their 4xx there).
fn snippet(body: &str) -> String {
    let text: String = body.chars().filter(|c| !c.is_control()).take(200).collect();
    if text.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", text.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO), "a past date");
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn error_bodies_are_clipped_to_one_line() {
        assert_eq!(snippet(""), "");
        assert_eq!(
            snippet("{\"message\":\"bad\"}\n"),
            ": {\"message\":\"bad\"}"
        );
        assert_eq!(snippet(&"x".repeat(500)).len(), 202);
    }
}
