//! The subscribers, one kind per transport: how each subscribes, and how
//! each receives until it has every message, checking that they come
//! exactly once and in order.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::Duration;

use rtwire::handshake::WsUrl;
use rtwire::proto::deflate::DeflateConfig;
use rtwire::proto::{Message, Utf8Bytes};
use rtwire::ws::{client_handshake, ConnectConfig, WebSocket};
use rtwire_load::histogram::Histogram;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::counted::{Counted, Traffic};
use crate::formats::{poll_answer, sse_event, ws_delivery, ws_joined, SseEvent};
use crate::http::{self, HttpConn};
use crate::nchan;
use crate::options::Server;
use crate::payload::{self, now_ns};

/// The ways to subscribe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// `GET /channels/{name}/poll?since=ID` every poll interval.
    Poll,
    /// `GET /channels/{name}/long-poll?since=ID`, again as soon as answered.
    LongPoll,
    /// `GET /channels/{name}/events`.
    Sse,
    /// `GET /ws` and a `join` command.
    Ws,
    /// The same, offering permessage-deflate as browsers do.
    WsDeflate,
}

impl Transport {
    pub const ALL: [Transport; 5] = [
        Transport::Poll,
        Transport::LongPoll,
        Transport::Sse,
        Transport::Ws,
        Transport::WsDeflate,
    ];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Poll => "poll",
            Transport::LongPoll => "long-poll",
            Transport::Sse => "sse",
            Transport::Ws => "ws",
            Transport::WsDeflate => "ws-deflate",
        }
    }

    /// The name in the tables.
    pub fn label(self) -> &'static str {
        match self {
            Transport::Poll => "short polling",
            Transport::LongPoll => "long polling",
            Transport::Sse => "SSE",
            Transport::Ws => "WebSocket",
            Transport::WsDeflate => "WebSocket + deflate",
        }
    }

    pub fn parse(name: &str) -> Result<Transport, String> {
        Transport::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| {
                format!("unknown transport {name:?} (poll, long-poll, sse, ws, ws-deflate)")
            })
    }
}

/// What all the subscribers of a run share.
#[derive(Clone, Debug)]
pub struct Setup {
    pub server: Server,
    pub addr: SocketAddr,
    /// The `Host` header: `127.0.0.1:PORT`.
    pub host: String,
    pub channel: String,
    /// Every subscriber starts after this id, the last one published before
    /// the run: polls ask `since` it, SSE sends it as `Last-Event-ID`, and
    /// `/ws` joins `since` it. No message can then fall between
    /// subscribing and the first publish, however late a request reaches
    /// the server. (For Nchan: its message id, sent as `Last-Event-ID` by
    /// every kind of subscriber.)
    pub since: String,
    /// Messages published; each subscriber stops when it has them all.
    pub messages: u32,
    pub size: usize,
    pub poll_interval: Duration,
}

/// The deliveries of all the subscribers of a run.
#[derive(Debug, Default)]
pub struct Deliveries {
    pub count: u64,
    /// Receipt time minus publish time, in nanoseconds.
    pub latency: Histogram,
    /// Per message (by sequence number): the longest of its latencies.
    pub slowest: Vec<u64>,
}

impl Deliveries {
    fn record(&mut self, seq: u32, latency: u64) {
        self.count += 1;
        self.latency.record(latency);
        let seq = seq as usize;
        if self.slowest.len() <= seq {
            self.slowest.resize(seq + 1, 0);
        }
        self.slowest[seq] = self.slowest[seq].max(latency);
    }
}

/// What one subscriber made and carried, up to its last message.
#[derive(Clone, Copy, Debug, Default)]
pub struct Report {
    pub traffic: Traffic,
    /// HTTP requests, the WebSocket upgrade and the SSE GET included.
    pub requests: u32,
}

/// A subscriber, subscribed and ready to receive.
pub enum Subscriber {
    Poll(Polling),
    /// The first long poll is already sent.
    LongPoll(Polling),
    Sse(HttpConn),
    Ws(Box<WebSocket<Counted<TcpStream>>>),
    /// Nchan's long poll; the first is already sent.
    NchanLongPoll(nchan::LongPoll),
    /// Nchan's WebSocket: each message's payload in one text frame. (Its
    /// SSE is rtwire's format: `Sse`.)
    NchanWs(Box<WebSocket<Counted<TcpStream>>>),
}

/// A polling subscriber's connection, kept alive between requests.
#[derive(Debug)]
pub struct Polling {
    pub conn: HttpConn,
    /// The id to ask from next.
    pub since: String,
    pub requests: u32,
}

