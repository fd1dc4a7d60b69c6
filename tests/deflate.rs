//! permessage-deflate (RFC 7692): negotiation, round trips, fragmentation,
//! limits and RSV1 rules.
mod common;
use common::*;
use flate2::{Compress, Compression, FlushCompress};
use rtwire::proto::deflate::{Deflate, DeflateConfig, NegotiationError};
use rtwire::proto::frame::OpCode;
use rtwire::proto::{Config, Connection, Event, Message, ProtocolError, Role};

fn agree(server: &DeflateConfig, client: &DeflateConfig) -> (Deflate, Deflate) {
    let (server_side, answer) = server
        .accept_offers([client.offer().as_str()])
        .expect("offer accepted");
    let client_side = client.check_response(&answer).expect("answer valid");
    assert_eq!(
        server_side.params(),
        client_side.params(),
        "both ends agree"
    );
    (server_side, client_side)
}

fn pair(server: &DeflateConfig, client: &DeflateConfig) -> (Connection, Connection) {
    let (s, c) = agree(server, client);
    (
        Connection::new(Role::Server, Config::default()).with_deflate(s),
        Connection::new(Role::Client, Config::default()).with_deflate(c),
    )
}

/// Sends `message` from `from` to `to`; returns the frames on the wire and what arrived.
fn transfer(
    from: &mut Connection,
    to: &mut Connection,
    message: Message,
) -> (Vec<Sent>, Vec<Event>) {
    from.send(message).unwrap();
    let wire = output(from);
    to.receive_data(&wire);
    (decode_all(&wire), events(to))
}

fn raw_deflate(data: &[u8], bits: u8) -> Vec<u8> {
    let mut c = Compress::new_with_window_bits(Compression::default(), false, bits);
    let mut out = Vec::with_capacity(data.len() + 1024);
    c.compress_vec(data, &mut out, FlushCompress::Sync).unwrap();
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

/// Hex digits from a linear congruential generator: little repetition
/// inside a message, so a repeat only shrinks through context takeover.
fn noise(n: usize) -> String {
    let mut x: u32 = 12345;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            char::from_digit((x >> 16) % 16, 16).unwrap_or('0')
        })
        .collect()
}

fn json_like(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "{{\"id\":{i},\"user\":\"user{}\",\"text\":\"hello world\"}},",
                i % 7
            )
        })
        .collect()
}

// ----- negotiation -----

#[test]
fn server_accepts_each_parameter() {
    let config = DeflateConfig::default();
    let cases = [
        (
            "permessage-deflate",
            "permessage-deflate",
            (false, false, 15, 15),
        ),
        (
            "permessage-deflate; server_no_context_takeover",
            "permessage-deflate; server_no_context_takeover",
            (true, false, 15, 15),
        ),
        (
            "permessage-deflate; client_no_context_takeover",
            "permessage-deflate; client_no_context_takeover",
            (false, true, 15, 15),
        ),
        (
            "permessage-deflate; server_max_window_bits=10",
            "permessage-deflate; server_max_window_bits=10",
            (false, false, 10, 15),
        ),
        (
            "permessage-deflate; server_max_window_bits=\"12\"",
            "permessage-deflate; server_max_window_bits=12",
            (false, false, 12, 15),
        ),
        (
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate",
            (false, false, 15, 15),
        ),
        (
            "permessage-deflate; client_max_window_bits=11",
            "permessage-deflate; client_max_window_bits=11",
            (false, false, 15, 11),
        ),
    ];
    for (offer, answer, (snct, cnct, sbits, cbits)) in cases {
        let (agreed, got) = config.accept_offers([offer]).expect(offer);
        assert_eq!(got, answer, "{offer}");
        let p = agreed.params();
        assert_eq!(
            (p.server_no_context_takeover, p.client_no_context_takeover),
            (snct, cnct),
            "{offer}"
        );
        assert_eq!(
            (p.server_max_window_bits, p.client_max_window_bits),
            (sbits, cbits),
            "{offer}"
        );
    }
}

