//! What Slack and generic webhooks share: one HTTP client set-up and one
//! answer to "was that POST delivered, and if not, retry or give up?".
//!
//! The classification follows what receivers mean: 5xx, 429 and 408 are
//! "not now" (transient, with `Retry-After` honoured on 429 and 503); any
//! other 4xx is "never" (permanent, with the start of the body, which is
//! where Slack says `invalid_payload` or `no_service`); a redirect is a
//! misconfigured URL. Errors never include the URL: a Slack webhook URL is a
//! secret.

use std::error::Error as _;
use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use time::PrimitiveDateTime;
use time::macros::format_description;

use crate::notify::error::{ChannelError, DeliveryError};
use crate::notify::format;

/// Whole-request timeout for one delivery attempt.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest `Retry-After` obeyed: a receiver asking for more is retried
/// after this, so one odd header cannot park a channel for days.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// How much of an error response body goes into the failure reason.
const BODY_SNIPPET_CHARS: usize = 200;

/// The client for one channel. Installs the ring TLS provider if nobody did
/// (reqwest is built with `rustls-no-provider` and panics without one), so a
/// channel works whatever `main` or a test did first.
/// `timeout` bounds a whole attempt (default [`HTTP_TIMEOUT`]).
pub(crate) fn client(
    channel: &str,
    timeout: Option<Duration>,
) -> Result<reqwest::Client, ChannelError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let timeout = timeout.unwrap_or(HTTP_TIMEOUT);
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(5).min(timeout))
        // A POST that is redirected would be re-sent as a GET or dropped;
        // better to report the URL as wrong.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("syncwarden/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ChannelError::config(channel, format!("HTTP client: {}", e.without_url())))
}

/// POSTs `body` and classifies the outcome.
pub(crate) async fn post(
    request: reqwest::RequestBuilder,
    body: Vec<u8>,
) -> Result<(), DeliveryError> {
    let response = request
        .body(body)
        .send()
        .await
        .map_err(|e| classify_reqwest(&e))?;
    let status = response.status();
    let headers = response.headers().clone();
    if status.is_success() {
        return Ok(());
    }
    // The body only matters for the reason; a body that fails to arrive
    // must not turn a clear status into a different error.
    let body = response.text().await.unwrap_or_default();
    classify_status(status, &headers, &body, SystemTime::now())
}

/// The verdict on an HTTP response (see the module doc).
pub fn classify_status(
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
    now: SystemTime,
) -> Result<(), DeliveryError> {
    if status.is_success() {
        return Ok(());
    }
    let snippet = format::one_line(body, BODY_SNIPPET_CHARS);
    let reason = if snippet.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {snippet}")
    };
    let code = status.as_u16();
    if code == 429 || code == 408 || status.is_server_error() {
        let retry_after = if code == 429 || code == 503 {
            headers
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| retry_after(v, now))
        } else {
            None
        };
        return Err(DeliveryError::Transient {
            reason,
            retry_after,
        });
    }
    if status.is_redirection() {
        return Err(DeliveryError::permanent(format!(
            "{reason} (the URL redirects; configure the final URL)"
        )));
    }
    Err(DeliveryError::permanent(reason))
}

/// `Retry-After` as seconds (`7`) or an HTTP date
/// (`Sun, 06 Nov 1994 08:49:37 GMT`), relative to `now` and capped at
/// [`MAX_RETRY_AFTER`]; a date in the past means "now".
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    let fmt = format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let at: SystemTime = PrimitiveDateTime::parse(value, &fmt)
        .ok()?
        .assume_utc()
        .into();
    Some(
        at.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(MAX_RETRY_AFTER),
    )
}

/// A request that got no response. Only a request that could not even be
/// built (a malformed URL) is permanent; connection refused or reset, DNS
/// failures and timeouts are transient.
pub fn classify_reqwest(err: &reqwest::Error) -> DeliveryError {
    let mut reason = String::from("HTTP request failed");
    if err.is_timeout() {
        reason.push_str(" (timeout)");
    } else if err.is_connect() {
        reason.push_str(" (cannot connect)");
    }
    // The chain below the top-level error names the cause (`Connection
    // refused`, `dns error`) without the URL.
    let mut source = err.source();
    while let Some(s) = source {
        reason.push_str(": ");
        reason.push_str(&s.to_string());
        source = s.source();
    }
    let reason = format::one_line(&reason, 500);
    if err.is_builder() {
        DeliveryError::permanent(reason)
    } else {
        DeliveryError::transient(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(
        code: u16,
        headers: &[(&'static str, &str)],
        body: &str,
    ) -> Result<(), DeliveryError> {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, v.parse().expect("header value"));
        }
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // 1994-11-06 08:49:37
        classify_status(StatusCode::from_u16(code).expect("status"), &map, body, now)
    }

    #[test]
    fn success_is_delivered() {
        assert_eq!(status(200, &[], "ok"), Ok(()));
        assert_eq!(status(204, &[], ""), Ok(()));
    }

    #[test]
    fn server_errors_and_throttling_are_transient() {
        for code in [500, 502, 503, 504, 429, 408] {
            let err = status(code, &[], "").expect_err("fails");
            assert!(err.is_transient(), "{code}");
            assert_eq!(err.retry_after(), None);
        }
    }

    #[test]
    fn retry_after_is_honoured_on_429_and_503_in_seconds_or_as_a_date() {
        let err = status(429, &[("retry-after", "7")], "").expect_err("fails");
        assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
        let err = status(503, &[("retry-after", "Sun, 06 Nov 1994 08:50:07 GMT")], "")
            .expect_err("fails");
        assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));
        // Only 429 and 503 carry it.
        let err = status(500, &[("retry-after", "7")], "").expect_err("fails");
        assert_eq!(err.retry_after(), None);
        // Garbage is ignored, the past is now, a huge value is capped.
        let err = status(429, &[("retry-after", "soon")], "").expect_err("fails");
        assert_eq!(err.retry_after(), None);
        let err = status(429, &[("retry-after", "Sat, 05 Nov 1994 08:49:37 GMT")], "")
            .expect_err("fails");
        assert_eq!(err.retry_after(), Some(Duration::ZERO));
        let err = status(429, &[("retry-after", "999999")], "").expect_err("fails");
        assert_eq!(err.retry_after(), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn client_errors_are_permanent_and_quote_the_body() {
        let err = status(400, &[], "invalid_payload").expect_err("fails");
        assert_eq!(
            err,
            DeliveryError::permanent("HTTP 400 Bad Request: invalid_payload")
        );
        let err = status(404, &[], "no_service\n").expect_err("fails");
        assert_eq!(err.reason(), "HTTP 404 Not Found: no_service");
        let long = "x".repeat(5000);
        let err = status(403, &[], &long).expect_err("fails");
        assert!(err.reason().chars().count() < 250);
        let err = status(301, &[], "").expect_err("fails");
        assert!(!err.is_transient());
        assert!(err.reason().contains("redirects"));
    }
}
