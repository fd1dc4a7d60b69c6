//! The JSON `rtwire serve` speaks, on serde_json: the `/ws` commands
//! decoded into [`Command`], and every answer encoded from a typed struct.
//!
//! Payloads are bytes. A payload that is valid UTF-8 travels as the string
//! `"data"`; any other payload travels base64-encoded as `"data_b64"`, so
//! binary data survives every transport.
//!
//! # Decoding a `/ws` command
//!
//! A command is one JSON object whose `op` names it (`join`, `leave`,
//! `publish`, `send`). The rules a client can rely on:
//! - Unknown fields are ignored, whatever their value, so a newer client
//!   may send fields an older server does not know. A known field another
//!   `op` uses is ignored too (`leave` with a `data`), once its type checks.
//! - `null` is the same as an absent field.
//! - A field given twice is an error: two parsers picking different
//!   copies (one for authorization, one for delivery) is how smuggling
//!   starts, so there is no first-or-last rule to get wrong.
//! - A known field of the wrong type (`"except_self":"yes"`) is an error,
//!   and so is a number JSON can write but not hold (`1e999`) there.
//! - An unknown `op` is an error. Every error is an `error` reply to that
//!   socket alone, with a short reason.
//!
//! What decoding holds is bounded by the input, which the message size
//! limit of `/ws` bounds: serde_json skips ignored values without building
//! them (and without recursing, however deep they nest), and a known field
//! nests nowhere. Strings are borrowed from the message unless they had
//! escapes; a payload is copied out once, so what the hub keeps owns
//! exactly its bytes (a slice would pin the whole message, and the read
//! buffer it was cut from, while the history counts only the payload).

use std::borrow::Cow;
use std::fmt;

use base64::Engine;
use bytes::Bytes;
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use crate::hub::{HubMessage, MessageId, Resume};

/// One `/ws` command, as decoded by [`decode_command`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// `{"op":"join","channel":"room","since":"ID"}`: subscribe, from after
    /// `since` if given, else from now on.
    Join {
        /// The room.
        channel: Cow<'a, str>,
        /// Resume after this id.
        since: Option<MessageId>,
    },
    /// `{"op":"leave","channel":"room"}`: unsubscribe.
    Leave {
        /// The room.
        channel: Cow<'a, str>,
    },
    /// `{"op":"publish","channel":"room","data":"hi","except_self":true}`.
    Publish {
        /// The room.
        channel: Cow<'a, str>,
        /// `data` as UTF-8, or `data_b64` decoded.
        data: Bytes,
        /// Deliver to everyone in the room but the sender's socket.
        except_self: bool,
    },
    /// `{"op":"send","user":"bob","data":"hi"}`: to one user's private room.
    Send {
        /// The user whose room `user:NAME` gets the message.
        user: Cow<'a, str>,
        /// `data` as UTF-8, or `data_b64` decoded.
        data: Bytes,
    },
    /// `{"op":"presence","channel":"room"}`: who is in the room.
    Presence {
        /// The room.
        channel: Cow<'a, str>,
    },
    /// `{"op":"ping"}`: answered with `pong`, for clients (browsers) that
    /// cannot see WebSocket pings and must tell a dead socket by silence.
    Ping,
}

/// A command and the client's `ref` for it, which the reply repeats.
#[derive(Debug)]
pub struct Tagged<'a> {
    /// `"ref"`: a string of at most [`MAX_REF`] bytes the client chose, if
    /// the command had one (and was JSON enough to find it in).
    pub reference: Option<Cow<'a, str>>,
    /// The command, or why it was refused.
    pub command: Result<Command<'a>, CommandError>,
}

/// The longest `ref` a command may carry.
pub const MAX_REF: usize = 64;

impl Command<'_> {
    /// The command as a client writes it, for [`decode_command`] to read
    /// back: `{"op":"publish","channel":"room","data":"hi"}`, the payload as
    /// `data_b64` when escaping would blow it up, `except_self` only when
    /// true.
    ///
    /// ```
    /// # use rtwire::serve::fuzzing::{decode_command, Command};
    /// let command = Command::Leave { channel: "room".into() };
    /// let json = command.to_json();
    /// assert_eq!(json, br#"{"op":"leave","channel":"room"}"#);
    /// assert_eq!(decode_command(&json).unwrap(), command);
    /// ```
    pub fn to_json(&self) -> Vec<u8> {
        to_vec(self)
    }
}

