//! Who may publish and subscribe: a hook given the request head.
//!
//! Identities come from signed tokens ([`UserTokens`]), never from what
//! a client says about itself.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use std::fmt;

use super::params::valid_channel;
use crate::http::Request;

/// What a request wants to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action<'a> {
    /// Publish to a channel (`POST /channels/{name}`, or `publish`/`send` over `/ws`).
    Publish(&'a str),
    /// Read a channel (poll, long poll, SSE, or `join` over `/ws`).
    Subscribe(&'a str),
    /// Open the `/ws` socket.
    Connect,
}

/// A refusal: the HTTP status and a one-line reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denied {
    /// 401, 403, ...
    pub status: u16,
    /// Sent as the response body.
    pub reason: String,
}

/// Decides, from the request head, whether an action is allowed and on
/// behalf of whom. The identity names the user's private room
/// `user:IDENTITY`; the server lets only that identity subscribe to it,
/// whatever the hook says.
pub trait AuthHook: Send + Sync + 'static {
    /// `Ok(Some(identity))` to allow as a known user, `Ok(None)` to allow
    /// anonymously, `Err` to refuse.
    fn authorize(&self, request: &Request, action: Action<'_>) -> Result<Option<String>, Denied>;
}

/// The CLI's hook: optional bearer tokens for publishing and subscribing,
/// and a self-declared identity from the `user` query parameter.
///
/// The identity is whatever the client says it is: enough for the demo and
/// for trusted networks. Real deployments implement [`AuthHook`] with
/// their own session check.
///
/// Tokens are compared in constant time. `Authorization` is read as RFC
/// 9110 §11 has it: the scheme `Bearer` in any case, then one or more
/// spaces, then the token.
#[derive(Clone, Debug, Default)]
pub struct TokenAuth {
    /// Publishers must send `Authorization: Bearer TOKEN` (never in the
    /// query string, which ends up in logs).
    pub publish_token: Option<String>,
    /// Subscribers must send `Authorization: Bearer TOKEN` or `?token=TOKEN`
    /// (browsers' EventSource cannot set headers).
    pub subscribe_token: Option<String>,
}

impl AuthHook for TokenAuth {
    fn authorize(&self, request: &Request, action: Action<'_>) -> Result<Option<String>, Denied> {
        let bearer = bearer_credential(request);
        match action {
            Action::Publish(_) => {
                if let Some(token) = &self.publish_token {
                    if !bearer.is_some_and(|b| secret_eq(b, token)) {
                        return Err(unauthorized(
                            "missing or wrong publish token (Authorization: Bearer)",
                        ));
                    }
                }
            }
            Action::Subscribe(_) | Action::Connect => {
                if let Some(token) = &self.subscribe_token {
                    let query = super::params::query_param(request.query(), "token");
                    // `|`, not `||`: both are compared whatever the first says.
                    let ok = bearer.is_some_and(|b| secret_eq(b, token))
                        | query.is_some_and(|q| secret_eq(&q, token));
                    if !ok {
                        return Err(unauthorized("missing or wrong subscribe token"));
                    }
                }
            }
        }
        let user = super::params::query_param(request.query(), "user")
            .filter(|u| super::params::valid_channel(&format!("user:{u}")));
        Ok(user)
    }
}

/// A 401 with `reason`.
fn unauthorized(reason: &str) -> Denied {
    Denied {
        status: 401,
        reason: reason.into(),
    }
}

/// The credential of an `Authorization: Bearer ...` header: the scheme in
/// any case (RFC 9110 §11.1), one or more spaces, a non-empty rest. `None`
/// for no header, another scheme, or no credential.
fn bearer_credential(request: &Request) -> Option<&str> {
    let value = request.headers.get("authorization")?;
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let credential = rest.trim_matches(|c| c == ' ' || c == '\t');
    (!credential.is_empty()).then_some(credential)
}

