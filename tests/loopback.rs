//! rtwire's client and server over real loopback sockets, and the server
//! against raw bytes written by hand.
mod common;

use rtwire::handshake::ServerOptions;
use rtwire::proto::{CloseCode, CloseFrame, Config, Message, ProtocolError, Role};
use rtwire::ws::{self, AcceptConfig, Error, WebSocket};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Starts a server that runs `handler` on each accepted WebSocket; returns its address.
async fn serve<F, Fut>(config: AcceptConfig, handler: F) -> String
where
    F: Fn(Result<WebSocket<TcpStream>, Error>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let handler = std::sync::Arc::new(handler);
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let handler = handler.clone();
            let config = config.clone();
            tokio::spawn(async move { handler(ws::accept_with(stream, &config).await).await });
        }
    });
    addr
}

async fn echo_server(config: AcceptConfig) -> String {
    serve(config, |socket| async move {
        let mut socket = socket.unwrap();
        while let Ok(Some(message)) = socket.recv().await {
            if message.is_data() {
                socket.send(message).await.unwrap();
            }
        }
    })
    .await
}

#[tokio::test]
async fn client_and_server_exchange_messages_and_close_cleanly() {
    let addr = echo_server(AcceptConfig::default()).await;
    let (mut client, response) = ws::connect(&format!("ws://{addr}/echo")).await.unwrap();
    assert_eq!(response.status, 101);
    let big: Vec<u8> = (0..3_000_000u32).map(|i| i as u8).collect();
    let messages = vec![
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
    // The server's reply echoes the code and the reason.
    let expected_close = Message::Close(Some(CloseFrame {
        code: CloseCode::NORMAL,
        reason: "bye".into(),
    }));
    assert_eq!(client.recv().await.unwrap(), Some(expected_close));
    // The server closes TCP; the client sees the end.
    let end = tokio::time::timeout(Duration::from_secs(10), client.recv()).await;
    assert_eq!(end.unwrap().unwrap(), None);
}

#[tokio::test]
async fn recv_is_cancel_safe() {
    let (mut raw, server_io) = tokio::io::duplex(1 << 16);
    let mut server = WebSocket::from_raw(server_io, Role::Server, Config::default(), &[]);
    let text = "a message that arrives in pieces ".repeat(100);
    let mut bytes = common::client_frame(true, 0x1, text.as_bytes());
    bytes.extend(common::client_frame(true, 0x2, b"second"));
    let pieces: Vec<&[u8]> = bytes.chunks(7).collect();
    // After each piece, poll recv once (the timeout polls its future before
    // checking the clock) and drop it: whatever it read must not be lost.
    let mut received = Vec::new();
    for piece in pieces {
        raw.write_all(piece).await.unwrap();
        if let Ok(message) = tokio::time::timeout(Duration::ZERO, server.recv()).await {
            received.push(message.unwrap().unwrap());
        }
    }
    while received.len() < 2 {
        received.push(server.recv().await.unwrap().unwrap());
    }
    assert_eq!(
        received,
        vec![Message::text(text), Message::binary(&b"second"[..])]
    );
}

#[tokio::test]
async fn split_halves_work_from_two_tasks_and_the_reader_answers_pings() {
    let addr = serve(AcceptConfig::default(), |socket| async move {
        let mut socket = socket.unwrap();
        // Ping the client, expect the pong although the client's writer is
        // busy elsewhere, then tell it so.
        socket
            .send(Message::Ping("are you alive".into()))
            .await
            .unwrap();
        let mut data_seen = 0;
        loop {
            match socket.recv().await.unwrap() {
                Some(Message::Pong(p)) => {
                    assert_eq!(&p[..], b"are you alive");
                    socket.send(Message::text("got pong")).await.unwrap();
                }
                Some(Message::Binary(_)) => data_seen += 1,
                Some(Message::Close(_)) => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(data_seen, 100);
    })
    .await;
    let (client, _) = ws::connect(&format!("ws://{addr}/")).await.unwrap();
    let (mut reader, mut writer) = client.split();
    let writing = tokio::spawn(async move {
        for i in 0..100u32 {
            writer
                .send(Message::binary(i.to_be_bytes().to_vec()))
                .await
                .unwrap();
        }
        writer
    });
    assert_eq!(
        reader.recv().await.unwrap(),
        Some(Message::Ping("are you alive".into()))
    );
    assert_eq!(
        reader.recv().await.unwrap(),
        Some(Message::text("got pong"))
    );
    let mut writer = writing.await.unwrap();
    writer.close(CloseCode::NORMAL, "").await.unwrap();
    assert!(matches!(
        reader.recv().await.unwrap(),
        Some(Message::Close(_))
    ));
    assert_eq!(reader.recv().await.unwrap(), None);
}

/// Writes a raw request and returns the server's whole answer.
async fn raw_exchange(addr: &str, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

fn upgrade_request(extra: &str, version: &str) -> Vec<u8> {
    format!(
        "GET /chat HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: {version}\r\n{extra}\r\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn bad_handshakes_get_their_status_over_the_wire() {
    let options = ServerOptions {
        protocols: vec!["chat".into()],
        allowed_origins: Some(vec!["http://good.example".into()]),
    };
    let addr = serve(AcceptConfig::default().hook(options), |socket| async move {
        if let Ok(mut socket) = socket {
            let _ = socket.recv().await;
        }
    })
    .await;
    let good_origin = "Origin: http://good.example\r\n";
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (upgrade_request(good_origin, "8"), "HTTP/1.1 426"),
        (
            upgrade_request("Origin: http://evil.example\r\n", "13"),
            "HTTP/1.1 403",
        ),
        (
            b"POST /chat HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            "HTTP/1.1 400",
        ),
        (
            b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
           Sec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n\r\n"
                .to_vec(),
            "HTTP/1.1 400",
        ),
        (b"NOT HTTP AT ALL\r\n\r\n".to_vec(), "HTTP/1.1 400"),
        (
            format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(9000)).into_bytes(),
            "HTTP/1.1 431",
        ),
    ];
    for (request, status) in cases {
        let answer = raw_exchange(&addr, &request).await;
        assert!(answer.starts_with(status), "{status}: got {answer:?}");
        assert_eq!(
            answer.lines().last().map(str::is_empty),
            Some(false),
            "a reason in the body"
        );
    }
    let answer = raw_exchange(&addr, &upgrade_request(good_origin, "8")).await;
    assert!(answer.contains("Sec-WebSocket-Version: 13\r\n"));
    // A good request is accepted with the RFC's accept value and the chosen protocol.
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let request = upgrade_request(
        &format!("{good_origin}Sec-WebSocket-Protocol: superchat, chat\r\n"),
        "13",
    );
    stream.write_all(&request).await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = stream.read(&mut buf).await.unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 101 "), "{answer}");
    assert!(answer.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    assert!(answer.contains("Sec-WebSocket-Protocol: chat\r\n"));
}

/// Reads frames from a raw client socket until the server's close frame;
/// returns its code and checks the server then closes TCP.
async fn close_code_from(stream: &mut TcpStream) -> u16 {
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let frames = common::decode_all(&answer);
    let close = frames.last().expect("a close frame");
    assert_eq!(close.opcode, rtwire::proto::frame::OpCode::Close);
    u16::from_be_bytes([close.payload[0], close.payload[1]])
}

async fn upgraded_raw_client(addr: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(&upgrade_request("", "13")).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        stream.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"));
    stream
}

#[tokio::test]
async fn invalid_utf8_fails_before_the_frame_completes_over_the_wire() {
    let (errors, mut errors_rx) = tokio::sync::mpsc::unbounded_channel();
    let addr = serve(AcceptConfig::default(), move |socket| {
        let errors = errors.clone();
        async move {
            let mut socket = socket.unwrap();
            let result = socket.recv().await;
            errors
                .send(result.map(|_| ()).err().map(|e| e.to_string()))
                .unwrap();
        }
    })
    .await;
    let mut stream = upgraded_raw_client(&addr).await;
    // A 1000-byte text frame whose 4th byte is impossible; send only 10 bytes
    // of its payload and keep the connection open.
    let mut payload = b"abc".to_vec();
    payload.push(0xff);
    payload.resize(1000, b'x');
    let frame = common::client_frame(true, 0x1, &payload);
    stream.write_all(&frame[..frame.len() - 990]).await.unwrap();
    assert_eq!(close_code_from(&mut stream).await, 1007);
    let error = errors_rx.recv().await.unwrap().expect("an error");
    assert!(error.contains("UTF-8"), "{error}");
}

#[tokio::test]
async fn oversized_message_gets_1009_over_the_wire() {
    let config = AcceptConfig::default().connection(Config::default().max_message_size(1000));
    let addr = serve(config, |socket| async move {
        let mut socket = socket.unwrap();
        let result = socket.recv().await;
        assert!(matches!(
            result,
            Err(Error::Protocol(ProtocolError::MessageTooBig {
                limit: 1000
            }))
        ));
    })
    .await;
    let mut stream = upgraded_raw_client(&addr).await;
    let mut bytes = common::client_frame(false, 0x2, &[0u8; 600]);
    bytes.extend(common::client_frame(true, 0x0, &[0u8; 600]));
    stream.write_all(&bytes).await.unwrap();
    assert_eq!(close_code_from(&mut stream).await, 1009);
}

#[tokio::test]
async fn a_misbehaving_client_does_not_disturb_another() {
    let addr = echo_server(AcceptConfig::default()).await;
    let (mut good, _) = ws::connect(&format!("ws://{addr}/")).await.unwrap();
    let mut bad = upgraded_raw_client(&addr).await;
    bad.write_all(&common::server_frame(true, 0x1, b"unmasked"))
        .await
        .unwrap();
    assert_eq!(close_code_from(&mut bad).await, 1002);
    good.send(Message::text("still here")).await.unwrap();
    assert_eq!(
        good.recv().await.unwrap(),
        Some(Message::text("still here"))
    );
}

#[tokio::test]
async fn permessage_deflate_is_negotiated_and_used_over_the_wire() {
    use rtwire::proto::deflate::DeflateConfig;
    use rtwire::ws::ConnectConfig;
    let addr = echo_server(AcceptConfig::default().deflate(DeflateConfig::default())).await;
    let config = ConnectConfig::default().deflate(DeflateConfig::lean());
    let (mut client, response) = ws::connect_with(&format!("ws://{addr}/"), &config)
        .await
        .unwrap();
    let answer = response.headers.get("sec-websocket-extensions").unwrap();
    assert_eq!(
        answer,
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
         server_max_window_bits=9; client_max_window_bits=9"
    );
    assert!(client.connection().deflate_enabled());
    let text = "compress me, ".repeat(5000);
    for _ in 0..3 {
        client.send(Message::text(text.clone())).await.unwrap();
        assert_eq!(
            client.recv().await.unwrap(),
            Some(Message::text(text.clone()))
        );
    }
    // A server without the extension declines the offer; the client goes on plain.
    let plain = echo_server(AcceptConfig::default()).await;
    let (mut client, response) = ws::connect_with(&format!("ws://{plain}/"), &config)
        .await
        .unwrap();
    assert!(response.headers.get("sec-websocket-extensions").is_none());
    assert!(!client.connection().deflate_enabled());
    client.send(Message::text(text.clone())).await.unwrap();
    assert_eq!(client.recv().await.unwrap(), Some(Message::text(text)));
}
