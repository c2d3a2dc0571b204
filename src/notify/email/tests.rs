//! E-mail channel tests: message building, the `.eml` outbox, delivery to
//! a real SMTP server (aiosmtpd) including its refusals, and the kept SMTP
//! connection (reuse, reconnects, timeouts) against a scriptable in-process
//! server.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::*;
use crate::config::Secret;
use crate::notify::context::HOSTILE;
use crate::notify::render::Templates;
use crate::notify::testkit::{Mime, SmtpServer, files_in, free_port};

fn templates() -> Templates {
    Templates::load(Path::new("/nonexistent/syncwarden-templates")).expect("built-ins")
}

fn channel(smtp_url: Option<String>, outbox: &Path) -> EmailChannel {
    EmailChannel {
        smtp_url: smtp_url.map(Secret::new),
        outbox_dir: outbox.to_path_buf(),
        from: "syncwarden@example.com".to_owned(),
        to: vec!["data-team@example.com".to_owned()],
        cc: vec!["oncall@example.com".to_owned()],
        include_owner: true,
        rate: None,
        burst: None,
        timeout: None,
    }
}

fn keys(ctxs: &[NoticeContext]) -> Vec<String> {
    ctxs.iter().map(|c| c.key.clone()).collect()
}

fn outage_message(sender: &EmailSender) -> (Rendered, Message) {
    let ctx = NoticeContext::example_outage();
    let rendered = templates().render(&ctx).expect("renders");
    let ctxs = [ctx];
    let msg = sender
        .build_message(&rendered, &keys(&ctxs), &sender.recipients(&ctxs))
        .expect("builds");
    (rendered, msg)
}

fn raw(msg: &Message) -> String {
    String::from_utf8(msg.formatted()).expect("ascii message")
}

#[test]
fn message_ids_depend_only_on_the_set_of_keys() {
    let a = message_id(&["k1:firing:0".to_owned(), "k2:firing:0".to_owned()]);
    let b = message_id(&["k2:firing:0".to_owned(), "k1:firing:0".to_owned()]);
    assert_eq!(a, b);
    assert_ne!(a, message_id(&["k1:firing:0".to_owned()]));
    // sha256("k1:firing:0\nk2:firing:0"), first 32 hex digits.
    let digest = hex::encode(Sha256::digest(b"k1:firing:0\nk2:firing:0"));
    assert_eq!(a, format!("<{}@syncwarden>", &digest[..32]));
}

#[test]
fn a_built_message_is_multipart_text_and_html_with_the_notice_headers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sender = EmailSender::new("data-team", &channel(None, dir.path())).expect("builds");
    let (rendered, msg) = outage_message(&sender);
    let mime = Mime::parse(&raw(&msg));

    assert_eq!(mime.decoded("Subject"), rendered.subject);
    assert_eq!(mime.one("From"), "syncwarden@example.com");
    // The owner joins the configured recipients.
    assert_eq!(mime.one("To"), "data-team@example.com, growth@example.com");
    assert_eq!(mime.one("Cc"), "oncall@example.com");
    assert_eq!(
        mime.one("Message-ID"),
        message_id(&["9f1c2a7b3d4e5f60:firing:0".to_owned()])
    );
    assert_eq!(mime.one(NOTICE_KEY_HEADER), "9f1c2a7b3d4e5f60:firing:0");
    assert_eq!(
        mime.one("References"),
        "<9f1c2a7b3d4e5f60.incident@syncwarden>"
    );
    assert!(
        mime.one("Content-Type")
            .starts_with("multipart/alternative")
    );
    assert_eq!(mime.part("text/plain"), rendered.text.replace("\r\n", "\n"));
    assert_eq!(mime.part("text/html"), rendered.html.replace("\r\n", "\n"));
}