/// Whether a presented token equals the configured one, without timing
/// that depends on either's content or on where they differ: both are
/// hashed, then the fixed-size digests compared in constant time. What
/// time still tells is the lengths, and only to SHA-256's 64-byte block
/// (every token up to 55 bytes hashes in the same time).
fn secret_eq(presented: &str, expected: &str) -> bool {
    ct_eq(
        &Sha256::digest(presented.as_bytes()),
        &Sha256::digest(expected.as_bytes()),
    )
}

/// `a == b` in time that depends on the lengths only, never on the bytes:
/// no early exit at the first difference. Slices of different lengths are
/// unequal at once, so the length is not hidden; hash first to hide it
/// (as [`secret_eq`] does).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keeps the optimiser from turning the fold into an early exit.
    std::hint::black_box(diff) == 0
}

/// The shortest secret [`UserTokens::new`] accepts, in bytes. Use 32
/// random bytes (`head -c 32 /dev/urandom`), the size of the MAC.
pub const MIN_SECRET_LEN: usize = 16;

/// What every user token starts with: the format's version.
const TOKEN_PREFIX: &str = "v1.";

/// The longest well-formed token: `v1.`, a 59-byte user, a dot, 20 digits,
/// a dot and the 43-character MAC. Longer input is refused before any work.
const MAX_TOKEN_LEN: usize =
    TOKEN_PREFIX.len() + (super::params::MAX_CHANNEL_LEN - 5) + 1 + 20 + 1 + 43;

/// Mints and verifies user tokens: an identity cannot be claimed, only
/// proved with a token signed by the server's secret.
///
/// The format, version 1:
///
/// ```text
/// v1.<user>.<expires>.<mac>
/// ```
///
/// - `user` is the identity: 1 to 59 bytes such that `user:<user>` is a
///   valid channel name (so `A-Z a-z 0-9 - _ . :`; a `.` is allowed, the
///   token is split at its last two dots).
/// - `expires` is required: the Unix time, in decimal seconds, from which
///   the token is refused. There are no tokens that never expire (a token
///   in a URL ends up in logs and browser history; the only other way to
///   revoke it is a new secret); mint a far-off expiry if you must.
/// - `mac` is the base64url encoding, without padding, of
///   HMAC-SHA256(secret, `v1.<user>.<expires>`): 43 characters.
///
/// The MAC is checked in constant time, before the expiry, so only a
/// genuine token is ever told it has expired.
///
/// A `UserTokens` holds the keyed HMAC state, as secret as the secret
/// itself; `Debug` prints none of it.
#[derive(Clone)]
pub struct UserTokens {
    keyed: Hmac<Sha256>,
}

/// Why a secret, a user or a token was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UserTokenError {
    /// The secret given to [`UserTokens::new`] is under [`MIN_SECRET_LEN`] bytes.
    SecretTooShort {
        /// Its length in bytes.
        len: usize,
    },
    /// The user is not a valid identity: empty, or `user:<user>` is not a
    /// valid channel name.
    BadUser,
    /// Not of the form `v1.<user>.<expires>.<mac>`.
    Malformed,
    /// The MAC does not match: the token was altered, or signed with
    /// another secret.
    BadSignature,
    /// A genuine token, but `now` is at or past its expiry.
    Expired {
        /// When it expired, Unix seconds.
        expires_at: u64,
    },
}

impl fmt::Display for UserTokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserTokenError::SecretTooShort { len } => write!(
                f,
                "user token secret too short: {len} bytes, at least {MIN_SECRET_LEN}"
            ),
            UserTokenError::BadUser => f.write_str("invalid user: 1-59 of A-Z a-z 0-9 - _ . :"),
            UserTokenError::Malformed => f.write_str("malformed user token"),
            UserTokenError::BadSignature => f.write_str("user token signature does not match"),
            UserTokenError::Expired { expires_at } => {
                write!(f, "user token expired at {expires_at} (Unix time)")
            }
        }
    }
}

impl std::error::Error for UserTokenError {}

impl fmt::Debug for UserTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserTokens").finish_non_exhaustive()
    }
}