impl Subscriber {
    /// Connects and subscribes. Afterwards a message published is received:
    /// `/ws` got its `joined`, SSE its `retry:` (the server subscribes before
    /// it writes the head), the first long poll is written, and a short
    /// poller has made its first (empty) poll.
    pub async fn open(transport: Transport, setup: &Setup) -> Result<Subscriber, String> {
        if setup.server == Server::Nchan {
            return nchan::open(transport, setup).await;
        }
        match transport {
            Transport::Poll => {
                let mut polling = Polling::connect(setup).await?;
                if polling.poll(setup, "poll").await? > 0 {
                    return Err("messages arrived before the first publish".into());
                }
                Ok(Subscriber::Poll(polling))
            }
            Transport::LongPoll => {
                let mut polling = Polling::connect(setup).await?;
                polling.send(setup, "long-poll", "").await?;
                Ok(Subscriber::LongPoll(polling))
            }
            Transport::Sse => open_sse(setup).await.map(Subscriber::Sse),
            Transport::Ws => open_ws(setup, false).await.map(Subscriber::Ws),
            Transport::WsDeflate => open_ws(setup, true).await.map(Subscriber::Ws),
        }
    }

    /// Receives until all `setup.messages` arrived, recording each in
    /// `deliveries`. A short poller polls at `first_poll` and every poll
    /// interval after. Stops at the first message out of order, repeated,
    /// or malformed. The connection stays open: the caller closes it by
    /// dropping the subscriber, once closing disturbs nothing.
    pub async fn run(
        &mut self,
        setup: &Setup,
        first_poll: Instant,
        deliveries: &RefCell<Deliveries>,
    ) -> Result<Report, String> {
        let mut inbox = Inbox {
            next: 0,
            setup,
            deliveries,
        };
        match self {
            Subscriber::Poll(polling) => polling.run_short(&mut inbox, first_poll).await,
            Subscriber::LongPoll(polling) => polling.run_long(&mut inbox).await,
            Subscriber::Sse(conn) => run_sse(conn, &mut inbox).await,
            Subscriber::Ws(ws) => run_ws(ws, &mut inbox).await,
            Subscriber::NchanLongPoll(polling) => polling.run(&mut inbox).await,
            Subscriber::NchanWs(ws) => nchan::run_ws(ws, &mut inbox).await,
        }
    }
}

/// Checks and records what arrives at one subscriber.
pub struct Inbox<'a> {
    /// The sequence number expected next.
    next: u32,
    setup: &'a Setup,
    deliveries: &'a RefCell<Deliveries>,
}

impl Inbox<'_> {
    /// One payload, received at `now` (ns on the payload clock).
    pub fn accept(&mut self, data: &[u8], now: u64) -> Result<(), String> {
        let stamp = payload::check(data, self.setup.size)?;
        if stamp.seq != self.next || self.done() {
            return Err(format!(
                "message {} arrived when {} was expected: lost, repeated or out of order",
                stamp.seq, self.next
            ));
        }
        self.next += 1;
        self.deliveries
            .borrow_mut()
            .record(stamp.seq, now.saturating_sub(stamp.ns));
        Ok(())
    }

    pub fn done(&self) -> bool {
        self.next >= self.setup.messages
    }

    pub fn setup(&self) -> &Setup {
        self.setup
    }
}

impl Polling {
    pub async fn connect(setup: &Setup) -> Result<Polling, String> {
        Ok(Polling {
            conn: HttpConn::connect(setup.addr).await?,
            since: setup.since.clone(),
            requests: 0,
        })
    }

    /// Writes a `poll` or `long-poll` request from `since`; `query` is
    /// appended to the query string (`&timeout=S`).
    pub async fn send(&mut self, setup: &Setup, route: &str, query: &str) -> Result<(), String> {
        let target = format!(
            "/channels/{}/{route}?since={}{query}",
            setup.channel, self.since
        );
        self.requests += 1;
        self.conn.send(&http::get(&setup.host, &target, "")).await
    }

    /// Reads an answer, moves `since` on, and hands each payload to
    /// `accept`; returns how many there were.
    pub async fn answer(
        &mut self,
        mut accept: impl FnMut(&[u8], u64) -> Result<(), String>,
    ) -> Result<usize, String> {
        let (status, body) = self.conn.response().await?;
        let now = now_ns();
        if status != 200 {
            return Err(format!("poll answered {status}"));
        }
        let answer = poll_answer(body)?;
        for data in &answer.messages {
            accept(data, now)?;
        }
        self.since = answer.next;
        Ok(answer.messages.len())
    }

    /// One request and its answer; the payloads are dropped (for polls
    /// made before anything is published).
    pub async fn poll(&mut self, setup: &Setup, route: &str) -> Result<usize, String> {
        self.send(setup, route, "").await?;
        self.answer(|_, _| Ok(())).await
    }

    async fn run_short(
        &mut self,
        inbox: &mut Inbox<'_>,
        first_poll: Instant,
    ) -> Result<Report, String> {
        let mut at = first_poll;
        while !inbox.done() {
            // A late answer does not shift the schedule: the next poll goes
            // at once instead.
            tokio::time::sleep_until(at).await;
            self.send(inbox.setup, "poll", "").await?;
            self.answer(|data, now| inbox.accept(data, now)).await?;
            at += inbox.setup.poll_interval;
        }
        Ok(self.report())
    }

