//! The W3C WebSub hub's side of a subscription: reading a subscription
//! request (§5.1), the lease, and the verification of intent (§5.3).
//!
//! The topic of channel `NAME` is `{base}/channels/NAME`, the hub is
//! `{base}/websub`.

use super::client::{Client, OutboundRequest};
use super::form::{self, Form};
use super::url::{CallbackUrl, UrlError};
use crate::hub::valid_channel;
use std::fmt;
use std::time::Duration;

/// §5.1: "hub.secret … MUST be less than 200 bytes in length".
pub const MAX_SECRET_BYTES: usize = 199;

/// Whether a request subscribes or unsubscribes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `hub.mode=subscribe`.
    Subscribe,
    /// `hub.mode=unsubscribe`.
    Unsubscribe,
}

impl Mode {
    /// The `hub.mode` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Subscribe => "subscribe",
            Mode::Unsubscribe => "unsubscribe",
        }
    }
}

/// The range leases are clamped to, and the lease of a request that asks
/// for none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseLimits {
    /// The shortest lease granted. Default 60 s.
    pub min: Duration,
    /// The longest lease granted. Default 30 days.
    pub max: Duration,
    /// The lease when none is asked for. Default 10 days.
    pub default: Duration,
}

impl Default for LeaseLimits {
    fn default() -> Self {
        LeaseLimits {
            min: Duration::from_secs(60),
            max: Duration::from_secs(30 * 86_400),
            default: Duration::from_secs(10 * 86_400),
        }
    }
}

impl LeaseLimits {
    /// The lease granted for `asked` seconds (or none asked): clamped into
    /// `min..=max`, in whole seconds.
    ///
    /// ```
    /// use rtwire::push::websub::LeaseLimits;
    /// let limits = LeaseLimits::default();
    /// assert_eq!(limits.grant(None), 864_000);
    /// assert_eq!(limits.grant(Some(5)), 60);
    /// assert_eq!(limits.grant(Some(u64::MAX)), 2_592_000);
    /// ```
    pub fn grant(&self, asked: Option<u64>) -> u64 {
        let (min, max) = (
            self.min.as_secs(),
            self.max.as_secs().max(self.min.as_secs()),
        );
        asked.unwrap_or(self.default.as_secs()).clamp(min, max)
    }
}

/// A subscription request, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Subscribe or unsubscribe.
    pub mode: Mode,
    /// `hub.topic`, as sent (this hub's topic URL of `channel`).
    pub topic: String,
    /// The channel the topic names.
    pub channel: String,
    /// `hub.callback`.
    pub callback: CallbackUrl,
    /// `hub.lease_seconds`, if given.
    pub lease_seconds: Option<u64>,
    /// `hub.secret`, if given.
    pub secret: Option<Vec<u8>>,
}

/// Why a subscription request was refused with 400; the reason is the
/// plain-text body.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestError {
    /// A required parameter is missing.
    Missing(&'static str),
    /// `hub.mode` is neither `subscribe` nor `unsubscribe`.
    BadMode,
    /// `hub.topic` is not a topic of this hub.
    UnknownTopic,
    /// `hub.callback` is not a usable URL.
    BadCallback(UrlError),
    /// `hub.lease_seconds` is not a whole number of seconds.
    BadLease,
    /// `hub.secret` is 200 bytes or more.
    SecretTooLong,
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::Missing(name) => write!(f, "{name} is required"),
            RequestError::BadMode => f.write_str("hub.mode must be subscribe or unsubscribe"),
            RequestError::UnknownTopic => {
                f.write_str("hub.topic is not a topic of this hub: expected {base}/channels/NAME")
            }
            RequestError::BadCallback(e) => write!(f, "hub.callback: {e}"),
            RequestError::BadLease => f.write_str("hub.lease_seconds must be whole seconds"),
            RequestError::SecretTooLong => {
                write!(f, "hub.secret must be under 200 bytes (WebSub 5.1)")
            }
        }
    }
}

impl std::error::Error for RequestError {}

