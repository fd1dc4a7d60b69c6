//! Pub/sub: the core the HTTP push transports (WebSocket, SSE, long
//! polling, short polling) share. It knows nothing of HTTP or WebSocket
//! framing; it moves [`Bytes`] with ids.
//!
//! - **Channels** are created on first use (publish, subscribe, long poll)
//!   and hold a bounded history: the newest [`HubConfig::history_messages`]
//!   messages, fewer if their payloads exceed [`HubConfig::history_bytes`].
//! - **Ids**: every message gets a [`MessageId`] — the hub's random epoch
//!   (new on every restart) and a per-channel sequence number from 1,
//!   written `{epoch:08x}-{seq}`. The same message has the same id on
//!   every transport. Under a [`Broker`] other than memory, each channel
//!   has the epoch the broker keeps for it, and the hub mirrors the
//!   channel ([`Hub::apply`], [`Hub::sync`]) instead of numbering it.
//! - **Resuming**: a client asks for messages after the last id it saw
//!   ([`Since::After`]). What cannot be honoured is reported first and
//!   explicitly ([`Resume`]): evicted messages (a gap), another epoch (the
//!   server restarted), or an id from the future. Never silent loss.
//! - **Back-pressure**: each subscriber has a bounded queue. Publishing
//!   never waits: a subscriber whose queue is full is dropped with
//!   [`Closed::Lagged`] and can resubscribe from
//!   [`Subscription::resume_from`].
//! - **Polling**: [`Hub::history_after`] answers at once;
//!   [`Hub::wait_after`] waits until something newer exists or a timeout.
//! - **Encode once**: [`HubMessage::encoded`] caches each wire format of a
//!   message, so fan-out to many subscribers encodes it once per format.
//!
//! ## Sweeping
//!
//! [`Hub::sweep`], called periodically by the server, removes a channel
//! when nobody listens to it (no subscriber, no long-poll waiter) and it
//! holds nothing worth keeping: its history is empty, or its last message
//! is at least [`HubConfig::idle_timeout`] old. A channel created again
//! later numbers its messages above every id any swept channel handed out
//! (the hub keeps that one number, not the channel), so an id is never
//! reused for another message within an epoch: a client that resumes from
//! before the sweep is told [`Resume::Gap`], not fed the wrong messages.

mod broker;
mod channel;
mod id;
mod message;
mod mirror;
pub mod presence;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
mod subscription;

pub use broker::{Broker, BrokerStats, PublishError};
pub use channel::Poll;
pub use id::{MessageId, ParseIdError, Resume, SenderId, Since};
pub use message::{FormatKey, HubMessage};
pub use mirror::{Applied, Mirrored, Snapshot, Synced};
pub use presence::{Presence, PresenceConfig, PresenceHold};
use subscription::QueueLimits;
pub use subscription::{Closed, Subscription};

use bytes::Bytes;
use channel::{Channel, ChannelState};
use std::collections::HashMap;
use std::fmt;
use std::pin::pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::Ordering::{Acquire, Release};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;
use tokio::time::Instant;

/// The longest channel name accepted.
pub const MAX_CHANNEL_LEN: usize = 64;

