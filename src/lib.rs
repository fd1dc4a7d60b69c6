#![warn(missing_docs)]
//! rtwire
pub mod handshake;
pub mod http;
pub mod proto;
pub mod ws;
