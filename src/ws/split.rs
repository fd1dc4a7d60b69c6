//! [`WebSocket::split`]: a reader and a writer that two tasks can own.
//!
//! Both halves share the one [`WebSocket`] behind a mutex that is only held
//! for the length of a poll, never across an await. Both halves may write:
//! the writer its messages, the reader the automatic pongs and close
//! replies. A stream keeps one waker per direction, so a write that would
//! block wakes both halves (see [`WriteWakers`]), and neither is lost.

use std::fmt;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Error, WebSocket};
use crate::proto::{CloseCode, Message, State};

/// Wakes whichever halves were waiting for the stream to become writable.
#[derive(Default)]
struct WriteWakers {
    reader: Mutex<Option<Waker>>,
    writer: Mutex<Option<Waker>>,
}

impl Wake for WriteWakers {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        for slot in [&self.reader, &self.writer] {
            if let Some(waker) = lock(slot).take() {
                waker.wake();
            }
        }
    }
}

struct Shared<S> {
    ws: Mutex<WebSocket<S>>,
    wakers: Arc<WriteWakers>,
}

impl<S> Shared<S> {
    /// Runs `f` on the socket with a write context that wakes this half
    /// and the other one.
    fn with_socket<T>(
        &self,
        cx: &mut Context<'_>,
        is_reader: bool,
        f: impl FnOnce(&mut WebSocket<S>, &mut Context<'_>, &mut Context<'_>) -> T,
    ) -> T {
        let slot = if is_reader {
            &self.wakers.reader
        } else {
            &self.wakers.writer
        };
        *lock(slot) = Some(cx.waker().clone());
        let waker = Waker::from(self.wakers.clone());
        let mut write_cx = Context::from_waker(&waker);
        let mut ws = lock(&self.ws);
        f(&mut ws, cx, &mut write_cx)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in another half cannot leave the socket half-updated in a way
    // that matters more than losing the connection would.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The receiving half of a split [`WebSocket`].
pub struct WsReader<S> {
    shared: Arc<Shared<S>>,
}

/// The sending half of a split [`WebSocket`].
pub struct WsWriter<S> {
    shared: Arc<Shared<S>>,
}

impl<S> fmt::Debug for WsReader<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsReader").finish_non_exhaustive()
    }
}

impl<S> fmt::Debug for WsWriter<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsWriter").finish_non_exhaustive()
    }
}

/// [`WsReader::reunite`] was given halves of two different sockets; both
/// come back unchanged.
pub struct ReuniteError<S>(pub WsReader<S>, pub WsWriter<S>);

impl<S> fmt::Debug for ReuniteError<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ReuniteError").finish_non_exhaustive()
    }
}

impl<S> fmt::Display for ReuniteError<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the reader and the writer are halves of different sockets")
    }
}

impl<S> std::error::Error for ReuniteError<S> {}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Splits the socket into a reader and a writer that separate tasks can
    /// own. The reader still answers pings and close frames by itself.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), rtwire::ws::Error> {
    /// use rtwire::proto::Message;
    /// let (ws, _response) = rtwire::ws::connect("ws://127.0.0.1:9001/").await?;
    /// let (mut reader, mut writer) = ws.split();
    /// tokio::spawn(async move {
    ///     while let Ok(Some(message)) = reader.recv().await {
    ///         println!("got {message:?}");
    ///     }
    /// });
    /// writer.send(Message::text("hello")).await?;
    /// # Ok(()) }
    /// ```
    pub fn split(self) -> (WsReader<S>, WsWriter<S>) {
        let shared = Arc::new(Shared {
            ws: Mutex::new(self),
            wakers: Arc::new(WriteWakers::default()),
        });
        (
            WsReader {
                shared: shared.clone(),
            },
            WsWriter { shared },
        )
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsReader<S> {
    /// Receives the next message; see [`WebSocket::recv`]. Cancel-safe.
    pub async fn recv(&mut self) -> Result<Option<Message>, Error> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The poll form of [`recv`](Self::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Message>, Error>> {
        self.shared.with_socket(cx, true, |ws, cx, write_cx| {
            ws.poll_recv_split(cx, write_cx)
        })
    }

    /// The state of the closing handshake.
    pub fn state(&self) -> State {
        lock(&self.shared.ws).state()
    }

    /// Whether `writer` is the other half of the same socket.
    pub fn is_pair_of(&self, writer: &WsWriter<S>) -> bool {
        Arc::ptr_eq(&self.shared, &writer.shared)
    }

    /// Puts the halves back together into the socket they were split
    /// from, as it is now (messages read, queued output and the closing
    /// handshake's state all kept). Halves of different sockets are given
    /// back in the error.
    ///
    /// ```
    /// use rtwire::proto::{Config, Role, State};
    /// use rtwire::ws::WebSocket;
    /// let socket = |io| WebSocket::from_raw(io, Role::Server, Config::default(), &[]);
    /// let (a, b) = tokio::io::duplex(1024);
    /// let (reader_a, writer_a) = socket(a).split();
    /// let (reader_b, writer_b) = socket(b).split();
    /// let mixed = reader_a.reunite(writer_b).unwrap_err();
    /// let (reader_a, writer_b) = (mixed.0, mixed.1);
    /// let a = reader_a.reunite(writer_a).unwrap();
    /// let b = writer_b.reunite(reader_b).unwrap();
    /// assert_eq!((a.state(), b.state()), (State::Open, State::Open));
    /// ```
    pub fn reunite(self, writer: WsWriter<S>) -> Result<WebSocket<S>, ReuniteError<S>> {
        if !self.is_pair_of(&writer) {
            return Err(ReuniteError(self, writer));
        }
        drop(writer);
        let shared = Arc::into_inner(self.shared)
            .expect("the two halves were the only owners of their socket");
        Ok(shared
            .ws
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsWriter<S> {
    /// [`WsReader::reunite`], from this side.
    pub fn reunite(self, reader: WsReader<S>) -> Result<WebSocket<S>, ReuniteError<S>> {
        reader.reunite(self)
    }

    /// Runs `f` on the socket with a write context that wakes both halves.
    pub(super) fn with_socket<T>(
        &self,
        cx: &mut Context<'_>,
        f: impl FnOnce(&mut WebSocket<S>, &mut Context<'_>) -> T,
    ) -> T {
        self.shared
            .with_socket(cx, false, |ws, _, write_cx| f(ws, write_cx))
    }

    /// Sends a message and flushes it; see [`WebSocket::send`] (which
    /// also waits first while the write buffer is full).
    pub async fn send(&mut self, message: Message) -> Result<(), Error> {
        if lock(&self.shared.ws).write_buffer_full() {
            self.flush().await?;
        }
        self.feed(message)?;
        self.flush().await
    }

    /// Queues a message without writing it.
    pub fn feed(&mut self, message: Message) -> Result<(), Error> {
        lock(&self.shared.ws).feed(message)
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<(), Error> {
        poll_fn(|cx| self.poll_flush(cx)).await
    }

    /// The poll form of [`flush`](Self::flush): ready once everything
    /// queued is written and the transport flushed.
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.with_socket(cx, |ws, write_cx| ws.poll_flush(write_cx))
    }

    /// Starts the closing handshake; the reader sees the peer's close and
    /// then `Ok(None)`.
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        lock(&self.shared.ws).connection_mut().close(code, reason)?;
        self.flush().await
    }

    /// The state of the closing handshake.
    pub fn state(&self) -> State {
        lock(&self.shared.ws).state()
    }
}
