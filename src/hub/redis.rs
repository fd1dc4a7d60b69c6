//! The Redis broker: channels, ids, history and cross-node fan-out in
//! Redis, in the shape Centrifugo gave it.
//!
//! ## Keys (one hash tag per channel, so its keys share one Cluster slot)
//!
//! | key | what |
//! | --- | --- |
//! | `rtwire:{CHANNEL}:meta` | hash: `epoch` (8 hex digits), `seq` (the newest sequence number) |
//! | `rtwire:{CHANNEL}:stream` | Redis Stream, entry id `SEQ-0`, fields `s` (sender id, or empty) and `d` (payload); at most [`HubConfig::history_messages`](super::HubConfig::history_messages) entries |
//! | `rtwire:{CHANNEL}:pub` | pub/sub channel: `EPOCH:SEQ:SENDER:PAYLOAD`, binary-safe |
//!
//! Both keys expire [`HubConfig::idle_timeout`](super::HubConfig::idle_timeout)
//! after the channel's last publish.
//!
//! ## One Lua script per publish
//!
//! It creates the epoch when the meta is missing (or when the meta
//! numbered messages but the stream is gone: the history was lost, so a
//! new epoch begins), increments `seq`, appends to the stream, refreshes
//! both TTLs and PUBLISHes, atomically. The node answers 202 only after
//! the script returned, so an acknowledged message is in Redis.
//!
//! ## Mirrors
//!
//! Each node keeps one pub/sub connection and SUBSCRIBEs once per channel
//! its hub mirrors. A channel is mirrored from the first time a local
//! client subscribes to it or polls it ([`Broker::attach`](super::Broker::attach)): SUBSCRIBE
//! first, then read the meta and the stream (one read-only step), so
//! nothing falls between the two; duplicates are skipped by sequence
//! number. It stops being mirrored when the local hub sweeps the channel
//! (nobody listening, history empty or idle). Every message that arrives,
//! the node's own included, is applied to the hub in sequence order
//! ([`Hub::apply`]); one that does not follow makes the node read the
//! stream from its last applied message ([`Hub::sync`]).
//!
//! ## Faults
//!
//! Every Redis call has a deadline. A publish that fails or times out is
//! refused ([`PublishError::Unavailable`], HTTP 503). The pub/sub
//! connection is pinged; when it breaks, the node reconnects with
//! exponential backoff and jitter, resubscribes, and reads each mirrored
//! channel's stream from its last applied message, so subscribers (who
//! stay connected) get what was published meanwhile, in order, once. What
//! the stream no longer holds starts the channel over with a gap; a new
//! epoch (Redis flushed, keys expired or evicted) with an epoch change:
//! live subscriptions end with [`Closed::Reset`](super::Closed::Reset) and
//! the clients resume to be told which.
//!
//! Redis Cluster and sharded pub/sub are **not supported** in this
//! version: the keys carry hash tags so that a later version can, but the
//! client here is a single-node one.

use super::broker::{BrokerStats, PublishError};
use super::id::{MessageId, SenderId};
use super::mirror::{Applied, Mirrored, Snapshot};
use super::{Hub, HubError};
use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSubSink};
use redis::{Client, Script, Value};
use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep, timeout};

/// How a node reaches Redis, and its deadlines.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisConfig {
    /// `redis://HOST:PORT/DB` (or `redis://:PASSWORD@HOST:PORT/DB`).
    pub url: String,
    /// The deadline of one publish (the script's round trip). Default 3 s.
    pub publish_timeout: Duration,
    /// The deadline of the other calls: connecting, subscribing, reading a
    /// stream, a ping's answer. Default 5 s.
    pub read_timeout: Duration,
    /// How often the pub/sub connection is pinged (a silent Redis is
    /// noticed within this plus `read_timeout`). Default 2 s.
    pub ping_interval: Duration,
    /// The first wait before reconnecting; doubled at each failure, with
    /// jitter. Default 100 ms.
    pub backoff_min: Duration,
    /// The longest wait before reconnecting. Default 5 s.
    pub backoff_max: Duration,
}

impl RedisConfig {
    /// The defaults, for the server at `url`.
    pub fn new(url: impl Into<String>) -> RedisConfig {
        RedisConfig {
            url: url.into(),
            publish_timeout: Duration::from_secs(3),
            read_timeout: Duration::from_secs(5),
            ping_interval: Duration::from_secs(2),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
        }
    }
}

