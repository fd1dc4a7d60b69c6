//! Embedding `rtwire serve` in a program: the program's own routes beside
//! rtwire's, through a fallback [`Handler`] that gets every request rtwire
//! does not route.
//!
//! The handler's requests arrive through the same connection loop as
//! rtwire's, so they get the same protections: the head and body
//! deadlines, `max_head_bytes` and `max_body_bytes`, the write timeout and
//! the connection cap. The handler itself has `handler_timeout` to answer
//! (else 503), and is dropped as soon as the client leaves.

use bytes::Bytes;
use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use super::auth::AuthRequest;
use super::params::query_param;
use super::response::Response;
use crate::http::{Headers, Request};

/// A boxed, sendable future: what a [`Handler`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Answers the requests rtwire does not route itself.
///
/// Any `Fn(HttpRequest) -> impl Future<Output = HttpResponse>` that is
/// `Send + Sync + 'static` is a handler; so is a type implementing this
/// trait. The request is owned, so the future may keep it.
///
/// ```
/// use rtwire::serve::{HttpRequest, HttpResponse};
///
/// async fn hello(request: HttpRequest) -> HttpResponse {
///     match (request.method(), request.path()) {
///         ("GET", "/hello") => HttpResponse::text(200, format!("hello, {}\n", request.peer_addr())),
///         _ => HttpResponse::text(404, "no such route\n"),
///     }
/// }
/// # fn is_handler(_: impl rtwire::serve::Handler) {}
/// # is_handler(hello);
/// ```
pub trait Handler: Send + Sync + 'static {
    /// The response to `request`.
    fn call(&self, request: HttpRequest) -> BoxFuture<'static, HttpResponse>;
}

impl<F, Fut> Handler for F
where
    F: Fn(HttpRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HttpResponse> + Send + 'static,
{
    fn call(&self, request: HttpRequest) -> BoxFuture<'static, HttpResponse> {
        Box::pin(self(request))
    }
}

/// A whole request, as a [`Handler`] gets it: the head, the body (at most
/// [`max_body_bytes`](super::ServeConfig::max_body_bytes), read under its
/// deadline before the handler is called) and the peer's address.
#[derive(Clone, Debug)]
pub struct HttpRequest {
    head: Request,
    body: Bytes,
    peer: SocketAddr,
}

impl HttpRequest {
    /// A request from its parts; for calling a handler yourself, e.g. in a
    /// test.
    pub fn new(head: Request, body: Bytes, peer: SocketAddr) -> HttpRequest {
        HttpRequest { head, body, peer }
    }

    /// The method, e.g. `POST`. A `HEAD` request reaches the handler as
    /// such; only the head of its response is sent.
    pub fn method(&self) -> &str {
        &self.head.method
    }

    /// The target up to the first `?`, as sent (not percent-decoded).
    pub fn path(&self) -> &str {
        self.head.path()
    }

    /// The target after the first `?`, if any, as sent.
    pub fn query(&self) -> Option<&str> {
        self.head.query()
    }

    /// The query parameter `name`, percent-decoded; `None` if absent or not
    /// UTF-8 once decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        query_param(self.query(), name)
    }

    /// The first header named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.headers.get(name)
    }

    /// Every header, in the order received.
    pub fn headers(&self) -> &Headers {
        &self.head.headers
    }

    /// The whole head.
    pub fn head(&self) -> &Request {
        &self.head
    }

    /// The body; empty without a `Content-Length`.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The client's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// The request as an [`AuthHook`](super::AuthHook) sees it, to ask the
    /// server's hook (or any other) from a handler.
    pub fn auth_request(&self) -> AuthRequest<'_> {
        AuthRequest::new(&self.head, self.peer)
    }
}

/// What a [`Handler`] answers: a status, headers and a body. rtwire adds
/// `Content-Length` and `Connection`; those two and `Transfer-Encoding`
/// are its own to set.
///
/// ```
/// use rtwire::serve::HttpResponse;
///
/// let response = HttpResponse::json(201, "{\"ok\":true}\n").header("Location", "/items/7");
/// assert_eq!(response.status(), 201);
/// assert_eq!(response.header_value("content-type"), Some("application/json"));
/// assert!(response.check().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Bytes,
}

