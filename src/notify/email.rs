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
//!
//! SMTP goes through [`SmtpClient`]: lettre speaks the protocol
//! ([`AsyncSmtpConnection`]), but we open the TCP stream ourselves so that
//! it has `TCP_NODELAY` (lettre 0.11.23 never sets it, and its second small
//! write — the `\r\n.\r\n` after the body — then waits for the server's
//! delayed ACK, ~40 ms per message), and we keep one connection per channel
//! open between messages.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use lettre::Message;
use lettre::address::Envelope;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use reqwest::Url;
use rustls::pki_types::ServerName;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::config::EmailChannel;
use crate::notify::context::NoticeContext;
use crate::notify::error::{ChannelError, DeliveryError};
use crate::notify::format;
use crate::notify::render::Rendered;

/// How long one SMTP command may take before the attempt counts as failed
/// (and is retried): long enough for a slow relay, short enough that a hung
/// one does not stall the channel.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// A kept connection idle for longer than this is closed (QUIT) and a new
/// one opened instead of probing it: servers drop idle clients after a few
/// minutes, and a connection silently dropped by a firewall would make the
/// probe wait for the whole timeout. Same as lettre's pool default.
pub const SMTP_MAX_IDLE: Duration = Duration::from_secs(60);

/// Longest wait for the `NOOP` that checks a kept connection before reuse.
/// A live server answers at once; on no answer we simply reconnect.
const SMTP_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

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
    // Boxed: the client (TLS set-up, kept connection) is over 1 KiB.
    Smtp(Box<SmtpClient>),
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
                Transport::Smtp(Box::new(
                    smtp_client(url.expose(), cfg.timeout.unwrap_or(SMTP_TIMEOUT))
                        .map_err(|m| ChannelError::config(&channel, format!("smtp_url: {m}")))?,
                ))
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
            Transport::Smtp(smtp) => smtp.send(msg.envelope(), &msg.formatted()).await,
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

/// How the connection to the SMTP server is secured.
enum Security {
    None,
    /// STARTTLS when the server offers it.
    Opportunistic(TlsParameters),
    /// STARTTLS or fail.
    Required(TlsParameters),
    /// Implicit TLS from the first byte (`smtps://`), done here with
    /// tokio-rustls (the version lettre uses, the same ring provider and
    /// webpki roots as lettre's `TlsParameters`) so the TCP stream under it
    /// is ours and has `TCP_NODELAY` too.
    Wrapper {
        connector: tokio_rustls::TlsConnector,
        server_name: ServerName<'static>,
    },
}

/// A connection kept open between messages.
struct Kept {
    conn: AsyncSmtpConnection,
    idle_since: Instant,
}

/// An SMTP client for one channel: lettre's [`AsyncSmtpConnection`] over a
/// TCP stream opened here with `TCP_NODELAY`, with one connection kept open
/// for the next message.
///
/// Each [`send`](SmtpClient::send) is one delivery attempt: it reuses the
/// kept connection when that answers a `NOOP` (and has been idle less than
/// [`SMTP_MAX_IDLE`]), else connects afresh; when a send over a reused
/// connection fails because the connection is gone (a network error, an
/// incomplete reply, `421`), it reconnects once and sends again. Connecting
/// (TCP, greeting, EHLO, STARTTLS, AUTH) and sending each have the
/// configured timeout. A connection that failed in any way is dropped.
/// Sends on one channel are serialised by the lock around the connection;
/// the outbox worker sends one message at a time per channel anyway.
pub struct SmtpClient {
    host: String,
    port: u16,
    security: Security,
    credentials: Option<Credentials>,
    hello_name: ClientId,
    timeout: Duration,
    kept: tokio::sync::Mutex<Option<Kept>>,
}

/// What went wrong in one send over one connection.
enum SendFailure {
    Smtp(lettre::transport::smtp::Error),
    TimedOut,
}

