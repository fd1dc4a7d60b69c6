//! One HTTP/1.1 connection of `rtwire serve`: read requests with their
//! `Content-Length` bodies under limits and deadlines, write responses
//! under a write deadline, keep alive.

use bytes::{Buf, Bytes, BytesMut};
use std::io::IoSlice;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::metrics::{Counted, Traffic};
use super::response::Response;
use super::ServeConfig;
use crate::http::{HeadLimits, HttpError, Parse, Request, RequestParser};
use std::sync::Arc;

/// A request and its body.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub request: Request,
    /// Owns exactly its bytes: a body kept in a channel's history must not
    /// pin the connection's read buffer.
    pub body: Bytes,
}

/// What reading the next request gave.
pub(crate) enum Read {
    /// A whole request.
    Request(Incoming),
    /// The client closed the connection, or stayed idle, between requests.
    Closed,
    /// A bad request: answer with this and close.
    Reject(Response),
    /// Shed to make room for a new client: answer with this (if anything)
    /// and close at once, freeing the slot without draining the input.
    Shed(Option<Response>),
}

/// A keep-alive HTTP/1.1 connection.
pub(crate) struct HttpConn<S> {
    /// The stream, its bytes counted for `/metrics`.
    pub io: Counted<S>,
    /// Bytes read past the last request (pipelined requests, or frames
    /// after a WebSocket upgrade).
    pub buf: BytesMut,
    /// Resumes the head where the last read stopped: a head sent a byte
    /// at a time costs what it costs in one piece.
    parser: RequestParser,
    /// How long a write may wait for the peer to accept a byte.
    pub write_timeout: Duration,
}

/// A read buffer that grew past this while empty is given back between
/// requests.
const KEEP_BUFFER: usize = 16 * 1024;

impl<S: AsyncRead + AsyncWrite + Unpin> HttpConn<S> {
    /// Counts the connection's bytes and responses in `traffic`.
    pub fn new(io: S, write_timeout: Duration, traffic: Arc<Traffic>) -> Self {
        HttpConn {
            io: Counted::new(io, traffic),
            buf: BytesMut::new(),
            parser: RequestParser::new(),
            write_timeout,
        }
    }

    /// Reads the next request. The whole head must arrive within
    /// `head_timeout` of its first byte (else 408), however it trickles in;
    /// the body within `head_timeout` plus its length at `body_min_rate`.
    /// An idle connection is closed quietly after `idle_timeout`.
    ///
    /// When `shed` is notified (every slot is taken and a new client
    /// waits), a connection that has waited over [`SHED_AFTER`] for this
    /// request (idle, or its head still arriving) is closed at once to make
    /// room: a slow or idle client yields its slot to a new one. A
    /// connection just opened, whose request may be on its way, is not.
    pub async fn read_request(&mut self, config: &ServeConfig, shed: &Notify) -> Read {
        let limits = HeadLimits {
            max_head_bytes: config.max_head_bytes,
            ..HeadLimits::default()
        };
        let waiting_since = Instant::now();
        // Set at the head's first byte; until then the idle timeout runs.
        let mut head_deadline =
            (!self.buf.is_empty()).then(|| Instant::now() + config.head_timeout);
        let (request, head_len) = loop {
            match self.parser.parse(&self.buf, &limits) {
                Ok(Parse::Complete(request, len)) => break (request, len),
                Ok(Parse::Partial) => {}
                Err(e) => return Read::Reject(http_error(&e)),
            }
            let until = head_deadline.unwrap_or_else(|| Instant::now() + config.idle_timeout);
            let read = tokio::select! {
                read = self.read_more(until) => read,
                () = shed.notified() => {
                    if waiting_since.elapsed() < SHED_AFTER {
                        continue; // its request may be on its way
                    }
                    let slow = head_deadline.map(|_| Response::error(408, "request head too slow"));
                    return Read::Shed(slow);
                }
            };
            match read {
                Ok(n) if n > 0 => {
                    head_deadline.get_or_insert_with(|| Instant::now() + config.head_timeout);
                }
                Ok(_) | Err(ReadError::Io) => return Read::Closed,
                Err(ReadError::Timeout) if head_deadline.is_none() => return Read::Closed,
                Err(ReadError::Timeout) => {
                    return Read::Reject(Response::error(408, "request head not received in time"))
                }
            }
        };
        self.buf.advance(head_len);
        if let Err(response) = check_host(&request) {
            return Read::Reject(response);
        }
        let length = match body_length(&request, config.max_body_bytes) {
            Ok(length) => length,
            Err(response) => return Read::Reject(response),
        };
        if length > self.buf.len() && expects_continue(&request) {
            // RFC 9110 §10.1.1: the client waits for this before the body.
            let interim = b"HTTP/1.1 100 Continue\r\n\r\n";
            if self.write_all(interim).await.is_err() {
                return Read::Closed;
            }
            self.io.traffic().response(100);
        }
        let body_deadline =
            Instant::now() + config.head_timeout + at_rate(length, config.body_min_rate);
        let body = match self.read_body(length, body_deadline).await {
            Ok(body) => body,
            Err(ReadError::Io) => return Read::Closed,
            Err(ReadError::Timeout) => {
                return Read::Reject(Response::error(408, "request body not received in time"))
            }
        };
        if self.buf.is_empty() && self.buf.capacity() > KEEP_BUFFER {
            self.buf = BytesMut::new();
        }
        Read::Request(Incoming { request, body })
    }

