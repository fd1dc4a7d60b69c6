//! What the criterion benches share: their timing settings and sample text.
#![allow(dead_code)]

use criterion::Criterion;
use std::time::Duration;

/// Short warm-up and measurement: the suite runs in a few minutes.
pub fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

/// `size` bytes of valid UTF-8 made by repeating `pattern` (padded with `a`).
pub fn utf8_sample(size: usize, pattern: &str) -> Vec<u8> {
    let mut s = String::with_capacity(size);
    for c in pattern.chars().cycle() {
        if s.len() + c.len_utf8() > size {
            break;
        }
        s.push(c);
    }
    while s.len() < size {
        s.push('a');
    }
    s.into_bytes()
}
