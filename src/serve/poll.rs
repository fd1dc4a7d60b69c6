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

use super::json::{push_data, push_str};
use super::metrics::Transport;
use super::params::query_param;
use super::response::Response;
use super::App;
use crate::http::Request;
use crate::hub::{FormatKey, HubMessage, MessageId, Poll, Resume, Since};

/// Answers a short poll.
pub(crate) fn answer(app: &App, request: &Request, channel: &str) -> Response {
    let since = match since_param(request, Since::Beginning) {
        Ok(since) => since,
        Err(response) => return response,
    };
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
pub(crate) fn render(channel: &str, poll: &Poll, max_bytes: usize) -> (Response, MessageId) {
    let mut out = String::from("{\"channel\":");
    push_str(&mut out, channel);
    push_resume(&mut out, &poll.resume);
    out.push_str(",\"messages\":[");
    let mut next = poll.next;
    let mut more = poll.more;
    for (i, message) in poll.messages.iter().enumerate() {
        let item = message.encoded(FormatKey::JSON, encode_item);
        if i > 0 {
            if out.len() + 1 + item.len() > max_bytes {
                next = poll.messages[i - 1].id;
                more = true;
                break;
            }
            out.push(',');
        }
        out.push_str(std::str::from_utf8(&item).unwrap_or("null"));
    }
    out.push_str("],\"next\":");
    push_id(&mut out, Some(next));
    out.push_str(if more {
        ",\"more\":true}\n"
    } else {
        ",\"more\":false}\n"
    });
    let response = Response::json(200, out).header("Cache-Control", "no-store");
    (response, next)
}

/// Appends `,"resume":...` (and `first_available` for a gap): how a
/// starting point related to the history, in polls and `/ws` joins alike.
pub(crate) fn push_resume(out: &mut String, resume: &Resume) {
    out.push_str(",\"resume\":");
    match resume {
        Resume::Exact => out.push_str("\"exact\""),
        Resume::Gap { first_available } => {
            out.push_str("\"gap\",\"first_available\":");
            push_id(out, *first_available);
        }
        Resume::EpochChanged { .. } => out.push_str("\"epoch_changed\""),
        Resume::Ahead => out.push_str("\"ahead\""),
    }
}

fn push_id(out: &mut String, id: Option<MessageId>) {
    match id {
        Some(id) => {
            out.push('"');
            out.push_str(&id.to_string());
            out.push('"');
        }
        None => out.push_str("null"),
    }
}

/// One message as a JSON object, encoded once and shared by every poller.
fn encode_item(message: &HubMessage) -> bytes::Bytes {
    let mut out = format!("{{\"id\":\"{}\"", message.id);
    push_data(&mut out, &message.data);
    out.push('}');
    out.into()
}
