//! The handshake as applications use it, over real loopback TCP: client
//! headers and timeouts, the server's look at the request (`Upgrade`,
//! `accept_with_callback`), refusals with their status, headers and body,
//! and what the socket keeps of the handshake.

use rtwire::handshake::{HandshakeError, RejectedResponse, MAX_REJECTED_BODY};
use rtwire::proto::{Config, Message, Role};
use rtwire::ws::{
    self, AcceptConfig, AcceptResponse, ConnectConfig, Error, MaybeTlsStream, Rejection, Upgrade,
    WebSocket,
};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// A listener on a free loopback port, and its `ws://` URL.
async fn listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    (listener, url)
}

/// Reads from `stream` until the end of an HTTP head; returns the head.
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "head cut short");
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// A server that answers one request head with `answer`, then holds the
/// connection open until the client goes.
async fn raw_server(answer: Vec<u8>) -> String {
    let (listener, url) = listener().await;
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        read_head(&mut stream).await;
        stream.write_all(&answer).await.unwrap();
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
    });
    url
}

/// The refusal inside a client's error.
fn rejected(
    result: Result<(WebSocket<MaybeTlsStream<TcpStream>>, rtwire::http::Response), Error>,
) -> RejectedResponse {
    match result {
        Err(Error::Handshake(HandshakeError::Rejected(r))) => *r,
        Err(other) => panic!("expected a refusal, got {other:?}"),
        Ok(_) => panic!("expected a refusal, the handshake succeeded"),
    }
}

#[tokio::test]
async fn client_headers_and_peer_address_reach_the_server() {
    let (listener, url) = listener().await;
    let (seen_tx, seen) = oneshot::channel();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let upgrade = Upgrade::read_tcp(stream, &AcceptConfig::default())
            .await
            .unwrap();
        let request = upgrade.request().clone();
        let peer = upgrade.peer_addr();
        let origin = upgrade.origin().map(str::to_string);
        let mut ws = upgrade.accept(AcceptResponse::new()).await.unwrap();
        // The socket keeps the request the application saw.
        assert_eq!(ws.request(), Some(&request));
        assert_eq!(ws.response(), None);
        seen_tx.send((request, peer, origin)).unwrap();
        while let Ok(Some(message)) = ws.recv().await {
            if message.is_data() {
                ws.send(message).await.unwrap();
            }
        }
    });

    let config = ConnectConfig::default()
        .header("Authorization", "Bearer s3cret")
        .header("Origin", "https://app.example")
        .header("Cookie", "a=1")
        .header("Cookie", "b=2")
        .header("User-Agent", "handshake-api-test/1");
    let (mut client, response) = ws::connect_with(&format!("{url}room/7?since=42"), &config)
        .await
        .unwrap();
    let (request, peer, origin) = seen.await.unwrap();

    assert_eq!(request.method, "GET");
    assert_eq!(request.path(), "/room/7");
    assert_eq!(request.query(), Some("since=42"));
    let h = &request.headers;
    assert_eq!(h.get("authorization"), Some("Bearer s3cret"));
    assert_eq!(h.get("user-agent"), Some("handshake-api-test/1"));
    assert_eq!(h.get_all("cookie").collect::<Vec<_>>(), ["a=1", "b=2"]);
    assert_eq!(origin.as_deref(), Some("https://app.example"));
    assert_eq!(peer, Some(client.get_ref().get_ref().local_addr().unwrap()));

    assert_eq!(client.response(), Some(&response));
    assert_eq!(client.request(), None);
    assert_eq!(client.protocol(), None);
    client
        .send(Message::text("still a websocket"))
        .await
        .unwrap();
    assert_eq!(
        client.recv().await.unwrap(),
        Some(Message::text("still a websocket"))
    );
}

