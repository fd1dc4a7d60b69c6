//! Webhooks' admin API: the JSON a registration arrives as (parsed here,
//! bounded, never panics: it is fuzzed) and the JSON the routes answer with.

use super::endpoint::Attempt;
use super::signature::{SecretError, WebhookSecret};
use super::url::{CallbackUrl, UrlError};
use crate::hub::valid_channel;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The largest registration body read.
pub const MAX_REGISTRATION_BYTES: usize = 8 * 1024;

/// A webhook to register: `POST /webhooks`.
#[derive(Clone, Debug)]
pub struct NewWebhook {
    /// The channel whose messages are delivered.
    pub channel: String,
    /// Where they are POSTed.
    pub url: CallbackUrl,
    /// The signing secret; generated when the request has none.
    pub secret: Option<WebhookSecret>,
}

/// Why a registration was refused: the caller's mistake, each variant
/// with the reason the 400 answer gives.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistrationError {
    /// Over [`MAX_REGISTRATION_BYTES`].
    TooLarge,
    /// Not the JSON object expected (a missing field, an unknown one, a
    /// wrong type); serde's words.
    Json(String),
    /// Not a channel name.
    BadChannel,
    /// Not a usable URL.
    BadUrl(UrlError),
    /// Not a `whsec_` secret.
    BadSecret(SecretError),
}

impl fmt::Display for RegistrationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistrationError::TooLarge => {
                write!(f, "the registration is over {MAX_REGISTRATION_BYTES} bytes")
            }
            RegistrationError::Json(e) => {
                write!(f, "expected {{\"channel\", \"url\", \"secret\"?}}: {e}")
            }
            RegistrationError::BadChannel => {
                f.write_str("invalid channel name: 1-64 of A-Z a-z 0-9 - _ . :")
            }
            RegistrationError::BadUrl(e) => write!(f, "url: {e}"),
            RegistrationError::BadSecret(e) => write!(f, "secret: {e}"),
        }
    }
}

impl std::error::Error for RegistrationError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Registration {
    channel: String,
    url: String,
    #[serde(default)]
    secret: Option<String>,
}

impl NewWebhook {
    /// Parses a registration body.
    ///
    /// ```
    /// use rtwire::push::webhook::NewWebhook;
    /// let hook = NewWebhook::from_json(br#"{"channel": "orders", "url": "https://example.com/hook"}"#).unwrap();
    /// assert_eq!(hook.channel, "orders");
    /// assert!(hook.secret.is_none());
    /// assert!(NewWebhook::from_json(br#"{"channel": "orders"}"#).is_err());
    /// ```
    pub fn from_json(body: &[u8]) -> Result<NewWebhook, RegistrationError> {
        if body.len() > MAX_REGISTRATION_BYTES {
            return Err(RegistrationError::TooLarge);
        }
        let raw: Registration = from_object(body)?;
        if !valid_channel(&raw.channel) {
            return Err(RegistrationError::BadChannel);
        }
        let url = CallbackUrl::parse(&raw.url).map_err(RegistrationError::BadUrl)?;
        let secret = raw
            .secret
            .map(|s| WebhookSecret::parse(&s))
            .transpose()
            .map_err(RegistrationError::BadSecret)?;
        Ok(NewWebhook {
            channel: raw.channel,
            url,
            secret,
        })
    }
}

/// A secret rotation: `POST /webhooks/{id}/secret`, with an empty body
/// (a secret is generated) or `{"secret": "whsec_…"}`.
#[derive(Debug)]
pub struct NewSecret;

impl NewSecret {
    /// The new secret the body asks for; `None` to generate one.
    ///
    /// ```
    /// use rtwire::push::webhook::NewSecret;
    /// assert!(NewSecret::from_json(b"").unwrap().is_none());
    /// assert!(NewSecret::from_json(br#"{"secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}"#).unwrap().is_some());
    /// assert!(NewSecret::from_json(br#"{"secret":"nope"}"#).is_err());
    /// ```
    pub fn from_json(body: &[u8]) -> Result<Option<WebhookSecret>, RegistrationError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Rotation {
            #[serde(default)]
            secret: Option<String>,
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        if body.len() > MAX_REGISTRATION_BYTES {
            return Err(RegistrationError::TooLarge);
        }
        let raw: Rotation = from_object(body)?;
        raw.secret
            .map(|s| WebhookSecret::parse(&s))
            .transpose()
            .map_err(RegistrationError::BadSecret)
    }
}

