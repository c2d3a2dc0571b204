//! A real SMTP server for the tests: `tests/support/smtp_sink.py` on
//! aiosmtpd, started per test on a free port. It can be stopped and
//! restarted on the same port (SMTP down, then back) and told to answer
//! 451 or 550.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct SmtpServer {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

impl SmtpServer {
    pub fn start() -> SmtpServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = SmtpServer {
            port: free_port(),
            dir,
            child: None,
        };
        s.up();
        s
    }

    /// (Re)starts the server on its port.
    pub fn up(&mut self) {
        let ready = self.dir.path().join("ready");
        let _ = std::fs::remove_file(&ready);
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/smtp_sink.py");
        let child = Command::new("python3")
            .arg(script)
            .arg(self.port.to_string())
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 must be installed (bash .ci/run installs it)");
        self.child = Some(child);
        let start = Instant::now();
        while !ready.exists() {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                let mut err = String::new();
                if let Some(mut e) = c.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                panic!(
                    "the SMTP sink exited ({status}); is aiosmtpd installed (pip install aiosmtpd)? {err}"
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "SMTP sink did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server: connections are refused until `up()`.
    pub fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// How the server answers DATA from now on: "ok", "451" or "550".
    pub fn set_mode(&self, mode: &str) {
        std::fs::write(self.dir.path().join("mode"), mode).expect("mode file");
    }

    /// How many DATA commands the server has seen (accepted or refused).
    pub fn attempts(&self) -> usize {
        std::fs::read_to_string(self.dir.path().join("attempts.log"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}?tls=none", self.port)
    }

    /// Received messages, oldest first.
    pub fn messages(&self) -> Vec<Mail> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path().join("mail"))
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "eml"));
        files.sort();
        files
            .iter()
            .filter_map(|p| std::fs::read(p).ok())
            .map(|b| Mail {
                raw: String::from_utf8_lossy(&b).into_owned(),
            })
            .collect()
    }

    /// Waits until `n` messages arrived (or panics after `timeout`).
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Mail> {
        let start = Instant::now();
        loop {
            let m = self.messages();
            if m.len() >= n {
                return m;
            }
            assert!(
                start.elapsed() < timeout,
                "expected {n} message(s), got {} after {timeout:?}",
                m.len()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.down();
    }
}

/// A received message, parsed with `mail-parser`.
pub struct Mail {
    pub raw: String,
}

impl Mail {
    fn parsed(&self) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default()
            .parse(self.raw.as_bytes())
            .expect("a parseable MIME message")
    }

    pub fn subject(&self) -> String {
        self.parsed().subject().unwrap_or_default().to_string()
    }

    pub fn message_id(&self) -> String {
        self.parsed().message_id().unwrap_or_default().to_string()
    }

    /// A raw header value (first occurrence), as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.parsed().header_raw(name).map(|v| v.trim().to_string())
    }

    /// Envelope recipients, as the sink recorded them.
    pub fn rcpt_to(&self) -> String {
        self.header("X-RcptTo").unwrap_or_default()
    }

    pub fn text(&self) -> String {
        self.parsed()
            .body_text(0)
            .map(|t| t.into_owned())
            .unwrap_or_default()
    }

    pub fn html(&self) -> String {
        self.parsed()
            .body_html(0)
            .map(|t| t.into_owned())
            .unwrap_or_default()
    }

    /// Every header name, lower-cased (to prove nothing was injected).
    pub fn header_names(&self) -> Vec<String> {
        self.parsed()
            .headers()
            .iter()
            .map(|h| h.name().to_ascii_lowercase())
            .collect()
    }
}
