//! HTTP head parsers on any bytes, and both handshakes on what parses.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rtwire_fuzz::http_checks::check(data);
});
