//! Generates the seed corpora in `fuzz/seeds/<target>/` from rtwire's own
//! writers and from the fuzz crate's frame builder, so the seeds are valid
//! (or invalid in one known way) by construction.
//!
//! `cargo run --release --bin gen_corpus` from `fuzz/`; an optional argument
//! names another output directory. Existing seeds are replaced. Deterministic: running it twice writes the same bytes.

use std::fs;
use std::path::{Path, PathBuf};

use rtwire::handshake::{server_accept, ClientHandshake, Rejection, ServerOptions, WsUrl};
use rtwire::http::{self, HeadLimits, Parse, Request};
use rtwire_fuzz::deflate_checks::{self, Input, Piece};
use rtwire_fuzz::encode::{encode_deflate_input, encode_session};
use rtwire_fuzz::http_checks::{KEY, PROTOCOLS};
use rtwire_fuzz::session::{
    self, Action, AppCall, Compressed, DeflateSpec, FrameSpec, KeepaliveSpec, PeerBytes, PeerChunk,
    Session, OPCODES,
};
use rtwire_fuzz::wire::{build_frame, LenForm, BINARY, CLOSE, CONT, PING, PONG, TEXT};
use rtwire_fuzz::{push_checks, transport_checks};

/// A fixed masking key (any key will do; seeds must be reproducible).
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

struct Out {
    dir: PathBuf,
    count: usize,
    bytes: usize,
}

impl Out {
    fn new(root: &Path, target: &str) -> Out {
        let dir = root.join(target);
        if dir.exists() {
            fs::remove_dir_all(&dir).expect("remove old seeds");
        }
        fs::create_dir_all(&dir).expect("create seed dir");
        Out {
            dir,
            count: 0,
            bytes: 0,
        }
    }

    fn write(&mut self, name: &str, data: &[u8]) {
        let path = self.dir.join(name);
        assert!(!path.exists(), "duplicate seed name {name}");
        fs::write(&path, data).expect("write seed");
        self.count += 1;
        self.bytes += data.len();
    }

    fn report(&self) {
        println!(
            "{}: {} seeds, {} bytes",
            self.dir.display(),
            self.count,
            self.bytes
        );
    }
}

fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason.as_bytes());
    p
}

/// A frame as the peer of a server (masked) or of a client (unmasked) sends it.
fn peer_frame(to_server: bool, fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    build_frame(
        fin,
        0,
        opcode,
        to_server.then_some(MASK),
        payload,
        LenForm::Minimal,
    )
}

/// A session's worth of frames: messages, fragments, control frames, close.
fn peer_session(to_server: bool) -> Vec<u8> {
    let f = |fin, op, p: &[u8]| peer_frame(to_server, fin, op, p);
    let mut s = Vec::new();
    s.extend(f(true, TEXT, "Hello, κόσμε 𝄞".as_bytes()));
    s.extend(f(false, TEXT, b"frag"));
    s.extend(f(true, PING, b"ping in between"));
    s.extend(f(true, CONT, "mented €".as_bytes()));
    s.extend(f(true, BINARY, &[0xa5; 300]));
    s.extend(f(true, PONG, b""));
    s.extend(f(true, CLOSE, &close_payload(1000, "done")));
    s
}

fn frame_decode_seeds(root: &Path) {
    let mut out = Out::new(root, "frame_decode");
    for (to_server, side) in [(true, "masked"), (false, "unmasked")] {
        out.write(&format!("session-{side}"), &peer_session(to_server));
        for &op in &OPCODES {
            let control = op >= 8;
            let lens: &[usize] = if control {
                &[0, 5, 125]
            } else {
                &[0, 5, 125, 126, 300]
            };
            for &len in lens {
                let payload: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
                let bytes = peer_frame(to_server, true, op, &payload);
                out.write(&format!("op{op:x}-len{len}-{side}"), &bytes);
            }
        }
        // A 64-bit length: the header and the start of the payload.
        let mut big = build_frame(
            true,
            0,
            BINARY,
            to_server.then_some(MASK),
            &[0u8; 65536],
            LenForm::Minimal,
        );
        big.truncate(64);
        out.write(&format!("len64-{side}"), &big);
        // One known fault each.
        let faults: [(&str, Vec<u8>); 8] = [
            (
                "reserved-opcode",
                build_frame(
                    true,
                    0,
                    0x3,
                    to_server.then_some(MASK),
                    b"x",
                    LenForm::Minimal,
                ),
            ),
            (
                "rsv1",
                build_frame(
                    true,
                    4,
                    TEXT,
                    to_server.then_some(MASK),
                    b"x",
                    LenForm::Minimal,
                ),
            ),
            (
                "nonminimal16",
                build_frame(
                    true,
                    0,
                    BINARY,
                    to_server.then_some(MASK),
                    b"short",
                    LenForm::Ext16,
                ),
            ),
            (
                "nonminimal64",
                build_frame(
                    true,
                    0,
                    BINARY,
                    to_server.then_some(MASK),
                    b"short",
                    LenForm::Ext64,
                ),
            ),
            (
                "wrong-masking",
                build_frame(
                    true,
                    0,
                    TEXT,
                    (!to_server).then_some(MASK),
                    b"x",
                    LenForm::Minimal,
                ),
            ),
            (
                "bad-utf8",
                peer_frame(to_server, true, TEXT, &[b'a', 0xce, 0xba, 0xed, 0xa0, 0x80]),
            ),
            (
                "close-1005",
                peer_frame(to_server, true, CLOSE, &close_payload(1005, "")),
            ),
            (
                "close-one-byte",
                peer_frame(to_server, true, CLOSE, &[0x03]),
            ),
        ];
        for (name, bytes) in faults {
            out.write(&format!("{name}-{side}"), &bytes);
        }
    }
    out.report();
}

