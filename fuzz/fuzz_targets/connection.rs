//! The connection state machine driven by a structured session: peer bytes,
//! application calls, EOF, a peer that stops reading and time passing, in
//! either role, with small limits and back-pressure thresholds. Every
//! invariant is checked in `rtwire_fuzz::session::check`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtwire_fuzz::session::{self, Session};

fuzz_target!(|session: Session| {
    session::check(&session);
});
