//! permessage-deflate (RFC 7692): negotiation and the per-direction codec.
//!
//! Negotiation is plain string work done during the opening handshake:
//! a client sends [`DeflateConfig::offer`] and checks the server's answer
//! with [`DeflateConfig::check_response`]; a server answers offers with
//! [`DeflateConfig::accept_offers`]. Either way the result is a
//! [`Deflate`], handed to [`Connection::with_deflate`](super::Connection::with_deflate).
//!
//! ## Window bits
//!
//! RFC 7692 allows LZ77 windows of 2^8 to 2^15 bytes. zlib (and zlib-rs)
//! cannot *compress* raw deflate with an 8-bit window. The rule rtwire
//! follows: it never asks for 8 itself (configured values are 9..=15), and
//! when a peer limits rtwire's own compressor to 8 bits, rtwire accepts and
//! sends its messages uncompressed — RFC 7692 lets any message go without
//! RSV1 — while still inflating the peer's compressed messages.
//!
//! ## Memory
//!
//! The compressor and the decompressor are created when the first message
//! needs them, never for a connection without the extension. With context
//! takeover a direction keeps its state between messages; with
//! `*_no_context_takeover` the state is dropped after every message, so an
//! idle connection holds none: its messages are compressed with a
//! compressor each thread keeps and resets (one per window and level), not
//! one allocated per message. Resident memory per idle server connection
//! after one message each way, measured with
//! `cargo run --release --example deflate_memory` (zlib-rs, level 6):
//!
//! | configuration | per connection |
//! | --- | --- |
//! | no compression | 0.9 KiB |
//! | [`DeflateConfig::default`]: 15-bit windows, context takeover | 627 KiB |
//! | default + `server_no_context_takeover` (only the inflater stays) | 46 KiB |
//! | [`DeflateConfig::lean`]: 9-bit windows, no context takeover | 1.3 KiB |
//!
//! Most of the default's cost is the compressor (window, hash chains and
//! pending buffer; flate2 does not expose zlib's `memLevel`). A server with
//! many connections should prefer `server_no_context_takeover`, or `lean()`.
//!
//! ## One message to many connections
//!
//! Without context takeover on its side, a connection compresses every
//! message from a fresh state, so every connection with the same window
//! and level sends a message as the same bytes (RFC 7692 §7.1.1.1: the
//! compressor "MUST" start over per message). Such a connection has a
//! [`CompressionKey`]: compress a broadcast once with
//! [`CompressionKey::compress`] and queue it on each connection of that
//! key with [`Connection::send_precompressed`](super::Connection::send_precompressed).

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use std::cell::RefCell;
use std::fmt;

/// The extension's registered name.
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// RFC 7692 §7.2.1: a sync flush ends with these bytes, which the sender
/// removes and the receiver appends back before inflating.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// What this endpoint offers (client) or accepts (server).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeflateConfig {
    /// Largest window, in bits (9..=15), that the server compresses with.
    /// A server uses it for its own compressor; a client asks for it when
    /// below 15. Default 15.
    pub server_max_window_bits: u8,
    /// Largest window, in bits (9..=15), that the client compresses with.
    /// Default 15.
    pub client_max_window_bits: u8,
    /// Whether the server resets its compressor after every message. A
    /// server honours it on its own; a client asks for it. Default false.
    pub server_no_context_takeover: bool,
    /// Whether the client resets its compressor after every message. A
    /// client honours it on its own; a server asks for it. Default false.
    pub client_no_context_takeover: bool,
    /// zlib compression level, 0..=9. Default 6, zlib's own default: with
    /// zlib-rs it still deflates JSON at about 1 GB/s, where level 1 (static
    /// Huffman codes only) barely compresses text without repeats.
    pub level: u32,
    /// Messages shorter than this many bytes are sent uncompressed. Default 64.
    pub threshold: usize,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            level: 6,
            threshold: 64,
        }
    }
}

impl DeflateConfig {
    /// Trades ratio for memory: 9-bit windows and no context takeover either
    /// way, so no compression state outlives a message.
    pub fn lean() -> Self {
        DeflateConfig {
            server_max_window_bits: 9,
            client_max_window_bits: 9,
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            ..DeflateConfig::default()
        }
    }