fn parse_request(bytes: &[u8]) -> Request {
    match Request::parse(bytes, &HeadLimits::default()) {
        Ok(Parse::Complete(req, _)) => req,
        other => panic!("generated request does not parse: {other:?}"),
    }
}

fn http_head_seeds(root: &Path) {
    let mut out = Out::new(root, "http_head");
    let protocols: Vec<String> = PROTOCOLS.iter().map(|p| p.to_string()).collect();
    let urls = [
        "ws://example.com/chat",
        "ws://localhost:9001/",
        "ws://[::1]:9001/echo?x=1",
        "ws://127.0.0.1/a/b?c=d&e",
        "wss://example.com/live",
        "wss://[::1]:8443/",
    ];
    for (i, url_text) in urls.iter().enumerate() {
        out.write(&format!("url-{i}"), format!("{url_text}\n").as_bytes());
        let url = WsUrl::parse(url_text).expect("valid URL");
        let offers: [(&[String], Option<&str>); 2] =
            [(&[], None), (&protocols, Some("permessage-deflate"))];
        for (j, (protos, ext)) in offers.into_iter().enumerate() {
            let client = ClientHandshake::with_key(&url, KEY, protos, ext);
            let request = client.request();
            out.write(&format!("request-{i}-{j}"), &request);
            let options = ServerOptions {
                protocols: vec!["superchat".into()],
                allowed_origins: None,
            };
            let accepted =
                server_accept(&parse_request(&request), &options, ext).expect("own request");
            out.write(&format!("response-101-{i}-{j}"), &accepted.response);
        }
    }
    // Requests with one thing wrong, and the server's rejections of them.
    let good: Vec<(&str, &str)> = vec![
        ("Host", "example.com"),
        ("Upgrade", "websocket"),
        ("Connection", "keep-alive, Upgrade"),
        ("Sec-WebSocket-Key", KEY),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Protocol", "chat, \"quoted, string\""),
        ("Origin", "http://example.com"),
    ];
    // (seed name, header to drop, header to add)
    type Header<'a> = (&'a str, &'a str);
    let variants: [(&str, &str, Option<Header>); 6] = [
        ("no-version", "Sec-WebSocket-Version", None),
        (
            "version-8",
            "Sec-WebSocket-Version",
            Some(("Sec-WebSocket-Version", "8")),
        ),
        (
            "bad-key",
            "Sec-WebSocket-Key",
            Some(("Sec-WebSocket-Key", "c2hvcnQ=")),
        ),
        ("no-upgrade", "Upgrade", None),
        (
            "evil-origin",
            "Origin",
            Some(("Origin", "https://evil.example")),
        ),
        ("two-hosts", "", Some(("Host", "other.example"))),
    ];
    let mut request = Vec::new();
    http::write_request(&mut request, "GET", "/chat?room=1", &good);
    out.write("request-full", &request);
    for (name, drop, add) in variants {
        let mut headers: Vec<(&str, &str)> =
            good.iter().copied().filter(|(n, _)| *n != drop).collect();
        headers.extend(add);
        let mut request = Vec::new();
        http::write_request(&mut request, "GET", "/chat", &headers);
        out.write(&format!("request-{name}"), &request);
        let strict = ServerOptions {
            protocols: vec![],
            allowed_origins: Some(vec!["http://example.com".into()]),
        };
        let err = server_accept(&parse_request(&request), &strict, None)
            .expect_err("a broken request is refused");
        out.write(
            &format!("response-{}-{name}", err.status()),
            &err.response(),
        );
    }
    let mut old = Vec::new();
    http::write_request(&mut old, "GET", "/", &good);
    let old = String::from_utf8(old)
        .expect("ASCII")
        .replacen("HTTP/1.1", "HTTP/1.0", 1);
    out.write("request-http10", old.as_bytes());
    let mut post = Vec::new();
    http::write_request(&mut post, "POST", "/", &good);
    out.write("request-post", &post);
    // Refusals with bodies, for the client's RejectionReader.
    let refusal = Rejection::new(401)
        .header("WWW-Authenticate", "Bearer")
        .body("token required\n")
        .to_bytes()
        .expect("a valid rejection");
    out.write("response-401-app", &refusal);
    out.write(
        "response-403-chunked",
        b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n\
          4;x=y\r\nnot \r\n7\r\nallowed\r\n0\r\nX-Trailer: 1\r\n\r\n",
    );
    out.report();
}

