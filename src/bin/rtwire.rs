//! The `rtwire` command line: `echo` (the Autobahn testee server) and
//! `autobahn-client` (the testee client for Autobahn's fuzzingserver).

use std::process::ExitCode;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

use rtwire::proto::deflate::DeflateConfig;
use rtwire::proto::Message;
use rtwire::ws::{self, AcceptConfig, ConnectConfig, Error, WebSocket};

const USAGE: &str = "\
usage:
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
    port: u16,
    url: String,
    agent: String,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options, String> {
        let mut options = Options {
            host: "127.0.0.1".into(),
            port: 9001,
            url: "ws://127.0.0.1:9001".into(),
            agent: "rtwire".into(),
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
                    options.port = v.parse().map_err(|_| format!("bad port {v:?}"))?;
                }
                "--url" => options.url = value()?.trim_end_matches('/').to_owned(),
                "--agent" => options.agent = value()?,
                other => return Err(format!("unknown option {other:?}")),
            }
        }
        Ok(options)
    }
}

async fn echo_server(options: Options) -> Result<(), String> {
    let address = (options.host.as_str(), options.port);
    let listener = TcpListener::bind(address)
        .await
        .map_err(|e| format!("cannot listen on {}:{}: {e}", options.host, options.port))?;
    eprintln!(
        "rtwire echo: listening on ws://{}:{}",
        options.host, options.port
    );
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