impl UserTokens {
    /// Tokens signed with `secret`, which must be at least
    /// [`MIN_SECRET_LEN`] bytes.
    pub fn new(secret: &[u8]) -> Result<UserTokens, UserTokenError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(UserTokenError::SecretTooShort { len: secret.len() });
        }
        let keyed = Hmac::<Sha256>::new_from_slice(secret)
            .map_err(|_| UserTokenError::SecretTooShort { len: secret.len() })?;
        Ok(UserTokens { keyed })
    }

    /// A token proving the identity `user` until `expires_at_unix` (Unix
    /// seconds; the token is refused from that second on). Reads no clock:
    /// add the lifetime to the current time yourself.
    ///
    /// ```
    /// use rtwire::serve::{UserTokenError, UserTokens};
    ///
    /// let tokens = UserTokens::new(b"a secret of at least 16 bytes").unwrap();
    /// let token = tokens.mint("alice", 1_900_000_000).unwrap();
    /// assert!(token.starts_with("v1.alice.1900000000."));
    /// assert_eq!(tokens.verify(&token, 1_899_999_999).unwrap(), "alice");
    /// assert_eq!(
    ///     tokens.verify(&token, 1_900_000_000),
    ///     Err(UserTokenError::Expired { expires_at: 1_900_000_000 })
    /// );
    /// assert_eq!(tokens.mint("no spaces", 1), Err(UserTokenError::BadUser));
    /// ```
    pub fn mint(&self, user: &str, expires_at_unix: u64) -> Result<String, UserTokenError> {
        if !valid_identity(user) {
            return Err(UserTokenError::BadUser);
        }
        let signed = format!("{TOKEN_PREFIX}{user}.{expires_at_unix}");
        let mac = self
            .keyed
            .clone()
            .chain_update(&signed)
            .finalize()
            .into_bytes();
        Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(mac)))
    }

    /// The identity `token` proves at `now_unix` (Unix seconds), or why it
    /// proves none. Reads no clock.
    pub fn verify(&self, token: &str, now_unix: u64) -> Result<String, UserTokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(UserTokenError::Malformed);
        }
        let (signed, mac) = token.rsplit_once('.').ok_or(UserTokenError::Malformed)?;
        let (head, expires) = signed.rsplit_once('.').ok_or(UserTokenError::Malformed)?;
        let user = head
            .strip_prefix(TOKEN_PREFIX)
            .filter(|u| valid_identity(u))
            .ok_or(UserTokenError::Malformed)?;
        let expires_at = parse_unix(expires).ok_or(UserTokenError::Malformed)?;
        let mac = URL_SAFE_NO_PAD
            .decode(mac)
            .map_err(|_| UserTokenError::Malformed)?;
        self.keyed
            .clone()
            .chain_update(signed)
            .verify_slice(&mac)
            .map_err(|_| UserTokenError::BadSignature)?;
        if now_unix >= expires_at {
            return Err(UserTokenError::Expired { expires_at });
        }
        Ok(user.to_owned())
    }
}

/// Whether `user` may be an identity: it names the room `user:<user>`.
fn valid_identity(user: &str) -> bool {
    !user.is_empty() && valid_channel(&format!("user:{user}"))
}

