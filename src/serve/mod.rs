//! `rtwire serve`: one pub/sub [`Hub`] over four transports — WebSocket,
//! Server-Sent Events, long polling and short polling — on an HTTP/1.1
//! server built on rtwire's own parser.
//!
//! Routes (the README has curl sessions for each):
//!
//! | route | what |
//! | --- | --- |
//! | `POST /channels/{name}` | publish the body; 202 with `{"id": ...}` |
//! | `GET /channels/{name}/poll?since=ID` | short polling: newer messages at once |
//! | `GET /channels/{name}/long-poll?since=ID&timeout=S` | the hanging GET |
//! | `GET /channels/{name}/events` | SSE; resumes from `Last-Event-ID` or `?last-event-id=` |
//! | `GET /channels/{name}` | the channel as a WebSub topic: its latest message, `Link` rel `hub` and `self` |
//! | `GET /ws` | one WebSocket for many rooms, JSON commands |
//! | `/webhooks`, `/webhooks/{id}`, `/webhooks/{id}/deliveries`, `/webhooks/{id}/secret` | with [`ServeConfig::push`]: the webhook admin API, behind its admin token |
//! | `POST /websub` | with [`ServeConfig::push`]: the WebSub hub |
//! | `GET /` | the demo page |
//! | `GET /healthz`, `GET /metrics` | liveness, Prometheus text |
//!
//! Every transport is a thin adapter between the hub and its wire format;
//! a message published once reaches all of them with the same id.

mod accept;
mod admin;
mod auth;
mod cors;
mod embed;
mod http_conn;
mod json;
mod long_poll;
mod metrics;
mod params;
mod poll;
mod response;
mod routes;
mod sse;
mod websocket;

pub use accept::{raise_descriptor_limit, Accepted, Acceptor};
pub use auth::{
    secret_eq, Action, AuthFuture, AuthHook, AuthRequest, Denied, TokenAuth, UserTokenError,
    UserTokens, MIN_SECRET_LEN,
};
pub use cors::{Cors, CorsError};
pub use embed::{BoxFuture, Handler, HttpRequest, HttpResponse, InvalidResponse};
pub use params::{valid_channel, MAX_CHANNEL_LEN};

/// The transports' parsers of network input and the JSON encoders, for the
/// fuzz targets in `fuzz/`. Not part of the stable API.
#[doc(hidden)]
pub mod fuzzing {
    pub use super::json::{
        decode_command, decode_tagged, encode_delivery_json, encode_poll_item_json,
    };
    pub use super::json::{Command, CommandError, Tagged, MAX_REF};
    pub use super::params::{percent_decode, query_param};

    /// The `error` answer to a command, carrying its `ref` as `/ws` sends it.
    pub fn error_reply(reason: &str, reference: Option<&str>) -> String {
        super::json::Reply::Error { reason }.to_string_with(reference)
    }
}

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{watch, Notify, Semaphore};
use tracing::Instrument;

use crate::hub::{Broker, Hub, HubConfig};
use crate::proto::deflate::{CompressionKey, DeflateConfig};
use crate::proto::Keepalive;
use crate::push::Push;
use crate::ws::MaybeTlsStream;
use http_conn::HttpConn;
use metrics::Metrics;
use response::Response;

