//! # rtwire
//!
//! Real-time web transports written from scratch: WebSocket (RFC 6455) with
//! a sans-IO core and a thin tokio front-end.
//!
//! The layers, bottom to top (arrows point down only):
//!
//! - [`http`]: a bounded push parser for HTTP/1.1 heads, and writers.
//! - [`handshake`]: the opening handshake of RFC 6455 §4, both roles.
//! - [`proto`]: the WebSocket protocol without I/O — frames, masking,
//!   UTF-8 validation, close codes, and the [`proto::Connection`] state
//!   machine. Bytes in, events and bytes out.
//! - [`ws`]: [`ws::WebSocket`] over any tokio stream, [`ws::accept`]
//!   ([`ws::Upgrade`] to see the request and answer it), [`ws::connect`]
//!   ([`ws::ConnectConfig`] for headers and timeouts), and
//!   [`ws::WebSocket::split`]; with the feature `http`, `ws::http_upgrade`
//!   for upgrades inside hyper or axum.
//! - `hub` (feature `hub`): channels with ids, history, resumable
//!   subscriptions.
//! - `serve` (feature `serve`): the HTTP/1.1 server of `rtwire serve`, with
//!   its WebSocket, SSE, long-poll and short-poll transports around one hub.
//!
//! ## Cargo features
//!
//! | feature | enables | pulls in |
//! | --- | --- | --- |
//! | *(none)* | `http`, `handshake`, `proto`, `ws`: the WebSocket library | tokio (`net`, `io-util`, `time`), bytes, sha1, base64, rand, flate2 |
//! | `futures` *(default)* | `futures::Stream` and `futures::Sink` for [`ws::WebSocket`] and its split halves | futures-core, futures-sink |
//! | `http` *(default)* | `ws::http_upgrade`: upgrade an `http::Request` inside hyper or axum, connect with an `http::Request` | http |
//! | `hub` | the pub/sub hub, `rtwire::hub` | tokio's `sync` |
//! | `serve` | `rtwire serve` as a library, `rtwire::serve`; implies `hub` | hmac, sha2, rustix, tracing; tokio's `rt` and `macros` |
//! | `cli` *(default)* | the `rtwire` binary; implies `serve` | clap, tracing-subscriber; tokio's `rt-multi-thread` and `signal` |
//!
//! A WebSocket-only user turns the defaults off:
//!
//! ```toml
//! [dependencies]
//! rtwire = { version = "0.1", default-features = false }
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
//! ## A client
//!
//! ```no_run
//! use rtwire::proto::{CloseCode, Message};
//!
//! # async fn run() -> Result<(), rtwire::ws::Error> {
//! let (mut socket, _response) = rtwire::ws::connect("ws://127.0.0.1:9001/").await?;
//! socket.send(Message::text("hello")).await?;
//! if let Some(Message::Text(reply)) = socket.recv().await? {
//!     println!("{reply}");
//! }
//! socket.close(CloseCode::NORMAL, "done").await?;
//! while socket.recv().await?.is_some() {} // until the server closes
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
pub mod serve;
pub mod ws;

/// The README's examples, compiled as doc tests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
