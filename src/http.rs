//! HTTP/1.1 request and response heads: a bounded push parser and writers.
//!
//! This module does no I/O. The caller appends received bytes to a buffer and
//! calls [`Request::parse`] (or [`Response::parse`]) on the whole buffer each
//! time; the parser answers [`Parse::Partial`] until the blank line ending the
//! head has arrived, then [`Parse::Complete`] with the number of bytes the head
//! used. Anything after that belongs to the next protocol layer.
//!
//! Limits are enforced as soon as they are crossed, so a peer can never make
//! the caller buffer more than [`HeadLimits::max_head_bytes`].
//!
//! `Request::parse` starts from byte 0 on every call, so a head that arrives
//! in many small reads is scanned again and again: quadratic in its length.
//! A [`RequestParser`] (or [`ResponseParser`]) kept across reads resumes
//! where it stopped instead, so each byte is examined a bounded number of
//! times however the head was split. It gives the same answers, at the same
//! points, as the whole-buffer parse; `Request::parse` is a fresh
//! `RequestParser` used once.
//!
//! # Example
//!
//! ```
//! use rtwire::http::{HeadLimits, Parse, Request};
//!
//! let limits = HeadLimits::default();
//! let bytes = b"GET /chat?room=1 HTTP/1.1\r\nHost: example.com\r\n\r\nrest";
//!
//! // Not enough bytes yet: ask for more.
//! assert_eq!(Request::parse(&bytes[..20], &limits), Ok(Parse::Partial));
//!
//! match Request::parse(bytes, &limits)? {
//!     Parse::Complete(req, used) => {
//!         assert_eq!(req.method, "GET");
//!         assert_eq!(req.path(), "/chat");
//!         assert_eq!(req.query(), Some("room=1"));
//!         assert_eq!(req.headers.get("host"), Some("example.com"));
//!         assert_eq!(&bytes[used..], b"rest");
//!     }
//!     Parse::Partial => unreachable!(),
//! }
//! # Ok::<(), rtwire::http::HttpError>(())
//! ```
//!
//! The same head arriving a few bytes at a time, through one parser:
//!
//! ```
//! use rtwire::http::{HeadLimits, Parse, RequestParser};
//!
//! let limits = HeadLimits::default();
//! let bytes = b"GET /chat HTTP/1.1\r\nHost: example.com\r\n\r\nPOS";
//! let mut parser = RequestParser::new();
//! let mut buf = Vec::new();
//! let mut reads = bytes.chunks(3);
//! let (req, used) = loop {
//!     // A socket read would go here.
//!     buf.extend_from_slice(reads.next().expect("the head ends before the input"));
//!     // Same buffer each time, only longer: the parser skips what it has seen.
//!     if let Parse::Complete(req, used) = parser.parse(&buf, &limits)? {
//!         break (req, used);
//!     }
//! };
//! assert_eq!(req.path(), "/chat");
//! assert_eq!(used, bytes.len() - 3);
//!
//! // Keep-alive: drop the head from the buffer, keep what followed it (the
//! // start of the next request) and read on. After `Complete` the parser is
//! // already back at its start; `reset` would do no harm, and is needed to
//! // abandon a head part-way or to go on after an error.
//! buf.drain(..used);
//! assert_eq!(buf, b"P");
//! reads.for_each(|read| buf.extend_from_slice(read));
//! buf.extend_from_slice(b"T /send HTTP/1.1\r\n\r\n");
//! let Parse::Complete(next, _) = parser.parse(&buf, &limits)? else {
//!     panic!("a whole head")
//! };
//! assert_eq!((next.method.as_str(), next.target.as_str()), ("POST", "/send"));
//! # Ok::<(), rtwire::http::HttpError>(())
//! ```

use std::fmt;
use std::mem;

/// Bounds on the size of a head, checked while parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    /// Largest head accepted, in bytes, including the blank line ending it.
    pub max_head_bytes: usize,
    /// Largest number of header fields accepted.
    pub max_headers: usize,
}

impl Default for HeadLimits {
    /// 8192 bytes and 64 headers.
    fn default() -> Self {
        HeadLimits {
            max_head_bytes: 8192,
            max_headers: 64,
        }
    }
}

/// Outcome of a parse attempt on a buffer that may not hold a whole head yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parse<T> {
    /// The head was complete: the parsed value and the number of bytes it
    /// used, up to and including the blank line that ends it.
    Complete(T, usize),
    /// More bytes are needed.
    Partial,
}

/// Why a head was rejected.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The head is longer than [`HeadLimits::max_head_bytes`].
    HeadTooLarge,
    /// The head has more than [`HeadLimits::max_headers`] header fields.
    TooManyHeaders,
    /// A CR byte that is not part of a CRLF line ending.
    BareCr,
    /// The request line is not `method SP target SP version`.
    BadRequestLine,
    /// The method is not a token.
    BadMethod,
    /// The request target is empty or has bytes other than visible ASCII.
    BadTarget,
    /// The version is not `HTTP/d.d`.
    BadVersion,
    /// The version is well formed but its major number is not 1.
    UnsupportedVersion,
    /// The status line is not `version SP status SP reason`.
    BadStatusLine,
    /// The status code is not three digits in 100..=999.
    BadStatusCode,
    /// A header line has no colon.
    MissingColon,
    /// A header name is empty or not a token.
    BadHeaderName,
    /// Whitespace between a header name and its colon.
    SpaceBeforeColon,
    /// A header line starts with whitespace (obsolete line folding).
    ObsFold,
    /// A header value holds a control character.
    BadHeaderValue,
    /// A header value is not valid UTF-8.
    NonUtf8Value,
}

impl HttpError {
    /// The HTTP status a server should answer this error with: 431 when the
    /// head is too large or has too many headers, 505 for an unsupported major
    /// version, 400 otherwise.
    ///
    /// ```
    /// use rtwire::http::HttpError;
    /// assert_eq!(HttpError::HeadTooLarge.status(), 431);
    /// assert_eq!(HttpError::BadMethod.status(), 400);
    /// ```
    pub fn status(&self) -> u16 {
        match self {
            HttpError::HeadTooLarge | HttpError::TooManyHeaders => 431,
            HttpError::UnsupportedVersion => 505,
            _ => 400,
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let msg = match self {
            HttpError::HeadTooLarge => "HTTP head too large",
            HttpError::TooManyHeaders => "too many HTTP header fields",
            HttpError::BareCr => "bare CR in HTTP head",
            HttpError::BadRequestLine => "malformed HTTP request line",
            HttpError::BadMethod => "invalid HTTP method",
            HttpError::BadTarget => "invalid HTTP request target",
            HttpError::BadVersion => "malformed HTTP version",
            HttpError::UnsupportedVersion => "unsupported HTTP version",
            HttpError::BadStatusLine => "malformed HTTP status line",
            HttpError::BadStatusCode => "invalid HTTP status code",
            HttpError::MissingColon => "HTTP header line without colon",
            HttpError::BadHeaderName => "invalid HTTP header name",
            HttpError::SpaceBeforeColon => "whitespace before colon in HTTP header",
            HttpError::ObsFold => "obsolete line folding in HTTP header",
            HttpError::BadHeaderValue => "control character in HTTP header value",
            HttpError::NonUtf8Value => "HTTP header value is not UTF-8",
        };
        f.write_str(msg)
    }
}

impl std::error::Error for HttpError {}

/// An HTTP version, `HTTP/major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Major number; the parser only accepts 1.
    pub major: u8,
    /// Minor number.
    pub minor: u8,
}

