//! The `http_head` target's checks: the head parsers on any bytes, and the
//! handshakes on whatever parses.
//!
//! - A complete head parses the same from exactly its bytes, and any
//!   shorter prefix of it is partial (the outcome cannot depend on how the
//!   bytes arrived); an error stays the same error when more bytes follow.
//! - `RequestParser` and `ResponseParser`, fed the bytes in pieces whose
//!   sizes come from the input, answer what the whole-buffer parse does.
//! - Server side: `server_accept` succeeds exactly when `validate_request`
//!   does (with a hook that accepts everything); its 101 answer parses and
//!   a client that sent the same key and protocols accepts it, agreeing on
//!   the subprotocol; a rejection parses as a response with its status.
//! - Client side: `validate_response` only accepts a 101 with our accept
//!   key, and a subprotocol we offered.
//! - Refusals: a response other than 101 comes back as `Rejected` with its
//!   status and headers; the body `RejectionReader` collects from the bytes
//!   after the head is the same however they are pushed, never more than
//!   `MAX_REJECTED_BODY`, and without a transfer coding a prefix of them.
//! - URLs: the first line, as a `ws://` URL, round-trips through
//!   `host_header`, and its request passes the server's validation.

use rtwire::handshake::{
    accept_key, server_accept, validate_request, ClientHandshake, HandshakeError, RejectionReader,
    ServerHook, ServerOptions, WsUrl, MAX_REJECTED_BODY,
};
use rtwire::http::{
    HeadLimits, HttpError, Parse, Request, RequestParser, Response, ResponseParser,
};

/// The RFC 6455 §1.3 sample key, and the accept value for it.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// `accept_key(KEY)`.
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
/// What the client under test offers.
pub const PROTOCOLS: [&str; 2] = ["chat", "superchat"];

/// Runs every check on `data`.
pub fn check(data: &[u8]) {
    let tight = HeadLimits {
        max_head_bytes: 512,
        max_headers: 8,
    };
    for limits in [HeadLimits::default(), tight] {
        check_request(data, &limits);
        check_response(data, &limits);
        let mut parser = RequestParser::new();
        incremental_checks(data, &limits, Request::parse, |b| parser.parse(b, &limits));
        let mut parser = ResponseParser::new();
        incremental_checks(data, &limits, Response::parse, |b| parser.parse(b, &limits));
    }
    check_url(data);
}

/// A hook that picks the client's first subprotocol, so that whatever the
/// request offers makes its way into the answer.
struct FirstOffered;

impl ServerHook for FirstOffered {
    fn select_protocol(&self, offered: &[&str]) -> Option<String> {
        offered.first().map(|p| p.to_string())
    }
}

fn parse_checks<T: PartialEq + std::fmt::Debug>(
    data: &[u8],
    limits: &HeadLimits,
    parse: fn(&[u8], &HeadLimits) -> Result<Parse<T>, HttpError>,
) -> Option<T> {
    let result = parse(data, limits);
    match &result {
        Ok(Parse::Complete(_, used)) => {
            let used = *used;
            assert!(used <= data.len() && used <= limits.max_head_bytes);
            assert_eq!(parse(&data[..used], limits), result, "head alone");
            assert_eq!(
                parse(&data[..used - 1], limits),
                Ok(Parse::Partial),
                "a head cut before its last byte"
            );
            let half = used / 2;
            assert_eq!(
                parse(&data[..half], limits),
                Ok(Parse::Partial),
                "half a head"
            );
        }
        Ok(Parse::Partial) => {
            assert!(data.len() < limits.max_head_bytes, "partial past the limit");
        }
        Err(e) => {
            assert!(matches!(e.status(), 400 | 431 | 505));
            let mut more = data.to_vec();
            more.extend_from_slice(b"\r\n\r\n");
            assert_eq!(
                parse(&more, limits),
                result,
                "an error undone by more bytes"
            );
        }
    }
    match result {
        Ok(Parse::Complete(value, _)) => Some(value),
        _ => None,
    }
}

