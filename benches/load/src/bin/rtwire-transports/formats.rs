//! Reading what the server sends: poll answers (JSON), SSE events and
//! `/ws` deliveries (JSON); and Nchan's channel info. Not general parsers:
//! they rely on the payloads of `payload.rs`, which need no escaping, and
//! check that the server resumed exactly where it was asked to.

use crate::http::find;

/// A short or long poll's answer.
#[derive(Debug)]
pub struct PollAnswer<'a> {
    /// The payloads, in order.
    pub messages: Vec<&'a [u8]>,
    /// The id to ask from next.
    pub next: String,
}

/// Parses `{"channel":..,"resume":"exact","messages":[{"id":..,"data":..},..],"next":..}`.
pub fn poll_answer(body: &[u8]) -> Result<PollAnswer<'_>, String> {
    let bad = |what: &str| format!("{what} in the poll answer {}", excerpt(body));
    if find(body, br#""resume":"exact""#).is_none() {
        return Err(bad("no exact resume"));
    }
    let start = find(body, br#""messages":["#).ok_or_else(|| bad("no messages"))?;
    let end = rfind(body, br#"],"next":""#).ok_or_else(|| bad("no next"))?;
    let next = string_at(body, end + br#"],"next":""#.len()).ok_or_else(|| bad("bad next"))?;
    let mut messages = Vec::new();
    let mut rest = &body[start..end];
    let key = br#""data":""#;
    while let Some(i) = find(rest, key) {
        let data = string_at(rest, i + key.len()).ok_or_else(|| bad("bad data"))?;
        messages.push(data);
        rest = &rest[i + key.len() + data.len()..];
    }
    if find(&body[start..end], b"data_b64").is_some() {
        return Err(bad("a binary payload"));
    }
    Ok(PollAnswer {
        messages,
        next: String::from_utf8_lossy(next).into_owned(),
    })
}

/// One SSE event (or comment) from the front of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum SseEvent<'a> {
    /// A message: its single `data:` line.
    Data(&'a [u8]),
    /// A comment (the heartbeat) or the `retry:` advice.
    Control,
}

/// The next whole event in `buf` and the bytes it took, if one is there.
/// A named event (`event: gap`, `event: lagged`, ...) is an error: none is
/// expected when resuming from an id the history holds.
pub fn sse_event(buf: &[u8]) -> Option<Result<(SseEvent<'_>, usize), String>> {
    let end = find(buf, b"\n\n")?;
    let event = &buf[..end];
    let mut data = None;
    for line in event.split(|&b| b == b'\n') {
        if let Some(value) = line.strip_prefix(b"data: ") {
            if data.replace(value).is_some() {
                return Some(Err(format!(
                    "an event with two data lines: {}",
                    excerpt(event)
                )));
            }
        } else if !(line.starts_with(b"id: ")
            || line.starts_with(b":")
            || line.starts_with(b"retry: "))
        {
            return Some(Err(format!("unexpected SSE event {}", excerpt(event))));
        }
    }
    let event = match data {
        Some(data) => SseEvent::Data(data),
        None => SseEvent::Control,
    };
    Some(Ok((event, end + 2)))
}

/// The payload of a `/ws` delivery `{"type":"message",...,"data":".."}`.
pub fn ws_delivery(text: &str) -> Result<&[u8], String> {
    let bytes = text.as_bytes();
    if !text.starts_with(r#"{"type":"message""#) {
        return Err(format!("unexpected /ws message {}", excerpt(bytes)));
    }
    let i = find(bytes, br#""data":""#).ok_or_else(|| format!("no data in {}", excerpt(bytes)))?;
    string_at(bytes, i + br#""data":""#.len())
        .ok_or_else(|| format!("bad data in {}", excerpt(bytes)))
}

/// Checks the answer to a `join`: `{"type":"joined",...,"resume":"exact"}`.
pub fn ws_joined(text: &str) -> Result<(), String> {
    if text.starts_with(r#"{"type":"joined""#) && text.contains(r#""resume":"exact""#) {
        Ok(())
    } else {
        Err(format!("join answered {}", excerpt(text.as_bytes())))
    }
}

/// What Nchan says about a channel, answering a publish or a `GET` of the
/// publisher location with `Accept: text/json`:
/// `{"messages": 1, "requested": -1, "subscribers": 0, "last_message_id": "1796299787:0" }`.
#[derive(Debug, PartialEq, Eq)]
pub struct ChannelInfo {
    /// Subscribers of every kind, long polls held included.
    pub subscribers: u64,
    /// The id of the newest message: where subscribers resume from.
    pub last_message_id: String,
}

pub fn nchan_channel_info(body: &[u8]) -> Result<ChannelInfo, String> {
    let bad = |what: &str| format!("{what} in Nchan's channel info {}", excerpt(body));
    let key = br#""subscribers": "#;
    let at = find(body, key).ok_or_else(|| bad("no subscribers"))? + key.len();
    let digits = body[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    let subscribers = std::str::from_utf8(&body[at..at + digits])
        .ok()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| bad("a bad subscriber count"))?;
    let key = br#""last_message_id": ""#;
    let at = find(body, key).ok_or_else(|| bad("no last_message_id"))? + key.len();
    let id = string_at(body, at).ok_or_else(|| bad("a bad last_message_id"))?;
    Ok(ChannelInfo {
        subscribers,
        last_message_id: String::from_utf8_lossy(id).into_owned(),
    })
}

/// The JSON string starting at `at` (just after its opening quote), up to
/// the closing quote; `None` if it holds an escape or does not end.
fn string_at(buf: &[u8], at: usize) -> Option<&[u8]> {
    let rest = buf.get(at..)?;
    let len = rest.iter().position(|&b| b == b'"')?;
    let s = &rest[..len];
    (!s.contains(&b'\\')).then_some(s)
}

fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

/// The start of `bytes`, for error messages.
fn excerpt(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(200)];
    format!("{:?}", String::from_utf8_lossy(cut))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_answers() {
        let body = br#"{"channel":"c","resume":"exact","messages":[{"id":"a-1","data":"x"},{"id":"a-2","data":"yz"}],"next":"a-2"}"#;
        let answer = poll_answer(body).unwrap();
        assert_eq!(answer.messages, [&b"x"[..], &b"yz"[..]]);
        assert_eq!(answer.next, "a-2");
        let empty = br#"{"channel":"c","resume":"exact","messages":[],"next":"a-0"}"#;
        assert!(poll_answer(empty).unwrap().messages.is_empty());
        let gap =
            br#"{"channel":"c","resume":"gap","first_available":"a-5","messages":[],"next":"a-9"}"#;
        assert!(poll_answer(gap).is_err());
    }

    #[test]
    fn sse_events() {
        let buf = b"retry: 3000\n\nid: a-1\ndata: hello\n\n: heartbeat\n\nid: a-2\nda";
        let (event, n) = sse_event(buf).unwrap().unwrap();
        assert_eq!((event, n), (SseEvent::Control, 13));
        let (event, m) = sse_event(&buf[n..]).unwrap().unwrap();
        assert_eq!(event, SseEvent::Data(b"hello"));
        let (event, k) = sse_event(&buf[n + m..]).unwrap().unwrap();
        assert_eq!(event, SseEvent::Control);
        assert!(sse_event(&buf[n + m + k..]).is_none());
        assert!(sse_event(b"event: lagged\ndata: a-1\n\n").unwrap().is_err());
    }

    #[test]
    fn nchan_info() {
        let body = br#"{"messages": 1, "requested": -1, "subscribers": 250, "last_message_id": "1796299787:0" }"#;
        let info = nchan_channel_info(body).unwrap();
        assert_eq!(info.subscribers, 250);
        assert_eq!(info.last_message_id, "1796299787:0");
        assert!(nchan_channel_info(b"queued messages: 1").is_err());
        assert!(nchan_channel_info(br#"{"subscribers": x}"#).is_err());
    }

    #[test]
    fn ws_messages() {
        let text = r#"{"type":"message","channel":"c","id":"a-1","data":"hi"}"#;
        assert_eq!(ws_delivery(text).unwrap(), b"hi");
        assert!(ws_joined(r#"{"type":"joined","channel":"c","resume":"exact"}"#).is_ok());
        assert!(ws_joined(r#"{"type":"error","reason":"x"}"#).is_err());
    }
}
