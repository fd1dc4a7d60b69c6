//! Who may publish and subscribe: a hook given the request head.

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
#[derive(Clone, Debug, Default)]
pub struct TokenAuth {
    /// Publishers must send `Authorization: Bearer TOKEN`.
    pub publish_token: Option<String>,
    /// Subscribers must send `Authorization: Bearer TOKEN` or `?token=TOKEN`
    /// (browsers' EventSource cannot set headers).
    pub subscribe_token: Option<String>,
}

impl AuthHook for TokenAuth {
    fn authorize(&self, request: &Request, action: Action<'_>) -> Result<Option<String>, Denied> {
        let required = match action {
            Action::Publish(_) => self.publish_token.as_deref(),
            Action::Subscribe(_) | Action::Connect => self.subscribe_token.as_deref(),
        };
        if let Some(token) = required {
            let bearer = request
                .headers
                .get("authorization")
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::to_owned);
            let query = super::params::query_param(request.query(), "token");
            if bearer.as_deref() != Some(token) && query.as_deref() != Some(token) {
                return Err(Denied {
                    status: 401,
                    reason: "missing or wrong bearer token".into(),
                });
            }
        }
        let user = super::params::query_param(request.query(), "user")
            .filter(|u| super::params::valid_channel(&format!("user:{u}")));
        Ok(user)
    }
}