impl Request {
    /// Reads a subscription request (already form-decoded) for the hub
    /// whose topics are `{base}/channels/NAME`. Parameters other than the
    /// five of §5.1 are ignored, as §5.1 asks.
    ///
    /// ```
    /// use rtwire::push::form::{Form, FormLimits};
    /// use rtwire::push::websub::{Mode, Request};
    /// let body = b"hub.mode=subscribe&hub.topic=http%3A%2F%2Fhub.example%2Fchannels%2Fnews&hub.callback=https%3A%2F%2Fsub.example%2Fcb&foo=bar";
    /// let form = Form::parse(body, &FormLimits::default()).unwrap();
    /// let request = Request::from_form(&form, "http://hub.example").unwrap();
    /// assert_eq!((request.mode, request.channel.as_str()), (Mode::Subscribe, "news"));
    /// ```
    pub fn from_form(form: &Form, base: &str) -> Result<Request, RequestError> {
        let required = |name| form.get(name).ok_or(RequestError::Missing(name));
        let mode = match required("hub.mode")? {
            "subscribe" => Mode::Subscribe,
            "unsubscribe" => Mode::Unsubscribe,
            _ => return Err(RequestError::BadMode),
        };
        let topic = required("hub.topic")?;
        let channel = topic_channel(topic, base).ok_or(RequestError::UnknownTopic)?;
        let callback =
            CallbackUrl::parse(required("hub.callback")?).map_err(RequestError::BadCallback)?;
        let lease_seconds = match form.get("hub.lease_seconds") {
            None | Some("") => None,
            Some(text) if text.len() <= 20 && text.bytes().all(|b| b.is_ascii_digit()) => {
                Some(text.parse().map_err(|_| RequestError::BadLease)?)
            }
            Some(_) => return Err(RequestError::BadLease),
        };
        let secret = match form.get("hub.secret") {
            None | Some("") => None,
            Some(s) if s.len() > MAX_SECRET_BYTES => return Err(RequestError::SecretTooLong),
            Some(s) => Some(s.as_bytes().to_vec()),
        };
        Ok(Request {
            mode,
            topic: topic.to_owned(),
            channel: channel.to_owned(),
            callback,
            lease_seconds,
            secret,
        })
    }
}

/// The channel of `topic` if it is `{base}/channels/NAME`.
pub fn topic_channel<'a>(topic: &'a str, base: &str) -> Option<&'a str> {
    let name = topic.strip_prefix(base)?.strip_prefix("/channels/")?;
    valid_channel(name).then_some(name)
}

/// A fresh challenge: 128 random bits, hex, single use.
pub fn challenge() -> String {
    let bytes: [u8; 16] = rand::random();
    super::signature::hex(&bytes)
}

/// Why the subscriber did not confirm.
#[derive(Debug)]
#[non_exhaustive]
pub enum VerifyError {
    /// The request failed (refused address, network, timeout, bad answer).
    Request(super::client::ClientError),
    /// It answered with a status other than 2xx.
    Status(u16),
    /// It answered 2xx, but not with the challenge.
    WrongChallenge,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::Request(e) => write!(f, "verification request failed: {e}"),
            VerifyError::Status(s) => write!(f, "verification answered {s}"),
            VerifyError::WrongChallenge => f.write_str("verification did not echo the challenge"),
        }
    }
}

impl std::error::Error for VerifyError {}

/// §5.3: GETs the callback (its own query kept) with `hub.mode`,
/// `hub.topic`, `hub.challenge` and, to subscribe, `hub.lease_seconds`.
/// "The subscriber MUST respond with an HTTP success (2xx) code with a
/// response body equal to the hub.challenge parameter."
pub async fn verify_intent(
    client: &Client,
    request: &Request,
    lease_seconds: u64,
) -> Result<(), VerifyError> {
    let challenge = challenge();
    let lease = lease_seconds.to_string();
    let mut pairs = vec![
        ("hub.mode", request.mode.as_str()),
        ("hub.topic", request.topic.as_str()),
        ("hub.challenge", challenge.as_str()),
    ];
    if request.mode == Mode::Subscribe {
        pairs.push(("hub.lease_seconds", lease.as_str()));
    }
    let target = request.callback.target_with_query(&form::encode(pairs));
    let get = OutboundRequest::get(request.callback.clone()).target(target);
    let response = client.send(&get).await.map_err(VerifyError::Request)?;
    if !(200..300).contains(&response.status) {
        return Err(VerifyError::Status(response.status));
    }
    if response.body.as_ref() != challenge.as_bytes() {
        return Err(VerifyError::WrongChallenge);
    }
    Ok(())
}

