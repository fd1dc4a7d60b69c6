//! The push service: the registry of webhooks and WebSub subscriptions,
//! one delivery task each, fed by the hub; what the admin routes and the
//! hub route of `rtwire serve` call.

use super::client::{Client, ClientConfig};
use super::delivery::{self, now_unix};
use super::endpoint::{AttemptOutcome, Endpoint, Kind, Signing};
use super::schedule::RetrySchedule;
use super::signature::WebhookSecret;
use super::store::{Store, Stored};
use super::url::{resolve_checked, CallbackUrl, ResolveError};
use super::webhook::{AttemptView, NewWebhook, WebhookView};
use super::websub::{self, LeaseLimits, Mode};
use crate::hub::{Broker, MessageId, Since};
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::AbortHandle;

/// How long the SSRF check of a registration may take to resolve its name.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Push's settings. Every count has a limit.
#[derive(Clone)]
#[non_exhaustive]
pub struct PushConfig {
    /// The bearer token of the admin routes (`/webhooks…`). Required: push
    /// is off without one.
    pub admin_token: String,
    /// The base of topic and hub URLs (`{base}/channels/NAME`,
    /// `{base}/websub`), without a trailing `/`. Default `None`:
    /// `http://ADDR` as the server listens.
    pub public_url: Option<String>,
    /// Deliver to loopback, private, link-local... addresses too (tests,
    /// local setups). Default false: the SSRF guard refuses them.
    pub allow_private_callbacks: bool,
    /// The waits before retries. Default: Standard Webhooks' schedule.
    pub retry_schedule: RetrySchedule,
    /// How long one delivery may take, connecting included; past it, it
    /// failed. Default 15 s.
    pub request_timeout: Duration,
    /// WebSub leases.
    pub leases: LeaseLimits,
    /// Webhooks at most. Default 1,000.
    pub max_webhooks: usize,
    /// WebSub subscriptions at most. Default 10,000.
    pub max_subscriptions: usize,
    /// Deliveries in flight at once, over all endpoints (each endpoint has
    /// at most one). Default 256.
    pub max_in_flight: usize,
    /// WebSub verifications of intent in flight at once; past it, requests
    /// get 503. Default 64.
    pub max_verifications: usize,
}

impl PushConfig {
    /// Push with this admin token and the defaults.
    pub fn new(admin_token: impl Into<String>) -> PushConfig {
        PushConfig {
            admin_token: admin_token.into(),
            public_url: None,
            allow_private_callbacks: false,
            retry_schedule: RetrySchedule::standard(),
            request_timeout: Duration::from_secs(15),
            leases: LeaseLimits::default(),
            max_webhooks: 1_000,
            max_subscriptions: 10_000,
            max_in_flight: 256,
            max_verifications: 64,
        }
    }
}

/// Every field but the token.
impl fmt::Debug for PushConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushConfig")
            .field("admin_token", &"<redacted>")
            .field("public_url", &self.public_url)
            .field("allow_private_callbacks", &self.allow_private_callbacks)
            .field("retry_schedule", &self.retry_schedule)
            .field("request_timeout", &self.request_timeout)
            .field("leases", &self.leases)
            .field("max_webhooks", &self.max_webhooks)
            .field("max_subscriptions", &self.max_subscriptions)
            .field("max_in_flight", &self.max_in_flight)
            .field("max_verifications", &self.max_verifications)
            .finish()
    }
}

/// Why push refused a request.
#[derive(Debug)]
#[non_exhaustive]
pub enum PushError {
    /// The caller's: the URL's destination is refused (the SSRF guard) or
    /// its name does not resolve.
    Refused(String),
    /// The limit of webhooks or subscriptions is reached, or of
    /// verifications in flight.
    Full(String),
    /// The broker cannot be reached: nothing was registered.
    Unavailable(String),
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushError::Refused(why) | PushError::Full(why) | PushError::Unavailable(why) => {
                f.write_str(why)
            }
        }
    }
}

impl std::error::Error for PushError {}

/// Deliveries of one kind, by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Outcomes {
    /// 2xx answers.
    pub delivered: u64,
    /// Failed attempts (each retry counts).
    pub failed: u64,
    /// 410 answers.
    pub gone: u64,
}

