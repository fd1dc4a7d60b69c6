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
//! | `GET /ws` | one WebSocket for many rooms, JSON commands |
//! | `GET /` | the demo page |
//! | `GET /healthz`, `GET /metrics` | liveness, Prometheus text |
//!
//! Every transport is a thin adapter between the hub and its wire format;
//! a message published once reaches all of them with the same id.

mod auth;
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

pub use auth::{Action, AuthHook, Denied, TokenAuth, UserTokenError, UserTokens, MIN_SECRET_LEN};
pub use params::{valid_channel, MAX_CHANNEL_LEN};

/// The transports' parsers of network input, for the fuzz targets in
/// `fuzz/`. Not part of the stable API.
#[doc(hidden)]
pub mod fuzzing {
    pub use super::json::{get_bool, get_str, parse_object, payload, push_data, push_str, Value};
    pub use super::params::{percent_decode, query_param};
}

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{watch, Semaphore};

use crate::hub::{Hub, HubConfig};
use crate::proto::deflate::DeflateConfig;
use http_conn::HttpConn;
use metrics::Metrics;
use response::Response;

/// Limits and timings of the server. Every size has a limit.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServeConfig {
    /// Where to listen. Default 127.0.0.1:8080.
    pub addr: SocketAddr,
    /// Largest request head; larger gets 431. Default 8 KiB.
    pub max_head_bytes: usize,
    /// Largest request body; larger gets 413. Default 1 MiB.
    pub max_body_bytes: usize,
    /// Time for a request head (or body) to arrive once started; else 408. Default 10 s.
    pub head_timeout: Duration,
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
    /// SSE comment heartbeat interval. Default 15 s.
    pub sse_heartbeat: Duration,
    /// SSE `retry:` advice to clients. Default 3 s.
    pub sse_retry: Duration,
    /// Largest WebSocket message from a client. Default 1 MiB.
    pub ws_max_message: usize,
    /// permessage-deflate for `/ws`; default: the lean configuration.
    pub ws_deflate: Option<DeflateConfig>,
    /// How long shutdown waits for open requests. Default 5 s.
    pub shutdown_grace: Duration,
    /// The hub's limits.
    pub hub: HubConfig,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_head_bytes: 8 * 1024,
            max_body_bytes: 1 << 20,
            head_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            listen_backlog: 4096,
            long_poll_timeout: Duration::from_secs(30),
            long_poll_max: Duration::from_secs(120),
            poll_max_messages: 1000,
            sse_heartbeat: Duration::from_secs(15),
            sse_retry: Duration::from_secs(3),
            ws_max_message: 1 << 20,
            ws_deflate: Some(DeflateConfig::lean()),
            shutdown_grace: Duration::from_secs(5),
            hub: HubConfig::default(),
        }
    }
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

/// What every connection task shares.
pub(crate) struct App {
    pub config: ServeConfig,
    pub hub: Hub,
    pub auth: Box<dyn AuthHook>,
    pub metrics: Metrics,
    /// Becomes true when the server shuts down.
    pub shutdown: watch::Receiver<bool>,
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
    app: Arc<App>,
    stop: watch::Sender<bool>,
}

impl Server {
    /// Binds the listening socket.
    pub async fn bind(config: ServeConfig, auth: impl AuthHook) -> std::io::Result<Server> {
        let listener = listen(config.addr, config.listen_backlog)?;
        let (stop, shutdown) = watch::channel(false);
        let app = Arc::new(App {
            hub: Hub::with_config(config.hub.clone()),
            config,
            auth: Box::new(auth),
            metrics: Metrics::default(),
            shutdown,
        });
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

    /// The hub, for publishing from the embedding program.
    pub fn hub(&self) -> &Hub {
        &self.app.hub
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
        let slots = Arc::new(Semaphore::new(app.config.max_connections));
        let mut tasks = tokio::task::JoinSet::new();
        let minute = Duration::from_secs(60);
        let mut sweep = tokio::time::interval_at(tokio::time::Instant::now() + minute, minute);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = sweep.tick() => {
                    app.hub.sweep();
                    app.metrics.log_summary(&app.hub);
                }
                accepted = listener.accept() => {
                    let Ok((stream, _peer)) = accepted else { continue };
                    let _ = stream.set_nodelay(true);
                    let app = app.clone();
                    match slots.clone().try_acquire_owned() {
                        Ok(permit) => {
                            tasks.spawn(async move {
                                routes::serve_connection(app, HttpConn::new(stream)).await;
                                drop(permit);
                            });
                        }
                        Err(_) => {
                            tasks.spawn(async move {
                                let busy = Response::error(503, "too many connections");
                                HttpConn::new(stream).reject(&busy).await;
                            });
                        }
                    }
                }
                // Reap finished tasks so the set does not grow.
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        drop(listener);
        let _ = stop.send(true);
        app.hub.shutdown();
        let grace = app.config.shutdown_grace;
        let _ =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        Ok(())
    }
}
