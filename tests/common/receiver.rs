//! A local receiver of webhook deliveries and WebSub callbacks, on a bare
//! `TcpListener` whose answers each test scripts, and Standard Webhooks
//! signatures computed here with `hmac` + `sha2` + `base64` directly (none
//! of rtwire's push code).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long [`Receiver::next`] waits unless the test sets
/// [`Receiver::deadline`].
pub const RECEIVE_DEADLINE: Duration = Duration::from_secs(25);

pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// What a receiver does with one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Answers with this status.
    Status(u16),
    /// Never answers; holds the connection until the peer closes it.
    Hang,
    /// 200 with the request's `hub.challenge` query parameter as the body
    /// (empty if it has none): a WebSub subscriber confirming.
    Echo,
}

/// One request as a receiver saw it.
#[derive(Debug)]
pub struct Seen {
    /// When its body had been read.
    pub at: Instant,
    pub method: String,
    pub target: String,
    /// Names in lower case, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// What the script said to do with it.
    pub reply: Reply,
}

impl Seen {
    /// The first header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every header named `name` (lower case), in order.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn webhook_id(&self) -> &str {
        self.header("webhook-id")
            .unwrap_or_else(|| panic!("a webhook-id header: {self:?}"))
    }

    /// The query parameter `name` of the target, percent-decoded.
    pub fn param(&self, name: &str) -> Option<String> {
        let (_, query) = self.target.split_once('?')?;
        query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key) == name).then(|| percent_decode(value))
        })
    }
}

/// `application/x-www-form-urlencoded` decoding (`+` is a space); a bad
/// escape is kept as it is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i + 1..i + 3)
            .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (bytes[i], escaped) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (other, _) => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

type Script = Arc<Mutex<dyn FnMut(&Seen) -> Reply + Send>>;

/// A local HTTP/1.1 server (keep-alive, `Content-Length` bodies) that
/// answers as its script says and reports every request.
pub struct Receiver {
    pub addr: SocketAddr,
    seen: mpsc::UnboundedReceiver<Seen>,
    /// How many requests are being held unanswered, their connections
    /// still open.
    pub hanging: Arc<AtomicUsize>,
    /// How long [`Receiver::next`] waits; [`RECEIVE_DEADLINE`] unless set.
    pub deadline: Duration,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Receiver {
    pub async fn start(script: impl FnMut(&Seen) -> Reply + Send + 'static) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let script: Script = Arc::new(Mutex::new(script));
        let (tx, seen) = mpsc::unbounded_channel();
        let hanging = Arc::new(AtomicUsize::new(0));
        let counter = hanging.clone();
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(receive(stream, script.clone(), tx.clone(), counter.clone()));
            }
        });
        Receiver {
            addr,
            seen,
            hanging,
            deadline: RECEIVE_DEADLINE,
            accept,
        }
    }

    /// A receiver that answers every request with `status`.
    pub async fn answering(status: u16) -> Receiver {
        Receiver::start(move |_| Reply::Status(status)).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The next request, within [`Receiver::deadline`].
    pub async fn next(&mut self) -> Seen {
        tokio::time::timeout(self.deadline, self.seen.recv())
            .await
            .unwrap_or_else(|_| panic!("a request at {} within {:?}", self.addr, self.deadline))
            .expect("the receiver runs")
    }

    /// Every request reported so far.
    pub fn drain(&mut self) -> Vec<Seen> {
        std::iter::from_fn(|| self.seen.try_recv().ok()).collect()
    }
}

/// Serves one connection: requests one after another until the peer
/// closes, or one is held unanswered.
async fn receive(
    mut stream: TcpStream,
    script: Script,
    tx: mpsc::UnboundedSender<Seen>,
    hanging: Arc<AtomicUsize>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let head_end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        buf.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let mut request_line = lines.next().unwrap_or_default().split(' ');
        let method = request_line.next().unwrap_or_default().to_owned();
        let target = request_line.next().unwrap_or_default().to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| {
                let (name, value) = line.split_once(':')?;
                Some((name.trim().to_ascii_lowercase(), value.trim().to_owned()))
            })
            .collect();
        let field = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let len: usize =
            field("content-length").map_or(0, |v| v.parse().expect("a Content-Length"));
        let close = field("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        while buf.len() < len {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Vec<u8> = buf.drain(..len).collect();
        let mut seen = Seen {
            at: Instant::now(),
            method,
            target,
            headers,
            body,
            reply: Reply::Hang,
        };
        let reply = (script.lock().unwrap())(&seen);
        seen.reply = reply;
        let (status, body) = match reply {
            Reply::Hang => {
                hanging.fetch_add(1, Ordering::SeqCst);
                let _ = tx.send(seen);
                // Held until the peer gives up on it.
                while let Ok(n) = stream.read(&mut chunk).await {
                    if n == 0 {
                        break;
                    }
                }
                hanging.fetch_sub(1, Ordering::SeqCst);
                return;
            }
            Reply::Echo => (200, seen.param("hub.challenge").unwrap_or_default()),
            Reply::Status(status) => (status, format!("status {status}\n")),
        };
        let _ = tx.send(seen);
        // A 204 has no content, so no Content-Length either.
        let answer = if status == 204 {
            format!("HTTP/1.1 {status} Scripted\r\nContent-Type: text/plain\r\n\r\n")
        } else {
            format!(
                "HTTP/1.1 {status} Scripted\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
        };
        if stream.write_all(answer.as_bytes()).await.is_err() || close {
            return;
        }
    }
}

// ----- signatures, computed here -----

/// The Standard Webhooks signature of one attempt: `v1,` and the base64
/// of HMAC-SHA256 over `{id}.{timestamp}.{body}`, keyed with the decoded
/// secret.
pub fn sign(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> String {
    let encoded = secret.strip_prefix("whsec_").expect("a whsec_ secret");
    let key = BASE64.decode(encoded).expect("a base64 secret");
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).expect("any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

/// Checks a delivery's Standard Webhooks headers against `secret`: a
/// timestamp within 5 s of now and a `v1` signature that verifies.
pub fn assert_signed(seen: &Seen, secret: &str) {
    let id = seen.webhook_id();
    let timestamp = seen
        .header("webhook-timestamp")
        .unwrap_or_else(|| panic!("a webhook-timestamp: {seen:?}"));
    let ts: u64 = timestamp
        .parse()
        .unwrap_or_else(|_| panic!("unix seconds: {timestamp:?}"));
    assert!(
        now_unix().abs_diff(ts) <= 5,
        "webhook-timestamp {ts} within 5 s of now ({})",
        now_unix()
    );
    let signatures = seen
        .header("webhook-signature")
        .unwrap_or_else(|| panic!("a webhook-signature: {seen:?}"));
    let expected = sign(secret, id, timestamp, &seen.body);
    let listed: Vec<&str> = signatures.split(' ').collect();
    for one in &listed {
        assert!(one.starts_with("v1,"), "a v1 signature: {signatures:?}");
    }
    assert!(
        listed.contains(&expected.as_str()),
        "webhook-signature {signatures:?} holds {expected:?}"
    );
}

/// WebSub's `X-Hub-Signature` value for `body`: `sha256=` and the hex of
/// HMAC-SHA256 keyed with `secret`.
pub fn hub_signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("any key length");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}
