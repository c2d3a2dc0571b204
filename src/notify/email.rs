//! The e-mail channel: multipart text + HTML notices over SMTP, or `.eml`
//! files in an outbox folder when no SMTP server is configured.
//!
//! The file outbox is what lets `serve` run on a bare machine (SPEC §4): the
//! notices exist, can be read and can be re-sent by hand. Files are written
//! atomically (temp file, then rename) and named after the Message-ID, so a
//! retried notice overwrites its own file instead of leaving a twin.
//!
//! The `Message-ID` is derived from the notice keys (SPEC §3.6): a receiver
//! can drop the rare duplicate left by a crash between "SMTP accepted" and
//! "recorded as sent". Headers are built with lettre's encoders and the
//! subject is one line already (see `render`), so no notice text can add a
//! header.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use reqwest::Url;
use sha2::{Digest, Sha256};

use crate::config::EmailChannel;
use crate::notify::context::NoticeContext;
use crate::notify::error::{ChannelError, DeliveryError};
use crate::notify::format;
use crate::notify::render::Rendered;

/// How long one SMTP command may take before the attempt counts as failed
/// (and is retried): long enough for a slow relay, short enough that a hung
/// one does not stall the channel.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// The header that carries the first notice key of a message.
pub const NOTICE_KEY_HEADER: &str = "X-Syncwarden-Notice-Key";

/// Who receives one message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Recipients {
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
}

impl Recipients {
    pub fn is_empty(&self) -> bool {
        self.to.is_empty() && self.cc.is_empty()
    }
}

enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Files(PathBuf),
}

/// One configured e-mail channel (`email:<name>`).
pub struct EmailSender {
    name: String,
    from: Mailbox,
    to: Vec<Mailbox>,
    cc: Vec<Mailbox>,
    include_owner: bool,
    transport: Transport,
}

impl std::fmt::Debug for EmailSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the SMTP URL: it may hold a password.
        let transport = match &self.transport {
            Transport::Smtp(_) => "smtp".to_owned(),
            Transport::Files(dir) => format!("files in {}", dir.display()),
        };
        f.debug_struct("EmailSender")
            .field("name", &self.name)
            .field("from", &self.from.to_string())
            .field("transport", &transport)
            .finish()
    }
}

