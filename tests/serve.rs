//! `rtwire serve` over real sockets: every transport, resume, slow
//! subscribers, and every bad request's status.
#![cfg(feature = "serve")]

use rtwire::proto::{CloseCode, Message};
mod common;

use common::serve::{
    exchange, get, json_field, publish, start_with, user_token, user_tokens,
    ws_assert_nothing_queued, ws_connect, ws_next_text, ws_send_psst, Running, Sse, Ws,
};
use rtwire::serve::{ServeConfig, TokenAuth};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

async fn start() -> Running {
    start_with(ServeConfig::default(), TokenAuth::default()).await
}

/// A server that knows identities only from user tokens.
async fn start_with_user_tokens() -> Running {
    let auth = TokenAuth {
        user_tokens: Some(user_tokens()),
        ..TokenAuth::default()
    };
    start_with(ServeConfig::default(), auth).await
}

/// Waits until `/metrics` shows `line`: how a test knows a request is held.
async fn wait_for_metric(addr: SocketAddr, line: &str) {
    loop {
        let (_, _, metrics) = get(addr, "/metrics").await;
        if metrics.contains(line) {
            return;
        }
        tokio::task::yield_now().await;
    }
}

/// A WebSocket on `/ws{query}` that has joined `channel`.
async fn ws_join(addr: SocketAddr, query: &str, channel: &str) -> Ws {
    let mut ws = ws_connect(addr, query).await;
    ws.send(Message::text(format!(
        "{{\"op\":\"join\",\"channel\":\"{channel}\"}}"
    )))
    .await
    .unwrap();
    loop {
        let text = ws_next_text(&mut ws).await;
        if text.contains("\"type\":\"joined\"") && text.contains(channel) {
            return ws;
        }
    }
}

#[tokio::test]
async fn one_publish_reaches_all_four_transports_with_the_same_id() {
    let server = start().await;
    let addr = server.addr;
    let mut sse = Sse::open(addr, "/channels/room/events", None).await;
    let mut ws = ws_join(addr, "", "room").await;
    let long_poll =
        tokio::spawn(async move { get(addr, "/channels/room/long-poll?timeout=20").await });
    // Without `since` a long poll waits for the next message: publish once it is held.
    wait_for_metric(addr, "rtwire_sessions_open{transport=\"long_poll\"} 1").await;
    let id = publish(addr, "room", "hello\nworld").await;
    let event = sse.next().await;
    assert_eq!(
        (event.id.as_str(), event.data.clone()),
        (id.as_str(), vec!["hello".to_owned(), "world".to_owned()])
    );
    let delivery = ws_next_text(&mut ws).await;
    assert_eq!(json_field(&delivery, "id").as_deref(), Some(id.as_str()));
    assert_eq!(json_field(&delivery, "channel").as_deref(), Some("room"));
    assert!(
        delivery.contains("\"data\":\"hello\\nworld\""),
        "{delivery}"
    );
    let (status, _, body) = long_poll.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        json_field(&body, "id").as_deref(),
        Some(id.as_str()),
        "{body}"
    );
    let (status, _, body) = get(addr, "/channels/room/poll").await;
    assert_eq!(status, 200);
    assert_eq!(json_field(&body, "id").as_deref(), Some(id.as_str()));
    assert_eq!(json_field(&body, "next").as_deref(), Some(id.as_str()));
    server.shutdown().await;
}

#[tokio::test]
async fn binary_payloads_survive_json_and_sse() {
    let server = start().await;
    let addr = server.addr;
    let mut sse = Sse::open(addr, "/channels/bin/events", None).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let body = [0xffu8, 0x00, 0x10, b'\r'];
    let head = format!(
        "POST /channels/bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 202"));
    let event = sse.next().await;
    assert_eq!(
        (event.event.as_str(), event.data),
        ("binary", vec!["/wAQDQ==".to_owned()])
    );
    let (_, _, poll) = get(addr, "/channels/bin/poll").await;
    assert_eq!(json_field(&poll, "data_b64").as_deref(), Some("/wAQDQ=="));
    server.shutdown().await;
}

