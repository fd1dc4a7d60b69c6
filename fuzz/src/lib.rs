//! Shared code of rtwire's fuzz targets and of the seed generator.
//!
//! - [`wire`]: a frame builder and an output decoder written independently
//!   of the codec under test.
//! - [`model`]: a reference receiver: the events RFC 6455 says a connection
//!   reports for a given byte stream, computed from scratch.
//! - [`session`]: the structured input of the `connection` target (derived
//!   with `arbitrary`) and the driver that runs it against
//!   [`rtwire::proto::Connection`], checking every invariant as it goes.
//! - [`encode`]: the inverse of the `arbitrary` decoding of a
//!   [`session::Session`], so the seed generator can write sessions as bytes.
//! - [`compress`]: permessage-deflate on flate2 directly: the peer's
//!   compressor and a reference inflater.
//! - [`frame_checks`], [`http_checks`], [`deflate_checks`],
//!   [`transport_checks`], [`push_checks`]: the checks of the other targets.

pub mod compress;
pub mod deflate_checks;
pub mod encode;
pub mod frame_checks;
pub mod http_checks;
pub mod model;
pub mod push_checks;
pub mod session;
pub mod transport_checks;
pub mod wire;