#[test]
fn server_limits_the_client_window_only_when_offered() {
    let config = DeflateConfig {
        client_max_window_bits: 10,
        ..DeflateConfig::default()
    };
    let (_, answer) = config.accept_offers(["permessage-deflate"]).unwrap();
    assert_eq!(
        answer, "permessage-deflate",
        "§7.1.2.2: MUST NOT include it unoffered"
    );
    let (agreed, answer) = config
        .accept_offers(["permessage-deflate; client_max_window_bits"])
        .unwrap();
    assert_eq!(answer, "permessage-deflate; client_max_window_bits=10");
    assert_eq!(agreed.params().client_max_window_bits, 10);
}

#[test]
fn bad_and_duplicate_offers_are_declined_and_the_next_one_taken() {
    let config = DeflateConfig::default();
    for bad in [
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=010",
        "permessage-deflate; client_max_window_bits=abc",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_max_window_bits; client_max_window_bits=9",
        "permessage-deflate; mystery",
        "x-webkit-deflate-frame",
    ] {
        assert!(config.accept_offers([bad]).is_none(), "{bad} accepted");
        let list = format!("{bad}, permessage-deflate; client_no_context_takeover");
        let (_, answer) = config.accept_offers([list.as_str()]).expect(bad);
        assert_eq!(
            answer, "permessage-deflate; client_no_context_takeover",
            "{bad}"
        );
    }
    // Offers may also come in separate header lines.
    let (_, answer) = config
        .accept_offers(["foo", "permessage-deflate; server_max_window_bits=9"])
        .unwrap();
    assert_eq!(answer, "permessage-deflate; server_max_window_bits=9");
}

#[test]
fn client_rejects_answers_that_break_rfc_7692() {
    let config = DeflateConfig::default();
    let cases = [
        (
            "x-other",
            NegotiationError::UnknownExtension("x-other".into()),
        ),
        (
            "permessage-deflate, permessage-deflate",
            NegotiationError::NotOneExtension,
        ),
        (
            "permessage-deflate; foo",
            NegotiationError::UnknownParameter("foo".into()),
        ),
        (
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            NegotiationError::DuplicateParameter("server_no_context_takeover".into()),
        ),
        (
            "permessage-deflate; client_max_window_bits",
            NegotiationError::MissingValue("client_max_window_bits"),
        ),
        (
            "permessage-deflate; server_max_window_bits=16",
            NegotiationError::InvalidValue("server_max_window_bits"),
        ),
        ("permessage-deflate; =", NegotiationError::Syntax),
    ];
    for (answer, error) in cases {
        assert_eq!(config.check_response(answer), Err(error), "{answer}");
    }
    let lean = DeflateConfig::lean();
    assert_eq!(
        lean.check_response(
            "permessage-deflate; client_no_context_takeover; server_max_window_bits=9"
        ),
        Err(NegotiationError::Ignored("server_no_context_takeover"))
    );
    assert_eq!(
        lean.check_response(
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=12"
        ),
        Err(NegotiationError::BeyondOffer("server_max_window_bits"))
    );
}

// ----- round trips -----

#[test]
fn round_trips_at_every_window_size_with_and_without_context_takeover() {
    let text = noise(8000);
    for bits in 9..=15u8 {
        for no_takeover in [false, true] {
            let config = DeflateConfig {
                server_max_window_bits: bits,
                client_max_window_bits: bits,
                server_no_context_takeover: no_takeover,
                client_no_context_takeover: no_takeover,
                ..DeflateConfig::default()
            };
            let (mut server, mut client) = pair(&config, &config);
            let mut sizes = Vec::new();
            for round in 0..6 {
                let (from, to) = if round % 2 == 0 {
                    (&mut client, &mut server)
                } else {
                    (&mut server, &mut client)
                };
                let (frames, ev) = transfer(from, to, Message::text(text.clone()));
                assert_eq!(ev, vec![Event::Message(Message::text(text.clone()))]);
                assert_eq!(frames.len(), 1);
                sizes.push(frames[0].payload.len());
            }
            assert!(sizes[0] < text.len() * 3 / 4, "compressed: {sizes:?}");
            // With context takeover the repeat refers back to the first
            // message (when the window can reach it) and shrinks; without,
            // every repeat costs the same.
            if no_takeover {
                assert!(
                    sizes.iter().all(|s| *s == sizes[0]),
                    "bits {bits}: {sizes:?}"
                );
            } else if bits == 15 {
                assert!(sizes[2] < sizes[0] / 4, "bits {bits}: {sizes:?}");
            }
        }
    }
}

