//! `rtwire serve` logs through `tracing` events, never by printing: the
//! per-minute summary with its counts as fields, and debug events for
//! connections, requests and failed WebSocket handshakes with the peer.
#![cfg(feature = "serve")]

mod common;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rtwire::serve::{ServeConfig, TokenAuth};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// One event as the capturing subscriber saw it.
#[derive(Debug, Clone)]
struct Captured {
    level: Level,
    message: String,
    fields: HashMap<String, String>,
    /// The fields of the spans the event happened in.
    span_fields: HashMap<String, String>,
}

/// A subscriber that keeps every event (and the fields of the spans they
/// happen in) for the test to inspect.
#[derive(Default)]
struct Capture {
    events: Mutex<Vec<Captured>>,
    spans: Mutex<Vec<HashMap<String, String>>>,
    /// The spans entered on this (the test's only) thread, innermost last.
    entered: Mutex<Vec<u64>>,
    arrived: Notify,
}

#[derive(Default)]
struct Fields(HashMap<String, String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

/// The subscriber installed for a test, sharing its [`Capture`].
struct Collector(Arc<Capture>);

impl std::ops::Deref for Collector {
    type Target = Capture;
    fn deref(&self) -> &Capture {
        &self.0
    }
}

impl Subscriber for Collector {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attributes: &Attributes<'_>) -> Id {
        let mut fields = Fields::default();
        attributes.record(&mut fields);
        let mut spans = self.spans.lock().unwrap();
        spans.push(fields.0);
        Id::from_u64(spans.len() as u64)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let message = fields.0.remove("message").unwrap_or_default();
        let spans = self.spans.lock().unwrap();
        let mut span_fields = HashMap::new();
        for id in self.entered.lock().unwrap().iter() {
            span_fields.extend(spans[*id as usize - 1].clone());
        }
        self.events.lock().unwrap().push(Captured {
            level: *event.metadata().level(),
            message,
            fields: fields.0,
            span_fields,
        });
        self.arrived.notify_waiters();
    }
    fn enter(&self, span: &Id) {
        self.entered.lock().unwrap().push(span.into_u64());
    }
    fn exit(&self, span: &Id) {
        let mut entered = self.entered.lock().unwrap();
        if let Some(at) = entered.iter().rposition(|id| *id == span.into_u64()) {
            entered.remove(at);
        }
    }
}

impl Capture {
    /// Waits (at most `limit`, on the test's clock) for an event with
    /// this message.
    async fn event(&self, message: &str, limit: Duration) -> Captured {
        let find = || {
            let events = self.events.lock().unwrap();
            events.iter().find(|e| e.message == message).cloned()
        };
        tokio::time::timeout(limit, async {
            loop {
                let arrived = self.arrived.notified();
                if let Some(event) = find() {
                    return event;
                }
                arrived.await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {message:?} event; got {:?}", self.events))
    }
}

/// Sends `request` on a new connection and reads the answer to its end.
async fn exchange(addr: std::net::SocketAddr, request: &str) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("answered within 10 s")
        .unwrap();
    (stream, String::from_utf8_lossy(&answer).into_owned())
}

#[tokio::test]
async fn requests_and_connections_are_debug_events_naming_the_peer() {
    let capture = Arc::new(Capture::default());
    let _default = tracing::subscriber::set_default(Collector(capture.clone()));
    let server = common::serve::start_with(ServeConfig::default(), TokenAuth::default()).await;
    let request = "GET /healthz?token=hidden HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let (stream, answer) = exchange(server.addr, request).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let peer = stream.local_addr().unwrap().to_string();

    let opened = capture
        .event("connection opened", Duration::from_secs(5))
        .await;
    assert_eq!(opened.level, Level::DEBUG);
    assert_eq!(opened.span_fields.get("peer"), Some(&peer));
    let handled = capture.event("request", Duration::from_secs(5)).await;
    assert_eq!(handled.level, Level::DEBUG);
    assert_eq!(
        handled.fields.get("method").map(String::as_str),
        Some("GET")
    );
    assert_eq!(
        handled.fields.get("path").map(String::as_str),
        Some("/healthz")
    );
    assert_eq!(
        handled.fields.get("status").map(String::as_str),
        Some("200")
    );
    assert_eq!(handled.span_fields.get("peer"), Some(&peer));
    let closed = capture
        .event("connection closed", Duration::from_secs(5))
        .await;
    assert_eq!(closed.span_fields.get("peer"), Some(&peer));
    // The query (which may carry a token) is never logged.
    let events = capture.events.lock().unwrap().clone();
    assert!(!format!("{events:?}").contains("hidden"), "{events:?}");
    drop(events);
    server.shutdown().await;
}

#[tokio::test]
async fn a_failed_websocket_handshake_is_a_debug_event_with_its_reason() {
    let capture = Arc::new(Capture::default());
    let _default = tracing::subscriber::set_default(Collector(capture.clone()));
    let server = common::serve::start_with(ServeConfig::default(), TokenAuth::default()).await;
    let request =
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    let (_stream, answer) = exchange(server.addr, request).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");

    let failed = capture
        .event("WebSocket handshake failed", Duration::from_secs(5))
        .await;
    assert_eq!(failed.level, Level::DEBUG);
    let error = failed.fields.get("error").cloned().unwrap_or_default();
    assert!(error.contains("Sec-WebSocket-Key"), "{error}");
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_minute_summary_is_an_info_event_with_counts() {
    let capture = Arc::new(Capture::default());
    let _default = tracing::subscriber::set_default(Collector(capture.clone()));
    let server = common::serve::start_with(ServeConfig::default(), TokenAuth::default()).await;
    for payload in ["one", "two"] {
        server
            .hub
            .publish("news", Bytes::from_static(payload.as_bytes()), None)
            .unwrap();
    }
    // The paused clock runs ahead to the first sweep, a minute after start.
    let summary = capture
        .event("rtwire serve: summary", Duration::from_secs(120))
        .await;
    assert_eq!(summary.level, Level::INFO);
    let field = |name: &str| summary.fields.get(name).cloned();
    assert_eq!(field("published").as_deref(), Some("2"));
    assert_eq!(field("channels").as_deref(), Some("1"));
    assert_eq!(field("open.sse").as_deref(), Some("0"));
    assert_eq!(field("open.websocket").as_deref(), Some("0"));
    server.shutdown().await;
}