fn frame(fin: bool, opcode: u8, payload: &[u8]) -> PeerBytes<'_> {
    let opcode = OPCODES
        .iter()
        .position(|&o| o == opcode)
        .expect("a defined opcode") as u8;
    PeerBytes::Frame(FrameSpec {
        fin,
        rsv: 0,
        opcode,
        mask: 0,
        key: MASK,
        form: 0,
        payload,
    })
}

fn peer(bytes: PeerBytes<'_>) -> Action<'_> {
    Action::Peer(PeerChunk {
        bytes,
        piece: 0,
        via_buffer: false,
    })
}

fn peer_in(bytes: PeerBytes<'_>, piece: u8, via_buffer: bool) -> Action<'_> {
    Action::Peer(PeerChunk {
        bytes,
        piece,
        via_buffer,
    })
}

/// `AppCall::Close` picks codes below 0x8000 from a table: find the entry.
fn close_code(code: u16) -> u16 {
    session::CLOSE_CODES
        .iter()
        .position(|&c| c == code)
        .map_or(code, |i| i as u16)
}

fn connection_seeds(root: &Path) {
    let mut out = Out::new(root, "connection");
    let close_1000 = close_payload(1000, "done");
    let close_1005 = close_payload(1005, "");
    let bad_utf8 = [b'a', 0xce, 0xba, 0xed, 0xa0, 0x80];
    let big = [0x5a; 200];
    let scripts: Vec<(&str, u8, u8, Vec<Action>)> = vec![
        (
            "echo",
            255,
            255,
            vec![
                peer(frame(true, TEXT, "Hello, κόσμε".as_bytes())),
                Action::App(AppCall::Text("Hello, κόσμε".as_bytes())),
                peer(frame(true, PING, b"are you there")),
                peer(frame(true, CLOSE, &close_1000)),
            ],
        ),
        (
            "fragments",
            64,
            32,
            vec![
                peer(frame(false, TEXT, b"frag")),
                Action::App(AppCall::ReleaseIdleBuffers),
                peer(frame(true, PING, b"between")),
                peer(frame(false, CONT, "men€".as_bytes())),
                peer_in(frame(true, CONT, b"ted"), 1, false),
                peer_in(frame(true, BINARY, &big), 7, true),
                Action::App(AppCall::Binary(&big)),
                Action::App(AppCall::Close {
                    code: close_code(1000),
                    reason: b"bye",
                    via_send: false,
                }),
                peer(frame(true, PONG, b"late")),
                peer(frame(true, CLOSE, &close_1000)),
            ],
        ),
        (
            "app-first",
            16,
            16,
            vec![
                Action::App(AppCall::Ping(b"p")),
                Action::App(AppCall::Pong(b"unsolicited")),
                Action::App(AppCall::Large {
                    text: true,
                    size: 2,
                    fill: 3,
                }),
                Action::App(AppCall::Large {
                    text: false,
                    size: 0,
                    fill: 0xee,
                }),
                peer(frame(true, PONG, b"p")),
                Action::App(AppCall::CloseWithoutCode { via_send: true }),
                Action::App(AppCall::Text(b"too late")),
                peer(frame(true, CLOSE, b"")),
            ],
        ),
        (
            "bad-utf8-bytewise",
            255,
            255,
            vec![peer_in(frame(true, TEXT, &bad_utf8), 1, true)],
        ),
        (
            "message-too-big",
            8,
            2,
            vec![
                peer(frame(false, BINARY, &[1; 20])),
                peer(frame(true, CONT, &[2; 20])),
            ],
        ),
        (
            "frame-too-big",
            4,
            255,
            vec![peer(frame(true, TEXT, &[b'x'; 17]))],
        ),
        (
            "bad-close-code",
            255,
            255,
            vec![peer(frame(true, CLOSE, &close_1005))],
        ),
        (
            "continuation-first",
            255,
            255,
            vec![peer(frame(true, CONT, b"orphan"))],
        ),
        (
            "eof-mid-frame",
            255,
            255,
            vec![
                peer(PeerBytes::Raw(&[0x81, 0x85, 0x37, 0xfa])),
                Action::Eof,
                Action::App(AppCall::Close {
                    code: close_code(1001),
                    reason: b"",
                    via_send: true,
                }),
            ],
        ),
        (
            "app-close-codes",
            255,
            255,
            vec![
                Action::App(AppCall::Close {
                    code: close_code(1005),
                    reason: b"",
                    via_send: false,
                }),
                Action::App(AppCall::Close {
                    code: close_code(4999),
                    reason: &[b'r'; 124],
                    via_send: false,
                }),
                Action::App(AppCall::Close {
                    code: close_code(3000),
                    reason: "κόσμε".as_bytes(),
                    via_send: true,
                }),
                peer(frame(true, PING, b"after close")),
                Action::Eof,
            ],
        ),
    ];
    for (name, max_frame, max_message, actions) in scripts {
        for server in [true, false] {
            let actions = actions.clone();
            let session = Session {
                server,
                max_frame,
                max_message,
                deflate: None,
                // Half the seeds take output in slices and partial writes.
                writes: if server { 0 } else { 4 * 5 + 1 },
                high_water: None,
                write_buffer: None,
                keepalive: None,
                actions,
            };
            // Seeds must pass the checks themselves.
            session::check(&session);
            let role = if server { "server" } else { "client" };
            out.write(&format!("{name}-{role}"), &encode_session(&session));
        }
    }
    // A whole valid session as raw bytes, and one with a reserved bit set.
    for server in [true, false] {
        let stream = peer_session(server);
        let mut rsv = peer_frame(server, true, TEXT, b"compressed?");
        rsv[0] |= 0x40;
        for (name, bytes) in [("raw-session", &stream), ("raw-rsv1", &rsv)] {
            let session = Session {
                server,
                max_frame: 255,
                max_message: 255,
                deflate: None,
                writes: 0,
                high_water: None,
                write_buffer: None,
                keepalive: None,
                actions: vec![peer_in(PeerBytes::Raw(bytes), 5, server), Action::Eof],
            };
            session::check(&session);
            let role = if server { "server" } else { "client" };
            out.write(&format!("{name}-{role}"), &encode_session(&session));
        }
    }
    deflate_sessions(&mut out);
    back_pressure_sessions(&mut out);
    out.report();
}

/// A message the peer compresses.
fn compressed(text: bool, data: &[u8], fragment: u8) -> PeerBytes<'_> {
    PeerBytes::Compressed(Compressed {
        text,
        raw: true,
        data,
        fragment,
    })
}

/// A frame with RSV1 set, built from fields (the payload is not compressed).
fn rsv1_frame(fin: bool, opcode: u8, payload: &[u8]) -> PeerBytes<'_> {
    let PeerBytes::Frame(spec) = frame(fin, opcode, payload) else {
        unreachable!()
    };
    PeerBytes::Frame(FrameSpec { rsv: 0xF4, ..spec })
}

