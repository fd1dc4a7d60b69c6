//! The connection state machine driven by a structured session: peer bytes,
//! application calls and EOF, in either role, with small limits. Every
//! invariant is checked in `rtwire_fuzz::session::run`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtwire_fuzz::session::{self, Session};

fuzz_target!(|session: Session| {
    session::run(&session);
});
