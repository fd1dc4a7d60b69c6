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
//!   [`ws::WebSocket::split`].
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

pub mod handshake;
pub mod http;
pub mod hub;
pub mod proto;
pub mod serve;
pub mod ws;

/// The README's examples, compiled as doc tests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
