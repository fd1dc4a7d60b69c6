//! Who may publish and subscribe: an async hook given the request head
//! and the peer's address.
//!
//! Identities come from signed tokens ([`UserTokens`]), never from what
//! a client says about itself; [`TokenAuth`] has the rules.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use super::params::valid_channel;
use crate::http::Request;
use crate::push::ct_eq;

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

/// What an [`AuthHook`] is shown of a request: its head (method, target
/// with path and query, headers; never the body) and who sent it.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct AuthRequest<'a> {
    /// The request head. For commands over `/ws`, the upgrade request.
    pub head: &'a Request,
    /// The client's address, as the socket reports it (a proxy in front
    /// of the server shows its own address here).
    pub peer: SocketAddr,
}

impl<'a> AuthRequest<'a> {
    /// The head and peer of one request; for calling a hook yourself, e.g.
    /// in a test or from a hook that wraps another.
    pub fn new(head: &'a Request, peer: SocketAddr) -> AuthRequest<'a> {
        AuthRequest { head, peer }
    }

    /// The method, e.g. `GET`.
    pub fn method(&self) -> &'a str {
        &self.head.method
    }

    /// The target up to the first `?`.
    pub fn path(&self) -> &'a str {
        self.head.path()
    }

    /// The target after the first `?`, if any.
    pub fn query(&self) -> Option<&'a str> {
        self.head.query()
    }

    /// The first header named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.head.headers.get(name)
    }

    /// The credential of `Authorization: Bearer <credential>` (the scheme
    /// in any case, RFC 9110 §11), if the request has one. Compare it with
    /// [`secret_eq`].
    pub fn bearer_token(&self) -> Option<&'a str> {
        bearer_credential(self.head)
    }
}

/// The future an [`AuthHook`] returns: boxed, so that the trait stays
/// object-safe without an `async-trait` dependency.
pub type AuthFuture<'a> = Pin<Box<dyn Future<Output = Result<Option<String>, Denied>> + Send + 'a>>;

/// Decides, from the request head and the peer's address, whether an
/// action is allowed and on behalf of whom. The identity names the user's
/// private room `user:IDENTITY`; the server lets only that identity
/// subscribe to it, whatever the hook says.
///
/// The hook is asked once per HTTP request, and once per `join`,
/// `publish` and `send` command over `/ws` (with the upgrade request).
/// It may wait (look a session up in a database, say); the request waits
/// with it, so give any such wait its own deadline.
///
/// ```
/// use rtwire::serve::{Action, AuthFuture, AuthHook, AuthRequest, Denied, TokenAuth};
///
/// /// Publishing only from loopback; everything else as `TokenAuth` says.
/// struct LocalPublishers(TokenAuth);
///
/// impl AuthHook for LocalPublishers {
///     fn authorize<'a>(&'a self, request: AuthRequest<'a>, action: Action<'a>) -> AuthFuture<'a> {
///         Box::pin(async move {
///             if matches!(action, Action::Publish(_)) && !request.peer.ip().is_loopback() {
///                 return Err(Denied { status: 403, reason: "publish from loopback only".into() });
///             }
///             self.0.authorize(request, action).await
///         })
///     }
/// }
/// ```
pub trait AuthHook: Send + Sync + 'static {
    /// Resolves to `Ok(Some(identity))` to allow as a known user,
    /// `Ok(None)` to allow anonymously, `Err` to refuse.
    fn authorize<'a>(&'a self, request: AuthRequest<'a>, action: Action<'a>) -> AuthFuture<'a>;
}

