//! Short polling: `GET /channels/{name}/poll?since=ID` answers at once with
//! the messages newer than ID (all the history without `since`), as JSON:
//!
//! ```text
//! {"channel":"room","resume":"exact","messages":[{"id":"1a2b3c4d-7","data":"hi"}],"next":"1a2b3c4d-7","more":false}
//! ```
//!
//! `next` is the id to ask from next time; `more` says whether messages
//! after it are already waiting (the answer stopped at `poll_max_bytes` or
//! `poll_max_messages`): ask again at once. `resume` is `exact`, or `gap`
//! (with `first_available`: older messages were evicted from the history),
//! `epoch_changed` (the server restarted; ids start over) or `ahead` (the id
//! is newer than anything published). Each answer carries an `ETag`; a
//! repeated `If-None-Match` with nothing new gets 304.
//!
//! A poll with an identity leases its presence in the channel for
//! `PresenceConfig::lease` (the [`presence`](crate::hub::presence) module).

use serde::Serialize;

use super::json::{self, encode_poll_item, JsonId, ResumeFields};
use super::metrics::Transport;
use super::params::query_param;
use super::response::Response;
use super::routes::broker_error;
use super::App;
use crate::http::Request;
use crate::hub::{FormatKey, MessageId, Poll, Since};

/// Answers a short poll.
pub(crate) async fn answer(
    app: &App,
    request: &Request,
    channel: &str,
    identity: Option<&str>,
) -> Response {
    let since = match since_param(request, Since::Beginning) {
        Ok(since) => since,
        Err(response) => return response,
    };
    if let Err(e) = app.broker.attach(channel).await {
        return broker_error(&e);
    }
    if let Some(me) = identity {
        app.hub
            .presence()
            .touch(channel, me, tokio::time::Instant::now());
    }
    let poll = app
        .hub
        .history_after(channel, since, app.config.poll_max_messages);
    let (response, next) = render(channel, &poll, app.config.poll_max_bytes);
    let etag = format!("\"{next}\"");
    if request.headers.get("if-none-match") == Some(etag.as_str()) {
        return Response::new(304, "application/json", "").header("ETag", etag);
    }
    app.metrics
        .delivered(Transport::Poll, answered(&poll, next));
    response.header("ETag", etag)
}

/// How many of `poll`'s messages an answer that tells the client to ask
/// from `next` carried: those up to `next`.
pub(crate) fn answered(poll: &Poll, next: MessageId) -> usize {
    poll.messages
        .iter()
        .position(|m| m.id == next)
        .map_or(0, |i| i + 1)
}

/// The `since` query parameter: absent gives `default`, garbage is a 400.
pub(crate) fn since_param(request: &Request, default: Since) -> Result<Since, Response> {
    match query_param(request.query(), "since") {
        None => Ok(default),
        Some(text) => text
            .parse::<MessageId>()
            .map(Since::After)
            .map_err(|_| Response::error(400, "invalid since: expected an id like 1a2b3c4d-7")),
    }
}

/// The JSON answer shared by short and long polling, and the id it tells
/// the client to ask from next. Messages go in until the body would pass
/// `max_bytes` (one always goes); if any are left, `"more":true`.
///
/// The items are encoded once per message and shared by every poller, so
/// the answer is put together from them here rather than serialized whole:
/// each is copied once, and none is encoded again to learn its size.
pub(crate) fn render(channel: &str, poll: &Poll, max_bytes: usize) -> (Response, MessageId) {
    #[derive(Serialize)]
    struct Head<'a> {
        channel: &'a str,
        #[serde(flatten)]
        resume: ResumeFields<'a>,
    }
    #[derive(Serialize)]
    struct Tail {
        next: JsonId,
        more: bool,
    }
    // `{"channel":…,"resume":…` + `,"messages":[…]` + `,"next":…,"more":…}`:
    // two serialized objects, opened and closed around the items.
    let mut out = json::to_vec(&Head {
        channel,
        resume: ResumeFields(&poll.resume),
    });
    out.pop(); // its closing brace
    out.extend_from_slice(b",\"messages\":[");
    let mut next = poll.next;
    let mut more = poll.more;
    for (i, message) in poll.messages.iter().enumerate() {
        let item = message.encoded(FormatKey::JSON, encode_poll_item);
        if i > 0 {
            if out.len() + 1 + item.len() > max_bytes {
                next = poll.messages[i - 1].id;
                more = true;
                break;
            }
            out.push(b',');
        }
        out.extend_from_slice(&item);
    }
    out.extend_from_slice(b"],");
    let tail = json::to_vec(&Tail {
        next: JsonId(next),
        more,
    });
    out.extend_from_slice(&tail[1..]); // past its opening brace
    out.push(b'\n');
    let response = Response::json(200, out).header("Cache-Control", "no-store");
    (response, next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::Hub;
    use base64::Engine;
    use bytes::Bytes;
    use proptest::prelude::*;

    fn payload_of(item: &serde_json::Value) -> Vec<u8> {
        match (item.get("data"), item.get("data_b64")) {
            (Some(serde_json::Value::String(text)), None) => text.clone().into_bytes(),
            (None, Some(serde_json::Value::String(b64))) => {
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap()
            }
            other => panic!("no single payload: {other:?}"),
        }
    }

    fn json_id(id: MessageId) -> serde_json::Value {
        serde_json::Value::String(id.to_string())
    }

    proptest! {
        #[test]
        fn answers_are_json_holding_a_prefix_of_the_messages(
            payloads in proptest::collection::vec(
                prop_oneof![
                    proptest::collection::vec(any::<u8>(), 0..200),
                    any::<String>().prop_map(String::into_bytes),
                ],
                0..12,
            ),
            max_bytes in 0usize..2000,
            channel in "[a-z:]{1,10}",
        ) {
            let hub = Hub::new();
            for data in &payloads {
                hub.publish(&channel, Bytes::from(data.clone()), None).unwrap();
            }
            let poll = hub.history_after(&channel, Since::Beginning, 1000);
            let (response, next) = render(&channel, &poll, max_bytes);
            let body = &response.body;
            prop_assert_eq!(body.last(), Some(&b'\n'));
            let answer: serde_json::Value = serde_json::from_slice(body).unwrap();
            prop_assert_eq!(&answer["channel"], channel.as_str());
            prop_assert_eq!(&answer["resume"], "exact");
            let messages = answer["messages"].as_array().unwrap();
            let sent = messages.len();
            prop_assert!(sent <= payloads.len());
            prop_assert!(sent >= 1.min(payloads.len()), "one message always goes");
            for (i, item) in messages.iter().enumerate() {
                prop_assert_eq!(&item["id"], &json_id(poll.messages[i].id));
                prop_assert_eq!(payload_of(item), payloads[i].clone());
            }
            prop_assert_eq!(&answer["next"], &json_id(next));
            if sent > 0 {
                prop_assert_eq!(next, poll.messages[sent - 1].id);
            }
            prop_assert_eq!(&answer["more"], sent < payloads.len());
            if sent > 1 {
                // The bound: the body short of its `next` and `more`.
                let tail = format!("],\"next\":\"{next}\",\"more\":{}}}\n", sent < payloads.len());
                prop_assert!(body.len() - tail.len() <= max_bytes);
            }
        }
    }
}