    /// The [`CompressionKey`] of the server connections that accept an
    /// offer with this configuration and no smaller window: `None` unless
    /// `server_no_context_takeover` is set (with context takeover each
    /// connection's output depends on what it sent before).
    ///
    /// ```
    /// use rtwire::proto::deflate::DeflateConfig;
    /// let lean = DeflateConfig::lean();
    /// let (agreed, _) = lean.accept_offers(["permessage-deflate"]).unwrap();
    /// assert_eq!(lean.server_compression_key(), agreed.server_compression_key());
    /// assert!(DeflateConfig::default().server_compression_key().is_none());
    /// ```
    pub fn server_compression_key(&self) -> Option<CompressionKey> {
        let params = DeflateParams {
            server_no_context_takeover: self.server_no_context_takeover,
            client_no_context_takeover: self.client_no_context_takeover,
            server_max_window_bits: self.server_bits(),
            client_max_window_bits: self.client_bits(),
        };
        self.agreed(params).server_compression_key()
    }

    fn server_bits(&self) -> u8 {
        self.server_max_window_bits.clamp(9, 15)
    }

    fn client_bits(&self) -> u8 {
        self.client_max_window_bits.clamp(9, 15)
    }

    /// The client's offer, a `Sec-WebSocket-Extensions` value.
    ///
    /// ```
    /// use rtwire::proto::deflate::DeflateConfig;
    /// assert_eq!(DeflateConfig::default().offer(), "permessage-deflate; client_max_window_bits");
    /// assert_eq!(
    ///     DeflateConfig::lean().offer(),
    ///     "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
    ///      server_max_window_bits=9; client_max_window_bits=9"
    /// );
    /// ```
    pub fn offer(&self) -> String {
        let mut offer = String::from(EXTENSION_NAME);
        if self.server_no_context_takeover {
            offer.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            offer.push_str("; client_no_context_takeover");
        }
        if self.server_bits() < 15 {
            offer.push_str(&format!("; server_max_window_bits={}", self.server_bits()));
        }
        // RFC 7692 §7.1.2.2: offering the parameter (with or without a value)
        // tells the server it may limit the client's window.
        if self.client_bits() < 15 {
            offer.push_str(&format!("; client_max_window_bits={}", self.client_bits()));
        } else {
            offer.push_str("; client_max_window_bits");
        }
        offer
    }