/// Whether `name` is a valid channel name: 1 to 64 bytes of ASCII letters,
/// digits, `-`, `_`, `.` and `:`. (`user:NAME` is the private room of the
/// identity NAME.)
pub fn valid_channel(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_CHANNEL_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// The hub's limits. The defaults suit a public server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubConfig {
    /// The most messages a channel's history keeps (default 1000).
    pub history_messages: usize,
    /// The most bytes a channel's history keeps (default 16 MiB): payloads
    /// and the encoded forms cached by [`HubMessage::encoded`] for them,
    /// checked at every publish.
    pub history_bytes: usize,
    /// The most bytes all channels' histories keep together (default
    /// 256 MiB), counted as [`HubConfig::history_bytes`] is. Past it, a
    /// publish trims the histories of the least recently published
    /// channels, oldest messages first, to seven eighths of the bound, so
    /// one client publishing to many names cannot make the hub hold
    /// `max_channels` × `history_bytes`. A resume from a trimmed message is
    /// told [`Resume::Gap`], as after any eviction.
    pub history_bytes_total: usize,
    /// How many messages may wait in one subscriber's queue before it is
    /// dropped with [`Closed::Lagged`] (default 1024; at least 1).
    pub queue_capacity: usize,
    /// How many bytes (payloads and cached encodings) may wait in one
    /// subscriber's queue before it is dropped with [`Closed::Lagged`]
    /// (default 4 MiB). One message always fits, whatever its size.
    pub queue_bytes: usize,
    /// How long after its last message a channel nobody listens to may be
    /// swept (default 10 minutes).
    pub idle_timeout: Duration,
    /// The most channels at once (default 100 000). When the table is
    /// full, creating a channel first evicts channels nobody listens to
    /// (no subscriber, no long-poll waiter), least recently published
    /// first, a sixty-fourth of the table at a time, whatever their age:
    /// one client publishing to many names cannot lock others out. Only
    /// when every channel has a listener does creating one fail, with
    /// [`HubError::TooManyChannels`]. Evicted channels are forgotten as
    /// swept ones are (their ids are never reused).
    pub max_channels: usize,
    /// The largest payload [`Hub::publish`] accepts (default 16 MiB).
    pub max_message_bytes: usize,
    /// Who is in each channel ([`Hub::presence`]): its limits.
    pub presence: PresenceConfig,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            history_messages: 1000,
            history_bytes: 16 << 20,
            history_bytes_total: 256 << 20,
            queue_capacity: 1024,
            queue_bytes: 4 << 20,
            idle_timeout: Duration::from_secs(600),
            max_channels: 100_000,
            max_message_bytes: 16 << 20,
            presence: PresenceConfig::default(),
        }
    }
}

/// What can go wrong in the hub. Network input never causes these; they
/// are limits reached and the hub's own lifecycle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HubError {
    /// The channel does not exist and creating it would exceed
    /// [`HubConfig::max_channels`].
    TooManyChannels {
        /// The configured maximum.
        limit: usize,
    },
    /// The payload is larger than [`HubConfig::max_message_bytes`].
    MessageTooLarge {
        /// The payload's size.
        size: usize,
        /// The configured maximum.
        limit: usize,
    },
    /// The hub has been shut down ([`Hub::shutdown`]).
    Shutdown,
    /// The channel is numbered by a broker (Redis) and this hub only
    /// mirrors it: [`Hub::publish`] would hand out ids the broker gives to
    /// other messages. Publish through the [`Broker`].
    Mirrored,
}

impl fmt::Display for HubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HubError::TooManyChannels { limit } => write!(f, "too many channels (limit {limit})"),
            HubError::MessageTooLarge { size, limit } => {
                write!(f, "message of {size} bytes exceeds the limit of {limit}")
            }
            HubError::Shutdown => f.write_str("hub shut down"),
            HubError::Mirrored => f.write_str("channel mirrored from a broker: publish through it"),
        }
    }
}

impl std::error::Error for HubError {}

/// A snapshot of the hub's counters ([`Hub::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HubStats {
    /// Messages published since the hub was made.
    pub published: u64,
    /// Messages handed to subscribers: queued live, or replayed from the
    /// history when subscribing. Polls are not counted.
    pub delivered: u64,
    /// Subscribers dropped because their queue was full.
    pub lagged: u64,
    /// Subscriptions open now.
    pub subscribers: u64,
    /// Long polls waiting now.
    pub waiters: u64,
    /// Channels now.
    pub channels: usize,
    /// Bytes all histories hold now: payloads and the encodings cached
    /// for them (bounded by [`HubConfig::history_bytes_total`]).
    pub history_bytes: usize,
}

/// Options for [`Hub::subscribe_with`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SubscribeOptions {
    /// Where to start.
    pub since: Since,
    /// Skip messages published by this sender, in the history replay as
    /// well as live: "to everyone in the room except the sender".
    pub skip_sender: Option<SenderId>,
}

/// The hub's counters, shared with channels and subscriptions.
#[derive(Default)]
pub(crate) struct Counters {
    published: AtomicU64,
    delivered: AtomicU64,
    lagged: AtomicU64,
    subscribers: AtomicU64,
    waiters: AtomicU64,
    /// What every channel's history holds, in bytes; the messages in
    /// them charge their encodings here too.
    history_bytes: Arc<AtomicUsize>,
}

