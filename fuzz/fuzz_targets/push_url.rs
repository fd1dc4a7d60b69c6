//! Callback and webhook URLs, and the SSRF guard's address classes; see
//! `rtwire_fuzz::push_checks::check_url`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rtwire_fuzz::push_checks::check_url(data);
});