impl SmtpClient {
    /// Sends one message; the error is classified as [`classify_smtp`] says,
    /// and connection failures and timeouts are transient.
    pub async fn send(&self, envelope: &Envelope, bytes: &[u8]) -> Result<(), DeliveryError> {
        let mut kept = self.kept.lock().await;
        // Taken out for the duration: a send that fails or is cancelled
        // leaves no half-used connection behind.
        let reused = match kept.take() {
            Some(k) => self.check(k).await,
            None => None,
        };
        let was_reused = reused.is_some();
        let mut conn = match reused {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        let mut result = self.send_on(&mut conn, envelope, bytes).await;
        if was_reused
            && let Err(SendFailure::Smtp(e)) = &result
            && connection_lost(e)
        {
            tracing::debug!(
                host = %self.host,
                "SMTP connection lost ({}); reconnecting once",
                format::one_line(&e.to_string(), 200)
            );
            conn = self.connect().await?;
            result = self.send_on(&mut conn, envelope, bytes).await;
        }
        match result {
            Ok(()) => {
                *kept = Some(Kept {
                    conn,
                    idle_since: Instant::now(),
                });
                Ok(())
            }
            Err(SendFailure::Smtp(e)) => Err(classify_smtp(&e)),
            Err(SendFailure::TimedOut) => Err(DeliveryError::transient(format!(
                "SMTP: no reply within {} while sending",
                humantime::format_duration(self.timeout)
            ))),
        }
    }

    /// The kept connection if it is still worth using, else `None` (a stale
    /// one is closed politely in the background; a dead one just dropped).
    async fn check(&self, kept: Kept) -> Option<AsyncSmtpConnection> {
        let mut conn = kept.conn;
        if kept.idle_since.elapsed() >= SMTP_MAX_IDLE {
            tokio::spawn(async move {
                let _ = tokio::time::timeout(SMTP_PROBE_TIMEOUT, conn.quit()).await;
            });
            return None;
        }
        let probe = SMTP_PROBE_TIMEOUT.min(self.timeout);
        match tokio::time::timeout(probe, conn.test_connected()).await {
            Ok(true) => Some(conn),
            _ => {
                tracing::debug!(host = %self.host, "kept SMTP connection is gone; reconnecting");
                None
            }
        }
    }

    async fn send_on(
        &self,
        conn: &mut AsyncSmtpConnection,
        envelope: &Envelope,
        bytes: &[u8],
    ) -> Result<(), SendFailure> {
        match tokio::time::timeout(self.timeout, conn.send(envelope, bytes)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(SendFailure::Smtp(e)),
            Err(_) => Err(SendFailure::TimedOut),
        }
    }

    /// A new connection, greeted, secured and authenticated, within the
    /// timeout.
    async fn connect(&self) -> Result<AsyncSmtpConnection, DeliveryError> {
        match tokio::time::timeout(self.timeout, self.connect_inner()).await {
            Ok(result) => result,
            Err(_) => Err(DeliveryError::transient(format!(
                "SMTP: Connection error: no connection within {}",
                humantime::format_duration(self.timeout)
            ))),
        }
    }

    async fn connect_inner(&self) -> Result<AsyncSmtpConnection, DeliveryError> {
        let connection_error =
            |e: io::Error| DeliveryError::transient(format!("SMTP: Connection error: {e}"));
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(connection_error)?;
        tcp.set_nodelay(true).map_err(connection_error)?;
        let stream: Box<dyn AsyncTokioStream> = match &self.security {
            Security::Wrapper {
                connector,
                server_name,
            } => {
                let tls = connector
                    .connect(server_name.clone(), tcp)
                    .await
                    .map_err(|e| {
                        DeliveryError::transient(format!(
                            "SMTP: Connection error: TLS: {}",
                            format::one_line(&e.to_string(), 500)
                        ))
                    })?;
                Box::new(ImplicitTls(tls))
            }
            _ => Box::new(tcp),
        };
        let smtp = |e: lettre::transport::smtp::Error| classify_smtp(&e);
        let mut conn = AsyncSmtpConnection::connect_with_transport(stream, &self.hello_name)
            .await
            .map_err(smtp)?;
        match &self.security {
            Security::Opportunistic(params) if conn.can_starttls() => conn
                .starttls(params.clone(), &self.hello_name)
                .await
                .map_err(smtp)?,
            Security::Required(params) => conn
                .starttls(params.clone(), &self.hello_name)
                .await
                .map_err(smtp)?,
            _ => {}
        }
        if let Some(credentials) = &self.credentials {
            conn.auth(DEFAULT_MECHANISMS, credentials)
                .await
                .map_err(smtp)?;
        }
        tracing::debug!(host = %self.host, port = self.port, "SMTP connection opened");
        Ok(conn)
    }
}

/// Whether a failed send says the connection is gone (worth one retry on a
/// new connection) rather than anything about the message: a network error,
/// a reply cut short, or `421` (the server is closing the channel).
fn connection_lost(err: &lettre::transport::smtp::Error) -> bool {
    match err.status() {
        Some(code) => u16::from(code) == 421,
        None => !err.is_client(),
    }
}

/// A tokio-rustls client stream, as lettre's stream trait.
#[derive(Debug)]
struct ImplicitTls(tokio_rustls::client::TlsStream<TcpStream>);

impl AsyncRead for ImplicitTls {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for ImplicitTls {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for ImplicitTls {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

/// The rustls set-up lettre's `TlsParameters::new` makes: the installed
/// default crypto provider or ring, TLS 1.2 and 1.3, webpki roots.
fn implicit_tls_connector() -> Result<tokio_rustls::TlsConnector, rustls::Error> {
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// The SMTP client for `smtp_url`:
/// - `smtp://host[:port]` — STARTTLS when the server offers it (port 25);
/// - `?tls=none` — plain text only (a trusted local relay, test servers);
/// - `?tls=opportunistic` — the default for `smtp://`, spelled out;
/// - `?tls=required` — STARTTLS or fail (port 587);
/// - `?tls=wrapper` or `smtps://` — implicit TLS (port 465).
///
/// `user:pass@` turns on authentication (percent-encoded). Error messages
/// never repeat the URL, which may hold the password. Nothing connects
/// here: the first message does.
pub fn smtp_client(url: &str, timeout: Duration) -> Result<SmtpClient, String> {
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
    let (security, default_port) = match mode {
        "wrapper" => {
            let connector = implicit_tls_connector().map_err(|e| format!("TLS set-up: {e}"))?;
            let server_name = ServerName::try_from(host.clone())
                .map_err(|_| "TLS set-up: the host is not a valid DNS name or IP address")?;
            (
                Security::Wrapper {
                    connector,
                    server_name,
                },
                465,
            )
        }
        "required" => (Security::Required(params()?), 587),
        "opportunistic" => (Security::Opportunistic(params()?), 25),
        _ => (Security::None, 25),
    };
    let credentials = if url.username().is_empty() {
        None
    } else {
        let user = percent_decode(url.username()).ok_or("user name is not valid UTF-8")?;
        let pass = percent_decode(url.password().unwrap_or_default())
            .ok_or("password is not valid UTF-8")?;
        Some(Credentials::new(user, pass))
    };
    Ok(SmtpClient {
        port: url.port().unwrap_or(default_port),
        host,
        security,
        credentials,
        hello_name: ClientId::default(),
        timeout,
        kept: tokio::sync::Mutex::new(None),
    })
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
