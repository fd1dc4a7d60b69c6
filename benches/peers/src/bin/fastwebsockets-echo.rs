//! An echo server on fastwebsockets, written as its own example echo server
//! is: a `FragmentCollector` over the WebSocket, each text or binary frame
//! written straight back; pongs and the close reply are automatic. Default
//! configuration (64 MiB messages).
//!
//! The opening handshake is done here over the raw TCP stream (fastwebsockets'
//! own `upgrade` goes through hyper), so frames are read from the socket
//! with no layer in between, as in the other servers.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use fastwebsockets::{FragmentCollector, OpCode, Role, WebSocket};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

fn main() -> std::process::ExitCode {
    rtwire_peers::run("fastwebsockets-echo", |mut stream| async move {
        if handshake(&mut stream).await.is_err() {
            return;
        }
        let mut ws = FragmentCollector::new(WebSocket::after_handshake(stream, Role::Server));
        while let Ok(frame) = ws.read_frame().await {
            if matches!(frame.opcode, OpCode::Close) {
                break;
            }
            let data = matches!(frame.opcode, OpCode::Text | OpCode::Binary);
            if data && ws.write_frame(frame).await.is_err() {
                break;
            }
        }
    })
}

/// Reads the request head (the client sends nothing more before the
/// response) and answers 101 with the right `Sec-WebSocket-Accept`.
/// Enough for the load tool's requests; not a general HTTP parser.
async fn handshake(stream: &mut TcpStream) -> Result<(), ()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.map_err(|_| ())?;
        if n == 0 || head.len() + n > 8192 {
            return Err(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = std::str::from_utf8(&head).map_err(|_| ())?;
    let key = text
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("sec-websocket-key"))
        .map(|(_, value)| value.trim())
        .ok_or(())?;
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(GUID.as_bytes());
    let accept = STANDARD.encode(sha.finalize());
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    stream.write_all(response.as_bytes()).await.map_err(|_| ())
}
