//! Responses of `rtwire serve`: a head, and a body written from its own buffer.

use bytes::Bytes;
use std::borrow::Cow;

use crate::http::{reason_phrase, write_response_head};

/// A complete HTTP response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Response {
    pub status: u16,
    /// rtwire's own names are static; a handler's are owned.
    pub headers: Vec<(Cow<'static, str>, String)>,
    pub body: Bytes,
    /// The GET's body is a stream without a length (SSE): a HEAD answer
    /// carries no `Content-Length`, and the connection closes after it.
    pub streamed: bool,
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response {
        Response {
            status,
            headers: vec![(Cow::Borrowed("Content-Type"), content_type.to_owned())],
            body: body.into(),
            streamed: false,
        }
    }

    /// An error with a one-line plain-text reason.
    pub fn error(status: u16, reason: &str) -> Response {
        Response::new(status, "text/plain; charset=utf-8", format!("{reason}\n"))
    }

    pub fn json(status: u16, body: impl Into<Bytes>) -> Response {
        Response::new(status, "application/json", body)
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((Cow::Borrowed(name), value.into()));
        self
    }

    /// The status line and headers, with the `Content-Length` of the body
    /// (also for a HEAD request, which gets the head alone: RFC 9110 §9.3.2).
    pub fn head(&self, keep_alive: bool) -> Vec<u8> {
        let length = self.body.len().to_string();
        let bodiless =
            (100..200).contains(&self.status) || self.status == 204 || self.status == 304;
        let mut headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_ref(), v.as_str()))
            .collect();
        if !bodiless && !self.streamed {
            headers.push(("Content-Length", &length));
        }
        headers.push((
            "Connection",
            if keep_alive { "keep-alive" } else { "close" },
        ));
        let mut out = Vec::with_capacity(160);
        write_response_head(&mut out, self.status, reason_phrase(self.status), &headers);
        out
    }
}
