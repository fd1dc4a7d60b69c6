//! A WebSocket client over `ws://` or `wss://`: sends each argument after
//! the URL as a text message and prints the replies.
//!
//! ```text
//! cargo run --example wss_client -- wss://localhost:9443/ --ca ca.pem hello world
//! ```
//!
//! `--ca FILE` trusts the CA certificates in FILE (a test or company CA)
//! instead of Mozilla's roots. `tests/interop/run` uses this against a
//! Python `websockets` server over TLS.

use rtwire::proto::{CloseCode, Message};
use rtwire::ws::{self, tls::TlsConnector, ConnectConfig};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .ok_or("usage: wss_client URL [--ca FILE] MESSAGE...")?;
    let mut config = ConnectConfig::default();
    let mut messages = Vec::new();
    while let Some(arg) = args.next() {
        if arg == "--ca" {
            let path = args.next().ok_or("--ca needs a FILE")?;
            config = config.tls(TlsConnector::from_pem_file(path)?);
        } else {
            messages.push(arg);
        }
    }
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