#[test]
fn hostile_text_cannot_add_headers_and_is_escaped_in_the_html_part() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sender = EmailSender::new("x", &channel(None, dir.path())).expect("builds");
    let ctx = NoticeContext {
        key: "abc:firing:0\r\nBcc: evil@x".to_owned(),
        owner: Some("owner@example.com\r\nBcc: evil@x".to_owned()),
        ..NoticeContext::example_hostile()
    };
    let rendered = templates().render(&ctx).expect("renders");
    let ctxs = [ctx];
    let msg = sender
        .build_message(&rendered, &keys(&ctxs), &sender.recipients(&ctxs))
        .expect("builds");
    let text = raw(&msg);
    let mime = Mime::parse(&text);

    // No header but ours; in particular no Bcc, one Subject, one To.
    assert!(mime.all("Bcc").is_empty(), "{:?}", mime.headers);
    assert_eq!(mime.all("Subject").len(), 1);
    let head = text.split("\r\n\r\n").next().expect("header block");
    assert!(!head.lines().any(|l| l.starts_with("Bcc:")), "{head}");
    let names: Vec<&str> = mime.headers.iter().map(|(n, _)| n.as_str()).collect();
    for name in &names {
        assert!(
            [
                "From",
                "To",
                "Cc",
                "Subject",
                "Message-ID",
                "User-Agent",
                NOTICE_KEY_HEADER,
                "References",
                "Date",
                "MIME-Version",
                "Content-Type",
            ]
            .iter()
            .any(|n| n.eq_ignore_ascii_case(name)),
            "unexpected header {name}"
        );
    }
    // The subject says what the sync id said, on one line.
    let subject = mime.decoded("Subject");
    assert!(subject.contains("census:1<script>"), "{subject}");
    assert!(!subject.contains(['\r', '\n']));
    // The owner line was not an address: it is not mailed.
    assert!(!mime.one("To").contains("owner@"));
    // The notice key header is one line too.
    assert!(!mime.one(NOTICE_KEY_HEADER).contains('\n'));

    let html = mime.part("text/html");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"));
    assert!(!html.contains("<script>"));
    assert!(!html.contains("<b>bold"));
    let plain = mime.part("text/plain");
    assert!(plain.contains("<script>alert(1)</script> <b>bold</b>"));
    assert!(HOSTILE.contains("Bcc: evil@x"));
}

#[test]
fn recipients_merge_owners_drop_duplicates_and_fall_back_to_from() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = channel(None, dir.path());
    cfg.to = vec!["a@example.com".to_owned(), "A@example.com".to_owned()];
    cfg.cc = vec!["a@example.com".to_owned(), "c@example.com".to_owned()];
    let sender = EmailSender::new("x", &cfg).expect("builds");
    let mut one = NoticeContext::example_outage();
    one.owner = Some("Growth <growth@example.com>".to_owned());
    let mut two = NoticeContext::example_minimal();
    two.owner = Some("growth team".to_owned());
    let r = sender.recipients(&[one.clone(), two]);
    let emails = |l: &[Mailbox]| l.iter().map(|m| m.email.to_string()).collect::<Vec<_>>();
    assert_eq!(emails(&r.to), ["a@example.com", "growth@example.com"]);
    assert_eq!(emails(&r.cc), ["c@example.com"]);

    cfg.to.clear();
    cfg.cc.clear();
    cfg.include_owner = false;
    let sender = EmailSender::new("x", &cfg).expect("builds");
    let r = sender.recipients(&[one]);
    assert_eq!(emails(&r.to), ["syncwarden@example.com"]);
}

#[tokio::test]
async fn bad_addresses_and_smtp_urls_are_refused_at_start_up_without_leaking_passwords() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = channel(None, dir.path());
    cfg.to = vec!["not an address".to_owned()];
    let err = EmailSender::new("team", &cfg).expect_err("bad to");
    assert!(err.to_string().contains("email:team"), "{err}");
    assert!(err.to_string().contains("not an address"), "{err}");

    for (url, want) in [
        ("http://u:hunter2@mail.example.com", "scheme"),
        ("smtp://u:hunter2@mail.example.com?tls=maybe", "tls="),
        ("smtp://u:hunter2@", "host"),
        ("mail.example.com", "URL"),
    ] {
        let err =
            EmailSender::new("team", &channel(Some(url.to_owned()), dir.path())).expect_err(url);
        let msg = err.to_string();
        assert!(msg.contains(want), "{url}: {msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
    }

    let mut cfg = channel(Some("smtp://mail.example.com".to_owned()), dir.path());
    cfg.to.clear();
    cfg.cc.clear();
    let err = EmailSender::new("team", &cfg).expect_err("no recipients");
    assert!(err.to_string().contains("`to` is empty"), "{err}");
}