/// The channels by name, and what outlives a swept channel.
struct Registry {
    channels: HashMap<Arc<str>, Arc<Channel>>,
    /// The highest sequence number of any swept channel: new channels
    /// number their messages above it, so ids are never reused.
    seq_floor: u64,
    shut: bool,
}

struct Inner {
    config: HubConfig,
    epoch: u32,
    registry: RwLock<Registry>,
    counters: Arc<Counters>,
    next_sender: AtomicU64,
    /// A publish is trimming histories to the hub-wide bound; others
    /// need not.
    trimming: AtomicBool,
    presence: Presence,
}

/// The pub/sub hub: cheap to clone, every clone is the same hub.
///
/// ```
/// use bytes::Bytes;
/// use rtwire::hub::{Hub, Resume, Since};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let hub = Hub::new();
/// let first = hub.publish("chat", Bytes::from("hello"), None)?;
///
/// // A client that saw nothing yet: the history, then live messages.
/// let mut subscription = hub.subscribe("chat", Since::Beginning)?;
/// hub.publish("chat", Bytes::from("world"), None)?;
/// assert_eq!(subscription.recv().await?.data, "hello");
/// assert_eq!(subscription.recv().await?.data, "world");
///
/// // A polling client resuming after the first message.
/// let poll = hub.history_after("chat", Since::After(first.id), 100);
/// assert_eq!(poll.resume, Resume::Exact);
/// assert_eq!(poll.messages.len(), 1);
///
/// // A long poll that is up to date waits for the next message (or the timeout).
/// let waiter = tokio::spawn({
///     let hub = hub.clone();
///     async move { hub.wait_after("chat", Since::After(poll.next), 100, Duration::from_secs(30)).await }
/// });
/// while hub.stats().waiters == 0 {
///     tokio::task::yield_now().await;
/// }
/// hub.publish("chat", Bytes::from("!"), None)?;
/// assert_eq!(waiter.await??.messages[0].data, "!");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new()
    }
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub")
            .field("epoch", &format_args!("{:08x}", self.inner.epoch))
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// A hub with the default limits and a random epoch.
    pub fn new() -> Hub {
        Hub::with_config(HubConfig::default())
    }

    /// A hub with these limits and a random epoch.
    pub fn with_config(config: HubConfig) -> Hub {
        Hub::with_epoch(config, rand::random())
    }

    /// A hub with a chosen epoch, for tests (or to restore a known one).
    pub fn with_epoch(config: HubConfig, epoch: u32) -> Hub {
        let registry = Registry {
            channels: HashMap::new(),
            seq_floor: 0,
            shut: false,
        };
        let inner = Inner {
            presence: Presence::new(config.presence.clone()),
            config,
            epoch,
            registry: RwLock::new(registry),
            counters: Arc::default(),
            // Random high bits: sender ids travel between nodes through a
            // broker, and must not collide with another node's.
            next_sender: AtomicU64::new((u64::from(rand::random::<u32>()) << 32) | 1),
            trimming: AtomicBool::new(false),
        };
        Hub {
            inner: Arc::new(inner),
        }
    }

    /// Who is in each channel: identities held present by open
    /// connections or leased by polls (the [`presence`] module).
    pub fn presence(&self) -> &Presence {
        &self.inner.presence
    }

    /// The epoch every id of this hub carries (in memory mode; a broker
    /// gives each channel it mirrors the epoch it keeps for it).
    pub fn epoch(&self) -> u32 {
        self.inner.epoch
    }

    /// The limits.
    pub fn config(&self) -> &HubConfig {
        &self.inner.config
    }

    /// A sender id no other caller of this hub gets.
    pub fn new_sender_id(&self) -> SenderId {
        SenderId(self.inner.next_sender.fetch_add(1, Relaxed))
    }

    /// Publishes `data` to `channel` (created if need be), queues it to
    /// every subscriber, wakes every long poll, and returns it with its id.
    /// A channel a broker mirrors is refused ([`HubError::Mirrored`]): it
    /// is published through [`Broker::publish`].
    ///
    /// Never waits for a subscriber: those with a full queue are dropped
    /// with [`Closed::Lagged`].
    pub fn publish(
        &self,
        channel: &str,
        data: Bytes,
        sender: Option<SenderId>,
    ) -> Result<Arc<HubMessage>, HubError> {
        let limit = self.inner.config.max_message_bytes;
        if data.len() > limit {
            let size = data.len();
            return Err(HubError::MessageTooLarge { size, limit });
        }
        let inner = &*self.inner;
        let published = self.with_channel(channel, |channel, state| {
            if state.mirrored {
                return Err(HubError::Mirrored);
            }
            let message =
                state.publish(&channel.name, data, sender, &inner.config, &inner.counters);
            // Waiters register under this lock, so none is missed.
            if state.has_waiters() {
                channel.notify.notify_waiters();
            }
            Ok(message)
        });
        if inner.counters.history_bytes.load(Relaxed) > inner.config.history_bytes_total {
            self.trim_histories();
        }
        published
    }

    /// Trims the histories of the least recently published channels,
    /// oldest messages first, until all of them together hold at most
    /// seven eighths of [`HubConfig::history_bytes_total`]: one scan of
    /// the table frees at least an eighth of the bound.
    fn trim_histories(&self) {
        let inner = &*self.inner;
        if inner.trimming.swap(true, Acquire) {
            return;
        }
        let bound = inner.config.history_bytes_total;
        let target = bound - bound / 8;
        let held = || inner.counters.history_bytes.load(Relaxed);
        let mut oldest: Vec<(Instant, Arc<Channel>)> = self
            .registry()
            .channels
            .values()
            .filter_map(|channel| {
                let state = channel.lock();
                state
                    .has_history()
                    .then(|| (state.last_publish(), channel.clone()))
            })
            .collect();
        oldest.sort_unstable_by_key(|(at, _)| *at);
        for (_, channel) in oldest {
            if held() <= target {
                break;
            }
            let mut state = channel.lock();
            while held() > target && state.evict_oldest(&inner.counters) {}
        }
        inner.trimming.store(false, Release);
    }

    /// Subscribes to `channel` (created if need be) from `since`.
    pub fn subscribe(&self, channel: &str, since: Since) -> Result<Subscription, HubError> {
        self.subscribe_with(
            channel,
            SubscribeOptions {
                since,
                skip_sender: None,
            },
        )
    }

    /// Subscribes to `channel` (created if need be) with options.
    pub fn subscribe_with(
        &self,
        channel: &str,
        options: SubscribeOptions,
    ) -> Result<Subscription, HubError> {
        let inner = &*self.inner;
        let capacity = QueueLimits {
            messages: inner.config.queue_capacity.max(1),
            bytes: inner.config.queue_bytes,
        };
        self.with_channel(channel, |channel, state| {
            let SubscribeOptions { since, skip_sender } = options;
            let registration = state.subscribe(since, skip_sender, capacity);
            let counters = &inner.counters;
            counters.subscribers.fetch_add(1, Relaxed);
            let replayed = registration.backlog.len() as u64;
            counters.delivered.fetch_add(replayed, Relaxed);
            let counters = counters.clone();
            Ok(Subscription::new(channel.clone(), counters, registration))
        })
    }

    /// At most `max` messages of `channel` newer than `since`, at once.
    /// Does not create the channel.
    pub fn history_after(&self, channel: &str, since: Since, max: usize) -> Poll {
        let epoch = self.inner.epoch;
        loop {
            let registry = self.registry();
            let Some(channel) = registry.channels.get(channel).cloned() else {
                // A channel that does not exist numbers after the floor.
                return ChannelState::new(registry.seq_floor, epoch).poll(since, max);
            };
            drop(registry);
            let state = channel.lock();
            if !state.removed {
                return state.poll(since, max);
            }
        }
    }

    /// The newest message `channel`'s history holds, if any: what a
    /// WebSub topic URL serves. Does not create the channel.
    pub fn latest(&self, channel: &str) -> Option<Arc<HubMessage>> {
        let channel = self.registry().channels.get(channel).cloned()?;
        let state = channel.lock();
        state.newest()
    }

    /// Like [`Hub::history_after`], but if nothing newer than `since`
    /// exists yet, waits until something is published or `timeout`
    /// passes, then answers (with no messages after a timeout). Answers at
    /// once when the starting point is not [`Resume::Exact`], so the client
    /// learns of it. Creates the channel.
    ///
    /// Cancel-safe. Fails with [`HubError::Shutdown`] when the hub shuts
    /// down while waiting.
    pub async fn wait_after(
        &self,
        channel: &str,
        since: Since,
        max: usize,
        timeout: Duration,
    ) -> Result<Poll, HubError> {
        let deadline = deadline_after(timeout);
        let waiter = self.attach_waiter(channel)?;
        let channel = &waiter.channel;
        let mut since = since;
        loop {
            // Enabled before looking, so a publish in between still wakes us.
            let mut notified = pin!(channel.notify.notified());
            notified.as_mut().enable();
            {
                let state = channel.lock();
                if state.shut {
                    return Err(HubError::Shutdown);
                }
                let poll = state.poll(since, max);
                if poll.is_ready() || Instant::now() >= deadline {
                    return Ok(poll);
                }
                // `Live` means "after the newest now", not at each wake-up.
                since = Since::After(poll.next);
            }
            // Timing out just loops: the check above then answers.
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }

    /// Removes the channels nobody listens to that hold nothing worth
    /// keeping (see the [module docs](self)); returns how many.
    pub fn sweep(&self) -> usize {
        self.sweep_at(Instant::now())
    }

    /// [`Hub::sweep`] as if the time were `now`.
    pub fn sweep_at(&self, now: Instant) -> usize {
        let idle = self.inner.config.idle_timeout;
        // Look under the read lock first: most sweeps find nothing, and
        // must not stall publishers.
        let candidates: Vec<Arc<Channel>> = self
            .registry()
            .channels
            .values()
            .filter(|channel| channel.lock().is_idle(now, idle))
            .cloned()
            .collect();
        if candidates.is_empty() {
            return 0;
        }
        let mut registry = self.registry_mut();
        let counters = &self.inner.counters;
        remove_channels(&mut registry, counters, candidates, |state| {
            state.is_idle(now, idle)
        })
    }

    /// Shuts the hub down: every subscription ends with
    /// [`Closed::Shutdown`], every long poll fails with
    /// [`HubError::Shutdown`], and so do later publishes, subscriptions and
    /// long polls. [`Hub::history_after`] still answers.
    pub fn shutdown(&self) {
        let channels: Vec<Arc<Channel>> = {
            let mut registry = self.registry_mut();
            registry.shut = true;
            registry.channels.values().cloned().collect()
        };
        let counters = &self.inner.counters;
        for channel in channels {
            let mut state = channel.lock();
            state.shut = true;
            let closed = state.close_all(Closed::Shutdown) as u64;
            counters.subscribers.fetch_sub(closed, Relaxed);
            drop(state);
            channel.notify.notify_waiters();
        }
    }

    /// Whether [`Hub::shutdown`] was called.
    pub fn is_shut_down(&self) -> bool {
        self.registry().shut
    }

    /// How many channels exist.
    pub fn channel_count(&self) -> usize {
        self.registry().channels.len()
    }

    /// The counters, now.
    pub fn stats(&self) -> HubStats {
        let counters = &self.inner.counters;
        HubStats {
            published: counters.published.load(Relaxed),
            delivered: counters.delivered.load(Relaxed),
            lagged: counters.lagged.load(Relaxed),
            subscribers: counters.subscribers.load(Relaxed),
            waiters: counters.waiters.load(Relaxed),
            channels: self.channel_count(),
            history_bytes: counters.history_bytes.load(Relaxed),
        }
    }

    fn registry(&self) -> RwLockReadGuard<'_, Registry> {
        self.inner
            .registry
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn registry_mut(&self) -> RwLockWriteGuard<'_, Registry> {
        self.inner
            .registry
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn lookup(&self, name: &str) -> Option<Arc<Channel>> {
        self.registry().channels.get(name).cloned()
    }

    /// The channel named `name`, created if it does not exist and the
    /// limits allow.
    fn channel_or_create(&self, name: &str) -> Result<Arc<Channel>, HubError> {
        if let Some(channel) = self.lookup(name) {
            return Ok(channel);
        }
        let mut registry = self.registry_mut();
        if registry.shut {
            return Err(HubError::Shutdown);
        }
        if let Some(channel) = registry.channels.get(name) {
            return Ok(channel.clone());
        }
        let limit = self.inner.config.max_channels;
        let counters = &self.inner.counters;
        if registry.channels.len() >= limit
            && evict_unlistened(&mut registry, counters, limit / 64) == 0
        {
            return Err(HubError::TooManyChannels { limit });
        }
        let epoch = self.inner.epoch;
        let channel = Arc::new(Channel::new(Arc::from(name), registry.seq_floor, epoch));
        registry
            .channels
            .insert(channel.name.clone(), channel.clone());
        Ok(channel)
    }

    /// Runs `f` on the live channel `name` under its lock. A channel swept
    /// between lookup and lock is looked up again, so nothing lands in a
    /// channel that is no longer reachable.
    fn with_channel<T>(
        &self,
        name: &str,
        f: impl FnOnce(&Arc<Channel>, &mut ChannelState) -> Result<T, HubError>,
    ) -> Result<T, HubError> {
        loop {
            let channel = self.channel_or_create(name)?;
            let mut state = channel.lock();
            if state.removed {
                continue;
            }
            if state.shut {
                return Err(HubError::Shutdown);
            }
            return f(&channel, &mut state);
        }
    }

    /// Registers a long-poll waiter on `name`, which keeps the channel
    /// from being swept until the guard drops.
    fn attach_waiter(&self, name: &str) -> Result<WaiterGuard, HubError> {
        let counters = &self.inner.counters;
        self.with_channel(name, |channel, state| {
            state.add_waiter();
            counters.waiters.fetch_add(1, Relaxed);
            Ok(WaiterGuard {
                channel: channel.clone(),
                counters: counters.clone(),
            })
        })
    }
}

