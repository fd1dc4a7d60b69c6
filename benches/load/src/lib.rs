//! Pieces shared by the benchmark tools of this package: `rtwire-load`
//! (`src/main.rs`) and `rtwire-transports` (`src/bin/rtwire-transports/`).

pub mod histogram;
pub mod sys;
