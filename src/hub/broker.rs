//! The broker under the hub: who numbers a channel's messages, keeps its
//! history and fans it out. The transports publish through a [`Broker`]
//! and read everything else (subscriptions, polls) from the local
//! [`Hub`], after [`Broker::attach`] made sure the hub mirrors the
//! channel; they never learn which broker runs.
//!
//! - **Memory** (the default, [`Broker::memory`]): the hub itself; one
//!   process, ids and history gone when it stops.
//! - **Redis** (feature `redis`, [`Broker::redis`]): ids, history and
//!   fan-out between nodes in Redis; each node's hub mirrors the channels
//!   it serves (see [`redis`](super::redis)).

use super::id::{MessageId, SenderId};
use super::{Hub, HubError};
use bytes::Bytes;
use std::fmt;
#[cfg(feature = "redis")]
use std::sync::Arc;

/// Why a publish (or an [`attach`](Broker::attach)) was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublishError {
    /// The hub's own refusal: too large, too many channels, shut down.
    Hub(HubError),
    /// The broker cannot be reached (Redis down or too slow): nothing was
    /// acknowledged; try again later. The text says what failed.
    Unavailable(String),
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublishError::Hub(e) => e.fmt(f),
            PublishError::Unavailable(why) => write!(f, "broker unavailable: {why}"),
        }
    }
}

impl std::error::Error for PublishError {}

impl From<HubError> for PublishError {
    fn from(e: HubError) -> Self {
        PublishError::Hub(e)
    }
}

/// What a broker other than memory has been through, for metrics: see
/// [`Broker::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BrokerStats {
    /// Whether the pub/sub connection is up now.
    pub connected: bool,
    /// Publishes refused because the broker failed or was too slow.
    pub publishes_refused: u64,
    /// Subscriptions and polls refused for the same reason, on channels
    /// this node did not mirror yet.
    pub attaches_refused: u64,
    /// Pub/sub connections lost, or attempts to open one that failed.
    pub connection_failures: u64,
    /// Channel histories read from the broker: the first subscriber's,
    /// after every reconnection, after a message that did not follow.
    pub resyncs: u64,
    /// Channels this node mirrors.
    pub mirrored_channels: u64,
}

/// The broker a server runs on: cheap to clone, every clone is the same.
#[derive(Clone)]
pub struct Broker {
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Memory(Hub),
    #[cfg(feature = "redis")]
    Redis(Arc<super::redis::RedisBroker>),
}

impl fmt::Debug for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Memory(_) => f.write_str("Broker::Memory"),
            #[cfg(feature = "redis")]
            Kind::Redis(redis) => write!(f, "Broker::Redis({redis:?})"),
        }
    }
}

impl Broker {
    /// The in-memory broker: `hub` numbers, keeps and fans out everything.
    pub fn memory(hub: Hub) -> Broker {
        Broker {
            kind: Kind::Memory(hub),
        }
    }

    /// The Redis broker, connected (commands and the pub/sub connection
    /// are opened now, so a wrong URL or an unreachable server fails here).
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub async fn redis(
        hub: Hub,
        config: super::redis::RedisConfig,
    ) -> Result<Broker, super::redis::ConnectError> {
        let broker = super::redis::RedisBroker::connect(hub, config).await?;
        Ok(Broker {
            kind: Kind::Redis(Arc::new(broker)),
        })
    }

    /// The local hub, which subscribers and polls read.
    pub fn hub(&self) -> &Hub {
        match &self.kind {
            Kind::Memory(hub) => hub,
            #[cfg(feature = "redis")]
            Kind::Redis(redis) => redis.hub(),
        }
    }

    /// Publishes `data` to `channel`; the id once the broker has it (for
    /// Redis: stored in the channel's stream and sent to every node).
    pub async fn publish(
        &self,
        channel: &str,
        data: Bytes,
        sender: Option<SenderId>,
    ) -> Result<MessageId, PublishError> {
        match &self.kind {
            Kind::Memory(hub) => Ok(hub.publish(channel, data, sender)?.id),
            #[cfg(feature = "redis")]
            Kind::Redis(redis) => redis.publish(channel, data, sender).await,
        }
    }

    /// Makes sure the local hub mirrors `channel` before a subscription or
    /// poll reads it, so that a resume on this node is answered from the
    /// broker's history. Nothing to do in memory.
    pub async fn attach(&self, channel: &str) -> Result<(), PublishError> {
        match &self.kind {
            Kind::Memory(_) => {
                let _ = channel;
                Ok(())
            }
            #[cfg(feature = "redis")]
            Kind::Redis(redis) => redis.attach(channel).await,
        }
    }

    /// What the broker has been through; `None` in memory, where there is
    /// nothing to connect to.
    pub fn stats(&self) -> Option<BrokerStats> {
        match &self.kind {
            Kind::Memory(_) => None,
            #[cfg(feature = "redis")]
            Kind::Redis(redis) => Some(redis.stats()),
        }
    }

    /// Which broker this is, for logs: `memory` or `redis`.
    pub fn name(&self) -> &'static str {
        match &self.kind {
            Kind::Memory(_) => "memory",
            #[cfg(feature = "redis")]
            Kind::Redis(_) => "redis",
        }
    }
}