    /// A server's answer to the client's `Sec-WebSocket-Extensions` header
    /// values: the first permessage-deflate offer it can honour, as the
    /// agreed extension and the response header value; `None` when no
    /// offer can be honoured. Offers that break RFC 7692 are declined, not
    /// failed (§5: "A server MUST decline an extension negotiation offer
    /// ... \[that\] has an extension parameter not defined ..., or has an
    /// extension parameter with an invalid value, or has multiple extension
    /// parameters with the same name").
    ///
    /// ```
    /// use rtwire::proto::deflate::DeflateConfig;
    /// let config = DeflateConfig::default();
    /// let (agreed, answer) = config
    ///     .accept_offers(["permessage-deflate; server_max_window_bits=10, permessage-deflate"])
    ///     .unwrap();
    /// assert_eq!(answer, "permessage-deflate; server_max_window_bits=10");
    /// assert_eq!(agreed.params().server_max_window_bits, 10);
    /// assert!(config.accept_offers(["x-webkit-deflate-frame"]).is_none());
    /// ```
    pub fn accept_offers<'a>(
        &self,
        header_values: impl IntoIterator<Item = &'a str>,
    ) -> Option<(Deflate, String)> {
        let mut extensions = Vec::new();
        for value in header_values {
            // A header we cannot parse carries no offer we could honour.
            extensions.extend(parse_extensions(value).ok()?);
        }
        extensions
            .iter()
            .filter(|e| e.name.eq_ignore_ascii_case(EXTENSION_NAME))
            .find_map(|offer| self.accept_one(offer))
    }

    fn accept_one(&self, offer: &Extension) -> Option<(Deflate, String)> {
        let offered = OfferParams::parse(offer).ok()?;
        // Our compressor: at most what we configured and what the client allows.
        let server_bits = match offered.server_max_window_bits {
            Some(bits) => bits.min(self.server_bits()),
            None => self.server_bits(),
        };
        // The client's compressor: we may only limit it if it said it can
        // be limited (§7.1.2.2).
        let client_bits = match offered.client_max_window_bits {
            None => 15,
            Some(None) => self.client_bits(),
            Some(Some(bits)) => bits.min(self.client_bits()),
        };
        let params = DeflateParams {
            server_no_context_takeover: offered.server_no_context_takeover
                || self.server_no_context_takeover,
            client_no_context_takeover: offered.client_no_context_takeover
                || self.client_no_context_takeover,
            server_max_window_bits: server_bits,
            client_max_window_bits: client_bits,
        };
        let mut answer = String::from(EXTENSION_NAME);
        if params.server_no_context_takeover {
            answer.push_str("; server_no_context_takeover");
        }
        if params.client_no_context_takeover {
            answer.push_str("; client_no_context_takeover");
        }
        // §7.1.2.1: an offered server_max_window_bits is accepted by
        // answering with the same or a smaller value.
        if offered.server_max_window_bits.is_some() || server_bits < 15 {
            answer.push_str(&format!("; server_max_window_bits={server_bits}"));
        }
        if offered.client_max_window_bits.is_some() && client_bits < 15 {
            answer.push_str(&format!("; client_max_window_bits={client_bits}"));
        }
        Some((self.agreed(params), answer))
    }

    /// A client's check of the server's `Sec-WebSocket-Extensions` answer
    /// to [`offer`](Self::offer) (RFC 7692 §7.1). An answer that names
    /// anything else, repeats or invents a parameter, or goes beyond the
    /// offer is an error: the client must fail the connection.
    ///
    /// ```
    /// use rtwire::proto::deflate::DeflateConfig;
    /// let config = DeflateConfig::default();
    /// let agreed = config.check_response("permessage-deflate; client_max_window_bits=9").unwrap();
    /// assert_eq!(agreed.params().client_max_window_bits, 9);
    /// assert!(config.check_response("permessage-deflate; server_max_window_bits=16").is_err());
    /// ```
    pub fn check_response(&self, header_value: &str) -> Result<Deflate, NegotiationError> {
        let extensions = parse_extensions(header_value)?;
        let [answer] = extensions.as_slice() else {
            return Err(NegotiationError::NotOneExtension);
        };
        if !answer.name.eq_ignore_ascii_case(EXTENSION_NAME) {
            return Err(NegotiationError::UnknownExtension(answer.name.clone()));
        }
        let got = OfferParams::parse(answer)?;
        // §7.1.2.2: client_max_window_bits in a response must carry a value,
        // and may only appear if the offer had it (ours always does).
        let client_bits = match got.client_max_window_bits {
            None => 15,
            Some(None) => return Err(NegotiationError::MissingValue("client_max_window_bits")),
            Some(Some(bits)) if bits > self.client_bits() && self.client_bits() < 15 => {
                return Err(NegotiationError::BeyondOffer("client_max_window_bits"))
            }
            Some(Some(bits)) => bits,
        };
        let server_bits = match got.server_max_window_bits {
            Some(bits) if bits > self.server_bits() => {
                return Err(NegotiationError::BeyondOffer("server_max_window_bits"))
            }
            Some(bits) => bits,
            None if self.server_bits() < 15 => {
                return Err(NegotiationError::Ignored("server_max_window_bits"))
            }
            None => 15,
        };
        if self.server_no_context_takeover && !got.server_no_context_takeover {
            return Err(NegotiationError::Ignored("server_no_context_takeover"));
        }
        let params = DeflateParams {
            server_no_context_takeover: got.server_no_context_takeover,
            client_no_context_takeover: got.client_no_context_takeover
                || self.client_no_context_takeover,
            server_max_window_bits: server_bits,
            client_max_window_bits: client_bits,
        };
        Ok(self.agreed(params))
    }

    fn agreed(&self, params: DeflateParams) -> Deflate {
        Deflate {
            params,
            level: self.level.min(9),
            threshold: self.threshold.max(1),
        }
    }
}

/// The parameters both ends agreed on (RFC 7692 §7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server resets its compressor after every message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after every message.
    pub client_no_context_takeover: bool,
    /// The server's compression window, in bits (8..=15).
    pub server_max_window_bits: u8,
    /// The client's compression window, in bits (8..=15).
    pub client_max_window_bits: u8,
}

