//! CORS on `rtwire serve`'s HTTP transports: closed by default, allowed
//! origins echoed with `Vary`, preflights answered, disallowed origins
//! given nothing, and credentials never with `*`.
#![cfg(feature = "serve")]

mod common;

use common::serve::{start_with, Running};
use rtwire::serve::{Cors, ServeConfig, TokenAuth};
use std::net::SocketAddr;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const APP: &str = "https://app.example";
const EVIL: &str = "https://evil.example";

async fn start(cors: Option<Cors>) -> Running {
    let mut config = ServeConfig::default();
    config.cors = cors;
    start_with(config, TokenAuth::default()).await
}

fn listed() -> Cors {
    Cors::allow_origins([APP]).unwrap()
}

/// Status and head lines (lower-cased names) of the answer to `request`.
async fn exchange(addr: SocketAddr, request: &str) -> (u16, Vec<(String, String)>) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    parse_head(&String::from_utf8_lossy(&answer))
}

fn parse_head(text: &str) -> (u16, Vec<(String, String)>) {
    let head = text.split("\r\n\r\n").next().unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.to_owned()))
        .collect();
    (status, headers)
}

fn value<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn cors_names(headers: &[(String, String)]) -> Vec<&str> {
    headers
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| n.starts_with("access-control-"))
        .collect()
}

fn get(path: &str, origin: Option<&str>) -> String {
    let origin = origin
        .map(|o| format!("Origin: {o}\r\n"))
        .unwrap_or_default();
    format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{origin}\r\n")
}

fn preflight(path: &str, origin: &str, method: &str) -> String {
    format!(
        "OPTIONS {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nOrigin: {origin}\r\n\
         Access-Control-Request-Method: {method}\r\n\
         Access-Control-Request-Headers: authorization, content-type\r\n\r\n"
    )
}

/// The head of an SSE stream opened with `Origin`.
async fn sse_head(addr: SocketAddr, origin: &str) -> (u16, Vec<(String, String)>) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET /channels/r/events HTTP/1.1\r\nHost: x\r\nOrigin: {origin}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut lines = BufReader::new(stream).lines();
    let mut head = String::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        if line.is_empty() {
            break;
        }
        head.push_str(&line);
        head.push_str("\r\n");
    }
    parse_head(&head)
}

