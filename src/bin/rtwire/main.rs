//! The `rtwire` command line: `serve` (the pub/sub server), `token` (user
//! tokens for it), `echo` (the Autobahn testee server) and
//! `autobahn-client` (the testee client for Autobahn's fuzzingserver).

mod autobahn;
mod cli;
mod echo;
mod serve;
mod system;

use std::future::Future;
use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::filter::{EnvFilter, LevelFilter};

use cli::{Cli, Command};
use system::{tune_allocator, with_allocator_trim};

fn main() -> ExitCode {
    // Before any thread starts.
    tune_allocator();
    // Usage errors exit 2, `--help` and `--version` 0, with clap's message.
    let cli = Cli::parse();
    install_logging();
    let result = match cli.command {
        Command::Token(args) => return print_token(&args),
        Command::Serve(args) => block_on(with_allocator_trim(serve::serve(*args))),
        Command::Echo(args) => block_on(with_allocator_trim(echo::echo_server(args))),
        Command::AutobahnClient(args) => block_on(autobahn::autobahn_client(args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("rtwire: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `command` on a multi-threaded runtime.
fn block_on(command: impl Future<Output = Result<(), String>>) -> Result<(), String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?
        .block_on(command)
}

/// `rtwire token`: the token on stdout; a bad secret file exits 2.
fn print_token(args: &cli::TokenArgs) -> ExitCode {
    match serve::mint_token(args) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("rtwire: {message}");
            ExitCode::from(2)
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`; directives it
/// cannot parse are skipped), in colour only on a terminal.
fn install_logging() {
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env_lossy();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
