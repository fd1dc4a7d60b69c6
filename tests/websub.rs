//! The WebSub hub of `rtwire serve` (W3C WebSub), as websub.rocks' hub
//! tests 100-106 check it, plus leases, the SSRF guard and bad requests.
//!
//! The server runs as a child process (the `rtwire` binary, started by
//! tests/common/process.rs, which is no part of the hub); the subscriber is
//! written here on a bare `TcpListener`, with its own HTTP/1.1 parsing, form
//! and query coding, and HMAC check: none of the server's own push or serve
//! code stands on the subscriber's side.
//!
//! Waiting: every wait has a deadline ([`DEADLINE`]); "not delivered" is
//! checked against a witness, a second callback on the same topic that does
//! get the messages published after the one under test stopped being
//! subscribed. Where the hub's handling of a confirmation must be complete
//! before the next step (a re-subscription, an unsubscription), the test
//! waits for the hub's own count of active subscriptions in `/metrics`
//! (polled, within the deadline): nothing else shows it to a subscriber.
//! The only timed wait is the lease test's, where the passing of time is
//! the behaviour under test.
#![cfg(feature = "cli")]

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::process::ServeProcess;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};

/// How long a test waits for one event before it fails.
const DEADLINE: Duration = Duration::from_secs(20);

/// The admin token that turns push on.
const ADMIN_TOKEN: &str = "T";

/// The flags of a hub the local subscriber can use: push on, loopback
/// callbacks allowed, short retries, leases down to 1 s.
const LOCAL_HUB: &[&str] = &[
    "--admin-token",
    ADMIN_TOKEN,
    "--allow-private-callbacks",
    "--webhook-retry-schedule",
    "0,1,1",
    "--websub-min-lease",
    "1",
];

/// The default lease (10 days), inside the default range.
const DEFAULT_LEASE: u64 = 864_000;

/// The default longest lease (30 days).
const DEFAULT_MAX_LEASE: u64 = 2_592_000;

// ----- The server -----

/// A `rtwire serve` process, killed when dropped.
struct Server {
    /// Held to keep the server running (and to show its stderr if the
    /// test fails).
    _process: ServeProcess,
    addr: SocketAddr,
}

impl Server {
    /// Starts `rtwire serve --port 0` with `flags` and waits for its
    /// `listening on http://ADDR` line.
    async fn start(flags: &[&str]) -> Server {
        let process = ServeProcess::start(flags).await;
        let addr = process.addr();
        Server {
            _process: process,
            addr,
        }
    }

