//! The little JSON `rtwire serve` speaks: written by hand, and a parser
//! for the flat command objects of `/ws`.
//!
//! Payloads are bytes. A payload that is valid UTF-8 travels as the string
//! `"data"`; any other payload travels base64-encoded as `"data_b64"`, so
//! binary data survives every transport.

use base64::Engine;
use bytes::Bytes;
use std::fmt::Write;

/// Appends `s` as a JSON string literal (RFC 8259 §7).
pub fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends `,"data":"..."` or `,"data_b64":"..."` for a payload: text
/// as a string unless escaping it would make it longer than base64 does
/// (control characters take six bytes each as `\u0001`) by more than
/// [`ESCAPE_SLACK`], so no payload grows by more than a third and that.
pub fn push_data(out: &mut String, data: &[u8]) {
    match std::str::from_utf8(data) {
        Ok(text) if escaped_len(text) <= base64_len(data.len()) + ESCAPE_SLACK => {
            out.push_str(",\"data\":");
            push_str(out, text);
        }
        _ => {
            out.push_str(",\"data_b64\":\"");
            out.push_str(&base64::engine::general_purpose::STANDARD.encode(data));
            out.push('"');
        }
    }
}

/// The length of `s` as the body of a JSON string literal, as
/// [`push_str`] writes it.
fn escaped_len(s: &str) -> usize {
    s.len()
        + s.bytes()
            .map(|b| match b {
                b'"' | b'\\' | b'\n' | b'\r' | b'\t' => 1,
                b if b < 0x20 => 5,
                _ => 0,
            })
            .sum::<usize>()
}

/// How much longer than base64 escaped text may be and still go as text:
/// short messages with a few escapes stay readable.
const ESCAPE_SLACK: usize = 32;

fn base64_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

/// A JSON value of a flat command object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// A string.
    Str(String),
    /// `true` or `false`.
    Bool(bool),
    /// `null`, or a number (kept as its text; commands use none).
    Other(String),
}

/// Why a command could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonError(pub &'static str);

/// Parses a flat JSON object: string keys, and string, boolean, null or
/// number values (no nesting, which no command needs). At most 32 keys.
pub fn parse_object(input: &str) -> Result<Vec<(String, Value)>, JsonError> {
    let mut p = Parser {
        s: input.as_bytes(),
        i: 0,
    };
    p.ws();
    p.expect(b'{')?;
    let mut fields = Vec::new();
    p.ws();
    if p.peek() == Some(b'}') {
        p.i += 1;
    } else {
        loop {
            p.ws();
            let key = p.string()?;
            p.ws();
            p.expect(b':')?;
            p.ws();
            let value = p.value()?;
            if fields.len() == 32 {
                return Err(JsonError("too many fields"));
            }
            fields.push((key, value));
            p.ws();
            match p.next() {
                Some(b',') => continue,
                Some(b'}') => break,
                _ => return Err(JsonError("expected , or }")),
            }
        }
    }
    p.ws();
    if p.i != p.s.len() {
        return Err(JsonError("trailing characters"));
    }
    Ok(fields)
}

/// The payload of a command: `"data"` as UTF-8 or `"data_b64"` decoded.
pub fn payload(fields: &[(String, Value)]) -> Result<Bytes, JsonError> {
    match (get_str(fields, "data"), get_str(fields, "data_b64")) {
        (Some(text), None) => Ok(Bytes::from(text.to_owned())),
        (None, Some(b64)) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map(Bytes::from)
            .map_err(|_| JsonError("data_b64 is not base64")),
        _ => Err(JsonError("give exactly one of data and data_b64")),
    }
}

/// The string field `key`, if present and a string.
pub fn get_str<'a>(fields: &'a [(String, Value)], key: &str) -> Option<&'a str> {
    fields.iter().find_map(|(k, v)| match v {
        Value::Str(s) if k == key => Some(s.as_str()),
        _ => None,
    })
}

