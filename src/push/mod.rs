//! Server-to-server push: signed webhooks (Standard Webhooks) and a W3C
//! WebSub hub, fed by the same channels as the browser transports, so one
//! publish reaches browsers and servers alike.
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
//! - [`webhook`]: the admin API's registration JSON; [`websub`]: the
//!   hub's subscription requests, leases and verification of intent.
//! - [`Push`]: the registry and one delivery task per endpoint, each a
//!   subscriber of its channel that delivers in publish order and retries
//!   on the schedule (see [`PushConfig`]).
//!
//! The pure parts take the time (and the random number for jitter) as
//! arguments, so that they are tested exactly.

pub mod client;
mod delivery;
mod endpoint;
pub mod form;
pub mod schedule;
mod service;
pub mod signature;
mod store;
pub mod url;
pub mod webhook;
pub mod websub;

pub use delivery::content_type;
pub use endpoint::{AttemptOutcome, Kind, DELIVERY_LOG_LEN};
pub use service::{Outcomes, Push, PushConfig, PushError, PushStats};
pub(crate) use signature::ct_eq;
pub(crate) use store::Store;
