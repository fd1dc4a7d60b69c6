//! A `rtwire serve` on a free loopback port, for the integration tests.

use rtwire::hub::Hub;
use rtwire::serve::{ServeConfig, Server, TokenAuth};
use std::net::SocketAddr;
use tokio::sync::oneshot;

/// A running server; [`Running::shutdown`] stops it gracefully.
pub struct Running {
    pub addr: SocketAddr,
    /// The server's hub, kept before `run_until` takes the server.
    pub hub: Hub,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
}

impl Running {
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.done.await;
    }
}

/// Starts a server with `config` (its address replaced by 127.0.0.1:0).
pub async fn start_with(mut config: ServeConfig, auth: TokenAuth) -> Running {
    config.addr = "127.0.0.1:0".parse().unwrap();
    let server = Server::bind(config, auth).await.unwrap();
    let addr = server.local_addr().unwrap();
    let hub = server.hub();
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(async move {
        server
            .run_until(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    Running {
        addr,
        hub,
        stop: Some(stop),
        done,
    }
}