impl Serialize for Command<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        match self {
            Command::Join { channel, since } => {
                map.serialize_entry("op", "join")?;
                map.serialize_entry("channel", channel)?;
                if let Some(since) = since {
                    map.serialize_entry("since", &JsonId(*since))?;
                }
            }
            Command::Leave { channel } => {
                map.serialize_entry("op", "leave")?;
                map.serialize_entry("channel", channel)?;
            }
            Command::Publish {
                channel,
                data,
                except_self,
            } => {
                map.serialize_entry("op", "publish")?;
                map.serialize_entry("channel", channel)?;
                Payload(data).serialize_entry(&mut map)?;
                if *except_self {
                    map.serialize_entry("except_self", &true)?;
                }
            }
            Command::Send { user, data } => {
                map.serialize_entry("op", "send")?;
                map.serialize_entry("user", user)?;
                Payload(data).serialize_entry(&mut map)?;
            }
            Command::Presence { channel } => {
                map.serialize_entry("op", "presence")?;
                map.serialize_entry("channel", channel)?;
            }
            Command::Ping => map.serialize_entry("op", "ping")?,
        }
        map.end()
    }
}

/// Why a `/ws` command was refused. Always the client's fault: the reply
/// is an `error` with [`Display`](fmt::Display) as its reason.
#[derive(Debug)]
#[non_exhaustive]
pub enum CommandError {
    /// Not a JSON object (an array, a string, nothing).
    NotAnObject,
    /// Not JSON, or a known field of the wrong type, or a field given twice.
    Json(serde_json::Error),
    /// No `op` field.
    MissingOp,
    /// An `op` this server does not know.
    UnknownOp,
    /// The command needs this field.
    MissingField(&'static str),
    /// `since` is not an id like `1a2b3c4d-7`.
    InvalidSince,
    /// Both or neither of `data` and `data_b64`.
    PayloadAmbiguous,
    /// `data_b64` is not standard base64 with padding.
    NotBase64,
    /// `ref` is longer than [`MAX_REF`] bytes.
    RefTooLong,
}

/// The longest serde_json message a reason quotes: a message may echo a
/// client's value (`invalid type: string "…"`), and a reason stays short.
const MAX_QUOTED: usize = 96;

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::NotAnObject => f.write_str("bad JSON: a command is an object"),
            CommandError::Json(e) => {
                let kind = if e.is_data() {
                    "bad command"
                } else {
                    "bad JSON"
                };
                let full = e.to_string();
                // serde_json appends the position; keep it after cutting.
                let position = format!(" at line {} column {}", e.line(), e.column());
                let message = full.strip_suffix(&position).unwrap_or(&full);
                let cut = truncate(message, MAX_QUOTED);
                let ellipsis = if cut.len() < message.len() { "…" } else { "" };
                write!(f, "{kind}: {cut}{ellipsis}")?;
                if e.line() > 0 {
                    write!(f, " at column {}", e.column())?;
                }
                Ok(())
            }
            CommandError::MissingOp => {
                f.write_str("missing op: use join, leave, publish, send, presence or ping")
            }
            CommandError::UnknownOp => {
                f.write_str("unknown op: use join, leave, publish, send, presence or ping")
            }
            CommandError::MissingField(field) => write!(f, "missing {field}"),
            CommandError::InvalidSince => f.write_str("invalid since"),
            CommandError::PayloadAmbiguous => f.write_str("give exactly one of data and data_b64"),
            CommandError::NotBase64 => f.write_str("data_b64 is not base64"),
            CommandError::RefTooLong => write!(f, "ref is longer than {MAX_REF} bytes"),
        }
    }
}

impl std::error::Error for CommandError {}

/// `s` cut to at most `max` bytes, on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Decodes one `/ws` command from the bytes of a text message.
pub fn decode_command(json: &[u8]) -> Result<Command<'_>, CommandError> {
    decode_tagged(json).command
}

/// Decodes one `/ws` command and its `ref`: the reply to a command that
/// had one carries it, so a client can match replies to requests.
pub fn decode_tagged(json: &[u8]) -> Tagged<'_> {
    // serde would also take an array for a struct (fields by position):
    // not a format anyone should come to depend on.
    if json.trim_ascii_start().first() != Some(&b'{') {
        return Tagged {
            reference: None,
            command: Err(CommandError::NotAnObject),
        };
    }
    let wire: WireCommand = match serde_json::from_slice(json) {
        Ok(wire) => wire,
        Err(e) => {
            return Tagged {
                reference: None,
                command: Err(CommandError::Json(e)),
            }
        }
    };
    if wire.reference.as_ref().is_some_and(|r| r.len() > MAX_REF) {
        return Tagged {
            reference: None,
            command: Err(CommandError::RefTooLong),
        };
    }
    let reference = wire.reference.clone();
    Tagged {
        reference,
        command: command(wire),
    }
}

