//! The command line, declared for clap: every flag has a sentence of help,
//! its default, and an `RTWIRE_<FLAG>` environment variable (secrets given
//! that way stay out of `ps`).

use clap::{Args, Parser, Subcommand};
use rtwire::serve::ServeConfig;

/// Real-time web transports: a pub/sub server over WebSocket, SSE, long and
/// short polling, and the WebSocket echo and Autobahn testees.
///
/// Every flag may also come from an environment variable, `RTWIRE_` and the
/// flag's name (`--port` from `RTWIRE_PORT`); a flag on the command line wins.
/// Logs go to stderr, filtered by `RUST_LOG` (default `info`).
#[derive(Debug, Parser)]
#[command(name = "rtwire", version, propagate_version = true)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the pub/sub hub over WebSocket, SSE, long and short polling.
    Serve(Box<ServeArgs>),
    /// Print a signed user token for `serve --user-secret-file PATH`.
    Token(TokenArgs),
    /// Run a WebSocket echo server for any number of clients (the Autobahn
    /// testee server).
    Echo(EchoArgs),
    /// Run every case of an Autobahn fuzzingserver, then ask it to write
    /// its reports.
    AutobahnClient(AutobahnArgs),
}

/// Where a server listens.
#[derive(Debug, Args)]
pub struct Listen {
    /// The address or host name to listen on; a name is resolved, and the
    /// first of its addresses that can be bound is used.
    #[arg(
        long,
        value_name = "HOST",
        default_value = "127.0.0.1",
        env = "RTWIRE_HOST"
    )]
    pub host: String,
}

/// `rtwire serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub listen: Listen,
    /// The TCP port to listen on; 0 picks a free one (the startup line
    /// tells which).
    #[arg(long, value_name = "PORT", default_value_t = 8080, env = "RTWIRE_PORT")]
    pub port: u16,
    /// Publishers must send `Authorization: Bearer T`, else 401 (never
    /// accepted in the query string). Default: anyone may publish.
    #[arg(
        long,
        value_name = "T",
        env = "RTWIRE_PUBLISH_TOKEN",
        hide_env_values = true
    )]
    pub publish_token: Option<String>,
    /// Subscribers must send `Authorization: Bearer T` or `?token=T`, else
    /// 401. Default: anyone may subscribe.
    #[arg(
        long,
        value_name = "T",
        env = "RTWIRE_SUBSCRIBE_TOKEN",
        hide_env_values = true
    )]
    pub subscribe_token: Option<String>,
    /// A file holding the secret (at least 16 bytes, best 32 random ones; one
    /// trailing newline ignored) that signs user tokens: clients prove an identity with a
    /// token from `rtwire token`. Default: no identities.
    #[arg(long, value_name = "PATH", env = "RTWIRE_USER_SECRET_FILE")]
    pub user_secret_file: Option<String>,
    #[command(flatten)]
    pub max_connections: MaxConnections,
    /// The largest request body accepted, in bytes; larger gets 413.
    #[arg(long, value_name = "BYTES", default_value_t = ServeConfig::default().max_body_bytes, env = "RTWIRE_MAX_BODY")]
    pub max_body: usize,
    /// The most messages a channel keeps for clients that resume or poll;
    /// older ones are evicted, and resuming from them is told of the gap.
    #[arg(long, value_name = "N", default_value_t = ServeConfig::default().hub.history_messages, env = "RTWIRE_HISTORY_MESSAGES")]
    pub history_messages: usize,
    /// The most bytes a channel's history keeps (payloads and their cached
    /// encodings), in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = ServeConfig::default().hub.history_bytes, env = "RTWIRE_HISTORY_BYTES")]
    pub history_bytes: usize,
    /// The most bytes all channels' histories keep together; past it the
    /// least recently published channels are trimmed first.
    #[arg(long, value_name = "BYTES", default_value_t = ServeConfig::default().hub.history_bytes_total, env = "RTWIRE_HISTORY_BYTES_TOTAL")]
    pub history_bytes_total: usize,
    /// A channel nobody listens to is forgotten, history and all, this many
    /// seconds after its last message.
    #[arg(long, value_name = "SECONDS", default_value_t = ServeConfig::default().hub.idle_timeout.as_secs(), env = "RTWIRE_CHANNEL_IDLE_TIMEOUT")]
    pub channel_idle_timeout: u64,
    /// A polling client (short or long polls) with a user token stays in
    /// its channel's presence list this many seconds after its last poll.
    #[arg(long, value_name = "SECONDS", default_value_t = ServeConfig::default().hub.presence.lease.as_secs(), value_parser = clap::value_parser!(u64).range(1..=86_400), env = "RTWIRE_PRESENCE_TIMEOUT")]
    pub presence_timeout: u64,
    /// The most members one channel's presence lists; more still connect,
    /// unlisted.
    #[arg(long, value_name = "N", default_value_t = ServeConfig::default().hub.presence.max_members, env = "RTWIRE_PRESENCE_MAX_MEMBERS")]
    pub presence_max_members: usize,
    /// An origin whose pages may use the HTTP transports across origins
    /// (CORS), as `https://app.example.com`, or `*` for any; repeat the
    /// flag or separate origins with commas. Default: none (closed).
    #[arg(
        long,
        value_name = "ORIGIN",
        env = "RTWIRE_CORS_ORIGIN",
        value_delimiter = ','
    )]
    pub cors_origin: Vec<String>,
    /// Let CORS pages send credentials (cookies, HTTP auth) with their
    /// requests; the allowed origin is then echoed, never `*`.
    #[arg(long, requires = "cors_origin", env = "RTWIRE_CORS_CREDENTIALS")]
    pub cors_credentials: bool,
    /// `GET /metrics` requires `Authorization: Bearer T`, else 401.
    /// Default: open.
    #[arg(
        long,
        value_name = "T",
        env = "RTWIRE_METRICS_TOKEN",
        hide_env_values = true
    )]
    pub metrics_token: Option<String>,
    #[command(flatten)]
    pub tls: Tls,
    /// Share channels, ids, history and fan-out with every node given the
    /// same Redis, as `redis://HOST:PORT/DB` (`redis://:PASSWORD@HOST:PORT/DB`
    /// with a password): a client may resume on any node, and the epoch and
    /// history survive a restart. Publishes get 503 while Redis is
    /// unreachable. Default: the in-memory hub of this process.
    #[arg(long, value_name = "URL", env = "RTWIRE_REDIS", hide_env_values = true)]
    pub redis: Option<String>,
    #[command(flatten)]
    pub push: Push,
}

