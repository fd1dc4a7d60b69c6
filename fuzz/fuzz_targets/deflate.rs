//! permessage-deflate: the inflater under its size limit, through a
//! connection; see `rtwire_fuzz::deflate_checks`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: rtwire_fuzz::deflate_checks::Input| {
    rtwire_fuzz::deflate_checks::check(input);
});