/// Prints everything but a password in the URL.
impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redacted(&self.url))
            .field("publish_timeout", &self.publish_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("ping_interval", &self.ping_interval)
            .field("backoff_min", &self.backoff_min)
            .field("backoff_max", &self.backoff_max)
            .finish()
    }
}

/// Why [`Broker::redis`](super::Broker::redis) could not start; the URL
/// in it has its password redacted.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL is not one the client understands: the caller's mistake.
    InvalidUrl {
        /// The URL, redacted.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The server refused, failed or did not answer in time.
    Unreachable {
        /// The URL, redacted.
        url: String,
        /// What happened.
        reason: String,
    },
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::InvalidUrl { url, reason } => {
                write!(f, "invalid Redis URL {url}: {reason}")
            }
            ConnectError::Unreachable { url, reason } => {
                write!(f, "cannot reach Redis at {url}: {reason}")
            }
        }
    }
}

impl std::error::Error for ConnectError {}

impl From<ConnectError> for std::io::Error {
    /// An `InvalidInput` error for a bad URL, `NotConnected` for a server
    /// that cannot be reached; the [`ConnectError`] is its inner error.
    fn from(e: ConnectError) -> Self {
        let kind = match e {
            ConnectError::InvalidUrl { .. } => std::io::ErrorKind::InvalidInput,
            ConnectError::Unreachable { .. } => std::io::ErrorKind::NotConnected,
        };
        std::io::Error::new(kind, e)
    }
}

/// The URL without its credentials.
fn redacted(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, _)), Some(at)) => format!("{scheme}://<redacted>@{}", &url[at + 1..]),
        _ => url.to_owned(),
    }
}

/// Makes the channel's epoch when it has none, or when its meta numbered
/// messages whose stream is gone (the history was lost). KEYS: meta,
/// stream. ARGV[1]: a random epoch to use if need be; ARGV[2]: the TTL.
const ENSURE_EPOCH: &str = r"
local epoch = redis.call('HGET', KEYS[1], 'epoch')
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
if epoch and seq > 0 and redis.call('EXISTS', KEYS[2]) == 0 then
  epoch = false
end
if not epoch then
  epoch = ARGV[1]
  seq = 0
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0, 'bytes', 0)
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
";

/// ARGV[3]: the payload; ARGV[4]: the sender ('' for none); ARGV[5]: the
/// most entries the stream keeps; ARGV[6]: the pub/sub channel; ARGV[7]:
/// the most payload bytes it keeps (the newest entry always stays).
/// Returns {epoch, seq}.
const PUBLISH_TAIL: &str = r"
seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local id = string.format('%d', seq)
redis.call('XADD', KEYS[2], id .. '-0', 's', ARGV[4], 'd', ARGV[3])
local bytes = redis.call('HINCRBY', KEYS[1], 'bytes', string.len(ARGV[3]))
local count = redis.call('XLEN', KEYS[2])
local max_count = tonumber(ARGV[5])
local max_bytes = tonumber(ARGV[7])
while count > 1 and (count > max_count or bytes > max_bytes) do
  local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)[1]
  local fields = oldest[2]
  for i = 1, #fields, 2 do
    if fields[i] == 'd' then
      bytes = redis.call('HINCRBY', KEYS[1], 'bytes', -string.len(fields[i + 1]))
    end
  end
  redis.call('XDEL', KEYS[2], oldest[1])
  count = count - 1
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('PUBLISH', ARGV[6], epoch .. ':' .. id .. ':' .. ARGV[4] .. ':' .. ARGV[3])
return {epoch, seq}
";

/// ARGV[3]: the epoch the node holds ('' if none); ARGV[4]: the newest
/// sequence number it holds. Returns {epoch, seq, entries}: the entries
/// after that number if the epoch is the same, else all of them.
const LOAD_TAIL: &str = r"
local from = '-'
if epoch == ARGV[3] then
  from = string.format('%d', tonumber(ARGV[4]) + 1)
end
return {epoch, seq, redis.call('XRANGE', KEYS[2], from, '+')}
";

/// Requests to the mirror task.
enum Request {
    /// Mirror this channel; answer once the hub holds what Redis holds.
    Attach {
        channel: String,
        reply: oneshot::Sender<Result<(), PublishError>>,
    },
}

/// What the broker and its mirror task share.
struct Shared {
    hub: Hub,
    config: RedisConfig,
    client: Client,
    commands: ConnectionManager,
    publish: Script,
    load: Script,
    counters: Counters,
}