/// The boolean field `key`; absent is false.
pub fn get_bool(fields: &[(String, Value)], key: &str) -> bool {
    fields
        .iter()
        .any(|(k, v)| k == key && *v == Value::Bool(true))
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.i += 1;
        Some(b)
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn expect(&mut self, b: u8) -> Result<(), JsonError> {
        if self.next() == Some(b) {
            Ok(())
        } else {
            Err(JsonError("unexpected character"))
        }
    }

    fn value(&mut self) -> Result<Value, JsonError> {
        match self.peek() {
            Some(b'"') => self.string().map(Value::Str),
            Some(b't') => self.word("true").map(|_| Value::Bool(true)),
            Some(b'f') => self.word("false").map(|_| Value::Bool(false)),
            Some(b'n') => self.word("null").map(|_| Value::Other("null".into())),
            Some(b'-' | b'0'..=b'9') => {
                let start = self.i;
                while matches!(
                    self.peek(),
                    Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                ) {
                    self.i += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or_default();
                Ok(Value::Other(text.to_owned()))
            }
            _ => Err(JsonError("unsupported value")),
        }
    }

    fn word(&mut self, word: &str) -> Result<(), JsonError> {
        if self.s[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(())
        } else {
            Err(JsonError("unexpected word"))
        }
    }

    fn string(&mut self) -> Result<String, JsonError> {
        self.expect(b'"')?;
        let mut out = String::new();
        loop {
            let start = self.i;
            while !matches!(self.peek(), Some(b'"' | b'\\') | None) {
                self.i += 1;
            }
            let run =
                std::str::from_utf8(&self.s[start..self.i]).map_err(|_| JsonError("not UTF-8"))?;
            if run.chars().any(|c| (c as u32) < 0x20) {
                return Err(JsonError("control character in string"));
            }
            out.push_str(run);
            match self.next() {
                Some(b'"') => return Ok(out),
                Some(b'\\') => out.push(self.escape()?),
                _ => return Err(JsonError("unterminated string")),
            }
        }
    }

    fn escape(&mut self) -> Result<char, JsonError> {
        Ok(match self.next() {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                let high = self.hex4()?;
                if (0xD800..0xDC00).contains(&high) {
                    // A surrogate pair: \uD83D\uDE00.
                    if self.next() != Some(b'\\') || self.next() != Some(b'u') {
                        return Err(JsonError("lone surrogate"));
                    }
                    let low = self.hex4()?;
                    if !(0xDC00..0xE000).contains(&low) {
                        return Err(JsonError("lone surrogate"));
                    }
                    let c = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
                    char::from_u32(c).ok_or(JsonError("bad escape"))?
                } else {
                    char::from_u32(high).ok_or(JsonError("lone surrogate"))?
                }
            }
            _ => return Err(JsonError("bad escape")),
        })
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let digits = self
            .s
            .get(self.i..self.i + 4)
            .ok_or(JsonError("bad escape"))?;
        let digits = std::str::from_utf8(digits).map_err(|_| JsonError("bad escape"))?;
        let value = u32::from_str_radix(digits, 16).map_err(|_| JsonError("bad escape"))?;
        self.i += 4;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip_through_writer_and_parser() {
        for s in [
            "plain",
            "quote \" and \\ slash",
            "ctrl \u{1}\n\t\r",
            "κόσμε 😀",
        ] {
            let mut json = String::from("{\"k\":");
            push_str(&mut json, s);
            json.push('}');
            let fields = parse_object(&json).unwrap();
            assert_eq!(get_str(&fields, "k"), Some(s), "{json}");
        }
    }

    #[test]
    fn commands_parse() {
        let fields = parse_object(
            r#" {"op":"publish","channel":"r","data":"hi \ud83d\ude00","except_self":true,"n":1} "#,
        )
        .unwrap();
        assert_eq!(get_str(&fields, "op"), Some("publish"));
        assert_eq!(payload(&fields).unwrap(), Bytes::from("hi 😀"));
        assert!(get_bool(&fields, "except_self"));
        assert!(!get_bool(&fields, "missing"));
    }

    #[test]
    fn text_that_escaping_would_blow_up_goes_as_base64() {
        let mut out = String::new();
        push_data(&mut out, &[1u8; 300]);
        assert!(out.starts_with(",\"data_b64\":\"AQEB"), "{out}");
        assert_eq!(out.len(), ",\"data_b64\":\"\"".len() + 400);
        // Ordinary text, a few escapes included, stays a string.
        let mut out = String::new();
        push_data(&mut out, b"line one\nline \"two\"\t\x01");
        assert_eq!(out, ",\"data\":\"line one\\nline \\\"two\\\"\\t\\u0001\"");
    }

    #[test]
    fn binary_payloads_use_base64() {
        let mut out = String::new();
        push_data(&mut out, &[0xff, 0x00, 0x10]);
        assert_eq!(out, ",\"data_b64\":\"/wAQ\"");
        let fields = parse_object(r#"{"data_b64":"/wAQ"}"#).unwrap();
        assert_eq!(
            payload(&fields).unwrap(),
            Bytes::from_static(&[0xff, 0, 0x10])
        );
        assert!(payload(&parse_object(r#"{"data":"a","data_b64":"YQ=="}"#).unwrap()).is_err());
    }

    #[test]
    fn malformed_objects_are_errors() {
        for bad in [
            "",
            "[]",
            "{",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":\"x\",}",
            "{\"a\":\"x\"} x",
            "{\"a\":{}}",
            "{\"a\":\"\\ud800\"}",
            "{\"a\":\"\\uzzzz\"}",
            "{\"a\":\"raw\u{1}\"}",
        ] {
            assert!(parse_object(bad).is_err(), "{bad:?}");
        }
    }
}