/// Connection sessions with permessage-deflate agreed.
fn deflate_sessions(out: &mut Out) {
    let json = br#"{"type":"message","channel":"lobby","data":"hello, hello, hello"}"#.repeat(8);
    let zeros = [0u8; 3000];
    let bad_utf8 = [b'a', 0xce, 0xba, 0xed, 0xa0, 0x80];
    let close_1000 = close_payload(1000, "done");
    let spec = |server_bits: u8, client_bits: u8, no_takeover: bool| DeflateSpec {
        server_bits: server_bits - 8,
        client_bits: client_bits - 8,
        server_no_context_takeover: no_takeover,
        client_no_context_takeover: no_takeover,
    };
    let scripts: Vec<(&str, u8, DeflateSpec, Vec<Action>)> = vec![
        (
            "deflate-echo",
            255,
            spec(15, 15, false),
            vec![
                peer(compressed(true, &json, 0)),
                Action::App(AppCall::Text(&json)),
                peer_in(compressed(true, &json, 7), 3, true),
                Action::App(AppCall::Text(&json)),
                peer(compressed(false, b"", 0)),
                Action::App(AppCall::Large {
                    text: false,
                    size: 10,
                    fill: 0x42,
                }),
                Action::App(AppCall::Binary(b"below the threshold")),
                Action::App(AppCall::ReleaseIdleBuffers),
                peer(frame(true, CLOSE, &close_1000)),
            ],
        ),
        (
            "deflate-small-windows",
            255,
            spec(9, 8, true),
            vec![
                peer(compressed(false, &json, 16)),
                Action::App(AppCall::Text(&json)),
                peer(compressed(true, &json, 0)),
                Action::App(AppCall::Text(&json)),
                Action::Eof,
            ],
        ),
        (
            "deflate-8-bit-server",
            255,
            spec(8, 12, false),
            vec![
                peer(compressed(true, &json, 0)),
                Action::App(AppCall::Text(&json)),
            ],
        ),
        (
            "deflate-bomb",
            16,
            spec(15, 15, false),
            vec![peer(compressed(false, &zeros, 0))],
        ),
        (
            "deflate-bad-utf8",
            255,
            spec(15, 15, false),
            vec![peer(compressed(true, &bad_utf8, 2))],
        ),
        (
            "deflate-not-deflate",
            255,
            spec(15, 15, false),
            vec![peer(rsv1_frame(true, BINARY, b"\xff\xff not deflate"))],
        ),
        (
            "deflate-rsv1-continuation",
            255,
            spec(15, 15, false),
            vec![
                peer(frame(false, TEXT, b"plain ")),
                peer(rsv1_frame(true, CONT, b"then compressed?")),
            ],
        ),
        (
            "deflate-rsv1-ping",
            255,
            spec(15, 15, false),
            vec![peer(rsv1_frame(true, PING, b""))],
        ),
    ];
    for (name, max_message, deflate, actions) in scripts {
        for server in [true, false] {
            let session = Session {
                server,
                max_frame: 255,
                max_message,
                deflate: Some(deflate),
                writes: if server { 4 * 63 + 3 } else { 0 },
                high_water: None,
                write_buffer: None,
                keepalive: None,
                actions: actions.clone(),
            };
            session::check(&session);
            let role = if server { "server" } else { "client" };
            out.write(&format!("{name}-{role}"), &encode_session(&session));
        }
    }
    // Without the extension, a compressed message fails the connection.
    for server in [true, false] {
        let session = Session {
            server,
            max_frame: 255,
            max_message: 255,
            deflate: None,
            writes: 0,
            high_water: None,
            write_buffer: None,
            keepalive: None,
            actions: vec![peer(compressed(true, &json, 0))],
        };
        session::check(&session);
        let role = if server { "server" } else { "client" };
        out.write(
            &format!("no-deflate-compressed-{role}"),
            &encode_session(&session),
        );
    }
}

