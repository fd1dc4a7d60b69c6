//! `rtwire serve` against hostile clients, one test per attack class, each
//! over real loopback sockets against a real server. Limits are small
//! (KiB and hundreds of milliseconds where production has MiB and
//! seconds): the mechanism is the same, and every test ends in seconds.
//!
//! The library's own defences (frames, handshakes, a `WebSocket` whose
//! peer does not read) are in `tests/hostile.rs`; the features of the
//! server, in `tests/serve.rs`. Descriptor exhaustion and `rtwire echo`
//! are measured against the binary by `benches/hostile`.
#![cfg(feature = "serve")]

mod common;

use base64::Engine;
use bytes::Bytes;
use common::serve::{json_field, start_with as start, user_token, user_tokens, Sse};
use rtwire::hub::Since;
use rtwire::proto::{CloseCode, Keepalive, Message};
use rtwire::serve::{ServeConfig, TokenAuth};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::time::timeout;

// ----- a server under test -----

/// Bounds every wait of a test on the network: a broken defence fails the
/// test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(10);

async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {PATIENCE:?}"))
}

// ----- HTTP by hand -----

#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn parse(bytes: &[u8]) -> Answer {
        let split = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(bytes.len(), |at| at + 4);
        let head = String::from_utf8_lossy(&bytes[..split]).into_owned();
        let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        Answer {
            status,
            head,
            body: bytes[split..].to_vec(),
        }
    }

    /// A header's value; names compared without case.
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request on a fresh connection, read until the server closes it.
async fn exchange(addr: SocketAddr, request: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    within("an answer", stream.read_to_end(&mut answer))
        .await
        .unwrap();
    Answer::parse(&answer)
}

async fn get(addr: SocketAddr, path: &str) -> Answer {
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    exchange(addr, request.as_bytes()).await
}

/// Reads one response with a `Content-Length` body off a keep-alive
/// connection.
async fn read_answer(reader: &mut BufReader<TcpStream>) -> Answer {
    within("a response", async {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            let n = reader.read_line(&mut line).await.unwrap();
            assert!(n > 0, "connection closed mid-response: {head:?}");
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let mut answer = Answer::parse(head.as_bytes());
        let length: usize = answer
            .header("content-length")
            .map_or(0, |v| v.parse().unwrap());
        answer.body = vec![0; length];
        reader.read_exact(&mut answer.body).await.unwrap();
        answer
    })
    .await
}

/// A keep-alive HTTP connection.
struct Client {
    io: BufReader<TcpStream>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        Client {
            io: BufReader::new(TcpStream::connect(addr).await.unwrap()),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.io.get_mut().write_all(bytes).await.unwrap();
    }

    async fn answer(&mut self) -> Answer {
        read_answer(&mut self.io).await
    }

    async fn post(&mut self, channel: &str, body: &[u8]) -> Answer {
        self.send(&post_request(channel, "", body)).await;
        self.answer().await
    }
}

fn post_request(channel: &str, extra_headers: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST /channels/{channel} HTTP/1.1\r\nHost: x\r\n{extra_headers}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// Publishes on a connection of its own; returns the id.
async fn publish(addr: SocketAddr, channel: &str, body: &[u8]) -> String {
    let answer = Client::connect(addr).await.post(channel, body).await;
    assert_eq!(answer.status, 202, "{}", answer.text());
    json_field(&answer.text(), "id").expect("an id")
}

/// Reads a response head byte by byte, so that nothing after it is taken
/// off the socket.
async fn read_head(stream: &mut (impl AsyncRead + Unpin)) -> String {
    within("a response head", async {
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let byte = stream.read_u8().await.expect("the head");
            head.push(byte);
        }
        String::from_utf8(head).unwrap()
    })
    .await
}

// ----- /metrics -----

/// The value of the sample `name` (with its labels) in Prometheus text.
fn metric(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {metrics}"))
}

async fn metrics(addr: SocketAddr) -> String {
    let answer = get(addr, "/metrics").await;
    assert_eq!(answer.status, 200);
    answer.text()
}

