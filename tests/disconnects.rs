//! A connection that ends without the closing handshake: each way it can
//! end is reported as what it is (see `rtwire::ws::Error`).
mod common;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use rtwire::proto::{Config, Keepalive, Message, ProtocolError, Role};
use rtwire::ws::{Error, WebSocket};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

fn server_over<S: AsyncRead + AsyncWrite + Unpin>(io: S) -> WebSocket<S> {
    WebSocket::from_raw(io, Role::Server, Config::default(), &[])
}

fn assert_abnormal_closure(error: Error) {
    assert!(
        matches!(error, Error::Protocol(ProtocolError::AbnormalClosure)),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "the peer closed the connection without a close frame (1006 abnormal closure)"
    );
    assert!(error.is_disconnect());
    assert!(
        error.is_peer_fault(),
        "RFC 6455 asks the peer for a close frame"
    );
}

#[tokio::test]
async fn a_peer_gone_between_messages_is_an_abnormal_closure() {
    let (mut peer, io) = tokio::io::duplex(1024);
    let mut ws = server_over(io);
    peer.write_all(&common::client_frame(true, 0x1, b"last"))
        .await
        .unwrap();
    drop(peer);
    assert_eq!(ws.recv().await.unwrap(), Some(Message::text("last")));
    assert_abnormal_closure(ws.recv().await.unwrap_err());
    assert_eq!(ws.recv().await.unwrap(), None, "then the socket is over");
}

#[tokio::test]
async fn a_peer_gone_mid_frame_is_an_abnormal_closure() {
    let (mut peer, io) = tokio::io::duplex(1024);
    let mut ws = server_over(io);
    let frame = common::client_frame(true, 0x2, &[7u8; 300]);
    peer.write_all(&frame[..100]).await.unwrap();
    drop(peer);
    assert_abnormal_closure(ws.recv().await.unwrap_err());
}

#[tokio::test]
async fn writing_to_a_gone_peer_is_a_broken_pipe() {
    let (peer, io) = tokio::io::duplex(1024);
    let mut ws = server_over(io);
    drop(peer);
    let error = ws.send(Message::text("anyone?")).await.unwrap_err();
    assert!(
        matches!(&error, Error::Io(e) if e.kind() == io::ErrorKind::BrokenPipe),
        "{error:?}"
    );
    assert_eq!(error.to_string(), "broken pipe: the peer has gone");
    assert!(error.is_disconnect());
    assert!(!error.is_peer_fault());
}

/// A TCP connection whose client end resets it (SO_LINGER 0, then close):
/// the server's socket reads an RST, not an end of stream.
#[tokio::test]
async fn a_reset_connection_reports_the_reset() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server_io, _) = listener.accept().await.unwrap();
    let mut ws = server_over(server_io);
    let mut client = client;
    client
        .write_all(&common::client_frame(true, 0x1, b"before the reset"))
        .await
        .unwrap();
    client.set_zero_linger().unwrap();
    drop(client);
    assert_eq!(
        ws.recv().await.unwrap(),
        Some(Message::text("before the reset"))
    );
    let error = ws.recv().await.unwrap_err();
    assert!(
        matches!(&error, Error::Io(e) if e.kind() == io::ErrorKind::ConnectionReset),
        "{error:?}"
    );
    assert_eq!(error.to_string(), "connection reset by the peer");
    let source = std::error::Error::source(&error).expect("the io::Error");
    assert!(!source.to_string().is_empty());
    assert!(error.is_disconnect());
    assert!(!error.is_peer_fault());
    assert_eq!(
        ws.recv().await.unwrap(),
        None,
        "the reset ended the socket: no second error for the same end"
    );
}

/// A transport whose reads fail as an operating system's do when it gives
/// up on a connection (TCP retransmissions or keepalive unanswered).
struct TimingOut;

impl AsyncRead for TimingOut {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        _: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Poll::Ready(Err(io::ErrorKind::TimedOut.into()))
    }
}

impl AsyncWrite for TimingOut {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(b.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn a_transport_timeout_is_reported_as_one() {
    let mut ws = server_over(TimingOut);
    let error = ws.recv().await.unwrap_err();
    assert!(
        matches!(&error, Error::Io(e) if e.kind() == io::ErrorKind::TimedOut),
        "{error:?}"
    );
    assert_eq!(error.to_string(), "the transport timed out");
    assert!(!error.is_disconnect() && !error.is_peer_fault());
    assert_eq!(ws.recv().await.unwrap(), None);
}

#[tokio::test(start_paused = true)]
async fn an_unanswered_keepalive_is_its_own_timeout() {
    let (mut peer, io) = tokio::io::duplex(1024);
    let keepalive = Keepalive {
        interval: Duration::from_secs(30),
        timeout: Duration::from_secs(10),
    };
    let config = Config::default().keepalive(Some(keepalive));
    let mut ws = WebSocket::from_raw(io, Role::Server, config, &[]);
    // The paused clock jumps to each deadline once nothing else can run.
    let error = ws.recv().await.unwrap_err();
    assert!(
        matches!(error, Error::Protocol(ProtocolError::PeerUnresponsive)),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "keepalive timed out: the peer did not answer a ping (closed with 1001)"
    );
    assert!(error.is_peer_fault() && !error.is_disconnect());
    // The peer was pinged, then told why the connection ended.
    let mut seen = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut peer, &mut seen)
        .await
        .unwrap();
    assert_eq!(&seen[..2], &[0x89, 0x00], "the ping");
    assert_eq!(&seen[2..3], &[0x88], "then a close");
    assert_eq!(&seen[4..6], &1001u16.to_be_bytes());
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_reads_nothing_times_the_write_out() {
    let (_peer, io) = tokio::io::duplex(1024);
    let mut ws = server_over(io);
    ws.set_write_timeout(Some(Duration::from_secs(5)));
    let error = ws.send(Message::binary(vec![0u8; 4096])).await.unwrap_err();
    assert!(matches!(error, Error::WriteTimeout), "{error:?}");
    assert_eq!(
        error.to_string(),
        "the peer stopped reading: write timed out"
    );
    assert!(error.is_peer_fault() && !error.is_disconnect());
}
