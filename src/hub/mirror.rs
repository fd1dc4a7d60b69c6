//! The entry points a broker uses to mirror channels whose ids are
//! assigned elsewhere (in Redis): [`Hub::apply`] for one message as it
//! arrives, [`Hub::sync`] for what the broker holds of a channel (on first
//! use, after a reconnect, or to fill a hole).
//!
//! The rules keep every subscriber's view exact or explicitly broken:
//! a duplicate (a sequence number already held) is ignored; a message that
//! does not follow the newest one is not applied by [`Hub::apply`] (the
//! broker fetches what is missing and calls [`Hub::sync`]); a sync that
//! finds another epoch, or a hole it cannot fill, starts the channel over:
//! its history is dropped and every live subscription ends with
//! [`Closed::Reset`](super::Closed::Reset), so the client resumes and is
//! told [`Resume::EpochChanged`](super::Resume::EpochChanged) or
//! [`Resume::Gap`](super::Resume::Gap) instead of skipping silently.

use super::channel::{Channel, ChannelState};
use super::id::{MessageId, SenderId};
use super::message::HubMessage;
use super::{Hub, HubError};
use bytes::Bytes;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// A message numbered by a broker, to be mirrored into the hub.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mirrored {
    /// The id the broker gave it.
    pub id: MessageId,
    /// The payload.
    pub data: Bytes,
    /// Who published it (on any node), for except-sender delivery.
    pub sender: Option<SenderId>,
}

/// What [`Hub::apply`] did.
#[derive(Clone, Debug)]
pub enum Applied {
    /// Appended to the history and fanned out.
    Appended(Arc<HubMessage>),
    /// Already held (its sequence number is not above the newest).
    Duplicate,
    /// Not applied: it does not follow the channel's newest message
    /// (`last`), or it is of another epoch, or the channel was never
    /// synced. Fetch from `last` and [`Hub::sync`].
    Hole {
        /// The channel's newest id.
        last: MessageId,
    },
    /// The hub holds no such channel (nobody here asked for it).
    NoChannel,
}

/// What a broker holds of one channel: its epoch, its newest sequence
/// number, and the messages it still has after some point, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The channel's epoch in the broker.
    pub epoch: u32,
    /// The newest sequence number the broker assigned (0: none).
    pub last_seq: u64,
    /// Messages of `epoch`, in order; those at or below what the hub holds
    /// are skipped.
    pub messages: Vec<Mirrored>,
}

/// What [`Hub::sync`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Synced {
    /// The channel's newest id afterwards.
    pub last: MessageId,
    /// Messages appended.
    pub appended: usize,
    /// Whether the channel started over (new epoch or unfillable hole).
    pub reset: bool,
}

impl Hub {
    /// Mirrors one message whose id a broker assigned: appended, fanned
    /// out to subscribers (encode-once as for [`Hub::publish`]) and long
    /// polls woken, if it is the next one of the channel; see [`Applied`]
    /// otherwise. Never creates the channel.
    pub fn apply(&self, channel: &str, message: Mirrored) -> Applied {
        let Some(channel) = self.lookup(channel) else {
            return Applied::NoChannel;
        };
        let inner = &*self.inner;
        let mut state = channel.lock();
        if state.removed || state.shut {
            return Applied::NoChannel;
        }
        let last = state.last_id();
        if !state.mirrored || message.id.epoch != last.epoch || message.id.seq > last.seq.saturating_add(1) {
            return Applied::Hole { last };
        }
        if message.id.seq <= last.seq {
            return Applied::Duplicate;
        }
        let appended = append(&channel, &mut state, message, self);
        drop(state);
        if inner.counters.history_bytes.load(Relaxed) > inner.config.history_bytes_total {
            self.trim_histories();
        }
        Applied::Appended(appended)
    }

    /// Brings `channel` (created if need be) in line with what the broker
    /// holds: another epoch, or a newest sequence number or message that
    /// cannot follow what the hub holds, starts the channel over (see the
    /// [module docs](self)); then every newer message is appended.
    pub fn sync(&self, channel: &str, snapshot: Snapshot) -> Result<Synced, HubError> {
        let counters = self.inner.counters.clone();
        let synced = self.with_channel(channel, |channel, state| {
            let mut reset = false;
            let mut closed = 0;
            let mut appended = 0;
            let epoch = snapshot.epoch;
            if !state.mirrored || state.last_id().epoch != epoch {
                let first = snapshot.messages.first().map(|m| m.id.seq);
                let before = first.map_or(snapshot.last_seq, |s| s.saturating_sub(1));
                closed += state.reset(epoch, before, &counters);
                reset = true;
            }
            for message in snapshot.messages {
                let last = state.last_seq();
                if message.id.epoch != epoch || message.id.seq <= last {
                    continue;
                }
                if message.id.seq > last.saturating_add(1) {
                    closed += state.reset(epoch, message.id.seq - 1, &counters);
                    reset = true;
                }
                append(channel, state, message, self);
                appended += 1;
            }
            if snapshot.last_seq > state.last_seq() {
                // The broker numbered messages it no longer holds.
                closed += state.reset(epoch, snapshot.last_seq, &counters);
                reset = true;
            }
            counters.subscribers.fetch_sub(closed as u64, Relaxed);
            if reset && state.has_waiters() {
                channel.notify.notify_waiters();
            }
            Ok(Synced {
                last: state.last_id(),
                appended,
                reset,
            })
        })?;
        if self.inner.counters.history_bytes.load(Relaxed) > self.inner.config.history_bytes_total
        {
            self.trim_histories();
        }
        Ok(synced)
    }

    /// Whether the hub holds `channel` now (a broker stops mirroring the
    /// channels the hub swept).
    pub fn contains(&self, channel: &str) -> bool {
        self.lookup(channel).is_some()
    }

    /// The newest id of `channel`, if the hub holds it and a broker synced it.
    pub fn mirrored_last(&self, channel: &str) -> Option<MessageId> {
        let channel = self.lookup(channel)?;
        let state = channel.lock();
        (state.mirrored && !state.removed).then(|| state.last_id())
    }
}

/// Appends the next message under the channel lock, as a publish does.
fn append(
    channel: &Arc<Channel>,
    state: &mut ChannelState,
    message: Mirrored,
    hub: &Hub,
) -> Arc<HubMessage> {
    let inner = &*hub.inner;
    let Mirrored { id, data, sender } = message;
    let appended = state.append_counted(&channel.name, id, data, sender, &inner.config, &inner.counters);
    if state.has_waiters() {
        channel.notify.notify_waiters();
    }
    appended
}