/// What push has done, for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PushStats {
    /// Webhook deliveries.
    pub webhook: Outcomes,
    /// WebSub distributions.
    pub websub: Outcomes,
    /// Times an endpoint found messages gone from the history before it
    /// came to them.
    pub missed: u64,
    /// Deliveries waiting for a retry now.
    pub retries_pending: u64,
    /// Endpoints disabled (410 Gone, or a lease that ended) since start.
    pub endpoints_disabled: u64,
    /// Webhooks registered now.
    pub webhooks: u64,
    /// WebSub subscriptions active now.
    pub subscriptions: u64,
    /// Verifications of intent that did not confirm.
    pub verifications_failed: u64,
}

#[derive(Default)]
pub(crate) struct Stats {
    /// By kind (webhook, websub), then delivered, failed, gone.
    outcomes: [[AtomicU64; 3]; 2],
    pub missed: AtomicU64,
    retries_pending: AtomicUsize,
    disabled: AtomicU64,
    verifications_failed: AtomicU64,
}

impl Stats {
    pub fn count(&self, kind: Kind, outcome: AttemptOutcome) {
        let row = &self.outcomes[kind as usize];
        let cell = match outcome {
            AttemptOutcome::Delivered => &row[0],
            AttemptOutcome::Failed => &row[1],
            AttemptOutcome::Gone => &row[2],
            AttemptOutcome::Missed => &self.missed,
        };
        cell.fetch_add(1, Relaxed);
    }

    /// Counts a retry as pending while the guard lives.
    pub fn retry_pending(&self) -> PendingRetry<'_> {
        self.retries_pending.fetch_add(1, Relaxed);
        PendingRetry(&self.retries_pending)
    }

    fn outcomes(&self, kind: Kind) -> Outcomes {
        let row = &self.outcomes[kind as usize];
        Outcomes {
            delivered: row[0].load(Relaxed),
            failed: row[1].load(Relaxed),
            gone: row[2].load(Relaxed),
        }
    }
}

pub(crate) struct PendingRetry<'a>(&'a AtomicUsize);

impl Drop for PendingRetry<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

struct Entry {
    endpoint: Arc<Endpoint>,
    task: AbortHandle,
}

#[derive(Default)]
struct Registry {
    by_id: HashMap<String, Entry>,
    /// WebSub subscriptions by (channel, callback URL): §5.1, a
    /// subscription is identified by its topic and callback.
    websub: HashMap<(String, String), String>,
    /// The newest request applied to each subscription, by the order the
    /// requests were accepted: a confirmation that arrives late never
    /// undoes a newer request's.
    applied: HashMap<(String, String), u64>,
}

impl Registry {
    /// Whether request number `seq` for `key` is newer than the last one
    /// applied; if so it becomes the last one.
    fn newest(&mut self, key: &(String, String), seq: u64) -> bool {
        match self.applied.get(key) {
            Some(last) if *last > seq => false,
            _ => {
                self.applied.insert(key.clone(), seq);
                true
            }
        }
    }
}

impl Registry {
    fn count(&self, kind: Kind) -> usize {
        match kind {
            Kind::WebSub => self.websub.len(),
            Kind::Webhook => self.by_id.len() - self.websub.len(),
        }
    }
}

/// What every delivery task shares.
pub(crate) struct Inner {
    pub config: PushConfig,
    base: String,
    pub broker: Broker,
    pub client: Client,
    pub stats: Stats,
    pub in_flight: Semaphore,
    verifying: Arc<Semaphore>,
    registry: Mutex<Registry>,
    /// Numbers WebSub requests in the order they are accepted.
    requests: AtomicU64,
    store: Store,
}

impl Inner {
    fn registry(&self) -> MutexGuard<'_, Registry> {
        // Every update is a whole insert or remove: consistent if poisoned.
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `{base}/channels/NAME`.
    pub fn topic_url(&self, channel: &str) -> String {
        format!("{}/channels/{channel}", self.base)
    }

    /// `{base}/websub`.
    pub fn hub_url(&self) -> String {
        format!("{}/websub", self.base)
    }

    /// Records the endpoint's new cursor where it survives a restart.
    pub fn store_cursor(&self, endpoint: &Endpoint) {
        self.store.save_cursor(&endpoint.id, endpoint.cursor());
    }