    async fn run_long(&mut self, inbox: &mut Inbox<'_>) -> Result<Report, String> {
        loop {
            // A long poll is always outstanding here: the first was sent by
            // `open`, the others just below.
            self.answer(|data, now| inbox.accept(data, now)).await?;
            if inbox.done() {
                return Ok(self.report());
            }
            self.send(inbox.setup, "long-poll", "").await?;
        }
    }

    fn report(&self) -> Report {
        Report {
            traffic: self.conn.traffic(),
            requests: self.requests,
        }
    }
}

async fn open_sse(setup: &Setup) -> Result<HttpConn, String> {
    let mut conn = HttpConn::connect(setup.addr).await?;
    let target = format!("/channels/{}/events", setup.channel);
    let resume = format!("Last-Event-ID: {}\r\n", setup.since);
    conn.send(&http::get(&setup.host, &target, &resume)).await?;
    let head = conn.head().await?;
    if head.status != 200 {
        return Err(format!("SSE answered {}", head.status));
    }
    // The stream starts with `retry:`, written with the head.
    loop {
        if let Some(event) = sse_event(conn.buffered()) {
            let (event, len) = event?;
            if event != SseEvent::Control {
                return Err("an SSE message before retry:".into());
            }
            conn.consume(len);
            return Ok(conn);
        }
        conn.read_more().await?;
    }
}

async fn run_sse(conn: &mut HttpConn, inbox: &mut Inbox<'_>) -> Result<Report, String> {
    loop {
        // Every event of one read arrived at the same time.
        let now = now_ns();
        while let Some(event) = sse_event(conn.buffered()) {
            let (event, len) = event?;
            if let SseEvent::Data(data) = event {
                inbox.accept(data, now)?;
            }
            conn.consume(len);
        }
        if inbox.done() {
            return Ok(Report {
                traffic: conn.traffic(),
                requests: 1,
            });
        }
        conn.read_more().await?;
    }
}

/// Waits for the next SSE event that is not a message (the heartbeat);
/// a message is an error.
pub async fn next_sse_control(conn: &mut HttpConn) -> Result<(), String> {
    loop {
        if let Some(event) = sse_event(conn.buffered()) {
            let (event, len) = event?;
            if event != SseEvent::Control {
                return Err("an SSE message while idle".into());
            }
            conn.consume(len);
            return Ok(());
        }
        conn.read_more().await?;
    }
}

async fn open_ws(
    setup: &Setup,
    deflate: bool,
) -> Result<Box<WebSocket<Counted<TcpStream>>>, String> {
    let stream = http::connect(setup.addr).await?;
    let url = WsUrl::parse(&format!("ws://{}/ws", setup.host)).map_err(|e| e.to_string())?;
    let mut config = ConnectConfig::default();
    if deflate {
        // What browsers offer: "permessage-deflate; client_max_window_bits".
        config = config.deflate(DeflateConfig::default());
    }
    let (mut ws, response) = client_handshake(Counted::new(stream), &url, &config)
        .await
        .map_err(|e| format!("WebSocket handshake: {e}"))?;
    if deflate && response.headers.get("sec-websocket-extensions").is_none() {
        return Err("the server declined permessage-deflate".into());
    }
    let join = format!(
        r#"{{"op":"join","channel":"{}","since":"{}"}}"#,
        setup.channel, setup.since
    );
    ws.send(Message::text(join))
        .await
        .map_err(|e| format!("WebSocket send: {e}"))?;
    let reply = next_ws_text(&mut ws).await?;
    ws_joined(reply.as_str())?;
    Ok(Box::new(ws))
}

async fn run_ws(
    ws: &mut WebSocket<Counted<TcpStream>>,
    inbox: &mut Inbox<'_>,
) -> Result<Report, String> {
    while !inbox.done() {
        let text = next_ws_text(ws).await?;
        inbox.accept(ws_delivery(text.as_str())?, now_ns())?;
    }
    Ok(Report {
        traffic: ws.get_ref().traffic(),
        requests: 1,
    })
}

/// The next text message; pings (answered by the socket) and pongs are
/// skipped, anything else is an error.
pub async fn next_ws_text(ws: &mut WebSocket<Counted<TcpStream>>) -> Result<Utf8Bytes, String> {
    loop {
        match ws.recv().await {
            Ok(Some(Message::Text(text))) => return Ok(text),
            Ok(Some(Message::Ping(_) | Message::Pong(_))) => {}
            Ok(Some(other)) => return Err(format!("unexpected WebSocket message {other:?}")),
            Ok(None) => return Err("the server closed the WebSocket".into()),
            Err(e) => return Err(format!("WebSocket: {e}")),
        }
    }
}