/// Feeds `data` to a resumable parser in pieces of 0 to 31 bytes (sizes
/// taken from the input, last byte first) and checks it against the
/// whole-buffer `parse`. That parse is `Partial` up to some prefix and one
/// fixed answer from there on (`parse_checks` holds it to that), so it is
/// enough to compare where the incremental answers stop being `Partial`,
/// which keeps this linear in the input.
fn incremental_checks<T: PartialEq + std::fmt::Debug>(
    data: &[u8],
    limits: &HeadLimits,
    parse: fn(&[u8], &HeadLimits) -> Result<Parse<T>, HttpError>,
    mut incremental: impl FnMut(&[u8]) -> Result<Parse<T>, HttpError>,
) {
    let whole = parse(data, limits);
    let mut sizes = data.iter().rev().map(|&b| usize::from(b % 32));
    // The end of the last buffer answered `Partial`, if any.
    let mut partial_at = None;
    let mut end = 0;
    loop {
        let answer = incremental(&data[..end]);
        if answer != Ok(Parse::Partial) {
            assert_eq!(answer, whole, "incremental answer at {end}");
            if let Some(at) = partial_at {
                assert_eq!(parse(&data[..at], limits), Ok(Parse::Partial), "at {at}");
            }
            // Done; asking again gives the same answer.
            assert_eq!(incremental(data), whole, "incremental answer repeated");
            return;
        }
        if end == data.len() {
            assert_eq!(whole, Ok(Parse::Partial), "incremental stays partial");
            return;
        }
        partial_at = Some(end);
        end = (end + sizes.next().unwrap_or(data.len())).min(data.len());
    }
}

fn check_request(data: &[u8], limits: &HeadLimits) {
    let Some(req) = parse_checks(data, limits, Request::parse) else {
        return;
    };
    assert!(req.headers.len() <= limits.max_headers);
    assert!(!req.target.is_empty());
    match req.query() {
        Some(q) => assert_eq!(format!("{}?{q}", req.path()), req.target),
        None => assert_eq!(req.path(), req.target),
    }

    let validated = validate_request(&req);
    let anything = ServerOptions::default();
    let accepted = server_accept(&req, &anything, None);
    assert_eq!(
        validated.is_ok(),
        accepted.is_ok(),
        "{validated:?} / {accepted:?}"
    );
    let up = match validated {
        Ok(up) => up,
        Err(e) => {
            let err = accepted.expect_err("same outcome");
            assert_eq!(e, err);
            let bytes = err.response();
            let Ok(Parse::Complete(resp, used)) = Response::parse(&bytes, &HeadLimits::default())
            else {
                panic!("unparsable rejection {:?}", String::from_utf8_lossy(&bytes));
            };
            assert_eq!(resp.status, err.status());
            let length: usize = resp
                .headers
                .get("content-length")
                .and_then(|v| v.parse().ok())
                .expect("a rejection has a Content-Length");
            assert_eq!(used + length, bytes.len());
            return;
        }
    };
    assert_eq!(up.path, req.target);
    let url = WsUrl::parse("ws://example.com/").expect("a valid URL");
    let offered: Vec<String> = up.protocols.clone();

    for (hook, extensions) in [
        (&anything as &dyn ServerHook, None),
        (&FirstOffered as &dyn ServerHook, Some("permessage-deflate")),
    ] {
        let accepted = server_accept(&req, hook, extensions).expect("validated request accepted");
        let Ok(Parse::Complete(resp, used)) =
            Response::parse(&accepted.response, &HeadLimits::default())
        else {
            panic!(
                "unparsable 101 {:?}",
                String::from_utf8_lossy(&accepted.response)
            );
        };
        assert_eq!(used, accepted.response.len());
        assert_eq!(resp.status, 101);
        let client = ClientHandshake::with_key(&url, &up.key, &offered, extensions);
        let done = client
            .validate_response(&resp)
            .unwrap_or_else(|e| panic!("client refuses the server's answer: {e}; {resp:?}"));
        assert_eq!(done.protocol, accepted.protocol);
        assert_eq!(done.extensions.as_deref(), extensions);
    }

    // An origin allow-list only lets its own origin through.
    let strict = ServerOptions {
        protocols: PROTOCOLS.iter().map(|p| p.to_string()).collect(),
        allowed_origins: Some(vec!["http://example.com".into()]),
    };
    if let Ok(accepted) = server_accept(&req, &strict, None) {
        let origin = up.origin.as_deref().expect("origin required");
        assert!(origin.eq_ignore_ascii_case("http://example.com"));
        if let Some(p) = &accepted.protocol {
            assert!(PROTOCOLS.contains(&p.as_str()) && up.protocols.contains(p));
        }
    }
}

