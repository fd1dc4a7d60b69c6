//! The `push_form` and `push_url` targets: what server-to-server push
//! parses from the network — WebSub's form-encoded subscription requests,
//! and the callback and webhook URLs they (and `POST /webhooks`) carry.
//!
//! `push_form` checks `Form::parse` against a reference decoder written
//! here from the WHATWG rules (same pairs, or an error exactly when the
//! reference finds one), the limits (never more pairs or bytes than
//! allowed, tight limits agreeing with loose ones when the body is within
//! both), and that `encode` of the pairs parses back to the same pairs.
//!
//! `push_webhook` checks `NewWebhook::from_json` (the body of `POST
//! /webhooks`) against `serde_json`'s own reading of the same bytes: an
//! accepted registration is an object of exactly `channel`, `url` and
//! perhaps `secret`, each as accepted; and reads the same bytes as a
//! WebSub subscription request, whose accepted form names this hub's
//! topic, a valid channel and a secret under 200 bytes; and as a secret
//! rotation (`POST /webhooks/{id}/secret`).
//!
//! `push_url` checks that an accepted URL has an allowed scheme, no
//! userinfo, no fragment, only visible ASCII, its target kept byte for
//! byte from the input, and prints to a form that parses back to the same
//! URL; and that the SSRF classification agrees with the standard
//! library's own predicates (no loopback, private, link-local, multicast,
//! broadcast, documentation or unspecified address is ever public) and
//! classes IPv4-mapped IPv6 exactly as the IPv4 address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rtwire::push::form::{encode, Form, FormError, FormLimits};
use rtwire::push::url::{classify, is_public, CallbackUrl, Host, Scheme, MAX_URL_LEN};

/// The longest error text either parser may give.
const MAX_REASON: usize = 200;

/// Runs one `push_form` input.
pub fn check_form(data: &[u8]) {
    let loose = FormLimits::new(1 << 20, 1 << 16);
    let parsed = Form::parse(data, &loose);
    match (&parsed, reference_form(data)) {
        (Ok(form), Some(pairs)) => {
            let got: Vec<(String, String)> = form
                .iter()
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect();
            assert_eq!(got, pairs);
            for (name, value) in form.iter() {
                assert_eq!(form.get(name), Some(value));
            }
            let again = encode(form.iter());
            assert_eq!(
                Form::parse(again.as_bytes(), &loose).as_ref(),
                Ok(form),
                "{again}"
            );
        }
        (Err(e), None) => assert!(e.to_string().len() <= MAX_REASON, "{e}"),
        (ours, theirs) => panic!("parse gave {ours:?}, the reference {theirs:?}"),
    }
    check_limits(data, parsed.ok());
}

/// Tight limits: refused when over them, and the same form when within.
fn check_limits(data: &[u8], loose: Option<Form>) {
    let tight = FormLimits::new(64, 4);
    match Form::parse(data, &tight) {
        Ok(form) => {
            assert!(data.len() <= 64 && form.len() <= 4);
            assert_eq!(Some(form), loose);
        }
        Err(FormError::TooLarge { limit }) => assert!(data.len() > limit),
        Err(FormError::TooManyPairs { .. }) => {
            assert!(loose.is_none_or(|f| f.len() > 4) && data.len() <= 64)
        }
        Err(_) => assert!(loose.is_none()),
    }
}

/// The WHATWG application/x-www-form-urlencoded parser, strict about
/// escapes and UTF-8, with duplicate names refused: `None` for an error.
fn reference_form(data: &[u8]) -> Option<Vec<(String, String)>> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for piece in data.split(|&b| b == b'&') {
        if piece.is_empty() {
            continue;
        }
        let mut halves = piece.splitn(2, |&b| b == b'=');
        let name = reference_decode(halves.next().unwrap_or(b""))?;
        let value = reference_decode(halves.next().unwrap_or(b""))?;
        if pairs.iter().any(|(n, _)| *n == name) {
            return None;
        }
        pairs.push((name, value));
    }
    Some(pairs)
}

