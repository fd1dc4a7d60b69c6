//! Hostile and broken peers, one test per attack class: what a peer can
//! make an endpoint hold is bounded, and every wait has a deadline.
//! The library's own defences live here; `rtwire serve`'s are in
//! `tests/serve_hostile.rs`.

mod common;

use common::{client_frame, events};
use rtwire::proto::{
    Config, Connection, Event, Keepalive, Message, ProtocolError, Role, SendError,
};
use rtwire::ws::{Error, WebSocket};
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PING: u8 = 0x9;

/// A waker that does nothing: the tests below poll by hand.
struct Noop;
impl Wake for Noop {
    fn wake(self: Arc<Self>) {}
}

fn noop_context() -> Context<'static> {
    let waker: &'static Waker = Box::leak(Box::new(Waker::from(Arc::new(Noop))));
    Context::from_waker(waker)
}

// ----- attack 1: a peer that sends pings and never reads the pongs -----

#[test]
fn pongs_for_an_unread_peer_stop_at_the_high_water_mark() {
    let config = Config::default().output_high_water(4096);
    let mut server = Connection::new(Role::Server, config);
    let ping = client_frame(true, PING, &[7u8; 125]);
    let all: Vec<u8> = std::iter::repeat_n(&ping[..], 10_000)
        .flatten()
        .copied()
        .collect();
    server.receive_data(&all);
    // Nothing written yet: the pongs stop just past the mark, and the
    // rest of the input waits unprocessed.
    let held = server.buffered_output();
    assert!(
        held > 4096 && held <= 4096 + 127,
        "{held} bytes of pongs held"
    );
    assert!(!server.wants_read());
    let first = events(&mut server).len();
    assert!(
        first < 40,
        "{first} pings processed while the output was full"
    );
    // As the peer reads, the rest is answered: every ping gets its pong.
    let mut pongs = 0;
    let mut pings = first;
    loop {
        while let Some(chunk) = server.poll_transmit() {
            pongs += chunk.len() / 127;
        }
        let more = events(&mut server).len();
        if more == 0 {
            break;
        }
        pings += more;
    }
    assert_eq!((pings, pongs), (10_000, 10_000));
    assert!(server.wants_read());
}

#[tokio::test]
async fn a_websocket_stops_reading_a_peer_that_does_not_read() {
    let (mut peer, io) = tokio::io::duplex(16 * 1024);
    let config = Config::default().output_high_water(16 * 1024);
    let mut ws = WebSocket::from_raw(io, Role::Server, config, &[]);
    let ping = client_frame(true, PING, &[1u8; 125]);
    let mut cx = noop_context();
    let mut written = 0usize;
    // Offer 10 MiB of pings, polling the server between writes; the peer
    // never reads.
    for _ in 0..80_000 {
        let mut write = pin!(peer.write(&ping));
        match write.as_mut().poll(&mut cx) {
            Poll::Ready(n) => written += n.expect("write"),
            Poll::Pending => {}
        }
        let _ = ws.poll_recv(&mut cx);
    }
    // The server stopped reading: the peer's writes block after what
    // fills the two pipe buffers and the mark, not 10 MiB.
    assert!(written < 256 * 1024, "peer wrote {written} bytes");
    assert!(ws.connection().buffered_output() <= 16 * 1024 + 127);
    // A peer that starts reading gets every pong, and the server reads on.
    let mut pong = [0u8; 127];
    peer.read_exact(&mut pong).await.expect("a pong");
    assert_eq!(&pong[..2], &[0x8a, 125]);
}

#[test]
fn feed_past_the_write_buffer_limit_is_refused() {
    let config = Config::default().max_write_buffer(1000);
    let mut server = Connection::new(Role::Server, config);
    server
        .send(Message::binary(vec![0u8; 990]))
        .expect("under the limit");
    server
        .send(Message::binary(vec![0u8; 10]))
        .expect("one may go past");
    assert_eq!(
        server.send(Message::text("x")),
        Err(SendError::WriteBufferFull { limit: 1000 })
    );
    while server.poll_transmit().is_some() {}
    server
        .send(Message::text("x"))
        .expect("room again once written");
}

// ----- attack 4 (the write side): a peer that accepts no bytes -----

async fn unread_socket(
    config: Config,
) -> (tokio::io::DuplexStream, WebSocket<tokio::io::DuplexStream>) {
    let (peer, io) = tokio::io::duplex(4096);
    (peer, WebSocket::from_raw(io, Role::Server, config, &[]))
}