    /// Disables the endpoint: nothing more is sent to it.
    pub fn disable(&self, endpoint: &Endpoint, reason: &str) {
        if endpoint.disable(reason.to_owned()) {
            self.stats.disabled.fetch_add(1, Relaxed);
        }
        self.store.save(&stored(endpoint));
    }

    /// The delivery task has stopped for good: a WebSub subscription
    /// (ended by 410 or its lease) is forgotten; a webhook stays, disabled,
    /// for the admin to see and delete.
    pub fn finished(&self, endpoint: &Endpoint) {
        if endpoint.kind == Kind::Webhook {
            return;
        }
        if endpoint.lease_expires().is_some_and(|at| at <= now_unix()) {
            tracing::info!(endpoint = %endpoint.id, callback = %endpoint.url, "websub: lease ended");
            self.stats.disabled.fetch_add(1, Relaxed);
        }
        let mut registry = self.registry();
        let key = (endpoint.channel.clone(), endpoint.url.to_string());
        if registry.websub.get(&key) == Some(&endpoint.id) {
            registry.websub.remove(&key);
            registry.applied.remove(&key);
            registry.by_id.remove(&endpoint.id);
            self.store.remove(&endpoint.id);
        }
    }

    /// The id of the channel's newest message now: where a new endpoint
    /// starts (it gets every message published after this).
    async fn start_cursor(&self, channel: &str) -> Result<MessageId, PushError> {
        self.broker
            .attach(channel)
            .await
            .map_err(|e| PushError::Unavailable(e.to_string()))?;
        Ok(self
            .broker
            .hub()
            .history_after(channel, Since::Live, 0)
            .next)
    }

    /// Adds an endpoint to the registry and starts its task.
    fn start(self: &Arc<Self>, registry: &mut Registry, endpoint: Arc<Endpoint>) {
        let task = tokio::spawn(delivery::run(self.clone(), endpoint.clone()));
        if endpoint.kind == Kind::WebSub {
            let key = (endpoint.channel.clone(), endpoint.url.to_string());
            registry.websub.insert(key, endpoint.id.clone());
        }
        let entry = Entry {
            endpoint,
            task: task.abort_handle(),
        };
        if let Some(old) = registry.by_id.insert(entry.endpoint.id.clone(), entry) {
            old.task.abort();
        }
    }

    fn remove(&self, registry: &mut Registry, id: &str) -> Option<Arc<Endpoint>> {
        let entry = registry.by_id.remove(id)?;
        entry.task.abort();
        let endpoint = entry.endpoint;
        if endpoint.kind == Kind::WebSub {
            registry
                .websub
                .remove(&(endpoint.channel.clone(), endpoint.url.to_string()));
        }
        self.store.remove(id);
        Some(endpoint)
    }

    /// After a verified subscribe: the subscription is made, or renewed
    /// with its new lease and secret (§5.1: a re-subscription before
    /// expiry updates the same subscription).
    fn activate(
        self: &Arc<Self>,
        request: &websub::Request,
        seq: u64,
        lease: u64,
        cursor: MessageId,
    ) -> Result<(), String> {
        let key = (request.channel.clone(), request.callback.to_string());
        let expires = Some(now_unix().saturating_add(lease));
        let signing = Signing::WebSub(request.secret.clone());
        let mut registry = self.registry();
        if !registry.newest(&key, seq) {
            tracing::debug!(callback = %request.callback, "websub: a newer request was applied first; this one is dropped");
            return Ok(());
        }
        if let Some(id) = registry.websub.get(&key).cloned() {
            let current = registry.by_id.get(&id).map(|e| e.endpoint.clone());
            match current {
                Some(endpoint) if endpoint.disabled().is_none() => {
                    endpoint.set_signing(signing);
                    endpoint.set_lease_expires(expires);
                    self.store.save(&stored(&endpoint));
                    return Ok(());
                }
                _ => {
                    self.remove(&mut registry, &id);
                }
            }
        }
        if registry.count(Kind::WebSub) >= self.config.max_subscriptions {
            // No subscription, so nothing to order against: the map holds
            // one entry per subscription at most.
            registry.applied.remove(&key);
            return Err(format!(
                "the hub has its most subscriptions ({})",
                self.config.max_subscriptions
            ));
        }
        let endpoint = Endpoint::new(
            new_id("ws_"),
            Kind::WebSub,
            request.channel.clone(),
            request.callback.clone(),
            now_unix(),
            signing,
            cursor,
        );
        endpoint.restore(None, expires);
        let endpoint = Arc::new(endpoint);
        self.store.save(&stored(&endpoint));
        self.start(&mut registry, endpoint);
        Ok(())
    }