#[test]
fn rsv1_marks_compressed_messages_and_small_ones_go_plain() {
    let (mut server, mut client) = pair(&DeflateConfig::default(), &DeflateConfig::default());
    server.send(Message::text("tiny")).unwrap();
    server.send(Message::binary(vec![0u8; 1000])).unwrap();
    server.send(Message::Ping("p".into())).unwrap();
    let wire = output(&mut server);
    let mut rest = &wire[..];
    let mut rsv1 = Vec::new();
    while !rest.is_empty() {
        let (h, n) = rtwire::proto::frame::FrameHeader::decode(rest)
            .unwrap()
            .unwrap();
        rsv1.push(h.rsv);
        rest = &rest[n + h.payload_len as usize..];
    }
    assert_eq!(
        rsv1,
        vec![0, 0b100, 0],
        "below threshold plain, control frames never compressed"
    );
    client.receive_data(&wire);
    let ev = events(&mut client);
    assert_eq!(ev[1], Event::Message(Message::binary(vec![0u8; 1000])));
}

#[test]
fn fragmented_compressed_messages_reassemble() {
    let text = json_like(200);
    let compressed = raw_deflate(text.as_bytes(), 15);
    let (agreed, _) = DeflateConfig::default()
        .accept_offers(["permessage-deflate"])
        .unwrap();
    for size in [1, 7, 100, 1000] {
        let mut server = Connection::new(Role::Server, Config::default()).with_deflate(agreed);
        let chunks: Vec<&[u8]> = compressed.chunks(size).collect();
        let mut bytes = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            // RSV1 on the first frame only (RFC 7692 §6.1), pings in between.
            let (rsv, op) = if i == 0 { (0b100, 0x1) } else { (0, 0x0) };
            bytes.extend(raw_frame(i + 1 == chunks.len(), rsv, op, chunk, Some(KEY)));
            if i % 3 == 1 {
                bytes.extend(client_frame(true, 0x9, b"between"));
            }
        }
        server.receive_data(&bytes);
        let ev: Vec<Event> = events(&mut server)
            .into_iter()
            .filter(|e| !matches!(e, Event::Message(Message::Ping(_))))
            .collect();
        assert_eq!(
            ev,
            vec![Event::Message(Message::text(text.clone()))],
            "chunk {size}"
        );
    }
}

#[test]
fn peer_window_of_8_bits_is_accepted_and_we_send_plain() {
    let config = DeflateConfig::default();
    let (agreed, answer) = config
        .accept_offers(["permessage-deflate; server_max_window_bits=8"])
        .unwrap();
    assert_eq!(answer, "permessage-deflate; server_max_window_bits=8");
    let mut server = Connection::new(Role::Server, Config::default()).with_deflate(agreed);
    server.send(Message::text(json_like(50))).unwrap();
    let frames = decode_all(&output(&mut server));
    assert_eq!(
        frames[0].payload,
        json_like(50).as_bytes(),
        "sent uncompressed"
    );
    // It still inflates what the client compresses.
    let text = json_like(50);
    server.receive_data(&raw_frame(
        true,
        0b100,
        0x1,
        &raw_deflate(text.as_bytes(), 15),
        Some(KEY),
    ));
    assert_eq!(
        events(&mut server),
        vec![Event::Message(Message::text(text))]
    );
}

