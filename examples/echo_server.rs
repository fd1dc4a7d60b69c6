//! A WebSocket echo server: every text and binary message comes back as it
//! was sent. Over `ws://`, or over `wss://` with a certificate and key.
//!
//! ```text
//! cargo run --example echo_server -- 127.0.0.1:9001
//! cargo run --example echo_server -- 127.0.0.1:9443 --tls-cert cert.pem --tls-key key.pem
//! ```
//!
//! It prints `echo_server: listening on ws://ADDR` (or `wss://`) once bound;
//! pass port 0 for any free port. The echo is `Stream::forward` from the
//! socket's read half into its write half, as with tokio-tungstenite; pings
//! are answered and the close handshake completed by the socket itself, so
//! only data messages are forwarded.

use std::future::ready;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use rtwire::proto::{Config, Keepalive};
use rtwire::ws::{self, tls::TlsAcceptor, AcceptConfig, MaybeTlsStream};
use tokio::net::{TcpListener, TcpStream};

/// A client that stalls its TLS handshake is dropped after this.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (addr, tls) = parse_args()?;
    let listener = TcpListener::bind(&addr).await?;
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    println!(
        "echo_server: listening on {scheme}://{}",
        listener.local_addr()?
    );
    // A silent peer is pinged after 30 s and dropped 10 s later, so no
    // connection waits forever on a client that vanished.
    let keepalive = Keepalive {
        interval: Duration::from_secs(30),
        timeout: Duration::from_secs(10),
    };
    let config =
        Arc::new(AcceptConfig::default().connection(Config::default().keepalive(Some(keepalive))));
    loop {
        let (tcp, peer) = listener.accept().await?;
        let (tls, config) = (tls.clone(), config.clone());
        tokio::spawn(async move {
            match echo(tcp, tls, &config).await {
                Ok(()) => eprintln!("{peer}: closed"),
                Err(e) if e.is_disconnect() => eprintln!("{peer}: gone ({e})"),
                Err(e) => eprintln!("{peer}: {e}"),
            }
        });
    }
}

/// `[ADDR] [--tls-cert FILE --tls-key FILE]`
fn parse_args() -> Result<(String, Option<TlsAcceptor>), Box<dyn std::error::Error>> {
    const USAGE: &str = "usage: echo_server [ADDR] [--tls-cert FILE --tls-key FILE]";
    let mut addr = "127.0.0.1:9001".to_owned();
    let (mut cert, mut key) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--tls-cert" => cert = Some(args.next().ok_or(USAGE)?),
            "--tls-key" => key = Some(args.next().ok_or(USAGE)?),
            _ if arg.starts_with('-') => return Err(USAGE.into()),
            _ => addr = arg,
        }
    }
    let tls = match (cert, key) {
        (Some(cert), Some(key)) => Some(TlsAcceptor::from_pem_files(cert, key)?),
        (None, None) => None,
        _ => return Err("--tls-cert and --tls-key go together".into()),
    };
    Ok((addr, tls))
}

async fn echo(
    tcp: TcpStream,
    tls: Option<TlsAcceptor>,
    config: &AcceptConfig,
) -> Result<(), ws::Error> {
    let stream = match tls {
        Some(tls) => tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(tcp))
            .await
            .map_err(|_elapsed| ws::Error::HandshakeTimeout)?
            .map_err(ws::Error::Tls)?,
        None => MaybeTlsStream::Plain(tcp),
    };
    let socket = ws::accept_with(stream, config).await?;
    let (read, write) = socket.split();
    read.try_filter(|message| ready(message.is_data()))
        .forward(write)
        .await
}
