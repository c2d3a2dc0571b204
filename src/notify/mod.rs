//! Notice delivery: what a notice says and how it reaches people.
//!
//! The outbox worker (`worker.rs`) reads due notices from the store, turns
//! each into a [`context::NoticeContext`], and hands it here:
//!
//! - [`context`] — the plain data a message is rendered from;
//! - [`render`] — minijinja templates from `templates/` (user-editable, with
//!   built-in fallbacks) → subject, text and HTML;
//! - [`email`], [`slack`], [`webhook`] — one module per channel kind, each a
//!   sender that builds its payload and classifies failures;
//! - [`http`] — the HTTP client and response classification Slack and
//!   webhooks share;
//! - [`limit`] — per-channel rate limits (governor, clock injected);
//! - [`error`] — [`DeliveryError`] (transient or permanent) and
//!   [`ChannelError`] (bad configuration).
//!
//! [`Channels`] ties them together: built once from `[channels]` in the
//! config, it resolves names such as `email:data-team`, `slack:data-alerts`
//! and `webhook:ops` (the names rules list in `notify`). `email:default`
//! always exists; unless configured it writes `.eml` files to `./outbox`.
//!
//! Deliberately absent: retries, backoff and ordering. A sender makes one
//! attempt and says whether another could succeed; the worker owns the
//! schedule, because only it knows what is in the outbox.

pub mod context;
pub mod email;
pub mod error;
pub mod format;
pub mod gather;
pub mod http;
pub mod limit;
pub mod render;
pub mod slack;
pub mod webhook;
pub mod worker;

#[cfg(test)]
mod testkit;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};

use crate::config::{ChannelsConfig, EmailChannel};
pub use context::NoticeContext;
pub use email::EmailSender;
pub use error::{ChannelError, DeliveryError};
pub use limit::ChannelLimiter;
pub use render::{Rendered, Templates};
pub use slack::SlackSender;
pub use webhook::WebhookSender;

/// The channel every rule notifies when it names none.
pub const DEFAULT_CHANNEL: &str = "email:default";

/// The three kinds of channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChannelKind {
    Email,
    Slack,
    Webhook,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Email => "email",
            ChannelKind::Slack => "slack",
            ChannelKind::Webhook => "webhook",
        }
    }
}

/// Splits `kind:name` (`email:data-team`). Knows nothing of the config:
/// [`Channels::get`] says whether the channel exists.
pub fn parse_channel_name(full: &str) -> Result<(ChannelKind, &str), ChannelError> {
    let unknown = |hint: &str| ChannelError::Unknown {
        name: full.to_owned(),
        hint: hint.to_owned(),
    };
    let (kind, name) = full.split_once(':').ok_or_else(|| {
        unknown("channel names are KIND:NAME, e.g. email:default or slack:data-alerts")
    })?;
    let kind = match kind {
        "email" => ChannelKind::Email,
        "slack" => ChannelKind::Slack,
        "webhook" => ChannelKind::Webhook,
        _ => return Err(unknown("the kind must be email, slack or webhook")),
    };
    if name.is_empty() {
        return Err(unknown("the name after the colon is empty"));
    }
    Ok((kind, name))
}

/// One channel of any kind.
#[derive(Debug)]
pub enum Channel {
    Email(EmailSender),
    Slack(SlackSender),
    Webhook(WebhookSender),
}

impl Channel {
    pub fn kind(&self) -> ChannelKind {
        match self {
            Channel::Email(_) => ChannelKind::Email,
            Channel::Slack(_) => ChannelKind::Slack,
            Channel::Webhook(_) => ChannelKind::Webhook,
        }
    }

    /// One delivery attempt of one message carrying `ctxs` (one notice, or
    /// a group that goes out together). E-mail is rendered with
    /// `templates`; a notice that cannot be rendered even with the built-in
    /// templates is a permanent failure.
    pub async fn deliver(
        &self,
        templates: &Templates,
        ctxs: &[NoticeContext],
    ) -> Result<(), DeliveryError> {
        if ctxs.is_empty() {
            return Ok(());
        }
        match self {
            Channel::Email(sender) => {
                let rendered = templates
                    .render_group(ctxs)
                    .map_err(|e| DeliveryError::permanent(format!("rendering: {e}")))?;
                sender.deliver(&rendered, ctxs).await
            }
            Channel::Slack(sender) => sender.deliver(ctxs).await,
            Channel::Webhook(sender) => sender.deliver(ctxs).await,
        }
    }
}

/// A channel with its rate limit.
#[derive(Debug)]
pub struct ChannelEntry<C: Clock = DefaultClock> {
    /// The full name, `kind:name`.
    pub name: String,
    pub channel: Channel,
    pub limiter: ChannelLimiter<C>,
}

/// Every configured channel, by full name.
pub struct Channels<C: Clock = DefaultClock> {
    entries: BTreeMap<String, ChannelEntry<C>>,
    templates: Arc<Templates>,
}