    /// The next `length` bytes, in an allocation of their own: copied when
    /// already buffered, else read straight into a buffer of that size.
    async fn read_body(&mut self, length: usize, deadline: Instant) -> Result<Bytes, ReadError> {
        if self.buf.len() >= length {
            let body = Bytes::copy_from_slice(&self.buf[..length]);
            self.buf.advance(length);
            return Ok(body);
        }
        let mut body = BytesMut::with_capacity(length);
        body.extend_from_slice(&self.buf);
        self.buf.clear();
        while body.len() < length {
            let want = (length - body.len()) as u64;
            let mut limited = (&mut self.io).take(want);
            match tokio::time::timeout_at(deadline, limited.read_buf(&mut body)).await {
                Err(_) => return Err(ReadError::Timeout),
                Ok(Ok(0)) | Ok(Err(_)) => return Err(ReadError::Io),
                Ok(Ok(_)) => {}
            }
        }
        Ok(body.freeze())
    }

    /// Reads once, by `deadline`; how many bytes, 0 on EOF.
    async fn read_more(&mut self, deadline: Instant) -> Result<usize, ReadError> {
        if self.buf.capacity() - self.buf.len() < 512 {
            self.buf.reserve(4096);
        }
        match tokio::time::timeout_at(deadline, self.io.read_buf(&mut self.buf)).await {
            Err(_) => Err(ReadError::Timeout),
            Ok(Err(_)) => Err(ReadError::Io),
            Ok(Ok(n)) => Ok(n),
        }
    }

    /// Completes when the client closes the connection or it fails, while
    /// a response is being prepared (a held long poll). Bytes the client
    /// pipelines meanwhile are kept for the next request, up to `limit`;
    /// past that it stops reading (and waits for ever: the caller's own
    /// deadline ends the wait).
    pub async fn closed(&mut self, limit: usize) {
        // Read through a small probe: the buffer stays unallocated while
        // thousands of long polls wait, and grows only if bytes come.
        let mut probe = [0u8; 64];
        while self.buf.len() < limit {
            match self.io.read(&mut probe).await {
                Ok(0) | Err(_) => return,
                Ok(n) => self.buf.extend_from_slice(&probe[..n]),
            }
        }
        std::future::pending::<()>().await
    }

    /// Frees the read buffer if it holds nothing: for a connection about
    /// to wait long (a held long poll, an event stream), whose 4 KiB would
    /// otherwise stay allocated for nothing, at every subscriber.
    pub fn release_buffer(&mut self) {
        if self.buf.is_empty() {
            self.buf = BytesMut::new();
        }
    }

