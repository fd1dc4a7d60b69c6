//! Published messages and their per-format encoding cache.

use super::id::{MessageId, SenderId};
use bytes::Bytes;
use std::fmt;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// A wire format a transport encodes messages into, used as the key of
/// [`HubMessage::encoded`]'s cache. There are [`FormatKey::SLOTS`] of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FormatKey(u8);

impl FormatKey {
    /// How many formats a message can cache. Small on purpose: every
    /// message in every history carries one slot per format.
    pub const SLOTS: usize = 5;
    /// Server-sent events: the `id:`/`data:` block of one event.
    pub const SSE: FormatKey = FormatKey(0);
    /// JSON, for the polling transports.
    pub const JSON: FormatKey = FormatKey(1);
    /// The JSON text of a WebSocket delivery.
    pub const WS_TEXT: FormatKey = FormatKey(2);
    /// That JSON compressed once for every permessage-deflate socket of
    /// the server's default parameters (without context takeover).
    pub const WS_DEFLATE: FormatKey = FormatKey(3);
    /// A spare slot for one more format.
    pub const OTHER: FormatKey = FormatKey(4);

    /// The key for slot `index`, if it is below [`FormatKey::SLOTS`].
    pub const fn new(index: u8) -> Option<FormatKey> {
        if (index as usize) < Self::SLOTS {
            Some(FormatKey(index))
        } else {
            None
        }
    }
}

/// A message as the hub stores and hands it out: shared (`Arc`) by the
/// history and every subscriber queue, never copied.
pub struct HubMessage {
    /// The channel it was published to.
    pub channel: Arc<str>,
    /// Its id, the same for every subscriber of every transport.
    pub id: MessageId,
    /// The payload, opaque to the hub.
    pub data: Bytes,
    /// Who published it, if the publisher said.
    pub sender: Option<SenderId>,
    encodings: [OnceLock<Bytes>; FormatKey::SLOTS],
    /// Where the bytes of encodings made while the message is in its
    /// channel's history are counted (the channel's and the hub's
    /// counters), so the history's byte bounds cover them too.
    charge: Mutex<Charge>,
}

/// The history counters a message's encodings are charged to, and how
/// much was charged to each.
#[derive(Default)]
struct Charge {
    to: Option<[Arc<AtomicUsize>; 2]>,
    charged: usize,
}

impl HubMessage {
    pub(crate) fn new(
        channel: Arc<str>,
        id: MessageId,
        data: Bytes,
        sender: Option<SenderId>,
    ) -> HubMessage {
        HubMessage {
            channel,
            id,
            data,
            sender,
            encodings: Default::default(),
            charge: Mutex::default(),
        }
    }

    /// Charges this message's encodings, from now on, to both counters
    /// (its channel's and the hub's).
    pub(crate) fn charge_encodings_to(&self, counters: [Arc<AtomicUsize>; 2]) {
        self.charge().to = Some(counters);
    }

    /// Stops charging encodings; returns how much had been charged, for
    /// the counters' owner to take back from each.
    pub(crate) fn stop_charging(&self) -> usize {
        let mut charge = self.charge();
        charge.to = None;
        std::mem::take(&mut charge.charged)
    }

    fn charge(&self) -> std::sync::MutexGuard<'_, Charge> {
        self.charge.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The bytes this message keeps alive: its payload and every encoding
    /// cached so far.
    pub fn retained_bytes(&self) -> usize {
        let encoded: usize = self
            .encodings
            .iter()
            .filter_map(|slot| slot.get().map(Bytes::len))
            .sum();
        self.data.len() + encoded
    }

    /// This message in wire format `format`, encoded by `encode` the first
    /// time any caller asks for that format and shared afterwards, so a
    /// message fanned out to many subscribers is encoded once per format.
    /// Concurrent first callers wait for one encoder rather than racing.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use rtwire::hub::{FormatKey, Hub};
    ///
    /// let hub = Hub::new();
    /// let message = hub.publish("news", Bytes::from("hi"), None).unwrap();
    /// let sse = |m: &rtwire::hub::HubMessage| {
    ///     Bytes::from(format!("id: {}\ndata: {}\n\n", m.id, String::from_utf8_lossy(&m.data)))
    /// };
    /// let first = message.encoded(FormatKey::SSE, sse);
    /// let again = message.encoded(FormatKey::SSE, |_| unreachable!("cached"));
    /// assert_eq!(first.as_ptr(), again.as_ptr()); // the same bytes, shared
    /// ```
    pub fn encoded(&self, format: FormatKey, encode: impl FnOnce(&HubMessage) -> Bytes) -> Bytes {
        let Some(slot) = self.encodings.get(usize::from(format.0)) else {
            // Unreachable: keys are checked on construction. Still no panic.
            return encode(self);
        };
        let mut made = 0;
        let bytes = slot
            .get_or_init(|| {
                let bytes = encode(self);
                made = bytes.len();
                bytes
            })
            .clone();
        if made > 0 {
            let mut charge = self.charge();
            if let Some(counters) = &charge.to {
                for counter in counters {
                    counter.fetch_add(made, Relaxed);
                }
                charge.charged += made;
            }
        }
        bytes
    }
}

impl fmt::Debug for HubMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubMessage")
            .field("channel", &self.channel)
            .field("id", &self.id)
            .field("data", &self.data)
            .field("sender", &self.sender)
            .finish_non_exhaustive()
    }
}
