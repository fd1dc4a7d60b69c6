//! [`WebSocket`]: the sans-IO [`Connection`] driven over a tokio stream.

use bytes::Bytes;
use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::Error;
use crate::http::{Request, Response};
use crate::proto::deflate::CompressionKey;
use crate::proto::{CloseCode, Config, Connection, Event, Message, Role, State};

/// Read at least this much at a time into the connection's buffer. Twice
/// a common message size (16 KiB) so that such a message and its header
/// come in one read: at 16 KiB exactly, a client's 16,392-byte frame took
/// two reads, and echo ran at 0.8x the speed it does now.
const READ_CHUNK: usize = 32 * 1024;
/// While reads are smaller than this, they go through a buffer of this
/// size on the stack instead, so a connection that waits holds no buffer.
const STACK_READ: usize = 4 * 1024;
/// Gather at most this many chunks into one vectored write.
const MAX_IOVECS: usize = 16;

/// A WebSocket connection over any tokio byte stream.
///
/// Made by [`accept`](super::accept) or [`connect`](super::connect) (or
/// [`from_raw`](Self::from_raw) after a handshake done elsewhere). Received
/// pings are answered and received close frames are replied to
/// automatically; keep calling [`recv`](Self::recv) until it returns
/// `Ok(None)` to see the connection through to its end.
///
/// Bounded against a peer that sends but does not read: while more than
/// [`Config::output_high_water`] of pongs waits to be written, `recv`
/// stops reading the transport, and [`send`](Self::send) waits (and
/// [`feed`](Self::feed) fails) past [`Config::max_write_buffer`]. With a
/// [write timeout](Self::set_write_timeout), a peer that accepts no bytes
/// for that long fails the socket with [`Error::WriteTimeout`].
/// [`Config::keepalive`] pings a silent peer while `recv` is being polled.
#[derive(Debug)]
pub struct WebSocket<S> {
    io: S,
    conn: Connection,
    /// The last read was smaller than [`STACK_READ`].
    small_reads: bool,
    transport_closed: bool,
    /// A failure to report once its close frame is written.
    failure: Option<crate::proto::ProtocolError>,
    write_timeout: Option<Duration>,
    /// Running while a write waits; only allocated once one has to.
    write_stall: Option<Pin<Box<Sleep>>>,
    /// The connection's keepalive deadline, when it has one.
    keepalive: Option<KeepaliveTimer>,
    /// The budget shared with other sockets, and what this one took of it.
    budget: Option<(Arc<MemoryBudget>, usize)>,
    /// What the opening handshake decided; boxed, as most code never asks.
    handshake: Option<Box<HandshakeInfo>>,
}

/// What the opening handshake decided, kept on the socket.
#[derive(Debug, Default)]
pub(crate) struct HandshakeInfo {
    pub(crate) protocol: Option<String>,
    /// Server: the client's request head.
    pub(crate) request: Option<Request>,
    /// Client: the server's 101 head.
    pub(crate) response: Option<Response>,
}

/// The timer behind keepalive. Polling a tokio timer costs a waker
/// registration; the deadline moves only every keepalive interval, so the
/// timer is polled when it is new, moved, or for another task, and
/// otherwise only asked whether it has fired.
#[derive(Debug)]
struct KeepaliveTimer {
    sleep: Pin<Box<Sleep>>,
    /// The deadline and the waker it was last polled with.
    armed: Option<(Instant, Waker)>,
}

/// Bytes that many sockets together may hold beyond a free allowance each
/// (1 MiB): messages being received and output waiting for a peer to read
/// it. Per-connection limits bound one peer; this bounds many peers that
/// each send a large message and read nothing, which per-connection limits
/// alone would multiply by the number of connections.
///
/// A socket that would take the budget past its limit is closed with 1013
/// (try again later) and fails with [`Error::MemoryBudget`]; the others go
/// on. Share one between sockets with
/// [`WebSocket::set_memory_budget`].
///
/// ```
/// use rtwire::ws::MemoryBudget;
/// let budget = MemoryBudget::new(48 << 20);
/// assert_eq!(budget.used(), 0);
/// ```
#[derive(Debug)]
pub struct MemoryBudget {
    limit: usize,
    used: AtomicUsize,
}

