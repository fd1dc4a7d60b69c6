//! One destination of server-to-server push — a webhook or a WebSub
//! subscription — as the delivery task and the admin routes share it: its
//! place in the channel (the cursor), whether it is active, and the log of
//! its recent attempts.

use super::signature::WebhookSecret;
use super::url::CallbackUrl;
use crate::hub::MessageId;
use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use tokio::sync::Notify;

/// How long a rotated-out webhook secret still signs deliveries beside the
/// new one, so receivers can switch without losing any: 24 hours.
pub const ROTATION_OVERLAP_SECS: u64 = 24 * 3600;

/// The most attempts an endpoint's log keeps (`GET /webhooks/{id}/deliveries`).
pub const DELIVERY_LOG_LEN: usize = 100;

/// Which protocol an endpoint speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    Webhook,
    /// A WebSub subscription: `Link` headers and `X-Hub-Signature`.
    WebSub,
}

impl Kind {
    /// The label in metrics and logs: `webhook` or `websub`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Webhook => "webhook",
            Kind::WebSub => "websub",
        }
    }
}

/// How deliveries are signed.
#[derive(Clone)]
pub(crate) enum Signing {
    /// Standard Webhooks: the current secret, and during a rotation the
    /// previous one until a Unix time (deliveries carry both signatures).
    Webhook {
        /// Signs every delivery.
        current: WebhookSecret,
        /// Also signs deliveries until the time given.
        previous: Option<(WebhookSecret, u64)>,
    },
    /// WebSub: `X-Hub-Signature: sha256=…` with the subscriber's
    /// `hub.secret`, or nothing.
    WebSub(Option<Vec<u8>>),
}

impl Signing {
    /// The webhook secrets that sign a delivery made at `now`: the current
    /// one, and the previous one while its overlap lasts.
    pub fn webhook_secrets(&self, now: u64) -> Vec<WebhookSecret> {
        match self {
            Signing::Webhook { current, previous } => {
                let mut secrets = vec![current.clone()];
                if let Some((old, until)) = previous {
                    if now < *until {
                        secrets.push(old.clone());
                    }
                }
                secrets
            }
            Signing::WebSub(_) => Vec::new(),
        }
    }
}

/// What became of one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// A 2xx.
    Delivered,
    /// Anything else; retried if the schedule has a retry left.
    Failed,
    /// `410 Gone`: the endpoint is disabled (a WebSub subscription ends).
    Gone,
    /// Not an attempt: messages the channel's history no longer held when
    /// the endpoint came to them (its backlog overflowed), skipped.
    Missed,
}

impl AttemptOutcome {
    /// The label in JSON and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Delivered => "delivered",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::Gone => "gone",
            AttemptOutcome::Missed => "missed",
        }
    }
}

/// One entry of an endpoint's delivery log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// The message (for `Missed`: the first one still available, if any).
    pub message_id: Option<MessageId>,
    /// 1 for the first attempt of a message.
    pub attempt: u32,
    /// When, in Unix seconds.
    pub at: u64,
    /// The receiver's status, if it answered.
    pub status: Option<u16>,
    /// Why it failed, if it did without a status (or what was missed).
    pub error: Option<String>,
    /// What became of it.
    pub outcome: AttemptOutcome,
    /// When the next attempt is due, in Unix seconds, if there is one.
    pub next_retry: Option<u64>,
}

/// One endpoint. Shared by its delivery task and the registry.
pub(crate) struct Endpoint {
    pub id: String,
    pub kind: Kind,
    pub channel: String,
    pub url: CallbackUrl,
    pub created_at: u64,
    state: Mutex<State>,
    /// Woken when the lease or the secret changes, or the endpoint is
    /// disabled: the delivery task looks again.
    pub changed: Notify,
}

struct State {
    signing: Signing,
    /// The last message this endpoint is done with (delivered, or out of
    /// retries): the next delivery is the first message after it.
    cursor: MessageId,
    disabled: Option<String>,
    /// WebSub: when the lease ends, in Unix seconds.
    lease_expires: Option<u64>,
    log: VecDeque<Attempt>,
}

/// What the admin routes show of an endpoint.
#[derive(Clone, Debug)]
pub(crate) struct Snapshot {
    pub disabled: Option<String>,
    pub cursor: MessageId,
    pub lease_expires: Option<u64>,
}