/// §5.2: tells the subscriber its subscription was refused
/// (`hub.mode=denied`, `hub.topic`, `hub.reason`). Its answer is ignored.
pub async fn tell_denied(client: &Client, request: &Request, reason: &str) {
    let query = form::encode([
        ("hub.mode", "denied"),
        ("hub.topic", request.topic.as_str()),
        ("hub.reason", reason),
    ]);
    let target = request.callback.target_with_query(&query);
    let get = OutboundRequest::get(request.callback.clone()).target(target);
    let _ = client.send(&get).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::form::FormLimits;

    const BASE: &str = "http://hub.example:8080";

    fn parse(body: &str) -> Result<Request, RequestError> {
        let form = Form::parse(body.as_bytes(), &FormLimits::default()).unwrap();
        Request::from_form(&form, BASE)
    }

    fn body(extra: &str) -> String {
        format!(
            "hub.mode=subscribe&hub.topic={}&hub.callback={}{extra}",
            form::encode([("", "http://hub.example:8080/channels/news")]).trim_start_matches('='),
            form::encode([("", "http://sub.example/cb?a=1")]).trim_start_matches('='),
        )
    }

    #[test]
    fn a_full_request() {
        let r = parse(&body("&hub.lease_seconds=300&hub.secret=s3cret&x=y")).unwrap();
        assert_eq!(r.mode, Mode::Subscribe);
        assert_eq!(r.channel, "news");
        assert_eq!(r.callback.to_string(), "http://sub.example/cb?a=1");
        assert_eq!(r.lease_seconds, Some(300));
        assert_eq!(r.secret.as_deref(), Some(&b"s3cret"[..]));
    }

    #[test]
    fn refusals() {
        assert_eq!(
            parse("hub.mode=subscribe"),
            Err(RequestError::Missing("hub.topic"))
        );
        assert_eq!(
            parse(&body("").replace("=subscribe", "=publish")),
            Err(RequestError::BadMode)
        );
        let other = body("").replace("channels%2Fnews", "other");
        assert_eq!(parse(&other), Err(RequestError::UnknownTopic));
        let bad_name = body("").replace("news", "a%20b");
        assert_eq!(parse(&bad_name), Err(RequestError::UnknownTopic));
        assert_eq!(
            parse(&body("&hub.lease_seconds=-1")),
            Err(RequestError::BadLease)
        );
        assert_eq!(
            parse(&body("&hub.lease_seconds=99999999999999999999999")),
            Err(RequestError::BadLease)
        );
        let long = format!("&hub.secret={}", "s".repeat(200));
        assert_eq!(parse(&body(&long)), Err(RequestError::SecretTooLong));
        let just = format!("&hub.secret={}", "s".repeat(199));
        assert!(parse(&body(&just)).is_ok());
        let ftp = body("").replace("http%3A%2F%2Fsub", "ftp%3A%2F%2Fsub");
        assert!(matches!(parse(&ftp), Err(RequestError::BadCallback(_))));
    }

    #[test]
    fn leases_are_clamped() {
        let limits = LeaseLimits {
            min: Duration::from_secs(10),
            max: Duration::from_secs(100),
            default: Duration::from_secs(1000),
        };
        assert_eq!(limits.grant(Some(50)), 50);
        assert_eq!(limits.grant(Some(0)), 10);
        assert_eq!(limits.grant(Some(101)), 100);
        assert_eq!(limits.grant(None), 100);
    }

    #[test]
    fn challenges_are_fresh() {
        let (a, b) = (challenge(), challenge());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}