fn check_response(data: &[u8], limits: &HeadLimits) {
    let Some(resp) = parse_checks(data, limits, Response::parse) else {
        return;
    };
    assert!((100..=999).contains(&resp.status));
    assert!(resp.headers.len() <= limits.max_headers);
    let url = WsUrl::parse("ws://example.com/").expect("a valid URL");
    let protocols: Vec<String> = PROTOCOLS.iter().map(|p| p.to_string()).collect();
    for offer in [None, Some("permessage-deflate")] {
        let client = ClientHandshake::with_key(&url, KEY, &protocols, offer);
        if let Ok(done) = client.validate_response(&resp) {
            assert_eq!(resp.status, 101);
            let accepts: Vec<&str> = resp.headers.get_all("sec-websocket-accept").collect();
            assert_eq!(accepts, [ACCEPT]);
            if let Some(p) = &done.protocol {
                assert!(PROTOCOLS.contains(&p.as_str()));
            }
            if offer.is_none() {
                assert_eq!(done.extensions, None);
            }
        }
    }
    if let Ok(Parse::Complete(_, used)) = Response::parse(data, limits) {
        check_rejection(&resp, &data[used..]);
    }
}

fn check_rejection(resp: &Response, rest: &[u8]) {
    let url = WsUrl::parse("ws://example.com/").expect("a valid URL");
    let client = ClientHandshake::with_key(&url, KEY, &[], None);
    let head = match client.validate_response(resp) {
        Err(HandshakeError::Rejected(head)) => head,
        other => {
            assert_eq!(resp.status, 101, "{other:?}");
            return;
        }
    };
    assert_eq!((head.status, &head.headers), (resp.status, &resp.headers));
    let read = |pieces: &mut dyn Iterator<Item = &[u8]>| {
        let mut reader = RejectionReader::new(head.clone());
        pieces.for_each(|piece| reader.push(piece));
        reader.eof();
        reader.finish()
    };
    let whole = read(&mut std::iter::once(rest));
    let bytewise = read(&mut rest.chunks(1));
    assert_eq!(whole, bytewise, "the same body however it arrives");
    assert!(whole.body.len() <= MAX_REJECTED_BODY);
    if resp.headers.get("transfer-encoding").is_none() {
        assert!(rest.starts_with(&whole.body));
    }
}

fn check_url(data: &[u8]) {
    let line = data.split(|&b| b == b'\n').next().unwrap_or_default();
    let Ok(text) = std::str::from_utf8(line) else {
        return;
    };
    let Ok(url) = WsUrl::parse(text) else {
        return;
    };
    assert_ne!(url.port, 0);
    assert!(url.resource.starts_with('/'));
    let scheme = if url.secure { "wss" } else { "ws" };
    let again = format!("{scheme}://{}{}", url.host_header(), url.resource);
    assert_eq!(
        WsUrl::parse(&again).as_ref(),
        Ok(&url),
        "{text:?} -> {again:?}"
    );
    let client = ClientHandshake::with_key(&url, KEY, &[], None);
    let request = client.request();
    if request.len() >= HeadLimits::default().max_head_bytes {
        return;
    }
    let Ok(Parse::Complete(req, used)) = Request::parse(&request, &HeadLimits::default()) else {
        panic!("unparsable request {:?}", String::from_utf8_lossy(&request));
    };
    assert_eq!(used, request.len());
    assert_eq!(req.target, url.resource);
    assert_eq!(req.headers.get("host"), Some(url.host_header().as_str()));
    let up = validate_request(&req).unwrap_or_else(|e| panic!("own request refused: {e}"));
    assert_eq!(accept_key(&up.key), ACCEPT);
}
