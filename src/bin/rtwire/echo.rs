//! `rtwire echo`: the WebSocket echo server (the Autobahn testee server,
//! and the server `benches/compare` measures).

use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use rtwire::proto::deflate::DeflateConfig;
use rtwire::proto::{Config, Keepalive};
use rtwire::serve::{Accepted, Acceptor};
use rtwire::ws::{self, AcceptConfig, Error, MemoryBudget, WebSocket};

use crate::cli::EchoArgs;
use crate::system::{bind_host, connection_cap};

/// Load tests open thousands of connections at once: a deep backlog.
const LISTEN_BACKLOG: u32 = 4096;

/// Echoes every client's messages, for ever. The startup line is read by
/// scripts: keep its text.
pub async fn echo_server(args: EchoArgs) -> Result<(), String> {
    let host = &args.listen.host;
    let max_connections = connection_cap(args.max_connections.asked, "echo");
    let mut listener = bind_host(host, args.port, |addr| async move {
        rtwire::serve::listen(addr, LISTEN_BACKLOG)
    })
    .await?;
    let port = listener.local_addr().map_or(args.port, |a| a.port());
    let tls = args.tls.acceptor()?;
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    // A public echo holds at most `max_message` per connection for a peer
    // that does not read.
    let config = Arc::new(
        AcceptConfig::default()
            .deflate(DeflateConfig::default())
            // Echo never looks at the request: idle sockets stay as small as before.
            .keep_request(false)
            .connection(
                Config::default()
                    .max_message_size(args.max_message)
                    .max_frame_size(args.max_message)
                    .keepalive(Some(Keepalive {
                        interval: Duration::from_secs(30),
                        timeout: Duration::from_secs(20),
                    })),
            ),
    );
    if args.io_uring {
        match on_io_uring(listener, &config, max_connections, host, port).await {
            Ok(result) => return result,
            Err((listener_back, why)) => {
                eprintln!("rtwire echo: io_uring unavailable ({why}): serving on tokio");
                listener = listener_back;
            }
        }
    }
    eprintln!(
        "rtwire echo: listening on {scheme}://{host}:{port} (at most {max_connections} connections)"
    );
    // Many peers that each send a large message and read nothing hold at
    // most this between them; a 16 MiB echo needs 16 MiB of it.
    let budget = MemoryBudget::new(args.memory_budget);
    let slots = Arc::new(Semaphore::new(max_connections));
    let mut acceptor = Acceptor::new(listener, "rtwire echo");
    loop {
        let (stream, reason) = match acceptor.accept().await {
            Accepted::Stream(stream, _peer) => match slots.clone().try_acquire_owned() {
                Ok(permit) => {
                    let _ = stream.set_nodelay(true);
                    let config = config.clone();
                    let budget = budget.clone();
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        match tls {
                            None => serve_client(stream, &config, budget).await,
                            Some(tls) => {
                                // Boxed, as the WebSocket handshake is.
                                let handshake = Box::pin(tls.accept(stream));
                                let deadline = config.handshake_timeout;
                                if let Ok(Ok(stream)) =
                                    tokio::time::timeout(deadline, handshake).await
                                {
                                    serve_client(stream, &config, budget).await;
                                }
                            }
                        }
                        drop(permit);
                    });
                    continue;
                }
                Err(_) => (stream, "too many connections"),
            },
            Accepted::OutOfDescriptors(stream) => (stream, "server out of descriptors"),
        };
        tokio::spawn(refuse(stream, reason));
    }
}

/// Echoes on io_uring, on a thread of its own, for ever; the listener
/// back and why if io_uring cannot be set up here.
#[cfg(target_os = "linux")]
async fn on_io_uring(
    listener: tokio::net::TcpListener,
    config: &AcceptConfig,
    max_connections: usize,
    host: &str,
    port: u16,
) -> Result<Result<(), String>, (tokio::net::TcpListener, String)> {
    use rtwire::uring::UringServer;
    use std::sync::atomic::AtomicBool;
    if let Err(e) = rtwire::uring::probe() {
        return Err((listener, e.to_string()));
    }
    let std_listener = listener
        .into_std()
        .and_then(|l| l.set_nonblocking(false).map(|()| l))
        .map_err(|e| e.to_string());
    let std_listener = match std_listener {
        Ok(l) => l,
        Err(e) => return Ok(Err(format!("cannot hand the listener to io_uring: {e}"))),
    };
    eprintln!(
        "rtwire echo: listening on ws://{host}:{port} (at most {max_connections} connections, io_uring)"
    );
    let server = UringServer::new(config.clone())
        .max_connections(max_connections)
        .write_timeout(Duration::from_secs(30));
    let serving = tokio::task::spawn_blocking(move || {
        let never = AtomicBool::new(false);
        server.run(std_listener, &never, |conn, message| {
            // Over the connection's write limit: dropped, as the tokio
            // echo would have waited; the peer is not read meanwhile.
            let _ = conn.send(message);
        })
    });
    Ok(match serving.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("io_uring: {e}")),
        Err(e) => Err(format!("io_uring thread: {e}")),
    })
}

#[cfg(not(target_os = "linux"))]
async fn on_io_uring(
    listener: tokio::net::TcpListener,
    _config: &AcceptConfig,
    _max_connections: usize,
    _host: &str,
    _port: u16,
) -> Result<Result<(), String>, (tokio::net::TcpListener, String)> {
    Err((listener, "io_uring is Linux only".to_owned()))
}

/// One client: its handshake, then echoes until it leaves.
async fn serve_client<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    config: &AcceptConfig,
    budget: Arc<MemoryBudget>,
) {
    // Boxed: a task keeps room for the largest state of what it awaits for
    // as long as it lives, and the handshake's is done with once it is open.
    let accepted = Box::pin(ws::accept_with(stream, config)).await;
    if let Ok(mut socket) = accepted {
        socket.set_write_timeout(Some(Duration::from_secs(30)));
        socket.set_memory_budget(budget);
        let _ = echo(&mut socket).await;
    }
}

/// Answers 503 and closes, within a second.
async fn refuse(mut stream: TcpStream, reason: &str) {
    let mut out = Vec::new();
    let body = format!("{reason}\n");
    let headers = [("Content-Type", "text/plain"), ("Connection", "close")];
    rtwire::http::write_response(
        &mut out,
        503,
        "Service Unavailable",
        &headers,
        body.as_bytes(),
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&out)).await;
}

/// Sends every data message back until the connection ends. Messages that
/// arrived together are written together.
pub async fn echo<S: AsyncRead + AsyncWrite + Unpin>(
    socket: &mut WebSocket<S>,
) -> Result<(), Error> {
    while let Some(message) = socket.recv().await? {
        if message.is_data() {
            let conn = socket.connection();
            if conn.buffered_output() >= conn.config().max_write_buffer {
                socket.flush().await?;
            }
            socket.feed(message)?;
            if !socket.has_buffered_message() {
                socket.flush().await?;
            }
        }
    }
    Ok(())
}
