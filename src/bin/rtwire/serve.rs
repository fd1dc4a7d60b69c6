//! `rtwire serve` and `rtwire token`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rtwire::push::PushConfig;
use rtwire::serve::{Cors, ServeConfig, Server, TokenAuth, UserTokens};

use crate::cli::{ServeArgs, TokenArgs};
use crate::system::{bind_host, connection_cap, shutdown_signal};

/// Serves until SIGINT or SIGTERM. The startup line is read by tests and
/// scripts: keep its text.
pub async fn serve(args: ServeArgs) -> Result<(), String> {
    let mut config = ServeConfig::default();
    config.max_connections = connection_cap(args.max_connections.asked, "serve");
    config.max_body_bytes = args.max_body;
    config.hub.history_messages = args.history_messages;
    config.hub.history_bytes = args.history_bytes;
    config.hub.history_bytes_total = args.history_bytes_total;
    config.hub.idle_timeout = std::time::Duration::from_secs(args.channel_idle_timeout);
    config.hub.presence = config
        .hub
        .presence
        .clone()
        .lease(Duration::from_secs(args.presence_timeout))
        .max_members(args.presence_max_members);
    config.metrics_token = args.metrics_token;
    if !args.cors_origin.is_empty() {
        let cors =
            Cors::allow_origins(&args.cors_origin).map_err(|e| format!("--cors-origin: {e}"))?;
        config.cors = Some(cors.with_credentials(args.cors_credentials));
    }
    config.tls = args.tls.acceptor()?;
    config.redis = args.redis.map(rtwire::hub::redis::RedisConfig::new);
    config.push = push_config(args.push)?;
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let user_tokens = match &args.user_secret_file {
        Some(path) => Some(user_tokens(path)?),
        None => None,
    };
    let auth = TokenAuth {
        publish_token: args.publish_token,
        subscribe_token: args.subscribe_token,
        user_tokens,
    };
    let server = bind_host(&args.listen.host, args.port, |addr| {
        config.addr = addr;
        Server::bind(config.clone(), auth.clone())
    })
    .await?;
    let addr = server.local_addr().map_err(|e| e.to_string())?;
    eprintln!(
        "rtwire serve: listening on {scheme}://{addr} (epoch {:08x})",
        server.hub().epoch()
    );
    if let Some(push) = server.push() {
        eprintln!(
            "rtwire serve: webhooks at /webhooks, the WebSub hub at {}",
            push.hub_url()
        );
    }
    if server.broker().name() == "redis" {
        eprintln!("rtwire serve: channels, ids and history in Redis (epochs per channel)");
    }
    server
        .run_until(shutdown_signal())
        .await
        .map_err(|e| e.to_string())?;
    eprintln!("rtwire serve: stopped");
    Ok(())
}

/// Push's settings, if `--admin-token` turns it on.
fn push_config(args: crate::cli::Push) -> Result<Option<PushConfig>, String> {
    let Some(token) = args.admin_token else {
        return Ok(None);
    };
    if token.is_empty() {
        return Err("--admin-token: empty".to_owned());
    }
    let mut config = PushConfig::new(token);
    config.public_url = args.public_url;
    config.allow_private_callbacks = args.allow_private_callbacks;
    if let Some(schedule) = args.webhook_retry_schedule {
        config.retry_schedule = schedule;
    }
    if args.websub_min_lease > args.websub_max_lease {
        return Err("--websub-min-lease is over --websub-max-lease".to_owned());
    }
    config.max_webhooks = args.max_webhooks;
    config.max_subscriptions = args.max_websub_subscriptions;
    config.leases.min = Duration::from_secs(args.websub_min_lease);
    config.leases.max = Duration::from_secs(args.websub_max_lease);
    Ok(Some(config))
}

/// The user-token signer from a secret file (one trailing newline ignored).
fn user_tokens(path: &str) -> Result<UserTokens, String> {
    let secret = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let secret = secret.strip_suffix(b"\n").unwrap_or(&secret);
    UserTokens::new(secret).map_err(|e| format!("{path}: {e}"))
}

/// `rtwire token USER`: a user token valid for `--expires` seconds.
pub fn mint_token(args: &TokenArgs) -> Result<String, String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    user_tokens(&args.user_secret_file)?
        .mint(&args.user, now.saturating_add(args.expires))
        .map_err(|e| e.to_string())
}
