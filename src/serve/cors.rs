//! CORS (the Fetch standard's cross-origin protocol) for the HTTP
//! transports: publishing, short and long polling, SSE (`/channels/...`).
//! `/ws` checks origins in its handshake instead; the fallback handler's
//! routes are the program's to answer.

use std::fmt;
use std::time::Duration;

use super::response::Response;
use crate::http::Request;

/// Who may read the HTTP transports' answers from a browser page of
/// another origin.
///
/// Closed by default ([`ServeConfig::cors`](super::ServeConfig::cors) is
/// `None`): no CORS header at all, so a browser lets no other origin read
/// an answer. When configured:
///
/// - A request with an allowed `Origin` gets `Access-Control-Allow-Origin`
///   (the origin echoed, or `*` for any origin without credentials),
///   `Access-Control-Expose-Headers: ETag, Retry-After`, and
///   `Access-Control-Allow-Credentials: true` if credentials are allowed.
/// - A preflight (`OPTIONS` with `Origin` and
///   `Access-Control-Request-Method`) from an allowed origin gets 204 with
///   the methods (`GET, POST, HEAD, DELETE, OPTIONS`), the request headers the
///   routes read (`Authorization, Content-Type, Last-Event-ID,
///   If-None-Match`) and `Access-Control-Max-Age`.
/// - A disallowed origin gets no CORS header (the browser withholds the
///   answer), and its preflight a 403 with the reason, which shows in the
///   browser's console where a bare 204 would say nothing.
/// - `*` is never sent with credentials (the browser would refuse it): the
///   origin is echoed instead. Whenever the answer depends on the origin,
///   it carries `Vary: Origin`, so no cache hands one origin's answer to
///   another.
///
/// ```
/// use rtwire::serve::{Cors, CorsError};
///
/// let cors = Cors::allow_origins(["https://app.example", "http://localhost:3000/"])?
///     .with_credentials(true);
/// assert!(cors.allows("https://app.example"));
/// assert!(cors.allows("http://localhost:3000"));
/// assert!(!cors.allows("https://evil.example"));
/// assert!(Cors::allow_origins(["*"])?.allows("https://anyone.example"));
/// assert_eq!(
///     Cors::allow_origins(["https://app.example/path"]).unwrap_err(),
///     CorsError::InvalidOrigin("https://app.example/path".into())
/// );
/// # Ok::<(), CorsError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Cors {
    origins: Origins,
    /// Whether pages may send credentials (cookies, HTTP authentication):
    /// `Access-Control-Allow-Credentials: true`. Default false.
    pub allow_credentials: bool,
    /// How long a browser may cache a preflight's answer. Default 10 min.
    pub max_age: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Origins {
    Any,
    /// Lower-cased, without a trailing `/`.
    Exact(Vec<String>),
}

/// A configured origin that is not one: the caller's mistake.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CorsError {
    /// Not `*`, `null`, or `scheme://host[:port]` without path, query or
    /// user info.
    InvalidOrigin(String),
}

impl fmt::Display for CorsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CorsError::InvalidOrigin(o) => write!(
                f,
                "invalid CORS origin {o:?}: expected *, or scheme://host[:port] such as https://app.example"
            ),
        }
    }
}

impl std::error::Error for CorsError {}

/// Methods the CORS routes answer.
const ALLOW_METHODS: &str = "GET, POST, HEAD, DELETE, OPTIONS";
/// Request headers the routes read.
const ALLOW_HEADERS: &str = "Authorization, Content-Type, Last-Event-ID, If-None-Match";
/// Response headers a page needs to read beyond the safelisted ones.
const EXPOSE_HEADERS: &str = "ETag, Retry-After";

impl Cors {
    /// Any origin may read; without credentials the answer says `*`.
    pub fn any() -> Cors {
        Cors {
            origins: Origins::Any,
            allow_credentials: false,
            max_age: Duration::from_secs(600),
        }
    }