// ----- failures -----

fn deflate_server(config: Config) -> Connection {
    let (agreed, _) = DeflateConfig::default()
        .accept_offers(["permessage-deflate"])
        .unwrap();
    Connection::new(Role::Server, config).with_deflate(agreed)
}

#[test]
fn zip_bomb_is_refused_with_1009_within_the_limit() {
    let bomb = raw_deflate(&vec![0u8; 50 << 20], 15);
    assert!(
        bomb.len() < 100_000,
        "50 MiB of zeros deflates small: {}",
        bomb.len()
    );
    let mut server = deflate_server(Config::default().max_message_size(1 << 20));
    server.receive_data(&raw_frame(true, 0b100, 0x2, &bomb, Some(KEY)));
    let ev = events(&mut server);
    assert_eq!(
        ev,
        vec![Event::Failed(ProtocolError::MessageTooBig {
            limit: 1 << 20
        })]
    );
    assert_eq!(sent_close_code(&mut server), Some(1009));
}

#[test]
fn inflated_size_at_the_limit_is_accepted() {
    let data = vec![7u8; 100_000];
    let mut server = deflate_server(Config::default().max_message_size(100_000));
    server.receive_data(&raw_frame(
        true,
        0b100,
        0x2,
        &raw_deflate(&data, 15),
        Some(KEY),
    ));
    assert_eq!(
        events(&mut server),
        vec![Event::Message(Message::binary(data))]
    );
}

#[test]
fn rsv1_without_the_extension_fails_1002() {
    let text = "hello hello hello";
    let (ev, _) = server_after(&raw_frame(
        true,
        0b100,
        0x1,
        &raw_deflate(text.as_bytes(), 15),
        Some(KEY),
    ));
    assert_eq!(ev, vec![Event::Failed(ProtocolError::ReservedBits(0b100))]);
}

#[test]
fn rsv1_on_continuation_or_control_frames_fails_1002() {
    let compressed = raw_deflate(json_like(20).as_bytes(), 15);
    let mut server = deflate_server(Config::default());
    let mut bytes = raw_frame(false, 0b100, 0x1, &compressed[..10], Some(KEY));
    bytes.extend(raw_frame(true, 0b100, 0x0, &compressed[10..], Some(KEY)));
    server.receive_data(&bytes);
    assert_eq!(failed_code(&events(&mut server)), Some(1002));
    let mut server = deflate_server(Config::default());
    server.receive_data(&raw_frame(true, 0b100, 0x9, b"", Some(KEY)));
    assert_eq!(failed_code(&events(&mut server)), Some(1002));
}

#[test]
fn compressed_invalid_utf8_fails_1007() {
    let mut server = deflate_server(Config::default());
    let bad = raw_deflate(&[b'a', 0xed, 0xa0, 0x80, b'b'], 15);
    server.receive_data(&raw_frame(true, 0b100, 0x1, &bad, Some(KEY)));
    assert_eq!(
        events(&mut server),
        vec![Event::Failed(ProtocolError::InvalidUtf8)]
    );
}

#[test]
fn corrupt_compressed_data_fails_1007() {
    let mut server = deflate_server(Config::default());
    server.receive_data(&raw_frame(true, 0b100, 0x2, &[0xff; 20], Some(KEY)));
    assert_eq!(
        events(&mut server),
        vec![Event::Failed(ProtocolError::BadCompression)]
    );
    assert_eq!(sent_close_code(&mut server), Some(1007));
}

#[test]
fn compressed_frames_from_client_are_masked() {
    let (mut server, mut client) = pair(&DeflateConfig::default(), &DeflateConfig::default());
    let (frames, ev) = transfer(&mut client, &mut server, Message::text(json_like(10)));
    assert!(frames[0].masked);
    assert_eq!(frames[0].opcode, OpCode::Text);
    assert_eq!(ev.len(), 1);
}

// ----- one message compressed for many connections -----