#[tokio::test]
async fn chosen_subprotocol_and_added_headers_are_seen_on_both_sides() {
    let (listener, url) = listener().await;
    let server = tokio::spawn(async move {
        let (stream, addr) = listener.accept().await.unwrap();
        let upgrade = Upgrade::read(stream, &AcceptConfig::default())
            .await
            .unwrap()
            .with_peer_addr(addr);
        assert_eq!(upgrade.peer_addr(), Some(addr));
        let offered = upgrade.offered_protocols().to_vec();
        let answer = AcceptResponse::new()
            .protocol("chat.v1")
            .header("X-Session", "42")
            .header("Set-Cookie", "s=1; HttpOnly");
        let mut ws = upgrade.accept(answer).await.unwrap();
        assert_eq!(ws.protocol(), Some("chat.v1"));
        ws.send(Message::text("hi")).await.unwrap();
        offered
    });

    let config = ConnectConfig::default().protocols(["chat.v2", "chat.v1"]);
    let (mut client, response) = ws::connect_with(&url, &config).await.unwrap();
    assert_eq!(server.await.unwrap(), ["chat.v2", "chat.v1"]);
    assert_eq!(client.protocol(), Some("chat.v1"));
    assert_eq!(
        response.headers.get("sec-websocket-protocol"),
        Some("chat.v1")
    );
    assert_eq!(response.headers.get("x-session"), Some("42"));
    assert_eq!(response.headers.get("set-cookie"), Some("s=1; HttpOnly"));
    assert_eq!(client.recv().await.unwrap(), Some(Message::text("hi")));
}

#[tokio::test]
async fn the_callback_refusal_reaches_the_client_with_status_headers_and_body() {
    let (listener, url) = listener().await;
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        ws::accept_with_callback(stream, &AcceptConfig::default(), |upgrade| {
            match upgrade.request().headers.get("authorization") {
                Some("Bearer good") => Ok(AcceptResponse::new()),
                _ => Err(Rejection::new(401)
                    .header("WWW-Authenticate", "Bearer realm=\"rtwire\"")
                    .body("a valid token is required\n")),
            }
        })
        .await
    });

    let config = ConnectConfig::default().header("Authorization", "Bearer bad");
    let result = ws::connect_with(&url, &config).await;
    let err = result.as_ref().map(|_| ()).unwrap_err();
    assert!(err.is_peer_fault(), "the server refused us: {err}");
    assert_eq!(
        err.to_string(),
        "handshake failed: server answered status 401 instead of 101"
    );
    let refusal = rejected(result);
    assert_eq!(
        (refusal.status, refusal.reason.as_str()),
        (401, "Unauthorized")
    );
    assert_eq!(
        refusal.headers.get("www-authenticate"),
        Some("Bearer realm=\"rtwire\"")
    );
    assert_eq!(refusal.body, b"a valid token is required\n");
    assert_eq!(refusal.body_text(), "a valid token is required\n");
    assert!(!refusal.body_truncated);

    match server.await.unwrap() {
        Err(Error::Refused(401)) => {}
        other => panic!("the server should report its refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn the_callback_accepts_with_its_answer() {
    let (listener, url) = listener().await;
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut ws = ws::accept_with_callback(stream, &AcceptConfig::default(), |upgrade| {
            assert_eq!(
                upgrade.request().headers.get("authorization"),
                Some("Bearer good")
            );
            Ok(AcceptResponse::new().header("X-User", "ada"))
        })
        .await
        .unwrap();
        ws.send(Message::text("welcome")).await.unwrap();
    });
    let config = ConnectConfig::default().header("Authorization", "Bearer good");
    let (mut client, response) = ws::connect_with(&url, &config).await.unwrap();
    assert_eq!(response.headers.get("x-user"), Some("ada"));
    assert_eq!(client.recv().await.unwrap(), Some(Message::text("welcome")));
}

#[tokio::test]
async fn a_large_refusal_body_is_cut_at_64_kib() {
    let (listener, url) = listener().await;
    // No two 1 KiB blocks alike, so the cut shows where it was made.
    let body: Vec<u8> = (0..100 * 1024u32).map(|i| (i % 251) as u8).collect();
    let sent = body.clone();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let upgrade = Upgrade::read(stream, &AcceptConfig::default())
            .await
            .unwrap();
        upgrade.reject(Rejection::new(404).body(sent)).await
    });
    let refusal = rejected(ws::connect(&url).await);
    assert_eq!(refusal.status, 404);
    assert_eq!(refusal.headers.get("content-length"), Some("102400"));
    assert_eq!(refusal.body.len(), MAX_REJECTED_BODY);
    assert_eq!(refusal.body, body[..MAX_REJECTED_BODY]);
    assert!(refusal.body_truncated);
}

#[tokio::test]
async fn a_chunked_refusal_on_a_kept_alive_connection_is_read_whole() {
    // The server keeps the connection open: only the chunked framing says
    // where the body ends. Waiting for the deadline would mark it truncated.
    let url = raw_server(
        b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n\
          6\r\norigin\r\n0c;x=y\r\n not allowed\r\n0\r\n\r\n"
            .to_vec(),
    )
    .await;
    let config = ConnectConfig::default().handshake_timeout(Duration::from_secs(60));
    let refusal = rejected(ws::connect_with(&url, &config).await);
    assert_eq!(refusal.status, 403);
    assert_eq!(refusal.body, b"origin not allowed");
    assert!(!refusal.body_truncated);
}