/// A public URL: http(s), a host, perhaps a path, no query or fragment;
/// without its trailing `/`.
fn public_url(text: &str) -> Result<String, String> {
    let url = rtwire::push::url::CallbackUrl::parse(text).map_err(|e| e.to_string())?;
    if url.query().is_some() {
        return Err("a base URL has no query".to_owned());
    }
    Ok(text.trim_end_matches('/').to_owned())
}

/// Server-to-server push: webhooks and the WebSub hub.
#[derive(Debug, Args)]
pub struct Push {
    /// Turn on webhooks and the WebSub hub (`/websub`); the admin routes
    /// (`/webhooks...`) require `Authorization: Bearer T`. Default: off,
    /// and those routes answer 404.
    #[arg(
        long,
        value_name = "T",
        env = "RTWIRE_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,
    /// The URL clients reach this server at, as `https://rt.example.com`:
    /// the base of WebSub topic and hub URLs. Default: http://HOST:PORT as
    /// listened on.
    #[arg(
        long,
        value_name = "URL",
        requires = "admin_token",
        env = "RTWIRE_PUBLIC_URL",
        value_parser = public_url
    )]
    pub public_url: Option<String>,
    /// Deliver webhooks and WebSub callbacks to loopback, private,
    /// link-local and other non-public addresses too (tests, local setups).
    /// Default: refused, against SSRF.
    #[arg(long, requires = "admin_token", env = "RTWIRE_ALLOW_PRIVATE_CALLBACKS")]
    pub allow_private_callbacks: bool,
    /// The waits before each retry of a failed delivery, in seconds, as
    /// `0,1,2` (3 retries after the first attempt). Default: Standard
    /// Webhooks' 0,5,300,1800,7200,18000,36000,50400,72000,86400.
    #[arg(
        long,
        value_name = "SECONDS,...",
        requires = "admin_token",
        env = "RTWIRE_WEBHOOK_RETRY_SCHEDULE"
    )]
    pub webhook_retry_schedule: Option<rtwire::push::schedule::RetrySchedule>,
    /// The most webhooks registered at once; past it, 503.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1_000,
        env = "RTWIRE_MAX_WEBHOOKS"
    )]
    pub max_webhooks: usize,
    /// The most WebSub subscriptions at once; past it, a subscriber that
    /// confirms is told `hub.mode=denied`.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 10_000,
        env = "RTWIRE_MAX_WEBSUB_SUBSCRIPTIONS"
    )]
    pub max_websub_subscriptions: usize,
    /// The shortest WebSub lease granted, in seconds.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 60,
        env = "RTWIRE_WEBSUB_MIN_LEASE"
    )]
    pub websub_min_lease: u64,
    /// The longest WebSub lease granted, in seconds (a subscriber that asks
    /// for none gets 10 days, within these bounds).
    #[arg(long, value_name = "SECONDS", default_value_t = 30 * 86_400, env = "RTWIRE_WEBSUB_MAX_LEASE")]
    pub websub_max_lease: u64,
}