fn command(wire: WireCommand<'_>) -> Result<Command<'_>, CommandError> {
    let WireCommand {
        op,
        reference: _,
        channel,
        since,
        user,
        data,
        data_b64,
        except_self,
    } = wire;
    let op = op.ok_or(CommandError::MissingOp)?;
    let channel = || channel.ok_or(CommandError::MissingField("channel"));
    let payload = || payload(data.as_deref(), data_b64.as_deref());
    Ok(match op.as_ref() {
        "join" => Command::Join {
            channel: channel()?,
            since: match since {
                None => None,
                Some(text) => Some(text.parse().map_err(|_| CommandError::InvalidSince)?),
            },
        },
        "leave" => Command::Leave {
            channel: channel()?,
        },
        "publish" => Command::Publish {
            channel: channel()?,
            data: payload()?,
            except_self: except_self.unwrap_or(false),
        },
        "send" => Command::Send {
            user: user.ok_or(CommandError::MissingField("user"))?,
            data: payload()?,
        },
        "presence" => Command::Presence {
            channel: channel()?,
        },
        "ping" => Command::Ping,
        _ => return Err(CommandError::UnknownOp),
    })
}

/// Every field any command has; serde skips the rest.
#[derive(Deserialize)]
struct WireCommand<'a> {
    #[serde(borrow, default, deserialize_with = "text")]
    op: Option<Cow<'a, str>>,
    #[serde(rename = "ref", borrow, default, deserialize_with = "text")]
    reference: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "text")]
    channel: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "text")]
    since: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "text")]
    user: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "text")]
    data: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "text")]
    data_b64: Option<Cow<'a, str>>,
    #[serde(default)]
    except_self: Option<bool>,
}

/// A string field, borrowed from the input unless it had escapes; `null`
/// is `None`. (serde's own `Option<Cow<str>>` always copies.)
fn text<'de, D>(deserializer: D) -> Result<Option<Cow<'de, str>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct Text;
    impl<'de> serde::de::Visitor<'de> for Text {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Borrowed(s)))
        }
        fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(s.to_owned())))
        }
        fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(s)))
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(Text)
        }
    }
    deserializer.deserialize_option(Text)
}

/// The payload of a command, in a buffer of its own: `data` as UTF-8 or
/// `data_b64` decoded.
fn payload(data: Option<&str>, data_b64: Option<&str>) -> Result<Bytes, CommandError> {
    match (data, data_b64) {
        (Some(text), None) => Ok(Bytes::copy_from_slice(text.as_bytes())),
        (None, Some(b64)) => base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .map(Bytes::from)
            .map_err(|_| CommandError::NotBase64),
        _ => Err(CommandError::PayloadAmbiguous),
    }
}

// Encoding: everything through serde_json, the per-message encoders of
// `/ws` deliveries and poll items too. Measured against the hand-written
// encoder they replace (`--release` timing loop, best of 400 batches, one
// `/ws` delivery; a loaded 2-core machine, so the ratios matter more than
// the times): 1 KiB text 4.4 µs → 1.9 µs, 64 KiB text 267 µs → 121 µs,
// 46 B with escapes 0.49 µs → 0.26 µs, 1.5 KiB of Greek and emoji
// 5.6 µs → 3.6 µs; 1 KiB binary 0.99 µs → 1.8 µs (serde_json scans the
// base64 for escapes it cannot hold). Text is the common payload, and each
// message is encoded once for all its subscribers, so serde it is.

/// A message id as a JSON string, written without an intermediate String.
#[derive(Clone, Copy)]
pub(crate) struct JsonId(pub MessageId);

impl Serialize for JsonId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

/// `"resume"` (and `"first_available"` for a gap): how a starting point
/// related to the history, flattened into polls and `/ws` joins alike.
pub(crate) struct ResumeFields<'a>(pub &'a Resume);

impl Serialize for ResumeFields<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        match self.0 {
            Resume::Exact => map.serialize_entry("resume", "exact")?,
            Resume::Gap { first_available } => {
                map.serialize_entry("resume", "gap")?;
                map.serialize_entry("first_available", &first_available.map(JsonId))?;
            }
            Resume::EpochChanged { .. } => map.serialize_entry("resume", "epoch_changed")?,
            Resume::Ahead => map.serialize_entry("resume", "ahead")?,
        }
        map.end()
    }
}

/// A payload as `"data":"text"` or `"data_b64":"base64"`: text as a string
/// unless escaping it would make it longer than base64 does (control
/// characters take six bytes each as `\u0001`) by more than
/// [`ESCAPE_SLACK`], so no payload grows by more than a third and that.
pub(crate) struct Payload<'a>(pub &'a [u8]);

impl Payload<'_> {
    /// Writes the payload's one entry into an object being serialized.
    fn serialize_entry<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        match std::str::from_utf8(self.0) {
            Ok(text) if escaped_len(text) <= base64_len(self.0.len()) + ESCAPE_SLACK => {
                map.serialize_entry("data", text)
            }
            _ => map.serialize_entry("data_b64", &Base64(self.0)),
        }
    }
}

impl Serialize for Payload<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        self.serialize_entry(&mut map)?;
        map.end()
    }
}

/// Bytes as a base64 string.
struct Base64<'a>(&'a [u8]);