/// What decides the bytes a connection sends a message as, when it
/// compresses each message on its own (no context takeover on its side):
/// connections with equal keys send equal bytes for the same message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CompressionKey {
    bits: u8,
    level: u32,
    threshold: usize,
}

impl CompressionKey {
    /// Whether a message of `len` bytes is compressed (else it is sent as it is).
    pub fn compresses(&self, len: usize) -> bool {
        len >= self.threshold
    }

    /// `payload` compressed as a connection of this key compresses one
    /// message (RFC 7692 §7.2.1), for
    /// [`Connection::send_precompressed`](super::Connection::send_precompressed).
    ///
    /// ```
    /// use bytes::Bytes;
    /// use rtwire::proto::deflate::DeflateConfig;
    /// use rtwire::proto::{Config, Connection, Message, Role};
    ///
    /// let (agreed, _) = DeflateConfig::lean().accept_offers(["permessage-deflate"]).unwrap();
    /// let text = "a broadcast, compressed once for every connection ".repeat(4);
    /// let mut one = Connection::new(Role::Server, Config::default()).with_deflate(agreed);
    /// let mut two = Connection::new(Role::Server, Config::default()).with_deflate(agreed);
    /// let key = one.compression_key().unwrap();
    /// let compressed = Bytes::from(key.compress(text.as_bytes()));
    /// one.send_precompressed(Message::text(text.clone()), key, compressed).unwrap();
    /// two.send(Message::text(text)).unwrap();
    /// assert_eq!(one.poll_transmit(), two.poll_transmit()); // the same frame
    /// ```
    pub fn compress(&self, payload: &[u8]) -> Vec<u8> {
        compress_fresh(self.bits, self.level, payload)
    }
}

/// An agreed permessage-deflate extension, ready for a [`Connection`](super::Connection).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deflate {
    params: DeflateParams,
    level: u32,
    threshold: usize,
}

impl Deflate {
    /// The [`CompressionKey`] of a server connection with this agreement:
    /// `None` with context takeover on the server's side, or a window too
    /// small to compress with (8 bits: it then sends uncompressed).
    pub fn server_compression_key(&self) -> Option<CompressionKey> {
        Codec::new(*self, true).key()
    }

    /// The agreed parameters.
    pub fn params(&self) -> &DeflateParams {
        &self.params
    }
}

/// Why a server's answer (or an offer, for a server deciding to decline)
/// breaks RFC 7692.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NegotiationError {
    /// The header is not a valid extension list.
    Syntax,
    /// The answer names an extension other than permessage-deflate.
    UnknownExtension(String),
    /// The answer names more or fewer than one extension.
    NotOneExtension,
    /// A parameter RFC 7692 does not define.
    UnknownParameter(String),
    /// A parameter given twice.
    DuplicateParameter(String),
    /// A parameter with a value it may not have.
    InvalidValue(&'static str),
    /// A parameter that needs a value came without one.
    MissingValue(&'static str),
    /// The answer allows more than the offer did.
    BeyondOffer(&'static str),
    /// The answer left out a parameter the offer required.
    Ignored(&'static str),
}

impl fmt::Display for NegotiationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NegotiationError::Syntax => f.write_str("malformed Sec-WebSocket-Extensions"),
            NegotiationError::UnknownExtension(name) => write!(f, "unrequested extension {name}"),
            NegotiationError::NotOneExtension => f.write_str("expected exactly one extension"),
            NegotiationError::UnknownParameter(p) => write!(f, "unknown parameter {p}"),
            NegotiationError::DuplicateParameter(p) => write!(f, "duplicate parameter {p}"),
            NegotiationError::InvalidValue(p) => write!(f, "invalid value for {p}"),
            NegotiationError::MissingValue(p) => write!(f, "{p} needs a value"),
            NegotiationError::BeyondOffer(p) => write!(f, "{p} goes beyond the offer"),
            NegotiationError::Ignored(p) => write!(f, "{p} was required but not accepted"),
        }
    }
}

impl std::error::Error for NegotiationError {}

/// One element of a `Sec-WebSocket-Extensions` list (RFC 6455 §9.1).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Extension {
    name: String,
    params: Vec<(String, Option<String>)>,
}

