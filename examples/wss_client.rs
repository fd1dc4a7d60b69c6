//! A WebSocket client over `ws://` or `wss://`, with request headers: sends
//! each argument after the URL as a text message and prints the replies.
//!
//! ```text
//! cargo run --example wss_client -- wss://localhost:9443/ --ca ca.pem hello world
//! cargo run --example wss_client -- ws://127.0.0.1:9001/ --token s3cret \
//!     --header "Origin: https://app.example" hello
//! ```
//!
//! - `--ca FILE` trusts the CA certificates in FILE (a test or company CA)
//!   instead of Mozilla's roots.
//! - `--token TOKEN` sends `Authorization: Bearer TOKEN`.
//! - `--header "NAME: VALUE"` sends any other header; repeatable. A
//!   `User-Agent` of `rtwire-example/0.1` is sent unless one is given.
//!
//! A refused handshake is reported with the server's status and reason.
//! `tests/interop/run` uses this against a Python `websockets` server over
//! TLS; `tests/examples.rs` checks that the headers arrive.

use std::time::Duration;

use rtwire::proto::{CloseCode, Message};
use rtwire::ws::{self, tls::TlsConnector, ConnectConfig};

const USAGE: &str =
    "usage: wss_client URL [--ca FILE] [--token TOKEN] [--header \"NAME: VALUE\"]... MESSAGE...";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args.next().ok_or(USAGE)?;
    let mut config = ConnectConfig::default()
        .connect_timeout(Duration::from_secs(10))
        .handshake_timeout(Duration::from_secs(10));
    let mut user_agent = "rtwire-example/0.1".to_owned();
    let mut messages = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--ca" => {
                let path = args.next().ok_or("--ca needs a FILE")?;
                config = config.tls(TlsConnector::from_pem_file(path)?);
            }
            "--token" => {
                let token = args.next().ok_or("--token needs a TOKEN")?;
                config = config.header("Authorization", format!("Bearer {token}"));
            }
            "--header" => {
                let header = args.next().ok_or("--header needs \"NAME: VALUE\"")?;
                let (name, value) = header.split_once(':').ok_or(USAGE)?;
                let (name, value) = (name.trim(), value.trim());
                if name.eq_ignore_ascii_case("user-agent") {
                    value.clone_into(&mut user_agent);
                } else {
                    config = config.header(name, value);
                }
            }
            _ => messages.push(arg),
        }
    }
    config = config.header("User-Agent", user_agent);
    // A bad header is the caller's mistake: say so before connecting.
    config.validate()?;

    let (mut socket, _response) = ws::connect_with(&url, &config).await?;
    for text in messages {
        socket.send(Message::text(text)).await?;
        match socket.recv().await? {
            Some(Message::Text(reply)) => println!("{}", reply.as_str()),
            Some(other) => println!("{other:?}"),
            None => return Err("the server closed the connection".into()),
        }
    }
    socket.close(CloseCode::NORMAL, "done").await?;
    while socket.recv().await?.is_some() {}
    Ok(())
}