/// The window and takeover settings a server may agree to, each a key or not.
fn server_configs() -> Vec<DeflateConfig> {
    let mut configs = Vec::new();
    for bits in [9u8, 12, 15] {
        for no_takeover in [false, true] {
            configs.push(DeflateConfig {
                server_max_window_bits: bits,
                server_no_context_takeover: no_takeover,
                ..DeflateConfig::default()
            });
        }
    }
    configs
}

#[test]
fn precompressed_frames_are_the_frames_send_writes_and_inflate_back() {
    let texts = [json_like(3), noise(5000), "tiny".to_owned(), String::new()];
    for config in server_configs() {
        let (mut sender, _) = pair(&config, &DeflateConfig::default());
        let key = sender.compression_key();
        // A key exactly when the server starts afresh with every message.
        assert_eq!(
            key.is_some(),
            config.server_no_context_takeover,
            "{config:?}"
        );
        assert_eq!(key, config.server_compression_key(), "{config:?}");
        let Some(key) = key else { continue };
        for text in &texts {
            let (mut plain, mut client) = pair(&config, &DeflateConfig::default());
            let compressed = bytes::Bytes::from(key.compress(text.as_bytes()));
            // What a compressor made for this one message makes (the key's
            // compressor is kept and reset, never carried over).
            if !text.is_empty() {
                let fresh = raw_deflate(text.as_bytes(), config.server_max_window_bits);
                assert_eq!(compressed.to_vec(), fresh, "{config:?}");
            }
            // Twice: the second must not depend on the first.
            for _ in 0..2 {
                sender
                    .send_precompressed(Message::text(text.clone()), key, compressed.clone())
                    .unwrap();
                plain.send(Message::text(text.clone())).unwrap();
                let wire = output(&mut sender);
                assert_eq!(wire, output(&mut plain), "{config:?}, {} bytes", text.len());
                let (head, _) = rtwire::proto::frame::FrameHeader::decode(&wire)
                    .unwrap()
                    .unwrap();
                let rsv1 = head.rsv & 0b100 != 0;
                assert_eq!(rsv1, key.compresses(text.len()), "{} bytes", text.len());
                client.receive_data(&wire);
                assert_eq!(
                    events(&mut client),
                    vec![Event::Message(Message::text(text.clone()))]
                );
            }
        }
    }
}

#[test]
fn precompressed_for_another_key_is_sent_as_plain_send_would() {
    let text = json_like(20);
    let lean = DeflateConfig::lean();
    let (shared, _) = pair(&lean, &DeflateConfig::default());
    let key = shared.compression_key().expect("lean has a key");
    let compressed = bytes::Bytes::from(key.compress(text.as_bytes()));
    let other_window = DeflateConfig {
        server_max_window_bits: 12,
        ..lean.clone()
    };
    // Context takeover, another window, no extension at all: each sends
    // what its own send would, never the foreign bytes.
    let receivers: Vec<(Connection, Connection)> = vec![
        pair(&DeflateConfig::default(), &DeflateConfig::default()),
        pair(&other_window, &DeflateConfig::default()),
        (
            Connection::new(Role::Server, Config::default()),
            Connection::new(Role::Client, Config::default()),
        ),
    ];
    for (mut server, mut client) in receivers {
        assert_ne!(server.compression_key(), Some(key));
        server
            .send_precompressed(Message::text(text.clone()), key, compressed.clone())
            .unwrap();
        let wire = output(&mut server);
        assert_ne!(decode_all(&wire)[0].payload, compressed.to_vec());
        client.receive_data(&wire);
        assert_eq!(
            events(&mut client),
            vec![Event::Message(Message::text(text.clone()))]
        );
    }
    // A closing connection refuses it as send does.
    let (mut server, _) = pair(&lean, &DeflateConfig::default());
    server.close(rtwire::proto::CloseCode::NORMAL, "").unwrap();
    assert_eq!(
        server.send_precompressed(Message::text(text), key, compressed),
        Err(rtwire::proto::SendError::Closed)
    );
}
