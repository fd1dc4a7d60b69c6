//! Generates the seed corpora in `fuzz/seeds/<target>/` from rtwire's own
//! writers and from the fuzz crate's frame builder, so the seeds are valid
//! (or invalid in one known way) by construction.
//!
//! `cargo run --release --bin gen_corpus` from `fuzz/`; an optional argument
//! names another output directory. Existing seeds of the three targets are
//! replaced. Deterministic: running it twice writes the same bytes.

use std::fs;
use std::path::{Path, PathBuf};

use rtwire::handshake::{server_accept, ClientHandshake, ServerOptions, WsUrl};
use rtwire::http::{self, HeadLimits, Parse, Request};
use rtwire_fuzz::encode::encode_session;
use rtwire_fuzz::http_checks::{KEY, PROTOCOLS};
use rtwire_fuzz::session::{
    self, Action, AppCall, FrameSpec, PeerBytes, PeerChunk, Session, OPCODES,
};
use rtwire_fuzz::wire::{build_frame, LenForm, BINARY, CLOSE, CONT, PING, PONG, TEXT};

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
                actions,
            };
            // Seeds must pass the checks themselves.
            session::run(&session);
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
                actions: vec![peer_in(PeerBytes::Raw(bytes), 5, server), Action::Eof],
            };
            session::run(&session);
            let role = if server { "server" } else { "client" };
            out.write(&format!("{name}-{role}"), &encode_session(&session));
        }
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
}