/// Polls `/metrics` until `name` reads `value`, for at most `limit`;
/// returns how long it took.
async fn wait_for_metric(addr: SocketAddr, name: &str, value: u64, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let now = metrics(addr).await;
        if metric(&now, name) == value {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "{name} is not {value} after {limit:?}:\n{now}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

const SSE_OPEN: &str = "rtwire_sessions_open{transport=\"sse\"}";
const LONG_POLLS_HELD: &str = "rtwire_sessions_open{transport=\"long_poll\"}";
const WEBSOCKETS_OPEN: &str = "rtwire_sessions_open{transport=\"websocket\"}";
const DROPPED: &str = "rtwire_subscribers_dropped_total";

// ----- SSE -----

// ----- /ws -----

type Ws = rtwire::ws::WebSocket<rtwire::ws::MaybeTlsStream<TcpStream>>;

async fn ws_connect(addr: SocketAddr) -> Ws {
    rtwire::ws::connect(&format!("ws://{addr}/ws"))
        .await
        .unwrap()
        .0
}

/// Sends a command and returns the next text message.
async fn ws_command(ws: &mut Ws, command: &str) -> String {
    ws.send(Message::text(command)).await.unwrap();
    ws_next_text(ws).await
}

async fn ws_join(ws: &mut Ws, channel: &str) {
    let reply = ws_command(ws, &format!(r#"{{"op":"join","channel":"{channel}"}}"#)).await;
    let joined = format!(r#"{{"type":"joined","channel":"{channel}""#);
    assert!(reply.starts_with(&joined), "{reply}");
}

async fn ws_next_text(ws: &mut Ws) -> String {
    loop {
        match within("a /ws message", ws.recv()).await.unwrap() {
            Some(Message::Text(t)) => return t.as_str().to_owned(),
            Some(_) => continue,
            None => panic!("closed"),
        }
    }
}

/// A WebSocket upgrade request, for clients that then speak frames by hand.
const UPGRADE: &[u8] = b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

/// Opens `/ws` on `socket` and reads the 101; nothing past it is read.
async fn raw_ws(addr: SocketAddr, socket: TcpSocket) -> TcpStream {
    let mut stream = socket.connect(addr).await.unwrap();
    stream.write_all(UPGRADE).await.unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    stream
}

/// A client frame, masked as RFC 6455 §5.3 requires; short payloads only.
fn masked_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let key = [0x5a, 0xc3, 0x0f, 0x91];
    let mut frame = vec![0x80 | opcode, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&key);
    frame.extend(payload.iter().zip(key.iter().cycle()).map(|(b, k)| b ^ k));
    frame
}

/// The next server frame (opcode and payload), or `None` at the end of
/// the stream.
async fn read_frame(stream: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    match stream.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return None,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
        Err(e) => panic!("{e}"),
    }
    assert_eq!(head[0] & 0x80, 0x80, "unfragmented frames");
    assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
    let length = match head[1] & 0x7f {
        126 => usize::from(stream.read_u16().await.unwrap()),
        127 => usize::try_from(stream.read_u64().await.unwrap()).unwrap(),
        n => usize::from(n),
    };
    let mut payload = vec![0; length];
    stream.read_exact(&mut payload).await.unwrap();
    Some((head[0] & 0x0f, payload))
}

const TEXT: u8 = 0x1;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;

fn close_code(payload: &[u8]) -> u16 {
    u16::from_be_bytes([payload[0], payload[1]])
}

/// A socket with small kernel buffers, so that a client that does not
/// read backs the server up after little data.
fn small_buffered_socket() -> TcpSocket {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    socket.set_send_buffer_size(16 * 1024).unwrap();
    socket
}

// ----- attack 1: a /ws client that sends and never reads -----

/// Pings whose pongs are never read: the server answers only as fast as
/// the client reads (not at all), so it stops reading, and the client's
/// writes block after a bounded amount; a write stalled for
/// `write_timeout` then closes the connection. Others are served meanwhile.
#[tokio::test]
async fn ws_ping_flood_without_reading_is_throttled_then_cut_off() {
    const WRITE_TIMEOUT: Duration = Duration::from_millis(500);
    const ATTEMPT: usize = 50 << 20;
    let mut config = ServeConfig::default();
    config.write_timeout = WRITE_TIMEOUT;
    config.ws_keepalive = None;
    let server = start(config, TokenAuth::default()).await;
    let addr = server.addr;
    let mut attacker = raw_ws(addr, small_buffered_socket()).await;
    // 64 KiB of pings with the largest control payload: each pong is as
    // large as its ping.
    let ping = masked_frame(PING, &[b'p'; 125]);
    let chunk: Vec<u8> = ping.repeat((64 << 10) / ping.len());
    // Sent once the flood is under way: blocked, or 256 KiB written.
    let (under_way_tx, under_way_rx) = oneshot::channel();
    // The server writes nothing before the first ping: its stalled write
    // cannot have started before this.
    let flood_started = Instant::now();
    let flood = tokio::spawn(async move {
        let mut under_way_tx = Some(under_way_tx);
        let mut blocked = false;
        let mut written = 0;
        let mut offset = 0;
        let mut last_progress = Instant::now();
        let end = loop {
            if written >= ATTEMPT {
                break Ok(());
            }
            let write = attacker.write(&chunk[offset..]);
            match timeout(Duration::from_millis(100), write).await {
                Ok(Ok(0)) => break Err(std::io::ErrorKind::WriteZero.into()),
                Ok(Ok(n)) => {
                    written += n;
                    offset = (offset + n) % chunk.len();
                    last_progress = Instant::now();
                }
                Ok(Err(e)) => break Err(e),
                // Blocked for 100 ms: the server has stopped reading. (Not
                // always seen: under load the kernel's buffers may still be
                // filling when the write timeout strikes.)
                Err(_) => blocked = true,
            }
            if blocked || written >= 256 << 10 {
                if let Some(tx) = under_way_tx.take() {
                    let _ = tx.send(());
                }
            }
        };
        (written, blocked, last_progress, Instant::now(), end)
    });
    // Meanwhile a fresh client publishes and a fresh /ws subscriber gets
    // it. (If the flood ended before, the checks below say how.)
    let mut fresh = None;
    if within("the flood to get under way", under_way_rx)
        .await
        .is_ok()
    {
        let mut ws = ws_connect(addr).await;
        ws_join(&mut ws, "fresh").await;
        let id = publish(addr, "fresh", b"still served").await;
        let delivery = ws_next_text(&mut ws).await;
        assert!(
            delivery.contains(&format!("\"id\":\"{id}\"")) && delivery.contains("still served"),
            "{delivery}"
        );
        fresh = Some(ws);
    }
    let (written, blocked, last_progress, failed_at, end) =
        within("the server to close the flood", flood)
            .await
            .unwrap();
    // The writes end with the connection reset, not with 50 MiB accepted.
    let error = end.expect_err("the server read the whole flood");
    assert!(
        matches!(
            error.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
        "{error}"
    );
    // What it managed to write is bounded by socket buffers and the
    // server's 64 KiB output high water, not by what it tried.
    assert!(
        written < 16 << 20,
        "{written} bytes written (blocked for 100 ms: {blocked})"
    );
    // When the server's write began to stall cannot be seen from here; it
    // was after the flood began, and (give or take the socket buffers)
    // before the attacker's last write went through. Closed no sooner
    // than the write timeout after the one, well before ten times it
    // after the other.
    let since_start = failed_at - flood_started;
    let since_last_write = failed_at - last_progress;
    assert!(
        since_start >= WRITE_TIMEOUT,
        "closed {since_start:?} after the flood began"
    );
    assert!(
        since_last_write < WRITE_TIMEOUT * 10,
        "closed {since_last_write:?} after the last write"
    );
    assert!(fresh.is_some(), "the flood ended before it got under way");
    wait_for_metric(addr, WEBSOCKETS_OPEN, 1, Duration::from_secs(5)).await;
    // Gone before shutdown, whose close handshake would wait for it.
    drop(fresh);
    server.shutdown().await;
}

// ----- attack 2: poll answers of escape-heavy payloads -----

/// One message of a poll answer: its id, its payload, the length of its
/// JSON object.
struct PollItem {
    id: String,
    data: Vec<u8>,
    json_len: usize,
}

/// The messages of a poll answer; each must travel as `data_b64`.
fn poll_items(body: &str) -> Vec<PollItem> {
    let mut rest = body.split_once("\"messages\":[").expect("messages").1;
    let mut items = Vec::new();
    while let Some(item) = rest
        .strip_prefix(',')
        .unwrap_or(rest)
        .strip_prefix("{\"id\":\"")
    {
        let (id, after) = item.split_once('"').unwrap();
        let after = after
            .strip_prefix(",\"data_b64\":\"")
            .unwrap_or_else(|| panic!("not base64: {}", &after[..after.len().min(40)]));
        let (b64, after) = after.split_once('"').unwrap();
        rest = after.strip_prefix('}').unwrap();
        items.push(PollItem {
            id: id.to_owned(),
            data: base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
            json_len: item.len() - rest.len() + "{\"id\":\"".len(),
        });
    }
    assert!(
        rest.starts_with("],\"next\":"),
        "{}",
        &rest[..rest.len().min(80)]
    );
    items
}

/// Payloads of control bytes would grow six-fold as `\u0001` escapes; they
/// go as base64, and an answer stops near `poll_max_bytes` with
/// `"more":true`: paging from `next` yields every message exactly once.
#[tokio::test]
async fn poll_answers_are_bounded_in_bytes_and_page_through_everything() {
    const MAX: usize = 100 << 10;
    /// `],"next":"ID","more":false}` and the newline: written after the
    /// bound is checked, so an answer may pass it by this much.
    const TAIL: usize = 64;
    let mut config = ServeConfig::default();
    config.poll_max_bytes = MAX;
    let server = start(config, TokenAuth::default()).await;
    let addr = server.addr;
    // Several fit in an answer; one is larger than an answer may be (it
    // goes alone: one message is always sent).
    let sizes = [[16 << 10; 10].as_slice(), &[150 << 10], &[16 << 10; 3]].concat();
    let payloads: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| vec![0x01; size - i])
        .collect();
    let mut publisher = Client::connect(addr).await;
    let requests: Vec<u8> = payloads
        .iter()
        .flat_map(|p| post_request("c", "", p))
        .collect();
    publisher.send(&requests).await;
    let mut published = Vec::new();
    for payload in payloads {
        let answer = publisher.answer().await;
        assert_eq!(answer.status, 202);
        published.push((json_field(&answer.text(), "id").unwrap(), payload));
    }
    let mut pages: Vec<(usize, Vec<PollItem>, bool)> = Vec::new();
    let mut path = "/channels/c/poll".to_owned();
    loop {
        let answer = get(addr, &path).await;
        assert_eq!(answer.status, 200);
        let body = answer.text();
        assert!(!body.contains("\\u0001"), "escapes in the answer");
        let items = poll_items(&body);
        let more = body.ends_with(",\"more\":true}\n");
        assert!(more || body.ends_with(",\"more\":false}\n"), "{body}");
        let next = json_field(&body, "next").unwrap();
        if let Some(last) = items.last() {
            assert_eq!(next, last.id, "next is the last id sent");
        }
        if items.len() > 1 {
            assert!(body.len() <= MAX + TAIL, "{} bytes", body.len());
        }
        let done = !more;
        pages.push((body.len(), items, more));
        if done {
            break;
        }
        assert!(pages.len() <= published.len(), "paging does not end");
        path = format!("/channels/c/poll?since={next}");
    }
    // Each answer that said "more" was full: its next message did not fit.
    for pair in pages.windows(2) {
        let (len, _, more) = &pair[0];
        assert!(*more);
        let next_item = pair[1].1[0].json_len;
        assert!(
            len + 1 + next_item > MAX,
            "{len} + {next_item} fit in {MAX}"
        );
    }
    assert!(
        pages.iter().any(|(_, items, _)| items.len() > 1),
        "answers hold several messages when they fit"
    );
    let got: Vec<(String, Vec<u8>)> = pages
        .into_iter()
        .flat_map(|(_, items, _)| items)
        .map(|item| (item.id, item.data))
        .collect();
    assert_eq!(got.len(), published.len());
    assert!(got == published, "every message once, in order, intact");
    server.shutdown().await;
}

// ----- attack 3: small bodies pinning large buffers -----

/// Big and tiny bodies alternate on one keep-alive connection, pipelined:
/// each tiny body kept in a history owns an allocation of its own size,
/// not a slice of a buffer that once held a big one.
#[tokio::test]
async fn a_tiny_body_owns_exactly_its_bytes() {
    const ROUNDS: usize = 40;
    let mut config = ServeConfig::default();
    config.hub.history_messages = ROUNDS;
    let server = start(config, TokenAuth::default()).await;
    let addr = server.addr;
    let big = vec![0xab; 256 << 10];
    let mut client = Client::connect(addr).await;
    // All pipelined: each tiny request arrives right behind a big body.
    let requests: Vec<u8> = (0..ROUNDS)
        .flat_map(|i| {
            [
                post_request("a", "", &big),
                post_request("b", "", &[i as u8]),
            ]
            .concat()
        })
        .collect();
    client.send(&requests).await;
    for _ in 0..2 * ROUNDS {
        assert_eq!(client.answer().await.status, 202);
    }
    let hub = &server.hub;
    let poll = hub.history_after("b", Since::Beginning, 1000);
    assert_eq!(poll.messages.len(), ROUNDS);
    assert!(hub.history_after("a", Since::Beginning, 1000).messages[ROUNDS - 1].data == big);
    // Push them out of the history, so this test holds the only reference
    // to each message and can take its payload apart.
    for _ in 0..ROUNDS {
        hub.publish("b", Bytes::from_static(b"-"), None).unwrap();
    }
    for (i, message) in poll.messages.into_iter().enumerate() {
        let message = Arc::try_unwrap(message).expect("no one else holds the message");
        let data = message.data;
        assert_eq!(data.len(), 1);
        // No API tells a `Bytes`' allocation size, but two together do: a
        // handle that is the only one to its allocation (`is_unique`) turns
        // into a `Vec` of that very allocation, whose capacity is its size.
        // A slice of a larger buffer fails one or the other: it shares the
        // buffer with what else was cut from it (or the read buffer), or
        // it is the last owner of all of it.
        assert!(data.is_unique(), "message {i} shares its allocation");
        let allocation = Vec::from(data);
        assert_eq!(allocation, [i as u8]);
        assert!(
            allocation.capacity() <= 64,
            "a 1-byte message keeps {} bytes alive",
            allocation.capacity()
        );
    }
    // And the connection still serves.
    assert_eq!(client.post("b", b"ok").await.status, 202);
    server.shutdown().await;
}

// ----- attack 4: an SSE subscriber that never reads -----

/// An SSE client that reads nothing after the head: its queue passes
/// `queue_bytes`, the hub drops it, and its stalled write closes the
/// connection after `write_timeout`. A reading subscriber gets everything.
#[tokio::test]
async fn a_non_reading_sse_subscriber_is_dropped_and_disconnected() {
    const WRITE_TIMEOUT: Duration = Duration::from_millis(500);
    let mut config = ServeConfig::default();
    config.hub.queue_bytes = 256 << 10;
    config.write_timeout = WRITE_TIMEOUT;
    let server = start(config, TokenAuth::default()).await;
    let addr = server.addr;
    let mut attacker = small_buffered_socket().connect(addr).await.unwrap();
    attacker
        .write_all(b"GET /channels/s/events HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut attacker).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut fresh = Sse::open(addr, "/channels/s/events", None).await;
    let payload = vec![b'x'; 64 << 10];
    let mut published = 0;
    // Publish in step with the fresh subscriber (it never has more than one
    // message queued) until the hub drops the other one.
    while server.hub.stats().lagged == 0 {
        assert!(published < 1000, "never dropped");
        let id = publish(addr, "s", &payload).await;
        let event = fresh.next().await;
        assert_eq!(event.id, id);
        assert_eq!(event.data.concat().len(), payload.len());
        published += 1;
    }
    assert_eq!(
        metric(&metrics(addr).await, DROPPED),
        1,
        "only the attacker"
    );
    // Its connection is closed by the write deadline: the gauge falls back
    // to the fresh subscriber alone.
    wait_for_metric(addr, SSE_OPEN, 1, WRITE_TIMEOUT * 10).await;
    // The attacker, reading at last, finds part of the stream and its end.
    let mut received = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let end = within("the attacker's stream to end", async {
        loop {
            match attacker.read(&mut buf).await {
                Ok(0) => break Ok(()),
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(e) => break Err(e),
            }
        }
    })
    .await;
    if let Err(e) = end {
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
    }
    assert!(
        received.len() < published * payload.len(),
        "{} bytes of {published} messages",
        received.len()
    );
    // The fresh subscriber is still served.
    let id = publish(addr, "s", b"after").await;
    let event = fresh.next().await;
    assert_eq!((event.id, event.data), (id, vec!["after".to_owned()]));
    server.shutdown().await;
}

// ----- attack 5: slowloris -----

/// Writes `at_once`, then `slowly` a byte at a time every `every`, while
/// reading the answer; returns it and how long after `at_once` (or the
/// first slow byte) it began to arrive.
async fn trickle(
    addr: SocketAddr,
    at_once: &[u8],
    slowly: &[u8],
    every: Duration,
) -> (Answer, Duration) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    stream.write_all(at_once).await.unwrap();
    let started = Instant::now();
    let mut tick = tokio::time::interval(every);
    let mut sent = 0;
    let mut answer = Vec::new();
    let mut first_byte = None;
    let mut buf = [0u8; 4096];
    within("an answer to a trickle", async {
        loop {
            tokio::select! {
                _ = tick.tick(), if sent < slowly.len() => {
                    // The server may have closed already.
                    let _ = stream.write_all(&slowly[sent..sent + 1]).await;
                    sent += 1;
                }
                read = stream.read(&mut buf) => match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        first_byte.get_or_insert_with(|| started.elapsed());
                        answer.extend_from_slice(&buf[..n]);
                    }
                },
            }
        }
    })
    .await;
    let at = first_byte.expect("an answer, not a silent close");
    (Answer::parse(&answer), at)
}

/// A head trickled in a byte at a time gets 408 when `head_timeout` has
/// passed since its first byte, however steadily it trickles; a body
/// slower than `body_min_rate` gets 408 at its own deadline; an idle
/// keep-alive connection is closed without a word.
#[tokio::test]
async fn slowloris_heads_and_bodies_get_408_and_idle_connections_close() {
    const HEAD_TIMEOUT: Duration = Duration::from_millis(500);
    const IDLE: Duration = Duration::from_millis(300);
    let mut config = ServeConfig::default();
    config.head_timeout = HEAD_TIMEOUT;
    config.idle_timeout = IDLE;
    config.body_min_rate = 10_000;
    let server = start(config, TokenAuth::default()).await;
    let addr = server.addr;

    // A head of 200 bytes at 10 bytes/s would take 20 s, far under the
    // 8 KiB head limit: it is cut at 500 ms.
    let slow_head = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: {}",
        "a".repeat(160)
    );
    let every = Duration::from_millis(100);
    let (answer, at) = trickle(addr, b"", slow_head.as_bytes(), every).await;
    assert_eq!(answer.status, 408, "{answer:?}");
    assert!(answer.text().contains("head"), "{}", answer.text());
    assert!(
        at >= HEAD_TIMEOUT && at < HEAD_TIMEOUT * 10,
        "408 after {at:?}"
    );

    // The same deadline lets a head that is merely slow through.
    let ok_head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let (answer, _) = trickle(addr, b"", ok_head, Duration::from_millis(2)).await;
    assert_eq!(answer.status, 200, "{answer:?}");

    // A body of 1000 bytes has head_timeout + 1000 B / 10 kB/s = 600 ms;
    // at 20 bytes/s it would take 50 s.
    let body_deadline = HEAD_TIMEOUT + Duration::from_millis(100);
    let request = post_request("t", "", &[b'b'; 1000]);
    let (head, body) = request.split_at(request.len() - 1000);
    let (answer, at) = trickle(addr, head, body, Duration::from_millis(50)).await;
    assert_eq!(answer.status, 408, "{answer:?}");
    assert!(answer.text().contains("body"), "{}", answer.text());
    assert!(
        at >= body_deadline && at < body_deadline * 10,
        "408 after {at:?}"
    );
    // The same body at full speed is published.
    let request = post_request("t", "Connection: close\r\n", &[b'b'; 1000]);
    let answer = exchange(addr, &request).await;
    assert_eq!(answer.status, 202, "{answer:?}");

    // Idle keep-alive connections, fresh or after a request, are closed
    // quietly (no 408) after idle_timeout.
    for after_a_request in [false, true] {
        let started = Instant::now();
        let mut client = Client::connect(addr).await;
        if after_a_request {
            client
                .send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                .await;
            assert_eq!(client.answer().await.status, 200);
        }
        let mut rest = Vec::new();
        within("an idle close", client.io.read_to_end(&mut rest))
            .await
            .unwrap();
        let at = started.elapsed();
        assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
        assert!(at >= IDLE && at < IDLE * 10, "closed after {at:?}");
    }
    server.shutdown().await;
}

