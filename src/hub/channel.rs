//! One channel: its history, its subscribers, its long-poll waiters.
//!
//! Everything that must be atomic — numbering a message, storing it,
//! queueing it to subscribers; snapshotting the history and registering a
//! subscriber — happens under the channel's one lock, which is why a
//! subscription sees no gap and no duplicate between history and live.

use super::id::{MessageId, Resume, SenderId, Since};
use super::message::HubMessage;
use super::subscription::{Closed, Offer, Queue, QueueLimits, Registration};
use super::{Counters, HubConfig};
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The answer to a poll: [`Hub::history_after`](super::Hub::history_after)
/// and [`Hub::wait_after`](super::Hub::wait_after).
#[derive(Clone, Debug)]
pub struct Poll {
    /// Messages newer than the starting point, oldest first, at most the
    /// number asked for.
    pub messages: Vec<Arc<HubMessage>>,
    /// The id to poll after next time: the last message returned, or the
    /// resolved starting point if none was (for [`Since::Live`], the
    /// channel's newest id, so nothing published later is missed).
    pub next: MessageId,
    /// Whether more messages newer than `next` were already held (the
    /// answer was cut at the maximum): poll again at once.
    pub more: bool,
    /// How the starting point related to the history.
    pub resume: Resume,
}

impl Poll {
    /// Whether a long poll should answer now rather than wait.
    pub(crate) fn is_ready(&self) -> bool {
        !self.messages.is_empty() || self.more || self.resume != Resume::Exact
    }
}

/// A channel as the hub's registry holds it.
pub(crate) struct Channel {
    pub(crate) name: Arc<str>,
    state: Mutex<ChannelState>,
    /// Long-poll waiters; `notify_waiters` on every publish and on shutdown.
    pub(crate) notify: Notify,
}