impl HttpResponse {
    /// A response with `status`, no headers and no body.
    pub fn new(status: u16) -> HttpResponse {
        HttpResponse {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// A `text/plain; charset=utf-8` response.
    pub fn text(status: u16, body: impl Into<String>) -> HttpResponse {
        HttpResponse::new(status)
            .header("Content-Type", "text/plain; charset=utf-8")
            .with_body(body.into())
    }

    /// An `application/json` response; `body` is sent as given.
    pub fn json(status: u16, body: impl Into<Bytes>) -> HttpResponse {
        HttpResponse::new(status)
            .header("Content-Type", "application/json")
            .with_body(body)
    }

    /// Adds a header. Checked when sent: see [`check`](Self::check).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> HttpResponse {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Replaces the body.
    pub fn with_body(mut self, body: impl Into<Bytes>) -> HttpResponse {
        self.body = body.into();
        self
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The value of the first header named `name` (ASCII case-insensitive).
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Whether rtwire can send this response as it is. A response that
    /// fails the check is not sent: the client gets a 500 instead.
    pub fn check(&self) -> Result<(), InvalidResponse> {
        if !(200..=599).contains(&self.status) {
            return Err(InvalidResponse::Status(self.status));
        }
        if matches!(self.status, 204 | 304) && !self.body.is_empty() {
            return Err(InvalidResponse::BodyNotAllowed(self.status));
        }
        for (name, value) in &self.headers {
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                return Err(InvalidResponse::HeaderName(name.clone()));
            }
            if RESERVED.iter().any(|r| name.eq_ignore_ascii_case(r)) {
                return Err(InvalidResponse::ReservedHeader(name.clone()));
            }
            if !value.bytes().all(is_value_byte) {
                return Err(InvalidResponse::HeaderValue(name.clone()));
            }
        }
        Ok(())
    }

    /// The response rtwire writes, once checked.
    pub(crate) fn into_response(self) -> Result<Response, InvalidResponse> {
        self.check()?;
        Ok(Response {
            status: self.status,
            headers: self
                .headers
                .into_iter()
                .map(|(n, v)| (Cow::Owned(n), v))
                .collect(),
            body: self.body,
            streamed: false,
        })
    }
}

/// Headers that frame the message: rtwire writes them itself.
const RESERVED: [&str; 3] = ["content-length", "transfer-encoding", "connection"];

/// `tchar` of RFC 9110 §5.6.2.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Field value bytes of RFC 9110 §5.5: visible, space, tab, obs-text; no
/// control characters (CR and LF would split the response).
fn is_value_byte(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f)
}

/// Why a handler's [`HttpResponse`] cannot be sent: the handler's mistake,
/// answered with a 500.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidResponse {
    /// The status is not a final status rtwire sends (200 to 599).
    Status(u16),
    /// A 204 or 304 with a body.
    BodyNotAllowed(u16),
    /// A header name that is empty or not an RFC 9110 token.
    HeaderName(String),
    /// A header value (of this name) with a control character.
    HeaderValue(String),
    /// `Content-Length`, `Transfer-Encoding` or `Connection`: rtwire's to set.
    ReservedHeader(String),
}

impl fmt::Display for InvalidResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidResponse::Status(s) => write!(f, "status {s} is not between 200 and 599"),
            InvalidResponse::BodyNotAllowed(s) => write!(f, "a {s} response has no body"),
            InvalidResponse::HeaderName(n) => write!(f, "invalid header name {n:?}"),
            InvalidResponse::HeaderValue(n) => write!(f, "control character in header {n:?}"),
            InvalidResponse::ReservedHeader(n) => write!(f, "header {n:?} is set by rtwire"),
        }
    }
}

impl std::error::Error for InvalidResponse {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_that_would_break_framing_are_refused() {
        let ok = HttpResponse::text(200, "hi").header("X-Trace", "a\tb");
        assert_eq!(ok.check(), Ok(()));
        let cases = [
            (HttpResponse::new(101), InvalidResponse::Status(101)),
            (HttpResponse::new(600), InvalidResponse::Status(600)),
            (
                HttpResponse::new(204).with_body("x"),
                InvalidResponse::BodyNotAllowed(204),
            ),
            (
                HttpResponse::new(200).header("Bad Name", "v"),
                InvalidResponse::HeaderName("Bad Name".into()),
            ),
            (
                HttpResponse::new(200).header("", "v"),
                InvalidResponse::HeaderName(String::new()),
            ),
            (
                HttpResponse::new(200).header("X-Split", "a\r\nSet-Cookie: x"),
                InvalidResponse::HeaderValue("X-Split".into()),
            ),
            (
                HttpResponse::new(200).header("content-length", "5"),
                InvalidResponse::ReservedHeader("content-length".into()),
            ),
        ];
        for (response, expected) in cases {
            assert_eq!(response.check(), Err(expected.clone()), "{response:?}");
            assert_eq!(response.into_response(), Err(expected));
        }
    }
}