// ----- attack 6: filling the channel table -----

/// Malformed `/ws` commands, however large or deep, each get an `error`
/// reply with a short reason; the socket stays open and its neighbours
/// notice nothing.
#[tokio::test]
async fn malformed_ws_commands_get_error_replies_and_break_nothing() {
    let server = start(ServeConfig::default(), TokenAuth::default()).await;
    let mut attacker = ws_connect(server.addr).await;
    let mut neighbour = ws_connect(server.addr).await;
    ws_join(&mut attacker, "room").await;
    ws_join(&mut neighbour, "room").await;
    let deep = "[".repeat(500_000);
    let long = "x".repeat(500_000);
    let bad = [
        String::new(),
        "not json".to_owned(),
        r#"["join","room"]"#.to_owned(),
        format!(r#"{{"op":"join","channel":{deep}"#),
        format!(r#"{{"op":"join","channel":"other","x":{deep}"#),
        r#"{"op":"join","channel":"a","channel":"b"}"#.to_owned(),
        r#"{"op":"publish","channel":"room","data":"x","except_self":"yes"}"#.to_owned(),
        format!(r#"{{"op":"publish","channel":"room","data":"x","except_self":"{long}"}}"#),
        r#"{"op":"publish","channel":"room","data":"\ud800"}"#.to_owned(),
        r#"{"op":"dance","channel":"room"}"#.to_owned(),
    ];
    for command in &bad {
        let reply = ws_command(&mut attacker, command).await;
        assert!(
            reply.starts_with(r#"{"type":"error","reason":""#),
            "{reply}"
        );
        assert!(reply.len() < 240, "a short reason: {reply}");
    }
    // Deep nesting in an unknown field is skipped, not refused.
    let nested = format!(
        r#"{{"op":"join","channel":"deep","x":{}{}}}"#,
        "[".repeat(200_000),
        "]".repeat(200_000)
    );
    let joined = ws_command(&mut attacker, &nested).await;
    assert!(
        joined.starts_with(r#"{"type":"joined","channel":"deep""#),
        "{joined}"
    );
    let published = ws_command(
        &mut attacker,
        r#"{"op":"publish","channel":"room","data":"still \"here\" \ud83d\ude00"}"#,
    )
    .await;
    assert!(
        published.starts_with(r#"{"type":"published""#),
        "{published}"
    );
    let delivery = ws_next_text(&mut neighbour).await;
    assert!(
        delivery.starts_with(r#"{"type":"message","channel":"room""#)
            && delivery.ends_with(r#""data":"still \"here\" 😀"}"#),
        "{delivery}"
    );
}

/// A client publishing to many names cannot lock others out of a full
/// channel table: unlistened channels are evicted, channels with a
/// listener never are, and only a table of listened channels says 503.
/// A socket may join `ws_max_rooms` rooms and no more.
#[tokio::test]
async fn a_full_channel_table_evicts_the_unlistened_and_keeps_the_listened() {
    let mut config = ServeConfig::default();
    config.hub.max_channels = 100;
    config.ws_max_rooms = 5;
    let server = start(config, TokenAuth::default()).await;
    let addr = server.addr;
    let mut ws = ws_connect(addr).await;
    for room in 0..5 {
        ws_join(&mut ws, &format!("room{room}")).await;
    }
    let refused = ws_command(&mut ws, r#"{"op":"join","channel":"room5"}"#).await;
    assert!(
        refused.starts_with(r#"{"type":"error""#) && refused.contains("too many rooms"),
        "{refused}"
    );
    // A long poll holds another channel.
    let held = tokio::spawn(async move { get(addr, "/channels/held/long-poll?timeout=20").await });
    wait_for_metric(addr, LONG_POLLS_HELD, 1, PATIENCE).await;

    // 500 names on one connection, pipelined.
    let mut flooder = Client::connect(addr).await;
    let flood: Vec<u8> = (0..500)
        .flat_map(|i| post_request(&format!("flood-{i}"), "", b"x"))
        .collect();
    flooder.send(&flood).await;
    for i in 0..500 {
        let answer = flooder.answer().await;
        assert_eq!(answer.status, 202, "flood-{i}: {}", answer.text());
    }
    assert!(server.hub.channel_count() <= 100);

    // The listened channels survived: their subscribers still receive.
    for room in 0..5 {
        let channel = format!("room{room}");
        let id = publish(addr, &channel, channel.as_bytes()).await;
        let delivery = ws_next_text(&mut ws).await;
        assert_eq!(
            json_field(&delivery, "channel"),
            Some(channel),
            "{delivery}"
        );
        assert_eq!(json_field(&delivery, "id"), Some(id), "{delivery}");
    }
    let id = publish(addr, "held", b"for the long poll").await;
    let answer = held.await.unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(
        json_field(&answer.text(), "id"),
        Some(id),
        "{}",
        answer.text()
    );

    // A newcomer creates and uses a channel of its own.
    let mut sse = Sse::open(addr, "/channels/newcomer/events", None).await;
    let id = publish(addr, "newcomer", b"welcome").await;
    let event = sse.next().await;
    assert_eq!((event.id, event.data), (id, vec!["welcome".to_owned()]));
    drop((sse, ws));
    server.shutdown().await;

    // A table whose every channel has a listener refuses a new one, for a while.
    let mut config = ServeConfig::default();
    config.hub.max_channels = 4;
    config.ws_max_rooms = 5;
    let server = start(config, TokenAuth::default()).await;
    let addr = server.addr;
    let mut ws = ws_connect(addr).await;
    for room in 0..4 {
        ws_join(&mut ws, &format!("full{room}")).await;
    }
    let answer = Client::connect(addr).await.post("one-more", b"x").await;
    assert_eq!(answer.status, 503, "{}", answer.text());
    assert!(answer.header("retry-after").is_some(), "{}", answer.head);
    let refused = ws_command(&mut ws, r#"{"op":"join","channel":"full4"}"#).await;
    assert!(refused.contains("too many channels"), "{refused}");
    // Existing channels work; once one loses its listener, it makes room.
    publish(addr, "full0", b"x").await;
    assert!(ws_next_text(&mut ws)
        .await
        .contains("\"channel\":\"full0\""));
    let left = ws_command(&mut ws, r#"{"op":"leave","channel":"full3"}"#).await;
    assert!(left.contains("\"type\":\"left\""), "{left}");
    // The room's subscription ends with its task, just after the reply.
    let deadline = Instant::now() + PATIENCE;
    while server.hub.stats().subscribers > 3 {
        assert!(
            Instant::now() < deadline,
            "the left room keeps its subscriber"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    publish(addr, "one-more", b"x").await;
    drop(ws);
    server.shutdown().await;
}

// ----- attack 7: long polls whose clients are gone -----

/// Long polls held for 120 s whose clients reset their connections free
/// their slots, waiters and gauge at once.
#[tokio::test]
async fn long_polls_of_vanished_clients_are_released_at_once() {
    const POLLS: u64 = 50;
    let server = start(ServeConfig::default(), TokenAuth::default()).await;
    let addr = server.addr;
    let mut held = Vec::new();
    for i in 0..POLLS {
        let socket = TcpSocket::new_v4().unwrap();
        // Closing sends a reset, not a FIN.
        socket.set_zero_linger().unwrap();
        let mut stream = socket.connect(addr).await.unwrap();
        let request = format!(
            "GET /channels/lp{}/long-poll?timeout=120 HTTP/1.1\r\nHost: x\r\n\r\n",
            i % 5
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        held.push(stream);
    }
    wait_for_metric(addr, LONG_POLLS_HELD, POLLS, PATIENCE).await;
    assert_eq!(server.hub.stats().waiters, POLLS);
    drop(held);
    let released = wait_for_metric(addr, LONG_POLLS_HELD, 0, Duration::from_secs(2)).await;
    assert!(released < Duration::from_secs(2));
    assert_eq!(server.hub.stats().waiters, 0);
    server.shutdown().await;
}

// ----- attack 9: claimed identities -----

/// With shared tokens and signed user tokens all configured, a private
/// room opens only to its owner's token. (`tests/serve.rs`,
/// `private_rooms_need_a_signed_user_token`, covers forged and expired
/// tokens and `/ws`; here, the claims an attacker can make with the shared
/// subscribe token in hand.)
#[tokio::test]
async fn identities_come_only_from_signed_user_tokens() {
    let auth = TokenAuth {
        publish_token: Some("pub-secret".into()),
        subscribe_token: Some("sub-secret".into()),
        user_tokens: Some(user_tokens()),
    };
    let server = start(ServeConfig::default(), auth).await;
    let addr = server.addr;
    let publish = post_request(
        "user:bob",
        "Connection: close\r\nAuthorization: Bearer pub-secret\r\n",
        b"for bob",
    );
    assert_eq!(exchange(addr, &publish).await.status, 202);
    let read =
        |query: String| async move { get(addr, &format!("/channels/user:bob/poll{query}")).await };
    let cases = [
        ("?token=sub-secret&user=bob".to_owned(), 403),
        (format!("?user_token={}", user_token("alice")), 403),
        (format!("?user_token={}&user=bob", user_token("alice")), 403),
        ("?user=bob".to_owned(), 401),
        (format!("?user_token={}", user_token("bob")), 200),
    ];
    for (query, status) in cases {
        let answer = read(query.clone()).await;
        assert_eq!(answer.status, status, "{query}: {}", answer.text());
        assert_eq!(answer.text().contains("for bob"), status == 200);
    }
    let events = "GET /channels/user:bob/events?token=sub-secret&user=bob HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert_eq!(exchange(addr, events.as_bytes()).await.status, 403);
    // The publish token is a header, never a query parameter.
    let in_query = post_request("room?token=pub-secret", "Connection: close\r\n", b"x");
    assert_eq!(exchange(addr, &in_query).await.status, 401);
    server.shutdown().await;
}

// ----- attack 10: a head a byte at a time -----

/// The incremental head parser is unit-tested in `src/http.rs`; here the
/// server serves requests whose every byte is a write of its own.
#[tokio::test]
async fn requests_sent_a_byte_per_write_are_served() {
    let server = start(ServeConfig::default(), TokenAuth::default()).await;
    let addr = server.addr;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let mut requests = post_request("bytewise", "", b"one byte at a time");
    requests.extend_from_slice(
        b"GET /channels/bytewise/poll HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    for byte in requests {
        stream.write_all(&[byte]).await.unwrap();
        // Let each byte go out, and the server read it, on its own.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut reader = BufReader::new(stream);
    let published = read_answer(&mut reader).await;
    assert_eq!(published.status, 202, "{published:?}");
    let poll = read_answer(&mut reader).await;
    assert_eq!(poll.status, 200, "{poll:?}");
    assert!(
        poll.text().contains("\"data\":\"one byte at a time\""),
        "{}",
        poll.text()
    );
    server.shutdown().await;
}

// ----- attack 12: HTTP details -----

/// HEAD on a stream, HEAD's Content-Length, `Expect: 100-continue`, a body
/// over the hub's message limit, a missing Host, the bearer scheme in
/// lower case.
#[tokio::test]
async fn http_details_are_right() {
    let mut config = ServeConfig::default();
    config.hub.max_message_bytes = 1000;
    let auth = TokenAuth {
        publish_token: Some("T".into()),
        ..TokenAuth::default()
    };
    let server = start(config, auth).await;
    let addr = server.addr;

    // HEAD on an events route: the stream's head and no stream.
    let answer = exchange(
        addr,
        b"HEAD /channels/c/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.header("content-type"), Some("text/event-stream"));
    assert!(answer.body.is_empty(), "{:?}", answer.text());
    // (Its Content-Length, and the connection without `Connection: close`:
    // two tests at the end.)

    // HEAD /healthz then GET /healthz on one connection: the same length,
    // and no body after the HEAD (the GET's answer follows at once).
    let mut client = Client::connect(addr).await;
    client
        .send(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut head_answer = String::new();
    loop {
        let mut line = String::new();
        within("HEAD's answer", client.io.read_line(&mut line))
            .await
            .unwrap();
        head_answer.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let head_answer = Answer::parse(head_answer.as_bytes());
    client
        .send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let get_answer = client.answer().await;
    assert_eq!((head_answer.status, get_answer.status), (200, 200));
    assert_eq!(get_answer.text(), "ok\n");
    assert_eq!(
        head_answer.header("content-length"),
        Some(get_answer.body.len().to_string().as_str())
    );

    // Expect: 100-continue gets the interim answer before the body is sent.
    let mut client = Client::connect(addr).await;
    client
        .send(b"POST /channels/c HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer T\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        .await;
    let mut interim = [0u8; 25];
    within("100 Continue", client.io.read_exact(&mut interim))
        .await
        .unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    client.send(b"hello").await;
    assert_eq!(client.answer().await.status, 202);

    // A body within max_body_bytes but over the hub's message limit: 413.
    let big = post_request(
        "c",
        "Authorization: Bearer T\r\nConnection: close\r\n",
        &[b'x'; 1001],
    );
    let answer = exchange(addr, &big).await;
    assert_eq!(answer.status, 413, "{}", answer.text());

    // HTTP/1.1 without Host: 400.
    let answer = exchange(addr, b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n").await;
    assert_eq!(answer.status, 400, "{}", answer.text());

    // The bearer scheme is case-insensitive; a wrong token is still refused.
    for (authorization, status) in [("bearer T", 202), ("BEARER T", 202), ("bearer t", 401)] {
        let request = post_request(
            "c",
            &format!("Authorization: {authorization}\r\nConnection: close\r\n"),
            b"x",
        );
        let answer = exchange(addr, &request).await;
        assert_eq!(answer.status, status, "{authorization}: {}", answer.text());
    }
    server.shutdown().await;
}

// ----- /ws sockets that idle, or never answer -----

/// A `/ws` socket in no room is closed with 1008 after `ws_idle_timeout`;
/// one in a room that answers no ping is pinged after `interval` and
/// closed with 1001 `timeout` later.
#[tokio::test]
async fn idle_and_unresponsive_websockets_are_closed() {
    const IDLE: Duration = Duration::from_millis(300);
    let keepalive = Keepalive {
        interval: Duration::from_millis(200),
        timeout: Duration::from_millis(200),
    };

    let mut config = ServeConfig::default();
    config.ws_idle_timeout = IDLE;
    config.ws_keepalive = None;
    let server = start(config, TokenAuth::default()).await;
    let started = Instant::now();
    let mut ws = ws_connect(server.addr).await;
    let close = match within("the idle close", ws.recv()).await.unwrap() {
        Some(Message::Close(frame)) => frame.expect("a close code"),
        other => panic!("expected the idle close first, got {other:?}"),
    };
    let at = started.elapsed();
    assert_eq!(close.code, CloseCode::POLICY_VIOLATION);
    assert!(at >= IDLE && at < IDLE * 10, "closed after {at:?}");
    // Our close reply sent, the server ends the connection.
    assert!(within("the end", ws.recv()).await.unwrap().is_none());
    server.shutdown().await;

    let mut config = ServeConfig::default();
    config.ws_keepalive = Some(keepalive);
    let server = start(config, TokenAuth::default()).await;
    let mut stream = raw_ws(server.addr, TcpSocket::new_v4().unwrap()).await;
    // In a room, so the idle timeout does not apply.
    let join = masked_frame(TEXT, br#"{"op":"join","channel":"k"}"#);
    stream.write_all(&join).await.unwrap();
    let joined_at = Instant::now();
    let (opcode, joined) = within("joined", read_frame(&mut stream)).await.unwrap();
    assert_eq!(opcode, TEXT);
    assert!(joined.starts_with(br#"{"type":"joined""#));
    let (opcode, _) = within("a ping", read_frame(&mut stream)).await.unwrap();
    assert_eq!(opcode, PING);
    let pinged = joined_at.elapsed();
    assert!(pinged >= keepalive.interval, "pinged after {pinged:?}");
    // Never answered: closed with 1001, then the end of the stream.
    let (opcode, payload) = within("a close", read_frame(&mut stream)).await.unwrap();
    let closed = joined_at.elapsed();
    assert_eq!(opcode, CLOSE);
    assert_eq!(close_code(&payload), 1001);
    let silence = keepalive.interval + keepalive.timeout;
    assert!(
        closed >= silence && closed < silence * 10,
        "closed after {closed:?}"
    );
    assert!(within("the end", read_frame(&mut stream)).await.is_none());
    server.shutdown().await;
}

// ----- server bugs these tests found, now fixed -----

/// A HEAD answer on an events route carries the GET's header fields, and
/// the GET's answer has no `Content-Length` (an endless stream): neither
/// may the HEAD's (RFC 9110 §9.3.2, §8.6: it would claim an empty body).
#[tokio::test]
async fn head_on_an_events_route_claims_no_length() {
    let server = start(ServeConfig::default(), TokenAuth::default()).await;
    let head = b"HEAD /channels/c/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let answer = exchange(server.addr, head).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.header("content-length"), None, "{}", answer.head);
    server.shutdown().await;
}

/// A HEAD answer on an events route says `Connection: close` (the GET's
/// body would be an endless stream), so the server must close the
/// connection after it (RFC 9112 §9.6). It does not when the client
/// asked for keep-alive: it waits for another request until the idle
/// timeout.
#[tokio::test]
async fn head_on_an_events_route_closes_the_connection() {
    let server = start(ServeConfig::default(), TokenAuth::default()).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"HEAD /channels/c/events HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("Connection: close\r\n"), "{head}");
    let mut rest = Vec::new();
    let end = timeout(Duration::from_secs(2), stream.read_to_end(&mut rest)).await;
    assert!(
        end.is_ok(),
        "the connection is still open 2 s after `Connection: close`"
    );
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    server.shutdown().await;
}

/// Found by `a_full_channel_table_...` (a flood of 500 keep-alive POSTs
/// took 20 s): since 84a4c5f (`Acceptor`) the server no
/// longer sets TCP_NODELAY on accepted connections. A response goes out
/// as two writes (head, then the body from its own buffer); Nagle holds
/// the body until the head is acknowledged, and the client delays that
/// ACK by up to 40 ms: every keep-alive response after the first takes
/// about 44 ms on loopback instead of well under one.
#[tokio::test]
async fn keep_alive_responses_are_not_held_back() {
    let server = start(ServeConfig::default(), TokenAuth::default()).await;
    let mut client = Client::connect(server.addr).await;
    client.io.get_ref().set_nodelay(true).unwrap();
    let mut times = Vec::new();
    for _ in 0..21 {
        let started = Instant::now();
        assert_eq!(client.post("nagle", b"x").await.status, 202);
        times.push(started.elapsed());
    }
    times.sort();
    let median = times[times.len() / 2];
    assert!(
        median < Duration::from_millis(20),
        "median keep-alive round trip {median:?}"
    );
    server.shutdown().await;
}