/// Limits and timings of the server. Every size has a limit.
#[derive(Clone)]
#[non_exhaustive]
pub struct ServeConfig {
    /// Where to listen. Default 127.0.0.1:8080.
    pub addr: SocketAddr,
    /// Largest request head; larger gets 431. Default 8 KiB.
    pub max_head_bytes: usize,
    /// Largest request body; larger gets 413. Default 1 MiB.
    pub max_body_bytes: usize,
    /// Time for a whole request head to arrive from its first byte, however
    /// it trickles in; else 408. Default 10 s.
    pub head_timeout: Duration,
    /// The slowest a body may arrive: it gets `head_timeout` plus its
    /// length at this rate, in bytes per second; else 408. Default 16 KiB/s
    /// (a 1 MiB body has 74 s).
    pub body_min_rate: usize,
    /// How long any write may wait for the client to accept a byte, on
    /// every transport; then the connection is closed and its slot,
    /// descriptor and buffers freed. Default 30 s.
    pub write_timeout: Duration,
    /// How long an idle keep-alive connection is kept. Default 60 s.
    pub idle_timeout: Duration,
    /// Open connections at most; beyond, 503. Default 10,000.
    pub max_connections: usize,
    /// Connections the kernel may queue before they are accepted (the
    /// `listen()` backlog, capped by `net.core.somaxconn`). Default 4096:
    /// the usual 128 overflows when thousands of clients reconnect at
    /// once, and the kernel then drops their SYNs for a second or more.
    pub listen_backlog: u32,
    /// Default wait of a long poll. Default 30 s.
    pub long_poll_timeout: Duration,
    /// Longest wait a client may ask for. Default 120 s.
    pub long_poll_max: Duration,
    /// Most messages in one poll answer. Default 1000.
    pub poll_max_messages: usize,
    /// Largest poll answer body, in bytes, short of its closing `next` and
    /// `more` fields (under 80 bytes): messages past it wait for the next
    /// poll (`"more":true`, ask again from `next`). One message is always
    /// sent, whatever its size. Default 1 MiB.
    pub poll_max_bytes: usize,
    /// SSE comment heartbeat interval. Default 15 s.
    pub sse_heartbeat: Duration,
    /// SSE `retry:` advice to clients. Default 3 s.
    pub sse_retry: Duration,
    /// Largest WebSocket message from a client. Default 1 MiB.
    pub ws_max_message: usize,
    /// permessage-deflate for `/ws`; default: the lean configuration.
    pub ws_deflate: Option<DeflateConfig>,
    /// Pings for silent `/ws` sockets, and how long they have to answer.
    /// Default: a ping after 30 s of silence, 20 s to answer.
    pub ws_keepalive: Option<Keepalive>,
    /// A `/ws` socket that has joined no room for this long is closed
    /// (1008). Default 60 s.
    pub ws_idle_timeout: Duration,
    /// Rooms one `/ws` socket may join at once. Default 100.
    pub ws_max_rooms: usize,
    /// How long shutdown waits for open requests. Default 5 s.
    pub shutdown_grace: Duration,
    /// How long a [fallback handler](Server::fallback) may take to answer;
    /// past it the client gets 503 and the handler's future is dropped.
    /// Default 30 s.
    pub handler_timeout: Duration,
    /// Whether `GET /` serves the demo page. `false` hands `/` to the
    /// fallback handler (or 404), for a program with a page of its own.
    /// Default true.
    pub demo_page: bool,
    /// Which other origins' pages may read the HTTP transports' answers
    /// (publish, polls, SSE); see [`Cors`]. Default `None`: closed, no
    /// CORS header at all.
    pub cors: Option<Cors>,
    /// A bearer token `GET /metrics` requires (`Authorization: Bearer`
    /// only, compared in constant time; else 401). Default `None`: open.
    pub metrics_token: Option<String>,
    /// Serve https and wss (on the same port) with this certificate.
    /// The TLS handshake must finish within `head_timeout`, and one that
    /// has taken a second gives its slot up when every slot is taken, as
    /// a slow request head does. Default `None`: plain http and ws.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub tls: Option<crate::ws::tls::TlsAcceptor>,
    /// Server-to-server push: webhooks and the WebSub hub, and their admin
    /// routes. Default `None`: off, and `/webhooks…` and `/websub` are 404.
    pub push: Option<crate::push::PushConfig>,
    /// The hub's limits.
    pub hub: HubConfig,
    /// Run on Redis: channels, ids, history and fan-out shared by every
    /// node given the same server (see [`crate::hub::redis`]). Default
    /// `None`: the in-memory hub of this process.
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub redis: Option<crate::hub::redis::RedisConfig>,
}