/// The CLI's hook: optional shared bearer tokens for publishing and
/// subscribing, and identities proved by signed user tokens.
///
/// - **Publishing** needs, when `publish_token` is set,
///   `Authorization: Bearer <publish_token>`: the header only, never the
///   query string (which ends up in logs). A user token does not publish.
/// - **Subscribing** (and opening `/ws`) needs, when `subscribe_token` is
///   set, `Authorization: Bearer <subscribe_token>`, `?token=<subscribe_token>`,
///   or a valid user token: the server issued it, so it is as good as the
///   shared token, and a browser needs one credential, not two.
/// - **The identity**, the one user who may subscribe to `user:NAME`,
///   comes only from a user token that `user_tokens` verifies, sent as
///   `Authorization: Bearer <user token>` or `?user_token=<user token>`
///   (EventSource and WebSocket cannot set headers). Nothing else names a
///   user: `?user=NAME` is ignored. Without `user_tokens` no request has an
///   identity, so no one may subscribe to a `user:` room (publishing to
///   one still follows the publish rule).
/// - A user token that does not verify (malformed, altered, signed with
///   another secret, expired, or sent while `user_tokens` is `None`) is a
///   401 with the reason, never a quiet fall back to anonymous. A token in
///   the header and one in the query must name the same user.
/// - A bearer credential equal to the publish or the subscribe token is
///   that token; otherwise, if it starts with `v1.`, it is a user token.
///
/// Tokens are compared in constant time. `Authorization` is read as RFC
/// 9110 §11 has it: the scheme `Bearer` in any case, then one or more
/// spaces, then the token. `Debug` prints no secret.
#[derive(Clone, Default)]
pub struct TokenAuth {
    /// Publishers must send `Authorization: Bearer TOKEN` (never in the
    /// query string, which ends up in logs).
    pub publish_token: Option<String>,
    /// Subscribers must send `Authorization: Bearer TOKEN` or `?token=TOKEN`
    /// (browsers' EventSource cannot set headers), or a valid user token.
    pub subscribe_token: Option<String>,
    /// Verifies user tokens, the only source of identities. `None`: no
    /// request has an identity.
    pub user_tokens: Option<UserTokens>,
}

impl fmt::Debug for TokenAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |token: &Option<String>| token.as_ref().map(|_| "<redacted>");
        f.debug_struct("TokenAuth")
            .field("publish_token", &redacted(&self.publish_token))
            .field("subscribe_token", &redacted(&self.subscribe_token))
            .field("user_tokens", &self.user_tokens)
            .finish()
    }
}

impl AuthHook for TokenAuth {
    /// Reads no peer address and never waits: the verdict is ready at once.
    fn authorize<'a>(&'a self, request: AuthRequest<'a>, action: Action<'a>) -> AuthFuture<'a> {
        Box::pin(std::future::ready(self.authorize_at(
            request.head,
            action,
            unix_now(),
        )))
    }
}

impl TokenAuth {
    /// The verdict of [`AuthHook::authorize`] with user tokens checked at
    /// `now_unix`.
    fn authorize_at(
        &self,
        request: &Request,
        action: Action<'_>,
        now_unix: u64,
    ) -> Result<Option<String>, Denied> {
        let bearer = bearer_credential(request);
        let bearer_is = |token: &Option<String>| match (bearer, token) {
            (Some(presented), Some(expected)) => secret_eq(presented, expected),
            _ => false,
        };
        let bearer_publishes = bearer_is(&self.publish_token);
        let bearer_subscribes = bearer_is(&self.subscribe_token);
        let bearer_user = bearer
            .filter(|b| !bearer_publishes && !bearer_subscribes && b.starts_with(TOKEN_PREFIX));
        let query_user = super::params::query_param(request.query(), "user_token");
        let identity = self.identity(bearer_user, query_user.as_deref(), now_unix)?;
        match action {
            Action::Publish(_) => {
                if self.publish_token.is_some() && !bearer_publishes {
                    return Err(unauthorized(
                        "missing or wrong publish token (Authorization: Bearer)",
                    ));
                }
            }
            Action::Subscribe(_) | Action::Connect => {
                if let Some(token) = &self.subscribe_token {
                    let query = super::params::query_param(request.query(), "token");
                    // `|`, not `||`: the query token is compared whatever
                    // the header says.
                    let ok = bearer_subscribes
                        | query.is_some_and(|q| secret_eq(&q, token))
                        | identity.is_some();
                    if !ok {
                        return Err(unauthorized("missing or wrong subscribe token"));
                    }
                }
            }
        }
        Ok(identity)
    }

    /// The identity the user tokens prove: `None` if there are none, `Err`
    /// if one does not verify or the two name different users.
    fn identity(
        &self,
        bearer: Option<&str>,
        query: Option<&str>,
        now_unix: u64,
    ) -> Result<Option<String>, Denied> {
        if bearer.is_none() && query.is_none() {
            return Ok(None);
        }
        let Some(tokens) = &self.user_tokens else {
            return Err(unauthorized("user tokens are not accepted here"));
        };
        let verify = |token: &str| {
            tokens
                .verify(token, now_unix)
                .map_err(|e| unauthorized(&e.to_string()))
        };
        let from_header = bearer.map(verify).transpose()?;
        let from_query = query.map(verify).transpose()?;
        match (from_header, from_query) {
            (Some(a), Some(b)) if a != b => Err(unauthorized("two user tokens, two users")),
            (a, b) => Ok(a.or(b)),
        }
    }
}

