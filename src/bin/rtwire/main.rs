//! The `rtwire` command line: `echo` (the Autobahn testee server) and
//! `autobahn-client` (the testee client for Autobahn's fuzzingserver).

use std::process::ExitCode;
use tokio::io::{AsyncRead, AsyncWrite};

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use rtwire::proto::deflate::DeflateConfig;
use rtwire::proto::{Config, Keepalive, Message};
use rtwire::serve::{
    raise_descriptor_limit, Accepted, Acceptor, ServeConfig, Server, TokenAuth, UserTokens,
};
use rtwire::ws::{self, AcceptConfig, ConnectConfig, Error, MemoryBudget, WebSocket};

const USAGE: &str = "\
usage:
  rtwire serve [--host ADDR] [--port PORT] [--publish-token T] [--subscribe-token T]
               [--user-secret-file PATH] [--max-connections N] [--max-body BYTES]
      pub/sub hub over WebSocket, SSE, long and short polling (default 127.0.0.1:8080)
  rtwire token USER --user-secret-file PATH [--expires SECONDS]
      print a signed user token for `serve --user-secret-file PATH` (default: valid 1 day)
  rtwire echo [--host ADDR] [--port PORT] [--max-connections N] [--max-message BYTES]
              [--memory-budget BYTES]
      WebSocket echo server for any number of clients (default 127.0.0.1:9001); together
      its connections hold at most the budget (default 32 MiB) beyond 1 MiB each
  rtwire autobahn-client [--url ws://127.0.0.1:9001] [--agent rtwire]
      run every case of an Autobahn fuzzingserver, then ask it to write its reports
";

/// Descriptors kept for the process itself (listener, spare, runtime, logs)
/// when the connection cap is derived from the descriptor limit.
const RESERVED_DESCRIPTORS: u64 = 64;
/// The default connection cap, where descriptors allow.
const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

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
        "echo" => runtime.block_on(with_allocator_trim(echo_server(options))),
        "serve" => runtime.block_on(with_allocator_trim(serve(options))),
        "token" => return mint_token(options),
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
    max_message: Option<usize>,
    memory_budget: Option<usize>,
    user_secret_file: Option<String>,
    expires: u64,
    /// Arguments that are not options (the user of `token`).
    positional: Vec<String>,
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
            max_message: None,
            memory_budget: None,
            user_secret_file: None,
            expires: 86_400,
            positional: Vec::new(),
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
                "--max-message" => {
                    let v = value()?;
                    options.max_message =
                        Some(v.parse().map_err(|_| format!("bad --max-message {v:?}"))?);
                }
                "--memory-budget" => {
                    let v = value()?;
                    options.memory_budget = Some(
                        v.parse()
                            .map_err(|_| format!("bad --memory-budget {v:?}"))?,
                    );
                }
                "--user-secret-file" => options.user_secret_file = Some(value()?),
                "--expires" => {
                    let v = value()?;
                    options.expires = v.parse().map_err(|_| format!("bad --expires {v:?}"))?;
                }
                "--url" => options.url = value()?.trim_end_matches('/').to_owned(),
                "--agent" => options.agent = value()?,
                other if other.starts_with('-') => return Err(format!("unknown option {other:?}")),
                other => options.positional.push(other.to_owned()),
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
    config.max_connections = connection_cap(options.max_connections, "serve");
    if let Some(n) = options.max_body {
        config.max_body_bytes = n;
    }
    let user_tokens = match &options.user_secret_file {
        Some(path) => Some(user_tokens(path)?),
        None => None,
    };
    let auth = TokenAuth {
        publish_token: options.publish_token,
        subscribe_token: options.subscribe_token,
        user_tokens,
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

/// The connection cap: the one asked for, or 10,000 where descriptors
/// allow. The descriptor limit is first raised to its hard limit; a cap
/// above what descriptors allow is lowered, with a warning.
fn connection_cap(asked: Option<usize>, command: &str) -> usize {
    let room = match raise_descriptor_limit() {
        Ok(Some(limit)) => usize::try_from(limit.saturating_sub(RESERVED_DESCRIPTORS)).ok(),
        Ok(None) => None,
        Err(e) => {
            eprintln!("rtwire {command}: cannot read the descriptor limit: {e}");
            None
        }
    };
    let wanted = asked.unwrap_or(DEFAULT_MAX_CONNECTIONS);
    match room {
        Some(room) if room < wanted => {
            if asked.is_some() {
                eprintln!(
                    "rtwire {command}: --max-connections {wanted} exceeds the descriptor limit; using {room}"
                );
            }
            room.max(1)
        }
        _ => wanted,
    }
}

/// The user-token signer from a secret file (one trailing newline ignored).
fn user_tokens(path: &str) -> Result<UserTokens, String> {
    let secret = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let secret = secret.strip_suffix(b"\n").unwrap_or(&secret);
    UserTokens::new(secret).map_err(|e| format!("{path}: {e}"))
}

/// `rtwire token USER`: prints a user token valid for `--expires` seconds.
fn mint_token(options: Options) -> ExitCode {
    let result = (|| {
        let [user] = options.positional.as_slice() else {
            return Err("token needs exactly one USER".to_owned());
        };
        let path = options
            .user_secret_file
            .as_deref()
            .ok_or("token needs --user-secret-file PATH")?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_secs();
        user_tokens(path)?
            .mint(user, now.saturating_add(options.expires))
            .map_err(|e| e.to_string())
    })();
    match result {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("rtwire: {message}");
            ExitCode::from(2)
        }
    }
}

/// How often a server hands freed heap memory back to the system.
const TRIM_INTERVAL: Duration = Duration::from_secs(10);

/// Runs `server` while, every [`TRIM_INTERVAL`], returning the heap's free
/// pages to the system. glibc keeps what a burst of large messages freed
/// (its mmap threshold rises after the first large free, so later ones
/// come from the heap, between long-lived history messages): after two
/// slow subscribers were fed 50 x 1 MiB, RSS stayed 17 MiB above start
/// plus the history without this, and came back to it with it
/// (`benches/hostile/run --only 4b`).
async fn with_allocator_trim<F: std::future::Future>(server: F) -> F::Output {
    let trim = tokio::spawn(async {
        let mut tick = tokio::time::interval(TRIM_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            trim_allocator();
        }
    });
    let output = server.await;
    trim.abort();
    output
}

/// Gives the heap's free pages back to the system (glibc's `malloc_trim`,
/// which also releases whole free pages inside the heap, not only at its
/// top). Elsewhere a no-op.
fn trim_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: malloc_trim has no preconditions: it takes each arena's
        // lock itself, is safe to call from any thread at any time, and
        // only returns memory malloc considers free.
        unsafe {
            malloc_trim(0);
        }
    }
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
    let max_connections = connection_cap(options.max_connections, "echo");
    // Load tests open thousands of connections at once: a deep backlog.
    let listener = rtwire::serve::listen(address, 4096).map_err(cannot)?;
    eprintln!(
        "rtwire echo: listening on ws://{}:{port} (at most {max_connections} connections)",
        options.host
    );
    // Autobahn's largest messages are 16 MiB; a public echo holds at most
    // this much per connection for a peer that does not read.
    let max_message = options.max_message.unwrap_or(16 << 20);
    let config = Arc::new(
        AcceptConfig::default()
            .deflate(DeflateConfig::default())
            .connection(
                Config::default()
                    .max_message_size(max_message)
                    .max_frame_size(max_message)
                    .keepalive(Some(Keepalive {
                        interval: Duration::from_secs(30),
                        timeout: Duration::from_secs(20),
                    })),
            ),
    );
    // Many peers that each send a large message and read nothing hold at
    // most this between them; a 16 MiB echo needs 16 MiB of it.
    let budget = MemoryBudget::new(options.memory_budget.unwrap_or(32 << 20));
    let slots = Arc::new(Semaphore::new(max_connections));
    let mut acceptor = Acceptor::new(listener, "rtwire echo");
    loop {
        let (stream, reason) = match acceptor.accept().await {
            Accepted::Stream(stream, _peer) => match slots.clone().try_acquire_owned() {
                Ok(permit) => {
                    let _ = stream.set_nodelay(true);
                    let config = config.clone();
                    let budget = budget.clone();
                    tokio::spawn(async move {
                        if let Ok(mut socket) = ws::accept_with(stream, &config).await {
                            socket.set_write_timeout(Some(Duration::from_secs(30)));
                            socket.set_memory_budget(budget);
                            let _ = echo(&mut socket).await;
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
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(socket: &mut WebSocket<S>) -> Result<(), Error> {
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
