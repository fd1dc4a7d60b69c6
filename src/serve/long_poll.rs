//! Long polling, the hanging GET: `GET /channels/{name}/long-poll?since=ID&timeout=S`
//! is held until a message newer than ID exists, then answered like a short
//! poll; after the timeout (default 30 s, at most `long_poll_max`) it gets
//! the same answer with no messages. Without `since` it waits for the next
//! message published. Any number of requests may wait on a channel.
//!
//! A poll with an identity keeps it present in the channel while it is
//! held, and leases its presence for `PresenceConfig::lease` when it is
//! answered (the [`presence`](crate::hub::presence) module), so a client
//! that polls again in time never appears to leave.

use std::time::Duration;

use super::metrics::Transport;
use super::params::query_param;
use super::poll::{answered, render, since_param};
use super::response::Response;
use super::routes::{broker_error, hub_error};
use super::App;
use crate::http::Request;
use crate::hub::{HubError, Since};

/// Answers a long poll once something arrives, the timeout passes, or the
/// server shuts down.
pub(crate) async fn answer(
    app: &App,
    request: &Request,
    channel: &str,
    identity: Option<&str>,
) -> Response {
    let since = match since_param(request, Since::Live) {
        Ok(since) => since,
        Err(response) => return response,
    };
    let timeout = match query_param(request.query(), "timeout") {
        None => app.config.long_poll_timeout,
        Some(text) => match text.parse::<u64>() {
            Ok(secs) => Duration::from_secs(secs).min(app.config.long_poll_max),
            Err(_) => return Response::error(400, "invalid timeout: expected whole seconds"),
        },
    };
    if let Err(e) = app.broker.attach(channel).await {
        return broker_error(&e);
    }
    let presence = app.hub.presence();
    let _present = identity.and_then(|me| presence.hold(channel, me));
    let mut shutdown = app.shutdown.clone();
    let max = app.config.poll_max_messages;
    let waited = tokio::select! {
        waited = app.hub.wait_after(channel, since, max, timeout) => waited,
        _ = shutdown.changed() => Err(HubError::Shutdown),
    };
    let poll = match waited {
        Ok(poll) => poll,
        // Held requests end cleanly at shutdown: answer with what exists now.
        Err(HubError::Shutdown) => app.hub.history_after(channel, since, max),
        Err(e) => return hub_error(&e),
    };
    if let Some(me) = identity {
        // Leased before the hold ends: the member stays listed between polls.
        presence.touch(channel, me, tokio::time::Instant::now());
    }
    let (response, next) = render(channel, &poll, app.config.poll_max_bytes);
    app.metrics
        .delivered(Transport::LongPoll, answered(&poll, next));
    response
}