impl Serialize for Base64<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Into a String first: twice as fast as `collect_str` of a
        // `Base64Display`, whose small chunks each pay a formatter call.
        let encoded = base64::engine::general_purpose::STANDARD.encode(self.0);
        serializer.serialize_str(&encoded)
    }
}

/// The length of `s` as the body of a JSON string literal, as serde_json
/// writes it: two bytes for `"`, `\`, and `\b \f \n \r \t`, six for the
/// other control characters.
fn escaped_len(s: &str) -> usize {
    s.len()
        + s.bytes()
            .map(|b| match b {
                b'"' | b'\\' | b'\x08' | b'\x0c' | b'\n' | b'\r' | b'\t' => 1,
                b if b < 0x20 => 5,
                _ => 0,
            })
            .sum::<usize>()
}

/// How much longer than base64 escaped text may be and still go as text:
/// short messages with a few escapes stay readable.
const ESCAPE_SLACK: usize = 32;

fn base64_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

/// Serializes `value` into a fresh buffer. Only the serializer's own
/// errors could fail it, and none of ours make any (maps have string
/// keys, ids and payloads always serialize).
pub(crate) fn to_vec(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).expect("rtwire's answers always serialize")
}

/// As [`to_vec`], into a String.
pub(crate) fn to_string(value: &impl Serialize) -> String {
    serde_json::to_string(value).expect("rtwire's answers always serialize")
}

/// `{"type":"presence_change",…}` for one member's arrival or departure.
pub(crate) fn presence_change(change: &crate::hub::presence::PresenceChange) -> String {
    let member = [&*change.member];
    let (joined, left): (&[&str], &[&str]) = match change.joined {
        true => (&member, &[]),
        false => (&[], &member),
    };
    to_string(&Reply::PresenceChange {
        channel: &change.channel,
        joined,
        left,
    })
}

/// `{"type":"presence",…}`: everyone in `channel` now.
pub(crate) fn presence_list(channel: &str, members: &[String]) -> String {
    to_string(&Reply::Presence { channel, members })
}

/// A `/ws` answer to a command, or a notice.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub(crate) enum Reply<'a> {
    /// `{"type":"joined","channel":"room","resume":"exact","since":"ID"}`:
    /// `since` is where the subscription starts (after the newest message
    /// when joined live), to join again from without missing anything.
    Joined {
        channel: &'a str,
        #[serde(flatten)]
        resume: ResumeFields<'a>,
        since: JsonId,
    },
    /// `{"type":"left","channel":"room"}`.
    Left { channel: &'a str },
    /// `{"type":"published","channel":"room","id":"ID"}`.
    Published { channel: &'a str, id: JsonId },
    /// `{"type":"error","reason":"..."}`.
    Error { reason: &'a str },
    /// `{"type":"presence","channel":"room","members":["alice","bob"]}`:
    /// the answer to `presence`, or a fresh list for a socket that missed
    /// changes.
    Presence {
        channel: &'a str,
        members: &'a [String],
    },
    /// `{"type":"presence_change","channel":"room","joined":["carol"],"left":[]}`.
    #[serde(rename = "presence_change")]
    PresenceChange {
        channel: &'a str,
        joined: &'a [&'a str],
        left: &'a [&'a str],
    },
    /// `{"type":"pong"}`: the answer to `ping`.
    Pong,
}

impl Reply<'_> {
    /// The reply as JSON text, with the command's `ref` (if it had one)
    /// as its last field.
    pub(crate) fn to_string_with(&self, reference: Option<&str>) -> String {
        let mut text = to_string(self);
        if let Some(reference) = reference {
            // Every reply is an object: put the field before its brace.
            text.pop();
            text.push_str(",\"ref\":");
            text.push_str(&to_string(&reference));
            text.push('}');
        }
        text
    }
}

/// One `/ws` delivery: `{"type":"message","channel":"room","id":"ID","data":"hi"}`.
#[derive(Serialize)]
pub(crate) struct Delivery<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub channel: &'a str,
    pub id: JsonId,
    #[serde(flatten)]
    pub payload: Payload<'a>,
}

/// One `/ws` delivery as a JSON text message, encoded once for every socket.
pub(crate) fn encode_delivery(message: &HubMessage) -> Bytes {
    Bytes::from(encode_delivery_json(
        &message.channel,
        message.id,
        &message.data,
    ))
}

/// `{"type":"message","channel":"room","id":"ID","data":"hi"}`.
pub fn encode_delivery_json(channel: &str, id: MessageId, data: &[u8]) -> Vec<u8> {
    let delivery = Delivery {
        kind: "message",
        channel,
        id: JsonId(id),
        payload: Payload(data),
    };
    write_sized(&delivery, channel.len() + data.len())
}