/// A Unix time in canonical decimal: digits only (no sign, no leading
/// zero), fitting a `u64`.
fn parse_unix(s: &str) -> Option<u64> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    canonical.then(|| s.parse().ok())?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{HeadLimits, Parse};

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_700_000_000;

    fn tokens() -> UserTokens {
        UserTokens::new(SECRET).unwrap()
    }

    #[test]
    fn secrets_shorter_than_the_minimum_are_refused() {
        assert_eq!(
            UserTokens::new(b"").unwrap_err(),
            UserTokenError::SecretTooShort { len: 0 }
        );
        assert_eq!(
            UserTokens::new(&[7; MIN_SECRET_LEN - 1]).unwrap_err(),
            UserTokenError::SecretTooShort { len: 15 }
        );
        assert!(UserTokens::new(&[7; MIN_SECRET_LEN]).is_ok());
    }

    #[test]
    fn minted_tokens_verify_until_they_expire() {
        let t = tokens();
        for user in ["alice", "a.b:c-d_e", &"x".repeat(59)] {
            let token = t.mint(user, NOW + 60).unwrap();
            assert!(token.len() <= MAX_TOKEN_LEN, "{token}");
            assert_eq!(t.verify(&token, NOW).as_deref(), Ok(user));
            assert_eq!(t.verify(&token, NOW + 59).as_deref(), Ok(user));
            assert_eq!(
                t.verify(&token, NOW + 60),
                Err(UserTokenError::Expired {
                    expires_at: NOW + 60
                })
            );
        }
        let longest = t.mint(&"x".repeat(59), u64::MAX).unwrap();
        assert_eq!(longest.len(), MAX_TOKEN_LEN);
        assert!(t.verify(&longest, NOW).is_ok());
    }

    #[test]
    fn invalid_users_are_not_minted() {
        let t = tokens();
        for bad in ["", "a b", "a/b", "é", &"x".repeat(60)] {
            assert_eq!(t.mint(bad, NOW), Err(UserTokenError::BadUser), "{bad:?}");
        }
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let other = UserTokens::new(b"another secret, just as long!!").unwrap();
        let token = other.mint("alice", NOW + 60).unwrap();
        assert_eq!(
            tokens().verify(&token, NOW),
            Err(UserTokenError::BadSignature)
        );
    }

    #[test]
    fn tampered_tokens_are_refused() {
        let t = tokens();
        let token = t.mint("alice", NOW + 60).unwrap();
        let (signed, mac) = token.rsplit_once('.').unwrap();
        // Another user or a later expiry under alice's MAC.
        for forged in [
            format!("v1.bob.{}.{mac}", NOW + 60),
            format!("v1.alice.{}.{mac}", NOW + 6000),
            format!("v1.alicf.{}.{mac}", NOW + 60),
        ] {
            assert_eq!(
                t.verify(&forged, NOW),
                Err(UserTokenError::BadSignature),
                "{forged}"
            );
        }
        // Every single-character change of the MAC.
        for i in 0..mac.len() {
            let mut bytes = mac.as_bytes().to_vec();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let forged = format!("{signed}.{}", String::from_utf8(bytes).unwrap());
            assert!(t.verify(&forged, NOW).is_err(), "{forged}");
        }
        // A truncated or extended MAC.
        let short = &token[..token.len() - 2];
        assert!(t.verify(short, NOW).is_err());
        assert!(t.verify(&format!("{token}AA"), NOW).is_err());
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let t = tokens();
        let good = t.mint("alice", NOW + 60).unwrap();
        let mac = good.rsplit_once('.').unwrap().1;
        for bad in [
            String::new(),
            "alice".into(),
            "v1.alice".into(),
            format!("v1.alice.{mac}"),
            format!("v2.alice.{}.{mac}", NOW + 60),
            format!("v1..{}.{mac}", NOW + 60),
            format!("v1.a b.{}.{mac}", NOW + 60),
            format!("v1.alice.+{}.{mac}", NOW + 60),
            format!("v1.alice.0{}.{mac}", NOW + 60),
            format!("v1.alice.soon.{mac}"),
            format!("v1.alice.{}.{mac}", "9".repeat(21)),
            format!("v1.alice.{}.{mac}=", NOW + 60),
            format!("v1.alice.{}.not*base64", NOW + 60),
            format!("v1.{}.{}.{mac}", "x".repeat(200), NOW + 60),
        ] {
            assert_eq!(
                t.verify(&bad, NOW),
                Err(UserTokenError::Malformed),
                "{bad:?}"
            );
        }
    }

    fn request(head: &str) -> Request {
        let head = format!("{head}\r\nHost: x\r\n\r\n");
        match Request::parse(head.as_bytes(), &HeadLimits::default()) {
            Ok(Parse::Complete(request, _)) => request,
            other => panic!("{head:?}: {other:?}"),
        }
    }

    fn with_auth(target: &str, authorization: &str) -> Request {
        request(&format!(
            "GET {target} HTTP/1.1\r\nAuthorization: {authorization}"
        ))
    }

    fn shared_tokens() -> TokenAuth {
        TokenAuth {
            publish_token: Some("pub-secret".into()),
            subscribe_token: Some("sub-secret".into()),
        }
    }

    fn status(result: Result<Option<String>, Denied>) -> u16 {
        match result {
            Ok(_) => 200,
            Err(denied) => denied.status,
        }
    }

    #[test]
    fn ct_eq_is_equality() {
        assert!(ct_eq(b"", b""));
        assert!(ct_eq(b"token", b"token"));
        assert!(!ct_eq(b"token", b"tokem"));
        assert!(!ct_eq(b"token", b"Token"));
        assert!(!ct_eq(b"token", b"token2"));
        assert!(!ct_eq(b"", b"t"));
        assert!(secret_eq("sub-secret", "sub-secret"));
        assert!(!secret_eq("sub-secret", "sub-secreT"));
        assert!(!secret_eq("", "sub-secret"));
    }

    #[test]
    fn publish_token_only_from_the_authorization_header() {
        let auth = shared_tokens();
        let publish = Action::Publish("room");
        let post = |target: &str, extra: &str| request(&format!("POST {target} HTTP/1.1{extra}"));
        assert_eq!(
            status(auth.authorize(&post("/channels/room", ""), publish)),
            401
        );
        assert_eq!(
            status(auth.authorize(&post("/channels/room?token=pub-secret", ""), publish)),
            401,
            "the publish token in the query string is refused"
        );
        let header = "\r\nAuthorization: Bearer pub-secret";
        assert_eq!(
            status(auth.authorize(&post("/channels/room", header), publish)),
            200
        );
        // The subscribe token does not publish, nor the publish token subscribe.
        let header = "\r\nAuthorization: Bearer sub-secret";
        assert_eq!(
            status(auth.authorize(&post("/channels/room", header), publish)),
            401
        );
        let sub = Action::Subscribe("room");
        let get = with_auth("/channels/room/poll", "Bearer pub-secret");
        assert_eq!(status(auth.authorize(&get, sub)), 401);
    }

    #[test]
    fn subscribe_token_from_the_header_or_the_query() {
        let auth = shared_tokens();
        for action in [Action::Subscribe("room"), Action::Connect] {
            let plain = request("GET /channels/room/poll HTTP/1.1");
            assert_eq!(status(auth.authorize(&plain, action)), 401);
            let query = request("GET /channels/room/poll?token=sub-secret HTTP/1.1");
            assert_eq!(status(auth.authorize(&query, action)), 200);
            let wrong = request("GET /channels/room/poll?token=sub-secreT HTTP/1.1");
            assert_eq!(status(auth.authorize(&wrong, action)), 401);
            let header = with_auth("/channels/room/poll", "Bearer sub-secret");
            assert_eq!(status(auth.authorize(&header, action)), 200);
        }
    }

    #[test]
    fn bearer_scheme_in_any_case_with_one_or_more_spaces() {
        let auth = shared_tokens();
        let publish = Action::Publish("room");
        for ok in [
            "Bearer pub-secret",
            "bearer pub-secret",
            "BEARER pub-secret",
            "bEaReR   pub-secret",
        ] {
            let r = with_auth("/channels/room", ok);
            assert_eq!(status(auth.authorize(&r, publish)), 200, "{ok:?}");
        }
        for bad in [
            "Bearerpub-secret",
            "Bearer",
            "Bearer ",
            "Basic pub-secret",
            "Bearer pub-secretX",
            "Bearer pub",
            "pub-secret",
        ] {
            let r = with_auth("/channels/room", bad);
            assert_eq!(status(auth.authorize(&r, publish)), 401, "{bad:?}");
        }
    }

    #[test]
    fn no_tokens_configured_allows_everyone() {
        let auth = TokenAuth::default();
        let plain = request("GET /channels/room/poll HTTP/1.1");
        assert_eq!(
            status(auth.authorize(&plain, Action::Subscribe("room"))),
            200
        );
        assert_eq!(status(auth.authorize(&plain, Action::Publish("room"))), 200);
        assert_eq!(status(auth.authorize(&plain, Action::Connect)), 200);
    }

    #[test]
    fn debug_prints_no_secret() {
        assert_eq!(format!("{:?}", tokens()), "UserTokens { .. }");
    }
}