#[tokio::test]
async fn a_refusal_body_still_arriving_at_the_deadline_is_kept_and_marked() {
    let url = raw_server(
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 1000\r\n\r\nbusy, try".to_vec(),
    )
    .await;
    let config = ConnectConfig::default().handshake_timeout(Duration::from_millis(200));
    let refusal = rejected(ws::connect_with(&url, &config).await);
    assert_eq!(refusal.status, 503);
    assert_eq!(refusal.body, b"busy, try");
    assert!(refusal.body_truncated);
}

#[tokio::test]
async fn headers_the_handshake_owns_are_refused_before_connecting() {
    let (listener, url) = listener().await;
    let forbidden = [
        ("Host", "elsewhere.example"),
        ("Upgrade", "h2c"),
        ("connection", "close"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "8"),
        ("Sec-WebSocket-Protocol", "chat"),
        ("Sec-WebSocket-Extensions", "permessage-deflate"),
        ("Content-Length", "0"),
        ("Transfer-Encoding", "chunked"),
    ];
    for (name, value) in forbidden {
        let config = ConnectConfig::default()
            .header("X-Fine", "1")
            .header(name, value);
        let err = ws::connect_with(&url, &config)
            .await
            .map(|_| ())
            .unwrap_err();
        assert!(
            matches!(&err, Error::Handshake(HandshakeError::ReservedHeader(n)) if n == name),
            "{name}: {err:?}"
        );
        assert!(!err.is_peer_fault(), "{name}");
    }
    let bad = [
        (
            "X Bad",
            "1",
            HandshakeError::InvalidHeaderName("X Bad".into()),
        ),
        ("", "1", HandshakeError::InvalidHeaderName("".into())),
        (
            "X-Inject",
            "1\r\nX-Evil: 1",
            HandshakeError::InvalidHeaderValue("X-Inject".into()),
        ),
        (
            "X-Nul",
            "a\0b",
            HandshakeError::InvalidHeaderValue("X-Nul".into()),
        ),
    ];
    for (name, value, expected) in bad {
        let config = ConnectConfig::default().header(name, value);
        match ws::connect_with(&url, &config).await {
            Err(Error::Handshake(e)) => {
                assert_eq!(e, expected);
                assert!(!e.is_peer_fault());
            }
            other => panic!("{name:?}: {:?}", other.map(|_| ())),
        }
    }
    // None of those opened a connection: the first one accepted is this probe.
    let probe = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (_, first) = listener.accept().await.unwrap();
    assert_eq!(first, probe.local_addr().unwrap());
}

#[tokio::test]
async fn server_answers_that_may_not_be_sent_become_a_500() {
    let (listener, url) = listener().await;
    let server = tokio::spawn(async move {
        let mut errors = Vec::new();
        for attempt in 0..3 {
            let (stream, _) = listener.accept().await.unwrap();
            let upgrade = Upgrade::read(stream, &AcceptConfig::default())
                .await
                .unwrap();
            let err = match attempt {
                0 => upgrade
                    .accept(AcceptResponse::new().header("Sec-WebSocket-Accept", "forged"))
                    .await
                    .map(|_| ())
                    .unwrap_err(),
                1 => upgrade
                    .accept(AcceptResponse::new().protocol("unoffered"))
                    .await
                    .map(|_| ())
                    .unwrap_err(),
                _ => upgrade.reject(Rejection::new(101)).await.unwrap_err(),
            };
            errors.push(err);
        }
        errors
    });
    for _ in 0..3 {
        let refusal = rejected(ws::connect(&url).await);
        assert_eq!(refusal.status, 500);
    }
    let errors = server.await.unwrap();
    assert!(matches!(
        &errors[0],
        Error::Handshake(HandshakeError::ReservedHeader(n)) if n == "Sec-WebSocket-Accept"
    ));
    assert!(matches!(
        &errors[1],
        Error::Handshake(HandshakeError::ProtocolNotOffered(p)) if p == "unoffered"
    ));
    assert!(matches!(
        &errors[2],
        Error::Handshake(HandshakeError::InvalidRejectionStatus(101))
    ));
    for e in &errors {
        assert!(!e.is_peer_fault(), "{e}");
    }
}