#[tokio::test]
async fn resume_loses_nothing_inside_the_history_and_reports_the_gap_outside() {
    let mut config = ServeConfig::default();
    config.hub.history_messages = 5;
    let server = start_with(config, TokenAuth::default()).await;
    let addr = server.addr;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(publish(addr, "r", &format!("m{i}")).await);
    }
    // SSE resumes after the first id: gets m1, m2 and then live m3.
    let mut sse = Sse::open(addr, "/channels/r/events", Some(&ids[0])).await;
    assert_eq!(sse.next().await.data, vec!["m1"]);
    assert_eq!(sse.next().await.data, vec!["m2"]);
    ids.push(publish(addr, "r", "m3").await);
    let event = sse.next().await;
    assert_eq!(
        (event.id.as_str(), event.data),
        (ids[3].as_str(), vec!["m3".to_owned()])
    );
    // Polls from an id get exactly what is newer.
    let (_, _, body) = get(addr, &format!("/channels/r/poll?since={}", ids[1])).await;
    assert!(body.contains("\"resume\":\"exact\""), "{body}");
    assert_eq!(body.matches("\"id\":").count(), 2, "{body}");
    // Push the first messages out of the 5-message history.
    for i in 4..10 {
        ids.push(publish(addr, "r", &format!("m{i}")).await);
    }
    let (_, _, body) = get(addr, &format!("/channels/r/poll?since={}", ids[0])).await;
    assert!(body.contains("\"resume\":\"gap\""), "{body}");
    assert_eq!(
        json_field(&body, "first_available").as_deref(),
        Some(ids[5].as_str())
    );
    let mut sse = Sse::open(addr, "/channels/r/events", Some(&ids[0])).await;
    let notice = sse.next().await;
    assert_eq!(
        (notice.event.as_str(), notice.data),
        ("gap", vec![ids[5].clone()])
    );
    assert_eq!(sse.next().await.id, ids[5]);
    // An id from another epoch (a restarted server) is reported as such.
    let (_, _, body) = get(addr, "/channels/r/poll?since=00000000-1").await;
    assert!(
        body.contains("\"resume\":\"epoch_changed\"") || ids[0].starts_with("00000000"),
        "{body}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_slow_websocket_subscriber_is_dropped_while_a_fast_one_keeps_up() {
    let mut config = ServeConfig::default();
    config.hub.queue_capacity = 64;
    let server = start_with(config, TokenAuth::default()).await;
    let addr = server.addr;
    let mut slow = ws_join(addr, "", "busy").await;
    let mut fast = ws_join(addr, "", "busy").await;
    let payload = "x".repeat(60_000);
    let count = 600;
    let reader = tokio::spawn(async move {
        let mut got = 0;
        while got < count {
            let text = ws_next_text(&mut fast).await;
            if text.contains("\"type\":\"message\"") {
                got += 1;
            }
        }
        got
    });
    for _ in 0..count {
        publish(addr, "busy", &payload).await;
    }
    assert_eq!(
        reader.await.unwrap(),
        count,
        "the fast subscriber got every message"
    );
    // The slow one, reading only now, finds its socket closed with 1013.
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(10), slow.recv())
            .await
            .unwrap()
        {
            Ok(Some(Message::Close(frame))) => break frame,
            Ok(Some(_)) => continue,
            other => panic!("expected a close, got {other:?}"),
        }
    };
    let frame = close.expect("a close code");
    assert_eq!(frame.code, CloseCode(1013));
    assert!(frame.reason.contains("rejoin since"), "{}", frame.reason);
    server.shutdown().await;
}

