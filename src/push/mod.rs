//! Server-to-server push: the pieces signed webhooks (Standard Webhooks)
//! and a W3C WebSub hub stand on. Each is usable and tested on its own;
//! the delivery engine that feeds them from the hub comes on top.
//!
//! - [`signature`]: Standard Webhooks secrets (`whsec_…`), the
//!   `webhook-signature` of `{id}.{timestamp}.{body}` (several secrets
//!   during a rotation) and its verification with a timestamp tolerance,
//!   and WebSub's `X-Hub-Signature: sha256=…`.
//! - [`url`]: callback and webhook URLs (`http`/`https` only, no userinfo
//!   or fragment, the query kept exactly), and the SSRF guard: which
//!   addresses count as public, checked on what a name *resolves* to.
//! - [`form`]: `application/x-www-form-urlencoded`, bounded, for WebSub's
//!   subscription requests, and its encoder for verification queries.
//! - [`schedule`]: the retry schedule (Standard Webhooks' default or an
//!   operator's list), jitter, `Retry-After`, and which statuses count as
//!   delivered, failed, or gone.
//! - [`client`]: the outbound HTTP/1.1 client (TLS with the `tls`
//!   feature): resolves through the SSRF guard, one deadline per request,
//!   bounded response heads and bodies, never follows redirects, reuses
//!   idle connections per origin.
//!
//! Nothing here reads the clock or a random source where a caller could
//! pass one in: the pure parts take the time (and the random number for
//! jitter) as arguments, so that they are tested exactly.

pub mod client;
pub mod form;
pub mod schedule;
pub mod signature;
pub mod url;

pub(crate) use signature::ct_eq;