#[tokio::test(start_paused = true)]
async fn a_write_the_peer_never_accepts_times_out() {
    let (_peer, mut ws) = unread_socket(Config::default()).await;
    ws.set_write_timeout(Some(Duration::from_secs(5)));
    let start = tokio::time::Instant::now();
    let sent = ws.send(Message::binary(vec![0u8; 1 << 20])).await;
    assert!(matches!(sent, Err(Error::WriteTimeout)), "{sent:?}");
    assert!(sent.unwrap_err().is_peer_fault());
    let waited = start.elapsed();
    assert!(waited >= Duration::from_secs(5) && waited < Duration::from_secs(6));
}

#[tokio::test(start_paused = true)]
async fn a_slow_reader_that_makes_progress_is_not_timed_out() {
    let (mut peer, mut ws) = unread_socket(Config::default()).await;
    ws.set_write_timeout(Some(Duration::from_secs(5)));
    let reader = tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        let mut total = 0;
        // 4 KiB every 2 s: slow, but never 5 s without progress.
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            match peer.read(&mut buf).await.expect("read") {
                0 => break,
                n => total += n,
            }
        }
        total
    });
    ws.send(Message::binary(vec![0u8; 60 * 1024]))
        .await
        .expect("a slow reader still gets it");
    drop(ws);
    assert!(reader.await.expect("reader") >= 60 * 1024);
}

// ----- keepalive: a peer that goes silent -----

fn keepalive() -> Keepalive {
    Keepalive {
        interval: Duration::from_secs(30),
        timeout: Duration::from_secs(10),
    }
}

#[test]
fn keepalive_pings_after_silence_and_fails_without_an_answer() {
    let mut server = Connection::new(Role::Server, Config::default().keepalive(Some(keepalive())));
    let t0 = std::time::Instant::now();
    server.handle_timeout(t0);
    assert_eq!(server.poll_timeout(), Some(t0 + keepalive().interval));
    server.handle_timeout(t0 + Duration::from_secs(29));
    assert!(
        server.poll_transmit().is_none(),
        "no ping before the interval"
    );
    // Input within the interval: no ping at its end, a new interval.
    server.receive_data(&client_frame(true, 0x1, b"hi"));
    let t1 = t0 + keepalive().interval;
    server.handle_timeout(t1);
    assert!(server.poll_transmit().is_none(), "the peer was heard");
    assert_eq!(server.poll_timeout(), Some(t1 + keepalive().interval));
    // Silence: a ping, then the answer (any input) keeps it open.
    let t2 = t1 + keepalive().interval;
    server.handle_timeout(t2);
    assert_eq!(server.poll_transmit().as_deref(), Some(&[0x89, 0][..]));
    server.receive_data(&client_frame(true, 0xA, b""));
    server.handle_timeout(t2 + keepalive().timeout);
    assert!(server.poll_transmit().is_none());
    // Silence again, and no answer: failed with 1001.
    let t3 = t2 + keepalive().timeout + keepalive().interval;
    server.handle_timeout(t3);
    assert!(server.poll_transmit().is_some(), "the second ping");
    server.handle_timeout(t3 + keepalive().timeout);
    let failed = events(&mut server).into_iter().find_map(|e| match e {
        Event::Failed(error) => Some(error),
        _ => None,
    });
    assert_eq!(failed, Some(ProtocolError::PeerUnresponsive));
    let close = server.poll_transmit().expect("a close frame");
    assert_eq!(&close[..4], &[0x88, close[1], 0x03, 0xe9], "close 1001");
    assert_eq!(server.poll_timeout(), None);
}