/// The certificate of a server that speaks TLS.
#[derive(Debug, Args)]
pub struct Tls {
    /// Serve TLS (https and wss, on the same port) with the certificate
    /// chain in this PEM file, leaf first. Needs --tls-key. Default: plain.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_key",
        env = "RTWIRE_TLS_CERT"
    )]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The private key (PKCS#8, PKCS#1 or SEC1 PEM) of --tls-cert.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_cert",
        env = "RTWIRE_TLS_KEY"
    )]
    pub tls_key: Option<std::path::PathBuf>,
}

impl Tls {
    /// The acceptor, if a certificate was given.
    pub fn acceptor(&self) -> Result<Option<rtwire::ws::tls::TlsAcceptor>, String> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => rtwire::ws::tls::TlsAcceptor::from_pem_files(cert, key)
                .map(Some)
                .map_err(|e| format!("--tls-cert/--tls-key: {e}")),
            _ => Ok(None),
        }
    }
}

/// The connection cap of `serve` and `echo`.
#[derive(Debug, Args)]
pub struct MaxConnections {
    /// Open connections at most; clients beyond get 503. Default 10000,
    /// lowered to what the descriptor limit allows (the soft limit is first
    /// raised to the hard one).
    #[arg(
        long = "max-connections",
        value_name = "N",
        env = "RTWIRE_MAX_CONNECTIONS"
    )]
    pub asked: Option<usize>,
}

/// `rtwire token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The identity the token proves (its private room is `user:USER`).
    #[arg(value_name = "USER")]
    pub user: String,
    /// The file holding the secret that `serve --user-secret-file` reads.
    #[arg(long, value_name = "PATH", env = "RTWIRE_USER_SECRET_FILE")]
    pub user_secret_file: String,
    /// How long the token stays valid, in seconds (86400: one day).
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 86_400,
        env = "RTWIRE_EXPIRES"
    )]
    pub expires: u64,
}

/// `rtwire echo`.
#[derive(Debug, Args)]
pub struct EchoArgs {
    #[command(flatten)]
    pub listen: Listen,
    /// The TCP port to listen on; 0 picks a free one.
    #[arg(long, value_name = "PORT", default_value_t = 9001, env = "RTWIRE_PORT")]
    pub port: u16,
    #[command(flatten)]
    pub max_connections: MaxConnections,
    /// The largest message (and frame) accepted, in bytes; larger closes
    /// with 1009. The default, 16 MiB, is Autobahn's largest.
    #[arg(long, value_name = "BYTES", default_value_t = 16 << 20, env = "RTWIRE_MAX_MESSAGE")]
    pub max_message: usize,
    /// What all connections together may hold beyond 1 MiB each (messages
    /// being received, output the peer has not read), in bytes; the
    /// connection that would pass it is closed with 1013. Default 32 MiB.
    #[arg(long, value_name = "BYTES", default_value_t = 32 << 20, env = "RTWIRE_MEMORY_BUDGET")]
    pub memory_budget: usize,
    #[command(flatten)]
    pub tls: Tls,
    /// Serve on io_uring (Linux 5.19+): one thread, one ring, every
    /// connection's reads and writes in one system call per turn. Where
    /// io_uring cannot be set up, says why and serves on tokio. Not with
    /// --tls-cert; --memory-budget does not apply (each connection keeps
    /// its own limits).
    #[arg(long, env = "RTWIRE_IO_URING", conflicts_with = "tls_cert")]
    pub io_uring: bool,
}

/// `rtwire autobahn-client`.
#[derive(Debug, Args)]
pub struct AutobahnArgs {
    /// The fuzzingserver's base URL.
    #[arg(
        long,
        value_name = "URL",
        default_value = "ws://127.0.0.1:9001",
        env = "RTWIRE_URL"
    )]
    pub url: String,
    /// The agent name the reports are filed under.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "rtwire",
        env = "RTWIRE_AGENT"
    )]
    pub agent: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_declaration_is_consistent() {
        Cli::command().debug_assert();
    }
}