impl Version {
    /// HTTP/1.0.
    pub const HTTP_1_0: Version = Version { major: 1, minor: 0 };
    /// HTTP/1.1.
    pub const HTTP_1_1: Version = Version { major: 1, minor: 1 };

    /// Whether this is HTTP/1.1 or later.
    pub fn at_least_1_1(&self) -> bool {
        *self >= Version::HTTP_1_1
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP/{}.{}", self.major, self.minor)
    }
}

/// Header fields in the order received, names kept as received.
///
/// Lookups compare names ASCII case-insensitively (RFC 7230 §3.2).
///
/// Stored as one string of every name and value and their offsets: a
/// server keeps a WebSocket's upgrade request for as long as the socket
/// lives, and two allocations per field would cost it more than the text.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers {
    text: String,
    /// Per field: where its name starts, where its value starts (the
    /// name's end), and where its value ends, in `text`.
    spans: Vec<[u32; 3]>,
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Headers {
    /// An empty list.
    pub fn new() -> Self {
        Headers::default()
    }

    fn field(&self, [name, value, end]: [u32; 3]) -> (&str, &str) {
        let text = self.text.as_str();
        // The offsets were taken at char boundaries as the fields were pushed.
        (
            &text[name as usize..value as usize],
            &text[value as usize..end as usize],
        )
    }

    /// The value of the first field named `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The values of every field named `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The elements of the comma-separated lists in every field named `name`,
    /// with surrounding whitespace trimmed and empty elements skipped
    /// (RFC 7230 §7). Commas inside quoted strings do not split.
    ///
    /// ```
    /// use rtwire::http::Headers;
    /// let mut h = Headers::new();
    /// h.push("Connection", "keep-alive, , Upgrade");
    /// h.push("connection", "close");
    /// let all: Vec<&str> = h.tokens("CONNECTION").collect();
    /// assert_eq!(all, ["keep-alive", "Upgrade", "close"]);
    /// ```
    pub fn tokens<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.get_all(name).flat_map(|v| ListElements { rest: v })
    }

    /// Whether any list element of the fields named `name` equals `token`,
    /// ASCII case-insensitively.
    pub fn contains_token(&self, name: &str, token: &str) -> bool {
        self.tokens(name).any(|t| t.eq_ignore_ascii_case(token))
    }

    /// Every `(name, value)` pair in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.spans.iter().map(|&span| self.field(span))
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Appends a field. No validation: this is for building or testing.
    ///
    /// # Panics
    ///
    /// If the fields together exceed 4 GiB.
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.push_str(&name.into(), &value.into());
    }

    fn push_str(&mut self, name: &str, value: &str) {
        let offset = |len: usize| u32::try_from(len).expect("header fields under 4 GiB");
        let start = offset(self.text.len());
        self.text.push_str(name);
        let middle = offset(self.text.len());
        self.text.push_str(value);
        self.spans.push([start, middle, offset(self.text.len())]);
    }
}

/// Splits one field value into list elements, honouring quoted strings.
struct ListElements<'a> {
    rest: &'a str,
}

impl<'a> Iterator for ListElements<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        while !self.rest.is_empty() {
            let bytes = self.rest.as_bytes();
            let mut in_quotes = false;
            let mut escaped = false;
            let mut end = bytes.len();
            for (i, &b) in bytes.iter().enumerate() {
                if escaped {
                    escaped = false;
                } else if in_quotes && b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_quotes = !in_quotes;
                } else if b == b',' && !in_quotes {
                    end = i;
                    break;
                }
            }
            let elem = trim_ows(&self.rest[..end]);
            // `end` is a comma (ASCII) or the end, so both slices are on
            // char boundaries.
            self.rest = if end < bytes.len() {
                &self.rest[end + 1..]
            } else {
                ""
            };
            if !elem.is_empty() {
                return Some(elem);
            }
        }
        None
    }
}

fn trim_ows(s: &str) -> &str {
    s.trim_matches(|c| c == ' ' || c == '\t')
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method, e.g. `GET`.
    pub method: String,
    /// The request target as sent, e.g. `/chat?room=1`.
    pub target: String,
    /// The protocol version.
    pub version: Version,
    /// The header fields.
    pub headers: Headers,
}

impl Request {
    /// Parses a request head from the start of `buf`.
    ///
    /// Returns [`Parse::Partial`] if the head is not complete yet, unless a
    /// limit is already exceeded or a complete line is already invalid, which
    /// is an error at once.
    ///
    /// Each call scans `buf` from byte 0; to parse a head as it arrives,
    /// keep a [`RequestParser`] between reads instead.
    ///
    /// ```
    /// use rtwire::http::{HeadLimits, HttpError, Parse, Request};
    /// let limits = HeadLimits::default();
    /// let mut buf = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    /// assert_eq!(Request::parse(&buf, &limits), Ok(Parse::Partial));
    /// buf.extend_from_slice(b"\r\n");
    /// assert!(matches!(Request::parse(&buf, &limits), Ok(Parse::Complete(_, 27))));
    /// let err = Request::parse(b"GET / HTTP/1.1\r\nHost : a\r\n", &limits).unwrap_err();
    /// assert_eq!((err.status(), err), (400, HttpError::SpaceBeforeColon));
    /// ```
    pub fn parse(buf: &[u8], limits: &HeadLimits) -> Result<Parse<Request>, HttpError> {
        RequestParser::new().parse(buf, limits)
    }

    /// The target up to the first `?`.
    pub fn path(&self) -> &str {
        match self.target.split_once('?') {
            Some((path, _)) => path,
            None => &self.target,
        }
    }

    /// The target after the first `?`, if there is one.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The protocol version.
    pub version: Version,
    /// The status code.
    pub status: u16,
    /// The reason phrase, possibly empty. Bytes that are not UTF-8 are
    /// replaced, since the phrase carries no meaning (RFC 7230 §3.1.2).
    pub reason: String,
    /// The header fields.
    pub headers: Headers,
}

impl Response {
    /// Parses a response head from the start of `buf`, with the same rules
    /// as [`Request::parse`].
    ///
    /// ```
    /// use rtwire::http::{HeadLimits, Parse, Response};
    /// let bytes = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
    /// let Parse::Complete(resp, used) = Response::parse(bytes, &HeadLimits::default())? else {
    ///     panic!("complete head expected");
    /// };
    /// assert_eq!((resp.status, used), (101, bytes.len()));
    /// # Ok::<(), rtwire::http::HttpError>(())
    /// ```
    pub fn parse(buf: &[u8], limits: &HeadLimits) -> Result<Parse<Response>, HttpError> {
        ResponseParser::new().parse(buf, limits)
    }
}

/// What a request line parses to: method, target, version.
type RequestLine = (String, String, Version);

/// What a status line parses to: version, status, reason.
type StatusLine = (Version, u16, String);

