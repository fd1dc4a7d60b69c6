//! `application/x-www-form-urlencoded` (the WHATWG URL Standard's
//! format), as WebSub subscription requests arrive (WebSub §5.1: the
//! subscriber POSTs to the hub URL with this content type).
//!
//! The body comes from the network: its size and number of pairs are
//! limited before anything is allocated for them, a bad `%` escape or a
//! name or value that is not UTF-8 once decoded is an error (not a
//! replacement character), and a name given twice is an error: two
//! `hub.callback`s would leave the hub and a proxy in front of it free to
//! disagree on which one was meant, so the request is refused instead.
//!
//! ```
//! use rtwire::push::form::{encode, Form, FormLimits};
//!
//! let form = Form::parse(b"hub.mode=subscribe&hub.topic=https%3A%2F%2Fa.example%2Fx&note=a+b", &FormLimits::default())?;
//! assert_eq!(form.get("hub.mode"), Some("subscribe"));
//! assert_eq!(form.get("hub.topic"), Some("https://a.example/x"));
//! assert_eq!(form.get("note"), Some("a b"));
//! assert_eq!(encode([("hub.challenge", "a b/c")]), "hub.challenge=a+b%2Fc");
//! # Ok::<(), rtwire::push::form::FormError>(())
//! ```

use std::fmt;

/// Bounds on a form body, checked before decoding it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FormLimits {
    /// Largest body accepted, in bytes. Default 8 KiB: a WebSub request
    /// is two URLs, a lease and a secret under 200 bytes.
    pub max_bytes: usize,
    /// Largest number of name=value pairs. Default 32.
    pub max_pairs: usize,
}

impl Default for FormLimits {
    fn default() -> FormLimits {
        FormLimits {
            max_bytes: 8 * 1024,
            max_pairs: 32,
        }
    }
}

impl FormLimits {
    /// Limits of `max_bytes` bytes and `max_pairs` pairs.
    pub fn new(max_bytes: usize, max_pairs: usize) -> FormLimits {
        FormLimits {
            max_bytes,
            max_pairs,
        }
    }
}

/// The longest name an error repeats, so that an error's text stays short
/// whatever the body held.
const MAX_NAME_IN_ERROR: usize = 64;

/// Why a form body was refused: always the sender's fault (a 400).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormError {
    /// The body is longer than [`FormLimits::max_bytes`].
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// More than [`FormLimits::max_pairs`] pairs.
    TooManyPairs {
        /// The limit.
        limit: usize,
    },
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// A name or value is not UTF-8 once decoded.
    NotUtf8,
    /// A name given twice (the name, cut to 64 bytes).
    DuplicateName(String),
}

impl fmt::Display for FormError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormError::TooLarge { limit } => write!(f, "form body over {limit} bytes"),
            FormError::TooManyPairs { limit } => write!(f, "form body with over {limit} fields"),
            FormError::BadEscape => f.write_str("bad % escape in form body"),
            FormError::NotUtf8 => f.write_str("form field is not UTF-8"),
            FormError::DuplicateName(name) => {
                // Escaped, control characters grow six-fold: the reason is
                // cut after escaping, to stay one short line.
                let shown: String = name.escape_debug().take(40).collect();
                write!(f, "form field \"{shown}\" given twice")
            }
        }
    }
}

impl std::error::Error for FormError {}

/// A decoded form: its pairs in the order received, names unique.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    /// Decodes a body. Empty pieces (`a=1&&b=2`, a trailing `&`) are
    /// skipped and a piece without `=` is a name with an empty value, as
    /// the WHATWG URL Standard's parser does; `+` is a space.
    pub fn parse(body: &[u8], limits: &FormLimits) -> Result<Form, FormError> {
        if body.len() > limits.max_bytes {
            return Err(FormError::TooLarge {
                limit: limits.max_bytes,
            });
        }
        let mut pairs: Vec<(String, String)> = Vec::new();
        for piece in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
            if pairs.len() == limits.max_pairs {
                return Err(FormError::TooManyPairs {
                    limit: limits.max_pairs,
                });
            }
            let (name, value) = match piece.iter().position(|&b| b == b'=') {
                Some(eq) => (&piece[..eq], &piece[eq + 1..]),
                None => (piece, &b""[..]),
            };
            let name = decode(name)?;
            if pairs.iter().any(|(seen, _)| *seen == name) {
                return Err(FormError::DuplicateName(cut(name)));
            }
            pairs.push((name, decode(value)?));
        }
        Ok(Form { pairs })
    }

    /// The value of the field `name` (exact, case-sensitive), if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The pairs, in the order received.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The number of pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

/// At most [`MAX_NAME_IN_ERROR`] bytes of `name`, cut at a character.
fn cut(mut name: String) -> String {
    if name.len() > MAX_NAME_IN_ERROR {
        let mut end = MAX_NAME_IN_ERROR;
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        name.truncate(end);
    }
    name
}

