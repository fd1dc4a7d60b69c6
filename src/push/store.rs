//! Where push keeps its endpoints: nowhere in memory (a restart forgets
//! them), in Redis with the Redis broker (they survive a restart, with
//! their cursors: what was pending is delivered after it).
//!
//! In Redis: the hash `rtwire:push:endpoints` (id → the endpoint as JSON)
//! and the hash `rtwire:push:cursors` (id → the id of the last message it
//! is done with). Writes never wait on Redis: the latest write of each
//! endpoint waits in a map for one writer task, which retries while
//! Redis is away; the map holds one entry per endpoint at most.
//!
//! One node runs push for a Redis: it holds `rtwire:push:owner` (a lease
//! it renews), so that two nodes never both deliver.

use super::endpoint::{Kind, Signing};
use crate::hub::MessageId;

/// An endpoint as stored.
#[derive(Clone)]
pub(crate) struct Stored {
    pub id: String,
    pub kind: Kind,
    pub channel: String,
    pub url: String,
    pub created_at: u64,
    pub signing: Signing,
    pub cursor: MessageId,
    pub disabled: Option<String>,
    pub lease_expires: Option<u64>,
}

/// The store of one server.
pub(crate) enum Store {
    /// Nothing is kept.
    Memory,
    /// Kept in Redis.
    #[cfg(feature = "redis")]
    Redis(std::sync::Arc<redis_store::RedisStore>),
}

impl Store {
    /// The store for a server on `redis` (Redis if given, else memory).
    #[cfg(feature = "redis")]
    pub async fn open(redis: Option<&crate::hub::redis::RedisConfig>) -> std::io::Result<Store> {
        match redis {
            None => Ok(Store::Memory),
            Some(config) => Ok(Store::Redis(redis_store::RedisStore::open(config).await?)),
        }
    }

    /// The endpoints kept, to start again.
    pub async fn load(&self) -> std::io::Result<Vec<Stored>> {
        match self {
            Store::Memory => Ok(Vec::new()),
            #[cfg(feature = "redis")]
            Store::Redis(store) => store.load().await,
        }
    }

    /// Keeps (or replaces) an endpoint.
    pub fn save(&self, endpoint: &Stored) {
        match self {
            Store::Memory => {
                let _ = endpoint;
            }
            #[cfg(feature = "redis")]
            Store::Redis(store) => store.save(endpoint),
        }
    }

    /// Keeps an endpoint's new cursor.
    pub fn save_cursor(&self, id: &str, cursor: MessageId) {
        match self {
            Store::Memory => {
                let _ = (id, cursor);
            }
            #[cfg(feature = "redis")]
            Store::Redis(store) => store.save_cursor(id, cursor),
        }
    }

    /// Forgets an endpoint.
    pub fn remove(&self, id: &str) {
        match self {
            Store::Memory => {
                let _ = id;
            }
            #[cfg(feature = "redis")]
            Store::Redis(store) => store.remove(id),
        }
    }

    /// Writes what is pending and gives up ownership (at shutdown).
    pub async fn close(&self) {
        match self {
            Store::Memory => {}
            #[cfg(feature = "redis")]
            Store::Redis(store) => store.close().await,
        }
    }
}

#[cfg(feature = "redis")]
mod redis_store {
    use super::{Kind, MessageId, Signing, Stored};
    use crate::hub::redis::RedisConfig;
    use crate::push::signature::WebhookSecret;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use redis::aio::{ConnectionManager, ConnectionManagerConfig};
    use redis::{AsyncCommands, Client, Script};
    use std::collections::HashMap;
    use std::io;
    use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
    use std::time::Duration;
    use tokio::sync::Notify;

    const ENDPOINTS: &str = "rtwire:push:endpoints";
    const CURSORS: &str = "rtwire:push:cursors";
    const OWNER: &str = "rtwire:push:owner";
    /// The owner's lease; renewed every third of it.
    const OWNER_LEASE: Duration = Duration::from_secs(30);
    /// How long a starting node waits for another to give push up.
    const OWNER_WAIT: Duration = Duration::from_secs(40);
    /// The pause after a failed write before the next try.
    const RETRY_PAUSE: Duration = Duration::from_secs(1);

    /// Renews the lease if this node still holds it. KEYS[1]: owner key;
    /// ARGV[1]: token, ARGV[2]: lease in ms.
    const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0";
    /// Gives the lease up if this node holds it. KEYS[1]: owner key; ARGV[1]: token.
    const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Json {
        kind: String,
        channel: String,
        url: String,
        created_at: u64,
        /// Webhooks: the `whsec_` secret, then the previous one during a
        /// rotation; WebSub: the `hub.secret`, base64.
        secrets: Vec<String>,
        /// Webhooks: when the previous secret stops signing.
        #[serde(default)]
        previous_until: Option<u64>,
        disabled: Option<String>,
        lease_expires: Option<u64>,
    }

