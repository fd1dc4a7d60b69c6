//! The frame header decoder on any bytes, then both roles of the connection
//! fed the same bytes; see `rtwire_fuzz::frame_checks`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rtwire_fuzz::frame_checks::check(data);
});
