//! Nchan (nginx's pub/sub module) as the server, configured as
//! benches/nchan.conf.in: how its subscribers subscribe and receive, and
//! its channel info, which stands in for `rtwire serve`'s `/metrics`.
//!
//! The protocol, from Nchan's README (1.3.x), and checked against Debian's
//! 1.3.6 (what the README does not say is marked "seen"):
//! - every kind of subscriber resumes after the message whose id it sends
//!   as `Last-Event-ID` (`nchan_subscriber_last_message_id`, by default
//!   that header or the `last_event_id` argument), when it sends no
//!   `If-Modified-Since` / `If-None-Match`;
//! - a long poll is answered with one message, its payload as the body,
//!   and `Last-Modified` and `Etag`: the next request sends them back as
//!   `If-Modified-Since` and `If-None-Match` to get the message after it;
//! - EventSource (`Accept: text/event-stream`) sends `id:` and `data:`
//!   lines, the payload as it was published; the stream starts with a
//!   `: hi` comment (seen);
//! - a WebSocket subscriber gets each payload in one text frame, no
//!   envelope;
//! - `GET` on the publisher location answers with the channel's info,
//!   JSON with `Accept: text/json` (`"subscribers": N`, `"last_message_id":
//!   "SECONDS:TAG"`); the count covers every kind of subscriber, long
//!   polls held included (seen).

use std::net::SocketAddr;

use rtwire::handshake::WsUrl;
use rtwire::ws::{client_handshake, ConnectConfig, WebSocket};
use tokio::net::TcpStream;

use crate::counted::Counted;
use crate::formats::nchan_channel_info;
use crate::http::{self, HttpConn};
use crate::payload::now_ns;
use crate::subscriber::{
    next_sse_control, next_ws_text, Inbox, Report, Setup, Subscriber, Transport,
};

/// Subscribes on `/sub/CHANNEL`, after the message `setup.since`. Unlike
/// rtwire's `joined` and `retry:`, nothing Nchan sends is documented to
/// say that the subscription is in place (a WebSocket gets only the 101;
/// the SSE stream's `: hi` is not documented at all), so the caller waits
/// for the channel's subscriber count: [`subscribers`].
pub async fn open(transport: Transport, setup: &Setup) -> Result<Subscriber, String> {
    match transport {
        Transport::LongPoll => {
            let mut polling = LongPoll::connect(setup).await?;
            polling.send(setup).await?;
            Ok(Subscriber::NchanLongPoll(polling))
        }
        Transport::Sse => open_sse(setup).await.map(Subscriber::Sse),
        Transport::Ws => open_ws(setup).await.map(Subscriber::NchanWs),
        other => Err(format!("Nchan: transport {} not offered", other.name())),
    }
}

/// The subscribers Nchan counts on `channel`, from the publisher
/// location's channel info, on a connection of its own.
pub async fn subscribers(addr: SocketAddr, host: &str, channel: &str) -> Result<u64, String> {
    let mut conn = HttpConn::connect(addr).await?;
    let target = format!("/pub/{channel}");
    conn.send(&http::get(host, &target, "Accept: text/json\r\n"))
        .await?;
    let (status, body) = conn.response().await?;
    if status != 200 {
        return Err(format!("GET {target}: status {status}"));
    }
    Ok(nchan_channel_info(body)?.subscribers)
}

fn sub_target(setup: &Setup) -> String {
    format!("/sub/{}", setup.channel)
}

/// A long-polling subscriber's connection, kept alive between requests.
#[derive(Debug)]
pub struct LongPoll {
    conn: HttpConn,
    /// The headers that ask for the message after the last one: first
    /// `Last-Event-ID: SINCE`, then the last answer's `Last-Modified` and
    /// `Etag` as `If-Modified-Since` and `If-None-Match`.
    resume: String,
    requests: u32,
}

impl LongPoll {
    async fn connect(setup: &Setup) -> Result<LongPoll, String> {
        Ok(LongPoll {
            conn: HttpConn::connect(setup.addr).await?,
            resume: format!("Last-Event-ID: {}\r\n", setup.since),
            requests: 0,
        })
    }

    async fn send(&mut self, setup: &Setup) -> Result<(), String> {
        self.requests += 1;
        let request = http::get(&setup.host, &sub_target(setup), &self.resume);
        self.conn.send(&request).await
    }

    /// Reads one answer (one message: Nchan answers a long poll with the
    /// next message only, however many are waiting), hands it to the
    /// inbox, and keeps its validators for the next request.
    async fn answer(&mut self, inbox: &mut Inbox<'_>) -> Result<(), String> {
        let (status, [modified, etag], body) = self
            .conn
            .response_with_headers(["last-modified", "etag"])
            .await?;
        let now = now_ns();
        if status != 200 {
            return Err(format!("Nchan long poll answered {status}"));
        }
        let (Some(modified), Some(etag)) = (modified, etag) else {
            return Err("Nchan long poll answered without Last-Modified and Etag".into());
        };
        inbox.accept(body, now)?;
        self.resume = format!("If-Modified-Since: {modified}\r\nIf-None-Match: {etag}\r\n");
        Ok(())
    }

    pub async fn run(&mut self, inbox: &mut Inbox<'_>) -> Result<Report, String> {
        loop {
            // A long poll is always outstanding here: the first was sent by
            // `open`, the others just below.
            self.answer(inbox).await?;
            if inbox.done() {
                return Ok(Report {
                    traffic: self.conn.traffic(),
                    requests: self.requests,
                });
            }
            self.send(inbox.setup()).await?;
        }
    }
}

async fn open_sse(setup: &Setup) -> Result<HttpConn, String> {
    let mut conn = HttpConn::connect(setup.addr).await?;
    let headers = format!(
        "Accept: text/event-stream\r\nLast-Event-ID: {}\r\n",
        setup.since
    );
    conn.send(&http::get(&setup.host, &sub_target(setup), &headers))
        .await?;
    let head = conn.head().await?;
    if head.status != 200 {
        return Err(format!("Nchan SSE answered {}", head.status));
    }
    // The stream starts with a `: hi` comment; the events after it are in
    // rtwire's format (`id:`, one `data:` line), so the subscriber is an
    // `Sse` one and rtwire's reader reads it.
    next_sse_control(&mut conn).await?;
    Ok(conn)
}

async fn open_ws(setup: &Setup) -> Result<Box<WebSocket<Counted<TcpStream>>>, String> {
    let stream = http::connect(setup.addr).await?;
    let url = format!("ws://{}{}", setup.host, sub_target(setup));
    let url = WsUrl::parse(&url).map_err(|e| e.to_string())?;
    let config = ConnectConfig::default().header("Last-Event-ID", setup.since.clone());
    let (ws, _response) = client_handshake(Counted::new(stream), &url, &config)
        .await
        .map_err(|e| format!("WebSocket handshake: {e}"))?;
    Ok(Box::new(ws))
}

/// Every text frame is one payload, as published.
pub async fn run_ws(
    ws: &mut WebSocket<Counted<TcpStream>>,
    inbox: &mut Inbox<'_>,
) -> Result<Report, String> {
    while !inbox.done() {
        let text = next_ws_text(ws).await?;
        inbox.accept(text.as_bytes(), now_ns())?;
    }
    Ok(Report {
        traffic: ws.get_ref().traffic(),
        requests: 1,
    })
}