/// One message of a poll answer, encoded once and shared by every poller.
pub(crate) fn encode_poll_item(message: &HubMessage) -> Bytes {
    Bytes::from(encode_poll_item_json(message.id, &message.data))
}

/// `{"id":"ID","data":"hi"}`.
pub fn encode_poll_item_json(id: MessageId, data: &[u8]) -> Vec<u8> {
    #[derive(Serialize)]
    struct Item<'a> {
        id: JsonId,
        #[serde(flatten)]
        payload: Payload<'a>,
    }
    let item = Item {
        id: JsonId(id),
        payload: Payload(data),
    };
    write_sized(&item, data.len())
}

/// Serializes `value` into a buffer sized for `len` bytes of strings and
/// payload: room for base64 and the fields, so it is not grown on the way.
fn write_sized(value: &impl Serialize, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(base64_len(len) + 80);
    serde_json::to_writer(&mut out, value).expect("rtwire's answers always serialize");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::any;

    fn decode(text: &str) -> Result<Command<'_>, CommandError> {
        decode_command(text.as_bytes())
    }

    fn reason(text: &str) -> String {
        decode(text).unwrap_err().to_string()
    }

    #[test]
    fn the_four_commands_decode() {
        assert_eq!(
            decode(r#"{"op":"join","channel":"r","since":"1a2b3c4d-7"}"#).unwrap(),
            Command::Join {
                channel: "r".into(),
                since: Some("1a2b3c4d-7".parse().unwrap())
            }
        );
        assert_eq!(
            decode(r#" { "op" : "leave" , "channel" : "r" } "#).unwrap(),
            Command::Leave {
                channel: "r".into()
            }
        );
        assert_eq!(
            decode(r#"{"op":"publish","channel":"r","data":"hi","except_self":true}"#).unwrap(),
            Command::Publish {
                channel: "r".into(),
                data: Bytes::from("hi"),
                except_self: true
            }
        );
        assert_eq!(
            decode(r#"{"op":"send","user":"bob","data_b64":"/wAQ"}"#).unwrap(),
            Command::Send {
                user: "bob".into(),
                data: Bytes::from_static(&[0xff, 0, 0x10])
            }
        );
    }

    #[test]
    fn escapes_decode_including_surrogate_pairs() {
        let command = decode(
            r#"{"op":"publish","channel":"r","data":"q\" b\\ s\/ \b\f\n\r\t \u00e9 \ud83d\ude00 \u0000"}"#,
        )
        .unwrap();
        let Command::Publish { data, .. } = command else {
            panic!("{command:?}")
        };
        assert_eq!(data, "q\" b\\ s/ \u{8}\u{c}\n\r\t é 😀 \u{0}".as_bytes());
    }

    #[test]
    fn lone_surrogates_and_bad_escapes_are_errors() {
        for bad in [
            r#"{"op":"publish","channel":"r","data":"\ud800"}"#,
            r#"{"op":"publish","channel":"r","data":"\udc00"}"#,
            r#"{"op":"publish","channel":"r","data":"\ud83d\u0041"}"#,
            r#"{"op":"publish","channel":"r","data":"\uzzzz"}"#,
            r#"{"op":"publish","channel":"r","data":"\x"}"#,
            "{\"op\":\"publish\",\"channel\":\"r\",\"data\":\"raw\u{1}\"}",
        ] {
            let reason = reason(bad);
            assert!(reason.starts_with("bad JSON: "), "{bad}: {reason}");
        }
    }

    #[test]
    fn payloads_own_exactly_their_bytes_and_names_are_borrowed() {
        for json in [
            r#"{"op":"publish","channel":"r","data":"x","pad":"................"}"#,
            r#"{"op":"publish","channel":"r","data":"\u0078","pad":"................"}"#,
        ] {
            let Command::Publish { data, channel, .. } = decode(json).unwrap() else {
                panic!()
            };
            assert!(!json.as_bytes().as_ptr_range().contains(&data.as_ptr()));
            assert!(data.is_unique());
            let allocation = Vec::from(data);
            assert_eq!(
                (allocation.as_slice(), allocation.capacity()),
                (&b"x"[..], 1)
            );
            assert!(matches!(channel, Cow::Borrowed("r")));
        }
    }

    #[test]
    fn unknown_and_null_fields_are_ignored() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let text = format!(
            r#"{{"op":"join","x":{{"a":[1,2.5e3,true,null]}},"n":1e999999,"big":123456789012345678901234567890,"deep":{deep},"channel":"r","since":null}}"#
        );
        assert_eq!(
            decode(&text).unwrap(),
            Command::Join {
                channel: "r".into(),
                since: None
            }
        );
        assert_eq!(
            decode(
                r#"{"op":"publish","channel":"r","data":"a","data_b64":null,"except_self":null}"#
            )
            .unwrap(),
            Command::Publish {
                channel: "r".into(),
                data: Bytes::from("a"),
                except_self: false
            }
        );
    }

    #[test]
    fn duplicate_fields_are_errors() {
        for dup in [
            r#"{"op":"join","channel":"a","channel":"b"}"#,
            r#"{"op":"join","op":"leave","channel":"a"}"#,
            r#"{"op":"publish","channel":"a","data":"x","data":"y"}"#,
        ] {
            let reason = reason(dup);
            assert!(reason.contains("duplicate field"), "{dup}: {reason}");
        }
    }

    #[test]
    fn wrong_types_are_errors() {
        for (bad, expect) in [
            (r#"{"op":"join","channel":5}"#, "invalid type: integer `5`"),
            (r#"{"op":"join","channel":["a"]}"#, "invalid type: sequence"),
            (r#"{"op":["join"],"channel":"a"}"#, "invalid type: sequence"),
            (
                r#"{"op":"publish","channel":"a","data":"x","except_self":"yes"}"#,
                "expected a boolean",
            ),
            (
                r#"{"op":"publish","channel":"a","data":"x","except_self":1e999}"#,
                "number out of range",
            ),
            (
                r#"{"op":"join","channel":"a","data":5}"#,
                "invalid type: integer `5`",
            ),
            (
                r#"{"op":"join","channel":"a","since":12345678901234567890123}"#,
                "invalid type",
            ),
        ] {
            let reason = reason(bad);
            assert!(reason.contains(expect), "{bad}: {reason}");
        }
    }

    #[test]
    fn deep_nesting_in_a_known_field_or_unbalanced_is_an_error_not_a_crash() {
        let deep = "[".repeat(1 << 20);
        for bad in [
            format!(r#"{{"op":"join","channel":{deep}"#),
            format!(r#"{{"op":"join","channel":"a","x":{deep}"#),
            format!(
                r#"{{"op":"join","channel":"a","x":{}}}"#,
                "{\"a\":".repeat(100_000)
            ),
        ] {
            assert!(decode(&bad).is_err());
        }
    }

    #[test]
    fn malformed_or_incomplete_commands_are_errors() {
        for (bad, expect) in [
            ("", "a command is an object"),
            ("[]", "a command is an object"),
            (r#"["join","room"]"#, "a command is an object"),
            ("\"join\"", "a command is an object"),
            ("{", "bad JSON: EOF"),
            ("{\"a\"}", "bad JSON"),
            ("{\"op\":\"join\",}", "bad JSON: trailing comma"),
            (
                "{\"op\":\"join\",\"channel\":\"a\"} x",
                "bad JSON: trailing characters",
            ),
            ("{}", "missing op"),
            (r#"{"op":"dance"}"#, "unknown op"),
            (r#"{"op":"join"}"#, "missing channel"),
            (r#"{"op":"publish","data":"x"}"#, "missing channel"),
            (r#"{"op":"send","data":"x"}"#, "missing user"),
            (
                r#"{"op":"join","channel":"a","since":"yesterday"}"#,
                "invalid since",
            ),
            (r#"{"op":"publish","channel":"a"}"#, "exactly one of data"),
            (
                r#"{"op":"publish","channel":"a","data":"a","data_b64":"YQ=="}"#,
                "exactly one of",
            ),
            (
                r#"{"op":"publish","channel":"a","data_b64":"%%%"}"#,
                "not base64",
            ),
        ] {
            let reason = reason(bad);
            assert!(reason.contains(expect), "{bad:?}: {reason}");
        }
    }

    #[test]
    fn reasons_stay_short_whatever_the_client_sent() {
        let long = "é".repeat(100_000);
        let bad = format!(r#"{{"op":"publish","channel":"a","data":"x","except_self":"{long}"}}"#);
        let reason = reason(&bad);
        assert!(reason.len() < 200, "{} bytes: {reason}", reason.len());
        assert!(
            reason.starts_with("bad command: invalid type: string \"éé")
                && reason.ends_with(&format!("… at column {}", bad.len() - 1)),
            "{reason}"
        );
    }

    #[test]
    fn replies_have_the_wire_format() {
        let id: MessageId = "1a2b3c4d-7".parse().unwrap();
        assert_eq!(
            to_string(&Reply::Joined {
                channel: "r\"",
                resume: ResumeFields(&Resume::Exact),
                since: JsonId(id),
            }),
            r#"{"type":"joined","channel":"r\"","resume":"exact","since":"1a2b3c4d-7"}"#
        );
        assert_eq!(
            to_string(&Reply::Joined {
                channel: "r",
                resume: ResumeFields(&Resume::Gap {
                    first_available: Some(id)
                }),
                since: JsonId(id),
            }),
            r#"{"type":"joined","channel":"r","resume":"gap","first_available":"1a2b3c4d-7","since":"1a2b3c4d-7"}"#
        );
        assert_eq!(
            to_string(&Reply::Joined {
                channel: "r",
                resume: ResumeFields(&Resume::Gap {
                    first_available: None
                }),
                since: JsonId(id),
            }),
            r#"{"type":"joined","channel":"r","resume":"gap","first_available":null,"since":"1a2b3c4d-7"}"#
        );
        assert_eq!(
            to_string(&Reply::Left { channel: "r" }),
            r#"{"type":"left","channel":"r"}"#
        );
        assert_eq!(
            to_string(&Reply::Published {
                channel: "r",
                id: JsonId(id)
            }),
            r#"{"type":"published","channel":"r","id":"1a2b3c4d-7"}"#
        );
        assert_eq!(
            to_string(&Reply::Error { reason: "no\n" }),
            r#"{"type":"error","reason":"no\n"}"#
        );
    }

    #[test]
    fn refs_come_back_on_their_replies() {
        let tagged = decode_tagged(br#"{"op":"ping","ref":"7"}"#);
        assert_eq!(tagged.reference.as_deref(), Some("7"));
        assert_eq!(tagged.command.unwrap(), Command::Ping);
        assert_eq!(
            Reply::Pong.to_string_with(Some("7")),
            r#"{"type":"pong","ref":"7"}"#
        );
        assert_eq!(Reply::Pong.to_string_with(None), r#"{"type":"pong"}"#);
        // A refused command keeps its ref, so the client knows which failed.
        let refused = decode_tagged(br#"{"op":"fly","ref":"q\"1"}"#);
        assert_eq!(refused.reference.as_deref(), Some("q\"1"));
        assert!(matches!(refused.command, Err(CommandError::UnknownOp)));
        let reply = Reply::Error { reason: "x" }.to_string_with(Some("q\"1"));
        assert_eq!(reply, r#"{"type":"error","reason":"x","ref":"q\"1"}"#);
        let long = format!(r#"{{"op":"ping","ref":"{}"}}"#, "r".repeat(MAX_REF + 1));
        let tagged = decode_tagged(long.as_bytes());
        assert!(tagged.reference.is_none());
        assert!(matches!(tagged.command, Err(CommandError::RefTooLong)));
        assert!(decode_tagged(br#"{"op":"ping","ref":7}"#).command.is_err());
        assert!(decode_tagged(br#"{"op":"ping","ref":"a","ref":"b"}"#)
            .command
            .is_err());
    }

    #[test]
    fn presence_commands_and_replies() {
        let command = decode(r#"{"op":"presence","channel":"room"}"#).unwrap();
        assert_eq!(
            command,
            Command::Presence {
                channel: "room".into()
            }
        );
        assert_eq!(decode_command(&command.to_json()).unwrap(), command);
        assert_eq!(
            decode_command(&Command::Ping.to_json()).unwrap(),
            Command::Ping
        );
        assert_eq!(reason(r#"{"op":"presence"}"#), "missing channel");
        let members = ["alice".to_owned(), "bob".to_owned()];
        assert_eq!(
            to_string(&Reply::Presence {
                channel: "room",
                members: &members
            }),
            r#"{"type":"presence","channel":"room","members":["alice","bob"]}"#
        );
        assert_eq!(
            to_string(&Reply::PresenceChange {
                channel: "room",
                joined: &["carol"],
                left: &[]
            }),
            r#"{"type":"presence_change","channel":"room","joined":["carol"],"left":[]}"#
        );
    }

    fn payload_json(data: &[u8]) -> String {
        to_string(&Payload(data))
    }

    #[test]
    fn text_that_escaping_would_blow_up_goes_as_base64() {
        let out = payload_json(&[1u8; 300]);
        assert!(out.starts_with("{\"data_b64\":\"AQEB"), "{out}");
        assert_eq!(out.len(), "{\"data_b64\":\"\"}".len() + 400);
        // Ordinary text, a few escapes included, stays a string.
        assert_eq!(
            payload_json(b"line one\nline \"two\"\t\x01"),
            "{\"data\":\"line one\\nline \\\"two\\\"\\t\\u0001\"}"
        );
        assert_eq!(payload_json(&[0xff, 0x00, 0x10]), "{\"data_b64\":\"/wAQ\"}");
    }

    #[test]
    fn escaped_len_is_what_serde_json_writes() {
        let all: String = (0u8..0x80).map(char::from).chain("é😀".chars()).collect();
        for text in [all.as_str(), "", "plain", "\u{7f}\u{2028}"] {
            let written = serde_json::to_string(text).unwrap();
            assert_eq!(escaped_len(text), written.len() - 2, "{text:?}");
        }
    }

    /// The payload a parsed answer carries, from `data` or `data_b64`.
    fn carried(object: &serde_json::Value) -> Vec<u8> {
        match (object.get("data"), object.get("data_b64")) {
            (Some(serde_json::Value::String(text)), None) => text.clone().into_bytes(),
            (None, Some(serde_json::Value::String(b64))) => {
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap()
            }
            other => panic!("no single payload: {other:?}"),
        }
    }

    /// Payloads as bytes of any kind, or as text heavy in what needs escaping.
    fn payloads() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..600),
            any::<String>().prop_map(String::into_bytes),
            "[\\x00-\\x1f\"\\\\/a\u{7f}\u{2028}é😀]{0,300}".prop_map(String::into_bytes),
        ]
    }

    proptest::proptest! {
        #[test]
        fn every_encoder_writes_json_that_round_trips(
            channel in any::<String>(),
            data in payloads(),
            epoch in any::<u32>(),
            seq in any::<u64>(),
        ) {
            use proptest::prelude::*;
            let id_text = format!("{epoch:08x}-{seq}");
            let id: MessageId = id_text.parse().unwrap();
            let delivery: serde_json::Value =
                serde_json::from_slice(&encode_delivery_json(&channel, id, &data)).unwrap();
            prop_assert_eq!(&delivery["type"], "message");
            prop_assert_eq!(&delivery["channel"], channel.as_str());
            prop_assert_eq!(&delivery["id"], id_text.as_str());
            prop_assert_eq!(delivery.as_object().unwrap().len(), 4);
            prop_assert_eq!(carried(&delivery), data.clone());

            let item: serde_json::Value =
                serde_json::from_slice(&encode_poll_item_json(id, &data)).unwrap();
            prop_assert_eq!(&item["id"], id_text.as_str());
            prop_assert_eq!(item.as_object().unwrap().len(), 2);
            prop_assert_eq!(carried(&item), data.clone());

            // No payload grows past its base64 by more than the slack.
            let payload_len = to_string(&Payload(&data)).len();
            let empty_b64 = r#"{"data_b64":""}"#.len();
            prop_assert!(payload_len <= empty_b64 + base64_len(data.len()) + ESCAPE_SLACK);

            let error: serde_json::Value =
                serde_json::from_str(&to_string(&Reply::Error { reason: &channel })).unwrap();
            prop_assert_eq!(&error["reason"], channel.as_str());
            let joined: serde_json::Value = serde_json::from_str(&to_string(&Reply::Joined {
                channel: &channel,
                resume: ResumeFields(&Resume::Gap { first_available: Some(id) }),
                since: JsonId(id),
            }))
            .unwrap();
            prop_assert_eq!(&joined["channel"], channel.as_str());
            prop_assert_eq!(&joined["since"], id_text.as_str());
            prop_assert_eq!(&joined["first_available"], id_text.as_str());
        }

        #[test]
        fn commands_clients_write_decode_to_what_they_said(
            channel in any::<String>(),
            text in any::<String>(),
            binary in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            except_self in proptest::prelude::any::<bool>(),
        ) {
            use proptest::prelude::*;
            let publish = serde_json::json!({
                "op": "publish", "channel": channel, "data": text, "except_self": except_self,
            });
            let json = Bytes::from(publish.to_string());
            prop_assert_eq!(
                decode_command(&json).unwrap(),
                Command::Publish {
                    channel: channel.as_str().into(),
                    data: Bytes::from(text.clone()),
                    except_self,
                }
            );
            let send = serde_json::json!({
                "user": channel,
                "data_b64": base64::engine::general_purpose::STANDARD.encode(&binary),
                "op": "send",
            });
            let json = Bytes::from(serde_json::to_vec_pretty(&send).unwrap());
            prop_assert_eq!(
                decode_command(&json).unwrap(),
                Command::Send { user: channel.as_str().into(), data: Bytes::from(binary) }
            );
        }

        #[test]
        fn commands_round_trip_through_to_json(
            channel in any::<String>(),
            data in payloads(),
            except_self in proptest::prelude::any::<bool>(),
            since in proptest::option::of(proptest::prelude::any::<u32>()),
        ) {
            use proptest::prelude::*;
            let since = since.map(|n| format!("{n:08x}-{n}").parse().unwrap());
            for command in [
                Command::Join { channel: channel.as_str().into(), since },
                Command::Leave { channel: channel.as_str().into() },
                Command::Publish {
                    channel: channel.as_str().into(),
                    data: Bytes::from(data.clone()),
                    except_self,
                },
                Command::Send { user: channel.as_str().into(), data: Bytes::from(data.clone()) },
            ] {
                let json = Bytes::from(command.to_json());
                prop_assert_eq!(decode_command(&json).unwrap(), command);
            }
        }

        #[test]
        fn any_text_decodes_or_is_refused_with_a_short_reason(text in any::<String>()) {
            use proptest::prelude::*;
            let json = Bytes::from(format!("{{{text}"));
            if let Err(e) = decode_command(&json) {
                prop_assert!(e.to_string().len() < 200);
            }
        }
    }
}