/// Prints every field but the metrics token's value.
impl fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured, so that a new field cannot be forgotten here.
        let ServeConfig {
            addr,
            max_head_bytes,
            max_body_bytes,
            head_timeout,
            body_min_rate,
            write_timeout,
            idle_timeout,
            max_connections,
            listen_backlog,
            long_poll_timeout,
            long_poll_max,
            poll_max_messages,
            poll_max_bytes,
            sse_heartbeat,
            sse_retry,
            ws_max_message,
            ws_deflate,
            ws_keepalive,
            ws_idle_timeout,
            ws_max_rooms,
            shutdown_grace,
            handler_timeout,
            demo_page,
            cors,
            metrics_token,
            #[cfg(feature = "tls")]
            tls,
            push,
            hub,
            #[cfg(feature = "redis")]
            redis,
        } = self;
        let mut f = f.debug_struct("ServeConfig");
        f.field("addr", addr)
            .field("max_head_bytes", max_head_bytes)
            .field("max_body_bytes", max_body_bytes)
            .field("head_timeout", head_timeout)
            .field("body_min_rate", body_min_rate)
            .field("write_timeout", write_timeout)
            .field("idle_timeout", idle_timeout)
            .field("max_connections", max_connections)
            .field("listen_backlog", listen_backlog)
            .field("long_poll_timeout", long_poll_timeout)
            .field("long_poll_max", long_poll_max)
            .field("poll_max_messages", poll_max_messages)
            .field("poll_max_bytes", poll_max_bytes)
            .field("sse_heartbeat", sse_heartbeat)
            .field("sse_retry", sse_retry)
            .field("ws_max_message", ws_max_message)
            .field("ws_deflate", ws_deflate)
            .field("ws_keepalive", ws_keepalive)
            .field("ws_idle_timeout", ws_idle_timeout)
            .field("ws_max_rooms", ws_max_rooms)
            .field("shutdown_grace", shutdown_grace)
            .field("handler_timeout", handler_timeout)
            .field("demo_page", demo_page)
            .field("cors", cors)
            .field(
                "metrics_token",
                &metrics_token.as_ref().map(|_| "<redacted>"),
            )
            .field("push", push)
            .field("hub", hub);
        #[cfg(feature = "tls")]
        f.field("tls", tls);
        #[cfg(feature = "redis")]
        f.field("redis", redis);
        f.finish()
    }
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_head_bytes: 8 * 1024,
            max_body_bytes: 1 << 20,
            head_timeout: Duration::from_secs(10),
            body_min_rate: 16 * 1024,
            write_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            listen_backlog: 4096,
            long_poll_timeout: Duration::from_secs(30),
            long_poll_max: Duration::from_secs(120),
            poll_max_messages: 1000,
            poll_max_bytes: 1 << 20,
            sse_heartbeat: Duration::from_secs(15),
            sse_retry: Duration::from_secs(3),
            ws_max_message: 1 << 20,
            ws_deflate: Some(DeflateConfig::lean()),
            ws_keepalive: Some(Keepalive {
                interval: Duration::from_secs(30),
                timeout: Duration::from_secs(20),
            }),
            ws_idle_timeout: Duration::from_secs(60),
            ws_max_rooms: 100,
            shutdown_grace: Duration::from_secs(5),
            handler_timeout: Duration::from_secs(30),
            demo_page: true,
            cors: None,
            metrics_token: None,
            #[cfg(feature = "tls")]
            tls: None,
            push: None,
            hub: HubConfig::default(),
            #[cfg(feature = "redis")]
            redis: None,
        }
    }
}

/// The broker `config` asks for.
async fn make_broker(config: &ServeConfig, hub: Hub) -> std::io::Result<Broker> {
    #[cfg(feature = "redis")]
    if let Some(redis) = &config.redis {
        return Ok(Broker::redis(hub, redis.clone()).await?);
    }
    let _ = config;
    Ok(Broker::memory(hub))
}

/// Push, if `config` turns it on, with topics under `http://ADDR` (or
/// `https://`) unless the config names a public URL.
async fn start_push(
    config: &ServeConfig,
    broker: &Broker,
    addr: SocketAddr,
) -> std::io::Result<Option<Push>> {
    let Some(push) = &config.push else {
        return Ok(None);
    };
    #[cfg(feature = "tls")]
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    #[cfg(not(feature = "tls"))]
    let scheme = "http";
    let base = format!("{scheme}://{addr}");
    #[cfg(feature = "redis")]
    let store = crate::push::Store::open(config.redis.as_ref()).await?;
    #[cfg(not(feature = "redis"))]
    let store = crate::push::Store::Memory;
    Ok(Some(
        Push::start(push.clone(), broker.clone(), &base, store).await?,
    ))
}