/// Parses `ext; p1; p2=v, ext2` into extensions. Values may be tokens or
/// quoted strings (RFC 6455 §9.1: "extension-param = token [ "=" (token |
/// quoted-string) ]"), and a quoted value must still be a token.
fn parse_extensions(value: &str) -> Result<Vec<Extension>, NegotiationError> {
    let mut out = Vec::new();
    for element in split_outside_quotes(value, ',') {
        let element = element.trim();
        if element.is_empty() {
            continue;
        }
        let mut parts = split_outside_quotes(element, ';').into_iter();
        let name = parts.next().unwrap_or_default().trim();
        if !is_token(name) {
            return Err(NegotiationError::Syntax);
        }
        let mut params = Vec::new();
        for part in parts {
            let (key, val) = match part.split_once('=') {
                Some((k, v)) => (k.trim(), Some(unquote(v.trim())?)),
                None => (part.trim(), None),
            };
            if !is_token(key) {
                return Err(NegotiationError::Syntax);
            }
            params.push((key.to_ascii_lowercase(), val));
        }
        out.push(Extension {
            name: name.to_owned(),
            params,
        });
    }
    Ok(out)
}

fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn unquote(v: &str) -> Result<String, NegotiationError> {
    let inner = match v.strip_prefix('"') {
        Some(rest) => rest.strip_suffix('"').ok_or(NegotiationError::Syntax)?,
        None => v,
    };
    if is_token(inner) {
        Ok(inner.to_owned())
    } else {
        Err(NegotiationError::Syntax)
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The four parameters of an offer or an answer, checked for duplicates,
/// unknown names and bad values.
#[derive(Default)]
struct OfferParams {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: present without a value.
    client_max_window_bits: Option<Option<u8>>,
}

impl OfferParams {
    fn parse(extension: &Extension) -> Result<OfferParams, NegotiationError> {
        let mut p = OfferParams::default();
        let mut seen: Vec<&str> = Vec::new();
        for (key, value) in &extension.params {
            if seen.contains(&key.as_str()) {
                return Err(NegotiationError::DuplicateParameter(key.clone()));
            }
            seen.push(key);
            match key.as_str() {
                "server_no_context_takeover" => {
                    no_value(value, "server_no_context_takeover")?;
                    p.server_no_context_takeover = true;
                }
                "client_no_context_takeover" => {
                    no_value(value, "client_no_context_takeover")?;
                    p.client_no_context_takeover = true;
                }
                // §7.1.2.1: server_max_window_bits always has a value, 8..15.
                "server_max_window_bits" => {
                    let bits = value
                        .as_deref()
                        .ok_or(NegotiationError::MissingValue("server_max_window_bits"))?;
                    p.server_max_window_bits = Some(window_bits(bits, "server_max_window_bits")?);
                }
                "client_max_window_bits" => {
                    let bits = match value.as_deref() {
                        Some(v) => Some(window_bits(v, "client_max_window_bits")?),
                        None => None,
                    };
                    p.client_max_window_bits = Some(bits);
                }
                other => return Err(NegotiationError::UnknownParameter(other.to_owned())),
            }
        }
        Ok(p)
    }
}

fn no_value(value: &Option<String>, name: &'static str) -> Result<(), NegotiationError> {
    match value {
        None => Ok(()),
        Some(_) => Err(NegotiationError::InvalidValue(name)),
    }
}

/// RFC 7692 §7.1.2: a decimal integer 8..15 with no leading zeros.
fn window_bits(value: &str, name: &'static str) -> Result<u8, NegotiationError> {
    match value {
        "8" | "9" | "10" | "11" | "12" | "13" | "14" | "15" => value
            .parse()
            .map_err(|_| NegotiationError::InvalidValue(name)),
        _ => Err(NegotiationError::InvalidValue(name)),
    }
}

/// Why inflating a message failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InflateError {
    /// The data is not valid deflate.
    Corrupt,
    /// The inflated message would exceed the limit.
    TooBig,
}

/// The compression state of one connection: what this end compresses with
/// and what it inflates the peer's messages with.
pub(crate) struct Codec {
    agreed: Deflate,
    /// Our compressor's window, or `None` if we may not compress (8 bits).
    own_bits: Option<u8>,
    own_reset: bool,
    peer_bits: u8,
    peer_reset: bool,
    compressor: Option<Compress>,
    decompressor: Option<Decompress>,
}

impl fmt::Debug for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Codec")
            .field("agreed", &self.agreed)
            .field("compressor", &self.compressor.is_some())
            .field("decompressor", &self.decompressor.is_some())
            .finish()
    }
}

