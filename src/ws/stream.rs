//! The `futures` traits (feature `futures`): [`Stream`] and [`Sink`] for
//! [`WebSocket`] and its split halves. Each method is a thin wrapper over a
//! `poll_*` method of the socket, so everything `recv` and `send` do
//! (automatic pongs and close replies, keepalive, back-pressure, the write
//! timeout, the shared memory budget) holds through them as well.

use futures_core::Stream;
use futures_sink::Sink;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Error, WebSocket, WsReader, WsWriter};
use crate::proto::Message;

/// Messages as [`recv`](WebSocket::recv) returns them, turned inside out:
/// `Some(Ok(message))` for each data message, ping, pong and the peer's
/// close frame; `Some(Err(_))` for a failure; `None` once the closing
/// handshake is over and the transport shut down (where `recv` returns
/// `Ok(None)`), and after a protocol error or a failed read.
///
/// Cancel-safe, as `recv` is: dropping a pending `next()` (in
/// `tokio::select!`, say) loses no byte, and the next poll goes on where
/// that one stopped.
///
/// ```
/// use futures_util::{SinkExt, StreamExt, TryStreamExt};
/// use rtwire::proto::{Config, Message, Role};
/// use rtwire::ws::WebSocket;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), rtwire::ws::Error> {
/// let (client_io, server_io) = tokio::io::duplex(64 * 1024);
/// let server = WebSocket::from_raw(server_io, Role::Server, Config::default(), &[]);
/// // An echo server: every data message read is written back.
/// let echo = tokio::spawn(async move {
///     let (read, write) = server.split();
///     read.try_filter(|m| std::future::ready(m.is_data()))
///         .forward(write)
///         .await
/// });
///
/// let mut client = WebSocket::from_raw(client_io, Role::Client, Config::default(), &[]);
/// client.send(Message::text("hello")).await?;
/// assert_eq!(client.next().await.transpose()?, Some(Message::text("hello")));
/// SinkExt::close(&mut client).await?; // a close frame with 1000
/// assert!(client.next().await.transpose()?.is_some_and(|m| m.is_close()));
/// assert!(client.next().await.is_none()); // the server closed the transport
/// echo.await.expect("the echo task")?;
/// # Ok(()) }
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "futures")))]
impl<S: AsyncRead + AsyncWrite + Unpin> Stream for WebSocket<S> {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_recv(cx).map(Result::transpose)
    }
}

/// Sends messages, with back-pressure.
///
/// - `poll_ready` waits while
///   [`Config::max_write_buffer`](crate::proto::Config::max_write_buffer)
///   or more waits to be written, writing it out meanwhile (so the buffer
///   grows past the limit by one message at most);
/// - `start_send` queues the message as [`feed`](WebSocket::feed) does;
/// - `poll_flush` writes everything queued and flushes the transport;
/// - `poll_close` queues a close frame with 1000 (normal closure) unless the
///   closing handshake was already started, by either end, or the
///   connection failed; it is ready once everything queued, that frame
///   included, is written and the transport flushed. It waits neither for
///   the peer's close reply nor for the transport to close: keep reading
///   (the [`Stream`], or `recv`) until the end for that.
#[cfg_attr(docsrs, doc(cfg(feature = "futures")))]
impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WebSocket<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_write_ready(cx)
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), Error> {
        self.get_mut().feed(message)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_close_normal(cx)
    }
}

/// As the [`Stream` of `WebSocket`](WebSocket#impl-Stream-for-WebSocket<S>).
/// Cancel-safe.
#[cfg_attr(docsrs, doc(cfg(feature = "futures")))]
impl<S: AsyncRead + AsyncWrite + Unpin> Stream for WsReader<S> {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_recv(cx).map(Result::transpose)
    }
}

/// As the [`Sink` of `WebSocket`](WebSocket#impl-Sink<Message>-for-WebSocket<S>).
/// While the reader writes automatic replies, those count against the
/// write buffer's limit too.
#[cfg_attr(docsrs, doc(cfg(feature = "futures")))]
impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WsWriter<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut()
            .with_socket(cx, |ws, write_cx| ws.poll_write_ready(write_cx))
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), Error> {
        self.get_mut().feed(message)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut()
            .with_socket(cx, |ws, write_cx| ws.poll_close_normal(write_cx))
    }
}