fn reference_decode(raw: &[u8]) -> Option<String> {
    let mut out = Vec::new();
    let mut rest = raw;
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(rest.get(..2)?).ok()?;
                if !hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                rest = &rest[2..];
            }
            _ => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

/// Runs one `push_url` input.
pub fn check_url(data: &[u8]) {
    check_addresses(data);
    let text = String::from_utf8_lossy(data);
    match CallbackUrl::parse(&text) {
        Ok(url) => check_accepted(&text, &url),
        Err(e) => assert!(e.to_string().len() <= MAX_REASON, "{e}"),
    }
}

fn check_accepted(text: &str, url: &CallbackUrl) {
    assert!(text.len() <= MAX_URL_LEN);
    assert!(text.bytes().all(|b| b.is_ascii_graphic()), "{text:?}");
    assert!(!text.contains('#'));
    let lower = text.to_ascii_lowercase();
    let rest = match url.scheme() {
        Scheme::Http => lower.strip_prefix("http://"),
        Scheme::Https => lower.strip_prefix("https://"),
    };
    let rest = rest.unwrap_or_else(|| panic!("scheme of {text:?}"));
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    assert!(!authority.contains('@'), "userinfo accepted: {text:?}");
    assert!(url.port() != 0);
    // The target is the input's own bytes (with "/" before a bare query).
    let tail = &text[text.len() - (rest.len() - authority.len())..];
    if tail.starts_with('/') {
        assert_eq!(url.target(), tail);
    } else {
        assert_eq!(url.target(), format!("/{tail}"));
    }
    if let Host::Name(name) = url.host() {
        assert!(!name.is_empty() && !name.contains([':', '[', ']', '@', '%']));
        assert_eq!(*name, name.to_ascii_lowercase());
    }
    let printed = url.to_string();
    assert_eq!(CallbackUrl::parse(&printed).as_ref(), Ok(url), "{printed}");
    let via_host = CallbackUrl::parse(&format!(
        "{}://{}/",
        url.scheme().as_str(),
        url.host_header()
    ))
    .expect("the Host header value is an authority");
    assert_eq!((via_host.host(), via_host.port()), (url.host(), url.port()));
    let extended = url.target_with_query("hub.mode=subscribe");
    assert!(extended.starts_with(url.target().trim_end_matches('?')));
    assert!(extended.ends_with("hub.mode=subscribe"));
}

/// The input's first bytes as addresses: the guard against the standard
/// library's predicates.
fn check_addresses(data: &[u8]) {
    let mut v4 = [0u8; 4];
    let mut v6 = [0u8; 16];
    for (slot, byte) in v4.iter_mut().zip(data) {
        *slot = *byte;
    }
    for (slot, byte) in v6.iter_mut().zip(data) {
        *slot = *byte;
    }
    let v4 = Ipv4Addr::from(v4);
    let v6 = Ipv6Addr::from(v6);
    if is_public(IpAddr::V4(v4)) {
        assert!(
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.octets()[0] == 0),
            "{v4} is not public"
        );
    }
    if is_public(IpAddr::V6(v6)) {
        assert!(
            !(v6.is_loopback()
                || v6.is_multicast()
                || v6.is_unspecified()
                || v6.is_unique_local()
                || v6.is_unicast_link_local()),
            "{v6} is not public"
        );
    }
    let mapped = IpAddr::V6(v4.to_ipv6_mapped());
    assert_eq!(classify(mapped), classify(IpAddr::V4(v4)), "{mapped}");
    if let Some(inner) = v6.to_ipv4_mapped() {
        assert_eq!(classify(IpAddr::V6(v6)), classify(IpAddr::V4(inner)));
    }
}

/// The base of the hub the `push_webhook` target's WebSub requests go to.
const HUB_BASE: &str = "http://hub.example:8080";