impl Codec {
    pub(crate) fn new(agreed: Deflate, is_server: bool) -> Codec {
        let p = agreed.params;
        let (own_bits, own_reset, peer_bits, peer_reset) = if is_server {
            (
                p.server_max_window_bits,
                p.server_no_context_takeover,
                p.client_max_window_bits,
                p.client_no_context_takeover,
            )
        } else {
            (
                p.client_max_window_bits,
                p.client_no_context_takeover,
                p.server_max_window_bits,
                p.server_no_context_takeover,
            )
        };
        Codec {
            agreed,
            own_bits: (own_bits >= 9).then_some(own_bits),
            own_reset,
            // An inflater with a larger window reads any smaller one; zlib
            // inflaters start at 9 bits in practice.
            peer_bits: peer_bits.max(9),
            peer_reset,
            compressor: None,
            decompressor: None,
        }
    }

    /// Whether a message of `len` bytes should be compressed.
    pub(crate) fn should_compress(&self, len: usize) -> bool {
        self.own_bits.is_some() && len >= self.agreed.threshold
    }

    /// The key of this end's compression, when each message is compressed
    /// from a fresh state.
    pub(crate) fn key(&self) -> Option<CompressionKey> {
        let bits = self.own_bits.filter(|_| self.own_reset)?;
        Some(CompressionKey {
            bits,
            level: self.agreed.level,
            threshold: self.agreed.threshold,
        })
    }

    /// Compresses one whole message (RFC 7692 §7.2.1).
    pub(crate) fn compress(&mut self, payload: &[u8]) -> Vec<u8> {
        let bits = self.own_bits.unwrap_or(15);
        let level = self.agreed.level;
        if self.own_reset {
            // §7.1.1: no context takeover — and so no state of our own
            // kept while idle.
            return compress_fresh(bits, level, payload);
        }
        let compressor = self
            .compressor
            .get_or_insert_with(|| new_compressor(bits, level));
        deflate_message(compressor, payload)
    }

    /// Inflates one frame of a compressed message into `out`, appending the
    /// tail first if `last`. Fails once `out` would exceed `limit` bytes,
    /// before inflating further.
    pub(crate) fn inflate(
        &mut self,
        data: &[u8],
        last: bool,
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), InflateError> {
        let bits = self.peer_bits;
        let decompressor = self
            .decompressor
            .get_or_insert_with(|| Decompress::new_with_window_bits(false, bits));
        inflate_into(decompressor, data, out, limit)?;
        if last {
            // §7.2.2: "Append 4 octets of 0x00 0x00 0xff 0xff to the tail end
            // of the payload of the message" before inflating its end.
            inflate_into(decompressor, &TAIL, out, limit)?;
            if self.peer_reset {
                self.decompressor = None;
            }
        }
        Ok(())
    }
}

fn new_compressor(bits: u8, level: u32) -> Compress {
    Compress::new_with_window_bits(Compression::new(level), false, bits)
}

/// How many compressors each thread keeps for [`compress_fresh`]: one per
/// window and level in use, and servers use one or two.
const FRESH_KEPT: usize = 4;

thread_local! {
    /// Compressors for messages compressed from a fresh state, by window
    /// bits and level, reset after each use. A compressor is about 190 KiB
    /// (window, hash chains, pending buffer): allocated and freed for every
    /// message, glibc's adaptive mmap threshold soon serves it from the
    /// heap, where the small allocations made between two messages split
    /// the freed block, and the next compressor takes new memory: a server
    /// of 10,000 such sockets grew to 1.8 GiB that way.
    static FRESH: RefCell<Vec<(u8, u32, Compress)>> = const { RefCell::new(Vec::new()) };
}

