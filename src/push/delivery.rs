//! The delivery task of one endpoint: a hub subscriber that POSTs each
//! message of its channel to the endpoint, in publish order, retrying on
//! the schedule, and moves its cursor past a message only once it is
//! delivered or out of retries.
//!
//! The backlog is the channel itself: the task's subscription queue (the
//! hub's per-subscriber bound in messages and bytes) and, past it, the
//! channel's history. An endpoint that falls further behind than both is
//! dropped by the hub like any slow subscriber; it subscribes again from
//! its cursor, and whatever the history no longer holds is skipped and
//! logged as `missed`. A failing endpoint never holds up a publisher,
//! another endpoint or a browser transport: each has its own task and its
//! own place in the channel.

use super::client::OutboundRequest;
use super::endpoint::{Attempt, AttemptOutcome, Endpoint, Kind, Signing};
use super::schedule::{parse_retry_after, Outcome};
use super::service::Inner;
use super::signature::{hub_signature, signature_header};
use crate::hub::{Closed, HubError, HubMessage, Resume, Since};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long the task waits before subscribing again after the broker
/// refused (Redis unreachable).
const RESUBSCRIBE_PAUSE: Duration = Duration::from_secs(1);

/// The time now, in Unix seconds.
pub(crate) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The `Content-Type` a payload is delivered with. The hub keeps no
/// content type, so it is told from the bytes: JSON if they parse as
/// JSON, UTF-8 text otherwise, else binary.
pub fn content_type(payload: &[u8]) -> &'static str {
    if serde_json::from_slice::<serde::de::IgnoredAny>(payload).is_ok() {
        "application/json"
    } else if std::str::from_utf8(payload).is_ok() {
        "text/plain; charset=utf-8"
    } else {
        "application/octet-stream"
    }
}

/// Why the task stopped.
enum Stop {
    /// Disabled (410), unsubscribed or expired: the registry drops it.
    Finished,
    /// The hub shut down.
    Shutdown,
}

/// Runs `endpoint`'s deliveries until it is disabled, its lease ends, or
/// the hub shuts down. Aborted by the registry when the endpoint is
/// deleted: every await is a safe place to stop.
pub(crate) async fn run(inner: Arc<Inner>, endpoint: Arc<Endpoint>) {
    match deliver_all(&inner, &endpoint).await {
        Stop::Finished => inner.finished(&endpoint),
        Stop::Shutdown => {}
    }
}

async fn deliver_all(inner: &Inner, endpoint: &Endpoint) -> Stop {
    loop {
        if endpoint.disabled().is_some() {
            return Stop::Finished;
        }
        let since = Since::After(endpoint.cursor());
        let subscribed = match inner.broker.attach(&endpoint.channel).await {
            Ok(()) => inner.broker.hub().subscribe(&endpoint.channel, since),
            Err(e) => {
                tracing::debug!(endpoint = %endpoint.id, error = %e, "push: cannot attach the channel");
                tokio::time::sleep(RESUBSCRIBE_PAUSE).await;
                continue;
            }
        };
        let mut subscription = match subscribed {
            Ok(subscription) => subscription,
            Err(HubError::Shutdown) => return Stop::Shutdown,
            Err(e) => {
                tracing::debug!(endpoint = %endpoint.id, error = %e, "push: cannot subscribe");
                tokio::time::sleep(RESUBSCRIBE_PAUSE).await;
                continue;
            }
        };
        note_resume(inner, endpoint, subscription.resume());
        loop {
            let next = tokio::select! {
                next = subscription.recv() => next,
                stop = until_finished(endpoint) => return stop,
            };
            match next {
                Ok(message) => {
                    if let Some(stop) = deliver(inner, endpoint, &message).await {
                        return stop;
                    }
                    endpoint.set_cursor(message.id);
                    inner.store_cursor(endpoint);
                }
                Err(Closed::Shutdown) => return Stop::Shutdown,
                // Fell behind, or the channel was reset: again from the cursor.
                Err(Closed::Lagged | Closed::Reset) => break,
            }
        }
    }
}

/// Logs what a fresh subscription's starting point says was lost.
fn note_resume(inner: &Inner, endpoint: &Endpoint, resume: Resume) {
    let (first, why) = match resume {
        Resume::Exact | Resume::Ahead => return,
        Resume::Gap { first_available } => (
            first_available,
            "messages left the channel's history before they could be delivered".to_owned(),
        ),
        Resume::EpochChanged { current } => (
            None,
            format!("the channel's history started over (epoch {current:08x})"),
        ),
    };
    tracing::warn!(endpoint = %endpoint.id, channel = %endpoint.channel, "push: {why}");
    inner.stats.missed.fetch_add(1, Relaxed);
    endpoint.record(Attempt {
        message_id: first,
        attempt: 0,
        at: now_unix(),
        status: None,
        error: Some(why),
        outcome: AttemptOutcome::Missed,
        next_retry: None,
    });
}

/// Resolves when the endpoint is disabled or its lease has ended.
async fn until_finished(endpoint: &Endpoint) -> Stop {
    loop {
        let changed = endpoint.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        if endpoint.disabled().is_some() {
            return Stop::Finished;
        }
        match endpoint.lease_expires() {
            Some(at) => {
                let left = Duration::from_secs(at.saturating_sub(now_unix()));
                if left.is_zero() {
                    endpoint.disable("the lease ended".to_owned());
                    return Stop::Finished;
                }
                let _ = tokio::time::timeout(left, changed).await;
            }
            None => changed.await,
        }
    }
}