    /// Answers and closes without losing the answer: a close with unread
    /// input would make the kernel send a reset, and the client might never
    /// read the response. So: write, send FIN, and drain what the client
    /// still sends for a moment.
    pub async fn reject(mut self, response: &Response) {
        if self.send(response, false, false).await.is_err() {
            return;
        }
        let _ = self.io.shutdown().await;
        // Small: it is part of every connection task's future.
        let mut sink = [0u8; 512];
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            let mut left: usize = 64 * 1024;
            while left > 0 {
                match self.io.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => left = left.saturating_sub(n),
                }
            }
        })
        .await;
    }

    /// Writes a whole response (only its head for a HEAD request), the
    /// body from its own buffer rather than copied behind the head.
    pub async fn send(
        &mut self,
        response: &Response,
        keep_alive: bool,
        head_only: bool,
    ) -> std::io::Result<()> {
        self.io.traffic().response(response.status);
        let head = response.head(keep_alive);
        let body = if head_only {
            &[][..]
        } else {
            &response.body[..]
        };
        self.write_two(&head, body).await
    }

    /// Writes `first` then `second`, both in one `writev` where the
    /// socket takes them, under the write timeout.
    async fn write_two(&mut self, mut first: &[u8], mut second: &[u8]) -> std::io::Result<()> {
        while !first.is_empty() {
            let slices = [IoSlice::new(first), IoSlice::new(second)];
            let write = self.io.write_vectored(&slices);
            let n = match tokio::time::timeout(self.write_timeout, write).await {
                Err(_) => return Err(std::io::ErrorKind::TimedOut.into()),
                Ok(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(result) => result?,
            };
            let from_first = n.min(first.len());
            first = &first[from_first..];
            second = &second[n - from_first..];
        }
        self.write_all(second).await
    }

    /// Writes `bytes`, failing with `TimedOut` when the peer accepts none
    /// for `write_timeout`.
    pub async fn write_all(&mut self, mut bytes: &[u8]) -> std::io::Result<()> {
        while !bytes.is_empty() {
            let write = self.io.write(bytes);
            match tokio::time::timeout(self.write_timeout, write).await {
                Err(_) => return Err(std::io::ErrorKind::TimedOut.into()),
                Ok(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(Ok(n)) => bytes = &bytes[n..],
                Ok(Err(e)) => return Err(e),
            }
        }
        Ok(())
    }
}

/// How long a connection may have waited for its next request (idle, or a
/// head arriving) before it yields its slot to a new client when every
/// slot is taken.
pub(crate) const SHED_AFTER: Duration = Duration::from_secs(1);

enum ReadError {
    Timeout,
    Io,
}

fn http_error(e: &HttpError) -> Response {
    Response::error(e.status(), &e.to_string())
}

/// How long `length` bytes take at `rate` bytes per second.
fn at_rate(length: usize, rate: usize) -> Duration {
    Duration::from_secs_f64(length as f64 / rate.max(1) as f64)
}

/// RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status
/// code to any HTTP/1.1 request message that lacks a Host header field and
/// to any request message that contains more than one Host header field
/// line".
fn check_host(request: &Request) -> Result<(), Response> {
    match request.headers.get_all("host").count() {
        0 if request.version.at_least_1_1() => Err(Response::error(400, "Host header required")),
        0 | 1 => Ok(()),
        _ => Err(Response::error(400, "more than one Host header")),
    }
}

/// Whether the client waits for `100 Continue` before sending its body.
fn expects_continue(request: &Request) -> bool {
    request.version.at_least_1_1() && request.headers.contains_token("expect", "100-continue")
}

/// The body length the request announces. Only `Content-Length` bodies are
/// accepted (RFC 7230 §3.3.3): a `Transfer-Encoding` gets 411, a body over
/// the limit 413, a malformed or conflicting length 400.
fn body_length(request: &Request, max: usize) -> Result<usize, Response> {
    if request.headers.get("transfer-encoding").is_some() {
        return Err(Response::error(
            411,
            "only Content-Length bodies are accepted",
        ));
    }
    let mut lengths = request.headers.get_all("content-length");
    let Some(first) = lengths.next() else {
        return if request.method == "POST" || request.method == "PUT" {
            Err(Response::error(411, "Content-Length required"))
        } else {
            Ok(0)
        };
    };
    let valid = |v: &str| !v.is_empty() && v.len() <= 19 && v.bytes().all(|b| b.is_ascii_digit());
    if !valid(first) || lengths.any(|other| other != first) {
        return Err(Response::error(400, "invalid Content-Length"));
    }
    match first.parse::<usize>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(Response::error(413, "request body too large")),
    }
}

/// Whether the connection stays open after this request (RFC 7230 §6.3).
pub(crate) fn wants_keep_alive(request: &Request) -> bool {
    let connection = |token| request.headers.contains_token("connection", token);
    if request.version.at_least_1_1() {
        !connection("close")
    } else {
        connection("keep-alive")
    }
}
