//! `rtwire-transports`: what each transport of `rtwire serve` costs on the
//! wire, and how each fans out.
//!
//! Against a running `rtwire serve` on loopback, in one of two modes:
//!
//! - `cost`: for each transport, one subscriber receives M messages
//!   published at a fixed rate. Every byte read from and written to the
//!   subscriber's socket is counted (HTTP heads, WebSocket framing, JSON
//!   and SSE envelopes: the TCP payload), and so are its HTTP requests.
//!   Then the idle cost: what each transport carries per hour with nothing
//!   published.
//! - `fanout`: N subscribers of one transport, each on its own connection,
//!   all subscribed before the first publish; M messages. Delivery latency
//!   over all N x M deliveries, losses, and the server's CPU time and memory.
//!
//! Publisher and subscribers share one process and one monotonic clock, so
//! a payload's stamp gives its latency at every subscriber. Everything runs
//! on one thread (tokio's current-thread runtime), each subscriber a task
//! that reads its socket directly; see benches/README.md.

mod cost;
mod counted;
mod fanout;
mod formats;
mod http;
mod nchan;
mod options;
mod payload;
mod publish;
mod publisher;
mod subscriber;
mod table;

use std::process::ExitCode;

use options::{Mode, USAGE};
use tokio::task::LocalSet;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let options = match options::parse(&args) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("rtwire-transports: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match rtwire_load::sys::runtime_for(options.subscribers) {
        Ok(runtime) => runtime,
        Err(message) => {
            eprintln!("rtwire-transports: {message}");
            return ExitCode::FAILURE;
        }
    };
    // Start the payload clock before anything is stamped.
    payload::now_ns();
    let local = LocalSet::new();
    let result = match options.mode {
        Mode::Cost => local.block_on(&runtime, cost::run(&options)),
        Mode::Fanout => local.block_on(&runtime, fanout::run(&options)),
        Mode::Publish => local.block_on(&runtime, publish::run(&options)),
    };
    // Tasks still running (a server that stopped answering) end here.
    drop(local);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("rtwire-transports: {message}");
            ExitCode::FAILURE
        }
    }
}
