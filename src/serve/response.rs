//! Responses of `rtwire serve`, built whole before they are written.

use bytes::Bytes;

use crate::http::{reason_phrase, write_response};

/// A complete HTTP response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type", content_type.to_owned())],
            body: body.into(),
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
        self.headers.push((name, value.into()));
        self
    }

    pub fn to_bytes(&self, keep_alive: bool) -> Vec<u8> {
        let mut headers: Vec<(&str, &str)> =
            self.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        headers.push((
            "Connection",
            if keep_alive { "keep-alive" } else { "close" },
        ));
        let mut out = Vec::with_capacity(128 + self.body.len());
        write_response(
            &mut out,
            self.status,
            reason_phrase(self.status),
            &headers,
            &self.body,
        );
        out
    }
}