#[tokio::test(start_paused = true)]
async fn a_silent_peer_is_pinged_and_dropped_by_the_websocket() {
    let (mut peer, io) = tokio::io::duplex(4096);
    let config = Config::default().keepalive(Some(keepalive()));
    let mut ws = WebSocket::from_raw(io, Role::Server, config, &[]);
    let got = ws.recv().await;
    assert!(
        matches!(got, Err(Error::Protocol(ProtocolError::PeerUnresponsive))),
        "{got:?}"
    );
    let mut seen = Vec::new();
    peer.read_to_end(&mut seen).await.expect("read");
    assert_eq!(&seen[..2], &[0x89, 0], "a ping first");
    assert_eq!(&seen[2..6], &[0x88, seen[3], 0x03, 0xe9], "then close 1001");
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_answers_pings_stays_connected() {
    let (peer, io) = tokio::io::duplex(4096);
    let config = Config::default().keepalive(Some(keepalive()));
    let mut server = WebSocket::from_raw(io, Role::Server, config, &[]);
    // The client end answers pings by itself; it sends nothing else.
    let mut client = WebSocket::from_raw(peer, Role::Client, Config::default(), &[]);
    let client = tokio::spawn(async move { while let Ok(Some(_)) = client.recv().await {} });
    let mut pongs = 0;
    let quiet = tokio::time::timeout(Duration::from_secs(300), async {
        loop {
            match server.recv().await {
                Ok(Some(Message::Pong(_))) => pongs += 1,
                other => break other,
            }
        }
    })
    .await;
    // Five minutes of silence: only the timeout of this test ends it.
    assert!(quiet.is_err(), "ended early: {quiet:?}");
    assert!(pongs >= 6, "{pongs} pongs in 300 s at a 30 s interval");
    client.abort();
}

// ----- attack 11: many peers, each holding a large message -----

/// The head of a masked binary frame of `len` bytes with key 0, so the
/// payload goes on the wire as is.
fn big_frame_head(len: u64) -> Vec<u8> {
    let mut head = vec![0x82, 0xff];
    head.extend_from_slice(&len.to_be_bytes());
    head.extend_from_slice(&[0, 0, 0, 0]);
    head
}

#[tokio::test]
async fn sockets_sharing_a_memory_budget_cannot_hold_more_than_it_between_them() {
    use rtwire::ws::MemoryBudget;
    let budget = MemoryBudget::new(2 << 20);
    let mut cx = noop_context();
    let mut peers = Vec::new();
    let mut sockets = Vec::new();
    for _ in 0..2 {
        let (mut peer, io) = tokio::io::duplex(4 << 20);
        // 2.5 MiB of a 3 MiB frame: held while the rest is awaited.
        peer.write_all(&big_frame_head(3 << 20))
            .await
            .expect("write");
        peer.write_all(&vec![0u8; 5 << 19]).await.expect("write");
        let mut ws = WebSocket::from_raw(io, Role::Server, Config::default(), &[]);
        ws.set_memory_budget(budget.clone());
        sockets.push(ws);
        peers.push(peer);
    }
    // The first takes 1.5 MiB (2.5 less its free 1 MiB) and waits for more.
    assert!(sockets[0].poll_recv(&mut cx).is_pending());
    assert_eq!(budget.used(), 3 << 19);
    // The second would take the budget past 2 MiB: refused, with 1013.
    match sockets[1].poll_recv(&mut cx) {
        Poll::Ready(Err(Error::MemoryBudget)) => {}
        other => panic!("expected a refusal, got {other:?}"),
    }
    drop(sockets.pop());
    let mut close = [0u8; 4];
    peers[1]
        .read_exact(&mut close)
        .await
        .expect("a close frame");
    assert_eq!(close, [0x88, close[1], 0x03, 0xf5], "close 1013");
    assert_eq!(budget.used(), 3 << 19, "the refused socket took nothing");
    // The first completes its message, and gives its share back when gone.
    peers[0]
        .write_all(&vec![0u8; 1 << 19])
        .await
        .expect("write");
    let got = sockets[0].recv().await.expect("recv").expect("message");
    assert!(matches!(got, Message::Binary(data) if data.len() == 3 << 20));
    drop(sockets);
    assert_eq!(budget.used(), 0);
}

/// The application's own output does not stop reading (only unread pongs
/// do): otherwise two ends that both write before they read would each
/// wait for the other to read first, for good.
#[test]
fn the_applications_own_output_does_not_stop_reading() {
    let config = Config::default().output_high_water(1024);
    let mut server = Connection::new(Role::Server, config);
    server
        .send(Message::binary(vec![7u8; 200_000]))
        .expect("under the write buffer limit");
    assert!(server.wants_read(), "200 KB of its own output");
    server.receive_data(&client_frame(true, 0x1, b"still heard"));
    assert_eq!(
        server.poll_event(),
        Some(Event::Message(Message::text("still heard")))
    );
}

/// Two rtwire ends over a 4 KiB pipe, each writing 50 messages of 100 KB
/// from one half while its other half reads: every message arrives.
#[tokio::test]
async fn two_ends_that_write_while_they_read_do_not_stall() {
    let (a, b) = tokio::io::duplex(4096);
    let a = WebSocket::from_raw(a, Role::Client, Config::default(), &[]);
    let b = WebSocket::from_raw(b, Role::Server, Config::default(), &[]);
    async fn exchange<S>(ws: WebSocket<S>) -> usize
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let (mut reader, mut writer) = ws.split();
        let write = async move {
            for i in 0..50u8 {
                writer
                    .send(Message::binary(vec![i; 100_000]))
                    .await
                    .expect("send");
            }
        };
        let read = async move {
            let mut got = 0;
            while got < 50 {
                let message = reader.recv().await.expect("recv").expect("a message");
                assert_eq!(message.as_bytes(), &vec![got as u8; 100_000][..]);
                got += 1;
            }
            got
        };
        tokio::join!(write, read).1
    }
    let both = async { tokio::join!(exchange(a), exchange(b)) };
    let (got_a, got_b) = tokio::time::timeout(Duration::from_secs(60), both)
        .await
        .expect("the two ends stalled each other");
    assert_eq!((got_a, got_b), (50, 50));
}