/// One name or value: `+` to space, `%XX` to its byte, then UTF-8. Also
/// what the server decodes query parameters with.
pub(crate) fn decode(raw: &[u8]) -> Result<String, FormError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = raw.get(i + 1).and_then(|&h| hex_value(h));
                let lo = raw.get(i + 2).and_then(|&l| hex_value(l));
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(FormError::BadEscape);
                };
                out.push(hi << 4 | lo);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| FormError::NotUtf8)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Encodes pairs as a form (the WHATWG serializer: ASCII letters, digits
/// and `*-._` as they are, space as `+`, every other byte as `%XX`), e.g.
/// the query a WebSub hub appends to a callback URL to verify intent.
/// [`Form::parse`] reads back exactly these pairs.
pub fn encode<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (name, value) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        encode_into(&mut out, name);
        out.push('=');
        encode_into(&mut out, value);
    }
    out
}

fn encode_into(out: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in text.as_bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<Form, FormError> {
        Form::parse(body.as_bytes(), &FormLimits::default())
    }

    fn pairs(form: &Form) -> Vec<(&str, &str)> {
        form.iter().collect()
    }

    #[test]
    fn a_websub_subscription() {
        let form = parse(
            "hub.mode=subscribe&hub.topic=http%3A%2F%2Fh%2Fchannels%2Fa&hub.callback=http%3A%2F%2Fs%2Fcb%3Fx%3D1%26y%3D2&hub.lease_seconds=60&hub.secret=s%C3%A9cret+1&extra=ignored",
        )
        .unwrap();
        assert_eq!(form.get("hub.mode"), Some("subscribe"));
        assert_eq!(form.get("hub.topic"), Some("http://h/channels/a"));
        assert_eq!(form.get("hub.callback"), Some("http://s/cb?x=1&y=2"));
        assert_eq!(form.get("hub.lease_seconds"), Some("60"));
        assert_eq!(form.get("hub.secret"), Some("sécret 1"));
        assert_eq!(form.get("HUB.MODE"), None);
        assert_eq!(form.len(), 6);
    }

    #[test]
    fn plus_escapes_and_odd_pieces() {
        assert_eq!(pairs(&parse("a=b+c%2Bd%20e").unwrap()), [("a", "b c+d e")]);
        assert_eq!(pairs(&parse("%61%3d=%3D").unwrap()), [("a=", "=")]);
        assert_eq!(
            pairs(&parse("a=1&&b&=x&c==&").unwrap()),
            [("a", "1"), ("b", ""), ("", "x"), ("c", "=")]
        );
        assert!(parse("").unwrap().is_empty());
        assert!(parse("&&&").unwrap().is_empty());
        assert_eq!(pairs(&parse("k=%e2%82%ac").unwrap()), [("k", "€")]);
    }

    #[test]
    fn bad_escapes_and_bad_utf8_are_errors() {
        for body in ["a=%", "a=%4", "a=%zz", "a=%4g", "%=1", "a=%%41"] {
            assert_eq!(parse(body), Err(FormError::BadEscape), "{body}");
        }
        for body in ["a=%ff", "a=%c3", "%80=1", "a=%ed%a0%80"] {
            assert_eq!(parse(body), Err(FormError::NotUtf8), "{body}");
        }
        assert_eq!(
            Form::parse(b"a=\xff", &FormLimits::default()),
            Err(FormError::NotUtf8)
        );
    }

    #[test]
    fn a_name_given_twice_is_an_error() {
        assert_eq!(
            parse("hub.topic=a&hub.topic=b"),
            Err(FormError::DuplicateName("hub.topic".into()))
        );
        // Also when spelt differently: names are compared decoded.
        assert_eq!(
            parse("a+b=1&a%20b=2"),
            Err(FormError::DuplicateName("a b".into()))
        );
        let long = format!("{0}=1&{0}=2", "é".repeat(100));
        let Err(FormError::DuplicateName(name)) = parse(&long) else {
            panic!()
        };
        assert_eq!(name, "é".repeat(32));
        // Control characters, six bytes each once escaped, still give a
        // short reason (fuzz/push_form found a 400-byte one).
        let controls = format!("{0}=1&{0}=2", "%03".repeat(64));
        let reason = parse(&controls).unwrap_err().to_string();
        assert!(reason.len() <= 200, "{} bytes: {reason}", reason.len());
        assert!(reason.starts_with("form field \"\\u{3}"), "{reason}");
    }

    #[test]
    fn limits_are_enforced() {
        let limits = FormLimits::new(10, 2);
        assert_eq!(
            Form::parse(b"a=1&b=2&c=", &limits),
            Err(FormError::TooManyPairs { limit: 2 })
        );
        assert_eq!(Form::parse(b"a=1&b=2&&&", &limits).unwrap().len(), 2);
        assert_eq!(
            Form::parse(b"a=123456789", &limits),
            Err(FormError::TooLarge { limit: 10 })
        );
        assert!(Form::parse(b"a=12345678", &limits).is_ok());
    }

    #[test]
    fn encode_then_parse_is_the_same() {
        let original = [
            ("hub.mode", "subscribe"),
            ("hub.challenge", "a b+c&d=e%f/é\u{0}"),
            ("", ""),
        ];
        let text = encode(original);
        assert_eq!(
            text,
            "hub.mode=subscribe&hub.challenge=a+b%2Bc%26d%3De%25f%2F%C3%A9%00&="
        );
        assert_eq!(pairs(&parse(&text).unwrap()), original.to_vec());
        assert_eq!(encode([]), "");
    }
}