/// `count` pings of `len` bytes each, as the peer of a server or a client sends them.
fn ping_flood(to_server: bool, count: usize, len: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..len).map(|i| b'0' + (i % 10) as u8).collect();
    (0..count)
        .flat_map(|_| peer_frame(to_server, true, PING, &payload))
        .collect()
}

/// Sessions where the peer stops reading, so that the output passes the
/// high-water mark and the write-buffer limit, and then reads again; and
/// sessions with keepalive.
fn back_pressure_sessions(out: &mut Out) {
    let json = br#"{"type":"message","channel":"lobby","data":"hello, hello, hello"}"#.repeat(4);
    let close_1000 = close_payload(1000, "done");
    for server in [true, false] {
        let role = if server { "server" } else { "client" };
        let flood = ping_flood(server, 60, 20);
        let small_flood = ping_flood(server, 12, 3);
        let mut flood_then_close = ping_flood(server, 20, 0);
        flood_then_close.extend(peer_frame(server, true, TEXT, b"after the pings"));
        flood_then_close.extend(peer_frame(server, true, CLOSE, &close_payload(1000, "bye")));
        let mut ping_close = peer_frame(server, true, PING, b"last words");
        ping_close.extend(peer_frame(
            server,
            true,
            CLOSE,
            &close_payload(1000, "done"),
        ));
        // (name, high water, write buffer, keepalive, deflate, actions)
        type Script<'a> = (
            &'a str,
            Option<u16>,
            Option<u16>,
            Option<KeepaliveSpec>,
            Option<DeflateSpec>,
            Vec<Action<'a>>,
        );
        let scripts: Vec<Script> = vec![
            (
                // A flood of pings the peer does not read: processing stops
                // above 100 bytes; what follows is held, and sends fail
                // past 200 bytes; then the peer reads a little, then all.
                "bp-ping-flood",
                Some(100),
                Some(199),
                None,
                None,
                vec![
                    Action::StopReading,
                    peer_in(PeerBytes::Raw(&flood), 0, false),
                    peer(frame(true, TEXT, b"held")),
                    Action::App(AppCall::Binary(b"queued while held")),
                    Action::App(AppCall::Large {
                        text: false,
                        size: 1,
                        fill: 7,
                    }),
                    Action::App(AppCall::Text(b"refused: the buffer is full")),
                    Action::App(AppCall::Ping(b"refused too")),
                    Action::Read(300),
                    Action::Read(4000),
                    Action::App(AppCall::ReleaseIdleBuffers),
                    Action::Read(0),
                    peer(frame(true, CLOSE, &close_1000)),
                ],
            ),
            (
                // The same without application calls: the events and the
                // frames must be exactly those of a peer that always reads.
                "bp-flood-no-app",
                Some(0),
                None,
                None,
                None,
                vec![
                    Action::StopReading,
                    peer_in(PeerBytes::Raw(&flood_then_close), 3, true),
                    Action::Read(7),
                    Action::Read(20),
                    Action::Read(0),
                ],
            ),
            (
                // Pings held when the transport ends: they and the close
                // after them are read, not lost.
                "bp-eof-held",
                Some(0),
                None,
                None,
                None,
                vec![
                    Action::StopReading,
                    peer(PeerBytes::Raw(&ping_close)),
                    Action::Eof,
                    Action::Read(0),
                ],
            ),
            (
                // A 1-byte write buffer: one send fits, the next is refused
                // (before a too-long ping is), a close is never refused.
                "bp-write-buffer-1",
                None,
                Some(0),
                None,
                None,
                vec![
                    Action::StopReading,
                    Action::App(AppCall::Text(b"a")),
                    Action::App(AppCall::Text(b"b")),
                    Action::App(AppCall::Pong(b"p")),
                    Action::App(AppCall::Ping(&[b'x'; 126])),
                    peer_in(PeerBytes::Raw(&small_flood), 5, false),
                    Action::Read(1),
                    Action::App(AppCall::Text(b"c")),
                    Action::App(AppCall::Close {
                        code: close_code(1000),
                        reason: b"full or not",
                        via_send: true,
                    }),
                    Action::Read(0),
                    peer(frame(true, CLOSE, b"")),
                ],
            ),
            (
                // A write buffer of exactly the first message: the second
                // send finds max_write_buffer queued and is refused; after
                // the peer reads one byte, one less is queued and it fits.
                "bp-write-buffer-exact",
                Some(4096),
                Some(if server { 4 } else { 8 }), // "abc" with its header
                None,
                None,
                vec![
                    Action::StopReading,
                    Action::App(AppCall::Text(b"abc")),
                    Action::App(AppCall::Text(b"refused")),
                    Action::Read(1),
                    Action::App(AppCall::Binary(b"fits")),
                    Action::App(AppCall::Pong(b"refused")),
                    Action::Read(0),
                ],
            ),
            (
                // Compressed messages held, and sent while held: the
                // compressors on both sides stay in step.
                "bp-deflate",
                Some(4),
                Some(600),
                None,
                Some(DeflateSpec {
                    server_bits: 7,
                    client_bits: 7,
                    server_no_context_takeover: false,
                    client_no_context_takeover: false,
                }),
                vec![
                    Action::StopReading,
                    peer(frame(true, PING, b"ping")),
                    peer(compressed(true, &json, 0)),
                    Action::App(AppCall::Text(&json)),
                    peer_in(compressed(true, &json, 9), 4, true),
                    Action::Read(5),
                    Action::Read(0),
                    Action::App(AppCall::Text(&json)),
                ],
            ),
            (
                // Keepalive: armed, a ping after 20 ms of silence, the
                // pong resets it, another ping, then the timeout fails the
                // connection with 1001.
                "keepalive",
                None,
                None,
                Some(KeepaliveSpec {
                    interval: 19,
                    timeout: 9,
                }),
                None,
                vec![
                    Action::Tick(0),
                    Action::Tick(19),
                    Action::Tick(1),
                    peer(frame(true, PONG, b"")),
                    Action::Tick(10),
                    Action::Tick(20),
                    Action::Tick(9),
                    Action::Tick(1),
                    peer(frame(true, TEXT, b"too late")),
                ],
            ),
            (
                // Keepalive while the peer does not read: pings are queued
                // anyway; held input counts as a sign of life.
                "keepalive-not-reading",
                Some(8),
                None,
                Some(KeepaliveSpec {
                    interval: 4,
                    timeout: 4,
                }),
                None,
                vec![
                    Action::Tick(0),
                    Action::StopReading,
                    peer(PeerBytes::Raw(&small_flood)),
                    Action::Tick(5),
                    Action::Tick(5),
                    Action::Read(0),
                    Action::App(AppCall::CloseWithoutCode { via_send: false }),
                    Action::Tick(50),
                ],
            ),
        ];
        for (name, high_water, write_buffer, keepalive, deflate, actions) in scripts {
            let session = Session {
                server,
                max_frame: 255,
                max_message: 255,
                deflate,
                writes: if server { 0 } else { 4 * 2 + 1 },
                high_water,
                write_buffer,
                keepalive,
                actions,
            };
            session::check(&session);
            out.write(&format!("{name}-{role}"), &encode_session(&session));
        }
    }
}

