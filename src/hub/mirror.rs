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
        if !state.mirrored
            || message.id.epoch != last.epoch
            || message.id.seq > last.seq.saturating_add(1)
        {
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
    /// rules on [`Applied`]); then every newer message is appended.
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
        if self.inner.counters.history_bytes.load(Relaxed) > self.inner.config.history_bytes_total {
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
    let appended = state.append_counted(
        &channel.name,
        id,
        data,
        sender,
        &inner.config,
        &inner.counters,
    );
    if state.has_waiters() {
        channel.notify.notify_waiters();
    }
    appended
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::{Closed, HubConfig, Resume, Since};

    fn mirrored(epoch: u32, seq: u64, data: &str) -> Mirrored {
        Mirrored {
            id: MessageId { epoch, seq },
            data: Bytes::from(data.to_owned()),
            sender: None,
        }
    }

    fn snapshot(epoch: u32, last_seq: u64, seqs: std::ops::Range<u64>) -> Snapshot {
        Snapshot {
            epoch,
            last_seq,
            messages: seqs.map(|s| mirrored(epoch, s, &format!("m{s}"))).collect(),
        }
    }

    fn seqs(hub: &Hub, channel: &str) -> Vec<u64> {
        let poll = hub.history_after(channel, Since::Beginning, 100);
        poll.messages.iter().map(|m| m.id.seq).collect()
    }

    #[tokio::test]
    async fn apply_appends_in_order_skips_duplicates_and_leaves_holes_to_sync() {
        let hub = Hub::new();
        assert!(matches!(
            hub.apply("c", mirrored(7, 1, "x")),
            Applied::NoChannel
        ));
        let synced = hub.sync("c", snapshot(7, 2, 1..3)).unwrap();
        assert_eq!(
            (synced.last, synced.appended),
            (MessageId { epoch: 7, seq: 2 }, 2)
        );
        let mut sub = hub.subscribe("c", Since::Live).unwrap();
        assert!(matches!(
            hub.apply("c", mirrored(7, 3, "m3")),
            Applied::Appended(_)
        ));
        assert!(matches!(
            hub.apply("c", mirrored(7, 3, "m3")),
            Applied::Duplicate
        ));
        assert!(matches!(
            hub.apply("c", mirrored(7, 2, "m2")),
            Applied::Duplicate
        ));
        let last = MessageId { epoch: 7, seq: 3 };
        assert!(
            matches!(hub.apply("c", mirrored(7, 5, "m5")), Applied::Hole { last: l } if l == last)
        );
        assert!(matches!(
            hub.apply("c", mirrored(8, 1, "n1")),
            Applied::Hole { .. }
        ));
        assert_eq!(sub.recv().await.unwrap().id, last);
        // The hole is filled from the broker without a reset.
        let synced = hub.sync("c", snapshot(7, 5, 4..6)).unwrap();
        assert!(!synced.reset);
        assert_eq!(sub.recv().await.unwrap().id.seq, 4);
        assert_eq!(sub.recv().await.unwrap().id.seq, 5);
        assert_eq!(seqs(&hub, "c"), vec![1, 2, 3, 4, 5]);
    }

    #[tokio::test]
    async fn an_unfillable_hole_resets_with_a_gap() {
        let hub = Hub::with_config(HubConfig::default());
        hub.sync("c", snapshot(7, 3, 1..4)).unwrap();
        let mut sub = hub.subscribe("c", Since::Live).unwrap();
        // The broker's stream was trimmed past what the hub holds.
        let synced = hub.sync("c", snapshot(7, 9, 6..10)).unwrap();
        assert!(synced.reset);
        assert_eq!(sub.recv().await.unwrap_err(), Closed::Reset);
        assert_eq!(hub.stats().subscribers, 0);
        let resumed = hub.subscribe("c", sub.resume_from()).unwrap();
        let first = Some(MessageId { epoch: 7, seq: 6 });
        assert_eq!(
            resumed.resume(),
            Resume::Gap {
                first_available: first
            }
        );
        assert_eq!(seqs(&hub, "c"), vec![6, 7, 8, 9]);
        // Numbered messages no longer held at all: a gap with nothing.
        hub.sync("c", snapshot(7, 12, 13..13)).unwrap();
        let poll = hub.history_after("c", Since::After(MessageId { epoch: 7, seq: 9 }), 10);
        assert_eq!(
            poll.resume,
            Resume::Gap {
                first_available: None
            }
        );
    }

    #[tokio::test]
    async fn a_new_epoch_resets_and_resumes_report_it() {
        let hub = Hub::new();
        hub.sync("c", snapshot(7, 3, 1..4)).unwrap();
        let mut sub = hub.subscribe("c", Since::Beginning).unwrap();
        for _ in 0..3 {
            sub.recv().await.unwrap();
        }
        let mut waiter = Box::pin(hub.wait_after(
            "c",
            Since::After(MessageId { epoch: 7, seq: 3 }),
            10,
            std::time::Duration::from_secs(30),
        ));
        assert!(futures_poll_once(&mut waiter).is_none(), "waiting");
        hub.sync("c", snapshot(8, 1, 1..2)).unwrap();
        assert_eq!(sub.recv().await.unwrap_err(), Closed::Reset);
        let poll = waiter.await.unwrap();
        assert_eq!(poll.resume, Resume::EpochChanged { current: 8 });
        assert_eq!(poll.messages[0].id, MessageId { epoch: 8, seq: 1 });
        let resumed = hub.subscribe("c", sub.resume_from()).unwrap();
        assert_eq!(resumed.resume(), Resume::EpochChanged { current: 8 });
    }

    #[tokio::test]
    async fn the_sender_travels_with_mirrored_messages() {
        let hub = Hub::new();
        hub.sync("c", snapshot(7, 0, 1..1)).unwrap();
        let remote = SenderId(0xdead_0000_0001);
        let options = crate::hub::SubscribeOptions {
            since: Since::Live,
            skip_sender: Some(remote),
        };
        let mut own = hub.subscribe_with("c", options).unwrap();
        let mut other = hub.subscribe("c", Since::Live).unwrap();
        let mut m = mirrored(7, 1, "mine");
        m.sender = Some(remote);
        hub.apply("c", m);
        hub.apply("c", mirrored(7, 2, "theirs"));
        assert_eq!(other.recv().await.unwrap().id.seq, 1);
        assert_eq!(own.recv().await.unwrap().id.seq, 2);
    }

    #[test]
    fn a_mirrored_channel_refuses_local_publishes() {
        let hub = Hub::new();
        hub.publish("local", Bytes::from("ok"), None).unwrap();
        hub.sync("c", snapshot(7, 1, 1..2)).unwrap();
        let refused = hub.publish("c", Bytes::from("would take 7-2"), None);
        assert_eq!(refused.unwrap_err(), HubError::Mirrored);
        assert!(matches!(
            hub.apply("c", mirrored(7, 2, "m2")),
            Applied::Appended(_)
        ));
    }

    /// Polls a future once, without a runtime's help.
    fn futures_poll_once<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        match std::pin::Pin::new(f).poll(&mut cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        }
    }
}