/// Delivers one message, with its retries. `None` when the endpoint is
/// done with it (delivered, or out of retries) and goes on.
async fn deliver(inner: &Inner, endpoint: &Endpoint, message: &HubMessage) -> Option<Stop> {
    // Told from the payload once, not at every retry.
    let content_type = content_type(&message.data);
    let mut failures = 0;
    loop {
        let attempt = failures + 1;
        let sent = tokio::select! {
            sent = attempt_once(inner, endpoint, message, content_type) => sent,
            stop = until_finished(endpoint) => return Some(stop),
        };
        let now = now_unix();
        let mut entry = Attempt {
            message_id: Some(message.id),
            attempt: attempt as u32,
            at: now,
            status: sent.status,
            error: sent.error.clone(),
            outcome: AttemptOutcome::Failed,
            next_retry: None,
        };
        let outcome = sent.status.map_or(Outcome::Failure, Outcome::from_status);
        let kind = endpoint.kind;
        match outcome {
            Outcome::Success => {
                entry.outcome = AttemptOutcome::Delivered;
                endpoint.record(entry);
                inner.stats.count(kind, AttemptOutcome::Delivered);
                tracing::debug!(endpoint = %endpoint.id, id = %message.id, attempt, status = sent.status, "push: delivered");
                return None;
            }
            Outcome::Gone => {
                entry.outcome = AttemptOutcome::Gone;
                endpoint.record(entry);
                inner.stats.count(kind, AttemptOutcome::Gone);
                tracing::warn!(endpoint = %endpoint.id, url = %endpoint.url, "push: 410 Gone, endpoint disabled");
                inner.disable(endpoint, "the receiver answered 410 Gone");
                return Some(Stop::Finished);
            }
            Outcome::Failure => {}
        }
        failures += 1;
        inner.stats.count(kind, AttemptOutcome::Failed);
        let wait =
            inner
                .config
                .retry_schedule
                .next_retry(failures, sent.retry_after, rand::random());
        entry.next_retry = wait.map(|w| now + w.as_secs_f64().ceil() as u64);
        endpoint.record(entry);
        let error = sent.error.as_deref().unwrap_or("");
        let Some(wait) = wait else {
            tracing::warn!(endpoint = %endpoint.id, id = %message.id, attempt, status = sent.status, error, "push: out of retries, message dropped for this endpoint");
            return None;
        };
        tracing::info!(endpoint = %endpoint.id, id = %message.id, attempt, status = sent.status, error, retry_in = ?wait, "push: attempt failed");
        let _pending = inner.stats.retry_pending();
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            stop = until_finished(endpoint) => return Some(stop),
        }
    }
}

/// What one attempt gave.
struct Sent {
    status: Option<u16>,
    error: Option<String>,
    retry_after: Option<Duration>,
}

async fn attempt_once(
    inner: &Inner,
    endpoint: &Endpoint,
    message: &HubMessage,
    content_type: &str,
) -> Sent {
    let request = request_for(inner, endpoint, message, content_type);
    // Bounded concurrency: at most this many requests in flight in all.
    let _permit = inner.in_flight.acquire().await;
    match inner.client.send(&request).await {
        Ok(response) => Sent {
            status: Some(response.status),
            error: None,
            retry_after: response
                .headers
                .get("Retry-After")
                .and_then(|v| parse_retry_after(v, now_unix())),
        },
        Err(e) => Sent {
            status: None,
            error: Some(e.to_string()),
            retry_after: None,
        },
    }
}

/// The POST of `message` to `endpoint`, signed as its protocol says.
fn request_for(
    inner: &Inner,
    endpoint: &Endpoint,
    message: &HubMessage,
    content_type: &str,
) -> OutboundRequest {
    let body = message.data.clone();
    let request = OutboundRequest::post(endpoint.url.clone(), body.clone())
        .header("Content-Type", content_type)
        .header("User-Agent", concat!("rtwire/", env!("CARGO_PKG_VERSION")));
    match (endpoint.kind, endpoint.signing()) {
        (Kind::Webhook, signing @ Signing::Webhook { .. }) => {
            let id = message.id.to_string();
            let timestamp = now_unix();
            let secrets = signing.webhook_secrets(timestamp);
            let signature = signature_header(&secrets, &id, timestamp, &body);
            request
                .header("webhook-id", id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signature)
                .header("rtwire-channel", endpoint.channel.clone())
        }
        (_, signing) => {
            let topic = inner.topic_url(&endpoint.channel);
            let mut request = request
                .header("Link", format!("<{}>; rel=\"hub\"", inner.hub_url()))
                .header("Link", format!("<{topic}>; rel=\"self\""));
            if let Signing::WebSub(Some(secret)) = signing {
                request = request.header("X-Hub-Signature", hub_signature(&secret, &body));
            }
            request
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_follow_the_payload() {
        assert_eq!(content_type(br#"{"a": 1}"#), "application/json");
        assert_eq!(content_type(b"[1, 2]"), "application/json");
        assert_eq!(content_type(b"hello world"), "text/plain; charset=utf-8");
        assert_eq!(content_type(b"{not json"), "text/plain; charset=utf-8");
        assert_eq!(
            content_type("h\u{e9}".as_bytes()),
            "text/plain; charset=utf-8"
        );
        assert_eq!(content_type(b"\xff\xfe"), "application/octet-stream");
        assert_eq!(content_type(b""), "text/plain; charset=utf-8");
    }
}
