//! A `rtwire serve` on a free loopback port, for the integration tests.

use rtwire::hub::Hub;
use rtwire::serve::{ServeConfig, Server, TokenAuth};
use std::net::SocketAddr;
use tokio::sync::oneshot;

/// A running server; [`Running::shutdown`] stops it gracefully.
pub struct Running {
    pub addr: SocketAddr,
    /// The server's hub, kept before `run_until` takes the server.
    pub hub: Hub,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
}

impl Running {
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.done.await;
    }
}

/// Starts a server with `config` (its address replaced by 127.0.0.1:0).
pub async fn start_with(mut config: ServeConfig, auth: TokenAuth) -> Running {
    config.addr = "127.0.0.1:0".parse().unwrap();
    let server = Server::bind(config, auth).await.unwrap();
    let addr = server.local_addr().unwrap();
    let hub = server.hub();
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(async move {
        server
            .run_until(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    Running {
        addr,
        hub,
        stop: Some(stop),
        done,
    }
}

// ----- HTTP by hand -----

use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// How long a test waits for one event or message before it fails.
pub const EVENT_DEADLINE: Duration = Duration::from_secs(20);

/// Sends `request` on `stream` and reads the answer to the end: status,
/// head, body.
pub async fn exchange_on(mut stream: TcpStream, request: &str) -> (u16, String, String) {
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

/// A whole HTTP exchange on a fresh connection: status, head, body.
pub async fn exchange(addr: SocketAddr, request: &str) -> (u16, String, String) {
    exchange_on(TcpStream::connect(addr).await.unwrap(), request).await
}

/// A `GET` that closes its connection.
pub fn get_request(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
}

/// A `POST` of `body` that closes its connection.
pub fn post_request(path: &str, authorization: Option<&str>, body: &str) -> String {
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

pub async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    exchange(addr, &get_request(path)).await
}

/// A publish by `POST /channels/{channel}`: its status and body.
pub async fn try_publish(addr: SocketAddr, channel: &str, body: &str) -> (u16, String) {
    let request = post_request(&format!("/channels/{channel}"), None, body);
    let (status, _, answer) = exchange(addr, &request).await;
    (status, answer)
}

/// A publish that must be accepted: its id.
pub async fn publish(addr: SocketAddr, channel: &str, body: &str) -> String {
    let (status, answer) = try_publish(addr, channel, body).await;
    assert_eq!(status, 202, "{answer}");
    json_field(&answer, "id").expect("an id")
}

/// The string value of `"key":"value"` in a JSON text (the ids, names and
/// base64 the tests look for hold no escapes).
pub fn json_field(json: &str, key: &str) -> Option<String> {
    let start = json.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let end = json[start..].find('"')? + start;
    Some(json[start..end].to_owned())
}

/// Every `"id":"..."` in a JSON text, in order.
pub fn json_ids(json: &str) -> Vec<String> {
    json.match_indices("\"id\":\"")
        .map(|(at, _)| {
            let start = at + 6;
            let end = json[start..].find('"').unwrap() + start;
            json[start..end].to_owned()
        })
        .collect()
}

// ----- SSE -----

/// An open SSE stream read event by event.
pub struct Sse {
    lines: tokio::io::Lines<BufReader<TcpStream>>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    pub id: String,
    pub event: String,
    pub data: Vec<String>,
}

impl Sse {
    /// Opens `path` (resuming after `last_event_id`) and reads its head:
    /// once this returns, the server has subscribed the stream.
    pub async fn open(addr: SocketAddr, path: &str, last_event_id: Option<&str>) -> Sse {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let resume = last_event_id
            .map(|id| format!("Last-Event-ID: {id}\r\n"))
            .unwrap_or_default();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{resume}\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut lines = BufReader::new(stream).lines();
        let status = lines.next_line().await.unwrap().unwrap();
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        let mut content_type = String::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.is_empty() {
                break;
            }
            if let Some(v) = line.strip_prefix("Content-Type: ") {
                content_type = v.to_owned();
            }
        }
        assert_eq!(content_type, "text/event-stream");
        Sse { lines }
    }

    /// The next event, skipping comments and the retry advice, or `None`
    /// when the server ended the stream.
    pub async fn next_or_end(&mut self) -> Option<SseEvent> {
        let mut event = SseEvent::default();
        loop {
            let line = tokio::time::timeout(EVENT_DEADLINE, self.lines.next_line())
                .await
                .expect("an event in time")
                .ok()
                .flatten()?;
            if line.is_empty() {
                // An event without data is not dispatched (WHATWG HTML
                // §9.2.6): the stream's starting `id:` line alone.
                if !event.data.is_empty() {
                    return Some(event);
                }
                event = SseEvent::default();
                continue;
            }
            if let Some(v) = line.strip_prefix("id: ") {
                event.id = v.to_owned();
            } else if let Some(v) = line.strip_prefix("event: ") {
                event.event = v.to_owned();
            } else if let Some(v) = line.strip_prefix("data: ") {
                event.data.push(v.to_owned());
            }
        }
    }

    /// The next event of a stream that must stay open.
    pub async fn next(&mut self) -> SseEvent {
        self.next_or_end().await.expect("stream open")
    }
}

// ----- /ws -----

pub type Ws = rtwire::ws::WebSocket<rtwire::ws::MaybeTlsStream<TcpStream>>;

/// A WebSocket on `/ws{query}`.
pub async fn ws_connect(addr: SocketAddr, query: &str) -> Ws {
    rtwire::ws::connect(&format!("ws://{addr}/ws{query}"))
        .await
        .unwrap()
        .0
}

/// The next text message, skipping pings and binary; a close fails the test.
pub async fn ws_next_text(ws: &mut Ws) -> String {
    use rtwire::proto::Message;
    loop {
        let message = tokio::time::timeout(EVENT_DEADLINE, ws.recv())
            .await
            .expect("a message in time")
            .unwrap();
        match message {
            Some(Message::Text(t)) => return t.as_str().to_owned(),
            Some(Message::Close(frame)) => panic!("closed: {frame:?}"),
            Some(_) => continue,
            None => panic!("closed"),
        }
    }
}

// ----- identities -----

use rtwire::serve::UserTokens;

/// The secret the tests' servers verify user tokens with.
pub const USER_SECRET: &[u8] = b"the integration tests' user secret";

pub fn user_tokens() -> UserTokens {
    UserTokens::new(USER_SECRET).unwrap()
}

/// A user token for `user`, valid for an hour.
pub fn user_token(user: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    user_tokens().mint(user, now + 3600).unwrap()
}

/// `from` sends "psst" to `user`'s private room over `/ws`: the
/// acknowledgement names the room and `to` (the user's socket) gets it.
pub async fn ws_send_psst(from: &mut Ws, to: &mut Ws, user: &str) {
    use rtwire::proto::Message;
    let command = format!(r#"{{"op":"send","user":"{user}","data":"psst"}}"#);
    from.send(Message::text(command)).await.unwrap();
    let ack = ws_next_text(from).await;
    let room = format!("user:{user}");
    assert!(
        ack.contains("\"type\":\"published\"") && ack.contains(&room),
        "{ack}"
    );
    let got = ws_next_text(to).await;
    assert!(
        got.contains(&format!("\"channel\":\"{room}\"")) && got.contains("psst"),
        "{got}"
    );
}

/// Nothing is queued for `ws`: the next message it gets is the error
/// answering a bad command sent now.
pub async fn ws_assert_nothing_queued(ws: &mut Ws) {
    use rtwire::proto::Message;
    ws.send(Message::text("not json")).await.unwrap();
    let next = ws_next_text(ws).await;
    assert!(next.contains("\"type\":\"error\""), "{next}");
}
