//! A minimal HTTP/1.1 client over one keep-alive connection: just what the
//! polls, the SSE stream and the publisher need, and cheap enough for ten
//! thousand connections on one thread.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::counted::{Counted, Traffic};

/// Largest response head accepted.
const MAX_HEAD: usize = 16 << 10;

/// One connection and the bytes read from it but not yet used.
#[derive(Debug)]
pub struct HttpConn {
    io: Counted<TcpStream>,
    buf: Vec<u8>,
    /// `buf[pos..]` is unread.
    pos: usize,
}

/// A response head.
#[derive(Debug)]
pub struct Head {
    pub status: u16,
    pub content_length: Option<usize>,
}

impl HttpConn {
    pub async fn connect(addr: SocketAddr) -> Result<HttpConn, String> {
        Ok(HttpConn {
            io: Counted::new(connect(addr).await?),
            buf: Vec::with_capacity(2048),
            pos: 0,
        })
    }

    /// The bytes this connection carried so far.
    pub fn traffic(&self) -> Traffic {
        self.io.traffic()
    }

    pub async fn send(&mut self, request: &[u8]) -> Result<(), String> {
        self.io
            .write_all(request)
            .await
            .map_err(|e| format!("write: {e}"))
    }

    /// The bytes read and not yet consumed.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    pub fn consume(&mut self, n: usize) {
        self.pos += n;
        debug_assert!(self.pos <= self.buf.len());
    }

    /// Reads once more; the end of the stream is an error, since every
    /// caller is waiting for something.
    pub async fn read_more(&mut self) -> Result<(), String> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(4096);
        }
        match self.io.read_buf(&mut self.buf).await {
            Ok(0) => Err("the server closed the connection".into()),
            Ok(_) => Ok(()),
            Err(e) => Err(format!("read: {e}")),
        }
    }

    /// Reads and consumes a response head.
    pub async fn head(&mut self) -> Result<Head, String> {
        loop {
            if let Some(end) = find(self.buffered(), b"\r\n\r\n") {
                let head = parse_head(&self.buffered()[..end])?;
                self.consume(end + 4);
                return Ok(head);
            }
            if self.buffered().len() > MAX_HEAD {
                return Err("response head too long".into());
            }
            self.read_more().await?;
        }
    }

    /// Reads a whole response with a `Content-Length` body, as
    /// [`response`](Self::response) does, and also gives the values of the
    /// headers `names` (any case; `None` where absent). For Nchan's long
    /// polls, whose next request repeats the last answer's `Last-Modified`
    /// and `Etag`. (Not in [`head`](Self::head): rtwire's polls need no
    /// header but `Content-Length`, and pay for no other.)
    pub async fn response_with_headers<const N: usize>(
        &mut self,
        names: [&str; N],
    ) -> Result<(u16, [Option<String>; N], &[u8]), String> {
        let values = {
            let head = self.peek_head().await?;
            names.map(|name| header_value(head, name))
        };
        // The head is whole in the buffer: `response` reads only the body.
        let (status, body) = self.response().await?;
        Ok((status, values, body))
    }

    /// Reads until a whole response head is buffered; consumes nothing.
    async fn peek_head(&mut self) -> Result<&[u8], String> {
        loop {
            if let Some(end) = find(self.buffered(), b"\r\n\r\n") {
                return Ok(&self.buffered()[..end]);
            }
            if self.buffered().len() > MAX_HEAD {
                return Err("response head too long".into());
            }
            self.read_more().await?;
        }
    }

    /// Reads a whole response with a `Content-Length` body; returns the
    /// status and the body, which stays valid until the next read.
    pub async fn response(&mut self) -> Result<(u16, &[u8]), String> {
        let head = self.head().await?;
        let length = head
            .content_length
            .ok_or("a response without Content-Length")?;
        while self.buffered().len() < length {
            self.read_more().await?;
        }
        let start = self.pos;
        self.consume(length);
        Ok((head.status, &self.buf[start..start + length]))
    }
}

/// Where the client's connections come from: not 127.0.0.1, see [`connect`].
const SOURCE: [u8; 4] = [127, 0, 0, 2];

/// Opens a TCP connection to the server, for any transport.
///
/// Ten thousand connections take ten thousand ephemeral ports, and the
/// ephemeral range (32768-60999) holds ports that other programs on the
/// machine listen on. So that a port this tool holds never stops another
/// program's `bind`: the connections come from 127.0.0.2 (a bind to
/// 127.0.0.1:P does not clash with 127.0.0.2:P), with SO_REUSEADDR (nor
/// does a bind to 0.0.0.0:P that sets it too), and close with a reset
/// (SO_LINGER 0) so that none lingers in TIME_WAIT for a minute after the
/// run. The closing is not measured.
pub async fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    let failed = |e: std::io::Error| format!("connect {addr}: {e}");
    let socket = TcpSocket::new_v4().map_err(failed)?;
    socket.set_reuseaddr(true).map_err(failed)?;
    socket.bind(SocketAddr::from((SOURCE, 0))).map_err(failed)?;
    let stream = socket.connect(addr).await.map_err(failed)?;
    // Requests and frames are written whole: Nagle's algorithm would only delay them.
    stream.set_nodelay(true).map_err(failed)?;
    stream.set_zero_linger().map_err(failed)?;
    Ok(stream)
}

/// A GET request with only the headers the server needs.
pub fn get(host: &str, target: &str, extra_headers: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n{extra_headers}\r\n").into_bytes()
}

/// A POST request of `body`.
pub fn post(host: &str, target: &str, body: &[u8]) -> Vec<u8> {
    post_with(host, target, "", body)
}

/// A POST request of `body` with more headers (each ending in `\r\n`).
pub fn post_with(host: &str, target: &str, extra_headers: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "POST {target} HTTP/1.1\r\nHost: {host}\r\n{extra_headers}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

fn parse_head(head: &[u8]) -> Result<Head, String> {
    let text = std::str::from_utf8(head).map_err(|_| "a response head that is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut content_length = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                let n = value.trim().parse().map_err(|_| "bad Content-Length")?;
                content_length = Some(n);
            }
        }
    }
    Ok(Head {
        status,
        content_length,
    })
}

/// The value of header `name` in a response head, trimmed.
fn header_value(head: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(head).ok()?;
    text.split("\r\n").skip(1).find_map(|line| {
        let (n, value) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name)
            .then(|| value.trim().to_owned())
    })
}

/// Where `needle` first occurs in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One value of the server's `/metrics` (the first line that starts with
/// `series`), on a connection of its own.
pub async fn metric(addr: SocketAddr, series: &str) -> Result<f64, String> {
    let mut conn = HttpConn::connect(addr).await?;
    conn.send(&get(&addr.to_string(), "/metrics", "")).await?;
    let (status, body) = conn.response().await?;
    if status != 200 {
        return Err(format!("GET /metrics: status {status}"));
    }
    String::from_utf8_lossy(body)
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .ok_or_else(|| format!("no {series} in /metrics"))
}