/// `payload` compressed from a fresh state (a reset compressor produces
/// what a new one would), with this thread's kept compressor.
fn compress_fresh(bits: u8, level: u32, payload: &[u8]) -> Vec<u8> {
    FRESH.with(|kept| {
        let Ok(mut kept) = kept.try_borrow_mut() else {
            return deflate_message(&mut new_compressor(bits, level), payload);
        };
        let at = match kept.iter().position(|(b, l, _)| (*b, *l) == (bits, level)) {
            Some(at) => at,
            None => {
                if kept.len() == FRESH_KEPT {
                    kept.remove(0);
                }
                kept.push((bits, level, new_compressor(bits, level)));
                kept.len() - 1
            }
        };
        let compressor = &mut kept[at].2;
        let out = deflate_message(compressor, payload);
        compressor.reset();
        out
    })
}

/// One whole message through `compressor`: deflate with a sync flush,
/// then remove the trailing `00 00 ff ff` (RFC 7692 §7.2.1).
fn deflate_message(compressor: &mut Compress, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() / 2 + 64);
    let start_in = compressor.total_in();
    loop {
        let consumed = (compressor.total_in() - start_in) as usize;
        out.reserve(1024);
        // Compressing into a buffer with room cannot fail.
        let _ = compressor.compress_vec(&payload[consumed..], &mut out, FlushCompress::Sync);
        let all_in = (compressor.total_in() - start_in) as usize == payload.len();
        // zlib's rule: the flush is complete once all input is taken and
        // the call returned with output space left over.
        if all_in && out.len() < out.capacity() {
            break;
        }
    }
    if out.ends_with(&TAIL) {
        out.truncate(out.len() - TAIL.len());
    } else if out.is_empty() {
        // zlib writes nothing for an empty flush right after another: an
        // empty payload would leave the peer's inflater mid-block once it
        // appends the tail. §7.2.3.6: an empty message is sent as 0x00.
        out.push(0x00);
    }
    out
}

fn inflate_into(
    d: &mut Decompress,
    mut input: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<(), InflateError> {
    loop {
        if out.capacity() - out.len() < 1024 {
            // Grow geometrically, but never past the limit (+1 to detect a breach).
            let room = (limit + 1).saturating_sub(out.len()).max(1);
            out.reserve(out.capacity().clamp(4096, 1 << 20).min(room));
        }
        let in_before = d.total_in();
        let out_before = out.len();
        let status = d
            .decompress_vec(input, out, FlushDecompress::Sync)
            .map_err(|_| InflateError::Corrupt)?;
        let consumed = (d.total_in() - in_before) as usize;
        input = &input[consumed..];
        if out.len() > limit {
            return Err(InflateError::TooBig);
        }
        let produced = out.len() - out_before;
        let output_full = out.len() == out.capacity();
        match status {
            Status::StreamEnd => {
                // A final block ends the stream; RFC 7692 messages may use
                // BFINAL (§7.2.3.3), after which the next message starts a
                // new stream.
                d.reset(false);
                if input.is_empty() {
                    return Ok(());
                }
            }
            Status::Ok | Status::BufError => {
                if input.is_empty() && !output_full {
                    return Ok(());
                }
                if consumed == 0 && produced == 0 && !output_full {
                    return Err(InflateError::Corrupt);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `deflate` fuzz target (in its peer compressor, which
    /// works like this one): an empty flush right after another makes zlib
    /// write nothing, and an empty payload desynchronises the peer.
    #[test]
    fn an_empty_flush_after_another_is_sent_as_0x00() {
        let (agreed, _) = DeflateConfig::default()
            .accept_offers(["permessage-deflate"])
            .expect("accepted");
        let mut codec = Codec::new(agreed, true);
        let first = codec.compress(b"hello");
        assert!(!first.is_empty());
        assert_eq!(codec.compress(b""), vec![0x00]);
        // And the peer inflates both, then a third message, correctly.
        let mut peer = Codec::new(agreed, false);
        for (wire, plain) in [(first, &b"hello"[..]), (vec![0x00], &b""[..])] {
            let mut out = Vec::new();
            peer.inflate(&wire, true, &mut out, 1 << 20)
                .expect("inflates");
            assert_eq!(out, plain);
        }
        let third = codec.compress(b"again");
        let mut out = Vec::new();
        peer.inflate(&third, true, &mut out, 1 << 20)
            .expect("inflates");
        assert_eq!(out, b"again");
    }
}
