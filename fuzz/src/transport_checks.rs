//! The `transport_params` target: what the HTTP transports parse from the
//! network — message ids (`since=`, `Last-Event-ID`), query strings, channel
//! names, and the JSON commands of `/ws`.
//!
//! Checks: nothing panics; a parsed id prints back to the same text; a
//! decoded query value re-encodes to a value that decodes the same;
//! channel names accepted are within the documented set. The `/ws` command
//! decoder (serde_json underneath): a refusal has a short reason, and a
//! command it accepts, written again with `Command::to_json`, decodes to
//! the same command; a `ref` it accepts is at most `MAX_REF` bytes and
//! comes back unchanged in the JSON of the answer. The input's bytes as a payload (binary or text, any
//! control characters) go through the delivery and poll encoders and a
//! `publish` command: each writes an object the decoder reads back with
//! exactly those bytes.

use bytes::Bytes;
use rtwire::hub::MessageId;
use rtwire::serve::fuzzing::{
    decode_command, decode_tagged, encode_delivery_json, encode_poll_item_json, error_reply,
    percent_decode, query_param, Command, MAX_REF,
};
use rtwire::serve::{valid_channel, MAX_CHANNEL_LEN};

/// The longest reason a refused command may get.
const MAX_REASON: usize = 200;

/// Runs one input.
pub fn check(data: &[u8]) {
    check_command(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(id) = text.parse::<MessageId>() {
        assert_eq!(id.to_string(), text, "ids have one text form");
    }
    if valid_channel(text) {
        assert!(text.len() <= MAX_CHANNEL_LEN);
        assert!(text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)));
    }
    for name in ["since", "timeout", "last-event-id", "user", "token"] {
        if let Some(value) = query_param(Some(text), name) {
            let encoded: String = value.bytes().map(|b| format!("%{b:02X}")).collect();
            assert_eq!(percent_decode(&encoded).as_deref(), Some(value.as_str()));
        }
    }
}

/// Runs the `/ws` command checks on any bytes (the server only decodes
/// valid UTF-8 text messages, but the decoder must not care).
pub fn check_command(data: &[u8]) {
    match decode_command(data) {
        Ok(command) => {
            let again = command.to_json();
            let decoded = decode_command(&again).ok();
            assert_eq!(
                decoded,
                Some(command),
                "{:?}",
                String::from_utf8_lossy(&again)
            );
        }
        Err(e) => {
            let reason = e.to_string();
            assert!(reason.len() <= MAX_REASON, "a long reason: {reason}");
        }
    }
    check_ref(data);
    check_payload(data);
}

/// A command's `ref` is bounded, and its answer carries it as it came.
fn check_ref(data: &[u8]) {
    let Some(reference) = decode_tagged(data).reference else {
        return;
    };
    assert!(reference.len() <= MAX_REF, "a long ref: {reference:?}");
    let answer = error_reply("bad \"command\"", Some(&reference));
    let value: serde_json::Value = serde_json::from_str(&answer).expect("an answer is JSON");
    assert_eq!(value["ref"].as_str(), Some(&*reference), "{answer}");
    assert_eq!(
        value["reason"].as_str(),
        Some("bad \"command\""),
        "{answer}"
    );
}

/// `data` as a payload: every encoder writes JSON that carries it exactly.
fn check_payload(data: &[u8]) {
    let payload = Bytes::copy_from_slice(data);
    let publish = Command::Publish {
        channel: "room".into(),
        data: payload.clone(),
        except_self: false,
    };
    assert_eq!(decode_command(&publish.to_json()).ok(), Some(publish));
    // A delivery and a poll item become a command once an op is spliced
    // in: then the decoder must read the payload back unchanged.
    let id: MessageId = "1a2b3c4d-7".parse().expect("an id");
    for object in [
        encode_delivery_json("room\"\n", id, data),
        encode_poll_item_json(id, data),
    ] {
        assert_eq!(object.first(), Some(&b'{'));
        let mut command = br#"{"op":"send","user":"u","#.to_vec();
        command.extend_from_slice(&object[1..]);
        match decode_command(&command) {
            Ok(Command::Send { data: carried, .. }) => assert_eq!(carried, payload),
            other => panic!("{other:?} from {:?}", String::from_utf8_lossy(&object)),
        }
    }
}