/// `body` as a JSON object of type `T`. serde would also read a struct
/// from an array of its fields in order (`["orders", "https://…"]`): the
/// API takes objects only.
fn from_object<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, RegistrationError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(RegistrationError::Json("not a JSON object".to_owned()));
    }
    serde_json::from_slice(body).map_err(|e| RegistrationError::Json(short(e.to_string())))
}

/// The longest serde message kept in a reason.
const MAX_JSON_REASON: usize = 120;

/// `text` cut to [`MAX_JSON_REASON`] bytes, on a character boundary:
/// serde quotes what it did not expect (an unknown field's whole name),
/// and a reason must stay a short line, not an echo of the request.
fn short(mut text: String) -> String {
    if text.len() > MAX_JSON_REASON {
        let mut end = MAX_JSON_REASON;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// A webhook as the admin routes show it.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct WebhookView {
    pub id: String,
    pub channel: String,
    pub url: String,
    /// Only in the answer to the registration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    pub state: &'static str,
    pub disabled_reason: Option<String>,
    pub created_at: u64,
    /// The last message the endpoint is done with, if any since it was made.
    pub last_delivered: Option<String>,
}

/// One entry of `GET /webhooks/{id}/deliveries`.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct AttemptView {
    pub message_id: Option<String>,
    pub attempt: u32,
    pub at: u64,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub outcome: &'static str,
    pub next_retry: Option<u64>,
}

impl From<&Attempt> for AttemptView {
    fn from(a: &Attempt) -> AttemptView {
        AttemptView {
            message_id: a.message_id.map(|id| id.to_string()),
            attempt: a.attempt,
            at: a.at,
            status: a.status,
            error: a.error.clone(),
            outcome: a.outcome.as_str(),
            next_retry: a.next_retry,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registration_with_a_secret() {
        let body = br#"{"channel":"a","url":"http://example.com/h?x=1","secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}"#;
        let hook = NewWebhook::from_json(body).unwrap();
        assert_eq!(hook.url.to_string(), "http://example.com/h?x=1");
        assert_eq!(
            hook.secret.unwrap().to_whsec(),
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        );
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        let refused = |body: &str| NewWebhook::from_json(body.as_bytes()).unwrap_err();
        assert!(matches!(refused("[]"), RegistrationError::Json(_)));
        assert!(matches!(
            refused(r#"["a", "http://x/"]"#),
            RegistrationError::Json(_)
        ));
        assert!(NewSecret::from_json(b" [ ] ").is_err());
        assert!(matches!(
            refused(r#"{"channel":"a"}"#),
            RegistrationError::Json(_)
        ));
        assert!(matches!(
            refused(r#"{"channel":"a","url":"http://x/","extra":1}"#),
            RegistrationError::Json(_)
        ));
        assert_eq!(
            refused(r#"{"channel":"a b","url":"http://x/"}"#),
            RegistrationError::BadChannel
        );
        assert!(matches!(
            refused(r#"{"channel":"a","url":"ftp://x/"}"#),
            RegistrationError::BadUrl(_)
        ));
        assert!(matches!(
            refused(r#"{"channel":"a","url":"http://x/","secret":"nope"}"#),
            RegistrationError::BadSecret(_)
        ));
        let long_field = format!(r#"{{"ch{}annel":"a","url":"http://x/"}}"#, "é".repeat(3000));
        let reason = refused(&long_field).to_string();
        assert!(reason.len() < 200, "{reason}");
        assert!(reason.contains("unknown field"), "{reason}");
        let big = format!(r#"{{"channel":"{}"}}"#, "a".repeat(MAX_REGISTRATION_BYTES));
        assert_eq!(refused(&big), RegistrationError::TooLarge);
    }
}