#[test]
fn every_tls_mode_builds_a_client() {
    for (url, port, mode, user) in [
        ("smtp://mail.example.com", 25, "opportunistic", None),
        ("smtp://mail.example.com:2525?tls=none", 2525, "none", None),
        (
            "smtp://mail.example.com?tls=opportunistic",
            25,
            "opportunistic",
            None,
        ),
        (
            "smtp://user:p%40ss@mail.example.com:587?tls=required",
            587,
            "required",
            Some("user"),
        ),
        ("smtp://mail.example.com?tls=wrapper", 465, "wrapper", None),
        (
            "smtps://user:pass@mail.example.com",
            465,
            "wrapper",
            Some("user"),
        ),
        ("smtps://[::1]:4650", 4650, "wrapper", None),
    ] {
        let client = smtp_client(url, SMTP_TIMEOUT).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(client.port, port, "{url}");
        let got = match client.security {
            Security::None => "none",
            Security::Opportunistic(_) => "opportunistic",
            Security::Required(_) => "required",
            Security::Wrapper { .. } => "wrapper",
        };
        assert_eq!(got, mode, "{url}");
        assert_eq!(
            client.credentials.is_some(),
            user.is_some(),
            "{url}: credentials"
        );
    }
    assert_eq!(percent_decode("p%40ss%2Fx").as_deref(), Some("p@ss/x"));
    assert_eq!(percent_decode("100%").as_deref(), Some("100%"));
}

#[tokio::test]
async fn without_smtp_notices_become_eml_files_named_by_message_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let outbox = dir.path().join("outbox");
    let sender = EmailSender::new("default", &channel(None, &outbox)).expect("builds");
    assert_eq!(sender.outbox_dir(), Some(outbox.as_path()));

    let (rendered, msg) = outage_message(&sender);
    sender.send(msg).await.expect("written");
    let files = files_in(&outbox, "eml");
    assert_eq!(files.len(), 1);
    let id = message_id(&["9f1c2a7b3d4e5f60:firing:0".to_owned()]);
    let stem = id.trim_start_matches('<').split('@').next().expect("id");
    assert_eq!(
        files[0].file_name().and_then(|n| n.to_str()),
        Some(format!("{stem}.eml").as_str())
    );
    let mime = Mime::parse(&std::fs::read_to_string(&files[0]).expect("read"));
    assert_eq!(mime.one("Message-ID"), id);
    assert_eq!(mime.decoded("Subject"), rendered.subject);
    assert!(
        mime.part("text/plain")
            .contains("512 × INVALID_EMAIL_ADDRESS")
    );

    // A retry of the same notice replaces its file; no temp file is left.
    let (_, again) = outage_message(&sender);
    sender.send(again).await.expect("written");
    assert_eq!(files_in(&outbox, "eml"), files);
    assert!(files_in(&outbox, "tmp").is_empty());
    let entries = std::fs::read_dir(&outbox).expect("dir").count();
    assert_eq!(entries, 1);
}

#[tokio::test]
async fn an_unwritable_outbox_is_a_transient_failure() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A file where the outbox folder should be.
    let blocker = dir.path().join("outbox");
    std::fs::write(&blocker, "not a folder").expect("write");
    let sender = EmailSender::new("default", &channel(None, &blocker)).expect("builds");
    let (_, msg) = outage_message(&sender);
    let err = sender.send(msg).await.expect_err("cannot write");
    assert!(err.is_transient(), "{err}");
}

#[tokio::test]
async fn a_notice_arrives_intact_at_a_real_smtp_server() {
    let server = SmtpServer::accepting();
    let dir = tempfile::tempdir().expect("tempdir");
    // No `tls`: STARTTLS would be used if offered; aiosmtpd offers none.
    let url = format!("smtp://127.0.0.1:{}", server.port);
    let sender = EmailSender::new("data-team", &channel(Some(url), dir.path())).expect("builds");
    assert_eq!(sender.outbox_dir(), None);

    let ctx = NoticeContext::example_outage();
    let rendered = templates().render(&ctx).expect("renders");
    sender
        .deliver(&rendered, std::slice::from_ref(&ctx))
        .await
        .expect("accepted");

    let mails = server.wait_for_mail(1);
    let mime = Mime::parse(&mails[0]);
    assert_eq!(mime.one("X-Test-MailFrom"), "syncwarden@example.com");
    assert_eq!(
        mime.one("X-Test-RcptTo"),
        "data-team@example.com,growth@example.com,oncall@example.com"
    );
    assert_eq!(mime.decoded("Subject"), rendered.subject);
    assert_eq!(mime.one("From"), "syncwarden@example.com");
    assert_eq!(mime.one("To"), "data-team@example.com, growth@example.com");
    assert_eq!(
        mime.one("Message-ID"),
        message_id(std::slice::from_ref(&ctx.key))
    );
    assert_eq!(mime.one(NOTICE_KEY_HEADER), ctx.key);

    let text = mime.part("text/plain");
    let html = mime.part("text/html");
    assert_eq!(text, rendered.text.replace("\r\n", "\n"));
    for class in &ctx.error_classes {
        assert!(text.contains(&class.headline()), "{}", class.headline());
        // HTML shows the count and the (escaped) signature of each class.
        let escaped = class.signature.replace('<', "&lt;").replace('>', "&gt;");
        assert!(html.contains(&escaped), "{escaped}");
        assert!(html.contains(&format!(">{}</td>", class.count)));
    }
}

