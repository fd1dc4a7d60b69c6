//! `GET /metrics`: what each counter counts, moved by real traffic, and
//! the token that may guard it.
#![cfg(feature = "serve")]

mod common;

use common::serve::{exchange, get_request as get, publish, start_with, Running, Sse};
use rtwire::proto::Message;
use rtwire::serve::{ServeConfig, TokenAuth};
use std::net::SocketAddr;

async fn start(config: ServeConfig) -> Running {
    start_with(config, TokenAuth::default()).await
}

/// Every sample of the scrape, by its name with labels.
struct Scrape(String);

impl Scrape {
    async fn take(addr: SocketAddr) -> Scrape {
        let (status, head, body) = exchange(addr, &get("/metrics")).await;
        assert_eq!(status, 200, "{head}");
        Scrape(body)
    }

    fn value(&self, series: &str) -> u64 {
        self.0
            .lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{}", self.0))
    }
}

/// Scrapes until `series` reads `value`: how a test knows a request is held.
async fn until(addr: SocketAddr, series: &str, value: u64) -> Scrape {
    loop {
        let scrape = Scrape::take(addr).await;
        if scrape.value(series) == value {
            return scrape;
        }
        tokio::task::yield_now().await;
    }
}

const HTTP_OPEN: &str = "rtwire_http_connections_open";

