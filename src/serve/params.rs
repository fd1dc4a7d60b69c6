//! What the HTTP transports read from a request: channel names, query
//! parameters, ids. All of it comes from the network: bounded, never panics.

pub use crate::hub::{valid_channel, MAX_CHANNEL_LEN};

/// The value of query parameter `name`, percent-decoded; `None` if absent
/// or not valid UTF-8 after decoding. The query is at most the request
/// head's size, so the work is bounded by the head limit.
pub fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(key)? == name).then(|| percent_decode(value))?
    })
}

/// Decodes `%XX` escapes and `+` (as space); `None` for a bad escape or
/// non-UTF-8 result.
pub fn percent_decode(s: &str) -> Option<String> {
    // The form decoder of WebSub requests: one decoder for both, strict
    // about hex digits (`%+1` is a bad escape, not byte 1).
    crate::push::form::decode(s.as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_escapes_need_two_hex_digits() {
        assert_eq!(percent_decode("a%20b+c%2F").as_deref(), Some("a b c/"));
        // from_str_radix would take a sign: these once decoded to byte 1.
        for bad in ["%+1", "%-1", "%1", "%", "%zz", "%C3"] {
            assert_eq!(percent_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn channel_names() {
        assert!(valid_channel("room-1"));
        assert!(valid_channel("user:alice"));
        assert!(valid_channel(&"a".repeat(64)));
        for bad in ["", "a b", "a/b", "é", "a%20", &"a".repeat(65)] {
            assert!(!valid_channel(bad), "{bad:?}");
        }
    }

    #[test]
    fn query_params() {
        let q = Some("since=abc-1&timeout=5&last-event-id=00ff%2D3&flag");
        assert_eq!(query_param(q, "since").as_deref(), Some("abc-1"));
        assert_eq!(query_param(q, "timeout").as_deref(), Some("5"));
        assert_eq!(query_param(q, "last-event-id").as_deref(), Some("00ff-3"));
        assert_eq!(query_param(q, "flag").as_deref(), Some(""));
        assert_eq!(query_param(q, "missing"), None);
        assert_eq!(query_param(None, "since"), None);
        assert_eq!(query_param(Some("a=%zz"), "a"), None);
        assert_eq!(query_param(Some("a=%f0%28"), "a"), None, "not UTF-8");
        assert_eq!(query_param(Some("a=%4"), "a"), None, "cut escape");
        assert_eq!(query_param(Some("a=x+y"), "a").as_deref(), Some("x y"));
    }
}
