//! The `transport_params` target: what the HTTP transports parse from the
//! network — message ids (`since=`, `Last-Event-ID`), query strings, channel
//! names, and the JSON commands of `/ws`.
//!
//! Checks: nothing panics; a parsed id prints back to the same text; a
//! decoded query value re-encodes to a value that decodes the same; a
//! parsed JSON string written back parses to the same string; channel
//! names accepted are within the documented set.

use rtwire::hub::MessageId;
use rtwire::serve::fuzzing::{
    get_str, parse_object, payload, percent_decode, push_str, query_param,
};
use rtwire::serve::{valid_channel, MAX_CHANNEL_LEN};

/// Runs one input.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(id) = text.parse::<MessageId>() {
        assert_eq!(id.to_string(), text, "ids have one text form");
    }
    if valid_channel(text) {
        assert!(text.len() <= MAX_CHANNEL_LEN);
        assert!(text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)));
    }
    for name in ["since", "timeout", "last-event-id", "user", "token"] {
        if let Some(value) = query_param(Some(text), name) {
            let encoded: String = value.bytes().map(|b| format!("%{b:02X}")).collect();
            assert_eq!(percent_decode(&encoded).as_deref(), Some(value.as_str()));
        }
    }
    if let Ok(fields) = parse_object(text) {
        assert!(fields.len() <= 32);
        let _ = payload(&fields);
        for (key, _) in &fields {
            if let Some(value) = get_str(&fields, key) {
                let mut json = String::from("{\"k\":");
                push_str(&mut json, value);
                json.push('}');
                let again = parse_object(&json).expect("our own JSON parses");
                assert_eq!(get_str(&again, "k"), Some(value));
            }
        }
    }
}