/// What [`BrokerStats`] reports, kept as the broker goes.
#[derive(Default)]
struct Counters {
    connected: AtomicBool,
    publishes_refused: AtomicU64,
    attaches_refused: AtomicU64,
    connection_failures: AtomicU64,
    resyncs: AtomicU64,
    mirrored_channels: AtomicU64,
}

impl Counters {
    fn count_refusal<T>(&self, counter: &AtomicU64, result: &Result<T, PublishError>) {
        if let Err(PublishError::Unavailable(_)) = result {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn stats(&self) -> BrokerStats {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        BrokerStats {
            connected: self.connected.load(Ordering::Relaxed),
            publishes_refused: load(&self.publishes_refused),
            attaches_refused: load(&self.attaches_refused),
            connection_failures: load(&self.connection_failures),
            resyncs: load(&self.resyncs),
            mirrored_channels: load(&self.mirrored_channels),
        }
    }
}

/// The Redis broker of one node; see the [module docs](self).
pub(crate) struct RedisBroker {
    shared: std::sync::Arc<Shared>,
    requests: mpsc::UnboundedSender<Request>,
    task: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.shared.config.fmt(f)
    }
}

impl Drop for RedisBroker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RedisBroker {
    /// Connects the command connection (now, so that a bad URL or a Redis
    /// that does not answer fails the start) and starts the mirror task.
    pub(crate) async fn connect(
        hub: Hub,
        config: RedisConfig,
    ) -> Result<RedisBroker, ConnectError> {
        let url = redacted(&config.url);
        let client = Client::open(config.url.as_str()).map_err(|e| ConnectError::InvalidUrl {
            url: url.clone(),
            reason: e.to_string(),
        })?;
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.read_timeout))
            .set_response_timeout(Some(config.read_timeout))
            .set_number_of_retries(1)
            .set_max_delay(config.backoff_max);
        let unreachable = |reason: String| ConnectError::Unreachable {
            url: url.clone(),
            reason,
        };
        let commands = timeout(
            config.read_timeout,
            client.get_connection_manager_with_config(manager),
        )
        .await
        .map_err(|_| unreachable(format!("no answer within {:?}", config.read_timeout)))?
        .map_err(|e| unreachable(e.to_string()))?;
        let shared = std::sync::Arc::new(Shared {
            hub,
            config,
            client,
            commands,
            publish: Script::new(&format!("{ENSURE_EPOCH}{PUBLISH_TAIL}")),
            load: Script::new(&format!("{ENSURE_EPOCH}{LOAD_TAIL}")),
            counters: Counters::default(),
        });
        let (requests, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(mirror_task(shared.clone(), rx));
        Ok(RedisBroker {
            shared,
            requests,
            task,
        })
    }

    pub(crate) fn hub(&self) -> &Hub {
        &self.shared.hub
    }

    pub(crate) fn stats(&self) -> BrokerStats {
        self.shared.counters.stats()
    }

    /// One publish: the script's round trip, then the message applied to
    /// the local hub at once if it follows what the hub holds (else its
    /// pub/sub echo or a stream read brings it).
    pub(crate) async fn publish(
        &self,
        channel: &str,
        data: Bytes,
        sender: Option<SenderId>,
    ) -> Result<MessageId, PublishError> {
        let result = self.publish_once(channel, data, sender).await;
        let counters = &self.shared.counters;
        counters.count_refusal(&counters.publishes_refused, &result);
        result
    }

