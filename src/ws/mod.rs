//! The tokio front-end: [`WebSocket`] over any `AsyncRead + AsyncWrite`
//! stream, [`accept`] for servers ([`Upgrade`] or [`accept_with_callback`]
//! to look at the request and answer it), [`connect`] for clients
//! ([`ConnectConfig`] for headers and timeouts; `wss://` with the `tls`
//! feature), and [`WebSocket::split`] into halves for two tasks (and
//! [`WsReader::reunite`] back). With the `futures` feature (on by
//! default), the socket and its halves are `futures::Stream`s and
//! `futures::Sink`s too; see [`WebSocket`]'s trait implementations. With
//! the `http` feature (on by default), `http_upgrade` upgrades an
//! `http::Request` inside hyper or axum.
//!
//! Each is a thin loop around the sans-IO [`Connection`](crate::proto::Connection):
//! read bytes into it, hand its events to the caller, write what it queues.

mod error;
mod handshake_io;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http_upgrade;
mod maybe_tls;
mod socket;
mod split;
#[cfg(feature = "futures")]
mod stream;
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub mod tls;

pub use crate::handshake::{AcceptResponse, Rejection};
pub use error::Error;
pub use handshake_io::{
    accept, accept_request, accept_with, accept_with_callback, client_handshake, connect,
    connect_with, AcceptConfig, ConnectConfig, Upgrade,
};
pub use maybe_tls::MaybeTlsStream;
pub use socket::{MemoryBudget, WebSocket};
pub use split::{ReuniteError, WsReader, WsWriter};