    /// After a verified unsubscribe.
    fn deactivate(&self, request: &websub::Request, seq: u64) {
        let key = (request.channel.clone(), request.callback.to_string());
        let mut registry = self.registry();
        if !registry.newest(&key, seq) {
            return;
        }
        registry.applied.remove(&key);
        if let Some(id) = registry.websub.get(&key).cloned() {
            self.remove(&mut registry, &id);
        }
    }
}

/// What the store keeps of an endpoint.
fn stored(endpoint: &Endpoint) -> Stored {
    let snapshot = endpoint.snapshot();
    Stored {
        id: endpoint.id.clone(),
        kind: endpoint.kind,
        channel: endpoint.channel.clone(),
        url: endpoint.url.to_string(),
        created_at: endpoint.created_at,
        signing: endpoint.signing(),
        cursor: snapshot.cursor,
        disabled: snapshot.disabled,
        lease_expires: snapshot.lease_expires,
    }
}

/// `prefix` and 96 random bits in hex.
fn new_id(prefix: &str) -> String {
    let bytes: [u8; 12] = rand::random();
    format!("{prefix}{}", super::signature::hex(&bytes))
}

/// Webhooks and the WebSub hub of one server. Cheap to clone.
#[derive(Clone)]
pub struct Push {
    inner: Arc<Inner>,
}

impl fmt::Debug for Push {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Push")
            .field("base", &self.inner.base)
            .finish_non_exhaustive()
    }
}

impl Push {
    /// Push over `broker`'s channels, with topics under `base` (used when
    /// `config.public_url` is `None`). Starts the delivery tasks of the
    /// endpoints `store` holds (none in memory); must be called within a
    /// tokio runtime.
    fn new(config: PushConfig, broker: Broker, base: &str, store: Store) -> Push {
        let base = config
            .public_url
            .as_deref()
            .unwrap_or(base)
            .trim_end_matches('/')
            .to_owned();
        let client = Client::new(ClientConfig {
            allow_private: config.allow_private_callbacks,
            timeout: config.request_timeout,
            ..ClientConfig::default()
        });
        let inner = Arc::new(Inner {
            in_flight: Semaphore::new(config.max_in_flight.max(1)),
            verifying: Arc::new(Semaphore::new(config.max_verifications.max(1))),
            config,
            base,
            broker,
            client,
            stats: Stats::default(),
            registry: Mutex::default(),
            requests: AtomicU64::new(0),
            store,
        });
        Push { inner }
    }

    /// Push over `broker`, its endpoints kept in `store`: those already
    /// there start delivering again from their cursors.
    pub(crate) async fn start(
        config: PushConfig,
        broker: Broker,
        base: &str,
        store: Store,
    ) -> std::io::Result<Push> {
        let stored = store.load().await?;
        let push = Push::new(config, broker, base, store);
        push.restore(stored);
        Ok(push)
    }

    /// Restarts the endpoints a durable store kept.
    fn restore(&self, stored: Vec<Stored>) {
        let inner = &self.inner;
        let mut registry = inner.registry();
        for s in stored {
            let Ok(url) = CallbackUrl::parse(&s.url) else {
                continue;
            };
            let endpoint = Endpoint::new(
                s.id,
                s.kind,
                s.channel,
                url,
                s.created_at,
                s.signing,
                s.cursor,
            );
            endpoint.restore(s.disabled, s.lease_expires);
            tracing::debug!(endpoint = %endpoint.id, "push: endpoint restored");
            inner.start(&mut registry, Arc::new(endpoint));
        }
    }

    /// The admin token.
    pub fn admin_token(&self) -> &str {
        &self.inner.config.admin_token
    }

    /// The topic URL of `channel`: `{base}/channels/NAME`.
    pub fn topic_url(&self, channel: &str) -> String {
        self.inner.topic_url(channel)
    }

    /// The hub URL: `{base}/websub`.
    pub fn hub_url(&self) -> String {
        self.inner.hub_url()
    }

