//! Server-Sent Events: `GET /channels/{name}/events`.
//!
//! Each message is one event, encoded once and shared by every stream:
//!
//! ```text
//! id: 1a2b3c4d-7
//! data: first line
//! data: second line
//!
//! ```
//!
//! A payload that is not UTF-8, or holds a CR (which SSE would turn into a
//! line break), goes as `event: binary` with its base64 in one `data:`
//! line. The stream starts with `retry:`, sends a comment heartbeat every
//! `sse_heartbeat`, sets the last event id to where it starts (an `id:`
//! line alone, which dispatches no event), and resumes after the id in `Last-Event-ID` (or the
//! `last-event-id` query parameter for a first connection). When the resume
//! point is no longer exact the first event says so: `event: gap`,
//! `event: epoch_changed` or `event: ahead`. A subscriber too slow to keep
//! up gets `event: lagged` and the stream ends; the browser reconnects with
//! its `Last-Event-ID` and loses nothing still in the history.
//!
//! A stream with an identity keeps it present in the channel (the
//! [`presence`](crate::hub::presence) module), and every stream is told
//! who comes and goes, as events without an id (they are not messages and
//! take no part in resuming):
//!
//! ```text
//! event: presence_change
//! data: {"type":"presence_change","channel":"room","joined":["carol"],"left":[]}
//!
//! ```
//!
//! or, when changes came faster than the stream took them, the whole list
//! as `event: presence` with `{"type":"presence","channel":…,"members":[…]}`.

use base64::Engine;
use bytes::{Bytes, BytesMut};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::io::AsyncReadExt;

use tokio::sync::broadcast;

use super::http_conn::HttpConn;
use super::json;
use super::metrics::Transport;
use super::params::query_param;
use super::response::Response;
use super::routes::{broker_error, hub_error};
use super::websocket::recv_change;
use super::Stream;
use super::{App, BATCH_BYTES, BATCH_MESSAGES};
use crate::http::Request;
use crate::hub::{Closed, FormatKey, HubMessage, MessageId, Resume, Since, Subscription};

/// Serves an accepted stream request until the stream ends, in one box
/// that owns the request.
pub(crate) fn serve(
    app: &App,
    conn: HttpConn<Stream>,
    request: Request,
    channel: String,
    identity: Option<String>,
) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
    Box::pin(stream(app, conn, request, channel, identity))
}