    async fn publish_once(
        &self,
        channel: &str,
        data: Bytes,
        sender: Option<SenderId>,
    ) -> Result<MessageId, PublishError> {
        let shared = &*self.shared;
        let hub_config = shared.hub.config();
        let limit = hub_config.max_message_bytes;
        if data.len() > limit {
            let size = data.len();
            return Err(HubError::MessageTooLarge { size, limit }.into());
        }
        if shared.hub.is_shut_down() {
            return Err(HubError::Shutdown.into());
        }
        let keys = Keys::new(channel);
        let sender_text = sender.map(|s| s.0.to_string()).unwrap_or_default();
        let mut invocation = shared.publish.prepare_invoke();
        invocation
            .key(&keys.meta)
            .key(&keys.stream)
            .arg(random_epoch())
            .arg(ttl_seconds(hub_config.idle_timeout))
            .arg(data.as_ref())
            .arg(&sender_text)
            .arg(hub_config.history_messages.max(1))
            .arg(&keys.publish)
            .arg(hub_config.history_bytes.max(1));
        let mut commands = shared.commands.clone();
        let answer = timeout(
            shared.config.publish_timeout,
            invocation.invoke_async::<(String, u64)>(&mut commands),
        )
        .await;
        let (epoch, seq) = match answer {
            Err(_) => {
                return Err(PublishError::Unavailable(
                    "redis did not answer in time".into(),
                ))
            }
            Ok(Err(e)) => return Err(PublishError::Unavailable(format!("redis: {e}"))),
            Ok(Ok(answer)) => answer,
        };
        let epoch = parse_epoch(epoch.as_bytes())
            .ok_or_else(|| PublishError::Unavailable("redis: malformed epoch".into()))?;
        let id = MessageId { epoch, seq };
        let _ = shared.hub.apply(channel, Mirrored { id, data, sender });
        Ok(id)
    }

    /// Makes the hub mirror `channel` (see the [module docs](self)).
    pub(crate) async fn attach(&self, channel: &str) -> Result<(), PublishError> {
        let result = self.attach_once(channel).await;
        let counters = &self.shared.counters;
        counters.count_refusal(&counters.attaches_refused, &result);
        result
    }

    async fn attach_once(&self, channel: &str) -> Result<(), PublishError> {
        // Mirrored already: the mirror task keeps it up to date (or will,
        // once Redis is back), no need to ask it.
        if self.shared.hub.mirrored_last(channel).is_some() {
            return Ok(());
        }
        let (reply, answer) = oneshot::channel();
        let request = Request::Attach {
            channel: channel.to_owned(),
            reply,
        };
        if self.requests.send(request).is_err() {
            return Err(HubError::Shutdown.into());
        }
        // Subscribing and reading the stream each have the read timeout.
        let deadline = self.shared.config.read_timeout * 2;
        match timeout(deadline, answer).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(HubError::Shutdown.into()),
            Err(_) => Err(PublishError::Unavailable(
                "redis did not answer in time".into(),
            )),
        }
    }
}

/// The three names of one channel in Redis.
struct Keys {
    meta: String,
    stream: String,
    publish: String,
}

impl Keys {
    fn new(channel: &str) -> Keys {
        Keys {
            meta: format!("rtwire:{{{channel}}}:meta"),
            stream: format!("rtwire:{{{channel}}}:stream"),
            publish: publish_channel(channel),
        }
    }
}

fn publish_channel(channel: &str) -> String {
    format!("rtwire:{{{channel}}}:pub")
}

/// The channel a pub/sub channel name belongs to.
fn channel_of(pubsub_name: &str) -> Option<&str> {
    pubsub_name.strip_prefix("rtwire:{")?.strip_suffix("}:pub")
}

fn random_epoch() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// Redis wants whole seconds, at least one.
fn ttl_seconds(idle: Duration) -> u64 {
    idle.as_secs().max(1)
}

fn parse_epoch(text: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(text).ok()?;
    (text.len() == 8).then_some(())?;
    u32::from_str_radix(text, 16).ok()
}

fn parse_u64(text: &[u8]) -> Option<u64> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

fn parse_sender(text: &[u8]) -> Option<Option<SenderId>> {
    if text.is_empty() {
        return Some(None);
    }
    parse_u64(text).map(|n| Some(SenderId(n)))
}

/// `EPOCH:SEQ:SENDER:PAYLOAD`, as the publish script sends it.
fn parse_published(payload: &[u8]) -> Option<Mirrored> {
    let mut parts = payload.splitn(4, |&b| b == b':');
    let epoch = parse_epoch(parts.next()?)?;
    let seq = parse_u64(parts.next()?)?;
    let sender = parse_sender(parts.next()?)?;
    let data = Bytes::copy_from_slice(parts.next()?);
    Some(Mirrored {
        id: MessageId { epoch, seq },
        data,
        sender,
    })
}

fn bulk(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(bytes) => Some(bytes),
        Value::SimpleString(text) => Some(text.as_bytes()),
        _ => None,
    }
}