#[tokio::test]
async fn closed_by_default() {
    let server = start(None).await;
    let addr = server.addr;
    let (status, headers) = exchange(addr, &get("/channels/r/poll", Some(APP))).await;
    assert_eq!(status, 200);
    assert!(cors_names(&headers).is_empty(), "{headers:?}");
    assert_eq!(value(&headers, "vary"), None);
    let (status, headers) = exchange(addr, &preflight("/channels/r", APP, "POST")).await;
    assert_eq!(status, 405);
    assert!(cors_names(&headers).is_empty(), "{headers:?}");
    let (_, headers) = sse_head(addr, APP).await;
    assert!(cors_names(&headers).is_empty(), "{headers:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn an_allowed_origin_is_echoed_with_vary_on_every_transport() {
    let server = start(Some(listed())).await;
    let addr = server.addr;
    let publish = format!(
        "POST /channels/r HTTP/1.1\r\nHost: x\r\nConnection: close\r\nOrigin: {APP}\r\nContent-Length: 2\r\n\r\nhi"
    );
    for request in [
        get("/channels/r/poll", Some(APP)),
        get("/channels/r/long-poll?timeout=0", Some(APP)),
        publish,
    ] {
        let (status, headers) = exchange(addr, &request).await;
        assert!(status == 200 || status == 202, "{status}");
        assert_eq!(value(&headers, "access-control-allow-origin"), Some(APP));
        assert_eq!(value(&headers, "vary"), Some("Origin"));
        let exposed = value(&headers, "access-control-expose-headers").unwrap();
        assert!(exposed.contains("ETag"), "{exposed}");
        assert_eq!(value(&headers, "access-control-allow-credentials"), None);
    }
    let (status, headers) = sse_head(addr, APP).await;
    assert_eq!(status, 200);
    assert_eq!(value(&headers, "access-control-allow-origin"), Some(APP));
    assert_eq!(value(&headers, "vary"), Some("Origin"));
    // Not the other routes: /healthz is no transport, /ws checks origins
    // in its handshake.
    let (_, headers) = exchange(addr, &get("/healthz", Some(APP))).await;
    assert!(cors_names(&headers).is_empty(), "{headers:?}");
    let (status, headers) = exchange(addr, &preflight("/ws", APP, "GET")).await;
    assert_eq!(status, 405);
    assert!(cors_names(&headers).is_empty(), "{headers:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_preflight_is_answered() {
    let server = start(Some(listed())).await;
    let addr = server.addr;
    for path in ["/channels/r", "/channels/r/events", "/channels/r/poll"] {
        let (status, headers) = exchange(addr, &preflight(path, APP, "POST")).await;
        assert_eq!(status, 204, "{path}");
        assert_eq!(value(&headers, "access-control-allow-origin"), Some(APP));
        assert_eq!(value(&headers, "vary"), Some("Origin"));
        let methods = value(&headers, "access-control-allow-methods").unwrap();
        for method in ["GET", "POST", "HEAD", "OPTIONS"] {
            assert!(methods.contains(method), "{methods}");
        }
        let allowed = value(&headers, "access-control-allow-headers").unwrap();
        for header in [
            "Authorization",
            "Content-Type",
            "Last-Event-ID",
            "If-None-Match",
        ] {
            assert!(allowed.contains(header), "{allowed}");
        }
        assert_eq!(value(&headers, "access-control-max-age"), Some("600"));
        assert_eq!(value(&headers, "content-length"), None, "a 204 has no body");
    }
    // An OPTIONS that is no preflight is still a wrong method.
    let plain = "OPTIONS /channels/r HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert_eq!(exchange(addr, plain).await.0, 405);
    server.shutdown().await;
}

#[tokio::test]
async fn a_disallowed_origin_gets_no_cors_headers() {
    let server = start(Some(listed())).await;
    let addr = server.addr;
    let (status, headers) = exchange(addr, &get("/channels/r/poll", Some(EVIL))).await;
    assert_eq!(status, 200, "the answer is sent; the browser withholds it");
    assert!(cors_names(&headers).is_empty(), "{headers:?}");
    assert_eq!(value(&headers, "vary"), Some("Origin"));
    let (status, headers) = sse_head(addr, EVIL).await;
    assert_eq!(status, 200);
    assert!(cors_names(&headers).is_empty(), "{headers:?}");
    let (status, headers) = exchange(addr, &preflight("/channels/r", EVIL, "POST")).await;
    assert_eq!(status, 403);
    assert!(cors_names(&headers).is_empty(), "{headers:?}");
    // No Origin at all (a same-origin or non-browser client): nothing either.
    let (_, headers) = exchange(addr, &get("/channels/r/poll", None)).await;
    assert!(cors_names(&headers).is_empty(), "{headers:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn credentials_are_never_allowed_with_a_wildcard() {
    // Any origin, no credentials: `*`, nothing to vary on.
    let server = start(Some(Cors::any())).await;
    let (_, headers) = exchange(server.addr, &get("/channels/r/poll", Some(EVIL))).await;
    assert_eq!(value(&headers, "access-control-allow-origin"), Some("*"));
    assert_eq!(value(&headers, "access-control-allow-credentials"), None);
    assert_eq!(value(&headers, "vary"), None);
    // Something that is no origin is not echoed into a head.
    let (_, headers) = exchange(server.addr, &get("/channels/r/poll", Some("x y"))).await;
    assert!(cors_names(&headers).is_empty(), "{headers:?}");
    server.shutdown().await;

    // Any origin with credentials: the origin echoed, never `*`.
    let server = start(Some(Cors::any().with_credentials(true))).await;
    let (_, headers) = exchange(server.addr, &get("/channels/r/poll", Some(EVIL))).await;
    assert_eq!(value(&headers, "access-control-allow-origin"), Some(EVIL));
    assert_eq!(
        value(&headers, "access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(value(&headers, "vary"), Some("Origin"));
    let (status, headers) = exchange(server.addr, &preflight("/channels/r", EVIL, "GET")).await;
    assert_eq!(status, 204);
    assert_eq!(value(&headers, "access-control-allow-origin"), Some(EVIL));
    assert_eq!(
        value(&headers, "access-control-allow-credentials"),
        Some("true")
    );
    server.shutdown().await;

    // Listed origins with credentials.
    let server = start(Some(listed().with_credentials(true))).await;
    let (_, headers) = exchange(server.addr, &get("/channels/r/poll", Some(APP))).await;
    assert_eq!(value(&headers, "access-control-allow-origin"), Some(APP));
    assert_eq!(
        value(&headers, "access-control-allow-credentials"),
        Some("true")
    );
    let (_, headers) = exchange(server.addr, &get("/channels/r/poll", Some(EVIL))).await;
    assert!(cors_names(&headers).is_empty(), "{headers:?}");
    server.shutdown().await;
}
