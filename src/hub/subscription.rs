//! Subscriber queues and the [`Subscription`] handle.

use super::channel::Channel;
use super::id::{MessageId, Resume, Since};
use super::message::HubMessage;
use super::Counters;
use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

/// Why a subscription ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    /// The subscriber's queue was full when a message was published: it was
    /// dropped rather than slow the publisher. Subscribe again with
    /// [`Subscription::resume_from`] to continue from the last message seen.
    Lagged,
    /// The hub was shut down ([`Hub::shutdown`](super::Hub::shutdown)).
    Shutdown,
    /// The channel started over under the subscriber: a broker found that
    /// its history was lost (a new epoch) or that messages it cannot fetch
    /// any more were missed (a gap). Subscribe again with
    /// [`Subscription::resume_from`]: the new subscription reports
    /// [`Resume::EpochChanged`] or [`Resume::Gap`] first.
    Reset,
}

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Closed::Lagged => "subscriber fell too far behind and was dropped",
            Closed::Shutdown => "hub shut down",
            Closed::Reset => "channel was reset: resume to learn what was lost",
        })
    }
}

impl std::error::Error for Closed {}

/// What [`Queue::offer`] did with a message.
pub(crate) enum Offer {
    Queued,
    /// The queue was full; it is now closed with [`Closed::Lagged`].
    Lagged,
    /// The queue was already closed.
    Closed,
}

/// One subscriber's live queue: filled by publishers, drained by the
/// [`Subscription`]. Publishers hold the lock only to push, never wait.
pub(crate) struct Queue {
    state: Mutex<QueueState>,
}

#[derive(Default)]
struct QueueState {
    /// Each message with the bytes it was counted at.
    buf: VecDeque<(Arc<HubMessage>, usize)>,
    /// The sum of those counts.
    bytes: usize,
    closed: Option<Closed>,
    /// The consumer, waiting for the queue to turn non-empty or close.
    /// Set and taken under the lock, so no push can slip between the
    /// consumer finding the queue empty and its waker being here.
    waker: Option<Waker>,
}

/// How much may wait in one subscriber's queue.
#[derive(Clone, Copy, Debug)]
pub(crate) struct QueueLimits {
    pub messages: usize,
    /// Payload plus cached encodings, as [`HubMessage::retained_bytes`]
    /// counts them when queued. One message may always wait, whatever its size.
    pub bytes: usize,
}