#[tokio::test]
async fn plain_smtp_without_starttls_works_with_tls_none() {
    let server = SmtpServer::accepting();
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("smtp://127.0.0.1:{}?tls=none", server.port);
    let sender = EmailSender::new("x", &channel(Some(url), dir.path())).expect("builds");
    let (_, msg) = outage_message(&sender);
    sender.send(msg).await.expect("accepted");
    assert_eq!(server.wait_for_mail(1).len(), 1);
}

#[tokio::test]
async fn a_550_refusal_is_permanent() {
    let server = SmtpServer::rejecting("550 5.1.1 no such user");
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("smtp://127.0.0.1:{}?tls=none", server.port);
    let sender = EmailSender::new("x", &channel(Some(url), dir.path())).expect("builds");
    let (_, msg) = outage_message(&sender);
    let err = sender.send(msg).await.expect_err("refused");
    assert!(matches!(err, DeliveryError::Permanent { .. }), "{err:?}");
    assert!(err.reason().contains("no such user"), "{err}");
}

#[tokio::test]
async fn a_451_try_later_is_transient() {
    let server = SmtpServer::rejecting("451 4.3.0 try later");
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("smtp://127.0.0.1:{}?tls=none", server.port);
    let sender = EmailSender::new("x", &channel(Some(url), dir.path())).expect("builds");
    let (_, msg) = outage_message(&sender);
    let err = sender.send(msg).await.expect_err("deferred");
    assert!(err.is_transient(), "{err:?}");
    assert!(err.reason().contains("try later"), "{err}");
}

#[tokio::test]
async fn a_server_that_is_down_is_transient() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("smtp://127.0.0.1:{}?tls=none", free_port());
    let sender = EmailSender::new("x", &channel(Some(url), dir.path())).expect("builds");
    let (_, msg) = outage_message(&sender);
    let err = sender.send(msg).await.expect_err("refused connection");
    assert!(err.is_transient(), "{err:?}");
}

#[tokio::test]
async fn an_unknown_host_is_transient() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = "smtp://mail.invalid:2525?tls=none".to_owned();
    let sender = EmailSender::new("x", &channel(Some(url), dir.path())).expect("builds");
    let (_, msg) = outage_message(&sender);
    let err = sender.send(msg).await.expect_err("no such host");
    assert!(err.is_transient(), "{err:?}");
}

#[tokio::test]
async fn two_messages_to_aiosmtpd_arrive_over_the_kept_connection() {
    let server = SmtpServer::accepting();
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("smtp://127.0.0.1:{}", server.port);
    let sender = EmailSender::new("x", &channel(Some(url), dir.path())).expect("builds");
    for _ in 0..2 {
        let (_, msg) = outage_message(&sender);
        sender.send(msg).await.expect("accepted");
    }
    assert_eq!(server.wait_for_mail(2).len(), 2);
}

/// A scriptable SMTP server in this process: it counts connections, keeps
/// the messages, and can be told to misbehave once, to stay silent, or to
/// restart (every connection closed, then listening again on the same port).
struct FakeSmtp {
    port: u16,
    state: Arc<FakeState>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

#[derive(Default)]
struct FakeState {
    connections: AtomicUsize,
    quits: AtomicUsize,
    messages: Mutex<Vec<String>>,
    /// Close the connection instead of answering the next MAIL.
    drop_at_mail: AtomicBool,
    /// Answer the next RCPT with this instead of 250.
    rcpt_reply: Mutex<Option<String>>,
    /// Never answer the end of the next message.
    stall_data: AtomicBool,
    /// Accept connections but never greet.
    silent: AtomicBool,
}

impl FakeSmtp {
    async fn start() -> FakeSmtp {
        FakeSmtp::listen(0, Arc::default()).await
    }