    #[derive(Default)]
    struct Pending {
        /// id → the endpoint's JSON, or `None` to delete it.
        endpoints: HashMap<String, Option<String>>,
        /// id → its cursor, or `None` to delete it.
        cursors: HashMap<String, Option<String>>,
    }

    pub(crate) struct RedisStore {
        commands: ConnectionManager,
        token: String,
        pending: Mutex<Pending>,
        /// Wakes the writer: something is pending, or the store is gone.
        wake: Arc<Notify>,
        /// Woken by the writer each time the map is empty.
        flushed: Notify,
        renew: Script,
    }

    fn io_error(e: impl std::fmt::Display) -> io::Error {
        io::Error::other(format!("push store in Redis: {e}"))
    }

    impl RedisStore {
        pub async fn open(config: &RedisConfig) -> io::Result<Arc<RedisStore>> {
            let client = Client::open(config.url.as_str()).map_err(io_error)?;
            let manager = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(config.read_timeout))
                .set_response_timeout(Some(config.read_timeout))
                .set_number_of_retries(1)
                .set_max_delay(config.backoff_max);
            let connect = client.get_connection_manager_with_config(manager);
            let mut commands = tokio::time::timeout(config.read_timeout, connect)
                .await
                .map_err(|_| io_error("no answer"))?
                .map_err(io_error)?;
            let token = format!("{:016x}", rand::random::<u64>());
            take_ownership(&mut commands, &token).await?;
            let store = Arc::new(RedisStore {
                commands,
                token,
                pending: Mutex::default(),
                wake: Arc::new(Notify::new()),
                flushed: Notify::new(),
                renew: Script::new(RENEW),
            });
            let wake = store.wake.clone();
            tokio::spawn(writer(Arc::downgrade(&store), wake, store.commands.clone()));
            tokio::spawn(renewer(Arc::downgrade(&store)));
            Ok(store)
        }