impl Queue {
    pub(crate) fn new() -> Queue {
        Queue {
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `message` unless that would take the queue past `limits`, in
    /// which case the queue closes with [`Closed::Lagged`].
    pub(crate) fn offer(&self, message: &Arc<HubMessage>, limits: QueueLimits) -> Offer {
        let mut state = self.lock();
        if state.closed.is_some() {
            return Offer::Closed;
        }
        let cost = message.retained_bytes();
        let was_empty = state.buf.is_empty();
        if !was_empty && (state.buf.len() >= limits.messages || state.bytes + cost > limits.bytes) {
            drop(state);
            self.close(Closed::Lagged);
            return Offer::Lagged;
        }
        state.bytes += cost;
        state.buf.push_back((message.clone(), cost));
        // The consumer only sleeps after finding the queue empty, so only
        // the push that ends emptiness needs to wake it.
        let waker = if was_empty { state.waker.take() } else { None };
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
        Offer::Queued
    }

    /// Ends the queue; queued messages are released at once (a dropped
    /// subscriber must not pin memory), the consumer is woken.
    pub(crate) fn close(&self, reason: Closed) {
        let mut state = self.lock();
        state.closed.get_or_insert(reason);
        state.buf = VecDeque::new();
        state.bytes = 0;
        let waker = state.waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// The next message, and whether more wait behind it; with `waker`,
    /// when there is none, it is kept to be woken by the next push or the
    /// close.
    fn pop(&self, waker: Option<&Waker>) -> Result<Option<(Arc<HubMessage>, bool)>, Closed> {
        let mut state = self.lock();
        if let Some(reason) = state.closed {
            return Err(reason);
        }
        let Some((message, cost)) = state.buf.pop_front() else {
            if let Some(waker) = waker {
                match &mut state.waker {
                    Some(kept) => kept.clone_from(waker),
                    none => *none = Some(waker.clone()),
                }
            }
            return Ok(None);
        };
        state.bytes -= cost;
        Ok(Some((message, !state.buf.is_empty())))
    }

    fn closed(&self) -> Option<Closed> {
        self.lock().closed
    }
}

/// Everything [`Channel`] hands back when it registers a subscriber.
pub(crate) struct Registration {
    pub(crate) key: u64,
    pub(crate) queue: Arc<Queue>,
    pub(crate) backlog: VecDeque<Arc<HubMessage>>,
    pub(crate) resume: Resume,
    /// The id just before the first message this subscription delivers.
    pub(crate) cursor: MessageId,
}

/// A subscriber of one channel, made by
/// [`Hub::subscribe`](super::Hub::subscribe): it yields the history newer
/// than the requested starting point, then live messages, with no gap and
/// no duplicate between the two. Dropping it unsubscribes.
pub struct Subscription {
    channel: Arc<Channel>,
    counters: Arc<Counters>,
    key: u64,
    queue: Arc<Queue>,
    backlog: VecDeque<Arc<HubMessage>>,
    resume: Resume,
    cursor: MessageId,
    last_seen: Option<MessageId>,
    /// Whether more messages waited behind the last one taken.
    more: bool,
}

impl Subscription {
    pub(crate) fn new(
        channel: Arc<Channel>,
        counters: Arc<Counters>,
        registration: Registration,
    ) -> Subscription {
        Subscription {
            channel,
            counters,
            key: registration.key,
            queue: registration.queue,
            backlog: registration.backlog,
            resume: registration.resume,
            cursor: registration.cursor,
            last_seen: None,
            more: false,
        }
    }

    /// The channel subscribed to.
    pub fn channel(&self) -> &str {
        &self.channel.name
    }

    /// How the requested starting point related to the history: tell the
    /// client about a [`Resume::Gap`] or [`Resume::EpochChanged`] before
    /// the first message.
    pub fn resume(&self) -> Resume {
        self.resume
    }

    /// The id of the last message this subscription yielded.
    pub fn last_seen(&self) -> Option<MessageId> {
        self.last_seen
    }

    /// Where a new subscription should start to continue exactly where
    /// this one stopped (e.g. after [`Closed::Lagged`]): after the last
    /// message yielded, or after the point this one started from.
    pub fn resume_from(&self) -> Since {
        Since::After(self.cursor)
    }

    /// The id [`Subscription::resume_from`] resumes after: the last message
    /// yielded or, before any, the point this subscription started from
    /// (for [`Since::Live`], the newest message at the time; in a new
    /// epoch, its start). A client that keeps it misses nothing when it
    /// subscribes again, whether or not a message came in between.
    pub fn position(&self) -> MessageId {
        self.cursor
    }

    /// The next message, waiting for one if none is queued.
    ///
    /// Cancel-safe: a message is taken only when the future completes.
    /// After an error every later call returns the same error.
    pub async fn recv(&mut self) -> Result<Arc<HubMessage>, Closed> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The poll form of [`recv`](Self::recv): `Pending` when nothing is
    /// queued, and `cx` is woken by the next message or the end. For a task
    /// that serves many subscriptions itself (one socket's rooms), and then
    /// drains each with [`try_recv`](Self::try_recv) to write what is
    /// queued at once.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Arc<HubMessage>, Closed>> {
        match self.take(Some(cx.waker()))? {
            Some(message) => Poll::Ready(Ok(message)),
            None => Poll::Pending,
        }
    }

    /// Whether more messages waited behind the last one taken: when
    /// false, a [`try_recv`](Self::try_recv) would most likely find none,
    /// and a task writing what is queued can stop asking (one published
    /// since wakes it as usual).
    pub fn had_more(&self) -> bool {
        self.more
    }

    /// The next message if one is ready, `Ok(None)` if none is.
    ///
    /// The end of the subscription is reported at once, ahead of any
    /// history still undelivered: [`Subscription::resume_from`] picks it
    /// up again.
    pub fn try_recv(&mut self) -> Result<Option<Arc<HubMessage>>, Closed> {
        self.take(None)
    }

    /// The next message, history first, moving the cursor past it; with
    /// `waker`, kept to be woken when there is none yet.
    fn take(&mut self, waker: Option<&Waker>) -> Result<Option<Arc<HubMessage>>, Closed> {
        let next = if self.backlog.is_empty() {
            self.queue.pop(waker).map(|popped| {
                let (message, more) = popped.unzip();
                self.more = more.unwrap_or(false);
                message
            })
        } else {
            match self.queue.closed() {
                Some(reason) => Err(reason),
                None => {
                    // Live messages may wait behind the history.
                    self.more = true;
                    Ok(self.backlog.pop_front())
                }
            }
        };
        let next = next.inspect_err(|_| self.backlog = VecDeque::new())?;
        if let Some(message) = &next {
            self.cursor = message.id;
            self.last_seen = Some(message.id);
        }
        Ok(next)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.channel.unsubscribe(self.key, &self.counters);
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("channel", &self.channel.name)
            .field("resume", &self.resume)
            .field("last_seen", &self.last_seen)
            .finish_non_exhaustive()
    }
}
