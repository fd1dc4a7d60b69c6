//! WebSub's form-encoded subscription requests; see
//! `rtwire_fuzz::push_checks::check_form`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rtwire_fuzz::push_checks::check_form(data);
});