/// Removes up to `batch` (at least one) of the channels nobody listens
/// to, least recently published first; returns how many.
fn evict_unlistened(registry: &mut Registry, counters: &Counters, batch: usize) -> usize {
    let mut candidates: Vec<(Instant, Arc<Channel>)> = registry
        .channels
        .values()
        .filter_map(|channel| {
            let state = channel.lock();
            state
                .is_unlistened()
                .then(|| (state.last_publish(), channel.clone()))
        })
        .collect();
    let batch = batch.clamp(1, candidates.len().max(1));
    if candidates.len() > batch {
        candidates.select_nth_unstable_by_key(batch - 1, |(at, _)| *at);
        candidates.truncate(batch);
    }
    let candidates = candidates.into_iter().map(|(_, channel)| channel);
    remove_channels(registry, counters, candidates, ChannelState::is_unlistened)
}

/// Removes each candidate that still satisfies `still` under its lock (a
/// caller that looked it up before the registry was locked may have
/// subscribed since); returns how many. Ids are never reused: the floor
/// rises past the removed channels' numbers. Their histories are dropped
/// from the count (a message still queued to a subscriber or held by a
/// poll answer lives on, uncounted, until that lets go of it).
fn remove_channels(
    registry: &mut Registry,
    counters: &Counters,
    candidates: impl IntoIterator<Item = Arc<Channel>>,
    still: impl Fn(&ChannelState) -> bool,
) -> usize {
    let mut removed = 0;
    for channel in candidates {
        let mut state = channel.lock();
        if state.removed || !still(&state) {
            continue;
        }
        state.removed = true;
        state.forget_history(counters);
        registry.seq_floor = registry.seq_floor.max(state.last_seq());
        registry.channels.remove(&channel.name);
        removed += 1;
    }
    removed
}

/// A registered long-poll waiter; unregisters on drop, so a cancelled
/// long poll does not pin its channel.
struct WaiterGuard {
    channel: Arc<Channel>,
    counters: Arc<Counters>,
}

impl Drop for WaiterGuard {
    fn drop(&mut self) {
        self.channel.lock().remove_waiter();
        self.counters.waiters.fetch_sub(1, Relaxed);
    }
}

/// `timeout` from now, or as far as the clock goes for absurd timeouts
/// (an `Instant` overflow would panic).
fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365 * 30))
}
