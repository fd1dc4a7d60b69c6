//! The `rtwire` command line: `echo` (the Autobahn testee server) and
//! `autobahn-client` (the testee client for Autobahn's fuzzingserver).

use std::process::ExitCode;
use tokio::io::{AsyncRead, AsyncWrite};

use rtwire::proto::deflate::DeflateConfig;
use rtwire::proto::Message;
use rtwire::serve::{ServeConfig, Server, TokenAuth};
use rtwire::ws::{self, AcceptConfig, ConnectConfig, Error, WebSocket};

const USAGE: &str = "\
usage:
  rtwire serve [--host ADDR] [--port PORT] [--publish-token T] [--subscribe-token T]
               [--max-connections N] [--max-body BYTES]
      pub/sub hub over WebSocket, SSE, long and short polling (default 127.0.0.1:8080)
  rtwire echo [--host ADDR] [--port PORT]
      WebSocket echo server for any number of clients (default 127.0.0.1:9001)
  rtwire autobahn-client [--url ws://127.0.0.1:9001] [--agent rtwire]
      run every case of an Autobahn fuzzingserver, then ask it to write its reports
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let options = match Options::parse(rest) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("rtwire: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("rtwire: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match command.as_str() {
        "echo" => runtime.block_on(echo_server(options)),
        "serve" => runtime.block_on(serve(options)),
        "autobahn-client" => runtime.block_on(autobahn_client(options)),
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        other => {
            eprintln!("rtwire: unknown command {other:?}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("rtwire: {message}");
            ExitCode::FAILURE
        }
    }
}

struct Options {
    host: String,
    port: Option<u16>,
    url: String,
    agent: String,
    publish_token: Option<String>,
    subscribe_token: Option<String>,
    max_connections: Option<usize>,
    max_body: Option<usize>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options, String> {
        let mut options = Options {
            host: "127.0.0.1".into(),
            port: None,
            url: "ws://127.0.0.1:9001".into(),
            agent: "rtwire".into(),
            publish_token: None,
            subscribe_token: None,
            max_connections: None,
            max_body: None,
        };
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let mut value = || {
                args.next()
                    .cloned()
                    .ok_or_else(|| format!("{flag} needs a value"))
            };
            match flag.as_str() {
                "--host" => options.host = value()?,
                "--port" => {
                    let v = value()?;
                    options.port = Some(v.parse().map_err(|_| format!("bad port {v:?}"))?);
                }
                "--publish-token" => options.publish_token = Some(value()?),
                "--subscribe-token" => options.subscribe_token = Some(value()?),
                "--max-connections" => {
                    let v = value()?;
                    options.max_connections = Some(
                        v.parse()
                            .map_err(|_| format!("bad --max-connections {v:?}"))?,
                    );
                }
                "--max-body" => {
                    let v = value()?;
                    options.max_body =
                        Some(v.parse().map_err(|_| format!("bad --max-body {v:?}"))?);
                }
                "--url" => options.url = value()?.trim_end_matches('/').to_owned(),
                "--agent" => options.agent = value()?,
                other => return Err(format!("unknown option {other:?}")),
            }
        }
        Ok(options)
    }
}

async fn serve(options: Options) -> Result<(), String> {
    let port = options.port.unwrap_or(8080);
    let mut config = ServeConfig::default();
    config.addr = format!("{}:{port}", options.host)
        .parse()
        .map_err(|_| format!("bad address {}:{port}", options.host))?;
    if let Some(n) = options.max_connections {
        config.max_connections = n;
    }
    if let Some(n) = options.max_body {
        config.max_body_bytes = n;
    }
    let auth = TokenAuth {
        publish_token: options.publish_token,
        subscribe_token: options.subscribe_token,
        ..TokenAuth::default()
    };
    let server = Server::bind(config, auth)
        .await
        .map_err(|e| format!("cannot listen on {}:{port}: {e}", options.host))?;
    let addr = server.local_addr().map_err(|e| e.to_string())?;
    eprintln!(
        "rtwire serve: listening on http://{addr} (epoch {:08x})",
        server.hub().epoch()
    );
    server
        .run_until(shutdown_signal())
        .await
        .map_err(|e| e.to_string())?;
    eprintln!("rtwire serve: stopped");
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn echo_server(options: Options) -> Result<(), String> {
    let port = options.port.unwrap_or(9001);
    let cannot = |e: std::io::Error| format!("cannot listen on {}:{port}: {e}", options.host);
    let address = tokio::net::lookup_host((options.host.as_str(), port))
        .await
        .map_err(cannot)?
        .next()
        .ok_or_else(|| format!("{} resolves to no address", options.host))?;
    // Load tests open thousands of connections at once: a deep backlog.
    let listener = rtwire::serve::listen(address, 4096).map_err(cannot)?;
    eprintln!("rtwire echo: listening on ws://{}:{port}", options.host);
    loop {
        let (stream, _peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of file descriptors and the like: keep serving the others.
            Err(e) => {
                eprintln!("rtwire echo: accept failed: {e}");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let config = AcceptConfig::default().deflate(DeflateConfig::default());
            if let Ok(mut socket) = ws::accept_with(stream, &config).await {
                let _ = echo(&mut socket).await;
            }
        });
    }
}

/// Sends every data message back until the connection ends. Messages that
/// arrived together are written together.
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(socket: &mut WebSocket<S>) -> Result<(), Error> {
    while let Some(message) = socket.recv().await? {
        if message.is_data() {
            socket.feed(message)?;
            if !socket.has_buffered_message() {
                socket.flush().await?;
            }
        }
    }
    Ok(())
}

async fn autobahn_client(options: Options) -> Result<(), String> {
    let base = &options.url;
    let agent = &options.agent;
    let count = case_count(base).await?;
    eprintln!("rtwire autobahn-client: {count} cases");
    for case in 1..=count {
        let url = format!("{base}/runCase?case={case}&agent={agent}");
        let config = ConnectConfig::default().deflate(DeflateConfig::default());
        match ws::connect_with(&url, &config).await {
            Ok((mut socket, _)) => {
                let _ = echo(&mut socket).await;
            }
            Err(e) => eprintln!("case {case}: {e}"),
        }
    }
    let url = format!("{base}/updateReports?agent={agent}");
    let (mut socket, _) = ws::connect(&url)
        .await
        .map_err(|e| format!("updateReports: {e}"))?;
    while let Ok(Some(_)) = socket.recv().await {}
    Ok(())
}

async fn case_count(base: &str) -> Result<u32, String> {
    let url = format!("{base}/getCaseCount");
    let (mut socket, _) = ws::connect(&url)
        .await
        .map_err(|e| format!("getCaseCount: {e}"))?;
    let mut count = None;
    while let Ok(Some(message)) = socket.recv().await {
        if let Message::Text(text) = message {
            count = text.as_str().trim().parse().ok();
        }
    }
    count.ok_or_else(|| "getCaseCount: no count received".to_owned())
}
