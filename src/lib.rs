//! # rtwire
//!
//! Real-time web transports written from scratch: WebSocket (RFC 6455) and
//! permessage-deflate (RFC 7692) with a sans-IO core and a thin tokio
//! front-end, and a pub/sub server that carries one hub's messages over
//! WebSocket, Server-Sent Events, long polling and short polling.
//!
//! The layers, bottom to top (arrows point down only):
//!
//! - [`http`]: a bounded push parser for HTTP/1.1 heads, and writers.
//! - [`handshake`]: the opening handshake of RFC 6455 §4, both roles.
//! - [`proto`]: the WebSocket protocol without I/O — frames, masking,
//!   UTF-8 validation, close codes, [`proto::deflate`], and the
//!   [`proto::Connection`] state machine. Bytes in, events and bytes out;
//!   time comes in as an argument.
//! - [`ws`]: [`ws::WebSocket`] over any tokio stream, [`ws::accept`]
//!   ([`ws::Upgrade`] to see the request and answer it), [`ws::connect`]
//!   ([`ws::ConnectConfig`] for headers and timeouts), [`ws::WebSocket::split`]
//!   and [`ws::WsReader::reunite`], `futures` `Stream`/`Sink`, `wss://`
//!   with `ws::tls` (feature `tls`), and with the feature `http`,
//!   `ws::http_upgrade` for upgrades inside hyper or axum.
//! - `hub` (feature `hub`): channels with ids, bounded history, resumable
//!   subscriptions, bounded subscriber queues.
//! - `serve` (feature `serve`): the HTTP/1.1 server of `rtwire serve`, with
//!   its four transports around one hub, embeddable beside a program's own
//!   routes.
//! - `push` (feature `serve`): the same channels pushed to other servers,
//!   as signed webhooks (Standard Webhooks) and by a W3C WebSub hub, with
//!   retries, in publish order per endpoint, behind an SSRF guard.
//!
//! Coming from tokio-tungstenite or axum? The README has a call-by-call
//! table; `examples/` holds an echo server, a broadcast chat, a client with
//! headers and `wss://`, and an embedded `serve`.
//!
//! ## Cargo features
//!
//! | feature | enables | pulls in |
//! | --- | --- | --- |
//! | *(none)* | `http`, `handshake`, `proto`, `ws`: the WebSocket library | tokio (`net`, `io-util`, `time`), bytes, sha1, base64, rand, flate2 |
//! | `futures` *(default)* | `futures::Stream` and `futures::Sink` for [`ws::WebSocket`] and its split halves | futures-core, futures-sink |
//! | `http` *(default)* | `ws::http_upgrade`: upgrade an `http::Request` inside hyper or axum, connect with an `http::Request` | http |
//! | `tls` | `wss://` clients and TLS servers: `ws::tls::{TlsConnector, TlsAcceptor}`, `ConnectConfig::tls` | rustls (ring), tokio-rustls, webpki-roots, rustls-pki-types |
//! | `native-roots` | `TlsConnector::native_roots`, the system's root certificates; implies `tls` | rustls-native-certs |
//! | `hub` | the pub/sub hub, `rtwire::hub` | tokio's `sync` |
//! | `serve` | `rtwire serve` as a library, `rtwire::serve`; implies `hub` | hmac, sha2, rustix, tracing, serde, serde_json; tokio's `rt` and `macros` |
//! | `redis` | `rtwire::hub::redis`, `ServeConfig::redis`: channels, ids, history and fan-out in Redis, shared by many nodes; implies `serve` | redis (redis-rs: tokio, script, connection manager) |
//! | `cli` *(default)* | the `rtwire` binary; implies `serve`, `tls` and `redis` | clap, tracing-subscriber; tokio's `rt-multi-thread` and `signal` |
//!
//! A WebSocket-only user turns the defaults off:
//!
//! ```toml
//! [dependencies]
//! rtwire = { version = "0.1", default-features = false, features = ["futures"] }
//! ```
//!
//! ## A server
//!
//! ```no_run
//! use rtwire::ws;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9001").await?;
//! loop {
//!     let (stream, _) = listener.accept().await?;
//!     tokio::spawn(async move {
//!         let Ok(mut socket) = ws::accept(stream).await else { return };
//!         // Pings are answered and closes replied to automatically.
//!         while let Ok(Some(message)) = socket.recv().await {
//!             if message.is_data() && socket.send(message).await.is_err() {
//!                 break;
//!             }
//!         }
//!     });
//! }
//! # }
//! ```
//!
//! To see the request first (path, query, headers, peer address, offered
//! subprotocols) and accept with a subprotocol and headers of one's own, or
//! refuse with a status and body, read it as an [`ws::Upgrade`]:
//!
//! ```no_run
//! use rtwire::ws::{self, AcceptConfig, AcceptResponse, Rejection, Upgrade};
//!
//! # async fn run(stream: tokio::net::TcpStream) -> Result<(), ws::Error> {
//! let upgrade = Upgrade::read_tcp(stream, &AcceptConfig::default()).await?;
//! if upgrade.request().headers.get("authorization") != Some("Bearer let-me-in") {
//!     return upgrade.reject(Rejection::new(401).body("token required\n")).await;
//! }
//! let socket = upgrade.accept(AcceptResponse::new().header("X-Server", "rtwire")).await?;
//! assert!(socket.request().is_some()); // kept: path, query, headers
//! # Ok(()) }
//! ```
//!
//! ## A client
//!
//! ```no_run
//! use rtwire::proto::{CloseCode, Message};
//! use rtwire::ws::{self, ConnectConfig};
//!
//! # async fn run() -> Result<(), ws::Error> {
//! let config = ConnectConfig::default().header("Authorization", "Bearer abc123");
//! let (mut socket, _response) = ws::connect_with("ws://127.0.0.1:9001/", &config).await?;
//! socket.send(Message::text("hello")).await?;
//! if let Some(Message::Text(reply)) = socket.recv().await? {
//!     println!("{reply}");
//! }
//! socket.close(CloseCode::NORMAL, "done").await?;
//! while socket.recv().await?.is_some() {} // until the server closes
//! # Ok(()) }
//! ```
//!
//! A refused handshake comes back as
//! [`HandshakeError::Rejected`](handshake::HandshakeError::Rejected) with
//! the status, headers and body; [`ws::Error::is_peer_fault`] and
//! [`ws::Error::is_disconnect`] say how a connection ended.
//!
//! ## Split halves, `Stream` and `Sink`
//!
//! [`ws::WebSocket::split`] gives a reader and a writer for two tasks (the
//! reader answers pings without the writer); with the `futures` feature
//! both, and the socket itself, are `futures::Stream`s and `Sink`s. An echo
//! over an in-memory pipe:
//!
#![cfg_attr(feature = "futures", doc = "```")]
#![cfg_attr(not(feature = "futures"), doc = "```ignore")]
//! use futures_util::{SinkExt, StreamExt, TryStreamExt};
//! use rtwire::proto::{Config, Message, Role};
//! use rtwire::ws::WebSocket;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), rtwire::ws::Error> {
//! let (client_io, server_io) = tokio::io::duplex(64 * 1024);
//! let server = WebSocket::from_raw(server_io, Role::Server, Config::default(), &[]);
//! let echo = tokio::spawn(async move {
//!     let (read, write) = server.split();
//!     read.try_filter(|m| std::future::ready(m.is_data())).forward(write).await
//! });
//!
//! let mut client = WebSocket::from_raw(client_io, Role::Client, Config::default(), &[]);
//! client.send(Message::text("hello")).await?;
//! assert_eq!(client.next().await.transpose()?, Some(Message::text("hello")));
//! SinkExt::close(&mut client).await?; // close 1000; the server answers
//! while client.next().await.transpose()?.is_some() {}
//! echo.await.expect("the echo task")?;
//! # Ok(()) }
//! ```
//!
//! ## TLS
//!
//! `wss://` URLs are checked against Mozilla's roots unless
//! `ConnectConfig::tls` names others; a server wraps its TCP streams with a
//! `TlsAcceptor`. Both ends run over [`ws::MaybeTlsStream`].
//!
#![cfg_attr(feature = "tls", doc = "```no_run")]
#![cfg_attr(not(feature = "tls"), doc = "```ignore")]
//! use rtwire::ws::{self, tls::{TlsAcceptor, TlsConnector}, ConnectConfig};
//! use std::time::Duration;
//!
//! # async fn run(tcp: tokio::net::TcpStream) -> Result<(), Box<dyn std::error::Error>> {
//! let acceptor = TlsAcceptor::from_pem_files("cert.pem", "key.pem")?;
//! // The TLS handshake has no deadline of its own: give it one.
//! let tls = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await??;
//! let server_socket = ws::accept(tls).await?;
//!
//! let config = ConnectConfig::default().tls(TlsConnector::from_pem_file("ca.pem")?);
//! let (client_socket, _) = ws::connect_with("wss://localhost:9443/", &config).await?;
//! # Ok(()) }
//! ```
//!
//! ## Compression
//!
//! permessage-deflate is off unless asked for, on either side; all four
//! parameters are negotiated, and the message limit applies to the
//! inflated size while inflating.
//!
//! ```no_run
//! use rtwire::proto::deflate::DeflateConfig;
//! use rtwire::ws::{self, AcceptConfig, ConnectConfig};
//!
//! # async fn run(stream: tokio::net::TcpStream) -> Result<(), ws::Error> {
//! let server = AcceptConfig::default().deflate(DeflateConfig::default());
//! let socket = ws::accept_with(stream, &server).await?;
//! // A client that keeps memory small: 9-bit windows, no context takeover.
//! let client = ConnectConfig::default().deflate(DeflateConfig::lean());
//! let (socket, _) = ws::connect_with("ws://127.0.0.1:9001/", &client).await?;
//! # Ok(()) }
//! ```
//!
//! ## Without I/O
//!
//! ```
//! use rtwire::proto::{Config, Connection, Event, Message, Role};
//!
//! let mut server = Connection::new(Role::Server, Config::default());
//! // A masked text frame "Hello" (RFC 6455 §5.7).
//! server.receive_data(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
//! assert_eq!(server.poll_event(), Some(Event::Message(Message::text("Hello"))));
//! ```
//!
//! ## The hub
//!
//! Channels created on first use, ids the same on every transport, and a
//! resume from the last id seen that reports what it could not honour:
//!
#![cfg_attr(feature = "hub", doc = "```")]
#![cfg_attr(not(feature = "hub"), doc = "```ignore")]
//! use bytes::Bytes;
//! use rtwire::hub::{Hub, Since};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let hub = Hub::new();
//! let first = hub.publish("lobby", Bytes::from("hello"), None)?;
//! // A client that saw `first` resumes after it, and gets what followed.
//! let mut subscription = hub.subscribe("lobby", Since::After(first.id))?;
//! hub.publish("lobby", Bytes::from("again"), None)?;
//! assert_eq!(subscription.recv().await?.data, "again");
//! # Ok(()) }
//! ```
//!
//! ## `rtwire serve`, embedded
//!
//! The server of `rtwire serve` is a library: its routes (`/ws`,
//! `/channels/...`, `/metrics`, the demo page) beside the program's own,
//! an async `AuthHook`, and the hub to publish through
//! (`examples/embed_serve.rs` is a whole program).
//!
#![cfg_attr(feature = "serve", doc = "```no_run")]
#![cfg_attr(not(feature = "serve"), doc = "```ignore")]
//! use rtwire::serve::{HttpRequest, HttpResponse, ServeConfig, Server, TokenAuth};
//!
//! # async fn run() -> std::io::Result<()> {
//! let server = Server::bind(ServeConfig::default(), TokenAuth::default()).await?;
//! let hub = server.hub();
//! let server = server.fallback(move |request: HttpRequest| {
//!     let hub = hub.clone();
//!     async move {
//!         match (request.method(), request.path()) {
//!             ("POST", "/api/announce") => match hub.publish("news", request.body().clone(), None) {
//!                 Ok(message) => HttpResponse::json(202, format!("{{\"id\":\"{}\"}}", message.id)),
//!                 Err(e) => HttpResponse::text(503, e.to_string()),
//!             },
//!             _ => HttpResponse::text(404, "no such route\n"),
//!         }
//!     }
//! });
//! server.run_until(async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```
//!
//! Webhooks and the WebSub hub are a field of the same config: with
//! [`push::PushConfig`] set, `/webhooks…` (behind its admin token) and
//! `/websub` are served, and every message published reaches them too.
//!
#![cfg_attr(feature = "serve", doc = "```no_run")]
#![cfg_attr(not(feature = "serve"), doc = "```ignore")]
//! use rtwire::push::PushConfig;
//! use rtwire::serve::{ServeConfig, Server, TokenAuth};
//!
//! # async fn run() -> std::io::Result<()> {
//! let mut config = ServeConfig::default();
//! let mut push = PushConfig::new(std::env::var("ADMIN_TOKEN").unwrap_or_default());
//! push.public_url = Some("https://rt.example.com".to_owned());
//! config.push = Some(push);
//! let server = Server::bind(config, TokenAuth::default()).await?;
//! assert_eq!(server.push().unwrap().hub_url(), "https://rt.example.com/websub");
//! # server.run_until(async {}).await
//! # }
//! ```
//!
//! ## Logging
//!
//! The library prints nothing itself: `serve` reports through [`tracing`]
//! events under the `rtwire` target (accept errors as `warn`, a summary
//! every minute as `info`, connections and requests as `debug`). Install
//! any subscriber to see them, e.g. `tracing_subscriber::fmt().init()`, and
//! filter with `RUST_LOG=rtwire=debug` through its `EnvFilter`. The
//! `rtwire` binary installs one that honours `RUST_LOG` (default `info`).
//!
//! [`tracing`]: https://docs.rs/tracing
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod handshake;
pub mod http;
#[cfg(feature = "hub")]
#[cfg_attr(docsrs, doc(cfg(feature = "hub")))]
pub mod hub;
pub mod proto;
#[cfg(feature = "serve")]
#[cfg_attr(docsrs, doc(cfg(feature = "serve")))]
pub mod push;
#[cfg(feature = "serve")]
#[cfg_attr(docsrs, doc(cfg(feature = "serve")))]
pub mod serve;
#[cfg(all(feature = "io-uring", target_os = "linux"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "io-uring", target_os = "linux"))))]
pub mod uring;
pub mod ws;

/// The README's examples, compiled as doc tests so they stay true. They
/// use the server, TLS, Stream/Sink, the `http` crate and io_uring, so they run
/// only when those features are on (as with the default features); with
/// fewer, `cargo test --doc` skips them instead of failing.
#[cfg(all(
    doctest,
    feature = "serve",
    feature = "tls",
    feature = "futures",
    feature = "http",
    feature = "io-uring",
    target_os = "linux"
))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