/// Streams events until the client leaves, the subscriber lags, or the
/// server shuts down. (An `async move` block, not an `async fn`: an async
/// fn keeps its arguments twice, and the connection is the largest.)
// An async fn would keep its arguments twice (see above).
#[allow(clippy::manual_async_fn)]
fn stream(
    app: &App,
    mut conn: HttpConn<Stream>,
    request: Request,
    channel: String,
    identity: Option<String>,
) -> impl Future<Output = ()> + Send + '_ {
    async move {
        let _open = app.metrics.open(Transport::Sse);
        let request = &request;
        let channel = channel.as_str();
        let identity = identity.as_deref();
        let resume_from = request
            .headers
            .get("last-event-id")
            .map(str::to_owned)
            .or_else(|| query_param(request.query(), "last-event-id"));
        let since = match resume_from.as_deref().map(str::parse::<MessageId>) {
            None => Since::Live,
            Some(Ok(id)) => Since::After(id),
            Some(Err(_)) => {
                let bad =
                    Response::error(400, "invalid Last-Event-ID: expected an id like 1a2b3c4d-7");
                refuse(conn, with_cors(app, request, bad)).await;
                return;
            }
        };
        // Boxed, as the refusals are: each happens once, and inline its state
        // would size the stream for as long as it lives.
        if let Err(e) = Box::pin(app.broker.attach(channel)).await {
            refuse(conn, with_cors(app, request, broker_error(&e))).await;
            return;
        }
        let mut subscription = match app.hub.subscribe(channel, since) {
            Ok(subscription) => subscription,
            Err(e) => {
                refuse(conn, with_cors(app, request, hub_error(&e))).await;
                return;
            }
        };
        let presence = app.hub.presence();
        // Watching before holding: the stream hears of its own arrival.
        let mut watch = presence.watch(channel);
        let _present = identity.and_then(|me| presence.hold(channel, me));
        let mut head = String::from(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
         X-Accel-Buffering: no\r\nConnection: close\r\n",
        );
        if let Some(cors) = &app.config.cors {
            for (name, value) in cors.headers(request) {
                // Origins are checked against the configured ones, which hold
                // no CR or LF; `*`, `true` and the constants neither.
                head.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        head.push_str("\r\n");
        head.push_str(&format!("retry: {}\n\n", app.config.sse_retry.as_millis()));
        if let Some(notice) = resume_notice(&subscription.resume()) {
            head.push_str(&notice);
        }
        // Where the stream starts, as an id with no data: a client sets its
        // last event id and dispatches nothing (WHATWG HTML §9.2.6), so a
        // stream cut before its first message resumes from here, not live.
        head.push_str(&format!("id: {}\n\n", subscription.position()));
        if conn.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        conn.io.traffic().response(200);
        // Nothing more is read into it (the probe below watches for the end).
        conn.release_buffer();
        let mut heartbeat = tokio::time::interval_at(
            tokio::time::Instant::now() + app.config.sse_heartbeat,
            app.config.sse_heartbeat,
        );
        let mut shutdown = app.shutdown.clone();
        let mut probe = [0u8; 64];
        loop {
            let (chunk, events): (Bytes, usize) = tokio::select! {
                next = subscription.recv() => match next {
                    Ok(message) => batch(&mut subscription, &message),
                    Err(Closed::Lagged) => {
                        let last = subscription.last_seen().map(|id| id.to_string()).unwrap_or_default();
                        let _ = conn.write_all(format!("event: lagged\ndata: {last}\n\n").as_bytes()).await;
                        return;
                    }
                    Err(_) => return,
                },
                change = recv_change(&mut watch) => match change {
                    Ok(change) => (presence_event("presence_change", &json::presence_change(&change)), 0),
                    // Changes were missed: the whole list instead.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let list = json::presence_list(channel, &presence.snapshot(channel).members);
                        (presence_event("presence", &list), 0)
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        watch = None;
                        continue;
                    }
                },
                _ = heartbeat.tick() => (Bytes::from_static(b": heartbeat\n\n"), 0),
                _ = shutdown.changed() => return,
                // The client sends nothing more; a read that ends means it left.
                read = conn.io.read(&mut probe) => match read {
                    Ok(n) if n > 0 => continue,
                    _ => return,
                },
            };
            // A client that accepts nothing for the write timeout is dropped,
            // and its subscription with it.
            if conn.write_all(&chunk).await.is_err() {
                return;
            }
            app.metrics.delivered(Transport::Sse, events);
        }
    }
}

/// Answers a stream request that cannot be served, and closes.
fn refuse(
    mut conn: HttpConn<Stream>,
    response: Response,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        let _ = conn.send(&response, false, false).await;
    })
}

/// `first`'s event and those of the messages queued behind it (up to a
/// batch), for one write. An end met on the way is left for the next
/// `recv`, which reports it again.
fn batch(subscription: &mut Subscription, first: &Arc<HubMessage>) -> (Bytes, usize) {
    let first = first.encoded(FormatKey::SSE, encode_event);
    if !subscription.had_more() {
        return (first, 1);
    }
    let Ok(Some(second)) = subscription.try_recv() else {
        return (first, 1);
    };
    let mut out = BytesMut::with_capacity(BATCH_BYTES.min(first.len() * BATCH_MESSAGES));
    out.extend_from_slice(&first);
    out.extend_from_slice(&second.encoded(FormatKey::SSE, encode_event));
    let mut events = 2;
    while events < BATCH_MESSAGES && out.len() < BATCH_BYTES && subscription.had_more() {
        let Ok(Some(message)) = subscription.try_recv() else {
            break;
        };
        out.extend_from_slice(&message.encoded(FormatKey::SSE, encode_event));
        events += 1;
    }
    (out.freeze(), events)
}

