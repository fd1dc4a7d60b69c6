//! The `http` feature inside a real framework: `examples/axum_upgrade.rs`'s
//! router served by axum on a loopback port, with rtwire clients (through
//! `http_upgrade::connect` and `ws::connect_with`) and raw HTTP requests.
#![cfg(feature = "http")]

#[allow(dead_code)]
#[path = "../examples/axum_upgrade.rs"]
mod example;

use std::net::SocketAddr;
use std::time::Duration;

use rtwire::handshake::HandshakeError;
use rtwire::http::{HeadLimits, Parse, Response};
use rtwire::proto::deflate::DeflateConfig;
use rtwire::proto::{CloseCode, Message};
use rtwire::ws::{self, http_upgrade, ConnectConfig, Error, MaybeTlsStream, WebSocket};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Serves the example's router on a free loopback port.
async fn serve() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, example::router()).await });
    addr
}

/// Sends `message` and expects it back.
async fn round_trip(ws: &mut WebSocket<MaybeTlsStream<TcpStream>>, message: Message) {
    ws.send(message.clone()).await.unwrap();
    assert_eq!(ws.recv().await.unwrap(), Some(message));
}

/// Closes from the client side and waits for the server's close.
async fn close(mut ws: WebSocket<MaybeTlsStream<TcpStream>>) {
    ws.close(CloseCode::NORMAL, "done").await.unwrap();
    while ws.recv().await.unwrap().is_some() {}
}

#[tokio::test]
async fn an_http_request_connects_echoes_text_and_binary_and_gets_its_subprotocol() {
    let addr = serve().await;
    let request = http::Request::get(format!("ws://{addr}/ws"))
        .header(
            "Sec-WebSocket-Protocol",
            format!("other, {}", example::PROTOCOL),
        )
        .header("User-Agent", "rtwire-test")
        .body(())
        .unwrap();
    let (mut ws, response) = http_upgrade::connect(&request, &ConnectConfig::default())
        .await
        .unwrap();
    assert_eq!(response.status(), http::StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        example::PROTOCOL
    );
    assert_eq!(ws.protocol(), Some(example::PROTOCOL));
    assert!(
        !ws.connection().deflate_enabled(),
        "deflate was not offered"
    );
    round_trip(&mut ws, Message::text("hello, axum")).await;
    round_trip(&mut ws, Message::binary(vec![0u8, 1, 2, 255])).await;
    round_trip(&mut ws, Message::text("")).await;
    close(ws).await;
}

#[tokio::test]
async fn without_an_offer_of_the_subprotocol_none_is_chosen() {
    let addr = serve().await;
    let config = ConnectConfig::default().protocols(["mqtt"]);
    let (mut ws, response) = ws::connect_with(&format!("ws://{addr}/ws"), &config)
        .await
        .unwrap();
    assert_eq!(ws.protocol(), None);
    assert_eq!(response.headers.get("sec-websocket-protocol"), None);
    round_trip(&mut ws, Message::text("still echoed")).await;
    close(ws).await;
}

#[tokio::test]
async fn permessage_deflate_is_negotiated_when_offered() {
    let addr = serve().await;
    let config = ConnectConfig::default().deflate(DeflateConfig::default());
    let (mut ws, response) = ws::connect_with(&format!("ws://{addr}/ws"), &config)
        .await
        .unwrap();
    let answer = response.headers.get("sec-websocket-extensions").unwrap();
    assert!(answer.starts_with("permessage-deflate"), "{answer}");
    assert!(ws.connection().deflate_enabled());
    // Large and compressible, so it travels compressed both ways.
    round_trip(&mut ws, Message::text("abc".repeat(10_000))).await;
    round_trip(&mut ws, Message::binary(vec![7u8; 50_000])).await;
    close(ws).await;
}

/// Sends a raw request head and reads the whole answer (the route closes
/// the connection after a refusal), within a deadline.
async fn raw_exchange(addr: SocketAddr, head: &str) -> (Response, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut bytes))
        .await
        .expect("the server closes after a refusal")
        .unwrap();
    let Ok(Parse::Complete(response, used)) = Response::parse(&bytes, &HeadLimits::default())
    else {
        panic!(
            "a response head expected: {:?}",
            String::from_utf8_lossy(&bytes)
        );
    };
    let body = String::from_utf8(bytes[used..].to_vec()).unwrap();
    (response, body)
}

#[tokio::test]
async fn a_plain_get_gets_400_with_the_reason() {
    let addr = serve().await;
    let (response, body) = raw_exchange(addr, "GET /ws HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert_eq!(response.status, 400);
    assert_eq!(response.headers.get("content-type"), Some("text/plain"));
    assert_eq!(body, format!("{}\n", HandshakeError::NoUpgradeWebSocket));
}

#[tokio::test]
async fn a_bad_key_gets_400() {
    let addr = serve().await;
    let head = "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let (response, body) = raw_exchange(addr, head).await;
    assert_eq!(response.status, 400);
    assert_eq!(body, format!("{}\n", HandshakeError::InvalidKey));
}

#[tokio::test]
async fn a_wrong_version_gets_426_naming_version_13() {
    let addr = serve().await;
    let head = "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 8\r\n\r\n";
    let (response, body) = raw_exchange(addr, head).await;
    assert_eq!(response.status, 426);
    assert_eq!(response.headers.get("sec-websocket-version"), Some("13"));
    assert!(response.headers.contains_token("upgrade", "websocket"));
    assert_eq!(body, format!("{}\n", HandshakeError::UnsupportedVersion));
}

#[tokio::test]
async fn an_rtwire_client_sees_the_routes_refusal() {
    let addr = serve().await;
    // The route exists only at /ws: axum answers 404, and the client says so.
    let err = ws::connect(&format!("ws://{addr}/elsewhere"))
        .await
        .map(|_| ())
        .unwrap_err();
    let Error::Handshake(HandshakeError::Rejected(refusal)) = err else {
        panic!("a refusal expected: {err:?}");
    };
    assert_eq!(refusal.status, 404);
}
