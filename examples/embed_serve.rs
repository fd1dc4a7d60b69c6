//! `rtwire serve` as a library: rtwire's transports, one route of the
//! program's own, and an auth hook of its own.
//!
//! - `POST /api/announce` (the program's route) checks the announce key
//!   through the hook, then publishes the body to `announcements` through
//!   the hub; SSE, WebSocket and poll subscribers of that channel get it.
//! - Any other route rtwire does not serve reaches the same handler, which
//!   answers 404 itself.
//! - The hook lets only holders of the announce key publish, lets anyone
//!   subscribe, and remembers the address of the last client it judged.
//!
//! ```text
//! cargo run --example embed_serve -- 127.0.0.1:8080
//! curl -N http://127.0.0.1:8080/channels/announcements/events &
//! curl -H 'Authorization: Bearer let-me-announce' -d 'lunch is served' \
//!      http://127.0.0.1:8080/api/announce
//! ```
//!
//! `tests/embed.rs` runs this same setup in-process.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use rtwire::hub::Hub;
use rtwire::serve::{
    secret_eq, Action, AuthFuture, AuthHook, AuthRequest, Denied, HttpRequest, HttpResponse,
    ServeConfig, Server,
};

/// Where announcements go.
pub const CHANNEL: &str = "announcements";

/// The program's hook: publishing needs the announce key as a bearer
/// token; subscribing is open. Cheap to clone: the route asks the same
/// hook the server does.
#[derive(Clone)]
pub struct AnnounceAuth {
    key: Arc<str>,
    /// The peer of the last request judged.
    pub last_peer: Arc<Mutex<Option<SocketAddr>>>,
}

impl AnnounceAuth {
    /// A hook for which `key` publishes.
    pub fn new(key: &str) -> AnnounceAuth {
        AnnounceAuth {
            key: key.into(),
            last_peer: Arc::default(),
        }
    }
}

impl AuthHook for AnnounceAuth {
    fn authorize<'a>(&'a self, request: AuthRequest<'a>, action: Action<'a>) -> AuthFuture<'a> {
        Box::pin(async move {
            *self.last_peer.lock().unwrap_or_else(|e| e.into_inner()) = Some(request.peer);
            match action {
                Action::Publish(_) => match request.bearer_token() {
                    Some(token) if secret_eq(token, &self.key) => Ok(None),
                    _ => Err(Denied {
                        status: 401,
                        reason: "publishing needs the announce key (Authorization: Bearer)".into(),
                    }),
                },
                Action::Subscribe(_) | Action::Connect => Ok(None),
            }
        })
    }
}

/// The program's routes, for whatever rtwire does not route itself.
async fn routes(hub: Hub, auth: AnnounceAuth, request: HttpRequest) -> HttpResponse {
    match (request.method(), request.path()) {
        ("POST", "/api/announce") => announce(&hub, &auth, &request).await,
        (_, "/api/announce") => HttpResponse::text(405, "POST only\n").header("Allow", "POST"),
        _ => HttpResponse::text(404, "embed_serve: no such route\n"),
    }
}

async fn announce(hub: &Hub, auth: &AnnounceAuth, request: &HttpRequest) -> HttpResponse {
    let verdict = auth
        .authorize(request.auth_request(), Action::Publish(CHANNEL))
        .await;
    if let Err(denied) = verdict {
        return HttpResponse::text(denied.status, format!("{}\n", denied.reason));
    }
    match hub.publish(CHANNEL, request.body().clone(), None) {
        Ok(message) => HttpResponse::json(202, format!("{{\"id\":\"{}\"}}\n", message.id)),
        Err(e) => HttpResponse::text(503, format!("{e}\n")),
    }
}

/// The server of this example, bound to `config.addr`, with its hook.
pub async fn build(config: ServeConfig, key: &str) -> std::io::Result<(Server, AnnounceAuth)> {
    let auth = AnnounceAuth::new(key);
    let server = Server::bind(config, auth.clone()).await?;
    let (hub, route_auth) = (server.hub(), auth.clone());
    let server = server.fallback(move |request| routes(hub.clone(), route_auth.clone(), request));
    Ok((server, auth))
}

#[allow(dead_code)] // the test includes this file for `build` alone
#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut config = ServeConfig::default();
    if let Some(addr) = std::env::args().nth(1) {
        config.addr = addr
            .parse()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    }
    let (server, _auth) = build(config, "let-me-announce").await?;
    println!("listening on http://{}", server.local_addr()?);
    server
        .run_until(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