/// The load script's answer: `{epoch, seq, {{id, {field, value, ...}}, ...}}`.
fn parse_snapshot(value: &Value) -> Option<Snapshot> {
    let Value::Array(parts) = value else {
        return None;
    };
    let [epoch, seq, entries] = parts.as_slice() else {
        return None;
    };
    let epoch = parse_epoch(bulk(epoch)?)?;
    let last_seq = match seq {
        Value::Int(n) => u64::try_from(*n).ok()?,
        other => parse_u64(bulk(other)?)?,
    };
    let Value::Array(entries) = entries else {
        return None;
    };
    let mut messages = Vec::with_capacity(entries.len());
    for entry in entries {
        let Value::Array(entry) = entry else {
            return None;
        };
        let [id, fields] = entry.as_slice() else {
            return None;
        };
        let id = bulk(id)?;
        let seq = parse_u64(id.split(|&b| b == b'-').next()?)?;
        let Value::Array(fields) = fields else {
            return None;
        };
        let (mut sender, mut data) = (None, None);
        for pair in fields.chunks(2) {
            match (bulk(&pair[0])?, pair.get(1).and_then(bulk)) {
                (b"s", Some(v)) => sender = Some(parse_sender(v)?),
                (b"d", Some(v)) => data = Some(Bytes::copy_from_slice(v)),
                _ => {}
            }
        }
        messages.push(Mirrored {
            id: MessageId { epoch, seq },
            data: data?,
            sender: sender?,
        });
    }
    Some(Snapshot {
        epoch,
        last_seq,
        messages,
    })
}

/// Why a channel could not be resynced.
enum ResyncError {
    /// Redis failed: reconnect.
    Redis(String),
    /// The hub refused the channel (full, shut down): stop mirroring it.
    Hub(HubError),
}

/// Reads what Redis holds of `channel` after what the hub holds, and
/// brings the hub in line.
async fn resync(shared: &Shared, channel: &str) -> Result<(), ResyncError> {
    shared.counters.resyncs.fetch_add(1, Ordering::Relaxed);
    let keys = Keys::new(channel);
    let held = shared.hub.mirrored_last(channel);
    let (epoch, after) = match held {
        Some(id) => (format!("{:08x}", id.epoch), id.seq),
        None => (String::new(), 0),
    };
    let mut invocation = shared.load.prepare_invoke();
    invocation
        .key(&keys.meta)
        .key(&keys.stream)
        .arg(random_epoch())
        .arg(ttl_seconds(shared.hub.config().idle_timeout))
        .arg(&epoch)
        .arg(after);
    let mut commands = shared.commands.clone();
    let answer = timeout(
        shared.config.read_timeout,
        invocation.invoke_async::<Value>(&mut commands),
    )
    .await
    .map_err(|_| ResyncError::Redis("redis did not answer in time".to_owned()))?
    .map_err(|e| ResyncError::Redis(format!("redis: {e}")))?;
    let snapshot = parse_snapshot(&answer)
        .ok_or_else(|| ResyncError::Redis("redis: malformed stream read".to_owned()))?;
    let synced = shared
        .hub
        .sync(channel, snapshot)
        .map_err(ResyncError::Hub)?;
    if synced.reset {
        tracing::debug!(channel, last = %synced.last, "redis mirror started over");
    }
    Ok(())
}

/// Why a connected session of the mirror task ended.
enum Ended {
    /// The broker was dropped.
    Stopped,
    /// Redis failed; reconnect.
    Failed(String),
}

/// Runs the pub/sub connection for the node's lifetime: connect, resubscribe,
/// resync, apply; on failure back off and do it again.
async fn mirror_task(
    shared: std::sync::Arc<Shared>,
    mut requests: mpsc::UnboundedReceiver<Request>,
) {
    let mut mirrors: HashSet<String> = HashSet::new();
    let mut failures = 0u32;
    loop {
        let ended = session(&shared, &mut requests, &mut mirrors, &mut failures).await;
        let counters = &shared.counters;
        counters.connected.store(false, Ordering::Relaxed);
        counters
            .mirrored_channels
            .store(mirrors.len() as u64, Ordering::Relaxed);
        if let Ended::Failed(_) = ended {
            counters.connection_failures.fetch_add(1, Ordering::Relaxed);
        }
        match ended {
            Ended::Stopped => return,
            // Said once per outage; each failed attempt after it is a debug event.
            Ended::Failed(why) if failures == 0 => {
                tracing::warn!(reason = %why, "redis unreachable; reconnecting with backoff");
            }
            Ended::Failed(why) => {
                tracing::debug!(reason = %why, failures, "redis still unreachable");
            }
        }
        let wait = backoff(&shared.config, failures);
        failures = failures.saturating_add(1);
        // While waiting: channels already mirrored are served from the
        // hub (stale until Redis is back); new ones are refused.
        let wake = sleep(wait);
        tokio::pin!(wake);
        loop {
            tokio::select! {
                () = &mut wake => break,
                request = requests.recv() => match request {
                    None => return,
                    Some(request) => answer_offline(&shared, &mirrors, request),
                },
            }
        }
    }
}