impl Channel {
    /// A fresh channel of `epoch` whose first message gets sequence number `floor + 1`.
    pub(crate) fn new(name: Arc<str>, floor: u64, epoch: u32) -> Channel {
        Channel {
            name,
            state: Mutex::new(ChannelState::new(floor, epoch)),
            notify: Notify::new(),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, ChannelState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Removes a subscriber, unless a publish or shutdown already did.
    pub(crate) fn unsubscribe(&self, key: u64, counters: &Counters) {
        let mut state = self.lock();
        if state.subscribers.remove(&key).is_some() {
            counters.subscribers.fetch_sub(1, Relaxed);
        }
    }
}

/// A registered subscriber, as publishers see it.
struct Subscriber {
    queue: Arc<Queue>,
    capacity: QueueLimits,
    skip: Option<SenderId>,
}

/// What one publish did to the subscribers.
#[derive(Default)]
struct FanOut {
    /// Queued to a subscriber.
    delivered: u64,
    /// Subscribers dropped because their queue was full.
    lagged: u64,
    /// Subscribers removed, for any reason.
    removed: u64,
}

/// A channel's mutable state, behind [`Channel::lock`].
pub(crate) struct ChannelState {
    /// Contiguous sequence numbers, oldest first; the newest is `last_seq`.
    history: VecDeque<Arc<HubMessage>>,
    /// Payload bytes in `history`.
    history_bytes: usize,
    /// Bytes of the encodings cached by messages in `history`, added by
    /// [`HubMessage::encoded`] outside the lock.
    encoded_bytes: Arc<AtomicUsize>,
    last_seq: u64,
    /// The epoch of this channel's ids: the hub's in memory mode, the
    /// broker's (per channel) when a broker mirrors the channel.
    epoch: u32,
    /// A broker has loaded this channel's state ([`ChannelState::reset`]):
    /// until then its epoch is only the hub's placeholder.
    pub(crate) mirrored: bool,
    last_publish: Instant,
    subscribers: HashMap<u64, Subscriber>,
    next_key: u64,
    waiters: usize,
    /// Swept out of the registry: whoever still holds the `Arc` must look
    /// the channel up again, or its action would be lost.
    pub(crate) removed: bool,
    /// The hub shut down: no new subscribers, publishes or waiters.
    pub(crate) shut: bool,
}

impl ChannelState {
    /// State for a channel of `epoch` that starts numbering after `floor`;
    /// also the view of a channel that does not exist, for polls.
    pub(crate) fn new(floor: u64, epoch: u32) -> ChannelState {
        ChannelState {
            history: VecDeque::new(),
            history_bytes: 0,
            encoded_bytes: Arc::default(),
            last_seq: floor,
            epoch,
            mirrored: false,
            last_publish: Instant::now(),
            subscribers: HashMap::new(),
            next_key: 0,
            waiters: 0,
            removed: false,
            shut: false,
        }
    }

    pub(crate) fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The id of the newest message (seq 0: none yet).
    pub(crate) fn last_id(&self) -> MessageId {
        MessageId {
            epoch: self.epoch,
            seq: self.last_seq,
        }
    }

    /// Numbers, stores and fans out one message.
    pub(crate) fn publish(
        &mut self,
        channel: &Arc<str>,
        data: Bytes,
        sender: Option<SenderId>,
        config: &HubConfig,
        counters: &Counters,
    ) -> Arc<HubMessage> {
        let id = MessageId {
            epoch: self.epoch,
            seq: self.last_seq.saturating_add(1),
        };
        self.append_counted(channel, id, data, sender, config, counters)
    }

    /// Stores and fans out one message whose id is the next one in this
    /// channel (the caller checked: `id.seq == last_seq + 1`, same epoch),
    /// counting it in the hub's counters.
    pub(crate) fn append_counted(
        &mut self,
        channel: &Arc<str>,
        id: MessageId,
        data: Bytes,
        sender: Option<SenderId>,
        config: &HubConfig,
        counters: &Counters,
    ) -> Arc<HubMessage> {
        self.last_seq = id.seq;
        let message = Arc::new(HubMessage::new(channel.clone(), id, data, sender));
        self.remember(message.clone(), config, counters);
        self.last_publish = Instant::now();
        let fan_out = self.fan_out(&message);
        // Under the lock, so the subscriber gauge never dips below zero.
        counters.published.fetch_add(1, Relaxed);
        counters.delivered.fetch_add(fan_out.delivered, Relaxed);
        counters.lagged.fetch_add(fan_out.lagged, Relaxed);
        counters.subscribers.fetch_sub(fan_out.removed, Relaxed);
        message
    }

    /// Appends to the history, then evicts the oldest messages until both
    /// bounds hold again. The byte bound counts payloads and the encodings
    /// cached for them (checked here, at every publish).
    fn remember(&mut self, message: Arc<HubMessage>, config: &HubConfig, counters: &Counters) {
        self.history_bytes += message.data.len();
        counters
            .history_bytes
            .fetch_add(message.data.len(), Relaxed);
        message.charge_encodings_to([self.encoded_bytes.clone(), counters.history_bytes.clone()]);
        self.history.push_back(message);
        while self.history.len() > config.history_messages
            || self.retained_bytes() > config.history_bytes
        {
            if !self.evict_oldest(counters) {
                break;
            }
        }
    }

    /// The bytes the history holds: payloads and their cached encodings.
    pub(crate) fn retained_bytes(&self) -> usize {
        self.history_bytes + self.encoded_bytes.load(Relaxed)
    }

    /// Drops the oldest message of the history, taking its bytes back from
    /// the channel's and the hub's counters; false if the history is empty.
    pub(crate) fn evict_oldest(&mut self, counters: &Counters) -> bool {
        let Some(old) = self.history.pop_front() else {
            return false;
        };
        let charged = old.stop_charging();
        let freed = old.data.len() + charged;
        self.history_bytes -= old.data.len();
        self.encoded_bytes.fetch_sub(charged, Relaxed);
        counters.history_bytes.fetch_sub(freed, Relaxed);
        true
    }

    /// Drops the whole history, for a channel leaving the registry (the
    /// sequence numbers stay: the registry's floor rises past them).
    pub(crate) fn forget_history(&mut self, counters: &Counters) {
        while self.evict_oldest(counters) {}
    }

    /// Starts the channel over at `epoch`, its next message numbered
    /// `last_seq + 1`: the history is dropped and every subscription ends
    /// with [`Closed::Reset`] (a live subscriber must not skip silently over
    /// what the channel no longer holds; it resumes and is told of the gap
    /// or the new epoch). Returns how many subscriptions ended.
    pub(crate) fn reset(&mut self, epoch: u32, last_seq: u64, counters: &Counters) -> usize {
        self.forget_history(counters);
        self.epoch = epoch;
        self.last_seq = last_seq;
        self.mirrored = true;
        self.close_all(Closed::Reset)
    }

    /// Whether the history holds any message.
    pub(crate) fn has_history(&self) -> bool {
        !self.history.is_empty()
    }

    /// When the last message was published, or the channel was made.
    pub(crate) fn last_publish(&self) -> Instant {
        self.last_publish
    }

    /// Nobody listens: no subscriber, no long-poll waiter.
    pub(crate) fn is_unlistened(&self) -> bool {
        self.subscribers.is_empty() && self.waiters == 0
    }

    /// Queues `message` to every subscriber that does not skip its sender;
    /// drops the subscribers whose queue is full.
    fn fan_out(&mut self, message: &Arc<HubMessage>) -> FanOut {
        let mut fan_out = FanOut::default();
        let before = self.subscribers.len();
        self.subscribers.retain(|_, subscriber| {
            if message.sender.is_some() && message.sender == subscriber.skip {
                return true;
            }
            let offer = subscriber.queue.offer(message, subscriber.capacity);
            match offer {
                Offer::Queued => fan_out.delivered += 1,
                Offer::Lagged => fan_out.lagged += 1,
                Offer::Closed => {}
            }
            matches!(offer, Offer::Queued)
        });
        fan_out.removed = (before - self.subscribers.len()) as u64;
        fan_out
    }

    /// Sequence numbers up to this one are no longer in the history.
    fn evicted_through(&self) -> u64 {
        self.last_seq.saturating_sub(self.history.len() as u64)
    }

    /// How `since` relates to the history, and the sequence number after
    /// which delivery starts.
    fn plan(&self, since: Since) -> (Resume, u64) {
        let epoch = self.epoch;
        let evicted_through = self.evicted_through();
        match since {
            Since::Live => (Resume::Exact, self.last_seq),
            Since::Beginning => (Resume::Exact, evicted_through),
            Since::After(id) if id.epoch != epoch => {
                (Resume::EpochChanged { current: epoch }, evicted_through)
            }
            Since::After(id) if id.seq > self.last_seq => (Resume::Ahead, self.last_seq),
            Since::After(id) if id.seq < evicted_through => {
                let first_available = self.history.front().map(|m| m.id);
                (Resume::Gap { first_available }, evicted_through)
            }
            Since::After(id) => (Resume::Exact, id.seq),
        }
    }

    /// The held messages newer than sequence number `after`, oldest first.
    fn newer_than(&self, after: u64) -> impl Iterator<Item = &Arc<HubMessage>> {
        let skip = after.saturating_sub(self.evicted_through());
        let skip = usize::try_from(skip).unwrap_or(usize::MAX);
        self.history.iter().skip(skip)
    }

    /// At most `max` messages newer than `since`, for the polling transports.
    pub(crate) fn poll(&self, since: Since, max: usize) -> Poll {
        let epoch = self.epoch;
        let (resume, after) = self.plan(since);
        let mut newer = self.newer_than(after);
        let messages: Vec<_> = newer.by_ref().take(max).cloned().collect();
        let more = newer.next().is_some();
        let next = messages
            .last()
            .map_or(MessageId { epoch, seq: after }, |m| m.id);
        Poll {
            messages,
            next,
            more,
            resume,
        }
    }

    /// Registers a subscriber and snapshots the history it must replay
    /// first, in one step under the channel lock.
    pub(crate) fn subscribe(
        &mut self,
        since: Since,
        skip: Option<SenderId>,
        capacity: QueueLimits,
    ) -> Registration {
        let epoch = self.epoch;
        let (resume, after) = self.plan(since);
        let backlog = self
            .newer_than(after)
            .filter(|m| m.sender.is_none() || m.sender != skip)
            .cloned()
            .collect();
        let queue = Arc::new(Queue::new());
        let key = self.next_key;
        self.next_key += 1;
        let subscriber = Subscriber {
            queue: queue.clone(),
            capacity,
            skip,
        };
        self.subscribers.insert(key, subscriber);
        Registration {
            key,
            queue,
            backlog,
            resume,
            cursor: MessageId { epoch, seq: after },
        }
    }

    /// Ends every subscription with `reason`; returns how many there were.
    pub(crate) fn close_all(&mut self, reason: Closed) -> usize {
        let count = self.subscribers.len();
        for (_, subscriber) in self.subscribers.drain() {
            subscriber.queue.close(reason);
        }
        count
    }

    pub(crate) fn add_waiter(&mut self) {
        self.waiters += 1;
    }

    pub(crate) fn has_waiters(&self) -> bool {
        self.waiters > 0
    }

    pub(crate) fn remove_waiter(&mut self) {
        self.waiters = self.waiters.saturating_sub(1);
    }

    /// The sweep rule: nobody listening (no subscriber, no long-poll
    /// waiter), and nothing worth keeping (an empty history, or a last
    /// message at least `idle` old at `now`).
    /// The newest message held, unless the channel was removed.
    pub(crate) fn newest(&self) -> Option<Arc<HubMessage>> {
        (!self.removed).then(|| self.history.back().cloned())?
    }

    pub(crate) fn is_idle(&self, now: Instant, idle: Duration) -> bool {
        self.is_unlistened()
            && (self.history.is_empty() || now.saturating_duration_since(self.last_publish) >= idle)
    }
}
