//! `rtwire serve` over TLS: https and wss on one port, certificates made
//! at run time.
#![cfg(all(feature = "serve", feature = "tls"))]

mod common;

use common::certs::TestCerts;
use common::serve::start_with;
use rtwire::proto::Message;
use rtwire::serve::{ServeConfig, TokenAuth};
use rtwire::ws::tls::{TlsAcceptor, TlsConnector};
use rtwire::ws::{self, ConnectConfig, MaybeTlsStream};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A safety net so a broken server fails a test instead of hanging it.
const HANG: Duration = Duration::from_secs(10);

fn tls_config(certs: &TestCerts) -> ServeConfig {
    let mut config = ServeConfig::default();
    config.tls =
        Some(TlsAcceptor::from_pem(certs.cert_pem.as_bytes(), certs.key_pem.as_bytes()).unwrap());
    config
}

fn connector(certs: &TestCerts) -> TlsConnector {
    TlsConnector::from_pem(certs.ca_pem.as_bytes()).unwrap()
}

/// An https connection to `addr`, trusting the test CA.
async fn https(addr: SocketAddr, certs: &TestCerts) -> MaybeTlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    connector(certs).connect("localhost", tcp).await.unwrap()
}

/// Reads from `stream` until `needle` shows up; returns all that was read.
async fn read_until(stream: &mut MaybeTlsStream<TcpStream>, needle: &str) -> String {
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    tokio::time::timeout(HANG, async {
        while !String::from_utf8_lossy(&seen).contains(needle) {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(
                n > 0,
                "closed before {needle:?}: {}",
                String::from_utf8_lossy(&seen)
            );
            seen.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("the awaited bytes in time");
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test]
async fn https_publish_reaches_sse_and_wss_subscribers_on_one_port() {
    let certs = TestCerts::new();
    let server = start_with(tls_config(&certs), TokenAuth::default()).await;
    let url = format!("wss://localhost:{}/ws", server.addr.port());
    let config = ConnectConfig::default().tls(connector(&certs));
    let (mut socket, _) = ws::connect_with(&url, &config).await.unwrap();
    socket
        .send(Message::text(r#"{"op":"join","channel":"news"}"#))
        .await
        .unwrap();
    let joined = tokio::time::timeout(HANG, socket.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(format!("{joined:?}").contains("joined"), "{joined:?}");

    let mut sse = https(server.addr, &certs).await;
    sse.write_all(b"GET /channels/news/events HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let head = read_until(&mut sse, "\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("text/event-stream"),
        "{head}"
    );

    let mut publisher = https(server.addr, &certs).await;
    publisher
        .write_all(b"POST /channels/news HTTP/1.1\r\nHost: localhost\r\nContent-Length: 9\r\n\r\nover TLS!")
        .await
        .unwrap();
    let answer = read_until(&mut publisher, "}").await;
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");

    let event = read_until(&mut sse, "over TLS!").await;
    assert!(event.contains("data: over TLS!"), "{event}");
    let delivery = tokio::time::timeout(HANG, socket.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        format!("{delivery:?}").contains("over TLS!"),
        "{delivery:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn plain_http_to_a_tls_port_is_dropped_and_counted() {
    let certs = TestCerts::new();
    let server = start_with(tls_config(&certs), TokenAuth::default()).await;
    let mut plain = TcpStream::connect(server.addr).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    // Not a ClientHello: rustls answers with an alert, or nothing, and
    // the server closes; it never answers in plain HTTP.
    let _ = tokio::time::timeout(HANG, plain.read_to_end(&mut answer))
        .await
        .expect("closed in time");
    assert!(
        !answer.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );

    let mut scrape = https(server.addr, &certs).await;
    scrape
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let metrics = read_until(&mut scrape, "rtwire_tls_handshake_failures_total 1").await;
    assert!(metrics.starts_with("HTTP/1.1 200"));
    server.shutdown().await;
}

#[tokio::test]
async fn a_stalled_tls_handshake_is_closed_at_the_head_deadline() {
    let certs = TestCerts::new();
    let mut config = tls_config(&certs);
    config.head_timeout = Duration::from_millis(300);
    let server = start_with(config, TokenAuth::default()).await;
    // TCP only: the ClientHello never comes.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(HANG, silent.read_to_end(&mut rest)).await;
    assert!(
        read.is_ok(),
        "the server kept a silent TLS client past its deadline"
    );
    // And the server still serves.
    let mut fresh = https(server.addr, &certs).await;
    fresh
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    assert!(read_until(&mut fresh, "\r\n\r\n")
        .await
        .starts_with("HTTP/1.1 200"));
    server.shutdown().await;
}
