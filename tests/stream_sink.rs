//! `futures::Stream` and `futures::Sink` for `WebSocket` and its halves:
//! what `recv` and `send` guarantee must hold through them too.
#![cfg(feature = "futures")]
mod common;

use std::future::{poll_fn, ready, Future};
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use futures_core::Stream;
use futures_sink::Sink;
use futures_util::{stream, SinkExt, StreamExt, TryStreamExt};
use rtwire::proto::{CloseCode, CloseFrame, Config, Message, Role};
use rtwire::ws::{Error, WebSocket};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

type Socket = WebSocket<DuplexStream>;

/// A server and a client socket joined by a duplex of `capacity` bytes.
fn pair(capacity: usize, server_config: Config) -> (Socket, Socket) {
    let (server_io, client_io) = tokio::io::duplex(capacity);
    (
        WebSocket::from_raw(server_io, Role::Server, server_config, &[]),
        WebSocket::from_raw(client_io, Role::Client, Config::default(), &[]),
    )
}

fn close_message(code: CloseCode, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

/// The `i`th message of a test: sizes and kinds vary, content is unique.
fn numbered(i: usize) -> Message {
    match i % 3 {
        0 => Message::text(format!("{i}: {}", "κόσμε ".repeat(i % 50))),
        1 => Message::binary(vec![i as u8; (i * 37) % 3000]),
        _ => Message::binary(vec![(i >> 8) as u8; 70_000 + i]),
    }
}

#[tokio::test]
async fn next_yields_every_message_then_none_once_closed() {
    let (mut server, mut client) = pair(64 * 1024, Config::default());
    let sent = vec![
        Message::text("hello"),
        Message::binary(vec![1u8, 2, 3]),
        Message::Ping("p".into()),
        Message::Pong("q".into()),
    ];
    for message in &sent {
        client.feed(message.clone()).unwrap();
    }
    client.close(CloseCode::NORMAL, "done").await.unwrap();
    let mut received = Vec::new();
    while let Some(item) = server.next().await {
        received.push(item.unwrap());
    }
    let mut expected = sent;
    expected.push(close_message(CloseCode::NORMAL, "done"));
    assert_eq!(received, expected);
    assert!(server.next().await.is_none(), "and stays ended");
    // The client gets the pong and the echoed close, then the end.
    let rest: Vec<Message> = client.try_collect().await.unwrap();
    assert_eq!(
        rest,
        vec![
            Message::Pong("p".into()),
            close_message(CloseCode::NORMAL, "done")
        ]
    );
}

#[tokio::test]
async fn forward_echoes_through_split_halves() {
    // A transport that holds far less than what is in flight: each end
    // keeps reading while its own messages wait to be written (only
    // unread pongs stop it), so two ends that both write before they read
    // do not stall each other.
    let (server, client) = pair(4 << 10, Config::default());
    let echo = tokio::spawn(async move {
        let (read, write) = server.split();
        read.try_filter(|m| ready(m.is_data())).forward(write).await
    });
    let (mut client_read, mut client_write) = client.split();
    let count = 60;
    let sending = tokio::spawn(async move {
        let messages = (0..count).map(|i| Ok::<_, Error>(numbered(i)));
        client_write
            .send_all(&mut stream::iter(messages))
            .await
            .unwrap();
        client_write
    });
    for i in 0..count {
        let echoed = client_read.next().await.expect("open").unwrap();
        assert!(echoed == numbered(i), "message {i}: {} bytes", echoed.len());
    }
    let mut client_write = sending.await.unwrap();
    SinkExt::close(&mut client_write).await.unwrap();
    assert_eq!(
        client_read.next().await.expect("open").unwrap(),
        close_message(CloseCode::NORMAL, "")
    );
    assert!(client_read.next().await.is_none());
    echo.await
        .unwrap()
        .expect("forward ends cleanly at the close");
}

/// The pieces written are 1, 2, ... up to this many bytes long, and again.
const MAX_PIECE: usize = 23;

/// Writes `bytes` to the peer in small pieces, and after each piece polls
/// `next()` in a `select!` against a timer until the timer wins, dropping
/// the pending `next()`. The clock is paused, so the timer fires exactly
/// when `next()` waits for more bytes: every piece is read by a `next()`
/// that is then cancelled. Returns the messages and the cancellations.
async fn read_with_cancellations<St>(
    stream: &mut St,
    peer: &mut DuplexStream,
    bytes: &[u8],
) -> (Vec<Message>, usize)
where
    St: Stream<Item = Result<Message, Error>> + Unpin,
{
    let mut ticker = tokio::time::interval(Duration::from_millis(1));
    let (mut received, mut cancelled, mut offset) = (Vec::new(), 0, 0);
    let mut piece_len = 1;
    while offset < bytes.len() {
        let end = (offset + piece_len).min(bytes.len());
        peer.write_all(&bytes[offset..end]).await.unwrap();
        (offset, piece_len) = (end, piece_len % MAX_PIECE + 1);
        loop {
            tokio::select! {
                biased;
                item = stream.next() => match item {
                    Some(item) => received.push(item.expect("a valid message")),
                    None => break,
                },
                _ = ticker.tick() => {
                    cancelled += 1;
                    break;
                }
            }
        }
    }
    (received, cancelled)
}

/// Every message received once, in order (reported without the payloads).
fn assert_same(received: &[Message], expected: &[Message]) {
    for (i, (got, want)) in received.iter().zip(expected).enumerate() {
        assert!(
            got == want,
            "message {i}: {} bytes, not {}",
            got.len(),
            want.len()
        );
    }
    assert_eq!(received.len(), expected.len(), "none lost, none doubled");
}

/// Many messages, some fragmented, pings between fragments, and a close.
fn peer_bytes() -> (Vec<u8>, Vec<Message>) {
    let (mut bytes, mut expected) = (Vec::new(), Vec::new());
    for i in 0..80 {
        let message = numbered(i % 30); // up to 1 KB: no 70 KB ones
        let message = if i % 3 == 2 {
            Message::text(format!("{i} ünïcödé"))
        } else {
            message
        };
        let (opcode, payload) = match &message {
            Message::Text(t) => (0x1, t.as_bytes().to_vec()),
            Message::Binary(b) => (0x2, b.to_vec()),
            _ => unreachable!(),
        };
        if i % 7 == 0 && payload.len() > 2 {
            let (first, second) = payload.split_at(payload.len() / 2);
            bytes.extend(common::client_frame(false, opcode, first));
            bytes.extend(common::client_frame(true, 0x9, b"between"));
            bytes.extend(common::client_frame(true, 0x0, second));
            expected.push(Message::Ping("between".into()));
        } else {
            bytes.extend(common::client_frame(true, opcode, &payload));
        }
        expected.push(message);
    }
    bytes.extend(common::client_frame(
        true,
        0x8,
        &common::close_payload(1000, "end"),
    ));
    expected.push(close_message(CloseCode::NORMAL, "end"));
    (bytes, expected)
}

#[tokio::test(start_paused = true)]
async fn next_is_cancel_safe_in_select() {
    let (bytes, expected) = peer_bytes();
    let (mut peer, io) = tokio::io::duplex(1 << 20);
    let mut ws = WebSocket::from_raw(io, Role::Server, Config::default(), &[]);
    let (received, cancelled) = read_with_cancellations(&mut ws, &mut peer, &bytes).await;
    assert_same(&received, &expected);
    assert!(ws.next().await.is_none(), "the close handshake is over");
    // Every piece but the last (whose close ends the stream) was read by
    // a next() that was then dropped.
    let pieces = (1..=MAX_PIECE).cycle().scan(0, |sum, n| {
        *sum += n;
        Some(*sum)
    });
    let pieces = pieces.take_while(|&sum| sum < bytes.len()).count() + 1;
    assert_eq!(cancelled, pieces - 1);
}

#[tokio::test(start_paused = true)]
async fn the_split_reader_is_cancel_safe_in_select() {
    let (bytes, expected) = peer_bytes();
    let (mut peer, io) = tokio::io::duplex(1 << 20);
    let ws = WebSocket::from_raw(io, Role::Server, Config::default(), &[]);
    let (mut reader, _writer) = ws.split();
    let (received, cancelled) = read_with_cancellations(&mut reader, &mut peer, &bytes).await;
    assert_same(&received, &expected);
    assert!(cancelled > 0);
    // The automatic pongs went out: the peer reads one per ping, then the
    // echoed close.
    let mut out = Vec::new();
    peer.read_to_end(&mut out).await.unwrap();
    let pongs = out.windows(9).filter(|w| w == b"\x8a\x07between").count();
    let pings = expected.iter().filter(|m| m.is_ping()).count();
    assert_eq!(pongs, pings);
    assert!(out.ends_with(b"\x88\x05\x03\xe8end"));
}

#[tokio::test]
async fn the_sink_waits_instead_of_growing_the_buffer() {
    let limit = 64 * 1024;
    let duplex = 4096;
    let (mut server, mut client) = pair(duplex, Config::default().max_write_buffer(limit));
    let message = |i: u32| Message::binary(vec![i as u8; 10_000]);
    let frame_len = 10_000 + 4;
    // Nobody reads the client: feed until poll_ready says wait.
    let mut fed = 0u32;
    loop {
        let poll = poll_fn(|cx| Poll::Ready(Pin::new(&mut server).poll_ready(cx))).await;
        match poll {
            Poll::Pending => break,
            Poll::Ready(ready) => ready.unwrap(),
        }
        Pin::new(&mut server).start_send(message(fed)).unwrap();
        fed += 1;
        assert!(fed < 100, "poll_ready never pushed back");
    }
    let held = server.connection().buffered_output();
    assert!(held >= limit, "pushed back early: {held} buffered");
    assert!(held < limit + frame_len, "{held} buffered, past the limit");
    let written = fed as usize * frame_len - held;
    assert!(
        written <= duplex,
        "{written} bytes cannot have been written"
    );
    // SinkExt::send waits the same way, and keeps its message meanwhile.
    let next = message(fed);
    let mut send = std::pin::pin!(SinkExt::send(&mut server, next));
    let polled_once = poll_fn(|cx| Poll::Ready(send.as_mut().poll(cx))).await;
    assert!(polled_once.is_pending(), "sent with nobody reading");
    // Once the peer reads, everything arrives in order.
    let total = fed + 1 + 20;
    let reading = tokio::spawn(async move {
        let mut i = 0;
        while let Some(message) = client.next().await.transpose().unwrap() {
            let Message::Binary(data) = message else {
                break;
            };
            assert!(data.len() == 10_000 && data[0] == i as u8, "message {i}");
            i += 1;
        }
        i
    });
    send.await.unwrap();
    let mut more = stream::iter((fed + 1..total).map(|i| Ok::<_, Error>(message(i))));
    server.send_all(&mut more).await.unwrap();
    SinkExt::close(&mut server).await.unwrap();
    while server.next().await.is_some() {}
    assert_eq!(reading.await.unwrap(), total);
}

#[tokio::test]
async fn closing_the_sink_sends_a_normal_close_the_peer_sees() {
    let (mut server, client) = pair(64 * 1024, Config::default());
    let (mut reader, mut writer) = client.split();
    SinkExt::send(&mut writer, Message::text("last"))
        .await
        .unwrap();
    SinkExt::close(&mut writer).await.unwrap();
    assert_eq!(server.next().await.unwrap().unwrap(), Message::text("last"));
    assert_eq!(
        server.next().await.unwrap().unwrap(),
        close_message(CloseCode::NORMAL, "")
    );
    assert!(server.next().await.is_none());
    assert_eq!(
        reader.next().await.unwrap().unwrap(),
        close_message(CloseCode::NORMAL, ""),
        "the server's reply"
    );
    assert!(reader.next().await.is_none());
}

#[tokio::test]
async fn closing_the_sink_after_the_peers_close_sends_nothing_more() {
    let (mut peer, io) = tokio::io::duplex(1024);
    let mut ws = WebSocket::from_raw(io, Role::Server, Config::default(), &[]);
    peer.write_all(&common::client_frame(
        true,
        0x8,
        &common::close_payload(4001, "bye"),
    ))
    .await
    .unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        close_message(CloseCode(4001), "bye")
    );
    SinkExt::close(&mut ws).await.unwrap();
    SinkExt::close(&mut ws).await.unwrap();
    assert!(ws.next().await.is_none());
    let mut out = Vec::new();
    peer.read_to_end(&mut out).await.unwrap();
    assert_eq!(out, b"\x88\x05\x0f\xa1bye", "only the echoed reply");
}