#[tokio::test]
async fn sessions_deliveries_and_connections_move_with_the_traffic() {
    let server = start(ServeConfig::default()).await;
    let addr = server.addr;
    let before = Scrape::take(addr).await;
    let build = format!(
        "rtwire_build_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(before.value(&build), 1);

    // A held long poll is a long-poll session on one HTTP connection,
    // not a WebSocket nor an SSE stream.
    let held =
        tokio::spawn(async move { exchange(addr, &get("/channels/m/long-poll?timeout=30")).await });
    let during = until(addr, "rtwire_sessions_open{transport=\"long_poll\"}", 1).await;
    // The held poll and this scrape.
    assert_eq!(during.value(HTTP_OPEN), 2);
    assert_eq!(
        during.value("rtwire_sessions_open{transport=\"websocket\"}"),
        0
    );
    assert_eq!(during.value("rtwire_sessions_open{transport=\"sse\"}"), 0);

    let mut sse = Sse::open(addr, "/channels/m/events", None).await;
    let (mut ws, _) = rtwire::ws::connect(&format!("ws://{addr}/ws"))
        .await
        .unwrap();
    ws.send(Message::text(r#"{"op":"join","channel":"m"}"#))
        .await
        .unwrap();
    let joined = ws.recv().await.unwrap().unwrap();
    assert!(format!("{joined:?}").contains("joined"), "{joined:?}");
    let open = until(addr, "rtwire_sessions_open{transport=\"sse\"}", 1).await;
    assert_eq!(
        open.value("rtwire_sessions_open{transport=\"websocket\"}"),
        1
    );
    assert_eq!(
        open.value(HTTP_OPEN),
        4,
        "long poll, SSE, WebSocket, scrape"
    );

    publish(addr, "m", "hello").await;
    assert_eq!(sse.next().await.data, ["hello"]);
    let delivery = ws.recv().await.unwrap().unwrap();
    assert!(format!("{delivery:?}").contains("hello"), "{delivery:?}");
    let (status, _, body) = held.await.unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("hello"), "{body}");
    let (status, _, _) = exchange(addr, &get("/channels/m/poll")).await;
    assert_eq!(status, 200);

    let after = until(addr, "rtwire_sessions_open{transport=\"long_poll\"}", 0).await;
    for transport in ["websocket", "sse", "long_poll", "poll"] {
        let series = format!("rtwire_deliveries_total{{transport=\"{transport}\"}}");
        assert_eq!(after.value(&series), 1, "{series}");
    }
    assert_eq!(after.value("rtwire_messages_published_total"), 1);
    let requests =
        |s: &Scrape, route: &str| s.value(&format!("rtwire_requests_total{{route=\"{route}\"}}"));
    assert_eq!(requests(&after, "publish"), 1);
    assert_eq!(requests(&after, "long_poll"), 1);
    assert_eq!(requests(&after, "events"), 1);
    assert_eq!(requests(&after, "websocket"), 1);
    assert_eq!(requests(&after, "poll"), 1);
    for transport in ["websocket", "sse", "long_poll", "poll"] {
        let series = format!("rtwire_sessions_started_total{{transport=\"{transport}\"}}");
        assert_eq!(after.value(&series), 1, "{series}");
    }
    assert_eq!(
        after.value("rtwire_responses_total{code=\"1xx\"}"),
        1,
        "the 101"
    );
    let ok = after.value("rtwire_responses_total{code=\"2xx\"}");
    let scrapes = requests(&after, "metrics") - 1; // this one is not counted yet
    assert_eq!(
        ok,
        4 + scrapes,
        "long poll, SSE, publish, poll, and the scrapes"
    );
    assert!(after.value("rtwire_sent_bytes_total") > before.value("rtwire_sent_bytes_total"));
    assert!(
        after.value("rtwire_received_bytes_total") > before.value("rtwire_received_bytes_total")
    );
    let accepted = after.value("rtwire_http_connections_accepted_total");
    assert!(accepted >= 5 + scrapes, "{accepted}");

    // The stream and the socket leave: their sessions end.
    drop(sse);
    drop(ws);
    until(addr, "rtwire_sessions_open{transport=\"sse\"}", 0).await;
    until(addr, "rtwire_sessions_open{transport=\"websocket\"}", 0).await;
    until(addr, HTTP_OPEN, 1).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_failed_handshake_is_counted_and_is_no_websocket() {
    let server = start(ServeConfig::default()).await;
    let addr = server.addr;
    // An upgrade without a key: 400, no socket.
    let bad = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
               Sec-WebSocket-Version: 13\r\n\r\n";
    let (status, _, _) = exchange(addr, bad).await;
    assert_eq!(status, 400);
    let scrape = Scrape::take(addr).await;
    assert_eq!(scrape.value("rtwire_websocket_handshake_failures_total"), 1);
    assert_eq!(
        scrape.value("rtwire_requests_total{route=\"websocket\"}"),
        1
    );
    assert_eq!(
        scrape.value("rtwire_sessions_started_total{transport=\"websocket\"}"),
        0
    );
    assert_eq!(scrape.value("rtwire_responses_total{code=\"4xx\"}"), 1);
    assert_eq!(scrape.value("rtwire_responses_total{code=\"1xx\"}"), 0);
    let (status, _, _) = exchange(addr, &get("/nowhere")).await;
    assert_eq!(status, 404);
    let scrape = Scrape::take(addr).await;
    assert_eq!(
        scrape.value("rtwire_requests_total{route=\"not_found\"}"),
        1
    );
    assert_eq!(scrape.value("rtwire_responses_total{code=\"4xx\"}"), 2);
    server.shutdown().await;
}

#[tokio::test]
async fn the_metrics_token_is_required_when_configured() {
    let mut config = ServeConfig::default();
    config.metrics_token = Some("scrape-secret".into());
    assert!(
        !format!("{config:?}").contains("scrape-secret"),
        "Debug hides it"
    );
    let server = start(config).await;
    let addr = server.addr;
    let with = |authorization: &str| {
        format!("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: {authorization}\r\n\r\n")
    };
    let (status, head, body) = exchange(addr, &get("/metrics")).await;
    assert_eq!(status, 401);
    assert!(head.contains("WWW-Authenticate: Bearer"), "{head}");
    assert!(!body.contains("rtwire_build_info"), "{body}");
    for wrong in [
        "Bearer scrape-secreT",
        "Bearer",
        "Basic scrape-secret",
        "scrape-secret",
    ] {
        assert_eq!(exchange(addr, &with(wrong)).await.0, 401, "{wrong}");
    }
    // Not from the query string, which ends up in logs.
    assert_eq!(
        exchange(addr, &get("/metrics?token=scrape-secret")).await.0,
        401
    );
    let (status, _, text) = exchange(addr, &with("Bearer scrape-secret")).await;
    assert_eq!(status, 200);
    assert!(text.contains("rtwire_build_info{version=\""), "{text}");
    assert!(
        text.contains("rtwire_requests_total{route=\"metrics\"} 7"),
        "{text}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn every_series_has_help_and_type() {
    let server = start(ServeConfig::default()).await;
    let text = Scrape::take(server.addr).await.0;
    let mut described = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(kind == "counter" || kind == "gauge", "{line}");
            assert_eq!(kind == "counter", name.ends_with("_total"), "{line}");
            described.insert(name.to_owned());
        } else if !line.starts_with('#') {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(described.contains(name), "{name} has no TYPE");
        }
    }
    assert!(text.contains(&format!(
        "rtwire_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    )));
    // The in-memory hub has no broker to report on.
    assert!(!text.contains("rtwire_redis_"), "{text}");
    server.shutdown().await;
}