#[tokio::test]
async fn a_malformed_request_is_still_answered_by_upgrade_read() {
    let cases: [(&[u8], u16); 3] = [
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            426,
        ),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ", 431),
    ];
    for (request, status) in cases {
        let mut request = request.to_vec();
        if status == 431 {
            request.resize(300, b'x'); // past the 256 bytes allowed below
        }
        let (listener, _) = listener().await;
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut config = AcceptConfig::default();
            config.head_limits = rtwire::http::HeadLimits {
                max_head_bytes: 256,
                max_headers: 8,
            };
            Upgrade::read(stream, &config).await.map(|_| ())
        });
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(&request).await.unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        let expected = format!("HTTP/1.1 {status} ");
        assert!(
            answer.starts_with(expected.as_bytes()),
            "{}",
            String::from_utf8_lossy(&answer)
        );
        match server.await.unwrap() {
            Err(Error::Handshake(e)) => {
                assert_eq!(e.status(), status);
                assert!(e.is_peer_fault());
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn the_handshake_times_out_against_a_server_that_never_answers() {
    let (listener, url) = listener().await;
    let (done_tx, done) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        read_head(&mut stream).await;
        // Holds the connection, silent, until the test ends.
        let _ = done.await;
    });
    let config = ConnectConfig::default().handshake_timeout(Duration::from_millis(200));
    let err = ws::connect_with(&url, &config)
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(err, Error::HandshakeTimeout), "{err:?}");
    assert!(err.is_peer_fault());
    drop(done_tx);
}

#[tokio::test(start_paused = true)]
async fn the_handshake_deadline_is_ten_seconds_unless_set() {
    // A peer that takes the request and never answers, in paused time.
    let (client_io, _silent_peer) = tokio::io::duplex(64 * 1024);
    let url = rtwire::handshake::WsUrl::parse("ws://localhost/").unwrap();
    let start = tokio::time::Instant::now();
    let err = ws::client_handshake(client_io, &url, &ConnectConfig::default())
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(err, Error::HandshakeTimeout), "{err:?}");
    // Paused time jumps straight to the deadline: this is exact, not a race.
    assert_eq!(start.elapsed(), Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn upgrade_read_times_out_on_a_request_that_never_ends() {
    let (mut client_io, server_io) = tokio::io::duplex(64 * 1024);
    client_io
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n")
        .await
        .unwrap();
    let err = Upgrade::read(server_io, &AcceptConfig::default())
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(err, Error::HandshakeTimeout), "{err:?}");
}

/// Linux drops a SYN to a listener whose accept queue is full, so a
/// connection to it hangs until the connect timeout. The test first checks
/// that this holds on the machine running it, so it cannot pass by luck.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_connect_times_out_against_a_full_backlog() {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr: SocketAddr = socket.local_addr().unwrap();
    let _listener = socket.listen(1).unwrap(); // never accepts
    let mut held = Vec::new();
    let mut full = false;
    for _ in 0..16 {
        match tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(addr)).await {
            Ok(stream) => held.push(stream.unwrap()),
            Err(_) => {
                full = true;
                break;
            }
        }
    }
    assert!(
        full,
        "the accept queue never filled ({} connections)",
        held.len()
    );

    let config = ConnectConfig::default().connect_timeout(Duration::from_millis(200));
    let err = ws::connect_with(&format!("ws://{addr}/"), &config)
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(err, Error::ConnectTimeout), "{err:?}");
    assert!(!err.is_peer_fault());
}

#[tokio::test]
async fn sockets_made_without_a_handshake_have_no_handshake_detail() {
    let (a, _b) = tokio::io::duplex(1024);
    let ws = WebSocket::from_raw(a, Role::Server, Config::default(), &[]);
    assert_eq!(
        (ws.protocol(), ws.request(), ws.response()),
        (None, None, None)
    );
}

#[tokio::test]
async fn a_server_may_choose_not_to_keep_the_request() {
    let (client_io, server_io) = tokio::io::duplex(4096);
    let server = tokio::spawn(async move {
        let config = AcceptConfig::default().keep_request(false);
        let upgrade = Upgrade::read(server_io, &config).await.unwrap();
        assert_eq!(upgrade.request().path(), "/kept");
        let ws = upgrade.accept(AcceptResponse::new()).await.unwrap();
        (ws.request().is_none(), ws.protocol().is_none())
    });
    let url = rtwire::handshake::WsUrl::parse("ws://localhost/kept").unwrap();
    let (_client, _) = ws::client_handshake(client_io, &url, &ConnectConfig::default())
        .await
        .unwrap();
    assert_eq!(server.await.unwrap(), (true, true));
}
