//! The two ways notice delivery goes wrong, kept apart on purpose.
//!
//! [`ChannelError`] is a configuration problem found while building a channel
//! (a bad SMTP URL, an address that does not parse, an unknown channel name):
//! it stops start-up, before any notice is at stake. [`DeliveryError`] is one
//! failed attempt to deliver, and the outbox worker's only question about it
//! is "try again later, or record it as failed?". The senders answer that
//! question once, here and in their `classify_*` functions, so the worker
//! never inspects SMTP codes or HTTP statuses itself.

use std::time::Duration;

use thiserror::Error;

/// One failed delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DeliveryError {
    /// Worth retrying: the receiver is down, slow, rate-limiting or said
    /// "try later" (SMTP 4xx, HTTP 5xx/429/408, connection errors, timeouts,
    /// a full disk for the `.eml` outbox).
    #[error("transient delivery failure: {reason}")]
    Transient {
        reason: String,
        /// What the receiver asked for (`Retry-After`); the worker waits at
        /// least this long, or uses its own backoff when `None`.
        retry_after: Option<Duration>,
    },
    /// Retrying cannot help: the receiver rejected this message (SMTP 5xx,
    /// HTTP 4xx such as Slack's `invalid_payload` or `no_service`). The
    /// worker records the notice as failed; it is never deleted.
    #[error("permanent delivery failure: {reason}")]
    Permanent { reason: String },
}

impl DeliveryError {
    pub fn transient(reason: impl Into<String>) -> Self {
        DeliveryError::Transient {
            reason: reason.into(),
            retry_after: None,
        }
    }

    pub fn permanent(reason: impl Into<String>) -> Self {
        DeliveryError::Permanent {
            reason: reason.into(),
        }
    }

    pub fn is_transient(&self) -> bool {
        matches!(self, DeliveryError::Transient { .. })
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            DeliveryError::Transient { retry_after, .. } => *retry_after,
            DeliveryError::Permanent { .. } => None,
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            DeliveryError::Transient { reason, .. } | DeliveryError::Permanent { reason } => reason,
        }
    }
}

/// A channel that cannot be built from its configuration.
#[derive(Debug, Error)]
pub enum ChannelError {
    #[error("channel {channel}: {message}")]
    Config { channel: String, message: String },
    #[error("unknown channel {name:?}: {hint}")]
    Unknown { name: String, hint: String },
    #[error("channel {channel}: invalid rate limit: {source}")]
    Rate {
        channel: String,
        source: crate::notify::limit::LimitError,
    },
    #[error("building the message: {0}")]
    Message(String),
}

impl ChannelError {
    pub(crate) fn config(channel: &str, message: impl Into<String>) -> Self {
        ChannelError::Config {
            channel: channel.to_owned(),
            message: message.into(),
        }
    }
}