#[tokio::test]
async fn websocket_rooms_except_sender_and_private_messages() {
    let server = start_with_user_tokens().await;
    let addr = server.addr;
    let alice_query = format!("?user_token={}", user_token("alice"));
    let mut alice = ws_join(addr, &alice_query, "chat").await;
    let bob_query = format!("?user_token={}", user_token("bob"));
    let mut bob = ws_join(addr, &bob_query, "chat").await;
    // Each member hears the joins from its own on (tests/presence.rs has
    // the rest of presence).
    for (ws, who) in [(&mut alice, "alice"), (&mut bob, "bob")] {
        let change = ws_next_text(ws).await;
        assert!(
            change.contains(&format!(r#""joined":["{who}"]"#)),
            "{change}"
        );
    }
    let change = ws_next_text(&mut alice).await;
    assert!(change.contains(r#""joined":["bob"]"#), "{change}");
    alice
        .send(Message::text(
            r#"{"op":"publish","channel":"chat","data":"hi all","except_self":true}"#,
        ))
        .await
        .unwrap();
    let ack = ws_next_text(&mut alice).await;
    assert!(ack.contains("\"type\":\"published\""), "{ack}");
    let got = ws_next_text(&mut bob).await;
    assert!(got.contains("\"data\":\"hi all\""), "{got}");
    ws_send_psst(&mut alice, &mut bob, "bob").await;
    // Alice saw neither her own room message nor Bob's private one: her next
    // message is the answer to a bad command.
    ws_assert_nothing_queued(&mut alice).await;
    alice
        .send(Message::text(r#"{"op":"join","channel":"user:bob"}"#))
        .await
        .unwrap();
    let refused = ws_next_text(&mut alice).await;
    assert!(refused.contains("private"), "{refused}");
    server.shutdown().await;
}

/// A socket's rooms: a second join of the same room is refused, a leave
/// ends one room's deliveries and no other's, and a left room can be
/// joined again.
#[tokio::test]
async fn websocket_rooms_join_leave_and_rejoin() {
    let server = start().await;
    let addr = server.addr;
    let mut ws = ws_join(addr, "", "a").await;
    for room in ["b", "c"] {
        let command = format!(r#"{{"op":"join","channel":"{room}","ref":"{room}"}}"#);
        ws.send(Message::text(command)).await.unwrap();
        let joined = ws_next_text(&mut ws).await;
        assert!(joined.contains(r#""type":"joined""#), "{joined}");
        assert_eq!(json_field(&joined, "ref").as_deref(), Some(room));
    }
    ws.send(Message::text(r#"{"op":"join","channel":"b"}"#))
        .await
        .unwrap();
    let again = ws_next_text(&mut ws).await;
    assert!(again.contains("already joined"), "{again}");

    // Out of the middle of the list: the rooms on either side go on.
    ws.send(Message::text(r#"{"op":"leave","channel":"b"}"#))
        .await
        .unwrap();
    let left = ws_next_text(&mut ws).await;
    assert!(
        left.contains(r#""type":"left""#) && left.contains(r#""b""#),
        "{left}"
    );
    publish(addr, "b", "not for you").await;
    for room in ["c", "a"] {
        let id = publish(addr, room, room).await;
        let got = ws_next_text(&mut ws).await;
        assert_eq!(json_field(&got, "channel").as_deref(), Some(room), "{got}");
        assert_eq!(json_field(&got, "id"), Some(id), "{got}");
    }
    ws_assert_nothing_queued(&mut ws).await;

    ws.send(Message::text(r#"{"op":"join","channel":"b"}"#))
        .await
        .unwrap();
    let rejoined = ws_next_text(&mut ws).await;
    assert!(rejoined.contains(r#""type":"joined""#), "{rejoined}");
    let id = publish(addr, "b", "welcome back").await;
    let got = ws_next_text(&mut ws).await;
    assert_eq!(json_field(&got, "id"), Some(id), "{got}");
    assert!(got.contains("welcome back"), "{got}");
    server.shutdown().await;
}

#[tokio::test]
async fn private_rooms_need_a_signed_user_token() {
    let server = start_with_user_tokens().await;
    let addr = server.addr;
    publish(addr, "user:bob", "for bob").await;
    let poll =
        |query: String| async move { get(addr, &format!("/channels/user:bob/poll{query}")).await };
    // Saying who you are is not enough, nor a token for someone else.
    let (status, _, body) = poll("?user=bob".into()).await;
    assert_eq!(status, 403, "{body}");
    let (status, _, body) = poll(format!("?user_token={}&user=bob", user_token("alice"))).await;
    assert_eq!(status, 403, "{body}");
    // A bad token is refused as such, not served anonymously.
    let forged = user_token("alice").replacen("alice", "bob", 1);
    let (status, _, body) = poll(format!("?user_token={forged}")).await;
    assert_eq!(status, 401, "{body}");
    let expired = user_tokens().mint("bob", 1).unwrap();
    let (status, _, body) = poll(format!("?user_token={expired}")).await;
    assert_eq!((status, body.contains("expired")), (401, true), "{body}");
    // Bob's own token, in the query or the header, reads it.
    let (status, _, body) = poll(format!("?user_token={}", user_token("bob"))).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("for bob"), "{body}");
    let (status, _, body) = exchange(
        addr,
        &format!(
            "GET /channels/user:bob/poll HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: bearer {}\r\n\r\n",
            user_token("bob")
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("for bob"), "{body}");
    // Over WebSocket, only the token joins bob to his room on connecting:
    // that join's answer comes before any command's.
    for (query, first_join) in [
        ("?user=bob".to_owned(), "lobby"),
        (format!("?user_token={}", user_token("bob")), "user:bob"),
    ] {
        let (mut ws, _) = rtwire::ws::connect(&format!("ws://{addr}/ws{query}"))
            .await
            .unwrap();
        ws.send(Message::text(r#"{"op":"join","channel":"lobby"}"#))
            .await
            .unwrap();
        let first = ws_next_text(&mut ws).await;
        let expected = format!("\"type\":\"joined\",\"channel\":\"{first_join}\"");
        assert!(first.contains(&expected), "{query}: {first}");
        ws.send(Message::text(r#"{"op":"join","channel":"user:bob"}"#))
            .await
            .unwrap();
        let answer = ws_next_text(&mut ws).await;
        let refused = answer.contains("private");
        assert_eq!(refused, first_join == "lobby", "{query}: {answer}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn bad_requests_get_their_status() {
    let mut config = ServeConfig::default();
    config.max_body_bytes = 100;
    config.head_timeout = Duration::from_millis(300);
    let server = start_with(config, TokenAuth::default()).await;
    let addr = server.addr;
    let cases: Vec<(String, u16)> = vec![
        (
            "GET /channels/bad%20name/poll HTTP/1.1\r\nHost: x\r\n\r\n".into(),
            400,
        ),
        (
            format!(
                "GET /channels/{}/poll HTTP/1.1\r\nHost: x\r\n\r\n",
                "a".repeat(65)
            ),
            400,
        ),
        (
            "GET /channels/a/poll?since=nonsense HTTP/1.1\r\nHost: x\r\n\r\n".into(),
            400,
        ),
        (
            "GET /channels/a/long-poll?timeout=soon HTTP/1.1\r\nHost: x\r\n\r\n".into(),
            400,
        ),
        ("GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n".into(), 404),
        ("DELETE /channels/a HTTP/1.1\r\nHost: x\r\n\r\n".into(), 405),
        ("POST /channels/a HTTP/1.1\r\nHost: x\r\n\r\n".into(), 411),
        (
            "POST /channels/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                .into(),
            411,
        ),
        (
            "POST /channels/a HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n".into(),
            413,
        ),
        (
            "POST /channels/a HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".into(),
            400,
        ),
        (
            format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(9000)),
            431,
        ),
        (
            "GET /channels/user:bob/poll?user=alice HTTP/1.1\r\nHost: x\r\n\r\n".into(),
            403,
        ),
        ("GARBAGE\r\n\r\n".into(), 400),
        // A head that never finishes: 408 after head_timeout.
        ("GET / HTTP/1.1\r\nHost: x\r\n".into(), 408),
    ];
    for (request, status) in cases {
        let request = request.replacen("\r\n", "\r\nConnection: close\r\n", 1);
        let (got, head, body) = exchange(addr, &request).await;
        assert_eq!(got, status, "{request:?} -> {head}");
        assert!(
            body.ends_with('\n') && body.lines().count() == 1,
            "one-line reason: {body:?}"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn tokens_and_connection_limit() {
    let mut config = ServeConfig::default();
    config.max_connections = 2;
    let auth = TokenAuth {
        publish_token: Some("pub".into()),
        ..TokenAuth::default()
    };
    let server = start_with(config, auth).await;
    let addr = server.addr;
    let post = |token: &str| {
        format!("POST /channels/a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{token}Content-Length: 2\r\n\r\nhi")
    };
    assert_eq!(exchange(addr, &post("")).await.0, 401);
    assert_eq!(
        exchange(addr, &post("Authorization: Bearer nope\r\n"))
            .await
            .0,
        401
    );
    assert_eq!(
        exchange(addr, &post("Authorization: Bearer pub\r\n"))
            .await
            .0,
        202
    );
    assert_eq!(
        exchange(addr, &post("authorization: bearer   pub\r\n"))
            .await
            .0,
        202,
        "the scheme in any case"
    );
    let in_query = "POST /channels/a?token=pub HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi";
    assert_eq!(
        exchange(addr, in_query).await.0,
        401,
        "the publish token only in the header"
    );
    // Two held connections use the limit; the third gets 503.
    let _a = Sse::open(addr, "/channels/a/events", None).await;
    let _b = Sse::open(addr, "/channels/a/events", None).await;
    assert_eq!(get(addr, "/healthz").await.0, 503);
    server.shutdown().await;
}

#[tokio::test]
async fn idle_and_slow_connections_yield_their_slots_to_new_clients() {
    let mut config = ServeConfig::default();
    config.max_connections = 2;
    let server = start_with(config, TokenAuth::default()).await;
    let addr = server.addr;
    // An idle connection and a slowloris head that has been trickling for
    // over a second hold both slots.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /heal").await.unwrap();
    // Connections are accepted in order, so these two hold the slots; the
    // head must be over a second old before it counts as slow.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // A new client is served, not refused: both yield their slots.
    let (status, _, body) = get(addr, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let mut rest = Vec::new();
    idle.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "an idle connection is closed quietly");
    slow.read_to_end(&mut rest).await.unwrap();
    assert!(
        rest.starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&rest)
    );
    server.shutdown().await;
}

#[tokio::test]
async fn keep_alive_serves_many_requests_and_etag_gives_304() {
    let server = start().await;
    let addr = server.addr;
    publish(addr, "k", "one").await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut reader = BufReader::new(&mut stream);
    let mut etag = String::new();
    for round in 0..3 {
        let inm = if round == 2 {
            format!("If-None-Match: {etag}\r\n")
        } else {
            String::new()
        };
        reader
            .get_mut()
            .write_all(format!("GET /channels/k/poll HTTP/1.1\r\nHost: x\r\n{inm}\r\n").as_bytes())
            .await
            .unwrap();
        let mut status = String::new();
        reader.read_line(&mut status).await.unwrap();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).await.unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.strip_prefix("Content-Length: ") {
                length = v.trim().parse().unwrap();
            }
            if let Some(v) = line.strip_prefix("ETag: ") {
                etag = v.trim().to_owned();
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).await.unwrap();
        let expected = if round == 2 {
            "HTTP/1.1 304"
        } else {
            "HTTP/1.1 200"
        };
        assert!(status.starts_with(expected), "round {round}: {status}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_websockets_with_1001_and_ends_held_requests() {
    let server = start().await;
    let addr = server.addr;
    let mut ws = ws_join(addr, "", "s").await;
    let mut sse = Sse::open(addr, "/channels/s/events", None).await;
    let held = tokio::spawn(async move { get(addr, "/channels/s/long-poll?timeout=60").await });
    wait_for_metric(addr, "rtwire_sessions_open{transport=\"long_poll\"} 1").await;
    server.shutdown().await;
    let close = loop {
        match ws.recv().await.unwrap() {
            Some(Message::Close(frame)) => break frame.unwrap(),
            Some(_) => continue,
            None => panic!("closed without a close frame"),
        }
    };
    assert_eq!(close.code, CloseCode::GOING_AWAY);
    let (status, _, body) = held.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"messages\":[]"), "{body}");
    // The stream ends, with no message in it.
    while let Some(event) = sse.next_or_end().await {
        assert!(event.data.is_empty(), "{event:?}");
    }
}

#[tokio::test]
async fn health_metrics_and_demo_page() {
    let server = start().await;
    let addr = server.addr;
    assert_eq!(get(addr, "/healthz").await.0, 200);
    publish(addr, "m", "x").await;
    let (status, _, metrics) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("rtwire_messages_published_total 1"),
        "{metrics}"
    );
    let (status, head, page) = get(addr, "/").await;
    assert_eq!(status, 200);
    assert!(head.contains("text/html"));
    // The page is built on the client module, which offers every transport.
    assert!(page.contains(r#"import { connect } from "/rtwire.js""#));
    for transport in ["websocket", "sse", "long-poll", "poll"] {
        assert!(
            page.contains(&format!(r#"value="{transport}""#)),
            "{transport}"
        );
    }
    let (status, _, module) = get(addr, "/rtwire.js").await;
    assert_eq!(status, 200);
    for route in ["\"/ws\"", "}/events`", "}/long-poll`", "}/poll`"] {
        assert!(module.contains(route), "{route}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn websocket_deflate_compresses_a_message_once_for_every_socket_that_shares_parameters() {
    use rtwire::hub::FormatKey;
    use rtwire::proto::deflate::DeflateConfig;
    use rtwire::ws::ConnectConfig;
    // `serve` accepts deflate with DeflateConfig::lean() by default.
    let server = start().await;
    let addr = server.addr;
    let eight_bits = DeflateConfig {
        server_max_window_bits: 8,
        ..DeflateConfig::lean()
    };
    // Two offers that end on the server's own parameters, one that limits
    // its window to 8 bits (it then sends plain), and none.
    let offers = [
        Some(DeflateConfig::default()),
        Some(DeflateConfig::lean()),
        Some(eight_bits),
        None,
    ];
    let mut sockets = Vec::new();
    for offer in &offers {
        let config = match offer {
            Some(deflate) => ConnectConfig::default().deflate(deflate.clone()),
            None => ConnectConfig::default(),
        };
        let (mut ws, _) = rtwire::ws::connect_with(&format!("ws://{addr}/ws"), &config)
            .await
            .unwrap();
        assert_eq!(ws.connection().deflate_enabled(), offer.is_some());
        ws.send(Message::text(r#"{"op":"join","channel":"z"}"#))
            .await
            .unwrap();
        assert!(ws_next_text(&mut ws).await.contains("\"joined\""));
        sockets.push(ws);
    }
    let text = "the same words for every socket, ".repeat(30);
    let id = publish(addr, "z", &text).await;
    for ws in &mut sockets {
        let got = ws_next_text(ws).await;
        assert_eq!(json_field(&got, "id").as_deref(), Some(id.as_str()));
        assert_eq!(json_field(&got, "data").as_deref(), Some(text.as_str()));
    }
    // The message carries one compressed copy, made by the first socket
    // and written by both: what the server's parameters make of its JSON.
    let message = server.hub.latest("z").unwrap();
    let json = message.encoded(FormatKey::WS_TEXT, |_| unreachable!("encoded once"));
    let shared = message.encoded(FormatKey::WS_DEFLATE, |_| unreachable!("compressed once"));
    let key = DeflateConfig::lean().server_compression_key().unwrap();
    assert_eq!(shared.to_vec(), key.compress(&json));
    assert!(
        shared.len() < json.len() / 4,
        "{} of {}",
        shared.len(),
        json.len()
    );
    server.shutdown().await;
}