        fn pending(&self) -> MutexGuard<'_, Pending> {
            self.pending.lock().unwrap_or_else(PoisonError::into_inner)
        }

        pub async fn load(&self) -> io::Result<Vec<Stored>> {
            let mut commands = self.commands.clone();
            let endpoints: HashMap<String, String> =
                commands.hgetall(ENDPOINTS).await.map_err(io_error)?;
            let cursors: HashMap<String, String> =
                commands.hgetall(CURSORS).await.map_err(io_error)?;
            let mut all = Vec::new();
            for (id, json) in endpoints {
                let cursor = cursors.get(&id).and_then(|c| c.parse().ok());
                match decode(&id, &json, cursor) {
                    Some(stored) => all.push(stored),
                    None => {
                        tracing::warn!(endpoint = %id, "push: a stored endpoint is unreadable; skipped")
                    }
                }
            }
            Ok(all)
        }

        /// A batch that failed goes back, unless newer writes replaced it.
        fn put_back(&self, batch: Pending) {
            let mut pending = self.pending();
            for (id, value) in batch.endpoints {
                pending.endpoints.entry(id).or_insert(value);
            }
            for (id, value) in batch.cursors {
                pending.cursors.entry(id).or_insert(value);
            }
        }

        pub fn save(&self, endpoint: &Stored) {
            let json = encode(endpoint);
            let mut pending = self.pending();
            pending.endpoints.insert(endpoint.id.clone(), Some(json));
            pending
                .cursors
                .insert(endpoint.id.clone(), Some(endpoint.cursor.to_string()));
            drop(pending);
            self.wake.notify_one();
        }

        pub fn save_cursor(&self, id: &str, cursor: MessageId) {
            let mut pending = self.pending();
            pending
                .cursors
                .insert(id.to_owned(), Some(cursor.to_string()));
            drop(pending);
            self.wake.notify_one();
        }

        pub fn remove(&self, id: &str) {
            let mut pending = self.pending();
            pending.endpoints.insert(id.to_owned(), None);
            pending.cursors.insert(id.to_owned(), None);
            drop(pending);
            self.wake.notify_one();
        }

        /// Waits (a few seconds at most) for the writer to empty the map,
        /// then gives ownership up so that a restart takes it at once.
        pub async fn close(&self) {
            let drained = async {
                loop {
                    let flushed = self.flushed.notified();
                    tokio::pin!(flushed);
                    flushed.as_mut().enable();
                    {
                        let pending = self.pending();
                        if pending.endpoints.is_empty() && pending.cursors.is_empty() {
                            return;
                        }
                    }
                    self.wake.notify_one();
                    flushed.await;
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(3), drained).await;
            let mut commands = self.commands.clone();
            let release = Script::new(RELEASE);
            let _ = release
                .key(OWNER)
                .arg(&self.token)
                .invoke_async::<i64>(&mut commands)
                .await;
        }
    }

    impl Drop for RedisStore {
        fn drop(&mut self) {
            // The writer wakes, finds the store gone, and ends.
            self.wake.notify_one();
        }
    }

    /// Takes `rtwire:push:owner`, waiting for another node's lease to end.
    async fn take_ownership(commands: &mut ConnectionManager, token: &str) -> io::Result<()> {
        let deadline = tokio::time::Instant::now() + OWNER_WAIT;
        let mut said = false;
        loop {
            let taken: Option<String> = redis::cmd("SET")
                .arg(OWNER)
                .arg(token)
                .arg("NX")
                .arg("PX")
                .arg(OWNER_LEASE.as_millis() as u64)
                .query_async(commands)
                .await
                .map_err(io_error)?;
            if taken.is_some() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(io_error(
                    "another node runs push on this Redis (it holds rtwire:push:owner): \
                     give --admin-token to one node only",
                ));
            }
            if !said {
                tracing::info!(
                    "push: another node holds rtwire:push:owner; waiting for its lease to end"
                );
                said = true;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn renewer(store: std::sync::Weak<RedisStore>) {
        let mut every = tokio::time::interval(OWNER_LEASE / 3);
        every.tick().await;
        loop {
            every.tick().await;
            let Some(store) = store.upgrade() else { return };
            let mut commands = store.commands.clone();
            let renewed = store
                .renew
                .key(OWNER)
                .arg(&store.token)
                .arg(OWNER_LEASE.as_millis() as u64)
                .invoke_async::<i64>(&mut commands)
                .await;
            match renewed {
                Ok(1) => {}
                Ok(_) => tracing::error!(
                    "push: lost rtwire:push:owner to another node; deliveries may be doubled"
                ),
                Err(e) => tracing::warn!(error = %e, "push: cannot renew rtwire:push:owner"),
            }
        }
    }

    /// Writes what is pending, oldest state first replaced by the newest.
    async fn writer(
        store: std::sync::Weak<RedisStore>,
        wake: Arc<Notify>,
        mut commands: ConnectionManager,
    ) {
        loop {
            let Some(strong) = store.upgrade() else {
                return;
            };
            let batch = {
                let mut pending = strong.pending();
                std::mem::take(&mut *pending)
            };
            if batch.endpoints.is_empty() && batch.cursors.is_empty() {
                strong.flushed.notify_waiters();
                drop(strong);
                // `notify_one` keeps a permit: a write made since the take
                // is not missed.
                wake.notified().await;
                continue;
            }
            drop(strong);
            if let Err(e) = write(&mut commands, &batch).await {
                tracing::warn!(error = %e, "push: cannot write to Redis; retrying");
                let Some(strong) = store.upgrade() else {
                    return;
                };
                strong.put_back(batch);
                drop(strong);
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }

    async fn write(commands: &mut ConnectionManager, batch: &Pending) -> redis::RedisResult<()> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (key, map) in [(ENDPOINTS, &batch.endpoints), (CURSORS, &batch.cursors)] {
            for (id, value) in map {
                match value {
                    Some(value) => pipe.hset(key, id, value).ignore(),
                    None => pipe.hdel(key, id).ignore(),
                };
            }
        }
        pipe.query_async(commands).await
    }

    fn encode(s: &Stored) -> String {
        let (secrets, previous_until) = match &s.signing {
            Signing::Webhook { current, previous } => {
                let mut secrets = vec![current.to_whsec()];
                secrets.extend(previous.iter().map(|(old, _)| old.to_whsec()));
                (secrets, previous.as_ref().map(|(_, until)| *until))
            }
            Signing::WebSub(secret) => (secret.iter().map(|s| STANDARD.encode(s)).collect(), None),
        };
        let json = Json {
            kind: s.kind.as_str().to_owned(),
            channel: s.channel.clone(),
            url: s.url.clone(),
            created_at: s.created_at,
            secrets,
            previous_until,
            disabled: s.disabled.clone(),
            lease_expires: s.lease_expires,
        };
        serde_json::to_string(&json).expect("an endpoint always serializes")
    }

    fn decode(id: &str, json: &str, cursor: Option<MessageId>) -> Option<Stored> {
        let json: Json = serde_json::from_str(json).ok()?;
        let (kind, signing) = match json.kind.as_str() {
            "webhook" => {
                let current = WebhookSecret::parse(json.secrets.first()?).ok()?;
                let previous = match (json.secrets.get(1), json.previous_until) {
                    (Some(old), Some(until)) => Some((WebhookSecret::parse(old).ok()?, until)),
                    _ => None,
                };
                (Kind::Webhook, Signing::Webhook { current, previous })
            }
            "websub" => {
                let secret = match json.secrets.first() {
                    Some(s) => Some(STANDARD.decode(s).ok()?),
                    None => None,
                };
                (Kind::WebSub, Signing::WebSub(secret))
            }
            _ => return None,
        };
        Some(Stored {
            id: id.to_owned(),
            kind,
            channel: json.channel,
            url: json.url,
            created_at: json.created_at,
            signing,
            cursor: cursor?,
            disabled: json.disabled,
            lease_expires: json.lease_expires,
        })
    }
}