impl MemoryBudget {
    /// Bytes a socket holds without drawing on the budget.
    pub const FREE_PER_SOCKET: usize = 1 << 20;

    /// A budget of `limit` bytes, to share between sockets.
    pub fn new(limit: usize) -> Arc<MemoryBudget> {
        Arc::new(MemoryBudget {
            limit,
            used: AtomicUsize::new(0),
        })
    }

    /// Bytes taken now, by all sockets together.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Takes `n` bytes if they fit.
    fn take(&self, n: usize) -> bool {
        let before = self.used.fetch_add(n, Ordering::Relaxed);
        if before + n > self.limit {
            self.used.fetch_sub(n, Ordering::Relaxed);
            return false;
        }
        true
    }

    fn give_back(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::Relaxed);
    }
}

impl<S> Drop for WebSocket<S> {
    fn drop(&mut self) {
        if let Some((budget, taken)) = &self.budget {
            budget.give_back(*taken);
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Wraps a stream whose opening handshake is complete. `leftover` is any
    /// input read past the handshake (frames the peer sent right after it).
    pub fn from_raw(io: S, role: Role, config: Config, leftover: &[u8]) -> Self {
        Self::from_connection(io, Connection::new(role, config), leftover)
    }

    /// Wraps a stream and a [`Connection`] set up by the caller (e.g. with
    /// [`Connection::with_deflate`]); `leftover` as for [`from_raw`](Self::from_raw).
    pub fn from_connection(io: S, mut conn: Connection, leftover: &[u8]) -> Self {
        conn.receive_data(leftover);
        // Starts keepalive's clock, if it is on.
        conn.handle_timeout(Instant::now().into_std());
        WebSocket {
            io,
            conn,
            small_reads: true,
            transport_closed: false,
            failure: None,
            write_timeout: None,
            write_stall: None,
            keepalive: None,
            budget: None,
            handshake: None,
        }
    }

    /// Counts what this socket holds beyond
    /// [`MemoryBudget::FREE_PER_SOCKET`] against `budget`, shared with
    /// other sockets (see [`MemoryBudget`]).
    pub fn set_memory_budget(&mut self, budget: Arc<MemoryBudget>) {
        if let Some((old, taken)) = self.budget.take() {
            old.give_back(taken);
        }
        self.budget = Some((budget, 0));
    }

    /// Brings this socket's share of the budget in line with what it holds;
    /// fails, with a close 1013 queued, when the budget cannot cover it.
    fn settle_budget(&mut self) -> Result<(), Error> {
        let Some((budget, taken)) = &mut self.budget else {
            return Ok(());
        };
        let held = self.conn.buffered_input() + self.conn.buffered_output();
        let wanted = held.saturating_sub(MemoryBudget::FREE_PER_SOCKET);
        if wanted == *taken {
            return Ok(()); // the common case: no shared atomic touched
        }
        if wanted < *taken {
            budget.give_back(*taken - wanted);
            *taken = wanted;
            return Ok(());
        }
        if budget.take(wanted - *taken) {
            *taken = wanted;
            return Ok(());
        }
        let _ = self
            .conn
            .close(CloseCode::TRY_AGAIN_LATER, "server busy: try again later");
        Err(Error::MemoryBudget)
    }

    /// Fails the socket with [`Error::WriteTimeout`] when output has
    /// waited this long without the peer accepting a byte of it. `None`
    /// (the default) waits for ever.
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        self.write_timeout = timeout;
        self.write_stall = None;
    }

    /// The sans-IO connection underneath, e.g. for its [`State`].
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    pub(crate) fn connection_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// The state of the closing handshake.
    pub fn state(&self) -> State {
        self.conn.state()
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// Receives the next message.
    ///
    /// Returns `Ok(Some(message))` for each data message, ping, pong and the
    /// peer's close frame; `Ok(None)` once the connection is closed and the
    /// transport shut down (after a clean close handshake); `Err` when the
    /// peer broke the protocol (the connection is then failed with the
    /// matching close code) or the transport failed (see [`Error`] for how
    /// each way of ending is told apart). After a protocol error or a failed
    /// read the connection is over, and the next call returns `Ok(None)`.
    ///
    /// Cancel-safe: every byte read is kept in the connection, so dropping a
    /// pending `recv` (for example in `tokio::select!`) loses no data, and
    /// the next call carries on where it stopped.
    ///
    /// A server closes the transport as soon as the close handshake is done.
    /// A client waits for the server to close it (RFC 6455 §7.1.1); wrap the
    /// call in `tokio::time::timeout` to bound that wait.
    pub async fn recv(&mut self) -> Result<Option<Message>, Error> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The poll form of [`recv`](Self::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Message>, Error>> {
        // Two contexts on the same waker, borrowed rather than cloned (a
        // clone is an atomic increment and decrement per poll).
        let waker = cx.waker();
        let mut read_cx = Context::from_waker(waker);
        let mut write_cx = Context::from_waker(waker);
        self.poll_recv_split(&mut read_cx, &mut write_cx)
    }

    /// [`poll_recv`](Self::poll_recv) with a separate context for writes,
    /// so split halves can share write readiness.
    pub(crate) fn poll_recv_split(
        &mut self,
        cx: &mut Context<'_>,
        write_cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Message>, Error>> {
        loop {
            if let Err(e) = self.settle_budget() {
                // Out of budget: a try at the close frame, then give up.
                let _ = self.poll_write_pending(write_cx);
                return Poll::Ready(Err(e));
            }
            if self.failure.is_some() {
                // RFC 6455 §7.1.7: send the close frame, then close the
                // transport, before reporting the failure. The peer may be
                // gone already: I/O errors here change nothing.
                if let Ok(()) = ready!(self.poll_write_pending(write_cx)) {
                    let _ = ready!(self.poll_finish(cx));
                }
                if let Some(error) = self.failure.take() {
                    return Poll::Ready(Err(Error::Protocol(error)));
                }
            }
            match self.conn.poll_event() {
                Some(Event::Message(message)) => {
                    // Start writing any automatic reply once the events read
                    // so far are handed out: until then the caller may still
                    // queue replies, and they all share one write.
                    if !self.conn.has_events() {
                        let _ = self.poll_write_pending(write_cx)?;
                    }
                    return Poll::Ready(Ok(Some(message)));
                }
                Some(Event::Failed(error)) => {
                    self.failure = Some(error);
                    continue;
                }
                None => {}
            }
            if !self.conn.wants_input() {
                ready!(self.poll_write_pending(write_cx))?;
                return self.poll_finish(cx).map_ok(|()| None);
            }
            // Writes in flight must not hold up reading.
            let _ = self.poll_write_pending(write_cx)?;
            if self.poll_keepalive(cx).is_ready() {
                continue; // a ping was queued, or the peer failed to answer
            }
            if !self.conn.wants_read() {
                // The peer reads slower than it sends: read again once
                // the output has drained (the write above wakes us).
                return Poll::Pending;
            }
            let read = match self.poll_read_input(cx) {
                Poll::Ready(Err(e)) => return Poll::Ready(Err(self.transport_failed(e))),
                read => read,
            };
            if read.is_pending() {
                // Nothing to read for now: unless writes are still in
                // flight, hold no buffers while waiting (they are most of
                // what an idle connection would otherwise cost).
                if !self.conn.has_output() {
                    self.conn.release_idle_buffers();
                }
                return Poll::Pending;
            }
        }
    }

    /// Waits for the connection's keepalive deadline; when it passes,
    /// lets the connection act on it and is ready.
    fn poll_keepalive(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(deadline) = self.conn.poll_timeout() else {
            self.keepalive = None;
            return Poll::Pending;
        };
        let deadline = Instant::from_std(deadline);
        let timer = self.keepalive.get_or_insert_with(|| KeepaliveTimer {
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
            armed: None,
        });
        match &timer.armed {
            Some((at, waker)) if *at == deadline && waker.will_wake(cx.waker()) => {
                // The clock, not the timer: asking the timer reads its
                // heap entry, a miss of the cache on every poll of every
                // socket, where the deadline is at hand.
                if Instant::now() < deadline {
                    return Poll::Pending; // the timer wakes this task when it fires
                }
            }
            _ => {
                if timer.sleep.deadline() != deadline {
                    timer.sleep.as_mut().reset(deadline);
                }
                if timer.sleep.as_mut().poll(cx).is_pending() {
                    timer.armed = Some((deadline, cx.waker().clone()));
                    return Poll::Pending;
                }
            }
        }
        timer.armed = None;
        self.conn.handle_timeout(Instant::now().into_std());
        Poll::Ready(())
    }

    /// Reads what the transport has into the connection, or the end of
    /// the stream. Between messages of a few KiB the read goes through the
    /// stack, so the heap buffer exists only while there is input in it;
    /// while reads are large they go straight into the connection's
    /// buffer, where frame payloads are read in place.
    fn poll_read_input(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let input = self.conn.input_buffer();
        let n = if input.is_empty() && self.small_reads {
            let mut stack = [MaybeUninit::<u8>::uninit(); STACK_READ];
            let mut buf = ReadBuf::uninit(&mut stack);
            ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf))?;
            self.conn.receive_data(buf.filled());
            buf.filled().len()
        } else {
            if input.capacity() - input.len() < READ_CHUNK / 2 {
                input.reserve(READ_CHUNK);
            }
            let n = ready!(pin!(self.io.read_buf(input)).poll(cx))?;
            self.conn.handle_input();
            n
        };
        self.small_reads = n < STACK_READ;
        if n == 0 {
            self.conn.receive_eof();
        }
        Poll::Ready(Ok(()))
    }

    /// Reading the transport failed (a reset, say): nothing more will
    /// arrive, so the connection ends here, and the next `recv` returns
    /// `Ok(None)` instead of calling the same end an abnormal closure.
    /// Input is read only once every event is out, so none is lost.
    fn transport_failed(&mut self, error: io::Error) -> Error {
        if !matches!(
            error.kind(),
            io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
        ) {
            self.conn.receive_eof();
            // The end's own report (1006) says less than `error` does.
            while self.conn.poll_event().is_some() {}
        }
        Error::Io(error)
    }

    /// After the connection is closed: shut the transport down when the
    /// connection says so, or (a client after a clean close) wait for the
    /// peer to close it.
    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.transport_closed {
            return Poll::Ready(Ok(()));
        }
        if !self.conn.should_close_transport() {
            // Drain until EOF; the data is no longer wanted.
            let mut sink = [0u8; 512];
            loop {
                let mut rb = tokio::io::ReadBuf::new(&mut sink);
                match ready!(Pin::new(&mut self.io).poll_read(cx, &mut rb)) {
                    Ok(()) if rb.filled().is_empty() => break,
                    Ok(()) => continue,
                    Err(_) => break,
                }
            }
        }
        // The peer may already be gone; a failed shutdown changes nothing.
        let _ = ready!(Pin::new(&mut self.io).poll_shutdown(cx));
        self.transport_closed = true;
        Poll::Ready(Ok(()))
    }

    /// Sends a message and flushes it.
    ///
    /// If the future is dropped before it completes, the message is still
    /// queued and goes out with the next send, flush or recv.
    /// If [`Config::max_write_buffer`] or more is already queued, it
    /// first waits for that to be written.
    pub async fn send(&mut self, message: Message) -> Result<(), Error> {
        if self.conn.buffered_output() >= self.conn.config().max_write_buffer {
            self.flush().await?;
        }
        self.feed(message)?;
        self.flush().await
    }

    /// Queues a message without writing it; [`flush`](Self::flush) writes
    /// everything queued. Lets many small messages share one write.
    ///
    /// Fails with [`SendError::WriteBufferFull`](crate::proto::SendError::WriteBufferFull)
    /// while [`Config::max_write_buffer`] or more waits to be written.
    pub fn feed(&mut self, message: Message) -> Result<(), Error> {
        self.conn.send(message)?;
        Ok(())
    }

    /// [`feed`](Self::feed) for a message compressed once for many
    /// sockets: see [`Connection::send_precompressed`].
    pub fn feed_precompressed(
        &mut self,
        message: Message,
        key: CompressionKey,
        compressed: Bytes,
    ) -> Result<(), Error> {
        self.conn.send_precompressed(message, key, compressed)?;
        Ok(())
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<(), Error> {
        poll_fn(|cx| self.poll_flush(cx)).await
    }

    /// The poll form of [`flush`](Self::flush).
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        ready!(self.poll_write_pending(cx))?;
        Pin::new(&mut self.io).poll_flush(cx).map_err(Error::Io)
    }

    /// Whether [`feed`](Self::feed) would refuse a message for now.
    pub(crate) fn write_buffer_full(&self) -> bool {
        self.conn.buffered_output() >= self.conn.config().max_write_buffer
    }

    /// Starts the closing handshake and flushes the close frame. Keep
    /// calling [`recv`](Self::recv) until it returns `Ok(None)` to receive
    /// the peer's close and let the transport close.
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        self.conn.close(code, reason)?;
        self.flush().await
    }