/// Runs one `push_webhook` input.
pub fn check_webhook(data: &[u8]) {
    check_registration(data);
    check_rotation(data);
    check_subscription(data);
}

fn check_registration(data: &[u8]) {
    use rtwire::push::webhook::{NewWebhook, MAX_REGISTRATION_BYTES};
    let parsed = NewWebhook::from_json(data);
    let Ok(hook) = parsed else {
        let e = parsed.unwrap_err().to_string();
        // serde's messages quote at most a short excerpt of the input.
        assert!(e.len() <= MAX_REASON + 100, "{e}");
        return;
    };
    assert!(data.len() <= MAX_REGISTRATION_BYTES);
    let value: serde_json::Value = serde_json::from_slice(data).expect("accepted, so JSON");
    let object = value.as_object().expect("accepted, so an object");
    assert!(object
        .keys()
        .all(|k| ["channel", "url", "secret"].contains(&k.as_str())));
    assert_eq!(object["channel"].as_str(), Some(hook.channel.as_str()));
    assert!(rtwire::hub::valid_channel(&hook.channel));
    let url = object["url"].as_str().expect("a string url");
    assert_eq!(CallbackUrl::parse(url).as_ref(), Ok(&hook.url));
    match (object.get("secret"), &hook.secret) {
        (None | Some(serde_json::Value::Null), None) => {}
        (Some(serde_json::Value::String(text)), Some(secret)) => {
            // The secret prints back to a form that reads as the same key.
            let again = rtwire::push::signature::WebhookSecret::parse(&secret.to_whsec())
                .expect("a printed secret parses");
            assert_eq!(again.sign("m", 1, b"x"), secret.sign("m", 1, b"x"));
            assert!(text.starts_with("whsec_"));
        }
        (given, parsed) => panic!("secret {given:?} read as {parsed:?}"),
    }
}

/// The body of `POST /webhooks/{id}/secret`: blank, or an object of at
/// most a `secret` that parses.
fn check_rotation(data: &[u8]) {
    use rtwire::push::webhook::NewSecret;
    match NewSecret::from_json(data) {
        Ok(None) => {
            let blank = data.iter().all(u8::is_ascii_whitespace);
            let value: Option<serde_json::Value> = serde_json::from_slice(data).ok();
            let null_secret = value.as_ref().and_then(|v| v.as_object()).is_some_and(|o| {
                o.keys().all(|k| k == "secret") && o.get("secret").is_none_or(|s| s.is_null())
            });
            assert!(blank || null_secret);
        }
        Ok(Some(secret)) => {
            let value: serde_json::Value = serde_json::from_slice(data).expect("JSON");
            let text = value["secret"].as_str().expect("a string secret");
            assert!(text.starts_with("whsec_"));
            assert!(!secret.is_empty());
        }
        Err(e) => assert!(e.to_string().len() <= MAX_REASON + 100, "{e}"),
    }
}

fn check_subscription(data: &[u8]) {
    use rtwire::push::websub::{Request, MAX_SECRET_BYTES};
    let Ok(form) = Form::parse(data, &FormLimits::default()) else {
        return;
    };
    match Request::from_form(&form, HUB_BASE) {
        Ok(request) => {
            let expected = format!("{HUB_BASE}/channels/{}", request.channel);
            assert_eq!(request.topic, expected);
            assert_eq!(form.get("hub.topic"), Some(expected.as_str()));
            assert!(rtwire::hub::valid_channel(&request.channel));
            assert!(request
                .secret
                .as_ref()
                .is_none_or(|s| s.len() <= MAX_SECRET_BYTES));
            let callback = form.get("hub.callback").expect("a callback");
            assert_eq!(CallbackUrl::parse(callback).as_ref(), Ok(&request.callback));
        }
        Err(e) => assert!(e.to_string().len() <= MAX_REASON, "{e}"),
    }
}