    /// These origins may read: each `scheme://host[:port]` (a trailing
    /// `/` is dropped, case does not matter), `null`, or `*` for any.
    pub fn allow_origins<I>(origins: I) -> Result<Cors, CorsError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut exact = Vec::new();
        for origin in origins {
            let origin = origin.as_ref().trim();
            if origin == "*" {
                return Ok(Cors::any());
            }
            exact.push(normalize(origin).ok_or_else(|| CorsError::InvalidOrigin(origin.into()))?);
        }
        Ok(Cors {
            origins: Origins::Exact(exact),
            ..Cors::any()
        })
    }

    /// Sets [`allow_credentials`](Cors::allow_credentials).
    pub fn with_credentials(mut self, allow: bool) -> Cors {
        self.allow_credentials = allow;
        self
    }

    /// Whether a page of `origin` may read the answers.
    pub fn allows(&self, origin: &str) -> bool {
        match &self.origins {
            // Only a well-formed origin is echoed back into a head.
            Origins::Any => normalize(origin).is_some(),
            Origins::Exact(list) => list.iter().any(|o| o.eq_ignore_ascii_case(origin)),
        }
    }

    /// Whether the answer depends on the request's `Origin`.
    fn varies(&self) -> bool {
        self.allow_credentials || matches!(self.origins, Origins::Exact(_))
    }

    /// The CORS headers of an answer to `request` (not a preflight).
    pub(crate) fn headers(&self, request: &Request) -> Vec<(&'static str, String)> {
        let mut headers = Vec::new();
        if self.varies() {
            headers.push(("Vary", "Origin".to_owned()));
        }
        let Some(origin) = request.headers.get("origin").filter(|o| self.allows(o)) else {
            return headers;
        };
        let value = if self.varies() { origin } else { "*" };
        headers.push(("Access-Control-Allow-Origin", value.to_owned()));
        if self.allow_credentials {
            headers.push(("Access-Control-Allow-Credentials", "true".to_owned()));
        }
        headers.push(("Access-Control-Expose-Headers", EXPOSE_HEADERS.to_owned()));
        headers
    }

    /// `response` with the CORS headers for `request`.
    pub(crate) fn apply(&self, request: &Request, mut response: Response) -> Response {
        for (name, value) in self.headers(request) {
            response = response.header(name, value);
        }
        response
    }

    /// The answer to a preflight.
    pub(crate) fn preflight(&self, request: &Request) -> Response {
        let allowed = request
            .headers
            .get("origin")
            .is_some_and(|o| self.allows(o));
        if !allowed {
            let refused = Response::error(403, "origin not allowed (CORS)");
            return match self.varies() {
                true => refused.header("Vary", "Origin"),
                false => refused,
            };
        }
        let mut response = Response::new(204, "text/plain", "");
        response.headers.clear();
        self.apply(request, response)
            .header("Access-Control-Allow-Methods", ALLOW_METHODS)
            .header("Access-Control-Allow-Headers", ALLOW_HEADERS)
            .header("Access-Control-Max-Age", self.max_age.as_secs().to_string())
    }
}

/// Whether `request` is a CORS preflight (Fetch standard, "CORS-preflight
/// request").
pub(crate) fn is_preflight(request: &Request) -> bool {
    request.method == "OPTIONS"
        && request.headers.get("origin").is_some()
        && request
            .headers
            .get("access-control-request-method")
            .is_some()
}

/// `origin` lower-cased without a trailing `/`, if it is `null` or
/// `scheme://host[:port]`.
fn normalize(origin: &str) -> Option<String> {
    let origin = origin
        .strip_suffix('/')
        .unwrap_or(origin)
        .to_ascii_lowercase();
    if origin == "null" {
        return Some(origin);
    }
    let (scheme, authority) = origin.split_once("://")?;
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    let authority_ok = !authority.is_empty()
        && authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    (scheme_ok && authority_ok).then_some(origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_checked_and_normalized() {
        for good in [
            "https://a.example",
            "HTTP://A.example:8080/",
            "null",
            "http://[::1]:3000",
        ] {
            assert!(Cors::allow_origins([good]).is_ok(), "{good}");
        }
        for bad in [
            "",
            "a.example",
            "https://",
            "https://a.example/x",
            "https://u@a.example",
            "https://a.example?q",
        ] {
            assert_eq!(
                Cors::allow_origins([bad]),
                Err(CorsError::InvalidOrigin(bad.into())),
                "{bad}"
            );
        }
        let cors = Cors::allow_origins(["HTTPS://A.example/"]).unwrap();
        assert!(cors.allows("https://a.example"));
        assert!(!cors.allows("https://a.example.evil"));
    }
}