    /// Whether any received message is ready without reading the transport.
    pub fn has_buffered_message(&self) -> bool {
        self.conn.has_events()
    }

    /// Ready once [`feed`](Self::feed) would take a message: while
    /// [`Config::max_write_buffer`] or more waits to be written, writes it
    /// out until it is below the limit (the Sink's back-pressure).
    #[cfg(feature = "futures")]
    pub(super) fn poll_write_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let limit = self.conn.config().max_write_buffer;
        self.poll_write_down_to(cx, limit.saturating_sub(1))
    }

    /// Starts the closing handshake with 1000 unless it was started (by
    /// either end) or the connection failed, then flushes (the Sink's close).
    #[cfg(feature = "futures")]
    pub(super) fn poll_close_normal(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.state() == State::Open {
            self.conn.close(CloseCode::NORMAL, "")?;
        }
        self.poll_flush(cx)
    }

    /// Writes queued output until done or the transport would block,
    /// straight from the connection's buffers.
    fn poll_write_pending(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.poll_write_down_to(cx, 0)
    }

    /// Writes queued output until at most `keep` bytes wait or the
    /// transport would block.
    fn poll_write_down_to(&mut self, cx: &mut Context<'_>, keep: usize) -> Poll<Result<(), Error>> {
        // Called around every read and message: be cheap when idle.
        while self.conn.buffered_output() > keep {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let io = Pin::new(&mut self.io);
            let written = match self.conn.transmit_slices(&mut slices) {
                0 => break,
                // Small frames share one buffer: a plain write.
                1 => io.poll_write(cx, &slices[0]),
                // A large payload travels apart from its header: one writev.
                count => io.poll_write_vectored(cx, &slices[..count]),
            };
            let written = match written {
                Poll::Pending => return self.poll_write_stall(cx),
                Poll::Ready(result) => result?,
            };
            if written == 0 {
                return Poll::Ready(Err(Error::Io(io::ErrorKind::WriteZero.into())));
            }
            self.conn.advance_transmit(written);
            if let Some(timer) = self.write_stall.as_mut().zip(self.write_timeout) {
                // Progress: the peer has the whole timeout again.
                let (timer, limit) = timer;
                timer.as_mut().reset(Instant::now() + limit);
            }
        }
        self.write_stall = None;
        Poll::Ready(Ok(()))
    }

    /// A write would block: pending until the stream is writable, or the
    /// write timeout since the last progress has passed.
    fn poll_write_stall(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let Some(limit) = self.write_timeout else {
            return Poll::Pending;
        };
        let timer = self
            .write_stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(Err(Error::WriteTimeout))
    }
}