impl Endpoint {
    pub fn new(
        id: String,
        kind: Kind,
        channel: String,
        url: CallbackUrl,
        created_at: u64,
        signing: Signing,
        cursor: MessageId,
    ) -> Endpoint {
        Endpoint {
            id,
            kind,
            channel,
            url,
            created_at,
            state: Mutex::new(State {
                signing,
                cursor,
                disabled: None,
                lease_expires: None,
                log: VecDeque::new(),
            }),
            changed: Notify::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every update is one assignment: a poisoned state is consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn signing(&self) -> Signing {
        self.state().signing.clone()
    }

    pub fn set_signing(&self, signing: Signing) {
        self.state().signing = signing;
    }

    pub fn cursor(&self) -> MessageId {
        self.state().cursor
    }

    pub fn set_cursor(&self, id: MessageId) {
        self.state().cursor = id;
    }

    pub fn lease_expires(&self) -> Option<u64> {
        self.state().lease_expires
    }

    pub fn set_lease_expires(&self, at: Option<u64>) {
        self.state().lease_expires = at;
        self.changed.notify_waiters();
    }

    /// Disables the endpoint (nothing more is sent); `false` if it already was.
    pub fn disable(&self, reason: String) -> bool {
        let first = {
            let mut state = self.state();
            let first = state.disabled.is_none();
            state.disabled.get_or_insert(reason);
            first
        };
        self.changed.notify_waiters();
        first
    }

    pub fn disabled(&self) -> Option<String> {
        self.state().disabled.clone()
    }

    /// Restores a stored endpoint's state.
    pub fn restore(&self, disabled: Option<String>, lease_expires: Option<u64>) {
        let mut state = self.state();
        state.disabled = disabled;
        state.lease_expires = lease_expires;
    }

    pub fn record(&self, attempt: Attempt) {
        let mut state = self.state();
        if state.log.len() == DELIVERY_LOG_LEN {
            state.log.pop_front();
        }
        state.log.push_back(attempt);
    }

    pub fn log(&self) -> Vec<Attempt> {
        self.state().log.iter().cloned().collect()
    }

    pub fn snapshot(&self) -> Snapshot {
        let state = self.state();
        Snapshot {
            disabled: state.disabled.clone(),
            cursor: state.cursor,
            lease_expires: state.lease_expires,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> Endpoint {
        let url = CallbackUrl::parse("http://example.com/hook").unwrap();
        let cursor = MessageId { epoch: 1, seq: 0 };
        let signing = Signing::WebSub(None);
        Endpoint::new(
            "wh_1".into(),
            Kind::Webhook,
            "news".into(),
            url,
            0,
            signing,
            cursor,
        )
    }

    fn attempt(n: u32) -> Attempt {
        Attempt {
            message_id: None,
            attempt: n,
            at: 0,
            status: Some(500),
            error: None,
            outcome: AttemptOutcome::Failed,
            next_retry: None,
        }
    }

    #[test]
    fn the_log_keeps_the_newest_entries() {
        let endpoint = endpoint();
        for n in 0..(DELIVERY_LOG_LEN as u32 + 5) {
            endpoint.record(attempt(n));
        }
        let log = endpoint.log();
        assert_eq!(log.len(), DELIVERY_LOG_LEN);
        assert_eq!(log[0].attempt, 5);
        assert_eq!(log.last().unwrap().attempt, DELIVERY_LOG_LEN as u32 + 4);
    }

    #[test]
    fn a_rotated_out_secret_signs_until_its_overlap_ends() {
        let (old, new) = (WebhookSecret::generate(), WebhookSecret::generate());
        let signing = Signing::Webhook {
            current: new.clone(),
            previous: Some((old.clone(), 1000)),
        };
        let sign = |secrets: Vec<WebhookSecret>| -> Vec<String> {
            secrets.iter().map(|s| s.sign("m", 1, b"x")).collect()
        };
        assert_eq!(
            sign(signing.webhook_secrets(999)),
            sign(vec![new.clone(), old])
        );
        assert_eq!(sign(signing.webhook_secrets(1000)), sign(vec![new]));
        assert!(Signing::WebSub(None).webhook_secrets(0).is_empty());
    }

    #[test]
    fn disabling_keeps_the_first_reason() {
        let endpoint = endpoint();
        assert!(endpoint.disable("410 Gone".into()));
        assert!(!endpoint.disable("later".into()));
        assert_eq!(endpoint.disabled().as_deref(), Some("410 Gone"));
    }
}
