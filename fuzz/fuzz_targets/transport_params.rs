//! The HTTP transports' parsers of network input; see
//! `rtwire_fuzz::transport_checks`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rtwire_fuzz::transport_checks::check(data);
});
