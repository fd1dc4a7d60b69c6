//! An axum route that upgrades to an rtwire WebSocket and echoes what it
//! gets, with permessage-deflate when the client offers it and the `echo`
//! subprotocol when the client asks for it. A request that is not a valid
//! upgrade gets its status (400, 403, 426, ...) and a one-line reason.
//!
//! ```text
//! cargo run --example axum_upgrade            # listens on 127.0.0.1:9380
//! cargo run --example axum_upgrade -- 0       # any free port
//! ```
//!
//! `tests/axum_upgrade.rs` runs [`router`] in-process.

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use hyper_util::rt::TokioIo;
use rtwire::handshake::ServerOptions;
use rtwire::proto::deflate::DeflateConfig;
use rtwire::ws::{http_upgrade, AcceptConfig, WebSocket};
use tokio::io::{AsyncRead, AsyncWrite};

/// The subprotocol the route chooses when a client offers it.
pub const PROTOCOL: &str = "echo";

/// The app: `GET /ws` upgrades and echoes.
pub fn router() -> Router {
    let config = AcceptConfig::default()
        .deflate(DeflateConfig::default())
        .hook(ServerOptions {
            protocols: vec![PROTOCOL.into()],
            allowed_origins: None,
        });
    Router::new().route("/ws", get(move |request| upgrade(request, config.clone())))
}

/// Checks the request, answers the 101, and runs the socket once hyper
/// hands over the connection.
async fn upgrade(request: Request, config: AcceptConfig) -> Response {
    let (response, pending) = match http_upgrade::accept(&request, &config) {
        Ok(accepted) => accepted,
        Err(refused) => return refused.to_http_response().map(Body::from),
    };
    tokio::spawn(async move {
        if let Ok(upgraded) = hyper::upgrade::on(request).await {
            echo(pending.into_websocket(TokioIo::new(upgraded))).await;
        }
    });
    response.map(|()| Body::empty())
}

/// Sends every data message back until the client closes.
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(mut ws: WebSocket<S>) {
    while let Ok(Some(message)) = ws.recv().await {
        if message.is_data() && ws.send(message).await.is_err() {
            break;
        }
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port = std::env::args().nth(1).unwrap_or_else(|| "9380".into());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    println!("ws://{}/ws", listener.local_addr()?);
    axum::serve(listener, router()).await
}