/// A presence event: one line of JSON, no id.
fn presence_event(name: &str, json: &str) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {json}\n\n"))
}

/// `response` readable by the pages CORS allows.
fn with_cors(app: &App, request: &Request, response: Response) -> Response {
    match &app.config.cors {
        Some(cors) => cors.apply(request, response),
        None => response,
    }
}

/// What a HEAD request on an events route gets: the stream's head, no
/// stream (RFC 9110 §9.3.2).
pub(crate) fn head_response() -> Response {
    let mut response =
        Response::new(200, "text/event-stream", "").header("Cache-Control", "no-cache");
    response.streamed = true;
    response
}

fn resume_notice(resume: &Resume) -> Option<String> {
    match resume {
        Resume::Exact => None,
        Resume::Gap { first_available } => Some(format!(
            "event: gap\ndata: {}\n\n",
            first_available.map(|id| id.to_string()).unwrap_or_default()
        )),
        Resume::EpochChanged { current } => {
            Some(format!("event: epoch_changed\ndata: {current:08x}\n\n"))
        }
        Resume::Ahead => Some("event: ahead\ndata: \n\n".to_owned()),
    }
}

/// One message as an SSE event, encoded once for every stream.
fn encode_event(message: &HubMessage) -> Bytes {
    let mut out = format!("id: {}\n", message.id);
    match std::str::from_utf8(&message.data) {
        Ok(text) if !text.contains('\r') => {
            // One data: line per line of payload (the client joins them with \n).
            for line in text.split('\n') {
                out.push_str("data: ");
                out.push_str(line);
                out.push('\n');
            }
        }
        _ => {
            out.push_str("event: binary\ndata: ");
            out.push_str(&base64::engine::general_purpose::STANDARD.encode(&message.data));
            out.push('\n');
        }
    }
    out.push('\n');
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::Hub;

    #[tokio::test]
    async fn messages_queued_behind_the_first_leave_in_the_same_write() {
        let hub = Hub::new();
        let mut subscription = hub.subscribe("room", Since::Live).unwrap();
        let total = BATCH_MESSAGES + 6;
        let published: Vec<_> = (0..total)
            .map(|i| {
                hub.publish("room", Bytes::from(format!("m{i}")), None)
                    .unwrap()
            })
            .collect();
        let first = subscription.recv().await.unwrap();
        let (chunk, events) = batch(&mut subscription, &first);
        assert_eq!(events, BATCH_MESSAGES, "a batch stops at its limit");
        let expected: Vec<u8> = published[..BATCH_MESSAGES]
            .iter()
            .flat_map(|m| encode_event(m).to_vec())
            .collect();
        assert_eq!(chunk.to_vec(), expected, "every event, in order");
        // The rest next time; a lone message is its own chunk, not copied.
        let next = subscription.recv().await.unwrap();
        let (chunk, events) = batch(&mut subscription, &next);
        assert_eq!((events, events_in(&chunk)), (6, 6));
        hub.publish("room", Bytes::from_static(b"alone"), None)
            .unwrap();
        let alone = subscription.recv().await.unwrap();
        let (chunk, events) = batch(&mut subscription, &alone);
        assert_eq!(events, 1);
        assert_eq!(chunk, alone.encoded(FormatKey::SSE, |_| unreachable!()));
    }

    /// How many events a chunk holds (each ends with a blank line).
    fn events_in(chunk: &[u8]) -> usize {
        chunk.windows(2).filter(|w| w == b"\n\n").count()
    }
}