/// A request head parser that keeps its place between calls, for a head
/// arriving in pieces.
///
/// [`Request::parse`] scans the buffer from byte 0 each time it is called,
/// so a head read one byte at a time costs time quadratic in its length.
/// This parser remembers the lines it has already handled and how far it
/// has searched the current one, so every byte is looked at a bounded
/// number of times in all. Its answers are exactly those of
/// `Request::parse` on the same buffer.
///
/// One parser serves one connection: call [`parse`](Self::parse) after every
/// read, and after [`Parse::Complete`] (or [`reset`](Self::reset)) use it for
/// the next head.
///
/// ```
/// use rtwire::http::{HeadLimits, HttpError, Parse, RequestParser};
/// let limits = HeadLimits::default();
/// let mut parser = RequestParser::new();
/// let mut buf = b"GET / HTTP/1.1\r\nHo".to_vec();
/// assert_eq!(parser.parse(&buf, &limits), Ok(Parse::Partial));
/// buf.extend_from_slice(b"st: a\r\n\r\n");
/// assert!(matches!(parser.parse(&buf, &limits), Ok(Parse::Complete(_, 27))));
///
/// // A bad line is an error as soon as it is complete, and stays one.
/// parser.reset();
/// let buf = b"GET / HTTP/1.1\r\nHost : a\r\n";
/// assert_eq!(parser.parse(buf, &limits), Err(HttpError::SpaceBeforeColon));
/// assert_eq!(parser.parse(buf, &limits), Err(HttpError::SpaceBeforeColon));
/// ```
#[derive(Debug, Default)]
pub struct RequestParser {
    head: HeadParser<RequestLine>,
}

impl RequestParser {
    /// A parser at the start of a head.
    pub fn new() -> RequestParser {
        RequestParser::default()
    }

    /// Parses the request head at the start of `buf`, resuming where the
    /// previous call stopped.
    ///
    /// Contract: `buf` holds the bytes of the previous call's `buf` (for
    /// this head) with zero or more bytes appended, and `limits` are the
    /// same. The parser does not re-read what it has already handled, so
    /// changing those bytes in place gives wrong answers (but never a
    /// panic). Two departures are noticed and start the head over from
    /// byte 0, as after [`reset`](Self::reset): a `buf` shorter than what
    /// the parser has already examined, and different `limits`.
    ///
    /// The result is what [`Request::parse`] would return for the same
    /// `buf`: [`Parse::Partial`] until the head is complete, or an error as
    /// soon as a complete line is invalid or the buffer reaches
    /// [`HeadLimits::max_head_bytes`] without the head ending.
    ///
    /// After [`Parse::Complete`] the parser is back at its start, as after
    /// `reset`: the next call parses its `buf` from byte 0 as a new head (so
    /// passing the same buffer again answers the same `Complete` again, at
    /// the cost of a full parse). After an error every further call returns
    /// that same error, without looking at `buf`, until `reset` (or one of
    /// the departures above). Both are what `Request::parse` would answer
    /// for the longer buffer.
    pub fn parse(&mut self, buf: &[u8], limits: &HeadLimits) -> Result<Parse<Request>, HttpError> {
        Ok(match self.head.parse(buf, limits, parse_request_line)? {
            None => Parse::Partial,
            Some(((method, target, version), headers, used)) => Parse::Complete(
                Request {
                    method,
                    target,
                    version,
                    headers,
                },
                used,
            ),
        })
    }

    /// Forgets the head in progress (or the error), so that the next call
    /// to [`parse`](Self::parse) starts a new head at byte 0 of its buffer:
    /// after dropping a parsed head from the buffer of a keep-alive
    /// connection, or to abandon a head part-way.
    pub fn reset(&mut self) {
        self.head.reset();
    }
}

/// A response head parser that keeps its place between calls: the
/// counterpart of [`RequestParser`] for [`Response::parse`], with the same
/// contract.
///
/// ```
/// use rtwire::http::{HeadLimits, Parse, ResponseParser};
/// let limits = HeadLimits::default();
/// let bytes = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
/// let mut parser = ResponseParser::new();
/// for end in 0..bytes.len() {
///     assert_eq!(parser.parse(&bytes[..end], &limits), Ok(Parse::Partial));
/// }
/// let Ok(Parse::Complete(resp, used)) = parser.parse(bytes, &limits) else {
///     panic!("complete head expected");
/// };
/// assert_eq!((resp.status, used), (101, bytes.len()));
/// ```
#[derive(Debug, Default)]
pub struct ResponseParser {
    head: HeadParser<StatusLine>,
}

impl ResponseParser {
    /// A parser at the start of a head.
    pub fn new() -> ResponseParser {
        ResponseParser::default()
    }

    /// Parses the response head at the start of `buf`, resuming where the
    /// previous call stopped; the contract and the answers are those of
    /// [`RequestParser::parse`], with [`Response::parse`] as the reference.
    pub fn parse(&mut self, buf: &[u8], limits: &HeadLimits) -> Result<Parse<Response>, HttpError> {
        Ok(match self.head.parse(buf, limits, parse_status_line)? {
            None => Parse::Partial,
            Some(((version, status, reason), headers, used)) => Parse::Complete(
                Response {
                    version,
                    status,
                    reason,
                    headers,
                },
                used,
            ),
        })
    }

    /// Forgets the head in progress (or the error); see
    /// [`RequestParser::reset`].
    pub fn reset(&mut self) {
        self.head.reset();
    }
}

/// The line-by-line walk over a head, shared by requests and responses, as
/// a state machine kept between calls. `S` is what the start line parses to.
///
/// Every decision depends only on the bytes before it, so the outcome is
/// the same however the input was split, and a walk stopped at the end of
/// a shorter buffer can carry on over a longer one.
#[derive(Debug)]
struct HeadParser<S> {
    /// The limits the walk so far was made under.
    limits: Option<HeadLimits>,
    /// Where the current, incomplete line starts: everything before it is
    /// in lines already handled.
    line_start: usize,
    /// How far the current line has been searched for its `\n`, so that a
    /// longer buffer is only searched from there. Never below `line_start`.
    searched: usize,
    /// The start line, once it has been parsed.
    start: Option<S>,
    /// The header fields parsed so far.
    headers: Headers,
    /// The error this head ended with, returned again until a reset.
    failed: Option<HttpError>,
    /// Bytes looked at so far (searched for `\n`, or handed to a line
    /// parser), to test that the work is linear. Survives resets.
    #[cfg(test)]
    examined: usize,
}

impl<S> Default for HeadParser<S> {
    fn default() -> Self {
        HeadParser {
            limits: None,
            line_start: 0,
            searched: 0,
            start: None,
            headers: Headers::new(),
            failed: None,
            #[cfg(test)]
            examined: 0,
        }
    }
}

impl<S> HeadParser<S> {
    fn reset(&mut self) {
        self.limits = None;
        self.line_start = 0;
        self.searched = 0;
        self.start = None;
        self.headers = Headers::new();
        self.failed = None;
    }

    /// Carries the walk on over `buf`; see [`RequestParser::parse`] for the
    /// contract. Resets itself once the head is complete.
    fn parse(
        &mut self,
        buf: &[u8],
        limits: &HeadLimits,
        parse_start: fn(&[u8]) -> Result<S, HttpError>,
    ) -> Result<Option<(S, Headers, usize)>, HttpError> {
        // Only bytes within the limit may end the head; a line ending beyond
        // it means the head is too large whatever follows.
        let window = &buf[..buf.len().min(limits.max_head_bytes)];
        // A buffer that cannot be the old one grown, or other limits: start
        // over. (With the same limits, `searched` is within the old window,
        // so this is exactly "buf is shorter than what was examined"; it also
        // keeps every slice below in bounds.)
        if self.searched > window.len() || self.limits.is_some_and(|l| l != *limits) {
            self.reset();
        }
        self.limits = Some(*limits);
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.walk(buf, window, limits, parse_start) {
            Ok(Some(done)) => {
                self.reset();
                Ok(Some(done))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                self.failed = Some(e.clone());
                Err(e)
            }
        }
    }