    /// The base of topic URLs.
    pub fn base(&self) -> &str {
        &self.inner.base
    }

    /// The SSRF guard on a URL given by a caller, now (it is checked again
    /// at every connection, against rebinding).
    async fn check_destination(&self, url: &CallbackUrl) -> Result<(), PushError> {
        let allow = self.inner.config.allow_private_callbacks;
        match resolve_checked(url, allow, RESOLVE_TIMEOUT).await {
            Ok(_) => Ok(()),
            Err(e @ ResolveError::NotPublic { .. }) => Err(PushError::Refused(format!(
                "{url} refused: {e}; private callbacks are not allowed (--allow-private-callbacks)"
            ))),
            Err(e) => Err(PushError::Refused(format!("{url} refused: {e}"))),
        }
    }

    /// Registers a webhook; its answer holds the secret (generated if
    /// none was given), the one time it is shown.
    pub(crate) async fn create_webhook(&self, new: NewWebhook) -> Result<WebhookView, PushError> {
        self.check_destination(&new.url).await?;
        let inner = &self.inner;
        let cursor = inner.start_cursor(&new.channel).await?;
        let secret = new.secret.unwrap_or_else(WebhookSecret::generate);
        let endpoint = Arc::new(Endpoint::new(
            new_id("wh_"),
            Kind::Webhook,
            new.channel,
            new.url,
            now_unix(),
            Signing::Webhook {
                current: secret.clone(),
                previous: None,
            },
            cursor,
        ));
        let mut registry = inner.registry();
        if registry.count(Kind::Webhook) >= inner.config.max_webhooks {
            let most = inner.config.max_webhooks;
            return Err(PushError::Full(format!(
                "the server has its most webhooks ({most})"
            )));
        }
        inner.store.save(&stored(&endpoint));
        inner.start(&mut registry, endpoint.clone());
        tracing::info!(endpoint = %endpoint.id, channel = %endpoint.channel, url = %endpoint.url, "webhook registered");
        let mut view = view(&endpoint);
        view.secret = Some(secret.to_whsec());
        Ok(view)
    }

    fn webhook_endpoint(&self, id: &str) -> Option<Arc<Endpoint>> {
        let registry = self.inner.registry();
        let entry = registry.by_id.get(id)?;
        (entry.endpoint.kind == Kind::Webhook).then(|| entry.endpoint.clone())
    }

    /// Every webhook, oldest first.
    pub(crate) fn webhooks(&self) -> Vec<WebhookView> {
        let registry = self.inner.registry();
        let mut all: Vec<WebhookView> = registry
            .by_id
            .values()
            .filter(|e| e.endpoint.kind == Kind::Webhook)
            .map(|e| view(&e.endpoint))
            .collect();
        all.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        all
    }

    /// One webhook.
    pub(crate) fn webhook(&self, id: &str) -> Option<WebhookView> {
        self.webhook_endpoint(id).map(|e| view(&e))
    }

    /// Deletes a webhook (its delivery stops at once); `false` if none.
    pub(crate) fn delete_webhook(&self, id: &str) -> bool {
        if self.webhook_endpoint(id).is_none() {
            return false;
        }
        let mut registry = self.inner.registry();
        self.inner.remove(&mut registry, id).is_some()
    }

    /// Gives a webhook a new secret (`secret`, or a generated one), which
    /// signs every delivery from now on; the old one goes on signing beside
    /// it for [`ROTATION_OVERLAP_SECS`](super::endpoint::ROTATION_OVERLAP_SECS),
    /// so that `webhook-signature` carries both while receivers switch.
    /// The new secret, or `None` if there is no such webhook.
    pub(crate) fn rotate_secret(&self, id: &str, secret: Option<WebhookSecret>) -> Option<String> {
        let endpoint = self.webhook_endpoint(id)?;
        let Signing::Webhook { current, .. } = endpoint.signing() else {
            return None;
        };
        let new = secret.unwrap_or_else(WebhookSecret::generate);
        let until = now_unix().saturating_add(super::endpoint::ROTATION_OVERLAP_SECS);
        endpoint.set_signing(Signing::Webhook {
            current: new.clone(),
            previous: Some((current, until)),
        });
        self.inner.store.save(&stored(&endpoint));
        tracing::info!(endpoint = %id, "webhook secret rotated");
        Some(new.to_whsec())
    }