/// Seconds since the Unix epoch; `u64::MAX` (every token expired) for a
/// clock set before 1970, failing closed.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(u64::MAX, |d| d.as_secs())
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
pub(crate) fn bearer_credential(request: &Request) -> Option<&str> {
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
///
/// For hooks and handlers of your own that check a secret:
///
/// ```
/// use rtwire::serve::secret_eq;
/// assert!(secret_eq("let-me-in", "let-me-in"));
/// assert!(!secret_eq("let-me-im", "let-me-in"));
/// ```
pub fn secret_eq(presented: &str, expected: &str) -> bool {
    ct_eq(
        &Sha256::digest(presented.as_bytes()),
        &Sha256::digest(expected.as_bytes()),
    )
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
    use crate::serve::routes::check_private;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_700_000_000;

    fn tokens() -> UserTokens {
        UserTokens::new(SECRET).unwrap()
    }

    /// What `auth` answers through the hook, from a documentation address.
    /// `TokenAuth` never waits, so one poll settles it.
    fn verdict(
        auth: &TokenAuth,
        head: &Request,
        action: Action<'_>,
    ) -> Result<Option<String>, Denied> {
        use std::task::{Context, Poll, Waker};
        let peer = SocketAddr::from(([192, 0, 2, 1], 4000));
        let mut future = auth.authorize(AuthRequest::new(head, peer), action);
        match future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(verdict) => verdict,
            Poll::Pending => panic!("TokenAuth waited"),
        }
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
            user_tokens: None,
        }
    }

    /// Shared tokens and user tokens.
    fn full_auth() -> TokenAuth {
        TokenAuth {
            user_tokens: Some(tokens()),
            ..shared_tokens()
        }
    }

    fn bob_token() -> String {
        tokens().mint("bob", NOW + 3600).unwrap()
    }

    /// The identity `auth` grants for `target` with `authorization`, at NOW.
    fn identity_at(
        auth: &TokenAuth,
        target: &str,
        authorization: Option<&str>,
    ) -> Result<Option<String>, Denied> {
        let r = match authorization {
            Some(a) => with_auth(target, a),
            None => request(&format!("GET {target} HTTP/1.1")),
        };
        auth.authorize_at(&r, Action::Subscribe("user:bob"), NOW)
    }

    fn reason(result: Result<Option<String>, Denied>) -> String {
        result.expect_err("refused").reason
    }

    fn status(result: Result<Option<String>, Denied>) -> u16 {
        match result {
            Ok(_) => 200,
            Err(denied) => denied.status,
        }
    }

    #[test]
    fn secret_eq_is_equality() {
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
            status(verdict(&auth, &post("/channels/room", ""), publish)),
            401
        );
        assert_eq!(
            status(verdict(
                &auth,
                &post("/channels/room?token=pub-secret", ""),
                publish
            )),
            401,
            "the publish token in the query string is refused"
        );
        let header = "\r\nAuthorization: Bearer pub-secret";
        assert_eq!(
            status(verdict(&auth, &post("/channels/room", header), publish)),
            200
        );
        // The subscribe token does not publish, nor the publish token subscribe.
        let header = "\r\nAuthorization: Bearer sub-secret";
        assert_eq!(
            status(verdict(&auth, &post("/channels/room", header), publish)),
            401
        );
        let sub = Action::Subscribe("room");
        let get = with_auth("/channels/room/poll", "Bearer pub-secret");
        assert_eq!(status(verdict(&auth, &get, sub)), 401);
    }

    #[test]
    fn subscribe_token_from_the_header_or_the_query() {
        let auth = shared_tokens();
        for action in [Action::Subscribe("room"), Action::Connect] {
            let plain = request("GET /channels/room/poll HTTP/1.1");
            assert_eq!(status(verdict(&auth, &plain, action)), 401);
            let query = request("GET /channels/room/poll?token=sub-secret HTTP/1.1");
            assert_eq!(status(verdict(&auth, &query, action)), 200);
            let wrong = request("GET /channels/room/poll?token=sub-secreT HTTP/1.1");
            assert_eq!(status(verdict(&auth, &wrong, action)), 401);
            let header = with_auth("/channels/room/poll", "Bearer sub-secret");
            assert_eq!(status(verdict(&auth, &header, action)), 200);
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
            assert_eq!(status(verdict(&auth, &r, publish)), 200, "{ok:?}");
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
            assert_eq!(status(verdict(&auth, &r, publish)), 401, "{bad:?}");
        }
    }

    #[test]
    fn no_tokens_configured_allows_everyone() {
        let auth = TokenAuth::default();
        let plain = request("GET /channels/room/poll HTTP/1.1");
        assert_eq!(
            status(verdict(&auth, &plain, Action::Subscribe("room"))),
            200
        );
        assert_eq!(status(verdict(&auth, &plain, Action::Publish("room"))), 200);
        assert_eq!(status(verdict(&auth, &plain, Action::Connect)), 200);
    }

    #[test]
    fn the_user_query_parameter_grants_no_identity() {
        let target = "/channels/user:bob/poll?token=sub-secret&user=bob";
        for auth in [shared_tokens(), full_auth()] {
            let identity = identity_at(&auth, target, None);
            assert_eq!(identity, Ok(None), "{auth:?}");
            let refused = check_private("user:bob", identity.unwrap().as_deref());
            assert_eq!(refused.unwrap_err().status, 403);
        }
        let no_tokens = TokenAuth::default();
        assert_eq!(identity_at(&no_tokens, "/p?user=bob", None), Ok(None));
    }

    #[test]
    fn a_user_token_grants_its_identity_by_header_or_query() {
        let auth = full_auth();
        let token = bob_token();
        for scheme in ["Bearer", "bearer", "BEARER"] {
            let header = format!("{scheme} {token}");
            let identity = identity_at(&auth, "/channels/user:bob/poll", Some(&header));
            assert_eq!(identity, Ok(Some("bob".into())), "{header}");
        }
        let query = format!("/channels/user:bob/poll?user_token={token}");
        let identity = identity_at(&auth, &query, None).unwrap();
        assert_eq!(identity.as_deref(), Some("bob"));
        assert!(check_private("user:bob", identity.as_deref()).is_ok());
        // Percent-encoded is the same token.
        let encoded = format!(
            "/channels/user:bob/poll?user_token={}",
            token.replace('.', "%2E")
        );
        assert_eq!(identity_at(&auth, &encoded, None), Ok(Some("bob".into())));
        // With the subscribe token as well, in either place.
        let both = format!("{query}&token=sub-secret");
        assert_eq!(identity_at(&auth, &both, None), Ok(Some("bob".into())));
        let both = identity_at(&auth, &query, Some("Bearer sub-secret"));
        assert_eq!(both, Ok(Some("bob".into())));
    }

    #[test]
    fn a_user_token_satisfies_the_subscribe_token_but_does_not_publish() {
        let auth = full_auth();
        let token = bob_token();
        let r = request(&format!("GET /ws?user_token={token} HTTP/1.1"));
        assert_eq!(
            auth.authorize_at(&r, Action::Connect, NOW),
            Ok(Some("bob".into()))
        );
        assert_eq!(
            auth.authorize_at(&r, Action::Subscribe("room"), NOW),
            Ok(Some("bob".into()))
        );
        let denied = auth.authorize_at(&r, Action::Publish("room"), NOW);
        assert_eq!(denied.unwrap_err().status, 401);
        let r = with_auth("/channels/room", &format!("Bearer {token}"));
        let denied = auth.authorize_at(&r, Action::Publish("room"), NOW);
        assert_eq!(denied.unwrap_err().status, 401);
        // Without a publish token, anyone publishes, to user rooms too; the
        // identity comes along.
        let open = TokenAuth {
            publish_token: None,
            ..full_auth()
        };
        assert_eq!(
            open.authorize_at(&r, Action::Publish("user:alice"), NOW),
            Ok(Some("bob".into()))
        );
        let anonymous = request("POST /channels/user:alice HTTP/1.1");
        assert_eq!(
            open.authorize_at(&anonymous, Action::Publish("user:alice"), NOW),
            Ok(None)
        );
    }

    #[test]
    fn a_token_for_another_user_does_not_open_this_room() {
        let auth = full_auth();
        let alice = tokens().mint("alice", NOW + 3600).unwrap();
        let target = format!("/channels/user:bob/poll?user_token={alice}&user=bob");
        let identity = identity_at(&auth, &target, None).unwrap();
        assert_eq!(identity.as_deref(), Some("alice"));
        let refused = check_private("user:bob", identity.as_deref());
        assert_eq!(refused.unwrap_err().status, 403);
        // Header and query naming different users: refused, not either.
        let header = format!("Bearer {}", bob_token());
        let target = format!("/channels/user:bob/poll?user_token={alice}");
        let denied = identity_at(&auth, &target, Some(&header)).unwrap_err();
        assert_eq!(denied.status, 401);
        // The same token twice is fine.
        let target = format!("/channels/user:bob/poll?user_token={}", bob_token());
        assert_eq!(
            identity_at(&auth, &target, Some(&header)),
            Ok(Some("bob".into()))
        );
    }

    #[test]
    fn bad_user_tokens_are_401_not_anonymous() {
        let auth = full_auth();
        let token = bob_token();
        let (signed, mac) = token.rsplit_once('.').unwrap();
        let tampered = format!("v1.alice.{}.{mac}", NOW + 3600);
        let other_secret = UserTokens::new(b"not the server's secret!")
            .unwrap()
            .mint("bob", NOW + 3600)
            .unwrap();
        let expired = tokens().mint("bob", NOW).unwrap();
        let later = format!(
            "{}.{mac}",
            signed.replace(&(NOW + 3600).to_string(), &(NOW + 99999).to_string())
        );
        for (bad, why) in [
            (tampered.as_str(), "signature"),
            (later.as_str(), "signature"),
            (other_secret.as_str(), "signature"),
            (expired.as_str(), "expired"),
            ("v1.bob", "malformed"),
            ("", "malformed"),
        ] {
            let query = format!("/channels/user:bob/poll?user_token={bad}");
            let said = reason(identity_at(&auth, &query, None));
            assert!(said.contains(why), "{bad:?}: {said}");
            if !bad.is_empty() {
                let header = format!("Bearer {bad}");
                let said = reason(identity_at(&auth, "/p", Some(&header)));
                assert!(said.contains(why), "{bad:?}: {said}");
            }
        }
        // Even where no token is needed at all.
        let open = TokenAuth {
            user_tokens: Some(tokens()),
            ..TokenAuth::default()
        };
        let query = format!("/channels/room/poll?user_token={tampered}");
        assert_eq!(identity_at(&open, &query, None).unwrap_err().status, 401);
    }

    #[test]
    fn expiry_is_checked_against_the_real_clock() {
        let auth = full_auth();
        let past = tokens().mint("bob", 1).unwrap();
        let r = request(&format!(
            "GET /channels/user:bob/poll?user_token={past} HTTP/1.1"
        ));
        let denied = verdict(&auth, &r, Action::Subscribe("user:bob")).unwrap_err();
        assert_eq!(denied.status, 401);
        assert!(denied.reason.contains("expired"), "{}", denied.reason);
        let future = tokens().mint("bob", unix_now() + 3600).unwrap();
        let r = request(&format!(
            "GET /channels/user:bob/poll?user_token={future} HTTP/1.1"
        ));
        assert_eq!(
            verdict(&auth, &r, Action::Subscribe("user:bob")),
            Ok(Some("bob".into()))
        );
    }

    #[test]
    fn without_user_tokens_a_user_token_is_refused() {
        let auth = shared_tokens();
        let query = format!("/channels/user:bob/poll?user_token={}", bob_token());
        assert_eq!(identity_at(&auth, &query, None).unwrap_err().status, 401);
        let header = format!("Bearer {}", bob_token());
        assert_eq!(
            identity_at(&auth, "/p", Some(&header)).unwrap_err().status,
            401
        );
    }

    #[test]
    fn shared_tokens_that_look_like_user_tokens_are_still_shared_tokens() {
        let auth = TokenAuth {
            publish_token: Some("v1.pub.1.x".into()),
            subscribe_token: Some("v1.sub.1.x".into()),
            user_tokens: Some(tokens()),
        };
        let r = with_auth("/channels/room", "Bearer v1.pub.1.x");
        assert_eq!(
            auth.authorize_at(&r, Action::Publish("room"), NOW),
            Ok(None)
        );
        let r = with_auth("/channels/room/poll", "Bearer v1.sub.1.x");
        assert_eq!(
            auth.authorize_at(&r, Action::Subscribe("room"), NOW),
            Ok(None)
        );
        // Any other `v1.` credential is a user token, and this one is bad.
        let r = with_auth("/channels/room/poll", "Bearer v1.sub.2.x");
        let denied = auth.authorize_at(&r, Action::Subscribe("room"), NOW);
        assert!(reason(denied).contains("user token"));
    }

    #[test]
    fn debug_prints_no_secret() {
        assert_eq!(format!("{:?}", tokens()), "UserTokens { .. }");
        let shown = format!("{:?}", full_auth());
        assert_eq!(
            shown,
            "TokenAuth { publish_token: Some(\"<redacted>\"), \
             subscribe_token: Some(\"<redacted>\"), user_tokens: Some(UserTokens { .. }) }"
        );
    }
}