/// The wait before reconnection attempt `failures` (from 0): doubling from
/// the minimum up to the maximum, then a random half to all of it.
fn backoff(config: &RedisConfig, failures: u32) -> Duration {
    let doubled = config
        .backoff_min
        .saturating_mul(1u32 << failures.min(20))
        .min(config.backoff_max);
    let half = doubled / 2;
    half + doubled.mul_f64(rand::random::<f64>() / 2.0)
}

fn answer_offline(shared: &Shared, mirrors: &HashSet<String>, request: Request) {
    let Request::Attach { channel, reply } = request;
    let answer = if mirrors.contains(&channel) && shared.hub.mirrored_last(&channel).is_some() {
        Ok(())
    } else {
        Err(PublishError::Unavailable("redis unreachable".to_owned()))
    };
    let _ = reply.send(answer);
}

/// One connected session of the pub/sub connection.
async fn session(
    shared: &Shared,
    requests: &mut mpsc::UnboundedReceiver<Request>,
    mirrors: &mut HashSet<String>,
    failures: &mut u32,
) -> Ended {
    let read_timeout = shared.config.read_timeout;
    let pubsub = match timeout(read_timeout, shared.client.get_async_pubsub()).await {
        Ok(Ok(pubsub)) => pubsub,
        Ok(Err(e)) => return Ended::Failed(format!("redis pub/sub: {e}")),
        Err(_) => return Ended::Failed("redis pub/sub: no answer in time".into()),
    };
    let (mut sink, mut stream) = pubsub.split();
    // Resubscribe first, then read what was missed: nothing falls between.
    mirrors.retain(|channel| shared.hub.contains(channel));
    let names: Vec<String> = mirrors.iter().map(|c| publish_channel(c)).collect();
    for chunk in names.chunks(256) {
        if let Err(why) = call(read_timeout, sink.subscribe(chunk)).await {
            return Ended::Failed(why);
        }
    }
    let channels: Vec<String> = mirrors.iter().cloned().collect();
    for channel in channels {
        if let Err(ended) = resync_or_forget(shared, &mut sink, mirrors, &channel).await {
            return ended;
        }
    }
    if *failures > 0 {
        tracing::info!(channels = mirrors.len(), "redis pub/sub connection back");
    }
    *failures = 0;
    shared.counters.connected.store(true, Ordering::Relaxed);
    let mut ping = tokio::time::interval(shared.config.ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Channels whose pub/sub messages are applied here; resynced once each
    // when a message did not follow.
    let mut pending: HashSet<String> = HashSet::new();
    loop {
        let mirrored = mirrors.len() as u64;
        shared
            .counters
            .mirrored_channels
            .store(mirrored, Ordering::Relaxed);
        tokio::select! {
            message = std::future::poll_fn(|cx| {
                futures_core::Stream::poll_next(std::pin::Pin::new(&mut stream), cx)
            }) => {
                let Some(message) = message else {
                    return Ended::Failed("redis pub/sub connection closed".into());
                };
                let Some(channel) = channel_of(message.get_channel_name()) else {
                    continue;
                };
                if !mirrors.contains(channel) {
                    continue;
                }
                let Some(mirrored) = parse_published(message.get_payload_bytes()) else {
                    tracing::warn!(channel, "malformed message on redis pub/sub ignored");
                    continue;
                };
                match shared.hub.apply(channel, mirrored) {
                    Applied::Appended(_) | Applied::Duplicate => {}
                    Applied::Hole { .. } => {
                        pending.insert(channel.to_owned());
                    }
                    Applied::NoChannel => {
                        let channel = channel.to_owned();
                        if let Err(why) = forget(&mut sink, mirrors, &channel, read_timeout).await {
                            return Ended::Failed(why);
                        }
                    }
                }
                for channel in pending.drain() {
                    if let Err(ended) = resync_or_forget(shared, &mut sink, mirrors, &channel).await {
                        return ended;
                    }
                }
            }
            request = requests.recv() => {
                let Some(Request::Attach { channel, reply }) = request else {
                    return Ended::Stopped;
                };
                if mirrors.contains(&channel) && shared.hub.mirrored_last(&channel).is_some() {
                    let _ = reply.send(Ok(()));
                    continue;
                }
                if let Err(why) = call(read_timeout, sink.subscribe(publish_channel(&channel))).await {
                    let _ = reply.send(Err(PublishError::Unavailable(why.clone())));
                    return Ended::Failed(why);
                }
                mirrors.insert(channel.clone());
                match resync(shared, &channel).await {
                    Ok(()) => {
                        let _ = reply.send(Ok(()));
                    }
                    Err(ResyncError::Hub(e)) => {
                        let _ = reply.send(Err(e.into()));
                        if let Err(why) = forget(&mut sink, mirrors, &channel, read_timeout).await {
                            return Ended::Failed(why);
                        }
                    }
                    Err(ResyncError::Redis(why)) => {
                        let _ = reply.send(Err(PublishError::Unavailable(why.clone())));
                        return Ended::Failed(why);
                    }
                }
            }
            _ = ping.tick() => {
                if let Err(why) = call(read_timeout, sink.ping::<Value>()).await {
                    return Ended::Failed(why);
                }
                // Channels the hub swept are mirrored no more.
                let swept: Vec<String> = mirrors
                    .iter()
                    .filter(|channel| !shared.hub.contains(channel))
                    .cloned()
                    .collect();
                for channel in swept {
                    if let Err(why) = forget(&mut sink, mirrors, &channel, read_timeout).await {
                        return Ended::Failed(why);
                    }
                }
                if shared.hub.is_shut_down() {
                    return Ended::Stopped;
                }
            }
        }
    }
}

/// Resyncs `channel`; a channel the hub refuses is mirrored no more, a
/// Redis failure ends the session.
async fn resync_or_forget(
    shared: &Shared,
    sink: &mut PubSubSink,
    mirrors: &mut HashSet<String>,
    channel: &str,
) -> Result<(), Ended> {
    match resync(shared, channel).await {
        Ok(()) => Ok(()),
        Err(ResyncError::Redis(why)) => Err(Ended::Failed(why)),
        Err(ResyncError::Hub(e)) => {
            tracing::debug!(channel, error = %e, "redis mirror dropped");
            forget(sink, mirrors, channel, shared.config.read_timeout)
                .await
                .map_err(Ended::Failed)
        }
    }
}

/// Stops mirroring `channel`.
async fn forget(
    sink: &mut PubSubSink,
    mirrors: &mut HashSet<String>,
    channel: &str,
    deadline: Duration,
) -> Result<(), String> {
    mirrors.remove(channel);
    call(deadline, sink.unsubscribe(publish_channel(channel))).await
}

/// A pub/sub call under `deadline`.
async fn call<T>(
    deadline: Duration,
    call: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, String> {
    match timeout(deadline, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(format!("redis pub/sub: {e}")),
        Err(_) => Err("redis pub/sub: no answer in time".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_payloads_parse_whatever_the_data() {
        let m = parse_published(b"0000002a:17:9:a:b:\x00\xff").unwrap();
        assert_eq!(m.id, MessageId { epoch: 42, seq: 17 });
        assert_eq!(m.sender, Some(SenderId(9)));
        assert_eq!(m.data, &b"a:b:\x00\xff"[..]);
        let m = parse_published(b"0000002a:1::").unwrap();
        assert_eq!((m.sender, m.data.len()), (None, 0));
        assert!(parse_published(b"2a:1::x").is_none());
        assert!(parse_published(b"0000002a:x::x").is_none());
    }

    #[test]
    fn names_and_credentials() {
        assert_eq!(channel_of(&publish_channel("a:b")), Some("a:b"));
        assert_eq!(channel_of("other"), None);
        assert_eq!(
            redacted("redis://:secret@127.0.0.1:6379/0"),
            "redis://<redacted>@127.0.0.1:6379/0"
        );
        assert_eq!(redacted("redis://127.0.0.1/1"), "redis://127.0.0.1/1");
    }

    #[test]
    fn backoff_grows_to_the_maximum_with_jitter() {
        let config = RedisConfig::new("redis://127.0.0.1");
        for failures in 0..40 {
            let wait = backoff(&config, failures);
            assert!(wait <= config.backoff_max, "{wait:?}");
            assert!(wait >= config.backoff_min / 2, "{wait:?}");
        }
    }
}