    fn walk(
        &mut self,
        buf: &[u8],
        window: &[u8],
        limits: &HeadLimits,
        parse_start: fn(&[u8]) -> Result<S, HttpError>,
    ) -> Result<Option<(S, Headers, usize)>, HttpError> {
        loop {
            let unsearched = &window[self.searched..];
            let found = unsearched.iter().position(|&b| b == b'\n');
            #[cfg(test)]
            {
                self.examined += found.map_or(unsearched.len(), |i| i + 1);
            }
            let Some(nl) = found else {
                self.searched = window.len();
                return if buf.len() >= limits.max_head_bytes {
                    Err(HttpError::HeadTooLarge)
                } else {
                    Ok(None)
                };
            };
            let end = self.searched + nl;
            let mut line = &window[self.line_start..end];
            self.line_start = end + 1;
            self.searched = end + 1;
            #[cfg(test)]
            {
                self.examined += line.len();
            }
            // RFC 7230 §3.5: accept a bare LF as a line ending, but never a
            // bare CR.
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            if line.contains(&b'\r') {
                return Err(HttpError::BareCr);
            }
            let Some(start) = self.start.take() else {
                // RFC 7230 §3.5: ignore empty lines before the start line.
                if !line.is_empty() {
                    self.start = Some(parse_start(line)?);
                }
                continue;
            };
            if line.is_empty() {
                let headers = mem::take(&mut self.headers);
                return Ok(Some((start, headers, self.line_start)));
            }
            self.start = Some(start);
            let (name, value) = parse_header_line(line)?;
            self.headers.push_str(name, value);
            if self.headers.len() > limits.max_headers {
                return Err(HttpError::TooManyHeaders);
            }
        }
    }
}

/// RFC 7230 §3.2.6: tchar.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// Whether `name` may be sent as a header field name: an HTTP token
/// (RFC 7230 §3.2.6).
///
/// ```
/// assert!(rtwire::http::is_valid_header_name("X-Request-Id"));
/// assert!(!rtwire::http::is_valid_header_name("X Id"));
/// assert!(!rtwire::http::is_valid_header_name(""));
/// ```
pub fn is_valid_header_name(name: &str) -> bool {
    is_token(name.as_bytes())
}

/// Whether `value` may be sent as a header field value: no control
/// characters but horizontal tab (RFC 7230 §3.2), so no CR, LF or NUL that
/// could end the line early. This is the rule the parsers apply on receipt.
///
/// ```
/// assert!(rtwire::http::is_valid_header_value("Bearer abc\tdef"));
/// assert!(!rtwire::http::is_valid_header_value("a\r\nSet-Cookie: x"));
/// assert!(!rtwire::http::is_valid_header_value("nul\0"));
/// ```
pub fn is_valid_header_value(value: &str) -> bool {
    !value.bytes().any(|b| is_ctl(b) && b != b'\t')
}

/// Parses `HTTP/d.d` (RFC 7230 §2.6).
fn parse_version(v: &[u8]) -> Result<Version, HttpError> {
    match v {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            let version = Version {
                major: major - b'0',
                minor: minor - b'0',
            };
            if version.major != 1 {
                return Err(HttpError::UnsupportedVersion);
            }
            Ok(version)
        }
        _ => Err(HttpError::BadVersion),
    }
}

/// RFC 7230 §3.1.1: request-line = method SP request-target SP HTTP-version.
fn parse_request_line(line: &[u8]) -> Result<(String, String, Version), HttpError> {
    let first = line.iter().position(|&b| b == b' ');
    let last = line.iter().rposition(|&b| b == b' ');
    let (Some(first), Some(last)) = (first, last) else {
        return Err(HttpError::BadRequestLine);
    };
    if first == last {
        return Err(HttpError::BadRequestLine);
    }
    let method = &line[..first];
    let target = &line[first + 1..last];
    if !is_token(method) {
        return Err(HttpError::BadMethod);
    }
    // Version before target, so a stray trailing space reads as a bad version.
    let version = parse_version(&line[last + 1..])?;
    // RFC 7230 §3.1.1: no whitespace inside the request-target.
    if target.is_empty() || !target.iter().all(|b| b.is_ascii_graphic()) {
        return Err(HttpError::BadTarget);
    }
    Ok((ascii_string(method), ascii_string(target), version))
}

/// RFC 7230 §3.1.2: status-line = HTTP-version SP status-code SP reason-phrase.
fn parse_status_line(line: &[u8]) -> Result<(Version, u16, String), HttpError> {
    let Some(sp) = line.iter().position(|&b| b == b' ') else {
        return Err(HttpError::BadStatusLine);
    };
    let version = parse_version(&line[..sp])?;
    let rest = &line[sp + 1..];
    let (code, reason) = match rest {
        [a, b, c] => ([*a, *b, *c], &[][..]),
        [a, b, c, b' ', reason @ ..] => ([*a, *b, *c], reason),
        _ => return Err(HttpError::BadStatusCode),
    };
    if !code.iter().all(u8::is_ascii_digit) || code[0] == b'0' {
        return Err(HttpError::BadStatusCode);
    }
    let status = code
        .iter()
        .fold(0u16, |acc, &d| acc * 10 + u16::from(d - b'0'));
    // reason-phrase = *( HTAB / SP / VCHAR / obs-text )
    if reason.iter().any(|&b| is_ctl(b) && b != b'\t') {
        return Err(HttpError::BadStatusLine);
    }
    Ok((
        version,
        status,
        String::from_utf8_lossy(reason).into_owned(),
    ))
}

fn is_ctl(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

/// RFC 7230 §3.2: header-field = field-name ":" OWS field-value OWS.
fn parse_header_line(line: &[u8]) -> Result<(&str, &str), HttpError> {
    // RFC 7230 §3.2.4: obs-fold is rejected.
    if line[0] == b' ' || line[0] == b'\t' {
        return Err(HttpError::ObsFold);
    }
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return Err(HttpError::MissingColon);
    };
    let name = &line[..colon];
    // RFC 7230 §3.2.4: no whitespace between field-name and colon.
    if let [.., b' ' | b'\t'] = name {
        return Err(HttpError::SpaceBeforeColon);
    }
    if !is_token(name) {
        return Err(HttpError::BadHeaderName);
    }
    let mut value = &line[colon + 1..];
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    // RFC 7230 §3.2: field-content is VCHAR, SP, HTAB and obs-text only.
    if value.iter().any(|&b| is_ctl(b) && b != b'\t') {
        return Err(HttpError::BadHeaderValue);
    }
    let value = std::str::from_utf8(value).map_err(|_| HttpError::NonUtf8Value)?;
    let name = std::str::from_utf8(name).map_err(|_| HttpError::BadHeaderName)?;
    Ok((name, value))
}

