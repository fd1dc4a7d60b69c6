//! The io_uring front-end (`rtwire::uring`) against rtwire's tokio client
//! and raw sockets: echo of every kind of message, deflate, pings, the
//! close handshake, refused handshakes, many connections at once, and a
//! peer that reads nothing.
#![cfg(all(feature = "io-uring", target_os = "linux"))]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rtwire::proto::deflate::DeflateConfig;
use rtwire::proto::{CloseCode, CloseFrame, Config, Message};
use rtwire::uring::{self, UringServer};
use rtwire::ws::{self, AcceptConfig, ConnectConfig};

/// An echo server on its own thread; stops (and is joined) when dropped.
struct Echo {
    addr: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap().unwrap();
        }
    }
}

/// The echo server, or `None` where this kernel refuses io_uring; then
/// `probe` must say so with an error, which is what a caller falls back on.
fn echo(server: UringServer) -> Option<Echo> {
    if let Err(e) = uring::probe() {
        eprintln!("io_uring unavailable here ({e}); only the probe is tested");
        return None;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::spawn(move || {
        server.run(listener, &flag, |conn, message| {
            conn.send(message).unwrap();
        })
    });
    Some(Echo {
        addr,
        stop,
        thread: Some(thread),
    })
}

fn echo_config() -> AcceptConfig {
    AcceptConfig::default().deflate(DeflateConfig::default())
}

#[tokio::test]
async fn echoes_every_kind_of_message_and_closes_cleanly() {
    let Some(server) = echo(UringServer::new(echo_config())) else {
        return;
    };
    let (mut client, response) = ws::connect(&format!("ws://{}/", server.addr))
        .await
        .unwrap();
    assert_eq!(response.status, 101);
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let messages = [
        Message::text("hello"),
        Message::text(""),
        Message::binary(vec![0u8, 1, 2, 255]),
        Message::binary(big),
        Message::text("κόσμε".repeat(10_000)),
    ];
    for message in &messages {
        client.send(message.clone()).await.unwrap();
        assert_eq!(client.recv().await.unwrap().as_ref(), Some(message));
    }
    client.send(Message::Ping("p".into())).await.unwrap();
    assert_eq!(
        client.recv().await.unwrap(),
        Some(Message::Pong("p".into()))
    );
    client.close(CloseCode::NORMAL, "bye").await.unwrap();
    let reply = Message::Close(Some(CloseFrame {
        code: CloseCode::NORMAL,
        reason: "bye".into(),
    }));
    assert_eq!(client.recv().await.unwrap(), Some(reply));
    // The server closes TCP after the close handshake.
    let end = tokio::time::timeout(Duration::from_secs(10), client.recv()).await;
    assert_eq!(end.unwrap().unwrap(), None);
}

#[tokio::test]
async fn negotiates_permessage_deflate_and_echoes_compressed() {
    let Some(server) = echo(UringServer::new(echo_config())) else {
        return;
    };
    let config = ConnectConfig::default().deflate(DeflateConfig::default());
    let url = format!("ws://{}/", server.addr);
    let (mut client, _) = ws::connect_with(&url, &config).await.unwrap();
    assert!(client.connection().deflate_enabled());
    let text = "compressible ".repeat(5_000);
    for _ in 0..3 {
        client.send(Message::text(text.clone())).await.unwrap();
        assert_eq!(
            client.recv().await.unwrap(),
            Some(Message::text(text.clone()))
        );
    }
}

#[tokio::test]
async fn serves_many_connections_at_once_without_mixing_them() {
    let Some(server) = echo(UringServer::new(echo_config())) else {
        return;
    };
    let url = format!("ws://{}/", server.addr);
    let mut tasks = Vec::new();
    for n in 0..50u32 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let (mut client, _) = ws::connect(&url).await.unwrap();
            for i in 0..100u32 {
                let message = Message::text(format!("{n}:{i}"));
                client.send(message.clone()).await.unwrap();
                assert_eq!(client.recv().await.unwrap(), Some(message));
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

#[test]
fn refuses_a_bad_request_with_400_and_closes() {
    let Some(server) = echo(UringServer::new(echo_config())) else {
        return;
    };
    let mut raw = std::net::TcpStream::connect(&server.addr).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // No Sec-WebSocket-Version: RFC 6455 §4.2.2 says 426 with the version.
    raw.write_all(
        b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .unwrap();
    let mut answer = Vec::new();
    raw.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 426 "), "{answer}");
    assert!(answer.contains("Sec-WebSocket-Version: 13"), "{answer}");
    let mut raw = std::net::TcpStream::connect(&server.addr).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    raw.read_to_end(&mut answer).unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 400 "),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

#[test]
fn a_silent_client_is_closed_at_the_handshake_deadline() {
    let mut config = echo_config();
    config.handshake_timeout = Duration::from_millis(300);
    let Some(server) = echo(UringServer::new(config)) else {
        return;
    };
    let mut raw = std::net::TcpStream::connect(&server.addr).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    let mut rest = Vec::new();
    // Closed by the server (well before the 10 s read timeout would fail this).
    let n = raw.read_to_end(&mut rest).unwrap();
    assert_eq!(n, 0);
}

#[test]
fn over_the_connection_cap_a_client_gets_503() {
    let Some(server) = echo(UringServer::new(echo_config()).max_connections(1)) else {
        return;
    };
    let mut first = std::net::TcpStream::connect(&server.addr).unwrap();
    first.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    let mut second = std::net::TcpStream::connect(&server.addr).unwrap();
    second
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = Vec::new();
    second.read_to_end(&mut answer).unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 503 "),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

#[tokio::test]
async fn a_peer_that_reads_nothing_is_not_read_either_and_others_go_on() {
    // Small windows, so that the writer stops at once.
    let config = AcceptConfig::default().connection(Config::default().output_high_water(64 << 10));
    let Some(server) = echo(UringServer::new(config)) else {
        return;
    };
    // This peer sends and never reads: the server's answers fill the
    // socket buffers, the server stops reading it, and then its own
    // writes block: it can have sent only a bounded amount.
    let (mut hog, _) = ws::connect(&format!("ws://{}/", server.addr))
        .await
        .unwrap();
    let chunk = Message::binary(vec![7u8; 64 << 10]);
    let mut sent = 0usize;
    loop {
        let send = hog.send(chunk.clone());
        match tokio::time::timeout(Duration::from_secs(2), send).await {
            Ok(result) => {
                result.unwrap();
                sent += 64 << 10;
                assert!(
                    sent < 512 << 20,
                    "the server read 512 MiB it could not answer"
                );
            }
            // The server stopped reading: the hog's writes block.
            Err(_) => break,
        }
    }
    // Meanwhile another client is served.
    let (mut other, _) = ws::connect(&format!("ws://{}/", server.addr))
        .await
        .unwrap();
    other.send(Message::text("still here")).await.unwrap();
    assert_eq!(
        other.recv().await.unwrap(),
        Some(Message::text("still here"))
    );
}