/// Inputs of the `deflate` target.
fn deflate_seeds(root: &Path) {
    let mut out = Out::new(root, "deflate");
    let json = br#"{"id":"1a2b3c4d-7","data":"hello, hello"}"#.repeat(4);
    let valid = |text: bool, data: &[u8], fragment: u8| Piece::Valid {
        text,
        data: data.to_vec(),
        fragment,
    };
    let inputs: Vec<(&str, Input)> = vec![
        (
            "messages",
            Input {
                server: true,
                bits: 6, // 15
                no_takeover: false,
                limit: 4096,
                pieces: vec![
                    valid(true, &json, 0),
                    valid(true, &json, 9),
                    valid(false, b"", 0),
                    valid(false, &[7; 300], 1),
                ],
            },
        ),
        (
            "no-takeover-9-bits",
            Input {
                server: false,
                bits: 0,
                no_takeover: true,
                limit: 4096,
                pieces: vec![valid(true, &json, 0), valid(true, &json, 0)],
            },
        ),
        (
            "bomb",
            Input {
                server: true,
                bits: 6,
                no_takeover: false,
                limit: 1000,
                pieces: vec![Piece::Bomb { kib: 64 }],
            },
        ),
        (
            "garbage",
            Input {
                server: false,
                bits: 3,
                no_takeover: false,
                limit: 4096,
                pieces: vec![
                    valid(true, b"first", 0),
                    Piece::Garbage {
                        fin: true,
                        opcode: 1,
                        payload: b"\x02\xff not deflate".to_vec(),
                    },
                ],
            },
        ),
        (
            "bad-utf8",
            Input {
                server: true,
                bits: 6,
                no_takeover: true,
                limit: 4096,
                pieces: vec![valid(true, &[b'a', 0xff, b'b'], 0)],
            },
        ),
    ];
    for (name, input) in inputs {
        let bytes = encode_deflate_input(&input);
        deflate_checks::check(input);
        out.write(name, &bytes);
    }
    out.report();
}

