//! Test helpers for the channels: a real SMTP server (Python's aiosmtpd,
//! started per test on a free port) and a small MIME reader, so e-mail tests
//! check what actually went over the wire rather than lettre's builder.
//!
//! The server runs a tiny handler written to a temp dir: it stores each
//! message byte for byte (with the envelope in two `X-Test-*` lines on top)
//! or answers RCPT with a scripted reply such as `550 5.1.1 no such user`.
//! A missing aiosmtpd fails the test with instructions; nothing is skipped.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;

const HANDLER: &str = r#"
import itertools, os

class Capture:
    """Stores each message as DIR/<n>.eml, or refuses RCPT with SW_RCPT_REPLY."""

    def __init__(self):
        self.dir = os.environ["SW_MAILDIR"]
        self.rcpt_reply = os.environ.get("SW_RCPT_REPLY", "")
        self.n = itertools.count()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        n = next(self.n)
        tmp = os.path.join(self.dir, ".%d.tmp" % n)
        with open(tmp, "wb") as f:
            f.write(b"X-Test-MailFrom: " + envelope.mail_from.encode() + b"\r\n")
            f.write(b"X-Test-RcptTo: " + ",".join(envelope.rcpt_tos).encode() + b"\r\n")
            f.write(envelope.original_content)
        os.rename(tmp, os.path.join(self.dir, "%d.eml" % n))
        return "250 Message accepted for delivery"
"#;

/// An aiosmtpd process; killed when dropped.
pub struct SmtpServer {
    child: Child,
    pub port: u16,
    maildir: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmtpServer {
    /// A server that accepts and stores every message.
    pub fn accepting() -> SmtpServer {
        SmtpServer::start(None)
    }

    /// A server that answers every RCPT TO with `reply`.
    pub fn rejecting(reply: &str) -> SmtpServer {
        SmtpServer::start(Some(reply))
    }

    fn start(rcpt_reply: Option<&str>) -> SmtpServer {
        require_aiosmtpd();
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("swtest.py"), HANDLER).expect("write handler");
        let maildir = dir.path().join("mail");
        std::fs::create_dir(&maildir).expect("maildir");
        let port = free_port();
        let mut child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "swtest.Capture"])
            .env("PYTHONPATH", dir.path())
            .env("SW_MAILDIR", &maildir)
            .env("SW_RCPT_REPLY", rcpt_reply.unwrap_or(""))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 must be on PATH to run the SMTP tests");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut s) = child.stderr.take() {
                    let _ = s.read_to_string(&mut err);
                }
                panic!("aiosmtpd exited at start ({status}): {err}");
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("aiosmtpd did not listen on port {port} within 15 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        SmtpServer {
            child,
            port,
            maildir,
            _dir: dir,
        }
    }

    /// Waits until `n` messages arrived and returns them, oldest first.
    pub fn wait_for_mail(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&self.maildir)
                .expect("read maildir")
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                .collect();
            if files.len() >= n {
                files.sort();
                return files
                    .iter()
                    .map(|p| std::fs::read_to_string(p).expect("mail is text"))
                    .collect();
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} mails, got {}",
                files.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn require_aiosmtpd() {
    let ok = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "the SMTP tests need Python's aiosmtpd: `pip install aiosmtpd==1.4.6` or \
         `apt-get install -y python3-aiosmtpd` (`python3 -c 'import aiosmtpd'` failed)"
    );
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// One parsed MIME entity: unfolded headers and the raw body.
#[derive(Debug)]
pub struct Mime {
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Mime {
    pub fn parse(raw: &str) -> Mime {
        let raw = raw.replace("\r\n", "\n");
        let (head, body) = raw.split_once("\n\n").unwrap_or((raw.as_str(), ""));
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.lines() {
            if line.starts_with([' ', '\t']) {
                if let Some(last) = headers.last_mut() {
                    last.1.push(' ');
                    last.1.push_str(line.trim());
                }
                continue;
            }
            let (name, value) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("not a header line: {line:?}"));
            headers.push((name.to_owned(), value.trim().to_owned()));
        }
        Mime {
            headers,
            body: body.to_owned(),
        }
    }

    /// Every value of header `name` (case-insensitive).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The single value of header `name`; panics if absent or repeated.
    pub fn one(&self, name: &str) -> &str {
        let all = self.all(name);
        assert_eq!(all.len(), 1, "header {name}: {all:?}");
        all[0]
    }

    /// The decoded text of an RFC 2047 header such as `Subject`.
    pub fn decoded(&self, name: &str) -> String {
        decode_words(self.one(name))
    }

    /// The decoded bodies of a multipart message, keyed by content type.
    pub fn parts(&self) -> Vec<(String, String)> {
        let ct = self.one("Content-Type");
        let boundary = ct
            .split(';')
            .find_map(|p| p.trim().strip_prefix("boundary="))
            .expect("multipart boundary")
            .trim_matches('"');
        self.body
            .split(&format!("--{boundary}"))
            .skip(1)
            .filter(|p| !p.starts_with("--"))
            .map(|p| {
                // The line break before a boundary belongs to the boundary.
                let p = p.strip_suffix('\n').unwrap_or(p);
                let part = Mime::parse(p.trim_start_matches('\n'));
                let ct = part.one("Content-Type").to_owned();
                let body = match part.all("Content-Transfer-Encoding").first().copied() {
                    Some(e) if e.eq_ignore_ascii_case("quoted-printable") => decode_qp(&part.body),
                    Some(e) if e.eq_ignore_ascii_case("base64") => {
                        let compact: String =
                            part.body.chars().filter(|c| !c.is_whitespace()).collect();
                        String::from_utf8(
                            base64::engine::general_purpose::STANDARD
                                .decode(compact)
                                .expect("base64"),
                        )
                        .expect("utf-8")
                    }
                    _ => part.body.clone(),
                };
                (ct, body)
            })
            .collect()
    }

    /// The decoded body of the part whose content type starts with `ct`.
    pub fn part(&self, ct: &str) -> String {
        self.parts()
            .into_iter()
            .find(|(t, _)| t.starts_with(ct))
            .unwrap_or_else(|| panic!("no {ct} part"))
            .1
    }
}

fn decode_qp(s: &str) -> String {
    let s = s.replace("=\n", "");
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && let Some(b) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).expect("utf-8")
}

/// Decodes `=?utf-8?b?…?=` and `=?utf-8?q?…?=` words; whitespace between
/// two encoded words is dropped, as RFC 2047 says.
pub fn decode_words(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    let mut last_was_word = false;
    while let Some(start) = rest.find("=?") {
        let before = &rest[..start];
        if !(last_was_word && before.trim().is_empty()) {
            out.push_str(before);
        }
        let word = &rest[start + 2..];
        let mut fields = word.splitn(3, '?');
        let (Some(_charset), Some(enc), Some(tail)) = (fields.next(), fields.next(), fields.next())
        else {
            out.push_str(&rest[start..]);
            return out;
        };
        let Some(end) = tail.find("?=") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let text = &tail[..end];
        let bytes = if enc.eq_ignore_ascii_case("b") {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .expect("base64 word")
        } else {
            decode_qp(&text.replace('_', " ")).into_bytes()
        };
        out.push_str(&String::from_utf8(bytes).expect("utf-8 word"));
        rest = &tail[end + 2..];
        last_was_word = true;
    }
    out.push_str(rest);
    out
}

/// Files with the given extension in `dir`.
pub fn files_in(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|x| x == ext));
    files.sort();
    files
}
