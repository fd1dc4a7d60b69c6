//! What the peer echo servers share: options, the runtime, the accept loop.
//!
//! Each server is built like `rtwire echo`: a multi-threaded tokio runtime
//! (as many workers as the CPUs the process may run on), the accept loop on
//! the main thread, one task per connection, TCP_NODELAY on every socket.
//! They listen on 127.0.0.1 only.

use std::future::Future;
use std::process::ExitCode;

use tokio::net::{TcpListener, TcpStream};

/// Parses `--port PORT` (default 9001), starts the runtime and serves each
/// accepted connection with `serve` in its own task.
pub fn run<F, Fut>(name: &str, serve: F) -> ExitCode
where
    F: Fn(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port = match args.as_slice() {
        [] => 9001,
        [flag, port] if flag == "--port" => match port.parse::<u16>() {
            Ok(port) => port,
            Err(_) => {
                eprintln!("{name}: bad port {port:?}");
                return ExitCode::from(2);
            }
        },
        _ => {
            eprintln!("usage: {name} [--port PORT]   (listens on 127.0.0.1 only)");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("{name}: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let listener = match TcpListener::bind(("127.0.0.1", port)).await {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("{name}: cannot listen on 127.0.0.1:{port}: {e}");
                return ExitCode::FAILURE;
            }
        };
        eprintln!("{name}: listening on ws://127.0.0.1:{port}");
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve(stream));
                }
                Err(e) => eprintln!("{name}: accept failed: {e}"),
            }
        }
    })
}