/// What the opening handshake decided.
///
/// ```
/// use rtwire::handshake::WsUrl;
/// use rtwire::ws::{self, AcceptConfig, ConnectConfig};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ws::Error> {
/// let (client_io, server_io) = tokio::io::duplex(4096);
/// let server = tokio::spawn(async move {
///     let config = AcceptConfig::default().hook(rtwire::handshake::ServerOptions {
///         protocols: vec!["chat".into()],
///         allowed_origins: None,
///     });
///     ws::accept_with(server_io, &config).await
/// });
/// let url = WsUrl::parse("ws://localhost/room?id=3")?;
/// let (client, _) =
///     ws::client_handshake(client_io, &url, &ConnectConfig::default().protocols(["chat"])).await?;
/// let server = server.await.unwrap()?;
/// assert_eq!((client.protocol(), server.protocol()), (Some("chat"), Some("chat")));
/// assert_eq!(server.request().map(|r| r.target.as_str()), Some("/room?id=3"));
/// assert_eq!(client.response().map(|r| r.status), Some(101));
/// assert!(client.request().is_none() && server.response().is_none());
/// # Ok(()) }
/// ```
impl<S> WebSocket<S> {
    /// The subprotocol the handshake agreed on, on either side; `None`
    /// without one, and for sockets made with
    /// [`from_raw`](Self::from_raw) or [`from_connection`](Self::from_connection).
    pub fn protocol(&self) -> Option<&str> {
        self.handshake.as_ref()?.protocol.as_deref()
    }