/// Inputs of the `transport_params` target: what the HTTP transports read.
fn transport_params_seeds(root: &Path) {
    let mut out = Out::new(root, "transport_params");
    let inputs: [(&str, &str); 20] = [
        ("id", "1a2b3c4d-7"),
        ("id-zero", "00000000-0"),
        ("id-max", "ffffffff-18446744073709551615"),
        ("channel", "lobby"),
        ("channel-private", "user:alice"),
        ("channel-all-chars", "Az09-_.:"),
        ("query-since", "since=1a2b3c4d-7&timeout=25"),
        (
            "query-encoded",
            "last-event-id=1a2b3c4d%2D7&user=al%C3%AFce&token=t+k",
        ),
        ("query-empty-and-repeated", "since=&since=1a2b3c4d-1&&user"),
        (
            "ws-join",
            r#"{"op":"join","channel":"lobby","since":"1a2b3c4d-7"}"#,
        ),
        (
            "ws-publish",
            r#"{"op":"publish","channel":"room","data":"hi \"there\"\n\u00e9\ud83d\ude00","except_self":true}"#,
        ),
        (
            "ws-send-b64",
            r#"{"op":"send","user":"bob","data_b64":"AAEC/w=="}"#,
        ),
        ("ws-leave", r#"{ "op" : "leave" , "channel" : "room" }"#),
        (
            "ws-nested",
            r#"{"op":"publish","data":{"a":[1,2.5e3,true,null]}}"#,
        ),
        (
            "ws-unknown-fields",
            r#"{"v":2,"op":"join","meta":{"a":[[[1e999]]],"b":"\u0000"},"channel":"r","since":null}"#,
        ),
        (
            "ws-duplicate",
            r#"{"op":"publish","channel":"a","channel":"b","data":"x"}"#,
        ),
        (
            "ws-wrong-type",
            r#"{"op":"publish","channel":"a","data":"x","except_self":"yes"}"#,
        ),
        ("ws-unknown-op", r#"{"op":"dance","channel":"a"}"#),
        (
            "ws-lone-surrogate",
            r#"{"op":"send","user":"u","data":"\ud800"}"#,
        ),
        ("ws-array", r#"["publish","room","hi"]"#),
    ];
    for (name, text) in inputs {
        transport_checks::check(text.as_bytes());
        out.write(name, text.as_bytes());
    }
    out.report();
}

/// Inputs of the `push_form` target: WebSub subscription bodies, valid and
/// broken in one way each.
fn push_form_seeds(root: &Path) {
    let mut out = Out::new(root, "push_form");
    let inputs: [(&str, &[u8]); 12] = [
        (
            "subscribe",
            b"hub.mode=subscribe&hub.topic=http%3A%2F%2F127.0.0.1%3A8080%2Fchannels%2Flobby&hub.callback=http%3A%2F%2Fsub.example%2Fcb%3Fid%3D7%26k%3Da%2Bb",
        ),
        (
            "subscribe-secret-lease",
            b"hub.callback=https%3A%2F%2Fsub.example%2F&hub.mode=subscribe&hub.topic=https%3A%2F%2Fhub.example%2Fchannels%2Fnews&hub.lease_seconds=86400&hub.secret=s%C3%A9cret+with+spaces",
        ),
        (
            "unsubscribe-extra",
            b"hub.mode=unsubscribe&hub.topic=t&hub.callback=c&foo=bar&x.y.z=&&",
        ),
        ("plus-and-escapes", b"a=b+c%2Bd%20e&%61%3d=%3D&k=%e2%82%ac"),
        ("bare-names", b"flag&=empty-name&c==&"),
        ("empty", b""),
        ("duplicate", b"hub.topic=a&hub.mode=subscribe&hub.topic=b"),
        ("duplicate-encoded", b"a+b=1&a%20b=2"),
        ("bad-escape", b"hub.mode=sub%zzscribe"),
        ("truncated-escape", b"hub.secret=abc%4"),
        ("not-utf8", b"hub.secret=%ff%fe&hub.mode=subscribe"),
        ("many-pairs", b"a=1&b=2&c=3&d=4&e=5&f=6&g=7&h=8"),
    ];
    for (name, body) in inputs {
        push_checks::check_form(body);
        out.write(name, body);
    }
    out.report();
}

/// Inputs of the `push_url` target: callback URLs accepted and refused,
/// and hosts in every address class.
fn push_url_seeds(root: &Path) {
    let mut out = Out::new(root, "push_url");
    let inputs: [(&str, &str); 21] = [
        ("http", "http://sub.example/cb"),
        (
            "https-port-query",
            "HTTPS://Sub.Example.:8443/cb/x?token=a%2Fb&x&=",
        ),
        ("fragment", "http://sub.example/cb#top"),
        ("query-only", "http://sub.example?hub.x=1"),
        ("kept-query", "https://sub.example/a/../b;p?q=%2F&&="),
        ("ipv4", "http://203.0.113.9:8080/hook"),
        ("ipv4-loopback", "http://127.0.0.1:9/"),
        ("ipv6", "http://[2001:db8::1]:80/"),
        (
            "ipv6-mapped",
            "http://[::ffff:169.254.169.254]/latest/meta-data",
        ),
        ("ipv6-nat64", "http://[64:ff9b::a00:1]/"),
        ("ipv6-6to4", "http://[2002:c0a8:101::1]/"),
        ("ipv6-zone", "http://[fe80::1%25eth0]/"),
        ("userinfo", "http://user:pw@sub.example/"),
        ("userinfo-lookalike", "http://sub.example@evil.example/"),
        ("numeric-host", "http://0x7f.1/"),
        ("decimal-host", "http://2130706433/"),
        ("bad-port", "http://sub.example:65536/"),
        ("empty-port", "http://sub.example:/"),
        ("scheme", "ftp://sub.example/"),
        ("space", "http://sub.example/a b"),
        ("crlf", "http://sub.example/\r\nHost: evil"),
    ];
    for (name, text) in inputs {
        push_checks::check_url(text.as_bytes());
        out.write(name, text.as_bytes());
    }
    out.report();
}

/// Inputs of the `push_webhook` target: registrations accepted and
/// refused, and WebSub requests for this hub's topics and others.
fn push_webhook_seeds(root: &Path) {
    let mut out = Out::new(root, "push_webhook");
    let inputs: [(&str, &str); 17] = [
        ("minimal", r#"{"channel":"orders","url":"https://example.com/hook"}"#),
        (
            "with-secret",
            r#"{"channel":"a:b","url":"http://203.0.113.9:8080/h?x=1","secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}"#,
        ),
        ("null-secret", r#"{"channel":"c","url":"http://x.example/","secret":null}"#),
        ("short-secret", r#"{"channel":"c","url":"http://x.example/","secret":"whsec_c2hvcnQ="}"#),
        ("no-prefix", r#"{"channel":"c","url":"http://x.example/","secret":"MfKQ9r8GKYqrTwjU"}"#),
        ("unknown-field", r#"{"channel":"c","url":"http://x.example/","events":["*"]}"#),
        ("duplicate-field", r#"{"channel":"c","channel":"d","url":"http://x.example/"}"#),
        ("bad-channel", r#"{"channel":"a b","url":"http://x.example/"}"#),
        ("ftp", r#"{"channel":"c","url":"ftp://x.example/"}"#),
        ("wrong-type", r#"{"channel":7,"url":"http://x.example/"}"#),
        ("escaped", r#"{"channel":"\u0063","url":"http:\/\/x.example\/"}"#),
        (
            "websub-subscribe",
            "hub.mode=subscribe&hub.topic=http%3A%2F%2Fhub.example%3A8080%2Fchannels%2Fnews&hub.callback=http%3A%2F%2Fsub.example%2Fcb&hub.secret=s&hub.lease_seconds=60",
        ),
        (
            "websub-other-topic",
            "hub.mode=unsubscribe&hub.topic=http%3A%2F%2Fhub.example%3A8080%2Fother&hub.callback=http%3A%2F%2Fsub.example%2Fcb",
        ),
        ("array", "[1,2,3]"),
        ("fields-as-array", r#"["c","http://x.example/"]"#),
        ("empty-array", "[  ]"),
        ("blank", " \n"),
    ];
    for (name, text) in inputs {
        push_checks::check_webhook(text.as_bytes());
        out.write(name, text.as_bytes());
    }
    out.report();
}

fn main() {
    let root = std::env::args_os().nth(1).map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds"),
        PathBuf::from,
    );
    frame_decode_seeds(&root);
    http_head_seeds(&root);
    connection_seeds(&root);
    deflate_seeds(&root);
    transport_params_seeds(&root);
    push_form_seeds(&root);
    push_url_seeds(&root);
    push_webhook_seeds(&root);
}