#[tokio::test]
async fn reunite_takes_back_its_own_halves_only() {
    let (a, mut a_peer) = pair(64 * 1024, Config::default());
    let (b, _b_peer) = pair(64 * 1024, Config::default());
    let (a_reader, a_writer) = a.split();
    let (b_reader, b_writer) = b.split();
    assert!(a_reader.is_pair_of(&a_writer) && !a_reader.is_pair_of(&b_writer));

    let mixed = a_reader.reunite(b_writer).unwrap_err();
    assert_eq!(
        mixed.to_string(),
        "the reader and the writer are halves of different sockets"
    );
    let (a_reader, b_writer) = (mixed.0, mixed.1);
    let mixed = a_writer.reunite(b_reader).unwrap_err();
    let (b_reader, mut a_writer) = (mixed.0, mixed.1);

    // The halves given back still work, and reunite with their own.
    a_peer.feed(Message::text("one")).unwrap();
    a_peer.send(Message::text("two")).await.unwrap();
    let mut a_reader = a_reader;
    assert_eq!(
        a_reader.next().await.unwrap().unwrap(),
        Message::text("one")
    );
    SinkExt::feed(&mut a_writer, Message::text("queued"))
        .await
        .unwrap();
    let mut a = a_reader.reunite(a_writer).unwrap();
    // What was read but not taken, and what was queued, survive.
    assert_eq!(a.next().await.unwrap().unwrap(), Message::text("two"));
    a.flush().await.unwrap();
    assert_eq!(
        a_peer.next().await.unwrap().unwrap(),
        Message::text("queued")
    );
    assert!(b_writer.reunite(b_reader).is_ok());
}