    /// Server: the client's upgrade request head (method, target with path
    /// and query, headers). `None` on a client, on a server whose
    /// [`AcceptConfig::keep_request`](super::AcceptConfig::keep_request) is
    /// off, and for sockets made with `from_raw` or `from_connection`.
    pub fn request(&self) -> Option<&Request> {
        self.handshake.as_ref()?.request.as_ref()
    }

    /// Client: the server's `101 Switching Protocols` head. `None` on a
    /// server, and for sockets made with `from_raw` or `from_connection`.
    pub fn response(&self) -> Option<&Response> {
        self.handshake.as_ref()?.response.as_ref()
    }

    /// Keeps `info`; allocates nothing when there is nothing to keep.
    pub(crate) fn set_handshake(&mut self, info: HandshakeInfo) {
        let empty = info.protocol.is_none() && info.request.is_none() && info.response.is_none();
        self.handshake = (!empty).then(|| Box::new(info));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Config;
    use tokio::io::AsyncWriteExt;

    /// Polls `recv` once; true if it is waiting for the transport.
    async fn recv_would_wait<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocket<S>) -> bool {
        poll_fn(|cx| Poll::Ready(ws.poll_recv(cx).is_pending())).await
    }

    #[tokio::test]
    async fn an_idle_connection_holds_no_buffers() {
        let (mut peer, io) = tokio::io::duplex(64 * 1024);
        let mut ws = WebSocket::from_raw(io, Role::Server, Config::default(), &[]);
        // A masked binary frame of 3000 bytes (key 0: the payload as is),
        // sent back: both buffers held more than is kept while idle.
        let payload = vec![7u8; 3000];
        let mut frame = vec![0x82, 0xfe, 0x0b, 0xb8, 0, 0, 0, 0];
        frame.extend_from_slice(&payload);
        peer.write_all(&frame).await.expect("write");
        let got = ws.recv().await.expect("recv").expect("a message");
        assert_eq!(got, Message::binary(payload));
        ws.send(got).await.expect("send");
        assert!(recv_would_wait(&mut ws).await);
        let conn = ws.connection_mut();
        assert_eq!(conn.input_buffer().capacity(), 0, "input buffer kept");
        assert!(!conn.has_output());
        // And the connection reads on as before.
        peer.write_all(&[0x81, 0x80, 0, 0, 0, 0])
            .await
            .expect("write");
        let got = ws.recv().await.expect("recv").expect("a message");
        assert_eq!(got, Message::text(""));
    }
}