impl<C: Clock> std::fmt::Debug for Channels<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channels")
            .field("names", &self.entries.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Channels<DefaultClock> {
    /// Builds every channel of `[channels]` on the real clock. SMTP
    /// connections are opened lazily, at the first send.
    pub fn from_config(
        cfg: &ChannelsConfig,
        templates: Arc<Templates>,
    ) -> Result<Channels<DefaultClock>, ChannelError> {
        Channels::from_config_with_clock(cfg, templates, DefaultClock::default())
    }
}

impl<C: Clock + Clone> Channels<C> {
    /// [`from_config`](Channels::from_config) with the rate limiters on
    /// `clock` (a `FakeRelativeClock` in tests).
    pub fn from_config_with_clock(
        cfg: &ChannelsConfig,
        templates: Arc<Templates>,
        clock: C,
    ) -> Result<Channels<C>, ChannelError> {
        let mut entries = BTreeMap::new();
        let mut add = |kind: ChannelKind,
                       name: &str,
                       channel: Channel,
                       rate: Option<&str>,
                       burst: Option<u32>|
         -> Result<(), ChannelError> {
            let full = format!("{}:{name}", kind.as_str());
            let limiter = ChannelLimiter::new(rate, burst, clock.clone()).map_err(|source| {
                ChannelError::Rate {
                    channel: full.clone(),
                    source,
                }
            })?;
            entries.insert(
                full.clone(),
                ChannelEntry {
                    name: full,
                    channel,
                    limiter,
                },
            );
            Ok(())
        };

        let default_email = EmailChannel::default();
        let mut emails: Vec<(&str, &EmailChannel)> =
            cfg.email.iter().map(|(n, c)| (n.as_str(), c)).collect();
        if !cfg.email.contains_key("default") {
            emails.push(("default", &default_email));
        }
        for (name, c) in emails {
            let sender = EmailSender::new(name, c)?;
            add(
                ChannelKind::Email,
                name,
                Channel::Email(sender),
                c.rate.as_deref(),
                c.burst,
            )?;
        }
        for (name, c) in &cfg.slack {
            let sender = SlackSender::new(name, c)?;
            add(
                ChannelKind::Slack,
                name,
                Channel::Slack(sender),
                c.rate.as_deref(),
                c.burst,
            )?;
        }
        for (name, c) in &cfg.webhook {
            let sender = WebhookSender::new(name, c)?;
            add(
                ChannelKind::Webhook,
                name,
                Channel::Webhook(sender),
                c.rate.as_deref(),
                c.burst,
            )?;
        }
        Ok(Channels { entries, templates })
    }

    /// The channel called `full` (`slack:data-alerts`).
    pub fn get(&self, full: &str) -> Option<&ChannelEntry<C>> {
        self.entries.get(full)
    }

    /// Like [`get`](Self::get), with an error that lists what exists.
    pub fn resolve(&self, full: &str) -> Result<&ChannelEntry<C>, ChannelError> {
        parse_channel_name(full)?;
        self.entries.get(full).ok_or_else(|| ChannelError::Unknown {
            name: full.to_owned(),
            hint: format!(
                "not configured; configured channels: {}",
                self.names().collect::<Vec<_>>().join(", ")
            ),
        })
    }

    /// Every channel name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    pub fn templates(&self) -> &Arc<Templates> {
        &self.templates
    }

    /// Takes one cell of the channel's rate limit: `Err(wait)` means the
    /// quota is spent and the notice should wait (it is not a failure).
    /// An unknown channel is never limited; [`deliver`](Self::deliver)
    /// reports it.
    pub fn check_rate(&self, full: &str) -> Result<(), Duration> {
        self.entries.get(full).map_or(Ok(()), |e| e.limiter.check())
    }

    /// One delivery attempt to the channel called `full`. Does not consult
    /// the rate limit (call [`check_rate`](Self::check_rate) first). An
    /// unknown channel is a permanent failure: the notice is recorded as
    /// failed rather than retried forever.
    pub async fn deliver(&self, full: &str, ctxs: &[NoticeContext]) -> Result<(), DeliveryError> {
        let entry = self
            .resolve(full)
            .map_err(|e| DeliveryError::permanent(e.to_string()))?;
        entry.channel.deliver(&self.templates, ctxs).await
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use governor::clock::FakeRelativeClock;
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::config::{Secret, SlackChannel, WebhookChannel};
    use crate::notify::testkit::{Mime, files_in};

    fn templates() -> Arc<Templates> {
        Arc::new(Templates::load(Path::new("/nonexistent/templates")).expect("built-ins"))
    }

    fn config(outbox: &Path, slack_url: &str) -> ChannelsConfig {
        let mut cfg = ChannelsConfig::default();
        cfg.email.insert(
            "data-team".to_owned(),
            EmailChannel {
                outbox_dir: outbox.to_path_buf(),
                to: vec!["data-team@example.com".to_owned()],
                rate: Some("2/min".to_owned()),
                ..EmailChannel::default()
            },
        );
        cfg.slack.insert(
            "data-alerts".to_owned(),
            SlackChannel {
                webhook_url: Secret::new(slack_url),
                rate: None,
                burst: None,
                timeout: None,
            },
        );
        cfg.webhook.insert(
            "ops".to_owned(),
            WebhookChannel {
                url: Secret::new("https://ops.example.com/hooks/syncwarden"),
                secret: Some(Secret::new("k")),
                rate: Some("5/s".to_owned()),
                burst: Some(1),
                timeout: None,
            },
        );
        cfg
    }

    #[tokio::test]
    async fn names_resolve_and_email_default_always_exists() {
        let dir = tempfile::tempdir().expect("tempdir");
        let channels = Channels::from_config(
            &config(dir.path(), "https://hooks.slack.com/services/T/B/X"),
            templates(),
        )
        .expect("builds");
        assert_eq!(
            channels.names().collect::<Vec<_>>(),
            [
                "email:data-team",
                "email:default",
                "slack:data-alerts",
                "webhook:ops"
            ]
        );
        assert_eq!(
            channels
                .resolve("slack:data-alerts")
                .expect("exists")
                .channel
                .kind(),
            ChannelKind::Slack
        );
        match &channels.resolve(DEFAULT_CHANNEL).expect("exists").channel {
            Channel::Email(sender) => {
                assert_eq!(sender.outbox_dir(), Some(Path::new("outbox")));
            }
            other => panic!("{other:?}"),
        }
        let err = channels.resolve("slack:nope").expect_err("unknown");
        assert!(
            err.to_string()
                .contains("configured channels: email:data-team"),
            "{err}"
        );
        let err = channels.resolve("pager:x").expect_err("bad kind");
        assert!(err.to_string().contains("email, slack or webhook"), "{err}");
        let err = channels.resolve("default").expect_err("no kind");
        assert!(err.to_string().contains("KIND:NAME"), "{err}");
    }

    #[tokio::test]
    async fn a_bad_rate_names_the_channel() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = config(dir.path(), "https://hooks.slack.com/services/T/B/X");
        if let Some(ops) = cfg.webhook.get_mut("ops") {
            ops.rate = Some("lots".to_owned());
        }
        let err = Channels::from_config(&cfg, templates()).expect_err("bad rate");
        let msg = err.to_string();
        assert!(msg.contains("webhook:ops"), "{msg}");
        assert!(msg.contains("COUNT/PERIOD"), "{msg}");
    }

    #[tokio::test]
    async fn rate_limits_are_per_channel_on_the_injected_clock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = FakeRelativeClock::default();
        let channels = Channels::from_config_with_clock(
            &config(dir.path(), "https://hooks.slack.com/services/T/B/X"),
            templates(),
            clock.clone(),
        )
        .expect("builds");
        // email:data-team: 2/min.
        assert_eq!(channels.check_rate("email:data-team"), Ok(()));
        assert_eq!(channels.check_rate("email:data-team"), Ok(()));
        assert_eq!(
            channels.check_rate("email:data-team"),
            Err(Duration::from_secs(30))
        );
        // Other channels are unaffected; unlimited ones never wait.
        for _ in 0..100 {
            assert_eq!(channels.check_rate("slack:data-alerts"), Ok(()));
        }
        assert_eq!(channels.check_rate("webhook:ops"), Ok(()));
        assert_eq!(
            channels.check_rate("webhook:ops"),
            Err(Duration::from_millis(200))
        );
        clock.advance(Duration::from_secs(30));
        assert_eq!(channels.check_rate("email:data-team"), Ok(()));
    }

    #[tokio::test]
    async fn a_group_delivered_by_name_reaches_email_and_slack() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let slack = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
            .expect(1)
            .mount(&slack)
            .await;
        let dir = tempfile::tempdir().expect("tempdir");
        let channels = Channels::from_config(
            &config(dir.path(), &format!("{}/services/T/B/X", slack.uri())),
            templates(),
        )
        .expect("builds");
        let group = [
            NoticeContext::example_outage(),
            NoticeContext::example_minimal(),
        ];

        channels
            .deliver("email:data-team", &group)
            .await
            .expect("written");
        let files = files_in(dir.path(), "eml");
        assert_eq!(files.len(), 1);
        let mime = Mime::parse(&std::fs::read_to_string(&files[0]).expect("read"));
        assert!(
            mime.decoded("Subject")
                .starts_with("[syncwarden] 2 notices")
        );
        assert_eq!(
            mime.one("Message-ID"),
            email::message_id(&[group[0].key.clone(), group[1].key.clone()])
        );

        channels
            .deliver("slack:data-alerts", &group)
            .await
            .expect("posted");
        let err = channels
            .deliver("slack:gone", &group)
            .await
            .expect_err("unknown");
        assert!(matches!(err, DeliveryError::Permanent { .. }), "{err:?}");
    }
}