    /// A webhook's recent attempts, oldest first.
    pub(crate) fn deliveries(&self, id: &str) -> Option<Vec<AttemptView>> {
        let endpoint = self.webhook_endpoint(id)?;
        Some(endpoint.log().iter().map(AttemptView::from).collect())
    }

    /// Takes a WebSub (un)subscription request: checks its callback now,
    /// then verifies intent in the background (§5.3) and activates or
    /// removes the subscription if the subscriber confirms. `Ok` means
    /// "202 Accepted".
    pub(crate) async fn websub_request(&self, request: websub::Request) -> Result<(), PushError> {
        self.check_destination(&request.callback).await?;
        let inner = self.inner.clone();
        let permit = inner.verifying.clone().try_acquire_owned().map_err(|_| {
            PushError::Full("too many verifications in flight; try again".to_owned())
        })?;
        // Taken now: the subscription gets every message published after
        // its request was accepted, however long verification takes.
        let cursor = match request.mode {
            Mode::Subscribe => inner.start_cursor(&request.channel).await?,
            Mode::Unsubscribe => MessageId { epoch: 0, seq: 0 },
        };
        let lease = inner.config.leases.grant(request.lease_seconds);
        let seq = inner.requests.fetch_add(1, Relaxed);
        tokio::spawn(async move {
            // The permit is held to the end, a denial's GET included: at
            // most `max_verifications` requests to callbacks at once.
            let _permit = permit;
            let verified = websub::verify_intent(&inner.client, &request, lease).await;
            let callback = request.callback.to_string();
            if let Err(e) = verified {
                inner.stats.verifications_failed.fetch_add(1, Relaxed);
                tracing::info!(%callback, mode = request.mode.as_str(), error = %e, "websub: verification of intent failed");
                return;
            }
            match request.mode {
                Mode::Subscribe => match inner.activate(&request, seq, lease, cursor) {
                    Ok(()) => {
                        tracing::info!(%callback, channel = %request.channel, lease, "websub: subscribed")
                    }
                    Err(reason) => websub::tell_denied(&inner.client, &request, &reason).await,
                },
                Mode::Unsubscribe => {
                    inner.deactivate(&request, seq);
                    tracing::info!(%callback, channel = %request.channel, "websub: unsubscribed");
                }
            }
        });
        Ok(())
    }

    /// What push has done.
    pub fn stats(&self) -> PushStats {
        let inner = &self.inner;
        let (webhooks, subscriptions) = {
            let registry = inner.registry();
            (
                registry.count(Kind::Webhook) as u64,
                registry.count(Kind::WebSub) as u64,
            )
        };
        PushStats {
            webhook: inner.stats.outcomes(Kind::Webhook),
            websub: inner.stats.outcomes(Kind::WebSub),
            missed: inner.stats.missed.load(Relaxed),
            retries_pending: inner.stats.retries_pending.load(Relaxed) as u64,
            endpoints_disabled: inner.stats.disabled.load(Relaxed),
            webhooks,
            subscriptions,
            verifications_failed: inner.stats.verifications_failed.load(Relaxed),
        }
    }

    /// Stops every delivery task (at shutdown) and writes the store's
    /// last state: stored endpoints resume from there on the next start.
    pub(crate) async fn shutdown(&self) {
        {
            let registry = self.inner.registry();
            for entry in registry.by_id.values() {
                entry.task.abort();
            }
        }
        self.inner.store.close().await;
    }
}

fn view(endpoint: &Endpoint) -> WebhookView {
    let snapshot = endpoint.snapshot();
    let last_delivered = endpoint
        .log()
        .iter()
        .rev()
        .find(|a| a.outcome == AttemptOutcome::Delivered)
        .and_then(|a| a.message_id);
    WebhookView {
        id: endpoint.id.clone(),
        channel: endpoint.channel.clone(),
        url: endpoint.url.to_string(),
        secret: None,
        state: if snapshot.disabled.is_some() {
            "disabled"
        } else {
            "active"
        },
        disabled_reason: snapshot.disabled,
        created_at: endpoint.created_at,
        last_delivered: last_delivered.map(|id| id.to_string()),
    }
}