/// A listening socket with `backlog` (tokio's `TcpListener::bind` uses 128).
pub fn listen(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As `TcpListener::bind` does: a restart may bind while old
    // connections linger in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// The most messages one write to a subscriber carries (SSE, `/ws`): one
/// that fell behind catches up in a few writes, not one per message.
pub(crate) const BATCH_MESSAGES: usize = 64;
/// The most bytes gathered for one write to a subscriber.
pub(crate) const BATCH_BYTES: usize = 64 * 1024;

/// Clients over the connection cap being answered with 503 at once.
const REFUSALS_AT_ONCE: usize = 256;
/// How long a client over the cap waits for a slot that shedding frees.
const SLOT_WAIT: Duration = Duration::from_millis(250);
/// How long a 503 to a client over the cap may take to write.
const REFUSAL_TIME: Duration = Duration::from_secs(1);

/// What every connection task shares.
pub(crate) struct App {
    pub config: ServeConfig,
    pub hub: Hub,
    /// Who numbers and fans out messages: publishes go through it, and
    /// every read first `attach`es the channel.
    pub broker: Broker,
    /// Webhooks and the WebSub hub, when on.
    pub push: Option<Push>,
    pub auth: Box<dyn AuthHook>,
    /// The embedding program's routes: whatever rtwire does not route.
    pub fallback: Option<Box<dyn Handler>>,
    pub metrics: Metrics,
    /// Becomes true when the server shuts down.
    pub shutdown: watch::Receiver<bool>,
    /// Notified when every slot is taken and a new client waits: idle and
    /// slow connections close to make room.
    pub shed: Notify,
    /// The compression of `/ws` sockets that took `ws_deflate` as it is
    /// (without context takeover): each message is compressed once for
    /// all of them.
    pub shared_compression: Option<CompressionKey>,
}

/// Serves one client's requests until its connection closes, its log
/// events in a `connection` span that names the peer.
fn serve_client(app: Arc<App>, stream: TcpStream, peer: SocketAddr) -> impl Future<Output = ()> {
    let span = tracing::debug_span!("connection", %peer);
    // The task keeps room for the largest state of this future as long as
    // the connection lives, so each phase is boxed and dropped before the
    // next: a subscriber keeps its stream's state, not the request loop's
    // or the TLS handshake's.
    let serve = async move {
        let Some(stream) = Box::pin(secure(&app, stream)).await else {
            return;
        };
        let _open = app.metrics.connection();
        let conn = HttpConn::new(
            stream,
            app.config.write_timeout,
            app.metrics.traffic.clone(),
        );
        tracing::debug!("connection opened");
        // Bound in one statement, so no room is kept for the handoff
        // beside the stream's box.
        let serving = Box::pin(routes::serve_connection(&app, conn, peer))
            .await
            .map(|handoff| handoff.serve(&app));
        if let Some(serving) = serving {
            serving.await;
        }
        tracing::debug!("connection closed");
    };
    serve.instrument(span)
}

/// The stream every connection runs over: TLS when the server has a
/// certificate, else plain.
pub(crate) type Stream = MaybeTlsStream<TcpStream>;

/// The client's TLS handshake when the server has a certificate, by
/// `head_timeout`; a handshake that has taken a second yields its slot to
/// a waiting newcomer, as a slow request head does. `None`: the client
/// is gone, its failure logged.
#[cfg(feature = "tls")]
async fn secure(app: &App, stream: TcpStream) -> Option<Stream> {
    let Some(acceptor) = &app.config.tls else {
        return Some(MaybeTlsStream::Plain(stream));
    };
    let started = tokio::time::Instant::now();
    let deadline = started + app.config.head_timeout;
    let mut handshake = std::pin::pin!(tokio::time::timeout_at(deadline, acceptor.accept(stream)));
    let failure = loop {
        tokio::select! {
            done = &mut handshake => match done {
                Ok(Ok(stream)) => return Some(stream),
                Ok(Err(e)) => break e.to_string(),
                Err(_) => break "not finished in time".to_owned(),
            },
            () = app.shed.notified() => {
                if started.elapsed() >= http_conn::SHED_AFTER {
                    break "shed to make room".to_owned();
                }
            }
        }
    };
    app.metrics.tls_handshake_failed();
    tracing::debug!(reason = %failure, "TLS handshake failed");
    None
}

/// Without the `tls` feature every connection is plain.
#[cfg(not(feature = "tls"))]
async fn secure(_app: &App, stream: TcpStream) -> Option<Stream> {
    Some(MaybeTlsStream::Plain(stream))
}

/// A bound server; [`run_until`](Server::run_until) serves.
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// use rtwire::serve::{ServeConfig, Server, TokenAuth};
/// let server = Server::bind(ServeConfig::default(), TokenAuth::default()).await?;
/// println!("listening on {}", server.local_addr()?);
/// server.run_until(async { let _ = tokio::signal::ctrl_c().await; }).await
/// # }
/// ```
pub struct Server {
    listener: TcpListener,
    /// Shared with the connection tasks once `run_until` starts.
    app: App,
    stop: watch::Sender<bool>,
}

impl Server {
    /// Binds the listening socket, and connects to Redis when
    /// `config.redis` is set. A Redis that cannot be reached, or a bad
    /// URL, fails with an error whose inner error is a
    /// `hub::redis::ConnectError` (feature `redis`).
    pub async fn bind(config: ServeConfig, auth: impl AuthHook) -> std::io::Result<Server> {
        let listener = listen(config.addr, config.listen_backlog)?;
        let (stop, shutdown) = watch::channel(false);
        let hub = Hub::with_config(config.hub.clone());
        let broker = make_broker(&config, hub.clone()).await?;
        let push = start_push(&config, &broker, listener.local_addr()?).await?;
        let shared_compression = config
            .ws_deflate
            .as_ref()
            .and_then(DeflateConfig::server_compression_key);
        let app = App {
            shared_compression,
            hub,
            broker,
            push,
            config,
            auth: Box::new(auth),
            fallback: None,
            metrics: Metrics::default(),
            shutdown,
            shed: Notify::new(),
        };
        Ok(Server {
            listener,
            app,
            stop,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The hub, for publishing from the embedding program: a handle to
    /// the one hub every transport serves, to keep (in a handler, a task,
    /// anywhere) after [`run_until`](Server::run_until) has taken the
    /// server. A message published through it reaches SSE, WebSocket and
    /// poll subscribers alike.
    pub fn hub(&self) -> Hub {
        self.app.hub.clone()
    }

    /// The broker, for publishing from the embedding program the way the
    /// transports do: with Redis, [`Hub::publish`] would reach only this
    /// node, [`Broker::publish`] reaches every node.
    pub fn broker(&self) -> Broker {
        self.app.broker.clone()
    }

    /// Webhooks and the WebSub hub, if [`ServeConfig::push`] turned them
    /// on: their URLs and counters.
    pub fn push(&self) -> Option<Push> {
        self.app.push.clone()
    }

    /// Hands every request that rtwire does not route to `handler`,
    /// instead of answering 404: the embedding program's own routes, with
    /// the same limits and deadlines as rtwire's. rtwire's routes are
    /// `/ws`, `/channels/...`, `/healthz`, `/metrics`, and `/` unless
    /// [`demo_page`](ServeConfig::demo_page) is off; a wrong method on one
    /// of them is still rtwire's 405.
    ///
    /// ```no_run
    /// # async fn demo() -> std::io::Result<()> {
    /// use rtwire::serve::{HttpRequest, HttpResponse, ServeConfig, Server, TokenAuth};
    ///
    /// let server = Server::bind(ServeConfig::default(), TokenAuth::default()).await?;
    /// let hub = server.hub();
    /// let server = server.fallback(move |request: HttpRequest| {
    ///     let hub = hub.clone();
    ///     async move {
    ///         if (request.method(), request.path()) != ("POST", "/api/announce") {
    ///             return HttpResponse::text(404, "no such route\n");
    ///         }
    ///         match hub.publish("announcements", request.body().clone(), None) {
    ///             Ok(message) => HttpResponse::json(202, format!("{{\"id\":\"{}\"}}", message.id)),
    ///             Err(e) => HttpResponse::text(503, e.to_string()),
    ///         }
    ///     }
    /// });
    /// server.run_until(async { let _ = tokio::signal::ctrl_c().await; }).await
    /// # }
    /// ```
    pub fn fallback(mut self, handler: impl Handler) -> Server {
        self.app.fallback = Some(Box::new(handler));
        self
    }

    /// Serves until `shutdown` completes, then shuts down gracefully:
    /// stops accepting, answers held long polls, ends SSE streams, closes
    /// WebSockets with 1001, and waits up to
    /// [`shutdown_grace`](ServeConfig::shutdown_grace) for requests in flight.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let Server {
            listener,
            app,
            stop,
        } = self;
        let app = Arc::new(app);
        let slots = Arc::new(Semaphore::new(app.config.max_connections));
        // Answering a client over the cap holds a descriptor for a moment:
        // that too is bounded, past it they are closed at once.
        let refusals = Arc::new(Semaphore::new(REFUSALS_AT_ONCE));
        let mut acceptor = Acceptor::new(listener, "rtwire serve");
        let mut tasks = tokio::task::JoinSet::new();
        let minute = Duration::from_secs(60);
        let start = tokio::time::Instant::now();
        let mut summary = tokio::time::interval_at(start + minute, minute);
        let every = sweep_interval(app.config.hub.idle_timeout);
        let mut sweep = tokio::time::interval_at(start + every, every);
        // Polling clients' presence lapses at most 1.25 leases after their
        // last poll.
        let every = sweep_interval(app.hub.presence().config().lease);
        let mut presence_sweep = tokio::time::interval_at(start + every, every);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = sweep.tick() => {
                    app.hub.sweep();
                }
                now = presence_sweep.tick() => {
                    app.hub.presence().sweep(now);
                }
                _ = summary.tick() => app.metrics.log_summary(&app.hub),
                accepted = acceptor.accept() => {
                    let (stream, over_cap) = match accepted {
                        Accepted::Stream(stream, peer) => {
                            // Heads and bodies go out in separate writes:
                            // Nagle would hold a body back by the client's
                            // delayed ACK.
                            let _ = stream.set_nodelay(true);
                            match slots.clone().try_acquire_owned() {
                                Ok(permit) => {
                                    let app = app.clone();
                                    tasks.spawn(async move {
                                        serve_client(app, stream, peer).await;
                                        drop(permit);
                                    });
                                    continue;
                                }
                                Err(_) => (stream, Some((slots.clone(), peer))),
                            }
                        }
                        Accepted::OutOfDescriptors(stream) => (stream, None),
                    };
                    let Ok(waiting) = refusals.clone().try_acquire_owned() else {
                        continue; // dropped: closed at once
                    };
                    let app = app.clone();
                    tasks.spawn(async move {
                        // Every slot is taken: idle and slow connections
                        // make room, and this client gets the first slot
                        // freed, or a 503 soon.
                        let reason = match over_cap {
                            Some(_) => "too many connections",
                            None => "server out of descriptors",
                        };
                        let peer = over_cap.as_ref().map(|(_, peer)| *peer);
                        if let Some((slots, peer)) = over_cap {
                            app.shed.notify_waiters();
                            let slot = tokio::time::timeout(SLOT_WAIT, slots.acquire_owned()).await;
                            if let Ok(Ok(permit)) = slot {
                                drop(waiting);
                                serve_client(app, stream, peer).await;
                                drop(permit);
                                return;
                            }
                        }
                        tracing::debug!(?peer, reason, "connection refused with 503");
                        let busy = Response::error(503, reason).header("Retry-After", "1");
                        app.metrics.refused();
                        let traffic = app.metrics.traffic.clone();
                        HttpConn::new(stream, REFUSAL_TIME, traffic).reject(&busy).await;
                        drop(waiting);
                    });
                }
                // Reap finished tasks so the set does not grow.
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        drop(acceptor);
        if let Some(push) = &app.push {
            push.shutdown().await;
        }
        let _ = stop.send(true);
        app.hub.shutdown();
        let grace = app.config.shutdown_grace;
        let _ =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        Ok(())
    }
}

/// How often idle channels are swept: a quarter of their idle timeout, so
/// one is gone at most 1.25 times that after its last message, between
/// once a second and once a minute.
fn sweep_interval(idle_timeout: Duration) -> Duration {
    (idle_timeout / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
}
