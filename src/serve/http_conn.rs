//! One HTTP/1.1 connection of `rtwire serve`: read requests with their
//! `Content-Length` bodies under limits, write responses, keep alive.

use bytes::{Bytes, BytesMut};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::response::Response;
use super::ServeConfig;
use crate::http::{HeadLimits, HttpError, Parse, Request};

/// A request and its body.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub request: Request,
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
}

/// A keep-alive HTTP/1.1 connection.
pub(crate) struct HttpConn<S> {
    pub io: S,
    /// Bytes read past the last request (pipelined requests, or frames
    /// after a WebSocket upgrade).
    pub buf: BytesMut,
}

impl<S: AsyncRead + AsyncWrite + Unpin> HttpConn<S> {
    pub fn new(io: S) -> Self {
        HttpConn {
            io,
            buf: BytesMut::with_capacity(1024),
        }
    }

    /// Reads the next request. The head must arrive within
    /// `head_timeout` of its first byte (else 408); an idle connection is
    /// closed quietly after `idle_timeout`.
    pub async fn read_request(&mut self, config: &ServeConfig) -> Read {
        let limits = HeadLimits {
            max_head_bytes: config.max_head_bytes,
            ..HeadLimits::default()
        };
        let (request, head_len) = loop {
            match Request::parse(&self.buf, &limits) {
                Ok(Parse::Complete(request, len)) => break (request, len),
                Ok(Parse::Partial) => {}
                Err(e) => return Read::Reject(http_error(&e)),
            }
            let wait = if self.buf.is_empty() {
                config.idle_timeout
            } else {
                config.head_timeout
            };
            match self.read_more(wait).await {
                Ok(true) => {}
                Ok(false) | Err(ReadError::Io) => return Read::Closed,
                Err(ReadError::Timeout) if self.buf.is_empty() => return Read::Closed,
                Err(ReadError::Timeout) => {
                    return Read::Reject(Response::error(408, "request head not received in time"))
                }
            }
        };
        let _ = self.buf.split_to(head_len);
        let length = match body_length(&request, config.max_body_bytes) {
            Ok(length) => length,
            Err(response) => return Read::Reject(response),
        };
        while self.buf.len() < length {
            match self.read_more(config.head_timeout).await {
                Ok(true) => {}
                Ok(false) | Err(ReadError::Io) => return Read::Closed,
                Err(ReadError::Timeout) => {
                    return Read::Reject(Response::error(408, "request body not received in time"))
                }
            }
        }
        let body = self.buf.split_to(length).freeze();
        Read::Request(Incoming { request, body })
    }

    /// Reads once; `Ok(false)` on EOF.
    async fn read_more(&mut self, wait: Duration) -> Result<bool, ReadError> {
        if self.buf.capacity() - self.buf.len() < 512 {
            self.buf.reserve(4096);
        }
        match tokio::time::timeout(wait, self.io.read_buf(&mut self.buf)).await {
            Err(_) => Err(ReadError::Timeout),
            Ok(Err(_)) => Err(ReadError::Io),
            Ok(Ok(n)) => Ok(n > 0),
        }
    }

    /// Answers and closes without losing the answer: a close with unread
    /// input would make the kernel send a reset, and the client might never
    /// read the response. So: write, send FIN, and drain what the client
    /// still sends for a moment.
    pub async fn reject(mut self, response: &Response) {
        if self.send(response, false).await.is_err() {
            return;
        }
        let _ = self.io.shutdown().await;
        let mut sink = [0u8; 4096];
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

    /// Writes a whole response.
    pub async fn send(&mut self, response: &Response, keep_alive: bool) -> std::io::Result<()> {
        self.io.write_all(&response.to_bytes(keep_alive)).await?;
        self.io.flush().await
    }
}

enum ReadError {
    Timeout,
    Io,
}

fn http_error(e: &HttpError) -> Response {
    Response::error(e.status(), &e.to_string())
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