    async fn listen(port: u16, state: Arc<FakeState>) -> FakeSmtp {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let tasks: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept = {
            let (state, tasks) = (state.clone(), tasks.clone());
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    state.connections.fetch_add(1, Ordering::SeqCst);
                    let session = tokio::spawn(fake_session(stream, state.clone()));
                    tasks.lock().expect("lock").push(session);
                }
            })
        };
        tasks.lock().expect("lock").push(accept);
        FakeSmtp { port, state, tasks }
    }

    async fn stop(&self) {
        let tasks: Vec<JoinHandle<()>> = self.tasks.lock().expect("lock").drain(..).collect();
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
    }

    /// Closes every connection and the listener, then listens again on the
    /// same port with the same counters.
    async fn restart(self) -> FakeSmtp {
        self.stop().await;
        FakeSmtp::listen(self.port, self.state.clone()).await
    }

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}?tls=none", self.port)
    }

    fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    fn messages(&self) -> usize {
        self.state.messages.lock().expect("lock").len()
    }
}

impl Drop for FakeSmtp {
    fn drop(&mut self) {
        for task in self.tasks.lock().expect("lock").drain(..) {
            task.abort();
        }
    }
}

async fn fake_session(stream: tokio::net::TcpStream, state: Arc<FakeState>) {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    if state.silent.load(Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
    if write.write_all(b"220 fake ESMTP\r\n").await.is_err() {
        return;
    }
    loop {
        let mut line = String::new();
        if read.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
        let answer = match verb.as_str() {
            "EHLO" => "250-fake\r\n250 8BITMIME\r\n".to_owned(),
            "MAIL" if state.drop_at_mail.swap(false, Ordering::SeqCst) => return,
            "MAIL" | "NOOP" | "RSET" => "250 OK\r\n".to_owned(),
            "RCPT" => match state.rcpt_reply.lock().expect("lock").take() {
                Some(r) => format!("{r}\r\n"),
                None => "250 OK\r\n".to_owned(),
            },
            "DATA" => {
                if write.write_all(b"354 go on\r\n").await.is_err() {
                    return;
                }
                let mut body = String::new();
                loop {
                    let mut l = String::new();
                    if read.read_line(&mut l).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if l == ".\r\n" {
                        break;
                    }
                    body.push_str(&l);
                }
                if state.stall_data.swap(false, Ordering::SeqCst) {
                    std::future::pending::<()>().await;
                }
                state.messages.lock().expect("lock").push(body);
                "250 queued\r\n".to_owned()
            }
            "QUIT" => {
                state.quits.fetch_add(1, Ordering::SeqCst);
                let _ = write.write_all(b"221 bye\r\n").await;
                return;
            }
            _ => "502 unknown command\r\n".to_owned(),
        };
        if write.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn fake_sender(server: &FakeSmtp) -> EmailSender {
    let dir = Path::new("/nonexistent/syncwarden-outbox");
    EmailSender::new("x", &channel(Some(server.url()), dir)).expect("builds")
}

async fn send_one(sender: &EmailSender) -> Result<(), DeliveryError> {
    let (_, msg) = outage_message(sender);
    sender.send(msg).await
}

#[tokio::test]
async fn one_connection_carries_consecutive_messages() {
    let server = FakeSmtp::start().await;
    let sender = fake_sender(&server);
    for _ in 0..3 {
        send_one(&sender).await.expect("accepted");
    }
    assert_eq!(server.messages(), 3);
    assert_eq!(
        server.connections(),
        1,
        "the second and third send reuse it"
    );
}

#[tokio::test]
async fn a_server_restart_between_sends_is_survived() {
    let server = FakeSmtp::start().await;
    let sender = fake_sender(&server);
    send_one(&sender).await.expect("accepted");
    assert_eq!(server.connections(), 1);

    // The kept connection is closed by the restart: the NOOP check sees it
    // and the next message goes over a new connection.
    let server = server.restart().await;
    send_one(&sender).await.expect("accepted after the restart");
    assert_eq!(server.messages(), 2);
    assert_eq!(server.connections(), 2);
    send_one(&sender).await.expect("accepted");
    assert_eq!(server.connections(), 2, "the new connection is kept");
}

#[tokio::test]
async fn a_connection_lost_mid_send_is_retried_once_on_a_new_one() {
    let server = FakeSmtp::start().await;
    let sender = fake_sender(&server);
    send_one(&sender).await.expect("accepted");

    // NOOP still works, then the server hangs up at MAIL: one reconnect.
    server.state.drop_at_mail.store(true, Ordering::SeqCst);
    send_one(&sender)
        .await
        .expect("accepted on the second connection");
    assert_eq!(server.messages(), 2);
    assert_eq!(server.connections(), 2);

    // On a fresh connection the same failure is not retried: it is this
    // attempt's (transient) failure, and the worker retries later.
    let server = server.restart().await;
    server.state.drop_at_mail.store(true, Ordering::SeqCst);
    // The kept connection is dead; the probe notices, the new one fails.
    let err = send_one(&sender).await.expect_err("hung up");
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(server.connections(), 3);
    send_one(&sender).await.expect("accepted");
    assert_eq!(server.connections(), 4);
    assert_eq!(server.messages(), 3);
}

#[tokio::test]
async fn refusals_keep_their_class_and_the_next_message_reconnects() {
    let server = FakeSmtp::start().await;
    let sender = fake_sender(&server);
    send_one(&sender).await.expect("accepted");

    *server.state.rcpt_reply.lock().expect("lock") = Some("550 5.1.1 no such user".to_owned());
    let err = send_one(&sender).await.expect_err("refused");
    assert!(matches!(err, DeliveryError::Permanent { .. }), "{err:?}");
    assert!(err.reason().contains("no such user"), "{err}");

    // A refusal on a reused connection is not a lost connection: no retry.
    *server.state.rcpt_reply.lock().expect("lock") = Some("451 4.3.0 try later".to_owned());
    let err = send_one(&sender).await.expect_err("deferred");
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(server.messages(), 1);

    send_one(&sender).await.expect("accepted");
    assert_eq!(server.messages(), 2);
    // lettre closes a connection after a refusal; each refusal cost one.
    assert_eq!(server.connections(), 3);
}

#[tokio::test]
async fn a_silent_server_times_out_connecting_and_a_stalled_one_sending() {
    let server = FakeSmtp::start().await;
    let timeout = Duration::from_millis(300);
    let client = smtp_client(&server.url(), timeout).expect("client");
    let sender = fake_sender(&server);
    let (_, msg) = outage_message(&sender);
    let (envelope, bytes) = (msg.envelope().clone(), msg.formatted());

    server.state.silent.store(true, Ordering::SeqCst);
    let start = Instant::now();
    let err = client
        .send(&envelope, &bytes)
        .await
        .expect_err("no greeting");
    assert!(err.is_transient(), "{err:?}");
    assert!(err.reason().contains("no connection within"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(3));

    server.state.silent.store(false, Ordering::SeqCst);
    server.state.stall_data.store(true, Ordering::SeqCst);
    let start = Instant::now();
    let err = client
        .send(&envelope, &bytes)
        .await
        .expect_err("no reply to DATA");
    assert!(err.is_transient(), "{err:?}");
    assert!(err.reason().contains("while sending"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(3));

    // The stalled connection was dropped; the next message gets a new one.
    client.send(&envelope, &bytes).await.expect("accepted");
    assert_eq!(server.messages(), 1);
    assert_eq!(server.connections(), 3);
}

#[tokio::test]
async fn a_connection_idle_too_long_is_quit_and_replaced() {
    let server = FakeSmtp::start().await;
    let sender = fake_sender(&server);
    send_one(&sender).await.expect("accepted");
    let Transport::Smtp(client) = &sender.transport else {
        panic!("an SMTP channel")
    };
    {
        let mut kept = client.kept.lock().await;
        let kept = kept.as_mut().expect("a kept connection");
        kept.idle_since = Instant::now()
            .checked_sub(SMTP_MAX_IDLE + Duration::from_secs(1))
            .expect("an instant in the past");
    }
    send_one(&sender).await.expect("accepted");
    assert_eq!(server.connections(), 2);
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.state.quits.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the old connection got no QUIT");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn implicit_tls_to_a_plain_text_server_is_a_transient_failure() {
    let server = FakeSmtp::start().await;
    let url = format!("smtps://127.0.0.1:{}", server.port);
    let client = smtp_client(&url, Duration::from_secs(5)).expect("client");
    let sender = fake_sender(&server);
    let (_, msg) = outage_message(&sender);
    let err = client
        .send(msg.envelope(), &msg.formatted())
        .await
        .expect_err("no TLS there");
    assert!(err.is_transient(), "{err:?}");
    assert!(err.reason().contains("TLS"), "{err}");
    assert_eq!(server.messages(), 0);
}
