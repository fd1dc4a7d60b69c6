//! The sans-IO WebSocket core: no tokio, no sockets, no clocks.
//!
//! Bytes go in, events and bytes come out; everything here can be driven
//! byte by byte from a test or a fuzzer. The tokio front-end in
//! [`ws`](crate::ws) is a thin loop around [`Connection`].

pub mod close;
pub mod conn;
pub mod deflate;
pub mod error;
pub mod frame;
pub mod mask;
pub mod message;
pub mod utf8;

pub use close::{CloseCode, CloseFrame};
pub use conn::{Config, Connection, Event, Keepalive, Role, State};
pub use error::{ProtocolError, SendError};
pub use message::{Message, Utf8Bytes};