impl EmailSender {
    /// Builds the channel `email:<name>`: SMTP when `smtp_url` is set, else
    /// `.eml` files in `outbox_dir`. Addresses are checked here, so a typo
    /// stops start-up instead of failing the first notice.
    pub fn new(name: &str, cfg: &EmailChannel) -> Result<EmailSender, ChannelError> {
        let channel = format!("email:{name}");
        let parse = |field: &str, addr: &str| {
            addr.parse::<Mailbox>().map_err(|e| {
                ChannelError::config(
                    &channel,
                    format!("{field}: {addr:?} is not an address: {e}"),
                )
            })
        };
        let from = parse("from", &cfg.from)?;
        let to = cfg
            .to
            .iter()
            .map(|a| parse("to", a))
            .collect::<Result<Vec<_>, _>>()?;
        let cc = cfg
            .cc
            .iter()
            .map(|a| parse("cc", a))
            .collect::<Result<Vec<_>, _>>()?;
        let transport = match &cfg.smtp_url {
            Some(url) => {
                if to.is_empty() && cc.is_empty() {
                    return Err(ChannelError::config(
                        &channel,
                        "smtp_url is set but `to` is empty: add at least one recipient",
                    ));
                }
                Transport::Smtp(
                    smtp_transport(url.expose(), SMTP_TIMEOUT)
                        .map_err(|m| ChannelError::config(&channel, format!("smtp_url: {m}")))?,
                )
            }
            None => Transport::Files(cfg.outbox_dir.clone()),
        };
        Ok(EmailSender {
            name: name.to_owned(),
            from,
            to,
            cc,
            include_owner: cfg.include_owner,
            transport,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The outbox folder, for a channel that writes files.
    pub fn outbox_dir(&self) -> Option<&Path> {
        match &self.transport {
            Transport::Files(dir) => Some(dir),
            Transport::Smtp(_) => None,
        }
    }

    /// The configured `to` and `cc`, plus each notice's `owner` when
    /// `include_owner` is on and the owner is an address (owners that are
    /// team names are skipped). Duplicates are removed. With nobody left, a
    /// file-outbox channel addresses the file to `from`, so it is still a
    /// valid message.
    pub fn recipients(&self, ctxs: &[NoticeContext]) -> Recipients {
        let mut r = Recipients {
            to: self.to.clone(),
            cc: self.cc.clone(),
        };
        if self.include_owner {
            for owner in ctxs.iter().filter_map(|c| c.owner.as_deref()) {
                match owner.parse::<Mailbox>() {
                    Ok(m) => r.to.push(m),
                    Err(_) => tracing::debug!(
                        channel = %self.name,
                        "owner {owner:?} is not an e-mail address; not mailed"
                    ),
                }
            }
        }
        dedup_mailboxes(&mut r.to, &[]);
        let to = r.to.clone();
        dedup_mailboxes(&mut r.cc, &to);
        if r.is_empty() {
            r.to.push(self.from.clone());
        }
        r
    }

    /// The message for one rendered notice (or group): multipart/alternative
    /// text + HTML, with a `Message-ID` derived from `keys`, the first key in
    /// `X-Syncwarden-Notice-Key`, and a `References` header naming each
    /// incident so mail clients thread a firing with its resolution.
    pub fn build_message(
        &self,
        rendered: &Rendered,
        keys: &[String],
        recipients: &Recipients,
    ) -> Result<Message, ChannelError> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(format::one_line(&rendered.subject, 998))
            .message_id(Some(message_id(keys)))
            .user_agent(concat!("syncwarden/", env!("CARGO_PKG_VERSION")).to_owned());
        for m in &recipients.to {
            builder = builder.to(m.clone());
        }
        for m in &recipients.cc {
            builder = builder.cc(m.clone());
        }
        if let Some(key) = keys.first() {
            let name = HeaderName::new_from_ascii(NOTICE_KEY_HEADER.to_owned())
                .map_err(|e| ChannelError::Message(e.to_string()))?;
            builder = builder.raw_header(HeaderValue::new(name, format::one_line(key, 200)));
        }
        let references = incident_references(keys);
        if !references.is_empty() {
            builder = builder.references(references);
        }
        builder
            .multipart(MultiPart::alternative_plain_html(
                rendered.text.clone(),
                rendered.html.clone(),
            ))
            .map_err(|e| ChannelError::Message(e.to_string()))
    }

    /// Sends a built message: over SMTP, or into the outbox folder.
    pub async fn send(&self, msg: Message) -> Result<(), DeliveryError> {
        match &self.transport {
            Transport::Smtp(smtp) => smtp
                .send(msg)
                .await
                .map(|_| ())
                .map_err(|e| classify_smtp(&e)),
            Transport::Files(dir) => write_eml(dir, &msg).await.map(|_| ()),
        }
    }

    /// Recipients, message and send in one step, as the outbox worker uses
    /// it. A message that cannot be built is a permanent failure.
    pub async fn deliver(
        &self,
        rendered: &Rendered,
        ctxs: &[NoticeContext],
    ) -> Result<(), DeliveryError> {
        let keys: Vec<String> = ctxs.iter().map(|c| c.key.clone()).collect();
        let recipients = self.recipients(ctxs);
        let msg = self
            .build_message(rendered, &keys, &recipients)
            .map_err(|e| DeliveryError::permanent(e.to_string()))?;
        self.send(msg).await
    }
}

/// `<{first 32 hex digits of sha256(sorted keys joined by \n)}@syncwarden>`:
/// the same notices always give the same id, whatever their order.
pub fn message_id(keys: &[String]) -> String {
    let mut sorted: Vec<&str> = keys.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    let digest = Sha256::digest(sorted.join("\n").as_bytes());
    let hex = hex::encode(digest);
    format!("<{}@syncwarden>", &hex[..32])
}

/// `<{incident}.incident@syncwarden> …` for the distinct incidents of the
/// keys (`incident:kind:seq`). No message carries these ids; they only give
/// every notice of one incident a common ancestor to thread under.
fn incident_references(keys: &[String]) -> String {
    let mut incidents: Vec<String> = Vec::new();
    for key in keys {
        let incident: String = key
            .split(':')
            .next()
            .unwrap_or_default()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .collect();
        if !incident.is_empty() && !incidents.contains(&incident) {
            incidents.push(incident);
        }
    }
    incidents
        .iter()
        .map(|i| format!("<{i}.incident@syncwarden>"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn dedup_mailboxes(list: &mut Vec<Mailbox>, already: &[Mailbox]) {
    let mut seen: Vec<String> = already
        .iter()
        .map(|m| m.email.to_string().to_ascii_lowercase())
        .collect();
    list.retain(|m| {
        let addr = m.email.to_string().to_ascii_lowercase();
        if seen.contains(&addr) {
            false
        } else {
            seen.push(addr);
            true
        }
    });
}

/// The SMTP transport for `smtp_url`:
/// - `smtp://host[:port]` — STARTTLS when the server offers it (port 25);
/// - `?tls=none` — plain text only (a trusted local relay, test servers);
/// - `?tls=opportunistic` — the default for `smtp://`, spelled out;
/// - `?tls=required` — STARTTLS or fail (port 587);
/// - `?tls=wrapper` or `smtps://` — implicit TLS (port 465).
///
/// `user:pass@` turns on authentication (percent-encoded). Error messages
/// never repeat the URL, which may hold the password.
pub fn smtp_transport(
    url: &str,
    timeout: Duration,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let url = Url::parse(url).map_err(|e| format!("not a URL ({e})"))?;
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or("no host")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let tls_param = url
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    let mode = match (url.scheme(), tls_param.as_deref()) {
        ("smtps", None | Some("wrapper")) | ("smtp", Some("wrapper")) => "wrapper",
        ("smtp", None | Some("opportunistic")) => "opportunistic",
        ("smtp", Some("required")) => "required",
        ("smtp", Some("none")) => "none",
        ("smtp" | "smtps", Some(other)) => {
            return Err(format!(
                "tls={other:?} is not one of none, opportunistic, required, wrapper"
            ));
        }
        (scheme, _) => return Err(format!("scheme {scheme:?} is not smtp or smtps")),
    };
    let params = || TlsParameters::new(host.clone()).map_err(|e| format!("TLS set-up: {e}"));
    let (tls, default_port) = match mode {
        "wrapper" => (Tls::Wrapper(params()?), 465),
        "required" => (Tls::Required(params()?), 587),
        "opportunistic" => (Tls::Opportunistic(params()?), 25),
        _ => (Tls::None, 25),
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str())
        .port(url.port().unwrap_or(default_port))
        .tls(tls)
        .timeout(Some(timeout));
    if !url.username().is_empty() {
        let user = percent_decode(url.username()).ok_or("user name is not valid UTF-8")?;
        let pass = percent_decode(url.password().unwrap_or_default())
            .ok_or("password is not valid UTF-8")?;
        builder = builder.credentials(Credentials::new(user, pass));
    }
    Ok(builder.build())
}

/// Percent-decoding for the user and password of a URL.
fn percent_decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// SMTP 5xx replies and client-side refusals (no STARTTLS where required,
/// no usable AUTH mechanism) are permanent: the same message would be
/// refused again. Everything else — 4xx replies, refused or reset
/// connections, DNS failures, timeouts, TLS errors — is transient.
pub fn classify_smtp(err: &lettre::transport::smtp::Error) -> DeliveryError {
    let reason = format!("SMTP: {}", format::one_line(&err.to_string(), 500));
    if err.is_permanent() || err.is_client() {
        DeliveryError::permanent(reason)
    } else {
        DeliveryError::transient(reason)
    }
}

/// Writes `msg` to `dir/<message-id>.eml` through a temp file and a rename,
/// so a reader never sees half a file. Any I/O error is transient: the
/// notice waits in the outbox until the disk is writable again.
pub async fn write_eml(dir: &Path, msg: &Message) -> Result<PathBuf, DeliveryError> {
    static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);
    let io = |what: &str, path: &Path, e: std::io::Error| {
        DeliveryError::transient(format!("{what} {}: {e}", path.display()))
    };
    let bytes = msg.formatted();
    // `<3f2a…@syncwarden>` → `3f2a…`, reduced to characters that are safe
    // in a file name whatever the header holds.
    let stem = msg
        .headers()
        .get_raw("Message-ID")
        .and_then(|id| id.trim().trim_start_matches('<').split('@').next())
        .map(|local| {
            local
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
                .take(64)
                .collect::<String>()
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| hex::encode(&Sha256::digest(&bytes)[..16]));
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| io("cannot create outbox", dir, e))?;
    let path = dir.join(format!("{stem}.eml"));
    let tmp = dir.join(format!(
        ".{stem}.{}.{}.tmp",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let write = async {
        use tokio::io::AsyncWriteExt;
        let mut file = tokio::fs::File::create(&tmp).await?;
        file.write_all(&bytes).await?;
        file.sync_all().await?;
        tokio::fs::rename(&tmp, &path).await
    };
    if let Err(e) = write.await {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(io("cannot write", &path, e));
    }
    Ok(path)
}

#[cfg(test)]
mod tests;