    /// A hub the local subscriber can use ([`LOCAL_HUB`]).
    async fn local_hub() -> Server {
        Server::start(LOCAL_HUB).await
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn hub_url(&self) -> String {
        format!("{}/websub", self.base())
    }

    fn topic(&self, channel: &str) -> String {
        format!("{}/channels/{channel}", self.base())
    }

    /// `POST /websub` with `pairs` form-encoded.
    async fn websub(&self, pairs: &[(&str, &str)]) -> Answer {
        let body = form(pairs);
        send(
            self.addr,
            "POST",
            "/websub",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        )
        .await
    }

    /// A subscription request for `callback` to `channel`'s topic with
    /// `extra` parameters; it must be accepted with 202.
    async fn subscribe(&self, callback: &Callback, channel: &str, extra: &[(&str, &str)]) {
        self.ask("subscribe", callback, channel, extra).await;
    }

    async fn unsubscribe(&self, callback: &Callback, channel: &str) {
        self.ask("unsubscribe", callback, channel, &[]).await;
    }

    /// A `mode` request for `callback` to `channel`'s topic with `extra`
    /// parameters; it must be accepted with 202.
    async fn ask(&self, mode: &str, callback: &Callback, channel: &str, extra: &[(&str, &str)]) {
        let answer = self.request(mode, callback, channel, extra).await;
        assert_eq!(
            answer.status,
            202,
            "{mode} {} to {} {extra:?}: {}",
            callback.url,
            self.topic(channel),
            answer.text()
        );
    }

    /// `POST /websub` with `hub.mode` `mode`, `hub.topic` `channel`'s topic,
    /// `hub.callback` `callback`'s URL and `extra`; whatever the answer.
    async fn request(
        &self,
        mode: &str,
        callback: &Callback,
        channel: &str,
        extra: &[(&str, &str)],
    ) -> Answer {
        let topic = self.topic(channel);
        let mut pairs = vec![
            ("hub.mode", mode),
            ("hub.topic", topic.as_str()),
            ("hub.callback", callback.url.as_str()),
        ];
        pairs.extend_from_slice(extra);
        self.websub(&pairs).await
    }

    /// Publishes `body` on `channel`: it must be accepted with 202.
    async fn publish(&self, channel: &str, body: &[u8]) {
        let answer = send(
            self.addr,
            "POST",
            &format!("/channels/{channel}"),
            &[],
            body,
        )
        .await;
        assert_eq!(
            answer.status,
            202,
            "publish on {channel}: {}",
            answer.text()
        );
    }

    /// Publishes each of `bodies` on `channel`, in order.
    async fn publish_all(&self, channel: &str, bodies: &[&[u8]]) {
        for body in bodies {
            self.publish(channel, body).await;
        }
    }

    async fn get(&self, target: &str) -> Answer {
        send(self.addr, "GET", target, &[], b"").await
    }

    /// Waits (within the deadline, polling `/metrics`) until the hub counts
    /// `n` active WebSub subscriptions: what the hub has done with a
    /// confirmation is nowhere else visible to a subscriber.
    async fn wait_for_subscriptions(&self, n: usize) {
        let line = format!("rtwire_push_endpoints{{kind=\"websub\"}} {n}");
        let deadline = Instant::now() + DEADLINE;
        loop {
            let metrics = self.get("/metrics").await;
            let text = metrics.text();
            if text.lines().any(|l| l.trim() == line) {
                return;
            }
            if Instant::now() > deadline {
                let gauge: Vec<_> = text
                    .lines()
                    .filter(|l| l.starts_with("rtwire_push_endpoints"))
                    .collect();
                panic!("no `{line}` within {DEADLINE:?}: {gauge:?}");
            }
            // A poll interval, not a wait for the event itself.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

// ----- HTTP requests by hand -----

/// An answer of the server.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        header_in(&self.headers, name)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request on a fresh connection that closes after the answer.
async fn send(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let mut head =
            format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if method != "GET" {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        stream.write_all(&request).await.expect("write");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.expect("read");
        answer
    };
    let raw = timeout(DEADLINE, exchange)
        .await
        .unwrap_or_else(|_| panic!("{method} {target} answered within {DEADLINE:?}"));
    let end = find(&raw, b"\r\n\r\n")
        .unwrap_or_else(|| panic!("a whole head: {:?}", String::from_utf8_lossy(&raw)));
    let head = std::str::from_utf8(&raw[..end]).expect("an ASCII head");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.strip_prefix("HTTP/1.1 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("a status line: {head}"));
    let headers = parse_headers(lines);
    let mut body = raw[end + 4..].to_vec();
    if let Some(length) = header_in(&headers, "content-length") {
        body.truncate(length.parse().expect("a numeric Content-Length"));
    }
    Answer {
        status,
        headers,
        body,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_headers<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<(String, String)> {
    lines
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            Some((name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        })
        .collect()
}

fn header_in<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

// ----- Forms and queries -----

/// `application/x-www-form-urlencoded` of `pairs`: every byte but the
/// unreserved ones percent-encoded.
fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(name, value)| format!("{}={}", percent_encode(name), percent_encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

fn percent_encode(text: &str) -> String {
    let mut out = String::new();
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `+` and `%XX`; `None` on a bad escape or bytes that are not
/// UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// A query string's pairs, decoded, in order.
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s| percent_decode(s).unwrap_or_else(|| panic!("a bad escape in {query}"));
            (decode(name), decode(value))
        })
        .collect()
}

// ----- Signatures -----

/// Lowercase hex of HMAC-SHA256(`key`, `body`).
fn hmac_hex(key: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks `X-Hub-Signature: sha256=<hex>` of a delivery against `secret`.
fn assert_signed(delivery: &Seen, secret: &str) {
    let value = delivery
        .header("x-hub-signature")
        .unwrap_or_else(|| panic!("an X-Hub-Signature in {:#?}", delivery.headers));
    let (method, hex) = value
        .split_once('=')
        .unwrap_or_else(|| panic!("method=signature: {value}"));
    assert_eq!(method, "sha256", "{value}");
    assert!(
        hex.eq_ignore_ascii_case(&hmac_hex(secret.as_bytes(), &delivery.body)),
        "{value} is not HMAC-SHA256({secret:?}, {:?})",
        String::from_utf8_lossy(&delivery.body)
    );
}

// ----- The subscriber -----

/// How a callback answers a verification request.
#[derive(Clone, Copy, Debug)]
enum Reply {
    /// 200 with `hub.challenge` as the body: the subscription is confirmed.
    Echo,
    /// 200 with something other than the challenge.
    WrongChallenge,
    /// This status with an empty body.
    Status(u16),
}

/// One request the subscriber received.
#[derive(Debug)]
struct Seen {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// When its head was read.
    at: Instant,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        header_in(&self.headers, name)
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn content_type(&self) -> &str {
        self.header("content-type").unwrap_or("")
    }

    /// Every `(url, rel)` of its `Link` headers (one link per header or
    /// several separated by commas; these URLs hold no commas).
    fn links(&self) -> Vec<(String, String)> {
        let mut links = Vec::new();
        for (_, value) in self.headers.iter().filter(|(n, _)| n == "link") {
            links.extend(parse_links(value));
        }
        links
    }
}

fn parse_links(value: &str) -> Vec<(String, String)> {
    let mut links = Vec::new();
    for link in value.split(',') {
        let link = link.trim();
        let Some((url, params)) = link.strip_prefix('<').and_then(|l| l.split_once('>')) else {
            continue;
        };
        for param in params.split(';') {
            let Some((name, rel)) = param.split_once('=') else {
                continue;
            };
            if name.trim().eq_ignore_ascii_case("rel") {
                for rel in rel.trim().trim_matches('"').split_whitespace() {
                    links.push((url.to_owned(), rel.to_ascii_lowercase()));
                }
            }
        }
    }
    links
}

/// Checks both WebSub `Link`s: the hub, and the topic as `self`.
fn assert_links(links: &[(String, String)], server: &Server, channel: &str) {
    let hub = (server.hub_url(), "hub".to_owned());
    let this = (server.topic(channel), "self".to_owned());
    assert!(links.contains(&hub), "{hub:?} in {links:?}");
    assert!(links.contains(&this), "{this:?} in {links:?}");
}

struct Route {
    reply: Reply,
    events: mpsc::UnboundedSender<Seen>,
}

/// A local WebSub subscriber: an HTTP/1.1 server on 127.0.0.1 whose
/// callbacks (paths) answer verifications as told and accept deliveries,
/// reporting every request on the callback's channel.
struct Subscriber {
    port: u16,
    routes: Arc<Mutex<HashMap<String, Route>>>,
    /// Connections accepted, whatever came on them.
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Subscriber {
    async fn start() -> Subscriber {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let routes: Arc<Mutex<HashMap<String, Route>>> = Arc::default();
        let connections = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let routes = routes.clone();
            let connections = connections.clone();
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    connections.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(serve_connection(stream, routes.clone()));
                }
            }
        });
        Subscriber {
            port,
            routes,
            connections,
            task,
        }
    }

    /// A callback at `path_and_query` (the query is part of its URL, and the
    /// hub must keep it) that answers verifications with `reply`.
    fn callback(&self, path_and_query: &str, reply: Reply) -> Callback {
        let path = path_and_query.split('?').next().unwrap().to_owned();
        let (tx, events) = mpsc::unbounded_channel();
        let old = self
            .routes
            .lock()
            .unwrap()
            .insert(path.clone(), Route { reply, events: tx });
        assert!(old.is_none(), "one callback per path: {path}");
        Callback {
            url: format!("http://127.0.0.1:{}{path_and_query}", self.port),
            path,
            events,
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Serves one request on `stream` (answering `Connection: close`).
async fn serve_connection(mut stream: TcpStream, routes: Arc<Mutex<HashMap<String, Route>>>) {
    let Some(seen) = read_request(&mut stream).await else {
        return;
    };
    let route = routes
        .lock()
        .unwrap()
        .get(&seen.path)
        .map(|r| (r.reply, r.events.clone()));
    let challenge = seen.param("hub.challenge").unwrap_or("").to_owned();
    let (status, body) = match (&route, seen.method.as_str()) {
        (None, _) => (404, "no such callback".to_owned()),
        (Some((Reply::Echo, _)), "GET") => (200, challenge),
        (Some((Reply::WrongChallenge, _)), "GET") => (200, format!("not-{challenge}")),
        (Some((Reply::Status(status), _)), "GET") => (*status, String::new()),
        (Some(_), "POST") => (200, String::new()),
        (Some(_), _) => (405, String::new()),
    };
    let answer = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        reason(status),
        body.len()
    );
    if stream.write_all(answer.as_bytes()).await.is_err() {
        return;
    }
    let _ = stream.shutdown().await;
    // The test hears of the request once the hub has read the whole answer
    // and closed its end, so that what the hub does with the answer (a
    // confirmation, an unsubscription) is not raced by the test's next step.
    let _ = timeout(Duration::from_secs(5), async {
        let mut sink = [0u8; 1024];
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    if let Some((_, events)) = route {
        let _ = events.send(seen);
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        410 => "Gone",
        500 => "Internal Server Error",
        _ => "Other",
    }
}

/// Reads one request: the head, then `Content-Length` bytes of body.
async fn read_request(stream: &mut TcpStream) -> Option<Seen> {
    let mut buf = Vec::new();
    let end = loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            break end;
        }
        if buf.len() > 64 << 10 {
            return None;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let at = Instant::now();
    let head = String::from_utf8(buf[..end].to_vec()).ok()?;
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let target = request_line.next()?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let headers = parse_headers(lines);
    let length: usize =
        header_in(&headers, "content-length").map_or(Some(0), |v| v.parse().ok())?;
    let mut body = buf[end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    Some(Seen {
        method,
        path: path.to_owned(),
        query: parse_query(query),
        headers,
        body,
        at,
    })
}

/// One callback of the [`Subscriber`] and the requests it received.
struct Callback {
    url: String,
    path: String,
    events: mpsc::UnboundedReceiver<Seen>,
}

impl Callback {
    /// The next request, within the deadline.
    async fn next(&mut self) -> Seen {
        match timeout(DEADLINE, self.events.recv()).await {
            Ok(Some(seen)) => seen,
            Ok(None) => panic!("{}: the subscriber stopped", self.url),
            Err(_) => panic!("{}: no request within {DEADLINE:?}", self.url),
        }
    }

    /// The next request, which must be a verification (a `GET`) with
    /// `hub.mode` `mode` for `topic` and a non-empty challenge.
    async fn verification(&mut self, mode: &str, topic: &str) -> Seen {
        let seen = self.next().await;
        assert_eq!(
            seen.method, "GET",
            "{}: a verification: {seen:#?}",
            self.url
        );
        assert_eq!(seen.path, self.path);
        assert_eq!(seen.param("hub.mode"), Some(mode), "{seen:#?}");
        assert_eq!(seen.param("hub.topic"), Some(topic), "{seen:#?}");
        assert!(
            seen.param("hub.challenge").is_some_and(|c| !c.is_empty()),
            "a challenge: {seen:#?}"
        );
        seen
    }

    /// The next request, which must be a delivery (a `POST`).
    async fn delivery(&mut self) -> Seen {
        let seen = self.next().await;
        assert_eq!(seen.method, "POST", "{}: a delivery: {seen:#?}", self.url);
        assert_eq!(seen.path, self.path);
        seen
    }

    /// Deliveries until each of `bodies` came at least once; each must have
    /// come exactly once, and nothing else.
    async fn deliveries_of(&mut self, bodies: &[&[u8]]) -> Vec<Seen> {
        let mut got: Vec<Seen> = Vec::new();
        while !bodies.iter().all(|b| got.iter().any(|d| d.body == *b)) {
            got.push(self.delivery().await);
        }
        let mut shown: Vec<_> = got
            .iter()
            .map(|d| String::from_utf8_lossy(&d.body).into_owned())
            .collect();
        shown.sort();
        let mut expected: Vec<_> = bodies
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect();
        expected.sort();
        assert_eq!(shown, expected, "{}: each message exactly once", self.url);
        got
    }

    /// Checks that no delivery has come (verification requests may have).
    fn assert_no_delivery(&mut self, why: &str) {
        while let Ok(seen) = self.events.try_recv() {
            assert_ne!(
                seen.method,
                "POST",
                "{}: {why}, yet it got {:?}",
                self.url,
                String::from_utf8_lossy(&seen.body)
            );
        }
    }

    /// Checks that nothing at all has come.
    fn assert_nothing_more(&mut self, why: &str) {
        if let Ok(seen) = self.events.try_recv() {
            panic!("{}: {why}, yet it got {seen:#?}", self.url);
        }
    }
}

/// A hub the local subscriber can use ([`Server::local_hub`]) and that
/// subscriber.
async fn local_hub_and_subscriber() -> (Server, Subscriber) {
    (Server::local_hub().await, Subscriber::start().await)
}

/// Subscribes `callback` to `channel` with `extra` parameters and waits for
/// its verification request (which the callback answers as it was told).
async fn subscribed(
    server: &Server,
    callback: &mut Callback,
    channel: &str,
    extra: &[(&str, &str)],
) -> Seen {
    server.subscribe(callback, channel, extra).await;
    callback
        .verification("subscribe", &server.topic(channel))
        .await
}

/// Publishes `body` on `channel` and checks its delivery to `callback`: the
/// body exactly, a content type that starts with `content_type`, and both
/// WebSub links; returns it for further checks.
async fn assert_delivered(
    server: &Server,
    callback: &mut Callback,
    channel: &str,
    body: &[u8],
    content_type: &str,
) -> Seen {
    server.publish(channel, body).await;
    let delivery = callback.delivery().await;
    assert_eq!(delivery.body, body, "{delivery:#?}");
    assert!(
        delivery.content_type().starts_with(content_type),
        "{content_type}: {delivery:#?}"
    );
    assert_links(&delivery.links(), server, channel);
    delivery
}

/// Checks the topic's own URL, `GET /channels/{channel}`: 200 with the
/// latest message's `body`, a content type that starts with
/// `content_type`, and both WebSub links.
async fn assert_latest(server: &Server, channel: &str, body: &[u8], content_type: &str) {
    let latest = server.get(&format!("/channels/{channel}")).await;
    assert_eq!(latest.status, 200, "{}", latest.text());
    assert_eq!(latest.body, body);
    assert!(
        latest
            .header("content-type")
            .is_some_and(|t| t.starts_with(content_type)),
        "{content_type}: {:?}",
        latest.headers
    );
    assert_links(&answer_links(&latest), server, channel);
}

/// A refused request: a 4xx with a plain-text reason.
fn assert_refused(answer: &Answer, what: &str) {
    assert!(
        (400..500).contains(&answer.status),
        "{what}: {} {}",
        answer.status,
        answer.text()
    );
    assert!(
        answer
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "{what}: a plain-text reason: {:?}",
        answer.headers
    );
    assert!(!answer.text().trim().is_empty(), "{what}: a reason");
}

fn lease_of(verification: &Seen) -> u64 {
    let lease = verification
        .param("hub.lease_seconds")
        .unwrap_or_else(|| panic!("hub.lease_seconds in {verification:#?}"));
    lease
        .parse()
        .unwrap_or_else(|_| panic!("a numeric hub.lease_seconds: {lease}"))
}

// ----- websub.rocks' hub tests -----

/// 100: a subscription without a secret is verified (the callback's own
/// query kept) and gets the publisher's content as it was published.
#[tokio::test]
async fn hub_100_subscribe_verify_and_distribute() {
    let (server, subscriber) = local_hub_and_subscriber().await;
    let mut callback = subscriber.callback("/cb?x=1", Reply::Echo);
    let verification = subscribed(&server, &mut callback, "t100", &[]).await;
    assert_eq!(verification.param("x"), Some("1"), "{verification:#?}");
    assert_eq!(lease_of(&verification), DEFAULT_LEASE);

    let body = br#"{"event":"ping","n":1,"text":"h\u00e9llo"}"#;
    let delivery = assert_delivered(&server, &mut callback, "t100", body, "application/json").await;
    assert_eq!(delivery.query, [("x".to_owned(), "1".to_owned())]);
    assert_eq!(delivery.header("x-hub-signature"), None, "no secret given");
    callback.assert_nothing_more("one message published");
}

/// 101: with `hub.secret`, each delivery is signed with HMAC-SHA256 of its
/// body under that secret.
#[tokio::test]
async fn hub_101_subscribe_with_a_secret_signs_deliveries() {
    let (server, subscriber) = local_hub_and_subscriber().await;
    let mut callback = subscriber.callback("/signed", Reply::Echo);
    let secret = "a secret, 101 & more";
    subscribed(&server, &mut callback, "t101", &[("hub.secret", secret)]).await;

    let bodies: [&[u8]; 2] = [b"first message", br#"{"second":true}"#];
    server.publish_all("t101", &bodies).await;
    for delivery in callback.deliveries_of(&bodies).await {
        assert_signed(&delivery, secret);
        assert_ne!(
            delivery.header("x-hub-signature"),
            Some(format!("sha256={}", hmac_hex(b"another secret", &delivery.body)).as_str())
        );
        assert_links(&delivery.links(), &server, "t101");
    }
}

/// 102: parameters the hub does not know are ignored.
#[tokio::test]
async fn hub_102_extra_parameters_are_ignored() {
    let (server, subscriber) = local_hub_and_subscriber().await;
    let mut callback = subscriber.callback("/extra", Reply::Echo);
    subscribed(
        &server,
        &mut callback,
        "t102",
        &[("foo", "bar"), ("hub.extra", "1"), ("hub.x.y", "a b&c=d")],
    )
    .await;
    assert_delivered(
        &server,
        &mut callback,
        "t102",
        b"extra ignored",
        "text/plain",
    )
    .await;
}

/// 103: a subscription renewed before it expires replaces the old one:
/// the new lease and secret count, and each message comes once.
#[tokio::test]
async fn hub_103_resubscribe_before_expiry_replaces_the_subscription() {
    let (server, subscriber) = local_hub_and_subscriber().await;
    let mut callback = subscriber.callback("/again", Reply::Echo);
    let first = subscribed(
        &server,
        &mut callback,
        "t103",
        &[("hub.lease_seconds", "1000"), ("hub.secret", "old-secret")],
    )
    .await;
    assert_eq!(lease_of(&first), 1000);
    // The first confirmation is taken before the second request is made.
    server.wait_for_subscriptions(1).await;
    let second = subscribed(
        &server,
        &mut callback,
        "t103",
        &[("hub.lease_seconds", "2000"), ("hub.secret", "new-secret")],
    )
    .await;
    assert_eq!(lease_of(&second), 2000);

    // Nothing tells the subscriber when the hub has taken its second
    // confirmation; until then a message may still be signed with the old
    // secret. Probes, one at a time, until one is signed with the new one.
    let signed_with = |delivery: &Seen| {
        let signature = delivery.header("x-hub-signature").unwrap_or("");
        ["new-secret", "old-secret"]
            .into_iter()
            .find(|key| signature == format!("sha256={}", hmac_hex(key.as_bytes(), &delivery.body)))
    };
    let mut probes = 0;
    loop {
        probes += 1;
        let probe = format!("probe {probes}");
        server.publish("t103", probe.as_bytes()).await;
        let delivery = callback.delivery().await;
        assert_eq!(delivery.body, probe.as_bytes(), "in publish order, once");
        match signed_with(&delivery) {
            Some("new-secret") => break,
            Some(_) => assert!(probes < 100, "still the old secret after {probes} messages"),
            None => panic!("signed with neither secret: {delivery:#?}"),
        }
    }

    // Three messages: a second subscription would have had its copy of the
    // first one delivered long before the third one came.
    let bodies: [&[u8]; 3] = [b"one", b"two", b"three"];
    server.publish_all("t103", &bodies).await;
    let signatures: Vec<_> = callback
        .deliveries_of(&bodies)
        .await
        .iter()
        .map(|d| {
            (
                String::from_utf8_lossy(&d.body).into_owned(),
                signed_with(d),
            )
        })
        .collect();
    assert!(
        signatures.iter().all(|(_, key)| *key == Some("new-secret")),
        "each delivery (in arrival order) signed with the new secret: {signatures:?}"
    );
    callback.assert_nothing_more("one subscription");
    server.wait_for_subscriptions(1).await;
}

/// 104: an unsubscription is verified, and after it nothing is delivered.
#[tokio::test]
async fn hub_104_unsubscribe_stops_deliveries() {
    let (server, subscriber) = local_hub_and_subscriber().await;
    let mut leaving = subscriber.callback("/leaving", Reply::Echo);
    let mut witness = subscriber.callback("/witness", Reply::Echo);
    subscribed(&server, &mut leaving, "t104", &[]).await;
    subscribed(&server, &mut witness, "t104", &[]).await;
    server.publish("t104", b"before").await;
    leaving.deliveries_of(&[b"before"]).await;
    witness.deliveries_of(&[b"before"]).await;

    server.unsubscribe(&leaving, "t104").await;
    leaving
        .verification("unsubscribe", &server.topic("t104"))
        .await;
    // Nothing tells the subscriber when the hub has taken its confirmation
    // but the hub's count of active subscriptions.
    server.wait_for_subscriptions(1).await;
    server.publish_all("t104", &[b"after 1", b"after 2"]).await;
    witness.deliveries_of(&[b"after 1", b"after 2"]).await;
    leaving.assert_nothing_more("unsubscribed");
}

/// 105: a plain-text topic: deliveries and the topic's own URL carry
/// `text/plain`, the body exactly; the topic URL advertises the hub.
#[tokio::test]
async fn hub_105_plain_text_topic() {
    let server = Server::local_hub().await;
    let empty = server.get("/channels/t105").await;
    assert_eq!(empty.status, 204, "nothing published yet: {}", empty.text());
    assert!(empty.body.is_empty());
    assert_links(&answer_links(&empty), &server, "t105");

    let subscriber = Subscriber::start().await;
    let mut callback = subscriber.callback("/text", Reply::Echo);
    subscribed(&server, &mut callback, "t105", &[]).await;
    assert_delivered(&server, &mut callback, "t105", b"hello world", "text/plain").await;
    assert_latest(&server, "t105", b"hello world", "text/plain").await;
}

/// 106: a JSON topic: `application/json`, the body exactly.
#[tokio::test]
async fn hub_106_json_topic() {
    let (server, subscriber) = local_hub_and_subscriber().await;
    let mut callback = subscriber.callback("/json", Reply::Echo);
    subscribed(&server, &mut callback, "t106", &[]).await;
    let body = br#"{"a":1}"#;
    assert_delivered(&server, &mut callback, "t106", body, "application/json").await;
    assert_latest(&server, "t106", body, "application/json").await;
}

/// A payload that is not UTF-8 goes out as `application/octet-stream`.
#[tokio::test]
async fn binary_payloads_are_octet_streams() {
    let (server, subscriber) = local_hub_and_subscriber().await;
    let mut callback = subscriber.callback("/bytes", Reply::Echo);
    subscribed(&server, &mut callback, "bytes", &[]).await;
    let body = [0xff, 0x00, 0xfe, b'x', 0x80];
    assert_delivered(
        &server,
        &mut callback,
        "bytes",
        &body,
        "application/octet-stream",
    )
    .await;
}

fn answer_links(answer: &Answer) -> Vec<(String, String)> {
    answer
        .headers
        .iter()
        .filter(|(n, _)| n == "link")
        .flat_map(|(_, v)| parse_links(v))
        .collect()
}

// ----- Verification failures, leases -----

/// A verification answered with the wrong challenge, or refused, leaves
/// the subscription inactive.
#[tokio::test]
async fn a_failed_verification_does_not_activate_the_subscription() {
    let (server, subscriber) = local_hub_and_subscriber().await;
    let mut wrong = subscriber.callback("/wrong", Reply::WrongChallenge);
    let mut refusing = subscriber.callback("/refusing", Reply::Status(404));
    let mut witness = subscriber.callback("/witness", Reply::Echo);
    for callback in [&mut wrong, &mut refusing, &mut witness] {
        subscribed(&server, callback, "failed", &[]).await;
    }
    server.publish_all("failed", &[b"m1", b"m2"]).await;
    witness.deliveries_of(&[b"m1", b"m2"]).await;
    wrong.assert_no_delivery("the challenge was not echoed");
    refusing.assert_no_delivery("the verification was refused");
}

/// After its lease, a subscription gets nothing more.
#[tokio::test]
async fn deliveries_stop_when_the_lease_ends() {
    let (server, subscriber) = local_hub_and_subscriber().await;
    let mut expiring = subscriber.callback("/expiring", Reply::Echo);
    let mut witness = subscriber.callback("/witness", Reply::Echo);
    let verification = subscribed(
        &server,
        &mut expiring,
        "lease",
        &[("hub.lease_seconds", "2")],
    )
    .await;
    assert_eq!(lease_of(&verification), 2);
    subscribed(&server, &mut witness, "lease", &[]).await;
    server.publish("lease", b"within the lease").await;
    expiring.deliveries_of(&[b"within the lease"]).await;
    witness.deliveries_of(&[b"within the lease"]).await;

    // The lease runs from the verification: 2 s, and 1 s to spare.
    tokio::time::sleep_until(verification.at + Duration::from_secs(3)).await;
    server.publish_all("lease", &[b"after 1", b"after 2"]).await;
    witness.deliveries_of(&[b"after 1", b"after 2"]).await;
    expiring.assert_nothing_more("the lease has ended");
}

/// Asked leases are clamped into `--websub-min-lease`..`--websub-max-lease`,
/// the default lease too; the longest by default is 30 days.
#[tokio::test]
async fn leases_are_clamped_into_the_allowed_range() {
    let server = Server::start(&[
        "--admin-token",
        ADMIN_TOKEN,
        "--allow-private-callbacks",
        "--websub-min-lease",
        "50",
        "--websub-max-lease",
        "100",
    ])
    .await;
    let subscriber = Subscriber::start().await;
    let cases: [(&str, Option<&str>, u64); 4] = [
        ("/short", Some("10"), 50),
        ("/long", Some("1000"), 100),
        ("/inside", Some("70"), 70),
        ("/default", None, 100),
    ];
    for (path, asked, expected) in cases {
        let mut callback = subscriber.callback(path, Reply::Echo);
        let extra: Vec<(&str, &str)> = asked
            .map(|a| ("hub.lease_seconds", a))
            .into_iter()
            .collect();
        let verification = subscribed(&server, &mut callback, "clamped", &extra).await;
        assert_eq!(lease_of(&verification), expected, "{path} asked {asked:?}");
    }

    let server = Server::local_hub().await;
    let mut callback = subscriber.callback("/longest", Reply::Echo);
    let verification = subscribed(
        &server,
        &mut callback,
        "clamped",
        &[("hub.lease_seconds", "99999999")],
    )
    .await;
    assert_eq!(lease_of(&verification), DEFAULT_MAX_LEASE);
}

// ----- Refusals -----

/// Without `--allow-private-callbacks`, a loopback callback is refused at
/// once and never contacted.
#[tokio::test]
async fn loopback_callbacks_are_refused_without_the_flag() {
    let server = Server::start(&["--admin-token", ADMIN_TOKEN, "--websub-min-lease", "1"]).await;
    let subscriber = Subscriber::start().await;
    let callback = subscriber.callback("/cb", Reply::Echo);
    let answer = server.request("subscribe", &callback, "ssrf", &[]).await;
    assert_refused(&answer, "a loopback callback");
    assert!(
        answer.text().to_lowercase().contains("loopback"),
        "{}",
        answer.text()
    );
    // The refusal came before any verification could have been sent, and a
    // publish finds no subscription either.
    server.publish("ssrf", b"nobody").await;
    assert_eq!(subscriber.connections(), 0, "the callback was contacted");
}

/// Subscription requests that are not valid are refused with a 4xx and a
/// plain-text reason, and no callback is contacted.
#[tokio::test]
async fn bad_subscription_requests_are_refused_with_a_reason() {
    let (server, subscriber) = local_hub_and_subscriber().await;
    let callback = subscriber.callback("/cb", Reply::Echo);
    let cb = callback.url.as_str();
    let topic = server.topic("bad");
    let other = format!("{}/other", server.base());
    let long_secret = "s".repeat(200);
    let ftp = cb.replacen("http://", "ftp://", 1);
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "no hub.topic",
            vec![("hub.mode", "subscribe"), ("hub.callback", cb)],
        ),
        (
            "no hub.callback",
            vec![("hub.mode", "subscribe"), ("hub.topic", &topic)],
        ),
        (
            "no hub.mode",
            vec![("hub.topic", &topic), ("hub.callback", cb)],
        ),
        (
            "hub.mode=bogus",
            vec![
                ("hub.mode", "bogus"),
                ("hub.topic", &topic),
                ("hub.callback", cb),
            ],
        ),
        (
            "a topic of this server that is not a channel",
            vec![
                ("hub.mode", "subscribe"),
                ("hub.topic", &other),
                ("hub.callback", cb),
            ],
        ),
        (
            "a topic of another server",
            vec![
                ("hub.mode", "subscribe"),
                ("hub.topic", "http://elsewhere.example/channels/bad"),
                ("hub.callback", cb),
            ],
        ),
        (
            "a secret of 200 bytes",
            vec![
                ("hub.mode", "subscribe"),
                ("hub.topic", &topic),
                ("hub.callback", cb),
                ("hub.secret", &long_secret),
            ],
        ),
        (
            "a callback that is not http(s)",
            vec![
                ("hub.mode", "subscribe"),
                ("hub.topic", &topic),
                ("hub.callback", &ftp),
            ],
        ),
    ];
    for (what, pairs) in &cases {
        assert_refused(&server.websub(pairs).await, what);
    }
    server.publish("bad", b"nobody").await;
    assert_eq!(subscriber.connections(), 0, "a callback was contacted");
}

/// Without `--admin-token` there is no hub.
#[tokio::test]
async fn there_is_no_hub_without_an_admin_token() {
    let server = Server::start(&[]).await;
    let subscriber = Subscriber::start().await;
    let callback = subscriber.callback("/cb", Reply::Echo);
    let answer = server.request("subscribe", &callback, "none", &[]).await;
    assert_eq!(answer.status, 404, "{}", answer.text());
    assert_eq!(subscriber.connections(), 0);
}

// ----- The subscriber's own pieces -----

#[test]
fn hmac_hex_matches_rfc_4231() {
    // RFC 4231 test case 2.
    assert_eq!(
        hmac_hex(b"Jefe", b"what do ya want for nothing?"),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[test]
fn forms_and_queries_round_trip() {
    let pairs = [
        ("hub.topic", "http://127.0.0.1:1/channels/a?b=c&d"),
        ("x", "a b+c%é"),
        ("", ""),
    ];
    let decoded = parse_query(&form(&pairs));
    let expected: Vec<_> = pairs[..2]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .chain([(String::new(), String::new())])
        .collect();
    assert_eq!(decoded, expected);
    assert_eq!(
        parse_query("x=1&hub.mode=subscribe&hub.topic=http%3A%2F%2Fh%2Fc+d&flag"),
        [
            ("x".to_owned(), "1".to_owned()),
            ("hub.mode".to_owned(), "subscribe".to_owned()),
            ("hub.topic".to_owned(), "http://h/c d".to_owned()),
            ("flag".to_owned(), String::new()),
        ]
    );
    assert_eq!(percent_decode("%zz"), None);
    assert_eq!(percent_decode("%4"), None);
    assert_eq!(
        parse_links(r#"<http://h/websub>; rel="hub", <http://h/channels/a>; rel=self"#),
        [
            ("http://h/websub".to_owned(), "hub".to_owned()),
            ("http://h/channels/a".to_owned(), "self".to_owned()),
        ]
    );
}

/// At its most subscriptions (`--max-websub-subscriptions 1`) the hub
/// refuses the next subscriber that confirms: it is told `hub.mode=denied`
/// with a reason, and gets no deliveries.
#[tokio::test]
async fn a_full_hub_tells_the_next_subscriber_it_is_denied() {
    let mut flags = LOCAL_HUB.to_vec();
    flags.extend(["--max-websub-subscriptions", "1"]);
    let server = Server::start(&flags).await;
    let subscriber = Subscriber::start().await;
    let mut first = subscriber.callback("/first", Reply::Echo);
    let mut second = subscriber.callback("/second", Reply::Echo);
    let topic = server.topic("full");
    subscribed(&server, &mut first, "full", &[]).await;
    server.wait_for_subscriptions(1).await;

    server.subscribe(&second, "full", &[]).await;
    second.verification("subscribe", &topic).await;
    let denied = second.next().await;
    assert_eq!(denied.method, "GET", "{denied:#?}");
    assert_eq!(denied.param("hub.mode"), Some("denied"), "{denied:#?}");
    assert_eq!(denied.param("hub.topic"), Some(topic.as_str()));
    assert!(
        denied
            .param("hub.reason")
            .is_some_and(|r| r.contains("most subscriptions")),
        "{denied:#?}"
    );
    server.publish("full", b"only the first").await;
    assert_eq!(first.delivery().await.body, b"only the first");
    second.assert_no_delivery("the hub was full");
}
