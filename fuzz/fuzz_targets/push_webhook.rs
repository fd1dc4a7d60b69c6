//! The body of `POST /webhooks` (registration JSON), and the same bytes
//! as a WebSub subscription request; see
//! `rtwire_fuzz::push_checks::check_webhook`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rtwire_fuzz::push_checks::check_webhook(data);
});