/// Only called on bytes already checked to be ASCII.
fn ascii_string(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Appends `s`, turning CR, LF and NUL into spaces so a caller-supplied
/// string can never end a line early (response splitting).
fn push_field(out: &mut Vec<u8>, s: &str) {
    out.extend(s.bytes().map(|b| match b {
        b'\r' | b'\n' | 0 => b' ',
        b => b,
    }));
}

fn push_headers(out: &mut Vec<u8>, headers: &[(&str, &str)]) {
    for (name, value) in headers {
        push_field(out, name);
        out.extend_from_slice(b": ");
        push_field(out, value);
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends an HTTP/1.1 request head: the request line, each header as
/// `Name: value`, and the blank line.
///
/// CR, LF and NUL in any argument are written as spaces.
///
/// ```
/// let mut out = Vec::new();
/// rtwire::http::write_request(&mut out, "GET", "/", &[("Host", "example.com")]);
/// assert_eq!(out, b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n");
/// ```
pub fn write_request(out: &mut Vec<u8>, method: &str, target: &str, headers: &[(&str, &str)]) {
    push_field(out, method);
    out.push(b' ');
    push_field(out, target);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    push_headers(out, headers);
    out.extend_from_slice(b"\r\n");
}

/// Appends an HTTP/1.1 response: status line, headers, blank line and body.
///
/// Adds `Content-Length` unless `headers` already has one, when the body is
/// non-empty or the status allows a body (not 1xx, 204 or 304, RFC 7230
/// §3.3.2). Callers must not pass a body with those statuses. CR, LF and NUL
/// in the string arguments are written as spaces.
///
/// ```
/// let mut out = Vec::new();
/// rtwire::http::write_response(&mut out, 404, "Not Found", &[], b"no\n");
/// assert_eq!(out, b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno\n");
/// ```
pub fn write_response(
    out: &mut Vec<u8>,
    status: u16,
    reason: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) {
    write_status_and_headers(out, status, reason, headers);
    let bodiless = (100..200).contains(&status) || status == 204 || status == 304;
    let has_length = headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-length"));
    if (!body.is_empty() || !bodiless) && !has_length {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// Appends a response head exactly as given: the status line, the
/// headers and the blank line, adding no `Content-Length` (for a body
/// written separately, or a stream that ends with the connection).
///
/// CR, LF and NUL in any argument are written as spaces.
///
/// ```
/// let mut out = Vec::new();
/// rtwire::http::write_response_head(&mut out, 200, "OK", &[("Content-Type", "text/event-stream")]);
/// assert_eq!(out, b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n");
/// ```
pub fn write_response_head(out: &mut Vec<u8>, status: u16, reason: &str, headers: &[(&str, &str)]) {
    write_status_and_headers(out, status, reason, headers);
    out.extend_from_slice(b"\r\n");
}

fn write_status_and_headers(
    out: &mut Vec<u8>,
    status: u16,
    reason: &str,
    headers: &[(&str, &str)],
) {
    out.extend_from_slice(format!("HTTP/1.1 {status:03} ").as_bytes());
    push_field(out, reason);
    out.extend_from_slice(b"\r\n");
    push_headers(out, headers);
}

/// The standard reason phrase for common status codes, `""` for others.
///
/// ```
/// assert_eq!(rtwire::http::reason_phrase(101), "Switching Protocols");
/// ```
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const REQ: &[u8] = b"GET /chat?x=1 HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nX-Empty:\r\n\r\n";

    fn req(buf: &[u8]) -> Result<Parse<Request>, HttpError> {
        Request::parse(buf, &HeadLimits::default())
    }

    fn resp(buf: &[u8]) -> Result<Parse<Response>, HttpError> {
        Response::parse(buf, &HeadLimits::default())
    }

    fn complete_req(buf: &[u8]) -> (Request, usize) {
        match req(buf) {
            Ok(Parse::Complete(r, n)) => (r, n),
            other => panic!("expected complete request, got {other:?}"),
        }
    }

    #[test]
    fn parses_request() {
        let (r, n) = complete_req(REQ);
        assert_eq!(n, REQ.len());
        assert_eq!(r.method, "GET");
        assert_eq!(r.target, "/chat?x=1");
        assert_eq!(r.path(), "/chat");
        assert_eq!(r.query(), Some("x=1"));
        assert_eq!(r.version, Version::HTTP_1_1);
        assert!(r.version.at_least_1_1());
        assert_eq!(r.headers.len(), 4);
        assert_eq!(r.headers.get("HOST"), Some("server.example.com"));
        assert_eq!(r.headers.get("x-empty"), Some(""));
        assert!(r.headers.contains_token("connection", "upgrade"));
        let names: Vec<&str> = r.headers.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["Host", "Upgrade", "Connection", "X-Empty"]);
    }

    #[test]
    fn every_split_point_is_partial_then_complete() {
        for i in 0..REQ.len() {
            assert_eq!(req(&REQ[..i]), Ok(Parse::Partial), "prefix {i}");
        }
        let mut extended = REQ.to_vec();
        extended.extend_from_slice(b"\x81\x00trailing");
        let (r, n) = complete_req(&extended);
        assert_eq!(n, REQ.len());
        assert_eq!(Ok(Parse::Complete(r, n)), req(REQ));
    }

    #[test]
    fn bare_lf_line_endings() {
        let (r, n) = complete_req(b"GET / HTTP/1.0\nA: b\n\nX");
        assert_eq!(n, 21);
        assert_eq!(r.version, Version::HTTP_1_0);
        assert!(!r.version.at_least_1_1());
        assert_eq!(r.headers.get("a"), Some("b"));
        // Mixed endings are fine too.
        assert_eq!(complete_req(b"GET / HTTP/1.1\r\nA: b\n\r\n").1, 23);
    }

    #[test]
    fn bare_cr_rejected() {
        assert_eq!(req(b"GET / HTTP/1.1\rA: b\r\n\r\n"), Err(HttpError::BareCr));
        assert_eq!(
            req(b"GET / HTTP/1.1\r\nA: b\rc\r\n\r\n"),
            Err(HttpError::BareCr)
        );
        assert_eq!(req(b"GET / HTTP/1.1\r\n\r\r\n"), Err(HttpError::BareCr));
    }

    #[test]
    fn leading_empty_lines_ignored() {
        let (r, n) = complete_req(b"\r\nGET / HTTP/1.1\r\n\r\n");
        assert_eq!((r.method.as_str(), n), ("GET", 20));
    }

    #[test]
    fn request_line_errors() {
        let cases: &[(&[u8], HttpError)] = &[
            (b"GET\r\n\r\n", HttpError::BadRequestLine),
            (b"GET /\r\n\r\n", HttpError::BadRequestLine),
            (b"G(T / HTTP/1.1\r\n\r\n", HttpError::BadMethod),
            (b" GET / HTTP/1.1\r\n\r\n", HttpError::BadMethod),
            (b"GET  HTTP/1.1\r\n\r\n", HttpError::BadTarget),
            (b"GET /a b HTTP/1.1\r\n\r\n", HttpError::BadTarget),
            (b"GET /\x7f HTTP/1.1\r\n\r\n", HttpError::BadTarget),
            (b"GET /\xc3\xa9 HTTP/1.1\r\n\r\n", HttpError::BadTarget),
            (b"GET / HTTP/1.1 \r\n\r\n", HttpError::BadVersion),
            (b"GET / HTTP/11\r\n\r\n", HttpError::BadVersion),
            (b"GET / http/1.1\r\n\r\n", HttpError::BadVersion),
            (b"GET / HTTP/1.10\r\n\r\n", HttpError::BadVersion),
            (b"GET / HTTP/2.0\r\n\r\n", HttpError::UnsupportedVersion),
            (b"GET / HTTP/0.9\r\n\r\n", HttpError::UnsupportedVersion),
        ];
        for (input, err) in cases {
            assert_eq!(
                req(input),
                Err(err.clone()),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        assert_eq!(HttpError::UnsupportedVersion.status(), 505);
        assert_eq!(HttpError::BadTarget.status(), 400);
    }

    #[test]
    fn invalid_line_is_an_error_before_the_head_ends() {
        assert_eq!(
            req(b"GET / HTTP/9.9\r\n"),
            Err(HttpError::UnsupportedVersion)
        );
        assert_eq!(
            req(b"GET / HTTP/1.1\r\nBad Name: x\r\nMore"),
            Err(HttpError::BadHeaderName)
        );
    }

    #[test]
    fn header_errors() {
        let cases: &[(&[u8], HttpError)] = &[
            (b"Host : x", HttpError::SpaceBeforeColon),
            (b"Host\t: x", HttpError::SpaceBeforeColon),
            (b"Ho st: x", HttpError::BadHeaderName),
            (b": x", HttpError::BadHeaderName),
            (b"H\xc3\xa9: x", HttpError::BadHeaderName),
            (b"NoColon", HttpError::MissingColon),
            (b" folded", HttpError::ObsFold),
            (b"\tfolded: x", HttpError::ObsFold),
            (b"A: b\x00c", HttpError::BadHeaderValue),
            (b"A: b\x01c", HttpError::BadHeaderValue),
            (b"A: \xff", HttpError::NonUtf8Value),
        ];
        for (line, err) in cases {
            let mut input = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
            input.extend_from_slice(line);
            input.extend_from_slice(b"\r\n\r\n");
            assert_eq!(
                req(&input),
                Err(err.clone()),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn values_trimmed_and_utf8_kept() {
        let (r, _) =
            complete_req("GET / HTTP/1.1\r\nA: \t x y \t\r\nB: h\u{e9}llo\tz\r\n\r\n".as_bytes());
        assert_eq!(r.headers.get("a"), Some("x y"));
        assert_eq!(r.headers.get("b"), Some("h\u{e9}llo\tz"));
    }

    #[test]
    fn head_too_large_even_when_incomplete() {
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.resize(9000, b'a');
        let err = req(&big).unwrap_err();
        assert_eq!(err, HttpError::HeadTooLarge);
        assert_eq!(err.status(), 431);
        // Under the limit it still waits.
        assert_eq!(req(&big[..8000]), Ok(Parse::Partial));
        // A complete head that is too long is an error as well.
        big.extend_from_slice(b"\r\n\r\n");
        assert_eq!(req(&big), Err(HttpError::HeadTooLarge));
    }

    #[test]
    fn head_exactly_at_limit() {
        let limits = HeadLimits {
            max_head_bytes: REQ.len(),
            max_headers: 64,
        };
        assert!(
            matches!(Request::parse(REQ, &limits), Ok(Parse::Complete(_, n)) if n == REQ.len())
        );
        let limits = HeadLimits {
            max_head_bytes: REQ.len() - 1,
            ..limits
        };
        assert_eq!(Request::parse(REQ, &limits), Err(HttpError::HeadTooLarge));
        assert_eq!(
            Request::parse(&REQ[..REQ.len() - 1], &limits),
            Err(HttpError::HeadTooLarge)
        );
        assert_eq!(
            Request::parse(&REQ[..REQ.len() - 2], &limits),
            Ok(Parse::Partial)
        );
    }

    #[test]
    fn too_many_headers() {
        let mut head = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..64 {
            head.extend_from_slice(format!("H{i}: v\r\n").as_bytes());
        }
        let mut ok = head.clone();
        ok.extend_from_slice(b"\r\n");
        assert_eq!(complete_req(&ok).0.headers.len(), 64);
        // The 65th header is refused as soon as its line is complete.
        head.extend_from_slice(b"H64: v\r\n");
        let err = req(&head).unwrap_err();
        assert_eq!(err, HttpError::TooManyHeaders);
        assert_eq!(err.status(), 431);
        head.extend_from_slice(b"\r\n");
        assert_eq!(req(&head), Err(HttpError::TooManyHeaders));
    }

    #[test]
    fn parses_response() {
        let bytes = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81";
        let Ok(Parse::Complete(r, n)) = resp(bytes) else {
            panic!()
        };
        assert_eq!(n, bytes.len() - 1);
        assert_eq!((r.status, r.reason.as_str()), (101, "Switching Protocols"));
        assert_eq!(r.headers.get("upgrade"), Some("websocket"));
        for i in 0..n {
            assert_eq!(resp(&bytes[..i]), Ok(Parse::Partial));
        }
    }

    #[test]
    fn response_reason_may_be_empty() {
        for input in [&b"HTTP/1.1 200 \r\n\r\n"[..], b"HTTP/1.1 200\r\n\r\n"] {
            let Ok(Parse::Complete(r, _)) = resp(input) else {
                panic!()
            };
            assert_eq!((r.status, r.reason.as_str()), (200, ""));
        }
    }

    #[test]
    fn response_errors() {
        let cases: &[(&[u8], HttpError)] = &[
            (b"HTTP/1.1\r\n\r\n", HttpError::BadStatusLine),
            (b"HTTP/1.1 20\r\n\r\n", HttpError::BadStatusCode),
            (b"HTTP/1.1 2000 OK\r\n\r\n", HttpError::BadStatusCode),
            (b"HTTP/1.1 099 x\r\n\r\n", HttpError::BadStatusCode),
            (b"HTTP/1.1 2x0 OK\r\n\r\n", HttpError::BadStatusCode),
            (b"HTTP/1.1 200 O\x01K\r\n\r\n", HttpError::BadStatusLine),
            (b"HTTP/3.0 200 OK\r\n\r\n", HttpError::UnsupportedVersion),
            (b"HTTX/1.1 200 OK\r\n\r\n", HttpError::BadVersion),
            (
                b"HTTP/1.1 200 OK\r\nA : b\r\n\r\n",
                HttpError::SpaceBeforeColon,
            ),
        ];
        for (input, err) in cases {
            assert_eq!(
                resp(input),
                Err(err.clone()),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn token_lists() {
        let mut h = Headers::new();
        assert!(h.is_empty());
        h.push("Sec-WebSocket-Protocol", "chat, superchat");
        h.push("sec-websocket-protocol", " ,,\tv2 ,");
        h.push("Ext", "a; p=\"x,y\", b");
        h.push("Ext", "c;q=\"\\\",\"");
        let p: Vec<&str> = h.tokens("Sec-WebSocket-Protocol").collect();
        assert_eq!(p, ["chat", "superchat", "v2"]);
        let e: Vec<&str> = h.tokens("ext").collect();
        assert_eq!(e, ["a; p=\"x,y\"", "b", "c;q=\"\\\",\""]);
        assert!(h.contains_token("SEC-websocket-protocol", "SuperChat"));
        assert!(!h.contains_token("sec-websocket-protocol", "super"));
        assert!(!h.contains_token("missing", "chat"));
        assert_eq!(h.tokens("missing").count(), 0);
        let all: Vec<&str> = h.get_all("ext").collect();
        assert_eq!(all.len(), 2);
        assert_eq!(h.len(), 4);
    }

    #[test]
    fn write_request_round_trips() {
        let mut out = Vec::new();
        write_request(&mut out, "GET", "/a?b", &[("Host", "h"), ("X", "1, 2")]);
        let (r, n) = complete_req(&out);
        assert_eq!(n, out.len());
        assert_eq!(r.target, "/a?b");
        assert_eq!(r.headers.get("x"), Some("1, 2"));
    }

    #[test]
    fn writers_neutralise_line_breaks() {
        let mut out = Vec::new();
        write_request(&mut out, "GET", "/", &[("X", "a\r\nInjected: yes")]);
        let (r, _) = complete_req(&out);
        assert_eq!(r.headers.len(), 1);
        assert_eq!(r.headers.get("x"), Some("a  Injected: yes"));
    }

    #[test]
    fn write_response_content_length_rules() {
        let mut out = Vec::new();
        write_response(
            &mut out,
            101,
            "Switching Protocols",
            &[("Upgrade", "websocket")],
            b"",
        );
        assert_eq!(
            out,
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
        );

        for status in [204, 304] {
            out.clear();
            write_response(&mut out, status, reason_phrase(status), &[], b"");
            assert!(!String::from_utf8_lossy(&out).contains("Content-Length"));
        }

        out.clear();
        write_response(&mut out, 200, "OK", &[], b"");
        assert_eq!(out, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");

        out.clear();
        write_response(&mut out, 200, "OK", &[("content-length", "2")], b"hi");
        assert_eq!(out, b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi");

        out.clear();
        write_response(&mut out, 400, reason_phrase(400), &[("A", "b")], b"oops");
        let Ok(Parse::Complete(r, n)) = resp(&out) else {
            panic!()
        };
        assert_eq!((r.status, r.reason.as_str()), (400, "Bad Request"));
        assert_eq!(r.headers.get("content-length"), Some("4"));
        assert_eq!(&out[n..], b"oops");
    }

    #[test]
    fn reason_phrases() {
        assert_eq!(reason_phrase(200), "OK");
        assert_eq!(reason_phrase(426), "Upgrade Required");
        assert_eq!(reason_phrase(431), "Request Header Fields Too Large");
        assert_eq!(reason_phrase(799), "");
    }

    #[test]
    fn display_is_one_line() {
        let errs = [
            HttpError::HeadTooLarge,
            HttpError::BareCr,
            HttpError::SpaceBeforeColon,
            HttpError::NonUtf8Value,
        ];
        for e in errs {
            let s = e.to_string();
            assert!(!s.is_empty() && !s.contains('\n'));
        }
    }

    /// Feeds `bytes[..end]` for every `end` in `ends` to one parser and
    /// checks each answer against the whole-buffer parse of that prefix.
    fn feed_and_compare(bytes: &[u8], ends: &[usize], limits: &HeadLimits) {
        let mut req_parser = RequestParser::new();
        let mut resp_parser = ResponseParser::new();
        for &end in ends {
            let prefix = &bytes[..end];
            assert_eq!(
                req_parser.parse(prefix, limits),
                Request::parse(prefix, limits),
                "request, prefix {end}"
            );
            assert_eq!(
                resp_parser.parse(prefix, limits),
                Response::parse(prefix, limits),
                "response, prefix {end}"
            );
        }
    }

    #[test]
    fn incremental_one_byte_at_a_time() {
        let limits = HeadLimits::default();
        let mut parser = RequestParser::new();
        for end in 0..REQ.len() {
            assert_eq!(parser.parse(&REQ[..end], &limits), Ok(Parse::Partial));
        }
        assert_eq!(parser.parse(REQ, &limits), req(REQ));
        let ends: Vec<usize> = (0..=REQ.len()).collect();
        feed_and_compare(REQ, &ends, &limits);
    }

    #[test]
    fn incremental_errors_at_the_same_point() {
        let small = HeadLimits {
            max_head_bytes: 40,
            max_headers: 1,
        };
        let inputs: &[&[u8]] = &[
            b"GET / HTTP/9.9\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Name: x\r\nMore",
            b"GET / HTTP/1.1\rA: b\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\r\nB: c\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
        ];
        for input in inputs {
            let ends: Vec<usize> = (0..=input.len()).collect();
            feed_and_compare(input, &ends, &small);
            feed_and_compare(input, &ends, &HeadLimits::default());
        }
        // An error is an error at once, and stays the same error.
        let mut parser = RequestParser::new();
        let bad = b"GET / HTTP/9.9\r\nHost: a\r\n\r\n";
        assert_eq!(parser.parse(&bad[..15], &small), Ok(Parse::Partial));
        assert_eq!(
            parser.parse(&bad[..16], &small),
            Err(HttpError::UnsupportedVersion)
        );
        assert_eq!(
            parser.parse(bad, &small),
            Err(HttpError::UnsupportedVersion)
        );
        // Crossing the limit is HeadTooLarge at once, even mid-line.
        let mut parser = RequestParser::new();
        let long = [b'a'; 64];
        assert_eq!(parser.parse(&long[..39], &small), Ok(Parse::Partial));
        assert_eq!(
            parser.parse(&long[..40], &small),
            Err(HttpError::HeadTooLarge)
        );
    }

    #[test]
    fn incremental_work_is_linear() {
        // An 8 KiB head, most of it one long line, so that both the lines
        // already handled and the searched part of the current line must be
        // skipped on each call.
        let mut head = b"GET /chat HTTP/1.1\r\nHost: example.com\r\nX-Long: ".to_vec();
        let tail = b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
        let n = 8192;
        head.resize(n - tail.len(), b'a');
        head.extend_from_slice(tail);
        assert_eq!(head.len(), n);
        let limits = HeadLimits::default();

        let mut parser = RequestParser::new();
        for end in 0..n {
            assert_eq!(parser.parse(&head[..end], &limits), Ok(Parse::Partial));
            // Calls without new bytes cost nothing.
            let before = parser.head.examined;
            assert_eq!(parser.parse(&head[..end], &limits), Ok(Parse::Partial));
            assert_eq!(parser.head.examined, before);
        }
        let Ok(Parse::Complete(r, used)) = parser.parse(&head, &limits) else {
            panic!("complete head expected")
        };
        assert_eq!((used, r.headers.len()), (n, 4));
        let linear = parser.head.examined;
        assert!(linear < 4 * n, "{linear} bytes examined for {n}");

        // The counter does see quadratic work: a fresh parse per read, as
        // `Request::parse` does, examines about n^2/2 bytes (only a quarter
        // of the reads, to keep the test quick).
        let mut fresh = RequestParser::new();
        for end in 0..n / 4 {
            assert_eq!(fresh.parse(&head[..end], &limits), Ok(Parse::Partial));
            fresh.reset();
        }
        let quadratic = fresh.head.examined;
        assert!(quadratic > (n / 4) * (n / 4) / 4, "{quadratic}");
    }

    #[test]
    fn reset_then_second_request() {
        let limits = HeadLimits::default();
        let second = b"POST /send?x=2 HTTP/1.0\r\nA: b\r\n\r\n";
        let mut parser = RequestParser::new();

        // Part of a first head, abandoned: without a reset the parser would
        // carry on over the second head's bytes as if they were the first's.
        assert_eq!(parser.parse(&REQ[..30], &limits), Ok(Parse::Partial));
        parser.reset();
        for end in 0..second.len() {
            assert_eq!(parser.parse(&second[..end], &limits), Ok(Parse::Partial));
        }
        let Ok(Parse::Complete(r, used)) = parser.parse(second, &limits) else {
            panic!("complete head expected")
        };
        assert_eq!(
            (r.method.as_str(), r.query(), used),
            ("POST", Some("x=2"), second.len())
        );

        // After Complete the parser is back at its start: the next head
        // (here longer than the first) parses with or without a reset.
        assert_eq!(parser.parse(REQ, &limits), req(REQ));
        parser.reset();
        assert_eq!(parser.parse(REQ, &limits), req(REQ));
        // The same buffer again gives the same answer again.
        assert_eq!(parser.parse(REQ, &limits), req(REQ));

        // An error sticks until a reset.
        let bad = b"GET / HTTP/1.1\r\nHost : a\r\n";
        assert_eq!(parser.parse(bad, &limits), Err(HttpError::SpaceBeforeColon));
        let mut more = bad.to_vec();
        more.extend_from_slice(b"\r\n");
        assert_eq!(
            parser.parse(&more, &limits),
            Err(HttpError::SpaceBeforeColon)
        );
        parser.reset();
        assert_eq!(parser.parse(second, &limits), req(second));

        // A shorter buffer, or other limits, start over.
        assert_eq!(parser.parse(&REQ[..60], &limits), Ok(Parse::Partial));
        assert_eq!(parser.parse(second, &limits), req(second));
        assert_eq!(parser.parse(&REQ[..60], &limits), Ok(Parse::Partial));
        let tight = HeadLimits {
            max_head_bytes: 50,
            ..limits
        };
        assert_eq!(
            parser.parse(&REQ[..60], &tight),
            Err(HttpError::HeadTooLarge)
        );
        assert_eq!(parser.parse(&REQ[..60], &limits), Ok(Parse::Partial));

        // The response parser too.
        let resp_bytes = b"HTTP/1.1 204 No Content\r\n\r\n";
        let mut parser = ResponseParser::new();
        assert_eq!(parser.parse(&resp_bytes[..10], &limits), Ok(Parse::Partial));
        parser.reset();
        assert_eq!(parser.parse(resp_bytes, &limits), resp(resp_bytes));
        assert_eq!(parser.parse(resp_bytes, &limits), resp(resp_bytes));
    }

    /// A valid head, randomly assembled.
    fn valid_head() -> impl Strategy<Value = Vec<u8>> {
        (
            "[A-Z]{1,7}",
            "/[a-z0-9/?=&]{0,20}",
            proptest::collection::vec(("[A-Za-z][A-Za-z0-9-]{0,15}", "[ -~]{0,30}"), 0..10),
            any::<bool>(),
        )
            .prop_map(|(method, target, headers, crlf)| {
                let eol = if crlf { "\r\n" } else { "\n" };
                let mut s = format!("{method} {target} HTTP/1.1{eol}");
                for (n, v) in headers {
                    s.push_str(&format!("{n}: {v}{eol}"));
                }
                s.push_str(eol);
                s.into_bytes()
            })
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let small = HeadLimits { max_head_bytes: 300, max_headers: 5 };
            let _ = Request::parse(&bytes, &HeadLimits::default());
            let _ = Response::parse(&bytes, &HeadLimits::default());
            let _ = Request::parse(&bytes, &small);
            let _ = Response::parse(&bytes, &small);
        }

        #[test]
        fn valid_heads_partial_then_complete(head in valid_head(), tail in proptest::collection::vec(any::<u8>(), 0..20)) {
            for i in 0..head.len() {
                prop_assert_eq!(req(&head[..i]), Ok(Parse::Partial));
            }
            let mut full = head.clone();
            full.extend_from_slice(&tail);
            match req(&full) {
                Ok(Parse::Complete(_, n)) => prop_assert_eq!(n, head.len()),
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }

        #[test]
        fn incremental_matches_whole(
            bytes in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..400),
                valid_head().prop_map(|mut h| { h.push(b'x'); h }),
                // Mostly-valid heads with one byte corrupted.
                (valid_head(), any::<usize>(), any::<u8>()).prop_map(|(mut h, i, b)| {
                    let i = i % h.len();
                    h[i] = b;
                    h
                }),
            ],
            chunks in proptest::collection::vec(0usize..40, 0..40),
            one_at_a_time in any::<bool>(),
            max_head_bytes in 1usize..300,
            max_headers in 0usize..8,
        ) {
            // Cumulative chunks (empty ones too), then the rest at once; or
            // every prefix. Each answer equals the whole-buffer parse of the
            // same prefix, so the last equals the parse of all of `bytes`.
            let ends: Vec<usize> = if one_at_a_time {
                (0..=bytes.len()).collect()
            } else {
                let mut end = 0;
                let mut ends: Vec<usize> = chunks
                    .iter()
                    .map(|c| {
                        end = (end + c).min(bytes.len());
                        end
                    })
                    .collect();
                ends.push(bytes.len());
                ends
            };
            let limits = HeadLimits { max_head_bytes, max_headers };
            feed_and_compare(&bytes, &ends, &limits);
        }

        #[test]
        fn parser_never_panics_on_unrelated_buffers(
            calls in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..80), 0usize..100, 0usize..4, any::<bool>()),
                0..20,
            ),
        ) {
            // Breaking the contract (buffers that are not the previous one
            // grown, limits changing) may give odd answers but never panics.
            let mut req_parser = RequestParser::new();
            let mut resp_parser = ResponseParser::new();
            for (bytes, max_head_bytes, max_headers, reset) in calls {
                let limits = HeadLimits { max_head_bytes, max_headers };
                let _ = req_parser.parse(&bytes, &limits);
                let _ = resp_parser.parse(&bytes, &limits);
                if reset {
                    req_parser.reset();
                    resp_parser.reset();
                }
            }
        }

        #[test]
        fn split_independent(
            bytes in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..400),
                valid_head().prop_map(|mut h| { h.push(b'x'); h }),
                // Mostly-valid heads with one byte corrupted.
                (valid_head(), any::<usize>(), any::<u8>()).prop_map(|(mut h, i, b)| {
                    let i = i % h.len();
                    h[i] = b;
                    h
                }),
            ],
            max_head_bytes in 1usize..300,
            max_headers in 0usize..8,
        ) {
            // Feeding a growing buffer: the first non-Partial answer must be
            // the answer for the whole input.
            let limits = HeadLimits { max_head_bytes, max_headers };
            let whole_req = Request::parse(&bytes, &limits);
            let whole_resp = Response::parse(&bytes, &limits);
            let mut req_done = false;
            let mut resp_done = false;
            for i in 0..=bytes.len() {
                let r = Request::parse(&bytes[..i], &limits);
                if !req_done && r != Ok(Parse::Partial) {
                    prop_assert_eq!(&r, &whole_req);
                    req_done = true;
                }
                let r = Response::parse(&bytes[..i], &limits);
                if !resp_done && r != Ok(Parse::Partial) {
                    prop_assert_eq!(&r, &whole_resp);
                    resp_done = true;
                }
            }
        }
    }
}
